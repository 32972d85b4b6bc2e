/* organization.c: organizations (R9 independence through default_role, R21
 * cascades): create, list, get, update, delete, and the lookup of the
 * organization that signs in with an email domain. Each public function is
 * one transaction of the runner that emits its events (R26). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

static json_t *org_row(st_stmt *st)
{
    json_t *domains = json_loads(rg_st_col(st, 2), 0, NULL);
    json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "object", "organization", "id",
                          rg_st_col(st, 0), "name", rg_st_col(st, 1), "domains",
                          domains ? domains : json_array());
    /* R9: an independent organization shows its own default */
    if (o && st_col_int(st, 3) && rg_st_col(st, 4))
        json_object_set_new(o, "default_role", json_string(rg_st_col(st, 4)));
    return o;
}

json_t *rg_st_org_json(st_db *db, const char *org_id, rg_error *err)
{
    return rg_st_object(db,
                        "SELECT o.id, o.name, o.domains, o.independent, r.slug,"
                        " o.created_at, o.updated_at FROM organizations o"
                        " LEFT JOIN roles r ON r.id = o.default_role_id WHERE o.id = ?",
                        org_id, org_row, 5, "organization", err);
}

typedef struct domain_arg { const char *domain; char *org_id; size_t n; } domain_arg;

static int by_domain_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const domain_arg *a = arg;
    st_db *db = tx->db;
    st_stmt *st = rg_st_prep(db, err,
                                  "SELECT DISTINCT o.id FROM organizations o, json_each(o.domains) d"
                                  " WHERE d.value = ? ORDER BY o.id LIMIT 2", "s", a->domain);
    int found = 0;
    int rc = st ? 0 : rg_st_rc(err);
    while (!rc && (rc = rg_st_step(db, st, err)) == 1) {
        if (found++ == 0)
            snprintf(a->org_id, a->n, "%s", rg_st_col(st, 0));
        rc = 0;
    }
    st_finalize(st);
    if (rc < 0)
        return rc;
    if (found == 0)
        return rg_error_set(err, RG_ENOTFOUND, "domain_unknown", "domain",
                            "no organization signs in with this domain");
    if (found > 1)
        return rg_error_set(err, RG_ECONFLICT, "domain_ambiguous", "domain",
                            "several organizations list this domain");
    return 0;
}

int rg_store_organization_by_domain(rg_store *s, const char *domain, char *org_id,
                                    size_t n, rg_error *err)
{
    char d[256];
    size_t l = domain ? strlen(domain) : 0;
    if (l == 0 || l >= sizeof d)
        return rg_error_set(err, RG_ENOTFOUND, "domain_unknown", "domain",
                            "no organization signs in with this domain");
    for (size_t i = 0; i <= l; i++)   /* stored lowercased */
        d[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
    domain_arg a = { d, org_id, n };
    return rg_st_read(s, by_domain_tx, &a, NULL, err);
}

/* Checks domains and writes them, lowercased and deduplicated, as a JSON
 * array text into *text (malloc'd). */
static int domains_text(const char *const *domains, size_t n, char **text, rg_error *err)
{
    json_t *arr = json_array();
    if (!arr)
        return rg_st_oom(err);
    for (size_t i = 0; i < n; i++) {
        const char *d = domains[i];
        size_t len = d ? strlen(d) : 0;
        char low[256];
        if (len == 0 || len > 253) {
            json_decref(arr);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "domains",
                                "a domain must be 1 to 253 characters");
        }
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)d[k];
            if (!isalnum(c) && c != '-' && c != '.') {
                json_decref(arr);
                return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", "domains",
                                    "'%.64s' is not a domain name", d);
            }
            low[k] = (char)tolower(c);
        }
        low[len] = 0;
        int dup = 0;
        for (size_t k = 0; k < json_array_size(arr) && !dup; k++)
            dup = !strcmp(json_string_value(json_array_get(arr, k)), low);
        if (!dup)
            json_array_append_new(arr, json_string(low));
    }
    *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return *text ? 0 : rg_st_oom(err);
}

/* The arguments of create and update (update: NULL leaves a field). */
typedef struct org_arg {
    const char *id, *name, *domains, *default_role;
} org_arg;

static int org_create_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const org_arg *a = arg;
    st_db *db = tx->db;
    char id[ST_ID], ts[ST_TS];
    rg_id_new("org", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO organizations(id, name, domains, independent, default_role_id,"
                   " version, created_at, updated_at) VALUES (?, ?, ?, 0, NULL, 1, ?, ?)",
                   "sssss", id, a->name, a->domains, ts, ts))
        return rg_st_rc(err);
    if (!(*out = rg_st_org_json(db, id, err)))
        return rg_st_rc(err);
    return rg_st_event(db, "organization.created", json_incref(*out), err);
}

int rg_store_organization_create(rg_store *s, const char *name,
                                 const char *const *domains, size_t n_domains,
                                 json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    char *dt = NULL;
    int rc = rg_st_label_check(name, "name", err);
    if (!rc)
        rc = domains_text(domains, n_domains, &dt, err);
    if (rc)
        return rc;
    org_arg a = { NULL, name, dt, NULL };
    rc = rg_st_write(s, org_create_tx, &a, out, err);
    free(dt);
    return rc;
}

int rg_store_organization_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                               rg_error *err)
{
    st_list_q q = { "organizations", "id", "", NULL, NULL, o, 1, rg_st_org_json, NULL };
    return rg_st_read_list(s, &q, out, err);
}

int rg_store_organization_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return rg_st_get(s, rg_st_org_json, id, out, err);
}

static int org_update_tx(st_db *db, const char *id, const char *name, const char *domains,
                         const char *default_role, json_t **out, rg_error *err)
{
    json_t *before = rg_st_org_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    int64_t independent = 0;
    char cur_def[ST_ID] = "";
    if (rg_st_int(db, err, &independent, "SELECT independent FROM organizations WHERE id = ?",
                  "s", id) != 1 ||
        rg_st_text(db, err, cur_def, sizeof cur_def,
                   "SELECT coalesce(default_role_id, '') FROM organizations WHERE id = ?", "s",
                   id) != 1) {
        json_decref(before);
        return rg_st_rc(err);
    }
    int changed = 0, rc = 0;
    char ts[ST_TS];
    rg_st_now(ts);
    if (name && strcmp(name, json_string_value(json_object_get(before, "name")))) {
        changed = 1;
        rc = rg_st_exec(db, err, "UPDATE organizations SET name = ? WHERE id = ?", "ss", name, id);
    }
    if (rc == 0 && domains) {
        json_t *nd = json_loads(domains, 0, NULL);
        if (!json_equal(nd, json_object_get(before, "domains"))) {
            changed = 1;
            rc = rg_st_exec(db, err, "UPDATE organizations SET domains = ? WHERE id = ?", "ss",
                            domains, id);
        }
        json_decref(nd);
    }
    json_decref(before);
    if (rc == 0 && default_role) {
        st_role r;
        int f = rg_st_role_find(db, id, default_role, 0, 0, &r, err);
        if (f < 0)
            return f;
        if (f == 0)
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "default_role",
                                "no role '%.48s' in this organization", default_role);
        if (!independent || strcmp(cur_def, r.id)) {
            /* R9: its own default makes it independent */
            changed = 1;
            if (rg_st_org_make_independent(db, id, err) ||
                rg_st_exec(db, err,
                           "UPDATE organizations SET default_role_id = ? WHERE id = ?", "ss",
                           r.id, id) ||
                rg_st_bump_org(db, id, err) ||
                rg_st_dsync_recompute_org(db, id, err))   /* R29 */
                return rg_st_rc(err);
        }
    }
    if (rc)
        return rc;
    if (changed &&
        rg_st_exec(db, err, "UPDATE organizations SET updated_at = ? WHERE id = ?", "ss", ts, id))
        return rg_st_rc(err);
    return rg_st_answer(db, rg_st_org_json(db, id, err),
                            changed ? "organization.updated" : NULL, out, err);
}

static int org_update_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const org_arg *a = arg;
    return org_update_tx(tx->db, a->id, a->name, a->domains, a->default_role, out, err);
}

int rg_store_organization_update(rg_store *s, const char *id, const char *name,
                                 const char *const *domains, long n_domains,
                                 const char *default_role, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    char *dt = NULL;
    int rc = 0;
    if (name)
        rc = rg_st_label_check(name, "name", err);
    if (!rc && n_domains >= 0)
        rc = domains_text(domains, (size_t)n_domains, &dt, err);
    if (rc)
        return rc;
    org_arg a = { id ? id : "", name, dt, default_role };
    rc = rg_st_write(s, org_update_fn, &a, out, err);
    free(dt);
    return rc;
}

static int org_delete_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const char *id = arg;
    st_db *db = tx->db;
    json_t *before = rg_st_org_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    /* what goes with it, each with its event, then the organization */
    if (rg_st_emit_each(db, "SELECT id FROM memberships WHERE organization_id = ? ORDER BY id",
                        id, rg_st_membership_json, "organization_membership.deleted", err) ||
        rg_st_emit_each(db, "SELECT id FROM connections WHERE organization_id = ? ORDER BY id",
                        id, rg_st_conn_public, "connection.deleted", err) ||
        rg_st_emit_each(db, "SELECT id FROM roles WHERE organization_id = ? AND status = 'active'"
                            " ORDER BY id", id, rg_st_role_json, "organization_role.deleted",
                        err) ||
        rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", id) ||
        /* jobs of its roles have nothing left to do */
        rg_st_exec(db, err,
                   "UPDATE jobs SET status = 'done' WHERE status = 'pending' AND role_id IN"
                   " (SELECT id FROM roles WHERE organization_id = ?)", "s", id) ||
        rg_st_exec(db, err, "DELETE FROM organizations WHERE id = ?", "s", id)) {
        json_decref(before);
        return rg_st_rc(err);
    }
    return rg_st_event(db, "organization.deleted", before, err);
}

int rg_store_organization_delete(rg_store *s, const char *id, rg_error *err)
{
    return rg_st_write(s, org_delete_tx, (void *)(id ? id : ""), NULL, err);
}
