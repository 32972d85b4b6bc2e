/* test_store_delete.c: deleting roles (R7, R20, R21), the deletion job and
 * its resumption after a crash (R23), organization and user deletion
 * cascades with their events (R26), and the job runner beside concurrent
 * writers. */
#include <pthread.h>
#include "test_store_helpers.h"

static void test_R7_env_default_cannot_be_deleted(void **state)
{
    fx *f = *state;
    json_t *o = NULL;
    assert_int_equal(rg_store_role_delete(f->s, NULL, "member", NULL, &o, &f->err),
                     RG_ECONFLICT);
    assert_string_equal(f->err.code, "default_role_cannot_be_deleted");
    assert_null(o);
    assert_int_equal(n_events(f, NULL), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(rg_store_role_delete(f->s, NULL, "ghost", NULL, &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(f->err.status, 404);
}

static void test_R20_deleted_role_disappears_at_once_then_job_reassigns(void **state)
{
    fx *f = *state;
    char org[64], om[64], buf[128];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    mk_user_member(f, "ada@example.com", org, S("admin"), 1, om);
    json_t *o = NULL;
    uint64_t v = rg_store_table_version(f->s, org);
    assert_int_equal(rg_store_role_delete(f->s, NULL, "admin", NULL, &o, &f->err), 0);
    assert_string_equal(js(o, "status"), "deleting");
    json_decref(o);
    /* gone from lists and tables at once */
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member");
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "member");
    assert_true(rg_store_table_version(f->s, org) > v);
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, org, &t, &f->err), 0);
    assert_int_equal(rg_role_table_rank(t, "admin"), -1);
    rg_role_table_free(t);
    assert_int_equal(rg_store_role_get(f->s, NULL, "admin", &o, &f->err), 0);
    assert_string_equal(js(o, "status"), "deleting");
    json_decref(o);
    /* not assignable any more */
    assert_int_equal(rg_store_membership_update(f->s, om, S("admin"), 1, &o, &f->err), RG_EUNPROCESSABLE);
    assert_int_equal(n_events(f, "role.deleted"), 1);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 1);
    /* the job moves the membership to the default (single-role) */
    assert_int_equal(rg_store_jobs_run(f->s, 10, 0, NULL, &f->err), 1);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 0);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "member");
    assert_string_equal(member_source(f, om, buf, sizeof buf), "default");
    assert_int_equal(n_events(f, "organization_membership.updated"), 1);
    assert_int_equal(rg_store_role_get(f->s, NULL, "admin", &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE slug = 'admin'"), 0);
    /* a second run has nothing to do */
    assert_int_equal(rg_store_jobs_run(f->s, 10, 0, NULL, &f->err), 0);
    /* and the slug is free again */
    mk_role(f, NULL, "admin");
}

static void test_R20_multiple_roles_removes_role_and_R13_falls_back(void **state)
{
    fx *f = *state;
    char org[64], om1[64], om2[64], buf[128];
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    mk_org(f, "Acme", org);
    env_set(f, NULL, 1, NULL);
    mk_user_member(f, "u@example.com", org, S("admin", "viewer"), 2, om1);
    mk_user_member(f, "v@example.com", org, S("admin"), 1, om2);
    del_role(f, NULL, "admin", NULL);
    assert_int_equal(rg_store_jobs_run(f->s, 1, 0, NULL, &f->err), 2);
    assert_string_equal(member_roles(f, om1, buf, sizeof buf), "viewer");
    assert_string_equal(member_roles(f, om2, buf, sizeof buf), "member");
    assert_string_equal(member_source(f, om1, buf, sizeof buf), "api");   /* roles left: source kept */
    assert_string_equal(member_source(f, om2, buf, sizeof buf), "default");
}

static void test_R20_mappings_to_deleted_role_removed(void **state)
{
    fx *f = *state;
    char org[64];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    json_t *c = NULL, *o = NULL;
    assert_int_equal(rg_store_connection_create(f->s, org, "saml", "Okta", NULL, &c, &f->err), 0);
    set_mappings(f, NULL, js(c, "id"),
                 json_pack("[{s:s,s:s},{s:s,s:s}]", "idp_group", "admins", "role_slug", "admin",
                           "idp_group", "staff", "role_slug", "member"));
    del_role(f, NULL, "admin", NULL);
    assert_int_equal(rg_store_role_mappings_get(f->s, js(c, "id"), &o, &f->err), 0);
    json_t *data = json_object_get(o, "data");
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(js(json_array_get(data, 0), "role_slug"), "member");
    json_decref(o);
    json_decref(c);
    assert_int_equal(q_int(f, "SELECT count(*) FROM role_mappings"), 1);
}

static void test_R21_delete_default_needs_replacement(void **state)
{
    fx *f = *state;
    char a[64], b[64], c[64], om[64], buf[256];
    mk_role(f, NULL, "admin");
    mk_role(f, NULL, "viewer");
    mk_org(f, "A", a);
    mk_org(f, "B", b);
    mk_org(f, "C", c);
    org_default(f, a, "admin");
    org_default(f, b, "admin");
    mk_role(f, c, "org-own");   /* c: independent, default member */
    mk_user_member(f, "u@example.com", a, NULL, 0, om);
    json_t *o = NULL;
    long long ev = n_events(f, NULL);
    assert_int_equal(rg_store_role_delete(f->s, NULL, "admin", NULL, &o, &f->err), RG_ECONFLICT);
    assert_string_equal(f->err.code, "replacement_default_required");
    assert_non_null(strstr(f->err.message, a));
    assert_non_null(strstr(f->err.message, b));
    assert_null(strstr(f->err.message, c));
    /* a replacement that is not visible in every affected org: 422 */
    mk_role(f, c, "org-c-only");
    ev = n_events(f, NULL);
    assert_int_equal(rg_store_role_delete(f->s, NULL, "admin", "org-c-only", &o, &f->err),
                     RG_EUNPROCESSABLE);
    assert_string_equal(f->err.field, "replacement_default");
    assert_int_equal(rg_store_role_delete(f->s, NULL, "admin", "admin", &o, &f->err), RG_EUNPROCESSABLE);
    assert_int_equal(n_events(f, NULL), ev);
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member,admin,viewer");
    /* with one: the orgs get it first, then R20 */
    del_role(f, NULL, "admin", "viewer");
    assert_string_equal(table_default(f, a, buf, sizeof buf), "viewer");
    assert_string_equal(table_default(f, b, buf, sizeof buf), "viewer");
    assert_string_equal(table_default(f, c, buf, sizeof buf), "member");
    assert_int_equal(n_events(f, "organization.updated"), 2 + 2);
    assert_int_equal(rg_store_jobs_run(f->s, 0, 0, NULL, &f->err), 1);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "viewer");
}

static void test_R21_org_role_default_of_its_org(void **state)
{
    fx *f = *state;
    char org[64], om[64], buf[128];
    mk_org(f, "Acme", org);
    mk_role(f, org, "org-lead");
    mk_role(f, org, "org-crew");
    org_default(f, org, "org-lead");
    mk_user_member(f, "u@example.com", org, NULL, 0, om);
    json_t *o = NULL;
    assert_int_equal(rg_store_role_delete(f->s, org, "org-lead", NULL, &o, &f->err),
                     RG_ECONFLICT);
    assert_string_equal(f->err.code, "replacement_default_required");
    /* an environment role cannot be deleted through an organization */
    assert_int_equal(rg_store_role_delete(f->s, org, "member", NULL, &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(rg_store_role_delete(f->s, org, "org-lead", "org-crew", &o, &f->err), 0);
    assert_string_equal(js(o, "type"), "OrganizationRole");
    json_decref(o);
    assert_int_equal(n_events(f, "organization_role.deleted"), 1);
    assert_int_equal(rg_store_jobs_run(f->s, 0, 0, NULL, &f->err), 1);
    assert_string_equal(member_roles(f, om, buf, sizeof buf), "org-crew");
    assert_string_equal(roles_of(f, org, buf, sizeof buf), "member,org-crew");
}

static void test_R23_deletion_job_resumes_after_crash(void **state)
{
    fx *f = *state;
    char org[64], org2[64], om[64];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    mk_org(f, "Beta", org2);
    org_default(f, org2, "member");
    for (int i = 0; i < 25; i++) {
        char email[64];
        snprintf(email, sizeof email, "u%d@example.com", i);
        mk_user_member(f, email, i % 2 ? org : org2, S("admin"), 1, om);
    }
    del_role(f, NULL, "admin", NULL);
    long long upd = n_events(f, "organization_membership.updated");
    /* the "crash": the runner stops after 10 rows, batches of 4 */
    long left = -1;   /* the runner's own count of what it leaves */
    assert_int_equal(rg_store_jobs_run(f->s, 4, 10, &left, &f->err), 10);
    assert_int_equal(left, 1);
    assert_int_equal(q_int(f, "SELECT processed FROM jobs"), 10);
    assert_int_equal(q_int(f, "SELECT count(*) FROM membership_roles mr JOIN roles r"
                              " ON r.id = mr.role_id WHERE r.slug = 'admin'"), 15);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 1);
    fx_reopen(f);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 1);
    assert_int_equal(rg_store_jobs_run(f->s, 4, 0, &left, &f->err), 15);
    assert_int_equal(left, 0);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 0);
    left = -1;   /* nothing pending: the one look that found none */
    assert_int_equal(rg_store_jobs_run(f->s, 4, 0, &left, &f->err), 0);
    assert_int_equal(left, 0);
    /* no membership holds the deleted role; none holds zero roles */
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE slug = 'admin'"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships m WHERE NOT EXISTS"
                              " (SELECT 1 FROM membership_roles mr WHERE mr.membership_id = m.id)"),
                     0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM membership_roles mr JOIN roles r"
                              " ON r.id = mr.role_id WHERE r.slug <> 'member'"), 0);
    assert_int_equal(q_int(f, "SELECT processed FROM jobs"), 25);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships WHERE role_source = 'default'"),
                     25);
    /* exactly one event per membership moved, none twice */
    assert_int_equal(n_events(f, "organization_membership.updated"), upd + 25);
}

typedef struct writer_arg { rg_store *s; int n; int failures; } writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    rg_error e;
    for (int i = 0; i < w->n; i++) {
        char email[64];
        snprintf(email, sizeof email, "w%d@example.com", i);
        json_t *o = NULL;
        if (rg_store_user_create(w->s, email, NULL, NULL, &o, &e))
            w->failures++;
        json_decref(o);
        if (rg_store_role_list(w->s, NULL, &o, &e))
            w->failures++;
        json_decref(o);
    }
    return NULL;
}

static void *runner(void *p)
{
    writer_arg *w = p;
    rg_error e;
    if (rg_store_jobs_run(w->s, 3, 0, NULL, &e) < 0)
        w->failures++;
    return NULL;
}

static void test_R23_job_runs_beside_concurrent_writers(void **state)
{
    fx *f = *state;
    char org[64], om[64];
    mk_role(f, NULL, "admin");
    mk_org(f, "Acme", org);
    for (int i = 0; i < 12; i++) {
        char email[64];
        snprintf(email, sizeof email, "m%d@example.com", i);
        mk_user_member(f, email, org, S("admin"), 1, om);
    }
    del_role(f, NULL, "admin", NULL);
    writer_arg w1 = { f->s, 15, 0 }, w2 = { f->s, 15, 0 }, r = { f->s, 0, 0 };
    pthread_t t1, t2, t3;
    assert_int_equal(pthread_create(&t1, NULL, writer, &w1), 0);
    assert_int_equal(pthread_create(&t2, NULL, writer, &w2), 0);
    assert_int_equal(pthread_create(&t3, NULL, runner, &r), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_join(t3, NULL);
    assert_int_equal(w1.failures + w2.failures + r.failures, 0);
    assert_int_equal(rg_store_jobs_run(f->s, 3, 0, NULL, &f->err) >= 0, 1);
    assert_int_equal(rg_store_jobs_pending(f->s, &f->err), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), 12 + 30);
    assert_int_equal(n_events(f, "user.created"), 12 + 30);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships WHERE role_source = 'default'"),
                     12);
}

static void test_organization_delete_cascades_with_events(void **state)
{
    fx *f = *state;
    char org[64], keep[64], u[64], om[64], om2[64];
    mk_org(f, "Acme", org);
    mk_org(f, "Keep", keep);
    mk_role(f, org, "org-ops");
    mk_user(f, "u@example.com", u);
    mk_member(f, u, org, S("org-ops"), 1, om);
    mk_member(f, u, keep, NULL, 0, om2);
    json_t *c = NULL;
    assert_int_equal(rg_store_connection_create(f->s, org, "oidc", "Google", NULL, &c, &f->err), 0);
    json_decref(c);
    assert_int_equal(rg_store_organization_delete(f->s, org, &f->err), 0);
    assert_int_equal(n_events(f, "organization.deleted"), 1);
    assert_int_equal(n_events(f, "organization_membership.deleted"), 1);
    assert_int_equal(n_events(f, "connection.deleted"), 1);
    assert_int_equal(n_events(f, "organization_role.deleted"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE organization_id IS NOT NULL"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM priorities WHERE scope <> ''"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM connections"), 0);
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_get(f->s, org, &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(rg_store_organization_delete(f->s, org, &f->err), RG_ENOTFOUND);
    assert_int_equal(rg_store_table_version(f->s, org), 0);
}

static void test_user_delete_removes_memberships(void **state)
{
    fx *f = *state;
    char org[64], u[64], om[64];
    mk_one_member(f, "u@example.com", org, u, om);
    assert_int_equal(rg_store_user_delete(f->s, u, &f->err), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM membership_roles"), 0);
    assert_int_equal(n_events(f, "organization_membership.deleted"), 1);
    assert_int_equal(n_events(f, "user.deleted"), 1);
    json_t *o = NULL;
    assert_int_equal(rg_store_membership_get(f->s, om, &o, &f->err), RG_ENOTFOUND);
    assert_int_equal(rg_store_user_delete(f->s, u, &f->err), RG_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
        T(test_R7_env_default_cannot_be_deleted),
        T(test_R20_deleted_role_disappears_at_once_then_job_reassigns),
        T(test_R20_multiple_roles_removes_role_and_R13_falls_back),
        T(test_R20_mappings_to_deleted_role_removed),
        T(test_R21_delete_default_needs_replacement),
        T(test_R21_org_role_default_of_its_org),
        T(test_R23_deletion_job_resumes_after_crash),
        T(test_R23_job_runs_beside_concurrent_writers),
        T(test_organization_delete_cascades_with_events),
        T(test_user_delete_removes_memberships),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
