#!/usr/bin/python3
"""tests/deploy/metrics_named.py — every metric the monitoring/ files name is one a binary exports

monitoring/grafana-dashboard.json and monitoring/alerts.yaml name metrics in PromQL (`expr`, and the
dashboard's template `query`/`definition`). This module extracts those names and compares them with
what the binaries export:

* by default with EXPORTED below, the metric lists of issues 4 (API) and 7 (ingestor);
* with --scraped FILE (repeatable; Prometheus text, e.g. `curl -s host:9090/metrics > FILE`) or
  --url URL (repeatable) with what running binaries really exported. The ingestor/API integration
  tests call `problems(exported=scraped_names(texts))` with their own scrapes.

A histogram is named in PromQL as NAME_bucket/_sum/_count; those resolve to NAME. Exits 1 and
prints each unknown metric with the file that names it.
"""

import argparse
import json
import os
import re
import sys
import urllib.request

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MONITORING_FILES = ["monitoring/grafana-dashboard.json", "monitoring/alerts.yaml"]

# issue 7 (chainwatch-ingestor) and issue 4 (chainwatch-api): name → type
EXPORTED = {
    "ingestor": {
        "chainwatch_ingest_messages_total": "counter",
        "chainwatch_ingest_rows_total": "counter",
        "chainwatch_anomalies_detected_total": "counter",
        "chainwatch_dead_letters_total": "counter",
        "chainwatch_ingest_batch_duration_seconds": "histogram",
        "chainwatch_kafka_consumer_lag": "gauge",
        "chainwatch_ingest_queue_messages": "gauge",
        "chainwatch_ingest_threads_active": "gauge",
        "chainwatch_db_up": "gauge",
        "chainwatch_store_rows": "gauge",
        "chainwatch_store_max_rows": "gauge",
        "chainwatch_store_evictions_total": "counter",
        "chainwatch_ingest_unscored_rows_total": "counter",
        "chainwatch_ingest_model_usable": "gauge",
    },
    "api": {
        "chainwatch_http_requests_total": "counter",
        "chainwatch_http_request_duration_seconds": "histogram",
        "chainwatch_cache_requests_total": "counter",
        "chainwatch_cache_hit_ratio": "gauge",
        "chainwatch_redis_up": "gauge",
        "chainwatch_db_pool_in_use": "gauge",
        "chainwatch_rate_limited_total": "counter",
    },
}

PROMQL_KEYS = {"expr", "query", "definition"}
METRIC = re.compile(r"\bchainwatch_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _promql_strings(node):
    """_promql_strings: every string under a PromQL-bearing key, anywhere in a JSON/YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in PROMQL_KEYS and isinstance(v, str):
                yield v
            else:
                yield from _promql_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _promql_strings(v)


def named_metrics(files=None):
    """named_metrics: {metric name as written: set of files naming it} over the monitoring files."""
    out = {}
    for rel in files or MONITORING_FILES:
        with open(os.path.join(TOP, rel)) as fh:
            tree = json.load(fh) if rel.endswith(".json") else yaml.safe_load(fh)
        for s in _promql_strings(tree):
            for m in METRIC.findall(s):
                out.setdefault(m, set()).add(rel)
    return out


def scraped_names(texts):
    """scraped_names: {name: type} from Prometheus text expositions (# TYPE lines, else sample names)."""
    out = {}
    for text in texts:
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 4:
                    out[parts[2]] = parts[3]
            elif line and not line.startswith("#"):
                out.setdefault(re.split(r"[{\s]", line, maxsplit=1)[0], "untyped")
    return out


def resolve(name, exported):
    """resolve: the exported family a PromQL name refers to (histogram suffixes stripped), or None."""
    if name in exported:
        return name
    for suf in HISTOGRAM_SUFFIXES:
        base = name[: -len(suf)]
        if name.endswith(suf) and exported.get(base) in ("histogram", "summary"):
            return base
    return None


def problems(exported=None, files=None):
    """problems: one line per metric named in monitoring/ that `exported` ({name: type}) lacks."""
    if exported is None:
        exported = {k: v for fam in EXPORTED.values() for k, v in fam.items()}
    return [f"{name} (named in {', '.join(sorted(where))}) is not exported"
            for name, where in sorted(named_metrics(files).items()) if resolve(name, exported) is None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scraped", action="append", default=[], help="Prometheus text file from a running binary")
    ap.add_argument("--url", action="append", default=[], help="a /metrics URL to scrape")
    args = ap.parse_args()
    exported = None
    if args.scraped or args.url:
        texts = []
        for f in args.scraped:
            with open(f) as fh:
                texts.append(fh.read())
        for u in args.url:
            with urllib.request.urlopen(u, timeout=10) as r:
                texts.append(r.read().decode())
        exported = scraped_names(texts)
    found = problems(exported)
    for line in found:
        print(line)
    print(f"{len(named_metrics())} metrics named in monitoring/, {len(found)} not exported")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
