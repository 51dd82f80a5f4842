#!/usr/bin/env bash
# tools/kafka.sh — the pinned Apache Kafka: fetch it through Maven into a cache folder, and run its CLI tools
#
# Usage: tools/kafka.sh fetch | home | classpath | java CLASS ARGS... | kafka-topics ARGS... |
#        kafka-consumer-groups ARGS... | kafka-configs ARGS... | kafka-storage ARGS...   (see usage())
#
# Where it lives: $CHAINWATCH_CACHE (default ~/.cache/chainwatch)/kafka-<version>/, outside the work tree so a
# fresh clone (CI) reuses it and `make clean` keeps it; deleting it is always safe, `fetch` rebuilds it:
#   libs/*.jar        the runtime closure of tools/kafka/pom.xml (broker, CLI tools, log4j2), copied by Maven
#   classpath         the jars in a fixed order, one `:`-joined line (the JVM's class-data archive is bound to it)
#   peer/*.jar        what the Kafka Connect peer of bench-ingest adds (bench/connect/pom.xml: the PostgreSQL JDBC
#                     driver), pinned in bench/connect/jars.sha256 and checked the same way
#   kafka.jsa         a class-data sharing archive of a broker start: the JVM maps the classes a broker loads
#                     instead of parsing ~4,000 of them from 100 jars (start 3.2 s -> 2.1 s here); built by `fetch`
#                     for the java on PATH, rebuilt when that java changes (java.version beside it)
#
# Trust: every jar's sha256 must equal tools/kafka/jars.sha256 and no other jar may be in the set, else `fetch`
# fails and leaves the previous cache untouched (the copy is made in a temporary folder and renamed into
# place). To move to another Kafka version, change tools/kafka/pom.xml and run `tools/kafka.sh pin`, which
# resolves the new set and rewrites jars.sha256 (review the diff: every new jar is a new trust decision).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POM=$TOP/tools/kafka/pom.xml
PINS=$TOP/tools/kafka/jars.sha256
LOG4J=$TOP/tools/kafka/log4j2.xml
PEER_POM=$TOP/bench/connect/pom.xml
PEER_PINS=$TOP/bench/connect/jars.sha256
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE=${CHAINWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chainwatch}
HOME_DIR=$CACHE/kafka-$KAFKA_VERSION

# usage — print the help text
usage() {
    cat <<EOF
Usage: tools/kafka.sh COMMAND [ARGS...]

Apache Kafka $KAFKA_VERSION for the dev stack, from Maven Central into $HOME_DIR.

Commands:
  fetch                   copy the pinned jars into the cache (no-op when present and intact), check every
                          sha256 against tools/kafka/jars.sha256, build the class-data archive
  pin                     resolve tools/kafka/pom.xml again and rewrite tools/kafka/jars.sha256
  home                    print the cache folder
  classpath               print the classpath (fails if not fetched)
  peer-classpath          the classpath plus the Kafka Connect peer's jars (bench/connect)
  java CLASS ARGS...      run a Kafka main class with the pinned classpath and tools/kafka/log4j2.xml
  kafka-topics ARGS...            Kafka's own CLI tools, as in Kafka's bin/ directory
  kafka-consumer-groups ARGS...
  kafka-configs ARGS...
  kafka-storage ARGS...

Environment: CHAINWATCH_CACHE (cache root, default ~/.cache/chainwatch), KAFKA_JAVA_OPTS (extra JVM options
for 'java' and the CLI tools).
EOF
}

# say MSG... — progress on stderr
say() { printf 'kafka: %s\n' "$*" >&2; }

# die MSG... — report an error and exit 1
die() {
    printf 'kafka: error: %s\n' "$*" >&2
    exit 1
}

# java_version — one line naming the java on PATH exactly (the class-data archive is only valid for it)
java_version() { java -Xshare:off -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.vm\.version = //p'; }

# verify_jars DIR [PINS] — true if DIR holds exactly the pinned jars (PINS: default the broker's) with the pinned
# sha256s; names what differs
verify_jars() {
    local dir=$1 pins=${2:-$PINS} want got
    want=$(awk '{ print $2 }' "$pins" | sort)
    got=$(cd "$dir" && ls -1 -- *.jar 2>/dev/null | sort)
    if [[ $want != "$got" ]]; then
        say "the jar set differs from ${pins#"$TOP"/}:"
        diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed -n 's/^[<>]/  &/p' >&2 || true
        return 1
    fi
    (cd "$dir" && sha256sum --quiet --strict -c "$pins") >&2
}

# mvn_copy DEST [POM] — copy the runtime closure of POM (default the broker's) into DEST with Maven (quiet unless
# it fails)
mvn_copy() {
    local log
    log=$(mktemp)
    if ! mvn -B -q -f "${2:-$POM}" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$1" \
        -Dmdep.overWriteReleases=true >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "mvn could not resolve ${2:-$POM} (is Maven Central reachable? run 'make deps')"
    fi
    rm -f "$log"
}

# write_classpath DIR — the jars of DIR/libs in sorted order, `:`-joined, into DIR/classpath
write_classpath() {
    local dir=$1
    (cd "$dir/libs" && ls -1 -- *.jar | sort | sed "s|^|$dir/libs/|" | paste -sd: -) >"$dir/classpath.tmp"
    mv -f "$dir/classpath.tmp" "$dir/classpath"
}

# build_archive — run one throwaway broker with -XX:ArchiveClassesAtExit and stop it, leaving HOME_DIR/kafka.jsa
build_archive() {
    local work port cport pid cp deadline
    work=$(mktemp -d /tmp/cw-kafka-cds-XXXXXX)
    cp=$(cat "$HOME_DIR/classpath")
    read -r port cport < <(free_ports 2) # distinct: two listeners on one port and Kafka refuses to start
    cat >"$work/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
log.dirs=$work/data
offsets.topic.replication.factor=1
EOF
    java -cp "$cp" -Dlog4j2.configurationFile="$LOG4J" kafka.tools.StorageTool format \
        -t "$(java -cp "$cp" -Dlog4j2.configurationFile="$LOG4J" kafka.tools.StorageTool random-uuid)" \
        -c "$work/server.properties" >"$work/format.log" 2>&1 || {
        cat "$work/format.log" >&2
        rm -rf "$work"
        die "kafka-storage format failed while building the class-data archive"
    }
    java -XX:ArchiveClassesAtExit="$HOME_DIR/kafka.jsa.tmp" -Xlog:cds=off -Xlog:cds+dynamic=off -cp "$cp" \
        -Dlog4j2.configurationFile="$LOG4J" kafka.Kafka "$work/server.properties" >"$work/broker.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 60))
    until kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            kill -9 "$pid" 2>/dev/null || true
            tail -n 20 "$work/broker.log" >&2
            rm -rf "$work"
            die "the broker started to build the class-data archive did not answer"
        fi
        sleep 0.2
    done
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$work"
    [[ -s $HOME_DIR/kafka.jsa.tmp ]] || die "the JVM wrote no class-data archive"
    mv -f "$HOME_DIR/kafka.jsa.tmp" "$HOME_DIR/kafka.jsa"
    java_version >"$HOME_DIR/java.version"
}

# free_ports N — N distinct TCP ports on 127.0.0.1 that were free a moment ago (bound together, so no two are equal)
free_ports() {
    /usr/bin/python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# cmd_fetch — make HOME_DIR complete: pinned jars (copied and checked if missing or changed), classpath, archive
cmd_fetch() {
    command -v mvn >/dev/null || die "mvn not found (run 'make deps')"
    command -v java >/dev/null || die "java not found (run 'make deps')"
    if [[ -d $HOME_DIR/libs ]] && verify_jars "$HOME_DIR/libs" 2>/dev/null; then
        :
    else
        local tmp
        mkdir -p "$CACHE"
        tmp=$(mktemp -d "$CACHE/.fetch-XXXXXX")
        say "fetching Apache Kafka $KAFKA_VERSION through Maven into $HOME_DIR"
        mvn_copy "$tmp/libs"
        if ! verify_jars "$tmp/libs"; then
            rm -rf "$tmp"
            die "the jars Maven resolved do not match tools/kafka/jars.sha256 (nothing installed)"
        fi
        rm -rf "$HOME_DIR.old"
        [[ ! -e $HOME_DIR ]] || mv "$HOME_DIR" "$HOME_DIR.old"
        mv "$tmp" "$HOME_DIR"
        rm -rf "$HOME_DIR.old"
        say "$(wc -l <"$PINS") jars checked against tools/kafka/jars.sha256"
    fi
    [[ -s $HOME_DIR/classpath ]] || write_classpath "$HOME_DIR"
    fetch_peer
    if [[ ! -s $HOME_DIR/kafka.jsa || $(cat "$HOME_DIR/java.version" 2>/dev/null) != "$(java_version)" ]]; then
        say "building the class-data archive (one broker start)"
        build_archive
    fi
}

# fetch_peer — HOME_DIR/peer: the Kafka Connect peer's jars, copied (into a temporary folder, renamed into place)
# and checked against bench/connect/jars.sha256 when missing or changed
fetch_peer() {
    [[ -d $HOME_DIR/peer ]] && verify_jars "$HOME_DIR/peer" "$PEER_PINS" 2>/dev/null && return 0
    local tmp
    tmp=$(mktemp -d "$CACHE/.fetch-XXXXXX")
    mvn_copy "$tmp/peer" "$PEER_POM"
    if ! verify_jars "$tmp/peer" "$PEER_PINS"; then
        rm -rf "$tmp"
        die "the jars Maven resolved do not match bench/connect/jars.sha256 (nothing installed)"
    fi
    rm -rf "$HOME_DIR/peer"
    mv "$tmp/peer" "$HOME_DIR/peer"
    rm -rf "$tmp"
    say "$(wc -l <"$PEER_PINS") Kafka Connect peer jars checked against bench/connect/jars.sha256"
}

# cmd_pin — resolve the pom afresh and write the sha256 of every jar to tools/kafka/jars.sha256
cmd_pin() {
    local tmp
    tmp=$(mktemp -d)
    mvn_copy "$tmp/libs"
    (cd "$tmp/libs" && sha256sum -- *.jar | sort -k2) >"$PINS"
    mvn_copy "$tmp/peer" "$PEER_POM"
    (cd "$tmp/peer" && sha256sum -- *.jar | sort -k2) >"$PEER_PINS"
    rm -rf "$tmp"
    say "wrote $(wc -l <"$PINS") pins to tools/kafka/jars.sha256, $(wc -l <"$PEER_PINS") to bench/connect/jars.sha256"
}

# run_class CLASS ARGS... — exec a Kafka main class with the cached classpath (the archive when it fits)
run_class() {
    [[ -s $HOME_DIR/classpath ]] || die "Kafka $KAFKA_VERSION is not fetched (run 'make deps' or 'tools/kafka.sh fetch')"
    local cls=$1 opts=()
    shift
    [[ -s $HOME_DIR/kafka.jsa ]] && opts+=(-XX:SharedArchiveFile="$HOME_DIR/kafka.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
    # shellcheck disable=SC2086 # KAFKA_JAVA_OPTS is a list of options on purpose
    exec java "${opts[@]}" -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 ${KAFKA_JAVA_OPTS:-} \
        -cp "$(cat "$HOME_DIR/classpath")" -Dlog4j2.configurationFile="$LOG4J" "$cls" "$@"
}

# main ARGS... — dispatch
main() {
    [[ $# -ge 1 ]] || { usage >&2; exit 2; }
    local cmd=$1
    shift
    case $cmd in
    -h | --help) usage ;;
    fetch) cmd_fetch ;;
    pin) cmd_pin ;;
    home) printf '%s\n' "$HOME_DIR" ;;
    classpath) [[ -s $HOME_DIR/classpath ]] || die "not fetched"; cat "$HOME_DIR/classpath" ;;
    peer-classpath)
        [[ -s $HOME_DIR/classpath && -d $HOME_DIR/peer ]] || die "not fetched"
        printf '%s:%s\n' "$(cat "$HOME_DIR/classpath")" "$(cd "$HOME_DIR/peer" && ls -1 -- *.jar | sort |
            sed "s|^|$HOME_DIR/peer/|" | paste -sd: -)"
        ;;
    java) [[ $# -ge 1 ]] || die "java needs a class name"; run_class "$@" ;;
    kafka-topics) run_class org.apache.kafka.tools.TopicCommand "$@" ;;
    kafka-consumer-groups) run_class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
    kafka-configs) run_class kafka.admin.ConfigCommand "$@" ;;
    kafka-storage) run_class kafka.tools.StorageTool "$@" ;;
    *) die "unknown command '$cmd' (see --help)" ;;
    esac
}

main "$@"
