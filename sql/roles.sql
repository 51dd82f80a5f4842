-- sql/roles.sql — login roles for the daemons and monitoring, and their grants (idempotent)
--
-- Run after sql/bootstrap.sql, as the role that ran it, in the chainwatch database. Passwords come
-- in as psql variables; an empty or unset one leaves that role's password unchanged (so a rerun
-- for new grants after an upgrade needs no secrets):
--
--     psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 \
--          -v ingestor_password=... -v api_password=... -v monitor_password=... -f sql/roles.sql
--
-- Roles
--   chainwatch_ingestor  the ingestor: COPY into the store, commit_batch(), kafka_offsets, scoring.
--   chainwatch_api       the API server: reads the store, predicts, trains and activates models,
--                        manages API keys (its admin endpoints write).
--   chainwatch_monitor   dashboards: read-only, e.g. Grafana's panels on chainwatch.status().
--
-- Both daemons need DML on the store tables: commit_batch() runs with the caller's rights and
-- updates partition_state and evicts the oldest rows beyond max_rows. Partition DDL (maintain())
-- needs the owner of the extension's tables: the preloaded background worker has it. Where the
-- worker cannot run (docs/managed-postgres.md), set -v ingestor_maintains=on so the ingestor's
-- MAINTENANCE_INTERVAL_MS loop may call maintain(): that grants the extension owner's role to
-- chainwatch_ingestor, and refuses when that owner is a superuser (run maintain() from pg_cron as
-- the owner instead).
--
-- Grants are re-applied on every run, so objects added by ALTER EXTENSION UPDATE are covered once
-- the migration has run this file again.

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
\if :{?ingestor_maintains}
\else
\set ingestor_maintains off
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

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA chainwatch TO chainwatch_ingestor, chainwatch_api;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA chainwatch TO chainwatch_ingestor, chainwatch_api;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA chainwatch TO chainwatch_ingestor, chainwatch_api, chainwatch_monitor;
GRANT SELECT ON ALL TABLES IN SCHEMA chainwatch TO chainwatch_monitor;

-- one connection budget per role: a runaway pool cannot starve the others (max_connections 200)
ALTER ROLE chainwatch_ingestor CONNECTION LIMIT 60;
ALTER ROLE chainwatch_api CONNECTION LIMIT 120;
ALTER ROLE chainwatch_monitor CONNECTION LIMIT 5;

\if :ingestor_maintains
SELECT format('GRANT %I TO chainwatch_ingestor', o.rolname)
  FROM pg_extension e JOIN pg_roles o ON o.oid = e.extowner
 WHERE e.extname = 'chainwatch' AND NOT o.rolsuper
\gexec
SELECT 'chainwatch: the extension owner ' || o.rolname || ' is a superuser; not granting it to chainwatch_ingestor. '
       'Call chainwatch.maintain() from pg_cron as the owner instead (docs/managed-postgres.md).' AS warning
  FROM pg_extension e JOIN pg_roles o ON o.oid = e.extowner
 WHERE e.extname = 'chainwatch' AND o.rolsuper;
\endif
