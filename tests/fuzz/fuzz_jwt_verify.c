/* fuzz_jwt_verify.c: libFuzzer target for session JWT verification
 * (session.h, R24/R25; DESIGN.md "algorithm pinned to the key"). The keyring
 * is the fixed test keys of tests/fuzz/keys (ES256 active, RS256), loaded
 * once. The first input byte picks a mode:
 *   0 raw token: rg_session_verify must refuse it (nothing the fuzzer makes
 *     carries a valid signature: the seeds' signatures are garbage);
 *   1 payload: the rest is a payload, signed for real with one of the keys,
 *     so the claim checks after the signature are reached; accepted claims
 *     must match the JSON, a refusal must leave *out zeroed; then the cached
 *     path must agree (miss, hit) and a revoked sid must be refused;
 *   2 header: the rest is a JOSE header, signed for real over a valid
 *     payload: accepted only if alg is exactly the signing key's pinned alg,
 *     kid its kid, no crit, typ absent or JWT (no alg confusion, no none). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "rolegate/session.h"
#include "rolegate/util.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NOW  1750000000
#define SKEW 60
#define ISS  "https://gw.example"

static rg_keyring *kr;
static const rg_session_key *keys[2];    /* ES256 (active), RS256 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rg_log_open("/dev/null", RG_LOG_ERROR);
    rg_error err;
    kr = rg_session_keys_load(fuzz_keys_dir(), 0, &err);
    if (!kr) {
        fprintf(stderr, "fuzz_jwt_verify: keys: %s %s\n", err.code, err.message);
        abort();
    }
    keys[0] = rg_keyring_active(kr);
    /* the other key: found through the JWKS document */
    json_t *j = json_loads(rg_keyring_jwks_json(kr), 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "keys"), i, v) {
        const rg_session_key *c = rg_keyring_find(kr, json_string_value(json_object_get(v, "kid")));
        if (c && c != keys[0])
            keys[1] = c;
    }
    json_decref(j);
    CHECK(keys[0] && keys[1] && strcmp(rg_session_key_alg(keys[0]), rg_session_key_alg(keys[1])));
    return 0;
}

/* b64url(h) "." b64url(p) "." b64url(sig by k), malloc'd. */
static char *make_token(const rg_session_key *k, const char *h, size_t hn,
                        const char *p, size_t pn)
{
    size_t cap = rg_b64url_len(hn) + rg_b64url_len(pn) + 1024;
    char *t = malloc(cap);
    CHECK(t);
    size_t n = rg_b64url_encode(h, hn, t);
    t[n++] = '.';
    n += rg_b64url_encode(p, pn, t + n);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    rg_error err;
    CHECK(rg_session_key_sign(k, t, n, &sig, &siglen, &err) == 0);
    CHECK(rg_b64url_len(siglen) + n + 2 < cap);
    t[n++] = '.';
    rg_b64url_encode(sig, siglen, t + n);
    free(sig);
    return t;
}

static int zeroed(const rg_session_claims *c)
{
    static const rg_session_claims z;
    return memcmp(c, &z, sizeof z) == 0;
}

static void check_refusal(int rc, const rg_session_claims *c, const rg_error *err)
{
    CHECK(rc < 0);
    CHECK(zeroed(c));
    CHECK(!strncmp(err->code, "token_", 6) || !strcmp(err->code, "internal") ||
          !strcmp(err->code, "out_of_memory"));
}

static void check_string_claim(json_t *o, const char *key, const char *got)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        CHECK(got == NULL);
    else
        CHECK(json_is_string(v) && got && !strcmp(got, json_string_value(v)));
}

static void check_accepted(const rg_session_claims *c, const char *payload, size_t n,
                           const rg_session_key *k)
{
    json_t *o = json_loadb(payload, n, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(o));
    json_t *exp = json_object_get(o, "exp"), *iat = json_object_get(o, "iat");
    CHECK(json_is_integer(exp) && json_integer_value(exp) > NOW - SKEW);
    CHECK(json_is_integer(iat) && json_integer_value(iat) <= NOW + SKEW);
    CHECK(c->exp == json_integer_value(exp) && c->iat == json_integer_value(iat));
    json_t *nbf = json_object_get(o, "nbf");
    CHECK(!nbf || (json_is_integer(nbf) && json_integer_value(nbf) <= NOW + SKEW));
    CHECK(c->iss && !strcmp(c->iss, ISS));
    CHECK(c->sub && *c->sub && c->sid && *c->sid && c->org_id && *c->org_id);
    check_string_claim(o, "sub", c->sub);
    check_string_claim(o, "sid", c->sid);
    check_string_claim(o, "org_id", c->org_id);
    check_string_claim(o, "email", c->email);
    check_string_claim(o, "role", c->role);
    check_string_claim(o, "jti", c->jti);
    json_t *roles = json_object_get(o, "roles");
    CHECK(c->n_roles == (json_is_array(roles) ? json_array_size(roles) : 0));
    for (size_t i = 0; i < c->n_roles; i++)
        CHECK(!strcmp(c->roles[i], json_string_value(json_array_get(roles, i))));
    json_t *perms = json_object_get(o, "permissions");
    CHECK(c->n_permissions == (json_is_array(perms) ? json_array_size(perms) : 0));
    CHECK(c->permissions_omitted == json_is_true(json_object_get(o, "permissions_omitted")));
    CHECK(c->kid && !strcmp(c->kid, rg_session_key_kid(k)));
    CHECK(c->payload_len == n && !memcmp(c->payload, payload, n));
    json_decref(o);
}

static void mode_raw(const char *tok)
{
    rg_session_claims c;
    rg_error err;
    int rc = rg_session_verify(kr, tok, NOW, SKEW, ISS, &c, &err);
    /* nothing the fuzzer can build carries a valid signature */
    check_refusal(rc, &c, &err);
    rc = rg_session_verify(kr, tok, NOW, SKEW, NULL, &c, &err);
    check_refusal(rc, &c, &err);
}

static void mode_payload(const rg_session_key *k, const char *p, size_t pn)
{
    char hdr[256];
    int hn = snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                      rg_session_key_alg(k), rg_session_key_kid(k));
    char *tok = make_token(k, hdr, (size_t)hn, p, pn);
    rg_session_claims c;
    rg_error err;
    int rc = rg_session_verify(kr, tok, NOW, SKEW, ISS, &c, &err);
    if (getenv("RG_FUZZ_VERBOSE"))
        fprintf(stderr, "verify: rc=%d %s\n", rc, rc ? err.code : "-");
    if (rc) {
        check_refusal(rc, &c, &err);
    } else {
        check_accepted(&c, p, pn, k);
        /* the cached path: a miss that fills, then a hit with the same claims */
        rg_token_cache *cache = rg_token_cache_new(4);
        rg_revocations *revs = rg_revocations_new(SKEW);
        CHECK(cache && revs);
        for (int i = 0; i < 2; i++) {
            rg_session_claims c2;
            CHECK(rg_session_verify_cached(kr, cache, revs, tok, NOW, SKEW, ISS, &c2, &err) == 0);
            check_accepted(&c2, p, pn, k);
            rg_session_claims_clear(&c2);
        }
        rg_token_cache_stats st;
        rg_token_cache_get_stats(cache, &st);
        /* a token accepted within the skew after its exp is never cached */
        if (c.exp > NOW)
            CHECK(st.hits == 1 && st.misses == 1);
        else
            CHECK(st.hits == 0 && st.misses == 2);
        /* R25 logout: a revoked session is refused even from the cache */
        CHECK(rg_session_revoke(revs, cache, c.sid, c.exp, NOW) == 0);
        rg_session_claims c3;
        rc = rg_session_verify_cached(kr, cache, revs, tok, NOW, SKEW, ISS, &c3, &err);
        CHECK(rc < 0 && !strcmp(err.code, "token_revoked") && zeroed(&c3));
        rg_token_cache_free(cache);
        rg_revocations_free(revs);
        rg_session_claims_clear(&c);
    }
    free(tok);
}

static void mode_header(const rg_session_key *k, const char *h, size_t hn)
{
    static const char payload[] =
        "{\"iss\":\"" ISS "\",\"sub\":\"user_1\",\"sid\":\"sess_1\",\"org_id\":\"org_1\","
        "\"role\":\"admin\",\"roles\":[\"admin\"],\"permissions\":[\"a:b\"],"
        "\"iat\":1749999990,\"exp\":1750003590,\"jti\":\"j1\"}";
    char *tok = make_token(k, h, hn, payload, sizeof payload - 1);
    rg_session_claims c;
    rg_error err;
    int rc = rg_session_verify(kr, tok, NOW, SKEW, ISS, &c, &err);
    if (getenv("RG_FUZZ_VERBOSE"))
        fprintf(stderr, "verify: rc=%d %s\n", rc, rc ? err.code : "-");
    if (rc) {
        check_refusal(rc, &c, &err);
    } else {
        json_t *o = json_loadb(h, hn, JSON_REJECT_DUPLICATES, NULL);
        CHECK(json_is_object(o));
        json_t *alg = json_object_get(o, "alg"), *kid = json_object_get(o, "kid");
        json_t *typ = json_object_get(o, "typ");
        /* the alg is pinned to the key: exactly, never none/HS256/other */
        CHECK(json_is_string(alg) && !strcmp(json_string_value(alg), rg_session_key_alg(k)));
        CHECK(json_is_string(kid) && !strcmp(json_string_value(kid), rg_session_key_kid(k)));
        CHECK(!json_object_get(o, "crit"));
        CHECK(!typ || (json_is_string(typ) && !strcasecmp(json_string_value(typ), "JWT")));
        check_accepted(&c, payload, sizeof payload - 1, k);
        json_decref(o);
        rg_session_claims_clear(&c);
    }
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > RG_SESSION_TOKEN_MAX + 64)
        return 0;
    int mode = data[0] % 3;
    const rg_session_key *k = keys[data[1] & 1];
    char *s = malloc(size - 1);
    CHECK(s);
    memcpy(s, data + 2, size - 2);
    s[size - 2] = 0;
    if (mode == 0)
        mode_raw(s);
    else if (mode == 1)
        mode_payload(k, s, size - 2);
    else
        mode_header(k, s, size - 2);
    free(s);
    return 0;
}
