-- extension/sql/chainwatch--0.2.0--0.3.0.sql — chainwatch 0.3.0: API keys for chainwatch-api and the model registry generation
--
-- Design (the invariants)
--
-- * A key is shown once, by create_api_key(); only its SHA-256 digest is stored (sha256() is built
--   into PostgreSQL 11+, no pgcrypto). Keys are 'cwk_' and 64 hex digits from two gen_random_uuid()
--   values: 244 random bits, so a fast unsalted hash is enough (nothing to brute-force).
-- * No key exists after installation: there are no default credentials.
-- * The API's database role needs no access to api_keys: authenticate_api_key() is SECURITY DEFINER
--   and answers only "which role does this key have", NULL for a missing, revoked or expired key.
--   It records last_used_at at most once a minute per key, so authentication does not turn every
--   request into a write.
-- * Revocation takes effect at once: revoke_api_key() notifies channel chainwatch_api_keys (delivered
--   at commit) and the API drops its in-process cache of recent authentications.
-- * registry_state.generation is bumped (and notified on channel chainwatch_models) in the same
--   transaction as every change to chainwatch.models, so the API can key its cache of model metadata
--   by it: a cached model list is never older than the last committed registry change.

-- ---------------------------------------------------------------------------------------------
-- API keys
-- ---------------------------------------------------------------------------------------------

CREATE TYPE @extschema@.api_role AS ENUM ('reader', 'admin');
COMMENT ON TYPE @extschema@.api_role IS
    'Role of an API key: reader may read and score, admin may also train, activate and roll back models.';

CREATE TABLE @extschema@.api_keys (
    id           serial PRIMARY KEY,
    name         text        NOT NULL CHECK (name <> ''),
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    key_prefix   text        NOT NULL,
    role         @extschema@.api_role NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT current_user,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
COMMENT ON TABLE @extschema@.api_keys IS
    'API keys of chainwatch-api: SHA-256 of the key (never the key), its role, optional expiry, revocation and last use. Manage with create_api_key() and revoke_api_key().';
COMMENT ON COLUMN @extschema@.api_keys.key_hash IS 'sha256 of the UTF-8 key text; the key itself is shown once by create_api_key().';
COMMENT ON COLUMN @extschema@.api_keys.key_prefix IS 'The first 8 characters of the key (e.g. cwk_1a2b), to recognise a key without storing it.';
COMMENT ON COLUMN @extschema@.api_keys.last_used_at IS 'Last successful authentication, recorded at most once a minute.';

CREATE UNIQUE INDEX api_keys_live_name ON @extschema@.api_keys (name) WHERE revoked_at IS NULL;
COMMENT ON INDEX @extschema@.api_keys_live_name IS 'A name identifies at most one unrevoked key (a revoked name can be reused).';

REVOKE ALL ON @extschema@.api_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys_id_seq', '');

CREATE FUNCTION @extschema@.create_api_key(name text, role text, expires_at timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text;
BEGIN
    IF create_api_key.name IS NULL OR create_api_key.name = '' THEN
        RAISE EXCEPTION 'an API key needs a name' USING ERRCODE = '22004';
    END IF;
    IF create_api_key.role IS NULL OR create_api_key.role NOT IN ('reader', 'admin') THEN
        RAISE EXCEPTION 'unknown API role "%"', create_api_key.role
            USING ERRCODE = '22023', HINT = 'Roles: reader, admin.';
    END IF;
    IF create_api_key.expires_at IS NOT NULL AND create_api_key.expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at is in the past' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM @extschema@.api_keys k WHERE k.name = create_api_key.name AND k.revoked_at IS NULL;
    IF FOUND THEN
        RAISE EXCEPTION 'an API key named "%" already exists', create_api_key.name
            USING ERRCODE = '23505', HINT = 'Revoke it first with chainwatch.revoke_api_key(name).';
    END IF;
    key := 'cwk_' || replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO @extschema@.api_keys (name, key_hash, key_prefix, role, expires_at)
    VALUES (create_api_key.name, sha256(convert_to(key, 'UTF8')), left(key, 8),
            create_api_key.role::@extschema@.api_role, create_api_key.expires_at);
    RETURN key;
END
$$;
COMMENT ON FUNCTION @extschema@.create_api_key(text, text, timestamptz) IS
    'Creates an API key with role reader or admin (optionally expiring) and returns it: the only time the key is shown; only its SHA-256 is stored.';
REVOKE EXECUTE ON FUNCTION @extschema@.create_api_key(text, text, timestamptz) FROM PUBLIC;

CREATE FUNCTION @extschema@.revoke_api_key(name text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    revoked_id int;
BEGIN
    UPDATE @extschema@.api_keys k SET revoked_at = now()
     WHERE k.name = revoke_api_key.name AND k.revoked_at IS NULL
    RETURNING k.id INTO revoked_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no unrevoked API key named "%"', revoke_api_key.name USING ERRCODE = '42704';
    END IF;
    PERFORM pg_notify('chainwatch_api_keys', revoked_id::text);
    RETURN revoked_id;
END
$$;
COMMENT ON FUNCTION @extschema@.revoke_api_key(text) IS
    'Revokes the unrevoked key with this name (effective at commit: chainwatch-api is notified on channel chainwatch_api_keys); returns its id.';
REVOKE EXECUTE ON FUNCTION @extschema@.revoke_api_key(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.revoke_api_key(id int) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.api_keys k SET revoked_at = now()
     WHERE k.id = revoke_api_key.id AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no unrevoked API key with id %', revoke_api_key.id USING ERRCODE = '42704';
    END IF;
    PERFORM pg_notify('chainwatch_api_keys', revoke_api_key.id::text);
    RETURN revoke_api_key.id;
END
$$;
COMMENT ON FUNCTION @extschema@.revoke_api_key(int) IS
    'Revokes the API key with this id (effective at commit, like revoke_api_key(name)); returns the id.';
REVOKE EXECUTE ON FUNCTION @extschema@.revoke_api_key(int) FROM PUBLIC;

CREATE FUNCTION @extschema@.authenticate_api_key(key text) RETURNS @extschema@.api_role
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k record;
BEGIN
    SELECT a.id, a.role, a.last_used_at INTO k FROM @extschema@.api_keys a
     WHERE a.key_hash = sha256(convert_to(authenticate_api_key.key, 'UTF8'))
       AND a.revoked_at IS NULL
       AND (a.expires_at IS NULL OR a.expires_at > now());
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' THEN
        UPDATE @extschema@.api_keys a SET last_used_at = now() WHERE a.id = k.id;
    END IF;
    RETURN k.role;
END
$$;
COMMENT ON FUNCTION @extschema@.authenticate_api_key(text) IS
    'The role of a valid API key; NULL when the key is unknown, revoked or expired. SECURITY DEFINER: callers need no access to the hashes. Records last_used_at (at most once a minute).';

CREATE VIEW @extschema@.api_key_list AS
SELECT k.id, k.name, k.key_prefix, k.role, k.created_at, k.created_by, k.expires_at, k.revoked_at, k.last_used_at,
       k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) AS is_valid
  FROM @extschema@.api_keys k;
COMMENT ON VIEW @extschema@.api_key_list IS 'API keys without their hashes, with whether each is currently valid.';
REVOKE ALL ON @extschema@.api_key_list FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Model registry generation (cache keys of model metadata)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.registry_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.registry_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.registry_state IS
    'generation: bumped in the same transaction as every change to chainwatch.models (and notified on channel chainwatch_models); chainwatch-api keys cached model metadata by it.';

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

-- row level: a statement-level trigger does not fire for the INSERT ... RETURNING that
-- train_model() and import_model() run through SPI; TRUNCATE only exists at statement level
CREATE TRIGGER registry_changed
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.models
    FOR EACH ROW EXECUTE FUNCTION @extschema@._registry_changed();
CREATE TRIGGER registry_truncated
    AFTER TRUNCATE ON @extschema@.models
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._registry_changed();

-- ---------------------------------------------------------------------------------------------
-- Fast exact count of the anomalies within the TTL (the API's unfiltered list total)
-- ---------------------------------------------------------------------------------------------

-- Partitions lying entirely inside the TTL window contribute their exact partition_state
-- row_count (kept by commit_batch() and maintain()); only rows older than the oldest such
-- partition — the partition straddling the TTL boundary — are counted one by one. Equal to
-- SELECT count(*) FROM recent_anomalies, without scanning every row.
CREATE FUNCTION @extschema@.recent_anomaly_count() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    horizon timestamptz;
    boundary timestamptz;
    inside bigint;
    straddling bigint;
BEGIN
    SELECT now() - p.ttl INTO horizon FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies';
    SELECT min(s.lower_bound), coalesce(sum(s.row_count), 0) INTO boundary, inside
      FROM @extschema@.partition_state s
     WHERE s.table_name = 'anomalies' AND s.lower_bound > horizon;
    SELECT count(*) INTO straddling FROM @extschema@.anomalies a
     WHERE a.detected_at > horizon AND a.detected_at < coalesce(boundary, 'infinity');
    RETURN inside + straddling;
END
$$;
COMMENT ON FUNCTION @extschema@.recent_anomaly_count() IS
    'count(*) of chainwatch.recent_anomalies from the partition row counts: only the partition straddling the TTL boundary is scanned.';
