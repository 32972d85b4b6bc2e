/* auth.c: /auth, asked by the reverse proxy on every request (nginx
 * auth_request, Traefik forwardAuth, Envoy ext_authz). Cookie → verified
 * claims (token cache by digest, revocation set) → 200 + X-Rolegate-* | 401
 * | 403 (require_role / require_permission / organization). R24: omitted
 * permissions come from the org's cached role table. Issue 13 / R25: a
 * token older than refresh_after of a live session is refreshed (refresh.c)
 * and the new cookie answered as Set-Cookie. Only a trusted proxy
 * gets the login redirect (X-Forwarded-* believed from it alone). */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include "gw_internal.h"
#include "pages.h"
#include "rolegate/metrics.h"
#include "rolegate/util.h"

#define MAX_REQUIRE 32

/* Is s one of list[0..n)? */
static int has(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Percent-encodes everything but RFC 3986 unreserved characters and "/". */
static char *pct_encode(rg_arena *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = rg_arena_alloc(a, strlen(s) * 3 + 1), *p = out;
    if (!out)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~' || *c == '/') {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = 0;
    return out;
}

/* A header value that is safe to put in a URL we build: printable ASCII,
 * no spaces, not empty. */
static int url_part_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* The failed check of a trusted proxy that asked for it (query redirect=1
 * or header X-Rolegate-Redirect: 1) becomes 302 to
 * {base_url}/login?return_to=<the original URL from X-Forwarded-*>; from
 * anyone else X-Forwarded-* are not believed and a 401 stays a 401.
 * Returns 1 if it answered. */
static int login_redirect(rg_gateway *gw, rg_http_req *req)
{
    const char *q = rg_http_query(req, "redirect");
    const char *h = rg_http_header(req, "X-Rolegate-Redirect");
    if (!((q && strcmp(q, "1") == 0) || (h && strcmp(h, "1") == 0)))
        return 0;
    if (!rg_http_peer_trusted(req))
        return 0;   /* DESIGN.md: forwarded headers only from trusted proxies */
    const char *proto = rg_http_header(req, "X-Forwarded-Proto");
    const char *host = rg_http_header(req, "X-Forwarded-Host");
    const char *uri = rg_http_header(req, "X-Forwarded-Uri");
    if (!url_part_ok(uri) || uri[0] != '/')
        uri = "/";
    rg_arena *a = rg_http_arena(req);
    const char *orig = uri;
    if (url_part_ok(proto) && url_part_ok(host) &&
        (strcmp(proto, "http") == 0 || strcmp(proto, "https") == 0)) {
        char origin[RG_CONFIG_STR];
        char *full = rg_arena_printf(a, "%s://%s%s", proto, host, uri);
        /* same origin as rolegate: a relative return_to is enough (and is
         * what /login accepts without an allow-list) */
        if (full && rg_url_origin(full, origin, sizeof origin) == 0 &&
            strcmp(origin, gw->origin) != 0)
            orig = full;
    }
    const char *enc = pct_encode(a, orig);
    char *loc = enc ? rg_arena_printf(a, "%s?return_to=%s", gw->login_url, enc) : NULL;
    if (!loc)
        return 0;
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_redirect(req, 302, loc);
    return 1;
}

/* Issue 11 item 5: one log line per refusal with the reason code, the
 * subject and organization when known and the unmet requirement (never
 * the token). */
static void log_denied(rg_http_req *req, int status, const char *code,
                       const rg_session_claims *c, const char *unmet)
{
    char q1[160], q2[160], q3[320];
    rg_log(RG_LOG_INFO, "event=auth_denied status=%d reason=%s sub=%s org=%s requirement=%s "
           "rid=%s", status, code, c ? rg_log_quote(q1, sizeof q1, c->sub) : "-",
           c ? rg_log_quote(q2, sizeof q2, c->org_id) : "-",
           unmet ? rg_log_quote(q3, sizeof q3, unmet) : "-", rg_http_request_id(req));
}

static void unauthorized(rg_gateway *gw, rg_http_req *req, const char *code)
{
    log_denied(req, 401, code, NULL, NULL);
    if (!login_redirect(gw, req))
        gw_deny(req, 401, code);
}

/* require_role / require_permission / organization: every value must hold.
 * Returns NULL when they all do, else the denial code with *unmet the
 * first requirement that failed ("require_role=admin", arena). */
static const char *check_requirements(rg_http_req *req, const rg_session_claims *c,
                                      const char *const *perms, size_t n_perms,
                                      const char **unmet)
{
    static const char *const names[] = {"require_role", "require_permission", "organization"};
    static const char *const codes[] = {"role_required", "permission_required",
                                        "organization_mismatch"};
    const char *v[MAX_REQUIRE];
    *unmet = NULL;
    for (size_t k = 0; k < 3; k++) {
        size_t n = rg_http_query_all(req, names[k], v, MAX_REQUIRE);
        if (n > MAX_REQUIRE)
            return "too_many_requirements";
        for (size_t i = 0; i < n; i++) {
            int ok = k == 0 ? has(c->roles, c->n_roles, v[i])
                     : k == 1 ? has(perms, n_perms, v[i]) : strcmp(c->org_id, v[i]) == 0;
            if (!ok) {
                *unmet = rg_arena_printf(rg_http_arena(req), "%s=%s", names[k], v[i]);
                return codes[k];
            }
        }
    }
    return NULL;
}

/* A 403 the person can read (item 5): the reason and the unmet requirement
 * as headers for the proxy (the nginx snippet's error page shows them), and
 * as an HTML page when the browser asked for HTML (Traefik's forwardAuth
 * hands /auth's own answer to the browser); else the JSON body. */
static void forbidden(rg_http_req *req, const char *code, const char *unmet)
{
    rg_http_add_header(req, "X-Rolegate-Reason", code);
    if (unmet)
        rg_http_add_header(req, "X-Rolegate-Requirement", unmet);
    const char *accept = rg_http_header(req, "Accept");
    if (accept && strstr(accept, "text/html"))
        pg_denied(req, 403, code, unmet);
    else
        gw_deny(req, 403, code);
}

/* Issue 13: a lapsed token (expired less than idle_timeout ago) of a live
 * session is refreshed, never accepted as it is. */
static int verify_lapsed(rg_gateway *gw, const char *token, int64_t now,
                         rg_session_claims *c, rg_error *err)
{
    rg_error_clear(err);
    if (rg_session_verify_lapsed(gw->ctx->keys, token, now, RG_GATEWAY_SKEW,
                                 gw->cfg->session.idle_timeout, rg_gateway_issuer(gw->cfg), c,
                                 err) != 0)
        return RG_EINVAL;
    /* by sid (logout, DELETE /sessions) and by (sub, org) issued before T
     * (R30 deprovisioning): the same checks as rg_session_verify_cached */
    if (rg_revocations_is_revoked(gw->revs, c->sid, now) ||
        rg_revocations_user_revoked(gw->revs, c->sub, c->org_id, c->iat, now)) {
        rg_session_claims_clear(c);
        return rg_error_set(err, RG_EUNAUTH, "token_revoked", NULL,
                            "the session was signed out");
    }
    return 0;
}

/* Verifies the cookie's token into *c and, with session.refresh, refreshes
 * a token older than refresh_after (or lapsed) of a live session: the new
 * Set-Cookie goes on the answer (the proxy snippets pass it to the browser),
 * *fresh (arena) is the new token and *c its claims. A refresh that cannot
 * be done now (store down) keeps a still valid token working (degraded, not
 * logout). 0, or err (401 codes, 503). */
static int verify_and_refresh(rg_gateway *gw, rg_http_req *req, const char *token,
                              int64_t now, rg_session_claims *c, char **fresh, rg_error *err)
{
    const rg_config *cfg = gw->cfg;
    *fresh = NULL;
    int lapsed = 0;
    if (rg_session_verify_cached(gw->ctx->keys, gw->tcache, gw->revs, token, now,
                                 RG_GATEWAY_SKEW, rg_gateway_issuer(cfg), c, err) != 0) {
        if (!cfg->session.refresh || strcmp(err->code, "token_expired") != 0)
            return RG_EINVAL;
        rg_error first = *err;
        if (verify_lapsed(gw, token, now, c, err) != 0) {
            /* revoked is news; anything else: the token is just expired */
            if (strcmp(err->code, "token_revoked") != 0)
                *err = first;
            return RG_EINVAL;
        }
        lapsed = 1;
    }
    /* the hot path: a young token costs this one comparison */
    if (!cfg->session.refresh || (!lapsed && now - c->iat < cfg->session.refresh_after))
        return 0;
    char *tok = NULL, *cookie = NULL;
    rg_error rerr;
    rg_error_clear(&rerr);
    rg_session_claims fc;
    int rc = gw_refresh(gw, c, now, &tok, &cookie, &fc, &rerr);
    if (rc) {
        free(tok);
        free(cookie);
        if (rerr.status == 401 || lapsed) {
            rg_log(RG_LOG_INFO, "event=session_ended sid=%s code=%s rid=%s", c->sid, rerr.code,
                   rg_http_request_id(req));
            rg_session_claims_clear(c);
            *err = rerr;
            return err->status == 401 ? RG_EUNAUTH : rg_error_recast(err, RG_EUNAVAIL);
        }
        /* degraded: the token is still valid; the next request tries again */
        rg_log(RG_LOG_WARN, "event=refresh_deferred sid=%s code=%s rid=%s", c->sid, rerr.code,
               rg_http_request_id(req));
        return 0;
    }
    rg_token_cache_put(gw->tcache, tok, strlen(tok), &fc, now);
    rg_session_claims_clear(c);
    *c = fc;
    rg_http_add_header(req, "Set-Cookie", cookie);
    *fresh = rg_arena_strdup(rg_http_arena(req), tok);
    rg_log(RG_LOG_DEBUG, "event=session_refreshed sid=%s rid=%s", c->sid,
           rg_http_request_id(req));
    free(tok);
    free(cookie);
    if (!*fresh) {
        rg_session_claims_clear(c);
        return rg_error_oom(err);
    }
    return 0;
}

void gw_h_auth(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    assert(gw && gw->ctx->keys);
    int count = rg_http_cookie_count(req, gw->cookie_name);
    if (count == 0) {
        unauthorized(gw, req, "no_session");
        return;
    }
    if (count > 1) {
        /* a second cookie of our name is planted (e.g. by a sibling
         * subdomain): we cannot tell which one the browser meant */
        unauthorized(gw, req, "duplicate_session_cookie");
        return;
    }
    const char *token = rg_http_cookie(req, gw->cookie_name);
    rg_session_claims c;
    rg_error err;
    rg_error_clear(&err);
    int64_t now = rg_now();
    char *fresh = NULL;
    if (verify_and_refresh(gw, req, token, now, &c, &fresh, &err) != 0) {
        if (err.status == 503)
            gw_deny(req, 503, err.code);
        else
            unauthorized(gw, req, err.code[0] ? err.code : "token_invalid");
        return;
    }
    if (fresh)
        token = fresh;   /* arena: the app gets the token the browser now has */
    /* R24 omit_permissions: the token names roles only; the permissions
     * come from the organization's current role table */
    rg_slugs table_perms = {0};
    const char *const *perms = c.permissions;
    size_t n_perms = c.n_permissions;
    if (c.permissions_omitted) {
        if (gw_org_permissions(gw, c.org_id, c.roles, c.n_roles, &table_perms, &err) != 0) {
            rg_log(RG_LOG_WARN, "event=auth_permissions_unavailable code=%s rid=%s", err.code,
                   rg_http_request_id(req));
            rg_session_claims_clear(&c);
            /* a signed session of an organization deleted since: no access */
            if (err.status == 404)
                unauthorized(gw, req, "organization_unknown");
            else
                gw_deny(req, 503, "permissions_unavailable");
            return;
        }
        perms = (const char *const *)table_perms.v;
        n_perms = table_perms.n;
    }
    const char *unmet = NULL;
    const char *denied = check_requirements(req, &c, perms, n_perms, &unmet);
    if (denied) {
        log_denied(req, 403, denied, &c, unmet);
        forbidden(req, denied, unmet);
    } else {
        char *roles = gw_join(req, c.roles, c.n_roles);
        char *plist = gw_join(req, perms, n_perms);
        const char *role = c.role ? c.role : (c.n_roles ? c.roles[0] : "");
        if (!roles || !plist) {
            gw_deny(req, 500, "internal");
        } else {
            rg_http_add_header(req, "Cache-Control", "no-store");
            /* issue 11 item 13: a header that cannot be set (CR/LF in a
             * claim) is an error, never a 200 with the header missing */
            const char *const hv[][2] = {
                {"X-Rolegate-User", c.sub}, {"X-Rolegate-Email", c.email ? c.email : ""},
                {"X-Rolegate-Org", c.org_id}, {"X-Rolegate-Role", role},
                {"X-Rolegate-Roles", roles}, {"X-Rolegate-Permissions", plist},
                {"X-Rolegate-Session", token}, {"X-Rolegate-Actor", c.act_sub}};
            const char *bad = NULL;
            if (rg_http_add_headers(req, hv, sizeof hv / sizeof hv[0], &bad) != 0) {
                rg_log(RG_LOG_ERROR, "event=auth_header_failed header=%s sid=%s rid=%s "
                       "reason=\"the claim cannot be a header value\"", bad,
                       c.sid ? c.sid : "-", rg_http_request_id(req));
                gw_deny(req, 500, "header_unsettable");
            } else {
                rg_http_send_arena(req, 200, NULL, NULL, 0);
            }
        }
    }
    rg_slugs_clear(&table_perms);
    rg_session_claims_clear(&c);
}

/* Issue 11 item 9: /auth answers by status and their latency. */
void gw_h_auth_metered(rg_http_req *req, void *ctx)
{
    int64_t t0 = rg_mono_us();
    gw_h_auth(req, ctx);
    int status = rg_http_response_status(req);   /* three digits: 100-999 (HTTP uses 100-599) */
    if (status < 100 || status > 999)
        status = 500;
    char st[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                  (char)('0' + status % 10), 0};
    rg_metrics_add("rolegate_auth_requests_total", "status", st, NULL, NULL, 1);
    rg_metrics_observe("rolegate_auth_duration_seconds", NULL, NULL,
                       (double)(rg_mono_us() - t0) / 1e6);
}
