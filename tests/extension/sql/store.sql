-- store.sql: partitions, both bounds, the TTL view, maintenance, retention changes
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;

-- partitions exist for now and premake widths ahead, with no default partition
SELECT table_name, count(*) AS partitions,
       bool_and(upper_bound - lower_bound = chainwatch.partition_width(table_name)) AS uniform_width,
       min(lower_bound) <= now() AND max(upper_bound) >= now() + 3 * chainwatch.partition_width(table_name) AS covers_ahead
FROM chainwatch.partition_state GROUP BY table_name ORDER BY table_name;
SELECT chainwatch.partition_width('anomalies') AS anomalies_width, chainwatch.partition_width('transactions') AS transactions_width;
SELECT count(*) AS default_partitions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
SELECT p.relname, p.relkind FROM pg_class p JOIN pg_namespace n ON n.oid = p.relnamespace
WHERE n.nspname = 'chainwatch' AND p.relname IN ('anomalies', 'transactions', 'dead_letters') ORDER BY 1;

-- an anomaly batch helper: n rows stamped now(), counted by commit_batch
CREATE FUNCTION pg_temp.batch(first bigint, n int) RETURNS TABLE (rows bigint, anomalies bigint, dead_letters bigint, evicted bigint) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
    SELECT '0x' || lpad(to_hex(first + i), 64, '0'), 1, 21000, 1, 't', 0, first + i FROM generate_series(0, n - 1) i;
    INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, kafka_topic, kafka_partition, kafka_offset)
    SELECT '0x' || lpad(to_hex(first + i), 64, '0'), 1, 21000, 1, 0.9, 'low', 't', 0, first + i FROM generate_series(0, n - 1) i;
    RETURN QUERY SELECT b.rows, b.anomalies, b.dead_letters, b.evicted
                   FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[first], ARRAY[first + n], NULL) b;
END $$;

-- the row bound: at most max_rows after every batch, the oldest evicted first
SELECT (chainwatch.set_retention('anomalies', max_rows => 25)).max_rows;
SELECT * FROM pg_temp.batch(0, 10);
SELECT * FROM pg_temp.batch(10, 10);
SELECT * FROM pg_temp.batch(20, 10);
SELECT count(*) AS anomalies_after, min(kafka_offset) AS oldest_kept, max(kafka_offset) AS newest_kept FROM chainwatch.anomalies;
SELECT count(*) AS transactions_kept FROM chainwatch.transactions;
SELECT table_name, rows, evicted_ttl, evicted_size FROM chainwatch.status() ORDER BY 1;

-- a batch bigger than the bound keeps only its newest max_rows rows
SELECT * FROM pg_temp.batch(30, 40);
SELECT count(*) AS anomalies_after_big_batch FROM chainwatch.anomalies;

-- the TTL view never shows rows older than the TTL, even before maintenance drops them
SELECT chainwatch._create_partition('anomalies', date_trunc('hour', now()) - interval '5 hours', date_trunc('hour', now()) - interval '4 hours') IS NOT NULL AS old_partition;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, detected_at)
SELECT '0xold' || i, 1, 1, 1, 0.9, 'high', date_trunc('hour', now()) - interval '5 hours' + i * interval '1 minute' FROM generate_series(1, 7) i;
UPDATE chainwatch.partition_state SET row_count = 7 WHERE lower_bound = date_trunc('hour', now()) - interval '5 hours' AND table_name = 'anomalies';
SELECT count(*) AS physically_present FROM chainwatch.anomalies WHERE hash LIKE '0xold%';
SELECT count(*) AS visible_in_view FROM chainwatch.recent_anomalies WHERE hash LIKE '0xold%';
SELECT count(*) AS recent_visible FROM chainwatch.recent_anomalies;
SELECT severity, anomalies FROM chainwatch.anomaly_stats(interval '1 day');

-- maintenance drops the expired partition and counts its rows as TTL evictions
SELECT table_name, partitions_dropped >= 1 AS dropped, rows_evicted, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT count(*) AS old_rows_left FROM chainwatch.anomalies WHERE hash LIKE '0xold%';
SELECT evicted_ttl, last_maintenance_at IS NOT NULL AS maintained, last_maintenance_error FROM chainwatch.status() WHERE table_name = 'anomalies';

-- retention changes: a shorter TTL hides rows at once; a wider partition width applies to new partitions
SELECT (chainwatch.set_retention('anomalies', ttl => '2 hours', partition_width => '1 hour')).ttl;
SELECT count(*) AS maintained_tables FROM chainwatch.maintain();
SELECT count(*) FILTER (WHERE upper_bound - lower_bound = interval '1 hour') >= 1 AS hour_partitions_after_maintain
FROM chainwatch.partition_state WHERE table_name = 'anomalies';
-- a wider width puts the start of the aligned slot holding now() before the partition that already holds now():
-- maintain() leaves that past hole alone, where 0.8.0 created it and dropped it again as empty on every run
-- (and so never trained a model, which waits for a run that dropped nothing)
SELECT (chainwatch.set_retention('anomalies', ttl => '7 days', partition_width => '1 day')).ttl;
SELECT count(*) AS maintained_tables FROM chainwatch.maintain();
SELECT partitions_created, partitions_dropped FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT count(*) AS past_empty_partitions FROM chainwatch.partition_state
WHERE table_name = 'anomalies' AND upper_bound <= now() AND row_count = 0;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$SELECT chainwatch.set_retention('nonsense', ttl => '1 hour')$$);
SELECT pg_temp.err($$SELECT chainwatch.set_retention('anomalies', ttl => '1 second')$$);
SELECT pg_temp.err($$SELECT chainwatch.set_retention('anomalies', max_rows => 0)$$);

-- partitions are ordinary tables, not members of the extension, even those CREATE EXTENSION made (0.8.0)
SELECT count(*) AS extension_owned_partitions FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND c.relname LIKE 'dead_letters_p%';
SELECT chainwatch._drop_partition((SELECT partition_name FROM chainwatch.partition_state
                                   WHERE table_name = 'dead_letters' ORDER BY lower_bound DESC LIMIT 1), 'size') AS rows_dropped;
SELECT count(*) AS maintained_tables FROM chainwatch.maintain();

-- maintenance is idempotent: a second run finds nothing to do
SELECT count(*) AS maintained_tables FROM chainwatch.maintain();

-- status() survives a partition dropped after its snapshot was taken (to_regclass, not ::regclass):
-- a partition_state row whose table is gone counts no bytes instead of failing with 42P01
BEGIN;
INSERT INTO chainwatch.partition_state (partition_name, table_name, lower_bound, upper_bound)
VALUES ('transactions_gone', 'transactions', '2001-01-01', '2001-01-02');
SELECT count(*) AS status_rows, bool_and(bytes >= 0) AS bytes_known FROM chainwatch.status();
-- status() is VOLATILE, as pg_total_relation_size() which it calls (0.8.0 said STABLE)
SELECT p.provolatile AS status_volatility, s.provolatile AS size_volatility
  FROM pg_proc p, pg_proc s WHERE p.oid = 'chainwatch.status'::regproc AND s.oid = 'pg_total_relation_size'::regproc;
ROLLBACK;
