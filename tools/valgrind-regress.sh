#!/usr/bin/env bash
# tools/valgrind-regress.sh — `make valgrind`: the extension's pg_regress suite under valgrind memcheck on an
# assert-enabled PostgreSQL built from Debian's source package
#
# Usage: tools/valgrind-regress.sh        (root: it installs packages, and runs postgres as the postgres user)
#
# Why this way. Debian ships no assert-enabled PostgreSQL, so the server is built here from the source package
# of the installed minor version, or the newest one the mirror serves (apt-get source with a temporary apt
# configuration: the Sources indexes are signature-checked and the downloads checksum-checked, nothing is
# written under /etc), configured with --enable-cassert --enable-debug and -DUSE_VALGRIND. USE_VALGRIND makes
# PostgreSQL's allocators tell memcheck which palloc'd bytes are allocated, initialised or freed, so a read past
# a palloc'd chunk, a use after pfree or a memory-context reset, or an uninitialised byte that reaches a datum,
# a tuple or the WAL is reported even though the memory itself came from one big malloc'd block. The server is
# started the way PostgreSQL's developers do it (src/tools/valgrind.supp's header): the postmaster under
# memcheck, every forked backend and background worker traced with it, one log per process.
#
# The run is the normal regress suite against the normal stack configuration (tools/stack.sh): chainwatch
# preloaded, the maintenance worker running in a database `chainwatch` with the extension created by
# sql/bootstrap.sql, the tests in pg_regress's contrib_regression. The extension is built from a copy of
# extension/, common/src and tests/extension in build/pg-cassert/ext, so the objects in the source tree stay
# those of the normal build against the installed server.
#
# Every valgrind log is scanned (scan_logs says exactly what counts as ours). A memory error is ours when a
# frame of any of its stacks is in chainwatch.so or our sources, a definite leak when our code allocated it; the
# script fails if any is ours or if the suite fails, and lists the others (PostgreSQL's or a library's:
# reported, not hidden). With USE_VALGRIND every palloc'd chunk is a memcheck pool allocation, so "definitely
# lost" covers palloc'd chunks no pointer reaches any more in a context still alive at exit, as well as
# malloc'd memory (the forest core's arrays, cJSON's). A forked child inherits the postmaster's memory, so a
# postmaster leak is reported once per process: the summary counts distinct leaks and their occurrences.
#
# It is slow: 35 minutes on two cores (over an hour when they are busy), most of it in models.sql, whose
# four export_model() calls turn a 100-tree forest into ~450 kB of JSON and parse it with jsonb_in. PostgreSQL's
# repalloc tells memcheck VALGRIND_MEMPOOL_CHANGE, and memcheck answers every one by copying and sorting all live
# chunks of the memory context (check_mempool_sane in mc_malloc_wrappers.c, unconditional), so building a
# large jsonb costs time quadratic in its size under memcheck only (0.3 s without valgrind). Nothing is patched
# to avoid it: the run is the suite as it is, on PostgreSQL as its developers run it.
#
# Layout (build/pg-cassert/):
#   src/                      the source package and its extracted tree postgresql-VERSION/
#   install-VERSION/          the assert-enabled server; .cassert-build records how it was configured, and a
#                             rerun with the same version and flags skips the fetch and the build
#   build-VERSION.log         configure, make and make install output
#   ext/                      the extension's build copy (regress results in ext/build/regress)
#   logs/                     the last run: valgrind.PID.log per process, postgresql.log, installcheck.log,
#                             report.txt (every distinct error and leak with its stack)
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=$TOP/build/pg-cassert
EXT=$BUILD/ext
LOGS=$BUILD/logs
START_TIMEOUT=${VALGRIND_START_TIMEOUT:-600} # seconds for the postmaster to answer under valgrind
STOP_TIMEOUT=${VALGRIND_STOP_TIMEOUT:-300}   # seconds pg_ctl stop waits (each process runs a leak check)
PG_CFLAGS_BUILD="-O1 -g -fno-omit-frame-pointer"
PG_CPPFLAGS_BUILD="-DUSE_VALGRIND"
PG_CONFIGURE_FLAGS=(--enable-cassert --enable-debug --without-icu --without-readline --without-llvm)
BUILD_PACKAGES=(gcc make perl bzip2 zlib1g-dev valgrind libc6-dbg libcjson-dev)
RUN_DIR=
PM_PID=
PG_BIN=

say() { printf 'valgrind: %s\n' "$*" >&2; }

die() {
    printf 'valgrind: error: %s\n' "$*" >&2
    exit 1
}

# as_pg CMD... — run a command as the postgres OS user from / (initdb and postgres refuse root)
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# elapsed START — print the seconds since START (a value of $SECONDS) as "Mm SSs"
elapsed() {
    local s=$((SECONDS - $1))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# install_packages — apt-get install whatever of BUILD_PACKAGES is missing (flex and bison are not needed: a
# release tarball carries the generated parsers)
install_packages() {
    local missing=() p status
    for p in "${BUILD_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# installed_version — print the Debian version of the installed server (15.20-0+deb12u1)
installed_version() {
    "$PG_CONFIG" --version | sed -n 's/^PostgreSQL [0-9.]* (Debian \([^)]*\)).*/\1/p'
}

# stamp_text VERSION PREFIX — print what .cassert-build must contain for a build to be reused
stamp_text() {
    printf 'postgresql %s\nCFLAGS=%s\nCPPFLAGS=%s\nconfigure --prefix=%s %s\n' "$1" "$PG_CFLAGS_BUILD" \
        "$PG_CPPFLAGS_BUILD" "$2" "${PG_CONFIGURE_FLAGS[*]}"
}

# cached VERSION — true if install-VERSION holds a complete build with today's flags
cached() {
    local prefix=$BUILD/install-$1
    [[ -f $prefix/.cassert-build && -x $prefix/bin/postgres ]] &&
        [[ $(cat "$prefix/.cassert-build") == "$(stamp_text "$1" "$prefix")" ]]
}

# fetch_source DEBVERSION — download postgresql-15's source package into build/pg-cassert/src: the given
# version if apt can fetch it, else the newest one it can (said loudly: the mirror may list a security update
# in its index whose files it does not serve); print the upstream version fetched
fetch_source() {
    local want=$1 apt=$BUILD/apt opts v
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$BUILD/src"
    cat >"$apt/deb-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    opts=(-o "Dir::Etc::sourcelist=$apt/deb-src.sources" -o Dir::Etc::sourceparts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -q)
    apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 || {
        tail -n 20 "$apt/update.log" >&2
        die "apt-get update (deb-src) failed"
    }
    : >"$apt/source.log"
    # the installed version first, then every other offered one, newest first
    for v in "$want" $(apt-cache "${opts[@]}" showsrc postgresql-15 2>/dev/null | sed -n 's/^Version: //p' |
        sort -rV | grep -vxF "$want"); do
        if (cd "$BUILD/src" && apt-get "${opts[@]}" source --download-only "postgresql-15=$v") \
            >>"$apt/source.log" 2>&1; then
            [[ $v == "$want" ]] ||
                say "WARNING: the installed server is $want but apt could not fetch its source; using $v"
            printf '%s\n' "${v%%-*}"
            return 0
        fi
        say "apt-get source postgresql-15=$v failed (see $apt/source.log)"
    done
    die "no source package of postgresql-15 could be fetched"
}

# newest_cached — print the newest version with a complete cached build (empty if none)
newest_cached() {
    local d v
    for d in "$BUILD"/install-*; do
        v=${d##*/install-}
        if [[ -d $d ]] && cached "$v"; then printf '%s\n' "$v"; fi
    done | sort -V | tail -n1
}

# build_server VERSION — extract, configure, make and make install into install-VERSION (log: build-VERSION.log)
build_server() {
    local ver=$1 prefix=$BUILD/install-$1 tree=$BUILD/src/postgresql-$1 log=$BUILD/build-$1.log
    local tarball=$BUILD/src/postgresql-15_$1.orig.tar.bz2
    [[ -f $tarball ]] || die "missing $tarball"
    rm -rf "$tree" "$prefix"
    tar -xjf "$tarball" -C "$BUILD/src"
    [[ -d $tree ]] || die "$tarball did not unpack to $tree"
    say "building PostgreSQL $ver with asserts and valgrind support (log: $log)"
    (
        cd "$tree"
        ./configure --prefix="$prefix" "${PG_CONFIGURE_FLAGS[@]}" \
            CFLAGS="$PG_CFLAGS_BUILD" CPPFLAGS="$PG_CPPFLAGS_BUILD"
        # src/ only: the server, libpq, the client programs initdb/pg_ctl/psql, pg_regress and the pgxs files
        make -j2 -C src
        make -C src install
        make -C config install
    ) >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        die "building PostgreSQL $ver failed (see $log)"
    }
    stamp_text "$ver" "$prefix" >"$prefix/.cassert-build"
}

# build_extension — copy the extension's sources to ext/ and build and install them against the cassert server
build_extension() {
    local pgc=$PG_BIN/pg_config
    rm -rf "$EXT"
    mkdir -p "$EXT/common/src" "$EXT/tests" "$EXT/build" # build/: pg_regress's --outputdir=../build/regress
    cp -a "$TOP/extension" "$EXT/extension"
    cp -a "$TOP/common/src/"*.[ch] "$EXT/common/src/"
    cp -a "$TOP/tests/extension" "$EXT/tests/extension"
    find "$EXT" \( -name '*.o' -o -name '*.so' -o -name '*.bc' \) -delete
    {
        make -C "$EXT/extension" with_llvm=no PG_CONFIG="$pgc"
        make -C "$EXT/extension" with_llvm=no PG_CONFIG="$pgc" install
    } >"$LOGS/extension-build.log" 2>&1 || {
        tail -n 40 "$LOGS/extension-build.log" >&2
        die "building the extension against the cassert server failed"
    }
}

# free_port — print a TCP port on 127.0.0.1 that was free a moment ago
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# init_cluster PORT — initdb RUN_DIR/data (not under valgrind) with the stack's chainwatch settings
init_cluster() {
    local data=$RUN_DIR/data
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$LOGS/initdb.log" 2>&1 || {
        tail -n 20 "$LOGS/initdb.log" >&2
        die "initdb failed"
    }
    # Loopback and a socket in RUN_DIR only, trust: a throwaway cluster. fsync off: nothing here is kept.
    cat >>"$data/postgresql.conf" <<EOF

# tools/valgrind-regress.sh settings
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$RUN_DIR'
shared_buffers = 32MB
max_connections = 20
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
shared_preload_libraries = 'chainwatch'
chainwatch.database = 'chainwatch'
EOF
}

# start_server — start the postmaster under memcheck, wait (START_TIMEOUT) until it accepts connections
start_server() {
    local supp=$1 deadline
    mkdir -p "$RUN_DIR/valgrind"
    chown postgres: "$RUN_DIR/valgrind"
    setsid runuser -u postgres -- valgrind --tool=memcheck --trace-children=yes --track-origins=yes \
        --read-var-info=yes --num-callers=30 --suppressions="$supp" \
        --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --fullpath-after= \
        --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \
        --log-file="$RUN_DIR/valgrind/valgrind.%p.log" \
        "$PG_BIN/postgres" -D "$RUN_DIR/data" >"$RUN_DIR/postgresql.log" 2>&1 </dev/null &
    PM_PID=$!
    deadline=$((SECONDS + START_TIMEOUT))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 5; do
        if ! kill -0 "$PM_PID" 2>/dev/null; then
            tail -n 20 "$RUN_DIR/postgresql.log" >&2
            die "the postmaster exited during startup"
        fi
        ((SECONDS < deadline)) || die "the postmaster did not answer within ${START_TIMEOUT}s"
        sleep 2
    done
}

# cluster_pids — print the PIDs of this cluster's processes (all run as postgres with RUN_DIR/data in their
# valgrind command line; the unique mktemp directory keeps other clusters out)
cluster_pids() { pgrep -u postgres -f "$RUN_DIR/data" 2>/dev/null || true; }

# stop_server MODE — stop the postmaster with pg_ctl -m MODE (then immediate, then SIGKILL of this cluster's
# processes by PID) and wait until valgrind has written every process's report; never waits forever
stop_server() {
    [[ -n $PM_PID ]] || return 0
    local mode pid deadline
    for mode in "$1" immediate; do
        [[ -n $(cluster_pids) && -f $RUN_DIR/data/postmaster.pid ]] || break
        as_pg "$PG_BIN/pg_ctl" stop -D "$RUN_DIR/data" -m "$mode" -t "$STOP_TIMEOUT" >/dev/null 2>&1 ||
            say "pg_ctl stop -m $mode failed"
    done
    # backends and workers exit with the postmaster, but their leak checks may still be writing
    deadline=$((SECONDS + 180))
    while [[ -n $(cluster_pids) ]] && ((SECONDS < deadline)); do
        sleep 1
    done
    for pid in $(cluster_pids); do
        say "killing process $pid of the cluster (it did not exit)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait "$PM_PID" 2>/dev/null || true
    PM_PID=
}

# cleanup — on any exit: stop the server if it is still up, keep the logs, remove the throwaway cluster
cleanup() {
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
        stop_server immediate
        [[ -f $RUN_DIR/postgresql.log ]] && cp "$RUN_DIR/postgresql.log" "$LOGS/"
        cp "$RUN_DIR"/valgrind/*.log "$LOGS/" 2>/dev/null || true
        rm -rf "$RUN_DIR"
    fi
}

# scan_logs — summarise every valgrind log in LOGS (report.txt: each distinct error and leak with its stack);
# exit 1 if any is ours. An error is ours when any of its stacks (access, allocation, origin) has a chainwatch
# frame; a definite leak is ours when a chainwatch frame is among the LEAK_DEPTH innermost frames of its
# allocation stack, i.e. our code allocated it (directly or through a helper such as lappend or pstrdup), not
# merely somewhere below a PostgreSQL subsystem (plpgsql compiling a function we called through SPI, the
# relcache) that keeps its memory in its own long-lived context.
scan_logs() {
    "$PYTHON" - "$LOGS" "$EXT" <<'PY'
import collections, glob, os, re, sys

LEAK_DEPTH = 5
logs, ext = sys.argv[1], sys.argv[2].rstrip("/") + "/"
frame_re = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-F]+: (.*)$")
size_re = re.compile(r"([\d,]+) (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in")


def is_ours(line):
    return ext in line or "/chainwatch.so" in line


def frames(block):
    return [m.group(1) for m in map(frame_re.match, block) if m]


def signature(block):
    # the error's kind and its first frames, without addresses, pids, byte counts or record numbers
    kind = re.sub(r"^==\d+== ", "", block[0])
    kind = re.sub(r"^[\d,]+ (\(.*?\) )?bytes in [\d,]+ blocks", "N bytes in M blocks", kind)
    kind = re.sub(r" in loss record [\d,]+ of [\d,]+", "", kind)
    return kind, tuple(frames(block)[:12])


count = collections.Counter()        # (category, signature) -> occurrences
first = {}                           # (category, signature) -> (log name, block, bytes)
processes = 0
for path in sorted(glob.glob(os.path.join(logs, "valgrind.*.log"))):
    processes += 1
    block = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if "VALGRINDERROR-BEGIN" in line:
            block = []
        elif "VALGRINDERROR-END" in line:
            if block:
                fr = frames(block)
                if "definitely lost" in block[0]:
                    top = fr[0] if fr else ""
                    via = "malloc" if re.match(r"(malloc|calloc|realloc|strdup|strndup) ", top) else "palloc"
                    owner = "ours" if any(is_ours(f) for f in fr[:LEAK_DEPTH]) else "other"
                    cat = ("leak", via, owner)
                else:
                    cat = ("error", "", "ours" if any(map(is_ours, block)) else "other")
                key = (cat, signature(block))
                count[key] += 1
                if key not in first:
                    m = size_re.search(block[0])
                    first[key] = (os.path.basename(path), block, int(m.group(1).replace(",", "")) if m else 0)
            block = None
        elif block is not None:
            block.append(line)


def select(kind, owner):
    ordered = sorted(count.items(), key=lambda kv: -kv[1])
    return [(k, n) for k, n in ordered if k[0][0] == kind and k[0][2] == owner]


with open(os.path.join(logs, "report.txt"), "w") as out:
    for kind in ("error", "leak"):
        for owner in ("ours", "other"):
            for (cat, sig), n in select(kind, owner):
                name, block, _ = first[(cat, sig)]
                out.write(f"=== {kind} ({cat[1] or 'memcheck'}), {owner}: {n} occurrence(s) "
                          f"in {processes} processes, first in {name}\n" + "\n".join(block) + "\n\n")


def line(kind, owner, label):
    items = select(kind, owner)
    occ = sum(n for _, n in items)
    size = sum(first[k][2] for k, _ in items)
    extra = f", {size} bytes" if kind == "leak" else ""
    print(f"valgrind: {label}: {len(items)} distinct, {occ} occurrences{extra}")
    return items


report = os.path.join(logs, "report.txt")
print(f"valgrind: {processes} process logs scanned (every distinct report with its stack: {report})")
ours_err = line("error", "ours", "memory errors with a chainwatch frame")
other_err = line("error", "other", "memory errors without a chainwatch frame (PostgreSQL's or a library's)")
ours_leak = line("leak", "ours", "definite leaks allocated by chainwatch code")
other_leak = line("leak", "other",
                  "definite leaks allocated by PostgreSQL (its contexts; inherited ones counted per process)")
listing = (("ours ", ours_err + ours_leak, None), ("other", other_err, None), ("other", other_leak, 8))
for title, items, limit in listing:
    for (cat, (kind, fr)), n in items[:limit]:
        where = " < ".join(f.split(" (")[0] for f in fr[:7])
        print(f"  {title} {cat[0]}{'/' + cat[1] if cat[1] else ''} x{n}: {kind}\n          {where}")
    if limit is not None and len(items) > limit:
        print(f"  ... {len(items) - limit} more distinct PostgreSQL leaks in report.txt")
sys.exit(1 if ours_err or ours_leak else 0)
PY
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and runs postgres as the postgres user)"
    local t0=$SECONDS t want ver rc_regress=0 rc_scan=0 passed failed
    mkdir -p "$BUILD"
    install_packages

    # 1. the assert-enabled server, built once per version and flags
    want=$(installed_version)
    [[ -n $want ]] || die "cannot tell the installed server's Debian version from '$PG_CONFIG --version'"
    ver=${want%%-*}
    t=$SECONDS
    if cached "$ver"; then
        say "using the cached PostgreSQL $ver build in $BUILD/install-$ver"
    elif [[ -n $(newest_cached) ]]; then
        ver=$(newest_cached)
        say "WARNING: no cached build of the installed $want; using the cached PostgreSQL $ver" \
            "(remove $BUILD to fetch and build again)"
    else
        say "fetching the source package of postgresql-15 $want"
        ver=$(fetch_source "$want")
        if cached "$ver"; then
            say "using the cached PostgreSQL $ver build in $BUILD/install-$ver"
        else
            build_server "$ver"
            say "PostgreSQL $ver built in $(elapsed "$t")"
        fi
    fi
    PG_BIN=$BUILD/install-$ver/bin
    local supp=$BUILD/src/postgresql-$ver/src/tools/valgrind.supp
    [[ -f $supp ]] || die "missing $supp (remove $BUILD/install-$ver to rebuild)"

    # 2. the extension, built and installed against it
    rm -rf "$LOGS"
    mkdir -p "$LOGS"
    t=$SECONDS
    build_extension
    say "extension built against the cassert server in $(elapsed "$t")"

    # 3. a throwaway cluster, the postmaster under memcheck, the worker's database, the suite
    RUN_DIR=$(mktemp -d /tmp/cw-valgrind-XXXXXX)
    trap cleanup EXIT
    chown postgres: "$RUN_DIR"
    chmod 700 "$RUN_DIR"
    PORT=$(free_port)
    init_cluster "$PORT"
    t=$SECONDS
    start_server "$supp"
    say "postmaster up under valgrind on 127.0.0.1:$PORT after $(elapsed "$t")"
    if ! {
        "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
            -c 'CREATE DATABASE chainwatch' &&
            "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d chainwatch -v ON_ERROR_STOP=1 \
                -f "$TOP/sql/bootstrap.sql"
    } >"$LOGS/bootstrap.log" 2>&1; then
        cat "$LOGS/bootstrap.log" >&2
        die "creating the chainwatch database failed"
    fi
    t=$SECONDS
    say "running the regress suite under valgrind (slow: minutes per test is normal)"
    PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres \
        make -C "$EXT/extension" with_llvm=no PG_CONFIG="$PG_BIN/pg_config" installcheck \
        2>&1 | tee "$LOGS/installcheck.log" || rc_regress=$?
    local t_suite
    t_suite=$(elapsed "$t")
    t=$SECONDS
    stop_server fast
    say "server stopped in $(elapsed "$t")"
    cleanup
    RUN_DIR=

    # 4. the verdict
    passed=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ ' "$LOGS/installcheck.log" || true)
    failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$LOGS/installcheck.log" || true)
    [[ $rc_regress -ne 0 && $failed -eq 0 ]] && failed=1
    if [[ $rc_regress -ne 0 ]]; then
        find "$EXT/build/regress" -name regression.diffs -exec head -n 80 {} \; >&2 || true
    fi
    echo "valgrind: PostgreSQL $ver (--enable-cassert, -DUSE_VALGRIND), suite: $passed passed, $failed failed" \
        "in $t_suite; total $(elapsed "$t0")"
    scan_logs || rc_scan=$?
    if [[ $rc_regress -ne 0 || $rc_scan -ne 0 ]]; then
        echo "valgrind: FAILED (logs: $LOGS)"
        exit 1
    fi
    echo "valgrind: OK (logs: $LOGS)"
    exit 0
}

main "$@"
