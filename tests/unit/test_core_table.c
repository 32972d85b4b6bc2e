/* test_core_table.c: the compiled role table: effective priority order
 * (R8-R11, inherited live vs own, R10 bottom placement), the default role
 * (R7, R9), duplicate slugs (R3/R4), permissions per role (R2, R12). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core.h"

static const char *p_admin[] = {"users:edit", "users:view", "billing:view", "users:view"};
static const char *p_member[] = {"users:view"};
static const char *p_billing[] = {"billing:edit", "billing:view"};

/* Expects the table's order to be exactly the slugs given. */
static void assert_order(const rg_role_table *t, const char *const *want, size_t n)
{
    assert_int_equal(rg_role_table_count(t), n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rg_role_table_slug_at(t, i), want[i]);
        assert_int_equal(rg_role_table_rank(t, want[i]), (long)i);
    }
    assert_null(rg_role_table_slug_at(t, n));
}

static rg_role_table *build(const rg_table_spec *s)
{
    rg_error e;
    memset(&e, 0, sizeof e);
    rg_role_table *t = rg_role_table_build(s, &e);
    if (!t)
        fail_msg("build failed: %s %s", e.code, e.message);
    return t;
}

static void test_R7_R8_env_default_and_order(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, p_admin, 4}, {"member", RG_ROLE_ENV, p_member, 1}};
    rg_table_spec s = {.version = 7, .env_roles = env, .n_env_roles = 2, .env_default = "member"};
    rg_role_table *t = build(&s);
    const char *want[] = {"admin", "member"};
    assert_order(t, want, 2);
    assert_string_equal(rg_role_table_default(t), "member");
    assert_int_equal(rg_role_table_version(t), 7);
    assert_int_equal(rg_role_table_multiple_roles(t), 0);
    assert_null(rg_role_table_organization(t));
    assert_int_equal(rg_role_table_rank(t, "nobody"), -1);
    assert_int_equal(rg_role_table_rank(t, NULL), -1);
    assert_int_equal(rg_role_table_type_at(t, 0), RG_ROLE_ENV);
    rg_role_table_free(t);
    rg_role_table_free(NULL);
}

static void test_R7_default_must_be_visible(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 1, .env_default = "member"};
    rg_error e;
    memset(&e, 0, sizeof e);
    assert_null(rg_role_table_build(&s, &e));
    assert_int_equal(e.status, 500);
    assert_string_equal(e.code, "invalid_role_table");
    s.env_default = NULL;
    assert_null(rg_role_table_build(&s, &e));
    s.env_default = "admin";
    s.org_default = "org-gone";   /* an own default that is no role */
    assert_null(rg_role_table_build(&s, &e));
    assert_string_equal(e.code, "invalid_role_table");
}

static void test_R3_R4_duplicate_slugs_fail(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"admin", RG_ROLE_ENV, NULL, 0}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 2, .env_default = "admin"};
    rg_error e;
    assert_null(rg_role_table_build(&s, &e));
    assert_string_equal(e.code, "invalid_role_table");
    /* an organization role may not reuse an environment slug either */
    rg_role_spec org[] = {{"admin", RG_ROLE_ORG, NULL, 0}};
    s.n_env_roles = 1;
    s.org_roles = org;
    s.n_org_roles = 1;
    assert_null(rg_role_table_build(&s, &e));
    assert_string_equal(e.code, "invalid_role_table");
}

static void test_R9_inherited_order_follows_env_live(void **st)
{
    (void)st;
    rg_role_spec env1[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"member", RG_ROLE_ENV, NULL, 0},
                           {"viewer", RG_ROLE_ENV, NULL, 0}};
    rg_table_spec s = {.organization_id = "org_1", .env_roles = env1, .n_env_roles = 3,
                       .env_default = "member"};
    rg_role_table *t = build(&s);
    const char *w1[] = {"admin", "member", "viewer"};
    assert_order(t, w1, 3);
    assert_string_equal(rg_role_table_organization(t), "org_1");
    rg_role_table_free(t);
    /* the environment reorders and changes its default: the inheriting
     * organization follows at its next build */
    rg_role_spec env2[] = {{"viewer", RG_ROLE_ENV, NULL, 0}, {"admin", RG_ROLE_ENV, NULL, 0},
                           {"member", RG_ROLE_ENV, NULL, 0}};
    s.env_roles = env2;
    s.env_default = "viewer";
    t = build(&s);
    const char *w2[] = {"viewer", "admin", "member"};
    assert_order(t, w2, 3);
    assert_string_equal(rg_role_table_default(t), "viewer");
    rg_role_table_free(t);
}

static void test_R9_own_order_is_independent(void **st)
{
    (void)st;
    const char *own[] = {"member", "admin", "viewer"};
    rg_role_spec env1[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"member", RG_ROLE_ENV, NULL, 0},
                           {"viewer", RG_ROLE_ENV, NULL, 0}};
    rg_table_spec s = {.organization_id = "org_1", .env_roles = env1, .n_env_roles = 3,
                       .env_default = "member", .org_order = own, .n_org_order = 3,
                       .org_default = "viewer"};
    rg_role_table *t = build(&s);
    assert_order(t, own, 3);
    assert_string_equal(rg_role_table_default(t), "viewer");   /* own default */
    rg_role_table_free(t);
    /* the environment's order changes; the independent organization's not */
    rg_role_spec env2[] = {{"viewer", RG_ROLE_ENV, NULL, 0}, {"member", RG_ROLE_ENV, NULL, 0},
                           {"admin", RG_ROLE_ENV, NULL, 0}};
    s.env_roles = env2;
    t = build(&s);
    assert_order(t, own, 3);
    rg_role_table_free(t);
}

static void test_R10_env_role_added_later_lands_at_bottom(void **st)
{
    (void)st;
    const char *own[] = {"org-billing", "member", "admin"};
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"auditor", RG_ROLE_ENV, NULL, 0},
                          {"member", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-billing", RG_ROLE_ORG, NULL, 0}};
    rg_table_spec s = {.organization_id = "org_1", .env_roles = env, .n_env_roles = 3,
                       .env_default = "member", .org_roles = org, .n_org_roles = 1,
                       .org_order = own, .n_org_order = 3, .org_default = "member"};
    rg_role_table *t = build(&s);
    /* "auditor" is in the middle of the environment's order but new to the
     * organization's own order: it goes to the bottom */
    const char *want[] = {"org-billing", "member", "admin", "auditor"};
    assert_order(t, want, 4);
    rg_role_table_free(t);
}

static void test_R11_org_list_mixes_env_and_org_roles(void **st)
{
    (void)st;
    const char *own[] = {"org-owner", "admin", "ghost", "admin", "member"};
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"member", RG_ROLE_ENV, NULL, 0},
                          {"viewer", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-owner", RG_ROLE_ORG, NULL, 0}, {"org-zeta", RG_ROLE_ORG, NULL, 0},
                          {"org-alpha", RG_ROLE_ORG, NULL, 0}};
    rg_table_spec s = {.organization_id = "org_1", .env_roles = env, .n_env_roles = 3,
                       .env_default = "member", .org_roles = org, .n_org_roles = 3,
                       .org_order = own, .n_org_order = 5, .org_default = "org-owner"};
    rg_role_table *t = build(&s);
    /* own order first (unknown "ghost" and the repeated "admin" ignored),
     * then missing env roles in env order, then missing org roles by slug */
    const char *want[] = {"org-owner", "admin", "member", "viewer", "org-alpha", "org-zeta"};
    assert_order(t, want, 6);
    assert_int_equal(rg_role_table_type_at(t, 0), RG_ROLE_ORG);
    assert_int_equal(rg_role_table_type_at(t, 1), RG_ROLE_ENV);
    assert_int_equal(rg_role_table_type_at(t, 5), RG_ROLE_ORG);
    assert_string_equal(rg_role_table_default(t), "org-owner");
    rg_role_table_free(t);
}

static void test_R9_org_roles_without_own_order_follow_env(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}, {"member", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-b", RG_ROLE_ORG, NULL, 0}, {"org-a", RG_ROLE_ORG, NULL, 0}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 2, .env_default = "member",
                       .org_roles = org, .n_org_roles = 2};
    rg_role_table *t = build(&s);
    const char *want[] = {"admin", "member", "org-a", "org-b"};
    assert_order(t, want, 4);
    rg_role_table_free(t);
}

static void test_wrong_role_type_in_spec_fails(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-x", RG_ROLE_ENV, NULL, 0}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 1, .env_default = "admin",
                       .org_roles = org, .n_org_roles = 1};
    rg_error e;
    assert_null(rg_role_table_build(&s, &e));
    assert_string_equal(e.code, "invalid_role_table");
}

static void test_R2_permissions_sorted_unique_per_role(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, p_admin, 4}, {"member", RG_ROLE_ENV, p_member, 1},
                          {"empty", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-billing", RG_ROLE_ORG, p_billing, 2}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 3, .env_default = "member",
                       .org_roles = org, .n_org_roles = 1, .multiple_roles = 1};
    rg_role_table *t = build(&s);
    size_t n = 99;
    const char *const *p = rg_role_table_permissions(t, "admin", &n);
    assert_int_equal(n, 3);
    assert_string_equal(p[0], "billing:view");
    assert_string_equal(p[1], "users:edit");
    assert_string_equal(p[2], "users:view");
    p = rg_role_table_permissions(t, "org-billing", &n);
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "billing:edit");
    p = rg_role_table_permissions(t, "empty", &n);
    assert_int_equal(n, 0);
    assert_null(rg_role_table_permissions(t, "nobody", &n));
    assert_int_equal(n, 0);
    assert_int_equal(rg_role_table_multiple_roles(t), 1);
    rg_role_table_free(t);
}

static void test_table_copies_the_spec(void **st)
{
    (void)st;
    char slug[] = "admin", perm[] = "users:view", def[] = "admin";
    const char *perms[] = {perm};
    rg_role_spec env[] = {{slug, RG_ROLE_ENV, perms, 1}};
    rg_table_spec s = {.env_roles = env, .n_env_roles = 1, .env_default = def};
    rg_role_table *t = build(&s);
    slug[0] = perm[0] = def[0] = 'X';   /* the caller's memory changes */
    assert_string_equal(rg_role_table_slug_at(t, 0), "admin");
    assert_string_equal(rg_role_table_default(t), "admin");
    size_t n;
    assert_string_equal(rg_role_table_permissions(t, "admin", &n)[0], "users:view");
    rg_role_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R7_R8_env_default_and_order),
        cmocka_unit_test(test_R7_default_must_be_visible),
        cmocka_unit_test(test_R3_R4_duplicate_slugs_fail),
        cmocka_unit_test(test_R9_inherited_order_follows_env_live),
        cmocka_unit_test(test_R9_own_order_is_independent),
        cmocka_unit_test(test_R10_env_role_added_later_lands_at_bottom),
        cmocka_unit_test(test_R11_org_list_mixes_env_and_org_roles),
        cmocka_unit_test(test_R9_org_roles_without_own_order_follow_env),
        cmocka_unit_test(test_wrong_role_type_in_spec_fails),
        cmocka_unit_test(test_R2_permissions_sorted_unique_per_role),
        cmocka_unit_test(test_table_copies_the_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
