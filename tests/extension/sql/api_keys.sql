-- api_keys.sql: API keys (create once, hash only, roles, expiry, revocation) and the registry generation
-- each file starts from a fresh extension so the files are independent
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- no default credentials
SELECT count(*) AS keys_after_install FROM chainwatch.api_keys;

-- a key is returned once; only its SHA-256 is stored
SELECT chainwatch.create_api_key('reader-1', 'reader') AS rk \gset
SELECT chainwatch.create_api_key('admin-1', 'admin') AS ak \gset
SELECT :'rk' ~ '^cwk_[0-9a-f]{64}$' AS key_shape, :'rk' <> :'ak' AS distinct_keys;
SELECT name, role, key_prefix = left(:'rk', 8) AS prefix_ok, key_hash = sha256(convert_to(:'rk', 'UTF8')) AS hash_ok,
       position(substr(:'rk', 5) IN encode(key_hash, 'escape')) = 0 AS key_not_stored
  FROM chainwatch.api_keys WHERE name = 'reader-1';

-- authentication
SELECT chainwatch.authenticate_api_key(:'rk') AS reader_role, chainwatch.authenticate_api_key(:'ak') AS admin_role;
SELECT chainwatch.authenticate_api_key('cwk_' || repeat('0', 64)) IS NULL AS unknown_is_null,
       chainwatch.authenticate_api_key('') IS NULL AS empty_is_null,
       chainwatch.authenticate_api_key(NULL) IS NULL AS null_is_null;
SELECT last_used_at IS NOT NULL AS used FROM chainwatch.api_keys WHERE name = 'reader-1';

-- bad arguments
SELECT pg_temp.err($$SELECT chainwatch.create_api_key('x', 'root')$$);
SELECT pg_temp.err($$SELECT chainwatch.create_api_key('', 'reader')$$);
SELECT pg_temp.err($$SELECT chainwatch.create_api_key('reader-1', 'reader')$$);
SELECT pg_temp.err($$SELECT chainwatch.create_api_key('old', 'reader', now() - interval '1 day')$$);

-- expiry
SELECT chainwatch.create_api_key('short', 'reader', now() + interval '1 hour') AS sk \gset
SELECT chainwatch.authenticate_api_key(:'sk') AS before_expiry;
UPDATE chainwatch.api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short';
SELECT chainwatch.authenticate_api_key(:'sk') IS NULL AS expired_is_null;

-- revocation by name and by id; a revoked name can be reused
SELECT chainwatch.revoke_api_key('reader-1') > 0 AS revoked;
SELECT chainwatch.authenticate_api_key(:'rk') IS NULL AS revoked_is_null;
SELECT pg_temp.err($$SELECT chainwatch.revoke_api_key('reader-1')$$);
SELECT pg_temp.err($$SELECT chainwatch.revoke_api_key(99999)$$);
SELECT chainwatch.revoke_api_key(id) = id AS revoked_by_id FROM chainwatch.api_keys WHERE name = 'admin-1';
SELECT chainwatch.authenticate_api_key(:'ak') IS NULL AS admin_revoked;
SELECT chainwatch.create_api_key('reader-1', 'reader') ~ '^cwk_' AS name_reused;
UNSELECT name, role, is_valid FROM chainwatch.api_key_list ORDER BY id;

-- the API role needs no access to the hashes
CREATE ROLE cw_api_test_role LOGIN;
GRANT USAGE ON SCHEMA chainwatch TO cw_api_test_role;
SET ROLE cw_api_test_role;
SELECT pg_temp.err($$SELECT chainwatch.authenticate_api_key('x')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION chainwatch.authenticate_api_key(text) TO cw_api_test_role;
SET ROLE cw_api_test_role;
SELECT chainwatch.authenticate_api_key(:'sk') IS NULL AS expired_for_api_role;
SELECT pg_temp.err('SELECT count(*) FROM chainwatch.api_keys');
SELECT pg_temp.err($$SELECT chainwatch.create_api_key('sneaky', 'admin')$$);
SELECT pg_temp.err($$SELECT chainwatch.revoke_api_key('short')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION chainwatch.authenticate_api_key(text) FROM cw_api_test_role;
REVOKE USAGE ON SCHEMA chainwatch FROM cw_api_test_role;
DROP ROLE cw_api_test_role;

-- every object is documented
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainwatch' AND p.proname IN ('create_api_key', 'revoke_api_key', 'authenticate_api_key', '_registry_changed')
   AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT p.proname, p.provolatile, p.proisstrict, p.prosecdef FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainwatch' AND p.proname IN ('create_api_key', 'revoke_api_key', 'authenticate_api_key')
 ORDER BY p.proname, p.pronargs;

-- the registry generation moves with every committed change to models
SELECT generation AS g0 FROM chainwatch.registry_state \gset
CREATE TABLE k_tx AS SELECT (i * 1000)::numeric AS value, (21000 + i)::numeric AS gas, (i * 7)::numeric AS gas_price FROM generate_series(1, 300) i;
SELECT chainwatch.train_model('k', 'SELECT value, gas, gas_price FROM k_tx', n_trees => 5) AS m \gset
SELECT generation > :g0 AS bumped_by_train FROM chainwatch.registry_state;
SELECT generation AS g1 FROM chainwatch.registry_state \gset
SELECT chainwatch.activate_model(:m) = :m AS activated;
SELECT generation > :g1 AS bumped_by_activate FROM chainwatch.registry_state;
