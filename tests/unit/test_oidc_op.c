/* test_oidc_op.c: the relying party against a real, certified OpenID Provider
 * (node tests/oidc-op/op.mjs, the oidc-provider package) on a free loopback
 * port. Each login drives the authorize step over HTTP with libcurl (cookies
 * kept, redirects followed by hand, auto-login by login_hint) up to the
 * redirect_uri, then calls rg_oidc_finish with the real code. Covers good
 * logins (R16 groups from `groups`, from `realm_access.roles`, a single
 * string, from userinfo, overage), code reuse, wrong nonce, issuer mismatch,
 * key rotation at the OP, plain-http issuers, IdP errors, client auth. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include "rolegate/oidc.h"
#include "rolegate/util.h"

#define CLIENT_ID     "rg-test"
#define CLIENT_SECRET "rg-test-secret-0123456789"
#define REDIRECT_URI  "http://127.0.0.1:9/oidc/callback"  /* never contacted */

typedef struct op_proc {
    pid_t pid;
    int stdin_fd;
    int port;
    char issuer[64];
} op_proc;

static op_proc op_main;

/* One try: starts the OP and waits 30 s for its ready line. On failure the
 * child is killed and reaped (a leaked node would keep every descriptor this
 * process inherited, a lock file's among them). */
static int op_start_once(op_proc *op, const char *auth_methods)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (!getenv("OIDC_OP_DEBUG")) {
            int dn = open("/dev/null", O_WRONLY);
            dup2(dn, 2);
        }
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        const char *argv[] = {"node", "tests/oidc-op/op.mjs", "--port", "0",
                              "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
                              "--redirect-uri", REDIRECT_URI,
                              auth_methods ? "--auth-methods" : NULL, auth_methods, NULL};
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    op->pid = pid;
    op->stdin_fd = in[1];
    char line[256];
    size_t n = 0;
    int64_t deadline = rg_mono_us() + 30 * 1000000LL;
    while (n < sizeof line - 1 && !memchr(line, '\n', n)) {
        struct pollfd pf = {.fd = out[0], .events = POLLIN};
        int left = (int)((deadline - rg_mono_us()) / 1000);
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        ssize_t r = read(out[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = 0;
    }
    line[n] = 0;
    close(out[0]);
    if (sscanf(line, "ready port=%d issuer=%63s", &op->port, op->issuer) != 2) {
        fprintf(stderr, "oidc-op did not start (npm ci in tests/oidc-op?): %s\n", line);
        close(op->stdin_fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        op->pid = 0;
        return -1;
    }
    return 0;
}

/* Starts the OP; auth_methods may be NULL. Returns 0 once it printed ready.
 * Under load node has been seen stuck before it listens: a second try. */
static int op_start(op_proc *op, const char *auth_methods)
{
    return op_start_once(op, auth_methods) == 0 ? 0 : op_start_once(op, auth_methods);
}

static void op_stop(op_proc *op)
{
    if (op->pid <= 0)
        return;
    close(op->stdin_fd);
    kill(op->pid, SIGTERM);
    waitpid(op->pid, NULL, 0);
    op->pid = 0;
}

static int group_setup(void **st)
{
    (void)st;
    rg_oidc_global_init();
    rg_log_open("/dev/null", RG_LOG_DEBUG);
    return op_start(&op_main, NULL);
}

static int group_teardown(void **st)
{
    (void)st;
    op_stop(&op_main);
    return 0;
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p; (void)ud;
    return sz * n;
}

/* Follows the authorize URL through the OP, logging in as login_hint, until
 * the OP redirects to REDIRECT_URI. Returns that redirect's query (malloc'd)
 * or NULL. */
static char *authorize(const char *authorize_url, const char *login_hint)
{
    rg_buf b = {0};
    rg_buf_printf(&b, "%s&login_hint=%s", authorize_url, login_hint);
    char *url = rg_buf_take(&b), *result = NULL;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");    /* in-memory cookie jar */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    for (int i = 0; i < 10 && url; i++) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        if (curl_easy_perform(h) != CURLE_OK)
            break;
        char *next = NULL;
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next);
        free(url);
        url = NULL;
        if (!next)
            break;
        if (strncmp(next, REDIRECT_URI "?", strlen(REDIRECT_URI) + 1) == 0) {
            result = strdup(next + strlen(REDIRECT_URI) + 1);
            break;
        }
        url = strdup(next);
    }
    free(url);
    curl_easy_cleanup(h);
    return result;
}

/* A query parameter, percent-decoded, or NULL (malloc'd). */
static char *qget(const char *query, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            int outlen = 0;
            char *v = curl_easy_unescape(NULL, p + nl + 1, (int)strcspn(p + nl + 1, "&"), &outlen);
            char *r = strdup(v);
            curl_free(v);
            return r;
        }
    }
    return NULL;
}

static rg_oidc_config cfg_for(const op_proc *op)
{
    rg_oidc_config cfg = {.issuer = op->issuer, .client_id = CLIENT_ID, .client_secret = CLIENT_SECRET,
                          .redirect_uri = REDIRECT_URI, .allow_http_loopback = 1};
    return cfg;
}

/* begin → authorize as user → callback check → returns the code (malloc'd). */
static char *login(rg_oidc_client *c, const char *user, rg_oidc_pending *p)
{
    char *url = NULL;
    rg_error err;
    assert_int_equal(rg_oidc_begin(c, &url, p, &err), 0);
    char *q = authorize(url, user);
    free(url);
    assert_non_null(q);
    char *code = qget(q, "code"), *state = qget(q, "state"), *iss = qget(q, "iss");
    assert_non_null(code);
    assert_int_equal(rg_oidc_callback_check(c, p, state, iss, &err), 0);
    free(q);
    free(state);
    free(iss);
    return code;
}

/* A whole login; returns rg_oidc_finish's rc with id/err filled. */
static int full_login(rg_oidc_client *c, const char *user, rg_oidc_identity *id, rg_error *err)
{
    rg_oidc_pending p;
    char *code = login(c, user, &p);
    int rc = rg_oidc_finish(c, &p, code, rg_now(), id, err);
    free(code);
    return rc;
}

/* One test's relying party, every test's fixture: cfg starts as cfg_for(&op_main) and may be changed before rp_open makes
 * the client; rp_teardown clears id and frees the client. */
typedef struct op_rp {
    rg_oidc_config cfg;
    rg_oidc_client *c;
    rg_oidc_identity id;
    rg_oidc_pending p;
    rg_error err;
} op_rp;

static int rp_setup(void **st)
{
    op_rp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->cfg = cfg_for(&op_main);
    *st = t;
    return 0;
}

static int rp_teardown(void **st)
{
    op_rp *t = *st;
    rg_oidc_identity_clear(&t->id);
    rg_oidc_client_free(t->c);
    free(t);
    return 0;
}

/* The client for t->cfg (a second call replaces the first). */
static op_rp *rp_open(void **st)
{
    op_rp *t = *st;
    rg_oidc_identity_clear(&t->id);
    rg_oidc_client_free(t->c);
    t->c = rg_oidc_client_new(&t->cfg, &t->err);
    assert_non_null(t->c);
    return t;
}

/* alice's code from a login, then p changed by tamper (may be NULL): the
 * finish is refused with err_code. */
static void finish_refused(op_rp *t, void (*tamper)(rg_oidc_pending *), const char *err_code)
{
    char *code = login(t->c, "alice", &t->p);
    if (tamper)
        tamper(&t->p);
    assert_int_not_equal(rg_oidc_finish(t->c, &t->p, code, rg_now(), &t->id, &t->err), 0);
    assert_string_equal(t->err.code, err_code);
    free(code);
}

static void assert_fetches(rg_oidc_client *c, int jwks_fetches)
{
    rg_oidc_stats stats;
    rg_oidc_client_stats(c, &stats);
    assert_int_equal(stats.jwks_fetches, jwks_fetches);
}

static void test_R16_op_login_reads_groups(void **st)
{
    op_rp *t = rp_open(st);
    rg_oidc_identity *id = &t->id;
    assert_int_equal(full_login(t->c, "alice", id, &t->err), 0);
    assert_string_equal(id->issuer, op_main.issuer);
    assert_string_equal(id->subject, "alice");
    assert_string_equal(id->email, "alice@example.com");
    assert_int_equal(id->email_verified, 1);
    assert_string_equal(id->name, "Alice Anders");
    assert_int_equal(id->n_groups, 2);
    assert_string_equal(id->groups[0], "engineering");
    assert_string_equal(id->groups[1], "admins");
    assert_int_equal(id->groups_overage, 0);
    rg_oidc_identity_clear(id);
    /* bob's groups claim is one string */
    assert_int_equal(full_login(t->c, "bob", id, &t->err), 0);
    assert_int_equal(id->n_groups, 1);
    assert_string_equal(id->groups[0], "staff");
    assert_int_equal(id->email_verified, 0);
    rg_oidc_stats stats;
    rg_oidc_client_stats(t->c, &stats);
    assert_int_equal(stats.discovery_fetches, 1);
    assert_int_equal(stats.jwks_fetches, 1);
    assert_int_equal(stats.token_requests, 2);
}

static void test_R16_op_nested_claim_realm_access_roles(void **st)
{
    ((op_rp *)*st)->cfg.groups_claim = "realm_access.roles";
    op_rp *t = rp_open(st);
    assert_int_equal(full_login(t->c, "alice", &t->id, &t->err), 0);
    assert_int_equal(t->id.n_groups, 2);
    assert_string_equal(t->id.groups[0], "rg-admin");
    assert_string_equal(t->id.groups[1], "rg-viewer");
}

static void test_R16_op_groups_from_userinfo(void **st)
{
    /* carol's groups are only at the userinfo endpoint */
    op_rp *t = rp_open(st);
    assert_int_equal(full_login(t->c, "carol", &t->id, &t->err), 0);
    assert_int_equal(t->id.n_groups, 0);
    t->cfg.use_userinfo_for_groups = 1;
    rp_open(st);
    assert_int_equal(full_login(t->c, "carol", &t->id, &t->err), 0);
    assert_int_equal(t->id.n_groups, 1);
    assert_string_equal(t->id.groups[0], "support");
    assert_int_equal(t->id.groups_from_userinfo, 1);
    rg_oidc_stats stats;
    rg_oidc_client_stats(t->c, &stats);
    assert_int_equal(stats.userinfo_requests, 1);
}

static void test_R16_op_group_overage_reported(void **st)
{
    op_rp *t = rp_open(st);
    assert_int_equal(full_login(t->c, "dave", &t->id, &t->err), 0);
    assert_int_equal(t->id.groups_overage, 1);
    assert_int_equal(t->id.n_groups, 0);
    rg_oidc_identity_clear(&t->id);
    assert_int_equal(full_login(t->c, "erin", &t->id, &t->err), 0);   /* no groups, no overage */
    assert_int_equal(t->id.groups_overage, 0);
}

static void test_op_code_reuse_is_exchange_failed(void **st)
{
    op_rp *t = rp_open(st);
    char *code = login(t->c, "alice", &t->p);
    assert_int_equal(rg_oidc_finish(t->c, &t->p, code, rg_now(), &t->id, &t->err), 0);
    rg_oidc_identity_clear(&t->id);
    assert_int_not_equal(rg_oidc_finish(t->c, &t->p, code, rg_now(), &t->id, &t->err), 0);
    assert_string_equal(t->err.code, "oidc_token_exchange_failed");
    assert_non_null(strstr(t->err.message, "invalid_grant"));
    assert_null(t->id.subject);
    free(code);
}

/* the stored nonce of another login */
static void other_nonce(rg_oidc_pending *p)
{
    p->nonce[0] = p->nonce[0] == 'A' ? 'B' : 'A';
}

static void test_op_wrong_nonce(void **st)
{
    finish_refused(rp_open(st), other_nonce, "oidc_nonce_mismatch");
}

static void other_verifier(rg_oidc_pending *p)
{
    p->code_verifier[5] = p->code_verifier[5] == 'A' ? 'B' : 'A';
}

static void test_op_pkce_verifier_is_checked_by_the_op(void **st)
{
    finish_refused(rp_open(st), other_verifier, "oidc_token_exchange_failed");
}

static void test_op_discovery_issuer_mismatch(void **st)
{
    char iss[64];
    snprintf(iss, sizeof iss, "http://localhost:%d", op_main.port); /* the OP says 127.0.0.1 */
    ((op_rp *)*st)->cfg.issuer = iss;
    op_rp *t = rp_open(st);
    char *url = NULL;
    assert_int_not_equal(rg_oidc_begin(t->c, &url, &t->p, &t->err), 0);
    assert_string_equal(t->err.code, "oidc_issuer_mismatch");
    assert_null(url);
}

static void test_op_insecure_http_issuer_refused_without_loopback_flag(void **st)
{
    op_rp *t = *st;
    t->cfg.allow_http_loopback = 0;
    assert_null(rg_oidc_client_new(&t->cfg, &t->err));
    assert_string_equal(t->err.code, "oidc_insecure_issuer");
}

static void test_op_unknown_user_maps_to_idp_error(void **st)
{
    op_rp *t = rp_open(st);
    rg_error *err = &t->err;
    char *url = NULL;
    assert_int_equal(rg_oidc_begin(t->c, &url, &t->p, err), 0);
    char *q = authorize(url, "nobody");
    assert_non_null(q);
    char *e = qget(q, "error"), *d = qget(q, "error_description"), *state = qget(q, "state");
    assert_null(qget(q, "code"));
    assert_string_equal(e, "access_denied");
    assert_int_equal(rg_oidc_callback_check(t->c, &t->p, state, NULL, err), 0);
    assert_int_not_equal(rg_oidc_idp_error(e, d, err), 0);
    assert_string_equal(err->code, "oidc_idp_error");
    assert_non_null(strstr(err->message, "access_denied"));
    free(e); free(d); free(state); free(q); free(url);
}

static void test_op_wrong_client_secret(void **st)
{
    ((op_rp *)*st)->cfg.client_secret = "not-the-secret";
    op_rp *t = rp_open(st);
    assert_int_not_equal(full_login(t->c, "alice", &t->id, &t->err), 0);
    assert_string_equal(t->err.code, "oidc_token_exchange_failed");
    assert_non_null(strstr(t->err.message, "invalid_client"));
}

static void test_op_client_secret_post(void **st)
{
    op_proc op2 = {0};
    assert_int_equal(op_start(&op2, "client_secret_post"), 0);
    op_rp *t = *st;
    t->cfg = cfg_for(&op2);
    rp_open(st);
    /* this OP refuses client_secret_basic: a pass proves the secret went in the body */
    int rc = full_login(t->c, "alice", &t->id, &t->err);
    op_stop(&op2);
    assert_int_equal(rc, 0);
    assert_string_equal(t->id.subject, "alice");
}

/* POST /__admin/rotate on the OP; returns the new signing kid in out. */
static void op_rotate(const op_proc *op, char *out, size_t outsz)
{
    char url[96];
    snprintf(url, sizeof url, "%s/__admin/rotate", op->issuer);
    rg_buf b = {0};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, (curl_write_callback)NULL);
    FILE *mem = open_memstream(&b.data, &b.len);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    fclose(mem);
    char *k = strstr(b.data, "\"kid\":\"");
    assert_non_null(k);
    snprintf(out, outsz, "%.*s", (int)strcspn(k + 7, "\""), k + 7);
    free(b.data);
}

/* t->c is the client that may refetch the JWKS after a second, slow the
 * one that may not for an hour. */
static void test_op_key_rotation_without_restart(void **st)
{
    op_rp *t = *st;
    t->cfg.jwks_min_refresh_s = 3600;
    rg_oidc_client *slow = rg_oidc_client_new(&t->cfg, &t->err);
    t->cfg.jwks_min_refresh_s = 1;
    rp_open(st);
    assert_int_equal(full_login(slow, "alice", &t->id, &t->err), 0);
    rg_oidc_identity_clear(&t->id);
    assert_int_equal(full_login(t->c, "alice", &t->id, &t->err), 0);
    rg_oidc_identity_clear(&t->id);

    char kid[64];
    op_rotate(&op_main, kid, sizeof kid);
    usleep(1100 * 1000);

    /* rate-limited: the JWKS was fetched under an hour ago, the new kid is
     * unknown and no refetch is allowed */
    assert_int_not_equal(full_login(slow, "alice", &t->id, &t->err), 0);
    assert_string_equal(t->err.code, "oidc_unknown_kid");
    assert_non_null(strstr(t->err.message, kid));
    assert_fetches(slow, 1);
    rg_oidc_client_free(slow);
    /* the other client refetches once and accepts the new key */
    assert_int_equal(full_login(t->c, "bob", &t->id, &t->err), 0);
    assert_string_equal(t->id.subject, "bob");
    rg_oidc_identity_clear(&t->id);
    assert_fetches(t->c, 2);
    /* and keeps working without more fetches */
    assert_int_equal(full_login(t->c, "alice", &t->id, &t->err), 0);
    assert_fetches(t->c, 2);
}

#define RP_TEST(f) cmocka_unit_test_setup_teardown(f, rp_setup, rp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        RP_TEST(test_R16_op_login_reads_groups),
        RP_TEST(test_R16_op_nested_claim_realm_access_roles),
        RP_TEST(test_R16_op_groups_from_userinfo),
        RP_TEST(test_R16_op_group_overage_reported),
        RP_TEST(test_op_code_reuse_is_exchange_failed),
        RP_TEST(test_op_wrong_nonce),
        RP_TEST(test_op_pkce_verifier_is_checked_by_the_op),
        RP_TEST(test_op_discovery_issuer_mismatch),
        RP_TEST(test_op_insecure_http_issuer_refused_without_loopback_flag),
        RP_TEST(test_op_unknown_user_maps_to_idp_error),
        RP_TEST(test_op_wrong_client_secret),
        RP_TEST(test_op_client_secret_post),
        RP_TEST(test_op_key_rotation_without_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
