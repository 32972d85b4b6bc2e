/* logins.c: GET /connections/{id}/logins on the admin listener: the login
 * records of a connection (its authentication.succeeded and
 * authentication.failed events, newest last, ?limit= 1..100), which the
 * console's "why this role" page reads (groups received, mappings matched). */
#include <stdlib.h>
#include <string.h>
#include "rolegate/api.h"
#include "rolegate/store.h"

#define LOGINS_DEFAULT 50
#define LOGINS_MAX     100
#define EVENTS_SCAN    100000   /* events looked at by one listing, at most */
#define ID_MAX         80       /* event cursors are ids: evt_... */

/* Appends the connection's events named name to arr (oldest first). */
static int collect(rg_store *s, const char *name, const char *conn_id, json_t *arr,
                   rg_error *err)
{
    const char *after = NULL;
    char cursor[ID_MAX + 16];
    for (size_t seen = 0; seen < EVENTS_SCAN;) {
        rg_store_list_opts o = {.limit = 100, .after = after, .order = "asc"};
        json_t *page = NULL;
        int rc = rg_store_event_list(s, name, &o, &page, err);
        if (rc)
            return rc;
        json_t *data = json_object_get(page, "data");
        size_t i;
        json_t *ev;
        json_array_foreach(data, i, ev) {
            const char *c = json_string_value(json_object_get(json_object_get(ev, "data"),
                                                              "connection_id"));
            if (c && strcmp(c, conn_id) == 0)
                json_array_append(arr, ev);
        }
        seen += json_array_size(data);
        const char *next = json_string_value(json_object_get(json_object_get(page,
                                                             "list_metadata"), "after"));
        if (!next || json_array_size(data) == 0) {
            json_decref(page);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        after = cursor;
        json_decref(page);
    }
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "id")),
                  json_string_value(json_object_get(y, "id")));
}

static void h_logins_list(rg_http_req *req, void *ctx)
{
    rg_api *api = ctx;
    rg_error err;
    rg_error_clear(&err);
    const char *id = rg_http_param(req, "id");
    int limit = LOGINS_DEFAULT;
    const char *ls = rg_http_query(req, "limit");
    if (ls) {
        char *e;
        long v = strtol(ls, &e, 10);
        if (*e || v < 1 || v > LOGINS_MAX) {
            rg_http_send_errorf(req, RG_EUNPROCESSABLE, "invalid_request", "limit",
                                "limit must be 1..%d", LOGINS_MAX);
            return;
        }
        limit = (int)v;
    }
    json_t *conn = NULL;
    if (rg_store_connection_get(rg_api_store(api), id, &conn, &err) != 0) {
        rg_http_send_error(req, &err);
        return;
    }
    json_decref(conn);
    json_t *all = json_array();
    if (!all || collect(rg_api_store(api), "authentication.succeeded", id, all, &err) != 0 ||
        collect(rg_api_store(api), "authentication.failed", id, all, &err) != 0) {
        json_decref(all);
        if (!err.code[0])
            rg_error_oom(&err);
        rg_http_send_error(req, &err);
        return;
    }
    /* event ids are ULIDs: sorting them is sorting by time */
    size_t n = json_array_size(all);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(all, i);
    if (v)
        qsort(v, n, sizeof *v, by_id);
    json_t *data = json_array();
    size_t from = n > (size_t)limit ? n - (size_t)limit : 0;
    for (size_t i = from; v && i < n; i++) {
        /* a login record: the event's data with its id, outcome and time */
        json_t *rec = json_deep_copy(json_object_get(v[i], "data"));
        if (!json_is_object(rec)) {
            json_decref(rec);
            rec = json_object();
        }
        const char *ev = json_string_value(json_object_get(v[i], "event"));
        json_object_set_new(rec, "object", json_string("login"));
        json_object_set(rec, "id", json_object_get(v[i], "id"));
        json_object_set_new(rec, "result", json_string(ev && strcmp(ev,
                            "authentication.succeeded") == 0 ? "succeeded" : "failed"));
        json_object_set(rec, "created_at", json_object_get(v[i], "created_at"));
        json_array_append_new(data, rec);
    }
    free(v);
    json_decref(all);
    rg_http_send_json(req, 200, json_pack("{s:s, s:o, s:{s:n, s:n}}", "object", "list",
                                          "data", data, "list_metadata", "before", "after"));
}

const rg_http_route_def rg_api_logins_routes[] = {
    {"GET", "/connections/{id}/logins", h_logins_list, 0, 0},
};
const size_t rg_api_logins_nroutes = RG_HTTP_NROUTES(rg_api_logins_routes);
