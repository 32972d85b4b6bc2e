#!/usr/bin/env python3
"""The admin console in Debian's chromium, driven by playwright-core
(tests/browser/console.mjs, one scenario per test): sign-in with the admin
key exchanged for an HttpOnly SameSite=Strict cookie + CSRF token, CSRF and
cross-origin refusals, logout, Roles & Permissions (create, drag and
keyboard priority), Organizations (domains, Roles tab), Connections (SP
facts, bad and good IdP metadata with the lint result, mappings in place),
a login through the fixture IdP in the browser and its login record, Members
and Events paging. Read-backs go through the admin API with the bearer key.
Screenshots land in $BUILD/screenshots (RG_SCREENSHOTS=docs/screenshots for
the README's)."""
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all  # noqa: E402
from test_saml_common import (LoginServer, FixtureIdp, setup_roles,  # noqa: E402
                              setup_saml_connection)
from console_common import run_scenario, bad_metadata, http_call  # noqa: E402

ROOT = harness.ROOT


def browser(scenario, rg, **extra):
    """Runs one scenario of tests/browser/console.mjs in chromium."""
    return run_scenario("console.mjs", scenario, rg, **extra)


def raw(rg, method, path, body=None, headers=None):
    return http_call(rg.admin_port, method, path, body, headers)


def console_session(rg):
    """POST /console/session as the page does: (cookie value, csrf token, Set-Cookie)."""
    st, hd, data = raw(rg, "POST", "/console/session", json.dumps({"key": rg.admin_key}),
                       {"Content-Type": "application/json"})
    assert st == 201, (st, data)
    sc = [v for k, v in hd if k.lower() == "set-cookie"]
    assert len(sc) == 1, sc
    cookie = sc[0].split(";")[0].split("=", 1)[1]
    return cookie, json.loads(data)["csrf_token"], sc[0]


def role_body(slug):
    return json.dumps({"slug": slug, "name": slug})


@test
def test_console_signin_cookie_flags_key_never_in_page():
    with LoginServer() as rg:
        browser("signin", rg)
        cookie, csrf, sc = console_session(rg)
        # HttpOnly, SameSite=Strict, the whole admin listener, bounded life
        assert re.search(r"; HttpOnly", sc) and "SameSite=Strict" in sc and "Path=/" in sc, sc
        assert re.search(r"Max-Age=\d+", sc), sc
        assert len(cookie) >= 43 and len(csrf) >= 43 and cookie != csrf
        # the wrong key: 401, no cookie
        st, hd, data = raw(rg, "POST", "/console/session", json.dumps({"key": "nope"}),
                           {"Content-Type": "application/json"})
        assert st == 401 and not [v for k, v in hd if k.lower() == "set-cookie"], (st, hd)
        # the key is never an answer's content, and never logged
        assert rg.admin_key.encode() not in data
        assert rg.admin_key not in rg.log_text()
        # bearer keys keep working as before; the cookie reads
        st, _, _ = rg.admin("GET", "/authorization/roles")
        assert st == 200
        st, _, _ = raw(rg, "GET", "/authorization/roles", headers={"Cookie": f"rolegate_console={cookie}"})
        assert st == 200, st
        # a made-up cookie is not a session
        st, _, _ = raw(rg, "GET", "/authorization/roles", headers={"Cookie": "rolegate_console=x" * 1})
        assert st == 401, st
        # the key is only accepted in the POST body: not in a query string
        st, _, _ = raw(rg, "GET", f"/console/session?key={rg.admin_key}")
        assert st == 401, st


@test
def test_console_csrf_write_without_token_and_cross_origin_refused():
    with LoginServer() as rg:
        browser("csrf", rg)
        cookie, csrf, _ = console_session(rg)
        ck = {"Cookie": f"rolegate_console={cookie}", "Content-Type": "application/json"}
        cases = [({}, "no token"), ({"X-CSRF-Token": "wrong"}, "wrong token"),
                 ({"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, "foreign Origin"),
                 ({"X-CSRF-Token": csrf, "Origin": f"http://127.0.0.1:{rg.public_port}"},
                  "the public listener's origin"),
                 ({"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-site"}, "same-site, not same-origin"),
                 ({"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, "cross-site")]
        for i, (h, why) in enumerate(cases):
            st, _, data = raw(rg, "POST", "/authorization/roles", role_body(f"csrf-{i}"), {**ck, **h})
            assert st == 403, (why, st, data)
            assert json.loads(data)["code"] == "csrf_token_invalid", (why, data)
            st, _, _ = rg.admin("GET", f"/authorization/roles/csrf-{i}")
            assert st == 404, f"{why}: nothing was created"
        # every write verb is guarded, not only POST
        for m, p in (("PATCH", "/environment"), ("PUT", "/authorization/roles/priority"),
                     ("DELETE", "/authorization/roles/member")):
            st, _, _ = raw(rg, m, p, "{}", ck)
            assert st == 403, (m, p, st)
        # with its token, same origin: accepted
        st, _, data = raw(rg, "POST", "/authorization/roles", role_body("csrf-ok"),
                          {**ck, "X-CSRF-Token": csrf,
                           "Origin": f"http://127.0.0.1:{rg.admin_port}",
                           "Host": f"127.0.0.1:{rg.admin_port}"})
        assert st == 201, (st, data)
        # sign-in itself refuses another origin (login CSRF)
        st, _, _ = raw(rg, "POST", "/console/session", json.dumps({"key": rg.admin_key}),
                       {"Content-Type": "application/json", "Origin": "http://evil.example"})
        assert st == 403, st


@test
def test_console_logout_ends_the_session():
    with LoginServer() as rg:
        old = browser("logout", rg)["cookie"]
        st, _, _ = raw(rg, "GET", "/authorization/roles", headers={"Cookie": f"rolegate_console={old}"})
        assert st == 401, "the old cookie is dead server-side"
        # logout itself needs the CSRF token
        cookie, csrf, _ = console_session(rg)
        st, _, _ = raw(rg, "DELETE", "/console/session", headers={"Cookie": f"rolegate_console={cookie}"})
        assert st == 403, st
        st, hd, _ = raw(rg, "DELETE", "/console/session",
                        headers={"Cookie": f"rolegate_console={cookie}", "X-CSRF-Token": csrf})
        assert st == 204, st
        assert any("Max-Age=0" in v for k, v in hd if k.lower() == "set-cookie"), hd
        st, _, _ = raw(rg, "GET", "/console/session", headers={"Cookie": f"rolegate_console={cookie}"})
        assert st == 401, st


@test
def test_console_roles_create_drag_and_keyboard_priority_R11():
    with LoginServer() as rg:
        setup_roles(rg)
        out = browser("roles", rg)
        st, _, data = rg.admin("GET", "/authorization/roles?limit=100")
        assert [r["slug"] for r in data["data"]] == out["order"], (data, out)
        assert out["order"][:2] == ["admin", "analyst"], out


@test
def test_console_organization_roles_tab_order_and_default_R9():
    with LoginServer() as rg:
        setup_roles(rg)
        out = browser("orgs", rg)
        st, _, org = rg.admin("GET", f"/organizations/{out['org']}")
        assert org["default_role"] == out["slug"], org


@test
def test_console_connection_sp_facts_metadata_lint_and_mappings_R15():
    with LoginServer() as rg:
        setup_roles(rg)
        org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
        idp = FixtureIdp()
        st, err = rg.api("PUT", "/connections/none/metadata", bad_metadata(idp),
                         {"Content-Type": "application/samlmetadata+xml"})
        out = browser("connection", rg, org=org, bad_metadata=bad_metadata(idp),
                      bad_metadata_code="invalid_metadata", good_metadata_file=idp.md_path,
                      idp_sso=idp.sso)
        c = rg.ok("GET", f"/connections/{out['connection']}")
        assert c["idp_entity_id"] == "https://idp.fixture.rolegate.test/metadata", c
        # the last, refused save changed nothing
        maps = rg.ok("GET", f"/connections/{out['connection']}/role_mappings")["data"]
        assert sorted((m["idp_group"], m["role_slug"]) for m in maps) == \
            [("admins", "admin"), ("engineering", "member")], maps


def saml_env(rg):
    setup_roles(rg)
    org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
    idp = FixtureIdp()
    conn, sp = setup_saml_connection(rg, org, idp.metadata)
    idp.start(sp)
    return org, conn, idp


@test
def test_console_login_through_idp_then_login_record_why_this_role_R16():
    with LoginServer() as rg:
        org, conn, idp = saml_env(rg)
        try:
            # the fixture IdP sends groups engineering (member) and admins (admin)
            # ... and 'member' is dragged above 'admin' in the console first
            out = browser("login_record", rg, org=org, connection=conn, drag_first="member")
        finally:
            idp.stop()
        assert "engineering" in out["groups"] and "admins" in out["groups"], out
        assert "engineering \u2192 member" in out["mappings"], out
        assert out["roles"] == "member", out
        assert "admin, member" in out["why"] or "member, admin" in out["why"], out
        assert "highest in priority order: member" in out["why"], out
        # the browser ended at the app (/auth here) with its session
        assert out["auth"] == {"status": 200, "roles": "member"}, out


@test
def test_console_members_role_source_sessions_and_revoke_R17():
    with LoginServer() as rg:
        org, conn, idp = saml_env(rg)
        try:
            browser("login_record", rg, org=org, connection=conn)
        finally:
            idp.stop()
        om = rg.ok("GET", f"/user_management/organization_memberships?organization_id={org}")
        om = om["data"][0]["id"]
        sid = rg.ok("GET", f"/user_management/organization_memberships/{om}/sessions")["data"][0]["id"]
        out = browser("members", rg, org=org)
        assert out["roles"] == "admin" and out["source"] == "idp", out
        # the session list on the Members page; its Revoke is DELETE /sessions/{id}
        assert out["sessionBefore"] == "active" and out["sessionAfter"] == "revoked", out
        ev = rg.ok("GET", "/events?event=session.revoked")["data"]
        assert [e["data"]["id"] for e in ev] == [sid], ev
        ms = rg.ok("GET", f"/user_management/organization_memberships?organization_id={org}")
        assert ms["data"] == [], ms


@test
def test_console_events_paging_R26():
    with LoginServer() as rg:
        for i in range(25):
            rg.ok("POST", "/authorization/roles", {"slug": f"r{i:02d}", "name": f"R {i}"})
        out = browser("events", rg)
        assert out["rows"] == 20, out


@test
def test_console_assets_csp_nosniff_no_inline_script():
    with LoginServer() as rg:
        out = browser("headers", rg)
        assert out["violations"] == [], out["violations"]
        urls = [a["url"] for a in out["assets"]]
        assert any(u.endswith("/console/app.js") for u in urls), urls
        for a in out["assets"]:
            assert a["csp"] and "default-src 'self'" in a["csp"] and "frame-ancestors 'none'" in a["csp"], a
            assert a["nosniff"] == "nosniff", a
        st, hd, page = raw(rg, "GET", "/")
        assert st == 200
        h = {k.lower(): v for k, v in hd}
        assert h["x-frame-options"] == "DENY" and "script-src" not in h["content-security-policy"]
        text = page.decode()
        assert re.findall(r"<script\b[^>]*>", text) and all(
            "src=" in t for t in re.findall(r"<script\b[^>]*>", text)), "no inline script"
        assert "<style" not in text and " style=" not in text and "onclick" not in text
        # the binary serves its own copy: the same bytes as the source tree
        with open(os.path.join(ROOT, "src", "console", "app.js"), "rb") as f:
            st, _, js = raw(rg, "GET", "/console/app.js")
            assert st == 200 and js == f.read()
        st, _, _ = raw(rg, "GET", "/console/embed.sh")
        assert st == 404
        st, _, _ = raw(rg, "GET", "/console/..%2Frolegate.conf")
        assert st in (400, 404), st


def scim(url, method, path, body, token):
    """One SCIM request to the public listener with the directory's token."""
    import urllib.parse
    u = urllib.parse.urlsplit(url + path)
    st, _, data = http_call(u.port, method, u.path, json.dumps(body),
                            {"Authorization": f"Bearer {token}",
                             "Content-Type": "application/scim+json"})
    return st, json.loads(data) if data else None


@test
def test_console_directories_token_once_scim_url_group_mapping_R28():
    with LoginServer() as rg:
        setup_roles(rg)
        org = rg.ok("POST", "/organizations", {"name": "Acme", "domains": ["acme.test"]})["id"]
        out = browser("directory_create", rg, org=org)
        dirs = rg.ok("GET", f"/directories?organization_id={org}")["data"]
        assert len(dirs) == 1 and dirs[0]["scim_base_url"] == out["url"], (dirs, out)
        assert "bearer_token" not in dirs[0], "the API does not show it again either"
        # the IdP pushes a user and a group with the token the console showed
        st, u = scim(out["url"], "POST", "/Users", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@acme.test",
            "externalId": "u1", "active": True,
            "emails": [{"value": "ann@acme.test", "primary": True, "type": "work"}]}, out["token"])
        assert st == 201, (st, u)
        st, g = scim(out["url"], "POST", "/Groups", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Admins",
            "externalId": "g1", "members": [{"value": u["id"]}]}, out["token"])
        assert st == 201, (st, g)
        res = browser("directory_map", rg, directory=dirs[0]["id"])
        maps = rg.ok("GET", f"/directories/{dirs[0]['id']}/role_mappings")
        maps = maps if isinstance(maps, list) else maps["data"]
        assert [(m["directory_group_id"], m["role_slug"]) for m in maps] == [(g["id"], "admin")], maps
        assert res["roles"] == "admin", res


@test
def test_console_environment_multiple_roles_and_default_role_R12():
    with LoginServer() as rg:
        setup_roles(rg)
        browser("environment", rg)
        env = rg.ok("GET", "/environment")
        assert env["multiple_roles"] is True and env["default_role"] == "viewer", env


@test
def test_console_oidc_connection_fields_secret_never_shown():
    with LoginServer() as rg:
        org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
        out = browser("oidc_connection", rg, org=org)
        assert out["redirect_uri"] == rg.base + "/oidc/callback", out


if __name__ == "__main__":
    run_all()
