/* test_store_hook.c: the store's change hook (issue 7), which the role-table
 * cache uses to invalidate: called after a committed write once per
 * organization whose table version it bumped, once with NULL for an
 * environment change, never for a write that failed (rolled back) or one
 * that changed no table, and never before the commit. */
#include "test_store_helpers.h"

#define MAXC 16
typedef struct calls {
    int n;
    char org[MAXC][80];       /* "" = NULL (environment) */
    uint64_t version_seen[MAXC];
    rg_store *s;
} calls;

static void on_change(void *ctx, const char *org_id)
{
    calls *c = ctx;
    if (c->n >= MAXC)
        return;
    snprintf(c->org[c->n], sizeof c->org[c->n], "%s", org_id ? org_id : "");
    /* called after the commit: the new version is readable already */
    c->version_seen[c->n] = org_id ? rg_store_table_version(c->s, org_id) : 0;
    c->n++;
}

static void test_hook_org_env_and_failures(void **st)
{
    fx *f = *st;
    calls c = {.s = f->s};
    rg_store_set_change_hook(f->s, on_change, &c);
    json_t *o = NULL;

    /* an organization: created (no table of its own yet) */
    assert_int_equal(rg_store_organization_create(f->s, "Acme", NULL, 0, &o, &f->err), 0);
    char org[80];
    snprintf(org, sizeof org, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    int after_org = c.n;

    /* an organization role (R4: org- slug): that organization's table changes */
    uint64_t v0 = rg_store_table_version(f->s, org);
    assert_int_equal(rg_store_role_create(f->s, org, "org-auditor", "Auditor", NULL, NULL, &f->err), 0);
    assert_int_equal(c.n, after_org + 1);
    assert_string_equal(c.org[after_org], org);
    assert_true(c.version_seen[after_org] > v0);   /* committed before the call */

    /* an environment role: every table (NULL) */
    assert_int_equal(rg_store_role_create(f->s, NULL, "viewer", "Viewer", NULL, NULL, &f->err), 0);
    assert_int_equal(c.n, after_org + 2);
    assert_string_equal(c.org[after_org + 1], "");

    /* a refused write: rolled back, no call */
    int before = c.n;
    assert_true(rg_store_role_create(f->s, NULL, "viewer", "Again", NULL, NULL, &f->err) < 0);
    assert_true(rg_store_role_create(f->s, org, "Bad Slug", "Bad", NULL, NULL, &f->err) < 0);
    assert_int_equal(c.n, before);

    /* a read: no call */
    assert_int_equal(rg_store_role_list(f->s, org, NULL, &f->err), 0);
    assert_int_equal(c.n, before);

    /* removed: no more calls */
    rg_store_set_change_hook(f->s, NULL, NULL);
    assert_int_equal(rg_store_role_create(f->s, NULL, "editor", "Editor", NULL, NULL, &f->err), 0);
    assert_int_equal(c.n, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hook_org_env_and_failures, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
