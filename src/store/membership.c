/* membership.c: organization memberships (R12 roles asked for, R13 the
 * default when none, R19 role_source): create, list (one page in a constant
 * number of queries), get, update and delete, each one transaction of the
 * runner with its event (R26). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

#define OM_COLS "id, user_id, organization_id, role_source, status, created_at, updated_at"

/* The membership object of one row of OM_COLS with no roles yet ("role"
 * null, "roles" []): om_add_role fills them. NULL when out of memory. */
static json_t *membership_row_json(st_stmt *st)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:n,s:[],s:s,s:s,s:s,s:s}", "object",
                     "organization_membership", "id", rg_st_col(st, 0), "user_id",
                     rg_st_col(st, 1), "organization_id", rg_st_col(st, 2), "role", "roles",
                     "role_source", rg_st_col(st, 3), "status", rg_st_col(st, 4),
                     "created_at", rg_st_col(st, 5), "updated_at", rg_st_col(st, 6));
}

/* Appends the next role (priority order); role: the highest-priority one,
 * i.e. the first (R8). */
static int om_add_role(json_t *o, const char *slug)
{
    json_t *roles = json_object_get(o, "roles");
    if (json_array_append_new(roles, json_pack("{s:s}", "slug", slug)))
        return -1;
    if (json_array_size(roles) == 1)
        return json_object_set_new(o, "role", json_pack("{s:s}", "slug", slug));
    return 0;
}

json_t *rg_st_membership_json(st_db *db, const char *om_id, rg_error *err)
{
    json_t *o = rg_st_object(db, "SELECT " OM_COLS " FROM memberships WHERE id = ?", om_id,
                             membership_row_json, -1, "organization_membership", err);
    if (!o)
        return NULL;
    rg_slugs roles = {0};
    if (rg_st_membership_roles(db, om_id, &roles, err)) {
        json_decref(o);
        return NULL;
    }
    for (size_t i = 0; i < roles.n; i++)
        if (om_add_role(o, roles.v[i])) {
            rg_slugs_clear(&roles);
            json_decref(o);
            rg_st_oom(err);
            return NULL;
        }
    rg_slugs_clear(&roles);
    return o;
}

/* st_batch_builder of the membership list: the rows in one query, every
 * role of every membership in a second one (ordered per membership as
 * rg_st_membership_roles orders them), instead of two queries per row. */
static json_t *memberships_json(st_db *db, const char (*ids)[ST_ID], size_t n,
                                rg_error *err)
{
    char *idtext = rg_st_ids_json(ids, n);
    json_t *by_id = json_object(), *arr = NULL;
    st_stmt *st = NULL;
    int rc = 0;
    if (!idtext || !by_id) {
        rg_st_oom(err);
        goto done;
    }
    st = rg_st_prep(db, err,
                    "SELECT " OM_COLS " FROM memberships"
                    " WHERE id IN (SELECT value FROM json_each(?))", "s", idtext);
    if (!st)
        goto done;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = membership_row_json(st);
        if (!o || json_object_set_new(by_id, rg_st_col(st, 0), o)) {
            rc = rg_st_oom(err);
            break;
        }
    }
    st_finalize(st);
    if (rc < 0)
        goto done;
    /* R11: the organization's order (its own when independent, else the
     * environment's); roles being deleted last -- as rg_st_membership_roles */
    st = rg_st_prep(db, err,
                    "SELECT mr.membership_id, r.slug FROM membership_roles mr"
                    " JOIN roles r ON r.id = mr.role_id"
                    " JOIN memberships m ON m.id = mr.membership_id"
                    " JOIN organizations o ON o.id = m.organization_id"
                    " LEFT JOIN priorities p ON p.role_id = r.id"
                    "  AND p.scope = CASE WHEN o.independent <> 0 THEN o.id ELSE '' END"
                    " WHERE mr.membership_id IN (SELECT value FROM json_each(?))"
                    " ORDER BY mr.membership_id, r.status <> 'active', p.position IS NULL,"
                    " p.position, r.slug", "s", idtext);
    if (!st)
        goto done;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = json_object_get(by_id, rg_st_col(st, 0));
        if (o && om_add_role(o, rg_st_col(st, 1))) {
            rc = rg_st_oom(err);
            break;
        }
    }
    st_finalize(st);
    if (rc < 0)
        goto done;
    if (!(arr = json_array())) {
        rg_st_oom(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object_get(by_id, ids[i]);
        if (!o) {   /* the page's ids come from the same snapshot */
            rg_st_not_found(err, "id", "organization_membership", ids[i]);
            json_decref(arr);
            arr = NULL;
            break;
        }
        if (json_array_append(arr, o)) {
            rg_st_oom(err);
            json_decref(arr);
            arr = NULL;
            break;
        }
    }
done:
    json_decref(by_id);
    free(idtext);
    return arr;
}

/* 1 + fills org (and source) if the membership exists, 0 if not. */
static int membership_row(st_db *db, const char *id, char org[ST_ID], char source[16],
                          rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT organization_id, role_source FROM memberships"
                                  " WHERE id = ?", "s", id);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(org, ST_ID, "%s", rg_st_col(st, 0));
        snprintf(source, 16, "%s", rg_st_col(st, 1));
    }
    st_finalize(st);
    return rc;
}

static int membership_create_tx(st_db *db, const char *user_id, const char *org_id,
                                const char *const *slugs, size_t n, json_t **out,
                                rg_error *err)
{
    json_t *u = rg_st_user_json(db, user_id, err);
    if (!u)
        return err && err->status == 404
                   ? rg_st_not_found(err, "user_id", "user", user_id)
                   : rg_st_rc(err);
    json_decref(u);
    int rc = rg_st_org_exists(db, org_id, err);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "organization_id", "organization", org_id);
    int64_t one;
    if ((rc = rg_st_int(db, err, &one,
                        "SELECT 1 FROM memberships WHERE user_id = ? AND organization_id = ?",
                        "ss", user_id, org_id)) < 0)
        return rc;
    if (rc == 1)
        return rg_error_set(err, RG_ECONFLICT, "organization_membership_already_exists",
                            "user_id", "the user is already a member of this organization");
    rg_role_table *t = NULL;
    /* R12/R19 need ranks and the default, not permissions or mappings */
    if ((rc = rg_st_table_load_order(db, org_id, &t, err)))
        return rc;
    rg_slugs roles = {0};
    const char *source = "api";
    if (slugs) {
        rc = rg_core_roles_assign(t, slugs, n, &roles, err);   /* R12, R19 */
    } else {
        /* no roles asked for: the organization's default (R13) */
        source = "default";
        roles.v = calloc(1, sizeof *roles.v);
        if (roles.v && (roles.v[0] = strdup(rg_role_table_default(t))))
            roles.n = 1;
        else
            rc = rg_st_oom(err);
    }
    rg_role_table_free(t);
    if (rc) {
        rg_slugs_clear(&roles);
        return rc;
    }
    char id[ST_ID], ts[ST_TS];
    rg_id_new("om", id, sizeof id);
    rg_st_now(ts);
    rc = rg_st_exec(db, err,
                    "INSERT INTO memberships(id, user_id, organization_id, role_source, status,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?)",
                    "ssssss", id, user_id, org_id, source, ts, ts);
    if (!rc)
        rc = rg_st_membership_write(db, id, org_id, (const char *const *)roles.v, roles.n,
                                    source, err);
    rg_slugs_clear(&roles);
    if (rc)
        return rc;
    return rg_st_answer(db, rg_st_membership_json(db, id, err),
                            "organization_membership.created", out, err);
}

/* The arguments of create (user_id, org_id) and update (id). */
typedef struct om_arg {
    const char *id, *user_id, *org_id;
    const char *const *slugs;
    size_t n;
} om_arg;

static int om_create_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const om_arg *a = arg;
    return membership_create_tx(tx->db, a->user_id, a->org_id, a->slugs, a->n, out, err);
}

int rg_store_membership_create(rg_store *s, const char *user_id, const char *org_id,
                               const char *const *role_slugs, size_t n, json_t **out,
                               rg_error *err)
{
    om_arg a = { NULL, user_id ? user_id : "", org_id ? org_id : "", role_slugs, n };
    return rg_st_write(s, om_create_fn, &a, out, err);
}

int rg_store_membership_list(rg_store *s, const char *user_id, const char *org_id,
                             const rg_store_list_opts *o, json_t **out, rg_error *err)
{
    const char *where = user_id && org_id ? "user_id = ? AND organization_id = ?"
                        : user_id          ? "user_id = ?"
                        : org_id           ? "organization_id = ?"
                                           : "";
    st_list_q q = { "memberships", "id", where, user_id ? user_id : org_id,
                    user_id ? org_id : NULL, o, 1, NULL, memberships_json };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_membership_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_membership_json, id, out, err);
}

static int membership_update_tx(st_db *db, const char *id, const char *const *slugs,
                                size_t n, json_t **out, rg_error *err)
{
    char org[ST_ID], source[16];
    int rc = membership_row(db, id, org, source, err);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "organization_membership", id);
    rg_role_table *t = NULL;
    if ((rc = rg_st_table_load_order(db, org, &t, err)))
        return rc;
    rg_slugs roles = {0}, cur = {0};
    rc = rg_core_roles_assign(t, slugs, n, &roles, err);   /* R12, R19 */
    rg_role_table_free(t);
    if (!rc)
        rc = rg_st_membership_roles(db, id, &cur, err);
    int same = !rc && !strcmp(source, "api") &&
               rg_st_same_set((const char *const *)cur.v, cur.n,
                              (const char *const *)roles.v, roles.n);
    if (!rc && !same)   /* R19: set through the API */
        rc = rg_st_membership_write(db, id, org, (const char *const *)roles.v, roles.n, "api",
                                    err);
    rg_slugs_clear(&roles);
    rg_slugs_clear(&cur);
    if (rc)
        return rc;
    return rg_st_answer(db, rg_st_membership_json(db, id, err),
                            !same ? "organization_membership.updated" : NULL, out, err);
}

static int om_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const om_arg *a = arg;
    return membership_update_tx(tx->db, a->id, a->slugs, a->n, out, err);
}

int rg_store_membership_update(rg_store *s, const char *id, const char *const *role_slugs,
                               size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!role_slugs && n)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "role_slugs",
                            "role_slugs missing");
    const char *none[1] = { NULL };
    om_arg a = { id ? id : "", NULL, NULL, role_slugs ? role_slugs : none, n };
    return rg_st_write(s, om_update_fn, &a, out, err);
}

static int om_delete_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const char *id = arg;
    json_t *before = rg_st_membership_json(tx->db, id, err);
    if (!before)
        return rg_st_rc(err);
    if (rg_st_exec(tx->db, err, "DELETE FROM memberships WHERE id = ?", "s", id)) {
        json_decref(before);
        return rg_st_rc(err);
    }
    return rg_st_event(tx->db, "organization_membership.deleted", before, err);
}

int rg_store_membership_delete(rg_store *s, const char *id, rg_error *err)
{
    return rg_st_write(s, om_delete_tx, (void *)(id ? id : ""), NULL, err);
}
