/* scim_group.c: SCIM Group bodies and PATCH (RFC 7643 §4.2, RFC 7644
 * §3.5.2) turned into one store write (R29): Okta's members add/remove
 * arrays and PUT of the whole group, Entra ID's remove by value filter
 * (members[value eq "..."]) and remove with a value array, rename with or
 * without a path; the last operation on a member wins. Also the rendering
 * of Users and Groups as SCIM resources (meta, schemas, location). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/arena.h"
#include "rolegate/scim.h"
#include "scim_internal.h"

/* ---- members, the last operation winning ---------------------------------------- */

typedef struct delta {
    const char **id;
    int *add;          /* 1 add, 0 remove */
    size_t n, cap;
    int replace;
} delta;

static int delta_set(delta *d, const char *id, int add)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->id[i], id)) {
            d->add[i] = add;
            return 0;
        }
    size_t cap_id = d->cap, cap_add = d->cap;   /* two arrays of one length */
    if (rg_grow(&d->id, d->n, &cap_id, sizeof *d->id, 16) != 0 ||
        rg_grow(&d->add, d->n, &cap_add, sizeof *d->add, 16) != 0)
        return RG_ENOMEM;
    d->cap = cap_add;
    d->id[d->n] = id;
    d->add[d->n++] = add;
    return 0;
}

/* [{"value": id, ...}, ...] (a single object is accepted too). */
static int members_of(const json_t *v, delta *d, int add, rg_error *err)
{
    json_t *arr = json_is_object(v) ? json_pack("[O]", v) : json_incref((json_t *)v);
    int rc = json_is_array(arr) ? 0
                                : rg_error_set(err, RG_EINVAL, "invalidValue", "members",
                                               "members must be an array of {\"value\"}");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        const char *k;
        json_t *x;
        if (rc)
            break;
        const char *id = json_string_value(json_object_get(m, "value"));
        if (!json_is_object(m) || !id || !*id) {
            rc = rg_error_set(err, RG_EINVAL, "invalidValue", "members",
                              "each member needs a string \"value\"");
            break;
        }
        json_object_foreach(m, k, x) {
            if (strcmp(k, "value") && strcmp(k, "display") && strcmp(k, "$ref") &&
                strcmp(k, "type") && !rc)
                rc = rg_error_set(err, RG_EINVAL, "invalidSyntax", "members",
                                  "unknown attribute 'members.%.64s'", k);
        }
        if (!rc && delta_set(d, id, add))
            rc = RG_ENOMEM;
    }
    json_decref(arr);
    return rc;
}

static int finish(delta *d, rg_dsync_group *g)
{
    g->replace_members = d->replace;
    size_t na = 0, nr = 0;
    for (size_t i = 0; i < d->n; i++)
        d->add[i] ? na++ : nr++;
    const char **add = calloc(na + 1, sizeof *add), **rem = calloc(nr + 1, sizeof *rem);
    if (!add || !rem) {
        free(add);
        free(rem);
        return RG_ENOMEM;
    }
    for (size_t i = 0; i < d->n; i++) {
        if (d->add[i])
            add[g->n_add++] = d->id[i];
        else
            rem[g->n_remove++] = d->id[i];
    }
    g->add = add;
    g->remove = rem;
    return 0;
}

void scim_group_clear(rg_dsync_group *g)
{
    free((void *)g->add);
    free((void *)g->remove);
    memset(g, 0, sizeof *g);
}

static int str_member(const json_t *v, const char *name, const char **out, rg_error *err)
{
    if (json_is_null(v)) {
        *out = "";
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return rg_error_set(err, RG_EINVAL, "invalidValue", name,
                            "'%s' must be a string", name);
    *out = json_string_value(v);
    return 0;
}

/* Members of a group object (POST/PUT body or a PATCH value without path). */
static int group_attrs(const json_t *o, delta *d, int add, rg_dsync_group *g, rg_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int rc = 0;
        if (!strcasecmp(k, "displayName"))
            rc = str_member(v, "displayName", &g->display_name, err);
        else if (!strcasecmp(k, "externalId"))
            rc = str_member(v, "externalId", &g->external_id, err);
        else if (!strcasecmp(k, "members")) {
            if (!add) {   /* replace: the members become these */
                d->replace = 1;
                d->n = 0;
            }
            rc = json_is_null(v) ? 0 : members_of(v, d, 1, err);
        } else if (strcmp(k, "schemas") && strcasecmp(k, "id") && strcasecmp(k, "meta"))
            rc = rg_error_set(err, RG_EINVAL, "invalidSyntax", k,
                              "unknown attribute '%.100s'", k);
        if (rc)
            return rc;
    }
    return 0;
}

int scim_group_from_body(const json_t *body, int replace, rg_dsync_group *g, rg_error *err)
{
    memset(g, 0, sizeof *g);
    if (!json_is_object(body))
        return rg_error_set(err, RG_EINVAL, "invalidSyntax", NULL,
                            "a Group must be a JSON object");
    delta d = {.replace = replace};
    int rc = group_attrs(body, &d, 0, g, err);
    if (!rc && !g->display_name)
        rc = rg_error_set(err, RG_EINVAL, "invalidValue", "displayName",
                          "displayName is required");
    d.replace = replace;   /* PUT without members empties the group */
    if (!rc && finish(&d, g))
        rc = RG_ENOMEM;
    free(d.id);
    free(d.add);
    return rc;
}

const json_t *scim_operations(const json_t *body, rg_error *err)
{
    const json_t *ops = NULL;
    const char *k;
    json_t *v;
    if (!json_is_object(body)) {
        rg_error_set(err, RG_EINVAL, "invalidSyntax", NULL, "a PatchOp must be an object");
        return NULL;
    }
    json_object_foreach((json_t *)body, k, v) {
        if (!strcasecmp(k, "Operations"))
            ops = v;
    }
    if (!json_is_array(ops) || json_array_size(ops) == 0) {
        rg_error_set(err, RG_EINVAL, "invalidSyntax", "Operations",
                     "a PatchOp needs a non-empty Operations array");
        return NULL;
    }
    size_t i;
    json_array_foreach(ops, i, v) {
        if (!json_is_object(v)) {
            rg_error_set(err, RG_EINVAL, "invalidSyntax", "Operations",
                         "each operation is an object");
            return NULL;
        }
    }
    return ops;
}

/* One operation with a path. */
static int group_path_op(const char *path, int kind, const json_t *value, delta *d,
                         rg_dsync_group *g, rg_error *err)
{
    rg_scim_path p;
    char why[RG_SCIM_WHY_MAX];
    if (rg_scim_path_parse(path, &p, why, sizeof why))
        return rg_error_set(err, RG_EINVAL, "invalidPath", "path", "path: %s", why);
    if (*p.urn && strcasecmp(p.urn, SCIM_GROUP))
        return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                            "unknown schema '%.100s'", p.urn);
    if (!strcasecmp(p.attr, "members")) {
        if (*p.sub && strcasecmp(p.sub, "value"))
            return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                                "members has no '%.60s' to change", p.sub);
        if (p.n_filter) {
            /* members[value eq "id"]: Entra ID's removal */
            if (kind != 2 || p.n_filter != 1 || strcasecmp(p.filter[0].attr, "value") ||
                p.filter[0].type != RG_SCIM_V_STRING)
                return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                                    "only remove of members[value eq \"id\"] is supported");
            return delta_set(d, p.filter[0].value, 0) ? RG_ENOMEM : 0;
        }
        if (kind == 2 && !value) {   /* remove every member */
            d->replace = 1;
            d->n = 0;
            return 0;
        }
        if (kind == 1) {
            d->replace = 1;
            d->n = 0;
        }
        return members_of(value, d, kind != 2, err);
    }
    if (p.n_filter || *p.sub)
        return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                            "'%.100s' is not a path of a Group", path);
    if (!strcasecmp(p.attr, "displayName") || !strcasecmp(p.attr, "externalId")) {
        const char **dst = !strcasecmp(p.attr, "displayName") ? &g->display_name
                                                              : &g->external_id;
        if (kind == 2) {
            if (dst == &g->display_name)
                return rg_error_set(err, RG_EINVAL, "mutability", "displayName",
                                    "displayName is required");
            *dst = "";
            return 0;
        }
        return str_member(value, p.attr, dst, err);
    }
    return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                        "'%.100s' is not an attribute of a Group", path);
}

int scim_group_from_patch(const json_t *body, rg_dsync_group *g, rg_error *err)
{
    memset(g, 0, sizeof *g);
    const json_t *ops = scim_operations(body, err);
    if (!ops)
        return RG_EINVAL;
    delta d = {0};
    size_t i;
    json_t *op;
    int rc = 0;
    json_array_foreach(ops, i, op) {
        int kind = 0;
        if (rc || (rc = scim_op_kind(op, &kind, err)))
            break;
        const json_t *path = json_object_get(op, "path");
        const json_t *value = json_object_get(op, "value");
        if (path && !json_is_string(path))
            rc = rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                              "path must be a string");
        else if (kind != 2 && !value)
            rc = rg_error_set(err, RG_EINVAL, "invalidValue", "value",
                              "add and replace need a value");
        else if (path)
            rc = group_path_op(json_string_value(path), kind, value, &d, g, err);
        else if (kind == 2 || !json_is_object(value))
            rc = rg_error_set(err, RG_EINVAL, kind == 2 ? "noTarget" : "invalidValue",
                              "path", "an operation without a path takes an object value");
        else   /* Okta's rename: {"op":"replace","value":{"id","displayName"}} */
            rc = group_attrs(value, &d, kind == 0, g, err);
    }
    if (!rc && finish(&d, g))
        rc = RG_ENOMEM;
    free(d.id);
    free(d.add);
    if (rc)
        scim_group_clear(g);
    return rc;
}

/* ---- rendering ---------------------------------------------------------------------- */

static json_t *meta(const json_t *view, const char *type, const char *base, const char *id)
{
    char loc[1024];
    snprintf(loc, sizeof loc, "%s/%ss/%s", base, type, id);
    return json_pack("{s:s,s:O,s:O,s:s}", "resourceType", type, "created",
                     json_object_get(view, "created_at"), "lastModified",
                     json_object_get(view, "updated_at"), "location", loc);
}

json_t *scim_render_user(const json_t *view, const char *base)
{
    const char *id = json_string_value(json_object_get(view, "id"));
    json_t *o = json_deep_copy(json_object_get(view, "resource"));
    json_t *schemas = json_pack("[s]", SCIM_USER);
    if (!o || !schemas || !id) {
        json_decref(o);
        json_decref(schemas);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!strncmp(k, "urn:", 4))
            json_array_append_new(schemas, json_string(k));
    }
    json_object_set_new(o, "schemas", schemas);
    json_object_set_new(o, "id", json_string(id));
    if (!json_object_get(o, "active"))
        json_object_set_new(o, "active", json_true());
    json_t *groups = json_object_get(view, "groups");
    if (json_array_size(groups))
        json_object_set(o, "groups", groups);
    json_object_set_new(o, "meta", meta(view, "User", base, id));
    return o;
}

json_t *scim_render_group(const json_t *view, const char *base)
{
    const char *id = json_string_value(json_object_get(view, "id"));
    json_t *o = json_pack("{s:[s],s:s,s:O}", "schemas", SCIM_GROUP, "id", id ? id : "",
                          "displayName", json_object_get(view, "display_name"));
    if (!o)
        return NULL;
    json_t *ext = json_object_get(view, "external_id");
    if (json_is_string(ext))
        json_object_set(o, "externalId", ext);
    json_t *members = json_object_get(view, "members");
    if (members)
        json_object_set(o, "members", members);
    json_object_set_new(o, "meta", meta(view, "Group", base, id ? id : ""));
    return o;
}
