"""tests/integration/test_api_resilience.py — chainwatch-api when Redis dies and when Postgres restarts

Each test has a private stack (it kills components): Redis killed mid-run must cost nothing but cache hits
(every request still 200 from Postgres, /health degraded, chainwatch_redis_up 0) and, after Redis is back, the
circuit closes and lookups HIT again; a Postgres restart gives clear 503s on data endpoints and /health/ready
while it is down and recovers by itself.
"""
import os
import pathlib
import signal
import subprocess
import time

import pytest
import requests

from conftest import record_pid
from test_api import ApiProcess, Client, assert_error, etherscan_tx, prepare_database, tx_hash

PGBIN = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()


def redis_pid(stack):
    return int(pathlib.Path(stack.dir, "redis", "redis.pid").read_text().split()[0])


def start_redis(stack):
    """start_redis — a new redis-server on the stack's Redis port, recorded so `down` stops it."""
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", stack["REDIS_PORT"], "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    record_pid(stack, "redis", proc.pid)
    deadline = time.time() + 10
    while time.time() < deadline:
        out = subprocess.run(["redis-cli", "-p", stack["REDIS_PORT"], "ping"], capture_output=True, text=True)
        if out.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    raise AssertionError("redis did not come back")


def pg_ctl(stack, *args):
    data = pathlib.Path(stack.dir, "pg", "data")
    log = pathlib.Path(stack.dir, "pg", "log", "postgresql.log")
    subprocess.run(["runuser", "-u", "postgres", "--", f"{PGBIN}/pg_ctl", "-D", str(data), "-l", str(log), "-w",
                    "-t", "30", *args], check=True, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def requests_all_ok(reader, rounds=20):
    """requests_all_ok — a mix of cached and uncached requests; returns their statuses and X-Cache values."""
    out = []
    for i in range(rounds):
        for r in (reader.get("/api/v1/anomalies?limit=5"), reader.get(f"/api/v1/anomalies?limit={i + 1}"),
                  reader.get("/api/v1/anomalies/" + tx_hash("a1")), reader.get("/api/v1/models"),
                  reader.post("/api/v1/predict", etherscan_tx(f"r{i}"))):
            out.append((r.status_code, r.headers.get("X-Cache"), r.url))
    return out


@pytest.fixture
def env(private_stack):
    keys, ingest, model = prepare_database(private_stack)
    api = ApiProcess(private_stack, private_stack.dir, REQUEST_TIMEOUT_MS=5000)
    try:
        yield private_stack, keys, ingest, model, api
    finally:
        api.stop()


def test_redis_killed_mid_run(env):
    stack, keys, ingest, model, api = env
    reader = Client(api.url, keys["reader"])
    assert all(s == 200 for s, _, _ in requests_all_ok(reader, 3))
    assert reader.get("/api/v1/models").headers["X-Cache"] == "HIT"

    os.kill(redis_pid(stack), signal.SIGKILL)
    time.sleep(0.2)
    results = requests_all_ok(reader, 20)
    bad = [r for r in results if r[0] != 200]
    assert not bad, bad[:5]
    # new keys cannot be cached: BYPASS (known keys may still be served by the in-process tier)
    assert any(x == "BYPASS" for _, x, _ in results)
    h = requests.get(api.url + "/health", timeout=10).json()
    assert h["status"] == "degraded" and h["checks"]["redis"]["status"] == "down", h
    assert requests.get(api.url + "/health/ready", timeout=10).status_code == 200
    assert "chainwatch_redis_up 0" in api.metrics()
    # the circuit is open: requests do not wait for Redis timeouts
    t0 = time.time()
    for i in range(20):
        assert reader.get(f"/api/v1/anomalies?limit={100 + i}").status_code == 200
    assert time.time() - t0 < 5

    start_redis(stack)
    deadline = time.time() + 15
    hit = False
    while time.time() < deadline and not hit:
        ingest.commit(anomalies=[{"hash": tx_hash(f"after{time.time()}"), "value": 1, "score": 0.9,
                                  "severity": "low"}], model_id=model)
        first = reader.get("/api/v1/anomalies?limit=4")
        assert first.status_code == 200
        hit = reader.get("/api/v1/anomalies?limit=4").headers["X-Cache"] == "HIT"
        time.sleep(0.3)
    assert hit, "lookups never became HIT again after Redis came back"
    assert requests.get(api.url + "/health", timeout=10).json()["checks"]["redis"]["status"] == "ok"
    assert "chainwatch_redis_up 1" in api.metrics()


def test_postgres_restart(env):
    stack, keys, ingest, model, api = env
    reader = Client(api.url, keys["reader"])
    assert reader.get("/api/v1/stats").status_code == 200
    pg_ctl(stack, "-m", "fast", "stop")
    try:
        assert_error(reader.get("/api/v1/stats"), 503, "database_unavailable")
        assert_error(reader.post("/api/v1/predict", etherscan_tx("pg-down")), 503, "database_unavailable")
        r = reader.get("/api/v1/transactions/" + tx_hash("t1"))
        assert_error(r, 503)
        assert r.headers.get("Retry-After") == "1"
        assert requests.get(api.url + "/health/ready", timeout=10).status_code == 503
        h = requests.get(api.url + "/health", timeout=10)
        assert h.status_code == 503 and h.json()["status"] == "unhealthy"
        assert requests.get(api.url + "/health/live", timeout=10).status_code == 200
    finally:
        pg_ctl(stack, "start")
    deadline = time.time() + 20
    while time.time() < deadline and reader.get("/api/v1/stats").status_code != 200:
        time.sleep(0.2)
    assert reader.get("/api/v1/stats").status_code == 200
    assert reader.post("/api/v1/predict", etherscan_tx("pg-up")).status_code == 200
    assert reader.get("/api/v1/anomalies?limit=3").status_code == 200
    assert requests.get(api.url + "/health/ready", timeout=10).status_code == 200
    # the listener reconnected too: a new anomaly shows at once
    ingest.commit(anomalies=[{"hash": tx_hash("after-restart"), "value": 1, "score": 0.99, "severity": "high"}],
                  model_id=model)
    assert reader.get("/api/v1/anomalies?limit=1").json()["data"][0]["hash"] == tx_hash("after-restart")
