#!/usr/bin/env bash
# deploy/postgres/chainwatch-bootstrap.sh — run sql/bootstrap.sql then sql/roles.sql against one database
#
# The one way the sql/ bootstrap is applied outside development: from the chainwatch-postgres image's
# first start (docker-compose, via /docker-entrypoint-initdb.d) and from the Kubernetes migration Job
# (k8s/base/migrate-job.yaml) on every release. Idempotent: safe to run again and again.
#
# Admin connection (a superuser, or the provider's role allowed to create the C extension):
#   DATABASE_URL                   if set, a libpq URL; otherwise the usual PG* variables
#                                  (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ...)
#                                  or, inside the postgres image's initdb, POSTGRES_USER/POSTGRES_DB
# Role passwords (each optional; unset or empty leaves that role's password unchanged):
#   INGESTOR_PASSWORD | INGESTOR_DATABASE_URL   the password, or the URL the ingestor connects with
#   API_PASSWORD      | API_DATABASE_URL        the same for the API server
#   MONITOR_PASSWORD                            chainwatch_monitor (Grafana's Postgres data source)
#   CHAINWATCH_SQL_DIR                          where bootstrap.sql and roles.sql are (/opt/chainwatch/sql)
set -euo pipefail

SQL_DIR=${CHAINWATCH_SQL_DIR:-/opt/chainwatch/sql}

# url_password URL — print the percent-decoded password of a postgres:// URL (empty if none)
url_password() {
    local rest=${1#*://}
    local userinfo=${rest%%@*}
    [[ $rest == *@* && $userinfo == *:* ]] || return 0
    local pw=${userinfo#*:}
    printf '%b' "${pw//%/\\x}"
}

ingestor_password=${INGESTOR_PASSWORD:-$(url_password "${INGESTOR_DATABASE_URL:-}")}
api_password=${API_PASSWORD:-$(url_password "${API_DATABASE_URL:-}")}

conn=()
if [[ -n ${DATABASE_URL:-} ]]; then
    conn=("$DATABASE_URL")
elif [[ -n ${POSTGRES_USER:-} && -z ${PGHOST:-} ]]; then
    # inside docker-entrypoint.sh's initdb phase: the temporary server listens on the socket only
    conn=(--username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}")
fi

echo "chainwatch-bootstrap: applying $SQL_DIR/bootstrap.sql"
psql "${conn[@]}" -X -q -v ON_ERROR_STOP=1 -f "$SQL_DIR/bootstrap.sql"
echo "chainwatch-bootstrap: applying $SQL_DIR/roles.sql"
psql "${conn[@]}" -X -q -v ON_ERROR_STOP=1 \
    -v ingestor_password="$ingestor_password" \
    -v api_password="$api_password" \
    -v monitor_password="${MONITOR_PASSWORD:-}" \
    -f "$SQL_DIR/roles.sql"
echo "chainwatch-bootstrap: done"
