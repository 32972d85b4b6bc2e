#!/usr/bin/env python3
"""Issue 11 item 10: the API reference is checked against the routes.
docs/openapi.json must list exactly the routes the real binary registers
(read from its own debug log, `event=route listener=… method=… pattern=…`),
each operation tagged with its listener (`x-rolegate-listener`: "public",
"admin", or a list of both). A new route fails this test until it is added to the file; a
route named in the file that does not exist fails it too. Also: the docs
the README cites are in the repository and every relative link of the
README resolves."""
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, Rolegate  # noqa: E402

DOC = os.path.join(harness.ROOT, "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def registered():
    with Rolegate(config={"log": {"level": "debug"}}) as rg:
        lines = rg.log_lines()
    out = set()
    for ln in lines:
        m = re.search(r"event=route listener=(\S+) method=(\S+) pattern=(\S+)", ln)
        if m:
            out.add((m.group(1), m.group(2), m.group(3).strip('"')))
    assert len(out) > 20, ("the binary logs its routes at debug level", lines[:20])
    return out


def documented():
    with open(DOC) as f:
        doc = json.load(f)
    assert doc.get("openapi", "").startswith("3."), "an OpenAPI 3 document"
    out = set()
    for path, item in doc["paths"].items():
        for m, op in item.items():
            if m not in METHODS:
                continue
            lis = op.get("x-rolegate-listener") or item.get("x-rolegate-listener")
            lis = [lis] if isinstance(lis, str) else lis   # a list: on both
            assert lis and all(x in ("public", "admin") for x in lis), (path, m, lis)
            assert op.get("summary"), (path, m, "every operation has a summary")
            for x in lis:
                out.add((x, m.upper(), path))
    return out


@test
def test_item10_openapi_lists_every_route_and_nothing_else():
    reg, doc = registered(), documented()
    missing = sorted(reg - doc)
    extra = sorted(doc - reg)
    assert not missing, ("routes missing from docs/openapi.json (add them):", missing)
    assert not extra, ("docs/openapi.json names routes that do not exist:", extra)


@test
def test_item10_docs_in_repository_and_readme_links_resolve():
    for f in ("RBAC.md", "DESIGN.md", "connect-your-idp.md", "openapi.json"):
        assert os.path.isfile(os.path.join(harness.ROOT, "docs", f)), f
    with open(os.path.join(harness.ROOT, "README.md")) as f:
        readme = f.read()
    assert "../shared/" not in readme, "the README cites files outside the repository"
    for d in ("docs/RBAC.md", "docs/DESIGN.md", "docs/connect-your-idp.md",
              "docs/openapi.json"):
        assert d in readme, (d, "is cited by the README")
    for link in re.findall(r"\]\(([^)#\s]+)", readme):
        if "://" in link or link.startswith("mailto:"):
            continue
        assert os.path.exists(os.path.join(harness.ROOT, link)), ("broken README link", link)
    with open(os.path.join(harness.ROOT, "docs", "connect-your-idp.md")) as f:
        guide = f.read()
    for idp in ("Okta", "Entra ID", "Google Workspace", "Keycloak"):
        assert f"## {idp}" in guide or f"## Microsoft {idp}" in guide, idp
    for field in ("sp_entity_id", "acs_url", "sp_metadata_url", "redirect_uri",
                  "groups_claim", "groups_attributes"):
        assert field in guide, field


if __name__ == "__main__":
    run_all()
