/* test_cache_redis.c: the cache layer against a real redis-server started on
 * a free loopback port, with two rg_cache objects sharing it and the same
 * SQLite file (two instances of one deployment): role tables miss -> store
 * -> Redis -> in-process (R7-R11, R15 tables), invalidation seen by the other
 * instance within 1 s, TTLs, the shared replay cache, one-time login state
 * and revocations reaching the other instance's sink within 1 s. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core_codec.h"
#include "test_cache_util.h"

typedef struct fixture {
    TR_PAIR_FIELDS   /* two stores on one file, two caches: two instances */
} fixture;

TR_PAIR_SETUP_TEARDOWN(fixture)

static rg_cache_ref *get(rg_cache *c, const char *org)
{
    rg_cache_ref *r = NULL;
    rg_error e;
    memset(&e, 0, sizeof e);
    if (rg_cache_table_get(c, org, &r, &e))
        fail_msg("table_get: %s %s", e.code, e.message);
    return r;
}

static void test_R15_table_miss_store_then_redis_then_local(void **st)
{
    fixture *f = *st;
    rg_cache_stats sa0, sb0, s;
    rg_cache_stats_get(f->a, &sa0);
    rg_cache_stats_get(f->b, &sb0);
    /* A: miss everywhere -> store, written back to Redis */
    rg_cache_ref *ra = get(f->a, f->ts.org);
    rg_cache_stats_get(f->a, &s);
    assert_int_equal(s.table_store_loads - sa0.table_store_loads, 1);
    assert_int_equal(s.table_redis_hits - sa0.table_redis_hits, 0);
    const rg_role_table *ta = rg_cache_ref_table(ra);
    assert_true(tr_maps(ta, f->ts.conn, "admins"));
    char key[256];
    snprintf(key, sizeof key, "rgtest:table:%s:%llu", f->ts.org,
             (unsigned long long)rg_role_table_version(ta));
    assert_int_equal(tr_int(&f->redis, 0, "EXISTS %s", key), 1);
    /* A again: in-process, the very same table */
    rg_cache_ref *ra2 = get(f->a, f->ts.org);
    assert_ptr_equal(rg_cache_ref_table(ra2), ta);
    rg_cache_stats_get(f->a, &s);
    assert_int_equal(s.table_local_hits - sa0.table_local_hits, 1);
    assert_int_equal(s.table_store_loads - sa0.table_store_loads, 1);
    /* B: Redis hit, no store load, an equal table */
    rg_cache_ref *rb = get(f->b, f->ts.org);
    rg_cache_stats_get(f->b, &s);
    assert_int_equal(s.table_redis_hits - sb0.table_redis_hits, 1);
    assert_int_equal(s.table_store_loads - sb0.table_store_loads, 0);
    assert_true(rg_core_table_equal(ta, rg_cache_ref_table(rb)));
    /* B again: in-process */
    rg_cache_ref *rb2 = get(f->b, f->ts.org);
    assert_ptr_equal(rg_cache_ref_table(rb2), rg_cache_ref_table(rb));
    rg_cache_ref_release(ra);
    rg_cache_ref_release(ra2);
    rg_cache_ref_release(rb);
    rg_cache_ref_release(rb2);
}

static void test_R15_change_and_invalidate_on_a_is_seen_by_b_within_1s(void **st)
{
    fixture *f = *st;
    rg_cache_ref *rb = get(f->b, f->ts.org);    /* B holds a copy */
    uint64_t v0 = rg_role_table_version(rg_cache_ref_table(rb));
    assert_false(tr_maps(rg_cache_ref_table(rb), f->ts.conn, "sre"));
    rg_cache_ref_release(rb);
    rg_cache_stats s0;
    rg_cache_stats_get(f->b, &s0);
    /* the admin API on A: store change, then invalidate */
    assert_int_equal(ts_add_mapping(f->sa, &f->ts, "sre"), 0);
    int64_t t0 = rg_mono_us();
    assert_int_equal(rg_cache_table_invalidate(f->a, f->ts.org), 0);
    int seen = 0;
    while (rg_mono_us() - t0 < 1000000) {
        rb = get(f->b, f->ts.org);
        seen = tr_maps(rg_cache_ref_table(rb), f->ts.conn, "sre");
        if (seen)
            assert_true(rg_role_table_version(rg_cache_ref_table(rb)) > v0);
        rg_cache_ref_release(rb);
        if (seen)
            break;
        tr_sleep_ms(5);
    }
    assert_true(seen);
    rg_cache_stats s;
    rg_cache_stats_get(f->b, &s);
    assert_true(s.invalidations_received > s0.invalidations_received);
    /* A sees it at once (its copy was dropped locally) */
    rg_cache_ref *ra = get(f->a, f->ts.org);
    assert_true(tr_maps(rg_cache_ref_table(ra), f->ts.conn, "sre"));
    rg_cache_ref_release(ra);
}

static void test_R7_environment_invalidation_drops_every_table(void **st)
{
    fixture *f = *st;
    rg_cache_ref *r1 = get(f->b, f->ts.org), *r2 = get(f->b, NULL);
    rg_cache_ref_release(r1);
    rg_cache_ref_release(r2);
    rg_cache_stats s0, s;
    rg_cache_stats_get(f->b, &s0);
    assert_int_equal(rg_cache_table_invalidate(f->a, NULL), 0);
    assert_true(TR_WAIT(1000, (rg_cache_stats_get(f->b, &s),
                               s.invalidations_received > s0.invalidations_received)));
    /* both were dropped: neither is an in-process hit now */
    r1 = get(f->b, f->ts.org);
    r2 = get(f->b, NULL);
    rg_cache_stats_get(f->b, &s);
    assert_int_equal(s.table_local_hits, s0.table_local_hits);
    rg_cache_ref_release(r1);
    rg_cache_ref_release(r2);
}

static void test_table_ttl_bounds_a_lost_invalidation(void **st)
{
    fixture *f = *st;
    rg_config cfg = f->cfg;
    cfg.redis.table_ttl = 1;
    snprintf(cfg.redis.prefix, sizeof cfg.redis.prefix, "rgttl:");
    rg_error e;
    rg_cache *c = rg_cache_new(&cfg, f->sa, &e);
    assert_non_null(c);
    assert_true(TR_WAIT(3000, rg_cache_redis_up(c)));
    rg_cache_ref *r = get(c, f->ts.org);
    char key[256];
    snprintf(key, sizeof key, "rgttl:table:%s:%llu", f->ts.org,
             (unsigned long long)rg_role_table_version(rg_cache_ref_table(r)));
    long long ttl = tr_int(&f->redis, 0, "PTTL %s", key);
    assert_true(ttl > 0 && ttl <= 1000);   /* Redis copy expires with table_ttl */
    rg_cache_ref_release(r);
    /* a change whose message is lost (no invalidate call) */
    assert_int_equal(ts_add_mapping(f->sb, &f->ts, "lost-msg"), 0);
    r = get(c, f->ts.org);
    assert_false(tr_maps(rg_cache_ref_table(r), f->ts.conn, "lost-msg"));   /* stale, < TTL */
    rg_cache_ref_release(r);
    tr_sleep_ms(1100);
    r = get(c, f->ts.org);
    assert_true(tr_maps(rg_cache_ref_table(r), f->ts.conn, "lost-msg"));    /* TTL passed */
    rg_cache_ref_release(r);
    assert_int_equal(tr_int(&f->redis, 0, "EXISTS %s", key), 0);
    rg_cache_free(c);
}

static void test_replay_first_use_then_replay_across_instances(void **st)
{
    fixture *f = *st;
    int64_t exp = rg_now() + 120;
    assert_int_equal(rg_cache_replay_check(f->a, "https://idp.example/saml", "_abc1", exp), 0);
    assert_int_equal(rg_cache_replay_check(f->b, "https://idp.example/saml", "_abc1", exp), 1);
    assert_int_equal(rg_cache_replay_check(f->a, "https://idp.example/saml", "_abc1", exp), 1);
    /* another issuer with the same id is another assertion */
    assert_int_equal(rg_cache_replay_check(f->b, "https://other.example", "_abc1", exp), 0);
    /* the key carries sha256(issuer) and lives until exp + skew */
    redisReply *rep = tr_cmd(&f->redis, 0, "KEYS %s", "rgtest:replay:*");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    assert_int_equal(strlen(rep->element[0]->str), strlen("rgtest:replay:") + 64 + 1 + 5);
    long long pttl = tr_int(&f->redis, 0, "PTTL %s", rep->element[0]->str);
    assert_true(pttl > 170000 && pttl <= 180000);   /* 120 s + 60 s skew */
    freeReplyObject(rep);
    rg_cache_stats s;
    rg_cache_stats_get(f->a, &s);
    assert_int_equal(s.replay_local, 0);
}

static void test_login_state_put_on_a_taken_on_b_once(void **st)
{
    fixture *f = *st;
    rg_error e;
    char *v = NULL;
    assert_int_equal(rg_cache_state_put(f->a, "saml:_req42", "{\"return_to\":\"/app\"}", 5000,
                                        &e), 0);
    assert_int_equal(rg_cache_state_take(f->b, "saml:_req42", &v, &e), 0);
    assert_string_equal(v, "{\"return_to\":\"/app\"}");
    free(v);
    assert_int_equal(rg_cache_state_take(f->b, "saml:_req42", &v, &e), RG_ENOTFOUND);
    assert_null(v);
    assert_int_equal(rg_cache_state_take(f->a, "saml:_req42", &v, &e), RG_ENOTFOUND);
    assert_int_equal(e.status, 404);
    /* expiry */
    assert_int_equal(rg_cache_state_put(f->a, "oidc:st", "x", 50, &e), 0);
    tr_sleep_ms(120);
    assert_int_equal(rg_cache_state_take(f->b, "oidc:st", &v, &e), RG_ENOTFOUND);
    /* binary-safe values with spaces */
    assert_int_equal(rg_cache_state_put(f->b, "k s", "a b\tc", 5000, &e), 0);
    assert_int_equal(rg_cache_state_take(f->a, "k s", &v, &e), 0);
    assert_string_equal(v, "a b\tc");
    free(v);
}

static void test_revocation_on_a_reaches_b_within_1s(void **st)
{
    fixture *f = *st;
    test_sink sink = {.lock = PTHREAD_MUTEX_INITIALIZER};
    rg_cache_set_revoke_sink(f->b, test_sink_fn, &sink);
    int64_t exp = rg_now() + 600;
    int64_t t0 = rg_mono_us();
    assert_int_equal(rg_cache_revoke_publish(f->a, "sid_01TEST", exp), 0);
    assert_true(TR_WAIT(1000, test_sink_exp(&sink, "sid_01TEST") == exp));
    assert_true(rg_mono_us() - t0 < 1000000);
    /* the key stays until exp (+ margin) for instances that join later */
    long long ttl = tr_int(&f->redis, 0, "TTL %s", "rgtest:revoked:sid_01TEST");
    assert_true(ttl > 600 && ttl <= 900);
    /* a new instance loads current revocations when its sink is set */
    rg_error e;
    rg_cache *c = rg_cache_new(&f->cfg, f->sb, &e);
    assert_non_null(c);
    test_sink sink2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    rg_cache_set_revoke_sink(c, test_sink_fn, &sink2);
    assert_true(TR_WAIT(2000, test_sink_exp(&sink2, "sid_01TEST") == exp));
    rg_cache_free(c);
    rg_cache_set_revoke_sink(f->b, NULL, NULL);
}

static void test_R30_user_revocation_on_a_reaches_b_within_1s_and_new_instances(void **st)
{
    fixture *f = *st;
    test_sink sink = {.lock = PTHREAD_MUTEX_INITIALIZER};
    rg_cache_set_revoke_user_sink(f->b, test_user_sink_fn, &sink);
    int64_t before = rg_now() + 1;
    int64_t t0 = rg_mono_us();
    assert_int_equal(rg_cache_revoke_user_publish(f->a, "user_01U", "org_01O", before,
                                                  before + 600), 0);
    assert_true(TR_WAIT(1000, test_sink_exp(&sink, "org_01O|user_01U") == before));
    assert_true(rg_mono_us() - t0 < 1000000);
    long long ttl = tr_int(&f->redis, 0, "TTL %s", "rgtest:revoked_user:org_01O:user_01U");
    assert_true(ttl > 600 && ttl <= 902);
    /* bad arguments are refused before anything is sent */
    assert_int_equal(rg_cache_revoke_user_publish(f->a, "", "org_1", before, before + 9),
                     RG_EINVAL);
    assert_int_equal(rg_cache_revoke_user_publish(f->a, "u 1", "org_1", before, before + 9),
                     RG_EINVAL);
    assert_int_equal(rg_cache_revoke_user_publish(f->a, "u1", "org:1", before, before + 9),
                     RG_EINVAL);
    /* a new instance loads current user revocations when its sink is set */
    rg_error e;
    rg_cache *c = rg_cache_new(&f->cfg, f->sb, &e);
    assert_non_null(c);
    test_sink sink2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    rg_cache_set_revoke_user_sink(c, test_user_sink_fn, &sink2);
    assert_true(TR_WAIT(2000, test_sink_exp(&sink2, "org_01O|user_01U") == before));
    /* sid revocations still arrive through the same channel, unchanged */
    test_sink sids = {.lock = PTHREAD_MUTEX_INITIALIZER};
    rg_cache_set_revoke_sink(c, test_sink_fn, &sids);
    assert_int_equal(rg_cache_revoke_publish(f->a, "sid_R30", before + 600), 0);
    assert_true(TR_WAIT(1000, test_sink_exp(&sids, "sid_R30") == before + 600));
    assert_int_equal(test_sink_exp(&sids, "org_01O|user_01U"), -1);
    rg_cache_free(c);
    rg_cache_set_revoke_user_sink(f->b, NULL, NULL);
}

static void test_threads_share_nothing_but_redis(void **st);

/* Several threads at once, each with its own connection. */
typedef struct worker_arg {
    fixture *f;
    int idx, firsts, errors;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    char id[32];
    for (int i = 0; i < 200; i++) {
        /* every id is checked by two threads: exactly one first use each */
        snprintf(id, sizeof id, "_t%d", i);
        int r = rg_cache_replay_check(w->idx % 2 ? w->f->a : w->f->b, "iss-threads", id,
                                      rg_now() + 60);
        if (r == 0)
            w->firsts++;
        else if (r != 1)
            w->errors++;
        rg_cache_ref *ref = NULL;
        rg_error e;
        if (rg_cache_table_get(w->f->a, w->f->ts.org, &ref, &e))
            w->errors++;
        rg_cache_ref_release(ref);
    }
    return NULL;
}

static void test_threads_share_nothing_but_redis(void **st)
{
    fixture *f = *st;
    pthread_t th[4];
    worker_arg args[4];
    rg_cache_stats s0, s;
    rg_cache_stats_get(f->a, &s0);
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.f = f, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    int firsts = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
        firsts += args[i].firsts;
    }
    assert_int_equal(firsts, 200);   /* 4 threads x 200 checks of 200 ids */
    rg_cache_stats_get(f->a, &s);
    /* one new connection per new thread (not one per call) */
    assert_true(s.redis_connects - s0.redis_connects >= 2);
    assert_true(s.redis_connects - s0.redis_connects <= 4);
}

int main(void)
{
    tr_block_sigpipe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R15_table_miss_store_then_redis_then_local),
        cmocka_unit_test(test_R15_change_and_invalidate_on_a_is_seen_by_b_within_1s),
        cmocka_unit_test(test_R7_environment_invalidation_drops_every_table),
        cmocka_unit_test(test_table_ttl_bounds_a_lost_invalidation),
        cmocka_unit_test(test_replay_first_use_then_replay_across_instances),
        cmocka_unit_test(test_login_state_put_on_a_taken_on_b_once),
        cmocka_unit_test(test_revocation_on_a_reaches_b_within_1s),
        cmocka_unit_test(test_R30_user_revocation_on_a_reaches_b_within_1s_and_new_instances),
        cmocka_unit_test(test_threads_share_nothing_but_redis),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
