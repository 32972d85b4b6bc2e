/* scim_routes.c: the SCIM 2.0 service provider on the public listener
 * (RFC 7644; DESIGN.md "Directory sync"; R27-R31) under
 * /scim/v2/{directory_id}/: Users, Groups, ServiceProviderConfig,
 * ResourceTypes, Schemas. The directory's bearer token is compared in
 * constant time (as SHA-256 hashes; a wrong, rotated or deleted directory's
 * token is 401 and nothing runs); bodies are application/scim+json or
 * application/json, at most 1 MiB; errors are RFC 7644 §3.12 bodies with
 * scimType. R30: a user set inactive or deleted has every session in the
 * organization revoked on every instance (rg_gateway_revoke_user). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/scim.h"
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "gw_internal.h"
#include "scim_internal.h"

#define SCIM_BODY_MAX  (1024 * 1024)
#define SCIM_ROUTE_MAX (2 * SCIM_BODY_MAX)
#define SCIM_CT "application/scim+json"
#define PAGE_DEFAULT 100

static void send_scim(rg_http_req *req, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        rg_http_send(req, 500, SCIM_CT, "", 0);
        return;
    }
    rg_http_send(req, status, SCIM_CT, text, strlen(text));
    free(text);
}

static const char *scim_type_of(const rg_error *err)
{
    static const char *const types[] = {"invalidFilter", "tooMany", "uniqueness",
                                        "mutability", "invalidSyntax", "invalidPath",
                                        "noTarget", "invalidValue", "invalidVers",
                                        "sensitive"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(err->code, types[i]))
            return types[i];
    return NULL;
}

/* RFC 7644 §3.12: {"schemas":[Error],"status":"409","scimType","detail"}. */
static void send_error(rg_http_req *req, const rg_error *err)
{
    int status = err->status ? err->status : 500;
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    const char *type = scim_type_of(err);
    json_t *o = json_pack("{s:[s],s:s,s:s}", "schemas", SCIM_ERROR, "status", st, "detail",
                          status >= 500 ? "internal error" : err->message);
    if (o && type)
        json_object_set_new(o, "scimType", json_string(type));
    if (status >= 500)
        rg_log(RG_LOG_ERROR, "event=scim_failed code=%s rid=%s", err->code,
               rg_http_request_id(req));
    send_scim(req, status, o);
}

static void send_errorf(rg_http_req *req, int kind, const char *type, const char *detail)
{
    rg_error e;
    rg_error_set(&e, kind, type ? type : "error", NULL, "%s", detail);
    send_error(req, &e);
}

/* ---- authentication and bodies ---------------------------------------------------- */

typedef struct scim_req {
    rg_gateway *gw;
    rg_store *store;
    const char *dir;
    char org[64];
    char base[RG_CONFIG_STR + 128];    /* {base_url}/scim/v2/{dir} */
    rg_error err;                      /* the handler's, cleared by scim_auth */
} scim_req;

/* The directory's bearer token, compared in constant time. 0, or answered. */
static int scim_auth(rg_http_req *req, rg_gateway *gw, scim_req *sr)
{
    memset(sr, 0, sizeof *sr);
    sr->gw = gw;
    sr->store = gw->ctx->store;
    sr->dir = rg_http_param(req, "dir");
    const char *h = rg_http_header(req, "Authorization");
    const char *tok = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : "";
    char want[RG_DSYNC_TOKEN_HASH], got[RG_DSYNC_TOKEN_HASH];
    rg_error_clear(&sr->err);
    int rc = rg_store_directory_auth(sr->store, sr->dir, want, sr->org, &sr->err);
    rg_store_dsync_token_hash(tok, got);   /* hashed whether or not the directory exists */
    if (rc < 0) {
        send_error(req, &sr->err);
        return -1;
    }
    if (rc == 0 || !*tok || !*want || !rg_ct_equal(want, strlen(want), got, strlen(got))) {
        rg_http_add_header(req, "WWW-Authenticate", "Bearer realm=\"scim\"");
        send_errorf(req, RG_EUNAUTH, NULL, "a valid bearer token of this directory is required");
        return -1;
    }
    snprintf(sr->base, sizeof sr->base, "%s/scim/v2/%s", gw->cfg->server.base, sr->dir);
    rg_error_clear(&sr->err);
    return 0;
}

/* The JSON body (a new reference), or NULL answered. */
static json_t *scim_body(rg_http_req *req)
{
    size_t len = 0;
    const char *b = rg_http_body(req, &len);
    const char *ct = rg_http_content_type(req);
    if (strncasecmp(ct, SCIM_CT, strlen(SCIM_CT)) && strncasecmp(ct, "application/json", 16)) {
        send_errorf(req, RG_EMEDIATYPE, NULL, "the body must be application/scim+json");
        return NULL;
    }
    if (len > SCIM_BODY_MAX) {
        send_errorf(req, RG_ETOOLARGE, NULL, "the body is larger than 1 MiB");
        return NULL;
    }
    json_error_t je;
    json_t *o = b && len ? json_loadb(b, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!o)
        send_errorf(req, RG_EINVAL, "invalidSyntax", "the body is not valid JSON");
    return o;
}

static void reply_write(rg_http_req *req, scim_req *sr, int rc, const rg_error *err,
                        const rg_dsync_outcome *oc, int status, json_t *out, int user)
{
    if (oc && oc->deprovisioned && *oc->user_id)   /* R30, after the commit */
        rg_gateway_revoke_user(sr->gw, oc->user_id, oc->org_id, rg_now() + 1);
    if (rc) {
        json_decref(out);
        send_error(req, err);
        return;
    }
    if (!out) {
        rg_http_send(req, 204, NULL, "", 0);
        return;
    }
    json_t *o = user ? scim_render_user(out, sr->base) : scim_render_group(out, sr->base);
    json_decref(out);
    if (status == 201 && o) {
        const char *loc = json_string_value(json_object_get(json_object_get(o, "meta"),
                                                            "location"));
        if (loc)
            rg_http_add_header(req, "Location", loc);
    }
    send_scim(req, status, o);
}

/* ---- list queries ---------------------------------------------------------------------- */

/* filter, startIndex and count: terms into t; 0 or answered. */
static int list_args(rg_http_req *req, rg_scim_term *t, rg_dsync_term *dt, size_t *n,
                     long *start, long *count)
{
    *n = 0;
    *start = 1;
    *count = PAGE_DEFAULT;
    const char *f = rg_http_query(req, "filter");
    if (f) {
        char why[RG_SCIM_WHY_MAX], msg[RG_SCIM_WHY_MAX + 16];
        int k = rg_scim_filter_parse(f, t, RG_SCIM_TERMS_MAX, why, sizeof why);
        if (k < 0) {
            snprintf(msg, sizeof msg, "filter: %s", why);
            send_errorf(req, RG_EINVAL, "invalidFilter", msg);
            return -1;
        }
        for (int i = 0; i < k; i++) {
            const char *a = t[i].attr;
            size_t ul = strlen(SCIM_USER), gl = strlen(SCIM_GROUP);
            if (!strncasecmp(a, SCIM_USER ":", ul + 1))
                a += ul + 1;
            else if (!strncasecmp(a, SCIM_GROUP ":", gl + 1))
                a += gl + 1;
            if (t[i].type != RG_SCIM_V_STRING) {
                send_errorf(req, RG_EINVAL, "invalidFilter", "filter values must be strings");
                return -1;
            }
            dt[i].attr = a;
            dt[i].value = t[i].value;
        }
        *n = (size_t)k;
    }
    const char *names[2] = {"startIndex", "count"};
    long *dst[2] = {start, count};
    for (int i = 0; i < 2; i++) {
        const char *v = rg_http_query(req, names[i]);
        char *end;
        if (!v)
            continue;
        long x = strtol(v, &end, 10);
        if (!*v || *end || x < 0 || x > 100000000) {
            char msg[64];
            snprintf(msg, sizeof msg, "%s must be a non-negative integer", names[i]);
            send_errorf(req, RG_EINVAL, "invalidValue", msg);
            return -1;
        }
        *dst[i] = x;
    }
    if (*start < 1)
        *start = 1;
    if (*count > 1000)
        *count = 1000;
    return 0;
}

static void send_list(rg_http_req *req, scim_req *sr, json_t *res, long start, int user)
{
    json_t *items = json_object_get(res, "items"), *arr = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) {
        json_array_append_new(arr, user ? scim_render_user(v, sr->base)
                                        : scim_render_group(v, sr->base));
    }
    json_t *o = json_pack("{s:[s],s:O,s:I,s:I,s:o}", "schemas", SCIM_LIST, "totalResults",
                          json_object_get(res, "total"), "startIndex", (json_int_t)start,
                          "itemsPerPage", (json_int_t)json_array_size(arr), "Resources", arr);
    json_decref(res);
    send_scim(req, 200, o);
}

/* excludedAttributes=members, or attributes without members: no members. */
static int want_members(rg_http_req *req)
{
    const char *ex = rg_http_query(req, "excludedAttributes");
    const char *at = rg_http_query(req, "attributes");
    if (ex && strcasestr(ex, "members"))
        return 0;
    if (at && !strcasestr(at, "members"))
        return 0;
    return 1;
}

/* ---- Users and Groups: the route's context (gw_scim_resource) says which -------- */

static void h_list(rg_http_req *req, void *ctx)
{
    const gw_scim_resource *r = ctx;
    scim_req sr;
    rg_scim_term t[RG_SCIM_TERMS_MAX];
    rg_dsync_term dt[RG_SCIM_TERMS_MAX];
    size_t n;
    long start, count;
    if (scim_auth(req, r->gw, &sr) || list_args(req, t, dt, &n, &start, &count))
        return;
    json_t *res = NULL;
    int rc = r->user
        ? rg_store_dsync_user_query(sr.store, sr.dir, dt, n, start, count, &res, &sr.err)
        : rg_store_dsync_group_query(sr.store, sr.dir, dt, n, start, count, want_members(req),
                                     &res, &sr.err);
    if (rc)
        send_error(req, &sr.err);
    else
        send_list(req, &sr, res, start, r->user);
}

static void h_get(rg_http_req *req, void *ctx)
{
    const gw_scim_resource *r = ctx;
    scim_req sr;
    if (scim_auth(req, r->gw, &sr))
        return;
    json_t *out = NULL;
    const char *id = rg_http_param(req, "id");
    int rc = r->user
        ? rg_store_dsync_user_get(sr.store, sr.dir, id, &out, &sr.err)
        : rg_store_dsync_group_get(sr.store, sr.dir, id, want_members(req), &out, &sr.err);
    reply_write(req, &sr, rc, &sr.err, NULL, 200, out, r->user);
}

/* A user's deletion revokes its sessions (R30, through the outcome); a group's has none. */
static void h_delete(rg_http_req *req, void *ctx)
{
    const gw_scim_resource *r = ctx;
    scim_req sr;
    if (scim_auth(req, r->gw, &sr))
        return;
    rg_dsync_outcome oc;
    const char *id = rg_http_param(req, "id");
    int rc = r->user ? rg_store_dsync_user_delete(sr.store, sr.dir, id, &oc, &sr.err)
                     : rg_store_dsync_group_delete(sr.store, sr.dir, id, &sr.err);
    reply_write(req, &sr, rc, &sr.err, r->user ? &oc : NULL, 204, NULL, r->user);
}

/* rg_dsync_user_fn of POST/PUT: the checked body replaces the resource. */
static int put_fn(void *ctx, const json_t *current, rg_dsync_user *out, rg_error *err)
{
    (void)current;
    json_t *res = NULL;
    int rc = scim_user_check(ctx, &res, err);
    if (!rc)
        scim_user_fields(res, out);
    return rc;
}

/* ... of PATCH: the operations on the stored resource. */
static int patch_fn(void *ctx, const json_t *current, rg_dsync_user *out, rg_error *err)
{
    json_t *res = NULL;
    int rc = scim_user_patch(current, ctx, &res, err);
    if (!rc)
        scim_user_fields(res, out);
    return rc;
}

/* The group of a POST/PUT body or a PATCH, written; PATCH answers 204 (no member list to
 * render for a big group). */
static int group_write(scim_req *sr, const char *id, json_t *body, int patch, json_t **out,
                       rg_error *err)
{
    rg_dsync_group g;
    int rc = patch ? scim_group_from_patch(body, &g, err)
                   : scim_group_from_body(body, 1, &g, err);
    if (!rc)
        rc = rg_store_dsync_group_write(sr->store, sr->dir, id, &g, patch ? NULL : out, err);
    scim_group_clear(&g);
    return rc;
}

/* op: 0 POST (201), 1 PUT, 2 PATCH. Okta's PUT is the whole user: active:false deactivates. */
static void write_resource(rg_http_req *req, const gw_scim_resource *r, int op)
{
    scim_req sr;
    if (scim_auth(req, r->gw, &sr))
        return;
    json_t *body = scim_body(req);
    if (!body)
        return;
    rg_dsync_outcome oc;
    json_t *out = NULL;
    const char *id = op ? rg_http_param(req, "id") : NULL;
    int rc = r->user ? rg_store_dsync_user_write(sr.store, sr.dir, id, op == 2 ? patch_fn : put_fn,
                                                 body, &oc, &out, &sr.err)
                     : group_write(&sr, id, body, op == 2, &out, &sr.err);
    json_decref(body);
    reply_write(req, &sr, rc, &sr.err, r->user ? &oc : NULL, op ? 200 : 201, out, r->user);
}

static void h_create(rg_http_req *req, void *ctx)
{
    write_resource(req, ctx, 0);
}

static void h_put(rg_http_req *req, void *ctx)
{
    write_resource(req, ctx, 1);
}

static void h_patch(rg_http_req *req, void *ctx)
{
    write_resource(req, ctx, 2);
}

/* ---- discovery (RFC 7644 §4) ---------------------------------------------------------- */

static void h_spc(rg_http_req *req, void *ctx)
{
    scim_req sr;
    if (scim_auth(req, ctx, &sr))
        return;
    send_scim(req, 200, json_pack(
        "{s:[s],s:{s:b},s:{s:b,s:i},s:{s:b,s:i,s:i},s:{s:b},s:{s:b},s:{s:b},"
        "s:[{s:s,s:s,s:s}],s:{s:s}}",
        "schemas", "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "patch", "supported", 1, "filter", "supported", 1, "maxResults", 1000,
        "bulk", "supported", 0, "maxOperations", 0, "maxPayloadSize", SCIM_BODY_MAX,
        "changePassword", "supported", 0, "sort", "supported", 0, "etag", "supported", 0,
        "authenticationSchemes", "type", "oauthbearertoken", "name", "Bearer token",
        "description", "The directory's bearer token (shown once at creation)",
        "meta", "resourceType", "ServiceProviderConfig"));
}

static json_t *resource_types(const char *base)
{
    char u[RG_CONFIG_STR + 160], g[RG_CONFIG_STR + 160];
    snprintf(u, sizeof u, "%s/ResourceTypes/User", base);
    snprintf(g, sizeof g, "%s/ResourceTypes/Group", base);
    const char *rt = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
    return json_pack("[{s:[s],s:s,s:s,s:s,s:s,s:[{s:s,s:b}],s:{s:s,s:s}},"
                     "{s:[s],s:s,s:s,s:s,s:s,s:{s:s,s:s}}]",
                     "schemas", rt, "id", "User", "name", "User", "endpoint", "/Users",
                     "schema", SCIM_USER, "schemaExtensions", "schema", SCIM_ENTERPRISE,
                     "required", 0, "meta", "resourceType", "ResourceType", "location", u,
                     "schemas", rt, "id", "Group", "name", "Group", "endpoint", "/Groups",
                     "schema", SCIM_GROUP, "meta", "resourceType", "ResourceType",
                     "location", g);
}

static void h_resource_types(rg_http_req *req, void *ctx)
{
    scim_req sr;
    if (scim_auth(req, ctx, &sr))
        return;
    json_t *arr = resource_types(sr.base);
    send_scim(req, 200, json_pack("{s:[s],s:I,s:i,s:I,s:o}", "schemas", SCIM_LIST,
                                  "totalResults", (json_int_t)json_array_size(arr),
                                  "startIndex", 1, "itemsPerPage",
                                  (json_int_t)json_array_size(arr), "Resources", arr));
}

static void h_schemas(rg_http_req *req, void *ctx)
{
    scim_req sr;
    if (scim_auth(req, ctx, &sr))
        return;
    const char *ids[3] = {SCIM_USER, SCIM_GROUP, SCIM_ENTERPRISE};
    const char *names[3] = {"User", "Group", "EnterpriseUser"};
    json_t *arr = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(arr, json_pack("{s:[s],s:s,s:s,s:[]}", "schemas",
                                             "urn:ietf:params:scim:schemas:core:2.0:Schema",
                                             "id", ids[i], "name", names[i], "attributes"));
    send_scim(req, 200, json_pack("{s:[s],s:i,s:i,s:i,s:o}", "schemas", SCIM_LIST,
                                  "totalResults", 3, "startIndex", 1, "itemsPerPage", 3,
                                  "Resources", arr));
}

/* ---- routes ----------------------------------------------------------------------------- */

#define RAW RG_HTTP_BODY_RAW

/* Every route takes bodies up to SCIM_ROUTE_MAX. */
#define M SCIM_ROUTE_MAX
/* Users and Groups answer the same six routes, each table with its gw_scim_resource. */
#define RESOURCE_ROUTES(coll, item)                                                            \
    {"GET", coll, h_list, 0, M}, {"POST", coll, h_create, RAW, M}, {"GET", item, h_get, 0, M}, \
        {"PUT", item, h_put, RAW, M}, {"PATCH", item, h_patch, RAW, M},                        \
        {"DELETE", item, h_delete, 0, M}
static const rg_http_route_def user_routes[] = {
    RESOURCE_ROUTES("/scim/v2/{dir}/Users", "/scim/v2/{dir}/Users/{id}"),
};
static const rg_http_route_def group_routes[] = {
    RESOURCE_ROUTES("/scim/v2/{dir}/Groups", "/scim/v2/{dir}/Groups/{id}"),
};
static const rg_http_route_def discovery_routes[] = {
    {"GET", "/scim/v2/{dir}/ServiceProviderConfig", h_spc, 0, M},
    {"GET", "/scim/v2/{dir}/ResourceTypes", h_resource_types, 0, M},
    {"GET", "/scim/v2/{dir}/Schemas", h_schemas, 0, M},
};

int rg_gateway_scim_register(rg_gateway *gw, rg_error *err)
{
    rg_http_server *s = gw->ctx->public_server;
    gw->scim_users = (gw_scim_resource){gw, 1};
    gw->scim_groups = (gw_scim_resource){gw, 0};
    int rc = rg_http_routes_add(s, user_routes, RG_HTTP_NROUTES(user_routes), &gw->scim_users,
                                err);
    if (!rc)
        rc = rg_http_routes_add(s, group_routes, RG_HTTP_NROUTES(group_routes),
                                &gw->scim_groups, err);
    if (!rc)
        rc = rg_http_routes_add(s, discovery_routes, RG_HTTP_NROUTES(discovery_routes), gw, err);
    return rc;
}
