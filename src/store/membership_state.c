/* membership_state.c: the narrow read a session refresh needs (issue 13,
 * R25): of the membership of (user, organization), only its status and
 * the slugs of the roles it holds, in one statement inside one read
 * transaction, no JSON. The caller orders the slugs by the role table it
 * already has cached (R11) and drops the roles that table no longer shows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"

typedef struct state_arg {
    const char *user_id, *org_id;
    char *status;
    size_t status_len;
    rg_slugs *roles;
} state_arg;

static int state_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    state_arg *a = arg;
    (void)out;
    rg_slugs_clear(a->roles);   /* a retried transaction starts over */
    st_stmt *st = rg_st_prep(tx->db, err,
                                  "SELECT m.status, r.slug FROM memberships m"
                                  " LEFT JOIN membership_roles mr ON mr.membership_id = m.id"
                                  " LEFT JOIN roles r ON r.id = mr.role_id"
                                  " WHERE m.user_id = ? AND m.organization_id = ?",
                                  "ss", a->user_id, a->org_id);
    if (!st)
        return rg_st_rc(err);
    int rc, rows = 0;
    size_t cap = 0;
    while ((rc = rg_st_step(tx->db, st, err)) == 1) {
        if (rows++ == 0)
            snprintf(a->status, a->status_len, "%s", rg_st_col(st, 0) ? rg_st_col(st, 0) : "");
        const char *slug = rg_st_col(st, 1);
        if (!slug)
            continue;
        if (rg_grow(&a->roles->v, a->roles->n, &cap, sizeof *a->roles->v, 4) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        if (!(a->roles->v[a->roles->n] = strdup(slug))) {
            rc = rg_st_oom(err);
            break;
        }
        a->roles->n++;
    }
    st_finalize(st);
    if (rc < 0)
        return rc;
    return rows ? 0 : rg_st_not_found(err, "organization_membership_id",
                                      "organization_membership", a->user_id);
}

int rg_store_membership_state(rg_store *s, const char *user_id, const char *org_id,
                              char *status, size_t status_len, rg_slugs *roles, rg_error *err)
{
    roles->v = NULL;
    roles->n = 0;
    roles->pooled = 0;
    if (status_len)
        status[0] = 0;
    state_arg a = {user_id, org_id, status, status_len, roles};
    int rc = rg_st_read(s, state_tx, &a, NULL, err);
    if (rc)
        rg_slugs_clear(roles);
    return rc;
}
