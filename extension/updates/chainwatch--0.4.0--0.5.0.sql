-- extension/sql/chainwatch--0.4.0--0.5.0.sql — chainwatch 0.5.0: maintenance and ingest bookkeeping without deadlocks or lost partitions
--
-- Design (what the 30-minute soak of 0.4.0 showed, and the rules that replace the old ones)
--
-- * 0.4.0's maintain() created partitions, dropped expired ones and enforced the bound of a table in one
--   subtransaction. A drop that hit its 200 ms lock timeout rolled back the partitions created a moment
--   before; under steady ingest that happened 78 times in 30 minutes, the premade partitions ran out and
--   the ingestor's batches failed with "no partition ... found for row" until a run got through. Now
--   maintain() runs in phases, each table's step in a subtransaction of its own:
--     1. create partitions ahead (ATTACH takes SHARE UPDATE EXCLUSIVE on the parent: it never waits for
--        ingest and ingest never waits for it), touching no row a writer touches;
--     2. drop expired and entirely excess partitions: LOCK TABLE parent IN ACCESS EXCLUSIVE MODE first,
--        then DROP each partition, and only then delete its partition_state row. 0.4.0 deleted the row
--        first and took the parent's lock inside DROP, after the partition's: a writer evicting rows
--        from that partition (it holds the parent from its COPY) and maintain() then waited on each other;
--     3. enforce the row bounds, after all DDL, under the bookkeeping locks below;
--     4. train a first model (or retrain) when due, only in a run that dropped no partition and evicted
--        no row: 0.4.0 trained at the very end, holding whatever the run had locked, so ingest could
--        wait behind maintenance for the whole training;
--     5. record the run in retention_stats (a failure here loses counters, never rows or partitions).
--   A lock timeout in one step skips only that step of that table until the next run.
-- * Writers deadlocked (1 to 3 times in 30 minutes) at partition boundaries: _count_inserts() locked
--   only the partition_state rows its batch touched, newest partitions first in one writer and the
--   boundary's two partitions in another, and _enforce_bound() then locked the oldest rows. Every
--   writer updates the newest partition's row, so their bookkeeping of a table was already serialized;
--   0.5.0 makes that explicit and cycle-free: before touching a table's partition_state rows, a
--   transaction takes that table's bookkeeping lock (an advisory transaction lock keyed on
--   'chainwatch.partition_state' and the table name), in the fixed table order transactions,
--   anomalies, dead_letters. A batch that inserted nothing into a table takes no lock on it (unless the
--   table is over its bound).
-- * The whole lock order, for docs/store.md: table locks first (a writer's COPY, maintenance's DDL),
--   in table order; then the bookkeeping locks, in table order; then retention_stats and ingest_state
--   rows. Nobody who holds a later lock waits for an earlier one.

-- _lock_counters takes a table's bookkeeping lock for the rest of the transaction.
CREATE FUNCTION @extschema@._lock_counters(tbl text) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('chainwatch.partition_state'), pg_catalog.hashtext(tbl)) $$;
COMMENT ON FUNCTION @extschema@._lock_counters(text) IS
    'Internal: takes the bookkeeping lock of a managed table (serializes changes to its partition_state row counts) until the end of the transaction.';
REVOKE EXECUTE ON FUNCTION @extschema@._lock_counters(text) FROM PUBLIC;

-- _create_partition no longer counts in retention_stats (a row writers update while evicting):
-- maintain() adds the partitions it created in its last phase.
CREATE OR REPLACE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pname text := format('%s_p%s', tbl, to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'));
BEGIN
    EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname, tbl);
    -- ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: ingest and queries go on
    EXECUTE format('ALTER TABLE @extschema@.%I ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                   tbl, pname, lower_bound, upper_bound);
    INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound)
    VALUES (pname, tbl, _create_partition.lower_bound, _create_partition.upper_bound);
    RETURN pname;
END
$$;

-- _drop_partition: the DDL lock first, the bookkeeping row after; the caller holds (or DROP takes)
-- ACCESS EXCLUSIVE on the parent, so no writer is counting into the partition and its row_count is final.
CREATE OR REPLACE FUNCTION @extschema@._drop_partition(pname text, reason text) RETURNS bigint
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
REVOKE EXECUTE ON FUNCTION @extschema@._drop_partitions(text) FROM PUBLIC;

-- _enforce_bound: a table within its bound is left alone without a lock; otherwise the bookkeeping
-- lock is taken and the total read again under it.
CREATE OR REPLACE FUNCTION @extschema@._enforce_bound(tbl text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
    total bigint;
    excess bigint;
    part record;
    n bigint;
    evicted bigint := 0;
BEGIN
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
    SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    IF total <= pol.max_rows THEN
        RETURN 0;
    END IF;
    PERFORM @extschema@._lock_counters(tbl);
    SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    excess := total - pol.max_rows;
    FOR part IN SELECT s.* FROM @extschema@.partition_state s
                 WHERE s.table_name = tbl AND s.row_count > 0
                 ORDER BY s.lower_bound
    LOOP
        EXIT WHEN excess <= 0;
        IF part.row_count <= excess THEN
            EXECUTE format('DELETE FROM @extschema@.%I', part.partition_name);
        ELSE
            EXECUTE format('DELETE FROM @extschema@.%1$I WHERE ctid = ANY (ARRAY(SELECT ctid FROM @extschema@.%1$I ORDER BY %2$I LIMIT %3$s))',
                           part.partition_name, pol.time_column, excess);
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        -- a whole-partition delete leaves it empty whatever the counter said
        UPDATE @extschema@.partition_state s
           SET row_count = CASE WHEN part.row_count <= excess THEN 0 ELSE greatest(s.row_count - n, 0) END
         WHERE s.partition_name = part.partition_name;
        excess := excess - n;
        evicted := evicted + n;
    END LOOP;
    IF evicted > 0 THEN
        UPDATE @extschema@.retention_stats s SET evicted_size = s.evicted_size + evicted WHERE s.table_name = tbl;
    END IF;
    RETURN evicted;
END
$$;

-- _count_inserts: read this transaction's counts first (no lock), then, if it inserted anything,
-- take the table's bookkeeping lock and add them in one statement.
CREATE OR REPLACE FUNCTION @extschema@._count_inserts(tbl text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    n bigint;
    names text[] := '{}';
    counts bigint[] := '{}';
    total bigint := 0;
BEGIN
    FOR part IN SELECT s.partition_name, c.oid AS relid
                  FROM @extschema@.partition_state s
                  JOIN pg_catalog.pg_class c ON c.relname = s.partition_name
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = '@extschema@'
                 WHERE s.table_name = tbl
    LOOP
        n := @extschema@._xact_inserted(part.relid);
        IF n > 0 THEN
            names := names || part.partition_name;
            counts := counts || n;
            total := total + n;
        END IF;
    END LOOP;
    IF total > 0 THEN
        PERFORM @extschema@._lock_counters(tbl);
        UPDATE @extschema@.partition_state s SET row_count = s.row_count + c.n
          FROM unnest(names, counts) AS c(name, n)
         WHERE s.partition_name = c.name;
    END IF;
    RETURN total;
END
$$;

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

    -- 1. partitions ahead, each table in a subtransaction no later step can undo
    FOR i IN 1 .. 3 LOOP
        t0 := clock_timestamp();
        BEGIN
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

    -- 4. a first model (or a retrain) when due, but never in a run that dropped partitions or evicted
    -- rows: it would hold ACCESS EXCLUSIVE on a table, or the retention_stats rows writers update when
    -- they evict, for as long as training takes; the next run (chainwatch.maintenance_interval later)
    -- trains instead. It comes before the record of the run, which locks those rows too.
    IF (SELECT sum(x) FROM unnest(dropped) x) = 0 AND (SELECT sum(x) FROM unnest(evicted) x) = 0 THEN
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
    'Creates partitions ahead, drops expired and entirely excess ones, enforces row bounds, trains a first model when due (in a run that dropped and evicted nothing); each step of each table in its own subtransaction, so a lock timeout while dropping never undoes the partitions created. Safe to call concurrently (a second caller returns at once) and under load (each lock waits at most chainwatch.maintenance_lock_timeout ms). Run every chainwatch.maintenance_interval by the background worker. SECURITY DEFINER: runs as the extension owner; EXECUTE is granted by sql/roles.sql.';

-- _wei_float8 exposes the conversion the scorers apply to a wei amount, for tests: 0.5.0 converts integral
-- amounts below 2^64 from numeric's digits directly (no text round trip) and must agree with float8(numeric).
CREATE FUNCTION @extschema@._wei_float8(amount numeric) RETURNS float8
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'chainwatch_wei_float8';
COMMENT ON FUNCTION @extschema@._wei_float8(numeric) IS
    'Internal: the float8 a wei amount becomes as a model feature (equal to float8(numeric)); errors on negative, NaN and infinite amounts.';
REVOKE EXECUTE ON FUNCTION @extschema@._wei_float8(numeric) FROM PUBLIC;
