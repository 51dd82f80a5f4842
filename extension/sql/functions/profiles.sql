-- extension/sql/functions/profiles.sql — folding transactions into address profiles; rebuild, verify, evict
--
-- The design (what each column summarises, why every summary is commutative, the lock order) is in
-- tables/profiles.sql. The summaries of a set of transactions are computed two ways: in C by the statement
-- trigger (extension/src/profiles.c, for speed: a batch of 5,000 rows costs it a few milliseconds where the
-- SQL aggregation took ~120), and in SQL by _profile_merge_sql (rebuild_address_profiles(),
-- verify_address_profiles()). Both merge through the one upsert, _profile_upsert_sql; verify compares the
-- two, so the tests prove them equal on every stored row.
--
-- A transaction contributes to two profiles: its sender's (outgoing: count, value and gas price statistics,
-- the activity bucket, the recipient as a counterparty) and its recipient's (incoming: count, value, bucket,
-- the sender as a counterparty); both see its block and time. Rows without a sender or recipient (contract
-- creations have no recipient) contribute to the side that exists.

-- _sketch_merge: the PROFILE_PEERS (64) smallest distinct values of two sorted sketches, sorted (C: it runs
-- once per updated profile per batch; extension/src/sketch.c)
CREATE FUNCTION @extschema@._sketch_merge(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'chainwatch_sketch_merge';

COMMENT ON FUNCTION @extschema@._sketch_merge(bigint[], bigint[]) IS
    'Internal: merges two counterparty sketches (the 64 smallest distinct hashes of each) into the sketch of their union.';

-- sketch_distinct: a K-minimum-values estimate. With fewer than K hashes the sketch holds every distinct
-- counterparty and the count is exact; with K, the K-th smallest hash h (mapped to (0, 1]) estimates the
-- number of distinct values as (K - 1) / h (Bar-Yossef et al. 2002; relative standard error ~1 / sqrt(K - 2),
-- 13% for K = 64).
CREATE FUNCTION @extschema@.sketch_distinct(sketch bigint[]) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.cardinality(sketch) < 64 THEN pg_catalog.cardinality(sketch)::float8
                ELSE 63.0 / ((sketch[64]::numeric + 9223372036854775808.0 + 1) / 18446744073709551616.0)::float8 END
$$;

COMMENT ON FUNCTION @extschema@.sketch_distinct(bigint[]) IS
    'Distinct counterparties in an address_profiles sketch (out_peers, in_peers): exact below 64, a K-minimum-values estimate (about 13% error) above.';

-- _profile_upsert_sql returns the statement that merges the per-address summaries query `rows` yields (its
-- columns in address_profiles' order, one row per address, sorted by address COLLATE "C") into `target`
-- and returns how many profiles it created. The upsert takes the rows in that order, so every writer locks
-- profile rows in the same order and two writers never deadlock; they merge in parallel. (An UPDATE join
-- and an INSERT of the rest would cost a third less alone, but need a lock that serializes the writers
-- until their commit: bench-ingest measured 0.35 of the rate without profiles instead of 0.44.)
CREATE FUNCTION @extschema@._profile_upsert_sql(target text, rows text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
SELECT pg_catalog.format($q$
WITH m AS (
INSERT INTO %s AS o
    (address, first_block, last_block, first_seen_at, last_seen_at, last_out_at, updated_at, out_count, in_count,
     out_log_value_sum, out_log_value_sumsq, out_log_gas_price_sum, in_log_value_sum,
     out_bucket, out_bucket_count, out_prev_count, in_bucket, in_bucket_count, in_prev_count, out_peers, in_peers,
     out_value_count)
%s
ON CONFLICT (address) DO UPDATE SET
    first_block = least(o.first_block, excluded.first_block),
    last_block = greatest(o.last_block, excluded.last_block),
    first_seen_at = least(o.first_seen_at, excluded.first_seen_at),
    last_seen_at = greatest(o.last_seen_at, excluded.last_seen_at),
    last_out_at = greatest(o.last_out_at, excluded.last_out_at),
    updated_at = greatest(o.updated_at, excluded.updated_at),
    out_count = o.out_count + excluded.out_count,
    in_count = o.in_count + excluded.in_count,
    out_log_value_sum = o.out_log_value_sum + excluded.out_log_value_sum,
    out_log_value_sumsq = o.out_log_value_sumsq + excluded.out_log_value_sumsq,
    out_log_gas_price_sum = o.out_log_gas_price_sum + excluded.out_log_gas_price_sum,
    in_log_value_sum = o.in_log_value_sum + excluded.in_log_value_sum,
    out_bucket = greatest(o.out_bucket, excluded.out_bucket),
    out_bucket_count = @extschema@._bucket_count(o.out_bucket, o.out_bucket_count, excluded.out_bucket, excluded.out_bucket_count),
    out_prev_count = @extschema@._bucket_prev(o.out_bucket, o.out_bucket_count, o.out_prev_count,
                                              excluded.out_bucket, excluded.out_bucket_count, excluded.out_prev_count),
    in_bucket = greatest(o.in_bucket, excluded.in_bucket),
    in_bucket_count = @extschema@._bucket_count(o.in_bucket, o.in_bucket_count, excluded.in_bucket, excluded.in_bucket_count),
    in_prev_count = @extschema@._bucket_prev(o.in_bucket, o.in_bucket_count, o.in_prev_count,
                                             excluded.in_bucket, excluded.in_bucket_count, excluded.in_prev_count),
    out_peers = @extschema@._sketch_merge(o.out_peers, excluded.out_peers),
    in_peers = @extschema@._sketch_merge(o.in_peers, excluded.in_peers),
    out_value_count = o.out_value_count + excluded.out_value_count
RETURNING (o.xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE m.inserted) FROM m
$q$, target, rows)
$fn$;

COMMENT ON FUNCTION @extschema@._profile_upsert_sql(text, text) IS
    'Internal: the upsert that merges per-address summaries into address_profiles or a table like it.';

-- _profile_batch: the summaries of the batch the profile trigger is folding, as rows of address_profiles'
-- type (extension/src/profiles.c keeps them in memory while its fold statement runs; elsewhere: 55000)
CREATE FUNCTION @extschema@._profile_batch() RETURNS SETOF @extschema@.address_profiles
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE ROWS 5000 AS 'MODULE_PATHNAME', 'chainwatch_profile_batch';

COMMENT ON FUNCTION @extschema@._profile_batch() IS
    'Internal: the per-address summaries of the batch the trigger transactions_profiles is folding.';

-- _profile_fold_sql: the trigger's statement: the batch's summaries merged into target
CREATE FUNCTION @extschema@._profile_fold_sql(target text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@._profile_upsert_sql(target, 'SELECT * FROM @extschema@._profile_batch() b ORDER BY b.address COLLATE "C"') $$;

COMMENT ON FUNCTION @extschema@._profile_fold_sql(text) IS
    'Internal: the statement the trigger transactions_profiles runs to merge its batch (extension/src/profiles.c).';

-- _profile_merge_sql returns the statement that folds the transactions of relation `source` into `target`,
-- computing the summaries in SQL — the same numbers the trigger's C code computes (the log values in
-- millionths, rounded half to even; buckets by floor; sketches of the 64 smallest distinct hashes).
-- The summaries are grouped twice: per address, direction and activity bucket (so the counts of the latest
-- bucket and the one before are known), then per address.
CREATE FUNCTION @extschema@._profile_merge_sql(source text, target text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
SELECT @extschema@._profile_upsert_sql(target, pg_catalog.format($q$
WITH r AS (
    SELECT t.from_address AS sender, t.to_address AS recipient, t.block_number AS block, t.detected_at,
           CASE WHEN isfinite(t.tx_time) AND t.tx_time < t.detected_at THEN t.tx_time ELSE t.detected_at END AS at,
           round(ln(1 + @extschema@._wei_float8(t.value)) * 1e6)::bigint AS lv,
           round(ln(1 + @extschema@._wei_float8(t.gas_price)) * 1e6)::bigint AS lg
      FROM %s t),
s AS (
    SELECT r.sender COLLATE "C" AS address, true AS outgoing, r.recipient AS peer, r.block, r.detected_at, r.at, r.lv, r.lg
      FROM r WHERE r.sender IS NOT NULL
    UNION ALL
    SELECT r.recipient COLLATE "C", false, r.sender, r.block, r.detected_at, r.at, r.lv, r.lg
      FROM r WHERE r.recipient IS NOT NULL),
g AS (
    SELECT s.address, s.outgoing, (extract(epoch FROM s.at) * 1000000)::bigint / 300000000 AS bucket, count(*) AS n,
           min(s.block) AS first_block, max(s.block) AS last_block, min(s.at) AS first_at, max(s.at) AS last_at,
           max(s.detected_at) AS updated_at, sum(s.lv) AS lv_sum, sum(s.lv::numeric * s.lv) AS lv_sumsq,
           sum(s.lg) AS lg_sum, count(*) FILTER (WHERE s.lv > 0) AS nv
      FROM s GROUP BY 1, 2, 3),
f AS (
    SELECT g.address, min(g.first_block) AS first_block, max(g.last_block) AS last_block,
           min(g.first_at) AS first_seen_at, max(g.last_at) AS last_seen_at,
           max(g.last_at) FILTER (WHERE g.outgoing) AS last_out_at, max(g.updated_at) AS updated_at,
           coalesce(sum(g.n) FILTER (WHERE g.outgoing), 0)::bigint AS out_count,
           coalesce(sum(g.n) FILTER (WHERE NOT g.outgoing), 0)::bigint AS in_count,
           coalesce(sum(g.lv_sum) FILTER (WHERE g.outgoing), 0)::bigint AS out_log_value_sum,
           coalesce(sum(g.lv_sumsq) FILTER (WHERE g.outgoing), 0) AS out_log_value_sumsq,
           coalesce(sum(g.lg_sum) FILTER (WHERE g.outgoing), 0)::bigint AS out_log_gas_price_sum,
           coalesce(sum(g.lv_sum) FILTER (WHERE NOT g.outgoing), 0)::bigint AS in_log_value_sum,
           max(g.top) FILTER (WHERE g.outgoing) AS out_bucket,
           coalesce(sum(g.n) FILTER (WHERE g.outgoing AND g.bucket = g.top), 0)::bigint AS out_bucket_count,
           coalesce(sum(g.n) FILTER (WHERE g.outgoing AND g.bucket = g.top - 1), 0)::bigint AS out_prev_count,
           max(g.top) FILTER (WHERE NOT g.outgoing) AS in_bucket,
           coalesce(sum(g.n) FILTER (WHERE NOT g.outgoing AND g.bucket = g.top), 0)::bigint AS in_bucket_count,
           coalesce(sum(g.n) FILTER (WHERE NOT g.outgoing AND g.bucket = g.top - 1), 0)::bigint AS in_prev_count,
           coalesce(sum(g.nv) FILTER (WHERE g.outgoing), 0)::bigint AS out_value_count
      FROM (SELECT g.*, max(g.bucket) OVER (PARTITION BY g.address, g.outgoing) AS top FROM g) g
     GROUP BY g.address),
p AS (
    SELECT d.address,
           coalesce((pg_catalog.array_agg(d.h ORDER BY d.h) FILTER (WHERE d.outgoing))[1:64], '{}') AS out_peers,
           coalesce((pg_catalog.array_agg(d.h ORDER BY d.h) FILTER (WHERE NOT d.outgoing))[1:64], '{}') AS in_peers
      FROM (SELECT DISTINCT s.address, s.outgoing, pg_catalog.hashtextextended(s.peer, 0) AS h
              FROM s WHERE s.peer IS NOT NULL) d
     GROUP BY d.address)
SELECT f.address, f.first_block, f.last_block, f.first_seen_at, f.last_seen_at, f.last_out_at, f.updated_at,
       f.out_count, f.in_count, f.out_log_value_sum, f.out_log_value_sumsq, f.out_log_gas_price_sum,
       f.in_log_value_sum, f.out_bucket, f.out_bucket_count, f.out_prev_count, f.in_bucket, f.in_bucket_count,
       f.in_prev_count, coalesce(p.out_peers, '{}'), coalesce(p.in_peers, '{}'), f.out_value_count
  FROM f LEFT JOIN p ON p.address = f.address
 ORDER BY f.address
$q$, source))
$fn$;

COMMENT ON FUNCTION @extschema@._profile_merge_sql(text, text) IS
    'Internal: the statement that folds the transactions of a relation into address_profiles or a table like it, the summaries computed in SQL (rebuild_address_profiles(), verify_address_profiles()).';

-- _bucket_count and _bucket_prev merge two activity windows (bucket b: c transactions in it, p in b - 1)
-- into the window of the later bucket: exactly the transactions of both in that bucket and the one before
-- (each side holds every one of its own transactions in those two buckets, since its own latest is at most
-- the merged latest). A NULL bucket is an empty window.
CREATE FUNCTION @extschema@._bucket_count(b1 bigint, c1 bigint, b2 bigint, c2 bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN b1 IS NOT DISTINCT FROM greatest(b1, b2) THEN c1 ELSE 0 END
         + CASE WHEN b2 IS NOT DISTINCT FROM greatest(b1, b2) THEN c2 ELSE 0 END
$$;

COMMENT ON FUNCTION @extschema@._bucket_count(bigint, bigint, bigint, bigint) IS
    'Internal: transactions in the later of two activity windows'' latest buckets.';

CREATE FUNCTION @extschema@._bucket_prev(b1 bigint, c1 bigint, p1 bigint, b2 bigint, c2 bigint, p2 bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN b1 = greatest(b1, b2) THEN p1 WHEN b1 = greatest(b1, b2) - 1 THEN c1 ELSE 0 END
         + CASE WHEN b2 = greatest(b1, b2) THEN p2 WHEN b2 = greatest(b1, b2) - 1 THEN c2 ELSE 0 END
$$;

COMMENT ON FUNCTION @extschema@._bucket_prev(bigint, bigint, bigint, bigint, bigint, bigint) IS
    'Internal: transactions in the bucket before the later of two activity windows'' latest buckets.';

-- _count_profiles adds n to a shard of address_profile_counts: by default this backend's (a writer's), shard
-- 16 for maintain()'s evictions
CREATE FUNCTION @extschema@._count_profiles(n bigint, shard int DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO @extschema@.address_profile_counts AS c (shard, profiles)
    VALUES (coalesce(shard, pg_catalog.pg_backend_pid() % 16), n)
    ON CONFLICT (shard) DO UPDATE SET profiles = c.profiles + excluded.profiles
$$;

COMMENT ON FUNCTION @extschema@._count_profiles(bigint, int) IS 'Internal: adds to the exact count of address profiles (this backend''s shard unless one is named).';

-- _profiles_from_batch: the statement trigger on transactions (extension/src/profiles.c): it reads the
-- statement's transition table, sums each address's part of the batch in C and runs _profile_fold_sql's
-- statement once (a plan kept for the session), then counts the new profiles. SECURITY DEFINER: the
-- ingestor's role has INSERT on transactions only.
CREATE FUNCTION @extschema@._profiles_from_batch() RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'chainwatch_profiles_from_batch';

COMMENT ON FUNCTION @extschema@._profiles_from_batch() IS
    'Internal trigger: folds a statement''s new transactions into address_profiles, in the statement''s transaction.';

-- rebuild_address_profiles: the profiles recomputed from the stored transactions (after an install over
-- existing data, or to repair). It takes the table's EXCLUSIVE lock (writers wait; readers do not) and, like
-- any recomputation, knows only the transactions still stored: history older than transactions' TTL is lost.
CREATE FUNCTION @extschema@.rebuild_address_profiles() RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    LOCK TABLE @extschema@.address_profiles, @extschema@.address_profile_counts IN EXCLUSIVE MODE;
    DELETE FROM @extschema@.address_profiles;
    DELETE FROM @extschema@.address_profile_counts;
    EXECUTE @extschema@._profile_merge_sql('@extschema@.transactions', '@extschema@.address_profiles') INTO n;
    IF n > 0 THEN
        PERFORM @extschema@._count_profiles(n);
    END IF;
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.rebuild_address_profiles() IS
    'Recomputes address_profiles from the stored transactions (history beyond their TTL is lost); returns the number of profiles. Writers wait while it runs.';

-- verify_address_profiles: each address whose profile differs from a recomputation from the stored
-- transactions, with the stored and the recomputed row as jsonb (NULL where there is none). The
-- recomputation goes into a temporary table: the profiles are neither changed nor locked. Equal only
-- while every transaction folded in is still stored (no eviction by TTL or bound, no profile evicted).
CREATE FUNCTION @extschema@.verify_address_profiles()
RETURNS TABLE (address text, stored jsonb, recomputed jsonb)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass('pg_temp.chainwatch_profiles_recomputed') IS NOT NULL THEN
        DROP TABLE pg_temp.chainwatch_profiles_recomputed;
    END IF;
    CREATE TEMP TABLE chainwatch_profiles_recomputed (LIKE @extschema@.address_profiles INCLUDING DEFAULTS INCLUDING INDEXES);
    EXECUTE @extschema@._profile_merge_sql('@extschema@.transactions', 'pg_temp.chainwatch_profiles_recomputed');
    RETURN QUERY
        SELECT coalesce(s.address, c.address), to_jsonb(s), to_jsonb(c)
          FROM @extschema@.address_profiles s FULL JOIN pg_temp.chainwatch_profiles_recomputed c ON c.address = s.address
         WHERE to_jsonb(s) IS DISTINCT FROM to_jsonb(c)
         ORDER BY 1;
    DROP TABLE pg_temp.chainwatch_profiles_recomputed;
END
$$;

COMMENT ON FUNCTION @extschema@.verify_address_profiles() IS
    'Addresses whose profile differs from a recomputation from the stored transactions (none while nothing was evicted); changes nothing.';

-- _delete_profiles deletes the profiles at victims (ctids an unlocked scan found) still updated before
-- older_than, skipping any a writer has locked, and returns how many it deleted
CREATE FUNCTION @extschema@._delete_profiles(victims tid[], older_than timestamptz) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM @extschema@.address_profiles a
         WHERE a.ctid = ANY (ARRAY(SELECT x.ctid FROM @extschema@.address_profiles x
                                    WHERE x.ctid = ANY (victims) AND x.updated_at < older_than
                                      FOR UPDATE SKIP LOCKED))
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION @extschema@._delete_profiles(tid[], timestamptz) IS
    'Internal: deletes the listed address profiles not updated since older_than, skipping rows a writer holds.';

-- _evict_profiles: maintain()'s step for address_profiles. Profiles not updated within the TTL go first, then,
-- when there are more than max_rows, the least recently updated down to 90% of max_rows (so the scan this
-- needs is rare); at most 50,000 a run (the next run goes on). The table has no index on updated_at, since
-- any index on it would make every profile update a non-HOT one (it changes with each batch): candidates
-- are found by a scan taken without any lock, at most every 10 minutes (or a hundredth of the TTL if
-- shorter) unless the table is over its bound, then deleted with the condition checked again, each row
-- locked FOR UPDATE SKIP LOCKED: a profile a writer is updating is skipped, and maintain() never waits for a
-- writer (which may wait for a table maintain() locked). A writer whose upsert meets a row being deleted
-- waits for that delete and then inserts the profile afresh. The evictions
-- are subtracted from shard 16 of the counts, which only maintain() (one at a time) writes. Returns
-- scanned = false when no scan was due.
CREATE FUNCTION @extschema@._evict_profiles(OUT evicted_ttl bigint, OUT evicted_size bigint, OUT scanned boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol @extschema@.retention_policies;
    last_scan timestamptz;
    total bigint;
    horizon timestamptz;
    victims tid[];
BEGIN
    evicted_ttl := 0;
    evicted_size := 0;
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = 'address_profiles';
    SELECT s.last_maintenance_at INTO last_scan FROM @extschema@.retention_stats s WHERE s.table_name = 'address_profiles';
    SELECT coalesce(sum(c.profiles), 0) INTO total FROM @extschema@.address_profile_counts c;
    scanned := last_scan IS NULL OR last_scan < now() - least(interval '10 minutes', pol.ttl / 100)
               OR total > pol.max_rows;
    IF NOT scanned THEN
        RETURN;
    END IF;
    horizon := now() - pol.ttl;
    victims := ARRAY(SELECT x.ctid FROM @extschema@.address_profiles x WHERE x.updated_at < horizon LIMIT 50000);
    IF cardinality(victims) > 0 THEN
        evicted_ttl := @extschema@._delete_profiles(victims, horizon);
        total := total - evicted_ttl;
    END IF;
    IF total > pol.max_rows THEN
        victims := ARRAY(SELECT x.ctid FROM @extschema@.address_profiles x ORDER BY x.updated_at
                         LIMIT least(total - pol.max_rows * 9 / 10, 50000));
        evicted_size := @extschema@._delete_profiles(victims, 'infinity');
    END IF;
    IF evicted_ttl + evicted_size > 0 THEN
        PERFORM @extschema@._count_profiles(-(evicted_ttl + evicted_size), 16);
        UPDATE @extschema@.retention_stats s
           SET evicted_ttl = s.evicted_ttl + _evict_profiles.evicted_ttl,
               evicted_size = s.evicted_size + _evict_profiles.evicted_size
         WHERE s.table_name = 'address_profiles';
    END IF;
END
$$;

COMMENT ON FUNCTION @extschema@._evict_profiles() IS
    'Internal: maintain()''s bound of address_profiles (TTL on updated_at, then max_rows down to 90%), at most 50,000 profiles a run; scans at most every 10 minutes unless over the bound.';
