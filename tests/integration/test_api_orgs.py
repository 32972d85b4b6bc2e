#!/usr/bin/env python3
"""Admin API over HTTP: organizations, connections and their group mappings
(R15), users and organization memberships (R12-R14, R19), with their events
(R26). Each test starts the real binary on free loopback ports."""
import os
import sys

sys.dont_write_bytecode = True  # keep the work tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, run_all  # noqa: E402
from test_api_common import server, env_roles, events_of, list_all, snapshot  # noqa: E402

MS = "/user_management/organization_memberships"


def _org(api, name="Acme", **extra):
    st, o = api.post("/organizations", dict(name=name, **extra))
    assert st == 201, (st, o)
    return o


def _user(api, email):
    st, u = api.post("/user_management/users", {"email": email, "first_name": "F",
                                                 "last_name": "L"})
    assert st == 201, (st, u)
    return u


def _member(api, **extra):
    """Organization Acme, user u@x.com and its membership there (extra: the
    membership's roles); (organization, membership)."""
    o = _org(api)
    u = _user(api, "u@x.com")
    st, m = api.post(MS, dict(user_id=u["id"], organization_id=o["id"], **extra))
    assert st == 201, (st, m)
    return o, m


def _slugs(m):
    return [r["slug"] for r in m["roles"]]


# ---- organizations -------------------------------------------------------------

@test
def test_organization_create_get_list_update():
    with server() as api:
        o = _org(api, "Acme", domains=["acme.com", "acme.io"])
        assert o["object"] == "organization" and o["id"].startswith("org_"), o
        assert o["name"] == "Acme" and o["created_at"] and o["updated_at"]
        doms = [d["domain"] if isinstance(d, dict) else d for d in o["domains"]]
        assert doms == ["acme.com", "acme.io"], o
        st, g = api.get(f"/organizations/{o['id']}")
        assert st == 200 and g["name"] == "Acme", (st, g)
        assert o["id"] in [x["id"] for x in api.get("/organizations")[1]["data"]]
        st, u = api.patch(f"/organizations/{o['id']}", {"name": "Acme Inc",
                                                        "domains": ["acme.com"]})
        assert st == 200 and u["name"] == "Acme Inc", (st, u)
        doms = [d["domain"] if isinstance(d, dict) else d for d in u["domains"]]
        assert doms == ["acme.com"], u
        st, e = api.patch(f"/organizations/{o['id']}", {"name": ""})
        assert st == 422 and e["errors"][0]["field"] == "name", (st, e)
        assert api.get(f"/organizations/{o['id']}")[1]["name"] == "Acme Inc"
        kinds = [e["event"] for e in events_of(api)]
        assert kinds == ["organization.created", "organization.updated"], kinds


@test
def test_R9_org_default_role_patch_makes_it_independent():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        o = _org(api)
        assert api.get(f"/organizations/{o['id']}")[1].get("default_role") in (None, "member")
        st, u = api.patch(f"/organizations/{o['id']}", {"default_role": "admin"})
        assert st == 200 and u["default_role"] == "admin", (st, u)
        # independent now: the environment default moving does not move it
        api.patch("/environment", {"default_role": "member"})
        assert api.get(f"/organizations/{o['id']}")[1]["default_role"] == "admin"
        st, e = api.patch(f"/organizations/{o['id']}", {"default_role": "ghost"})
        assert st == 422 and e["errors"][0]["field"] == "default_role", (st, e)
        # a new member gets the organization's default (R13)
        u = _user(api, "a@acme.com")
        st, m = api.post(MS, {"user_id": u["id"], "organization_id": o["id"]})
        assert st == 201 and m["role"]["slug"] == "admin", (st, m)
        assert m["role_source"] == "default", m


@test
def test_organization_delete_cascades_with_events():
    with server() as api:
        o = _org(api)
        keep = _org(api, "Keep")
        api.post(f"/authorization/organizations/{o['id']}/roles", {"slug": "org-x", "name": "X"})
        c = api.post(f"/organizations/{o['id']}/connections",
                     {"type": "oidc", "name": "KC", "issuer": "https://kc.example",
                      "client_id": "rg"})[1]
        u = _user(api, "a@acme.com")
        m = api.post(MS, {"user_id": u["id"], "organization_id": o["id"]})[1]
        m2 = api.post(MS, {"user_id": u["id"], "organization_id": keep["id"]})[1]
        st, _ = api.delete(f"/organizations/{o['id']}")
        assert st in (202, 204), st
        assert api.get(f"/organizations/{o['id']}")[0] == 404
        assert api.get(f"/connections/{c['id']}")[0] == 404
        assert api.get(f"{MS}/{m['id']}")[0] == 404
        assert api.get(f"{MS}/{m2['id']}")[0] == 200
        assert api.get(f"/user_management/users/{u['id']}")[0] == 200
        assert [x["id"] for x in list_all(api, "/organizations")] == [keep["id"]]
        kinds = [e["event"] for e in events_of(api)]
        for k in ("organization.deleted", "organization_role.deleted", "connection.deleted",
                  "organization_membership.deleted"):
            assert kinds.count(k) == 1, (k, kinds)


# ---- connections and mappings (R15) -----------------------------------------------

@test
def test_connection_create_list_get_delete():
    with server() as api:
        o = _org(api)
        st, s = api.post(f"/organizations/{o['id']}/connections",
                         {"type": "saml", "name": "Okta"})
        assert st == 201, (st, s)
        assert s["object"] == "connection" and s["id"].startswith("conn_"), s
        assert s["type"] == "saml" and s["name"] == "Okta" and s["organization_id"] == o["id"]
        st, c = api.post(f"/organizations/{o['id']}/connections",
                         {"type": "oidc", "name": "Keycloak", "issuer": "https://kc.example",
                          "client_id": "rolegate", "client_secret": "s3cret",
                          "groups_claim": "realm_access.roles"})
        assert st == 201 and c["type"] == "oidc", (st, c)
        assert "s3cret" not in str(c), "a client secret must never be echoed"
        st, lst = api.get(f"/organizations/{o['id']}/connections")
        assert st == 200 and sorted(x["id"] for x in lst["data"]) == sorted([s["id"], c["id"]])
        st, g = api.get(f"/connections/{s['id']}")
        assert st == 200 and g["name"] == "Okta", (st, g)
        st, _ = api.delete(f"/connections/{s['id']}")
        assert st == 204, st
        assert api.get(f"/connections/{s['id']}")[0] == 404
        assert [x["id"] for x in api.get(f"/organizations/{o['id']}/connections")[1]["data"]] \
            == [c["id"]]
        st, e = api.post("/organizations/org_01HZZZZZZZZZZZZZZZZZZZZZZZ/connections",
                         {"type": "saml", "name": "x"})
        assert st == 404, (st, e)
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("connection.created") == 2 and kinds.count("connection.deleted") == 1


@test
def test_connection_settings_are_checked_per_type_and_metadata_only_via_its_endpoint():
    with server() as api:
        o = _org(api)
        base = f"/organizations/{o['id']}/connections"
        before = snapshot(api)
        cases = [
            ({"type": "saml", "name": "x", "idp_metadata": "<EntityDescriptor/>"},
             "idp_metadata", "unknown_field"),       # unlinted metadata is refused
            ({"type": "saml", "name": "x", "issuer": "https://i"}, "issuer", "unknown_field"),
            ({"type": "saml", "name": "x", "allow_idp_initiated": "yes"},
             "allow_idp_initiated", "invalid_type"),
            ({"type": "saml", "name": "x", "groups_attributes": ["g", 1]},
             "groups_attributes", "invalid_type"),
            ({"type": "oidc", "name": "x", "client_id": "c"}, "issuer", "required"),
            ({"type": "oidc", "name": "x", "issuer": "https://i", "client_id": "c",
              "groups_attribute": "g"}, "groups_attribute", "unknown_field"),
        ]
        for body, field, code in cases:
            st, e = api.post(base, body)
            assert st == 422, (body, st, e)
            assert e["code"] == code and e["errors"][0]["field"] == field, (body, e)
        assert snapshot(api) == before, "a refused connection changed something"
        st, c = api.post(base, {"type": "saml", "name": "ok", "groups_attributes": "memberOf",
                                "allow_idp_initiated": False})
        assert st == 201, (st, c)
        st, e = api.patch(f"/connections/{c['id']}", {"idp_metadata": "<x/>"})
        assert st == 422 and e["errors"][0]["field"] == "idp_metadata", (st, e)
        st, e = api.patch(f"/connections/{c['id']}", {"allow_idp_initiated": True})
        assert st == 200 and e["allow_idp_initiated"] is True, (st, e)


@test
def test_R15_role_mappings_put_get_case_sensitive():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        o = _org(api)
        api.post(f"/authorization/organizations/{o['id']}/roles",
                 {"slug": "org-fin", "name": "Fin"})
        c = api.post(f"/organizations/{o['id']}/connections", {"type": "saml", "name": "x"})[1]
        path = f"/connections/{c['id']}/role_mappings"
        st, lst = api.get(path)
        assert st == 200 and lst["data"] == [], (st, lst)
        maps = [{"idp_group": "Admins", "role_slug": "admin"},
                {"idp_group": "admins", "role_slug": "member"},
                {"idp_group": "ops", "role_slug": "admin"},
                {"idp_group": "finance", "role_slug": "org-fin"}]
        st, r = api.put(path, maps)
        assert st == 200, (st, r)
        got = api.get(path)[1]["data"]
        key = lambda m: (m["idp_group"], m["role_slug"])  # noqa: E731
        assert sorted(map(key, got)) == sorted(map(key, maps)), got
        n = len(events_of(api))
        for bad, field in (([{"idp_group": "x", "role_slug": "ghost"}], "role_slug"),
                           ([{"idp_group": 5, "role_slug": "admin"}], "idp_group"),
                           ([{"idp_group": "", "role_slug": "admin"}], "idp_group"),
                           ({"idp_group": "x"}, "body")):
            st, e = api.put(path, bad)
            assert st == 422, (bad, st, e)
            assert e["errors"][0]["field"].endswith(field), (bad, e)
        assert sorted(map(key, api.get(path)[1]["data"])) == sorted(map(key, maps))
        assert len(events_of(api)) == n
        # a role of another organization is not visible here (R15)
        o2 = _org(api, "Other")
        c2 = api.post(f"/organizations/{o2['id']}/connections", {"type": "saml", "name": "y"})[1]
        st, e = api.put(f"/connections/{c2['id']}/role_mappings",
                        [{"idp_group": "f", "role_slug": "org-fin"}])
        assert st == 422, (st, e)
        st, _ = api.put(path, [])
        assert st == 200 and api.get(path)[1]["data"] == []


# ---- users ----------------------------------------------------------------------

@test
def test_users_create_list_get_delete():
    with server() as api:
        u = _user(api, "ada@example.com")
        assert u["object"] == "user" and u["id"].startswith("user_") and \
            u["email"] == "ada@example.com", u
        st, g = api.get(f"/user_management/users/{u['id']}")
        assert st == 200 and g["email"] == "ada@example.com"
        assert [x["id"] for x in list_all(api, "/user_management/users")] == [u["id"]]
        st, e = api.post("/user_management/users", {"email": "not an email"})
        assert st == 422 and e["errors"][0]["field"] == "email", (st, e)
        st, e = api.post("/user_management/users", {})
        assert st == 422 and e["errors"][0]["field"] == "email", (st, e)
        o = _org(api)
        m = api.post(MS, {"user_id": u["id"], "organization_id": o["id"]})[1]
        assert api.delete(f"/user_management/users/{u['id']}")[0] == 204
        assert api.get(f"/user_management/users/{u['id']}")[0] == 404
        assert api.get(f"{MS}/{m['id']}")[0] == 404       # its memberships go with it
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("user.created") == 1 and kinds.count("user.deleted") == 1, kinds


# ---- memberships (R12-R14, R19) ------------------------------------------------

@test
def test_membership_create_get_list_filters_delete():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        a, b = _org(api, "A"), _org(api, "B")
        u1, u2 = _user(api, "1@x.com"), _user(api, "2@x.com")
        st, m = api.post(MS, {"user_id": u1["id"], "organization_id": a["id"],
                              "role_slug": "admin"})
        assert st == 201, (st, m)
        assert m["object"] == "organization_membership" and m["id"].startswith("om_"), m
        assert m["user_id"] == u1["id"] and m["organization_id"] == a["id"]
        assert m["role"] == {"slug": "admin"} and m["roles"] == [{"slug": "admin"}], m
        assert m["role_source"] == "api", m
        m2 = api.post(MS, {"user_id": u2["id"], "organization_id": a["id"]})[1]
        assert m2["role"]["slug"] == "member" and m2["role_source"] == "default", m2
        m3 = api.post(MS, {"user_id": u1["id"], "organization_id": b["id"]})[1]
        st, e = api.post(MS, {"user_id": u1["id"], "organization_id": a["id"]})
        assert st == 409, (st, e)
        ids = lambda q: sorted(x["id"] for x in list_all(api, MS + q))  # noqa: E731
        assert ids(f"?organization_id={a['id']}") == sorted([m["id"], m2["id"]])
        assert ids(f"?user_id={u1['id']}") == sorted([m["id"], m3["id"]])
        assert ids(f"?user_id={u1['id']}&organization_id={b['id']}") == [m3["id"]]
        assert ids("") == sorted([m["id"], m2["id"], m3["id"]])
        st, g = api.get(f"{MS}/{m['id']}")
        assert st == 200 and g == m or (st == 200 and g["id"] == m["id"]), (st, g)
        assert api.delete(f"{MS}/{m['id']}")[0] == 204
        assert api.get(f"{MS}/{m['id']}")[0] == 404
        assert api.delete(f"{MS}/{m['id']}")[0] == 404
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("organization_membership.created") == 3
        assert kinds.count("organization_membership.deleted") == 1


@test
def test_membership_unknown_user_org_or_role_changes_nothing():
    with server() as api:
        o = _org(api)
        u = _user(api, "u@x.com")
        before = snapshot(api)
        st, e = api.post(MS, {"user_id": "user_01HZZZZZZZZZZZZZZZZZZZZZZZ",
                              "organization_id": o["id"]})
        assert st in (404, 422), (st, e)
        st, e = api.post(MS, {"user_id": u["id"],
                              "organization_id": "org_01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        assert st in (404, 422), (st, e)
        st, e = api.post(MS, {"user_id": u["id"], "organization_id": o["id"],
                              "role_slug": "ghost"})
        assert st == 422 and e["code"] == "invalid_role", (st, e)
        st, e = api.post(MS, {"organization_id": o["id"]})
        assert st == 422 and e["errors"][0]["field"] == "user_id", (st, e)
        assert snapshot(api) == before


@test
def test_R12_single_role_mode_rejects_several_roles():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        _, m = _member(api)
        n = len(events_of(api))
        st, e = api.put(f"{MS}/{m['id']}", {"role_slugs": ["admin", "member"]})
        assert st == 422 and e["code"] == "multiple_roles_not_enabled", (st, e)
        st, e = api.put(f"{MS}/{m['id']}", {"role_slugs": []})
        assert st == 422 and e["code"] == "invalid_role", (st, e)
        st, e = api.put(f"{MS}/{m['id']}", {"role_slug": "ghost"})
        assert st == 422 and e["code"] == "invalid_role", (st, e)
        st, e = api.put(f"{MS}/{m['id']}", {"role_slug": 5})
        assert st == 422 and e["errors"][0]["field"] == "role_slug", (st, e)
        assert len(events_of(api)) == n
        g = api.get(f"{MS}/{m['id']}")[1]
        assert _slugs(g) == ["member"] and g["role_source"] == "default", g
        # a one-element role_slugs is fine (R12)
        st, r = api.put(f"{MS}/{m['id']}", {"role_slugs": ["admin"]})
        assert st == 200 and _slugs(r) == ["admin"], (st, r)


@test
def test_R19_api_roles_set_role_source_api():
    with server() as api:
        api.post("/authorization/roles", {"slug": "admin", "name": "Admin"})
        _, m = _member(api)
        assert m["role_source"] == "default"
        st, r = api.put(f"{MS}/{m['id']}", {"role_slug": "admin"})
        assert st == 200 and r["role"] == {"slug": "admin"} and r["role_source"] == "api", r
        st, r = api.call("PATCH", f"{MS}/{m['id']}", {"role_slug": "member"})
        assert st == 200 and r["role"]["slug"] == "member" and r["role_source"] == "api", r
        n = len(events_of(api))
        st, r = api.put(f"{MS}/{m['id']}", {"role_slug": "member"})   # no-op
        assert st == 200 and len(events_of(api)) == n, "a no-op emits nothing (R26)"
        kinds = [e["event"] for e in events_of(api)]
        assert kinds.count("organization_membership.updated") == 2, kinds
        st, e = api.put(f"{MS}/om_01HZZZZZZZZZZZZZZZZZZZZZZZ", {"role_slug": "admin"})
        assert st == 404, (st, e)


@test
def test_R12_multiple_roles_on_holds_several_in_priority_order():
    with server() as api:
        env_roles(api, "admin", "billing")
        st, env = api.patch("/environment", {"multiple_roles": True})
        assert st == 200 and env["multiple_roles"] is True, (st, env)
        _, m = _member(api, role_slugs=["billing", "admin", "billing"])
        assert _slugs(m) == ["admin", "billing"] and m["role"]["slug"] == "admin", m
        st, r = api.put(f"{MS}/{m['id']}", {"role_slugs": ["member", "billing"]})
        assert st == 200 and _slugs(r) == ["member", "billing"], r
        st, e = api.put(f"{MS}/{m['id']}", {"role_slugs": []})
        assert st == 422 and e["code"] == "invalid_role", (st, e)


@test
def test_R14_turning_multiple_roles_off_keeps_highest():
    with server() as api:
        env_roles(api, "admin", "billing")
        api.patch("/environment", {"multiple_roles": True})
        o, m = _member(api, role_slugs=["billing", "admin"])
        assert _slugs(m) == ["admin", "billing"], m
        # the organization orders billing above admin
        api.post(f"/authorization/organizations/{o['id']}/roles", {"slug": "org-x", "name": "X"})
        api.put(f"/authorization/organizations/{o['id']}/roles/priority",
                {"slugs": ["billing", "org-x", "member", "admin"]})
        st, env = api.patch("/environment", {"multiple_roles": False})
        assert st == 200 and env["multiple_roles"] is False, (st, env)
        g = api.get(f"{MS}/{m['id']}")[1]
        assert _slugs(g) == ["billing"] and g["role"]["slug"] == "billing", g


if __name__ == "__main__":
    run_all()
