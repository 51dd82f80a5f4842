-- repair.sql: maintain() reconciles partition_state with the catalog (0.8.0): partitions detached or
-- dropped by hand are forgotten and their ranges covered again; partitions attached outside maintain()
-- (a pg_dump restore) are adopted with their row counts. Its WARNINGs name time-stamped partitions, so
-- they are not shown here.
SET client_min_messages = error;
-- the expected output assumes no 5-minute boundary (that of the anomalies' partitions, and of the others')
-- passes while the file runs: start at least 30 s before the next one
SELECT pg_sleep(greatest(0, 31 - extract(epoch FROM to_timestamp(ceil(extract(epoch FROM clock_timestamp()) / 300) * 300)
                                                    - clock_timestamp())));
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
\set VERBOSITY terse

-- partitions are not members of the extension (pg_dump leaves members out, with their rows)
SELECT count(*) AS member_partitions FROM pg_depend d JOIN pg_inherits i ON i.inhrelid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e';

CREATE FUNCTION pg_temp.current_partition(tbl text) RETURNS text LANGUAGE sql AS $$
    SELECT s.partition_name FROM chainwatch.partition_state s
     WHERE s.table_name = tbl AND s.lower_bound <= now() AND s.upper_bound > now()
$$;
CREATE FUNCTION pg_temp.covered(tbl text) RETURNS boolean LANGUAGE sql AS $$
    -- every instant from now() to premake - 1 widths ahead falls in exactly one recorded, attached partition
    SELECT bool_and((SELECT count(*) FROM chainwatch.partition_state s
                       JOIN pg_class c ON c.relname = s.partition_name AND c.relnamespace = 'chainwatch'::regnamespace
                       JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = format('chainwatch.%I', tbl)::regclass
                      WHERE s.table_name = tbl AND s.lower_bound <= t AND s.upper_bound > t) = 1)
      FROM generate_series(now(), now() + 3 * chainwatch.partition_width(tbl), chainwatch.partition_width(tbl) / 7) t
$$;
SELECT pg_temp.covered('anomalies') AS covered_at_start;

-- an anomaly in the current partition, counted
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity) VALUES ('0xkept', 1, 21000, 1, 0.9, 'high');
UPDATE chainwatch.partition_state SET row_count = 1 WHERE partition_name = pg_temp.current_partition('anomalies');
SELECT chainwatch.recent_anomaly_count() AS counted_before;

-- 1. the current partition detached by hand: inserts fail, as before 0.8.0
SELECT pg_temp.current_partition('anomalies') AS detached \gset
ALTER TABLE chainwatch.anomalies DETACH PARTITION chainwatch.:"detached";
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity) VALUES ('0xlost', 1, 21000, 1, 0.9, 'high');

-- maintain() forgets it (with a WARNING), creates a partition under a new name for its range, leaves the
-- detached table and its row alone; the count no longer includes that row
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT pg_temp.covered('anomalies') AS covered_after_detach;
SELECT pg_temp.current_partition('anomalies') = :'detached' || '_2' AS new_name_has_suffix;
SELECT count(*) AS detached_table_keeps_its_row FROM chainwatch.:"detached";
SELECT count(*) AS state_rows_for_detached FROM chainwatch.partition_state WHERE partition_name = :'detached';
SELECT chainwatch.recent_anomaly_count() AS counted_after;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity) VALUES ('0xnew', 1, 21000, 1, 0.9, 'high');
UPDATE chainwatch.partition_state SET row_count = 1 WHERE partition_name = pg_temp.current_partition('anomalies');
SELECT hash FROM chainwatch.anomalies ORDER BY hash;

-- a second run finds nothing to repair
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';

-- 2. a partition ahead dropped by hand: the hole is filled under the same name
SELECT s.partition_name AS ahead FROM chainwatch.partition_state s
 WHERE s.table_name = 'transactions' AND s.lower_bound > now() ORDER BY s.lower_bound LIMIT 1 \gset
DROP TABLE chainwatch.:"ahead";
SELECT pg_temp.covered('transactions') AS covered_with_hole;
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'transactions';
SELECT pg_temp.covered('transactions') AS covered_after_drop;
SELECT count(*) AS recreated_same_name FROM chainwatch.partition_state WHERE partition_name = :'ahead';

-- 3. the current dead_letters partition dropped: recreated, and dead letters are stored again
SELECT pg_temp.current_partition('dead_letters') AS dl \gset
DROP TABLE chainwatch.:"dl";
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'dead_letters';
SELECT pg_temp.covered('dead_letters') AS dead_letters_covered;
INSERT INTO chainwatch.dead_letters (payload, error, reason) VALUES ('x', 'bad', 'invalid_json');
SELECT count(*) AS dead_letters_stored FROM chainwatch.dead_letters;

-- 4. a partition attached by hand (as a pg_dump restore does) is adopted with its rows, then managed
-- (in a session whose time zone abbreviation, PST, means another offset than Manila's: bounds must not shift):
-- counted, and dropped by the TTL like any other
SET timezone = 'Asia/Manila';
CREATE TABLE chainwatch.anomalies_restored (LIKE chainwatch.anomalies INCLUDING DEFAULTS INCLUDING GENERATED);
INSERT INTO chainwatch.anomalies_restored (hash, value, gas, gas_price, score, severity, detected_at)
SELECT '0xrestored' || i, 1, 21000, 1, 0.9, 'low', date_trunc('hour', now()) - interval '10 hours' + i * interval '1 minute'
  FROM generate_series(1, 3) i;
DO $$ BEGIN
    SET LOCAL datestyle = 'ISO';  -- bounds as text with a numeric offset: Manila's abbreviation is PST too
    EXECUTE format('ALTER TABLE chainwatch.anomalies ATTACH PARTITION chainwatch.anomalies_restored FOR VALUES FROM (%L) TO (%L)',
                   date_trunc('hour', now()) - interval '10 hours', date_trunc('hour', now()) - interval '9 hours');
END $$;
SELECT count(*) AS recorded_before FROM chainwatch.partition_state WHERE partition_name = 'anomalies_restored';
SELECT table_name, partitions_dropped, rows_evicted, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT count(*) AS restored_left, (SELECT evicted_ttl FROM chainwatch.status() WHERE table_name = 'anomalies') AS evicted_ttl
  FROM pg_class WHERE relname = 'anomalies_restored';
-- and inside the TTL: adopted and counted
CREATE TABLE chainwatch.anomalies_recent (LIKE chainwatch.anomalies INCLUDING DEFAULTS INCLUDING GENERATED);
INSERT INTO chainwatch.anomalies_recent (hash, value, gas, gas_price, score, severity, detected_at)
SELECT '0xrecent' || i, 1, 21000, 1, 0.9, 'low', now() - interval '40 minutes' FROM generate_series(1, 4) i;
DO $$ BEGIN
    SET LOCAL datestyle = 'ISO';  -- bounds as text with a numeric offset: Manila's abbreviation is PST too
    EXECUTE format('ALTER TABLE chainwatch.anomalies ATTACH PARTITION chainwatch.anomalies_recent FOR VALUES FROM (%L) TO (%L)',
                   now() - interval '50 minutes', now() - interval '30 minutes');
END $$;
SELECT chainwatch.recent_anomaly_count() AS counted_before_adoption;
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT row_count FROM chainwatch.partition_state WHERE partition_name = 'anomalies_recent';
SELECT chainwatch.recent_anomaly_count() AS counted_after_adoption,
       (SELECT count(*) FROM chainwatch.recent_anomalies) AS visible;

SELECT upper_bound - lower_bound = interval '20 minutes' AND lower_bound BETWEEN now() - interval '51 minutes' AND now() - interval '50 minutes' AS same_bounds
  FROM chainwatch.partition_state WHERE partition_name = 'anomalies_recent';

-- 5. an empty past partition attached by hand is neither adopted nor dropped (a restore may be about to
-- load it); once it holds rows it is adopted
CREATE TABLE chainwatch.anomalies_loading (LIKE chainwatch.anomalies INCLUDING DEFAULTS INCLUDING GENERATED);
DO $$ BEGIN
    SET LOCAL datestyle = 'ISO';  -- bounds as text with a numeric offset: Manila's abbreviation is PST too
    EXECUTE format('ALTER TABLE chainwatch.anomalies ATTACH PARTITION chainwatch.anomalies_loading FOR VALUES FROM (%L) TO (%L)',
                   now() - interval '20 minutes', now() - interval '15 minutes');
END $$;
SELECT table_name, partitions_dropped, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT (SELECT count(*) FROM pg_class WHERE relname = 'anomalies_loading') AS still_there,
       (SELECT count(*) FROM chainwatch.partition_state WHERE partition_name = 'anomalies_loading') AS recorded;
INSERT INTO chainwatch.anomalies_loading (hash, value, gas, gas_price, score, severity, detected_at)
VALUES ('0xloaded', 1, 21000, 1, 0.9, 'low', now() - interval '17 minutes');
SELECT table_name, partitions_dropped, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT row_count FROM chainwatch.partition_state WHERE partition_name = 'anomalies_loading';
RESET timezone;

-- 6. a slot taken by a partition maintain() does not manage (another schema) is skipped, not an error
SELECT s.partition_name AS last_ahead, s.lower_bound AS la_lo, s.upper_bound AS la_hi FROM chainwatch.partition_state s
 WHERE s.table_name = 'anomalies' ORDER BY s.lower_bound DESC LIMIT 1 \gset
DROP TABLE chainwatch.:"last_ahead";
CREATE TABLE public.foreign_slot (LIKE chainwatch.anomalies INCLUDING DEFAULTS INCLUDING GENERATED);
ALTER TABLE chainwatch.anomalies ATTACH PARTITION public.foreign_slot FOR VALUES FROM (:'la_lo') TO (:'la_hi');
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
ALTER TABLE chainwatch.anomalies DETACH PARTITION public.foreign_slot;
DROP TABLE public.foreign_slot;
SELECT table_name, partitions_created, error FROM chainwatch.maintain() WHERE table_name = 'anomalies';
SELECT pg_temp.covered('anomalies') AS covered_again;

-- the detached table is the operator's to drop; nothing left to repair
DROP TABLE chainwatch.:"detached";
SELECT table_name, partitions_created, error FROM chainwatch.maintain() ORDER BY 1;
