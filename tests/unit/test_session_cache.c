/* test_session_cache.c: the /auth hot path: the verified-token cache (a hit
 * does no signature check, never outlives exp, is bounded, rechecks kid and
 * iss), the revocation set (token_revoked, entries kept until exp + grace,
 * swept), revocation dropping cache entries, and concurrent use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "rolegate/session.h"
#include "test_tmpdir.h"
#include "rolegate/util.h"

#define NOW 1700000000LL
#define SKEW 60
#define ISS "https://sso.test"

typedef struct fx {
    char *dir;
    rg_keyring *kr;
} fx;

static int setup(void **st)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = tt_mkdtemp("session-cache");
    rg_error err = {0};
    f->kr = rg_session_keys_load(f->dir, 1, &err);
    assert_non_null(f->kr);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    rg_keyring_free(f->kr);
    tt_rm_rf(f->dir);
    free(f);
    return 0;
}

static char *token_for(const rg_keyring *kr, const char *sid, int64_t exp, const char *iss)
{
    char p[512], *tok = NULL;
    snprintf(p, sizeof p, "{\"iss\":\"%s\",\"sub\":\"user_1\",\"sid\":\"%s\",\"org_id\":\"org_1\","
             "\"roles\":[\"admin\"],\"iat\":%lld,\"exp\":%lld}", iss, sid, (long long)NOW,
             (long long)exp);
    rg_error err = {0};
    assert_int_equal(rg_session_sign(kr, p, strlen(p), &tok, &err), 0);
    return tok;
}

static int check(fx *f, rg_token_cache *c, rg_revocations *r, const char *tok, int64_t now,
                 const char *iss, rg_error *err)
{
    rg_session_claims cl;
    int rc = rg_session_verify_cached(f->kr, c, r, tok, now, SKEW, iss, &cl, err);
    if (rc == 0) {
        assert_string_equal(cl.sub, "user_1");
        assert_int_equal(cl.n_roles, 1);
        assert_string_equal(cl.roles[0], "admin");
    } else {
        assert_null(cl.data_);
    }
    rg_session_claims_clear(&cl);
    return rc;
}

static void test_cache_hit_skips_signature_check(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    char *tok = token_for(f->kr, "sid_a", NOW + 3600, ISS);
    rg_error err = {0};
    unsigned long v0 = rg_keyring_verify_count(f->kr);
    assert_int_equal(check(f, c, NULL, tok, NOW, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0 + 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(f, c, NULL, tok, NOW + i, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0 + 1);   /* no more crypto */
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.hits, 5);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.entries, 1);
    /* without a cache every call verifies */
    assert_int_equal(check(f, NULL, NULL, tok, NOW, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0 + 2);
    /* a tampered token is a different key: never a hit */
    tok[strlen(tok) - 10] ^= 1;
    assert_int_not_equal(check(f, c, NULL, tok, NOW, ISS, &err), 0);
    rg_token_cache_free(c);
    free(tok);
}

/* The cache is found by a hash of the token but matches the whole token:
 * its prefix, the token with one byte more, and the token with its last
 * byte changed (a different signature) are no hit, and each is a miss
 * without disturbing the entry. */
static void test_cache_matches_the_whole_token(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    char *tok = token_for(f->kr, "sid_w", NOW + 3600, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, NULL, tok, NOW, ISS, &err), 0);   /* verified, cached */
    size_t n = strlen(tok);
    char *longer = malloc(n + 2);
    memcpy(longer, tok, n);
    longer[n] = 'A';
    longer[n + 1] = 0;
    rg_session_claims cl;
    assert_int_equal(rg_token_cache_get(c, tok, n - 1, NOW, &cl), 0);
    assert_null(cl.data_);
    assert_int_equal(rg_token_cache_get(c, longer, n + 1, NOW, &cl), 0);
    assert_null(cl.data_);
    char *changed = strdup(tok);
    changed[n - 1] = changed[n - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(rg_token_cache_get(c, changed, n, NOW, &cl), 0);
    assert_null(cl.data_);
    assert_int_equal(rg_token_cache_get(c, tok, n, NOW, &cl), 1);
    assert_string_equal(cl.sid, "sid_w");
    rg_session_claims_clear(&cl);
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 4);
    assert_int_equal(s.entries, 1);
    rg_token_cache_free(c);
    free(changed);
    free(longer);
    free(tok);
}

static void test_cache_entry_never_outlives_exp(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    char *tok = token_for(f->kr, "sid_b", NOW + 10, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, NULL, tok, NOW, ISS, &err), 0);
    unsigned long v0 = rg_keyring_verify_count(f->kr);
    assert_int_equal(check(f, c, NULL, tok, NOW + 9, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0);          /* hit */
    rg_session_claims cl;
    assert_int_equal(rg_token_cache_get(c, tok, strlen(tok), NOW + 10, &cl), 0);
    assert_null(cl.data_);
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 0);                                /* dropped at exp */
    /* past exp but within the skew: verified again, not cached again */
    assert_int_equal(check(f, c, NULL, tok, NOW + 10, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0 + 1);
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 0);
    assert_int_not_equal(check(f, c, NULL, tok, NOW + 10 + SKEW, ISS, &err), 0);
    assert_string_equal(err.code, "token_expired");
    rg_token_cache_free(c);
    free(tok);
}

static void test_revoked_sid_is_refused_and_dropped_from_cache(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    rg_revocations *r = rg_revocations_new(SKEW);
    char *tok = token_for(f->kr, "sid_c", NOW + 3600, ISS);
    char *other = token_for(f->kr, "sid_d", NOW + 3600, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, r, tok, NOW, ISS, &err), 0);
    assert_int_equal(check(f, c, r, other, NOW, ISS, &err), 0);
    /* a claims reference held by a request survives the entry's removal */
    rg_session_claims held;
    assert_int_equal(rg_token_cache_get(c, tok, strlen(tok), NOW, &held), 1);
    assert_int_equal(rg_session_revoke(r, c, "sid_c", NOW + 3600, NOW), 0);
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 1);                  /* only sid_d left */
    assert_string_equal(held.sid, "sid_c");
    rg_session_claims_clear(&held);
    assert_int_equal(check(f, c, r, tok, NOW + 1, ISS, &err), RG_EUNAUTH);
    assert_string_equal(err.code, "token_revoked");
    assert_int_equal(err.status, 401);
    assert_int_equal(check(f, c, r, other, NOW + 1, ISS, &err), 0);
    /* added from outside (e.g. another instance via Redis) with the entry
     * still cached: the hit is refused and the entry dropped */
    assert_int_equal(rg_revocations_add(r, "sid_d", NOW + 3600, NOW), 0);
    assert_int_equal(check(f, c, r, other, NOW + 2, ISS, &err), RG_EUNAUTH);
    assert_string_equal(err.code, "token_revoked");
    rg_token_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 0);
    rg_revocations_free(r);
    rg_token_cache_free(c);
    free(tok);
    free(other);
}

/* R30: every session of (sub, org) issued before T, cache hits included */
static void test_R30_user_revocation_refuses_older_tokens_of_that_org_only(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    rg_revocations *r = rg_revocations_new(SKEW);
    char *tok = token_for(f->kr, "sid_u1", NOW + 3600, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, r, tok, NOW, ISS, &err), 0);   /* cached now */
    rg_session_claims cl;
    assert_int_equal(rg_token_cache_get(c, tok, strlen(tok), NOW, &cl), 1);
    char sub[64], org[64];
    snprintf(sub, sizeof sub, "%s", cl.sub);
    snprintf(org, sizeof org, "%s", cl.org_id);
    int64_t iat = cl.iat;
    rg_session_claims_clear(&cl);
    /* another organization or another user: untouched */
    assert_int_equal(rg_session_revoke_user(r, sub, "org_other", iat + 1, iat + 3600, NOW), 0);
    assert_int_equal(rg_session_revoke_user(r, "user_other", org, iat + 1, iat + 3600, NOW), 0);
    assert_int_equal(check(f, c, r, tok, NOW + 1, ISS, &err), 0);
    /* issued at iat: a revocation "before iat" keeps it, "before iat+1" refuses */
    assert_int_equal(rg_session_revoke_user(r, sub, org, iat, iat + 3600, NOW), 0);
    assert_int_equal(check(f, c, r, tok, NOW + 1, ISS, &err), 0);
    assert_int_equal(rg_revocations_user_revoked(r, sub, org, iat, NOW), 0);
    assert_int_equal(rg_session_revoke_user(r, sub, org, iat + 1, iat + 3600, NOW), 0);
    assert_int_equal(rg_revocations_user_revoked(r, sub, org, iat, NOW), 1);
    assert_int_equal(rg_revocations_user_revoked(r, sub, org, iat + 1, NOW), 0);
    assert_int_equal(check(f, c, r, tok, NOW + 1, ISS, &err), RG_EUNAUTH);
    assert_string_equal(err.code, "token_revoked");
    assert_int_equal(err.status, 401);
    /* kept until `until` + grace, then gone */
    assert_int_equal(rg_revocations_user_revoked(r, sub, org, iat, iat + 3600 + SKEW - 1), 1);
    assert_int_equal(rg_revocations_user_revoked(r, sub, org, iat, iat + 3600 + SKEW), 0);
    /* bad arguments */
    assert_int_equal(rg_revocations_add_user(r, "", org, iat, iat + 9, NOW), RG_EINVAL);
    assert_int_equal(rg_revocations_add_user(r, sub, "", iat, iat + 9, NOW), RG_EINVAL);
    assert_int_equal(rg_revocations_add_user(r, sub, org, 0, iat + 9, NOW), RG_EINVAL);
    /* a sid equal to nothing of the user keys: sid checks unaffected */
    assert_int_equal(rg_revocations_is_revoked(r, org, NOW), 0);
    rg_revocations_free(r);
    rg_token_cache_free(c);
    free(tok);
}

static void test_revocation_kept_until_exp_plus_grace_then_swept(void **st)
{
    (void)st;
    rg_revocations *r = rg_revocations_new(SKEW);
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW), 0);
    assert_int_equal(rg_revocations_add(r, "s1", NOW + 100, NOW), 0);
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW), 1);
    /* a token with exp NOW+100 is accepted until NOW+100+SKEW: so is the entry */
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW + 100 + SKEW - 1), 1);
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW + 100 + SKEW), 0);
    assert_int_equal(rg_revocations_is_revoked(r, "s2", NOW), 0);
    /* already dead: not stored */
    assert_int_equal(rg_revocations_add(r, "old", NOW - SKEW - 1, NOW), 0);
    assert_int_equal(rg_revocations_count(r), 1);
    /* re-adding extends, never shortens */
    assert_int_equal(rg_revocations_add(r, "s1", NOW + 10, NOW), 0);
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW + 150), 1);
    /* many short-lived entries are swept once they expire */
    char sid[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(sid, sizeof sid, "short_%d", i);
        assert_int_equal(rg_revocations_add(r, sid, NOW + 5, NOW), 0);
    }
    assert_int_equal(rg_revocations_is_revoked(r, "short_2999", NOW), 1);
    assert_int_equal(rg_revocations_is_revoked(r, "short_17", NOW), 1);
    size_t before = rg_revocations_count(r);
    assert_true(before > 2000);
    for (int i = 0; i < 3000; i++) {
        snprintf(sid, sizeof sid, "late_%d", i);
        assert_int_equal(rg_revocations_add(r, sid, NOW + 10000, NOW + 1000), 0);
    }
    assert_true(rg_revocations_count(r) < before + 3000);
    assert_int_equal(rg_revocations_is_revoked(r, "short_17", NOW + 1000), 0);
    assert_int_equal(rg_revocations_is_revoked(r, "late_2999", NOW + 1000), 1);
    assert_int_equal(rg_revocations_is_revoked(r, "s1", NOW + 1000), 0);
    rg_revocations_free(r);
    rg_revocations_free(NULL);
}

static void test_cache_is_bounded_lru(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(32);   /* 2 per shard */
    char *first = token_for(f->kr, "sid_first", NOW + 3600, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, NULL, first, NOW, ISS, &err), 0);
    for (int i = 0; i < 200; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "sid_%d", i);
        char *t = token_for(f->kr, sid, NOW + 3600, ISS);
        assert_int_equal(check(f, c, NULL, t, NOW, ISS, &err), 0);
        free(t);
    }
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_true(s.entries <= 32);
    assert_true(s.entries >= 16);
    assert_int_equal(s.inserts, 201);
    assert_int_equal(s.evictions, 201 - s.entries);
    /* the first one was evicted long ago: it costs a verification again */
    unsigned long v0 = rg_keyring_verify_count(f->kr);
    assert_int_equal(check(f, c, NULL, first, NOW, ISS, &err), 0);
    assert_int_equal(rg_keyring_verify_count(f->kr), v0 + 1);
    rg_token_cache_free(c);
    rg_token_cache_free(NULL);
    free(first);
}

static void test_cache_hit_rechecks_key_and_issuer(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(0);
    char *tok = token_for(f->kr, "sid_e", NOW + 3600, ISS);
    rg_error err = {0};
    assert_int_equal(check(f, c, NULL, tok, NOW, ISS, &err), 0);
    assert_int_equal(check(f, c, NULL, tok, NOW, "https://other.test", &err), RG_EUNAUTH);
    assert_string_equal(err.code, "token_wrong_issuer");
    /* key rotated out: a new keyring without the signing key refuses the
     * cached token at once */
    char *d2 = tt_mkdtemp("session-cache2");
    rg_keyring *kr2 = rg_session_keys_load(d2, 1, &err);
    assert_non_null(kr2);
    rg_session_claims cl;
    assert_int_not_equal(rg_session_verify_cached(kr2, c, NULL, tok, NOW, SKEW, ISS, &cl, &err), 0);
    assert_string_equal(err.code, "token_unknown_kid");
    rg_keyring_free(kr2);
    tt_rm_rf(d2);
    /* oversized: refused before the cache is even hashed */
    char *big = malloc(RG_SESSION_TOKEN_MAX + 10);
    memset(big, 'x', RG_SESSION_TOKEN_MAX + 9);
    big[RG_SESSION_TOKEN_MAX + 9] = 0;
    rg_token_cache_stats s0, s1;
    rg_token_cache_get_stats(c, &s0);
    assert_int_equal(check(f, c, NULL, big, NOW, ISS, &err), RG_EUNAUTH);
    assert_string_equal(err.code, "token_too_large");
    rg_token_cache_get_stats(c, &s1);
    assert_int_equal(s1.misses, s0.misses);
    free(big);
    rg_token_cache_free(c);
    free(tok);
}

typedef struct worker {
    fx *f;
    rg_token_cache *c;
    rg_revocations *r;
    char **toks;
    int ntoks, ok, revoked, seed;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 3000; i++) {
        int k = (i * 7 + w->seed) % w->ntoks;
        rg_session_claims cl;
        rg_error err = {0};
        int rc = rg_session_verify_cached(w->f->kr, w->c, w->r, w->toks[k], NOW, SKEW, ISS,
                                          &cl, &err);
        if (rc == 0 && strcmp(cl.org_id, "org_1") == 0)
            w->ok++;
        else if (rc != 0 && strcmp(err.code, "token_revoked") == 0)
            w->revoked++;
        rg_session_claims_clear(&cl);
        if (w->seed == 0 && i == 1500)
            rg_session_revoke(w->r, w->c, "sid_t0", NOW + 3600, NOW);
    }
    return NULL;
}

static void test_cache_and_revocations_under_threads(void **st)
{
    fx *f = *st;
    rg_token_cache *c = rg_token_cache_new(16);   /* small: constant eviction */
    rg_revocations *r = rg_revocations_new(SKEW);
    enum { NT = 40, NW = 4 };
    char *toks[NT];
    for (int i = 0; i < NT; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "sid_t%d", i);
        toks[i] = token_for(f->kr, sid, NOW + 3600, ISS);
    }
    pthread_t th[NW];
    worker w[NW];
    for (int i = 0; i < NW; i++) {
        w[i] = (worker){.f = f, .c = c, .r = r, .toks = toks, .ntoks = NT, .seed = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    int ok = 0, revoked = 0;
    for (int i = 0; i < NW; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        revoked += w[i].revoked;
    }
    assert_int_equal(ok + revoked, NW * 3000);   /* nothing else failed */
    assert_true(revoked > 0);
    rg_token_cache_stats s;
    rg_token_cache_get_stats(c, &s);
    assert_true(s.entries <= 16);
    assert_true(s.hits > 0);
    for (int i = 0; i < NT; i++)
        free(toks[i]);
    rg_revocations_free(r);
    rg_token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_hit_skips_signature_check),
        cmocka_unit_test(test_cache_matches_the_whole_token),
        cmocka_unit_test(test_cache_entry_never_outlives_exp),
        cmocka_unit_test(test_revoked_sid_is_refused_and_dropped_from_cache),
        cmocka_unit_test(test_R30_user_revocation_refuses_older_tokens_of_that_org_only),
        cmocka_unit_test(test_revocation_kept_until_exp_plus_grace_then_swept),
        cmocka_unit_test(test_cache_is_bounded_lru),
        cmocka_unit_test(test_cache_hit_rechecks_key_and_issuer),
        cmocka_unit_test(test_cache_and_revocations_under_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
