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
