#!/usr/bin/python3
"""bench/detect/bench_detect.py — `make bench-detect`: detection quality on a labelled stream, as a fresh install runs it

A labelled chainwatch-txgen stream (200,000 transactions, seed 31, anomaly rate 0.01 by default) goes through the
whole pipeline the way a new deployment sees it:

  * the extension freshly created with its defaults (automatic training on, its minimum rows, no retraining
    interval), only the anomalies table's size bound raised so no alert is evicted before it is counted;
  * the stream produced to the stack's broker in chunks (the first --first transactions, then --chunk at a
    time), each message keyed by its sender as txgen keys them, so one sender's transactions stay in order;
  * after each chunk `chainwatch-ingestor --drain` loads it (parse, features from the address profiles, score
    with the active model, store, flag) and then chainwatch.maintain() runs once — the maintenance worker's job, done here between chunks so the
    run is reproducible (the worker's own interval is lengthened for the run and reset afterwards).

The first model is the one automatic training makes after the first chunk; transactions loaded before any model
was active are stored unscored and left out of the measures (they are the model's training window). Every later
transaction is measured with bench/detect/score.py's evaluate(): per labelled kind and overall, ROC-AUC and
PR-AUC of the stored score, and at the operating point (a row in chainwatch.anomalies is an alert) precision,
recall, F1 and false alerts per 10,000 normal transactions.

The same stream then goes through another fresh install with chainwatch.feature_set = 'transaction/1' (models
over value, gas and gas price alone, the default before extension 0.11.0): the baseline of the same run.

The peer, measured in the same run on the same rows: scikit-learn's IsolationForest with the same
hyper-parameters (100 trees, 256 samples, contamination 0.01) on the three raw features (log1p of value, gas,
gas price), fitted on the training window and flagging by its own predict(). A precision-recall plot of both
goes to docs/bench-detect-pr.png and the tables to the bench-detect block of docs/benchmarks.md.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import score  # noqa: E402  (bench/detect/score.py)
from benchlib import machine, write_section  # noqa: E402  (bench/benchlib.py)


def connect():
    """connect: an autocommit connection to the stack's database (PG* environment)"""
    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "chainwatch"))
    conn.autocommit = True
    return conn


def fresh_install(cur, rows):
    """fresh_install: the extension as a new deployment creates it, maintenance left to this script"""
    cur.execute("DROP EXTENSION IF EXISTS chainwatch CASCADE")
    cur.execute("CREATE EXTENSION chainwatch")
    cur.execute("SELECT chainwatch.set_retention('transactions', max_rows => %s)", (max(rows * 2, 5000000),))
    cur.execute("SELECT chainwatch.set_retention('anomalies', ttl => interval '7 days', max_rows => %s)",
                (max(rows, 10000),))
    cur.execute("ALTER SYSTEM SET chainwatch.maintenance_interval = 3600")
    cur.execute("SELECT pg_reload_conf()")


def generate(args, workdir):
    """generate: the labelled stream as JSON lines (a list of bytes) and its labels file path"""
    labels = os.path.join(workdir, "labels.csv")
    out = subprocess.run([f"{args.bin}/chainwatch-txgen", "--count", str(args.rows), "--seed", str(args.seed),
                          "--anomaly-rate", str(args.anomaly_rate), "--format", args.format, "--labels", labels],
                         check=True, capture_output=True).stdout
    return out.splitlines(), labels


def sender(line):
    """sender: the message key txgen uses, the transaction's from address"""
    tx = json.loads(line)
    return (tx.get("from") or tx.get("from_address") or "").encode()


def produce(lines, bootstrap, topic):
    """produce: lines to the topic, keyed by sender, every delivery confirmed"""
    from confluent_kafka import Producer
    failed = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200, "enable.idempotence": True})
    for line in lines:
        while True:
            try:
                p.produce(topic, value=line, key=sender(line),
                          on_delivery=lambda err, _msg: failed.append(err) if err else None)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    if p.flush(60) != 0 or failed:
        sys.exit(f"bench-detect: {len(failed)} deliveries failed ({failed[:1]})")


def drain(args, env, log):
    """drain: one `chainwatch-ingestor --drain` of everything produced so far"""
    subprocess.run([f"{args.bin}/chainwatch-ingestor", "--drain", "--metrics-port", "0", "--log-level", "warn"],
                   check=True, env=env, stderr=log, timeout=1800)


def stored(cur):
    """stored: hash -> (score or NaN, alert, value, gas, gas_price) of every stored transaction"""
    cur.execute("SELECT t.hash, t.score, EXISTS (SELECT 1 FROM chainwatch.anomalies a WHERE a.hash = t.hash), "
                "t.value::float8, t.gas::float8, t.gas_price::float8 FROM chainwatch.transactions t")
    return {h.lower(): (np.nan if s is None else s, a, v, g, gp) for h, s, a, v, g, gp in cur.fetchall()}


def peer(train_rows, test_rows):
    """peer: scikit-learn's IsolationForest on log1p(value, gas, gas_price), fitted on train_rows;
    (scores, alerts) of test_rows, higher score = more anomalous, alert = its own predict()"""
    from sklearn.ensemble import IsolationForest
    x_train = np.log1p(np.array([r[2:5] for r in train_rows], dtype=float))
    x_test = np.log1p(np.array([r[2:5] for r in test_rows], dtype=float))
    forest = IsolationForest(n_estimators=100, max_samples=256, contamination=0.01, random_state=42)
    forest.fit(x_train)
    return -forest.score_samples(x_test), forest.predict(x_test) == -1


def plot(path, curves, title):
    """plot: precision-recall curves (name -> (recall, precision)) as a PNG"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for name, (r, p) in curves.items():
        ax.plot(r, p, label=name, linewidth=1.5)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_pipeline(args, cur, env, workdir, lines, feature_set, index):
    """run_pipeline: the stream through a fresh install with chainwatch.feature_set = feature_set (the
    extension's default when None), on a topic of its own; (stored rows, training window hashes, number
    of models, their names)"""
    if index:
        env = dict(env, KAFKA_TOPIC=f"{env['KAFKA_TOPIC']}-{index}")
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], os.environ["KAFKA_TOPIC"], env["KAFKA_TOPIC"])
    if args.retrain_growth is not None:
        # for every session, the ingestor's maintenance thread's too (reset with maintenance_interval)
        cur.execute("ALTER SYSTEM SET chainwatch.retrain_growth = %s", (args.retrain_growth,))
    if feature_set:
        cur.execute("ALTER SYSTEM SET chainwatch.feature_set = %s", (feature_set,))
    cur.execute("SELECT pg_reload_conf()")
    fresh_install(cur, args.rows)
    try:
        bounds = [0, min(args.first, len(lines))]
        while bounds[-1] < len(lines):
            bounds.append(min(bounds[-1] + args.chunk, len(lines)))
        training = set()
        with open(os.path.join(workdir, f"ingestor-{index}.log"), "w") as log:
            for i in range(len(bounds) - 1):
                chunk = lines[bounds[i]:bounds[i + 1]]
                produce(chunk, env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC"])
                drain(args, env, log)
                cur.execute("SELECT count(*) FILTER (WHERE is_active) FROM chainwatch.models")
                if cur.fetchone()[0] == 0:  # loaded with no model: the first model's training window
                    training.update(json.loads(line)["hash"].lower() for line in chunk)
                cur.execute("SELECT chainwatch.maintain()")
                print(f"bench-detect ({feature_set or 'default'}): {bounds[i + 1]:,} of {len(lines):,} loaded",
                      file=sys.stderr)
        rows = stored(cur)
        cur.execute("SELECT count(*), string_agg(name || ' (' || coalesce(feature_set, '-') || ')', ', ' "
                    "ORDER BY id) FROM chainwatch.models")
        n_models, model_names = cur.fetchone()
    finally:
        cur.execute("ALTER SYSTEM RESET chainwatch.maintenance_interval")
        cur.execute("ALTER SYSTEM RESET chainwatch.retrain_growth")
        cur.execute("ALTER SYSTEM RESET chainwatch.feature_set")
        cur.execute("SELECT pg_reload_conf()")
    missing = [json.loads(line)["hash"].lower() for line in lines]
    missing = [h for h in missing if h not in rows]
    if missing:
        sys.exit(f"bench-detect: {len(missing)} produced transactions were not stored (first {missing[0]})")
    return rows, training, n_models, model_names


def create_topic(bootstrap, like, topic):
    """create_topic: a topic with as many partitions as `like`, for a later run"""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(timeout=30).topics[like].partitions)
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="folder of the chainwatch binaries")
    ap.add_argument("--doc", default="docs/benchmarks.md")
    ap.add_argument("--plot", default="docs/bench-detect-pr.png")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--anomaly-rate", type=float, default=0.01)
    ap.add_argument("--format", default="etherscan")
    ap.add_argument("--first", type=int, default=30_000, help="transactions before the first maintain()")
    ap.add_argument("--chunk", type=int, default=10_000, help="transactions between later maintain() runs")
    ap.add_argument("--no-doc", action="store_true", help="print the tables, leave docs/ alone")
    ap.add_argument("--feature-sets", nargs="+", default=[None, "transaction/1"],
                    help="chainwatch.feature_set of each run (the first: the extension's default, None)")
    ap.add_argument("--retrain-growth", type=float, default=None,
                    help="chainwatch.retrain_growth for the maintenance runs (default: the extension's own)")
    args = ap.parse_args()

    env = dict(os.environ, KAFKA_GROUP_ID="bench-detect")
    conn = connect()
    cur = conn.cursor()
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cw-bench-detect.") as workdir:
        lines, labels_path = generate(args, workdir)
        labels = score.load_labels(labels_path)
        # the default first; then, by default, the previous default (transaction/1): the same run's baseline
        runs = [run_pipeline(args, cur, env, workdir, lines, fs, i) for i, fs in enumerate(args.feature_sets)]
    elapsed = time.perf_counter() - t0

    order = [json.loads(line)["hash"].lower() for line in lines]

    def measured(run):
        run_rows, run_training = run[0], run[1]
        run_test = [h for h in dict.fromkeys(order) if h not in run_training]
        run_kinds = [labels.get(h, "") for h in run_test]
        return run_test, run_kinds, score.evaluate(run_kinds, [run_rows[h][0] for h in run_test],
                                                   [run_rows[h][1] for h in run_test])

    rows, training, n_models, model_names = runs[0]
    test, kinds, ours = measured(runs[0])
    p_scores, p_alerts = peer([rows[h] for h in training], [rows[h] for h in test])
    theirs = score.evaluate(kinds, p_scores, p_alerts)
    baselines = [(fs, run, *measured(run)) for fs, run in zip(args.feature_sets[1:], runs[1:])]

    n_lab = sum(k != "" for k in kinds)
    lines_out = [
        f"`make bench-detect`, {started:%Y-%m-%d %H:%M} UTC, {machine()}; {elapsed:.0f} s.",
        "",
        f"chainwatch-txgen --count {args.rows:,} --seed {args.seed} --anomaly-rate {args.anomaly_rate} "
        f"--format {args.format}, through the broker and chainwatch-ingestor --drain into a fresh install, "
        f"chainwatch.maintain() after the first {args.first:,} transactions and then every {args.chunk:,}. "
        f"Models made by automatic training: {n_models} ({model_names or 'none'}). Measured: the "
        f"{len(test):,} transactions loaded after the first model ({n_lab:,} labelled); the {len(training):,} "
        "loaded before it are its training window. Precision per kind counts that kind's alerts against all "
        "false alerts.",
        "",
        score.table(ours, "chainwatch as a fresh install runs it (stored score; alert = a row in chainwatch.anomalies)"),
        *[score.table(ev, f"baseline in the same run: another fresh install with chainwatch.feature_set = '{fs}' "
                      f"({run[2]} models: {run[3]}; {len(t):,} transactions measured)")
          for fs, run, t, _k, ev in baselines],
        score.table(theirs, "peer: scikit-learn IsolationForest, raw value / gas / gas price (log1p), fitted on the "
                    "same training window, alert = its predict()"),
        "![precision-recall, chainwatch and the scikit-learn peer](bench-detect-pr.png)",
    ]
    print("\n".join(lines_out))
    if not args.no_doc:
        curves = {"chainwatch (default)": score.pr_curve(kinds, [rows[h][0] for h in test])}
        for fs, run, b_test, b_kinds, _ev in baselines:
            curves[f"chainwatch, feature_set {fs}"] = score.pr_curve(b_kinds, [run[0][h][0] for h in b_test])
        curves["sklearn IsolationForest, raw 3"] = score.pr_curve(kinds, p_scores)
        plot(args.plot, curves,
             f"all labelled kinds, {len(test):,} transactions, seed {args.seed}")
        write_section(args.doc, "bench-detect", lines_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
