-- bench/api/load_store.sql — fills a fresh chainwatch store the way the ingestor would, for the API benchmark
--
-- psql -v n_tx=100000 -v n_anom=10000 -f load_store.sql. Two ingest transactions, each closed by
-- chainwatch.commit_batch() (row counts, bounds, offsets, anomaly generation + NOTIFY):
--   1. n_tx transactions (deterministic pseudo-random amounts), unscored; then a model is trained
--      on them and activated;
--   2. n_anom anomalies: the n_anom highest-scoring transactions with their severity.
-- detected_at values are spread over the next n microseconds so lists have a real order.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

BEGIN;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, block_number,
                                     tx_time, kafka_topic, kafka_partition, kafka_offset, detected_at)
SELECT '0x' || encode(sha256(('tx' || i)::bytea), 'hex'),
       '0x' || substr(encode(sha256(('from' || (i % 5000))::bytea), 'hex'), 1, 40),
       '0x' || substr(encode(sha256(('to' || (i % 7919))::bytea), 'hex'), 1, 40),
       CASE WHEN i % 1000 = 0 THEN (i::numeric * 1e18)
            ELSE round(exp(38 + sin(i) + sin(i * 2.3) + sin(i * 5.1)))::numeric END,
       (21000 + 1000 * ((i * 7) % 13))::numeric,
       CASE WHEN i % 997 = 0 THEN 5000e9::numeric
            ELSE round((20 + 4 * (sin(i * 1.7) + sin(i * 3.1))) * 1e9)::numeric END,
       18000000 + i / 100, now() - interval '1 minute', 'bench', 0, i, now() + i * interval '1 microsecond'
  FROM generate_series(1, :n_tx) i;
SELECT rows, anomalies FROM chainwatch.commit_batch('api-bench', 'bench', ARRAY[0], ARRAY[1::bigint],
                                                     ARRAY[(:n_tx + 1)::bigint], NULL);
COMMIT;

SELECT chainwatch.activate_model(chainwatch.train_model('bench', 'SELECT value, gas, gas_price FROM chainwatch.transactions',
                                                        n_trees => 100, seed => 7)) AS model_id \gset

BEGIN;
INSERT INTO chainwatch.anomalies (hash, from_address, to_address, value, gas, gas_price, block_number, tx_time,
                                  detected_at, score, severity, model_id, kafka_topic, kafka_partition, kafka_offset)
SELECT t.hash, t.from_address, t.to_address, t.value, t.gas, t.gas_price, t.block_number, t.tx_time,
       now() + (row_number() OVER (ORDER BY t.kafka_offset)) * interval '1 microsecond',
       t.s, chainwatch.severity(t.s, t.value, t.gas_price), :model_id, t.kafka_topic, t.kafka_partition, t.kafka_offset
  FROM (SELECT x.*, chainwatch.score(x.value, x.gas, x.gas_price, :model_id) AS s FROM chainwatch.transactions x) t
 ORDER BY t.s DESC LIMIT :n_anom;
SELECT rows, anomalies, anomaly_generation FROM chainwatch.commit_batch('api-bench', 'bench', ARRAY[1], ARRAY[0::bigint],
                                                                        ARRAY[1::bigint], :model_id);
COMMIT;
