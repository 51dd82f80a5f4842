#!/usr/bin/env bash
# tools/deps.sh — install every Debian package chainwatch needs and fetch Apache Kafka (idempotent, quiet when done)
#
# `make deps` runs this; `make demo` and `make check` run `make deps` first, so a fresh Debian 12
# machine needs nothing else. As root it installs with apt-get; as another user it only reports.
# Then `tools/kafka.sh fetch` copies the pinned Apache Kafka (tools/kafka/pom.xml, every jar checked against
# tools/kafka/jars.sha256) through Maven into ~/.cache/chainwatch (CHAINWATCH_CACHE), where tools/stack.sh
# starts it from; a no-op when it is there and intact.
set -euo pipefail

PACKAGES=(
    # build
    gcc make pkg-config clang clang-format libclang-rt-14-dev
    # PostgreSQL 15 and the extension build
    postgresql-15 postgresql-server-dev-15 postgresql-client-15 libipc-run-perl
    # pg_cron, for the maintenance schedule an operator may prefer to the worker (tests/integration/test_store.py)
    postgresql-15-cron
    # Kafka (Apache Kafka runs on Java 17 and is fetched with Maven), Redis, HTTP, JSON, unit tests
    openjdk-17-jre-headless maven librdkafka-dev kcat libhiredis-dev redis-server redis-tools libcivetweb-dev libcjson-dev
    libcmocka-dev wrk
    # integration tests, exporter, benchmarks
    python3 python3-pytest python3-psycopg2 python3-confluent-kafka python3-redis
    python3-sklearn python3-numpy python3-yaml python3-matplotlib
    # deployment checks
    docker-compose yamllint
)

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exec bash "$TOP/tools/kafka.sh" fetch
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing packages (run 'make deps' as root): ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package services must not start on install: the stack runs its own instances on free ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
fi
trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: packages done"
bash "$TOP/tools/kafka.sh" fetch
