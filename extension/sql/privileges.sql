-- extension/sql/privileges.sql — least privilege: what PUBLIC may not do
--
-- * Writes the daemons cannot be trusted with go through a few SECURITY DEFINER functions, so that
--   sql/roles.sql can grant each role only what it must do:
--     commit_batch()   the ingest transaction's bookkeeping: kafka_offsets, partition_state, ingest_state,
--                      retention_stats, and eviction of the oldest rows (DELETE on partitions, including
--                      partitions created after the grants were made). The ingestor's role keeps only INSERT
--                      on the three store tables (its COPY).
--     maintain()       partition DDL and TTL drops, as the extension owner.
--     activate_model(), rollback_model()
--                      LOCK TABLE models and flip is_active: the API's role needs no UPDATE on models.
--     create_api_key(), revoke_api_key()
--                      the API's role manages keys through these and never sees key_hash.
--     status()         aggregates only, for roles that may not read the rows.
-- * EXECUTE on each of them, and on the internal helpers they call, is revoked from PUBLIC: only the roles
--   sql/roles.sql names (and the owner) may call them. A SECURITY DEFINER function runs as the owner, so
--   revoking the helpers from PUBLIC does not break the calls made through it.
-- * Every definer function pins search_path = pg_catalog, pg_temp and qualifies every object with
--   @extschema@; dynamic SQL quotes identifiers with %I and takes partition names only from partition_state,
--   a table no daemon role may write.

REVOKE ALL ON @extschema@.api_keys FROM PUBLIC;

REVOKE ALL ON @extschema@.api_key_list FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@.create_api_key(text, text, timestamptz) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@.revoke_api_key(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@.revoke_api_key(int) FROM PUBLIC;

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

REVOKE EXECUTE ON FUNCTION @extschema@._lock_counters(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._drop_partitions(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._wei_float8(numeric) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._reconcile_partitions(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._profiles_from_batch() FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._count_profiles(bigint, int) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._delete_profiles(tid[], timestamptz) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._evict_profiles() FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@.rebuild_address_profiles() FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._sketch_merge(bigint[], bigint[]) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._profile_merge_sql(text, text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._profile_upsert_sql(text, text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._profile_fold_sql(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._bucket_count(bigint, bigint, bigint, bigint) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._bucket_prev(bigint, bigint, bigint, bigint, bigint, bigint) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._profile_batch() FROM PUBLIC;

-- the features read address profiles through this definer function: the ingestor's and the API's roles (sql/roles.sql)
REVOKE EXECUTE ON FUNCTION @extschema@._batch_profiles(text[]) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._flags(int, text, numeric, numeric, numeric, float8[]) FROM PUBLIC;
