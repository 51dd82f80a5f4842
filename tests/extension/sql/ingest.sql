-- ingest.sql: commit_batch — offsets, replay detection, the model check, dead letters, counters
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- a first batch on two partitions
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || lpad(to_hex(i), 64, '0'), 1, 21000, 1, 't', i % 2, i / 2 FROM generate_series(0, 19) i;
INSERT INTO chainwatch.dead_letters (payload, error, reason, kafka_topic, kafka_partition, kafka_offset)
VALUES ('\x00ff'::bytea, 'message is not valid JSON', 'invalid_json', 't', 1, 10);
SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0, 1], ARRAY[0, 0]::bigint[], ARRAY[10, 11]::bigint[], NULL);
COMMIT;
SELECT topic, partition, next_offset FROM chainwatch.committed_offsets('g');

-- a replayed batch is refused and nothing of it stays
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
VALUES ('0xreplay', 1, 1, 1, 't', 0, 5);
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[5]::bigint[], ARRAY[6]::bigint[], NULL)$$);
ROLLBACK;
SELECT count(*) AS replayed_rows FROM chainwatch.transactions WHERE hash = '0xreplay';

-- another consumer group keeps its own offsets
SELECT rows FROM chainwatch.commit_batch('other', 't', ARRAY[0], ARRAY[0]::bigint[], ARRAY[3]::bigint[], NULL);
SELECT consumer_group, partition, next_offset FROM chainwatch.kafka_offsets ORDER BY 1, 2;

-- a batch scored with a model that is not (or no longer) the active one is refused
CREATE TABLE m_tx AS SELECT (i * 1000)::numeric AS value, (21000 + i)::numeric AS gas, (i * 7)::numeric AS gas_price FROM generate_series(1, 300) i;
SELECT chainwatch.train_model('m', 'SELECT value, gas, gas_price FROM m_tx', n_trees => 5) AS m \gset
SELECT pg_temp.err(format($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[10]::bigint[], ARRAY[11]::bigint[], %s)$$, :m));
SELECT chainwatch.activate_model(:m) IS NOT NULL;
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[10]::bigint[], ARRAY[11]::bigint[], NULL)$$);
SELECT rows FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[10]::bigint[], ARRAY[11]::bigint[], :m);

-- bad arguments
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0, 1], ARRAY[0]::bigint[], ARRAY[1]::bigint[], NULL)$$);
SELECT pg_temp.err(format($$SELECT * FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[20]::bigint[], ARRAY[19]::bigint[], %s)$$, :m));
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch(NULL, 't', ARRAY[0], ARRAY[20]::bigint[], ARRAY[21]::bigint[], NULL)$$);

-- counters and the anomaly generation
SELECT batches, rows_ingested, anomalies_ingested, dead_letters_ingested, anomaly_generation FROM chainwatch.ingest_state;
BEGIN;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity) VALUES ('0xa', 1, 1, 1, 0.9, 'low');
SELECT anomalies, anomaly_generation FROM chainwatch.commit_batch('g', 't', ARRAY[1], ARRAY[11]::bigint[], ARRAY[12]::bigint[], :m);
COMMIT;
SELECT table_name, rows FROM chainwatch.status() ORDER BY 1;

-- a batch over many partitions (an ingestor writer owns a share of a large topic): every offset is
-- stored, in three statements whatever the count (0.6.0)
BEGIN;
SELECT rows FROM chainwatch.commit_batch('wide', 't', (SELECT array_agg(p ORDER BY p DESC) FROM generate_series(0, 299) p),
                                         array_fill(0::bigint, ARRAY[300]),
                                         (SELECT array_agg((p + 1)::bigint ORDER BY p DESC) FROM generate_series(0, 299) p), :m);
COMMIT;
SELECT count(*) AS partitions, sum(next_offset) AS offsets, min(next_offset), max(next_offset)
  FROM chainwatch.committed_offsets('wide');
-- a replay among them is refused, naming the lowest replayed partition, and nothing moves
SELECT pg_temp.err(format($$SELECT * FROM chainwatch.commit_batch('wide', 't', ARRAY[299, 7, 150, 3],
    ARRAY[300, 7, 151, 2]::bigint[], ARRAY[301, 9, 152, 5]::bigint[], %s)$$, :m));
SELECT sum(next_offset) AS offsets_unchanged FROM chainwatch.committed_offsets('wide');
-- NULL elements and a partition listed twice are bad arguments (0.6.0)
SELECT pg_temp.err(format($$SELECT * FROM chainwatch.commit_batch('wide', 't', ARRAY[0, NULL],
    ARRAY[1, 1]::bigint[], ARRAY[2, 2]::bigint[], %s)$$, :m));
SELECT pg_temp.err(format($$SELECT * FROM chainwatch.commit_batch('wide', 't', ARRAY[5, 2, 5],
    ARRAY[6, 3, 6]::bigint[], ARRAY[7, 4, 8]::bigint[], %s)$$, :m));
SELECT sum(next_offset) AS offsets_still_unchanged FROM chainwatch.committed_offsets('wide');
