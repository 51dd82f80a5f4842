# tests/integration/conftest.py — shared fixtures: repo paths, a session-wide dev stack, private stacks, pg_connect
#
# Every integration test runs against real processes started by tools/stack.sh on free loopback ports, never
# against a stack a developer left running. Two ways to get one:
#
#   stack                 session fixture, shared by all tests of the run: read it, write your own rows/topics,
#                         but do not stop or break its processes (other tests use it after you).
#   start_stack(dir)      a private stack for tests that kill or restart components (dir from new_stack_dir());
#                         pair it with teardown_stack(dir) in a `finally`, or use the `private_stack` fixture,
#                         which does both.
#
# Both return a StackEnv: a dict of the variables in DIR/stack.env (PGHOST, PGPORT, DATABASE_URL,
# KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, REDIS_HOST, REDIS_PORT, ...) with `.dir` set to the stack directory.
# `stack.environ()` is os.environ plus those variables, ready to pass to subprocess.
#
# A test that starts a long-running process (ingestor, API) should record it with record_pid(stack, name, pid)
# so that `tools/stack.sh down` stops it even if the test dies before its own cleanup.
#
# Kafka: the stack runs Apache Kafka (CHAINWATCH_KAFKA=apache, the default; CHAINWATCH_KAFKA_BROKERS nodes) or the
# librdkafka mock (CHAINWATCH_KAFKA=mock). Topics are never auto-created on the real broker: create_topic() makes
# one; kafka_cli() runs Kafka's own kafka-topics / kafka-consumer-groups / kafka-configs (tools/kafka.sh);
# kafka_nodes() names the broker processes (kafka-1 ... in DIR/pids, or kafka-mock) and start_broker() restarts a
# node a test killed.
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_SH = REPO_ROOT / "tools" / "stack.sh"
KAFKA_SH = REPO_ROOT / "tools" / "kafka.sh"
STACK_TIMEOUT = 120  # seconds for one `up` or `down`; each component has 30 s inside stack.sh


class StackEnv(dict):
    """StackEnv — the variables of DIR/stack.env; `.dir` is the stack directory (a str)."""

    def __init__(self, values, stack_dir):
        super().__init__(values)
        self.dir = str(stack_dir)

    def environ(self, **extra):
        """environ — os.environ overlaid with the stack variables and `extra`, for subprocess calls."""
        env = dict(os.environ)
        env.update(self)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def role_url(self, role):
        """role_url — DATABASE_URL of a daemon's least-privilege role ("ingestor", "api", "monitor")."""
        return self[f"{role.upper()}_DATABASE_URL"]

    def daemon_environ(self, role, **extra):
        """daemon_environ — environ() with DATABASE_URL set to the role's URL (sql/roles.sql): the daemons
        run in tests with the privileges they have in production."""
        return self.environ(**{"DATABASE_URL": self.role_url(role), **extra})


def parse_stack_env(text):
    """parse_stack_env — turn `export KEY=VALUE` lines (shell-quoted values) into a dict; comments skipped."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("export "):
            continue
        key, _, raw = line[len("export "):].partition("=")
        words = shlex.split(raw)
        values[key] = words[0] if words else ""
    return values


def run_stack(command, stack_dir, check=True, env=None, timeout=STACK_TIMEOUT, extra=()):
    """run_stack — run `tools/stack.sh COMMAND --dir DIR`; returns the CompletedProcess (text, both streams).

    With check=True a non-zero exit fails the test and shows stderr, which names the failing component and
    the tail of its log.
    """
    proc = subprocess.run(
        ["bash", str(STACK_SH), command, *extra, "--dir", str(stack_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"tools/stack.sh {command} --dir {stack_dir} exited {proc.returncode}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


def start_stack(stack_dir, **env):
    """start_stack — bring up a private stack in stack_dir (created if needed) and return its StackEnv;
    keyword arguments are extra environment for stack.sh (CHAINWATCH_KAFKA_BROKERS=3, CHAINWATCH_KAFKA_SASL=1)."""
    run_stack("up", stack_dir, env={**os.environ, **{k: str(v) for k, v in env.items()}} if env else None)
    return read_stack_env(stack_dir)


def stop_stack(stack_dir):
    """stop_stack — `down` a stack; never raises (it runs in cleanup paths), returns the CompletedProcess."""
    return run_stack("down", stack_dir, check=False)


def read_stack_env(stack_dir):
    """read_stack_env — parse DIR/stack.env of a running stack."""
    path = Path(stack_dir) / "stack.env"
    return StackEnv(parse_stack_env(path.read_text()), stack_dir)


def new_stack_dir():
    """new_stack_dir — a fresh private directory for a stack (mode 0700; stack.sh opens it for postgres)."""
    return tempfile.mkdtemp(prefix="cw-stack-")


def record_pid(stack, name, pid):
    """record_pid — register a process started by a test so that `down` stops it (DIR/pids/NAME.pid).

    `stack` is a StackEnv or a stack directory.
    """
    stack_dir = getattr(stack, "dir", stack)
    subprocess.run(["bash", str(STACK_SH), "record", name, str(pid), "--dir", str(stack_dir)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def pg_ctl(stack, *args, timeout=30):
    """pg_ctl — run pg_ctl ARGS (stop, start, restart, with options) on the stack's cluster as the postgres user;
    the log goes where tools/stack.sh sends it. Raises on failure with pg_ctl's stderr."""
    data = Path(stack.dir, "pg", "data")
    log = Path(stack.dir, "pg", "log", "postgresql.log")
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", str(data), "-l", str(log), "-w",
                    "-t", str(timeout), *args], check=True, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kafka_nodes(stack):
    """kafka_nodes — the pid-file names of the stack's Kafka processes: ["kafka-1", ...] or ["kafka-mock"]."""
    return Path(stack.dir, "kafka", "nodes").read_text().split()


def broker_pid(stack, node):
    """broker_pid — the PID of Kafka node `node` (1-based) as recorded in DIR/pids/kafka-N.pid."""
    return int(Path(stack.dir, "pids", f"kafka-{node}.pid").read_text().split()[0])


def start_broker(stack, node, env=None):
    """start_broker — `tools/stack.sh start-broker N`: start a stopped or killed node again on its data."""
    run_stack("start-broker", stack.dir, env=env, extra=[str(node)])


def kafka_cli(stack, tool, *args, check=True, timeout=60):
    """kafka_cli — run Kafka's own CLI tool (kafka-topics, kafka-consumer-groups, kafka-configs) against the
    stack's brokers through tools/kafka.sh; returns the CompletedProcess (text). `--bootstrap-server` is added."""
    proc = subprocess.run(["bash", str(KAFKA_SH), tool, "--bootstrap-server", stack["KAFKA_BOOTSTRAP_SERVERS"],
                           *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def create_topic(stack, topic, partitions, config=None, timeout=30):
    """create_topic — create a topic on the stack's broker with the admin API (replication factor: the broker's
    default) and wait until every partition has a leader. On the mock, topics only exist from --topic: fails."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": stack["KAFKA_BOOTSTRAP_SERVERS"]})
    futures = admin.create_topics([NewTopic(topic, partitions, config=config or {})], operation_timeout=timeout)
    futures[topic].result(timeout)
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta and not meta.error and len(meta.partitions) == partitions and \
                all(p.leader >= 0 for p in meta.partitions.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"topic {topic} has no leader for every partition after {timeout}s: {meta}")
        time.sleep(0.1)


def pg_connect(stack, dbname=None):
    """pg_connect — a psycopg2 connection (autocommit) to the stack's Postgres; dbname defaults to chainwatch."""
    import psycopg2  # imported here so test files that do not touch Postgres need not have it

    conn = psycopg2.connect(host=stack["PGHOST"], port=int(stack["PGPORT"]), user=stack["PGUSER"],
                            dbname=dbname or stack["PGDATABASE"], connect_timeout=10)
    conn.autocommit = True
    return conn


def apply_roles(stack):
    """apply_roles — rerun sql/roles.sql as the superuser (passwords unchanged): needed after a test drops and
    recreates the extension, whose new objects carry no grants."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", stack["PGHOST"], "-p", stack["PGPORT"],
                    "-U", stack["PGUSER"], "-d", stack["PGDATABASE"], "-f", str(REPO_ROOT / "sql" / "roles.sql")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def tcp_sockets(pid):
    """tcp_sockets — (local port, state) of each TCP socket process pid holds, from /proc/PID/fd and
    /proc/PID/net/tcp{,6}; state is the kernel's hex code ('0A' = LISTEN, '01' = ESTABLISHED)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    sockets = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[9] in inodes:
                sockets.append((int(cols[1].rsplit(":", 1)[1], 16), cols[3]))
    return sockets


@pytest.fixture(scope="session")
def repo_root():
    """repo_root — the repository root as a Path."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def bin_dir():
    """bin_dir — where our binaries are: $CHAINWATCH_BIN or <repo>/build/bin (a Path)."""
    return Path(os.environ.get("CHAINWATCH_BIN") or REPO_ROOT / "build" / "bin")


@pytest.fixture(scope="session")
def stack():
    """stack — one stack for the whole session, stopped (and its directory removed) at the end."""
    stack_dir = new_stack_dir()
    try:
        yield start_stack(stack_dir)
    finally:
        teardown_stack(stack_dir)


@pytest.fixture
def private_stack():
    """private_stack — a stack of the test's own, for tests that kill or restart components."""
    stack_dir = new_stack_dir()
    try:
        yield start_stack(stack_dir)
    finally:
        teardown_stack(stack_dir)


def teardown_stack(stack_dir):
    """teardown_stack — stop a stack and delete its directory; the directory (logs) is kept if `down` failed
    or CHAINWATCH_KEEP_STACK is set. Never raises."""
    proc = stop_stack(stack_dir)
    if proc.returncode == 0 and not os.environ.get("CHAINWATCH_KEEP_STACK"):
        shutil.rmtree(stack_dir, ignore_errors=True)
    else:
        print(f"stack directory kept for inspection: {stack_dir}\n{proc.stderr}")
