/* cache_impl.h: what the files of src/cache share and nobody else sees: the
 * rg_cache struct, the Redis URL, per-thread connections with backoff and
 * health (redis.c), the bounded in-process maps (lmap.c), the subscriber
 * (subscriber.c), its PostgreSQL twin without Redis (pgnotify.c), the
 * table map (cache.c) and the membership states of session refreshes
 * (members.c). */
#ifndef ROLEGATE_CACHE_IMPL_H
#define ROLEGATE_CACHE_IMPL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "rolegate/cache.h"
#include "rolegate/config.h"

/* ---- Redis URL ------------------------------------------------------------ */
typedef struct rg_cache_url {
    int unix_socket;          /* 1: path, else host:port */
    char host[256];
    int port;
    char path[256];
    char user[128];           /* "" = default user (AUTH pass) */
    char pass[256];           /* "" = no AUTH */
    int db;                   /* SELECT db when > 0 */
} rg_cache_url;

/* Parses redis://[[user]:pass@]host[:port][/db] (host may be [v6]; user and
 * pass %-decoded) or unix:/path[?db=N]. Returns 0 or -1. */
int rg_cache_url_parse(const char *s, rg_cache_url *u);

/* ---- bounded in-process map with expiry (replay, login state) ------------ */
typedef struct rg_cache_lmap rg_cache_lmap;
rg_cache_lmap *rg_cache_lmap_new(size_t cap);
void rg_cache_lmap_free(rg_cache_lmap *m);
/* Inserts key unless it is held unexpired: 0 inserted, 1 held, -1 full (no
 * expired entry to reclaim) or out of memory. */
int  rg_cache_lmap_put_nx(rg_cache_lmap *m, const char *key, int64_t expires_ms);
/* The same for an entry of scope (a connection id; NULL: none) that may hold
 * at most quota live entries: -2 when that scope is full (its expired
 * entries are reclaimed first, at most once a second), whatever the others
 * hold (issue 11 item 12). */
int  rg_cache_lmap_put_nx_scoped(rg_cache_lmap *m, const char *key, const char *scope,
                                 size_t quota, int64_t expires_ms);
/* Inserts or replaces; when full the entry inserted first is dropped.
 * Returns 0 or -1 (out of memory). value is copied. */
int  rg_cache_lmap_put(rg_cache_lmap *m, const char *key, const char *value,
                       int64_t expires_ms);
/* Removes key: 1 with *value (malloc'd, may be NULL if value is NULL) if it
 * was held unexpired, 0 if not, -1 out of memory. */
int  rg_cache_lmap_take(rg_cache_lmap *m, const char *key, char **value);
/* 1 if key is held unexpired. */
int  rg_cache_lmap_has(rg_cache_lmap *m, const char *key);
size_t rg_cache_lmap_count(rg_cache_lmap *m);

/* ---- membership states of session refreshes (members.c) ------------------ */
typedef struct rg_cache_members rg_cache_members;
rg_cache_members *rg_cache_members_new(void);
void rg_cache_members_free(rg_cache_members *m);
/* Makes every kept membership state stale (members_gen + 1): no message. */
void rg_cache_members_drop(rg_cache *c);
/* The message on <prefix>invalidate that says "a membership changed" (never
 * an organization id: those are org_<ULID>; older instances drop no table) */
#define CACHE_MEMBERS_MSG "~members"

/* ---- the table map (cache.c) --------------------------------------------- */
struct rg_cache_ref {
    atomic_long refs;
    rg_role_table *table;
};

typedef struct cache_entry {
    struct cache_entry *next;
    char *org;                 /* "" = environment */
    rg_cache_ref *ref;
    int64_t loaded_us;         /* monotonic */
} cache_entry;

/* A per-thread Redis connection; owned by the cache's list. */
typedef struct cache_conn {
    struct cache_conn *next;
    pthread_t owner;
    redisContext *ctx;
    uint64_t epoch;            /* the cache's epoch when connected */
} cache_conn;

#define CACHE_BACKOFF_MIN_MS 100
#define CACHE_BACKOFF_MAX_MS 2000
#define CACHE_MAX_TABLES 4096
#define CACHE_REPLAY_CAP 1000000   /* full: replay checks fail closed */
#define CACHE_STATE_CAP 65536      /* two entries per pending login */
#define CACHE_OUTBOX_CAP 65536     /* revocations waiting for Redis */

/* A revocation Redis did not take yet (published again on reconnect):
 * a sid until exp (before == 0), or (R30) every session of key
 * "<org_id> <sub>" issued before `before`, until exp. */
typedef struct cache_revoked {
    char sid[256];
    int64_t exp;
    int64_t before;
} cache_revoked;

struct rg_cache {
    rg_config cfg;
    struct rg_store *store;
    int configured;                    /* a Redis URL */
    /* issue 15: no Redis URL and a store with a change channel (PostgreSQL
     * LISTEN/NOTIFY): the same messages on the same channel names travel
     * through the store (pgnotify.c) */
    int pg_channel;
    /* issue 15: no Redis URL and a store that keeps shared state
     * (PostgreSQL, rg_store_shared_*): the replay ids and login state of
     * every instance live there instead of in process */
    int store_state;
    char chan_inv[64], chan_rev[64];
    rg_cache_url url;
    char prefix[RG_CONFIG_STR];
    uint64_t nonce;                    /* tells this cache's thread slots apart */

    /* per-thread connections (the lock guards the list only, never I/O) */
    pthread_mutex_t conns_lock;
    cache_conn *conns;

    /* health and backoff, shared by every thread */
    atomic_int state;                  /* -1 unknown, 0 down, 1 up */
    atomic_int probing;                /* one thread probes a down server */
    atomic_llong retry_at_us;          /* skip Redis until then (monotonic) */
    atomic_int backoff_ms;
    atomic_ullong epoch;               /* bumped when Redis goes down */

    /* tables */
    pthread_mutex_t tables_lock;
    cache_entry **buckets;
    size_t n_buckets, n_tables;
    atomic_ullong inval_gen;           /* bumped by every invalidation */

    /* membership states (issue 13): served only at the generation they were
     * loaded at; bumped by membership writes, their messages, resubscribes */
    rg_cache_members *members;
    atomic_ullong members_gen;

    /* shared-state fallbacks */
    rg_cache_lmap *replay_local;
    rg_cache_lmap *state_local;

    /* subscriber */
    pthread_t sub_thread;
    int sub_started;
    int wake[2];                       /* pipe: stop / resync requests */
    atomic_int sub_stop;
    atomic_int sub_up;
    atomic_int sub_resync;             /* reload revocations */
    pthread_mutex_t sink_lock;
    rg_cache_revoke_fn sink;
    void *sink_ctx;
    rg_cache_revoke_user_fn user_sink;   /* R30 */
    void *user_sink_ctx;
    pthread_mutex_t outbox_lock;       /* revocations not shared yet */
    cache_revoked *outbox;
    size_t n_outbox;

    /* counters */
    atomic_ulong n_failures, n_skipped, n_connects, n_local_hits, n_redis_hits,
        n_store_loads, n_invalidations, n_replay_local, n_replay_unavailable,
        n_member_hits, n_member_loads;
};

/* ---- Redis connections (redis.c) ----------------------------------------- */
/* A new connection with timeouts, keepalive, AUTH and SELECT applied, or
 * NULL (why filled, never with the password). */
redisContext *rg_cache_redis_open(rg_cache *c, char *why, size_t whysz);
/* Runs one command on the calling thread's connection. NULL: Redis not
 * configured, in backoff, or the connection failed (health updated, the
 * connection dropped). An error reply is returned as is. Free with
 * freeReplyObject. */
redisReply *rg_cache_redis_cmd(rg_cache *c, int argc, const char **argv, const size_t *lens);
/* Frees the calling thread's list entries' contexts: all of them (free). */
void rg_cache_redis_close_all(rg_cache *c);
/* Health transitions (one log line each). */
void rg_cache_redis_mark_up(rg_cache *c);
void rg_cache_redis_mark_down(rg_cache *c, const char *why);
/* "<prefix><a><b>" into out; returns its length or -1 if it does not fit. */
int  rg_cache_key(const rg_cache *c, char *out, size_t outsz, const char *a, const char *b);

/* 1 when messages reach the other instances (Redis, or the store's
 * channel): while its listener is down, messages may be lost */
static inline int rg_cache_has_channel(const rg_cache *c)
{
    return c->configured || c->pg_channel;
}

/* ---- tables and subscriber ------------------------------------------------ */
/* Drops the in-process table of org (NULL: all). */
void rg_cache_tables_drop(rg_cache *c, const char *org);
/* Publishes the revocations queued while Redis was down (shared.c); from
 * the subscriber after each (re)subscribe. Those that fail stay queued. */
void rg_cache_revoke_flush(rg_cache *c);
int  rg_cache_sub_start(rg_cache *c, rg_error *err);
void rg_cache_sub_stop(rg_cache *c);
/* One message of channel chan (inv: the invalidation channel's name, rev:
 * the revocation channel's), from Redis or the store: drops tables or
 * membership states, or feeds a sink. */
void rg_cache_sub_message(rg_cache *c, const char *chan, const char *msg, const char *inv,
                          const char *rev);
/* A revoked sid for the sink (under the sink lock). */
void rg_cache_sink_sid(rg_cache *c, const char *sid, int64_t exp);
/* Sleeps up to ms unless woken (stop or a request); empties the pipe. */
void rg_cache_sub_wait(rg_cache *c, int ms);
void rg_cache_wake_drain(rg_cache *c);

/* ---- the store's change channel (pgnotify.c, issue 15) ------------------- */
/* Without Redis, on a store with a channel: names the channels, has every
 * write send its changes on <prefix>invalidate inside its transaction. 0 or
 * err (500 cache_error: a prefix too long for a channel name). */
int  rg_cache_pgn_setup(rg_cache *c, rg_error *err);
/* The listener thread (rg_cache_sub_start starts it instead of Redis's). */
void *rg_cache_pgn_main(void *arg);
/* Sends msg on <prefix>revoked through the store: 0 or RG_EIO. */
int  rg_cache_pgn_publish(rg_cache *c, const char *msg);

#endif
