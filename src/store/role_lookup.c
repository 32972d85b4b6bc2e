/* role_lookup.c: roles as the rest of the store sees them: lookups by slug
 * in a scope, the role object and every visible role object at once (R11),
 * and independence of an organization (R9: its own order and default,
 * copied from the environment's). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

int rg_st_role_find(st_db *db, const char *org_id, const char *slug, int own_only,
                    int with_deleting, st_role *r, rg_error *err)
{
    const char *sql;
    if (!org_id)
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND organization_id IS NULL AND (? OR status = 'active')";
    else if (own_only)
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND organization_id = ? AND (? OR status = 'active')";
    else
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND (organization_id IS NULL OR organization_id = ?)"
              " AND (? OR status = 'active') ORDER BY organization_id IS NULL";
    st_stmt *st = org_id ? rg_st_prep(db, err, sql, "ssi", slug, org_id, with_deleting)
                              : rg_st_prep(db, err, sql, "si", slug, with_deleting);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        memset(r, 0, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", rg_st_col(st, 0));
        snprintf(r->slug, sizeof r->slug, "%s", rg_st_col(st, 1));
        snprintf(r->org_id, sizeof r->org_id, "%s", rg_st_col(st, 2));
        r->deleting = strcmp(rg_st_col(st, 3), "active") != 0;
    }
    st_finalize(st);
    return rc;
}

int rg_st_org_exists(st_db *db, const char *org_id, rg_error *err)
{
    int64_t one;
    if (!org_id)
        return 0;
    return rg_st_int(db, err, &one, "SELECT 1 FROM organizations WHERE id = ?", "s", org_id);
}

#define ROLE_COLS "id, slug, name, description, organization_id, status, created_at, updated_at"

/* The role object of one row of ROLE_COLS, with an empty "permissions"
 * array the caller fills (sorted). NULL when out of memory. */
static json_t *role_row_json(st_stmt *st)
{
    const char *org = rg_st_col(st, 4);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:[]}", "object", "role", "id",
                          rg_st_col(st, 0), "slug", rg_st_col(st, 1), "name", rg_st_col(st, 2),
                          "description", rg_st_col(st, 3), "type",
                          org ? "OrganizationRole" : "EnvironmentRole", "permissions");
    if (!o)
        return NULL;
    if (org)
        json_object_set_new(o, "organization_id", json_string(org));
    if (strcmp(rg_st_col(st, 5), "active"))
        json_object_set_new(o, "status", json_string(rg_st_col(st, 5)));
    json_object_set_new(o, "created_at", json_string(rg_st_col(st, 6)));
    json_object_set_new(o, "updated_at", json_string(rg_st_col(st, 7)));
    return o;
}

json_t *rg_st_role_json(st_db *db, const char *role_id, rg_error *err)
{
    json_t *o = rg_st_object(db, "SELECT " ROLE_COLS " FROM roles WHERE id = ?", role_id,
                             role_row_json, -1, "role", err);
    if (!o)
        return NULL;
    st_stmt *st = rg_st_prep(db, err,
                             "SELECT p.slug FROM role_permissions rp JOIN permissions p"
                             " ON p.id = rp.permission_id WHERE rp.role_id = ? ORDER BY p.slug",
                             "s", role_id);
    if (!st) {
        json_decref(o);
        return NULL;
    }
    json_t *perms = json_object_get(o, "permissions");
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(perms, json_string(rg_st_col(st, 0)));
    st_finalize(st);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *rg_st_roles_by_slug(st_db *db, const char *org_id, rg_error *err)
{
    /* org_id NULL binds NULL: "organization_id = NULL" holds for no row, so
     * the same SQL gives the environment's roles alone */
    json_t *by_slug = json_object(), *by_id = json_object();
    st_stmt *st = NULL;
    int rc = 0;
    if (!by_slug || !by_id) {
        rg_st_oom(err);
        goto fail;
    }
    st = rg_st_prep(db, err,
                    "SELECT " ROLE_COLS " FROM roles WHERE status = 'active'"
                    " AND (organization_id IS NULL OR organization_id = ?)", "s", org_id);
    if (!st)
        goto fail;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = role_row_json(st);
        if (!o || json_object_set(by_id, rg_st_col(st, 0), o) ||
            json_object_set_new(by_slug, rg_st_col(st, 1), o)) {
            rg_st_oom(err);
            goto fail;
        }
    }
    st_finalize(st);
    st = NULL;
    if (rc < 0)
        goto fail;
    /* every permission of those roles in one query, sorted per role as
     * rg_st_role_json sorts them */
    st = rg_st_prep(db, err,
                    "SELECT rp.role_id, p.slug FROM role_permissions rp"
                    " JOIN permissions p ON p.id = rp.permission_id"
                    " JOIN roles r ON r.id = rp.role_id WHERE r.status = 'active'"
                    " AND (r.organization_id IS NULL OR r.organization_id = ?)"
                    " ORDER BY rp.role_id, p.slug", "s", org_id);
    if (!st)
        goto fail;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = json_object_get(by_id, rg_st_col(st, 0));
        assert(o);   /* the same snapshot, the same condition */
        if (o && json_array_append_new(json_object_get(o, "permissions"),
                                       json_string(rg_st_col(st, 1)))) {
            rg_st_oom(err);
            goto fail;
        }
    }
    st_finalize(st);
    st = NULL;
    if (rc < 0)
        goto fail;
    json_decref(by_id);
    return by_slug;
fail:
    st_finalize(st);
    json_decref(by_id);
    json_decref(by_slug);
    return NULL;
}

int rg_st_org_make_independent(st_db *db, const char *org_id, rg_error *err)
{
    int64_t ind = 0;
    int rc = rg_st_int(db, err, &ind, "SELECT independent FROM organizations WHERE id = ?",
                       "s", org_id);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return rg_st_not_found(err, "organization_id", "organization", org_id);
    if (ind)
        return 0;
    /* R9: own order = a copy of the environment's, own default = a copy of
     * the environment's default, both independent from now on */
    if (rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", org_id) ||
        rg_st_exec(db, err,
                   "INSERT INTO priorities(scope, role_id, position) SELECT ?, p.role_id,"
                   " p.position FROM priorities p JOIN roles r ON r.id = p.role_id"
                   " WHERE p.scope = '' AND r.status = 'active'", "s", org_id) ||
        rg_st_exec(db, err,
                   "UPDATE organizations SET independent = 1, default_role_id ="
                   " (SELECT default_role_id FROM environment WHERE id = 1) WHERE id = ?",
                   "s", org_id) ||
        rg_st_bump_org(db, org_id, err))
        return rg_st_rc(err);
    return 0;
}
