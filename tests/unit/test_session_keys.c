/* test_session_keys.c: session signing keys: ES256/RS256 keygen, kid = RFC
 * 7638 thumbprint (the RFC's own example, an independent C computation and
 * python3-jwcrypto), the key directory (modes 0700/0600, active file,
 * refusals), reload and rotation, JWKS, and the keygen command. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "rolegate/session.h"
#include "test_tmpdir.h"
#include "test_session_helpers.h"
#include "rolegate/util.h"

static const char *python(void)
{
    /* the Debian python has python3-jwcrypto; a pyenv one on PATH may not */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void test_keygen_es256_writes_0600_key_and_active(void **st)
{
    char *d = *st;
    char sub[256], kid[RG_SESSION_KID_MAX], path[512];
    snprintf(sub, sizeof sub, "%s/a/keys", d);   /* nested, missing */
    rg_error err = {0};
    assert_int_equal(rg_session_keygen(sub, "ES256", 1, kid, &err), 0);
    assert_int_equal(strlen(kid), 43);           /* base64url of SHA-256 */
    assert_int_equal(mode_of(sub), 0700);
    snprintf(path, sizeof path, "%s/%s.pem", sub, kid);
    assert_int_equal(mode_of(path), 0600);
    snprintf(path, sizeof path, "%s/active", sub);
    char *active = rg_file_read(path, 1024, NULL);
    assert_non_null(active);
    assert_int_equal(strncmp(active, kid, 43), 0);
    free(active);
    rg_keyring *kr = rg_session_keys_load(sub, 0, &err);
    assert_non_null(kr);
    assert_int_equal(rg_keyring_count(kr), 1);
    assert_string_equal(rg_session_key_kid(rg_keyring_active(kr)), kid);
    assert_string_equal(rg_session_key_alg(rg_keyring_active(kr)), "ES256");
    rg_keyring_free(kr);
}

static void test_keygen_rs256_and_invalid_alg(void **st)
{
    char *d = *st;
    char kid[RG_SESSION_KID_MAX];
    rg_error err = {0};
    rg_keyring *kr = tsh_ring(d, "RS256", kid);
    assert_string_equal(rg_session_key_alg(rg_keyring_active(kr)), "RS256");
    json_t *jwks = json_loads(rg_keyring_jwks_json(kr), 0, NULL);
    json_t *k0 = json_array_get(json_object_get(jwks, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(k0, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(k0, "e")), "AQAB");
    /* 2048-bit modulus: 256 bytes → 342 base64url chars */
    assert_int_equal(strlen(json_string_value(json_object_get(k0, "n"))), 342);
    json_decref(jwks);
    rg_keyring_free(kr);
    assert_int_not_equal(rg_session_keygen(d, "HS256", 1, kid, &err), 0);
    assert_string_equal(err.code, "invalid_alg");
    assert_int_not_equal(rg_session_keygen(d, "none", 1, kid, &err), 0);
}

/* RFC 7638 section 3.1: the example RSA key and its thumbprint. */
static void test_kid_matches_rfc7638_example(void **st)
{
    (void)st;
    const char *n_b64 =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65"
        "YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
        "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
        "nqDKgw";
    unsigned char nbin[512];
    long nl = rg_b64url_decode(n_b64, strlen(n_b64), nbin);
    assert_int_equal(nl, 256);
    BIGNUM *n = BN_bin2bn(nbin, (int)nl, NULL), *e = BN_new();
    BN_set_word(e, 65537);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pk = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pk), 1);
    char *pem = NULL;
    long pl = BIO_get_mem_data(bio, &pem);
    char kid[RG_SESSION_KID_MAX];
    rg_error err = {0};
    assert_int_equal(rg_session_kid_of_pem(pem, (size_t)pl, kid, &err), 0);
    assert_string_equal(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    BIO_free(bio);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
}

/* The ES256 kid, recomputed here from the uncompressed point (another
 * OpenSSL path than the library's x/y parameters). */
static void test_kid_of_es256_matches_independent_thumbprint(void **st)
{
    char *d = *st;
    char kid[RG_SESSION_KID_MAX];
    rg_error err = {0};
    assert_int_equal(rg_session_keygen(d, "ES256", 1, kid, &err), 0);
    EVP_PKEY *pk = tsh_read_pem(d, kid);
    unsigned char pt[65];
    size_t ptl = 0;
    assert_int_equal(EVP_PKEY_set_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                    "uncompressed"), 1);
    assert_int_equal(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                                     sizeof pt, &ptl), 1);
    assert_int_equal(ptl, 65);
    assert_int_equal(pt[0], 4);
    char x[64], y[64], json[256];
    rg_b64url_encode(pt + 1, 32, x);
    rg_b64url_encode(pt + 33, 32, y);
    snprintf(json, sizeof json, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    unsigned char md[32];
    unsigned int mdl = 0;
    EVP_Digest(json, strlen(json), md, &mdl, EVP_sha256(), NULL);
    char want[64];
    rg_b64url_encode(md, 32, want);
    assert_string_equal(kid, want);
    EVP_PKEY_free(pk);
}

/* python3-jwcrypto computes the thumbprint of both kinds of key files. */
static void test_kid_matches_jwcrypto_thumbprint(void **st)
{
    char *d = *st;
    const char *algs[] = {"ES256", "RS256"};
    for (int i = 0; i < 2; i++) {
        char kid[RG_SESSION_KID_MAX], cmd[1024];
        rg_error err = {0};
        assert_int_equal(rg_session_keygen(d, algs[i], 1, kid, &err), 0);
        snprintf(cmd, sizeof cmd,
                 "%s -c 'import sys; from jwcrypto import jwk; "
                 "print(jwk.JWK.from_pem(open(sys.argv[1],\"rb\").read()).thumbprint())' "
                 "'%s/%s.pem'", python(), d, kid);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char line[128] = "";
        assert_non_null(fgets(line, sizeof line, p));
        assert_int_equal(pclose(p), 0);
        line[strcspn(line, "\n")] = 0;
        assert_string_equal(line, kid);
    }
}

static void test_load_creates_dir_and_first_key_when_empty(void **st)
{
    char *d = *st;
    char sub[256];
    snprintf(sub, sizeof sub, "%s/var/keys", d);
    rg_error err = {0};
    assert_null(rg_session_keys_load(sub, 0, &err));
    assert_string_equal(err.code, "keys_missing");
    rg_keyring *kr = rg_session_keys_load(sub, 1, &err);
    assert_non_null(kr);
    assert_int_equal(mode_of(sub), 0700);
    assert_int_equal(rg_keyring_count(kr), 1);
    assert_string_equal(rg_session_key_alg(rg_keyring_active(kr)), "ES256");
    char first[RG_SESSION_KID_MAX];
    snprintf(first, sizeof first, "%s", rg_session_key_kid(rg_keyring_active(kr)));
    rg_keyring_free(kr);
    /* not empty any more: a second load keeps the same single key */
    kr = rg_session_keys_load(sub, 1, &err);
    assert_non_null(kr);
    assert_int_equal(rg_keyring_count(kr), 1);
    assert_string_equal(rg_session_key_kid(rg_keyring_active(kr)), first);
    rg_keyring_free(kr);
}

static void test_reload_rotates_active_and_old_key_still_verifies(void **st)
{
    char *d = *st;
    char k1[RG_SESSION_KID_MAX], k2[RG_SESSION_KID_MAX], k3[RG_SESSION_KID_MAX];
    rg_error err = {0};
    rg_keyring *old = tsh_ring(d, "ES256", k1);
    const char *payload = "{\"iss\":\"i\",\"sub\":\"u\",\"sid\":\"s\",\"org_id\":\"o\","
                          "\"iat\":1000,\"exp\":999999999999}";
    char *tok = NULL;
    assert_int_equal(rg_session_sign(old, payload, strlen(payload), &tok, &err), 0);

    assert_int_equal(rg_session_keygen(d, "RS256", 1, k2, &err), 0);
    assert_int_equal(rg_session_keygen(d, "ES256", 0, k3, &err), 0);   /* --no-activate */
    rg_keyring *kr = rg_session_keys_load(d, 0, &err);
    assert_non_null(kr);
    assert_int_equal(rg_keyring_count(kr), 3);
    assert_string_equal(rg_session_key_kid(rg_keyring_active(kr)), k2);
    assert_non_null(rg_keyring_find(kr, k1));
    assert_non_null(rg_keyring_find(kr, k3));
    assert_null(rg_keyring_find(kr, "nope"));
    rg_session_claims c;
    assert_int_equal(rg_session_verify(kr, tok, 2000, 60, "i", &c, &err), 0);
    assert_string_equal(c.kid, k1);
    rg_session_claims_clear(&c);
    /* JWKS: all three, active first, each with kid/use/alg */
    json_t *jwks = json_loads(rg_keyring_jwks_json(kr), 0, NULL);
    json_t *keys = json_object_get(jwks, "keys");
    assert_int_equal(json_array_size(keys), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), k2);
    for (size_t i = 0; i < 3; i++) {
        json_t *k = json_array_get(keys, i);
        assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *kty = json_string_value(json_object_get(k, "kty"));
        assert_string_equal(kty, strcmp(alg, "ES256") == 0 ? "EC" : "RSA");
        if (strcmp(kty, "EC") == 0) {
            assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
            assert_int_equal(strlen(json_string_value(json_object_get(k, "x"))), 43);
            assert_int_equal(strlen(json_string_value(json_object_get(k, "y"))), 43);
        }
        assert_null(json_object_get(k, "d"));   /* never the private part */
    }
    json_decref(jwks);
    /* the old keyring, still referenced by a request, outlives the swap */
    rg_keyring *held = rg_keyring_ref(old);
    rg_keyring_free(old);
    assert_int_equal(rg_session_verify(held, tok, 2000, 60, "i", &c, &err), 0);
    rg_session_claims_clear(&c);
    rg_keyring_free(held);
    rg_keyring_free(kr);
    free(tok);
}

static void test_load_refuses_key_readable_by_others(void **st)
{
    char *d = *st;
    char kid[RG_SESSION_KID_MAX], path[512];
    rg_error err = {0};
    assert_int_equal(rg_session_keygen(d, "ES256", 1, kid, &err), 0);
    snprintf(path, sizeof path, "%s/%s.pem", d, kid);
    assert_int_equal(chmod(path, 0644), 0);
    assert_null(rg_session_keys_load(d, 0, &err));
    assert_string_equal(err.code, "keys_invalid");
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    rg_keyring *kr = rg_session_keys_load(d, 0, &err);
    assert_non_null(kr);
    rg_keyring_free(kr);
}

static void test_load_refuses_file_name_not_kid_and_bad_active(void **st)
{
    char *d = *st;
    char kid[RG_SESSION_KID_MAX], from[512], to[512];
    rg_error err = {0};
    assert_int_equal(rg_session_keygen(d, "ES256", 1, kid, &err), 0);
    snprintf(from, sizeof from, "%s/%s.pem", d, kid);
    snprintf(to, sizeof to, "%s/other.pem", d);
    assert_int_equal(rename(from, to), 0);
    assert_null(rg_session_keys_load(d, 0, &err));
    assert_string_equal(err.code, "keys_invalid");
    assert_int_equal(rename(to, from), 0);
    /* active naming no key */
    snprintf(to, sizeof to, "%s/active", d);
    assert_int_equal(rg_file_write(to, "AAAA\n", 5, 0600), 0);
    assert_null(rg_session_keys_load(d, 0, &err));
    assert_string_equal(err.code, "keys_no_active");
    assert_int_equal(unlink(to), 0);
    assert_null(rg_session_keys_load(d, 0, &err));
    assert_string_equal(err.code, "keys_no_active");
    /* a PEM that is no key */
    snprintf(to, sizeof to, "%s/junk.pem", d);
    assert_int_equal(rg_file_write(to, "-----BEGIN NOTHING-----\n", 24, 0600), 0);
    assert_null(rg_session_keys_load(d, 0, &err));
    assert_string_equal(err.code, "keys_invalid");
}

static void test_cmd_keygen(void **st)
{
    char *d = *st;
    rg_error err = {0};
    char *a1[] = {"keygen", "--dir", d, NULL};
    assert_int_equal(rg_session_cmd_keygen(3, a1), 0);
    rg_keyring *kr = rg_session_keys_load(d, 0, &err);
    assert_non_null(kr);
    char first[RG_SESSION_KID_MAX];
    snprintf(first, sizeof first, "%s", rg_session_key_kid(rg_keyring_active(kr)));
    assert_string_equal(rg_session_key_alg(rg_keyring_active(kr)), "ES256");
    rg_keyring_free(kr);
    char *a2[] = {"keygen", "--dir", d, "--alg", "RS256", "--no-activate", NULL};
    assert_int_equal(rg_session_cmd_keygen(6, a2), 0);
    kr = rg_session_keys_load(d, 0, &err);
    assert_non_null(kr);
    assert_int_equal(rg_keyring_count(kr), 2);
    assert_string_equal(rg_session_key_kid(rg_keyring_active(kr)), first);
    rg_keyring_free(kr);
    char *a3[] = {"keygen", "--dir", d, "--alg", "HS256", NULL};
    assert_int_equal(rg_session_cmd_keygen(5, a3), 2);
    char *a4[] = {"keygen", "--bogus", NULL};
    assert_int_equal(rg_session_cmd_keygen(2, a4), 2);
}

/* ---- sign.c: ES256 from prepared contexts, shared by threads ------------- */
typedef struct sign_job {
    const rg_session_key *k;
    int bad;
} sign_job;

static void *sign_verify_loop(void *arg)
{
    sign_job *j = arg;
    for (int i = 0; i < 300; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "header.payload-%d-%p", i, (void *)j);
        unsigned char *sig = NULL;
        size_t sl = 0;
        rg_error err = {0};
        if (rg_session_key_sign(j->k, msg, (size_t)n, &sig, &sl, &err) || sl != 64 ||
            !rg_session_key_verify(j->k, msg, (size_t)n, sig, sl) ||
            rg_session_key_verify(j->k, msg, (size_t)n - 1, sig, sl))
            j->bad++;
        free(sig);
    }
    return NULL;
}

/* JOSE R||S (64 bytes) to DER. */
static int raw_to_der(const unsigned char *raw, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_non_null(es);
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)),
                     1);
    int n = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    return n;
}

/* Issue 13: ES256 signs and verifies through contexts made once per key and
 * duplicated per call: what it signs verifies with plain EVP_DigestVerify
 * on the key file, what plain EVP_DigestSign signs it verifies, and eight
 * threads signing and verifying at once on one key all succeed. */
static void test_es256_prepared_contexts_agree_with_openssl_and_threads(void **st)
{
    char *d = *st;
    rg_error err = {0};
    rg_keyring *kr = rg_session_keys_load(d, 1, &err);
    assert_non_null(kr);
    const rg_session_key *k = rg_keyring_active(kr);
    EVP_PKEY *pk = tsh_read_pem(d, rg_session_key_kid(k));
    const char *msg = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0";
    unsigned char *sig = NULL, *der = NULL;
    size_t sl = 0;
    assert_int_equal(rg_session_key_sign(k, msg, strlen(msg), &sig, &sl, &err), 0);
    assert_int_equal(sl, 64);
    int dl = raw_to_der(sig, &der);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestVerify(c, der, (size_t)dl, (const unsigned char *)msg,
                                      strlen(msg)), 1);
    EVP_MD_CTX_free(c);
    OPENSSL_free(der);
    free(sig);
    /* the other way: OpenSSL's own signature (low-S made by hand) */
    c = EVP_MD_CTX_new();
    unsigned char dbuf[128];
    size_t dn = sizeof dbuf;
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(c, dbuf, &dn, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(c);
    const unsigned char *pp = dbuf;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)dn);
    assert_non_null(es);
    unsigned char raw[64];
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    if (!rg_session_es256_low_s(raw + 32)) {
        BIGNUM *order = BN_new(), *t = BN_new();
        BN_hex2bn(&order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
        BN_sub(t, order, s);
        BN_bn2binpad(t, raw + 32, 32);
        BN_free(order);
        BN_free(t);
    }
    ECDSA_SIG_free(es);
    assert_true(rg_session_key_verify(k, msg, strlen(msg), raw, 64));
    raw[5] ^= 1;
    assert_false(rg_session_key_verify(k, msg, strlen(msg), raw, 64));
    EVP_PKEY_free(pk);
    /* threads */
    pthread_t th[8];
    sign_job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (sign_job){k, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sign_verify_loop, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    rg_keyring_free(kr);
}

/* a test that keeps its keys in a fresh temporary directory, *st */
#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, tsh_dir_setup, tsh_dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DIR_TEST(test_keygen_es256_writes_0600_key_and_active),
        DIR_TEST(test_keygen_rs256_and_invalid_alg),
        cmocka_unit_test(test_kid_matches_rfc7638_example),
        DIR_TEST(test_kid_of_es256_matches_independent_thumbprint),
        DIR_TEST(test_kid_matches_jwcrypto_thumbprint),
        DIR_TEST(test_load_creates_dir_and_first_key_when_empty),
        DIR_TEST(test_reload_rotates_active_and_old_key_still_verifies),
        DIR_TEST(test_load_refuses_key_readable_by_others),
        DIR_TEST(test_load_refuses_file_name_not_kid_and_bad_active),
        DIR_TEST(test_cmd_keygen),
        DIR_TEST(test_es256_prepared_contexts_agree_with_openssl_and_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
