-- extension/sql/functions/scoring.sql — Isolation Forest scoring in SQL (extension/src/score.c)
--
-- STABLE, not IMMUTABLE: each reads a model from chainwatch.models (through the per-backend cache).

CREATE FUNCTION @extschema@.score(value numeric, gas numeric, gas_price numeric, model_id int DEFAULT NULL)
RETURNS float8
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_score';

COMMENT ON FUNCTION @extschema@.score(numeric, numeric, numeric, int) IS
    'Anomaly score in (0,1] of a transaction (value and gas_price in wei, gas in units); higher is more anomalous (= -sklearn score_samples). NULL model_id: the active model. NULL feature: NULL.';

CREATE FUNCTION @extschema@.score_vector(features float8[], model_id int DEFAULT NULL)
RETURNS float8
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_score_vector';

COMMENT ON FUNCTION @extschema@.score_vector(float8[], int) IS
    'Anomaly score of a feature vector of the model''s width. NULL model_id: the active model.';

CREATE FUNCTION @extschema@.is_anomaly(value numeric, gas numeric, gas_price numeric, model_id int DEFAULT NULL)
RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_is_anomaly';

COMMENT ON FUNCTION @extschema@.is_anomaly(numeric, numeric, numeric, int) IS
    'score(...) > the model''s threshold (sklearn: predict == -1).';

CREATE FUNCTION @extschema@.is_anomaly(features float8[], model_id int DEFAULT NULL)
RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_is_anomaly_vector';

COMMENT ON FUNCTION @extschema@.is_anomaly(float8[], int) IS
    'score_vector(...) > the model''s threshold (sklearn: predict == -1).';

CREATE FUNCTION @extschema@.model_threshold(model_id int DEFAULT NULL)
RETURNS float8
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_model_threshold';

COMMENT ON FUNCTION @extschema@.model_threshold(int) IS 'The threshold of a model (NULL: the active model).';

CREATE FUNCTION @extschema@.score_batch(features float8[], model_id int DEFAULT NULL)
RETURNS SETOF float8
LANGUAGE c STABLE PARALLEL SAFE ROWS 1000
AS 'MODULE_PATHNAME', 'chainwatch_score_batch_matrix';

COMMENT ON FUNCTION @extschema@.score_batch(float8[], int) IS
    'Scores every row of a two-dimensional float8[][] in one call, in order.';

CREATE FUNCTION @extschema@.score_batch(value numeric[], gas numeric[], gas_price numeric[], model_id int DEFAULT NULL)
RETURNS SETOF float8
LANGUAGE c STABLE PARALLEL SAFE ROWS 1000
AS 'MODULE_PATHNAME', 'chainwatch_score_batch_wei';

COMMENT ON FUNCTION @extschema@.score_batch(numeric[], numeric[], numeric[], int) IS
    'Scores value[i], gas[i], gas_price[i] for every i in one call, in order (NULL element: NULL score).';

-- _wei_float8 exposes the conversion the scorers apply to a wei amount, for tests: integral amounts below
-- 2^64 are converted from numeric's digits directly (no text round trip) and must agree with float8(numeric).
CREATE FUNCTION @extschema@._wei_float8(amount numeric) RETURNS float8
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'chainwatch_wei_float8';

COMMENT ON FUNCTION @extschema@._wei_float8(numeric) IS
    'Internal: the float8 a wei amount becomes as a model feature (equal to float8(numeric)); errors on negative, NaN and infinite amounts.';
