/* gateway.h: the browser and proxy handlers of the public listener
 * (DESIGN.md layer "gateway") and the admin-issued sessions of the admin
 * listener. Handlers only orchestrate: tokens are the session layer's,
 * roles the core's, rows the store's. Two blocks: the reverse-proxy auth
 * side (gwauth) and the logins (/login, ACS, OIDC callback). */
#ifndef ROLEGATE_GATEWAY_H
#define ROLEGATE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "rolegate/config.h"
#include "rolegate/core.h"
#include "rolegate/ctx.h"
#include "rolegate/error.h"
#include "rolegate/session.h"

/* ==== gwauth: /auth, /logout, /.well-known/jwks.json, POST /sessions ===== */

/* Clock skew accepted on session `exp` / `iat` (seconds). */
#define RG_GATEWAY_SKEW            60

typedef struct rg_gateway rg_gateway;   /* opaque: token cache + revocation set */

/* Builds the auth state over ctx (borrowed: ctx, ctx->config, ctx->keys and
 * ctx->cache must outlive the returned object; ctx->keys must be loaded and
 * ctx->cache created: the permissions of a `permissions_omitted` token (R24)
 * come from its role tables) and registers
 *   on ctx->public_server: GET|POST|PUT|PATCH|DELETE|OPTIONS /auth,
 *       GET|POST /logout, GET /.well-known/jwks.json
 *   on ctx->admin_server:  POST /sessions
 * (a NULL server is skipped). Call before the servers start. Returns the
 * state, or NULL with err. Free it with rg_gateway_free AFTER both servers
 * have stopped. */
rg_gateway *rg_gateway_auth_register(rg_ctx *ctx, rg_error *err);
/* Frees the caches and the revocation set. Accepts NULL. */
void rg_gateway_free(rg_gateway *gw);

/* The revocation set and verified-token cache /auth reads (borrowed from
 * gw): a logout another instance shares through Redis is fed in with
 * rg_session_revoke(rg_gateway_revocations(gw), rg_gateway_token_cache(gw),
 * sid, exp, now) (main.c's on_remote_revoke). */
rg_revocations *rg_gateway_revocations(rg_gateway *gw);
rg_token_cache *rg_gateway_token_cache(rg_gateway *gw);

/* R30: revokes every session of user sub in organization org_id issued
 * before `before` (seconds; pass rg_now() + 1 for "every session issued so
 * far") on this instance (rg_session_revoke_user, kept for the session
 * lifetime) and on every instance (rg_cache_revoke_user_publish; queued
 * while Redis is down). Returns 0, RG_EINVAL or RG_ENOMEM (local). The
 * sink of revocations learned from Redis is rg_gateway_revoke_user_sink
 * (ctx = gw, for rg_cache_set_revoke_user_sink). */
int rg_gateway_revoke_user(rg_gateway *gw, const char *sub, const char *org_id,
                           int64_t before);
int rg_gateway_revoke_user_sink(void *gw, const char *sub, const char *org_id,
                                int64_t before, int64_t until);

/* Issue 13: revokes sid until end (seconds) here and, through Redis, on
 * every instance. 0 or RG_ENOMEM. */
int rg_gateway_revoke_sid(rg_gateway *gw, const char *sid, int64_t end);
/* The login side's part of /logout (issue 13: single logout at the IdP):
 * called with the sid /logout just revoked; sets *redirect_url (malloc'd)
 * to send the browser on to, or leaves it NULL. Set before serving. */
typedef int (*rg_gateway_logout_fn)(void *ctx, const char *sid, char **redirect_url);
void rg_gateway_set_logout_hook(rg_gateway *gw, rg_gateway_logout_fn fn, void *ctx);

/* What every issuer of sessions must agree on, so /auth accepts them:
 * the `iss` claim is server.base_url (returned borrowed from cfg), and the
 * cookie is the secure one (`__Host-rolegate`, Secure) iff
 * cfg->server.secure (base_url is https, derived at config load). */
const char *rg_gateway_issuer(const rg_config *cfg);
/* Sets c->exp (and c->auth_time) of a new session issued at c->iat: with
 * session.refresh, auth_time = iat and exp = iat + token_lifetime (/auth
 * refreshes it until auth_time + lifetime, issue 13); without, exp = iat +
 * lifetime (one snapshot token, R25). The cookie's Max-Age is `lifetime`
 * either way. */
void rg_gateway_token_times(const rg_config *cfg, rg_claims *c);

/* Issues a session token for one membership (R24 claims: iss, sub =
 * user_id, a new sid "session_<ULID>", jti, org_id, email, roles in
 * priority order, permissions = their union from table, iat, exp; act
 * {"sub": act_sub} when act_sub is non-NULL) with the size policy of
 * cfg->session (oversize, cookie_budget, lifetime). Over budget under
 * `reject`: 422 "session_too_large" (message: size, budget, number of
 * permissions). On success *token and *set_cookie are malloc'd (caller
 * frees; set_cookie may be NULL if not wanted), sid_out receives the sid,
 * *exp the session's end (auth_time + lifetime; without refresh the token's
 * exp), *cookie_len and *omitted (may be NULL) the cookie size
 * and whether permissions were left out. */
int rg_gateway_session_issue(const rg_ctx *ctx, const rg_role_table *table,
                             const char *user_id, const char *email, const char *org_id,
                             const char *const *roles, size_t n_roles, const char *act_sub,
                             char **token, char **set_cookie, char sid_out[64],
                             int64_t *exp, size_t *cookie_len, int *omitted, rg_error *err);

/* Directory sync (R27-R31): registers the SCIM 2.0 service provider on
 * gw's public server under /scim/v2/{directory_id}/ (Users, Groups,
 * ServiceProviderConfig, ResourceTypes, Schemas). Call before the server
 * starts. 0 or negative with err. */
int rg_gateway_scim_register(rg_gateway *gw, rg_error *err);

/* ==== end gwauth ========================================================= */

/* ==== login: /login, SAML metadata + ACS, OIDC callback ================== */

/* The login state (opaque): pending logins bound to the browser by the
 * state cookie, the SAML replay cache, the per-connection SAML/OIDC runtime
 * objects (rebuilt when a connection changes) and the demo's fixture IdP. */
typedef struct rg_gateway_login rg_gateway_login;

/* Registers on the public listener (NULL: none; call before it starts)
 * GET /login, GET /saml/metadata/{id}, GET /saml/slo/{id}, POST
 * /saml/acs/{id}, GET /oidc/callback. (The admin side of connections,
 * metadata upload and login records, is the admin API's: api/.)
 * ctx is borrowed (ctx->store, ctx->keys and ctx->sp_keys must be set and
 * outlive the result); rg_saml_global_init and rg_oidc_global_init must
 * have run. The SAML SP key pair is made at the first SAML use
 * (rg_saml_sp_keys_ensure). Returns the state, or NULL with err. Free it
 * with rg_gateway_login_free AFTER both servers have stopped. */
rg_gateway_login *rg_gateway_login_register(struct rg_http_server *public_server,
                                            rg_ctx *ctx, rg_error *err);
/* Stops the demo IdP child (if any) and frees everything. Accepts NULL. */
void rg_gateway_login_free(rg_gateway_login *lg);

/* `make run` demo ([demo] enabled = true): when the store holds no
 * organization, creates a demo organization, permissions, roles (admin,
 * member, viewer), a SAML connection on the fixture IdP (idp-fixtures/) with
 * group mappings, starts `<build>/fixtures/rg-fixture-idp serve` as a child
 * process and prints the login URL. Never fatal: problems are logged and
 * the server goes on. Returns 0 if the demo is ready, 1 if skipped, -1 on a
 * problem (logged). */
int rg_gateway_demo_setup(rg_gateway_login *lg);

/* Issue 13 (SAML SLO): the /auth state whose revocations an IdP-initiated
 * logout feeds, and the logout hook (rg_gateway_set_logout_hook, ctx = lg)
 * that sends /logout on to the IdP's SingleLogoutService. */
void rg_gateway_login_set_auth(rg_gateway_login *lg, rg_gateway *gw);
int rg_gateway_login_logout_hook(void *lg, const char *sid, char **redirect_url);

/* ==== end login ========================================================== */

/* ==== console: the admin console's and the setup portal's assets ========= */

/* One embedded file of src/console/ (generated at build time by
 * src/console/embed.sh; the table ends with a NULL name). */
typedef struct rg_console_asset {
    const char          *name, *type;
    const unsigned char *data;
    size_t               len;
} rg_console_asset;
extern const rg_console_asset rg_console_assets[];

/* Serves the console on the admin listener (GET / and /console/{file}) and
 * the portal's page on the public one (GET /portal, /portal/assets/{file}),
 * every answer with CSP default-src 'self', frame-ancestors 'none' and
 * nosniff. Either server may be NULL. 0, or negative with err. */
int rg_gateway_console_register(struct rg_http_server *public_server,
                                struct rg_http_server *admin_server, rg_error *err);

/* ==== portal: the IT admin's setup portal ================================= */

/* POST /portal/links on the admin listener; the portal's session, test
 * sign-in and the admin routes it re-serves (scoped to the link's
 * organization) under /portal/api/ on the public one. login and api are
 * borrowed and must outlive the servers. NULL with err on failure. */
typedef struct rg_gateway_portal rg_gateway_portal;
struct rg_api;
rg_gateway_portal *rg_gateway_portal_register(struct rg_http_server *public_server,
                                              struct rg_http_server *admin_server,
                                              rg_gateway_login *login, struct rg_api *api,
                                              rg_error *err);
void rg_gateway_portal_free(rg_gateway_portal *p);   /* after both servers; accepts NULL */

/* ==== end console ======================================================== */

/* rolegate's version (issue 11 item 8). */
#define RG_VERSION "0.1.0"
/* Prints "rolegate VERSION" and one "library VERSION" line per linked
 * library (lasso, xmlsec1, libxml2, libcurl, libjwt, hiredis, SQLite,
 * OpenSSL, libmicrohttpd, jansson) to out. */
void rg_gateway_print_version(FILE *out);

#endif
