-- extension/sql/tables/models.sql — the model registry: models, their activation history, the registry generation
--
-- * At most one model is active (models_one_active). Models enter through train_model() and import_model(),
--   change state through activate_model(), rollback_model() and drop_model() (functions/models.sql).
-- * registry_state.generation is bumped (and notified on channel chainwatch_models) in the same transaction
--   as every change to models (triggers.sql), so chainwatch-api can key its cache of model metadata by it: a
--   cached model list is never older than the last committed registry change.
-- * models, model_activations and their sequences are configuration: pg_dump keeps their rows.

CREATE TABLE @extschema@.models (
    id               serial PRIMARY KEY,
    name             text        NOT NULL CHECK (name <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL DEFAULT current_user,
    algorithm        text        NOT NULL DEFAULT 'isolation_forest'
                                 CHECK (algorithm = 'isolation_forest'),
    source           text        NOT NULL CHECK (source IN ('trained', 'imported')),
    n_features       int         NOT NULL CHECK (n_features > 0),
    feature_names    text[],
    transform        text        NOT NULL CHECK (transform IN ('identity', 'log1p')),
    n_trees          int         NOT NULL CHECK (n_trees > 0),
    sample_size      int         NOT NULL CHECK (sample_size > 0),
    contamination    float8,
    threshold        float8      NOT NULL,
    seed             bigint,
    training_rows    bigint,
    training_summary jsonb,
    is_active        boolean     NOT NULL DEFAULT false,
    format_version   int         NOT NULL,
    checksum         bigint      NOT NULL,
    forest           bytea       NOT NULL,
    feature_set      text        CHECK (feature_set IN ('transaction/1', 'behaviour/1'))
);

COMMENT ON TABLE @extschema@.models IS
    'Isolation Forest models: parameters, threshold, training summary and the serialized forest (CRC-32C checksum). At most one is active.';

COMMENT ON COLUMN @extschema@.models.threshold IS
    'Score above which a transaction is an anomaly: the (1 - contamination) quantile of the training scores (sklearn: -offset_).';

COMMENT ON COLUMN @extschema@.models.forest IS
    'The forest in chainwatch binary format (version format_version), read by the extension and the ingestor.';

COMMENT ON COLUMN @extschema@.models.feature_set IS
    'What the model scores: transaction/1 (value, gas, gas_price of the row), behaviour/1 (transactions.features, feature_names()), or NULL (vectors the caller gives, as an imported model''s).';

COMMENT ON COLUMN @extschema@.models.sample_size IS
    'Rows each tree was built from (sklearn max_samples_).';

CREATE UNIQUE INDEX models_one_active ON @extschema@.models ((true)) WHERE is_active;

COMMENT ON INDEX @extschema@.models_one_active IS 'Guarantees at most one active model.';

CREATE TABLE @extschema@.model_activations (
    id                bigserial PRIMARY KEY,
    model_id          int         NOT NULL,
    previous_model_id int,
    activated_at      timestamptz NOT NULL DEFAULT now(),
    activated_by      text        NOT NULL DEFAULT current_user,
    reason            text        NOT NULL CHECK (reason IN ('activate', 'rollback', 'auto_train'))
);

COMMENT ON TABLE @extschema@.model_activations IS
    'Activation history: each row names the model activated and the one it replaced, so rollback_model() can walk back.';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.models', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.models_id_seq', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_activations', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.model_activations_id_seq', '');

CREATE TABLE @extschema@.registry_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL DEFAULT 0
);

INSERT INTO @extschema@.registry_state DEFAULT VALUES;

COMMENT ON TABLE @extschema@.registry_state IS
    'generation: bumped in the same transaction as every change to chainwatch.models (and notified on channel chainwatch_models); chainwatch-api keys cached model metadata by it.';
