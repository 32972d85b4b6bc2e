/* test_cache_replay.c: issue 11 item 12, a replay cache that cannot be held
 * hostage. Each connection has its own quota of live replay entries, in
 * process and in a real redis-server (counted across two instances), so one
 * connection at its quota never blocks another's logins, and replays are
 * still caught at the quota; a replay entry never lives longer than
 * saml.max_assertion_lifetime + clock_skew (an assertion "valid for ten
 * years" would otherwise hold its slot for ten years). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "test_cache_util.h"

#define ISS "https://idp.quota.test"

static int check(rg_cache *c, const char *conn, const char *id, int64_t exp)
{
    rg_cache_replay_scope s = {.cache = c, .connection_id = conn};
    return rg_cache_replay_check_scoped(&s, ISS, id, exp);
}

/* conn A fills its quota of 5 (over a and b, two instances if given);
 * conn B's logins go on; A's replays are still replays. */
static void quota_holds(rg_cache *a, rg_cache *b)
{
    int64_t exp = rg_now() + 300;
    char id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "_A%d", i);
        assert_int_equal(check(i % 2 ? b : a, "conn_A", id, exp), 0);
    }
    assert_int_equal(check(a, "conn_A", "_A5", exp), 2);   /* A's share is full */
    assert_int_equal(check(b, "conn_A", "_A6", exp), 2);
    assert_int_equal(check(a, "conn_A", "_A0", exp), 1);   /* still a replay */
    for (int i = 0; i < 5; i++) {                          /* B is not blocked */
        snprintf(id, sizeof id, "_B%d", i);
        assert_int_equal(check(i % 2 ? a : b, "conn_B", id, exp), 0);
    }
    assert_int_equal(check(b, "conn_B", "_B5", exp), 2);
    assert_int_equal(check(a, "conn_C", "_A5", exp), 0);   /* per connection */
}

static void test_issue11_item12_quota_per_connection_in_process(void **st)
{
    (void)st;
    rg_config cfg;
    tr_config(&cfg, NULL, NULL, 0);
    cfg.saml.replay_quota = 5;
    rg_error e;
    rg_cache *c = rg_cache_new(&cfg, NULL, &e);
    assert_non_null(c);
    quota_holds(c, c);
    /* expired entries give the share back (reclaimed at most once a second) */
    assert_int_equal(check(c, "conn_D", "_D0", rg_now() - 120), 0);   /* lives 1 s */
    assert_int_equal(check(c, "conn_D", "_D1", rg_now() - 120), 0);
    for (int i = 2; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "_D%d", i);
        assert_int_equal(check(c, "conn_D", id, rg_now() + 300), 0);
    }
    assert_int_equal(check(c, "conn_D", "_D5", rg_now() + 300), 2);
    tr_sleep_ms(1300);
    assert_int_equal(check(c, "conn_D", "_D5", rg_now() + 300), 0);
    rg_cache_free(c);
}

/* A cache over the running redis r (database db), connected. */
static rg_cache *redis_cache(const test_redis *r, int db, rg_config *cfg)
{
    rg_error e;
    tr_config(cfg, r, NULL, db);
    cfg->saml.replay_quota = 5;
    rg_cache *c = rg_cache_new(cfg, NULL, &e);
    assert_non_null(c);
    assert_true(TR_WAIT(3000, rg_cache_redis_up(c)));
    return c;
}

static void test_issue11_item12_quota_per_connection_in_redis(void **st)
{
    (void)st;
    test_redis r = {0};
    assert_int_equal(tr_start(&r), 0);
    rg_config cfg;
    rg_cache *a = redis_cache(&r, 3, &cfg), *b = redis_cache(&r, 3, &cfg);
    quota_holds(a, b);
    /* it was Redis that counted: nothing went to the in-process maps */
    rg_cache_stats s;
    rg_cache_stats_get(a, &s);
    assert_int_equal(s.replay_local, 0);
    rg_cache_free(a);
    rg_cache_free(b);
    tr_kill(&r);
}

static void test_issue11_item12_entry_ttl_capped(void **st)
{
    (void)st;
    test_redis r = {0};
    assert_int_equal(tr_start(&r), 0);
    rg_config cfg;
    rg_cache *c = redis_cache(&r, 4, &cfg);
    int64_t ten_years = rg_now() + 10LL * 365 * 86400;
    assert_int_equal(check(c, "conn_T", "_ten_years", ten_years), 0);
    assert_int_equal(rg_cache_replay_check(c, ISS, "_unscoped", ten_years), 0);
    /* the key: <prefix>replay:<sha256(issuer)>:<id> */
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(ISS, strlen(ISS), md, &n, EVP_sha256(), NULL), 1);
    char key[200];
    int o = snprintf(key, sizeof key, "rgtest:replay:");
    for (int i = 0; i < 32; i++)
        o += snprintf(key + o, sizeof key - (size_t)o, "%02x", md[i]);
    char k1[256], k2[256];
    snprintf(k1, sizeof k1, "%s:_ten_years", key);
    snprintf(k2, sizeof k2, "%s:_unscoped", key);
    long long cap = (cfg.saml.max_assertion_lifetime + cfg.saml.clock_skew) * 1000;
    for (int i = 0; i < 2; i++) {
        long long ttl = tr_int(&r, 4, "PTTL %s", i ? k2 : k1);
        assert_true(ttl > cap - 10000 && ttl <= cap);   /* not ten years */
    }
    rg_cache_free(c);
    tr_kill(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue11_item12_quota_per_connection_in_process),
        cmocka_unit_test(test_issue11_item12_quota_per_connection_in_redis),
        cmocka_unit_test(test_issue11_item12_entry_ttl_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
