/* login_pages.c: what a login shows and checks in the browser: return_to
 * (the open-redirect guard), the state cookie and the redirect to the IdP
 * that sets it, HTML escaping, the page of a failed login and its
 * authentication.failed event and login record. */
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

/* ==== return_to ========================================================== */

int lg_return_to_ok(const rg_gateway_login *lg, const char *s)
{
    if (!s || !*s || strlen(s) >= LG_RETURN_TO_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '\\')
            return 0;   /* browsers read '\' as '/' and drop tabs/newlines */
    if (s[0] == '/')
        return s[1] != '/';   /* "//evil.com" is protocol-relative */
    /* absolute: only http(s) to an allowed origin; the origin must be
     * followed by nothing or by a path, query or fragment */
    if (strncasecmp(s, "https://", 8) != 0 && strncasecmp(s, "http://", 7) != 0)
        return 0;
    const char *host = strstr(s, "://") + 3;
    size_t olen = (size_t)(host - s) + strcspn(host, "/?#");
    if (memchr(host, '@', olen - (size_t)(host - s)))
        return 0;   /* userinfo: "https://good.com@evil.com" */
    char origin[RG_CONFIG_STR];
    if (olen >= sizeof origin)
        return 0;
    for (size_t i = 0; i < olen; i++)
        origin[i] = (char)tolower((unsigned char)s[i]);
    origin[olen] = 0;
    if (strcmp(origin, lg->origin) == 0)
        return 1;
    for (const char *p = lg->cfg->server.return_to_origins; *p;) {
        size_t n = strcspn(p, ", \t");
        while (n && p[n - 1] == '/')
            n--;
        if (n == olen && strncasecmp(p, origin, n) == 0)
            return 1;
        p += strcspn(p, ", \t");
        p += strspn(p, ", \t");
    }
    return 0;
}

/* ==== cookies and pages ================================================== */

char *lg_state_cookie(rg_http_req *req, const rg_gateway_login *lg, const char *key,
                      int max_age)
{
    /* The IdP's POST to the ACS is cross-site: only SameSite=None cookies
     * come with it, and browsers accept those only with Secure (https).
     * Under plain http the cookie is Lax (sent on the OIDC callback, a
     * top-level GET) and the SAML ACS finds its pending login by the
     * response's InResponseTo instead (README-login.md). */
    return rg_arena_printf(rg_http_arena(req), "%s=%s; Path=/; Max-Age=%d; HttpOnly; %s",
                           LG_STATE_COOKIE, key, max_age,
                           lg->secure ? "SameSite=None; Secure" : "SameSite=Lax");
}

int lg_begin_redirect(rg_http_req *req, rg_gateway_login *lg, const lg_conn *c, lg_pending *p,
                      const char *protocol, const char *url)
{
    rg_error err;
    rg_error_clear(&err);
    if (lg_pending_put(lg->pending, p, &err) != 0) {
        lg_page(req, err.status ? err.status : 500, "Sign-in unavailable", err.code,
                "The sign-in could not be started.");
        return -1;
    }
    char *cookie = lg_state_cookie(req, lg, p->key, LG_STATE_TTL_S);
    if (cookie)
        rg_http_add_header(req, "Set-Cookie", cookie);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_log(RG_LOG_INFO, "event=login_started protocol=%s connection_id=%s request_id=%s",
           protocol, c->id, rg_http_request_id(req));
    rg_http_redirect(req, 302, url);
    return 0;
}

char *lg_html_escape(rg_arena *a, const char *s)
{
    if (!s)
        s = "";
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += (*p == '&' || *p == '<' || *p == '>' || *p == '"' || *p == '\'') ? 6 : 1;
    char *out = rg_arena_alloc(a, n), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        const char *r = NULL;
        switch (*p) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: *o++ = *p; continue;
        }
        size_t l = strlen(r);
        memcpy(o, r, l);
        o += l;
    }
    *o = 0;
    return out;
}

void lg_page(rg_http_req *req, int status, const char *title, const char *code,
             const char *message)
{
    rg_arena *a = rg_http_arena(req);
    char *body = rg_arena_printf(
        a,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
        "<body><h1>%s</h1>\n<p>%s</p>\n<p>Reason code: <code id=\"reason\">%s</code></p>\n"
        "</body></html>\n",
        lg_html_escape(a, title), lg_html_escape(a, title), lg_html_escape(a, message),
        lg_html_escape(a, code));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_add_header(req, "Content-Security-Policy", "default-src 'none'");
    if (!body) {
        rg_http_send(req, status, "text/plain", "error\n", 6);
        return;
    }
    rg_http_send_arena(req, status, "text/html; charset=utf-8", body, strlen(body));
}

/* The login record's common members. */
static json_t *record_new(const char *conn_id, const char *org_id, const char *protocol,
                          const char *subject)
{
    char ts[40];
    rg_iso8601_ms(rg_now_ms(), ts, sizeof ts);
    json_t *d = json_object();
    if (!d)
        return NULL;
    json_object_set_new(d, "time", json_string(ts));
    json_object_set_new(d, "connection_id", conn_id ? json_string(conn_id) : json_null());
    json_object_set_new(d, "organization_id",
                        org_id && *org_id ? json_string(org_id) : json_null());
    json_object_set_new(d, "protocol", json_string(protocol ? protocol : "unknown"));
    json_object_set_new(d, "subject", subject ? json_string(subject) : json_null());
    return d;
}

void lg_fail(rg_http_req *req, rg_gateway_login *lg, const char *conn_id, const char *org_id,
             const char *protocol, const char *subject, const rg_error *err)
{
    int status = err && err->status ? err->status : 400;
    const char *code = err && err->code[0] ? err->code : "login_failed";
    json_t *d = record_new(conn_id, org_id, protocol, subject);
    if (d) {
        json_object_set_new(d, "reason", json_string(code));
        json_object_set_new(d, "status", json_integer(status));
        if (err && err->message[0])
            json_object_set_new(d, "message", json_string(err->message));
    }
    /* the event is the login record of a failure (no secret, no assertion) */
    rg_error eerr;
    if (lg->ctx->store && conn_id &&
        rg_store_event_emit(lg->ctx->store, "authentication.failed", d, &eerr) != 0)
        rg_log(RG_LOG_ERROR, "event=login_event_failed error=%s", eerr.code);
    json_decref(d);
    char qs[200], qm[300];
    rg_metrics_add("rolegate_login_failures_total", "connection", conn_id ? conn_id : "unknown",
                   "reason", code, 1);   /* issue 11 item 9 */
    rg_log(RG_LOG_INFO, "event=login result=failed protocol=%s connection_id=%s reason=%s "
           "subject=%s request_id=%s message=%s", protocol ? protocol : "unknown",
           conn_id ? conn_id : "-", code, rg_log_quote(qs, sizeof qs, subject ? subject : "-"),
           rg_http_request_id(req), rg_log_quote(qm, sizeof qm, err ? err->message : ""));
    char *clear = lg_state_cookie(req, lg, "", 0);
    if (clear)
        rg_http_add_header(req, "Set-Cookie", clear);
    lg_page(req, status, "Sign-in failed",  code,
            "The sign-in could not be completed. Give the reason code below to your "
            "administrator, or start again from the application.");
}
