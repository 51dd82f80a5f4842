-- extension/sql/chainwatch--0.3.0--0.4.0.sql — chainwatch 0.4.0: least privilege for the daemons' roles
--
-- Design (the invariants)
--
-- * Writes the daemons cannot be trusted with go through a few SECURITY DEFINER functions, so that
--   sql/roles.sql can grant each role only what it must do:
--     commit_batch()   the ingest transaction's bookkeeping: kafka_offsets, partition_state,
--                      ingest_state, retention_stats, and eviction of the oldest rows (DELETE on
--                      partitions, including partitions created after the grants were made).
--                      The ingestor's role keeps only INSERT on the three store tables (its COPY).
--     maintain()       partition DDL and TTL drops, as the extension owner: a role that may call it
--                      needs no membership in the owner's role (which sql/roles.sql once granted to
--                      the ingestor where no maintenance worker runs).
--     activate_model(), rollback_model()
--                      LOCK TABLE models and flip is_active: the API's role needs no UPDATE on models.
--     create_api_key(), revoke_api_key()
--                      the API's role manages keys through these and never sees key_hash.
--     status()         aggregates only (row counts, oldest row age, bytes): the ingestor's /metrics
--                      and the monitor read them without SELECT on any row.
-- * EXECUTE on each of them, and on the internal helpers they call, is revoked from PUBLIC: only the
--   roles sql/roles.sql names (and the owner) may call them. A SECURITY DEFINER function runs as the
--   owner, so revoking the helpers from PUBLIC does not break the calls made through it.
-- * Every definer function already pins search_path = pg_catalog, pg_temp and qualifies every object
--   with @extschema@; dynamic SQL quotes identifiers with %I and takes partition names only from
--   partition_state, a table no daemon role may write.
-- * status() resolves partition names with to_regclass(): maintain() may drop a partition after the
--   calling statement took its snapshot, and a ::regclass cast then failed with 42P01 (seen by the
--   fault-injection suite as an occasional 503 from /api/v1/stats); a dropped partition counts 0 bytes.
-- * api_keys.created_by records session_user (the login role) rather than current_user, which inside a
--   SECURITY DEFINER function is the owner.

ALTER FUNCTION @extschema@.commit_batch(text, text, int[], bigint[], bigint[], int) SECURITY DEFINER;
ALTER FUNCTION @extschema@.maintain() SECURITY DEFINER;
ALTER FUNCTION @extschema@.activate_model(int, text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.rollback_model() SECURITY DEFINER;
ALTER FUNCTION @extschema@.create_api_key(text, text, timestamptz) SECURITY DEFINER;
ALTER FUNCTION @extschema@.revoke_api_key(text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.revoke_api_key(int) SECURITY DEFINER;

ALTER TABLE @extschema@.api_keys ALTER COLUMN created_by SET DEFAULT session_user;

REVOKE EXECUTE ON FUNCTION @extschema@.commit_batch(text, text, int[], bigint[], bigint[], int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.maintain() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.activate_model(int, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.rollback_model() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.drop_model(int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.set_retention(text, interval, bigint, interval, int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._create_partition(text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._ensure_partitions(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._drop_partition(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._enforce_bound(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._count_inserts(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._xact_inserted(oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@._auto_train() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.authenticate_api_key(text) FROM PUBLIC;

COMMENT ON FUNCTION @extschema@.commit_batch(text, text, int[], bigint[], bigint[], int) IS
    'Ends an ingest transaction: checks the scoring model is still active (CW001), refuses replayed offsets (CW002), stores the next offsets, counts the rows COPYed in this transaction, enforces the row bounds and returns the counts. SECURITY DEFINER: callers need only INSERT on the store tables.';
COMMENT ON FUNCTION @extschema@.activate_model(int, text) IS
    'Makes a model the active one (used when scoring without a model id), records the activation and notifies channel chainwatch_model. SECURITY DEFINER; EXECUTE is granted by sql/roles.sql.';
COMMENT ON FUNCTION @extschema@.rollback_model() IS
    'Re-activates the model that was active before the current one; repeated calls walk further back. Returns its id. SECURITY DEFINER; EXECUTE is granted by sql/roles.sql.';
COMMENT ON FUNCTION @extschema@.maintain() IS
    'Creates partitions ahead, drops expired and entirely excess ones, enforces row bounds, trains a first model when due. Safe to call concurrently (a second caller returns at once) and under load (DDL waits at most chainwatch.maintenance_lock_timeout ms). Run every chainwatch.maintenance_interval by the background worker. SECURITY DEFINER: runs as the extension owner; EXECUTE is granted by sql/roles.sql.';

CREATE OR REPLACE FUNCTION @extschema@.status()
RETURNS TABLE (table_name text, rows bigint, max_rows bigint, ttl interval, partitions int,
               oldest_row_age interval, bytes bigint, evicted_ttl bigint, evicted_size bigint,
               last_maintenance_at timestamptz, last_maintenance_ms float8, last_maintenance_error text,
               active_model_id int, last_ingest_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.table_name,
           (SELECT coalesce(sum(s.row_count), 0)::bigint FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           p.max_rows, p.ttl,
           (SELECT count(*)::int FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           now() - CASE p.table_name
                       WHEN 'anomalies' THEN (SELECT min(a.detected_at) FROM @extschema@.anomalies a)
                       WHEN 'transactions' THEN (SELECT min(t.detected_at) FROM @extschema@.transactions t)
                       ELSE (SELECT min(d.received_at) FROM @extschema@.dead_letters d) END,
           (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(format('@extschema@.%I', s.partition_name)))), 0)::bigint
              FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           r.evicted_ttl, r.evicted_size, r.last_maintenance_at, r.last_maintenance_ms, r.last_maintenance_error,
           (SELECT m.id FROM @extschema@.models m WHERE m.is_active),
           (SELECT i.last_ingest_at FROM @extschema@.ingest_state i)
      FROM @extschema@.retention_policies p JOIN @extschema@.retention_stats r USING (table_name)
     ORDER BY p.table_name
$$;
COMMENT ON FUNCTION @extschema@.status() IS
    'One row per managed table: rows, bound, TTL, partitions, age of the oldest partition holding rows, bytes, evictions by reason, last maintenance, active model, last ingest. Offsets: chainwatch.kafka_offsets. SECURITY DEFINER: aggregates only, for roles that may not read the rows.';
