/* be_pg.c: the PostgreSQL backend of the store interface (backend.h) over
 * libpq (issue 15). A statement's SQL is translated (pg_sql.c) and prepared
 * on the server (PQprepare) once per connection: a bounded cache of each
 * connection's prepared statements, keyed by the store's SQL text, dropped
 * when the connection is reset; the statement runs (PQexecPrepared) with
 * text parameters at its first step, whose whole
 * result the next steps walk (so a statement may be stepped while others
 * run on the same connection, as the store's builders do). Writes run
 * SERIALIZABLE, reads REPEATABLE READ (one snapshot), migrations under an
 * advisory lock with the schema version in table rolegate_schema. The
 * runner's writes commit early (synchronous_commit off: their locks go
 * before the disk flush) and pg_durable, outside the runner's locks, makes
 * each durable before its caller hears of it. Errors:
 * SQLSTATE 40001 / 40P01 (serialization failure, deadlock) and 23505
 * (unique violation: a racing writer on another instance) mark the
 * transaction for the runner's retry (its rerun then answers what SQLite
 * would: the entity's own 409) and answer 503 store_conflict / 409 conflict
 * when the attempts run out; a lost server 503 store_unavailable (the
 * connection is reset at the next begin); anything else 500 store_error. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pg_sql.h"
#include "rolegate/util.h"
#include "store_impl.h"

/* A statement prepared on the connection: its name is "rg<id>". pins:
 * statements prepared but not yet run (never evicted while pinned). */
#define PG_PREP_MAX 128
typedef struct pg_prep {
    char *key;          /* the store's SQL text (NULL: a free entry) */
    uint32_t hash;
    int nparams;
    long id;
    int pins;
    unsigned long used; /* the cache clock at its last use (LRU) */
} pg_prep;

typedef struct pg_db {
    st_db base;
    PGconn *conn;
    pg_prep prep[PG_PREP_MAX];
    long prep_next;               /* the next statement name's number */
    unsigned long prep_clock;
    long changes;
    int commit_failed;   /* the last error was COMMIT's: its outcome unknown */
    int early_ok;        /* the server lets this role emit a WAL message (durable) */
    int early;           /* the running transaction commits early (WRITE_EARLY) */
    int flush_owed;      /* its COMMIT answered, its flush not yet waited for */
    int single;          /* the running read is one statement: no BEGIN / COMMIT */
    char sqlstate[6];
    char msg[200];
} pg_db;

typedef struct pg_stmt {
    st_stmt base;
    int slot;           /* its entry of db->prep */
    long id;            /* that entry's id when prepared */
    int pinned;
    int nparams;
    char **vals;
    PGresult *res;
    int row, nrows;
} pg_stmt;

#define PDB(db) ((pg_db *)(db))
#define PST(st) ((pg_stmt *)(st))

/* Records the error of res (NULL: of the connection) on db. */
static void note_err(pg_db *db, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m)
        m = PQerrorMessage(db->conn);
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s",
             state ? state : PQstatus(db->conn) == CONNECTION_BAD ? "08006" : "XX000");
    snprintf(db->msg, sizeof db->msg, "%s", m ? m : "");
    size_t n = strlen(db->msg);
    while (n && (db->msg[n - 1] == '\n' || db->msg[n - 1] == ' '))
        db->msg[--n] = 0;
}

static int pg_dberr(st_db *d, rg_error *err)
{
    pg_db *db = PDB(d);
    const char *s = db->sqlstate;
    if (!strcmp(s, "40001") || !strcmp(s, "40P01")) {
        rg_st_retry_note(d);
        return rg_error_set(err, RG_EUNAVAIL, "store_conflict", NULL,
                            "postgresql: %s (SQLSTATE %s)", db->msg, s);
    }
    if (!strcmp(s, "26000") || !strcmp(s, "0A000")) {
        rg_st_retry_note(d);   /* a prepared statement dropped: its rerun prepares it */
        return rg_error_set(err, RG_EIO, "store_error", NULL,
                            "postgresql: %s (SQLSTATE %s)", db->msg, s);
    }
    if (!strcmp(s, "23505")) {
        rg_st_retry_note(d);
        return rg_error_set(err, RG_ECONFLICT, "conflict", NULL, "postgresql: %s",
                            db->msg);
    }
    if (!strncmp(s, "08", 2) || PQstatus(db->conn) == CONNECTION_BAD) {
        /* nothing of the transaction was kept: run it again on a new
         * connection (the runner's backoff is the reconnect's), unless
         * the COMMIT itself was cut (it may have been applied) */
        if (!db->commit_failed)
            rg_st_retry_note(d);
        return rg_error_set(err, RG_EUNAVAIL, "store_unavailable", NULL,
                            "postgresql: %s", db->msg);
    }
    return rg_error_set(err, RG_EIO, "store_error", NULL, "postgresql: %s (SQLSTATE %s)",
                        db->msg, s);
}

/* Forgets every prepared statement (the server's are gone with its
 * session: a reset connection). */
static void prep_clear(pg_db *db)
{
    for (int i = 0; i < PG_PREP_MAX; i++) {
        free(db->prep[i].key);
        db->prep[i] = (pg_prep){0};
    }
}

static void pg_close(st_db *d)
{
    if (!d)
        return;
    PQfinish(PDB(d)->conn);
    prep_clear(PDB(d));
    free(d);
}

static void prep_name(char out[24], long id)
{
    snprintf(out, 24, "rg%ld", id);
}

/* The entry to fill for a new statement: a free one, else the least
 * recently used unpinned one, deallocated on the server. -1 when every
 * entry is pinned or the DEALLOCATE fails (the error noted on db). */
static int prep_victim(pg_db *db)
{
    int v = -1;
    for (int i = 0; i < PG_PREP_MAX; i++) {
        if (!db->prep[i].key)
            return i;
        if (!db->prep[i].pins && (v < 0 || db->prep[i].used < db->prep[v].used))
            v = i;
    }
    if (v < 0) {
        snprintf(db->sqlstate, sizeof db->sqlstate, "54000");
        snprintf(db->msg, sizeof db->msg, "every prepared statement is in use");
        return -1;
    }
    char name[24], sql[40];
    prep_name(name, db->prep[v].id);
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    PGresult *r = PQexec(db->conn, sql);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        note_err(db, r);
    PQclear(r);
    free(db->prep[v].key);
    db->prep[v] = (pg_prep){0};
    return ok ? v : -1;
}

/* The cache entry of sql, prepared on the server at its first use on this
 * connection; -1 with the error noted on db. */
static int prep_get(pg_db *db, const char *sql)
{
    uint32_t h = st_sql_hash(sql);
    for (int i = 0; i < PG_PREP_MAX; i++)
        if (db->prep[i].key && db->prep[i].hash == h && !strcmp(db->prep[i].key, sql)) {
            db->prep[i].used = ++db->prep_clock;
            return i;
        }
    int nparams = 0;
    char *text = rg_st_pg_sql(sql, &nparams);
    char *key = strdup(sql);
    int v = text && key ? prep_victim(db) : -1;
    if (v >= 0) {
        char name[24];
        long id = ++db->prep_next;
        prep_name(name, id);
        PGresult *r = PQprepare(db->conn, name, text, nparams, NULL);
        if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
            db->prep[v] = (pg_prep){ key, h, nparams, id, 0, ++db->prep_clock };
            key = NULL;
        } else {
            note_err(db, r);
            if (getenv("RG_PG_DEBUG"))
                fprintf(stderr, "pg error %s: %s\n", db->msg, text);
            v = -1;
        }
        PQclear(r);
    } else if (!text || !key) {
        snprintf(db->sqlstate, sizeof db->sqlstate, "53200");
        snprintf(db->msg, sizeof db->msg, "out of memory");
    }
    free(text);
    free(key);
    return v;
}

static st_stmt *pg_prepare(st_db *d, const char *sql, rg_error *err)
{
    pg_db *db = PDB(d);
    pg_stmt *st = calloc(1, sizeof *st);
    if (!st) {
        rg_st_oom(err);
        return NULL;
    }
    int slot = prep_get(db, sql);
    if (slot < 0) {
        free(st);
        pg_dberr(d, err);
        return NULL;
    }
    st->nparams = db->prep[slot].nparams;
    if (st->nparams && !(st->vals = calloc((size_t)st->nparams, sizeof *st->vals))) {
        free(st);
        rg_st_oom(err);
        return NULL;
    }
    st->slot = slot;
    st->id = db->prep[slot].id;
    st->pinned = 1;
    db->prep[slot].pins++;
    st->base.db = d;
    st->row = -1;
    return &st->base;
}

static void stmt_unpin(pg_stmt *st)
{
    pg_db *db = PDB(st->base.db);
    if (st->pinned && db->prep[st->slot].id == st->id)
        db->prep[st->slot].pins--;
    st->pinned = 0;
}

static int pg_bind_text(st_stmt *s, int idx, const char *v)
{
    pg_stmt *st = PST(s);
    if (idx < 1 || idx > st->nparams) {
        snprintf(PDB(s->db)->sqlstate, 6, "XX000");
        snprintf(PDB(s->db)->msg, sizeof PDB(s->db)->msg, "bind index %d out of range", idx);
        return RG_EINVAL;
    }
    free(st->vals[idx - 1]);
    st->vals[idx - 1] = NULL;
    if (v && !(st->vals[idx - 1] = strdup(v))) {
        snprintf(PDB(s->db)->sqlstate, 6, "53200");
        snprintf(PDB(s->db)->msg, sizeof PDB(s->db)->msg, "out of memory");
        return RG_ENOMEM;
    }
    return 0;
}

static int pg_bind_int64(st_stmt *st, int idx, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)v);
    return pg_bind_text(st, idx, t);
}

static int pg_step(st_stmt *s)
{
    pg_stmt *st = PST(s);
    pg_db *db = PDB(s->db);
    if (!st->res) {
        char name[24];
        prep_name(name, st->id);
        st->res = PQexecPrepared(db->conn, name, st->nparams, (const char *const *)st->vals,
                                 NULL, NULL, 0);
        stmt_unpin(st);
        ExecStatusType es = st->res ? PQresultStatus(st->res) : PGRES_FATAL_ERROR;
        if (es == PGRES_COMMAND_OK) {
            db->changes = strtol(PQcmdTuples(st->res), NULL, 10);
            st->nrows = 0;
        } else if (es == PGRES_TUPLES_OK) {
            st->nrows = PQntuples(st->res);
            const char *ct = PQcmdTuples(st->res);
            if (ct && *ct)   /* INSERT ... SELECT / RETURNING */
                db->changes = strtol(ct, NULL, 10);
        } else {
            note_err(db, st->res);
            if (getenv("RG_PG_DEBUG"))
                fprintf(stderr, "pg error %s: %s\n", db->msg, name);
            /* the server lost the statement (DISCARD, a pooler) or its plan
             * no longer fits the schema: prepared again at its next use */
            if ((!strcmp(db->sqlstate, "26000") || !strcmp(db->sqlstate, "0A000")) &&
                db->prep[st->slot].id == st->id && !db->prep[st->slot].pins) {
                free(db->prep[st->slot].key);
                db->prep[st->slot] = (pg_prep){0};
            }
            PQclear(st->res);
            st->res = NULL;
            return RG_EIO;
        }
    }
    if (st->row + 1 < st->nrows) {
        st->row++;
        return 1;
    }
    st->row = st->nrows;
    return 0;
}

static const char *pg_col_text(st_stmt *s, int i)
{
    pg_stmt *st = PST(s);
    if (!st->res || st->row < 0 || st->row >= st->nrows || i >= PQnfields(st->res) ||
        PQgetisnull(st->res, st->row, i))
        return NULL;
    return PQgetvalue(st->res, st->row, i);
}

static int64_t pg_col_int64(st_stmt *s, int i)
{
    const char *v = pg_col_text(s, i);
    if (!v)
        return 0;
    if (!strcmp(v, "t"))
        return 1;
    if (!strcmp(v, "f"))
        return 0;
    return strtoll(v, NULL, 10);
}

static void pg_finalize(st_stmt *s)
{
    pg_stmt *st = PST(s);
    stmt_unpin(st);
    PQclear(st->res);
    for (int i = 0; i < st->nparams; i++)
        free(st->vals[i]);
    free(st->vals);
    free(st);
}

static long pg_changes(st_db *d)
{
    return PDB(d)->changes;
}

/* Runs text (no parameters, maybe several statements). */
static int run(pg_db *db, const char *text)
{
    PGresult *r = PQexec(db->conn, text);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int ok = es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK;
    if (!ok)
        note_err(db, r);
    PQclear(r);
    return ok ? 0 : RG_EIO;
}

static int pg_exec_script(st_db *d, const char *sql)
{
    char *ddl = rg_st_pg_ddl(sql);
    if (!ddl) {
        snprintf(PDB(d)->sqlstate, 6, "53200");
        snprintf(PDB(d)->msg, sizeof PDB(d)->msg, "out of memory");
        return RG_ENOMEM;
    }
    int rc = run(PDB(d), ddl);
    free(ddl);
    return rc;
}

/* The advisory lock key of migrations: any constant shared by every
 * rolegate ("rolegate" in ASCII). */
#define MIGRATE_LOCK "7526768494185166181"
/* The writers' lock: every runner write takes it shared, a write alone
 * exclusively (the key after the events' 7526768494185166182, tx.c). */
#define WRITERS_LOCK "7526768494185166183"

static int pg_begin(st_db *d, int kind)
{
    pg_db *db = PDB(d);
    db->commit_failed = 0;
    db->early = 0;
    db->single = 0;
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        prep_clear(db);   /* the server's statements went with its session */
        PQreset(db->conn);
        if (PQstatus(db->conn) == CONNECTION_BAD) {
            note_err(db, NULL);
            return RG_EIO;
        }
        rg_log(RG_LOG_INFO, "store=postgresql_reconnected");
    }
    switch (kind) {
    case ST_BEGIN_SINGLE:   /* the statement is its own snapshot */
        db->single = 1;
        return 0;
    case ST_BEGIN_READ:
        return run(db, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    case ST_BEGIN_WRITE:
        return run(db, "BEGIN ISOLATION LEVEL SERIALIZABLE");
    case ST_BEGIN_WRITE_EARLY:
    case ST_BEGIN_WRITE_ALONE: {
        char sql[200];
        db->early = db->early_ok;
        snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL SERIALIZABLE;%s SELECT %s(%s)",
                 db->early ? " SET LOCAL synchronous_commit = off;" : "",
                 kind == ST_BEGIN_WRITE_ALONE ? "pg_advisory_xact_lock"
                                              : "pg_advisory_xact_lock_shared",
                 WRITERS_LOCK);
        return run(db, sql);
    }
    default:
        return run(db, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ");"
                       " CREATE TABLE IF NOT EXISTS rolegate_schema(version INTEGER NOT NULL);"
                       " INSERT INTO rolegate_schema SELECT 0"
                       " WHERE NOT EXISTS (SELECT 1 FROM rolegate_schema)");
    }
}

static int pg_commit(st_db *d)
{
    pg_db *db = PDB(d);
    if (db->single) {
        db->single = 0;
        return 0;
    }
    int rc = run(db, "COMMIT");
    db->commit_failed = rc != 0;
    db->flush_owed = rc == 0 && db->early;
    db->early = 0;
    return rc;
}

/* Durability after an early commit. The transaction committed with
 * synchronous_commit off: its COMMIT answered before the WAL flush, so the
 * runner could release its write lock (and the events' advisory lock was
 * released) without waiting a disk flush, which serialized every writer
 * (3.1 ms per fdatasync here: ~300 writes/s for one instance). Here,
 * outside every lock, a transactional WAL message in its own synchronous
 * commit waits for the WAL to be flushed past that message, so past this
 * connection's earlier commit: the caller hears of the write only once it
 * is on disk, as with a synchronous commit, while concurrent writers share
 * flushes (group commit). What another reader can see before the flush is
 * what PostgreSQL's own asynchronous commit shows for those milliseconds;
 * a crash in them loses a write that no caller was told of. */
static int pg_durable(st_db *d)
{
    pg_db *db = PDB(d);
    if (!db->flush_owed)
        return 0;
    db->flush_owed = 0;
    int rc = run(db, "SELECT pg_logical_emit_message(true, 'rolegate', 'durable')");
    if (rc)
        db->commit_failed = 1;   /* applied, maybe not on disk: never rerun */
    return rc;
}

static void pg_rollback(st_db *d)
{
    PDB(d)->early = 0;
    if (PDB(d)->single) {
        PDB(d)->single = 0;
        return;
    }
    PGresult *r = PQexec(PDB(d)->conn, "ROLLBACK");
    PQclear(r);
}

static int pg_schema_get(st_db *d, int *v)
{
    PGresult *r = PQexec(PDB(d)->conn, "SELECT version FROM rolegate_schema");
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        *v = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    else
        note_err(PDB(d), r);
    PQclear(r);
    return ok ? 0 : RG_EIO;
}

static int pg_schema_set(st_db *d, int v)
{
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE rolegate_schema SET version = %d", v);
    return run(PDB(d), sql);
}

static const st_backend pg_backend = {
    "postgresql",   pg_close,      pg_prepare,    pg_bind_text,  pg_bind_int64,
    pg_step,        pg_col_text,   pg_col_int64,  pg_finalize,   pg_changes,
    pg_exec_script, pg_begin,      pg_commit,     pg_rollback,   pg_schema_get,
    pg_schema_set,  pg_dberr,      pg_durable,
};

/* Notices (e.g. "relation already exists, skipping") are not errors. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

st_db *rg_st_pg_open(const char *conninfo, rg_error *err)
{
    pg_db *db = calloc(1, sizeof *db);
    if (!db) {
        rg_st_oom(err);
        return NULL;
    }
    db->base.be = &pg_backend;
    db->conn = PQconnectdb(conninfo);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        /* the message names host and port, never the password */
        note_err(db, NULL);
        rg_error_set(err, RG_EUNAVAIL, "store_unavailable", NULL, "postgresql: %s", db->msg);
        pg_close(&db->base);
        return NULL;
    }
    PQsetNoticeProcessor(db->conn, quiet, NULL);
    if (run(db, "SET client_encoding = 'UTF8'")) {
        pg_dberr(&db->base, err);
        pg_close(&db->base);
        return NULL;
    }
    /* early commits need pg_logical_emit_message (any wal_level; a role
     * may be refused it): without it every write commits synchronously */
    db->early_ok = run(db, "SELECT pg_logical_emit_message(true, 'rolegate', 'open')") == 0;
    if (!db->early_ok)
        rg_log(RG_LOG_INFO, "store=postgresql_sync_commit reason=\"%s\"", db->msg);
    return &db->base;
}
