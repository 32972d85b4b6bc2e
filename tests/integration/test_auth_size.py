#!/usr/bin/env python3
"""R24 size budget over HTTP: a membership whose permissions push the
session cookie past 4096 bytes is refused (422 session_too_large, with the
size, the budget and the permission count) under session.oversize=reject,
and under omit_permissions gets a cookie of at most 4096 bytes whose token
says permissions_omitted while /auth still answers every permission (from
the organization's role table). Prints the sizes."""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all, Rolegate  # noqa: E402
from test_auth_common import (setup_member, new_session, auth, parts, cookie_len,  # noqa: E402
                              ok, MS)

# 90 permissions of 44 characters: about 4.1 KB of JSON before base64
N_PERMS = 90
BIG = tuple(f"reports.section-{i:03d}:view-every-detail-of-it"[:44] for i in range(N_PERMS))


def small_and_big(rg):
    """A member with two permissions and one with N_PERMS, same org."""
    small = setup_member(rg, perms=("users:view", "users:edit"), role="viewer",
                         email="small@example.com", org_name="Big Org")
    for p in BIG:
        ok(rg.admin("POST", "/authorization/permissions", {"slug": p, "name": p[:48]}), 201)
    ok(rg.admin("POST", "/authorization/roles", {"slug": "power", "name": "Power"}), 201)
    ok(rg.admin("PUT", "/authorization/roles/power/permissions",
                {"permissions": list(BIG)}), 200)
    u = ok(rg.admin("POST", "/user_management/users", {"email": "big@example.com"}), 201)
    m = ok(rg.admin("POST", MS, {"user_id": u["id"], "organization_id": small["org"],
                                 "role_slug": "power"}), 201)
    return small, {"om": m["id"], "user": u["id"], "org": small["org"]}


@test
def test_R24_reject_policy_refuses_oversized_session():
    with Rolegate(config={"session": {"oversize": "reject"}}) as rg:
        small, big = small_and_big(rg)
        s = new_session(rg, small["om"])
        print(f"  reject: small membership cookie = {cookie_len(s['token'])} bytes "
              f"(2 permissions)", flush=True)
        st, _, e = rg.admin("POST", "/sessions", {"organization_membership_id": big["om"],
                                                  "reason": "too big"})
        assert st == 422 and e["code"] == "session_too_large", (st, e)
        size = int(re.search(r"would be (\d+) bytes", e["message"]).group(1))
        assert size > 4096, e["message"]
        assert "4096" in e["message"] and f"{N_PERMS} permissions" in e["message"], e
        print(f"  reject: big membership refused: {e['message']}", flush=True)
        # no session.created event for the refused one
        evs = rg.admin("GET", "/events?limit=100")[2]["data"]
        created = [x for x in evs if x["event"] == "session.created"]
        assert all(x["data"]["organization_membership_id"] != big["om"] for x in created), created


@test
def test_R24_omit_permissions_policy_fits_and_auth_supplies_them():
    with Rolegate(config={"session": {"oversize": "omit_permissions"}}) as rg:
        small, big = small_and_big(rg)
        s = new_session(rg, big["om"], "omit")
        _, claims, _ = parts(s["token"])
        size = cookie_len(s["token"])
        print(f"  omit_permissions: big membership cookie = {size} bytes "
              f"({N_PERMS} permissions omitted from the token)", flush=True)
        assert size <= 4096, size
        assert claims.get("permissions_omitted") is True, claims
        assert "permissions" not in claims, claims
        assert claims["roles"] == ["power"], claims
        st, h, body = auth(rg, s["token"])
        assert st == 200, (st, body)
        got = h["x-rolegate-permissions"].split(",")
        assert got == sorted(BIG), (len(got), got[:3])
        print(f"  omit_permissions: /auth returned all {len(got)} permissions "
              f"({len(h['x-rolegate-permissions'])} bytes of header)", flush=True)
        # require_permission is checked against the table's permissions
        assert auth(rg, s["token"], query=f"?require_permission={BIG[7]}")[0] == 200
        assert auth(rg, s["token"], query="?require_permission=users:view")[0] == 403
        # a small session keeps its permissions in the token
        s2 = new_session(rg, small["om"], "small")
        c2 = parts(s2["token"])[1]
        assert c2["permissions"] == ["users:edit", "users:view"] and \
            "permissions_omitted" not in c2, c2
        # the table is re-read after its cache period: a permission added to
        # the role shows up without a new session
        ok(rg.admin("POST", "/authorization/permissions", {"slug": "late:perm", "name": "L"}),
           201)
        ok(rg.admin("PUT", "/authorization/roles/power/permissions",
                    {"permissions": list(BIG) + ["late:perm"]}), 200)
        deadline = time.monotonic() + 15
        while True:
            h = auth(rg, s["token"])[1]
            if "late:perm" in h["x-rolegate-permissions"].split(","):
                break
            assert time.monotonic() < deadline, "role table never refreshed"
            time.sleep(0.5)


if __name__ == "__main__":
    run_all()
