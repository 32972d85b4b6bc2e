#!/usr/bin/env python3
"""Issue 15, several machines: three rolegate instances (A, B, C) on ONE
PostgreSQL database and one real redis-server, sharing the key directory,
the SAML SP key pair and the base URL as a deployment behind a load balancer
does. Always on a real PostgreSQL: run without ROLEGATE_TEST_PG_OWN, the file
starts itself again under tests/with-postgres (a server of its own, which
test_pg_down_* stops and starts; never a server other tests share).

  - mixed load: concurrent SAML logins (fixture IdP), admin writes (roles
    created / renamed / deleted, a slug raced by two writers, priority orders,
    group mappings, the default role) and three role deletions (deletion jobs)
    spread over A, B and C; B SIGKILLed while it holds a claimed deletion job
    (found through PostgreSQL: the job row locked by a transaction of B's
    connections, application_name=rg-b), then started again. Asserted: every
    answer a clear code (no 500; 503 only store_*), no lost write, one
    membership per user and organization (R18, also for one user logging in
    at two instances at once), the job B held finished by A or C before B
    came back (R23), every job done (R20: memberships moved to the default,
    role gone), the events complete, unduplicated and in order (R26).
  - the default-role race (R7): A and B set different defaults at once; B
    deletes a role while A makes it the default.
  - PostgreSQL down: sessions issued before keep working at /auth on every
    instance, logins and admin writes answer 503 store_unavailable, and work
    again once the server is back.
A test-only trigger (rg_test_slow_job, created in the test's own database)
makes every UPDATE of a job row sleep 0.3 s, so a claimed job stays claimed
long enough to be caught; it changes no data."""
import contextlib
import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("ROLEGATE_TEST_PG_OWN") != "1":
    # a PostgreSQL server of this file's own (it stops it in test_pg_down_*)
    wp = os.path.join(os.path.dirname(HERE), "with-postgres")
    os.execve(wp, [wp, sys.executable, os.path.abspath(__file__)],
              dict(os.environ, ROLEGATE_TEST_PG_OWN="1"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import test, run_all, wait_until, pg_sql  # noqa: E402
from test_saml_common import (Browser, FixtureIdp, LoginServer, reason_of,  # noqa: E402
                              setup_roles, setup_saml_connection)
_n = len(harness._tests)
from test_redis_instances import Redis  # noqa: E402  (a restartable redis-server)
del harness._tests[_n:]   # that file's tests are not this file's

assert harness.PG_BASE, "test_pg_multi runs under tests/with-postgres only"
MS = "/user_management/organization_memberships"
STABLE = ("admin", "member", "viewer")   # never deleted here
GROUPS = (["admins"], ["engineering"], ["viewers"], ["engineering", "viewers"])


def dbname(url):
    return url.rsplit("/", 1)[1].split("?", 1)[0]


class Cluster:
    """A, B, C on one new PostgreSQL database over one Redis; each
    instance's connections carry application_name=rg-<name>."""

    def __init__(self, redis, n=3):
        self.url = harness.pg_database_new()
        self.db = dbname(self.url)
        base = {"redis": {"url": redis.url()},
                "saml": {"replay_check_without_redis": "reject"},
                "store": {"database": self.url + "?application_name=rg-a"}}
        self.rgs = []
        try:
            a = LoginServer(config=base)
            a.name = "a"
            self.rgs.append(a)
            for name in "bc"[:n - 1]:
                cfg = {k: dict(v) for k, v in base.items()}
                cfg["store"]["database"] = f"{self.url}?application_name=rg-{name}"
                cfg.setdefault("server", {})["base_url"] = a.base
                cfg.setdefault("session", {})["keys_dir"] = os.path.join(a.dir, "var", "keys")
                cfg["saml"].update(sp_key_file=os.path.join(a.dir, "var", "saml", "sp.key"),
                                   sp_cert_file=os.path.join(a.dir, "var", "saml", "sp.crt"))
                rg = LoginServer(config=cfg)
                rg.name = name
                self.rgs.append(rg)
        except BaseException:
            self.close(False)
            raise

    def sql(self, q):
        return pg_sql(self.db, q)

    def close(self, ok=True):
        for rg in reversed(self.rgs):
            rg.__exit__(None if ok else Exception, None, None)
        harness.pg_database_drop(self.url)

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.close(et is None)
        return False


def setup_login(cl):
    """Roles, an organization and a SAML connection (through A) and its
    fixture IdP; returns (org, conn, idp)."""
    a = cl.rgs[0]
    idp = FixtureIdp()
    setup_roles(a)
    org = a.ok("POST", "/organizations", {"name": "Acme"})["id"]
    conn, sp = setup_saml_connection(a, org, idp.metadata)
    idp.start(sp)
    return org, conn, idp


def login(start, finish, org, user, groups):
    """A browser login started on start whose ACS POST lands on finish; org
    is "org_..." or "org_...&connection=conn_...". Returns (browser, status
    of the last answer, body)."""
    b = Browser()
    st, hd, data = b.get(f"{start.base}/login?organization={org}&return_to=/app")
    if st != 302:
        return b, st, data
    q = "&user=" + urllib.parse.quote(user) + "&groups=" + urllib.parse.quote(",".join(groups))
    st, _, data = b.get(Browser.location(hd) + q)
    if st != 200:
        return b, st, data
    action, fields = Browser.form(data)
    st, hd, data = b.post_form(finish.base + urllib.parse.urlsplit(action).path, fields)
    return b, st, data


def session_cookie(b):
    return "; ".join(f"{k}={v}" for k, v in b.jar.items() if k != "rolegate_state")


class Record:
    """Every request of the run: answered (status, code) or unanswered (the
    instance was down or died under it). bad: answers that are not a clear
    code (a 500, a 503 other than store_*, an error without code)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answered = 0
        self.unanswered = 0
        self.store_503 = {}
        self.codes = {}
        self.bad = []

    def call(self, rg, method, path, body=None):
        try:
            st, _, data = rg.admin(method, path, body, timeout=30)
        except (OSError, http.client.HTTPException):
            with self.lock:
                self.unanswered += 1
            return None, None
        code = data.get("code") if isinstance(data, dict) else None
        with self.lock:
            self.answered += 1
            if st >= 400:
                self.codes[(st, code)] = self.codes.get((st, code), 0) + 1
            if st == 503 and code and code.startswith("store_"):
                self.store_503[code] = self.store_503.get(code, 0) + 1
            elif st >= 500 or (st >= 400 and not code):
                self.bad.append((rg.name, method, path, st, str(data)[:200]))
        return st, data

    def login(self, start, finish, org, user, groups):
        try:
            b, st, data = login(start, finish, org, user, groups)
        except (OSError, http.client.HTTPException):
            with self.lock:
                self.unanswered += 1
            return None, None
        with self.lock:
            self.answered += 1
            if st != 302:
                reason = reason_of(data) if isinstance(data, bytes) else None
                self.codes[(st, reason)] = self.codes.get((st, reason), 0) + 1
                if not (st == 503 and reason and reason.startswith("store_")):
                    self.bad.append(("login", start.name, finish.name, st, reason,
                                     b.history[-3:], bytes(data[:300])))
                else:
                    self.store_503[reason] = self.store_503.get(reason, 0) + 1
        return st, b


def all_pages(rg, path):
    out, after = [], None
    sep = "&" if "?" in path else "?"
    while True:
        st, _, page = rg.admin("GET", f"{path}{sep}limit=100" + (f"&after={after}" if after else ""))
        assert st == 200, (path, st, page)
        out += page["data"]
        after = page["list_metadata"]["after"]
        if not after or not page["data"]:
            return out


def events_all(rg):
    return all_pages(rg, "/events?order=asc")


SLOW_JOB_SQL = (
    "CREATE FUNCTION rg_test_slow_job() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;"
    " CREATE TRIGGER rg_test_slow_job BEFORE UPDATE ON jobs FOR EACH ROW"
    " EXECUTE FUNCTION rg_test_slow_job();")


def locked_job_of(cl, app):
    """The pending job whose row a transaction of instance app's connections
    holds locked (FOR UPDATE SKIP LOCKED's claim: xmax is the locker)."""
    return cl.sql("SELECT j.id FROM jobs j JOIN pg_stat_activity a ON a.backend_xid = j.xmax"
                  f" WHERE j.status = 'pending' AND a.application_name = '{app}' LIMIT 1")


def doomed_setup(cl, org, roles, per_role):
    """per_role users with an API membership holding each role of roles in
    organization org, made over all three instances. Returns
    {membership id: role slug}."""
    out, lock, errs = {}, threading.Lock(), []

    def work(k):
        rg = cl.rgs[k % len(cl.rgs)]
        try:
            for i in range(k, per_role * len(roles), 6):
                slug = roles[i % len(roles)]
                u = rg.ok("POST", "/user_management/users", {"email": f"d{i}@doomed.example"})
                m = rg.ok("POST", MS, {"user_id": u["id"], "organization_id": org,
                                       "role_slug": slug})
                with lock:
                    out[m["id"]] = slug
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs[:3]
    return out


@contextlib.contextmanager
def redis_cluster():
    """A Cluster (three instances) over a new redis-server, killed after."""
    redis = Redis()
    try:
        with Cluster(redis) as cl:
            yield cl
    finally:
        redis.kill()


@contextlib.contextmanager
def logins_on(cl):
    """setup_login(cl)'s (org, conn, idp), the fixture IdP stopped after."""
    org, conn, idp = setup_login(cl)
    try:
        yield org, conn, idp
    finally:
        idp.stop()


@test
def test_R18_R20_R23_R26_three_instances_mixed_load_sigkill_while_holding_a_job():
    with redis_cluster() as cl, logins_on(cl) as (org, conn, idp):
        a, b, c = cl.rgs
        mixed_load(cl, f"{org}&connection={conn}", org)


def mixed_load(cl, login_org, org):
    """login_org: what /login takes (the org has 3 connections)."""
    a, b, c = cl.rgs
    rgs = cl.rgs
    doomed = ["doomed-1", "doomed-2", "doomed-3"]
    for s in doomed:
        a.ok("POST", "/authorization/roles", {"slug": s, "name": s})
    dorg = a.ok("POST", "/organizations", {"name": "Doomed Inc"})["id"]
    moved = doomed_setup(cl, dorg, doomed, 120)
    mconns = [a.ok("POST", f"/organizations/{org}/connections",
                   {"type": "saml", "name": f"m{t}"})["id"] for t in range(2)]
    cl.sql(SLOW_JOB_SQL)
    ev_before = events_all(a)
    rec = Record()
    stop = threading.Event()
    errors = []
    state = {"created": {}, "names": {}, "deleted": set(), "race": {},
             "order": {0: [], 1: []}, "prio_ok": 0, "maps": {}, "maps_unknown": {},
             "defaults": ["member"], "default_last": "member", "default_unknown": set(),
             "logins": [], "twins": [], "seen": [], "kill": {}}
    lock = threading.Lock()

    def guard(fn):
        def run(*args):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - reported below
                import traceback
                errors.append(f"{fn.__name__}: {e!r} {traceback.format_exc()[-600:]}")
        return run

    @guard
    def logins(t):
        rnd = random.Random(t)
        while not stop.is_set():
            user = f"u{rnd.randrange(12)}@acme.example"
            st, _ = rec.login(rnd.choice(rgs), rnd.choice(rgs), login_org, user, rnd.choice(GROUPS))
            with lock:
                state["logins"].append((user, st))

    twin_bar = threading.Barrier(2)

    @guard
    def twins(t):
        k = 0
        while not stop.is_set():
            try:
                twin_bar.wait(timeout=5)
            except threading.BrokenBarrierError:
                return
            user = f"twin{k}@acme.example"
            st, _ = rec.login(rgs[t], rgs[t], login_org, user, ["engineering"])
            with lock:
                state["twins"].append((user, st))
            k += 1

    @guard
    def creator(t):
        i = 0
        while not stop.is_set():
            slug = f"c{t}-{i}"
            st, r = rec.call(rgs[(t + i) % 3], "POST", "/authorization/roles",
                             {"slug": slug, "name": f"C{t} {i}"})
            if st == 201:
                with lock:
                    state["created"][slug] = r["id"]
                    state["names"][slug] = r["name"]
                    state["order"][t].append(("role.created", r["id"]))
            if st == 201 and i % 2 == 0:
                st2, r2 = rec.call(rgs[(t + i + 1) % 3], "PATCH", f"/authorization/roles/{slug}",
                                   {"name": f"C{t} {i} v2"})
                if st2 == 200:
                    with lock:
                        state["names"][slug] = r2["name"]
                        state["order"][t].append(("role.updated", r["id"]))
            if i % 3 == 0:   # R6: one slug, two writers on two instances
                rs = f"race-{i}"
                st3, r3 = rec.call(rgs[(t + 2) % 3], "POST", "/authorization/roles",
                                   {"slug": rs, "name": rs})
                with lock:
                    state["race"].setdefault(rs, []).append(
                        (st3, r3.get("code") if isinstance(r3, dict) else None))
                    if st3 == 201:
                        state["created"][rs] = r3["id"]
            if i % 5 == 4:   # R20: a role of this thread's deleted again
                victim = f"c{t}-{i - 2}"
                if victim in state["created"]:
                    st4, _ = rec.call(rgs[(t + i + 2) % 3], "DELETE",
                                      f"/authorization/roles/{victim}")
                    if st4 == 202:
                        with lock:
                            state["deleted"].add(victim)
                            state["order"][t].append(("role.deleted", state["created"][victim]))
            i += 1

    @guard
    def priority():
        i = 0
        while not stop.is_set():
            rg = rgs[i % 3]
            st, lst = rec.call(rg, "GET", "/authorization/roles")
            if st == 200:
                slugs = [r["slug"] for r in lst["data"]]
                slugs = slugs[1:] + slugs[:1]
                st, _ = rec.call(rgs[(i + 1) % 3], "PUT", "/authorization/roles/priority",
                                 {"slugs": slugs})
                if st == 200:
                    state["prio_ok"] += 1
            i += 1
            time.sleep(0.02)

    @guard
    def mappings(t):
        i = 0
        rnd = random.Random(100 + t)
        while not stop.is_set():
            body = [{"idp_group": f"g{t}-{i}-{j}", "role_slug": rnd.choice(STABLE)}
                    for j in range(3)]
            st, _ = rec.call(rgs[(t + i) % 3], "PUT", f"/connections/{mconns[t]}/role_mappings",
                             body)
            with lock:
                if st == 200:
                    state["maps"][t] = body
                    state["maps_unknown"][t] = []
                elif st is None:   # may or may not have been applied
                    state["maps_unknown"].setdefault(t, []).append(body)
            i += 1

    @guard
    def default():
        i = 0
        rnd = random.Random(7)
        while not stop.is_set():
            want = rnd.choice(STABLE)
            st, _ = rec.call(rgs[i % 3], "PATCH", "/environment", {"default_role": want})
            with lock:
                if st == 200:
                    state["defaults"].append(want)
                    state["default_last"] = want
                    state["default_unknown"] = set()
                elif st is None:
                    state["defaults"].append(want)
                    state["default_unknown"].add(want)
            i += 1
            time.sleep(0.05)

    @guard
    def poller():
        """An event consumer following the cursor (R26), over all
        instances: every event it ever sees, in the order seen."""
        after, i = None, 0
        while not stop.is_set() or i < 2:
            rg = rgs[i % 3]
            q = "/events?order=asc&limit=100" + (f"&after={after}" if after else "")
            st, page = rec.call(rg, "GET", q)
            if st == 200 and page["data"]:
                state["seen"] += [e["id"] for e in page["data"]]
                after = page["data"][-1]["id"]
            i += 1
            if stop.is_set():
                i = max(i, 1)
            time.sleep(0.01)

    threads = ([threading.Thread(target=logins, args=(t,)) for t in range(3)]
               + [threading.Thread(target=twins, args=(t,)) for t in range(2)]
               + [threading.Thread(target=creator, args=(t,)) for t in range(2)]
               + [threading.Thread(target=mappings, args=(t,)) for t in range(2)]
               + [threading.Thread(target=priority), threading.Thread(target=default),
                  threading.Thread(target=poller)])
    for t in threads:
        t.start()
    t0 = time.monotonic()
    try:
        time.sleep(0.5)
        # the three deletion jobs, one queued at each instance
        for rg, s in zip(rgs, doomed):
            st, _ = rec.call(rg, "DELETE", f"/authorization/roles/{s}")
            assert st == 202, (rg.name, s, st)
        # B SIGKILLed while it holds a claimed job
        end = time.monotonic() + 15
        held = ""
        while not held and time.monotonic() < end:
            held = locked_job_of(cl, "rg-b")
            if not held:
                time.sleep(0.02)
        assert held, "B never held a claimed job: " + cl.sql(
            "SELECT string_agg(id || ':' || status, ' ') FROM jobs")
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        b.proc = None
        t_kill = time.monotonic()
        state["kill"]["job"] = held
        # R23: resumed by another instance while B is down
        wait_until(lambda: cl.sql(f"SELECT status FROM jobs WHERE id = '{held}'") == "done",
                   20, f"job {held} held by the killed B finished by A or C")
        state["kill"]["resumed_s"] = time.monotonic() - t_kill
        finisher = [rg.name for rg in (a, c) if f"store=job_done job={held}" in rg.log_text()]
        assert finisher, f"job {held} done, but neither A nor C logged it"
        b.start()
        state["kill"]["down_s"] = time.monotonic() - t_kill
        while time.monotonic() - t0 < 8:
            time.sleep(0.1)
    finally:
        stop.set()
        twin_bar.abort()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    check_after(cl, org, dorg, doomed, moved, mconns, state, rec, ev_before)
    k = state["kill"]
    print(f"  load: {rec.answered} answered, {rec.unanswered} unanswered (B down "
          f"{k['down_s']:.1f} s), store 503s {rec.store_503}, logins {len(state['logins'])}, "
          f"twins {len(state['twins'])}, roles {len(state['created'])}, priorities "
          f"{state['prio_ok']}; job {k['job']} of killed B done by {finisher} after "
          f"{k['resumed_s']:.2f} s; codes {sorted(rec.codes.items())}", flush=True)


def check_after(cl, org, dorg, doomed, moved, mconns, state, rec, ev_before):
    a = cl.rgs[0]
    assert not rec.bad, f"answers without a clear code: {rec.bad[:5]}"
    # every job finished (R20, R23)
    wait_until(lambda: cl.sql("SELECT count(*) FROM jobs WHERE status <> 'done'") == "0",
               20, "every deletion job done")
    # no lost write: every 2xx is there
    roles = {r["slug"]: r for r in all_pages(a, "/authorization/roles")}
    for slug, rid in state["created"].items():
        if slug in state["deleted"]:
            st, _, _ = a.admin("GET", f"/authorization/roles/{slug}")
            assert st == 404, (slug, st)
            continue
        assert slug in roles and roles[slug]["id"] == rid, f"role {slug} answered 201 is lost"
        if slug in state["names"]:
            assert roles[slug]["name"] == state["names"][slug], (slug, roles[slug])
    # R6: a raced slug is created once, the other writer gets the conflict
    for rs, answers in state["race"].items():
        oks = [x for x in answers if x[0] == 201]
        assert len(oks) <= 1, (rs, answers)
        for st, code in answers:
            assert st in (201, None, 503) or (st == 409 and code == "role_slug_conflict"), \
                (rs, answers)
    # R8: the priority order is a total order of every role
    order = [r["slug"] for r in all_pages(a, "/authorization/roles")]
    assert len(order) == len(set(order)), order
    assert set(order) == set(roles), (order, set(roles))
    for s in doomed:
        assert s not in roles, f"deleted role {s} still listed"
    for t, conn in enumerate(mconns):
        st, _, got = a.admin("GET", f"/connections/{conn}/role_mappings")
        got = got["data"] if isinstance(got, dict) else got
        want = [state["maps"].get(t)] + state["maps_unknown"].get(t, [])
        norm = sorted((m["idp_group"], m["role_slug"]) for m in got)
        assert any(w is not None and norm == sorted((m["idp_group"], m["role_slug"]) for m in w)
                   for w in want), (t, got, want[:1])
    env = a.ok("GET", "/environment")
    dflt = env.get("default_role")
    assert dflt in {state["default_last"]} | state["default_unknown"], (dflt, state["default_last"])
    for rg in cl.rgs:   # R7: one default, the same on every instance
        e = rg.ok("GET", "/environment")
        assert e.get("default_role") == env.get("default_role"), (rg.name, e, env)
    # R18: one membership per user and organization, one user per email
    dup = cl.sql("SELECT string_agg(user_id || '/' || organization_id, ' ') FROM (SELECT user_id,"
                 " organization_id FROM memberships GROUP BY 1, 2 HAVING count(*) > 1) d")
    assert not dup, f"duplicate memberships: {dup}"
    dup = cl.sql("SELECT string_agg(email, ' ') FROM (SELECT email FROM users GROUP BY email"
                 " HAVING count(*) > 1) d")
    assert not dup, f"duplicate users: {dup}"
    ms = all_pages(a, f"{MS}?organization_id={org}")
    by_user = {}
    for m in ms:
        by_user.setdefault(m["user_id"], []).append(m)
    users = {u["id"]: u["email"] for u in all_pages(a, "/user_management/users")}
    emails = sorted(users[u] for u in by_user)
    ok_users = {u for u, st in state["logins"] + state["twins"] if st == 302}
    assert ok_users <= set(emails), ok_users - set(emails)
    twins_ok = {u for u, st in state["twins"] if st == 302}
    assert state["twins"] and twins_ok, state["twins"][:4]
    # R20: the doomed memberships moved to a default, none lost
    dms = {m["id"]: m for m in all_pages(a, f"{MS}?organization_id={dorg}")}
    assert set(dms) == set(moved), (len(dms), len(moved))
    for mid, m in dms.items():
        slugs = [r["slug"] for r in m["roles"]]
        assert len(slugs) == 1 and slugs[0] in state["defaults"], (mid, m)
        assert m["role_source"] == "default", m
    left = cl.sql("SELECT count(*) FROM membership_roles mr JOIN roles r ON r.id = mr.role_id"
                  " WHERE r.slug LIKE 'doomed-%'")
    assert left == "0", left
    # R26: the events complete, unduplicated, in order
    evs = events_all(a)
    ids = [e["id"] for e in evs]
    assert len(ids) == len(set(ids)), "duplicated event ids"
    assert ids[:len(ev_before)] == [e["id"] for e in ev_before], "earlier events changed"
    pos = {e["id"]: i for i, e in enumerate(evs)}
    index = {}
    for i, e in enumerate(evs):
        index.setdefault((e["event"], e["data"].get("id")), []).append(i)
    for slug, rid in state["created"].items():
        assert len(index.get(("role.created", rid), [])) == 1, (slug, rid)
    for slug in state["deleted"] | set(doomed):
        rid = state["created"].get(slug) or None
        if rid:
            assert len(index.get(("role.deleted", rid), [])) == 1, (slug, rid)
    assert sum(1 for e in evs if e["event"] == "role.deleted") >= len(state["deleted"]) + 3
    for mid in moved:
        assert index.get(("organization_membership.updated", mid)), f"no event for moved {mid}"
    for t, seq in state["order"].items():   # each writer's writes in its order
        last = -1
        for kind, rid in seq:
            hits = [i for i in index.get((kind, rid), []) if i > last]
            assert hits, f"writer {t}: {kind} {rid} missing or out of order"
            last = hits[0]
    ts = [e["created_at"] for e in evs]
    back = [(ids[i], ts[i], ts[i + 1]) for i in range(len(ts) - 1) if ts[i + 1] < ts[i]]
    # a consumer following the cursor saw every event up to where it stopped
    seen = state["seen"]
    assert len(seen) == len(set(seen)), "the cursor handed an event twice"
    assert seen, "the poller saw nothing"
    upto = pos[seen[-1]]
    missed = [evs[i]["id"] + " " + evs[i]["event"] for i in range(upto + 1)
              if evs[i]["id"] not in set(seen)]
    print(f"  poller: saw {len(seen)}, missed {len(missed)}; created_at back {len(back)}", flush=True)
    assert not missed, (f"a consumer following /events?after= missed {len(missed)} of "
                        f"{upto + 1} events (committed after a later one was listed): "
                        f"{missed[:3]}")
    assert not back, f"created_at goes back in list order {len(back)} times: {back[:3]}"


@test
def test_R7_default_role_race_on_two_instances():
    with redis_cluster() as cl:
        a, b, c = cl.rgs
        for s in ("x", "y"):
            a.ok("POST", "/authorization/roles", {"slug": s, "name": s})
        outcomes = {"set_vs_set": [], "set_vs_delete": []}
        for i in range(8):
            ans = [None, None]
            bar = threading.Barrier(2)

            def put(k, rg, want):
                bar.wait(5)
                ans[k] = rg.admin("PATCH", "/environment", {"default_role": want})[0]
            ts = [threading.Thread(target=put, args=(0, a, "x")),
                  threading.Thread(target=put, args=(1, b, "y"))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert ans == [200, 200], ans
            seen = {rg.ok("GET", "/environment")["default_role"] for rg in cl.rgs}
            assert len(seen) == 1 and seen <= {"x", "y"}, seen
            outcomes["set_vs_set"].append(seen.pop())
            # R7: the default cannot be deleted, also when it becomes one
            # at the moment another instance deletes it
            a.ok("PATCH", "/environment", {"default_role": "member"})
            slug = f"z{i}"
            a.ok("POST", "/authorization/roles", {"slug": slug, "name": slug})
            bar = threading.Barrier(2)

            def setdef(rg):
                bar.wait(5)
                r = rg.admin("PATCH", "/environment", {"default_role": slug})
                ans[0] = (r[0], r[2].get("code") if isinstance(r[2], dict) else None)

            def delete(rg):
                bar.wait(5)
                r = rg.admin("DELETE", f"/authorization/roles/{slug}")
                ans[1] = (r[0], r[2].get("code") if isinstance(r[2], dict) else None)
            one, two = (a, b) if i % 2 else (b, a)
            ts = [threading.Thread(target=setdef, args=(one,)),
                  threading.Thread(target=delete, args=(two,))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            d = a.ok("GET", "/environment")["default_role"]
            got = a.admin("GET", f"/authorization/roles/{slug}")
            # R20: 404, or status "deleting" until its job has run
            gone = got[0] == 404 or (got[0] == 200 and got[2].get("status") == "deleting")
            if ans[1][0] == 202:
                assert gone and d == "member" and ans[0][0] in (404, 409, 422), (ans, d, got)
            else:
                assert ans[0][0] == 200 and d == slug and not gone, (ans, d)
                assert ans[1] == (409, "default_role_cannot_be_deleted"), ans
            outcomes["set_vs_delete"].append("delete" if ans[1][0] == 202 else "default")
        ev = events_all(a)
        assert sum(1 for e in ev if e["event"] == "environment.updated") >= 8
        print(f"  outcomes: {outcomes}", flush=True)


def pg_ctl(what):
    r = subprocess.run(f"{os.environ['ROLEGATE_TEST_PG_CTL']} {what}", shell=True,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (what, r.stdout[-500:], r.stderr[-500:])


@test
def test_pg_down_sessions_keep_working_logins_503_then_back():
    with redis_cluster() as cl, logins_on(cl) as (org, conn, idp):
        a, b, c = cl.rgs
        cookies = []
        for i, rg in enumerate(cl.rgs):
            br, st, data = login(rg, rg, org, f"down{i}@acme.example", ["admins"])
            assert st == 302, (st, data[:300])
            cookies.append(session_cookie(br))
        pg_ctl("stop -m fast")
        try:
            for ck in cookies:
                for rg in cl.rgs:
                    st, h, _ = rg.public("GET", "/auth", headers={"Cookie": ck})
                    assert st == 200 and h.get("x-rolegate-roles") == "admin", (rg.name, st)
            for rg in cl.rgs:
                _, st, data = login(rg, rg, org, "new@acme.example", ["admins"])
                assert st == 503 and reason_of(data) == "store_unavailable", \
                    (rg.name, st, data[:300])
                st, _, e = rg.admin("POST", "/authorization/roles",
                                    {"slug": "while-down", "name": "w"})
                assert st == 503 and e.get("code") == "store_unavailable", (st, e)
        finally:
            pg_ctl("start")
        for rg in cl.rgs:
            def back(rg=rg):
                _, st, _ = login(rg, rg, org, f"after-{rg.name}@acme.example",
                                 ["engineering"])
                return st == 302
            wait_until(back, 15, f"a login on {rg.name} after PostgreSQL is back")
            assert rg.proc.poll() is None
        assert a.admin("GET", "/authorization/roles/while-down")[0] == 404


if __name__ == "__main__":
    run_all()
