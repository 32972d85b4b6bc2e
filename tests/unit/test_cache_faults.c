/* test_cache_faults.c: the cache layer when Redis fails (issue 7 "Faults"):
 * SIGKILLed mid-run (calls fail fast, bounded by the timeouts, no crash;
 * tables come from the store and stay fresh; replay follows
 * replay_check_without_redis), restarted on the same port (everything works
 * again without recreating the caches), hung by SIGSTOP (a command gives up
 * after ~command_timeout_ms), and AUTH with an ACL user plus SELECT,
 * re-applied after a reconnect. Prints the measured times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_cache_util.h"

typedef struct fixture {
    TR_PAIR_FIELDS          /* a, b: policy reject */
    rg_cache *l;            /* l: policy local */
    test_sink sink_b;
    test_sink user_sink_b;   /* R30 */
} fixture;

static int setup(void **st)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    pthread_mutex_init(&f->sink_b.lock, NULL);
    pthread_mutex_init(&f->user_sink_b.lock, NULL);
    if (TR_PAIR_OPEN(f))
        return -1;
    rg_error e;
    rg_config lc = f->cfg;
    lc.saml.replay_check_without_redis = RG_REPLAY_LOCAL;
    f->l = rg_cache_new(&lc, f->sa, &e);
    if (!f->l)
        return -1;
    rg_cache_set_revoke_sink(f->b, test_sink_fn, &f->sink_b);
    rg_cache_set_revoke_user_sink(f->b, test_user_sink_fn, &f->user_sink_b);
    if (!TR_WAIT(3000, rg_cache_redis_up(f->l)))
        return -1;
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fixture *f = *st;
    if (!f)
        return 0;
    rg_cache_free(f->l);
    TR_PAIR_CLOSE(f);
    free(f);
    return 0;
}

static int maps_now(rg_cache *c, const test_store *ts, const char *group)
{
    rg_cache_ref *r = NULL;
    rg_error e;
    if (rg_cache_table_get(c, ts->org, &r, &e))
        return -1;
    int hit = tr_maps(rg_cache_ref_table(r), ts->conn, group);
    rg_cache_ref_release(r);
    return hit;
}

/* Everything shared works between a and b (after a restart, too). */
static void check_shared_state_works(fixture *f, const char *tag)
{
    char id[64], sid[64], group[64];
    rg_error e;
    snprintf(id, sizeof id, "_assert_%s", tag);
    int64_t exp = rg_now() + 300;
    assert_int_equal(rg_cache_replay_check(f->a, "https://idp", id, exp), 0);
    assert_int_equal(rg_cache_replay_check(f->b, "https://idp", id, exp), 1);
    char *v = NULL;
    assert_int_equal(rg_cache_state_put(f->a, id, "state", 5000, &e), 0);
    assert_int_equal(rg_cache_state_take(f->b, id, &v, &e), 0);
    assert_string_equal(v, "state");
    free(v);
    assert_int_equal(rg_cache_state_take(f->b, id, &v, &e), RG_ENOTFOUND);
    snprintf(sid, sizeof sid, "sid_%s", tag);
    assert_int_equal(rg_cache_revoke_publish(f->a, sid, exp), 0);
    assert_true(TR_WAIT(1000, test_sink_exp(&f->sink_b, sid) == exp));
    snprintf(group, sizeof group, "grp-%s", tag);
    assert_int_equal(maps_now(f->b, &f->ts, group), 0);   /* b holds a copy */
    assert_int_equal(ts_add_mapping(f->sa, &f->ts, group), 0);
    assert_int_equal(rg_cache_table_invalidate(f->a, f->ts.org), 0);
    assert_true(TR_WAIT(1000, maps_now(f->b, &f->ts, group) == 1));
}

static void test_redis_sigkill_fails_fast_then_recovers_on_restart(void **st)
{
    fixture *f = *st;
    rg_error e;
    check_shared_state_works(f, "before");
    assert_int_equal(maps_now(f->a, &f->ts, "admins"), 1);   /* a holds a copy */

    tr_kill(&f->redis);   /* SIGKILL mid-run */
    int64_t exp = rg_now() + 300;
    int64_t t0 = rg_mono_us();
    int r = rg_cache_replay_check(f->a, "https://idp", "_during_outage", exp);
    int64_t first_us = rg_mono_us() - t0;
    assert_int_equal(r, -1);   /* reject: fail closed */
    /* bounded by connect + command timeout (300 + 300 ms) */
    assert_true(first_us < 700000);
    int64_t worst = 0;
    t0 = rg_mono_us();
    for (int i = 0; i < 50; i++) {
        int64_t c0 = rg_mono_us();
        assert_int_equal(rg_cache_replay_check(f->a, "https://idp", "_more", exp), -1);
        if (rg_mono_us() - c0 > worst)
            worst = rg_mono_us() - c0;
    }
    int64_t avg = (rg_mono_us() - t0) / 50;
    print_message("redis SIGKILLed: first call %lld us, next 50 calls avg %lld us, worst %lld us\n",
                  (long long)first_us, (long long)avg, (long long)worst);
    assert_true(worst < 700000);
    assert_true(avg < 50000);   /* backoff: calls do not each pay a connect */

    /* policy local: in-process replay cache */
    assert_int_equal(rg_cache_replay_check(f->l, "https://idp", "_local1", exp), 0);
    assert_int_equal(rg_cache_replay_check(f->l, "https://idp", "_local1", exp), 1);
    rg_cache_stats s;
    rg_cache_stats_get(f->l, &s);
    assert_true(s.replay_local >= 1);

    /* degraded, and the subscribers notice */
    assert_true(TR_WAIT(2000, (rg_cache_stats_get(f->a, &s), !s.subscriber_up) &&
                                  !rg_cache_redis_up(f->a) && !rg_cache_redis_up(f->b)));
    rg_cache_stats_get(f->a, &s);
    assert_int_equal(s.configured, 1);
    assert_int_equal(s.redis_up, 0);
    assert_true(s.redis_failures >= 1);
    assert_true(s.redis_skipped >= 1);
    assert_true(s.replay_unavailable >= 51);

    /* logins still get tables from the store, and fresh ones: with the
     * channel down a change on b (whose message cannot go out) is seen by a
     * at once */
    assert_int_equal(ts_add_mapping(f->sb, &f->ts, "during-outage"), 0);
    assert_int_equal(rg_cache_table_invalidate(f->b, f->ts.org), RG_EIO);
    assert_int_equal(maps_now(f->a, &f->ts, "during-outage"), 1);

    /* login state: in-process on this instance; another instance cannot
     * know it and says unavailable, not "not found" */
    char *v = NULL;
    assert_int_equal(rg_cache_state_put(f->a, "outage-state", "v", 5000, &e), 0);
    assert_int_equal(rg_cache_state_take(f->b, "outage-state", &v, &e), RG_EUNAVAIL);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "state_store_unavailable");
    assert_int_equal(rg_cache_state_take(f->a, "outage-state", &v, &e), 0);
    assert_string_equal(v, "v");
    free(v);
    assert_int_equal(rg_cache_revoke_publish(f->a, "sid_outage", exp), RG_EIO);
    /* R30: a user revocation during the outage is queued the same way */
    int64_t before = rg_now() + 1;
    assert_int_equal(rg_cache_revoke_user_publish(f->a, "user_outage", "org_outage", before,
                                                  exp), RG_EIO);

    /* b keeps a copy made during the outage */
    assert_int_equal(maps_now(f->b, &f->ts, "during-outage"), 1);
    rg_cache_stats sb0;
    rg_cache_stats_get(f->b, &sb0);

    /* restart on the same port: reconnects without recreating the caches */
    t0 = rg_mono_us();
    assert_int_equal(tr_start(&f->redis), 0);
    assert_true(TR_WAIT(5000, rg_cache_redis_up(f->a) && rg_cache_redis_up(f->b)));
    print_message("redis restarted: both instances up again after %lld ms\n",
                  (long long)(rg_mono_us() - t0) / 1000);
    /* messages may have been lost while away: the resubscribe dropped every
     * in-process table, so b's next lookup is not an in-process hit */
    assert_int_equal(maps_now(f->b, &f->ts, "during-outage"), 1);
    rg_cache_stats_get(f->b, &s);
    assert_int_equal(s.table_local_hits, sb0.table_local_hits);
    assert_true(s.table_redis_hits + s.table_store_loads >
                sb0.table_redis_hits + sb0.table_store_loads);
    check_shared_state_works(f, "after");
    /* what a published during the outage reaches b once Redis is back */
    assert_true(TR_WAIT(3000, test_sink_exp(&f->sink_b, "sid_outage") == exp));
    assert_true(TR_WAIT(3000, test_sink_exp(&f->user_sink_b, "org_outage|user_outage") ==
                                  before));
    /* an id accepted in-process during the outage stays a replay there */
    assert_int_equal(rg_cache_replay_check(f->l, "https://idp", "_local1", exp), 1);
}

static void test_hung_redis_times_out_after_command_timeout(void **st)
{
    fixture *f = *st;
    rg_error e;
    int64_t exp = rg_now() + 300;
    assert_int_equal(rg_cache_replay_check(f->a, "https://idp", "_pre_hang", exp), 0);
    kill(f->redis.pid, SIGSTOP);
    int64_t t0 = rg_mono_us();
    int r = rg_cache_replay_check(f->a, "https://idp", "_hung", exp);
    int64_t took = rg_mono_us() - t0;
    assert_int_equal(r, -1);
    print_message("redis SIGSTOPped: command gave up after %lld ms (command_timeout_ms %d)\n",
                  (long long)took / 1000, f->cfg.redis.command_timeout_ms);
    assert_true(took >= 250000 && took < 1000000);
    /* then the backoff: no second wait */
    t0 = rg_mono_us();
    assert_int_equal(rg_cache_replay_check(f->a, "https://idp", "_hung2", exp), -1);
    assert_true(rg_mono_us() - t0 < 50000);
    /* tables still come (in-process or store) */
    assert_int_equal(maps_now(f->a, &f->ts, "admins"), 1);
    char *v = NULL;
    t0 = rg_mono_us();
    assert_int_equal(rg_cache_state_take(f->a, "nope", &v, &e), RG_EUNAVAIL);
    assert_true(rg_mono_us() - t0 < 1000000);
    kill(f->redis.pid, SIGCONT);
    assert_true(TR_WAIT(5000, rg_cache_redis_up(f->a) && rg_cache_redis_up(f->b) &&
                                  rg_cache_replay_check(f->a, "https://idp", "_after_hang",
                                                        exp) == 0));
    assert_int_equal(rg_cache_replay_check(f->b, "https://idp", "_after_hang", exp), 1);
    assert_int_equal(rg_cache_replay_check(f->b, "https://idp", "_pre_hang", exp), 1);
}

/* AUTH with an ACL user and SELECT, also after a restart. */
static void acl_user(const test_redis *r)
{
    redisReply *rep = tr_cmd(r, 0, "ACL SETUSER rgapp on >app-pw ~rgtest:* &* +@all", NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
}

static void test_auth_acl_user_and_select_db(void **st)
{
    (void)st;
    test_redis r = {0};
    snprintf(r.pass, sizeof r.pass, "admin-pw");
    assert_int_equal(tr_start(&r), 0);
    acl_user(&r);
    rg_config cfg;
    tr_config(&cfg, &r, "rgapp:app-pw", 3);
    rg_error e;
    rg_cache *c = rg_cache_new(&cfg, NULL, &e);
    assert_non_null(c);
    assert_true(TR_WAIT(3000, rg_cache_redis_up(c)));
    assert_int_equal(rg_cache_state_put(c, "k1", "v1", 60000, &e), 0);
    assert_int_equal(tr_int(&r, 3, "EXISTS %s", "rgtest:state:k1"), 1);   /* db 3 */
    assert_int_equal(tr_int(&r, 0, "EXISTS %s", "rgtest:state:k1"), 0);
    assert_int_equal(rg_cache_replay_check(c, "iss", "_id1", rg_now() + 60), 0);

    /* a wrong password: nothing works, reject policy fails closed */
    rg_config bad;
    tr_config(&bad, &r, "rgapp:wrong", 3);
    rg_cache *cb = rg_cache_new(&bad, NULL, &e);
    assert_non_null(cb);
    assert_int_equal(rg_cache_replay_check(cb, "iss", "_id2", rg_now() + 60), -1);
    tr_sleep_ms(200);
    assert_int_equal(rg_cache_redis_up(cb), 0);
    rg_cache_free(cb);

    /* the default user with requirepass (password only in the URL) */
    rg_config dflt;
    tr_config(&dflt, &r, ":admin-pw", 0);
    rg_cache *cd = rg_cache_new(&dflt, NULL, &e);
    assert_non_null(cd);
    assert_int_equal(rg_cache_state_put(cd, "k0", "v0", 60000, &e), 0);
    assert_int_equal(tr_int(&r, 0, "EXISTS %s", "rgtest:state:k0"), 1);
    rg_cache_free(cd);

    /* restart: AUTH and SELECT are applied again on the new connections */
    int port = r.port;
    tr_kill(&r);
    assert_int_equal(rg_cache_replay_check(c, "iss", "_id3", rg_now() + 60), -1);
    r.port = port;
    assert_int_equal(tr_start(&r), 0);
    acl_user(&r);
    assert_true(TR_WAIT(5000, rg_cache_redis_up(c)));
    assert_true(TR_WAIT(3000, rg_cache_state_put(c, "k2", "v2", 60000, &e) == 0 &&
                                  tr_int(&r, 3, "EXISTS %s", "rgtest:state:k2") == 1));
    char *v = NULL;
    assert_int_equal(rg_cache_state_take(c, "k2", &v, &e), 0);
    assert_string_equal(v, "v2");
    free(v);
    rg_cache_free(c);
    tr_kill(&r);
}

int main(void)
{
    tr_block_sigpipe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redis_sigkill_fails_fast_then_recovers_on_restart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_redis_times_out_after_command_timeout, setup,
                                        teardown),
        cmocka_unit_test(test_auth_acl_user_and_select_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
