"""tests/integration/test_store.py — the store under a real server: the maintenance worker on schedule, and
ingest + queries + maintenance running together with the bounds holding throughout."""
import os
import threading
import time

import psycopg2
import pytest

from conftest import pg_connect, pg_ctl


def _fresh_extension(conn):
    """_fresh_extension: recreate the extension so the test starts from the default policies."""
    with conn.cursor() as cur:
        cur.execute("DROP EXTENSION IF EXISTS chainwatch CASCADE")
        cur.execute("CREATE EXTENSION chainwatch")


def test_worker_drops_expired_partitions_on_schedule(private_stack):
    """The preloaded library runs chainwatch.maintain() every chainwatch.maintenance_interval: an expired
    partition disappears within a few intervals without anyone calling maintain()."""
    conn = pg_connect(private_stack)
    _fresh_extension(conn)
    cur = conn.cursor()
    cur.execute("SHOW shared_preload_libraries")
    assert "chainwatch" in cur.fetchone()[0]
    cur.execute("ALTER SYSTEM SET chainwatch.maintenance_interval = 1")
    cur.execute("SELECT pg_reload_conf()")

    # the worker runs in this database
    deadline = time.time() + 20
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainwatch maintenance' "
                    "AND datname = current_database()")
        if cur.fetchone()[0] == 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("no chainwatch maintenance worker in pg_stat_activity")

    # an expired partition holding rows, as if left from two hours ago
    cur.execute("SELECT chainwatch._create_partition('anomalies', now() - interval '3 hours', "
                "now() - interval '2 hours')")
    part = cur.fetchone()[0]
    cur.execute("INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, detected_at) "
                "SELECT '0xexpired' || i, 1, 1, 1, 0.9, 'low', now() - interval '150 minutes' "
                "FROM generate_series(1, 5) i")
    cur.execute("UPDATE chainwatch.partition_state SET row_count = 5 WHERE partition_name = %s", (part,))
    cur.execute("SELECT count(*) FROM chainwatch.recent_anomalies WHERE hash LIKE '0xexpired%%'")
    assert cur.fetchone()[0] == 0, "the TTL view must hide expired rows before maintenance runs"

    start = time.time()
    while time.time() - start < 15:
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (part,))
        if cur.fetchone()[0] == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"partition {part} still exists after 15 s with a 1 s maintenance interval")
    cur.execute("SELECT evicted_ttl, last_maintenance_at > now() - interval '10 seconds' "
                "FROM chainwatch.status() WHERE table_name = 'anomalies'")
    evicted, recent = cur.fetchone()
    assert evicted == 5 and recent
    conn.close()


@pytest.fixture
def scratch_db(stack, request):
    """scratch_db — a database of the test's own with the extension at CW_EXTENSION_VERSION (default: the
    default version) and no automatic training; yields a connect function, drops the database after."""
    import os

    name = "store_" + request.node.name.lower()[:40]
    setup = pg_connect(stack)
    setup.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    setup.cursor().execute(f"CREATE DATABASE {name}")
    setup.cursor().execute(f"ALTER DATABASE {name} SET chainwatch.auto_train = off")
    connect = lambda: pg_connect(stack, name)  # noqa: E731
    admin = connect()
    version = os.environ.get("CW_EXTENSION_VERSION")
    admin.cursor().execute("CREATE EXTENSION chainwatch" + (f" VERSION '{version}'" if version else ""))
    admin.close()
    yield connect
    setup.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
    setup.close()


def test_drop_lock_timeout_keeps_created_partitions(scratch_db):
    """A writer holding anomalies (mid-COPY) makes maintain()'s drop of an expired partition time out; the
    partitions maintain() created in the same run survive (0.4.0 rolled them back with the drop), the error
    is recorded, and the next run without the writer drops the expired partition."""
    conn = scratch_db()
    cur = conn.cursor()
    # remove the premade future partitions so that this run has to create them
    cur.execute("SELECT chainwatch._drop_partition(partition_name, 'size') FROM chainwatch.partition_state "
                "WHERE table_name = 'anomalies' AND lower_bound > now()")
    cur.execute("SELECT chainwatch._create_partition('anomalies', now() - interval '3 hours', "
                "now() - interval '2 hours')")
    expired = cur.fetchone()[0]

    writer = scratch_db()
    writer.autocommit = False
    writer.cursor().execute("LOCK TABLE chainwatch.anomalies IN ROW EXCLUSIVE MODE")
    cur.execute("SELECT partitions_created, partitions_dropped, error FROM chainwatch.maintain() "
                "WHERE table_name = 'anomalies'")
    created, dropped, error = cur.fetchone()
    assert created >= 1 and dropped == 0, (created, dropped, error)
    assert error and "dropping partitions" in error and "lock timeout" in error, error
    cur.execute("SELECT count(*) FROM chainwatch.partition_state s JOIN pg_class c ON c.relname = s.partition_name "
                "WHERE s.table_name = 'anomalies' AND s.lower_bound > now()")
    assert cur.fetchone()[0] == created, "the partitions created before the drop timed out were rolled back"
    cur.execute("SELECT last_maintenance_error FROM chainwatch.status() WHERE table_name = 'anomalies'")
    assert "lock timeout" in cur.fetchone()[0]

    writer.rollback()
    cur.execute("SELECT partitions_dropped, error FROM chainwatch.maintain() WHERE table_name = 'anomalies'")
    assert cur.fetchone() == (1, None)
    cur.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (expired,))
    assert cur.fetchone()[0] == 0
    writer.close()
    conn.close()


def _waiting_on_locks(conn, n, timeout=10.0):
    """_waiting_on_locks: wait until n backends of this database wait on a heavyweight lock."""
    cur = conn.cursor()
    deadline = time.time() + timeout
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        if cur.fetchone()[0] >= n:
            return
        time.sleep(0.05)
    pytest.fail(f"fewer than {n} sessions waiting on a lock after {timeout} s")


def test_writers_across_a_boundary_never_deadlock(scratch_db):
    """The deadlock 0.4.0 showed in the soak, made deterministic: anomalies at its bound; writer B inserts into
    the newer partition of a boundary, writer A into both sides. B's eviction is held up at the oldest partition
    (here by a third session) while A waits behind B for the newer partition's counter; once B goes on it must
    evict into the older side of the boundary, which A had locked first: 0.4.0 aborted one of them with 40P01.
    With the per-table bookkeeping lock, A waits for B's whole bookkeeping and both commit with exact counters."""
    admin = scratch_db()
    c = admin.cursor()
    c.execute("SELECT chainwatch.set_retention('anomalies', max_rows => 20)")
    c.execute("SELECT partition_name, lower_bound FROM chainwatch.partition_state WHERE table_name = 'anomalies' "
              "AND lower_bound > now() ORDER BY lower_bound LIMIT 3")
    (p_old, t_old), (_, t_x), (_, t_y) = c.fetchall()
    insert = ("INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, detected_at) "
              "SELECT md5(random()::text), 1, 1, 1, 0.9, 'low', %s FROM generate_series(1, %s)")
    batch = "SELECT * FROM chainwatch.commit_batch('boundary', 't', ARRAY[%s], ARRAY[0]::bigint[], ARRAY[1]::bigint[], NULL)"
    # 1 row in the oldest partition, 10 and 9 on either side of the boundary: 20, the bound
    c.execute("BEGIN")
    c.execute(insert, (t_old, 1))
    c.execute(insert, (t_x, 10))
    c.execute(insert, (t_y, 9))
    c.execute(batch, (9,))
    c.execute("COMMIT")

    holder = scratch_db()
    holder.autocommit = False
    holder.cursor().execute("SELECT 1 FROM chainwatch.partition_state WHERE partition_name = %s FOR UPDATE", (p_old,))

    errors = []

    def writer(partition, rows):
        conn = scratch_db()
        conn.autocommit = False
        cur = conn.cursor()
        try:
            for ts, n in rows:
                cur.execute(insert, (ts, n))
            cur.execute(batch, (partition,))
            conn.commit()
        except psycopg2.Error as exc:
            errors.append(f"writer {partition}: {exc.pgcode} {exc.pgerror}")
        finally:
            conn.close()

    b = threading.Thread(target=writer, args=(1, [(t_y, 10)]))
    b.start()
    _waiting_on_locks(admin, 1)          # B: holds the newer counter, waits at the oldest partition
    a = threading.Thread(target=writer, args=(2, [(t_x, 5), (t_y, 5)]))
    a.start()
    _waiting_on_locks(admin, 2)          # A: waits behind B
    holder.rollback()
    a.join(timeout=30)
    b.join(timeout=30)
    assert not a.is_alive() and not b.is_alive(), "a writer hung"
    assert not errors, "\n".join(errors)
    c.execute("SELECT rows, (SELECT count(*) FROM chainwatch.anomalies) FROM chainwatch.status() "
              "WHERE table_name = 'anomalies'")
    counted, actual = c.fetchone()
    assert counted == actual == 20, (counted, actual)
    c.execute("SELECT count(*) FROM chainwatch.kafka_offsets WHERE consumer_group = 'boundary'")
    assert c.fetchone()[0] == 3
    holder.close()
    admin.close()


def test_ingest_queries_and_maintenance_together(stack):
    """For a minute, batches commit through commit_batch while readers query and maintain() runs in a loop:
    no error, no deadlock, and the anomaly table never holds more than max_rows."""
    setup = pg_connect(stack)
    cur = setup.cursor()
    cur.execute("CREATE DATABASE store_concurrency")
    # no automatic first model here: these batches are unscored (the ingestor tests cover scoring)
    cur.execute("ALTER DATABASE store_concurrency SET chainwatch.auto_train = off")
    setup.close()
    dbconn = lambda: pg_connect(stack, "store_concurrency")  # noqa: E731
    admin = dbconn()
    admin.cursor().execute("CREATE EXTENSION chainwatch")
    max_rows = 500
    admin.cursor().execute("SELECT chainwatch.set_retention('anomalies', max_rows => %s)", (max_rows,))
    admin.cursor().execute("SELECT chainwatch.set_retention('transactions', max_rows => 20000)")

    duration = 60.0
    stop = threading.Event()
    errors = []
    observed_max = [0]
    batches = [0]

    def ingest(partition):
        conn = dbconn()
        conn.autocommit = False
        c = conn.cursor()
        offset = 0
        try:
            while not stop.is_set():
                c.execute("INSERT INTO chainwatch.transactions (hash, value, gas, gas_price, kafka_topic, "
                          "kafka_partition, kafka_offset) SELECT '0x' || md5(%s || '-' || i), i, 21000, 1, 't', "
                          "%s, %s + i FROM generate_series(0, 199) i", (partition, partition, offset))
                c.execute("INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, "
                          "kafka_topic, kafka_partition, kafka_offset) SELECT '0x' || md5(%s || '-' || i), i, 21000, "
                          "1, 0.9, 'low', 't', %s, %s + i FROM generate_series(0, 39) i",
                          (partition, partition, offset))
                c.execute("SELECT * FROM chainwatch.commit_batch('conc', 't', ARRAY[%s], ARRAY[%s]::bigint[], "
                          "ARRAY[%s]::bigint[], NULL)", (partition, offset, offset + 200))
                conn.commit()
                offset += 200
                batches[0] += 1
        except Exception as exc:  # noqa: BLE001 - every error fails the test
            errors.append(f"ingest {partition}: {exc!r}")
        finally:
            conn.close()

    def read():
        conn = dbconn()
        c = conn.cursor()
        try:
            while not stop.is_set():
                c.execute("SELECT count(*) FROM chainwatch.anomalies")
                n = c.fetchone()[0]
                observed_max[0] = max(observed_max[0], n)
                c.execute("SELECT count(*) FROM chainwatch.recent_anomalies WHERE score > 0.5")
                c.execute("SELECT * FROM chainwatch.status()")
                c.execute("SELECT * FROM chainwatch.anomaly_stats('5 minutes')")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"reader: {exc!r}")
        finally:
            conn.close()

    def maintain():
        conn = dbconn()
        c = conn.cursor()
        try:
            while not stop.is_set():
                c.execute("SELECT table_name, error FROM chainwatch.maintain()")
                for table, err in c.fetchall():
                    # a lock timeout is skipped and retried by design; anything else is a failure
                    if err and "lock timeout" not in err:
                        errors.append(f"maintain {table}: {err}")
                time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"maintain: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=ingest, args=(p,)) for p in range(2)]
    threads += [threading.Thread(target=read), threading.Thread(target=maintain)]
    for t in threads:
        t.start()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a worker thread hung (deadlock?)"
    assert not errors, "\n".join(errors)
    assert batches[0] > 50, f"only {batches[0]} batches committed in {duration} s"
    assert observed_max[0] <= max_rows, f"anomalies held {observed_max[0]} rows > max_rows {max_rows}"

    c = admin.cursor()
    c.execute("SELECT count(*) FROM chainwatch.anomalies")
    assert c.fetchone()[0] <= max_rows
    c.execute("SELECT rows, (SELECT count(*) FROM chainwatch.anomalies) FROM chainwatch.status() "
              "WHERE table_name = 'anomalies'")
    counted, actual = c.fetchone()
    assert counted == actual, f"partition counters say {counted}, the table holds {actual}"
    c.execute("SELECT rows, (SELECT count(*) FROM chainwatch.transactions) FROM chainwatch.status() "
              "WHERE table_name = 'transactions'")
    counted, actual = c.fetchone()
    assert counted == actual and actual <= 20000
    admin.close()
    drop = pg_connect(stack)
    drop.cursor().execute("DROP DATABASE store_concurrency WITH (FORCE)")
    drop.close()


def _ingest(conn, first, n):
    """_ingest: n transactions and as many anomalies stamped now(), in one transaction closed by commit_batch()
    (which counts them into partition_state), as the ingestor does."""
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute("INSERT INTO chainwatch.transactions (hash, from_address, to_address, value, gas, gas_price, "
                "kafka_topic, kafka_partition, kafka_offset) SELECT '0x' || lpad(to_hex(i), 64, '0'), "
                "'0xs' || i %% 17, '0xr' || i %% 29, i, 21000, 1, 't', 0, i "
                "FROM generate_series(%s, %s) i", (first, first + n - 1))
    cur.execute("INSERT INTO chainwatch.anomalies (hash, value, gas, gas_price, score, severity, kafka_topic, "
                "kafka_partition, kafka_offset) SELECT '0x' || lpad(to_hex(i), 64, '0'), i, 21000, 1, 0.9, 'low', "
                "'t', 0, i FROM generate_series(%s, %s) i", (first, first + n - 1))
    cur.execute("SELECT rows FROM chainwatch.commit_batch('g', 't', ARRAY[0], ARRAY[%s::bigint], "
                "ARRAY[%s::bigint], NULL)", (first, first + n))
    conn.commit()
    conn.autocommit = True


def _settings(cur):
    """_settings: every retention policy and severity rule, as rows of text, for comparing two databases"""
    cur.execute("SELECT p::text FROM chainwatch.retention_policies p ORDER BY p.table_name")
    policies = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT r::text FROM chainwatch.severity_rules r ORDER BY r.id")
    return policies, [r[0] for r in cur.fetchall()]


def _profiles(cur):
    """_profiles: the address profiles as a set of rows, their count by status() and how many differ from a
    recomputation from the stored transactions."""
    cur.execute("SELECT p::text FROM chainwatch.address_profiles p")
    rows = {r[0] for r in cur.fetchall()}
    cur.execute("SELECT rows FROM chainwatch.status() WHERE table_name = 'address_profiles'")
    counted = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM chainwatch.verify_address_profiles()")
    return rows, counted, cur.fetchone()[0]


def _store_summary(cur):
    """_store_summary: what a dump must carry over: rows per table, the anomaly count as the API reports it,
    and that partition_state records every attached partition with its exact row count."""
    cur.execute("SELECT (SELECT count(*) FROM chainwatch.transactions), (SELECT count(*) FROM chainwatch.anomalies), "
                "chainwatch.recent_anomaly_count()")
    summary = cur.fetchone()
    cur.execute("SELECT s.partition_name, s.row_count FROM chainwatch.partition_state s "
                "WHERE s.table_name IN ('transactions', 'anomalies')")
    for name, recorded in cur.fetchall():
        cur.execute(f"SELECT count(*) FROM chainwatch.{name}")
        assert cur.fetchone()[0] == recorded, f"partition_state says {recorded} rows for {name}"
    return summary


@pytest.mark.parametrize("start_version", [None, "0.7.0"])
def test_pg_dump_restore_keeps_every_row(stack, request, start_version):
    """pg_dump of a store, restored into an empty database, keeps every transaction and anomaly, and the first
    maintain() there adopts the restored partitions (counted, and dropped by the TTL from then on). Up to 0.7.0
    the partitions CREATE EXTENSION made were extension members, which pg_dump leaves out with their rows: from
    a store installed at 0.7.0 and updated, the rows written before the update survive too. Every setting
    survives as well: retention policies changed with set_retention(), a shipped severity rule edited and
    another disabled, the user's own rule (up to 0.8.0 the policies and the shipped rules reverted to the
    defaults). So do the address profiles (0.10.0), exactly, and from 0.7.0 the update builds them from the
    rows already stored."""
    import subprocess

    tag = (start_version or "default").replace(".", "")
    src, dst = f"dump_src_{tag}", f"dump_dst_{tag}"
    admin = pg_connect(stack)
    for db in (src, dst):
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.cursor().execute(f"CREATE DATABASE {db}")
        admin.cursor().execute(f"ALTER DATABASE {db} SET chainwatch.auto_train = off")
    try:
        conn = pg_connect(stack, src)
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION chainwatch" + (f" VERSION '{start_version}'" if start_version else ""))
        _ingest(conn, 1, 500)  # into the partitions CREATE EXTENSION made
        if start_version:
            cur.execute("ALTER EXTENSION chainwatch UPDATE")
        _ingest(conn, 501, 250)
        before = _store_summary(cur)
        assert before == (750, 750, 750)
        cur.execute("SELECT chainwatch.set_retention('anomalies', ttl => interval '2 hours', max_rows => 12345)")
        cur.execute("SELECT chainwatch.set_retention('transactions', premake => 6)")
        cur.execute("UPDATE chainwatch.severity_rules SET min_value_eth = 250, description = 'edited' WHERE id = 1")
        cur.execute("UPDATE chainwatch.severity_rules SET enabled = false WHERE id = 5")
        cur.execute("INSERT INTO chainwatch.severity_rules (severity, min_score, description) "
                    "VALUES ('high', 0.9, 'own rule')")
        settings = _settings(cur)
        profiles = _profiles(cur)
        assert len(profiles[0]) == 17 + 29 and profiles[1:] == (17 + 29, 0), profiles[1:]
        conn.commit()
        conn.close()

        env = dict(PGHOST=stack["PGHOST"], PGPORT=stack["PGPORT"], PGUSER=stack["PGUSER"], PATH="/usr/bin:/bin")
        dump = subprocess.run(["pg_dump", "-d", src], env=env, capture_output=True, check=True).stdout
        # the restore runs CREATE EXTENSION, which makes partitions for the current time again: the dump's
        # CREATE TABLE and ATTACH of those fail ("already exists") and their rows go into the same-named,
        # same-bounded partitions; nothing else may fail
        restore = subprocess.run(["psql", "-X", "-q", "-d", dst], input=dump, env=env, capture_output=True)
        errors = [line for line in restore.stderr.decode().splitlines() if "ERROR" in line]
        unexpected = [e for e in errors if "already exists" not in e and "is already a partition" not in e]
        assert not unexpected, unexpected

        conn = pg_connect(stack, dst)
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM chainwatch.maintain() WHERE error IS NULL")
        assert cur.fetchone()[0] == 4
        assert _store_summary(cur) == before
        # the address profiles come back as they were (pg_dump keeps them; the restore's COPY into the
        # partitions does not fold the transactions in a second time), and still equal a recomputation
        assert _profiles(cur) == profiles
        restored = _settings(cur)
        assert restored == settings, f"settings differ after the restore: {restored} != {settings}"
        cur.execute("SELECT count(*) FROM pg_inherits i LEFT JOIN chainwatch.partition_state s "
                    "ON s.partition_name = i.inhrelid::regclass::text OR 'chainwatch.' || s.partition_name = "
                    "i.inhrelid::regclass::text WHERE i.inhparent IN ('chainwatch.transactions'::regclass, "
                    "'chainwatch.anomalies'::regclass, 'chainwatch.dead_letters'::regclass) "
                    "AND s.partition_name IS NULL")
        assert cur.fetchone()[0] == 0, "a restored partition is not recorded in partition_state"
        conn.close()
    finally:
        for db in (src, dst):
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


def test_train_model_memory_does_not_follow_the_source(stack):
    """train_model() holds one row's values at a time: training on 1.5M stored float8[] rows keeps the backend's
    private memory (RssAnon, sampled from /proc while it trains) within the reservoir and one fetch of rows.
    Up to 0.8.0 every row's detoasted array (a stored short value is always copied) stayed allocated until the
    scan ended: about 130 bytes a row, ~200 MB here."""
    conn = pg_connect(stack)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS train_memory_src")
    cur.execute("CREATE UNLOGGED TABLE train_memory_src AS SELECT ARRAY[i % 1000, i % 977, i % 13, (i * 7) % 101, "
                "i % 3, i % 5, i % 7, i % 11]::float8[] AS x FROM generate_series(1, 1500000) i")
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]

    def rss_anon_kb():
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

    base = rss_anon_kb()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        cur.execute("SELECT chainwatch.train_model('memory', 'SELECT x FROM train_memory_src', n_trees => 10)")
        model_id = cur.fetchone()[0]
    finally:
        done.set()
        sampler.join()
    cur.execute("SELECT training_rows FROM chainwatch.models WHERE id = %s", (model_id,))
    assert cur.fetchone()[0] == 1500000
    grown_mb = (peak[0] - base) / 1024
    # the reservoir (100,000 rows of 8 doubles: 6.4 MB) and a fetch of 10,000 rows (~1.5 MB) at most, with room
    assert grown_mb < 64, f"the training backend's private memory grew {grown_mb:.0f} MB for 1.5M source rows"
    cur.execute("SELECT chainwatch.drop_model(%s)", (model_id,))
    cur.execute("DROP TABLE train_memory_src")
    conn.close()


def test_pg_cron_runs_maintenance_where_the_worker_does_not(private_stack):
    """An operator who prefers pg_cron turns the maintenance worker off (chainwatch.database = '') and schedules
    chainwatch.maintain() with cron.schedule(): no chainwatch maintenance worker runs, and an expired partition
    is dropped by the cron job alone (pg_cron 1.4 schedules by the minute, so this waits up to ~75 s)."""
    # after the include of tools/stack.sh's settings, so these win
    with open(os.path.join(private_stack.dir, "pg", "data", "postgresql.conf"), "a") as conf:
        conf.write("shared_preload_libraries = 'chainwatch,pg_cron'\nchainwatch.database = ''\n"
                   "cron.database_name = 'chainwatch'\n")
    pg_ctl(private_stack, "-m", "fast", "restart")
    conn = pg_connect(private_stack)
    conn.autocommit = True
    cur = conn.cursor()
    _fresh_extension(conn)
    cur.execute("CREATE EXTENSION pg_cron")
    cur.execute("SELECT cron.schedule('chainwatch-maintain', '* * * * *', 'SELECT count(*) FROM chainwatch.maintain()')")
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainwatch maintenance'")
    assert cur.fetchone()[0] == 0, "chainwatch.database = '' must leave no maintenance worker"

    cur.execute("SELECT chainwatch._create_partition('anomalies', now() - interval '3 hours', now() - interval '2 hours')")
    part = cur.fetchone()[0]
    deadline = time.time() + 150
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (part,))
        if cur.fetchone()[0] == 0:
            break
        time.sleep(1)
    else:
        cur.execute("SELECT status, return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 3")
        pytest.fail(f"partition {part} still exists after 150 s of pg_cron; last runs: {cur.fetchall()}")
    cur.execute("SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'")
    assert cur.fetchone()[0] >= 1
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'chainwatch maintenance'")
    assert cur.fetchone()[0] == 0
    conn.close()
