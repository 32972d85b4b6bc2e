#!/usr/bin/env python3
"""Admin API over HTTP: permissions, environment roles, organization roles,
priority orders, the environment settings and role deletion (R1-R11, R20-R22,
R26). Each test starts the real binary (harness.Rolegate) on free loopback
ports and drives it with plain HTTP."""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the work tree clean
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_api_common import server, env_roles, slugs_of, events_of, wait_for  # noqa: E402


# ---- permissions (R2, R6, R22) ------------------------------------------

@test
def test_R2_permission_create_get_list_update_delete():
    with server() as api:
        st, p = api.post("/authorization/permissions",
                         {"slug": "users:view", "name": "View users",
                          "description": "See the user list"})
        assert st == 201, (st, p)
        assert p["object"] == "permission"
        assert p["id"].startswith("perm_") and len(p["id"]) == 31, p["id"]
        assert p["slug"] == "users:view" and p["name"] == "View users"
        assert p["description"] == "See the user list"
        assert p["system"] is False
        assert p["created_at"] and p["updated_at"]
        st, g = api.get("/authorization/permissions/users:view")
        assert st == 200 and g["id"] == p["id"], (st, g)
        st, lst = api.get("/authorization/permissions")
        assert st == 200 and lst["object"] == "list"
        assert "users:view" in [x["slug"] for x in lst["data"]]
        st, u = api.patch("/authorization/permissions/users:view", {"name": "See users"})
        assert st == 200 and u["name"] == "See users", (st, u)
        assert u["description"] == "See the user list"
        st, _ = api.delete("/authorization/permissions/users:view")
        assert st == 204, st
        st, e = api.get("/authorization/permissions/users:view")
        assert st == 404, (st, e)
        kinds = [ev["event"] for ev in events_of(api) if ev["event"].startswith("permission.")]
        assert kinds == ["permission.created", "permission.updated", "permission.deleted"], kinds


@test
def test_R2_permission_slug_rules_422_change_nothing():
    with server() as api:
        before = api.get("/authorization/permissions")[1]["data"]
        ev_before = events_of(api)
        for bad in ["Users:view", "", "a" * 49, "users view", "users/view", "ü"]:
            st, e = api.post("/authorization/permissions", {"slug": bad, "name": "x"})
            assert st == 422, (bad, st, e)
            assert e["errors"][0]["field"] == "slug", (bad, e)
        st, e = api.post("/authorization/permissions", {"slug": "ok", "name": "n" * 49})
        assert st == 422 and e["errors"][0]["field"] == "name", (st, e)
        st, e = api.post("/authorization/permissions",
                         {"slug": "ok", "name": "n", "description": "d" * 151})
        assert st == 422 and e["errors"][0]["field"] == "description", (st, e)
        # the limits themselves are allowed (R2)
        st, p = api.post("/authorization/permissions",
                         {"slug": "reports.*", "name": "n" * 48, "description": "d" * 150})
        assert st == 201, (st, p)
        after = api.get("/authorization/permissions")[1]["data"]
        assert [x["slug"] for x in after] == [x["slug"] for x in before] + ["reports.*"] or \
            sorted(x["slug"] for x in after) == sorted([x["slug"] for x in before] + ["reports.*"])
        assert len(events_of(api)) == len(ev_before) + 1


@test
def test_R6_permission_duplicate_slug_409():
    with server() as api:
        assert api.post("/authorization/permissions", {"slug": "a:b", "name": "A"})[0] == 201
        st, e = api.post("/authorization/permissions", {"slug": "a:b", "name": "B"})
        assert st == 409 and e["code"] == "permission_slug_conflict", (st, e)
        assert api.get("/authorization/permissions/a:b")[1]["name"] == "A"


@test
def test_R22_delete_permission_removes_it_from_roles():
    with server() as api:
        for s in ("p1", "p2"):
            assert api.post("/authorization/permissions", {"slug": s, "name": s})[0] == 201
        assert api.post("/authorization/roles", {"slug": "editor", "name": "Editor"})[0] == 201
        st, r = api.put("/authorization/roles/editor/permissions", {"permissions": ["p1", "p2"]})
        assert st == 200 and r["permissions"] == ["p1", "p2"], (st, r)
        assert api.delete("/authorization/permissions/p1")[0] == 204
        st, r = api.get("/authorization/roles/editor")
        assert st == 200 and r["permissions"] == ["p2"], (st, r)


# ---- environment roles (R1, R3, R6-R8) ---------------------------------

@test
def test_R7_new_environment_has_member_as_default():
    with server() as api:
        st, lst = api.get("/authorization/roles")
        assert st == 200 and lst["object"] == "list", (st, lst)
        assert slugs_of(lst) == ["member"], lst
        m = lst["data"][0]
        assert m["object"] == "role" and m["type"] == "EnvironmentRole"
        assert m["id"].startswith("role_")
        st, env = api.get("/environment")
        assert st == 200, (st, env)
        assert env["default_role"] == "member" and env["multiple_roles"] is False, env


@test
def test_R8_env_role_create_goes_to_bottom():
    with server() as api:
        st, r = api.post("/authorization/roles",
                         {"slug": "admin", "name": "Admin", "description": "All"})
        assert st == 201, (st, r)
        assert r["slug"] == "admin" and r["type"] == "EnvironmentRole"
        assert r["permissions"] == [] and r["description"] == "All"
        api.post("/authorization/roles", {"slug": "viewer", "name": "Viewer"})
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member", "admin", "viewer"]
        st, g = api.get("/authorization/roles/admin")
        assert st == 200 and g["id"] == r["id"], (st, g)
        ev = [e for e in events_of(api) if e["event"] == "role.created"]
        assert len(ev) == 2, ev


@test
def test_R1_R3_env_role_slug_rules_422_change_nothing():
    with server() as api:
        n_ev = len(events_of(api))
        bad = ["Admin", "-admin", "admin-", "_admin", "ad--min", "ad_-min", "ad min",
               "a" * 49, "", "priority", "org-admin", "ad.min", "ad:min"]
        for s in bad:
            st, e = api.post("/authorization/roles", {"slug": s, "name": "X"})
            assert st == 422, (s, st, e)
            assert e["errors"][0]["field"] == "slug", (s, e)
        st, e = api.post("/authorization/roles", {"name": "No slug"})
        assert st == 422 and e["errors"][0]["field"] == "slug", (st, e)
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member"]
        assert len(events_of(api)) == n_ev
        # the longest legal slug and inner separators are fine (R1)
        for s in ["a" * 48, "a-b_c", "x1"]:
            assert api.post("/authorization/roles", {"slug": s, "name": "ok"})[0] == 201, s


@test
def test_R6_env_role_duplicate_slug_409():
    with server() as api:
        assert api.post("/authorization/roles", {"slug": "admin", "name": "A"})[0] == 201
        st, e = api.post("/authorization/roles", {"slug": "admin", "name": "B"})
        assert st == 409 and e["code"] == "role_slug_conflict", (st, e)
        st, e = api.post("/authorization/roles", {"slug": "member", "name": "B"})
        assert st == 409 and e["code"] == "role_slug_conflict", (st, e)


@test
def test_R26_role_update_emits_event_and_noop_emits_none():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        st, r = api.patch("/authorization/roles/admin", {"name": "Administrator",
                                                         "description": "root"})
        assert st == 200 and r["name"] == "Administrator" and r["description"] == "root"
        n = len(events_of(api))
        st, r = api.patch("/authorization/roles/admin", {"name": "Administrator"})
        assert st == 200 and r["name"] == "Administrator"
        assert len(events_of(api)) == n, "a no-op must emit nothing (R26)"
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("role.updated") == 1, kinds
        # slugs are immutable (R1)
        st, e = api.patch("/authorization/roles/admin", {"slug": "boss"})
        assert st == 422 and e["errors"][0]["field"] == "slug", (st, e)
        assert api.get("/authorization/roles/boss")[0] == 404


@test
def test_role_permissions_put_replaces_post_adds():
    with server() as api:
        for s in ("a:read", "a:write", "b:read"):
            api.post("/authorization/permissions", {"slug": s, "name": s})
        api.post("/authorization/roles", {"slug": "editor", "name": "Editor"})
        st, r = api.put("/authorization/roles/editor/permissions",
                        {"permissions": ["a:write", "a:read"]})
        assert st == 200 and sorted(r["permissions"]) == ["a:read", "a:write"], (st, r)
        st, r = api.post("/authorization/roles/editor/permissions", {"slug": "b:read"})
        assert st in (200, 201) and sorted(r["permissions"]) == ["a:read", "a:write", "b:read"], \
            (st, r)
        st, r = api.put("/authorization/roles/editor/permissions", {"permissions": ["b:read"]})
        assert st == 200 and r["permissions"] == ["b:read"], (st, r)
        st, e = api.put("/authorization/roles/editor/permissions",
                        {"permissions": ["nope:nope"]})
        assert st == 422 and e["errors"][0]["field"] == "permissions", (st, e)
        assert api.get("/authorization/roles/editor")[1]["permissions"] == ["b:read"]
        st, e = api.put("/authorization/roles/ghost/permissions", {"permissions": []})
        assert st == 404, (st, e)


@test
def test_R8_env_priority_put_reorders_and_validates():
    with server() as api:
        env_roles(api, "admin", "viewer")
        st, lst = api.put("/authorization/roles/priority",
                          {"slugs": ["admin", "member", "viewer"]})
        assert st == 200, (st, lst)
        assert slugs_of(api.get("/authorization/roles")[1]) == ["admin", "member", "viewer"]
        n = len(events_of(api))
        for bad in (["admin", "member"],                       # one missing
                    ["admin", "member", "viewer", "viewer"],   # duplicate
                    ["admin", "member", "viewer", "ghost"]):   # unknown
            st, e = api.put("/authorization/roles/priority", {"slugs": bad})
            assert st == 422, (bad, st, e)
            assert e["errors"][0]["field"] == "slugs", (bad, e)
        assert slugs_of(api.get("/authorization/roles")[1]) == ["admin", "member", "viewer"]
        assert len(events_of(api)) == n
        ev = [e for e in events_of(api) if e["event"] == "role_priority.updated"]
        assert len(ev) == 1 and ev[0]["data"].get("organization_id", "x") is None, ev


# ---- organization roles (R4, R5, R9-R11) ---------------------------------

def _org(api, name="Acme"):
    st, o = api.post("/organizations", {"name": name})
    assert st == 201, (st, o)
    return o["id"]


@test
def test_R5_org_role_without_slug_gets_generated_slug():
    with server() as api:
        org = _org(api)
        st, r = api.post(f"/authorization/organizations/{org}/roles", {"name": "Billing Admin"})
        assert st == 201, (st, r)
        assert r["type"] == "OrganizationRole" and r["organization_id"] == org
        assert re.fullmatch(r"billing-admin-[0-9a-z]{6}", r["slug"]), r["slug"]
        assert r["slug"][-6:] == r["id"][-6:].lower(), (r["slug"], r["id"])
        st, r2 = api.post(f"/authorization/organizations/{org}/roles", {"name": "Café !!"})
        assert st == 201 and re.fullmatch(r"caf-[0-9a-z]{6}", r2["slug"]), r2
        st, r3 = api.post(f"/authorization/organizations/{org}/roles", {"name": "***"})
        assert st == 201 and re.fullmatch(r"[0-9a-z]{6}", r3["slug"]), r3
        st, r4 = api.post(f"/authorization/organizations/{org}/roles", {"name": "x" * 48})
        assert st == 201 and len(r4["slug"]) <= 48 and r4["slug"].startswith("x" * 41 + "-"), r4
        st, g = api.get(f"/authorization/organizations/{org}/roles/{r['slug']}")
        assert st == 200 and g["id"] == r["id"], (st, g)
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("organization_role.created") == 4, kinds


@test
def test_R4_org_role_explicit_slug_needs_org_prefix():
    with server() as api:
        org = _org(api)
        n = len(events_of(api))
        for bad in ("billing", "member", "org-", "org--x", "org-X", "priority"):
            st, e = api.post(f"/authorization/organizations/{org}/roles",
                             {"slug": bad, "name": "B"})
            assert st == 422 and e["errors"][0]["field"] == "slug", (bad, st, e)
        assert len(events_of(api)) == n
        assert slugs_of(api.get(f"/authorization/organizations/{org}/roles")[1]) == ["member"]
        st, r = api.post(f"/authorization/organizations/{org}/roles",
                         {"slug": "org-billing", "name": "Billing"})
        assert st == 201 and r["slug"] == "org-billing", (st, r)
        st, e = api.post(f"/authorization/organizations/{org}/roles",
                         {"slug": "org-billing", "name": "Again"})
        assert st == 409 and e["code"] == "organization_role_slug_conflict", (st, e)
        # the same slug in another organization is fine (R4: unique within)
        org2 = _org(api, "Other")
        st, r = api.post(f"/authorization/organizations/{org2}/roles",
                         {"slug": "org-billing", "name": "Billing"})
        assert st == 201, (st, r)


@test
def test_R11_org_role_list_env_and_org_roles_in_org_order():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        org = _org(api)
        other = _org(api, "Other")
        api.post(f"/authorization/organizations/{org}/roles", {"slug": "org-a", "name": "A"})
        api.post(f"/authorization/organizations/{org}/roles", {"slug": "org-b", "name": "B"})
        lst = api.get(f"/authorization/organizations/{org}/roles")[1]
        assert slugs_of(lst) == ["member", "admin", "org-a", "org-b"], lst
        types = [r["type"] for r in lst["data"]]
        assert types == ["EnvironmentRole"] * 2 + ["OrganizationRole"] * 2, types
        assert slugs_of(api.get(f"/authorization/organizations/{other}/roles")[1]) == \
            ["member", "admin"]
        # org roles are not environment roles
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member", "admin"]
        assert api.get(f"/authorization/organizations/{other}/roles/org-a")[0] == 404


@test
def test_R9_org_inherits_env_order_live_until_first_org_role():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        org = _org(api)
        path = f"/authorization/organizations/{org}/roles"
        api.put("/authorization/roles/priority", {"slugs": ["admin", "member"]})
        assert slugs_of(api.get(path)[1]) == ["admin", "member"]      # live
        api.post(path, {"slug": "org-x", "name": "X"})                # now independent
        assert slugs_of(api.get(path)[1]) == ["admin", "member", "org-x"]
        api.put("/authorization/roles/priority", {"slugs": ["member", "admin"]})
        assert slugs_of(api.get(path)[1]) == ["admin", "member", "org-x"]
        # its default is a copy of the environment's at that moment
        api.patch("/environment", {"default_role": "admin"})
        st, o = api.get(f"/organizations/{org}")
        assert st == 200 and o["default_role"] == "member", o


@test
def test_R10_env_role_added_later_goes_to_bottom_of_org_order():
    with server() as api:
        org = _org(api)
        path = f"/authorization/organizations/{org}/roles"
        api.post(path, {"slug": "org-x", "name": "X"})
        api.put(path + "/priority", {"slugs": ["org-x", "member"]})
        api.post("/authorization/roles", {"slug": "viewer", "name": "Viewer"})
        assert slugs_of(api.get(path)[1]) == ["org-x", "member", "viewer"]


@test
def test_R9_org_priority_put_and_validation():
    with server() as api:
        org = _org(api)
        path = f"/authorization/organizations/{org}/roles"
        api.post(path, {"slug": "org-x", "name": "X"})
        st, _ = api.put(path + "/priority", {"slugs": ["org-x", "member"]})
        assert st == 200, st
        assert slugs_of(api.get(path)[1]) == ["org-x", "member"]
        st, e = api.put(path + "/priority", {"slugs": ["org-x"]})
        assert st == 422 and e["errors"][0]["field"] == "slugs", (st, e)
        assert slugs_of(api.get(path)[1]) == ["org-x", "member"]
        ev = [e for e in events_of(api) if e["event"] == "role_priority.updated"]
        assert len(ev) == 1 and ev[0]["data"]["organization_id"] == org, ev
        # the environment order did not move
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member"]


@test
def test_org_role_update_and_permissions():
    with server() as api:
        for s in ("inv:read", "inv:pay"):
            api.post("/authorization/permissions", {"slug": s, "name": s})
        org = _org(api)
        path = f"/authorization/organizations/{org}/roles"
        api.post(path, {"slug": "org-fin", "name": "Finance"})
        st, r = api.patch(path + "/org-fin", {"description": "money"})
        assert st == 200 and r["description"] == "money" and r["name"] == "Finance", (st, r)
        st, r = api.put(path + "/org-fin/permissions", {"permissions": ["inv:read"]})
        assert st == 200 and r["permissions"] == ["inv:read"], (st, r)
        st, r = api.post(path + "/org-fin/permissions", {"slug": "inv:pay"})
        assert st in (200, 201) and sorted(r["permissions"]) == ["inv:pay", "inv:read"], r
        st, r = api.delete(path + "/org-fin/permissions/inv:read")
        assert st in (200, 204), st
        assert api.get(path + "/org-fin")[1]["permissions"] == ["inv:pay"]
        st, _ = api.delete(path + "/org-fin/permissions/inv:read")
        assert st == 404, st
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("organization_role.updated") == 4, kinds


@test
def test_org_roles_unknown_organization_404_change_nothing():
    with server() as api:
        n = len(events_of(api))
        for org in ("org_01HZZZZZZZZZZZZZZZZZZZZZZZ", "nope", "org_"):
            st, e = api.post(f"/authorization/organizations/{org}/roles", {"name": "X"})
            assert st == 404, (org, st, e)
            st, e = api.get(f"/authorization/organizations/{org}/roles")
            assert st == 404, (org, st, e)
        assert len(events_of(api)) == n


# ---- environment settings (R7, R12) ---------------------------------------

@test
def test_R7_environment_patch_default_role():
    with server() as api:
        api.post("/authorization/roles", {"slug": "viewer", "name": "Viewer"})
        st, env = api.patch("/environment", {"default_role": "viewer"})
        assert st == 200 and env["default_role"] == "viewer", (st, env)
        assert api.get("/environment")[1]["default_role"] == "viewer"
        st, e = api.patch("/environment", {"default_role": "ghost"})
        assert st == 422 and e["errors"][0]["field"] == "default_role", (st, e)
        st, e = api.patch("/environment", {"multiple_roles": "yes"})
        assert st == 422 and e["errors"][0]["field"] == "multiple_roles", (st, e)
        env = api.get("/environment")[1]
        assert env["default_role"] == "viewer" and env["multiple_roles"] is False
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("environment.updated") == 1, kinds


@test
def test_R7_default_role_cannot_be_deleted_409():
    with server() as api:
        st, e = api.delete("/authorization/roles/member")
        assert st == 409, (st, e)
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member"]


# ---- deleting roles (R20, R21) ---------------------------------------------

def _member(api, org, role=None):
    st, u = api.post("/user_management/users", {"email": f"u{time.monotonic_ns()}@ex.com"})
    assert st == 201, (st, u)
    body = {"user_id": u["id"], "organization_id": org}
    if role:
        body["role_slug"] = role
    st, m = api.post("/user_management/organization_memberships", body)
    assert st == 201, (st, m)
    return m["id"]


@test
def test_R20_delete_role_202_gone_at_once_memberships_get_default():
    with server() as api:
        api.post("/authorization/roles", {"slug": "viewer", "name": "Viewer"})
        org = _org(api)
        ms = [_member(api, org, "viewer") for _ in range(5)]
        keep = _member(api, org, "member")
        conn = api.post(f"/organizations/{org}/connections", {"type": "saml", "name": "IdP"})[1]
        st, _ = api.put(f"/connections/{conn['id']}/role_mappings",
                        [{"idp_group": "g1", "role_slug": "viewer"},
                         {"idp_group": "g2", "role_slug": "member"}])
        assert st == 200, st
        st, body = api.delete("/authorization/roles/viewer")
        assert st == 202, (st, body)
        # R20: gone from lists at once
        assert slugs_of(api.get("/authorization/roles")[1]) == ["member"]
        assert "viewer" not in slugs_of(api.get(f"/authorization/organizations/{org}/roles")[1])
        st, g = api.get("/authorization/roles/viewer")
        assert st == 404 or (st == 200 and g.get("status") == "deleting"), (st, g)

        def done():
            for m in ms:
                x = api.get(f"/user_management/organization_memberships/{m}")[1]
                if x["role"]["slug"] != "member" or x["role_source"] != "default":
                    return False
            return True
        wait_for(done, 20, "memberships reassigned to the default role")
        wait_for(lambda: api.get("/authorization/roles/viewer")[0] == 404, 20,
                 "the deleted role's job to finish")
        k = api.get(f"/user_management/organization_memberships/{keep}")[1]
        assert k["role"]["slug"] == "member" and k["role_source"] == "api", k
        maps = api.get(f"/connections/{conn['id']}/role_mappings")[1]["data"]
        maps = [(m["idp_group"], m["role_slug"]) for m in maps]
        assert maps == [("g2", "member")], maps
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("role.deleted") == 1, kinds
        assert kinds.count("organization_membership.updated") == 5, kinds
        # the slug is free again
        assert api.post("/authorization/roles", {"slug": "viewer", "name": "V2"})[0] == 201


@test
def test_R20_multiple_roles_delete_removes_one_role_keeps_rest():
    with server() as api:
        api.patch("/environment", {"multiple_roles": True})
        env_roles(api, "a", "b")
        org = _org(api)
        st, u = api.post("/user_management/users", {"email": "m@ex.com"})
        st, m = api.post("/user_management/organization_memberships",
                         {"user_id": u["id"], "organization_id": org, "role_slugs": ["a", "b"]})
        assert st == 201 and [r["slug"] for r in m["roles"]] == ["a", "b"], (st, m)
        only_a = _member(api, org, "a")
        assert api.delete("/authorization/roles/a")[0] == 202

        def done():
            x = api.get(f"/user_management/organization_memberships/{m['id']}")[1]
            y = api.get(f"/user_management/organization_memberships/{only_a}")[1]
            return [r["slug"] for r in x["roles"]] == ["b"] and \
                [r["slug"] for r in y["roles"]] == ["member"]
        wait_for(done, 20, "role a removed from memberships")
        x = api.get(f"/user_management/organization_memberships/{m['id']}")[1]
        assert x["role_source"] == "api", x       # R20: roles left, source unchanged
        y = api.get(f"/user_management/organization_memberships/{only_a}")[1]
        assert y["role_source"] == "default", y   # R13


@test
def test_R21_delete_default_without_replacement_409():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        org = _org(api)
        api.post(f"/authorization/organizations/{org}/roles", {"slug": "org-x", "name": "X"})
        # the org copied "member" as its default (R9); the environment moves on
        api.patch("/environment", {"default_role": "admin"})
        n = len(events_of(api))
        st, e = api.delete("/authorization/roles/member")
        assert st == 409 and e["code"] == "replacement_default_required", (st, e)
        assert org in e["message"] or org in str(e.get("organizations", "")) or \
            org in str(e.get("errors", "")), e
        assert "member" in slugs_of(api.get("/authorization/roles")[1])
        assert len(events_of(api)) == n
        st, e = api.delete("/authorization/roles/member?replacement_default=ghost")
        assert st == 422, (st, e)
        assert "member" in slugs_of(api.get("/authorization/roles")[1])
        st, _ = api.delete("/authorization/roles/member?replacement_default=org-x")
        assert st == 202, st
        assert api.get(f"/organizations/{org}")[1]["default_role"] == "org-x"
        assert slugs_of(api.get("/authorization/roles")[1]) == ["admin"]


@test
def test_R21_delete_org_default_role_needs_replacement():
    with server() as api:
        org = _org(api)
        path = f"/authorization/organizations/{org}/roles"
        api.post(path, {"slug": "org-x", "name": "X"})
        st, o = api.patch(f"/organizations/{org}", {"default_role": "org-x"})
        assert st == 200 and o["default_role"] == "org-x", (st, o)
        st, e = api.delete(path + "/org-x")
        assert st == 409 and e["code"] == "replacement_default_required", (st, e)
        st, _ = api.delete(path + "/org-x?replacement_default=member")
        assert st == 202, st
        assert api.get(f"/organizations/{org}")[1]["default_role"] == "member"
        assert slugs_of(api.get(path)[1]) == ["member"]
        kinds = [e["event"] for e in events_of(api)]
        wait_for(lambda: "organization_role.deleted" in
                 [e["event"] for e in events_of(api)], 20, "organization_role.deleted")
        assert kinds.count("organization.updated") >= 1, kinds


@test
def test_R23_deletion_job_killed_midway_resumes_at_next_start():
    import tempfile
    import shutil
    from test_api_common import Api, _started, list_all
    d = tempfile.mkdtemp(prefix="rolegate-r23-")
    db = os.path.join(d, "rolegate.db")
    n = 1500
    try:
        rg = _started(config={"store": {"database": db}})
        api = Api("127.0.0.1", rg.admin_port, rg.admin_key)
        api.post("/authorization/roles", {"slug": "viewer", "name": "Viewer"})
        org = _org(api)
        for i in range(n):
            st, u = api.post("/user_management/users", {"email": f"u{i}@ex.com"})
            assert st == 201, (st, u)
            st, m = api.post("/user_management/organization_memberships",
                             {"user_id": u["id"], "organization_id": org, "role_slug": "viewer"})
            assert st == 201, (st, m)
        st, body = api.delete("/authorization/roles/viewer")
        assert st == 202, (st, body)
        rg.kill()                       # a crash while the job runs
        api.close()
        shutil.rmtree(rg.dir, ignore_errors=True)
        assert body["status"] == "deleting", body

        rg = _started(config={"store": {"database": db}})
        api = Api("127.0.0.1", rg.admin_port, rg.admin_key)
        try:
            # R20: still gone from lists; R23: the job resumes on its own
            assert slugs_of(api.get("/authorization/roles")[1]) == ["member"]
            wait_for(lambda: api.get("/authorization/roles/viewer")[0] == 404, 60,
                     "the resumed job to finish")
            ms = list_all(api, f"/user_management/organization_memberships?organization_id={org}")
            assert len(ms) == n
            assert all(m["role"]["slug"] == "member" and m["role_source"] == "default"
                       for m in ms), [m for m in ms if m["role"]["slug"] != "member"][:3]
            evs = events_of(api)
            upd = [e["data"]["id"] for e in evs if e["event"] == "organization_membership.updated"]
            assert sorted(upd) == sorted(m["id"] for m in ms), \
                (len(upd), len(set(upd)), n)                    # each exactly once
            assert [e["event"] for e in evs].count("role.deleted") == 1
            resumed = "event=jobs_ran" in rg.log_text()
            print(f"  resumed after the kill: {resumed}")
            assert resumed, "the second start ran no job rows: the kill came after the job"
        finally:
            api.close()
            rg.stop()
            shutil.rmtree(rg.dir, ignore_errors=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run_all()
