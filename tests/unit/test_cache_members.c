/* test_cache_members.c: the membership states session refreshes read
 * (issue 13, src/cache/members.c) and the store's members hook that makes
 * them stale: the hook fires after every committed write of a membership
 * or its roles (API create / update / delete, the cascade of a user's or an
 * organization's deletion) and never for a read, a refused write or a write
 * of something else; the cache answers from its copy until such a write,
 * here or (through a real redis-server) on another instance, and reads the
 * store every time while Redis is configured but down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_cache_util.h"

typedef struct fixture {
    TR_PAIR_FIELDS   /* two stores on one file, two caches: two instances */
    char user[64], om[64];
} fixture;

static void members_hook(void *ctx)
{
    (*(int *)ctx)++;
}

/* A user with a membership of the fixture's organization holding org-admin. */
static void add_member(rg_store *s, const test_store *ts, const char *email, char *user,
                       char *om)
{
    rg_error e;
    json_t *o = NULL;
    assert_int_equal(rg_store_user_create(s, email, NULL, NULL, &o, &e), 0);
    tr_json_id(o, user, 64);
    const char *roles[1] = {"org-admin"};
    assert_int_equal(rg_store_membership_create(s, user, ts->org, roles, 1, &o, &e), 0);
    tr_json_id(o, om, 64);
}

TR_PAIR_SETUP_TEARDOWN(fixture)

/* The state of (user, org) through cache c: its status and roles ("a,b"). */
static int state(rg_cache *c, const char *user, const char *org, char *status, char *roles)
{
    rg_slugs r = {0};
    rg_error e;
    memset(&e, 0, sizeof e);
    int rc = rg_cache_membership_state(c, user, org, status, 16, &r, &e);
    roles[0] = 0;
    for (size_t i = 0; i < r.n; i++)
        snprintf(roles + strlen(roles), 128 - strlen(roles), "%s%s", i ? "," : "", r.v[i]);
    rg_slugs_clear(&r);
    return rc;
}

static unsigned long loads(rg_cache *c)
{
    rg_cache_stats s;
    rg_cache_stats_get(c, &s);
    return s.member_store_loads;
}

static unsigned long hits(rg_cache *c)
{
    rg_cache_stats s;
    rg_cache_stats_get(c, &s);
    return s.member_local_hits;
}

static void test_members_hook_fires_for_membership_writes_only(void **st)
{
    fixture *f = *st;
    int n = 0;
    rg_error e;
    rg_store_set_members_hook(f->sa, members_hook, &n);
    json_t *o = NULL;
    char u1[64], om1[64], u2[64], om2[64], org2[64];
    assert_int_equal(rg_store_user_create(f->sa, "hook1@example.com", NULL, NULL, &o, &e), 0);
    tr_json_id(o, u1, sizeof u1);
    assert_int_equal(n, 0);                                   /* a user: not a membership */
    assert_int_equal(rg_store_role_create(f->sa, f->ts.org, "org-viewer", "Viewer", NULL, NULL,
                                          &e), 0);
    assert_int_equal(n, 0);                                   /* a role: the table's business */
    const char *admin[1] = {"org-admin"}, *viewer[1] = {"org-viewer"}, *bad[1] = {"nope"};
    assert_int_equal(rg_store_membership_create(f->sa, u1, f->ts.org, admin, 1, &o, &e), 0);
    tr_json_id(o, om1, sizeof om1);
    assert_int_equal(n, 1);                                   /* created */
    assert_int_equal(rg_store_membership_update(f->sa, om1, viewer, 1, NULL, &e), 0);
    assert_int_equal(n, 2);                                   /* its roles */
    assert_true(rg_store_membership_update(f->sa, om1, bad, 1, NULL, &e) < 0);
    assert_int_equal(n, 2);                                   /* refused: rolled back */
    assert_int_equal(rg_store_membership_get(f->sa, om1, NULL, &e), 0);
    assert_int_equal(n, 2);                                   /* a read */
    assert_int_equal(rg_store_membership_delete(f->sa, om1, &e), 0);
    assert_int_equal(n, 3);                                   /* deleted */
    /* cascades: a user's deletion, an organization's deletion */
    add_member(f->sa, &f->ts, "hook2@example.com", u2, om2);
    int before = n;
    assert_int_equal(rg_store_user_delete(f->sa, u2, &e), 0);
    assert_int_equal(n, before + 1);
    assert_int_equal(rg_store_organization_create(f->sa, "Other", NULL, 0, &o, &e), 0);
    tr_json_id(o, org2, sizeof org2);
    assert_int_equal(rg_store_membership_create(f->sa, u1, org2, NULL, 0, NULL, &e), 0);
    before = n;
    assert_int_equal(rg_store_organization_delete(f->sa, org2, &e), 0);
    assert_int_equal(n, before + 1);
    assert_int_equal(rg_store_membership_list(f->sa, u1, NULL, NULL, &o, &e), 0);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);   /* really gone */
    json_decref(o);
    rg_store_set_members_hook(f->sa, NULL, NULL);
    assert_int_equal(rg_store_user_delete(f->sa, u1, &e), 0);
    assert_int_equal(n, before + 1);                          /* removed: no call */
}

static void test_state_is_kept_until_a_membership_write_here_or_on_another_instance(void **st)
{
    fixture *f = *st;
    rg_error e;
    char status[16], roles[128];
    add_member(f->sa, &f->ts, "keep@example.com", f->user, f->om);
    /* B: a load, then its copy (no store read) */
    unsigned long l0 = loads(f->b), h0 = hits(f->b);
    assert_int_equal(state(f->b, f->user, f->ts.org, status, roles), 0);
    assert_string_equal(status, "active");
    assert_string_equal(roles, "org-admin");
    assert_int_equal(state(f->b, f->user, f->ts.org, status, roles), 0);
    assert_string_equal(roles, "org-admin");
    assert_int_equal(loads(f->b) - l0, 1);
    assert_int_equal(hits(f->b) - h0, 1);
    /* a write through A's store, told by A's cache: B's next read loads the
     * new roles within 1 s (the message over Redis) */
    assert_int_equal(rg_store_role_create(f->sa, f->ts.org, "org-billing", "Billing", NULL, NULL,
                                          &e), 0);
    const char *billing[1] = {"org-billing"};
    assert_int_equal(rg_store_membership_update(f->sa, f->om, billing, 1, NULL, &e), 0);
    int64_t t0 = rg_mono_us();
    assert_int_equal(rg_cache_members_invalidate(f->a), 0);
    assert_true(TR_WAIT(1000, state(f->b, f->user, f->ts.org, status, roles) == 0 &&
                              strcmp(roles, "org-billing") == 0));
    print_message("  membership write on A, new roles read on B after %lld ms\n",
                  (long long)((rg_mono_us() - t0) / 1000));
    unsigned long l1 = loads(f->b);
    assert_int_equal(state(f->b, f->user, f->ts.org, status, roles), 0);
    assert_int_equal(loads(f->b), l1);                        /* kept again */
    /* a local invalidation: at once, no message needed */
    const char *admin[1] = {"org-admin"};
    assert_int_equal(rg_store_membership_update(f->sb, f->om, admin, 1, NULL, &e), 0);
    assert_int_equal(rg_cache_members_invalidate(f->b), 0);
    assert_int_equal(state(f->b, f->user, f->ts.org, status, roles), 0);
    assert_string_equal(roles, "org-admin");
    /* removed: 404 from the store, never a stale "active" */
    assert_int_equal(rg_store_membership_delete(f->sa, f->om, &e), 0);
    assert_int_equal(rg_cache_members_invalidate(f->a), 0);
    assert_true(TR_WAIT(1000, state(f->b, f->user, f->ts.org, status, roles) == RG_ENOTFOUND));
}

static void test_redis_down_means_every_read_goes_to_the_store(void **st)
{
    fixture *f = *st;
    char status[16], roles[128], user[64], om[64];
    add_member(f->sa, &f->ts, "down@example.com", user, om);
    assert_int_equal(state(f->b, user, f->ts.org, status, roles), 0);
    tr_kill(&f->redis);
    assert_true(TR_WAIT(3000, !rg_cache_redis_up(f->b)));
    /* messages may be lost now: nothing is served from the copy */
    unsigned long l0 = loads(f->b), h0 = hits(f->b);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(state(f->b, user, f->ts.org, status, roles), 0);
        assert_string_equal(roles, "org-admin");
    }
    assert_int_equal(loads(f->b) - l0, 3);
    assert_int_equal(hits(f->b) - h0, 0);
    /* a write on A while down: B reads it at once (from the store) */
    rg_error e;
    assert_int_equal(rg_store_membership_delete(f->sa, om, &e), 0);
    assert_true(rg_cache_members_invalidate(f->a) == RG_EIO);   /* not published */
    assert_int_equal(state(f->b, user, f->ts.org, status, roles), RG_ENOTFOUND);
}

static void test_without_redis_the_copy_serves_one_instance(void **st)
{
    fixture *f = *st;
    rg_config cfg;
    tr_config(&cfg, NULL, NULL, 0);
    rg_error e;
    rg_cache *c = rg_cache_new(&cfg, f->sa, &e);
    assert_non_null(c);
    char status[16], roles[128], user[64], om[64];
    add_member(f->sa, &f->ts, "solo@example.com", user, om);
    assert_int_equal(state(c, user, f->ts.org, status, roles), 0);
    assert_int_equal(state(c, user, f->ts.org, status, roles), 0);
    assert_int_equal(loads(c), 1);
    assert_int_equal(hits(c), 1);
    assert_int_equal(rg_cache_members_invalidate(c), 0);      /* nothing to publish */
    assert_int_equal(state(c, user, f->ts.org, status, roles), 0);
    assert_int_equal(loads(c), 2);
    /* an unknown membership is never kept */
    assert_int_equal(state(c, "user_nope", f->ts.org, status, roles), RG_ENOTFOUND);
    assert_int_equal(state(c, "user_nope", f->ts.org, status, roles), RG_ENOTFOUND);
    assert_int_equal(loads(c), 4);
    rg_cache_free(c);
}

int main(void)
{
    tr_block_sigpipe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_members_hook_fires_for_membership_writes_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_state_is_kept_until_a_membership_write_here_or_on_another_instance, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_means_every_read_goes_to_the_store,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_redis_the_copy_serves_one_instance,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
