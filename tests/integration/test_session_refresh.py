#!/usr/bin/env python3
"""Issue 13 / R25: sessions follow the role table. A real nginx with the
shipped auth_request snippet (etc/nginx-rolegate.conf) in front of an echo
app, a real cookie jar (http.cookiejar) as the browser: a role change, a
role's permission change and a role deletion reach the browser's cookie and
the app within refresh_after, without a login. Also: idle and absolute
limits, concurrent refreshes of one token, refresh with Redis down
(degraded, not logout), the R24 oversize policy on refresh, and logout of a
refreshed session. The membership-state copy a refresh reads (issue 13):
kept until a membership write, here or on another instance (Redis), never
trusted while Redis is down, and never in the way of a revocation."""
import contextlib
import http.client
import http.cookiejar
import http.server
import json
import os
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Rolegate  # noqa: E402
from test_auth_common import (COOKIE, MS, auth, new_session, ok, parts,  # noqa: E402
                              setup_member)
from test_auth_nginx import behind_nginx, echo_app  # noqa: E402
from test_redis_instances import Redis  # noqa: E402

del harness._tests[:]   # the imported modules' tests are theirs to run
test = harness.test

FAST = {"refresh_after": "1s", "token_lifetime": "4s", "idle_timeout": "6s",
        "lifetime": "1h"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Browser:
    """A cookie jar that talks to nginx like a browser would."""

    def __init__(self, port, token):
        self.port = port
        self.jar = http.cookiejar.CookieJar()
        self.jar.set_cookie(http.cookiejar.Cookie(
            0, COOKIE, token, None, False, "127.0.0.1", False, False, "/", True, False,
            None, False, None, None, {"HttpOnly": None}))
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def get(self, path):
        """(status, response headers, app's view of X-Rolegate-* or None)."""
        try:
            r = self.opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=30)
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, None
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(data)["headers"]

    def token(self):
        for c in self.jar:
            if c.name == COOKIE:
                return c.value
        return None


def stack(fn, config=None, env=None):
    """fn(rg, nginx port, ids) with rolegate (refresh config), echo app, nginx."""
    cfg = {"session": dict(FAST)}
    for sec, opts in (config or {}).items():
        cfg.setdefault(sec, {}).update(opts)
    with echo_app() as app, Rolegate(config=cfg, env=env) as rg:
        behind_nginx(rg, app, fn, setup_member(rg), log_tail=2000)


def add_role(rg, slug, perms):
    for p in perms:
        ok(rg.admin("POST", "/authorization/permissions", {"slug": p, "name": p}), 201)
    ok(rg.admin("POST", "/authorization/roles", {"slug": slug, "name": slug}), 201)
    ok(rg.admin("PUT", f"/authorization/roles/{slug}/permissions", {"permissions": perms}), 200)


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def young(token):
    """True while token is in the wall-clock second of its iat: rolegate's
    age of it (whole seconds) is still 0, below refresh_after (1 s)."""
    return int(time.time()) == parts(token)[1]["iat"]


def young_session(rg, ng, om):
    """A browser with a new session's token whose first request through
    nginx was answered while the token was still young. The session is
    made at the start of a wall-clock second (iat is whole seconds); on a
    loaded machine the first answer can still come in the next second, when
    a refresh is due and right: then again, up to 3 times."""
    for _ in range(3):
        time.sleep(1 - time.time() % 1 + 0.01)
        b = Browser(ng.port, new_session(rg, om, "refresh test")["token"])
        first = b.token()
        st, h, seen = b.get("/app/page")
        if young(first):
            return b, first, st, h, seen
    raise AssertionError("no answer within the token's first second in 3 tries")


@test
def test_R25_role_change_and_deletion_reach_the_cookie_through_nginx():
    def body(rg, ng, ids):
        add_role(rg, "biller", ["billing:manage"])
        b, first, st, h, seen = young_session(rg, ng, ids["om"])
        assert st == 200 and seen["x-rolegate-role"] == "auditor", (st, seen)
        assert "set-cookie" not in h, h          # young token: no refresh
        # 1. the membership's role changes: within refresh_after the cookie
        #    and the app say biller, and no login happened
        t0 = time.monotonic()
        ok(rg.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
        seen = wait_until(lambda: (lambda r: r[2] if r[2] and r[2]["x-rolegate-role"] == "biller"
                                   else None)(b.get("/app/page")), 5, "role change")
        took = time.monotonic() - t0
        assert took < 1 + 2.5, took              # refresh_after (1 s) + polling
        assert seen["x-rolegate-permissions"] == "billing:manage", seen
        new = b.token()
        assert new != first, "the browser's cookie was not replaced"
        _, c_new, _ = parts(new)
        _, c_old, _ = parts(first)
        assert c_new["roles"] == ["biller"] and c_new["sid"] == c_old["sid"], c_new
        assert c_new["auth_time"] == c_old["auth_time"], (c_new, c_old)
        assert seen["x-rolegate-session"] == new, "the app must get the new token"
        # 2. the role's permissions change: the cookie follows
        ok(rg.admin("POST", "/authorization/permissions", {"slug": "billing:refund",
                                                          "name": "refund"}), 201)
        ok(rg.admin("PUT", "/authorization/roles/biller/permissions",
                    {"permissions": ["billing:manage", "billing:refund"]}), 200)
        wait_until(lambda: parts(b.token())[1]["permissions"] ==
                   ["billing:manage", "billing:refund"] or b.get("/app/page") and False,
                   5, "permission change in the cookie")
        # 3. the role is deleted (R20, async job): the cookie falls back to the
        #    default role without a login
        st, _, _ = rg.admin("DELETE", "/authorization/roles/biller")
        assert st in (200, 202, 204), st
        seen = wait_until(lambda: (lambda r: r[2] if r[2] and r[2]["x-rolegate-role"] != "biller"
                                   else None)(b.get("/app/page")), 8, "role deletion")
        assert seen["x-rolegate-role"] == "member", seen
        assert parts(b.token())[1]["roles"] == ["member"], parts(b.token())[1]
        # the nginx log shows no 302 to /login: every step was a refresh
        assert all(r[0] == 200 for r in [b.get("/app/page")])
    stack(body)


@test
def test_idle_timeout_ends_the_session_and_activity_keeps_it():
    def body(rg, ng, ids):
        b = Browser(ng.port, new_session(rg, ids["om"], "idle test")["token"])
        # active: a request every second for longer than idle_timeout (6 s)
        # and token_lifetime (4 s): refreshed, never logged out
        end = time.monotonic() + 8
        while time.monotonic() < end:
            st, h, _ = b.get("/app/page")
            assert st == 200, (st, h)
            time.sleep(1)
        # idle for longer than idle_timeout: dead (stateless: the token's iat)
        tok = b.token()
        time.sleep(7.5)
        st, h, _ = b.get("/app/page")
        assert st == 302 and "/login" in h["location"], (st, h)
        st, _, body_ = auth(rg, tok)
        assert st == 401 and body_["code"] in ("session_idle", "token_expired"), (st, body_)
    stack(body)


@test
def test_absolute_lifetime_ends_an_active_session():
    def body(rg, ng, ids):
        b = Browser(ng.port, new_session(rg, ids["om"], "lifetime test")["token"])
        start = time.monotonic()
        codes, last = [], None
        while time.monotonic() - start < 14:
            last = b.token() or last
            st, h, _ = b.get("/app/page")
            codes.append((round(time.monotonic() - start, 1), st))
            if st != 200:
                break
            time.sleep(0.7)
        took = time.monotonic() - start
        assert codes[-1][1] == 302, codes
        assert 9 <= took <= 12.5, (took, codes)   # lifetime 10 s, refresh_after 1 s
        # the cookie's Max-Age is the session's end: the jar may have dropped
        # it already, up to a second before the end /auth keeps (Max-Age and
        # the server's clock are whole seconds: the jar's drop was seen 1 ms
        # before a 200 for the same token, stop 25); once the lifetime is
        # surely over, the last token it held is refused for its lifetime
        time.sleep(max(0.0, start + 11.5 - time.monotonic()))
        st, _, body_ = auth(rg, last)
        assert st == 401 and body_["code"] == "session_expired", (st, body_)
    stack(body, config={"session": {"lifetime": "10s", "idle_timeout": "6s"}})


@test
def test_concurrent_refreshes_of_one_token_all_succeed_with_one_sid():
    with Rolegate(config={"session": dict(FAST)}) as rg:
        ids = setup_member(rg)
        old = new_session(rg, ids["om"], "concurrency")["token"]
        sid = parts(old)[1]["sid"]
        time.sleep(1.2)
        results, lock = [], threading.Lock()
        go = threading.Barrier(12)

        def one():
            go.wait()
            st, h, _ = auth(rg, old)
            with lock:
                results.append((st, h.get("set-cookie", "")))
        th = [threading.Thread(target=one) for _ in range(12)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        assert all(st == 200 for st, _ in results), results
        news = {sc.split(";")[0].split("=", 1)[1] for _, sc in results if sc}
        assert news, "no refresh answered"
        for t in news:                         # every new token is valid, same sid
            assert parts(t)[1]["sid"] == sid
            before = young(t)
            st, h, _ = auth(rg, t)
            # not refreshed again while young: asked and answered in the
            # token's first second (one that crossed into the next may rightly
            # refresh it: refresh_after 1 s)
            answered_young = before and young(t)
            assert st == 200 and ("set-cookie" not in h or not answered_young), (st, h)
        # the old token still works too (it has not expired): nothing fights
        assert auth(rg, old)[0] == 200
        print(f"  12 concurrent refreshes of one token -> {len(news)} distinct new token(s)")


@test
def test_refresh_with_redis_down_is_degraded_not_logout():
    r = Redis()
    try:
        with Rolegate(config={"session": dict(FAST), "redis": {"url": r.url()}}) as rg:
            ids = setup_member(rg)
            add_role(rg, "biller", ["billing:manage"])
            tok = new_session(rg, ids["om"], "redis down")["token"]
            assert auth(rg, tok)[0] == 200
            r.kill()
            ok(rg.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
            time.sleep(1.2)
            st, h, _ = auth(rg, tok)
            assert st == 200, (st, h)
            sc = h.get("set-cookie", "")
            assert sc.startswith(COOKIE + "="), h
            new = sc.split(";")[0].split("=", 1)[1]
            assert parts(new)[1]["roles"] == ["biller"], parts(new)[1]
            assert h["x-rolegate-role"] == "biller", h
            assert auth(rg, new)[0] == 200
    finally:
        r.kill()


@test
def test_R24_oversize_on_refresh_follows_the_policy():
    many = [f"perm:{i:03d}-{'x' * 30}" for i in range(60)]
    for policy in ("reject", "omit_permissions"):
        cfg = {"session": dict(FAST, oversize=policy, cookie_budget="2048")}
        with Rolegate(config=cfg) as rg:
            ids = setup_member(rg)
            tok = new_session(rg, ids["om"], "oversize")["token"]
            add_role(rg, "big", many)
            ok(rg.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "big"}), 200)
            time.sleep(1.2)
            st, h, body = auth(rg, tok)
            if policy == "reject":
                # never a truncated cookie: the session cannot go on
                assert st == 401 and body["code"] == "session_too_large", (st, body)
                assert "set-cookie" not in h, h
            else:
                assert st == 200, (st, body)
                sc = h["set-cookie"]
                assert len(sc) <= 2048, len(sc)
                new = sc.split(";")[0].split("=", 1)[1]
                claims = parts(new)[1]
                assert claims.get("permissions_omitted") is True and "permissions" not in claims
                # /auth supplies them from the role table
                assert h["x-rolegate-permissions"] == ",".join(sorted(many)), h
                assert auth(rg, new)[0] == 200


@test
def test_logout_of_a_refreshed_session_ends_every_token_of_it():
    with Rolegate(config={"session": dict(FAST)}) as rg:
        ids = setup_member(rg)
        old = new_session(rg, ids["om"], "logout")["token"]
        time.sleep(1.2)
        st, h, _ = auth(rg, old)
        new = h["set-cookie"].split(";")[0].split("=", 1)[1]
        st, _, _ = rg.public("POST", "/logout", headers={"Cookie": f"{COOKIE}={new}"})
        assert st == 302, st
        for t in (old, new):
            st, _, body = auth(rg, t)
            assert st == 401 and body["code"] == "token_revoked", (st, body)


@test
def test_deleted_membership_is_401_at_the_next_refresh():
    with Rolegate(config={"session": dict(FAST)}) as rg:
        ids = setup_member(rg)
        tok = new_session(rg, ids["om"], "removed")["token"]
        assert auth(rg, tok)[0] == 200
        st, _, _ = rg.admin("DELETE", f"{MS}/{ids['om']}")
        assert st in (200, 202, 204), st
        time.sleep(1.2)
        st, _, body = auth(rg, tok)
        assert st == 401 and body["code"] == "membership_removed", (st, body)


@test
def test_refresh_off_keeps_snapshot_tokens_of_lifetime():
    with Rolegate(config={"session": {"refresh": False}}) as rg:
        ids = setup_member(rg)
        tok = new_session(rg, ids["om"], "snapshot")["token"]
        c = parts(tok)[1]
        assert c["exp"] - c["iat"] == 8 * 3600 and "auth_time" not in c, c
        st, h, _ = auth(rg, tok)
        assert st == 200 and "set-cookie" not in h, h


def member_lookups(rg):
    """(local, store): membership-state lookups of the refresh (issue 13)."""
    st, _, body = rg.admin("GET", "/metrics")
    assert st == 200, st
    text = body.decode() if isinstance(body, bytes) else str(body)
    got = {}
    for line in text.splitlines():
        for src in ("local", "store"):
            if line.startswith(f'rolegate_membership_state_lookups_total{{source="{src}"}} '):
                got[src] = int(float(line.split()[-1]))
    assert set(got) == {"local", "store"}, text[-1500:]
    return got["local"], got["store"]


def refreshed(rg, token):
    """The new token /auth on rg answers for token (a refresh is due)."""
    st, h, body = auth(rg, token)
    assert st == 200, (st, body)
    sc = h.get("set-cookie", "")
    assert sc.startswith(COOKIE + "="), h
    return sc.split(";")[0].split("=", 1)[1]


def instance_b(a, redis_url, session=None):
    """A second instance of a's deployment: its store, keys, base URL, Redis."""
    return Rolegate(config={
        "server": {"base_url": f"http://127.0.0.1:{a.public_port}"},
        # one store for both: A's PostgreSQL database under tests/with-postgres
        "store": {"database": a.pg_url or os.path.join(a.dir, "var", "rolegate.db")},
        "session": dict(FAST, keys_dir=os.path.join(a.dir, "var", "keys"), **(session or {})),
        "redis": {"url": redis_url}})


@contextlib.contextmanager
def pair_with_member():
    """Instances A and B over one real Redis (FAST sessions), B ready, and a
    member made through A: yields (redis, a, b, ids); Redis killed after."""
    r = Redis()
    try:
        with Rolegate(config={"session": dict(FAST), "redis": {"url": r.url()}}) as a, \
                instance_b(a, r.url()) as b:
            wait_until(lambda: b.public("GET", "/readyz")[2] == {"status": "ready"}, 10,
                       "B ready")
            yield r, a, b, setup_member(a)
    finally:
        r.kill()


@test
def test_membership_state_is_cached_and_a_role_change_drops_it():
    """Issue 13: the refresh reads the membership's state from the store once,
    then from the in-process copy (no store read); a role change through the
    admin API drops the copy at once, so the next refresh carries it."""
    with Rolegate(config={"session": dict(FAST)}) as rg:
        ids = setup_member(rg)
        add_role(rg, "biller", ["billing:manage"])
        toks = [new_session(rg, ids["om"], f"cache {i}")["token"] for i in range(3)]
        time.sleep(1.2)
        l0, s0 = member_lookups(rg)
        news = [refreshed(rg, t) for t in toks]
        l1, s1 = member_lookups(rg)
        assert (l1 - l0, s1 - s0) == (2, 1), (l0, s0, l1, s1)   # one store read for three
        assert all(parts(t)[1]["roles"] == ["auditor"] for t in news)
        ok(rg.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
        time.sleep(1.2)
        new = refreshed(rg, news[0])
        assert parts(new)[1]["roles"] == ["biller"], parts(new)[1]
        l2, s2 = member_lookups(rg)
        assert s2 - s1 == 1, (s1, s2)                          # the copy was dropped
        assert parts(refreshed(rg, news[1]))[1]["roles"] == ["biller"]
        l3, s3 = member_lookups(rg)
        assert (l3 - l2, s3 - s2) == (1, 0), (l2, s2, l3, s3)  # and kept again


@test
def test_role_change_on_A_reaches_the_cookie_refreshed_on_B():
    """Two instances sharing Redis: B serves refreshes from its copy of the
    membership's state; a role change through A's admin API drops it on B
    (the "~members" message), so B's next refresh, within refresh_after,
    carries the new role. With Redis down, B reads the store for every
    refresh: a change on A is still seen, never a stale copy."""
    with pair_with_member() as (r, a, b, ids):
        add_role(a, "biller", ["billing:manage"])
        add_role(a, "closer", ["deals:close"])
        t1, t2 = (new_session(a, ids["om"], f"two {i}")["token"] for i in range(2))
        time.sleep(1.2)
        n1 = refreshed(b, t1)
        l0, s0 = member_lookups(b)
        n2 = refreshed(b, t2)
        l1, s1 = member_lookups(b)
        assert (l1 - l0, s1 - s0) == (1, 0), (l0, s0, l1, s1)   # B's copy served it
        t0 = time.monotonic()
        ok(a.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "biller"}), 200)
        time.sleep(1.05)                                         # refresh_after
        new = refreshed(b, n1)
        took = time.monotonic() - t0
        assert parts(new)[1]["roles"] == ["biller"], parts(new)[1]
        assert took < 1 + 1.5, took
        print(f"  role change on A, in the cookie refreshed on B after {took:.2f} s")
        # Redis down: B must not trust its copy (messages are lost)
        r.kill()
        wait_until(lambda: b.public("GET", "/readyz")[2].get("status") == "degraded", 10,
                   "B degraded")
        n2 = refreshed(b, n2)          # copy of "biller" would do; the store answers
        ok(a.admin("PUT", f"{MS}/{ids['om']}", {"role_slug": "closer"}), 200)
        time.sleep(1.05)
        new = refreshed(b, n2)
        assert parts(new)[1]["roles"] == ["closer"], parts(new)[1]


@test
def test_revocation_and_deprovisioning_stay_immediate_with_a_warm_cache():
    """The membership-state copy never keeps a session alive: with B's copy
    warm, DELETE /sessions/{id} on A and a SCIM deactivation on A are refused
    by /auth on B within 1 s, for a token due for refresh too."""
    import json as _json
    with pair_with_member() as (r, a, b, ids):
        s1, s2 = (new_session(a, ids["om"], f"warm {i}") for i in range(2))
        time.sleep(1.2)
        n1 = refreshed(b, s1["token"])          # B's copy is warm
        n2 = refreshed(b, s2["token"])
        time.sleep(1.05)                        # both due again
        ok(a.admin("DELETE", f"/sessions/{s1['id']}"), 200)
        t0 = time.monotonic()
        wait_until(lambda: auth(b, n1)[0] == 401, 1.0, "B to refuse the revoked session")
        assert auth(b, n1)[2]["code"] == "token_revoked"
        print(f"  DELETE /sessions on A, refused on B after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms")
        assert auth(b, n2)[0] == 200            # the other session lives on
        # SCIM: a directory user with a membership and a session on B
        d = ok(a.admin("POST", f"/organizations/{ids['org']}/directories",
                       {"name": "Okta", "type": "okta scim v2.0"}), 201)
        h = {"Authorization": "Bearer " + d["bearer_token"],
             "Content-Type": "application/scim+json"}
        base = f"/scim/v2/{d['id']}"
        st, _, u = a.public("POST", base + "/Users", _json.dumps(
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
             "userName": "dora@example.com", "active": True,
             "emails": [{"primary": True, "value": "dora@example.com"}]}), h)
        assert st == 201, (st, u)
        oms = ok(a.admin("GET", f"{MS}?organization_id={ids['org']}"), 200)["data"]
        om = [m for m in oms if m["id"] != ids["om"]]
        assert len(om) == 1, oms
        tok = new_session(a, om[0]["id"], "scim")["token"]
        time.sleep(1.2)
        fresh = refreshed(b, tok)                # B's copy of dora's state: active
        assert auth(b, fresh)[0] == 200
        time.sleep(1.05)
        st, _, _ = a.public("PATCH", f"{base}/Users/{u['id']}", _json.dumps(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "value": {"active": False}}]}), h)
        assert st == 200, st
        t0 = time.monotonic()
        wait_until(lambda: auth(b, fresh)[0] == 401 and auth(b, tok)[0] == 401, 1.0,
                   "B to refuse the deprovisioned user's tokens")
        print(f"  SCIM deactivation on A, refused on B after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    harness.run_all()
