/* store_impl.h: what the files of src/store share and nobody else sees: the
 * store struct (connection pool, write lock), transactions (R23), statement
 * helpers, events (R26), version bumps, lists, role lookups and the role
 * table loader (R9-R11). */
#ifndef ROLEGATE_STORE_IMPL_H
#define ROLEGATE_STORE_IMPL_H

#include <pthread.h>
#include "backend.h"
#include <stdint.h>
#include "rolegate/store.h"

#define ST_POOL 4
#define ST_ID 64          /* room for any "<prefix>_<ULID>" id */
#define ST_TS 32          /* room for an ISO 8601 timestamp */

struct rg_store {
    char *path;
    pthread_mutex_t pool_lock;      /* guards busy[] */
    pthread_cond_t pool_cond;       /* a connection became free */
    st_db *conns[ST_POOL];
    int busy[ST_POOL];
    pthread_mutex_t write_lock;     /* one writer at a time */
    pthread_mutex_t jobs_lock;      /* one job runner at a time */
    int schema_version;
    rg_store_change_fn on_change;   /* set before threads start */
    void *on_change_ctx;
    rg_store_members_fn on_members; /* issue 13: a membership row changed */
    void *on_members_ctx;
    /* issue 15: the change channel every write's changes are sent on inside
     * its transaction (PostgreSQL NOTIFY; "" none): notify.c */
    char notify_chan[64];
    char notify_members[64];
};

/* A transaction on one pooled connection. */
typedef struct st_tx {
    rg_store *s;
    st_db *db;
    int slot;
    int write;
    int locked;                     /* it holds s->write_lock (SQLite's writers) */
    /* the table versions this write bumped (rg_st_bump_*), reported to
     * s->on_change after the commit */
    int dirty_env;                  /* also set when an org id could not be kept */
    char (*dirty)[ST_ID];
    size_t ndirty, capdirty;
    int members_dirty;              /* a membership or its roles written (rg_st_members_note) */
    int retry;                      /* the backend refused it for a conflict */
    /* PostgreSQL: the events it wrote (rg_st_event), inserted at its end */
    struct st_event *events;
    size_t nevents, capevents;
} st_tx;

/* ---- the transaction runner (tx.c) ----------------------------------------
 * Every public function of the store is one call of the runner around one
 * st_fn (R23: every change is one transaction). fn does its reads and
 * writes on tx->db and may leave an object in *out (NULL on entry). The
 * runner commits when fn returns 0 and then hands *out to the caller's out
 * (or drops it when out is NULL); when fn or the commit fails it rolls back,
 * drops *out and returns the error. When the backend marks the transaction
 * as refused for a conflict (a serialization failure or deadlock:
 * rg_st_retry_note), the runner rolls back, waits a little and runs fn again
 * from the start, up to ST_TX_ATTEMPTS times, so fn must not consume its
 * arguments (copy or incref what it hands to rg_st_event) and must leave
 * nothing in arg that a second run would not overwrite.
 * Write: SQLite: the write lock (one writer per process), a connection,
 * BEGIN IMMEDIATE. PostgreSQL: a connection, SERIALIZABLE with the writers'
 * advisory lock taken shared (concurrent writers of every instance met by
 * the retry), committed early and made durable after (be_pg.c). A write
 * alone (rg_st_write_alone: the deletion jobs' batches) takes that lock
 * exclusively: no other writer of any instance runs beside it, so a long
 * batch is never starved by the conflicts of many short writes. Read: a
 * connection, one snapshot (BEGIN; REPEATABLE READ). Transactions do not
 * nest. */
/* 16: three instances of test_pg_multi on a loaded 2-core machine ran out
 * of 8 (a membership POST answered 503 store_conflict); the later attempts
 * wait 256-512 ms each, so a refused writer gives up after about 4 s. */
#define ST_TX_ATTEMPTS 16
typedef int (*st_fn)(st_tx *tx, void *arg, json_t **out, rg_error *err);
int  rg_st_write(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err);
int  rg_st_write_alone(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err);
int  rg_st_read(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err);
/* A read whose fn runs ONE statement: on PostgreSQL outside an explicit
 * transaction (the statement is its own snapshot: no BEGIN and COMMIT round
 * trips, issue 15), on SQLite as rg_st_read. */
int  rg_st_read_one(rg_store *s, st_fn fn, void *arg, json_t **out, rg_error *err);
/* The usual end of a change inside an st_fn: o (what the builder made, NULL
 * when it failed with err filled) becomes *out, and when event is set it is
 * emitted with a copy of o (R26). The runner drops *out if anything fails
 * later. */
int  rg_st_answer(st_db *db, json_t *o, const char *event, json_t **out, rg_error *err);
/* Marks the transaction running on db (if any) as worth running again: for
 * the backend's error mapping. */
void rg_st_retry_note(st_db *db);

/* The error kind of a failed helper that filled err: the kind it set
 * (e.g. RG_EUNAVAIL for a database gone, RG_ECONFLICT for a slug taken),
 * so the rc a store function returns and the status of its err agree. An
 * err filled by status alone maps 404 RG_ENOTFOUND, 409 RG_ECONFLICT, 422
 * RG_EUNPROCESSABLE, else RG_ENOMEM or RG_EIO. */
int  rg_st_rc(const rg_error *err);

/* Statements: fmt has one char per '?': 's' const char * (NULL binds NULL),
 * 'i' int, 'I' int64_t, 'n' NULL (no argument). */
st_stmt *rg_st_prep(st_db *db, rg_error *err, const char *sql, const char *fmt, ...);
/* 1 row, 0 done, negative error (err filled). */
int  rg_st_step(st_db *db, st_stmt *st, rg_error *err);
/* Runs a statement to completion. Returns 0 or negative. */
int  rg_st_exec(st_db *db, rg_error *err, const char *sql, const char *fmt, ...);
/* The same for a write whose count of changes (st_changes) nobody reads:
 * on PostgreSQL it is sent without waiting for its answer, which the
 * transaction's next statement or its commit reads in the same round trip
 * (pg_pipe.c); its error, then reported there, fails the transaction as
 * well. On SQLite it runs now. */
int  rg_st_exec_later(st_db *db, rg_error *err, const char *sql, const char *fmt, ...);
/* First column of the first row as text into out: 1 found, 0 none, negative
 * error. */
int  rg_st_text(st_db *db, rg_error *err, char *out, size_t outsz, const char *sql,
                const char *fmt, ...);
/* First column of the first row as integer: 1 found, 0 none, negative. */
int  rg_st_int(st_db *db, rg_error *err, int64_t *out, const char *sql,
               const char *fmt, ...);
int  rg_st_dberr(st_db *db, rg_error *err);
/* migrate.c: brings the schema of db up to this build's version. */
int  rg_st_migrate(st_db *db, int *version, rg_error *err);
const char *rg_st_col(st_stmt *st, int i);   /* NULL for SQL NULL */
void rg_st_now(char out[ST_TS]);
int  rg_st_oom(rg_error *err);
int  rg_st_not_found(rg_error *err, const char *field, const char *what, const char *id);
/* The end of an object built from the one row of st (rc is rg_st_step's):
 * with the row, o NULL is err ENOMEM, else o gets the row's "created_at" and
 * "updated_at" from columns at, at + 1 (none when at < 0); no row (rc 0) is
 * 404 not_found on "id" naming what and id. Finalizes st; returns o (NULL on
 * an error). */
json_t *rg_st_row_object(st_stmt *st, int rc, json_t *o, int at, const char *what,
                         const char *id, rg_error *err);
/* The object of the one row that sql (whose one parameter is id) selects:
 * row(st) builds it (NULL: out of memory), then rg_st_row_object. */
json_t *rg_st_object(st_db *db, const char *sql, const char *id, json_t *(*row)(st_stmt *st),
                     int at, const char *what, rg_error *err);
/* A role's or permission's name (checked when given, or always when
 * name_required) and description; 422 on the field that fails. */
int  rg_st_text_check(const char *name, int name_required, const char *description,
                      rg_error *err);
/* 1 if a PATCH's name or description (NULL: not given) differs from the
 * "name" / "description" of the object before. */
int  rg_st_text_changed(const json_t *before, const char *name, const char *description);
/* A display name (organization, connection, user name): 1..255 bytes, no
 * control characters; else 422 invalid_request on field. */
int  rg_st_label_check(const char *s, const char *field, rg_error *err);

/* Issue 13: inserts the session record r of membership_id (sessions.c). */
int  rg_st_session_insert(st_db *db, const rg_store_session_rec *r,
                          const char *membership_id, rg_error *err);
/* R26: inserts an event; data is stolen (NULL: {}). */
int  rg_st_event(st_db *db, const char *name, json_t *data, rg_error *err);
/* Table versions: the environment's (all tables) or one organization's. */
/* Issue 13: notes, in the running write transaction on db, a statement
 * (its SQL, called by every prepare) that writes a membership or its roles,
 * or deletes what cascades to them: the members hook runs after the commit. */
void rg_st_members_note(st_db *db, const char *sql);
/* Issue 15 (notify.c): inside tx, before its commit, sends on the store's
 * change channel what the write bumped or wrote (nothing when no channel is
 * set or nothing changed). 0 or the backend's error. */
int  rg_st_channel_notes(st_tx *tx, rg_error *err);
int  rg_st_bump_env(st_db *db, rg_error *err);
int  rg_st_bump_org(st_db *db, const char *org_id, rg_error *err);

/* A connection without its client_secret. */
json_t *rg_st_conn_public(st_db *db, const char *id, rg_error *err);
/* A list object with before/after cursors (both may be NULL). data stolen. */
json_t *rg_st_list_object(json_t *data, const char *before, const char *after);
/* Builds one object from its id. */
typedef json_t *(*st_builder)(st_db *db, const char *id, rg_error *err);
/* One read transaction: *out = build(db, id) (id NULL: ""). */
int  rg_st_get(rg_store *s, st_builder build, const char *id, json_t **out, rg_error *err);
/* Builds the objects of n ids at once with a constant number of queries: a
 * JSON array (caller owns) in the order of ids, or NULL with err filled. */
typedef json_t *(*st_batch_builder)(st_db *db, const char (*ids)[ST_ID], size_t n,
                                    rg_error *err);
/* Emits `event` with the object built by fn for every id that sql (one text
 * parameter) selects. */
int  rg_st_emit_each(st_db *db, const char *sql, const char *param, st_builder fn,
                     const char *event, rg_error *err);
/* A cursor-paginated list over table (column id; cursor key column key,
 * e.g. "id" or "seq"); where: an extra SQL condition over columns of table
 * or ""; bind1, bind2: up to 2 text parameters of where (NULL: none); opts:
 * the caller's limit, order and cursors; one object per id from build, or
 * the page's objects at once from batch (hot lists: memberships, a constant
 * number of queries whatever the page size). */
typedef struct st_list_q {
    const char *table, *key, *where, *bind1, *bind2;
    const rg_store_list_opts *opts;
    int default_desc;
    st_builder build;
    st_batch_builder batch;
} st_list_q;
/* The list inside the current transaction. */
int  rg_st_list(st_db *db, const st_list_q *q, json_t **out, rg_error *err);
/* The list in a read transaction of its own. */
int  rg_st_read_list(rg_store *s, const st_list_q *q, json_t **out, rg_error *err);
/* A JSON array text of the n ids (malloc'd, NULL when out of memory), to
 * bind to "... IN (SELECT value FROM json_each(?))". */
char *rg_st_ids_json(const char (*ids)[ST_ID], size_t n);
/* Roles. */
typedef struct st_role {
    char id[ST_ID];
    char slug[RG_SLUG_MAX + 1];
    char org_id[ST_ID];        /* "" for an environment role */
    int deleting;
} st_role;
/* Finds a role by slug visible in the scope (org_id NULL: environment roles;
 * else environment + that organization's roles). own_only: only roles owned
 * by the scope. with_deleting: roles being deleted too. 1 found, 0 not,
 * negative error. */
int  rg_st_role_find(st_db *db, const char *org_id, const char *slug, int own_only,
                     int with_deleting, st_role *r, rg_error *err);
json_t *rg_st_role_json(st_db *db, const char *role_id, rg_error *err);
/* R11: every active role visible in the scope (org_id NULL: the
 * environment's), as a JSON object slug -> role object (the shape of
 * rg_st_role_json), in two queries whatever the number of roles. Caller
 * owns it; NULL with err filled. */
json_t *rg_st_roles_by_slug(st_db *db, const char *org_id, rg_error *err);
/* 1 if the organization exists, 0 not, negative error. */
int  rg_st_org_exists(st_db *db, const char *org_id, rg_error *err);
/* R9: makes an organization independent (own default = the environment's,
 * own order = copy of the environment's). No-op if it already is. */
int  rg_st_org_make_independent(st_db *db, const char *org_id, rg_error *err);
json_t *rg_st_org_json(st_db *db, const char *org_id, rg_error *err);
json_t *rg_st_membership_json(st_db *db, const char *om_id, rg_error *err);
json_t *rg_st_user_json(st_db *db, const char *user_id, rg_error *err);
/* Inserts a user row (a new id into id) and emits user.created. 0 or negative. */
int  rg_st_user_insert(st_db *db, const char *email, const char *first, const char *last,
                       char id[ST_ID], rg_error *err);
json_t *rg_st_connection_json(st_db *db, const char *conn_id, int with_secret,
                              rg_error *err);
/* The columns of a connection row its digest is made of, in their order
 * (ST_CONN_DIGEST_COLS of them, each qualified by alias a), and the digest
 * (rg_store_connection_digest) of the row's columns from col on: 0 or
 * negative (out of memory). */
#define ST_CONN_DIGEST_COLS 7
#define ST_CONN_DIGEST_SELECT(a) \
    a ".id, " a ".organization_id, " a ".type, " a ".name, " a ".config, " a ".created_at, " \
    a ".updated_at"
int  rg_st_connection_digest_row(st_stmt *st, int col, unsigned char dg[32], rg_error *err);
/* 1 when db is a PostgreSQL connection. */
int  rg_st_db_is_pg(const st_db *db);

/* Loads the scope's role table inside the current transaction (a constant
 * number of queries: environment, organization, roles, permissions, order,
 * mappings). */
int  rg_st_table_load(st_db *db, const char *org_id, rg_role_table **out, rg_error *err);
/* The same table without permissions and mappings: same roles, order,
 * defaults and multiple_roles, for callers that only rank, list or assign
 * roles (never for a login's resolution). */
int  rg_st_table_load_order(st_db *db, const char *org_id, rg_role_table **out,
                            rg_error *err);
/* The scope's table version (environment + organization version; the
 * environment's alone for org_id NULL), as rg_st_table_load stamps it.
 * 1 found, 0 no such organization, < 0 error. */
int  rg_st_table_version(st_db *db, const char *org_id, uint64_t *out, rg_error *err);

/* ---- shared by the entity files ------------------------------------------ */
/* The event name of a role change: role.<what> for an environment role
 * (org_id NULL), organization_role.<what> else; what: created, updated,
 * deleted. */
const char *rg_st_role_event(const char *org_id, const char *what);
/* 404 organization_id for a scope naming no organization (NULL: fine). */
int  rg_st_scope_check(st_db *db, const char *org_id, rg_error *err);
/* The scope's own active role by slug, or 404 slug. */
int  rg_st_own_role(st_db *db, const char *org_id, const char *slug, st_role *r,
                    rg_error *err);
/* R8/R11: the scope's roles in its table's order as a list object. */
int  rg_st_role_list(st_db *db, const char *org_id, json_t **out, rg_error *err);
/* A permission's id by slug: 1 found (id filled), 0 not, negative error. */
int  rg_st_perm_find(st_db *db, const char *slug, char id[ST_ID], rg_error *err);

/* ---- passes over many memberships (membership_roles.c) --------------------
 * R14 and R20 both walk memberships, rank each one's roles by its
 * organization's table and rewrite them; the rows are read first (the pass
 * writes to the same tables), sorted by organization so each table loads
 * once per run of rows. */
typedef struct st_om_row { char id[ST_ID], org[ST_ID], source[16]; } st_om_row;
/* Steps st (columns: membership id, organization id, role_source) to its end
 * or to max rows (0: no limit) into *rows (malloc'd, the caller frees; NULL
 * and 0 on failure) and finalizes st. */
int  rg_st_om_rows(st_db *db, st_stmt *st, size_t max, st_om_row **rows, size_t *n,
                   rg_error *err);
/* Calls fn for each row in order with the order table of its organization
 * (rg_st_table_load_order, reloaded when the organization changes) and the
 * membership's current roles (rg_st_membership_roles); stops at the first
 * non-zero return. */
typedef int (*st_om_fn)(st_db *db, const st_om_row *row, const rg_role_table *t,
                        const rg_slugs *cur, void *arg, rg_error *err);
int  rg_st_om_each(st_db *db, const st_om_row *rows, size_t n, st_om_fn fn, void *arg,
                   rg_error *err);

/* Membership roles: the slugs in the organization's priority order (deleting
 * roles included, at the end). Clear with rg_slugs_clear. */
/* R11 in SQL, for a membership m and its roles r: the organization's order
 * (its own when independent, else the environment's), roles being deleted
 * last. rg_st_membership_roles and the login's first statement share it. */
#define ST_ROLE_ORDER_JOIN                                                      \
    " LEFT JOIN organizations ro ON ro.id = m.organization_id"                  \
    " LEFT JOIN priorities p ON p.role_id = r.id"                               \
    "  AND p.scope = CASE WHEN ro.independent <> 0 THEN ro.id ELSE '' END"
#define ST_ROLE_ORDER_BY " ORDER BY r.status <> 'active', p.position IS NULL, p.position, r.slug"
/* Appends a strdup of slug to out (grown by rg_grow; *cap its capacity). */
int  rg_st_slug_push(rg_slugs *out, size_t *cap, const char *slug, rg_error *err);
/* Steps st to its end, appending a strdup of column 0 of each row to out
 * (out->v NULL or grown by realloc; out->n rows so far), and finalizes st.
 * On failure out is cleared. */
int  rg_st_slugs_collect(st_db *db, st_stmt *st, rg_slugs *out, rg_error *err);
int  rg_st_membership_roles(st_db *db, const char *om_id, rg_slugs *out, rg_error *err);
/* Replaces a membership's roles (slugs visible in its organization, or being
 * deleted) and sets role_source and updated_at. */
int  rg_st_membership_write(st_db *db, const char *om_id, const char *org_id,
                            const char *const *slugs, size_t n, const char *source,
                            rg_error *err);
/* 1 if the two slug lists hold the same set. */
int  rg_st_same_set(const char *const *a, size_t na, const char *const *b, size_t nb);

#endif
