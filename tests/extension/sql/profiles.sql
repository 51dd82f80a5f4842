-- profiles.sql: address profiles — folded in with the batch, order-independent, exactly once, bounded
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- the same 300 transactions among 12 addresses, over 40 blocks and 2 hours of chain time, in any order
CREATE TABLE p_tx AS
SELECT i, '0x' || lpad(to_hex(i), 64, '0') AS hash, '0xs' || (i % 5) AS from_address, '0xr' || (i % 7) AS to_address,
       ((i * 7919) % 100000)::numeric * 1000000000 AS value, 21000::numeric AS gas,
       (20 + i % 13)::numeric * 1000000000 AS gas_price, 1000 + (i * 37) % 40 AS block_number,
       date_trunc('hour', now()) - interval '3 hours' + ((i * 53) % 7200) * interval '1 second' AS tx_time,
       now() + i * interval '1 millisecond' AS detected_at
  FROM generate_series(1, 300) i;
CREATE FUNCTION pg_temp.load(lo int, hi int, ord text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, block_number, tx_time, detected_at)
                    SELECT hash, from_address, to_address, value, gas, gas_price, block_number, tx_time, detected_at
                      FROM p_tx WHERE i BETWEEN %s AND %s ORDER BY %s', lo, hi, ord);
END $$;

-- one statement, then the profiles equal a recomputation, and a sender's statistics are its own
SELECT pg_temp.load(1, 300, 'i');
SELECT count(*) AS profiles FROM chainwatch.address_profiles;
SELECT sum(profiles) AS counted FROM chainwatch.address_profile_counts;
SELECT count(*) AS differences FROM chainwatch.verify_address_profiles();
SELECT p.out_count = x.n AS out_count_ok, p.first_block = x.fb AND p.last_block = x.lb AS blocks_ok,
       p.out_log_value_sum = x.lv AS value_sum_exact, p.first_seen_at = x.fa AND p.last_out_at = x.la AS times_ok,
       p.in_count AS received, cardinality(p.out_peers) AS recipients, chainwatch.sketch_distinct(p.out_peers) AS distinct_recipients
  FROM chainwatch.address_profiles p,
       (SELECT count(*) AS n, min(block_number) AS fb, max(block_number) AS lb, min(tx_time) AS fa, max(tx_time) AS la,
               sum(round(ln(1 + value::float8) * 1e6)::bigint) AS lv FROM p_tx WHERE from_address = '0xs3') x
 WHERE p.address = '0xs3';
CREATE TABLE p_once AS SELECT * FROM chainwatch.address_profiles;

-- the same rows in six statements, newest blocks and latest times first: the same profiles, to the last digit
TRUNCATE chainwatch.transactions;
SELECT chainwatch.rebuild_address_profiles() AS rebuilt_from_nothing;
SELECT pg_temp.load(251, 300, 'block_number DESC'), pg_temp.load(1, 50, 'tx_time DESC'), pg_temp.load(201, 250, 'i'),
       pg_temp.load(51, 100, 'i DESC'), pg_temp.load(151, 200, 'hash'), pg_temp.load(101, 150, 'value');
SELECT count(*) AS differing_from_one_statement
  FROM (SELECT * FROM p_once EXCEPT SELECT * FROM chainwatch.address_profiles) d;
SELECT count(*) AS differences FROM chainwatch.verify_address_profiles();
SELECT sum(profiles) AS counted FROM chainwatch.address_profile_counts;

-- the activity window: the latest 300-second bucket of chain time and the one before it, exact in any order
SELECT p.out_bucket = floor(extract(epoch FROM x.latest) / 300) AS latest_bucket_ok,
       p.out_bucket_count = x.cur AS bucket_count_ok, p.out_prev_count = x.prev AS prev_count_ok
  FROM chainwatch.address_profiles p,
       LATERAL (SELECT max(tx_time) AS latest,
                       count(*) FILTER (WHERE floor(extract(epoch FROM tx_time) / 300) = floor(extract(epoch FROM (SELECT max(tx_time) FROM p_tx WHERE from_address = '0xs1')) / 300)) AS cur,
                       count(*) FILTER (WHERE floor(extract(epoch FROM tx_time) / 300) = floor(extract(epoch FROM (SELECT max(tx_time) FROM p_tx WHERE from_address = '0xs1')) / 300) - 1) AS prev
                  FROM p_tx WHERE from_address = '0xs1') x
 WHERE p.address = '0xs1';

-- a replayed batch (CW002) rolls back, and its transactions count in no profile
SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[0]::bigint[], ARRAY[10]::bigint[], NULL) \gset
BEGIN;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
VALUES ('0xreplayed', '0xs1', '0xnew', 1, 21000, 1, 't', 0, 5);
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[5]::bigint[], ARRAY[6]::bigint[], NULL)$$);
ROLLBACK;
SELECT (SELECT out_count FROM chainwatch.address_profiles WHERE address = '0xs1') = (SELECT count(*) FROM p_tx WHERE from_address = '0xs1') AS not_counted,
       NOT EXISTS (SELECT 1 FROM chainwatch.address_profiles WHERE address = '0xnew') AS no_new_profile;

-- clock skew: a tx_time ahead of the moment the row was stored counts at detected_at; none counts at detected_at
BEGIN;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, tx_time, detected_at)
VALUES ('0xahead', '0xskew', NULL, 1, 21000, 1, timestamptz '2030-01-01', now() + interval '1 minute'),
       ('0xnotime', NULL, '0xskew', 1, 21000, 1, NULL, now() + interval '2 minutes');
SELECT first_seen_at = now() + interval '1 minute' AS ahead_counts_when_stored, last_seen_at = now() + interval '2 minutes' AS none_counts_when_stored,
       last_out_at = first_seen_at AS sent_when_stored, out_count, in_count,
       out_bucket = floor(extract(epoch FROM now() + interval '1 minute') / 300) AS out_bucket_now,
       in_bucket = floor(extract(epoch FROM now() + interval '2 minutes') / 300) AS in_bucket_now, out_peers, in_peers
  FROM chainwatch.address_profiles WHERE address = '0xskew';
COMMIT;

-- counterparties: exact below 64, estimated beyond
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price)
SELECT 'fan' || i, '0xfan', '0xto' || (i % 40), 1, 21000, 1 FROM generate_series(1, 200) i;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price)
SELECT 'wide' || i, '0xwide', '0xto' || i, 1, 21000, 1 FROM generate_series(1, 1000) i;
SELECT address, cardinality(out_peers) AS kept, chainwatch.sketch_distinct(out_peers) BETWEEN 600 AND 1600 AS estimate_near_1000,
       chainwatch.sketch_distinct(out_peers) AS exact_when_few
  FROM chainwatch.address_profiles WHERE address IN ('0xfan', '0xwide') ORDER BY 1;
SELECT array_agg(h ORDER BY h) = (SELECT out_peers FROM chainwatch.address_profiles WHERE address = '0xwide') AS sketch_is_the_64_smallest
  FROM (SELECT hashtextextended('0xto' || i, 0) AS h FROM generate_series(1, 1000) i ORDER BY 1 LIMIT 64) s;
SELECT count(*) AS differences FROM chainwatch.verify_address_profiles();

-- bounded: the least recently updated profiles go beyond max_rows, stale ones after the TTL; status() shows it
SELECT sum(profiles) AS before FROM chainwatch.address_profile_counts;
SELECT updated_at AS tenth FROM chainwatch.address_profiles ORDER BY updated_at DESC OFFSET 9 LIMIT 1 \gset
SELECT (chainwatch.set_retention('address_profiles', max_rows => 10)).max_rows;
SELECT table_name, rows_evicted, error FROM chainwatch.maintain() WHERE table_name = 'address_profiles';
SELECT count(*) AS left, (SELECT sum(profiles) FROM chainwatch.address_profile_counts) AS counted,
       min(updated_at) >= :'tenth' AS the_newest_kept
  FROM chainwatch.address_profiles;
SELECT table_name, rows, max_rows, partitions, evicted_ttl, evicted_size, bytes > 0 AS has_bytes,
       last_maintenance_at IS NOT NULL AS maintained
  FROM chainwatch.status() WHERE table_name = 'address_profiles';
-- stale profiles: the TTL scan runs at most every 10 minutes (no index on updated_at), then evicts them
SELECT min(address) AS stale1, max(address) AS stale2 FROM chainwatch.address_profiles \gset
UPDATE chainwatch.address_profiles SET updated_at = now() - interval '31 days' WHERE address IN (:'stale1', :'stale2');
SELECT table_name, rows_evicted FROM chainwatch.maintain() WHERE table_name = 'address_profiles';
UPDATE chainwatch.retention_stats SET last_maintenance_at = now() - interval '11 minutes' WHERE table_name = 'address_profiles';
SELECT table_name, rows_evicted FROM chainwatch.maintain() WHERE table_name = 'address_profiles';
SELECT rows, evicted_ttl, evicted_size, last_maintenance_at > now() - interval '1 minute' AS scanned_now
  FROM chainwatch.status() WHERE table_name = 'address_profiles';
SELECT count(*) AS after_ttl, count(*) FILTER (WHERE address IN (:'stale1', :'stale2')) AS stale_left FROM chainwatch.address_profiles;

-- an evicted address starts afresh
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price) VALUES ('again', :'stale1', NULL, 1, 21000, 1);
SELECT out_count, in_count, cardinality(out_peers) AS peers FROM chainwatch.address_profiles WHERE address = :'stale1';

-- the policy: no partition width, an unknown table named
SELECT pg_temp.err($$SELECT chainwatch.set_retention('address_profiles', partition_width => '1 hour')$$);
SELECT pg_temp.err($$SELECT chainwatch.set_retention('profiles', ttl => '1 day')$$);
SELECT pg_temp.err($$UPDATE chainwatch.retention_policies SET partition_width = '1 hour' WHERE table_name = 'address_profiles'$$);

-- the ingestor's role (INSERT on transactions only) still folds its rows in: the trigger is SECURITY DEFINER
CREATE ROLE cw_p_writer;
GRANT USAGE ON SCHEMA chainwatch TO cw_p_writer;
GRANT INSERT ON chainwatch.transactions TO cw_p_writer;
SET ROLE cw_p_writer;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price) VALUES ('byrole', '0xrole', '0xwide', 1, 21000, 1);
SELECT pg_temp.err($$SELECT count(*) FROM chainwatch.address_profiles$$);
SELECT pg_temp.err($$SELECT chainwatch.rebuild_address_profiles()$$);
RESET ROLE;
SELECT address, out_count, in_count FROM chainwatch.address_profiles WHERE address IN ('0xrole', '0xwide') ORDER BY 1;
-- evictions make the profiles differ from a recomputation (history is gone); a rebuild makes them equal again
SELECT count(*) > 0 AS differ_after_evictions FROM chainwatch.verify_address_profiles();
SELECT chainwatch.rebuild_address_profiles() AS rebuilt \gset
SELECT :rebuilt = count(*) AS rebuilt_all FROM chainwatch.address_profiles;
SELECT count(*) AS differences_after_rebuild, (SELECT sum(profiles) FROM chainwatch.address_profile_counts) = (SELECT count(*) FROM chainwatch.address_profiles) AS counted
  FROM chainwatch.verify_address_profiles();
-- only the trigger's fold reads the batch being folded
SELECT pg_temp.err($$SELECT count(*) FROM chainwatch._profile_batch()$$);
-- sketches are sorted sets: the merge refuses others
SELECT chainwatch._sketch_merge('{1,5,9}', '{2,5,10}') AS merged, chainwatch._sketch_merge('{}', '{}') AS empty;
SELECT pg_temp.err($$SELECT chainwatch._sketch_merge('{5,1}', '{}')$$);
SELECT pg_temp.err($$SELECT chainwatch._sketch_merge('{1,NULL}', '{}')$$);
DROP OWNED BY cw_p_writer;
DROP ROLE cw_p_writer;
