/* membership_roles.c: the roles a membership holds (R11 order, R12, R13
 * never zero): reading them in the organization's priority order, replacing
 * them, and the one pass over many memberships that the passes of R14
 * (keep the highest role) and R20 (a deleted role's job) share: the rows
 * read first, each organization's order table loaded once per run of its
 * rows. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"

int rg_st_slug_push(rg_slugs *out, size_t *cap, const char *slug, rg_error *err)
{
    if (rg_grow(&out->v, out->n, cap, sizeof *out->v, 4) != 0 ||
        !(out->v[out->n] = strdup(slug)))
        return rg_st_oom(err);
    out->n++;
    return 0;
}

int rg_st_slugs_collect(st_db *db, st_stmt *st, rg_slugs *out, rg_error *err)
{
    int rc;
    size_t cap = out->n;
    while ((rc = rg_st_step(db, st, err)) == 1)
        if ((rc = rg_st_slug_push(out, &cap, rg_st_col(st, 0), err)))
            break;
    st_finalize(st);
    if (rc < 0) {
        rg_slugs_clear(out);
        return rc;
    }
    return 0;
}

int rg_st_membership_roles(st_db *db, const char *om_id, rg_slugs *out, rg_error *err)
{
    out->v = NULL;
    out->n = 0;
    /* R11 (ST_ROLE_ORDER_BY) */
    st_stmt *st = rg_st_prep(
        db, err,
        "SELECT r.slug FROM membership_roles mr JOIN roles r ON r.id = mr.role_id"
        " JOIN memberships m ON m.id = mr.membership_id" ST_ROLE_ORDER_JOIN
        " WHERE mr.membership_id = ?" ST_ROLE_ORDER_BY,
        "s", om_id);
    if (!st)
        return rg_st_rc(err);
    return rg_st_slugs_collect(db, st, out, err);
}

int rg_st_membership_write(st_db *db, const char *om_id, const char *org_id,
                           const char *const *slugs, size_t n, const char *source,
                           rg_error *err)
{
    assert(n >= 1);   /* R13: never zero roles */
    char ts[ST_TS];
    rg_st_now(ts);
    if (rg_st_exec_later(db, err, "DELETE FROM membership_roles WHERE membership_id = ?", "s",
                         om_id))
        return rg_st_rc(err);
    for (size_t i = 0; i < n; i++) {
        if (rg_st_exec(db, err,
                       "INSERT INTO membership_roles(membership_id, role_id)"
                       " SELECT ?, id FROM roles WHERE slug = ?"
                       " AND (organization_id IS NULL OR organization_id = ?)"
                       " ON CONFLICT DO NOTHING",
                       "sss", om_id, slugs[i], org_id))
            return rg_st_rc(err);
        if (st_changes(db) != 1) {
            int64_t held = 0;
            /* a duplicate is fine; a slug naming no role is a bug above */
            if (rg_st_int(db, err, &held,
                          "SELECT count(*) FROM membership_roles mr JOIN roles r"
                          " ON r.id = mr.role_id WHERE mr.membership_id = ? AND r.slug = ?",
                          "ss", om_id, slugs[i]) < 0)
                return rg_st_rc(err);
            if (!held)
                return rg_error_set(err, RG_EIO, "store_error", NULL,
                                    "role '%.48s' vanished while assigning it", slugs[i]);
        }
    }
    return rg_st_exec_later(db, err,
                      "UPDATE memberships SET role_source = ?, updated_at = ? WHERE id = ?",
                      "sss", source, ts, om_id);
}

int rg_st_same_set(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    /* small lists: quadratic is fine; duplicates count once */
    for (size_t i = 0; i < na; i++) {
        int found = 0;
        for (size_t j = 0; j < nb && !found; j++)
            found = !strcmp(a[i], b[j]);
        if (!found)
            return 0;
    }
    for (size_t j = 0; j < nb; j++) {
        int found = 0;
        for (size_t i = 0; i < na && !found; i++)
            found = !strcmp(a[i], b[j]);
        if (!found)
            return 0;
    }
    return 1;
}

/* ---- passes over many memberships ------------------------------------------ */

int rg_st_om_rows(st_db *db, st_stmt *st, size_t max, st_om_row **rows, size_t *n,
                  rg_error *err)
{
    *rows = NULL;
    *n = 0;
    size_t cap = 0;
    int rc = 0;
    while ((!max || *n < max) && (rc = rg_st_step(db, st, err)) == 1) {
        if (rg_grow(rows, *n, &cap, sizeof **rows, 64) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        st_om_row *r = &(*rows)[(*n)++];
        snprintf(r->id, sizeof r->id, "%s", rg_st_col(st, 0));
        snprintf(r->org, sizeof r->org, "%s", rg_st_col(st, 1));
        snprintf(r->source, sizeof r->source, "%s", rg_st_col(st, 2));
    }
    st_finalize(st);
    if (rc < 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

int rg_st_om_each(st_db *db, const st_om_row *rows, size_t n, st_om_fn fn, void *arg,
                  rg_error *err)
{
    rg_role_table *t = NULL;
    const char *t_org = NULL;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!t_org || strcmp(t_org, rows[i].org)) {
            rg_role_table_free(t);
            t = NULL;
            /* ranks and the default only: no permissions or mappings */
            if ((rc = rg_st_table_load_order(db, rows[i].org, &t, err)))
                break;
            t_org = rows[i].org;
        }
        rg_slugs cur = {0};
        if ((rc = rg_st_membership_roles(db, rows[i].id, &cur, err)))
            break;
        rc = fn(db, &rows[i], t, &cur, arg, err);
        rg_slugs_clear(&cur);
    }
    rg_role_table_free(t);
    return rc;
}
