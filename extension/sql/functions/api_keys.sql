-- extension/sql/functions/api_keys.sql — creating, revoking and checking API keys
--
-- * create_api_key() and revoke_api_key() are SECURITY DEFINER: the API's role manages keys through them and
--   never sees key_hash. authenticate_api_key() answers only "which role does this key have", NULL for a
--   missing, revoked or expired key, and records last_used_at at most once a minute per key, so
--   authentication does not turn every request into a write.
-- * Revocation takes effect at once: revoke_api_key() notifies channel chainwatch_api_keys (delivered at
--   commit) and the API drops its in-process cache of recent authentications.

CREATE FUNCTION @extschema@.create_api_key(name text, role text, expires_at timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
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

CREATE FUNCTION @extschema@.revoke_api_key(name text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
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

CREATE FUNCTION @extschema@.revoke_api_key(id int) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
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
