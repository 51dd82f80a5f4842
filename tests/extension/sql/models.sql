-- models.sql: training determinism, the registry, activation, rollback, drop, import/export
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE TABLE train_tx AS
SELECT (i::numeric * 7919 % 1000003) * 1000000000000 AS value,
       (21000 + (i * 104729) % 200000)::numeric AS gas,
       ((i * 31337) % 90 + 10)::numeric * 1000000000 AS gas_price
FROM generate_series(1, 5000) i;

-- same seed, same forest; another seed, another forest
SELECT chainwatch.train_model('a', 'SELECT value, gas, gas_price FROM train_tx', seed => 7) AS a \gset
SELECT chainwatch.train_model('b', 'SELECT value, gas, gas_price FROM train_tx', seed => 7) AS b \gset
SELECT chainwatch.train_model('c', 'SELECT value, gas, gas_price FROM train_tx', seed => 8) AS c \gset
SELECT (SELECT forest FROM chainwatch.models WHERE id = :a) = (SELECT forest FROM chainwatch.models WHERE id = :b) AS same_seed_same_forest,
       (SELECT forest FROM chainwatch.models WHERE id = :a) = (SELECT forest FROM chainwatch.models WHERE id = :c) AS other_seed_same_forest;

-- the registry row describes the forest
SELECT name, algorithm, source, n_features, feature_names, transform, n_trees, sample_size,
       contamination, seed, training_rows, is_active, format_version,
       threshold > 0 AND threshold < 1 AS threshold_in_range,
       (training_summary->>'n')::int AS summary_rows,
       (training_summary->>'p99')::float8 = threshold AS p99_is_threshold
FROM chainwatch.models WHERE id = :a;

-- the threshold flags about contamination of the training rows
SELECT abs(avg((chainwatch.score(value, gas, gas_price, :a) > chainwatch.model_threshold(:a))::int) - 0.01) < 0.005 AS flagged_share_near_contamination
FROM train_tx;

-- float8[] sources of any fixed width, identity transform
SELECT chainwatch.train_model('vec', $$SELECT ARRAY[i % 17, i % 5, sin(i), cos(i)]::float8[] FROM generate_series(1, 2000) i$$,
                              n_trees => 20, sample_size => 64, contamination => 0.05, transform => 'identity') AS vec \gset
SELECT n_features, feature_names IS NULL AS unnamed, transform, n_trees, sample_size FROM chainwatch.models WHERE id = :vec;

-- activation, history, rollback
SELECT chainwatch.active_model_id() IS NULL AS none_active;
SELECT chainwatch.activate_model(:a) = :a AS activated_a;
SELECT chainwatch.activate_model(:c) = :c AS activated_c;
SELECT chainwatch.activate_model(:vec) = :vec AS activated_vec;
SELECT count(*) AS active_models FROM chainwatch.models WHERE is_active;
SELECT chainwatch.rollback_model() = :c AS rolled_back_to_c;
SELECT chainwatch.rollback_model() = :a AS rolled_back_to_a;
SELECT reason, model_id = :a AS is_a FROM chainwatch.model_activations ORDER BY id DESC LIMIT 1;

-- scoring without a model id follows activation within the session
SELECT chainwatch.score(1000000000000000000, 21000, 20000000000) = chainwatch.score(1000000000000000000, 21000, 20000000000, :a) AS active_is_a;
SELECT chainwatch.activate_model(:c) IS NOT NULL;
SELECT chainwatch.score(1000000000000000000, 21000, 20000000000) = chainwatch.score(1000000000000000000, 21000, 20000000000, :c) AS active_is_c;

-- export and re-import score identically, bit for bit
SELECT chainwatch.import_model('a-copy', chainwatch.export_model(:a)) AS acopy \gset
SELECT count(*) AS differing_scores FROM train_tx
WHERE chainwatch.score(value, gas, gas_price, :a) <> chainwatch.score(value, gas, gas_price, :acopy);
SELECT source, contamination IS NULL AS no_contamination, threshold = (SELECT threshold FROM chainwatch.models WHERE id = :a) AS same_threshold
FROM chainwatch.models WHERE id = :acopy;
SELECT chainwatch.export_model(:a)->>'format' AS format,
       jsonb_array_length(chainwatch.export_model(:a)->'trees') AS trees,
       chainwatch.export_model(:a)->'feature_names' AS feature_names;

-- drop: inactive models only
SELECT chainwatch.drop_model(:b);
SELECT count(*) AS remaining FROM chainwatch.models WHERE id = :b;
