-- extension/updates/chainwatch--0.8.0--0.9.0.sql — chainwatch 0.9.0: truthful volatility, anomaly documents
-- written by a trigger, and pg_dump keeps every setting
--
-- From 0.9.0 the current schema is written in one place, extension/sql/ (tables, functions, views, triggers
-- by kind), from which the build makes the install script chainwatch--0.9.0.sql; this script takes an 0.8.0
-- installation to exactly that (tests/extension/sql/upgrade.sql compares the two catalogs).
--
-- * anomalies.document was a generated column whose expression, anomaly_document(), was declared IMMUTABLE
--   while it read the catalog (enum_out). The column becomes a plain one (DROP EXPRESSION keeps every stored
--   document, without a rewrite) filled by the trigger anomalies_document on insert and update, and
--   anomaly_document() is declared STABLE (extension/src/document.c says how the column stays correct).
-- * status() was STABLE and called pg_total_relation_size(), which is VOLATILE: now VOLATILE.
-- * retention_policies was dumped WHERE false and severity_rules WHERE id > 9: a restore reverted TTLs (the
--   next maintain() then dropped restored rows) and lost edits to the shipped rules. Both are now dumped
--   whole, and BEFORE INSERT triggers turn the restore's insert of an existing key into an update
--   (functions/config.sql). Shipped severity rules (shipped = true, ids 1-9) can be disabled (enabled =
--   false) but no longer deleted, since a restore would bring a deleted one back; a shipped rule deleted
--   before this update is put back disabled, so that it stays off after a restore too. severity() considers
--   enabled rules only.
-- * Explanations: anomalies.explanation (jsonb), set by the anomalies_document trigger from the row's model
--   when the writer gives none, and the last member of the document (anomaly_document() takes it as a 17th
--   argument); explain() and explain_vector() give the same for any transaction; trained models keep each
--   feature's median in training_summary.feature_median, the typical value an explanation shows.
-- * Models are validated where they enter and where they become active (issue 24): forest_from_trees() refuses a
--   threshold outside (0, 1], a tree of more than 2 * max_samples - 1 nodes and more than FOREST_MAX_NODES in
--   all; ModelInsert() inserts as the table's owner, so sql/roles.sql no longer grants INSERT on models to any
--   role; activate_model() loads what it activates (XX001 for a forest that does not load) and echoes an
--   unknown reason truncated; severity() refuses non-finite input (22023).
-- * _ensure_partitions() no longer creates a partition wholly in the past: after a TTL change that widened the
--   partition width, the aligned slot holding now() began before the partition already holding now(), so every
--   maintain() created that hole and dropped it again as an empty past partition (ACCESS EXCLUSIVE on the table
--   each run), and automatic training, which waits for a run that dropped nothing, never came.

-- anomalies.document: a plain column filled by a trigger

ALTER TABLE @extschema@.anomalies ALTER COLUMN document DROP EXPRESSION;

COMMENT ON COLUMN @extschema@.anomalies.document IS
    'The row as the REST API returns it (compact JSON), set by the trigger anomalies_document when the row is written.';

ALTER FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint,
                                          timestamptz, timestamptz, double precision,
                                          @extschema@.severity_level, int, text, int, bigint) STABLE;

COMMENT ON FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint,
                                                timestamptz, timestamptz, double precision,
                                                @extschema@.severity_level, int, text, int, bigint) IS
    'An anomaly as the REST API''s JSON object (amounts as exact strings, RFC 3339 UTC times, shortest scores): what the trigger anomalies_document stores in anomalies.document.';

CREATE FUNCTION @extschema@._anomalies_document() RETURNS trigger
AS 'MODULE_PATHNAME', 'chainwatch_anomalies_document'
LANGUAGE C;

COMMENT ON FUNCTION @extschema@._anomalies_document() IS
    'Internal trigger: sets anomalies.document to anomaly_document() of the row being inserted or updated, whatever the writer gave.';

CREATE TRIGGER anomalies_document
    BEFORE INSERT OR UPDATE ON @extschema@.anomalies
    FOR EACH ROW EXECUTE FUNCTION @extschema@._anomalies_document();

-- status(): VOLATILE, as what it calls

ALTER FUNCTION @extschema@.status() VOLATILE;

-- severity rules: enabled, shipped; the shipped ones kept

ALTER TABLE @extschema@.severity_rules
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN shipped boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN @extschema@.severity_rules.enabled IS 'A disabled rule grades nothing; disable a shipped rule instead of deleting it.';

COMMENT ON COLUMN @extschema@.severity_rules.shipped IS 'The rule came with the extension: it can be edited and disabled, not deleted.';

UPDATE @extschema@.severity_rules SET shipped = true WHERE id BETWEEN 1 AND 9;
-- a shipped rule deleted before 0.9.0 comes back disabled, with its original definition
INSERT INTO @extschema@.severity_rules (id, severity, min_score, min_value_eth, min_gas_price_gwei, description, enabled, shipped)
SELECT v.id, v.severity::@extschema@.severity_level, v.min_score, v.min_value_eth, v.min_gas_price_gwei, v.description, false, true
  FROM (VALUES
    (1, 'medium',   NULL::float8, 100::numeric, NULL::numeric, 'value of 100 ETH or more'),
    (2, 'medium',   NULL, NULL,  500,   'gas price of 500 gwei or more'),
    (3, 'medium',   0.70, 10,    NULL,  'strong outlier moving 10 ETH or more'),
    (4, 'high',     NULL, 1000,  NULL,  'value of 1,000 ETH or more'),
    (5, 'high',     NULL, NULL,  2000,  'gas price of 2,000 gwei or more'),
    (6, 'high',     0.75, 100,   NULL,  'strong outlier moving 100 ETH or more'),
    (7, 'critical', NULL, 10000, NULL,  'value of 10,000 ETH or more'),
    (8, 'critical', NULL, NULL,  10000, 'gas price of 10,000 gwei or more'),
    (9, 'critical', 0.80, 1000,  NULL,  'extreme outlier moving 1,000 ETH or more')) AS v(id, severity, min_score, min_value_eth, min_gas_price_gwei, description)
 WHERE NOT EXISTS (SELECT 1 FROM @extschema@.severity_rules r WHERE r.id = v.id);

CREATE OR REPLACE FUNCTION @extschema@.severity(score float8, value numeric, gas_price numeric)
RETURNS @extschema@.severity_level
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- non-finite input is refused: NaN compared as the largest value, so severity(2, 'NaN', 'Infinity')
    -- was critical and severity('NaN', 1, 1) low (0.9.0)
    IF score = 'NaN'::float8 OR score IN ('Infinity'::float8, '-Infinity'::float8) THEN
        RAISE EXCEPTION 'severity: score must be a finite number, not %', score USING ERRCODE = '22023';
    END IF;
    IF value = 'NaN'::numeric OR gas_price = 'NaN'::numeric OR value IN ('Infinity'::numeric, '-Infinity'::numeric)
       OR gas_price IN ('Infinity'::numeric, '-Infinity'::numeric) OR value < 0 OR gas_price < 0 THEN
        RAISE EXCEPTION 'severity: value and gas_price must be finite, non-negative amounts in wei'
            USING ERRCODE = '22023';
    END IF;
    RETURN (SELECT coalesce(max(r.severity), 'low'::@extschema@.severity_level)
              FROM @extschema@.severity_rules r
             WHERE r.enabled
               AND (r.min_score IS NULL OR score >= r.min_score)
               AND (r.min_value_eth IS NULL OR value >= r.min_value_eth * 1000000000000000000::numeric)
               AND (r.min_gas_price_gwei IS NULL OR gas_price >= r.min_gas_price_gwei * 1000000000::numeric));
END
$$;

COMMENT ON FUNCTION @extschema@.severity(float8, numeric, numeric) IS
    'Severity of a flagged transaction (score, value in wei, gas price in wei) from the enabled rules of chainwatch.severity_rules.';

-- the configuration tables, dumped whole and restored over the shipped rows

CREATE FUNCTION @extschema@._retention_policies_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.retention_policies p
       SET time_column = NEW.time_column, ttl = NEW.ttl, max_rows = NEW.max_rows,
           partition_width = NEW.partition_width, premake = NEW.premake, updated_at = NEW.updated_at
     WHERE p.table_name = NEW.table_name;
    IF FOUND THEN
        RETURN NULL;  -- the existing row now holds the inserted values
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION @extschema@._retention_policies_restore() IS
    'Internal trigger: an insert into retention_policies of a table that has a policy updates that policy (a pg_dump restore brings back the source''s settings).';

CREATE FUNCTION @extschema@._severity_rules_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.id IS NULL THEN
        RETURN NEW;
    END IF;
    UPDATE @extschema@.severity_rules r
       SET severity = NEW.severity, min_score = NEW.min_score, min_value_eth = NEW.min_value_eth,
           min_gas_price_gwei = NEW.min_gas_price_gwei, description = NEW.description,
           enabled = NEW.enabled, shipped = NEW.shipped
     WHERE r.id = NEW.id;
    IF FOUND THEN
        RETURN NULL;  -- the existing row now holds the inserted values
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION @extschema@._severity_rules_restore() IS
    'Internal trigger: an insert into severity_rules of an existing id updates that rule (a pg_dump restore brings back edited and disabled shipped rules).';

CREATE FUNCTION @extschema@._severity_rules_keep_shipped() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM @extschema@.severity_rules r WHERE r.shipped) THEN
            RAISE EXCEPTION 'chainwatch.severity_rules holds shipped rules, which cannot be deleted'
                USING ERRCODE = '55000',
                      HINT = 'Delete your own rules with DELETE ... WHERE NOT shipped, and disable shipped ones with UPDATE chainwatch.severity_rules SET enabled = false.';
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.shipped THEN
            RAISE EXCEPTION 'severity rule % came with the extension and cannot be deleted', OLD.id
                USING ERRCODE = '55000',
                      HINT = format('Disable it instead: UPDATE chainwatch.severity_rules SET enabled = false WHERE id = %s.', OLD.id);
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.shipped IS DISTINCT FROM OLD.shipped THEN
        RAISE EXCEPTION 'severity_rules.shipped cannot be changed'
            USING ERRCODE = '55000', HINT = 'It says which rules came with the extension.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION @extschema@._severity_rules_keep_shipped() IS
    'Internal trigger: refuses to delete or truncate shipped severity rules (disable them instead) and to change severity_rules.shipped.';

CREATE TRIGGER retention_policies_restore
    BEFORE INSERT ON @extschema@.retention_policies
    FOR EACH ROW EXECUTE FUNCTION @extschema@._retention_policies_restore();

CREATE TRIGGER severity_rules_restore
    BEFORE INSERT ON @extschema@.severity_rules
    FOR EACH ROW EXECUTE FUNCTION @extschema@._severity_rules_restore();

CREATE TRIGGER severity_rules_keep_shipped
    BEFORE UPDATE OR DELETE ON @extschema@.severity_rules
    FOR EACH ROW EXECUTE FUNCTION @extschema@._severity_rules_keep_shipped();

CREATE TRIGGER severity_rules_keep_shipped_truncate
    BEFORE TRUNCATE ON @extschema@.severity_rules
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._severity_rules_keep_shipped();

SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.retention_policies', '');

-- _ensure_partitions: holes wholly in the past are skipped
CREATE OR REPLACE FUNCTION @extschema@._ensure_partitions(tbl text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
    width interval := @extschema@.partition_width(tbl);
    wsec float8 := extract(epoch FROM @extschema@.partition_width(tbl));
    horizon timestamptz;
    cursor_ts timestamptz;
    upper_ts timestamptz;
    covered_to timestamptz;
    err text;
    created int := 0;
BEGIN
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
    horizon := now() + pol.premake * width;
    cursor_ts := to_timestamp(floor(extract(epoch FROM now()) / wsec) * wsec);
    WHILE cursor_ts < horizon LOOP
        -- a recorded partition holding cursor_ts: skip to its end
        SELECT max(s.upper_bound) INTO covered_to FROM @extschema@.partition_state s
         WHERE s.table_name = tbl AND s.lower_bound <= cursor_ts AND s.upper_bound > cursor_ts;
        IF covered_to IS NOT NULL THEN
            cursor_ts := covered_to;
            CONTINUE;
        END IF;
        -- a hole: up to the next aligned boundary, or to the next recorded partition if that is sooner
        upper_ts := to_timestamp((floor(extract(epoch FROM cursor_ts) / wsec) + 1) * wsec);
        IF upper_ts <= cursor_ts THEN
            upper_ts := cursor_ts + width;  -- a width that is no whole number of microseconds in float8
        END IF;
        SELECT least(upper_ts, min(s.lower_bound)) INTO upper_ts FROM @extschema@.partition_state s
         WHERE s.table_name = tbl AND s.lower_bound > cursor_ts;
        -- a hole wholly in the past (the aligned slot of a wider width starts before the partition
        -- holding now()): no row can go there, and _drop_partitions would drop it again as empty,
        -- so every run would create and drop it, and never train (0.9.0)
        IF upper_ts <= now() THEN
            cursor_ts := upper_ts;
            CONTINUE;
        END IF;
        BEGIN
            PERFORM @extschema@._create_partition(tbl, cursor_ts, upper_ts);
            created := created + 1;
        EXCEPTION WHEN invalid_object_definition THEN
            -- the slot overlaps a partition maintain() does not manage (_reconcile_partitions warned)
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            RAISE WARNING 'chainwatch: no partition created for %.% [%, %): %', '@extschema@', tbl, cursor_ts, upper_ts, err;
        END;
        cursor_ts := upper_ts;
    END LOOP;
    RETURN created;
END
$$;

-- explanations: a column, the document's last member, explain() and explain_vector()
ALTER TABLE @extschema@.anomalies ADD COLUMN explanation jsonb;

COMMENT ON COLUMN @extschema@.anomalies.explanation IS
    'Why the row was flagged: each feature of its model with its share of the isolation, its value and the typical value (docs/detection.md); set by the trigger anomalies_document when the writer gives none.';

DROP FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint, timestamptz,
                                           timestamptz, double precision, @extschema@.severity_level, int, text, int,
                                           bigint);

CREATE FUNCTION @extschema@.anomaly_document(
    id bigint, hash text, from_address text, to_address text, value numeric, gas numeric, gas_price numeric,
    block_number bigint, tx_time timestamptz, detected_at timestamptz, score double precision,
    severity @extschema@.severity_level, model_id int, kafka_topic text, kafka_partition int, kafka_offset bigint,
    explanation jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'chainwatch_anomaly_document'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint,
                                                timestamptz, timestamptz, double precision,
                                                @extschema@.severity_level, int, text, int, bigint, jsonb) IS
    'An anomaly as the REST API''s JSON object (amounts as exact strings, RFC 3339 UTC times, shortest scores): what the trigger anomalies_document stores in anomalies.document.';

CREATE OR REPLACE VIEW @extschema@.recent_anomalies AS
SELECT a.id, a.hash, a.from_address, a.to_address, a.value, a.gas, a.gas_price, a.block_number,
       a.tx_time, a.detected_at, a.score, a.severity, a.model_id, a.kafka_topic, a.kafka_partition, a.kafka_offset,
       a.document, a.explanation
  FROM @extschema@.anomalies a
 WHERE a.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies');

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

-- activate_model: validates what it activates, truncates the echoed reason
CREATE OR REPLACE FUNCTION @extschema@.activate_model(model_id int, reason text DEFAULT 'activate')
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
