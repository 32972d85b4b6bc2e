/* portal.c: the IT admin's setup portal (DESIGN.md "Admin console and setup
 * portal"). POST /portal/links (admin) makes a one-use link valid 5 minutes
 * for one organization, kept in the cache layer's one-time state (Redis
 * when configured). The portal page redeems it once for a browser session
 * (HttpOnly SameSite=Strict cookie + CSRF token) scoped to that
 * organization. Its endpoints under /portal/api/ re-serve the admin API's
 * own handlers behind a guard that answers 404 for any other
 * organization's object. The test sign-in resolves roles (R15-R17) for the
 * groups the IdP sent, without a membership or a session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/api.h"
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "login_internal.h"

#define PORTAL_COOKIE     "rolegate_portal"
#define PORTAL_SESSION_S  3600
#define PORTAL_TEST_TTL_S 600
#define PORTAL_TOKEN_MAX  64

typedef struct portal_route portal_route;
struct rg_gateway_portal {
    rg_gateway_login *lg;
    rg_api           *api;
    rg_http_bsess    *sessions;
    portal_route     *routes;      /* the guards' contexts */
    size_t            nroutes;
};

/* One re-served route: its guard's scope ('o': the path parameter `param`
 * is the organization; 'c': it is a connection of it) and the real handler. */
struct portal_route {
    struct rg_gateway_portal *p;
    char            scope;
    const char     *param;
    int             xml_only;      /* metadata: XML bodies only, no fetch by URL */
    rg_http_handler fn;
    void           *fn_ctx;
};

static int is_write(const rg_http_req *req)
{
    const char *m = rg_http_method(req);
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* The organization of the request's portal session, or an answer sent
 * (401 none, 403 CSRF / cross-origin on a write) and -1. */
static int session_org(rg_gateway_portal *p, rg_http_req *req, char *org, size_t n)
{
    int write = is_write(req);
    int rc = rg_http_bsess_check(p->sessions, req, PORTAL_COOKIE, write, org, n, NULL);
    if (rc == RG_ENOTFOUND) {
        rg_http_send_errorf(req, RG_EUNAUTH, "portal_session_required", NULL,
                            "open the setup link again (it works once, for 5 minutes)");
        return -1;
    }
    if (rc != 0 || (write && !rg_http_same_origin(req))) {
        rg_http_send_errorf(req, RG_EFORBIDDEN, "csrf_token_invalid", "X-CSRF-Token",
                            "a portal write needs its X-CSRF-Token from the same origin");
        return -1;
    }
    return 0;
}

/* 1 if connection id belongs to org (unknown ids are not). */
static int conn_in_org(rg_gateway_portal *p, const char *id, const char *org)
{
    json_t *c = NULL;
    rg_error err;
    int ok = id && rg_store_connection_get(p->lg->ctx->store, id, &c, &err) == 0;
    const char *o = ok ? json_string_value(json_object_get(c, "organization_id")) : NULL;
    ok = o && strcmp(o, org) == 0;
    json_decref(c);
    return ok;
}

static void not_found(rg_http_req *req)
{
    /* the same answer as an id that does not exist: nothing is told */
    rg_http_send_errorf(req, RG_ENOTFOUND, "not_found", NULL, "not found");
}

static void h_guard(rg_http_req *req, void *ctx)
{
    portal_route *r = ctx;
    char org[RG_HTTP_BSESS_SCOPE];
    if (session_org(r->p, req, org, sizeof org) != 0)
        return;
    const char *v = rg_http_param(req, r->param);
    if (!v || (r->scope == 'o' ? strcmp(v, org) != 0 : !conn_in_org(r->p, v, org))) {
        not_found(req);
        return;
    }
    if (r->xml_only && strstr(rg_http_content_type(req), "json")) {
        rg_http_send_errorf(req, RG_EMEDIATYPE, "unsupported_media_type", "Content-Type",
                            "upload the metadata XML itself (application/samlmetadata+xml)");
        return;
    }
    r->fn(req, r->fn_ctx);
}

/* ---- links (admin) -------------------------------------------------------- */

/* POST /portal/links {"organization_id", "intent": "sso"} -> 201 {"link"} */
static void h_link_create(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    rg_error err;
    rg_error_clear(&err);
    static const char *const allowed[] = {"organization_id", "intent", NULL};
    const char *org = NULL, *intent = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "organization_id", 1, &org, &err);
    if (!rc) rc = rg_api_json_string(b, "intent", 1, &intent, &err);
    if (!rc && strcmp(intent, "sso") != 0)
        rc = rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_intent", "intent",
                          strcmp(intent, "dsync") == 0
                              ? "directory sync is not available on this rolegate yet"
                              : "intent must be \"sso\" or \"dsync\"");
    if (!rc && (rc = rg_store_organization_get(p->lg->ctx->store, org, NULL, &err)) != 0)
        snprintf(err.field, sizeof err.field, "organization_id");
    char token[PORTAL_TOKEN_MAX], key[PORTAL_TOKEN_MAX + 16];
    rg_random_token(token, sizeof token, 32);
    snprintf(key, sizeof key, "portal_link:%s", token);
    json_t *v = rc ? NULL : json_pack("{s:s, s:s}", "org", org, "intent", intent);
    char *vs = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    int ttl = p->lg->cfg->server.portal_link_ttl > 0 ? p->lg->cfg->server.portal_link_ttl : 300;
    if (!rc && (!vs || (rc = rg_cache_state_put(p->lg->ctx->cache, key, vs,
                                                ttl * 1000LL, &err)) != 0) &&
        !err.code[0])
        rc = rg_error_oom(&err);
    free(vs);
    if (rc) {
        rg_http_send_error(req, &err);
        return;
    }
    char exp[32];
    rg_iso8601_ms((rg_now() + ttl) * 1000, exp, sizeof exp);
    char *link = rg_arena_printf(rg_http_arena(req), "%s/portal#link=%s", p->lg->base, token);
    rg_log(RG_LOG_INFO, "event=portal_link_created organization_id=%s intent=%s", org, intent);
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send_json(req, 201, json_pack("{s:s, s:s, s:s, s:s, s:s}", "object", "portal_link",
                                          "link", link ? link : "", "organization_id", org,
                                          "intent", intent, "expires_at", exp));
    memset(token, 0, sizeof token);
}

/* ---- the portal's session (public) ---------------------------------------- */

static void session_answer(rg_gateway_portal *p, rg_http_req *req, int status,
                           const char *org, const char *csrf)
{
    json_t *o = NULL;
    rg_error err;
    if (rg_store_organization_get(p->lg->ctx->store, org, &o, &err) != 0) {
        rg_http_send_error(req, &err);
        return;
    }
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send_json(req, status, json_pack("{s:s, s:s, s:s, s:O, s:s}", "object",
                                             "portal_session", "csrf_token", csrf, "intent",
                                             "sso", "organization", o, "base_url", p->lg->base));
    json_decref(o);
}

/* POST /portal/api/session {"link": token}: the link's one use. */
static void h_session_create(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    json_t *b = rg_http_json(req);
    const char *t = json_string_value(json_object_get(b, "link"));
    if (!rg_http_same_origin(req)) {
        rg_http_send_errorf(req, RG_EFORBIDDEN, "cross_origin", "Origin",
                            "open the link in the portal");
        return;
    }
    if (!t || !t[0] || strlen(t) >= PORTAL_TOKEN_MAX || !rg_b64url_chars(t, strlen(t))) {
        rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "link",
                            "the body is {\"link\": \"...\"}");
        return;
    }
    char key[PORTAL_TOKEN_MAX + 16], *v = NULL;
    snprintf(key, sizeof key, "portal_link:%s", t);
    rg_error err;
    int rc = rg_cache_state_take(p->lg->ctx->cache, key, &v, &err);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;
    free(v);
    const char *org = json_string_value(json_object_get(j, "org"));
    if (rc == RG_EUNAVAIL) {   /* Redis down: 503, not "link invalid" */
        rg_http_send_error(req, &err);
    } else if (rc || !org) {
        rg_log(RG_LOG_WARN, "event=portal_link_refused peer=%s", rg_http_peer_addr(req));
        rg_http_send_errorf(req, RG_ENOTFOUND, "portal_link_invalid", "link",
                            "this setup link was already used, has expired or does not "
                            "exist: ask your rolegate operator for a new one");
    } else {
        char id[RG_HTTP_BSESS_TOKEN], csrf[RG_HTTP_BSESS_TOKEN];
        if (rg_http_bsess_create(p->sessions, org, id, csrf, NULL) != 0) {
            rg_http_send_errorf(req, RG_EINTERNAL, "internal", NULL, "cannot create a session");
        } else {
            rg_http_bsess_cookie(req, PORTAL_COOKIE, id, PORTAL_SESSION_S, p->lg->secure);
            rg_log(RG_LOG_INFO, "event=portal_link_used organization_id=%s", org);
            session_answer(p, req, 201, org, csrf);
        }
    }
    json_decref(j);
}

static void h_session_get(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    char org[RG_HTTP_BSESS_SCOPE], csrf[RG_HTTP_BSESS_TOKEN];
    if (rg_http_bsess_check(p->sessions, req, PORTAL_COOKIE, 0, org, sizeof org, csrf) != 0) {
        rg_http_send_errorf(req, RG_EUNAUTH, "portal_session_required", NULL,
                            "open the setup link again (it works once, for 5 minutes)");
        return;
    }
    session_answer(p, req, 200, org, csrf);
}

static void h_session_delete(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    char org[RG_HTTP_BSESS_SCOPE];
    if (session_org(p, req, org, sizeof org) != 0)
        return;
    rg_http_bsess_delete(p->sessions, req, PORTAL_COOKIE);
    rg_http_bsess_cookie(req, PORTAL_COOKIE, NULL, 0, p->lg->secure);
    rg_http_send(req, 204, NULL, NULL, 0);
}

/* ---- the test sign-in ------------------------------------------------------- */

/* GET /portal/api/connections/{id}/test: a login whose end is a report. */
static void h_test_begin(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    char org[RG_HTTP_BSESS_SCOPE];
    if (session_org(p, req, org, sizeof org) != 0)
        return;
    const char *id = rg_http_param(req, "id");
    lg_conn *c = NULL;
    rg_error err;
    if (!conn_in_org(p, id, org)) {
        lg_page(req, 404, "Test sign-in", "not_found", "no such connection");
        return;
    }
    if (lg_conn_acquire(p->lg, id, &c, &err) != 0) {
        lg_page(req, err.status ? err.status : 422, "Test sign-in", err.code, err.message);
        return;
    }
    lg_pending pend;
    memset(&pend, 0, sizeof pend);
    pend.kind = c->type;
    snprintf(pend.conn_id, sizeof pend.conn_id, "%s", c->id);
    snprintf(pend.org_id, sizeof pend.org_id, "%s", c->org_id);
    char key[PORTAL_TOKEN_MAX];
    rg_random_token(key, sizeof key, 24);
    /* not a path: /login checks return_to, so only this handler makes one */
    snprintf(pend.return_to, sizeof pend.return_to, "%s%s", LG_PORTAL_TEST_PREFIX, key);
    pend.created_at = rg_now();
    if (c->type == 's')
        lg_saml_begin(req, p->lg, c, &pend);
    else
        lg_oidc_begin(req, p->lg, c, &pend, NULL);
    lg_conn_release(p->lg, c);
}

static json_t *strv_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

void lg_portal_test_finish(rg_http_req *req, rg_gateway_login *lg, const lg_conn *conn,
                           const lg_identity *id, const char *key)
{
    rg_error err;
    rg_error_clear(&err);
    rg_cache_ref *ref = NULL;
    rg_resolution res;
    memset(&res, 0, sizeof res);
    rg_login_input in = {.connection_id = conn->id, .groups = id->groups,
                         .n_groups = id->n_groups, .current_source = RG_SOURCE_NONE};
    int rc = rg_cache_table_get(lg->ctx->cache, conn->org_id, &ref, &err);
    if (!rc)
        rc = rg_core_resolve_login(rg_cache_ref_table(ref), &in, &res, &err);
    json_t *maps = json_array();
    for (size_t i = 0; !rc && maps && i < res.matched_groups.n && i < res.matched_roles.n; i++)
        json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", res.matched_groups.v[i],
                                              "role_slug", res.matched_roles.v[i]));
    char ts[32];
    rg_iso8601_ms(rg_now_ms(), ts, sizeof ts);
    json_t *o = rc ? NULL
                   : json_pack("{s:s,s:s,s:s,s:s,s:s?,s:o,s:o,s:o,s:o,s:s,s:s}", "object",
                               "portal_test", "connection_id", conn->id, "organization_id",
                               conn->org_id, "subject", id->subject, "email", id->email,
                               "groups", strv_json(id->groups, id->n_groups), "mappings",
                               json_incref(maps), "roles",
                               strv_json((const char *const *)res.roles.v, res.roles.n),
                               "permissions",
                               strv_json((const char *const *)res.permissions.v,
                                         res.permissions.n),
                               "protocol", id->protocol, "tested_at", ts);
    json_decref(maps);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char k[PORTAL_TOKEN_MAX + 16];
    snprintf(k, sizeof k, "portal_test:%s", key);
    if (!rc && (!s || rg_cache_state_put(lg->ctx->cache, k, s, PORTAL_TEST_TTL_S * 1000LL,
                                         &err) != 0))
        rc = err.code[0] ? RG_ERR : rg_error_oom(&err);
    rg_log(RG_LOG_INFO, "event=portal_test_signin connection_id=%s groups=%zu roles=%zu "
           "result=%s", conn->id, id->n_groups, res.roles.n, rc ? err.code : "ok");
    free(s);
    json_decref(o);
    rg_resolution_clear(&res);
    rg_cache_ref_release(ref);
    if (rc) {   /* no lg_fail: a test leaves no login record */
        lg_page(req, err.status ? err.status : 500, "Test sign-in failed", err.code, err.message);
        return;
    }
    char *loc = rg_arena_printf(rg_http_arena(req), "/portal#test=%s", key);
    rg_http_add_header(req, "Set-Cookie", lg_state_cookie(req, lg, "", 0));
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_redirect(req, 302, loc ? loc : "/portal");
}

/* GET /portal/api/tests/{key}: the report, once, to its organization only. */
static void h_test_result(rg_http_req *req, void *ctx)
{
    rg_gateway_portal *p = ctx;
    char org[RG_HTTP_BSESS_SCOPE];
    if (session_org(p, req, org, sizeof org) != 0)
        return;
    const char *key = rg_http_param(req, "key");
    char k[PORTAL_TOKEN_MAX + 16], *v = NULL;
    json_t *o = NULL;
    rg_error err;
    if (key && strlen(key) < PORTAL_TOKEN_MAX && rg_b64url_chars(key, strlen(key))) {
        snprintf(k, sizeof k, "portal_test:%s", key);
        /* peeked, then put back: a reload of the portal shows it again */
        if (rg_cache_state_take(p->lg->ctx->cache, k, &v, &err) == 0) {
            o = json_loads(v, 0, NULL);
            const char *oo = json_string_value(json_object_get(o, "organization_id"));
            if (oo && strcmp(oo, org) == 0)
                rg_cache_state_put(p->lg->ctx->cache, k, v, PORTAL_TEST_TTL_S * 1000LL, &err);
            else {
                json_decref(o);
                o = NULL;
            }
            free(v);
        }
    }
    if (!o) {
        not_found(req);
        return;
    }
    rg_http_add_header(req, "Cache-Control", "no-store");
    rg_http_send_json(req, 200, o);
}

/* ---- registration --------------------------------------------------------------- */

typedef struct {
    const char *method, *path, *api_pattern;
    const char *param;
    char        scope;      /* 'o': the param is the organization, 'c': a connection of it */
    int         xml_only;   /* metadata: XML bodies only, no fetch by URL */
} rs;
/* The admin API routes the portal re-serves, under /portal/api + path. */
static const rs reserved[] = {
    {"GET", "/organizations/{id}", "/organizations/{id}", "id", 'o', 0},
    {"GET", "/organizations/{org}/roles", "/authorization/organizations/{org}/roles", "org", 'o', 0},
    {"GET", "/organizations/{id}/connections", "/organizations/{id}/connections", "id", 'o', 0},
    {"POST", "/organizations/{id}/connections", "/organizations/{id}/connections", "id", 'o', 0},
    {"GET", "/connections/{id}", "/connections/{id}", "id", 'c', 0},
    {"PATCH", "/connections/{id}", "/connections/{id}", "id", 'c', 0},
    {"GET", "/connections/{id}/role_mappings", "/connections/{id}/role_mappings", "id", 'c', 0},
    {"PUT", "/connections/{id}/role_mappings", "/connections/{id}/role_mappings", "id", 'c', 0},
    {"PUT", "/connections/{id}/metadata", "/connections/{id}/metadata", "id", 'c', 1},
};
#define NRESERVED (sizeof reserved / sizeof reserved[0])

/* The portal's own routes (ctx: the rg_gateway_portal). */
static const rg_http_route_def portal_admin_routes[] = {
    {"POST", "/portal/links", h_link_create, RG_HTTP_BODY_JSON, 0},
};
static const rg_http_route_def portal_public_routes[] = {
    {"POST", "/portal/api/session", h_session_create, RG_HTTP_BODY_JSON, 0},
    {"GET", "/portal/api/session", h_session_get, 0, 0},
    {"DELETE", "/portal/api/session", h_session_delete, 0, 0},
    {"GET", "/portal/api/connections/{id}/test", h_test_begin, RG_HTTP_OFFLOAD, 0},
    {"GET", "/portal/api/tests/{key}", h_test_result, 0, 0},
};

rg_gateway_portal *rg_gateway_portal_register(struct rg_http_server *pub,
                                              struct rg_http_server *adm,
                                              rg_gateway_login *lg, struct rg_api *api,
                                              rg_error *err)
{
    rg_gateway_portal *p = calloc(1, sizeof *p);
    if (p) {
        p->lg = lg;
        p->api = api;
        p->sessions = rg_http_bsess_new(256, PORTAL_SESSION_S);
        p->routes = calloc(NRESERVED, sizeof *p->routes);
    }
    if (!p || !p->sessions || !p->routes) {
        rg_gateway_portal_free(p);
        rg_error_oom(err);
        return NULL;
    }
    int rc = rg_http_routes_add(adm, portal_admin_routes, RG_HTTP_NROUTES(portal_admin_routes),
                                p, err);
    if (!rc)
        rc = rg_http_routes_add(pub, portal_public_routes,
                                RG_HTTP_NROUTES(portal_public_routes), p, err);
    /* the re-served admin routes, each behind h_guard with its own context */
    for (size_t i = 0; !rc && i < NRESERVED; i++) {
        portal_route *r = &p->routes[p->nroutes];
        const rg_http_route_def *d = rg_api_route_find(reserved[i].method,
                                                       reserved[i].api_pattern);
        if (!d) {
            rc = rg_error_set(err, RG_EINTERNAL, "route_invalid", NULL,
                              "the admin API has no %s %s to re-serve", reserved[i].method,
                              reserved[i].api_pattern);
            break;
        }
        *r = (portal_route){.p = p, .fn = d->handler, .fn_ctx = api,
                            .scope = reserved[i].scope, .param = reserved[i].param,
                            .xml_only = reserved[i].xml_only};
        char path[128];
        snprintf(path, sizeof path, "/portal/api%s", reserved[i].path);
        const rg_http_route_def def = {reserved[i].method, path, h_guard, d->flags, d->max_body};
        rc = rg_http_routes_add(pub, &def, 1, r, err);
        p->nroutes++;
    }
    if (rc) {
        rg_gateway_portal_free(p);
        return NULL;
    }
    return p;
}

void rg_gateway_portal_free(rg_gateway_portal *p)
{
    if (!p)
        return;
    rg_http_bsess_free(p->sessions);
    free(p->routes);
    free(p);
}
