-- extension/updates/chainwatch--0.10.0--0.11.0.sql — chainwatch 0.11.0: the behavioural feature vector
--
-- * Feature set behaviour/1, defined once in C (common/src/txfeatures.c): the ingestor computes it for every row it
--   stores, from the address profiles as its batch reads them (_batch_profiles(), a definer function), into the
--   new column transactions.features (and anomalies.features); features() computes it against the profiles as
--   they are now, replay_features() recomputes it for stored rows from an empty history; feature_names().
-- * models.feature_set (transaction/1, behaviour/1 or NULL) names what a model scores, from its feature names;
--   train_model() gains feature_set ('' or 'behaviour/1'); automatic training trains on chainwatch.feature_set
--   (default behaviour/1) from the next training on; models stored before keep scoring exactly as before.
-- * address_profiles.out_value_count: sent transactions with a value; the profiles are rebuilt from the stored
--   transactions at the end of this update.
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


-- address profiles count the sent transactions that carried value: the value statistics divide by it

ALTER TABLE @extschema@.address_profiles ADD COLUMN out_value_count bigint NOT NULL DEFAULT 0 CHECK (out_value_count >= 0);

COMMENT ON COLUMN @extschema@.address_profiles.out_value_count IS 'Sent transactions that carried value (more than 0 wei): the count the value statistics divide by (zero-value calls add nothing to the sums).';

CREATE OR REPLACE FUNCTION @extschema@._profile_upsert_sql(target text, rows text) RETURNS text
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

CREATE OR REPLACE FUNCTION @extschema@._profile_merge_sql(source text, target text) RETURNS text
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

-- the feature functions

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
    feature_set text DEFAULT '',
    feature_names text[] DEFAULT '{}')
RETURNS int
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'chainwatch_train_model';

COMMENT ON FUNCTION @extschema@.train_model(text, text, int, int, float8, bigint, text, text, text[]) IS
    'Trains an Isolation Forest on a reservoir sample of source_query (value, gas, gas_price numeric columns, or one float8[] column; with feature_set ''behaviour/1'' the transactions.features column, transform ''identity'', and the features named in feature_names, all when empty) and stores it inactive; returns the model id.';


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

-- _auto_train: a first model once enough transactions are stored; then a retrain when the stored
-- transactions have grown to chainwatch.retrain_growth times the training rows of the newest model (the
-- active one or a later candidate that was not activated), on everything stored — a model trained on a
-- fresh install's first rows has seen little of the traffic to come (issue 26: 9.6% of later transactions
-- flagged as gas prices drifted) — or every chainwatch.retrain_interval seconds, on that latest window.
-- A retrained candidate is activated only if its checks pass: on the latest 10,000 stored transactions it
-- flags at most 3 x its contamination, or no more than the active model does. Otherwise it stays inactive,
-- a WARNING says why, and the next growth step is measured from it.
-- Models are trained on chainwatch.feature_set: behaviour/1 (default: transactions.features of the rows stored
-- with them, the features chainwatch.model_features names) or transaction/1 (value, gas, gas_price); a change
-- of either setting takes effect at the next training. Each tree is built from chainwatch.auto_train_sample_size
-- rows (default 2048; train_model()'s own default is scikit-learn's 256): on the benchmark stream, behaviour/1
-- models with 2048 rows per tree ranked anomalies far better (docs/detection.md). Their threshold is the
-- (1 - chainwatch.auto_train_contamination) quantile of the training scores (default 0.005; train_model()'s 0.01).
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
    names text[] := '{}';
    samples int := @extschema@._setting('auto_train_sample_size', '2048')::int;
    share float8 := @extschema@._setting('auto_train_contamination', '0.005')::float8;
BEGIN
    IF NOT @extschema@._setting('auto_train', 'on')::boolean THEN
        RETURN NULL;
    END IF;
    IF feature_set = 'behaviour/1' THEN
        source := 'SELECT features FROM @extschema@.transactions WHERE features IS NOT NULL';
        transform := 'identity';
        names := pg_catalog.regexp_split_to_array(pg_catalog.btrim(@extschema@._setting('model_features',
                     'log_value,log_gas,log_gas_price,sender_age,sender_gap,sender_value_up,sender_recent,gas_price_up')),
                     '\s*,\s*');
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
                                      source, transform => transform, feature_set => feature_set, feature_names => names,
                                      sample_size => samples, contamination => share);
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
                                  source, transform => transform, feature_set => feature_set, feature_names => names,
                                      sample_size => samples, contamination => share);
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

-- the stored transactions folded in again, with the new count (as 0.10.0's update did: profiles of
-- transactions no longer stored start over from what is stored)
SELECT @extschema@.rebuild_address_profiles();
