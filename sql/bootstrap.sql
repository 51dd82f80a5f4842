-- sql/bootstrap.sql — creates or upgrades the chainwatch extension in the current database (idempotent)
--
-- Run as a superuser (or the provider's admin role that may create untrusted C extensions:
-- chainwatch.control says superuser = true) in the chainwatch database, before sql/roles.sql:
--
--     psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/bootstrap.sql
--
-- deploy/postgres/chainwatch-bootstrap.sh runs it from the chainwatch-postgres image's first start
-- (docker-compose) and from the Kubernetes migration Job, on every release: CREATE EXTENSION is a
-- no-op when the extension exists, and ALTER EXTENSION ... UPDATE moves it to the default_version
-- of the installed chainwatch.control through the shipped upgrade scripts (a no-op when current).

\set ON_ERROR_STOP on

CREATE EXTENSION IF NOT EXISTS chainwatch;
ALTER EXTENSION chainwatch UPDATE;

-- what is installed now, for the log of whoever ran this
SELECT extversion AS chainwatch_version FROM pg_extension WHERE extname = 'chainwatch';
SELECT current_setting('shared_preload_libraries') ~ '(^|[ ,])chainwatch($|[ ,])' AS maintenance_worker_preloaded;
