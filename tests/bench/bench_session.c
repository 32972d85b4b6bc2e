/* bench_session.c: cost of the session hot paths (DESIGN.md /auth): µs per
 * ES256/RS256 sign, per verify on a cache miss (cached EVP_PKEY), per cache
 * hit, and, as the same-run baseline, libjwt 1.10's jwt_decode with the PEM
 * (re-parsed on every call, LIBRARIES.md section 3). Prints the machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "rolegate/session.h"
#include "rolegate/util.h"
#include "bench_machine.h"
#include "../unit/test_oidc_stub.h"   /* stub_pub_pem */

#define ISS "https://sso.test"

static void machine(void)
{
    struct utsname u;
    uname(&u);
    char model[256];
    int cpus = bench_cpu_model(model, sizeof model);
    printf("machine: %s %s %s %s; cpu: %s x%d\n", u.sysname, u.release, u.version, u.machine,
           model, cpus);
}

static char *pubkey_pem(const char *dir, const char *kid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
    FILE *f = fopen(path, "r");
    EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!pk)
        return NULL;
    char *out = stub_pub_pem(pk);
    EVP_PKEY_free(pk);
    return out;
}

static void run(const char *alg, int n_sign, int n_verify, int n_jwt)
{
    char dir[] = "/tmp/rg-bench-session-XXXXXX";
    if (!mkdtemp(dir))
        exit(1);
    char kid[RG_SESSION_KID_MAX];
    rg_error err = {0};
    if (rg_session_keygen(dir, alg, 1, kid, &err)) {
        fprintf(stderr, "keygen: %s\n", err.message);
        exit(1);
    }
    rg_keyring *kr = rg_session_keys_load(dir, 0, &err);
    int64_t now = rg_now();
    char payload[1024];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"" ISS "\",\"sub\":\"user_01HZXA5R8Q2W3E4R5T6Y7U8I9O\","
             "\"sid\":\"sess_01HZXA5R8Q2W3E4R5T6Y7U8I9O\",\"jti\":\"01HZXA5R8Q2W3E4R5T6Y7U8I9O\","
             "\"org_id\":\"org_01HZXA5R8Q2W3E4R5T6Y7U8I9O\",\"email\":\"ada@example.test\","
             "\"role\":\"admin\",\"roles\":[\"admin\",\"member\"],\"permissions\":[\"billing:read\","
             "\"billing:write\",\"posts:read\",\"posts:write\",\"users:invite\",\"users:view\"],"
             "\"iat\":%lld,\"exp\":%lld}", (long long)now, (long long)now + 3600);
    char *tok = NULL;
    int64_t t0 = rg_mono_us();
    for (int i = 0; i < n_sign; i++) {
        free(tok);
        if (rg_session_sign(kr, payload, strlen(payload), &tok, &err))
            exit(1);
    }
    double sign_us = (double)(rg_mono_us() - t0) / n_sign;

    rg_session_claims c;
    t0 = rg_mono_us();
    for (int i = 0; i < n_verify; i++) {
        if (rg_session_verify(kr, tok, now, 60, ISS, &c, &err)) {
            fprintf(stderr, "verify: %s\n", err.message);
            exit(1);
        }
        rg_session_claims_clear(&c);
    }
    double verify_us = (double)(rg_mono_us() - t0) / n_verify;

    rg_token_cache *cache = rg_token_cache_new(0);
    rg_revocations *revs = rg_revocations_new(60);
    rg_revocations_add(revs, "some-other-sid", now + 3600, now);   /* not empty: real lookup */
    int n_hit = 200000;
    rg_session_verify_cached(kr, cache, revs, tok, now, 60, ISS, &c, &err);
    rg_session_claims_clear(&c);
    unsigned long v0 = rg_keyring_verify_count(kr);
    t0 = rg_mono_us();
    for (int i = 0; i < n_hit; i++) {
        if (rg_session_verify_cached(kr, cache, revs, tok, now, 60, ISS, &c, &err))
            exit(1);
        rg_session_claims_clear(&c);
    }
    double hit_us = (double)(rg_mono_us() - t0) / n_hit;
    if (rg_keyring_verify_count(kr) != v0) {
        fprintf(stderr, "cache hits verified signatures\n");
        exit(1);
    }

    char *pem = pubkey_pem(dir, kid);
    t0 = rg_mono_us();
    for (int i = 0; i < n_jwt; i++) {
        jwt_t *j = NULL;
        if (jwt_decode(&j, tok, (const unsigned char *)pem, (int)strlen(pem)) != 0) {
            fprintf(stderr, "jwt_decode failed\n");
            exit(1);
        }
        jwt_free(j);
    }
    double jwt_us = (double)(rg_mono_us() - t0) / n_jwt;

    printf("%s  token %zu B\n", alg, strlen(tok));
    printf("  sign (cached EVP_PKEY)                 %8.1f us/op  (%d ops)\n", sign_us, n_sign);
    printf("  verify, cache miss (cached EVP_PKEY)   %8.1f us/op  (%d ops)\n", verify_us, n_verify);
    printf("  verify, cache hit (+revocation check)  %8.2f us/op  (%d ops)\n", hit_us, n_hit);
    printf("  baseline libjwt jwt_decode(PEM)        %8.1f us/op  (%d ops)\n", jwt_us, n_jwt);
    free(pem);
    free(tok);
    rg_token_cache_free(cache);
    rg_revocations_free(revs);
    rg_keyring_free(kr);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        exit(1);
}

int main(void)
{
    rg_log_open(NULL, RG_LOG_WARN);
    machine();
    run("ES256", 2000, 2000, 500);
    run("RS256", 300, 3000, 300);
    return 0;
}
