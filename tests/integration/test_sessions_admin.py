#!/usr/bin/env python3
"""Issue 13: the server-side record of sessions in the admin API.
GET /user_management/organization_memberships/{id}/sessions lists a
membership's sessions (written in the login's own transaction, or with the
admin session's event); DELETE /sessions/{id} revokes one on every instance
(revocation set + Redis) with a session.revoked event (R26); /logout marks
the record revoked too. Bad input: a clear error and nothing changed."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Rolegate  # noqa: E402
from test_auth_common import MS, auth, new_session, ok, parts, setup_member  # noqa: E402
import test_redis_instances as ri  # noqa: E402

del harness._tests[:]   # the imported modules' tests are theirs to run
test = harness.test


def events(rg, name):
    body = ok(rg.admin("GET", "/events?limit=100"), 200)
    return [e for e in body["data"] if e["event"] == name]


@test
def test_admin_sessions_listed_and_revoked_with_event():
    with Rolegate() as rg:
        ids = setup_member(rg)
        s1 = new_session(rg, ids["om"], "ticket 1")
        s2 = new_session(rg, ids["om"], "ticket 2")
        lst = ok(rg.admin("GET", f"{MS}/{ids['om']}/sessions"), 200)
        assert lst["object"] == "list", lst
        got = {s["id"]: s for s in lst["data"]}
        assert set(got) == {s1["id"], s2["id"]}, lst
        one = got[s1["id"]]
        assert one["object"] == "session" and one["state"] == "active", one
        assert one["organization_membership_id"] == ids["om"] and one["user_id"] == ids["user"]
        assert one["organization_id"] == ids["org"] and one["actor"] == "admin", one
        assert one["revoked_at"] is None and one["connection_id"] is None, one
        assert one["expires_at"][:19] == s1["expires_at"][:19], (one, s1)
        # revoke one: 200, revoked, its token refused, the other still works
        r = ok(rg.admin("DELETE", f"/sessions/{s1['id']}"), 200)
        assert r["state"] == "revoked" and r["revoked_at"], r
        st, _, body = auth(rg, s1["token"])
        assert st == 401 and body["code"] == "token_revoked", (st, body)
        assert auth(rg, s2["token"])[0] == 200
        ev = events(rg, "session.revoked")
        assert len(ev) == 1 and ev[0]["data"]["id"] == s1["id"], ev
        assert "token" not in ev[0]["data"], ev
        # again: the same answer, no second event
        r2 = ok(rg.admin("DELETE", f"/sessions/{s1['id']}"), 200)
        assert r2["revoked_at"] == r["revoked_at"], (r, r2)
        assert len(events(rg, "session.revoked")) == 1
        # bad input: clear errors, nothing changed (read back)
        st, _, body = rg.admin("DELETE", "/sessions/session_nope")
        assert st == 404, (st, body)
        st, _, body = rg.admin("GET", f"{MS}/om_nope/sessions")
        assert st == 404, (st, body)
        st, _, body = rg.admin("GET", f"{MS}/{ids['om']}/sessions?limit=0")
        assert st == 422 and body["errors"][0]["field"] == "limit", (st, body)
        lst = ok(rg.admin("GET", f"{MS}/{ids['om']}/sessions"), 200)
        states = sorted(s["state"] for s in lst["data"])
        assert states == ["active", "revoked"], lst
        # without the admin key: 401
        st, _, _ = rg.admin("DELETE", f"/sessions/{s2['id']}", key="wrong-key-wrong-key")
        assert st == 401, st
        assert auth(rg, s2["token"])[0] == 200


@test
def test_login_writes_the_record_and_revoke_reaches_every_instance():
    with ri.deployment() as (pair, org, conn, sp, idp):
        a, b = pair.a, pair.b
        br, st, hd, _ = ri.login_via(a, a, org, "alice@example.com", ["engineering"])
        assert st == 302, st
        name, value = ri.session_cookie(br)
        sid = parts(value)[1]["sid"]
        assert ri.auth_cookie(b, name, value) == 200
        oms = ok(a.admin("GET", f"{MS}?organization_id={org}"), 200)["data"]
        assert len(oms) == 1, oms
        lst = ok(b.admin("GET", f"{MS}/{oms[0]['id']}/sessions"), 200)["data"]
        assert len(lst) == 1 and lst[0]["id"] == sid, lst
        assert lst[0]["connection_id"] == conn and lst[0]["idp_subject"], lst
        assert lst[0]["actor"] is None, lst
        t0 = time.monotonic()
        ok(a.admin("DELETE", f"/sessions/{sid}"), 200)
        ri.wait_until(lambda: ri.auth_cookie(b, name, value) == 401, 5,
                      "revocation on instance B")
        print(f"  revoked on A, refused on B after {time.monotonic() - t0:.2f} s")
        assert ri.auth_cookie(a, name, value) == 401


@test
def test_logout_marks_the_record_revoked():
    """Plain /logout ends the record too: the admin list shows the session
    revoked, with a session.revoked event of reason "logout"; the other
    session of the membership stays active; a token without a record (or a
    forged one) changes nothing."""
    from test_auth_common import COOKIE
    with Rolegate() as rg:
        ids = setup_member(rg)
        s1 = new_session(rg, ids["om"], "ticket 1")
        s2 = new_session(rg, ids["om"], "ticket 2")
        st, hd, _ = rg.public("POST", "/logout", headers={"Cookie": f"{COOKIE}={s1['token']}"})
        assert st == 302 and hd.get("x-rolegate-revoked") == "1", (st, hd)
        got = {s["id"]: s for s in ok(rg.admin("GET", f"{MS}/{ids['om']}/sessions"),
                                       200)["data"]}
        assert got[s1["id"]]["state"] == "revoked" and got[s1["id"]]["revoked_at"], got
        assert got[s2["id"]]["state"] == "active" and got[s2["id"]]["revoked_at"] is None, got
        ev = events(rg, "session.revoked")
        assert len(ev) == 1 and ev[0]["data"]["id"] == s1["id"], ev
        assert ev[0]["data"].get("reason") == "logout", ev
        # logging out again: already revoked, no second event
        rg.public("POST", "/logout", headers={"Cookie": f"{COOKIE}={s1['token']}"})
        assert len(events(rg, "session.revoked")) == 1
        # a garbage cookie: nothing revoked, nothing written
        st, hd, _ = rg.public("POST", "/logout", headers={"Cookie": f"{COOKIE}=a.b.c"})
        assert st == 302 and hd.get("x-rolegate-revoked") == "0", (st, hd)
        assert len(events(rg, "session.revoked")) == 1
        assert auth(rg, s2["token"])[0] == 200


if __name__ == "__main__":
    harness.run_all()
