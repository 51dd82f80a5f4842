#!/usr/bin/env bash
# deploy/postgres/initdb/50-chainwatch.sh — first start of chainwatch-postgres: extension, roles, grants
#
# docker-entrypoint.sh runs this once, when the data directory is empty, against POSTGRES_DB on the
# temporary socket-only server. Later releases are applied by running chainwatch-bootstrap again
# (docs/operations.md, "Upgrades").
set -euo pipefail
exec /usr/local/bin/chainwatch-bootstrap
