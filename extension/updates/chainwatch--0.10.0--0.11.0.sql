-- extension/updates/chainwatch--0.10.0--0.11.0.sql — chainwatch 0.11.0: the behavioural feature vector
--
-- * Feature set behaviour/1, defined once in C (common/src/txfeatures.c): the ingestor computes it for every row it
--   stores, from the address profiles as its batch reads them (_batch_profiles(), a definer function), into the
--   new column transactions.features (and anomalies.features); features() computes it against the profiles as
--   they are now, replay_features() recomputes it for stored rows from an empty history; feature_names().
-- * models.feature_set (transaction/1, behaviour/1 or NULL) names what a model scores, from its feature names;
--   train_model() gains feature_set ('' or 'behaviour/1'); automatic training trains on chainwatch.feature_set
--   (default behaviour/1) from the next training on; models stored before keep scoring exactly as before.
-- * Explanations of anomalies under a behaviour/1 model come from anomalies.features.

ALTER TABLE @extschema@.transactions ADD COLUMN features float8[];

COMMENT ON COLUMN @extschema@.transactions.features IS
    'The behaviour/1 feature vector (feature_names()) the ingestor computed from the address profiles as its batch saw them: what models over behaviour train on. NULL for rows stored before extension 0.11.0 or by another writer.';

ALTER TABLE @extschema@.anomalies ADD COLUMN features float8[];

COMMENT ON COLUMN @extschema@.anomalies.features IS
    'The behaviour/1 feature vector of the transaction (as transactions.features); the explanation of a model over behaviour is computed from it.';

ALTER TABLE @extschema@.models ADD COLUMN feature_set text CHECK (feature_set IN ('transaction/1', 'behaviour/1'));

COMMENT ON COLUMN @extschema@.models.feature_set IS
    'What the model scores: transaction/1 (value, gas, gas_price of the row), behaviour/1 (transactions.features, feature_names()), or NULL (vectors the caller gives, as an imported model''s).';

UPDATE @extschema@.models SET feature_set = 'transaction/1'
 WHERE n_features = 3 AND feature_names = ARRAY['value', 'gas', 'gas_price'];

-- the views show the new columns

CREATE OR REPLACE VIEW @extschema@.recent_anomalies AS
SELECT a.id, a.hash, a.from_address, a.to_address, a.value, a.gas, a.gas_price, a.block_number,
       a.tx_time, a.detected_at, a.score, a.severity, a.model_id, a.kafka_topic, a.kafka_partition, a.kafka_offset,
       a.document, a.explanation, a.features
  FROM @extschema@.anomalies a
 WHERE a.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies');

COMMENT ON VIEW @extschema@.recent_anomalies IS
    'Anomalies detected within the TTL: never a row older than retention_policies.ttl, even between maintenance runs.';

CREATE OR REPLACE VIEW @extschema@.recent_transactions AS
SELECT t.* FROM @extschema@.transactions t
 WHERE t.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'transactions');

COMMENT ON VIEW @extschema@.recent_transactions IS 'Transactions ingested within their TTL.';


-- the feature functions

-- _batch_profiles: what the features need of each address, in the column order of common/src/txfeatures.h
CREATE FUNCTION @extschema@._batch_profiles(addresses text[])
RETURNS TABLE (address text, hash bigint, detected_at_us bigint, first_at_us bigint, out_count bigint,
               out_log_value_sum bigint, out_log_value_sumsq numeric, out_log_gas_price_sum bigint,
               last_out_at_us bigint, out_bucket bigint, out_bucket_count bigint, out_prev_count bigint,
               in_count bigint, in_bucket bigint, in_bucket_count bigint, in_prev_count bigint,
               out_peers bigint[])
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.address, hashtextextended(a.address, 0), (extract(epoch FROM now()) * 1000000)::bigint,
           (extract(epoch FROM p.first_seen_at) * 1000000)::bigint, p.out_count, p.out_log_value_sum,
           p.out_log_value_sumsq, p.out_log_gas_price_sum, (extract(epoch FROM p.last_out_at) * 1000000)::bigint,
           p.out_bucket, p.out_bucket_count, p.out_prev_count, p.in_count, p.in_bucket, p.in_bucket_count,
           p.in_prev_count, p.out_peers
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

-- train_model gains feature_set

DROP FUNCTION @extschema@.train_model(text, text, int, int, float8, bigint, text);

CREATE FUNCTION @extschema@.train_model(
    name text,
    source_query text,
    n_trees int DEFAULT 100,
    sample_size int DEFAULT 256,
    contamination float8 DEFAULT 0.01,
    seed bigint DEFAULT 42,
    transform text DEFAULT 'log1p',
    feature_set text DEFAULT '')
RETURNS int
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_train_model';

COMMENT ON FUNCTION @extschema@.train_model(text, text, int, int, float8, bigint, text, text) IS
    'Trains an Isolation Forest on a reservoir sample of source_query (value, gas, gas_price numeric columns, or one float8[] column; with feature_set ''behaviour/1'' the transactions.features column and transform ''identity'') and stores it inactive; returns the model id.';


-- automatic training on chainwatch.feature_set

-- _flags: is_anomaly of a stored row under a model, by the model's feature set (NULL: it cannot say)
CREATE FUNCTION @extschema@._flags(model_id int, feature_set text, value numeric, gas numeric, gas_price numeric,
                                   features float8[])
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN feature_set = 'behaviour/1' THEN @extschema@.is_anomaly(features, model_id)
                ELSE @extschema@.is_anomaly(value, gas, gas_price, model_id) END
$$;

COMMENT ON FUNCTION @extschema@._flags(int, text, numeric, numeric, numeric, float8[]) IS
    'Internal: whether a model of the given feature set flags a stored transaction (NULL when the row lacks its features).';

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
    feature_set text := @extschema@._setting('feature_set', 'behaviour/1');
    min_rows bigint := @extschema@._setting('auto_train_min_rows', '10000')::bigint;
    source text;
    transform text;
BEGIN
    IF NOT @extschema@._setting('auto_train', 'on')::boolean THEN
        RETURN NULL;
    END IF;
    IF feature_set = 'behaviour/1' THEN
        source := 'SELECT features FROM @extschema@.transactions WHERE features IS NOT NULL';
        transform := 'identity';
    ELSE
        source := 'SELECT value, gas, gas_price FROM @extschema@.transactions WHERE true';
        transform := 'log1p';
        feature_set := '';
    END IF;
    SELECT coalesce(sum(s.row_count), 0) INTO n FROM @extschema@.partition_state s WHERE s.table_name = 'transactions';
    IF feature_set <> '' AND n >= min_rows THEN
        -- rows stored before 0.11.0 (or by another writer) have no features: count those that do, up to min_rows
        SELECT count(*) INTO n FROM (SELECT 1 FROM @extschema@.transactions x WHERE x.features IS NOT NULL LIMIT min_rows) f;
        IF n >= min_rows THEN
            SELECT coalesce(sum(s.row_count), 0) INTO n FROM @extschema@.partition_state s WHERE s.table_name = 'transactions';
        END IF;
    END IF;
    SELECT m.* INTO active FROM @extschema@.models m WHERE m.is_active;
    IF NOT FOUND THEN
        IF n < min_rows THEN
            RETURN NULL;
        END IF;
        new_id := @extschema@.train_model('auto ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      source, transform => transform, feature_set => feature_set);
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
    IF n < min_rows THEN
        RETURN NULL; -- behaviour/1: too few rows stored with features yet
    END IF;
    IF due_time THEN
        source := source || format(' AND detected_at > now() - interval %L', make_interval(secs => retrain_s));
    END IF;
    new_id := @extschema@.train_model('retrain ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                  source, transform => transform, feature_set => feature_set);
    SELECT m.* INTO cand FROM @extschema@.models m WHERE m.id = new_id;
    SELECT avg(@extschema@._flags(cand.id, cand.feature_set, t.value, t.gas, t.gas_price, t.features)::int),
           avg(@extschema@._flags(active.id, active.feature_set, t.value, t.gas, t.gas_price, t.features)::int)
      INTO cand_rate, active_rate
      FROM (SELECT x.value, x.gas, x.gas_price, x.features FROM @extschema@.transactions x
             ORDER BY x.detected_at DESC LIMIT 10000) t;
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

-- the features read address profiles through this definer function: the ingestor's and the API's roles (sql/roles.sql)
REVOKE EXECUTE ON FUNCTION @extschema@._batch_profiles(text[]) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@._flags(int, text, numeric, numeric, numeric, float8[]) FROM PUBLIC;
