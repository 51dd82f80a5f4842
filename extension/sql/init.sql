-- extension/sql/init.sql — the last step of CREATE EXTENSION: partitions for the current window
--
-- Partitions are ordinary tables, not members of the extension (pg_dump leaves members out, rows included).
-- Those made here, while the extension's script runs, would become members: release them at once.

SELECT @extschema@._ensure_partitions(t) FROM unnest(ARRAY['transactions', 'anomalies', 'dead_letters']) t;

DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.deptype = 'e'
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'chainwatch')
           AND c.relkind = 'r' AND c.relispartition
    LOOP
        EXECUTE format('ALTER EXTENSION chainwatch DROP TABLE %s', part);
    END LOOP;
END
$$;
