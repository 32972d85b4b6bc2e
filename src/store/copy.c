/* copy.c: `rolegate store copy FROM TO` (issue 15): a whole store copied
 * from one database into another, SQLite -> PostgreSQL and back, every row
 * of every table as stored (ids, created_at, event seq, priority positions,
 * token hashes, connection configs with their secrets). FROM is opened
 * read-only (SQLite: a read-only connection; PostgreSQL: a READ ONLY
 * REPEATABLE READ transaction) and read in one transaction, a consistent
 * snapshot. TO is migrated to this build's schema first, then written in ONE
 * transaction that also checks it is empty (nothing but migration 1's seed:
 * the environment row and the "member" role) and replaces the seed: a
 * failure anywhere leaves TO as it was (a SQLite file the copy created is
 * removed). FROM must be at this build's schema version: it is not migrated
 * (a copy never writes to its source). The tables copied are the list
 * below, in foreign-key order; a table of FROM not in the list, or one of
 * the list missing, refuses the copy, so a table added by a later migration
 * cannot be left out silently. Columns are read from the database's own
 * catalog. On PostgreSQL the identity columns' sequences are advanced past
 * the copied values. The row transfer is copy_rows.c's. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "copy_impl.h"

/* Every table of the schema (RG_STORE_SCHEMA_VERSION 5), parents before
 * children; pg_order: the order rows are read from PostgreSQL in (SQLite:
 * rowid, the insertion order). */
const cp_table rg_cp_tables[] = {
    {"environment", "id"},
    {"permissions", "created_at, id"},
    {"organizations", "created_at, id"},
    {"roles", "created_at, id"},
    {"role_permissions", "role_id, permission_id"},
    {"priorities", "scope, position"},
    {"users", "created_at, id"},
    {"connections", "created_at, id"},
    {"identities", "connection_id, subject"},
    {"role_mappings", "connection_id, idp_group, role_id"},
    {"memberships", "created_at, id"},
    {"membership_roles", "membership_id, role_id"},
    {"events", "seq"},
    {"jobs", "created_at, id"},
    {"directories", "created_at, id"},
    {"directory_users", "created_at, id"},
    {"directory_groups", "created_at, id"},
    {"directory_group_members", "group_id, user_id"},
    {"directory_role_mappings", "directory_id, group_id, role_id"},
    {"sessions", "created_at, id"},
    {"shared_state", "k"},   /* ids seen and pending logins (issue 15) */
};
const size_t rg_cp_ntables = sizeof rg_cp_tables / sizeof *rg_cp_tables;

int rg_cp_is_pg(const st_db *db)
{
    return rg_st_db_is_pg(db);
}

int rg_cp_ident_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= CP_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* ---- messages: never a password ------------------------------------------ */

/* The password a target carries (user:PASSWORD@ or password=PASSWORD) at
 * *pw, its length (0: none); which: 0 the user info, 1 the parameter. */
static size_t url_password(const char *t, int which, const char **pw)
{
    const char *s = rg_st_target_is_pg(t) ? strstr(t, "://") : NULL;
    if (!s)
        return 0;
    if (which == 0) {
        const char *at = strchr(s + 3, '@');
        const char *colon = at ? memchr(s + 3, ':', (size_t)(at - (s + 3))) : NULL;
        *pw = colon ? colon + 1 : NULL;
        return colon ? (size_t)(at - colon - 1) : 0;
    }
    const char *p = strstr(s, "password=");
    *pw = p ? p + 9 : NULL;
    return p ? strcspn(p + 9, "&") : 0;
}

/* Replaces every occurrence of target's password in msg by "***" (a
 * password shorter than that by as many '*'). */
static void scrub(char *msg, const char *target)
{
    for (int which = 0; which < 2; which++) {
        const char *pw;
        char word[256];   /* as long as a message */
        size_t n = url_password(target, which, &pw);
        if (n == 0 || n >= sizeof word)
            continue;
        memcpy(word, pw, n);
        word[n] = 0;
        for (char *p = msg; (p = strstr(p, word)) != NULL;) {
            if (n >= 3) {
                memmove(p + 3, p + n, strlen(p + n) + 1);
                memset(p, '*', 3);
                p += 3;
            } else {
                memset(p, '*', n);
                p += n;
            }
        }
    }
}

int rg_cp_fail(const cp_ctx *c, rg_error *err, const char *what)
{
    char m[sizeof err->message + 128] = {0};
    snprintf(m, sizeof m, "%s: %s", what, err->message);
    memcpy(err->message, m, sizeof err->message - 1);
    err->message[sizeof err->message - 1] = 0;
    scrub(err->message, c->from_t);
    scrub(err->message, c->to_t);
    return err->status == 409 ? RG_ECONFLICT : err->status == 422 ? RG_EUNPROCESSABLE : RG_EIO;
}

/* ---- the tables of a database ----------------------------------------- */

/* Every table of db except the backends' own (sqlite_*, rolegate_schema)
 * into names; 0 or negative. */
static int table_names(st_db *db, char (*names)[CP_NAME], size_t *n, rg_error *err)
{
    const char *sql = rg_cp_is_pg(db)
        ? "SELECT table_name FROM information_schema.tables WHERE table_schema ="
          " current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'rolegate_schema'"
          " ORDER BY table_name"
        : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%'"
          " ESCAPE '!' ORDER BY name";
    st_stmt *st = rg_st_prep(db, err, sql, NULL);
    if (!st)
        return RG_EIO;
    int rc;
    *n = 0;
    while ((rc = rg_st_step(db, st, err)) == 1) {
        const char *t = rg_st_col(st, 0);
        if (*n == CP_MAXTABLES) {
            rc = rg_error_set(err, RG_ECONFLICT, "table_unknown", NULL,
                              "more than %d tables", CP_MAXTABLES);
            break;
        }
        snprintf(names[(*n)++], CP_NAME, "%s", t ? t : "");
    }
    st_finalize(st);
    return rc < 0 ? rc : 0;
}

static int known(const char *t)
{
    for (size_t i = 0; i < rg_cp_ntables; i++)
        if (!strcmp(rg_cp_tables[i].name, t))
            return 1;
    return 0;
}

/* The tables of db are exactly the list's. */
static int tables_check(st_db *db, rg_error *err)
{
    char names[CP_MAXTABLES][CP_NAME];
    size_t n;
    if (table_names(db, names, &n, err))
        return RG_EIO;
    for (size_t i = 0; i < n; i++)
        if (!known(names[i]))
            return rg_error_set(err, RG_ECONFLICT, "table_unknown", NULL,
                                "table '%.60s' is not known to the copy (src/store/copy.c):"
                                " refused rather than left out", names[i]);
    for (size_t i = 0; i < rg_cp_ntables; i++) {
        size_t j = 0;
        while (j < n && strcmp(names[j], rg_cp_tables[i].name))
            j++;
        if (j == n)
            return rg_error_set(err, RG_ECONFLICT, "table_missing", NULL,
                                "table '%s' of the schema is missing", rg_cp_tables[i].name);
    }
    return 0;
}

/* ---- FROM ------------------------------------------------------------------ */

static int from_open(cp_ctx *c, rg_error *err)
{
    const char *file = rg_store_target_file(c->from_t);
    c->from = file ? rg_st_sqlite_open_ro(file, err) : rg_st_pg_open(c->from_t, err);
    if (!c->from)
        return rg_cp_fail(c, err, "FROM: cannot open");
    if (c->from->be->begin(c->from, ST_BEGIN_READ) ||
        (rg_cp_is_pg(c->from) && c->from->be->exec_script(c->from, "SET TRANSACTION READ ONLY"))) {
        rg_st_dberr(c->from, err);
        return rg_cp_fail(c, err, "FROM: read transaction");
    }
    int v = 0;
    if (c->from->be->schema_get(c->from, &v) || v == 0) {
        rg_error_set(err, RG_ECONFLICT, "not_a_store", NULL,
                     "not a rolegate store (no schema version)");
        return rg_cp_fail(c, err, "FROM");
    }
    if (v < RG_STORE_SCHEMA_VERSION) {
        rg_error_set(err, RG_ECONFLICT, "schema_mismatch", NULL,
                     "schema version %d, older than this rolegate's %d: a copy never"
                     " writes to FROM; run this rolegate's serve on FROM once (it migrates),"
                     " then copy", v, RG_STORE_SCHEMA_VERSION);
        return rg_cp_fail(c, err, "FROM");
    }
    if (v > RG_STORE_SCHEMA_VERSION) {
        rg_error_set(err, RG_ECONFLICT, "schema_mismatch", NULL,
                     "schema version %d, newer than this rolegate's %d: copy with the"
                     " rolegate that wrote it", v, RG_STORE_SCHEMA_VERSION);
        return rg_cp_fail(c, err, "FROM");
    }
    if (tables_check(c->from, err))
        return rg_cp_fail(c, err, "FROM");
    return 0;
}

/* ---- TO -------------------------------------------------------------------- */

/* 1 if TO holds nothing but migration 1's seed (the environment row, the
 * "member" environment role and its priority), 0 with err naming the first
 * table that holds more, negative on error. */
static int to_empty(st_db *db, rg_error *err)
{
    for (size_t i = 0; i < rg_cp_ntables; i++) {
        const char *t = rg_cp_tables[i].name;
        char sql[128];
        int64_t n = 0, allowed = 0, other = 0;
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t);
        if (rg_st_int(db, err, &n, sql, NULL) < 0)
            return RG_EIO;
        if (!strcmp(t, "environment") || !strcmp(t, "priorities"))
            allowed = 1;
        if (!strcmp(t, "roles")) {
            allowed = 1;
            if (rg_st_int(db, err, &other, "SELECT count(*) FROM roles WHERE slug <> 'member'"
                          " OR organization_id IS NOT NULL", NULL) < 0)
                return RG_EIO;
        }
        if (n > allowed || other > 0) {
            rg_error_set(err, RG_ECONFLICT, "store_not_empty", NULL,
                         "not empty: table %s has %lld row%s (the copy writes only into an"
                         " empty store)", t, (long long)n, n == 1 ? "" : "s");
            return 0;
        }
    }
    return 1;
}

static int to_open(cp_ctx *c, rg_error *err)
{
    const char *file = rg_store_target_file(c->to_t);
    struct stat sb;
    c->to_created = file && stat(file, &sb) != 0 && errno == ENOENT;
    c->to = rg_st_db_open(c->to_t, err);
    if (!c->to)
        return rg_cp_fail(c, err, "TO: cannot open");
    int v;
    if (rg_st_migrate(c->to, &v, err))
        return rg_cp_fail(c, err, "TO: migrations");
    if (c->to->be->begin(c->to, ST_BEGIN_WRITE)) {
        rg_st_dberr(c->to, err);
        return rg_cp_fail(c, err, "TO: write transaction");
    }
    c->to_tx = 1;
    if (tables_check(c->to, err))
        return rg_cp_fail(c, err, "TO");
    int e = to_empty(c->to, err);
    if (e <= 0) {
        int rc = rg_cp_fail(c, err, "TO");
        return e < 0 ? rc : RG_ECONFLICT;
    }
    return 0;
}

/* SQLite files of one target that may have been created. */
static void remove_created(const char *file)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s%s", file, ext[i]) < (int)sizeof p)
            unlink(p);
    }
}

static void ctx_close(cp_ctx *c, int failed)
{
    if (c->to_tx)
        c->to->be->rollback(c->to);
    if (c->to)
        c->to->be->close(c->to);
    if (c->from) {
        c->from->be->rollback(c->from);
        c->from->be->close(c->from);
    }
    if (failed && c->to_created)
        remove_created(rg_store_target_file(c->to_t));
}

/* The same database on both sides: refused before anything is opened. */
static int same_target(const char *from, const char *to)
{
    const char *ff = rg_store_target_file(from), *tf = rg_store_target_file(to);
    if (!ff || !tf)
        return !ff && !tf && !strcmp(from, to);
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(ff, a) && realpath(tf, b))
        return !strcmp(a, b);
    return !strcmp(ff, tf);
}

int rg_store_copy(const char *from, const char *to, rg_store_copy_fn report, void *arg,
                  rg_error *err)
{
    cp_ctx c = {.from_t = from ? from : "", .to_t = to ? to : ""};
    if (!*c.from_t || !*c.to_t || !strcmp(c.from_t, "sqlite:") || !strcmp(c.to_t, "sqlite:"))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", NULL,
                            "FROM and TO must each name a database (a path, sqlite:PATH or"
                            " postgresql://...)");
    if (same_target(c.from_t, c.to_t))
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_request", NULL,
                            "FROM and TO are the same database");
    int rc = from_open(&c, err);
    if (!rc)
        rc = to_open(&c, err);
    if (!rc)
        rc = rg_cp_rows(&c, err);
    if (!rc && c.to->be->commit(c.to)) {
        rg_st_dberr(c.to, err);
        rc = rg_cp_fail(&c, err, "TO: commit");
    }
    if (!rc)
        c.to_tx = 0;
    ctx_close(&c, rc != 0);
    if (rc)
        return rc;
    for (size_t i = 0; report && i < rg_cp_ntables; i++)
        report(rg_cp_tables[i].name, c.rows[i], arg);
    return 0;
}
