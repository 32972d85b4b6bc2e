/* permission.c: permissions (R2 slugs, R6 unique, R22 a deleted one leaves
 * every role, system permissions stay): create, list, get, update and
 * delete, each one transaction of the runner with its events (R26). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"

static json_t *perm_row(st_stmt *st)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "object", "permission", "id",
                     rg_st_col(st, 0), "slug", rg_st_col(st, 1), "name", rg_st_col(st, 2),
                     "description", rg_st_col(st, 3), "system", st_col_int(st, 4));
}

static json_t *perm_json(st_db *db, const char *id, rg_error *err)
{
    return rg_st_object(db,
                        "SELECT id, slug, name, description, system, created_at, updated_at"
                        " FROM permissions WHERE id = ?", id, perm_row, 5, "permission", err);
}

int rg_st_perm_find(st_db *db, const char *slug, char id[ST_ID], rg_error *err)
{
    return rg_st_text(db, err, id, ST_ID, "SELECT id FROM permissions WHERE slug = ?", "s",
                      slug ? slug : "");
}

/* The arguments of create, get, update and delete (by slug). */
typedef struct perm_arg { const char *slug, *name, *desc; int system; } perm_arg;

static int perm_create_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const perm_arg *a = arg;
    st_db *db = tx->db;
    char id[ST_ID], ts[ST_TS];
    int rc = rg_st_perm_find(db, a->slug, id, err);
    if (rc < 0)
        return rc;
    if (rc == 1)   /* R6 */
        return rg_error_set(err, RG_ECONFLICT, "permission_slug_conflict", "slug",
                            "a permission with slug '%.48s' exists", a->slug);
    rg_id_new("perm", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO permissions(id, slug, name, description, system, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "ssssiss", id, a->slug, a->name, a->desc ? a->desc : "", a->system ? 1 : 0,
                   ts, ts))
        return rg_st_rc(err);
    if (!(*out = perm_json(db, id, err)))
        return rg_st_rc(err);
    return rg_st_event(db, "permission.created", json_incref(*out), err);
}

int rg_store_permission_create(rg_store *s, const char *slug, const char *name,
                               const char *description, int system, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    /* R2 */
    int rc = rg_core_permission_slug_check(slug, "slug", err);
    if (!rc)
        rc = rg_st_text_check(name, 1, description, err);
    if (rc)
        return rc;
    perm_arg a = { slug, name, description, system };
    return rg_st_write(s, perm_create_tx, &a, out, err);
}

int rg_store_permission_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                             rg_error *err)
{
    st_list_q q = { "permissions", "id", "", NULL, NULL, o, 1, perm_json, NULL };
    return rg_st_read_list(s, &q, out, err);
}

/* The permission of slug: its id and its object (a new reference in *obj). 0, 404
 * not_found or negative with err. */
static int perm_by_slug(st_db *db, const char *slug, char id[ST_ID], json_t **obj,
                        rg_error *err)
{
    *obj = NULL;
    int rc = rg_st_perm_find(db, slug, id, err);
    if (rc == 0)
        return rg_st_not_found(err, "slug", "permission", slug);
    if (rc < 0)
        return rc;
    return (*obj = perm_json(db, id, err)) ? 0 : rg_st_rc(err);
}

static int perm_get_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    char id[ST_ID];
    return perm_by_slug(tx->db, arg, id, out, err);
}

int rg_store_permission_get(rg_store *s, const char *slug, json_t **out, rg_error *err)
{
    return rg_st_read(s, perm_get_tx, (void *)slug, out, err);
}

static int perm_update_tx(st_db *db, const char *slug, const char *name, const char *desc,
                          json_t **out, rg_error *err)
{
    char id[ST_ID], ts[ST_TS];
    json_t *before = NULL;
    int rc = perm_by_slug(db, slug, id, &before, err);
    if (rc)
        return rc;
    int changed = rg_st_text_changed(before, name, desc);
    json_decref(before);
    if (changed) {
        rg_st_now(ts);
        if (rg_st_exec(db, err,
                       "UPDATE permissions SET name = coalesce(?, name),"
                       " description = coalesce(?, description), updated_at = ? WHERE id = ?",
                       "ssss", name, desc, ts, id))
            return rg_st_rc(err);
    }
    return rg_st_answer(db, perm_json(db, id, err),
                            changed ? "permission.updated" : NULL, out, err);
}

static int perm_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const perm_arg *a = arg;
    return perm_update_tx(tx->db, a->slug, a->name, a->desc, out, err);
}

int rg_store_permission_update(rg_store *s, const char *slug, const char *name,
                               const char *description, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = rg_st_text_check(name, 0, description, err);
    if (rc)
        return rc;
    perm_arg a = { slug, name, description, 0 };
    return rg_st_write(s, perm_update_fn, &a, out, err);
}

/* The ids of the roles (not yet gone) that hold a permission. */
static int roles_with_perm(st_db *db, const char *perm_id, char (**ids)[ST_ID], size_t *n,
                           rg_error *err)
{
    *ids = NULL;
    *n = 0;
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT role_id FROM role_permissions WHERE permission_id = ?"
                                  " ORDER BY role_id", "s", perm_id);
    if (!st)
        return rg_st_rc(err);
    size_t cap = 0;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (rg_grow(ids, *n, &cap, sizeof **ids, 16) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        snprintf((*ids)[(*n)++], ST_ID, "%s", rg_st_col(st, 0));
    }
    st_finalize(st);
    if (rc < 0) {   /* a failed list is no list: the caller has nothing to free */
        free(*ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

static int perm_delete_tx(st_db *db, const char *slug, rg_error *err)
{
    char id[ST_ID];
    json_t *before = NULL;
    int rc = perm_by_slug(db, slug, id, &before, err);
    if (rc)
        return rc;
    if (json_is_true(json_object_get(before, "system"))) {
        json_decref(before);
        return rg_error_set(err, RG_ECONFLICT, "system_permission_cannot_be_deleted",
                            "slug", "'%.48s' is a system permission", slug);
    }
    char (*roles)[ST_ID] = NULL;
    size_t n = 0;
    if ((rc = roles_with_perm(db, id, &roles, &n, err))) {
        json_decref(before);
        return rc;
    }
    /* R22: the cascade removes it from every role */
    rc = rg_st_exec(db, err, "DELETE FROM permissions WHERE id = ?", "s", id);
    char ts[ST_TS];
    rg_st_now(ts);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((rc = rg_st_exec(db, err, "UPDATE roles SET updated_at = ? WHERE id = ?", "ss", ts,
                             roles[i])))
            break;
        json_t *r = rg_st_role_json(db, roles[i], err);
        if (!r) {
            rc = rg_st_rc(err);
            break;
        }
        int org = json_object_get(r, "organization_id") != NULL;
        rc = rg_st_event(db, org ? "organization_role.updated" : "role.updated", r, err);
    }
    free(roles);
    if (rc == 0 && n)   /* the environment version is part of every table's */
        rc = rg_st_bump_env(db, err);
    if (rc == 0)
        return rg_st_event(db, "permission.deleted", before, err);
    json_decref(before);
    return rc;
}

static int perm_delete_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    return perm_delete_tx(tx->db, arg, err);
}

int rg_store_permission_delete(rg_store *s, const char *slug, rg_error *err)
{
    return rg_st_write(s, perm_delete_fn, (void *)slug, NULL, err);
}
