-- privileges.sql: the SECURITY DEFINER functions (0.4.0) pin search_path and only status() (aggregates) and the
-- trigger function are callable by PUBLIC; internal helpers are not; a role with bare USAGE cannot write

CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- every SECURITY DEFINER function of the extension, whether PUBLIC may call it, and its search_path
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_call,
       p.proconfig AS settings
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainwatch' AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;

-- internal helpers are not callable by PUBLIC either
SELECT p.oid::regprocedure AS internal_callable_by_public
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainwatch' AND p.proname LIKE '\_%' AND p.prorettype <> 'trigger'::regtype
   AND p.proname NOT IN ('_load', '_setting')
   AND has_function_privilege('public', p.oid, 'EXECUTE');

-- a role with nothing but USAGE on the schema can score, and cannot write through the definer functions
CREATE ROLE cw_nobody;
GRANT USAGE ON SCHEMA chainwatch TO cw_nobody;
SET ROLE cw_nobody;
SELECT pg_temp.err('SELECT chainwatch.maintain()') AS maintain;
SELECT pg_temp.err($$SELECT * FROM chainwatch.commit_batch('g', 't', '{0}', '{0}', '{1}', NULL)$$) AS commit_batch;
SELECT pg_temp.err('SELECT chainwatch.rollback_model()') AS rollback_model;
SELECT pg_temp.err('SELECT chainwatch.activate_model(1)') AS activate_model;
SELECT pg_temp.err($$SELECT chainwatch.set_retention('transactions', max_rows => 1)$$) AS set_retention;
SELECT pg_temp.err($$SELECT chainwatch._drop_partition('x', 'ttl')$$) AS drop_partition;
SELECT pg_temp.err('DELETE FROM chainwatch.anomalies') AS delete_anomalies;
SELECT pg_temp.err('SELECT count(*) FROM chainwatch.api_keys') AS read_keys;
RESET ROLE;
REVOKE USAGE ON SCHEMA chainwatch FROM cw_nobody;
DROP ROLE cw_nobody;

-- create_api_key records who asked (the session user), not the definer
SELECT chainwatch.create_api_key('privileges-test', 'reader') IS NOT NULL AS created;
SELECT created_by = session_user AS created_by_session_user FROM chainwatch.api_keys WHERE name = 'privileges-test';
SELECT chainwatch.revoke_api_key('privileges-test') > 0 AS revoked;
