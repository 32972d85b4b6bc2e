/* tx.c: the connection pool, the write lock and the transaction runner
 * (R23: every change is one transaction): rg_st_write / rg_st_read run a
 * function inside one transaction, commit or roll back, and rerun it when the
 * backend reports a serialization failure; events (R26) and table versions
 * with the change hook they feed; the members hook (issue 13: a write
 * statement on a membership or its roles, or a deletion cascading to them). */
#include <assert.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "store_impl.h"

static int pool_take(rg_store *s)
{
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (int i = 0; i < ST_POOL; i++)
            if (!s->busy[i]) {
                s->busy[i] = 1;
                pthread_mutex_unlock(&s->pool_lock);
                return i;
            }
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    }
}

static void pool_give(rg_store *s, int slot)
{
    pthread_mutex_lock(&s->pool_lock);
    assert(s->busy[slot]);
    s->busy[slot] = 0;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

/* The transaction of this thread, so rg_st_bump_* (given only the
 * connection) can record what a write bumped and a backend error can mark
 * the transaction as worth running again. */
static _Thread_local st_tx *cur_tx;

void rg_store_set_change_hook(rg_store *s, rg_store_change_fn fn, void *ctx)
{
    assert(s);
    s->on_change = fn;
    s->on_change_ctx = ctx;
}

void rg_store_set_members_hook(rg_store *s, rg_store_members_fn fn, void *ctx)
{
    assert(s);
    s->on_members = fn;
    s->on_members_ctx = ctx;
}

void rg_st_members_note(st_db *db, const char *sql)
{
    st_tx *tx = cur_tx;
    if (!tx || !tx->write || tx->db != db || tx->members_dirty || !sql)
        return;
    /* a statement writing a membership or its roles (memberships,
     * membership_roles), or a deletion that cascades to them */
    static const char *const writes[] = {"INSERT INTO membership", "UPDATE membership",
                                         "DELETE FROM membership", "DELETE FROM users",
                                         "DELETE FROM organizations"};
    for (size_t i = 0; i < sizeof writes / sizeof *writes; i++)
        if (strstr(sql, writes[i])) {
            tx->members_dirty = 1;
            return;
        }
}

static void dirty_note(st_db *db, const char *org_id)
{
    st_tx *tx = cur_tx;
    if (!tx || !tx->write || tx->db != db)
        return;   /* migrations: before any hook is set */
    if (!org_id) {
        tx->dirty_env = 1;
        return;
    }
    for (size_t i = 0; i < tx->ndirty; i++)
        if (strcmp(tx->dirty[i], org_id) == 0)
            return;
    if (rg_grow(&tx->dirty, tx->ndirty, &tx->capdirty, sizeof *tx->dirty, 4) != 0) {
        tx->dirty_env = 1;   /* reporting every table covers the lost one */
        return;
    }
    snprintf(tx->dirty[tx->ndirty++], ST_ID, "%s", org_id);
}

/* not inlined: the compiler would see cur_tx take the address of run()'s
 * local st_tx, which tx_end clears before run() returns */
/* write: 0 a read, 1 a write, 2 a write alone (rg_st_write_alone), -1 a
 * read of one statement (rg_st_read_one) */
__attribute__((noinline)) static int tx_begin(rg_store *s, st_tx *tx, int write,
                                               rg_error *err)
{
    assert(s && tx);
    int single = write < 0;
    write = write < 0 ? 0 : write;
    tx->s = s;
    tx->write = write;
    tx->dirty_env = 0;
    tx->dirty = NULL;
    tx->ndirty = tx->capdirty = 0;
    tx->retry = 0;
    tx->events = NULL;
    tx->nevents = tx->capevents = 0;
    tx->members_dirty = 0;
    /* SQLite: the write lock first, then a connection: a writer never
     * holds a connection while it waits for another writer. PostgreSQL's
     * writers run side by side under the backend's writers' lock, shared
     * (a write alone: exclusive). Under this process's lock instead
     * (d44875c) one instance ran one login at a time; without any lock
     * their conflicts starved a deletion job's long batch (test_pg_multi's
     * killed job not finished in 20 s, 1 run in 3), which now runs alone. */
    const st_backend *be = s->conns[0]->be;
    tx->locked = write && !be->durable;
    if (tx->locked)
        pthread_mutex_lock(&s->write_lock);
    tx->slot = pool_take(s);
    tx->db = s->conns[tx->slot];
    cur_tx = tx;   /* the backend's error mapping may mark it for a retry */
    int kind = single ? ST_BEGIN_SINGLE : !write ? ST_BEGIN_READ
             : !be->durable ? ST_BEGIN_WRITE
             : write == 2 ? ST_BEGIN_WRITE_ALONE : ST_BEGIN_WRITE_EARLY;
    if (tx->db->be->begin(tx->db, kind)) {
        int rc = rg_st_dberr(tx->db, err);
        cur_tx = NULL;
        pool_give(s, tx->slot);
        if (tx->locked)
            pthread_mutex_unlock(&s->write_lock);
        tx->db = NULL;
        return rc;
    }
    return 0;
}

/* One row of events, its id new (a ULID: in the order rows are made). */
static int event_row(st_db *db, const char *name, const char *text, const char *ts,
                     rg_error *err)
{
    char id[ST_ID];
    rg_id_new("event", id, sizeof id);
    return rg_st_exec_later(db, err,
                      "INSERT INTO events(id, event, data, created_at) VALUES (?, ?, ?, ?)",
                      "ssss", id, name, text, ts);
}

/* An event of a PostgreSQL write, kept until its transaction ends. */
struct st_event {
    char *name, *text;
};

static void events_free(st_tx *tx)
{
    for (size_t i = 0; i < tx->nevents; i++) {
        free(tx->events[i].name);
        free(tx->events[i].text);
    }
    free(tx->events);
    tx->events = NULL;
    tx->nevents = tx->capevents = 0;
}

/* PostgreSQL hands out seq at the INSERT, not at COMMIT: two writers could
 * commit seq 11 before seq 10, and a consumer following /events?after=
 * would never see 10 (test_pg_multi saw it). So a write's events go in at
 * its end, under one lock of the whole database held to COMMIT: seq and
 * created_at in commit order, as SQLite's single writer gives, while the
 * lock covers a few statements, not the whole write (a login: three
 * events, which under a lock taken at the first held every instance's
 * logins one at a time through most of their statements). The server makes
 * each row's seq, created_at and id after the lock is granted (EVENT_PG_SQL),
 * so nobody waits for the lock's answer: the lock, the rows and the COMMIT
 * go in one pipeline (pg_pipe.c), and the lock is held for no round trip
 * to this process (issue 15: one round trip fewer per write). The first
 * row's statement takes the lock itself, in the argument of its nextval
 * (the sequence's name with the lock's empty text appended): the lock is
 * granted before the seq is drawn, and the row's clock read in the
 * subquery around it (OFFSET 0 keeps them apart) after that; one
 * statement fewer per write. */
#define EVENT_LOCK "7526768494185166182"
#define EVENT_PG_SQL_(SEQ)                                                                  \
    "INSERT INTO events(seq, id, event, data, created_at)"                                  \
    " SELECT x.s, 'event_' || " EVENT_MS " || '000' || " EVENT_SEQ ", ?, ?,"                 \
    " to_char(x.t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"                  \
    " FROM (SELECT y.s, y.t, CAST(floor(extract(epoch FROM y.t) * 1000) AS BIGINT) AS ms"  \
    "  FROM (SELECT z.s, clock_timestamp() AS t"                                           \
    "   FROM (SELECT nextval(" SEQ ") AS s OFFSET 0) z) y) x"
#define EVENT_PG_SQL EVENT_PG_SQL_("'events_seq_seq'")
#define EVENT_PG_SQL_LOCKING                                                                \
    EVENT_PG_SQL_("CAST('events_seq_seq' || CAST(pg_advisory_xact_lock(" EVENT_LOCK ")"      \
                  " AS TEXT) AS REGCLASS)")
/* The id a ULID of the row's millisecond and its seq, in Crockford base32:
 * the millisecond's 10 digits (bits 49..0), then the 80 bits of the rest as
 * three zeros and the seq's 13 digits (seq < 2^63). Ids sort as seq does,
 * and after those rg_id_new made before them (earlier milliseconds); seq's
 * sequence is the one PostgreSQL names for the identity column of
 * migration 1 (a nextval of it as the column's default would give the row
 * the same seq). Digit by digit: an aggregate over generate_series cost
 * 10 us more per row. */
#define EVENT_DIGIT(v, shift)                                                               \
    "substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', CAST(((" v " >> " #shift ") & 31) AS INTEGER)" \
    " + 1, 1)"
#define EVENT_MS                                                                            \
    EVENT_DIGIT("x.ms", 45) "||" EVENT_DIGIT("x.ms", 40) "||" EVENT_DIGIT("x.ms", 35) "||"  \
    EVENT_DIGIT("x.ms", 30) "||" EVENT_DIGIT("x.ms", 25) "||" EVENT_DIGIT("x.ms", 20) "||"  \
    EVENT_DIGIT("x.ms", 15) "||" EVENT_DIGIT("x.ms", 10) "||" EVENT_DIGIT("x.ms", 5) "||"   \
    EVENT_DIGIT("x.ms", 0)
#define EVENT_SEQ                                                                           \
    EVENT_DIGIT("x.s", 60) "||" EVENT_DIGIT("x.s", 55) "||" EVENT_DIGIT("x.s", 50) "||"     \
    EVENT_DIGIT("x.s", 45) "||" EVENT_DIGIT("x.s", 40) "||" EVENT_DIGIT("x.s", 35) "||"     \
    EVENT_DIGIT("x.s", 30) "||" EVENT_DIGIT("x.s", 25) "||" EVENT_DIGIT("x.s", 20) "||"     \
    EVENT_DIGIT("x.s", 15) "||" EVENT_DIGIT("x.s", 10) "||" EVENT_DIGIT("x.s", 5) "||"      \
    EVENT_DIGIT("x.s", 0)

static int events_insert(st_tx *tx, rg_error *err)
{
    st_db *db = tx->db;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < tx->nevents; i++)
        rc = rg_st_exec_later(db, err, i == 0 ? EVENT_PG_SQL_LOCKING : EVENT_PG_SQL, "ss",
                              tx->events[i].name, tx->events[i].text);
    return rc;
}

static int tx_end(st_tx *tx, int rc, rg_error *err)
{
    assert(tx && tx->db);
    if (rc == 0 && tx->nevents)
        rc = events_insert(tx, err);
    events_free(tx);
    /* issue 15: the change messages go out with the commit, or not at all */
    if (rc == 0 && tx->write && tx->s->notify_chan[0])
        rc = rg_st_channel_notes(tx, err);
    if (rc == 0) {
        if (tx->db->be->commit(tx->db)) {
            rc = rg_st_dberr(tx->db, err);
            tx->db->be->rollback(tx->db);
        }
    } else {
        /* R23: a failure changes nothing */
        tx->db->be->rollback(tx->db);
    }
    cur_tx = NULL;
    if (tx->locked)
        pthread_mutex_unlock(&tx->s->write_lock);
    /* an early commit (PostgreSQL) is made durable here, outside the write
     * lock, before anyone hears of it: the caller, the change hooks */
    if (rc == 0 && tx->write && tx->db->be->durable && tx->db->be->durable(tx->db))
        rc = rg_st_dberr(tx->db, err);   /* 503: applied or not, never rerun */
    pool_give(tx->s, tx->slot);
    tx->db = NULL;
    /* after the commit and the locks: the hook may read the store */
    rg_store *s = tx->s;
    if (rc == 0 && s->on_change) {
        if (tx->dirty_env)
            s->on_change(s->on_change_ctx, NULL);
        else
            for (size_t i = 0; i < tx->ndirty; i++)
                s->on_change(s->on_change_ctx, tx->dirty[i]);
    }
    if (rc == 0 && tx->members_dirty && s->on_members)
        s->on_members(s->on_members_ctx);
    free(tx->dirty);
    tx->dirty = NULL;
    tx->ndirty = tx->capdirty = 0;
    return rc;
}

void rg_st_retry_note(st_db *db)
{
    if (cur_tx && cur_tx->db == db)
        cur_tx->retry = 1;
}

/* Backoff before attempt n (1-based) of a transaction the backend refused
 * for a conflict: 2^n ms up to 256 ms, with jitter so two instances that
 * collided do not collide again in step. */
static void retry_pause(int n)
{
    long ms = 1L << (n < 8 ? n : 8);
    ms += (long)(rg_now_ms() % (uint64_t)ms);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int run(rg_store *s, int write, st_fn fn, void *arg, json_t **out, rg_error *err)
{
    assert(s && fn);
    assert(!cur_tx);   /* transactions do not nest */
    if (out)
        *out = NULL;
    for (int attempt = 1;; attempt++) {
        st_tx tx;
        json_t *o = NULL;
        int rc = tx_begin(s, &tx, write, err);
        if (rc) {
            if (!tx.retry || attempt >= ST_TX_ATTEMPTS)
                return rc;
        } else {
            rc = tx_end(&tx, fn(&tx, arg, &o, err), err);
            if (rc == 0) {
                if (out)
                    *out = o;
                else
                    json_decref(o);
                return 0;
            }
            json_decref(o);
            if (!tx.retry || attempt >= ST_TX_ATTEMPTS)
                return rc;
        }
        rg_log(RG_LOG_INFO, "store=tx_retry attempt=%d code=%s", attempt + 1,
               err ? err->code : "");
        retry_pause(attempt);
    }
}

int rg_st_write(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err)
{
    return run(s, 1, fn, arg, out, err);
}

int rg_st_write_alone(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err)
{
    return run(s, 2, fn, arg, out, err);
}


int rg_st_read(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err)
{
    return run(s, 0, fn, arg, out, err);
}

int rg_st_read_one(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err)
{
    return run(s, -1, fn, arg, out, err);
}

int rg_st_answer(st_db *db, json_t *o, const char *event, json_t **out, rg_error *err)
{
    if (!o)
        return rg_st_rc(err);
    *out = o;
    return event ? rg_st_event(db, event, json_incref(o), err) : 0;
}

/* rg_st_get's transaction: arg is the st_get_arg. */
typedef struct get_arg { st_builder build; const char *id; } get_arg;

static int get_fn(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const get_arg *g = arg;
    *out = g->build(tx->db, g->id ? g->id : "", err);
    return *out ? 0 : rg_st_rc(err);
}

int rg_st_get(rg_store *s, st_builder build, const char *id, json_t **out, rg_error *err)
{
    get_arg g = { build, id };
    return rg_st_read(s, get_fn, &g, out, err);
}

int rg_st_rc(const rg_error *err)
{
    if (err && err->kind < 0)
        return err->kind;   /* what the failing helper said */
    switch (err ? err->status : 500) {   /* an error filled by status alone */
    case 404: return RG_ENOTFOUND;
    case 409: return RG_ECONFLICT;
    case 422: return RG_EUNPROCESSABLE;
    default: return err && !strcmp(err->code, "out_of_memory") ? RG_ENOMEM : RG_EIO;
    }
}

/* ---- events and versions ------------------------------------------------------ */

int rg_st_event(st_db *db, const char *name, json_t *data, rg_error *err)
{
    assert(name);
    if (!data)
        data = json_object();
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text)
        return rg_st_oom(err);
    st_tx *tx = cur_tx && cur_tx->db == db ? cur_tx : NULL;
    if (tx && tx->write && rg_st_db_is_pg(db)) {
        /* inserted at the transaction's end (events_insert) */
        char *n = strdup(name);
        if (!n || rg_grow(&tx->events, tx->nevents, &tx->capevents, sizeof *tx->events, 4)) {
            free(n);
            free(text);
            return rg_st_oom(err);
        }
        struct st_event *e = &tx->events[tx->nevents++];
        e->name = n;
        e->text = text;
        return 0;
    }
    char ts[ST_TS];
    rg_st_now(ts);
    int rc = event_row(db, name, text, ts, err);
    free(text);
    return rc;
}

int rg_st_bump_env(st_db *db, rg_error *err)
{
    dirty_note(db, NULL);
    return rg_st_exec(db, err, "UPDATE environment SET version = version + 1 WHERE id = 1",
                      "");
}

int rg_st_bump_org(st_db *db, const char *org_id, rg_error *err)
{
    dirty_note(db, org_id);
    return rg_st_exec(db, err, "UPDATE organizations SET version = version + 1 WHERE id = ?",
                      "s", org_id);
}

