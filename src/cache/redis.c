/* redis.c: Redis connections of the cache (LIBRARIES.md section 4): the URL,
 * one hiredis sync context per calling thread made lazily, each opened with
 * the connect timeout and then given the command timeout, keepalive, AUTH
 * and SELECT (all lost by redisReconnect, so a dead context is freed and a
 * new one opened). After a failure every thread skips Redis for a backoff
 * window (100 ms doubling to 2 s) and one thread at a time probes. The
 * health flag logs one line per up/down transition. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "rolegate/util.h"
#include "cache_impl.h"

/* ---- URL -------------------------------------------------------------------- */
/* Copies s[0..n) %-decoded into out. Returns 0 or -1. */
static int pct_copy(char *out, size_t outsz, const char *s, size_t n)
{
    return rg_pct_decode(s, n, out, outsz) < 0 ? -1 : 0;
}

static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int rg_cache_url_parse(const char *s, rg_cache_url *u)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!s)
        return -1;
    if (!strncmp(s, "unix:", 5)) {
        const char *p = s + 5, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof u->path || p[0] != '/')
            return -1;
        memcpy(u->path, p, n);
        u->unix_socket = 1;
        if (q) {
            if (strncmp(q, "?db=", 4) || parse_int(q + 4, strlen(q + 4), 0, 1000000, &u->db))
                return -1;
        }
        return 0;
    }
    if (strncmp(s, "redis://", 8))
        return -1;
    const char *p = s + 8;
    const char *end = p + strcspn(p, "/");
    /* userinfo: the last '@' before the path (a password may hold '@' only
     * %-encoded, but be lenient) */
    const char *at = NULL;
    for (const char *x = p; x < end; x++)
        if (*x == '@')
            at = x;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_copy(u->user, sizeof u->user, p, (size_t)(colon - p)) ||
                pct_copy(u->pass, sizeof u->pass, colon + 1, (size_t)(at - colon - 1)))
                return -1;
        } else if (pct_copy(u->pass, sizeof u->pass, p, (size_t)(at - p))) {
            return -1;   /* redis://pass@host: a password alone */
        }
        p = at + 1;
    }
    const char *hend, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        if ((size_t)(rb - p - 1) >= sizeof u->host || rb == p + 1)
            return -1;
        memcpy(u->host, p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
        if (hend < end) {
            if (*hend != ':')
                return -1;
            port = hend + 1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (hend == p || (size_t)(hend - p) >= sizeof u->host)
            return -1;
        memcpy(u->host, p, (size_t)(hend - p));
        if (colon)
            port = colon + 1;
    }
    if (port && parse_int(port, (size_t)(end - port), 1, 65535, &u->port))
        return -1;
    if (*end == '/' && end[1] && parse_int(end + 1, strlen(end + 1), 0, 1000000, &u->db))
        return -1;
    return 0;
}

int rg_cache_key(const rg_cache *c, char *out, size_t outsz, const char *a, const char *b)
{
    int n = snprintf(out, outsz, "%s%s%s", c->prefix, a, b ? b : "");
    return n < 0 || (size_t)n >= outsz ? -1 : n;
}

/* ---- health -------------------------------------------------------------- */
void rg_cache_redis_mark_up(rg_cache *c)
{
    atomic_store(&c->backoff_ms, CACHE_BACKOFF_MIN_MS);
    atomic_store(&c->retry_at_us, 0);
    if (atomic_exchange(&c->state, 1) != 1)
        rg_log(RG_LOG_INFO, "event=redis_up cache=redis");
}

void rg_cache_redis_mark_down(rg_cache *c, const char *why)
{
    atomic_fetch_add(&c->n_failures, 1);
    int b = atomic_load(&c->backoff_ms);
    atomic_store(&c->retry_at_us, rg_mono_us() + (int64_t)b * 1000);
    atomic_store(&c->backoff_ms, b * 2 > CACHE_BACKOFF_MAX_MS ? CACHE_BACKOFF_MAX_MS : b * 2);
    if (atomic_exchange(&c->state, 0) != 0) {
        /* contexts opened before this point may be half-dead: every thread
         * opens a new one on its next use */
        atomic_fetch_add(&c->epoch, 1);
        char q[160];
        rg_log(RG_LOG_WARN, "event=redis_down cache=redis reason=%s retry_ms=%d",
               rg_log_quote(q, sizeof q, why ? why : "unknown"), b);
    }
}

/* ---- connections --------------------------------------------------------- */
static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Sends a setup command; 0 if the reply is a status or string, else -1. */
static int setup_cmd(redisContext *ctx, int argc, const char **argv, char *why, size_t whysz)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        snprintf(why, whysz, "%s: %s", argv[0], ctx->errstr);
        return -1;
    }
    int ok = r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING;
    if (!ok)   /* an error reply of AUTH never echoes the password */
        snprintf(why, whysz, "%s: %.100s", argv[0],
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

redisContext *rg_cache_redis_open(rg_cache *c, char *why, size_t whysz)
{
    assert(c->configured);
    struct timeval ct = ms_tv(c->cfg.redis.connect_timeout_ms);
    redisContext *ctx = c->url.unix_socket ? redisConnectUnixWithTimeout(c->url.path, ct)
                                           : redisConnectWithTimeout(c->url.host, c->url.port, ct);
    if (!ctx || ctx->err) {
        snprintf(why, whysz, "connect: %s", ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    /* the connect timeout does not cover reads: without this a hung server
     * blocks a worker forever (LIBRARIES.md 4) */
    if (redisSetTimeout(ctx, ms_tv(c->cfg.redis.command_timeout_ms)) != REDIS_OK ||
        (!c->url.unix_socket && redisEnableKeepAlive(ctx) != REDIS_OK)) {
        snprintf(why, whysz, "socket options: %s", ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    if (c->url.pass[0]) {
        const char *argv[3] = {"AUTH", c->url.user, c->url.pass};
        int argc = 3;
        if (!c->url.user[0]) {
            argv[1] = c->url.pass;
            argc = 2;
        }
        if (setup_cmd(ctx, argc, argv, why, whysz)) {
            redisFree(ctx);
            return NULL;
        }
    }
    if (c->url.db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->url.db);
        const char *argv[2] = {"SELECT", db};
        if (setup_cmd(ctx, 2, argv, why, whysz)) {
            redisFree(ctx);
            return NULL;
        }
    }
    atomic_fetch_add(&c->n_connects, 1);
    return ctx;
}

/* The calling thread's connection slot of c: a thread-local fast path over
 * the cache's list (the list lock is held for the lookup only). */
#define TL_SLOTS 4
static _Thread_local struct {
    const rg_cache *cache;
    uint64_t nonce;
    cache_conn *conn;
} tl_slots[TL_SLOTS];
static _Thread_local unsigned tl_next;

static cache_conn *thread_conn(rg_cache *c)
{
    for (unsigned i = 0; i < TL_SLOTS; i++)
        if (tl_slots[i].cache == c && tl_slots[i].nonce == c->nonce)
            return tl_slots[i].conn;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&c->conns_lock);
    cache_conn *cc = c->conns;
    while (cc && !pthread_equal(cc->owner, self))
        cc = cc->next;
    if (!cc && (cc = calloc(1, sizeof *cc))) {
        /* a thread id may be reused once its thread ended: that entry is then
         * this thread's, as its first owner is gone */
        cc->owner = self;
        cc->next = c->conns;
        c->conns = cc;
    }
    pthread_mutex_unlock(&c->conns_lock);
    if (cc) {
        unsigned i = tl_next++ % TL_SLOTS;
        tl_slots[i].cache = c;
        tl_slots[i].nonce = c->nonce;
        tl_slots[i].conn = cc;
    }
    return cc;
}

void rg_cache_redis_close_all(rg_cache *c)
{
    pthread_mutex_lock(&c->conns_lock);
    cache_conn *cc = c->conns;
    c->conns = NULL;
    pthread_mutex_unlock(&c->conns_lock);
    while (cc) {
        cache_conn *next = cc->next;
        redisFree(cc->ctx);
        free(cc);
        cc = next;
    }
}

/* Makes sure the thread's connection is open: NULL if Redis is to be
 * skipped (backoff, another thread probing) or the connect failed. */
static redisContext *conn_ready(rg_cache *c, cache_conn *cc, int *fresh)
{
    uint64_t epoch = atomic_load(&c->epoch);
    *fresh = 0;
    if (cc->ctx && cc->epoch == epoch)
        return cc->ctx;
    redisFree(cc->ctx);
    cc->ctx = NULL;
    int probe = 0;
    if (atomic_load(&c->state) == 0) {
        /* known down: honour the backoff window, and let one thread probe at
         * a time so requests do not each pay the timeout (at start, state
         * unknown, every thread just connects) */
        if (rg_mono_us() < atomic_load(&c->retry_at_us)) {
            atomic_fetch_add(&c->n_skipped, 1);
            return NULL;
        }
        int zero = 0;
        if (!atomic_compare_exchange_strong(&c->probing, &zero, 1)) {
            atomic_fetch_add(&c->n_skipped, 1);
            return NULL;
        }
        probe = 1;
    }
    char why[200] = "";
    redisContext *ctx = rg_cache_redis_open(c, why, sizeof why);
    if (!ctx) {
        rg_cache_redis_mark_down(c, why);
    } else {
        cc->ctx = ctx;
        cc->epoch = atomic_load(&c->epoch);
        *fresh = 1;
    }
    if (probe)
        atomic_store(&c->probing, 0);
    return ctx;
}

redisReply *rg_cache_redis_cmd(rg_cache *c, int argc, const char **argv, const size_t *lens)
{
    if (!c->configured)
        return NULL;
    cache_conn *cc = thread_conn(c);
    if (!cc)
        return NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh;
        redisContext *ctx = conn_ready(c, cc, &fresh);
        if (!ctx)
            return NULL;
        redisReply *r = redisCommandArgv(ctx, argc, argv, lens);
        if (r) {
            if (fresh || atomic_load(&c->state) != 1)
                rg_cache_redis_mark_up(c);
            return r;
        }
        /* the context is dead after any error (LIBRARIES.md 4) */
        int closed = ctx->err == REDIS_ERR_EOF ||
                     (ctx->err == REDIS_ERR_IO && (errno == EPIPE || errno == ECONNRESET));
        char why[200];
        snprintf(why, sizeof why, "%s: %s", argv[0], ctx->errstr);
        redisFree(ctx);
        cc->ctx = NULL;
        /* A connection made earlier that the server closed (restart, idle
         * timeout) is retried once on a new one; a timeout is not retried:
         * the server is slow or hung and the caller must not wait twice. */
        if (closed && !fresh && attempt == 0)
            continue;
        rg_cache_redis_mark_down(c, why);
        return NULL;
    }
    return NULL;
}
