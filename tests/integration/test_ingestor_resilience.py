"""tests/integration/test_ingestor_resilience.py — chainwatch-ingestor under the failures issue 23 and 26 found.

Each test provokes one failure with real components (Postgres triggers, locks, a language, a model the ingestor
cannot use, a topic of more than 4,096 partitions, a shutdown under load) and checks that the stream keeps
flowing, that the process ends when it is told to, and that chainwatch.transactions still holds exactly the
produced set (tests/integration/test_ingestor.py's assert_exactly_once). Each test fails on the code before
its fix; the docstrings say how.

The harness (private stack, ingestor processes, the exactly-once check) is test_ingestor.py's.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from confluent_kafka import Producer

from conftest import pg_connect, record_pid
from test_ingestor import assert_exactly_once, harness, read_topic, scaled, wait_for  # noqa: F401 (fixture)

MAINTAIN_LOCK = "hashtext('chainwatch.maintain')"  # maintain()'s advisory lock (docs/store.md, Maintenance)


# ---- helpers ----------------------------------------------------------------------------------------------


def tx_payload(hash_char):
    """tx_payload — a valid legacy transaction message whose hash is 0x followed by 64 copies of hash_char."""
    return json.dumps({"hash": "0x" + hash_char * 64, "value": "1000", "gas": "21000", "gasPrice": "7"}).encode()


def produce(h, items):
    """produce — send each (partition, payload) in order; returns {(partition, offset): payload}."""
    prod = Producer({"bootstrap.servers": h.stack["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 0})
    stored = {}

    def on_delivery(err, msg):
        assert err is None, err
        stored[(msg.partition(), msg.offset())] = msg.value()

    for partition, payload in items:
        prod.produce(h.topic, payload, partition=partition, on_delivery=on_delivery)
    assert prod.flush(30) == 0
    assert len(stored) == len(items)
    return stored


def refuse_rows(h, name, condition, message, table="chainwatch.transactions"):
    """refuse_rows — a BEFORE INSERT row trigger on table that raises SQLSTATE 22023 with `message` (an SQL
    expression) for rows where `condition` (over NEW) holds: the database refusing a row the decoder accepted."""
    h.sql(f"""CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN
                  IF {condition} THEN
                      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = {message};
                  END IF;
                  RETURN NEW;
              END $$""")
    h.sql(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION public.{name}()")


def current_partition(h, table="transactions"):
    (name,), = h.sql("SELECT partition_name FROM chainwatch.partition_state WHERE table_name = %s "
                     "AND lower_bound <= now() AND upper_bound > now()", table)
    return name


def server_log(h):
    return Path(h.stack.dir) / "pg" / "log" / "postgresql.log"


def pg_ctl(h, *args, env=None):
    """pg_ctl — pg_ctl on the stack's cluster as the postgres user, with env for the server it starts."""
    data = Path(h.stack.dir) / "pg" / "data"
    pgbin = subprocess.run(["pg_config", "--bindir"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    res = subprocess.run(["runuser", "-u", "postgres", "--", f"{pgbin}/pg_ctl", "-D", str(data), *args], cwd="/",
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0, f"pg_ctl {' '.join(args)} failed: {res.stdout}"


def restart_postgres(h, env=None):
    """restart_postgres — restart the stack's server (with env), record the new postmaster, reconnect h.conn."""
    h.conn.close()
    pg_ctl(h, "-l", str(server_log(h)), "-m", "fast", "-w", "-t", "30", "restart", env=env)
    pid = int((Path(h.stack.dir) / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    record_pid(h.stack, "postgres", pid)  # so that `down` stops the new postmaster
    h.conn = pg_connect(h.stack)


def locked_store(h, table="chainwatch.transactions"):
    """locked_store — a superuser transaction holding ACCESS EXCLUSIVE on table (roll it back to release)."""
    conn = pg_connect(h.stack)
    conn.autocommit = False
    conn.cursor().execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


def backends_waiting(h, application_name):
    (n,), = h.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                  application_name)
    return n


def statements_by_application(h, fragment, since):
    """statements_by_application — application names of the server log's `statement:` lines (log_statement =
    all, log_line_prefix with app=[%a]) since byte offset `since` that contain fragment."""
    apps = []
    text = server_log(h).read_bytes()[since:].decode(errors="replace")
    for line in text.splitlines():
        m = re.search(r"app=\[([^\]]*)\].*statement: (.*)", line)
        if m and fragment in m.group(2):
            apps.append(m.group(1))
    return apps


def log_statements(h):
    """log_statements — make the server log every statement with its application name; returns the log's size."""
    h.sql("ALTER SYSTEM SET log_statement = 'all'")
    h.sql("ALTER SYSTEM SET log_line_prefix = '%%m [%%p] app=[%%a] '")  # %% : psycopg2's escape
    h.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the postmaster signals the backends; new sessions read the file at start anyway
    return server_log(h).stat().st_size


def load_the_rest_and_stop(h, ing, producer, n, part):
    """load_the_rest_and_stop — after the current partition `part` was detached mid-stream: let the producer of
    n messages finish, wait until the running ingestor has stored every message but those the detached
    partition keeps, stop it with SIGTERM (status 0), check that no row became a dead letter, put the detached
    rows back and check that every message is stored exactly once."""
    (kept,), = h.sql(f"SELECT count(*) FROM chainwatch.{part}")
    h.finish_txgen(producer)
    wait_for(f"the running ingestor to load the other {n - kept} messages",
             lambda: h.table_count() >= n - kept or not ing.alive(), 120, interval=0.5,
             on_timeout=lambda: f"{h.table_count()} rows\n{ing.tail(40)}")
    time.sleep(0.5)
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail(40)
    dead = h.sql("SELECT reason, left(error, 120) FROM chainwatch.dead_letters LIMIT 5")
    assert dead == [], f"rows of the missing partition became dead letters: {dead}"
    h.sql(f"INSERT INTO chainwatch.transactions SELECT * FROM chainwatch.{part}")
    assert_exactly_once(h, read_topic(h), extra=f"{kept} rows were in the detached partition")


# ---- defect 1: a message the database refuses, and its dead letter too ----------------------------------------


def test_a_dead_letter_the_database_refuses_does_not_stall_its_partition(harness):
    """The database refuses one message's row and then its dead letter (triggers that refuse that row and any
    dead letter at its position). The writer stores what it can and finally gives the message up: its offset is
    committed without a row, the rest of its partition flows, nothing else is lost or doubled. Before the fix
    the writer logged "refused twice" and retried the dead letter forever without a pause: the partition
    stalled and --drain never ended."""
    h = harness(partitions=4)
    h.txgen(scaled(2000), seed=101)
    poison = produce(h, [(1, tx_payload("e"))])
    (p, o), = poison
    h.txgen(scaled(2000), seed=102)
    refuse_rows(h, "cw_test_refuse_row", f"NEW.hash = '0x{'e' * 64}'", "'poison row refused by a test trigger'")
    refuse_rows(h, "cw_test_refuse_dead_letter", f"NEW.kafka_partition = {p} AND NEW.kafka_offset = {o}",
                "'its dead letter is refused too'", table="chainwatch.dead_letters")

    ing = h.drain(timeout=120, BATCH_SIZE=500)
    produced = read_topic(h)
    assert_exactly_once(h, produced, dead_positions=poison)
    dead = h.sql("SELECT kafka_partition, kafka_offset FROM chainwatch.dead_letters")
    assert dead == [], f"dead letters stored despite the trigger: {dead}"
    log = ing.log()
    assert re.search(rf"message {p}/{o}: even its minimal dead letter was refused .*; giving it up", log), f"the give-up is not logged\n{ing.tail(40)}"
    assert re.search(r"\(\d+ dead letters, \d+ skipped, 1 given up\)", log), ing.tail(10)


def test_a_non_ascii_refusal_is_stored_as_a_valid_dead_letter(harness):
    """The database refuses a row with a message of 3-byte characters long enough to be cut: the dead letter's
    error text is cut on a character boundary, so the dead letter is stored at the first try and says why the
    row was refused. Before the fix, a cut through a character made invalid UTF-8, the dead letter was refused
    with 22021 and the one finally stored carried that second error instead of the first."""
    h = harness(partitions=4)
    h.txgen(scaled(1000), seed=103)
    poison = produce(h, [(2, tx_payload("f"))])
    (pos, _), = poison.items()
    h.txgen(scaled(1000), seed=104)
    # "ERROR:  refused " is 16 bytes: the 200-byte cut of the error text falls inside the 62nd euro sign
    refuse_rows(h, "cw_test_refuse_row", f"NEW.hash = '0x{'f' * 64}'", "'refused ' || repeat('€', 120)")

    ing = h.drain(timeout=120, BATCH_SIZE=500)
    assert_exactly_once(h, read_topic(h), dead_positions=poison)
    rows = h.sql("SELECT kafka_partition, kafka_offset, reason, error FROM chainwatch.dead_letters")
    assert len(rows) == 1, rows
    (p, o, reason, error), = rows
    assert (p, o) == pos and reason == "db_rejected", rows
    assert error.startswith("database refused: ") and "refused €€€" in error, \
        f"the dead letter does not carry the refusal: {error!r}"
    assert not re.search(r"message \d+/\d+: its dead letter was refused", ing.log()), ing.tail(20)


# ---- defect 2: "no partition" in another language -----------------------------------------------------------


def german_server(h):
    """german_server — restart the stack's Postgres so that it can answer in German and make the ingestor
    role's sessions do so (lc_messages); returns the server's German text for "no partition ... found for row"
    with the table name as %s. Skips when the server has no German translation installed."""
    localedir = subprocess.run(["pg_config", "--localedir"], stdout=subprocess.PIPE, text=True).stdout.strip()
    if not list(Path(localedir or "/nonexistent").glob("de/LC_MESSAGES/postgres-*.mo")):
        pytest.skip(f"the server has no German translation in {localedir!r}")
    env = dict(os.environ)
    have = subprocess.run(["locale", "-a"], stdout=subprocess.PIPE, text=True).stdout.lower().split()
    if "de_de.utf8" not in have:
        # a locale of our own, for this server only (LOCPATH), rather than one added to the system
        locales = Path(h.stack.dir) / "locale"
        locales.mkdir(exist_ok=True)
        res = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not (locales / "de_DE.UTF-8" / "LC_MESSAGES").exists():
            pytest.skip(f"no de_DE.UTF-8 locale and localedef could not make one: {res.stdout}")
        for d, _, files in os.walk(locales):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        env["LOCPATH"] = str(locales)
    restart_postgres(h, env=env)
    h.sql("ALTER ROLE chainwatch_ingestor SET lc_messages = 'de_DE.UTF-8'")
    # the translation is in effect: the very error the writers will meet, in German
    with h.conn.cursor() as cur:
        cur.execute("SET lc_messages = 'de_DE.UTF-8'")
        cur.execute("CREATE TEMP TABLE cw_lc (t int) PARTITION BY RANGE (t)")
        with pytest.raises(psycopg2.Error) as err:
            cur.execute("INSERT INTO cw_lc VALUES (1)")
        cur.execute("RESET lc_messages")
    assert err.value.pgcode == "23514", err.value
    text = err.value.diag.message_primary
    assert "no partition" not in text and "cw_lc" in text, f"not a translated message: {text!r}"
    return text.replace("cw_lc", "%s")


def test_a_missing_partition_is_recognised_in_another_language(harness):
    """With lc_messages = German for the ingestor's role, an operator detaches the current transactions
    partition mid-stream: the writers recognise "no partition" by its SQLSTATE and fields (23514 naming a
    table and no constraint), wait for the maintenance worker to create the partition again and store every
    row. Before the fix the English message text was matched, so the rows went to dead letters instead."""
    h = harness(partitions=8)
    german = german_server(h)
    n = scaled(20000)
    producer = h.txgen(n, seed=105, rate=max(1000, n // 10), background=True)
    ing = h.ingestor(BATCH_SIZE=500)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=h.logs)
    part = current_partition(h)
    h.sql(f"ALTER TABLE chainwatch.transactions DETACH PARTITION chainwatch.{part}")
    load_the_rest_and_stop(h, ing, producer, n, part)
    assert german % "transactions" in ing.log(), \
        f"the writers never met the German message {german % 'transactions'!r}\n{ing.tail(20)}"


# ---- defect 3: a missing partition with another maintainer holding the lock --------------------------------


def test_writers_back_off_while_the_partition_is_missing(harness):
    """The current partition is detached while maintain()'s lock is held by someone else, so nobody can create
    it for a while: the writers back off (capped exponential) instead of retrying in a loop, create no dead
    letter, and load everything once the partition is back. Failed attempts are counted in the server log (one
    "no partition" ERROR each) over a six-second window: a capped backoff makes a few per writer, the loop
    before the fix made thousands (BEGIN, COPY, ROLLBACK and maintain(), which returned at once)."""
    h = harness(partitions=8)
    n = scaled(20000)
    producer = h.txgen(n, seed=106, rate=max(1000, n // 10), background=True)
    ing = h.ingestor(BATCH_SIZE=500, KAFKA_NUM_WORKER_THREADS=4)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=h.logs)
    holder = pg_connect(h.stack)
    holder.cursor().execute(f"SELECT pg_advisory_lock({MAINTAIN_LOCK})")
    try:
        start = server_log(h).stat().st_size
        part = current_partition(h)
        h.sql(f"ALTER TABLE chainwatch.transactions DETACH PARTITION chainwatch.{part}")
        time.sleep(6)
        failures = server_log(h).read_bytes()[start:].count(b'no partition of relation "transactions"')
    finally:
        holder.cursor().execute(f"SELECT pg_advisory_unlock({MAINTAIN_LOCK})")
        holder.close()
    assert failures > 0, "no writer met the missing partition"
    assert failures <= 100, f"{failures} failed attempts in 6 s with 4 writers: they retry without backing off"
    load_the_rest_and_stop(h, ing, producer, n, part)


# ---- defect 4: /metrics while the process shuts down --------------------------------------------------------


def test_metrics_scraped_while_the_ingestor_shuts_down(harness):
    """Four clients scrape /metrics as fast as they can while the ingestor shuts down: every answer is whole
    and the process exits 0. Run against the ASan build (tests/suites/70-ingestor.sh), a scrape touching the
    freed Kafka handle (consumer_close() ran before observe_stop() before the fix) is a reported error."""
    h = harness(partitions=16)
    h.txgen(scaled(5000), seed=107)
    ing = h.ingestor(KAFKA_NUM_WORKER_THREADS=2)
    wait_for("all rows", lambda: h.table_count() >= scaled(5000) or not ing.alive(), 60, on_timeout=ing.tail)
    stop = threading.Event()
    answers, broken = [0], []

    def scrape():
        while not stop.is_set():
            status, body = ing.get("/metrics", timeout=2)
            if status == 200:
                answers[0] += 1
                if not body.rstrip().endswith(("0", "1")) or "chainwatch_db_up" not in body:
                    broken.append(body[-200:])
            elif status is not None:
                broken.append(f"status {status}: {body[:200]}")

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for("scrapes", lambda: answers[0] > 20, 30)
        ing.signal(signal.SIGTERM)
        rc = ing.wait(30)
    finally:
        stop.set()
        for t in threads:
            t.join()
    log = ing.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, ing.tail(60)
    assert rc == 0, f"exit status {rc}\n{ing.tail(40)}"
    assert not broken, f"broken answers: {broken[:3]}"


# ---- defect 5: a writer stuck in Postgres at shutdown ------------------------------------------------------


def stick_a_writer(h, ing, seed):
    """stick_a_writer — lock chainwatch.transactions and produce until one of ing's writers waits for the lock
    inside its batch transaction (it then holds the assignment lock); returns the locking connection."""
    locker = locked_store(h)
    h.txgen(500, seed=seed)
    wait_for("a writer to wait for the locked table",
             lambda: backends_waiting(h, "chainwatch-ingestor") > 0 or not ing.alive(), 60, on_timeout=ing.tail)
    assert ing.alive(), ing.tail(40)
    return locker


def test_sigterm_with_a_writer_stuck_in_postgres_exits_after_the_timeout(harness):
    """A writer waits in Postgres (the table it loads is locked): SIGTERM stops everything else, and after
    SHUTDOWN_TIMEOUT_MS (2 s) the process exits 1 with that writer's batch uncommitted, read again later.
    Before the fix the main thread joined the stuck writer and the process never exited."""
    h = harness(partitions=8)
    ing = h.ingestor(SHUTDOWN_TIMEOUT_MS=2000, BATCH_SIZE=100)
    wait_for("the assignment", lambda: ing.assigned() == 8 or not ing.alive(), 60, on_timeout=ing.tail)
    locker = stick_a_writer(h, ing, seed=108)
    try:
        ing.signal(signal.SIGTERM)
        rc = ing.wait(30)
    finally:
        locker.rollback()
        locker.close()
    assert rc == 1, f"exit status {rc}\n{ing.tail(40)}"
    assert "shutdown timed out" in ing.log(), ing.tail(20)
    h.drain()
    assert_exactly_once(h, read_topic(h))


def test_sigterm_with_postgres_frozen_exits_after_the_timeout(harness):
    """Every writer's backend is frozen (SIGSTOP: the server answers nothing, as on a hung host), so writers
    block in libpq with the batches they hold: SIGTERM still ends the process after SHUTDOWN_TIMEOUT_MS (2 s)
    with status 1, and nothing is lost (the next owner reads the uncommitted batches again). Before the fix
    the main thread joined the writers and the process never exited."""
    h = harness(partitions=8)
    ing = h.ingestor(SHUTDOWN_TIMEOUT_MS=2000, BATCH_SIZE=100)
    wait_for("the assignment", lambda: ing.assigned() == 8 or not ing.alive(), 60, on_timeout=ing.tail)
    pids = [pid for (pid,) in h.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'chainwatch-ingestor'")]
    assert pids, "no writer connection in pg_stat_activity"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        h.txgen(500, seed=114)  # batches the writers send into the frozen backends
        wait_for("the ingestor to see the 500 messages",
                 lambda: sum(v for k, v in ing.metrics().items() if k.startswith("chainwatch_kafka_consumer_lag"))
                 >= 500 or not ing.alive(), 30, on_timeout=ing.tail)
        time.sleep(1.5)  # fetched and handed to the writers (BATCH_FLUSH_MS is 200 ms): they are in libpq now
        ing.signal(signal.SIGTERM)
        rc = ing.wait(30)
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert rc == 1, f"exit status {rc}\n{ing.tail(40)}"
    assert "shutdown timed out" in ing.log(), ing.tail(20)
    h.drain()
    assert_exactly_once(h, read_topic(h))


def test_second_sigterm_exits_while_a_revocation_waits_for_a_stuck_writer(harness):
    """A writer waits in Postgres and a second member joins, so the first member's revocation waits for that
    writer's transaction. A SIGTERM starts the shutdown (SHUTDOWN_TIMEOUT_MS is long) and a second one ends the
    process at once, status 1. Before the fix main waited to join the poll thread, stuck in the revocation,
    and never saw the second signal."""
    h = harness(partitions=8)
    a = h.ingestor(name="a", SHUTDOWN_TIMEOUT_MS=600000, BATCH_SIZE=100)
    wait_for("A's assignment", lambda: a.assigned() == 8 or not a.alive(), 60, on_timeout=a.tail)
    locker = stick_a_writer(h, a, seed=109)
    try:
        b = h.ingestor(name="b")
        wait_for("A's revocation to wait for its stuck writer", lambda: "waiting for" in a.log() or not a.alive(),
                 60, on_timeout=lambda: f"{a.tail()}\n{b.tail()}")
        a.signal(signal.SIGTERM)
        time.sleep(0.3)
        a.signal(signal.SIGTERM)
        rc = a.wait(20)
    finally:
        locker.rollback()
        locker.close()
    assert rc == 1, f"exit status {rc}\n{a.tail(40)}"
    assert "second signal" in a.log(), a.tail(20)
    b.signal(signal.SIGTERM)
    assert b.wait(40) == 0, b.tail(40)
    h.drain()
    assert_exactly_once(h, read_topic(h))


# ---- defect 6: partitions from 4096 on, fatal Kafka errors --------------------------------------------------


def test_partitions_numbered_4096_and_above_are_loaded(harness):
    """A topic of 4,100 partitions with messages on partitions 0, 4095, 4096 and 4099: every one is stored
    exactly once. Before the fix partitions from 4096 on were assigned and every message on them dropped."""
    h = harness(partitions=4100)
    partitions = [0, 4095] + [4096 + k % 4 for k in range(12)]
    produce(h, [(p, json.dumps({"hash": "0x%064x" % (i + 1), "value": "1", "gas": "21000", "gasPrice": "1"}).encode())
                for i, p in enumerate(partitions)])
    h.drain(timeout=240)
    assert_exactly_once(h, read_topic(h, timeout=240))


def test_a_fatal_kafka_error_stops_the_ingestor_with_status_3(harness):
    """Two members with the same group.instance.id (static membership): Apache Kafka fences the older one,
    which librdkafka reports as a fatal error. That member logs the error and exits 3. Before the fix a fatal
    error was logged and ignored: the process stayed up consuming nothing. librdkafka's mock cluster does not
    fence static members; there the test is skipped."""
    h = harness(partitions=4)
    a = h.ingestor(name="a", KAFKA_CONFIG_GROUP_INSTANCE_ID="cw-static-member")
    wait_for("A's assignment", lambda: a.assigned() == 4 or not a.alive(), 60, on_timeout=a.tail)
    b = h.ingestor(name="b", KAFKA_CONFIG_GROUP_INSTANCE_ID="cw-static-member")
    wait_for("A to be fenced, or both to share the partitions",
             lambda: not a.alive() or (a.assigned() > 0 and b.assigned() > 0), 90,
             on_timeout=lambda: f"{a.tail()}\n{b.tail()}")
    if a.alive():
        pytest.skip("this broker does not fence static group members (librdkafka's mock cluster)")
    rc = a.wait(10)
    assert rc == 3, f"exit status {rc}\n{a.tail(40)}"
    assert re.search(r"fatal", a.log(), re.I), a.tail(20)


# ---- issue 26 / issue 24: an active model the ingestor cannot use ------------------------------------------


def test_an_active_model_the_ingestor_cannot_use_stores_rows_unscored(harness):
    """An active model of five features (trained from a float8[] source), then one whose stored forest is
    corrupt: the ingestor stores every row with a NULL score, commits with the active model's id, counts the
    rows in chainwatch_ingest_unscored_rows_total, sets chainwatch_ingest_model_usable to 0, logs one ERROR per
    model, and /health/ready answers 503 with the reason.
    Before the fix the five-feature batch was marked scored without scoring (garbage scores stored), and the
    corrupt forest made every writer retry for ever."""
    h = harness(partitions=4)
    h.txgen(scaled(3000), seed=110)
    h.drain()
    (five,), = h.sql("SELECT chainwatch.train_model('five-features', 'SELECT ARRAY[value, gas, gas_price, gas, "
                     "value]::float8[] FROM chainwatch.transactions')")
    h.sql("SELECT chainwatch.activate_model(%s)", five)
    n = scaled(2000)
    h.txgen(n, seed=111)
    ing = h.ingestor()
    total = scaled(3000) + n
    wait_for("the rows", lambda: h.table_count() >= total or not ing.alive(), 60, on_timeout=ing.tail)
    time.sleep(0.3)
    metrics = ing.metrics()
    status, body = ing.get("/health/ready")
    ing.signal(signal.SIGTERM)
    assert ing.wait(30) == 0, ing.tail(40)
    scored = h.sql("SELECT count(*), min(score), max(score) FROM chainwatch.transactions "
                   "WHERE score IS NOT NULL OR model_id IS NOT NULL")
    assert scored[0][0] == 0, f"rows scored with a model the ingestor cannot use (count, min, max): {scored}"
    assert metrics.get('chainwatch_ingest_unscored_rows_total{reason="unusable_model"}') == n, metrics
    assert metrics.get("chainwatch_ingest_model_usable") == 0, metrics
    ready = json.loads(body)
    assert status == 503 and ready.get("ready") is False and ready.get("model") == "unusable" and \
        ready.get("unusable_model_id") == five and "model" in ready.get("reason", ""), body
    errors = [line for line in ing.log().splitlines() if f"model {five}" in line and "ERROR" in line.upper()]
    assert len(errors) == 1, f"expected one ERROR line about model {five}: {errors}"
    assert_exactly_once(h, read_topic(h))

    (good,), = h.sql("SELECT chainwatch.train_model('three-features', "
                     "'SELECT value, gas, gas_price FROM chainwatch.transactions')")
    h.sql("SELECT chainwatch.activate_model(%s)", good)
    h.sql("UPDATE chainwatch.models SET forest = substring(forest FROM 1 FOR 24) WHERE id = %s", good)
    h.txgen(n, seed=112)
    ing = h.drain(timeout=60)
    (scored,), = h.sql("SELECT count(*) FROM chainwatch.transactions WHERE score IS NOT NULL")
    assert scored == 0, f"{scored} rows carry a score from a corrupt model"
    assert re.search(rf"model {good}\b.*cannot", ing.log()), ing.tail(20)
    assert_exactly_once(h, read_topic(h))


# ---- structure 2: one owner for maintenance --------------------------------------------------------------------


def test_health_and_sigterm_while_the_maintenance_connection_waits_on_a_lock(harness):
    """The maintenance thread's chainwatch.status() waits on a locked table: /health/live keeps answering 200
    (the main loop never waits on Postgres), SIGTERM ends the process with status 0 (the statement is
    cancelled), and with the server's maintenance worker running the ingestor never calls maintain() itself.
    Before the fix main ran status() and maintain() itself: /health/live turned 503 after 5 s and SIGTERM
    waited for the lock."""
    h = harness(partitions=4)
    since = log_statements(h)
    ing = h.ingestor(MAINTENANCE_INTERVAL_MS=500)
    wait_for("the assignment", lambda: ing.assigned() == 4 or not ing.alive(), 60, on_timeout=ing.tail)
    time.sleep(1.5)  # a few maintenance ticks with the worker running
    locker = locked_store(h)
    try:
        wait_for("the maintenance connection to wait on the lock",
                 lambda: backends_waiting(h, "chainwatch-ingestor maintenance") > 0 or not ing.alive(), 30,
                 on_timeout=ing.tail)
        answers = []
        for _ in range(14):  # 7 s: longer than the 5 s after which a stalled main loop reads as not live
            answers.append(ing.get("/health/live")[0])
            time.sleep(0.5)
        ing.signal(signal.SIGTERM)
        rc = ing.wait(20)
    finally:
        locker.rollback()
        locker.close()
    assert answers == [200] * len(answers), f"/health/live answered {answers}"
    assert rc == 0, f"exit status {rc}\n{ing.tail(40)}"
    callers = statements_by_application(h, "chainwatch.maintain()", since)
    assert not [a for a in callers if a.startswith("chainwatch-ingestor")], \
        f"the ingestor called maintain() although the server's worker runs it: {callers}"


def test_without_a_worker_one_maintenance_thread_runs_maintain(harness, monkeypatch):
    """A server without the preloaded library (no maintenance worker): the ingestor's maintenance thread calls
    maintain() on its own connection, and only it: when an operator detaches the current partition the writers
    back off and ask it, and every row is stored. Before the fix the writers ran maintain() themselves."""
    monkeypatch.setenv("CHAINWATCH_PRELOAD", "0")
    h = harness(partitions=8)
    (workers,), = h.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainwatch maintenance'")
    assert workers == 0, "the stack runs a maintenance worker"
    since = log_statements(h)
    n = scaled(20000)
    producer = h.txgen(n, seed=113, rate=max(1000, n // 10), background=True)
    ing = h.ingestor(BATCH_SIZE=500, MAINTENANCE_INTERVAL_MS=2000)
    wait_for("the first rows", lambda: h.table_count() > 0 or not ing.alive(), 60, on_timeout=h.logs)
    part = current_partition(h)
    h.sql(f"ALTER TABLE chainwatch.transactions DETACH PARTITION chainwatch.{part}")
    load_the_rest_and_stop(h, ing, producer, n, part)
    callers = statements_by_application(h, "chainwatch.maintain()", since)
    assert callers and set(callers) == {"chainwatch-ingestor maintenance"}, \
        f"maintain() callers (application names): {sorted(set(callers))}, {len(callers)} calls"
