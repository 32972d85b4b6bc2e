/* scim_user.c: SCIM User resources (RFC 7643 §4.1 and the enterprise
 * extension §4.3) as rolegate keeps them: every request body is checked
 * against the attribute table (unknown attributes and wrong types are
 * refused, booleans sent as strings -- Entra ID's "False" -- accepted),
 * written with canonical names, and PATCH operations (RFC 7644 §3.5.2: add,
 * replace, remove, with or without a path, value filters, sub-attributes,
 * URN-qualified paths, PascalCase ops) applied to the stored resource
 * before the same check. R27: the dsync fields come from the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/scim.h"
#include "scim_internal.h"

typedef enum { T_STR, T_BOOL, T_CPLX, T_MULTI, T_RO, T_DROP } a_type;
typedef struct sub_def { const char *name; a_type type; } sub_def;
typedef struct attr_def { const char *name; a_type type; const sub_def *subs; } attr_def;

static const sub_def name_subs[] = {
    {"formatted", T_STR}, {"familyName", T_STR}, {"givenName", T_STR},
    {"middleName", T_STR}, {"honorificPrefix", T_STR}, {"honorificSuffix", T_STR}, {NULL, 0}};
static const sub_def multi_subs[] = {
    {"value", T_STR}, {"display", T_STR}, {"type", T_STR}, {"primary", T_BOOL}, {NULL, 0}};
static const sub_def addr_subs[] = {
    {"formatted", T_STR}, {"streetAddress", T_STR}, {"locality", T_STR}, {"region", T_STR},
    {"postalCode", T_STR}, {"country", T_STR}, {"type", T_STR}, {"primary", T_BOOL},
    {NULL, 0}};
static const sub_def manager_subs[] = {
    {"value", T_STR}, {"$ref", T_STR}, {"displayName", T_STR}, {NULL, 0}};

static const attr_def core_defs[] = {
    {"userName", T_STR, NULL}, {"externalId", T_STR, NULL}, {"name", T_CPLX, name_subs},
    {"displayName", T_STR, NULL}, {"nickName", T_STR, NULL}, {"profileUrl", T_STR, NULL},
    {"title", T_STR, NULL}, {"userType", T_STR, NULL}, {"preferredLanguage", T_STR, NULL},
    {"locale", T_STR, NULL}, {"timezone", T_STR, NULL}, {"active", T_BOOL, NULL},
    {"password", T_DROP, NULL}, {"emails", T_MULTI, multi_subs},
    {"phoneNumbers", T_MULTI, multi_subs}, {"ims", T_MULTI, multi_subs},
    {"photos", T_MULTI, multi_subs}, {"addresses", T_MULTI, addr_subs},
    {"entitlements", T_MULTI, multi_subs}, {"roles", T_MULTI, multi_subs},
    {"x509Certificates", T_MULTI, multi_subs}, {"id", T_RO, NULL}, {"meta", T_RO, NULL},
    {"groups", T_RO, NULL}, {NULL, 0, NULL}};
static const attr_def ent_defs[] = {
    {"employeeNumber", T_STR, NULL}, {"costCenter", T_STR, NULL},
    {"organization", T_STR, NULL}, {"division", T_STR, NULL}, {"department", T_STR, NULL},
    {"manager", T_CPLX, manager_subs}, {NULL, 0, NULL}};

static const attr_def *def_of(const attr_def *defs, const char *name)
{
    for (; defs->name; defs++)
        if (!strcasecmp(defs->name, name))
            return defs;
    return NULL;
}

static const sub_def *sub_of(const sub_def *subs, const char *name)
{
    for (; subs && subs->name; subs++)
        if (!strcasecmp(subs->name, name))
            return subs;
    return NULL;
}

/* ---- checking and canonical form --------------------------------------------------- */

/* A string or a boolean; *out a new reference (NULL for JSON null). */
static int scalar(a_type t, const json_t *v, const char *where, json_t **out, rg_error *err)
{
    *out = NULL;
    if (json_is_null(v))
        return 0;
    if (t == T_STR) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return rg_error_set(err, RG_EINVAL, "invalidValue", where,
                                "'%s' must be a string", where);
        *out = json_incref((json_t *)v);
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_incref((json_t *)v);
        return 0;
    }
    /* Entra ID sends booleans as strings: "True" / "False" */
    const char *s = json_string_value(v);
    if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "false"))) {
        *out = json_boolean(!strcasecmp(s, "true"));
        return 0;
    }
    return rg_error_set(err, RG_EINVAL, "invalidValue", where,
                        "'%s' must be a boolean", where);
}

/* A complex value: every member a known sub-attribute. */
static int complex_value(const sub_def *subs, const json_t *v, const char *where,
                         json_t **out, rg_error *err)
{
    *out = NULL;
    if (!json_is_object(v))
        return rg_error_set(err, RG_EINVAL, "invalidValue", where,
                            "'%s' must be an object", where);
    json_t *o = json_object();
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        const sub_def *d = sub_of(subs, k);
        char w[160];
        snprintf(w, sizeof w, "%s.%s", where, k);
        if (!d) {
            json_decref(o);
            return rg_error_set(err, RG_EINVAL, "invalidSyntax", where,
                                "unknown attribute '%.100s'", w);
        }
        json_t *c;
        if (scalar(d->type, x, w, &c, err)) {
            json_decref(o);
            return RG_EINVAL;
        }
        if (c)
            json_object_set_new(o, d->name, c);
    }
    *out = o;
    return 0;
}

static int attr_value(const attr_def *d, const json_t *v, json_t **out, rg_error *err)
{
    *out = NULL;
    if (json_is_null(v))
        return 0;
    switch (d->type) {
    case T_STR:
    case T_BOOL:
        return scalar(d->type, v, d->name, out, err);
    case T_CPLX:
        if (json_is_string(v) && d->subs == manager_subs) {
            /* Entra ID: "manager": "<id>" */
            json_t *m = json_pack("{s:O}", "value", v);
            int rc = complex_value(d->subs, m, d->name, out, err);
            json_decref(m);
            return rc;
        }
        return complex_value(d->subs, v, d->name, out, err);
    case T_MULTI: {
        json_t *arr = json_array();
        json_t *one = json_is_object(v) ? json_pack("[O]", v) : json_incref((json_t *)v);
        size_t i;
        json_t *x;
        int rc = json_is_array(one) ? 0
                                    : rg_error_set(err, RG_EINVAL, "invalidValue",
                                                   d->name, "'%s' must be an array", d->name);
        json_array_foreach(one, i, x) {
            json_t *c;
            if (rc || (rc = complex_value(d->subs, x, d->name, &c, err)))
                break;
            json_array_append_new(arr, c);
        }
        json_decref(one);
        if (rc || json_array_size(arr) == 0) {
            json_decref(arr);
            return rc;
        }
        *out = arr;
        return 0;
    }
    default:
        break;
    }
    return 0;
}

/* The members of o checked against defs into out (canonical names). */
static int check_members(const attr_def *defs, const json_t *o, json_t *out, rg_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        const attr_def *d = def_of(defs, k);
        if (!d)
            return rg_error_set(err, RG_EINVAL, "invalidSyntax", k,
                                "unknown attribute '%.100s'", k);
        if (d->type == T_RO || d->type == T_DROP)
            continue;   /* read-only ones ignored (RFC 7644 §3.3); a password never kept */
        json_t *c;
        if (attr_value(d, v, &c, err))
            return RG_EINVAL;
        if (c)
            json_object_set_new(out, d->name, c);
        else
            json_object_del(out, d->name);
    }
    return 0;
}

static int listed(const json_t *schemas, const char *urn)
{
    size_t i;
    json_t *s;
    json_array_foreach(schemas, i, s) {
        if (json_is_string(s) && !strcasecmp(json_string_value(s), urn))
            return 1;
    }
    return 0;
}

int scim_user_check(const json_t *in, json_t **out, rg_error *err)
{
    *out = NULL;
    if (!json_is_object(in))
        return rg_error_set(err, RG_EINVAL, "invalidSyntax", NULL,
                            "a User must be a JSON object");
    const json_t *schemas = json_object_get(in, "schemas");
    if (schemas && !json_is_array(schemas))
        return rg_error_set(err, RG_EINVAL, "invalidSyntax", "schemas",
                            "'schemas' must be an array");
    json_t *o = json_object();
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)in, k, v) {
        if (rc)
            break;
        if (!strcmp(k, "schemas"))
            continue;
        if (!strcasecmp(k, SCIM_ENTERPRISE)) {
            json_t *e = json_object();
            rc = json_is_object(v) ? check_members(ent_defs, v, e, err)
                                   : rg_error_set(err, RG_EINVAL, "invalidValue", k,
                                                  "the enterprise extension is an object");
            if (!rc && json_object_size(e))
                json_object_set(o, SCIM_ENTERPRISE, e);
            json_decref(e);
        } else if (!strncasecmp(k, "urn:", 4)) {
            /* another extension: kept as sent when the resource declares it
             * (a stored resource, which keeps no "schemas", declared it) */
            if ((schemas && !listed(schemas, k)) || !json_is_object(v))
                rc = rg_error_set(err, RG_EINVAL, "invalidSyntax", "schemas",
                                  "unknown attribute '%.100s'", k);
            else
                json_object_set_new(o, k, json_deep_copy(v));
        } else {
            json_t *one = json_pack("{s:O}", k, v);
            rc = check_members(core_defs, one, o, err);
            json_decref(one);
        }
    }
    const char *un = json_string_value(json_object_get(o, "userName"));
    if (!rc && (!un || !*un))
        rc = rg_error_set(err, RG_EINVAL, "invalidValue", "userName",
                          "userName is required");
    if (rc) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* R27: the fields the store indexes, borrowed from the checked resource. */
void scim_user_fields(json_t *res, rg_dsync_user *u)
{
    memset(u, 0, sizeof *u);
    u->resource = res;
    u->user_name = json_string_value(json_object_get(res, "userName"));
    u->external_id = json_string_value(json_object_get(res, "externalId"));
    json_t *name = json_object_get(res, "name");
    u->first_name = json_string_value(json_object_get(name, "givenName"));
    u->last_name = json_string_value(json_object_get(name, "familyName"));
    json_t *active = json_object_get(res, "active");
    u->active = active ? json_is_true(active) : 1;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(res, "emails"), i, e) {
        const char *v = json_string_value(json_object_get(e, "value"));
        if (v && (!u->email || json_is_true(json_object_get(e, "primary"))))
            u->email = v;
    }
}

/* ---- PATCH ------------------------------------------------------------------------- */

typedef enum { OP_ADD, OP_REPLACE, OP_REMOVE } op_kind;

int scim_op_kind(const json_t *op, int *kind, rg_error *err)
{
    const char *s = json_string_value(json_object_get(op, "op"));
    /* Entra ID writes "Add" / "Replace" / "Remove" */
    if (s && !strcasecmp(s, "add"))
        *kind = OP_ADD;
    else if (s && !strcasecmp(s, "replace"))
        *kind = OP_REPLACE;
    else if (s && !strcasecmp(s, "remove"))
        *kind = OP_REMOVE;
    else
        return rg_error_set(err, RG_EINVAL, "invalidSyntax", "op",
                            "op must be add, replace or remove");
    return 0;
}

/* 1 if element el matches every term of the value filter. */
static int matches(const json_t *el, const rg_scim_path *p)
{
    for (size_t i = 0; i < p->n_filter; i++) {
        const rg_scim_term *t = &p->filter[i];
        json_t *v = NULL;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)el, k, x) {
            if (!strcasecmp(k, t->attr))
                v = x;
        }
        int ok = t->type == RG_SCIM_V_STRING  ? json_is_string(v) &&
                                                   !strcasecmp(json_string_value(v), t->value)
                 : t->type == RG_SCIM_V_TRUE  ? json_is_true(v) || (json_is_string(v) &&
                                                   !strcasecmp(json_string_value(v), "true"))
                 : t->type == RG_SCIM_V_FALSE ? !json_is_true(v)
                                              : v == NULL;
        if (!ok)
            return 0;
    }
    return 1;
}

/* A value filter on a multi-valued attribute of container. */
static int apply_filtered(json_t *container, const char *name, const rg_scim_path *p,
                          int kind, const json_t *value, rg_error *err)
{
    json_t *arr = json_object_get(container, name);
    if (arr && !json_is_array(arr))
        return rg_error_set(err, RG_EINVAL, "invalidPath", name,
                            "'%s' is not multi-valued", name);
    size_t hit = 0;
    for (size_t i = 0; arr && i < json_array_size(arr);) {
        json_t *el = json_array_get(arr, i);
        if (!json_is_object(el) || !matches(el, p)) {
            i++;
            continue;
        }
        hit++;
        if (kind == OP_REMOVE && !*p->sub) {
            json_array_remove(arr, i);
            continue;
        }
        if (kind == OP_REMOVE)
            json_object_del(el, p->sub);
        else if (*p->sub)
            json_object_set(el, p->sub, (json_t *)value);
        else if (json_is_object(value))
            json_object_update(el, (json_t *)value);
        else
            return rg_error_set(err, RG_EINVAL, "invalidValue", name,
                                "the value of a filtered path must be an object");
        i++;
    }
    if (hit || kind == OP_REMOVE)
        return 0;
    /* add/replace with nothing matching: a new element (what Entra ID means
     * by replace on emails[type eq "work"].value for a user without one) */
    json_t *el = json_object();
    for (size_t i = 0; i < p->n_filter; i++)
        if (p->filter[i].type == RG_SCIM_V_STRING)
            json_object_set_new(el, p->filter[i].attr, json_string(p->filter[i].value));
    if (*p->sub)
        json_object_set(el, p->sub, (json_t *)value);
    else if (json_is_object(value))
        json_object_update(el, (json_t *)value);
    if (!arr) {
        arr = json_array();
        json_object_set_new(container, name, arr);
    }
    json_array_append_new(arr, el);
    return 0;
}

static int apply_path(json_t *doc, const char *path, int kind, const json_t *value,
                      rg_error *err);

/* No path: value is an object of attributes (Entra ID also names
 * sub-attributes and URN paths as keys). */
static int apply_object(json_t *doc, int kind, const json_t *value, rg_error *err)
{
    if (kind == OP_REMOVE || !json_is_object(value))
        return rg_error_set(err, RG_EINVAL, kind == OP_REMOVE ? "noTarget" : "invalidValue",
                            "path", kind == OP_REMOVE ? "remove needs a path"
                                                      : "an operation without a path takes an"
                                                        " object value");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)value, k, v) {
        int rc;
        if (!strcasecmp(k, SCIM_ENTERPRISE) && json_is_object(v)) {
            const char *ek;
            json_t *ev;
            rc = 0;
            json_object_foreach(v, ek, ev) {
                char p[RG_SCIM_URN_MAX + RG_SCIM_NAME_MAX + 2];
                snprintf(p, sizeof p, "%s:%s", SCIM_ENTERPRISE, ek);
                if ((rc = apply_path(doc, p, kind, ev, err)))
                    break;
            }
        } else if (!strcmp(k, "schemas") || !strcasecmp(k, "id") || !strcasecmp(k, "meta")) {
            rc = 0;
        } else {
            rc = apply_path(doc, k, kind, v, err);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_path(json_t *doc, const char *path, int kind, const json_t *value,
                      rg_error *err)
{
    rg_scim_path p;
    char why[RG_SCIM_WHY_MAX];
    if (rg_scim_path_parse(path, &p, why, sizeof why))
        return rg_error_set(err, RG_EINVAL, "invalidPath", "path", "path: %s", why);
    json_t *container = doc;
    const attr_def *defs = core_defs;
    char full[RG_SCIM_URN_MAX + RG_SCIM_NAME_MAX + 2];
    snprintf(full, sizeof full, "%s:%s", p.urn, p.attr);
    if (*p.urn && !strcasecmp(full, SCIM_ENTERPRISE)) {
        /* the whole extension */
        if (kind == OP_REMOVE) {
            json_object_del(doc, SCIM_ENTERPRISE);
            return 0;
        }
        json_t *wrap = json_pack("{s:O}", SCIM_ENTERPRISE, value);
        int rc = wrap ? apply_object(doc, kind, wrap, err) : RG_ENOMEM;
        json_decref(wrap);
        return rc;
    }
    if (*p.urn && !strcasecmp(p.urn, SCIM_ENTERPRISE)) {
        defs = ent_defs;
        container = json_object_get(doc, SCIM_ENTERPRISE);
        if (!container) {
            container = json_object();
            json_object_set_new(doc, SCIM_ENTERPRISE, container);
        }
    } else if (*p.urn && strcasecmp(p.urn, SCIM_USER)) {
        return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                            "unknown schema '%.100s'", p.urn);
    }
    const attr_def *d = def_of(defs, p.attr);
    if (!d || d->type == T_RO)
        return rg_error_set(err, RG_EINVAL, d ? "mutability" : "invalidPath", "path",
                            "'%.100s' %s", path, d ? "is read-only" : "is not an attribute");
    if (p.n_filter) {
        if (d->type != T_MULTI)
            return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                                "'%s' is not multi-valued", d->name);
        return apply_filtered(container, d->name, &p, kind, value, err);
    }
    if (*p.sub) {
        if (d->type != T_CPLX || !sub_of(d->subs, p.sub))
            return rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                                "'%.100s' is not an attribute", path);
        json_t *o = json_object_get(container, d->name);
        if (!json_is_object(o)) {
            if (kind == OP_REMOVE)
                return 0;
            o = json_object();
            json_object_set_new(container, d->name, o);
        }
        if (kind == OP_REMOVE)
            json_object_del(o, sub_of(d->subs, p.sub)->name);
        else
            json_object_set(o, sub_of(d->subs, p.sub)->name, (json_t *)value);
        return 0;
    }
    if (kind == OP_REMOVE) {
        json_object_del(container, d->name);
        return 0;
    }
    json_t *cur = json_object_get(container, d->name);
    if (kind == OP_ADD && d->type == T_MULTI && json_is_array(cur)) {
        /* add to a multi-valued attribute: the values are added */
        json_t *add = json_is_array(value) ? json_incref((json_t *)value)
                                           : json_pack("[O]", value);
        json_array_extend(cur, add);
        json_decref(add);
        return 0;
    }
    if (d->type == T_CPLX && json_is_object(cur) && json_is_object(value)) {
        json_object_update(cur, (json_t *)value);
        return 0;
    }
    json_object_set(container, d->name, (json_t *)value);
    return 0;
}

int scim_user_patch(const json_t *current, const json_t *body, json_t **out, rg_error *err)
{
    *out = NULL;
    const json_t *ops = scim_operations(body, err);
    if (!ops)
        return RG_EINVAL;
    json_t *doc = json_deep_copy(current);
    size_t i;
    json_t *op;
    int rc = doc ? 0 : RG_ENOMEM;
    json_array_foreach(ops, i, op) {
        int kind = OP_ADD;
        if (rc || (rc = scim_op_kind(op, &kind, err)))
            break;
        const json_t *path = json_object_get(op, "path");
        const json_t *value = json_object_get(op, "value");
        if (path && !json_is_string(path)) {
            rc = rg_error_set(err, RG_EINVAL, "invalidPath", "path",
                              "path must be a string");
            break;
        }
        if (kind != OP_REMOVE && !value) {
            rc = rg_error_set(err, RG_EINVAL, "invalidValue", "value",
                              "add and replace need a value");
            break;
        }
        rc = path ? apply_path(doc, json_string_value(path), kind, value, err)
                  : apply_object(doc, kind, value, err);
    }
    /* the result is checked like a PUT body: a wrong type anywhere fails all */
    if (!rc)
        rc = scim_user_check(doc, out, err);
    json_decref(doc);
    return rc;
}
