/* logout.c: /logout. POST always; GET only from rolegate's own pages
 * (Sec-Fetch-Site same-origin/none, else Origin/Referer of base_url:
 * DESIGN.md; a cross-site <img src=/logout> logs nobody out). Revokes each
 * presented sid until its exp (session layer's revocation set), shares it
 * with every instance (cache layer: Redis), drops its cached tokens, marks
 * its record revoked (the store's sessions table, issue 13), clears
 * the cookie (same attributes, Max-Age=0) and
 * redirects to session.logout_redirect. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "gw_internal.h"
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* 1 if url begins with origin and then ends or continues with / ? #. */
static int same_origin(const char *origin, const char *url)
{
    size_t n = strlen(origin);
    if (!url || strncasecmp(url, origin, n) != 0)
        return 0;
    return url[n] == 0 || url[n] == '/' || url[n] == '?' || url[n] == '#';
}

static int get_allowed(rg_gateway *gw, rg_http_req *req)
{
    const char *site = rg_http_header(req, "Sec-Fetch-Site");
    if (site)
        return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
    const char *origin = rg_http_header(req, "Origin");
    if (origin)
        return same_origin(gw->origin, origin) && strlen(origin) == strlen(gw->origin);
    return same_origin(gw->origin, rg_http_header(req, "Referer"));
}

void gw_h_logout(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    assert(gw && gw->ctx->keys);
    if (strcmp(rg_http_method(req), "POST") != 0 && !get_allowed(gw, req)) {
        gw_deny(req, 403, "logout_cross_site");
        return;
    }
    /* every cookie of our name: a planted duplicate must not keep the real
     * session alive */
    rg_http_kv *kv = NULL;
    size_t n = 0;
    const char *cookie_hdr = rg_http_header(req, "Cookie");
    if (cookie_hdr && rg_http_parse_cookies(rg_http_arena(req), cookie_hdr, &kv, &n) != 0)
        n = 0;
    int64_t now = rg_now();
    int revoked = 0;
    char *idp_url = NULL;   /* single logout at the IdP (issue 13) */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kv[i].key, gw->cookie_name) != 0)
            continue;
        rg_session_claims c;
        rg_error err;
        /* only a token we signed names a sid we revoke: a forged one must
         * not log someone else out; a lapsed token of a live session
         * (issue 13) is one /auth would still refresh: revoke it too */
        if (rg_session_verify_lapsed(gw->ctx->keys, kv[i].value, now, RG_GATEWAY_SKEW,
                                     gw->cfg->session.refresh ? gw->cfg->session.idle_timeout
                                                              : 0,
                                     rg_gateway_issuer(gw->cfg), &c, &err) != 0)
            continue;
        /* until the session's end: every token refreshed from it has its sid */
        int64_t end = gw_session_end(gw->cfg, &c);
        if (rg_session_revoke(gw->revs, gw->tcache, c.sid, end, now) == 0)
            revoked++;
        /* every instance: Redis (queued and shared on reconnect if down) */
        if (gw->ctx->cache)
            rg_cache_revoke_publish(gw->ctx->cache, c.sid, end);
        /* the record too (issue 13): the admin sessions list shows it ended,
         * with its session.revoked event; a session without one (issued
         * before the record existed) is no error */
        rg_error serr;
        rg_error_clear(&serr);
        if (gw->ctx->store &&
            rg_store_session_revoke(gw->ctx->store, c.sid, "logout", NULL, &serr) != 0 &&
            serr.status != 404)
            rg_log(RG_LOG_WARN, "event=logout_record_not_revoked sid=%s code=%s rid=%s", c.sid,
                   serr.code, rg_http_request_id(req));
        rg_log(RG_LOG_INFO, "event=logout sub=%s sid=%s rid=%s", c.sub, c.sid,
               rg_http_request_id(req));
        /* issue 13: the IdP's session too, when the login's IdP can */
        if (!idp_url && gw->logout_hook)
            gw->logout_hook(gw->logout_ctx, c.sid, &idp_url);
        rg_session_claims_clear(&c);
    }
    char *clear = NULL;
    if (rg_session_cookie_build(gw->cookie_name, "", 0, gw->secure, &clear) >= 0) {
        rg_http_add_header(req, "Set-Cookie", clear);
        free(clear);
    }
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_add_header(req, "X-Rolegate-Revoked", revoked ? "1" : "0");
    rg_http_redirect(req, 302, idp_url ? idp_url : gw->cfg->session.logout_redirect);
    free(idp_url);
}
