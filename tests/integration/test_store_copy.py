#!/usr/bin/env python3
"""Issue 15: `rolegate store copy FROM TO`. A rich store is built through the
admin API, SAML logins and SCIM on SQLite (roles of both scopes, priorities,
an organization default role, multiple_roles, group mappings, SAML and OIDC
connections, admin sessions and a revoked one, a directory with SCIM users
and groups, a finished role deletion job, events), copied into a fresh
PostgreSQL database, served from there and compared object by object through
the admin API (every list walked page by page, every object fetched, the
events in order) and table by table in SQL; then copied back into a new
SQLite file and compared again. Also: a non-empty TO refused (exit 2, TO
unchanged), a failure midway leaves TO empty, FROM at another schema version
or with a table the copy does not know refused, bad and unreachable URLs
answered without their password, new objects on the copy (the sequences).

Runs with a PostgreSQL server of its own: without ROLEGATE_TEST_PG it
re-runs itself under tests/with-postgres, so it is never skipped."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import harness  # noqa: E402
harness.on_postgres(__file__)
from harness import run_all, test  # noqa: E402
from test_saml_common import (Browser, FixtureIdp, LoginServer, setup_roles,  # noqa: E402
                              setup_saml_connection)
from test_scim import Dsync  # noqa: E402

MS = "/user_management/organization_memberships"
PW = "s3cretPW-do-not-print"


def copy(frm, to):
    r = subprocess.run([harness.BIN, "store", "copy", frm, to], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def counts(out):
    """The table -> rows lines of a copy's output, and the total."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    total = rows.pop("total", None)
    return rows, total


# ---- the store, through the API ---------------------------------------------------

def pages(rg, path, limit=3):
    """Every item of a paginated list, walked with after= cursors."""
    out, after = [], None
    sep = "&" if "?" in path else "?"
    while True:
        q = f"{path}{sep}limit={limit}" + (f"&after={after}" if after else "")
        page = rg.ok("GET", q)
        out += page["data"]
        after = page["list_metadata"]["after"]
        if not after or not page["data"]:
            return out


def snapshot(rg, dsync):
    """Every object the admin API shows (lists and each object by its own
    GET), the events in order, and the SCIM view of the directory."""
    s = {"environment": rg.ok("GET", "/environment")}
    perms = pages(rg, "/authorization/permissions")
    s["permissions"] = perms
    s["permission"] = {p["slug"]: rg.ok("GET", f"/authorization/permissions/{p['slug']}")
                       for p in perms}
    roles = rg.ok("GET", "/authorization/roles")
    s["roles"] = roles
    s["role"] = {r["slug"]: rg.ok("GET", f"/authorization/roles/{r['slug']}")
                 for r in roles["data"]}
    orgs = pages(rg, "/organizations")
    s["organizations"] = orgs
    for o in orgs:
        oid = o["id"]
        s[f"org {oid}"] = rg.ok("GET", f"/organizations/{oid}")
        oroles = rg.ok("GET", f"/authorization/organizations/{oid}/roles")
        s[f"org roles {oid}"] = oroles
        for r in oroles["data"]:
            s[f"org role {oid} {r['slug']}"] = rg.ok(
                "GET", f"/authorization/organizations/{oid}/roles/{r['slug']}")
        conns = pages(rg, f"/organizations/{oid}/connections")
        s[f"connections {oid}"] = conns
        for c in conns:
            cid = c["id"]
            s[f"connection {cid}"] = rg.ok("GET", f"/connections/{cid}")
            s[f"mappings {cid}"] = rg.ok("GET", f"/connections/{cid}/role_mappings")
            s[f"logins {cid}"] = rg.ok("GET", f"/connections/{cid}/logins")
    users = pages(rg, "/user_management/users")
    s["users"] = users
    s["user"] = {u["id"]: rg.ok("GET", f"/user_management/users/{u['id']}") for u in users}
    mships = pages(rg, MS)
    s["memberships"] = mships
    for m in mships:
        s[f"membership {m['id']}"] = rg.ok("GET", f"{MS}/{m['id']}")
        s[f"sessions {m['id']}"] = pages(rg, f"{MS}/{m['id']}/sessions")
    dirs = pages(rg, "/directories")
    s["directories"] = dirs
    for d in dirs:
        s[f"directory {d['id']}"] = rg.ok("GET", f"/directories/{d['id']}")
        s[f"dir mappings {d['id']}"] = rg.ok("GET", f"/directories/{d['id']}/role_mappings")
        du = pages(rg, f"/directory_users?directory={d['id']}")
        s[f"directory users {d['id']}"] = du
        for u in du:
            s[f"directory user {u['id']}"] = rg.ok("GET", f"/directory_users/{u['id']}")
        dg = pages(rg, f"/directory_groups?directory={d['id']}")
        s[f"directory groups {d['id']}"] = dg
        for g in dg:
            s[f"directory group {g['id']}"] = rg.ok("GET", f"/directory_groups/{g['id']}")
    s["events"] = pages(rg, "/events?order=asc", limit=100)
    # the SCIM client's view, with the bearer token issued on the first store
    # (its hash was copied)
    dsync.rg, dsync.conn = rg, None
    for kind in ("Users", "Groups"):
        st, body = dsync.scim("GET", f"/{kind}?count=100")
        assert st == 200, (kind, st, body)
        s[f"scim {kind}"] = body
    return s


def compare(a, b, what):
    assert set(a) == set(b), (what, set(a) ^ set(b))
    for k in a:
        assert a[k] == b[k], f"{what}: {k} differs:\n  {json.dumps(a[k])[:1500]}\n  " \
                             f"{json.dumps(b[k])[:1500]}"


# ---- the store, in SQL --------------------------------------------------------------

def sqlite_dump(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                      " AND name NOT LIKE 'sqlite%' ORDER BY name")]
    out = {}
    for t in names:
        order = "seq" if t == "events" else "rowid"
        out[t] = [dict(r) for r in db.execute(f'SELECT * FROM "{t}" ORDER BY {order}')]
    out["schema_version"] = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return canon(out)


def pg_dump(url):
    db = url.rsplit("/", 1)[1]
    names = harness.pg_sql(db, "SELECT table_name FROM information_schema.tables WHERE"
                               " table_schema = current_schema() AND table_name <>"
                               " 'rolegate_schema' ORDER BY table_name").split()
    out = {}
    for t in names:
        order = " ORDER BY seq" if t == "events" else ""
        out[t] = json.loads(harness.pg_sql(
            db, f'SELECT coalesce(json_agg(x{order}), \'[]\') FROM "{t}" x'))
    out["schema_version"] = int(harness.pg_sql(db, "SELECT version FROM rolegate_schema"))
    return canon(out)


def canon(d):
    """Rows as sets (sorted), except events: in seq order."""
    return {t: rows if t in ("events", "schema_version")
            else sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
            for t, rows in d.items()}


# ---- building the first store ---------------------------------------------------------

class World:
    """One shared directory: the SQLite stores, and the key files every
    instance of the test uses (the same SAML SP key and session keys, the same
    ports: the copies answer exactly what the first store did)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rg-copy-")
        self.sqlite = os.path.join(self.dir, "first.db")
        self.ports = (harness.free_port(), harness.free_port())

    def server(self, database, start=True):
        pub, adm = self.ports
        d = self.dir
        rg = LoginServer(config={
            "store": {"database": database},
            "server": {"public_listen": f"127.0.0.1:{pub}", "admin_listen": f"127.0.0.1:{adm}",
                       "base_url": f"http://127.0.0.1:{pub}",
                       "admin_key_file": os.path.join(d, "admin.key")},
            "session": {"keys_dir": os.path.join(d, "keys")},
            "saml": {"sp_key_file": os.path.join(d, "sp.key"),
                     "sp_cert_file": os.path.join(d, "sp.crt")}}, start=False)
        rg.public_port, rg.admin_port, rg.base = pub, adm, f"http://127.0.0.1:{pub}"
        return rg.start() if start else rg

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def login(rg, idp, org, conn, user, groups):
    b = Browser()
    st, hd, data = b.get(f"{rg.base}/login?organization={org}&connection={conn}&return_to=/app")
    assert st == 302, (st, data[:300])
    loc = Browser.location(hd) + "&user=" + user + "&groups=" + ",".join(groups)
    st, _, data = b.get(loc)
    assert st == 200, (st, data[:300])
    action, fields = Browser.form(data)
    st, _, data = b.post_form(action, fields)
    assert st == 302, (st, data[:300])


def build(rg, idp):
    """Everything the schema has a table for, through the public interfaces."""
    setup_roles(rg)                                    # permissions, roles, priority
    rg.ok("POST", "/authorization/permissions", {"slug": "audit:read", "name": "Audit"})
    rg.ok("POST", "/authorization/roles", {"slug": "auditor", "name": "Auditor",
                                           "description": "reads the audit log"})
    rg.ok("PUT", "/authorization/roles/auditor/permissions", {"permissions": ["audit:read"]})
    rg.ok("POST", "/authorization/roles", {"slug": "doomed", "name": "Doomed"})
    acme = rg.ok("POST", "/organizations", {"name": "Acme", "domains": ["acme.test"]})["id"]
    conn, _sp = setup_saml_connection(rg, acme, idp.metadata)
    idp.start(_sp)
    login(rg, idp, acme, conn, "alice@acme.test", ["engineering", "admins"])
    login(rg, idp, acme, conn, "bob@acme.test", ["viewers"])
    login(rg, idp, acme, conn, "bob@acme.test", ["engineering"])   # second login: roles change
    # an organization with roles of its own (independent), its order and default
    beta = rg.ok("POST", "/organizations", {"name": "Beta", "domains": ["beta.test", "b.test"]})["id"]
    for slug in ("org-lead", "org-dev", "org-guest"):
        rg.ok("POST", f"/authorization/organizations/{beta}/roles", {"slug": slug, "name": slug})
    rg.ok("PUT", f"/authorization/organizations/{beta}/roles/org-dev/permissions",
          {"permissions": ["reports:view"]})
    order = [r["slug"] for r in rg.ok("GET", f"/authorization/organizations/{beta}/roles")["data"]]
    order = ["org-guest"] + [s for s in order if s != "org-guest"]
    rg.ok("PUT", f"/authorization/organizations/{beta}/roles/priority", {"slugs": order})
    rg.ok("PATCH", f"/organizations/{beta}", {"default_role": "org-dev"})
    oidc = rg.ok("POST", f"/organizations/{beta}/connections",
                 {"type": "oidc", "name": "Keycloak", "issuer": "https://kc.example",
                  "client_id": "rolegate", "client_secret": "oidc-client-secret-1"})["id"]
    rg.ok("PUT", f"/connections/{oidc}/role_mappings",
          [{"idp_group": "leads", "role_slug": "org-lead"},
           {"idp_group": "devs", "role_slug": "org-dev"}])
    rg.ok("PATCH", "/environment", {"multiple_roles": True})
    users = [rg.ok("POST", "/user_management/users",
                   {"email": f"u{i}@beta.test", "first_name": f"U{i}", "last_name": "Beta"})["id"]
             for i in range(5)]
    ms = [rg.ok("POST", MS, {"user_id": u, "organization_id": beta})["id"] for u in users]
    rg.ok("PUT", f"{MS}/{ms[0]}", {"role_slugs": ["org-lead", "org-dev"]})
    rg.ok("PUT", f"{MS}/{ms[1]}", {"role_slugs": ["doomed"]})
    # admin sessions, one revoked
    s1 = rg.ok("POST", "/sessions", {"organization_membership_id": ms[0], "reason": "ticket 1"})
    rg.ok("POST", "/sessions", {"organization_membership_id": ms[0], "reason": "ticket 2"})
    rg.ok("DELETE", f"/sessions/{s1['id']}")
    # a directory, SCIM users and a group mapped to a role
    ds = Dsync(rg, org=acme)
    u1 = ds.user("carol@acme.test", displayName="Carol C", title="Auditor")
    u2 = ds.user("dave@acme.test", externalId="ext-dave")
    g = ds.group("Auditors", [u1, u2])
    ds.map((g, "auditor"))
    # a role deleted while a membership holds it: its job runs to the end
    rg.ok("DELETE", "/authorization/roles/doomed")
    harness.wait_until(lambda: rg.api("GET", "/authorization/roles/doomed")[0] == 404, 15,
                       "the deletion job")
    # a few more writes of the usual kinds
    rg.ok("DELETE", "/authorization/permissions/reports:edit")
    rg.ok("DELETE", f"/user_management/users/{users[4]}")
    rg.ok("PATCH", "/authorization/roles/viewer", {"description": "sees reports"})
    return ds


# ---- the tests --------------------------------------------------------------------------

STATE = {}


def first_store():
    """The SQLite store built once, its snapshot and SQL dump (shared by the
    tests below)."""
    if STATE:
        return STATE
    w = World()
    rg = w.server(w.sqlite)
    idp = FixtureIdp()
    try:
        ds = build(rg, idp)
        snap = snapshot(rg, ds)
        rg.stop()
    finally:
        idp.stop()
        rg.close()
    STATE.update(world=w, ds=ds, snap=snap, dump=sqlite_dump(w.sqlite))
    return STATE


def serves_the_same(st, store, what):
    """A rolegate on the copy store serves every object of the first
    store's snapshot the same."""
    rg = st["world"].server(store)
    try:
        compare(st["snap"], snapshot(rg, st["ds"]), what)
        rg.stop()
    finally:
        rg.close()


@test
def test_copy_sqlite_to_postgresql_and_back_every_object_equal():
    st = first_store()
    w, dump = st["world"], st["dump"]
    # the store is rich: every table has rows (sessions, jobs, identities, ...)
    # but shared_state: on SQLite the cache layer keeps replay ids and login
    # state in process (issue 15: the table serves PostgreSQL's instances)
    empty = [t for t, rows in dump.items()
             if t not in ("schema_version", "shared_state") and not rows]
    assert not empty, f"tables the test leaves empty: {empty}"
    pg = harness.pg_database_new()
    st["pg"] = pg
    rc, out, err = copy(w.sqlite, pg)
    assert rc == 0, (rc, out, err)
    rows, total = counts(out)
    want = {t: len(r) for t, r in dump.items() if t != "schema_version"}
    assert rows == want, (rows, want)
    assert total == sum(want.values()), (total, out)
    assert list(rows) == [line.split()[0] for line in out.splitlines()[:len(rows)]]
    assert pg_dump(pg) == dump, "the PostgreSQL tables differ from the SQLite ones"
    # served from PostgreSQL: every object the same
    serves_the_same(st, pg, "SQLite -> PostgreSQL")
    assert pg_dump(pg) == dump, "serving the copy changed it"
    # and back into a new SQLite file
    back = os.path.join(w.dir, "back.db")
    rc, out, err = copy(pg, back)
    assert rc == 0, (rc, out, err)
    assert counts(out)[0] == want, out
    assert sqlite_dump(back) == dump, "the round trip changed a table"
    serves_the_same(st, back, "PostgreSQL -> SQLite")


@test
def test_after_the_copy_new_objects_on_postgresql():
    """The identity sequence (events.seq) is past the copied values: writes
    on the copy succeed and their events come after the copied ones."""
    st = first_store()
    pg = harness.pg_database_new()
    rc, out, err = copy(st["world"].sqlite, pg)
    assert rc == 0, (rc, out, err)
    db = pg.rsplit("/", 1)[1]
    top = int(harness.pg_sql(db, "SELECT max(seq) FROM events"))
    b = st["world"].server(pg)
    try:
        b.ok("POST", "/authorization/roles", {"slug": "after-copy", "name": "After"})
        b.ok("POST", "/authorization/permissions", {"slug": "after:copy", "name": "After"})
        org = b.ok("POST", "/organizations", {"name": "Gamma"})["id"]
        b.ok("POST", f"/authorization/organizations/{org}/roles", {"slug": "org-new", "name": "N"})
        evs = b.events()
        assert [e["event"] for e in evs[-4:]] == ["role.created", "permission.created",
                                                 "organization.created",
                                                 "organization_role.created"], evs[-4:]
        assert evs[:-4] == st["snap"]["events"], "the copied events, in order, come first"
        b.stop()
    finally:
        b.close()
    seqs = harness.pg_sql(db, f"SELECT seq FROM events WHERE seq > {top} ORDER BY seq").split()
    assert [int(x) for x in seqs] == list(range(top + 1, top + 5)), (top, seqs)


@test
def test_non_empty_to_refused_exit_2_and_unchanged():
    st = first_store()
    w = st["world"]
    pg = harness.pg_database_new()
    assert copy(w.sqlite, pg)[0] == 0
    before = pg_dump(pg)
    rc, out, err = copy(w.sqlite, pg)
    assert rc == 2, (rc, out, err)
    assert "not empty" in err and "store_not_empty" in err, err
    assert pg_dump(pg) == before
    # a SQLite TO as well (PostgreSQL -> the first store)
    rc, out, err = copy(pg, w.sqlite)
    assert rc == 2 and "not empty" in err, (rc, err)
    assert sqlite_dump(w.sqlite) == st["dump"]
    # a store that was only served (seed) is empty enough; one admin write is not
    fresh = os.path.join(w.dir, "served.db")
    s = w.server(fresh)
    s.stop()
    s.close()
    rc, out, err = copy(pg, fresh)
    assert rc == 0, (rc, err)
    s = w.server(os.path.join(w.dir, "one-write.db"))
    s.ok("POST", "/authorization/permissions", {"slug": "x:y", "name": "X"})
    s.stop()
    rc, out, err = copy(pg, os.path.join(w.dir, "one-write.db"))
    assert rc == 2 and "permissions" in err, (rc, err)
    # the same database on both sides
    rc, out, err = copy(w.sqlite, "sqlite:" + w.sqlite)
    assert rc == 2 and "same database" in err, (rc, err)


@test
def test_failure_midway_leaves_to_as_it_was():
    """A row PostgreSQL refuses (a name that is not UTF-8, which SQLite
    stores as given) in the middle of the copy: exit 1 naming the table, TO
    holds only the seed again (the one transaction rolled back)."""
    st = first_store()
    w = st["world"]
    bad = os.path.join(w.dir, "bad.db")
    shutil.copy(w.sqlite, bad)
    db = sqlite3.connect(bad)
    db.execute("UPDATE users SET first_name = CAST(X'C328' AS TEXT)"
               " WHERE rowid = (SELECT max(rowid) FROM users)")
    db.commit()
    db.close()
    pg = harness.pg_database_new()
    rc, out, err = copy(bad, pg)
    assert rc == 1, (rc, out, err)
    assert "table users" in err and "nothing copied" in err, err
    name = pg.rsplit("/", 1)[1]
    for t in ("organizations", "permissions", "users", "events", "memberships"):
        assert harness.pg_sql(name, f"SELECT count(*) FROM {t}") == "0", t
    assert harness.pg_sql(name, "SELECT slug FROM roles") == "member"
    # and a good copy into it afterwards works (it is empty)
    assert copy(w.sqlite, pg)[0] == 0


@test
def test_from_schema_version_or_unknown_table_refused():
    st = first_store()
    w = st["world"]
    db = sqlite3.connect(f"file:{w.sqlite}?mode=ro", uri=True)
    current = db.execute("PRAGMA user_version").fetchone()[0]   # this build's
    db.close()
    for version, word in ((current - 1, "older"), (current + 1, "newer")):
        f = os.path.join(w.dir, f"v{version}.db")
        shutil.copy(w.sqlite, f)
        db = sqlite3.connect(f)
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
        db.close()
        to = os.path.join(w.dir, f"to-v{version}.db")
        rc, out, err = copy(f, to)
        assert rc == 2 and word in err and "schema_mismatch" in err, (rc, err)
        assert not os.path.exists(to), "nothing created"
    # a table a later migration would add: refused, not silently left out
    f = os.path.join(w.dir, "extra.db")
    shutil.copy(w.sqlite, f)
    db = sqlite3.connect(f)
    db.execute("CREATE TABLE widgets(id TEXT PRIMARY KEY)")
    db.execute("INSERT INTO widgets VALUES ('w1')")
    db.commit()
    db.close()
    pg = harness.pg_database_new()
    rc, out, err = copy(f, pg)
    assert rc == 2 and "widgets" in err and "table_unknown" in err, (rc, err)
    # FROM missing: not created, clear error
    missing = os.path.join(w.dir, "missing.db")
    rc, out, err = copy(missing, os.path.join(w.dir, "x.db"))
    assert rc == 1 and "FROM: cannot open" in err, (rc, err)
    assert not os.path.exists(missing)


@test
def test_bad_or_unreachable_url_clear_error_no_password():
    st = first_store()
    w = st["world"]
    closed = harness.free_port()
    base = harness.PG_BASE.split("//", 1)[1].split("@", 1)[1]   # 127.0.0.1:PORT
    cases = [
        (f"postgresql://rolegate:{PW}@127.0.0.1:{closed}/x", "TO: cannot open"),
        (f"postgresql://rolegate:{PW}@[::1/x", "TO: cannot open"),
        (f"postgresql://rolegate@127.0.0.1:{closed}/x?password={PW}", "TO: cannot open"),
        (f"postgresql://nosuchuser:{PW}@{base}/nosuchdb", "TO: cannot open"),
    ]
    for url, want in cases:
        rc, out, err = copy(w.sqlite, url)
        assert rc == 1, (url, rc, out, err)
        assert want in err and "store_unavailable" in err, (url, err)
        assert PW not in out + err, (url, out, err)
        rc, out, err = copy(url, os.path.join(w.dir, "never.db"))
        assert rc == 1 and "FROM: cannot open" in err, (url, err)
        assert PW not in out + err, (url, out, err)
        assert not os.path.exists(os.path.join(w.dir, "never.db"))
    # usage: exit 2
    for argv in (["store"], ["store", "copy", w.sqlite], ["store", "move", "a", "b"]):
        r = subprocess.run([harness.BIN] + argv, capture_output=True, text=True)
        assert r.returncode == 2 and "usage" in r.stderr, (argv, r.stderr)
    r = subprocess.run([harness.BIN, "store", "copy", "", "b"], capture_output=True, text=True)
    assert r.returncode == 2 and "must each name a database" in r.stderr, r.stderr
    r = subprocess.run([harness.BIN, "help", "store"], capture_output=True, text=True)
    assert r.returncode == 0 and "store copy FROM TO" in r.stdout, r.stdout
    r = subprocess.run([harness.BIN, "--help"], capture_output=True, text=True)
    assert "store copy FROM TO" in r.stdout, r.stdout


if __name__ == "__main__":
    try:
        run_all()
    finally:
        if STATE:
            STATE["world"].close()
