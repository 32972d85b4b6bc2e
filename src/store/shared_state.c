/* shared_state.c: what several instances must share when no Redis is
 * configured, kept in the store (issue 15): the SAML replay cache and the
 * OIDC back-channel logout jti cache (ids seen, each with its connection
 * for the per-connection quota of issue 11 item 12) and one-time login
 * state (pending SAML RelayState / request id, OIDC state, nonce and PKCE
 * verifier, logout state). One table of migration 5, shared_state(k, v,
 * scope, expires_ms): a row past expires_ms is treated as absent and each
 * write deletes up to SHARED_PRUNE of them (bounded, through the index on
 * expires_ms; PostgreSQL skips the rows another instance is pruning). Each
 * call is ONE statement in a transaction of its own (plus the count of the
 * quota and the prune): insert-if-absent for an id (ON CONFLICT, the rows
 * counted), delete-and-return for taking a state (one-time use however
 * many instances race). On PostgreSQL these run in the runner's read
 * transactions (REPEATABLE READ, no process write lock: they touch no
 * role rule, and a concurrent writer of the same key is met by the
 * serialization-failure retry); on SQLite (one machine: the cache layer
 * keeps these in process) in its write transactions. */
#include <stdlib.h>
#include <string.h>
#include "rolegate/util.h"
#include "store_impl.h"

#define SHARED_PRUNE "16"   /* expired rows deleted per write */
#define SHARED_FULL 2        /* claim_tx: the scope's quota (rolls back) */

int rg_store_shared_supported(const rg_store *s)
{
    return s && rg_st_target_is_pg(s->path);
}

static int run(rg_store *s, st_fn fn, void *arg, rg_error *err)
{
    return rg_store_shared_supported(s) ? rg_st_read(s, fn, arg, NULL, err)
                                        : rg_st_write(s, fn, arg, NULL, err);
}

static int prune(st_db *db, int64_t now_ms, rg_error *err)
{
    return rg_st_exec(db, err,
                      "DELETE FROM shared_state WHERE k IN (SELECT k FROM shared_state"
                      " WHERE expires_ms <= ? ORDER BY expires_ms LIMIT " SHARED_PRUNE
                      " /* pg: FOR UPDATE SKIP LOCKED */)", "I", now_ms);
}

/* 0, or the error (500: the cache layer makes the keys) with its kind */
static int bad_args(const rg_store *s, const char *key, rg_error *err)
{
    if (!s)
        return rg_error_set(err, RG_EINTERNAL, "store_error", NULL, "no store");
    if (key && *key && strlen(key) <= RG_STORE_SHARED_KEY_MAX)
        return 0;
    return rg_error_set(err, RG_EINTERNAL, "store_error", "key",
                        "a shared state key is 1..%d bytes", RG_STORE_SHARED_KEY_MAX);
}

typedef struct claim_arg {
    const char *key, *scope;
    long quota;
    int64_t now_ms, expires_ms;
    int taken;      /* out: 0 taken, 1 held */
} claim_arg;

/* 1: the scope holds more than its quota once this one is in */
static int over_quota(st_db *db, const claim_arg *a, rg_error *err)
{
    int64_t n = 0;
    if (rg_st_int(db, err, &n, "SELECT count(*) FROM shared_state WHERE scope = ?"
                  " AND expires_ms > ?", "sI", a->scope, a->now_ms) < 0)
        return -1;
    return n > a->quota;
}

static int claim_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    claim_arg *a = arg;
    (void)out;
    if (prune(tx->db, a->now_ms, err))
        return RG_EIO;
    /* a row still live is held: 0 rows; an expired one is taken over */
    if (rg_st_exec(tx->db, err,
                   "INSERT INTO shared_state(k, v, scope, expires_ms) VALUES (?, NULL, ?, ?)"
                   " ON CONFLICT (k) DO UPDATE SET v = NULL, scope = excluded.scope,"
                   " expires_ms = excluded.expires_ms WHERE shared_state.expires_ms <= ?",
                   "ssII", a->key, a->scope, a->expires_ms, a->now_ms))
        return RG_EIO;
    a->taken = st_changes(tx->db) == 1 ? 0 : 1;
    if (a->taken == 0 && a->scope) {
        int q = over_quota(tx->db, a, err);
        if (q < 0)
            return RG_EIO;
        if (q)   /* rolled back: the id stays free, the caller says "full" */
            return SHARED_FULL;
    }
    return 0;
}

int rg_store_shared_claim(rg_store *s, const char *key, const char *scope, long quota,
                          int64_t expires_ms, rg_error *err)
{
    int rc = bad_args(s, key, err);
    if (rc)
        return rc;
    claim_arg a = {key, scope, quota, rg_now_ms(), expires_ms, 1};
    rc = run(s, claim_tx, &a, err);
    if (rc == SHARED_FULL)
        return 2;
    return rc ? rc : a.taken;
}

typedef struct put_arg {
    const char *key, *value;
    int64_t now_ms, expires_ms;
} put_arg;

static int put_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    const put_arg *a = arg;
    (void)out;
    if (prune(tx->db, a->now_ms, err) ||
        rg_st_exec(tx->db, err,
                   "INSERT INTO shared_state(k, v, scope, expires_ms) VALUES (?, ?, NULL, ?)"
                   " ON CONFLICT (k) DO UPDATE SET v = excluded.v, scope = NULL,"
                   " expires_ms = excluded.expires_ms", "ssI", a->key, a->value, a->expires_ms))
        return RG_EIO;
    return 0;
}

int rg_store_shared_put(rg_store *s, const char *key, const char *value, int64_t expires_ms,
                        rg_error *err)
{
    int rc = bad_args(s, key, err);
    if (rc)
        return rc;
    if (!value)
        return rg_error_set(err, RG_EINTERNAL, "store_error", "value",
                            "a shared state entry needs a value");
    put_arg a = {key, value, rg_now_ms(), expires_ms};
    return run(s, put_tx, &a, err);
}

typedef struct take_arg {
    const char *key;
    int64_t now_ms;
    char *value;    /* out, malloc'd */
} take_arg;

static int take_tx(st_tx *tx, void *arg, json_t **out, rg_error *err)
{
    take_arg *a = arg;
    (void)out;
    free(a->value);   /* a retried run starts again */
    a->value = NULL;
    st_stmt *st = rg_st_prep(tx->db, err, "DELETE FROM shared_state WHERE k = ?"
                                          " RETURNING v, expires_ms", "s", a->key);
    if (!st)
        return RG_EIO;
    int rc = rg_st_step(tx->db, st, err);
    if (rc == 1 && st_col_int64(st, 1) > a->now_ms && rg_st_col(st, 0) &&
        !(a->value = strdup(rg_st_col(st, 0))))
        rc = rg_st_oom(err);
    if (rc == 1)
        rc = rg_st_step(tx->db, st, err);   /* the statement to its end */
    st_finalize(st);
    return rc < 0 ? RG_EIO : 0;
}

int rg_store_shared_take(rg_store *s, const char *key, char **value, rg_error *err)
{
    *value = NULL;
    int rc = bad_args(s, key, err);
    if (rc)
        return rc;
    take_arg a = {key, rg_now_ms(), NULL};
    rc = run(s, take_tx, &a, err);
    if (rc) {
        free(a.value);
        return rc;
    }
    if (!a.value)
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown or expired login state");
    *value = a.value;
    return 0;
}
