-- extension/sql/chainwatch--0.1.0--0.2.0.sql — chainwatch 0.2.0: the TTL-partitioned, size-bounded store and the exactly-once ingest path
--
-- Design (the invariants; docs/store.md tells the story at length)
--
-- * anomalies, transactions and dead_letters are range-partitioned on their time column, with
--   no default partition. Partition width is ttl / 12 unless set; maintain() creates `premake`
--   partitions ahead and drops partitions whose upper bound is older than the TTL.
-- * Row counts are kept per partition in partition_state, updated by commit_batch() from the
--   transaction's own statistics (the per-transaction insert counters), so the bound needs no
--   count(*). commit_batch() evicts the oldest rows when a table exceeds max_rows, so after any
--   committed batch each table holds at most max_rows rows; maintain() drops whole partitions
--   that are expired or entirely excess.
-- * Lock order, which keeps ingest and maintenance free of deadlocks: the ingestor COPYs into
--   transactions, then anomalies, then dead_letters; commit_batch() and maintain() visit the
--   tables in that same order. A writer touches a table's partition_state rows only while it
--   holds ROW EXCLUSIVE on the table, maintenance only while it holds ACCESS EXCLUSIVE, so the
--   two never wait on each other's row locks. Maintenance DDL runs under a short lock_timeout
--   inside a subtransaction: it never waits behind a long query for more than that.
-- * Exactly once: commit_batch() checks, under a row lock on kafka_offsets, that each
--   partition's batch starts at or after the stored next offset (else SQLSTATE CW002 and the
--   whole batch rolls back) and stores the new next offset in the same transaction as the rows.

-- ---------------------------------------------------------------------------------------------
-- Retention policy and bookkeeping
-- ---------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.retention_policies (
    table_name      text PRIMARY KEY CHECK (table_name IN ('transactions', 'anomalies', 'dead_letters')),
    time_column     text     NOT NULL,
    ttl             interval NOT NULL CHECK (ttl >= interval '1 minute'),
    max_rows        bigint   NOT NULL CHECK (max_rows > 0),
    partition_width interval CHECK (partition_width IS NULL OR partition_width >= interval '10 seconds'),
    premake         int      NOT NULL DEFAULT 4 CHECK (premake BETWEEN 1 AND 100),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.retention_policies IS
    'Bounds of each managed table: rows older than ttl are invisible and dropped within one partition width; at most max_rows rows. partition_width NULL means ttl / 12. Change with chainwatch.set_retention().';

INSERT INTO @extschema@.retention_policies (table_name, time_column, ttl, max_rows) VALUES
    ('transactions', 'detected_at', interval '24 hours', 5000000),
    ('anomalies',    'detected_at', interval '1 hour',   10000),
    ('dead_letters', 'received_at', interval '7 days',   100000);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retention_policies', '');

CREATE TABLE @extschema@.partition_state (
    partition_name text PRIMARY KEY,
    table_name     text        NOT NULL REFERENCES @extschema@.retention_policies (table_name),
    lower_bound    timestamptz NOT NULL,
    upper_bound    timestamptz NOT NULL,
    row_count      bigint      NOT NULL DEFAULT 0 CHECK (row_count >= 0),
    CHECK (lower_bound < upper_bound)
);
CREATE INDEX ON @extschema@.partition_state (table_name, lower_bound);
COMMENT ON TABLE @extschema@.partition_state IS
    'One row per live partition of a managed table with its exact row count (maintained by commit_batch and maintain).';

CREATE TABLE @extschema@.retention_stats (
    table_name           text PRIMARY KEY REFERENCES @extschema@.retention_policies (table_name),
    evicted_ttl          bigint NOT NULL DEFAULT 0,
    evicted_size         bigint NOT NULL DEFAULT 0,
    partitions_created   bigint NOT NULL DEFAULT 0,
    partitions_dropped   bigint NOT NULL DEFAULT 0,
    last_maintenance_at  timestamptz,
    last_maintenance_ms  float8,
    last_maintenance_error text
);
INSERT INTO @extschema@.retention_stats (table_name) SELECT table_name FROM @extschema@.retention_policies;
COMMENT ON TABLE @extschema@.retention_stats IS 'Eviction counters by reason (ttl, size) and the last maintenance run per managed table.';

CREATE TABLE @extschema@.ingest_state (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    anomaly_generation bigint NOT NULL DEFAULT 0,
    last_ingest_at     timestamptz,
    batches            bigint NOT NULL DEFAULT 0,
    rows_ingested      bigint NOT NULL DEFAULT 0,
    anomalies_ingested bigint NOT NULL DEFAULT 0,
    dead_letters_ingested bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.ingest_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.ingest_state IS
    'Ingest counters and anomaly_generation, bumped by every batch that commits anomalies (cache keys of anomaly lists include it).';

-- ---------------------------------------------------------------------------------------------
-- Data tables
-- ---------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.transactions (
    hash            text          NOT NULL,
    from_address    text,
    to_address      text,
    value           numeric(78,0) NOT NULL,
    gas             numeric(78,0) NOT NULL,
    gas_price       numeric(78,0) NOT NULL,
    block_number    bigint,
    tx_time         timestamptz,
    score           float8,
    model_id        int,
    kafka_topic     text,
    kafka_partition int,
    kafka_offset    bigint,
    detected_at     timestamptz   NOT NULL DEFAULT now()
) PARTITION BY RANGE (detected_at);
COMMENT ON TABLE @extschema@.transactions IS
    'Every ingested transaction with its score (NULL while no model is active); bounded by its retention policy. Values in wei.';
-- lookups by hash use a hash index: a btree on the 66-character text hash costs several times more per COPYed row
CREATE INDEX transactions_hash_idx ON @extschema@.transactions USING hash (hash);
CREATE INDEX transactions_detected_at_idx ON @extschema@.transactions (detected_at);

CREATE SEQUENCE @extschema@.anomalies_id_seq CACHE 100;
CREATE TABLE @extschema@.anomalies (
    id              bigint        NOT NULL DEFAULT nextval('@extschema@.anomalies_id_seq'),
    hash            text          NOT NULL,
    from_address    text,
    to_address      text,
    value           numeric(78,0) NOT NULL,
    gas             numeric(78,0) NOT NULL,
    gas_price       numeric(78,0) NOT NULL,
    block_number    bigint,
    tx_time         timestamptz,
    detected_at     timestamptz   NOT NULL DEFAULT now(),
    score           float8        NOT NULL,
    severity        @extschema@.severity_level NOT NULL,
    model_id        int,
    kafka_topic     text,
    kafka_partition int,
    kafka_offset    bigint
) PARTITION BY RANGE (detected_at);
ALTER SEQUENCE @extschema@.anomalies_id_seq OWNED BY @extschema@.anomalies.id;
COMMENT ON TABLE @extschema@.anomalies IS
    'Detected anomalies, bounded in age (ttl) and rows (max_rows) by chainwatch.retention_policies. Query chainwatch.recent_anomalies to see exactly the rows within the TTL.';
CREATE INDEX anomalies_hash_idx ON @extschema@.anomalies USING hash (hash);
CREATE INDEX anomalies_detected_at_id_idx ON @extschema@.anomalies (detected_at, id);
CREATE INDEX anomalies_from_idx ON @extschema@.anomalies (from_address);
CREATE INDEX anomalies_to_idx ON @extschema@.anomalies (to_address);

CREATE SEQUENCE @extschema@.dead_letters_id_seq CACHE 100;
CREATE TABLE @extschema@.dead_letters (
    id              bigint      NOT NULL DEFAULT nextval('@extschema@.dead_letters_id_seq'),
    payload         bytea       NOT NULL,
    error           text        NOT NULL,
    reason          text        NOT NULL,
    kafka_topic     text,
    kafka_partition int,
    kafka_offset    bigint,
    received_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE @extschema@.dead_letters_id_seq OWNED BY @extschema@.dead_letters.id;
COMMENT ON TABLE @extschema@.dead_letters IS
    'Messages the ingestor could not decode: raw payload (bytes as received), reason class and error text, Kafka position. Bounded by its retention policy.';
CREATE INDEX dead_letters_received_at_idx ON @extschema@.dead_letters (received_at, id);

CREATE TABLE @extschema@.kafka_offsets (
    consumer_group  text   NOT NULL,
    topic           text   NOT NULL,
    partition       int    NOT NULL CHECK (partition >= 0),
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
COMMENT ON TABLE @extschema@.kafka_offsets IS
    'Next Kafka offset to consume per consumer group, topic and partition, advanced only by commit_batch() in the same transaction as the rows.';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.kafka_offsets', '');

-- ---------------------------------------------------------------------------------------------
-- Partition management
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.partition_width(table_name text) RETURNS interval
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(p.partition_width, greatest(p.ttl / 12, interval '10 seconds'))
      FROM @extschema@.retention_policies p WHERE p.table_name = partition_width.table_name
$$;
COMMENT ON FUNCTION @extschema@.partition_width(text) IS 'Width of new partitions of a managed table: its partition_width, or ttl / 12.';

-- _create_partition creates and attaches one partition [lower, upper) of a managed table.
CREATE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pname text := format('%s_p%s', tbl, to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'));
BEGIN
    EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname, tbl);
    -- ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: ingest and queries go on
    EXECUTE format('ALTER TABLE @extschema@.%I ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                   tbl, pname, lower_bound, upper_bound);
    INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound)
    VALUES (pname, tbl, _create_partition.lower_bound, _create_partition.upper_bound);
    UPDATE @extschema@.retention_stats s SET partitions_created = s.partitions_created + 1 WHERE s.table_name = tbl;
    RETURN pname;
END
$$;
COMMENT ON FUNCTION @extschema@._create_partition(text, timestamptz, timestamptz) IS 'Internal: creates and attaches one partition of a managed table.';

-- _ensure_partitions creates the partitions covering [now(), now() + premake * width) that are missing.
CREATE FUNCTION @extschema@._ensure_partitions(tbl text) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
    width interval := @extschema@.partition_width(tbl);
    wsec float8 := extract(epoch FROM @extschema@.partition_width(tbl));
    horizon timestamptz;
    cursor_ts timestamptz;
    upper_ts timestamptz;
    created int := 0;
BEGIN
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
    horizon := now() + pol.premake * width;
    -- continue after the newest partition, or start at the current aligned slot
    SELECT max(s.upper_bound) INTO cursor_ts FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    IF cursor_ts IS NULL OR cursor_ts < now() THEN
        cursor_ts := to_timestamp(floor(extract(epoch FROM now()) / wsec) * wsec);
        -- an existing partition may still cover part of the slot (after a width change)
        SELECT greatest(cursor_ts, max(s.upper_bound)) INTO cursor_ts
          FROM @extschema@.partition_state s WHERE s.table_name = tbl AND s.upper_bound > cursor_ts - width;
    END IF;
    WHILE cursor_ts < horizon LOOP
        upper_ts := to_timestamp((floor(extract(epoch FROM cursor_ts) / wsec) + 1) * wsec);
        PERFORM @extschema@._create_partition(tbl, cursor_ts, upper_ts);
        created := created + 1;
        cursor_ts := upper_ts;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION @extschema@._ensure_partitions(text) IS 'Internal: creates missing partitions up to premake widths ahead.';

-- _drop_partition drops one partition and accounts for its rows as evicted for `reason`.
CREATE FUNCTION @extschema@._drop_partition(pname text, reason text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    DELETE FROM @extschema@.partition_state s WHERE s.partition_name = pname RETURNING * INTO st;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- the first partitions were created by CREATE EXTENSION and so belong to the extension:
    -- release such a partition from it before dropping it
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_class'::regclass
                  AND d.objid = pg_catalog.to_regclass(format('@extschema@.%I', pname))
                  AND d.refclassid = 'pg_catalog.pg_extension'::regclass
                  AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION chainwatch DROP TABLE @extschema@.%I', pname);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS @extschema@.%I', pname);
    UPDATE @extschema@.retention_stats s
       SET evicted_ttl = s.evicted_ttl + CASE WHEN reason = 'ttl' THEN st.row_count ELSE 0 END,
           evicted_size = s.evicted_size + CASE WHEN reason = 'size' THEN st.row_count ELSE 0 END,
           partitions_dropped = s.partitions_dropped + 1
     WHERE s.table_name = st.table_name;
    RETURN st.row_count;
END
$$;
COMMENT ON FUNCTION @extschema@._drop_partition(text, text) IS 'Internal: drops a partition, counting its rows as evicted by ttl or size.';

-- _enforce_bound evicts the oldest rows of a table until it holds at most max_rows; returns rows evicted.
-- Whole partitions are emptied with DELETE here (no DDL: this runs inside ingest transactions);
-- maintain() drops the emptied partitions.
CREATE FUNCTION @extschema@._enforce_bound(tbl text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol record;
    total bigint;
    excess bigint;
    part record;
    n bigint;
    evicted bigint := 0;
BEGIN
    SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
    SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
    excess := total - pol.max_rows;
    IF excess <= 0 THEN
        RETURN 0;
    END IF;
    FOR part IN SELECT s.* FROM @extschema@.partition_state s
                 WHERE s.table_name = tbl AND s.row_count > 0
                 ORDER BY s.lower_bound FOR UPDATE
    LOOP
        EXIT WHEN excess <= 0;
        IF part.row_count <= excess THEN
            EXECUTE format('DELETE FROM @extschema@.%I', part.partition_name);
        ELSE
            EXECUTE format('DELETE FROM @extschema@.%1$I WHERE ctid = ANY (ARRAY(SELECT ctid FROM @extschema@.%1$I ORDER BY %2$I LIMIT %3$s))',
                           part.partition_name, pol.time_column, excess);
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        -- a whole-partition delete leaves it empty whatever the counter said
        UPDATE @extschema@.partition_state s
           SET row_count = CASE WHEN part.row_count <= excess THEN 0 ELSE greatest(s.row_count - n, 0) END
         WHERE s.partition_name = part.partition_name;
        excess := excess - n;
        evicted := evicted + n;
    END LOOP;
    IF evicted > 0 THEN
        UPDATE @extschema@.retention_stats s SET evicted_size = s.evicted_size + evicted WHERE s.table_name = tbl;
    END IF;
    RETURN evicted;
END
$$;
COMMENT ON FUNCTION @extschema@._enforce_bound(text) IS 'Internal: deletes the oldest rows of a table beyond its max_rows.';

CREATE FUNCTION @extschema@._xact_inserted(relid oid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'chainwatch_xact_inserted';
COMMENT ON FUNCTION @extschema@._xact_inserted(oid) IS 'Internal: rows the current transaction has inserted into a table.';

-- _count_inserts adds this transaction's inserted rows (from its own statistics) to the partition counters.
CREATE FUNCTION @extschema@._count_inserts(tbl text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR part IN SELECT s.partition_name, c.oid AS relid
                  FROM @extschema@.partition_state s
                  JOIN pg_catalog.pg_class c ON c.relname = s.partition_name
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = '@extschema@'
                 WHERE s.table_name = tbl
                 ORDER BY s.lower_bound
    LOOP
        n := @extschema@._xact_inserted(part.relid);
        IF n > 0 THEN
            UPDATE @extschema@.partition_state s SET row_count = s.row_count + n
             WHERE s.partition_name = part.partition_name;
            total := total + n;
        END IF;
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION @extschema@._count_inserts(text) IS 'Internal: adds the rows this transaction inserted into a table to its partition counters.';

-- ---------------------------------------------------------------------------------------------
-- The ingest transaction
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.commit_batch(
    consumer_group text,
    topic text,
    partitions int[],
    first_offsets bigint[],
    next_offsets bigint[],
    model_id int)
RETURNS TABLE (rows bigint, anomalies bigint, dead_letters bigint, evicted bigint, anomaly_generation bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    active int;
    stored bigint;
    i int;
    n_rows bigint;
    n_anom bigint;
    n_dead bigint;
    n_evicted bigint := 0;
    gen bigint;
BEGIN
    IF consumer_group IS NULL OR topic IS NULL OR partitions IS NULL OR first_offsets IS NULL OR next_offsets IS NULL THEN
        RAISE EXCEPTION 'commit_batch: consumer_group, topic, partitions and offsets are required'
            USING ERRCODE = '22004';
    END IF;
    IF cardinality(partitions) <> cardinality(first_offsets) OR cardinality(partitions) <> cardinality(next_offsets) THEN
        RAISE EXCEPTION 'commit_batch: partitions, first_offsets and next_offsets differ in length'
            USING ERRCODE = '2202E';
    END IF;
    IF NOT pg_catalog.current_setting('track_counts')::boolean THEN
        RAISE EXCEPTION 'chainwatch needs track_counts = on to count ingested rows'
            USING ERRCODE = '55000';
    END IF;

    -- the batch must have been scored with the model that is active now (NULL: none active)
    SELECT m.id INTO active FROM @extschema@.models m WHERE m.is_active;
    IF active IS DISTINCT FROM commit_batch.model_id THEN
        RAISE EXCEPTION 'batch scored with model %, but the active model is %',
                        coalesce(commit_batch.model_id::text, 'none'), coalesce(active::text, 'none')
            USING ERRCODE = 'CW001', HINT = 'Reload the active model and score the batch again.';
    END IF;

    -- exactly once: lock each partition's offset row (in partition order) and refuse replays
    FOR i IN SELECT u.ord FROM unnest(partitions) WITH ORDINALITY u(p, ord) ORDER BY u.p LOOP
        IF next_offsets[i] < first_offsets[i] OR first_offsets[i] < 0 THEN
            RAISE EXCEPTION 'commit_batch: invalid offsets [%, %) for partition %', first_offsets[i], next_offsets[i], partitions[i]
                USING ERRCODE = '22023';
        END IF;
        INSERT INTO @extschema@.kafka_offsets AS k (consumer_group, topic, partition, next_offset)
        VALUES (commit_batch.consumer_group, commit_batch.topic, partitions[i], 0)
        ON CONFLICT DO NOTHING;
        SELECT k.next_offset INTO stored FROM @extschema@.kafka_offsets k
         WHERE k.consumer_group = commit_batch.consumer_group AND k.topic = commit_batch.topic
           AND k.partition = partitions[i]
           FOR UPDATE;
        IF stored > first_offsets[i] THEN
            RAISE EXCEPTION 'batch replayed: partition % of % starts at offset %, but group % already committed up to %',
                            partitions[i], commit_batch.topic, first_offsets[i], commit_batch.consumer_group, stored
                USING ERRCODE = 'CW002', HINT = 'Roll back and resume from chainwatch.committed_offsets().';
        END IF;
        UPDATE @extschema@.kafka_offsets k SET next_offset = next_offsets[i], updated_at = now()
         WHERE k.consumer_group = commit_batch.consumer_group AND k.topic = commit_batch.topic
           AND k.partition = partitions[i];
    END LOOP;

    -- count and bound each table, in the documented lock order
    n_rows := @extschema@._count_inserts('transactions');
    n_evicted := n_evicted + @extschema@._enforce_bound('transactions');
    n_anom := @extschema@._count_inserts('anomalies');
    n_evicted := n_evicted + @extschema@._enforce_bound('anomalies');
    n_dead := @extschema@._count_inserts('dead_letters');
    n_evicted := n_evicted + @extschema@._enforce_bound('dead_letters');

    UPDATE @extschema@.ingest_state s
       SET anomaly_generation = s.anomaly_generation + CASE WHEN n_anom > 0 THEN 1 ELSE 0 END,
           last_ingest_at = now(),
           batches = s.batches + 1,
           rows_ingested = s.rows_ingested + n_rows,
           anomalies_ingested = s.anomalies_ingested + n_anom,
           dead_letters_ingested = s.dead_letters_ingested + n_dead
     RETURNING s.anomaly_generation INTO gen;
    IF n_anom > 0 THEN
        -- delivered at commit: API caches key anomaly lists by this generation
        PERFORM pg_notify('chainwatch_anomalies', gen::text);
    END IF;
    RETURN QUERY SELECT n_rows, n_anom, n_dead, n_evicted, gen;
END
$$;
COMMENT ON FUNCTION @extschema@.commit_batch(text, text, int[], bigint[], bigint[], int) IS
    'Ends an ingest transaction: checks the scoring model is still active (CW001), refuses replayed offsets (CW002), stores the next offsets, counts the rows COPYed in this transaction, enforces the row bounds and returns the counts.';

CREATE FUNCTION @extschema@.committed_offsets(consumer_group text)
RETURNS TABLE (topic text, partition int, next_offset bigint, updated_at timestamptz)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
    SELECT k.topic, k.partition, k.next_offset, k.updated_at FROM @extschema@.kafka_offsets k
     WHERE k.consumer_group = committed_offsets.consumer_group ORDER BY k.topic, k.partition
$$;
COMMENT ON FUNCTION @extschema@.committed_offsets(text) IS 'Where each partition must resume for a consumer group (the next offset to read).';

-- ---------------------------------------------------------------------------------------------
-- Maintenance
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._load() RETURNS void
LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'chainwatch_load';
COMMENT ON FUNCTION @extschema@._load() IS 'Internal: loads the library so the chainwatch.* settings are defined in this session.';

CREATE FUNCTION @extschema@._setting(name text, fallback text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('chainwatch.' || name, true), ''), fallback) $$;
COMMENT ON FUNCTION @extschema@._setting(text, text) IS 'Internal: a chainwatch.* setting with a fallback.';

CREATE FUNCTION @extschema@._auto_train() RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    active record;
    retrain_s int := @extschema@._setting('retrain_interval', '0')::int;
    id int;
BEGIN
    IF NOT @extschema@._setting('auto_train', 'on')::boolean THEN
        RETURN NULL;
    END IF;
    SELECT m.* INTO active FROM @extschema@.models m WHERE m.is_active;
    IF FOUND AND (retrain_s <= 0 OR active.created_at > now() - make_interval(secs => retrain_s)) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(s.row_count), 0) INTO n FROM @extschema@.partition_state s WHERE s.table_name = 'transactions';
    IF n < @extschema@._setting('auto_train_min_rows', '10000')::bigint THEN
        RETURN NULL;
    END IF;
    IF active IS NULL THEN
        id := @extschema@.train_model('auto ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      'SELECT value, gas, gas_price FROM @extschema@.transactions');
    ELSE
        id := @extschema@.train_model('retrain ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                      format('SELECT value, gas, gas_price FROM @extschema@.transactions WHERE detected_at > now() - interval %L',
                                             make_interval(secs => retrain_s)));
    END IF;
    PERFORM @extschema@.activate_model(id, 'auto_train');
    RAISE LOG 'chainwatch: trained and activated model % from % transactions', id, n;
    RETURN id;
END
$$;
COMMENT ON FUNCTION @extschema@._auto_train() IS
    'Internal: trains and activates a first model once transactions holds chainwatch.auto_train_min_rows rows (and retrains every chainwatch.retrain_interval seconds when set).';

CREATE FUNCTION @extschema@.maintain()
RETURNS TABLE (table_name text, partitions_created int, partitions_dropped int, rows_evicted bigint, error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl text;
    pol record;
    part record;
    t0 timestamptz;
    created int;
    dropped int;
    evicted bigint;
    err text;
    total bigint;
BEGIN
    PERFORM @extschema@._load();
    -- one maintainer at a time; a second caller returns at once
    IF NOT pg_try_advisory_xact_lock(hashtext('chainwatch.maintain')) THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', @extschema@._setting('maintenance_lock_timeout', '200'), true);

    FOREACH tbl IN ARRAY ARRAY['transactions', 'anomalies', 'dead_letters'] LOOP
        t0 := clock_timestamp();
        created := 0; dropped := 0; evicted := 0; err := NULL;
        BEGIN
            SELECT * INTO pol FROM @extschema@.retention_policies p WHERE p.table_name = tbl;
            created := @extschema@._ensure_partitions(tbl);
            -- expired partitions: everything in them is older than the TTL
            FOR part IN SELECT s.partition_name FROM @extschema@.partition_state s
                         WHERE s.table_name = tbl AND s.upper_bound <= now() - pol.ttl
                         ORDER BY s.lower_bound LOOP
                evicted := evicted + @extschema@._drop_partition(part.partition_name, 'ttl');
                dropped := dropped + 1;
            END LOOP;
            -- oldest partitions that are entirely excess, or empty and in the past
            SELECT coalesce(sum(s.row_count), 0) INTO total FROM @extschema@.partition_state s WHERE s.table_name = tbl;
            FOR part IN SELECT s.partition_name, s.row_count, s.upper_bound FROM @extschema@.partition_state s
                         WHERE s.table_name = tbl AND s.upper_bound <= now()
                         ORDER BY s.lower_bound LOOP
                IF total - part.row_count >= pol.max_rows THEN
                    evicted := evicted + @extschema@._drop_partition(part.partition_name, 'size');
                    total := total - part.row_count;
                    dropped := dropped + 1;
                ELSIF part.row_count = 0 THEN
                    PERFORM @extschema@._drop_partition(part.partition_name, 'size');
                    dropped := dropped + 1;
                ELSE
                    EXIT;
                END IF;
            END LOOP;
            evicted := evicted + @extschema@._enforce_bound(tbl);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            -- someone held the table too long: skip it this time, the next run retries
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
        END;
        UPDATE @extschema@.retention_stats s
           SET last_maintenance_at = now(),
               last_maintenance_ms = extract(epoch FROM clock_timestamp() - t0) * 1000,
               last_maintenance_error = err
         WHERE s.table_name = tbl;
        table_name := tbl; partitions_created := created; partitions_dropped := dropped;
        rows_evicted := evicted; error := err;
        RETURN NEXT;
    END LOOP;

    BEGIN
        PERFORM @extschema@._auto_train();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
        RAISE WARNING 'chainwatch: automatic training failed: %', err;
    END;
END
$$;
COMMENT ON FUNCTION @extschema@.maintain() IS
    'Creates partitions ahead, drops expired and entirely excess ones, enforces row bounds, trains a first model when due. Safe to call concurrently (a second caller returns at once) and under load (DDL waits at most chainwatch.maintenance_lock_timeout ms). Run every chainwatch.maintenance_interval by the background worker.';

CREATE FUNCTION @extschema@.set_retention(table_name text, ttl interval DEFAULT NULL, max_rows bigint DEFAULT NULL,
                                          partition_width interval DEFAULT NULL, premake int DEFAULT NULL)
RETURNS @extschema@.retention_policies
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result @extschema@.retention_policies;
BEGIN
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
            USING ERRCODE = '42704', HINT = 'Managed tables: transactions, anomalies, dead_letters.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION @extschema@.set_retention(text, interval, bigint, interval, int) IS
    'Changes a managed table''s TTL, row bound, partition width or premake; the TTL view applies it at once, the next maintain() applies it physically.';

-- ---------------------------------------------------------------------------------------------
-- What users query
-- ---------------------------------------------------------------------------------------------

CREATE VIEW @extschema@.recent_anomalies AS
SELECT a.id, a.hash, a.from_address, a.to_address, a.value, a.gas, a.gas_price, a.block_number,
       a.tx_time, a.detected_at, a.score, a.severity, a.model_id, a.kafka_topic, a.kafka_partition, a.kafka_offset
  FROM @extschema@.anomalies a
 WHERE a.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies');
COMMENT ON VIEW @extschema@.recent_anomalies IS
    'Anomalies detected within the TTL: never a row older than retention_policies.ttl, even between maintenance runs.';

CREATE VIEW @extschema@.recent_transactions AS
SELECT t.* FROM @extschema@.transactions t
 WHERE t.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'transactions');
COMMENT ON VIEW @extschema@.recent_transactions IS 'Transactions ingested within their TTL.';

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
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT p.table_name,
           (SELECT coalesce(sum(s.row_count), 0)::bigint FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           p.max_rows, p.ttl,
           (SELECT count(*)::int FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           now() - CASE p.table_name
                       WHEN 'anomalies' THEN (SELECT min(a.detected_at) FROM @extschema@.anomalies a)
                       WHEN 'transactions' THEN (SELECT min(t.detected_at) FROM @extschema@.transactions t)
                       ELSE (SELECT min(d.received_at) FROM @extschema@.dead_letters d) END,
           (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(format('@extschema@.%I', s.partition_name)::regclass)), 0)::bigint
              FROM @extschema@.partition_state s WHERE s.table_name = p.table_name),
           r.evicted_ttl, r.evicted_size, r.last_maintenance_at, r.last_maintenance_ms, r.last_maintenance_error,
           (SELECT m.id FROM @extschema@.models m WHERE m.is_active),
           (SELECT i.last_ingest_at FROM @extschema@.ingest_state i)
      FROM @extschema@.retention_policies p JOIN @extschema@.retention_stats r USING (table_name)
     ORDER BY p.table_name
$$;
COMMENT ON FUNCTION @extschema@.status() IS
    'One row per managed table: rows, bound, TTL, partitions, age of the oldest partition holding rows, bytes, evictions by reason, last maintenance, active model, last ingest. Offsets: chainwatch.kafka_offsets.';

-- partitions for the current window exist as soon as the extension does
SELECT @extschema@._ensure_partitions(t) FROM unnest(ARRAY['transactions', 'anomalies', 'dead_letters']) t;
