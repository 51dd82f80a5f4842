-- upgrade.sql: the oldest shipped release, updated along every script in extension/updates/, keeps its models
-- and ends with exactly the catalog of a fresh install of the current version (made from extension/sql/)
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
-- 0.11.0 names what it scores: the three amounts
SELECT feature_set FROM chainwatch.models WHERE id = :m;

-- the store came with the update
SELECT table_name, ttl, max_rows FROM chainwatch.retention_policies ORDER BY 1;
SELECT count(*) > 0 AS partitions_made FROM chainwatch.partition_state;

-- cw_catalog: every definition of the extension's objects, one row per object: members, functions (the whole
-- definition: arguments, volatility, strictness, parallel safety, security, settings, body), grants and
-- comments, tables' columns (in order), constraints, indexes, triggers, views, sequences, types, what
-- pg_dump keeps (config tables and their conditions), and the configuration rows CREATE EXTENSION inserts
CREATE FUNCTION pg_temp.cw_catalog() RETURNS TABLE (kind text, name text, detail text) LANGUAGE sql AS $$
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'chainwatch'),
members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (
    SELECT c.oid, c.relkind FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT 'member', pg_describe_object(m.classid, m.objid, m.objsubid), '' FROM members m
UNION ALL
SELECT 'function', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || E'\nacl: ' || coalesce(p.proacl::text, '-') || E'\ncomment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation', c.oid::regclass::text,
       format('kind %s, persistence %s, options %s, acl %s, partition key %s, comment %s',
              c.relkind, c.relpersistence, coalesce(c.reloptions::text, '-'), coalesce(c.relacl::text, '-'),
              coalesce(pg_get_partkeydef(c.oid), '-'), coalesce(obj_description(c.oid, 'pg_class'), '-'))
  FROM pg_class c JOIN rels r ON r.oid = c.oid
UNION ALL
SELECT 'column', c.oid::regclass::text || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
       format('%s %s, not null %s, default %s, generated %s, identity %s, collation %s, acl %s, comment %s',
              a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
              a.attgenerated, a.attidentity, a.attcollation::regcollation, coalesce(a.attacl::text, '-'),
              coalesce(col_description(c.oid, a.attnum), '-'))
  FROM pg_class c JOIN rels r ON r.oid = c.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint', con.conrelid::regclass::text || '.' || con.conname,
       pg_get_constraintdef(con.oid) || ', comment ' || coalesce(obj_description(con.oid, 'pg_constraint'), '-')
  FROM pg_constraint con JOIN rels r ON r.oid = con.conrelid
UNION ALL
SELECT 'index', i.indexrelid::regclass::text,
       pg_get_indexdef(i.indexrelid) || ', comment ' || coalesce(obj_description(i.indexrelid, 'pg_class'), '-')
  FROM pg_index i JOIN rels r ON r.oid = i.indrelid
UNION ALL
SELECT 'trigger', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid) || ', enabled ' || t.tgenabled::text
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view', c.oid::regclass::text, pg_get_viewdef(c.oid, true)
  FROM pg_class c JOIN rels r ON r.oid = c.oid WHERE c.relkind = 'v'
UNION ALL
SELECT 'sequence', s.seqrelid::regclass::text,
       format('%s start %s increment %s min %s max %s cache %s cycle %s', s.seqtypid::regtype, s.seqstart,
              s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
  FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
UNION ALL
SELECT 'type', t.oid::regtype::text,
       coalesce((SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '-')
       || ', comment ' || coalesce(obj_description(t.oid, 'pg_type'), '-')
  FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL
SELECT 'dumped', c.conf::regclass::text, coalesce(ext.extcondition[c.ord], '-')
  FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS c(conf, ord)
UNION ALL
SELECT 'severity rule', r.id::text, format('%s', row(r.*)) FROM chainwatch.severity_rules r
UNION ALL
SELECT 'retention policy', p.table_name, format('%s %s %s %s %s', p.time_column, p.ttl, p.max_rows, p.partition_width, p.premake)
  FROM chainwatch.retention_policies p
$$;
CREATE TEMP TABLE updated AS SELECT * FROM pg_temp.cw_catalog();
DROP EXTENSION chainwatch CASCADE;
CREATE EXTENSION chainwatch;
CREATE TEMP TABLE fresh AS SELECT * FROM pg_temp.cw_catalog();
-- the comparison covers every kind of definition (it cannot pass by comparing nothing)
SELECT kind, count(*) > 0 AS present FROM fresh GROUP BY kind ORDER BY kind;
SELECT count(*) > 300 AS many_definitions FROM fresh;
-- any difference is a failure: the kind, the object, which side has it and its definition there
(SELECT kind, name, 'only after update' AS side, detail FROM updated EXCEPT SELECT kind, name, 'only after update', detail FROM fresh)
UNION ALL
(SELECT kind, name, 'only in fresh install', detail FROM fresh EXCEPT SELECT kind, name, 'only in fresh install', detail FROM updated)
ORDER BY 1, 2, 3;
