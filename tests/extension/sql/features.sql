-- features.sql: the behaviour/1 feature vector — cold start, history, out-of-order and skewed clocks, messages,
-- features() against replay_features(), models over the features, automatic training, explanations
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
SET timezone = 'UTC';
SET extra_float_digits = 0;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- f: the features as (name, value) rows, rounded for reading
CREATE FUNCTION pg_temp.f(x float8[]) RETURNS TABLE (feature text, value numeric) LANGUAGE sql AS $$
    SELECT n, round(v::numeric, 6) FROM unnest(chainwatch.feature_names(), x) AS u(n, v) $$;

SELECT chainwatch.feature_names();

-- cold start: no history at all. The amounts on log scales, age 0, a first outgoing gap of one day, no
-- difference from a history there is not, nothing recent, a new recipient nobody has paid
SELECT * FROM pg_temp.f(chainwatch.features('0xa', '0xb', 1000000000000000000, 21000, 20000000000));
-- a contract creation has no recipient: no recipient features
SELECT feature, value FROM pg_temp.f(chainwatch.features('0xa', NULL, 0, 1000000, 20000000000))
 WHERE feature IN ('contract_creation', 'recipient_new', 'recipient_fan_in', 'recipient_age');

-- history: 0xa paid 0xb ten times, a minute apart, about 1 ETH at about 20 gwei, then a 100 ETH transfer to a
-- stranger at 200 gwei one minute later. features() is computed before each insert (the trigger folds the
-- profiles at the end of each statement), all in one transaction: the detected_at of every row is now()
CREATE TABLE f_tx (i int, hash text, from_address text, to_address text, value numeric, gas numeric,
                   gas_price numeric, tx_time timestamptz, kafka_offset bigint, features float8[]);
CREATE FUNCTION pg_temp.feed(rows int, t0 timestamptz, spacing interval) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce((SELECT max(i) FROM f_tx), 0);
    r record;
BEGIN
    FOR k IN 1 .. rows LOOP
        SELECT n + k AS i, '0x' || lpad(to_hex(n + k), 64, '0') AS hash,
               CASE WHEN k % 4 = 0 THEN '0xc' ELSE '0xa' END AS from_address,
               CASE WHEN k = rows THEN '0xstranger' WHEN k % 3 = 0 THEN '0xd' ELSE '0xb' END AS to_address,
               CASE WHEN k = rows THEN 100000000000000000000 ELSE 1000000000000000000 + k * 10000000000000000 END AS value,
               21000::numeric AS gas,
               CASE WHEN k = rows THEN 200000000000 ELSE 20000000000 + k * 100000000 END AS gas_price,
               t0 + k * spacing AS tx_time
          INTO r;
        INSERT INTO f_tx VALUES (r.i, r.hash, r.from_address, r.to_address, r.value, r.gas, r.gas_price, r.tx_time,
                                 r.i, chainwatch.features(r.from_address, r.to_address, r.value, r.gas, r.gas_price, r.tx_time));
        INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, tx_time,
                                             kafka_topic, kafka_partition, kafka_offset, features)
        SELECT hash, from_address, to_address, value, gas, gas_price, tx_time, 'f', 0, kafka_offset, features
          FROM f_tx WHERE f_tx.i = r.i;
    END LOOP;
END $$;
BEGIN;
-- (whole hours: the 300-second activity buckets fall the same way at any time of day)
SELECT pg_temp.feed(12, date_trunc('hour', now()) - interval '2 hours', interval '1 minute');
SELECT i, from_address, to_address, (SELECT string_agg(feature || '=' || value, ' ') FROM pg_temp.f(features)
                                      WHERE feature IN ('sender_gap', 'sender_recent', 'recipient_new', 'recipient_fan_in')) AS behaviour
  FROM f_tx ORDER BY i;
-- the last one: 100x its sender's usual value, ten times its gas price, to a stranger
SELECT * FROM pg_temp.f((SELECT features FROM f_tx WHERE i = 12));
COMMIT;

-- clock skew and out-of-order blocks: a tx_time in the future counts at detected_at (a producer's clock
-- running ahead cannot move history forward), an old one does not make an account younger than 0
BEGIN;
SELECT pg_temp.feed(4, now() + interval '1 day', interval '1 hour');
SELECT i, tx_time > now() AS in_the_future,
       abs((SELECT value FROM pg_temp.f(features) WHERE feature = 'sender_age')
           - ln(1 + extract(epoch FROM now() - (SELECT min(tx_time) FROM f_tx WHERE from_address = '0xa')))::numeric) < 1e-5
         AS age_counted_to_detected_at
  FROM f_tx WHERE i > 12 AND from_address = '0xa' ORDER BY i;
SELECT pg_temp.feed(4, now() - interval '3 hours', interval '1 minute');
SELECT i, (SELECT value FROM pg_temp.f(features) WHERE feature = 'sender_age') >= 0 AS age_not_negative,
       (SELECT value FROM pg_temp.f(features) WHERE feature = 'sender_gap') > 0 AS gap_to_nearest
  FROM f_tx WHERE i > 16 AND from_address = '0xa' ORDER BY i;
COMMIT;

-- a replayed batch (CW002) rolls back: the features of the next transaction are those before it, as if it never came
CREATE TEMP TABLE f_before AS
SELECT chainwatch.features('0xa', '0xb', 1000000000000000000, 21000, 20000000000, timestamptz '2024-01-01 00:00:00+00') AS x;
SELECT * FROM chainwatch.commit_batch('g', 'rt', ARRAY[0], ARRAY[0]::bigint[], ARRAY[10]::bigint[], NULL) \gset
BEGIN;
INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, tx_time, kafka_topic, kafka_partition, kafka_offset)
VALUES ('0xreplayed', '0xa', '0xb', 500000000000000000000, 21000, 20000000000, now() - interval '2 minutes', 'rt', 0, 5);
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 'rt', ARRAY[0], ARRAY[5]::bigint[], ARRAY[6]::bigint[], NULL)$$);
ROLLBACK;
SELECT chainwatch.features('0xa', '0xb', 1000000000000000000, 21000, 20000000000, timestamptz '2024-01-01 00:00:00+00')
       = (SELECT x FROM f_before) AS unchanged_by_the_replay;

-- replay_features() recomputes every stored row's features from an empty history, bit for bit what
-- features() gave against the profiles at the time
SELECT count(*) AS rows, count(*) FILTER (WHERE r.features = f.features) AS identical
  FROM chainwatch.replay_features('SELECT * FROM chainwatch.transactions ORDER BY kafka_offset') r
  JOIN f_tx f USING (hash);
-- the stored vectors are the ones given
SELECT count(*) FILTER (WHERE t.features = f.features) AS stored_identical FROM chainwatch.transactions t JOIN f_tx f USING (hash);

-- the rows of one message (one Kafka offset) see the history before the message: the second transfer of
-- a message still finds the recipient new and the sender idle
SELECT hash, (SELECT string_agg(feature || '=' || value, ' ') FROM pg_temp.f(features)
               WHERE feature IN ('sender_recent', 'recipient_new')) AS behaviour
  FROM chainwatch.replay_features($$
    SELECT * FROM (VALUES ('0x01', '0xm', '0xn', 1::numeric, 21000::numeric, 1::numeric, now(), now(), 't', 0, 7::bigint),
                          ('0x02', '0xm', '0xn', 1, 21000, 1, now(), now(), 't', 0, 7),
                          ('0x03', '0xm', '0xn', 1, 21000, 1, now(), now(), 't', 0, 8))
           AS v(hash, from_address, to_address, value, gas, gas_price, tx_time, detected_at, kafka_topic,
                kafka_partition, kafka_offset) $$);

-- bad arguments
SELECT pg_temp.err($$SELECT chainwatch.features('0xa', '0xb', NULL, 21000, 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.features('0xa', '0xb', -1, 21000, 1)$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.replay_features('SELECT hash FROM chainwatch.transactions')$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.replay_features('DELETE FROM chainwatch.transactions')$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.replay_features('SELECT * FROM nowhere')$$);

-- models over the features: named by the set, trained on the stored vectors with the identity transform
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT features FROM chainwatch.transactions', feature_set => 'mine/1')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT features FROM chainwatch.transactions', feature_set => 'behaviour/1')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM chainwatch.transactions',
                                                    transform => 'identity', feature_set => 'behaviour/1')$$);
SELECT chainwatch.train_model('behaviour', 'SELECT features FROM chainwatch.transactions', n_trees => 50,
                              sample_size => 16, transform => 'identity', feature_set => 'behaviour/1') AS bm \gset
SELECT chainwatch.train_model('raw', 'SELECT value, gas, gas_price FROM chainwatch.transactions', n_trees => 10) AS rm \gset
SELECT chainwatch.train_model('vectors', 'SELECT features FROM chainwatch.transactions', n_trees => 10, transform => 'identity') AS vm \gset
SELECT id = :bm AS behaviour, id = :rm AS raw, feature_set, n_features, feature_names = chainwatch.feature_names() AS named
  FROM chainwatch.models ORDER BY id;
-- a model may take some of the features, in its own order: it scores and explains the full stored vector
SELECT chainwatch.train_model('some', 'SELECT features FROM chainwatch.transactions', n_trees => 20, sample_size => 16,
                              transform => 'identity', feature_set => 'behaviour/1',
                              feature_names => ARRAY['sender_value_up', 'gas_price_up', 'log_gas_price']) AS sm \gset
SELECT feature_set, n_features, feature_names FROM chainwatch.models WHERE id = :sm;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE chainwatch.score_vector(features, :sm)
                              = chainwatch.score_vector(ARRAY[features[7], features[12], features[3]], :sm)) AS same_score,
       count(*) FILTER (WHERE chainwatch.explain_vector(features, :sm)
                              = chainwatch.explain_vector(ARRAY[features[7], features[12], features[3]], :sm)) AS same_explanation
  FROM f_tx;
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT features FROM chainwatch.transactions', transform => 'identity',
                                                    feature_set => 'behaviour/1', feature_names => '{sender_value_up,nope}')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT features FROM chainwatch.transactions', transform => 'identity',
                                                    feature_set => 'behaviour/1', feature_names => '{log_gas,log_gas}')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT features FROM chainwatch.transactions', transform => 'identity',
                                                    feature_names => '{log_gas}')$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector(ARRAY[1, 2]::float8[], $$ || :sm || ')');
-- the stranger transfer is the most isolated row under the behaviour model
SELECT f.i AS most_isolated FROM f_tx f ORDER BY chainwatch.score_vector(f.features, :bm) DESC, f.i LIMIT 1;
-- an anomaly of the behaviour model is explained from its features: the features named, with their values
INSERT INTO chainwatch.anomalies (hash, from_address, to_address, value, gas, gas_price, score, severity, model_id, features)
SELECT hash, from_address, to_address, value, gas, gas_price, 0.7, 'high', :bm, features FROM f_tx WHERE i = 12;
SELECT jsonb_array_length(explanation) AS explained_features,
       (SELECT bool_and(e->>'feature' = ANY (chainwatch.feature_names())) FROM jsonb_array_elements(explanation) e) AS named,
       (SELECT (e->>'value')::float8 = (SELECT features[9] FROM f_tx WHERE i = 12) FROM jsonb_array_elements(explanation) e
         WHERE e->>'feature' = 'recipient_new') AS value_is_the_rows,
       document::jsonb -> 'explanation' = explanation AS in_document
  FROM chainwatch.anomalies;
SELECT features IS NOT NULL AS features_shown, explanation IS NOT NULL AS explanation_shown FROM chainwatch.recent_anomalies;

-- automatic training uses chainwatch.feature_set (default behaviour/1) and counts only rows with features
SHOW chainwatch.feature_set;
SELECT pg_temp.err($$SET chainwatch.feature_set = 'mine/1'$$);
DELETE FROM chainwatch.models;
SET chainwatch.auto_train_min_rows = 30;
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0xnf' || i, 1000, 21000, 1, 'f', 0, 100 + i FROM generate_series(1, 40) i;
SELECT rows FROM chainwatch.commit_batch('auto', 'f', '{0}', '{0}', '{141}', NULL);
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models_without_features FROM chainwatch.models;
BEGIN;
SELECT pg_temp.feed(12, now() - interval '30 minutes', interval '10 seconds');
SELECT rows FROM chainwatch.commit_batch('auto', 'f', '{0}', '{141}', '{142}', NULL);
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT feature_set, transform, training_rows, is_active, array_to_string(feature_names, ',') = current_setting('chainwatch.model_features') AS default_features
  FROM chainwatch.models;
SELECT pg_temp.err($$SET chainwatch.model_features = 'log_gas,nope'$$);
