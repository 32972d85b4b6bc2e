/* sign.c: signing and verifying JWS inputs with a loaded session key (R24,
 * DESIGN.md "algorithm pinned to the key"): ES256 as JOSE R||S, low-S only
 * (issue 11 item 14), RS256 as PKCS#1 v1.5. ES256 signs and verifies the
 * SHA-256 of the input with a context duplicated from one made when the key
 * was loaded (issue 13: EVP_DigestSignInit per token cost ~15 % of a
 * signature at every refresh). */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include "rolegate/session.h"
#include "rolegate/util.h"
#include "keys_impl.h"

/* Issue 11 item 14: ECDSA's (r, s) and (r, n - s) both verify, so a token
 * could be re-signed by anyone into a second string. Only low-S (s <= n/2)
 * is made and taken: one session, one token. n is P-256's order (SEC 2). */
static const unsigned char p256_n[ES256_HALF] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
static const unsigned char p256_half_n[ES256_HALF] = {
    0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B, 0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};

int rg_session_es256_low_s(const unsigned char s[32])
{
    return memcmp(s, p256_half_n, ES256_HALF) <= 0;
}

/* ---- signing and verification with a cached key ----------------------------- */

static const EVP_MD *key_md(const rg_session_key *k)
{
    return k->owner && k->owner->sha256 ? k->owner->sha256 : EVP_sha256();
}

const char *rg_session_key_kid(const rg_session_key *k) { return k->kid; }
const char *rg_session_key_alg(const rg_session_key *k) { return k->alg; }

void rg_sess_key_prepare(rg_session_key *k)
{
    k->sign_tmpl = k->verify_tmpl = NULL;
    if (!k->is_ec)
        return;
    EVP_PKEY_CTX *s = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    EVP_PKEY_CTX *v = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (s && EVP_PKEY_sign_init(s) == 1) {
        k->sign_tmpl = s;
        s = NULL;
    }
    if (v && EVP_PKEY_verify_init(v) == 1) {
        k->verify_tmpl = v;
        v = NULL;
    }
    EVP_PKEY_CTX_free(s);
    EVP_PKEY_CTX_free(v);
}

void rg_sess_key_release(rg_session_key *k)
{
    EVP_PKEY_CTX_free(k->sign_tmpl);
    EVP_PKEY_CTX_free(k->verify_tmpl);
    k->sign_tmpl = k->verify_tmpl = NULL;
}

/* SHA-256 of data into h (32 bytes); 1 or 0. */
static int digest(const rg_session_key *k, const void *data, size_t n, unsigned char *h)
{
    unsigned int hl = 0;
    return EVP_Digest(data, n, h, &hl, key_md(k), NULL) == 1 && hl == 32;
}

/* ES256 with the prepared context: the DER signature of data's digest into
 * a malloc'd *der. 1 or 0. */
static int ec_sign_der(const rg_session_key *k, const void *data, size_t n,
                       unsigned char **der, size_t *derlen)
{
    unsigned char h[32];
    if (!digest(k, data, n, h))
        return 0;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_dup(k->sign_tmpl);
    size_t cap = 0;
    int ok = c && EVP_PKEY_sign(c, NULL, &cap, h, sizeof h) == 1 && (*der = malloc(cap)) &&
             EVP_PKEY_sign(c, *der, &cap, h, sizeof h) == 1;
    EVP_PKEY_CTX_free(c);
    *derlen = ok ? cap : 0;
    return ok;
}

int rg_session_key_sign(const rg_session_key *k, const void *data, size_t n,
                        unsigned char **sig, size_t *siglen, rg_error *err)
{
    assert(k && k->pkey && sig && siglen);
    *sig = NULL;
    *siglen = 0;
    EVP_MD_CTX *ctx = k->sign_tmpl ? NULL : EVP_MD_CTX_new();
    unsigned char *der = NULL;
    size_t derlen = 0;
    ECDSA_SIG *es = NULL;
    int rc = RG_ERR;
    if (k->sign_tmpl) {
        if (!ec_sign_der(k, data, n, &der, &derlen))
            goto out;
    } else if (!ctx || EVP_DigestSignInit(ctx, NULL, key_md(k), NULL, k->pkey) != 1 ||
               EVP_DigestSign(ctx, NULL, &derlen, data, n) != 1 || !(der = malloc(derlen)) ||
               EVP_DigestSign(ctx, der, &derlen, data, n) != 1) {
        goto out;
    }
    if (!k->is_ec) {   /* RS256: the PKCS#1 v1.5 signature is already JOSE form */
        *sig = der;
        *siglen = derlen;
        der = NULL;
        rc = 0;
        goto out;
    }
    /* ES256: OpenSSL gives DER; JOSE (RFC 7518 3.4) wants R||S, 32 bytes each */
    const unsigned char *pp = der;
    if (!(es = d2i_ECDSA_SIG(NULL, &pp, (long)derlen)))
        goto out;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    unsigned char *raw = malloc(2 * ES256_HALF);
    if (!raw || BN_bn2binpad(r, raw, ES256_HALF) != ES256_HALF ||
        BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) != ES256_HALF) {
        free(raw);
        goto out;
    }
    if (!rg_session_es256_low_s(raw + ES256_HALF)) {   /* item 14: s := n - s */
        BIGNUM *order = BN_bin2bn(p256_n, ES256_HALF, NULL), *t = BN_new();
        int ok = order && t && BN_sub(t, order, s) &&
                 BN_bn2binpad(t, raw + ES256_HALF, ES256_HALF) == ES256_HALF;
        BN_free(order);
        BN_free(t);
        if (!ok) {
            free(raw);
            goto out;
        }
    }
    *sig = raw;
    *siglen = 2 * ES256_HALF;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    free(der);
    EVP_MD_CTX_free(ctx);
    if (rc)
        rc = rg_error_set(err, RG_EINTERNAL, "sign_failed", NULL, "signing with key %s failed",
                          k->kid);
    return rc;
}

int rg_session_key_verify(const rg_session_key *k, const void *data, size_t n,
                          const unsigned char *sig, size_t siglen)
{
    assert(k && k->pkey);
    unsigned char *der = NULL;
    int derlen = 0;
    if (k->is_ec) {
        /* a JOSE ES256 signature is exactly 64 bytes; anything else is forged */
        if (siglen != 2 * ES256_HALF || !rg_session_es256_low_s(sig + ES256_HALF))
            return 0;   /* item 14: the high-S twin of a valid signature */
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, ES256_HALF, NULL);
        BIGNUM *s = BN_bin2bn(sig + ES256_HALF, ES256_HALF, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(s);
            return 0;
        }
        derlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (derlen <= 0)
            return 0;
        sig = der;
        siglen = (size_t)derlen;
    } else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return 0;
    }
    if (k->owner)   /* a statistic; the keyring is otherwise immutable */
        atomic_fetch_add(&k->owner->verifies, 1);
    int ok;
    if (k->verify_tmpl) {
        unsigned char h[32];
        EVP_PKEY_CTX *c = digest(k, data, n, h) ? EVP_PKEY_CTX_dup(k->verify_tmpl) : NULL;
        ok = c && EVP_PKEY_verify(c, sig, siglen, h, sizeof h) == 1;
        EVP_PKEY_CTX_free(c);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestVerifyInit(ctx, NULL, key_md(k), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, data, n) == 1;
        EVP_MD_CTX_free(ctx);
    }
    OPENSSL_free(der);
    return ok;
}

