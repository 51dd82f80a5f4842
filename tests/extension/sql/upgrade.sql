-- upgrade.sql: an installation of the first release updates in place, keeping its models
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainwatch CASCADE;
CREATE EXTENSION chainwatch VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'chainwatch';

-- a model trained and activated at 0.1.0
CREATE TABLE u_tx AS SELECT (i * 1000)::numeric AS value, (21000 + i)::numeric AS gas, (i * 7)::numeric AS gas_price
FROM generate_series(1, 500) i;
SELECT chainwatch.activate_model(chainwatch.train_model('before-upgrade', 'SELECT value, gas, gas_price FROM u_tx', n_trees => 10)) AS m \gset
SELECT round(chainwatch.score(1000, 21001, 7)::numeric, 12) AS score_before \gset
SELECT to_regclass('chainwatch.anomalies') IS NULL AS no_store_yet;

-- update along the shipped scripts to the default version
ALTER EXTENSION chainwatch UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'chainwatch') AS at_default_version
FROM pg_extension WHERE extname = 'chainwatch';

-- the model is still there, still active, and scores the same
SELECT name, is_active FROM chainwatch.models WHERE id = :m;
SELECT round(chainwatch.score(1000, 21001, 7)::numeric, 12) = :score_before AS same_score;

-- the store came with the update
SELECT table_name, ttl, max_rows FROM chainwatch.retention_policies ORDER BY 1;
SELECT count(*) > 0 AS partitions_made FROM chainwatch.partition_state;

-- the updated extension has exactly the objects of a fresh install at the same version
CREATE TEMP TABLE updated AS
SELECT pg_describe_object(classid, objid, objsubid) AS object FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chainwatch')
  AND pg_describe_object(classid, objid, objsubid) NOT LIKE '%\_p2%';
DROP EXTENSION chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE TEMP TABLE fresh AS
SELECT pg_describe_object(classid, objid, objsubid) AS object FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chainwatch')
  AND pg_describe_object(classid, objid, objsubid) NOT LIKE '%\_p2%';
SELECT count(*) > 50 AS many_objects FROM fresh;
(SELECT object, 'only after update' AS side FROM updated EXCEPT SELECT object, 'only after update' FROM fresh)
UNION ALL
(SELECT object, 'only in fresh install' FROM fresh EXCEPT SELECT object, 'only in fresh install' FROM updated)
ORDER BY 1;
