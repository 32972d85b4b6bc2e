#!/usr/bin/env python3
"""SAML logins over HTTP with the fixture IdP (idp-fixtures/, lasso): the whole
browser flow (GET /login -> IdP -> POST /saml/acs -> 302 + session cookie ->
/auth shows the roles, R15-R17, R24) and the rejections at HTTP level, each
with a read-back showing no membership change and an authentication.failed
event carrying its reason (R26). The library-level cases of tests/cases/saml
are not repeated here."""
import base64
import os
import re
import socket
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_saml_common import (Browser, SamlEnv, reason_of, roles_of, auth,  # noqa: E402
                              ATTACKER_KEY, FIX)


def refused(env, b, status, data, reason, before):
    """The common read-back of a rejection."""
    got = reason_of(data)
    assert got == reason, (status, got, data[:400])
    assert b"<html" in data and b"SAMLResponse" not in data
    assert env.rg.memberships(env.org) == before, "a rejected login changed memberships"
    f = env.rg.failures(env.conn)
    assert f and f[-1]["data"]["reason"] == reason, f[-1:] if f else f
    assert f[-1]["data"]["organization_id"] == env.org
    assert "rolegate" not in b.jar, "no session cookie after a rejection"


def acs_refused(env, b, resp, status, reason, before):
    """resp posted to the ACS is answered with status, then the read-back
    of a rejection."""
    st, _, data = env.acs(b, resp)
    assert st == status, (st, data[:300])
    refused(env, b, st, data, reason, before)


@test
def test_R16_saml_full_browser_flow_single_role():
    with SamlEnv() as env:
        b = Browser()
        st, hd, data = env.login(b, groups=("engineering", "admins", "unmapped"))
        assert st == 302, (st, data[:400])
        assert Browser.location(hd) == "/app"
        cookies = hd["set-cookie"]
        assert any(c.startswith("rolegate=") and "HttpOnly" in c for c in cookies), cookies
        assert "rolegate_state" not in b.jar, "the state cookie is cleared"
        # R16 single-role: the highest-priority mapped role (admin > member)
        st, h = auth(b, env.rg)
        assert st == 200, st
        assert h["x-rolegate-roles"] == "admin", h
        assert h["x-rolegate-org"] == env.org
        assert "users:manage" in h["x-rolegate-permissions"], h
        ms = env.rg.memberships(env.org)
        assert len(ms) == 1 and ms[0]["role_source"] == "idp", ms
        assert [r["slug"] for r in ms[0]["roles"]] == ["admin"]
        ok = env.rg.events("authentication.succeeded")
        assert ok and ok[-1]["data"]["connection_id"] == env.conn, ok
        # the login record is readable by the admin
        st, recs = env.rg.api("GET", f"/connections/{env.conn}/logins")
        assert st == 200 and recs["data"][-1]["result"] == "succeeded", (st, recs)
        rec = recs["data"][-1]
        assert rec["roles"] == ["admin"], recs
        # issue 5: why this user got this role: subject, groups received,
        # mappings matched, role_source and the session cookie's size
        assert rec["subject"] == "alice@example.com", rec
        assert rec["groups"] == ["engineering", "admins", "unmapped"], rec
        assert rec["groups_received"] == 3, rec
        assert {"idp_group": "admins", "role_slug": "admin"} in rec["mappings"], rec
        assert all(m["idp_group"] != "unmapped" for m in rec["mappings"]), rec
        assert rec["role_source"] == "idp", rec
        session_cookie = [c for c in cookies if c.startswith("rolegate=")][0]
        assert rec["token_size"] == len(session_cookie), (rec["token_size"], len(session_cookie))
        assert 0 < rec["token_size"] <= 4096, rec
        # one log line per login, never the assertion
        log = env.rg.log_text()
        assert "event=login result=ok protocol=saml" in log, log[-2000:]
        assert "SAMLResponse" not in log and "PHNhbWxw" not in log


@test
def test_R24_saml_session_too_large_refused_and_rolled_back():
    """The session is issued inside the login's transaction: a refused one
    (R24 reject) leaves no user, membership or role change behind."""
    with SamlEnv(config={"session": {"oversize": "reject"}}) as env:
        big = [f"reports.section-{i:03d}:view-every-detail-of-it"[:44] for i in range(90)]
        for p in big:
            env.rg.ok("POST", "/authorization/permissions", {"slug": p, "name": p[:48]})
        env.rg.ok("PUT", "/authorization/roles/admin/permissions", {"permissions": big})
        before = env.rg.memberships(env.org)
        users = env.rg.ok("GET", "/user_management/users")["data"]
        b = Browser()
        st, _, data = env.login(b, user="huge@example.com", groups=("admins",))
        assert st == 422 and reason_of(data) == "session_too_large", (st, reason_of(data))
        assert env.rg.memberships(env.org) == before
        assert env.rg.ok("GET", "/user_management/users")["data"] == users
        st, recs = env.rg.api("GET", f"/connections/{env.conn}/logins")
        assert recs["data"][-1]["result"] == "failed", recs
        assert recs["data"][-1]["reason"] == "session_too_large", recs
        # a user whose role fits still logs in
        st, _, data = env.login(Browser(), user="small@example.com", groups=("viewers",))
        assert st == 302, (st, data[:300])


@test
def test_R16_saml_multiple_roles_every_mapped_role():
    with SamlEnv(multiple=True) as env:
        b = Browser()
        st, _, data = env.login(b, groups=("viewers", "engineering"))
        assert st == 302, (st, data[:300])
        assert roles_of(b, env.rg) == ["member", "viewer"]


@test
def test_R17_saml_second_login_updates_roles_and_default_without_match():
    with SamlEnv() as env:
        b = Browser()
        assert env.login(b, groups=("viewers",))[0] == 302
        assert roles_of(b, env.rg) == ["viewer"]
        b2 = Browser()
        assert env.login(b2, groups=("admins",))[0] == 302
        assert roles_of(b2, env.rg) == ["admin"]
        ms = env.rg.memberships(env.org)
        assert len(ms) == 1 and ms[0]["roles"] == [{"slug": "admin"}], ms
        b3 = Browser()
        assert env.login(b3, user="nobody@example.com", groups=("unknown",))[0] == 302
        assert roles_of(b3, env.rg) == ["member"]   # R17: the default role


@test
def test_saml_wrong_signature_refused_no_change():
    with SamlEnv() as env:
        b = Browser()
        before = env.rg.memberships(env.org)
        # signed by another key that claims the IdP's entityID
        resp = env.mint(env.start(b), key=ATTACKER_KEY, user="mallory@example.com",
                        groups=["admins"])
        acs_refused(env, b, resp, 403, "saml_signature_invalid", before)
        # a tampered NameID in a genuine response
        loc = env.start(b)
        _, fields = env.idp_form(b, loc, user="alice@example.com", groups=("admins",))
        xml = base64.b64decode(fields["SAMLResponse"]).replace(b"alice@example.com",
                                                                b"mallory@example.co")
        acs_refused(env, b, xml, 403, "saml_signature_invalid", before)


@test
def test_saml_replayed_response_refused():
    with SamlEnv() as env:
        b = Browser()
        loc = env.start(b)
        action, fields = env.idp_form(b, loc, groups=("viewers",))
        assert b.post_form(action, fields)[0] == 302
        before = env.rg.memberships(env.org)
        # the same POST again, from another browser: the pending login was
        # taken once, so the response now answers nothing
        b2 = Browser()
        st, _, data = b2.post_form(action, fields)
        assert st in (400, 403), (st, data[:300])
        assert reason_of(data) in ("saml_unsolicited", "saml_replay",
                                   "saml_in_response_to_mismatch"), reason_of(data)
        assert env.rg.memberships(env.org) == before
        # ... and again with a fresh pending login of its own
        b3 = Browser()
        env.start(b3)
        st, _, data = b3.post_form(action, fields)
        assert st in (400, 403), (st, data[:300])
        assert reason_of(data) in ("saml_replay", "saml_in_response_to_mismatch"), reason_of(data)
        refused(env, b3, st, data, reason_of(data), before)


@test
def test_saml_replay_cache_refuses_second_use_idp_initiated():
    with SamlEnv(allow_idp_initiated=True) as env:
        resp = env.mint(user="ian@example.com", groups=["engineering"])
        b = Browser()
        st, hd, data = env.acs(b, resp)
        assert st == 302 and Browser.location(hd) == "/", (st, data[:300])
        assert roles_of(b, env.rg) == ["member"]
        before = env.rg.memberships(env.org)
        acs_refused(env, Browser(), resp, 403, "saml_replay", before)


@test
def test_saml_unsolicited_refused_when_not_allowed():
    with SamlEnv() as env:
        before = env.rg.memberships(env.org)
        resp = env.mint(user="ian@example.com", groups=["admins"])
        acs_refused(env, Browser(), resp, 403, "saml_unsolicited", before)


@test
def test_saml_mismatched_in_response_to_refused():
    with SamlEnv() as env:
        before = env.rg.memberships(env.org)
        b = Browser()
        env.start(b)   # a pending login bound to this browser's cookie
        resp = env.mint(in_response_to="_0123456789abcdef", user="alice@example.com",
                        groups=["admins"])
        acs_refused(env, b, resp, 403, "saml_in_response_to_mismatch", before)


@test
def test_saml_oversized_body_413_before_reading():
    with SamlEnv() as env:
        before = env.rg.memberships(env.org)
        s = socket.create_connection(("127.0.0.1", env.rg.public_port), timeout=10)
        try:
            s.sendall((f"POST /saml/acs/{env.conn} HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: 300000\r\n\r\n").encode())
            got = s.recv(4096)   # answered from Content-Length: no body sent
        finally:
            s.close()
        assert got.startswith(b"HTTP/1.1 413"), got[:200]
        assert env.rg.memberships(env.org) == before


@test
def test_saml_encrypted_rsa15_refused_no_change():
    """An assertion encrypted for our key whose AES key is transported with
    RSA PKCS#1 v1.5: refused before any decryption, nothing changes; the same
    login with RSA-OAEP (the fixture's choice) goes through."""
    with SamlEnv() as env:
        b = Browser()
        before = env.rg.memberships(env.org)
        resp = env.mint(env.start(b), user="erin@example.com", groups=["admins"], encrypt=True)
        xml = base64.b64decode(resp)
        assert b"EncryptedAssertion" in xml and b"xmlenc#rsa-oaep-mgf1p" in xml, xml[:300]
        bad = xml.replace(b"xmlenc#rsa-oaep-mgf1p", b"xmlenc#rsa-1_5", 1)
        acs_refused(env, b, bad, 403, "saml_encryption_algorithm_forbidden", before)
        resp = env.mint(env.start(b), user="erin@example.com", groups=["admins"], encrypt=True)
        st, _, data = env.acs(b, resp)
        assert st == 302, (st, data[:300])
        assert roles_of(b, env.rg) == ["admin"]


@test
def test_saml_doctype_refused():
    with SamlEnv() as env:
        before = env.rg.memberships(env.org)
        b = Browser()
        loc = env.start(b)
        _, fields = env.idp_form(b, loc, groups=("admins",))
        xml = base64.b64decode(fields["SAMLResponse"])
        xml = re.sub(rb"^(<\?xml[^>]*\?>)?", rb'<?xml version="1.0"?><!DOCTYPE r ['
                     rb'<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>', xml, 1)
        acs_refused(env, b, xml, 400, "saml_dtd_forbidden", before)


@test
def test_saml_missing_response_and_unknown_connection():
    with SamlEnv() as env:
        b = Browser()
        st, _, data = b.post_form(f"{env.rg.base}/saml/acs/{env.conn}", {"RelayState": "x"})
        assert st == 400 and reason_of(data) == "saml_malformed", (st, data[:300])
        st, _, data = b.post_form(f"{env.rg.base}/saml/acs/conn_01HZZZZZZZZZZZZZZZZZZZZZZZ",
                                  {"SAMLResponse": "eA=="})
        assert st == 404 and reason_of(data) == "connection_not_found", (st, data[:300])
        st, recs = env.rg.api("GET", f"/connections/{env.conn}/logins")
        assert st == 200 and recs["data"][-1]["result"] == "failed", recs
        assert recs["data"][-1]["reason"] == "saml_malformed", recs


@test
def test_saml_new_metadata_rebuilds_connection_without_restart():
    with SamlEnv() as env:
        b = Browser()
        assert env.login(b, groups=("viewers",))[0] == 302
        # the IdP rolled its key: upload its new metadata (same entityID)
        with open(os.path.join(FIX, "attacker.crt")) as f:
            cert = "".join(ln.strip() for ln in f if not ln.startswith("-----"))
        new_md = re.sub(r"<ds:X509Certificate>[^<]*</ds:X509Certificate>",
                        f"<ds:X509Certificate>{cert}</ds:X509Certificate>", env.idp.metadata)
        # issue 11 item 7: a new signing certificate is confirmed explicitly
        st, info = env.rg.api("PUT", f"/connections/{env.conn}/metadata"
                              "?confirm_certificate_change=true", new_md,
                              {"Content-Type": "application/xml"})
        assert st == 200, (st, info)
        b2 = Browser()
        old = env.mint(env.start(b2), groups=["admins"])
        st, _, data = env.acs(b2, old)
        assert st == 403 and reason_of(data) == "saml_signature_invalid", (st, data[:300])
        new = env.mint(env.start(b2), key=ATTACKER_KEY, groups=["admins"])
        st, _, data = env.acs(b2, new)
        assert st == 302, (st, data[:300])
        assert roles_of(b2, env.rg) == ["admin"]


@test
def test_saml_acs_checks_the_built_connection_in_the_login_transaction():
    """Issue 15: the ACS verifies with the connection as built and the
    login's transaction checks the stored row: a row changed since (on this
    instance or any other) verifies the response again against the new row,
    in both directions, and a deleted one answers as an unknown one."""
    with SamlEnv(allow_idp_initiated=True) as env:
        def post(key=None, user="ian@example.com"):
            kw = {"key": key} if key else {}
            return env.acs(Browser(), env.mint(user=user, groups=["admins"], **kw))

        def loads():
            return sum(1 for ln in env.rg.log_lines()
                       if "event=connection_loaded" in ln and env.conn in ln)
        assert post()[0] == 302
        n = loads()
        assert post()[0] == 302 and loads() == n, "a current build is used as it is"
        # a change of the row that keeps the response valid: logged in
        # through the rebuilt connection
        env.rg.ok("PATCH", f"/connections/{env.conn}", {"name": "Renamed IdP"})
        st, _, data = post()
        assert st == 302, (st, data[:300])
        assert loads() == n + 1
        # the IdP's new key: a response of the old key verified by the stale
        # build is refused by the new one ...
        with open(os.path.join(FIX, "attacker.crt")) as f:
            cert = "".join(ln.strip() for ln in f if not ln.startswith("-----"))
        new_md = re.sub(r"<ds:X509Certificate>[^<]*</ds:X509Certificate>",
                        f"<ds:X509Certificate>{cert}</ds:X509Certificate>", env.idp.metadata)
        q = "?confirm_certificate_change=true"
        st, info = env.rg.api("PUT", f"/connections/{env.conn}/metadata{q}", new_md,
                              {"Content-Type": "application/xml"})
        assert st == 200, (st, info)
        before = env.rg.memberships(env.org)
        st, _, data = post(user="old-key@example.com")
        assert st == 403 and reason_of(data) == "saml_signature_invalid", (st, data[:300])
        assert env.rg.memberships(env.org) == before
        assert loads() == n + 2
        assert post(key=ATTACKER_KEY)[0] == 302
        # ... and the other way: the old key back in the store, the build
        # still the new key's: its refusal checks the row, and the rebuilt
        # connection accepts the response
        st, info = env.rg.api("PUT", f"/connections/{env.conn}/metadata{q}", env.idp.metadata,
                              {"Content-Type": "application/xml"})
        assert st == 200, (st, info)
        st, _, data = post()
        assert st == 302, (st, data[:300])
        assert loads() == n + 3
        # gone: answered as an unknown connection, as before it was built
        st, info = env.rg.api("DELETE", f"/connections/{env.conn}")
        assert st in (200, 202, 204), (st, info)
        st, _, data = post()
        assert st == 404 and reason_of(data) == "connection_not_found", (st, data[:300])


@test
def test_saml_plain_http_binds_by_in_response_to_without_cookie():
    """Plain http: the cross-site POST carries no Lax cookie; the pending
    login is found by the response's InResponseTo (README-login.md)."""
    with SamlEnv() as env:
        b = Browser()
        loc = env.start(b)
        action, fields = env.idp_form(b, loc, groups=("engineering",))
        b.jar.pop("rolegate_state")   # what a browser does not send
        st, hd, data = b.post_form(action, fields)
        assert st == 302 and Browser.location(hd) == "/app", (st, data[:300])
        assert roles_of(b, env.rg) == ["member"]


if __name__ == "__main__":
    run_all()
