/* dsync.c: directory users as a SCIM client writes them (R27-R30), in one
 * transaction each: the user linked by email (created when none), its
 * membership of the directory's organization (created when none), the
 * membership's roles recomputed from the groups' mappings (R28, R29),
 * active:false making the membership inactive and DELETE removing it (R30),
 * with their events (R26), and the R29 hooks (priority order, default,
 * role deletion). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "dsync_impl.h"

/* ---- R28: roles from groups --------------------------------------------------------- */

/* The slugs mapped from the groups of every directory user linked to
 * user_id in org's active directories. */
static int mapped_slugs(st_db *db, const char *user_id, const char *org, rg_slugs *out,
                        rg_error *err)
{
    memset(out, 0, sizeof *out);
    st_stmt *st = rg_st_prep(
        db, err,
        "SELECT DISTINCT r.slug FROM directory_users du"
        " JOIN directories d ON d.id = du.directory_id AND d.organization_id = ?"
        "  AND d.state = 'active'"
        " JOIN directory_group_members gm ON gm.user_id = du.id"
        " JOIN directory_role_mappings m ON m.group_id = gm.group_id"
        " JOIN roles r ON r.id = m.role_id AND r.status = 'active'"
        " WHERE du.user_id = ? ORDER BY r.slug", "ss", org, user_id);
    if (!st)
        return rg_st_rc(err);
    return rg_st_slugs_collect(db, st, out, err);
}

/* R28 over the table: single-role the highest mapped, multiple every mapped,
 * none the default (source "default"). */
static int roles_from(const rg_role_table *t, const rg_slugs *mapped, rg_slugs *out,
                      const char **source, rg_error *err)
{
    memset(out, 0, sizeof *out);
    /* only roles the table shows (a role of another scope cannot count) */
    const char **vis = calloc(mapped->n + 1, sizeof *vis);
    size_t nv = 0;
    if (!vis)
        return rg_st_oom(err);
    for (size_t i = 0; i < mapped->n; i++)
        if (rg_role_table_rank(t, mapped->v[i]) >= 0)
            vis[nv++] = mapped->v[i];
    int rc = 0;
    if (nv == 0) {
        *source = "default";
        out->v = calloc(1, sizeof *out->v);
        if (out->v && (out->v[0] = strdup(rg_role_table_default(t))))
            out->n = 1;
        else
            rc = rg_st_oom(err);
    } else {
        *source = "directory";
        rc = rg_role_table_multiple_roles(t) ? rg_core_roles_assign(t, vis, nv, out, err)
                                             : rg_core_roles_keep_highest(t, vis, nv, out);
        if (rc)
            rc = err && err->status ? rg_st_rc(err) : rg_st_oom(err);
    }
    free(vis);
    return rc;
}

/* The membership object of a membership just created (the shape of
 * rg_st_membership_json, built without reading it back). */
static json_t *created_json(const char *om, const char *user, const char *org,
                            const rg_slugs *roles, const char *source, const char *status,
                            const char *ts)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < roles->n; i++)
        json_array_append_new(arr, json_pack("{s:s}", "slug", roles->v[i]));
    return arr ? json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:o,s:s,s:s,s:s,s:s}", "object",
                           "organization_membership", "id", om, "user_id", user,
                           "organization_id", org, "role", "slug", roles->v[0], "roles", arr,
                           "role_source", source, "status", status, "created_at", ts,
                           "updated_at", ts)
               : NULL;
}

int rg_st_dsync_recompute(st_db *db, const rg_role_table *t, const char *org_id,
                          const char *du_id, rg_slugs *roles_out, rg_error *err)
{
    char user[ST_ID] = "";
    int64_t active = 0;
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT user_id, active FROM directory_users WHERE id = ?",
                                  "s", du_id);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1 && rg_st_col(st, 0)) {
        snprintf(user, sizeof user, "%s", rg_st_col(st, 0));
        active = st_col_int(st, 1);
    }
    st_finalize(st);
    if (rc <= 0 || !*user)
        return rc < 0 ? rc : 0;
    rg_slugs mapped, roles, cur = {0};
    if ((rc = mapped_slugs(db, user, org_id, &mapped, err)))
        return rc;
    const char *source = "default";
    rc = roles_from(t, &mapped, &roles, &source, err);
    rg_slugs_clear(&mapped);
    if (rc) {
        rg_slugs_clear(&roles);
        return rc;
    }
    const char *status = active ? "active" : "inactive";
    char om[ST_ID], cur_source[16] = "", cur_status[16] = "", ts[ST_TS];
    rg_st_now(ts);
    const char *event = NULL;
    rc = rg_st_dsync_membership_of(db, user, org_id, om, cur_source, cur_status, err);
    if (rc == 0) {
        /* R27: the membership an SSO login of this user uses, made now */
        rg_id_new("om", om, sizeof om);
        rc = rg_st_exec(db, err,
                        "INSERT INTO memberships(id, user_id, organization_id, role_source,"
                        " status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        "sssssss", om, user, org_id, source, status, ts, ts);
        for (size_t i = 0; !rc && i < roles.n; i++)
            rc = rg_st_exec(db, err,
                            "INSERT INTO membership_roles(membership_id, role_id)"
                            " SELECT ?, id FROM roles WHERE slug = ?"
                            " AND (organization_id IS NULL OR organization_id = ?)"
                            " ON CONFLICT DO NOTHING",
                            "sss", om, roles.v[i], org_id);
        json_t *m = rc ? NULL : created_json(om, user, org_id, &roles, source, status, ts);
        if (!rc && (!m || rg_st_event(db, "organization_membership.created", m, err)))
            rc = rg_st_rc(err);
    } else if (rc == 1) {
        rc = rg_st_membership_roles(db, om, &cur, err);
        if (!rc && (strcmp(cur_source, source) || strcmp(cur_status, status) ||
                    !rg_st_same_set((const char *const *)cur.v, cur.n,
                                    (const char *const *)roles.v, roles.n)))
            event = "organization_membership.updated";
        rg_slugs_clear(&cur);
    }
    if (!rc && event) {
        json_t *m = NULL;
        if (rg_st_membership_write(db, om, org_id, (const char *const *)roles.v, roles.n,
                                   source, err) ||
            rg_st_exec(db, err, "UPDATE memberships SET status = ? WHERE id = ?", "ss", status,
                       om) ||
            !(m = rg_st_membership_json(db, om, err)) || rg_st_event(db, event, m, err))
            rc = rg_st_rc(err);
    }
    if (roles_out && rc >= 0) {
        *roles_out = roles;
        memset(&roles, 0, sizeof roles);
    }
    rg_slugs_clear(&roles);
    return rc < 0 ? rc : 0;
}

int rg_st_dsync_recompute_org(st_db *db, const char *org_id, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT u.id, d.organization_id FROM directory_users u"
                                  " JOIN directories d ON d.id = u.directory_id"
                                  " WHERE (? IS NULL OR d.organization_id = ?)"
                                  " ORDER BY d.organization_id, u.id", "ss", org_id, org_id);
    if (!st)
        return rg_st_rc(err);
    char (*rows)[2][ST_ID] = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (rg_grow(&rows, n, &cap, sizeof *rows, 64) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        snprintf(rows[n][0], ST_ID, "%s", rg_st_col(st, 0));
        snprintf(rows[n][1], ST_ID, "%s", rg_st_col(st, 1));
        n++;
    }
    st_finalize(st);
    rc = rc < 0 ? rc : 0;
    rg_role_table *t = NULL;
    const char *t_org = NULL;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!t_org || strcmp(t_org, rows[i][1])) {
            rg_role_table_free(t);
            t = NULL;
            if ((rc = rg_st_table_load_order(db, rows[i][1], &t, err)))
                break;
            t_org = rows[i][1];
        }
        rc = rg_st_dsync_recompute(db, t, rows[i][1], rows[i][0], NULL, err);
    }
    rg_role_table_free(t);
    free(rows);
    return rc;
}

int rg_st_dsync_role_deleted(st_db *db, const char *role_id, const char *org_id,
                             rg_error *err)
{
    if (rg_st_exec(db, err, "DELETE FROM directory_role_mappings WHERE role_id = ?", "s",
                   role_id))
        return rg_st_rc(err);
    if (st_changes(db) == 0)
        return 0;   /* no directory mapped it: nobody's roles change */
    return rg_st_dsync_recompute_org(db, org_id, err);
}

/* ---- SCIM users -------------------------------------------------------------------- */

static void name_key(const char *s, char *out, size_t outsz)
{
    size_t i = 0;
    for (; s[i] && i + 1 < outsz; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

/* R27: the user of this email (else of a userName that is an email), or a
 * new one. */
static int link_user(st_db *db, const char *org, const rg_dsync_user *u, char user_id[ST_ID],
                     rg_error *err)
{
    const char *email = u->email && strchr(u->email, '@') ? u->email
                        : strchr(u->user_name, '@')      ? u->user_name
                                                         : NULL;
    if (email) {
        int rc = rg_st_text(db, err, user_id, ST_ID,
                            "SELECT id FROM users WHERE lower(email) = lower(?)"
                            " ORDER BY created_at, id LIMIT 1", "s", email);
        /* or who signed in through SSO of this organization with it as
         * NameID (an IdP that sends no email attribute) */
        if (rc == 0)
            rc = rg_st_text(db, err, user_id, ST_ID,
                            "SELECT i.user_id FROM connections c JOIN identities i"
                            " ON i.connection_id = c.id AND i.subject = ?"
                            " WHERE c.organization_id = ? LIMIT 1", "ss", email, org);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    if (rg_st_user_insert(db, email ? email : "", u->first_name, u->last_name, user_id, err))
        return rg_st_rc(err);
    return 0;
}

typedef struct du_row {
    char id[ST_ID], user_id[ST_ID];
    int active;
    json_t *resource;
} du_row;

static int du_load(st_db *db, const char *dir, const char *id, du_row *r, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, user_id, active, resource FROM directory_users"
                                  " WHERE id = ? AND directory_id = ?", "ss", id, dir);
    if (!st)
        return rg_st_rc(err);
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(r->id, ST_ID, "%s", rg_st_col(st, 0));
        snprintf(r->user_id, ST_ID, "%s", rg_st_col(st, 1) ? rg_st_col(st, 1) : "");
        r->active = st_col_int(st, 2);
        r->resource = json_loads(rg_st_col(st, 3), 0, NULL);
        if (!r->resource)
            rc = rg_st_oom(err);
    }
    st_finalize(st);
    if (rc == 0)
        return rg_st_not_found(err, "id", "User", id);
    return rc < 0 ? rc : 0;
}

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The directory user object of a user just created (the shape of
 * rg_st_dir_user_json: no groups yet). */
static json_t *created_user_json(const char *id, const char *dir, const char *org,
                                 const char *user_id, const rg_dsync_user *u,
                                 const rg_slugs *roles, const char *ts)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < roles->n; i++)
        json_array_append_new(arr, json_pack("{s:s}", "slug", roles->v[i]));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:s,s:o,s:o,s:[],s:o,s:s,s:s}",
                          "object", "directory_user", "id", id, "directory_id", dir,
                          "organization_id", org, "idp_id", opt_str(u->external_id),
                          "user_id", user_id, "email", opt_str(u->email), "first_name",
                          opt_str(u->first_name), "last_name", opt_str(u->last_name), "state",
                          u->active ? "active" : "inactive", "role",
                          roles->n ? json_pack("{s:s}", "slug", roles->v[0]) : json_null(),
                          "roles", arr ? arr : json_array(), "groups", "custom_attributes",
                          rg_st_dsync_custom_attributes(u->resource), "created_at", ts,
                          "updated_at", ts);
    return o;
}

static int user_write_tx(st_tx *tx, const char *dir, const char *org, const char *id,
                         rg_dsync_user_fn fn, void *ctx, rg_dsync_outcome *oc, char out_id[ST_ID],
                         json_t **view, rg_error *err)
{
    st_db *db = tx->db;
    du_row cur = {.resource = NULL};
    int rc = id ? du_load(db, dir, id, &cur, err) : 0;
    rg_dsync_user u;
    memset(&u, 0, sizeof u);
    if (!rc)
        rc = fn(ctx, cur.resource, &u, err);
    json_decref(cur.resource);
    char *res_text = NULL;
    if (!rc && (!u.resource || !u.user_name || !*u.user_name))
        rc = rg_error_set(err, RG_EINVAL, "invalidValue", "userName",
                          "userName is required");
    if (!rc && !(res_text = json_dumps(u.resource, JSON_COMPACT | JSON_SORT_KEYS)))
        rc = rg_st_oom(err);
    char key[512], ts[ST_TS];
    if (!rc) {
        name_key(u.user_name, key, sizeof key);
        int64_t one;
        rc = rg_st_int(db, err, &one, "SELECT 1 FROM directory_users WHERE directory_id = ?"
                       " AND user_name_key = ? AND id <> ?", "sss", dir, key, id ? id : "");
        if (rc == 1)
            rc = rg_error_set(err, RG_ECONFLICT, "uniqueness", "userName",
                              "userName is already taken in this directory");
    }
    rg_st_now(ts);
    char user_id[ST_ID];
    snprintf(user_id, sizeof user_id, "%s", cur.user_id);
    if (!rc && !*user_id)
        rc = link_user(db, org, &u, user_id, err);
    const char *event = "dsync.user.updated";
    if (!rc && !id) {
        rg_id_new("directory_user", out_id, ST_ID);
        event = "dsync.user.created";
        rc = rg_st_exec(db, err,
                        "INSERT INTO directory_users(id, directory_id, user_id, user_name,"
                        " user_name_key, external_id, email, first_name, last_name, active,"
                        " resource, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "sssssssssisss",
                        out_id, dir, user_id, u.user_name, key, u.external_id, u.email,
                        u.first_name, u.last_name, u.active ? 1 : 0, res_text, ts, ts);
    } else if (!rc) {
        snprintf(out_id, ST_ID, "%s", id);
        rc = rg_st_exec(db, err,
                        "UPDATE directory_users SET user_id = ?, user_name = ?,"
                        " user_name_key = ?, external_id = ?, email = ?, first_name = ?,"
                        " last_name = ?, active = ?, resource = ?, updated_at = ? WHERE id = ?",
                        "sssssssisss", user_id, u.user_name, key, u.external_id, u.email,
                        u.first_name, u.last_name, u.active ? 1 : 0, res_text, ts, id);
    }
    int was_active = id ? cur.active : 1;
    free(res_text);
    rg_role_table *t = NULL;
    rg_slugs roles = {0};
    json_t *ev = NULL;
    /* R28 ranks and assigns: the order table (no permissions or mappings),
     * loaded in this transaction, once for its one user */
    if (!rc)
        rc = rg_st_table_load_order(db, org, &t, err);
    if (!rc)
        rc = rg_st_dsync_recompute(db, t, org, out_id, &roles, err);   /* R28, R30 */
    rg_role_table_free(t);
    if (!rc && !id) {
        /* a new user: its object and view from what was just written */
        ev = created_user_json(out_id, dir, org, user_id, &u, &roles, ts);
        *view = ev ? json_pack("{s:s,s:O,s:s,s:s,s:[]}", "id", out_id, "resource", u.resource,
                               "created_at", ts, "updated_at", ts, "groups")
                   : NULL;
    } else if (!rc) {
        ev = rg_st_dir_user_json(db, out_id, err);
    }
    rg_slugs_clear(&roles);
    if (!rc && (!ev || (!id && !*view) || rg_st_event(db, event, ev, err)))
        rc = rg_st_rc(err);
    json_decref(u.resource);
    if (!rc && oc) {
        snprintf(oc->user_id, sizeof oc->user_id, "%s", user_id);
        snprintf(oc->org_id, sizeof oc->org_id, "%s", org);
        /* R30: sessions issued while it was active (or before it was
         * provisioned, through SSO) end now */
        oc->deprovisioned = !u.active && (was_active || !id);
    }
    return rc;
}

int rg_st_dsync_dir_org(st_db *db, const char *dir, char org[ST_ID], rg_error *err)
{
    int rc = rg_st_text(db, err, org, ST_ID,
                        "SELECT organization_id FROM directories WHERE id = ?"
                        " AND state = 'active'", "s", dir);
    if (rc == 0)
        return rg_st_not_found(err, "directory_id", "directory", dir);
    return rc < 0 ? rc : 0;
}

/* The arguments of a user write and delete. */
typedef struct du_arg {
    const char *dir, *id;
    rg_dsync_user_fn fn;
    void *ctx;
    rg_dsync_outcome *oc;
    int want_view;
} du_arg;

static int user_write_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const du_arg *a = arg;
    if (a->oc)   /* a second run starts over */
        memset(a->oc, 0, sizeof *a->oc);
    char org[ST_ID], new_id[ST_ID] = "";
    int rc = rg_st_dsync_dir_org(tx->db, a->dir, org, err);
    if (!rc)
        rc = user_write_tx(tx, a->dir, org, a->id, a->fn, a->ctx, a->oc, new_id, out, err);
    if (!rc && a->want_view && !*out &&
        !(*out = rg_st_dsync_user_view(tx->db, a->dir, new_id, err)))
        rc = rg_st_rc(err);
    return rc;
}

int rg_store_dsync_user_write(rg_store *s, const char *directory_id, const char *id,
                              rg_dsync_user_fn fn, void *ctx, rg_dsync_outcome *oc,
                              json_t **out, rg_error *err)
{
    if (oc)
        memset(oc, 0, sizeof *oc);
    du_arg a = { directory_id ? directory_id : "", id, fn, ctx, oc, out != NULL };
    int rc = rg_st_write(s, user_write_fn, &a, out, err);
    if (rc && oc)
        memset(oc, 0, sizeof *oc);
    return rc;
}

json_t *rg_st_dsync_user_view(st_db *db, const char *dir, const char *id, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, resource, created_at, updated_at FROM"
                                  " directory_users WHERE id = ? AND directory_id = ?", "ss",
                                  id, dir);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        json_t *r = json_loads(rg_st_col(st, 1), 0, NULL);
        o = json_pack("{s:s,s:o,s:s,s:s,s:[]}", "id", rg_st_col(st, 0), "resource",
                      r ? r : json_object(), "created_at", rg_st_col(st, 2), "updated_at",
                      rg_st_col(st, 3), "groups");
    }
    o = rg_st_row_object(st, rc, o, -1, "User", id, err);
    if (!o)
        return NULL;
    st = rg_st_prep(db, err,
                    "SELECT g.id, g.display_name FROM directory_group_members m"
                    " JOIN directory_groups g ON g.id = m.group_id WHERE m.user_id = ?"
                    " ORDER BY g.id", "s", id);
    json_t *groups = json_object_get(o, "groups");
    while (st && (rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(groups, json_pack("{s:s,s:s}", "value", rg_st_col(st, 0),
                                                "display", rg_st_col(st, 1)));
    st_finalize(st);
    if (!st || rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

typedef struct view_arg {
    const char *dir, *id;
    json_t *(*fn)(st_db *, const char *, const char *, rg_error *);
} view_arg;

static int view_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const view_arg *a = arg;
    *out = a->fn(tx->db, a->dir, a->id, err);
    return *out ? 0 : rg_st_rc(err);
}

int rg_st_dsync_view(rg_store *s, const char *dir,
                     json_t *(*fn)(st_db *, const char *, const char *, rg_error *),
                     const char *id, json_t **out, rg_error *err)
{
    view_arg a = { dir ? dir : "", id ? id : "", fn };
    return rg_st_read(s, view_fn, &a, out, err);
}

int rg_store_dsync_user_get(rg_store *s, const char *directory_id, const char *id,
                            json_t **out, rg_error *err)
{
    return rg_st_dsync_view(s, directory_id, rg_st_dsync_user_view, id, out, err);
}

static int user_delete_tx(st_db *db, const char *dir, const char *id, rg_dsync_outcome *oc,
                          rg_error *err)
{
    char org[ST_ID];
    int rc = rg_st_dsync_dir_org(db, dir, org, err);
    du_row cur = {.resource = NULL};
    if (!rc)
        rc = du_load(db, dir, id, &cur, err);
    json_decref(cur.resource);
    json_t *ev = rc ? NULL : rg_st_dir_user_json(db, id, err);
    if (!rc && !ev)
        rc = rg_st_rc(err);
    if (!rc)
        rc = rg_st_exec(db, err, "DELETE FROM directory_users WHERE id = ?", "s", id);
    if (!rc && *cur.user_id) {
        /* R30: deleted, the membership goes */
        char om[ST_ID], src[16], status[16];
        rc = rg_st_dsync_membership_of(db, cur.user_id, org, om, src, status, err);
        json_t *m = rc == 1 ? rg_st_membership_json(db, om, err) : NULL;
        if (rc == 1)
            rc = !m || rg_st_exec(db, err, "DELETE FROM memberships WHERE id = ?", "s", om) ||
                         rg_st_event(db, "organization_membership.deleted", m, err)
                     ? rg_st_rc(err)
                     : 0;
        snprintf(oc->user_id, sizeof oc->user_id, "%s", cur.user_id);
        snprintf(oc->org_id, sizeof oc->org_id, "%s", org);
        oc->deprovisioned = 1;
    }
    if (!rc)
        return rg_st_event(db, "dsync.user.deleted", ev, err);
    json_decref(ev);
    return rc;
}

static int user_delete_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const du_arg *a = arg;
    memset(a->oc, 0, sizeof *a->oc);   /* a second run starts over */
    return user_delete_tx(tx->db, a->dir, a->id, a->oc, err);
}

int rg_store_dsync_user_delete(rg_store *s, const char *directory_id, const char *id,
                               rg_dsync_outcome *oc, rg_error *err)
{
    rg_dsync_outcome local;
    if (!oc)
        oc = &local;
    memset(oc, 0, sizeof *oc);
    du_arg a = { directory_id ? directory_id : "", id ? id : "", NULL, NULL, oc, 0 };
    int rc = rg_st_write(s, user_delete_fn, &a, NULL, err);
    if (rc)
        memset(oc, 0, sizeof *oc);
    return rc;
}
