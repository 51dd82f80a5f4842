"""tests/integration/test_broker.py — chainwatch-ingestor against the real Apache Kafka broker's own behaviour.

What only a real broker does, each ended by the exactly-once check of test_ingestor.py (the table holds exactly
what the broker holds, read back from the broker, offsets included):

  * three nodes (replication factor 3, min.insync.replicas 2): one is killed with SIGKILL mid-stream, the
    partition leaders (and maybe the group coordinator) move to the other two, the node is started again on its
    data and rejoins every ISR; the ingestor loads through all of it;
  * a single broker killed and restarted on its data mid-stream;
  * partitions added to the topic (kafka-topics --alter) while two ingestors of one group run: the group
    rebalances onto the new partitions and their messages load too;
  * the offsets the ingestor commits to Kafka after each database commit are the group's committed offsets that
    Kafka's own `kafka-consumer-groups --describe` shows, equal to chainwatch.kafka_offsets;
  * SASL/SCRAM-SHA-256 on the broker, the ingestor's credentials given only through KAFKA_CONFIG_* variables:
    it loads end to end, a wrong password loads nothing, and neither password appears in its log (debug level)
    or on /metrics;
  * messages produced with every compression codec librdkafka 2.0.2 has here (gzip, snappy, lz4, zstd), each
    codec checked in the broker's own log segments (the record batch attributes), load.

Producers use enable.idempotence=true, so a retried produce during a broker's failure never puts a message on
the topic twice (the check counts duplicates of the topic as the ingestor's). The three-node test has a stack of
its own; the others share one single-node stack with a SASL listener (module fixture), each on a topic and a
consumer group of its own. Stack startups: two.
"""
import os
import re
import signal
import struct
import subprocess
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Producer

from conftest import broker_pid, create_topic, kafka_cli, new_stack_dir, pg_connect, start_broker, start_stack, \
    teardown_stack
from test_ingestor import Harness, assert_exactly_once, harness, read_topic, scaled, wait_for  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(os.environ.get("CHAINWATCH_KAFKA", "apache") != "apache",
                                reason="the real broker's behaviour (CHAINWATCH_KAFKA=mock runs the mock)")

IDEMPOTENT = ["--kafka-conf", "enable.idempotence=true"]
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # record batch attributes & 7 (Kafka's protocol)


class TopicHarness(Harness):
    """TopicHarness — test_ingestor's Harness on a topic and group of its own on a shared stack (not torn down)."""

    def __init__(self, bin_dir, stack, partitions):  # pylint: disable=super-init-not-called
        self.bin_dir = bin_dir
        self.stack = stack
        self.stack_dir = stack.dir
        self.topic = "t-" + uuid.uuid4().hex[:10]
        create_topic(stack, self.topic, partitions)
        self.group = "cw-test-" + uuid.uuid4().hex[:8]
        self.ingestors = []
        self.others = []
        self.conn = pg_connect(stack)
        self.count = 0

    def txgen_args(self, count, seed, *extra, rate=None):
        """txgen_args — a chainwatch-txgen command line producing to this topic."""
        args = [str(self.bin_dir / "chainwatch-txgen"), "--brokers", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", self.topic, "--count", str(count), "--seed", str(seed), *extra]
        return args + (["--rate", str(rate)] if rate else [])

    def produce(self, count, seed, *extra, rate=None, background=False):
        """produce — chainwatch-txgen with extra arguments; waits unless background (returns the Popen)."""
        proc = subprocess.Popen(self.txgen_args(count, seed, *extra, rate=rate), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.others.append(proc)
        return proc if background else self.finish_txgen(proc)

    def close(self):
        for proc in [i.proc for i in self.ingestors] + self.others:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.conn.close()
        except psycopg2.Error:
            pass


@pytest.fixture(scope="module")
def sasl_stack():
    """sasl_stack — one single-node Apache Kafka stack with a SASL_PLAINTEXT (SCRAM-SHA-256) listener."""
    stack_dir = new_stack_dir()
    try:
        yield start_stack(stack_dir, CHAINWATCH_KAFKA_SASL=1, CHAINWATCH_PARTITIONS=4)
    finally:
        teardown_stack(stack_dir)


@pytest.fixture
def topic_harness(bin_dir, sasl_stack):
    """topic_harness — factory: topic_harness(partitions) on the shared stack; processes killed afterwards."""
    made = []

    def make(partitions=8):
        h = TopicHarness(bin_dir, sasl_stack, partitions)
        made.append(h)
        return h

    try:
        yield make
    finally:
        for h in made:
            h.close()


def describe_topic(stack, topic):
    """describe_topic — {partition: (leader, [isr])} from Kafka's own kafka-topics --describe."""
    out = kafka_cli(stack, "kafka-topics", "--describe", "--topic", topic).stdout
    parts = {}
    for m in re.finditer(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: [\d,]+\s+Isr: ([\d,]*)", out):
        parts[int(m.group(1))] = (int(m.group(2)), [int(x) for x in m.group(3).split(",") if x])
    return parts


def wait_rows(h, want, timeout=180):
    """wait_rows — wait until the table holds `want` rows of the harness's topic."""
    wait_for(f"{want} rows", lambda: h.table_count() >= want, timeout,
             on_timeout=lambda: f"{h.table_count()} rows\n{h.logs()}")


def stop_ingestors(h, *ingestors):
    """stop_ingestors — SIGTERM each, require exit 0."""
    for ing in ingestors:
        ing.signal(signal.SIGTERM)
    for ing in ingestors:
        assert ing.wait(60) == 0, ing.tail(40)


# ---- three nodes, one killed ------------------------------------------------------------------------------


def test_kill_9_one_of_three_brokers_mid_stream(harness, monkeypatch):
    """SIGKILL node 2 of three mid-stream: its leaderships move to nodes 1 and 3, the ingestor keeps loading;
    node 2 starts again on its data and rejoins every ISR; nothing lost, nothing duplicated."""
    monkeypatch.setenv("CHAINWATCH_KAFKA_BROKERS", "3")
    h = harness(partitions=12)
    assert h.stack["CHAINWATCH_KAFKA_BROKERS"] == "3"
    n = scaled(40000)
    producer = subprocess.Popen(
        [str(h.bin_dir / "chainwatch-txgen"), "--brokers", h.stack["KAFKA_BOOTSTRAP_SERVERS"], "--topic", h.topic,
         "--count", str(n), "--seed", "61", "--rate", str(max(200, n // 40)), *IDEMPOTENT],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    h.others.append(producer)
    ing = h.ingestor(BATCH_SIZE=500)
    wait_for("the first rows", lambda: h.table_count() > 0, 60, on_timeout=ing.tail)
    before = describe_topic(h.stack, h.topic)
    assert {leader for leader, _ in before.values()} == {1, 2, 3}, before

    os.kill(broker_pid(h.stack, 2), signal.SIGKILL)
    moved = wait_for("node 2's leaderships to move to nodes 1 and 3",
                     lambda: (lambda d: d if d and all(l in (1, 3) for l, _ in d.values()) else None)(
                         describe_topic(h.stack, h.topic)), 60)
    assert all(2 not in isr for _, isr in moved.values()), moved
    rows = h.table_count()
    wait_for("rows to keep loading with node 2 down", lambda: h.table_count() > rows, 60, on_timeout=ing.tail)
    assert producer.poll() is None, "the stream ended before node 2 came back: make it longer"

    start_broker(h.stack, 2)
    wait_for("node 2 back in every ISR",
             lambda: all(sorted(isr) == [1, 2, 3] for _, isr in describe_topic(h.stack, h.topic).values()), 90)
    h.finish_txgen(producer, timeout=180)
    wait_rows(h, n)
    stop_ingestors(h, ing)
    assert_exactly_once(h, read_topic(h))


# ---- one node: restart, partitions added, offsets, SASL, codecs --------------------------------------------


def test_single_broker_killed_and_restarted_mid_stream(topic_harness):
    """The only broker is killed with SIGKILL mid-stream and started again on its data: the producer's retries
    and the ingestor's reconnects carry the stream across; nothing lost, nothing duplicated."""
    h = topic_harness(8)
    n = scaled(20000)
    producer = h.produce(n, 71, *IDEMPOTENT, rate=max(200, n // 30), background=True)
    ing = h.ingestor(BATCH_SIZE=500)
    wait_for("the first rows", lambda: h.table_count() > 0, 60, on_timeout=ing.tail)
    os.kill(broker_pid(h.stack, 1), signal.SIGKILL)
    time.sleep(1)  # a real outage, not only a reconnect
    start_broker(h.stack, 1)
    assert producer.poll() is None, "the stream ended before the broker came back: make it longer"
    rows = h.table_count()
    wait_for("rows to load after the restart", lambda: h.table_count() > rows, 90, on_timeout=ing.tail)
    h.finish_txgen(producer, timeout=180)
    wait_rows(h, n)
    stop_ingestors(h, ing)
    assert_exactly_once(h, read_topic(h))


def test_partitions_added_while_two_ingestors_run(topic_harness):
    """kafka-topics --alter raises the topic from 4 to 12 partitions while two group members load a stream:
    the group rebalances onto all 12 (after one metadata refresh), the new partitions' messages load, exactly
    once."""
    h = topic_harness(4)
    n = scaled(24000)
    # the producer and the members see the new partitions at their next metadata refresh (librdkafka's
    # default is 5 minutes: an operator who adds partitions waits that long, or sets it as here)
    refresh = {"KAFKA_CONFIG_TOPIC_METADATA_REFRESH_INTERVAL_MS": 1000}
    producer = h.produce(n, 81, *IDEMPOTENT, "--kafka-conf", "topic.metadata.refresh.interval.ms=1000",
                         rate=max(200, n // 40), background=True)
    a = h.ingestor(name="a", BATCH_SIZE=500, **refresh)
    b = h.ingestor(name="b", BATCH_SIZE=500, **refresh)
    wait_for("A and B to split 4 partitions", lambda: a.assigned() + b.assigned() == 4 and
             a.assigned() > 0 and b.assigned() > 0, 60, on_timeout=lambda: a.tail() + "\n" + b.tail())
    kafka_cli(h.stack, "kafka-topics", "--alter", "--topic", h.topic, "--partitions", 12)
    wait_for("A and B to own all 12 partitions", lambda: a.assigned() + b.assigned() == 12 and
             a.assigned() > 0 and b.assigned() > 0, 60, on_timeout=lambda: a.tail() + "\n" + b.tail())
    assert producer.poll() is None, "the stream ended before the rebalance: make it longer"
    h.finish_txgen(producer, timeout=180)
    wait_rows(h, n)
    stop_ingestors(h, a, b)
    (new_rows,), = h.sql("SELECT count(*) FROM chainwatch.transactions WHERE kafka_topic = %s "
                         "AND kafka_partition >= 4", h.topic)
    assert new_rows > 0, "no message of the added partitions was loaded"
    assert_exactly_once(h, read_topic(h))


def group_offsets(h):
    """group_offsets — {partition: (current offset, log end offset)} from kafka-consumer-groups --describe."""
    out = kafka_cli(h.stack, "kafka-consumer-groups", "--describe", "--group", h.group).stdout
    got = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[1] == h.topic and cols[2].isdigit():
            got[int(cols[2])] = (int(cols[3]) if cols[3].isdigit() else None, int(cols[4]))
    return got


def test_committed_offsets_visible_to_kafka_consumer_groups(topic_harness):
    """After each database commit the ingestor commits the same offsets to the group: three rounds of
    messages, and after each Kafka's kafka-consumer-groups --describe shows, per partition, the offset that
    chainwatch.kafka_offsets holds, which is the log end (lag 0)."""
    h = topic_harness(4)
    ing = h.ingestor(BATCH_SIZE=200)
    wait_for("the member to own the 4 partitions", lambda: ing.assigned() == 4, 60, on_timeout=ing.tail)
    total = 0
    for rnd in range(3):
        count = 1000 + 500 * rnd
        h.produce(count, 90 + rnd)
        total += count
        wait_rows(h, total)
        stored = wait_for("kafka_offsets at the high watermarks", lambda: (lambda s: s if sum(s.values()) == total
                          else None)(dict(h.sql("SELECT partition, next_offset FROM chainwatch.kafka_offsets "
                                                "WHERE consumer_group = %s AND topic = %s", h.group, h.topic))), 30)
        seen = {}

        def matches():
            seen.update(group_offsets(h))
            return all(seen.get(p) == (o, o) for p, o in stored.items())
        wait_for(f"round {rnd}: kafka-consumer-groups to show the database's offsets {stored}", matches, 30,
                 interval=0.5, on_timeout=lambda: f"kafka-consumer-groups: {seen}\n{ing.tail()}")
    stop_ingestors(h, ing)
    assert_exactly_once(h, read_topic(h))


def test_sasl_scram_credentials_only_through_kafka_config(topic_harness):
    """The ingestor reaches the broker's SCRAM-SHA-256 listener with credentials only in KAFKA_CONFIG_* and loads
    end to end; with a wrong password it loads nothing and says why; neither password is in its debug log or on
    /metrics."""
    h = topic_harness(4)
    s = h.stack
    n = 3000
    p = Producer({"bootstrap.servers": s["KAFKA_SASL_BOOTSTRAP_SERVERS"], "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": s["KAFKA_SASL_MECHANISM"], "sasl.username": s["KAFKA_SASL_USERNAME"],
                  "sasl.password": s["KAFKA_SASL_PASSWORD"], "enable.idempotence": True})
    lines = subprocess.run([str(h.bin_dir / "chainwatch-txgen"), "--count", str(n), "--seed", "95"],
                           capture_output=True, check=True).stdout.splitlines()
    for line in lines:
        p.produce(h.topic, line)
    assert p.flush(60) == 0, "the SASL producer did not deliver everything"

    sasl = {"KAFKA_BOOTSTRAP_SERVERS": s["KAFKA_SASL_BOOTSTRAP_SERVERS"],
            "KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_CONFIG_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_CONFIG_SASL_USERNAME": s["KAFKA_SASL_USERNAME"],
            # librdkafka's most talkative view of it: the SCRAM exchange and the configuration dump
            "KAFKA_CONFIG_DEBUG": "security,broker,conf"}
    wrong_password = "not-" + s["KAFKA_SASL_PASSWORD"]
    bad = h.ingestor(name="wrong-password", LOG_LEVEL="debug", KAFKA_CONFIG_SASL_PASSWORD=wrong_password, **sasl)
    wait_for("the authentication failure in the log", lambda: re.search(r"(?i)authenticat", bad.log()), 60,
             on_timeout=bad.tail)
    assert h.table_count() == 0, "loaded with a wrong password"
    bad_metrics = bad.get("/metrics")[1]
    stop_ingestors(h, bad)

    ing = h.ingestor(name="sasl", LOG_LEVEL="debug", KAFKA_CONFIG_SASL_PASSWORD=s["KAFKA_SASL_PASSWORD"], **sasl)
    wait_rows(h, n)
    status, body = ing.get("/metrics")
    assert status == 200
    stop_ingestors(h, ing)
    assert_exactly_once(h, read_topic(h))
    for name, text in (("the log", bad.log()), ("/metrics", bad_metrics), ("the log", ing.log()),
                       ("/metrics", body)):
        for secret in (s["KAFKA_SASL_PASSWORD"], wrong_password):
            assert secret not in text, f"a SASL password appears in {name}"
    assert "SASL" in ing.log() or "sasl" in ing.log(), "the debug log does not show the SASL handshake"


def batch_codecs(stack, topic):
    """batch_codecs — the set of compression codec ids of every record batch the broker stored for the topic,
    read from its log segments (a batch: baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
    magic int8, crc uint32, attributes int16 whose low 3 bits are the codec)."""
    codecs = set()
    for seg in Path(stack.dir, "kafka", "1", "data").glob(f"{topic}-*/*.log"):
        data = seg.read_bytes()
        pos = 0
        while pos + 23 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            codecs.add(attributes & 7)
            pos += 12 + length
    return codecs


def test_every_compression_codec_loads(topic_harness):
    """2,000 messages with each codec (gzip, snappy, lz4, zstd: all four are in librdkafka 2.0.2's builtin
    features here, and txgen exits 2 naming one that is not; the broker keeps the producer's compression):
    every codec shows in the broker's segments, and all load exactly once."""
    h = topic_harness(4)
    for i, codec in enumerate(CODECS):
        h.produce(2000, 100 + i, "--kafka-conf", f"compression.codec={codec}")
    assert batch_codecs(h.stack, h.topic) == set(CODECS.values()), batch_codecs(h.stack, h.topic)
    h.drain()
    assert_exactly_once(h, read_topic(h))
