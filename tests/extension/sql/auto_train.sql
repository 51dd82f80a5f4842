-- auto_train.sql: maintain() trains and activates a first model once transactions holds
-- chainwatch.auto_train_min_rows rows, but never in a run that dropped a partition or evicted rows (0.5.0):
-- training there would keep ingest waiting behind the run's locks for as long as it takes
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
SET chainwatch.auto_train_min_rows = 1000;
-- these rows are inserted without features (the ingestor computes them): models over value, gas and gas
-- price; features.sql covers automatic training on behaviour/1
SET chainwatch.feature_set = 'transaction/1';

-- below the minimum: no model (rows are counted by commit_batch in the inserting transaction)
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || md5('a' || i), i * 1000, 21000 + i % 7, 1000000000 + i, 't', 0, i FROM generate_series(0, 499) i;
SELECT rows FROM chainwatch.commit_batch('auto', 't', '{0}', '{0}', '{500}', NULL);
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models FROM chainwatch.models;

-- enough rows now, and an expired partition for the next run to drop: that run does not train
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || md5('b' || i), i * 1000, 21000 + i % 7, 1000000000 + i, 't', 0, 500 + i FROM generate_series(0, 999) i;
SELECT rows FROM chainwatch.commit_batch('auto', 't', '{0}', '{500}', '{1500}', NULL);
COMMIT;
SELECT chainwatch._create_partition('transactions', now() - interval '3 days', now() - interval '2 days') IS NOT NULL AS expired_made;
SELECT table_name, partitions_dropped FROM chainwatch.maintain() WHERE partitions_dropped > 0;
SELECT count(*) AS models_after_dropping_run FROM chainwatch.models;

-- a run that drops nothing trains and activates a first model from the 1,500 rows (should a run meet a
-- partition boundary and drop an empty past partition, it must not train, and the next one does)
DO $$
DECLARE
    changed bigint;
BEGIN
    FOR i IN 1 .. 3 LOOP
        SELECT sum(partitions_dropped) + sum(rows_evicted) INTO changed FROM chainwatch.maintain();
        IF EXISTS (SELECT 1 FROM chainwatch.models) THEN
            IF changed > 0 THEN
                RAISE EXCEPTION 'a maintenance run that dropped or evicted also trained';
            END IF;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'no model after three maintenance runs';
END
$$;
SELECT count(*) AS models, bool_and(is_active) AS active, min(training_rows) AS training_rows FROM chainwatch.models;

-- with a model active, later runs do not train again (no retrain_interval)
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models FROM chainwatch.models;

-- history grows: once the stored transactions reach chainwatch.retrain_growth (2) times the model's 1,500
-- training rows, a run retrains on everything stored and activates the candidate, whose checks pass
SHOW chainwatch.retrain_growth;
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || md5('c' || i), i * 1000, 21000 + i % 7, 1000000000 + i, 't', 0, 1500 + i FROM generate_series(0, 1399) i;
SELECT rows FROM chainwatch.commit_batch('auto', 't', '{0}', '{1500}', '{2900}', (SELECT id FROM chainwatch.models WHERE is_active));
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models_below_twice FROM chainwatch.models;
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || md5('d' || i), i * 1000, 21000 + i % 7, 1000000000 + i, 't', 0, 2900 + i FROM generate_series(0, 99) i;
SELECT rows FROM chainwatch.commit_batch('auto', 't', '{0}', '{2900}', '{3000}', (SELECT id FROM chainwatch.models WHERE is_active));
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT name LIKE 'retrain %' AS retrained, training_rows, is_active FROM chainwatch.models ORDER BY id;
SELECT reason FROM chainwatch.model_activations ORDER BY activated_at DESC, id DESC LIMIT 1;

-- 0 turns growth off; a growth that would retrain on nearly every run is refused
SET chainwatch.retrain_growth = 1.05;
SET chainwatch.retrain_growth = 0;
BEGIN;
INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, kafka_partition, kafka_offset)
SELECT '0x' || md5('e' || i), i * 1000, 21000 + i % 7, 1000000000 + i, 't', 0, 3000 + i FROM generate_series(0, 2999) i;
SELECT rows FROM chainwatch.commit_batch('auto', 't', '{0}', '{3000}', '{6000}', (SELECT id FROM chainwatch.models WHERE is_active));
COMMIT;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models_with_growth_off FROM chainwatch.models;
RESET chainwatch.retrain_growth;
SELECT count(*) AS runs FROM chainwatch.maintain();
SELECT count(*) AS models_at_twice_again, max(training_rows) AS newest_training_rows FROM chainwatch.models;
