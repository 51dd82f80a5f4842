-- extension/updates/chainwatch--0.9.0--0.10.0.sql — chainwatch 0.10.0: address profiles, the behavioural state
--
-- * address_profiles: one row per address (first and last seen, counts, log-value and gas-price statistics in
--   millionths, activity buckets, counterparty sketches), folded in by the statement trigger
--   transactions_profiles (C: extension/src/profiles.c, with _profile_batch() and _sketch_merge()) in the same
--   transaction as its transactions; address_profile_counts keeps its exact row count in shards.
--   rebuild_address_profiles() and verify_address_profiles() compute the same summaries in SQL from the stored
--   transactions; this update runs the rebuild, so the transactions already stored are in the profiles from
--   the start.
-- * retention_policies gains the row address_profiles (ttl 30 days on updated_at, max_rows 1,000,000; never a
--   partition width: CHECK retention_policies_unpartitioned); maintain() evicts profiles (a fourth row in its
--   result), status() reports them, set_retention() refuses a partition width for them (22023).
-- * Automatic retraining follows the growth of history (issue 26): chainwatch.retrain_growth (default 2) retrains
--   on everything stored when the stored transactions reach that multiple of the newest model's training rows,
--   and activates the candidate only if its checks pass (_auto_train()).

-- address profiles

CREATE TABLE @extschema@.address_profiles (
    address              text        PRIMARY KEY,
    first_block          bigint,
    last_block           bigint,
    first_seen_at        timestamptz NOT NULL,
    last_seen_at         timestamptz NOT NULL,
    last_out_at          timestamptz,
    updated_at           timestamptz NOT NULL,
    out_count            bigint      NOT NULL DEFAULT 0 CHECK (out_count >= 0),
    in_count             bigint      NOT NULL DEFAULT 0 CHECK (in_count >= 0),
    out_log_value_sum    bigint      NOT NULL DEFAULT 0,
    out_log_value_sumsq  numeric     NOT NULL DEFAULT 0,
    out_log_gas_price_sum bigint     NOT NULL DEFAULT 0,
    in_log_value_sum     bigint      NOT NULL DEFAULT 0,
    out_bucket           bigint,
    out_bucket_count     bigint      NOT NULL DEFAULT 0,
    out_prev_count       bigint      NOT NULL DEFAULT 0,
    in_bucket            bigint,
    in_bucket_count      bigint      NOT NULL DEFAULT 0,
    in_prev_count        bigint      NOT NULL DEFAULT 0,
    out_peers            bigint[]    NOT NULL DEFAULT '{}',
    in_peers             bigint[]    NOT NULL DEFAULT '{}',
    CHECK (out_count + in_count > 0),
    CHECK (first_seen_at <= last_seen_at)
) WITH (fillfactor = 70);

COMMENT ON TABLE @extschema@.address_profiles IS
    'What each address has done so far, folded in by the trigger transactions_profiles in the same transaction as its transactions; bounded by its retention policy (docs/detection.md).';
COMMENT ON COLUMN @extschema@.address_profiles.first_seen_at IS 'Earliest chain time (tx_time, never after detected_at) of a transaction from or to the address.';
COMMENT ON COLUMN @extschema@.address_profiles.last_out_at IS 'Latest chain time of a transaction the address sent (NULL: it never sent one).';
COMMENT ON COLUMN @extschema@.address_profiles.updated_at IS 'Latest detected_at of its transactions: when the profile last changed; eviction follows it.';
COMMENT ON COLUMN @extschema@.address_profiles.out_log_value_sum IS 'Sum over sent transactions of ln(1 + value in wei) in millionths (each rounded to an integer); with out_count and out_log_value_sumsq (the sum of their squares): the mean and variance.';
COMMENT ON COLUMN @extschema@.address_profiles.out_log_gas_price_sum IS 'Sum over sent transactions of ln(1 + gas price in wei) in millionths: exp(mean / 1e6) - 1 is the sender''s typical gas price.';
COMMENT ON COLUMN @extschema@.address_profiles.in_log_value_sum IS 'Sum over received transactions of ln(1 + value in wei) in millionths.';
COMMENT ON COLUMN @extschema@.address_profiles.out_bucket IS 'Latest activity bucket (chain time / 300 s) the address sent in; out_bucket_count sent in it, out_prev_count in the bucket before.';
COMMENT ON COLUMN @extschema@.address_profiles.out_peers IS 'Sorted: the 64 smallest distinct hashtextextended(recipient, 0); sketch_distinct() estimates the distinct recipients.';
COMMENT ON COLUMN @extschema@.address_profiles.in_peers IS 'Sorted: the 64 smallest distinct hashtextextended(sender, 0); sketch_distinct() estimates the distinct senders.';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.address_profiles', '');

CREATE TABLE @extschema@.address_profile_counts (
    shard    int    PRIMARY KEY CHECK (shard BETWEEN 0 AND 16),
    profiles bigint NOT NULL
);

COMMENT ON TABLE @extschema@.address_profile_counts IS
    'The exact number of address_profiles rows: sum(profiles). Shards 0-15 take the profiles writers create (pg_backend_pid() % 16), shard 16 the evictions of maintain().';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.address_profile_counts', '');

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
     out_bucket, out_bucket_count, out_prev_count, in_bucket, in_bucket_count, in_prev_count, out_peers, in_peers)
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
    in_peers = @extschema@._sketch_merge(o.in_peers, excluded.in_peers)
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
           sum(s.lg) AS lg_sum
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
           coalesce(sum(g.n) FILTER (WHERE NOT g.outgoing AND g.bucket = g.top - 1), 0)::bigint AS in_prev_count
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
       f.in_prev_count, coalesce(p.out_peers, '{}'), coalesce(p.in_peers, '{}')
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

-- their retention policy

ALTER TABLE @extschema@.retention_policies DROP CONSTRAINT retention_policies_table_name_check;

ALTER TABLE @extschema@.retention_policies ADD CONSTRAINT retention_policies_table_name_check
    CHECK (table_name IN ('transactions', 'anomalies', 'dead_letters', 'address_profiles'));

ALTER TABLE @extschema@.retention_policies ADD CONSTRAINT retention_policies_unpartitioned
    CHECK (table_name <> 'address_profiles' OR partition_width IS NULL);

COMMENT ON TABLE @extschema@.retention_policies IS
    'Bounds of each managed table: rows older than ttl are invisible and dropped within one partition width; at most max_rows rows. partition_width NULL means ttl / 12. address_profiles is not partitioned: maintain() evicts profiles not updated within ttl and the least recently updated beyond max_rows. Change with chainwatch.set_retention().';

INSERT INTO @extschema@.retention_policies (table_name, time_column, ttl, max_rows) VALUES
    ('address_profiles', 'updated_at', interval '30 days', 1000000);

INSERT INTO @extschema@.retention_stats (table_name) VALUES ('address_profiles');

-- maintenance, status and set_retention know them

CREATE OR REPLACE FUNCTION @extschema@._auto_train() RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    active record;
    retrain_s int := @extschema@._setting('retrain_interval', '0')::int;
    growth float8 := @extschema@._setting('retrain_growth', '2')::float8;
    base bigint;
    due_time boolean;
    new_id int;
    cand record;
    cand_rate float8;
    active_rate float8;
BEGIN
    IF NOT @extschema@._setting('auto_train', 'on')::boolean THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(s.row_count), 0) INTO n FROM @extschema@.partition_state s WHERE s.table_name = 'transactions';
    SELECT m.* INTO active FROM @extschema@.models m WHERE m.is_active;
    IF NOT FOUND THEN
        IF n < @extschema@._setting('auto_train_min_rows', '10000')::bigint THEN
            RETURN NULL;
        END IF;
        new_id := @extschema@.train_model('auto ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      'SELECT value, gas, gas_price FROM @extschema@.transactions');
        PERFORM @extschema@.activate_model(new_id, 'auto_train');
        RAISE LOG 'chainwatch: trained and activated model % from % transactions', new_id, n;
        RETURN new_id;
    END IF;
    due_time := retrain_s > 0 AND active.created_at <= now() - make_interval(secs => retrain_s);
    SELECT max(m.training_rows) INTO base FROM @extschema@.models m
     WHERE m.id = active.id OR (m.created_at > active.created_at AND m.source = 'trained');
    IF NOT due_time AND NOT (growth > 0 AND n >= growth * coalesce(base, 0) AND base IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    IF due_time THEN
        new_id := @extschema@.train_model('retrain ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      format('SELECT value, gas, gas_price FROM @extschema@.transactions WHERE detected_at > now() - interval %L',
                                             make_interval(secs => retrain_s)));
    ELSE
        new_id := @extschema@.train_model('retrain ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      'SELECT value, gas, gas_price FROM @extschema@.transactions');
    END IF;
    SELECT m.* INTO cand FROM @extschema@.models m WHERE m.id = new_id;
    SELECT avg((@extschema@.is_anomaly(t.value, t.gas, t.gas_price, cand.id))::int),
           avg((@extschema@.is_anomaly(t.value, t.gas, t.gas_price, active.id))::int)
      INTO cand_rate, active_rate
      FROM (SELECT x.value, x.gas, x.gas_price FROM @extschema@.transactions x ORDER BY x.detected_at DESC LIMIT 10000) t;
    IF cand_rate > greatest(3 * cand.contamination, active_rate) THEN
        RAISE WARNING 'chainwatch: retrained model % not activated: it flags % of the latest transactions, the active model % flags %',
                      new_id, round(cand_rate::numeric, 4), active.id, round(active_rate::numeric, 4);
        RETURN NULL;
    END IF;
    PERFORM @extschema@.activate_model(new_id, 'auto_train');
    RAISE LOG 'chainwatch: retrained and activated model % from % transactions (flags % of the latest, the previous model %)',
              new_id, n, round(cand_rate::numeric, 4), round(active_rate::numeric, 4);
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION @extschema@._auto_train() IS
    'Internal: trains and activates a first model once transactions holds chainwatch.auto_train_min_rows rows; retrains when the stored transactions reach chainwatch.retrain_growth times the newest model''s training rows, or every chainwatch.retrain_interval seconds, activating the candidate only if it flags at most 3 x its contamination of the latest 10,000 transactions or no more than the active model.';

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
    prof record;
    prof_err text;
    prof_ms float8 := 0;
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

    -- 3b. address profiles: not partitioned, evicted row by row
    t0 := clock_timestamp();
    BEGIN
        SELECT * INTO prof FROM @extschema@._evict_profiles();
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
        prof_err := 'evicting profiles: ' || err;
    END;
    prof_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;

    -- 4. a first model (or a retrain) when due, but never in a run that dropped partitions, evicted
    -- rows or changed partition_state rows (0.8.0): it would hold ACCESS EXCLUSIVE on a table, the
    -- retention_stats rows writers update when they evict, or partition_state rows writers count into,
    -- for as long as training takes; the next run (chainwatch.maintenance_interval later) trains
    -- instead. It comes before the record of the run, which locks those rows too.
    IF (SELECT sum(x) FROM unnest(dropped) x) = 0 AND (SELECT sum(x) FROM unnest(evicted) x) = 0
       AND (SELECT sum(x) FROM unnest(reconciled) x) = 0
       AND coalesce(prof.evicted_ttl + prof.evicted_size, 0) = 0 THEN
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
    BEGIN
        -- last_maintenance_at: the last eviction scan (_evict_profiles() scans only when due)
        UPDATE @extschema@.retention_stats s
           SET last_maintenance_at = CASE WHEN prof.scanned THEN now() ELSE s.last_maintenance_at END,
               last_maintenance_ms = CASE WHEN prof.scanned THEN prof_ms ELSE s.last_maintenance_ms END,
               last_maintenance_error = prof_err
         WHERE s.table_name = 'address_profiles';
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        RAISE LOG 'chainwatch: could not record maintenance of address_profiles: lock timeout';
    END;
    table_name := 'address_profiles'; partitions_created := 0; partitions_dropped := 0;
    rows_evicted := coalesce(prof.evicted_ttl + prof.evicted_size, 0); error := prof_err;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION @extschema@.maintain() IS
    'Reconciles partition_state with the catalog (partitions detached, dropped or attached by hand or by a restore), creates partitions ahead, drops expired and entirely excess ones, enforces row bounds, trains a first model when due (in a run that dropped, evicted and reconciled nothing); each step of each table in its own subtransaction, so a lock timeout while dropping never undoes the partitions created. Safe to call concurrently (a second caller returns at once) and under load (each lock waits at most chainwatch.maintenance_lock_timeout ms). Run every chainwatch.maintenance_interval by the background worker. SECURITY DEFINER: runs as the extension owner; EXECUTE is granted by sql/roles.sql.';

CREATE OR REPLACE FUNCTION @extschema@.set_retention(table_name text, ttl interval DEFAULT NULL, max_rows bigint DEFAULT NULL,
                                          partition_width interval DEFAULT NULL, premake int DEFAULT NULL)
RETURNS @extschema@.retention_policies
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result @extschema@.retention_policies;
BEGIN
    IF set_retention.table_name = 'address_profiles' AND set_retention.partition_width IS NOT NULL THEN
        RAISE EXCEPTION 'address_profiles is not partitioned: it has no partition width'
            USING ERRCODE = '22023', HINT = 'Its ttl evicts profiles not updated for that long; max_rows bounds their number.';
    END IF;
    UPDATE @extschema@.retention_policies p
       SET ttl = coalesce(set_retention.ttl, p.ttl),
           max_rows = coalesce(set_retention.max_rows, p.max_rows),
           partition_width = coalesce(set_retention.partition_width, p.partition_width),
           premake = coalesce(set_retention.premake, p.premake),
           updated_at = now()
     WHERE p.table_name = set_retention.table_name
    RETURNING p.* INTO result;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no retention policy for "%"', set_retention.table_name
            USING ERRCODE = '42704', HINT = 'Managed tables: transactions, anomalies, dead_letters, address_profiles.';
    END IF;
    RETURN result;
END
$$;

COMMENT ON FUNCTION @extschema@.set_retention(text, interval, bigint, interval, int) IS
    'Changes a managed table''s TTL, row bound, partition width or premake; the TTL view applies it at once, the next maintain() applies it physically.';

CREATE OR REPLACE FUNCTION @extschema@.status()
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

-- the trigger, the privileges, and the transactions already stored

CREATE TRIGGER transactions_profiles
    AFTER INSERT ON @extschema@.transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._profiles_from_batch();

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

SELECT @extschema@.rebuild_address_profiles();
