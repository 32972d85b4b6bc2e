/* list.c: the generic cursor-paginated list of the admin API (limit,
 * order, before/after cursors), with per-id or batch builders, and the list
 * object every list answer has. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

json_t *rg_st_list_object(json_t *data, const char *before, const char *after)
{
    json_t *meta = json_pack("{s:o?,s:o?}", "before", before ? json_string(before) : NULL,
                             "after", after ? json_string(after) : NULL);
    json_t *o = json_pack("{s:s,s:o,s:o}", "object", "list", "data", data, "list_metadata",
                          meta);
    return o;
}

char *rg_st_ids_json(const char (*ids)[ST_ID], size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(ids[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return text;
}

/* One page: either build (one object per id) or batch (all at once). */
static int list_page(st_db *db, const char *table, const char *key, const char *where,
                     const char *bind1, const char *bind2, const rg_store_list_opts *o,
                     int default_desc, st_builder build, st_batch_builder batch,
                     json_t **out, rg_error *err)
{
    assert(out && (build || batch));
    rg_store_list_opts none = {0};
    if (!o)
        o = &none;
    int limit = o->limit ? o->limit : 10;
    if (limit < 1 || limit > 100)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "limit",
                            "limit must be between 1 and 100");
    int desc = default_desc;
    if (o->order) {
        if (!strcmp(o->order, "asc"))
            desc = 0;
        else if (!strcmp(o->order, "desc"))
            desc = 1;
        else
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "order",
                                "order must be \"asc\" or \"desc\"");
    }
    if (o->before && o->after)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "before",
                            "give before or after, not both");
    const char *cursor = o->after ? o->after : o->before;
    /* Walking backwards (before=) reads the rows next to the cursor in the
     * opposite direction, then reverses them. */
    int backwards = o->before != NULL;
    int scan_desc = backwards ? !desc : desc;
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE (%s)", table,
                     where && *where ? where : "1 = 1");
    if (cursor)
        n += snprintf(sql + n, sizeof sql - (size_t)n,
                      " AND %s %s (SELECT %s FROM %s WHERE id = ?)", key,
                      scan_desc ? "<" : ">", key, table);
    n += snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY %s %s LIMIT ?", key,
                  scan_desc ? "DESC" : "ASC");
    assert((size_t)n < sizeof sql);
    const char *args[3] = {0};
    int na = 0;
    if (bind1)
        args[na++] = bind1;
    if (bind2)
        args[na++] = bind2;
    if (cursor)
        args[na++] = cursor;
    st_stmt *st = NULL;
    switch (na) {
    case 0: st = rg_st_prep(db, err, sql, "i", limit + 1); break;
    case 1: st = rg_st_prep(db, err, sql, "si", args[0], limit + 1); break;
    case 2: st = rg_st_prep(db, err, sql, "ssi", args[0], args[1], limit + 1); break;
    default: st = rg_st_prep(db, err, sql, "sssi", args[0], args[1], args[2], limit + 1);
    }
    if (!st)
        return rg_st_rc(err);
    char (*ids)[ST_ID] = calloc((size_t)limit + 1, sizeof *ids);
    if (!ids) {
        st_finalize(st);
        return rg_st_oom(err);
    }
    int count = 0, rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        const char *id = rg_st_col(st, 0);
        snprintf(ids[count++], ST_ID, "%s", id ? id : "");
    }
    st_finalize(st);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    int more = count > limit;
    if (more)
        count = limit;
    if (backwards)   /* back to the list's order */
        for (int i = 0; i < count / 2; i++) {
            char tmp[ST_ID];
            memcpy(tmp, ids[i], ST_ID);
            memcpy(ids[i], ids[count - 1 - i], ST_ID);
            memcpy(ids[count - 1 - i], tmp, ST_ID);
        }
    json_t *data = batch ? batch(db, (const char (*)[ST_ID])ids, (size_t)count, err)
                         : json_array();
    if (!data) {
        free(ids);
        return batch ? rg_st_rc(err) : rg_st_oom(err);
    }
    for (int i = 0; !batch && i < count; i++) {
        json_t *obj = build(db, ids[i], err);
        if (!obj) {
            json_decref(data);
            free(ids);
            return rg_st_rc(err);
        }
        json_array_append_new(data, obj);
    }
    /* after: the last item when more follow it (forwards), or whenever we
     * came backwards from a cursor; before: the first item when more precede
     * it (backwards) or when we came forwards from a cursor. */
    const char *after = NULL, *before = NULL;
    if (count > 0) {
        if (backwards ? 1 : more)
            after = ids[count - 1];
        if (backwards ? more : cursor != NULL)
            before = ids[0];
    }
    json_t *list = rg_st_list_object(data, before, after);
    free(ids);
    if (!list)
        return rg_st_oom(err);
    *out = list;
    return 0;
}

int rg_st_list(st_db *db, const st_list_q *q, json_t **out, rg_error *err)
{
    return list_page(db, q->table, q->key, q->where, q->bind1, q->bind2, q->opts,
                     q->default_desc, q->build, q->batch, out, err);
}

static int list_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    return rg_st_list(tx->db, arg, out, err);
}

int rg_st_read_list(rg_store *s, const st_list_q *q, json_t **out, rg_error *err)
{
    return rg_st_read(s, list_fn, (void *)q, out, err);
}
