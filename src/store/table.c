/* table.c: roles as the rest of the store sees them: lookups by slug in a
 * scope, the role object and every visible role object at once (R11), the
 * role table loader that feeds core (R7-R11, R15: roles in order, defaults,
 * permissions, mappings; a constant number of queries), independence of an
 * organization (R9) and the roles of a membership (R12, R13). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

int rg_st_role_find(sqlite3 *db, const char *org_id, const char *slug, int own_only,
                    int with_deleting, st_role *r, rg_error *err)
{
    const char *sql;
    if (!org_id)
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND organization_id IS NULL AND (? OR status = 'active')";
    else if (own_only)
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND organization_id = ? AND (? OR status = 'active')";
    else
        sql = "SELECT id, slug, coalesce(organization_id, ''), status FROM roles"
              " WHERE slug = ? AND (organization_id IS NULL OR organization_id = ?)"
              " AND (? OR status = 'active') ORDER BY organization_id IS NULL";
    sqlite3_stmt *st = org_id ? rg_st_prep(db, err, sql, "ssi", slug, org_id, with_deleting)
                              : rg_st_prep(db, err, sql, "si", slug, with_deleting);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(db, st, err);
    if (rc == 1) {
        memset(r, 0, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", rg_st_col(st, 0));
        snprintf(r->slug, sizeof r->slug, "%s", rg_st_col(st, 1));
        snprintf(r->org_id, sizeof r->org_id, "%s", rg_st_col(st, 2));
        r->deleting = strcmp(rg_st_col(st, 3), "active") != 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int rg_st_org_exists(sqlite3 *db, const char *org_id, rg_error *err)
{
    int64_t one;
    if (!org_id)
        return 0;
    return rg_st_int(db, err, &one, "SELECT 1 FROM organizations WHERE id = ?", "s", org_id);
}

#define ROLE_COLS "id, slug, name, description, organization_id, status, created_at, updated_at"

/* The role object of one row of ROLE_COLS, with an empty "permissions"
 * array the caller fills (sorted). NULL when out of memory. */
static json_t *role_row_json(sqlite3_stmt *st)
{
    const char *org = rg_st_col(st, 4);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:[]}", "object", "role", "id",
                          rg_st_col(st, 0), "slug", rg_st_col(st, 1), "name", rg_st_col(st, 2),
                          "description", rg_st_col(st, 3), "type",
                          org ? "OrganizationRole" : "EnvironmentRole", "permissions");
    if (!o)
        return NULL;
    if (org)
        json_object_set_new(o, "organization_id", json_string(org));
    if (strcmp(rg_st_col(st, 5), "active"))
        json_object_set_new(o, "status", json_string(rg_st_col(st, 5)));
    json_object_set_new(o, "created_at", json_string(rg_st_col(st, 6)));
    json_object_set_new(o, "updated_at", json_string(rg_st_col(st, 7)));
    return o;
}

json_t *rg_st_role_json(sqlite3 *db, const char *role_id, rg_error *err)
{
    sqlite3_stmt *st = rg_st_prep(db, err, "SELECT " ROLE_COLS " FROM roles WHERE id = ?",
                                  "s", role_id);
    if (!st)
        return NULL;
    json_t *o = NULL;
    int rc = rg_st_step(db, st, err);
    if (rc == 1 && !(o = role_row_json(st)))
        rg_st_oom(err);
    else if (rc == 0)
        rg_st_not_found(err, "id", "role", role_id);
    sqlite3_finalize(st);
    if (!o)
        return NULL;
    st = rg_st_prep(db, err,
                    "SELECT p.slug FROM role_permissions rp JOIN permissions p"
                    " ON p.id = rp.permission_id WHERE rp.role_id = ? ORDER BY p.slug",
                    "s", role_id);
    if (!st) {
        json_decref(o);
        return NULL;
    }
    json_t *perms = json_object_get(o, "permissions");
    while ((rc = rg_st_step(db, st, err)) == 1)
        json_array_append_new(perms, json_string(rg_st_col(st, 0)));
    sqlite3_finalize(st);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *rg_st_roles_by_slug(sqlite3 *db, const char *org_id, rg_error *err)
{
    /* org_id NULL binds NULL: "organization_id = NULL" holds for no row, so
     * the same SQL gives the environment's roles alone */
    json_t *by_slug = json_object(), *by_id = json_object();
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (!by_slug || !by_id) {
        rg_st_oom(err);
        goto fail;
    }
    st = rg_st_prep(db, err,
                    "SELECT " ROLE_COLS " FROM roles WHERE status = 'active'"
                    " AND (organization_id IS NULL OR organization_id = ?)", "s", org_id);
    if (!st)
        goto fail;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = role_row_json(st);
        if (!o || json_object_set(by_id, rg_st_col(st, 0), o) ||
            json_object_set_new(by_slug, rg_st_col(st, 1), o)) {
            rg_st_oom(err);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc < 0)
        goto fail;
    /* every permission of those roles in one query, sorted per role as
     * rg_st_role_json sorts them */
    st = rg_st_prep(db, err,
                    "SELECT rp.role_id, p.slug FROM role_permissions rp"
                    " JOIN permissions p ON p.id = rp.permission_id"
                    " JOIN roles r ON r.id = rp.role_id WHERE r.status = 'active'"
                    " AND (r.organization_id IS NULL OR r.organization_id = ?)"
                    " ORDER BY rp.role_id, p.slug", "s", org_id);
    if (!st)
        goto fail;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        json_t *o = json_object_get(by_id, rg_st_col(st, 0));
        assert(o);   /* the same snapshot, the same condition */
        if (o && json_array_append_new(json_object_get(o, "permissions"),
                                       json_string(rg_st_col(st, 1)))) {
            rg_st_oom(err);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc < 0)
        goto fail;
    json_decref(by_id);
    return by_slug;
fail:
    sqlite3_finalize(st);
    json_decref(by_id);
    json_decref(by_slug);
    return NULL;
}

int rg_st_org_make_independent(sqlite3 *db, const char *org_id, rg_error *err)
{
    int64_t ind = 0;
    int rc = rg_st_int(db, err, &ind, "SELECT independent FROM organizations WHERE id = ?",
                       "s", org_id);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return rg_st_not_found(err, "organization_id", "organization", org_id);
    if (ind)
        return 0;
    /* R9: own order = a copy of the environment's, own default = a copy of
     * the environment's default, both independent from now on */
    if (rg_st_exec(db, err, "DELETE FROM priorities WHERE scope = ?", "s", org_id) ||
        rg_st_exec(db, err,
                   "INSERT INTO priorities(scope, role_id, position) SELECT ?, p.role_id,"
                   " p.position FROM priorities p JOIN roles r ON r.id = p.role_id"
                   " WHERE p.scope = '' AND r.status = 'active'", "s", org_id) ||
        rg_st_exec(db, err,
                   "UPDATE organizations SET independent = 1, default_role_id ="
                   " (SELECT default_role_id FROM environment WHERE id = 1) WHERE id = ?",
                   "s", org_id) ||
        rg_st_bump_org(db, org_id, err))
        return RG_EIO;
    return 0;
}

/* ---- the role table loader ------------------------------------------------- */

/* Strings owned while a spec is built: copied into a few growing blocks, so
 * 10,000 mappings cost a handful of mallocs, not 20,000. */
typedef struct strblock {
    struct strblock *next;
    size_t used, cap;
    char data[];
} strblock;
typedef struct strpool { strblock *head; int oom; } strpool;

static const char *sp_dup(strpool *p, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    strblock *b = p->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? b->cap * 2 : 4096;
        if (cap > 256 * 1024)
            cap = 256 * 1024;
        if (cap < n)
            cap = n;
        strblock *nb = malloc(sizeof *nb + cap);
        if (!nb) {
            p->oom = 1;
            return NULL;
        }
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        p->head = b = nb;
    }
    char *d = b->data + b->used;
    memcpy(d, s, n);
    b->used += n;
    return d;
}

static void sp_free(strpool *p)
{
    for (strblock *b = p->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    p->head = NULL;
}

typedef struct load_role {
    const char *id;
    const char **perms;
    size_t n_perms, cap_perms;
} load_role;

/* The loaded roles sorted by id, to place permission and mapping rows by
 * their role_id in O(log n) instead of a scan of every role per row. */
typedef struct role_ix { const char *id; size_t i; } role_ix;

static int cmp_role_ix(const void *a, const void *b)
{
    return strcmp(((const role_ix *)a)->id, ((const role_ix *)b)->id);
}

/* Index of the loaded role with this id, or -1 (not active, or not visible
 * in the scope). */
static long role_ix_find(const role_ix *ix, size_t n, const char *id)
{
    if (!id)
        return -1;
    role_ix key = { id, 0 };
    const role_ix *hit = bsearch(&key, ix, n, sizeof *ix, cmp_role_ix);
    return hit ? (long)hit->i : -1;
}

/* full: with permissions and mappings (what logins resolve against); else
 * only roles, orders, defaults and the multiple_roles setting, enough for
 * ranks, lists and role assignment. */
static int table_load(sqlite3 *db, const char *org_id, int full, rg_role_table **out,
                      rg_error *err)
{
    *out = NULL;
    strpool sp = {0};
    load_role *lr = NULL;
    rg_role_spec *specs = NULL;
    role_ix *ix = NULL;
    const char **order = NULL;
    rg_group_mapping *maps = NULL;
    size_t n_roles = 0, n_env = 0, n_order = 0, n_maps = 0, cap;
    int rc = RG_EIO;
    rg_table_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.organization_id = org_id;

    sqlite3_stmt *st = rg_st_prep(db, err,
                                  "SELECT e.multiple_roles, r.slug, e.version FROM environment e"
                                  " JOIN roles r ON r.id = e.default_role_id WHERE e.id = 1", "");
    if (!st)
        goto done;
    if (rg_st_step(db, st, err) != 1) {
        sqlite3_finalize(st);
        rg_error_set(err, RG_EIO, 500, "store_error", NULL, "environment row missing");
        goto done;
    }
    spec.multiple_roles = sqlite3_column_int(st, 0);
    spec.env_default = sp_dup(&sp, rg_st_col(st, 1));
    spec.version = (uint64_t)sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    int independent = 0;
    if (org_id) {
        st = rg_st_prep(db, err,
                        "SELECT o.independent, r.slug, o.version FROM organizations o"
                        " LEFT JOIN roles r ON r.id = o.default_role_id AND r.status = 'active'"
                        " WHERE o.id = ?", "s", org_id);
        if (!st)
            goto done;
        int s1 = rg_st_step(db, st, err);
        if (s1 != 1) {
            sqlite3_finalize(st);
            if (s1 == 0)
                rc = rg_st_not_found(err, "organization_id", "organization", org_id);
            goto done;
        }
        independent = sqlite3_column_int(st, 0);
        if (independent && rg_st_col(st, 1))
            spec.org_default = sp_dup(&sp, rg_st_col(st, 1));
        /* the table depends on the environment and on the organization:
         * either one's bump changes the sum */
        spec.version += (uint64_t)sqlite3_column_int64(st, 2);
        sqlite3_finalize(st);
    }

    /* roles: environment roles in environment order, then the
     * organization's own */
    st = org_id ? rg_st_prep(db, err,
                             "SELECT r.id, r.slug, r.organization_id IS NOT NULL FROM roles r"
                             " LEFT JOIN priorities p ON p.role_id = r.id AND p.scope = ''"
                             " WHERE r.status = 'active' AND (r.organization_id IS NULL"
                             " OR r.organization_id = ?) ORDER BY r.organization_id IS NOT NULL,"
                             " p.position IS NULL, p.position, r.slug", "s", org_id)
                : rg_st_prep(db, err,
                             "SELECT r.id, r.slug, 0 FROM roles r"
                             " LEFT JOIN priorities p ON p.role_id = r.id AND p.scope = ''"
                             " WHERE r.status = 'active' AND r.organization_id IS NULL"
                             " ORDER BY p.position IS NULL, p.position, r.slug", "");
    if (!st)
        goto done;
    /* allocated before the first row: never NULL below, even for no roles */
    cap = 16;
    lr = calloc(cap, sizeof *lr);
    specs = calloc(cap, sizeof *specs);
    if (!lr || !specs) {
        sqlite3_finalize(st);
        rg_st_oom(err);
        goto done;
    }
    int s2;
    while ((s2 = rg_st_step(db, st, err)) == 1) {
        if (n_roles == cap) {
            cap *= 2;
            load_role *nl = realloc(lr, cap * sizeof *nl);
            rg_role_spec *ns = nl ? realloc(specs, cap * sizeof *ns) : NULL;
            if (nl)
                lr = nl;
            if (ns)
                specs = ns;
            if (!nl || !ns) {
                sqlite3_finalize(st);
                rg_st_oom(err);
                goto done;
            }
        }
        memset(&lr[n_roles], 0, sizeof lr[n_roles]);
        memset(&specs[n_roles], 0, sizeof specs[n_roles]);
        lr[n_roles].id = sp_dup(&sp, rg_st_col(st, 0));
        specs[n_roles].slug = sp_dup(&sp, rg_st_col(st, 1));
        specs[n_roles].type = sqlite3_column_int(st, 2) ? RG_ROLE_ORG : RG_ROLE_ENV;
        if (specs[n_roles].type == RG_ROLE_ENV)
            n_env++;
        n_roles++;
    }
    sqlite3_finalize(st);
    if (s2 < 0)
        goto done;
    if (sp.oom) {
        rg_st_oom(err);
        goto done;
    }
    if (!(ix = malloc((n_roles ? n_roles : 1) * sizeof *ix))) {
        rg_st_oom(err);
        goto done;
    }
    for (size_t i = 0; i < n_roles; i++)
        ix[i] = (role_ix){ lr[i].id, i };
    qsort(ix, n_roles, sizeof *ix, cmp_role_ix);

    /* permissions of those roles, in one query */
    st = full ? rg_st_prep(db, err,
                           "SELECT rp.role_id, p.slug FROM role_permissions rp"
                           " JOIN permissions p ON p.id = rp.permission_id"
                           " JOIN roles r ON r.id = rp.role_id WHERE r.status = 'active'"
                           " AND (r.organization_id IS NULL OR r.organization_id = ?)",
                           "s", org_id)
              : NULL;
    if (full && !st)
        goto done;
    while (st && (s2 = rg_st_step(db, st, err)) == 1) {
        long i = role_ix_find(ix, n_roles, rg_st_col(st, 0));
        if (i < 0)
            continue;
        load_role *r = &lr[i];
        if (r->n_perms == r->cap_perms) {
            size_t c = r->cap_perms ? r->cap_perms * 2 : 8;
            const char **np = realloc(r->perms, c * sizeof *np);
            if (!np) {
                sqlite3_finalize(st);
                rg_st_oom(err);
                goto done;
            }
            r->perms = np;
            r->cap_perms = c;
        }
        r->perms[r->n_perms++] = sp_dup(&sp, rg_st_col(st, 1));
    }
    sqlite3_finalize(st);
    if (s2 < 0)
        goto done;
    for (size_t i = 0; i < n_roles; i++) {
        specs[i].permissions = lr[i].perms;
        specs[i].n_permissions = lr[i].n_perms;
    }
    /* environment roles come first (ORDER BY above) */
    spec.env_roles = specs;
    spec.n_env_roles = n_env;
    spec.org_roles = n_roles > n_env ? specs + n_env : NULL;
    spec.n_org_roles = n_roles - n_env;

    if (org_id && independent) {
        st = rg_st_prep(db, err,
                        "SELECT r.slug FROM priorities p JOIN roles r ON r.id = p.role_id"
                        " WHERE p.scope = ? AND r.status = 'active' ORDER BY p.position",
                        "s", org_id);
        if (!st)
            goto done;
        cap = 0;
        while ((s2 = rg_st_step(db, st, err)) == 1) {
            if (n_order == cap) {
                cap = cap ? cap * 2 : 16;
                const char **no = realloc(order, cap * sizeof *no);
                if (!no) {
                    sqlite3_finalize(st);
                    rg_st_oom(err);
                    goto done;
                }
                order = no;
            }
            order[n_order++] = sp_dup(&sp, rg_st_col(st, 0));
        }
        sqlite3_finalize(st);
        if (s2 < 0)
            goto done;
        spec.org_order = order;
        spec.n_org_order = n_order;
    }

    if (full && org_id) {
        /* R15: the mappings of the organization's connections, in the
         * primary key's order; role ids are turned into slugs through the
         * roles loaded above (a role not among them is not visible and core
         * would drop the mapping anyway) */
        st = rg_st_prep(db, err,
                        "SELECT m.connection_id, m.idp_group, m.role_id FROM role_mappings m"
                        " WHERE m.connection_id IN"
                        " (SELECT id FROM connections WHERE organization_id = ?)"
                        " ORDER BY m.connection_id, m.idp_group, m.role_id", "s", org_id);
        if (!st)
            goto done;
        cap = 0;
        const char *conn = NULL;
        while ((s2 = rg_st_step(db, st, err)) == 1) {
            long i = role_ix_find(ix, n_roles, rg_st_col(st, 2));
            if (i < 0)
                continue;
            if (n_maps == cap) {
                cap = cap ? cap * 2 : 16;
                rg_group_mapping *nm = realloc(maps, cap * sizeof *nm);
                if (!nm) {
                    sqlite3_finalize(st);
                    rg_st_oom(err);
                    goto done;
                }
                maps = nm;
            }
            /* rows come grouped by connection: one copy of each id */
            if (!conn || strcmp(conn, rg_st_col(st, 0)))
                conn = sp_dup(&sp, rg_st_col(st, 0));
            maps[n_maps].connection_id = conn;
            maps[n_maps].idp_group = sp_dup(&sp, rg_st_col(st, 1));
            maps[n_maps].role_slug = specs[i].slug;
            n_maps++;
        }
        sqlite3_finalize(st);
        if (s2 < 0)
            goto done;
        spec.mappings = maps;
        spec.n_mappings = n_maps;
    }
    /* a failed copy left a NULL somewhere: the whole load fails */
    if (sp.oom) {
        rg_st_oom(err);
        goto done;
    }
    *out = rg_role_table_build(&spec, err);
    rc = *out ? 0 : RG_EIO;
done:
    for (size_t i = 0; i < n_roles; i++)
        free(lr[i].perms);
    free(lr);
    free(specs);
    free(ix);
    free(order);
    free(maps);
    sp_free(&sp);
    return rc;
}

int rg_st_table_load(sqlite3 *db, const char *org_id, rg_role_table **out, rg_error *err)
{
    return table_load(db, org_id, 1, out, err);
}

int rg_st_table_load_order(sqlite3 *db, const char *org_id, rg_role_table **out,
                           rg_error *err)
{
    return table_load(db, org_id, 0, out, err);
}

int rg_st_table_version(sqlite3 *db, const char *org_id, uint64_t *out, rg_error *err)
{
    int64_t v = 0;
    int rc = org_id ? rg_st_int(db, err, &v,
                                "SELECT e.version + o.version FROM environment e, organizations o"
                                " WHERE e.id = 1 AND o.id = ?", "s", org_id)
                    : rg_st_int(db, err, &v, "SELECT version FROM environment WHERE id = 1", "");
    *out = rc == 1 ? (uint64_t)v : 0;
    return rc;
}

int rg_st_login_table(st_tx *tx, const char *org_id, const rg_role_table **out,
                      rg_error *err)
{
    assert(tx->write);
    *out = NULL;
    rg_store *s = tx->s;
    uint64_t version;
    int rc = rg_st_table_version(tx->db, org_id, &version, err);
    if (rc != 1)
        return rc < 0 ? rc : rg_st_not_found(err, "organization_id", "organization", org_id);
    st_login_table *slot = NULL;
    for (size_t i = 0; i < ST_LOGIN_TABLES && !slot; i++)
        if (s->login_tables[i].t && strcmp(s->login_tables[i].org, org_id) == 0)
            slot = &s->login_tables[i];
    if (slot && rg_role_table_version(slot->t) == version) {
        *out = slot->t;
        return 0;
    }
    rg_role_table *t = NULL;
    if ((rc = rg_st_table_load(tx->db, org_id, &t, err)))
        return rc;
    if (!slot || strlen(org_id) >= sizeof slot->org)
        slot = &s->login_tables[s->login_tables_next++ % ST_LOGIN_TABLES];
    rg_role_table_free(slot->t);
    snprintf(slot->org, sizeof slot->org, "%s", org_id);
    slot->t = t;
    *out = t;
    return 0;
}

/* ---- membership roles ------------------------------------------------------ */

int rg_st_slugs_collect(sqlite3 *db, sqlite3_stmt *st, rg_slugs *out, rg_error *err)
{
    int rc;
    size_t cap = out->n;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 4;
            char **nv = realloc(out->v, cap * sizeof *nv);
            if (!nv) {
                rc = rg_st_oom(err);
                break;
            }
            out->v = nv;
        }
        if (!(out->v[out->n] = strdup(rg_st_col(st, 0)))) {
            rc = rg_st_oom(err);
            break;
        }
        out->n++;
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        rg_slugs_clear(out);
        return rc;
    }
    return 0;
}

int rg_st_membership_roles(sqlite3 *db, const char *om_id, rg_slugs *out, rg_error *err)
{
    out->v = NULL;
    out->n = 0;
    /* R11: in the organization's order (its own when independent, else the
     * environment's); roles being deleted last */
    sqlite3_stmt *st = rg_st_prep(
        db, err,
        "SELECT r.slug FROM membership_roles mr JOIN roles r ON r.id = mr.role_id"
        " JOIN memberships m ON m.id = mr.membership_id"
        " JOIN organizations o ON o.id = m.organization_id"
        " LEFT JOIN priorities p ON p.role_id = r.id"
        "  AND p.scope = CASE WHEN o.independent THEN o.id ELSE '' END"
        " WHERE mr.membership_id = ?"
        " ORDER BY r.status <> 'active', p.position IS NULL, p.position, r.slug",
        "s", om_id);
    if (!st)
        return RG_EIO;
    return rg_st_slugs_collect(db, st, out, err);
}

int rg_st_membership_write(sqlite3 *db, const char *om_id, const char *org_id,
                           const char *const *slugs, size_t n, const char *source,
                           rg_error *err)
{
    assert(n >= 1);   /* R13: never zero roles */
    char ts[ST_TS];
    rg_st_now(ts);
    if (rg_st_exec(db, err, "DELETE FROM membership_roles WHERE membership_id = ?", "s", om_id))
        return RG_EIO;
    for (size_t i = 0; i < n; i++) {
        if (rg_st_exec(db, err,
                       "INSERT OR IGNORE INTO membership_roles(membership_id, role_id)"
                       " SELECT ?, id FROM roles WHERE slug = ?"
                       " AND (organization_id IS NULL OR organization_id = ?)",
                       "sss", om_id, slugs[i], org_id))
            return RG_EIO;
        if (sqlite3_changes(db) != 1) {
            int64_t held = 0;
            /* a duplicate is fine; a slug naming no role is a bug above */
            if (rg_st_int(db, err, &held,
                          "SELECT count(*) FROM membership_roles mr JOIN roles r"
                          " ON r.id = mr.role_id WHERE mr.membership_id = ? AND r.slug = ?",
                          "ss", om_id, slugs[i]) < 0)
                return RG_EIO;
            if (!held)
                return rg_error_set(err, RG_EIO, 500, "store_error", NULL,
                                    "role '%.48s' vanished while assigning it", slugs[i]);
        }
    }
    return rg_st_exec(db, err,
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
