/* shared.c: what several instances must share to stay secure (issue 7):
 * the SAML replay cache (SET NX PX, fail closed by default when Redis is
 * down: saml.replay_check_without_redis), one-time login state (SET PX,
 * GETDEL) and revoked session ids (SET with expiry at exp + PUBLISH; issue
 * 15: without Redis, the message through the store's channel). Each has a
 * bounded in-process fallback for a single instance. Issue 15: without
 * Redis on a store that keeps shared state (PostgreSQL), the replay ids and
 * login state are the store's rows (rg_store_shared_*), so every instance
 * of the database sees them; the store down fails closed there. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "rolegate/cache.h"
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "cache_impl.h"

#define KEY_MAX 1024

/* Hex SHA-256 of s into out[65]. */
static int sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (!EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) || n != 32)
        return -1;
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* ---- replay ------------------------------------------------------------------ */

/* Issue 11 item 12, in Redis: the id is taken only if the connection holds
 * fewer than its quota of live ids, counted in a sorted set by expiry.
 * KEYS: the replay key, the connection's index. ARGV: ttl_ms, now_ms, quota,
 * the index's own TTL (the longest an entry lives). 0 taken, 1 replay,
 * 2 quota full. */
static const char replay_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end "
    "local now = tonumber(ARGV[2]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 2 end "
    "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) "
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), KEYS[1]) "
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "return 0";

/* The Redis answer for key: 0, 1, 2 (quota) or -2 (Redis failed). */
static int replay_redis(rg_cache *c, const char *key, const char *scope_key, int64_t ttl_ms,
                        int64_t cap_ms)
{
    char px[24], now[24], quota[24], cap[24];
    snprintf(px, sizeof px, "%lld", (long long)ttl_ms);
    redisReply *r;
    if (!scope_key) {
        const char *argv[6] = {"SET", key, "1", "PX", px, "NX"};
        r = rg_cache_redis_cmd(c, 6, argv, NULL);
    } else {
        snprintf(now, sizeof now, "%lld", (long long)rg_now_ms());
        snprintf(quota, sizeof quota, "%d", c->cfg.saml.replay_quota);
        snprintf(cap, sizeof cap, "%lld", (long long)cap_ms);
        const char *argv[9] = {"EVAL", replay_lua, "2", key, scope_key, px, now, quota, cap};
        r = rg_cache_redis_cmd(c, 9, argv, NULL);
    }
    int res = -2;
    if (r && r->type == REDIS_REPLY_STATUS)
        res = 0;           /* OK: first use */
    else if (r && r->type == REDIS_REPLY_NIL)
        res = 1;           /* already there: replay */
    else if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2)
        res = (int)r->integer;
    freeReplyObject(r);
    return res;
}

/* Issue 15: the store's answer for key: 0, 1, 2 (quota), or -1 when the
 * store does not answer (fail closed: another instance may have seen it). */
static int replay_store(rg_cache *c, const char *key, const char *scope, int64_t until_ms)
{
    rg_error err;
    rg_error_clear(&err);
    int rc = rg_store_shared_claim(c->store, key, scope, c->cfg.saml.replay_quota, until_ms,
                                   &err);
    if (rc == 2)
        rg_log(RG_LOG_WARN, "event=replay_quota_full cache=store connection_id=%s", scope);
    if (rc >= 0)
        return rc;
    atomic_fetch_add(&c->n_replay_unavailable, 1);
    rg_log(RG_LOG_WARN, "event=replay_cache_unavailable cache=store code=%s", err.code);
    return -1;
}

/* scope: the connection id, or NULL (no quota). Returns 0, 1, -1 or 2. */
static int replay_check(rg_cache *c, const char *scope, const char *issuer,
                        const char *assertion_id, int64_t expires_at)
{
    assert(c);
    if (!issuer || !assertion_id || !*assertion_id)
        return -1;
    /* the issuer is hashed (any length, any characters); an id longer than
     * any IdP makes is hashed too, so keys stay bounded */
    char ih[65], idh[65], sh[65], tail[200];
    if (sha256_hex(issuer, ih) || (scope && sha256_hex(scope, sh)))
        return -1;
    const char *id = assertion_id;
    if (strlen(id) > 128) {
        if (sha256_hex(id, idh))
            return -1;
        id = idh;
    }
    snprintf(tail, sizeof tail, "%s:%s", ih, id);
    char key[KEY_MAX], skey[KEY_MAX];
    if (rg_cache_key(c, key, sizeof key, "replay:", tail) < 0 ||
        (scope && rg_cache_key(c, skey, sizeof skey, "replay-quota:", sh) < 0))
        return -1;
    /* remembered until the assertion's end plus the skew the verifier
     * allows, at least 1 s, at most max_assertion_lifetime + skew (item 12:
     * the verifier refuses longer assertions; this bounds any other caller) */
    int64_t now_ms = rg_now_ms();
    int64_t cap_ms = (c->cfg.saml.max_assertion_lifetime + c->cfg.saml.clock_skew) * 1000;
    int64_t until_ms = (expires_at + c->cfg.saml.clock_skew) * 1000;
    int64_t ttl_ms = until_ms - now_ms;
    if (ttl_ms > cap_ms)
        ttl_ms = cap_ms;
    if (ttl_ms < 1000)
        ttl_ms = 1000;
    until_ms = now_ms + ttl_ms;
    /* an id accepted in-process while Redis was down is a replay here too */
    if (rg_cache_lmap_has(c->replay_local, key))
        return 1;
    if (c->configured) {
        int res = replay_redis(c, key, scope ? skey : NULL, ttl_ms, cap_ms);
        if (res == 2)
            rg_log(RG_LOG_WARN, "event=replay_quota_full cache=redis connection_id=%s", scope);
        if (res >= 0)
            return res;
        if (c->cfg.saml.replay_check_without_redis == RG_REPLAY_REJECT) {
            atomic_fetch_add(&c->n_replay_unavailable, 1);
            return -1;   /* fail closed: another instance may have seen it */
        }
        atomic_fetch_add(&c->n_replay_local, 1);
    } else if (c->store_state) {
        return replay_store(c, key, scope, until_ms);
    }
    int rc = rg_cache_lmap_put_nx_scoped(c->replay_local, key, scope,
                                         (size_t)c->cfg.saml.replay_quota, until_ms);
    if (rc == -2) {
        rg_log(RG_LOG_WARN, "event=replay_quota_full cache=local connection_id=%s", scope);
        return 2;
    }
    if (rc < 0) {
        atomic_fetch_add(&c->n_replay_unavailable, 1);
        rg_log(RG_LOG_WARN, "event=replay_cache_full cache=local");
    }
    return rc;
}

int rg_cache_replay_check(void *cache, const char *issuer, const char *assertion_id,
                          int64_t expires_at)
{
    return replay_check(cache, NULL, issuer, assertion_id, expires_at);
}

int rg_cache_replay_check_scoped(void *scope, const char *issuer, const char *assertion_id,
                                 int64_t expires_at)
{
    const rg_cache_replay_scope *s = scope;
    assert(s && s->cache && s->connection_id);
    return replay_check(s->cache, s->connection_id, issuer, assertion_id, expires_at);
}

/* ---- login state ------------------------------------------------------------- */
int rg_cache_state_put(rg_cache *c, const char *key, const char *value, int64_t ttl_ms,
                       rg_error *err)
{
    assert(c);
    char k[KEY_MAX];
    if (!key || !*key || !value || ttl_ms <= 0 || rg_cache_key(c, k, sizeof k, "state:", key) < 0)
        return rg_error_set(err, RG_EINTERNAL, "invalid_state", NULL,
                            "login state needs a key (<= 900 bytes), a value and a TTL");
    if (c->configured) {
        char px[24];
        snprintf(px, sizeof px, "%lld", (long long)ttl_ms);
        const char *argv[5] = {"SET", k, value, "PX", px};
        redisReply *r = rg_cache_redis_cmd(c, 5, argv, NULL);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (ok) {
            /* a copy kept in-process while Redis was down must not let the
             * key be taken twice */
            rg_cache_lmap_take(c->state_local, k, NULL);
            return 0;
        }
    }
    /* issue 15: no Redis, a store that keeps shared state: every instance */
    if (!c->configured && c->store_state)
        return rg_store_shared_put(c->store, k, value, rg_now_ms() + ttl_ms, err);
    /* no Redis, or Redis down: this instance only (the login completes if
     * the IdP's answer comes back here) */
    if (rg_cache_lmap_put(c->state_local, k, value, rg_now_ms() + ttl_ms))
        return rg_error_oom(err);
    return 0;
}

int rg_cache_state_take(rg_cache *c, const char *key, char **value, rg_error *err)
{
    assert(c && value);
    *value = NULL;
    char k[KEY_MAX];
    if (!key || !*key || rg_cache_key(c, k, sizeof k, "state:", key) < 0)
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown or expired login state");
    /* in-process first: put there while Redis was down (or no Redis) */
    int local = rg_cache_lmap_take(c->state_local, k, value);
    if (local == 1)
        return 0;
    if (local < 0)
        return rg_error_oom(err);
    if (!c->configured && c->store_state)   /* issue 15: one DELETE ... RETURNING */
        return rg_store_shared_take(c->store, k, value, err);
    if (!c->configured)
        return rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                            "unknown or expired login state");
    /* GETDEL: one atomic read-and-delete, so two instances racing on the
     * same callback cannot both take it */
    const char *argv[2] = {"GETDEL", k};
    redisReply *r = rg_cache_redis_cmd(c, 2, argv, NULL);
    int rc;
    if (r && r->type == REDIS_REPLY_STRING) {
        *value = malloc((size_t)r->len + 1);
        if (*value) {
            memcpy(*value, r->str, (size_t)r->len);
            (*value)[r->len] = '\0';
            rc = 0;
        } else {
            rc = rg_error_oom(err);
        }
    } else if (r && r->type == REDIS_REPLY_NIL) {
        rc = rg_error_set(err, RG_ENOTFOUND, "state_not_found", NULL,
                          "unknown or expired login state");
    } else {
        rc = rg_error_set(err, RG_EUNAVAIL, "state_store_unavailable", NULL,
                          "the login state store (Redis) is unavailable");
    }
    freeReplyObject(r);
    return rc;
}

/* ---- revocations -------------------------------------------------------------- */
/* SET key val with expiry at until plus a margin wider than any verify skew
 * (a longer life is harmless; at least 1 s), then PUBLISH msg on the
 * revocation channel. The key is set first: instances that miss the
 * message load it on their next (re)subscribe. */
static int set_and_publish(rg_cache *c, const char *key, const char *val, int64_t until,
                           const char *msg)
{
    /* issue 15: without Redis the message goes through the store's channel;
     * the key's job (a listener that reconnects reloads it) is the store's
     * session records' */
    if (!c->configured)
        return rg_cache_pgn_publish(c, msg);
    char chan[RG_CONFIG_STR + 16], px[24];
    if (rg_cache_key(c, chan, sizeof chan, "revoked", NULL) < 0)
        return RG_EINVAL;
    int64_t ttl_ms = (until + 300) * 1000 - rg_now_ms();
    if (ttl_ms < 1000)
        ttl_ms = 1000;
    snprintf(px, sizeof px, "%lld", (long long)ttl_ms);
    const char *set[5] = {"SET", key, val, "PX", px};
    redisReply *r = rg_cache_redis_cmd(c, 5, set, NULL);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok)
        return RG_EIO;
    const char *pub[3] = {"PUBLISH", chan, msg};
    r = rg_cache_redis_cmd(c, 3, pub, NULL);
    ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    return ok ? 0 : RG_EIO;
}

/* SET <prefix>revoked:<sid> <exp>, kept until the session could no longer
 * verify anyway, and PUBLISH "<exp> <sid>". */
static int publish_one(rg_cache *c, const char *sid, int64_t exp)
{
    char key[KEY_MAX], val[24], msg[KEY_MAX];
    if (rg_cache_key(c, key, sizeof key, "revoked:", sid) < 0 ||
        snprintf(msg, sizeof msg, "%lld %s", (long long)exp, sid) >= (int)sizeof msg)
        return RG_EINVAL;
    snprintf(val, sizeof val, "%lld", (long long)exp);
    return set_and_publish(c, key, val, exp, msg);
}

/* R30: SET <prefix>revoked_user:<org_id>:<sub> "<before> <until>" (expiry at
 * until + margin) and PUBLISH "u <before> <until> <org_id> <sub>". */
static int publish_user(rg_cache *c, const char *org_sub, int64_t before, int64_t until)
{
    char key[KEY_MAX], name[300], val[48], msg[KEY_MAX];
    const char *sp = strchr(org_sub, ' ');
    if (!sp || snprintf(name, sizeof name, "%.*s:%s", (int)(sp - org_sub), org_sub, sp + 1) >=
                   (int)sizeof name ||
        rg_cache_key(c, key, sizeof key, "revoked_user:", name) < 0 ||
        snprintf(msg, sizeof msg, "u %lld %lld %s", (long long)before, (long long)until,
                 org_sub) >= (int)sizeof msg)
        return RG_EINVAL;
    snprintf(val, sizeof val, "%lld %lld", (long long)before, (long long)until);
    return set_and_publish(c, key, val, until, msg);
}

static int publish_entry(rg_cache *c, const cache_revoked *v)
{
    return v->before ? publish_user(c, v->sid, v->before, v->exp)
                     : publish_one(c, v->sid, v->exp);
}

/* Queues (sid, exp) for rg_cache_revoke_flush; an entry already past its
 * exp needs no sharing. Bounded: when full the entry nearest its end goes. */
static void outbox_add(rg_cache *c, const char *sid, int64_t exp, int64_t before)
{
    if (exp <= rg_now() || strlen(sid) >= sizeof c->outbox->sid)
        return;
    pthread_mutex_lock(&c->outbox_lock);
    if (!c->outbox)
        c->outbox = calloc(CACHE_OUTBOX_CAP, sizeof *c->outbox);
    if (c->outbox) {
        size_t at = c->n_outbox;
        if (at == CACHE_OUTBOX_CAP) {
            at = 0;
            for (size_t i = 1; i < c->n_outbox; i++)
                if (c->outbox[i].exp < c->outbox[at].exp)
                    at = i;
        } else {
            c->n_outbox++;
        }
        snprintf(c->outbox[at].sid, sizeof c->outbox[at].sid, "%s", sid);
        c->outbox[at].exp = exp;
        c->outbox[at].before = before;
    }
    pthread_mutex_unlock(&c->outbox_lock);
}

int rg_cache_revoke_publish(rg_cache *c, const char *sid, int64_t exp)
{
    assert(c);
    if (!sid || !*sid || strchr(sid, ' '))
        return RG_EINVAL;
    if (!rg_cache_has_channel(c))
        return 0;
    int rc = publish_one(c, sid, exp);
    if (rc == RG_EIO) {
        /* no lost write: shared as soon as Redis answers again */
        outbox_add(c, sid, exp, 0);
        rg_log(RG_LOG_WARN, "event=revocation_queued reason=%s_unavailable",
               c->configured ? "redis" : "store");
    }
    return rc;
}

int rg_cache_revoke_user_publish(rg_cache *c, const char *sub, const char *org_id,
                                 int64_t before, int64_t until)
{
    assert(c);
    char key[sizeof c->outbox->sid];
    if (!sub || !*sub || strchr(sub, ' ') || !org_id || !*org_id || strchr(org_id, ' ') ||
        strchr(org_id, ':') || strlen(org_id) >= 128 || before <= 0 ||
        snprintf(key, sizeof key, "%s %s", org_id, sub) >= (int)sizeof key)
        return RG_EINVAL;
    if (!rg_cache_has_channel(c))
        return 0;
    cache_revoked v = {.exp = until, .before = before};
    memcpy(v.sid, key, sizeof key);
    int rc = publish_entry(c, &v);
    if (rc == RG_EIO) {
        outbox_add(c, key, until, before);
        rg_log(RG_LOG_WARN, "event=revocation_queued kind=user reason=%s_unavailable",
               c->configured ? "redis" : "store");
    }
    return rc;
}

void rg_cache_revoke_flush(rg_cache *c)
{
    pthread_mutex_lock(&c->outbox_lock);
    cache_revoked *v = c->outbox;
    size_t n = c->n_outbox;
    c->outbox = NULL;
    c->n_outbox = 0;
    pthread_mutex_unlock(&c->outbox_lock);
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].exp <= rg_now())
            continue;
        if (publish_entry(c, &v[i]) == 0)
            sent++;
        else
            outbox_add(c, v[i].sid, v[i].exp, v[i].before);
    }
    if (n)
        rg_log(RG_LOG_INFO, "event=revocations_shared count=%zu queued=%zu", sent, n);
    free(v);
}
