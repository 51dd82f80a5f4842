"""bench/benchlib.py — what every benchmark shares: its section of docs/benchmarks.md and the machine line

Each benchmark owns one block of docs/benchmarks.md between `<!-- NAME:start -->` and `<!-- NAME:end -->` and
rewrites only that block, so benchmarks run alone (`make bench-score`) or together (`make bench`) leave the
others' numbers in place. Imported by the bench scripts with bench/ on sys.path (as bench/drainlog.py is).
"""
import os
import platform
import re
import subprocess


def machine():
    """machine: one line describing where the numbers come from (CPU count and model, kernel)."""
    cpu = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} × {cpu}, {platform.system()} {platform.release()}"


def write_section(doc, name, text):
    """write_section: replace (or append) the block between <!-- name:start --> and <!-- name:end --> of the
    markdown file doc with text (a string, or a list of lines)."""
    if not isinstance(text, str):
        text = "\n".join(text)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
    block = start + "\n" + text.rstrip("\n") + "\n" + end
    if start in body and end in body:
        body = body[:body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    with open(doc, "w") as fh:
        fh.write(body)
