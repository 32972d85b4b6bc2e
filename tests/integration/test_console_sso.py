#!/usr/bin/env python3
"""Browser SSO end to end in chromium (tests/browser/sso.mjs): Debian's
nginx with the shipped auth_request snippet (etc/nginx-rolegate.conf) in
front of a small app and of rolegate (base_url is nginx's), and a browser
with no session: app -> 302 /login -> the sign-in page (work email, issue 11
discovery by domain) -> the organization's IdP -> ACS / callback -> the app,
which sees the X-Rolegate-* headers. Three organizations: the fixture SAML
IdP, samlify (an independent SAML IdP with its own sign-in form) and
oidc-provider."""
import http.server
import os
import sys
import threading

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, free_port  # noqa: E402
from test_saml_common import (LoginServer, FixtureIdp, setup_roles,  # noqa: E402
                              setup_saml_connection, DEFAULT_MAPPINGS)
from console_common import run_scenario  # noqa: E402
# their Nginx, Echo app, samlify IdP and OP (importing them registers their
# tests too: this file runs only its own, see below)
import test_auth_nginx  # noqa: E402
import test_saml_samlify  # noqa: E402
import test_oidc_login  # noqa: E402
del harness._tests[:]


@test
def test_browser_sso_nginx_app_signin_page_idp_acs_app_saml_samlify_oidc():
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), test_auth_nginx.Echo)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    ng_port = free_port()
    front = f"http://127.0.0.1:{ng_port}"
    rg = LoginServer(config={"server": {"base_url": front}})
    fixture = samlify = op = ng = None
    try:
        setup_roles(rg)
        orgs = {d: rg.ok("POST", "/organizations", {"name": d, "domains": [d]})["id"]
                for d in ("acme.test", "globex.test", "initech.test")}
        # acme: the fixture IdP
        fixture = FixtureIdp()
        _, sp = setup_saml_connection(rg, orgs["acme.test"], fixture.metadata)
        fixture.start(sp)
        # globex: samlify
        samlify = test_saml_samlify.SamlifyIdp()
        conn = rg.ok("POST", f"/organizations/{orgs['globex.test']}/connections",
                     {"type": "saml", "name": "samlify"})["id"]
        st, info = rg.api("PUT", f"/connections/{conn}/metadata", samlify.metadata(),
                          {"Content-Type": "application/samlmetadata+xml"})
        assert st == 200, (st, info)
        rg.ok("PUT", f"/connections/{conn}/role_mappings", DEFAULT_MAPPINGS)
        st, _, sp = rg.public("GET", f"/saml/metadata/{conn}")
        with open(samlify.sp_path, "w") as f:
            f.write(sp)
        # initech: oidc-provider
        op = test_oidc_login.Op(front + "/oidc/callback")
        conn = rg.ok("POST", f"/organizations/{orgs['initech.test']}/connections",
                     {"type": "oidc", "name": "OP", "issuer": op.issuer,
                      "client_id": test_oidc_login.CLIENT_ID,
                      "client_secret": test_oidc_login.CLIENT_SECRET})["id"]
        rg.ok("PUT", f"/connections/{conn}/role_mappings",
              [{"idp_group": "engineering", "role_slug": "member"}])
        ng = test_auth_nginx.Nginx(rg.public_port, app.server_address[1], port=ng_port)
        out = run_scenario("sso.mjs", "flows", rg, app=front + "/app/page", flows=[
            {"name": "fixture", "email": "demo@acme.test"},
            {"name": "samlify", "email": "alice@globex.test", "user": "alice"},
            {"name": "oidc", "email": "alice@initech.test"}])
        want = {"fixture": ("acme.test", "admin", "demo@example.com"),
                "samlify": ("globex.test", "admin", "alice@example.com"),
                "oidc": ("initech.test", "member", "alice@example.com")}
        for f in out["flows"]:
            dom, role, email = want[f["name"]]
            h = f["headers"]
            assert f["path"] == "/app/page", f
            assert h.get("x-rolegate-org") == orgs[dom], (f, orgs)
            assert h.get("x-rolegate-roles") == role, f
            assert h.get("x-rolegate-email") == email, f
            assert "rolegate" in f["cookies"], f
        # each login left its membership (role_source idp) in its organization
        for dom in orgs:
            ms = rg.ok("GET", f"/user_management/organization_memberships?organization_id={orgs[dom]}")
            assert len(ms["data"]) == 1 and ms["data"][0]["role_source"] == "idp", (dom, ms)
    except Exception:
        if ng:
            print("  nginx error.log:\n" + ng.error_log()[-2000:], flush=True)
        raise
    finally:
        for x in (ng,):
            if x:
                x.close()
        for x in (fixture, samlify, op):
            if x:
                x.stop()
        rg.__exit__(None, None, None)
        app.shutdown()
        app.server_close()


if __name__ == "__main__":
    run_all()
