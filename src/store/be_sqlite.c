/* be_sqlite.c: the SQLite backend of the store interface (backend.h): one
 * connection per database file in WAL mode (readers beside the one writer,
 * a 10 s busy timeout, foreign keys on), statements prepared as written,
 * BEGIN IMMEDIATE for writes and migrations, the schema version in PRAGMA
 * user_version. Every error answers 500 store_error "sqlite: ...". */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include "backend.h"

typedef struct lite_db { st_db base; sqlite3 *h; } lite_db;
typedef struct lite_stmt { st_stmt base; sqlite3_stmt *h; } lite_stmt;

#define H(db) (((lite_db *)(db))->h)
#define SH(st) (((lite_stmt *)(st))->h)

static const st_backend lite_backend;

static int lite_dberr(st_db *db, rg_error *err)
{
    return rg_error_set(err, RG_EIO, 500, "store_error", NULL, "sqlite: %s",
                        db ? sqlite3_errmsg(H(db)) : "no connection");
}

static void lite_close(st_db *db)
{
    if (!db)
        return;
    sqlite3_close(H(db));
    free(db);
}

static st_stmt *lite_prepare(st_db *db, const char *sql, rg_error *err)
{
    lite_stmt *st = calloc(1, sizeof *st);
    if (!st) {
        rg_error_oom(err);
        return NULL;
    }
    st->base.db = db;
    if (sqlite3_prepare_v2(H(db), sql, -1, &st->h, NULL) != SQLITE_OK) {
        lite_dberr(db, err);
        sqlite3_finalize(st->h);
        free(st);
        return NULL;
    }
    return &st->base;
}

static int lite_bind_text(st_stmt *st, int idx, const char *v)
{
    int rc = v ? sqlite3_bind_text(SH(st), idx, v, -1, SQLITE_TRANSIENT)
               : sqlite3_bind_null(SH(st), idx);
    return rc == SQLITE_OK ? 0 : RG_EIO;
}

static int lite_bind_int64(st_stmt *st, int idx, int64_t v)
{
    return sqlite3_bind_int64(SH(st), idx, (sqlite3_int64)v) == SQLITE_OK ? 0 : RG_EIO;
}

static int lite_step(st_stmt *st)
{
    int rc = sqlite3_step(SH(st));
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : RG_EIO;
}

static const char *lite_col_text(st_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(SH(st), i);
}

static int64_t lite_col_int64(st_stmt *st, int i)
{
    return sqlite3_column_int64(SH(st), i);
}

static void lite_finalize(st_stmt *st)
{
    sqlite3_finalize(SH(st));
    free(st);
}

static long lite_changes(st_db *db)
{
    return sqlite3_changes(H(db));
}

static int lite_exec_script(st_db *db, const char *sql)
{
    return sqlite3_exec(H(db), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : RG_EIO;
}

static int lite_begin(st_db *db, int kind)
{
    return lite_exec_script(db, kind == ST_BEGIN_READ ? "BEGIN" : "BEGIN IMMEDIATE");
}

static int lite_commit(st_db *db)
{
    return lite_exec_script(db, "COMMIT");
}

static void lite_rollback(st_db *db)
{
    sqlite3_exec(H(db), "ROLLBACK", NULL, NULL, NULL);
}

static int lite_schema_get(st_db *db, int *v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(H(db), "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return RG_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : RG_EIO;
}

static int lite_schema_set(st_db *db, int v)
{
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v);
    return lite_exec_script(db, pragma);
}

static const st_backend lite_backend = {
    "sqlite",         lite_close,      lite_prepare,     lite_bind_text,  lite_bind_int64,
    lite_step,        lite_col_text,   lite_col_int64,   lite_finalize,   lite_changes,
    lite_exec_script, lite_begin,      lite_commit,      lite_rollback,   lite_schema_get,
    lite_schema_set,  lite_dberr,
};

/* flags: SQLite's open flags; ro: a read-only connection (no journal mode
 * change: it would need to write). */
static st_db *lite_open(const char *path, int flags, int ro, rg_error *err)
{
    lite_db *db = calloc(1, sizeof *db);
    if (!db) {
        rg_error_oom(err);
        return NULL;
    }
    db->base.be = &lite_backend;
    int rc = sqlite3_open_v2(path, &db->h, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        lite_dberr(&db->base, err);
        lite_close(&db->base);
        return NULL;
    }
    sqlite3_busy_timeout(db->h, 10000);
    /* WAL: readers run beside the writer; NORMAL sync is durable in WAL
     * except for the last transactions at power loss, never corrupt. */
    if (sqlite3_exec(db->h, ro ? "PRAGMA query_only=ON;"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                 " PRAGMA foreign_keys=ON;", NULL, NULL, NULL) != SQLITE_OK) {
        lite_dberr(&db->base, err);
        lite_close(&db->base);
        return NULL;
    }
    return &db->base;
}

st_db *rg_st_sqlite_open(const char *path, rg_error *err)
{
    return lite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0, err);
}

st_db *rg_st_sqlite_open_ro(const char *path, rg_error *err)
{
    return lite_open(path, SQLITE_OPEN_READONLY, 1, err);
}
