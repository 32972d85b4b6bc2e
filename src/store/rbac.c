/* rbac.c: the environment (R7, R12, R14), permissions (R2, R6, R22),
 * environment and organization roles (R1-R11), their permissions, priority
 * orders (R8, R9) and role deletion up to the queued job (R20, R21). Each
 * public function is one transaction that emits its events (R26). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

/* ---- environment ------------------------------------------------------------ */

static json_t *env_json(sqlite3 *db, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT e.multiple_roles, r.slug, e.updated_at FROM environment e"
                                  " JOIN roles r ON r.id = e.default_role_id WHERE e.id = 1", "");
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        o = json_pack("{s:s,s:b,s:s,s:s}", "object", "environment", "multiple_roles",
                      sqlite3_column_int(st, 0), "default_role", rg_st_col(st, 1),
                      "updated_at", rg_st_col(st, 2));
        if (!o)
            rg_st_oom(err);
    } else if (rc == 0) {
        rg_error_set(err, RG_EIO, 500, "store_error", NULL, "environment row missing");
    }
    sqlite3_finalize(st);
    return o;
}

int rg_store_environment_get(rg_store *s, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = env_json(tx.db, err);
    rc = rg_st_end(&tx, o ? 0 : RG_EIO, err);
    return rg_st_finish(rc, o, out);
}

/* R14: every membership holding several roles keeps its highest-priority
 * one, by its organization's order. */
static int keep_highest_all(sqlite3 *db, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT m.id, m.organization_id, m.role_source FROM memberships m"
                                  " WHERE (SELECT count(*) FROM membership_roles mr"
                                  "  WHERE mr.membership_id = m.id) > 1"
                                  " ORDER BY m.organization_id, m.id", "");
    if (!st)
        return RG_EIO;
    /* read the rows first: the loop below writes to the same tables */
    typedef struct { char id[ST_ID], org[ST_ID], source[16]; } row;
    row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            row *nr = realloc(rows, cap * sizeof *nr);
            if (!nr) {
                rc = rg_st_oom(err);
                break;
            }
            rows = nr;
        }
        snprintf(rows[n].id, ST_ID, "%s", rg_st_col(st, 0));
        snprintf(rows[n].org, ST_ID, "%s", rg_st_col(st, 1));
        snprintf(rows[n].source, sizeof rows[n].source, "%s", rg_st_col(st, 2));
        n++;
    }
    sqlite3_finalize(st);
    rg_role_table *t = NULL;
    const char *t_org = NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!t_org || strcmp(t_org, rows[i].org)) {
            rg_role_table_free(t);
            t = NULL;
            /* ranks and the default only: no permissions or mappings */
            if ((rc = rg_st_table_load_order(db, rows[i].org, &t, err)))
                break;
            t_org = rows[i].org;
        }
        rg_slugs cur = {0}, keep = {0};
        if ((rc = rg_st_membership_roles(db, rows[i].id, &cur, err)))
            break;
        if (rg_core_roles_keep_highest(t, (const char *const *)cur.v, cur.n, &keep)) {
            rg_slugs_clear(&cur);
            rc = rg_st_oom(err);
            break;
        }
        rg_slugs_clear(&cur);
        rc = rg_st_membership_write(db, rows[i].id, rows[i].org,
                                    (const char *const *)keep.v, keep.n, rows[i].source, err);
        rg_slugs_clear(&keep);
        if (rc)
            break;
        json_t *m = rg_st_membership_json(db, rows[i].id, err);
        rc = m ? rg_st_event(db, "organization_membership.updated", m, err) : RG_EIO;
    }
    rg_role_table_free(t);
    free(rows);
    return rc;
}

static int env_update_tx(sqlite3 *db, int multiple_roles, const char *default_role,
                         json_t **out, rg_error *err)
{
    int64_t cur_mr = 0;
    char cur_def[ST_ID] = "";
    if (rg_st_int(db, err, &cur_mr, "SELECT multiple_roles FROM environment WHERE id = 1", "") != 1 ||
        rg_st_text(db, err, cur_def, sizeof cur_def,
                   "SELECT default_role_id FROM environment WHERE id = 1", "") != 1)
        return RG_EIO;
    int changed = 0;
    char ts[ST_TS];
    rg_st_now(ts);
    if (default_role) {
        st_role r;
        int f = rg_st_role_find(db, NULL, default_role, 1, 0, &r, err);
        if (f < 0)
            return f;
        if (f == 0)   /* R7: any environment role can be the default */
            return rg_error_set(err, RG_EINVAL, 422, "invalid_role", "default_role",
                                "no environment role '%.48s'", default_role);
        if (strcmp(r.id, cur_def)) {
            if (rg_st_exec(db, err, "UPDATE environment SET default_role_id = ? WHERE id = 1",
                           "s", r.id))
                return RG_EIO;
            changed = 1;
        }
    }
    if (multiple_roles >= 0 && (multiple_roles ? 1 : 0) != (int)cur_mr) {
        if (rg_st_exec(db, err, "UPDATE environment SET multiple_roles = ? WHERE id = 1", "i",
                       multiple_roles ? 1 : 0))
            return RG_EIO;
        changed = 1;
        if (!multiple_roles && keep_highest_all(db, err))   /* R14 */
            return RG_EIO;
    }
    if (changed) {
        if (rg_st_exec(db, err, "UPDATE environment SET updated_at = ? WHERE id = 1", "s", ts) ||
            rg_st_bump_env(db, err) ||
            rg_st_dsync_recompute_org(db, NULL, err))   /* R29: directory roles follow */
            return RG_EIO;
        json_t *ev = env_json(db, err);
        if (!ev || rg_st_event(db, "environment.updated", ev, err))
            return RG_EIO;
    }
    *out = env_json(db, err);
    return *out ? 0 : RG_EIO;
}

int rg_store_environment_update(rg_store *s, int multiple_roles, const char *default_role,
                                json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = env_update_tx(tx.db, multiple_roles, default_role, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* ---- permissions ------------------------------------------------------------ */

static json_t *perm_json(sqlite3 *db, const char *id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, slug, name, description, system, created_at,"
                                  " updated_at FROM permissions WHERE id = ?", "s", id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s}", "object", "permission", "id",
                      rg_st_col(st, 0), "slug", rg_st_col(st, 1), "name", rg_st_col(st, 2),
                      "description", rg_st_col(st, 3), "system", sqlite3_column_int(st, 4),
                      "created_at", rg_st_col(st, 5), "updated_at", rg_st_col(st, 6));
        if (!o)
            rg_st_oom(err);
    } else if (rc == 0) {
        rg_st_not_found(err, "id", "permission", id);
    }
    sqlite3_finalize(st);
    return o;
}

/* 1 found (id filled), 0 not, negative error */
static int perm_find(sqlite3 *db, const char *slug, char id[ST_ID], rg_error *err)
{
    return rg_st_text(db, err, id, ST_ID, "SELECT id FROM permissions WHERE slug = ?", "s",
                      slug ? slug : "");
}

static int perm_create_tx(sqlite3 *db, const char *slug, const char *name, const char *desc,
                          int system, json_t **out, rg_error *err)
{
    char id[ST_ID], ts[ST_TS];
    int rc = perm_find(db, slug, id, err);
    if (rc < 0)
        return rc;
    if (rc == 1)   /* R6 */
        return rg_error_set(err, RG_ECONFLICT, 409, "permission_slug_conflict", "slug",
                            "a permission with slug '%.48s' exists", slug);
    rg_id_new("perm", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO permissions(id, slug, name, description, system, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "ssssiss", id, slug, name, desc ? desc : "", system ? 1 : 0, ts, ts))
        return RG_EIO;
    json_t *o = perm_json(db, id, err);
    if (!o || rg_st_event(db, "permission.created", json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
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
        rc = rg_core_name_check(name, "name", err);
    if (!rc)
        rc = rg_core_description_check(description, "description", err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    json_t *o = NULL;
    rc = perm_create_tx(tx.db, slug, name, description, system, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_permission_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                             rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *l = NULL;
    rc = rg_st_list(tx.db, "permissions", "id", "", NULL, NULL, o, 1, perm_json, &l, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_permission_get(rg_store *s, const char *slug, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    char id[ST_ID];
    json_t *o = NULL;
    rc = perm_find(tx.db, slug, id, err);
    if (rc == 0)
        rc = rg_st_not_found(err, "slug", "permission", slug);
    else if (rc == 1)
        rc = (o = perm_json(tx.db, id, err)) ? 0 : RG_EIO;
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

static int perm_update_tx(sqlite3 *db, const char *slug, const char *name, const char *desc,
                          json_t **out, rg_error *err)
{
    char id[ST_ID], ts[ST_TS];
    int rc = perm_find(db, slug, id, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return rg_st_not_found(err, "slug", "permission", slug);
    json_t *before = perm_json(db, id, err);
    if (!before)
        return RG_EIO;
    int changed = (name && strcmp(name, json_string_value(json_object_get(before, "name")))) ||
                  (desc && strcmp(desc, json_string_value(json_object_get(before, "description"))));
    json_decref(before);
    if (changed) {
        rg_st_now(ts);
        if (rg_st_exec(db, err,
                       "UPDATE permissions SET name = coalesce(?, name),"
                       " description = coalesce(?, description), updated_at = ? WHERE id = ?",
                       "ssss", name, desc, ts, id))
            return RG_EIO;
    }
    json_t *o = perm_json(db, id, err);
    if (!o || (changed && rg_st_event(db, "permission.updated", json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_permission_update(rg_store *s, const char *slug, const char *name,
                               const char *description, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = 0;
    if (name)
        rc = rg_core_name_check(name, "name", err);
    if (!rc)
        rc = rg_core_description_check(description, "description", err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    json_t *o = NULL;
    rc = perm_update_tx(tx.db, slug, name, description, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* The ids of the roles (not yet gone) that hold a permission. */
static int roles_with_perm(sqlite3 *db, const char *perm_id, char (**ids)[ST_ID], size_t *n,
                           rg_error *err)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT role_id FROM role_permissions WHERE permission_id = ?"
                                  " ORDER BY role_id", "s", perm_id);
    if (!st)
        return RG_EIO;
    size_t cap = 0;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char (*ni)[ST_ID] = realloc(*ids, cap * sizeof *ni);
            if (!ni) {
                rc = rg_st_oom(err);
                break;
            }
            *ids = ni;
        }
        snprintf((*ids)[(*n)++], ST_ID, "%s", rg_st_col(st, 0));
    }
    sqlite3_finalize(st);
    if (rc < 0) {   /* a failed list is no list: the caller has nothing to free */
        free(*ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

static int perm_delete_tx(sqlite3 *db, const char *slug, rg_error *err)
{
    char id[ST_ID];
    int rc = perm_find(db, slug, id, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return rg_st_not_found(err, "slug", "permission", slug);
    json_t *before = perm_json(db, id, err);
    if (!before)
        return RG_EIO;
    if (json_is_true(json_object_get(before, "system"))) {
        json_decref(before);
        return rg_error_set(err, RG_ECONFLICT, 409, "system_permission_cannot_be_deleted",
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
            rc = RG_EIO;
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

int rg_store_permission_delete(rg_store *s, const char *slug, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    rc = perm_delete_tx(tx.db, slug, err);
    return rg_st_end(&tx, rc, err);
}

/* ---- roles ------------------------------------------------------------------ */

static const char *role_event(const char *org_id, const char *what)
{
    static const char *const names[2][3] = {
        { "role.created", "role.updated", "role.deleted" },
        { "organization_role.created", "organization_role.updated",
          "organization_role.deleted" },
    };
    int k = !strcmp(what, "created") ? 0 : !strcmp(what, "updated") ? 1 : 2;
    return names[org_id ? 1 : 0][k];
}

/* 404 for a scope naming no organization */
static int scope_check(sqlite3 *db, const char *org_id, rg_error *err)
{
    if (!org_id)
        return 0;
    int rc = rg_st_org_exists(db, org_id, err);
    if (rc < 0)
        return rc;
    return rc ? 0 : rg_st_not_found(err, "organization_id", "organization", org_id);
}

/* Any role anywhere with this slug (deleting ones too: the slug stays taken
 * until the job is done)? An organization role may not take an environment
 * slug (R4) and an environment role may not take a slug any organization
 * uses, so a slug names one role in every scope. */
static int slug_taken(sqlite3 *db, const char *org_id, const char *slug, rg_error *err)
{
    int64_t one;
    if (org_id)
        return rg_st_int(db, err, &one,
                         "SELECT 1 FROM roles WHERE slug = ? AND (organization_id IS NULL"
                         " OR organization_id = ?)", "ss", slug, org_id);
    return rg_st_int(db, err, &one, "SELECT 1 FROM roles WHERE slug = ?", "s", slug);
}

static int role_create_tx(sqlite3 *db, const char *org_id, const char *slug, const char *name,
                          const char *desc, json_t **out, rg_error *err)
{
    int rc = scope_check(db, org_id, err);
    if (rc)
        return rc;
    char id[ST_ID], gen[RG_SLUG_MAX + 1], ts[ST_TS];
    if (slug) {
        rg_id_new("role", id, sizeof id);
        if ((rc = slug_taken(db, org_id, slug, err)) < 0)
            return rc;
        if (rc == 1)   /* R6 */
            return org_id
                       ? rg_error_set(err, RG_ECONFLICT, 409, "organization_role_slug_conflict",
                                      "slug", "a role with slug '%.48s' exists", slug)
                       : rg_error_set(err, RG_ECONFLICT, 409, "role_slug_conflict", "slug",
                                      "a role with slug '%.48s' exists", slug);
    } else {
        /* R5: generated from the name and the id; a collision gets a new id */
        assert(org_id);
        for (int tries = 0;; tries++) {
            rg_id_new("role", id, sizeof id);
            if (rg_core_role_slug_generate(name, id, gen))
                return rg_error_set(err, RG_EIO, 500, "store_error", NULL,
                                    "cannot generate a slug");
            if ((rc = slug_taken(db, org_id, gen, err)) < 0)
                return rc;
            if (rc == 0)
                break;
            if (tries == 20)
                return rg_error_set(err, RG_ECONFLICT, 409, "organization_role_slug_conflict",
                                    "slug", "cannot generate a free slug");
        }
        slug = gen;
    }
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO roles(id, slug, name, description, organization_id, status,"
                   " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                   "sssssss", id, slug, name, desc ? desc : "", org_id, ts, ts))
        return RG_EIO;
    if (!org_id) {
        /* R8: bottom of the environment order; R10: and of every
         * independent organization's own order */
        if (rg_st_exec(db, err,
                       "INSERT INTO priorities(scope, role_id, position) VALUES ('', ?,"
                       " (SELECT coalesce(max(position), -1) + 1 FROM priorities WHERE scope = ''))",
                       "s", id) ||
            rg_st_exec(db, err,
                       "INSERT INTO priorities(scope, role_id, position) SELECT o.id, ?,"
                       " (SELECT coalesce(max(p.position), -1) + 1 FROM priorities p"
                       "  WHERE p.scope = o.id) FROM organizations o WHERE o.independent = 1",
                       "s", id) ||
            rg_st_bump_env(db, err))
            return RG_EIO;
    } else {
        /* R9: the first organization role makes it independent, then R8:
         * the new role at the bottom of its own order */
        if (rg_st_org_make_independent(db, org_id, err) ||
            rg_st_exec(db, err,
                       "INSERT INTO priorities(scope, role_id, position) VALUES (?, ?,"
                       " (SELECT coalesce(max(position), -1) + 1 FROM priorities WHERE scope = ?))",
                       "sss", org_id, id, org_id) ||
            rg_st_bump_org(db, org_id, err))
            return RG_EIO;
    }
    json_t *o = rg_st_role_json(db, id, err);
    if (!o || rg_st_event(db, role_event(org_id, "created"), json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_role_create(rg_store *s, const char *org_id, const char *slug,
                         const char *name, const char *description, json_t **out,
                         rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = 0;
    if (slug || !org_id)   /* R1, R3, R4 (an environment role needs a slug) */
        rc = rg_core_role_slug_check(slug ? slug : "", org_id ? RG_ROLE_ORG : RG_ROLE_ENV,
                                     "slug", err);
    if (!rc)
        rc = rg_core_name_check(name, "name", err);
    if (!rc)
        rc = rg_core_description_check(description, "description", err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    json_t *o = NULL;
    rc = role_create_tx(tx.db, org_id, slug, name, description, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* R8/R11: the roles of the scope in its table's order. A constant number of
 * queries whatever the number of roles: the order comes from the table
 * (without permissions or mappings), the objects from rg_st_roles_by_slug. */
static int role_list_tx(sqlite3 *db, const char *org_id, json_t **out, rg_error *err)
{
    int rc = scope_check(db, org_id, err);
    if (rc)
        return rc;
    rg_role_table *t = NULL;
    if ((rc = rg_st_table_load_order(db, org_id, &t, err)))
        return rc;
    json_t *by_slug = rg_st_roles_by_slug(db, org_id, err);
    if (!by_slug) {
        rg_role_table_free(t);
        return rg_st_rc(err);
    }
    json_t *data = json_array();
    for (size_t i = 0; rc == 0 && data && i < rg_role_table_count(t); i++) {
        json_t *o = json_object_get(by_slug, rg_role_table_slug_at(t, i));
        if (!o)
            rc = rg_error_set(err, RG_EIO, 500, "store_error", NULL,
                              "role vanished while listing");
        else if (json_array_append(data, o))
            rc = rg_st_oom(err);
    }
    rg_role_table_free(t);
    json_decref(by_slug);
    if (!data)
        return rg_st_oom(err);
    if (rc) {
        json_decref(data);
        return rc;
    }
    *out = rg_st_list_object(data, NULL, NULL);
    return *out ? 0 : rg_st_oom(err);
}

int rg_store_role_list(rg_store *s, const char *org_id, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = role_list_tx(tx.db, org_id, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_role_get(rg_store *s, const char *org_id, const char *slug, json_t **out,
                      rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    st_role r;
    if (!(rc = scope_check(tx.db, org_id, err))) {
        rc = rg_st_role_find(tx.db, org_id, slug, 0, 1, &r, err);
        if (rc == 0)
            rc = rg_st_not_found(err, "slug", "role", slug);
        else if (rc == 1)
            rc = (o = rg_st_role_json(tx.db, r.id, err)) ? 0 : RG_EIO;
    }
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* The scope's own active role, or 404. */
static int own_role(sqlite3 *db, const char *org_id, const char *slug, st_role *r,
                    rg_error *err)
{
    int rc = scope_check(db, org_id, err);
    if (rc)
        return rc;
    rc = rg_st_role_find(db, org_id, slug ? slug : "", 1, 0, r, err);
    if (rc < 0)
        return rc;
    return rc ? 0 : rg_st_not_found(err, "slug", "role", slug);
}

static int role_update_tx(sqlite3 *db, const char *org_id, const char *slug, const char *name,
                          const char *desc, json_t **out, rg_error *err)
{
    st_role r;
    int rc = own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    json_t *before = rg_st_role_json(db, r.id, err);
    if (!before)
        return RG_EIO;
    int changed = (name && strcmp(name, json_string_value(json_object_get(before, "name")))) ||
                  (desc && strcmp(desc, json_string_value(json_object_get(before, "description"))));
    json_decref(before);
    if (changed) {
        char ts[ST_TS];
        rg_st_now(ts);
        if (rg_st_exec(db, err,
                       "UPDATE roles SET name = coalesce(?, name), description ="
                       " coalesce(?, description), updated_at = ? WHERE id = ?",
                       "ssss", name, desc, ts, r.id))
            return RG_EIO;
    }
    json_t *o = rg_st_role_json(db, r.id, err);
    if (!o || (changed && rg_st_event(db, role_event(org_id, "updated"), json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_role_update(rg_store *s, const char *org_id, const char *slug,
                         const char *name, const char *description, json_t **out,
                         rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = 0;
    if (name)
        rc = rg_core_name_check(name, "name", err);
    if (!rc)
        rc = rg_core_description_check(description, "description", err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    json_t *o = NULL;
    rc = role_update_tx(tx.db, org_id, slug, name, description, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* ---- role permissions --------------------------------------------------------- */

enum { PERMS_SET, PERMS_ADD, PERMS_REMOVE };

static int role_perms_tx(sqlite3 *db, const char *org_id, const char *slug, int mode,
                         const char *const *perms, size_t n, json_t **out, rg_error *err)
{
    st_role r;
    int rc = own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    char (*ids)[ST_ID] = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return rg_st_oom(err);
    for (size_t i = 0; i < n; i++) {
        int f = perm_find(db, perms[i], ids[i], err);
        if (f <= 0) {
            free(ids);
            if (f < 0)
                return f;
            if (mode == PERMS_REMOVE)
                return rg_st_not_found(err, "permission", "permission", perms[i]);
            return rg_error_set(err, RG_EINVAL, 422, "invalid_permission", "permissions",
                                "no permission '%.48s'", perms[i]);
        }
    }
    json_t *before = rg_st_role_json(db, r.id, err);
    if (!before) {
        free(ids);
        return RG_EIO;
    }
    /* the resulting set, compared with the current one: same set = no-op */
    json_t *cur = json_object_get(before, "permissions");
    size_t nc = json_array_size(cur);
    const char **curv = calloc(nc ? nc : 1, sizeof *curv);
    const char **next = calloc(nc + n + 1, sizeof *next);
    size_t nn = 0;
    if (!curv || !next) {
        free(curv);
        free(next);
        free(ids);
        json_decref(before);
        return rg_st_oom(err);
    }
    for (size_t i = 0; i < nc; i++)
        curv[i] = json_string_value(json_array_get(cur, i));
    if (mode != PERMS_SET)
        for (size_t i = 0; i < nc; i++)
            if (mode == PERMS_ADD || strcmp(curv[i], perms[0]))
                next[nn++] = curv[i];
    if (mode != PERMS_REMOVE)
        for (size_t i = 0; i < n; i++)
            next[nn++] = perms[i];
    int held = 1;
    if (mode == PERMS_REMOVE) {
        held = nn < nc;
    }
    int same = rg_st_same_set(curv, nc, next, nn);
    free(curv);
    free(next);
    json_decref(before);
    if (!held) {
        free(ids);
        return rg_st_not_found(err, "permission", "permission", perms[0]);
    }
    if (!same) {
        char ts[ST_TS];
        rg_st_now(ts);
        if (mode == PERMS_SET)
            rc = rg_st_exec(db, err, "DELETE FROM role_permissions WHERE role_id = ?", "s", r.id);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = mode == PERMS_REMOVE
                     ? rg_st_exec(db, err,
                                  "DELETE FROM role_permissions WHERE role_id = ?"
                                  " AND permission_id = ?", "ss", r.id, ids[i])
                     : rg_st_exec(db, err,
                                  "INSERT OR IGNORE INTO role_permissions(role_id,"
                                  " permission_id) VALUES (?, ?)", "ss", r.id, ids[i]);
        if (rc == 0)
            rc = rg_st_exec(db, err, "UPDATE roles SET updated_at = ? WHERE id = ?", "ss", ts,
                            r.id);
        if (rc == 0)
            rc = org_id ? rg_st_bump_org(db, org_id, err) : rg_st_bump_env(db, err);
    }
    free(ids);
    if (rc)
        return rc;
    json_t *o = rg_st_role_json(db, r.id, err);
    if (!o || (!same && rg_st_event(db, role_event(org_id, "updated"), json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

static int role_perms(rg_store *s, const char *org_id, const char *slug, int mode,
                      const char *const *perms, size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (n && !perms)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "permissions",
                            "permissions missing");
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = role_perms_tx(tx.db, org_id, slug, mode, perms, n, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_role_permissions_set(rg_store *s, const char *org_id, const char *slug,
                                  const char *const *perms, size_t n, json_t **out,
                                  rg_error *err)
{
    return role_perms(s, org_id, slug, PERMS_SET, perms, n, out, err);
}

int rg_store_role_permissions_add(rg_store *s, const char *org_id, const char *slug,
                                  const char *const *perms, size_t n, json_t **out,
                                  rg_error *err)
{
    return role_perms(s, org_id, slug, PERMS_ADD, perms, n, out, err);
}

int rg_store_role_permission_remove(rg_store *s, const char *org_id, const char *slug,
                                    const char *perm, json_t **out, rg_error *err)
{
    const char *one[1] = { perm ? perm : "" };
    return role_perms(s, org_id, slug, PERMS_REMOVE, one, 1, out, err);
}

/* ---- role deletion (R7, R20, R21) ------------------------------------------------ */

static int role_delete_tx(sqlite3 *db, const char *org_id, const char *slug,
                          const char *replacement, json_t **out, rg_error *err)
{
    st_role r;
    int rc = own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    char env_def[ST_ID] = "";
    if (rg_st_text(db, err, env_def, sizeof env_def,
                   "SELECT default_role_id FROM environment WHERE id = 1", "") != 1)
        return RG_EIO;
    if (!strcmp(env_def, r.id))   /* R7 */
        return rg_error_set(err, RG_ECONFLICT, 409, "default_role_cannot_be_deleted", "slug",
                            "'%.48s' is the environment's default role", slug);
    /* R21: the organizations whose own default it is */
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT id FROM organizations WHERE independent = 1"
                                  " AND default_role_id = ? ORDER BY id", "s", r.id);
    if (!st)
        return RG_EIO;
    char (*orgs)[ST_ID] = NULL;
    size_t n = 0, cap = 0;
    char list[200] = "";
    size_t ll = 0;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char (*no)[ST_ID] = realloc(orgs, cap * sizeof *no);
            if (!no) {
                rc = rg_st_oom(err);
                break;
            }
            orgs = no;
        }
        snprintf(orgs[n], ST_ID, "%s", rg_st_col(st, 0));
        if (ll < sizeof list - 1)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s", n ? ", " : "", orgs[n]);
        n++;
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        free(orgs);
        return rc;
    }
    char ts[ST_TS];
    rg_st_now(ts);
    if (n && !replacement) {
        free(orgs);
        return rg_error_set(err, RG_ECONFLICT, 409, "replacement_default_required",
                            "replacement_default",
                            "'%.48s' is the default role of: %s", slug, list);
    }
    for (size_t i = 0; i < n; i++) {
        st_role rep;
        int f = rg_st_role_find(db, orgs[i], replacement, 0, 0, &rep, err);
        if (f < 0) {
            free(orgs);
            return f;
        }
        if (f == 0 || !strcmp(rep.id, r.id)) {
            rc = rg_error_set(err, RG_EINVAL, 422, "invalid_role", "replacement_default",
                              "'%.48s' is not a role of organization %s", replacement, orgs[i]);
            free(orgs);
            return rc;
        }
        /* R21: the replacement first */
        json_t *o = NULL;
        if (rg_st_exec(db, err,
                       "UPDATE organizations SET default_role_id = ?, updated_at = ? WHERE id = ?",
                       "sss", rep.id, ts, orgs[i]) ||
            rg_st_bump_org(db, orgs[i], err) || !(o = rg_st_org_json(db, orgs[i], err)) ||
            rg_st_event(db, "organization.updated", o, err)) {
            free(orgs);
            return RG_EIO;
        }
    }
    free(orgs);
    /* R20: gone from tables and lists at once; mappings to it removed; the
     * memberships are the job's */
    char job[ST_ID];
    rg_id_new("job", job, sizeof job);
    if (rg_st_exec(db, err, "UPDATE roles SET status = 'deleting', updated_at = ? WHERE id = ?",
                   "ss", ts, r.id) ||
        rg_st_exec(db, err, "DELETE FROM priorities WHERE role_id = ?", "s", r.id) ||
        rg_st_exec(db, err, "DELETE FROM role_mappings WHERE role_id = ?", "s", r.id) ||
        rg_st_exec(db, err,
                   "INSERT INTO jobs(id, kind, role_id, status, cursor, processed, created_at,"
                   " updated_at) VALUES (?, 'role_delete', ?, 'pending', '', 0, ?, ?)",
                   "ssss", job, r.id, ts, ts) ||
        (org_id ? rg_st_bump_org(db, org_id, err) : rg_st_bump_env(db, err)) ||
        rg_st_dsync_role_deleted(db, r.id, org_id, err))   /* R29 */
        return RG_EIO;
    json_t *o = rg_st_role_json(db, r.id, err);
    if (!o || rg_st_event(db, role_event(org_id, "deleted"), json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_role_delete(rg_store *s, const char *org_id, const char *slug,
                         const char *replacement_default, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = role_delete_tx(tx.db, org_id, slug, replacement_default, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* ---- priority order (R8, R9) ------------------------------------------------------ */

static int priority_tx(sqlite3 *db, const char *org_id, const char *const *slugs, size_t n,
                       json_t **out, rg_error *err)
{
    int rc = scope_check(db, org_id, err);
    if (rc)
        return rc;
    rg_role_table *t = NULL;
    if ((rc = rg_st_table_load_order(db, org_id, &t, err)))   /* ranks only */
        return rc;
    size_t count = rg_role_table_count(t);
    char *seen = calloc(count ? count : 1, 1);
    int same = n == count;
    if (!seen) {
        rg_role_table_free(t);
        return rg_st_oom(err);
    }
    if (n != count)
        rc = rg_error_set(err, RG_EINVAL, 422, "invalid_priority", "slugs",
                          "the order must name each of the %zu roles once (got %zu)", count, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        long k = slugs[i] ? rg_role_table_rank(t, slugs[i]) : -1;
        if (k < 0)
            rc = rg_error_set(err, RG_EINVAL, 422, "invalid_priority", "slugs",
                              "'%.48s' is not a role here", slugs[i] ? slugs[i] : "(null)");
        else if (seen[k]++)
            rc = rg_error_set(err, RG_EINVAL, 422, "invalid_priority", "slugs",
                              "'%.48s' is listed twice", slugs[i]);
        else if ((size_t)k != i)
            same = 0;
    }
    free(seen);
    rg_role_table_free(t);
    if (rc)
        return rc;
    int64_t independent = 1;
    if (org_id && rg_st_int(db, err, &independent,
                            "SELECT independent FROM organizations WHERE id = ?", "s",
                            org_id) != 1)
        return RG_EIO;
    int changed = !same || !independent;
    if (changed) {
        const char *scope = org_id ? org_id : "";
        /* R9: an organization's own order makes it independent */
        if ((org_id && rg_st_org_make_independent(db, org_id, err)) ||
            rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", scope))
            return RG_EIO;
        /* one statement for the whole order: position = index in slugs
         * (checked above: each visible active role exactly once) */
        json_t *ord = json_array();
        for (size_t i = 0; ord && i < n; i++)
            if (json_array_append_new(ord, json_string(slugs[i]))) {
                json_decref(ord);
                ord = NULL;
            }
        char *text = ord ? json_dumps(ord, JSON_COMPACT) : NULL;
        json_decref(ord);
        if (!text)
            return rg_st_oom(err);
        rc = rg_st_exec(db, err,
                        "INSERT INTO priorities(scope, role_id, position)"
                        " SELECT ?, r.id, j.key FROM json_each(?) j JOIN roles r"
                        " ON r.slug = j.value AND r.status = 'active'"
                        " AND (r.organization_id IS NULL OR r.organization_id = ?)",
                        "sss", scope, text, org_id);
        free(text);
        if (rc)
            return rc;
        if ((size_t)sqlite3_changes(db) != n)
            return rg_error_set(err, RG_EIO, 500, "store_error", NULL,
                                "the order names %zu roles, %d were stored", n,
                                sqlite3_changes(db));
        if (org_id) {
            char ts[ST_TS];
            rg_st_now(ts);
            if (rg_st_exec(db, err, "UPDATE organizations SET updated_at = ? WHERE id = ?",
                           "ss", ts, org_id) ||
                rg_st_bump_org(db, org_id, err))
                return RG_EIO;
        } else if (rg_st_bump_env(db, err)) {
            return RG_EIO;
        }
        if (rg_st_dsync_recompute_org(db, org_id, err))   /* R29 */
            return RG_EIO;
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, json_string(slugs[i]));
        json_t *ev = arr ? json_pack("{s:o?,s:o}", "organization_id",
                                     org_id ? json_string(org_id) : json_null(), "slugs", arr)
                         : NULL;
        if (!ev)
            return rg_st_oom(err);
        if (rg_st_event(db, "role_priority.updated", ev, err))
            return RG_EIO;
    }
    return role_list_tx(db, org_id, out, err);
}

int rg_store_priority_set(rg_store *s, const char *org_id, const char *const *slugs,
                          size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (n && !slugs)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_priority", "slugs", "slugs missing");
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = priority_tx(tx.db, org_id, slugs, n, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* ---- role tables ------------------------------------------------------------------- */

int rg_store_role_table(rg_store *s, const char *org_id, rg_role_table **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    rg_role_table *t = NULL;
    rc = rg_st_table_load(tx.db, org_id, &t, err);
    rc = rg_st_end(&tx, rc, err);
    if (rc == 0 && out)
        *out = t;
    else
        rg_role_table_free(t);
    return rc;
}

uint64_t rg_store_table_version(rg_store *s, const char *org_id)
{
    rg_error err;
    st_tx tx;
    if (rg_st_begin(s, &tx, 0, &err))
        return 0;
    uint64_t v = 0;
    rg_st_table_version(tx.db, org_id, &v, &err);
    rg_st_end(&tx, 0, &err);
    return v;
}
