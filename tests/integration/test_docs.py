"""tests/integration/test_docs.py — the reference documents say what the code does: docs/configuration.md's
generated tables match the daemons' settings tables and the server's chainwatch.* settings, and docs/errors.md
lists exactly the SQLSTATEs the extension raises."""
import pathlib
import re
import subprocess

from conftest import REPO_ROOT as TOP


def test_configuration_doc_matches_the_settings_tables(stack, bin_dir):
    """tools/configuration_doc.py --check: every daemon setting (from --help-markdown) and every chainwatch.* GUC
    (from pg_settings) is in docs/configuration.md with its current type, default, range and help."""
    res = subprocess.run(["/usr/bin/python3", str(TOP / "tools" / "configuration_doc.py"), "--check",
                          "--bin", str(bin_dir), "--database-url", stack["DATABASE_URL"]],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _pg_errcodes():
    """_pg_errcodes: ERRCODE_* macro name -> SQLSTATE, from the server's utils/errcodes.h"""
    inc = subprocess.run(["pg_config", "--includedir-server"], capture_output=True, text=True, check=True)
    text = (pathlib.Path(inc.stdout.strip()) / "utils" / "errcodes.h").read_text()
    return {m.group(1): "".join(m.group(2, 3, 4, 5, 6)) for m in re.finditer(
        r"#define (ERRCODE_\w+) MAKE_SQLSTATE\('(.)','(.)','(.)','(.)','(.)'\)", text)}


def raised_by_extension():
    """raised_by_extension: every SQLSTATE in a RAISE ... ERRCODE of extension/sql or an errcode() of extension/src"""
    codes = set()
    for f in (TOP / "extension" / "sql").rglob("*.sql"):
        codes |= set(re.findall(r"ERRCODE\s*=\s*'([0-9A-Z]{5})'", f.read_text()))
    macros = _pg_errcodes()
    for f in (TOP / "extension" / "src").glob("*.c"):
        for name in re.findall(r"errcode\((ERRCODE_\w+)\)", f.read_text()):
            assert name in macros, f"{f.name}: {name} is not in PostgreSQL's errcodes.h"
            codes.add(macros[name])
    return codes


def test_errors_doc_lists_every_sqlstate_the_extension_raises():
    """docs/errors.md's first table has a row for each SQLSTATE the extension raises, and none it does not."""
    doc = (TOP / "docs" / "errors.md").read_text()
    table = doc.split("<!-- extension-sqlstates", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `([0-9A-Z]{5})` \|", table, re.M))
    raised = raised_by_extension()
    assert raised, "found no SQLSTATE in the extension's sources: the scan is broken"
    assert not raised - documented, f"raised but not in docs/errors.md: {sorted(raised - documented)}"
    assert not documented - raised, f"in docs/errors.md but raised nowhere: {sorted(documented - raised)}"
