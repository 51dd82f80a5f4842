#!/usr/bin/python3
"""bench/ingest/bench_ingest.py — ingest throughput against COPY ceilings measured in the same run.

Two benchmarks, each writing its own section of docs/benchmarks.md:

  sql   (bench-ingest-sql) 1M pre-scored transactions through the ingest transaction — COPY of 5,000
        rows into chainwatch.transactions, the flagged ~1% into chainwatch.anomalies, then
        chainwatch.commit_batch() — against COPY of the same rows in the same batches into
        (a) a bare unindexed table and (b) a plain table with chainwatch.transactions' columns and indexes.
  e2e   (bench-ingest) 1M txgen messages produced into the local broker, then
        `chainwatch-ingestor --drain` timed end to end (Kafka -> parse -> features -> score -> COPY -> commit),
        against the same COPY ceilings (a) and (b) of the rows it stored and (c), (b) loaded from as many
        clients at once as the ingestor has writers; plus its peak RSS and CPU time.

The same client code (psycopg2, batches of 5,000 rows) feeds every COPY, so the ratios compare server work.
"""
import argparse
import collections
import datetime
import io
import os
import resource
import struct
import subprocess
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import machine, write_section  # noqa: E402  (bench/benchlib.py)
from drainlog import steady_seconds  # noqa: E402  (bench/drainlog.py)

TX_COLUMNS = ("hash, from_address, to_address, value, gas, gas_price, block_number, tx_time, score, "
              "model_id, kafka_topic, kafka_partition, kafka_offset")
BATCH = 5000
MOCK = os.environ.get("CHAINWATCH_KAFKA", "apache") == "mock"
PRODUCE_LINGER_MS = 1000 if MOCK else 10  # see bench_e2e; 10 ms is txgen's default
ROUNDS = 3  # the drain and each ceiling; the best run counts (this host's speed varies from run to run)


def connect(dbname=None):
    """connect: autocommit connection to the stack's Postgres (PG* environment)."""
    conn = psycopg2.connect(dbname=dbname or os.environ.get("PGDATABASE", "chainwatch"))
    conn.autocommit = True
    return conn


def prepare_ceilings(cur):
    """prepare_ceilings: (a) bare table, (b) plain table with chainwatch.transactions' columns and indexes."""
    cur.execute("DROP TABLE IF EXISTS bench_bare, bench_indexed")
    cur.execute("CREATE TABLE bench_bare (LIKE chainwatch.transactions INCLUDING DEFAULTS)")
    cur.execute("CREATE TABLE bench_indexed (LIKE chainwatch.transactions INCLUDING DEFAULTS)")
    cur.execute("CREATE INDEX ON bench_indexed USING hash (hash)")
    cur.execute("CREATE INDEX ON bench_indexed (detected_at)")


PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\0" + bytes(8)
PGCOPY_TRAILER = b"\xff\xff"


def binary_chunks(data, rows_per_chunk):
    """binary_chunks: split binary COPY data (COPY ... TO STDOUT (FORMAT binary)) into complete COPY streams of
    rows_per_chunk rows each, by walking each row's field lengths."""
    assert data[:len(PGCOPY_HEADER)] == PGCOPY_HEADER, "unexpected binary COPY header"
    pos, chunks, start, rows = len(PGCOPY_HEADER), [], len(PGCOPY_HEADER), 0
    unpack_h, unpack_i = struct.Struct(">h").unpack_from, struct.Struct(">i").unpack_from
    while True:
        (nfields,) = unpack_h(data, pos)
        if nfields == -1:
            break
        pos += 2
        for _ in range(nfields):
            (length,) = unpack_i(data, pos)
            pos += 4 + max(length, 0)
        rows += 1
        if rows == rows_per_chunk:
            chunks.append(PGCOPY_HEADER + data[start:pos] + PGCOPY_TRAILER)
            start, rows = pos, 0
    if rows:
        chunks.append(PGCOPY_HEADER + data[start:pos] + PGCOPY_TRAILER)
    return chunks


def copy_batches(conn, table, chunks, extra=None):
    """copy_batches: one transaction per chunk: COPY into table (+ extra(cur, i) inside it); returns seconds.
    Chunks of bytes are binary COPY data, strings COPY text."""
    cur = conn.cursor()
    conn.autocommit = False
    t0 = time.perf_counter()
    for i, chunk in enumerate(chunks):
        if isinstance(chunk, bytes):
            cur.copy_expert(f"COPY {table} ({TX_COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(chunk))
        else:
            cur.copy_expert(f"COPY {table} ({TX_COLUMNS}) FROM STDIN", io.StringIO(chunk))
        if extra:
            extra(cur, i)
        conn.commit()
    elapsed = time.perf_counter() - t0
    conn.autocommit = True
    return elapsed


def copy_parallel(table, chunks, clients, waits):
    """copy_parallel: copy_batches from `clients` connections at once, each taking every clients-th chunk
    (as the ingestor's writers each COPY their own partitions' batches); returns the wall seconds. Meanwhile
    it samples what those backends are doing every 5 ms into the Counter waits (wait event, or "on CPU")."""
    conns = [connect() for _ in range(clients)]
    pids = [c.get_backend_pid() for c in conns]
    sampling = threading.Event()

    def sample():
        mon = connect()
        cur = mon.cursor()
        while not sampling.is_set():
            cur.execute("SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity "
                        "WHERE pid = ANY (%s) AND state = 'active'", (pids,))
            waits.update(w for (w,) in cur.fetchall())
            time.sleep(0.005)
        mon.close()
    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=copy_batches, args=(conns[i], table, chunks[i::clients]))
               for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    sampling.set()
    sampler.join()
    for c in conns:
        c.close()
    return elapsed


def make_rows(n, seed=7):
    """make_rows: n pre-scored transactions as COPY text chunks of BATCH rows (plus flagged subsets)."""
    import random
    rnd = random.Random(seed)
    chunks, anomaly_chunks = [], []
    base = 1704067200
    for start in range(0, n, BATCH):
        lines, flagged = [], []
        for i in range(start, min(n, start + BATCH)):
            h = "0x%064x" % rnd.getrandbits(256)
            f = "0x%040x" % rnd.getrandbits(160)
            t = "0x%040x" % rnd.getrandbits(160)
            value = 0 if rnd.random() < 0.3 else int(10 ** rnd.uniform(14, 21))
            gas = 21000 if rnd.random() < 0.6 else rnd.randint(50000, 1000000)
            gp = rnd.randint(10, 100) * 10 ** 9
            score = rnd.uniform(0.35, 0.75)
            ts = datetime.datetime.utcfromtimestamp(base + i // 150 * 12).strftime("%Y-%m-%d %H:%M:%S+00")
            row = f"{h}\t{f}\t{t}\t{value}\t{gas}\t{gp}\t{19000000 + i // 150}\t{ts}\t{score!r}\t1\tbench\t{i % 32}\t{i}\n"
            lines.append(row)
            if score > 0.745:
                flagged.append(row.rstrip("\n").split("\t"))
        chunks.append("".join(lines))
        anomaly_chunks.append(flagged)
    return chunks, anomaly_chunks


def bench_sql(args):
    """bench_sql: the ingest transaction vs the COPY ceilings on the same pre-scored rows."""
    conn = connect()
    cur = conn.cursor()
    chunks, flagged = make_rows(args.rows)
    print(f"bench-ingest-sql: {args.rows} rows in {len(chunks)} batches, best of {args.rounds} rounds",
          file=sys.stderr)
    anomaly_cols = ("hash, from_address, to_address, value, gas, gas_price, block_number, tx_time, score, "
                    "model_id, severity, kafka_topic, kafka_partition, kafka_offset")

    def fresh_store():
        cur.execute("DROP EXTENSION IF EXISTS chainwatch CASCADE")
        cur.execute("CREATE EXTENSION chainwatch")
        cur.execute("SELECT count(*) FROM chainwatch.maintain()")
        cur.execute("SELECT chainwatch.set_retention('transactions', max_rows => %s)", (args.rows * 2,))
        cur.execute("SELECT chainwatch.set_retention('anomalies', max_rows => 1000000)")
        # model 1 must be active for commit_batch: a tiny one is enough (rows are pre-scored)
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS tiny AS SELECT i::numeric v, 21000::numeric g, "
                    "1::numeric p FROM generate_series(1, 100) i")
        cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('bench', 'SELECT v, g, p FROM tiny', "
                    "n_trees => 1))")

    def ingest_extra(c, i):
        rows = flagged[i]
        if rows:
            buf = "".join("\t".join(r[:10] + ["low"] + r[10:]) + "\n" for r in rows)
            c.copy_expert(f"COPY chainwatch.anomalies ({anomaly_cols}) FROM STDIN", io.StringIO(buf))
        first = i * BATCH
        last = min(args.rows, first + BATCH)
        # one Kafka partition per batch keeps the offsets contiguous, as the ingestor's are
        c.execute("SELECT * FROM chainwatch.commit_batch('bench', 'bench', ARRAY[0], ARRAY[%s]::bigint[], "
                  "ARRAY[%s]::bigint[], (SELECT chainwatch.active_model_id()))", (first, last))

    # rounds alternate the three targets so machine noise hits them alike; best time of each counts
    results = {"bare": [], "indexed": [], "ingest": []}
    for _ in range(args.rounds):
        prepare_ceilings(cur)
        fresh_store()
        for name in ("bare", "indexed", "ingest"):
            cur.execute("CHECKPOINT")
            if name == "bare":
                results[name].append(copy_batches(conn, "bench_bare", chunks))
            elif name == "indexed":
                results[name].append(copy_batches(conn, "bench_indexed", chunks))
            else:
                results[name].append(copy_batches(conn, "chainwatch.transactions", chunks, ingest_extra))
    spread = {k: f"{min(v):.2f}–{max(v):.2f} s" for k, v in results.items()}
    results = {k: min(v) for k, v in results.items()}
    cur.execute("SELECT count(*) FROM chainwatch.transactions")
    stored = cur.fetchone()[0]
    assert stored == args.rows, f"stored {stored} of {args.rows}"
    t0 = time.perf_counter()
    cur.execute("SELECT count(*) FROM chainwatch.maintain()")
    maint_ms = (time.perf_counter() - t0) * 1000
    cur.execute("DROP TABLE bench_bare, bench_indexed")

    rate = {k: args.rows / v for k, v in results.items()}
    table = [
        "| path | time | rows/s | ratio |",
        "|---|---:|---:|---:|",
        f"| COPY into a bare unindexed table (a) | {results['bare']:.2f} s | {rate['bare']:,.0f} | 1.00 of (a) |",
        f"| COPY into a plain table with `transactions`' indexes (b) | {results['indexed']:.2f} s | {rate['indexed']:,.0f} | {rate['indexed'] / rate['bare']:.2f} of (a) |",
        f"| **ingest transaction**: COPY into partitioned `transactions` + ~1% into `anomalies` + `commit_batch()` | {results['ingest']:.2f} s | {rate['ingest']:,.0f} | **{rate['ingest'] / rate['indexed']:.2f} of (b)**, {rate['ingest'] / rate['bare']:.2f} of (a) |",
    ]
    section = [
        "## Ingest transaction vs COPY (bench-ingest-sql)",
        "",
        f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {machine()}; reproduce with `make bench-ingest-sql`.",
        "",
        f"{args.rows:,} pre-scored transactions in batches of {BATCH:,} rows, one transaction per batch, "
        "streamed by the same client (psycopg2 COPY) into each target in turn; a CHECKPOINT before each. "
        f"{args.rounds} rounds alternate the targets; the table shows each one's best time "
        f"(ranges: (a) {spread['bare']}, (b) {spread['indexed']}, ingest {spread['ingest']}).",
        "",
        *table,
        "",
        f"`chainwatch.maintain()` on the full table afterwards: {maint_ms:.0f} ms.",
        "",
        "Indexes on `transactions`: a **hash** index on `hash` (the API's lookup by transaction hash) and a btree on "
        "`detected_at` (TTL, eviction order, time-range queries). A btree on the 66-character text hash costs far "
        "more per COPYed row than the hash index (random inserts into a wide btree), so the lookup uses the hash index; "
        "the `detected_at` btree only ever appends at its right edge.",
    ]
    write_section(args.doc, "bench-ingest-sql", section)
    print("\n".join(section))


def rss_peak_kb(pid):
    """rss_peak_kb: VmHWM of a running process (kB), or 0."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def broker_name():
    """broker_name: the broker the stack runs, as stack.env names it."""
    if MOCK:
        return "librdkafka's mock cluster (CHAINWATCH_KAFKA=mock)"
    return f"Apache Kafka {os.environ.get('CHAINWATCH_KAFKA_VERSION', '?')} (KRaft, " \
           f"{os.environ.get('CHAINWATCH_KAFKA_BROKERS', '1')} broker)"


def create_topic(bootstrap, topic, partitions):
    """create_topic: make a topic on the broker (the real one creates none by itself; the mock does)."""
    if MOCK:
        return
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, partitions)])[topic].result(60)
    except Exception as e:  # an existing topic (a rerun on STACK_ENV) is fine
        if not (e.args and getattr(e.args[0], "code", lambda: None)() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise


def broker_messages(bootstrap, topic):
    """broker_messages: messages the broker still holds (sum of high - low watermarks): the mock drops the
    oldest data of a partition beyond ~5 MiB, and keying by sender makes some partitions hot; the real
    broker keeps everything (log.retention.bytes -1)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    total = 0
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += hi - lo
    c.close()
    return total


def drain_once(args, env):
    """drain_once: one timed `chainwatch-ingestor --drain`; its wall time, steady-state time (from the
    assignment to the drain, as its own log stamps them), peak RSS in KiB and CPU seconds."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-ingestor-{os.getpid()}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([f"{args.bin}/chainwatch-ingestor", "--drain", "--metrics-port", "0",
                             "--log-format", "json"], env=env, stderr=log)
    # a thread waits for the exit and join() returns the moment it does, so the time is exact
    # (polling added up to its interval), while this thread samples the peak resident set (rusage's
    # ru_maxrss cannot serve: a forked child's starts at this Python process's size, before the exec)
    waiter = threading.Thread(target=proc.wait)
    waiter.start()
    peak = 0
    while waiter.is_alive():
        peak = max(peak, rss_peak_kb(proc.pid))
        waiter.join(0.1)
    ingest_s = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the ingestor is the only child waited for since
    log.close()
    if proc.returncode != 0:
        sys.exit(f"bench-ingest: the ingestor exited {proc.returncode}; log: {log_path}")
    steady_s = steady_seconds(log_path)
    os.unlink(log_path)
    cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return {"ingest_s": ingest_s, "steady_s": steady_s, "peak": peak, "cpu_s": cpu_s}


def bench_e2e(args):
    """bench_e2e: txgen -> broker, then the ingestor --drain, then COPY ceilings of the rows it stored."""
    env = dict(os.environ)
    writers = int(env.get("KAFKA_NUM_WORKER_THREADS", "4"))
    conn = connect()
    cur = conn.cursor()
    cur.execute("DROP EXTENSION IF EXISTS chainwatch CASCADE")
    cur.execute("CREATE EXTENSION chainwatch")
    cur.execute("SELECT chainwatch.set_retention('transactions', max_rows => %s)", (args.rows * 2,))
    cur.execute("SELECT chainwatch.set_retention('anomalies', max_rows => 1000000)")
    cur.execute("ALTER DATABASE chainwatch SET chainwatch.auto_train = off")
    # score with a model like production: trained on a uniform sample (every 50th) of the very stream
    # the benchmark loads; txgen's stream is reproducible by seed, and its gas prices drift over 1M
    # transactions, so a prefix would not represent the whole
    gen = subprocess.run([f"{args.bin}/chainwatch-txgen", "--count", str(args.rows), "--seed", "1",
                          "--format", "etherscan"], check=True, capture_output=True)
    sample = b"".join(gen.stdout.splitlines(keepends=True)[::50])
    create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], "train", 4)
    subprocess.run(["kcat", "-P", "-b", env["KAFKA_BOOTSTRAP_SERVERS"], "-t", "train"], input=sample, check=True)
    del gen, sample
    subprocess.run([f"{args.bin}/chainwatch-ingestor", "--drain", "--kafka-topic", "train", "--metrics-port", "0",
                    "--kafka-group-id", "train", "--log-level", "warn"], check=True, env=env, timeout=300)
    cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('bench', "
                "'SELECT value, gas, gas_price FROM chainwatch.transactions'))")
    cur.execute("TRUNCATE chainwatch.transactions, chainwatch.anomalies")
    cur.execute("UPDATE chainwatch.partition_state SET row_count = 0")

    t0 = time.perf_counter()
    # linger.ms, on the mock only: it finds a fetch's offset by walking the partition's list of produced
    # message sets (rdkafka_mock.c keeps no offset index); with txgen's default 10 ms a partition holds ~150
    # small sets and that walk took a fifth of the machine. One-second batches leave a few sets per partition.
    # The real broker keeps an offset index: txgen's default.
    subprocess.run([f"{args.bin}/chainwatch-txgen", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic",
                    env["KAFKA_TOPIC"], "--count", str(args.rows), "--seed", "1", "--format", "etherscan",
                    "--kafka-conf", f"linger.ms={PRODUCE_LINGER_MS}"],
                   check=True, capture_output=True)
    produce_s = time.perf_counter() - t0
    print(f"bench-ingest: produced {args.rows} messages in {produce_s:.1f} s", file=sys.stderr)

    # the drain, timed ROUNDS times like each ceiling (the best run counts): a first run on a fresh cluster
    # also pays for creating its WAL segments, which the ceilings, run later, find ready to recycle.
    # Each run starts from an empty store under a consumer group of its own, so it reads everything.
    # Alternating with each run, a drain with the address-profile trigger disabled: what folding every batch
    # into chainwatch.address_profiles (in the batch's transaction) costs, measured in the same run. Every
    # run starts with no profiles, as a fresh install does.
    runs, bare_runs = [], []
    for run in range(ROUNDS):
        for profiles in (False, True):
            cur.execute("TRUNCATE chainwatch.transactions, chainwatch.anomalies, chainwatch.kafka_offsets, "
                        "chainwatch.address_profiles, chainwatch.address_profile_counts")
            cur.execute("UPDATE chainwatch.partition_state SET row_count = 0")
            cur.execute("ALTER TABLE chainwatch.transactions "
                        f"{'ENABLE' if profiles else 'DISABLE'} TRIGGER transactions_profiles")
            cur.execute("CHECKPOINT")  # as before each ceiling run: every target starts from the same state
            group = f"bench-ingest-{run + 1}" + ("" if profiles else "-noprofiles")
            (runs if profiles else bare_runs).append(drain_once(args, dict(env, KAFKA_GROUP_ID=group)))
            print(f"bench-ingest: drain {run + 1}{'' if profiles else ' without profiles'}: "
                  f"{(runs if profiles else bare_runs)[-1]['ingest_s']:.2f} s end to end", file=sys.stderr)
    # the profile runs last, so the store holds what they stored
    cur.execute("ALTER TABLE chainwatch.transactions ENABLE TRIGGER transactions_profiles")
    cur.execute("SELECT count(*) FROM chainwatch.address_profiles")
    n_profiles = cur.fetchone()[0]
    best_bare = min(bare_runs, key=lambda r: r["ingest_s"])
    best = min(runs, key=lambda r: r["ingest_s"])
    ingest_s, steady_s, cpu_s = best["ingest_s"], best["steady_s"], best["cpu_s"]
    peak = max(r["peak"] for r in runs)
    cur.execute("SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM chainwatch.transactions")
    stored, distinct = cur.fetchone()
    available = broker_messages(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC"])
    assert stored == distinct == available, \
        f"stored {stored} ({distinct} distinct) but the broker holds {available} messages"
    cur.execute("SELECT count(*) FROM chainwatch.anomalies")
    anomalies = cur.fetchone()[0]

    # the ceilings: the very rows it stored, COPYed in the same batch size by one client, in the binary format
    # the ingestor sends (COPY text of the same rows takes 20-25% longer); each target ROUNDS times, alternating, the
    # best time counts, so the ceilings are not lowered by a slow moment of the host
    buf = io.BytesIO()
    cur.copy_expert(f"COPY (SELECT {TX_COLUMNS} FROM chainwatch.transactions) TO STDOUT WITH (FORMAT binary)", buf)
    chunks = binary_chunks(buf.getvalue(), BATCH)
    del buf
    # (c) is (b) loaded by as many clients as the ingestor has writers: what Postgres alone absorbs into
    # these indexes when it may use every core, as the ingestor's writers let it
    ceilings = {"a": ("bench_bare", 1), "b": ("bench_indexed", 1), "c": ("bench_indexed", writers)}
    times = {name: [] for name in ceilings}
    waits = collections.Counter()
    for _ in range(ROUNDS):
        for name, (table, clients) in ceilings.items():
            prepare_ceilings(cur)
            cur.execute("CHECKPOINT")
            times[name].append(copy_batches(conn, table, chunks) if clients == 1
                               else copy_parallel(table, chunks, clients, waits))
    bare, indexed, parallel = (min(times[name]) for name in ceilings)
    cur.execute("DROP TABLE bench_bare, bench_indexed")
    cur.execute("ALTER DATABASE chainwatch RESET chainwatch.auto_train")

    r_ing, r_a, r_b, r_c = stored / ingest_s, stored / bare, stored / indexed, stored / parallel
    r_steady = stored / steady_s if steady_s else None
    r_bare_ing = stored / best_bare["ingest_s"]
    r_bare_steady = stored / best_bare["steady_s"] if best_bare["steady_s"] else None
    # the bound: an ingestor whose own work cost nothing would still wait for its group join and
    # startup (the end-to-end time outside the steady state) and then load no faster than (c)
    bound_s = ingest_s - steady_s + parallel if steady_s else None
    spread = ", ".join(f"({name}) {min(t):.2f}–{max(t):.2f} s" for name, t in times.items())
    samples = sum(waits.values())
    top_waits = ", ".join(f"{w} {n / samples:.0%}" for w, n in waits.most_common(4))
    section = [
        "## Kafka to Postgres end to end (bench-ingest)",
        "",
        f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on {machine()}; reproduce with `make bench-ingest`.",
        "",
        f"{args.rows:,} `chainwatch-txgen` messages (Etherscan format) in the local broker, {broker_name()} "
        f"({env.get('KAFKA_TOPIC')}, {args.partitions} partitions), consumed by one `chainwatch-ingestor --drain` "
        f"({writers} writer threads, batches of 5,000, at most {env.get('COPY_CONCURRENCY', '2')} loading at once: "
        f"`COPY_CONCURRENCY`) on the same {os.cpu_count()} cores as Postgres and the broker: "
        "Kafka -> parse -> features (the batch's address profiles, read in its transaction) -> score (active model, 100 trees) -> COPY -> `commit_batch` -> commit. The time includes "
        "joining the consumer group (" + ("the mock broker holds a new group 3 s before its first assignment; "
                                    if MOCK else "the stack's broker runs with `group.initial.rebalance.delay.ms=0`, "
                                    "as docker-compose.yml does; ") + "the steady-state "
        "row leaves the join out) and the final drain check. The ingestor sends the "
        "transactions as binary COPY; the ceilings load the same rows the same way, in batches of 5,000, from one "
        f"client ((a), (b)) or from {writers} at once ((c), one per writer). The drain and each ceiling run {ROUNDS} times from an empty table and the best time "
        f"counts (this run's ceiling times: {spread}; a first "
        "run on a fresh cluster also creates its WAL segments, which later runs recycle). " +
        (f"The messages are produced with `linger.ms={PRODUCE_LINGER_MS}`: the mock broker looks up a fetch offset "
         "by walking the partition's message sets one by one, and small producer batches made that walk a fifth "
         "of the machine's CPU (a real broker keeps an offset index)." if MOCK else
         f"The messages are produced with txgen's defaults (`linger.ms={PRODUCE_LINGER_MS}`, no compression)."),
        "",
        "| path | time | rows/s | ratio |",
        "|---|---:|---:|---:|",
        f"| COPY (binary) of the stored rows into a bare unindexed table (a) | {bare:.2f} s | {r_a:,.0f} | — |",
        f"| COPY into a plain table with `transactions`' indexes (b) | {indexed:.2f} s | {r_b:,.0f} | "
        f"{r_b / r_a:.2f} of (a) |",
        f"| the same from {writers} clients at once (c) | {parallel:.2f} s | {r_c:,.0f} | "
        f"{r_c / r_a:.2f} of (a), {r_c / r_b:.2f} of (b) |",
        f"| **chainwatch-ingestor --drain**, end to end | {ingest_s:.2f} s | {r_ing:,.0f} | "
        f"**{r_ing / r_a:.2f} of (a), {r_ing / r_b:.2f} of (b)**, {r_ing / r_c:.2f} of (c) |",
        *([f"| the same, steady state (assignment to drained, from the ingestor's log) | {steady_s:.2f} s | "
           f"{r_steady:,.0f} | {r_steady / r_a:.2f} of (a), {r_steady / r_b:.2f} of (b), {r_steady / r_c:.2f} of (c) |"]
          if steady_s else []),
        f"| the same without address profiles (trigger `transactions_profiles` disabled), end to end | "
        f"{best_bare['ingest_s']:.2f} s | {r_bare_ing:,.0f} | {r_bare_ing / r_a:.2f} of (a); with profiles: "
        f"**{r_ing / r_bare_ing:.2f} of this** |",
        *([f"| the same without address profiles, steady state | {best_bare['steady_s']:.2f} s | "
           f"{r_bare_steady:,.0f} | with profiles: **{r_steady / r_bare_steady:.2f} of this** |"]
          if steady_s and r_bare_steady else []),
        *([f"| bound: the same join and startup ({ingest_s - steady_s:.2f} s), then (c)'s time | {bound_s:.2f} s | "
           f"{stored / bound_s:,.0f} | {stored / bound_s / r_a:.2f} of (a), {stored / bound_s / r_b:.2f} of (b) |"]
          if steady_s else []),
        "",
        f"(c) is what Postgres alone absorbs into these indexes when it may use every core, as the ingestor's "
        f"writers let it, with no Kafka, parsing or scoring beside it. Its backends, sampled every 5 ms while "
        f"they ran a COPY: {top_waits} ({samples:,} samples). LWLock:BufferContent is a wait for a page another "
        "backend has locked: every insert into a hash index locks the index's metapage exclusively to count its "
        "tuple, so concurrent loaders queue there (docs/ingestor.md, \"Where the time goes\"). "
        f"Issue 7's target of 0.4 of (a) is "
        f"{0.4 * r_a:,.0f} rows/s here, {0.4 * r_a / r_c:.2f} of (c): the two indexes cost Postgres "
        f"{(1 / r_b - 1 / r_a) * 1e6:.1f} µs per row on top of the bare table's {1e6 / r_a:.1f} µs, and the "
        f"ingestor's own work ({cpu_s:.2f} s of CPU in the best drain, {cpu_s / stored * 1e6:.1f} µs per row: "
        "Kafka client, parsing, scoring, COPY encoding) has to fit beside them on the same cores. The bound row "
        "is the end-to-end rate of an ingestor whose own work cost nothing: it would still wait for the group "
        "join and its startup, measured above, and then load at (c)'s rate at best.",
        "",
        f"Stored {stored:,} transactions: every message the broker still held, once. "
        f"Anomalies flagged and stored: {anomalies:,}. Address profiles folded in: {n_profiles:,} (every batch "
        "upserts the profiles of its senders and recipients in its own transaction; the rows without profiles "
        "measure that cost in the same run, each drain alternating with one of them). Peak resident memory of the ingestor: "
        f"{peak / 1024:.0f} MiB (backlog of {args.rows:,} messages). Producing the messages took {produce_s:.1f} s.",
    ]
    write_section(args.doc, "bench-ingest", section)
    print("\n".join(section))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["sql", "e2e"])
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=int(os.environ.get("CHAINWATCH_PARTITIONS", "1024")))
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--doc", default="docs/benchmarks.md")
    args = ap.parse_args()
    (bench_sql if args.mode == "sql" else bench_e2e)(args)


if __name__ == "__main__":
    main()
