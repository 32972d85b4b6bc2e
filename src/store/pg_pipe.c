/* pg_pipe.c: libpq's pipeline mode in the PostgreSQL backend (issue 15):
 * fewer round trips per transaction. A transaction's BEGIN (with the
 * writers' lock and an early commit's synchronous_commit in one statement;
 * both, and the COMMIT, prepared on the connection: no parse or plan per
 * run) waits on the connection and goes with its first statement; a statement whose answer its caller does not need
 * (rg_st_exec_later: no rows read, no count of changes) is sent without
 * waiting; the next statement that needs its answer, or the COMMIT, goes
 * after them in the same pipeline, and one sync reads every answer in
 * order. The first error among them is the transaction's: the server skips
 * what follows a failed statement up to the sync, so nothing runs after it
 * and the runner rolls back (and reruns on a conflict, as before). An
 * early commit's COMMIT and its durability message go in one pipeline too:
 * the COMMIT still releases the locks before the flush, the message's own
 * synchronous commit at the sync waits for it, and the answer is read only
 * after that. */
#include "pg_impl.h"

static int queue_add(pg_db *db, int ok, int slot, long id)
{
    if (!ok) {
        rg_st_pg_note_err(db, NULL);
        return RG_EIO;
    }
    db->q[db->nq].slot = slot;
    db->q[db->nq].id = id;
    db->nq++;
    return 0;
}

static int pipe_enter(pg_db *db)
{
    if (db->piped)
        return 0;
    if (!PQenterPipelineMode(db->conn)) {
        rg_st_pg_note_err(db, NULL);
        return RG_EIO;
    }
    db->piped = 1;
    db->nq = 0;
    return 0;
}

/* sql (no parameters) as the connection's prepared statement: no parse
 * and no plan per run, as an unnamed statement has. pipe_open prepares a
 * transaction's ahead of its pipeline (a PQprepare waits for its answer);
 * one evicted since is prepared again after what is queued is read. */
static int send_text(pg_db *db, const char *sql)
{
    int slot = rg_st_pg_prep_get(db, sql);
    if (slot < 0 || pipe_enter(db))
        return RG_EIO;
    char name[24];
    long id = db->prep[slot].id;
    rg_st_pg_name(name, id);
    return queue_add(db, PQsendQueryPrepared(db->conn, name, 0, NULL, NULL, NULL, 0), slot, id);
}

/* Pipeline mode on, the pending BEGIN sent, room for n more statements. */
static int pipe_open(pg_db *db, int n)
{
    if (db->piped && db->nq + n > PG_PIPE_MAX && rg_st_pg_pipe_sync(db))
        return RG_EIO;
    if (!db->piped) {
        for (int i = 0; i < db->nbegin; i++)
            if (rg_st_pg_prep_get(db, db->begin_q[i]) < 0)
                return RG_EIO;
        if (db->nbegin && (rg_st_pg_prep_get(db, "COMMIT") < 0 ||
                           (db->early && rg_st_pg_prep_get(db, PG_DURABLE_SQL) < 0)))
            return RG_EIO;
    }
    int rc = pipe_enter(db);
    for (int i = 0; rc == 0 && i < db->nbegin; i++)
        rc = send_text(db, db->begin_q[i]);
    db->nbegin = 0;
    return rc;
}

/* The connection is reset at the next begin (its pipeline state unknown). */
static void pipe_broken(pg_db *db)
{
    db->piped = 0;
    db->nq = 0;
    db->broken = 1;
}

/* After the sync: reads every answer and leaves pipeline mode. keep >= 0:
 * that statement's result goes to *kept (not noted) when nothing before it
 * failed. Returns the index of the first failed statement (its error noted
 * unless quiet: an error noted before), or -1. */
static int pipe_read(pg_db *db, int keep, PGresult **kept, int quiet)
{
    int k = 0, first = quiet ? 0 : -1, nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(db->conn);
        if (!r) {
            if (PQstatus(db->conn) == CONNECTION_BAD || ++nulls > 1) {
                if (first < 0) {
                    rg_st_pg_note_err(db, NULL);
                    first = k;
                }
                break;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType es = PQresultStatus(r);
        if (es == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        int i = k++;
        if (i == keep && first < 0) {
            *kept = r;
            continue;
        }
        if (first < 0 && es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK &&
            es != PGRES_PIPELINE_ABORTED) {
            rg_st_pg_note_err(db, r);
            first = i;
            if (i < db->nq && db->q[i].slot >= 0)
                rg_st_pg_prep_lost(db, db->q[i].slot, db->q[i].id);
        }
        PQclear(r);
    }
    if (PQstatus(db->conn) == CONNECTION_BAD || !PQexitPipelineMode(db->conn)) {
        if (first < 0) {
            rg_st_pg_note_err(db, NULL);
            first = k;
        }
        pipe_broken(db);
        return first;
    }
    db->piped = 0;
    db->nq = 0;
    return first;
}

static int sync_read(pg_db *db, int keep, PGresult **kept, int quiet)
{
    if (!db->piped && quiet)   /* failed before its pipeline (a prepare): nothing sent */
        return 0;
    if (!PQpipelineSync(db->conn)) {
        if (!quiet)
            rg_st_pg_note_err(db, NULL);
        pipe_broken(db);
        return 0;
    }
    return pipe_read(db, keep, kept, quiet);
}

int rg_st_pg_pipe_sync(pg_db *db)
{
    if (!db->piped)
        return 0;
    return sync_read(db, -1, NULL, 0) < 0 ? 0 : RG_EIO;
}

int rg_st_pg_pipe_step(pg_db *db, const char *name, int nparams, const char *const *vals,
                       PGresult **res)
{
    *res = NULL;
    if (pipe_open(db, 1) ||
        queue_add(db, PQsendQueryPrepared(db->conn, name, nparams, vals, NULL, NULL, 0), -1,
                  0)) {
        sync_read(db, -1, NULL, 1);
        return RG_EIO;
    }
    int self = db->nq - 1;
    int first = sync_read(db, self, res, 0);
    if (first >= 0 && first < self) {
        PQclear(*res);
        *res = NULL;
        return RG_EIO;
    }
    if (!*res) {   /* the connection went before its answer */
        if (first < 0)
            rg_st_pg_note_err(db, NULL);
        return RG_EIO;
    }
    return 0;
}

int rg_st_pg_exec_later(st_stmt *s)
{
    pg_stmt *st = PST(s);
    pg_db *db = PDB(s->db);
    char name[24];
    rg_st_pg_name(name, st->id);
    if (pipe_open(db, 1) ||
        queue_add(db, PQsendQueryPrepared(db->conn, name, st->nparams,
                                          (const char *const *)st->vals, NULL, NULL, 0),
                  st->slot, st->id)) {
        sync_read(db, -1, NULL, 1);
        return RG_EIO;
    }
    return 0;
}

int rg_st_pg_pipe_commit(pg_db *db, const char *durable_sql, int *flush_rc)
{
    *flush_rc = 0;
    if (pipe_open(db, 2) || send_text(db, "COMMIT") ||
        (durable_sql && send_text(db, durable_sql))) {
        sync_read(db, -1, NULL, 1);
        return RG_EIO;
    }
    int commit = db->nq - (durable_sql ? 2 : 1);
    int first = sync_read(db, -1, NULL, 0);
    if (first < 0)
        return 0;
    if (first <= commit)
        return RG_EIO;
    *flush_rc = RG_EIO;   /* committed, maybe not on disk */
    return 0;
}
