/* roles.c: admin handlers of permissions (R2, R6, R22), environment and
 * organization roles (R1-R11, R20, R21), their permissions, priority orders
 * (R8, R9) and the environment settings (R7, R12, R14). One handler serves
 * both scopes: the {org} path parameter is NULL on /authorization/roles. Each
 * handler type-checks the body, calls one store function and sends its JSON. */
#include <string.h>
#include <jansson.h>

#include "rolegate/api.h"


static const char *org_of(rg_http_req *req)
{
    return rg_http_param(req, "org");   /* NULL: the environment */
}

/* ---- permissions and roles: created with a slug, renamed by PATCH --------------- */

/* POST {"slug", "name", "description"} of a permission (role 0) or a role of org's
 * scope (role 1). R3: an environment role (and a permission) needs a slug; R5: an
 * organization role may leave it out and get a generated one. */
static void slug_create(rg_http_req *req, void *ctx, int role)
{
    static const char *const allowed[] = {"slug", "name", "description", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *org = role ? org_of(req) : NULL;
    const char *slug, *name, *desc;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "slug", org == NULL, &slug, &err);
    if (!rc) rc = rg_api_json_string(b, "name", 1, &name, &err);
    if (!rc) rc = rg_api_json_string(b, "description", 0, &desc, &err);
    json_t *out = NULL;
    if (!rc)
        rc = role ? rg_store_role_create(rg_api_store(ctx), org, slug, name, desc, &out, &err)
                  : rg_store_permission_create(rg_api_store(ctx), slug, name, desc, 0, &out,
                                               &err);
    rg_api_reply(req, rc, &err, 201, out);
}

/* PATCH of the name and description; R1/R2: slugs are immutable, so "slug" is refused
 * as an unknown field. */
static void slug_rename(rg_http_req *req, void *ctx, int role)
{
    rg_error err;
    rg_error_clear(&err);
    const char *name, *desc;
    int rc = rg_api_name_desc_body(req, &name, &desc, &err);
    json_t *out = NULL;
    const char *slug = rg_http_param(req, "slug");
    if (!rc)
        rc = role ? rg_store_role_update(rg_api_store(ctx), org_of(req), slug, name, desc,
                                         &out, &err)
                  : rg_store_permission_update(rg_api_store(ctx), slug, name, desc, &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

/* ---- permissions ------------------------------------------------------------ */

static void h_permission_create(rg_http_req *req, void *ctx)
{
    slug_create(req, ctx, 0);
}

RG_API_LIST0(h_permission_list, rg_store_permission_list)

RG_API_GET(h_permission_get, rg_store_permission_get, "slug")

static void h_permission_update(rg_http_req *req, void *ctx)
{
    slug_rename(req, ctx, 0);
}

RG_API_DELETE(h_permission_delete, rg_store_permission_delete, "slug")

/* ---- roles (both scopes) ------------------------------------------------------ */

static void h_role_create(rg_http_req *req, void *ctx)
{
    slug_create(req, ctx, 1);
}

static void h_role_update(rg_http_req *req, void *ctx)
{
    slug_rename(req, ctx, 1);
}

/* R8/R11: all visible roles of the scope ({org}, NULL: the environment) in priority
 * order, one page */
RG_API_GET(h_role_list, rg_store_role_list, "org")

static void h_role_get(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    /* R20: a role whose deletion job runs comes back with "status":"deleting" */
    int rc = rg_store_role_get(rg_api_store(ctx), org_of(req), rg_http_param(req, "slug"),
                               &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_role_delete(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    /* R21: the replacement default for the organizations that had this role
     * as their default */
    const char *repl = rg_http_query(req, "replacement_default");
    if (repl && !*repl)
        repl = NULL;
    int rc = rg_store_role_delete(rg_api_store(ctx), org_of(req), rg_http_param(req, "slug"),
                                  repl, &out, &err);
    if (!rc)
        rg_api_jobs_kick(ctx);   /* R20: the job reassigns memberships */
    rg_api_reply(req, rc, &err, 202, out);
}

/* PUT {"permissions": [...]}: replace. POST {"slug": "..."} or
 * {"permissions": [...]}: add. */
static int role_perms(rg_http_req *req, int replace, const char ***v, size_t *n,
                      rg_error *err)
{
    static const char *const put_allowed[] = {"permissions", NULL};
    static const char *const post_allowed[] = {"slug", "permissions", NULL};
    json_t *b = rg_api_body_object(req, replace ? put_allowed : post_allowed, err);
    if (!b)
        return RG_EINVAL;
    if (replace)
        return rg_api_json_strv(req, b, "permissions", 1, v, n, err);
    const char *one;
    int rc = rg_api_json_string(b, "slug", 0, &one, err);
    if (rc)
        return rc;
    if (one) {
        if (json_object_get(b, "permissions"))
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "permissions",
                                "give slug or permissions, not both");
        return rg_api_strv_one(req, one, v, n, err);
    }
    return rg_api_json_strv(req, b, "permissions", 1, v, n, err);
}

/* PUT replaces the role's permissions, POST adds to them (one transaction
 * in the store either way). */
static void role_perms_write(rg_http_req *req, void *ctx, int replace)
{
    rg_error err;
    rg_error_clear(&err);
    const char **v = NULL;
    size_t n = 0;
    json_t *out = NULL;
    int rc = role_perms(req, replace, &v, &n, &err);
    if (!rc)
        rc = (replace ? rg_store_role_permissions_set : rg_store_role_permissions_add)(
            rg_api_store(ctx), org_of(req), rg_http_param(req, "slug"), v, n, &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_role_permissions_set(rg_http_req *req, void *ctx)
{
    role_perms_write(req, ctx, 1);
}

static void h_role_permissions_add(rg_http_req *req, void *ctx)
{
    role_perms_write(req, ctx, 0);
}

static void h_role_permission_remove(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    int rc = rg_store_role_permission_remove(rg_api_store(ctx), org_of(req),
                                             rg_http_param(req, "slug"),
                                             rg_http_param(req, "perm"), &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_priority_set(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"slugs", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char **v = NULL;
    size_t n = 0;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_strv(req, b, "slugs", 1, &v, &n, &err);
    /* R8/R9: the whole order, every visible role once (checked by the store) */
    if (!rc)
        rc = rg_store_priority_set(rg_api_store(ctx), org_of(req), v, n, &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

/* ---- environment ------------------------------------------------------------- */

static void h_environment_get(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    int rc = rg_store_environment_get(rg_api_store(ctx), &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_environment_update(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"multiple_roles", "default_role", NULL};
    rg_error err;
    rg_error_clear(&err);
    int present = 0, multiple = 0;
    const char *def = NULL;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_bool(b, "multiple_roles", &present, &multiple, &err);
    if (!rc) rc = rg_api_json_string(b, "default_role", 0, &def, &err);
    /* R12/R14 (turning it off keeps each membership's highest role), R7 */
    if (!rc)
        rc = rg_store_environment_update(rg_api_store(ctx), present ? multiple : -1, def,
                                         &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

/* ---- routes ------------------------------------------------------------------ */

#define JSON RG_HTTP_BODY_JSON

const rg_http_route_def rg_api_roles_routes[] = {
    {"POST", "/authorization/permissions", h_permission_create, JSON, 0},
    {"GET", "/authorization/permissions", h_permission_list, 0, 0},
    {"GET", "/authorization/permissions/{slug}", h_permission_get, 0, 0},
    {"PATCH", "/authorization/permissions/{slug}", h_permission_update, JSON, 0},
    {"DELETE", "/authorization/permissions/{slug}", h_permission_delete, 0, 0},

    {"POST", "/authorization/roles", h_role_create, JSON, 0},
    {"GET", "/authorization/roles", h_role_list, 0, 0},
    {"PUT", "/authorization/roles/priority", h_priority_set, JSON, 0},
    {"GET", "/authorization/roles/{slug}", h_role_get, 0, 0},
    {"PATCH", "/authorization/roles/{slug}", h_role_update, JSON, 0},
    {"DELETE", "/authorization/roles/{slug}", h_role_delete, 0, 0},
    {"PUT", "/authorization/roles/{slug}/permissions", h_role_permissions_set, JSON, 0},
    {"POST", "/authorization/roles/{slug}/permissions", h_role_permissions_add, JSON, 0},
    {"DELETE", "/authorization/roles/{slug}/permissions/{perm}", h_role_permission_remove, 0, 0},

    {"POST", "/authorization/organizations/{org}/roles", h_role_create, JSON, 0},
    {"GET", "/authorization/organizations/{org}/roles", h_role_list, 0, 0},
    {"PUT", "/authorization/organizations/{org}/roles/priority", h_priority_set, JSON, 0},
    {"GET", "/authorization/organizations/{org}/roles/{slug}", h_role_get, 0, 0},
    {"PATCH", "/authorization/organizations/{org}/roles/{slug}", h_role_update, JSON, 0},
    {"DELETE", "/authorization/organizations/{org}/roles/{slug}", h_role_delete, 0, 0},
    {"PUT", "/authorization/organizations/{org}/roles/{slug}/permissions",
     h_role_permissions_set, JSON, 0},
    {"POST", "/authorization/organizations/{org}/roles/{slug}/permissions",
     h_role_permissions_add, JSON, 0},
    {"DELETE", "/authorization/organizations/{org}/roles/{slug}/permissions/{perm}",
     h_role_permission_remove, 0, 0},

    {"GET", "/environment", h_environment_get, 0, 0},
    {"PATCH", "/environment", h_environment_update, JSON, 0},
};
const size_t rg_api_roles_nroutes = RG_HTTP_NROUTES(rg_api_roles_routes);
