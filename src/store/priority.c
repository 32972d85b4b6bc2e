/* priority.c: the priority orders (R8 the environment's, R9 an
 * organization's own makes it independent) and the role tables and table
 * versions the rest of rolegate reads (R11). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

static int priority_tx(st_db *db, const char *org_id, const char *const *slugs, size_t n,
                       json_t **out, rg_error *err)
{
    int rc = rg_st_scope_check(db, org_id, err);
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
        rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_priority", "slugs",
                          "the order must name each of the %zu roles once (got %zu)", count, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        long k = slugs[i] ? rg_role_table_rank(t, slugs[i]) : -1;
        if (k < 0)
            rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_priority", "slugs",
                              "'%.48s' is not a role here", slugs[i] ? slugs[i] : "(null)");
        else if (seen[k]++)
            rc = rg_error_set(err, RG_EUNPROCESSABLE, "invalid_priority", "slugs",
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
        return rg_st_rc(err);
    int changed = !same || !independent;
    if (changed) {
        const char *scope = org_id ? org_id : "";
        /* R9: an organization's own order makes it independent */
        if ((org_id && rg_st_org_make_independent(db, org_id, err)) ||
            rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", scope))
            return rg_st_rc(err);
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
        if ((size_t)st_changes(db) != n)
            return rg_error_set(err, RG_EIO, "store_error", NULL,
                                "the order names %zu roles, %ld were stored", n,
                                st_changes(db));
        if (org_id) {
            char ts[ST_TS];
            rg_st_now(ts);
            if (rg_st_exec(db, err, "UPDATE organizations SET updated_at = ? WHERE id = ?",
                           "ss", ts, org_id) ||
                rg_st_bump_org(db, org_id, err))
                return rg_st_rc(err);
        } else if (rg_st_bump_env(db, err)) {
            return rg_st_rc(err);
        }
        if (rg_st_dsync_recompute_org(db, org_id, err))   /* R29 */
            return rg_st_rc(err);
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, json_string(slugs[i]));
        json_t *ev = arr ? json_pack("{s:o?,s:o}", "organization_id",
                                     org_id ? json_string(org_id) : json_null(), "slugs", arr)
                         : NULL;
        if (!ev)
            return rg_st_oom(err);
        if (rg_st_event(db, "role_priority.updated", ev, err))
            return rg_st_rc(err);
    }
    return rg_st_role_list(db, org_id, out, err);
}

typedef struct priority_arg {
    const char *org_id;
    const char *const *slugs;
    size_t n;
} priority_arg;

static int priority_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const priority_arg *a = arg;
    return priority_tx(tx->db, a->org_id, a->slugs, a->n, out, err);
}

int rg_store_priority_set(rg_store *s, const char *org_id, const char *const *slugs,
                          size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (n && !slugs)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_priority", "slugs", "slugs missing");
    priority_arg a = { org_id, slugs, n };
    return rg_st_write(s, priority_fn, &a, out, err);
}

/* ---- role tables ------------------------------------------------------------------- */

typedef struct table_arg { const char *org_id; rg_role_table *t; uint64_t version; } table_arg;

static int table_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    table_arg *a = arg;
    rg_role_table_free(a->t);   /* a second run starts over */
    a->t = NULL;
    return rg_st_table_load(tx->db, a->org_id, &a->t, err);
}

int rg_store_role_table(rg_store *s, const char *org_id, rg_role_table **out, rg_error *err)
{
    if (out)
        *out = NULL;
    table_arg a = { org_id, NULL, 0 };
    int rc = rg_st_read(s, table_fn, &a, NULL, err);
    if (rc == 0 && out)
        *out = a.t;
    else
        rg_role_table_free(a.t);
    return rc;
}

static int version_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    table_arg *a = arg;
    rg_st_table_version(tx->db, a->org_id, &a->version, err);
    return 0;
}

uint64_t rg_store_table_version(rg_store *s, const char *org_id)
{
    rg_error err;
    table_arg a = { org_id, NULL, 0 };
    if (rg_st_read(s, version_fn, &a, NULL, &err))
        return 0;
    return a.version;
}
