/* test_core_resolve.c: roles at login (R15-R18 with R13/R14), roles through
 * the API (R12, R19), keep-highest (R14), after a delete (R20), permission
 * unions (R12). One fixture environment; each test builds its table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core.h"

static const char *p_admin[] = {"users:edit", "users:view", "billing:view"};
static const char *p_manager[] = {"users:view", "reports:view"};
static const char *p_member[] = {"users:view"};
static const char *p_viewer[] = {"reports:view", "dash:view"};
static const char *p_billing[] = {"billing:edit", "billing:view"};

/* priority: admin > manager > member > viewer (> org-billing, org table) */
static const rg_role_spec env_roles[] = {
    {"admin", RG_ROLE_ENV, p_admin, 3},
    {"manager", RG_ROLE_ENV, p_manager, 2},
    {"member", RG_ROLE_ENV, p_member, 1},
    {"viewer", RG_ROLE_ENV, p_viewer, 2},
};
static const rg_role_spec org_roles[] = {{"org-billing", RG_ROLE_ORG, p_billing, 2}};

static const rg_group_mapping maps[] = {
    {"conn_a", "Admins", "admin"},
    {"conn_a", "Engineering", "manager"},
    {"conn_a", "Ops", "manager"},          /* R15: several groups, one role */
    {"conn_a", "Staff", "member"},
    {"conn_a", "Staff", "viewer"},         /* one group, two roles */
    {"conn_a", "Staff", "member"},         /* repeated mapping counts once */
    {"conn_a", "Ghosts", "ghost"},         /* role not in the table */
    {"conn_a", "Finance", "org-billing"},
    {"conn_b", "Viewers", "viewer"},
};

static rg_role_table *table(int multiple, int with_org)
{
    rg_table_spec s = {
        .organization_id = "org_1", .version = 3, .multiple_roles = multiple,
        .env_roles = env_roles, .n_env_roles = 4, .env_default = "member",
        .org_roles = with_org ? org_roles : NULL, .n_org_roles = with_org ? 1 : 0,
        .mappings = maps, .n_mappings = sizeof maps / sizeof *maps,
    };
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e);
    if (!t)
        fail_msg("build: %s", e.message);
    return t;
}

/* Resolves a login on conn_a (unless conn is given). */
static rg_resolution login(const rg_role_table *t, const char *conn,
                           const char *const *groups, size_t ng,
                           const char *const *cur, size_t nc, rg_role_source src)
{
    rg_login_input in = {.connection_id = conn ? conn : "conn_a", .groups = groups,
                         .n_groups = ng, .current_roles = cur, .n_current = nc,
                         .current_source = src};
    rg_resolution r;
    rg_error e;
    assert_int_equal(rg_core_resolve_login(t, &in, &r, &e), 0);
    return r;
}

static void assert_slugs(const rg_slugs *s, const char *const *want, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(s->v[i], want[i]);
}

static void test_R16_single_role_picks_highest_mapped(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *g[] = {"Staff", "Engineering"};
    rg_resolution r = login(t, NULL, g, 2, NULL, 0, RG_SOURCE_NONE);
    const char *want[] = {"manager"};
    assert_slugs(&r.roles, want, 1);
    assert_int_equal(r.source, RG_SOURCE_IDP);
    /* the login record: only the mapping that gave the role */
    const char *mg[] = {"Engineering"}, *mr[] = {"manager"};
    assert_slugs(&r.matched_groups, mg, 1);
    assert_slugs(&r.matched_roles, mr, 1);
    const char *perms[] = {"reports:view", "users:view"};
    assert_slugs(&r.permissions, perms, 2);
    rg_resolution_clear(&r);
    rg_resolution_clear(&r);   /* idempotent */
    rg_role_table_free(t);
}

static void test_R16_multiple_roles_picks_every_mapped(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);
    const char *g[] = {"Staff", "Engineering", "Ops", "Staff"};
    rg_resolution r = login(t, NULL, g, 4, NULL, 0, RG_SOURCE_NONE);
    const char *want[] = {"manager", "member", "viewer"};
    assert_slugs(&r.roles, want, 3);
    assert_int_equal(r.source, RG_SOURCE_IDP);
    /* pairs in the order the groups came, each mapping once, the repeated
     * "Staff" group adding nothing */
    const char *mg[] = {"Staff", "Staff", "Engineering", "Ops"};
    const char *mr[] = {"member", "viewer", "manager", "manager"};
    assert_slugs(&r.matched_groups, mg, 4);
    assert_slugs(&r.matched_roles, mr, 4);
    /* R12: permissions are the union, sorted, unique */
    const char *perms[] = {"dash:view", "reports:view", "users:view"};
    assert_slugs(&r.permissions, perms, 3);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R16_unmatched_groups_are_ignored(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);
    const char *g[] = {"Nobody", "Engineering", "Contractors"};
    rg_resolution r = login(t, NULL, g, 3, NULL, 0, RG_SOURCE_NONE);
    const char *want[] = {"manager"};
    assert_slugs(&r.roles, want, 1);
    assert_int_equal(r.source, RG_SOURCE_IDP);
    assert_int_equal(r.matched_groups.n, 1);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R15_group_match_is_case_sensitive(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *g[] = {"engineering", "ADMINS", "Admins "};
    rg_resolution r = login(t, NULL, g, 3, NULL, 0, RG_SOURCE_NONE);
    const char *want[] = {"member"};   /* the default */
    assert_slugs(&r.roles, want, 1);
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    assert_int_equal(r.matched_groups.n, 0);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R15_other_connections_mappings_ignored(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *g[] = {"Viewers"};            /* mapped on conn_b only */
    rg_resolution r = login(t, "conn_a", g, 1, NULL, 0, RG_SOURCE_NONE);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    rg_resolution_clear(&r);
    r = login(t, "conn_b", g, 1, NULL, 0, RG_SOURCE_NONE);
    assert_string_equal(r.roles.v[0], "viewer");
    assert_int_equal(r.source, RG_SOURCE_IDP);
    rg_resolution_clear(&r);
    const char *g2[] = {"Admins"};
    r = login(t, "conn_zzz", g2, 1, NULL, 0, RG_SOURCE_NONE);   /* unknown connection */
    assert_string_equal(r.roles.v[0], "member");
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R15_mapping_to_invisible_role_ignored(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);   /* no org-billing in this table */
    const char *g[] = {"Ghosts", "Finance"};
    rg_resolution r = login(t, NULL, g, 2, NULL, 0, RG_SOURCE_NONE);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
    t = table(1, 1);                  /* with it, Finance maps */
    r = login(t, NULL, g, 2, NULL, 0, RG_SOURCE_NONE);
    const char *want[] = {"org-billing"};
    assert_slugs(&r.roles, want, 1);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R17_match_overrides_api_roles(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *g[] = {"Staff"}, *cur[] = {"admin"};
    rg_resolution r = login(t, NULL, g, 1, cur, 1, RG_SOURCE_API);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_IDP);
    assert_int_equal(r.changed, 1);
    assert_int_equal(r.created, 0);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R17_no_match_keeps_api_roles(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);
    const char *g[] = {"Nobody"}, *cur[] = {"viewer", "admin"};
    rg_resolution r = login(t, NULL, g, 1, cur, 2, RG_SOURCE_API);
    const char *want[] = {"admin", "viewer"};
    assert_slugs(&r.roles, want, 2);
    assert_int_equal(r.source, RG_SOURCE_API);
    assert_int_equal(r.changed, 0);   /* same set, order aside */
    assert_int_equal(r.matched_groups.n, 0);
    const char *perms[] = {"billing:view", "dash:view", "reports:view", "users:edit",
                           "users:view"};
    assert_slugs(&r.permissions, perms, 5);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R17_no_match_with_idp_source_gets_default(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *cur[] = {"admin"};
    rg_resolution r = login(t, NULL, NULL, 0, cur, 1, RG_SOURCE_IDP);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.roles.n, 1);
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    assert_int_equal(r.changed, 1);
    rg_resolution_clear(&r);
    /* already on the default: nothing changes */
    const char *cur2[] = {"member"};
    r = login(t, NULL, NULL, 0, cur2, 1, RG_SOURCE_DEFAULT);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    assert_int_equal(r.changed, 0);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R17_directory_roles_never_overridden(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *g[] = {"Admins"}, *cur[] = {"viewer"};
    rg_resolution r = login(t, NULL, g, 1, cur, 1, RG_SOURCE_DIRECTORY);
    assert_string_equal(r.roles.v[0], "viewer");
    assert_int_equal(r.roles.n, 1);
    assert_int_equal(r.source, RG_SOURCE_DIRECTORY);
    assert_int_equal(r.changed, 0);
    assert_int_equal(r.matched_groups.n, 0);   /* no mapping was used */
    rg_resolution_clear(&r);
    /* R13: a directory membership whose roles all vanished gets the default */
    const char *gone[] = {"deleted-role"};
    r = login(t, NULL, g, 1, gone, 1, RG_SOURCE_DIRECTORY);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    assert_int_equal(r.changed, 1);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R18_first_login_creates_membership(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    rg_resolution r = login(t, NULL, NULL, 0, NULL, 0, RG_SOURCE_NONE);
    assert_int_equal(r.created, 1);
    assert_int_equal(r.changed, 1);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    rg_resolution_clear(&r);
    const char *g[] = {"Engineering"}, *cur[] = {"manager"};
    r = login(t, NULL, g, 1, cur, 1, RG_SOURCE_IDP);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.changed, 0);   /* same role, same source */
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R13_stale_current_roles_dropped(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);
    const char *cur[] = {"ghost"};
    rg_resolution r = login(t, NULL, NULL, 0, cur, 1, RG_SOURCE_API);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    assert_int_equal(r.changed, 1);
    rg_resolution_clear(&r);
    const char *cur2[] = {"ghost", "viewer"};
    r = login(t, NULL, NULL, 0, cur2, 2, RG_SOURCE_API);
    const char *want[] = {"viewer"};
    assert_slugs(&r.roles, want, 1);
    assert_int_equal(r.source, RG_SOURCE_API);
    assert_int_equal(r.changed, 1);   /* the stored list loses "ghost" */
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R14_single_role_login_keeps_highest_of_several(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    const char *cur[] = {"viewer", "manager"};
    rg_resolution r = login(t, NULL, NULL, 0, cur, 2, RG_SOURCE_API);
    const char *want[] = {"manager"};
    assert_slugs(&r.roles, want, 1);
    assert_int_equal(r.source, RG_SOURCE_API);
    assert_int_equal(r.changed, 1);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

static void test_R14_keep_highest(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    rg_slugs out;
    const char *roles[] = {"viewer", "ghost", "manager", "member"};
    assert_int_equal(rg_core_roles_keep_highest(t, roles, 4, &out), 0);
    const char *want[] = {"manager"};
    assert_slugs(&out, want, 1);
    rg_slugs_clear(&out);
    const char *stale[] = {"ghost"};
    assert_int_equal(rg_core_roles_keep_highest(t, stale, 1, &out), 0);
    const char *def[] = {"member"};
    assert_slugs(&out, def, 1);
    rg_slugs_clear(&out);
    rg_slugs_clear(NULL);
    rg_role_table_free(t);
}

static void test_R12_assign_rules(void **st)
{
    (void)st;
    rg_role_table *t = table(0, 0);
    rg_slugs out;
    rg_error e;
    const char *one[] = {"viewer"};
    assert_int_equal(rg_core_roles_assign(t, one, 1, &out, &e), 0);   /* one is fine */
    assert_slugs(&out, one, 1);
    rg_slugs_clear(&out);
    const char *two[] = {"viewer", "admin"};
    assert_true(rg_core_roles_assign(t, two, 2, &out, &e) < 0);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.code, "multiple_roles_not_enabled");
    assert_int_equal(out.n, 0);
    const char *dup[] = {"viewer", "viewer"};   /* deduplicated: one role */
    assert_int_equal(rg_core_roles_assign(t, dup, 2, &out, &e), 0);
    assert_slugs(&out, one, 1);
    rg_slugs_clear(&out);
    assert_true(rg_core_roles_assign(t, one, 0, &out, &e) < 0);
    assert_string_equal(e.code, "invalid_role");
    assert_string_equal(e.field, "role_slugs");
    rg_role_table_free(t);

    t = table(1, 0);
    const char *many[] = {"viewer", "admin", "viewer", "member"};
    assert_int_equal(rg_core_roles_assign(t, many, 4, &out, &e), 0);
    const char *want[] = {"admin", "member", "viewer"};   /* priority order */
    assert_slugs(&out, want, 3);
    rg_slugs_clear(&out);
    rg_role_table_free(t);
}

static void test_R19_assign_unknown_role_is_invalid_role(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 0);
    rg_slugs out;
    rg_error e;
    const char *bad[] = {"admin", "org-billing"};   /* not visible here */
    assert_true(rg_core_roles_assign(t, bad, 2, &out, &e) < 0);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.code, "invalid_role");
    assert_string_equal(e.field, "role_slugs");
    assert_non_null(strstr(e.message, "org-billing"));
    assert_int_equal(out.n, 0);
    assert_null(out.v);
    rg_role_table_free(t);
}

/* The table once `deleted` is gone (and the default replaced if needed). */
static rg_role_table *table_without(const char *deleted, const char *def, int multiple)
{
    rg_role_spec env[4];
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(env_roles[i].slug, deleted))
            env[n++] = env_roles[i];
    rg_table_spec s = {.multiple_roles = multiple, .env_roles = env, .n_env_roles = n,
                       .env_default = def};
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e);
    assert_non_null(t);
    return t;
}

static void test_R20_single_role_delete_gives_default(void **st)
{
    (void)st;
    rg_role_table *t = table_without("manager", "member", 0);
    rg_slugs out;
    rg_role_source src = RG_SOURCE_IDP;
    const char *held[] = {"manager"};
    assert_int_equal(rg_core_roles_after_delete(t, held, 1, "manager", &out, &src), 1);
    const char *def[] = {"member"};
    assert_slugs(&out, def, 1);
    assert_int_equal(src, RG_SOURCE_DEFAULT);
    rg_slugs_clear(&out);
    /* a membership that did not hold it is untouched */
    const char *other[] = {"viewer"};
    src = RG_SOURCE_API;
    assert_int_equal(rg_core_roles_after_delete(t, other, 1, "manager", &out, &src), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(src, RG_SOURCE_API);
    rg_role_table_free(t);
    /* R21 then R20: the deleted role was the default, the replacement is */
    t = table_without("member", "viewer", 0);
    const char *m[] = {"member"};
    assert_int_equal(rg_core_roles_after_delete(t, m, 1, "member", &out, &src), 1);
    assert_string_equal(out.v[0], "viewer");
    rg_slugs_clear(&out);
    rg_role_table_free(t);
}

static void test_R20_multiple_roles_delete_removes_role(void **st)
{
    (void)st;
    rg_role_table *t = table_without("manager", "member", 1);
    rg_slugs out;
    rg_role_source src = RG_SOURCE_API;
    const char *held[] = {"viewer", "manager", "admin"};
    assert_int_equal(rg_core_roles_after_delete(t, held, 3, "manager", &out, &src), 1);
    const char *want[] = {"admin", "viewer"};
    assert_slugs(&out, want, 2);
    assert_int_equal(src, RG_SOURCE_API);   /* unchanged */
    rg_slugs_clear(&out);
    /* R13: none left -> the default */
    const char *only[] = {"manager"};
    assert_int_equal(rg_core_roles_after_delete(t, only, 1, "manager", &out, &src), 1);
    const char *def[] = {"member"};
    assert_slugs(&out, def, 1);
    assert_int_equal(src, RG_SOURCE_DEFAULT);
    rg_slugs_clear(&out);
    rg_role_table_free(t);
}

static void test_R12_permissions_of_union(void **st)
{
    (void)st;
    rg_role_table *t = table(1, 1);
    rg_slugs out;
    const char *roles[] = {"viewer", "org-billing", "ghost", "member"};
    assert_int_equal(rg_core_permissions_of(t, roles, 4, &out), 0);
    const char *want[] = {"billing:edit", "billing:view", "dash:view", "reports:view",
                          "users:view"};
    assert_slugs(&out, want, 5);
    rg_slugs_clear(&out);
    assert_int_equal(rg_core_permissions_of(t, NULL, 0, &out), 0);
    assert_int_equal(out.n, 0);
    rg_slugs_clear(&out);
    rg_role_table_free(t);
}

/* Many groups and mappings: the hash index against a linear scan. */
static void test_R16_large_table_matches_linear_scan(void **st)
{
    (void)st;
    enum { NR = 130, NM = 3000, NG = 600 };
    static char slugs[NR][24], groups[NM][24], ugroups[NG][24];
    static rg_role_spec roles[NR];
    static rg_group_mapping m[NM];
    static const char *ug[NG];
    for (int i = 0; i < NR; i++) {
        snprintf(slugs[i], sizeof slugs[i], "role-%03d", i);
        roles[i] = (rg_role_spec){slugs[i], RG_ROLE_ENV, NULL, 0};
    }
    unsigned x = 12345;
    for (int i = 0; i < NM; i++) {
        x = x * 1103515245u + 12345u;
        snprintf(groups[i], sizeof groups[i], "G%u", (x >> 8) % 2000);
        m[i] = (rg_group_mapping){i % 3 ? "conn_a" : "conn_b", groups[i],
                                  slugs[(x >> 4) % NR]};
    }
    for (int i = 0; i < NG; i++) {
        snprintf(ugroups[i], sizeof ugroups[i], "G%d", i * 5);
        ug[i] = ugroups[i];
    }
    rg_table_spec s = {.multiple_roles = 1, .env_roles = roles, .n_env_roles = NR,
                       .env_default = slugs[0], .mappings = m, .n_mappings = NM};
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e);
    assert_non_null(t);
    rg_resolution r = login(t, "conn_a", ug, NG, NULL, 0, RG_SOURCE_NONE);
    int want[NR] = {0};
    size_t nwant = 0;
    for (int g = 0; g < NG; g++)
        for (int i = 0; i < NM; i++)
            if (!strcmp(m[i].connection_id, "conn_a") && !strcmp(m[i].idp_group, ug[g]))
                want[rg_role_table_rank(t, m[i].role_slug)] = 1;
    for (int i = 0; i < NR; i++)
        nwant += (size_t)want[i];
    assert_true(nwant > 10);
    assert_int_equal(r.roles.n, nwant);
    for (size_t i = 0; i < r.roles.n; i++)
        assert_true(want[rg_role_table_rank(t, r.roles.v[i])]);
    rg_resolution_clear(&r);
    rg_role_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R16_single_role_picks_highest_mapped),
        cmocka_unit_test(test_R16_multiple_roles_picks_every_mapped),
        cmocka_unit_test(test_R16_unmatched_groups_are_ignored),
        cmocka_unit_test(test_R15_group_match_is_case_sensitive),
        cmocka_unit_test(test_R15_other_connections_mappings_ignored),
        cmocka_unit_test(test_R15_mapping_to_invisible_role_ignored),
        cmocka_unit_test(test_R17_match_overrides_api_roles),
        cmocka_unit_test(test_R17_no_match_keeps_api_roles),
        cmocka_unit_test(test_R17_no_match_with_idp_source_gets_default),
        cmocka_unit_test(test_R17_directory_roles_never_overridden),
        cmocka_unit_test(test_R18_first_login_creates_membership),
        cmocka_unit_test(test_R13_stale_current_roles_dropped),
        cmocka_unit_test(test_R14_single_role_login_keeps_highest_of_several),
        cmocka_unit_test(test_R14_keep_highest),
        cmocka_unit_test(test_R12_assign_rules),
        cmocka_unit_test(test_R19_assign_unknown_role_is_invalid_role),
        cmocka_unit_test(test_R20_single_role_delete_gives_default),
        cmocka_unit_test(test_R20_multiple_roles_delete_removes_role),
        cmocka_unit_test(test_R12_permissions_of_union),
        cmocka_unit_test(test_R16_large_table_matches_linear_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
