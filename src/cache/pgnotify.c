/* pgnotify.c: the cache's messages without Redis, through the store's change
 * channel (issue 15: PostgreSQL LISTEN/NOTIFY between the instances of one
 * database). Same channel names and messages as Redis (<prefix>invalidate:
 * an org id, "*", "~members"; <prefix>revoked: "<exp> <sid>", "u <before>
 * <until> <org_id> <sub>"), applied by the same code (rg_cache_sub_message).
 * Invalidations are sent by the store inside each write's transaction
 * (rg_store_channel_on_write: delivered only on commit); revocations here,
 * in a transaction of their own. The listener thread reconnects with
 * backoff; on every (re)connect it drops ALL in-process tables and
 * membership states and reloads the revoked session ids from the store's
 * session records and the R30 user revocations from its deprovisioned
 * memberships, since messages may have been lost meanwhile. It pings
 * when idle to notice a hung server, and stops through the wake-up pipe.
 * The replay ids and login state go to the store's rows (shared.c). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "rolegate/store.h"
#include "rolegate/util.h"
#include "cache_impl.h"

#define PGN_IDLE_PING_US 2000000   /* a round trip after 2 s without traffic */
#define PGN_PING_LIMIT_US 5000000  /* ... answered within 5 s, or reconnect */

int rg_cache_pgn_setup(rg_cache *c, rg_error *err)
{
    if (rg_cache_key(c, c->chan_inv, sizeof c->chan_inv, "invalidate", NULL) < 0 ||
        rg_cache_key(c, c->chan_rev, sizeof c->chan_rev, "revoked", NULL) < 0 ||
        strlen(c->chan_rev) > 63 || strlen(c->chan_inv) > 63 ||
        rg_store_channel_on_write(c->store, c->chan_inv, CACHE_MEMBERS_MSG) != 0)
        return rg_error_set(err, RG_EINTERNAL, "cache_error", "redis.prefix",
                            "redis.prefix is too long for a PostgreSQL channel name "
                            "(63 bytes with \"invalidate\")");
    c->pg_channel = 1;
    /* where the design's shared state lives without Redis (shared.c) */
    if (c->store_state)
        rg_log(RG_LOG_INFO, "event=shared_state_store reason=no_redis store=postgresql "
               "channel=%s saml_replay_cache=store oidc_logout_jti_cache=store "
               "login_state=store", c->chan_inv);
    else
        rg_log(RG_LOG_WARN, "event=shared_state_local reason=no_redis store=postgresql "
               "channel=%s saml_replay_cache=per_instance login_state=per_instance",
               c->chan_inv);
    return 0;
}

int rg_cache_pgn_publish(rg_cache *c, const char *msg)
{
    rg_error err;
    rg_error_clear(&err);
    if (rg_store_channel_send(c->store, c->chan_rev, msg, &err) == 0)
        return 0;
    rg_log(RG_LOG_WARN, "event=notify_send_failed channel=%s code=%s", c->chan_rev, err.code);
    return RG_EIO;
}

static void on_message(void *ctx, const char *channel, const char *payload)
{
    rg_cache *c = ctx;
    rg_cache_sub_message(c, channel, payload, c->chan_inv, c->chan_rev);
}

typedef struct reload {
    rg_cache *c;
    size_t n;
} reload;

static void on_revoked(void *ctx, const char *sid, int64_t exp)
{
    reload *r = ctx;
    rg_cache_sink_sid(r->c, sid, exp);
    r->n++;
}

/* R30: a membership a directory deprovisioned: every session of it issued
 * before that (the same revocation rg_gateway_revoke_user shared then) */
static void on_inactive(void *ctx, const char *user_id, const char *org_id,
                        int64_t updated_at)
{
    reload *r = ctx;
    int64_t before = updated_at + 1;
    pthread_mutex_lock(&r->c->sink_lock);
    if (r->c->user_sink)
        r->c->user_sink(r->c->user_sink_ctx, user_id, org_id, before,
                        before + r->c->cfg.session.lifetime);
    pthread_mutex_unlock(&r->c->sink_lock);
    r->n++;
}

/* Our queued revocations first, then every revoked session record and every
 * membership deprovisioned within a session lifetime into the sinks (the
 * store's counterpart of Redis's revoked: and revoked_user: keys). 0 or -1
 * (tried again on the next round). */
static int resync(rg_cache *c)
{
    rg_cache_revoke_flush(c);
    pthread_mutex_lock(&c->sink_lock);
    int have_sink = c->sink != NULL, have_user = c->user_sink != NULL;
    pthread_mutex_unlock(&c->sink_lock);
    reload r = {c, 0}, u = {c, 0};
    rg_error err;
    rg_error_clear(&err);
    if ((have_sink && rg_store_session_revoked_each(c->store, on_revoked, &r, &err) != 0) ||
        (have_user && rg_store_membership_inactive_each(c->store,
                                                        rg_now() - c->cfg.session.lifetime,
                                                        on_inactive, &u, &err) != 0)) {
        rg_log(RG_LOG_WARN, "event=notify_revocations_not_loaded code=%s", err.code);
        return -1;
    }
    if (have_sink || have_user)
        rg_log(RG_LOG_INFO, "event=notify_revocations_loaded count=%zu users=%zu", r.n, u.n);
    return 0;
}

/* Serves one connection until it fails or the cache stops; why: the reason. */
static void serve(rg_cache *c, rg_store_listener *l, char *why, size_t whysz)
{
    int64_t last_rx = rg_mono_us(), ping_sent = 0;
    while (!atomic_load(&c->sub_stop)) {
        if (atomic_exchange(&c->sub_resync, 0) && resync(c))
            atomic_store(&c->sub_resync, 1);
        struct pollfd p[2] = {{.fd = rg_store_listener_fd(l), .events = POLLIN},
                              {.fd = c->wake[0], .events = POLLIN}};
        int n = poll(p, 2, 250);
        if (n < 0 && errno != EINTR) {
            snprintf(why, whysz, "poll: %s", strerror(errno));
            return;
        }
        if (n > 0 && p[1].revents)
            rg_cache_wake_drain(c);
        int64_t now = rg_mono_us();
        if (n > 0 && p[0].revents) {
            int got = rg_store_listener_read(l, on_message, c, why, whysz);
            if (got < 0)
                return;
            if (got > 0) {
                last_rx = now;
                ping_sent = 0;
            }
            continue;
        }
        if (ping_sent && now - ping_sent > PGN_PING_LIMIT_US) {
            snprintf(why, whysz, "no answer to a ping in %d ms", PGN_PING_LIMIT_US / 1000);
            return;   /* a hung server or a lost link: reconnect */
        }
        if (!ping_sent && now - last_rx > PGN_IDLE_PING_US) {
            if (rg_store_listener_ping(l, why, whysz) < 0)
                return;
            ping_sent = now;
        }
    }
}

void *rg_cache_pgn_main(void *arg)
{
    rg_cache *c = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    const char *chans[2] = {c->chan_inv, c->chan_rev};
    int backoff = CACHE_BACKOFF_MIN_MS;
    int logged = -1;   /* last state logged: -1 none, 0 down, 1 up */
    char q[240];
    while (!atomic_load(&c->sub_stop)) {
        char why[200] = "";
        rg_store_listener *l = rg_store_listen(c->store, chans, 2, why, sizeof why);
        if (l) {
            /* listening first, then drop and reload: nothing committed from
             * now on can be missed */
            atomic_fetch_add(&c->inval_gen, 1);
            rg_cache_tables_drop(c, NULL);
            rg_cache_members_drop(c);
            atomic_store(&c->sub_resync, 1);
            atomic_store(&c->sub_up, 1);
            atomic_fetch_add(&c->n_connects, 1);
            rg_log(RG_LOG_INFO, "event=notify_listen state=up backend=postgresql "
                   "channels=%s,%s", c->chan_inv, c->chan_rev);
            logged = 1;
            backoff = CACHE_BACKOFF_MIN_MS;
            snprintf(why, sizeof why, "lost");
            serve(c, l, why, sizeof why);
            atomic_store(&c->sub_up, 0);
            rg_store_listener_close(l);
        }
        if (atomic_load(&c->sub_stop))
            break;
        if (logged != 0)   /* one line per loss, not one per retry */
            rg_log(RG_LOG_WARN, "event=notify_listen state=down backend=postgresql reason=%s "
                   "retry_ms=%d", rg_log_quote(q, sizeof q, why), backoff);
        logged = 0;
        atomic_fetch_add(&c->n_failures, 1);
        rg_cache_sub_wait(c, backoff);
        backoff = backoff * 2 > CACHE_BACKOFF_MAX_MS ? CACHE_BACKOFF_MAX_MS : backoff * 2;
    }
    atomic_store(&c->sub_up, 0);
    return NULL;
}
