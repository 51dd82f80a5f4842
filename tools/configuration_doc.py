#!/usr/bin/python3
"""tools/configuration_doc.py — the generated tables of docs/configuration.md, from the settings tables themselves

docs/configuration.md is prose with generated blocks between markers:

    <!-- BEGIN GENERATED chainwatch-ingestor -->  ...  <!-- END GENERATED chainwatch-ingestor -->

A block named after a binary holds that binary's `--help-markdown` (its settings table, common/src/config.c);
the block named `gucs` holds every chainwatch.* setting as a server with the extension loaded reports it
(pg_settings). `--check` compares the file with what the binaries and the server say now and exits 1 with a
diff when they differ (tests/integration/test_docs.py runs it in `make check`); `--write` rewrites the blocks.

    tools/stack.sh up --dir /tmp/s && . /tmp/s/stack.env && tools/configuration_doc.py --write
"""
import argparse
import difflib
import os
import pathlib
import re
import subprocess
import sys

TOP = pathlib.Path(__file__).resolve().parents[1]
DOC = TOP / "docs" / "configuration.md"
BLOCK = re.compile(r"(<!-- BEGIN GENERATED (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED (?P=name) -->)",
                   re.S)


def binary_table(bindir, name):
    """binary_table: the markdown settings table a binary prints with --help-markdown"""
    out = subprocess.run([str(pathlib.Path(bindir) / name), "--help-markdown"], capture_output=True, text=True,
                         check=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return out.stdout


def guc_table(dsn):
    """guc_table: every chainwatch.* setting of a server that has loaded the library, as a markdown table"""
    import psycopg2

    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT chainwatch._load()")  # defines the settings in this session when not preloaded
    cur.execute("SELECT name, vartype, boot_val, unit, min_val, max_val, context, short_desc, extra_desc "
                "FROM pg_settings WHERE name LIKE 'chainwatch.%' ORDER BY name")
    rows = cur.fetchall()
    conn.close()
    lines = ["| Setting | Type | Default | Range | Who may change it | Description |", "|---|---|---|---|---|---|"]
    who = {"postmaster": "server start", "sighup": "reload (SIGHUP)", "superuser": "superuser, per session",
           "user": "any user, per session"}
    for name, vartype, boot, unit, lo, hi, context, short, extra in rows:
        default = f"`{boot}`" + (f" {unit}" if unit and boot != "" else "") if boot != "" else "empty"
        span = f"{lo}..{hi}" + (f" {unit}" if unit else "") if lo is not None else ""
        text = short + (" " + extra if extra else "")
        lines.append(f"| `{name}` | {vartype} | {default} | {span} | {who.get(context, context)} | "
                     f"{text.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


def render(text, bindir, dsn):
    """render: text with every generated block replaced by what its source says now"""
    def fill(m):
        name = m.group("name")
        body = guc_table(dsn) if name == "gucs" else binary_table(bindir, name)
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(fill, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when docs/configuration.md is stale")
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    ap.add_argument("--bin", default=os.environ.get("CHAINWATCH_BIN", str(TOP / "build" / "bin")))
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                    help="a database with the chainwatch extension (default $DATABASE_URL)")
    args = ap.parse_args()
    if not args.database_url:
        ap.error("--database-url or DATABASE_URL is needed for the chainwatch.* settings")
    old = DOC.read_text()
    if not BLOCK.search(old):
        sys.exit(f"{DOC}: no generated blocks")
    new = render(old, args.bin, args.database_url)
    if args.write:
        DOC.write_text(new)
        return 0
    if new != old:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(DOC),
                                                   "what the settings tables say"))
        print("docs/configuration.md is stale: run tools/configuration_doc.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
