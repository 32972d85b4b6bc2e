/* test_store_shared.c: the shared state of several instances without Redis
 * (issue 15, shared_state.c), on both backends: an id is taken once
 * (insert-if-absent) until it expires, then taken again; a connection's
 * quota of live ids refuses the next one and leaves it free, another
 * connection unaffected (issue 11 item 12); a login state is taken exactly
 * once, a second put replaces it, an expired one is not found; each write
 * prunes a bounded number of expired rows; two stores on one database
 * (two instances) racing on one id or one state: exactly one wins. */
#include <pthread.h>
#include "test_store_helpers.h"
#include "rolegate/util.h"

#define LATER (rg_now_ms() + 60000)

static void test_an_id_is_taken_once_until_it_expires(void **st)
{
    fx *f = *st;
    assert_int_equal(rg_store_shared_claim(f->s, "replay:a", NULL, 0, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "replay:a", NULL, 0, LATER, &f->err), 1);
    assert_int_equal(rg_store_shared_claim(f->s, "replay:b", "conn_1", 10, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "replay:b", "conn_1", 10, LATER, &f->err), 1);
    /* past its expiry the row is absent: taken over, and held again */
    q_exec(f, "UPDATE shared_state SET expires_ms = 1 WHERE k = 'replay:a'");
    assert_int_equal(rg_store_shared_claim(f->s, "replay:a", NULL, 0, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "replay:a", NULL, 0, LATER, &f->err), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state"), 2);
    /* no key, or one too long: refused, nothing written */
    char big[RG_STORE_SHARED_KEY_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_true(rg_store_shared_claim(f->s, big, NULL, 0, LATER, &f->err) < 0);
    assert_true(rg_store_shared_claim(f->s, "", NULL, 0, LATER, &f->err) < 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state"), 2);
}

static void test_a_connection_at_its_quota_refuses_the_next_id_only(void **st)
{
    fx *f = *st;
    assert_int_equal(rg_store_shared_claim(f->s, "r:1", "conn_a", 2, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "r:2", "conn_a", 2, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "r:3", "conn_a", 2, LATER, &f->err), 2);
    /* refused, not remembered: r:3 is not a replay once there is room */
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k = 'r:3'"), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "r:4", "conn_b", 2, LATER, &f->err), 0);
    q_exec(f, "UPDATE shared_state SET expires_ms = 1 WHERE k = 'r:1'");
    assert_int_equal(rg_store_shared_claim(f->s, "r:3", "conn_a", 2, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_claim(f->s, "r:3", "conn_a", 2, LATER, &f->err), 1);
}

static void test_a_login_state_is_taken_exactly_once(void **st)
{
    fx *f = *st;
    char *v = NULL;
    assert_int_equal(rg_store_shared_put(f->s, "state:x", "one", LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_put(f->s, "state:x", "two", LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_take(f->s, "state:x", &v, &f->err), 0);
    assert_string_equal(v, "two");
    free(v);
    assert_int_equal(rg_store_shared_take(f->s, "state:x", &v, &f->err), RG_ENOTFOUND);
    assert_null(v);
    assert_int_equal(f->err.status, 404);
    assert_string_equal(f->err.code, "state_not_found");
    assert_int_equal(rg_store_shared_take(f->s, "state:never", &v, &f->err), RG_ENOTFOUND);
    /* expired: not found, and gone */
    assert_int_equal(rg_store_shared_put(f->s, "state:y", "old", LATER, &f->err), 0);
    q_exec(f, "UPDATE shared_state SET expires_ms = 1 WHERE k = 'state:y'");
    assert_int_equal(rg_store_shared_take(f->s, "state:y", &v, &f->err), RG_ENOTFOUND);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state"), 0);
    /* an id and a state of one key do not mix: a claimed id has no value */
    assert_int_equal(rg_store_shared_claim(f->s, "state:z", NULL, 0, LATER, &f->err), 0);
    assert_int_equal(rg_store_shared_take(f->s, "state:z", &v, &f->err), RG_ENOTFOUND);
}

static void test_each_write_prunes_a_bounded_number_of_expired_rows(void **st)
{
    fx *f = *st;
    char sql[200];
    for (int i = 0; i < 40; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO shared_state(k, v, scope, expires_ms)"
                 " VALUES ('old:%02d', 'v', NULL, %d)", i, 1000 + i);
        q_exec(f, sql);
    }
    assert_int_equal(rg_store_shared_put(f->s, "state:new", "v", LATER, &f->err), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k LIKE 'old:%'"), 24);
    /* the oldest went first */
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k = 'old:15'"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k = 'old:16'"), 1);
    assert_int_equal(rg_store_shared_claim(f->s, "replay:n", NULL, 0, LATER, &f->err), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k LIKE 'old:%'"), 8);
    /* live rows are never pruned */
    assert_int_equal(q_int(f, "SELECT count(*) FROM shared_state WHERE k NOT LIKE 'old:%'"), 2);
}

#define RACERS 8

typedef struct racer {
    rg_store *s;
    int claim, took;
    pthread_barrier_t *go;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    rg_error err;
    rg_error_clear(&err);
    pthread_barrier_wait(r->go);
    r->claim = rg_store_shared_claim(r->s, "replay:raced", "conn_r", 100, LATER, &err);
    char *v = NULL;
    r->took = rg_store_shared_take(r->s, "state:raced", &v, &err) == 0 && v &&
              !strcmp(v, "once");
    free(v);
    return NULL;
}

static void test_two_instances_racing_one_wins(void **st)
{
    fx *f = *st;
    rg_store *other = rg_store_open(f->path, &f->err);   /* a second instance */
    assert_non_null(other);
    assert_int_equal(rg_store_shared_put(other, "state:raced", "once", LATER, &f->err), 0);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    racer r[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer){.s = i % 2 ? other : f->s, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int claimed = 0, replays = 0, took = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        claimed += r[i].claim == 0;
        replays += r[i].claim == 1;
        took += r[i].took;
    }
    pthread_barrier_destroy(&go);
    rg_store_close(other);
    assert_int_equal(claimed, 1);
    assert_int_equal(replays, RACERS - 1);
    assert_int_equal(took, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_id_is_taken_once_until_it_expires,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_connection_at_its_quota_refuses_the_next_id_only,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_a_login_state_is_taken_exactly_once,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_each_write_prunes_a_bounded_number_of_expired_rows,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_instances_racing_one_wins,
                                        fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
