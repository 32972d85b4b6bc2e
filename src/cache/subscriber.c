/* subscriber.c: the one subscriber thread of an rg_cache. Its own Redis
 * connection SUBSCRIBEs to <prefix>invalidate (an organization id, or "*"
 * for an environment change: drop that in-process table / all of them;
 * "~members": a membership changed, drop the membership states) and
 * <prefix>revoked ("<exp> <sid>": fed to the revocation sink; R30
 * "u <before> <until> <org_id> <sub>": fed to the user sink). On every
 * (re)connect it drops ALL in-process tables and membership states and
 * reloads the revoked ids
 * (SCAN), since messages may have been lost meanwhile. It reconnects with
 * backoff, pings when idle to notice a hung server, and stops through a
 * wake-up pipe. The message handling (rg_cache_sub_message), the sinks and
 * the pipe are shared with the PostgreSQL listener of pgnotify.c, which
 * rg_cache_sub_start runs instead when no Redis URL is set. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rolegate/util.h"
#include "cache_impl.h"

#define SUB_IDLE_PING_US 1000000

void rg_cache_wake_drain(rg_cache *c)
{
    char buf[64];
    while (read(c->wake[0], buf, sizeof buf) > 0) {
    }
}

static void wake_up(rg_cache *c)
{
    if (c->wake[1] >= 0) {
        ssize_t n = write(c->wake[1], "w", 1);
        (void)n;   /* a full pipe already wakes the thread */
    }
}

void rg_cache_sub_wait(rg_cache *c, int ms)
{
    struct pollfd p = {.fd = c->wake[0], .events = POLLIN};
    if (poll(&p, 1, ms) > 0)
        rg_cache_wake_drain(c);
}

/* ---- messages ----------------------------------------------------------------- */
void rg_cache_sink_sid(rg_cache *c, const char *sid, int64_t exp)
{
    /* under the lock, so a sink replaced or removed is never called after
     * rg_cache_set_revoke_sink returned */
    pthread_mutex_lock(&c->sink_lock);
    if (c->sink)
        c->sink(c->sink_ctx, sid, exp);
    pthread_mutex_unlock(&c->sink_lock);
}

static void call_user_sink(rg_cache *c, const char *sub, const char *org_id,
                           int64_t before, int64_t until)
{
    pthread_mutex_lock(&c->sink_lock);
    if (c->user_sink)
        c->user_sink(c->user_sink_ctx, sub, org_id, before, until);
    pthread_mutex_unlock(&c->sink_lock);
}

/* "<before> <until> <org_id> <sub>" (after the "u " of the message, or the
 * value "<before> <until>" of a key followed by "<org_id>:<sub>"). */
static void user_revoked(rg_cache *c, const char *times, const char *org_sub, char sep)
{
    char *end, *end2;
    errno = 0;
    long long before = strtoll(times, &end, 10);
    if (errno || end == times || *end != ' ')
        return;
    long long until = strtoll(end + 1, &end2, 10);
    if (errno || end2 == end + 1)
        return;
    const char *mid = strchr(org_sub, sep);
    char org[128];
    if (!mid || mid == org_sub || (size_t)(mid - org_sub) >= sizeof org || !mid[1])
        return;
    memcpy(org, org_sub, (size_t)(mid - org_sub));
    org[mid - org_sub] = '\0';
    call_user_sink(c, mid + 1, org, (int64_t)before, (int64_t)until);
}

/* "<exp> <sid>", or "u <before> <until> <org_id> <sub>" (R30) */
static void revoked_message(rg_cache *c, const char *msg)
{
    if (msg[0] == 'u' && msg[1] == ' ') {
        /* the org id follows the second number */
        const char *p = strchr(msg + 2, ' ');
        p = p ? strchr(p + 1, ' ') : NULL;
        if (p)
            user_revoked(c, msg + 2, p + 1, ' ');
        return;
    }
    char *end;
    errno = 0;
    long long exp = strtoll(msg, &end, 10);
    if (errno || end == msg || *end != ' ' || !end[1])
        return;
    rg_cache_sink_sid(c, end + 1, (int64_t)exp);
}

void rg_cache_sub_message(rg_cache *c, const char *chan, const char *msg, const char *inv,
                          const char *rev)
{
    if (!strcmp(chan, inv)) {
        atomic_fetch_add(&c->n_invalidations, 1);
        if (!strcmp(msg, CACHE_MEMBERS_MSG)) {   /* issue 13: a membership changed */
            rg_cache_members_drop(c);
            return;
        }
        atomic_fetch_add(&c->inval_gen, 1);
        rg_cache_tables_drop(c, strcmp(msg, "*") ? msg : NULL);
    } else if (!strcmp(chan, rev)) {
        revoked_message(c, msg);
    }
}

static void handle_reply(rg_cache *c, const redisReply *r, const char *chan_inv,
                         const char *chan_rev)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;   /* "pong" replies and confirmations */
    const redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") ||
        chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    rg_cache_sub_message(c, chan->str, msg->str, chan_inv, chan_rev);
}

/* ---- resync of revocations ------------------------------------------------------ */
/* Copies s into out escaping the glob characters of MATCH. */
static int glob_escape(char *out, size_t outsz, const char *s)
{
    size_t k = 0;
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) {
            if (k + 1 >= outsz)
                return -1;
            out[k++] = '\\';
        }
        if (k + 1 >= outsz)
            return -1;
        out[k++] = *s;
    }
    out[k] = '\0';
    return 0;
}

/* One key found by the resync: name (after the base) and value. */
static void resync_sid(rg_cache *c, const char *name, const char *val)
{
    char *end;
    long long exp = strtoll(val, &end, 10);
    if (end != val)
        rg_cache_sink_sid(c, name, (int64_t)exp);
}

static void resync_user(rg_cache *c, const char *name, const char *val)
{
    user_revoked(c, val, name, ':');
}

/* Loads every <prefix><kind>* key into a sink through fn. 0 or -1. */
static int resync_kind(rg_cache *c, const char *kind,
                       void (*fn)(rg_cache *, const char *, const char *))
{
    char esc[2 * RG_CONFIG_STR], pattern[2 * RG_CONFIG_STR + 32], cursor[32] = "0";
    char base[RG_CONFIG_STR + 32];
    if (glob_escape(esc, sizeof esc, c->prefix) ||
        snprintf(pattern, sizeof pattern, "%s%s*", esc, kind) >= (int)sizeof pattern ||
        rg_cache_key(c, base, sizeof base, kind, NULL) < 0)
        return -1;
    size_t base_len = strlen(base);
    size_t loaded = 0;
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
        redisReply *r = rg_cache_redis_cmd(c, 6, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements) {
            const char **av = malloc((keys->elements + 1) * sizeof *av);
            size_t *lens = malloc((keys->elements + 1) * sizeof *lens);
            redisReply *vals = NULL;
            if (av && lens) {
                av[0] = "MGET";
                lens[0] = 4;
                for (size_t i = 0; i < keys->elements; i++) {
                    av[i + 1] = keys->element[i]->str;
                    lens[i + 1] = (size_t)keys->element[i]->len;
                }
                vals = rg_cache_redis_cmd(c, (int)keys->elements + 1, av, lens);
            }
            int ok = vals && vals->type == REDIS_REPLY_ARRAY && vals->elements == keys->elements;
            for (size_t i = 0; ok && i < keys->elements; i++) {
                const redisReply *k = keys->element[i], *v = vals->element[i];
                if (v->type != REDIS_REPLY_STRING || (size_t)k->len <= base_len)
                    continue;   /* expired between SCAN and MGET */
                fn(c, k->str + base_len, v->str);
                loaded++;
            }
            freeReplyObject(vals);
            free(av);
            free(lens);
            if (!ok) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") && !atomic_load(&c->sub_stop));
    rg_log(RG_LOG_INFO, "event=redis_revocations_loaded kind=%s count=%zu", kind, loaded);
    return 0;
}

/* Loads every <prefix>revoked:<sid> (value: exp) and, R30,
 * <prefix>revoked_user:<org_id>:<sub> (value "<before> <until>") into the
 * sinks. 0 or -1. */
static int resync_revocations(rg_cache *c)
{
    pthread_mutex_lock(&c->sink_lock);
    int have_sink = c->sink != NULL, have_user = c->user_sink != NULL;
    pthread_mutex_unlock(&c->sink_lock);
    if (have_sink && resync_kind(c, "revoked:", resync_sid))
        return -1;
    if (have_user && resync_kind(c, "revoked_user:", resync_user))
        return -1;
    return 0;
}

/* ---- the loop -------------------------------------------------------------------- */
static int subscribe(redisContext *ctx, const char *inv, const char *rev, char *why,
                     size_t whysz)
{
    const char *argv[3] = {"SUBSCRIBE", inv, rev};
    if (redisAppendCommandArgv(ctx, 3, argv, NULL) != REDIS_OK) {
        snprintf(why, whysz, "subscribe: %s", ctx->errstr);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        void *v = NULL;
        if (redisGetReply(ctx, &v) != REDIS_OK || !v) {
            snprintf(why, whysz, "subscribe: %s", ctx->errstr);
            return -1;
        }
        redisReply *r = v;
        int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 !strcmp(r->element[0]->str, "subscribe");
        if (!ok)
            snprintf(why, whysz, "subscribe: %.100s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Serves one connection until it fails or the cache stops. */
static void sub_serve(rg_cache *c, redisContext *ctx, const char *inv, const char *rev)
{
    int64_t last_rx = rg_mono_us(), ping_sent = 0;
    int64_t ping_limit = (int64_t)c->cfg.redis.command_timeout_ms * 1000 + SUB_IDLE_PING_US;
    while (!atomic_load(&c->sub_stop)) {
        void *v;
        for (;;) {
            if (redisGetReplyFromReader(ctx, &v) != REDIS_OK)
                return;
            if (!v)
                break;
            handle_reply(c, v, inv, rev);
            freeReplyObject(v);
            ping_sent = 0;
        }
        if (atomic_exchange(&c->sub_resync, 0)) {
            rg_cache_revoke_flush(c);   /* ours first: queued while Redis was down */
            if (resync_revocations(c))
                atomic_store(&c->sub_resync, 1);   /* again on the next round */
        }
        if (atomic_load(&c->state) != 1 && rg_mono_us() >= atomic_load(&c->retry_at_us)) {
            /* commands failed while this channel stayed up (a slow or paused
             * server): probe in the background so health recovers without
             * waiting for traffic */
            const char *argv[1] = {"PING"};
            freeReplyObject(rg_cache_redis_cmd(c, 1, argv, NULL));
        }
        struct pollfd p[2] = {{.fd = ctx->fd, .events = POLLIN},
                              {.fd = c->wake[0], .events = POLLIN}};
        int n = poll(p, 2, 250);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0 && p[1].revents)
            rg_cache_wake_drain(c);
        int64_t now = rg_mono_us();
        if (n > 0 && p[0].revents) {
            if (redisBufferRead(ctx) != REDIS_OK)
                return;   /* closed or failed */
            last_rx = now;
            continue;
        }
        if (ping_sent && now - ping_sent > ping_limit) {
            rg_log(RG_LOG_WARN, "event=redis_subscriber_timeout");
            return;   /* a hung server or a lost link: reconnect */
        }
        if (!ping_sent && now - last_rx > SUB_IDLE_PING_US) {
            const char *argv[1] = {"PING"};
            int done = 0;
            if (redisAppendCommandArgv(ctx, 1, argv, NULL) != REDIS_OK)
                return;
            while (!done)
                if (redisBufferWrite(ctx, &done) != REDIS_OK)
                    return;
            ping_sent = now;
            last_rx = now;
        }
    }
}

static void *sub_main(void *arg)
{
    rg_cache *c = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    char inv[RG_CONFIG_STR + 16], rev[RG_CONFIG_STR + 16];
    rg_cache_key(c, inv, sizeof inv, "invalidate", NULL);
    rg_cache_key(c, rev, sizeof rev, "revoked", NULL);
    int backoff = CACHE_BACKOFF_MIN_MS;
    int logged = -1;   /* last state logged: -1 none, 0 down, 1 up */
    while (!atomic_load(&c->sub_stop)) {
        char why[200] = "";
        redisContext *ctx = rg_cache_redis_open(c, why, sizeof why);
        if (ctx && subscribe(ctx, inv, rev, why, sizeof why) == 0) {
            /* subscribed first, then drop and reload: nothing published from
             * now on can be missed */
            atomic_fetch_add(&c->inval_gen, 1);
            rg_cache_tables_drop(c, NULL);
            rg_cache_members_drop(c);
            atomic_store(&c->sub_resync, 1);
            atomic_store(&c->sub_up, 1);
            /* the server answers: workers need not wait out their backoff */
            rg_cache_redis_mark_up(c);
            if (logged != 1)
                rg_log(RG_LOG_INFO, "event=redis_subscriber_up");
            logged = 1;
            backoff = CACHE_BACKOFF_MIN_MS;
            sub_serve(c, ctx, inv, rev);
            atomic_store(&c->sub_up, 0);
            snprintf(why, sizeof why, "subscriber: %s", ctx->err ? ctx->errstr : "lost");
        }
        redisFree(ctx);
        if (atomic_load(&c->sub_stop))
            break;
        if (logged != 0) {
            char q[240];
            rg_log(RG_LOG_WARN, "event=redis_subscriber_down reason=%s",
                   rg_log_quote(q, sizeof q, why));
        }
        logged = 0;
        rg_cache_sub_wait(c, backoff);
        backoff = backoff * 2 > CACHE_BACKOFF_MAX_MS ? CACHE_BACKOFF_MAX_MS : backoff * 2;
    }
    atomic_store(&c->sub_up, 0);
    /* the per-thread connection this thread used for SCAN stays in the
     * cache's list and is freed with it */
    return NULL;
}

int rg_cache_sub_start(rg_cache *c, rg_error *err)
{
    if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK)) {
        c->wake[0] = c->wake[1] = -1;
        return rg_error_set(err, RG_EIO, "cache_error", NULL, "pipe: %s", strerror(errno));
    }
    /* issue 15: without Redis, the store's channel has the same job */
    int rc = pthread_create(&c->sub_thread, NULL, c->configured ? sub_main : rg_cache_pgn_main,
                            c);
    if (rc)
        return rg_error_set(err, RG_EIO, "cache_error", NULL,
                            "cannot start the %s: %s",
                            c->configured ? "Redis subscriber" : "change listener",
                            strerror(rc));
    c->sub_started = 1;
    return 0;
}

void rg_cache_sub_stop(rg_cache *c)
{
    if (c->sub_started) {
        atomic_store(&c->sub_stop, 1);
        wake_up(c);
        pthread_join(c->sub_thread, NULL);
        c->sub_started = 0;
    }
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0) {
            close(c->wake[i]);
            c->wake[i] = -1;
        }
}

void rg_cache_set_revoke_sink(rg_cache *c, rg_cache_revoke_fn fn, void *ctx)
{
    assert(c);
    pthread_mutex_lock(&c->sink_lock);
    c->sink = fn;
    c->sink_ctx = ctx;
    pthread_mutex_unlock(&c->sink_lock);
    if (rg_cache_has_channel(c) && fn) {
        atomic_store(&c->sub_resync, 1);
        wake_up(c);
    }
}

void rg_cache_set_revoke_user_sink(rg_cache *c, rg_cache_revoke_user_fn fn, void *ctx)
{
    assert(c);
    pthread_mutex_lock(&c->sink_lock);
    c->user_sink = fn;
    c->user_sink_ctx = ctx;
    pthread_mutex_unlock(&c->sink_lock);
    if (rg_cache_has_channel(c) && fn) {
        atomic_store(&c->sub_resync, 1);
        wake_up(c);
    }
}
