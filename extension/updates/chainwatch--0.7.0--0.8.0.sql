-- extension/sql/chainwatch--0.7.0--0.8.0.sql — chainwatch 0.8.0: pg_dump keeps every row; maintain() reconciles
-- its partition records with the catalog
--
-- Design
--
-- * Up to 0.7.0 the partitions CREATE EXTENSION made were members of the extension, and pg_dump leaves
--   members out, rows included: a dump lost everything stored in them. Partitions are now ordinary tables
--   (the release at the end of this script), so pg_dump writes every partition with its rows.
-- * maintain() knew the partitions only from partition_state and created new ones only after the newest it
--   recorded. A partition detached or dropped by hand left its range uncovered (an insert for the current
--   time failed until an operator re-attached it) and its rows counted on; partitions a restore attached
--   were never counted nor dropped. Each maintain() run now starts a table with _reconcile_partitions:
--     - a recorded partition no longer attached is forgotten, with a WARNING; a detached table is left as
--       it is, rows and all: it is the operator's now;
--     - an attached partition in the chainwatch schema with a plain FROM/TO range that is not recorded is
--       adopted with its rows counted, unless it is empty and in the past (a restore may be about to load
--       it; maintain() would drop an adopted empty past partition); a recorded one whose bounds changed
--       (re-attached by hand) gets its bounds corrected;
--     - a partition recorded as empty that holds rows (a restore writes the dump's rows for the present
--       into the partitions CREATE EXTENSION made, under the same names) is counted.
--   Counting takes SHARE on the partition, so no writer is mid-batch in it and the count is exact.
-- * _ensure_partitions then fills every uncovered slot from the one holding now() to premake widths ahead,
--   holes included. A new partition stops at the next recorded one; a slot that overlaps a partition
--   maintain() does not manage is skipped with a WARNING instead of failing the run.
-- * A partition's name comes from its lower bound; a name still taken (a detached table kept) gets the
--   first free numeric suffix (_2, _3, ...).
-- * Bounds travel as text between the catalog and these functions: they run with TimeZone UTC and
--   DateStyle ISO, so a session's settings cannot shift them.
-- * A run that changed partition_state trains no model (maintain(), step 4): the rows it locked stay locked
--   until the run commits, and writers count into them.
-- * Only the present and the future are repaired: rows are written with the current time, so a hole in the
--   past can receive nothing, and the TTL drops it as it would have dropped the partition.

-- _reconcile_partitions: makes partition_state match the partitions attached to tbl; returns the changes
CREATE FUNCTION @extschema@._reconcile_partitions(tbl text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    parent regclass := format('@extschema@.%I', tbl)::regclass;
    part record;
    bounds text[];
    lo timestamptz;
    hi timestamptz;
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

    -- attached: correct bounds that changed; count the rows of a partition not recorded (adopted: a
    -- restore, or ATTACH by hand) or recorded as empty but holding rows written without commit_batch() (a
    -- restore writes into the partitions CREATE EXTENSION made, under the same names). A partition with
    -- rows to count is counted again under SHARE, so no writer is mid-batch in it and the count is exact.
    FOR part IN
        SELECT c.oid, c.relname, c.relnamespace, pg_get_expr(c.relpartbound, c.oid) AS bound,
               s.partition_name AS recorded, s.lower_bound, s.upper_bound, s.row_count
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          LEFT JOIN @extschema@.partition_state s ON s.partition_name = c.relname AND s.table_name = tbl
                                                 AND c.relnamespace = '@extschema@'::regnamespace
         WHERE i.inhparent = parent
         ORDER BY c.relname
    LOOP
        bounds := regexp_match(part.bound, '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$');
        IF bounds IS NULL OR part.relnamespace <> '@extschema@'::regnamespace THEN
            RAISE WARNING 'chainwatch: partition % of %.% is not managed (%): maintain() neither counts nor drops it',
                part.oid::regclass, '@extschema@', tbl,
                CASE WHEN bounds IS NULL THEN 'bounds ' || part.bound ELSE 'outside schema @extschema@' END;
            CONTINUE;
        END IF;
        lo := bounds[1]::timestamptz;
        hi := bounds[2]::timestamptz;
        IF part.recorded IS NOT NULL AND (part.lower_bound, part.upper_bound) IS DISTINCT FROM (lo, hi) THEN
            UPDATE @extschema@.partition_state s SET lower_bound = lo, upper_bound = hi
             WHERE s.partition_name = part.relname;
            RAISE WARNING 'chainwatch: partition %.% is attached as [%, %), recorded as [%, %); maintain() records the attached bounds',
                '@extschema@', part.relname, lo, hi, part.lower_bound, part.upper_bound;
            changed := changed + 1;
        END IF;
        CONTINUE WHEN part.row_count > 0;
        EXECUTE format('SELECT count(*) FROM %s', part.oid::regclass) INTO n;
        -- nothing to count; an empty past partition is not adopted (a restore may be about to load it,
        -- and maintain() would drop it as empty)
        CONTINUE WHEN n = 0 AND (part.recorded IS NOT NULL OR hi <= now());
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', part.oid::regclass);
        EXECUTE format('SELECT count(*) FROM %s', part.oid::regclass) INTO n;
        IF part.recorded IS NOT NULL THEN
            UPDATE @extschema@.partition_state s SET row_count = n WHERE s.partition_name = part.relname;
            RAISE LOG 'chainwatch: partition %.% was recorded as empty but holds % row(s) written outside commit_batch(); counted',
                '@extschema@', part.relname, n;
        ELSE
            INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound, row_count)
            VALUES (part.relname, tbl, lo, hi, n);
            RAISE LOG 'chainwatch: adopted partition %.% [%, %) of %.% with % row(s): it was attached outside maintain()',
                '@extschema@', part.relname, lo, hi, '@extschema@', tbl, n;
        END IF;
        changed := changed + 1;
    END LOOP;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION @extschema@._reconcile_partitions(text) IS
    'Internal: makes partition_state match the catalog: forgets partitions detached or dropped by hand (a WARNING each), adopts partitions attached outside maintain() (a pg_dump restore) and corrects changed bounds, and counts rows found in partitions recorded as empty. Returns the number of changes.';
REVOKE EXECUTE ON FUNCTION @extschema@._reconcile_partitions(text) FROM PUBLIC;

-- _create_partition: as in 0.7.0, but a name still taken (a table detached by hand) gets a suffix
CREATE OR REPLACE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
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

-- _ensure_partitions: covers every slot from the one holding now() to premake widths ahead
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
COMMENT ON FUNCTION @extschema@._ensure_partitions(text) IS
    'Internal: creates a partition for every uncovered slot from the current one to premake widths ahead, holes included.';

-- maintain: as in 0.5.0, with step 1 starting each table by _reconcile_partitions, and no training in a
-- run that changed partition_state
CREATE OR REPLACE FUNCTION @extschema@.maintain()
RETURNS TABLE (table_name text, partitions_created int, partitions_dropped int, rows_evicted bigint, error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tables text[] := ARRAY['transactions', 'anomalies', 'dead_letters'];   -- the lock order
    created int[] := '{0,0,0}';
    dropped int[] := '{0,0,0}';
    evicted bigint[] := '{0,0,0}';
    reconciled int[] := '{0,0,0}';
    errs text[] := '{NULL,NULL,NULL}';
    ms float8[] := '{0,0,0}';
    t0 timestamptz;
    d record;
    err text;
    i int;
BEGIN
    PERFORM @extschema@._load();
    -- one maintainer at a time; a second caller returns at once
    IF NOT pg_try_advisory_xact_lock(hashtext('chainwatch.maintain')) THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', @extschema@._setting('maintenance_lock_timeout', '200'), true);

    -- 1. partition_state reconciled with the catalog (0.8.0), then partitions ahead, each table in a
    -- subtransaction no later step can undo
    FOR i IN 1 .. 3 LOOP
        t0 := clock_timestamp();
        BEGIN
            reconciled[i] := @extschema@._reconcile_partitions(tables[i]);
            created[i] := @extschema@._ensure_partitions(tables[i]);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            errs[i] := 'creating partitions: ' || err;
        END;
        ms[i] := ms[i] + extract(epoch FROM clock_timestamp() - t0) * 1000;
    END LOOP;

    -- 2. drops, under ACCESS EXCLUSIVE on each parent, in table order
    FOR i IN 1 .. 3 LOOP
        t0 := clock_timestamp();
        BEGIN
            SELECT * INTO d FROM @extschema@._drop_partitions(tables[i]);
            dropped[i] := d.dropped;
            evicted[i] := d.evicted;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            errs[i] := concat_ws('; ', errs[i], 'dropping partitions: ' || err);
        END;
        ms[i] := ms[i] + extract(epoch FROM clock_timestamp() - t0) * 1000;
    END LOOP;

    -- 3. row bounds (after set_retention lowered one), after all DDL, under the bookkeeping locks
    FOR i IN 1 .. 3 LOOP
        t0 := clock_timestamp();
        BEGIN
            evicted[i] := evicted[i] + @extschema@._enforce_bound(tables[i]);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            errs[i] := concat_ws('; ', errs[i], 'enforcing the bound: ' || err);
        END;
        ms[i] := ms[i] + extract(epoch FROM clock_timestamp() - t0) * 1000;
    END LOOP;

    -- 4. a first model (or a retrain) when due, but never in a run that dropped partitions, evicted
    -- rows or changed partition_state rows (0.8.0): it would hold ACCESS EXCLUSIVE on a table, the
    -- retention_stats rows writers update when they evict, or partition_state rows writers count into,
    -- for as long as training takes; the next run (chainwatch.maintenance_interval later) trains
    -- instead. It comes before the record of the run, which locks those rows too.
    IF (SELECT sum(x) FROM unnest(dropped) x) = 0 AND (SELECT sum(x) FROM unnest(evicted) x) = 0
       AND (SELECT sum(x) FROM unnest(reconciled) x) = 0 THEN
        BEGIN
            PERFORM @extschema@._auto_train();
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            RAISE WARNING 'chainwatch: automatic training failed: %', err;
        END;
    END IF;

    -- 5. the record of this run
    FOR i IN 1 .. 3 LOOP
        BEGIN
            UPDATE @extschema@.retention_stats s
               SET partitions_created = s.partitions_created + created[i],
                   last_maintenance_at = now(),
                   last_maintenance_ms = ms[i],
                   last_maintenance_error = errs[i]
             WHERE s.table_name = tables[i];
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            RAISE LOG 'chainwatch: could not record maintenance of %: lock timeout', tables[i];
        END;
        table_name := tables[i]; partitions_created := created[i]; partitions_dropped := dropped[i];
        rows_evicted := evicted[i]; error := errs[i];
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.maintain() IS
    'Reconciles partition_state with the catalog (partitions detached, dropped or attached by hand or by a restore), creates partitions ahead, drops expired and entirely excess ones, enforces row bounds, trains a first model when due (in a run that dropped, evicted and reconciled nothing); each step of each table in its own subtransaction, so a lock timeout while dropping never undoes the partitions created. Safe to call concurrently (a second caller returns at once) and under load (each lock waits at most chainwatch.maintenance_lock_timeout ms). Run every chainwatch.maintenance_interval by the background worker. SECURITY DEFINER: runs as the extension owner; EXECUTE is granted by sql/roles.sql.';

-- Partitions are ordinary tables, not members of the extension. Up to 0.7.0 the ones made while the
-- extension's scripts ran (CREATE EXTENSION made the first few) became members, and pg_dump leaves out
-- extension members, their rows included. Release them, attached or already detached by hand (by their
-- generated names); partitions maintain() makes later never were members.
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
           AND c.relkind = 'r'
           AND (c.relispartition
                OR (c.relnamespace = '@extschema@'::regnamespace
                    AND c.relname ~ '^(transactions|anomalies|dead_letters)_p[0-9]{8}_[0-9]{6}'))
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
