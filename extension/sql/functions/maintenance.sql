-- extension/sql/functions/maintenance.sql — maintain(): partitions, bounds, automatic training; set_retention()
--
-- maintain() runs in phases, each table's step in a subtransaction of its own, so a lock timeout in one step
-- skips only that step of that table until the next run:
--   1. reconcile partition_state with the catalog, then create partitions ahead (ATTACH takes SHARE UPDATE
--      EXCLUSIVE on the parent: it never waits for ingest and ingest never waits for it);
--   2. drop expired and entirely excess partitions, under ACCESS EXCLUSIVE on each parent, in table order;
--   3. enforce the row bounds, after all DDL, under the bookkeeping locks; evict address profiles (TTL on
--      updated_at, then max_rows; rows a writer has locked are skipped, so it never waits for one);
--   4. train a first model (or retrain) when due, only in a run that dropped, evicted and reconciled nothing:
--      it would otherwise hold ACCESS EXCLUSIVE on a table, or rows writers update, for as long as training
--      takes;
--   5. record the run in retention_stats (a failure here loses counters, never rows or partitions).
-- One owner schedules it: the background worker (extension/src/worker.c) where chainwatch is preloaded, or
-- pg_cron, or the ingestor's maintenance thread where neither runs (docs/operations.md). A second caller
-- returns at once (an advisory lock), so an extra scheduler costs nothing but a wasted call.

CREATE FUNCTION @extschema@._load() RETURNS void
LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'chainwatch_load';

COMMENT ON FUNCTION @extschema@._load() IS 'Internal: loads the library so the chainwatch.* settings are defined in this session.';

CREATE FUNCTION @extschema@._setting(name text, fallback text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('chainwatch.' || name, true), ''), fallback) $$;

COMMENT ON FUNCTION @extschema@._setting(text, text) IS 'Internal: a chainwatch.* setting with a fallback.';

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
CREATE FUNCTION @extschema@._auto_train() RETURNS int
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

CREATE FUNCTION @extschema@.maintain()
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

CREATE FUNCTION @extschema@.set_retention(table_name text, ttl interval DEFAULT NULL, max_rows bigint DEFAULT NULL,
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
