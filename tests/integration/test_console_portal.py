#!/usr/bin/env python3
"""The IT admin's setup portal: POST /portal/links on the admin API gives a
one-use, 5-minute link scoped to one organization; in chromium
(tests/browser/portal.mjs) the link sets up a SAML connection step by step,
shows the lint result, runs a test sign-in through the fixture IdP that
shows the groups sent and the roles they map to WITHOUT a session or a
membership, and maps a group. A link used twice or expired, and any object
of another organization, get nothing."""
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all  # noqa: E402
from test_saml_common import (LoginServer, FixtureIdp, setup_roles, setup_saml_connection,  # noqa: E402
                              FIXTURE_BIN, IDP_KEY)
from console_common import run_scenario, bad_metadata, http_call  # noqa: E402

ROOT = harness.ROOT


def browser(scenario, rg, **extra):
    """Runs one scenario of tests/browser/portal.mjs in chromium."""
    return run_scenario("portal.mjs", scenario, rg, fixture_bin=FIXTURE_BIN, idp_key=IDP_KEY,
                        **extra)


def pub(rg, method, path, body=None, headers=None):
    return http_call(rg.public_port, method, path, body, headers)


def link_for(rg, org):
    st, _, data = rg.admin("POST", "/portal/links", {"organization_id": org, "intent": "sso"})
    assert st == 201, (st, data)
    assert data["link"].startswith(rg.base + "/portal#link="), data
    return data["link"], data["link"].split("#link=", 1)[1]


def redeem(rg, token):
    """POST /portal/api/session as the page does: (status, cookie, csrf, body)."""
    st, hd, data = pub(rg, "POST", "/portal/api/session", json.dumps({"link": token}),
                       {"Content-Type": "application/json"})
    sc = [v for k, v in hd if k.lower() == "set-cookie"]
    body = json.loads(data) if data else None
    if st != 201:
        return st, None, None, body
    return st, sc[0].split(";")[0].split("=", 1)[1], body["csrf_token"], body


@test
def test_portal_flow_setup_lint_test_signin_without_session_then_mapping():
    with LoginServer() as rg:
        setup_roles(rg)
        org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
        idp = FixtureIdp()   # its metadata file; portal.mjs starts it once the SP exists
        link, token = link_for(rg, org)
        out = browser("flow", rg, link=link, bad_metadata=bad_metadata(idp),
                      good_metadata_file=idp.md_path, idp_port=idp.port)
        # first test: groups shown, nothing mapped -> the default role
        assert "engineering" in out["first"]["groups"] and "admins" in out["first"]["groups"], out
        assert "(no mapping)" in out["first"]["groups"], out
        assert out["first"]["roles"].endswith(": member"), out
        # after mapping admins -> admin in the portal
        assert "admin" in out["second"]["groups"], out
        assert out["second"]["roles"].endswith(": admin"), out
        # no session, no membership, no login record
        assert "rolegate" not in out["cookies"], out["cookies"]
        ms = rg.ok("GET", f"/user_management/organization_memberships?organization_id={org}")
        assert ms["data"] == [], ms
        st, _, evs = rg.admin("GET", "/events?limit=100&event=authentication.succeeded")
        assert evs["data"] == [], evs
        # the portal session cookie: HttpOnly, SameSite=Strict
        assert out["portal_cookie"]["httpOnly"] and out["portal_cookie"]["sameSite"] == "Strict"
        # what the portal set up is the organization's, read back through the API
        conns = rg.ok("GET", f"/organizations/{org}/connections")["data"]
        assert len(conns) == 1 and conns[0]["name"] == "Acme Entra", conns
        maps = rg.ok("GET", f"/connections/{conns[0]['id']}/role_mappings")["data"]
        assert [(m["idp_group"], m["role_slug"]) for m in maps] == [("admins", "admin")], maps
        # the link was used: a second use gets nothing, in the browser too
        st, _, _, body = redeem(rg, token)
        assert st == 404 and body["code"] == "portal_link_invalid", (st, body)
        dead = browser("dead", rg, link=link)
        assert "portal_link_invalid" in dead["text"], dead
        log = rg.log_text()
        assert token not in log, "the link's token is never logged"
        assert "event=portal_test_signin" in log


@test
def test_portal_link_one_use_and_expired():
    with LoginServer(config={"server": {"portal_link_ttl": 1}}) as rg:
        org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
        _, token = link_for(rg, org)
        st, cookie, csrf, body = redeem(rg, token)
        assert st == 201 and body["organization"]["id"] == org, (st, body)
        st, _, _, body = redeem(rg, token)
        assert st == 404 and body["code"] == "portal_link_invalid", (st, body)
        # expired: the TTL here is 1 s
        link, token = link_for(rg, org)
        time.sleep(1.6)
        st, _, _, body = redeem(rg, token)
        assert st == 404 and body["code"] == "portal_link_invalid", (st, body)
        dead = browser("dead", rg, link=link, shot="portal-expired")
        assert "portal_link_invalid" in dead["text"]
        # unknown and malformed tokens; the bad requests of the admin route
        assert redeem(rg, "A" * 43)[0] == 404
        assert redeem(rg, "../x")[0] == 422
        for body, code in (({"organization_id": org, "intent": "dsync"}, "invalid_intent"),
                           ({"organization_id": org, "intent": "x"}, "invalid_intent"),
                           ({"organization_id": "org_nope", "intent": "sso"}, "not_found"),
                           ({"organization_id": org}, "required"),
                           ({"organization_id": org, "intent": "sso", "x": 1}, "unknown_field")):
            st, _, data = rg.admin("POST", "/portal/links", body)
            assert st in (404, 422) and data["code"] == code, (body, st, data)
        # the admin route needs the admin key
        st, _, _ = rg.admin("POST", "/portal/links", {"organization_id": org, "intent": "sso"},
                            key=False)
        assert st == 401


@test
def test_portal_scoped_to_its_organization_other_objects_get_nothing():
    with LoginServer() as rg:
        setup_roles(rg)
        a = rg.ok("POST", "/organizations", {"name": "A"})["id"]
        b = rg.ok("POST", "/organizations", {"name": "B"})["id"]
        idp = FixtureIdp()
        b_conn, _ = setup_saml_connection(rg, b, idp.metadata)
        b_maps = rg.ok("GET", f"/connections/{b_conn}/role_mappings")
        _, token = link_for(rg, a)
        st, cookie, csrf, _ = redeem(rg, token)
        assert st == 201
        ck = {"Cookie": f"rolegate_portal={cookie}", "X-CSRF-Token": csrf,
              "Content-Type": "application/json"}
        # its own organization works
        st, _, data = pub(rg, "GET", f"/portal/api/organizations/{a}/connections", headers=ck)
        assert st == 200, (st, data)
        st, _, data = pub(rg, "GET", f"/portal/api/organizations/{a}/roles", headers=ck)
        assert st == 200 and json.loads(data)["data"], (st, data)
        # another organization's objects: 404, as if they did not exist
        for m, p, body in (("GET", f"/portal/api/organizations/{b}", None),
                           ("GET", f"/portal/api/organizations/{b}/connections", None),
                           ("POST", f"/portal/api/organizations/{b}/connections",
                            json.dumps({"type": "saml", "name": "x"})),
                           ("GET", f"/portal/api/organizations/{b}/roles", None),
                           ("GET", f"/portal/api/connections/{b_conn}", None),
                           ("PATCH", f"/portal/api/connections/{b_conn}", json.dumps({"name": "x"})),
                           ("GET", f"/portal/api/connections/{b_conn}/role_mappings", None),
                           ("PUT", f"/portal/api/connections/{b_conn}/role_mappings", "[]"),
                           ("GET", f"/portal/api/connections/{b_conn}/test", None)):
            st, _, data = pub(rg, m, p, body, ck)
            assert st == 404, (m, p, st, data[:200])
        st, _, _ = pub(rg, "PUT", f"/portal/api/connections/{b_conn}/metadata", idp.metadata,
                       {**ck, "Content-Type": "application/samlmetadata+xml"})
        assert st == 404, st
        assert rg.ok("GET", f"/connections/{b_conn}/role_mappings") == b_maps, "B unchanged"
        assert rg.ok("GET", f"/connections/{b_conn}")["name"] == "Test IdP"
        assert rg.ok("GET", f"/organizations/{b}/connections")["data"][0]["id"] == b_conn
        assert len(rg.ok("GET", f"/organizations/{b}/connections")["data"]) == 1
        # the admin API itself is not reachable with the portal's session
        st, _, _ = pub(rg, "GET", f"/organizations/{b}", headers=ck)
        assert st == 404, st
        st, _, _ = rg.request(rg.admin_port, "GET", f"/organizations/{b}",
                              headers={"Cookie": f"rolegate_portal={cookie}"})
        assert st == 401, st
        # a write without the CSRF token, or from another origin: 403
        conn = json.loads(pub(rg, "POST", f"/portal/api/organizations/{a}/connections",
                              json.dumps({"type": "saml", "name": "A's"}), ck)[2])["id"]
        no = dict(ck)
        del no["X-CSRF-Token"]
        st, _, _ = pub(rg, "PUT", f"/portal/api/connections/{conn}/role_mappings", "[]", no)
        assert st == 403, st
        st, _, _ = pub(rg, "PUT", f"/portal/api/connections/{conn}/role_mappings", "[]",
                       {**ck, "Origin": "http://evil.example"})
        assert st == 403, st
        # metadata by URL (a server-side fetch) is not offered to the portal
        st, _, _ = pub(rg, "PUT", f"/portal/api/connections/{conn}/metadata",
                       json.dumps({"metadata_url": "http://127.0.0.1:1/x"}), ck)
        assert st == 415, st
        # without a session: 401
        st, _, _ = pub(rg, "GET", f"/portal/api/organizations/{a}/connections")
        assert st == 401, st
        # a test result of another organization (or none): 404
        st, _, _ = pub(rg, "GET", "/portal/api/tests/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", headers=ck)
        assert st == 404, st
        # sign out ends it
        st, _, _ = pub(rg, "DELETE", "/portal/api/session", headers=ck)
        assert st == 204
        st, _, _ = pub(rg, "GET", f"/portal/api/organizations/{a}/connections", headers=ck)
        assert st == 401, st


@test
def test_portal_page_headers_csp():
    with LoginServer() as rg:
        st, hd, page = pub(rg, "GET", "/portal")
        h = {k.lower(): v for k, v in hd}
        assert st == 200 and "default-src 'self'" in h["content-security-policy"], h
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert all("src=" in t for t in re.findall(r"<script\b[^>]*>", page.decode()))
        # the public listener serves the portal's files only, not the console's
        assert pub(rg, "GET", "/portal/assets/portal.js")[0] == 200
        assert pub(rg, "GET", "/portal/assets/page_roles.js")[0] == 404
        assert pub(rg, "GET", "/console/app.js")[0] == 404


if __name__ == "__main__":
    run_all()
