/* dsync_group.c: directory groups as a SCIM client writes them (R27-R29):
 * create, rename, members added / removed / replaced (every member must be
 * a user of the directory, else nothing changes), delete; the roles of
 * every user whose groups changed recomputed in the same transaction (R29)
 * with dsync.group.* events (R26); and the SCIM queries of users and groups
 * (filter terms and-ed, startIndex/count paging). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "dsync_impl.h"

#define QUERY_MAX 1000

static json_t *group_view_x(st_db *db, const char *dir, const char *id, int members,
                            rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, display_name, external_id, created_at, updated_at"
                                  " FROM directory_groups WHERE id = ? AND directory_id = ?",
                                  "ss", id, dir);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        const char *ext = rg_st_col(st, 2);
        o = json_pack("{s:s,s:s,s:o,s:s,s:s}", "id", rg_st_col(st, 0), "display_name",
                      rg_st_col(st, 1), "external_id", ext ? json_string(ext) : json_null(),
                      "created_at", rg_st_col(st, 3), "updated_at", rg_st_col(st, 4));
    }
    o = rg_st_row_object(st, rc, o, -1, "Group", id, err);
    if (!o || !members)
        return o;
    json_t *arr = json_array();
    json_object_set_new(o, "members", arr);
    if (rg_st_dsync_pairs(db, arr, "value", "display",
                          "SELECT u.id, u.user_name FROM directory_group_members m"
                          " JOIN directory_users u ON u.id = m.user_id WHERE m.group_id = ?"
                          " ORDER BY u.id", id, err)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *group_view(st_db *db, const char *dir, const char *id, rg_error *err)
{
    return group_view_x(db, dir, id, 1, err);
}

static json_t *group_view_bare(st_db *db, const char *dir, const char *id, rg_error *err)
{
    return group_view_x(db, dir, id, 0, err);
}

int rg_store_dsync_group_get(rg_store *s, const char *directory_id, const char *id,
                             int with_members, json_t **out, rg_error *err)
{
    return rg_st_dsync_view(s, directory_id, with_members ? group_view : group_view_bare, id,
                            out, err);
}

/* ---- writes ----------------------------------------------------------------------- */

/* A set of directory user ids whose roles must be recomputed. */
typedef struct idset {
    char (*v)[ST_ID];
    size_t n, cap;
} idset;

static int idset_add(idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], id))
            return 0;
    if (rg_grow(&s->v, s->n, &s->cap, sizeof *s->v, 64) != 0)
        return RG_ENOMEM;
    snprintf(s->v[s->n++], ST_ID, "%s", id);
    return 0;
}

/* One member change with its event. change: +1 add, -1 remove. */
static int member_change(st_db *db, const char *dir, const char *gid, const json_t *gjson,
                         const char *uid, int change, idset *touched, rg_error *err)
{
    int rc;
    if (change > 0) {
        int64_t one;
        rc = rg_st_int(db, err, &one, "SELECT 1 FROM directory_users WHERE id = ?"
                       " AND directory_id = ?", "ss", uid, dir);
        if (rc <= 0)
            return rc < 0 ? rc
                          : rg_error_set(err, RG_EINVAL, "invalidValue", "members",
                                         "member '%.64s' is not a user of this directory",
                                         uid);
        rc = rg_st_exec(db, err, "INSERT INTO directory_group_members(group_id,"
                        " user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", "ss", gid, uid);
    } else {
        rc = rg_st_exec(db, err, "DELETE FROM directory_group_members WHERE group_id = ?"
                        " AND user_id = ?", "ss", gid, uid);
    }
    if (rc || st_changes(db) == 0)
        return rc;   /* already a member / not one: a no-op emits nothing */
    if (idset_add(touched, uid))
        return rg_st_oom(err);
    json_t *u = rg_st_dir_user_brief(db, uid, err);
    json_t *ev = u ? json_pack("{s:s,s:o,s:O}", "directory_id", dir, "user", u, "group", gjson)
                   : NULL;
    if (!ev)
        return u ? rg_st_oom(err) : rg_st_rc(err);
    return rg_st_event(db, change > 0 ? "dsync.group.user_added" : "dsync.group.user_removed",
                       ev, err);
}

static int in_list(const char *id, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], id))
            return 1;
    return 0;
}

static int members_apply(st_db *db, const char *dir, const char *gid, const rg_dsync_group *g,
                         const json_t *gjson, idset *touched, rg_error *err)
{
    int rc = 0;
    if (g->replace_members) {
        /* the members not named go (collected first: no change under a cursor) */
        idset cur = {0};
        st_stmt *st = rg_st_prep(db, err, "SELECT user_id FROM directory_group_members"
                                      " WHERE group_id = ?", "s", gid);
        if (!st)
            return rg_st_rc(err);
        while ((rc = rg_st_step(db, st, err)) == 1)
            if (!in_list(rg_st_col(st, 0), g->add, g->n_add) &&
                idset_add(&cur, rg_st_col(st, 0))) {
                rc = rg_st_oom(err);
                break;
            }
        st_finalize(st);
        rc = rc < 0 ? rc : 0;
        for (size_t i = 0; !rc && i < cur.n; i++)
            rc = member_change(db, dir, gid, gjson, cur.v[i], -1, touched, err);
        free(cur.v);
    }
    for (size_t i = 0; !rc && i < g->n_add; i++)
        rc = member_change(db, dir, gid, gjson, g->add[i], +1, touched, err);
    for (size_t i = 0; !rc && !g->replace_members && i < g->n_remove; i++)
        rc = member_change(db, dir, gid, gjson, g->remove[i], -1, touched, err);
    return rc;
}

static int recompute_all(st_tx *tx, const char *org, const idset *ids, rg_error *err)
{
    if (!ids->n)
        return 0;
    /* R29 ranks and assigns: the order table (no permissions or mappings),
     * loaded in this transaction once for every member it touched */
    rg_role_table *t = NULL;
    int rc = rg_st_table_load_order(tx->db, org, &t, err);
    for (size_t i = 0; !rc && i < ids->n; i++)
        rc = rg_st_dsync_recompute(tx->db, t, org, ids->v[i], NULL, err);
    rg_role_table_free(t);
    return rc;
}

static int group_write_tx(st_tx *tx, const char *dir, const char *org, const char *id,
                          const rg_dsync_group *g, char gid[ST_ID], rg_error *err)
{
    st_db *db = tx->db;
    char ts[ST_TS];
    rg_st_now(ts);
    int rc = 0, changed = 0;
    const char *ext = g->external_id && *g->external_id ? g->external_id : NULL;
    if (!id) {
        if (!g->display_name || !*g->display_name)
            return rg_error_set(err, RG_EINVAL, "invalidValue", "displayName",
                                "displayName is required");
        rg_id_new("directory_group", gid, ST_ID);
        rc = rg_st_exec(db, err,
                        "INSERT INTO directory_groups(id, directory_id, display_name,"
                        " external_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                        "ssssss", gid, dir, g->display_name, ext, ts, ts);
    } else {
        snprintf(gid, ST_ID, "%s", id);
        int64_t one;
        rc = rg_st_int(db, err, &one, "SELECT 1 FROM directory_groups WHERE id = ?"
                       " AND directory_id = ?", "ss", id, dir);
        if (rc <= 0)
            return rc < 0 ? rc : rg_st_not_found(err, "id", "Group", id);
        rc = 0;
        if (g->display_name && !*g->display_name)
            return rg_error_set(err, RG_EINVAL, "invalidValue", "displayName",
                                "displayName cannot be empty");
        if (g->display_name)
            rc = rg_st_exec(db, err, "UPDATE directory_groups SET display_name = ?"
                            " WHERE id = ? AND display_name IS NOT ?", "sss", g->display_name,
                            id, g->display_name);
        changed += !rc && g->display_name && st_changes(db) > 0;
        if (!rc && g->external_id)
            rc = rg_st_exec(db, err, "UPDATE directory_groups SET external_id = ?"
                            " WHERE id = ? AND external_id IS NOT ?", "sss", ext, id, ext);
        changed += !rc && g->external_id && st_changes(db) > 0;
        if (!rc && changed)
            rc = rg_st_exec(db, err, "UPDATE directory_groups SET updated_at = ? WHERE id = ?",
                            "ss", ts, gid);
    }
    json_t *gj = rc ? NULL : rg_st_dir_group_json(db, gid, err);
    if (!rc && !gj)
        rc = rg_st_rc(err);
    if (!rc && (!id || changed))
        rc = rg_st_event(db, id ? "dsync.group.updated" : "dsync.group.created",
                         json_incref(gj), err);
    idset touched = {0};
    if (!rc)
        rc = members_apply(db, dir, gid, g, gj, &touched, err);
    json_decref(gj);
    if (!rc)
        rc = recompute_all(tx, org, &touched, err);   /* R29 */
    free(touched.v);
    return rc;
}

/* The arguments of a group write and delete. */
typedef struct dg_arg {
    const char *dir, *id;
    const rg_dsync_group *g;
    int want_view;
} dg_arg;

static int group_write_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const dg_arg *a = arg;
    char org[ST_ID], gid[ST_ID] = "";
    int rc = rg_st_dsync_dir_org(tx->db, a->dir, org, err);
    if (!rc)
        rc = group_write_tx(tx, a->dir, org, a->id, a->g, gid, err);
    if (!rc && a->want_view && !(*out = group_view(tx->db, a->dir, gid, err)))
        rc = rg_st_rc(err);
    return rc;
}

int rg_store_dsync_group_write(rg_store *s, const char *directory_id, const char *id,
                               const rg_dsync_group *g, json_t **out, rg_error *err)
{
    dg_arg a = { directory_id ? directory_id : "", id, g, out != NULL };
    return rg_st_write(s, group_write_fn, &a, out, err);
}

static int group_delete_tx(st_tx *tx, const char *dir, const char *id, rg_error *err)
{
    st_db *db = tx->db;
    char org[ST_ID];
    int rc = rg_st_dsync_dir_org(db, dir, org, err);
    json_t *gj = rc ? NULL : group_view_bare(db, dir, id, err);
    if (!gj)
        return rc ? rc : rg_st_rc(err);
    json_decref(gj);
    gj = rg_st_dir_group_json(db, id, err);
    idset members = {0};
    st_stmt *st = gj ? rg_st_prep(db, err, "SELECT user_id FROM directory_group_members"
                                       " WHERE group_id = ?", "s", id) : NULL;
    while (st && (rc = rg_st_step(db, st, err)) == 1)
        if (idset_add(&members, rg_st_col(st, 0))) {
            rc = rg_st_oom(err);
            break;
        }
    st_finalize(st);
    rc = !st ? rg_st_rc(err) : rc < 0 ? rc : 0;
    if (!rc)   /* members and mappings go with it (cascade) */
        rc = rg_st_exec(db, err, "DELETE FROM directory_groups WHERE id = ?", "s", id);
    if (!rc)
        rc = recompute_all(tx, org, &members, err);   /* R29 */
    free(members.v);
    if (!rc)
        return rg_st_event(db, "dsync.group.deleted", gj, err);
    json_decref(gj);
    return rc;
}

static int group_delete_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const dg_arg *a = arg;
    return group_delete_tx(tx, a->dir, a->id, err);
}

int rg_store_dsync_group_delete(rg_store *s, const char *directory_id, const char *id,
                                rg_error *err)
{
    dg_arg a = { directory_id ? directory_id : "", id ? id : "", NULL, 0 };
    return rg_st_write(s, group_delete_fn, &a, NULL, err);
}

/* ---- queries ---------------------------------------------------------------------- */

typedef struct term_sql {
    const char *attr;
    const char *sql;      /* one '?' */
} term_sql;

static const term_sql user_terms[] = {
    {"id", "id = ?"},
    {"userName", "user_name_key = lower(?)"},
    {"externalId", "external_id = ?"},
    {"displayName", "json_extract(resource, '$.displayName') = ?"},
    {"emails.value", "EXISTS (SELECT 1 FROM json_each(resource, '$.emails') e"
                     " WHERE lower(json_extract(e.value, '$.value')) = lower(?))"},
    {"emails", "EXISTS (SELECT 1 FROM json_each(resource, '$.emails') e"
               " WHERE lower(json_extract(e.value, '$.value')) = lower(?))"},
};

static const term_sql group_terms[] = {
    {"id", "id = ?"},
    {"displayName", "display_name = ?"},
    {"externalId", "external_id = ?"},
    {"members.value", "id IN (SELECT group_id FROM directory_group_members WHERE user_id = ?)"},
    {"members", "id IN (SELECT group_id FROM directory_group_members WHERE user_id = ?)"},
};

static const term_sql *term_of(const term_sql *tab, size_t n, const char *attr)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(tab[i].attr, attr))
            return &tab[i];
    return NULL;
}

/* One SCIM query: the count, then the page. */
typedef struct query_arg {
    const char *dir, *table, *where;
    const rg_dsync_term *terms;
    size_t nt;
    long start, count;
    json_t *(*view)(st_db *, const char *, const char *, rg_error *);
} query_arg;

static int query_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const query_arg *a = arg;
    char sql[2048];
    json_t *items = json_array();
    int64_t total = 0;
    int rc = items ? 0 : rg_st_oom(err);
    for (int pass = 0; pass < 2 && !rc; pass++) {
        if (pass == 0)
            snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", a->table, a->where);
        else
            snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE %s ORDER BY rowid LIMIT %ld"
                     " OFFSET %ld", a->table, a->where, a->count, a->start - 1);
        st_stmt *st = rg_st_prep(tx->db, err, sql, "");
        if (!st) {
            rc = rg_st_rc(err);
            break;
        }
        int k = 1;
        st->db->be->bind_text(st, k++, a->dir);
        for (size_t i = 0; i < a->nt; i++)
            st->db->be->bind_text(st, k++, a->terms[i].value);
        int r;
        while ((r = rg_st_step(tx->db, st, err)) == 1) {
            if (pass == 0) {
                total = st_col_int64(st, 0);
                continue;
            }
            json_t *o = a->view(tx->db, a->dir, rg_st_col(st, 0), err);
            if (!o) {
                r = rg_st_rc(err);
                break;
            }
            json_array_append_new(items, o);
        }
        st_finalize(st);
        if (r < 0)
            rc = r;
    }
    if (rc) {
        json_decref(items);
        return rc;
    }
    *out = json_pack("{s:I,s:o}", "total", (json_int_t)total, "items", items);
    return *out ? 0 : rg_st_oom(err);
}

static int query(rg_store *s, const char *dir, const char *table, const term_sql *tab,
                 size_t ntab, const rg_dsync_term *terms, size_t nt, long start, long count,
                 json_t *(*view)(st_db *, const char *, const char *, rg_error *),
                 json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    rg_buf where = {0};
    rg_buf_puts(&where, "directory_id = ?");
    for (size_t i = 0; i < nt; i++) {
        const term_sql *t = term_of(tab, ntab, terms[i].attr);
        if (!t) {
            rg_buf_free(&where);
            return rg_error_set(err, RG_EINVAL, "invalidFilter", "filter",
                                "filtering on '%.64s' is not supported", terms[i].attr);
        }
        rg_buf_printf(&where, " AND %s", t->sql);
    }
    char *w = rg_buf_take(&where);
    if (!w)
        return rg_st_oom(err);
    if (start < 1)
        start = 1;
    if (count < 0)
        count = 0;
    if (count > QUERY_MAX)
        count = QUERY_MAX;
    query_arg a = { dir, table, w, terms, nt, start, count, view };
    int rc = rg_st_read(s, query_tx, &a, out, err);
    free(w);
    return rc;
}

int rg_store_dsync_user_query(rg_store *s, const char *directory_id,
                              const rg_dsync_term *terms, size_t n_terms, long start,
                              long count, json_t **out, rg_error *err)
{
    return query(s, directory_id ? directory_id : "", "directory_users", user_terms,
                 sizeof user_terms / sizeof *user_terms, terms, n_terms, start, count,
                 rg_st_dsync_user_view, out, err);
}

int rg_store_dsync_group_query(rg_store *s, const char *directory_id,
                               const rg_dsync_term *terms, size_t n_terms, long start,
                               long count, int with_members, json_t **out, rg_error *err)
{
    return query(s, directory_id ? directory_id : "", "directory_groups", group_terms,
                 sizeof group_terms / sizeof *group_terms, terms, n_terms, start, count,
                 with_members ? group_view : group_view_bare, out, err);
}
