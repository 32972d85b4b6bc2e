/* jose.c: JWKS → EVP_PKEY (RSA, EC P-256/P-384) and compact JWS verification
 * with OpenSSL EVP directly. libjwt is not used: it takes the alg from the
 * token header (HS256-with-the-public-key confusion, LIBRARIES.md §3) and
 * re-parses a PEM per call; here the alg is pinned to an allow-list AND to
 * the key's type, and each key is built once per JWKS fetch. Never "none". */
#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include "rolegate/oidc.h"
#include "rolegate/util.h"

#define JWS_MAX_LEN   (64 * 1024)
#define JWKS_MAX_KEYS 64
#define RSA_MIN_BITS  2048

enum family { FAM_RS, FAM_PS, FAM_ES, FAM_HS };
enum kty { KTY_RSA = 1, KTY_EC = 2 };

typedef struct alg_info {
    const char *name;
    enum family fam;
    int md_bits;     /* 256, 384, 512 */
    int ec_bits;     /* ES: coordinate size in bits (P-256 → 256) */
} alg_info;

static const alg_info ALGS[] = {
    {"RS256", FAM_RS, 256, 0}, {"RS384", FAM_RS, 384, 0}, {"RS512", FAM_RS, 512, 0},
    {"PS256", FAM_PS, 256, 0}, {"PS384", FAM_PS, 384, 0}, {"PS512", FAM_PS, 512, 0},
    {"ES256", FAM_ES, 256, 256}, {"ES384", FAM_ES, 384, 384},
    {"HS256", FAM_HS, 256, 0}, {"HS384", FAM_HS, 384, 0}, {"HS512", FAM_HS, 512, 0},
};
#define N_ALGS (sizeof ALGS / sizeof *ALGS)

static int alg_index(const char *name)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (name && strcmp(ALGS[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const EVP_MD *alg_md(const alg_info *a)
{
    return a->md_bits == 256 ? EVP_sha256() : a->md_bits == 384 ? EVP_sha384() : EVP_sha512();
}

int rg_oidc_algs_parse(const char *list, unsigned *mask_out, rg_error *err)
{
    if (!list || !*list)
        list = "RS256 ES256 PS256";
    unsigned mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ,");
        char name[16];
        if (n >= sizeof name)
            return rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "allowed_algs",
                                "unknown algorithm in allowed_algs");
        memcpy(name, p, n);
        name[n] = 0;
        int i = alg_index(name);
        if (i < 0) /* "none" lands here too: it is never allowed */
            return rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "allowed_algs",
                                "algorithm %s is not allowed", name);
        mask |= 1u << i;
        p += n;
    }
    if (!mask)
        return rg_error_set(err, RG_EINTERNAL, "oidc_config_invalid", "allowed_algs",
                            "allowed_algs is empty");
    *mask_out = mask;
    return RG_OK;
}

/* ---- keys -------------------------------------------------------------- */

typedef struct jwk_key {
    char *kid;        /* NULL when the JWK has none */
    enum kty kty;
    int ec_bits;      /* EC: 256 or 384 */
    int alg;          /* index in ALGS when the JWK names an alg, else -1 */
    EVP_PKEY *pk;
} jwk_key;

struct rg_oidc_keyset {
    atomic_int refs;
    size_t n;
    jwk_key keys[];
};

/* Base64url member of a JWK into a malloc'd buffer; NULL if absent/bad. */
static unsigned char *b64_member(json_t *o, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, name));
    if (!s)
        return NULL;
    size_t sl = strlen(s);
    unsigned char *out = malloc(sl * 3 / 4 + 3);
    if (!out)
        return NULL;
    long n = rg_b64url_decode(s, sl, out);
    if (n <= 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
            pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *rsa_from_jwk(json_t *o, const char **why)
{
    size_t nl = 0, el = 0;
    unsigned char *n = b64_member(o, "n", &nl), *e = b64_member(o, "e", &el);
    EVP_PKEY *pk = NULL;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    *why = "bad n or e";
    if (!n || !e || el > 8)
        goto out;
    bn = BN_bin2bn(n, (int)nl, NULL);
    be = BN_bin2bn(e, (int)el, NULL);
    if (!bn || !be)
        goto out;
    if (BN_num_bits(bn) < RSA_MIN_BITS) {
        *why = "rsa key under 2048 bits";
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    pk = pkey_fromdata("RSA", bld);
    if (!pk)
        *why = "openssl refused the rsa key";
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pk;
}

static EVP_PKEY *ec_from_jwk(json_t *o, int *bits_out, const char **why)
{
    const char *crv = json_string_value(json_object_get(o, "crv"));
    int bits = crv && strcmp(crv, "P-256") == 0 ? 256 : crv && strcmp(crv, "P-384") == 0 ? 384 : 0;
    if (!bits) {
        *why = "unsupported curve (only P-256, P-384)";
        return NULL;
    }
    size_t xl = 0, yl = 0, cl = (size_t)bits / 8;
    unsigned char *x = b64_member(o, "x", &xl), *y = b64_member(o, "y", &yl);
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    unsigned char pt[1 + 2 * 48];
    *why = "bad x or y";
    if (!x || !y || xl != cl || yl != cl)
        goto out;
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, x, cl);
    memcpy(pt + 1 + cl, y, cl);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * cl))
        goto out;
    /* fromdata decodes the point and so refuses one that is not on the curve */
    pk = pkey_fromdata("EC", bld);
    if (!pk)
        *why = "point not on curve";
    *bits_out = bits;
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pk;
}

static int alg_fits(const alg_info *a, enum kty kty, int ec_bits)
{
    switch (a->fam) {
    case FAM_RS: case FAM_PS: return kty == KTY_RSA;
    case FAM_ES: return kty == KTY_EC && ec_bits == a->ec_bits;
    case FAM_HS: return 0;
    }
    return 0;
}

static void log_skip(size_t i, const char *kid, const char *why)
{
    char q[80];
    rg_log(RG_LOG_WARN, "event=oidc_jwk_skipped index=%zu kid=%s reason=\"%s\"", i,
           rg_log_quote(q, sizeof q, kid ? kid : "-"), why);
}

rg_oidc_keyset *rg_oidc_keyset_parse(const char *json, size_t len, rg_error *err)
{
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        rg_error_set(err, RG_EUPSTREAM, "oidc_discovery_failed", "jwks_uri",
                     "JWKS is not a JSON object with a keys array");
        return NULL;
    }
    size_t total = json_array_size(keys);
    if (total > JWKS_MAX_KEYS)
        total = JWKS_MAX_KEYS;
    rg_oidc_keyset *ks = calloc(1, sizeof *ks + total * sizeof(jwk_key));
    if (!ks) {
        json_decref(doc);
        rg_error_oom(err);
        return NULL;
    }
    atomic_init(&ks->refs, 1);
    for (size_t i = 0; i < total; i++) {
        json_t *o = json_array_get(keys, i);
        const char *kid = json_string_value(json_object_get(o, "kid"));
        const char *kty = json_string_value(json_object_get(o, "kty"));
        const char *use = json_string_value(json_object_get(o, "use"));
        const char *alg = json_string_value(json_object_get(o, "alg"));
        const char *why = NULL;
        jwk_key k = {.alg = -1};
        if (!json_is_object(o) || !kty) {
            log_skip(i, kid, "not a JWK");
            continue;
        }
        if (use && strcmp(use, "sig") != 0) {
            log_skip(i, kid, "use is not sig");
            continue;
        }
        if (json_object_get(o, "kid") && !kid) {
            log_skip(i, NULL, "kid is not a string");
            continue;
        }
        if (alg && (k.alg = alg_index(alg)) < 0) {
            log_skip(i, kid, "unknown alg");
            continue;
        }
        if (strcmp(kty, "RSA") == 0) {
            k.kty = KTY_RSA;
            k.pk = rsa_from_jwk(o, &why);
        } else if (strcmp(kty, "EC") == 0) {
            k.kty = KTY_EC;
            k.pk = ec_from_jwk(o, &k.ec_bits, &why);
        } else {
            why = "unsupported kty (only RSA, EC)";
        }
        if (!k.pk) {
            log_skip(i, kid, why);
            continue;
        }
        if (k.alg >= 0 && !alg_fits(&ALGS[k.alg], k.kty, k.ec_bits)) {
            EVP_PKEY_free(k.pk);
            log_skip(i, kid, "alg does not fit the key");
            continue;
        }
        if (kid && !(k.kid = strdup(kid))) {
            EVP_PKEY_free(k.pk);
            continue;
        }
        ks->keys[ks->n++] = k;
    }
    json_decref(doc);
    if (ks->n == 0) {
        rg_oidc_keyset_free(ks);
        rg_error_set(err, RG_EUPSTREAM, "oidc_discovery_failed", "jwks_uri",
                     "JWKS has no usable signing key");
        return NULL;
    }
    return ks;
}

rg_oidc_keyset *rg_oidc_keyset_ref(rg_oidc_keyset *ks)
{
    assert(ks && atomic_load(&ks->refs) > 0);
    atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void rg_oidc_keyset_free(rg_oidc_keyset *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->keys[i].kid);
        EVP_PKEY_free(ks->keys[i].pk);
    }
    free(ks);
}

size_t rg_oidc_keyset_size(const rg_oidc_keyset *ks)
{
    return ks ? ks->n : 0;
}

int rg_oidc_keyset_has_kid(const rg_oidc_keyset *ks, const char *kid)
{
    for (size_t i = 0; ks && kid && i < ks->n; i++)
        if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
            return 1;
    return 0;
}

/* ---- JWS --------------------------------------------------------------- */

struct rg_oidc_jws {
    char *alg, *kid;
    char *payload;            /* decoded, NUL-terminated */
    size_t payload_len;
    unsigned char *sig;
    size_t sig_len;
    char *signing_input;      /* "header.payload" as sent */
    size_t signing_input_len;
};

static unsigned char *b64_seg(const char *s, size_t len, size_t *out_len)
{
    unsigned char *out = malloc(len * 3 / 4 + 4);
    if (!out)
        return NULL;
    long n = len ? rg_b64url_decode(s, len, out) : 0;
    if (n < 0) {
        free(out);
        return NULL;
    }
    out[n] = 0;
    *out_len = (size_t)n;
    return out;
}

static int malformed(rg_error *err, const char *why)
{
    return rg_error_set(err, RG_EUNAUTH, "oidc_id_token_malformed", "id_token", "%s", why);
}

int rg_oidc_jws_parse(const char *compact, rg_oidc_jws **out, rg_error *err)
{
    *out = NULL;
    size_t len = compact ? strnlen(compact, JWS_MAX_LEN + 1) : 0;
    if (len == 0 || len > JWS_MAX_LEN)
        return malformed(err, "ID token empty or over 64 KiB");
    const char *d1 = memchr(compact, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - compact)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - compact)))
        return malformed(err, "ID token is not three dot-separated parts (JWE is not supported)");
    rg_oidc_jws *j = calloc(1, sizeof *j);
    if (!j)
        return malformed(err, "out of memory");
    size_t hl = 0;
    unsigned char *hdr = b64_seg(compact, (size_t)(d1 - compact), &hl);
    j->payload = (char *)b64_seg(d1 + 1, (size_t)(d2 - d1 - 1), &j->payload_len);
    j->sig = b64_seg(d2 + 1, len - (size_t)(d2 + 1 - compact), &j->sig_len);
    j->signing_input_len = (size_t)(d2 - compact);
    j->signing_input = strndup(compact, j->signing_input_len);
    json_t *h = hdr ? json_loadb((char *)hdr, hl, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(hdr);
    int rc = RG_OK;
    json_t *alg = json_object_get(h, "alg"), *kid = json_object_get(h, "kid");
    if (!j->payload || !j->sig || !j->signing_input || j->payload_len == 0)
        rc = malformed(err, "ID token part is not base64url");
    else if (!json_is_object(h) || !json_is_string(alg))
        rc = malformed(err, "ID token header is not a JSON object with a string alg");
    else if (kid && !json_is_string(kid))
        rc = malformed(err, "ID token kid is not a string");
    else if (json_object_get(h, "crit"))
        rc = malformed(err, "ID token header has crit (no extension is understood)");
    else if (!(j->alg = strdup(json_string_value(alg))) ||
             (kid && !(j->kid = strdup(json_string_value(kid)))))
        rc = malformed(err, "out of memory");
    json_decref(h);
    if (rc != RG_OK) {
        rg_oidc_jws_free(j);
        return rc;
    }
    *out = j;
    return RG_OK;
}

void rg_oidc_jws_free(rg_oidc_jws *j)
{
    if (!j)
        return;
    free(j->alg);
    free(j->kid);
    free(j->payload);
    free(j->sig);
    free(j->signing_input);
    free(j);
}

const char *rg_oidc_jws_alg(const rg_oidc_jws *j) { return j->alg; }
const char *rg_oidc_jws_kid(const rg_oidc_jws *j) { return j->kid; }

const char *rg_oidc_jws_payload(const rg_oidc_jws *j, size_t *len)
{
    if (len)
        *len = j->payload_len;
    return j->payload;
}

int rg_oidc_jws_check_alg(const rg_oidc_jws *j, unsigned mask, rg_error *err)
{
    int i = alg_index(j->alg);
    if (i < 0 || !(mask & (1u << i))) {
        char q[40];
        return rg_error_set(err, RG_EUNAUTH, "oidc_alg_not_allowed", "id_token",
                            "ID token alg %s is not allowed for this connection",
                            rg_log_quote(q, sizeof q, j->alg));
    }
    return RG_OK;
}

/* JOSE ECDSA signatures are raw R||S; EVP wants DER. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *sig, size_t len, size_t *der_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
    unsigned char *der = NULL;
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    int n = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (n <= 0)
        return NULL;
    *der_len = (size_t)n;
    return der;
}

/* 1 if the signature verifies with pk under alg a. */
static int verify_pkey(const rg_oidc_jws *j, const alg_info *a, EVP_PKEY *pk)
{
    const unsigned char *sig = j->sig;
    size_t sig_len = j->sig_len;
    unsigned char *der = NULL;
    if (a->fam == FAM_ES) {
        if (sig_len != 2 * (size_t)(a->ec_bits / 8))
            return 0;
        if (!(der = ecdsa_raw_to_der(sig, sig_len, &sig_len)))
            return 0;
        sig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md && EVP_DigestVerifyInit(md, &pctx, alg_md(a), NULL, pk) == 1;
    if (ok && a->fam == FAM_PS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_md(a)) == 1;
    else if (ok && a->fam == FAM_RS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    ok = ok && EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)j->signing_input,
                                j->signing_input_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

static int verify_hmac(const rg_oidc_jws *j, const alg_info *a, const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!secret || !*secret)
        return 0;
    if (!HMAC(alg_md(a), secret, (int)strlen(secret), (const unsigned char *)j->signing_input,
              j->signing_input_len, mac, &mac_len))
        return 0;
    return rg_ct_equal(mac, mac_len, j->sig, j->sig_len);
}

static int bad_signature(rg_error *err)
{
    return rg_error_set(err, RG_EUNAUTH, "oidc_bad_signature", "id_token",
                        "ID token signature does not verify");
}

int rg_oidc_jws_verify(const rg_oidc_jws *j, const rg_oidc_keyset *ks, unsigned mask,
                       const char *hmac_secret, rg_error *err)
{
    assert(j);
    if (rg_oidc_jws_check_alg(j, mask, err) != RG_OK)
        return RG_ERR;
    const alg_info *a = &ALGS[alg_index(j->alg)];
    if (a->fam == FAM_HS)
        return verify_hmac(j, a, hmac_secret) ? RG_OK : bad_signature(err);
    int seen_kid = 0, tried = 0;
    for (size_t i = 0; ks && i < ks->n; i++) {
        const jwk_key *k = &ks->keys[i];
        if (j->kid && (!k->kid || strcmp(k->kid, j->kid) != 0))
            continue;
        seen_kid = 1;
        /* the alg is pinned to the key: its type and curve, and its own alg */
        if (!alg_fits(a, k->kty, k->ec_bits) || (k->alg >= 0 && &ALGS[k->alg] != a))
            continue;
        tried++;
        if (verify_pkey(j, a, k->pk))
            return RG_OK;
    }
    char q[80];
    if (j->kid && !seen_kid)
        return rg_error_set(err, RG_EUNAUTH, "oidc_unknown_kid", "id_token",
                            "no key with kid %s in the IdP's JWKS",
                            rg_log_quote(q, sizeof q, j->kid));
    if (!tried && j->kid)
        return rg_error_set(err, RG_EUNAUTH, "oidc_alg_not_allowed", "id_token",
                            "alg %s does not fit key %s", a->name,
                            rg_log_quote(q, sizeof q, j->kid));
    if (!tried)
        return rg_error_set(err, RG_EUNAUTH, "oidc_unknown_kid", "id_token",
                            "ID token has no kid and no key fits alg %s", a->name);
    return bad_signature(err);
}

int rg_oidc_jws_verify_with_jwk(const char *jws, const char *jwk_json,
                                const char *allowed_algs, rg_error *err)
{
    unsigned mask = 0;
    if (rg_oidc_algs_parse(allowed_algs, &mask, err) != RG_OK)
        return RG_ERR;
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"keys\":[%s]}", jwk_json);
    if (b.oom)
        return rg_error_oom(err);
    rg_oidc_keyset *ks = rg_oidc_keyset_parse(b.data, b.len, err);
    rg_buf_free(&b);
    /* an HS* JWK is not parsed as a key; HS* is never checked here */
    if (!ks)
        return RG_ERR;
    rg_oidc_jws *j = NULL;
    int rc = rg_oidc_jws_parse(jws, &j, err);
    if (rc == RG_OK)
        rc = rg_oidc_jws_verify(j, ks, mask, NULL, err);
    rg_oidc_jws_free(j);
    rg_oidc_keyset_free(ks);
    return rc;
}
