#!/usr/bin/python3
"""bench/soak/soak.py — `make soak DURATION=...`: ingest at half the measured capacity plus API load, for a long time.

Design
------
What a soak proves that the other suites do not: that chainwatch *stays* healthy under a steady production-like load
for a long time — memory flat, tables at their bounds and no bigger, consumers keeping up, the API answering
without errors — while partitions are created, expire and are dropped underneath it many times over. Everything
runs on one throwaway stack (bench/soak/run.sh starts it with tools/stack.sh in a temporary directory) on loopback.

Phases, all in one run so that the load is derived from this machine at this moment:

 1. Setup (as the stack's superuser): a 100-tree model trained on every 20th of 2M txgen messages of another
    seed and activated (it flags ~1.5 % of the stream; a short training stretch flags 10-20 %, because txgen's
    base fee random-walks over thousands of blocks); a reader API key; retention shaped for the run (below), and
    the partitions CREATE EXTENSION made dropped and recreated with the new widths — a width change only applies
    to partitions made after it, and the first ones reach hours ahead.
 2. Capacity: CAPACITY_MESSAGES txgen messages produced at full speed, then one `chainwatch-ingestor --drain`
    (the ingestor role, the soak's consumer group) times assignment → drained from its own log, with the
    transactions bound at a third of the batch so that most batches pay the eviction every soak batch pays, and
    with the API and its client load (phase 3) already running, as they will be during the soak. Capacity is
    that rate; the stream runs at half of it, leaving room for what the drain does not pay for — the producer,
    the broker's produce side, this script — and for whatever else shares the 2 cores. A disturbed measurement
    only lowers the load; the doc records the CPU other work used meanwhile.
 3. Soak: two ingestors in one group and one chainwatch-api (Redis on) as the least-privilege roles of
    stack.env; `chainwatch-txgen --rate capacity/2` for DURATION; API_THREADS client threads pacing
    API_RATE requests/s in total over the anomaly list (plain, filtered, next page), one anomaly by a hash just
    listed, /stats and /predict (a fixed pool of 5,000 transactions, so the prediction cache reaches a steady
    size instead of growing for its 2-hour TTL). Each request's status and latency (send to last byte) is kept.
 4. Every INTERVAL (60 s; DURATION/12 for runs under 10 minutes): RSS (VmRSS) of each ingestor, the API, Redis,
    the broker; for Postgres the sum of PSS over the postmaster and its children (RSS would count the shared
    buffers once per backend that touched them, and so "grow" for hours without any leak; the RSS sum is kept
    in the CSV too); what status() reports (rows, bounds, partitions, bytes as pg_total_relation_size over the
    partitions, evictions, oldest row — read with to_regclass, see STORE_SQL), ingest_state counters,
    consumer lag = Σ high watermark − Σ chainwatch.kafka_offsets (offsets read first, so it is an upper bound),
    the largest per-partition lag, API percentiles and status counts for the interval, and CPU: the machine's,
    each component's, and the rest (the "others", with the busiest foreign commands named at the end).
    One line per sample on stdout, one CSV row in build/soak/soak.csv.
 5. End: the producer is stopped, the ingestors drain, a final sample, the exactly-once check, SIGTERM to the
    daemons (each must exit 0), then build/soak/soak.png, build/soak/report.md and — for runs of 30 minutes or
    more, or with SOAK_DOC=1 — docs/soak.png and the block between `<!-- soak:begin -->` and `<!-- soak:end -->`
    of docs/reliability.md (re-read just before writing; nothing else in that file is touched).

Retention is derived from a window W = DURATION/4 clamped to [30 s, 120 s] so every run exercises both paths:
transactions are bounded by rows (max_rows = rate × W, reached within W and then evicted by size on every batch;
TTL 10 W, width W/2), anomalies by age (TTL max(W, 60 s), width TTL/4, max_rows 4× what the TTL should hold at
a 1 % anomaly rate), so partitions expire and are dropped every few minutes while the ingestors write.

The mock broker's retention (librdkafka's mock cluster): each partition keeps ~5 MiB (and at most 100,000 record
batches); appending beyond that drops the oldest batches from the head and moves the log start offset. A fetch
below it gets OFFSET_OUT_OF_RANGE and librdkafka resets to the log start by auto.offset.reset, logging only a
warning ("offset reset ... Offset out of range"), so a consumer that falls that far behind silently skips
messages — and commit_batch() accepts a batch starting after the stored offset. With etherscan messages
(~710 bytes) a partition holds ~7,400 of them. The soak therefore uses 256 partitions (at 15k msg/s that is
~60 msg/s per partition, a good minute of headroom even on the hot partitions of skewed sender keys; more
partitions would cost commit_batch() more per message, since a streaming batch spans most of a writer's
partitions), notes every sample where a partition lags by more than half of it, greps the ingestors' logs for
the reset, and proves at the end that every produced message was ingested although the broker no longer holds
the early ones.

Pass (exit 0) needs all of:
  * alive: every daemon and stack process at every sample; the ingestors and the API exit 0 on SIGTERM at the end;
  * API: no 5xx, no transport error, no 429, no 4xx except 404 for an anomaly evicted between list and lookup;
  * ingest: no dead letter (every message is valid), no error-level line in a daemon log, no offset reset;
  * exactly once: Σ rows ingested (ingest_state) = Σ high watermarks = messages produced; every partition's
    stored next offset = its high watermark; the stored rows have distinct (partition, offset); each partition's
    newest message is stored;
  * bounds, every sample: rows ≤ max_rows + one batch (5,000) for each table; anomalies' oldest row no older than
    TTL + width + 5 min (else expired partitions are not being dropped at all); partitions ≤ ceil(TTL/width) +
    premake + 2; transactions reached 95 % of its bound and was above 90 % at the last sample. How late the TTL
    drops were beyond TTL + width is reported (docs/store.md promises "within one partition width"; maintain()'s
    DDL gives up after a 200 ms lock timeout and retries 10 s later, which under continuous ingest can take
    several rounds), as are maintenance lock timeouts and the errors in the Postgres log (deadlocks, say);
  * lag: its median over the last third of the stream at most 5 s of production (a single sample may catch a
    moment when eight writers are between batches); zero within 120 s after the producer stops;
  * memory and size (runs of 20 minutes or more; shorter ones cannot tell warm-up from growth): for each of our
    daemons, Postgres and Redis, median RSS over the last third − max RSS over the first third ≤ max(16 MiB,
    10 % of that max) — so a process that warms up and plateaus within the first third passes, and one that
    keeps growing does not; the same rule for the bytes of transactions + anomalies with 25 %. The mock broker
    is a log store, not a daemon of ours: its RSS rises until each partition holds its ~5 MiB of messages (in
    the 0.4.0 soak it plateaued near 1.6 GiB for 256 partitions, then rose to 1.9 GiB), so it is held to a bound
    instead: at every sample at most partitions × 10 MiB (twice the messages kept: per-batch copies and the
    allocator) + 128 MiB.
"""
import argparse
import collections
import csv
import datetime
import http.client
import io
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import psycopg2

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from drainlog import steady_seconds  # noqa: E402  (bench/drainlog.py)

TOP = pathlib.Path(__file__).resolve().parents[2]
GROUP = "chainwatch-soak"
CAPACITY_MESSAGES = 300_000
BATCH_SIZE = 5000                # the ingestors' default BATCH_SIZE: the tolerance of a row bound
MOCK_PARTITION_MESSAGES = 7400   # what the mock keeps per partition (~5 MiB of ~710-byte etherscan messages)
API_RATE = 200                   # requests/s in total
API_THREADS = 16                 # each paced at API_RATE/16: a thread waits for its answer, and 4 could not hold
                                 # 200 req/s once p95 passed 100 ms on a saturated machine
PREDICT_POOL = 5000
MEMORY_MIN_S = 20 * 60           # runs shorter than this do not judge memory and size growth
DOC_MIN_S = 30 * 60              # runs shorter than this leave docs/ alone unless SOAK_DOC=1
RSS_TOL_MIB, RSS_TOL_FRAC = 16, 0.10
TTL_LATE_FAIL_S = 300            # an expired partition still there this long after its TTL + width: not dropping
BYTES_TOL_FRAC = 0.25
JUDGED = ("ingestor-1", "ingestor-2", "api", "postgres", "redis")
MOCK_PARTITION_MIB = 10          # the mock's log keeps ~5 MiB of messages per partition; its RSS grows until every
MOCK_BASE_MIB = 128              # partition holds that much, measured at up to ~1.5x that in RSS (per-batch copies,
                                 # allocator): judged against twice that plus a base, not for flatness
KAFKA_JVM_MIB = 512              # the real broker: its heap limit plus this (metaspace, code cache, threads, buffers)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# what chainwatch.status() reports, read so that a partition dropped by maintain() after this statement's snapshot
# is skipped (to_regclass) — status() itself casts with ::regclass and then fails with 42P01 (found by this soak)
STORE_SQL = """
SELECT p.table_name,
       (SELECT coalesce(sum(s.row_count), 0) FROM chainwatch.partition_state s WHERE s.table_name = p.table_name),
       p.max_rows, extract(epoch FROM p.ttl),
       (SELECT count(*) FROM chainwatch.partition_state s WHERE s.table_name = p.table_name),
       extract(epoch FROM now() - CASE p.table_name
                                    WHEN 'anomalies' THEN (SELECT min(a.detected_at) FROM chainwatch.anomalies a)
                                    WHEN 'transactions' THEN (SELECT min(t.detected_at) FROM chainwatch.transactions t)
                                    ELSE (SELECT min(d.received_at) FROM chainwatch.dead_letters d) END),
       (SELECT coalesce(sum(pg_total_relation_size(to_regclass(format('chainwatch.%I', s.partition_name)))), 0)
          FROM chainwatch.partition_state s WHERE s.table_name = p.table_name),
       r.evicted_ttl, r.evicted_size, r.last_maintenance_error
  FROM chainwatch.retention_policies p JOIN chainwatch.retention_stats r USING (table_name)
 ORDER BY p.table_name"""
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def say(msg):
    """say — progress on stderr (stdout carries the per-sample lines)."""
    print(f"soak: {msg}", file=sys.stderr, flush=True)


def free_port():
    """free_port — a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_stack_env(path):
    """parse_stack_env — the `export KEY=VALUE` lines of stack.env as a dict."""
    values = {}
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, raw = line[len("export "):].partition("=")
            words = shlex.split(raw)
            values[key] = words[0] if words else ""
    return values


def percentile(sorted_values, p):
    """percentile — nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


# ---- processes ----------------------------------------------------------------------------------

def proc_table():
    """proc_table — {pid: (comm, ppid, cpu ticks)} for every process, from /proc/PID/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        rpar = stat.rindex(")")
        fields = stat[rpar + 2:].split()
        table[int(entry)] = (stat[stat.index("(") + 1:rpar], int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def proc_mem_kb(pid, key="VmRSS"):
    """proc_mem_kb — VmRSS (or another /proc/PID/status field) in kB; Pss from smaps_rollup; 0 if gone."""
    path = f"/proc/{pid}/smaps_rollup" if key == "Pss" else f"/proc/{pid}/status"
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_alive(pid):
    """proc_alive — the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def machine_ticks():
    """machine_ticks — (busy, total) CPU ticks of the whole machine from /proc/stat."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    total = sum(v[:8])
    return total - v[3] - v[4], total


class Daemon:
    """Daemon — one process this script started, its log, recorded with the stack so `down` stops it."""

    def __init__(self, name, cmd, env, log_dir, stack_dir, stdout_to_log=True):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log if stdout_to_log else subprocess.DEVNULL,
                                     stderr=self.log)
        subprocess.run(["bash", str(TOP / "tools" / "stack.sh"), "record", name, str(self.proc.pid),
                        "--dir", str(stack_dir)], check=False, capture_output=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=45):
        """stop — SIGTERM, wait; returns the exit status (SIGKILL and None after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode


def wait_http(url, timeout=60, proc=None):
    """wait_http — poll url until it answers 200 (fails early if proc exits)."""
    host, _, rest = url.partition("//")[2].partition("/")
    h, _, p = host.partition(":")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode} while waiting for {url}")
        try:
            c = http.client.HTTPConnection(h, int(p), timeout=2)
            c.request("GET", "/" + rest)
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200:
                return body
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def metric_sum(port, name):
    """metric_sum — sum of a Prometheus metric's samples on 127.0.0.1:port/metrics (None if unreachable)."""
    try:
        body = wait_http(f"http://127.0.0.1:{port}/metrics", timeout=5).decode()
    except RuntimeError:
        return None
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- the API load -------------------------------------------------------------------------------

class ApiLoad:
    """ApiLoad — API_THREADS threads pacing `rate` requests/s in total, one keep-alive connection each.

    Requests go out on a fixed schedule (one every threads/rate s per thread); a thread more than 1 s behind
    skips ahead and counts the skip as `late` rather than bursting. Latency is send → last body byte."""

    MIX = ("list", "one", "predict", "list_filtered", "predict", "page", "one", "stats", "predict", "list")

    def __init__(self, port, key, rate, threads, predict_bodies):
        self.port, self.key, self.rate, self.threads = port, key, rate, threads
        self.bodies = predict_bodies
        self.lock = threading.Lock()
        self.records = []                 # (kind, status, seconds, cache) since the last take()
        self.totals = collections.Counter()
        self.error_kinds = collections.Counter()   # "METHOD route: status body" -> count
        self.stop_event = threading.Event()
        self.workers = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for w in self.workers:
            w.start()

    def stop(self):
        self.stop_event.set()
        for w in self.workers:
            w.join(timeout=30)

    def take(self):
        """take — the records since the last call (the sampler owns the result)."""
        with self.lock:
            out, self.records = self.records, []
        return out

    def request_for(self, kind, state, n):
        """request_for — (kind, method, path, body) of the n-th request of one thread; a lookup or next page
        with nothing listed yet becomes a plain list."""
        if kind == "one" and state["hashes"]:
            return kind, "GET", "/api/v1/anomalies/" + state["hashes"][n % len(state["hashes"])], None
        if kind == "page" and state["cursor"]:
            return kind, "GET", "/api/v1/anomalies?limit=100&cursor=" + state["cursor"], None
        if kind == "list_filtered":
            return kind, "GET", ("/api/v1/anomalies?severity=high,critical&limit=50" if n % 2
                                 else "/api/v1/anomalies?min_score=0.65&limit=20"), None
        if kind == "stats":
            return kind, "GET", "/api/v1/stats?window=15m", None
        if kind == "predict":
            return kind, "POST", "/api/v1/predict", self.bodies[(n * 7919 + state["salt"]) % len(self.bodies)]
        return "list", "GET", "/api/v1/anomalies?limit=100", None

    def worker(self, idx):
        """worker — one client thread; see the class comment."""
        interval = self.threads / self.rate
        next_t = time.monotonic() + idx * interval / self.threads
        state = {"hashes": [], "cursor": None, "salt": idx * 1237}
        conn = None
        n = idx
        headers = {"X-API-Key": self.key, "Content-Type": "application/json"}
        while not self.stop_event.is_set():
            now = time.monotonic()
            if next_t > now:
                if self.stop_event.wait(next_t - now):
                    break
            elif now - next_t > 1.0:
                next_t = now
                with self.lock:
                    self.totals["late"] += 1
            next_t += interval
            kind, method, path, body = self.request_for(self.MIX[n % len(self.MIX)], state, n)
            n += 1
            t = time.perf_counter()
            cache = ""
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                cache = resp.getheader("X-Cache", "")
                if (resp.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                status, data = 0, b""
                if conn is not None:
                    conn.close()
                conn = None
                with self.lock:
                    self.error_kinds[f"{method} {path.split('?')[0]}: {type(e).__name__}: {e}"[:300]] += 1
            elapsed = time.perf_counter() - t
            if status >= 400 and status != 404:
                route = path.split("?")[0] if kind != "one" else "/api/v1/anomalies/{hash}"
                with self.lock:
                    self.error_kinds[f"{method} {route}: {status} {data[:200].decode(errors='replace')}"] += 1
            if kind in ("list", "page") and status == 200:
                try:
                    doc = json.loads(data)
                    hashes = [a["hash"] for a in doc.get("data") or []]
                    if hashes:
                        state["hashes"] = hashes[:50]
                    state["cursor"] = doc.get("next_cursor")
                except (ValueError, KeyError, TypeError):
                    pass
            with self.lock:
                self.records.append((kind, status, elapsed, cache))
                self.totals["requests"] += 1
                self.totals[f"status_{status}"] += 1
        if conn is not None:
            conn.close()


def summarize_requests(records):
    """summarize_requests — counts and latency percentiles (ms) of a list of API records."""
    lat = sorted(r[2] * 1000 for r in records)
    s = {"requests": len(records),
         "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
         "max": lat[-1] if lat else None,
         "s5xx": sum(1 for r in records if r[1] >= 500),
         "transport": sum(1 for r in records if r[1] == 0),
         "s429": sum(1 for r in records if r[1] == 429),
         "s404_one": sum(1 for r in records if r[1] == 404 and r[0] == "one"),
         "s4xx_bad": sum(1 for r in records if 400 <= r[1] < 500 and r[1] != 429
                         and not (r[1] == 404 and r[0] == "one")),
         "hits": sum(1 for r in records if r[3] == "HIT")}
    s["errors"] = s["s5xx"] + s["transport"] + s["s429"] + s["s4xx_bad"]
    by_kind = collections.defaultdict(list)
    for r in records:
        by_kind[r[0]].append(r[2] * 1000)
    s["p99_by_kind"] = {k: percentile(sorted(v), 99) for k, v in sorted(by_kind.items())}
    return s


# ---- the soak -----------------------------------------------------------------------------------

class Soak:
    """Soak — the whole run; see the module docstring."""

    def __init__(self, args):
        self.args = args
        self.stack_dir = pathlib.Path(args.stack_dir)
        self.env = parse_stack_env(self.stack_dir / "stack.env")
        self.bin = pathlib.Path(args.bin)
        self.out = pathlib.Path(args.out)
        self.logs = self.out / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.topic = self.env["KAFKA_TOPIC"]
        self.boot = self.env["KAFKA_BOOTSTRAP_SERVERS"]
        self.daemons = {}
        self.failures = []
        self.sample_failures = {}
        self.notes = []
        self.rows = []
        self.load = None
        self.txgen = None
        # the broker: Apache Kafka's first node (kafka-1) or the mock (kafka-mock), as DIR/kafka/nodes names them
        self.mock = self.env.get("CHAINWATCH_KAFKA") == "mock"
        node = (self.stack_dir / "kafka" / "nodes").read_text().split()[0]
        self.broker_desc = ("librdkafka's mock broker" if self.mock else
                            f"Apache Kafka {self.env.get('CHAINWATCH_KAFKA_VERSION', '?')} broker (KRaft)")
        self.stack_pids = {n: int(open(self.stack_dir / "pids" / f"{f}.pid").readline())
                           for n, f in (("postgres", "postgres"), ("redis", "redis"), ("kafka", node))}
        self.db = psycopg2.connect(self.env["DATABASE_URL"])
        self.db.autocommit = True
        self.wm = Consumer({"bootstrap.servers": self.boot, "group.id": "soak-watermarks",
                            "enable.auto.commit": False})
        self.partitions = sorted(self.wm.list_topics(self.topic, timeout=10).topics[self.topic].partitions)
        self.prev_ticks = None
        self.foreign_cpu = collections.Counter()
        self.latencies = collections.defaultdict(list)   # kind -> ms of every request of the stream

    # -- helpers --

    def sql(self, query, args=(), attempts=1):
        """sql — one statement on the superuser connection (autocommit); retried `attempts` times."""
        for attempt in range(attempts):
            try:
                with self.db.cursor() as cur:
                    cur.execute(query, args or None)
                    return cur.fetchall() if cur.description else None
            except psycopg2.Error as e:
                if attempt + 1 == attempts:
                    raise
                say(f"monitoring query failed ({e.pgcode}: {str(e).strip().splitlines()[0]}); retrying")
                time.sleep(0.5)

    def base_env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def ingestor_env(self, **extra):
        return self.base_env(DATABASE_URL=self.env["INGESTOR_DATABASE_URL"], KAFKA_BOOTSTRAP_SERVERS=self.boot,
                             KAFKA_TOPIC=self.topic, KAFKA_GROUP_ID=GROUP, LOG_FORMAT="json", **extra)

    def fail(self, msg):
        if msg not in self.failures:
            self.failures.append(msg)
            say(f"FAIL: {msg}")

    def watermarks(self):
        """watermarks — {partition: (low, high)} from the broker: ListOffsets with the timestamps -2 (earliest)
        and -1 (latest), one request per broker for all partitions (per-partition queries took up to 13 s on a
        saturated machine, which made the lag look that much larger)."""
        tps = [TopicPartition(self.topic, p, -2) for p in self.partitions]
        low = {tp.partition: tp.offset for tp in self.wm.offsets_for_times(tps, timeout=10)}
        tps = [TopicPartition(self.topic, p, -1) for p in self.partitions]
        high = {tp.partition: tp.offset for tp in self.wm.offsets_for_times(tps, timeout=10)}
        return {p: (max(0, low[p]), max(0, high[p])) for p in self.partitions}

    def txgen_lines(self, count, seed):
        """txgen_lines — count etherscan messages of one seed, as bytes lines."""
        out = subprocess.run([str(self.bin / "chainwatch-txgen"), "--count", str(count), "--seed", str(seed),
                              "--format", "etherscan"], check=True, capture_output=True).stdout
        return out.splitlines()

    # -- phase 1 --

    def setup(self):
        """setup — model, API key, retention shaped for the run (see the module docstring)."""
        d = self.args.duration
        self.window = int(min(120, max(30, d / 4)) // 5 * 5)
        w = self.window
        self.ret = {
            "transactions": {"ttl": max(10 * w, 300), "width": max(10, w // 2)},
            "anomalies": {"ttl": max(60, w), "width": max(10, max(60, w) // 4)},
        }
        # every 20th of 2M messages: txgen's base fee random-walks over thousands of blocks, and a model trained
        # on a short stretch flags 10-20 % of another stretch (measured); this one flags ~1.5 %
        say("training a 100-tree model on every 20th of 2,000,000 txgen messages (seed 101)")
        gen = subprocess.Popen([str(self.bin / "chainwatch-txgen"), "--count", "2000000", "--seed", "101",
                                "--format", "etherscan"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        rows = []
        for i, line in enumerate(gen.stdout):
            if i % 20 == 0:
                m = json.loads(line)
                rows.append(f"{m['value']}\t{m['gas']}\t{m['gasPrice']}\n")
        if gen.wait() != 0:
            raise RuntimeError(f"chainwatch-txgen exited {gen.returncode}")
        with self.db.cursor() as cur:
            cur.execute("CREATE TEMP TABLE soak_train (v numeric, g numeric, p numeric)")
            cur.copy_expert("COPY soak_train FROM STDIN", io.StringIO("".join(rows)))
            cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('soak', "
                        "'SELECT v, g, p FROM soak_train'))")
            self.model_id = cur.fetchone()[0]
        self.key = self.sql("SELECT chainwatch.create_api_key('soak', 'reader')")[0][0]
        for table, r in self.ret.items():
            self.sql("SELECT chainwatch.set_retention(%s, ttl => make_interval(secs => %s), "
                     "partition_width => make_interval(secs => %s))", (table, r["ttl"], r["width"]))
            r["premake"] = self.sql("SELECT premake FROM chainwatch.retention_policies WHERE table_name = %s",
                                    (table,))[0][0]
        # the partitions CREATE EXTENSION made keep their old width for hours: replace them (still empty)
        deadline = time.time() + 60
        while True:
            try:
                with self.db.cursor() as cur:
                    cur.execute("BEGIN; SET LOCAL lock_timeout = '2s'")
                    cur.execute("SELECT chainwatch._drop_partition(partition_name, 'ttl') "
                                "  FROM chainwatch.partition_state s "
                                " WHERE s.table_name IN ('transactions', 'anomalies') AND s.row_count = 0 "
                                "   AND s.upper_bound - s.lower_bound <> (SELECT p.partition_width "
                                "          FROM chainwatch.retention_policies p WHERE p.table_name = s.table_name)")
                    cur.execute("COMMIT")
                self.sql("SELECT count(*) FROM chainwatch.maintain()")
                ok = self.sql("SELECT count(*) FROM chainwatch.partition_state s "
                              " WHERE s.table_name IN ('transactions', 'anomalies') "
                              "   AND s.lower_bound <= now() AND s.upper_bound > now()")[0][0]
                if ok == 2:
                    break
            except psycopg2.Error as e:
                self.sql("ROLLBACK")
                say(f"re-partitioning: {e.pgerror or e}; retrying")
            if time.time() > deadline:
                raise RuntimeError("could not recreate the partitions with the soak's widths")
            time.sleep(1)
        say(f"model {self.model_id} active; retention window W = {w} s: "
            + "; ".join(f"{t} TTL {r['ttl']} s, width {r['width']} s" for t, r in self.ret.items()))

    # -- phase 2 --

    def measure_capacity(self):
        """measure_capacity — produce CAPACITY_MESSAGES, drain them with one ingestor, msgs/s from its log.

        The transactions bound is set to a third of the batch for this, so two thirds of the batches pay the
        eviction that every batch of the soak pays (measured: without it the rate is ~1.5x higher and half of it
        is not sustainable at the bound)."""
        n = self.args.capacity_messages
        self.sql("SELECT chainwatch.set_retention('transactions', max_rows => %s)", (n // 3,))
        t0 = time.perf_counter()
        subprocess.run([str(self.bin / "chainwatch-txgen"), "--brokers", self.boot, "--topic", self.topic,
                        "--count", str(n), "--seed", "1", "--format", "etherscan"], check=True, capture_output=True)
        produce_s = time.perf_counter() - t0
        say(f"capacity: produced {n:,} messages in {produce_s:.1f} s; draining with one ingestor")
        cpu0, table0 = machine_ticks(), proc_table()
        t0 = time.perf_counter()
        d = Daemon("capacity-drain", [str(self.bin / "chainwatch-ingestor"), "--drain"],
                   self.ingestor_env(METRICS_PORT=0, KAFKA_SESSION_TIMEOUT_MS=6000), self.logs, self.stack_dir)
        rc = d.proc.wait(timeout=600)
        wall = time.perf_counter() - t0
        d.log.close()
        cpu1, table1 = machine_ticks(), proc_table()
        if rc != 0:
            raise RuntimeError(f"the capacity drain exited {rc}; see {d.log_path}")
        steady = steady_seconds(d.log_path) or wall
        stored = self.sql("SELECT rows_ingested FROM chainwatch.ingest_state")[0][0]
        if stored != n:
            self.fail(f"capacity drain stored {stored:,} rows of {n:,} produced")
        self.capacity = n / steady
        self.rate = int(self.args.rate or self.capacity / 2)
        # CPU the rest of the machine used meanwhile (everything but the stack's processes and the drain)
        mine = self.soak_pids(table1) | {d.pid}
        other = sum(table1[p][2] - table0.get(p, (0, 0, 0))[2] for p in table1 if p not in mine)
        self.capacity_info = {"messages": n, "produce_s": produce_s, "wall_s": wall, "steady_s": steady,
                              "machine_cores": (cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]) * os.cpu_count(),
                              "other_cores": other / CLK_TCK / wall, "load": os.getloadavg()[0]}
        say(f"capacity: {self.capacity:,.0f} msg/s (drained in {steady:.1f} s from assignment, {wall:.1f} s "
            f"wall; other work used {self.capacity_info['other_cores']:.2f} cores meanwhile) → stream at "
            f"{self.rate:,} msg/s")

    # -- phase 3 --

    def start_api(self):
        """start_api — chainwatch-api (Redis on, the API role) and the client load, which runs from here on:
        the capacity drain competes with it as the soak's ingestors will."""
        self.api_port = free_port()
        self.daemons["api"] = Daemon(
            "api", [str(self.bin / "chainwatch-api")],
            self.base_env(DATABASE_URL=self.env["API_DATABASE_URL"], API_PORT=self.api_port,
                          REDIS_HOST=self.env["REDIS_HOST"], REDIS_PORT=self.env["REDIS_PORT"],
                          RATE_LIMIT_RPS=100000, RATE_LIMIT_BURST=100000, LOG_FORMAT="json"),
            self.logs, self.stack_dir)
        wait_http(f"http://127.0.0.1:{self.api_port}/health/ready", proc=self.daemons["api"].proc)
        self.load = ApiLoad(self.api_port, self.key, self.args.api_rate, API_THREADS,
                            self.txgen_lines(PREDICT_POOL, 3))
        self.load.start()

    def start_ingestors(self):
        """start_ingestors — retention bounds for the rate, two ingestors; waits until both own partitions."""
        w = self.window
        self.ret["transactions"]["max_rows"] = self.rate * w
        a = self.ret["anomalies"]
        a["max_rows"] = max(1000, int(4 * 0.01 * self.rate * (a["ttl"] + a["width"])))
        for table in ("transactions", "anomalies"):
            self.sql("SELECT chainwatch.set_retention(%s, max_rows => %s)", (table, self.ret[table]["max_rows"]))
        self.ret["dead_letters"] = {}
        self.metrics_ports = {}
        for i in (1, 2):
            port = free_port()
            self.metrics_ports[f"ingestor-{i}"] = port
            self.daemons[f"ingestor-{i}"] = Daemon(
                f"ingestor-{i}", [str(self.bin / "chainwatch-ingestor")],
                self.ingestor_env(METRICS_PORT=port, METRICS_BIND="127.0.0.1"), self.logs, self.stack_dir)
        deadline = time.time() + 90
        while True:
            owned = [metric_sum(p, "chainwatch_ingest_partitions_assigned") for p in self.metrics_ports.values()]
            if all(o is not None for o in owned) and sum(owned) == len(self.partitions) and min(owned) > 0:
                break
            for name in self.metrics_ports:
                if not self.daemons[name].alive():
                    raise RuntimeError(f"{name} exited {self.daemons[name].proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(f"the ingestors own {owned} of {len(self.partitions)} partitions after 90 s")
            time.sleep(0.5)
        say(f"two ingestors own {owned} partitions; bounds: transactions "
            f"{self.ret['transactions']['max_rows']:,} rows, anomalies {a['max_rows']:,} rows / TTL {a['ttl']} s")

    def soak_pids(self, table):
        """soak_pids — the pids of everything this soak runs: the stack, its daemons, this process."""
        pids = {os.getpid(), self.stack_pids["redis"], self.stack_pids["kafka"], self.stack_pids["postgres"]}
        pids |= {p for p, (_, ppid, _) in table.items() if ppid == self.stack_pids["postgres"]}
        pids |= {d.pid for d in self.daemons.values()}
        if self.txgen:
            pids.add(self.txgen.pid)
        return pids

    def cpu_groups(self, table, pg):
        """cpu_groups — {group: pids} for the per-component CPU columns."""
        groups = {"ingestors": [d.pid for n, d in self.daemons.items() if n.startswith("ingestor")],
                  "api": [self.daemons["api"].pid] if "api" in self.daemons else [],
                  "postgres": pg, "broker": [self.stack_pids["kafka"]], "redis": [self.stack_pids["redis"]],
                  "txgen": [self.txgen.pid] if self.txgen else [], "client": [os.getpid()]}
        return groups

    # -- phase 4 --

    def sample(self, t):
        """sample — one row of measurements at t seconds into the stream (see the module docstring)."""
        row = {"t_s": round(t, 1), "wall": datetime.datetime.utcnow().strftime("%H:%M:%S")}
        now = time.monotonic()
        table = proc_table()
        pm = self.stack_pids["postgres"]
        pg = [pm] + [p for p, (_, ppid, _) in table.items() if ppid == pm]
        rss = {n: proc_mem_kb(d.pid) for n, d in self.daemons.items()}
        rss["postgres"] = sum(proc_mem_kb(p, "Pss") for p in pg)
        rss["postgres_rss_sum"] = sum(proc_mem_kb(p) for p in pg)
        rss["redis"] = proc_mem_kb(self.stack_pids["redis"])
        rss["broker"] = proc_mem_kb(self.stack_pids["kafka"])
        rss["txgen"] = proc_mem_kb(self.txgen.pid) if self.txgen else 0
        rss["client"] = proc_mem_kb(os.getpid())
        for k, v in rss.items():
            row[f"mem_{k.replace('-', '')}_mib"] = round(v / 1024, 1)
        row["pg_procs"] = len(pg)
        # CPU since the previous sample: machine, ours, others (and which others)
        ticks = machine_ticks()
        mine = self.soak_pids(table)
        if self.prev_ticks:
            (b0, t0), table0, then = self.prev_ticks
            dt = max(0.001, now - then)
            row["cpu_machine"] = round((ticks[0] - b0) / max(1, ticks[1] - t0) * os.cpu_count(), 2)
            ours = sum(table[p][2] - table0.get(p, (0, 0, 0))[2] for p in table if p in mine)
            row["cpu_soak"] = round(ours / CLK_TCK / dt, 2)
            row["cpu_others"] = round(max(0.0, row["cpu_machine"] - row["cpu_soak"]), 2)
            for group, pids in self.cpu_groups(table, pg).items():
                used = sum(table[p][2] - table0.get(p, (0, 0, 0))[2] for p in pids if p in table)
                row[f"cpu_{group}"] = round(used / CLK_TCK / dt, 2)
            for p, (comm, _, tk) in table.items():
                if p not in mine:   # a process born since the last sample counts whole
                    self.foreign_cpu[comm] += (tk - table0.get(p, (0, 0, 0))[2]) / CLK_TCK
        self.prev_ticks = (ticks, table, now)
        row["load1"] = round(os.getloadavg()[0], 2)
        # the store
        for name, rows, max_rows, ttl, parts, age, nbytes, ev_ttl, ev_size, merr in self.sql(STORE_SQL, attempts=3):
            short = {"transactions": "tx", "anomalies": "an", "dead_letters": "dl"}[name]
            rows, max_rows, parts, nbytes = int(rows), int(max_rows), int(parts), int(nbytes)
            row.update({f"{short}_rows": rows, f"{short}_max": max_rows, f"{short}_parts": parts,
                        f"{short}_mib": round(nbytes / 2**20, 1), f"{short}_oldest_s": round(float(age or 0), 1),
                        f"{short}_evicted_ttl": ev_ttl, f"{short}_evicted_size": ev_size})
            if merr:
                row[f"{short}_maint_error"] = merr
        ing, anom, dead = self.sql("SELECT rows_ingested, anomalies_ingested, dead_letters_ingested "
                                   "FROM chainwatch.ingest_state")[0]
        stored = dict(self.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                               "WHERE consumer_group = %s AND topic = %s", (GROUP, self.topic)))
        wm = self.watermarks()       # after the offsets: the lag is an upper bound
        produced = sum(hi for _, hi in wm.values())
        lags = [hi - stored.get(p, 0) for p, (_, hi) in wm.items()]
        row.update({"produced": produced, "ingested": ing, "anomalies_ingested": anom, "dead_letters": dead,
                    "lag": sum(lags), "lag_max_partition": max(lags),
                    "broker_dropped": sum(lo for lo, _ in wm.values())})
        prev = self.rows[-1] if self.rows else None
        if prev and t - prev["t_s"] > 0:
            row["produced_rate"] = round((produced - prev["produced"]) / (t - prev["t_s"]))
            row["ingest_rate"] = round((ing - prev["ingested"]) / (t - prev["t_s"]))
        # the API
        records = self.load.take() if self.load else []
        if t > 0:
            for kind, status, seconds, _ in records:
                self.latencies[kind].append(seconds * 1000)
        s = summarize_requests(records)
        row.update({"api_requests": s["requests"], "api_p50_ms": s["p50"], "api_p95_ms": s["p95"],
                    "api_p99_ms": s["p99"], "api_max_ms": s["max"], "api_5xx": s["s5xx"],
                    "api_transport": s["transport"], "api_429": s["s429"], "api_4xx_bad": s["s4xx_bad"],
                    "api_404_one": s["s404_one"], "api_errors": s["errors"],
                    "api_hit": round(s["hits"] / s["requests"], 2) if s["requests"] else None})
        for k in ("api_p50_ms", "api_p95_ms", "api_p99_ms", "api_max_ms"):
            if row[k] is not None:
                row[k] = round(row[k], 2)
        for kind, p99 in s["p99_by_kind"].items():
            row[f"api_p99_{kind}_ms"] = round(p99, 2)
        # liveness
        dead_procs = [n for n, d in self.daemons.items() if not d.alive()]
        dead_procs += [n for n, p in self.stack_pids.items() if not proc_alive(p)]
        if self.txgen and not self.txgen.alive() and not getattr(self, "stream_stopped", False):
            dead_procs.append("txgen")
        row["dead"] = " ".join(dead_procs)
        row["sample_s"] = round(time.monotonic() - now, 2)
        return row

    def fail_sample(self, kind, row, count, detail):
        """fail_sample — a per-sample rule broken: printed now, one failure line per kind at the end."""
        entry = self.sample_failures.setdefault(kind, {"samples": [], "total": 0, "detail": detail})
        entry["samples"].append(row["t_s"])
        entry["total"] += count
        say(f"FAIL at t={row['t_s']:.0f}s: {kind}: {detail}")

    def sample_failure_lines(self):
        """sample_failure_lines — the per-sample failures, one line per kind."""
        out = []
        for kind, e in self.sample_failures.items():
            n = len(e["samples"])
            total = f", {e['total']:,} in all" if e["total"] > n else ""
            out.append(f"{kind} at {n} sample(s) from t={e['samples'][0]:.0f} s{total} (first: {e['detail']})")
        return out

    def check_row(self, row, in_stream):
        """check_row — the per-sample pass rules (bounds, lag, liveness, API errors)."""
        if row["dead"]:
            self.fail_sample("processes not running", row, 1, row["dead"])
        for short, table in (("tx", "transactions"), ("an", "anomalies"), ("dl", "dead_letters")):
            if row[f"{short}_rows"] > row[f"{short}_max"] + BATCH_SIZE:
                self.fail_sample(f"{table} over its bound", row, 1,
                                 f"{row[f'{short}_rows']:,} rows, bound {row[f'{short}_max']:,}")
            r = self.ret.get(table, {})
            if "ttl" in r:
                limit = math.ceil(r["ttl"] / r["width"]) + r["premake"] + 2
                if row[f"{short}_parts"] > limit:
                    self.fail_sample(f"{table} partitions over {limit}", row, 1, f"{row[f'{short}_parts']}")
        a = self.ret["anomalies"]
        if row["an_oldest_s"] > a["ttl"] + a["width"] + TTL_LATE_FAIL_S:
            self.fail_sample(f"anomalies older than TTL + width + {TTL_LATE_FAIL_S} s", row, 1,
                             f"{row['an_oldest_s']:.0f} s (TTL {a['ttl']} s, width {a['width']} s)")
        self.ttl_late = max(getattr(self, "ttl_late", 0), row["an_oldest_s"] - a["ttl"] - a["width"])
        if row["dead_letters"]:
            self.fail_sample("dead letters from valid messages", row, row["dead_letters"], f"{row['dead_letters']}")
        if self.mock and in_stream and row["lag_max_partition"] > MOCK_PARTITION_MESSAGES // 2:
            self.notes.append(f"at t={row['t_s']:.0f} s a partition lagged by {row['lag_max_partition']:,} messages "
                              f"(the mock keeps ~{MOCK_PARTITION_MESSAGES:,})")
        for k, what in (("api_5xx", "API 5xx responses"), ("api_transport", "API transport errors"),
                        ("api_429", "API 429 responses"), ("api_4xx_bad", "unexpected API 4xx responses")):
            if row[k]:
                self.fail_sample(what, row, row[k], f"{row[k]} in the interval")

    def print_row(self, row):
        def f(v, spec=",.0f"):
            return "-" if v is None else format(v, spec)
        print(f"[{row['wall']}] t={row['t_s']:6.0f}s prod {f(row.get('produced_rate'))}/s ing "
              f"{f(row.get('ingest_rate'))}/s lag {row['lag']:,} (max/part {row['lag_max_partition']:,}) | tx "
              f"{row['tx_rows']:,}/{row['tx_max']:,} {row['tx_parts']}p {row['tx_mib']:.0f}MiB | an {row['an_rows']:,} "
              f"{row['an_parts']}p oldest {row['an_oldest_s']:.0f}s | RSS MiB ing {row['mem_ingestor1_mib']:.0f}/"
              f"{row['mem_ingestor2_mib']:.0f} api {row['mem_api_mib']:.0f} pg(pss) {row['mem_postgres_mib']:.0f} "
              f"redis {row['mem_redis_mib']:.0f} broker {row['mem_broker_mib']:.0f} | api {row['api_requests']} req "
              f"p50/95/99 {f(row['api_p50_ms'], '.1f')}/{f(row['api_p95_ms'], '.1f')}/{f(row['api_p99_ms'], '.1f')}"
              f" ms err {row['api_errors']} | cpu others {f(row.get('cpu_others'), '.2f')}", flush=True)

    def run_stream(self):
        """run_stream — txgen at the rate and the API load for the duration, sampling every interval."""
        d = self.args.duration
        interval = self.args.interval or (60 if d >= 600 else max(5, d // 12))
        self.interval = interval
        self.csv_path = self.out / "soak.csv"
        # linger.ms=100: ~6 messages per record batch per partition instead of ~1 (the mock's work is per batch:
        # with 10 ms it used 0.4 cores and, starved, answered produce requests only after a minute); and a starved
        # broker gets 2 minutes to acknowledge rather than failing the deliveries after 30 s
        self.txgen = Daemon("txgen", [str(self.bin / "chainwatch-txgen"), "--count", "0", "--rate", str(self.rate),
                                      "--seed", "2", "--format", "etherscan", "--brokers", self.boot,
                                      "--topic", self.topic, "--kafka-conf", "linger.ms=100",
                                      "--kafka-conf", "message.timeout.ms=120000"],
                            self.base_env(), self.logs, self.stack_dir)
        self.sample(0)  # primes the CPU counters, drops the capacity phase's API records
        with self.load.lock:
            self.load.totals.clear()
            self.load.error_kinds.clear()
        self.t0 = time.monotonic()
        self.stream_started_at = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S")
        say(f"streaming {self.rate:,} msg/s and {self.args.api_rate} API req/s for {d} s, a sample every "
            f"{interval} s")
        first = self.sample(0)
        self.rows.append(first)
        k = 1
        while True:
            target = self.t0 + k * interval
            if target > self.t0 + d + 0.5:
                break
            if time.monotonic() > target + interval / 2:   # a slow sample: skip the slot rather than bunch up
                k += 1
                continue
            time.sleep(max(0, target - time.monotonic()))
            row = self.sample(time.monotonic() - self.t0)
            self.rows.append(row)
            self.check_row(row, in_stream=True)
            self.print_row(row)
            self.write_csv()
            if row["dead"]:
                say("a process died: ending the run early")
                break
            k += 1
        self.last_stream_row = self.rows[-1]
        # stop the producer, let the ingestors drain, then a final sample
        self.stream_stopped = True
        self.txgen.stop(timeout=60)
        tail = open(self.txgen.log_path).read()
        m = re.search(r"delivered (\d+) of (\d+) messages.*?\((\d+) failed", tail)
        self.stream_delivered = int(m.group(1)) if m else None
        self.stream_failed = int(m.group(3)) if m else None
        if not m:
            self.fail(f"txgen did not report its deliveries: {tail.strip().splitlines()[-1:]}")
        elif self.stream_failed:
            self.notes.append(f"txgen could not deliver {self.stream_failed:,} messages within 2 minutes (the "
                              "mock broker was starved of CPU); they were never in the topic, so they are not "
                              "part of the exactly-once count")
        t_stop = time.monotonic()
        drained_in = None
        while time.monotonic() - t_stop < 120:
            stored = self.sql("SELECT coalesce(sum(next_offset), 0) FROM chainwatch.kafka_offsets "
                              "WHERE consumer_group = %s AND topic = %s", (GROUP, self.topic))[0][0]
            if stored == sum(hi for _, hi in self.watermarks().values()):
                drained_in = time.monotonic() - t_stop
                break
            time.sleep(0.5)
        self.drained_in = drained_in
        if drained_in is None:
            self.fail("the ingestors did not catch up within 120 s after the producer stopped")
        row = self.sample(time.monotonic() - self.t0)
        row["final"] = True
        self.rows.append(row)
        self.check_row(row, in_stream=False)
        self.print_row(row)
        self.load.stop()
        self.write_csv()

    def write_csv(self):
        keys = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with open(self.csv_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    # -- phase 5 --

    def final_checks(self):
        """final_checks — exactly once, lag, bounds reached, logs, clean shutdown, memory and size growth."""
        wm = self.watermarks()
        produced = sum(hi for _, hi in wm.values())
        self.produced = produced
        stored = dict(self.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                               "WHERE consumer_group = %s AND topic = %s", (GROUP, self.topic)))
        ingested, dead = self.sql("SELECT rows_ingested, dead_letters_ingested FROM chainwatch.ingest_state")[0]
        self.ingested = ingested
        n, distinct_pos, distinct_hash = self.sql(
            "SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)), count(DISTINCT hash) "
            "FROM chainwatch.transactions")[0]
        newest = dict(self.sql("SELECT kafka_partition, max(kafka_offset) FROM chainwatch.transactions "
                               "WHERE kafka_topic = %s GROUP BY 1", (self.topic,)))
        behind = [p for p, (_, hi) in wm.items() if stored.get(p, 0) != hi]
        missing_tail = [p for p, (_, hi) in wm.items() if hi > 0 and newest.get(p) != hi - 1]
        expected = self.args.capacity_messages + (self.stream_delivered or 0)
        self.exactly_once = {
            "produced": produced, "expected": expected, "ingested": ingested, "dead_letters": dead,
            "stored_rows": n, "distinct_positions": distinct_pos, "distinct_hashes": distinct_hash,
            "partitions_behind": len(behind), "partitions_missing_newest": len(missing_tail),
            "broker_dropped": sum(lo for lo, _ in wm.values()),
        }
        # the broker's high watermarks are the truth for "produced" (a producer retry after a lost
        # acknowledgement appends twice); txgen's own count is shown beside it
        ok = produced == ingested and dead == 0 and n == distinct_pos and not behind and not missing_tail
        self.exactly_once["ok"] = ok
        if not ok:
            self.fail(f"exactly once: {self.exactly_once}")
        # lag over the last third of the stream (a median: one sample can catch a batch boundary of 8 writers)
        last = self.last_stream_row
        lags = sorted(r["lag"] for r in self.thirds()[1])
        self.lag_last_third = lags[len(lags) // 2]
        if self.lag_last_third > 5 * self.rate:
            self.fail(f"median lag over the last third of the stream: {self.lag_last_third:,} messages "
                      "(> 5 s of production)")
        # the row bound was reached and held
        txmax = max(r["tx_rows"] for r in self.rows)
        if txmax < 0.95 * self.ret["transactions"]["max_rows"]:
            self.fail(f"transactions never reached its bound ({txmax:,} of {self.ret['transactions']['max_rows']:,})")
        elif last["tx_rows"] < 0.9 * self.ret["transactions"]["max_rows"]:
            self.fail(f"transactions fell to {last['tx_rows']:,} rows at the end of the stream")
        if not self.rows[-1]["an_evicted_ttl"] and self.args.duration >= 120:
            self.notes.append("no anomaly was evicted by TTL")
        # logs: errors, offset resets, warnings
        self.log_findings = {}
        for name, d in self.daemons.items():
            errors, warns, resets = [], collections.Counter(), 0
            for line in open(d.log_path, errors="replace"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    if line.strip():
                        errors.append(line.strip()[:200])
                    continue
                msg = rec.get("msg", "")
                if "Offset out of range" in msg or "offset reset" in msg:
                    resets += 1
                if rec.get("level") == "error":
                    errors.append(msg[:200])
                elif rec.get("level") == "warn":
                    warns[re.sub(r"\d+", "N", msg)[:120]] += 1
            self.log_findings[name] = {"errors": errors, "warns": warns, "resets": resets}
            if errors:
                self.fail(f"{name} logged {len(errors)} error(s), first: {errors[0]}")
            if resets:
                self.fail(f"{name}: {resets} offset reset(s): read a range the broker had dropped")
        # ingest metrics before the daemons go
        self.db_errors = {n: metric_sum(p, "chainwatch_ingest_db_errors_total") for n, p in self.metrics_ports.items()}
        self.api_totals = dict(self.load.totals)
        with self.load.lock:
            self.api_errors = self.load.error_kinds.most_common(8)
        for e, n in self.api_errors:
            say(f"API error ×{n}: {e}")
        self.exit_codes = {}
        for name in ("api", "ingestor-1", "ingestor-2"):
            rc = self.daemons[name].stop()
            self.exit_codes[name] = rc
            if rc != 0:
                self.fail(f"{name} exited {rc} on SIGTERM")
        # memory and size growth
        self.growth = self.memory_growth()
        # errors in the Postgres log since the stream started (deadlocks, lock timeouts, ...)
        self.pg_errors = collections.Counter()
        try:
            with open(self.stack_dir / "pg" / "log" / "postgresql.log", errors="replace") as fh:
                for line in fh:
                    m = re.match(r"(\S+ \S+) UTC \[\d+\] (\S*) ?(ERROR|FATAL|PANIC):\s+(.*)", line)
                    if m and m.group(1) >= self.stream_started_at:
                        msg = re.sub(r"\d+", "N", m.group(4))[:120]
                        self.pg_errors[f"{m.group(2) or 'server'} {m.group(3)}: {msg}"] += 1
        except OSError:
            pass
        self.pg_errors = self.pg_errors.most_common(6)

    def thirds(self):
        stream = [r for r in self.rows if not r.get("final") and r["t_s"] > 0]
        k = max(1, len(stream) // 3)
        return stream[:k], stream[-k:]

    def memory_growth(self):
        """memory_growth — per process: first and last sample of the stream, max over the first third, median
        over the last, growth, verdict."""
        first, last = self.thirds()
        judged = self.args.duration >= MEMORY_MIN_S
        out = {}
        for name in JUDGED + ("txgen", "client"):
            col = f"mem_{name.replace('-', '')}_mib"
            a = max(r[col] for r in first)
            vals = sorted(r[col] for r in last)
            b = vals[len(vals) // 2]
            tol = max(RSS_TOL_MIB, RSS_TOL_FRAC * a)
            out[name] = {"first_max": a, "last_median": b, "growth": b - a, "tolerance": tol,
                         "start": self.rows[0][col], "end": self.last_stream_row[col]}
            if judged and name in JUDGED and b - a > tol:
                self.fail(f"{name}: memory grew {b - a:.1f} MiB between the first and the last third "
                          f"(tolerance {tol:.1f} MiB)")
        # the mock's RSS holds its log; the real broker's is its JVM heap (stack.sh's -Xmx) plus the JVM's own
        bound = (len(self.partitions) * MOCK_PARTITION_MIB + MOCK_BASE_MIB if self.mock else
                 int(os.environ.get("CHAINWATCH_KAFKA_HEAP", "768m").rstrip("mM")) + KAFKA_JVM_MIB)
        peak = max(r["mem_broker_mib"] for r in self.rows)
        first_max = max(r["mem_broker_mib"] for r in first)
        last_median = sorted(r["mem_broker_mib"] for r in last)[len(last) // 2]
        out["broker"] = {"first_max": first_max, "last_median": last_median, "growth": last_median - first_max,
                         "tolerance": bound, "peak": peak,
                         "start": self.rows[0]["mem_broker_mib"], "end": self.last_stream_row["mem_broker_mib"]}
        if peak > bound:
            self.fail(f"broker: RSS reached {peak:.0f} MiB, above its log's bound of {bound} MiB")
        a = max(r["tx_mib"] + r["an_mib"] for r in first)
        vals = sorted(r["tx_mib"] + r["an_mib"] for r in last)
        b = vals[len(vals) // 2]
        out["store bytes"] = {"first_max": a, "last_median": b, "growth": b - a, "tolerance": BYTES_TOL_FRAC * a,
                              "start": None, "end": None}
        if judged and b - a > BYTES_TOL_FRAC * a:
            self.fail(f"transactions + anomalies grew from {a:.0f} to {b:.0f} MiB between the first and last third")
        out["judged"] = judged
        return out

    # -- reporting --

    def plot(self, path):
        """plot — RSS per process, rows vs bound, API latency, lag and rates over time (PNG, Agg)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rows = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in self.rows if r["t_s"] > 0]
        t = [r["t_s"] / 60 for r in rows]
        fig, ax = plt.subplots(2, 2, figsize=(13, 8.5))
        for name, label in (("ingestor1", "ingestor 1"), ("ingestor2", "ingestor 2"), ("api", "api"),
                            ("postgres", "postgres (PSS sum)"), ("redis", "redis"),
                            ("broker", "broker (mock)" if self.mock else "broker (Kafka JVM)")):
            ax[0][0].plot(t, [r[f"mem_{name}_mib"] for r in rows], marker=".", label=label)
        ax[0][0].set_yscale("log")
        ax[0][0].set_title("memory per process (MiB, log scale)")
        ax[0][0].legend(fontsize=8)
        ax[0][1].plot(t, [r["tx_rows"] for r in rows], marker=".", label="transactions rows")
        ax[0][1].plot(t, [r["tx_max"] for r in rows], "--", label="transactions max_rows")
        ax[0][1].plot(t, [r["an_rows"] * 10 for r in rows], marker=".", label="anomalies rows × 10")
        ax[0][1].plot(t, [r["an_max"] * 10 for r in rows], "--", label="anomalies max_rows × 10")
        ax[0][1].set_title("table rows vs bound")
        ax[0][1].legend(fontsize=8)
        for k, label in (("api_p50_ms", "p50"), ("api_p95_ms", "p95"), ("api_p99_ms", "p99")):
            ax[1][0].plot(t, [r[k] for r in rows], marker=".", label=label)
        ax[1][0].set_title(f"API latency per interval (ms), {self.args.api_rate} req/s")
        ax[1][0].legend(fontsize=8)
        ax[1][1].plot(t, [r["lag"] for r in rows], marker=".", color="tab:red", label="consumer lag (messages)")
        ax[1][1].set_ylabel("lag (messages)")
        ax[1][1].set_title("consumer lag and rates")
        tw = ax[1][1].twinx()
        tw.plot(t, [r.get("ingest_rate") for r in rows], color="tab:green", alpha=0.6, label="ingested msg/s")
        tw.plot(t, [r.get("produced_rate") for r in rows], color="tab:blue", alpha=0.4, label="produced msg/s")
        tw.set_ylim(bottom=0)
        tw.set_ylabel("msg/s")
        h1, l1 = ax[1][1].get_legend_handles_labels()
        h2, l2 = tw.get_legend_handles_labels()
        ax[1][1].legend(h1 + h2, l1 + l2, fontsize=8, loc="center right")
        for a in ax.flat:
            a.set_xlabel("minutes")
            a.grid(alpha=0.3)
        fig.suptitle(f"chainwatch soak {self.started:%Y-%m-%d %H:%M} UTC: {self.rate:,} msg/s for "
                     f"{self.args.duration / 60:.0f} min — {'PASS' if not self.failures else 'FAIL'}")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)

    def report(self):
        """report — the markdown block: setup, verdict, summary, per-sample table."""
        cpu = "unknown CPU"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        pgv = self.sql("SHOW server_version")[0][0].split()[0]
        c = self.capacity_info
        a = self.ret["anomalies"]
        achieved = self.api_totals.get("requests", 0) / max(1, self.rows[-1]["t_s"])
        by_kind = []
        for kind in ("list", "list_filtered", "page", "one", "predict", "stats"):
            v = sorted(self.latencies.get(kind, []))
            if v:
                by_kind.append(f"{kind} {percentile(v, 50):.1f}/{percentile(v, 99):.0f}")
        all_lat = sorted(x for v in self.latencies.values() for x in v)
        tx = self.ret["transactions"]
        stream_rows = [r for r in self.rows if not r.get("final") and r["t_s"] > 0]
        all_records = self.api_totals
        lat_rows = [r for r in stream_rows if r["api_p99_ms"] is not None]
        others = [r["cpu_others"] for r in stream_rows if r.get("cpu_others") is not None]
        top_foreign = ", ".join(f"{comm} {sec / 60:.1f} CPU-min" for comm, sec in self.foreign_cpu.most_common(5)
                                if sec >= 1)
        eo = self.exactly_once
        verdict = "**PASS**" if not self.failures else "**FAIL**: " + "; ".join(self.failures)
        lines = [
            f"Run {self.started:%Y-%m-%d %H:%M} UTC for {self.args.duration / 60:.0f} min on "
            f"{os.cpu_count()} × {cpu}; PostgreSQL {pgv}. Reproduce with "
            f"`make soak DURATION={self.args.duration_text}` (bench/soak/; the rules are in the docstring of "
            "bench/soak/soak.py). Verdict: " + verdict + ".",
            "",
            f"**Load.** Capacity measured first in the same run: {c['messages']:,} txgen messages drained by one "
            f"`chainwatch-ingestor --drain` in {c['steady_s']:.1f} s from assignment ({c['wall_s']:.1f} s wall; the "
            f"transactions bound at {c['messages'] // 3:,} rows, so two thirds of the batches evicted as many rows, "
            "and the API load below running) = "
            f"**{self.capacity:,.0f} msg/s** (other work used {c['other_cores']:.2f} of the "
            f"{os.cpu_count()} cores meanwhile). The stream ran at half of it, **{self.rate:,} msg/s** "
            f"(`chainwatch-txgen --rate`, etherscan format, linger.ms=100) into a {len(self.partitions)}-partition "
            f"topic of the {self.broker_desc}, "
            "consumed by two `chainwatch-ingestor`s in one group (4 writers each, batches of 5,000) as the "
            "`chainwatch_ingestor` role; `chainwatch-api` (Redis on, `chainwatch_api` role) was asked for "
            f"{self.args.api_rate} req/s by {API_THREADS} paced client threads and answered {achieved:.0f} req/s: "
            "anomaly list (plain, filtered, next page) 4/10, one anomaly by a hash just listed 2/10, predict 3/10 "
            "(a pool of 5,000 transactions), stats 1/10.",
            "",
            f"**Bounds.** transactions: max_rows {tx['max_rows']:,} (= {self.window} s of stream), TTL {tx['ttl']} s, "
            f"partitions of {tx['width']} s; anomalies: TTL {a['ttl']} s, partitions of {a['width']} s, max_rows "
            f"{a['max_rows']:,}. The transactions table is held at its row bound by eviction in every batch; "
            "anomalies expire by TTL, whole partitions at a time.",
            "",
            f"**Machine.** Besides the soak, other processes used {sum(others) / max(1, len(others)):.2f} cores on "
            f"average (max {max(others, default=0):.2f}) of {os.cpu_count()}"
            + (f"; the busiest: {top_foreign}" if top_foreign else "") + ".",
            "",
            f"![soak: memory, rows vs bounds, API latency, lag](soak.png)",
            "",
            "| summary | |",
            "|---|---|",
            f"| duration | {self.args.duration / 60:.1f} min of stream, a sample every {self.interval} s; drained "
            f"{self.drained_in:.1f} s after the producer stopped |" if self.drained_in is not None else
            f"| duration | {self.args.duration / 60:.1f} min of stream; NOT drained within 120 s |",
            f"| messages produced | {eo['produced']:,} (broker high watermarks; {c['messages']:,} for the capacity "
            f"run + {self.stream_delivered or 0:,} delivered by txgen at {self.rate:,}/s) |",
            f"| messages ingested | {eo['ingested']:,}; dead letters {eo['dead_letters']} |",
            f"| exactly once | {'yes' if eo['ok'] else 'NO'}: rows ingested = messages produced, every partition's "
            f"stored offset = its high watermark ({eo['partitions_behind']} behind), the {eo['stored_rows']:,} rows "
            f"still stored have {eo['distinct_positions']:,} distinct (partition, offset) and "
            f"{eo['distinct_hashes']:,} distinct hashes, newest message of every partition stored "
            f"({eo['partitions_missing_newest']} missing) |",
            (f"| broker retention | the mock dropped the oldest {eo['broker_dropped']:,} messages from partition heads "
             "during the run (all after they were ingested; no offset reset in the ingestors' logs) |" if self.mock
             else f"| broker retention | the broker dropped {eo['broker_dropped']:,} messages (log.retention.bytes "
             "-1: it keeps every message) |"),
            f"| API requests | {all_records.get('requests', 0):,}; 5xx "
            f"{sum(v for k, v in all_records.items() if k.startswith('status_5'))}, transport errors "
            f"{all_records.get('status_0', 0)}, 429 {all_records.get('status_429', 0)}, 404 for evicted anomalies "
            f"{all_records.get('status_404', 0)}; client late by > 1 s {all_records.get('late', 0)} times |",
            f"| API latency | whole stream p50 {percentile(all_lat, 50):.1f} ms, p95 {percentile(all_lat, 95):.1f} ms, "
            f"p99 {percentile(all_lat, 99):.1f} ms; per interval p99 {min(r['api_p99_ms'] for r in lat_rows):.0f}–"
            f"{max(r['api_p99_ms'] for r in lat_rows):.0f} ms; by endpoint p50/p99 ms: {', '.join(by_kind)} |"
            if lat_rows else "| API latency | no requests |",
            f"| lag | median over the last third {self.lag_last_third:,} messages "
            f"({self.lag_last_third / self.rate:.1f} s of production), at the end of the stream "
            f"{self.last_stream_row['lag']:,}; largest per-partition lag at any "
            f"sample {max(r['lag_max_partition'] for r in stream_rows):,}"
            + (f" (the mock keeps ~{MOCK_PARTITION_MESSAGES:,})" if self.mock else "") + " |",
            f"| evictions | transactions {self.rows[-1]['tx_evicted_size']:,} by size, "
            f"{self.rows[-1]['tx_evicted_ttl']:,} by TTL; anomalies {self.rows[-1]['an_evicted_ttl']:,} by TTL, "
            f"{self.rows[-1]['an_evicted_size']:,} by size |",
            f"| database errors retried | " + ", ".join(f"{n} {int(v) if v is not None else '?'}"
                                                       for n, v in self.db_errors.items()) + " |",
            "| shutdown | exit status on SIGTERM: "
            + ", ".join(f"{n} {rc}" for n, rc in self.exit_codes.items()) + " |",
            "",
            "Memory (MiB; VmRSS, Postgres: PSS summed over the postmaster and its children): first and last sample "
            "of the stream, maximum over the first third, median over the last third, and the growth between them "
            "against "
            f"the tolerance max({RSS_TOL_MIB} MiB, {RSS_TOL_FRAC:.0%})"
            + ("" if self.growth["judged"] else f" — not judged: the run is shorter than {MEMORY_MIN_S // 60} min")
            + ".",
            "",
            "| process | first | last | max first third | median last third | growth | tolerance |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in JUDGED + ("broker", "txgen", "client", "store bytes"):
            g = self.growth[name]
            label = {"client": "soak client (not judged)", "txgen": "txgen (not judged)",
                     "broker": f"broker ({'mock' if self.mock else 'Kafka JVM'}; judged by its bound: peak "
                               f"{g.get('peak', 0):,.0f} ≤ tolerance)",
                     "store bytes": "transactions + anomalies bytes (tolerance 25 %)"}.get(name, name)
            fmt = lambda v: "—" if v is None else f"{v:,.1f}"  # noqa: E731
            lines.append(f"| {label} | {fmt(g['start'])} | {fmt(g['end'])} | {g['first_max']:,.1f} | "
                         f"{g['last_median']:,.1f} | {g['growth']:+,.1f} | {g['tolerance']:,.1f} |")
        warn_lines = []
        for name, f in self.log_findings.items():
            for msg, cnt in f["warns"].most_common(3):
                warn_lines.append(f"{name}: {cnt}× “{msg}”")
        if warn_lines:
            lines += ["", "Warnings in the daemons' logs (counted, not failures): " + "; ".join(warn_lines) + "."]
        if self.api_errors:
            lines += ["", "API errors: " + "; ".join(f"{n}× `{e}`" for e, n in self.api_errors) + "."]
        stream = [r for r in self.rows if r["t_s"] > 0]
        lock_samples = {t: sum(1 for r in stream if "lock timeout" in str(r.get(f"{short}_maint_error") or ""))
                        for short, t in (("tx", "transactions"), ("an", "anomalies"))}
        lines += ["", f"**Maintenance.** The anomalies' oldest row was at most {max(0, self.ttl_late):.0f} s older "
                  f"than TTL + partition width ({a['ttl']} + {a['width']} s): that is how late an expired partition "
                  "was dropped at worst (the TTL view never shows expired rows). The last maintenance of a table "
                  "had ended in `canceling statement due to lock timeout` (its DDL waits at most 200 ms for the "
                  "lock, then retries at the next run) at "
                  + ", ".join(f"{n} of {len(stream)} samples for {t}" for t, n in lock_samples.items()) + "."]
        if self.pg_errors:
            lines += ["", "Errors in the Postgres log during the stream (the daemons retried them): "
                      + "; ".join(f"{n}× `{e}`" for e, n in self.pg_errors) + "."]
        if self.notes:
            lines += ["", "Notes: " + "; ".join(self.notes) + "."]
        lines += [
            "",
            "Per sample (rates over the interval before it; lag = Σ high watermarks − Σ stored next offsets; "
            "memory in MiB; API figures for the requests of that interval; *others* = cores used by processes "
            "outside the soak). The last row is taken after the producer stopped and the ingestors drained.",
            "",
            "| min | produced/s | ingested/s | lag | tx rows | tx MiB | tx parts | an rows | an parts | an oldest s "
            "| ing 1 | ing 2 | api | pg | redis | broker | req | p50 ms | p95 ms | p99 ms | errors | others |",
            "|" + "---:|" * 22,
        ]
        for r in self.rows:
            if r["t_s"] <= 0:
                continue
            fm = lambda v, spec=",.0f": "—" if v is None else format(v, spec)  # noqa: E731
            lines.append(
                f"| {'end' if r.get('final') else format(r['t_s'] / 60, '.1f')} | {fm(r.get('produced_rate'))} | "
                f"{fm(r.get('ingest_rate'))} | {r['lag']:,} | {r['tx_rows']:,} | {r['tx_mib']:,.0f} | "
                f"{r['tx_parts']} | "
                f"{r['an_rows']:,} | {r['an_parts']} | {r['an_oldest_s']:.0f} | {r['mem_ingestor1_mib']:.0f} | "
                f"{r['mem_ingestor2_mib']:.0f} | {r['mem_api_mib']:.0f} | {r['mem_postgres_mib']:.0f} | "
                f"{r['mem_redis_mib']:.0f} | {r['mem_broker_mib']:.0f} | {r['api_requests']:,} | "
                f"{fm(r['api_p50_ms'], '.1f')} | {fm(r['api_p95_ms'], '.1f')} | {fm(r['api_p99_ms'], '.1f')} | "
                f"{r['api_errors']} | {fm(r.get('cpu_others'), '.2f')} |")
        if not self.mock:
            lines += ["", f"The broker is the stack's {self.broker_desc}, one node, keeping every message "
                      "(log.retention.bytes -1); CHAINWATCH_KAFKA=mock runs the soak on librdkafka's mock broker."]
            return lines
        lines += [
            "",
            "The mock broker (librdkafka's mock cluster) keeps ~5 MiB per partition (~7,400 of these messages) and "
            "drops the oldest record batches beyond that; a consumer fetching below the new log start gets "
            "OFFSET_OUT_OF_RANGE and librdkafka silently resets it to the log start (one warning in the log), so "
            "an ingestor that fell that far behind would skip messages without an error — `commit_batch()` accepts "
            "a batch that starts after the stored offset. The soak guards against it with 256 partitions, a "
            "per-partition lag check at every sample, a grep for the reset and the exactly-once count at the end.",
        ]
        return lines

    def write_outputs(self):
        """write_outputs — build/soak/{soak.png,report.md}; docs/ for long runs (or SOAK_DOC=1)."""
        png = self.out / "soak.png"
        self.plot(png)
        lines = self.report()
        (self.out / "report.md").write_text("\n".join(lines) + "\n")
        say(f"wrote {self.csv_path}, {png}, {self.out / 'report.md'}")
        if self.args.duration >= DOC_MIN_S or os.environ.get("SOAK_DOC") == "1":
            shutil.copyfile(png, TOP / "docs" / "soak.png")
            write_doc_block(pathlib.Path(self.args.doc), lines)
            say(f"wrote docs/soak.png and the soak block of {self.args.doc}")
        else:
            say(f"docs/ left alone (runs shorter than {DOC_MIN_S // 60} min do not publish; SOAK_DOC=1 forces it)")

    def run(self):
        """run — the phases in order; always stops what it started; 0 on pass, 1 on fail."""
        self.started = datetime.datetime.utcnow()
        try:
            self.setup()
            self.start_api()
            self.measure_capacity()
            self.start_ingestors()
            self.run_stream()
            self.final_checks()
            self.failures = self.sample_failure_lines() + self.failures
            self.write_outputs()
        finally:
            if self.load:
                self.load.stop_event.set()
            if self.txgen:
                self.txgen.stop(timeout=30)
            for d in self.daemons.values():
                d.stop(timeout=30)
        if self.failures:
            say(f"FAIL ({len(self.failures)}):")
            for f in self.failures:
                say(f"  - {f}")
            return 1
        say("PASS")
        return 0


def write_doc_block(doc, lines):
    """write_doc_block — replace what lies between the soak markers of doc (re-read just now), or append a
    "Soak (make soak)" section holding them; nothing else in the file changes."""
    text = doc.read_text()
    block = BEGIN + "\n" + "\n".join(lines) + "\n" + END
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n## Soak (make soak)\n\n" + block + "\n"
    doc.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, required=True, help="seconds of stream")
    ap.add_argument("--duration-text", default=None, help="DURATION as given, for the doc")
    ap.add_argument("--stack-dir", required=True)
    ap.add_argument("--bin", default=str(TOP / "build" / "bin"))
    ap.add_argument("--out", default=str(TOP / "build" / "soak"))
    ap.add_argument("--doc", default=str(TOP / "docs" / "reliability.md"))
    ap.add_argument("--interval", type=int, default=0, help="seconds between samples (default 60, shorter runs less)")
    ap.add_argument("--rate", type=int, default=0, help="stream rate (default: half the measured capacity)")
    ap.add_argument("--api-rate", type=int, default=API_RATE)
    ap.add_argument("--capacity-messages", type=int, default=CAPACITY_MESSAGES)
    args = ap.parse_args()
    args.duration_text = args.duration_text or f"{args.duration}s"
    sys.exit(Soak(args).run())


if __name__ == "__main__":
    main()
