/* be_sqlite.c: the SQLite backend of the store interface (backend.h): one
 * connection per database file in WAL mode (readers beside the one writer,
 * a 10 s busy timeout, foreign keys on), BEGIN IMMEDIATE for writes and
 * migrations, the schema version in PRAGMA user_version. Every error answers
 * 500 store_error "sqlite: ...".
 *
 * Statements are kept per connection, keyed by their SQL text (LITE_CACHE
 * of them, least recently used out): the ACS profile showed
 * sqlite3_prepare_v2 at 17.6% of rolegate's CPU, every login preparing the
 * same few dozen statements again. A finalize of a cached statement resets
 * it and clears its bindings; a statement in use is never handed out twice
 * (a second prepare of the same text while the first is open gets a new
 * one, uncached when every slot is busy). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"

#define LITE_CACHE 64

typedef struct lite_stmt {
    st_stmt base;
    sqlite3_stmt *h;
    char *sql;          /* the key, NULL for an uncached statement */
    uint32_t hash;
    int busy;           /* handed out and not finalized yet */
    uint64_t used;      /* LRU tick */
} lite_stmt;

typedef struct lite_db {
    st_db base;
    sqlite3 *h;
    lite_stmt *cache[LITE_CACHE];
    int ncache;
    uint64_t tick;
} lite_db;

#define H(db) (((lite_db *)(db))->h)
#define SH(st) (((lite_stmt *)(st))->h)

static const st_backend lite_backend;

static int lite_dberr(st_db *db, rg_error *err)
{
    return rg_error_set(err, RG_EIO, "store_error", NULL, "sqlite: %s",
                        db ? sqlite3_errmsg(H(db)) : "no connection");
}

static void lite_stmt_free(lite_stmt *st)
{
    sqlite3_finalize(st->h);
    free(st->sql);
    free(st);
}

static void lite_close(st_db *db)
{
    if (!db)
        return;
    lite_db *ld = (lite_db *)db;
    for (int i = 0; i < ld->ncache; i++)
        lite_stmt_free(ld->cache[i]);
    sqlite3_close(ld->h);
    free(db);
}

/* The slot a new statement of this text may take: a free one, else the
 * least recently used idle one (finalized first), else -1 (all busy). */
static int lite_slot(lite_db *ld)
{
    if (ld->ncache < LITE_CACHE)
        return ld->ncache++;
    int victim = -1;
    for (int i = 0; i < LITE_CACHE; i++)
        if (!ld->cache[i]->busy && (victim < 0 || ld->cache[i]->used < ld->cache[victim]->used))
            victim = i;
    if (victim >= 0) {
        lite_stmt_free(ld->cache[victim]);
        ld->cache[victim] = NULL;
    }
    return victim;
}

static st_stmt *lite_prepare(st_db *db, const char *sql, rg_error *err)
{
    lite_db *ld = (lite_db *)db;
    uint32_t hash = st_sql_hash(sql);
    for (int i = 0; i < ld->ncache; i++) {
        lite_stmt *c = ld->cache[i];
        if (c->hash == hash && !c->busy && strcmp(c->sql, sql) == 0) {
            c->busy = 1;
            c->used = ++ld->tick;
            return &c->base;
        }
    }
    lite_stmt *st = calloc(1, sizeof *st);
    if (!st) {
        rg_error_oom(err);
        return NULL;
    }
    st->base.db = db;
    if (sqlite3_prepare_v3(H(db), sql, -1, SQLITE_PREPARE_PERSISTENT, &st->h, NULL)
        != SQLITE_OK) {
        lite_dberr(db, err);
        lite_stmt_free(st);
        return NULL;
    }
    st->busy = 1;
    st->used = ++ld->tick;
    st->hash = hash;
    /* cached when the key copies and a slot is free or idle; else it is
     * an uncached statement, freed at its finalize */
    st->sql = strdup(sql);
    int slot = st->sql ? lite_slot(ld) : -1;
    if (slot >= 0) {
        ld->cache[slot] = st;
    } else {
        free(st->sql);
        st->sql = NULL;
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
    lite_stmt *ls = (lite_stmt *)st;
    if (!ls->sql) {
        lite_stmt_free(ls);
        return;
    }
    sqlite3_reset(ls->h);
    sqlite3_clear_bindings(ls->h);
    ls->busy = 0;
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
    return lite_exec_script(db, kind == ST_BEGIN_READ || kind == ST_BEGIN_SINGLE ? "BEGIN"
                                                                     : "BEGIN IMMEDIATE");
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
    lite_schema_set,  lite_dberr,      NULL,   /* durable: every commit is */
    NULL,             /* exec_later: every statement runs at once */
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
     * except for the last transactions at power loss, never corrupt.
     * cache_size: 512 KiB of pages per connection, not SQLite's 2 MiB.
     * There is one connection per worker thread, and each one's cache
     * fills as the tables grow, so the default showed as RSS growth over
     * a long run of logins (issue 17's soak); the kernel's page cache
     * holds the file anyway, so a smaller cache only costs copies. */
    if (sqlite3_exec(db->h, ro ? "PRAGMA query_only=ON; PRAGMA cache_size=-512;"
                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                 " PRAGMA foreign_keys=ON; PRAGMA cache_size=-512;",
                     NULL, NULL, NULL) != SQLITE_OK) {
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
