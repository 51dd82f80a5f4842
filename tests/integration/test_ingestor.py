"""tests/integration/test_ingestor.py — chainwatch-ingestor end to end: Kafka -> ingestor -> Postgres, exactly once.

Every test runs on a private stack (tools/stack.sh: Postgres with the extension, the stack's broker — Apache
Kafka, or librdkafka's mock with CHAINWATCH_KAFKA=mock) and ends by comparing what Kafka holds with what Postgres
holds. "Produced" is read back from the broker itself: every (partition, offset) up to the high watermark with its
payload's hash, and the test first checks that the broker kept every message (log start offset 0: the mock drops
the head of a partition beyond ~5 MiB), so a comparison is never against a partial log. The check then
requires, per topic:

  * the set of (kafka_partition, kafka_offset, hash) rows in chainwatch.transactions equals the produced set
    (no loss, no duplicate position, no row with the wrong payload);
  * count(*) = count(DISTINCT hash) = count(DISTINCT (kafka_partition, kafka_offset));
  * chainwatch.kafka_offsets holds, per partition, exactly the high watermark (offsets moved with the rows).

A failure prints the differences (missing / extra positions as ranges per partition, duplicated hashes) and the
tail of every ingestor log of the test. Every process is recorded with record_pid so `tools/stack.sh down`
stops it even if the test dies, and killed in `finally` blocks. What only a real broker does (broker failures,
added partitions, SASL, codecs) is in test_broker.py, which reuses this file's harness.

Knobs: CHAINWATCH_BIN (binaries, e.g. build/san/bin for the ASan pass), CHAINWATCH_TEST_SCALE (multiplies the
message counts; the ASan pass uses a fraction), CHAINWATCH_TEST_SEED (the seed of the random kill times).
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import new_stack_dir, pg_connect, record_pid, start_stack, teardown_stack

SCALE = float(os.environ.get("CHAINWATCH_TEST_SCALE", "1"))
SESSION_TIMEOUT_MS = 6000  # a member killed with SIGKILL holds its partitions until then (the mock: also a new one)
HASH_RE = re.compile(rb'"hash"\s*:\s*"(0x[0-9a-fA-F]{64})"')
PGBIN = subprocess.run(["pg_config", "--bindir"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()


def scaled(n, minimum=1000):
    """scaled — a message count multiplied by CHAINWATCH_TEST_SCALE (never below minimum)."""
    return max(minimum, int(n * SCALE))


def free_port():
    """free_port — a loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout, interval=0.1, on_timeout=None):
    """wait_for — poll predicate() until it returns a truthy value (returned) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{extra}")
        time.sleep(interval)


# ---- processes ------------------------------------------------------------------------------------------


class Ingestor:
    """Ingestor — one chainwatch-ingestor process: its log file, HTTP endpoints and signals."""

    def __init__(self, harness, name, extra_env, args):
        self.harness = harness
        self.name = name
        self.log_path = Path(harness.stack.dir) / f"{name}.log"
        self.port = int(extra_env.get("METRICS_PORT", 0))
        env = harness.stack.daemon_environ("ingestor", **{
            "KAFKA_SESSION_TIMEOUT_MS": SESSION_TIMEOUT_MS, "METRICS_BIND": "127.0.0.1", "LOG_LEVEL": "info",
            "KAFKA_GROUP_ID": harness.group, "KAFKA_TOPIC": harness.topic, **extra_env})
        self.started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(harness.bin_dir / "chainwatch-ingestor"), *args], env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            record_pid(harness.stack, name, self.proc.pid)
        except subprocess.CalledProcessError:
            pass  # it already exited; the caller sees that from returncode

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=25):
        return f"--- {self.name} (pid {self.pid}, rc {self.proc.poll()}) log tail ---\n" + \
            "\n".join(self.log().splitlines()[-n:])

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """wait — the exit status, or fail the test (printing the log) if it is still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running {timeout}s after it should have exited\n{self.tail()}")

    def get(self, path, timeout=3):
        """get — (status, body) of GET http://127.0.0.1:METRICS_PORT/path; (None, error) when unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError) as e:
            return None, str(e)

    def metrics(self):
        """metrics — {'name{labels}': value} of the /metrics page ({} when it does not answer)."""
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def assigned(self):
        """assigned — partitions this member owns, from the metrics gauge (or the log without a listener)."""
        if self.port:
            return int(self.metrics().get("chainwatch_ingest_partitions_assigned", 0))
        counts = re.findall(r"partition\(s\)[^;]*; (\d+) (?:now|remain)", self.log())
        return int(counts[-1]) if counts else 0


class Harness:
    """Harness — a private stack plus every process a test starts on it; close() kills them and tears down."""

    def __init__(self, bin_dir, partitions, monkeypatch):
        self.bin_dir = bin_dir
        monkeypatch.setenv("CHAINWATCH_PARTITIONS", str(partitions))
        self.stack_dir = new_stack_dir()
        self.stack = start_stack(self.stack_dir)
        self.topic = self.stack["KAFKA_TOPIC"]
        self.group = "cw-test-" + uuid.uuid4().hex[:8]
        self.ingestors = []
        self.others = []
        self.conn = pg_connect(self.stack)
        self.count = 0

    def ingestor(self, *args, name="ingestor", metrics=True, **env):
        self.count += 1
        env = {k: str(v) for k, v in env.items()}
        env.setdefault("METRICS_PORT", str(free_port() if metrics else 0))
        ing = Ingestor(self, f"{name}-{self.count}", env, list(args))
        self.ingestors.append(ing)
        return ing

    def drain(self, timeout=120, **env):
        """drain — run `chainwatch-ingestor --drain` to the end; fails unless it exits 0."""
        ing = self.ingestor("--drain", name="drain", metrics=False, **env)
        rc = ing.wait(timeout)
        assert rc == 0, f"--drain exited {rc}\n{ing.tail(40)}"
        return ing

    def txgen(self, count, seed, fmt="etherscan", rate=None, background=False, topic=None):
        """txgen — produce count messages with chainwatch-txgen; waits unless background (returns the Popen)."""
        args = [str(self.bin_dir / "chainwatch-txgen"), "--brokers", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", topic or self.topic, "--count", str(count), "--seed", str(seed), "--format", fmt]
        if rate:
            args += ["--rate", str(rate)]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.others.append(proc)
        record_pid(self.stack, f"txgen-{proc.pid}", proc.pid)
        if background:
            return proc
        return self.finish_txgen(proc)

    @staticmethod
    def finish_txgen(proc, timeout=120):
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"chainwatch-txgen exited {proc.returncode}: {err.decode()}"
        return proc

    def logs(self):
        return "\n".join(i.tail() for i in self.ingestors)

    def sql(self, query, *params):
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None

    def table_count(self):
        return self.sql("SELECT count(*) FROM chainwatch.transactions WHERE kafka_topic = %s", self.topic)[0][0]

    def close(self):
        for ing in self.ingestors:
            if ing.alive():
                ing.proc.kill()
            try:
                ing.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.others:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        try:
            self.conn.close()
        except psycopg2.Error:
            pass
        teardown_stack(self.stack_dir)


@pytest.fixture
def harness(bin_dir, monkeypatch):
    """harness — factory of private stacks (harness(partitions=N)); everything is torn down afterwards."""
    made = []

    def make(partitions=32):
        h = Harness(bin_dir, partitions, monkeypatch)
        made.append(h)
        return h

    try:
        yield make
    finally:
        for h in made:
            h.close()


# ---- what Kafka holds, and the exactly-once check ---------------------------------------------------------


def read_topic(h, topic=None, timeout=120):
    """read_topic — {(partition, offset): payload bytes} of everything the broker holds for the topic.

    Fails if the mock has dropped the head of a partition (its ~5 MiB per partition limit): the comparison
    would then be against a partial log.
    """
    topic = topic or h.topic
    c = Consumer({"bootstrap.servers": h.stack["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "cw-reader-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": False,
                  "fetch.max.bytes": 52428800})
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        high = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            assert lo == 0, (f"the mock dropped the head of partition {p} (log start {lo}): too many messages per "
                             f"partition for this test")
            if hi > 0:
                high[p] = hi
        out = {}
        c.assign([TopicPartition(topic, p, 0) for p in high])
        pending = dict(high)
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"reading the topic back timed out; partitions left: {pending}"
            for m in c.consume(20000, timeout=0.5):
                if m.error():
                    continue
                p, o = m.partition(), m.offset()
                out[(p, o)] = m.value() or b""
                if p in pending and o + 1 >= pending[p]:
                    del pending[p]
        assert len(out) == sum(high.values()), "offsets are not contiguous"
        return out
    finally:
        c.close()


def ranges(offsets):
    """ranges — '3-7,9' for a sorted list of ints."""
    out, start, prev = [], None, None
    for o in sorted(offsets):
        if start is None:
            start = prev = o
        elif o == prev + 1:
            prev = o
        else:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = o
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(out)


def describe_positions(positions, limit=12):
    """describe_positions — 'p3: 100-199; p7: 5' for a set of (partition, offset)."""
    by_p = defaultdict(list)
    for p, o in positions:
        by_p[p].append(o)
    parts = [f"p{p}: {ranges(os)}" for p, os in sorted(by_p.items())]
    more = f" ... ({len(parts) - limit} more partitions)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def assert_exactly_once(h, produced, dead_positions=(), extra=""):
    """assert_exactly_once — chainwatch.transactions holds exactly the produced set (see the module docstring).

    produced: {(p, o): payload}; dead_positions: positions expected in dead_letters instead of transactions.
    """
    dead_positions = set(dead_positions)
    want = {}
    for pos, payload in produced.items():
        if pos in dead_positions:
            continue
        m = HASH_RE.search(payload)
        assert m, f"produced message at {pos} has no hash: {payload[:200]!r}"
        want[pos] = m.group(1).decode().lower()
    rows = h.sql("SELECT kafka_partition, kafka_offset, hash FROM chainwatch.transactions WHERE kafka_topic = %s",
                 h.topic)
    got_counts = Counter((p, o) for p, o, _ in rows)
    got = {(p, o): hsh for p, o, hsh in rows}
    problems = []
    dup_pos = {pos: n for pos, n in got_counts.items() if n > 1}
    if dup_pos:
        problems.append(f"{len(dup_pos)} positions stored more than once ({sum(dup_pos.values())} rows): "
                        f"{describe_positions(dup_pos)}")
    missing = set(want) - set(got)
    if missing:
        problems.append(f"{len(missing)} produced messages missing: {describe_positions(missing)}")
    unexpected = set(got) - set(want)
    if unexpected:
        problems.append(f"{len(unexpected)} rows at positions that were not produced (or are dead letters): "
                        f"{describe_positions(unexpected)}")
    wrong = [pos for pos in set(got) & set(want) if got[pos] != want[pos]]
    if wrong:
        problems.append(f"{len(wrong)} rows with another message's hash, e.g. {sorted(wrong)[:5]}")
    (n, n_hash, n_pos), = h.sql("SELECT count(*), count(DISTINCT hash), count(DISTINCT (kafka_partition, "
                                "kafka_offset)) FROM chainwatch.transactions WHERE kafka_topic = %s", h.topic)
    if not n == n_hash == n_pos == len(want):
        problems.append(f"count(*) {n}, count(DISTINCT hash) {n_hash}, count(DISTINCT position) {n_pos}, "
                        f"produced {len(want)}")
    high = defaultdict(int)
    for p, o in produced:
        high[p] = max(high[p], o + 1)
    stored = dict(h.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                        "WHERE consumer_group = %s AND topic = %s", h.group, h.topic))
    off = {p: (stored.get(p), hi) for p, hi in high.items() if stored.get(p) != hi}
    if off:
        problems.append(f"kafka_offsets differ from the high watermarks (stored, high) for {len(off)} partitions: "
                        f"{dict(sorted(off.items())[:10])}")
    if problems:
        pytest.fail("the table does not hold exactly the produced set:\n  " + "\n  ".join(problems) +
                    f"\n{extra}\n{h.logs()}")


# ---- 1. everything exactly once; scores equal chainwatch.score() ------------------------------------------


def test_all_messages_arrive_exactly_once_and_scores_match_sql(harness):
    """20k messages in the four formats, --drain: exactly the produced set, ethereum-etl's JSON-number amounts
    and times stored exactly. Then a model is trained and activated, more messages are drained, and every stored
    score equals chainwatch.score() on the same row; the anomalies are exactly the rows above the model's
    threshold, with chainwatch.severity()'s severity."""
    h = harness()
    n = scaled(20000)
    h.txgen(n // 4, seed=11, fmt="etherscan")
    h.txgen(n // 4, seed=12, fmt="jsonrpc")
    h.txgen(n // 4, seed=13, fmt="legacy")
    h.txgen(n - 3 * (n // 4), seed=15, fmt="ethereum-etl")
    # a small queue makes the poll thread pause and resume partitions (back-pressure) on the way; one load slot
    # makes the writers take turns (writer.c, "Load slots"); the drain below loads with every writer at once
    h.drain(KAFKA_MAX_QUEUE_SIZE=300, BATCH_SIZE=1000, COPY_CONCURRENCY=1)
    assert_exactly_once(h, read_topic(h))
    out = subprocess.run([str(h.bin_dir / "chainwatch-txgen"), "--count", str(n - 3 * (n // 4)), "--seed", "15",
                          "--format", "ethereum-etl"], capture_output=True, check=True).stdout
    etl = {r["hash"]: r for r in map(json.loads, out.splitlines())}
    stored = h.sql("SELECT hash, value::text, gas_price::text, block_number, extract(epoch FROM tx_time)::bigint "
                   "FROM chainwatch.transactions WHERE hash = ANY(%s)", list(etl))
    assert len(stored) == len(etl), f"{len(etl) - len(stored)} ethereum-etl messages are not stored"
    wrong = [(row, etl[row[0]]) for row in stored
             if row[1:] != (str(etl[row[0]]["value"]), str(etl[row[0]]["gas_price"]),
                            etl[row[0]]["block_number"], etl[row[0]]["block_timestamp"])]
    assert not wrong, f"ethereum-etl rows stored inexactly (row, message): {wrong[:3]}"

    (model_id,), = h.sql("SELECT chainwatch.train_model('ingestor-test', "
                         "'SELECT value, gas, gas_price FROM chainwatch.transactions')")
    h.sql("SELECT chainwatch.activate_model(%s)", model_id)
    h.txgen(scaled(5000), seed=14, fmt="etherscan", rate=None)
    h.drain(COPY_CONCURRENCY=0)
    assert_exactly_once(h, read_topic(h))

    (scored,), = h.sql("SELECT count(*) FROM chainwatch.transactions WHERE model_id = %s", model_id)
    assert scored >= scaled(5000), f"only {scored} rows were scored with the active model {model_id}\n{h.logs()}"
    mismatches = h.sql(
        "SELECT hash, score, chainwatch.score(value, gas, gas_price, model_id) FROM chainwatch.transactions "
        "WHERE model_id IS NOT NULL AND score IS DISTINCT FROM chainwatch.score(value, gas, gas_price, model_id) "
        "LIMIT 10")
    assert not mismatches, f"ingestor scores differ from chainwatch.score() (hash, ingestor, SQL): {mismatches}"
    (unscored,), = h.sql("SELECT count(*) FROM chainwatch.transactions WHERE (score IS NULL) <> (model_id IS NULL)")
    assert unscored == 0, "a row has a score without a model id or the reverse"

    # anomalies: exactly the scored rows above their model's threshold, severity as the SQL function says
    want = set(h.sql("SELECT t.hash FROM chainwatch.transactions t JOIN chainwatch.models m ON m.id = t.model_id "
                     "WHERE t.score > m.threshold"))
    got_rows = h.sql("SELECT hash, severity::text, chainwatch.severity(score, value, gas_price)::text "
                     "FROM chainwatch.anomalies")
    got = {(r[0],) for r in got_rows}
    assert want, "the model flagged nothing among the generated anomalies"
    assert got == want, (f"anomalies differ from rows above the threshold: {len(want - got)} missing, "
                         f"{len(got - want)} extra, e.g. {sorted(want ^ got)[:5]}")
    wrong = [r for r in got_rows if r[1] != r[2]]
    assert not wrong, f"severity differs from chainwatch.severity() (hash, ingestor, SQL): {wrong[:10]}"


# ---- 2. kill -9 ten times during a 200k stream -------------------------------------------------------------


def test_kill_9_ten_times_during_a_200k_stream(harness):
    """SIGKILL the ingestor at random moments (0.5-3 s after it got its partitions) ten times while 200k
    messages stream in (half upfront, half produced meanwhile), restart it each time, finish with --drain:
    the table holds exactly the produced set."""
    seed = int(os.environ.get("CHAINWATCH_TEST_SEED", time.time_ns() % 1000000))
    rng = random.Random(seed)
    kills = 10
    h = harness(partitions=128)
    total = scaled(200000, minimum=20000)
    h.txgen(total // 2, seed=21)
    producer = h.txgen(total - total // 2, seed=22, rate=max(1000, total // 2 // 25), background=True)
    history = []
    for i in range(kills):
        ing = h.ingestor(name="victim", metrics=False, BATCH_SIZE=2000, KAFKA_MAX_QUEUE_SIZE=4000)
        wait_for(f"kill round {i}: the ingestor to get partitions", lambda: ing.assigned() > 0 or not ing.alive(),
                 60, on_timeout=ing.tail)
        assert ing.alive(), f"the ingestor died by itself in round {i}\n{ing.tail(40)}"
        delay = rng.uniform(0.5, 3.0)
        time.sleep(delay)
        before = h.table_count()
        ing.signal(signal.SIGKILL)
        ing.wait(10)
        history.append(f"round {i}: killed {delay:.2f}s after assignment with {before} rows stored")
    h.finish_txgen(producer)
    progress = h.table_count()
    assert progress > 0, "no rows were stored during the kill rounds"
    h.drain(timeout=180, BATCH_SIZE=2000)
    assert_exactly_once(h, read_topic(h), extra=f"kill seed {seed} (CHAINWATCH_TEST_SEED)\n" + "\n".join(history))


# ---- 3. Postgres restarts mid-stream ------------------------------------------------------------------------


def pg_ctl(h, *args):
    """pg_ctl — run pg_ctl on the stack's cluster as the postgres user (as tools/stack.sh does)."""
    data = Path(h.stack.dir) / "pg" / "data"
    return subprocess.run(["runuser", "-u", "postgres", "--", f"{PGBIN}/pg_ctl", "-D", str(data), *args],
                          cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def test_postgres_restart_mid_stream(harness):
    """Postgres stops (fast) while messages stream in and starts again: /health/ready turns false while it is
    down and true after, the same ingestor process resumes by itself, and the table holds exactly the
    produced set."""
    h = harness()
    n = scaled(40000)
    producer = h.txgen(n, seed=31, rate=max(1000, n // 10), background=True)
    ing = h.ingestor(BATCH_SIZE=1000)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=h.logs)
    assert ing.get("/health/ready")[0] == 200, f"not ready while loading: {ing.get('/health/ready')}"
    h.conn.close()

    log = Path(h.stack.dir) / "pg" / "log" / "postgresql.log"
    res = pg_ctl(h, "-m", "fast", "-w", "-t", "30", "stop")
    assert res.returncode == 0, f"pg_ctl stop failed: {res.stdout}"
    try:
        wait_for("/health/ready to turn false with Postgres down",
                 lambda: ing.get("/health/ready")[0] == 503, 15, on_timeout=ing.tail)
        status, body = ing.get("/health/ready")
        assert '"postgres":false' in body, body
        assert ing.get("/health/live")[0] == 200, "liveness must not depend on Postgres"
        time.sleep(1.5)
        assert ing.alive(), f"the ingestor exited while Postgres was down\n{ing.tail(40)}"
    finally:
        res = pg_ctl(h, "-l", str(log), "-w", "-t", "30", "start")
        assert res.returncode == 0, f"pg_ctl start failed: {res.stdout}"
        pid = int((Path(h.stack.dir) / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        record_pid(h.stack, "postgres", pid)  # so that `down` stops the new postmaster
    h.conn = pg_connect(h.stack)

    wait_for("/health/ready to turn true again", lambda: ing.get("/health/ready")[0] == 200, 30,
             on_timeout=ing.tail)
    h.finish_txgen(producer)
    # the same process loads the rest without a restart by hand
    wait_for(f"the running ingestor to load all {n} messages",
             lambda: h.table_count() >= n or not ing.alive(), 90, interval=0.5,
             on_timeout=lambda: f"{h.table_count()} rows\n{ing.tail(40)}")
    assert ing.alive(), ing.tail(40)
    assert "Postgres unavailable" in ing.log() or "cannot connect to Postgres" in ing.log(), \
        "the outage was not noticed by the writers (nothing to prove)"
    time.sleep(0.5)  # let the last commit's offsets land before comparing
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail(40)
    assert_exactly_once(h, read_topic(h))


def test_partition_detached_mid_stream_recovers_by_itself(harness):
    """An operator detaches the current transactions partition while messages stream in: the writers find no
    partition for their rows, run maintain(), which (extension 0.8.0) forgets the detached one and creates a
    new partition for the range, and the same process carries on. The rows committed before the detach are
    in the detached table; with them, the store holds exactly the produced set."""
    h = harness()
    n = scaled(20000)
    producer = h.txgen(n, seed=37, rate=max(1000, n // 8), background=True)
    ing = h.ingestor(BATCH_SIZE=500)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=h.logs)
    (part,), = h.sql("SELECT partition_name FROM chainwatch.partition_state WHERE table_name = 'transactions' "
                     "AND lower_bound <= now() AND upper_bound > now()")
    h.sql(f"ALTER TABLE chainwatch.transactions DETACH PARTITION chainwatch.{part}")
    (kept,), = h.sql(f"SELECT count(*) FROM chainwatch.{part}")
    assert kept > 0
    h.finish_txgen(producer)
    wait_for(f"the running ingestor to load the other {n - kept} messages",
             lambda: h.table_count() >= n - kept or not ing.alive(), 90, interval=0.5,
             on_timeout=lambda: f"{h.table_count()} rows\n{ing.tail(40)}")
    assert ing.alive(), ing.tail(40)
    assert "no partition for the current time" in ing.log(), "no writer met the missing partition"
    (new,), = h.sql("SELECT partition_name FROM chainwatch.partition_state WHERE table_name = 'transactions' "
                    "AND lower_bound <= now() AND upper_bound > now()")
    assert new == part + "_2", new
    time.sleep(0.5)  # let the last commit's offsets land before comparing
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail(40)
    # the detached rows are the operator's; put back, the store must be exactly the produced set
    h.sql(f"INSERT INTO chainwatch.transactions SELECT * FROM chainwatch.{part}")
    assert_exactly_once(h, read_topic(h), extra=f"{kept} rows were in the detached partition")


# ---- 4. two members of one group ------------------------------------------------------------------------------


def test_two_ingestors_split_partitions_and_load_once(harness):
    """A consumes; B joins mid-stream and both own some partitions; A leaves (SIGTERM) mid-stream; B ends with
    --drain: together they loaded every message exactly once, and each loaded some."""
    h = harness()
    n = scaled(50000)
    # ~50 s of stream at any scale: the two joins and the rebalance take 14-25 s on the mock broker
    producer = h.txgen(n, seed=41, rate=max(100, n // 50), background=True)
    a = h.ingestor(name="a", BATCH_SIZE=1000)
    wait_for("A to own all 32 partitions", lambda: a.assigned() == 32, 60, on_timeout=a.tail)
    wait_for("A's first rows", lambda: h.table_count() > 0, 30, on_timeout=a.tail)

    b = h.ingestor(name="b", BATCH_SIZE=1000)
    wait_for("A and B to split the partitions",
             lambda: 0 < a.assigned() < 32 and 0 < b.assigned() and a.assigned() + b.assigned() == 32, 60,
             on_timeout=lambda: f"A {a.assigned()}, B {b.assigned()}\n{a.tail()}\n{b.tail()}")
    split = (a.assigned(), b.assigned())
    assert re.search(r"assigned \d+ partition", b.log()), b.tail()
    # both load while they share the group
    rows_b0 = b.metrics().get("chainwatch_ingest_rows_total", 0)
    wait_for("B to load rows", lambda: b.metrics().get("chainwatch_ingest_rows_total", 0) > rows_b0, 30,
             on_timeout=b.tail)
    assert producer.poll() is None, "the producer finished before A left: make the stream longer"

    rows_a = a.metrics().get("chainwatch_ingest_rows_total", 0)
    a.signal(signal.SIGTERM)
    assert a.wait(40) == 0, a.tail(40)
    assert rows_a > 0, "A loaded nothing"
    wait_for("B to take over all partitions", lambda: b.assigned() == 32, 60, on_timeout=b.tail)
    h.finish_txgen(producer)
    rows_b = b.metrics().get("chainwatch_ingest_rows_total", 0)
    assert rows_b > 0, "B loaded nothing"
    b.signal(signal.SIGTERM)
    assert b.wait(40) == 0, b.tail(40)
    h.drain()  # "B" again, to the end of every partition
    assert_exactly_once(h, read_topic(h), extra=f"split while both ran: A {split[0]}, B {split[1]}")


def test_one_writer_batch_spanning_more_than_256_partitions(harness):
    """One writer, a topic of 300 partitions and a batch large enough to hold them all: every partition's
    offsets must be stored with its rows, so a second --drain adds nothing (writer.c's offsets_literals keeps
    at most 256 partitions per batch)."""
    h = harness(partitions=300)
    h.txgen(scaled(6000), seed=81)
    h.drain(KAFKA_NUM_WORKER_THREADS=1, BATCH_SIZE=20000, BATCH_FLUSH_MS=3000)
    h.drain(KAFKA_NUM_WORKER_THREADS=1, BATCH_SIZE=20000, BATCH_FLUSH_MS=3000)
    assert_exactly_once(h, read_topic(h))


def test_a_backlog_beyond_the_prefetch_drains_with_fetch_nudges(harness):
    """A backlog many times librdkafka's prefetch (here 256 KiB): the prefetch fills again and again, and each
    time it has drained the poll thread has the fetchers woken (nudge.c) instead of leaving them to librdkafka's
    one-second timer. The ingestor reports the nudges it sent when it stops; exactly once still holds."""
    h = harness()
    h.txgen(scaled(20000), seed=91)
    ing = h.drain(KAFKA_CONFIG_QUEUED_MAX_MESSAGES_KBYTES=256)
    assert_exactly_once(h, read_topic(h))
    sent = re.findall(r"fetch nudges sent: (\d+)", ing.log())
    assert sent and int(sent[-1]) > 0, f"no fetch nudge under a backlog\n{ing.tail(40)}"


# ---- 5. poison messages -----------------------------------------------------------------------------------------

POISON = [
    ("invalid_json", b'{"hash": "0x12'),
    ("invalid_utf8", b'{"hash":"0x' + b"a" * 64 + b'","value":"1","gas":1,"gasPrice":1,"input":"\xc0\xaf\xff"}'),
    ("negative_amount", b'{"hash":"0x' + b"b" * 64 + b'","value":"-5","gas":"21000","gasPrice":"1"}'),
    ("too_large", b'{"hash":"0x' + b"c" * 64 + b'","value":"1","gas":1,"gasPrice":1,"pad":"' + b"x" * 6000 + b'"}'),
    ("missing_field", b'{"hash":"0x' + b"d" * 64 + b'","value":"1","gas":1}'),
    ("not_object", b"[]"),
]


def test_poison_messages_become_dead_letters_and_the_rest_flows(harness):
    """Invalid JSON, invalid UTF-8, a negative value, an oversized message (> MAX_MESSAGE_BYTES) and others
    land in chainwatch.dead_letters with their reason and exact raw payload; every other message is loaded."""
    h = harness(partitions=8)
    h.txgen(scaled(3000), seed=51)
    prod = Producer({"bootstrap.servers": h.stack["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 0})
    positions = {}

    def on_delivery(err, msg, reason):
        assert err is None, err
        positions[(msg.partition(), msg.offset())] = (reason, msg.value())

    for i, (reason, payload) in enumerate(POISON):
        prod.produce(h.topic, payload, partition=i % 8, on_delivery=lambda e, m, r=reason: on_delivery(e, m, r))
    assert prod.flush(30) == 0
    assert len(positions) == len(POISON)
    h.txgen(scaled(3000), seed=52)
    produced = read_topic(h)

    ing = h.ingestor(MAX_MESSAGE_BYTES=4096, BATCH_SIZE=500)
    total = len(produced) - len(POISON)
    wait_for("everything to be loaded",
             lambda: (h.table_count() >= total and
                      h.sql("SELECT count(*) FROM chainwatch.dead_letters")[0][0] >= len(POISON)) or not ing.alive(),
             60, on_timeout=lambda: f"{h.table_count()} of {total} rows\n{ing.tail()}")
    time.sleep(0.5)
    metrics = ing.metrics()
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail(40)

    rows = h.sql("SELECT kafka_partition, kafka_offset, reason, payload, error, kafka_topic FROM chainwatch.dead_letters")
    got = {(p, o): (reason, bytes(payload), error, topic) for p, o, reason, payload, error, topic in rows}
    assert len(rows) == len(got) == len(POISON), f"dead letters: {[(r[0], r[1], r[2]) for r in rows]}"
    for pos, (reason, payload) in positions.items():
        assert pos in got, f"no dead letter for the {reason} message at {pos}; have {sorted(got)}"
        g_reason, g_payload, g_error, g_topic = got[pos]
        assert g_reason == reason, f"message at {pos}: reason {g_reason!r}, expected {reason!r} ({g_error})"
        assert g_payload == payload, f"message at {pos}: payload {g_payload[:80]!r} differs from {payload[:80]!r}"
        assert g_error and g_topic == h.topic
    assert_exactly_once(h, produced, dead_positions=positions)

    for reason, _ in POISON:
        key = f'chainwatch_dead_letters_total{{reason="{reason}"}}'
        assert metrics.get(key) == 1, f"{key} = {metrics.get(key)}"
    assert metrics.get('chainwatch_ingest_messages_total{status="dead_letter"}') == len(POISON)


# ---- 6. SIGTERM mid-stream ----------------------------------------------------------------------------------------


def test_sigterm_mid_stream_exits_0_and_loses_nothing(harness):
    """SIGTERM while messages stream in: exit 0 within SHUTDOWN_TIMEOUT_MS, having committed what was in
    flight; a --drain run afterwards completes the exact produced set."""
    h = harness()
    n = scaled(30000)
    producer = h.txgen(n, seed=61, rate=max(1000, n // 6), background=True)
    ing = h.ingestor(BATCH_SIZE=2000, SHUTDOWN_TIMEOUT_MS=10000)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=ing.tail)
    time.sleep(1.0)
    assert producer.poll() is None, "the producer finished before the SIGTERM: make the stream longer"
    t0 = time.monotonic()
    ing.signal(signal.SIGTERM)
    rc = ing.wait(15)
    took = time.monotonic() - t0
    assert rc == 0, f"exit status {rc} after SIGTERM\n{ing.tail(40)}"
    assert took < 10.0, f"took {took:.1f}s to exit, more than SHUTDOWN_TIMEOUT_MS"
    assert "shutdown requested" in ing.log(), ing.tail()
    # what it committed is consistent on its own: offsets match rows
    stored = h.sql("SELECT coalesce(sum(next_offset), 0) FROM chainwatch.kafka_offsets "
                   "WHERE consumer_group = %s AND topic = %s", h.group, h.topic)[0][0]
    assert stored == h.table_count(), f"after SIGTERM: offsets sum {stored}, rows {h.table_count()}"
    h.finish_txgen(producer)
    h.drain()
    assert_exactly_once(h, read_topic(h))


def test_second_sigterm_exits_at_once_and_loses_nothing(harness):
    """A second SIGTERM during the drain exits at once (status 1); a --drain run afterwards still completes
    the exact produced set (only committed offsets count)."""
    h = harness()
    n = scaled(5000)
    h.txgen(n, seed=62)
    # slow commits (many small batches) so the first SIGTERM finds work in flight
    ing = h.ingestor(BATCH_SIZE=50, KAFKA_NUM_WORKER_THREADS=1)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=ing.tail)
    ing.signal(signal.SIGTERM)
    time.sleep(0.15)
    ing.signal(signal.SIGTERM)
    rc = ing.wait(5)
    assert rc in (0, 1), f"exit status {rc}\n{ing.tail()}"
    h.drain()
    assert_exactly_once(h, read_topic(h))


# ---- 7. metrics, health, settings -----------------------------------------------------------------------------

METRIC_NAMES = [
    "chainwatch_ingest_messages_total", "chainwatch_ingest_rows_total", "chainwatch_anomalies_detected_total",
    "chainwatch_dead_letters_total", "chainwatch_ingest_batch_duration_seconds", "chainwatch_kafka_consumer_lag",
    "chainwatch_ingest_queue_messages", "chainwatch_ingest_threads_active", "chainwatch_db_up",
]


def test_metrics_and_health_endpoints(harness):
    """/metrics exposes every documented family with its samples; /health/live and /health/ready answer 200
    once the ingestor is consuming; the counters agree with the table."""
    h = harness(partitions=4)
    n = 2000
    h.txgen(n, seed=71)
    ing = h.ingestor(KAFKA_NUM_WORKER_THREADS=2)
    wait_for("all rows", lambda: h.table_count() >= n or not ing.alive(), 60, on_timeout=ing.tail)
    time.sleep(0.3)
    status, body = ing.get("/metrics")
    assert status == 200, body
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    for name in METRIC_NAMES:
        assert name in types, f"/metrics lacks {name}:\n{body}"
    assert types["chainwatch_ingest_batch_duration_seconds"] == "histogram"
    assert types["chainwatch_ingest_rows_total"] == "counter"
    m = ing.metrics()
    assert m["chainwatch_ingest_rows_total"] == n
    assert m['chainwatch_ingest_messages_total{status="ok"}'] == n
    assert m["chainwatch_db_up"] == 1
    assert m["chainwatch_ingest_threads_active"] == 3, "one poll thread and two writers"
    assert m["chainwatch_ingest_queue_messages"] == 0
    assert m['chainwatch_ingest_batch_duration_seconds_bucket{le="+Inf"}'] >= 1
    lags = {k: v for k, v in m.items() if k.startswith("chainwatch_kafka_consumer_lag{")}
    assert len(lags) == 4 and all(v == 0 for v in lags.values()), lags
    for sev in ("low", "medium", "high", "critical"):
        assert f'chainwatch_anomalies_detected_total{{severity="{sev}"}}' in m
    assert ing.get("/health/live")[0] == 200
    status, body = ing.get("/health/ready")
    assert status == 200 and json.loads(body)["ready"] is True, body
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail()


def test_ready_on_an_idle_topic(harness):
    """An ingestor whose partitions hold nothing yet is ready: assigned (or waiting), Postgres reachable, not
    stopping (issue 7: readiness must not wait for the first batch)."""
    h = harness(partitions=4)
    ing = h.ingestor()
    wait_for("the assignment", lambda: ing.assigned() == 4 or not ing.alive(), 60, on_timeout=ing.tail)
    status, body = wait_for("/health/ready to answer 200 on an idle topic with Postgres up",
                            lambda: (lambda r: r if r[0] == 200 else None)(ing.get("/health/ready")), 10,
                            on_timeout=lambda: f"last answer: {ing.get('/health/ready')}\n{ing.tail()}")
    assert json.loads(body)["postgres"] is True


@pytest.mark.parametrize("env, named", [
    ({"BATCH_SIZE": "abc"}, "BATCH_SIZE"),
    ({"BATCH_SIZE": "0"}, "BATCH_SIZE"),
    ({"BATCH_FLUSH_MS": "-1"}, "BATCH_FLUSH_MS"),
    ({"COPY_CONCURRENCY": "-1"}, "COPY_CONCURRENCY"),
    ({"KAFKA_NUM_WORKER_THREADS": "65"}, "KAFKA_NUM_WORKER_THREADS"),
    ({"KAFKA_MAX_QUEUE_SIZE": "lots"}, "KAFKA_MAX_QUEUE_SIZE"),
    ({"METRICS_PORT": "70000"}, "METRICS_PORT"),
    ({"KAFKA_AUTO_OFFSET_RESET": "middle"}, "KAFKA_AUTO_OFFSET_RESET"),
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"KAFKA_BOOTSTRAP_SERVERS": None}, "KAFKA_BOOTSTRAP_SERVERS"),
])
def test_invalid_setting_exits_2_naming_it(bin_dir, env, named):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_URL", "BATCH_"))}
    full.update({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "DATABASE_URL": "postgresql://127.0.0.1:9/x",
                 "METRICS_PORT": "0"})
    for k, v in env.items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    res = subprocess.run([str(bin_dir / "chainwatch-ingestor")], env=full, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    assert res.returncode == 2, f"exit {res.returncode}, stderr: {res.stderr}"
    assert named in res.stderr, f"the error does not name {named}: {res.stderr}"


def test_invalid_flag_value_exits_2(bin_dir):
    res = subprocess.run([str(bin_dir / "chainwatch-ingestor"), "--batch-size", "abc", "--kafka-bootstrap-servers",
                          "127.0.0.1:9", "--database-url", "x"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=20, env={"PATH": os.environ["PATH"]})
    assert res.returncode == 2 and ("BATCH_SIZE" in res.stderr or "--batch-size" in res.stderr), res.stderr


def test_help_lists_every_setting_with_its_default(bin_dir):
    res = subprocess.run([str(bin_dir / "chainwatch-ingestor"), "--help"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    defaults = {
        "KAFKA_BOOTSTRAP_SERVERS": None, "KAFKA_TOPIC": "blockchain-transactions",
        "KAFKA_GROUP_ID": "anomaly-detection-group", "KAFKA_NUM_WORKER_THREADS": "4",
        "KAFKA_MAX_QUEUE_SIZE": "10000", "KAFKA_SESSION_TIMEOUT_MS": "30000", "KAFKA_MAX_POLL_INTERVAL_MS": "300000",
        "DATABASE_URL": None, "BATCH_SIZE": "5000", "BATCH_FLUSH_MS": "200", "METRICS_PORT": "9090",
        "LOG_LEVEL": "info", "LOG_FORMAT": "text", "SHUTDOWN_TIMEOUT_MS": "30000", "MAX_MESSAGE_BYTES": None,
        "COPY_CONCURRENCY": "2",
    }
    for name, default in defaults.items():
        flag = "--" + name.lower().replace("_", "-")
        m = re.search(rf"^\s*{name}\s+{re.escape(flag)}\b.*\n(.*)$", text, re.M)
        assert m, f"--help does not list {name} with {flag}:\n{text}"
        if default is not None:
            assert f"(default {default})" in m.group(1), f"{name}: default {default} not shown: {m.group(1)}"
    assert "KAFKA_CONFIG_" in text and "--drain" in text
