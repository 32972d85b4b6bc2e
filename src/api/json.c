/* json.c: the admin API's request checks. The http layer has already parsed
 * the body (400 invalid_json with the byte offset); here every member is
 * type-checked before the store is called, so a wrong type or an unknown
 * member is a 422 naming the field and a failed request changes nothing
 * (DESIGN.md status codes, R6). Also the list paging parameters (limit 1-100,
 * default 10; before; after; order). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "rolegate/api.h"

static int type_error(rg_error *err, const char *key, const char *want)
{
    return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_type", key, "%s must be %s", key, want);
}

static int missing(rg_error *err, const char *key)
{
    return rg_error_set(err, RG_EUNPROCESSABLE, "required", key, "%s is required", key);
}

/* A JSON string whose C form is the whole string (no embedded NUL). */
static int plain_string(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static void decref(void *p)
{
    json_decref(p);
}

json_t *rg_api_body_object(rg_http_req *req, const char *const *allowed, rg_error *err)
{
    json_t *body = rg_http_json(req);
    if (!body) {
        /* an empty optional body: behave as {} (owned by the arena) */
        body = json_object();
        if (!body || rg_arena_on_free(rg_http_arena(req), decref, body) != 0) {
            rg_error_oom(err);
            return NULL;
        }
    }
    if (!json_is_object(body)) {
        type_error(err, "body", "a JSON object");
        return NULL;
    }
    if (allowed) {
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v) {
            int ok = 0;
            for (size_t i = 0; allowed[i]; i++)
                if (strcmp(k, allowed[i]) == 0) {
                    ok = 1;
                    break;
                }
            if (!ok) {
                char field[64];
                snprintf(field, sizeof field, "%s", k);
                rg_error_set(err, RG_EUNPROCESSABLE, "unknown_field", field,
                             "%s cannot be set here", field);
                return NULL;
            }
        }
    }
    return body;
}

int rg_api_json_string(const json_t *obj, const char *key, int required,
                       const char **out, rg_error *err)
{
    assert(obj && key && out);
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || (json_is_null(v) && !required))
        return required ? missing(err, key) : RG_OK;
    if (!plain_string(v))
        return type_error(err, key, "a string");
    *out = json_string_value(v);
    return RG_OK;
}

int rg_api_json_bool(const json_t *obj, const char *key, int *present, int *out,
                     rg_error *err)
{
    assert(obj && key && present && out);
    *present = 0;
    json_t *v = json_object_get(obj, key);
    if (!v)
        return RG_OK;
    if (!json_is_boolean(v))
        return type_error(err, key, "true or false");
    *present = 1;
    *out = json_is_true(v);
    return RG_OK;
}

int rg_api_strv_of(rg_http_req *req, const json_t *arr, const char *field,
                   const char ***out, size_t *n, rg_error *err)
{
    assert(out && n && field);
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr))
        return type_error(err, field, "an array of strings");
    size_t len = json_array_size(arr);
    const char **v = rg_arena_alloc(rg_http_arena(req), (len + 1) * sizeof *v);
    if (!v)
        return rg_error_oom(err);
    for (size_t i = 0; i < len; i++) {
        const json_t *e = json_array_get(arr, i);
        if (!plain_string(e))
            return type_error(err, field, "an array of strings");
        v[i] = json_string_value(e);   /* borrowed: the body lives until the reply */
    }
    v[len] = NULL;
    *out = v;
    *n = len;
    return RG_OK;
}

int rg_api_strv_one(rg_http_req *req, const char *one, const char ***out, size_t *n,
                    rg_error *err)
{
    assert(one && out && n);
    const char **v = rg_arena_alloc(rg_http_arena(req), 2 * sizeof *v);
    if (!v)
        return rg_error_oom(err);
    v[0] = one;
    v[1] = NULL;
    *out = v;
    *n = 1;
    return RG_OK;
}

int rg_api_json_strv(rg_http_req *req, const json_t *obj, const char *key, int required,
                     const char ***out, size_t *n, rg_error *err)
{
    assert(obj && key && out && n);
    *out = NULL;
    *n = 0;
    json_t *v = json_object_get(obj, key);
    if (!v || (json_is_null(v) && !required))
        return required ? missing(err, key) : RG_OK;
    return rg_api_strv_of(req, v, key, out, n, err);
}

/* ---- paging ------------------------------------------------------------ */

int rg_api_list_opts(rg_http_req *req, rg_store_list_opts *o, rg_error *err)
{
    assert(o);
    memset(o, 0, sizeof *o);
    const char *limit = rg_http_query(req, "limit");
    if (limit) {
        /* digits only: "1e2", "+5", " 5" and "" are refused, not guessed */
        size_t len = strlen(limit);
        int n = 0;
        int ok = len >= 1 && len <= 3;
        for (size_t i = 0; ok && i < len; i++) {
            if (limit[i] < '0' || limit[i] > '9')
                ok = 0;
            else
                n = n * 10 + (limit[i] - '0');
        }
        if (!ok || n < 1 || n > RG_API_LIMIT_MAX)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "limit",
                                "limit must be an integer from 1 to %d", RG_API_LIMIT_MAX);
        o->limit = n;
    }
    const char *order = rg_http_query(req, "order");
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "order",
                            "order must be asc or desc");
    o->order = order;
    const char *before = rg_http_query(req, "before");
    const char *after = rg_http_query(req, "after");
    o->before = (before && *before) ? before : NULL;
    o->after = (after && *after) ? after : NULL;
    if (o->before && o->after)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "before",
                            "give before or after, not both");
    return RG_OK;
}

int rg_api_name_desc_body(rg_http_req *req, const char **name, const char **desc,
                          rg_error *err)
{
    static const char *const allowed[] = {"name", "description", NULL};
    *name = *desc = NULL;
    json_t *b = rg_api_body_object(req, allowed, err);
    int rc = b ? 0 : RG_EINVAL;
    if (!rc) rc = rg_api_json_string(b, "name", 0, name, err);
    if (!rc) rc = rg_api_json_string(b, "description", 0, desc, err);
    if (!rc && *desc == NULL && json_is_null(json_object_get(b, "description")))
        *desc = "";   /* null clears the description */
    return rc;
}
