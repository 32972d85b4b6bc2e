/* orgs.c: admin handlers of organizations (R9, R21), their connections and
 * IdP group mappings (R15), users, organization memberships (R12, R13, R19)
 * and the event list (R26). Each handler type-checks the body, calls one store
 * function and sends its JSON; lists take limit/before/after/order. */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "rolegate/api.h"
#include "rolegate/saml.h"


/* ---- organizations ----------------------------------------------------------- */

static void h_org_create(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"name", "domains", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *name;
    const char **doms = NULL;
    size_t n = 0;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "name", 1, &name, &err);
    if (!rc) rc = rg_api_json_strv(req, b, "domains", 0, &doms, &n, &err);
    if (!rc)
        rc = rg_store_organization_create(rg_api_store(ctx), name, doms, n, &out, &err);
    rg_api_reply(req, rc, &err, 201, out);
}

RG_API_LIST0(h_org_list, rg_store_organization_list)

RG_API_GET(h_org_get, rg_store_organization_get, "id")

static void h_org_update(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"name", "domains", "default_role", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *name, *def;
    const char **doms = NULL;
    size_t n = 0;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "name", 0, &name, &err);
    if (!rc) rc = rg_api_json_strv(req, b, "domains", 0, &doms, &n, &err);
    /* R9: an organization's own default role makes it independent */
    if (!rc) rc = rg_api_json_string(b, "default_role", 0, &def, &err);
    if (!rc)
        rc = rg_store_organization_update(rg_api_store(ctx), rg_http_param(req, "id"), name,
                                          doms, doms ? (long)n : -1, def, &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

static void h_org_delete(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    /* cascades its roles, connections and memberships, with their events */
    int rc = rg_store_organization_delete(rg_api_store(ctx), rg_http_param(req, "id"), &err);
    if (!rc)
        rg_api_jobs_kick(ctx);   /* pending jobs of its roles finish as no-ops */
    rg_api_reply(req, rc, &err, 204, NULL);
}

/* ---- connections and mappings (R15) --------------------------------------------- */

/* The members a connection of each type may carry, and their JSON types.
 * Anything else is refused, so that protocol state the gateway trusts can
 * only be set where it is checked: the IdP metadata of a SAML connection
 * goes through PUT /connections/{id}/metadata and its fail-closed lint. */
typedef enum { CF_STRING, CF_STRINGS, CF_BOOL } cf_kind;   /* CF_STRINGS: string or [string] */
typedef struct { const char *type, *name; cf_kind kind; } conn_field;
static const conn_field conn_fields[] = {
    {"saml", "groups_attributes", CF_STRINGS}, {"saml", "email_attribute", CF_STRINGS},
    {"saml", "name_attribute", CF_STRINGS},    {"saml", "allow_idp_initiated", CF_BOOL},
    {"oidc", "issuer", CF_STRING},             {"oidc", "client_id", CF_STRING},
    {"oidc", "client_secret", CF_STRING},      {"oidc", "scopes", CF_STRINGS},
    {"oidc", "groups_claim", CF_STRING},       {"oidc", "email_claim", CF_STRING},
    {"oidc", "name_claim", CF_STRING},         {"oidc", "allowed_algs", CF_STRING},
    {"oidc", "use_userinfo_for_groups", CF_BOOL},
    /* issue 11 item 6: refuse a login whose groups match no mapping */
    {"saml", "require_mapped_group", CF_BOOL}, {"oidc", "require_mapped_group", CF_BOOL},
};

static int kind_ok(const json_t *v, cf_kind k)
{
    if (k == CF_BOOL)
        return json_is_boolean(v);
    if (json_is_string(v))
        return 1;
    if (k != CF_STRINGS || !json_is_array(v))
        return 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
        if (!json_is_string(e))
            return 0;
    return 1;
}

/* Checks every member of b but type and name against conn_fields; in a
 * PATCH (patch != 0) null removes an optional member. */
static int conn_config_check(const char *type, const json_t *b, int patch, rg_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v) {
        if (strcmp(k, "type") == 0 || strcmp(k, "name") == 0)
            continue;
        const conn_field *f = NULL;
        for (size_t i = 0; i < sizeof conn_fields / sizeof *conn_fields; i++)
            if (strcmp(conn_fields[i].type, type) == 0 && strcmp(conn_fields[i].name, k) == 0)
                f = &conn_fields[i];
        if (!f && strcmp(type, "saml") == 0 && strcmp(k, "idp_metadata") == 0)
            return rg_error_set(err, RG_EUNPROCESSABLE, "unknown_field", k,
                                "IdP metadata is set with PUT /connections/{id}/metadata, "
                                "where it is checked");
        if (!f)
            return rg_error_set(err, RG_EUNPROCESSABLE, "unknown_field", k,
                                "'%.40s' is not a setting of a %s connection", k, type);
        if (patch && json_is_null(v) && strcmp(k, "issuer") != 0 && strcmp(k, "client_id") != 0)
            continue;
        if (!kind_ok(v, f->kind))
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_type", k, "%s must be %s", k,
                                f->kind == CF_BOOL      ? "a boolean"
                                : f->kind == CF_STRINGS ? "a string or an array of strings"
                                                        : "a string");
    }
    if (!patch && strcmp(type, "oidc") == 0)
        for (size_t i = 0; i < 2; i++) {
            const char *req = i ? "client_id" : "issuer";
            if (!json_is_string(json_object_get(b, req)))
                return rg_error_set(err, RG_EUNPROCESSABLE, "required", req,
                                    "an oidc connection needs %s", req);
        }
    return RG_OK;
}

/* Issue 11 item 1: what the IdP's admin must type in, shown from the
 * first answer on: a SAML connection's SP entityID, ACS URL and SP
 * metadata URL; an OIDC connection's redirect URI. o may be a list. */
static json_t *conn_urls(const rg_api *api, json_t *o)
{
    json_t *data = json_object_get(o, "data");
    if (json_is_array(data)) {
        for (size_t i = 0; i < json_array_size(data); i++)
            conn_urls(api, json_array_get(data, i));
        return o;
    }
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!id || !type)
        return o;
    const char *base = rg_api_base_url(api);
    char eid[RG_SAML_URL_MAX], acs[RG_SAML_URL_MAX];
    if (strcmp(type, "saml") == 0 && rg_saml_sp_urls(base, id, eid, acs, sizeof eid) == 0) {
        json_object_set_new(o, "sp_entity_id", json_string(eid));
        json_object_set_new(o, "acs_url", json_string(acs));
        json_object_set_new(o, "sp_metadata_url", json_string(eid));
    } else if (strcmp(type, "oidc") == 0) {
        snprintf(eid, sizeof eid, "%s/oidc/callback", base);
        json_object_set_new(o, "redirect_uri", json_string(eid));
        /* issue 13: what to register at the OP for single logout */
        snprintf(eid, sizeof eid, "%s/oidc/signed-out", base);
        json_object_set_new(o, "post_logout_redirect_uri", json_string(eid));
        snprintf(eid, sizeof eid, "%s/oidc/backchannel-logout/%s", base, id);
        json_object_set_new(o, "backchannel_logout_uri", json_string(eid));
    }
    return o;
}

static void h_conn_create(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    const char *type, *name;
    json_t *out = NULL;
    /* the protocol settings vary by type: the members conn_fields allows are
     * passed on as the connection's config */
    json_t *b = rg_api_body_object(req, NULL, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "type", 1, &type, &err);
    if (!rc && strcmp(type, "saml") != 0 && strcmp(type, "oidc") != 0)
        rc = rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_request", "type",
                          "type must be \"saml\" or \"oidc\"");
    if (!rc) rc = rg_api_json_string(b, "name", 1, &name, &err);
    if (!rc) rc = conn_config_check(type, b, 0, &err);
    if (!rc)
        rc = rg_store_connection_create(rg_api_store(ctx), rg_http_param(req, "id"), type,
                                        name, b, &out, &err);
    rg_api_reply(req, rc, &err, 201, conn_urls(ctx, out));
}

static void h_conn_list(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    rg_store_list_opts o;
    json_t *out = NULL;
    const char *org = rg_http_param(req, "id");
    int rc = rg_api_list_opts(req, &o, &err);
    /* an unknown organization is 404, not an empty list */
    json_t *o_json = NULL;
    if (!rc)
        rc = rg_store_organization_get(rg_api_store(ctx), org, &o_json, &err);
    json_decref(o_json);
    if (!rc)
        rc = rg_store_connection_list(rg_api_store(ctx), org, &o, &out, &err);
    rg_api_reply(req, rc, &err, 200, conn_urls(ctx, out));
}

static void h_conn_get(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    int rc = rg_store_connection_get(rg_api_store(ctx), rg_http_param(req, "id"), &out, &err);
    rg_api_reply(req, rc, &err, 200, conn_urls(ctx, out));
}

static void h_conn_update(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    const char *name;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, NULL, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc && json_object_get(b, "type"))
        rc = rg_error_set(&err, RG_EUNPROCESSABLE, "invalid_request", "type",
                          "the type of a connection cannot change");
    if (!rc) rc = rg_api_json_string(b, "name", 0, &name, &err);
    json_t *cur = NULL;
    if (!rc)
        rc = rg_store_connection_get(rg_api_store(ctx), rg_http_param(req, "id"), &cur, &err);
    if (!rc) {
        const char *type = json_string_value(json_object_get(cur, "type"));
        rc = conn_config_check(type ? type : "", b, 1, &err);
    }
    json_decref(cur);
    json_t *patch = NULL;
    if (!rc) {
        patch = json_deep_copy(b);
        if (!patch)
            rc = rg_error_oom(&err);
        else
            json_object_del(patch, "name");
    }
    if (!rc)
        rc = rg_store_connection_update(rg_api_store(ctx), rg_http_param(req, "id"), name,
                                        patch, &out, &err);
    json_decref(patch);
    rg_api_reply(req, rc, &err, 200, conn_urls(ctx, out));
}

RG_API_DELETE(h_conn_delete, rg_store_connection_delete, "id")

RG_API_GET(h_mappings_get, rg_store_role_mappings_get, "id")

/* R15: a JSON array of {"idp_group": non-empty string, "role_slug": string};
 * types are checked here so the error names the exact element. */
static int mappings_check(const json_t *b, rg_error *err)
{
    if (!json_is_array(b))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_type", "body",
                            "the body must be a JSON array of {idp_group, role_slug}");
    size_t i;
    json_t *m;
    json_array_foreach(b, i, m) {
        char field[64];
        if (!json_is_object(m)) {
            snprintf(field, sizeof field, "role_mappings[%zu]", i);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_type", field,
                                "%s must be an object {idp_group, role_slug}", field);
        }
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v) {
            if (strcmp(k, "idp_group") != 0 && strcmp(k, "role_slug") != 0 &&
                strcmp(k, "object") != 0) {
                snprintf(field, sizeof field, "role_mappings[%zu].%.24s", i, k);
                return rg_error_set(err, RG_EUNPROCESSABLE, "unknown_field", field,
                                    "%s cannot be set here", field);
            }
        }
        static const char *const keys[] = {"idp_group", "role_slug"};
        for (size_t j = 0; j < 2; j++) {
            const json_t *v2 = json_object_get(m, keys[j]);
            snprintf(field, sizeof field, "role_mappings[%zu].%s", i, keys[j]);
            if (!json_is_string(v2) ||
                strlen(json_string_value(v2)) != json_string_length(v2))
                return rg_error_set(err, RG_EUNPROCESSABLE, v2 ? "invalid_type" : "required",
                                    field, "%s must be a string", field);
            if (json_string_length(v2) == 0)
                return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                                    "%s must not be empty", field);
        }
    }
    return RG_OK;
}

static void h_mappings_set(rg_http_req *req, void *ctx)
{
    rg_error err;
    rg_error_clear(&err);
    json_t *out = NULL;
    json_t *b = rg_http_json(req);
    int rc = mappings_check(b, &err);
    if (!rc)
        rc = rg_store_role_mappings_set(rg_api_store(ctx), rg_http_param(req, "id"), b, &out,
                                        &err);
    rg_api_reply(req, rc, &err, 200, out);
}

/* ---- users ------------------------------------------------------------------- */

static void h_user_create(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"email", "first_name", "last_name", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *email, *first, *last;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "email", 1, &email, &err);
    if (!rc) rc = rg_api_json_string(b, "first_name", 0, &first, &err);
    if (!rc) rc = rg_api_json_string(b, "last_name", 0, &last, &err);
    if (!rc)
        rc = rg_store_user_create(rg_api_store(ctx), email, first, last, &out, &err);
    rg_api_reply(req, rc, &err, 201, out);
}

RG_API_LIST1(h_user_list, rg_store_user_list, "email")

RG_API_GET(h_user_get, rg_store_user_get, "id")

RG_API_DELETE(h_user_delete, rg_store_user_delete, "id")

/* ---- memberships (R12, R13, R19) ------------------------------------------------ */

/* {"role_slug": s} or {"role_slugs": [...]}: *v NULL when neither is given. */
static int membership_roles(rg_http_req *req, const json_t *b, const char ***v, size_t *n,
                            rg_error *err)
{
    const char *one;
    *v = NULL;
    *n = 0;
    int rc = rg_api_json_string(b, "role_slug", 0, &one, err);
    if (rc)
        return rc;
    const json_t *many = json_object_get(b, "role_slugs");
    if (one && many && !json_is_null(many))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "role_slugs",
                            "give role_slug or role_slugs, not both");
    if (one)
        return rg_api_strv_one(req, one, v, n, err);
    /* R12: an empty role_slugs reaches the store, which answers invalid_role */
    return rg_api_json_strv(req, b, "role_slugs", 0, v, n, err);
}

static void h_membership_create(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"user_id", "organization_id", "role_slug",
                                          "role_slugs", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char *user, *org;
    const char **v = NULL;
    size_t n = 0;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "user_id", 1, &user, &err);
    if (!rc) rc = rg_api_json_string(b, "organization_id", 1, &org, &err);
    if (!rc) rc = membership_roles(req, b, &v, &n, &err);
    /* no roles given: the organization's default, role_source "default" (R13) */
    if (!rc)
        rc = rg_store_membership_create(rg_api_store(ctx), user, org, v, n, &out, &err);
    rg_api_reply(req, rc, &err, 201, out);
}

RG_API_LIST2(h_membership_list, rg_store_membership_list, "user_id", "organization_id")

RG_API_GET(h_membership_get, rg_store_membership_get, "id")

static void h_membership_update(rg_http_req *req, void *ctx)
{
    static const char *const allowed[] = {"role_slug", "role_slugs", NULL};
    rg_error err;
    rg_error_clear(&err);
    const char **v = NULL;
    size_t n = 0;
    json_t *out = NULL;
    json_t *b = rg_api_body_object(req, allowed, &err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = membership_roles(req, b, &v, &n, &err);
    if (!rc && !v)
        rc = rg_error_set(&err, RG_EUNPROCESSABLE, "required", "role_slug",
                          "give role_slug or role_slugs");
    /* R19: roles set here get role_source "api" */
    if (!rc)
        rc = rg_store_membership_update(rg_api_store(ctx), rg_http_param(req, "id"), v, n,
                                        &out, &err);
    rg_api_reply(req, rc, &err, 200, out);
}

RG_API_DELETE(h_membership_delete, rg_store_membership_delete, "id")

/* ---- events (R26) -------------------------------------------------------------- */

/* oldest first unless order says otherwise; ?event=role.created filters */
RG_API_LIST1(h_events, rg_store_event_list, "event")

/* ---- routes ------------------------------------------------------------------ */

#define JSON RG_HTTP_BODY_JSON

const rg_http_route_def rg_api_orgs_routes[] = {
    {"POST", "/organizations", h_org_create, JSON, 0},
    {"GET", "/organizations", h_org_list, 0, 0},
    {"GET", "/organizations/{id}", h_org_get, 0, 0},
    {"PATCH", "/organizations/{id}", h_org_update, JSON, 0},
    {"DELETE", "/organizations/{id}", h_org_delete, 0, 0},
    {"POST", "/organizations/{id}/connections", h_conn_create, JSON, 0},
    {"GET", "/organizations/{id}/connections", h_conn_list, 0, 0},

    {"GET", "/connections/{id}", h_conn_get, 0, 0},
    {"PATCH", "/connections/{id}", h_conn_update, JSON, 0},
    {"DELETE", "/connections/{id}", h_conn_delete, 0, 0},
    {"GET", "/connections/{id}/role_mappings", h_mappings_get, 0, 0},
    {"PUT", "/connections/{id}/role_mappings", h_mappings_set, JSON, 0},

    {"POST", "/user_management/users", h_user_create, JSON, 0},
    {"GET", "/user_management/users", h_user_list, 0, 0},
    {"GET", "/user_management/users/{id}", h_user_get, 0, 0},
    {"DELETE", "/user_management/users/{id}", h_user_delete, 0, 0},

    {"POST", "/user_management/organization_memberships", h_membership_create, JSON, 0},
    {"GET", "/user_management/organization_memberships", h_membership_list, 0, 0},
    {"GET", "/user_management/organization_memberships/{id}", h_membership_get, 0, 0},
    {"PUT", "/user_management/organization_memberships/{id}", h_membership_update, JSON, 0},
    {"PATCH", "/user_management/organization_memberships/{id}", h_membership_update, JSON, 0},
    {"DELETE", "/user_management/organization_memberships/{id}", h_membership_delete, 0, 0},

    {"GET", "/events", h_events, 0, 0},
};
const size_t rg_api_orgs_nroutes = RG_HTTP_NROUTES(rg_api_orgs_routes);
