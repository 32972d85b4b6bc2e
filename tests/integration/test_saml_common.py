#!/usr/bin/env python3
"""Browser logins over HTTP: what the SAML and OIDC login tests share, plus
the tests of the shared parts (return_to open-redirect guard, SP metadata,
IdP metadata upload with its fail-closed lint, login records).

Helpers imported by test_saml_*.py and test_oidc_*.py:
  LoginServer  a rolegate (harness.Rolegate) with a JSON admin client
  Browser      follows redirects with a cookie jar, parses auto-submit forms
  FixtureIdp   build/fixtures/rg-fixture-idp `serve` for one SAML connection
  mint(...)    one base64 SAMLResponse from the fixture IdP (`mint` mode)
  setup_*      an organization, roles, a connection and its mappings
  SamlEnv      all of them for one SAML connection: start/idp_form/login
               drive a browser login, mint/acs a hand-made response
Run directly, it runs its own tests."""
import base64
import html.parser
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import test, run_all, free_port  # noqa: E402

ROOT = harness.ROOT
BUILD = os.environ.get("ROLEGATE_BUILD") or os.path.join(ROOT, "build")
FIXTURE_BIN = os.path.join(BUILD, "fixtures", "rg-fixture-idp")
FIX = os.path.join(ROOT, "idp-fixtures")
IDP_KEY = os.path.join(FIX, "idp.key")
ATTACKER_KEY = os.path.join(FIX, "attacker.key")


# ---- the gateway ---------------------------------------------------------------

class LoginServer(harness.Rolegate):
    """rolegate with the options logins need in tests: plain-http loopback
    IdPs allowed, JWKS refetch at once. No Redis: the replay cache and the
    login state are in-process (the default policy `reject` concerns a
    configured Redis being down)."""

    def __init__(self, config=None, **kw):
        cfg = {"demo": {"enabled": False},
               "oidc": {"allow_http_loopback": True, "jwks_min_refresh": 0}}
        for sec, opts in (config or {}).items():
            cfg.setdefault(sec, {}).update(opts)
        super().__init__(config=cfg, **kw)
        self.base = f"http://127.0.0.1:{self.public_port}"

    def api(self, method, path, body=None, headers=None):
        st, h, data = self.admin(method, path, body, headers)
        return st, data

    def ok(self, method, path, body=None, want=(200, 201, 202, 204)):
        st, data = self.api(method, path, body)
        assert st in want, f"{method} {path} -> {st} {data}"
        return data

    def events(self, name=None):
        out, after = [], None
        while True:
            q = "/events?limit=100&order=asc" + (f"&after={after}" if after else "")
            if name:
                q += "&event=" + name
            page = self.ok("GET", q)
            out += page["data"]
            after = page["list_metadata"]["after"]
            if not after or not page["data"]:
                return out

    def failures(self, conn_id=None):
        return [e for e in self.events() if e["event"] == "authentication.failed"
                and (conn_id is None or e["data"].get("connection_id") == conn_id)]

    def memberships(self, org_id):
        out, after = [], None
        while True:
            q = f"/user_management/organization_memberships?organization_id={org_id}&limit=100"
            if after:
                q += f"&after={after}"
            page = self.ok("GET", q)
            out += page["data"]
            after = page["list_metadata"]["after"]
            if not after or not page["data"]:
                return sorted(out, key=lambda m: m["id"])


# ---- a browser -------------------------------------------------------------------

class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        if tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")


class Browser:
    """Cookies by name (every server here is 127.0.0.1, and browsers share
    cookies between ports of one host), Max-Age=0 deletes."""

    def __init__(self):
        self.jar = {}
        self.history = []

    def request(self, method, url, body=None, headers=None):
        u = urllib.parse.urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        h = dict(headers or {})
        if self.jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = r.getheaders()
        finally:
            c.close()
        for k, v in hdrs:
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";")[0]
                if re.search(r"max-age=0\b", v, re.I):
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = value
        hd = {}
        for k, v in hdrs:
            hd.setdefault(k.lower(), []).append(v)
        self.history.append((method, url, r.status))
        return r.status, hd, data

    def get(self, url, headers=None):
        return self.request("GET", url, headers=headers)

    def post_form(self, url, fields):
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", url, body,
                            {"Content-Type": "application/x-www-form-urlencoded"})

    @staticmethod
    def location(hd):
        return hd.get("location", [None])[0]

    @staticmethod
    def form(data):
        p = FormParser()
        p.feed(data.decode("utf-8", "replace"))
        return p.action, p.fields


def reason_of(data):
    """The stable reason code shown on a login error page."""
    m = re.search(rb'<code id="reason">([^<]*)</code>', data)
    return m.group(1).decode() if m else None


def auth(b, rg):
    """GET /auth with the browser's cookies -> (status, headers dict)."""
    st, hd, _ = b.get(rg.base + "/auth")
    return st, {k: v[0] for k, v in hd.items()}


def roles_of(b, rg):
    st, h = auth(b, rg)
    assert st == 200, f"/auth -> {st}"
    return h.get("x-rolegate-roles", "").split(",") if h.get("x-rolegate-roles") else []


# ---- the fixture IdP -----------------------------------------------------------

def tool_env():
    """The fixture IdP is a test tool, not the product: under the ASan build
    its own leaks at exit are not what these tests look for."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return env


def idp_metadata(sso_url, entity_id=None):
    cmd = [FIXTURE_BIN, "metadata", "--sso-url", sso_url]
    if entity_id:
        cmd += ["--entity-id", entity_id]
    return subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT,
                          env=tool_env()).stdout.decode()


class FixtureIdp:
    """rg-fixture-idp serve for one connection; the test appends
    &user=..&groups=.. to the SSO redirect."""

    def __init__(self):
        self.port = free_port()
        self.sso = f"http://127.0.0.1:{self.port}/saml/sso"
        self.metadata = idp_metadata(self.sso)
        self.dir = tempfile.mkdtemp(prefix="rg-fixture-idp-")
        self.md_path = os.path.join(self.dir, "idp.xml")
        with open(self.md_path, "w") as f:
            f.write(self.metadata)
        self.proc = None

    def start(self, sp_metadata):
        self.sp_path = os.path.join(self.dir, "sp.xml")
        with open(self.sp_path, "w") as f:
            f.write(sp_metadata)
        self.proc = subprocess.Popen(
            [FIXTURE_BIN, "serve", "--port", str(self.port), "--sp-metadata", self.sp_path,
             "--idp-metadata", self.md_path, "--key", IDP_KEY],
            cwd=ROOT, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(lambda: _up(self.port), 10, "fixture IdP")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


def _up(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/healthz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def mint(sp_metadata, idp_md_path, **kw):
    """base64 SAMLResponse from `rg-fixture-idp mint`; kw: user, groups
    (list), in_response_to, key, sign, not_on_or_after_offset, ...; a value
    True is a flag without argument (encrypt=True)."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(sp_metadata)
        sp = f.name
    cmd = [FIXTURE_BIN, "mint", "--sp-metadata", sp, "--idp-metadata", idp_md_path,
           "--key", kw.pop("key", IDP_KEY)]
    if "groups" in kw:
        kw["groups"] = ",".join(kw["groups"])
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-")] + ([] if v is True else [str(v)])
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT,
                             env=tool_env()).stdout
    finally:
        os.unlink(sp)
    return out.decode().strip()


# ---- setups ----------------------------------------------------------------------

def setup_roles(rg, multiple=False):
    """Environment roles admin > member > viewer with permissions."""
    for slug in ("reports:view", "reports:edit", "users:manage"):
        rg.ok("POST", "/authorization/permissions", {"slug": slug, "name": slug})
    rg.ok("POST", "/authorization/roles", {"slug": "admin", "name": "Admin"})
    rg.ok("POST", "/authorization/roles", {"slug": "viewer", "name": "Viewer"})
    rg.ok("PUT", "/authorization/roles/admin/permissions",
          {"permissions": ["reports:view", "reports:edit", "users:manage"]})
    rg.ok("PUT", "/authorization/roles/member/permissions",
          {"permissions": ["reports:view", "reports:edit"]})
    rg.ok("PUT", "/authorization/roles/viewer/permissions", {"permissions": ["reports:view"]})
    rg.ok("PUT", "/authorization/roles/priority", {"slugs": ["admin", "member", "viewer"]})
    if multiple:
        rg.ok("PATCH", "/environment", {"multiple_roles": True})


DEFAULT_MAPPINGS = [{"idp_group": "admins", "role_slug": "admin"},
                    {"idp_group": "engineering", "role_slug": "member"},
                    {"idp_group": "viewers", "role_slug": "viewer"}]


def setup_saml_connection(rg, org_id, idp_md, mappings=None, **cfg):
    body = {"type": "saml", "name": "Test IdP"}
    body.update(cfg)
    conn = rg.ok("POST", f"/organizations/{org_id}/connections", body)
    st, info = rg.api("PUT", f"/connections/{conn['id']}/metadata", idp_md,
                      {"Content-Type": "application/samlmetadata+xml"})
    assert st == 200, (st, info)
    rg.ok("PUT", f"/connections/{conn['id']}/role_mappings",
          DEFAULT_MAPPINGS if mappings is None else mappings)
    st, _, sp = rg.public("GET", f"/saml/metadata/{conn['id']}")
    assert st == 200, (st, sp)
    return conn["id"], sp


def draft_connection(rg):
    """Organization "Acme" with a SAML connection that has no metadata yet
    (a draft): (org_id, connection_id)."""
    org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
    conn = rg.ok("POST", f"/organizations/{org}/connections",
                 {"type": "saml", "name": "IdP"})["id"]
    return org, conn


class SamlEnv:
    """A gateway + an organization + a fixture IdP behind one connection."""

    def __init__(self, multiple=False, config=None, **conn_cfg):
        self.rg = LoginServer(config=config)
        self.idp = FixtureIdp()
        try:
            setup_roles(self.rg, multiple)
            self.org = self.rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            self.conn, self.sp = setup_saml_connection(self.rg, self.org, self.idp.metadata,
                                                       **conn_cfg)
            self.idp.start(self.sp)
        except BaseException:
            self.close(ok=False)
            raise

    def close(self, ok=True):
        self.idp.stop()
        self.rg.__exit__(None if ok else Exception, None, None)

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.idp.stop()
        self.rg.__exit__(et, e, tb)
        return False

    def login_url(self, return_to="/app"):
        return (f"{self.rg.base}/login?organization={self.org}&return_to="
                + urllib.parse.quote(return_to, safe=""))

    def start(self, b, return_to="/app"):
        """GET /login -> the IdP's SSO URL (302) with the state cookie set."""
        st, hd, data = b.get(self.login_url(return_to))
        assert st == 302, (st, data[:300])
        loc = Browser.location(hd)
        assert loc.startswith(self.idp.sso + "?SAMLRequest="), loc
        assert "rolegate_state" in b.jar
        return loc

    def idp_form(self, b, loc, user="alice@example.com", groups=("engineering",)):
        q = "&user=" + urllib.parse.quote(user) + "&groups=" + urllib.parse.quote(",".join(groups))
        st, _, data = b.get(loc + q)
        assert st == 200, (st, data[:300])
        action, fields = Browser.form(data)
        assert action == f"{self.rg.base}/saml/acs/{self.conn}", action
        return action, fields

    def login(self, b, user="alice@example.com", groups=("engineering",), return_to="/app"):
        loc = self.start(b, return_to)
        action, fields = self.idp_form(b, loc, user, groups)
        return b.post_form(action, fields)

    def mint(self, loc=None, **kw):
        """A SAMLResponse from the fixture IdP (mint), answering the
        AuthnRequest of the SSO URL loc when given (unsolicited if not)."""
        if loc is not None:
            kw["authn_request"] = loc.split("?", 1)[1]
        return mint(self.sp, self.idp.md_path, **kw)

    def acs(self, b, resp):
        """POSTs resp (base64 text, or the response XML as bytes) to this
        connection's ACS as browser b; (status, headers, body)."""
        if isinstance(resp, bytes):
            resp = base64.b64encode(resp).decode()
        return b.post_form(f"{self.rg.base}/saml/acs/{self.conn}", {"SAMLResponse": resp})


# ---- tests of the shared parts ---------------------------------------------------

def _register_tests():
    @test
    def test_return_to_open_redirects_refused_400():
        with LoginServer() as rg:
            idp = FixtureIdp()
            setup_roles(rg)
            org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            setup_saml_connection(rg, org, idp.metadata)
            for bad in ["//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)",
                        "http://evil.com/", "https://127.0.0.1.evil.com/x",
                        f"http://127.0.0.1:{rg.public_port}@evil.com/", "/\tx", "evil.com"]:
                st, _, body = rg.public("GET", f"/login?organization={org}&return_to="
                                        + urllib.parse.quote(bad, safe=""))
                assert st == 400, (bad, st)
                assert 'id="reason">invalid_return_to<' in body, (bad, body[:300])
                assert "evil" not in body.split("<p>Reason")[0] or "&" in body
            # what is allowed: a relative path and this gateway's own origin
            for good in ["/app?x=1", "/", f"http://127.0.0.1:{rg.public_port}/dash"]:
                st, hd, _ = rg.public("GET", f"/login?organization={org}&return_to="
                                      + urllib.parse.quote(good, safe=""))
                assert st == 302, (good, st)

    @test
    def test_return_to_allow_listed_origin_accepted():
        with LoginServer(config={"server": {"return_to_origins": "https://app.example.com"}}) as rg:
            idp = FixtureIdp()
            org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            setup_saml_connection(rg, org, idp.metadata, mappings=[])
            st, _, _ = rg.public("GET", f"/login?organization={org}&return_to="
                                 + urllib.parse.quote("https://app.example.com/x", safe=""))
            assert st == 302, st
            st, _, _ = rg.public("GET", f"/login?organization={org}&return_to="
                                 + urllib.parse.quote("https://app.example.com.evil.io/", safe=""))
            assert st == 400, st

    @test
    def test_login_picks_connection_or_requires_one():
        with LoginServer() as rg:
            idp = FixtureIdp()
            st, _, body = rg.public("GET", "/login?organization=org_01HZZZZZZZZZZZZZZZZZZZZZZZ")
            assert st == 404 and "organization_not_found" in body, (st, body[:200])
            org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            st, _, body = rg.public("GET", f"/login?organization={org}")
            assert st == 404 and "no_connection" in body, (st, body[:200])
            c1, _ = setup_saml_connection(rg, org, idp.metadata, mappings=[])
            st, hd, _ = rg.public("GET", f"/login?organization={org}")
            assert st == 302 and hd["location"].startswith(idp.sso), st
            # the state cookie: HttpOnly, 5 minutes, Lax under plain http
            sc = hd["set-cookie"]
            assert sc.startswith("rolegate_state=") and "HttpOnly" in sc, sc
            assert "Max-Age=300" in sc and "SameSite=Lax" in sc and "Secure" not in sc, sc
            c2, _ = setup_saml_connection(rg, org, idp.metadata, mappings=[])
            # several: a chooser of the organization's connections (issue 11 item 2)
            st, _, body = rg.public("GET", f"/login?organization={org}")
            assert st == 200 and c1 in body and c2 in body, (st, body[:200])
            st, hd, _ = rg.public("GET", f"/login?organization={org}&connection={c2}")
            assert st == 302, st
            other = rg.ok("POST", "/organizations", {"name": "Other"})["id"]
            st, _, body = rg.public("GET", f"/login?organization={other}&connection={c1}")
            assert st == 400 and "connection_not_in_organization" in body, (st, body[:200])

    @test
    def test_https_state_cookie_is_samesite_none_secure():
        with LoginServer(config={"server": {"base_url": "https://sso.example.com"}}) as rg:
            idp = FixtureIdp()
            org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            setup_saml_connection(rg, org, idp.metadata, mappings=[])
            st, hd, _ = rg.public("GET", f"/login?organization={org}")
            assert st == 302, st
            sc = hd["set-cookie"]
            assert "SameSite=None; Secure" in sc and "HttpOnly" in sc, sc

    @test
    def test_sp_metadata_names_acs_and_entity():
        with LoginServer() as rg:
            idp = FixtureIdp()
            org = rg.ok("POST", "/organizations", {"name": "Acme"})["id"]
            conn, sp = setup_saml_connection(rg, org, idp.metadata, mappings=[])
            assert f'entityID="{rg.base}/saml/metadata/{conn}"' in sp, sp[:400]
            assert f'Location="{rg.base}/saml/acs/{conn}"' in sp
            assert "X509Certificate" in sp
            st, _, _ = rg.public("GET", "/saml/metadata/conn_01HZZZZZZZZZZZZZZZZZZZZZZZ")
            assert st == 404, st

    @test
    def test_metadata_upload_lint_fail_closed_keeps_previous():
        with LoginServer() as rg:
            idp = FixtureIdp()
            org, conn = draft_connection(rg)
            # before any metadata, the connection (a draft) cannot start a login
            st, _, body = rg.public("GET", f"/login?organization={org}")
            assert st == 503 and "connection_draft" in body, (st, body[:300])
            st, info = rg.api("PUT", f"/connections/{conn}/metadata", idp.metadata,
                              {"Content-Type": "application/samlmetadata+xml"})
            assert st == 200, (st, info)
            assert info["entity_id"] == "https://idp.fixture.rolegate.test/metadata", info
            assert info["sso"] and info["sso"][0]["location"] == idp.sso, info
            assert info["certificates"] and info["certificates"][0]["not_after"], info
            n_updates = len(rg.events("connection.updated"))
            assert n_updates >= 1, "the upload emits connection.updated (R26)"
            bad = [
                (idp.metadata.replace('use="signing"', 'use="encryption"'), None),
                (idp.metadata.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                                      "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]>"),
                 None),
                (re.sub(r"<md:SingleSignOnService[^>]*/>", "", idp.metadata), None),
                ("not xml at all", None),
                (idp.metadata.replace('entityID="https://idp.fixture.rolegate.test/metadata"',
                                      ""), None),
            ]
            for xml, _ in bad:
                st, e = rg.api("PUT", f"/connections/{conn}/metadata", xml,
                               {"Content-Type": "application/xml"})
                assert st == 422, (st, e, xml[:200])
                assert e["code"] == "invalid_metadata", (e, xml[:200])
                assert e["errors"] and e["errors"][0]["field"], (e, xml[:200])
            assert len(rg.events("connection.updated")) == n_updates
            # the connection kept the metadata it had: a login still starts
            st, hd, _ = rg.public("GET", f"/login?organization={org}")
            assert st == 302 and hd["location"].startswith(idp.sso), st
            st, e = rg.api("PUT", f"/connections/{conn}/metadata", "x",
                           {"Content-Type": "text/plain"})
            assert st == 415, (st, e)
            oidc = rg.ok("POST", f"/organizations/{org}/connections",
                         {"type": "oidc", "name": "O", "issuer": "https://x.example",
                          "client_id": "c", "client_secret": "s"})["id"]
            st, e = rg.api("PUT", f"/connections/{oidc}/metadata", idp.metadata,
                           {"Content-Type": "application/xml"})
            assert st == 422 and e["code"] == "connection_not_saml", (st, e)

    @test
    def test_metadata_upload_by_url():
        with LoginServer() as rg:
            idp = FixtureIdp()
            org, conn = draft_connection(rg)
            # https is required except for loopback test IdPs with the option on
            st, e = rg.api("PUT", f"/connections/{conn}/metadata",
                           {"metadata_url": "http://example.com/metadata"})
            assert st == 422 and e["code"] == "metadata_url_insecure", (st, e)
            st, e = rg.api("PUT", f"/connections/{conn}/metadata",
                           {"metadata_url": f"http://127.0.0.1:{free_port()}/metadata"})
            assert st == 422 and e["code"] == "metadata_fetch_failed", (st, e)
            # the fixture IdP serves its metadata at /metadata
            _, sp = setup_saml_connection(rg, org, idp.metadata, mappings=[])
            idp.start(sp)
            try:
                st, info = rg.api("PUT", f"/connections/{conn}/metadata",
                                  {"metadata_url": f"http://127.0.0.1:{idp.port}/metadata"})
                assert st == 200, (st, info)
                assert info["metadata_url"].endswith("/metadata"), info
                assert info["entity_id"] == "https://idp.fixture.rolegate.test/metadata"
            finally:
                idp.stop()


if __name__ == "__main__":
    _register_tests()
    run_all()
