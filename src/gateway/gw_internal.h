/* gw_internal.h: what the gwauth files of src/gateway share and nobody else
 * sees: the rg_gateway state, the trusted-proxy check, the organization
 * permissions of permissions_omitted tokens and the tiny JSON denial bodies
 * of /auth. */
#ifndef ROLEGATE_GW_INTERNAL_H
#define ROLEGATE_GW_INTERNAL_H

#include "rolegate/gateway.h"
#include "rolegate/http.h"


#define GW_ORG_ID_MAX 80   /* a token's org_id longer than this is malformed */

struct rg_gateway {
    rg_ctx          *ctx;
    const rg_config *cfg;
    rg_token_cache  *tcache;
    rg_revocations  *revs;
    int              secure;           /* base_url is https */
    const char      *cookie_name;      /* static string of the session layer */
    char             origin[RG_CONFIG_STR];  /* "scheme://host[:port]" of base_url */
    char             login_url[RG_CONFIG_STR + 16];  /* base_url + "/login" */
};

/* Parses "scheme://host[:port][/path]" into its lowercased origin. 0 or -1. */
int  gw_origin_of(const char *url, char *out, size_t outsz);
/* Sorted union of the permissions of roles in org's current role table
 * (the cache layer's: rg_cache_table_get). Clear *out with rg_slugs_clear.
 * Returns 0, or negative with err (store unavailable, unknown org). */
int  gw_org_permissions(rg_gateway *gw, const char *org_id, const char *const *roles,
                        size_t n_roles, rg_slugs *out, rg_error *err);
/* Answers {"code": code} with status and Cache-Control: no-store. */
void gw_deny(rg_http_req *req, int status, const char *code);
/* Joins strs with "," into the request's arena ("" for none). */
char *gw_join(rg_http_req *req, const char *const *strs, size_t n);

/* The handlers (ctx is the rg_gateway). */
void gw_h_auth(rg_http_req *req, void *ctx);
void gw_h_logout(rg_http_req *req, void *ctx);
void gw_h_jwks(rg_http_req *req, void *ctx);
void gw_h_sessions_create(rg_http_req *req, void *ctx);

#endif
