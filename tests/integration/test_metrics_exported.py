"""tests/integration/test_metrics_exported.py — every metric monitoring/ names is exported by a running binary.

Starts chainwatch-ingestor (and chainwatch-api when built) against a private stack, drives a little traffic
so labelled series exist, scrapes both /metrics pages and hands the names to tests/deploy/metrics_named.py,
which lists any metric the Grafana dashboard or the alert rules name that no binary exported."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

from conftest import REPO_ROOT, pg_connect, record_pid

sys.path.insert(0, str(REPO_ROOT / "tests" / "deploy"))
import metrics_named  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def _wait_http(url, deadline_s=30):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        try:
            return _get(url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_monitoring_metrics_are_exported_by_running_binaries(private_stack, bin_dir):
    stack = private_stack
    env = stack.daemon_environ("ingestor", KAFKA_SESSION_TIMEOUT_MS="6000", LOG_LEVEL="warn")
    conn = pg_connect(stack)
    cur = conn.cursor()

    # traffic: transactions, a model so anomalies get severities, and a poison message
    subprocess.run([f"{bin_dir}/chainwatch-txgen", "--brokers", stack["KAFKA_BOOTSTRAP_SERVERS"], "--topic",
                    stack["KAFKA_TOPIC"], "--count", "3000", "--seed", "5"], check=True, capture_output=True)
    subprocess.run(["kcat", "-P", "-b", stack["KAFKA_BOOTSTRAP_SERVERS"], "-t", stack["KAFKA_TOPIC"], "-p", "0"],
                   input=b"this is not json\n", check=True)
    subprocess.run([f"{bin_dir}/chainwatch-ingestor", "--drain", "--metrics-port", "0"], env=env, check=True,
                   timeout=120)
    cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('m', "
                "'SELECT value, gas, gas_price FROM chainwatch.transactions'))")
    subprocess.run([f"{bin_dir}/chainwatch-txgen", "--brokers", stack["KAFKA_BOOTSTRAP_SERVERS"], "--topic",
                    stack["KAFKA_TOPIC"], "--count", "3000", "--seed", "6"], check=True, capture_output=True)

    texts = []
    port = _free_port()
    ing = subprocess.Popen([f"{bin_dir}/chainwatch-ingestor", "--metrics-port", str(port),
                            "--metrics-bind", "127.0.0.1"], env=env)
    record_pid(stack, "ingestor", ing.pid)
    api = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            cur.execute("SELECT coalesce(sum(next_offset), 0) FROM chainwatch.kafka_offsets")
            if cur.fetchone()[0] >= 6001:
                break
            time.sleep(0.5)
        time.sleep(1)
        texts.append(_wait_http(f"http://127.0.0.1:{port}/metrics"))

        api_bin = os.path.join(bin_dir, "chainwatch-api")
        if os.path.exists(api_bin):
            api_port = _free_port()
            api = subprocess.Popen([api_bin], env=stack.daemon_environ("api", API_PORT=str(api_port), LOG_LEVEL="warn"))
            record_pid(stack, "api", api.pid)
            _wait_http(f"http://127.0.0.1:{api_port}/health/live")
            for path in ("/health", "/api/v1/anomalies", "/api/v1/openapi.json"):
                try:
                    _get(f"http://127.0.0.1:{api_port}{path}")
                except OSError:
                    pass  # 401s and the like still count requests; only the metric names matter here
            texts.append(_wait_http(f"http://127.0.0.1:{api_port}/metrics"))
    finally:
        for proc in (ing, api):
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        conn.close()

    exported = metrics_named.scraped_names(texts)
    named = metrics_named.named_metrics()
    assert named, "no metric named in monitoring/: the extractor is broken"
    problems = metrics_named.problems(exported)
    if len(texts) == 1:
        # without the API binary only the ingestor's names can be proved here
        api_names = set(metrics_named.EXPORTED["api"])
        problems = [p for p in problems if not any(n in p for n in api_names)]
    assert not problems, "\n".join(problems)
