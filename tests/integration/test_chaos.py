"""tests/integration/test_chaos.py — fault injection (`make chaos`): one live pipeline, six faults, exactly once after each

Design
------
One private stack (tools/stack.sh, the stack's broker: Apache Kafka, or the mock with CHAINWATCH_KAFKA=mock)
runs for the whole module, with a topic of PARTITIONS partitions (the mock broker keeps only ~5 MiB per partition
and txgen keys messages by sender, so many partitions keep every partition's log whole for the ~60k messages of
a run on it). On it, all the time:

  * two chainwatch-ingestor members of one consumer group (KAFKA_SESSION_TIMEOUT_MS=6000: a killed member's
    partitions wait about one session timeout, and the mock makes a restarted member wait as long), run with
    the least-privilege ingestor role;
  * chainwatch-api with Redis enabled, run with the least-privilege api role;
  * a paced chainwatch-txgen stream (--count 0 --rate RATE, idempotent producer, a message timeout longer than
    any outage) that only stops in the last test;
  * a "wrk-style" load client: LOAD_THREADS Python threads, each a keep-alive session cycling through the reader
    endpoints (anomaly list, one anomaly, stats, predict, one stored transaction), recording (time, route,
    status, error code, X-Cache) for every request and checking each 200's body (the anomaly asked for is the
    one returned, and so on), so a cache answering with another key's value would be caught too.

Each test function injects one fault into that same pipeline, in file order: kill -9 an ingestor (a
replacement is started: the supervisor's job), kill -9 the postmaster (then `pg_ctl start` on the same data
directory and port: crash recovery), SIGSTOP Redis for 30 s, SIGSTOP the broker for 30 s (SIGSTOP, not kill:
the mock's log lives in its memory), 10,000 hostile messages interleaved with good ones, and SIGSTOP of one
ingestor past the session timeout — at the worst moment, with one of its writers idle in a transaction right
after commit_batch() holding its row locks, which the other member must not wait on for long. The daemons
themselves are never restarted by the test: recovering is their job, and the checks below fail if they do not.

After every fault, `checkpoint()`:

  1. reads the broker's high watermarks H (and fails if the mock dropped the head of any partition);
  2. waits, with a generous deadline, until chainwatch.kafka_offsets has reached H for every partition (the
     stream goes on meanwhile, so this is a moving prefix: rows below H can no longer change once the stored
     offsets have passed H, since offsets only move with their rows);
  3. exactly once, on real data: the set of (partition, offset, hash) in chainwatch.transactions below H
     equals what the broker holds below H (read back by a consumer of our own, minus the hostile positions),
     with no duplicate position, the multiset of hashes equal, and count(*) = count(DISTINCT hash) over the
     whole table;
  4. dead letters: every row sits at a position we produced a hostile message at, with that message's exact
     bytes and the reason the decoder documents for it, and no position twice;
  5. bounds: every managed table's count(*) <= max_rows and equal to chainwatch.status().rows (one statement
     in a REPEATABLE READ transaction: one snapshot, status() being VOLATILE), address_profiles included;
  6. the API: since the last checkpoint, no request failed to connect, no 5xx except 503 database_unavailable
     inside a Postgres outage window (the kill until Postgres accepts connections again, plus PG_GRACE_S), no
     4xx but a 404 for an anomaly evicted meanwhile, every 200 body right, and every route answered 200 at
     least once (the client really ran);
  7. every daemon of the pipeline is still the process it was (only the killed ingestor has a successor).

The last test stops txgen (SIGTERM: it flushes; it must report every message delivered), regenerates the very
same streams with the same seeds to stdout, and compares the hash multiset of the whole table with them plus the
good messages the hostile test produced: the final, end-to-end "every produced transaction exactly once", which
also proves the idempotent producer wrote nothing twice through the broker outage. The address profiles, folded
in by each batch's own transaction, must then equal a recomputation from the stored transactions
(verify_address_profiles()): no killed batch left half an update, no replay counted twice.

Why this shape: one pipeline rather than one per fault, because what is asked is recovery without a hand on
anything, with every other component still busy, and faults compound as they would in production (the
replacement member and the recovered Postgres take the later faults too); a moving prefix rather than pausing
the stream, so no fault ever meets a quiet system; Python threads rather than wrk, because every answer's time,
status, error code and body are needed, not latency percentiles; real hash sets rather than counters, since a
counter can be right while the rows are wrong.

Waits poll with deadlines; no timing is a pass criterion. Timings (recovery, rebalance, catch-up) and counts
(503s in the outage, dead letters by reason, evictions, rebalances) are recorded in build/chaos/observations.json
for docs/reliability.md. Tests depend on their predecessors (one pipeline); run the file as a whole.

Knobs: CHAINWATCH_BIN (binaries), CHAINWATCH_CHAOS_RATE (txgen messages/s, default 300).
"""
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import REPO_ROOT, kafka_nodes, pg_connect, record_pid, tcp_sockets
from test_api import ApiProcess, etherscan_tx, tx_hash
from test_ingestor import HASH_RE, SESSION_TIMEOUT_MS, Harness, describe_positions, pg_ctl, wait_for

PARTITIONS = 128
RATE = int(os.environ.get("CHAINWATCH_CHAOS_RATE", "300"))  # txgen messages per second, all run long
WARMUP = 6000               # messages loaded before the model is trained (below auto_train_min_rows)
WARMUP_SEED = 801
STREAM_SEED = 802
MAX_MESSAGE_BYTES = 16384   # small, so "too large" hostile messages stay cheap for the mock broker
DEAD_LETTERS_MAX_ROWS = 2000  # far below the 10k hostile messages: eviction is exercised
ANOMALIES_MAX_ROWS = 400      # the bound is exercised under every fault too
HOSTILE = 10000
GOOD_EVERY = 10             # one good message after every GOOD_EVERY hostile ones
OUTAGE_S = 30               # Redis and the broker are stopped this long
PG_DOWN_S = 5               # Postgres stays dead this long before it is started again
PG_GRACE_S = 10             # 503 database_unavailable still accepted this long after Postgres accepts again
LOAD_THREADS = 3
LOAD_PAUSE_S = 0.02         # between two requests of one load thread
CATCH_UP_S = 300            # deadline for ingestion to reach the high watermarks after a fault
ROUTES = ("list", "one", "stats", "predict", "transaction")
OBSERVATIONS = REPO_ROOT / "build" / "chaos" / "observations.json"
REBALANCE_RE = re.compile(r"(assigned|revoked|lost) \d+ partition")


# ---- the load client ------------------------------------------------------------------------------------------


class LoadClient:
    """LoadClient — LOAD_THREADS threads querying the reader endpoints until stop(); records every request.

    A record is (monotonic time at the answer, route, status or None, error code, X-Cache, problem); problem
    is a string when a 200's body is wrong or the request raised (no answer at all).
    """

    def __init__(self, url, key, stored_hashes):
        self.url = url
        self.key = key
        self.stored = list(stored_hashes)  # hashes of transactions known to be stored (the warm-up)
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.anomaly_hashes = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True, name=f"load-{i}")
                        for i in range(LOAD_THREADS)]
        for t in self.threads:
            t.start()

    def run(self, index):
        rng = random.Random(index)
        s = requests.Session()
        s.headers["X-API-Key"] = self.key
        i = index
        while not self.stopping.is_set():
            route = ROUTES[i % len(ROUTES)]
            i += 1
            if route == "one" and not self.anomaly_hashes:
                route = "list"
            try:
                status, code, cache, problem = self.request(s, rng, route)
            except requests.RequestException as e:
                status, code, cache, problem = None, None, None, f"no answer: {e!r}"[:300]
            except Exception as e:  # a body that is not what it should be (bad JSON, missing keys)
                status, code, cache, problem = -1, None, None, f"bad body: {e!r}"[:300]
            with self.lock:
                self.records.append((time.monotonic(), route, status, code, cache, problem))
            time.sleep(LOAD_PAUSE_S)

    def request(self, s, rng, route):
        """request — one request of the route; returns (status, error code, X-Cache, problem or None)."""
        if route == "list":
            q = rng.choice(["limit=20", "limit=5", "limit=50&severity=high,critical", "limit=10&severity=low"])
            r = s.get(f"{self.url}/api/v1/anomalies?{q}", timeout=30)
        elif route == "one":
            want = rng.choice(self.anomaly_hashes[-200:])
            r = s.get(f"{self.url}/api/v1/anomalies/{want}", timeout=30)
        elif route == "stats":
            r = s.get(f"{self.url}/api/v1/stats?window=15m", timeout=30)
        elif route == "predict":
            r = s.post(f"{self.url}/api/v1/predict", data=json.dumps(etherscan_tx(f"chaos-{rng.randrange(64)}")),
                       headers={"Content-Type": "application/json"}, timeout=30)
        else:
            want = rng.choice(self.stored)
            r = s.get(f"{self.url}/api/v1/transactions/{want}", timeout=30)
        cache = r.headers.get("X-Cache")
        if r.status_code != 200:
            try:
                code = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                return r.status_code, None, cache, f"error body is not the documented shape: {r.text[:200]!r}"
            return r.status_code, code, cache, None
        body = r.json()
        problem = None
        if route == "list":
            hashes = [a["hash"] for a in body["data"]]
            if not isinstance(body["total"], int) or body["total"] < len(hashes):
                problem = f"list total {body['total']} with {len(hashes)} rows"
            self.anomaly_hashes.extend(hashes)
            del self.anomaly_hashes[:-1000]
        elif route in ("one", "transaction"):
            got = body.get("data", body)["hash"]
            if got != want:
                problem = f"asked for {want}, got {got}"
        elif route == "stats":
            if "store" not in body:
                problem = f"stats without store: {sorted(body)}"
        else:
            if not 0 < body["score"] <= 1 or body["model_id"] is None:
                problem = f"prediction {body}"
        return 200, None, cache, problem

    def mark(self):
        with self.lock:
            return len(self.records)

    def since(self, mark):
        with self.lock:
            return self.records[mark:]

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)


# ---- what the broker holds ---------------------------------------------------------------------------------------


class TopicMirror:
    """TopicMirror — a consumer of our own (no group) reading the topic from offset 0 as the test goes on;
    keeps {(partition, offset): hash or None} of everything it has read."""

    def __init__(self, bootstrap, topic):
        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cw-chaos-mirror",
                                  "enable.auto.commit": False, "enable.partition.eof": False,
                                  "fetch.max.bytes": 52428800})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.hashes = {}
        self.payloads = {}  # only for positions the caller asks to keep (hostile messages)
        self.next = defaultdict(int)

    def watermarks(self):
        """watermarks — {partition: high watermark}; fails if the mock dropped the head of a partition.

        One ListOffsets request per broker for all partitions (timestamp -1: the end, -2: the log start), not one
        round trip per partition."""
        def list_offsets(which):
            parts = self.consumer.offsets_for_times([TopicPartition(self.topic, p, which) for p in range(PARTITIONS)],
                                                    timeout=60)
            bad = [tp for tp in parts if tp.error or tp.offset < 0]
            assert not bad, f"ListOffsets failed: {bad[:3]}"
            return {tp.partition: tp.offset for tp in parts}

        low, high = list_offsets(-2), list_offsets(-1)
        dropped = {p: lo for p, lo in low.items() if lo != 0}
        assert not dropped, f"the mock dropped the head of partitions (log start): {dropped}: too much per partition"
        return high

    def advance(self, high, timeout=180):
        """advance — read until every partition is read up to high[p] (exclusive)."""
        deadline = time.monotonic() + timeout
        while any(self.next[p] < hi for p, hi in high.items()):
            assert time.monotonic() < deadline, \
                f"reading the topic back timed out: {sum(1 for p, hi in high.items() if self.next[p] < hi)} " \
                f"partitions not read up to their high watermark"
            for m in self.consumer.consume(10000, timeout=0.5):
                if m.error():
                    continue
                p, o = m.partition(), m.offset()
                assert o == self.next[p], f"partition {p}: offset {o} read after {self.next[p] - 1} (a gap)"
                self.next[p] = o + 1
                payload = m.value() or b""
                found = HASH_RE.search(payload)
                self.hashes[(p, o)] = found.group(1).decode().lower() if found else None

    def close(self):
        self.consumer.close()


# ---- the pipeline ------------------------------------------------------------------------------------------------


class Pipeline:
    """Pipeline — the stack and every long-running process on it, plus what the checks need to remember."""

    def __init__(self, bin_dir):
        self.monkeypatch = pytest.MonkeyPatch()
        self.h = Harness(bin_dir, PARTITIONS, self.monkeypatch)
        self.stack = self.h.stack
        self.bin_dir = bin_dir
        self.conn = None
        self.members = []
        self.api = None
        self.load = None
        self.txgen = None
        self.txgen_err = Path(self.stack.dir) / "txgen-stream.err"
        self.mirror = None
        self.hostile = {}        # (p, o) -> (kind, payload bytes, reason)
        self.extra_good = []     # hashes of good messages the test produced itself
        self.windows = []        # [start, end] monotonic: 503 database_unavailable accepted
        self.api_mark = 0
        self.obs = {"partitions": PARTITIONS, "rate": RATE, "faults": {}}
        self.started = time.monotonic()

    # -- plumbing

    def sql(self, query, *params, snapshot=False):
        """sql — one statement as the superuser; reconnects once when the connection died (Postgres kill).

        snapshot=True runs it in a REPEATABLE READ READ ONLY transaction: a VOLATILE function such as status()
        takes a new snapshot for each of its statements under READ COMMITTED, so a plain statement comparing
        it with a count(*) would see two moments of a store that is being written."""
        for attempt in range(2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = pg_connect(self.stack)
                with self.conn.cursor() as cur:
                    if snapshot:
                        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    try:
                        cur.execute(query, params)
                        return cur.fetchall() if cur.description else None
                    finally:
                        if snapshot and not self.conn.closed:
                            cur.execute("ROLLBACK")
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                try:
                    self.conn.close()
                except (psycopg2.Error, AttributeError):
                    pass
                self.conn = None
                if attempt:
                    raise

    def table_count(self):
        return self.sql("SELECT count(*) FROM chainwatch.transactions WHERE kafka_topic = %s", self.h.topic)[0][0]

    def pid_of(self, name):
        return int((Path(self.stack.dir) / "pids" / f"{name}.pid").read_text().split()[0])

    def start_member(self, name):
        ing = self.h.ingestor(name=name, DATABASE_URL=self.stack.role_url("ingestor"), BATCH_SIZE=1000,
                              MAX_MESSAGE_BYTES=MAX_MESSAGE_BYTES)
        self.members.append(ing)
        return ing

    def assigned(self):
        return [m.assigned() for m in self.members]

    def wait_split(self, what, timeout=120):
        """wait_split — every member owns some partitions and together all of them."""
        return wait_for(what, lambda: (lambda a: all(x > 0 for x in a) and sum(a) == PARTITIONS)(self.assigned()),
                        timeout, interval=0.5, on_timeout=lambda: f"assigned: {self.assigned()}\n{self.h.logs()}")

    def rebalances(self):
        return sum(len(REBALANCE_RE.findall(m.log())) for m in self.h.ingestors)

    def logs(self):
        out = [self.h.logs()]
        if self.api:
            out.append("--- api log tail ---\n" + "\n".join(self.api.log_path.read_text(errors="replace")
                                                          .splitlines()[-25:]))
        return "\n".join(out)

    def observe(self, fault, **values):
        self.obs["faults"].setdefault(fault, {}).update(values)
        OBSERVATIONS.parent.mkdir(parents=True, exist_ok=True)
        self.obs["elapsed_s"] = round(time.monotonic() - self.started, 1)
        OBSERVATIONS.write_text(json.dumps(self.obs, indent=2, sort_keys=True) + "\n")

    def api_get(self, path):
        try:
            r = requests.get(self.api.url + path, timeout=10)
            return r.status_code, r.json()
        except (requests.RequestException, ValueError) as e:
            return None, repr(e)

    def health(self):
        """health — (HTTP status, overall status, Redis status) of the API's /health; Nones if no JSON answer."""
        status, body = self.api_get("/health")
        if not isinstance(body, dict):
            return status, None, None
        return status, body.get("status"), body.get("checks", {}).get("redis", {}).get("status")

    # -- setup

    def start(self):
        h = self.h
        self.sql("SELECT chainwatch.set_retention('dead_letters', max_rows => %s)", DEAD_LETTERS_MAX_ROWS)
        self.sql("SELECT chainwatch.set_retention('anomalies', max_rows => %s)", ANOMALIES_MAX_ROWS)
        h.txgen(WARMUP, seed=WARMUP_SEED)
        self.mirror = TopicMirror(self.stack["KAFKA_BOOTSTRAP_SERVERS"], h.topic)
        self.start_member("a")
        self.start_member("b")
        self.wait_split("both members to own partitions")
        wait_for(f"the {WARMUP} warm-up messages", lambda: h.table_count() >= WARMUP, 120, interval=0.5,
                 on_timeout=self.logs)
        (model,), = self.sql("SELECT chainwatch.activate_model(chainwatch.train_model('chaos', "
                             "'SELECT value, gas, gas_price FROM chainwatch.transactions', seed => 1))")
        self.obs["model_id"] = model
        key = self.sql("SELECT chainwatch.create_api_key('chaos-reader', 'reader')")[0][0]
        stored = [r[0] for r in self.sql("SELECT hash FROM chainwatch.transactions ORDER BY hash LIMIT 500")]
        self.api = ApiProcess(self.stack, self.stack.dir, DATABASE_URL=self.stack.role_url("api"),
                              REDIS_ENABLED="true", DB_POOL_SIZE=4, REQUEST_TIMEOUT_MS=10000)
        wait_for("the API to be ready", lambda: self.api_get("/health/ready")[0] == 200, 60, on_timeout=self.logs)
        # the stream: paced, until SIGTERM; idempotent so that retries through a broker outage write nothing twice,
        # with a message timeout longer than any outage here
        with open(self.txgen_err, "wb") as err:
            self.txgen = subprocess.Popen(
                [str(self.bin_dir / "chainwatch-txgen"), "--brokers", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                 "--topic", h.topic, "--count", "0", "--rate", str(RATE), "--seed", str(STREAM_SEED),
                 "--kafka-conf", "enable.idempotence=true", "--kafka-conf", "message.timeout.ms=600000"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        h.others.append(self.txgen)
        record_pid(self.stack, "txgen-stream", self.txgen.pid)
        self.load = LoadClient(self.api.url, key, stored)
        self.api_mark = 0
        self.pids = {"api": self.api.proc.pid, "txgen": self.txgen.pid}

    def close(self):
        if self.load:
            self.load.stop()
        if self.mirror:
            self.mirror.close()
        for m in self.h.ingestors:  # a SIGSTOPped process would not die of SIGTERM
            if m.alive():
                m.signal(signal.SIGCONT)
        for name in ("kafka", "redis"):
            try:
                os.kill(self.pid_of(name), signal.SIGCONT)
            except (OSError, ValueError):
                pass
        if self.api:
            self.api.stop()
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.h.close()
        self.monkeypatch.undo()

    # -- the checks after every fault

    def assert_alive(self, label):
        dead = [m.name for m in self.members if not m.alive()]
        if self.api.proc.poll() is not None:
            dead.append("api")
        if self.txgen.poll() is not None and "stream_stopped" not in self.obs:
            dead.append(f"txgen (exit {self.txgen.returncode}: {self.txgen_err.read_text(errors='replace')[-500:]})")
        assert not dead, f"{label}: died: {dead}\n{self.logs()}"

    def checkpoint(self, label):
        """checkpoint — wait until the stream so far is ingested, then every check of the module docstring."""
        t0 = time.monotonic()
        self.assert_alive(label)
        high = self.mirror.watermarks()
        behind = {}

        def caught_up():
            stored = dict(self.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                   "WHERE consumer_group = %s AND topic = %s", self.h.group, self.h.topic))
            behind.clear()
            behind.update({p: (stored.get(p, 0), hi) for p, hi in high.items() if stored.get(p, 0) < hi})
            return not behind

        wait_for(f"{label}: ingestion to reach the high watermarks", caught_up, CATCH_UP_S, interval=0.5,
                 on_timeout=lambda: f"{len(behind)} partitions behind (stored, high), e.g. "
                                    f"{dict(list(sorted(behind.items()))[:8])}\n{self.logs()}")
        caught = time.monotonic() - t0
        self.mirror.advance(high)
        self.assert_exactly_once(label, high)
        self.assert_dead_letters(label)
        self.assert_bounds(label)
        api = self.check_api(label)
        self.assert_alive(label)
        return {"catch_up_s": round(caught, 1), "messages_in_topic": sum(high.values()), **api}

    def assert_exactly_once(self, label, high):
        parts = sorted(high)
        rows = self.sql(
            "SELECT t.kafka_partition, t.kafka_offset, t.hash FROM chainwatch.transactions t "
            "JOIN unnest(%s::int[], %s::bigint[]) AS h(p, hi) ON t.kafka_partition = h.p AND t.kafka_offset < h.hi "
            "WHERE t.kafka_topic = %s", parts, [high[p] for p in parts], self.h.topic)
        want = {pos: hsh for pos, hsh in self.mirror.hashes.items()
                if pos[1] < high.get(pos[0], 0) and pos not in self.hostile}
        no_hash = [pos for pos, hsh in want.items() if hsh is None]
        got_counts = Counter((p, o) for p, o, _ in rows)
        got = {(p, o): hsh for p, o, hsh in rows}
        problems = []
        if no_hash:
            problems.append(f"{len(no_hash)} produced messages without a hash: {describe_positions(no_hash)}")
        dup = {pos: n for pos, n in got_counts.items() if n > 1}
        if dup:
            problems.append(f"{len(dup)} positions stored more than once: {describe_positions(dup)}")
        missing = set(want) - set(got)
        if missing:
            problems.append(f"{len(missing)} produced messages missing: {describe_positions(missing)}")
        extra = set(got) - set(want)
        if extra:
            problems.append(f"{len(extra)} rows at positions not produced (or hostile): {describe_positions(extra)}")
        wrong = [pos for pos in set(got) & set(want) if got[pos] != want[pos]]
        if wrong:
            problems.append(f"{len(wrong)} rows with another message's hash, e.g. {sorted(wrong)[:5]}")
        hash_diff = (Counter(got.values()) - Counter(want.values())) + (Counter(want.values()) - Counter(got.values()))
        if hash_diff or len(rows) != len(want):
            problems.append(f"hash multisets differ: {len(rows)} rows vs {len(want)} produced; "
                            f"e.g. {list(hash_diff.items())[:5]}")
        (n, n_hash), = self.sql("SELECT count(*), count(DISTINCT hash) FROM chainwatch.transactions")
        if n != n_hash:
            problems.append(f"the table holds {n} rows but {n_hash} distinct hashes")
        if problems:
            pytest.fail(f"{label}: chainwatch.transactions is not exactly the produced stream:\n  " +
                        "\n  ".join(problems) + f"\n{self.logs()}")

    def assert_dead_letters(self, label):
        rows = self.sql("SELECT kafka_partition, kafka_offset, reason, payload, error FROM chainwatch.dead_letters "
                        "WHERE kafka_topic = %s", self.h.topic)
        positions = Counter((p, o) for p, o, *_ in rows)
        problems = [f"position {pos} stored {n} times" for pos, n in positions.items() if n > 1][:5]
        for p, o, reason, payload, error in rows:
            if (p, o) not in self.hostile:
                problems.append(f"dead letter at ({p}, {o}) where no hostile message was produced: {reason} {error}")
                continue
            kind, want_payload, want_reason = self.hostile[(p, o)]
            if reason != want_reason:
                problems.append(f"{kind} at ({p}, {o}): reason {reason!r}, expected {want_reason!r} ({error})")
            if bytes(payload or b"") != want_payload:
                problems.append(f"{kind} at ({p}, {o}): payload {bytes(payload or b'')[:60]!r} differs from "
                                f"{want_payload[:60]!r}")
            if not error:
                problems.append(f"{kind} at ({p}, {o}): no error text")
        if problems:
            pytest.fail(f"{label}: dead letters are wrong:\n  " + "\n  ".join(problems[:20]))

    def bounds(self):
        """bounds — {table: (rows by status(), count(*), max_rows, evicted_ttl, evicted_size)}, one snapshot
        (a REPEATABLE READ transaction: see sql()).

        Retried when status() trips over a partition that maintenance dropped after the statement's snapshot
        (42P01, the open issue in docs/reliability.md): that is the extension's bug, which check_api reports
        where a client sees it; here it would only stop the measurement."""
        for attempt in range(5):
            try:
                return self._bounds()
            except psycopg2.errors.UndefinedTable:
                if attempt == 4:
                    raise
                time.sleep(0.2)

    def _bounds(self):
        rows = self.sql(
            "SELECT s.table_name, s.rows, CASE s.table_name "
            "  WHEN 'transactions' THEN (SELECT count(*) FROM chainwatch.transactions) "
            "  WHEN 'anomalies' THEN (SELECT count(*) FROM chainwatch.anomalies) "
            "  WHEN 'dead_letters' THEN (SELECT count(*) FROM chainwatch.dead_letters) "
            "  WHEN 'address_profiles' THEN (SELECT count(*) FROM chainwatch.address_profiles) END, "
            "  s.max_rows, s.evicted_ttl, s.evicted_size FROM chainwatch.status() s", snapshot=True)
        return {r[0]: tuple(r[1:]) for r in rows}

    def assert_bounds(self, label):
        b = self.bounds()
        assert {"transactions", "anomalies", "dead_letters"} <= set(b), b
        bad = {t: v for t, v in b.items() if v[1] is not None and (v[1] > v[2] or v[0] != v[1])}
        assert not bad, (f"{label}: a bound does not hold or status() miscounts "
                         f"(table: status rows, count(*), max_rows, evicted_ttl, evicted_size): {bad}")

    def check_api(self, label):
        """check_api — the load client's records since the last check (see the module docstring)."""
        recs = self.load.since(self.api_mark)
        self.api_mark += len(recs)
        bad, allowed_503, ok = [], 0, Counter()
        for t, route, status, code, cache, problem in recs:
            if problem:
                bad.append((route, status, code, problem))
            elif status == 503 and code == "database_unavailable" and any(a <= t <= b for a, b in self.windows):
                allowed_503 += 1
            elif status == 200:
                ok[route] += 1
            elif not (status == 404 and route == "one"):
                bad.append((route, status, code, "outside an outage window" if status == 503 else ""))
        silent = [r for r in ROUTES if ok[r] == 0] if len(recs) >= 20 * len(ROUTES) else []
        hint = ("\n(503 extension_missing from stats: chainwatch.status() raised 42P01 on a partition that "
                "maintenance dropped after the statement's snapshot; see docs/reliability.md, open issue)"
                if any(b[0] == "stats" and b[2] == "extension_missing" for b in bad) else "")
        assert not bad, (f"{label}: {len(bad)} of {len(recs)} API requests failed: {Counter(bad).most_common(8)}"
                         f"{hint}\n{self.logs()}")
        assert not silent, f"{label}: no 200 from {silent} since the last check ({len(recs)} requests)\n{self.logs()}"
        return {"api_requests": len(recs), "api_503_in_outage": allowed_503}


@pytest.fixture(scope="module")
def chaos(bin_dir):
    """chaos — the pipeline every test of this module injects its fault into (started once, torn down at the end)."""
    p = Pipeline(bin_dir)
    try:
        p.start()
        p.observe("baseline", **p.checkpoint("baseline"))
        yield p
    finally:
        p.close()


# ---- the faults, in order ----------------------------------------------------------------------------------------


def test_kill_9_an_ingestor(chaos):
    """SIGKILL one member mid-stream; a replacement joins: it and the survivor split the partitions and nothing
    the dead member had in flight is lost or loaded twice."""
    victim = chaos.members[1]
    before = chaos.rebalances()
    t0 = time.monotonic()
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    chaos.members.remove(victim)
    chaos.start_member("c")
    chaos.wait_split("the replacement and the survivor to split the partitions")
    split_s = time.monotonic() - t0
    result = chaos.checkpoint("kill -9 ingestor")
    chaos.observe("kill_9_ingestor", rebalanced_s=round(split_s, 1), rebalances=chaos.rebalances() - before,
                  assigned=chaos.assigned(), **result)


def test_kill_9_the_postmaster(chaos):
    """SIGKILL the postmaster; after PG_DOWN_S `pg_ctl start` on the same data directory (crash recovery): the
    ingestors turn unready, then resume by themselves; the API answers 503 database_unavailable meanwhile (and
    nothing else), then 200 again without a restart."""
    data = Path(chaos.stack.dir) / "pg" / "data"
    pid = int((data / "postmaster.pid").read_text().split()[0])
    window = [time.monotonic(), float("inf")]
    chaos.windows.append(window)
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    for m in chaos.members:
        wait_for(f"{m.name} to report Postgres unavailable", lambda m=m: m.get("/health/ready")[0] == 503, 60,
                 interval=0.2, on_timeout=m.tail)
    wait_for("the API to report not ready", lambda: chaos.api_get("/health/ready")[0] == 503, 30, interval=0.2,
             on_timeout=chaos.logs)
    assert chaos.health()[:2] == (503, "unhealthy"), chaos.api_get("/health")
    assert chaos.api_get("/health/live")[0] == 200
    time.sleep(max(0.0, PG_DOWN_S - (time.monotonic() - t_kill)))

    log = Path(chaos.stack.dir) / "pg" / "log" / "postgresql.log"
    attempts = []

    def started():
        res = pg_ctl(chaos.h, "-l", str(log), "-w", "-t", "60", "start")
        attempts.append(res.stdout[-300:])
        return res.returncode == 0

    # the old backends go when they notice their postmaster died; until then the start may be refused
    wait_for("Postgres to start again", started, 120, interval=1, on_timeout=lambda: "\n".join(attempts))
    t_up = time.monotonic()
    window[1] = t_up + PG_GRACE_S
    record_pid(chaos.stack, "postgres", int((data / "postmaster.pid").read_text().split()[0]))
    for m in chaos.members:
        wait_for(f"{m.name} to be ready again", lambda m=m: m.get("/health/ready")[0] == 200, 120, interval=0.2,
                 on_timeout=m.tail)
    t_ing = time.monotonic()
    wait_for("the API to be ready again", lambda: chaos.api_get("/health/ready")[0] == 200, 60, interval=0.2,
             on_timeout=chaos.logs)
    t_api = time.monotonic()
    mark = chaos.api_mark
    result = chaos.checkpoint("kill -9 postmaster")
    recs = chaos.load.since(mark)[:result["api_requests"]]
    last_503 = max((t for t, _, s, *_ in recs if s == 503), default=None)
    chaos.observe("kill_9_postmaster", postgres_down_s=round(t_up - t_kill, 1),
                  start_attempts=len(attempts),
                  ingestors_ready_after_pg_s=round(t_ing - t_up, 1), api_ready_after_pg_s=round(t_api - t_up, 1),
                  last_503_after_pg_up_s=None if last_503 is None else round(last_503 - t_up, 2), **result)
    assert result["api_503_in_outage"] > 0, "the client never saw the outage: nothing was proved"


def test_redis_stopped_30s(chaos):
    """SIGSTOP Redis for OUTAGE_S: the API keeps answering from Postgres (every answer right, no 5xx), /health
    says degraded with Redis down; after SIGCONT it is healthy again and serves cache hits."""
    pid = chaos.pid_of("redis")
    mark = chaos.load.mark()
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        wait_for("/health to say degraded (Redis down)", lambda: chaos.health() == (200, "degraded", "down"),
                 30, interval=0.5, on_timeout=lambda: f"{chaos.api_get('/health')}\n{chaos.logs()}")
        degraded_s = time.monotonic() - t0
        while time.monotonic() - t0 < OUTAGE_S:
            assert chaos.api_get("/health/ready")[0] == 200, "not ready while only Redis is down"
            time.sleep(1)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_back = time.monotonic()
    during = [r for r in chaos.load.since(mark) if r[0] <= t_back]
    wait_for("/health to say ok again", lambda: chaos.health() == (200, "ok", "ok"), 60, interval=0.5,
             on_timeout=lambda: f"{chaos.api_get('/health')}\n{chaos.logs()}")
    ok_s = time.monotonic() - t_back
    wait_for("a cache hit served through Redis again",
             lambda: any(r[4] == "HIT" for r in chaos.load.since(mark) if r[0] > t_back + ok_s), 60,
             interval=0.5)
    result = chaos.checkpoint("Redis stopped")
    caches = Counter(r[4] for r in during if r[2] == 200)
    chaos.observe("redis_stopped", degraded_after_s=round(degraded_s, 1), ok_after_resume_s=round(ok_s, 1),
                  requests_while_down=len(during), x_cache_while_down=dict(caches), **result)
    assert caches["BYPASS"] > 0, f"no BYPASS answer while Redis was stopped: {caches}"


def test_broker_stopped_30s(chaos):
    """SIGSTOP the broker for OUTAGE_S (paused, not killed: the mock's log is in its memory; a real broker's
    kill and restart is test_broker.py's): the members and the producer ride it out (session timeouts,
    rebalances) and ingestion resumes by itself."""
    pid = chaos.pid_of(kafka_nodes(chaos.stack)[0])  # kafka-1 (Apache Kafka) or kafka-mock
    before = chaos.rebalances()
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < OUTAGE_S:
            dead = [m.name for m in chaos.members if not m.alive()]
            assert not dead, f"{dead} died while the broker was stopped\n{chaos.logs()}"
            assert all(m.get("/health/live")[0] == 200 for m in chaos.members), chaos.logs()
            time.sleep(1)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_back = time.monotonic()
    rows0 = chaos.table_count()
    wait_for("ingestion to resume", lambda: chaos.table_count() > rows0, 120, interval=0.5, on_timeout=chaos.logs)
    resumed_s = time.monotonic() - t_back
    chaos.wait_split("both members to own partitions again")
    result = chaos.checkpoint("broker stopped")
    chaos.observe("broker_stopped", ingest_resumed_after_s=round(resumed_s, 1),
                  rebalances=chaos.rebalances() - before, assigned=chaos.assigned(), **result)


def hostile_payload(kind, i, rng):
    """hostile_payload — (payload bytes or None for a null Kafka value, the reason the decoder must give)."""
    h = b"0x%064x" % (0xdead0000 + i)

    def obj(**fields):
        base = {"hash": h.decode(), "from": "0x" + "1" * 40, "to": "0x" + "2" * 40, "value": "1000",
                "gas": "21000", "gasPrice": "20000000000", "timeStamp": "1704067200", "blockNumber": "19000000"}
        base.update(fields)
        return json.dumps({k: v for k, v in base.items() if v is not None}).encode()

    table = {
        "truncated_json": (b'{"hash": "0x12', "invalid_json"),
        "empty": (b"", "invalid_json"),
        "null_value": (None, "invalid_json"),
        "nul_byte": (obj()[:-1] + b',"x":"\x00"}', "invalid_json"),
        "trailing_data": (obj() + b" {}", "invalid_json"),
        "deep_nesting": (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        "overlong_utf8": (obj(input="0x").replace(b'"0x"}', b'"\xc0\xaf"}'), "invalid_utf8"),
        "surrogate_utf8": (obj(input="0x").replace(b'"0x"}', b'"\xed\xa0\x80"}'), "invalid_utf8"),
        "above_10ffff": (obj(input="0x").replace(b'"0x"}', b'"\xf4\x90\x80\x80"}'), "invalid_utf8"),
        "binary_garbage": (b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
                           "invalid_utf8"),
        "number": (b"42", "not_object"),
        "empty_array": (b"[]", "not_object"),
        "array_of_numbers": (b"[1, 2, 3]", "not_object"),
        "missing_gas_price": (obj(gasPrice=None), "missing_field"),
        "missing_hash": (obj(hash=None), "missing_field"),
        "array_with_bad_item": (b"[" + obj() + b", {}]", "missing_field"),
        "bad_hash": (obj(hash="0xZZ"), "invalid_field"),
        "fractional_value": (obj(value="1.5"), "invalid_field"),
        "value_above_2_256": (obj(value=str(2 ** 256)), "invalid_field"),
        "escaped_nul": (obj(input="\u0000"), "invalid_field"),
        "negative_value": (obj(value="-5"), "negative_amount"),
        "negative_gas_price": (obj(gasPrice="-1"), "negative_amount"),
        "oversized": (obj(input="0x" + "ab" * (MAX_MESSAGE_BYTES // 2 + 100)), "too_large"),
    }
    return table[kind]


HOSTILE_KINDS = ["truncated_json", "empty", "null_value", "nul_byte", "trailing_data", "deep_nesting",
                 "overlong_utf8", "surrogate_utf8", "above_10ffff", "binary_garbage", "number", "empty_array",
                 "array_of_numbers", "missing_gas_price", "missing_hash", "array_with_bad_item", "bad_hash",
                 "fractional_value", "value_above_2_256", "escaped_nul", "negative_value", "negative_gas_price",
                 "oversized"]


def good_message(i):
    """good_message — (payload, hash) of a valid legacy-format transaction of the test's own."""
    h = tx_hash(f"chaos-good-{i}")
    return json.dumps({"hash": h, "from": "0x" + "3" * 40, "to": "0x" + "4" * 40, "value": str(10 ** 15 + i),
                       "gas": 21000, "gasPrice": 20 * 10 ** 9, "timestamp": 1704067200 + i,
                       "blockNumber": 19000000 + i}).encode(), h


def dead_letter_metrics(members):
    out = Counter()
    for m in members:
        for k, v in m.metrics().items():
            found = re.match(r'chainwatch_dead_letters_total\{reason="(\w+)"\}', k)
            if found:
                out[found.group(1)] += int(v)
    return out


def test_10k_hostile_messages(chaos):
    """HOSTILE hostile messages of every kind the decoder refuses, one good message after every GOOD_EVERY, across
    all partitions while the stream goes on: each hostile one becomes exactly one dead letter with its reason
    and exact bytes (the dead_letters bound evicting the oldest, status() counting the evictions), every good
    one is loaded, and the daemons do not notice otherwise."""
    rng = random.Random(7)
    (dl_before, evicted_before), = chaos.sql(
        "SELECT s.rows, s.evicted_ttl + s.evicted_size FROM chainwatch.status() s WHERE table_name = 'dead_letters'")
    metrics_before = dead_letter_metrics(chaos.members)
    prod = Producer({"bootstrap.servers": chaos.stack["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 5,
                     "enable.idempotence": True, "message.timeout.ms": 300000})
    delivered, failed = {}, []

    def report(err, msg, what):
        if err is not None:
            failed.append((what[0], str(err)))
        else:
            delivered[(msg.partition(), msg.offset())] = what

    expected_reasons = Counter()
    t0 = time.monotonic()
    good = 0
    for i in range(HOSTILE):
        kind = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
        payload, reason = hostile_payload(kind, i, rng)
        expected_reasons[reason] += 1
        prod.produce(chaos.h.topic, payload, partition=i % PARTITIONS,
                     on_delivery=lambda e, m, w=(kind, payload or b"", reason): report(e, m, w))
        if i % GOOD_EVERY == GOOD_EVERY - 1:
            body, h = good_message(good)
            good += 1
            prod.produce(chaos.h.topic, body, partition=(i * 7) % PARTITIONS,
                         on_delivery=lambda e, m, w=("good", h): report(e, m, w))
        prod.poll(0)
    assert prod.flush(120) == 0, "hostile messages still undelivered"
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:3]}"
    produced_s = time.monotonic() - t0
    for pos, what in delivered.items():
        if what[0] == "good":
            chaos.extra_good.append(what[1])
        else:
            chaos.hostile[pos] = what
    assert len(chaos.hostile) == HOSTILE and len(chaos.extra_good) == good

    result = chaos.checkpoint("hostile messages")  # good ones loaded once, dead letters right, bounds hold
    (dl_after, evicted_after), = chaos.sql(
        "SELECT s.rows, s.evicted_ttl + s.evicted_size FROM chainwatch.status() s WHERE table_name = 'dead_letters'")
    stored = dl_after - dl_before + evicted_after - evicted_before
    assert stored == HOSTILE, (f"{stored} dead letters were stored (rows {dl_before} -> {dl_after}, evicted "
                               f"{evicted_before} -> {evicted_after}) for {HOSTILE} hostile messages")
    assert dl_after <= DEAD_LETTERS_MAX_ROWS and evicted_after > evicted_before
    got_reasons = dead_letter_metrics(chaos.members) - metrics_before
    assert got_reasons == expected_reasons, (f"chainwatch_dead_letters_total grew by {dict(got_reasons)}, "
                                             f"expected {dict(expected_reasons)}")
    chaos.observe("hostile_messages", hostile=HOSTILE, good=good, produce_s=round(produced_s, 1),
                  dead_letters_by_reason=dict(sorted(expected_reasons.items())), dead_letters_kept=dl_after,
                  dead_letters_evicted=evicted_after - evicted_before, **result)


def local_ports(pid):
    """local_ports — the local TCP ports of a process's sockets (its Postgres sessions' client_port)."""
    return {port for port, _ in tcp_sockets(pid)}


def stop_holding_commit_locks(chaos, victim, tries=400):
    """stop_holding_commit_locks — SIGSTOP the victim at a moment one of its writers sits idle in a transaction
    right after commit_batch (holding its row locks on kafka_offsets and partition_state): the worst moment to
    freeze. Retries (SIGCONT, a short random pause, SIGSTOP) up to `tries` times; returns the number of tries,
    or None when it never caught that moment (the victim is left stopped anyway)."""
    rng = random.Random(11)
    for i in range(tries):
        victim.signal(signal.SIGSTOP)
        time.sleep(0.03)  # let a commit_batch the victim sent finish on the server
        ports = local_ports(victim.pid)
        idle = chaos.sql("SELECT client_port FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%' "
                         "AND query LIKE '%%commit_batch%%'")
        if any(port in ports for port, in idle):
            return i + 1
        victim.signal(signal.SIGCONT)
        time.sleep(rng.uniform(0.01, 0.1))
    victim.signal(signal.SIGSTOP)
    return None


def test_sigstop_an_ingestor_past_the_session_timeout(chaos):
    """SIGSTOP one member, caught holding commit_batch's row locks, for longer than its session timeout: its
    sessions' locks are released (idle_in_transaction_session_timeout), the group takes its partitions away,
    the other member owns them all and their committed offsets keep moving; after SIGCONT the paused member
    rejoins and nothing is lost or loaded twice."""
    victim, other = chaos.members[1], chaos.members[0]
    victim_parts = victim.assigned()
    assert victim_parts > 0, chaos.assigned()
    before = chaos.rebalances()
    tries = stop_holding_commit_locks(chaos, victim)
    t0 = time.monotonic()

    def committed():
        return chaos.sql("SELECT coalesce(sum(next_offset), 0) FROM chainwatch.kafka_offsets "
                         "WHERE consumer_group = %s AND topic = %s", chaos.h.group, chaos.h.topic)[0][0]

    try:
        # the victim's locks must not stop the group: the other member commits again long before the takeover
        base = committed()
        wait_for(f"{other.name} to commit again while {victim.name} is frozen", lambda: committed() > base, 60,
                 interval=0.2, on_timeout=lambda: other.tail() + "\n" + "\n".join(
                     str(r) for r in chaos.sql("SELECT pid, state, wait_event_type, now() - state_change, "
                                               "left(query, 60) FROM pg_stat_activity WHERE datname = 'chainwatch' "
                                               "AND state <> 'idle'")))
        unblocked_s = time.monotonic() - t0
        wait_for(f"{other.name} to own all {PARTITIONS} partitions", lambda: other.assigned() == PARTITIONS, 90,
                 interval=0.5, on_timeout=other.tail)
        takeover_s = time.monotonic() - t0
        t_take = time.monotonic()
        stored1 = dict(chaos.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                 "WHERE consumer_group = %s AND topic = %s", chaos.h.group, chaos.h.topic))

        def moved():
            now = dict(chaos.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                 "WHERE consumer_group = %s AND topic = %s", chaos.h.group, chaos.h.topic))
            return sum(1 for p, o in now.items() if o > stored1.get(p, 0))

        # the stream reaches every partition within seconds: most of the victim's partitions move too
        wait_for("committed offsets to move with the victim stopped", lambda: moved() >= PARTITIONS // 2, 90,
                 interval=0.5, on_timeout=lambda: f"moved: {moved()}\n{other.tail()}\n" + "\n".join(
                     str(r) for r in chaos.sql("SELECT pid, usename, state, wait_event_type, wait_event, "
                                               "now() - xact_start, left(query, 80) FROM pg_stat_activity "
                                               "WHERE datname = 'chainwatch' AND state <> 'idle'")))
        moved_s = time.monotonic() - t_take
        time.sleep(max(0.0, 2.5 * SESSION_TIMEOUT_MS / 1000 - (time.monotonic() - t0)))
    finally:
        victim.signal(signal.SIGCONT)
    stopped_s = time.monotonic() - t0
    t_back = time.monotonic()
    assert victim.alive(), victim.tail(40)
    chaos.wait_split("the resumed member to own partitions again", timeout=120)
    rejoin_s = time.monotonic() - t_back
    result = chaos.checkpoint("ingestor paused")
    chaos.observe("sigstop_ingestor", victim_partitions=victim_parts, stopped_s=round(stopped_s, 1),
                  stopped_holding_locks=tries is not None, stop_tries=tries,
                  others_committing_after_s=round(unblocked_s, 1),
                  takeover_s=round(takeover_s, 1), offsets_moving_after_s=round(moved_s, 1),
                  rejoined_after_resume_s=round(rejoin_s, 1), rebalances=chaos.rebalances() - before,
                  assigned=chaos.assigned(), **result)


def txgen_hashes(bin_dir, count, seed):
    """txgen_hashes — Counter of the hashes txgen generates for (count, seed) (output never depends on time)."""
    res = subprocess.run([str(bin_dir / "chainwatch-txgen"), "--count", str(count), "--seed", str(seed)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    return Counter(m.decode().lower() for m in HASH_RE.findall(res.stdout))


def test_everything_produced_is_stored_exactly_once(chaos):
    """Stop the stream (txgen flushes; every message must be delivered), wait for the end, and compare the hash
    multiset of the whole table with the regenerated streams plus the test's own good messages."""
    chaos.txgen.send_signal(signal.SIGTERM)
    try:
        rc = chaos.txgen.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("txgen did not stop within 120 s of SIGTERM")
    chaos.obs["stream_stopped"] = True
    err = chaos.txgen_err.read_text(errors="replace")
    found = re.search(r"delivered (\d+) of (\d+) messages .*?\((\d+) failed", err)
    assert rc == 0 and found, f"txgen exited {rc}: {err[-1000:]}"
    delivered, emitted, failed = map(int, found.groups())
    assert delivered == emitted and failed == 0, err[-1000:]
    chaos.load.stop()
    result = chaos.checkpoint("final")  # also the API check of the last stretch of load

    want = txgen_hashes(chaos.bin_dir, WARMUP, WARMUP_SEED) + txgen_hashes(chaos.bin_dir, emitted, STREAM_SEED) \
        + Counter(chaos.extra_good)
    assert sum(want.values()) == len(want), "the generated streams repeat a hash: the comparison would be weak"
    got = Counter(r[0] for r in chaos.sql("SELECT hash FROM chainwatch.transactions WHERE kafka_topic = %s",
                                          chaos.h.topic))
    broker = Counter(h for pos, h in chaos.mirror.hashes.items() if pos not in chaos.hostile)
    missing, extra = want - got, got - want
    assert not missing and not extra, (f"the table differs from what was produced: {sum(missing.values())} "
                                       f"missing (e.g. {list(missing)[:3]}), {sum(extra.values())} extra or "
                                       f"duplicated (e.g. {list(extra.items())[:3]})")
    # the behavioural state survived the kills exactly as the rows did: the profiles equal a recomputation
    # from the stored transactions (valid while none was evicted, which the bounds report)
    evicted = {t: v[3] + v[4] for t, v in chaos.bounds().items() if t in ("transactions", "address_profiles")}
    assert evicted == {"transactions": 0, "address_profiles": 0}, f"evictions make the recomputation partial: {evicted}"
    differ = chaos.sql("SELECT address, stored, recomputed FROM chainwatch.verify_address_profiles() LIMIT 5")
    n_profiles = chaos.sql("SELECT count(*) FROM chainwatch.address_profiles")[0][0]
    assert n_profiles > 0 and not differ, (f"{n_profiles} address profiles; they differ from a recomputation from "
                                           f"the stored transactions, e.g. {differ}")
    assert broker == want, (f"the broker holds {sum(broker.values())} good messages, txgen and the test produced "
                            f"{sum(want.values())}: {sum((broker - want).values())} duplicated by the producer, "
                            f"{sum((want - broker).values())} lost")
    statuses = Counter(r[2] for r in chaos.load.records)
    chaos.observe("final", produced=sum(want.values()), stream_messages=emitted, stored=sum(got.values()),
                  lost=sum(missing.values()), duplicated=sum(extra.values()),
                  api_requests_total=len(chaos.load.records),
                  api_statuses={str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
                  bounds={t: {"rows": v[1], "max_rows": v[2], "evicted_size": v[4], "evicted_ttl": v[3]}
                          for t, v in chaos.bounds().items()},
                  **result)
    assert chaos.health() == (200, "ok", "ok"), chaos.api_get("/health")
    for m in chaos.members:
        assert m.get("/health/ready")[0] == 200, m.tail()
