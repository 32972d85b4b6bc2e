/* cache.c: the rg_cache object and the role-table cache (DESIGN.md "State"):
 * lookup in-process -> Redis (<prefix>table:<org|env>:<version>, the store's
 * version, so a bumped version is a miss) -> store (written back). Tables are
 * immutable (R7-R11, R15 compiled by core) and shared by counted references;
 * the in-process map is swapped under its lock, copies expire after
 * table_ttl, and invalidations (local or from the subscriber) drop them. */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rolegate/cache.h"
#include "rolegate/core_codec.h"
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "cache_impl.h"

#define cache_error(err, ...) \
    rg_error_set((err), RG_EINTERNAL, "cache_error", NULL, __VA_ARGS__)

/* ---- references ------------------------------------------------------------ */
static rg_cache_ref *ref_new(rg_role_table *t)
{
    rg_cache_ref *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->table = t;
    return r;
}

const rg_role_table *rg_cache_ref_table(const rg_cache_ref *r)
{
    assert(r && r->table);
    return r->table;
}

void rg_cache_ref_release(rg_cache_ref *r)
{
    if (!r)
        return;
    long left = atomic_fetch_sub(&r->refs, 1) - 1;
    assert(left >= 0);
    if (left == 0) {
        rg_role_table_free(r->table);
        free(r);
    }
}

/* ---- the in-process map (tables_lock held) --------------------------------- */
static cache_entry **slot_of(rg_cache *c, const char *org)
{
    cache_entry **pp = &c->buckets[rg_fnv1a(org) & (c->n_buckets - 1)];
    while (*pp && strcmp((*pp)->org, org))
        pp = &(*pp)->next;
    return pp;
}

static void entry_free(cache_entry *e)
{
    rg_cache_ref_release(e->ref);
    free(e->org);
    free(e);
}

/* Removes the entry that was loaded first (the map is full). */
static void evict_oldest(rg_cache *c)
{
    cache_entry **victim = NULL;
    for (size_t b = 0; b < c->n_buckets; b++)
        for (cache_entry **pp = &c->buckets[b]; *pp; pp = &(*pp)->next)
            if (!victim || (*pp)->loaded_us < (*victim)->loaded_us)
                victim = pp;
    if (victim) {
        cache_entry *e = *victim;
        *victim = e->next;
        c->n_tables--;
        entry_free(e);
    }
}

void rg_cache_tables_drop(rg_cache *c, const char *org)
{
    cache_entry *gone = NULL;
    pthread_mutex_lock(&c->tables_lock);
    if (org) {
        cache_entry **pp = slot_of(c, org);
        if (*pp) {
            gone = *pp;
            *pp = gone->next;
            gone->next = NULL;
            c->n_tables--;
        }
    } else {
        for (size_t b = 0; b < c->n_buckets; b++) {
            cache_entry *e = c->buckets[b];
            while (e) {
                cache_entry *n = e->next;
                e->next = gone;
                gone = e;
                e = n;
            }
            c->buckets[b] = NULL;
        }
        c->n_tables = 0;
    }
    pthread_mutex_unlock(&c->tables_lock);
    /* tables are freed outside the lock (a big table takes a while) */
    while (gone) {
        cache_entry *n = gone->next;
        entry_free(gone);
        gone = n;
    }
}

/* Takes a reference to the in-process copy of org if it is fresh. */
static rg_cache_ref *local_get(rg_cache *c, const char *org, int64_t now_us)
{
    rg_cache_ref *r = NULL;
    int64_t ttl_us = c->cfg.redis.table_ttl * 1000000;
    pthread_mutex_lock(&c->tables_lock);
    cache_entry *e = *slot_of(c, org);
    if (e && now_us - e->loaded_us < ttl_us) {
        r = e->ref;
        atomic_fetch_add(&r->refs, 1);
    }
    pthread_mutex_unlock(&c->tables_lock);
    return r;
}

/* Keeps r as org's in-process copy, unless an invalidation happened since
 * the caller started loading (gen): the copy could predate the change. */
static void local_put(rg_cache *c, const char *org, rg_cache_ref *r, uint64_t gen)
{
    char *key = strdup(org);
    cache_entry *e = key ? malloc(sizeof *e) : NULL;
    if (!e) {
        free(key);
        return;   /* not caching is always correct */
    }
    e->org = key;
    e->ref = r;
    e->loaded_us = rg_mono_us();
    e->next = NULL;
    atomic_fetch_add(&r->refs, 1);
    cache_entry *old = NULL;
    pthread_mutex_lock(&c->tables_lock);
    if (atomic_load(&c->inval_gen) != gen) {
        old = e;
    } else {
        cache_entry **pp = slot_of(c, org);
        if (*pp && rg_role_table_version((*pp)->ref->table) > rg_role_table_version(r->table)) {
            old = e;   /* a newer copy is already there */
        } else {
            if (*pp) {
                old = *pp;
                e->next = old->next;
                old->next = NULL;
            } else {
                if (c->n_tables >= CACHE_MAX_TABLES) {
                    evict_oldest(c);
                    pp = slot_of(c, org);
                }
                c->n_tables++;
            }
            *pp = e;
        }
    }
    pthread_mutex_unlock(&c->tables_lock);
    if (old)
        entry_free(old);
}

/* ---- Redis layer of the table lookup ------------------------------------------ */
static int table_key(const rg_cache *c, char *out, size_t outsz, const char *org,
                     uint64_t version)
{
    char tail[RG_CONFIG_STR];
    int n = snprintf(tail, sizeof tail, "%s:%llu", *org ? org : "env",
                     (unsigned long long)version);
    if (n < 0 || (size_t)n >= sizeof tail)
        return -1;
    return rg_cache_key(c, out, outsz, "table:", tail);
}

static rg_role_table *redis_table(rg_cache *c, const char *org, uint64_t version)
{
    char key[2 * RG_CONFIG_STR];
    if (table_key(c, key, sizeof key, org, version) < 0)
        return NULL;
    const char *argv[2] = {"GET", key};
    redisReply *r = rg_cache_redis_cmd(c, 2, argv, NULL);
    rg_role_table *t = NULL;
    if (r && r->type == REDIS_REPLY_STRING) {
        rg_error e;
        if (rg_core_table_decode(r->str, (size_t)r->len, &t, &e) == 0 &&
            (rg_role_table_version(t) != version ||
             strcmp(rg_role_table_organization(t) ? rg_role_table_organization(t) : "", org))) {
            /* not the table the key names: never serve it */
            rg_role_table_free(t);
            t = NULL;
        }
        if (!t)
            rg_log(RG_LOG_WARN, "event=cache_table_bad_blob cache=redis version=%llu",
                   (unsigned long long)version);
    }
    freeReplyObject(r);
    return t;
}

static void redis_table_put(rg_cache *c, const char *org, const rg_role_table *t)
{
    char key[2 * RG_CONFIG_STR], ttl[24];
    if (table_key(c, key, sizeof key, org, rg_role_table_version(t)) < 0)
        return;
    char *blob;
    size_t len;
    if (rg_core_table_encode(t, &blob, &len))
        return;
    snprintf(ttl, sizeof ttl, "%lld", (long long)c->cfg.redis.table_ttl);
    const char *argv[5] = {"SET", key, blob, "EX", ttl};
    size_t lens[5] = {3, strlen(key), len, 2, strlen(ttl)};
    freeReplyObject(rg_cache_redis_cmd(c, 5, argv, lens));
    free(blob);
}

int rg_cache_table_get(rg_cache *c, const char *org_id, rg_cache_ref **out, rg_error *err)
{
    assert(c && out);
    *out = NULL;
    const char *org = org_id ? org_id : "";
    if (!c->store)
        return cache_error(err, "the cache has no store");
    uint64_t gen = atomic_load(&c->inval_gen);
    rg_cache_ref *r = local_get(c, org, rg_mono_us());
    if (r) {
        /* While the invalidation channel is down messages are lost: check the
         * copy against the store's version (a cheap read) before using it. */
        if (rg_cache_has_channel(c) && !atomic_load(&c->sub_up) &&
            rg_store_table_version(c->store, org_id) != rg_role_table_version(r->table)) {
            rg_cache_ref_release(r);
            rg_cache_tables_drop(c, org);
            gen = atomic_load(&c->inval_gen);
        } else {
            atomic_fetch_add(&c->n_local_hits, 1);
            *out = r;
            return 0;
        }
    }
    rg_role_table *t = NULL;
    if (c->configured) {
        uint64_t v = rg_store_table_version(c->store, org_id);
        if (v && (t = redis_table(c, org, v)))
            atomic_fetch_add(&c->n_redis_hits, 1);
    }
    int from_store = 0;
    if (!t) {
        int rc = rg_store_role_table(c->store, org_id, &t, err);
        if (rc)
            return rc;
        assert(t);
        atomic_fetch_add(&c->n_store_loads, 1);
        from_store = 1;
    }
    if (!(r = ref_new(t))) {
        rg_role_table_free(t);
        return rg_error_oom(err);
    }
    if (from_store && c->configured)
        redis_table_put(c, org, t);
    local_put(c, org, r, gen);
    *out = r;
    return 0;
}

int rg_cache_table_invalidate(rg_cache *c, const char *org_id)
{
    assert(c);
    atomic_fetch_add(&c->inval_gen, 1);
    rg_cache_tables_drop(c, org_id);
    /* without Redis, the store's channel (if any) carried it from inside
     * the write's own transaction */
    if (!c->configured)
        return 0;
    char chan[RG_CONFIG_STR + 16];
    if (rg_cache_key(c, chan, sizeof chan, "invalidate", NULL) < 0)
        return RG_EIO;
    /* "*": an environment change, which every organization inherits */
    const char *argv[3] = {"PUBLISH", chan, org_id ? org_id : "*"};
    redisReply *r = rg_cache_redis_cmd(c, 3, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    if (!ok) {
        char q[80];
        rg_log(RG_LOG_WARN, "event=cache_invalidate_not_published org=%s",
               rg_log_quote(q, sizeof q, org_id ? org_id : "*"));
        return RG_EIO;
    }
    return 0;
}

/* ---- object ------------------------------------------------------------------ */
rg_cache *rg_cache_new(const rg_config *cfg, struct rg_store *store, rg_error *err)
{
    assert(cfg);
    rg_cache *c = calloc(1, sizeof *c);
    if (!c) {
        rg_error_oom(err);
        return NULL;
    }
    c->cfg = *cfg;
    c->store = store;
    c->wake[0] = c->wake[1] = -1;
    snprintf(c->prefix, sizeof c->prefix, "%s", cfg->redis.prefix);
    if (c->cfg.redis.connect_timeout_ms <= 0)
        c->cfg.redis.connect_timeout_ms = 500;
    if (c->cfg.redis.command_timeout_ms <= 0)
        c->cfg.redis.command_timeout_ms = 500;
    if (c->cfg.redis.table_ttl <= 0)
        c->cfg.redis.table_ttl = 300;
    rg_random_bytes(&c->nonce, sizeof c->nonce);
    pthread_mutex_init(&c->conns_lock, NULL);
    pthread_mutex_init(&c->tables_lock, NULL);
    pthread_mutex_init(&c->sink_lock, NULL);
    pthread_mutex_init(&c->outbox_lock, NULL);
    atomic_init(&c->state, -1);
    atomic_init(&c->backoff_ms, CACHE_BACKOFF_MIN_MS);
    c->n_buckets = 256;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    c->replay_local = rg_cache_lmap_new(CACHE_REPLAY_CAP);
    c->state_local = rg_cache_lmap_new(CACHE_STATE_CAP);
    c->members = rg_cache_members_new();
    if (!c->buckets || !c->replay_local || !c->state_local || !c->members) {
        rg_error_oom(err);
        rg_cache_free(c);
        return NULL;
    }
    if (cfg->redis.url[0]) {
        if (rg_cache_url_parse(cfg->redis.url, &c->url)) {
            /* never echo the URL: it may carry a password */
            cache_error(err, "redis.url is not redis://[user:pass@]host[:port][/db] "
                             "or unix:/path");
            rg_cache_free(c);
            return NULL;
        }
        c->configured = 1;
        if (rg_cache_sub_start(c, err)) {
            rg_cache_free(c);
            return NULL;
        }
    } else if (store && rg_store_channel_supported(store)) {
        /* issue 15: several instances on one PostgreSQL database */
        c->store_state = rg_store_shared_supported(store);
        if (rg_cache_pgn_setup(c, err) || rg_cache_sub_start(c, err)) {
            rg_cache_free(c);
            return NULL;
        }
    }
    return c;
}

void rg_cache_free(rg_cache *c)
{
    if (!c)
        return;
    rg_cache_sub_stop(c);
    if (c->pg_channel)   /* the store outlives the cache */
        rg_store_channel_on_write(c->store, NULL, NULL);
    rg_cache_redis_close_all(c);
    if (c->buckets) {
        rg_cache_tables_drop(c, NULL);
        free(c->buckets);
    }
    rg_cache_lmap_free(c->replay_local);
    rg_cache_lmap_free(c->state_local);
    rg_cache_members_free(c->members);
    pthread_mutex_destroy(&c->conns_lock);
    pthread_mutex_destroy(&c->tables_lock);
    pthread_mutex_destroy(&c->sink_lock);
    pthread_mutex_destroy(&c->outbox_lock);
    free(c->outbox);
    free(c);
}

void rg_cache_stats_get(rg_cache *c, rg_cache_stats *o)
{
    assert(c && o);
    memset(o, 0, sizeof *o);
    o->configured = c->configured;
    o->redis_up = c->configured && atomic_load(&c->state) == 1;
    o->subscriber_up = c->configured && atomic_load(&c->sub_up);
    o->channel_store = c->pg_channel;
    o->channel_up = rg_cache_has_channel(c) && atomic_load(&c->sub_up);
    o->redis_failures = atomic_load(&c->n_failures);
    o->redis_skipped = atomic_load(&c->n_skipped);
    o->redis_connects = atomic_load(&c->n_connects);
    o->table_local_hits = atomic_load(&c->n_local_hits);
    o->table_redis_hits = atomic_load(&c->n_redis_hits);
    o->table_store_loads = atomic_load(&c->n_store_loads);
    o->invalidations_received = atomic_load(&c->n_invalidations);
    o->replay_local = atomic_load(&c->n_replay_local);
    o->replay_unavailable = atomic_load(&c->n_replay_unavailable);
    o->member_local_hits = atomic_load(&c->n_member_hits);
    o->member_store_loads = atomic_load(&c->n_member_loads);
}

int rg_cache_redis_up(rg_cache *c)
{
    assert(c);
    return c->configured && atomic_load(&c->state) == 1 && atomic_load(&c->sub_up);
}
