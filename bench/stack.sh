# bench/stack.sh — sourced by the bench run.sh scripts: a stack for one benchmark, torn down on exit
#
#   bench_stack NAME   with STACK_ENV=DIR/stack.env set, use that running stack (tools/stack.sh up);
#                      otherwise start a private stack in a temporary directory, stopped and removed on exit.
#                      Either way the stack's environment (PG*, DATABASE_URL, KAFKA_*) is exported.
# The caller sets TOP (the checkout) before sourcing; extra `tools/stack.sh up` environment (e.g.
# CHAINWATCH_PARTITIONS) passes through.
BENCH_STACK_DIR=

# bench_stack_cleanup — stop and remove the private stack, if one was started; keeps the exit status
bench_stack_cleanup() {
    local rc=$?
    if [[ -n $BENCH_STACK_DIR ]]; then
        bash "$TOP/tools/stack.sh" down --dir "$BENCH_STACK_DIR" >/dev/null 2>&1 || true
        rm -rf "$BENCH_STACK_DIR"
    fi
    exit $rc
}

# bench_stack — the running stack named by STACK_ENV, or a private one (see above)
bench_stack() {
    local name=$1
    if [[ -n ${STACK_ENV:-} ]]; then
        # shellcheck source=/dev/null
        source "$STACK_ENV"
    else
        trap bench_stack_cleanup EXIT
        BENCH_STACK_DIR=$(mktemp -d -t "cw-$name.XXXXXX")
        echo "$name: starting a private stack in $BENCH_STACK_DIR" >&2
        bash "$TOP/tools/stack.sh" up --dir "$BENCH_STACK_DIR" >/dev/null
        # shellcheck source=/dev/null
        source "$BENCH_STACK_DIR/stack.env"
    fi
    export PGHOST PGPORT PGUSER PGDATABASE DATABASE_URL KAFKA_BOOTSTRAP_SERVERS KAFKA_TOPIC
}
