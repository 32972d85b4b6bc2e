#!/usr/bin/env python3
"""Directory sync over real sockets (issue 12; RBAC.md R26-R31): the SCIM
2.0 endpoint on the public listener and the directory admin routes.
  - replays of the Okta and Entra ID request sequences in tests/cases/scim/
    (one test per file);
  - R28 roles from group mappings (single and multiple roles), R29 roles
    recomputed on every change that affects them (membership, mapping, group
    deletion, priority order, default role, role deletion, an API-set role
    overridden by the next directory change), with events (R26);
  - R30 deactivation and deletion: sessions refused at once, the membership
    inactive / deleted, an SSO login refused 403 user_deprovisioned,
    reactivation restores it;
  - R31 directory deletion (202, job) and token rotation;
  - bad input changes nothing: malformed JSON, unknown attributes, unknown
    filter operators, oversized bodies, wrong types, userName conflicts,
    nonexistent members, a PATCH with one bad operation, wrong tokens.
Imported, it provides the Dsync client (the benchmark uses it)."""
import contextlib
import http.client
import json
import os
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_saml_common import LoginServer as Rolegate  # noqa: E402

test = harness.test if __name__ == "__main__" else (lambda fn: fn)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = os.path.join(ROOT, "tests", "cases", "scim")
MS = "/user_management/organization_memberships"
CT = "application/scim+json"
PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


class Dsync:
    """An organization, a directory and a keep-alive SCIM client for it."""

    def __init__(self, rg, org=None, dtype="okta scim v2.0"):
        self.rg = rg
        self.org = org or ok(rg.admin("POST", "/organizations", {"name": "Acme"}), 201)["id"]
        d = ok(rg.admin("POST", f"/organizations/{self.org}/directories",
                        {"name": "IdP", "type": dtype}), 201)
        self.dir, self.token = d["id"], d["bearer_token"]
        self.base = urllib.parse.urlsplit(d["scim_base_url"]).path
        self.conn = None

    def raw(self, method, path, body=None, token=None, ctype=CT, port=None):
        """body: dict/list (JSON), bytes or None. Returns (status, headers, json|None)."""
        h = {"Authorization": "Bearer " + (self.token if token is None else token)}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if body is not None and ctype:
            h["Content-Type"] = ctype
        path = urllib.parse.quote(path, safe="/?=&%:@$,")
        for attempt in (0, 1):
            if self.conn is None or port:
                c = http.client.HTTPConnection("127.0.0.1", port or self.rg.public_port,
                                               timeout=60)
                if not port:
                    self.conn = c
            else:
                c = self.conn
            try:
                c.request(method, self.base + path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                hd = {k.lower(): v for k, v in r.getheaders()}
                if port or r.getheader("Connection", "").lower() == "close":
                    c.close()
                    if not port:
                        self.conn = None
                return r.status, hd, json.loads(data) if data else None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                c.close()
                self.conn = None
                if attempt:
                    raise

    def scim(self, method, path, body=None, **kw):
        st, _, b = self.raw(method, path, body, **kw)
        return st, b

    def user(self, name, **extra):
        body = {"schemas": [USER], "userName": name, "active": True,
                "emails": [{"primary": True, "type": "work", "value": name}]}
        body.update(extra)
        st, b = self.scim("POST", "/Users", body)
        assert st == 201, (st, b)
        return b["id"]

    def group(self, name, members=()):
        st, b = self.scim("POST", "/Groups", {"displayName": name,
                                              "members": [{"value": m} for m in members]})
        assert st == 201, (st, b)
        return b["id"]

    def patch(self, kind, rid, *ops, want=(200, 204)):
        st, b = self.scim("PATCH", f"/{kind}/{rid}", {"schemas": [PATCHOP], "Operations": list(ops)})
        assert st in want, (st, b)
        return b

    def duser(self, uid):
        return ok(self.rg.admin("GET", f"/directory_users/{uid}"), 200)

    def membership(self, uid):
        u = self.duser(uid)
        page = ok(self.rg.admin("GET", f"{MS}?user_id={u['user_id']}&organization_id={self.org}"), 200)
        return page["data"][0] if page["data"] else None

    def map(self, *pairs):
        return ok(self.rg.admin("PUT", f"/directories/{self.dir}/role_mappings",
                                [{"directory_group_id": g, "role_slug": r} for g, r in pairs]), 200)


def ok(res, *want):
    st, _, body = res
    assert st in want, (st, body)
    return body


def setup_roles(rg, multiple=False):
    """Environment roles admin > member > viewer (member is the default)."""
    for slug in ("admin", "viewer"):
        ok(rg.admin("POST", "/authorization/roles", {"slug": slug, "name": slug}), 201)
    ok(rg.admin("PUT", "/authorization/roles/priority", {"slugs": ["admin", "member", "viewer"]}), 200)
    if multiple:
        ok(rg.admin("PATCH", "/environment", {"multiple_roles": True}), 200)


def events(rg, name=None):
    return rg.events(name)


@contextlib.contextmanager
def dsync_env(multiple=False):
    """A gateway with roles admin > member > viewer and one directory."""
    with Rolegate() as rg:
        setup_roles(rg, multiple)
        yield rg, Dsync(rg)


# ---- the replays ----------------------------------------------------------------

def subst(v, vars_):
    if isinstance(v, str):
        for k, x in vars_.items():
            v = v.replace("${" + k + "}", str(x))
        return v
    if isinstance(v, list):
        return [subst(x, vars_) for x in v]
    if isinstance(v, dict):
        return {k: subst(x, vars_) for k, x in v.items()}
    return v


def match(want, got, where="$"):
    if want == "*":
        assert got is not None, f"{where}: missing"
        return
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: want an object, got {got!r}"
        for k, v in want.items():
            assert k in got, f"{where}.{k}: missing in {json.dumps(got)[:300]}"
            match(v, got[k], f"{where}.{k}")
        return
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), \
            f"{where}: want {len(want)} elements, got {json.dumps(got)[:300]}"
        for i, (w, g) in enumerate(zip(want, got)):
            match(w, g, f"{where}[{i}]")
        return
    assert want == got, f"{where}: want {want!r}, got {got!r}"


def dig(obj, path):
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def replay(rg, case):
    ds = Dsync(rg, dtype="azure scim v2.0" if case["client"] == "entra" else "okta scim v2.0")
    vars_ = {"dir": ds.dir, "org": ds.org}
    for i, step in enumerate(case["steps"]):
        if "generate_users" in step:
            for k in range(step["generate_users"]):
                ds.user(f"{step['prefix']}-{k}@example.com")
            continue
        path, body = subst(step["path"], vars_), subst(step.get("body"), vars_)
        if "admin" in step:
            st, _, got = rg.admin(step["admin"], urllib.parse.quote(path, safe="/?=&%:@$,"), body)
        else:
            st, got = ds.scim(step["method"], path, body)
        what = f"{case['name']}: step {i} {step.get('admin') or step['method']} {path}"
        assert st == step["status"], f"{what}: status {st}, want {step['status']}: {got}"
        if "expect" in step:
            try:
                match(subst(step["expect"], vars_), got)
            except AssertionError as e:
                raise AssertionError(f"{what}: {e}") from None
        for name, p in step.get("save", {}).items():
            vars_[name] = dig(got, p)
    return len(case["steps"])


def _case_test(fname):
    def fn():
        with open(os.path.join(CASES, fname)) as f:
            case = json.load(f)
        with Rolegate() as rg:
            setup_roles(rg)
            n = replay(rg, case)
            print(f"  {fname}: {n} steps replayed", flush=True)
    fn.__name__ = "test_replay_" + fname[:-5].replace("-", "_")
    return fn


for _f in sorted(os.listdir(CASES)):
    if _f.endswith(".json"):
        test(_case_test(_f))


# ---- R28 / R29 ------------------------------------------------------------------

@test
def test_R28_single_role_highest_priority_mapped_multiple_roles_every_mapped():
    with dsync_env() as (rg, ds):
        u = ds.user("ann@example.com")
        g_view, g_admin = ds.group("Viewers", [u]), ds.group("Admins", [u])
        assert ds.membership(u)["role_source"] == "default"
        ds.map((g_view, "viewer"), (g_admin, "admin"))
        m = ds.membership(u)
        assert [r["slug"] for r in m["roles"]] == ["admin"] and m["role_source"] == "directory", m
        ok(rg.admin("PATCH", "/environment", {"multiple_roles": True}), 200)
        ds.patch("Groups", g_view, {"op": "add", "path": "members", "value": [{"value": u}]})
        ds.patch("Users", u, {"op": "replace", "path": "title", "value": "x"})   # any change of u
        m = ds.membership(u)
        assert [r["slug"] for r in m["roles"]] == ["admin", "viewer"], m
        du = ds.duser(u)
        assert du["role"] == {"slug": "admin"} and len(du["roles"]) == 2, du


@test
def test_R29_roles_follow_membership_mapping_group_deletion_priority_and_role_deletion():
    with dsync_env() as (rg, ds):
        u = ds.user("bo@example.com")
        g = ds.group("Team")
        ds.map((g, "viewer"))
        n0 = len(events(rg, "organization_membership.updated"))
        ds.patch("Groups", g, {"op": "add", "path": "members", "value": [{"value": u}]})
        assert ds.membership(u)["roles"] == [{"slug": "viewer"}]           # membership change
        assert len(events(rg, "organization_membership.updated")) == n0 + 1
        assert len(events(rg, "dsync.group.user_added")) == 1
        g2 = ds.group("Leads", [u])
        ds.map((g, "viewer"), (g2, "member"))
        assert ds.membership(u)["roles"] == [{"slug": "member"}]           # mapping change
        ok(rg.admin("PUT", "/authorization/roles/priority",
                    {"slugs": ["admin", "viewer", "member"]}), 200)
        assert ds.membership(u)["roles"] == [{"slug": "viewer"}]           # priority order
        st, _ = ds.scim("DELETE", f"/Groups/{g}")
        assert st == 204
        assert ds.membership(u)["roles"] == [{"slug": "member"}]           # group deletion
        ds.map((g2, "viewer"))
        assert ds.membership(u)["roles"] == [{"slug": "viewer"}]
        ok(rg.admin("DELETE", "/authorization/roles/viewer"), 202)         # role deletion
        m = ds.membership(u)
        assert m["roles"] == [{"slug": "member"}] and m["role_source"] == "default", m
        assert ok(rg.admin("GET", f"/directories/{ds.dir}/role_mappings"), 200) == []


@test
def test_R29_api_set_roles_last_until_the_next_directory_change():
    with dsync_env() as (rg, ds):
        u = ds.user("cy@example.com")
        g = ds.group("Admins", [u])
        ds.map((g, "admin"))
        m = ds.membership(u)
        ok(rg.admin("PUT", f"{MS}/{m['id']}", {"role_slug": "viewer"}), 200)
        m = ds.membership(u)
        assert m["role_source"] == "api" and m["roles"] == [{"slug": "viewer"}], m
        ds.patch("Users", u, {"op": "Replace", "path": "displayName", "value": "Cy"})
        m = ds.membership(u)
        assert m["role_source"] == "directory" and m["roles"] == [{"slug": "admin"}], m


# ---- R30 ------------------------------------------------------------------------

def admin_session(rg, om):
    return ok(rg.admin("POST", "/sessions", {"organization_membership_id": om,
                                             "reason": "test"}), 201)["token"]


def auth_status(rg, token):
    return rg.public("GET", "/auth", headers={"Cookie": f"rolegate={token}"})[0]


@test
def test_R30_deactivation_revokes_sessions_at_once_reactivation_restores():
    with dsync_env() as (rg, ds):
        u = ds.user("dee@example.com")
        other = ds.user("eve@example.com")
        g = ds.group("Admins", [u])
        ds.map((g, "admin"))
        tok = admin_session(rg, ds.membership(u)["id"])
        tok_other = admin_session(rg, ds.membership(other)["id"])
        assert auth_status(rg, tok) == 200
        ds.patch("Users", u, {"op": "Replace", "path": "active", "value": False})
        assert auth_status(rg, tok) == 401                  # at once, same instance
        assert auth_status(rg, tok_other) == 200            # nobody else's
        m = ds.membership(u)
        assert m["status"] == "inactive", m
        st, _, e = rg.admin("POST", "/sessions", {"organization_membership_id": m["id"],
                                                  "reason": "test"})
        assert st == 403 and e["code"] == "user_deprovisioned", (st, e)   # no new session
        time.sleep(1.1)   # a token issued in the revocation's second stays refused
        st, _ = ds.scim("PUT", f"/Users/{u}", {"schemas": [USER], "userName": "dee@example.com",
                                               "emails": [{"value": "dee@example.com"}],
                                               "active": True})
        assert st == 200
        m = ds.membership(u)
        assert m["status"] == "active" and m["roles"] == [{"slug": "admin"}], m
        assert auth_status(rg, tok) == 401                  # the old session stays dead
        assert auth_status(rg, admin_session(rg, m["id"])) == 200
        st, _ = ds.scim("DELETE", f"/Users/{other}")
        assert st == 204 and auth_status(rg, tok_other) == 401   # deleted: revoked too
        assert ok(rg.admin("GET", f"/directory_users?directory={ds.dir}"), 200)["data"][0]["id"] == u


@test
def test_R30_sso_login_of_deprovisioned_user_refused_403_user_deprovisioned():
    from test_saml_common import SamlEnv, Browser, reason_of, auth as b_auth
    with SamlEnv() as env:
        rg = env.rg
        ds = Dsync(rg, org=env.org)
        u = ds.user("alice@example.com")
        b = Browser()
        st, _, _ = env.login(b, user="alice@example.com", groups=("engineering",))
        assert st == 302, st
        assert b_auth(b, rg)[0] == 200
        du = ds.duser(u)
        ms = [m for m in env.rg.memberships(env.org)]
        assert len(ms) == 1 and ms[0]["user_id"] == du["user_id"], ms   # R27: one membership
        ds.patch("Users", u, {"op": "replace", "value": {"active": False}})
        assert b_auth(b, rg)[0] == 401
        st, _, data = env.login(Browser(), user="alice@example.com", groups=("engineering",))
        assert st == 403 and reason_of(data) == "user_deprovisioned", (st, data[:200])
        fails = rg.failures()
        assert fails and fails[-1]["data"].get("code", fails[-1]["data"].get("reason")) \
            in ("user_deprovisioned", None), fails[-1]


# ---- R31 ------------------------------------------------------------------------

@test
def test_R31_token_rotation_invalidates_the_old_token_at_once():
    with Rolegate() as rg:
        ds = Dsync(rg)
        old = ds.token
        assert ds.scim("GET", "/Users")[0] == 200
        new = ok(rg.admin("POST", f"/directories/{ds.dir}/token"), 200)["bearer_token"]
        assert new != old
        st, b = ds.scim("POST", "/Users", {"userName": "x@example.com"}, token=old)
        assert st == 401 and b["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"], b
        ds.token = new
        assert ds.scim("GET", "/Users")[1]["totalResults"] == 0   # nothing was created
        d = ok(rg.admin("GET", f"/directories/{ds.dir}"), 200)
        assert "bearer_token" not in d and "token_hash" not in d, d


@test
def test_R31_directory_deletion_202_removes_users_groups_memberships_keep_default():
    with dsync_env() as (rg, ds):
        users = [ds.user(f"u{i}@example.com") for i in range(5)]
        g = ds.group("Admins", users)
        ds.map((g, "admin"))
        ms = {u: ds.membership(u)["id"] for u in users}
        st, _, d = rg.admin("DELETE", f"/directories/{ds.dir}")
        assert st == 202 and d["state"] == "deleting", (st, d)
        assert ds.scim("GET", "/Users")[0] == 401          # its endpoint stops at once
        harness.wait_until(lambda: rg.admin("GET", f"/directories/{ds.dir}")[0] == 404, 10,
                           "the deletion job")
        assert ok(rg.admin("GET", f"/directory_users?directory={ds.dir}"), 200)["data"] == []
        for om in ms.values():
            m = ok(rg.admin("GET", f"{MS}/{om}"), 200)
            assert m["roles"] == [{"slug": "member"}] and m["role_source"] == "default", m
        names = [e["event"] for e in events(rg)]
        assert "directory.deleted" in names and names.count("dsync.user.deleted") == 5


# ---- bad input changes nothing ---------------------------------------------------

def snapshot(rg, ds):
    users = ds.scim("GET", "/Users?count=1000")[1]
    groups = ds.scim("GET", "/Groups?count=1000")[1]
    return json.dumps([users, groups], sort_keys=True), len(events(rg))


@test
def test_bad_input_is_refused_with_scim_errors_and_changes_nothing():
    with dsync_env() as (rg, ds):
        u = ds.user("fay@example.com")
        g = ds.group("G", [u])
        before = snapshot(rg, ds)
        cases = [
            ("POST", "/Users", b'{"userName": "a@b.c",', 400, "invalidSyntax"),       # malformed
            ("POST", "/Users", {"userName": "a@b.c", "favoriteColor": "red"}, 400, "invalidSyntax"),
            ("POST", "/Users", {"userName": "a@b.c", "name": {"nick": "x"}}, 400, "invalidSyntax"),
            ("POST", "/Users", {"userName": 5}, 400, "invalidValue"),                # wrong types
            ("POST", "/Users", {"userName": "a@b.c", "active": "maybe"}, 400, "invalidValue"),
            ("POST", "/Users", {"userName": "a@b.c", "emails": "a@b.c"}, 400, "invalidValue"),
            ("POST", "/Users", {"active": True}, 400, "invalidValue"),               # no userName
            ("POST", "/Users", {"userName": "FAY@example.com"}, 409, "uniqueness"),  # conflict
            ("PUT", f"/Users/{u}", {"userName": "fay@example.com", "active": 1}, 400, "invalidValue"),
            ("PATCH", f"/Users/{u}", {"schemas": [PATCHOP], "Operations": [
                {"op": "replace", "path": "title", "value": "ok"},
                {"op": "replace", "path": "shoeSize", "value": "44"}]}, 400, "invalidPath"),
            ("PATCH", f"/Users/{u}", {"schemas": [PATCHOP], "Operations": [
                {"op": "replace", "path": "title", "value": "ok"},
                {"op": "replace", "path": "active", "value": "nope"}]}, 400, "invalidValue"),
            ("PATCH", f"/Users/{u}", {"schemas": [PATCHOP], "Operations": [
                {"op": "frobnicate", "path": "title", "value": "x"}]}, 400, "invalidSyntax"),
            ("PATCH", f"/Users/{u}", {"schemas": [PATCHOP], "Operations": []}, 400, "invalidSyntax"),
            ("PATCH", f"/Users/{u}", {"schemas": [PATCHOP], "Operations": [
                {"op": "replace", "path": "emails[type co \"w\"].value", "value": "x"}]}, 400,
             "invalidPath"),
            ("POST", "/Groups", {"displayName": "H", "members": [{"value": "directory_user_nope"}]},
             400, "invalidValue"),                                               # no such member
            ("PATCH", f"/Groups/{g}", {"schemas": [PATCHOP], "Operations": [
                {"op": "replace", "path": "displayName", "value": "renamed"},
                {"op": "add", "path": "members", "value": [{"value": "directory_user_nope"}]}]},
             400, "invalidValue"),
            ("POST", "/Groups", {"displayName": "H", "owner": "x"}, 400, "invalidSyntax"),
            ("POST", "/Groups", {"members": []}, 400, "invalidValue"),
        ]
        for method, path, body, status, stype in cases:
            st, b = ds.scim(method, path, body)
            assert st == status and b.get("scimType") == stype, (method, path, body, st, b)
            assert b["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"], b
            assert b["status"] == str(status) and b["detail"], b
        for q, why in (("/Users?filter=userName co \"fay\"", "operator"),
                       ("/Users?filter=userName eq \"a\" or userName eq \"b\"", "or"),
                       ("/Users?filter=title eq \"x\"", "attribute"),
                       ("/Users?filter=userName eq fay", "value"),
                       ("/Users?filter=(userName eq \"a\")", "parentheses")):
            st, b = ds.scim("GET", q)
            assert st == 400 and b["scimType"] == "invalidFilter", (q, st, b)
        st, b = ds.scim("GET", "/Users?startIndex=abc")
        assert st == 400 and b["scimType"] == "invalidValue", b
        big = {"userName": "big@example.com", "title": "x" * (1024 * 1024 + 10)}
        st, b = ds.scim("POST", "/Users", big)
        assert st == 413, (st, b)
        st, b = ds.scim("POST", "/Users", {"userName": "t@example.com"}, ctype="text/plain")
        assert st == 415, (st, b)
        for tok in ("", "wrong", ds.token + "x", ds.token[:-1]):
            st, b = ds.scim("POST", "/Users", {"userName": "t@example.com"}, token=tok)
            assert st == 401, (tok, st, b)
        ds2 = Dsync(rg, org=ds.org)   # another directory's token is not this one's
        st, _, _ = ds.raw("DELETE", f"/Users/{u}", token=ds2.token)
        assert st == 401
        assert snapshot(rg, ds)[0] == before[0]
        assert snapshot(rg, ds)[1] == before[1] + 1   # only directory.created of ds2


@test
def test_R26_dsync_events_emitted_and_a_no_op_emits_nothing():
    with dsync_env() as (rg, ds):
        u = ds.user("gil@example.com")
        # the created objects in the events are the ones the admin API reads back
        ev = events(rg, "dsync.user.created")[0]["data"]
        assert ev == ds.duser(u), (ev, ds.duser(u))
        mev = events(rg, "organization_membership.created")[0]["data"]
        assert mev == ds.membership(u), (mev, ds.membership(u))
        g = ds.group("G")
        ds.patch("Groups", g, {"op": "add", "path": "members", "value": [{"value": u}]})
        n = len(events(rg))
        ds.patch("Groups", g, {"op": "add", "path": "members", "value": [{"value": u}]})  # no-op
        assert len(events(rg)) == n
        ds.patch("Groups", g, {"op": "remove", "path": f"members[value eq \"{u}\"]"})
        ds.scim("DELETE", f"/Groups/{g}")
        ds.scim("DELETE", f"/Users/{u}")
        names = [e["event"] for e in events(rg)]
        for want in ("directory.created", "dsync.user.created", "dsync.group.created",
                     "dsync.group.user_added", "dsync.group.user_removed", "dsync.group.deleted",
                     "dsync.user.deleted", "user.created", "organization_membership.created",
                     "organization_membership.deleted"):
            assert want in names, (want, names)
        added = events(rg, "dsync.group.user_added")[0]["data"]
        assert added["user"]["id"] == u and added["group"]["id"] == g, json.dumps(added)


@test
def test_R23_R27_sigkill_during_scim_writes_loses_and_duplicates_nothing():
    """Every write is one transaction: rolegate SIGKILLed while two clients
    create users and add them to a mapped group; after the restart every
    acknowledged user is there exactly once, each with its membership and
    the role of its group, and no half-written user exists."""
    import threading
    with dsync_env() as (rg, ds):
        g = ds.group("Admins")
        ds.map((g, "admin"))
        acked, stop = [], threading.Event()

        def writer(k):
            c = Dsync.__new__(Dsync)
            c.__dict__.update(ds.__dict__)
            c.conn = None
            i = 0
            while not stop.is_set():
                try:
                    st, b = c.scim("POST", "/Users", {"userName": f"w{k}-{i}@example.com"})
                    if st == 201:
                        st2, _ = c.scim("PATCH", f"/Groups/{g}", {"schemas": [PATCHOP],
                                        "Operations": [{"op": "add", "path": "members",
                                                        "value": [{"value": b["id"]}]}]})
                        acked.append((b["id"], st2 == 204))
                except OSError:
                    return
                i += 1

        ts = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        for t in ts:
            t.start()
        harness.wait_until(lambda: len(acked) >= 30, 20, "some writes")
        rg.proc.kill()
        rg.proc.wait()
        stop.set()
        for t in ts:
            t.join()
        rg.proc = None
        rg.start()
        ds.conn = None
        st, b = ds.scim("GET", "/Users?count=1000")
        ids = [u["id"] for u in b["Resources"]]
        assert len(ids) == len(set(ids)) == b["totalResults"], b["totalResults"]
        names = [u["userName"] for u in b["Resources"]]
        assert len(names) == len(set(names))
        for uid, in_group in acked:
            assert uid in ids, uid
            du = ds.duser(uid)
            want = "admin" if in_group else du["role"]["slug"]
            assert du["role"] == {"slug": want}, du
        for uid in ids:   # none half-written: each has its user and membership
            du = ds.duser(uid)
            assert du["user_id"] and du["role"], du
        members = ds.scim("GET", f"/Groups/{g}")[1]["members"]
        assert {m["value"] for m in members} >= {u for u, ok_ in acked if ok_}
        ms = rg.memberships(ds.org)
        assert len(ms) == len(ids), (len(ms), len(ids))
        print(f"  {len(acked)} acknowledged creates before SIGKILL, {len(ids)} users after "
              f"restart", flush=True)


if __name__ == "__main__":
    harness.run_all()
