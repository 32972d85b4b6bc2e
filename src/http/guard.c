/* guard.c: the slow-client guard of a listener. connection_timeout is an
 * idle timeout that every byte resets, so a client trickling a byte now and
 * then could hold a connection slot for ever (and 1,024 of them the whole
 * listener: tests/bench/soak_slow.py). Here a request gets request_timeout
 * seconds from its first byte to its last header, whatever it trickles,
 * and then request_timeout more for its body plus one second per
 * GUARD_BODY_RATE bytes; past either the connection is closed. An idle
 * keep-alive connection (no byte of a new request) is left to
 * connection_timeout.
 *
 * MHD keeps the bytes of a request in its own buffer and says nothing
 * until the headers are complete, so the header phase is watched from
 * outside: the kernel's count of bytes received on the socket (TCP_INFO)
 * against a mark, its count at the first sample after the previous request
 * ended. A watcher thread samples every connection four times a second
 * and takes every TCP_INFO itself: the request path only bumps a counter
 * (a getsockopt at each request's end was 2.6% of /auth's CPU, issue 17).
 * The clock of a request runs from the first sample that sees bytes
 * beyond the mark and restarts whenever a request ended on the connection
 * since the previous sample: a busy keep-alive connection is nearly always
 * "bytes beyond the mark, headers not yet handed over" (its next request
 * waits in MHD's queue), and without the restart 40 such samples in a row
 * cut it with requests answered all along (soak_keepalive's read errors).
 * The bytes of a next request that came before that first sample go into
 * the mark: if it then trickles on it is cut one tick later at most; if
 * it stalls, connection_timeout (idle) ends it. One past its deadline is
 * shut down (shutdown(2): MHD sees the end of the stream and closes it
 * itself). The list is under a lock that MHD's close notification also
 * takes, so the descriptor shut down is always still the connection's. */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "http_internal.h"

#define GUARD_TICK_NS   (250 * 1000 * 1000)
#define GUARD_BODY_RATE 8192   /* bytes per extra second of body */

struct rg_http_watch {
    int                   fd;
    atomic_int            in_request;  /* headers complete, not yet answered */
    atomic_uint           ended;       /* requests ended on this connection */
    /* the watcher's own */
    uint64_t              mark;        /* bytes received, sampled once the last request ended */
    unsigned              seen;        /* ended at the previous sample */
    int64_t               started_us;  /* first byte of a new request seen (watcher only) */
    int                   cut;
    struct rg_http_watch *prev, *next;
};

static uint64_t bytes_received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return 0;
    return ti.tcpi_bytes_received;
}

static rg_http_watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void rg_http_guard_opened(rg_http_server *s, struct MHD_Connection *conn, void **socket_ctx)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    rg_http_watch *w = ci ? calloc(1, sizeof *w) : NULL;
    if (!w)
        return;   /* out of memory: this connection goes unwatched */
    w->fd = ci->connect_fd;
    pthread_mutex_lock(&s->g_lock);
    w->next = s->g_head;
    if (s->g_head)
        s->g_head->prev = w;
    s->g_head = w;
    pthread_mutex_unlock(&s->g_lock);
    *socket_ctx = w;
}

void rg_http_guard_closed(rg_http_server *s, void **socket_ctx)
{
    rg_http_watch *w = *socket_ctx;
    if (!w)
        return;
    pthread_mutex_lock(&s->g_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        s->g_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->g_lock);
    free(w);
    *socket_ctx = NULL;
}

void rg_http_guard_headers_done(struct MHD_Connection *conn)
{
    rg_http_watch *w = watch_of(conn);
    if (w)
        atomic_store(&w->in_request, 1);
}

void rg_http_guard_request_done(struct MHD_Connection *conn)
{
    rg_http_watch *w = watch_of(conn);
    if (!w)
        return;
    atomic_fetch_add(&w->ended, 1);
    atomic_store(&w->in_request, 0);
}

int rg_http_guard_body_late(const rg_http_req *r)
{
    int64_t allowed = (int64_t)r->srv->request_timeout * 1000000 +
                      (int64_t)(r->received / GUARD_BODY_RATE) * 1000000;
    return rg_mono_us() - r->t0 > allowed;
}

static void guard_sweep(rg_http_server *s)
{
    int64_t now = rg_mono_us(), limit = (int64_t)s->request_timeout * 1000000;
    pthread_mutex_lock(&s->g_lock);
    for (rg_http_watch *w = s->g_head; w; w = w->next) {
        if (w->cut || atomic_load(&w->in_request)) {
            w->started_us = 0;
            continue;
        }
        unsigned ended = atomic_load(&w->ended);
        uint64_t got = bytes_received(w->fd);
        if (ended != w->seen) {   /* a request ended since the last sample: progress */
            w->seen = ended;
            w->mark = got;
            w->started_us = 0;
            continue;
        }
        if (got <= w->mark) {
            w->started_us = 0;   /* idle between requests */
            continue;
        }
        if (!w->started_us) {
            w->started_us = now;
        } else if (now - w->started_us > limit) {
            w->cut = 1;
            shutdown(w->fd, SHUT_RDWR);
            rg_log(RG_LOG_WARN, "event=request_timeout listener=%s phase=headers "
                   "timeout_s=%d", s->name, s->request_timeout);
        }
    }
    pthread_mutex_unlock(&s->g_lock);
}

static void *guard_loop(void *arg)
{
    rg_http_server *s = arg;
    while (!atomic_load(&s->g_stop)) {
        struct timespec ts = {0, GUARD_TICK_NS};
        nanosleep(&ts, NULL);
        guard_sweep(s);
    }
    return NULL;
}

int rg_http_guard_start(rg_http_server *s)
{
    if (pthread_create(&s->g_thread, NULL, guard_loop, s) != 0)
        return -1;
    s->g_running = 1;
    return 0;
}

void rg_http_guard_stop(rg_http_server *s)
{
    if (!s->g_running)
        return;
    atomic_store(&s->g_stop, 1);
    pthread_join(s->g_thread, NULL);
    s->g_running = 0;
}
