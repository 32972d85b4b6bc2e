/* test_session_jwt.c: session JWT sign → verify (ES256 and RS256), and each
 * rejection with its own stable code: tampered signature or payload, alg
 * none, HS256 signed with the public key PEM (alg confusion), RS256 header
 * on an EC kid, expired, iat in the future, wrong iss, unknown kid, garbage,
 * oversized. Forged tokens are built here with OpenSSL directly, not with the
 * code under test. One issued token is verified by python3-jwcrypto. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include "rolegate/session.h"
#include "test_tmpdir.h"
#include "test_session_helpers.h"
#include "rolegate/util.h"

#define NOW 1700000000LL
#define SKEW 60
#define ISS "https://sso.test"

typedef struct fx {
    char *dir, *rsdir, *otherdir;
    char kid[RG_SESSION_KID_MAX], rskid[RG_SESSION_KID_MAX], otherkid[RG_SESSION_KID_MAX];
    rg_keyring *kr, *rs, *other;   /* ES256; RS256; an ES256 keyring we don't trust */
} fx;

static rg_keyring *make_ring(char **dir, const char *alg, char kid[RG_SESSION_KID_MAX])
{
    *dir = tt_mkdtemp("session-jwt");
    return tsh_ring(*dir, alg, kid);
}

static int setup(void **st)
{
    fx *f = calloc(1, sizeof *f);
    f->kr = make_ring(&f->dir, "ES256", f->kid);
    f->rs = make_ring(&f->rsdir, "RS256", f->rskid);
    f->other = make_ring(&f->otherdir, "ES256", f->otherkid);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    rg_keyring_free(f->kr);
    rg_keyring_free(f->rs);
    rg_keyring_free(f->other);
    tt_rm_rf(f->dir);
    tt_rm_rf(f->rsdir);
    tt_rm_rf(f->otherdir);
    free(f);
    return 0;
}

static char *payload_with(int64_t iat, int64_t exp, const char *iss)
{
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"iss\":\"%s\",\"sub\":\"user_01\",\"sid\":\"sess_01\",\"jti\":\"j1\","
                  "\"org_id\":\"org_01\",\"email\":\"a@b.test\",\"role\":\"admin\","
                  "\"roles\":[\"admin\",\"member\"],\"permissions\":[\"posts:read\","
                  "\"posts:write\"],\"act\":{\"sub\":\"admin\"},\"iat\":%lld,\"exp\":%lld}",
                  iss, (long long)iat, (long long)exp);
    return rg_buf_take(&b);
}

static char *sign_ok(const rg_keyring *kr, int64_t iat, int64_t exp, const char *iss)
{
    char *p = payload_with(iat, exp, iss), *tok = NULL;
    rg_error err = {0};
    assert_int_equal(rg_session_sign(kr, p, strlen(p), &tok, &err), 0);
    free(p);
    return tok;
}

static void expect_reject(const rg_keyring *kr, const char *tok, const char *code)
{
    rg_session_claims c;
    rg_error err = {0};
    int rc = rg_session_verify(kr, tok, NOW, SKEW, ISS, &c, &err);
    assert_int_not_equal(rc, 0);
    assert_string_equal(err.code, code);
    assert_int_equal(err.status, 401);
    assert_null(c.data_);
    assert_null(c.sub);
}

static char *b64(const void *p, size_t n)
{
    char *s = malloc(rg_b64url_len(n) + 1);
    rg_b64url_encode(p, n, s);
    return s;
}

/* header.payload.sig with any header, signed by the given callback result */
static char *assemble(const char *header, const char *payload, const unsigned char *sig,
                      size_t siglen, char **signing_input)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    rg_buf b = {0};
    rg_buf_printf(&b, "%s.%s", h, p);
    if (signing_input)
        *signing_input = strdup(b.data);
    if (sig) {
        char *s = b64(sig, siglen);
        rg_buf_printf(&b, ".%s", s);
        free(s);
    }
    free(h);
    free(p);
    return rg_buf_take(&b);
}

/* The token with its ES256 s replaced by n - s, n the P-256 order as OpenSSL
 * knows it (not the code under test); *was_low: s <= n/2 before. */
static char *high_s_twin(const char *tok, int *was_low)
{
    const char *dot = strrchr(tok, '.');
    unsigned char sig[70];
    assert_int_equal(rg_b64url_decode(dot + 1, strlen(dot + 1), sig), 64);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL), *half = BN_new(), *t = BN_new();
    BN_rshift1(half, EC_GROUP_get0_order(g));
    *was_low = BN_cmp(s, half) <= 0;
    BN_sub(t, EC_GROUP_get0_order(g), s);
    BN_bn2binpad(t, sig + 32, 32);
    char *enc = b64(sig, 64);
    rg_buf b = {0};
    rg_buf_append(&b, tok, (size_t)(dot + 1 - tok));
    rg_buf_puts(&b, enc);
    free(enc);
    BN_free(s);
    BN_free(half);
    BN_free(t);
    EC_GROUP_free(g);
    return rg_buf_take(&b);
}

/* Independent signer: SHA-256 with pk; EC signatures converted to R||S. */
static unsigned char *ossl_sign(EVP_PKEY *pk, const char *in, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 0;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)in, strlen(in)), 1);
    unsigned char *der = malloc(n);
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(ctx);
    if (!EVP_PKEY_is_a(pk, "EC")) {
        *siglen = n;
        return der;
    }
    const unsigned char *pp = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)n);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    unsigned char *raw = malloc(64);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(es);
    /* item 14: session tokens are low-S; a fair signer normalises */
    int low = 0;
    char *tok = NULL, *twin = NULL;
    {
        char *enc = b64(raw, 64);
        tok = malloc(strlen(enc) + 3);
        sprintf(tok, "x.%s", enc);
        free(enc);
        twin = high_s_twin(tok, &low);
    }
    if (!low)
        assert_int_equal(rg_b64url_decode(strrchr(twin, '.') + 1, 86, raw), 64);
    free(tok);
    free(twin);
    free(der);
    *siglen = 64;
    return raw;
}

static char *forge(EVP_PKEY *pk, const char *header, const char *payload)
{
    char *in = NULL;
    free(assemble(header, payload, NULL, 0, &in));
    size_t sl = 0;
    unsigned char *sig = ossl_sign(pk, in, &sl);
    char *tok = assemble(header, payload, sig, sl, NULL);
    free(sig);
    free(in);
    return tok;
}

/* ---- round trips -------------------------------------------------------- */

static void test_sign_verify_roundtrip_es256(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW - 10, NOW + 3600, ISS);
    /* ES256 signature: 64 bytes → 86 base64url chars */
    assert_int_equal(strlen(strrchr(tok, '.') + 1), 86);
    rg_session_claims c;
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->kr, tok, NOW, SKEW, ISS, &c, &err), 0);
    assert_string_equal(c.sub, "user_01");
    assert_string_equal(c.sid, "sess_01");
    assert_string_equal(c.org_id, "org_01");
    assert_string_equal(c.email, "a@b.test");
    assert_string_equal(c.role, "admin");
    assert_string_equal(c.jti, "j1");
    assert_string_equal(c.iss, ISS);
    assert_string_equal(c.act_sub, "admin");
    assert_int_equal(c.n_roles, 2);
    assert_string_equal(c.roles[1], "member");
    assert_int_equal(c.n_permissions, 2);
    assert_string_equal(c.permissions[0], "posts:read");
    assert_int_equal(c.permissions_omitted, 0);
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.iat, NOW - 10);
    assert_string_equal(c.kid, f->kid);
    assert_non_null(strstr(c.payload, "\"sid\":\"sess_01\""));
    assert_int_equal(c.payload_len, strlen(c.payload));
    rg_session_claims_clear(&c);
    assert_null(c.sub);
    rg_session_claims_clear(&c);   /* twice is fine */
    free(tok);
}

static void test_sign_verify_roundtrip_rs256_and_header(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->rs, NOW, NOW + 60, ISS);
    unsigned char hdr[256];
    long hl = rg_b64url_decode(tok, (size_t)(strchr(tok, '.') - tok), hdr);
    assert_true(hl > 0);
    hdr[hl] = 0;
    char want[160];
    snprintf(want, sizeof want, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->rskid);
    assert_string_equal((char *)hdr, want);
    rg_session_claims c;
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->rs, tok, NOW, SKEW, ISS, &c, &err), 0);
    assert_string_equal(c.sub, "user_01");
    rg_session_claims_clear(&c);
    /* expected_iss NULL skips the issuer check */
    assert_int_equal(rg_session_verify(f->rs, tok, NOW, SKEW, NULL, &c, &err), 0);
    rg_session_claims_clear(&c);
    free(tok);
}

/* An independent signer's token (same key) verifies: proves the R||S form. */
static void test_verify_accepts_independently_signed_token(void **st)
{
    fx *f = *st;
    EVP_PKEY *pk = tsh_read_pem(f->dir, f->kid);
    char hdr[160];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", f->kid);   /* no typ */
    char *p = payload_with(NOW, NOW + 100, ISS);
    char *tok = forge(pk, hdr, p);
    rg_session_claims c;
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->kr, tok, NOW, SKEW, ISS, &c, &err), 0);
    rg_session_claims_clear(&c);
    free(tok);
    free(p);
    EVP_PKEY_free(pk);
}

/* python3-jwcrypto verifies our token against our JWKS. */
static void test_jwcrypto_verifies_issued_token(void **st)
{
    fx *f = *st;
    const rg_keyring *rings[] = {f->kr, f->rs};
    for (int i = 0; i < 2; i++) {
        int64_t now = rg_now();
        char *tok = sign_ok(rings[i], now, now + 600, ISS);
        char jwks[] = "/tmp/rg-jwks-XXXXXX";
        int fd = mkstemp(jwks);
        assert_true(fd >= 0);
        const char *doc = rg_keyring_jwks_json(rings[i]);
        assert_int_equal(write(fd, doc, strlen(doc)), (long)strlen(doc));
        close(fd);
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "%s -c 'import sys, json; from jwcrypto import jwk, jwt; "
                 "ks = jwk.JWKSet.from_json(open(sys.argv[1]).read()); "
                 "t = jwt.JWT(jwt=sys.argv[2], key=ks, algs=[\"ES256\",\"RS256\"]); "
                 "c = json.loads(t.claims); print(c[\"sid\"], c[\"org_id\"])' '%s' '%s'",
                 access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3",
                 jwks, tok);
        FILE *pp = popen(cmd, "r");
        assert_non_null(pp);
        char line[256] = "";
        assert_non_null(fgets(line, sizeof line, pp));
        assert_int_equal(pclose(pp), 0);
        assert_string_equal(line, "sess_01 org_01\n");
        unlink(jwks);
        free(tok);
    }
}

/* ---- rejections ---------------------------------------------------------- */

static void test_rejects_tampered_signature(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW, NOW + 100, ISS);
    char *sig = strrchr(tok, '.') + 1;
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    expect_reject(f->kr, tok, "token_bad_signature");
    free(tok);
    /* RS256 too */
    tok = sign_ok(f->rs, NOW, NOW + 100, ISS);
    sig = strrchr(tok, '.') + 1;
    sig[20] = sig[20] == 'A' ? 'B' : 'A';
    expect_reject(f->rs, tok, "token_bad_signature");
    free(tok);
}

static void test_rejects_tampered_payload(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW, NOW + 100, ISS);
    /* swap the payload for one naming another user, keep the signature */
    char *other = sign_ok(f->kr, NOW, NOW + 100, "https://evil.test");
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
    rg_buf b = {0};
    rg_buf_append(&b, tok, (size_t)(d1 - tok));
    rg_buf_append(&b, o1, (size_t)(o2 - o1));
    rg_buf_puts(&b, d2);
    expect_reject(f->kr, b.data, "token_bad_signature");
    /* and a signature of the wrong length */
    char *cut = strdup(tok);
    cut[strlen(cut) - 2] = 0;   /* 84 chars: 63 bytes, still base64url */
    expect_reject(f->kr, cut, "token_bad_signature");
    free(cut);
    rg_buf_free(&b);
    free(tok);
    free(other);
}

static void test_rejects_alg_none(void **st)
{
    fx *f = *st;
    char hdr[160];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    char *p = payload_with(NOW, NOW + 100, ISS);
    char *tok = assemble(hdr, p, (const unsigned char *)"", 0, NULL);   /* "h.p." */
    assert_int_equal(tok[strlen(tok) - 1], '.');
    unsigned long before = rg_keyring_verify_count(f->kr);
    expect_reject(f->kr, tok, "token_alg_mismatch");
    free(tok);
    tok = assemble(hdr, p, (const unsigned char *)"xx", 2, NULL);
    expect_reject(f->kr, tok, "token_alg_mismatch");
    /* refused before any crypto */
    assert_int_equal(rg_keyring_verify_count(f->kr), before);
    free(tok);
    /* no alg at all */
    snprintf(hdr, sizeof hdr, "{\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    tok = assemble(hdr, p, (const unsigned char *)"xx", 2, NULL);
    expect_reject(f->kr, tok, "token_alg_mismatch");
    free(tok);
    free(p);
}

/* LIBRARIES.md 3: libjwt accepts an HS256 token whose HMAC secret is the
 * public key PEM. Here it must fail on the pinned alg, for EC and RSA keys. */
static void test_rejects_hs256_signed_with_public_key_pem(void **st)
{
    fx *f = *st;
    struct { const char *dir, *kid; rg_keyring *kr; } cases[] = {
        {f->dir, f->kid, f->kr}, {f->rsdir, f->rskid, f->rs}};
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *pk = tsh_read_pem(cases[i].dir, cases[i].kid);
        BIO *bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
        char *pem = NULL;
        long pl = BIO_get_mem_data(bio, &pem);
        char hdr[160];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                 cases[i].kid);
        char *p = payload_with(NOW, NOW + 100, ISS), *in = NULL;
        free(assemble(hdr, p, NULL, 0, &in));
        unsigned char mac[32];
        unsigned int ml = 0;
        assert_non_null(HMAC(EVP_sha256(), pem, (int)pl, (unsigned char *)in, strlen(in), mac,
                             &ml));
        char *tok = assemble(hdr, p, mac, ml, NULL);
        expect_reject(cases[i].kr, tok, "token_alg_mismatch");
        free(tok);
        free(in);
        free(p);
        BIO_free(bio);
        EVP_PKEY_free(pk);
    }
}

static void test_rejects_rs256_header_on_ec_kid(void **st)
{
    fx *f = *st;
    EVP_PKEY *rsa = tsh_read_pem(f->rsdir, f->rskid);
    char hdr[160];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    char *p = payload_with(NOW, NOW + 100, ISS);
    char *tok = forge(rsa, hdr, p);
    expect_reject(f->kr, tok, "token_alg_mismatch");
    free(tok);
    /* and the reverse: ES256 header on the RSA kid */
    EVP_PKEY *ec = tsh_read_pem(f->dir, f->kid);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->rskid);
    tok = forge(ec, hdr, p);
    expect_reject(f->rs, tok, "token_alg_mismatch");
    free(tok);
    /* alg compared exactly: "es256" is not "ES256" */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"es256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    tok = forge(ec, hdr, p);
    expect_reject(f->kr, tok, "token_alg_mismatch");
    free(tok);
    free(p);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

static void test_rejects_expired(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW - 7200, NOW - SKEW, ISS);   /* exp == now - skew */
    expect_reject(f->kr, tok, "token_expired");
    free(tok);
    tok = sign_ok(f->kr, NOW - 7200, NOW - SKEW + 1, ISS);     /* within the skew */
    rg_session_claims c;
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->kr, tok, NOW, SKEW, ISS, &c, &err), 0);
    rg_session_claims_clear(&c);
    free(tok);
}

/* Issue 13: a lapsed token is accepted by rg_session_verify_lapsed within
 * lapse (+ skew) only; auth_time is parsed and must not follow iat;
 * rg_session_claims_of_own reads a token of ours without a signature check. */
static void test_lapsed_verify_auth_time_and_own_claims(void **st)
{
    fx *f = *st;
    rg_session_claims c;
    rg_error err = {0};
    char *tok = sign_ok(f->kr, NOW - 900, NOW - 600, ISS);    /* expired 10 min ago */
    expect_reject(f->kr, tok, "token_expired");
    assert_int_equal(rg_session_verify_lapsed(f->kr, tok, NOW, SKEW, 3600, ISS, &c, &err), 0);
    assert_int_equal(c.exp, NOW - 600);
    assert_int_equal(c.auth_time, 0);                          /* absent */
    rg_session_claims_clear(&c);
    assert_int_not_equal(rg_session_verify_lapsed(f->kr, tok, NOW, SKEW, 500, ISS, &c, &err), 0);
    assert_string_equal(err.code, "token_expired");
    free(tok);
    const char *good = "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\","
                       "\"auth_time\":1699990000,\"iat\":1700000000,\"exp\":1700000300}";
    const char *bad = "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\","
                      "\"auth_time\":1700000001,\"iat\":1700000000,\"exp\":1700000300}";
    assert_int_equal(rg_session_sign(f->kr, good, strlen(good), &tok, &err), 0);
    assert_int_equal(rg_session_verify(f->kr, tok, NOW, SKEW, ISS, &c, &err), 0);
    assert_int_equal(c.auth_time, 1699990000);
    rg_session_claims_clear(&c);
    /* own: a broken signature is not looked at (the caller just signed it) */
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    expect_reject(f->kr, tok, "token_bad_signature");
    assert_int_equal(rg_session_claims_of_own(f->kr, tok, NOW, &c, &err), 0);
    assert_string_equal(c.sid, "s");
    rg_session_claims_clear(&c);
    free(tok);
    assert_int_equal(rg_session_sign(f->kr, bad, strlen(bad), &tok, &err), 0);
    expect_reject(f->kr, tok, "token_malformed");
    free(tok);
}

static void test_rejects_iat_in_future_beyond_skew(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW + SKEW + 1, NOW + 7200, ISS);
    expect_reject(f->kr, tok, "token_not_yet_valid");
    free(tok);
    tok = sign_ok(f->kr, NOW + SKEW, NOW + 7200, ISS);   /* at the edge: fine */
    rg_session_claims c;
    rg_error err = {0};
    assert_int_equal(rg_session_verify(f->kr, tok, NOW, SKEW, ISS, &c, &err), 0);
    rg_session_claims_clear(&c);
    free(tok);
    const char *nbf = "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\","
                      "\"iat\":1700000000,\"nbf\":1700000100,\"exp\":1700009999}";
    char *t2 = NULL;
    assert_int_equal(rg_session_sign(f->kr, nbf, strlen(nbf), &t2, &err), 0);
    expect_reject(f->kr, t2, "token_not_yet_valid");
    free(t2);
}

static void test_rejects_wrong_issuer(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->kr, NOW, NOW + 100, "https://other.test");
    expect_reject(f->kr, tok, "token_wrong_issuer");
    free(tok);
}

static void test_rejects_unknown_kid(void **st)
{
    fx *f = *st;
    char *tok = sign_ok(f->other, NOW, NOW + 100, ISS);   /* valid, but not our key */
    expect_reject(f->kr, tok, "token_unknown_kid");
    free(tok);
}

static void test_rejects_garbage(void **st)
{
    fx *f = *st;
    const char *cases[] = {"", "abc", "a.b", "a.b.c.d", "!!!.abc.def", "..", "a..c"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_reject(f->kr, cases[i], "token_malformed");
    expect_reject(f->kr, NULL, "token_malformed");
    /* header: base64url of text that is not JSON */
    char *tok = assemble("hello", "{}", (const unsigned char *)"sig", 3, NULL);
    expect_reject(f->kr, tok, "token_malformed");
    free(tok);
    /* header without kid; typ that is not JWT; crit */
    char *p = payload_with(NOW, NOW + 100, ISS);
    tok = assemble("{\"alg\":\"ES256\"}", p, (const unsigned char *)"s", 1, NULL);
    expect_reject(f->kr, tok, "token_malformed");
    free(tok);
    char hdr[200];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", f->kid);
    tok = assemble(hdr, p, (const unsigned char *)"s", 1, NULL);
    expect_reject(f->kr, tok, "token_malformed");
    free(tok);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"crit\":[\"x\"],\"kid\":\"%s\"}", f->kid);
    tok = assemble(hdr, p, (const unsigned char *)"s", 1, NULL);
    expect_reject(f->kr, tok, "token_malformed");
    free(tok);
    /* signature part not base64url */
    tok = sign_ok(f->kr, NOW, NOW + 100, ISS);
    char *bad = malloc(strlen(tok) + 2);
    sprintf(bad, "%.*s*", (int)(strrchr(tok, '.') - tok + 1), tok);
    expect_reject(f->kr, bad, "token_malformed");
    free(bad);
    free(tok);
    free(p);
    /* properly signed payloads that are not valid claims */
    const char *payloads[] = {
        "not json",
        "[1,2]",
        "{\"iss\":\"" ISS "\",\"sid\":\"s\",\"org_id\":\"o\",\"iat\":1700000000,\"exp\":1800000000}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"\",\"org_id\":\"o\",\"iat\":1700000000,"
        "\"exp\":1800000000}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\",\"iat\":1700000000,"
        "\"exp\":1.8e9}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\",\"iat\":1700000000,"
        "\"exp\":\"1800000000\"}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\",\"exp\":1800000000}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\",\"iat\":1700000000,"
        "\"exp\":1800000000,\"roles\":\"admin\"}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\",\"iat\":1700000000,"
        "\"exp\":1800000000,\"permissions\":[1]}",
        "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"sub\":\"v\",\"sid\":\"s\",\"org_id\":\"o\","
        "\"iat\":1700000000,\"exp\":1800000000}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        char *t = NULL;
        rg_error err = {0};
        assert_int_equal(rg_session_sign(f->kr, payloads[i], strlen(payloads[i]), &t, &err), 0);
        expect_reject(f->kr, t, "token_malformed");
        free(t);
    }
}

static void test_rejects_oversized_token_before_any_work(void **st)
{
    fx *f = *st;
    char *big = malloc(RG_SESSION_TOKEN_MAX + 2);
    memset(big, 'A', RG_SESSION_TOKEN_MAX + 1);
    big[RG_SESSION_TOKEN_MAX + 1] = 0;
    big[10] = '.';
    big[20] = '.';
    unsigned long before = rg_keyring_verify_count(f->kr);
    expect_reject(f->kr, big, "token_too_large");
    assert_int_equal(rg_keyring_verify_count(f->kr), before);
    /* exactly at the cap it is parsed (and fails on its content) */
    big[RG_SESSION_TOKEN_MAX] = 0;
    expect_reject(f->kr, big, "token_malformed");
    free(big);
}

/* ---- issue 11 item 14: one session, one token string --------------------- */

/* OpenSSL's own verdict on a JOSE ES256 token (so the twin is a real one). */
static int ossl_verifies(EVP_PKEY *pk, const char *tok)
{
    const char *dot = strrchr(tok, '.');
    unsigned char sig[70], *der = NULL;
    assert_int_equal(rg_b64url_decode(dot + 1, strlen(dot + 1), sig), 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    int dl = i2d_ECDSA_SIG(es, &der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t)dl, (const unsigned char *)tok,
                              (size_t)(dot - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

static void test_issue11_item14_high_s_refused(void **st)
{
    fx *f = *st;
    EVP_PKEY *pk = tsh_read_pem(f->dir, f->kid);
    for (int i = 0; i < 24; i++) {   /* before the fix each had a 1/2 chance of high S */
        char *tok = sign_ok(f->kr, NOW, NOW + 100, ISS);
        int low = 0;
        char *twin = high_s_twin(tok, &low);
        const char *hi = low ? twin : tok, *lo = low ? tok : twin;
        assert_true(ossl_verifies(pk, hi));   /* both are valid ECDSA signatures */
        assert_true(ossl_verifies(pk, lo));
        rg_session_claims c;
        rg_error err = {0};
        assert_int_equal(rg_session_verify(f->kr, lo, NOW, SKEW, ISS, &c, &err), 0);
        rg_session_claims_clear(&c);
        expect_reject(f->kr, hi, "token_bad_signature");
        assert_true(low);                     /* and the signer makes low-S only */
        free(twin);
        free(tok);
    }
    EVP_PKEY_free(pk);
}

/* Only canonical base64url: no '=' padding, no non-zero trailing bits in
 * any segment (else one token has several spellings). */
static void test_issue11_item14_noncanonical_base64url_refused(void **st)
{
    fx *f = *st;
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *tok = sign_ok(f->kr, NOW, NOW + 100, ISS);
    rg_buf b = {0};
    rg_buf_printf(&b, "%s=", tok);
    char *padded = rg_buf_take(&b);
    expect_reject(f->kr, padded, "token_malformed");
    free(padded);
    /* header: refused when decoded (first); payload: it is the signed input,
     * so the signature fails; signature: refused when decoded */
    static const char *const code[] = {"token_malformed", "token_bad_signature",
                                       "token_malformed"};
    int tested = 0, i = 0;
    for (char *seg = tok, *end; seg; seg = *end ? end + 1 : NULL, i++) {
        end = seg + strcspn(seg, ".");
        if ((end - seg) % 4 == 0)
            continue;   /* no trailing bits in this segment */
        char *t = strdup(tok);
        char *last = t + (end - tok) - 1;
        int v = (int)(strchr(alpha, *last) - alpha);
        assert_int_equal(v & 1, 0);   /* the signer's own is canonical */
        *last = alpha[v | 1];
        expect_reject(f->kr, t, code[i]);
        free(t);
        tested++;
    }
    assert_true(tested >= 1);   /* the 86-char signature has 4 trailing bits */
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_roundtrip_es256),
        cmocka_unit_test(test_sign_verify_roundtrip_rs256_and_header),
        cmocka_unit_test(test_verify_accepts_independently_signed_token),
        cmocka_unit_test(test_jwcrypto_verifies_issued_token),
        cmocka_unit_test(test_rejects_tampered_signature),
        cmocka_unit_test(test_rejects_tampered_payload),
        cmocka_unit_test(test_rejects_alg_none),
        cmocka_unit_test(test_rejects_hs256_signed_with_public_key_pem),
        cmocka_unit_test(test_rejects_rs256_header_on_ec_kid),
        cmocka_unit_test(test_rejects_expired),
        cmocka_unit_test(test_lapsed_verify_auth_time_and_own_claims),
        cmocka_unit_test(test_rejects_iat_in_future_beyond_skew),
        cmocka_unit_test(test_rejects_wrong_issuer),
        cmocka_unit_test(test_rejects_unknown_kid),
        cmocka_unit_test(test_rejects_garbage),
        cmocka_unit_test(test_rejects_oversized_token_before_any_work),
        cmocka_unit_test(test_issue11_item14_high_s_refused),
        cmocka_unit_test(test_issue11_item14_noncanonical_base64url_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
