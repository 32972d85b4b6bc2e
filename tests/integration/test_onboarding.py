#!/usr/bin/env python3
"""The first hour of a new user (issue 11, onboarding items): each test names
its item. Real rolegate, real fixture IdP, loopback sockets.
  item 1: SP metadata before IdP metadata; connection state draft -> active
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_saml_common import LoginServer, FixtureIdp, reason_of  # noqa: E402


@test
def test_item1_sp_metadata_before_idp_metadata_and_draft_state():
    with LoginServer() as rg:
        idp = FixtureIdp()
        org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
        c = rg.ok("POST", f"/organizations/{org}/connections", {"type": "saml", "name": "Okta"})
        cid = c["id"]
        # the answer says what the IdP's admin types in, and that it is a draft
        assert c["state"] == "draft", c
        assert c["sp_entity_id"] == f"{rg.base}/saml/metadata/{cid}", c
        assert c["acs_url"] == f"{rg.base}/saml/acs/{cid}", c
        assert c["sp_metadata_url"] == f"{rg.base}/saml/metadata/{cid}", c
        # the SP metadata is served at once (422 metadata_missing before item 1)
        path = c["sp_metadata_url"][len(rg.base):]
        st, hd, sp = rg.public("GET", path)
        assert st == 200, (st, sp)
        assert hd["content-type"].startswith("application/samlmetadata+xml"), hd
        assert f'entityID="{c["sp_entity_id"]}"' in sp, sp[:300]
        assert f'Location="{c["acs_url"]}"' in sp and "X509Certificate" in sp, sp[:600]
        # a login through the draft: a page for the end user, no admin paths
        st, hd, page = rg.public("GET", f"/login?organization={org}")
        assert st == 503, (st, page[:300])
        assert reason_of(page.encode()) == "connection_draft", page[:500]
        for leak in ("/connections", "PUT ", "metadata", str(rg.admin_port), cid):
            assert leak not in page, (leak, page)
        assert "administrator" in page, page
        # the admin sees why in the log
        assert any("connection_draft" in ln and cid in ln for ln in rg.log_lines())
        # list and get show the same fields
        got = rg.ok("GET", f"/connections/{cid}")
        assert got["state"] == "draft" and got["acs_url"] == c["acs_url"], got
        lst = rg.ok("GET", f"/organizations/{org}/connections")["data"]
        assert lst[0]["sp_entity_id"] == c["sp_entity_id"] and lst[0]["state"] == "draft"
        # IdP metadata makes it active; the SP metadata did not change
        st, info = rg.api("PUT", f"/connections/{cid}/metadata", idp.metadata,
                          {"Content-Type": "application/samlmetadata+xml"})
        assert st == 200, (st, info)
        got = rg.ok("GET", f"/connections/{cid}")
        assert got["state"] == "active", got
        st, _, sp2 = rg.public("GET", path)
        assert st == 200 and sp2 == sp, "the SP metadata is the same before and after"
        st, hd, _ = rg.public("GET", f"/login?organization={org}")
        assert st == 302 and hd["location"].startswith(idp.sso), (st, hd)
        # an OIDC connection: complete at creation, with its redirect URI
        o = rg.ok("POST", f"/organizations/{org}/connections",
                  {"type": "oidc", "name": "O", "issuer": "https://op.example",
                   "client_id": "c"})
        assert o["state"] == "active" and o["redirect_uri"] == f"{rg.base}/oidc/callback", o
        assert "sp_entity_id" not in o, o
        # unknown or non-SAML connection: 404
        for bad in (o["id"], "conn_01HZZZZZZZZZZZZZZZZZZZZZZZ", "x" * 200):
            st, _, _ = rg.public("GET", f"/saml/metadata/{bad}")
            assert st == 404, (bad, st)


if __name__ == "__main__":
    run_all()
