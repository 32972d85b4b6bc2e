/* login.c: GET /login (pick the organization's connection, check return_to
 * against open redirects, start SAML or OIDC with a pending login bound to
 * the browser), route registration and the login state's lifetime. */
#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include "login_internal.h"
#include "pages.h"
#include "rolegate/store.h"
#include "rolegate/util.h"

/* The connection to use: connection= (checked against organization= when
 * both are given), else the organization's only connection, else (no
 * parameter) the deployment's only connection. 0 and *out, or an error. */
static int pick_connection(rg_gateway_login *lg, const char *org, const char *cid,
                           lg_conn **out, rg_error *err)
{
    if (cid && *cid) {
        int rc = lg_conn_acquire(lg, cid, out, err);
        if (!rc && org && *org && strcmp(org, (*out)->org_id) != 0) {
            lg_conn_release(lg, *out);
            *out = NULL;
            return rg_error_set(err, RG_EINVAL, "connection_not_in_organization",
                                "connection", "the connection is not this organization's");
        }
        return rc;
    }
    if (!lg->ctx->store)
        return rg_error_set(err, RG_EUNAVAIL, "store_unavailable", NULL, "no store");
    if (org && *org) {
        json_t *o = NULL;
        int grc = rg_store_organization_get(lg->ctx->store, org, &o, err);
        if (grc != 0 && err->status != 404)
            return grc;   /* a store that is down stays its 503 (issue 15) */
        if (grc != 0)
            return rg_error_set(err, RG_ENOTFOUND, "organization_not_found",
                                "organization", "no such organization");
        json_decref(o);
    }
    rg_store_list_opts lo = {.limit = 2};
    json_t *list = NULL;
    int rc = rg_store_connection_list(lg->ctx->store, org && *org ? org : NULL, &lo, &list, err);
    if (rc)
        return rc;
    json_t *data = json_object_get(list, "data");
    size_t n = json_array_size(data);
    if (n == 0) {
        json_decref(list);
        return rg_error_set(err, RG_ENOTFOUND, "no_connection", "organization",
                            "this organization has no identity provider connection");
    }
    if (n > 1) {
        json_decref(list);
        return rg_error_set(err, RG_EINVAL,
                            org && *org ? "connection_required" : "organization_required",
                            org && *org ? "connection" : "organization",
                            org && *org ? "the organization has several connections: "
                                          "add connection=conn_..."
                                        : "add organization=org_... to the sign-in link");
    }
    const char *id = json_string_value(json_object_get(json_array_get(data, 0), "id"));
    char idc[LG_ID_MAX];
    snprintf(idc, sizeof idc, "%s", id ? id : "");
    json_decref(list);
    return lg_conn_acquire(lg, idc, out, err);
}

/* Home-realm discovery (issue 11 item 2) for a /login that names neither
 * organization nor connection: the domain of domain_hint= or of the email
 * in login_hint= picks the organization by its domains. Without a hint, a
 * deployment with one connection goes straight to it (returns 2, found
 * ""), any other shows the sign-in page. Returns 1 with found = the
 * organization, 2 to pick the only connection, or 0 after answering. An
 * unknown domain says so and names no organization. */
static int discover(rg_http_req *req, rg_gateway_login *lg, const char *return_to,
                    char *found, size_t n)
{
    found[0] = 0;
    const char *email = rg_http_query(req, "login_hint");
    const char *domain = rg_http_query(req, "domain_hint");
    if ((!domain || !*domain) && email && *email) {
        const char *at = strrchr(email, '@');
        domain = at && at != email ? at + 1 : NULL;
        if (!domain || !*domain) {
            pg_signin(req, 400, return_to, email, "Enter your work email address, "
                      "like name@company.com.");
            return 0;
        }
    }
    rg_error err;
    rg_error_clear(&err);
    if (!domain || !*domain) {
        rg_store_list_opts lo = {.limit = 2};
        json_t *list = NULL;
        if (rg_store_connection_list(lg->ctx->store, NULL, &lo, &list, &err) != 0) {
            lg_page(req, err.status ? err.status : 503, "Sign-in unavailable", err.code,
                    "Sign-in is unavailable at the moment; try again shortly.");
            return 0;
        }
        size_t nc = json_array_size(json_object_get(list, "data"));
        json_decref(list);
        if (nc == 1)
            return 2;
        pg_signin(req, 200, return_to, NULL, NULL);
        return 0;
    }
    if (rg_store_organization_by_domain(lg->ctx->store, domain, found, n, &err) == 0)
        return 1;
    rg_log(RG_LOG_INFO, "event=login_discovery result=%s rid=%s", err.code,
           rg_http_request_id(req));
    pg_signin(req, err.status == 409 ? 409 : err.status == 404 ? 404 : 503, return_to, email,
              err.status == 404 ? "No organization signs in with this email domain here. "
                                  "Check the address, or ask your administrator for your "
                                  "sign-in link."
              : err.status == 409 ? "Several organizations use this email domain: ask your "
                                    "administrator for your sign-in link."
                                  : "Sign-in is unavailable at the moment; try again shortly.");
    return 0;
}

void lg_h_login(rg_http_req *req, void *ctx)
{
    rg_gateway_login *lg = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *return_to = rg_http_query(req, "return_to");
    if (!return_to || !*return_to)
        return_to = "/";
    /* open-redirect guard before anything else (DESIGN.md security floor) */
    if (!lg_return_to_ok(lg, return_to)) {
        lg_page(req, 400, "Sign-in refused", "invalid_return_to",
                "return_to must be a path of this site (starting with a single /) or an "
                "allowed origin.");
        return;
    }
    const char *org = rg_http_query(req, "organization");
    const char *cid = rg_http_query(req, "connection");
    char found[LG_ID_MAX];
    if ((!org || !*org) && (!cid || !*cid)) {
        int r = discover(req, lg, return_to, found, sizeof found);
        if (r <= 0)
            return;   /* it answered: the sign-in page, or a refusal */
        org = found;
    }
    lg_conn *c = NULL;
    if (pick_connection(lg, org, cid, &c, &err) != 0) {
        json_t *list = NULL;
        rg_store_list_opts lo = {.limit = 20};
        if (strcmp(err.code, "connection_required") == 0 &&
            rg_store_connection_list(lg->ctx->store, org, &lo, &list, &err) == 0) {
            pg_choose(req, list, return_to);   /* the organization has several */
            json_decref(list);
            return;
        }
        lg_page(req, err.status ? err.status : 400, "Sign-in unavailable", err.code,
                err.message);
        return;
    }
    lg_pending p;
    memset(&p, 0, sizeof p);
    snprintf(p.conn_id, sizeof p.conn_id, "%s", c->id);
    snprintf(p.org_id, sizeof p.org_id, "%s", c->org_id);
    snprintf(p.return_to, sizeof p.return_to, "%s", return_to);
    p.created_at = rg_now();
    if (c->type == 's')
        lg_saml_begin(req, lg, c, &p);
    else
        lg_oidc_begin(req, lg, c, &p, rg_http_query(req, "login_hint"));
    lg_conn_release(lg, c);
}

/* ---- registration and lifetime ---------------------------------------------- */

rg_gateway_login *rg_gateway_login_register(struct rg_http_server *pub, rg_ctx *ctx,
                                            rg_error *err)
{
    assert(ctx && ctx->config);
    if (!ctx->store || !ctx->keys) {
        rg_error_set(err, RG_EINTERNAL, "login_unavailable", NULL,
                     "the store and the session keys are needed for logins");
        return NULL;
    }
    const rg_config *cfg = ctx->config;
    rg_gateway_login *lg = calloc(1, sizeof *lg);
    if (!lg) {
        rg_error_oom(err);
        return NULL;
    }
    pthread_mutex_init(&lg->clock, NULL);
    lg->ctx = ctx;
    lg->cfg = cfg;
    lg->secure = cfg->server.secure;   /* derived from base_url at config load */
    lg->base = cfg->server.base;
    lg->origin = cfg->server.origin;
    /* login state and the SAML replay cache live in the cache layer:
     * Redis when configured (shared by every instance), else in-process */
    if (!ctx->cache) {
        rg_gateway_login_free(lg);
        rg_error_set(err, RG_EINTERNAL, "internal", NULL, "login needs the cache layer");
        return NULL;
    }
    lg->pending = lg_pending_new(ctx->cache, LG_STATE_TTL_S);
    if (!lg->pending) {
        rg_gateway_login_free(lg);
        rg_error_oom(err);
        return NULL;
    }
    /* the ACS form body is capped at saml.max_response (256 KiB): 413 from
     * Content-Length before reading; the library caps the decoded XML too */
    size_t acs_max = cfg->saml.max_response ? cfg->saml.max_response : RG_SAML_DEFAULT_MAX_RESPONSE;
    /* Offloaded (RG_HTTP_OFFLOAD): the handlers that sign, verify or wait on
     * an IdP, so /auth on the same poll thread never queues behind them. */
    const rg_http_route_def public_routes[] = {
        {"GET", "/login", lg_h_login, RG_HTTP_OFFLOAD, 0},
        {"GET", "/saml/metadata/{id}", lg_h_saml_metadata, 0, 0},
        {"GET", "/saml/slo/{id}", lg_h_saml_slo, RG_HTTP_OFFLOAD, 0},
        {"POST", "/saml/acs/{id}", lg_h_saml_acs, RG_HTTP_BODY_FORM | RG_HTTP_OFFLOAD, acs_max},
        {"GET", "/oidc/callback", lg_h_oidc_callback, RG_HTTP_OFFLOAD, 0},
        /* issue 13: OIDC single logout (oidc_logout.c) */
        {"GET", "/oidc/signed-out", lg_h_oidc_signed_out, 0, 0},
        {"POST", "/oidc/backchannel-logout/{id}", lg_h_oidc_backchannel,
         RG_HTTP_BODY_FORM | RG_HTTP_OFFLOAD, LG_BCL_MAX_BODY},
    };
    int rc = rg_http_routes_add(pub, public_routes, RG_HTTP_NROUTES(public_routes), lg, err);
    if (rc) {
        rg_gateway_login_free(lg);
        return NULL;
    }
    return lg;
}

void rg_gateway_login_free(rg_gateway_login *lg)
{
    if (!lg)
        return;
    if (lg->demo_idp_pid > 0) {
        kill(lg->demo_idp_pid, SIGTERM);
        waitpid(lg->demo_idp_pid, NULL, 0);
    }
    lg_conns_clear(lg);
    lg_pending_free(lg->pending);
    pthread_mutex_destroy(&lg->clock);
    free(lg);
}
