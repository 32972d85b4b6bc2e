/* test_store_lists.c: the store's output pointers and its hot reads.
 *  - every function taking json_t **out / rg_role_table **out accepts NULL
 *    (existence checks, writes whose result is not needed): reads still
 *    answer their status, writes still commit and emit their events (R26);
 *  - the role list (R8, R11), the membership list (R11) and the role table
 *    (R15) give exactly what the one-object paths give, in a constant
 *    number of SQL statements whatever the number of rows. */
#include "test_store_helpers.h"
#include "../../src/store/store_impl.h"

/* ---- NULL out -------------------------------------------------------------- */

/* Rows of organization id named name. */
static long long org_named(fx *f, const char *id, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM organizations WHERE id = '%s'"
             " AND name = '%s'", id, name);
    return q_int(f, sql);
}

/* The id of the only row of a list (out given: the list path with out set). */
static void only_id(json_t *list, char id[64])
{
    json_t *data = json_object_get(list, "data");
    assert_int_equal(json_array_size(data), 1);
    snprintf(id, 64, "%s", js(json_array_get(data, 0), "id"));
    json_decref(list);
}

static void test_store_null_out_is_allowed(void **state)
{
    fx *f = *state;
    rg_store *s = f->s;
    rg_error *e = &f->err;
    char org[64], user[64], om[64], conn[64];
    json_t *l = NULL;

    /* environment */
    assert_int_equal(rg_store_environment_get(s, NULL, e), 0);
    assert_int_equal(rg_store_environment_update(s, 1, NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT multiple_roles FROM environment"), 1);
    assert_int_equal(n_events(f, "environment.updated"), 1);

    /* permissions */
    assert_int_equal(rg_store_permission_create(s, "users:view", "View", NULL, 0, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM permissions WHERE slug = 'users:view'"), 1);
    assert_int_equal(n_events(f, "permission.created"), 1);
    assert_int_equal(rg_store_permission_list(s, NULL, NULL, e), 0);
    assert_int_equal(rg_store_permission_get(s, "users:view", NULL, e), 0);
    assert_int_equal(rg_store_permission_get(s, "nope:view", NULL, e), RG_ENOTFOUND);
    assert_int_equal(e->status, 404);
    assert_int_equal(rg_store_permission_update(s, "users:view", "Users", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM permissions WHERE name = 'Users'"), 1);

    /* organizations */
    assert_int_equal(rg_store_organization_create(s, "Acme", S("acme.com"), 1, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM organizations WHERE name = 'Acme'"), 1);
    assert_int_equal(n_events(f, "organization.created"), 1);
    assert_int_equal(rg_store_organization_list(s, NULL, NULL, e), 0);
    assert_int_equal(rg_store_organization_list(s, NULL, &l, e), 0);
    only_id(l, org);
    assert_int_equal(rg_store_organization_get(s, org, NULL, e), 0);
    assert_int_equal(rg_store_organization_get(s, "org_missing", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_organization_get(s, NULL, NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_organization_update(s, org, "Acme 2", NULL, -1, NULL, NULL, e), 0);
    assert_int_equal(org_named(f, org, "Acme 2"), 1);

    /* roles, their permissions, priorities, tables */
    assert_int_equal(rg_store_role_create(s, NULL, "admin", "Admin", NULL, NULL, e), 0);
    assert_int_equal(rg_store_role_create(s, org, "org-owner", "Owner", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles"), 3);
    assert_int_equal(n_events(f, "role.created"), 1);
    assert_int_equal(n_events(f, "organization_role.created"), 1);
    assert_int_equal(rg_store_role_list(s, NULL, NULL, e), 0);
    assert_int_equal(rg_store_role_list(s, org, NULL, e), 0);
    assert_int_equal(rg_store_role_list(s, "org_missing", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_role_get(s, org, "admin", NULL, e), 0);
    assert_int_equal(rg_store_role_get(s, NULL, "org-owner", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_role_update(s, org, "org-owner", "Owners", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE name = 'Owners'"), 1);
    assert_int_equal(rg_store_role_permissions_set(s, NULL, "admin", S("users:view"), 1, NULL,
                                                   e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_permissions"), 1);
    assert_int_equal(rg_store_role_permissions_add(s, org, "org-owner", S("users:view"), 1,
                                                   NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_permissions"), 2);
    assert_int_equal(rg_store_role_permission_remove(s, NULL, "admin", "users:view", NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_permissions"), 1);
    assert_int_equal(rg_store_priority_set(s, NULL, S("admin", "member"), 2, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT p.position FROM priorities p JOIN roles r"
                              " ON r.id = p.role_id WHERE p.scope = '' AND r.slug = 'admin'"), 0);
    assert_int_equal(n_events(f, "role_priority.updated"), 1);
    assert_int_equal(rg_store_role_table(s, org, NULL, e), 0);
    assert_int_equal(rg_store_role_table(s, NULL, NULL, e), 0);
    assert_int_equal(rg_store_role_table(s, "org_missing", NULL, e), RG_ENOTFOUND);

    /* users and memberships */
    assert_int_equal(rg_store_user_create(s, "ada@example.com", "Ada", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), 1);
    assert_int_equal(n_events(f, "user.created"), 1);
    assert_int_equal(rg_store_user_list(s, NULL, NULL, NULL, e), 0);
    assert_int_equal(rg_store_user_list(s, "ada@example.com", NULL, &l, e), 0);
    only_id(l, user);
    assert_int_equal(rg_store_user_get(s, user, NULL, e), 0);
    assert_int_equal(rg_store_user_get(s, "user_missing", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_membership_create(s, user, org, NULL, 0, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 1);
    assert_int_equal(n_events(f, "organization_membership.created"), 1);
    assert_int_equal(rg_store_membership_list(s, NULL, org, NULL, NULL, e), 0);
    assert_int_equal(rg_store_membership_list(s, user, NULL, NULL, &l, e), 0);
    only_id(l, om);
    assert_int_equal(rg_store_membership_get(s, om, NULL, e), 0);
    assert_int_equal(rg_store_membership_get(s, "om_missing", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_membership_update(s, om, S("admin", "org-owner"), 2, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM membership_roles"), 2);
    assert_int_equal(n_events(f, "organization_membership.updated"), 1);
    /* a failing write with NULL out reports and changes nothing */
    assert_int_equal(rg_store_membership_update(s, om, S("nope"), 1, NULL, e), RG_EUNPROCESSABLE);
    assert_int_equal(q_int(f, "SELECT count(*) FROM membership_roles"), 2);

    /* connections, mappings, logins */
    json_t *cfg = json_pack("{s:s,s:s}", "client_id", "rg", "client_secret", "s3cret");
    assert_int_equal(rg_store_connection_create(s, org, "oidc", "Okta", cfg, NULL, e), 0);
    json_decref(cfg);
    assert_int_equal(q_int(f, "SELECT count(*) FROM connections"), 1);
    assert_int_equal(n_events(f, "connection.created"), 1);
    assert_int_equal(rg_store_connection_list(s, NULL, NULL, NULL, e), 0);
    assert_int_equal(rg_store_connection_list(s, org, NULL, &l, e), 0);
    only_id(l, conn);
    assert_int_equal(rg_store_connection_get(s, conn, NULL, e), 0);
    assert_int_equal(rg_store_connection_private(s, conn, NULL, e), 0);
    assert_int_equal(rg_store_connection_private(s, "conn_missing", NULL, e), RG_ENOTFOUND);
    assert_int_equal(rg_store_connection_update(s, conn, "Okta 2", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM connections WHERE name = 'Okta 2'"), 1);
    json_t *maps = json_pack("[{s:s,s:s}]", "idp_group", "admins", "role_slug", "admin");
    assert_int_equal(rg_store_role_mappings_set(s, conn, maps, NULL, e), 0);
    json_decref(maps);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_mappings"), 1);
    assert_int_equal(rg_store_role_mappings_get(s, conn, NULL, e), 0);
    assert_int_equal(rg_store_role_mappings_get(s, "conn_missing", NULL, e), RG_ENOTFOUND);
    rg_store_login_user u = {.subject = "sub-1", .email = "bob@example.com"};
    assert_int_equal(rg_store_login_apply(s, org, conn, &u, S("admins"), 1, NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM identities"), 1);
    assert_int_equal(n_events(f, "authentication.succeeded"), 1);

    /* events, role deletion */
    assert_int_equal(rg_store_event_list(s, NULL, NULL, NULL, e), 0);
    assert_int_equal(rg_store_event_list(s, "user.created", NULL, NULL, e), 0);
    assert_int_equal(rg_store_role_delete(s, org, "org-owner", NULL, NULL, e), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE slug = 'org-owner'"
                              " AND status = 'deleting'"), 1);
    assert_int_equal(n_events(f, "organization_role.deleted"), 1);
}

/* ---- list = one-object paths -------------------------------------------------- */

typedef struct scene {
    char a[64];     /* follows the environment */
    char b[64];     /* independent: own roles, own order */
    char conn[64];  /* b's connection */
    char oms[8][64];
    size_t n_oms;
} scene;

static void give_perms(fx *f, const char *org, const char *role, const char *const *p, size_t n)
{
    json_t *o = NULL;
    assert_int_equal(rg_store_role_permissions_set(f->s, org, role, p, n, &o, &f->err), 0);
    json_decref(o);
}

/* Environment viewer > admin > member with permissions; organization a
 * following it; organization b with own roles in its own order, one own
 * role being deleted; memberships of several roles (multiple_roles on). */
static void build_scene(fx *f, scene *sc)
{
    const char *perms[] = { "a:read", "b:read", "c:write", "d:all" };
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(rg_store_permission_create(f->s, perms[i], perms[i], NULL, 0, NULL,
                                                    &f->err), 0);
    assert_int_equal(rg_store_environment_update(f->s, 1, NULL, NULL, &f->err), 0);
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    set_priority(f, NULL, S("viewer", "admin", "member"), 3);
    give_perms(f, NULL, "admin", S("d:all", "b:read", "a:read"), 3);
    give_perms(f, NULL, "viewer", S("a:read"), 1);
    mk_org(f, "A", sc->a);
    mk_org(f, "B", sc->b);
    mk_role(f, sc->b, "org-b1");
    mk_role(f, sc->b, "org-b2");
    mk_role(f, sc->b, "org-b3");
    mk_role(f, sc->b, NULL);   /* R5: a generated slug */
    give_perms(f, sc->b, "org-b1", S("c:write", "a:read"), 2);
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, sc->b, &l, &f->err), 0);
    const char *gen = js(json_array_get(json_object_get(l, "data"), 6), "slug");
    assert_non_null(gen);
    set_priority(f, sc->b, S("org-b2", "admin", gen, "viewer", "org-b3", "org-b1", "member"), 7);
    json_decref(l);
    char u[64];
    const char *const sets[][3] = { { "org-b1", "viewer", "org-b2" }, { "member", NULL, NULL },
                                    { "org-b3", "admin", NULL }, { "viewer", "org-b1", NULL } };
    const size_t ns[] = { 3, 1, 2, 2 };
    for (size_t i = 0; i < 4; i++) {
        char email[64];
        snprintf(email, sizeof email, "u%zu@example.com", i);
        mk_user(f, email, u);
        mk_member(f, u, sc->b, sets[i], ns[i], sc->oms[sc->n_oms++]);
        if (i < 2)
            mk_member(f, u, sc->a, S("admin", "viewer"), 2, sc->oms[sc->n_oms++]);
    }
    json_t *c = NULL;
    assert_int_equal(rg_store_connection_create(f->s, sc->b, "saml", "ADFS", NULL, &c, &f->err),
                     0);
    snprintf(sc->conn, sizeof sc->conn, "%s", js(c, "id"));
    json_decref(c);
    json_t *maps = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "idp_group", "g1",
                             "role_slug", "org-b1", "idp_group", "g1", "role_slug", "viewer",
                             "idp_group", "g2", "role_slug", "org-b3", "idp_group", "g3",
                             "role_slug", "admin");
    assert_int_equal(rg_store_role_mappings_set(f->s, sc->conn, maps, NULL, &f->err), 0);
    json_decref(maps);
    /* R20: org-b3 disappears from lists and tables at once; its
     * memberships keep it (last) until the job runs */
    assert_int_equal(rg_store_role_delete(f->s, sc->b, "org-b3", NULL, NULL, &f->err), 0);
}

/* Each element of the list equals role_get of its slug, and the order is
 * the table's. */
static void check_role_list(fx *f, const char *org, const char *expect)
{
    json_t *l = NULL;
    char buf[512];
    assert_int_equal(rg_store_role_list(f->s, org, &l, &f->err), 0);
    assert_string_equal(list_slugs(l, buf, sizeof buf), expect);
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, org, &t, &f->err), 0);
    json_t *data = json_object_get(l, "data");
    assert_int_equal(json_array_size(data), rg_role_table_count(t));
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *item = json_array_get(data, i), *one = NULL;
        assert_string_equal(js(item, "slug"), rg_role_table_slug_at(t, i));
        assert_int_equal(rg_store_role_get(f->s, org, js(item, "slug"), &one, &f->err), 0);
        if (!json_equal(item, one)) {
            char *a = json_dumps(item, JSON_COMPACT), *b = json_dumps(one, JSON_COMPACT);
            fail_msg("list item %s != get %s", a, b);
        }
        /* R15 input: the table's permissions are the role's */
        size_t np = 0;
        const char *const *p = rg_role_table_permissions(t, js(item, "slug"), &np);
        json_t *jp = json_object_get(one, "permissions");
        assert_int_equal(np, json_array_size(jp));
        for (size_t k = 0; k < np; k++)
            assert_string_equal(p[k], json_string_value(json_array_get(jp, k)));
        json_decref(one);
    }
    rg_role_table_free(t);
    json_decref(l);
}

static void test_R8_R11_role_list_equals_role_get(void **state)
{
    fx *f = *state;
    scene sc = {0};
    build_scene(f, &sc);
    check_role_list(f, NULL, "viewer,admin,member");
    check_role_list(f, sc.a, "viewer,admin,member");
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, sc.b, &l, &f->err), 0);
    const char *gen = js(json_array_get(json_object_get(l, "data"), 2), "slug");
    char expect[256];
    snprintf(expect, sizeof expect, "org-b2,admin,%s,viewer,org-b1,member", gen);
    check_role_list(f, sc.b, expect);
    /* organization roles carry organization_id; permissions are sorted */
    json_t *b1 = json_array_get(json_object_get(l, "data"), 4);
    assert_string_equal(js(b1, "organization_id"), sc.b);
    assert_string_equal(js(b1, "type"), "OrganizationRole");
    assert_string_equal(json_string_value(json_array_get(json_object_get(b1, "permissions"), 0)),
                        "a:read");
    assert_null(json_object_get(b1, "status"));
    json_decref(l);
}

static void check_member_page(fx *f, json_t *l)
{
    json_t *data = json_object_get(l, "data");
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *item = json_array_get(data, i), *one = NULL;
        assert_int_equal(rg_store_membership_get(f->s, js(item, "id"), &one, &f->err), 0);
        if (!json_equal(item, one)) {
            char *a = json_dumps(item, JSON_COMPACT), *b = json_dumps(one, JSON_COMPACT);
            fail_msg("list item %s != get %s", a, b);
        }
        json_decref(one);
    }
}

static void test_R11_membership_list_equals_membership_get(void **state)
{
    fx *f = *state;
    scene sc = {0};
    build_scene(f, &sc);
    json_t *l = NULL;
    rg_store_list_opts all = { .limit = 100 };
    assert_int_equal(rg_store_membership_list(f->s, NULL, NULL, &all, &l, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "data")), sc.n_oms);
    check_member_page(f, l);
    json_decref(l);
    /* R11 in b's own order, the role being deleted last; role = first */
    char buf[256];
    assert_string_equal(member_roles(f, sc.oms[0], buf, sizeof buf), "org-b2,viewer,org-b1");
    assert_string_equal(member_roles(f, sc.oms[4], buf, sizeof buf), "admin,org-b3");
    assert_string_equal(member_roles(f, sc.oms[1], buf, sizeof buf), "viewer,admin");
    /* pages both ways, filtered */
    rg_store_list_opts two = { .limit = 2 };
    assert_int_equal(rg_store_membership_list(f->s, NULL, sc.b, &two, &l, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 2);
    check_member_page(f, l);
    char after[64];
    snprintf(after, sizeof after, "%s",
             json_string_value(json_object_get(json_object_get(l, "list_metadata"), "after")));
    json_decref(l);
    rg_store_list_opts next = { .limit = 2, .after = after };
    assert_int_equal(rg_store_membership_list(f->s, NULL, sc.b, &next, &l, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 2);
    check_member_page(f, l);
    assert_true(json_is_null(json_object_get(json_object_get(l, "list_metadata"), "after")));
    json_decref(l);
    /* an unknown cursor: an empty page */
    rg_store_list_opts none = { .after = "om_unknown" };
    assert_int_equal(rg_store_membership_list(f->s, NULL, NULL, &none, &l, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
}

static void test_R15_R16_table_resolves_mappings_in_priority_order(void **state)
{
    fx *f = *state;
    scene sc = {0};
    build_scene(f, &sc);
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, sc.b, &t, &f->err), 0);
    rg_login_input in = { .connection_id = sc.conn, .groups = S("g1", "g2", "g3", "g4"),
                          .n_groups = 4, .current_source = RG_SOURCE_NONE };
    rg_resolution res;
    assert_int_equal(rg_core_resolve_login(t, &in, &res, &f->err), 0);
    /* multiple roles: every mapped visible role, in b's order; org-b3 (being
     * deleted) is no longer mapped */
    char buf[256] = "";
    size_t at = 0;
    for (size_t i = 0; i < res.roles.n; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? "," : "", res.roles.v[i]);
    assert_string_equal(buf, "admin,viewer,org-b1");
    at = 0;
    for (size_t i = 0; i < res.permissions.n; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? "," : "",
                               res.permissions.v[i]);
    assert_string_equal(buf, "a:read,b:read,c:write,d:all");
    rg_resolution_clear(&res);
    rg_role_table_free(t);
}

/* ---- statement counts --------------------------------------------------------- */

static long stmts_prepared(fx *f)
{
    long n = 0;
    for (int i = 0; i < ST_POOL; i++)
        n += f->s->conns[i]->stmts;
    return n;
}

/* SQL statements prepared (on every pooled connection, either backend) by
 * fn. */
static long statements(fx *f, void (*fn)(fx *f, const char *org), const char *org)
{
    long n = stmts_prepared(f);
    fn(f, org);
    return stmts_prepared(f) - n;
}

static void run_role_list(fx *f, const char *org)
{
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, org, &l, &f->err), 0);
    json_decref(l);
}

static void run_role_table(fx *f, const char *org)
{
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, org, &t, &f->err), 0);
    rg_role_table_free(t);
}

static void run_member_list(fx *f, const char *org)
{
    json_t *l = NULL;
    rg_store_list_opts o = { .limit = 100 };
    assert_int_equal(rg_store_membership_list(f->s, NULL, org, &o, &l, &f->err), 0);
    json_decref(l);
}

/* Roles from..to-1 with 2 permissions, 2 mappings and a membership each;
 * maps accumulates every mapping of conn. */
static void grow(fx *f, const char *org, const char *conn, json_t *maps, int from, int to)
{
    for (int i = from; i < to; i++) {
        char slug[32], email[64], u[64], om[64];
        snprintf(slug, sizeof slug, "org-r%02d", i);
        mk_role(f, org, slug);
        give_perms(f, org, slug, S("a:read", "b:read"), 2);
        json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", slug, "role_slug", slug));
        json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", "all", "role_slug", slug));
        assert_int_equal(rg_store_role_mappings_set(f->s, conn, maps, NULL, &f->err), 0);
        snprintf(email, sizeof email, "m%02d@example.com", i);
        mk_user(f, email, u);
        mk_member(f, u, org, S(slug, "member"), 2, om);
    }
}

static void test_R11_hot_reads_run_a_constant_number_of_statements(void **state)
{
    fx *f = *state;
    char org[64], conn[64];
    json_t *c = NULL;
    assert_int_equal(rg_store_environment_update(f->s, 1, NULL, NULL, &f->err), 0);
    assert_int_equal(rg_store_permission_create(f->s, "a:read", "A", NULL, 0, NULL, &f->err), 0);
    assert_int_equal(rg_store_permission_create(f->s, "b:read", "B", NULL, 0, NULL, &f->err), 0);
    mk_org(f, "Acme", org);
    assert_int_equal(rg_store_connection_create(f->s, org, "oidc", "Okta", NULL, &c, &f->err), 0);
    snprintf(conn, sizeof conn, "%s", js(c, "id"));
    json_decref(c);
    json_t *maps = json_array();
    grow(f, org, conn, maps, 0, 2);
    long list2 = statements(f, run_role_list, org);
    long table2 = statements(f, run_role_table, org);
    long members2 = statements(f, run_member_list, org);
    long env2 = statements(f, run_role_list, NULL);
    grow(f, org, conn, maps, 2, 30);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_mappings"), 60);
    json_decref(maps);
    char buf[1024];
    assert_int_equal(strlen(roles_of(f, org, buf, sizeof buf)) > 30 * 6, 1);
    assert_int_equal(statements(f, run_role_list, org), list2);
    assert_int_equal(statements(f, run_role_table, org), table2);
    assert_int_equal(statements(f, run_member_list, org), members2);
    assert_int_equal(statements(f, run_role_list, NULL), env2);
    /* small constants, not one query per row */
    assert_true(list2 <= 12);
    assert_true(table2 <= 10);
    assert_true(members2 <= 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
        T(test_store_null_out_is_allowed),
        T(test_R8_R11_role_list_equals_role_get),
        T(test_R11_membership_list_equals_membership_get),
        T(test_R15_R16_table_resolves_mappings_in_priority_order),
        T(test_R11_hot_reads_run_a_constant_number_of_statements),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
