#!/usr/bin/env python3
"""/auth, /logout, /.well-known/jwks.json and POST /sessions over real
sockets (issue 4). Run directly, it runs its own tests: every rejection of
the acceptance list is its own 401 test (signature tampered, alg none, HS256
with the public key as secret, alg not matching the key, expired, iat in the
future, wrong iss, unknown kid, revoked sid, garbage cookie, two cookies),
plus the 200 headers, the require_* 403s, logout, the trusted-proxy login
redirect and the admin-issued sessions. Imported, it provides the helpers
the other test_auth_*.py files use (setup_member, forge, b64u, ...).

Forged tokens are signed with rolegate's own private key (read from the
test's key directory) so each one differs from a valid token in exactly one
respect; a forged token with nothing wrong is accepted (the control test),
which shows the 401s come from the one defect, not from the forging."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import run_all, Rolegate  # noqa: E402

# register the tests below only when this file is the one being run: the
# other test_auth_*.py files import it for its helpers alone
test = harness.test if __name__ == "__main__" else (lambda fn: fn)

MS = "/user_management/organization_memberships"
COOKIE = "rolegate"          # base_url is http in the tests
SYSTEM_PY = "/usr/bin/python3"  # Debian's python, where python3-jwcrypto lives


# ---- JOSE helpers -------------------------------------------------------------

def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parts(token):
    h, p, s = token.split(".")
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p)), s


def der_to_raw(der, size=32):
    """ECDSA DER SEQUENCE{INTEGER r, INTEGER s} → JOSE R||S."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n]
        out += int.from_bytes(v, "big").to_bytes(size, "big")
        i += 2 + n
    return out


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def s_twin(raw):
    """The same ECDSA signature with s replaced by n - s (also valid)."""
    return raw[:32] + (P256_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")


def es256_sign(pem_path, data):
    """Low-S (issue 11 item 14: rolegate takes only s <= n/2)."""
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pem_path], input=data,
                         capture_output=True, check=True).stdout
    raw = der_to_raw(der)
    return raw if int.from_bytes(raw[32:], "big") <= P256_N // 2 else s_twin(raw)


def jws(header, payload, sign):
    """sign: bytes → signature bytes (or None for an empty signature)."""
    h = b64u(json.dumps(header, separators=(",", ":")))
    p = b64u(json.dumps(payload, separators=(",", ":")))
    signing_input = f"{h}.{p}".encode()
    sig = sign(signing_input) if sign else b""
    return f"{h}.{p}.{b64u(sig)}"


class Keys:
    """rolegate's active key, read from the test's key directory."""

    def __init__(self, rg):
        d = os.path.join(rg.dir, "var", "keys")
        with open(os.path.join(d, "active")) as f:
            self.kid = f.read().strip()
        self.pem = os.path.join(d, self.kid + ".pem")
        assert os.path.exists(self.pem), self.pem

    def sign(self, data):
        return es256_sign(self.pem, data)


def forge(rg, keys, claims_from, **changes):
    """A token like claims_from (a dict of claims), changed by `changes`
    (value None deletes the claim), signed by rolegate's own key. Header
    keys via header={...}."""
    header = {"alg": "ES256", "typ": "JWT", "kid": keys.kid}
    header.update(changes.pop("header", {}))
    payload = dict(claims_from)
    for k, v in changes.items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    return jws(header, payload, keys.sign)


def spki_pem_from_jwk(jwk):
    """PEM SubjectPublicKeyInfo of a P-256 JWK (what an attacker would use
    as an HMAC secret in the alg-confusion attack)."""
    prefix = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
    der = prefix + b"\x04" + b64u_dec(jwk["x"]) + b64u_dec(jwk["y"])
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


# ---- admin API setup ----------------------------------------------------------

def ok(res, *want):
    st, _, body = res
    assert st in want, (st, body)
    return body


def setup_member(rg, perms=("reports:view", "users:view"), role="auditor",
                 email="alice@example.com", org_name="Acme"):
    """Permissions, an environment role holding them, an organization, a
    user and a membership with that role. Returns a dict of ids."""
    for p in perms:
        ok(rg.admin("POST", "/authorization/permissions", {"slug": p, "name": p[:48]}), 201)
    ok(rg.admin("POST", "/authorization/roles", {"slug": role, "name": role}), 201)
    ok(rg.admin("PUT", f"/authorization/roles/{role}/permissions",
                {"permissions": list(perms)}), 200)
    org = ok(rg.admin("POST", "/organizations", {"name": org_name}), 201)
    user = ok(rg.admin("POST", "/user_management/users", {"email": email}), 201)
    m = ok(rg.admin("POST", MS, {"user_id": user["id"], "organization_id": org["id"],
                                 "role_slug": role}), 201)
    return {"org": org["id"], "user": user["id"], "om": m["id"], "role": role,
            "perms": sorted(perms), "email": email}


def new_session(rg, om, reason="support ticket 42"):
    return ok(rg.admin("POST", "/sessions", {"organization_membership_id": om,
                                             "reason": reason}), 201)


def auth(rg, token=None, query="", headers=None, cookie=None, method="GET"):
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = cookie
    elif token is not None:
        h["Cookie"] = f"{COOKIE}={token}"
    return rg.public(method, "/auth" + query, headers=h)


def expect_401(rg, token, code=None, **kw):
    st, h, body = auth(rg, token, **kw)
    assert st == 401, (st, body)
    assert h.get("cache-control") == "no-store", h
    assert isinstance(body, dict) and set(body) == {"code"}, body
    if code:
        assert body["code"] == code, body
    return body


def cookie_len(token, lifetime=8 * 3600):
    """Length of the Set-Cookie value rolegate builds for token (http)."""
    return len(f"{COOKIE}={token}; Path=/; Max-Age={lifetime}; HttpOnly; SameSite=Lax")


# ---- one server for most tests ------------------------------------------------

_shared = {}


def shared():
    """A rolegate with one member and one admin-issued session, reused by
    the tests that do not change its configuration."""
    if not _shared:
        rg = Rolegate()
        try:
            ids = setup_member(rg)
            s = new_session(rg, ids["om"])
        except BaseException:
            rg.__exit__(AssertionError, None, None)   # kill it, keep its files
            raise
        _, claims, _ = parts(s["token"])
        _shared.update(rg=rg, ids=ids, session=s, token=s["token"], claims=claims,
                       keys=Keys(rg))
    return _shared


# ---- tests ----------------------------------------------------------------------

@test
def test_R24_valid_session_gets_identity_headers():
    S = shared()
    rg, ids, token = S["rg"], S["ids"], S["token"]
    st, h, body = auth(rg, token)
    assert st == 200, (st, body)
    assert h["x-rolegate-user"] == ids["user"], h
    assert h["x-rolegate-email"] == ids["email"], h
    assert h["x-rolegate-org"] == ids["org"], h
    assert h["x-rolegate-role"] == ids["role"], h
    assert h["x-rolegate-roles"] == ids["role"], h
    assert h["x-rolegate-permissions"] == ",".join(ids["perms"]), h
    assert h["x-rolegate-session"] == token, "X-Rolegate-Session must be the token"
    assert h.get("cache-control") == "no-store", h
    # nginx auth_request keeps the original method: POST is answered too
    st, h2, _ = auth(rg, token, method="POST")
    assert st == 200 and h2["x-rolegate-user"] == ids["user"], st


@test
def test_R24_admin_session_claims_and_shape():
    S = shared()
    s, claims, ids = S["session"], S["claims"], S["ids"]
    assert s["object"] == "session" and s["id"].startswith("session_"), s
    assert set(s) == {"object", "id", "token", "expires_at"}, s
    assert claims["sid"] == s["id"] and claims["sub"] == ids["user"], claims
    assert claims["org_id"] == ids["org"] and claims["role"] == ids["role"], claims
    assert claims["roles"] == [ids["role"]] and claims["permissions"] == ids["perms"], claims
    assert claims["act"] == {"sub": "admin"}, claims
    assert claims["iss"] == f"http://127.0.0.1:{S['rg'].public_port}", claims
    # issue 13: the token lives token_lifetime (default 5 min) and /auth
    # refreshes it; the session (expires_at) ends lifetime (8 h) after its start
    assert claims["exp"] - claims["iat"] == 5 * 60, claims
    assert claims["auth_time"] == claims["iat"], claims
    assert claims.get("jti"), claims
    exp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(claims["auth_time"] + 8 * 3600))
    assert s["expires_at"].startswith(exp), (s["expires_at"], exp)


@test
def test_forged_control_token_is_accepted():
    # the forging helper signs a token rolegate accepts: so each 401 below
    # comes from its one defect
    S = shared()
    t = forge(S["rg"], S["keys"], S["claims"], jti="control-1")
    st, h, body = auth(S["rg"], t)
    assert st == 200, (st, body)
    assert h["x-rolegate-user"] == S["ids"]["user"]


@test
def test_401_no_cookie():
    S = shared()
    expect_401(S["rg"], None, "no_session")


@test
def test_401_signature_tampered():
    S = shared()
    h, p, s = S["token"].split(".")
    sig = bytearray(b64u_dec(s))
    sig[10] ^= 0x01
    expect_401(S["rg"], f"{h}.{p}.{b64u(bytes(sig))}", "token_bad_signature")
    # payload changed, signature of the original kept
    claims = dict(S["claims"], roles=["admin"], role="admin")
    p2 = b64u(json.dumps(claims, separators=(",", ":")))
    expect_401(S["rg"], f"{h}.{p2}.{s}", "token_bad_signature")


@test
def test_issue11_item14_high_s_twin_401():
    # the real session token's signature with s -> n - s: a valid ECDSA
    # signature of the same input, so a second string for one session
    S = shared()
    h, p, s = S["token"].split(".")
    raw = b64u_dec(s)
    low = int.from_bytes(raw[32:], "big") <= P256_N // 2
    hi = s_twin(raw) if low else raw
    expect_401(S["rg"], f"{h}.{p}.{b64u(hi)}", "token_bad_signature")
    assert low, "rolegate signs low-S"
    st, _, body = auth(S["rg"], S["token"])
    assert st == 200, (st, body)
    # non-canonical base64url of the very same signature: padding, trailing bits
    expect_401(S["rg"], f"{h}.{p}.{s}==")
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    odd = s[:-1] + alpha[alpha.index(s[-1]) | 1]
    expect_401(S["rg"], f"{h}.{p}.{odd}", "token_malformed")


@test
def test_401_alg_none():
    S = shared()
    for header in ({"alg": "none", "typ": "JWT", "kid": S["keys"].kid},
                   {"alg": "none", "typ": "JWT"},
                   {"alg": "None", "kid": S["keys"].kid}):
        t = jws(header, S["claims"], None)
        expect_401(S["rg"], t)
        # and with the real signature attached
        assert t.endswith(".")
        expect_401(S["rg"], t + S["token"].split(".")[2])


@test
def test_401_hs256_signed_with_the_public_key():
    S = shared()
    st, _, jwks = S["rg"].public("GET", "/.well-known/jwks.json")
    assert st == 200
    jwk = next(k for k in jwks["keys"] if k["kid"] == S["keys"].kid)
    pem = spki_pem_from_jwk(jwk)
    secrets = [pem.encode(), pem.strip().encode(), json.dumps(jwk).encode(),
               b64u_dec(jwk["x"]) + b64u_dec(jwk["y"])]
    for secret in secrets:
        t = jws({"alg": "HS256", "typ": "JWT", "kid": S["keys"].kid}, S["claims"],
                lambda d: hmac.new(secret, d, hashlib.sha256).digest())
        body = expect_401(S["rg"], t)
        assert body["code"] == "token_alg_mismatch", body


@test
def test_401_header_alg_not_matching_the_key():
    S = shared()
    # a genuine ES256 signature under a header that claims another alg
    for alg in ("RS256", "ES384", "ES512", "PS256", "es256"):
        t = forge(S["rg"], S["keys"], S["claims"], header={"alg": alg})
        expect_401(S["rg"], t, "token_alg_mismatch")


@test
def test_401_expired():
    S = shared()
    now = int(time.time())
    t = forge(S["rg"], S["keys"], S["claims"], iat=now - 7200, exp=now - 3600)
    expect_401(S["rg"], t, "token_expired")
    # exp missing or not an integer is no better
    expect_401(S["rg"], forge(S["rg"], S["keys"], S["claims"], exp=None))
    expect_401(S["rg"], forge(S["rg"], S["keys"], S["claims"], exp=str(now + 3600)))


@test
def test_401_iat_in_the_future_beyond_skew():
    S = shared()
    now = int(time.time())
    t = forge(S["rg"], S["keys"], S["claims"], iat=now + 3600, exp=now + 7200)
    expect_401(S["rg"], t, "token_not_yet_valid")
    # within the skew (60 s) it is accepted: the check is the skew, not zero
    t = forge(S["rg"], S["keys"], S["claims"], iat=now + 5, exp=now + 3600)
    assert auth(S["rg"], t)[0] == 200


@test
def test_401_wrong_iss():
    S = shared()
    for iss in ("https://evil.example", S["claims"]["iss"] + "/", ""):
        expect_401(S["rg"], forge(S["rg"], S["keys"], S["claims"], iss=iss))
    expect_401(S["rg"], forge(S["rg"], S["keys"], S["claims"], iss="https://evil.example"),
               "token_wrong_issuer")


@test
def test_401_unknown_kid():
    S = shared()
    # a real signature by rolegate's key, under a kid it does not have
    expect_401(S["rg"], forge(S["rg"], S["keys"], S["claims"], header={"kid": "nope"}),
               "token_unknown_kid")
    # a second key, with its own kid, that rolegate never saw
    with tempfile.TemporaryDirectory() as d:
        other = os.path.join(d, "other.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", other], check=True,
                       capture_output=True)
        t = jws({"alg": "ES256", "typ": "JWT", "kid": "A" * 43}, S["claims"],
                lambda d: es256_sign(other, d))
        expect_401(S["rg"], t, "token_unknown_kid")
        # no kid at all
        t = jws({"alg": "ES256", "typ": "JWT"}, S["claims"], S["keys"].sign)
        expect_401(S["rg"], t)


@test
def test_401_garbage_cookie():
    S = shared()
    for junk in ("garbage", "a.b.c", "...", "eyJhbGciOiJFUzI1NiJ9..", "%00%ff",
                 S["token"] + "x", S["token"].replace(".", "", 1), "x" * 20000):
        expect_401(S["rg"], junk)
    expect_401(S["rg"], None, cookie=f"{COOKIE}=")


@test
def test_401_two_cookies():
    S = shared()
    t = S["token"]
    expect_401(S["rg"], None, "duplicate_session_cookie", cookie=f"{COOKIE}={t}; {COOKIE}={t}")
    expect_401(S["rg"], None, "duplicate_session_cookie",
               cookie=f"other=1; {COOKIE}=junk; {COOKIE}={t}")
    # a cookie of another name beside ours is fine
    assert auth(S["rg"], None, cookie=f"other=1; {COOKIE}={t}")[0] == 200


@test
def test_403_require_role_permission_organization():
    S = shared()
    rg, ids, t = S["rg"], S["ids"], S["token"]
    q = urllib.parse.quote
    good = [f"?require_role={ids['role']}",
            f"?require_permission={q(ids['perms'][0])}",
            f"?require_permission={q(ids['perms'][0])}&require_permission={q(ids['perms'][1])}",
            f"?organization={ids['org']}",
            f"?require_role={ids['role']}&organization={ids['org']}"]
    for query in good:
        st, _, body = auth(rg, t, query=query)
        assert st == 200, (query, st, body)
    bad = [("?require_role=admin", "role_required"),
           (f"?require_role={ids['role']}&require_role=admin", "role_required"),
           ("?require_permission=billing:edit", "permission_required"),
           (f"?require_permission={q(ids['perms'][0])}&require_permission=x", "permission_required"),
           ("?organization=org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "organization_mismatch")]
    for query, code in bad:
        st, h, body = auth(rg, t, query=query)
        assert st == 403 and body == {"code": code}, (query, st, body)
        assert h.get("cache-control") == "no-store"
        assert "x-rolegate-user" not in h, h


@test
def test_jwks_serves_the_public_key_with_cache_header():
    S = shared()
    st, h, jwks = S["rg"].public("GET", "/.well-known/jwks.json")
    assert st == 200, st
    assert h["cache-control"] == "public, max-age=300", h
    assert h["content-type"].startswith("application/json"), h
    k = jwks["keys"][0]
    assert k["kid"] == S["keys"].kid and k["kty"] == "EC" and k["crv"] == "P-256", k
    assert k["alg"] == "ES256" and k["use"] == "sig", k
    assert "d" not in k, "the private part must never be published"
    # the key directory was created at first start: 0700, the key 0600
    kdir = os.path.dirname(S["keys"].pem)
    assert os.stat(kdir).st_mode & 0o777 == 0o700, oct(os.stat(kdir).st_mode)
    assert os.stat(S["keys"].pem).st_mode & 0o777 == 0o600, oct(os.stat(S["keys"].pem).st_mode)


VERIFY_SCRIPT = r"""
import json, sys
from jwcrypto import jwk, jwt
jwks = jwk.JWKSet.from_json(sys.argv[1])
tok = jwt.JWT(jwt=sys.argv[2], key=jwks, algs=["ES256"])
print(tok.claims)
"""


@test
def test_token_verifies_with_jwcrypto_against_jwks():
    S = shared()
    st, _, jwks = S["rg"].public("GET", "/.well-known/jwks.json")
    r = subprocess.run([SYSTEM_PY, "-c", VERIFY_SCRIPT, json.dumps(jwks), S["token"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-1500:]
    claims = json.loads(r.stdout)
    assert claims["sid"] == S["session"]["id"] and claims["act"] == {"sub": "admin"}, claims
    # the same independent check refuses a tampered token (the check is real)
    h, p, s = S["token"].split(".")
    bad = f"{h}.{b64u(json.dumps(dict(S['claims'], sub='mallory')))}.{s}"
    r = subprocess.run([SYSTEM_PY, "-c", VERIFY_SCRIPT, json.dumps(jwks), bad],
                       capture_output=True, text=True)
    assert r.returncode != 0, "jwcrypto accepted a tampered token"


@test
def test_401_revoked_sid_after_logout():
    S = shared()
    rg = S["rg"]
    s = new_session(rg, S["ids"]["om"], "logout test")
    t = s["token"]
    assert auth(rg, t)[0] == 200          # cached as verified
    st, h, _ = rg.public("POST", "/logout", headers={"Cookie": f"{COOKIE}={t}"})
    assert st == 302 and h["location"] == "/signed-out", (st, h)   # issue 11 item 5
    sc = h["set-cookie"]
    assert sc.startswith(f"{COOKIE}=;") and "Max-Age=0" in sc and "HttpOnly" in sc, sc
    assert "Path=/" in sc and "SameSite=Lax" in sc, sc
    expect_401(rg, t, "token_revoked")
    # another token of the same sid (forged with the real key) is revoked too
    claims = parts(t)[1]
    expect_401(rg, forge(rg, S["keys"], claims, jti="other"), "token_revoked")
    # other sessions are untouched
    assert auth(rg, S["token"])[0] == 200


@test
def test_logout_get_needs_same_origin():
    S = shared()
    rg = S["rg"]
    base = f"http://127.0.0.1:{rg.public_port}"
    refused = [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
               {"Origin": "https://evil.example"}, {"Origin": base + ".evil.example"},
               {"Referer": "https://evil.example/x"}, {"Referer": base + "@evil/"}, {}]
    s = new_session(rg, S["ids"]["om"], "logout get")
    t = s["token"]
    for hdrs in refused:
        st, _, body = rg.public("GET", "/logout", headers=dict(hdrs, Cookie=f"{COOKIE}={t}"))
        assert st == 403 and body == {"code": "logout_cross_site"}, (hdrs, st, body)
    assert auth(rg, t)[0] == 200, "a refused GET /logout must not revoke"
    allowed = [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
               {"Origin": base}, {"Referer": base + "/app/page"}]
    for hdrs in allowed:
        s = new_session(rg, S["ids"]["om"], "logout get ok")
        st, h, _ = rg.public("GET", "/logout",
                             headers=dict(hdrs, Cookie=f"{COOKIE}={s['token']}"))
        assert st == 302 and "Max-Age=0" in h["set-cookie"], (hdrs, st, h)
        expect_401(rg, s["token"], "token_revoked")


@test
def test_logout_without_session_still_clears_and_redirects():
    S = shared()
    st, h, _ = S["rg"].public("POST", "/logout", headers={"Cookie": f"{COOKIE}=junk"})
    assert st == 302 and "Max-Age=0" in h["set-cookie"], (st, h)
    assert h.get("x-rolegate-revoked") == "0"
    # a forged token (bad signature) must not revoke the sid it names
    h0, p0, s0 = S["token"].split(".")
    sig = bytearray(b64u_dec(s0))
    sig[5] ^= 0xFF
    st, h, _ = S["rg"].public("POST", "/logout",
                              headers={"Cookie": f"{COOKIE}={h0}.{p0}.{b64u(bytes(sig))}"})
    assert st == 302 and h.get("x-rolegate-revoked") == "0", h
    assert auth(S["rg"], S["token"])[0] == 200


@test
def test_sessions_create_validation():
    S = shared()
    rg, om = S["rg"], S["ids"]["om"]
    cases = [({"reason": "x"}, 422, "organization_membership_id"),
             ({"organization_membership_id": om}, 422, "reason"),
             ({"organization_membership_id": om, "reason": ""}, 422, "reason"),
             ({"organization_membership_id": om, "reason": "r" * 201}, 422, "reason"),
             ({"organization_membership_id": om, "reason": 5}, 422, "reason"),
             ({"organization_membership_id": 7, "reason": "x"}, 422,
              "organization_membership_id"),
             ({"organization_membership_id": "om_01HZZZZZZZZZZZZZZZZZZZZZZZ", "reason": "x"},
              404, "organization_membership_id")]
    for body, want, field in cases:
        st, _, e = rg.admin("POST", "/sessions", body)
        assert st == want, (body, st, e)
        assert any(x.get("field") == field for x in e["errors"]), (body, e)
    assert rg.admin("POST", "/sessions", {"organization_membership_id": om,
                                          "reason": "r" * 200})[0] == 201
    assert rg.admin("POST", "/sessions", {"organization_membership_id": om,
                                          "reason": "é" * 200})[0] == 201
    # the admin listener only, and only with the key
    assert rg.admin("POST", "/sessions", {"organization_membership_id": om, "reason": "x"},
                    key=False)[0] == 401
    assert rg.public("POST", "/sessions", {"organization_membership_id": om,
                                           "reason": "x"})[0] in (404, 405)


@test
def test_R26_session_created_event_without_token():
    S = shared()
    rg = S["rg"]
    s = new_session(rg, S["ids"]["om"], "event check")
    st, _, page = rg.admin("GET", "/events?limit=100")
    assert st == 200, page
    evs = [e for e in page["data"] if e["event"] == "session.created"]
    after = page["list_metadata"]["after"]
    while after:
        page = rg.admin("GET", f"/events?limit=100&after={after}")[2]
        evs += [e for e in page["data"] if e["event"] == "session.created"]
        after = page["list_metadata"]["after"]
    mine = [e for e in evs if e["data"].get("id") == s["id"]]
    assert len(mine) == 1, evs
    d = mine[0]["data"]
    assert d["reason"] == "event check" and d["organization_membership_id"] == S["ids"]["om"]
    assert d["user_id"] == S["ids"]["user"] and d["organization_id"] == S["ids"]["org"], d
    assert s["token"] not in json.dumps(mine[0]), "the token must not be in the event"
    assert s["token"] not in rg.log_text(), "the token must not be logged"


def forwarded(uri="/app/page?x=1&y=2", host="app.example", proto="https"):
    return {"X-Forwarded-Proto": proto, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri}


@test
def test_trusted_proxy_gets_login_redirect():
    with Rolegate(config={"server": {"trusted_proxies": "127.0.0.1"}}) as rg:
        ids = setup_member(rg)
        t = new_session(rg, ids["om"])["token"]
        base = f"http://127.0.0.1:{rg.public_port}"
        st, h, _ = auth(rg, None, query="?redirect=1", headers=forwarded())
        assert st == 302, st
        loc = urllib.parse.urlsplit(h["location"])
        assert f"{loc.scheme}://{loc.netloc}{loc.path}" == base + "/login", h["location"]
        rt = urllib.parse.parse_qs(loc.query)["return_to"]
        assert rt == ["https://app.example/app/page?x=1&y=2"], rt
        # the header switch works the same; an invalid token redirects too
        st, h, _ = auth(rg, "garbage", headers=dict(forwarded(), **{"X-Rolegate-Redirect": "1"}))
        assert st == 302 and "return_to=" in h["location"], (st, h)
        # same origin as rolegate: a relative return_to
        st, h, _ = auth(rg, None, query="?redirect=1",
                        headers=forwarded("/x", f"127.0.0.1:{rg.public_port}", "http"))
        assert st == 302, st
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        assert q["return_to"] == ["/x"], q
        # without the switch: a plain 401
        assert auth(rg, None, headers=forwarded())[0] == 401
        # a valid session: 200, never a redirect; a 403 stays a 403
        assert auth(rg, t, query="?redirect=1", headers=forwarded())[0] == 200
        st, _, body = auth(rg, t, query="?redirect=1&require_role=admin", headers=forwarded())
        assert st == 403 and body == {"code": "role_required"}, (st, body)


@test
def test_untrusted_peer_forwarded_headers_ignored():
    with Rolegate(config={"server": {"trusted_proxies": "10.9.8.7,192.168.0.0/16"}}) as rg:
        for hdrs in (forwarded(), dict(forwarded(), **{"X-Rolegate-Redirect": "1"})):
            st, h, body = auth(rg, None, query="?redirect=1", headers=hdrs)
            assert st == 401 and "location" not in h, (st, h)
            assert body == {"code": "no_session"}, body
    with Rolegate() as rg:   # no trusted proxies at all
        st, h, _ = auth(rg, None, query="?redirect=1", headers=forwarded())
        assert st == 401 and "location" not in h, (st, h)


if __name__ == "__main__":
    try:
        run_all()
    finally:
        if _shared:
            _shared["rg"].__exit__(None, None, None)
