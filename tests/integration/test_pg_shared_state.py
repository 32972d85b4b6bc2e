#!/usr/bin/env python3
"""Issue 15: two rolegate instances A and B on ONE PostgreSQL database and no
Redis share what Redis would carry between them: pending login state, the
SAML replay cache and the OIDC back-channel logout jti cache are rows of the
database (src/store/shared_state.c: insert-if-absent for an id, delete-and-
return for a state). Each test talks to both instances over real sockets:
  - a SAML login started at A (GET /login) is finished at B (ACS POST); the
    same POST again at A is refused (the pending request was taken, on B:
    saml_in_response_to_mismatch), and a response B accepted is refused at
    A as saml_replay (its assertion id is in the database);
  - an OIDC login started at A is finished at B (state, nonce and PKCE
    verifier read from the database); its callback again at A is refused
    (login_state_unknown);
  - a back-channel logout token accepted at A is refused at B as
    oidc_logout_token_replayed, and the session it ended is refused at B;
  - both instances log event=shared_state_store, neither
    event=shared_state_local (test_pg_notify.py checks the whole line); a
    taken state leaves no row.
Always run against a real PostgreSQL: outside tests/with-postgres this
file runs itself under it."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402
harness.on_postgres(__file__)
from harness import wait_until  # noqa: E402
from test_saml_common import Browser, mint, reason_of, roles_of  # noqa: E402
from test_redis_instances import (acs_on, idp_answer, saml_setup,  # noqa: E402
                                  start_login)
from test_pg_notify import Pair  # noqa: E402
from test_oidc_logout import Env as OidcEnv, cookie_header, code_of  # noqa: E402

del harness._tests[:]   # the imported modules' tests are theirs to run
test = harness.test


def rows(p, where="TRUE"):
    db = p.db.rsplit("/", 1)[1]
    return int(harness.pg_sql(db, f"SELECT count(*) FROM shared_state WHERE {where}"))


@test
def test_saml_login_started_at_A_finished_at_B_then_replays_refused_at_A():
    with Pair() as p:
        org, conn, sp, idp = saml_setup(p, allow_idp_initiated=True)
        try:
            # SP-initiated: the pending request (request id, RelayState) was
            # written by A, B takes it
            b = Browser()
            action, fields = idp_answer(b, start_login(p.a, b, org), "alice@example.com",
                                        ["engineering"])
            state = b.jar["rolegate_state"]
            assert rows(p, "k LIKE '%state:%'") >= 1, "A's pending login is not in the database"
            st, hd, data = b.post_form(acs_on(p.b, action), fields)
            assert st == 302 and Browser.location(hd) == "/app", (st, reason_of(data))
            assert roles_of(b, p.b) == ["member"] and roles_of(b, p.a) == ["member"]
            assert p.b.failures(conn) == [], p.b.failures(conn)
            assert rows(p, "k LIKE '%state:%'") == 0, "a taken login state left a row"
            # the same POST (and state cookie) at A: the request was taken
            before = p.a.memberships(org)
            b2 = Browser()
            b2.jar["rolegate_state"] = state
            st, _, data = b2.post_form(acs_on(p.a, action), fields)
            assert st == 403 and reason_of(data) == "saml_in_response_to_mismatch", \
                (st, reason_of(data))
            assert p.a.memberships(org) == before and "rolegate" not in b2.jar
            # an assertion B accepted is a replay at A
            resp = mint(sp, idp.md_path, user="ian@example.com", groups=["engineering"])
            st, _, data = Browser().post_form(f"{p.b.base}/saml/acs/{conn}",
                                              {"SAMLResponse": resp})
            assert st == 302, (st, reason_of(data))
            before = p.a.memberships(org)
            st, _, data = Browser().post_form(f"{p.a.base}/saml/acs/{conn}",
                                              {"SAMLResponse": resp})
            assert st == 403 and reason_of(data) == "saml_replay", (st, reason_of(data))
            assert p.a.memberships(org) == before
            assert rows(p, "k LIKE '%replay:%'") >= 2
            f = p.a.failures(conn)
            assert f and f[-1]["data"]["reason"] == "saml_replay", f[-1:]
            for rg in (p.a, p.b):
                text = rg.log_text()
                assert "event=shared_state_store reason=no_redis" in text, text[-2000:]
                assert "event=shared_state_local" not in text, text[-2000:]
        finally:
            idp.stop()


@test
def test_oidc_login_started_at_A_finished_at_B_and_logout_token_replayed_at_B():
    with OidcEnv(pair=Pair()) as env:
        a, bi = env.pair.a, env.pair.b
        b = Browser()
        cb = env.to_callback(b, "alice")      # state, nonce, PKCE written by A
        assert cb.startswith(a.base + "/oidc/callback"), cb
        assert rows(env.pair, "k LIKE '%state:%'") >= 1, "A's pending login is not in the database"
        state = b.jar["rolegate_state"]
        st, hd, data = b.get(cb.replace(a.base, bi.base, 1))
        assert st == 302 and Browser.location(hd) == "/app", (st, reason_of(data))
        assert roles_of(b, bi) == ["admin"] and roles_of(b, a) == ["admin"]
        # the callback again at A, with its state cookie: taken on B
        before = a.memberships(env.org)
        b2 = Browser()
        b2.jar["rolegate_state"] = state
        st, _, data = b2.get(cb)
        assert st == 400 and reason_of(data) == "login_state_unknown", (st, reason_of(data))
        assert a.memberships(env.org) == before and "rolegate" not in b2.jar
        # a back-channel logout token: accepted at A, its jti a replay at B
        cookie = {"Cookie": cookie_header(b)}
        assert bi.public("GET", "/auth", headers=cookie)[0] == 200
        sid = env.sessions()[0]["idp_session"]
        tok = env.signed(sid=sid)
        st, _, data = env.post_token(tok, a)
        assert st == 200 and data == {"revoked": 1}, (st, data)
        st, _, data = env.post_token(tok, bi)
        assert st == 400 and code_of(data) == "oidc_logout_token_replayed", (st, data)
        wait_until(lambda: bi.public("GET", "/auth", headers=cookie)[0] == 401, 1.0,
                   "B to refuse the session the token ended")
        assert tok not in a.log_text() + bi.log_text(), "a logout token must never be logged"


if __name__ == "__main__":
    harness.run_all()
