"""Issue 15: two rolegate instances A and B on ONE PostgreSQL database and no
Redis. The cache layer's messages (role-table and membership invalidations,
revoked sessions, R30 user revocations) travel over PostgreSQL LISTEN/NOTIFY:
the store sends a write's invalidations inside its own transaction, B's
listener thread applies them like the Redis subscriber would. Each test
talks to both instances over real sockets:
  - a role's permissions changed through A reach /auth on B within 1 s
    (B had the table in-process, TTL 300 s), a mapping change the next
    SAML login on B (that one holds without the channel too: a login reads
    the table version in its own transaction);
  - a logout and an admin revoke on A are refused by /auth on B within 1 s;
  - a role change, a membership deletion and a SCIM deactivation on A
    reach B's /auth (refresh, or at once for the deactivation);
  - a session revoked and a user deprovisioned while B was down are loaded
    from the store when B starts;
  - PostgreSQL stopped and started: B's listener reports it
    (event=notify_listen, rolegate_store_channel_up), /auth keeps serving
    issued sessions, the listener reconnects and a change after that still
    reaches B; no password in any log.
Always run against a real PostgreSQL: outside tests/with-postgres this
file runs itself under it."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402
harness.on_postgres(__file__)
from harness import wait_until  # noqa: E402
from test_auth_common import MS, auth, new_session, ok, parts, setup_member  # noqa: E402
from test_saml_common import (Browser, FixtureIdp, LoginServer, roles_of,  # noqa: E402
                              setup_roles, setup_saml_connection)
from test_redis_instances import (BIG, idp_answer, omitted_session,  # noqa: E402
                                  perms_on, scim_user, session_cookie, start_login)
from test_session_refresh import FAST, refreshed  # noqa: E402

del harness._tests[:]   # the imported modules' tests are theirs to run
test = harness.test

PASSWORD = "notify-secret-pw"


def listens(rg):
    return rg.log_text().count("event=notify_listen state=up")


class Pair:
    """Instances A and B of one deployment on one PostgreSQL database (A's,
    with a password in the URL: trust auth ignores it, the logs must not
    show it), one key directory, one SAML SP key pair, one base URL. No
    Redis."""

    def __init__(self, config=None):
        base = {}
        for sec, opts in (config or {}).items():
            base.setdefault(sec, {}).update(opts)
        db = harness.pg_database_new()
        self.db = db
        url = db.replace("postgresql://rolegate@", f"postgresql://rolegate:{PASSWORD}@")
        base.setdefault("store", {})["database"] = url
        self.a = self.b = None
        try:
            self.a = LoginServer(config=base)
            d = self.a.dir
            shared = {k: dict(v) for k, v in base.items()}
            shared.setdefault("server", {})["base_url"] = self.a.base
            shared.setdefault("session", {})["keys_dir"] = os.path.join(d, "var", "keys")
            shared.setdefault("saml", {}).update(
                sp_key_file=os.path.join(d, "var", "saml", "sp.key"),
                sp_cert_file=os.path.join(d, "var", "saml", "sp.crt"))
            self.b = LoginServer(config=shared)
            wait_until(lambda: listens(self.a) >= 1 and listens(self.b) >= 1, 10,
                       "both listeners up")
        except BaseException:
            self.close(False)
            raise

    def close(self, ok_=True):
        for rg in (self.b, self.a):
            if rg is None:
                continue
            if ok_:
                text = rg.log_text() + rg.stderr_text() + rg.stdout_text()
                assert PASSWORD not in text, "the database password is in a log"
            rg.__exit__(None if ok_ else Exception, None, None)
        harness.pg_database_drop(self.db)

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.close(et is None)
        return False


def auth_status(rg, token):
    return auth(rg, token)[0]


@test
def test_start_logs_listener_and_where_the_shared_state_lives():
    with Pair() as p:
        for rg in (p.a, p.b):
            text = rg.log_text()
            assert "event=notify_listen state=up backend=postgresql" in text, text[-2000:]
            # where the shared state lives without Redis is said at start:
            # the database (test_pg_shared_state.py), nothing per instance
            assert ("event=shared_state_store reason=no_redis store=postgresql" in text and
                    "saml_replay_cache=store oidc_logout_jti_cache=store login_state=store"
                    in text), text[-2000:]
            assert "event=shared_state_local" not in text, text[-2000:]


@test
def test_role_change_on_A_reaches_auth_on_B_within_1s():
    with Pair(config={"session": {"oversize": "omit_permissions"}}) as p:
        token = omitted_session(p)
        assert perms_on(p.b, token) == sorted(BIG)      # B now holds the table
        assert perms_on(p.b, token) == sorted(BIG)      # from its in-process copy
        ok(p.a.admin("PUT", "/authorization/roles/power/permissions",
                     {"permissions": list(BIG[:3])}), 200)
        t0 = time.monotonic()
        wait_until(lambda: perms_on(p.b, token) == sorted(BIG[:3]), 1.0,
                   "B's /auth to use A's role change")
        print(f"  role changed on A, seen by /auth on B after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms", flush=True)


@test
def test_mapping_change_on_A_used_by_login_on_B():
    idp = FixtureIdp()
    with Pair() as p:
        setup_roles(p.a)
        org = p.a.ok("POST", "/organizations", {"name": "Acme"})["id"]
        conn, sp = setup_saml_connection(p.a, org, idp.metadata)
        idp.start(sp)
        try:
            def login_b(user):
                # started and finished on B: the login state is per instance
                b = Browser()
                action, fields = idp_answer(b, start_login(p.b, b, org), user, ["engineering"])
                st, _, data = b.post_form(p.b.base + "/saml/acs/" + conn, fields)
                assert st == 302, (st, data[:300])
                return b
            assert roles_of(login_b("carol@example.com"), p.b) == ["member"]
            p.a.ok("PUT", f"/connections/{conn}/role_mappings",
                   [{"idp_group": "engineering", "role_slug": "admin"}])
            t0 = time.monotonic()
            b = login_b("carol@example.com")
            assert roles_of(b, p.b) == ["admin"], roles_of(b, p.b)
            print(f"  mapping changed on A, next login on B took "
                  f"{(time.monotonic() - t0) * 1000:.0f} ms and got the new role", flush=True)
        finally:
            idp.stop()


@test
def test_logout_and_admin_revoke_on_A_refused_by_auth_on_B_within_1s():
    with Pair() as p:
        ids = setup_member(p.a)
        s1, s2, s3 = (new_session(p.a, ids["om"], f"revoke {i}") for i in range(3))
        for s in (s1, s2, s3):
            assert auth_status(p.b, s["token"]) == 200      # verified and cached on B
        st, hd, _ = p.a.public("POST", "/logout",
                               headers={"Cookie": f"rolegate={s1['token']}"})
        assert st in (200, 302) and hd.get("x-rolegate-revoked") == "1", (st, hd)
        t0 = time.monotonic()
        wait_until(lambda: auth_status(p.b, s1["token"]) == 401, 1.0,
                   "B to refuse the session logged out on A")
        print(f"  logout on A, /auth on B refuses after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms", flush=True)
        ok(p.a.admin("DELETE", f"/sessions/{s2['id']}"), 200)
        t0 = time.monotonic()
        wait_until(lambda: auth_status(p.b, s2["token"]) == 401, 1.0,
                   "B to refuse the session revoked through A's admin API")
        assert auth(p.b, s2["token"])[2]["code"] == "token_revoked"
        print(f"  DELETE /sessions on A, /auth on B refuses after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms", flush=True)
        assert auth_status(p.b, s3["token"]) == 200         # the others live on


@test
def test_membership_changes_on_A_reach_auth_and_refresh_on_B():
    """B serves refreshes from its in-process copy of the membership state;
    a role change through A drops it ("~members" over NOTIFY), so B's next
    refresh carries the new role; a membership deleted on A is 401
    membership_removed at B's next refresh; a SCIM deactivation on A is
    refused by /auth on B within 1 s (R30 over NOTIFY)."""
    with Pair(config={"session": dict(FAST)}) as p:
        ids = setup_member(p.a)
        ok(p.a.admin("POST", "/authorization/roles", {"slug": "biller", "name": "Biller"}), 201)
        t1, t2 = (new_session(p.a, ids["om"], f"two {i}")["token"] for i in range(2))
        time.sleep(1.2)
        n1 = refreshed(p.b, t1)                              # B's copy: auditor
        n2 = refreshed(p.b, t2)
        assert parts(n2)[1]["roles"] == ["auditor"]
        ok(p.a.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
        time.sleep(1.05)                                     # refresh_after
        new = refreshed(p.b, n1)
        assert parts(new)[1]["roles"] == ["biller"], parts(new)[1]
        # deleted on A: B's next refresh ends the session
        st, _, _ = p.a.admin("DELETE", f"{MS}/{ids['om']}")
        assert st in (200, 202, 204), st
        time.sleep(1.05)
        st, _, body = auth(p.b, n2)
        assert st == 401 and body["code"] == "membership_removed", (st, body)
        # SCIM: a directory user's session, refreshed on B, then deactivated on A
        h, base, u = scim_user(p, ids["org"], "dora@example.com")
        oms = ok(p.a.admin("GET", f"{MS}?organization_id={ids['org']}"), 200)["data"]
        assert len(oms) == 1, oms
        tok = new_session(p.a, oms[0]["id"], "scim")["token"]
        time.sleep(1.2)
        fresh = refreshed(p.b, tok)
        assert auth_status(p.b, fresh) == 200
        st, _, _ = p.a.public("PATCH", f"{base}/Users/{u['id']}", json.dumps(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "value": {"active": False}}]}), h)
        assert st == 200, st
        t0 = time.monotonic()
        wait_until(lambda: auth_status(p.b, fresh) == 401 and auth_status(p.b, tok) == 401,
                   1.0, "B to refuse the deprovisioned user's tokens")
        print(f"  SCIM deactivation on A, refused on B after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms", flush=True)


@test
def test_revocations_made_while_B_was_down_are_loaded_at_its_start():
    """What B's listener missed (B stopped here): a session revoked on A and
    a user deprovisioned through A's SCIM endpoint. B reloads both from the
    store when its listener connects (the tokens are young: no refresh is
    due, only the revocation set can refuse them)."""
    with Pair() as p:
        ids = setup_member(p.a)
        s = new_session(p.a, ids["om"], "while down")
        h, base, u = scim_user(p, ids["org"], "dora@example.com")
        oms = ok(p.a.admin("GET", f"{MS}?organization_id={ids['org']}"), 200)["data"]
        dora = [m for m in oms if m["id"] != ids["om"]]
        assert len(dora) == 1, oms
        t = new_session(p.a, dora[0]["id"], "deprovisioned while down")
        other = new_session(p.a, ids["om"], "lives on")
        for x in (s, t, other):
            assert auth_status(p.b, x["token"]) == 200
        p.b.stop()
        ok(p.a.admin("DELETE", f"/sessions/{s['id']}"), 200)
        st, _, _ = p.a.public("PATCH", f"{base}/Users/{u['id']}", json.dumps(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "value": {"active": False}}]}), h)
        assert st == 200, st
        p.b.start()
        wait_until(lambda: "event=notify_revocations_loaded count=1 users=1" in p.b.log_text(),
                   10, "B to load the revoked session ids and the deprovisioned user")
        assert auth(p.b, s["token"])[2]["code"] == "token_revoked"
        assert auth(p.b, t["token"])[2]["code"] == "token_revoked"
        assert auth_status(p.b, other["token"]) == 200


def channel_up(rg):
    st, _, body = rg.admin("GET", "/metrics")
    assert st == 200, st
    text = body.decode() if isinstance(body, bytes) else str(body)
    for line in text.splitlines():
        if line.startswith("rolegate_store_channel_up "):
            return int(float(line.split()[-1]))
    raise AssertionError("rolegate_store_channel_up missing from /metrics")


def pg_ctl(args):
    ctl = os.environ["ROLEGATE_TEST_PG_CTL"]
    r = subprocess.run(f"{ctl} {args}", shell=True, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)


@test
def test_postgresql_restart_listener_reconnects_and_changes_still_reach_B():
    with Pair(config={"session": {"oversize": "omit_permissions"}}) as p:
        token = omitted_session(p)
        ids = setup_member(p.a, perms=("x:view",), role="xrole", email="x@example.com",
                           org_name="X")
        s = new_session(p.a, ids["om"], "after restart")
        assert perms_on(p.b, token) == sorted(BIG)
        assert auth_status(p.b, s["token"]) == 200
        n_a, n_b = listens(p.a), listens(p.b)
        assert channel_up(p.b) == 1
        pg_ctl("stop -m fast")
        wait_until(lambda: channel_up(p.b) == 0, 10, "B's channel to be reported down")
        # issued sessions keep working at /auth while the database is away
        assert auth_status(p.b, s["token"]) == 200
        pg_ctl("start")
        wait_until(lambda: "event=notify_listen state=down" in p.b.log_text(), 10,
                   "B's listener to notice the restart")
        wait_until(lambda: listens(p.b) > n_b and listens(p.a) > n_a, 15,
                   "both listeners to reconnect")
        lines = [ln for ln in p.b.log_text().splitlines() if "event=notify_listen" in ln]
        print("  " + "\n  ".join(ln[ln.index("event="):][:160] for ln in lines[-2:]),
              flush=True)
        assert channel_up(p.b) == 1
        assert perms_on(p.b, token) == sorted(BIG)     # B reads the table again
        # a change made after the restart still reaches B at once
        deadline = time.monotonic() + 10
        while True:   # A's pool reconnects at its next transaction
            st, _, body = p.a.admin("PUT", "/authorization/roles/power/permissions",
                                    {"permissions": list(BIG[:2])})
            if st == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert st == 200, (st, body)
        wait_until(lambda: perms_on(p.b, token) == sorted(BIG[:2]), 1.0,
                   "B's /auth to use a role change made after the restart")
        ok(p.a.admin("DELETE", f"/sessions/{s['id']}"), 200)
        wait_until(lambda: auth_status(p.b, s["token"]) == 401, 1.0,
                   "B to refuse a session revoked after the restart")


if __name__ == "__main__":
    harness.run_all()
