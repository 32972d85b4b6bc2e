/* role_delete.c: deleting a role up to its queued job (R7 never the
 * environment's default, R20 gone from tables and lists at once, the
 * memberships moved by the job of jobs.c, R21 the organizations whose own
 * default it is get the replacement first), one transaction of the runner
 * with its events (R26). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

static int role_delete_tx(st_db *db, const char *org_id, const char *slug,
                          const char *replacement, json_t **out, rg_error *err)
{
    st_role r;
    int rc = rg_st_own_role(db, org_id, slug, &r, err);
    if (rc)
        return rc;
    char env_def[ST_ID] = "";
    if (rg_st_text(db, err, env_def, sizeof env_def,
                   "SELECT default_role_id FROM environment WHERE id = 1", "") != 1)
        return rg_st_rc(err);
    if (!strcmp(env_def, r.id))   /* R7 */
        return rg_error_set(err, RG_ECONFLICT, "default_role_cannot_be_deleted", "slug",
                            "'%.48s' is the environment's default role", slug);
    /* R21: the organizations whose own default it is */
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT id FROM organizations WHERE independent = 1"
                                  " AND default_role_id = ? ORDER BY id", "s", r.id);
    if (!st)
        return rg_st_rc(err);
    char (*orgs)[ST_ID] = NULL;
    size_t n = 0, cap = 0;
    char list[200] = "";
    size_t ll = 0;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (rg_grow(&orgs, n, &cap, sizeof *orgs, 8) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        snprintf(orgs[n], ST_ID, "%s", rg_st_col(st, 0));
        if (ll < sizeof list - 1)
            ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s", n ? ", " : "", orgs[n]);
        n++;
    }
    st_finalize(st);
    if (rc < 0) {
        free(orgs);
        return rc;
    }
    char ts[ST_TS];
    rg_st_now(ts);
    if (n && !replacement) {
        free(orgs);
        return rg_error_set(err, RG_ECONFLICT, "replacement_default_required",
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
            rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "replacement_default",
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
            return rg_st_rc(err);
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
        return rg_st_rc(err);
    return rg_st_answer(db, rg_st_role_json(db, r.id, err),
                            rg_st_role_event(org_id, "deleted"), out, err);
}

typedef struct delete_arg { const char *org_id, *slug, *replacement; } delete_arg;

static int role_delete_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const delete_arg *a = arg;
    return role_delete_tx(tx->db, a->org_id, a->slug, a->replacement, out, err);
}

int rg_store_role_delete(rg_store *s, const char *org_id, const char *slug,
                         const char *replacement_default, json_t **out, rg_error *err)
{
    delete_arg a = { org_id, slug, replacement_default };
    return rg_st_write(s, role_delete_fn, &a, out, err);
}
