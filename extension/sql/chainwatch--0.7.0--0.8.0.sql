-- extension/sql/chainwatch--0.7.0--0.8.0.sql — chainwatch 0.8.0: maintain() repairs partitions removed by hand
--
-- Design
--
-- * Up to 0.7.0, maintain() knew the partitions of the managed tables only from partition_state and
--   created new ones only after the newest it recorded. A partition detached or dropped by hand kept its
--   row: the range stayed uncovered, so an insert for the current time failed until an operator re-attached
--   the table, and its rows still counted in recent_anomaly_count(), status() and the row bound.
-- * 0.8.0 reconciles partition_state with the catalog first (_reconcile_partitions): a recorded partition
--   that is no longer attached to its parent in the chainwatch schema is forgotten, with a WARNING in the
--   server log naming it. A detached table is left as it is, rows and all: it is the operator's now.
-- * _ensure_partitions then fills every uncovered slot from the one holding now() to premake widths ahead,
--   holes included, instead of only extending after the newest partition. A new partition stops at the
--   next recorded one, so partitions of an older width are never overlapped.
-- * A partition's name comes from its lower bound. When a table of that name is still there (detached by
--   hand and kept), the new partition takes the first free name with a numeric suffix (_2, _3, ...).
-- * Only the present and the future are repaired: rows are written with the current time, so a hole in
--   the past can receive nothing, and the TTL drops it as it would have dropped the partition.
-- * Everything runs inside maintain()'s existing per-table subtransaction and lock timeout, in the lock
--   order of docs/store.md (pg_inherits is read without locks on the parents).

-- _reconcile_partitions: makes partition_state match the partitions attached to tbl
CREATE FUNCTION @extschema@._reconcile_partitions(tbl text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent regclass := format('@extschema@.%I', tbl)::regclass;
    part record;
    bounds text[];
    n bigint;
    changed int := 0;
BEGIN
    -- recorded, but no longer attached: forget
    FOR part IN
        DELETE FROM @extschema@.partition_state s
         WHERE s.table_name = tbl
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                            WHERE i.inhparent = parent AND c.relname = s.partition_name
                              AND c.relnamespace = '@extschema@'::regnamespace)
        RETURNING s.partition_name, s.lower_bound, s.upper_bound, s.row_count
    LOOP
        RAISE WARNING 'chainwatch: partition %.% [%, %) is no longer attached to %.% (detached or dropped by hand); maintain() forgets it and its % row(s)',
            '@extschema@', part.partition_name, part.lower_bound, part.upper_bound, '@extschema@', tbl, part.row_count
            USING HINT = 'A detached table is left as it is; maintain() creates a new partition for its range if that range is current or ahead.';
        changed := changed + 1;
    END LOOP;
    -- attached, but not recorded (restored by pg_dump, or attached by hand): adopt with its row count
    FOR part IN
        SELECT c.oid, c.relname, c.relnamespace, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
           AND NOT EXISTS (SELECT 1 FROM @extschema@.partition_state s WHERE s.partition_name = c.relname)
         ORDER BY c.relname
    LOOP
        bounds := regexp_match(part.bound, '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$');
        IF bounds IS NULL OR part.relnamespace <> '@extschema@'::regnamespace THEN
            RAISE WARNING 'chainwatch: partition % of %.% is not managed (%): maintain() neither counts nor drops it',
                part.oid::regclass, '@extschema@', tbl,
                CASE WHEN bounds IS NULL THEN 'bounds ' || part.bound ELSE 'outside schema @extschema@' END;
            CONTINUE;
        END IF;
        EXECUTE format('SELECT count(*) FROM %s', part.oid::regclass) INTO n;
        INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound, row_count)
        VALUES (part.relname, tbl, bounds[1]::timestamptz, bounds[2]::timestamptz, n);
        RAISE LOG 'chainwatch: adopted partition %.% [%, %) of %.% with % row(s): it was attached outside maintain()',
            '@extschema@', part.relname, bounds[1], bounds[2], '@extschema@', tbl, n;
        changed := changed + 1;
    END LOOP;
    -- recorded as empty, but holding rows that did not come through commit_batch(): a pg_dump restore
    -- writes the dump's rows for the present into the partitions CREATE EXTENSION made for it, under the
    -- same names. Only partitions recorded with no rows are looked at (the premade ones: empty, cheap to
    -- count); the guard on row_count = 0 skips a partition a writer counted into meanwhile.
    FOR part IN
        SELECT s.partition_name FROM @extschema@.partition_state s WHERE s.table_name = tbl AND s.row_count = 0
    LOOP
        EXECUTE format('SELECT count(*) FROM @extschema@.%I', part.partition_name) INTO n;
        CONTINUE WHEN n = 0;
        UPDATE @extschema@.partition_state s SET row_count = n
         WHERE s.partition_name = part.partition_name AND s.row_count = 0;
        IF FOUND THEN
            RAISE LOG 'chainwatch: partition %.% was recorded as empty but holds % row(s) written outside commit_batch(); counted',
                '@extschema@', part.partition_name, n;
            changed := changed + 1;
        END IF;
    END LOOP;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION @extschema@._reconcile_partitions(text) IS
    'Internal: makes partition_state match the catalog: forgets partitions detached or dropped by hand (a WARNING each), adopts partitions attached outside maintain() and counts rows found in partitions recorded as empty, as after a pg_dump restore.';
REVOKE EXECUTE ON FUNCTION @extschema@._reconcile_partitions(text) FROM PUBLIC;

-- _create_partition: as in 0.7.0, but a name still taken (a table detached by hand) gets a suffix
CREATE OR REPLACE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base text := format('%s_p%s', tbl, to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'));
    pname text := base;
    n int := 1;
BEGIN
    WHILE to_regclass(format('@extschema@.%I', pname)) IS NOT NULL LOOP
        n := n + 1;
        pname := format('%s_%s', base, n);
    END LOOP;
    EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)',
                   pname, tbl);
    -- ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: ingest and queries go on
    EXECUTE format('ALTER TABLE @extschema@.%I ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                   tbl, pname, lower_bound, upper_bound);
    INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound)
    VALUES (pname, tbl, _create_partition.lower_bound, _create_partition.upper_bound);
    RETURN pname;
END
$$;

-- _ensure_partitions: reconciles, then covers every slot from the one holding now() to premake widths ahead
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
    created int := 0;
BEGIN
    PERFORM @extschema@._reconcile_partitions(tbl);
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
        SELECT least(upper_ts, min(s.lower_bound)) INTO upper_ts FROM @extschema@.partition_state s
         WHERE s.table_name = tbl AND s.lower_bound > cursor_ts;
        PERFORM @extschema@._create_partition(tbl, cursor_ts, upper_ts);
        created := created + 1;
        cursor_ts := upper_ts;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION @extschema@._ensure_partitions(text) IS
    'Internal: forgets partitions detached or dropped by hand, then creates a partition for every uncovered slot from the current one to premake widths ahead.';

-- Partitions are ordinary tables, not members of the extension. Up to 0.7.0 the ones made while the
-- extension's scripts ran (CREATE EXTENSION made the first few) became members, and pg_dump leaves out
-- extension members, their rows included: a dump lost every row in them. Release them; partitions
-- maintain() makes later never were members. pg_dump now writes every partition with its rows, and the
-- first maintain() after a restore adopts them (_reconcile_partitions).
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid = d.objid
          JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.deptype = 'e'
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'chainwatch')
           AND i.inhparent IN ('@extschema@.transactions'::regclass, '@extschema@.anomalies'::regclass,
                               '@extschema@.dead_letters'::regclass)
    LOOP
        EXECUTE format('ALTER EXTENSION chainwatch DROP TABLE %s', part);
    END LOOP;
END
$$;

-- Configuration tables whose rows CREATE EXTENSION inserts: a dump that carries them as well makes the
-- restore's COPY fail on the duplicate keys, losing the user's rows with the shipped ones. Dump only what
-- users add: severity rules past the nine shipped ones (ids 1-9). retention_policies holds only the
-- extension's three rows; a restore starts from the defaults (docs/operations.md: re-apply set_retention()).
SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules', 'WHERE id > 9');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retention_policies', 'WHERE false');
