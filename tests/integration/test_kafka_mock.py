"""tests/integration/test_kafka_mock.py — chainwatch-kafka-mock as a black box: kcat, groups, signals

Binaries come from $CHAINWATCH_BIN, else $CHAINWATCH_TOP/build/bin, else <repo>/build/bin
(point CHAINWATCH_BIN at build/san/bin to run the sanitizer build). Every process a test starts
is killed in fixture teardown, also when the test fails.
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

TOP = pathlib.Path(os.environ.get("CHAINWATCH_TOP") or pathlib.Path(__file__).resolve().parents[2])
BIN = pathlib.Path(os.environ.get("CHAINWATCH_BIN") or TOP / "build" / "bin")
MOCK = BIN / "chainwatch-kafka-mock"


def _require_binary():
    if not MOCK.exists():
        pytest.fail(f"{MOCK} not built (make tools/kafka-mock)")


class Broker:
    """A running chainwatch-kafka-mock; bootstrap is the list it published."""

    def __init__(self, proc, bootstrap, bootstrap_file):
        self.proc = proc
        self.bootstrap = bootstrap
        self.bootstrap_file = bootstrap_file


@pytest.fixture
def start_broker(tmp_path):
    """start_broker(*args) starts a mock broker and waits for its bootstrap file (10 s)."""
    _require_binary()
    procs = []

    def start(*args):
        bfile = tmp_path / f"bootstrap-{len(procs)}.txt"
        proc = subprocess.Popen(
            [str(MOCK), "--bootstrap-file", str(bfile), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not bfile.exists():
            if proc.poll() is not None:
                pytest.fail(f"mock exited {proc.returncode}: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("bootstrap file did not appear within 10 s")
            time.sleep(0.02)
        return Broker(proc, bfile.read_text().strip(), bfile)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def kcat(*args, input=None, timeout=30):
    """Run kcat; fail the test with its stderr if it fails."""
    res = subprocess.run(
        ["kcat", *args], input=input, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"kcat {args} exited {res.returncode}: {res.stderr}"
    return res.stdout


def test_help_documents_limits():
    _require_binary()
    res = subprocess.run([str(MOCK), "--help"], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0
    for word in ("--brokers", "--topic", "--bootstrap-file", "--help", "memory", "5 MiB"):
        assert word in res.stdout, f"--help does not mention {word!r}"


@pytest.mark.parametrize(
    "args, named",
    [
        (["--brokers", "0"], "--brokers"),
        (["--brokers", "x"], "--brokers"),
        (["--topic", "noparts"], "--topic"),
        (["--topic", "t:0"], "--topic"),
        (["--topic", "bad name:3"], "--topic"),
        (["--topic", "t:1", "--topic", "t:2"], "--topic"),
        (["--bogus"], "--bogus"),
        (["--brokers"], "--brokers"),
        (["stray"], "stray"),
    ],
)
def test_bad_arguments_exit_2(args, named):
    _require_binary()
    res = subprocess.run([str(MOCK), *args], capture_output=True, text=True, timeout=10)
    assert res.returncode == 2, res.stderr
    assert named in res.stderr


def test_bootstrap_list_on_stdout_and_file(start_broker):
    b = start_broker("--brokers", "2", "--topic", "t:1")
    line = b.proc.stdout.readline().strip()
    assert line == b.bootstrap
    hosts = b.bootstrap.split(",")
    assert len(hosts) == 2
    for h in hosts:
        host, port = h.rsplit(":", 1)
        assert host == "127.0.0.1" and 0 < int(port) < 65536
    # the atomic write leaves no temporary file behind
    assert [p.name for p in b.bootstrap_file.parent.iterdir()] == [b.bootstrap_file.name]


def test_metadata_lists_topics(start_broker):
    b = start_broker("--topic", "tx:6", "--topic", "other:1")
    meta = json.loads(kcat("-b", b.bootstrap, "-L", "-J"))
    assert len(meta["brokers"]) == 3
    topics = {t["topic"]: t for t in meta["topics"]}
    assert len(topics["tx"]["partitions"]) == 6
    assert len(topics["other"]["partitions"]) == 1
    assert all(len(p["replicas"]) == 3 for p in topics["tx"]["partitions"])


def test_kcat_produce_consume_in_order(start_broker):
    b = start_broker("--topic", "events:4")
    n = 3000
    data = "".join(f"k{i % 17}:{i}\n" for i in range(n))
    kcat("-b", b.bootstrap, "-P", "-t", "events", "-K:", input=data)
    out = kcat("-b", b.bootstrap, "-C", "-t", "events", "-o", "beginning", "-e", "-q",
               "-f", "%p %o %k %s\n")
    per_partition = {}
    key_partition = {}
    for line in out.splitlines():
        p, o, k, v = line.split()
        per_partition.setdefault(int(p), []).append((int(o), int(v)))
        assert key_partition.setdefault(k, p) == p, f"key {k} in two partitions"
    values = sorted(v for msgs in per_partition.values() for _, v in msgs)
    assert values == list(range(n)), "messages lost or duplicated"
    for p, msgs in per_partition.items():
        offsets = [o for o, _ in msgs]
        assert offsets == list(range(len(msgs))), f"partition {p}: offsets not dense"
        vals = [v for _, v in msgs]
        assert vals == sorted(vals), f"partition {p}: out of order"


def test_consumer_group_cooperative_sticky_commit_resume(start_broker):
    ck = pytest.importorskip("confluent_kafka")
    b = start_broker("--topic", "grp:4")
    n = 1000
    prod = ck.Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(n):
        prod.produce("grp", key=f"k{i % 13}", value=str(i))
    assert prod.flush(10) == 0

    def consumer():
        # The mock keeps a departed group's rebalance pending for session.timeout.ms - 1 s,
        # so keep the session short: the second member then joins in ~5 s, not ~44 s.
        return ck.Consumer({
            "bootstrap.servers": b.bootstrap,
            "group.id": "chainwatch-test",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        })

    def consume(c, want, timeout):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(m)
        return got

    c1 = consumer()
    c1.subscribe(["grp"])
    first = consume(c1, 400, 20)
    assert len(first) == 400, f"first consumer got {len(first)} messages"
    last = {}
    for m in first:
        last[m.partition()] = m.offset()
    commit = [ck.TopicPartition("grp", p, o + 1) for p, o in last.items()]
    c1.commit(offsets=commit, asynchronous=False)
    committed = {tp.partition: tp.offset
                 for tp in c1.committed([ck.TopicPartition("grp", p) for p in range(4)], 10)}
    for p, o in last.items():
        assert committed[p] == o + 1
    c1.close()

    c2 = consumer()
    c2.subscribe(["grp"])
    # The first consumer read partitions unevenly; it only read what it committed.
    expected_rest = n - sum(o + 1 for o in last.values())
    rest = consume(c2, expected_rest, 30)
    c2.close()
    for m in rest:
        assert m.offset() >= committed.get(m.partition(), 0), "re-read a committed message"
    values = sorted(int(m.value()) for m in first if m.offset() < committed[m.partition()])
    values += [int(m.value()) for m in rest]
    assert sorted(values) == list(range(n)), f"{len(values)} of {n} messages after resume"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_promptly(start_broker, sig):
    b = start_broker("--topic", "t:2")
    kcat("-b", b.bootstrap, "-L")
    t0 = time.monotonic()
    b.proc.send_signal(sig)
    rc = b.proc.wait(timeout=5)
    assert rc == 0, b.proc.stderr.read()
    assert time.monotonic() - t0 < 3
    assert not b.bootstrap_file.exists(), "bootstrap file left behind"
