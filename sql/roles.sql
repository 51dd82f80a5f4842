-- sql/roles.sql — login roles for the daemons and monitoring, and their grants (idempotent)
--
-- Run after sql/bootstrap.sql, as the role that ran it, in the chainwatch database. Passwords come
-- in as psql variables; an empty or unset one leaves that role's password unchanged (so a rerun
-- for new grants after an upgrade needs no secrets):
--
--     psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 \
--          -v ingestor_password=... -v api_password=... -v monitor_password=... -f sql/roles.sql
--
-- Roles and what each may do (least privilege; tests/integration/test_least_privilege.py proves the "may not")
--   chainwatch_ingestor  INSERT (its COPY) into transactions, anomalies and dead_letters; read the models,
--                        the severity rules and its group's offsets; call commit_batch() and maintain().
--                        It may not read or change stored rows, models or keys.
--   chainwatch_api       read the store, the registry and the bookkeeping tables; score and predict;
--                        train and import models (through the functions only), activate and roll back
--                        models; manage API keys only
--                        through create_api_key(), revoke_api_key() and authenticate_api_key() — it cannot
--                        read key hashes, delete anomalies or ingest.
--   chainwatch_monitor   dashboards: read-only, everything but the API keys (e.g. Grafana on status()).
--
-- Writes the daemons are not trusted with run inside SECURITY DEFINER functions of the extension
-- (0.4.0): commit_batch() updates the offsets and counters and evicts rows, maintain() does partition
-- DDL as the extension owner, activate/rollback_model() flip the active model, the key functions
-- touch api_keys. So no role here needs UPDATE/DELETE on the store, DDL rights, or membership in the
-- owner's role, whether or not the server runs the maintenance worker (docs/managed-postgres.md).
--
-- Every run first revokes everything from the three roles, then grants exactly this list, so a rerun
-- after ALTER EXTENSION UPDATE covers new objects and withdraws what an older roles.sql granted.

\set ON_ERROR_STOP on
\if :{?ingestor_password}
\else
\set ingestor_password ''
\endif
\if :{?api_password}
\else
\set api_password ''
\endif
\if :{?monitor_password}
\else
\set monitor_password ''
\endif

SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['chainwatch_ingestor', 'chainwatch_api', 'chainwatch_monitor']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec

SELECT format('ALTER ROLE %I PASSWORD %L', r, p)
  FROM (VALUES ('chainwatch_ingestor', :'ingestor_password'),
               ('chainwatch_api', :'api_password'),
               ('chainwatch_monitor', :'monitor_password')) AS v(r, p)
 WHERE p <> ''
\gexec

-- nobody but these roles (and the owner) reaches the schema
REVOKE ALL ON SCHEMA chainwatch FROM PUBLIC;
GRANT USAGE ON SCHEMA chainwatch TO chainwatch_ingestor, chainwatch_api, chainwatch_monitor;

REVOKE ALL ON ALL TABLES IN SCHEMA chainwatch FROM chainwatch_ingestor, chainwatch_api, chainwatch_monitor;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA chainwatch FROM chainwatch_ingestor, chainwatch_api, chainwatch_monitor;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA chainwatch FROM chainwatch_ingestor, chainwatch_api, chainwatch_monitor;

-- chainwatch_ingestor: stage (COPY), commit the batch, maintain
GRANT INSERT ON chainwatch.transactions, chainwatch.anomalies, chainwatch.dead_letters TO chainwatch_ingestor;
GRANT USAGE ON SEQUENCE chainwatch.anomalies_id_seq, chainwatch.dead_letters_id_seq TO chainwatch_ingestor;
GRANT SELECT ON chainwatch.models, chainwatch.severity_rules, chainwatch.kafka_offsets TO chainwatch_ingestor;
GRANT EXECUTE ON FUNCTION chainwatch.commit_batch(text, text, int[], bigint[], bigint[], int),
                          chainwatch.maintain(), chainwatch.status(), chainwatch.committed_offsets(text),
                          chainwatch._batch_profiles(text[])
   TO chainwatch_ingestor;

-- chainwatch_api: read, score, train and switch models, manage keys through functions
GRANT SELECT ON chainwatch.transactions, chainwatch.anomalies, chainwatch.recent_anomalies,
                chainwatch.recent_transactions, chainwatch.models, chainwatch.model_activations,
                chainwatch.severity_rules, chainwatch.ingest_state, chainwatch.kafka_offsets,
                chainwatch.registry_state, chainwatch.retention_policies, chainwatch.retention_stats,
                chainwatch.partition_state
   TO chainwatch_api;
-- no INSERT on models: models enter only through train_model() and import_model(), which validate them and
-- insert as the extension's owner (a direct INSERT could forge created_by, source or a forest that never loads)
GRANT EXECUTE ON FUNCTION chainwatch.activate_model(int, text), chainwatch.rollback_model(),
                          chainwatch.create_api_key(text, text, timestamptz), chainwatch.revoke_api_key(text),
                          chainwatch.revoke_api_key(int), chainwatch.authenticate_api_key(text),
                          chainwatch.status(), chainwatch._batch_profiles(text[])
   TO chainwatch_api;

-- chainwatch_monitor: read-only, no keys
GRANT SELECT ON ALL TABLES IN SCHEMA chainwatch TO chainwatch_monitor;
REVOKE SELECT ON chainwatch.api_keys FROM chainwatch_monitor;
GRANT EXECUTE ON FUNCTION chainwatch.status() TO chainwatch_monitor;

-- one connection budget per role: a runaway pool cannot starve the others (max_connections 200)
ALTER ROLE chainwatch_ingestor CONNECTION LIMIT 60;
ALTER ROLE chainwatch_api CONNECTION LIMIT 120;
ALTER ROLE chainwatch_monitor CONNECTION LIMIT 5;

