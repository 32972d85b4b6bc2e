/* role.c: environment and organization roles (R1-R6 slugs, R8 a new role at
 * the bottom of the order, R9 the first organization role makes it
 * independent, R10, R11 lists in priority order): create, list, get,
 * update, and their permissions (set, add, remove). Each public function is
 * one transaction of the runner that emits its events (R26). Deletion is
 * role_delete.c's. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

const char *rg_st_role_event(const char *org_id, const char *what)
{
    static const char *const names[2][3] = {
        { "role.created", "role.updated", "role.deleted" },
        { "organization_role.created", "organization_role.updated",
          "organization_role.deleted" },
    };
    int k = !strcmp(what, "created") ? 0 : !strcmp(what, "updated") ? 1 : 2;
    return names[org_id ? 1 : 0][k];
}

int rg_st_scope_check(st_db *db, const char *org_id, rg_error *err)
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
static int slug_taken(st_db *db, const char *org_id, const char *slug, rg_error *err)
{
    int64_t one;
    if (org_id)
        return rg_st_int(db, err, &one,
                         "SELECT 1 FROM roles WHERE slug = ? AND (organization_id IS NULL"
                         " OR organization_id = ?)", "ss", slug, org_id);
    return rg_st_int(db, err, &one, "SELECT 1 FROM roles WHERE slug = ?", "s", slug);
}

static int role_create_tx(st_db *db, const char *org_id, const char *slug, const char *name,
                          const char *desc, json_t **out, rg_error *err)
{
    int rc = rg_st_scope_check(db, org_id, err);
    if (rc)
        return rc;
    char id[ST_ID], gen[RG_SLUG_MAX + 1], ts[ST_TS];
    if (slug) {
        rg_id_new("role", id, sizeof id);
        if ((rc = slug_taken(db, org_id, slug, err)) < 0)
            return rc;
        if (rc == 1)   /* R6 */
            return org_id
                       ? rg_error_set(err, RG_ECONFLICT, "organization_role_slug_conflict",
                                      "slug", "a role with slug '%.48s' exists", slug)
                       : rg_error_set(err, RG_ECONFLICT, "role_slug_conflict", "slug",
                                      "a role with slug '%.48s' exists", slug);
    } else {
        /* R5: generated from the name and the id; a collision gets a new id */
        assert(org_id);
        for (int tries = 0;; tries++) {
            rg_id_new("role", id, sizeof id);
            if (rg_core_role_slug_generate(name, id, gen))
                return rg_error_set(err, RG_EIO, "store_error", NULL,
                                    "cannot generate a slug");
            if ((rc = slug_taken(db, org_id, gen, err)) < 0)
                return rc;
            if (rc == 0)
                break;
            if (tries == 20)
                return rg_error_set(err, RG_ECONFLICT, "organization_role_slug_conflict",
                                    "slug", "cannot generate a free slug");
        }
        slug = gen;
    }
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO roles(id, slug, name, description, organization_id, status,"
                   " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                   "sssssss", id, slug, name, desc ? desc : "", org_id, ts, ts))
        return rg_st_rc(err);
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
            return rg_st_rc(err);
    } else {
        /* R9: the first organization role makes it independent, then R8:
         * the new role at the bottom of its own order */
        if (rg_st_org_make_independent(db, org_id, err) ||
            rg_st_exec(db, err,
                       "INSERT INTO priorities(scope, role_id, position) VALUES (?, ?,"
                       " (SELECT coalesce(max(position), -1) + 1 FROM priorities WHERE scope = ?))",
                       "sss", org_id, id, org_id) ||
            rg_st_bump_org(db, org_id, err))
            return rg_st_rc(err);
    }
    return rg_st_answer(db, rg_st_role_json(db, id, err),
                            rg_st_role_event(org_id, "created"), out, err);
}

/* The arguments of every role function: the scope (org_id NULL: the
 * environment) and the role's slug, then what each one needs. */
typedef struct role_arg {
    const char *org_id, *slug, *name, *desc;
    int mode;                      /* role permissions: PERMS_* */
    const char *const *perms;
    size_t n;
} role_arg;

static int role_create_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const role_arg *a = arg;
    return role_create_tx(tx->db, a->org_id, a->slug, a->name, a->desc, out, err);
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
        rc = rg_st_text_check(name, 1, description, err);
    if (rc)
        return rc;
    role_arg a = { org_id, slug, name, description, 0, NULL, 0 };
    return rg_st_write(s, role_create_fn, &a, out, err);
}

/* R8/R11: the roles of the scope in its table's order. A constant number of
 * queries whatever the number of roles: the order comes from the table
 * (without permissions or mappings), the objects from rg_st_roles_by_slug. */
int rg_st_role_list(st_db *db, const char *org_id, json_t **out, rg_error *err)
{
    int rc = rg_st_scope_check(db, org_id, err);
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
            rc = rg_error_set(err, RG_EIO, "store_error", NULL,
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

static int role_list_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    return rg_st_role_list(tx->db, arg, out, err);
}

int rg_store_role_list(rg_store *s, const char *org_id, json_t **out, rg_error *err)
{
    return rg_st_read(s, role_list_fn, (void *)org_id, out, err);
}

static int role_get_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const role_arg *a = arg;
    st_role r;
    int rc = rg_st_scope_check(tx->db, a->org_id, err);
    if (rc)
        return rc;
    rc = rg_st_role_find(tx->db, a->org_id, a->slug, 0, 1, &r, err);
    if (rc == 0)
        return rg_st_not_found(err, "slug", "role", a->slug);
    if (rc < 0)
        return rc;
    return (*out = rg_st_role_json(tx->db, r.id, err)) ? 0 : rg_st_rc(err);
}

int rg_store_role_get(rg_store *s, const char *org_id, const char *slug, json_t **out,
                      rg_error *err)
{
    role_arg a = { org_id, slug, NULL, NULL, 0, NULL, 0 };
    return rg_st_read(s, role_get_tx, &a, out, err);
}

int rg_st_own_role(st_db *db, const char *org_id, const char *slug, st_role *r,
                   rg_error *err)
{
    int rc = rg_st_scope_check(db, org_id, err);
    if (rc)
        return rc;
    rc = rg_st_role_find(db, org_id, slug ? slug : "", 1, 0, r, err);
    if (rc < 0)
        return rc;
    return rc ? 0 : rg_st_not_found(err, "slug", "role", slug);
}

static int role_update_tx(st_db *db, const char *org_id, const char *slug, const char *name,
                          const char *desc, json_t **out, rg_error *err)
{
    st_role r;
    int rc = rg_st_own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    json_t *before = rg_st_role_json(db, r.id, err);
    if (!before)
        return rg_st_rc(err);
    int changed = rg_st_text_changed(before, name, desc);
    json_decref(before);
    if (changed) {
        char ts[ST_TS];
        rg_st_now(ts);
        if (rg_st_exec(db, err,
                       "UPDATE roles SET name = coalesce(?, name), description ="
                       " coalesce(?, description), updated_at = ? WHERE id = ?",
                       "ssss", name, desc, ts, r.id))
            return rg_st_rc(err);
    }
    return rg_st_answer(db, rg_st_role_json(db, r.id, err),
                            changed ? rg_st_role_event(org_id, "updated") : NULL, out, err);
}

static int role_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const role_arg *a = arg;
    return role_update_tx(tx->db, a->org_id, a->slug, a->name, a->desc, out, err);
}

int rg_store_role_update(rg_store *s, const char *org_id, const char *slug,
                         const char *name, const char *description, json_t **out,
                         rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = rg_st_text_check(name, 0, description, err);
    if (rc)
        return rc;
    role_arg a = { org_id, slug, name, description, 0, NULL, 0 };
    return rg_st_write(s, role_update_fn, &a, out, err);
}

/* ---- role permissions --------------------------------------------------------- */

enum { PERMS_SET, PERMS_ADD, PERMS_REMOVE };

static int role_perms_tx(st_db *db, const char *org_id, const char *slug, int mode,
                         const char *const *perms, size_t n, json_t **out, rg_error *err)
{
    st_role r;
    int rc = rg_st_own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    char (*ids)[ST_ID] = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return rg_st_oom(err);
    for (size_t i = 0; i < n; i++) {
        int f = rg_st_perm_find(db, perms[i], ids[i], err);
        if (f <= 0) {
            free(ids);
            if (f < 0)
                return f;
            if (mode == PERMS_REMOVE)
                return rg_st_not_found(err, "permission", "permission", perms[i]);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_permission", "permissions",
                                "no permission '%.48s'", perms[i]);
        }
    }
    json_t *before = rg_st_role_json(db, r.id, err);
    if (!before) {
        free(ids);
        return rg_st_rc(err);
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
                                  "INSERT INTO role_permissions(role_id, permission_id)"
                                  " VALUES (?, ?) ON CONFLICT DO NOTHING", "ss", r.id,
                                  ids[i]);
        if (rc == 0)
            rc = rg_st_exec(db, err, "UPDATE roles SET updated_at = ? WHERE id = ?", "ss", ts,
                            r.id);
        if (rc == 0)
            rc = org_id ? rg_st_bump_org(db, org_id, err) : rg_st_bump_env(db, err);
    }
    free(ids);
    if (rc)
        return rc;
    return rg_st_answer(db, rg_st_role_json(db, r.id, err),
                            !same ? rg_st_role_event(org_id, "updated") : NULL, out, err);
}

static int role_perms_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const role_arg *a = arg;
    return role_perms_tx(tx->db, a->org_id, a->slug, a->mode, a->perms, a->n, out, err);
}

static int role_perms(rg_store *s, const char *org_id, const char *slug, int mode,
                      const char *const *perms, size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (n && !perms)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "permissions",
                            "permissions missing");
    role_arg a = { org_id, slug, NULL, NULL, mode, perms, n };
    return rg_st_write(s, role_perms_fn, &a, out, err);
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
