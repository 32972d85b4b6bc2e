/* test_store_rbac.c: the store's environment, permissions, roles and
 * priority orders against a fresh SQLite file per test: R1-R14, R19, R22,
 * R26 (events once per change, none for a no-op), failed writes changing
 * nothing, migrations reopening idempotently, table versions. */
#include "test_store_helpers.h"

static void test_R7_new_store_has_member_as_default(void **state)
{
    fx *f = *state;
    json_t *env = NULL;
    char buf[256];
    assert_int_equal(rg_store_environment_get(f->s, &env, &f->err), 0);
    assert_string_equal(js(env, "object"), "environment");
    assert_string_equal(js(env, "default_role"), "member");
    assert_true(json_is_false(json_object_get(env, "multiple_roles")));
    json_decref(env);
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member");
    assert_int_equal(rg_store_schema_version(f->s), RG_STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(f, "PRAGMA user_version"), RG_STORE_SCHEMA_VERSION);
    assert_string_equal(table_default(f, NULL, buf, sizeof buf), "member");
    /* a new store has emitted nothing */
    assert_int_equal(n_events(f, NULL), 0);
}

static void test_migrations_reopen_idempotently(void **state)
{
    fx *f = *state;
    mk_role(f, NULL, "admin");
    fx_reopen(f);
    fx_reopen(f);
    char buf[256];
    assert_int_equal(rg_store_schema_version(f->s), RG_STORE_SCHEMA_VERSION);
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member,admin");
    assert_int_equal(q_int(f, "SELECT count(*) FROM environment"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE slug = 'member'"), 1);
    assert_int_equal(q_int(f, "PRAGMA journal_mode = WAL") >= 0, 1);
}

static void test_store_open_refuses_memory_path(void **state)
{
    (void)state;
    rg_error e;
    assert_null(rg_store_open(":memory:", &e));
    assert_null(rg_store_open("/nonexistent-dir-rg/x.db", &e));
    assert_string_equal(e.code, "store_error");
}

static void test_R1_R3_environment_role_slug_rules(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    assert_true(rg_store_role_create(f->s, NULL, "Bad Slug", "Bad", NULL, &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_string_equal(f->err.field, "slug");
    assert_true(rg_store_role_create(f->s, NULL, "org-admin", "Admin", NULL, &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_true(rg_store_role_create(f->s, NULL, NULL, "No slug", NULL, &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_true(rg_store_role_create(f->s, NULL, "priority", "Reserved", NULL, &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_null(o);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles"), 1);
    assert_int_equal(n_events(f, NULL), 0);
}

static void test_R2_permission_name_and_description_limits(void **state)
{
    fx *f = *state;
    char longname[60];
    memset(longname, 'a', 49);
    longname[49] = 0;
    assert_true(rg_store_permission_create(f->s, "users:view", longname, NULL, 0, NULL,
                                           &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_string_equal(f->err.field, "name");
    assert_true(rg_store_permission_create(f->s, "Users View", "x", NULL, 0, NULL, &f->err) < 0);
    assert_string_equal(f->err.field, "slug");
    json_t *p = NULL;
    assert_int_equal(rg_store_permission_create(f->s, "reports.*", "Reports", "All reports", 0,
                                                &p, &f->err), 0);
    assert_string_equal(js(p, "object"), "permission");
    assert_string_equal(js(p, "slug"), "reports.*");
    assert_true(!strncmp(js(p, "id"), "perm_", 5));
    assert_true(json_is_false(json_object_get(p, "system")));
    json_decref(p);
}

static void test_R6_duplicate_role_slug_changes_nothing(void **state)
{
    fx *f = *state;
    mk_role(f, NULL, "admin");
    long long ev = n_events(f, NULL), roles = q_int(f, "SELECT count(*) FROM roles");
    uint64_t v = rg_store_table_version(f->s, NULL);
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(f->s, NULL, "admin", "Again", NULL, &o, &f->err),
                     RG_ECONFLICT);
    assert_int_equal(f->err.status, 409);
    assert_string_equal(f->err.code, "role_slug_conflict");
    assert_null(o);
    /* R23: the failed write left nothing behind */
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles"), roles);
    assert_int_equal(rg_store_table_version(f->s, NULL), v);
}

static void test_R6_permission_slug_conflict(void **state)
{
    fx *f = *state;
    assert_int_equal(rg_store_permission_create(f->s, "users:view", "View", NULL, 0, NULL,
                                                &f->err), 0);
    assert_int_equal(rg_store_permission_create(f->s, "users:view", "View 2", NULL, 0, NULL,
                                                &f->err), RG_ECONFLICT);
    assert_string_equal(f->err.code, "permission_slug_conflict");
    assert_int_equal(q_int(f, "SELECT count(*) FROM permissions"), 1);
    assert_int_equal(n_events(f, "permission.created"), 1);
}

static void test_R8_new_roles_at_bottom_and_priority_put(void **state)
{
    fx *f = *state;
    char buf[256];
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member,admin,viewer");
    uint64_t v0 = rg_store_table_version(f->s, NULL);
    set_priority(f, NULL, S("admin", "viewer", "member"), 3);
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "admin,viewer,member");
    assert_true(rg_store_table_version(f->s, NULL) > v0);
    assert_int_equal(n_events(f, "role_priority.updated"), 1);
    /* the same order again: a no-op, no event, no version change */
    uint64_t v1 = rg_store_table_version(f->s, NULL);
    set_priority(f, NULL, S("admin", "viewer", "member"), 3);
    assert_int_equal(n_events(f, "role_priority.updated"), 1);
    assert_int_equal(rg_store_table_version(f->s, NULL), v1);
    /* every visible role exactly once */
    json_t *o = NULL;
    assert_int_equal(rg_store_priority_set(f->s, NULL, S("admin", "member"), 2, &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_int_equal(f->err.status, 422);
    assert_string_equal(f->err.code, "invalid_priority");
    assert_true(rg_store_priority_set(f->s, NULL, S("admin", "admin", "member"), 3, &o,
                                      &f->err) < 0);
    assert_true(rg_store_priority_set(f->s, NULL, S("admin", "ghost", "member"), 3, &o,
                                      &f->err) < 0);
    assert_null(o);
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "admin,viewer,member");
    /* the role table logins use has the same order */
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, NULL, &t, &f->err), 0);
    assert_string_equal(rg_role_table_slug_at(t, 0), "admin");
    assert_int_equal(rg_role_table_rank(t, "member"), 2);
    rg_role_table_free(t);
}

static void test_R9_first_org_role_copies_env_default_and_order(void **state)
{
    fx *f = *state;
    char org[64], buf[256];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    env_set(f, NULL, -1, "admin");
    assert_int_equal(q_int(f, "SELECT independent FROM organizations"), 0);
    mk_role(f, org, "org-billing");
    /* own default = copy of the env default; own order = env order + new */
    assert_string_equal(table_default(f, org, buf, sizeof buf), "admin");
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "member,admin,org-billing");
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_get(f->s, org, &o, &f->err), 0);
    assert_string_equal(js(o, "default_role"), "admin");
    json_decref(o);
    /* independent from then on */
    env_set(f, NULL, -1, "member");
    set_priority(f, NULL, S("admin", "member"), 2);
    assert_string_equal(table_default(f, org, buf, sizeof buf), "admin");
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "member,admin,org-billing");
    assert_string_equal(table_default(f, NULL, buf, sizeof buf), "member");
}

static void test_R9_org_without_roles_inherits_live(void **state)
{
    fx *f = *state;
    char org[64], buf[256];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_get(f->s, org, &o, &f->err), 0);
    assert_null(json_object_get(o, "default_role"));
    json_decref(o);
    uint64_t v0 = rg_store_table_version(f->s, org);
    set_priority(f, NULL, S("admin", "member"), 2);
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "admin,member");
    assert_true(rg_store_table_version(f->s, org) > v0);
    env_set(f, NULL, -1, "admin");
    assert_string_equal(table_default(f, org, buf, sizeof buf), "admin");
}

static void test_R9_setting_org_default_or_order_makes_it_independent(void **state)
{
    fx *f = *state;
    char a[64], b[64], buf[256];
    mk_role(f, NULL, "admin");
    mk_org(f, "A", a);
    mk_org(f, "B", b);
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_update(f->s, a, NULL, NULL, -1, "admin", &o, &f->err),
                     0);
    assert_string_equal(js(o, "default_role"), "admin");
    json_decref(o);
    set_priority(f, b, S("admin", "member"), 2);
    /* now the environment changes; neither organization follows */
    set_priority(f, NULL, S("admin", "member"), 2);
    set_priority(f, b, S("member", "admin"), 2);
    set_priority(f, NULL, S("member", "admin"), 2);
    set_priority(f, NULL, S("admin", "member"), 2);
    assert_string_equal(roles_of(f, a, buf, sizeof buf), "member,admin");   /* the copy */
    assert_string_equal(roles_of(f, b, buf, sizeof buf), "member,admin");   /* its own */
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "admin,member");
    assert_string_equal(table_default(f, a, buf, sizeof buf), "admin");
    assert_string_equal(table_default(f, b, buf, sizeof buf), "member");
    assert_int_equal(q_int(f, "SELECT count(*) FROM organizations WHERE independent = 1"), 2);
    /* an invisible default is 422 and changes nothing */
    long long ev = n_events(f, NULL);
    assert_true(rg_store_organization_update(f->s, a, NULL, NULL, -1, "ghost", &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    assert_string_equal(f->err.code, "invalid_role");
    assert_int_equal(n_events(f, NULL), ev);
}

static void test_R10_env_role_added_later_goes_to_bottom_of_org_order(void **state)
{
    fx *f = *state;
    char org[64], buf[256];
    mk_org(f, "Acme", org);
    mk_role(f, org, "org-ops");
    set_priority(f, org, S("org-ops", "member"), 2);
    mk_role(f, NULL, "auditor");
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "org-ops,member,auditor");
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member,auditor");
}

static void test_R11_org_list_merges_env_and_org_roles_in_org_order(void **state)
{
    fx *f = *state;
    char org[64], other[64], buf[256];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    mk_org(f, "Other", other);
    mk_role(f, org, "org-a");
    mk_role(f, org, "org-b");
    set_priority(f, org, S("org-b", "admin", "org-a", "member"), 4);
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, org, &l, &f->err), 0);
    assert_string_equal(list_slugs(l, buf, sizeof buf), "org-b,admin,org-a,member");
    json_t *first = json_array_get(json_object_get(l, "data"), 0);
    assert_string_equal(js(first, "type"), "OrganizationRole");
    assert_string_equal(js(first, "organization_id"), org);
    assert_string_equal(js(json_array_get(json_object_get(l, "data"), 1), "type"),
                        "EnvironmentRole");
    assert_true(json_is_null(json_object_get(json_object_get(l, "list_metadata"), "after")));
    json_decref(l);
    /* another organization does not see them */
    assert_string_equal(roles_of(f, other, buf, sizeof buf), "member,admin");
    json_t *o = NULL;
    assert_int_equal(rg_store_role_get(f->s, other, "org-a", &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(f->err.status, 404);
    assert_int_equal(rg_store_role_get(f->s, org, "admin", &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(rg_store_role_list(f->s, "org_nope", &o, &f->err), RG_ENOTFOUND);
    assert_string_equal(f->err.field, "organization_id");
}

static void test_R4_org_slug_rules(void **state)
{
    fx *f = *state;
    char org[64];
    mk_org(f, "Acme", org);
    json_t *o = NULL;
    assert_true(rg_store_role_create(f->s, org, "billing", "Billing", NULL, &o, &f->err) < 0);
    assert_int_equal(f->err.status, 422);
    mk_role(f, org, "org-billing");
    assert_int_equal(rg_store_role_create(f->s, org, "org-billing", "Billing", NULL, &o,
                                          &f->err), RG_ECONFLICT);
    assert_string_equal(f->err.code, "organization_role_slug_conflict");
    /* the same slug in another organization is fine */
    char other[64];
    mk_org(f, "Other", other);
    mk_role(f, other, "org-billing");
    assert_int_equal(n_events(f, "organization_role.created"), 2);
}

static void test_R5_generated_org_slug(void **state)
{
    fx *f = *state;
    char org[64];
    mk_org(f, "Acme", org);
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(f->s, org, NULL, "Billing Admin", NULL, &o, &f->err),
                     0);
    const char *id = js(o, "id"), *slug = js(o, "slug");
    char want[64];
    snprintf(want, sizeof want, "billing-admin-%s", id + strlen(id) - 6);
    for (char *p = want; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    assert_string_equal(slug, want);
    assert_string_equal(js(o, "type"), "OrganizationRole");
    json_decref(o);
}

static void test_R12_multiple_roles_off_accepts_one_role_only(void **state)
{
    fx *f = *state;
    char org[64], u[64], om[64], buf[128];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    mk_user(f, "ada@example.com", u);
    json_t *o = NULL;
    assert_int_equal(rg_store_membership_create(f->s, u, org, S("admin", "member"), 2, &o,
                                                &f->err), RG_EUNPROCESSABLE);
    assert_string_equal(f->err.code, "multiple_roles_not_enabled");
    const char *const empty[1] = { NULL };
    assert_true(rg_store_membership_create(f->s, u, org, empty, 0, &o, &f->err) < 0);
    assert_string_equal(f->err.code, "invalid_role");
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 0);
    mk_member(f, u, org, S("admin"), 1, om);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "admin");
    /* on: several roles, permissions are the union */
    assert_int_equal(rg_store_environment_update(f->s, 1, NULL, &o, &f->err), 0);
    assert_true(json_is_true(json_object_get(o, "multiple_roles")));
    json_decref(o);
    assert_int_equal(rg_store_membership_update(f->s, om, S("member", "admin"), 2, &o, &f->err),
                     0);
    assert_string_equal(js(json_object_get(o, "role"), "slug"), "member");
    json_decref(o);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "member,admin");
}

static void test_R13_membership_without_roles_gets_org_default(void **state)
{
    fx *f = *state;
    char org[64], om[64], buf[128];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    org_default(f, org, "admin");
    mk_user_member(f, "ada@example.com", org, NULL, 0, om);
    json_t *o = NULL;
    assert_int_equal(rg_store_membership_get(f->s, om, &o, &f->err), 0);
    assert_string_equal(js(o, "role_source"), "default");
    assert_string_equal(js(o, "status"), "active");
    assert_string_equal(js(o, "object"), "organization_membership");
    assert_string_equal(js(json_object_get(o, "role"), "slug"), "admin");
    json_decref(o);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "admin");
}

static void test_R14_turning_multiple_roles_off_keeps_highest(void **state)
{
    fx *f = *state;
    char org[64], org2[64], u[64], om1[64], om2[64], om3[64], buf[128];
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    mk_org(f, "Acme", org);
    mk_org(f, "Beta", org2);
    set_priority(f, org2, S("viewer", "member", "admin"), 3);   /* its own order */
    env_set(f, NULL, 1, NULL);
    mk_user(f, "u@example.com", u);
    mk_member(f, u, org, S("viewer", "admin"), 2, om1);
    mk_member(f, u, org2, S("admin", "viewer"), 2, om2);
    mk_user_member(f, "v@example.com", org, S("viewer"), 1, om3);
    long long upd = n_events(f, "organization_membership.updated");
    env_set(f, NULL, 0, NULL);
    assert_string_equal(member_roles(f, om1, buf, sizeof buf), "admin");   /* env order */
    assert_string_equal(member_roles(f, om2, buf, sizeof buf), "viewer");  /* own order */
    assert_string_equal(member_roles(f, om3, buf, sizeof buf), "viewer");
    assert_int_equal(n_events(f, "organization_membership.updated"), upd + 2);
    assert_int_equal(n_events(f, "environment.updated"), 2);
    assert_int_equal(q_int(f, "SELECT max(c) FROM (SELECT count(*) c FROM membership_roles"
                              " GROUP BY membership_id) t"), 1);
}

static void test_R19_api_roles_set_source_api_and_unknown_is_422(void **state)
{
    fx *f = *state;
    char org[64], om[64];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    mk_user_member(f, "ada@example.com", org, NULL, 0, om);
    json_t *o = NULL;
    long long ev = n_events(f, NULL);
    assert_int_equal(rg_store_membership_update(f->s, om, S("ghost"), 1, &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_string_equal(f->err.code, "invalid_role");
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(rg_store_membership_update(f->s, om, S("admin"), 1, &o, &f->err), 0);
    assert_string_equal(js(o, "role_source"), "api");
    json_decref(o);
    /* the same roles again: a no-op */
    assert_int_equal(rg_store_membership_update(f->s, om, S("admin"), 1, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "organization_membership.updated"), 1);
    /* the default role set through the API still becomes "api" */
    assert_int_equal(rg_store_membership_update(f->s, om, S("member"), 1, &o, &f->err), 0);
    assert_string_equal(js(o, "role_source"), "api");
    json_decref(o);
}

static void test_R22_deleting_permission_removes_it_from_roles(void **state)
{
    fx *f = *state;
    char org[64];
    mk_org(f, "Acme", org);
    mk_role(f, NULL, "admin");
    mk_role(f, org, "org-ops");
    mk_perm(f, "users:view", "View");
    mk_perm(f, "users:edit", "Edit");
    json_t *o = NULL;
    assert_int_equal(rg_store_role_permissions_set(f->s, NULL, "admin",
                                                   S("users:view", "users:edit"), 2, &o,
                                                   &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "permissions")), 2);
    json_decref(o);
    assert_int_equal(rg_store_role_permissions_add(f->s, org, "org-ops", S("users:view"), 1,
                                                   &o, &f->err), 0);
    json_decref(o);
    uint64_t v = rg_store_table_version(f->s, org);
    long long upd = n_events(f, "role.updated"), oupd = n_events(f, "organization_role.updated");
    assert_int_equal(rg_store_permission_delete(f->s, "users:view", &f->err), 0);
    assert_int_equal(rg_store_role_get(f->s, NULL, "admin", &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "permissions")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "permissions"), 0)),
                        "users:edit");
    json_decref(o);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_permissions"), 1);
    assert_int_equal(n_events(f, "permission.deleted"), 1);
    assert_int_equal(n_events(f, "role.updated"), upd + 1);
    assert_int_equal(n_events(f, "organization_role.updated"), oupd + 1);
    assert_true(rg_store_table_version(f->s, org) > v);
    rg_role_table *t = NULL;
    size_t n = 9;
    assert_int_equal(rg_store_role_table(f->s, org, &t, &f->err), 0);
    rg_role_table_permissions(t, "org-ops", &n);
    assert_int_equal(n, 0);
    rg_role_table_free(t);
    /* a system permission stays */
    assert_int_equal(rg_store_permission_create(f->s, "rolegate:admin", "Admin", NULL, 1, NULL,
                                                &f->err), 0);
    assert_int_equal(rg_store_permission_delete(f->s, "rolegate:admin", &f->err), RG_ECONFLICT);
    assert_string_equal(f->err.code, "system_permission_cannot_be_deleted");
    assert_int_equal(rg_store_permission_delete(f->s, "nope", &f->err), RG_ENOTFOUND);
}

static void test_role_permissions_put_post_delete(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    mk_perm(f, "a:x", "A");
    mk_perm(f, "b:x", "B");
    assert_int_equal(rg_store_role_permissions_add(f->s, NULL, "member", S("b:x", "a:x"), 2, &o,
                                                   &f->err), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "permissions"), 0)),
                        "a:x");
    json_decref(o);
    long long upd = n_events(f, "role.updated");
    /* adding what it holds: no-op */
    assert_int_equal(rg_store_role_permissions_add(f->s, NULL, "member", S("a:x"), 1, &o,
                                                   &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "role.updated"), upd);
    assert_int_equal(rg_store_role_permissions_set(f->s, NULL, "member", S("a:x", "ghost"), 2,
                                                   &o, &f->err), RG_EUNPROCESSABLE);
    assert_string_equal(f->err.code, "invalid_permission");
    assert_int_equal(rg_store_role_permission_remove(f->s, NULL, "member", "a:x", &o, &f->err),
                     0);
    assert_int_equal(json_array_size(json_object_get(o, "permissions")), 1);
    json_decref(o);
    assert_int_equal(rg_store_role_permission_remove(f->s, NULL, "member", "a:x", &o, &f->err),
                     RG_ENOTFOUND);
    assert_int_equal(n_events(f, "role.updated"), upd + 1);
}

static void test_R26_events_once_per_change_and_none_for_noop(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    mk_role(f, NULL, "admin");
    assert_int_equal(n_events(f, "role.created"), 1);
    assert_int_equal(rg_store_role_update(f->s, NULL, "admin", "admin", NULL, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "role.updated"), 0);
    assert_int_equal(rg_store_role_update(f->s, NULL, "admin", "Administrator", "Runs it", &o,
                                          &f->err), 0);
    assert_string_equal(js(o, "name"), "Administrator");
    json_decref(o);
    assert_int_equal(n_events(f, "role.updated"), 1);
    env_set(f, NULL, 0, "member");
    assert_int_equal(n_events(f, "environment.updated"), 0);
    mk_perm(f, "p:1", "P");
    assert_int_equal(rg_store_permission_update(f->s, "p:1", "P", NULL, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "permission.updated"), 0);
    assert_int_equal(rg_store_permission_update(f->s, "p:1", NULL, "desc", &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "permission.updated"), 1);
    /* the event object */
    rg_store_list_opts lo = { .limit = 100 };
    assert_int_equal(rg_store_event_list(f->s, "role.created", &lo, &o, &f->err), 0);
    json_t *ev = json_array_get(json_object_get(o, "data"), 0);
    assert_string_equal(js(ev, "object"), "event");
    assert_true(!strncmp(js(ev, "id"), "event_", 6));
    assert_string_equal(js(ev, "event"), "role.created");
    assert_string_equal(js(json_object_get(ev, "data"), "slug"), "admin");
    assert_non_null(js(ev, "created_at"));
    json_decref(o);
}

static void test_R26_events_paginate_oldest_first(void **state)
{
    fx *f = *state;
    char slug[16];
    for (int i = 0; i < 5; i++) {
        snprintf(slug, sizeof slug, "p:%d", i);
        mk_perm(f, slug, "P");
    }
    rg_store_list_opts lo = { .limit = 2 };
    json_t *page = NULL;
    int seen = 0;
    char after[64] = "";
    for (int pages = 0; pages < 5; pages++) {
        lo.after = *after ? after : NULL;
        assert_int_equal(rg_store_event_list(f->s, NULL, &lo, &page, &f->err), 0);
        json_t *data = json_object_get(page, "data");
        for (size_t i = 0; i < json_array_size(data); i++) {
            char want[16];
            snprintf(want, sizeof want, "p:%d", seen++);
            assert_string_equal(js(json_object_get(json_array_get(data, i), "data"), "slug"),
                                want);
        }
        json_t *a = json_object_get(json_object_get(page, "list_metadata"), "after");
        if (json_is_null(a)) {
            json_decref(page);
            break;
        }
        snprintf(after, sizeof after, "%s", json_string_value(a));
        json_decref(page);
    }
    assert_int_equal(seen, 5);
    lo.limit = 101;
    assert_int_equal(rg_store_event_list(f->s, NULL, &lo, &page, &f->err), RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "limit");
    lo.limit = 0;
    lo.after = NULL;
    lo.order = "sideways";
    assert_int_equal(rg_store_event_list(f->s, NULL, &lo, &page, &f->err), RG_EUNPROCESSABLE);
    /* newest first when asked */
    lo.order = "desc";
    assert_int_equal(rg_store_event_list(f->s, NULL, &lo, &page, &f->err), 0);
    assert_string_equal(js(json_object_get(json_array_get(json_object_get(page, "data"), 0),
                                           "data"), "slug"), "p:4");
    json_decref(page);
}

static void test_R26_emit_checks_names(void **state)
{
    fx *f = *state;
    json_t *d = json_pack("{s:s}", "reason", "bad_signature");
    assert_int_equal(rg_store_event_emit(f->s, "authentication.failed", d, &f->err), 0);
    assert_int_equal(rg_store_event_emit(f->s, "made.up", d, &f->err), RG_EUNPROCESSABLE);
    json_decref(d);
    assert_int_equal(n_events(f, "authentication.failed"), 1);
    assert_int_equal(n_events(f, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
        T(test_R7_new_store_has_member_as_default),
        T(test_migrations_reopen_idempotently),
        T(test_store_open_refuses_memory_path),
        T(test_R1_R3_environment_role_slug_rules),
        T(test_R2_permission_name_and_description_limits),
        T(test_R6_duplicate_role_slug_changes_nothing),
        T(test_R6_permission_slug_conflict),
        T(test_R8_new_roles_at_bottom_and_priority_put),
        T(test_R9_first_org_role_copies_env_default_and_order),
        T(test_R9_org_without_roles_inherits_live),
        T(test_R9_setting_org_default_or_order_makes_it_independent),
        T(test_R10_env_role_added_later_goes_to_bottom_of_org_order),
        T(test_R11_org_list_merges_env_and_org_roles_in_org_order),
        T(test_R4_org_slug_rules),
        T(test_R5_generated_org_slug),
        T(test_R12_multiple_roles_off_accepts_one_role_only),
        T(test_R13_membership_without_roles_gets_org_default),
        T(test_R14_turning_multiple_roles_off_keeps_highest),
        T(test_R19_api_roles_set_source_api_and_unknown_is_422),
        T(test_R22_deleting_permission_removes_it_from_roles),
        T(test_role_permissions_put_post_delete),
        T(test_R26_events_once_per_change_and_none_for_noop),
        T(test_R26_events_paginate_oldest_first),
        T(test_R26_emit_checks_names),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
