/* gw_internal.h: what the gwauth files of src/gateway share and nobody else
 * sees: the rg_gateway state, the trusted-proxy check, the organization
 * permissions of permissions_omitted tokens and the tiny JSON denial bodies
 * of /auth. */
#ifndef ROLEGATE_GW_INTERNAL_H
#define ROLEGATE_GW_INTERNAL_H

#include "rolegate/gateway.h"
#include "rolegate/http.h"


#define GW_ORG_ID_MAX 80   /* a token's org_id longer than this is malformed */

typedef struct gw_refresh_map gw_refresh_map;   /* refresh.c: recent refreshes */

/* The context of a SCIM route table (scim_routes.c): the resource it serves. */
typedef struct gw_scim_resource {
    rg_gateway *gw;
    int         user;   /* 1 /Users, 0 /Groups */
} gw_scim_resource;

struct rg_gateway {
    rg_ctx          *ctx;
    const rg_config *cfg;
    rg_token_cache  *tcache;
    rg_revocations  *revs;
    gw_refresh_map  *refreshes;        /* concurrent refreshes share one result */
    rg_gateway_logout_fn logout_hook;  /* single logout at the IdP (issue 13) */
    void            *logout_ctx;
    int              secure;           /* cfg->server.secure: base_url is https */
    const char      *cookie_name;      /* static string of the session layer */
    const char      *origin;           /* cfg->server.origin: "scheme://host[:port]" */
    const char      *login_url;        /* cfg->server.login_url: base_url + "/login" */
    gw_scim_resource scim_users, scim_groups;   /* set by rg_gateway_scim_register */
};
/* Sorted union of the permissions of roles in org's current role table
 * (the cache layer's: rg_cache_table_get). Clear *out with rg_slugs_clear.
 * Returns 0, or negative with err (store unavailable, unknown org). */
int  gw_org_permissions(rg_gateway *gw, const char *org_id, const char *const *roles,
                        size_t n_roles, rg_slugs *out, rg_error *err);
/* Answers {"code": code} with status and Cache-Control: no-store. */
void gw_deny(rg_http_req *req, int status, const char *code);
/* Joins strs with "," into the request's arena ("" for none). */
char *gw_join(rg_http_req *req, const char *const *strs, size_t n);

/* ---- refresh (refresh.c, issue 13) ---- */
gw_refresh_map *gw_refresh_map_new(void);
void gw_refresh_map_free(gw_refresh_map *m);   /* accepts NULL */
/* When the session of c began (auth_time, else iat: tokens from before
 * refresh existed) and when it ends for good (start + session.lifetime;
 * with refresh off, exp): revocations of its sid must last until then. */
int64_t gw_session_start(const rg_session_claims *c);
int64_t gw_session_end(const rg_config *cfg, const rg_session_claims *c);
/* A new token for the live session of old (verified, maybe lapsed:
 * rg_session_verify_lapsed): same sid, auth_time, act; the membership's
 * current roles that its organization's current role table shows. 0 with
 * *token and *cookie (the Set-Cookie value) malloc'd and *fc the new
 * token's claims (rg_session_claims_clear it); else err: 401 for a
 * dead session (session_expired, session_idle, membership_removed,
 * membership_inactive, organization_unknown, session_too_large under the
 * reject policy), 503 refresh_unavailable (store down), 500. */
int gw_refresh(rg_gateway *gw, const rg_session_claims *old, int64_t now, char **token,
               char **cookie, rg_session_claims *fc, rg_error *err);

/* The handlers (ctx is the rg_gateway). */
void gw_h_auth(rg_http_req *req, void *ctx);
/* gw_h_auth counted and timed (metrics.h): what /auth is registered as. */
void gw_h_auth_metered(rg_http_req *req, void *ctx);
void gw_h_logout(rg_http_req *req, void *ctx);
void gw_h_jwks(rg_http_req *req, void *ctx);
void gw_h_sessions_create(rg_http_req *req, void *ctx);
void gw_h_sessions_list(rg_http_req *req, void *ctx);
void gw_h_sessions_delete(rg_http_req *req, void *ctx);

#endif
