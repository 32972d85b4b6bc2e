/* test_store_login.c: SSO login upserts (R15-R18) through
 * rg_store_login_apply, connections and their group mappings (R15, the
 * client_secret never returned), and the events of a login (R26). */
#include "test_store_helpers.h"

/* Every test's fixture: the store's (f) with setup_org's organization and
 * connections, and what the last login() resolved. */
typedef struct lfx {
    fx *f;
    char org[64];
    char conn[64];
    char conn2[64];
    char roles[128];    /* the resolved roles, "a,b" */
    char src[16];       /* the membership's role_source */
} lfx;

/* An organization with roles admin > viewer > member (environment), a
 * connection mapping "admins" -> admin, "viewers" -> viewer, "staff" ->
 * viewer, and a second connection mapping "admins" -> member. */
static void setup_org(fx *f, lfx *l)
{
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    set_priority(f, NULL, S("admin", "viewer", "member"), 3);
    mk_org(f, "Acme", l->org);
    json_t *c = NULL;
    json_t *cfg = json_pack("{s:s,s:s,s:s}", "issuer", "https://idp.example", "client_id",
                            "rg", "client_secret", "s3cret-value");
    assert_int_equal(rg_store_connection_create(f->s, l->org, "oidc", "Okta", cfg, &c, &f->err),
                     0);
    json_decref(cfg);
    snprintf(l->conn, sizeof l->conn, "%s", js(c, "id"));
    json_decref(c);
    assert_int_equal(rg_store_connection_create(f->s, l->org, "saml", "ADFS", NULL, &c, &f->err),
                     0);
    snprintf(l->conn2, sizeof l->conn2, "%s", js(c, "id"));
    json_decref(c);
    set_mappings(f, NULL, l->conn,
                 json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "idp_group", "admins", "role_slug",
                           "admin", "idp_group", "viewers", "role_slug", "viewer", "idp_group",
                           "staff", "role_slug", "viewer"));
    set_mappings(f, NULL, l->conn2,
                 json_pack("[{s:s,s:s}]", "idp_group", "admins", "role_slug", "member"));
}

static int lfx_setup(void **state)
{
    lfx *l = calloc(1, sizeof *l);
    assert_non_null(l);
    fx_setup(state);
    l->f = *state;
    setup_org(l->f, l);
    *state = l;
    return 0;
}

static int lfx_teardown(void **state)
{
    lfx *l = *state;
    *state = l->f;
    free(l);
    return fx_teardown(state);
}

/* A login handed the organization's table as the gateway read it from the
 * cache layer (NULL: none, the store loads it). */
static int login_with(lfx *l, const char *conn, const char *sub,
                      const char *const *groups, size_t n, const rg_role_table *table)
{
    fx *f = l->f;
    rg_store_login_user u = {.subject = sub, .email = "ada@example.com", .first_name = "Ada",
                             .last_name = "Lovelace", .table = table};
    rg_resolution res;
    json_t *m = NULL;
    int rc = rg_store_login_apply(f->s, l->org, conn, &u, groups, n, &res, &m, &f->err);
    if (rc)
        return rc;
    size_t at = 0;
    l->roles[0] = 0;
    for (size_t i = 0; i < res.roles.n; i++)
        at += (size_t)snprintf(l->roles + at, sizeof l->roles - at, "%s%s", i ? "," : "",
                               res.roles.v[i]);
    snprintf(l->src, sizeof l->src, "%s", js(m, "role_source"));
    /* the membership written is the resolution */
    assert_string_equal(js(json_object_get(m, "role"), "slug"), res.roles.v[0]);
    rg_resolution_clear(&res);
    json_decref(m);
    return 0;
}

static int login(lfx *l, const char *conn, const char *sub, const char *const *groups, size_t n)
{
    return login_with(l, conn, sub, groups, n, NULL);
}

static void test_R18_first_login_creates_user_and_membership(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    long long users = n_events(f, "user.created");
    assert_int_equal(login(l, l->conn, "sub-1", S("staff"), 1), 0);
    assert_string_equal(l->roles, "viewer");
    assert_string_equal(l->src, "idp");
    assert_int_equal(n_events(f, "user.created"), users + 1);
    assert_int_equal(n_events(f, "organization_membership.created"), 1);
    assert_int_equal(n_events(f, "authentication.succeeded"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 1);
    /* the second login finds both; nothing changed: no membership event */
    assert_int_equal(login(l, l->conn, "sub-1", S("staff"), 1), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), 1);
    assert_int_equal(n_events(f, "user.created"), users + 1);
    assert_int_equal(n_events(f, "organization_membership.updated"), 0);
    assert_int_equal(n_events(f, "authentication.succeeded"), 2);
    /* the login event names who and where, never a secret */
    rg_store_list_opts lo = { .limit = 1, .order = "desc" };
    json_t *ev = NULL;
    assert_int_equal(rg_store_event_list(f->s, "authentication.succeeded", &lo, &ev, &f->err), 0);
    json_t *d = json_object_get(json_array_get(json_object_get(ev, "data"), 0), "data");
    assert_string_equal(js(d, "organization_id"), l->org);
    assert_string_equal(js(d, "connection_id"), l->conn);
    assert_non_null(js(d, "user_id"));
    json_decref(ev);
}

static void test_R16_single_role_takes_highest_mapped(void **state)
{
    lfx *l = *state;
    assert_int_equal(login(l, l->conn, "s", S("viewers", "unknown", "admins"), 3), 0);
    assert_string_equal(l->roles, "admin");
}

static void test_R16_multiple_roles_takes_every_mapped(void **state)
{
    lfx *l = *state;
    env_set(l->f, NULL, 1, NULL);   /* R16: multiple roles */
    assert_int_equal(login(l, l->conn, "s", S("staff", "admins", "viewers"), 3), 0);
    assert_string_equal(l->roles, "admin,viewer");
}

/* Logins keep the organization's table between logins; a change made
 * through ANOTHER store handle on the same file (another process, as with
 * several instances) is used by the very next login: environment settings
 * (multiple roles) and the connection's mappings. */
static void test_R16_login_table_follows_changes_of_any_process(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    rg_store *other = rg_store_open(f->path, &f->err);
    assert_non_null(other);
    assert_int_equal(login(l, l->conn, "s", S("admins", "viewers"), 2), 0);
    assert_string_equal(l->roles, "admin");
    env_set(f, other, 1, NULL);
    assert_int_equal(login(l, l->conn, "s", S("admins", "viewers"), 2), 0);
    assert_string_equal(l->roles, "admin,viewer");
    set_mappings(f, other, l->conn,
                 json_pack("[{s:s,s:s}]", "idp_group", "admins", "role_slug", "member"));
    assert_int_equal(login(l, l->conn, "s", S("admins", "viewers"), 2), 0);
    assert_string_equal(l->roles, "member");
    assert_int_equal(login(l, l->conn, "s", S("admins"), 1), 0);
    assert_string_equal(l->roles, "member");
    rg_store_close(other);
}

/* R15-R17, R23: the gateway reads the organization's table from the cache
 * layer before the login's transaction begins; a role change committed in
 * between must not be missed. The table handed to the login is the one
 * read before the change (what a cache holds until its invalidation
 * arrives): the login resolves against the table its own transaction sees,
 * for a mapping change (R15), the environment's multiple_roles (R16) and
 * the default after a mapping is gone (R17). */
static void test_R15_R17_stale_table_from_before_a_change_resolves_against_the_new(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    rg_role_table *before = NULL;
    assert_int_equal(rg_store_role_table(f->s, l->org, &before, &f->err), 0);
    /* current: it is the table resolved against */
    assert_int_equal(login_with(l, l->conn, "s", S("admins", "viewers"), 2, before), 0);
    assert_string_equal(l->roles, "admin");
    /* R15: "admins" now maps to member, committed after the cache's read */
    set_mappings(f, NULL, l->conn, json_pack("[{s:s,s:s},{s:s,s:s}]", "idp_group", "admins",
                                             "role_slug", "member", "idp_group", "viewers",
                                             "role_slug", "viewer"));
    assert_true(rg_store_table_version(f->s, l->org) != rg_role_table_version(before));
    assert_int_equal(login_with(l, l->conn, "s", S("admins"), 1, before), 0);
    assert_string_equal(l->roles, "member");
    assert_string_equal(l->src, "idp");
    /* R16: multiple roles turned on in the environment (another version
     * bump the stale table does not know of) */
    env_set(f, NULL, 1, NULL);
    assert_int_equal(login_with(l, l->conn, "s", S("admins", "viewers"), 2, before), 0);
    assert_string_equal(l->roles, "viewer,member");
    /* R17: no mapping left for the groups: the default, not the stale
     * table's admin */
    set_mappings(f, NULL, l->conn, json_array());
    assert_int_equal(login_with(l, l->conn, "s", S("admins"), 1, before), 0);
    assert_string_equal(l->roles, "member");
    assert_string_equal(l->src, "default");
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 1);
    rg_role_table_free(before);
}

/* The other side of the check: a table at the version the transaction
 * reads is used as handed (the cache layer's copy saves the login a table
 * load), one of another organization at that same version is not. The
 * handed table here maps "admins" to viewer while the store maps it to
 * admin, so the roles say which table the login resolved against. */
static void test_R15_current_table_is_used_only_for_its_organization(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    rg_role_spec env[] = {{.slug = "admin", .type = RG_ROLE_ENV},
                          {.slug = "viewer", .type = RG_ROLE_ENV},
                          {.slug = "member", .type = RG_ROLE_ENV}};
    rg_group_mapping map = {.connection_id = l->conn, .idp_group = "admins",
                            .role_slug = "viewer"};
    rg_table_spec spec = {.organization_id = l->org,
                          .version = rg_store_table_version(f->s, l->org),
                          .env_roles = env, .n_env_roles = 3, .env_default = "member",
                          .mappings = &map, .n_mappings = 1};
    assert_true(spec.version > 0);
    rg_role_table *mine = rg_role_table_build(&spec, &f->err);
    spec.organization_id = "org_someone_else";
    rg_role_table *theirs = rg_role_table_build(&spec, &f->err);
    assert_non_null(mine);
    assert_non_null(theirs);
    assert_int_equal(login_with(l, l->conn, "s", S("admins"), 1, theirs), 0);
    assert_string_equal(l->roles, "admin");
    assert_int_equal(login_with(l, l->conn, "s", S("admins"), 1, mine), 0);
    assert_string_equal(l->roles, "viewer");
    rg_role_table_free(mine);
    rg_role_table_free(theirs);
}

static void test_R15_only_this_connections_mappings_count(void **state)
{
    lfx *l = *state;
    /* conn2 maps "admins" to member; conn's mapping to admin must not apply */
    assert_int_equal(login(l, l->conn2, "s", S("admins"), 1), 0);
    assert_string_equal(l->roles, "member");
    assert_string_equal(l->src, "idp");
}

static void test_R15_mapping_needs_visible_role(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    char other[64];
    mk_org(f, "Other", other);
    mk_role(f, other, "org-elsewhere");
    json_t *o = NULL;
    long long ev = n_events(f, NULL);
    json_t *maps = json_pack("[{s:s,s:s},{s:s,s:s}]", "idp_group", "a", "role_slug", "admin",
                             "idp_group", "b", "role_slug", "org-elsewhere");
    assert_int_equal(rg_store_role_mappings_set(f->s, l->conn, maps, &o, &f->err), RG_EUNPROCESSABLE);
    assert_string_equal(f->err.code, "invalid_role");
    assert_string_equal(f->err.field, "role_mappings[1].role_slug");
    json_decref(maps);
    maps = json_pack("[{s:i}]", "idp_group", 3);
    assert_int_equal(rg_store_role_mappings_set(f->s, l->conn, maps, &o, &f->err), RG_EUNPROCESSABLE);
    json_decref(maps);
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_mappings"), 4);
    /* the same mappings again (reordered, with a duplicate): a no-op */
    maps = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "idp_group", "staff",
                     "role_slug", "viewer", "idp_group", "admins", "role_slug", "admin",
                     "idp_group", "viewers", "role_slug", "viewer", "idp_group", "staff",
                     "role_slug", "viewer");
    assert_int_equal(rg_store_role_mappings_set(f->s, l->conn, maps, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 3);
    assert_string_equal(js(json_array_get(json_object_get(o, "data"), 0), "idp_group"),
                        "admins");
    json_decref(o);
    json_decref(maps);
    assert_int_equal(n_events(f, NULL), ev);
}

static void test_R17_no_match_keeps_api_roles_match_overrides(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    char om[64];
    assert_int_equal(login(l, l->conn, "s", NULL, 0), 0);
    assert_string_equal(l->roles, "member");
    assert_string_equal(l->src, "default");
    snprintf(om, sizeof om, "%s", "");
    json_t *list = NULL, *o = NULL;
    assert_int_equal(rg_store_membership_list(f->s, NULL, l->org, NULL, &list, &f->err), 0);
    snprintf(om, sizeof om, "%s", js(json_array_get(json_object_get(list, "data"), 0), "id"));
    json_decref(list);
    assert_int_equal(rg_store_membership_update(f->s, om, S("viewer"), 1, &o, &f->err), 0);
    json_decref(o);
    /* no match: API roles stay */
    assert_int_equal(login(l, l->conn, "s", S("nothing"), 1), 0);
    assert_string_equal(l->roles, "viewer");
    assert_string_equal(l->src, "api");
    /* a match overrides them */
    long long upd = n_events(f, "organization_membership.updated");
    assert_int_equal(login(l, l->conn, "s", S("admins"), 1), 0);
    assert_string_equal(l->roles, "admin");
    assert_string_equal(l->src, "idp");
    assert_int_equal(n_events(f, "organization_membership.updated"), upd + 1);
    /* idp roles and no match now: back to the default */
    assert_int_equal(login(l, l->conn, "s", NULL, 0), 0);
    assert_string_equal(l->roles, "member");
    assert_string_equal(l->src, "default");
}

static void test_R17_directory_roles_never_overridden(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    assert_int_equal(login(l, l->conn, "s", S("staff"), 1), 0);
    /* directory provisioning is not built yet: set its state directly */
    q_exec(f, "UPDATE memberships SET role_source = 'directory'");
    assert_int_equal(login(l, l->conn, "s", S("admins"), 1), 0);
    assert_string_equal(l->roles, "viewer");
    assert_string_equal(l->src, "directory");
}

static void test_login_rejects_foreign_connection_and_changes_nothing(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    char other[64];
    mk_org(f, "Other", other);
    rg_store_login_user u = {.subject = "s", .email = "a@example.com"};
    long long ev = n_events(f, NULL);
    assert_int_equal(rg_store_login_apply(f->s, other, l->conn, &u, NULL, 0, NULL, NULL, &f->err),
                     RG_ENOTFOUND);
    assert_string_equal(f->err.field, "connection_id");
    u.subject = "";
    assert_int_equal(rg_store_login_apply(f->s, l->org, l->conn, &u, NULL, 0, NULL, NULL, &f->err),
                     RG_EUNPROCESSABLE);
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), 0);
}

static void test_connection_never_returns_client_secret(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    json_t *o = NULL;
    assert_int_equal(rg_store_connection_get(f->s, l->conn, &o, &f->err), 0);
    assert_string_equal(js(o, "object"), "connection");
    assert_string_equal(js(o, "type"), "oidc");
    assert_string_equal(js(o, "issuer"), "https://idp.example");
    assert_null(json_object_get(o, "client_secret"));
    json_decref(o);
    assert_int_equal(rg_store_connection_private(f->s, l->conn, &o, &f->err), 0);
    assert_string_equal(js(o, "client_secret"), "s3cret-value");
    json_decref(o);
    rg_store_list_opts lo = { .limit = 10 };
    assert_int_equal(rg_store_connection_list(f->s, l->org, &lo, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    char *dump = json_dumps(o, 0);
    assert_null(strstr(dump, "s3cret"));
    free(dump);
    json_decref(o);
    /* nor does any event */
    assert_int_equal(q_int(f, "SELECT count(*) FROM events WHERE data LIKE '%s3cret%'"), 0);
    /* update: a patch member set, one removed; the name kept */
    json_t *patch = json_pack("{s:s,s:n}", "groups_claim", "realm_access.roles", "client_id");
    assert_int_equal(rg_store_connection_update(f->s, l->conn, NULL, patch, &o, &f->err), 0);
    assert_string_equal(js(o, "groups_claim"), "realm_access.roles");
    assert_null(json_object_get(o, "client_id"));
    assert_string_equal(js(o, "name"), "Okta");
    json_decref(o);
    long long upd = n_events(f, "connection.updated");
    assert_int_equal(rg_store_connection_update(f->s, l->conn, "Okta", patch, &o, &f->err), 0);
    json_decref(o);
    json_decref(patch);
    assert_int_equal(n_events(f, "connection.updated"), upd);   /* no-op */
    assert_int_equal(rg_store_connection_create(f->s, l->org, "ldap", "X", NULL, &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "type");
    assert_int_equal(rg_store_connection_delete(f->s, l->conn, &f->err), 0);
    assert_int_equal(rg_store_connection_get(f->s, l->conn, &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_mappings"), 1);
}

/* The gateway's per-login check: the digest of the stored row is the same
 * for the same row, and differs after any change of what the private
 * object is built from (a config patch, the name); a write that changes
 * nothing keeps it; a deleted connection is 404. */
static void test_connection_digest_follows_every_change(void **state)
{
    lfx *l = *state;
    fx *f = l->f;
    unsigned char d1[32], d2[32], other[32];
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d1, &f->err), 0);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d2, &f->err), 0);
    assert_memory_equal(d1, d2, 32);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn2, other, &f->err), 0);
    assert_memory_not_equal(d1, other, 32);
    json_t *o = NULL;
    json_t *patch = json_pack("{s:s}", "client_secret", "rotated");
    assert_int_equal(rg_store_connection_update(f->s, l->conn, NULL, patch, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d2, &f->err), 0);
    assert_memory_not_equal(d1, d2, 32);   /* a secret the API never shows */
    memcpy(d1, d2, 32);
    assert_int_equal(rg_store_connection_update(f->s, l->conn, "Okta", patch, &o, &f->err), 0);
    json_decref(o);
    json_decref(patch);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d2, &f->err), 0);
    assert_memory_equal(d1, d2, 32);       /* nothing changed */
    assert_int_equal(rg_store_connection_update(f->s, l->conn, "Okta 2", NULL, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d2, &f->err), 0);
    assert_memory_not_equal(d1, d2, 32);
    assert_int_equal(rg_store_connection_delete(f->s, l->conn, &f->err), 0);
    assert_int_equal(rg_store_connection_digest(f->s, l->conn, d2, &f->err), RG_ENOTFOUND);
    assert_int_equal(f->err.status, 404);
}

/* Issue 15: a login handed the digest of the row its caller verified with
 * goes through when the row is that one (first and returning login), and
 * when the row changed since it is refused with 409 connection_changed,
 * writing nothing: no user, membership, session or event. */
static void test_login_checks_the_callers_connection_digest(void **state)
{
    lfx *lp = *state;
    fx *f = lp->f;
    lfx l = *lp;
    unsigned char dg[32];
    assert_int_equal(rg_store_connection_digest(f->s, l.conn, dg, &f->err), 0);
    rg_store_login_user u = {.subject = "s", .email = "a@example.com", .connection_digest = dg};
    const char *const *g = S("admins");
    assert_int_equal(rg_store_login_apply(f->s, l.org, l.conn, &u, g, 1, NULL, NULL, &f->err), 0);
    assert_int_equal(rg_store_login_apply(f->s, l.org, l.conn, &u, g, 1, NULL, NULL, &f->err), 0);
    json_t *o = NULL;
    assert_int_equal(rg_store_connection_update(f->s, l.conn, "Okta 2", NULL, &o, &f->err), 0);
    json_decref(o);
    long long ev = n_events(f, NULL);
    long long users = q_int(f, "SELECT count(*) FROM users");
    u.subject = "t";
    assert_int_equal(rg_store_login_apply(f->s, l.org, l.conn, &u, g, 1, NULL, NULL, &f->err),
                     RG_ECONFLICT);
    assert_int_equal(f->err.status, 409);
    assert_string_equal(f->err.code, "connection_changed");
    assert_string_equal(f->err.field, "connection_id");
    u.subject = "s";
    assert_int_equal(rg_store_login_apply(f->s, l.org, l.conn, &u, g, 1, NULL, NULL, &f->err),
                     RG_ECONFLICT);
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), users);
    /* the current row's digest: through again */
    assert_int_equal(rg_store_connection_digest(f->s, l.conn, dg, &f->err), 0);
    assert_int_equal(rg_store_login_apply(f->s, l.org, l.conn, &u, g, 1, NULL, NULL, &f->err), 0);
    assert_int_equal(n_events(f, "authentication.succeeded"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, lfx_setup, lfx_teardown)
        T(test_R18_first_login_creates_user_and_membership),
        T(test_R16_single_role_takes_highest_mapped),
        T(test_R16_multiple_roles_takes_every_mapped),
        T(test_R16_login_table_follows_changes_of_any_process),
        T(test_R15_R17_stale_table_from_before_a_change_resolves_against_the_new),
        T(test_R15_current_table_is_used_only_for_its_organization),
    T(test_R15_only_this_connections_mappings_count),
        T(test_R15_mapping_needs_visible_role),
        T(test_R17_no_match_keeps_api_roles_match_overrides),
        T(test_R17_directory_roles_never_overridden),
        T(test_login_rejects_foreign_connection_and_changes_nothing),
        T(test_connection_never_returns_client_secret),
        T(test_connection_digest_follows_every_change),
        T(test_login_checks_the_callers_connection_digest),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
