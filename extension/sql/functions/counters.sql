-- extension/sql/functions/counters.sql — row counts per partition and the row bound, inside ingest transactions
--
-- * Before touching a table's partition_state rows, a transaction takes that table's bookkeeping lock
--   (_lock_counters), in the fixed table order transactions, anomalies, dead_letters. A batch that inserted
--   nothing into a table takes no lock on it (unless the table is over its bound). Every writer updates the
--   newest partition's row, so their bookkeeping of a table is serialized anyway; the lock makes it explicit
--   and cycle-free (0.4.0 deadlocked at partition boundaries without it).
-- * _enforce_bound runs no DDL (it runs inside ingest transactions): whole partitions are emptied with
--   DELETE, and maintain() drops the emptied partitions.

-- _lock_counters takes a table's bookkeeping lock for the rest of the transaction.
CREATE FUNCTION @extschema@._lock_counters(tbl text) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('chainwatch.partition_state'), pg_catalog.hashtext(tbl)) $$;

COMMENT ON FUNCTION @extschema@._lock_counters(text) IS
    'Internal: takes the bookkeeping lock of a managed table (serializes changes to its partition_state row counts) until the end of the transaction.';

CREATE FUNCTION @extschema@._xact_inserted(relid oid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'chainwatch_xact_inserted';

COMMENT ON FUNCTION @extschema@._xact_inserted(oid) IS 'Internal: rows the current transaction has inserted into a table.';

-- _count_inserts reads this transaction's counts first (no lock), then, if it inserted anything, takes the
-- table's bookkeeping lock and adds them in one statement.
CREATE FUNCTION @extschema@._count_inserts(tbl text) RETURNS bigint
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

COMMENT ON FUNCTION @extschema@._count_inserts(text) IS 'Internal: adds the rows this transaction inserted into a table to its partition counters.';

-- _enforce_bound evicts the oldest rows of a table until it holds at most max_rows; returns rows evicted. A
-- table within its bound is left alone without a lock; otherwise the bookkeeping lock is taken and the total
-- read again under it.
CREATE FUNCTION @extschema@._enforce_bound(tbl text) RETURNS bigint
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

COMMENT ON FUNCTION @extschema@._enforce_bound(text) IS 'Internal: deletes the oldest rows of a table beyond its max_rows.';
