/* pg_impl.h: what the PostgreSQL backend's files share (be_pg.c, the
 * backend; pg_pipe.c, its pipelines): the connection with its cache of
 * prepared statements and its pipeline state, and the statement. Only
 * these two files include it. */
#ifndef ROLEGATE_STORE_PG_IMPL_H
#define ROLEGATE_STORE_PG_IMPL_H

#include <libpq-fe.h>
#include <stdio.h>
#include "store_impl.h"

/* A statement prepared on the connection: its name is "rg<id>". pins:
 * statements prepared but not yet run (never evicted while pinned). */
#define PG_PREP_MAX 128
#define PG_PIPE_MAX 64   /* statements in one pipeline, at most */
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
    int flush_failed;    /* its COMMIT answered, its durability message failed */
    int single;          /* the running read is one statement: no BEGIN / COMMIT */
    /* pg_pipe.c: the BEGIN statements not sent yet (they go with the first
     * statement), and the pipeline: its statements sent, answers not read */
    const char *begin_q[3];
    int nbegin;
    int piped;           /* in libpq's pipeline mode */
    int broken;          /* its pipeline state lost: reset at the next begin */
    int nq;
    struct pg_queued { int slot; long id; } q[PG_PIPE_MAX];   /* slot -1: a text */
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


/* be_pg.c: records the error of res (NULL: of the connection) on db; forgets
 * the cache entry slot when the server lost its statement (SQLSTATE 26000
 * or 0A000 noted) and nothing pins it. */
void rg_st_pg_note_err(pg_db *db, const PGresult *res);
void rg_st_pg_prep_lost(pg_db *db, int slot, long id);
/* be_pg.c: the cache entry of sql, prepared on the server at its first use
 * on this connection (outside a pipeline: one before it is read first); -1
 * with the error noted on db. */
int rg_st_pg_prep_get(pg_db *db, const char *sql);

/* An early commit's durability message (be_pg.c, pg_durable). */
#define PG_DURABLE_SQL "SELECT pg_logical_emit_message(true, 'rolegate', 'durable')"

/* The server-side name of prepared statement id. */
static inline void rg_st_pg_name(char out[24], long id)
{
    snprintf(out, 24, "rg%ld", id);
}

/* pg_pipe.c. Pending: a BEGIN not sent or a pipeline not read. */
static inline int rg_st_pg_pending(const pg_db *db) { return db->nbegin || db->piped; }
/* The statement run after what is pending, in one round trip: 0 and *res
 * its result (maybe an error result, not yet noted), or RG_EIO with the
 * error noted (something before it failed, or the connection). */
int rg_st_pg_pipe_step(pg_db *db, const char *name, int nparams, const char *const *vals,
                       PGresult **res);
/* Sends the statement without waiting for its answer (backend.h
 * exec_later): 0, or RG_EIO with the error noted. */
int rg_st_pg_exec_later(st_stmt *st);
/* Reads the answers of the pipeline and leaves pipeline mode (a BEGIN not
 * sent stays so): 0, or RG_EIO with the first error noted. */
int rg_st_pg_pipe_sync(pg_db *db);
/* COMMIT after what is pending, with durable the durability message
 * (pg_durable's) after it, in one round trip: 0 committed (*flush_rc 0 on
 * disk, else RG_EIO with the error noted), or RG_EIO (not committed, or
 * its outcome unknown when the connection was lost) with the error noted. */
int rg_st_pg_pipe_commit(pg_db *db, const char *durable_sql, int *flush_rc);

#endif
