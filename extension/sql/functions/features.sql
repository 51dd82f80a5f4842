-- extension/sql/functions/features.sql — the behavioural feature vector of a transaction (feature set behaviour/1)
--
-- * The features are defined once, in C (common/src/txfeatures.c): the ingestor computes them for every row it
--   stores (transactions.features), from the profiles of the batch's addresses as _batch_profiles() reads them at
--   the start of the batch's transaction, folding the batch's own earlier messages in as it goes; features()
--   computes them for one transaction against the profiles as they are now; replay_features() recomputes them
--   for a stream of stored transactions from an empty history. docs/detection.md describes each feature.
-- * A message's transactions all see the history as it was before the message (they are stored together).

-- _batch_profiles: what the features need of each address, in the column order of common/src/txfeatures.h
CREATE FUNCTION @extschema@._batch_profiles(addresses text[])
RETURNS TABLE (address text, hash bigint, detected_at_us bigint, first_at_us bigint, out_count bigint,
               out_log_value_sum bigint, out_log_value_sumsq numeric, out_log_gas_price_sum bigint,
               last_out_at_us bigint, out_bucket bigint, out_bucket_count bigint, out_prev_count bigint,
               in_count bigint, in_bucket bigint, in_bucket_count bigint, in_prev_count bigint,
               out_peers bigint[], out_value_count bigint)
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.address, hashtextextended(a.address, 0), (extract(epoch FROM now()) * 1000000)::bigint,
           (extract(epoch FROM p.first_seen_at) * 1000000)::bigint, p.out_count, p.out_log_value_sum,
           p.out_log_value_sumsq, p.out_log_gas_price_sum, (extract(epoch FROM p.last_out_at) * 1000000)::bigint,
           p.out_bucket, p.out_bucket_count, p.out_prev_count, p.in_count, p.in_bucket, p.in_bucket_count,
           p.in_prev_count, p.out_peers, p.out_value_count
      FROM unnest(addresses) AS a(address)
      LEFT JOIN @extschema@.address_profiles p ON p.address = a.address
$$;

COMMENT ON FUNCTION @extschema@._batch_profiles(text[]) IS
    'Internal: the profile columns the features need for each address (NULLs when it has none), with its counterparty hash and now() in Unix microseconds; read by the ingestor at the start of every batch.';

CREATE FUNCTION @extschema@.features(from_address text, to_address text, value numeric, gas numeric,
                                     gas_price numeric, tx_time timestamptz DEFAULT NULL)
RETURNS float8[]
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_features';

COMMENT ON FUNCTION @extschema@.features(text, text, numeric, numeric, numeric, timestamptz) IS
    'The behaviour/1 feature vector of a transaction against the address profiles as they are now (feature_names() names its elements; a NULL tx_time means now()).';

CREATE FUNCTION @extschema@.feature_names() RETURNS text[]
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chainwatch_feature_names';

COMMENT ON FUNCTION @extschema@.feature_names() IS
    'The names of the behaviour/1 features, in the order of features() and transactions.features.';

CREATE FUNCTION @extschema@.replay_features(source_query text)
RETURNS TABLE (hash text, features float8[])
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_replay_features';

COMMENT ON FUNCTION @extschema@.replay_features(text) IS
    'Recomputes the behaviour/1 features of source_query''s transactions (hash, from_address, to_address, value, gas, gas_price, tx_time, detected_at, kafka_topic, kafka_partition, kafka_offset, in the order they were stored) from an empty history, as the ingestor computed them; rows of one Kafka message see the history before it.';
