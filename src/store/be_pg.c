/* be_pg.c: the PostgreSQL backend of the store interface (backend.h) over
 * libpq (issue 15). A statement's SQL is translated (pg_sql.c) and prepared
 * on the server (PQprepare) once per connection: a bounded cache of each
 * connection's prepared statements, keyed by the store's SQL text, dropped
 * when the connection is reset; the statement runs (PQexecPrepared) with
 * text parameters at its first step, whose whole
 * result the next steps walk (so a statement may be stepped while others
 * run on the same connection, as the store's builders do). Writes run
 * SERIALIZABLE, reads REPEATABLE READ (one snapshot; a read of one
 * statement outside a transaction), migrations under an advisory lock with
 * the schema version in table rolegate_schema. A transaction's BEGIN goes
 * with its first statement, and the statements nobody waits for with the
 * next one or the COMMIT, in libpq's pipeline mode (pg_pipe.c). The
 * runner's writes commit early (synchronous_commit off: their locks go
 * before the disk flush) and are made durable, outside the runner's locks,
 * before their caller hears of them (pg_durable). Errors:
 * SQLSTATE 40001 / 40P01 (serialization failure, deadlock) and 23505
 * (unique violation: a racing writer on another instance) mark the
 * transaction for the runner's retry (its rerun then answers what SQLite
 * would: the entity's own 409) and answer 503 store_conflict / 409 conflict
 * when the attempts run out; a lost server 503 store_unavailable (the
 * connection is reset at the next begin); anything else 500 store_error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pg_impl.h"
#include "pg_sql.h"
#include "rolegate/util.h"

/* Records the error of res (NULL: of the connection) on db. */
void rg_st_pg_note_err(pg_db *db, const PGresult *res)
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
    rg_st_pg_name(name, db->prep[v].id);
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    PGresult *r = PQexec(db->conn, sql);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        rg_st_pg_note_err(db, r);
    PQclear(r);
    free(db->prep[v].key);
    db->prep[v] = (pg_prep){0};
    return ok ? v : -1;
}

/* The cache entry of sql, prepared on the server at its first use on this
 * connection; -1 with the error noted on db. */
int rg_st_pg_prep_get(pg_db *db, const char *sql)
{
    uint32_t h = st_sql_hash(sql);
    for (int i = 0; i < PG_PREP_MAX; i++)
        if (db->prep[i].key && db->prep[i].hash == h && !strcmp(db->prep[i].key, sql)) {
            db->prep[i].used = ++db->prep_clock;
            return i;
        }
    /* PQprepare (and a DEALLOCATE) wait for their answer: not in a pipeline */
    if (rg_st_pg_pipe_sync(db))
        return -1;
    int nparams = 0;
    char *text = rg_st_pg_sql(sql, &nparams);
    char *key = strdup(sql);
    int v = text && key ? prep_victim(db) : -1;
    if (v >= 0) {
        char name[24];
        long id = ++db->prep_next;
        rg_st_pg_name(name, id);
        PGresult *r = PQprepare(db->conn, name, text, nparams, NULL);
        if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
            db->prep[v] = (pg_prep){ key, h, nparams, id, 0, ++db->prep_clock };
            key = NULL;
        } else {
            rg_st_pg_note_err(db, r);
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
    int slot = rg_st_pg_prep_get(db, sql);
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

void rg_st_pg_prep_lost(pg_db *db, int slot, long id)
{
    /* the server lost the statement (DISCARD, a pooler) or its plan no
     * longer fits the schema: prepared again at its next use */
    if ((!strcmp(db->sqlstate, "26000") || !strcmp(db->sqlstate, "0A000")) &&
        db->prep[slot].id == id && !db->prep[slot].pins) {
        free(db->prep[slot].key);
        db->prep[slot] = (pg_prep){0};
    }
}

static int pg_step(st_stmt *s)
{
    pg_stmt *st = PST(s);
    pg_db *db = PDB(s->db);
    if (!st->res) {
        char name[24];
        rg_st_pg_name(name, st->id);
        if (rg_st_pg_pending(db)) {   /* after a BEGIN or statements not answered yet */
            int rc = rg_st_pg_pipe_step(db, name, st->nparams, (const char *const *)st->vals,
                                        &st->res);
            stmt_unpin(st);
            if (rc)
                return rc;
        } else {
            st->res = PQexecPrepared(db->conn, name, st->nparams,
                                     (const char *const *)st->vals, NULL, NULL, 0);
            stmt_unpin(st);
        }
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
            rg_st_pg_note_err(db, st->res);
            if (getenv("RG_PG_DEBUG"))
                fprintf(stderr, "pg error %s: %s\n", db->msg, name);
            rg_st_pg_prep_lost(db, st->slot, st->id);
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

/* Runs text (no parameters, maybe several statements), after what is
 * pending: a BEGIN not sent goes in front of it. */
static int run(pg_db *db, const char *text)
{
    if (rg_st_pg_pipe_sync(db))
        return RG_EIO;
    char joined[400];
    if (db->nbegin) {
        size_t o = 0;
        for (int i = 0; i < db->nbegin; i++)
            o += (size_t)snprintf(joined + o, sizeof joined - o, "%s; ", db->begin_q[i]);
        db->nbegin = 0;
        char *t = NULL;
        if (o + strlen(text) >= sizeof joined && !(t = malloc(o + strlen(text) + 1))) {
            snprintf(db->sqlstate, sizeof db->sqlstate, "53200");
            snprintf(db->msg, sizeof db->msg, "out of memory");
            return RG_ENOMEM;
        }
        if (t) {
            memcpy(t, joined, o);
            strcpy(t + o, text);
        } else {
            strcpy(joined + o, text);
        }
        int rc = run(db, t ? t : joined);
        free(t);
        return rc;
    }
    PGresult *r = PQexec(db->conn, text);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int ok = es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK;
    if (!ok)
        rg_st_pg_note_err(db, r);
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

/* SET LOCAL synchronous_commit = off, as a select list's column */
#define EARLY_SET " set_config('synchronous_commit', 'off', true)"

/* The statements of the BEGIN each kind sends with its first statement. */
static void begin_queue(pg_db *db, int kind)
{
    db->nbegin = 0;
    db->begin_q[db->nbegin++] = kind == ST_BEGIN_READ ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
                                                      : "BEGIN ISOLATION LEVEL SERIALIZABLE";
    if (kind != ST_BEGIN_WRITE_EARLY && kind != ST_BEGIN_WRITE_ALONE)
        return;
    /* the lock and the early commit's SET LOCAL in one statement */
    static const char *const lock[2][2] = {
        { "SELECT pg_advisory_xact_lock_shared(" WRITERS_LOCK ")",
          "SELECT pg_advisory_xact_lock_shared(" WRITERS_LOCK ")," EARLY_SET },
        { "SELECT pg_advisory_xact_lock(" WRITERS_LOCK ")",
          "SELECT pg_advisory_xact_lock(" WRITERS_LOCK ")," EARLY_SET },
    };
    db->early = db->early_ok;
    db->begin_q[db->nbegin++] = lock[kind == ST_BEGIN_WRITE_ALONE][db->early != 0];
}

static int pg_begin(st_db *d, int kind)
{
    pg_db *db = PDB(d);
    db->commit_failed = 0;
    db->early = 0;
    db->single = 0;
    db->flush_failed = 0;
    db->nbegin = 0;
    rg_st_pg_pipe_sync(db);   /* nothing is left there: a failed rollback's */
    if (PQstatus(db->conn) == CONNECTION_BAD || db->broken) {
        prep_clear(db);   /* the server's statements went with its session */
        db->broken = db->piped = db->nq = 0;
        PQreset(db->conn);
        if (PQstatus(db->conn) == CONNECTION_BAD) {
            rg_st_pg_note_err(db, NULL);
            return RG_EIO;
        }
        rg_log(RG_LOG_INFO, "store=postgresql_reconnected");
    }
    switch (kind) {
    case ST_BEGIN_SINGLE:   /* the statement is its own snapshot */
        db->single = 1;
        return 0;
    case ST_BEGIN_READ:
    case ST_BEGIN_WRITE:
    case ST_BEGIN_WRITE_EARLY:
    case ST_BEGIN_WRITE_ALONE:
        begin_queue(db, kind);   /* sent with the first statement (pg_pipe.c) */
        return 0;
    default:
        return run(db, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ");"
                       " CREATE TABLE IF NOT EXISTS rolegate_schema(version INTEGER NOT NULL);"
                       " INSERT INTO rolegate_schema SELECT 0"
                       " WHERE NOT EXISTS (SELECT 1 FROM rolegate_schema)");
    }
}

/* A transaction that ran no statement has nothing to commit; an early one
 * commits in one pipeline with its durability message (pg_durable). */
static int pg_commit(st_db *d)
{
    pg_db *db = PDB(d);
    int rc = 0, flush_rc = 0;
    if (db->single || db->nbegin)
        db->single = db->nbegin = 0;
    else if (db->early || db->piped)
        rc = rg_st_pg_pipe_commit(db, db->early ? PG_DURABLE_SQL : NULL, &flush_rc);
    else
        rc = run(db, "COMMIT");
    db->commit_failed = rc != 0;
    db->flush_failed = rc == 0 && flush_rc;
    db->early = 0;
    return rc;
}

/* Durability after an early commit. The transaction committed with
 * synchronous_commit off: its COMMIT releases its locks (the writers' and
 * the events' advisory locks, its row locks) before the WAL flush, without
 * waiting a disk flush, which serialized every writer (3.1 ms per
 * fdatasync here: ~300 writes/s for one instance). After it in the same
 * pipeline (pg_commit), a transactional WAL message in its own synchronous
 * commit waits for the WAL to be flushed past that message, so past the
 * COMMIT: pg_commit returns, and the caller hears of the write, only once
 * it is on disk, as with a synchronous commit, while concurrent writers
 * share flushes (group commit). What another reader can see before the
 * flush is what PostgreSQL's own asynchronous commit shows for those
 * milliseconds; a crash in them loses a write that no caller was told of.
 * Here: the message's failure (the commit applied, maybe not on disk). */
static int pg_durable(st_db *d)
{
    pg_db *db = PDB(d);
    if (!db->flush_failed)
        return 0;   /* on disk: pg_commit waited for the message's flush */
    db->flush_failed = 0;
    db->commit_failed = 1;   /* applied, maybe not on disk: never rerun */
    return RG_EIO;
}

static void pg_rollback(st_db *d)
{
    pg_db *db = PDB(d);
    db->early = 0;
    if (db->single || db->nbegin) {   /* nothing was sent */
        db->single = db->nbegin = 0;
        return;
    }
    if (db->piped) {
        /* a failed statement left the rest skipped: their answers read */
        char state[6], msg[200];
        memcpy(state, db->sqlstate, sizeof state);
        memcpy(msg, db->msg, sizeof msg);
        rg_st_pg_pipe_sync(db);
        memcpy(db->sqlstate, state, sizeof state);
        memcpy(db->msg, msg, sizeof msg);
    }
    if (!db->broken)
        PQclear(PQexec(db->conn, "ROLLBACK"));
}

static int pg_schema_get(st_db *d, int *v)
{
    PGresult *r = PQexec(PDB(d)->conn, "SELECT version FROM rolegate_schema");
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        *v = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    else
        rg_st_pg_note_err(PDB(d), r);
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
    pg_schema_set,  pg_dberr,      pg_durable,    rg_st_pg_exec_later,
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
    /* client_encoding as a connection option, after the URL so that it
     * wins: PQreset reconnects with the options, where a SET would be
     * lost with the session it was made in */
    static const char *const kw[] = {"dbname", "client_encoding", NULL};
    const char *val[] = {conninfo, "UTF8", NULL};
    db->conn = PQconnectdbParams(kw, val, 1);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        /* the message names host and port, never the password */
        rg_st_pg_note_err(db, NULL);
        rg_error_set(err, RG_EUNAVAIL, "store_unavailable", NULL, "postgresql: %s", db->msg);
        pg_close(&db->base);
        return NULL;
    }
    PQsetNoticeProcessor(db->conn, quiet, NULL);
    /* early commits need pg_logical_emit_message (any wal_level; a role
     * may be refused it): without it every write commits synchronously */
    db->early_ok = run(db, "SELECT pg_logical_emit_message(true, 'rolegate', 'open')") == 0;
    if (!db->early_ok)
        rg_log(RG_LOG_INFO, "store=postgresql_sync_commit reason=\"%s\"", db->msg);
    return &db->base;
}
