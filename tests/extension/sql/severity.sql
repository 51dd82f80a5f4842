-- severity.sql: default severity rules and operator edits
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
-- units: value in wei (1 ETH = 1e18 wei), gas price in wei (1 gwei = 1e9 wei)
SELECT chainwatch.severity(0.7, 100000000000000000, 20000000000) AS small_transfer,
       chainwatch.severity(0.95, 100000000000000000, 20000000000) AS small_transfer_extreme_score,
       chainwatch.severity(0.6, 150000000000000000000, 20000000000) AS v150_eth,
       chainwatch.severity(0.72, 20000000000000000000, 20000000000) AS v20_eth_outlier,
       chainwatch.severity(0.6, 2000000000000000000000, 20000000000) AS v2000_eth,
       chainwatch.severity(0.6, 0, 3000000000000) AS gas_3000_gwei,
       chainwatch.severity(0.6, 50000000000000000000000, 20000000000) AS v50000_eth,
       chainwatch.severity(0.85, 1500000000000000000000, 20000000000) AS v1500_eth_extreme;

-- operators edit the rules with SQL
INSERT INTO chainwatch.severity_rules (severity, min_value_eth, description) VALUES ('critical', 1, 'paranoid test rule');
SELECT chainwatch.severity(0.6, 2000000000000000000, 20000000000) AS v2_eth_after_rule;
DELETE FROM chainwatch.severity_rules WHERE description = 'paranoid test rule';
SELECT chainwatch.severity(0.6, 2000000000000000000, 20000000000) AS v2_eth_after_delete;
SELECT chainwatch.severity(NULL, 1, 1) IS NULL AS strict;

-- a rule needs at least one condition, and 'low' is the default, not a rule
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$INSERT INTO chainwatch.severity_rules (severity) VALUES ('high')$$);
SELECT pg_temp.err($$INSERT INTO chainwatch.severity_rules (severity, min_score) VALUES ('low', 0.5)$$);

-- the shipped rules: nine, editable, disabled rather than deleted (a restore would bring a deleted one back)
SELECT count(*) AS shipped FROM chainwatch.severity_rules WHERE shipped;
SELECT pg_temp.err($$DELETE FROM chainwatch.severity_rules WHERE id = 7$$);
SELECT pg_temp.err($$TRUNCATE chainwatch.severity_rules$$);
SELECT pg_temp.err($$UPDATE chainwatch.severity_rules SET shipped = false WHERE id = 7$$);
UPDATE chainwatch.severity_rules SET enabled = false WHERE id = 7;   -- value of 10,000 ETH or more
SELECT chainwatch.severity(0.6, 50000000000000000000000, 20000000000) AS v50000_eth_rule_7_disabled;
UPDATE chainwatch.severity_rules SET enabled = true WHERE id = 7;
SELECT chainwatch.severity(0.6, 50000000000000000000000, 20000000000) AS v50000_eth_rule_7_enabled;
-- the user's own rules delete as before
INSERT INTO chainwatch.severity_rules (severity, min_value_eth) VALUES ('high', 5) RETURNING shipped, enabled;
SELECT pg_temp.err($$DELETE FROM chainwatch.severity_rules WHERE NOT shipped$$);
-- an insert of an existing id (what a pg_dump restore does) updates that rule
INSERT INTO chainwatch.severity_rules (id, severity, min_value_eth, description, enabled, shipped)
VALUES (1, 'high', 100, 'value of 100 ETH or more, raised', true, true);
SELECT id, severity, description FROM chainwatch.severity_rules WHERE id = 1;
SELECT count(*) AS rules FROM chainwatch.severity_rules;
