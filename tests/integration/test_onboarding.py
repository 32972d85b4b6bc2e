#!/usr/bin/env python3
"""The first hour of a new user (issue 11, onboarding items): each test names
its item. Real rolegate, real fixture IdP, loopback sockets.
  item 1: SP metadata before IdP metadata; connection state draft -> active
  item 2: the sign-in page and home-realm discovery by organization domains
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_saml_common import (LoginServer, FixtureIdp, reason_of,  # noqa: E402
                              idp_metadata, setup_saml_connection)
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


if __name__ == "__main__":
    run_all()
