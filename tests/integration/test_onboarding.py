#!/usr/bin/env python3
"""The first hour of a new user (issue 11, onboarding items): each test names
its item. Real rolegate, real fixture IdP, loopback sockets.
  item 1: SP metadata before IdP metadata; connection state draft -> active
  item 2: the sign-in page and home-realm discovery by organization domains
  item 4: after login, /whoami shows who the person is
  item 5: /auth's 403 as a page (Traefik hands it to the browser), /denied,
          /logout lands on the public signed-out page
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_saml_common import (LoginServer, FixtureIdp, reason_of,  # noqa: E402
                              idp_metadata, setup_saml_connection, SamlEnv, Browser)
from harness import free_port  # noqa: E402
import html.parser  # noqa: E402
import urllib.parse  # noqa: E402


class PageParser(html.parser.HTMLParser):
    """Tags, labels and inputs of a page, for the accessibility checks."""

    def __init__(self):
        super().__init__()
        self.tags, self.labels, self.inputs, self.attrs = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.attrs += [k for k, _ in attrs]
        if tag == "label" and a.get("for"):
            self.labels[a["for"]] = True
        if tag == "input":
            self.inputs.append(a)


def check_page(hd, page):
    """CSP default-src 'self', no inline script or style, labelled inputs."""
    csp = hd.get("content-security-policy", "")
    csp = " ".join(csp) if isinstance(csp, list) else csp
    assert "default-src 'self'" in csp, hd
    p = PageParser()
    p.feed(page)
    assert "script" not in p.tags and "style" not in p.tags, p.tags
    assert "style" not in p.attrs and not any(a.startswith("on") for a in p.attrs), p.attrs
    assert "html" in p.tags and 'lang="en"' in page, page[:200]
    for i in p.inputs:
        if i.get("type") != "hidden":
            assert i.get("id") in p.labels, ("input without a label", i)
    return p


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


@test
def test_item2_signin_page_home_realm_discovery():
    with LoginServer() as rg:
        # one organization with one connection: straight to the IdP, no page
        sso_a = f"http://127.0.0.1:{free_port()}/saml/sso"
        sso_b = f"http://127.0.0.1:{free_port()}/saml/sso"
        acme = rg.ok("POST", "/organizations", {"name": "Acme Corp",
                                                "domains": ["acme.com"]})["id"]
        setup_saml_connection(rg, acme, idp_metadata(sso_a), mappings=[])
        st, hd, _ = rg.public("GET", "/login?return_to=/app")
        assert st == 302 and hd["location"].startswith(sso_a), (st, hd)
        # a second organization: /login without organization shows the page
        beta = rg.ok("POST", "/organizations", {"name": "Beta Secret Customer",
                                                "domains": ["beta.example"]})["id"]
        setup_saml_connection(rg, beta, idp_metadata(sso_b), mappings=[])
        st, hd, page = rg.public("GET", "/login?return_to=/app")
        assert st == 200 and hd["content-type"].startswith("text/html"), (st, hd)
        p = check_page(hd, page)
        email = [i for i in p.inputs if i.get("name") == "login_hint"]
        assert email and email[0]["type"] == "email", p.inputs
        assert any(i.get("name") == "return_to" and i.get("value") == "/app" for i in p.inputs)
        for leak in ("Acme", "Beta", acme, beta, "acme.com", "beta.example"):
            assert leak not in page, (leak, page)
        # the form's answer: login_hint picks the organization by its domain
        st, hd, _ = rg.public("GET", "/login?login_hint=" + urllib.parse.quote("bob@Beta.Example")
                              + "&return_to=/app")
        assert st == 302 and hd["location"].startswith(sso_b), (st, hd)
        st, hd, _ = rg.public("GET", "/login?domain_hint=acme.com&return_to=/app")
        assert st == 302 and hd["location"].startswith(sso_a), (st, hd)
        # unknown domain: a clear message, the page again, no customer named
        st, hd, page = rg.public("GET", "/login?login_hint=eve%40unknown.example")
        assert st == 404, (st, page[:300])
        check_page(hd, page)
        assert "No organization signs in with this email domain" in page, page
        assert 'value="eve@unknown.example"' in page, page
        for leak in ("Acme", "Beta", acme, beta, "acme.com", "beta.example"):
            assert leak not in page, (leak, page)
        st, _, page = rg.public("GET", "/login?login_hint=not-an-email")
        assert st == 400 and "work email" in page, (st, page[:300])
        # an explicit organization still goes straight on
        st, hd, _ = rg.public("GET", f"/login?organization={beta}")
        assert st == 302 and hd["location"].startswith(sso_b), (st, hd)
        # the page's stylesheet is served by rolegate itself
        st, hd, css = rg.public("GET", "/assets/rolegate.css")
        assert st == 200 and hd["content-type"].startswith("text/css") and "body" in css


@test
def test_item4_whoami_after_login_and_item5_signed_out():
    with SamlEnv() as env:
        b = Browser()
        st, hd, _ = env.login(b, user="alice@example.com", groups=("engineering", "admins"),
                              return_to="/whoami")
        assert st == 302 and Browser.location(hd) == "/whoami", (st, hd)
        st, hd, data = b.get(env.rg.base + "/whoami")
        page = data.decode()
        assert st == 200, (st, page[:300])
        p = check_page(hd, page)
        assert '<dd id="user">alice@example.com</dd>' in page, page
        assert f'<dd id="org-id">{env.org}</dd>' in page and ">Acme<" in page, page
        assert '<dd id="roles">admin</dd>' in page, page
        assert "users:manage" in page and "reports:view" in page, page
        size = int(re.search(r'<dd id="token-size">(\d+) bytes', page).group(1))
        assert size == len(b.jar["rolegate"]), (size, len(b.jar["rolegate"]))
        assert 'action="/logout"' in page and 'method="post"' in page, page
        assert b.jar["rolegate"] not in page, "the token is not shown"
        # the sign-out button: POST /logout -> the public signed-out page
        st, hd, _ = b.request("POST", env.rg.base + "/logout")
        assert st == 302 and Browser.location(hd) == "/signed-out", (st, hd)
        st, hd, data = b.get(env.rg.base + "/signed-out")
        assert st == 200 and b'id="signed-out"' in data, (st, data[:300])
        check_page(hd, data.decode())
        # signed out: /whoami says so and offers to sign in, no loop
        st, _, data = b.get(env.rg.base + "/whoami")
        assert st == 401 and b'href="/login?return_to=/whoami"' in data, (st, data[:300])
        del p


@test
def test_item5_auth_403_page_for_browsers_and_denied_page():
    with SamlEnv() as env:
        b = Browser()
        env.login(b, groups=("engineering",))
        ck = {"Cookie": "rolegate=" + b.jar["rolegate"]}
        # what Traefik's forwardAuth passes on: the browser's Accept
        st, hd, page = env.rg.public("GET", "/auth?require_role=admin",
                                     headers=dict(ck, Accept="text/html,*/*"))
        assert st == 403 and hd["content-type"].startswith("text/html"), (st, hd)
        assert hd["x-rolegate-reason"] == "role_required", hd
        assert hd["x-rolegate-requirement"] == "require_role=admin", hd
        check_page(hd, page)
        assert '<code id="reason">role_required</code>' in page, page
        # an API client still gets JSON
        st, hd, body = env.rg.public("GET", "/auth?require_permission=x:y", headers=ck)
        assert st == 403 and body == {"code": "permission_required"}, (st, body)
        # /denied (the nginx snippet's page) neither echoes nor escapes markup:
        # it is not a requirement /auth could have written, so it is left out
        st, hd, page = env.rg.public("GET", "/denied?reason=%3Cb%3E&requirement=%3Cscript%3E")
        assert st == 403 and "<script>" not in page and "script" not in page, page
        assert '<code id="reason">access_denied</code>' in page, page
        # it shows only what /auth could have said: a known reason code and
        # a requirement of /auth's shape; a crafted link's text is left out
        st, hd, page = env.rg.public(
            "GET", "/denied?reason=call_support_now&requirement=Call+555-0100+to+restore")
        assert st == 403 and "555-0100" not in page and "call_support_now" not in page, page
        assert '<code id="reason">access_denied</code>' in page, page
        assert 'id="requirement"' not in page, page
        st, hd, page = env.rg.public(
            "GET", "/denied?reason=role_required&requirement=require_role%3Dbilling-admin")
        assert '<code id="reason">role_required</code>' in page, page
        assert '<code id="requirement">require_role=billing-admin</code>' in page, page
        st, hd, page = env.rg.public(
            "GET", "/denied?reason=token_expired&requirement=require_role%3Da%20b")
        assert '<code id="reason">token_expired</code>' in page, page
        assert 'id="requirement"' not in page, page


if __name__ == "__main__":
    run_all()
