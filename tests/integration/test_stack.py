# tests/integration/test_stack.py — tools/stack.sh: up/env/status/down, clients reach each component, crash recovery
#
# Read-only checks share the session `stack`; anything that stops, kills or starts a second stack uses a private
# directory so the shared one stays intact for later test files.
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import (broker_pid, kafka_cli, kafka_nodes, new_stack_dir, parse_stack_env, pg_connect,
                      read_stack_env, record_pid, run_stack, start_stack, teardown_stack)

ENV_KEYS = ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
            "REDIS_HOST", "REDIS_PORT", "KAFKA_TOPIC", "CHAINWATCH_STACK_DIR", "CHAINWATCH_KAFKA",
            "CHAINWATCH_KAFKA_VERSION", "CHAINWATCH_KAFKA_BROKERS"]
KAFKA_MODE = os.environ.get("CHAINWATCH_KAFKA", "apache")
BROKERS = int(os.environ.get("CHAINWATCH_KAFKA_BROKERS", "1")) if KAFKA_MODE == "apache" else 1
STACK_COMPONENTS = ["postgres", "redis"] + ([f"kafka-{n}" for n in range(1, BROKERS + 1)]
                                           if KAFKA_MODE == "apache" else ["kafka-mock"])
apache_only = pytest.mark.skipif(KAFKA_MODE != "apache", reason="Apache Kafka only (CHAINWATCH_KAFKA=mock)")


def alive(pid):
    """alive — True if the process exists and is not a zombie (PID 1 here may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def recorded_pids(stack_dir):
    """recorded_pids — {name: pid} from DIR/pids/*.pid."""
    return {p.stem: int(p.read_text().split()[0]) for p in Path(stack_dir, "pids").glob("*.pid")}


def wait_dead(pid, seconds=5.0):
    """wait_dead — poll until the process is gone; True if it went within `seconds`."""
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def sh(args, env=None, timeout=30):
    """sh — run a client command, return CompletedProcess with text output (never raises on exit status)."""
    return subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ---- the shared stack: clients reach every component ------------------------------------------------------

def test_env_file_has_every_key(stack):
    missing = [k for k in ENV_KEYS if not stack.get(k)]
    assert not missing, f"stack.env lacks {missing}: {dict(stack)}"
    assert stack["PGHOST"] == "127.0.0.1" and stack["REDIS_HOST"] == "127.0.0.1"
    assert stack["PGUSER"] == "postgres" and stack["PGDATABASE"] == "chainwatch"
    assert stack["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{stack['PGPORT']}/chainwatch"
    assert stack["KAFKA_TOPIC"] == "blockchain-transactions"
    assert os.path.samefile(stack["CHAINWATCH_STACK_DIR"], stack.dir)
    assert sorted(recorded_pids(stack.dir)) == sorted(STACK_COMPONENTS)


def test_psql_answers(stack):
    # Only the libpq variables from stack.env: that is how a developer's shell uses it after sourcing it.
    env = {k: stack[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE")}
    env["PATH"] = os.environ["PATH"]
    proc = sh(["psql", "-X", "-Atc", "select 1"], env=env)
    assert (proc.returncode, proc.stdout.strip()) == (0, "1"), proc.stderr


def test_postgres_settings(stack):
    with pg_connect(stack) as conn, conn.cursor() as cur:
        cur.execute("select current_database(), current_setting('fsync'), current_setting('shared_buffers'),"
                    " current_setting('max_connections'), current_setting('listen_addresses')")
        assert cur.fetchone() == ("chainwatch", "on", "256MB", "200", "127.0.0.1")
    conn.close()


def test_redis_answers(stack):
    proc = sh(["redis-cli", "-h", stack["REDIS_HOST"], "-p", stack["REDIS_PORT"], "ping"])
    assert proc.stdout.strip() == "PONG", proc.stderr


def test_kafka_lists_topic_with_32_partitions(stack):
    proc = sh(["kcat", "-L", "-J", "-b", stack["KAFKA_BOOTSTRAP_SERVERS"], "-m", "10"])
    assert proc.returncode == 0, proc.stderr
    topics = {t["topic"]: len(t["partitions"]) for t in json.loads(proc.stdout)["topics"]}
    assert topics.get("blockchain-transactions") == 32, f"topics in metadata: {topics}"


def test_env_and_status_on_running_stack(stack):
    proc = run_stack("env", stack.dir)
    assert proc.stdout == Path(stack.dir, "stack.env").read_text()
    status = run_stack("status", stack.dir)
    for name in STACK_COMPONENTS:
        assert re.search(rf"^{name}\s+up", status.stdout, re.M), status.stdout


# ---- private stacks: lifecycle and failures ---------------------------------------------------------------

def test_lifecycle_up_twice_down_twice():
    stack_dir = new_stack_dir()
    try:
        up = run_stack("up", stack_dir)
        env_text = Path(stack_dir, "stack.env").read_text()
        assert up.stdout == env_text, "up must print exactly DIR/stack.env on stdout"
        assert set(ENV_KEYS) <= set(parse_stack_env(up.stdout))
        pids = recorded_pids(stack_dir)
        assert sorted(pids) == sorted(STACK_COMPONENTS) and all(alive(p) for p in pids.values()), pids

        again = run_stack("up", stack_dir, check=False)
        assert again.returncode == 1
        assert "already running" in again.stderr, again.stderr
        assert recorded_pids(stack_dir) == pids, "a refused up must not touch the running stack"
        assert all(alive(p) for p in pids.values())

        down = run_stack("down", stack_dir)
        still = {name: pid for name, pid in pids.items() if not wait_dead(pid)}
        assert not still, f"alive after down: {still}\n{down.stderr}"
        assert not Path(stack_dir, "stack.env").exists()
        assert not list(Path(stack_dir).glob("pids/*.pid"))

        down_again = run_stack("down", stack_dir, check=False)
        assert down_again.returncode == 0, down_again.stderr
        env_after = run_stack("env", stack_dir, check=False)
        assert env_after.returncode == 1 and "not up" in env_after.stderr
    finally:
        teardown_stack(stack_dir)


def test_up_after_redis_killed_names_it_then_recovers():
    """Chosen behaviour: some components dead, others alive -> `up` refuses (exit 1), names the dead one and
    says to run `down`; after `down`, `up` works. All dead (a crashed run) -> `up` cleans up and starts."""
    stack_dir = new_stack_dir()
    seen = []  # every pid the stack recorded, checked dead at the end
    try:
        start_stack(stack_dir)
        pids = recorded_pids(stack_dir)
        seen += pids.values()
        os.kill(pids["redis"], signal.SIGKILL)
        assert wait_dead(pids["redis"])

        up = run_stack("up", stack_dir, check=False)
        assert up.returncode == 1
        assert re.search(r"partly running: redis \(pid \d+\) not running", up.stderr), up.stderr
        assert "down" in up.stderr
        status = run_stack("status", stack_dir, check=False)
        assert status.returncode != 0 and re.search(r"^redis\s+down", status.stdout, re.M), status.stdout

        down = run_stack("down", stack_dir)
        assert "redis" in down.stderr and "not running" in down.stderr
        assert all(wait_dead(p) for p in pids.values())

        # Crashed run: every recorded process killed without `down`.
        start_stack(stack_dir)
        crashed = recorded_pids(stack_dir)
        for pid in crashed.values():
            os.kill(pid, signal.SIGKILL)
        assert all(wait_dead(p) for p in crashed.values())
        up = run_stack("up", stack_dir)
        assert "cleaning up" in up.stderr, up.stderr
        seen += recorded_pids(stack_dir).values()
        stack = read_stack_env(stack_dir)
        ping = sh(["redis-cli", "-h", "127.0.0.1", "-p", stack["REDIS_PORT"], "ping"])
        assert ping.stdout.strip() == "PONG"
        with pg_connect(stack) as conn, conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
        conn.close()
    finally:
        teardown_stack(stack_dir)
    survivors = [p for p in seen if not wait_dead(p)]
    assert not survivors, f"still alive after down: {survivors}"


def test_down_stops_recorded_tools_but_never_a_recycled_pid(tmp_path):
    """`down` stops what other tools recorded, and leaves alone a live PID whose start time does not match."""
    ours = subprocess.Popen(["sleep", "300"])
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        (tmp_path / "pids").mkdir()
        record_pid(tmp_path, "ingestor", ours.pid)
        # A pid file left by an older process whose PID now belongs to `stranger`: wrong start time.
        (tmp_path / "pids" / "api.pid").write_text(f"{stranger.pid}\n1\n")
        down = run_stack("down", tmp_path)
        assert ours.wait(timeout=15) == -signal.SIGTERM
        assert stranger.poll() is None, "down killed a process it did not start"
        assert "belongs to another process" in down.stderr, down.stderr
        assert not list(tmp_path.glob("pids/*.pid"))
    finally:
        for p in (ours, stranger):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_down_on_a_dir_that_never_came_up(tmp_path):
    proc = run_stack("down", tmp_path / "never")
    assert proc.returncode == 0 and "nothing to stop" in proc.stderr
    status = run_stack("status", tmp_path / "never", check=False)
    assert status.returncode == 1


# ---- Kafka: Apache Kafka by default, three nodes on request, the mock as the fallback ---------------------

def produce(bootstrap, topic, values, **conf):
    """produce — send values (bytes) to topic with acks=all; returns the delivery errors (empty when all landed)."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 15000, **conf})
    for v in values:
        p.produce(topic, v, on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0, "messages still queued after 30 s"
    return errors


def consume_all(bootstrap, topic, partitions, want, timeout=30):
    """consume_all — read `want` messages from the start of every partition; returns their values."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cw-stack-test", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, deadline = [], time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            got += [m.value() for m in c.consume(100, timeout=0.5) if not m.error()]
        return got
    finally:
        c.close()


def test_stack_env_names_the_broker_that_runs(stack):
    assert stack["CHAINWATCH_KAFKA"] == KAFKA_MODE
    assert kafka_nodes(stack) == STACK_COMPONENTS[2:]
    if KAFKA_MODE == "apache":
        pom = (Path(__file__).resolve().parents[2] / "tools" / "kafka" / "pom.xml").read_text()
        assert f"<kafka.version>{stack['CHAINWATCH_KAFKA_VERSION']}</kafka.version>" in pom
        cmdline = Path(f"/proc/{broker_pid(stack, 1)}/cmdline").read_bytes().split(b"\0")
        assert b"kafka.Kafka" in cmdline and str(Path(stack.dir, "kafka", "1", "server.properties")).encode() \
            in cmdline, cmdline
        props = Path(stack.dir, "kafka", "1", "server.properties").read_text()
        assert "process.roles=broker,controller" in props and "group.initial.rebalance.delay.ms=0" in props
        assert any(Path(stack.dir, "kafka", "1", "data").glob("__cluster_metadata-0/*.log")), \
            "the KRaft metadata log is not under the stack directory"


@apache_only
def test_kafka_topics_cli_describes_the_topic_and_nothing_is_auto_created(stack):
    out = kafka_cli(stack, "kafka-topics", "--describe", "--topic", "blockchain-transactions").stdout
    assert re.search(r"PartitionCount: 32\s+ReplicationFactor: 1\b", out), out
    listed = kafka_cli(stack, "kafka-topics", "--list").stdout.split()
    errors = produce(stack["KAFKA_BOOTSTRAP_SERVERS"], "no-such-topic-" + str(os.getpid()), [b"x"],
                     **{"message.timeout.ms": 3000})
    # librdkafka waits for the topic to appear until the message times out (or is told it is unknown)
    assert errors and errors[0].name() in ("_MSG_TIMED_OUT", "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"), \
        f"a produce to a missing topic gave {errors}"
    assert kafka_cli(stack, "kafka-topics", "--list").stdout.split() == listed, "a topic was auto-created"


@apache_only
def test_a_killed_broker_restarts_on_its_data():
    stack_dir = new_stack_dir()
    try:
        stack = start_stack(stack_dir)
        boot, topic = stack["KAFKA_BOOTSTRAP_SERVERS"], stack["KAFKA_TOPIC"]
        values = [f"m{i}".encode() for i in range(50)]
        assert produce(boot, topic, values) == []
        pid = broker_pid(stack, 1)
        os.kill(pid, signal.SIGKILL)
        assert wait_dead(pid)
        status = run_stack("status", stack_dir, check=False)
        assert status.returncode != 0 and re.search(r"^kafka-1\s+down", status.stdout, re.M), status.stdout
        run_stack("start-broker", stack_dir, extra=["1"])
        assert broker_pid(stack, 1) != pid
        assert run_stack("status", stack_dir).returncode == 0
        assert sorted(consume_all(boot, topic, 32, len(values))) == sorted(values)
    finally:
        teardown_stack(stack_dir)


@apache_only
def test_three_nodes_replicate_with_two_in_sync_and_survive_one_killed():
    stack_dir = new_stack_dir()
    try:
        stack = start_stack(stack_dir, CHAINWATCH_KAFKA_BROKERS=3)
        assert stack["CHAINWATCH_KAFKA_BROKERS"] == "3"
        assert kafka_nodes(stack) == ["kafka-1", "kafka-2", "kafka-3"]
        pids = recorded_pids(stack_dir)
        assert sorted(pids) == sorted(["postgres", "redis", "kafka-1", "kafka-2", "kafka-3"]), pids
        out = kafka_cli(stack, "kafka-topics", "--describe", "--topic", "blockchain-transactions").stdout
        assert re.search(r"PartitionCount: 32\s+ReplicationFactor: 3\s+Configs: min.insync.replicas=2", out), out
        leaders = {int(m) for m in re.findall(r"Leader: (\d+)", out)}
        assert leaders == {1, 2, 3}, f"leaders are not spread over the three nodes: {leaders}"

        os.kill(pids["kafka-2"], signal.SIGKILL)
        assert wait_dead(pids["kafka-2"])
        # acks=all with two of three replicas in sync still lands, once the leaders of node 2 have moved
        assert produce(stack["KAFKA_BOOTSTRAP_SERVERS"], stack["KAFKA_TOPIC"], [b"a"] * 100) == []
        status = run_stack("status", stack_dir, check=False)
        assert status.returncode != 0 and re.search(r"^kafka-2\s+down", status.stdout, re.M), status.stdout
        run_stack("start-broker", stack_dir, extra=["2"])
        assert run_stack("status", stack_dir).returncode == 0

        down = run_stack("down", stack_dir)
        still = {n: p for n, p in recorded_pids(stack_dir).items() if not wait_dead(p)}
        assert not still and not any(alive(p) for p in pids.values() if p != pids["kafka-2"]), down.stderr
    finally:
        teardown_stack(stack_dir)


def test_the_mock_broker_is_the_fallback():
    stack_dir = new_stack_dir()
    try:
        stack = start_stack(stack_dir, CHAINWATCH_KAFKA="mock")
        assert stack["CHAINWATCH_KAFKA"] == "mock" and kafka_nodes(stack) == ["kafka-mock"]
        assert sorted(recorded_pids(stack_dir)) == ["kafka-mock", "postgres", "redis"]
        proc = sh(["kcat", "-L", "-J", "-b", stack["KAFKA_BOOTSTRAP_SERVERS"], "-m", "10"])
        topics = {t["topic"]: len(t["partitions"]) for t in json.loads(proc.stdout)["topics"]}
        assert topics.get("blockchain-transactions") == 32, topics
        assert produce(stack["KAFKA_BOOTSTRAP_SERVERS"], stack["KAFKA_TOPIC"], [b"x"] * 10) == []
        assert run_stack("status", stack_dir).returncode == 0
    finally:
        teardown_stack(stack_dir)
