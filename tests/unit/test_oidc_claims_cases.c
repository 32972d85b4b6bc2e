/* test_oidc_claims_cases.c: the one runner of tests/cases/oidc/NNN-name.conf
 * (format: tests/cases/README.md). Each file is the claims of an ID token
 * (and of a userinfo answer), the connection's claim paths, and the
 * identity rg_oidc_finish must give (subject, email, name, sid, groups,
 * overage; R15, R16) or the stable code it must refuse with (the claim
 * checks of OIDC Core 3.1.3.7). The token is signed (RS256) and served by
 * the stub OP of test_oidc_stub.h, so the whole real path runs: token
 * exchange, signature, claim checks, claim reading, userinfo. One cmocka
 * test per file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "rolegate/oidc.h"
#include "rolegate/util.h"
#include "test_oidc_stub.h"
#include "case_conf.h"

#define CASES_DIR "tests/cases/oidc"
#define CLIENT_ID "rg-client"

static const case_key keys[] = {
    {"rule", 0},
    {"groups_claim", 0}, {"email_claim", 0}, {"name_claim", 0},
    {"use_userinfo_for_groups", 0}, {"clock_skew", 0},
    {"id_token", 0}, {"id_token_raw", 0}, {"omit", 0},
    {"userinfo", 0}, {"userinfo_content_type", 0},
    {"expect_error", 0}, {"expect_status", 0},
    {"expect_subject", 0}, {"expect_email", 0}, {"expect_email_verified", 0},
    {"expect_name", 0}, {"expect_sid", 0}, {"expect_groups", 0},
    {"expect_overage", 0}, {"expect_groups_from_userinfo", 0},
    {"expect_userinfo_calls", 0},
    {NULL, 0},
};

static stub_srv *srv;
static EVP_PKEY *key;
static size_t total_checks;

/* ${issuer} ${client_id} ${nonce} ${now} ${now+N} ${now-N} in v. */
static char *placeholders(const case_conf *c, const char *v, const rg_oidc_pending *p,
                          int64_t now)
{
    rg_buf b = {0};
    for (const char *s = v; *s;) {
        const char *m = strstr(s, "${");
        if (!m) {
            rg_buf_puts(&b, s);
            break;
        }
        rg_buf_append(&b, s, (size_t)(m - s));
        const char *end = strchr(m, '}');
        if (!end)
            fail_msg("%s: unterminated ${ in %s", c->path, v);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - m - 2), m + 2);
        if (!strcmp(name, "issuer"))
            rg_buf_puts(&b, srv->issuer);
        else if (!strcmp(name, "client_id"))
            rg_buf_puts(&b, CLIENT_ID);
        else if (!strcmp(name, "nonce"))
            rg_buf_puts(&b, p->nonce);
        else if (!strncmp(name, "now", 3) && (!name[3] || name[3] == '+' || name[3] == '-'))
            rg_buf_printf(&b, "%lld", (long long)(now + (name[3] ? strtol(name + 3, NULL, 10) : 0)));
        else
            fail_msg("%s: unknown placeholder ${%s}", c->path, name);
        s = end + 1;
    }
    return rg_buf_take(&b);
}

static int omitted(char *const *omit, size_t n, const char *claim)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(omit[i], claim))
            return 1;
    return 0;
}

/* The payload to sign: id_token_raw as written, or id_token with the
 * protocol claims a claims case does not care about added when absent
 * (iss, aud, exp, iat, nonce) unless `omit` names them. */
static char *payload_of(const case_conf *c, const rg_oidc_pending *p, int64_t now)
{
    const char *raw = case_raw(c, "id_token_raw"), *obj = case_raw(c, "id_token");
    if (!!raw == !!obj)
        fail_msg("%s: give one of id_token, id_token_raw", c->path);
    if (raw)
        return placeholders(c, raw, p, now);
    char *text = placeholders(c, obj, p, now);
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o))
        fail_msg("%s: id_token is not a JSON object (%s); id_token_raw takes any text", c->path,
                 jerr.text);
    free(text);
    size_t n = 0;
    char **omit = case_list(c, "omit", &n);
    if (!json_object_get(o, "iss") && !omitted(omit, n, "iss"))
        json_object_set_new(o, "iss", json_string(srv->issuer));
    if (!json_object_get(o, "aud") && !omitted(omit, n, "aud"))
        json_object_set_new(o, "aud", json_string(CLIENT_ID));
    if (!json_object_get(o, "exp") && !omitted(omit, n, "exp"))
        json_object_set_new(o, "exp", json_integer((json_int_t)now + 300));
    if (!json_object_get(o, "iat") && !omitted(omit, n, "iat"))
        json_object_set_new(o, "iat", json_integer((json_int_t)now));
    if (!json_object_get(o, "nonce") && !omitted(omit, n, "nonce"))
        json_object_set_new(o, "nonce", json_string(p->nonce));
    case_words_free(omit);
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* A string of the identity against key k: absent means NULL expected. */
static void expect_str(case_conf *c, const char *k, const char *got)
{
    char *want = case_str(c, k);
    c->checks++;
    if ((!want) != (!got) || (want && strcmp(want, got) != 0))
        fail_msg("%s: %s: want %s%s%s, got %s%s%s", c->path, k, want ? "'" : "",
                 want ? want : "(none)", want ? "'" : "", got ? "'" : "", got ? got : "(none)",
                 got ? "'" : "");
    free(want);
}

/* An integer against key k; absent means dflt, or unchecked when dflt < 0. */
static void expect_int(case_conf *c, const char *k, long got, long dflt)
{
    const char *v = case_raw(c, k);
    if (!v && dflt < 0)
        return;
    long want = v ? strtol(v, NULL, 10) : dflt;
    c->checks++;
    if (want != got)
        fail_msg("%s: %s: want %ld, got %ld", c->path, k, want, got);
}

static void run_case(void **state)
{
    char path[512];
    snprintf(path, sizeof path, CASES_DIR "/%s", (const char *)*state);
    case_conf c = {0};
    case_load(&c, path, keys, NULL);
    case_check_rule(&c);

    char *gc = case_str(&c, "groups_claim"), *ec = case_str(&c, "email_claim");
    char *nc = case_str(&c, "name_claim");
    rg_oidc_config cfg = {.issuer = srv->issuer, .client_id = CLIENT_ID,
                          .client_secret = "s3cret", .allow_http_loopback = 1,
                          .redirect_uri = "https://gw.example.com/oidc/callback",
                          .groups_claim = gc, .email_claim = ec, .name_claim = nc,
                          .use_userinfo_for_groups = case_bool(&c, "use_userinfo_for_groups", 0),
                          .clock_skew_s = case_raw(&c, "clock_skew")
                                              ? (int)strtol(case_raw(&c, "clock_skew"), NULL, 10)
                                              : 0};
    rg_error err;
    rg_error_clear(&err);
    rg_oidc_client *cl = rg_oidc_client_new(&cfg, &err);
    if (!cl)
        fail_msg("%s: client: %s %s", c.path, err.code, err.message);
    rg_oidc_pending p;
    char *url = NULL;
    assert_int_equal(rg_oidc_begin(cl, &url, &p, &err), 0);
    free(url);
    int64_t now = rg_now();

    char *payload = payload_of(&c, &p, now);
    char *tok = stub_sign("RS256", key, NULL, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", payload);
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"access_token\":\"at-123\",\"token_type\":\"Bearer\",\"id_token\":\"%s\"}",
                  tok);
    stub_set(srv, &srv->token, b.data);
    rg_buf_free(&b);
    char *ui = case_raw(&c, "userinfo") ? placeholders(&c, case_raw(&c, "userinfo"), &p, now)
                                        : NULL;
    stub_set(srv, &srv->userinfo, ui);
    char *uict = case_str(&c, "userinfo_content_type");
    snprintf(srv->userinfo_ctype, sizeof srv->userinfo_ctype, "%s", uict ? uict : "");
    int ui_before = srv->n_userinfo;

    rg_oidc_identity id;
    int rc = rg_oidc_finish(cl, &p, "code-abc", now, &id, &err);
    const char *want_err = case_raw(&c, "expect_error");
    if (want_err) {
        if (rc == 0)
            fail_msg("%s: accepted (subject %s), want %s", c.path, id.subject, want_err);
        c.checks++;
        if (strcmp(err.code, want_err) != 0)
            fail_msg("%s: want %s, got %s (%s)", c.path, want_err, err.code, err.message);
        expect_int(&c, "expect_status", err.status, -1);
        assert_null(id.subject);   /* a refusal hands back nothing */
        assert_int_equal(id.n_groups, 0);
    } else {
        if (rc != 0)
            fail_msg("%s: refused: %s (%s)", c.path, err.code, err.message);
        if (!case_raw(&c, "expect_subject"))
            fail_msg("%s: an accepted case needs expect_subject", c.path);
        /* the whole identity: an absent key means none / 0 */
        expect_str(&c, "expect_subject", id.subject);
        expect_str(&c, "expect_email", id.email);
        expect_str(&c, "expect_name", id.name);
        expect_str(&c, "expect_sid", id.sid);
        case_expect_list(&c, "expect_groups", 0, (const char *const *)id.groups, id.n_groups);
        expect_int(&c, "expect_overage", id.groups_overage, 0);
        expect_int(&c, "expect_groups_from_userinfo", id.groups_from_userinfo, 0);
        expect_int(&c, "expect_email_verified", id.email_verified, 0);
        assert_string_equal(id.issuer, srv->issuer);
    }
    expect_int(&c, "expect_userinfo_calls", srv->n_userinfo - ui_before, -1);
    if (srv->n_userinfo > ui_before)   /* userinfo is asked with the access token */
        assert_string_equal(srv->last_auth, "Bearer at-123");
    total_checks += c.checks;
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(cl);
    free(ui);
    free(uict);
    free(tok);
    free(payload);
    free(gc);
    free(ec);
    free(nc);
    case_free(&c);
}

int main(int argc, char **argv)
{
    rg_oidc_global_init();
    rg_log_open("/dev/null", RG_LOG_DEBUG);
    key = EVP_RSA_gen(2048);
    srv = stub_start();
    char *jwk = stub_jwk(key, "k1", "RS256");
    rg_buf b = {0};
    rg_buf_printf(&b, "{\"keys\":[%s]}", jwk);
    stub_set(srv, &srv->jwks, b.data);
    rg_buf_free(&b);
    free(jwk);
    int rc = case_run("oidc_claims_cases", CASES_DIR, NULL, argc, argv, run_case, &total_checks);
    stub_stop(srv);
    EVP_PKEY_free(key);
    return rc;
}
