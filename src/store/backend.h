/* backend.h: the store's database backend interface (issue 15): one
 * connection (st_db) and one statement (st_stmt) whose calls every file of
 * src/store makes through the inline wrappers below, never a library's own
 * API. Two backends implement it: SQLite (be_sqlite.c, a file path) and
 * PostgreSQL over libpq (be_pg.c, a postgresql:// URL), whose SQL dialect
 * differences are translated in one place (pg_sql.c). Errors map to the
 * store's codes in the backend: a serialization failure or deadlock marks
 * the running transaction for a retry (rg_st_retry_note), a unique
 * violation answers 409 conflict, a lost server 503 store_unavailable. */
#ifndef ROLEGATE_STORE_BACKEND_H
#define ROLEGATE_STORE_BACKEND_H

#include <stdint.h>
#include "rolegate/error.h"

typedef struct st_db st_db;
typedef struct st_stmt st_stmt;

/* Transaction kinds of begin. WRITE_EARLY: a write whose COMMIT may answer
 * before its flush to disk, made durable by the backend's durable() called
 * after the commit, beside other writers (the transaction runner's writes;
 * see be_pg.c); WRITE_ALONE: the same, with no other writer of any process
 * beside it. Only a backend with durable() gets these two. SINGLE: a read
 * of one statement, which a backend may run without a transaction of its
 * own (commit and rollback then send nothing). */
enum {
    ST_BEGIN_READ = 0, ST_BEGIN_WRITE = 1, ST_BEGIN_MIGRATE = 2, ST_BEGIN_WRITE_EARLY = 3,
    ST_BEGIN_WRITE_ALONE = 4, ST_BEGIN_SINGLE = 5
};

typedef struct st_backend {
    const char *name;   /* "sqlite", "postgresql" */
    void (*close)(st_db *db);
    /* NULL with err filled (the SQL does not prepare) */
    st_stmt *(*prepare)(st_db *db, const char *sql, rg_error *err);
    /* idx 1-based; v NULL binds NULL; 0 or negative (err via dberr) */
    int (*bind_text)(st_stmt *st, int idx, const char *v);
    int (*bind_int64)(st_stmt *st, int idx, int64_t v);
    /* 1 row, 0 done, negative: the error is the connection's (dberr) */
    int (*step)(st_stmt *st);
    const char *(*col_text)(st_stmt *st, int i);   /* NULL for SQL NULL */
    int64_t (*col_int64)(st_stmt *st, int i);      /* booleans: 0 / 1 */
    void (*finalize)(st_stmt *st);
    /* rows changed by the last INSERT/UPDATE/DELETE run to its end */
    long (*changes)(st_db *db);
    /* several statements without parameters (migrations' DDL) */
    int (*exec_script)(st_db *db, const char *sql);
    /* begin: ST_BEGIN_*; MIGRATE also serializes migrating processes */
    int (*begin)(st_db *db, int kind);
    int (*commit)(st_db *db);
    void (*rollback)(st_db *db);
    /* the schema version stored in the database (0: none) and its update,
     * inside the migration's transaction */
    int (*schema_get)(st_db *db, int *v);
    int (*schema_set)(st_db *db, int v);
    /* fills err from the connection's last error (its code mapping) */
    int (*dberr)(st_db *db, rg_error *err);
    /* after the COMMIT of a WRITE_EARLY transaction, outside every lock:
     * returns once that commit is on disk (0), or fails (the error via
     * dberr; the commit's outcome is then unknown). NULL: begin treats
     * WRITE_EARLY as WRITE (every commit durable when it answers). */
    int (*durable)(st_db *db);
    /* runs a statement whose rows and count of changes nobody reads,
     * perhaps later: its error may be reported by the transaction's next
     * statement or its commit (NULL: step runs it now) */
    int (*exec_later)(st_stmt *st);
} st_backend;

/* What every backend's connection and statement start with. stmts: the
 * statements prepared on it (rg_st_prep), for tests counting queries;
 * probe_after_ms: sessions.c's next probe for ended sessions (rg_now_ms). */
struct st_db { const st_backend *be; long stmts; int64_t probe_after_ms; };
struct st_stmt { st_db *db; };

/* Opens one connection of the backend the target names (postgresql:// or
 * postgres:// URL, or a file path, optionally prefixed "sqlite:"). */
st_db *rg_st_db_open(const char *target, rg_error *err);
/* 1 if target names a PostgreSQL database. */
int rg_st_target_is_pg(const char *target);
st_db *rg_st_sqlite_open(const char *path, rg_error *err);
/* A read-only connection to an existing file (store copy's FROM). */
st_db *rg_st_sqlite_open_ro(const char *path, rg_error *err);
st_db *rg_st_pg_open(const char *conninfo, rg_error *err);

static inline void st_finalize(st_stmt *st)
{
    if (st)
        st->db->be->finalize(st);
}
static inline int64_t st_col_int64(st_stmt *st, int i) { return st->db->be->col_int64(st, i); }
static inline int st_col_int(st_stmt *st, int i) { return (int)st->db->be->col_int64(st, i); }
static inline long st_changes(st_db *db) { return db->be->changes(db); }

/* The key hash of both backends' per-connection statement caches (FNV-1a
 * over the store's SQL text). */
static inline uint32_t st_sql_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

#endif
