#!/usr/bin/env python3
"""Issue 11, security and connection items over real HTTP with the fixture
IdP: item 6 (require_mapped_group: a group allow-list per connection), item 13
(identity attributes are data: CR/LF from the IdP, and an /auth header that
cannot be set), item 7 (IdP metadata whose signing certificate changes),
item 12 (one connection at its replay-cache quota never blocks another). Each refusal is read back: nothing changed, and an
authentication.failed event carries the reason."""
import base64
import json
import os
import re
import subprocess
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_saml_common import (Browser, SamlEnv, FixtureIdp, reason_of, roles_of,  # noqa: E402
                              setup_saml_connection, FIX)
from test_auth_common import Keys, forge, auth as auth_token  # noqa: E402


def login_with(env, b, user="alice@example.com", groups=("engineering",), **attrs):
    """One SP-initiated login; attrs (email, name) are what the IdP says."""
    loc = env.start(b)
    q = "&user=" + urllib.parse.quote(user) + "&groups=" + urllib.parse.quote(",".join(groups))
    for k, v in attrs.items():
        q += f"&{k}=" + urllib.parse.quote(v)
    st, _, data = b.get(loc + q)
    assert st == 200, (st, data[:300])
    action, fields = Browser.form(data)
    return b.post_form(action, fields)


def nothing_changed(env, users_before, members_before, reason):
    assert env.rg.memberships(env.org) == members_before, "a refused login changed memberships"
    assert env.rg.ok("GET", "/user_management/users")["data"] == users_before
    f = env.rg.failures(env.conn)
    assert f and f[-1]["data"]["reason"] == reason, f[-1:]


# ---- item 6 --------------------------------------------------------------------

@test
def test_issue11_item6_require_mapped_group_validated():
    with SamlEnv() as env:
        for bad in ("yes", 1, None, ["x"]):
            st, data = env.rg.api("PATCH", f"/connections/{env.conn}",
                                  {"require_mapped_group": bad})
            if bad is None:   # null removes an optional member in a PATCH
                assert st == 200, (st, data)
                continue
            assert st == 422, (bad, st, data)
            assert data["errors"][0]["field"] == "require_mapped_group", data
            assert data["code"] == "invalid_type", data
        got = env.rg.ok("GET", f"/connections/{env.conn}")
        assert not got.get("require_mapped_group"), got
        st, data = env.rg.api("POST", f"/organizations/{env.org}/connections",
                              {"type": "oidc", "name": "x", "issuer": "https://i.test",
                               "client_id": "c", "require_mapped_group": "true"})
        assert st == 422 and data["errors"][0]["field"] == "require_mapped_group", (st, data)
        env.rg.ok("PATCH", f"/connections/{env.conn}", {"require_mapped_group": True})
        got = env.rg.ok("GET", f"/connections/{env.conn}")
        assert got["require_mapped_group"] is True, got


@test
def test_issue11_item6_no_mapped_group_refused_nothing_changed():
    with SamlEnv(require_mapped_group=True) as env:
        users = env.rg.ok("GET", "/user_management/users")["data"]
        members = env.rg.memberships(env.org)
        b = Browser()
        st, _, data = env.login(b, user="outsider@example.com", groups=("sales", "unmapped"))
        assert st == 403 and reason_of(data) == "no_mapped_group", (st, reason_of(data))
        assert "rolegate" not in b.jar, "no session after a refusal"
        nothing_changed(env, users, members, "no_mapped_group")
        st, _, data = env.login(Browser(), user="nogroups@example.com", groups=())
        assert st == 403 and reason_of(data) == "no_mapped_group", (st, reason_of(data))
        nothing_changed(env, users, members, "no_mapped_group")
        # one mapped group among others lets the login through
        b = Browser()
        st, _, data = env.login(b, user="insider@example.com", groups=("sales", "viewers"))
        assert st == 302, (st, data[:300])
        assert roles_of(b, env.rg) == ["viewer"]
    # without the setting, the same login falls back to the default role (R17)
    with SamlEnv() as env:
        b = Browser()
        assert env.login(b, user="outsider@example.com", groups=("sales",))[0] == 302
        assert roles_of(b, env.rg) == ["member"]


# ---- item 13 -------------------------------------------------------------------

@test
def test_issue11_item13_email_with_crlf_refused():
    with SamlEnv() as env:
        users = env.rg.ok("GET", "/user_management/users")["data"]
        members = env.rg.memberships(env.org)
        for evil in ("alice@example.com\r\nX-Rolegate-Roles: admin", "bob@example.com\n",
                     "tab\t@example.com", "nul\x7f@example.com", "a" * 250 + "@example.com"):
            b = Browser()
            st, _, data = login_with(env, b, user="alice", email=evil)
            assert st == 400 and reason_of(data) == "identity_attribute_invalid", \
                (repr(evil), st, reason_of(data))
            assert "rolegate" not in b.jar
            nothing_changed(env, users, members, "identity_attribute_invalid")
            assert env.rg.failures(env.conn)[-1]["data"].get("message", "").find("email") >= 0
        # a group value with a line break is refused the same way
        st, _, data = login_with(env, Browser(), user="carol@example.com",
                                 groups=("viewers", "adm\r\nins"))
        assert st == 400 and reason_of(data) == "identity_attribute_invalid", (st, data[:200])
        nothing_changed(env, users, members, "identity_attribute_invalid")
        # a display name is cleaned, not refused: control characters become spaces
        b = Browser()
        st, _, data = login_with(env, b, user="dave@example.com", email="dave@example.com",
                                 name="Dave\r\nX-Evil: 1\tExample ")
        assert st == 302, (st, data[:300])
        got = [u for u in env.rg.ok("GET", "/user_management/users")["data"]
               if u["email"] == "dave@example.com"]
        assert got, "the user was stored"
        full = " ".join(x for x in (got[0].get("first_name"), got[0].get("last_name")) if x)
        assert "\r" not in full and "\n" not in full and "\t" not in full, repr(full)
        assert full.startswith("Dave") and full.endswith("Example"), repr(full)


@test
def test_issue11_item13_unsettable_auth_header_is_an_error():
    with SamlEnv() as env:
        b = Browser()
        assert env.login(b, user="erin@example.com", groups=("viewers",))[0] == 302
        token = b.jar["rolegate"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        keys = Keys(env.rg)
        ok = forge(env.rg, keys, claims, jti="control")
        st, h, _ = auth_token(env.rg, ok)
        assert st == 200 and h["x-rolegate-email"] == "erin@example.com", (st, h)
        evil = forge(env.rg, keys, claims, jti="evil",
                     email="erin@example.com\r\nX-Rolegate-Roles: admin")
        st, h, body = auth_token(env.rg, evil)
        assert st == 500 and body == {"code": "header_unsettable"}, (st, body)
        assert "x-rolegate-user" not in h and "x-rolegate-roles" not in h, h
        log = env.rg.log_text()
        assert "event=auth_header_failed header=X-Rolegate-Email" in log, log[-1500:]

# ---- item 7 --------------------------------------------------------------------

def fingerprint(crt):
    """SHA-256 of the certificate by openssl (independent of rolegate)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                          os.path.join(FIX, crt)], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("=", 1)[1]


def with_cert(md, crt):
    with open(os.path.join(FIX, crt)) as f:
        cert = "".join(ln.strip() for ln in f if not ln.startswith("-----"))
    return re.sub(r"<ds:X509Certificate>[^<]*</ds:X509Certificate>",
                  f"<ds:X509Certificate>{cert}</ds:X509Certificate>", md)


@test
def test_issue11_item7_certificate_change_needs_confirmation():
    with SamlEnv() as env:
        old_fp, new_fp = fingerprint("idp.crt"), fingerprint("attacker.crt")
        path = f"/connections/{env.conn}/metadata"
        xml = {"Content-Type": "application/xml"}
        before = env.rg.ok("GET", f"/connections/{env.conn}")
        assert before["idp_certificates_sha256"] == [old_fp], before
        n_events = len(env.rg.events("connection.updated"))
        new_md = with_cert(env.idp.metadata, "attacker.crt")
        for q in ("", "?confirm_certificate_change=false"):
            st, data = env.rg.api("PUT", path + q, new_md, xml)
            assert st == 409 and data["code"] == "certificate_change", (q, st, data)
            assert data["errors"] == [{"field": "confirm_certificate_change",
                                       "code": "certificate_change"}], data
            assert data["old_certificates_sha256"] == [old_fp], data
            assert data["new_certificates_sha256"] == [new_fp], data
            assert old_fp in data["message"] and new_fp in data["message"], data
        st, data = env.rg.api("PUT", path + "?confirm_certificate_change=maybe", new_md, xml)
        assert st == 422 and data["errors"][0]["field"] == "confirm_certificate_change", data
        # nothing changed: same metadata, no event, the old key still logs in
        assert env.rg.ok("GET", f"/connections/{env.conn}") == before
        assert len(env.rg.events("connection.updated")) == n_events
        assert env.login(Browser(), groups=("viewers",))[0] == 302
        # the same metadata again is no change: no confirmation needed
        st, data = env.rg.api("PUT", path, env.idp.metadata, xml)
        assert st == 200, (st, data)
        # confirmed: stored, and connection.updated carries both fingerprints
        st, data = env.rg.api("PUT", path + "?confirm_certificate_change=true", new_md, xml)
        assert st == 200, (st, data)
        assert data["previous_certificates_sha256"] == [old_fp], data
        ev = env.rg.events("connection.updated")[-1]["data"]
        assert ev["id"] == env.conn, ev
        assert ev["idp_certificates_sha256"] == [new_fp], ev
        assert ev["idp_previous_certificates_sha256"] == [old_fp], ev
        st, _, data = env.login(Browser(), groups=("viewers",))   # old key: refused now
        assert st == 403 and reason_of(data) == "saml_signature_invalid", (st, reason_of(data))

# ---- item 12 -------------------------------------------------------------------

@test
def test_issue11_item12_one_connection_full_never_blocks_another():
    with SamlEnv(config={"saml": {"replay_quota": 3}}) as env:
        idp2 = FixtureIdp()
        try:
            org2 = env.rg.ok("POST", "/organizations", {"name": "Other Corp"})["id"]
            conn2, sp2 = setup_saml_connection(env.rg, org2, idp2.metadata)
            idp2.start(sp2)
            for i in range(3):
                assert env.login(Browser(), user=f"u{i}@example.com")[0] == 302
            members = env.rg.memberships(env.org)
            st, _, data = env.login(Browser(), user="u3@example.com")
            assert st == 503 and reason_of(data) == "saml_replay_quota_exceeded", \
                (st, reason_of(data))
            assert env.rg.memberships(env.org) == members
            assert env.rg.failures(env.conn)[-1]["data"]["reason"] == "saml_replay_quota_exceeded"
            # the other organization's connection logs in as before
            for i in range(3):
                b = Browser()
                st, hd, data = b.get(f"{env.rg.base}/login?organization={org2}&return_to=/app")
                loc = Browser.location(hd)
                assert st == 302 and loc.startswith(idp2.sso), (st, loc)
                st, _, data = b.get(loc + f"&user=v{i}%40example.com&groups=engineering")
                action, fields = Browser.form(data)
                st, _, data = b.post_form(action, fields)
                assert st == 302, (i, st, reason_of(data))
        finally:
            idp2.stop()


if __name__ == "__main__":
    run_all()
