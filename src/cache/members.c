/* members.c: the membership-state cache of session refreshes (issue 13,
 * R25): of the membership of (user, organization) its status and the slugs
 * of its roles, as rg_store_membership_state reads them, kept in-process so
 * that a refresh at /auth reads no store. Coherence is one generation
 * counter, members_gen: every committed membership write of this process
 * (the store's members hook: rg_cache_members_invalidate, which also tells
 * every instance through Redis), every such message from another instance
 * and every (re)subscribe bump it, and an entry is served only at the
 * generation it was loaded at (a load that overlapped a bump is never
 * served) and for table_ttl at most. While Redis is configured but the
 * channel is down (or, without Redis, the store's change channel: issue
 * 15), messages may be lost: every lookup then reads the store.
 * Revocation (logout, DELETE /sessions, R30 deprovisioning) does not depend
 * on this cache: /auth checks the revocation set before any refresh. The
 * slots are direct-mapped under striped locks: bounded, a collision
 * replaces. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "cache_impl.h"

#define MEMBERS_SLOTS 16384
#define MEMBERS_LOCKS 64
#define MEMBERS_KEY_MAX 512

typedef struct member_slot {
    char *key;                 /* "<org_id>\n<user_id>"; NULL: empty */
    uint64_t hash;
    uint64_t gen;              /* members_gen when its load began */
    int64_t loaded_us;         /* monotonic */
    char status[16];
    rg_slugs roles;
} member_slot;

struct rg_cache_members {
    pthread_mutex_t locks[MEMBERS_LOCKS];
    member_slot slots[MEMBERS_SLOTS];
};

rg_cache_members *rg_cache_members_new(void)
{
    rg_cache_members *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    for (size_t i = 0; i < MEMBERS_LOCKS; i++)
        pthread_mutex_init(&m->locks[i], NULL);
    return m;
}

static void slot_clear(member_slot *s)
{
    free(s->key);
    s->key = NULL;
    rg_slugs_clear(&s->roles);
}

void rg_cache_members_free(rg_cache_members *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < MEMBERS_SLOTS; i++)
        slot_clear(&m->slots[i]);
    for (size_t i = 0; i < MEMBERS_LOCKS; i++)
        pthread_mutex_destroy(&m->locks[i]);
    free(m);
}

/* Copies src into *dst (unpooled); 0 or -1 (out of memory, *dst empty). */
static int slugs_dup(rg_slugs *dst, const rg_slugs *src)
{
    dst->v = NULL;
    dst->n = 0;
    dst->pooled = 0;
    if (!src->n)
        return 0;
    if (!(dst->v = calloc(src->n, sizeof *dst->v)))
        return -1;
    for (size_t i = 0; i < src->n; i++, dst->n++)
        if (!(dst->v[i] = strdup(src->v[i]))) {
            rg_slugs_clear(dst);
            return -1;
        }
    return 0;
}

/* 1 and copies of a slot's state if it holds key, loaded at gen, fresh. */
static int slot_get(rg_cache *c, const char *key, uint64_t h, uint64_t gen, char *status,
                    size_t status_len, rg_slugs *roles)
{
    rg_cache_members *m = c->members;
    size_t i = (size_t)(h % MEMBERS_SLOTS);
    int64_t ttl_us = c->cfg.redis.table_ttl * 1000000;
    int hit = 0;
    pthread_mutex_lock(&m->locks[i % MEMBERS_LOCKS]);
    member_slot *s = &m->slots[i];
    if (s->key && s->hash == h && s->gen == gen && rg_mono_us() - s->loaded_us < ttl_us &&
        strcmp(s->key, key) == 0 && slugs_dup(roles, &s->roles) == 0) {
        snprintf(status, status_len, "%s", s->status);
        hit = 1;
    }
    pthread_mutex_unlock(&m->locks[i % MEMBERS_LOCKS]);
    return hit;
}

/* Keeps what the store answered unless a bump happened since gen was read
 * (the answer could predate the change). Not keeping is always correct. */
static void slot_put(rg_cache *c, const char *key, uint64_t h, uint64_t gen,
                     const char *status, const rg_slugs *roles)
{
    rg_cache_members *m = c->members;
    size_t i = (size_t)(h % MEMBERS_SLOTS);
    member_slot fresh = {.hash = h, .gen = gen, .loaded_us = rg_mono_us()};
    if (strlen(status) >= sizeof fresh.status || !(fresh.key = strdup(key)))
        return;
    if (slugs_dup(&fresh.roles, roles) != 0) {
        free(fresh.key);
        return;
    }
    snprintf(fresh.status, sizeof fresh.status, "%s", status);
    pthread_mutex_lock(&m->locks[i % MEMBERS_LOCKS]);
    if (atomic_load(&c->members_gen) == gen) {
        member_slot old = m->slots[i];
        m->slots[i] = fresh;
        fresh = old;   /* freed below, outside the lock */
    }
    pthread_mutex_unlock(&m->locks[i % MEMBERS_LOCKS]);
    slot_clear(&fresh);
}

int rg_cache_membership_state(rg_cache *c, const char *user_id, const char *org_id,
                              char *status, size_t status_len, rg_slugs *roles, rg_error *err)
{
    assert(c && user_id && org_id && status && status_len && roles);
    roles->v = NULL;
    roles->n = 0;
    roles->pooled = 0;
    status[0] = 0;
    if (!c->store)
        return rg_error_set(err, RG_EINTERNAL, "cache_error", NULL, "the cache has no store");
    char key[MEMBERS_KEY_MAX];
    int kn = snprintf(key, sizeof key, "%s\n%s", org_id, user_id);
    /* messages may be lost while the channel is down: the store decides */
    int usable = kn > 0 && (size_t)kn < sizeof key &&
                 (!rg_cache_has_channel(c) || atomic_load(&c->sub_up));
    uint64_t gen = atomic_load(&c->members_gen), h = usable ? rg_fnv1a(key) : 0;
    if (usable && slot_get(c, key, h, gen, status, status_len, roles)) {
        atomic_fetch_add(&c->n_member_hits, 1);
        return 0;
    }
    int rc = rg_store_membership_state(c->store, user_id, org_id, status, status_len, roles,
                                       err);
    atomic_fetch_add(&c->n_member_loads, 1);
    if (rc == 0 && usable)
        slot_put(c, key, h, gen, status, roles);
    return rc;
}

void rg_cache_members_drop(rg_cache *c)
{
    atomic_fetch_add(&c->members_gen, 1);
}

int rg_cache_members_invalidate(rg_cache *c)
{
    assert(c);
    rg_cache_members_drop(c);
    /* without Redis, the store's channel (if any) carries "~members" from
     * inside the write's own transaction */
    if (!c->configured)
        return 0;
    char chan[RG_CONFIG_STR + 16];
    if (rg_cache_key(c, chan, sizeof chan, "invalidate", NULL) < 0)
        return RG_EIO;
    const char *argv[3] = {"PUBLISH", chan, CACHE_MEMBERS_MSG};
    redisReply *r = rg_cache_redis_cmd(c, 3, argv, NULL);
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    if (!ok) {
        rg_log(RG_LOG_WARN, "event=cache_invalidate_not_published what=memberships");
        return RG_EIO;
    }
    return 0;
}
