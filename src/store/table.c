/* table.c: the role table loader that feeds core (R7-R11, R15: roles in
 * order, defaults, permissions, mappings), one function per query so a load
 * costs a constant number of queries whatever the number of roles; and the
 * table version. The store keeps no table: logins take theirs from the
 * cache layer and check its version in their transaction (login.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"

/* ---- the role table loader ------------------------------------------------- */

/* Strings owned while a spec is built live in the loader's arena, so 10,000
 * mappings cost a handful of mallocs, not 20,000. A failed copy is noted
 * (oom) and fails the whole load. */
typedef struct strpool { rg_arena *a; int oom; } strpool;

static const char *sp_dup(strpool *p, const char *s)
{
    const char *d = p->a ? rg_arena_strdup(p->a, s ? s : "") : NULL;
    if (!d)
        p->oom = 1;
    return d;
}

/* Appends a pooled copy of str to *v (*n of *cap, the first growth to first). 0, or
 * ENOMEM in err. */
static int sp_push(strpool *p, const char ***v, size_t *n, size_t *cap, size_t first,
                   const char *str, rg_error *err)
{
    if (rg_grow(v, *n, cap, sizeof **v, first) != 0)
        return rg_st_oom(err);
    (*v)[(*n)++] = sp_dup(p, str);
    return 0;
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

/* One load in progress: what the queries below fill, in this order. */
typedef struct loader {
    st_db *db;
    const char *org_id;
    strpool sp;
    rg_table_spec spec;
    int independent;
    load_role *lr;             /* the roles, environment's first ... */
    rg_role_spec *specs;       /* ... and their specs, index for index */
    size_t n_roles, n_env;
    role_ix *ix;               /* lr sorted by id */
    const char **order;        /* an independent organization's own order */
    size_t n_order;
    rg_group_mapping *maps;
    size_t n_maps;
} loader;

/* The environment: multiple_roles, its default, its version. */
static int load_env(loader *l, rg_error *err)
{
    st_stmt *st = rg_st_prep(l->db, err,
                                  "SELECT e.multiple_roles, r.slug, e.version FROM environment e"
                                  " JOIN roles r ON r.id = e.default_role_id WHERE e.id = 1", "");
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(l->db, st, err);
    if (rc == 1) {
        l->spec.multiple_roles = st_col_int(st, 0);
        l->spec.env_default = sp_dup(&l->sp, rg_st_col(st, 1));
        l->spec.version = (uint64_t)st_col_int64(st, 2);
    }
    st_finalize(st);
    if (rc == 0)
        return rg_error_set(err, RG_EIO, "store_error", NULL, "environment row missing");
    return rc < 0 ? rc : 0;
}

/* The organization: independence, its own default, its version. */
static int load_org(loader *l, rg_error *err)
{
    st_stmt *st = rg_st_prep(l->db, err,
                                  "SELECT o.independent, r.slug, o.version FROM organizations o"
                                  " LEFT JOIN roles r ON r.id = o.default_role_id"
                                  " AND r.status = 'active' WHERE o.id = ?", "s", l->org_id);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(l->db, st, err);
    if (rc == 1) {
        l->independent = st_col_int(st, 0);
        if (l->independent && rg_st_col(st, 1))
            l->spec.org_default = sp_dup(&l->sp, rg_st_col(st, 1));
        /* the table depends on the environment and on the organization:
         * either one's bump changes the sum */
        l->spec.version += (uint64_t)st_col_int64(st, 2);
    }
    st_finalize(st);
    if (rc == 0)
        return rg_st_not_found(err, "organization_id", "organization", l->org_id);
    return rc < 0 ? rc : 0;
}

/* Appends one role row (id, slug, is-organization-role). */
static int role_add(loader *l, size_t *cap, st_stmt *st)
{
    if (!l->lr || !l->specs)
        return -1;
    size_t cap_lr = *cap, cap_specs = *cap;   /* two arrays of one length */
    if (rg_grow(&l->lr, l->n_roles, &cap_lr, sizeof *l->lr, 16) != 0 ||
        rg_grow(&l->specs, l->n_roles, &cap_specs, sizeof *l->specs, 16) != 0)
        return -1;
    *cap = cap_specs;
    size_t i = l->n_roles++;
    memset(&l->lr[i], 0, sizeof l->lr[i]);
    memset(&l->specs[i], 0, sizeof l->specs[i]);
    l->lr[i].id = sp_dup(&l->sp, rg_st_col(st, 0));
    l->specs[i].slug = sp_dup(&l->sp, rg_st_col(st, 1));
    l->specs[i].type = st_col_int(st, 2) ? RG_ROLE_ORG : RG_ROLE_ENV;
    if (l->specs[i].type == RG_ROLE_ENV)
        l->n_env++;
    return 0;
}

/* The active roles: environment roles in environment order, then the
 * organization's own; then the index by id. */
static int load_roles(loader *l, rg_error *err)
{
    st_stmt *st =
        l->org_id ? rg_st_prep(l->db, err,
                               "SELECT r.id, r.slug, r.organization_id IS NOT NULL FROM roles r"
                               " LEFT JOIN priorities p ON p.role_id = r.id AND p.scope = ''"
                               " WHERE r.status = 'active' AND (r.organization_id IS NULL"
                               " OR r.organization_id = ?) ORDER BY r.organization_id IS NOT NULL,"
                               " p.position IS NULL, p.position, r.slug", "s", l->org_id)
                  : rg_st_prep(l->db, err,
                               "SELECT r.id, r.slug, 0 FROM roles r"
                               " LEFT JOIN priorities p ON p.role_id = r.id AND p.scope = ''"
                               " WHERE r.status = 'active' AND r.organization_id IS NULL"
                               " ORDER BY p.position IS NULL, p.position, r.slug", "");
    if (!st)
        return RG_EIO;
    /* allocated before the first row: never NULL below, even for no roles */
    size_t cap = 16;
    l->lr = calloc(cap, sizeof *l->lr);
    l->specs = calloc(cap, sizeof *l->specs);
    int rc = l->lr && l->specs ? 0 : rg_st_oom(err);
    while (rc == 0 && (rc = rg_st_step(l->db, st, err)) == 1)
        rc = role_add(l, &cap, st) ? rg_st_oom(err) : 0;
    st_finalize(st);
    if (rc < 0)
        return rc;
    if (l->sp.oom || !(l->ix = malloc((l->n_roles ? l->n_roles : 1) * sizeof *l->ix)))
        return rg_st_oom(err);
    for (size_t i = 0; i < l->n_roles; i++)
        l->ix[i] = (role_ix){ l->lr[i].id, i };
    qsort(l->ix, l->n_roles, sizeof *l->ix, cmp_role_ix);
    return 0;
}

/* The permissions of those roles, in one query. */
static int load_perms(loader *l, rg_error *err)
{
    st_stmt *st = rg_st_prep(l->db, err,
                                  "SELECT rp.role_id, p.slug FROM role_permissions rp"
                                  " JOIN permissions p ON p.id = rp.permission_id"
                                  " JOIN roles r ON r.id = rp.role_id WHERE r.status = 'active'"
                                  " AND (r.organization_id IS NULL OR r.organization_id = ?)",
                                  "s", l->org_id);
    if (!st)
        return RG_EIO;
    int rc;
    while ((rc = rg_st_step(l->db, st, err)) == 1) {
        long i = role_ix_find(l->ix, l->n_roles, rg_st_col(st, 0));
        if (i < 0)
            continue;
        load_role *r = &l->lr[i];
        if ((rc = sp_push(&l->sp, &r->perms, &r->n_perms, &r->cap_perms, 8, rg_st_col(st, 1),
                          err)) != 0)
            break;
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}

/* An independent organization's own order (R9). */
static int load_order(loader *l, rg_error *err)
{
    st_stmt *st = rg_st_prep(l->db, err,
                                  "SELECT r.slug FROM priorities p JOIN roles r ON r.id = p.role_id"
                                  " WHERE p.scope = ? AND r.status = 'active' ORDER BY p.position",
                                  "s", l->org_id);
    if (!st)
        return RG_EIO;
    size_t cap = 0;
    int rc;
    while ((rc = rg_st_step(l->db, st, err)) == 1) {
        if ((rc = sp_push(&l->sp, &l->order, &l->n_order, &cap, 16, rg_st_col(st, 0), err)) != 0)
            break;
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}

/* R15: the mappings of the organization's connections, in the primary
 * key's order; role ids are turned into slugs through the roles loaded
 * above (a role not among them is not visible and core would drop the
 * mapping anyway). */
static int load_mappings(loader *l, rg_error *err)
{
    st_stmt *st = rg_st_prep(l->db, err,
                                  "SELECT m.connection_id, m.idp_group, m.role_id"
                                  " FROM role_mappings m WHERE m.connection_id IN"
                                  " (SELECT id FROM connections WHERE organization_id = ?)"
                                  " ORDER BY m.connection_id, m.idp_group, m.role_id",
                                  "s", l->org_id);
    if (!st)
        return RG_EIO;
    size_t cap = 0;
    const char *conn = NULL;
    int rc;
    while ((rc = rg_st_step(l->db, st, err)) == 1) {
        long i = role_ix_find(l->ix, l->n_roles, rg_st_col(st, 2));
        if (i < 0)
            continue;
        if (rg_grow(&l->maps, l->n_maps, &cap, sizeof *l->maps, 16) != 0) {
            rc = rg_st_oom(err);
            break;
        }
        /* rows come grouped by connection: one copy of each id */
        if (!conn || strcmp(conn, rg_st_col(st, 0)))
            conn = sp_dup(&l->sp, rg_st_col(st, 0));
        rg_group_mapping *m = &l->maps[l->n_maps++];
        m->connection_id = conn;
        m->idp_group = sp_dup(&l->sp, rg_st_col(st, 1));
        m->role_slug = l->specs[i].slug;
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}

/* The spec core builds the table from, pointing into the loader. */
static void loader_spec(loader *l)
{
    for (size_t i = 0; i < l->n_roles; i++) {
        l->specs[i].permissions = l->lr[i].perms;
        l->specs[i].n_permissions = l->lr[i].n_perms;
    }
    /* environment roles come first (load_roles' ORDER BY) */
    l->spec.env_roles = l->specs;
    l->spec.n_env_roles = l->n_env;
    l->spec.org_roles = l->n_roles > l->n_env ? l->specs + l->n_env : NULL;
    l->spec.n_org_roles = l->n_roles - l->n_env;
    if (l->org_id && l->independent) {
        l->spec.org_order = l->order;
        l->spec.n_org_order = l->n_order;
    }
    l->spec.mappings = l->maps;
    l->spec.n_mappings = l->n_maps;
}

static void loader_free(loader *l)
{
    for (size_t i = 0; l->lr && i < l->n_roles; i++)
        free(l->lr[i].perms);
    free(l->lr);
    free(l->specs);
    free(l->ix);
    free(l->order);
    free(l->maps);
    rg_arena_free(l->sp.a);
}

/* full: with permissions and mappings (what logins resolve against); else
 * only roles, orders, defaults and the multiple_roles setting, enough for
 * ranks, lists and role assignment. */
static int table_load(st_db *db, const char *org_id, int full, rg_role_table **out,
                      rg_error *err)
{
    *out = NULL;
    loader l;
    memset(&l, 0, sizeof l);
    l.db = db;
    l.org_id = org_id;
    l.spec.organization_id = org_id;
    l.sp.a = rg_arena_new(16 * 1024);
    int rc = l.sp.a ? load_env(&l, err) : rg_st_oom(err);
    if (!rc && org_id)
        rc = load_org(&l, err);
    if (!rc)
        rc = load_roles(&l, err);
    if (!rc && full)
        rc = load_perms(&l, err);
    if (!rc && org_id && l.independent)
        rc = load_order(&l, err);
    if (!rc && full && org_id)
        rc = load_mappings(&l, err);
    /* a failed copy left a NULL somewhere: the whole load fails */
    if (!rc && l.sp.oom)
        rc = rg_st_oom(err);
    if (!rc) {
        loader_spec(&l);
        *out = rg_role_table_build(&l.spec, err);
        rc = *out ? 0 : RG_EIO;
    }
    loader_free(&l);
    return rc;
}

int rg_st_table_load(st_db *db, const char *org_id, rg_role_table **out, rg_error *err)
{
    return table_load(db, org_id, 1, out, err);
}

int rg_st_table_load_order(st_db *db, const char *org_id, rg_role_table **out,
                           rg_error *err)
{
    return table_load(db, org_id, 0, out, err);
}

int rg_st_table_version(st_db *db, const char *org_id, uint64_t *out, rg_error *err)
{
    int64_t v = 0;
    int rc = org_id ? rg_st_int(db, err, &v,
                                "SELECT e.version + o.version FROM environment e, organizations o"
                                " WHERE e.id = 1 AND o.id = ?", "s", org_id)
                    : rg_st_int(db, err, &v, "SELECT version FROM environment WHERE id = 1", "");
    *out = rc == 1 ? (uint64_t)v : 0;
    return rc;
}
