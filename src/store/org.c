/* org.c: organizations (R9 independence through default_role, R21 cascades),
 * users, organization memberships (R12, R13, R19) and connections with
 * their IdP group mappings (R15). Each public function is one transaction
 * that emits its events (R26). A connection's client_secret never leaves
 * the store except through rg_store_connection_private. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"
#include "dsync_impl.h"

/* ---- shared helpers ---------------------------------------------------------- */

/* A display name of an organization or a connection: 1..255 bytes, no
 * control characters. */
static int label_check(const char *s, const char *field, rg_error *err)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 255)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", field,
                            "%s must be 1 to 255 bytes", field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", field,
                                "%s has a control character", field);
    return 0;
}

/* One read transaction around fn(db, id) for the get functions. */
static int get_one(rg_store *s, const char *id, st_builder fn, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = fn(tx.db, id ? id : "", err);
    rc = rg_st_end(&tx, o ? 0 : rg_st_rc(err), err);
    return rg_st_finish(rc, o, out);
}

/* ---- organizations -------------------------------------------------------------- */

json_t *rg_st_org_json(sqlite3 *db, const char *org_id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT o.id, o.name, o.domains, o.independent, r.slug,"
                                  " o.created_at, o.updated_at FROM organizations o"
                                  " LEFT JOIN roles r ON r.id = o.default_role_id"
                                  " WHERE o.id = ?", "s", org_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        json_t *domains = json_loads(rg_st_col(st, 2), 0, NULL);
        o = json_pack("{s:s,s:s,s:s,s:o}", "object", "organization", "id", rg_st_col(st, 0),
                      "name", rg_st_col(st, 1), "domains", domains ? domains : json_array());
        /* R9: an independent organization shows its own default */
        if (o && sqlite3_column_int(st, 3) && rg_st_col(st, 4))
            json_object_set_new(o, "default_role", json_string(rg_st_col(st, 4)));
        if (o) {
            json_object_set_new(o, "created_at", json_string(rg_st_col(st, 5)));
            json_object_set_new(o, "updated_at", json_string(rg_st_col(st, 6)));
        } else {
            rg_st_oom(err);
        }
    } else if (rc == 0) {
        rg_st_not_found(err, "id", "organization", org_id);
    }
    sqlite3_finalize(st);
    return o;
}

int rg_store_organization_by_domain(rg_store *s, const char *domain, char *org_id,
                                    size_t n, rg_error *err)
{
    char d[256];
    size_t l = domain ? strlen(domain) : 0;
    if (l == 0 || l >= sizeof d)
        return rg_error_set(err, RG_ENOTFOUND, 404, "domain_unknown", "domain",
                            "no organization signs in with this domain");
    for (size_t i = 0; i <= l; i++)   /* stored lowercased */
        d[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = rg_st_prep(tx.db, err,
                                  "SELECT DISTINCT o.id FROM organizations o, json_each(o.domains) d"
                                  " WHERE d.value = ? ORDER BY o.id LIMIT 2", "s", d);
    int found = 0;
    rc = st ? 0 : RG_EIO;
    while (!rc && (rc = rg_st_step(tx.db, st, err)) == 1) {
        if (found++ == 0)
            snprintf(org_id, n, "%s", rg_st_col(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    if (rc >= 0) {
        rc = 0;
        if (found == 0)
            rc = rg_error_set(err, RG_ENOTFOUND, 404, "domain_unknown", "domain",
                              "no organization signs in with this domain");
        else if (found > 1)
            rc = rg_error_set(err, RG_ECONFLICT, 409, "domain_ambiguous", "domain",
                              "several organizations list this domain");
    }
    return rg_st_end(&tx, rc, err);
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
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "domains",
                                "a domain must be 1 to 253 characters");
        }
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)d[k];
            if (!isalnum(c) && c != '-' && c != '.') {
                json_decref(arr);
                return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "domains",
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

static int org_create_tx(sqlite3 *db, const char *name, const char *domains, json_t **out,
                         rg_error *err)
{
    char id[ST_ID], ts[ST_TS];
    rg_id_new("org", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO organizations(id, name, domains, independent, default_role_id,"
                   " version, created_at, updated_at) VALUES (?, ?, ?, 0, NULL, 1, ?, ?)",
                   "sssss", id, name, domains, ts, ts))
        return RG_EIO;
    json_t *o = rg_st_org_json(db, id, err);
    if (!o || rg_st_event(db, "organization.created", json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_organization_create(rg_store *s, const char *name,
                                 const char *const *domains, size_t n_domains,
                                 json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    char *dt = NULL;
    int rc = label_check(name, "name", err);
    if (!rc)
        rc = domains_text(domains, n_domains, &dt, err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err))) {
        free(dt);
        return rc;
    }
    json_t *o = NULL;
    rc = org_create_tx(tx.db, name, dt, &o, err);
    free(dt);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_organization_list(rg_store *s, const rg_store_list_opts *o, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *l = NULL;
    rc = rg_st_list(tx.db, "organizations", "id", "", NULL, NULL, o, 1, rg_st_org_json, &l,
                    err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_organization_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return get_one(s, id, rg_st_org_json, out, err);
}

static int org_update_tx(sqlite3 *db, const char *id, const char *name, const char *domains,
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
        return RG_EIO;
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
            return rg_error_set(err, RG_EINVAL, 422, "invalid_role", "default_role",
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
                return RG_EIO;
        }
    }
    if (rc)
        return rc;
    if (changed &&
        rg_st_exec(db, err, "UPDATE organizations SET updated_at = ? WHERE id = ?", "ss", ts, id))
        return RG_EIO;
    json_t *o = rg_st_org_json(db, id, err);
    if (!o || (changed && rg_st_event(db, "organization.updated", json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
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
        rc = label_check(name, "name", err);
    if (!rc && n_domains >= 0)
        rc = domains_text(domains, (size_t)n_domains, &dt, err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err))) {
        free(dt);
        return rc;
    }
    json_t *o = NULL;
    rc = org_update_tx(tx.db, id ? id : "", name, dt, default_role, &o, err);
    free(dt);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

/* Emits `event` with the object built by fn for every id that sql (one text
 * parameter) selects. */
static int emit_each(sqlite3 *db, const char *sql, const char *param, st_builder fn,
                     const char *event, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err, sql, "s", param);
    if (!st)
        return RG_EIO;
    int rc;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        char id[ST_ID];
        snprintf(id, sizeof id, "%s", rg_st_col(st, 0));
        json_t *o = fn(db, id, err);
        if (!o || rg_st_event(db, event, o, err)) {
            rc = RG_EIO;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

static json_t *conn_public(sqlite3 *db, const char *id, rg_error *err)
{
    return rg_st_connection_json(db, id, 0, err);
}

static int org_delete_tx(sqlite3 *db, const char *id, rg_error *err)
{
    json_t *before = rg_st_org_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    /* what goes with it, each with its event, then the organization */
    if (emit_each(db, "SELECT id FROM memberships WHERE organization_id = ? ORDER BY id", id,
                  rg_st_membership_json, "organization_membership.deleted", err) ||
        emit_each(db, "SELECT id FROM connections WHERE organization_id = ? ORDER BY id", id,
                  conn_public, "connection.deleted", err) ||
        emit_each(db, "SELECT id FROM roles WHERE organization_id = ? AND status = 'active'"
                      " ORDER BY id", id, rg_st_role_json, "organization_role.deleted", err) ||
        rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", id) ||
        /* jobs of its roles have nothing left to do */
        rg_st_exec(db, err,
                   "UPDATE jobs SET status = 'done' WHERE status = 'pending' AND role_id IN"
                   " (SELECT id FROM roles WHERE organization_id = ?)", "s", id) ||
        rg_st_exec(db, err, "DELETE FROM organizations WHERE id = ?", "s", id)) {
        json_decref(before);
        return RG_EIO;
    }
    return rg_st_event(db, "organization.deleted", before, err);
}

int rg_store_organization_delete(rg_store *s, const char *id, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    rc = org_delete_tx(tx.db, id ? id : "", err);
    return rg_st_end(&tx, rc, err);
}

/* ---- users ----------------------------------------------------------------------- */

json_t *rg_st_user_json(sqlite3 *db, const char *user_id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, email, first_name, last_name, created_at,"
                                  " updated_at FROM users WHERE id = ?", "s", user_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        const char *fn = rg_st_col(st, 2), *ln = rg_st_col(st, 3);
        o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:s,s:s}", "object", "user", "id",
                      rg_st_col(st, 0), "email", rg_st_col(st, 1), "first_name",
                      fn ? json_string(fn) : json_null(), "last_name",
                      ln ? json_string(ln) : json_null(), "created_at", rg_st_col(st, 4),
                      "updated_at", rg_st_col(st, 5));
        if (!o)
            rg_st_oom(err);
    } else if (rc == 0) {
        rg_st_not_found(err, "id", "user", user_id);
    }
    sqlite3_finalize(st);
    return o;
}

static int email_check(const char *email, rg_error *err)
{
    size_t n = email ? strlen(email) : 0;
    const char *at = email ? strchr(email, '@') : NULL;
    if (n == 0 || n > 254 || !at || at == email || !at[1])
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "email",
                            "email must be an address (name@domain, at most 254 bytes)");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)email[i] <= 0x20 || email[i] == 0x7f)
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "email",
                                "email has a space or control character");
    return 0;
}

static int optional_label(const char *s, const char *field, rg_error *err)
{
    return s ? label_check(s, field, err) : 0;
}

/* Inserts a user row and emits user.created. */
static int user_insert(sqlite3 *db, const char *email, const char *first, const char *last,
                       char id[ST_ID], rg_error *err)
{
    char ts[ST_TS];
    rg_id_new("user", id, ST_ID);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO users(id, email, first_name, last_name, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", "ssssss", id, email, first, last, ts, ts))
        return RG_EIO;
    json_t *o = rg_st_user_json(db, id, err);
    return o ? rg_st_event(db, "user.created", o, err) : RG_EIO;
}

int rg_store_user_create(rg_store *s, const char *email, const char *first_name,
                         const char *last_name, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = email_check(email, err);
    if (!rc)
        rc = optional_label(first_name, "first_name", err);
    if (!rc)
        rc = optional_label(last_name, "last_name", err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    char id[ST_ID];
    json_t *o = NULL;
    rc = user_insert(tx.db, email, first_name, last_name, id, err);
    if (!rc && !(o = rg_st_user_json(tx.db, id, err)))
        rc = RG_EIO;
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_user_list(rg_store *s, const char *email, const rg_store_list_opts *o,
                       json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *l = NULL;
    rc = rg_st_list(tx.db, "users", "id", email ? "email = ?" : "", email, NULL, o, 1,
                    rg_st_user_json, &l, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_user_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return get_one(s, id, rg_st_user_json, out, err);
}

static int user_delete_tx(sqlite3 *db, const char *id, rg_error *err)
{
    json_t *before = rg_st_user_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    if (emit_each(db, "SELECT id FROM memberships WHERE user_id = ? ORDER BY id", id,
                  rg_st_membership_json, "organization_membership.deleted", err) ||
        rg_st_exec(db, err, "DELETE FROM users WHERE id = ?", "s", id)) {
        json_decref(before);
        return RG_EIO;
    }
    return rg_st_event(db, "user.deleted", before, err);
}

int rg_store_user_delete(rg_store *s, const char *id, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    rc = user_delete_tx(tx.db, id ? id : "", err);
    return rg_st_end(&tx, rc, err);
}

/* ---- memberships ------------------------------------------------------------------- */

#define OM_COLS "id, user_id, organization_id, role_source, status, created_at, updated_at"

/* The membership object of one row of OM_COLS with no roles yet ("role"
 * null, "roles" []): om_add_role fills them. NULL when out of memory. */
static json_t *membership_row_json(sqlite3_stmt *st)
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

json_t *rg_st_membership_json(sqlite3 *db, const char *om_id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err, "SELECT " OM_COLS " FROM memberships WHERE id = ?",
                                  "s", om_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        if (!(o = membership_row_json(st)))
            rg_st_oom(err);
    } else if (rc == 0) {
        rg_st_not_found(err, "id", "organization_membership", om_id);
    }
    sqlite3_finalize(st);
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
static json_t *memberships_json(sqlite3 *db, const char (*ids)[ST_ID], size_t n,
                                rg_error *err)
{
    char *idtext = rg_st_ids_json(ids, n);
    json_t *by_id = json_object(), *arr = NULL;
    sqlite3_stmt *st = NULL;
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
    sqlite3_finalize(st);
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
                    "  AND p.scope = CASE WHEN o.independent THEN o.id ELSE '' END"
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
    sqlite3_finalize(st);
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
static int membership_row(sqlite3 *db, const char *id, char org[ST_ID], char source[16],
                          rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT organization_id, role_source FROM memberships"
                                  " WHERE id = ?", "s", id);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        snprintf(org, ST_ID, "%s", rg_st_col(st, 0));
        snprintf(source, 16, "%s", rg_st_col(st, 1));
    }
    sqlite3_finalize(st);
    return rc;
}

static int membership_create_tx(sqlite3 *db, const char *user_id, const char *org_id,
                                const char *const *slugs, size_t n, json_t **out,
                                rg_error *err)
{
    json_t *u = rg_st_user_json(db, user_id, err);
    if (!u)
        return err && err->status == 404
                   ? rg_st_not_found(err, "user_id", "user", user_id)
                   : RG_EIO;
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
        return rg_error_set(err, RG_ECONFLICT, 409, "organization_membership_already_exists",
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
    json_t *o = rg_st_membership_json(db, id, err);
    if (!o || rg_st_event(db, "organization_membership.created", json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_membership_create(rg_store *s, const char *user_id, const char *org_id,
                               const char *const *role_slugs, size_t n, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = membership_create_tx(tx.db, user_id ? user_id : "", org_id ? org_id : "", role_slugs,
                              n, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_membership_list(rg_store *s, const char *user_id, const char *org_id,
                             const rg_store_list_opts *o, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    const char *where = user_id && org_id ? "user_id = ? AND organization_id = ?"
                        : user_id          ? "user_id = ?"
                        : org_id           ? "organization_id = ?"
                                           : "";
    json_t *l = NULL;
    rc = rg_st_list_batch(tx.db, "memberships", "id", where, user_id ? user_id : org_id,
                          user_id ? org_id : NULL, o, 1, memberships_json, &l, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_membership_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return get_one(s, id, rg_st_membership_json, out, err);
}

static int membership_update_tx(sqlite3 *db, const char *id, const char *const *slugs,
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
    json_t *o = rg_st_membership_json(db, id, err);
    if (!o || (!same && rg_st_event(db, "organization_membership.updated", json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_membership_update(rg_store *s, const char *id, const char *const *role_slugs,
                               size_t n, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!role_slugs && n)
        return rg_error_set(err, RG_EINVAL, 422, "invalid_role", "role_slugs",
                            "role_slugs missing");
    const char *none[1] = { NULL };
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = membership_update_tx(tx.db, id ? id : "", role_slugs ? role_slugs : none, n, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

static int membership_delete_tx(sqlite3 *db, const char *id, rg_error *err)
{
    json_t *before = rg_st_membership_json(db, id, err);
    if (!before)
        return rg_st_rc(err);
    if (rg_st_exec(db, err, "DELETE FROM memberships WHERE id = ?", "s", id)) {
        json_decref(before);
        return RG_EIO;
    }
    return rg_st_event(db, "organization_membership.deleted", before, err);
}

int rg_store_membership_delete(rg_store *s, const char *id, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    rc = membership_delete_tx(tx.db, id ? id : "", err);
    return rg_st_end(&tx, rc, err);
}

/* ---- connections ------------------------------------------------------------------- */

static int reserved_key(const char *k)
{
    static const char *const keys[] = { "object", "id", "organization_id", "type", "name",
                                        "state", "created_at", "updated_at", "role_mappings" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

static int nonempty(const json_t *cfg, const char *k)
{
    const char *v = json_string_value(json_object_get(cfg, k));
    return v && *v;
}

/* "active" once the connection can log anyone in: SAML with IdP metadata,
 * OIDC with an issuer and a client id; "draft" before (issue 11 item 1). */
static const char *conn_state(const char *type, const json_t *cfg)
{
    int ok = strcmp(type, "saml") == 0 ? nonempty(cfg, "idp_metadata")
                                       : nonempty(cfg, "issuer") && nonempty(cfg, "client_id");
    return ok ? "active" : "draft";
}

json_t *rg_st_connection_json(sqlite3 *db, const char *conn_id, int with_secret,
                              rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT id, organization_id, type, name, config, created_at,"
                                  " updated_at FROM connections WHERE id = ?", "s", conn_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        json_t *cfg = json_loads(rg_st_col(st, 4), 0, NULL);
        o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "object", "connection", "id",
                      rg_st_col(st, 0), "organization_id", rg_st_col(st, 1), "type",
                      rg_st_col(st, 2), "name", rg_st_col(st, 3), "state",
                      conn_state(rg_st_col(st, 2), cfg));
        const char *k;
        json_t *v;
        if (o && json_is_object(cfg))
            json_object_foreach(cfg, k, v) {
                if (reserved_key(k) || (!with_secret && !strcmp(k, "client_secret")))
                    continue;
                json_object_set(o, k, v);
            }
        json_decref(cfg);
        if (o) {
            json_object_set_new(o, "created_at", json_string(rg_st_col(st, 5)));
            json_object_set_new(o, "updated_at", json_string(rg_st_col(st, 6)));
        } else {
            rg_st_oom(err);
        }
    } else if (rc == 0) {
        rg_st_not_found(err, "id", "connection", conn_id);
    }
    sqlite3_finalize(st);
    return o;
}

/* The config without the reserved members, as JSON text (malloc'd). */
static int config_text(const json_t *config, char **text, rg_error *err)
{
    if (config && !json_is_object(config))
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "config",
                            "the connection settings must be a JSON object");
    json_t *c = json_object();
    const char *k;
    json_t *v;
    if (c && config)
        json_object_foreach((json_t *)config, k, v) {
            if (!reserved_key(k) && !json_is_null(v))
                json_object_set(c, k, v);
        }
    *text = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(c);
    return *text ? 0 : rg_st_oom(err);
}

static int conn_create_tx(sqlite3 *db, const char *org_id, const char *type, const char *name,
                          const char *cfg, json_t **out, rg_error *err)
{
    int rc = rg_st_org_exists(db, org_id, err);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "organization_id", "organization", org_id);
    char id[ST_ID], ts[ST_TS];
    rg_id_new("conn", id, sizeof id);
    rg_st_now(ts);
    if (rg_st_exec(db, err,
                   "INSERT INTO connections(id, organization_id, type, name, config, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "sssssss", id, org_id, type, name, cfg, ts, ts))
        return RG_EIO;
    json_t *o = conn_public(db, id, err);
    if (!o || rg_st_event(db, "connection.created", json_incref(o), err)) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_connection_create(rg_store *s, const char *org_id, const char *type,
                               const char *name, const json_t *config, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    if (!type || (strcmp(type, "saml") && strcmp(type, "oidc")))
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "type",
                            "type must be \"saml\" or \"oidc\"");
    char *cfg = NULL;
    int rc = label_check(name, "name", err);
    if (!rc)
        rc = config_text(config, &cfg, err);
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err))) {
        free(cfg);
        return rc;
    }
    json_t *o = NULL;
    rc = conn_create_tx(tx.db, org_id ? org_id : "", type, name, cfg, &o, err);
    free(cfg);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

int rg_store_connection_list(rg_store *s, const char *org_id, const rg_store_list_opts *o,
                             json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *l = NULL;
    rc = rg_st_list(tx.db, "connections", "id", org_id ? "organization_id = ?" : "", org_id,
                    NULL, o, 1, conn_public, &l, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, l, out);
}

int rg_store_connection_get(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return get_one(s, id, conn_public, out, err);
}

static json_t *conn_private(sqlite3 *db, const char *id, rg_error *err)
{
    return rg_st_connection_json(db, id, 1, err);
}

int rg_store_connection_private(rg_store *s, const char *id, json_t **out, rg_error *err)
{
    return get_one(s, id, conn_private, out, err);
}

static int conn_update_tx(sqlite3 *db, const char *id, const char *name,
                          const json_t *patch, json_t **out, rg_error *err)
{
    char cur_name[512] = "";
    int rc = rg_st_text(db, err, cur_name, sizeof cur_name,
                        "SELECT name FROM connections WHERE id = ?", "s", id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", id);
    sqlite3_stmt *st = rg_st_prep(db, err, "SELECT config FROM connections WHERE id = ?", "s",
                                  id);
    if (!st)
        return RG_EIO;
    json_t *cfg = NULL;
    if (rg_st_step(db, st, err) == 1)
        cfg = json_loads(rg_st_col(st, 0), 0, NULL);
    sqlite3_finalize(st);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        cfg = json_object();
    }
    json_t *next = json_deep_copy(cfg);
    const char *k;
    json_t *v;
    if (next && patch)
        json_object_foreach((json_t *)patch, k, v) {
            if (reserved_key(k))
                continue;
            if (json_is_null(v))
                json_object_del(next, k);
            else
                json_object_set(next, k, v);
        }
    int changed = (name && strcmp(name, cur_name)) || !json_equal(cfg, next);
    json_decref(cfg);
    char *text = NULL;
    rc = next ? config_text(next, &text, err) : rg_st_oom(err);
    json_decref(next);
    if (rc)
        return rc;
    if (changed) {
        char ts[ST_TS];
        rg_st_now(ts);
        rc = rg_st_exec(db, err,
                        "UPDATE connections SET name = coalesce(?, name), config = ?,"
                        " updated_at = ? WHERE id = ?", "ssss", name, text, ts, id);
    }
    free(text);
    if (rc)
        return rc;
    json_t *o = conn_public(db, id, err);
    if (!o || (changed && rg_st_event(db, "connection.updated", json_incref(o), err))) {
        json_decref(o);
        return RG_EIO;
    }
    *out = o;
    return 0;
}

int rg_store_connection_update(rg_store *s, const char *id, const char *name,
                               const json_t *config_patch, json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    int rc = 0;
    if (name)
        rc = label_check(name, "name", err);
    if (!rc && config_patch && !json_is_object(config_patch))
        rc = rg_error_set(err, RG_EINVAL, 422, "invalid_request", "config",
                          "the connection settings must be a JSON object");
    if (rc)
        return rc;
    st_tx tx;
    if ((rc = rg_st_begin(s, &tx, 1, err)))
        return rc;
    json_t *o = NULL;
    rc = conn_update_tx(tx.db, id ? id : "", name, config_patch, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

static int conn_delete_tx(sqlite3 *db, const char *id, rg_error *err)
{
    json_t *before = conn_public(db, id, err);
    if (!before)
        return rg_st_rc(err);
    const char *org = json_string_value(json_object_get(before, "organization_id"));
    if (rg_st_bump_org(db, org, err) ||   /* its mappings leave the table */
        rg_st_exec(db, err, "DELETE FROM connections WHERE id = ?", "s", id)) {
        json_decref(before);
        return RG_EIO;
    }
    return rg_st_event(db, "connection.deleted", before, err);
}

int rg_store_connection_delete(rg_store *s, const char *id, rg_error *err)
{
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    rc = conn_delete_tx(tx.db, id ? id : "", err);
    return rg_st_end(&tx, rc, err);
}

/* ---- role mappings (R15) ------------------------------------------------------------ */

/* The connection's mappings as a JSON array of {"object","idp_group",
 * "role_slug"}, sorted. */
static json_t *mappings_array(sqlite3 *db, const char *conn_id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT m.idp_group, r.slug FROM role_mappings m"
                                  " JOIN roles r ON r.id = m.role_id"
                                  " WHERE m.connection_id = ? AND r.status = 'active'"
                                  " ORDER BY m.idp_group, r.slug", "s", conn_id);
    if (!st)
        return NULL;
    json_t *arr = json_array();
    int rc = 0;
    while (arr && (rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "object", "role_mapping",
                                             "idp_group", rg_st_col(st, 0), "role_slug",
                                             rg_st_col(st, 1)));
    sqlite3_finalize(st);
    if (!arr)
        rg_st_oom(err);
    else if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int mappings_get_tx(sqlite3 *db, const char *conn_id, json_t **out, rg_error *err)
{
    int64_t one;
    int rc = rg_st_int(db, err, &one, "SELECT 1 FROM connections WHERE id = ?", "s", conn_id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", conn_id);
    json_t *arr = mappings_array(db, conn_id, err);
    if (!arr)
        return RG_EIO;
    *out = rg_st_list_object(arr, NULL, NULL);
    return *out ? 0 : rg_st_oom(err);
}

int rg_store_role_mappings_get(rg_store *s, const char *conn_id, json_t **out,
                               rg_error *err)
{
    if (out)
        *out = NULL;
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 0, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = mappings_get_tx(tx.db, conn_id ? conn_id : "", &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}

static int mappings_set_tx(sqlite3 *db, const char *conn_id, const json_t *mappings,
                           json_t **out, rg_error *err)
{
    char org[ST_ID];
    int rc = rg_st_text(db, err, org, sizeof org,
                        "SELECT organization_id FROM connections WHERE id = ?", "s", conn_id);
    if (rc <= 0)
        return rc < 0 ? rc : rg_st_not_found(err, "id", "connection", conn_id);
    size_t n = json_array_size(mappings);
    char (*ids)[ST_ID] = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return rg_st_oom(err);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(mappings, i);
        const char *g = json_string_value(json_object_get(m, "idp_group"));
        const char *slug = json_string_value(json_object_get(m, "role_slug"));
        char field[64];
        if (!json_is_object(m) || !g || !*g || !slug) {
            snprintf(field, sizeof field, "role_mappings[%zu]", i);
            free(ids);
            return rg_error_set(err, RG_EINVAL, 422, "invalid_request", field,
                                "a mapping is {\"idp_group\": string, \"role_slug\": string}");
        }
        st_role r;
        int f = rg_st_role_find(db, org, slug, 0, 0, &r, err);
        if (f <= 0) {
            free(ids);
            if (f < 0)
                return f;
            /* R15: only roles visible in the organization */
            snprintf(field, sizeof field, "role_mappings[%zu].role_slug", i);
            return rg_error_set(err, RG_EINVAL, 422, "invalid_role", field,
                                "no role '%.48s' in this organization", slug);
        }
        memcpy(ids[i], r.id, ST_ID);
    }
    /* the new set, deduplicated and sorted as mappings_array sorts */
    json_t *want = json_array();
    for (size_t i = 0; want && i < n; i++) {
        json_t *m = json_array_get(mappings, i);
        const char *g = json_string_value(json_object_get(m, "idp_group"));
        char slug[RG_SLUG_MAX + 1];
        if (rg_st_text(db, err, slug, sizeof slug, "SELECT slug FROM roles WHERE id = ?", "s",
                       ids[i]) != 1) {
            json_decref(want);
            free(ids);
            return RG_EIO;
        }
        size_t at = 0, len = json_array_size(want);
        int dup = 0;
        for (; at < len; at++) {
            json_t *w = json_array_get(want, at);
            int c = strcmp(g, json_string_value(json_object_get(w, "idp_group")));
            if (!c)
                c = strcmp(slug, json_string_value(json_object_get(w, "role_slug")));
            if (c == 0)
                dup = 1;
            if (c <= 0)
                break;
        }
        if (!dup)
            json_array_insert_new(want, at, json_pack("{s:s,s:s,s:s}", "object", "role_mapping",
                                                      "idp_group", g, "role_slug", slug));
    }
    json_t *before = want ? mappings_array(db, conn_id, err) : NULL;
    if (!before) {
        json_decref(want);
        free(ids);
        return want ? RG_EIO : rg_st_oom(err);
    }
    int changed = !json_equal(before, want);
    json_decref(before);
    rc = 0;
    if (changed) {
        rc = rg_st_exec(db, err, "DELETE FROM role_mappings WHERE connection_id = ?", "s",
                        conn_id);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = rg_st_exec(db, err,
                            "INSERT OR IGNORE INTO role_mappings(connection_id, idp_group,"
                            " role_id) VALUES (?, ?, ?)", "sss", conn_id,
                            json_string_value(json_object_get(json_array_get(mappings, i),
                                                              "idp_group")),
                            ids[i]);
        char ts[ST_TS];
        rg_st_now(ts);
        json_t *ev = NULL;
        if (rc || rg_st_exec(db, err, "UPDATE connections SET updated_at = ? WHERE id = ?",
                             "ss", ts, conn_id) ||
            rg_st_bump_org(db, org, err) || !(ev = conn_public(db, conn_id, err))) {
            json_decref(want);
            free(ids);
            return RG_EIO;
        }
        json_object_set(ev, "role_mappings", want);
        if (rg_st_event(db, "connection.updated", ev, err)) {
            json_decref(want);
            free(ids);
            return RG_EIO;
        }
    }
    free(ids);
    json_t *after = want;
    *out = rg_st_list_object(after, NULL, NULL);
    return *out ? 0 : rg_st_oom(err);
}

int rg_store_role_mappings_set(rg_store *s, const char *conn_id, const json_t *mappings,
                               json_t **out, rg_error *err)
{
    if (out)
        *out = NULL;
    if (!json_is_array(mappings))
        return rg_error_set(err, RG_EINVAL, 422, "invalid_request", "role_mappings",
                            "role mappings must be a JSON array");
    st_tx tx;
    int rc = rg_st_begin(s, &tx, 1, err);
    if (rc)
        return rc;
    json_t *o = NULL;
    rc = mappings_set_tx(tx.db, conn_id ? conn_id : "", mappings, &o, err);
    rc = rg_st_end(&tx, rc, err);
    return rg_st_finish(rc, o, out);
}
