/* test_oidc_verify.c: rg_oidc_finish against a stub OP the test controls
 * (tests/unit/test_oidc_stub.h) so it can mint the tokens a real OP never
 * signs: tampered signatures, alg none, HS256 keyed with the public key,
 * malformed tokens, unknown kid; plus JWKS parsing, PKCE/state generation,
 * client auth methods, size caps, timeouts and threads. The claims (iss, aud,
 * azp, exp, iat, nonce; the groups claim of R16: paths, single string,
 * overage, userinfo) are tests/cases/oidc/, run by test_oidc_claims_cases.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "rolegate/oidc.h"
#include "test_oidc_stub.h"

static EVP_PKEY *k_rsa, *k_rsa2, *k_ec, *k_ec384;
static char *jwks_doc;

typedef struct fx {
    stub_srv *s;
    rg_oidc_client *c;
    rg_oidc_pending p;
    rg_oidc_identity id;
    rg_error err;
    int64_t now;
} fx;

static int group_setup(void **st)
{
    (void)st;
    rg_oidc_global_init();
    rg_log_open("/dev/null", RG_LOG_DEBUG);
    k_rsa = EVP_RSA_gen(2048);
    k_rsa2 = EVP_RSA_gen(2048);
    k_ec = EVP_EC_gen("P-256");
    k_ec384 = EVP_EC_gen("P-384");
    char *j1 = stub_jwk(k_rsa, "rsa1", "RS256"), *j2 = stub_jwk(k_ec, "ec1", NULL);
    char *j3 = stub_jwk(k_ec384, "ec384", "ES384"), *j4 = stub_jwk(k_rsa2, "ps1", "PS256");
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
                  "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}", j1, j2, j3, j4);
    jwks_doc = rg_buf_take(&b);
    free(j1); free(j2); free(j3); free(j4);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    EVP_PKEY_free(k_rsa);
    EVP_PKEY_free(k_rsa2);
    EVP_PKEY_free(k_ec);
    EVP_PKEY_free(k_ec384);
    free(jwks_doc);
    return 0;
}

static rg_oidc_config base_cfg(const stub_srv *s)
{
    rg_oidc_config cfg = {
        .issuer = s->issuer, .client_id = "rg-client", .client_secret = "s3cret:&=",
        .redirect_uri = "https://gw.example.com/oidc/callback", .allow_http_loopback = 1,
        .http_timeout_ms = 2000,
    };
    return cfg;
}

/* A stub, a client on it (cfg tweaked by the test when given) and a begun login. */
/* A config for fx_new with the client id, a short redirect URI, loopback
 * http allowed and the fields given (no secret, no timeout unless given). */
#define SHORT_CFG(...) ((rg_oidc_config){.client_id = "rg-client", .redirect_uri = "https://gw/cb", \
                                         .allow_http_loopback = 1, __VA_ARGS__})

static fx *fx_new(const rg_oidc_config *cfg_in)
{
    fx *f = calloc(1, sizeof *f);
    f->s = stub_start();
    stub_set(f->s, &f->s->jwks, jwks_doc);
    rg_oidc_config cfg = base_cfg(f->s);
    if (cfg_in) {
        cfg = *cfg_in;
        cfg.issuer = f->s->issuer;
    }
    f->c = rg_oidc_client_new(&cfg, &f->err);
    assert_non_null(f->c);
    char *url = NULL;
    assert_int_equal(rg_oidc_begin(f->c, &url, &f->p, &f->err), 0);
    free(url);
    f->now = rg_now();
    return f;
}

static void fx_free(fx *f)
{
    rg_oidc_identity_clear(&f->id);
    rg_oidc_client_free(f->c);
    stub_stop(f->s);
    free(f);
}

/* Standard good claims for f's login. */
static json_t *claims(fx *f)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:[s,s]}", "iss", f->s->issuer, "sub", "u-1",
                     "aud", "rg-client", "exp", (json_int_t)f->now + 300, "iat", (json_int_t)f->now,
                     "nonce", f->p.nonce, "email", "u1@example.com", "name", "User One",
                     "groups", "eng", "ops");
}

/* Serves a token response with the given ID token, then finishes. */
static int finish_token(fx *f, const char *id_token)
{
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"access_token\":\"at-123\",\"token_type\":\"Bearer\",\"id_token\":\"%s\"}", id_token);
    stub_set(f->s, &f->s->token, b.data);
    rg_buf_free(&b);
    rg_oidc_identity_clear(&f->id);
    rg_error_clear(&f->err);
    return rg_oidc_finish(f->c, &f->p, "code-abc", f->now, &f->id, &f->err);
}

/* Signs cl (consumed) with alg/kid and finishes. */
static int finish_signed(fx *f, json_t *cl, const char *alg, const char *kid, EVP_PKEY *pk,
                         const char *hmac)
{
    char hdr[128];
    if (kid)
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", alg);
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char *tok = stub_sign(alg, pk, hmac, hdr, payload);
    free(payload);
    int rc = finish_token(f, tok);
    free(tok);
    return rc;
}

#define assert_reason(f, rc, reason) do { \
        assert_int_not_equal((rc), 0); \
        assert_string_equal((f)->err.code, (reason)); \
        assert_null((f)->id.subject); \
    } while (0)

/* ---- good tokens --------------------------------------------------------- */

static void test_R16_good_rs256_login_reads_identity_and_groups(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    int rc = finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(f->id.issuer, f->s->issuer);
    assert_string_equal(f->id.subject, "u-1");
    assert_string_equal(f->id.email, "u1@example.com");
    assert_string_equal(f->id.name, "User One");
    assert_int_equal(f->id.n_groups, 2);
    assert_string_equal(f->id.groups[0], "eng");
    assert_string_equal(f->id.groups[1], "ops");
    assert_int_equal(f->id.groups_overage, 0);
    /* the token request: form-encoded, PKCE verifier, client_secret_basic
     * (both listed) with id and secret form-encoded before base64 */
    assert_non_null(strstr(f->s->last_body, "grant_type=authorization_code"));
    assert_non_null(strstr(f->s->last_body, "code=code-abc"));
    assert_non_null(strstr(f->s->last_body, "redirect_uri=https%3A%2F%2Fgw.example.com%2Foidc%2Fcallback"));
    char want[128];
    snprintf(want, sizeof want, "code_verifier=%s", f->p.code_verifier);
    assert_non_null(strstr(f->s->last_body, want));
    assert_null(strstr(f->s->last_body, "client_secret"));
    char b64[64];
    rg_b64_encode("rg-client:s3cret%3A%26%3D", 25, b64);
    snprintf(want, sizeof want, "Basic %s", b64);
    assert_string_equal(f->s->last_auth, want);
    fx_free(f);
}

static void test_es256_and_es384_and_ps256_verify(void **st)
{
    (void)st;
    fx *f = fx_new(&SHORT_CFG(.allowed_algs = "ES256,ES384 PS256"));
    assert_int_equal(finish_signed(f, claims(f), "ES256", "ec1", k_ec, NULL), 0);
    assert_string_equal(f->id.subject, "u-1");
    assert_int_equal(finish_signed(f, claims(f), "ES384", "ec384", k_ec384, NULL), 0);
    assert_int_equal(finish_signed(f, claims(f), "PS256", "ps1", k_rsa2, NULL), 0);
    /* public client: no secret, client_id in the body, no Authorization */
    assert_non_null(strstr(f->s->last_body, "client_id=rg-client"));
    assert_string_equal(f->s->last_auth, "");
    fx_free(f);
}

/* ---- signature and algorithm attacks -------------------------------------- */

static void test_tampered_signature_is_bad_signature(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    json_t *cl = claims(f);
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char *tok = stub_sign("RS256", k_rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload);
    size_t n = strlen(tok);
    tok[n - 5] = tok[n - 5] == 'A' ? 'B' : 'A';
    assert_reason(f, finish_token(f, tok), "oidc_bad_signature");
    free(tok);
    /* a valid signature over different claims: swap in another payload */
    tok = stub_sign("RS256", k_rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", payload);
    cl = claims(f);
    json_object_set_new(cl, "groups", json_pack("[s]", "admins"));
    char *evil = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char *ep = malloc(rg_b64url_len(strlen(evil)) + 1);
    rg_b64url_encode(evil, strlen(evil), ep);
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    rg_buf b = {0};
    rg_buf_printf(&b, "%.*s.%s%s", (int)(d1 - tok), tok, ep, d2);
    assert_reason(f, finish_token(f, b.data), "oidc_bad_signature");
    rg_buf_free(&b);
    free(ep);
    free(evil);
    free(tok);
    free(payload);
    fx_free(f);
}

static void test_alg_none_is_not_allowed(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    assert_reason(f, finish_signed(f, claims(f), "none", "rsa1", NULL, NULL), "oidc_alg_not_allowed");
    assert_reason(f, finish_signed(f, claims(f), "none", NULL, NULL, NULL), "oidc_alg_not_allowed");
    /* and it cannot be configured */
    rg_oidc_config cfg = base_cfg(f->s);
    cfg.allowed_algs = "RS256 none";
    rg_error e;
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_config_invalid");
    fx_free(f);
}

static void test_hs256_with_public_key_is_refused(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    char *pem = stub_pub_pem(k_rsa);
    assert_reason(f, finish_signed(f, claims(f), "HS256", "rsa1", NULL, pem), "oidc_alg_not_allowed");
    fx_free(f);
    /* even with HS256 explicitly allowed, the HMAC key is the client secret,
     * never the public key: the confused token fails, a secret-keyed one passes */
    f = fx_new(&SHORT_CFG(.client_secret = "hs-secret-0123456789", .allowed_algs = "RS256 HS256"));
    assert_reason(f, finish_signed(f, claims(f), "HS256", "rsa1", NULL, pem), "oidc_bad_signature");
    assert_int_equal(finish_signed(f, claims(f), "HS256", NULL, NULL, "hs-secret-0123456789"), 0);
    free(pem);
    fx_free(f);
}

static void test_alg_must_fit_the_key(void **st)
{
    (void)st;
    rg_oidc_config cfg = SHORT_CFG(.allowed_algs = "RS256 ES256 PS256 ES384");
    fx *f = fx_new(&cfg);
    /* RS256 header naming the EC key */
    assert_reason(f, finish_signed(f, claims(f), "RS256", "ec1", k_rsa, NULL), "oidc_alg_not_allowed");
    /* ES256 header naming the P-384 key */
    assert_reason(f, finish_signed(f, claims(f), "ES256", "ec384", k_ec, NULL), "oidc_alg_not_allowed");
    /* PS256 on the key whose JWK says alg RS256 */
    assert_reason(f, finish_signed(f, claims(f), "PS256", "rsa1", k_rsa, NULL), "oidc_alg_not_allowed");
    /* an allowed alg outside the connection's list */
    rg_oidc_client_free(f->c);
    cfg.issuer = f->s->issuer;
    cfg.allowed_algs = "ES256";
    f->c = rg_oidc_client_new(&cfg, &f->err);
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), "oidc_alg_not_allowed");
    fx_free(f);
}

static void test_malformed_tokens(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    assert_reason(f, finish_token(f, "abc.def"), "oidc_id_token_malformed");
    assert_reason(f, finish_token(f, "a.b.c.d.e"), "oidc_id_token_malformed");
    assert_reason(f, finish_token(f, "e30.e30.!!"), "oidc_id_token_malformed");
    char *tok = stub_sign("RS256", k_rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"x\"]}", "{}");
    assert_reason(f, finish_token(f, tok), "oidc_id_token_malformed");
    free(tok);
    /* signed, but the payload is not an object */
    tok = stub_sign("RS256", k_rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1]");
    assert_reason(f, finish_token(f, tok), "oidc_id_token_malformed");
    free(tok);
    /* over 64 KiB */
    char *big = malloc(70000);
    memset(big, 'A', 69999);
    big[69999] = 0;
    big[10] = '.';
    big[20] = '.';
    assert_reason(f, finish_token(f, big), "oidc_id_token_malformed");
    free(big);
    fx_free(f);
}

/* ---- claims ------------------------------------------------------------------
 * The claim checks (iss, aud, azp, exp, iat, nbf, nonce, sub) and the claim
 * reading (groups paths, overage, userinfo, email, name) are data:
 * tests/cases/oidc/, run by test_oidc_claims_cases.c. */

/* ---- keys ------------------------------------------------------------------- */

static void test_unknown_kid_refetches_once_then_fails(void **st)
{
    (void)st;
    rg_oidc_config cfg = SHORT_CFG(.jwks_min_refresh_s = 3600);
    fx *f = fx_new(&cfg);
    assert_int_equal(finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), 0);
    assert_int_equal(f->s->n_jwks, 1);
    /* first unknown kid: JWKS cached recently, refetch rate-limited */
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa-new", k_rsa, NULL), "oidc_unknown_kid");
    assert_int_equal(f->s->n_jwks, 1);
    fx_free(f);

    cfg.jwks_min_refresh_s = -1; /* no interval: every unknown kid may refetch once */
    f = fx_new(&cfg);
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa-new", k_rsa, NULL), "oidc_unknown_kid");
    assert_int_equal(f->s->n_jwks, 2); /* the first fetch and exactly one refetch */
    rg_oidc_stats stats;
    rg_oidc_client_stats(f->c, &stats);
    assert_int_equal(stats.jwks_fetches, 2);
    /* the IdP publishes the new key: the next login refetches and passes */
    char *j = stub_jwk(k_rsa2, "rsa-new", "RS256");
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"keys\":[%s]}", j);
    stub_set(f->s, &f->s->jwks, b.data);
    assert_int_equal(finish_signed(f, claims(f), "RS256", "rsa-new", k_rsa2, NULL), 0);
    assert_int_equal(f->s->n_jwks, 3);
    /* the old key is gone from the new JWKS: refused */
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), "oidc_unknown_kid");
    rg_buf_free(&b);
    free(j);
    fx_free(f);
}

static void test_jwks_parsing_skips_unusable_keys(void **st)
{
    (void)st;
    rg_error e;
    rg_oidc_keyset *ks = rg_oidc_keyset_parse(jwks_doc, strlen(jwks_doc), &e);
    assert_non_null(ks);
    assert_int_equal(rg_oidc_keyset_size(ks), 4);      /* the Ed25519 key is skipped */
    assert_true(rg_oidc_keyset_has_kid(ks, "ec384"));
    assert_false(rg_oidc_keyset_has_kid(ks, "ed"));
    rg_oidc_keyset_free(ks);
    /* small RSA, P-521, use=enc, alg not fitting, point off the curve */
    EVP_PKEY *small = EVP_RSA_gen(1024), *p521 = EVP_EC_gen("P-521");
    char *a = stub_jwk(small, "small", NULL), *b = stub_jwk(p521, "p521", NULL);
    char *c = stub_jwk(k_ec, "ec-rs", "RS256"), *d = stub_jwk(k_ec, "x", NULL);
    char *y = strstr(d, "\"y\":\"");
    y[5] = y[5] == 'A' ? 'B' : 'A';
    rg_buf doc = {0};
    rg_buf_printf(&doc, "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                  a, b, c, d);
    assert_null(rg_oidc_keyset_parse(doc.data, doc.len, &e));
    assert_string_equal(e.code, "oidc_discovery_failed");
    assert_null(rg_oidc_keyset_parse("{\"keys\":3}", 10, &e));
    rg_buf_free(&doc);
    free(a); free(b); free(c); free(d);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p521);
}

static void test_jws_verify_with_jwk_helper(void **st)
{
    (void)st;
    rg_error e;
    char *jwk = stub_jwk(k_ec, "e", "ES256");
    char *tok = stub_sign("ES256", k_ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"e\"}", "{\"a\":1}");
    assert_int_equal(rg_oidc_jws_verify_with_jwk(tok, jwk, NULL, &e), 0);
    char *last = tok + strlen(tok) - 3;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_not_equal(rg_oidc_jws_verify_with_jwk(tok, jwk, NULL, &e), 0);
    assert_string_equal(e.code, "oidc_bad_signature");
    free(tok);
    free(jwk);
}

/* ---- transport ------------------------------------------------------------ */

static void test_client_secret_post_when_only_listed(void **st)
{
    (void)st;
    stub_srv *s = stub_start();
    s->post_only = 1;
    stub_set(s, &s->jwks, jwks_doc);
    rg_oidc_config cfg = base_cfg(s);
    fx f0 = {.s = s};
    fx *f = &f0;
    f->c = rg_oidc_client_new(&cfg, &f->err);
    char *url = NULL;
    assert_int_equal(rg_oidc_begin(f->c, &url, &f->p, &f->err), 0);
    free(url);
    f->now = rg_now();
    assert_int_equal(finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), 0);
    assert_non_null(strstr(s->last_body, "client_id=rg-client"));
    assert_non_null(strstr(s->last_body, "client_secret=s3cret%3A%26%3D"));
    assert_string_equal(s->last_auth, "");
    rg_oidc_identity_clear(&f->id);
    rg_oidc_client_free(f->c);
    stub_stop(s);
}

static void test_token_endpoint_error_is_exchange_failed(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    stub_set(f->s, &f->s->token, "{\"error\":\"invalid_grant\",\"error_description\":\"code <b>used</b>\"}");
    f->s->token_status = 400;
    int rc = rg_oidc_finish(f->c, &f->p, "code-1", f->now, &f->id, &f->err);
    assert_reason(f, rc, "oidc_token_exchange_failed");
    assert_non_null(strstr(f->err.message, "invalid_grant"));
    assert_null(strstr(f->err.message, "<b>"));
    /* 200 without an id_token */
    f->s->token_status = 200;
    stub_set(f->s, &f->s->token, "{\"access_token\":\"x\"}");
    rc = rg_oidc_finish(f->c, &f->p, "code-1", f->now, &f->id, &f->err);
    assert_reason(f, rc, "oidc_id_token_malformed");
    fx_free(f);
}

static void test_token_endpoint_timeout(void **st)
{
    (void)st;
    fx *f = fx_new(&SHORT_CFG(.http_timeout_ms = 200));
    f->s->token_delay_ms = 700;
    stub_set(f->s, &f->s->token, "{}");
    int64_t t0 = rg_mono_us();
    int rc = rg_oidc_finish(f->c, &f->p, "code-1", f->now, &f->id, &f->err);
    int64_t took = rg_mono_us() - t0;
    assert_reason(f, rc, "oidc_token_exchange_failed");
    assert_int_equal(f->err.status, 502);
    assert_true(took < 650000);
    fx_free(f);
}

static void test_documents_over_the_size_cap_are_refused(void **st)
{
    (void)st;
    rg_oidc_config cfg = SHORT_CFG(.max_doc_bytes = 1024);
    fx *f = fx_new(&cfg); /* discovery (about 400 bytes) fits */
    /* the JWKS with four keys is over 1 KiB */
    assert_true(strlen(jwks_doc) > 1024);
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), "oidc_discovery_failed");
    assert_non_null(strstr(f->err.message, "over 1024"));
    fx_free(f);
    /* the same without Content-Length: caught by counting bytes as they come */
    f = fx_new(&cfg);
    f->s->no_length = 1;
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), "oidc_discovery_failed");
    assert_non_null(strstr(f->err.message, "over 1024"));
    f->s->no_length = 0;
    fx_free(f);
}

static void test_discovery_checks(void **st)
{
    (void)st;
    stub_srv *s = stub_start();
    rg_oidc_config cfg = base_cfg(s);
    rg_error e;
    char *url = NULL;
    rg_oidc_pending p;
    /* issuer in the document differs (trailing slash) */
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"issuer\":\"%s/\",\"authorization_endpoint\":\"%s/a\",\"token_endpoint\":\"%s/t\","
                  "\"jwks_uri\":\"%s/j\"}", s->issuer, s->issuer, s->issuer, s->issuer);
    stub_set(s, &s->disc, b.data);
    rg_buf_free(&b);
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &e);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_issuer_mismatch");
    assert_null(url);
    /* plain-http token endpoint off loopback */
    rg_buf_printf(&b, "{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/a\",\"token_endpoint\":"
                  "\"http://idp.example.com/t\",\"jwks_uri\":\"%s/j\"}", s->issuer, s->issuer, s->issuer);
    stub_set(s, &s->disc, b.data);
    rg_buf_free(&b);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_insecure_issuer");
    /* missing jwks_uri */
    rg_buf_printf(&b, "{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/a\",\"token_endpoint\":\"%s/t\"}",
                  s->issuer, s->issuer, s->issuer);
    stub_set(s, &s->disc, b.data);
    rg_buf_free(&b);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_discovery_failed");
    rg_oidc_client_free(c);
    stub_stop(s);
    /* nobody listening */
    s = stub_start();
    cfg = base_cfg(s);
    char dead[64];
    snprintf(dead, sizeof dead, "%s", s->issuer);
    cfg.issuer = dead;
    stub_stop(s);
    c = rg_oidc_client_new(&cfg, &e);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_discovery_failed");
    assert_int_equal(e.status, 502);
    rg_oidc_client_free(c);
}

static void test_discovery_is_cached_for_its_ttl(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    char *url = NULL;
    rg_oidc_pending p;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rg_oidc_begin(f->c, &url, &p, &f->err), 0);
        free(url);
    }
    assert_int_equal(f->s->n_disc, 1);
    rg_oidc_client_free(f->c);
    rg_oidc_config cfg = base_cfg(f->s);
    cfg.discovery_ttl_s = -1; /* zero TTL: fetched on every use */
    f->c = rg_oidc_client_new(&cfg, &f->err);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rg_oidc_begin(f->c, &url, &p, &f->err), 0);
        free(url);
    }
    assert_int_equal(f->s->n_disc, 3);
    fx_free(f);
}

/* A refresh that cannot reach the IdP keeps the last discovery document
 * (RG_EUNREACHABLE); one the IdP answers wrongly does not (RG_EUPSTREAM):
 * both are 502, the kind tells them apart (issue 16 item 5). */
static void test_discovery_stale_only_when_the_idp_is_unreachable(void **st)
{
    (void)st;
    stub_srv *s = stub_start();
    rg_oidc_config cfg = base_cfg(s);
    cfg.discovery_ttl_s = -1; /* zero TTL: refreshed on every use */
    char issuer[64];
    snprintf(issuer, sizeof issuer, "%s", s->issuer);
    cfg.issuer = issuer;
    rg_error e;
    rg_error_clear(&e);
    char *url = NULL;
    rg_oidc_pending p;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &e);
    assert_non_null(c);
    assert_int_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    free(url);
    url = NULL;
    stub_stop(s); /* nobody listening now: the stale document is used */
    assert_int_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_non_null(url);
    free(url);
    url = NULL;
    rg_oidc_client_free(c);
    /* the IdP answers, with another issuer: refused, nothing stale */
    s = stub_start();
    cfg = base_cfg(s);
    cfg.discovery_ttl_s = -1;
    c = rg_oidc_client_new(&cfg, &e);
    assert_int_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    free(url);
    url = NULL;
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"issuer\":\"%s/\",\"authorization_endpoint\":\"%s/a\",\"token_endpoint\":\"%s/t\","
                  "\"jwks_uri\":\"%s/j\"}", s->issuer, s->issuer, s->issuer, s->issuer);
    stub_set(s, &s->disc, b.data);
    rg_buf_free(&b);
    rg_error_clear(&e);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_issuer_mismatch");
    assert_int_equal(e.status, 502);
    assert_null(url);
    rg_oidc_client_free(c);
    stub_stop(s);
}

static void test_insecure_issuer_config(void **st)
{
    (void)st;
    rg_error e;
    rg_oidc_config cfg = {.issuer = "http://127.0.0.1:9", .client_id = "c", .redirect_uri = "https://gw/cb"};
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_insecure_issuer");
    cfg.allow_http_loopback = 1;
    cfg.issuer = "http://idp.example.com";
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_insecure_issuer");
    cfg.issuer = "http://127.0.0.1@idp.example.com";
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_insecure_issuer");
    cfg.issuer = "http://[::1]:8080";
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &e);
    assert_non_null(c);
    rg_oidc_client_free(c);
    cfg.issuer = "https://idp.example.com";
    cfg.allow_http_loopback = 0;
    c = rg_oidc_client_new(&cfg, &e);
    assert_non_null(c);
    rg_oidc_client_free(c);
    cfg.issuer = "https://idp.example.com/?tenant=1";
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_config_invalid");
    cfg.issuer = "not a url";
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_config_invalid");
    cfg.issuer = "https://idp.example.com";
    cfg.scopes = "email profile";
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_config_invalid");
    cfg.scopes = NULL;
    cfg.allowed_algs = "HS256"; /* HMAC needs the client secret as its key */
    assert_null(rg_oidc_client_new(&cfg, &e));
    assert_string_equal(e.code, "oidc_config_invalid");
}

static void test_https_is_verified_and_ca_file_pins_a_private_idp(void **st)
{
    (void)st;
    char dir[] = "/tmp/rg-oidc-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[512], cert[64], key[64];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout %s -out %s -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             ">/dev/null 2>&1", key, cert);
    assert_int_equal(system(cmd), 0);
    stub_srv *s = stub_start_tls(cert, key);
    stub_set(s, &s->jwks, jwks_doc);
    rg_oidc_config cfg = base_cfg(s);
    cfg.allow_http_loopback = 0;
    rg_error e;
    rg_oidc_pending p;
    char *url = NULL;
    /* self-signed: refused with the system CAs, verification is never off */
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &e);
    assert_non_null(c);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &e), 0);
    assert_string_equal(e.code, "oidc_discovery_failed");
    assert_int_equal(s->n_disc, 0);
    rg_oidc_client_free(c);
    /* pinned with ca_file: a whole login over https */
    cfg.ca_file = cert;
    fx f0 = {.s = s}, *f = &f0;
    f->c = rg_oidc_client_new(&cfg, &f->err);
    assert_int_equal(rg_oidc_begin(f->c, &url, &f->p, &f->err), 0);
    free(url);
    f->now = rg_now();
    assert_int_equal(finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), 0);
    assert_string_equal(f->id.subject, "u-1");
    rg_oidc_identity_clear(&f->id);
    rg_oidc_client_free(f->c);
    stub_stop(s);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* ---- begin / callback --------------------------------------------------- */

static const char *qparam(const char *url, const char *name, char *out, size_t outsz)
{
    char key[40];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = url;
    while ((p = strstr(p, key)) && p[-1] != '?' && p[-1] != '&')
        p++;
    if (!p)
        return NULL;
    p += strlen(key);
    snprintf(out, outsz, "%.*s", (int)strcspn(p, "&"), p);
    return out;
}

static void test_begin_builds_pkce_state_and_nonce(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    char *url = NULL;
    rg_oidc_pending p1, p2;
    assert_int_equal(rg_oidc_begin(f->c, &url, &p1, &f->err), 0);
    char v[256];
    char prefix[100];
    snprintf(prefix, sizeof prefix, "%s/authorize?x=1&", f->s->issuer); /* existing query kept */
    assert_memory_equal(url, prefix, strlen(prefix));
    assert_string_equal(qparam(url, "response_type", v, sizeof v), "code");
    assert_string_equal(qparam(url, "client_id", v, sizeof v), "rg-client");
    assert_string_equal(qparam(url, "redirect_uri", v, sizeof v), "https%3A%2F%2Fgw.example.com%2Foidc%2Fcallback");
    assert_string_equal(qparam(url, "scope", v, sizeof v), "openid%20email%20profile");
    assert_string_equal(qparam(url, "state", v, sizeof v), p1.state);
    assert_string_equal(qparam(url, "nonce", v, sizeof v), p1.nonce);
    assert_string_equal(qparam(url, "code_challenge_method", v, sizeof v), "S256");
    /* S256: base64url(sha256(verifier)) */
    unsigned char md[32];
    unsigned int ml;
    EVP_Digest(p1.code_verifier, strlen(p1.code_verifier), md, &ml, EVP_sha256(), NULL);
    char want[64];
    rg_b64url_encode(md, 32, want);
    assert_string_equal(qparam(url, "code_challenge", v, sizeof v), want);
    assert_true(strlen(p1.code_verifier) >= 43 && strlen(p1.code_verifier) <= 128);
    assert_true(strlen(p1.state) >= 22 && strlen(p1.nonce) >= 22); /* >= 128 bits */
    assert_true(p1.created_at > 0);
    free(url);
    assert_int_equal(rg_oidc_begin(f->c, &url, &p2, &f->err), 0);
    free(url);
    assert_string_not_equal(p1.state, p2.state);
    assert_string_not_equal(p1.nonce, p2.nonce);
    assert_string_not_equal(p1.code_verifier, p2.code_verifier);
    fx_free(f);
}

static void test_callback_check_state_iss_and_idp_error(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    rg_error e;
    assert_int_equal(rg_oidc_callback_check(f->c, &f->p, f->p.state, NULL, &e), 0);
    assert_int_equal(rg_oidc_callback_check(f->c, &f->p, f->p.state, f->s->issuer, &e), 0);
    assert_int_not_equal(rg_oidc_callback_check(f->c, &f->p, "forged", NULL, &e), 0);
    assert_string_equal(e.code, "oidc_state_mismatch");
    assert_int_not_equal(rg_oidc_callback_check(f->c, &f->p, NULL, NULL, &e), 0);
    assert_int_not_equal(rg_oidc_callback_check(f->c, &f->p, f->p.state, "https://evil.example", &e), 0);
    assert_string_equal(e.code, "oidc_wrong_issuer");
    assert_int_not_equal(rg_oidc_idp_error("access_denied<script>\n", "User said <no>", &e), 0);
    assert_string_equal(e.code, "oidc_idp_error");
    assert_int_equal(e.status, 401);
    assert_non_null(strstr(e.message, "access_deniedscript"));
    assert_null(strchr(e.message, '<'));
    assert_null(strstr(e.message, "User said"));
    fx_free(f);
}

static void test_old_pending_is_refused(void **st)
{
    (void)st;
    fx *f = fx_new(NULL);
    f->p.created_at = f->now - 601;
    assert_reason(f, finish_signed(f, claims(f), "RS256", "rsa1", k_rsa, NULL), "oidc_state_expired");
    assert_int_equal(f->s->n_token, 0); /* refused before the code is spent */
    fx_free(f);
}

/* ---- threads ---------------------------------------------------------------- */

typedef struct worker { fx *f; int ok; } worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 15; i++) {
        rg_oidc_identity id;
        rg_error e;
        char *url = NULL;
        rg_oidc_pending p;
        if (rg_oidc_begin(w->f->c, &url, &p, &e) == 0)
            free(url);
        if (rg_oidc_finish(w->f->c, &w->f->p, "code", w->f->now, &id, &e) == 0 &&
            strcmp(id.subject, "u-1") == 0)
            w->ok++;
        rg_oidc_identity_clear(&id);
    }
    return NULL;
}

static void test_concurrent_logins_share_one_client(void **st)
{
    (void)st;
    /* zero TTLs: every call refetches discovery and JWKS, so snapshots are
     * swapped while other threads still hold references to the old ones */
    fx *f = fx_new(&SHORT_CFG(.discovery_ttl_s = -1, .jwks_min_refresh_s = -1));
    json_t *cl = claims(f);
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char *tok = stub_sign("ES256", k_ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", payload);
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"id_token\":\"%s\"}", tok);
    stub_set(f->s, &f->s->token, b.data);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.f = f};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 15);
    }
    assert_true(f->s->n_jwks >= 60);
    rg_buf_free(&b);
    free(tok);
    free(payload);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R16_good_rs256_login_reads_identity_and_groups),
        cmocka_unit_test(test_es256_and_es384_and_ps256_verify),
        cmocka_unit_test(test_tampered_signature_is_bad_signature),
        cmocka_unit_test(test_alg_none_is_not_allowed),
        cmocka_unit_test(test_hs256_with_public_key_is_refused),
        cmocka_unit_test(test_alg_must_fit_the_key),
        cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_unknown_kid_refetches_once_then_fails),
        cmocka_unit_test(test_jwks_parsing_skips_unusable_keys),
        cmocka_unit_test(test_jws_verify_with_jwk_helper),
        cmocka_unit_test(test_client_secret_post_when_only_listed),
        cmocka_unit_test(test_token_endpoint_error_is_exchange_failed),
        cmocka_unit_test(test_token_endpoint_timeout),
        cmocka_unit_test(test_documents_over_the_size_cap_are_refused),
        cmocka_unit_test(test_discovery_checks),
        cmocka_unit_test(test_discovery_is_cached_for_its_ttl),
        cmocka_unit_test(test_discovery_stale_only_when_the_idp_is_unreachable),
        cmocka_unit_test(test_insecure_issuer_config),
        cmocka_unit_test(test_https_is_verified_and_ca_file_pins_a_private_idp),
        cmocka_unit_test(test_begin_builds_pkce_state_and_nonce),
        cmocka_unit_test(test_callback_check_state_iss_and_idp_error),
        cmocka_unit_test(test_old_pending_is_refused),
        cmocka_unit_test(test_concurrent_logins_share_one_client),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
