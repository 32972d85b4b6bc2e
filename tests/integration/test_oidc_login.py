#!/usr/bin/env python3
"""OIDC logins over HTTP with a real OpenID Provider (npm oidc-provider,
tests/oidc-op/op.mjs, started here on loopback): the whole redirect dance
with a cookie jar (GET /login -> authorize -> auto-login -> /oidc/callback ->
302 + session cookie -> /auth shows the mapped roles, R15-R17, R24), a
nested groups claim, key rotation at the OP without a restart, and the
refusals, each with its reason code and no membership change: state
missing / wrong / reused, code reused, IdP error= callback, discovery
issuer mismatch. Token-level attacks are covered by the library's tests."""
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all, ROOT, NodeHelper  # noqa: E402
from test_saml_common import (Browser, LoginServer, setup_roles, roles_of,  # noqa: E402
                              reason_of)

OP_DIR = os.path.join(ROOT, "tests", "oidc-op")
CLIENT_ID, CLIENT_SECRET = "rolegate-test", "rolegate-test-secret-0123456789"


class Op(NodeHelper):
    def __init__(self, redirect_uri, extra=()):
        super().__init__(OP_DIR, "oidc-provider", "rg-op-")
        line = self.spawn(["node", "op.mjs", "--port", "0", "--client-id", CLIENT_ID,
                           "--client-secret", CLIENT_SECRET, "--redirect-uri", redirect_uri,
                           *extra], "ready ", "OP").split()
        kv = dict(x.split("=", 1) for x in line[1:])
        self.port, self.issuer = int(kv["port"]), kv["issuer"]

    def rotate(self):
        b = Browser()
        st, _, data = b.request("POST", self.issuer + "/__admin/rotate", b"")
        assert st == 200, st
        return data

    def admin(self, path, body):
        """POST a JSON body to one of op.mjs's /__admin/ routes."""
        b = Browser()
        st, _, data = b.request("POST", self.issuer + path, json.dumps(body).encode(),
                                {"Content-Type": "application/json"})
        assert st == 200, (path, st, data[:200])
        return json.loads(data)


class Env:
    """rg: a running LoginServer to use (default: a new one); op_extra:
    more op.mjs arguments."""
    def __init__(self, multiple=False, rg=None, op_extra=(), **conn):
        self.rg = rg or LoginServer()
        self.op = None
        try:
            self.op = Op(self.rg.base + "/oidc/callback", op_extra)
            setup_roles(self.rg, multiple)
            self.org = self.rg.ok("POST", "/organizations", {"name": "Initech"})["id"]
            body = {"type": "oidc", "name": "OP", "issuer": self.op.issuer,
                    "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
            body.update(conn)
            self.conn = self.rg.ok("POST", f"/organizations/{self.org}/connections", body)["id"]
            self.rg.ok("PUT", f"/connections/{self.conn}/role_mappings",
                       [{"idp_group": "admins", "role_slug": "admin"},
                        {"idp_group": "engineering", "role_slug": "member"},
                        {"idp_group": "staff", "role_slug": "viewer"},
                        {"idp_group": "rg-admin", "role_slug": "admin"},
                        {"idp_group": "viewer", "role_slug": "viewer"}])
        except BaseException:
            self.__exit__(Exception, None, None)
            raise

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if self.op:
            self.op.stop()
        self.rg.__exit__(et, e, tb)
        return False

    def to_callback(self, b, user="alice", return_to="/app"):
        """Follows the redirects from /login to (not into) our callback."""
        url = (f"{self.rg.base}/login?organization={self.org}&login_hint={user}"
               f"&return_to={urllib.parse.quote(return_to, safe='')}")
        for _ in range(15):
            st, hd, data = b.get(url)
            assert st in (302, 303), (url, st, data[:300])
            nxt = urllib.parse.urljoin(url, Browser.location(hd))
            if nxt.startswith(self.rg.base + "/oidc/callback"):
                return nxt
            url = nxt
        raise AssertionError("too many redirects")

    def login(self, user="alice"):
        b = Browser()
        cb = self.to_callback(b, user)
        st, hd, data = b.get(cb)
        assert st == 302, (st, reason_of(data), data[:300])
        assert Browser.location(hd) == "/app"
        return b, cb

    def refused(self, b, data, reason, before, event=True):
        assert reason_of(data) == reason, (reason_of(data), data[:300])
        assert self.rg.memberships(self.org) == before, "a refused login changed memberships"
        assert "rolegate" not in b.jar
        if event:
            f = self.rg.failures(self.conn)
            assert f and f[-1]["data"]["reason"] == reason, f[-1:]


def with_param(url, **kw):
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    for k, v in kw.items():
        if v is None:
            q.pop(k, None)
        else:
            q[k] = v
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


@test
def test_R16_oidc_end_to_end_mapped_roles():
    with Env() as env:
        b, _ = env.login("alice")   # groups engineering, admins
        assert roles_of(b, env.rg) == ["admin"]
        b, _ = env.login("bob")     # groups "staff" as one string
        assert roles_of(b, env.rg) == ["viewer"]
        ms = env.rg.memberships(env.org)
        assert len(ms) == 2 and {m["role_source"] for m in ms} == {"idp"}, ms
        ok = env.rg.events("authentication.succeeded")
        assert len(ok) == 2 and ok[-1]["data"]["connection_id"] == env.conn
        log = env.rg.log_text()
        assert "event=login result=ok protocol=oidc" in log
        assert "eyJ" not in log, "no token in the log"


@test
def test_issue11_item6_oidc_require_mapped_group():
    """Issue 11 item 6 through OIDC: erin has no groups, carol's only group
    is unmapped: both refused with 403 no_mapped_group and nothing written;
    alice's groups map, so she signs in."""
    with Env(require_mapped_group=True, use_userinfo_for_groups=True) as env:
        users = env.rg.ok("GET", "/user_management/users")["data"]
        before = env.rg.memberships(env.org)
        for user in ("erin", "carol"):
            b = Browser()
            st, _, data = b.get(env.to_callback(b, user))
            assert st == 403, (user, st, reason_of(data))
            env.refused(b, data, "no_mapped_group", before)
        assert env.rg.ok("GET", "/user_management/users")["data"] == users
        b, _ = env.login("alice")
        assert roles_of(b, env.rg) == ["admin"]


@test
def test_R16_oidc_nested_groups_claim():
    with Env(multiple=True, groups_claim="realm_access.roles") as env:
        b, _ = env.login("alice")   # realm_access.roles: rg-admin, rg-viewer
        assert roles_of(b, env.rg) == ["admin"]
        b, _ = env.login("bob")     # realm_access.roles: viewer
        assert roles_of(b, env.rg) == ["viewer"]


@test
def test_oidc_state_missing_wrong_reused_refused():
    with Env() as env:
        before = env.rg.memberships(env.org)
        b = Browser()
        cb = env.to_callback(b)
        st, _, data = b.get(with_param(cb, state=None))
        assert st == 400, st
        env.refused(b, data, "oidc_state_missing", before)
        b = Browser()
        cb = env.to_callback(b)
        st, _, data = b.get(with_param(cb, state="A" * 43))
        assert st == 401 or st == 400, st
        env.refused(b, data, "oidc_state_mismatch", before)
        # no state cookie at all (another browser): refused, pending taken
        b = Browser()
        cb = env.to_callback(b)
        st, _, data = Browser().get(cb)
        assert st == 400, st
        env.refused(b, data, "login_state_missing", before)
        st, _, data = b.get(cb)     # and the real browser cannot use it now
        assert st == 400 and reason_of(data) == "login_state_unknown", st
        # reused: a completed callback replayed with its cookie
        b = Browser()
        cb = env.to_callback(b)
        cookie = b.jar["rolegate_state"]
        assert b.get(cb)[0] == 302
        before = env.rg.memberships(env.org)
        b2 = Browser()
        b2.jar["rolegate_state"] = cookie
        st, _, data = b2.get(cb)
        assert st == 400, st
        env.refused(b2, data, "login_state_unknown", before, event=False)


@test
def test_oidc_code_reused_refused():
    with Env() as env:
        _, cb1 = env.login("alice")
        before = env.rg.memberships(env.org)
        code1 = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb1).query))["code"]
        b = Browser()
        cb2 = env.to_callback(b, "bob")
        st, _, data = b.get(with_param(cb2, code=code1))
        assert st in (400, 401, 502), st
        env.refused(b, data, "oidc_token_exchange_failed", before)


@test
def test_oidc_idp_error_callback_recorded():
    with Env() as env:
        before = env.rg.memberships(env.org)
        b = Browser()
        cb = env.to_callback(b, "nobody-known")   # the OP answers error=access_denied
        assert "error=access_denied" in cb, cb
        st, _, data = b.get(cb)
        assert st == 401, st
        env.refused(b, data, "oidc_idp_error", before)
        assert b"unknown login_hint" not in data, "the IdP's description is not shown"


@test
def test_oidc_discovery_issuer_mismatch_refused():
    with Env() as env:
        # the same OP named by another host: its discovery document says
        # http://127.0.0.1:port, which is not the configured issuer
        other = env.op.issuer.replace("127.0.0.1", "localhost")
        conn = env.rg.ok("POST", f"/organizations/{env.org}/connections",
                         {"type": "oidc", "name": "OP2", "issuer": other,
                          "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})["id"]
        st, _, data = Browser().get(f"{env.rg.base}/login?organization={env.org}"
                                    f"&connection={conn}")
        assert st == 502, (st, data[:300])
        assert reason_of(data) == "oidc_issuer_mismatch", data[:300]


@test
def test_oidc_key_rotation_without_restart():
    with Env() as env:
        b, _ = env.login("alice")
        assert roles_of(b, env.rg) == ["admin"]
        env.op.rotate()
        b, _ = env.login("alice")
        assert roles_of(b, env.rg) == ["admin"]
        b, _ = env.login("bob")
        assert roles_of(b, env.rg) == ["viewer"]


if __name__ == "__main__":
    run_all()
