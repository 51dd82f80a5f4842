#!/usr/bin/python3
"""bench/detect/score.py — how well stored alerts and scores match a labels file: per kind and overall

Works on any labels CSV of transaction hashes (`hash,kind`, the header optional; a hash not listed is normal,
as chainwatch-txgen --labels writes it) against a chainwatch database:

    bench/detect/score.py --database-url URL --labels labels.csv [--skip-first N] [--plot pr.png]

For every labelled kind and for all kinds together it reports, against the normal transactions:
  ROC-AUC and PR-AUC (average precision) of the stored score (transactions.score; rows stored unscored are
  left out and counted), and at the operating point — a transaction is an alert when it is in
  chainwatch.anomalies — precision, recall, F1 and false alerts per 10,000 normal transactions.
Per kind, "precision" counts the alerts on that kind against all false alerts (what an analyst who only cares
about that kind would see). --skip-first leaves out the first N transactions by Kafka position (e.g. the rows a
first automatic model was trained on). The same measures for any other scorer (a peer measured in the same
run) come from evaluate(), which bench/detect/bench_detect.py also uses.
"""
import argparse
import csv
import json
import sys

import numpy as np


def load_labels(path):
    """load_labels: hash -> kind from a CSV with columns hash, kind (a header line is skipped)"""
    labels = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row or row[0] == "hash":
                continue
            labels[row[0].strip().lower()] = row[1].strip() if len(row) > 1 and row[1].strip() else "anomaly"
    return labels


def _roc_auc(y, s):
    """_roc_auc: the probability that a random positive scores above a random negative (ties count half)"""
    from scipy.stats import rankdata
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return (r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _average_precision(y, s):
    """_average_precision: PR-AUC as scikit-learn's average_precision_score (step-wise, ties grouped)"""
    from sklearn.metrics import average_precision_score
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, s))


def evaluate(kinds, scores, alerts):
    """evaluate: kinds (array of str, '' = normal), scores (float array, NaN = unscored), alerts (bool array)
    -> list of dicts, one for 'all' and one per kind, with the measures described at the top"""
    kinds = np.asarray(kinds, dtype=object)
    scores = np.asarray(scores, dtype=float)
    alerts = np.asarray(alerts, dtype=bool)
    normal = kinds == ""
    n_normal = int(normal.sum())
    false_alerts = int((alerts & normal).sum())
    out = []
    for kind in ["all"] + sorted(set(kinds) - {""}):
        pos = ~normal if kind == "all" else kinds == kind
        sel = pos | normal
        scored = sel & ~np.isnan(scores)
        y, s = pos[scored], scores[scored]
        tp = int((alerts & pos).sum())
        fn = int(pos.sum()) - tp
        precision = tp / (tp + false_alerts) if tp + false_alerts else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        out.append(dict(kind=kind, n=int(pos.sum()), unscored=int(sel.sum() - scored.sum()),
                        roc_auc=_roc_auc(y, s), pr_auc=_average_precision(y, s), precision=precision,
                        recall=recall, f1=f1, false_per_10k=false_alerts / n_normal * 1e4 if n_normal else 0.0))
    return out


def pr_curve(kinds, scores):
    """pr_curve: (recall, precision) arrays of the score against all labelled kinds"""
    from sklearn.metrics import precision_recall_curve
    kinds = np.asarray(kinds, dtype=object)
    scores = np.asarray(scores, dtype=float)
    ok = ~np.isnan(scores)
    p, r, _ = precision_recall_curve(kinds[ok] != "", scores[ok])
    return r, p


def fetch(dsn, labels, skip_first=0):
    """fetch: (hashes, kinds, scores, alerts) of the stored transactions in Kafka order, the first skip_first
    left out; a transaction stored twice (the same hash in two messages) counts once, at its first position"""
    import psycopg2
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT DISTINCT ON (t.hash) t.hash, t.score, t.kafka_partition, t.kafka_offset, "
                "EXISTS (SELECT 1 FROM chainwatch.anomalies a WHERE a.hash = t.hash) "
                "FROM chainwatch.transactions t ORDER BY t.hash, t.kafka_partition, t.kafka_offset")
    rows = sorted(cur.fetchall(), key=lambda r: (r[3] if r[3] is not None else 0, r[2] or 0))
    conn.close()
    rows = rows[skip_first:]
    hashes = [r[0] for r in rows]
    kinds = [labels.get(h.lower(), "") for h in hashes]
    scores = [float("nan") if r[1] is None else r[1] for r in rows]
    alerts = [r[4] for r in rows]
    return hashes, kinds, scores, alerts


def table(results, title):
    """table: a markdown table of evaluate()'s results"""
    lines = [f"**{title}**", "", "| kind | n | ROC-AUC | PR-AUC | precision | recall | F1 | false alerts / 10k normal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        fa = f"{r['false_per_10k']:.1f}" if r["kind"] == "all" else ""
        lines.append(f"| {r['kind']} | {r['n']:,} | {r['roc_auc']:.3f} | {r['pr_auc']:.3f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['f1']:.3f} | {fa} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--labels", required=True, help="CSV: hash,kind")
    ap.add_argument("--skip-first", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args()
    labels = load_labels(args.labels)
    hashes, kinds, scores, alerts = fetch(args.database_url, labels, args.skip_first)
    if not hashes:
        sys.exit("no stored transactions")
    results = evaluate(kinds, scores, alerts)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(table(results, f"{len(hashes):,} transactions, {sum(k != '' for k in kinds):,} labelled"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
