/* role_mapping.c: a connection's IdP group -> role mappings (R15: only
 * roles visible in its organization): read and replace as a whole, the
 * replacement one transaction of the runner that bumps the organization's
 * table version and emits connection.updated with the new set (R26). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

/* The connection's mappings as a JSON array of {"object","idp_group",
 * "role_slug"}, sorted. */
static json_t *mappings_array(st_db *db, const char *conn_id, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT m.idp_group, r.slug FROM role_mappings m"
                                  " JOIN roles r ON r.id = m.role_id"
                                  " WHERE m.connection_id = ? AND r.status = 'active'"
                                  " ORDER BY m.idp_group, r.slug", "s", conn_id);
    if (!st)
        return NULL;
    json_t *arr = json_array();
    int rc = 0;
    while (arr && (rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "object", "role_mapping",
                                             "idp_group", rg_st_col(st, 0), "role_slug",
                                             rg_st_col(st, 1)));
    st_finalize(st);
    if (!arr)
        rg_st_oom(err);
    else if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int mappings_get_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const char *conn_id = arg;
    int64_t one;
    int rc = rg_st_int(tx->db, err, &one, "SELECT 1 FROM connections WHERE id = ?", "s",
                       conn_id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", conn_id);
    json_t *arr = mappings_array(tx->db, conn_id, err);
    if (!arr)
        return rg_st_rc(err);
    *out = rg_st_list_object(arr, NULL, NULL);
    return *out ? 0 : rg_st_oom(err);
}

int rg_store_role_mappings_get(rg_store *s, const char *conn_id, json_t **out,
                               rg_error *err)
{
    return rg_st_read(s, mappings_get_tx, (void *)(conn_id ? conn_id : ""), out, err);
}

static int mappings_set_tx(st_db *db, const char *conn_id, const json_t *mappings,
                           json_t **out, rg_error *err)
{
    char org[ST_ID];
    int rc = rg_st_text(db, err, org, sizeof org,
                        "SELECT organization_id FROM connections WHERE id = ?", "s", conn_id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", conn_id);
    size_t n = json_array_size(mappings);
    char (*ids)[ST_ID] = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return rg_st_oom(err);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(mappings, i);
        const char *g = json_string_value(json_object_get(m, "idp_group"));
        const char *slug = json_string_value(json_object_get(m, "role_slug"));
        char field[64];
        if (!json_is_object(m) || !g || !*g || !slug) {
            snprintf(field, sizeof field, "role_mappings[%zu]", i);
            free(ids);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", field,
                                "a mapping is {\"idp_group\": string, \"role_slug\": string}");
        }
        st_role r;
        int f = rg_st_role_find(db, org, slug, 0, 0, &r, err);
        if (f <= 0) {
            free(ids);
            if (f < 0)
                return f;
            /* R15: only roles visible in the organization */
            snprintf(field, sizeof field, "role_mappings[%zu].role_slug", i);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", field,
                                "no role '%.48s' in this organization", slug);
        }
        memcpy(ids[i], r.id, ST_ID);
    }
    /* the new set, deduplicated and sorted as mappings_array sorts */
    json_t *want = json_array();
    for (size_t i = 0; want && i < n; i++) {
        json_t *m = json_array_get(mappings, i);
        const char *g = json_string_value(json_object_get(m, "idp_group"));
        char slug[RG_SLUG_MAX + 1];
        if (rg_st_text(db, err, slug, sizeof slug, "SELECT slug FROM roles WHERE id = ?", "s",
                       ids[i]) != 1) {
            json_decref(want);
            free(ids);
            return rg_st_rc(err);
        }
        size_t at = 0, len = json_array_size(want);
        int dup = 0;
        for (; at < len; at++) {
            json_t *w = json_array_get(want, at);
            int c = strcmp(g, json_string_value(json_object_get(w, "idp_group")));
            if (!c)
                c = strcmp(slug, json_string_value(json_object_get(w, "role_slug")));
            if (c == 0)
                dup = 1;
            if (c <= 0)
                break;
        }
        if (!dup)
            json_array_insert_new(want, at, json_pack("{s:s,s:s,s:s}", "object", "role_mapping",
                                                      "idp_group", g, "role_slug", slug));
    }
    json_t *before = want ? mappings_array(db, conn_id, err) : NULL;
    if (!before) {
        json_decref(want);
        free(ids);
        return want ? rg_st_rc(err) : rg_st_oom(err);
    }
    int changed = !json_equal(before, want);
    json_decref(before);
    if (changed) {
        rc = rg_st_exec(db, err, "DELETE FROM role_mappings WHERE connection_id = ?", "s",
                        conn_id);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = rg_st_exec(db, err,
                            "INSERT INTO role_mappings(connection_id, idp_group,"
                            " role_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", "sss", conn_id,
                            json_string_value(json_object_get(json_array_get(mappings, i),
                                                              "idp_group")),
                            ids[i]);
        char ts[ST_TS];
        rg_st_now(ts);
        json_t *ev = NULL;
        if (rc || rg_st_exec(db, err, "UPDATE connections SET updated_at = ? WHERE id = ?",
                             "ss", ts, conn_id) ||
            rg_st_bump_org(db, org, err) || !(ev = rg_st_conn_public(db, conn_id, err))) {
            json_decref(want);
            free(ids);
            return rg_st_rc(err);
        }
        json_object_set(ev, "role_mappings", want);
        if (rg_st_event(db, "connection.updated", ev, err)) {
            json_decref(want);
            free(ids);
            return rg_st_rc(err);
        }
    }
    free(ids);
    json_t *after = want;
    *out = rg_st_list_object(after, NULL, NULL);
    return *out ? 0 : rg_st_oom(err);
}

typedef struct mappings_arg { const char *conn_id; const json_t *mappings; } mappings_arg;

static int mappings_set_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const mappings_arg *a = arg;
    return mappings_set_tx(tx->db, a->conn_id, a->mappings, out, err);
}

int rg_store_role_mappings_set(rg_store *s, const char *conn_id, const json_t *mappings,
                               json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!json_is_array(mappings))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "role_mappings",
                            "role mappings must be a JSON array");
    mappings_arg a = { conn_id ? conn_id : "", mappings };
    return rg_st_write(s, mappings_set_fn, &a, out, err);
}
