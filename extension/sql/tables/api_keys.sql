-- extension/sql/tables/api_keys.sql — chainwatch-api's keys: digests only, roles, expiry, revocation
--
-- * A key is shown once, by create_api_key(); only its SHA-256 digest is stored (sha256() is built into
--   PostgreSQL 11+, no pgcrypto). Keys are 'cwk_' and 64 hex digits from two gen_random_uuid() values: 244
--   random bits, so a fast unsalted hash is enough (nothing to brute-force).
-- * No key exists after installation: there are no default credentials.
-- * The API's database role needs no access to api_keys: authenticate_api_key() is SECURITY DEFINER and
--   answers only "which role does this key have" (functions/api_keys.sql).
-- * created_by records session_user (the login role) rather than current_user, which inside a SECURITY
--   DEFINER function is the owner.

CREATE TABLE @extschema@.api_keys (
    id           serial PRIMARY KEY,
    name         text        NOT NULL CHECK (name <> ''),
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    key_prefix   text        NOT NULL,
    role         @extschema@.api_role NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT session_user,
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

SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys_id_seq', '');
