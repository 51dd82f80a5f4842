#!/usr/bin/env python3
"""bench/api/bench.py — `make bench-api`: wrk against chainwatch-api on a loaded store, and against a bare civetweb
handler (the ceiling of this HTTP stack on this machine) in the same run.

Steps: a throwaway stack (tools/stack.sh) → the extension, 100,000 transactions and 10,000 anomalies committed
through chainwatch.commit_batch() (load_store.sql) → two API processes (Redis cache on, and REDIS_ENABLED=false)
and two ceiling servers (one answering a body as large as the list page, one a prediction-sized body) → wrk
(50 connections, 2 threads) per scenario → the table between the bench-api markers of docs/benchmarks.md.

Environment: BENCH_SECONDS (default 10) per scenario, BENCH_CONNECTIONS (50), CHAINWATCH_BIN.
"""
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "bench"))
from benchlib import machine, write_section  # noqa: E402  (bench/benchlib.py)

BIN = pathlib.Path(os.environ.get("CHAINWATCH_BIN") or TOP / "build" / "bin")
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
DOC = TOP / "docs" / "benchmarks.md"


def say(msg):
    print(f"bench-api: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def http(method, url, key=None, body=None):
    import urllib.request
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    if key:
        req.add_header("X-API-Key", key)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read()


def tx(i, salt="u"):
    h = "0x" + format(abs(hash((salt, i))) % (1 << 256), "064x")
    return {"hash": h, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": str(10**15 + i),
            "gas": str(21000 + i % 1000), "gasPrice": str(20 * 10**9 + i)}


def lua_script(path, method, bodies, key):
    """lua_script — a wrk script sending `bodies` in turn (one body: always the same request)."""
    quoted = ",\n".join(json.dumps(b) for b in bodies)
    path.write_text(f"""
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
local bodies = {{
{quoted}
}}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
""")


def paced_script(path, key):
    """paced_script — a wrk script for GET requests where each connection pauses between its requests, 1 and 2 ms in
    turn (wrk's delay() takes whole milliseconds): with 50 connections about 20k req/s, to read the latency at the
    target rate instead of at saturation."""
    path.write_text(f"""
wrk.headers["X-API-Key"] = "{key}"
local n = 0
delay = function()
  n = n + 1
  return 1 + n % 2
end
""")


def wrk(url, key=None, script=None, seconds=SECONDS):
    cmd = ["wrk", "-t2", f"-c{CONNS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if key and not script:
        cmd += ["-H", f"X-API-Key: {key}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": lat(50), "p99": lat(99), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(1) if errors else ""}


def main():
    api_bin = BIN / "chainwatch-api"
    ceiling = TOP / "build" / "bench" / "api-ceiling"
    if not api_bin.exists() or not ceiling.exists():
        sys.exit("bench-api: build first (make build; bench/api/run.sh builds the ceiling)")
    stack_dir = tempfile.mkdtemp(prefix="cw-bench-api-")
    procs = []
    try:
        say(f"stack in {stack_dir}")
        up = subprocess.run(["bash", str(TOP / "tools" / "stack.sh"), "up", "--dir", stack_dir],
                            capture_output=True, text=True)
        if up.returncode != 0:
            sys.exit(up.stderr)
        env = dict(os.environ)
        for line in (pathlib.Path(stack_dir) / "stack.env").read_text().splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                env[k] = v.strip("'\"")
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        subprocess.run(psql + ["-c", "SET client_min_messages=warning; CREATE EXTENSION IF NOT EXISTS chainwatch"],
                       env=env, check=True)
        say("loading 100,000 transactions and 10,000 anomalies")
        t0 = time.time()
        subprocess.run(psql + ["-v", "n_tx=100000", "-v", "n_anom=10000", "-f",
                               str(TOP / "bench" / "api" / "load_store.sql")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        load_s = time.time() - t0
        key = subprocess.run(psql + ["-At", "-c", "SELECT chainwatch.create_api_key('bench', 'reader')"], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        pg_version = subprocess.run(psql + ["-At", "-c", "SHOW server_version"], env=env, capture_output=True,
                                    text=True).stdout.strip()

        def start(name, cmd, extra_env=None):
            e = dict(env)
            e.update(extra_env or {})
            log = open(pathlib.Path(stack_dir) / f"{name}.log", "w")
            p = subprocess.Popen(cmd, env=e, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            procs.append(p)
            subprocess.run(["bash", str(TOP / "tools" / "stack.sh"), "record", name, str(p.pid), "--dir", stack_dir],
                           check=True)
            return p

        common = {"API_THREADS": "128", "DB_POOL_SIZE": "8", "RATE_LIMIT_RPS": "100000000",
                  "RATE_LIMIT_BURST": "100000000", "LOG_LEVEL": "warn"}
        cached, uncached, uncached4 = free_port(), free_port(), free_port()
        start("api-cached", [str(api_bin)], dict(common, API_PORT=str(cached)))
        start("api-uncached", [str(api_bin)], dict(common, API_PORT=str(uncached), REDIS_ENABLED="false"))
        # the same with a pool of twice this machine's cores (Postgres shares them): see the doc's note
        start("api-uncached-pool4", [str(api_bin)],
              dict(common, API_PORT=str(uncached4), REDIS_ENABLED="false", DB_POOL_SIZE="4"))
        for p in (cached, uncached, uncached4):
            wait_http(f"http://127.0.0.1:{p}/health/ready")
        list_url = f"http://127.0.0.1:{cached}/api/v1/anomalies"
        _, headers, page = http("GET", list_url, key)
        _, headers, page = http("GET", list_url, key)
        assert headers.get("X-Cache") == "HIT", headers
        one = json.dumps(tx(0, "cached"))
        _, _, pred = http("POST", f"http://127.0.0.1:{cached}/api/v1/predict", key, one)
        ceil_big, ceil_small = free_port(), free_port()
        start("ceiling-page", [str(ceiling), str(ceil_big), "128", str(len(page))])
        start("ceiling-small", [str(ceiling), str(ceil_small), "128", str(len(pred))])
        for p in (ceil_big, ceil_small):
            wait_http(f"http://127.0.0.1:{p}/")

        work = pathlib.Path(stack_dir)
        lua_script(work / "cached.lua", "POST", [one], key)
        lua_script(work / "uncached.lua", "POST", [json.dumps(tx(i)) for i in range(20000)], key)
        batch = json.dumps([tx(i, "batch") for i in range(100)])
        lua_script(work / "batch.lua", "POST", [batch], key)
        paced_script(work / "paced.lua", key)
        http("POST", f"http://127.0.0.1:{cached}/api/v1/predict", key, one)

        rows = []

        def scenario(name, url, baseline, script=None, auth=True):
            say(f"{name} ({SECONDS} s)")
            wrk(url, key if auth else None, script, seconds=2)  # warm-up
            r = wrk(url, key if auth else None, script)
            r["name"], r["baseline"] = name, baseline
            rows.append(r)
            if r["non2xx"]:
                say(f"  WARNING: {r['non2xx']} responses were not 2xx")

        scenario(f"ceiling: fixed {len(page):,}-byte body (list page size)", f"http://127.0.0.1:{ceil_big}/x",
                 None, auth=False)
        scenario(f"ceiling: fixed {len(pred)}-byte body (prediction size)", f"http://127.0.0.1:{ceil_small}/x",
                 None, auth=False)
        scenario("cached list `GET /api/v1/anomalies` (100 rows, X-Cache HIT)", list_url, 0)
        scenario("the same, paced: each connection pauses 1 or 2 ms between requests", list_url, False,
                 work / "paced.lua")
        scenario("uncached list, REDIS_ENABLED=false", f"http://127.0.0.1:{uncached}/api/v1/anomalies", 0)
        scenario("the same with DB_POOL_SIZE=4", f"http://127.0.0.1:{uncached4}/api/v1/anomalies", 0)
        scenario("cached predict (same transaction, X-Cache HIT)", f"http://127.0.0.1:{cached}/api/v1/predict", 1,
                 work / "cached.lua")
        scenario("uncached predict (20,000 distinct transactions, REDIS_ENABLED=false)",
                 f"http://127.0.0.1:{uncached}/api/v1/predict", 1, work / "uncached.lua")
        scenario("batch predict of 100 (one round trip; 100 scores per request)",
                 f"http://127.0.0.1:{uncached}/api/v1/predict/batch", 1, work / "batch.lua")
        write_doc(rows, len(page), pg_version, load_s)
        for r in rows:
            ratio = ratio_text(r, rows)
            print(f"{r['name']:<75} {r['rps']:>10,.0f} req/s  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  "
                  f"ratio {ratio}  non-2xx {r['non2xx']}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["bash", str(TOP / "tools" / "stack.sh"), "down", "--dir", stack_dir],
                       capture_output=True)
        shutil.rmtree(stack_dir, ignore_errors=True)


def ratio_text(r, rows):
    """ratio_text — req/s over the baseline row's (None: this is a baseline; False: paced, no ratio)."""
    if r["baseline"] is None:
        return "1.00"
    if r["baseline"] is False:
        return "—"
    return f"{r['rps'] / rows[r['baseline']]['rps']:.2f}"


def write_doc(rows, page_bytes, pg_version, load_s):
    """write_doc: the bench-api section of docs/benchmarks.md"""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    lines = ["## REST API throughput: chainwatch-api vs a bare civetweb handler (bench-api)", "",
             f"Run {now} on {machine()} (load average {load:.1f} at the end); PostgreSQL {pg_version}; "
             f"wrk with {CONNS} connections and 2 threads on the same machine, {SECONDS} s per row after a 2 s warm-up. "
             "Reproduce with `make bench-api`.", "",
             "Store: 100,000 transactions and 10,000 anomalies committed through `chainwatch.commit_batch()` "
             f"(loaded in {load_s:.1f} s), a 100-tree model active. API: 128 threads, DB_POOL_SIZE=8 unless a row says "
             "otherwise, rate limit "
             "off (RATE_LIMIT_RPS=1e8). The ceiling is `bench/api/ceiling.c`: the same civetweb build, options and "
             "one-write response helper answering a fixed body of the same size, with no routing, auth, cache or "
             "database; *vs ceiling* divides by the ceiling row of the same body size.", "",
             "| scenario | req/s | p50 | p99 | vs ceiling | non-2xx |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = ratio_text(r, rows)
        lines.append(f"| {r['name']} | {r['rps']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {ratio} | "
                     f"{r['non2xx']} |")
    batch = rows[-1]
    lines += ["", f"Batch predict scores {batch['rps'] * 100:,.0f} transactions/s. Targets (issue 4): cached GET "
              "≥ 20,000 req/s with p99 < 5 ms, uncached list ≥ 3,000 req/s, uncached predict ≥ 5,000 req/s. The "
              "unpaced rows run wrk flat out, so their p99 is measured with both cores saturated; the paced row "
              "measures the latency of the cached list at about the target rate.", "",
              "Pool size: Postgres runs on the same 2 cores here. With 8 pooled connections the uncached list keeps "
              "8 backends runnable next to the API and wrk, and executions of a statement that needs 0.3 ms of CPU "
              "stretch to hundreds of milliseconds waiting for a core, which is the list's p99; with 4 the queue "
              "forms in the API's first-come-first-served pool instead. Predictions need less Postgres time per "
              "request, and 8 connections serve more of them. Size `DB_POOL_SIZE` to the database's cores (see "
              "docs/api.md)."]
    write_section(str(DOC), "bench-api", lines)
    say(f"wrote the bench-api section of {DOC}")


if __name__ == "__main__":
    main()
