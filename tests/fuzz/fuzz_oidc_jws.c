/* fuzz_oidc_jws.c: libFuzzer target for the OIDC JOSE code (oidc.h:
 * rg_oidc_keyset_*, rg_oidc_jws_*): JWKS parsing and ID-token JWS parsing and
 * verification. Byte 0 picks the mode, byte 1 the allowed-alg list:
 *   0 raw: the rest is "<JWKS JSON>\0<compact JWS>"; both parsed, the JWS
 *     verified against the parsed keys (or none). Must never verify: nothing
 *     the fuzzer builds holds a valid signature or MAC.
 *   1 header: the rest is a JOSE header signed for real (over a fixed payload)
 *     with the fixed test keys of tests/fuzz/keys (ES256 P-256 / RS256 RSA),
 *     verified against their JWKS (with or without the JWK "alg" member).
 *     Accepted only if the header alg is exactly the alg the signature was
 *     made with and it is allowed (no alg confusion: ES384 on P-256, PS256 for
 *     a PKCS#1 signature, HS256 keyed with the public key, none).
 *   2 hmac: the header is MACed with HMAC-SHA256 keyed either with the
 *     client secret or with the JWKS text (the classic confusion attack);
 *     accepted only for alg HS256, allowed, keyed with the real secret. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "rolegate/oidc.h"
#include "rolegate/session.h"
#include "rolegate/util.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define SECRET "client-secret-0123456789"

static rg_keyring *kr;
static const rg_session_key *keys[2];
static rg_oidc_keyset *ks_alg, *ks_noalg;  /* the keys' JWKS with / without "alg" */
static char *jwks_text;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rg_log_open("/dev/null", RG_LOG_ERROR);
    rg_error err;
    kr = rg_session_keys_load(fuzz_keys_dir(), 0, &err);
    CHECK(kr);
    jwks_text = strdup(rg_keyring_jwks_json(kr));
    json_t *j = json_loads(jwks_text, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "keys"), i, v) {
        if (i < 2)
            keys[i] = rg_keyring_find(kr, json_string_value(json_object_get(v, "kid")));
    }
    CHECK(keys[0] && keys[1]);
    ks_alg = rg_oidc_keyset_parse(jwks_text, strlen(jwks_text), &err);
    json_array_foreach(json_object_get(j, "keys"), i, v)
        json_object_del(v, "alg");
    char *noalg = json_dumps(j, JSON_COMPACT);
    ks_noalg = rg_oidc_keyset_parse(noalg, strlen(noalg), &err);
    free(noalg);
    json_decref(j);
    CHECK(ks_alg && ks_noalg && rg_oidc_keyset_size(ks_alg) == 2 &&
          rg_oidc_keyset_size(ks_noalg) == 2);
    return 0;
}

static const char *const ALG_NAMES[8] = {"RS256", "PS256", "ES256", "ES384",
                                         "HS256", "RS384", "PS384", "HS512"};

/* The allowed-alg list picked by the bits of b (never empty: ES256 default). */
static unsigned pick_mask(uint8_t b, char *list, size_t sz)
{
    list[0] = 0;
    for (int i = 0; i < 8; i++)
        if (b & (1u << i)) {
            strncat(list, ALG_NAMES[i], sz - strlen(list) - 2);
            strcat(list, " ");
        }
    if (!list[0])
        snprintf(list, sz, "ES256");
    unsigned mask = 0;
    rg_error err;
    CHECK(rg_oidc_algs_parse(list, &mask, &err) == 0);
    return mask;
}

static int in_list(const char *list, const char *alg)
{
    char w[16];
    snprintf(w, sizeof w, "%s ", alg);
    return strstr(list, w) != NULL || !strcmp(list, alg);
}

static const char PAYLOAD[] = "{\"iss\":\"https://idp.example\",\"sub\":\"u1\","
                              "\"aud\":\"client\",\"exp\":1750003590,\"iat\":1749999990}";

/* b64url(h).b64url(PAYLOAD), malloc'd with room for a signature. */
static char *signing_input(const char *h, size_t hn, size_t *n)
{
    size_t cap = rg_b64url_len(hn) + sizeof PAYLOAD * 2 + 1200;
    char *t = malloc(cap);
    CHECK(t);
    *n = rg_b64url_encode(h, hn, t);
    t[(*n)++] = '.';
    *n += rg_b64url_encode(PAYLOAD, sizeof PAYLOAD - 1, t + *n);
    return t;
}

static void mode_raw(const char *jwks, size_t jn, const char *tok, unsigned mask)
{
    rg_error err;
    rg_oidc_keyset *ks = rg_oidc_keyset_parse(jwks, jn, &err);
    if (ks)
        CHECK(rg_oidc_keyset_size(ks) >= 1);
    rg_oidc_jws *j = NULL;
    if (rg_oidc_jws_parse(tok, &j, &err) == 0) {
        CHECK(j && rg_oidc_jws_alg(j));
        size_t pl = 0;
        const char *p = rg_oidc_jws_payload(j, &pl);
        CHECK(p && pl > 0 && p[pl] == 0);
        if (ks && rg_oidc_jws_kid(j))
            (void)rg_oidc_keyset_has_kid(ks, rg_oidc_jws_kid(j));
        CHECK(rg_oidc_jws_verify(j, ks, mask, NULL, &err) != 0);
        CHECK(rg_oidc_jws_verify(j, ks, mask, SECRET, &err) != 0);
        CHECK(rg_oidc_jws_verify(j, ks_alg, mask, SECRET, &err) != 0);
        rg_oidc_jws_free(j);
    } else {
        CHECK(j == NULL && !strcmp(err.code, "oidc_id_token_malformed"));
    }
    rg_oidc_keyset_free(ks);
}

static void verify_signed(const char *tok, const char *h, size_t hn, unsigned mask,
                          const char *list, const char *signed_alg, int use_noalg,
                          const char *secret)
{
    rg_error err;
    rg_oidc_jws *j = NULL;
    if (rg_oidc_jws_parse(tok, &j, &err) != 0)
        return;
    int rc = rg_oidc_jws_verify(j, use_noalg ? ks_noalg : ks_alg, mask, secret, &err);
    if (rc == 0) {
        json_t *o = json_loadb(h, hn, 0, NULL);
        json_t *alg = json_object_get(o, "alg");
        /* accepted: the header alg is what signed it, and it is allowed */
        CHECK(json_is_string(alg) && !strcmp(json_string_value(alg), signed_alg));
        CHECK(in_list(list, signed_alg));
        CHECK(!json_object_get(o, "crit"));
        json_decref(o);
    } else {
        CHECK(err.status == 401 && !strncmp(err.code, "oidc_", 5));
    }
    rg_oidc_jws_free(j);
}

static void mode_header(const rg_session_key *k, const char *h, size_t hn, unsigned mask,
                        const char *list, int use_noalg)
{
    size_t n;
    char *t = signing_input(h, hn, &n);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    rg_error err;
    CHECK(rg_session_key_sign(k, t, n, &sig, &siglen, &err) == 0);
    t[n++] = '.';
    rg_b64url_encode(sig, siglen, t + n);
    free(sig);
    verify_signed(t, h, hn, mask, list, rg_session_key_alg(k), use_noalg, NULL);
    verify_signed(t, h, hn, mask, list, rg_session_key_alg(k), use_noalg, SECRET);
    free(t);
}

static void mode_hmac(int key_is_jwks, const char *h, size_t hn, unsigned mask,
                      const char *list, int give_secret)
{
    size_t n;
    char *t = signing_input(h, hn, &n);
    const char *key = key_is_jwks ? jwks_text : SECRET;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    CHECK(HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)t, n, mac, &maclen));
    t[n++] = '.';
    rg_b64url_encode(mac, maclen, t + n);
    const char *secret = give_secret ? SECRET : NULL;
    rg_error err;
    rg_oidc_jws *j = NULL;
    if (rg_oidc_jws_parse(t, &j, &err) == 0) {
        int rc = rg_oidc_jws_verify(j, ks_alg, mask, secret, &err);
        if (rc == 0) {
            json_t *o = json_loadb(h, hn, 0, NULL);
            json_t *alg = json_object_get(o, "alg");
            CHECK(json_is_string(alg) && !strcmp(json_string_value(alg), "HS256"));
            CHECK(in_list(list, "HS256") && secret && !key_is_jwks);
            json_decref(o);
        }
        rg_oidc_jws_free(j);
    }
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 70000)
        return 0;
    uint8_t mode = data[0];
    char list[128];
    unsigned mask = pick_mask(data[1], list, sizeof list);
    size_t n = size - 2;
    char *s = malloc(n + 1);
    CHECK(s);
    memcpy(s, data + 2, n);
    s[n] = 0;
    switch (mode % 3) {
    case 0: {
        char *tok = memchr(s, 0, n);
        size_t jn = tok ? (size_t)(tok - s) : n;
        mode_raw(s, jn, tok ? tok + 1 : "", mask);
        break;
    }
    case 1:
        mode_header(keys[(mode >> 2) & 1], s, n, mask, list, (mode >> 3) & 1);
        break;
    default:
        mode_hmac((mode >> 2) & 1, s, n, mask, list, (mode >> 3) & 1);
        break;
    }
    free(s);
    return 0;
}
