"""tests/integration/test_least_privilege.py — each daemon role can do its job and nothing else; secrets stay secret.

The stack creates the roles of sql/roles.sql with random passwords and scram authentication; every other
integration test already runs chainwatch-ingestor and chainwatch-api as chainwatch_ingestor and chainwatch_api,
which shows what they may do. This file shows what they may not: each forbidden statement is run over a real
login as the role and must fail with SQLSTATE 42501 (insufficient_privilege), and a row count taken by the
superuser before and after shows nothing changed. The last test runs both daemons with passwords in their
DATABASE_URL, a password-protected Redis and real API keys, at debug log level, including a failing login, and
greps every log line, /metrics page and /health body for each secret."""
import io
import json
import subprocess
import time

import psycopg2
import pytest
import requests

from conftest import pg_connect, record_pid
from test_api import ApiProcess, Client, Ingest, etherscan_tx, free_port, tx_hash

DENIED = "42501"


def role_conn(stack, role):
    """role_conn — an autocommit psycopg2 connection as a daemon role, with its password, over TCP."""
    conn = psycopg2.connect(stack.role_url(role), connect_timeout=10)
    conn.autocommit = True
    return conn


def denied(conn, statement, args=()):
    """denied — run statement; return its SQLSTATE (None if it succeeded)."""
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
        return None
    except psycopg2.Error as e:
        return e.pgcode


def counts(stack):
    """counts — row counts of the tables a forbidden statement could touch, as the superuser."""
    conn = pg_connect(stack)
    try:
        with conn.cursor() as cur:
            out = {}
            for t in ("transactions", "anomalies", "dead_letters", "models", "api_keys", "kafka_offsets",
                      "severity_rules", "retention_policies"):
                cur.execute(f"SELECT count(*) FROM chainwatch.{t}")
                out[t] = cur.fetchone()[0]
            cur.execute("SELECT max_rows FROM chainwatch.retention_policies ORDER BY table_name")
            out["bounds"] = cur.fetchall()
            cur.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'chainwatch'")
            out["relations"] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def loaded(stack):
    """loaded — the shared stack with rows in every store table, an active model and a key."""
    admin = pg_connect(stack)
    ingest = Ingest(stack)
    with admin.cursor() as cur:
        # the shared stack may already hold batches of Ingest's topic: continue after them
        cur.execute("SELECT coalesce(max(next_offset), 0) FROM chainwatch.kafka_offsets WHERE topic = 'api-test'")
        ingest.offset = cur.fetchone()[0]
    ingest.commit(transactions=[{"hash": tx_hash(f"lp{i}"), "value": i * 10**15} for i in range(300)])
    with admin.cursor() as cur:
        cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('lp', "
                    "'SELECT value, gas, gas_price FROM chainwatch.transactions', n_trees => 10))")
        model = cur.fetchone()[0]
        cur.execute("SELECT chainwatch.create_api_key('lp-reader', 'reader')")
    admin.close()
    ingest.commit(anomalies=[{"hash": tx_hash("lp-anomaly"), "value": 10**21, "score": 0.9, "severity": "high"}],
                  model_id=model)
    return stack, model


INGESTOR_FORBIDDEN = [
    "SELECT count(*) FROM chainwatch.transactions",
    "SELECT hash FROM chainwatch.anomalies",
    "SELECT payload FROM chainwatch.dead_letters",
    "DELETE FROM chainwatch.transactions",
    "UPDATE chainwatch.anomalies SET severity = 'low'",
    "TRUNCATE chainwatch.dead_letters",
    "UPDATE chainwatch.kafka_offsets SET next_offset = 0",
    "DELETE FROM chainwatch.kafka_offsets",
    "UPDATE chainwatch.models SET threshold = 0",
    "INSERT INTO chainwatch.models (name) VALUES ('x')",
    "SELECT key_hash FROM chainwatch.api_keys",
    "SELECT * FROM chainwatch.api_key_list",
    "SELECT chainwatch.create_api_key('ingestor-sneaky', 'admin')",
    "SELECT chainwatch.authenticate_api_key('cwk_x')",
    "SELECT chainwatch.activate_model(1)",
    "SELECT chainwatch.rollback_model()",
    "SELECT chainwatch.drop_model(1)",
    "SELECT chainwatch.train_model('x', 'SELECT value, gas, gas_price FROM chainwatch.transactions')",
    "SELECT chainwatch.set_retention('transactions', max_rows => 1)",
    "SELECT chainwatch._drop_partition('transactions_p0', 'ttl')",
    "SELECT chainwatch._enforce_bound('transactions')",
    "UPDATE chainwatch.severity_rules SET min_score = 0",
    "UPDATE chainwatch.retention_policies SET max_rows = 1",
    "CREATE TABLE chainwatch.sneaky (x int)",
    "DROP TABLE chainwatch.transactions",
]

API_FORBIDDEN = [
    "DELETE FROM chainwatch.anomalies",
    "UPDATE chainwatch.anomalies SET severity = 'low'",
    "TRUNCATE chainwatch.anomalies",
    "INSERT INTO chainwatch.transactions (hash, value, gas, gas_price) VALUES ('0x1', 1, 1, 1)",
    "DELETE FROM chainwatch.transactions",
    "SELECT key_hash FROM chainwatch.api_keys",
    "SELECT count(*) FROM chainwatch.api_keys",
    "UPDATE chainwatch.api_keys SET role = 'admin'",
    "SELECT * FROM chainwatch.api_key_list",
    "SELECT payload FROM chainwatch.dead_letters",
    "SELECT * FROM chainwatch.commit_batch('g', 't', '{0}', '{0}', '{1}', NULL)",
    "SELECT chainwatch.maintain()",
    "SELECT chainwatch.drop_model(1)",
    "UPDATE chainwatch.models SET is_active = false",
    "DELETE FROM chainwatch.models",
    # a forged model (issue 24): only train_model() and import_model() may add one
    "INSERT INTO chainwatch.models (name, source, n_features, transform, n_trees, sample_size, threshold,"
    " format_version, checksum, forest, created_by) VALUES ('forged', 'trained', 3, 'log1p', 1, 1, 0.5, 1, 0,"
    " '\\x00', 'someone-else')",
    "UPDATE chainwatch.kafka_offsets SET next_offset = 0",
    "UPDATE chainwatch.severity_rules SET min_score = 0",
    "SELECT chainwatch.set_retention('anomalies', max_rows => 1)",
    "UPDATE chainwatch.retention_policies SET max_rows = 1",
    "CREATE TABLE chainwatch.sneaky (x int)",
    "DROP VIEW chainwatch.recent_anomalies",
]

MONITOR_FORBIDDEN = [
    "SELECT key_hash FROM chainwatch.api_keys",
    "INSERT INTO chainwatch.transactions (hash, value, gas, gas_price) VALUES ('0x1', 1, 1, 1)",
    "DELETE FROM chainwatch.anomalies",
    "SELECT chainwatch.create_api_key('monitor-sneaky', 'admin')",
    "SELECT chainwatch.activate_model(1)",
    "SELECT chainwatch.maintain()",
    "SELECT * FROM chainwatch.commit_batch('g', 't', '{0}', '{0}', '{1}', NULL)",
]


@pytest.mark.parametrize("role,statements", [("ingestor", INGESTOR_FORBIDDEN), ("api", API_FORBIDDEN),
                                             ("monitor", MONITOR_FORBIDDEN)])
def test_role_cannot(loaded, role, statements):
    stack, _ = loaded
    before = counts(stack)
    conn = role_conn(stack, role)
    try:
        allowed = [s for s in statements if denied(conn, s) != DENIED]
    finally:
        conn.close()
    assert allowed == [], f"chainwatch_{role} was not refused: {allowed}"
    assert counts(stack) == before


def test_ingestor_role_can_stage_and_commit(loaded):
    """The ingestor's whole job in one transaction: COPY a row in, commit_batch, and read its offsets."""
    stack, model = loaded
    conn = role_conn(stack, "ingestor")
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rows FROM chainwatch.status() WHERE table_name = 'address_profiles'")
            profiles_before = cur.fetchone()[0]
            line = f"{tx_hash('lp-copy')}\t0xlp-from\t0xlp-to\t123\t21000\t1000000000\tlp-topic\t0\t0\n"
            cur.copy_expert("COPY chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, "
                            "kafka_topic, kafka_partition, kafka_offset) FROM STDIN", io.StringIO(line))
            cur.execute("SELECT rows FROM chainwatch.commit_batch('lp-group', 'lp-topic', '{0}', '{0}', '{1}', %s)",
                        (model,))
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT next_offset FROM chainwatch.committed_offsets('lp-group')")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT count(*) FROM chainwatch.maintain()")
            # the profile trigger (SECURITY DEFINER) folded the row in for a role with INSERT on transactions only
            cur.execute("SELECT table_name, rows FROM chainwatch.status() ORDER BY 1")
            status = dict(cur.fetchall())
            assert set(status) == {"address_profiles", "anomalies", "dead_letters", "transactions"}, status
            assert status["address_profiles"] == profiles_before + 2, status
            # a replay of the same offsets is refused even though the role may call commit_batch
            cur.execute("SAVEPOINT s")
            with pytest.raises(psycopg2.Error) as e:
                cur.execute("SELECT * FROM chainwatch.commit_batch('lp-group', 'lp-topic', '{0}', '{0}', '{1}', %s)",
                            (model,))
            assert e.value.pgcode == "CW002"
            cur.execute("ROLLBACK TO SAVEPOINT s")
        conn.commit()
    finally:
        conn.close()


def test_api_role_can_read_score_and_manage_keys_through_functions(loaded):
    stack, model = loaded
    conn = role_conn(stack, "api")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM chainwatch.recent_anomalies")
            assert cur.fetchone()[0] >= 1
            cur.execute("SELECT chainwatch.score(1000000000000000000, 21000, 20000000000) > 0")
            assert cur.fetchone()[0] is True
            cur.execute("SELECT chainwatch.create_api_key('lp-by-api', 'reader')")
            key = cur.fetchone()[0]
            cur.execute("SELECT chainwatch.authenticate_api_key(%s)::text", (key,))
            assert cur.fetchone()[0] == "reader"
            cur.execute("SELECT chainwatch.revoke_api_key('lp-by-api') > 0")
            assert cur.fetchone()[0] is True
            cur.execute("SELECT chainwatch.authenticate_api_key(%s)", (key,))
            assert cur.fetchone()[0] is None
            cur.execute("SELECT chainwatch.train_model('lp-api', 'SELECT value, gas, gas_price FROM"
                        " chainwatch.transactions', n_trees => 5)")
            new_model = cur.fetchone()[0]
            cur.execute("SELECT chainwatch.activate_model(%s)", (new_model,))
            cur.execute("SELECT chainwatch.rollback_model()")
            assert cur.fetchone()[0] == model
    finally:
        conn.close()
    admin = pg_connect(stack)
    with admin.cursor() as cur:
        cur.execute("SELECT created_by FROM chainwatch.api_keys WHERE name = 'lp-by-api'")
        assert cur.fetchone()[0] == "chainwatch_api"
    admin.close()


def test_schema_closed_to_public(loaded):
    """A login role that is none of ours cannot even see into the schema."""
    stack, _ = loaded
    admin = pg_connect(stack)
    with admin.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS lp_stranger; CREATE ROLE lp_stranger LOGIN PASSWORD 'lp-stranger-pw'")
    try:
        conn = psycopg2.connect(host=stack["PGHOST"], port=int(stack["PGPORT"]), user="lp_stranger",
                                dbname=stack["PGDATABASE"], password="lp-stranger-pw", connect_timeout=10)
        conn.autocommit = True
        assert denied(conn, "SELECT chainwatch.score(1, 21000, 1)") == DENIED
        assert denied(conn, "SELECT count(*) FROM chainwatch.recent_anomalies") == DENIED
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP ROLE lp_stranger")
        admin.close()


# ---- secrets ---------------------------------------------------------------------------------------------------

def scrape(url):
    try:
        return requests.get(url, timeout=5).text
    except requests.RequestException:
        return ""


def test_secrets_never_in_logs_or_metrics(private_stack, bin_dir, tmp_path):
    stack = private_stack
    db_password = stack.role_url("api").split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    ing_password = stack.role_url("ingestor").split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    redis_password = "redis-secret-" + tx_hash("redis")[2:18]
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", stack["REDIS_PORT"], "CONFIG", "SET", "requirepass",
                    redis_password], check=True, capture_output=True)

    Ingest(stack).commit(transactions=[{"hash": tx_hash(f"s{i}"), "value": i * 10**15} for i in range(300)])
    admin = pg_connect(stack)
    with admin.cursor() as cur:
        cur.execute("SELECT chainwatch.activate_model(chainwatch.train_model('s', "
                    "'SELECT value, gas, gas_price FROM chainwatch.transactions', n_trees => 10))")
        cur.execute("SELECT chainwatch.create_api_key('s-reader', 'reader')")
        reader_key = cur.fetchone()[0]
        cur.execute("SELECT chainwatch.create_api_key('s-admin', 'admin')")
        admin_key = cur.fetchone()[0]
    admin.close()
    wrong_key = "cwk_" + "ab" * 32
    secrets = {"API role password": db_password, "ingestor role password": ing_password,
               "Redis password": redis_password, "reader key": reader_key, "admin key": admin_key,
               "reader key body": reader_key[8:], "wrong key": wrong_key}

    api = ApiProcess(stack, tmp_path, REDIS_PASSWORD=redis_password, LOG_LEVEL="debug", LOG_FORMAT="json")
    # a second API whose password is wrong: its failed logins are logged, the password is not
    bad_port = free_port()
    bad_url = stack.role_url("api").replace(db_password, db_password[::-1])
    bad_log = tmp_path / "api-bad.log"
    with open(bad_log, "w") as log:
        bad = subprocess.Popen([str(bin_dir / "chainwatch-api")], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT,
                               env=stack.environ(DATABASE_URL=bad_url, API_PORT=bad_port, LOG_LEVEL="debug",
                                                 REDIS_PASSWORD=redis_password[::-1]))
    record_pid(stack, "api-bad", bad.pid)
    secrets["wrong API role password"] = db_password[::-1]
    secrets["wrong Redis password"] = redis_password[::-1]

    ing_port = free_port()
    ing_log = tmp_path / "ingestor.log"
    subprocess.run([str(bin_dir / "chainwatch-txgen"), "--brokers", stack["KAFKA_BOOTSTRAP_SERVERS"], "--topic",
                    stack["KAFKA_TOPIC"], "--count", "2000", "--seed", "11"], check=True, capture_output=True)
    with open(ing_log, "w") as log:
        ing = subprocess.Popen([str(bin_dir / "chainwatch-ingestor")], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT,
                               env=stack.daemon_environ("ingestor", METRICS_PORT=ing_port, LOG_LEVEL="debug",
                                                        KAFKA_SESSION_TIMEOUT_MS=6000))
    record_pid(stack, "ingestor", ing.pid)
    pages = []
    try:
        reader = Client(api.url, reader_key)
        r = reader.get("/api/v1/anomalies")
        assert r.status_code == 200, r.text
        assert reader.get("/api/v1/anomalies").headers["X-Cache"] == "HIT"  # Redis took the password
        assert reader.post("/api/v1/predict", etherscan_tx("s-predict")).status_code == 200
        assert Client(api.url, wrong_key).get("/api/v1/anomalies").status_code == 401
        bearer = requests.get(api.url + "/api/v1/models", headers={"Authorization": "Bearer " + admin_key}, timeout=10)
        assert bearer.status_code == 200
        requests.get(api.url + "/api/v1/anomalies", headers={"Authorization": "Bearer " + wrong_key}, timeout=10)

        conn = pg_connect(stack)
        deadline = time.time() + 90
        with conn.cursor() as cur:
            while time.time() < deadline:
                cur.execute("SELECT coalesce(sum(next_offset), 0) FROM chainwatch.kafka_offsets"
                            " WHERE topic = %s", (stack["KAFKA_TOPIC"],))
                if cur.fetchone()[0] >= 2000:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError("the ingestor did not load the 2,000 messages")
        conn.close()
        # the API that cannot log in answers 503 with a generic reason: libpq's text (host, port, role) is only logged
        r = requests.get(f"http://127.0.0.1:{bad_port}/api/v1/anomalies", headers={"X-API-Key": reader_key},
                         timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable", r.text
        health = requests.get(f"http://127.0.0.1:{bad_port}/health", timeout=10)
        for body in (r.text, health.text):
            assert not any(w in body for w in ("FATAL", "password", "chainwatch_api", "127.0.0.1")), body
        time.sleep(1)  # let the bad API log a few failed attempts
        for url in (api.url + "/metrics", api.url + "/health", api.url + "/health/ready",
                    f"http://127.0.0.1:{ing_port}/metrics", f"http://127.0.0.1:{ing_port}/health/ready",
                    f"http://127.0.0.1:{bad_port}/metrics", f"http://127.0.0.1:{bad_port}/health"):
            pages.append((url, scrape(url)))
        assert any("chainwatch_ingest_rows_total" in text for _, text in pages)
    finally:
        for p in (ing, bad):
            p.terminate()
            p.wait(timeout=40)
        api.stop()

    # the help text and a startup error name settings, never values
    help_text = subprocess.run([str(bin_dir / "chainwatch-api"), "--help"], capture_output=True, text=True,
                               env=stack.environ(REDIS_PASSWORD=redis_password)).stdout
    bad_setting = subprocess.run([str(bin_dir / "chainwatch-ingestor")], capture_output=True, text=True, timeout=30,
                                 env=stack.daemon_environ("ingestor", BATCH_SIZE="many"))
    assert bad_setting.returncode != 0 and "BATCH_SIZE" in bad_setting.stderr + bad_setting.stdout

    texts = [("api log", api.log_path.read_text()), ("bad api log", bad_log.read_text()),
             ("ingestor log", ing_log.read_text()), ("api --help", help_text),
             ("ingestor startup error", bad_setting.stderr + bad_setting.stdout)] + pages
    assert "password authentication failed" in bad_log.read_text()  # the reason is logged, the password not
    leaks = [(where, what) for where, text in texts for what, secret in secrets.items() if secret in text]
    assert leaks == [], f"secrets leaked: {leaks}"
    # the logs are JSON lines when asked to be, and the log did see the requests (the test is not vacuous)
    api_lines = [json.loads(line) for line in api.log_path.read_text().splitlines() if line.startswith("{")]
    assert api_lines and any("/api/v1/anomalies" in json.dumps(x) for x in api_lines)
