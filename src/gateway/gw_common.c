/* gw_common.c: the state behind /auth, /logout, JWKS and POST /sessions
 * (verified-token cache, revocation set; role tables from the cache layer),
 * route registration and the session issue every issuer shares (R24 claims and size policy, R25 snapshot). */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/cache.h"
#include "gw_internal.h"
#include "pages.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* ---- configuration-derived facts ------------------------------------------- */

const char *rg_gateway_issuer(const rg_config *cfg)
{
    assert(cfg);
    return cfg->server.base_url;
}


void rg_gateway_token_times(const rg_config *cfg, rg_claims *c)
{
    assert(cfg && c && c->iat);
    if (!cfg->session.refresh) {
        c->exp = c->iat + cfg->session.lifetime;   /* R25 snapshot until the next login */
        return;
    }
    c->auth_time = c->iat;
    int64_t tl = cfg->session.token_lifetime;
    c->exp = c->iat + (tl < cfg->session.lifetime ? tl : cfg->session.lifetime);
}

/* ---- small response helpers ------------------------------------------------- */

void gw_deny(rg_http_req *req, int status, const char *code)
{
    rg_arena *a = rg_http_arena(req);
    /* codes are fixed identifiers of ours: no escaping needed, assert it */
    assert(strcspn(code, "\"\\") == strlen(code));
    char *body = rg_arena_printf(a, "{\"code\":\"%s\"}", code);
    rg_http_add_header(req, "Cache-Control", "no-store");
    if (!body) {
        rg_http_send_arena(req, status, NULL, NULL, 0);
        return;
    }
    rg_http_send_arena(req, status, "application/json", body, strlen(body));
}

char *gw_join(rg_http_req *req, const char *const *strs, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(strs[i]) + 1;
    char *out = rg_arena_alloc(rg_http_arena(req), len);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        size_t l = strlen(strs[i]);
        memcpy(p, strs[i], l);
        p += l;
    }
    *p = 0;
    return out;
}

/* ---- per-organization role tables (R24 omit_permissions) ----------------- */

int gw_org_permissions(rg_gateway *gw, const char *org_id, const char *const *roles,
                       size_t n_roles, rg_slugs *out, rg_error *err)
{
    memset(out, 0, sizeof *out);
    if (strlen(org_id) >= GW_ORG_ID_MAX)
        return rg_error_set(err, RG_EUNAUTH, "token_malformed", NULL, "org_id too long");
    /* the cache layer: in-process -> Redis -> store, invalidated on change */
    rg_cache_ref *ref = NULL;
    if (rg_cache_table_get(gw->ctx->cache, org_id, &ref, err) != 0)
        return RG_ERR;
    int rc = rg_core_permissions_of(rg_cache_ref_table(ref), roles, n_roles, out);
    rg_cache_ref_release(ref);
    return rc ? rg_error_set(err, RG_ENOMEM, "internal", NULL, "out of memory") : 0;
}

/* ---- issuing (shared with the login handlers) ------------------------------ */

int rg_gateway_session_issue(const rg_ctx *ctx, const rg_role_table *table,
                             const char *user_id, const char *email, const char *org_id,
                             const char *const *roles, size_t n_roles, const char *act_sub,
                             char **token, char **set_cookie, char sid_out[64],
                             int64_t *exp, size_t *cookie_len, int *omitted, rg_error *err)
{
    assert(ctx && ctx->config && table && user_id && org_id && token && sid_out && exp);
    const rg_config *cfg = ctx->config;
    *token = NULL;
    if (set_cookie)
        *set_cookie = NULL;
    if (!ctx->keys)
        return rg_error_set(err, RG_EINTERNAL, "keys_missing", NULL, "no signing keys loaded");
    rg_slugs perms = {0};
    if (rg_core_permissions_of(table, roles, n_roles, &perms) != 0)
        return rg_error_oom(err);
    char jti[40];
    rg_id_new("session", sid_out, 64);
    rg_random_token(jti, sizeof jti, 16);
    rg_claims c = {
        .iss = rg_gateway_issuer(cfg),
        .sub = user_id,
        .sid = sid_out,
        .jti = jti,
        .org_id = org_id,
        .email = (email && *email) ? email : NULL,
        .roles = roles,
        .n_roles = n_roles,
        .permissions = (const char *const *)perms.v,
        .n_permissions = perms.n,
        .act_sub = act_sub,
        .iat = rg_now(),
    };
    rg_gateway_token_times(cfg, &c);
    rg_oversize_policy pol = cfg->session.oversize;
    char *cookie = NULL;
    int rc = rg_session_issue(ctx->keys, &c, pol, (size_t)cfg->session.cookie_budget,
                              cfg->server.secure, cfg->session.lifetime, token, &cookie,
                              cookie_len, omitted, err);
    rg_slugs_clear(&perms);
    if (rc)
        return rc;   /* 422 session_too_large (R24): the caller's data, not a fault */
    /* the session's end: with refresh its token lapses sooner and /auth
     * gives it new ones until then */
    *exp = c.auth_time ? c.auth_time + cfg->session.lifetime : c.exp;
    if (set_cookie)
        *set_cookie = cookie;
    else
        free(cookie);
    return 0;
}

/* ---- state and routes ------------------------------------------------------ */

rg_revocations *rg_gateway_revocations(rg_gateway *gw) { return gw ? gw->revs : NULL; }
rg_token_cache *rg_gateway_token_cache(rg_gateway *gw) { return gw ? gw->tcache : NULL; }

void rg_gateway_free(rg_gateway *gw)
{
    if (!gw)
        return;
    rg_token_cache_free(gw->tcache);
    rg_revocations_free(gw->revs);
    gw_refresh_map_free(gw->refreshes);
    free(gw);
}

/* The routes of the rg_gateway (ctx of every handler). nginx auth_request
 * keeps the original method: /auth answers them all. */
static const rg_http_route_def gw_public_routes[] = {
    {"GET", "/auth", gw_h_auth_metered, 0, 0},
    {"POST", "/auth", gw_h_auth_metered, 0, 0},
    {"PUT", "/auth", gw_h_auth_metered, 0, 0},
    {"PATCH", "/auth", gw_h_auth_metered, 0, 0},
    {"DELETE", "/auth", gw_h_auth_metered, 0, 0},
    {"OPTIONS", "/auth", gw_h_auth_metered, 0, 0},
    {"GET", "/.well-known/jwks.json", gw_h_jwks, 0, 0},
    {"GET", "/logout", gw_h_logout, 0, 0},
    {"POST", "/logout", gw_h_logout, 0, 0},
    /* the pages a person sees: pages.c */
    {"GET", "/assets/rolegate.css", pg_h_css, 0, 0},
    {"GET", "/signed-out", pg_h_signed_out, 0, 0},
    {"GET", "/denied", pg_h_denied, 0, 0},
    {"GET", "/whoami", gw_h_whoami, 0, 0},
};

/* Admin-issued sessions (sessions_admin.c): they stay with the gateway, whose
 * revocation list and token cache they write (api/ is below gateway/). */
static const rg_http_route_def gw_admin_routes[] = {
    {"POST", "/sessions", gw_h_sessions_create, RG_HTTP_BODY_JSON, 0},
    {"GET", "/user_management/organization_memberships/{id}/sessions", gw_h_sessions_list, 0, 0},
    {"DELETE", "/sessions/{id}", gw_h_sessions_delete, 0, 0},
};

rg_gateway *rg_gateway_auth_register(rg_ctx *ctx, rg_error *err)
{
    assert(ctx && ctx->config);
    if (!ctx->keys) {
        rg_error_set(err, RG_EINTERNAL, "keys_missing", NULL,
                     "load the session keys before registering /auth");
        return NULL;
    }
    if (!ctx->cache) {
        rg_error_set(err, RG_EINTERNAL, "cache_missing", NULL,
                     "create the cache layer before registering /auth");
        return NULL;
    }
    rg_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) {
        rg_error_oom(err);
        return NULL;
    }
    gw->ctx = ctx;
    gw->cfg = ctx->config;
    gw->secure = gw->cfg->server.secure;   /* derived from base_url at config load */
    gw->cookie_name = rg_session_cookie_name(gw->secure);
    gw->tcache = rg_token_cache_new(0);
    /* grace = skew: a token still accepted within the skew after exp must
     * stay revoked that long too */
    gw->revs = rg_revocations_new(RG_GATEWAY_SKEW);
    gw->refreshes = gw_refresh_map_new();
    if (!gw->tcache || !gw->revs || !gw->refreshes) {
        rg_gateway_free(gw);
        rg_error_oom(err);
        return NULL;
    }
    gw->origin = gw->cfg->server.origin;
    gw->login_url = gw->cfg->server.login_url;

    if (rg_http_routes_add(ctx->public_server, gw_public_routes,
                           RG_HTTP_NROUTES(gw_public_routes), gw, err) != 0 ||
        rg_http_routes_add(ctx->admin_server, gw_admin_routes, RG_HTTP_NROUTES(gw_admin_routes),
                           gw, err) != 0) {
        rg_gateway_free(gw);
        return NULL;
    }
    return gw;
}

int rg_gateway_revoke_sid(rg_gateway *gw, const char *sid, int64_t end)
{
    int64_t now = rg_now();
    int rc = rg_session_revoke(gw->revs, gw->tcache, sid, end, now);
    if (gw->ctx->cache)
        rg_cache_revoke_publish(gw->ctx->cache, sid, end);
    return rc;
}

void rg_gateway_set_logout_hook(rg_gateway *gw, rg_gateway_logout_fn fn, void *ctx)
{
    gw->logout_hook = fn;
    gw->logout_ctx = ctx;
}

int rg_gateway_revoke_user_sink(void *gwp, const char *sub, const char *org_id,
                                int64_t before, int64_t until)
{
    rg_gateway *gw = gwp;
    return rg_session_revoke_user(gw->revs, sub, org_id, before, until, rg_now());
}

int rg_gateway_revoke_user(rg_gateway *gw, const char *sub, const char *org_id,
                           int64_t before)
{
    assert(gw);
    /* every token issued before `before` expires by before + lifetime */
    int64_t until = before + gw->cfg->session.lifetime;
    int rc = rg_session_revoke_user(gw->revs, sub, org_id, before, until, rg_now());
    if (rc)
        return rc;
    if (gw->ctx->cache)
        rg_cache_revoke_user_publish(gw->ctx->cache, sub, org_id, before, until);
    rg_log(RG_LOG_INFO, "event=sessions_revoked_user sub=%s org=%s before=%lld", sub, org_id,
           (long long)before);
    return 0;
}
