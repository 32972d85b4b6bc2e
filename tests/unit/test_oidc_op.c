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

static void test_R16_op_login_reads_groups(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_non_null(c);
    assert_int_equal(full_login(c, "alice", &id, &err), 0);
    assert_string_equal(id.issuer, op_main.issuer);
    assert_string_equal(id.subject, "alice");
    assert_string_equal(id.email, "alice@example.com");
    assert_int_equal(id.email_verified, 1);
    assert_string_equal(id.name, "Alice Anders");
    assert_int_equal(id.n_groups, 2);
    assert_string_equal(id.groups[0], "engineering");
    assert_string_equal(id.groups[1], "admins");
    assert_int_equal(id.groups_overage, 0);
    rg_oidc_identity_clear(&id);
    /* bob's groups claim is one string */
    assert_int_equal(full_login(c, "bob", &id, &err), 0);
    assert_int_equal(id.n_groups, 1);
    assert_string_equal(id.groups[0], "staff");
    assert_int_equal(id.email_verified, 0);
    rg_oidc_identity_clear(&id);
    rg_oidc_stats stats;
    rg_oidc_client_stats(c, &stats);
    assert_int_equal(stats.discovery_fetches, 1);
    assert_int_equal(stats.jwks_fetches, 1);
    assert_int_equal(stats.token_requests, 2);
    rg_oidc_client_free(c);
}

static void test_R16_op_nested_claim_realm_access_roles(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    cfg.groups_claim = "realm_access.roles";
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(full_login(c, "alice", &id, &err), 0);
    assert_int_equal(id.n_groups, 2);
    assert_string_equal(id.groups[0], "rg-admin");
    assert_string_equal(id.groups[1], "rg-viewer");
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(c);
}

static void test_R16_op_groups_from_userinfo(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    /* carol's groups are only at the userinfo endpoint */
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(full_login(c, "carol", &id, &err), 0);
    assert_int_equal(id.n_groups, 0);
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(c);
    cfg.use_userinfo_for_groups = 1;
    c = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(full_login(c, "carol", &id, &err), 0);
    assert_int_equal(id.n_groups, 1);
    assert_string_equal(id.groups[0], "support");
    assert_int_equal(id.groups_from_userinfo, 1);
    rg_oidc_stats stats;
    rg_oidc_client_stats(c, &stats);
    assert_int_equal(stats.userinfo_requests, 1);
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(c);
}

static void test_R16_op_group_overage_reported(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(full_login(c, "dave", &id, &err), 0);
    assert_int_equal(id.groups_overage, 1);
    assert_int_equal(id.n_groups, 0);
    rg_oidc_identity_clear(&id);
    assert_int_equal(full_login(c, "erin", &id, &err), 0);   /* no groups, no overage */
    assert_int_equal(id.groups_overage, 0);
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(c);
}

static void test_op_code_reuse_is_exchange_failed(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_pending p;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    char *code = login(c, "alice", &p);
    assert_int_equal(rg_oidc_finish(c, &p, code, rg_now(), &id, &err), 0);
    rg_oidc_identity_clear(&id);
    assert_int_not_equal(rg_oidc_finish(c, &p, code, rg_now(), &id, &err), 0);
    assert_string_equal(err.code, "oidc_token_exchange_failed");
    assert_non_null(strstr(err.message, "invalid_grant"));
    assert_null(id.subject);
    free(code);
    rg_oidc_client_free(c);
}

static void test_op_wrong_nonce(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_pending p;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    char *code = login(c, "alice", &p);
    p.nonce[0] = p.nonce[0] == 'A' ? 'B' : 'A'; /* the stored nonce of another login */
    assert_int_not_equal(rg_oidc_finish(c, &p, code, rg_now(), &id, &err), 0);
    assert_string_equal(err.code, "oidc_nonce_mismatch");
    free(code);
    rg_oidc_client_free(c);
}

static void test_op_pkce_verifier_is_checked_by_the_op(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_pending p;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    char *code = login(c, "alice", &p);
    p.code_verifier[5] = p.code_verifier[5] == 'A' ? 'B' : 'A';
    assert_int_not_equal(rg_oidc_finish(c, &p, code, rg_now(), &id, &err), 0);
    assert_string_equal(err.code, "oidc_token_exchange_failed");
    free(code);
    rg_oidc_client_free(c);
}

static void test_op_discovery_issuer_mismatch(void **st)
{
    (void)st;
    char iss[64];
    snprintf(iss, sizeof iss, "http://localhost:%d", op_main.port); /* the OP says 127.0.0.1 */
    rg_oidc_config cfg = cfg_for(&op_main);
    cfg.issuer = iss;
    rg_error err;
    rg_oidc_pending p;
    char *url = NULL;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_non_null(c);
    assert_int_not_equal(rg_oidc_begin(c, &url, &p, &err), 0);
    assert_string_equal(err.code, "oidc_issuer_mismatch");
    assert_null(url);
    rg_oidc_client_free(c);
}

static void test_op_insecure_http_issuer_refused_without_loopback_flag(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    cfg.allow_http_loopback = 0;
    rg_error err;
    assert_null(rg_oidc_client_new(&cfg, &err));
    assert_string_equal(err.code, "oidc_insecure_issuer");
}

static void test_op_unknown_user_maps_to_idp_error(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_pending p;
    char *url = NULL;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(rg_oidc_begin(c, &url, &p, &err), 0);
    char *q = authorize(url, "nobody");
    assert_non_null(q);
    char *e = qget(q, "error"), *d = qget(q, "error_description"), *state = qget(q, "state");
    assert_null(qget(q, "code"));
    assert_string_equal(e, "access_denied");
    assert_int_equal(rg_oidc_callback_check(c, &p, state, NULL, &err), 0);
    assert_int_not_equal(rg_oidc_idp_error(e, d, &err), 0);
    assert_string_equal(err.code, "oidc_idp_error");
    assert_non_null(strstr(err.message, "access_denied"));
    free(e); free(d); free(state); free(q); free(url);
    rg_oidc_client_free(c);
}

static void test_op_wrong_client_secret(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    cfg.client_secret = "not-the-secret";
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    assert_int_not_equal(full_login(c, "alice", &id, &err), 0);
    assert_string_equal(err.code, "oidc_token_exchange_failed");
    assert_non_null(strstr(err.message, "invalid_client"));
    rg_oidc_client_free(c);
}

static void test_op_client_secret_post(void **st)
{
    (void)st;
    op_proc op2 = {0};
    assert_int_equal(op_start(&op2, "client_secret_post"), 0);
    rg_oidc_config cfg = cfg_for(&op2);
    rg_error err;
    rg_oidc_identity id;
    rg_oidc_client *c = rg_oidc_client_new(&cfg, &err);
    /* this OP refuses client_secret_basic: a pass proves the secret went in the body */
    int rc = full_login(c, "alice", &id, &err);
    op_stop(&op2);
    assert_int_equal(rc, 0);
    assert_string_equal(id.subject, "alice");
    rg_oidc_identity_clear(&id);
    rg_oidc_client_free(c);
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

static void test_op_key_rotation_without_restart(void **st)
{
    (void)st;
    rg_oidc_config cfg = cfg_for(&op_main);
    rg_error err;
    rg_oidc_identity id;
    cfg.jwks_min_refresh_s = 3600;
    rg_oidc_client *slow = rg_oidc_client_new(&cfg, &err);
    cfg.jwks_min_refresh_s = 1;
    rg_oidc_client *fast = rg_oidc_client_new(&cfg, &err);
    assert_int_equal(full_login(slow, "alice", &id, &err), 0);
    rg_oidc_identity_clear(&id);
    assert_int_equal(full_login(fast, "alice", &id, &err), 0);
    rg_oidc_identity_clear(&id);

    char kid[64];
    op_rotate(&op_main, kid, sizeof kid);
    usleep(1100 * 1000);

    /* rate-limited: the JWKS was fetched under an hour ago, the new kid is
     * unknown and no refetch is allowed */
    assert_int_not_equal(full_login(slow, "alice", &id, &err), 0);
    assert_string_equal(err.code, "oidc_unknown_kid");
    assert_non_null(strstr(err.message, kid));
    rg_oidc_stats stats;
    rg_oidc_client_stats(slow, &stats);
    assert_int_equal(stats.jwks_fetches, 1);
    /* the other client refetches once and accepts the new key */
    assert_int_equal(full_login(fast, "bob", &id, &err), 0);
    assert_string_equal(id.subject, "bob");
    rg_oidc_identity_clear(&id);
    rg_oidc_client_stats(fast, &stats);
    assert_int_equal(stats.jwks_fetches, 2);
    /* and keeps working without more fetches */
    assert_int_equal(full_login(fast, "alice", &id, &err), 0);
    rg_oidc_identity_clear(&id);
    rg_oidc_client_stats(fast, &stats);
    assert_int_equal(stats.jwks_fetches, 2);
    rg_oidc_client_free(slow);
    rg_oidc_client_free(fast);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R16_op_login_reads_groups),
        cmocka_unit_test(test_R16_op_nested_claim_realm_access_roles),
        cmocka_unit_test(test_R16_op_groups_from_userinfo),
        cmocka_unit_test(test_R16_op_group_overage_reported),
        cmocka_unit_test(test_op_code_reuse_is_exchange_failed),
        cmocka_unit_test(test_op_wrong_nonce),
        cmocka_unit_test(test_op_pkce_verifier_is_checked_by_the_op),
        cmocka_unit_test(test_op_discovery_issuer_mismatch),
        cmocka_unit_test(test_op_insecure_http_issuer_refused_without_loopback_flag),
        cmocka_unit_test(test_op_unknown_user_maps_to_idp_error),
        cmocka_unit_test(test_op_wrong_client_secret),
        cmocka_unit_test(test_op_client_secret_post),
        cmocka_unit_test(test_op_key_rotation_without_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
