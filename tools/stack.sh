#!/usr/bin/env bash
# tools/stack.sh — throwaway dev stack (PostgreSQL 15, Redis, Apache Kafka) on free loopback ports in one directory
#
# Usage: tools/stack.sh up|down|status|env|record|start-broker|stop-broker [--dir DIR]   (see usage() or --help)
#
# Everything a stack owns lives under DIR (default <repo>/.run):
#   DIR/pg/data, DIR/pg/log/postgresql.log, DIR/pg/sock   PostgreSQL cluster, its log, its unix socket
#   DIR/redis/{redis.log,redis.pid}                       Redis (no persistence: --save '' --appendonly no)
#   DIR/kafka/N/{server.properties,data,kafka.log,port}   Apache Kafka node N (KRaft, broker and controller in one)
#   DIR/kafka/nodes                                       the pid-file names of the Kafka processes (kafka-1 ...)
#   DIR/kafka/{bootstrap,kafka.log}                       CHAINWATCH_KAFKA=mock: chainwatch-kafka-mock, its list
#   DIR/pids/<name>.pid                                   every long-running process started for this stack
#   DIR/stack.env                                         `export` lines for clients; `up` and `env` print it
#
# Pid files are the contract with the other tools (demo, ingestor, API): whoever starts a long-running process
# for this stack records it as DIR/pids/<name>.pid (`tools/stack.sh record NAME PID --dir DIR` does it) and
# `down` stops it. The format is two lines: the PID, then the process start time (field 22 of /proc/PID/stat,
# clock ticks since boot). `down` only signals a PID whose start time still matches, so a PID recycled by an
# unrelated process is never killed. A pid file with only the PID line is accepted: then a process that started
# after the pid file was written is taken to be a stranger.
#
# Lifecycle, and why: `up` always starts from an empty cluster (it wipes DIR/pg, DIR/redis, DIR/kafka, keeping
# other files in DIR) so tests and the demo see the same state every time. `up` refuses to run while any
# recorded process is alive: all of them alive is "already running", some dead is "partly running" and names
# the dead ones — rather than restarting behind the back of whatever still uses the survivors, it asks for a
# `down` first. Pid files whose processes are all dead (a crashed run) are cleaned up and `up` carries on.
# `down` keeps the data and logs for post-mortems; it is idempotent and exits 0 on a DIR that never came up.
#
# Security: the superuser `postgres` authenticates by `trust` on the unix socket and 127.0.0.1 and Redis has no
# password. That is only acceptable because this is a throwaway stack bound to loopback; never reuse these
# settings elsewhere. The daemons' roles of sql/roles.sql (chainwatch_ingestor, chainwatch_api,
# chainwatch_monitor) get fresh random passwords on every `up` and authenticate with scram-sha-256, so tests run
# the daemons with the least privilege they have in production: INGESTOR_DATABASE_URL, API_DATABASE_URL and
# MONITOR_DATABASE_URL in stack.env.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
PYTHON=${PYTHON:-/usr/bin/python3}
BIN=${CHAINWATCH_BIN:-$TOP/build/bin}
TOPIC=${CHAINWATCH_TOPIC:-blockchain-transactions}
PARTITIONS=${CHAINWATCH_PARTITIONS:-32}
START_TIMEOUT=${CHAINWATCH_STACK_TIMEOUT:-30} # seconds each component gets to answer
STOP_TIMEOUT=10                               # seconds between SIGTERM and SIGKILL
PORT_ATTEMPTS=5                               # starts retried when a picked port was taken meanwhile
KAFKA_MODE=${CHAINWATCH_KAFKA:-apache}         # apache (tools/kafka.sh fetch) or mock (chainwatch-kafka-mock)
BROKERS=${CHAINWATCH_KAFKA_BROKERS:-1}         # Apache Kafka nodes, each broker and controller
KAFKA_SASL=${CHAINWATCH_KAFKA_SASL:-0}         # 1: also a SASL_PLAINTEXT listener with a SCRAM-SHA-256 user
DIR=$TOP/.run

# usage — print the help text
usage() {
    cat <<EOF
Usage: tools/stack.sh COMMAND [--dir DIR]

Throwaway dev stack for chainwatch: PostgreSQL 15, Redis and Apache Kafka (KRaft) on free 127.0.0.1 ports,
everything inside DIR (default: <repo>/.run). Authentication is off (trust): loopback development only.

Commands:
  up              start the stack from an empty state, print DIR/stack.env (progress goes to stderr)
                  fails if the stack in DIR is already (or partly) running
  down            stop every process recorded in DIR/pids (also ones added by other tools); keeps data and logs
  status          one line per recorded process; exit 0 if postgres, redis and kafka all answer
  env             print DIR/stack.env (fails if the stack is not up); use: eval "\$(tools/stack.sh env)"
  record NAME PID record a process you started so that 'down' stops it (DIR/pids/NAME.pid)
  start-broker N  start Kafka node N again from its config and data (after a test killed or stopped it)
  stop-broker N   stop Kafka node N cleanly (SIGTERM, controlled shutdown)

Environment:
  CHAINWATCH_BIN            binaries directory (default <repo>/build/bin)
  CHAINWATCH_KAFKA          apache (default: Apache Kafka from 'tools/kafka.sh fetch', i.e. 'make deps') or
                            mock (chainwatch-kafka-mock: librdkafka's in-memory mock cluster, no Java needed)
  CHAINWATCH_KAFKA_BROKERS  Apache Kafka nodes (default 1; 3 gives replication factor 3, min.insync.replicas 2)
  CHAINWATCH_KAFKA_SASL=1   add a SASL_PLAINTEXT listener per node with a SCRAM-SHA-256 user (stack.env:
                            KAFKA_SASL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)
  CHAINWATCH_KAFKA_HEAP     broker JVM heap limit (default 768m)
  CHAINWATCH_KAFKA_RETENTION_BYTES  per-partition log.retention.bytes (default -1: keep everything)
  CHAINWATCH_TOPIC          Kafka topic to create (default blockchain-transactions)
  CHAINWATCH_PARTITIONS     its partition count (default 32)
  CHAINWATCH_STACK_TIMEOUT  seconds each component gets to come up (default 30)
  CHAINWATCH_PRELOAD=0      do not preload the chainwatch library even if it is installed
  PG_CONFIG                 pg_config of the PostgreSQL 15 to use (default pg_config)
EOF
}

# say MSG... — progress note on stderr (stdout is reserved for stack.env so `eval "$(stack.sh up)"` works)
say() { printf 'stack: %s\n' "$*" >&2; }

# die MSG... — report an error and exit 1 (the EXIT trap of `up` then stops what was started)
die() {
    printf 'stack: error: %s\n' "$*" >&2
    exit 1
}

# log_tail NAME FILE — show the last lines of a component's log, to explain why it failed
log_tail() {
    if [[ -s $2 ]]; then
        printf -- '--- last lines of %s (%s) ---\n' "$1" "$2" >&2
        tail -n 25 "$2" >&2
        printf -- '---\n' >&2
    else
        printf 'stack: (%s log %s is empty or missing)\n' "$1" "$2" >&2
    fi
}

# as_pg CMD... — run a command as the postgres OS user from / (initdb and postgres refuse to run as root, and
# runuser keeps our cwd, which postgres may not be allowed to enter)
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# free_ports N — print N distinct TCP ports on 127.0.0.1 that were free a moment ago (callers retry if one gets
# taken). All are bound at once, so no two are the same: two separate picks once gave a broker's PLAINTEXT and
# CONTROLLER listeners one port, and Kafka refused to start.
free_ports() {
    "$PYTHON" -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# free_port — one such port
free_port() { free_ports 1; }

# wait_until SECONDS PID CMD... — poll CMD every 0.2 s until it succeeds (0), the time is up (1) or process PID
# has died (2; pass PID "" when there is no process to watch), so a daemon that exits at once fails fast
wait_until() {
    local deadline=$((SECONDS + $1)) pid=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [[ -z $pid ]] || proc_alive "$pid" || return 2
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# wait_failure RC — describe a wait_until failure code for an error message
wait_failure() {
    if [[ $1 -eq 2 ]]; then echo "the process exited"; else echo "no answer within ${START_TIMEOUT}s"; fi
}

# count_lines FILE — print the number of lines in FILE (0 if it does not exist yet)
count_lines() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

# join SEP WORD... — print the words separated by SEP
join() {
    local sep=$1 out=""
    shift
    while (($# > 0)); do
        out+=${out:+$sep}$1
        shift
    done
    printf '%s\n' "$out"
}

# ---- process identity ---------------------------------------------------------------------------

# proc_stat PID — print "STATE STARTTIME" of a live process from /proc/PID/stat; fails if there is none.
# The command name (field 2) may contain spaces and parentheses, so everything up to the last ") " is cut.
proc_stat() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -ra fields <<<"${stat##*) }"
    printf '%s %s\n' "${fields[0]}" "${fields[19]}"
}

# proc_alive PID — true if the process exists and is not a zombie (PID 1 here may never reap orphans, so a
# killed daemon can linger as a zombie that kill -0 still reports)
proc_alive() {
    local state start
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    read -r state start < <(proc_stat "$1") || return 1
    [[ $state != Z && $state != X ]]
}

# proc_start_epoch PID — print when the process started, in whole seconds since the epoch
proc_start_epoch() {
    local state start btime
    read -r state start < <(proc_stat "$1") || return 1
    btime=$(awk '$1 == "btime" { print $2 }' /proc/stat)
    echo $((btime + start / $(getconf CLK_TCK)))
}

# pidfile_write NAME PID — record a process as DIR/pids/NAME.pid (PID and start time, written atomically);
# fails if the process is not running
pidfile_write() {
    local name=$1 pid=$2 state start file
    read -r state start < <(proc_stat "$pid") || return 1
    file=$DIR/pids/$name.pid
    mkdir -p "$DIR/pids"
    printf '%s\n%s\n' "$pid" "$start" >"$file.tmp"
    mv -f "$file.tmp" "$file"
}

# pidfile_pid FILE — print the PID recorded in a pid file (empty if unreadable)
pidfile_pid() {
    local pid=""
    read -r pid <"$1" 2>/dev/null || true
    printf '%s\n' "$pid"
}

# pidfile_live FILE — true if the process recorded in FILE is still alive and still the same process: its start
# time matches the recorded one or, for a PID-only file, it did not start after the file was written
pidfile_live() {
    local file=$1 pid="" recorded="" state start started
    { read -r pid && read -r recorded; } <"$file" 2>/dev/null || true
    proc_alive "$pid" || return 1
    read -r state start < <(proc_stat "$pid") || return 1
    if [[ -n $recorded ]]; then
        [[ $start == "$recorded" ]]
    else
        started=$(proc_start_epoch "$pid") || return 1
        # 2 s of slack: the pid file is written just after the process starts, and btime is rounded
        ((started <= $(stat -c %Y "$file") + 2))
    fi
}

# is_stack_name NAME — true for the stack's own processes: postgres, redis and the Kafka nodes (kafka-N, kafka-mock)
is_stack_name() { [[ $1 == postgres || $1 == redis || $1 == kafka-mock || $1 =~ ^kafka-[0-9]+$ ]]; }

# pidfile_names — print the names of all recorded processes: other tools' first (they use the stack, so they
# stop first), then the stack's own in reverse start order (the Kafka nodes, redis, postgres)
pidfile_names() {
    local f name
    for f in "$DIR"/pids/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        is_stack_name "$name" || printf '%s\n' "$name"
    done
    for f in "$DIR"/pids/kafka-*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        is_stack_name "$name" && printf '%s\n' "$name"
    done
    for name in redis postgres; do
        [[ -e $DIR/pids/$name.pid ]] && printf '%s\n' "$name"
    done
    return 0
}

# ---- stopping -----------------------------------------------------------------------------------

# signal_and_wait PID SIGNAL SECONDS — send SIGNAL and wait for the process to go; fails if it is still there
signal_and_wait() {
    kill "-$2" "$1" 2>/dev/null || true
    local deadline=$((SECONDS + $3))
    while proc_alive "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# stop_one NAME — stop the process recorded as NAME if it is still ours, then remove its pid file.
# Postgres goes through `pg_ctl stop -m fast` (clean shutdown, no crash recovery next time); everything else
# gets SIGTERM and, after STOP_TIMEOUT seconds, SIGKILL.
stop_one() {
    local name=$1 file=$DIR/pids/$1.pid pid
    pid=$(pidfile_pid "$file")
    if ! pidfile_live "$file"; then
        if proc_alive "$pid"; then
            say "$name: pid $pid now belongs to another process; not touched"
        else
            say "$name (pid ${pid:-?}) was not running"
        fi
        rm -f "$file"
        return 0
    fi
    if [[ $name == postgres ]]; then
        if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -m fast -w -t 30 stop >>"$DIR/pg/log/pg_ctl.log" 2>&1; then
            say "pg_ctl stop failed (see $DIR/pg/log/pg_ctl.log); sending SIGQUIT (immediate shutdown)"
            signal_and_wait "$pid" QUIT "$STOP_TIMEOUT" || signal_and_wait "$pid" KILL 5 || true
        fi
    elif ! signal_and_wait "$pid" TERM "$STOP_TIMEOUT"; then
        say "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
        signal_and_wait "$pid" KILL 5 || true
    fi
    if proc_alive "$pid"; then
        say "warning: $name (pid $pid) is still running; leaving its pid file"
        return 1
    fi
    say "$name stopped (pid $pid)"
    rm -f "$file"
}

# stop_all — stop every recorded process (see pidfile_names for the order); fails if one survived
stop_all() {
    local name rc=0 signalled=0 f
    while read -r name; do
        # The Kafka nodes get SIGTERM together: each one's controlled shutdown then runs while the others' do,
        # instead of the last one waiting for a quorum that the earlier ones took away.
        if [[ $name == kafka-* && $signalled -eq 0 ]]; then
            signalled=1
            for f in "$DIR"/pids/kafka-*.pid; do
                if pidfile_live "$f"; then kill -TERM "$(pidfile_pid "$f")" 2>/dev/null || true; fi
            done
        fi
        stop_one "$name" || rc=1
    done < <(pidfile_names)
    return "$rc"
}

# remove_socket_fallback — delete the short socket directory under /tmp if this DIR needed one
remove_socket_fallback() {
    local sock=""
    if [[ -f $DIR/pg/sockdir ]]; then read -r sock <"$DIR/pg/sockdir" || true; fi
    [[ $sock == /tmp/cw-pg-* && -d $sock ]] && rm -rf "$sock"
    return 0
}

# ---- starting -----------------------------------------------------------------------------------

# check_pg_can_reach — make DIR traversable for the postgres user (mkdtemp makes 0700 directories) and name the
# ancestor that blocks it if that is not enough
check_pg_can_reach() {
    as_pg test -x "$DIR" 2>/dev/null && return 0
    chmod o+x "$DIR"
    as_pg test -x "$DIR" 2>/dev/null && return 0
    # Walk down from / so the first directory that blocks is named, not one merely below it.
    local d="" part parts
    IFS=/ read -ra parts <<<"${DIR#/}"
    for part in "${parts[@]}"; do
        d+=/$part
        if ! as_pg test -x "$d" 2>/dev/null; then
            say "warning: $d is not traversable by the postgres user"
            die "postgres cannot reach $DIR; run 'chmod o+x $d' or use --dir under /tmp"
        fi
    done
    die "postgres cannot reach $DIR"
}

# pg_socket_dir — print the unix socket directory: DIR/pg/sock, or /tmp/cw-pg-<hash of DIR> when the socket
# path would not fit in sun_path (kept under 100 characters to stay clear of the 107-byte limit)
pg_socket_dir() {
    local sock=$DIR/pg/sock
    local socket_file=/.s.PGSQL.65535
    if ((${#sock} + ${#socket_file} >= 100)); then
        sock=/tmp/cw-pg-$(printf '%s' "$DIR" | sha1sum | cut -c1-12)
    fi
    printf '%s\n' "$sock"
}

# pg_init — create a fresh cluster in DIR/pg/data, owned by postgres, with our settings and trust auth
pg_init() {
    local data=$DIR/pg/data sock
    mkdir -p "$DIR/pg/log"
    sock=$(pg_socket_dir)
    mkdir -p "$sock"
    chmod 700 "$sock"
    printf '%s\n' "$sock" >"$DIR/pg/sockdir"
    chown -R postgres: "$DIR/pg" "$sock"
    # --no-sync only skips flushing the files initdb writes; the server itself runs with fsync=on.
    if ! as_pg "$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$DIR/pg/log/initdb.log" 2>&1; then
        log_tail initdb "$DIR/pg/log/initdb.log"
        die "initdb failed"
    fi
    # Trust for the socket and 127.0.0.1 only: a throwaway loopback dev stack, no passwords on purpose.
    cat >"$data/pg_hba.conf" <<'EOF'
# pg_hba.conf — written by tools/stack.sh: throwaway loopback dev stack, trust auth on purpose
# (the daemons' roles use passwords so that their grants and secret handling are tested)
host    all             chainwatch_ingestor,chainwatch_api,chainwatch_monitor 127.0.0.1/32 scram-sha-256
local   all             all                         trust
host    all             all         127.0.0.1/32    trust
local   replication     all                         trust
host    replication     all         127.0.0.1/32    trust
EOF
    printf "\n# tools/stack.sh settings (port is rewritten on each start attempt)\ninclude 'stack.conf'\n" \
        >>"$data/postgresql.conf"
    chown postgres: "$data/pg_hba.conf"
}

# pg_write_conf PORT — write DIR/pg/data/stack.conf for the given port (preloads chainwatch if it is installed)
pg_write_conf() {
    local conf=$DIR/pg/data/stack.conf
    {
        echo "# stack.conf — written by tools/stack.sh; fsync stays on (benchmarks run on this stack)"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $1"
        echo "unix_socket_directories = '$(pg_socket_dir)'"
        echo "max_connections = 200"
        echo "shared_buffers = 256MB"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        if [[ -f $PKGLIBDIR/chainwatch.so && ${CHAINWATCH_PRELOAD:-1} != 0 ]]; then
            echo "shared_preload_libraries = 'chainwatch'"
            echo "chainwatch.database = 'chainwatch'"
        fi
    } >"$conf"
    chown postgres: "$conf"
}

# pg_psql DB ARGS... — psql as postgres over TCP, no psqlrc, stop at the first error
pg_psql() {
    local db=$1
    shift
    "$PGBIN/psql" -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# pg_start — initdb, start postgres on a free port (retrying if the port was taken), record the postmaster,
# create the chainwatch database and run sql/bootstrap.sql when the extension is installed
pg_start() {
    local data=$DIR/pg/data log=$DIR/pg/log/postgresql.log attempt lines pid rc=0
    pg_init
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        PG_PORT=$(free_port)
        pg_write_conf "$PG_PORT"
        lines=$(count_lines "$log")
        if as_pg "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t "$START_TIMEOUT" start \
            </dev/null >>"$DIR/pg/log/pg_ctl.log" 2>&1; then
            break
        fi
        # A postmaster that did not answer in time may still be running: record it so cleanup stops it.
        if [[ -f $data/postmaster.pid ]]; then
            pid=$(head -n1 "$data/postmaster.pid")
            if proc_alive "$pid"; then pidfile_write postgres "$pid" || true; fi
        fi
        if tail -n +"$((lines + 1))" "$log" 2>/dev/null | grep -q 'Address already in use' &&
            [[ ! -e $DIR/pids/postgres.pid ]]; then
            say "postgres: port $PG_PORT was taken, retrying"
            continue
        fi
        log_tail postgres "$log"
        die "postgres did not start (log: $log)"
    done
    ((attempt <= PORT_ATTEMPTS)) || die "postgres: no free port after $PORT_ATTEMPTS attempts"
    pid=$(head -n1 "$data/postmaster.pid")
    pidfile_write postgres "$pid" || die "postgres (pid $pid) exited right after starting"
    wait_until "$START_TIMEOUT" "$pid" pg_psql postgres -qAt -c 'select 1' || rc=$?
    if ((rc != 0)); then
        log_tail postgres "$log"
        die "postgres does not answer on 127.0.0.1:$PG_PORT ($(wait_failure "$rc"))"
    fi
    pg_psql postgres -q -c 'CREATE DATABASE chainwatch' >/dev/null || die "could not create database chainwatch"
    if [[ -f $SHAREDIR/extension/chainwatch.control && -f $TOP/sql/bootstrap.sql ]]; then
        say "postgres: running sql/bootstrap.sql (chainwatch extension is installed)"
        if ! pg_psql chainwatch -q -f "$TOP/sql/bootstrap.sql" >"$DIR/pg/log/bootstrap.log" 2>&1; then
            log_tail bootstrap "$DIR/pg/log/bootstrap.log"
            die "sql/bootstrap.sql failed"
        fi
        pg_roles
    fi
    say "postgres up on 127.0.0.1:$PG_PORT (pid $pid, socket dir $(pg_socket_dir))"
}

# pg_roles — create the daemons' login roles with sql/roles.sql and fresh random passwords (ROLE_PASSWORDS)
pg_roles() {
    local r
    declare -gA ROLE_PASSWORDS=()
    for r in ingestor api monitor; do
        ROLE_PASSWORDS[$r]=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    done
    # the passwords go in on stdin, not on a command line that ps would show
    if ! {
        for r in ingestor api monitor; do printf "\\set %s_password '%s'\n" "$r" "${ROLE_PASSWORDS[$r]}"; done
        cat "$TOP/sql/roles.sql"
    } | pg_psql chainwatch -q >"$DIR/pg/log/roles.log" 2>&1; then
        log_tail roles "$DIR/pg/log/roles.log"
        die "sql/roles.sql failed"
    fi
}

# redis_start — start redis-server on a free port, detached from this shell, retrying if the port was taken
redis_start() {
    local log=$DIR/redis/redis.log attempt lines pid rc
    mkdir -p "$DIR/redis"
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        REDIS_PORT=$(free_port)
        lines=$(count_lines "$log")
        # setsid: its own session, so a ^C in the terminal that ran `up` does not reach it later. Redis logs
        # to stdout (no --logfile) so that errors from before it opens a log file land in the same place.
        setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
            --dir "$DIR/redis" --pidfile "$DIR/redis/redis.pid" --daemonize no \
            </dev/null >>"$log" 2>&1 &
        pid=$!
        # Recorded at once so that the cleanup of a failed `up` stops it.
        pidfile_write redis "$pid" || true
        rc=0
        wait_until "$START_TIMEOUT" "$pid" redis_answers || rc=$?
        if ((rc == 0)); then
            say "redis up on 127.0.0.1:$REDIS_PORT (pid $pid)"
            return 0
        fi
        if ((rc == 2)) && tail -n +"$((lines + 1))" "$log" | grep -q 'Address already in use'; then
            rm -f "$DIR/pids/redis.pid"
            say "redis: port $REDIS_PORT was taken, retrying"
            continue
        fi
        log_tail redis "$log"
        die "redis did not answer PING on 127.0.0.1:$REDIS_PORT ($(wait_failure "$rc"))"
    done
    die "redis: no free port after $PORT_ATTEMPTS attempts"
}

# redis_answers — true if Redis on REDIS_PORT replies PONG
redis_answers() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

# ---- Kafka: Apache Kafka in KRaft mode (default) or the librdkafka mock (CHAINWATCH_KAFKA=mock) ----------------

# kafka_names — print the pid-file names of the stack's Kafka processes, from DIR/kafka/nodes (written by `up`)
kafka_names() {
    local n
    if [[ -s $DIR/kafka/nodes ]]; then
        for n in $(cat "$DIR/kafka/nodes"); do printf '%s\n' "$n"; done
    fi
}

# stack_components — print the stack's own components in start order: postgres, redis, then the Kafka processes
stack_components() {
    printf '%s\n' postgres redis
    kafka_names
}

# kafka_start — start the broker(s) CHAINWATCH_KAFKA asks for, create TOPIC and wait until it has leaders
kafka_start() {
    mkdir -p "$DIR/kafka"
    case $KAFKA_MODE in
    mock) mock_start ;;
    apache) apache_start ;;
    esac
    KAFKA_SASL_BOOTSTRAP=${KAFKA_SASL_BOOTSTRAP:-}
    wait_until "$START_TIMEOUT" "" kafka_has_topic || {
        kafka_logs
        die "kafka at $KAFKA_BOOTSTRAP does not list topic $TOPIC with $PARTITIONS partitions and leaders"
    }
    say "kafka ($KAFKA_DESCRIPTION) up on $KAFKA_BOOTSTRAP, topic $TOPIC with $PARTITIONS partitions"
}

# kafka_logs — show the tail of every broker log (to explain a failed start)
kafka_logs() {
    local f
    for f in "$DIR"/kafka/kafka.log "$DIR"/kafka/*/kafka.log; do
        [[ -e $f ]] && log_tail kafka "$f"
    done
    return 0
}

# mock_start — chainwatch-kafka-mock (three brokers in one process, in memory; it creates the topic itself)
mock_start() {
    local log=$DIR/kafka/kafka.log boot=$DIR/kafka/bootstrap pid rc=0
    echo kafka-mock >"$DIR/kafka/nodes"
    setsid "$BIN/chainwatch-kafka-mock" --brokers 3 --topic "$TOPIC:$PARTITIONS" --bootstrap-file "$boot" \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    pidfile_write kafka-mock "$pid" || true
    wait_until "$START_TIMEOUT" "$pid" test -s "$boot" || rc=$?
    if ((rc != 0)); then
        log_tail kafka "$log"
        die "kafka mock did not write $boot ($(wait_failure "$rc"))"
    fi
    read -r KAFKA_BOOTSTRAP <"$boot"
    KAFKA_DESCRIPTION="librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?') mock cluster, 3 brokers"
    KAFKA_VERSION=mock
}

# apache_start — Apache Kafka: BROKERS combined broker+controller nodes in KRaft mode on free loopback ports,
# formatted fresh (one cluster id), started in parallel; retried with new ports when one was taken meanwhile
apache_start() {
    local attempt n
    KAFKA_VERSION=$(bash "$TOP/tools/kafka.sh" home | sed 's/.*kafka-//')
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        apache_configure
        apache_format
        for ((n = 1; n <= BROKERS; n++)); do apache_launch "$n"; done
        if apache_wait_all; then
            break
        fi
        grep -qs 'Address already in use' "$DIR"/kafka/*/kafka.log || {
            kafka_logs
            die "kafka did not start (logs: $DIR/kafka/N/kafka.log)"
        }
        say "kafka: a port was taken meanwhile, retrying with new ones"
        for ((n = 1; n <= BROKERS; n++)); do stop_one "kafka-$n" >/dev/null 2>&1 || true; done
    done
    ((attempt <= PORT_ATTEMPTS)) || die "kafka: no free ports after $PORT_ATTEMPTS attempts"
    apache_create_topic
    KAFKA_DESCRIPTION="Apache Kafka $KAFKA_VERSION, KRaft, $BROKERS broker$( ((BROKERS == 1)) || echo s)"
}

# apache_configure — pick the ports and write DIR/kafka/N/server.properties for every node
apache_configure() {
    local n voters="" boot="" sasl_boot="" rf isr
    rm -rf "$DIR"/kafka/[0-9]*
    : >"$DIR/kafka/nodes"
    rf=$((BROKERS < 3 ? BROKERS : 3))
    isr=$((rf < 3 ? 1 : 2))
    local -a ports
    read -r -a ports < <(free_ports $((BROKERS * 3)))
    for ((n = 1; n <= BROKERS; n++)); do
        mkdir -p "$DIR/kafka/$n"
        echo "${ports[3 * n - 3]}" >"$DIR/kafka/$n/port"
        echo "${ports[3 * n - 2]}" >"$DIR/kafka/$n/controller.port"
        if [[ $KAFKA_SASL == 1 ]]; then echo "${ports[3 * n - 1]}" >"$DIR/kafka/$n/sasl.port"; fi
        voters+=${voters:+,}$n@127.0.0.1:$(cat "$DIR/kafka/$n/controller.port")
        boot+=${boot:+,}127.0.0.1:$(cat "$DIR/kafka/$n/port")
        [[ $KAFKA_SASL != 1 ]] || sasl_boot+=${sasl_boot:+,}127.0.0.1:$(cat "$DIR/kafka/$n/sasl.port")
        echo "kafka-$n" >>"$DIR/kafka/nodes"
    done
    KAFKA_BOOTSTRAP=$boot
    KAFKA_SASL_BOOTSTRAP=$sasl_boot
    for ((n = 1; n <= BROKERS; n++)); do
        local port cport listeners advertised
        port=$(cat "$DIR/kafka/$n/port")
        cport=$(cat "$DIR/kafka/$n/controller.port")
        listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        advertised="PLAINTEXT://127.0.0.1:$port"
        if [[ $KAFKA_SASL == 1 ]]; then
            listeners+=",SASL_PLAINTEXT://127.0.0.1:$(cat "$DIR/kafka/$n/sasl.port")"
            advertised+=",SASL_PLAINTEXT://127.0.0.1:$(cat "$DIR/kafka/$n/sasl.port")"
        fi
        cat >"$DIR/kafka/$n/server.properties" <<EOF2
# server.properties — written by tools/stack.sh: node $n of $BROKERS, combined broker and controller (KRaft)
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/kafka/$n/data
# topics are created explicitly (stack.sh creates TOPIC); a typo must not create a 1-partition topic
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=4
# a group's first member is assigned at once (the broker's default waits 3 s for more members)
group.initial.rebalance.delay.ms=0
# a killed node is fenced and its leaderships moved within ~3 s (defaults: 9 s session, 2 s heartbeat)
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
log.retention.bytes=${CHAINWATCH_KAFKA_RETENTION_BYTES:--1}
num.recovery.threads.per.data.dir=2
EOF2
        if [[ $KAFKA_SASL == 1 ]]; then
            cat >>"$DIR/kafka/$n/server.properties" <<'EOF2'
# SASL/SCRAM for clients on the SASL_PLAINTEXT listener (the credentials were added by `kafka-storage format`)
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF2
        fi
    done
}

# apache_format — `kafka-storage format` every node's data folder with one new cluster id (in parallel); with
# CHAINWATCH_KAFKA_SASL=1 the SCRAM user is created in the same step (its password goes in through a file, not a
# command line that ps would show)
apache_format() {
    local n cluster pids=() extra=() pid
    cluster=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    # a leading '-' would be read as an option by kafka-storage (1 start in 64 failed so)
    cluster=${cluster/#-/A}
    echo "$cluster" >"$DIR/kafka/cluster.id"
    if [[ $KAFKA_SASL == 1 ]]; then
        KAFKA_SASL_USERNAME=chainwatch
        KAFKA_SASL_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
        umask 077
        printf 'SCRAM-SHA-256=[name=%s,password=%s]\n' "$KAFKA_SASL_USERNAME" "$KAFKA_SASL_PASSWORD" \
            >"$DIR/kafka/scram.args"
        umask 022
    fi
    for ((n = 1; n <= BROKERS; n++)); do
        extra=()
        [[ $KAFKA_SASL != 1 ]] || extra=(--add-scram "$(cat "$DIR/kafka/scram.args")")
        KAFKA_JAVA_OPTS= bash "$TOP/tools/kafka.sh" kafka-storage format --ignore-formatted -t "$cluster" \
            -c "$DIR/kafka/$n/server.properties" "${extra[@]}" >"$DIR/kafka/$n/format.log" 2>&1 &
        pids+=($!)
    done
    n=0
    for pid in "${pids[@]}"; do
        n=$((n + 1))
        wait "$pid" || {
            log_tail kafka-storage "$DIR/kafka/$n/format.log"
            die "kafka-storage format failed for node $n"
        }
    done
    rm -f "$DIR/kafka/scram.args"
}

# apache_launch N — start node N from its server.properties and data (a fresh node or a restart) and record it
# as kafka-N; the JVM maps the class-data archive that `tools/kafka.sh fetch` built, when it fits this java
apache_launch() {
    local n=$1 home jsa opts=() pid
    home=$(bash "$TOP/tools/kafka.sh" home)
    jsa=$home/kafka.jsa
    [[ -s $jsa ]] && opts+=(-XX:SharedArchiveFile="$jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
    # shellcheck disable=SC2086 # CHAINWATCH_KAFKA_JVM_OPTS is a list of options on purpose
    setsid java "${opts[@]}" -Xms128m -Xmx"${CHAINWATCH_KAFKA_HEAP:-768m}" -XX:+UseSerialGC \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true ${CHAINWATCH_KAFKA_JVM_OPTS:-} \
        -cp "$(cat "$home/classpath")" -Dlog4j2.configurationFile="$TOP/tools/kafka/log4j2.xml" \
        kafka.Kafka "$DIR/kafka/$n/server.properties" </dev/null >>"$DIR/kafka/$n/kafka.log" 2>&1 &
    pid=$!
    pidfile_write "kafka-$n" "$pid" || true
}

# broker_answers N — true if node N serves metadata on its client port
broker_answers() {
    kcat -b "127.0.0.1:$(cat "$DIR/kafka/$1/port")" -L -m 2 2>/dev/null | grep -q "brokers:"
}

# apache_wait_all — wait until every node answers and the metadata lists BROKERS brokers; false if a node died
apache_wait_all() {
    local n rc pid
    for ((n = 1; n <= BROKERS; n++)); do
        pid=$(pidfile_pid "$DIR/pids/kafka-$n.pid")
        rc=0
        wait_until "$START_TIMEOUT" "$pid" broker_answers "$n" || rc=$?
        if ((rc == 1)); then
            kafka_logs
            die "kafka node $n does not answer on 127.0.0.1:$(cat "$DIR/kafka/$n/port") (no answer within ${START_TIMEOUT}s)"
        fi
        ((rc == 0)) || return 1
    done
    wait_until "$START_TIMEOUT" "" kafka_lists_brokers || die "the kafka metadata does not list $BROKERS brokers"
}

# kafka_lists_brokers — true if the cluster metadata names BROKERS brokers
kafka_lists_brokers() {
    [[ $(kcat -b "$KAFKA_BOOTSTRAP" -L -m 2 2>/dev/null | sed -n 's/^ *\([0-9]*\) brokers:.*/\1/p') == "$BROKERS" ]]
}

# apache_create_topic — create TOPIC with PARTITIONS partitions (replication factor min(3, BROKERS)) with
# Kafka's own kafka-topics
apache_create_topic() {
    local log=$DIR/kafka/topics.log
    if ! bash "$TOP/tools/kafka.sh" kafka-topics --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$TOPIC" \
        --partitions "$PARTITIONS" >"$log" 2>&1; then
        log_tail kafka-topics "$log"
        die "kafka-topics --create $TOPIC failed"
    fi
}

# kafka_has_topic — true if the metadata lists TOPIC with PARTITIONS partitions, each with a leader
kafka_has_topic() {
    local meta
    meta=$(kcat -b "$KAFKA_BOOTSTRAP" -L -t "$TOPIC" -m 5 2>/dev/null) || return 1
    grep -q "topic \"$TOPIC\" with $PARTITIONS partitions" <<<"$meta" && ! grep -q 'leader -1' <<<"$meta"
}

# cmd_start_broker N — start node N again from its config and data (after a test stopped or killed it)
cmd_start_broker() {
    [[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || die "usage: tools/stack.sh start-broker N [--dir DIR]"
    [[ -f $DIR/kafka/$1/server.properties ]] || die "no kafka node $1 in $DIR (CHAINWATCH_KAFKA=mock has none)"
    ! pidfile_live "$DIR/pids/kafka-$1.pid" 2>/dev/null || die "kafka node $1 is already running"
    local rc=0 pid
    apache_launch "$1"
    pid=$(pidfile_pid "$DIR/pids/kafka-$1.pid")
    wait_until "$START_TIMEOUT" "$pid" broker_answers "$1" || rc=$?
    if ((rc != 0)); then
        log_tail kafka "$DIR/kafka/$1/kafka.log"
        die "kafka node $1 did not come back ($(wait_failure "$rc"))"
    fi
    say "kafka node $1 up again on 127.0.0.1:$(cat "$DIR/kafka/$1/port") (pid $pid)"
}

# cmd_stop_broker N — stop node N cleanly (SIGTERM: controlled shutdown, leaders move first)
cmd_stop_broker() {
    [[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || die "usage: tools/stack.sh stop-broker N [--dir DIR]"
    [[ -e $DIR/pids/kafka-$1.pid ]] || die "kafka node $1 is not recorded in $DIR/pids"
    stop_one "kafka-$1"
}

# env_line KEY VALUE — print `export KEY=VALUE`, single-quoting the value only if the shell needs it (plain
# values stay plain so that stack.env is also easy to read for tools that do not run a shell)
env_line() {
    if [[ $2 =~ ^[A-Za-z0-9_./:,@%+=-]*$ ]]; then
        printf 'export %s=%s\n' "$1" "$2"
    else
        printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"
    fi
}

# write_env — write DIR/stack.env atomically
write_env() {
    local f=$DIR/stack.env i
    local kv=(
        CHAINWATCH_STACK_DIR "$DIR"
        PGHOST 127.0.0.1
        PGPORT "$PG_PORT"
        PGUSER postgres
        PGDATABASE chainwatch
        DATABASE_URL "postgresql://postgres@127.0.0.1:$PG_PORT/chainwatch"
        KAFKA_BOOTSTRAP_SERVERS "$KAFKA_BOOTSTRAP"
        KAFKA_TOPIC "$TOPIC"
        CHAINWATCH_PARTITIONS "$PARTITIONS"
        CHAINWATCH_KAFKA "$KAFKA_MODE"
        CHAINWATCH_KAFKA_VERSION "$KAFKA_VERSION"
        CHAINWATCH_KAFKA_BROKERS "$( [[ $KAFKA_MODE == mock ]] && echo 3 || echo "$BROKERS")"
        REDIS_HOST 127.0.0.1
        REDIS_PORT "$REDIS_PORT"
    )
    if [[ -n ${KAFKA_SASL_BOOTSTRAP:-} ]]; then
        kv+=(KAFKA_SASL_BOOTSTRAP_SERVERS "$KAFKA_SASL_BOOTSTRAP" KAFKA_SASL_MECHANISM SCRAM-SHA-256
            KAFKA_SASL_USERNAME "$KAFKA_SASL_USERNAME" KAFKA_SASL_PASSWORD "$KAFKA_SASL_PASSWORD")
    fi
    local r
    if declare -p ROLE_PASSWORDS >/dev/null 2>&1; then
        for r in ingestor api monitor; do
            kv+=("${r^^}_DATABASE_URL" "postgresql://chainwatch_$r:${ROLE_PASSWORDS[$r]}@127.0.0.1:$PG_PORT/chainwatch")
        done
    fi
    {
        printf '# stack.env — written by tools/stack.sh up; source it: . %q\n' "$f"
        for ((i = 0; i < ${#kv[@]}; i += 2)); do env_line "${kv[i]}" "${kv[i + 1]}"; done
    } >"$f.tmp"
    mv -f "$f.tmp" "$f"
}

# ---- commands -----------------------------------------------------------------------------------

# refuse_if_running — exit 1 if any recorded process is alive (naming the dead ones if only some are);
# otherwise clear the leftovers of a crashed run
refuse_if_running() {
    local name alive=() dead=()
    while read -r name; do
        if pidfile_live "$DIR/pids/$name.pid"; then
            alive+=("$name (pid $(pidfile_pid "$DIR/pids/$name.pid"))")
        else
            dead+=("$name (pid $(pidfile_pid "$DIR/pids/$name.pid"))")
        fi
    done < <(pidfile_names)
    if ((${#alive[@]} > 0)); then
        if ((${#dead[@]} == 0)); then
            die "stack is already running in $DIR: $(join ', ' "${alive[@]}");" \
                "'tools/stack.sh env --dir $DIR' prints its settings, 'tools/stack.sh down --dir $DIR' stops it"
        fi
        die "stack in $DIR is partly running: $(join ', ' "${dead[@]}") not running;" \
            "still up: $(join ', ' "${alive[@]}"). Run 'tools/stack.sh down --dir $DIR', then 'up' again"
    fi
    if ((${#dead[@]} > 0)); then
        say "cleaning up after an earlier run that did not stop cleanly (dead: $(join ', ' "${dead[@]}"))"
    fi
    # A postmaster nobody recorded (e.g. `up` was killed mid-start) must not lose its data dir under it.
    local pid=""
    if [[ -f $DIR/pg/data/postmaster.pid ]]; then read -r pid <"$DIR/pg/data/postmaster.pid" || true; fi
    if [[ -n $pid ]] && proc_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$DIR/pg/data"; then
        die "an unrecorded postgres (pid $pid) is running on $DIR/pg/data; stop it with" \
            "'runuser -u postgres -- $PGBIN/pg_ctl -D $DIR/pg/data stop'"
    fi
    rm -rf "$DIR/pids" "$DIR/stack.env"
    remove_socket_fallback
}

# preflight — fail before starting anything if a program the stack needs is missing
preflight() {
    local p
    for p in initdb pg_ctl psql; do
        [[ -x $PGBIN/$p ]] || die "$PGBIN/$p not found (PostgreSQL 15 server missing? run 'make deps')"
    done
    case $KAFKA_MODE in
    mock)
        [[ -x $BIN/chainwatch-kafka-mock ]] ||
            die "$BIN/chainwatch-kafka-mock not found (build it with 'make build' or set CHAINWATCH_BIN)"
        ;;
    apache)
        command -v java >/dev/null || die "java not found (run 'make deps', or CHAINWATCH_KAFKA=mock)"
        bash "$TOP/tools/kafka.sh" classpath >/dev/null 2>&1 ||
            die "Apache Kafka is not fetched (run 'make deps' or 'tools/kafka.sh fetch', or CHAINWATCH_KAFKA=mock)"
        [[ $BROKERS =~ ^[1-9]$ ]] || die "CHAINWATCH_KAFKA_BROKERS must be 1..9 (got '$BROKERS')"
        [[ $KAFKA_SASL == 0 || $KAFKA_SASL == 1 ]] || die "CHAINWATCH_KAFKA_SASL must be 0 or 1"
        ;;
    *) die "CHAINWATCH_KAFKA must be apache or mock (got '$KAFKA_MODE')" ;;
    esac
    for p in redis-server redis-cli kcat runuser setsid "$PYTHON"; do
        command -v "$p" >/dev/null || die "$p not found (run 'make deps')"
    done
}

# cmd_up — start postgres, redis and kafka in DIR; on any failure stop what was started and exit 1
cmd_up() {
    preflight
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    refuse_if_running
    rm -rf "$DIR/pg" "$DIR/redis" "$DIR/kafka"
    mkdir -p "$DIR/pids"
    check_pg_can_reach
    UP_OK=0
    trap 'exit 130' INT TERM
    trap 'if [[ $UP_OK -eq 0 ]]; then say "stopping what was started"; stop_all || true; fi' EXIT
    pg_start
    redis_start
    kafka_start
    write_env
    UP_OK=1
    trap - EXIT INT TERM
    say "stack is up in $DIR; stop it with: tools/stack.sh down --dir $DIR"
    cat "$DIR/stack.env"
}

# cmd_down — stop everything recorded in DIR/pids and remove the pid files and stack.env; 0 if nothing to do
cmd_down() {
    if [[ ! -d $DIR/pids ]] || [[ -z $(pidfile_names) ]]; then
        say "nothing to stop in $DIR (stack not running)"
        rm -f "$DIR/stack.env"
        return 0
    fi
    local rc=0
    stop_all || rc=1
    rm -f "$DIR/stack.env"
    remove_socket_fallback
    rmdir "$DIR/pids" 2>/dev/null || true
    ((rc == 0)) && say "stack in $DIR is down (data and logs kept until the next up)"
    return "$rc"
}

# env_value KEY — print a value from DIR/stack.env (sourced in a subshell, so quoting is undone correctly)
env_value() {
    # shellcheck source=/dev/null
    (. "$DIR/stack.env" && printenv "$1")
}

# component_answers NAME — true if a stack component responds on its port (other tools' processes: alive only)
component_answers() {
    case $1 in
    postgres) PG_PORT=$(env_value PGPORT) && pg_psql postgres -qAt -c 'select 1' ;;
    redis) REDIS_PORT=$(env_value REDIS_PORT) && redis_answers ;;
    kafka-mock) KAFKA_BOOTSTRAP=$(env_value KAFKA_BOOTSTRAP_SERVERS) && TOPIC=$(env_value KAFKA_TOPIC) &&
        PARTITIONS=$(env_value CHAINWATCH_PARTITIONS) && kafka_has_topic ;;
    kafka-[0-9]*) broker_answers "${1#kafka-}" ;;
    *) return 0 ;;
    esac
}

# stack_is_up — true if stack.env exists and postgres, redis and kafka are alive (answers are not checked)
stack_is_up() {
    local c
    [[ -f $DIR/stack.env ]] || return 1
    while read -r c; do
        pidfile_live "$DIR/pids/$c.pid" || return 1
    done < <(stack_components)
}

# cmd_status — one line per recorded process: up (and answering), not answering, or down. The exit status
# covers the stack itself (0: postgres, redis and kafka all answer); other tools' processes are only listed.
cmd_status() {
    local name file pid rc=0 c state
    if [[ ! -d $DIR/pids ]] || [[ -z $(pidfile_names) ]]; then
        say "no stack in $DIR (not started, or stopped)"
        return 1
    fi
    while read -r c; do
        if [[ ! -e $DIR/pids/$c.pid ]]; then
            printf '%-10s down (not recorded)\n' "$c"
            rc=1
        fi
    done < <(stack_components)
    while read -r name; do
        file=$DIR/pids/$name.pid
        pid=$(pidfile_pid "$file")
        if ! pidfile_live "$file"; then
            state="down (pid $pid not running)"
        elif [[ -f $DIR/stack.env ]] && ! component_answers "$name" >/dev/null 2>&1; then
            state="not answering (pid $pid)"
        else
            state="up (pid $pid)"
        fi
        printf '%-10s %s\n' "$name" "$state"
        [[ $state == up* ]] || ! is_stack_name "$name" || rc=1
    done < <(pidfile_names)
    return "$rc"
}

# cmd_env — print DIR/stack.env if the stack is up
cmd_env() {
    stack_is_up || die "stack is not up in $DIR (start it with: tools/stack.sh up --dir $DIR)"
    cat "$DIR/stack.env"
}

# cmd_record NAME PID — record a process started by another tool so that `down` stops it
cmd_record() {
    [[ $# -eq 2 ]] || die "usage: tools/stack.sh record NAME PID [--dir DIR]"
    [[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "record: bad name '$1' (letters, digits, _ and - only)"
    [[ $2 =~ ^[0-9]+$ ]] || die "record: bad pid '$2'"
    [[ -d $DIR ]] || die "record: $DIR does not exist"
    pidfile_write "$1" "$2" || die "record: process $2 is not running"
    say "recorded $1 (pid $2) in $DIR/pids/$1.pid"
}

# main ARGS... — parse the command and --dir, then dispatch
main() {
    local cmd="" args=()
    while (($# > 0)); do
        case $1 in
        -h | --help) usage; return 0 ;;
        --dir) [[ $# -ge 2 ]] || die "--dir needs a directory"; DIR=$2; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) if [[ -z $cmd ]]; then cmd=$1; else args+=("$1"); fi; shift ;;
        esac
    done
    [[ -n $cmd ]] || { usage >&2; exit 2; }
    [[ -n $DIR ]] || die "--dir must not be empty"
    DIR=$(realpath -m "$DIR")
    PGBIN=$("$PG_CONFIG" --bindir)
    PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
    SHAREDIR=$("$PG_CONFIG" --sharedir)
    [[ $cmd == record || $cmd == *-broker || ${#args[@]} -eq 0 ]] || die "unexpected argument ${args[0]} (see --help)"
    case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    record) cmd_record "${args[@]}" ;;
    start-broker) cmd_start_broker "${args[@]}" ;;
    stop-broker) cmd_stop_broker "${args[@]}" ;;
    *) die "unknown command '$cmd' (see --help)" ;;
    esac
}

main "$@"
