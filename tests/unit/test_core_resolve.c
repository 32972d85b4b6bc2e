/* test_core_resolve.c: what of login resolution is not a table (the tables
 * are tests/cases/resolve/, run by test_core_resolve_cases.c): the clear
 * functions (idempotent, NULL, pooled and hand-built lists), NULL entries in
 * the arrays a caller passes, and a generated table of 3000 mappings whose
 * hash index is checked against a linear scan (R15, R16). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core.h"

static const rg_role_spec env_roles[] = {
    {"admin", RG_ROLE_ENV, NULL, 0},
    {"member", RG_ROLE_ENV, NULL, 0},
};
static const rg_group_mapping maps[] = {{"conn_a", "Admins", "admin"}};

static rg_role_table *table(int multiple)
{
    rg_table_spec s = {.multiple_roles = multiple, .env_roles = env_roles, .n_env_roles = 2,
                       .env_default = "member", .mappings = maps, .n_mappings = 1};
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e);
    if (!t)
        fail_msg("build: %s", e.message);
    return t;
}

/* Resolves a login on conn (conn_a unless given). */
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

static void test_clear_is_idempotent_and_takes_null(void **st)
{
    (void)st;
    rg_role_table *t = table(0);
    const char *g[] = {"Admins"};
    rg_resolution r = login(t, NULL, g, 1, NULL, 0, RG_SOURCE_NONE);
    assert_string_equal(r.roles.v[0], "admin");
    assert_int_equal(r.roles.pooled, 1);
    rg_resolution_clear(&r);
    assert_null(r.roles.v);
    assert_int_equal(r.roles.n, 0);
    rg_resolution_clear(&r);   /* idempotent */
    rg_resolution_clear(NULL);
    rg_slugs_clear(NULL);
    /* a list built by hand owns each string */
    rg_slugs own = {.v = calloc(2, sizeof(char *)), .n = 2};
    own.v[0] = strdup("a");
    own.v[1] = strdup("b");
    rg_slugs_clear(&own);
    assert_null(own.v);
    assert_int_equal(own.n, 0);
    rg_role_table_free(t);
}

/* NULL entries in the arrays a caller passes are skipped, never read. */
static void test_null_entries_are_skipped(void **st)
{
    (void)st;
    rg_role_table *t = table(1);
    const char *g[] = {NULL, "Admins", NULL};
    const char *cur[] = {NULL, "member"};
    rg_resolution r = login(t, NULL, g, 3, cur, 2, RG_SOURCE_API);
    assert_int_equal(r.roles.n, 1);
    assert_string_equal(r.roles.v[0], "admin");
    assert_int_equal(r.source, RG_SOURCE_IDP);
    assert_int_equal(r.matched_groups.n, 1);
    rg_resolution_clear(&r);
    /* no groups array at all, no current roles array: the default */
    r = login(t, NULL, NULL, 0, NULL, 0, RG_SOURCE_IDP);
    assert_string_equal(r.roles.v[0], "member");
    assert_int_equal(r.source, RG_SOURCE_DEFAULT);
    rg_resolution_clear(&r);
    rg_slugs out;
    rg_error e;
    assert_true(rg_core_roles_assign(t, NULL, 3, &out, &e) < 0);   /* a count, no array */
    assert_string_equal(e.code, "invalid_role");
    const char *bad[] = {"admin", NULL};
    assert_true(rg_core_roles_assign(t, bad, 2, &out, &e) < 0);
    assert_string_equal(e.code, "invalid_role");
    assert_null(out.v);
    assert_int_equal(rg_core_roles_keep_highest(t, NULL, 0, &out), 0);   /* R13 */
    assert_string_equal(out.v[0], "member");
    rg_slugs_clear(&out);
    rg_role_source src = RG_SOURCE_API;
    assert_int_equal(rg_core_roles_after_delete(t, cur, 2, NULL, &out, &src), 0);
    assert_int_equal(src, RG_SOURCE_API);
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
        cmocka_unit_test(test_clear_is_idempotent_and_takes_null),
        cmocka_unit_test(test_null_entries_are_skipped),
        cmocka_unit_test(test_R16_large_table_matches_linear_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
