-- extension/sql/functions/explain.sql — explanations: which features made a score (extension/src/explain.c)
--
-- An explanation is a jsonb array, one object per feature, the most isolating first:
--   {"feature": name, "bits": isolation credit, "share": of the row's total, "value": the row's, "typical": the
--    training sample's median}
-- (docs/detection.md says how to read one). STABLE and PARALLEL SAFE like the scorers: they read a model.

CREATE FUNCTION @extschema@.explain(value numeric, gas numeric, gas_price numeric, model_id int DEFAULT NULL)
RETURNS jsonb
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_explain';

COMMENT ON FUNCTION @extschema@.explain(numeric, numeric, numeric, int) IS
    'Why score(value, gas, gas_price, model_id) is what it is: each feature''s isolation credit, share, value and typical value, most isolating first. NULL model_id: the active model. NULL feature: NULL.';

CREATE FUNCTION @extschema@.explain_vector(features float8[], model_id int DEFAULT NULL)
RETURNS jsonb
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_explain_vector';

COMMENT ON FUNCTION @extschema@.explain_vector(float8[], int) IS
    'explain() for a feature vector of the model''s width. NULL model_id: the active model.';
