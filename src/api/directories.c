/* directories.c: admin handlers of directory sync (DESIGN.md "Directory
 * sync"; R27-R31): directories (the bearer token is made here, shown in the
 * create and rotation answers only and stored hashed), their deletion (202,
 * a job, R31), directory users and groups (read), and directory group ->
 * role mappings (R28). */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "rolegate/api.h"
#include "rolegate/store_dsync.h"
#include "rolegate/util.h"

#define TOKEN_BYTES 32

/* Adds scim_base_url ("{base_url}/scim/v2/{id}") to a directory object. */
static void add_scim_url(const rg_api *api, json_t *d)
{
    const char *id = json_string_value(json_object_get(d, "id"));
    char url[RG_CONFIG_STR + 128];
    snprintf(url, sizeof url, "%s/scim/v2/%s", rg_api_base_url(api), id ? id : "");
    json_object_set_new(d, "scim_base_url", json_string(url));
}

static void add_scim_urls(const rg_api *api, json_t *list)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "data"), i, d) {
        add_scim_url(api, d);
    }
}

/* A new bearer token (base64url of 32 random bytes) and its hash. */
static void new_token(char tok[64], char hash[RG_DSYNC_TOKEN_HASH])
{
    rg_random_token(tok, 64, TOKEN_BYTES);
    rg_store_dsync_token_hash(tok, hash);
}

static void reply_with_token(rg_http_req *req, const rg_api *api, int rc, const rg_error *err,
                             int status, json_t *out, char tok[64])
{
    if (!rc) {
        add_scim_url(api, out);
        json_object_set_new(out, "bearer_token", json_string(tok));   /* shown once */
        rg_http_add_header(req, "Cache-Control", "no-store");
    }
    memset(tok, 0, 64);
    rg_api_reply(req, rc, err, status, out);
}

static void h_dir_create(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"name", "type", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *name = NULL, *type = NULL;
    json_t *out = NULL;
    char tok[64] = "", hash[RG_DSYNC_TOKEN_HASH];
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "name", 1, &name, &err);
    if (!rc) rc = rg_api_json_string(b, "type", 0, &type, &err);
    if (!rc) {
        new_token(tok, hash);
        rc = rg_store_directory_create(rg_api_store(ctx), rg_http_param(req, "id"), name,
                                       type ? type : "generic scim v2.0", hash, &out, &err);
    }
    reply_with_token(req, ctx, rc, &err, 201, out, tok);
}

static void h_dir_token(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    char tok[64], hash[RG_DSYNC_TOKEN_HASH];
    new_token(tok, hash);
    /* R31: the old token stops working in the same write */
    int rc = rg_store_directory_token_set(rg_api_store(ctx), rg_http_param(req, "id"), hash,
                                          &out, &err);
    reply_with_token(req, ctx, rc, &err, 200, out, tok);
}

static void h_dir_list(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    rg_store_list_opts o;
    json_t *out = NULL;
    int rc = rg_api_list_opts(req, &o, &err);
    if (!rc)
        rc = rg_store_directory_list(rg_api_store(ctx), rg_http_query(req, "organization_id"),
                                     &o, &out, &err);
    if (!rc)
        add_scim_urls(ctx, out);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_dir_get(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    int rc = rg_store_directory_get(rg_api_store(ctx), rg_http_param(req, "id"), &out, &err);
    if (!rc)
        add_scim_url(ctx, out);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_dir_delete(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    /* R31: 202, the job removes its users and groups */
    int rc = rg_store_directory_delete(rg_api_store(ctx), rg_http_param(req, "id"), &out, &err);
    if (!rc)
        rg_api_jobs_kick(ctx);
    rg_api_reply(req, rc, &err, 202, out);
}

RG_API_LIST2(h_users, rg_store_directory_user_list, "directory", "group")

RG_API_GET(h_user, rg_store_directory_user_get, "id")

RG_API_LIST2(h_groups, rg_store_directory_group_list, "directory", "user")

RG_API_GET(h_group, rg_store_directory_group_get, "id")

RG_API_GET(h_mappings_get, rg_store_directory_mappings_get, "id")

/* R28: a JSON array of {"directory_group_id": string, "role_slug": string};
 * the types are checked here so the error names the element. */
static void h_mappings_set(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    json_t *b = rg_http_json(req);
    int rc = json_is_array(b) ? 0
                              : rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_type", "body",
                                             "the body must be a JSON array of"
                                             " {directory_group_id, role_slug}");
    size_t i;
    json_t *m;
    json_array_foreach(b, i, m) {
        char field[64];
        const char *k;
        json_t *v;
        if (rc)
            break;
        snprintf(field, sizeof field, "role_mappings[%zu]", i);
        if (!json_is_object(m)) {
            rc = rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_type", field,
                              "%s must be an object", field);
            break;
        }
        json_object_foreach(m, k, v) {
            if (strcmp(k, "directory_group_id") && strcmp(k, "role_slug")) {
                snprintf(field, sizeof field, "role_mappings[%zu].%.24s", i, k);
                rc = rg_error_set(&err, RG_EUNPROCESSABLE, "unknown_field", field,
                                  "%s cannot be set here", field);
                break;
            }
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                snprintf(field, sizeof field, "role_mappings[%zu].%.24s", i, k);
                rc = rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_type", field,
                                  "%s must be a non-empty string", field);
                break;
            }
        }
    }
    if (!rc)
        rc = rg_store_directory_mappings_set(rg_api_store(ctx), rg_http_param(req, "id"), b,
                                             &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

/* ---- routes ------------------------------------------------------------------ */

#define JSON RG_HTTP_BODY_JSON

const rg_http_route_def rg_api_directories_routes[] = {
    {"POST", "/organizations/{id}/directories", h_dir_create, JSON, 0},
    {"GET", "/directories", h_dir_list, 0, 0},
    {"GET", "/directories/{id}", h_dir_get, 0, 0},
    {"DELETE", "/directories/{id}", h_dir_delete, 0, 0},
    {"POST", "/directories/{id}/token", h_dir_token, 0, 0},
    {"GET", "/directories/{id}/role_mappings", h_mappings_get, 0, 0},
    {"PUT", "/directories/{id}/role_mappings", h_mappings_set, JSON, 0},
    {"GET", "/directory_users", h_users, 0, 0},
    {"GET", "/directory_users/{id}", h_user, 0, 0},
    {"GET", "/directory_groups", h_groups, 0, 0},
    {"GET", "/directory_groups/{id}", h_group, 0, 0},
};
const size_t rg_api_directories_nroutes = RG_HTTP_NROUTES(rg_api_directories_routes);
