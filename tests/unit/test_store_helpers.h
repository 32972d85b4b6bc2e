/* test_store_helpers.h: what the store tests share: a fresh database per
 * test (a file in its own temp directory, or, when ROLEGATE_TEST_PG names a
 * PostgreSQL server (tests/with-postgres), a database created in it; both
 * removed afterwards), direct SQL queries on that database through a
 * separate connection (to check the stored state, not only what the API
 * says), event counting, JSON shortcuts, and the setup steps the tests
 * repeat (make a role, organization, user, membership or permission; set
 * the environment, an organization's default, a connection's mappings;
 * delete a role) as one call that fails the test if the step does. Included by
 * tests/unit/test_store_*.c only; everything is static. */
#ifndef TEST_STORE_HELPERS_H
#define TEST_STORE_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include "rolegate/store.h"

typedef struct fx {
    char dir[128];
    char path[256];
    char pgdb[64];      /* the test's PostgreSQL database ("": SQLite) */
    rg_store *s;
    rg_error err;
} fx;

/* The PostgreSQL server of tests/with-postgres, or NULL: SQLite. */
static inline const char *pg_base(void)
{
    const char *b = getenv("ROLEGATE_TEST_PG");
    return b && *b ? b : NULL;
}

/* Runs sql on database db of the test server; the result (caller clears). */
static inline PGresult *pg_run(const char *db, const char *sql)
{
    char url[256];
    snprintf(url, sizeof url, "%s/%s", pg_base(), db);
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("postgresql %s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK)
        fail_msg("postgresql: %s: %s", sql, PQresultErrorMessage(r));
    PQfinish(c);
    return r;
}

static inline int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rg-store-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (pg_base()) {
        static unsigned n;
        char sql[128];
        snprintf(f->pgdb, sizeof f->pgdb, "rg_test_%ld_%u", (long)getpid(), n++);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->pgdb);
        PQclear(pg_run("postgres", sql));
        snprintf(f->path, sizeof f->path, "%s/%s", pg_base(), f->pgdb);
    } else {
        snprintf(f->path, sizeof f->path, "%s/rolegate.db", f->dir);
    }
    f->s = rg_store_open(f->path, &f->err);
    if (!f->s)
        fail_msg("rg_store_open %s: %s", f->path, f->err.message);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    char p[300];
    rg_store_close(f->s);
    if (f->pgdb[0]) {
        snprintf(p, sizeof p, "DROP DATABASE %s WITH (FORCE)", f->pgdb);
        PQclear(pg_run("postgres", p));
    }
    const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Closes and reopens the store on the same file (a restart). */
static inline void fx_reopen(fx *f)
{
    rg_store_close(f->s);
    f->s = rg_store_open(f->path, &f->err);
    assert_non_null(f->s);
}

/* One integer from SQL run on the database (a separate connection). The
 * PRAGMAs the tests read have their PostgreSQL equivalents. */
static inline long long q_int(fx *f, const char *sql)
{
    if (f->pgdb[0]) {
        if (!strcmp(sql, "PRAGMA user_version"))
            sql = "SELECT version FROM rolegate_schema";
        else if (!strncmp(sql, "PRAGMA", 6))
            sql = "SELECT 0";
        PGresult *r = pg_run(f->pgdb, sql);
        assert_int_equal(PQntuples(r), 1);
        const char *v = PQgetvalue(r, 0, 0);
        long long x = !strcmp(v, "t") ? 1 : !strcmp(v, "f") ? 0 : strtoll(v, NULL, 10);
        PQclear(r);
        return x;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Runs SQL on the file directly (to set up states the API cannot make). */
static inline void q_exec(fx *f, const char *sql)
{
    if (f->pgdb[0]) {
        PQclear(pg_run(f->pgdb, sql));
        return;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static inline long long n_events(fx *f, const char *name)
{
    char sql[200];
    if (!name)
        return q_int(f, "SELECT count(*) FROM events");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE event = '%s'", name);
    return q_int(f, sql);
}

static inline const char *js(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The "slug" of each object of array arr, joined by ",", into buf. */
static inline const char *join_slugs(json_t *arr, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < json_array_size(arr); i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? "," : "",
                               js(json_array_get(arr, i), "slug"));
    return buf;
}

/* The slugs of a role list, joined by ",", into buf. */
static inline const char *list_slugs(json_t *list, char *buf, size_t n)
{
    return join_slugs(json_object_get(list, "data"), buf, n);
}

/* The role list of a scope as "a,b,c". */
static inline const char *roles_of(fx *f, const char *org, char *buf, size_t n)
{
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, org, &l, &f->err), 0);
    list_slugs(l, buf, n);
    json_decref(l);
    return buf;
}

/* The slugs of a membership's roles as "a,b". */
static inline const char *member_roles(fx *f, const char *om, char *buf, size_t n)
{
    json_t *m = NULL;
    assert_int_equal(rg_store_membership_get(f->s, om, &m, &f->err), 0);
    join_slugs(json_object_get(m, "roles"), buf, n);
    json_decref(m);
    return buf;
}

static inline void mk_role(fx *f, const char *org, const char *slug)
{
    json_t *o = NULL;
    int rc = rg_store_role_create(f->s, org, slug, slug ? slug : "Generated", NULL, &o, &f->err);
    if (rc)
        fail_msg("role_create %s: %s %s", slug ? slug : "(gen)", f->err.code, f->err.message);
    json_decref(o);
}

/* Creates an organization; its id into id. */
static inline void mk_org(fx *f, const char *name, char id[64])
{
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_create(f->s, name, NULL, 0, &o, &f->err), 0);
    snprintf(id, 64, "%s", js(o, "id"));
    json_decref(o);
}

static inline void mk_user(fx *f, const char *email, char id[64])
{
    json_t *o = NULL;
    assert_int_equal(rg_store_user_create(f->s, email, "Ada", NULL, &o, &f->err), 0);
    snprintf(id, 64, "%s", js(o, "id"));
    json_decref(o);
}

/* A membership with the given roles (NULL: the default); its id into id. */
static inline void mk_member(fx *f, const char *user, const char *org, const char *const *roles,
                      size_t n, char id[64])
{
    json_t *o = NULL;
    int rc = rg_store_membership_create(f->s, user, org, roles, n, &o, &f->err);
    if (rc)
        fail_msg("membership_create: %s %s", f->err.code, f->err.message);
    snprintf(id, 64, "%s", js(o, "id"));
    json_decref(o);
}

static inline void set_priority(fx *f, const char *org, const char *const *slugs, size_t n)
{
    json_t *o = NULL;
    int rc = rg_store_priority_set(f->s, org, slugs, n, &o, &f->err);
    if (rc)
        fail_msg("priority_set: %s %s", f->err.code, f->err.message);
    json_decref(o);
}

static inline const char *table_default(fx *f, const char *org, char *buf, size_t n)
{
    rg_role_table *t = NULL;
    assert_int_equal(rg_store_role_table(f->s, org, &t, &f->err), 0);
    snprintf(buf, n, "%s", rg_role_table_default(t));
    rg_role_table_free(t);
    return buf;
}

/* A user with email and a membership of it in org with the given roles
 * (NULL: the default); the membership's id into om. */
static inline void mk_user_member(fx *f, const char *email, const char *org,
                                  const char *const *roles, size_t n, char om[64])
{
    char u[64];
    mk_user(f, email, u);
    mk_member(f, u, org, roles, n, om);
}

/* Organization "Acme", a user with email and its membership there with
 * the default role: the ids into org, user and om. */
static inline void mk_one_member(fx *f, const char *email, char org[64], char user[64],
                                 char om[64])
{
    mk_org(f, "Acme", org);
    mk_user(f, email, user);
    mk_member(f, user, org, NULL, 0, om);
}

static inline void mk_perm(fx *f, const char *slug, const char *name)
{
    int rc = rg_store_permission_create(f->s, slug, name, NULL, 0, NULL, &f->err);
    if (rc)
        fail_msg("permission_create %s: %s %s", slug, f->err.code, f->err.message);
}

/* The environment's multiple_roles (-1: unchanged) and default role (NULL:
 * unchanged), written through s (NULL: the test's own store); must succeed. */
static inline void env_set(fx *f, rg_store *s, int multiple, const char *dflt)
{
    json_t *o = NULL;
    assert_int_equal(rg_store_environment_update(s ? s : f->s, multiple, dflt, &o, &f->err), 0);
    json_decref(o);
}

/* An organization's own default role (R9: it becomes independent). */
static inline void org_default(fx *f, const char *org, const char *slug)
{
    json_t *o = NULL;
    assert_int_equal(rg_store_organization_update(f->s, org, NULL, NULL, -1, slug, &o, &f->err),
                     0);
    json_decref(o);
}

/* A connection's group mappings set to maps (taken), through s (NULL: the
 * test's own store); must succeed. */
static inline void set_mappings(fx *f, rg_store *s, const char *conn, json_t *maps)
{
    json_t *o = NULL;
    assert_int_equal(rg_store_role_mappings_set(s ? s : f->s, conn, maps, &o, &f->err), 0);
    json_decref(o);
    json_decref(maps);
}

/* Deletes role slug of org (NULL: environment) with the replacement default
 * repl (may be NULL); must succeed. */
static inline void del_role(fx *f, const char *org, const char *slug, const char *repl)
{
    json_t *o = NULL;
    int rc = rg_store_role_delete(f->s, org, slug, repl, &o, &f->err);
    if (rc)
        fail_msg("role_delete %s: %s %s", slug, f->err.code, f->err.message);
    json_decref(o);
}

/* A membership's role_source ("api", "idp", "default", "directory"). */
static inline const char *member_source(fx *f, const char *om, char *buf, size_t n)
{
    json_t *m = NULL;
    assert_int_equal(rg_store_membership_get(f->s, om, &m, &f->err), 0);
    snprintf(buf, n, "%s", js(m, "role_source"));
    json_decref(m);
    return buf;
}

#define S(...) ((const char *const[]){ __VA_ARGS__ })
#define N(...) (sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

#endif
