"""tests/integration/test_hostile_http.py — chainwatch-api under hostile HTTP (issue 5, "hostile HTTP")

The requirement: slowloris-style slow headers, oversized headers and bodies, invalid UTF-8, path traversal,
SQL injection strings in every parameter, 10k connections opened and dropped — the server stays up, answers
others, leaks no file descriptors and no memory, and never echoes internals (no stack traces, no SQL).

How it is proved, and why this way:
* One private stack, seeded without recreating the extension (test_api.prepare_database drops and recreates it,
  which would also drop the grants sql/roles.sql gave the API's role). The API runs as the least-privilege role
  chainwatch_api (stack.role_url("api")), from $CHAINWATCH_BIN: build/bin, or build/san/bin (ASan/UBSan).
* Malformed requests go over raw sockets (no client library "fixes" them); every answer is parsed here and must
  be our JSON error format (`{"error": {"code", "message"}}`) or a normal result, never a 5xx, and its body must
  hold none of the server's internals (check_no_internals): Postgres or libpq wording, our SQL, file paths, the
  database password, sanitizer output. An internal word the request itself carried is not held against it.
* Liveness deadlines are generous; the only time bounds asserted tightly are lower bounds (a slow connection is
  never cut before REQUEST_TIMEOUT_MS), which load cannot break.
* Leaks: server-side sockets on the API port (from /proc/PID/net/tcp) must return to zero and the fd count to its
  baseline after 2 x 10,000 dropped connections; RSS may not grow by 8 MiB or more during the second round (less
  than 1 KiB per connection; ASan's quarantine alone accounts for about 2 MiB). Under ASan, LeakSanitizer runs at
  exit: every API process started here must exit 0 on SIGTERM with no sanitizer report in its log.
Everything talks to 127.0.0.1.
"""
import base64
import json
import os
import re
import select
import signal
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from types import SimpleNamespace

import pytest
import requests

from conftest import REPO_ROOT, new_stack_dir, start_stack, tcp_sockets, teardown_stack
from test_api import ApiProcess, Ingest, addr, etherscan_tx, sql, tx_hash

REQUEST_TIMEOUT_MS = 3000        # the module's API: short, so slow requests are cut quickly
MAX_BODY_BYTES = 1048576         # the default
ROUND = 10000                    # connections per round of the connection-churn test
RSS_GROWTH_LIMIT = 8 * 1024      # KiB that round 2 of the churn may add to the RSS
LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
MARKER = f"/tmp/chainwatch-hostile-{uuid.uuid4().hex}"  # created only if an injected COPY ... TO PROGRAM ran

INJECTIONS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "'; DROP TABLE chainwatch.anomalies; --",
    "1); DROP TABLE chainwatch.transactions; --",
    "1) UNION SELECT usename, passwd FROM pg_shadow --",
    "x' UNION SELECT NULL, version() --",
    "1' AND pg_sleep(3) IS NULL --",
    f"'; COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'; --",
    "\\'; SELECT 1; --",
    '" OR ""="',
    "$1",
    "%27%20OR%201%3D1--",
    "0x' OR 1=1 --" + "0" * 40,
    "1e309",
    "-1",
]

# words that betray internals; checked case-insensitively unless the request itself contained them
INTERNALS = ["ERROR:", "syntax error", "postgres", "libpq", "PGRES", "SQLSTATE", "Traceback", "Sanitizer",
             "DETAIL:", "HINT:", "LINE 1", "invalid input syntax", "out of range", "permission denied",
             "relation \"", "recent_anomalies", "json_agg", "row_to_json", "::bigint", "::text", "cw_anomaly",
             "authenticate_api_key", "/work/", str(REPO_ROOT), "root:x:0:0", ".c:"]


# ---- helpers ------------------------------------------------------------------------------------------------

def seed(stack):
    """seed — two keys, 300 transactions, an active model and 20 anomalies, in the stack's own extension."""
    keys = {role: sql(stack, "SELECT chainwatch.create_api_key(%s, %s)", (f"hostile-{role}", role))[0][0]
            for role in ("reader", "admin")}
    ingest = Ingest(stack)
    ingest.commit(transactions=[
        {"hash": tx_hash(f"h{i}"), "from": addr(f"hf{i % 20}"), "to": addr(f"ht{i % 30}"),
         "value": (i * 7919 % 100003) * 10**13, "gas": 21000 + (i * 104729) % 200000,
         "gas_price": ((i * 31337) % 90 + 10) * 10**9} for i in range(300)])
    model = sql(stack, "SELECT chainwatch.activate_model(chainwatch.train_model('hostile',"
                       " 'SELECT value, gas, gas_price FROM chainwatch.transactions', n_trees => 20, seed => 5))")[0][0]
    ingest.commit(anomalies=[
        {"hash": tx_hash(f"ha{i}"), "from": addr("mallory"), "to": addr(f"hy{i}"), "value": 10**18 * (i + 1),
         "score": 0.7 + i / 100, "severity": ["low", "medium", "high", "critical"][i % 4]} for i in range(20)],
        model_id=model)
    return keys, model


def table_counts(stack):
    """table_counts — rows of the tables an injection would target (api_keys via the superuser)."""
    return {t: sql(stack, f"SELECT count(*) FROM chainwatch.{t}")[0][0]
            for t in ("anomalies", "transactions", "models", "api_keys", "kafka_offsets")}


def start_api(stack, **env):
    """start_api — chainwatch-api as chainwatch_api, with the module's short request timeout unless given."""
    settings = dict(DATABASE_URL=stack.role_url("api"), REQUEST_TIMEOUT_MS=REQUEST_TIMEOUT_MS, API_THREADS=64)
    settings.update(env)
    return ApiProcess(stack, stack.dir, **settings)


def stop_clean(api):
    """stop_clean — SIGTERM; the process must exit 0 with no sanitizer report (LeakSanitizer runs at exit)."""
    rc = api.stop(signal.SIGTERM, timeout=30)
    log = api.log_path.read_text(errors="replace")
    reports = [line for line in log.splitlines() if "Sanitizer" in line or "runtime error:" in line]
    assert rc == 0, f"chainwatch-api exited {rc}; log tail:\n{log[-3000:]}"
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20]) + "\n" + log[-3000:]


def raw_request(port, data, timeout=10.0, shutdown_write=False):
    """raw_request — send bytes on a fresh connection, read until the server closes it or `timeout` passes.

    Returns (response bytes, closed): closed is True when the server ended the connection (EOF or RST)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out, closed = b"", False
    deadline = time.monotonic() + timeout
    try:
        try:
            s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before it has read everything we send
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return out, closed


def parse_response(data):
    """parse_response — (status, headers with lower-case names, body) of the first HTTP response in data."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response: {data[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    assert m, f"not an HTTP status line: {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return int(m.group(1)), headers, rest[:length]


def check_no_internals(body, request_text="", secrets=()):
    """check_no_internals — the body is valid UTF-8 and holds no internal word (unless the request had it)."""
    text = body.decode("utf-8")  # strict: a response must never carry invalid UTF-8
    for word in INTERNALS:
        if word.lower() in text.lower() and word.lower() not in request_text.lower():
            raise AssertionError(f"response leaks {word!r}: {text[:400]}")
    for secret in secrets:
        assert secret not in text, f"response leaks a secret: {text[:400]}"
    return text


def check_json_error(status, headers, body, statuses=None, request_text=""):
    """check_json_error — a 4xx with our JSON error format; returns the error object."""
    assert 400 <= status < 500, f"status {status}: {body[:300]!r}"
    if statuses:
        assert status in statuses, f"status {status} not in {statuses}: {body[:300]!r}"
    assert headers.get("content-type", "").startswith("application/json"), headers
    text = check_no_internals(body, request_text)
    doc = json.loads(text)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    return doc["error"]


def check_answer(resp, env, request_text="", ok=(200,)):
    """check_answer — a requests.Response that is a JSON 4xx error or one of the `ok` statuses, never a 5xx,
    with nothing internal in it; returns the decoded JSON."""
    assert resp.status_code < 500, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]}"
    check_no_internals(resp.content, request_text + (resp.request.url or ""), env.secrets)
    doc = resp.json()
    if resp.status_code in ok:
        return doc
    assert 400 <= resp.status_code < 500 and set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, \
        f"{resp.request.url}: {resp.status_code} {doc}"
    return doc


def alive(env):
    """alive — the process runs and answers /health/live and an authenticated list on fresh connections."""
    assert env.api.proc.poll() is None, "chainwatch-api died:\n" + env.api.log_path.read_text()[-3000:]
    assert requests.get(env.api.url + "/health/live", timeout=10).status_code == 200
    r = requests.get(env.api.url + "/api/v1/anomalies?limit=1", headers={"X-API-Key": env.keys["reader"]}, timeout=10)
    assert r.status_code == 200, r.text


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def server_connections(pid, port):
    """server_connections — TCP sockets held by process pid whose local port is `port`, the listener excepted."""
    return sum(1 for local, state in tcp_sockets(pid) if local == port and state != "0A")


def wait_for(predicate, timeout):
    """wait_for — poll predicate() every 0.1 s until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.1)


# ---- fixture ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env():
    """env — a private stack, seeded, and one API process (chainwatch_api role, REQUEST_TIMEOUT_MS=3000)."""
    stack_dir = new_stack_dir()
    api = None
    try:
        stack = start_stack(stack_dir)
        keys, model = seed(stack)
        api = start_api(stack)
        url = urllib.parse.urlsplit(stack.role_url("api"))
        secrets = [url.password, stack["API_DATABASE_URL"]]
        yield SimpleNamespace(stack=stack, keys=keys, model=model, api=api, port=api.port, secrets=secrets)
    finally:
        if api:
            api.stop()
        teardown_stack(stack_dir)


def get(env, path, key="reader", headers=None):
    h = {"X-API-Key": env.keys[key]} if key else {}
    h.update(headers or {})
    return requests.get(env.api.url + path, headers=h, timeout=30)


def post(env, path, body, key="reader"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(env.api.url + path, data=data, timeout=60,
                         headers={"X-API-Key": env.keys[key], "Content-Type": "application/json"})


def request_bytes(env, method, target, headers=(), body=b"", key="reader"):
    """request_bytes — a raw HTTP/1.1 request (Host and the key added) as bytes."""
    lines = [f"{method} ".encode() + (target if isinstance(target, bytes) else target.encode()) + b" HTTP/1.1",
             b"Host: 127.0.0.1"]
    if key:
        lines.append(b"X-API-Key: " + env.keys[key].encode())
    lines += [h if isinstance(h, bytes) else h.encode() for h in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ---- oversized headers and bodies -------------------------------------------------------------------------------

def test_oversized_headers_are_refused_and_the_connection_closed(env):
    """One huge header, a header block past max_request_size, 64+ header lines, a huge request line: a JSON
    4xx and the connection closed; exactly 63 header lines still work."""
    cases = {
        "one 64 KiB header": request_bytes(env, "GET", "/health/live", [b"X-Big: " + b"a" * 65536]),
        "one 17 KiB header": request_bytes(env, "GET", "/health/live", [b"X-Big: " + b"a" * (17 * 1024)]),
        "2,000 headers": request_bytes(env, "GET", "/health/live", [f"X-H{i}: v" for i in range(2000)]),
        "100 small headers": request_bytes(env, "GET", "/api/v1/anomalies", [f"X-H{i}: v" for i in range(100)]),
        "64 header lines": request_bytes(env, "GET", "/health/live", [f"X-H{i}: v" for i in range(62)]),
        "a 20 KiB path": request_bytes(env, "GET", "/api/v1/" + "a" * 20480),
        "a 20 KiB query": request_bytes(env, "GET", "/api/v1/anomalies?limit=" + "1" * 20480),
    }
    for name, data in cases.items():
        out, closed = raw_request(env.port, data)
        status, headers, body = parse_response(out)
        err = check_json_error(status, headers, body, statuses=(400, 413, 414, 431))
        assert closed, f"{name}: connection left open after {status} {err}"
        assert headers.get("connection") == "close", (name, headers)
        print(f"{name}: {status} {err['code']}")
    # 63 header lines (Host, the key, Connection and 60 more) are accepted
    out, _ = raw_request(env.port, request_bytes(env, "GET", "/api/v1/anomalies?limit=1",
                                                 [f"X-H{i}: v" for i in range(60)] + ["Connection: close"]))
    status, _, body = parse_response(out)
    assert status == 200, body
    alive(env)


def test_oversized_and_lying_bodies_get_413_and_the_connection_closed(env):
    big = b'{"hash": "' + b"0" * (MAX_BODY_BYTES + 100) + b'"}'
    for path in ("/api/v1/predict", "/api/v1/predict/batch", "/api/v1/models/train"):
        key = "admin" if path.endswith("train") else "reader"
        # an honest Content-Length above MAX_BODY_BYTES
        out, closed = raw_request(env.port, request_bytes(env, "POST", path, [f"Content-Length: {len(big)}"], big,
                                                          key=key))
        status, headers, body = parse_response(out)
        assert check_json_error(status, headers, body, statuses=(413,))["code"] == "payload_too_large"
        assert closed
        # a lying Content-Length (10 GB announced, 10 bytes sent): refused at once, not waited for
        out, closed = raw_request(env.port, request_bytes(env, "POST", path, ["Content-Length: 10000000000"],
                                                          b'{"hash": "', key=key), timeout=REQUEST_TIMEOUT_MS / 1000)
        status, headers, body = parse_response(out)
        assert check_json_error(status, headers, body, statuses=(413,))["code"] == "payload_too_large"
        assert closed, "the connection stayed open after 413"
        # chunked, with no length at all: cut off once past the limit
        chunks = b"".join(b"10000\r\n" + b"x" * 0x10000 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
        out, closed = raw_request(env.port, request_bytes(env, "POST", path, ["Transfer-Encoding: chunked"], chunks,
                                                          key=key))
        status, headers, body = parse_response(out)
        assert check_json_error(status, headers, body, statuses=(413,))["code"] == "payload_too_large"
        assert closed
    # the same through a client library (requests sends Content-Length, or chunks for a generator)
    r = post(env, "/api/v1/predict", big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
    r = requests.post(env.api.url + "/api/v1/predict", data=(b"x" * 65536 for _ in range(20)), timeout=30,
                      headers={"X-API-Key": env.keys["reader"], "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
    # a body of exactly MAX_BODY_BYTES is read (and refused for what it is, not for its size)
    exact = b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]"
    r = post(env, "/api/v1/predict/batch", exact)
    assert r.status_code == 400 and r.json()["error"]["code"] != "payload_too_large", r.text
    alive(env)


def test_a_lying_length_is_not_drained_while_the_client_keeps_sending(env):
    """After a 413 the server closes; it does not read and discard a never-ending body."""
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    s.sendall(request_bytes(env, "POST", "/api/v1/predict", ["Content-Length: 1000000000000"]))
    got, closed_while_sending = b"", False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            try:
                s.send(b"y" * 4096)
            except OSError:
                closed_while_sending = True
                break
            r, _, _ = select.select([s], [], [], 0.05)
            if r:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    closed_while_sending = True
                    break
                if not chunk:
                    closed_while_sending = True
                    break
                got += chunk
    finally:
        s.close()
    status, headers, body = parse_response(got)
    assert status == 413 and check_json_error(status, headers, body)["code"] == "payload_too_large"
    assert closed_while_sending, "the server kept reading a body it had refused"
    alive(env)


def test_ambiguous_body_framing_is_refused(env):
    """Request-smuggling shapes: Content-Length with Transfer-Encoding, conflicting lengths, non-numeric
    lengths, negative lengths, an impossible chunk size."""
    body = json.dumps(etherscan_tx("framing")).encode()
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    cases = {
        "CL and TE": (["Content-Length: 5", "Transfer-Encoding: chunked"], chunked),
        "two lengths": ([f"Content-Length: {len(body)}", "Content-Length: 5"], body),
        "+length": ([f"Content-Length: +{len(body)}"], body),
        "12abc": ([f"Content-Length: {len(body)}abc"], body),
        "negative": (["Content-Length: -5"], body),
        "hex length": ([f"Content-Length: 0x{len(body):x}"], body),
        "TE gzip, chunked": (["Transfer-Encoding: gzip, chunked"], chunked),
        "chunk size 2^48": (["Transfer-Encoding: chunked"], b"FFFFFFFFFFFF\r\n" + b"a" * 1000),
        "negative chunk": (["Transfer-Encoding: chunked"], b"-1\r\nxx\r\n0\r\n\r\n"),
    }
    for name, (headers_, data) in cases.items():
        out, closed = raw_request(env.port, request_bytes(env, "POST", "/api/v1/predict", headers_, data))
        status, headers, body_ = parse_response(out)
        err = check_json_error(status, headers, body_, statuses=(400, 411, 413))
        assert closed, f"{name}: connection left open after {status} {err}"
        print(f"{name}: {status} {err}")
    alive(env)


def test_slow_and_truncated_bodies_are_cut_off(env):
    """A body trickled in (4 KiB every 0.5 s) gets 408 once REQUEST_TIMEOUT_MS has passed, and a body shorter
    than its Content-Length gets 408 when the data stops; both connections are closed."""
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    t0 = time.monotonic()
    s.sendall(request_bytes(env, "POST", "/api/v1/predict", ["Content-Length: 900000"]))
    got, closed = b"", False
    try:
        while time.monotonic() - t0 < 60 and not closed:
            try:
                s.send(b" " * 4096)
            except OSError:
                closed = True
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                closed = closed or not chunk
                got += chunk
    finally:
        s.close()
    elapsed = time.monotonic() - t0
    status, headers, body = parse_response(got)
    assert check_json_error(status, headers, body, statuses=(408,))["code"] == "request_timeout"
    assert closed and elapsed >= REQUEST_TIMEOUT_MS / 1000 * 0.9, elapsed
    print(f"trickled body: 408 after {elapsed:.1f} s")

    t0 = time.monotonic()
    out, closed = raw_request(env.port, request_bytes(env, "POST", "/api/v1/predict", ["Content-Length: 100"],
                                                      b'{"hash": '), timeout=30)
    status, headers, body = parse_response(out)
    assert check_json_error(status, headers, body, statuses=(408,))["code"] == "request_timeout"
    assert closed and time.monotonic() - t0 >= REQUEST_TIMEOUT_MS / 1000 * 0.9
    alive(env)


# ---- invalid UTF-8, path traversal ------------------------------------------------------------------------------

def test_invalid_utf8_everywhere_gets_a_json_4xx(env):
    bad = [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80"]
    hx = tx_hash("utf8").encode()
    for b in bad:
        enc = urllib.parse.quote_from_bytes(b).encode()
        raw_targets = [b"/api/v1/anomalies/" + b, b"/api/v1/" + b, b"/api/v1/anomalies?severity=" + b,
                       b"/api/v1/anomalies?" + b + b"=1", b"/api/v1/anomalies/" + enc, b"/api/v1/" + enc + b"/x",
                       b"/api/v1/anomalies?severity=" + enc, b"/api/v1/anomalies?" + enc + b"=1",
                       b"/api/v1/stats?window=" + enc, b"/api/v1/models/" + enc]
        for target in raw_targets:
            out, _ = raw_request(env.port, request_bytes(env, "GET", target, ["Connection: close"]))
            status, headers, body = parse_response(out)
            check_json_error(status, headers, body, statuses=(400, 404))
        # header values: the key, a bearer token, and one the server does not read; a header name
        for headers_, key, ok in (([b"X-API-Key: " + b], None, ()), ([b"Authorization: Bearer " + b], None, ()),
                                  ([b"X-Note: " + b], "reader", (200,)), ([b"X-" + b + b": 1"], "reader", ())):
            out, _ = raw_request(env.port, request_bytes(env, "GET", "/api/v1/anomalies?limit=1",
                                                         headers_ + [b"Connection: close"], key=key))
            status, headers, body = parse_response(out)
            if status not in ok:
                check_json_error(status, headers, body, statuses=(400, 401))
        # JSON bodies: inside a string, outside one, as a key, in a batch, in a training request
        bodies = [(b'{"hash": "' + hx + b'", "value": "1' + b + b'", "gas": "21000", "gasPrice": "1"}', "reader"),
                  (b'{"hash": "' + hx + b'", "from": "' + b + b'", "value": "1", "gas": "21000", "gasPrice": "1"}',
                   "reader"),
                  (b'{"' + b + b'": 1, "hash": "' + hx + b'", "value": "1", "gas": "21000", "gasPrice": "1"}',
                   "reader"),
                  (b + b'{"hash": "' + hx + b'"}', "reader")]
        for body, key in bodies:
            for path in ("/api/v1/predict", "/api/v1/predict/batch"):
                payload = b"[" + body + b"]" if path.endswith("batch") else body
                out, _ = raw_request(env.port, request_bytes(env, "POST", path, [f"Content-Length: {len(payload)}",
                                                                                 "Connection: close"], payload))
                status, headers, resp = parse_response(out)
                check_json_error(status, headers, resp, statuses=(400,))
        train = b'{"name": "utf8-' + b + b'", "n_trees": 1}'
        out, _ = raw_request(env.port, request_bytes(env, "POST", "/api/v1/models/train",
                                                     [f"Content-Length: {len(train)}", "Connection: close"], train,
                                                     key="admin"))
        status, headers, resp = parse_response(out)
        assert check_json_error(status, headers, resp, statuses=(400,))["code"] == "invalid_body"
    # escaped lone surrogates are refused too
    for body in (b'{"hash": "\\udc80", "value": "1", "gas": "1", "gasPrice": "1"}', b'{"name": "\\ud800x"}'):
        path, key = ("/api/v1/models/train", "admin") if b"name" in body else ("/api/v1/predict", "reader")
        r = post(env, path, body, key=key)
        assert r.status_code == 400, r.text
        check_answer(r, env)
    # a parameter name that is not UTF-8 is quoted back as U+FFFD, so the error stays valid JSON
    r = get(env, "/api/v1/anomalies?%ff%fe=1")
    assert r.status_code == 400 and "\ufffd" in r.json()["error"]["message"], r.content
    alive(env)


def test_path_traversal_never_reaches_a_file(env):
    targets = [
        "/../../etc/passwd", "/api/v1/../../../etc/passwd", "/api/v1/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/v1/anomalies/..%2f..%2f..%2fetc%2fpasswd",
        "/%252e%252e%252f%252e%252e%252fetc%252fpasswd", "/api/v1/%252e%252e/%252e%252e/etc/passwd",
        "/..\\..\\..\\etc\\passwd", "/api/v1/..%5c..%5c..%5cetc%5cpasswd", "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "/etc/passwd%00", "/etc/passwd%00.json", "/health/live%00.json", "/api/v1/openapi.json%00/../../etc/passwd",
        "/api/v1/models/1%00/activate", "/api/v1/anomalies/%00", "//etc/passwd", "/./././etc/passwd",
        "/api/v1/models/1/../../../../../etc/passwd", "/api/v1/anomalies?cursor=../../etc/passwd",
        "/api/v1/anomalies?limit=1%00'%20OR%201=1", "/etc/shadow", "/proc/self/environ", "/proc/self/cmdline",
        "/api/v1/openapi.json/../../../../proc/self/environ", "http://127.0.0.1/../../etc/passwd",
        "file:///etc/passwd", "*",
    ]
    for target in targets:
        method = "POST" if target.endswith("/activate") else "GET"
        out, closed = raw_request(env.port, request_bytes(env, method, target, ["Connection: close"],
                                                          key="admin" if method == "POST" else "reader"))
        assert b"root:" not in out and b"DATABASE_URL" not in out and b"PGPASSWORD" not in out, (target, out[:300])
        if not out:
            assert closed, f"{target}: no answer and the connection left open"
            continue  # civetweb drops an absolute-form URI for another host, or "*", without a word
        status, headers, body = parse_response(out)
        err = check_json_error(status, headers, body, statuses=(400, 404), request_text=target)
        print(f"{target}: {status} {err['code']}")
    alive(env)


# ---- SQL injection ----------------------------------------------------------------------------------------------

def test_sql_injection_in_every_parameter(env):
    """Every parameter of every endpoint, each injection string: a 400 (or an ordinary result), never a 5xx or
    an internal; afterwards the tables hold exactly what they held (plus the models trained by name)."""
    before = table_counts(env.stack)
    q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    created = []
    for inj in INJECTIONS:
        # query parameters of the list, one at a time and as a parameter name
        for name in ("severity", "since", "until", "address", "min_score", "limit", "cursor"):
            r = get(env, f"/api/v1/anomalies?{name}={q(inj)}")
            doc = check_answer(r, env, inj)
            if r.status_code == 400:
                assert doc["error"]["message"].startswith(name + ":"), doc
            else:
                assert set(doc) == {"data", "total", "limit", "next_cursor"}, doc
        r = get(env, f"/api/v1/anomalies?{q(inj)}=1")
        assert r.status_code == 400, r.text
        check_answer(r, env, inj)
        r = get(env, "/api/v1/anomalies?" + "&".join(f"{n}={q(inj)}" for n in ("severity", "address", "limit")))
        assert r.status_code == 400, r.text
        check_answer(r, env, inj)
        # path parameters
        for path, key in ((f"/api/v1/anomalies/{q(inj)}", "reader"), (f"/api/v1/transactions/{q(inj)}", "reader"),
                          (f"/api/v1/models/{q(inj)}", "reader")):
            r = get(env, path, key=key)
            assert r.status_code in (400, 404), r.text
            check_answer(r, env, inj)
        r = requests.post(env.api.url + f"/api/v1/models/{q(inj)}/activate", timeout=30,
                          headers={"X-API-Key": env.keys["admin"]})
        assert r.status_code in (400, 404), r.text
        check_answer(r, env, inj)
        # query parameters of the other endpoints
        for path in ("/api/v1/stats?window=", "/api/v1/models?x=",
                     f"/api/v1/transactions/{tx_hash('h1')}?x=", f"/api/v1/anomalies/{tx_hash('ha1')}?x="):
            r = get(env, path + q(inj))
            assert r.status_code == 400, (path, r.text)
            check_answer(r, env, inj)
        # the credentials themselves
        for headers in ({"X-API-Key": inj}, {"Authorization": "Bearer " + inj}):
            r = requests.get(env.api.url + "/api/v1/anomalies", headers=headers, timeout=30)
            assert r.status_code == 401, r.text
            check_answer(r, env, inj)
        # every field of a transaction, single and batch
        for field in ("hash", "from", "to", "value", "gas", "gasPrice", "blockNumber", "timeStamp", "input"):
            tx = dict(etherscan_tx("inj"), **{field: inj})
            for path, body in (("/api/v1/predict", tx), ("/api/v1/predict/batch", [etherscan_tx("ok"), tx])):
                r = post(env, path, body)
                doc = check_answer(r, env, inj)
                assert r.status_code == 400 or field == "input", (field, r.text)  # "input" is not read
                if r.status_code == 200:
                    assert doc["hash" if path.endswith("predict") else "count"], doc
        # every field of a training request; a name is only a name
        for field in ("transform", "window", "n_trees", "sample_size", "seed", "contamination", "activate"):
            r = post(env, "/api/v1/models/train", {"name": "inj", "n_trees": 1, field: inj}, key="admin")
            assert r.status_code == 400, (field, r.text)
            check_answer(r, env, inj)
        r = post(env, "/api/v1/models/train", {"name": inj, "n_trees": 1, "sample_size": 16}, key="admin")
        doc = check_answer(r, env, inj, ok=(201,))
        assert r.status_code == 201 and doc["name"] == inj and doc["is_active"] is False, r.text
        created.append(doc["id"])
    # values that parse but that Postgres would refuse in its own words: a forged cursor beyond its time range
    for forged in ("-9223372036854775808.0", "9223372036854775807.1", "-62167305600000001.1"):
        token = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
        r = get(env, "/api/v1/anomalies?cursor=" + token)
        assert r.status_code == 400, r.text
        check_answer(r, env)
    after = table_counts(env.stack)
    assert after == dict(before, models=before["models"] + len(created)), (before, after)
    stored = dict(sql(env.stack, "SELECT id, name FROM chainwatch.models WHERE id = ANY(%s)", (created,)))
    assert [stored[i] for i in created] == INJECTIONS, "names were not stored verbatim"
    assert sql(env.stack, "SELECT id FROM chainwatch.models WHERE is_active")[0][0] == env.model
    assert not os.path.exists(MARKER), "an injected COPY ... TO PROGRAM ran"
    alive(env)


# ---- slowloris --------------------------------------------------------------------------------------------------

class SlowClients:
    """SlowClients — n connections that send a request line and then one header byte every `every` seconds,
    never finishing the header; a thread trickles and notes when the server closes each (EOF or RST) and what
    it answered."""

    def __init__(self, port, n, every=0.25):
        self.every = every
        self.socks = []
        self.opened = time.monotonic()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /api/v1/anomalies?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            s.setblocking(False)
            self.socks.append(s)
        self.closed_at = [None] * n
        self.answers = [b""] * n
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def open_count(self):
        return sum(1 for t in self.closed_at if t is None)

    def _run(self):
        while not self.stop.is_set() and self.open_count():
            for i, s in enumerate(self.socks):
                if self.closed_at[i] is not None:
                    continue
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            raise ConnectionResetError
                        self.answers[i] += chunk
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_at[i] = time.monotonic()
                    continue
                try:
                    s.send(b"x")
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_at[i] = time.monotonic()
            self.stop.wait(self.every)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def test_slowloris_headers_do_not_starve_other_clients(env):
    """200 connections trickle header bytes; meanwhile requests on fresh connections get 200 (each within a
    5 s liveness deadline), and the server cuts every slow connection at REQUEST_TIMEOUT_MS, not before."""
    api = start_api(env.stack, API_THREADS=256, REQUEST_TIMEOUT_MS=3000)
    slow = None
    try:
        slow = SlowClients(api.port, 200)
        served, open_meanwhile = [], []
        for _ in range(10):
            t = time.monotonic()
            r = requests.get(api.url + "/api/v1/anomalies?limit=1", headers={"X-API-Key": env.keys["reader"]},
                             timeout=5)
            served.append((r.status_code, time.monotonic() - t))
            open_meanwhile.append(slow.open_count())
        assert all(code == 200 for code, _ in served), served
        assert min(open_meanwhile) >= 100, f"the slow connections were not holding on: {open_meanwhile}"
        assert wait_for(lambda: slow.open_count() == 0, 60), f"{slow.open_count()} slow connections still open"
        lifetimes = [t - slow.opened for t in slow.closed_at]
        assert min(lifetimes) >= 3.0 * 0.9, f"a slow connection was cut before REQUEST_TIMEOUT_MS: {min(lifetimes)}"
        for answer in slow.answers:
            if answer:  # civetweb's header timeout, answered through our error callback
                status, headers, body = parse_response(answer)
                check_json_error(status, headers, body, statuses=(400, 408))
        print(f"normal requests during the attack: max {max(s for _, s in served) * 1000:.0f} ms; slow connections "
              f"closed after {min(lifetimes):.1f}-{max(lifetimes):.1f} s")
        assert requests.get(api.url + "/health/live", timeout=10).status_code == 200
    finally:
        if slow:
            slow.close()
        stop_clean(api)


def test_slowloris_beyond_capacity_recovers_by_itself(env):
    """More slow connections than worker threads (civetweb gives each connection a thread): a request waits
    until REQUEST_TIMEOUT_MS has freed threads, then is served — the server recovers without help."""
    api = start_api(env.stack, API_THREADS=8, REQUEST_TIMEOUT_MS=2000)
    slow = None
    try:
        slow = SlowClients(api.port, 24)
        t = time.monotonic()
        r = requests.get(api.url + "/api/v1/anomalies?limit=1", headers={"X-API-Key": env.keys["reader"]},
                         timeout=60)
        waited = time.monotonic() - t
        assert r.status_code == 200, r.text
        assert wait_for(lambda: slow.open_count() == 0, 60)
        print(f"a request behind 24 slow connections on 8 threads was served after {waited:.1f} s")
        assert requests.get(api.url + "/health/live", timeout=10).status_code == 200
    finally:
        if slow:
            slow.close()
        stop_clean(api)


# ---- connection churn: file descriptors and memory --------------------------------------------------------------

def churn(port, n):
    """churn — n connections opened and dropped: a quarter closed at once, a quarter reset at once, a quarter
    reset and a quarter closed after half a request."""
    half = b"GET /api/v1/anomalies?limit=5 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api"
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            if i % 4 >= 2:
                s.sendall(half)
            if i % 2 == 1:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        finally:
            s.close()


def test_10k_connections_dropped_leak_no_fd_and_no_memory(env):
    pid, port = env.api.proc.pid, env.port
    alive(env)
    requests.get(env.api.url + "/health", timeout=10)  # every lazy connection (pool, Redis) is open by now
    assert wait_for(lambda: server_connections(pid, port) == 0, 30), "client connections left from earlier tests"
    base_fds, base_rss = fd_count(pid), rss_kib(pid)
    figures = []
    for round_no in (1, 2):
        t = time.monotonic()
        churn(port, ROUND)
        took = time.monotonic() - t
        alive(env)  # others are still answered
        assert wait_for(lambda: server_connections(pid, port) == 0, 30), \
            f"round {round_no}: {server_connections(pid, port)} dropped connections still held"
        assert wait_for(lambda: fd_count(pid) <= base_fds + 2, 30), \
            f"round {round_no}: {fd_count(pid)} fds, {base_fds} before"
        figures.append((round_no, took, fd_count(pid), rss_kib(pid)))
    (_, _, fds1, rss1), (_, _, fds2, rss2) = figures
    print(f"baseline: {base_fds} fds, RSS {base_rss} KiB; " + "; ".join(
        f"after round {n} ({ROUND} connections in {took:.1f} s): {fds} fds, RSS {rss} KiB"
        for n, took, fds, rss in figures))
    assert rss2 - rss1 < RSS_GROWTH_LIMIT, f"RSS grew by {rss2 - rss1} KiB during round 2 (round 1: {rss1 - base_rss})"


# ---- the end ----------------------------------------------------------------------------------------------------

def test_server_survived_everything_and_exits_cleanly(env):
    """Last: the module's API process never restarted, answers, then exits 0 on SIGTERM with a clean log."""
    alive(env)
    fives = re.findall(r'^chainwatch_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\d+)', env.api.metrics(), re.M)
    assert sum(int(n) for n in fives) == 0, "some request got a 5xx"
    stop_clean(env.api)
