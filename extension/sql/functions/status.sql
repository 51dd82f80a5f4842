-- extension/sql/functions/status.sql — what operators and the daemons read about the store
--
-- status() is SECURITY DEFINER and returns aggregates only (row counts, oldest row age, bytes), so the
-- ingestor's /metrics and the monitor read them without SELECT on any row. It is VOLATILE: it calls
-- pg_total_relation_size, which is. It resolves partition names with to_regclass(): maintain() may drop a
-- partition after the calling statement took its snapshot, and a dropped partition counts 0 bytes.

CREATE FUNCTION @extschema@.anomaly_stats(since interval DEFAULT interval '1 hour')
RETURNS TABLE (severity @extschema@.severity_level, anomalies bigint)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT l.severity, count(a.id)
      FROM unnest(enum_range(NULL::@extschema@.severity_level)) AS l(severity)
      LEFT JOIN @extschema@.recent_anomalies a
             ON a.severity = l.severity AND a.detected_at > now() - anomaly_stats.since
     GROUP BY l.severity ORDER BY l.severity
$$;

COMMENT ON FUNCTION @extschema@.anomaly_stats(interval) IS 'Anomalies by severity detected within a window (and the TTL).';

CREATE FUNCTION @extschema@.status()
RETURNS TABLE (table_name text, rows bigint, max_rows bigint, ttl interval, partitions int,
               oldest_row_age interval, bytes bigint, evicted_ttl bigint, evicted_size bigint,
               last_maintenance_at timestamptz, last_maintenance_ms float8, last_maintenance_error text,
               active_model_id int, last_ingest_at timestamptz)
LANGUAGE sql VOLATILE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.table_name,
           CASE WHEN p.table_name = 'address_profiles'
                THEN (SELECT coalesce(sum(c.profiles), 0)::bigint FROM @extschema@.address_profile_counts c)
                ELSE (SELECT coalesce(sum(s.row_count), 0)::bigint FROM @extschema@.partition_state s WHERE s.table_name = p.table_name) END,
           p.max_rows, p.ttl,
           (SELECT count(*)::int FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           now() - CASE p.table_name
                       WHEN 'anomalies' THEN (SELECT min(a.detected_at) FROM @extschema@.anomalies a)
                       WHEN 'transactions' THEN (SELECT min(t.detected_at) FROM @extschema@.transactions t)
                       WHEN 'address_profiles' THEN (SELECT min(a.updated_at) FROM @extschema@.address_profiles a)
                       ELSE (SELECT min(d.received_at) FROM @extschema@.dead_letters d) END,
           CASE WHEN p.table_name = 'address_profiles'
                THEN pg_catalog.pg_total_relation_size('@extschema@.address_profiles'::regclass)
                ELSE (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(format('@extschema@.%I', s.partition_name)))), 0)::bigint
                        FROM @extschema@.partition_state s WHERE s.table_name = p.table_name) END,
           r.evicted_ttl, r.evicted_size, r.last_maintenance_at, r.last_maintenance_ms, r.last_maintenance_error,
           (SELECT m.id FROM @extschema@.models m WHERE m.is_active),
           (SELECT i.last_ingest_at FROM @extschema@.ingest_state i)
      FROM @extschema@.retention_policies p JOIN @extschema@.retention_stats r USING (table_name)
     ORDER BY p.table_name
$$;

COMMENT ON FUNCTION @extschema@.status() IS
    'One row per managed table (address_profiles: no partitions, the age of the least recently updated profile): rows, bound, TTL, partitions, age of the oldest partition holding rows, bytes, evictions by reason, last maintenance, active model, last ingest. Offsets: chainwatch.kafka_offsets. SECURITY DEFINER: aggregates only, for roles that may not read the rows.';

-- recent_anomaly_count: partitions lying entirely inside the TTL window contribute their exact
-- partition_state row_count (kept by commit_batch() and maintain()); only rows older than the oldest such
-- partition (the partition straddling the TTL boundary) are counted one by one. Equal to
-- SELECT count(*) FROM recent_anomalies, without scanning every row.
CREATE FUNCTION @extschema@.recent_anomaly_count() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    horizon timestamptz;
    boundary timestamptz;
    inside bigint;
    straddling bigint;
BEGIN
    SELECT now() - p.ttl INTO horizon FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies';
    SELECT min(s.lower_bound), coalesce(sum(s.row_count), 0) INTO boundary, inside
      FROM @extschema@.partition_state s
     WHERE s.table_name = 'anomalies' AND s.lower_bound > horizon;
    SELECT count(*) INTO straddling FROM @extschema@.anomalies a
     WHERE a.detected_at > horizon AND a.detected_at < coalesce(boundary, 'infinity');
    RETURN inside + straddling;
END
$$;

COMMENT ON FUNCTION @extschema@.recent_anomaly_count() IS
    'count(*) of chainwatch.recent_anomalies from the partition row counts: only the partition straddling the TTL boundary is scanned.';
