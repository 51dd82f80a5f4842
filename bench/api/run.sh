#!/usr/bin/env bash
# bench/api/run.sh — `make bench-api`: build the ceiling server, then run bench/api/bench.py (see its docstring)
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p "$TOP/build/bench"
make -C "$TOP/common" --no-print-directory TOP="$TOP" >/dev/null
# the ceiling: same civetweb, options and cw_http_send as chainwatch-api, nothing else
cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$TOP/common/src" -o "$TOP/build/bench/api-ceiling" \
    "$TOP/bench/api/ceiling.c" "$TOP/build/lib/libcwdaemon.a" "$TOP/build/lib/libcwcore.a" -lcivetweb -lpthread
exec "$PYTHON" "$TOP/bench/api/bench.py" "$@"
