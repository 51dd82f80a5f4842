-- explanations: explain(), explain_vector() and the anomalies.explanation the trigger stores
SET extra_float_digits = 0;
-- ordinary traffic: values spread over four decades, gas 21000 or a contract call, gas prices 10-60 gwei
CREATE TEMP TABLE traffic AS
SELECT (10 ^ (15 + 4 * ((i * 7919) % 1000) / 1000.0))::numeric(78,0) AS value,
       CASE WHEN i % 3 = 0 THEN 21000 ELSE 50000 + (i * 104729) % 200000 END::numeric AS gas,
       ((10 + (i * 31) % 50) * 1e9)::numeric(78,0) AS gas_price
  FROM generate_series(1, 5000) i;
SELECT chainwatch.train_model('explained', 'SELECT value, gas, gas_price FROM traffic', seed => 3) AS m \gset
-- training keeps each feature's median, the typical value explanations show
SELECT jsonb_array_length(training_summary->'feature_median') AS medians,
       (training_summary->'feature_median'->>1)::float8 BETWEEN 21000 AND 250000 AS gas_median_in_range
  FROM chainwatch.models WHERE id = :m;

-- a gas price a thousand times the usual one: gas_price isolated it most, and it says so first
SELECT e->0->>'feature' AS first, (e->0->>'share')::float8 > (e->1->>'share')::float8 AS above_the_next,
       (e->0->>'value')::float8 AS value, (e->0->>'typical')::float8 BETWEEN 1e10 AND 6e10 AS typical_is_usual,
       jsonb_array_length(e) AS features,
       abs((SELECT sum((x->>'share')::float8) FROM jsonb_array_elements(e) x) - 1) < 0.01 AS shares_add_up
  FROM chainwatch.explain(1e17, 21000, 3e13, :m) e;
-- a huge value: value first
SELECT chainwatch.explain(1e26, 21000, 2e10, :m)->0->>'feature' AS first;
-- the outlier's gas price earns more bits than an ordinary gas price, and its whole path more
CREATE FUNCTION pg_temp.bits(e jsonb, feature text) RETURNS float8 LANGUAGE sql AS $$
SELECT sum((x->>'bits')::float8) FROM jsonb_array_elements(e) x WHERE feature IS NULL OR x->>'feature' = feature $$;
SELECT pg_temp.bits(chainwatch.explain(1e17, 21000, 3e13, :m), 'gas_price')
     > pg_temp.bits(chainwatch.explain(1e17, 21000, 3e10, :m), 'gas_price') AS feature_isolated_more,
       pg_temp.bits(chainwatch.explain(1e17, 21000, 3e13, :m), NULL)
     > pg_temp.bits(chainwatch.explain(1e17, 21000, 3e10, :m), NULL) AS row_isolated_more;
-- the vector form agrees with the numeric one
SELECT chainwatch.explain_vector(ARRAY[1e17, 21000, 3e13]::float8[], :m) = chainwatch.explain(1e17, 21000, 3e13, :m) AS same;
-- the active model when none is named; NULL in, NULL out
SELECT chainwatch.activate_model(:m) = :m AS activated;
SELECT chainwatch.explain(1e17, 21000, 3e13) = chainwatch.explain(1e17, 21000, 3e13, :m) AS active_by_default;
SELECT chainwatch.explain(NULL, 21000, 3e13) IS NULL AS null_feature;
-- bad arguments: a proper SQLSTATE
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT pg_temp.err($$SELECT chainwatch.explain_vector(ARRAY[1, 2]::float8[])$$);
SELECT pg_temp.err($$SELECT chainwatch.explain(-1, 21000, 3e13)$$);
SELECT pg_temp.err($$SELECT chainwatch.explain(1, 21000, 3e13, 999999)$$);

-- every anomaly the trigger sees with its model gets its explanation, also in the document
BEGIN;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, model_id)
VALUES ('0xspike', 1e17, 21000, 3e13, 0.8, 'high', :m),
       ('0xgiven', 1e17, 21000, 3e13, 0.8, 'high', :m),
       ('0xnomodel', 1e17, 21000, 3e13, 0.8, 'high', NULL),
       ('0xgone', 1e17, 21000, 3e13, 0.8, 'high', 999999);
UPDATE chainwatch.anomalies SET explanation = '[{"feature": "own"}]' WHERE hash = '0xgiven';
SELECT hash, explanation->0->>'feature' AS first,
       CASE WHEN model_id = :m THEN explanation = chainwatch.explain(value, gas, gas_price, model_id) END AS same_as_explain,
       document::jsonb->'explanation' = explanation AS in_document
  FROM chainwatch.anomalies WHERE hash IN ('0xspike', '0xgiven', '0xnomodel', '0xgone') ORDER BY hash;
-- a three-feature model without names (a float8[] source, an sklearn import) is the one the ingestor scores on
-- (value, gas, gas_price), so the trigger explains it on them; one whose features have other names is not
SELECT chainwatch.train_model('vectors', 'SELECT ARRAY[value, gas, gas_price]::float8[] AS f FROM traffic') AS v \gset
SELECT chainwatch.import_model('renamed', jsonb_set(chainwatch.export_model(:v), '{feature_names}',
                                                    '["age", "rate", "fan_in"]')) AS r \gset
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, model_id)
VALUES ('0xvector', 1e17, 21000, 3e13, 0.8, 'high', :v), ('0xrenamed', 1e17, 21000, 3e13, 0.8, 'high', :r)
RETURNING hash, explanation->0->>'feature' AS first, explanation->0 ? 'typical' AS typical;
-- the TTL view shows it
SELECT count(*) AS explained_in_view FROM chainwatch.recent_anomalies WHERE hash = '0xspike' AND explanation IS NOT NULL;
-- a model the trigger could not load is remembered as such (not read again for every row) only until the
-- models table changes: an anomaly naming a model id not inserted yet has no explanation, one naming it
-- after the model arrived has one
SELECT (SELECT last_value FROM chainwatch.models_id_seq) + 1 AS next_id \gset
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, model_id)
VALUES ('0xearly', 1e17, 21000, 3e13, 0.8, 'high', :next_id), ('0xearly2', 1e17, 21000, 3e13, 0.8, 'high', :next_id)
RETURNING hash, explanation IS NULL AS unexplained;
SELECT chainwatch.import_model('late', chainwatch.export_model(:m)) = :next_id AS late_has_that_id;
INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, model_id)
VALUES ('0xlate', 1e17, 21000, 3e13, 0.8, 'high', :next_id)
RETURNING hash, explanation = chainwatch.explain(value, gas, gas_price, model_id) AS explained;
ROLLBACK;

-- the functions: stable (they read a model), parallel safe, not strict (NULL model_id)
SELECT proname, provolatile, proparallel, proisstrict FROM pg_proc
 WHERE pronamespace = 'chainwatch'::regnamespace AND proname IN ('explain', 'explain_vector') ORDER BY proname;
