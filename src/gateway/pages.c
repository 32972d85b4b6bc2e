/* pages.c: the HTML pages a person sees on the public listener (issue 11):
 * the sign-in page of home-realm discovery and the connection chooser
 * (item 2), "who am I" at /whoami (item 4: user, organization, roles,
 * permissions, token size, a sign-out button), "signed out" at /signed-out
 * and the readable denial page at /denied (item 5), and their one
 * stylesheet. No inline script or style: CSP default-src 'self'; forms
 * have labels. Every value shown is HTML-escaped here. */
#include <stdio.h>
#include <string.h>
#include "gw_internal.h"
#include "login_internal.h"
#include "pages.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

static const char css[] =
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1b1b;line-height:1.5}\n"
    "h1{font-size:1.5rem}label{display:block;font-weight:600;margin-bottom:.25rem}\n"
    "input[type=email]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\n"
    "button{margin-top:.75rem;padding:.5rem 1rem;font-size:1rem}\n"
    ".message{padding:.5rem .75rem;border-left:4px solid #b00020;background:#fdecee}\n"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}"
    "dt{font-weight:600}dd{margin:0;word-break:break-all}\n"
    "code{background:#f2f2f2;padding:0 .2rem}\n";

char *pg_esc(rg_http_req *req, const char *s)
{
    return lg_html_escape(rg_http_arena(req), s);
}

void pg_send(rg_http_req *req, int status, const char *title, const char *body)
{
    char *t = pg_esc(req, title);
    char *page = t && body ? rg_arena_printf(rg_http_arena(req),
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>%s</title>\n<link rel=\"stylesheet\" href=\"/assets/rolegate.css\">\n"
        "</head>\n<body><main>\n<h1>%s</h1>\n%s</main></body></html>\n", t, t, body) : NULL;
    rg_http_add_header(req, "Cache-Control", "no-store");
    /* no form-action: browsers apply it to the redirects after a submit,
     * and the sign-in form's /login redirects to the IdP's origin (found
     * by the chromium SSO test, test_console_sso.py) */
    rg_http_add_header(req, "Content-Security-Policy",
                       "default-src 'self'; frame-ancestors 'none'");
    rg_http_add_header(req, "X-Content-Type-Options", "nosniff");
    if (!page) {
        rg_http_send(req, 500, "text/plain", "internal error\n", 15);
        return;
    }
    rg_http_send_arena(req, status, "text/html; charset=utf-8", page, strlen(page));
}

void pg_signin(rg_http_req *req, int status, const char *return_to, const char *email,
               const char *message)
{
    rg_arena *a = rg_http_arena(req);
    char *msg = message ? rg_arena_printf(a, "<p class=\"message\" role=\"alert\" "
                                             "id=\"message\">%s</p>\n", pg_esc(req, message))
                        : "";
    char *body = msg ? rg_arena_printf(a,
        "%s<form method=\"get\" action=\"/login\">\n"
        "<label for=\"email\">Work email</label>\n"
        "<input id=\"email\" name=\"login_hint\" type=\"email\" autocomplete=\"email\" "
        "required autofocus value=\"%s\">\n"
        "<input type=\"hidden\" name=\"return_to\" value=\"%s\">\n"
        "<button type=\"submit\">Continue</button>\n</form>\n"
        "<p>You will be sent to your organization's sign-in page.</p>\n",
        msg, pg_esc(req, email), pg_esc(req, return_to ? return_to : "/")) : NULL;
    pg_send(req, status, "Sign in", body);
}

void pg_choose(rg_http_req *req, const json_t *conns, const char *return_to)
{
    rg_arena *a = rg_http_arena(req);
    const json_t *data = json_object_get(conns, "data");
    char *body = rg_arena_strdup(a, "<p>Choose how to sign in:</p>\n");
    for (size_t i = 0; body && i < json_array_size(data); i++) {
        const json_t *c = json_array_get(data, i);
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        body = rg_arena_printf(a, "%s<form method=\"get\" action=\"/login\">"
                               "<input type=\"hidden\" name=\"connection\" value=\"%s\">"
                               "<input type=\"hidden\" name=\"return_to\" value=\"%s\">"
                               "<button type=\"submit\">%s</button></form>\n", body,
                               pg_esc(req, id), pg_esc(req, return_to), pg_esc(req, name));
    }
    pg_send(req, 200, "Sign in", body);
}

/* ---- denials (item 5) --------------------------------------------------- */

typedef struct { const char *code, *text; } reason_text;
static const reason_text reasons[] = {
    {"no_session", "You are not signed in."},
    {"duplicate_session_cookie", "Your browser sent two session cookies; sign in again."},
    {"token_expired", "Your session has expired; sign in again."},
    {"session_revoked", "You signed out of this session; sign in again."},
    {"role_required", "Your account does not have the role this page needs."},
    {"permission_required", "Your account does not have the permission this page needs."},
    {"organization_mismatch", "This page belongs to another organization than the one "
                              "you signed in with."},
    {"organization_unknown", "The organization you signed in with no longer exists."},
    {"too_many_requirements", "This page is misconfigured (too many requirements)."},
};

const char *pg_reason_text(const char *code)
{
    for (size_t i = 0; code && i < sizeof reasons / sizeof *reasons; i++)
        if (strcmp(reasons[i].code, code) == 0)
            return reasons[i].text;
    if (code && strncmp(code, "token_", 6) == 0)
        return "Your session is not valid; sign in again.";
    return "Access to this page was refused.";
}

void pg_denied(rg_http_req *req, int status, const char *code, const char *requirement)
{
    rg_arena *a = rg_http_arena(req);
    char *req_html = requirement && *requirement
                         ? rg_arena_printf(a, "<p>What it needs: <code id=\"requirement\">"
                                              "%s</code></p>\n", pg_esc(req, requirement))
                         : "";
    char *body = req_html ? rg_arena_printf(a,
        "<p>%s</p>\n%s<p>Reason code: <code id=\"reason\">%s</code>. If you think you "
        "should have access, give this code to your administrator.</p>\n"
        "<p><a href=\"/login\">Sign in with another account</a></p>\n"
        "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button>"
        "</form>\n", pg_esc(req, pg_reason_text(code)), req_html, pg_esc(req, code)) : NULL;
    pg_send(req, status, status == 401 ? "Sign-in needed" : "Access denied", body);
}

/* 1 if code is one this gateway answers with (the table above or a
 * token_* verification code), so /denied never shows a made-up one. */
static int known_reason(const char *code)
{
    if (!code || strlen(code) > 64 || strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
                                          strlen(code))
        return 0;
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (strcmp(reasons[i].code, code) == 0)
            return 1;
    return strncmp(code, "token_", 6) == 0 && code[6];
}

/* 1 if need has the shape /auth gives X-Rolegate-Requirement: one of its
 * three query names, '=', then 1..128 bytes of slug or id characters.
 * Anything else in a /denied link was written by someone else (a phishing
 * link would put "call this number" there), so the page leaves it out. */
static int known_requirement(const char *need)
{
    static const char *const names[] = {"require_role=", "require_permission=",
                                        "organization="};
    for (size_t k = 0; need && k < sizeof names / sizeof *names; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(need, names[k], n) != 0)
            continue;
        const char *v = need + n;
        size_t len = strlen(v);
        return len > 0 && len <= 128 &&
               strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:") ==
                   len;
    }
    return 0;
}

void pg_h_denied(rg_http_req *req, void *ctx)
{
    (void)ctx;
    const char *code = rg_http_query(req, "reason");
    const char *need = rg_http_query(req, "requirement");
    if (!known_reason(code))
        code = "access_denied";
    pg_denied(req, 403, code, known_requirement(need) ? need : NULL);
}

void pg_h_css(rg_http_req *req, void *ctx)
{
    (void)ctx;
    rg_http_add_header(req, "Cache-Control", "public, max-age=3600");
    rg_http_add_header(req, "X-Content-Type-Options", "nosniff");
    rg_http_send(req, 200, "text/css; charset=utf-8", css, sizeof css - 1);
}

void pg_h_signed_out(rg_http_req *req, void *ctx)
{
    (void)ctx;
    pg_send(req, 200, "Signed out",
            "<p id=\"signed-out\">You are signed out of this site.</p>\n"
            "<p>Your organization's identity provider may still remember you: close the "
            "browser to end that session too.</p>\n"
            "<p><a href=\"/login\">Sign in again</a></p>\n");
}

/* ---- who am I (item 4) -------------------------------------------------- */

/* "a, b, c" of strs, each escaped; "(none)" for none. */
static char *esc_list(rg_http_req *req, const char *const *strs, size_t n)
{
    char *j = gw_join(req, strs, n);
    return j && *j ? pg_esc(req, j) : "(none)";
}

void gw_h_whoami(rg_http_req *req, void *ctx)
{
    rg_gateway *gw = ctx;
    const char *token = rg_http_cookie_count(req, gw->cookie_name) == 1
                            ? rg_http_cookie(req, gw->cookie_name) : NULL;
    rg_session_claims c;
    rg_error err;
    rg_error_clear(&err);
    if (!token || rg_session_verify_cached(gw->ctx->keys, gw->tcache, gw->revs, token, rg_now(),
                                           RG_GATEWAY_SKEW, rg_gateway_issuer(gw->cfg), &c,
                                           &err) != 0) {
        pg_send(req, 401, "Not signed in", "<p id=\"signed-out\">You are not signed in.</p>\n"
                "<p><a href=\"/login?return_to=/whoami\">Sign in</a></p>\n");
        return;
    }
    rg_slugs tp = {0};
    const char *const *perms = c.permissions;
    size_t n_perms = c.n_permissions;
    if (c.permissions_omitted && gw_org_permissions(gw, c.org_id, c.roles, c.n_roles, &tp,
                                                    &err) == 0) {
        perms = (const char *const *)tp.v;
        n_perms = tp.n;
    }
    json_t *org = NULL;
    const char *org_name = NULL;
    if (gw->ctx->store && rg_store_organization_get(gw->ctx->store, c.org_id, &org, &err) == 0)
        org_name = json_string_value(json_object_get(org, "name"));
    char ends[40];
    rg_iso8601_ms(c.exp * 1000, ends, sizeof ends);
    rg_arena *a = rg_http_arena(req);
    char *body = rg_arena_printf(a,
        "<dl>\n<dt>User</dt><dd id=\"user\">%s</dd>\n<dt>User id</dt><dd id=\"sub\">%s</dd>\n"
        "<dt>Organization</dt><dd id=\"organization\">%s</dd>\n"
        "<dt>Organization id</dt><dd id=\"org-id\">%s</dd>\n"
        "<dt>Roles</dt><dd id=\"roles\">%s</dd>\n"
        "<dt>Permissions</dt><dd id=\"permissions\">%s%s</dd>\n"
        "<dt>Token size</dt><dd id=\"token-size\">%zu bytes (cookie budget %d)</dd>\n"
        "<dt>Session ends</dt><dd id=\"expires\">%s</dd>\n</dl>\n"
        "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button>"
        "</form>\n",
        pg_esc(req, c.email ? c.email : "(no email)"), pg_esc(req, c.sub),
        pg_esc(req, org_name ? org_name : "(unknown)"), pg_esc(req, c.org_id),
        esc_list(req, c.roles, c.n_roles), esc_list(req, perms, n_perms),
        c.permissions_omitted ? " (from the role table: the token omits them)" : "",
        strlen(token), gw->cfg->session.cookie_budget, ends);
    json_decref(org);
    rg_slugs_clear(&tp);
    rg_session_claims_clear(&c);
    pg_send(req, 200, "Signed in", body);
}
