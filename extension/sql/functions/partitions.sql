-- extension/sql/functions/partitions.sql — the partitions of the managed tables: width, creation, drops, reconciliation
--
-- * _reconcile_partitions makes partition_state match the catalog at the start of each maintain() run:
--     - a recorded partition no longer attached is forgotten, with a WARNING; a detached table is left as it
--       is, rows and all: it is the operator's now;
--     - an attached partition in the chainwatch schema with a plain FROM/TO range that is not recorded is
--       adopted with its rows counted, unless it is empty and in the past (a restore may be about to load it;
--       maintain() would drop an adopted empty past partition); a recorded one whose bounds changed
--       (re-attached by hand) gets its bounds corrected;
--     - a partition recorded as empty that holds rows (a restore writes the dump's rows for the present into
--       the partitions CREATE EXTENSION made, under the same names) is counted.
--   Counting takes SHARE on the partition, so no writer is mid-batch in it and the count is exact.
-- * _ensure_partitions then fills every uncovered slot from the one holding now() to premake widths ahead,
--   holes included. A new partition stops at the next recorded one; a slot that overlaps a partition
--   maintain() does not manage is skipped with a WARNING instead of failing the run. Only the present and the
--   future are repaired: rows are written with the current time, so a hole in the past can receive nothing.
-- * A partition's name comes from its lower bound; a name still taken (a detached table kept) gets the first
--   free numeric suffix (_2, _3, ...). Bounds travel as text between the catalog and these functions: they
--   run with TimeZone UTC and DateStyle ISO, so a session's settings cannot shift them.
-- * Drops take the parent's ACCESS EXCLUSIVE lock first, as a writer's COPY takes the parent first, then DROP
--   each partition, and only then delete its partition_state row (docs/store.md, lock order).

CREATE FUNCTION @extschema@.partition_width(table_name text) RETURNS interval
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(p.partition_width, greatest(p.ttl / 12, interval '10 seconds'))
      FROM @extschema@.retention_policies p WHERE p.table_name = partition_width.table_name
$$;

COMMENT ON FUNCTION @extschema@.partition_width(text) IS 'Width of new partitions of a managed table: its partition_width, or ttl / 12.';

-- _create_partition creates and attaches one partition [lower, upper) of a managed table.
CREATE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
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

COMMENT ON FUNCTION @extschema@._create_partition(text, timestamptz, timestamptz) IS 'Internal: creates and attaches one partition of a managed table.';

-- _ensure_partitions covers every slot from the one holding now() to premake widths ahead.
CREATE FUNCTION @extschema@._ensure_partitions(tbl text) RETURNS int
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
        -- a hole wholly in the past (the aligned slot of a wider width starts before the partition
        -- holding now()): no row can go there, and _drop_partitions would drop it again as empty,
        -- so every run would create and drop it, and never train (0.9.0)
        IF upper_ts <= now() THEN
            cursor_ts := upper_ts;
            CONTINUE;
        END IF;
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

-- _drop_partition: the DDL lock first, the bookkeeping row after; the caller holds (or DROP takes) ACCESS
-- EXCLUSIVE on the parent, so no writer is counting into the partition and its row_count is final.
CREATE FUNCTION @extschema@._drop_partition(pname text, reason text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    SELECT s.table_name INTO st FROM @extschema@.partition_state s WHERE s.partition_name = pname;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    EXECUTE format('LOCK TABLE @extschema@.%I IN ACCESS EXCLUSIVE MODE', st.table_name);
    -- the first partitions were created by CREATE EXTENSION and so belong to the extension:
    -- release such a partition from it before dropping it
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_class'::regclass
                  AND d.objid = pg_catalog.to_regclass(format('@extschema@.%I', pname))
                  AND d.refclassid = 'pg_catalog.pg_extension'::regclass
                  AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION chainwatch DROP TABLE @extschema@.%I', pname);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS @extschema@.%I', pname);
    DELETE FROM @extschema@.partition_state s WHERE s.partition_name = pname RETURNING * INTO st;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE @extschema@.retention_stats s
       SET evicted_ttl = s.evicted_ttl + CASE WHEN reason = 'ttl' THEN st.row_count ELSE 0 END,
           evicted_size = s.evicted_size + CASE WHEN reason = 'size' THEN st.row_count ELSE 0 END,
           partitions_dropped = s.partitions_dropped + 1
     WHERE s.table_name = st.table_name;
    RETURN st.row_count;
END
$$;

COMMENT ON FUNCTION @extschema@._drop_partition(text, text) IS 'Internal: drops a partition, counting its rows as evicted by ttl or size.';

-- _drop_partitions drops a table's expired partitions, then its oldest partitions that are entirely
-- excess or empty and in the past; returns how many it dropped and the rows they held.
CREATE FUNCTION @extschema@._drop_partitions(tbl text, OUT dropped int, OUT evicted bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
    part record;
    total bigint;
BEGIN
    dropped := 0;
    evicted := 0;
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
    -- nothing to do: take no lock (ingest must not queue behind a LOCK TABLE that drops nothing)
    SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    IF NOT EXISTS (SELECT 1 FROM @extschema@.partition_state s
                    WHERE s.table_name = tbl AND s.upper_bound <= now()
                      AND (s.upper_bound <= now() - pol.ttl OR s.row_count = 0 OR total - s.row_count >= pol.max_rows)) THEN
        RETURN;
    END IF;
    -- the parent first, as a writer's COPY does: then no writer is counting into this table
    EXECUTE format('LOCK TABLE @extschema@.%I IN ACCESS EXCLUSIVE MODE', tbl);
    FOR part IN SELECT s.partition_name FROM @extschema@.partition_state s
                 WHERE s.table_name = tbl AND s.upper_bound <= now() - pol.ttl
                 ORDER BY s.lower_bound LOOP
        evicted := evicted + @extschema@._drop_partition(part.partition_name, 'ttl');
        dropped := dropped + 1;
    END LOOP;
    SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    FOR part IN SELECT s.partition_name, s.row_count FROM @extschema@.partition_state s
                 WHERE s.table_name = tbl AND s.upper_bound <= now()
                 ORDER BY s.lower_bound LOOP
        IF total - part.row_count >= pol.max_rows THEN
            evicted := evicted + @extschema@._drop_partition(part.partition_name, 'size');
            total := total - part.row_count;
            dropped := dropped + 1;
        ELSIF part.row_count = 0 THEN
            PERFORM @extschema@._drop_partition(part.partition_name, 'size');
            dropped := dropped + 1;
        ELSE
            EXIT;
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION @extschema@._drop_partitions(text) IS
    'Internal: drops a managed table''s expired partitions and its oldest entirely excess or empty past ones, under ACCESS EXCLUSIVE on the table.';

-- _reconcile_partitions makes partition_state match the partitions attached to tbl; returns the changes.
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
