"""tests/integration/test_txgen.py — chainwatch-txgen as a black box: formats, determinism, labels, Kafka

Binaries come from $CHAINWATCH_BIN, else $CHAINWATCH_TOP/build/bin, else <repo>/build/bin
(point CHAINWATCH_BIN at build/san/bin to run the sanitizer build). Every process a test starts
is killed in fixture teardown, also when the test fails.
"""

import collections
import csv
import datetime
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

TOP = pathlib.Path(os.environ.get("CHAINWATCH_TOP") or pathlib.Path(__file__).resolve().parents[2])
BIN = pathlib.Path(os.environ.get("CHAINWATCH_BIN") or TOP / "build" / "bin")
TXGEN = BIN / "chainwatch-txgen"
MOCK = BIN / "chainwatch-kafka-mock"

HASH = re.compile(r"^0x[0-9a-f]{64}$")
ADDR = re.compile(r"^0x[0-9a-f]{40}$")
DATA = re.compile(r"^0x([0-9a-f]{2})*$")
QTY = re.compile(r"^0x(0|[1-9a-f][0-9a-f]*)$")
DEC = re.compile(r"^(0|[1-9][0-9]*)$")
KINDS = {"huge_value", "gas_price_spike", "gas_limit_outlier", "address_burst",
         "address_poisoning", "drainer_sweep", "peel_chain"}
GWEI = 10**9
ETH = 10**18

ETHERSCAN_FIELDS = [
    "blockNumber", "timeStamp", "hash", "nonce", "blockHash", "transactionIndex", "from", "to",
    "value", "gas", "gasPrice", "isError", "txreceipt_status", "input", "contractAddress",
    "cumulativeGasUsed", "gasUsed", "confirmations",
]
JSONRPC_FIELDS = [
    "hash", "nonce", "blockHash", "blockNumber", "transactionIndex", "from", "to", "value",
    "gas", "gasPrice", "input", "type", "chainId",
]
# ethereum-etl's `stream --output kafka` transaction item: transaction_to_dict joined with the receipt
# (ethereumetl/streaming/enrich.py enrich_transactions, in its order), then item_id and item_timestamp
ETHEREUM_ETL_FIELDS = [
    "type", "hash", "nonce", "transaction_index", "from_address", "to_address", "value", "gas", "gas_price",
    "input", "block_timestamp", "block_number", "block_hash", "max_fee_per_gas", "max_priority_fee_per_gas",
    "transaction_type", "receipt_cumulative_gas_used", "receipt_gas_used", "receipt_contract_address",
    "receipt_root", "receipt_status", "receipt_effective_gas_price", "item_id", "item_timestamp",
]
LEGACY_FIELDS = ["hash", "from", "to", "value", "gas", "gasPrice", "timestamp", "blockNumber"]


def txgen(*args, timeout=60):
    """Run chainwatch-txgen to completion; returns the CompletedProcess (stdout as bytes)."""
    if not TXGEN.exists():
        pytest.fail(f"{TXGEN} not built (make tools/txgen)")
    return subprocess.run([str(TXGEN), *map(str, args)], capture_output=True, timeout=timeout)


def generate(*args):
    """Run txgen, require success, return the parsed JSON lines."""
    res = txgen(*args)
    assert res.returncode == 0, res.stderr.decode()
    return [json.loads(line) for line in res.stdout.splitlines()]


def read_labels(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["hash", "kind"], f"labels header is {rows[0]}"
    return {h: k for h, k in rows[1:]}


@pytest.fixture(scope="module")
def stream100k(tmp_path_factory):
    """100k etherscan transactions (seed 7) with their labels, shared by the statistics tests."""
    labels = tmp_path_factory.mktemp("txgen") / "labels.csv"
    rows = generate("--count", 100000, "--seed", 7, "--labels", labels)
    return rows, read_labels(labels)


@pytest.fixture(scope="module")
def stream200k(tmp_path_factory):
    """200k jsonrpc transactions (seed 31, --anomaly-rate 0.01) with their labels, for the tests of
    behaviour: rows in stream order, labels by hash."""
    labels = tmp_path_factory.mktemp("txgen") / "labels.csv"
    rows = generate("--count", 200000, "--seed", 31, "--anomaly-rate", 0.01, "--format", "jsonrpc",
                    "--labels", labels)
    for r in rows:
        r["value"] = int(r["value"], 16)
        r["nonce"] = int(r["nonce"], 16)
        r["blockNumber"] = int(r["blockNumber"], 16)
    return rows, read_labels(labels)


def is_plain_transfer(r):
    return r["to"] is not None and r["input"] == "0x"


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def first_seen(rows):
    """first_seen: address -> index of the first row that names it as sender or recipient."""
    seen = {}
    for i, r in enumerate(rows):
        for a in (r["from"], r["to"]):
            if a is not None and a not in seen:
                seen[a] = i
    return seen


@pytest.fixture
def procs():
    """A list to register Popen objects in; all are killed at teardown."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


@pytest.fixture
def broker(tmp_path, procs):
    """A fresh chainwatch-kafka-mock with topic txs (16 partitions); returns its bootstrap list."""
    if not MOCK.exists():
        pytest.fail(f"{MOCK} not built (make tools/kafka-mock)")
    bfile = tmp_path / "bootstrap.txt"
    p = subprocess.Popen([str(MOCK), "--topic", "txs:16", "--bootstrap-file", str(bfile)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs.append(p)
    deadline = time.monotonic() + 10
    while not bfile.exists():
        assert p.poll() is None, f"mock exited: {p.stderr.read().decode()}"
        assert time.monotonic() < deadline, "mock did not publish its bootstrap list"
        time.sleep(0.02)
    return bfile.read_text().strip()


def test_help_documents_every_option():
    res = txgen("--help")
    assert res.returncode == 0
    text = res.stdout.decode()
    for opt in ("--count", "--rate", "--seed", "--format", "--anomaly-rate", "--labels",
                "--start-block", "--brokers", "--topic", "--kafka-conf", "--help",
                "etherscan", "jsonrpc", "ethereum-etl", "legacy", *KINDS):
        assert opt in text, f"--help does not mention {opt}"


@pytest.mark.parametrize(
    "args, named",
    [
        (["--count", "-1"], "--count"),
        (["--count", "ten"], "--count"),
        (["--rate", "-3"], "--rate"),
        (["--rate", "fast"], "--rate"),
        (["--seed", "1.5"], "--seed"),
        (["--format", "xml"], "--format"),
        (["--anomaly-rate", "1.5"], "--anomaly-rate"),
        (["--start-block", "x"], "--start-block"),
        (["--brokers", "127.0.0.1:9"], "--topic"),
        (["--topic", "t"], "--brokers"),
        (["--topic", "bad topic", "--brokers", "x"], "--topic"),
        (["--brokers", "127.0.0.1:9", "--topic", "t", "--kafka-conf", "nokey"], "--kafka-conf"),
        (["--brokers", "127.0.0.1:9", "--topic", "t", "--kafka-conf", "no.such=1"],
         "--kafka-conf"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2(args, named):
    res = txgen(*args)
    assert res.returncode == 2, res.stderr.decode()
    assert named in res.stderr.decode()
    assert res.stdout == b""


def test_etherscan_format():
    rows = generate("--count", 5000, "--format", "etherscan", "--seed", 3)
    assert len(rows) == 5000
    creations = 0
    for r in rows:
        assert list(r) == ETHERSCAN_FIELDS
        assert all(isinstance(v, str) for v in r.values()), r
        for k in ("blockNumber", "timeStamp", "nonce", "transactionIndex", "value", "gas",
                  "gasPrice", "cumulativeGasUsed", "gasUsed", "confirmations"):
            assert DEC.match(r[k]), (k, r[k])
        assert HASH.match(r["hash"]) and HASH.match(r["blockHash"])
        assert ADDR.match(r["from"])
        assert DATA.match(r["input"])
        assert r["isError"] == "0" and r["txreceipt_status"] == "1"
        if r["to"] == "":
            creations += 1
            assert ADDR.match(r["contractAddress"]) and r["input"] != "0x"
        else:
            assert ADDR.match(r["to"]) and r["contractAddress"] == ""
        assert int(r["gasUsed"]) <= int(r["gas"])
        assert int(r["gasUsed"]) <= int(r["cumulativeGasUsed"])
        if r["gas"] == "21000":
            assert r["input"] == "0x"
    assert creations > 0, "no contract creation in 5000 transactions"


def test_jsonrpc_format():
    rows = generate("--count", 5000, "--format", "jsonrpc", "--seed", 3)
    types = collections.Counter()
    for r in rows:
        for k in JSONRPC_FIELDS:
            assert k in r, (k, r)
        assert "timestamp" not in r and "timeStamp" not in r
        for k in ("nonce", "blockNumber", "transactionIndex", "value", "gas", "gasPrice",
                  "type", "chainId", "v", "r", "s"):
            assert QTY.match(r[k]), (k, r[k])
        assert HASH.match(r["hash"]) and HASH.match(r["blockHash"])
        assert ADDR.match(r["from"])
        assert r["to"] is None or ADDR.match(r["to"])
        assert DATA.match(r["input"])
        assert r["chainId"] == "0x1"
        types[r["type"]] += 1
        if r["type"] == "0x2":
            assert QTY.match(r["maxFeePerGas"]) and QTY.match(r["maxPriorityFeePerGas"])
            assert int(r["gasPrice"], 16) <= int(r["maxFeePerGas"], 16)
            assert int(r["maxPriorityFeePerGas"], 16) <= int(r["maxFeePerGas"], 16)
        else:
            assert r["type"] == "0x0"
            assert "maxFeePerGas" not in r and "maxPriorityFeePerGas" not in r
    assert set(types) == {"0x0", "0x2"} and types["0x2"] > types["0x0"], types
    assert any(r["to"] is None for r in rows), "no contract creation (to null)"


def test_legacy_format():
    rows = generate("--count", 5000, "--format", "legacy", "--seed", 3)
    for r in rows:
        assert list(r) == LEGACY_FIELDS
        assert HASH.match(r["hash"]) and ADDR.match(r["from"])
        assert r["to"] is None or ADDR.match(r["to"])
        assert isinstance(r["value"], str) and DEC.match(r["value"])
        for k in ("gas", "gasPrice", "timestamp", "blockNumber"):
            assert isinstance(r[k], int) and r[k] >= 0, (k, r[k])


def test_ethereum_etl_format():
    res = txgen("--count", 5000, "--format", "ethereum-etl", "--seed", 3)
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().splitlines()
    rows = [json.loads(line) for line in lines]
    types = collections.Counter()
    for line, r in zip(lines, rows):
        assert list(r) == ETHEREUM_ETL_FIELDS
        assert r["type"] == "transaction" and r["item_id"] == "transaction_" + r["hash"]
        # quantities are bare JSON integers as Python writes an int: never a string, a fraction or an exponent
        for k in ("nonce", "transaction_index", "value", "gas", "gas_price", "block_timestamp", "block_number",
                  "transaction_type", "receipt_cumulative_gas_used", "receipt_gas_used", "receipt_status",
                  "receipt_effective_gas_price"):
            assert type(r[k]) is int and r[k] >= 0, (k, r[k])
            assert f'"{k}":{r[k]},' in line, (k, line)
        assert HASH.match(r["hash"]) and HASH.match(r["block_hash"])
        assert ADDR.match(r["from_address"]) and DATA.match(r["input"])
        assert r["receipt_root"] is None and r["receipt_status"] == 1
        assert r["receipt_effective_gas_price"] == r["gas_price"]
        assert r["receipt_gas_used"] <= r["gas"] and r["receipt_gas_used"] <= r["receipt_cumulative_gas_used"]
        ts = datetime.datetime.fromtimestamp(r["block_timestamp"], datetime.timezone.utc)
        assert r["item_timestamp"] == ts.strftime("%Y-%m-%dT%H:%M:%SZ")
        if r["to_address"] is None:
            assert ADDR.match(r["receipt_contract_address"]) and r["input"] != "0x"
        else:
            assert ADDR.match(r["to_address"]) and r["receipt_contract_address"] is None
        types[r["transaction_type"]] += 1
        if r["transaction_type"] == 2:
            assert r["gas_price"] <= r["max_fee_per_gas"] and r["max_priority_fee_per_gas"] <= r["max_fee_per_gas"]
        else:
            assert r["transaction_type"] == 0
            assert r["max_fee_per_gas"] is None and r["max_priority_fee_per_gas"] is None
    assert set(types) == {0, 2}, types
    assert any(r["to_address"] is None for r in rows), "no contract creation (to_address null)"
    assert any(r["value"] >= 2**53 for r in rows), "no value at or above 2^53 (the case ethereum-etl forces)"


def test_formats_describe_the_same_transactions():
    es = generate("--count", 2000, "--format", "etherscan")
    rpc = generate("--count", 2000, "--format", "jsonrpc")
    leg = generate("--count", 2000, "--format", "legacy")
    etl = generate("--count", 2000, "--format", "ethereum-etl")
    for a, b, c, d in zip(es, rpc, leg, etl):
        assert a["hash"] == b["hash"] == c["hash"] == d["hash"]
        assert int(a["value"]) == int(b["value"], 16) == int(c["value"]) == d["value"]
        assert int(a["gasPrice"]) == int(b["gasPrice"], 16) == c["gasPrice"] == d["gas_price"]
        assert int(a["blockNumber"]) == int(b["blockNumber"], 16) == c["blockNumber"] == d["block_number"]
        assert int(a["timeStamp"]) == c["timestamp"] == d["block_timestamp"]
        assert (a["to"] or None) == b["to"] == c["to"] == d["to_address"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for fmt in ("etherscan", "jsonrpc", "legacy"):
        a = txgen("--count", 20000, "--seed", 42, "--format", fmt, "--labels", tmp_path / "a")
        b = txgen("--count", 20000, "--seed", 42, "--format", fmt, "--labels", tmp_path / "b")
        c = txgen("--count", 20000, "--seed", 43, "--format", fmt)
        assert a.returncode == b.returncode == c.returncode == 0
        assert a.stdout == b.stdout, f"{fmt}: same seed, different output"
        assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
        assert a.stdout != c.stdout, f"{fmt}: different seeds, same output"
    # a shorter run is a prefix of a longer one, and pacing does not change the content
    long = txgen("--count", 2000, "--seed", 42)
    short = txgen("--count", 300, "--seed", 42, "--rate", 3000)
    assert short.stdout.count(b"\n") == 300
    assert long.stdout.startswith(short.stdout)


def test_labels_match_output_and_rate(stream100k):
    rows, labels = stream100k
    by_hash = {r["hash"]: r for r in rows}
    assert len(by_hash) == len(rows), "duplicate transaction hashes"
    assert set(labels) <= set(by_hash), "labels list hashes that are not in the output"
    assert set(labels.values()) == KINDS
    rate = len(labels) / len(rows)
    assert 0.006 < rate < 0.016, f"labelled fraction {rate:.4f} for --anomaly-rate 0.01"
    bursts = collections.defaultdict(list)
    for h, kind in labels.items():
        r = by_hash[h]
        if kind == "huge_value":
            assert int(r["value"]) <= 1_000_000 * ETH and r["input"] == "0x"
        elif kind == "gas_price_spike":
            assert 5_000 * GWEI <= int(r["gasPrice"]) <= 50_000 * GWEI
        elif kind == "gas_limit_outlier":
            gas = int(r["gas"])
            assert 8_000_000 <= gas <= 30_000_000 or 21_000 < gas < 22_000
        elif kind == "address_burst":
            bursts[r["from"]].append(r)
    assert bursts, "no address_burst in 100k transactions"
    for sender, txs in bursts.items():
        assert len({t["blockNumber"] for t in txs}) == 1, "burst spans blocks"
        assert len(txs) >= 20
        assert sorted(int(t["nonce"]) for t in txs) == list(range(len(txs))), "fresh address"
    # huge values are far above their sender's own transfers, half of them 10k ETH or more
    huge = [by_hash[h] for h, k in labels.items() if k == "huge_value"]
    plain = collections.defaultdict(list)
    for r in rows:
        if r["hash"] not in labels and r["input"] == "0x" and r["to"] != "":
            plain[r["from"]].append(int(r["value"]))
    known = [r for r in huge if len(plain[r["from"]]) >= 5]
    assert len(known) >= 20, f"only {len(known)} huge values from senders with history"
    far = sum(int(r["value"]) >= 30 * median(plain[r["from"]]) for r in known)
    assert far >= 0.9 * len(known), f"{far} of {len(known)} huge values >= 30x the median"
    absolute = sum(int(r["value"]) >= 10_000 * ETH for r in huge) / len(huge)
    assert 0.3 <= absolute <= 0.7, f"{absolute:.0%} of huge values are >= 10k ETH"
    # normal transactions stay inside the normal ranges
    for r in rows:
        if r["hash"] not in labels:
            assert int(r["gasPrice"]) < 1_000 * GWEI
            assert int(r["value"]) < 10_000 * ETH


def test_anomaly_rate_zero_means_no_labels(tmp_path):
    res = txgen("--count", 20000, "--anomaly-rate", 0, "--labels", tmp_path / "l.csv")
    assert res.returncode == 0
    assert read_labels(tmp_path / "l.csv") == {}


def test_value_and_gas_distribution(stream100k):
    rows, _ = stream100k
    values = [int(r["value"]) for r in rows]
    assert any(v >= 2**64 for v in values), "no value above 2^64 wei in 100k transactions"
    assert sum(v == 0 for v in values) > 0.2 * len(rows), "too few zero-value calls"
    transfers = sorted(int(r["value"]) for r in rows if r["gas"] == "21000")
    median = transfers[len(transfers) // 2]
    assert ETH // 1000 <= median <= 10 * ETH, f"median transfer {median} wei"
    assert max(values) > 1000 * ETH
    gas21k = sum(r["gas"] == "21000" for r in rows)
    assert gas21k > 0.5 * len(rows), f"only {gas21k} of {len(rows)} have gas 21000"
    calls = [int(r["gas"]) for r in rows if r["input"] != "0x" and r["to"] != ""]
    inside = sum(50_000 <= g <= 1_000_000 for g in calls)
    assert inside > 0.97 * len(calls)


def test_chain_progression(stream100k):
    rows, _ = stream100k
    blocks = [int(r["blockNumber"]) for r in rows]
    stamps = [int(r["timeStamp"]) for r in rows]
    assert blocks[0] == 19_000_000 and stamps[0] == 1_704_067_200
    assert all(a <= b for a, b in zip(blocks, blocks[1:])), "block numbers decrease"
    assert all(a <= b for a, b in zip(stamps, stamps[1:])), "timestamps decrease"
    per_block = collections.Counter(blocks)
    assert set(per_block) == set(range(blocks[0], blocks[-1] + 1)), "skipped block numbers"
    mean = len(rows) / len(per_block)
    assert 120 <= mean <= 180, f"{mean:.1f} transactions per block"
    block_ts = {}
    for b, t in zip(blocks, stamps):
        assert block_ts.setdefault(b, t) == t, "one block, two timestamps"
    for b in range(blocks[0] + 1, blocks[-1] + 1):
        assert block_ts[b] - block_ts[b - 1] in (12, 24)
    nonces = collections.defaultdict(list)
    for r in rows:
        nonces[r["from"]].append(int(r["nonce"]))
    for sender, ns in nonces.items():
        assert ns == list(range(ns[0], ns[0] + len(ns))), f"{sender}: nonces not consecutive"
    assert len(nonces) > 1000, "sender pool too small"


def test_start_block():
    rows = generate("--count", 500, "--start-block", 123, "--format", "legacy")
    assert rows[0]["blockNumber"] == 123 and rows[-1]["blockNumber"] >= 125


def test_rate_paces_output():
    t0 = time.monotonic()
    rows = generate("--count", 600, "--rate", 1000)
    elapsed = time.monotonic() - t0
    assert len(rows) == 600
    assert 0.5 <= elapsed < 3.0, f"600 messages at 1000/s took {elapsed:.2f} s"


def test_unlimited_count_stops_on_sigterm(tmp_path, procs):
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as f:
        p = subprocess.Popen([str(TXGEN), "--count", "0", "--rate", "2000"], stdout=f,
                             stderr=subprocess.PIPE)
        procs.append(p)
        time.sleep(0.7)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0, p.stderr.read().decode()
    lines = out.read_bytes().splitlines()
    assert 500 <= len(lines) <= 3000
    for line in lines:
        json.loads(line)


def test_to_kafka_20k(broker, tmp_path):
    res = txgen("--count", 20000, "--brokers", broker, "--topic", "txs", "--format",
                "jsonrpc", "--labels", tmp_path / "labels.csv", timeout=60)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert "delivered 20000 of 20000" in err, err
    out = subprocess.run(["kcat", "-b", broker, "-C", "-t", "txs", "-o", "beginning", "-e",
                          "-q", "-f", "%k\t%s\n"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.splitlines()
    assert len(lines) == 20000
    hashes = set()
    for line in lines:
        key, value = line.split(b"\t", 1)
        tx = json.loads(value)
        assert key.decode() == tx["from"], "message not keyed by sender"
        hashes.add(tx["hash"])
    assert len(hashes) == 20000
    assert set(read_labels(tmp_path / "labels.csv")) <= hashes
    # the Kafka stream carries exactly what stdout would have
    local = txgen("--count", 20000, "--format", "jsonrpc")
    assert {json.loads(line)["hash"] for line in local.stdout.splitlines()} == hashes


def test_to_kafka_unreachable_fails():
    res = txgen("--count", 100, "--brokers", "127.0.0.1:1", "--topic", "txs",
                "--kafka-conf", "message.timeout.ms=1500", timeout=30)
    assert res.returncode == 1
    assert "delivered 0 of 100" in res.stderr.decode()


# --- behaviour of ordinary accounts (200k transactions, seed 31) ---


def test_ordinary_transfers_stay_near_their_senders_scale(stream200k):
    """No real wallet sends 50x its usual amount every sixth transfer: each account has its own
    value scale and spread, so among unlabelled plain transfers of senders with at least five of
    them, under 0.5% reach 50x the sender's median. Scales differ between senders (retail to
    whales) and each sender's values still vary."""
    rows, labels = stream200k
    by_sender = collections.defaultdict(list)
    for r in rows:
        if r["hash"] not in labels and is_plain_transfer(r):
            by_sender[r["from"]].append(r["value"])
    checked = far = 0
    medians, spreads = [], []
    for values in by_sender.values():
        if len(values) < 5:
            continue
        m = median(values)
        checked += len(values)
        far += sum(v >= 50 * m for v in values)
        medians.append(m)
        values.sort()
        spreads.append(values[int(0.9 * len(values))] / max(values[len(values) // 10], 1))
    assert checked > 30000, f"only {checked} transfers from senders with 5 or more"
    assert far / checked < 0.005, f"{far} of {checked} transfers are >= 50x their sender's median"
    medians.sort()
    assert medians[int(0.9 * len(medians))] > 100 * medians[len(medians) // 10], "one value scale"
    assert median(spreads) > 2, f"senders' values barely vary (median p90/p10 {median(spreads)})"


def test_senders_keep_to_their_counterparties(stream200k):
    """Accounts have usual counterparties: for senders with ten or more unlabelled transactions,
    most of what each sends goes to its five most frequent recipients."""
    rows, labels = stream200k
    recipients = collections.defaultdict(collections.Counter)
    for r in rows:
        if r["hash"] not in labels:
            recipients[r["from"]][r["to"]] += 1
    shares = []
    for c in recipients.values():
        n = sum(c.values())
        if n >= 10:
            shares.append(sum(k for _, k in c.most_common(5)) / n)
    assert len(shares) > 1000, f"only {len(shares)} senders with ten transactions"
    assert median(shares) >= 0.6, f"median share to the top-5 recipients {median(shares):.2f}"


def test_activity_is_heavy_tailed(stream200k):
    """Activity rates are heavy-tailed: many accounts send once, the median sender a few times,
    the busiest hundreds of times more, and the top 1% of senders carry a quarter of the
    traffic."""
    rows, _ = stream200k
    counts = sorted(collections.Counter(r["from"] for r in rows).values(), reverse=True)
    once = sum(n == 1 for n in counts) / len(counts)
    mid = counts[len(counts) // 2]
    top = sum(counts[:len(counts) // 100]) / len(rows)
    assert once >= 0.1, f"only {once:.1%} of senders send exactly once"
    assert mid <= 6, f"the median sender sends {mid} times"
    assert counts[0] >= 200 * mid, f"busiest {counts[0]} vs median {mid}"
    assert top >= 0.25, f"top 1% of senders carry {top:.1%}"


def test_kinds_behave_like_their_kind(stream200k):
    """Among the busiest senders, exchange hot wallets withdraw to many distinct, mostly new
    addresses, while bots keep calling the same few contracts; popular contracts (routers,
    tokens) are called by thousands, mostly without value."""
    rows, labels = stream200k
    seen = first_seen(rows)
    plain = collections.defaultdict(list)
    targets = collections.defaultdict(collections.Counter)
    for i, r in enumerate(rows):
        if r["hash"] in labels:
            continue
        targets[r["from"]][r["to"]] += 1
        if is_plain_transfer(r):
            plain[r["from"]].append((i, r["to"]))
    busiest = sorted(targets, key=lambda a: -sum(targets[a].values()))[:40]
    exchanges = bots = 0
    for a in busiest:
        sent = plain[a]
        n = sum(targets[a].values())
        if len(sent) >= 100 and len({to for _, to in sent}) >= 0.8 * len(sent):
            new = sum(seen[to] == i for i, to in sent)
            assert new >= 0.4 * len(sent), f"{a}: {new} of {len(sent)} withdrawals to new addresses"
            exchanges += 1
        elif len(targets[a]) <= 0.2 * n:
            bots += 1
    assert exchanges >= 5, f"{exchanges} exchange-like senders among the busiest 40"
    assert bots >= 3, f"{bots} senders with few counterparties among the busiest 40"
    callers = collections.defaultdict(set)
    calls = collections.Counter()
    zero = collections.Counter()
    for r in rows:
        if r["to"] is not None and r["input"] != "0x" and r["hash"] not in labels:
            callers[r["to"]].add(r["from"])
            calls[r["to"]] += 1
            zero[r["to"]] += r["value"] == 0
    top = calls.most_common(5)
    assert top[0][1] >= 3 * top[4][1], f"contract popularity is flat: {top}"
    assert len(callers[top[0][0]]) >= 1000
    assert zero[top[0][0]] >= 0.6 * top[0][1]


def test_new_accounts_appear_during_the_stream(stream200k):
    """First seen happens during the stream too: addresses funded by a transfer (mostly an
    exchange withdrawal) later send their own first transaction (nonce 0), in both halves."""
    rows, labels = stream200k
    seen = first_seen(rows)
    started = set()
    late = []
    for i, r in enumerate(rows):
        a = r["from"]
        if a in started:
            continue
        started.add(a)
        if r["nonce"] == 0 and r["hash"] not in labels and seen[a] < i:
            late.append(i)
    assert len(late) >= 500, f"only {len(late)} funded accounts start sending"
    assert sum(i >= len(rows) // 2 for i in late) >= 0.3 * len(late)


def test_tip_habits_differ_between_senders(stream200k):
    """Each account tips its own way relative to the market (bots far above it): the spread of
    senders' median priority fees is much wider than the spread within one sender."""
    rows, labels = stream200k
    tips = collections.defaultdict(list)
    for r in rows:
        if r["type"] == "0x2" and r["hash"] not in labels:
            tips[r["from"]].append(int(r["maxPriorityFeePerGas"], 16))
    medians, within = [], []
    for t in tips.values():
        if len(t) >= 20:
            t.sort()
            medians.append(t[len(t) // 2])
            within.append(t[int(0.9 * len(t))] / t[len(t) // 10])
    medians.sort()
    across = medians[int(0.9 * len(medians))] / medians[len(medians) // 10]
    assert len(medians) >= 200
    assert across >= 5, f"senders' median tips p90/p10 {across:.1f}"
    assert across >= 2 * median(within), f"across {across:.1f}, within {median(within):.1f}"


def test_gas_prices_drift(stream200k):
    """The market moves: the median gas price of 100-block (20-minute) windows varies by more
    than 1.5x."""
    rows, _ = stream200k
    windows = collections.defaultdict(list)
    for r in rows:
        windows[r["blockNumber"] // 100].append(int(r["gasPrice"], 16))
    medians = [median(v) for v in windows.values()]
    assert max(medians) >= 1.5 * min(medians), medians


# --- attacks that only show over time (200k transactions, seed 31) ---


def labelled(rows, labels, kind):
    """(index, row) of every transaction labelled kind, in stream order."""
    return [(i, r) for i, r in enumerate(rows) if labels.get(r["hash"]) == kind]


def gas_cost(r):
    """What a plain transfer's gas cost its sender (gas used = gas limit = 21000)."""
    assert r["input"] == "0x" and int(r["gas"], 16) == 21000
    return 21000 * int(r["gasPrice"], 16)


def lookalike(a, b):
    """a imitates b: the same first and last four hex digits, a different address."""
    return a != b and a[2:6] == b[2:6] and a[-4:] == b[-4:]


def test_every_kind_keeps_its_share(stream200k):
    """Every kind appears, each with a sizeable share of the labels (the shares are fixed,
    --anomaly-rate scales them all)."""
    _, labels = stream200k
    counts = collections.Counter(labels.values())
    assert set(counts) == KINDS, counts
    for kind, n in counts.items():
        assert 0.04 <= n / len(labels) <= 0.25, f"{kind}: {n} of {len(labels)} labels"


def test_address_poisoning_imitates_a_recent_counterparty(stream200k):
    """Address poisoning: shortly after a victim paid a counterparty (an ordinary, unlabelled
    transfer), a fresh address that looks like the counterparty (same first and last four hex
    digits) sends the victim dust, or a fresh operator calls transferFrom(victim, lookalike, 0)
    on a token, so the lookalike shows up in the victim's history. Within 20 blocks."""
    rows, labels = stream200k
    paid = collections.defaultdict(list)  # victim -> [(block, counterparty)]
    seen = first_seen(rows)
    dust = zero = 0
    for i, r in enumerate(rows):
        kind = labels.get(r["hash"])
        if kind is None and is_plain_transfer(r):
            paid[r["from"]].append((r["blockNumber"], r["to"]))
        if kind != "address_poisoning":
            continue
        if r["input"] == "0x":
            victim, fake = r["to"], r["from"]
            assert 0 < r["value"] <= ETH // 10_000, f"poisoning dust of {r['value']} wei"
            assert r["nonce"] == 0 and seen[fake] == i, "dust from a used address"
            dust += 1
        else:
            assert r["input"][:10] == "0x23b872dd" and len(r["input"]) == 2 + 8 + 3 * 64
            victim = "0x" + r["input"][10 + 24:10 + 64]
            fake = "0x" + r["input"][10 + 64 + 24:10 + 128]
            assert int(r["input"][10 + 128:], 16) == 0 and r["value"] == 0
            zero += 1
        recent = [to for b, to in paid[victim] if r["blockNumber"] - b <= 20]
        assert any(lookalike(fake, to) for to in recent), \
            f"{fake} imitates none of {victim}'s recent counterparties {recent}"
    assert dust >= 50 and zero >= 30, f"{dust} dust transfers, {zero} zero-value transferFrom"


def test_drainer_sweep_empties_victims_into_one_fresh_address(stream200k):
    """Drainer sweep: several accounts with history each empty their wallet into the same
    fresh address within minutes, each in a burst of consecutive nonces inside a few blocks:
    token approvals or transfers naming the drainer, then ETH far above what the account
    usually sends (20..200x its scale, so >= 5x the median of the few transfers seen). Where
    the drainer is an EOA it forwards what it took, 20% to one fee address shared by every
    drainer and the rest to a fresh payout, keeping nothing."""
    rows, labels = stream200k
    seen = first_seen(rows)
    plain = collections.defaultdict(list)
    for r in rows:
        if r["hash"] not in labels and is_plain_transfer(r):
            plain[r["from"]].append(r["value"])
    sweep = labelled(rows, labels, "drainer_sweep")
    sinks = {r["to"] for _, r in sweep if r["input"] == "0x"}  # drainers, fee, payouts
    bursts = collections.defaultdict(list)  # (victim, drainer) -> the victim's burst
    out = collections.defaultdict(list)  # drainer -> what it sent on
    for i, r in sweep:
        if r["from"] in sinks:
            out[r["from"]].append((i, r))
        else:
            drainer = r["to"] if r["input"][:10] in ("0x", "0x4e71d92d") else \
                "0x" + r["input"][10 + 24:10 + 64]
            bursts[r["from"], drainer].append((i, r))
    waves = collections.defaultdict(list)  # drainer -> its victims' ETH sweeps
    tokens = checked = 0
    for (victim, drainer), txs in bursts.items():
        if txs[-1][1]["to"] != drainer and txs[-1][0] >= len(rows) - 500:
            continue  # cut off by the end of the stream
        *calls, (i, eth) = txs
        assert eth["to"] == drainer and eth["value"] > 0, "a burst that does not end in ETH"
        waves[drainer].append((i, eth))
        nonces = [r["nonce"] for _, r in txs]
        assert nonces == sorted(nonces) and nonces[-1] - nonces[0] <= len(nonces) + 1
        assert nonces[0] > 0, "a drained account without history"
        assert eth["blockNumber"] - txs[0][1]["blockNumber"] <= 3, "a slow sweep"
        for _, r in calls:
            assert r["input"][:10] in ("0xa9059cbb", "0x095ea7b3") and r["value"] == 0
            assert r["input"][10 + 24:10 + 64] == drainer[2:], "a token call not to the drainer"
            tokens += 1
        if len(plain[victim]) >= 5:
            checked += 1
            assert eth["value"] >= 5 * median(plain[victim]), "a small sweep"
    fees = collections.Counter()
    for drainer, victims in waves.items():
        if victims[-1][0] >= len(rows) - 5000:
            continue  # perhaps cut off by the end of the stream
        assert len(victims) >= 3, f"{drainer}: {len(victims)} victims"
        assert seen[drainer] >= bursts[victims[0][1]["from"], drainer][0][0], \
            f"{drainer} existed before the sweep"
        span = victims[-1][1]["blockNumber"] - victims[0][1]["blockNumber"]
        assert span <= 30 * len(victims), f"{drainer}: {len(victims)} victims in {span} blocks"
        if out[drainer]:
            took = sum(r["value"] for _, r in victims)
            (_, fee), (j, payout) = out[drainer]
            assert fee["nonce"] == 0 and payout["nonce"] == 1 and fee["to"] not in waves
            assert fee["value"] == took // 5, "the fee is not 20%"
            assert seen[payout["to"]] == j, "payout to a used address"
            assert fee["value"] + payout["value"] + gas_cost(fee) + gas_cost(payout) == took, \
                "the drainer kept some"
            fees[fee["to"]] += 1
    assert len(waves) >= 5 and checked >= 20 and tokens >= 20, (len(waves), checked, tokens)
    assert len(fees) == 1 and sum(fees.values()) >= 2, f"fee addresses {fees}"
    assert set(out) <= set(waves)


def test_peel_chain_forwards_most_of_each_hop(stream200k):
    """Peel chain: value hops through fresh addresses; each holder sends two transactions, a
    small peel (<= 15% of what it holds) to an exchange or a deposit address and the rest
    minus gas (> 80% of what it received) to a fresh address, which becomes the next holder
    within minutes. Each holder ends with exactly nothing."""
    rows, labels = stream200k
    seen = first_seen(rows)
    peel = labelled(rows, labels, "peel_chain")
    by_holder = collections.defaultdict(list)
    for i, r in peel:
        by_holder[r["from"]].append((i, r))
    received = {}
    hops = chains = 0
    for holder, txs in by_holder.items():
        if len(txs) == 1 and txs[0][0] >= len(rows) - 2000:
            continue  # cut off by the end of the stream
        assert [r["nonce"] for _, r in txs] == [0, 1], f"{holder} is not a fresh one-hop holder"
        (_, cut), (j, fwd) = txs
        held = cut["value"] + gas_cost(cut) + fwd["value"] + gas_cost(fwd)
        assert cut["value"] <= 0.15 * held, "the peel is not small"
        assert fwd["value"] >= 0.8 * held
        assert seen[fwd["to"]] == j, "forwarded to a used address"
        if holder in received:
            assert received[holder] == held, f"{holder} did not pass on exactly what it got"
            hops += 1
        else:
            chains += 1
        received[fwd["to"]] = fwd["value"]
    assert chains >= 10 and hops >= 3 * chains, f"{chains} chains, {hops} linked hops"


ROUTER_SELECTORS = {"0x3593564c", "0x7ff36ab5", "0x38ed1739", "0x18cbafe5", "0x5ae401dc",
                    "0xac9650d8"}
TOKEN_SELECTORS = {"0xa9059cbb", "0x095ea7b3", "0x23b872dd"}


def test_contracts_are_called_like_their_kind(stream200k):
    """Contracts have kinds: among the 20 most called, DEX routers take swaps, execute and
    multicall (some with ETH), tokens take transfer/approve/transferFrom and never ETH, and
    WETH takes deposit() with ETH."""
    rows, labels = stream200k
    calls = collections.defaultdict(list)
    for r in rows:
        if r["to"] is not None and r["input"] != "0x" and r["hash"] not in labels:
            calls[r["to"]].append(r)
    top = sorted(calls, key=lambda a: -len(calls[a]))[:20]
    routers = tokens = weth = 0
    for a in top:
        sels = collections.Counter(r["input"][:10] for r in calls[a])
        n = len(calls[a])
        if set(sels) <= ROUTER_SELECTORS:
            routers += 1
            paid = sum(r["value"] > 0 for r in calls[a])
            assert 0.05 * n <= paid <= 0.6 * n, f"router {a}: {paid} of {n} calls carry ETH"
        elif set(sels) <= TOKEN_SELECTORS:
            tokens += 1
            assert all(r["value"] == 0 for r in calls[a]), f"token {a} received ETH"
        elif "0xd0e30db0" in sels and all(r["value"] > 0 for r in calls[a]
                                          if r["input"] == "0xd0e30db0"):
            weth += 1
    assert routers >= 3 and tokens >= 8 and weth >= 1, (routers, tokens, weth)


def test_accounts_funded_off_stream_appear(stream200k):
    """Not every new account is funded by a visible transfer: some first appear as the sender
    of nonce 0 (funded by a bridge or a contract's internal transfer) at a steady rate, so the
    last quarter of the stream still has over 300 such first transactions (the starting pool's
    unused accounts alone give ~220 there, seed 31), and some of them keep sending."""
    rows, labels = stream200k
    seen = first_seen(rows)
    fresh = [i for i, r in enumerate(rows)
             if r["nonce"] == 0 and seen[r["from"]] == i and r["hash"] not in labels]
    late = sum(i >= 3 * len(rows) // 4 for i in fresh)
    assert late >= 300, f"only {late} unfunded first transactions in the last quarter"
    sent = collections.Counter(r["from"] for r in rows)
    assert sum(sent[rows[i]["from"]] >= 2 for i in fresh) >= 0.2 * len(fresh)
