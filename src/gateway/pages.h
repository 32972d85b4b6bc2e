/* pages.h: the public HTML pages of src/gateway (issue 11 items 2, 4, 5),
 * shared by the login half (login_internal.h) and the auth half
 * (gw_internal.h): one page shell with the stylesheet and CSP default-src
 * 'self' (no inline script or style), the sign-in page of home-realm
 * discovery, the connection chooser, "who am I", "signed out" and the
 * readable denial page. Nobody outside src/gateway sees it. */
#ifndef ROLEGATE_GW_PAGES_H
#define ROLEGATE_GW_PAGES_H

#include <jansson.h>
#include "rolegate/http.h"

/* Sends <!doctype html> with title (escaped here) around body (HTML the
 * caller escaped), Cache-Control no-store, CSP default-src 'self'. */
void pg_send(rg_http_req *req, int status, const char *title, const char *body);
/* HTML-escapes s into the request's arena ("" for NULL; NULL on OOM). */
char *pg_esc(rg_http_req *req, const char *s);

/* The sign-in page: a work-email form (GET /login, field login_hint, hidden
 * return_to), with message (plain text, may be NULL) above it and email
 * (may be NULL) as the field's value. */
void pg_signin(rg_http_req *req, int status, const char *return_to, const char *email,
               const char *message);
/* One button per connection of conns (a store list {"data": [...]}), each a
 * GET /login form with connection= and return_to=. */
void pg_choose(rg_http_req *req, const json_t *conns, const char *return_to);

/* An /auth refusal as a sentence for a person ("You do not have the role
 * this page needs."). Unknown codes get a generic sentence. Static. */
const char *pg_reason_text(const char *code);
/* The denial page: reason code, its sentence, the unmet requirement (may
 * be NULL), links to sign in again and to sign out. */
void pg_denied(rg_http_req *req, int status, const char *code, const char *requirement);

/* Handlers (ctx unused): GET /assets/rolegate.css, GET /signed-out,
 * GET /denied?reason=&requirement= (what the nginx snippet's 403 shows). */
void pg_h_css(rg_http_req *req, void *ctx);
void pg_h_signed_out(rg_http_req *req, void *ctx);
void pg_h_denied(rg_http_req *req, void *ctx);
/* GET /whoami (ctx = the rg_gateway): the session's user, organization,
 * roles, permissions, token size and a sign-out button; 401 page with a
 * sign-in link without a valid session. */
void gw_h_whoami(rg_http_req *req, void *ctx);

#endif
