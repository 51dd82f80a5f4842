-- extension/sql/chainwatch--0.1.0.sql — chainwatch 0.1.0: model registry, Isolation Forest scoring, severity rules
--
-- Released scripts are immutable: later changes go into chainwatch--0.1.0--X.sql upgrade scripts.

\echo Use "CREATE EXTENSION chainwatch" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Models
-- ---------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.models (
    id               serial PRIMARY KEY,
    name             text        NOT NULL CHECK (name <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL DEFAULT current_user,
    algorithm        text        NOT NULL DEFAULT 'isolation_forest'
                                 CHECK (algorithm = 'isolation_forest'),
    source           text        NOT NULL CHECK (source IN ('trained', 'imported')),
    n_features       int         NOT NULL CHECK (n_features > 0),
    feature_names    text[],
    transform        text        NOT NULL CHECK (transform IN ('identity', 'log1p')),
    n_trees          int         NOT NULL CHECK (n_trees > 0),
    sample_size      int         NOT NULL CHECK (sample_size > 0),
    contamination    float8,
    threshold        float8      NOT NULL,
    seed             bigint,
    training_rows    bigint,
    training_summary jsonb,
    is_active        boolean     NOT NULL DEFAULT false,
    format_version   int         NOT NULL,
    checksum         bigint      NOT NULL,
    forest           bytea       NOT NULL
);
COMMENT ON TABLE @extschema@.models IS
    'Isolation Forest models: parameters, threshold, training summary and the serialized forest (CRC-32C checksum). At most one is active.';
COMMENT ON COLUMN @extschema@.models.threshold IS
    'Score above which a transaction is an anomaly: the (1 - contamination) quantile of the training scores (sklearn: -offset_).';
COMMENT ON COLUMN @extschema@.models.forest IS
    'The forest in chainwatch binary format (version format_version), read by the extension and the ingestor.';
COMMENT ON COLUMN @extschema@.models.sample_size IS
    'Rows each tree was built from (sklearn max_samples_).';

CREATE UNIQUE INDEX models_one_active ON @extschema@.models ((true)) WHERE is_active;
COMMENT ON INDEX @extschema@.models_one_active IS 'Guarantees at most one active model.';

CREATE TABLE @extschema@.model_activations (
    id                bigserial PRIMARY KEY,
    model_id          int         NOT NULL,
    previous_model_id int,
    activated_at      timestamptz NOT NULL DEFAULT now(),
    activated_by      text        NOT NULL DEFAULT current_user,
    reason            text        NOT NULL CHECK (reason IN ('activate', 'rollback', 'auto_train'))
);
COMMENT ON TABLE @extschema@.model_activations IS
    'Activation history: each row names the model activated and the one it replaced, so rollback_model() can walk back.';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.models', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.models_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_activations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_activations_id_seq', '');

-- Every change to models invalidates the per-backend model caches (see model_cache.c).
CREATE FUNCTION @extschema@.models_invalidate() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'chainwatch_models_invalidate';
COMMENT ON FUNCTION @extschema@.models_invalidate() IS
    'Trigger: broadcasts a relcache invalidation so cached models are reloaded at the next statement.';

CREATE TRIGGER models_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.models
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.models_invalidate();

-- ---------------------------------------------------------------------------------------------
-- Training, import, export
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.train_model(
    name text,
    source_query text,
    n_trees int DEFAULT 100,
    sample_size int DEFAULT 256,
    contamination float8 DEFAULT 0.01,
    seed bigint DEFAULT 42,
    transform text DEFAULT 'log1p')
RETURNS int
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_train_model';
COMMENT ON FUNCTION @extschema@.train_model(text, text, int, int, float8, bigint, text) IS
    'Trains an Isolation Forest on a reservoir sample of source_query (value, gas, gas_price numeric columns, or one float8[] column) and stores it inactive; returns the model id.';

CREATE FUNCTION @extschema@.import_model(name text, model jsonb) RETURNS int
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_import_model';
COMMENT ON FUNCTION @extschema@.import_model(text, jsonb) IS
    'Stores a model given in the chainwatch-iforest/1 JSON format (docs/model-format.md), inactive; returns its id.';

CREATE FUNCTION @extschema@.export_model(model_id int) RETURNS jsonb
LANGUAGE c STABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_export_model';
COMMENT ON FUNCTION @extschema@.export_model(int) IS
    'Returns a model in the chainwatch-iforest/1 JSON format; import_model(export_model(id)) scores identically.';

-- ---------------------------------------------------------------------------------------------
-- Activation and rollback
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.activate_model(model_id int, reason text DEFAULT 'activate')
RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_id int;
BEGIN
    IF reason NOT IN ('activate', 'rollback', 'auto_train') THEN
        RAISE EXCEPTION 'unknown activation reason "%"', reason USING ERRCODE = '22023';
    END IF;
    -- one activation at a time; readers and scorers are not blocked
    LOCK TABLE @extschema@.models IN SHARE ROW EXCLUSIVE MODE;
    PERFORM 1 FROM @extschema@.models m WHERE m.id = activate_model.model_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % does not exist', activate_model.model_id
            USING ERRCODE = '42704',
                  HINT = 'SELECT id, name FROM chainwatch.models lists the models.';
    END IF;
    SELECT m.id INTO current_id FROM @extschema@.models m WHERE m.is_active;
    IF current_id = activate_model.model_id THEN
        RETURN current_id;
    END IF;
    UPDATE @extschema@.models m SET is_active = false WHERE m.is_active;
    UPDATE @extschema@.models m SET is_active = true WHERE m.id = activate_model.model_id;
    INSERT INTO @extschema@.model_activations (model_id, previous_model_id, reason)
    VALUES (activate_model.model_id, current_id, reason);
    PERFORM pg_notify('chainwatch_model', activate_model.model_id::text);
    RETURN activate_model.model_id;
END
$$;
COMMENT ON FUNCTION @extschema@.activate_model(int, text) IS
    'Makes a model the active one (used when scoring without a model id), records the activation and notifies channel chainwatch_model.';

CREATE FUNCTION @extschema@.rollback_model() RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur record;
    target int;
BEGIN
    LOCK TABLE @extschema@.models IN SHARE ROW EXCLUSIVE MODE;
    SELECT a.* INTO cur FROM @extschema@.model_activations a ORDER BY a.id DESC LIMIT 1;
    IF NOT FOUND OR cur.previous_model_id IS NULL THEN
        RAISE EXCEPTION 'there is no earlier model to roll back to'
            USING ERRCODE = '55000';
    END IF;
    target := cur.previous_model_id;
    PERFORM 1 FROM @extschema@.models m WHERE m.id = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the previous model % was dropped', target
            USING ERRCODE = '55000', HINT = 'Activate a model explicitly with chainwatch.activate_model().';
    END IF;
    -- the rolled-back-to model inherits its own predecessor, so repeated rollbacks walk back
    UPDATE @extschema@.models m SET is_active = false WHERE m.is_active;
    UPDATE @extschema@.models m SET is_active = true WHERE m.id = target;
    INSERT INTO @extschema@.model_activations (model_id, previous_model_id, reason)
    SELECT target, (SELECT a.previous_model_id FROM @extschema@.model_activations a
                     WHERE a.model_id = target AND a.id < cur.id ORDER BY a.id DESC LIMIT 1),
           'rollback';
    PERFORM pg_notify('chainwatch_model', target::text);
    RETURN target;
END
$$;
COMMENT ON FUNCTION @extschema@.rollback_model() IS
    'Re-activates the model that was active before the current one; repeated calls walk further back. Returns its id.';

CREATE FUNCTION @extschema@.drop_model(model_id int) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE @extschema@.models IN SHARE ROW EXCLUSIVE MODE;
    PERFORM 1 FROM @extschema@.models m WHERE m.id = drop_model.model_id AND m.is_active;
    IF FOUND THEN
        RAISE EXCEPTION 'model % is active and cannot be dropped', drop_model.model_id
            USING ERRCODE = '55006', HINT = 'Activate another model or roll back first.';
    END IF;
    DELETE FROM @extschema@.models m WHERE m.id = drop_model.model_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % does not exist', drop_model.model_id USING ERRCODE = '42704';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_model(int) IS 'Deletes an inactive model.';

CREATE FUNCTION @extschema@.active_model_id() RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT m.id FROM @extschema@.models m WHERE m.is_active $$;
COMMENT ON FUNCTION @extschema@.active_model_id() IS 'The id of the active model, or NULL when none is active.';

-- ---------------------------------------------------------------------------------------------
-- Scoring
-- ---------------------------------------------------------------------------------------------

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

-- ---------------------------------------------------------------------------------------------
-- Severity
-- ---------------------------------------------------------------------------------------------

CREATE TYPE @extschema@.severity_level AS ENUM ('low', 'medium', 'high', 'critical');
COMMENT ON TYPE @extschema@.severity_level IS 'Severity of a detected anomaly, ordered low < medium < high < critical.';

CREATE TABLE @extschema@.severity_rules (
    id                 serial PRIMARY KEY,
    severity           @extschema@.severity_level NOT NULL CHECK (severity <> 'low'),
    min_score          float8  CHECK (min_score > 0 AND min_score <= 1),
    min_value_eth      numeric CHECK (min_value_eth >= 0),
    min_gas_price_gwei numeric CHECK (min_gas_price_gwei >= 0),
    description        text    NOT NULL DEFAULT '',
    CHECK (min_score IS NOT NULL OR min_value_eth IS NOT NULL OR min_gas_price_gwei IS NOT NULL)
);
COMMENT ON TABLE @extschema@.severity_rules IS
    'A flagged transaction gets the highest severity whose rule matches (every non-NULL minimum reached; value in ETH = wei / 1e18, gas price in gwei = wei / 1e9), else low.';

INSERT INTO @extschema@.severity_rules (severity, min_score, min_value_eth, min_gas_price_gwei, description) VALUES
    ('medium',   NULL, 100,   NULL,  'value of 100 ETH or more'),
    ('medium',   NULL, NULL,  500,   'gas price of 500 gwei or more'),
    ('medium',   0.70, 10,    NULL,  'strong outlier moving 10 ETH or more'),
    ('high',     NULL, 1000,  NULL,  'value of 1,000 ETH or more'),
    ('high',     NULL, NULL,  2000,  'gas price of 2,000 gwei or more'),
    ('high',     0.75, 100,   NULL,  'strong outlier moving 100 ETH or more'),
    ('critical', NULL, 10000, NULL,  'value of 10,000 ETH or more'),
    ('critical', NULL, NULL,  10000, 'gas price of 10,000 gwei or more'),
    ('critical', 0.80, 1000,  NULL,  'extreme outlier moving 1,000 ETH or more');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules_id_seq', '');

CREATE FUNCTION @extschema@.severity(score float8, value numeric, gas_price numeric)
RETURNS @extschema@.severity_level
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(max(r.severity), 'low'::@extschema@.severity_level)
      FROM @extschema@.severity_rules r
     WHERE (r.min_score IS NULL OR score >= r.min_score)
       AND (r.min_value_eth IS NULL OR value >= r.min_value_eth * 1000000000000000000::numeric)
       AND (r.min_gas_price_gwei IS NULL OR gas_price >= r.min_gas_price_gwei * 1000000000::numeric)
$$;
COMMENT ON FUNCTION @extschema@.severity(float8, numeric, numeric) IS
    'Severity of a flagged transaction (score, value in wei, gas price in wei) from chainwatch.severity_rules.';
