/* login_finish.c: the end of every login, SAML or OIDC: R15-R18 through
 * rg_store_login_apply (user, membership and roles in one transaction,
 * against the organization's table from the cache layer when current),
 * the R24 session, the cookies, the login record and the redirect to
 * return_to. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include "login_internal.h"
#include "rolegate/metrics.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ==== the end of every login ============================================= */

/* "Alice Example" → first "Alice", last "Example" (arena). */
static void split_name(rg_arena *a, const char *name, const char **first, const char **last)
{
    *first = *last = NULL;
    if (!name || !*name)
        return;
    const char *sp = strchr(name, ' ');
    if (!sp) {
        *first = name;
        return;
    }
    *first = rg_arena_strndup(a, name, (size_t)(sp - name));
    while (*sp == ' ')
        sp++;
    *last = *sp ? sp : NULL;
}

/* The session of one login, issued inside its transaction (the store
 * calls finish_issue once the roles are resolved). */
typedef struct finish_ctx {
    rg_gateway_login *lg;
    const lg_conn *conn;
    const lg_identity *id;
    rg_arena *arena;
    char *cookie;          /* malloc'd Set-Cookie value */
    size_t cookie_len;
    int omitted;
    const char *user_id;   /* arena copy */
    int64_t sign_us;       /* CPU spent signing */
    rg_store_session_rec sess;   /* the session's record (issue 13) */
} finish_ctx;

static int finish_issue(void *ctx, const char *user_id, const rg_resolution *res,
                        size_t *token_size, rg_error *err)
{
    finish_ctx *f = ctx;
    const rg_config *cfg = f->lg->cfg;
    int64_t t0 = rg_thread_cpu_us();
    if (!user_id || res->roles.n == 0)
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL, "login gave no membership");
    /* issue 11 item 6 (oauth2-proxy's allowed_groups): a group allow-list.
     * Refused here, inside the login's transaction, so nothing is written */
    if (f->conn->require_mapped_group && res->matched_groups.n == 0)
        return rg_error_set(err, RG_EFORBIDDEN, "no_mapped_group", "groups",
                            "none of your groups is allowed to sign in here");
    f->user_id = rg_arena_strdup(f->arena, user_id);
    /* R24: the claims are a snapshot of the roles just resolved (R25) */
    char sid[64], jti[40];
    rg_id_new("session", sid, sizeof sid);
    rg_random_token(jti, sizeof jti, 16);
    rg_claims c = {
        .iss = rg_gateway_issuer(cfg),
        .sub = user_id,
        .sid = sid,
        .jti = jti,
        .org_id = f->conn->org_id,
        .email = f->id->email && *f->id->email ? f->id->email : NULL,
        .roles = (const char *const *)res->roles.v,
        .n_roles = res->roles.n,
        .permissions = (const char *const *)res->permissions.v,
        .n_permissions = res->permissions.n,
        .iat = rg_now(),
    };
    rg_gateway_token_times(cfg, &c);
    snprintf(f->sess.id, sizeof f->sess.id, "%s", sid);
    f->sess.idp_subject_format = f->id->subject_format;
    f->sess.idp_session = f->id->idp_session;
    f->sess.expires_at = c.auth_time ? c.auth_time + cfg->session.lifetime : c.exp;
    rg_oversize_policy pol = cfg->session.oversize;
    char *token = NULL;
    int rc = rg_session_issue(f->lg->ctx->keys, &c, pol, (size_t)cfg->session.cookie_budget,
                              f->lg->secure, cfg->session.lifetime, &token, &f->cookie,
                              &f->cookie_len, &f->omitted, err);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    f->sign_us = rg_thread_cpu_us() - t0;
    if (rc) {
        free(f->cookie);
        f->cookie = NULL;
        return rc < 0 ? rc : RG_ERR;
    }
    *token_size = f->cookie_len;
    return 0;
}

int lg_finish(rg_http_req *req, rg_gateway_login *lg, const lg_conn *conn,
              const lg_identity *id, const char *return_to, lg_timing *t)
{
    assert(req && lg && conn && id && id->subject && return_to);
    if (strncmp(return_to, LG_PORTAL_TEST_PREFIX, strlen(LG_PORTAL_TEST_PREFIX)) == 0) {
        lg_portal_test_finish(req, lg, conn, id, return_to + strlen(LG_PORTAL_TEST_PREFIX));
        return 0;
    }
    rg_arena *a = rg_http_arena(req);
    rg_error err;
    rg_error_clear(&err);
    lg_identity checked = *id;   /* item 13: data, checked before any use */
    if (lg_identity_check(a, &checked, &err) != 0) {
        lg_fail(req, lg, conn->id, conn->org_id, id->protocol,
                strcmp(err.field, "subject") == 0 ? NULL : id->subject, &err);
        return 0;
    }
    id = &checked;
    finish_ctx f = {.lg = lg, .conn = conn, .id = id, .arena = a};
    int64_t resolve_us = 0;
    rg_store_login_user u = {.subject = id->subject, .email = id->email,
                             .issue = finish_issue, .issue_ctx = &f, .session = &f.sess,
                             .resolve_cpu_us = &resolve_us,
                             .connection_digest = id->conn_digest};
    split_name(a, id->name, &u.first_name, &u.last_name);

    /* R15-R18 + R24: user, membership, roles, the session and their events
     * in ONE transaction; a failure (store, session_too_large: never a
     * truncated cookie) leaves the membership as it was */
    int64_t t0 = rg_thread_cpu_us();
    /* DESIGN.md, one login: the organization's table from the cache layer
     * (in-process -> Redis -> store); the transaction resolves against it
     * if no role change committed since, else against the table it loads.
     * Without one (no cache, or its lookup failed) the store loads it, and
     * answers the login's error itself */
    rg_cache_ref *table = NULL;
    if (lg->ctx->cache) {
        rg_error cerr;
        rg_error_clear(&cerr);
        if (rg_cache_table_get(lg->ctx->cache, conn->org_id, &table, &cerr) == 0)
            u.table = rg_cache_ref_table(table);
    }
    int64_t cache_us = rg_thread_cpu_us() - t0;
    rg_resolution res;
    memset(&res, 0, sizeof res);
    int rc = rg_store_login_apply(lg->ctx->store, conn->org_id, conn->id, &u, id->groups,
                                  id->n_groups, &res, NULL, &err);
    rg_cache_ref_release(table);
    resolve_us += cache_us;   /* the table's lookup belongs to the resolve share */
    int64_t t1 = rg_thread_cpu_us();
    if (!rc && !f.cookie)
        rc = rg_error_set(&err, RG_EINTERNAL, "store_error", NULL, "login gave no session");
    int stale = rc && id->conn_digest &&
                (!strcmp(err.code, "connection_changed") ||
                 (err.status == 404 && !strcmp(err.field, "connection_id")));
    if (rc && !stale)
        lg_fail(req, lg, conn->id, conn->org_id, id->protocol, id->subject, &err);
    if (rc) {
        rg_resolution_clear(&res);
        free(f.cookie);
        return stale ? LG_STALE : 0;
    }
    const char *user_id = f.user_id;
    char *cookie = f.cookie;
    size_t cookie_len = f.cookie_len;
    int omitted = f.omitted;
    rg_http_add_header(req, "Set-Cookie", cookie);
    free(cookie);
    char *clear = lg_state_cookie(req, lg, "", 0);
    if (clear)
        rg_http_add_header(req, "Set-Cookie", clear);
    rg_http_add_header(req, "Cache-Control", "no-store");

    /* one line per login: the record without tokens or assertions */
    char qs[200], *roles = NULL, *matched = NULL;
    rg_buf rb = {0}, mb = {0};
    for (size_t i = 0; i < res.roles.n; i++)
        rg_buf_printf(&rb, "%s%s", i ? "," : "", res.roles.v[i]);
    for (size_t i = 0; i < res.matched_groups.n && i < res.matched_roles.n; i++)
        rg_buf_printf(&mb, "%s%s->%s", i ? "," : "", res.matched_groups.v[i],
                      res.matched_roles.v[i]);
    roles = rg_buf_take(&rb);
    matched = rg_buf_take(&mb);
    char qm[512];
    rg_metrics_add("rolegate_login_successes_total", "connection", conn->id, NULL, NULL, 1);
    rg_log(RG_LOG_INFO, "event=login result=ok protocol=%s connection_id=%s "
           "organization_id=%s subject=%s user_id=%s groups=%zu matched=%s roles=%s "
           "role_source=%s token_cookie_bytes=%zu permissions_omitted=%d groups_overage=%d "
           "request_id=%s", id->protocol, conn->id, conn->org_id,
           rg_log_quote(qs, sizeof qs, id->subject), user_id, id->n_groups,
           rg_log_quote(qm, sizeof qm, matched ? matched : ""), roles ? roles : "",
           rg_core_source_name(res.source), cookie_len, omitted, id->groups_overage,
           rg_http_request_id(req));
    free(roles);
    free(matched);
    if (t) {
        t->resolve_us = resolve_us;
        t->store_us = t1 - t0 - f.sign_us - resolve_us;
        t->sign_us = f.sign_us;
        rg_log(RG_LOG_DEBUG, "event=login_timing protocol=%s verify_cpu_us=%lld "
               "resolve_cpu_us=%lld store_cpu_us=%lld sign_cpu_us=%lld", id->protocol,
               (long long)t->verify_us, (long long)t->resolve_us, (long long)t->store_us,
               (long long)t->sign_us);
    }
    rg_resolution_clear(&res);
    if (id->sid_out)   /* issue 13: the caller keeps what logout needs */
        snprintf(id->sid_out, 64, "%s", f.sess.id);
    rg_http_redirect(req, 302, return_to);
    return 0;
}
