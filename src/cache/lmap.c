/* lmap.c: the bounded in-process maps of the cache layer: the replay cache
 * and the login state when Redis is not configured or is down. Keys with an
 * expiry (wall clock, ms) and an optional value; chained buckets plus a list
 * in insertion order, so a full map reclaims expired entries first and then
 * (put only) the oldest. Replay entries may carry a scope (the connection,
 * issue 11 item 12) with its own quota of live entries, so one scope that
 * fills its share never takes another's. One mutex per map; no I/O under it. */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/util.h"
#include "cache_impl.h"

typedef struct lentry {
    struct lentry *chain;             /* bucket chain */
    struct lentry *older, *newer;     /* insertion order */
    uint64_t hash;
    int64_t expires_ms;
    char *value;                      /* NULL for a replay entry */
    int scope;                        /* index in scopes, -1 none */
    char key[];
} lentry;

typedef struct lscope { char *name; size_t count; } lscope;

#define LMAP_SCOPES_MAX 65536          /* beyond: one shared overflow scope */
#define LMAP_PURGE_GAP_MS 1000         /* a full scope rescans at most 1/s */

struct rg_cache_lmap {
    pthread_mutex_t lock;
    lentry **buckets;
    size_t mask, count, cap;
    lentry *oldest, *newest;
    lscope *scopes;
    size_t nscopes, capscopes;
    int64_t last_scope_purge_ms;
};

rg_cache_lmap *rg_cache_lmap_new(size_t cap)
{
    assert(cap > 0);
    rg_cache_lmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    size_t nb = 16;
    while (nb < cap)
        nb <<= 1;
    m->buckets = calloc(nb, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    m->mask = nb - 1;
    m->cap = cap;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void unlink_entry(rg_cache_lmap *m, lentry *e)
{
    lentry **pp = &m->buckets[e->hash & m->mask];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    m->count--;
}

static void drop_entry(rg_cache_lmap *m, lentry *e)
{
    unlink_entry(m, e);
    if (e->scope >= 0)
        m->scopes[e->scope].count--;
    free(e->value);
    free(e);
}

void rg_cache_lmap_free(rg_cache_lmap *m)
{
    if (!m)
        return;
    lentry *e = m->oldest;
    while (e) {
        lentry *n = e->newer;
        free(e->value);
        free(e);
        e = n;
    }
    for (size_t i = 0; i < m->nscopes; i++)
        free(m->scopes[i].name);
    free(m->scopes);
    free(m->buckets);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The index of scope name (created on first use), -1 out of memory. */
static int scope_index(rg_cache_lmap *m, const char *name)
{
    for (size_t i = 0; i < m->nscopes; i++)
        if (!strcmp(m->scopes[i].name, name))
            return (int)i;
    if (m->nscopes >= LMAP_SCOPES_MAX)
        name = "~overflow";
    for (size_t i = 0; i < m->nscopes; i++)
        if (!strcmp(m->scopes[i].name, name))
            return (int)i;
    if (rg_grow(&m->scopes, m->nscopes, &m->capscopes, sizeof *m->scopes, 16) != 0)
        return -1;
    char *copy = strdup(name);
    if (!copy)
        return -1;
    m->scopes[m->nscopes].name = copy;
    m->scopes[m->nscopes].count = 0;
    return (int)m->nscopes++;
}

static lentry *find(rg_cache_lmap *m, const char *key, uint64_t h)
{
    for (lentry *e = m->buckets[h & m->mask]; e; e = e->chain)
        if (e->hash == h && !strcmp(e->key, key))
            return e;
    return NULL;
}

/* Drops every expired entry. O(count), run only when the map is full. */
static void purge_expired(rg_cache_lmap *m, int64_t now)
{
    lentry *e = m->oldest;
    while (e) {
        lentry *n = e->newer;
        if (e->expires_ms <= now)
            drop_entry(m, e);
        e = n;
    }
}

static int insert(rg_cache_lmap *m, const char *key, uint64_t h, const char *value,
                  int64_t expires_ms, int scope)
{
    size_t klen = strlen(key);
    lentry *e = malloc(sizeof *e + klen + 1);
    if (!e)
        return -1;
    e->value = NULL;
    if (value && !(e->value = strdup(value))) {
        free(e);
        return -1;
    }
    memcpy(e->key, key, klen + 1);
    e->scope = scope;
    if (scope >= 0)
        m->scopes[scope].count++;
    e->hash = h;
    e->expires_ms = expires_ms;
    e->chain = m->buckets[h & m->mask];
    m->buckets[h & m->mask] = e;
    e->older = m->newest;
    e->newer = NULL;
    if (m->newest)
        m->newest->newer = e;
    else
        m->oldest = e;
    m->newest = e;
    m->count++;
    return 0;
}

int rg_cache_lmap_put_nx_scoped(rg_cache_lmap *m, const char *key, const char *scope,
                                size_t quota, int64_t expires_ms)
{
    uint64_t h = rg_fnv1a(key);
    int64_t now = rg_now_ms();
    int rc;
    pthread_mutex_lock(&m->lock);
    lentry *e = find(m, key, h);
    if (e && e->expires_ms > now) {
        rc = 1;
        goto out;
    }
    if (e)
        drop_entry(m, e);
    int si = scope ? scope_index(m, scope) : -1;
    if (scope && si < 0) {
        rc = -1;
        goto out;
    }
    if (si >= 0 && m->scopes[si].count >= quota &&
        now - m->last_scope_purge_ms >= LMAP_PURGE_GAP_MS) {
        m->last_scope_purge_ms = now;
        purge_expired(m, now);
    }
    if (si >= 0 && m->scopes[si].count >= quota) {
        rc = -2;   /* this scope's share is full; the others keep theirs */
        goto out;
    }
    if (m->count >= m->cap)
        purge_expired(m, now);
    /* a replay cache never forgets an unexpired id to make room: that would
     * let it be replayed; the caller fails closed instead */
    rc = m->count >= m->cap ? -1 : insert(m, key, h, NULL, expires_ms, si);
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int rg_cache_lmap_put_nx(rg_cache_lmap *m, const char *key, int64_t expires_ms)
{
    return rg_cache_lmap_put_nx_scoped(m, key, NULL, 0, expires_ms);
}

int rg_cache_lmap_put(rg_cache_lmap *m, const char *key, const char *value, int64_t expires_ms)
{
    uint64_t h = rg_fnv1a(key);
    pthread_mutex_lock(&m->lock);
    lentry *e = find(m, key, h);
    if (e)
        drop_entry(m, e);
    if (m->count >= m->cap)
        purge_expired(m, rg_now_ms());
    while (m->count >= m->cap && m->oldest)
        drop_entry(m, m->oldest);
    int rc = insert(m, key, h, value, expires_ms, -1);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int rg_cache_lmap_take(rg_cache_lmap *m, const char *key, char **value)
{
    uint64_t h = rg_fnv1a(key);
    int rc = 0;
    if (value)
        *value = NULL;
    pthread_mutex_lock(&m->lock);
    lentry *e = find(m, key, h);
    if (e) {
        if (e->expires_ms > rg_now_ms()) {
            rc = 1;
            if (value) {
                *value = e->value;   /* hand it over */
                e->value = NULL;
            }
        }
        drop_entry(m, e);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int rg_cache_lmap_has(rg_cache_lmap *m, const char *key)
{
    uint64_t h = rg_fnv1a(key);
    pthread_mutex_lock(&m->lock);
    lentry *e = find(m, key, h);
    int rc = e && e->expires_ms > rg_now_ms();
    pthread_mutex_unlock(&m->lock);
    return rc;
}

size_t rg_cache_lmap_count(rg_cache_lmap *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->count;
    pthread_mutex_unlock(&m->lock);
    return n;
}
