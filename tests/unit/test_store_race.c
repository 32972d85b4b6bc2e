/* test_store_race.c: concurrent writers on two store handles over one
 * database (two instances, issue 15), on either backend (PostgreSQL under
 * tests/with-postgres: SERIALIZABLE writes and the runner's retries; SQLite:
 * the file lock): the same slug created at once is created once (the others
 * answer SQLite's 409 role_slug_conflict); a first login racing on both
 * handles makes one user and one membership; roles created at once all take
 * distinct places in the priority order. */
#include <pthread.h>
#include "test_store_helpers.h"

#define THREADS 8   /* four per handle */

typedef struct race {
    fx *f;
    rg_store *s[2];
    const char *org, *conn;
    int same_slug;
    pthread_barrier_t go;
    int rc[THREADS];
    char code[THREADS][64];
} race;

typedef struct worker { race *r; int i; } worker;

/* Creates an environment role: "racer" for every worker when same_slug is
 * set in the race, else "role-<i>". */
static void *role_worker(void *p)
{
    worker *w = p;
    rg_error e = { 0 };
    json_t *o = NULL;
    char slug[16];
    snprintf(slug, sizeof slug, w->r->same_slug ? "racer" : "role-%d", w->i);
    pthread_barrier_wait(&w->r->go);
    w->r->rc[w->i] = rg_store_role_create(w->r->s[w->i % 2], NULL, slug, slug, NULL, &o, &e);
    snprintf(w->r->code[w->i], sizeof w->r->code[w->i], "%s", e.code);
    json_decref(o);
    return NULL;
}

static void *login_worker(void *p)
{
    worker *w = p;
    rg_error e = { 0 };
    rg_store_login_user u = { .subject = "sub-race", .email = "race@example.com",
                              .first_name = "Ada", .last_name = "Lovelace" };
    rg_resolution res;
    json_t *m = NULL;
    pthread_barrier_wait(&w->r->go);
    w->r->rc[w->i] = rg_store_login_apply(w->r->s[w->i % 2], w->r->org, w->r->conn, &u, NULL, 0,
                                          &res, &m, &e);
    snprintf(w->r->code[w->i], sizeof w->r->code[w->i], "%s", e.code);
    if (!w->r->rc[w->i])
        rg_resolution_clear(&res);
    json_decref(m);
    return NULL;
}

static void run_race(fx *f, race *r, void *(*fn)(void *))
{
    pthread_t t[THREADS];
    worker w[THREADS];
    r->f = f;
    r->s[0] = f->s;
    r->s[1] = rg_store_open(f->path, &f->err);
    assert_non_null(r->s[1]);
    pthread_barrier_init(&r->go, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){ r, i };
        assert_int_equal(pthread_create(&t[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r->go);
    rg_store_close(r->s[1]);
}

static void test_same_slug_at_once_is_created_once(void **state)
{
    fx *f = *state;
    race r = { .same_slug = 1 };
    run_race(f, &r, role_worker);
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        if (r.rc[i] == 0)
            ok++;
        else
            assert_string_equal(r.code[i], "role_slug_conflict");
    }
    assert_int_equal(ok, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM roles WHERE slug = 'racer'"), 1);
    assert_int_equal(n_events(f, "role.created"), 1);
}

static void test_roles_at_once_take_distinct_places(void **state)
{
    fx *f = *state;
    race r = { 0 };
    run_race(f, &r, role_worker);
    for (int i = 0; i < THREADS; i++)
        if (r.rc[i])
            fail_msg("role-%d: %d %s", i, r.rc[i], r.code[i]);
    assert_int_equal(q_int(f, "SELECT count(*) FROM priorities WHERE scope = ''"), THREADS + 1);
    assert_int_equal(q_int(f, "SELECT count(DISTINCT position) FROM priorities WHERE scope = ''"),
                     THREADS + 1);
    char buf[256];
    roles_of(f, NULL, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "member,", 7), 0);
}

static void test_first_login_racing_makes_one_membership(void **state)
{
    fx *f = *state;
    race r = { 0 };
    char org[64], conn[64];
    mk_org(f, "Acme", org);
    json_t *c = NULL;
    assert_int_equal(rg_store_connection_create(f->s, org, "saml", "ADFS", NULL, &c, &f->err), 0);
    snprintf(conn, sizeof conn, "%s", js(c, "id"));
    json_decref(c);
    r.org = org;
    r.conn = conn;
    run_race(f, &r, login_worker);
    for (int i = 0; i < THREADS; i++)
        if (r.rc[i])
            fail_msg("login %d: %d %s", i, r.rc[i], r.code[i]);
    assert_int_equal(q_int(f, "SELECT count(*) FROM users"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM identities"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM memberships"), 1);
    assert_int_equal(n_events(f, "organization_membership.created"), 1);
    assert_int_equal(n_events(f, "authentication.succeeded"), THREADS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_slug_at_once_is_created_once, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_roles_at_once_take_distinct_places, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_first_login_racing_makes_one_membership, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
