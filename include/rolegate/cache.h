/* cache.h: the cache layer (DESIGN.md "State"; issue 7): compiled role
 * tables (R7-R11, R15) looked up in-process -> Redis -> store with versioned
 * keys and invalidation messages, and the state several instances must
 * share through Redis: the SAML replay cache, one-time login state and
 * revoked session ids; the membership states session refreshes read
 * (issue 13), in-process, invalidated like the tables. Without a Redis URL
 * everything is in-process; on a PostgreSQL store (issue 15) the
 * invalidations and revocations then travel over the store's LISTEN/NOTIFY
 * channel (several instances of one database stay coherent; the replay
 * cache and login state stay per instance). Redis down is degraded mode:
 * tables come from the store, login state from the in-process fallback,
 * replay checks follow saml.replay_check_without_redis.
 *
 * Threads: every function may be called from any thread at once. Each
 * calling thread gets its own hiredis connection, made lazily (no lock is
 * held during Redis I/O); one subscriber thread per rg_cache receives
 * invalidations and revocations (without Redis, on PostgreSQL: one
 * listener thread on a libpq connection of its own). SIGPIPE must be
 * blocked or ignored in the process (main.c blocks it before threads
 * start; create the cache after). */
#ifndef ROLEGATE_CACHE_H
#define ROLEGATE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "rolegate/config.h"
#include "rolegate/core.h"
#include "rolegate/error.h"

struct rg_store;
typedef struct rg_cache rg_cache;           /* opaque */
typedef struct rg_cache_ref rg_cache_ref;   /* a counted reference to a table */

/* Creates the cache from cfg->redis (url, prefix, connect_timeout_ms,
 * command_timeout_ms, table_ttl) and cfg->saml (replay_check_without_redis,
 * clock_skew). cfg is copied; store is borrowed (must outlive the cache; may
 * be NULL if role tables are never asked for). With a URL the subscriber
 * thread starts at once; Redis being down is not an error (it is retried
 * with backoff). Returns NULL with err filled (500 "cache_error") for a
 * malformed URL or a failed thread/pipe creation. Free with rg_cache_free. */
rg_cache *rg_cache_new(const rg_config *cfg, struct rg_store *store, rg_error *err);
/* Stops the subscriber, closes every connection, drops every table (tables
 * still referenced stay valid until their rg_cache_ref_release). No other
 * call on c may be running. Accepts NULL. */
void rg_cache_free(rg_cache *c);

/* ---- role tables (R7-R11, R15) -------------------------------------------
 * The table of org_id (NULL: the environment's). In-process copy if younger
 * than table_ttl (and, while the invalidation channel is down, still at the
 * store's version); else Redis key <prefix>table:<org|env>:<version> (the
 * store's current version); else rg_store_role_table, written back to Redis
 * (TTL table_ttl) and kept in-process. On success *out is a counted
 * reference to an immutable table: read it with rg_cache_ref_table from any
 * thread, release it with rg_cache_ref_release. Returns 0, or the store's
 * negative code and err (e.g. 404 for an unknown organization). */
int rg_cache_table_get(rg_cache *c, const char *org_id, rg_cache_ref **out, rg_error *err);
/* The table (borrowed: valid until the reference is released). */
const rg_role_table *rg_cache_ref_table(const rg_cache_ref *r);
/* Drops the reference; the last one frees the table. Accepts NULL. */
void rg_cache_ref_release(rg_cache_ref *r);

/* Call after every committed store change that affects a role table (the
 * store has bumped its version): org_id for one organization, NULL for an
 * environment change (which every organization inherits: all tables).
 * Drops the in-process copies at once and publishes <prefix>invalidate so
 * every instance drops its own. Returns 0, or RG_EIO if Redis is configured
 * but the message could not be published (other instances then catch up by
 * the TTL, or at once when their channel is down: see rg_cache_table_get). */
int rg_cache_table_invalidate(rg_cache *c, const char *org_id);

/* ---- membership states (issue 13: session refresh, R25) ------------------
 * What rg_store_membership_state answers for (user_id, org_id) (status,
 * role slugs, unordered; rg_slugs_clear them), from an in-process copy when
 * one is current, else from the store (and kept). A copy is current while
 * no membership write (rg_cache_members_invalidate, here or on another
 * instance through Redis) happened since its load began, for table_ttl at
 * most; with Redis configured and the invalidation channel down, none is
 * (the store answers). Returns 0, or the store's code and err (404 no such
 * membership, RG_EIO). */
int rg_cache_membership_state(rg_cache *c, const char *user_id, const char *org_id,
                              char *status, size_t status_len, rg_slugs *roles, rg_error *err);
/* Call after every committed write that changed a membership or its roles
 * (the store's members hook): every copy here is stale at once and
 * <prefix>invalidate "~members" tells every instance. Returns 0, or RG_EIO
 * if Redis is configured but the message could not be published (the
 * others then catch up within table_ttl, or at once while their channel is
 * down). */
int rg_cache_members_invalidate(rg_cache *c);

/* ---- SAML replay cache ----------------------------------------------------
 * Has the signature of rg_saml_replay_fn (saml.h): pass rg_cache_replay_check
 * and the rg_cache as its ctx. expires_at: the assertion's end of validity,
 * seconds since epoch; remembered until then plus saml.clock_skew.
 * Returns 0 first use (now remembered), 1 replay, -1 unavailable: Redis is
 * configured but unreachable and replay_check_without_redis = reject, or
 * the in-process cache is full. Redis: SET <prefix>replay:<sha256(issuer)>:
 * <id> 1 PX <ttl> NX. Without Redis configured on a PostgreSQL store
 * (issue 15): the store's row (rg_store_shared_claim; -1 when the store
 * does not answer). Without Redis on SQLite, or Redis down with policy
 * local: a bounded in-process map. */
int rg_cache_replay_check(void *cache, const char *issuer, const char *assertion_id,
                          int64_t expires_at);
/* Issue 11 item 12: the same, per connection (what the ACS uses): scope is
 * an rg_cache_replay_scope. The entry lives at most saml.max_assertion_lifetime
 * + clock_skew, and each connection may hold saml.replay_quota live entries
 * (Redis: a sorted set per connection, updated by one script; in process:
 * a count per connection), so one connection filling its share never blocks
 * another's logins. Returns 0, 1, -1 as above, or 2: this connection's quota
 * is full. */
typedef struct rg_cache_replay_scope {
    rg_cache   *cache;
    const char *connection_id;
} rg_cache_replay_scope;
int rg_cache_replay_check_scoped(void *scope, const char *issuer, const char *assertion_id,
                                 int64_t expires_at);

/* ---- one-time login state -------------------------------------------------
 * Stores value under key (e.g. the SAML request id, the OIDC state) for
 * ttl_ms (> 0). Redis: SET <prefix>state:<key> value PX ttl_ms. Without Redis
 * configured on a PostgreSQL store (issue 15): the store's row, seen by
 * every instance (rg_store_shared_put; its error when it does not answer).
 * Without Redis on SQLite, or while Redis is down: a bounded in-process map
 * (oldest dropped when full), which then only serves this instance. Returns
 * 0, RG_EINVAL (empty key, ttl_ms <= 0), RG_ENOMEM. */
int rg_cache_state_put(rg_cache *c, const char *key, const char *value, int64_t ttl_ms,
                       rg_error *err);
/* Takes the value of key exactly once (GETDEL; the in-process fallback is
 * checked too). On success *value is malloc'd (caller frees) and 0 is
 * returned. RG_ENOTFOUND (404 "state_not_found") if it never existed, expired
 * or was taken; RG_EIO (503 "state_store_unavailable") if it is not held
 * in-process and Redis is unreachable (on the store, issue 15: one DELETE
 * ... RETURNING, the store's error when it does not answer). *value is NULL
 * on failure. */
int rg_cache_state_take(rg_cache *c, const char *key, char **value, rg_error *err);

/* ---- revoked sessions ------------------------------------------------------
 * The session layer keeps the revocation set (the cache layer sits below it
 * and does not link it): a sink receives revocations learned from Redis.
 * Called from the subscriber thread with a sid revoked until exp (seconds);
 * it must be thread-safe, e.g. a wrapper of rg_session_revoke. Return value
 * ignored. */
typedef int (*rg_cache_revoke_fn)(void *ctx, const char *sid, int64_t exp);
/* Sets the sink (NULL: none) and, with Redis, loads every current
 * <prefix>revoked:* key into it from the subscriber thread (again after each
 * reconnect: messages may have been lost meanwhile). */
void rg_cache_set_revoke_sink(rg_cache *c, rg_cache_revoke_fn fn, void *ctx);
/* Shares a revocation the caller has applied locally already: SET
 * <prefix>revoked:<sid> <exp> with expiry at exp (+ clock skew) and PUBLISH
 * on <prefix>revoked, so every instance's sink gets it; without Redis on
 * PostgreSQL, NOTIFY <prefix>revoked "<exp> <sid>" (issue 15: a listener
 * that was away reloads the store's revoked session records instead of the
 * keys). Returns 0 (also with neither: nothing to share), RG_EINVAL for an
 * empty sid, RG_EIO if Redis (the store) is unreachable: the revocation is
 * then queued (bounded, until its exp) and shared by the subscriber (the
 * listener) as soon as it is back. */
int rg_cache_revoke_publish(rg_cache *c, const char *sid, int64_t exp);

/* R30 deprovisioning: every session of user sub in organization org_id
 * issued before `before` (iat < before) is refused until `until` (pass
 * before + the longest session lifetime). The user sink receives those
 * learned from Redis (thread-safe, e.g. a wrapper of rg_session_revoke_user);
 * setting it loads every current <prefix>revoked_user:* key as well. */
typedef int (*rg_cache_revoke_user_fn)(void *ctx, const char *sub, const char *org_id,
                                       int64_t before, int64_t until);
void rg_cache_set_revoke_user_sink(rg_cache *c, rg_cache_revoke_user_fn fn, void *ctx);
/* Shares a user revocation the caller has applied locally already: SET
 * <prefix>revoked_user:<org_id>:<sub> "<before> <until>" (expiry at until +
 * margin) and PUBLISH "u <before> <until> <org_id> <sub>" on
 * <prefix>revoked (without Redis on PostgreSQL: that NOTIFY alone). Returns
 * 0 (also with neither), RG_EINVAL (an
 * empty sub or org_id, a space in either, ':' in org_id, too long, before
 * <= 0), RG_EIO if Redis is unreachable (then queued like sid revocations). */
int rg_cache_revoke_user_publish(rg_cache *c, const char *sub, const char *org_id,
                                 int64_t before, int64_t until);

/* ---- health (/readyz, /metrics) ------------------------------------------- */
typedef struct rg_cache_stats {
    int configured;                   /* a Redis URL is set */
    int redis_up;                     /* commands work (last attempt) */
    int subscriber_up;                /* the invalidation channel is live */
    unsigned long redis_failures;     /* failed connects and commands */
    unsigned long redis_skipped;      /* calls that skipped Redis in backoff */
    unsigned long redis_connects;     /* connections made (all threads) */
    unsigned long table_local_hits, table_redis_hits, table_store_loads;
    unsigned long invalidations_received;
    unsigned long replay_local;       /* replay checks answered in-process */
    unsigned long replay_unavailable; /* replay checks answered -1 */
    unsigned long member_local_hits, member_store_loads;   /* membership states */
    int channel_store;                /* issue 15: messages go through the store */
    int channel_up;                   /* Redis subscriber or store listener connected */
} rg_cache_stats;
void rg_cache_stats_get(rg_cache *c, rg_cache_stats *out);
/* 1 when Redis is configured, answering, and the subscriber is connected;
 * else 0. /readyz is degraded when configured && !rg_cache_redis_up. A log
 * line marks each transition (event=redis_up / event=redis_down). */
int rg_cache_redis_up(rg_cache *c);

#endif
