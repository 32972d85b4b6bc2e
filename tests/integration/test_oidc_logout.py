#!/usr/bin/env python3
"""Issue 13: OIDC single logout against the real npm oidc-provider
(tests/oidc-op/op.mjs, rpInitiatedLogout and backchannelLogout enabled).

RP-initiated: POST /logout revokes rolegate's session first (/auth 401 at
once), then sends the browser to the OP's end_session_endpoint with
id_token_hint (kept server-side, not in the cookie: R24), client_id,
post_logout_redirect_uri ({base}/oidc/signed-out, registered at the OP) and
state; the OP ends its session (the next login prompts again) and comes back
with the state, which rolegate takes once (a replayed or made-up state is
refused; nothing from the query is ever a redirect target).

Back-channel: ending the OP session makes the OP POST a logout_token to
/oidc/backchannel-logout/{connection}; every session of that OP sid is
revoked in the store (session.revoked, reason oidc_backchannel_logout) and
on every instance (a second instance over Redis answers 401). Hostile
tokens, each still signed by the OP's own key unless the attack is the
signature: bad signature, alg none, HS256 keyed with the OP's public key,
no events, events member not an object, a nonce, wrong aud, wrong iss, no
sid and no sub, stale iat, a replayed jti -> 400 with a stable code and
nothing revoked."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402
from test_saml_common import Browser, LoginServer, auth, roles_of  # noqa: E402
from test_oidc_login import CLIENT_ID  # noqa: E402
from test_oidc_login import Env as OidcEnv  # noqa: E402
from test_redis_instances import Redis, Pair  # noqa: E402

del harness._tests[:]   # the imported modules' tests are theirs to run
test = harness.test
MS = "/user_management/organization_memberships"
BCL = "http://schemas.openid.net/event/backchannel-logout"


class Env(OidcEnv):
    """test_oidc_login's Env (the OP, an organization, an OIDC connection
    with mappings) over a rolegate or instance A of a Redis pair, with
    rolegate's post-logout and back-channel URLs registered at the OP."""

    def __init__(self, redis=None, pair=None):
        """pair: instances A and B made by the caller (e.g. on PostgreSQL
        without Redis, test_pg_shared_state.py); redis: a Redis pair."""
        self.pair = pair or (Pair(redis) if redis else None)
        rg = self.pair.a if self.pair else LoginServer()
        super().__init__(rg=rg, op_extra=["--post-logout-redirect-uri",
                                          rg.base + "/oidc/signed-out"])
        try:
            c = self.rg.ok("GET", f"/connections/{self.conn}")
            # what the admin view says to register at the OP (item 3)
            assert c["post_logout_redirect_uri"] == self.rg.base + "/oidc/signed-out", c
            self.bcl_url = c["backchannel_logout_uri"]
            assert self.bcl_url == f"{self.rg.base}/oidc/backchannel-logout/{self.conn}", c
            self.op.admin("/__admin/client", {"backchannel_logout_uri": self.bcl_url,
                                              "backchannel_logout_session_required": True})
        except BaseException:
            self.__exit__(Exception, None, None)
            raise

    def __exit__(self, et, e, tb):
        if not self.pair:
            return super().__exit__(et, e, tb)
        if self.op:
            self.op.stop()
        self.pair.close(et is None)
        return False

    def login(self, user="alice", b=None):
        """The whole dance; returns (browser, urls visited)."""
        b = b or Browser()
        url = f"{self.rg.base}/login?organization={self.org}&login_hint={user}&return_to=/app"
        seen = []
        for _ in range(15):
            st, hd, data = b.get(url)
            seen.append(url)
            assert st in (302, 303), (url, st, data[:300])
            nxt = urllib.parse.urljoin(url, Browser.location(hd))
            if nxt.startswith(self.rg.base + "/oidc/callback"):
                st, hd, data = b.get(nxt)
                assert st == 302 and Browser.location(hd) == "/app", (st, data[:300])
                return b, seen
            url = nxt
        raise AssertionError("too many redirects")

    def sessions(self):
        oms = self.rg.memberships(self.org)
        return [s for m in oms for s in self.rg.ok("GET", f"{MS}/{m['id']}/sessions")["data"]]

    def op_logout(self, b, url):
        """The OP's logout page: confirm it (the user clicks "Yes")."""
        st, hd, data = b.get(url)
        assert st == 200, (st, data[:300])
        action, fields = Browser.form(data)
        assert action and "xsrf" in fields, data[:500]
        fields["logout"] = "yes"
        st, hd, data = b.post_form(urllib.parse.urljoin(url, action), fields)
        assert st in (302, 303), (st, data[:300])
        return Browser.location(hd)

    def post_token(self, token, rg=None):
        body = urllib.parse.urlencode({"logout_token": token}).encode()
        st, hd, data = (rg or self.rg).public(
            "POST", f"/oidc/backchannel-logout/{self.conn}", body,
            {"Content-Type": "application/x-www-form-urlencoded"})
        return st, hd, data

    def claims(self, **kw):
        now = int(time.time())
        c = {"iss": self.op.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
             "jti": secrets.token_urlsafe(12), "events": {BCL: {}}}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    def signed(self, header=None, **kw):
        return self.op.admin("/__admin/sign", {"header": header or {},
                                               "claims": self.claims(**kw)})["token"]


def cookie_header(b):
    return "; ".join(f"{k}={v}" for k, v in b.jar.items() if k == "rolegate")


def b64u(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def code_of(data):
    return data.get("code") if isinstance(data, dict) else None


@test
def test_rp_initiated_logout_ends_the_op_session_and_rolegates():
    with Env() as env:
        b, _ = env.login("alice")
        assert roles_of(b, env.rg) == ["admin"]
        rec = env.sessions()
        assert len(rec) == 1 and rec[0]["idp_session"], rec   # the OP's sid kept (item 2)
        # R24: the ID token is not in the cookie (the cookie is our JWT only)
        assert len(b.jar["rolegate"]) < 2000 and b.jar["rolegate"].count(".") == 2
        # control: while the OP session lives, a new login does not prompt
        b, seen = env.login("alice", b)
        assert not any("/interaction/" in u for u in seen), seen
        rolegate_cookie = cookie_header(b)
        st, hd, _ = b.request("POST", f"{env.rg.base}/logout")
        assert st == 302, st
        loc = Browser.location(hd)
        assert loc.startswith(env.op.issuer + "/session/end?"), loc
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
        assert q["client_id"] == CLIENT_ID, q
        assert q["post_logout_redirect_uri"] == env.rg.base + "/oidc/signed-out", q
        assert len(q["state"]) >= 20 and q["id_token_hint"].count(".") == 2, q
        hint = json.loads(base64.urlsafe_b64decode(q["id_token_hint"].split(".")[1] + "=="))
        assert hint["sid"] == rec[0]["idp_session"] and hint["sub"] == "alice", hint
        # rolegate's session ended first, before the browser reaches the OP
        st, _, _ = env.rg.public("GET", "/auth", headers={"Cookie": rolegate_cookie})
        assert st == 401, st
        back = env.op_logout(b, loc)
        assert back.startswith(env.rg.base + "/oidc/signed-out?"), back
        assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["state"] == q["state"]
        st, hd, _ = b.get(back)
        assert st == 302 and Browser.location(hd) == "/signed-out", (st, hd)
        # the state is one-time; made-up ones and other targets are refused
        for url in (back, env.rg.base + "/oidc/signed-out?state=nope",
                    env.rg.base + "/oidc/signed-out?state=x&post_logout_redirect_uri=https://evil.example"):
            st, hd, data = b.get(url)
            assert st == 400 and b"oidc_logout_state_unknown" in data, (url, st)
            assert "location" not in hd, hd
        # the OP session is gone: the next login prompts again
        b, seen = env.login("alice", b)
        assert any("/interaction/" in u for u in seen), seen
        assert roles_of(b, env.rg) == ["admin"]
        log = env.rg.log_text()
        assert "event=oidc_logout_request" in log and "hint=1" in log
        assert q["id_token_hint"] not in log, "the ID token must never be logged"


@test
def test_backchannel_logout_reaches_a_second_instance_over_redis():
    r = Redis()
    try:
        with Env(redis=r) as env:
            a, bi = env.pair.a, env.pair.b
            b, _ = env.login("alice")
            cookie = {"Cookie": cookie_header(b)}
            assert bi.public("GET", "/auth", headers=cookie)[0] == 200
            sid = env.sessions()[0]["idp_session"]
            # the OP session ends at the OP itself (no visit to rolegate):
            # the OP posts the logout token to instance A
            st, hd, data = b.get(env.op.issuer + "/session/end")
            assert st == 200, (st, data[:200])
            env.op_logout(b, env.op.issuer + "/session/end")
            wait_until(lambda: bi.public("GET", "/auth", headers=cookie)[0] == 401, 3,
                       "instance B refuses the session")
            assert a.public("GET", "/auth", headers=cookie)[0] == 401
            rec = env.sessions()
            assert rec[0]["state"] == "revoked" and rec[0]["idp_session"] == sid, rec
            ev = a.events("session.revoked")
            assert ev and ev[-1]["data"]["reason"] == "oidc_backchannel_logout", ev[-1:]
            assert "event=oidc_backchannel_logout result=ok" in a.log_text()
    finally:
        r.kill()


@test
def test_backchannel_hostile_tokens_400_and_nothing_revoked():
    with Env() as env:
        b, _ = env.login("alice")
        cookie = {"Cookie": cookie_header(b)}
        sid = env.sessions()[0]["idp_session"]
        good = env.signed(sid=sid)
        h, p, s = good.split(".")
        flipped = s[:-2] + ("AA" if s[-2:] != "AA" else "BA")
        jwks = json.loads(Browser().get(env.op.issuer + "/jwks")[2])
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
        from cryptography.hazmat.primitives import serialization
        k = jwks["keys"][0]
        num = lambda x: int.from_bytes(base64.urlsafe_b64decode(x + "=="), "big")  # noqa: E731
        pem = RSAPublicNumbers(num(k["e"]), num(k["n"])).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        hs_in = b64u(json.dumps({"alg": "HS256", "kid": k["kid"]}).encode()) + "." + p
        hs = hs_in + "." + b64u(hmac.new(pem, hs_in.encode(), hashlib.sha256).digest())
        none = b64u(b'{"alg":"none"}') + "." + p + "."
        cases = [
            ("bad signature", f"{h}.{p}.{flipped}", "oidc_bad_signature"),
            ("alg none", none, "oidc_alg_not_allowed"),
            ("HS256 keyed with the public key", hs, "oidc_alg_not_allowed"),
            ("no events", env.signed(sid=sid, events=None), "oidc_logout_token_events"),
            ("events member not an object", env.signed(sid=sid, events={BCL: "yes"}),
             "oidc_logout_token_events"),
            ("other event", env.signed(sid=sid, events={"urn:x": {}}), "oidc_logout_token_events"),
            ("nonce present", env.signed(sid=sid, nonce="n-0S6_WzA2Mj"), "oidc_logout_token_nonce"),
            ("wrong aud", env.signed(sid=sid, aud="someone-else"), "oidc_wrong_audience"),
            ("wrong iss", env.signed(sid=sid, iss="http://127.0.0.1:1"), "oidc_wrong_issuer"),
            ("neither sid nor sub", env.signed(), "oidc_logout_token_no_subject"),
            ("stale iat", env.signed(sid=sid, iat=int(time.time()) - 3600),
             "oidc_logout_token_stale"),
            ("no jti", env.signed(sid=sid, jti=None), "oidc_logout_token_no_jti"),
            ("not a JWS", "not-a-token", "oidc_logout_token_malformed"),
        ]
        for what, tok, code in cases:
            st, hd, data = env.post_token(tok)
            assert st == 400 and code_of(data) == code, (what, st, data)
            assert hd.get("cache-control") == "no-store", (what, hd)
            assert env.rg.public("GET", "/auth", headers=cookie)[0] == 200, what
        assert env.sessions()[0]["state"] == "active"
        assert not env.rg.events("session.revoked")
        # the control: the correctly made token revokes, its replay is refused
        st, hd, data = env.post_token(good)
        assert st == 200 and data == {"revoked": 1}, (st, data)
        assert hd.get("cache-control") == "no-store", hd
        assert env.rg.public("GET", "/auth", headers=cookie)[0] == 401
        st, _, data = env.post_token(good)
        assert st == 400 and code_of(data) == "oidc_logout_token_replayed", (st, data)
        # a token naming only sub ends every session of that OP user
        b2, _ = env.login("bob")
        b3, _ = env.login("bob")
        st, _, data = env.post_token(env.signed(sub="bob"))
        assert st == 200 and data == {"revoked": 2}, (st, data)
        for x in (b2, b3):
            assert auth(x, env.rg)[0] == 401
        # an unknown connection is 404, two tokens are 400
        st, _, _ = env.rg.public("POST", "/oidc/backchannel-logout/conn_nope",
                                 b"logout_token=x",
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 404, st
        log = env.rg.log_text()
        assert good not in log and p not in log, "a logout token must never be logged"


if __name__ == "__main__":
    harness.run_all()
