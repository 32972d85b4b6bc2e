#!/usr/bin/env python3
"""Adds routes to docs/openapi.json (issue 11 item 10), for whoever adds a
route: one argument per route, "LISTENER METHOD PATH SUMMARY...", e.g.
  /usr/bin/python3 tests/integration/openapi_add.py \\
      'admin POST /portal/links Create a one-use setup portal link'
LISTENER is public or admin. With no argument it prints the routes the
binary registers that the file lacks (what test_openapi.py would report)."""
import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                   "openapi.json")


def add(doc, lis, method, path, summary):
    op = {"summary": summary, "x-rolegate-listener": lis}
    params = re.findall(r"\{(\w+)\}", path)
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True,
                             "schema": {"type": "string"}} for p in params]
    if lis == "admin":
        op["security"] = [{"adminKey": []}]
    op["responses"] = {"default": {"description": "see README.md and docs/DESIGN.md"}}
    doc["paths"].setdefault(path, {})[method.lower()] = op


def main(args):
    if not args:
        import test_openapi
        for r in sorted(test_openapi.registered() - test_openapi.documented()):
            print(" ".join(r))
        return 0
    with open(DOC) as f:
        doc = json.load(f)
    for a in args:
        lis, method, path, summary = a.split(" ", 3)
        assert lis in ("public", "admin") and path.startswith("/"), a
        add(doc, lis, method.upper(), path, summary)
    doc["paths"] = dict(sorted(doc["paths"].items()))
    with open(DOC, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
