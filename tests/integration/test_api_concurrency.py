#!/usr/bin/env python3
"""Admin API under concurrency: 8 clients creating and deleting roles
(environment and organization, R20 async deletes) and memberships for 10 s
against the real binary. No 5xx, no lost write (the final state equals the
successful operations) and every event present exactly once (R23, R26)."""
import collections
import os
import random
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_api_common import server, events_of, list_all, wait_for  # noqa: E402

MS = "/user_management/organization_memberships"
THREADS = 8
SECONDS = float(os.environ.get("RG_CONCURRENCY_SECONDS", "10"))


class Worker(threading.Thread):
    def __init__(self, idx, api, org):
        super().__init__(daemon=True)
        self.idx, self.api, self.org = idx, api.clone(), org
        self.rng = random.Random(idx)
        self.roles = []                 # (path, slug) alive, created by this worker
        self.created_roles, self.deleted_roles = [], []
        self.members = []               # membership ids alive
        self.created_members, self.deleted_members = [], []
        self.users = 0
        self.updates = 0
        self.errors = []
        self.n = 0

    def expect(self, what, st, body, *ok):
        if st not in ok:
            self.errors.append((what, st, body))
            return False
        return True

    def step(self):
        api, org = self.api, self.org
        op = self.rng.random()
        if op < 0.30 or not self.roles:
            self.n += 1
            if self.idx % 2 == 0:
                path, body = "/authorization/roles", {"slug": f"w{self.idx}-r{self.n}",
                                                      "name": f"W{self.idx} R{self.n}"}
            else:        # organization role with a generated slug (R5)
                path, body = f"/authorization/organizations/{org}/roles", \
                    {"name": f"W{self.idx} R{self.n}"}
            st, r = api.post(path, body)
            if self.expect("create role", st, r, 201):
                self.roles.append((path, r["slug"]))
                self.created_roles.append(r["slug"])
        elif op < 0.45:
            path, slug = self.roles.pop(self.rng.randrange(len(self.roles)))
            st, r = api.delete(f"{path}/{slug}")
            if self.expect("delete role", st, r, 202):
                self.deleted_roles.append(slug)
        elif op < 0.75 or not self.members:
            st, u = api.post("/user_management/users",
                             {"email": f"w{self.idx}-{self.users}@example.com"})
            self.users += 1
            if not self.expect("create user", st, u, 201):
                return
            role = self.rng.choice([s for _, s in self.roles] + ["member"])
            st, m = api.post(MS, {"user_id": u["id"], "organization_id": org,
                                  "role_slug": role})
            if self.expect("create membership", st, m, 201):
                self.members.append(m["id"])
                self.created_members.append(m["id"])
        elif op < 0.85:
            mid = self.rng.choice(self.members)
            role = self.rng.choice([s for _, s in self.roles] + ["member"])
            st, m = api.put(f"{MS}/{mid}", {"role_slug": role})
            if self.expect("update membership", st, m, 200):
                self.updates += 1
        else:
            mid = self.members.pop(self.rng.randrange(len(self.members)))
            st, r = api.delete(f"{MS}/{mid}")
            if self.expect("delete membership", st, r, 204):
                self.deleted_members.append(mid)

    def run(self):
        end = time.monotonic() + SECONDS
        try:
            while time.monotonic() < end and len(self.errors) < 5:
                self.step()
        except Exception as e:  # a dropped connection is a failure too
            self.errors.append(("exception", repr(e), None))
        finally:
            self.api.close()


@test
def test_R23_R26_eight_clients_roles_and_memberships_10s():
    with server() as api:
        st, o = api.post("/organizations", {"name": "Busy"})
        assert st == 201, (st, o)
        org = o["id"]
        workers = [Worker(i, api, org) for i in range(THREADS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(SECONDS + 120)
            assert not w.is_alive(), f"worker {w.idx} hung"
        errors = [e for w in workers for e in w.errors]
        assert not errors, errors[:10]
        created = [s for w in workers for s in w.created_roles]
        deleted = [s for w in workers for s in w.deleted_roles]
        cm = [m for w in workers for m in w.created_members]
        dm = [m for w in workers for m in w.deleted_members]
        assert len(created) > 10 and len(cm) > 10, (len(created), len(cm))
        print(f"ops: roles +{len(created)} -{len(deleted)}, memberships +{len(cm)} "
              f"-{len(dm)}, updates {sum(w.updates for w in workers)}")

        # no lost write: the lists equal the successful operations (R20: a
        # deleted role is gone from lists at once)
        alive = set(created) - set(deleted)
        env = [r["slug"] for r in api.get("/authorization/roles")[1]["data"]]
        orgroles = [r["slug"] for r in api.get(f"/authorization/organizations/{org}/roles")[1]["data"]]
        assert len(orgroles) == len(set(orgroles)), "a role listed twice"
        assert set(orgroles) == alive | {"member"}, (set(orgroles) ^ (alive | {"member"}))
        env_alive = {s for w in workers if w.idx % 2 == 0 for s in w.created_roles} - set(deleted)
        assert set(env) == env_alive | {"member"}, set(env) ^ (env_alive | {"member"})
        members = list_all(api, f"{MS}?organization_id={org}")
        assert sorted(m["id"] for m in members) == sorted(set(cm) - set(dm))

        # the deletion jobs finish: no membership keeps a deleted role (R20)
        gone = set(deleted)

        def settled():
            ms = list_all(api, f"{MS}?organization_id={org}")
            return all(not ({r["slug"] for r in m["roles"]} & gone) for m in ms)
        wait_for(settled, 60, "deletion jobs to reassign every membership")

        # every event exactly once, in order
        def job_events_done():
            n = collections.Counter()
            for e in events_of(api):
                if e["event"] in ("role.deleted", "organization_role.deleted"):
                    n[e["data"].get("slug")] += 1
            return all(n[s] == 1 for s in deleted)
        wait_for(job_events_done, 60, "one deleted event per deleted role")
        evs = events_of(api)
        ids = [e["id"] for e in evs]
        assert len(ids) == len(set(ids)), "an event listed twice"
        assert ids == sorted(ids), "events out of order"
        by = collections.Counter()
        for e in evs:
            d = e["data"]
            if e["event"].endswith(("role.created", "role.deleted")):
                by[(e["event"].split(".")[1], d.get("slug"))] += 1
            elif e["event"] in ("organization_membership.created",
                                "organization_membership.deleted"):
                by[(e["event"], d.get("id"))] += 1
        for s in created:
            assert by[("created", s)] == 1, ("role created events", s, by[("created", s)])
        for s in deleted:
            assert by[("deleted", s)] == 1, ("role deleted events", s, by[("deleted", s)])
        for m in cm:
            assert by[("organization_membership.created", m)] == 1, m
        for m in dm:
            assert by[("organization_membership.deleted", m)] == 1, m
        assert sum(1 for e in evs if e["event"] == "user.created") == \
            sum(w.users for w in workers) - sum(1 for w in workers for x in w.errors
                                                if x[0] == "create user")


if __name__ == "__main__":
    run_all()
