/* tcache.c: the /auth hot path. A bounded cache "token → verified claims
 * until exp" (16 mutex-locked shards, LRU eviction per shard; an entry
 * keeps the token itself and is found by a keyed 64-bit hash of it, then
 * compared whole), the in-process set of revoked session ids (rwlock;
 * entries kept until exp + grace), and rg_session_verify_cached which puts
 * them together so a cache hit costs a hash and two lookups, no signature
 * check. */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/session.h"
#include "rolegate/util.h"

#define SHARDS 16
#define DEFAULT_CAPACITY 10000

/* ---- verified-token cache --------------------------------------------------- */

typedef struct entry {
    uint64_t hash;                     /* token_hash of tok */
    rg_session_claims claims;          /* one reference to the shared claims */
    struct entry *hnext;               /* bucket chain */
    struct entry *prev, *next;         /* LRU list: head = most recent */
    size_t len;
    char tok[];                        /* the token, len bytes */
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets;                   /* power of two */
    size_t count, cap;
    entry *head, *tail;
    unsigned long hits, misses, inserts, evictions;
} shard;

struct rg_token_cache {
    shard shards[SHARDS];
};

/* The key of a token: a 64-bit hash of all its bytes, 8 at a time, keyed
 * by a random seed of the process. It only picks the shard and the bucket;
 * an entry matches when its whole token is equal, so a collision costs a
 * comparison, never a wrong answer, and only verified tokens are ever
 * inserted. SHA-256 here (EVP_Digest of a 712-byte token) was 4% of /auth's
 * CPU in perf record of a wrk run (issue 17); this is about a fifth of it. */
static uint64_t hash_seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static void seed_init(void)
{
    rg_random_bytes(&hash_seed, sizeof hash_seed);
}

static uint64_t mix64(uint64_t h)   /* murmur3's finalizer */
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static uint64_t token_hash(const char *token, size_t len)
{
    pthread_once(&seed_once, seed_init);
    uint64_t h = hash_seed ^ (len * 0x9e3779b97f4a7c15ULL), w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, token + i, 8);
        h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
    }
    w = 0;
    memcpy(&w, token + i, len - i);
    return mix64(h ^ mix64(w ^ len));
}

rg_token_cache *rg_token_cache_new(size_t capacity)
{
    if (capacity == 0)
        capacity = DEFAULT_CAPACITY;
    rg_token_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t per = (capacity + SHARDS - 1) / SHARDS;
    size_t nb = 16;
    while (nb < per * 2)
        nb <<= 1;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        s->cap = per;
        s->nbuckets = nb;
        s->buckets = calloc(nb, sizeof *s->buckets);
        pthread_mutex_init(&s->lock, NULL);
        if (!s->buckets) {
            rg_token_cache_free(c);
            return NULL;
        }
    }
    return c;
}

static void lru_unlink(shard *s, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(shard *s, entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

static entry **bucket_of(shard *s, uint64_t hash)
{
    return &s->buckets[hash & (s->nbuckets - 1)];
}

/* Unlinks e from its bucket and the LRU list and frees it (lock held). */
static void entry_remove(shard *s, entry *e)
{
    entry **pp = bucket_of(s, e->hash);
    while (*pp != e) {
        assert(*pp);
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    lru_unlink(s, e);
    rg_session_claims_clear(&e->claims);
    free(e);
    assert(s->count > 0);
    s->count--;
}

void rg_token_cache_free(rg_token_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        while (s->head)
            entry_remove(s, s->head);
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(c);
}

static shard *shard_of(rg_token_cache *c, uint64_t hash)
{
    _Static_assert(SHARDS == 16, "the shard is the hash's top 4 bits");
    return &c->shards[hash >> 60];   /* the bucket takes the low bits */
}

static entry *find(shard *s, uint64_t hash, const char *token, size_t len)
{
    for (entry *e = *bucket_of(s, hash); e; e = e->hnext)
        if (e->hash == hash && e->len == len && memcmp(e->tok, token, len) == 0)
            return e;
    return NULL;
}

int rg_token_cache_get(rg_token_cache *c, const char *token, size_t len, int64_t now,
                       rg_session_claims *out)
{
    assert(c && token && out);
    memset(out, 0, sizeof *out);
    uint64_t h = token_hash(token, len);
    shard *s = shard_of(c, h);
    int hit = 0;
    pthread_mutex_lock(&s->lock);
    entry *e = find(s, h, token, len);
    if (e && now >= e->claims.exp) {
        entry_remove(s, e);   /* never served at or past its exp */
        e = NULL;
    }
    if (e) {
        if (s->head != e) {   /* the most recent already: nothing to write */
            lru_unlink(s, e);
            lru_push_front(s, e);
        }
        rg_session_claims_share(out, &e->claims);
        s->hits++;
        hit = 1;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return hit;
}

void rg_token_cache_put(rg_token_cache *c, const char *token, size_t len,
                        const rg_session_claims *claims, int64_t now)
{
    assert(c && token && claims && claims->data_);
    if (now >= claims->exp)
        return;
    uint64_t h = token_hash(token, len);
    shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->lock);
    if (find(s, h, token, len)) {   /* another thread verified the same token meanwhile */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    entry *e = calloc(1, sizeof *e + len);
    if (e) {
        while (s->count >= s->cap && s->tail) {
            /* an expired tail goes first anyway; else the least recently used */
            entry_remove(s, s->tail);
            s->evictions++;
        }
        e->hash = h;
        e->len = len;
        memcpy(e->tok, token, len);
        rg_session_claims_share(&e->claims, claims);
        entry **b = bucket_of(s, h);
        e->hnext = *b;
        *b = e;
        lru_push_front(s, e);
        s->count++;
        s->inserts++;
    }
    pthread_mutex_unlock(&s->lock);
}

size_t rg_token_cache_drop_sid(rg_token_cache *c, const char *sid)
{
    assert(c && sid);
    size_t dropped = 0;
    /* revocation is rare (logout) and the cache small: a scan is fine */
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (entry *e = s->head, *next; e; e = next) {
            next = e->next;
            if (strcmp(e->claims.sid, sid) == 0) {
                entry_remove(s, e);
                dropped++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return dropped;
}

void rg_token_cache_get_stats(rg_token_cache *c, rg_token_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->hits += s->hits;
        out->misses += s->misses;
        out->inserts += s->inserts;
        out->evictions += s->evictions;
        out->entries += s->count;
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- revocations ------------------------------------------------------------ */

/* One entry: a revoked sid (before == 0), or every session of one user in
 * one organization issued before `before` (key "\x1f<org_id>\x1f<sub>",
 * which no sid can equal). */
typedef struct rev {
    struct rev *next;
    int64_t until;
    int64_t before;
    char sid[];
} rev;

struct rg_revocations {
    pthread_rwlock_t lock;
    rev **buckets;
    size_t nbuckets, count, next_sweep;
    int64_t grace;
    atomic_size_t live;        /* lets is_revoked skip the lock when empty */
};

rg_revocations *rg_revocations_new(int64_t grace)
{
    rg_revocations *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nbuckets = 256;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    r->grace = grace > 0 ? grace : 0;
    r->next_sweep = 1024;
    pthread_rwlock_init(&r->lock, NULL);
    atomic_init(&r->live, 0);
    return r;
}

void rg_revocations_free(rg_revocations *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++)
        for (rev *e = r->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(r->buckets);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

/* Drops expired entries and doubles the table when it is crowded (write
 * lock held). */
static void rev_maintain(rg_revocations *r, int64_t now)
{
    for (size_t i = 0; i < r->nbuckets; i++)
        for (rev **pp = &r->buckets[i]; *pp;) {
            if ((*pp)->until <= now) {
                rev *dead = *pp;
                *pp = dead->next;
                free(dead);
                r->count--;
            } else {
                pp = &(*pp)->next;
            }
        }
    if (r->count > r->nbuckets) {
        size_t nb = r->nbuckets * 2;
        while (nb < r->count)
            nb *= 2;
        rev **b = calloc(nb, sizeof *b);
        if (b) {
            for (size_t i = 0; i < r->nbuckets; i++)
                for (rev *e = r->buckets[i], *n; e; e = n) {
                    n = e->next;
                    rev **dst = &b[rg_fnv1a(e->sid) & (nb - 1)];
                    e->next = *dst;
                    *dst = e;
                }
            free(r->buckets);
            r->buckets = b;
            r->nbuckets = nb;
        }
    }
    r->next_sweep = r->count * 2 > 1024 ? r->count * 2 : 1024;
    atomic_store(&r->live, r->count);
}

/* Adds or extends the entry of key (until and before only grow). */
static int rev_put(rg_revocations *r, const char *key, int64_t until, int64_t before,
                   int64_t now)
{
    size_t sl = strlen(key);
    pthread_rwlock_wrlock(&r->lock);
    if (r->count >= r->next_sweep)
        rev_maintain(r, now);
    rev **b = &r->buckets[rg_fnv1a(key) & (r->nbuckets - 1)];
    for (rev *e = *b; e; e = e->next)
        if (strcmp(e->sid, key) == 0) {
            if (until > e->until)
                e->until = until;
            if (before > e->before)
                e->before = before;
            pthread_rwlock_unlock(&r->lock);
            return 0;
        }
    rev *e = malloc(sizeof *e + sl + 1);
    if (!e) {
        pthread_rwlock_unlock(&r->lock);
        return RG_ENOMEM;
    }
    memcpy(e->sid, key, sl + 1);
    e->until = until;
    e->before = before;
    e->next = *b;
    *b = e;
    r->count++;
    atomic_store(&r->live, r->count);
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

int rg_revocations_add(rg_revocations *r, const char *sid, int64_t exp, int64_t now)
{
    assert(r && sid);
    int64_t until = exp + r->grace;
    if (until <= now)
        return 0;   /* the token is refused as expired anyway */
    return rev_put(r, sid, until, 0, now);
}

/* "\x1f<org_id>\x1f<sub>" into out; -1 if it does not fit or a part is empty. */
static int user_key(char *out, size_t outsz, const char *sub, const char *org_id)
{
    if (!sub || !*sub || !org_id || !*org_id)
        return -1;
    int n = snprintf(out, outsz, "\x1f%s\x1f%s", org_id, sub);
    return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int rg_revocations_add_user(rg_revocations *r, const char *sub, const char *org_id,
                            int64_t before, int64_t until, int64_t now)
{
    assert(r);
    char key[RG_REVOKE_KEY_MAX];
    if (user_key(key, sizeof key, sub, org_id) || before <= 0)
        return RG_EINVAL;
    until += r->grace;
    if (until <= now)
        return 0;   /* every token issued before `before` has expired */
    return rev_put(r, key, until, before, now);
}

int rg_revocations_user_revoked(rg_revocations *r, const char *sub, const char *org_id,
                                int64_t iat, int64_t now)
{
    assert(r);
    if (atomic_load(&r->live) == 0)
        return 0;
    char key[RG_REVOKE_KEY_MAX];
    if (user_key(key, sizeof key, sub, org_id))
        return 0;
    int found = 0;
    pthread_rwlock_rdlock(&r->lock);
    for (rev *e = r->buckets[rg_fnv1a(key) & (r->nbuckets - 1)]; e; e = e->next)
        if (strcmp(e->sid, key) == 0) {
            found = e->until > now && iat < e->before;
            break;
        }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

int rg_revocations_is_revoked(rg_revocations *r, const char *sid, int64_t now)
{
    assert(r && sid);
    if (atomic_load(&r->live) == 0)
        return 0;
    int found = 0;
    pthread_rwlock_rdlock(&r->lock);
    for (rev *e = r->buckets[rg_fnv1a(sid) & (r->nbuckets - 1)]; e; e = e->next)
        if (strcmp(e->sid, sid) == 0) {
            found = e->until > now;
            break;
        }
    pthread_rwlock_unlock(&r->lock);
    return found;
}

size_t rg_revocations_count(rg_revocations *r)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

/* ---- the hot path ------------------------------------------------------------ */

int rg_session_verify_cached(const rg_keyring *kr, rg_token_cache *cache,
                             rg_revocations *revs, const char *token, int64_t now,
                             int64_t skew, const char *expected_iss,
                             rg_session_claims *out, rg_error *err)
{
    assert(kr && out);
    memset(out, 0, sizeof *out);
    if (!token)
        return rg_error_set(err, RG_EUNAUTH, "token_malformed", NULL, "no token");
    size_t tl = strnlen(token, RG_SESSION_TOKEN_MAX + 1);
    if (tl > RG_SESSION_TOKEN_MAX)
        return rg_error_set(err, RG_EUNAUTH, "token_too_large", NULL,
                            "token is longer than 16 KiB");
    int hit = cache && rg_token_cache_get(cache, token, tl, now, out);
    /* a hit was verified once; it must still be under a key of this keyring
     * (rotated-out keys stop working at once) and for this issuer */
    if (hit && (!rg_keyring_find(kr, out->kid) ||
                (expected_iss && (!out->iss || strcmp(out->iss, expected_iss) != 0)))) {
        rg_session_claims_clear(out);
        hit = 0;
    }
    if (!hit) {
        int rc = rg_session_verify(kr, token, now, skew, expected_iss, out, err);
        if (rc)
            return rc;
    }
    if (revs && rg_revocations_is_revoked(revs, out->sid, now)) {
        if (cache && hit)
            rg_token_cache_drop_sid(cache, out->sid);
        rg_session_claims_clear(out);
        return rg_error_set(err, RG_EUNAUTH, "token_revoked", NULL,
                            "the session was signed out");
    }
    /* R30: every session of a deprovisioned user in that organization */
    if (revs && rg_revocations_user_revoked(revs, out->sub, out->org_id, out->iat, now)) {
        if (cache && hit)
            rg_token_cache_drop_sid(cache, out->sid);
        rg_session_claims_clear(out);
        return rg_error_set(err, RG_EUNAUTH, "token_revoked", NULL,
                            "the user's sessions in this organization were revoked");
    }
    if (cache && !hit)
        rg_token_cache_put(cache, token, tl, out, now);
    return 0;
}

int rg_session_revoke(rg_revocations *revs, rg_token_cache *cache, const char *sid,
                      int64_t exp, int64_t now)
{
    assert(revs && sid);
    int rc = rg_revocations_add(revs, sid, exp, now);
    if (cache)
        rg_token_cache_drop_sid(cache, sid);
    return rc;
}

int rg_session_revoke_user(rg_revocations *revs, const char *sub, const char *org_id,
                           int64_t before, int64_t until, int64_t now)
{
    assert(revs);
    /* cached tokens need no scan: a cache hit is checked against the set too */
    return rg_revocations_add_user(revs, sub, org_id, before, until, now);
}
