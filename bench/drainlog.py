"""bench/drainlog.py — the steady-state span of a `chainwatch-ingestor --drain`, read from its JSON log.

Shared by bench/ingest/bench_ingest.py and bench/soak/soak.py: both time a drain end to end and also from
the assignment to the drain, as the ingestor's own log stamps them (which leaves out the group join).
"""
import datetime
import json


def steady_seconds(log_path):
    """steady_seconds: seconds from the first "assigned" line to "all partitions drained", or None when the
    log lacks either."""
    stamps = {}
    with open(log_path) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec["msg"].startswith("assigned") and "assigned" not in stamps:
                stamps["assigned"] = rec["ts"]
            if rec["msg"].startswith("all partitions drained"):
                stamps["drained"] = rec["ts"]
    if len(stamps) != 2:
        return None
    parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    return (parse(stamps["drained"]) - parse(stamps["assigned"])).total_seconds()
