-- extension/sql/tables/profiles.sql — behavioural state: one profile per address, kept in the batch's transaction
--
-- Design (docs/detection.md tells the story; functions/profiles.sql holds the code)
--
-- * address_profiles holds what the chain has shown of an address so far: first and last seen (block and
--   time), outgoing and incoming counts, the log-scale statistics of the values it sent and received, the gas
--   prices it pays, its activity in the current and the previous activity bucket (300 seconds of chain time
--   each), and sketches of its distinct counterparties. The statement trigger transactions_profiles folds every
--   statement's new transactions into it, in the statement's (the batch's) own transaction: a batch that rolls
--   back (a replay refused with CW002, a kill -9) leaves no trace, one that commits is counted once.
-- * Every column is a commutative, associative summary — minimum, maximum, count, exact sum (numeric), the
--   counts of the top two activity buckets, the K smallest hashes of the counterparties — so batches may fold
--   in any order (out-of-order blocks, two writers, a replay after a crash) and the table always equals a
--   recomputation from the same transactions at once (rebuild_address_profiles(), verify_address_profiles()).
--   The log values are kept in millionths — round(ln(1 + wei) * 1e6), rounded half to even, an integer —
--   so their sums (bigint; the sum of squares numeric) are exact and do not depend on the order of
--   additions, where float8 sums would differ in the last bits between two orders.
-- * Time is chain time: a transaction's tx_time, but never later than the moment it was stored (detected_at):
--   a producer whose clock runs ahead cannot push an address's activity window into the future. A transaction
--   without a finite tx_time counts at detected_at. The activity bucket of a time is its Unix epoch in
--   microseconds divided by 300,000,000 (integer division).
-- * Counterparties: out_peers and in_peers keep the PROFILE_PEERS (64) smallest distinct 64-bit hashes
--   (hashtextextended, stable across major versions: hash partitioning depends on it) of the addresses an
--   address sent to and received from — exact while an address has fewer than 64 counterparties, a
--   K-minimum-values estimate beyond (sketch_distinct()).
-- * Bounded: the retention_policies row 'address_profiles' (ttl: evict profiles not updated for that long;
--   max_rows: evict the least recently updated beyond it, down to 90%), applied by maintain()
--   (_evict_profiles), seen in status(). No index on updated_at: it changes with every batch, and an index on
--   it would make every profile update non-HOT (fillfactor 70 leaves room for HOT updates: with the index,
--   the fold of a 5,000-row batch took ~60% longer). The exact row count lives in address_profile_counts:
--   the trigger adds the profiles it creates to its shard (pg_backend_pid() % 16), maintain() subtracts
--   what it evicts from shard 16.
-- * Lock order (next to the store's, tables/store.sql): a writer's COPY into transactions fires the trigger at
--   the end of the COPY statement, which locks the profile rows of its batch in address order (one upsert of
--   rows sorted COLLATE "C"), then its counter shard; only then does the batch COPY anomalies and call
--   commit_batch() (kafka_offsets, then the bookkeeping locks). Two writers therefore never wait for each
--   other in a cycle, and they merge in parallel. maintain() never waits for a profile row: it deletes what
--   an unlocked scan found, skipping rows a writer has locked (FOR UPDATE SKIP LOCKED).
-- * Only statements on chainwatch.transactions itself fire the trigger: rows COPYed into a partition directly
--   (a pg_restore does) are not folded in again — pg_dump keeps the profiles themselves.

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
    out_value_count      bigint      NOT NULL DEFAULT 0 CHECK (out_value_count >= 0),
    CHECK (out_count + in_count > 0),
    CHECK (first_seen_at <= last_seen_at)
) WITH (fillfactor = 70);

COMMENT ON TABLE @extschema@.address_profiles IS
    'What each address has done so far, folded in by the trigger transactions_profiles in the same transaction as its transactions; bounded by its retention policy (docs/detection.md).';
COMMENT ON COLUMN @extschema@.address_profiles.first_seen_at IS 'Earliest chain time (tx_time, never after detected_at) of a transaction from or to the address.';
COMMENT ON COLUMN @extschema@.address_profiles.last_out_at IS 'Latest chain time of a transaction the address sent (NULL: it never sent one).';
COMMENT ON COLUMN @extschema@.address_profiles.updated_at IS 'Latest detected_at of its transactions: when the profile last changed; eviction follows it.';
COMMENT ON COLUMN @extschema@.address_profiles.out_log_value_sum IS 'Sum over sent transactions of ln(1 + value in wei) in millionths (each rounded to an integer); with out_count and out_log_value_sumsq (the sum of their squares): the mean and variance.';
COMMENT ON COLUMN @extschema@.address_profiles.out_value_count IS 'Sent transactions that carried value (more than 0 wei): the count the value statistics divide by (zero-value calls add nothing to the sums).';
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
