-- errors.sql: every bad input gets an error with a specific SQLSTATE, never a crash
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- no model yet
SELECT pg_temp.err('SELECT chainwatch.score(1, 21000, 1)');
SELECT pg_temp.err('SELECT chainwatch.score(1, 21000, 1, 999)');
SELECT pg_temp.err('SELECT chainwatch.activate_model(999)');
SELECT pg_temp.err('SELECT chainwatch.rollback_model()');
SELECT pg_temp.err('SELECT chainwatch.export_model(999)');

CREATE TABLE e_tx AS SELECT (i * 1000)::numeric AS value, (21000 + i)::numeric AS gas, (i * 7)::numeric AS gas_price FROM generate_series(1, 500) i;
SELECT chainwatch.train_model('e', 'SELECT value, gas, gas_price FROM e_tx', n_trees => 10) AS m \gset
SELECT chainwatch.activate_model(:m) IS NOT NULL;

-- bad amounts
SELECT pg_temp.err('SELECT chainwatch.score(-1, 21000, 1)');
SELECT pg_temp.err($$SELECT chainwatch.score('NaN', 21000, 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.score('Infinity', 21000, 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector('{1, 2}')$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector('{1, 2, NaN}')$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector('{1, 2, -3}')$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector('{1, 2, NULL}')$$);
SELECT pg_temp.err($$SELECT chainwatch.score_vector('{{1, 2, 3}}')$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.score_batch('{1, 2, 3}'::float8[])$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.score_batch('{{1, 2}}'::float8[])$$);
SELECT pg_temp.err($$SELECT * FROM chainwatch.score_batch('{1, 2}'::numeric[], '{1}', '{1}')$$);

-- bad training arguments
SELECT pg_temp.err($$SELECT chainwatch.train_model('', 'SELECT value, gas, gas_price FROM e_tx')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx', n_trees => 0)$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx', sample_size => 1)$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx', contamination => 0)$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx', contamination => 0.6)$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx', transform => 'sqrt')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas FROM e_tx')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, ''a''::text FROM e_tx')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT -value, gas, gas_price FROM e_tx')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM e_tx WHERE false')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'DELETE FROM e_tx')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', 'SELEC nonsense')$$);
SELECT pg_temp.err($$SELECT chainwatch.train_model('x', $q$SELECT CASE WHEN i < 5 THEN '{1,2}'::float8[] ELSE '{1,2,3}' END FROM generate_series(1, 10) i$q$)$$);
SELECT count(*) AS no_partial_models FROM chainwatch.models WHERE name = 'x';

-- malformed, truncated and foreign models
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '[]')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/9"}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "something-else"}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 3, "max_samples": 4, "threshold": 0.5, "trees": []}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": 0.5, "trees": [{"children_left": [1, -1, -1], "children_right": [2, -1, -1], "feature": [5, -2, -2], "threshold": [0.5, -2, -2], "n_node_samples": [4, 2, 2]}]}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": 0.5, "trees": [{"children_left": [1, -1, 1], "children_right": [2, -1, 2], "feature": [0, -2, 0], "threshold": [0.5, -2, 1], "n_node_samples": [4, 2, 2]}]}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": 0.5, "trees": [{"children_left": [1, -1], "children_right": [2, -1], "feature": [0, -2], "threshold": [0.5, -2], "n_node_samples": [4, 2]}]}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": "high", "trees": [{"children_left": [-1], "children_right": [-1], "feature": [-2], "threshold": [-2], "n_node_samples": [4]}]}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('j', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": 0.5, "transform": "cube", "trees": [{"children_left": [-1], "children_right": [-1], "feature": [-2], "threshold": [-2], "n_node_samples": [4]}]}')$$);
SELECT pg_temp.err($$SELECT chainwatch.import_model('ok', '{"format": "chainwatch-iforest/1", "n_features": 1, "max_samples": 4, "threshold": 0.5, "trees": [{"children_left": [-1], "children_right": [-1], "feature": [-2], "threshold": [-2], "n_node_samples": [4]}]}')$$);

-- a corrupted stored model is detected by its checksum and fails cleanly
SELECT chainwatch.import_model('victim', chainwatch.export_model(:m)) AS victim \gset
UPDATE chainwatch.models SET forest = overlay(forest placing '\xff'::bytea from 100 for 1) WHERE id = :victim;
SELECT pg_temp.err(format('SELECT chainwatch.score(1, 21000, 1, %s)', :victim));
UPDATE chainwatch.models SET forest = substring(forest from 1 for 30) WHERE id = :victim;
SELECT pg_temp.err(format('SELECT chainwatch.score(1, 21000, 1, %s)', :victim));
UPDATE chainwatch.models SET forest = '\x' WHERE id = :victim;
SELECT pg_temp.err(format('SELECT chainwatch.export_model(%s)', :victim));

-- activation rules
SELECT pg_temp.err(format('SELECT chainwatch.drop_model(%s)', :m));
SELECT pg_temp.err('SELECT chainwatch.drop_model(999)');
SELECT pg_temp.err(format($$SELECT chainwatch.activate_model(%s, 'whim')$$, :m));
-- the unique index keeps a second active model out even past the functions
SELECT pg_temp.err(format('UPDATE chainwatch.models SET is_active = true WHERE id = %s', :victim));
