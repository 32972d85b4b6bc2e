/* test_store_org.c: organizations, users and memberships as the admin API
 * sees them: object shapes, validation (422), unknown ids (404), conflicts
 * (409), cursor pagination (before/after, order, limit) and no-op updates
 * emitting nothing (R26). */
#include "test_store_helpers.h"

static void test_organization_shape_and_update(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_create(f->s, "Acme", S("Acme.com", "acme.io",
                                                                  "acme.com"), 3, &o, &f->err), 0);
    assert_string_equal(js(o, "object"), "organization");
    assert_true(!strncmp(js(o, "id"), "org_", 4));
    json_t *d = json_object_get(o, "domains");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "acme.com");
    assert_non_null(js(o, "created_at"));
    assert_int_equal(strlen(js(o, "created_at")), 24);   /* YYYY-MM-DDThh:mm:ss.mmmZ */
    char id[64];
    snprintf(id, sizeof id, "%s", js(o, "id"));
    json_decref(o);
    assert_int_equal(rg_store_organization_update(f->s, id, "Acme", S("acme.com", "acme.io"), 2,
                                                  NULL, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "organization.updated"), 0);   /* no-op */
    assert_int_equal(rg_store_organization_update(f->s, id, "Acme Inc", NULL, -1, NULL, &o,
                                                  &f->err), 0);
    assert_string_equal(js(o, "name"), "Acme Inc");
    assert_int_equal(json_array_size(json_object_get(o, "domains")), 2);
    json_decref(o);
    assert_int_equal(rg_store_organization_update(f->s, id, NULL, NULL, 0, NULL, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "domains")), 0);
    json_decref(o);
    assert_int_equal(n_events(f, "organization.updated"), 2);
    assert_int_equal(rg_store_organization_create(f->s, "", NULL, 0, &o, &f->err), RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "name");
    assert_int_equal(rg_store_organization_create(f->s, "X", S("bad domain"), 1, &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "domains");
    assert_int_equal(rg_store_organization_update(f->s, "org_nope", "Y", NULL, -1, NULL, &o,
                                                  &f->err), RG_ENOTFOUND);
    assert_int_equal(q_int(f, "SELECT count(*) FROM organizations"), 1);
}

static void check_page(json_t *page, const char *const *names, size_t n, int has_before,
                       int has_after)
{
    json_t *data = json_object_get(page, "data");
    assert_string_equal(js(page, "object"), "list");
    assert_int_equal(json_array_size(data), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(js(json_array_get(data, i), "name"), names[i]);
    json_t *meta = json_object_get(page, "list_metadata");
    assert_int_equal(json_is_string(json_object_get(meta, "before")), has_before);
    assert_int_equal(json_is_string(json_object_get(meta, "after")), has_after);
}

static void test_lists_paginate_both_ways(void **state)
{
    fx *f = *state;
    char ids[5][64];
    const char *names[] = { "o0", "o1", "o2", "o3", "o4" };
    for (int i = 0; i < 5; i++)
        mk_org(f, names[i], ids[i]);
    json_t *p = NULL;
    /* default: newest first, 10 a page */
    assert_int_equal(rg_store_organization_list(f->s, NULL, &p, &f->err), 0);
    check_page(p, S("o4", "o3", "o2", "o1", "o0"), 5, 0, 0);
    json_decref(p);
    rg_store_list_opts lo = { .limit = 2, .order = "asc" };
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o0", "o1"), 2, 0, 1);
    assert_string_equal(js(json_object_get(p, "list_metadata"), "after"), ids[1]);
    json_decref(p);
    lo.after = ids[1];
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o2", "o3"), 2, 1, 1);
    json_decref(p);
    lo.after = ids[3];
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o4"), 1, 1, 0);   /* the last page: after is null */
    json_decref(p);
    lo.after = NULL;
    lo.before = ids[3];
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o1", "o2"), 2, 1, 1);
    json_decref(p);
    lo.before = ids[1];
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o0"), 1, 0, 1);
    json_decref(p);
    lo.order = "desc";
    lo.before = NULL;
    lo.after = ids[3];
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), 0);
    check_page(p, S("o2", "o1"), 2, 1, 1);
    json_decref(p);
    lo.after = NULL;
    lo.limit = -1;
    assert_int_equal(rg_store_organization_list(f->s, &lo, &p, &f->err), RG_EUNPROCESSABLE);
    assert_null(p);
}

static void test_users_create_list_filter(void **state)
{
    fx *f = *state;
    char a[64], b[64];
    mk_user(f, "a@example.com", a);
    mk_user(f, "b@example.com", b);
    json_t *o = NULL;
    assert_int_equal(rg_store_user_get(f->s, a, &o, &f->err), 0);
    assert_string_equal(js(o, "object"), "user");
    assert_string_equal(js(o, "email"), "a@example.com");
    assert_string_equal(js(o, "first_name"), "Ada");
    assert_true(json_is_null(json_object_get(o, "last_name")));
    json_decref(o);
    assert_int_equal(rg_store_user_list(f->s, "b@example.com", NULL, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    assert_string_equal(js(json_array_get(json_object_get(o, "data"), 0), "id"), b);
    json_decref(o);
    assert_int_equal(rg_store_user_create(f->s, "not-an-email", NULL, NULL, &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "email");
    assert_int_equal(rg_store_user_get(f->s, "user_nope", &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(f->err.status, 404);
    assert_int_equal(n_events(f, "user.created"), 2);
}

static void test_memberships_conflict_404_and_filters(void **state)
{
    fx *f = *state;
    char o1[64], o2[64], u1[64], u2[64], m[64];
    mk_org(f, "One", o1);
    mk_org(f, "Two", o2);
    mk_user(f, "a@example.com", u1);
    mk_user(f, "b@example.com", u2);
    mk_member(f, u1, o1, NULL, 0, m);
    mk_member(f, u1, o2, NULL, 0, m);
    mk_member(f, u2, o1, NULL, 0, m);
    json_t *o = NULL;
    long long ev = n_events(f, NULL);
    assert_int_equal(rg_store_membership_create(f->s, u1, o1, NULL, 0, &o, &f->err),
                     RG_ECONFLICT);
    assert_string_equal(f->err.code, "organization_membership_already_exists");
    assert_int_equal(rg_store_membership_create(f->s, "user_nope", o1, NULL, 0, &o, &f->err),
                     RG_ENOTFOUND);
    assert_string_equal(f->err.field, "user_id");
    assert_int_equal(rg_store_membership_create(f->s, u1, "org_nope", NULL, 0, &o, &f->err),
                     RG_ENOTFOUND);
    assert_string_equal(f->err.field, "organization_id");
    assert_int_equal(n_events(f, NULL), ev);
    assert_int_equal(rg_store_membership_list(f->s, u1, NULL, NULL, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    json_decref(o);
    assert_int_equal(rg_store_membership_list(f->s, NULL, o1, NULL, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    json_decref(o);
    assert_int_equal(rg_store_membership_list(f->s, u2, o1, NULL, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    assert_string_equal(js(json_array_get(json_object_get(o, "data"), 0), "id"), m);
    json_decref(o);
    assert_int_equal(rg_store_membership_delete(f->s, m, &f->err), 0);
    assert_int_equal(rg_store_membership_delete(f->s, m, &f->err), RG_ENOTFOUND);
    assert_int_equal(n_events(f, "organization_membership.deleted"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 2);
}

static void test_permissions_list_and_get(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    assert_int_equal(rg_store_permission_create(f->s, "a:1", "A", NULL, 0, NULL, &f->err), 0);
    assert_int_equal(rg_store_permission_create(f->s, "b:1", "B", NULL, 0, NULL, &f->err), 0);
    rg_store_list_opts lo = { .order = "asc" };
    assert_int_equal(rg_store_permission_list(f->s, &lo, &o, &f->err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    assert_string_equal(js(json_array_get(json_object_get(o, "data"), 0), "slug"), "a:1");
    json_decref(o);
    assert_int_equal(rg_store_permission_get(f->s, "b:1", &o, &f->err), 0);
    assert_string_equal(js(o, "name"), "B");
    json_decref(o);
    assert_int_equal(rg_store_permission_get(f->s, "c:1", &o, &f->err), RG_ENOTFOUND);
    assert_string_equal(f->err.code, "not_found");
    assert_string_equal(f->err.field, "slug");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
        T(test_organization_shape_and_update),
        T(test_lists_paginate_both_ways),
        T(test_users_create_list_filter),
        T(test_memberships_conflict_404_and_filters),
        T(test_permissions_list_and_get),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
