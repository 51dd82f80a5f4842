-- extension/sql/tables/store.sql — the store: transactions, anomalies and dead letters, their bounds and bookkeeping
--
-- Design (the invariants; docs/store.md tells the story at length)
--
-- * anomalies, transactions and dead_letters are range-partitioned on their time column, with no default
--   partition. Partition width is ttl / 12 unless set; maintain() creates `premake` partitions ahead and drops
--   partitions whose upper bound is older than the TTL. Partitions are ordinary tables, never members of the
--   extension, so pg_dump keeps them with their rows (init.sql releases the first ones CREATE EXTENSION makes).
-- * Row counts are kept per partition in partition_state, updated by commit_batch() from the transaction's own
--   statistics (the per-transaction insert counters), so the bound needs no count(*). commit_batch() evicts
--   the oldest rows when a table exceeds max_rows, so after any committed batch each table holds at most
--   max_rows rows; maintain() drops whole partitions that are expired or entirely excess, and reconciles
--   partition_state with the catalog (partitions detached, dropped or attached by hand or by a restore).
-- * The lock order, which keeps ingest and maintenance free of deadlocks: table locks first (a writer's COPY,
--   maintenance's DDL), in the order transactions, anomalies, dead_letters; then kafka_offsets rows in
--   partition order (commit_batch); then each table's bookkeeping lock (an advisory transaction lock keyed on
--   'chainwatch.partition_state' and the table name, _lock_counters), in table order; then the
--   retention_stats and ingest_state rows. Nobody who holds a later lock waits for an earlier one.
--   Maintenance DDL runs under a short lock_timeout inside subtransactions: it never waits behind a long
--   query for more than that.
-- * Exactly once: commit_batch() checks, under a row lock on kafka_offsets, that each partition's batch
--   starts at or after the stored next offset (else SQLSTATE CW002 and the whole batch rolls back) and
--   stores the new next offset in the same transaction as the rows.
-- * retention_policies and kafka_offsets are configuration: pg_dump keeps every row. A restore's
--   CREATE EXTENSION inserts the three default policies first; the trigger retention_policies_restore
--   (triggers.sql) turns the dump's insert of an existing table_name into an update, so the restored
--   database keeps the source's TTLs and bounds.

-- ---------------------------------------------------------------------------------------------
-- Retention policy and bookkeeping
-- ---------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.retention_policies (
    table_name      text PRIMARY KEY CHECK (table_name IN ('transactions', 'anomalies', 'dead_letters', 'address_profiles')),
    time_column     text     NOT NULL,
    ttl             interval NOT NULL CHECK (ttl >= interval '1 minute'),
    max_rows        bigint   NOT NULL CHECK (max_rows > 0),
    partition_width interval CHECK (partition_width IS NULL OR partition_width >= interval '10 seconds'),
    premake         int      NOT NULL DEFAULT 4 CHECK (premake BETWEEN 1 AND 100),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_policies_unpartitioned CHECK (table_name <> 'address_profiles' OR partition_width IS NULL)
);

COMMENT ON TABLE @extschema@.retention_policies IS
    'Bounds of each managed table: rows older than ttl are invisible and dropped within one partition width; at most max_rows rows. partition_width NULL means ttl / 12. address_profiles is not partitioned: maintain() evicts profiles not updated within ttl and the least recently updated beyond max_rows. Change with chainwatch.set_retention().';

INSERT INTO @extschema@.retention_policies (table_name, time_column, ttl, max_rows) VALUES
    ('transactions', 'detected_at', interval '24 hours', 5000000),
    ('anomalies',    'detected_at', interval '1 hour',   10000),
    ('dead_letters', 'received_at', interval '7 days',   100000),
    ('address_profiles', 'updated_at', interval '30 days', 1000000);

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
    detected_at     timestamptz   NOT NULL DEFAULT now(),
    features        float8[]
) PARTITION BY RANGE (detected_at);

COMMENT ON TABLE @extschema@.transactions IS
    'Every ingested transaction with its score (NULL while no model is active); bounded by its retention policy. Values in wei.';

COMMENT ON COLUMN @extschema@.transactions.features IS
    'The behaviour/1 feature vector (feature_names()) the ingestor computed from the address profiles as its batch saw them: what models over behaviour train on. NULL for rows stored before extension 0.11.0 or by another writer.';

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
    kafka_offset    bigint,
    document        text,
    explanation     jsonb,
    features        float8[]
) PARTITION BY RANGE (detected_at);

ALTER SEQUENCE @extschema@.anomalies_id_seq OWNED BY @extschema@.anomalies.id;

COMMENT ON TABLE @extschema@.anomalies IS
    'Detected anomalies, bounded in age (ttl) and rows (max_rows) by chainwatch.retention_policies. Query chainwatch.recent_anomalies to see exactly the rows within the TTL.';

COMMENT ON COLUMN @extschema@.anomalies.explanation IS
    'Why the row was flagged: each feature of its model with its share of the isolation, its value and the typical value (docs/detection.md); set by the trigger anomalies_document when the writer gives none.';

COMMENT ON COLUMN @extschema@.anomalies.features IS
    'The behaviour/1 feature vector of the transaction (as transactions.features); the explanation of a model over behaviour is computed from it.';

COMMENT ON COLUMN @extschema@.anomalies.document IS
    'The row as the REST API returns it (compact JSON), set by the trigger anomalies_document when the row is written.';

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
