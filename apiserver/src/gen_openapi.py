#!/usr/bin/env python3
"""apiserver/src/gen_openapi.py — docs/openapi.yaml to a C file embedding it as compact JSON.

Usage: gen_openapi.py IN.yaml OUT.c. Fails (exit 1) if the YAML does not parse or is not OpenAPI 3.
"""
import json
import sys

import yaml


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        sys.exit(f"{src}: not an OpenAPI 3 document")
    text = json.dumps(doc, separators=(",", ":"), sort_keys=False)
    data = text.encode()
    lines = []
    for i in range(0, len(data), 20):
        lines.append("    " + ", ".join(str(b) for b in data[i:i + 20]) + ",")
    with open(dst, "w") as f:
        f.write("/* generated from docs/openapi.yaml by apiserver/src/gen_openapi.py; do not edit */\n")
        f.write('#include "openapi.h"\n\n')
        f.write("const char api_openapi_json[] = {\n" + "\n".join(lines) + "\n    0};\n")
        f.write(f"const size_t api_openapi_json_len = {len(data)};\n")


if __name__ == "__main__":
    main()
