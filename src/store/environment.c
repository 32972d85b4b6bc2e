/* environment.c: the environment (R7 its default role, R12 and R14
 * multiple_roles): get and update, the update one transaction of the
 * runner; turning multiple_roles off keeps every membership's
 * highest-priority role (R14). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

static json_t *env_json(st_db *db, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT e.multiple_roles, r.slug, e.updated_at FROM environment e"
                                  " JOIN roles r ON r.id = e.default_role_id WHERE e.id = 1", "");
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        o = json_pack("{s:s,s:b,s:s,s:s}", "object", "environment", "multiple_roles",
                      st_col_int(st, 0), "default_role", rg_st_col(st, 1),
                      "updated_at", rg_st_col(st, 2));
        if (!o)
            rg_st_oom(err);
    } else if (rc == 0) {
        rg_error_set(err, RG_EIO, "store_error", NULL, "environment row missing");
    }
    st_finalize(st);
    return o;
}

static int env_get_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    *out = env_json(tx->db, err);
    return *out ? 0 : rg_st_rc(err);
}

int rg_store_environment_get(rg_store *s, json_t **out, rg_error *err)
{
    return rg_st_read(s, env_get_tx, NULL, out, err);
}

/* R14 for one membership: its highest-priority role alone. */
static int keep_highest_one(st_db *db, const st_om_row *row, const rg_role_table *t,
                            const rg_slugs *cur, void *arg, rg_error *err)
{
    rg_slugs keep = {0};
    if (rg_core_roles_keep_highest(t, (const char *const *)cur->v, cur->n, &keep))
        return rg_st_oom(err);
    int rc = rg_st_membership_write(db, row->id, row->org, (const char *const *)keep.v,
                                    keep.n, row->source, err);
    rg_slugs_clear(&keep);
    if (rc)
        return rc;
    json_t *m = rg_st_membership_json(db, row->id, err);
    return m ? rg_st_event(db, "organization_membership.updated", m, err) : rg_st_rc(err);
}

/* R14: every membership holding several roles keeps its highest-priority
 * one, by its organization's order. */
static int keep_highest_all(st_db *db, rg_error *err)
{
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT m.id, m.organization_id, m.role_source FROM memberships m"
                                  " WHERE (SELECT count(*) FROM membership_roles mr"
                                  "  WHERE mr.membership_id = m.id) > 1"
                                  " ORDER BY m.organization_id, m.id", "");
    if (!st)
        return rg_st_rc(err);
    /* read the rows first: the pass writes to the same tables */
    st_om_row *rows = NULL;
    size_t n = 0;
    int rc = rg_st_om_rows(db, st, 0, &rows, &n, err);
    if (!rc)
        rc = rg_st_om_each(db, rows, n, keep_highest_one, NULL, err);
    free(rows);
    return rc;
}

static int env_update_tx(st_db *db, int multiple_roles, const char *default_role,
                         json_t **out, rg_error *err)
{
    int64_t cur_mr = 0;
    char cur_def[ST_ID] = "";
    if (rg_st_int(db, err, &cur_mr, "SELECT multiple_roles FROM environment WHERE id = 1", "") != 1 ||
        rg_st_text(db, err, cur_def, sizeof cur_def,
                   "SELECT default_role_id FROM environment WHERE id = 1", "") != 1)
        return rg_st_rc(err);
    int changed = 0;
    char ts[ST_TS];
    rg_st_now(ts);
    if (default_role) {
        st_role r;
        int f = rg_st_role_find(db, NULL, default_role, 1, 0, &r, err);
        if (f < 0)
            return f;
        if (f == 0)   /* R7: any environment role can be the default */
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "default_role",
                                "no environment role '%.48s'", default_role);
        if (strcmp(r.id, cur_def)) {
            if (rg_st_exec(db, err, "UPDATE environment SET default_role_id = ? WHERE id = 1",
                           "s", r.id))
                return rg_st_rc(err);
            changed = 1;
        }
    }
    if (multiple_roles >= 0 && (multiple_roles ? 1 : 0) != (int)cur_mr) {
        if (rg_st_exec(db, err, "UPDATE environment SET multiple_roles = ? WHERE id = 1", "i",
                       multiple_roles ? 1 : 0))
            return rg_st_rc(err);
        changed = 1;
        if (!multiple_roles && keep_highest_all(db, err))   /* R14 */
            return rg_st_rc(err);
    }
    if (changed) {
        if (rg_st_exec(db, err, "UPDATE environment SET updated_at = ? WHERE id = 1", "s", ts) ||
            rg_st_bump_env(db, err) ||
            rg_st_dsync_recompute_org(db, NULL, err))   /* R29: directory roles follow */
            return rg_st_rc(err);
        json_t *ev = env_json(db, err);
        if (!ev || rg_st_event(db, "environment.updated", ev, err))
            return rg_st_rc(err);
    }
    *out = env_json(db, err);
    return *out ? 0 : rg_st_rc(err);
}

typedef struct env_arg { int multiple_roles; const char *default_role; } env_arg;

static int env_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const env_arg *a = arg;
    return env_update_tx(tx->db, a->multiple_roles, a->default_role, out, err);
}

int rg_store_environment_update(rg_store *s, int multiple_roles, const char *default_role,
                                json_t **out, rg_error *err)
{
    env_arg a = { multiple_roles, default_role };
    return rg_st_write(s, env_update_fn, &a, out, err);
}
