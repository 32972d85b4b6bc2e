/* bench_oidc.c: CPU cost of rg_oidc_finish without the IdP's own time. The
 * token endpoint and JWKS are the local stub of tests/unit/test_oidc_stub.h
 * serving a pre-signed ID token (signing is the IdP's cost, done once); the
 * JWKS is cached after the first call. Reported per call: this thread's CPU
 * µs, split into the code exchange (HTTP) and the verification, plus wall µs;
 * and same-run baselines: one raw EVP verify on a cached key, and
 * rg_oidc_jws_verify alone. Usage: bench_oidc [iterations] (default 2000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "rolegate/oidc.h"
#include "../unit/test_oidc_stub.h"
#include "bench_machine.h"

static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void machine(void)
{
    struct utsname u;
    uname(&u);
    char model[256];
    bench_cpu_model(model, sizeof model);
    printf("machine: %s %s, %ld cpus, %s; %s; curl %s\n", u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), model, OpenSSL_version(OPENSSL_VERSION),
           curl_version_info(CURLVERSION_NOW)->version);
}

static void bench_alg(const char *alg, EVP_PKEY *pk, const char *kid, int iters)
{
    stub_srv *s = stub_start();
    char *jwk = stub_jwk(pk, kid, alg);
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"keys\":[%s]}", jwk);
    stub_set(s, &s->jwks, b.data);
    rg_buf_free(&b);
    rg_oidc_config cfg = {.issuer = s->issuer, .client_id = "bench", .client_secret = "bench-secret",
                          .redirect_uri = "https://gw/cb", .allow_http_loopback = 1,
                          .allowed_algs = alg, .pending_max_age_s = -1};
    rg_error err;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    rg_oidc_pending p = {0};
    char *url = NULL;
    if (!c || rg_oidc_begin(c, &url, &p, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.message);
        exit(1);
    }
    free(url);
    p.created_at = 0;
    int64_t now = rg_now();
    json_t *cl = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:[s,s,s]}", "iss", s->issuer, "sub", "u-1",
                           "aud", "bench", "exp", (json_int_t)now + 3600, "iat", (json_int_t)now,
                           "nonce", p.nonce, "email", "u1@example.com", "name", "User One",
                           "groups", "eng", "ops", "admins");
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char hdr[96];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    char *tok = stub_sign(alg, pk, NULL, hdr, payload);
    rg_buf_printf(&b, "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"id_token\":\"%s\"}", tok);
    stub_set(s, &s->token, b.data);
    rg_buf_free(&b);

    rg_oidc_identity id;
    if (rg_oidc_finish(c, &p, "code", now, &id, &err) != 0) { /* warm: discovery + JWKS */
        fprintf(stderr, "bench: %s %s\n", err.code, err.message);
        exit(1);
    }
    rg_oidc_identity_clear(&id);
    int64_t ex_cpu = 0, ver_cpu = 0, ex_wall = 0, ver_wall = 0;
    int64_t c0 = cpu_us(), w0 = rg_mono_us();
    for (int i = 0; i < iters; i++) {
        if (rg_oidc_finish(c, &p, "code", now, &id, &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.message);
            exit(1);
        }
        rg_oidc_identity_clear(&id);
        rg_oidc_timing t;
        rg_oidc_last_timing(&t);
        ex_cpu += t.exchange_cpu_us;
        ver_cpu += t.verify_cpu_us;
        ex_wall += t.exchange_wall_us;
        ver_wall += t.verify_wall_us;
    }
    int64_t tot_cpu = cpu_us() - c0, tot_wall = rg_mono_us() - w0;
    printf("finish %s: n=%d cpu_us/op=%.1f (exchange %.1f, verify %.1f) wall_us/op=%.1f "
           "(exchange %.1f incl. stub, verify %.1f)\n", alg, iters, (double)tot_cpu / iters,
           (double)ex_cpu / iters, (double)ver_cpu / iters, (double)tot_wall / iters,
           (double)ex_wall / iters, (double)ver_wall / iters);

    /* baselines in the same run: the JWS layer alone, and one raw EVP verify */
    rg_oidc_keyset *ks = rg_oidc_keyset_parse(s->jwks, strlen(s->jwks), &err);
    unsigned mask = 0;
    rg_oidc_algs_parse(alg, &mask, &err);
    rg_oidc_jws *j = NULL;
    rg_oidc_jws_parse(tok, &j, &err);
    int n2 = iters * 5;
    c0 = cpu_us();
    for (int i = 0; i < n2; i++)
        if (rg_oidc_jws_verify(j, ks, mask, NULL, &err) != 0)
            exit(1);
    double jws_us = (double)(cpu_us() - c0) / n2;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[512];
    size_t sl = sizeof sig;
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk);
    EVP_DigestSign(md, sig, &sl, (const unsigned char *)payload, strlen(payload));
    c0 = cpu_us();
    for (int i = 0; i < n2; i++) {
        EVP_MD_CTX_reset(md);
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk);
        if (EVP_DigestVerify(md, sig, sl, (const unsigned char *)payload, strlen(payload)) != 1)
            exit(1);
    }
    double raw_us = (double)(cpu_us() - c0) / n2;
    printf("baseline %s: rg_oidc_jws_verify cpu_us/op=%.1f; raw EVP_DigestVerify (cached key) "
           "cpu_us/op=%.1f\n", alg, jws_us, raw_us);
    EVP_MD_CTX_free(md);
    rg_oidc_jws_free(j);
    rg_oidc_keyset_free(ks);
    free(tok);
    free(payload);
    free(jwk);
    rg_oidc_client_free(c);
    stub_stop(s);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters <= 0)
        iters = 2000;
    rg_oidc_global_init();
    rg_log_open("/dev/null", RG_LOG_ERROR);
    machine();
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
    bench_alg("RS256", rsa, "r1", iters);
    bench_alg("ES256", ec, "e1", iters);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}
