-- extension/sql/functions/models.sql — training, import, export, activation, rollback, retirement of models
--
-- * activate_model() and rollback_model() are SECURITY DEFINER: they LOCK TABLE models and flip is_active,
--   so the API's role needs no UPDATE on models; EXECUTE is granted by sql/roles.sql.
-- * Every change to models invalidates the per-backend model caches (models_invalidate, model_cache.c) and
--   bumps registry_state.generation (_registry_changed); the triggers are in triggers.sql.

-- models_invalidate: every change to models invalidates the per-backend model caches (see model_cache.c).
CREATE FUNCTION @extschema@.models_invalidate() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'chainwatch_models_invalidate';

COMMENT ON FUNCTION @extschema@.models_invalidate() IS
    'Trigger: broadcasts a relcache invalidation so cached models are reloaded at the next statement.';

CREATE FUNCTION @extschema@.train_model(
    name text,
    source_query text,
    n_trees int DEFAULT 100,
    sample_size int DEFAULT 256,
    contamination float8 DEFAULT 0.01,
    seed bigint DEFAULT 42,
    transform text DEFAULT 'log1p',
    feature_set text DEFAULT '',
    feature_names text[] DEFAULT '{}')
RETURNS int
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_train_model';

COMMENT ON FUNCTION @extschema@.train_model(text, text, int, int, float8, bigint, text, text, text[]) IS
    'Trains an Isolation Forest on a reservoir sample of source_query (value, gas, gas_price numeric columns, or one float8[] column; with feature_set ''behaviour/1'' the transactions.features column, transform ''identity'', and the features named in feature_names, all when empty) and stores it inactive; returns the model id.';

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

CREATE FUNCTION @extschema@.activate_model(model_id int, reason text DEFAULT 'activate')
RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_id int;
BEGIN
    IF reason NOT IN ('activate', 'rollback', 'auto_train') THEN
        -- the caller's text is echoed truncated: a 10 MB reason made a 10 MB error and log line (0.9.0)
        RAISE EXCEPTION 'unknown activation reason "%"',
                        CASE WHEN length(reason) > 64 THEN left(reason, 64) || '…' ELSE reason END
            USING ERRCODE = '22023', HINT = 'The reasons are activate, rollback and auto_train.';
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
    -- what becomes active must load: model_threshold() deserializes and validates the forest through the
    -- model cache, raising XX001 (data_corrupted) for one that does not (0.9.0)
    PERFORM @extschema@.model_threshold(activate_model.model_id);
    UPDATE @extschema@.models m SET is_active = false WHERE m.is_active;
    UPDATE @extschema@.models m SET is_active = true WHERE m.id = activate_model.model_id;
    INSERT INTO @extschema@.model_activations (model_id, previous_model_id, reason)
    VALUES (activate_model.model_id, current_id, reason);
    PERFORM pg_notify('chainwatch_model', activate_model.model_id::text);
    RETURN activate_model.model_id;
END
$$;

COMMENT ON FUNCTION @extschema@.activate_model(int, text) IS
    'Makes a model the active one (used when scoring without a model id), records the activation and notifies channel chainwatch_model. SECURITY DEFINER; EXECUTE is granted by sql/roles.sql.';

CREATE FUNCTION @extschema@.rollback_model() RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
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
    'Re-activates the model that was active before the current one; repeated calls walk further back. Returns its id. SECURITY DEFINER; EXECUTE is granted by sql/roles.sql.';

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

CREATE FUNCTION @extschema@._registry_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gen bigint;
BEGIN
    UPDATE @extschema@.registry_state s SET generation = s.generation + 1 RETURNING s.generation INTO gen;
    PERFORM pg_notify('chainwatch_models', gen::text);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION @extschema@._registry_changed() IS
    'Internal trigger: bumps registry_state.generation and notifies chainwatch_models after any change to chainwatch.models.';
