/* server.c: one HTTP listener's lifecycle on libmicrohttpd 0.9.75
 * (LIBRARIES.md sec. 5): epoll + a thread pool, a 40 KiB per-connection
 * pool, idle timeout; rolegate's own accept thread in front of it (see
 * "accepting"); the offload workers; start, drain, stop. What a request
 * goes through is access.c; the handlers' API is request.c and response.c.
 *
 * MHD's pool threads each own the connections handed to them, so a slow
 * handler holds up every connection of its thread. Routes flagged
 * RG_HTTP_OFFLOAD run on the listener's workers instead: the connection is
 * suspended, a worker runs the handler and resumes it, and the poll thread
 * queues the answer. */
#include <linux/filter.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_internal.h"

#define DRAIN_ACCEPT_MS   200          /* SIGTERM: the backlog is taken in for at most this */
#define DRAIN_SETTLE_MS   20           /* SIGTERM: a second look at the backlog after this */
#define DRAIN_IDLE_MS     1000         /* SIGTERM: keep-alive connections closed after this */
/* MHD zeroes a connection's whole pool at every request (11% of /auth's CPU
 * at 64 KiB, issue 17). 40 KiB holds a 40 kB header block, more than
 * nginx's default large_client_header_buffers (4 x 8k) lets through, and a
 * 20 kB Cookie header (MHD keeps a parsed copy of it beside it:
 * test_auth_common's 20,000-byte garbage cookie is answered 401, 431 at
 * 32 KiB); a larger one is answered 431 (test_server). */
#define CONN_MEMORY_LIMIT (40 * 1024)

/* ---- server lifecycle ---------------------------------------------------- */

rg_http_server *rg_http_server_new(const rg_http_options *opt, rg_error *err)
{
    assert(opt && opt->listen);
    char host[256], port[8];
    if (rg_http_split_listen(opt->listen, host, sizeof host, port, sizeof port) != 0) {
        rg_error_set(err, RG_EINTERNAL, "listen_invalid", "listen",
                     "bad listen address '%s'", opt->listen);
        return NULL;
    }
    rg_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        rg_error_oom(err);
        return NULL;
    }
    s->fd = -1;
    pthread_mutex_init(&s->q_lock, NULL);
    pthread_mutex_init(&s->g_lock, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    s->name = strdup(opt->name ? opt->name : "http");
    s->listen = strdup(opt->listen);
    s->router = rg_http_router_new();
    if (opt->admin_key) {
        s->admin_key = strdup(opt->admin_key);
        s->admin_key_len = strlen(opt->admin_key);
    }
    s->threads = opt->threads > 0 ? opt->threads : 2;
    s->max_body = opt->max_body ? opt->max_body : 1048576;
    s->timeout = opt->connection_timeout > 0 ? opt->connection_timeout : 30;
    s->max_conn = opt->max_connections > 0 ? opt->max_connections : 1024;
    s->max_per_ip = opt->max_connections_per_ip;
    s->request_timeout = opt->request_timeout > 0 ? opt->request_timeout : 10;
    if (!s->name || !s->listen || !s->router || (opt->admin_key && !s->admin_key)) {
        rg_http_server_free(s);
        rg_error_oom(err);
        return NULL;
    }
    if (opt->admin_key && s->admin_key_len == 0) {
        rg_http_server_free(s);
        rg_error_set(err, RG_EINTERNAL, "admin_key_empty", "admin_key",
                     "an empty admin key would let anyone in");
        return NULL;
    }
    for (const char *p = opt->trusted_proxies; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        if (s->nproxies == MAX_PROXIES || rg_http_parse_cidr(p, n, &s->proxies[s->nproxies]) != 0) {
            rg_error_set(err, RG_EINTERNAL, "trusted_proxies_invalid", "trusted_proxies",
                         "bad or too many trusted proxies near '%.*s'", (int)n, p);
            rg_http_server_free(s);
            return NULL;
        }
        s->nproxies++;
        p += n;
    }
    return s;
}

int rg_http_routes_add(rg_http_server *s, const rg_http_route_def *table, size_t n,
                       void *ctx, rg_error *err)
{
    if (!s)
        return 0;
    assert(!s->started && (table || n == 0));
    for (size_t i = 0; i < n; i++) {
        const rg_http_route_def *d = &table[i];
        rg_error e;
        rg_error_clear(&e);
        int rc = rg_http_router_add(s->router, d->method, d->pattern, d->handler, ctx,
                                    d->flags, d->max_body, &e);
        if (rc != 0) {
            rg_log(RG_LOG_ERROR, "event=route_add listener=%s error=%s method=%s pattern=%s",
                   s->name, e.code, d->method ? d->method : "", d->pattern ? d->pattern : "");
            return rg_error_set(err, rc, e.code, e.field, "%s listener: %s %s: %s",
                                s->name, d->method ? d->method : "",
                                d->pattern ? d->pattern : "", e.message);
        }
        if (d->flags & RG_HTTP_OFFLOAD)
            s->offload = 1;
        /* the route table, read by tests/integration/test_openapi.py */
        rg_log(RG_LOG_DEBUG, "event=route listener=%s method=%s pattern=%s", s->name,
               d->method, d->pattern);
    }
    return 0;
}

/* ---- offload workers ------------------------------------------------------ */

static void *offload_worker(void *arg)
{
    rg_http_server *s = arg;
    pthread_mutex_lock(&s->q_lock);
    for (;;) {
        while (!s->q_head && !s->q_stop)
            pthread_cond_wait(&s->q_cond, &s->q_lock);
        rg_http_req *r = s->q_head;
        if (!r)
            break;   /* stopping, and the queue is drained */
        s->q_head = r->q_next;
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->q_lock);
        rg_http_route_handler(r->match.route)(r, rg_http_route_ctx(r->match.route));
        atomic_store(&r->handled, 1);
        MHD_resume_connection(r->conn);   /* r may be freed from here on */
        pthread_mutex_lock(&s->q_lock);
    }
    pthread_mutex_unlock(&s->q_lock);
    return NULL;
}

static int workers_start(rg_http_server *s)
{
    s->workers = calloc((size_t)s->threads, sizeof *s->workers);
    if (!s->workers)
        return -1;
    for (int i = 0; i < s->threads; i++) {
        if (pthread_create(&s->workers[i], NULL, offload_worker, s) != 0)
            return -1;
        s->nworkers++;
    }
    return 0;
}

/* Runs what is queued, then ends the workers. */
static void workers_stop(rg_http_server *s)
{
    pthread_mutex_lock(&s->q_lock);
    s->q_stop = 1;
    pthread_cond_broadcast(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
    free(s->workers);
    s->workers = NULL;
}

void rg_http_offload(rg_http_req *r)
{
    rg_http_server *s = r->srv;
    r->offloaded = 1;
    MHD_suspend_connection(r->conn);
    pthread_mutex_lock(&s->q_lock);
    r->q_next = NULL;
    if (s->q_tail)
        s->q_tail->q_next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    pthread_cond_signal(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
}

/* ---- accepting ------------------------------------------------------------- */

/* The kernel completes a TCP handshake without us and queues the
 * connection; close(2) on the listening socket resets every one queued, a
 * client that had connected and sent its request (soak_drain's "reset
 * fresh": 21 in a full run). So on SIGTERM the socket first drops every
 * new SYN (a classic BPF filter; Linux runs a listener's filter on each
 * segment of a handshake with the data at the TCP header, whose byte 13
 * holds the flags): nothing new starts, a handshake already under way
 * completes and is taken in and answered, and the SYNs dropped meanwhile
 * are retransmitted by their clients to a closed port, refused at connect
 * with nothing sent. Dropping the handshake's last ACK too (this filter
 * returned 0 for everything before) reset a client whose SYN had come in
 * just before it: its connect() had returned, it sent its request, and
 * the listener closed under the half-open connection (test_server's drain
 * case under load). Child sockets inherit the filter; it passes all they
 * get. 0, or -1 if the filter was refused (then the window is only
 * narrower without it). */
static int stop_handshakes(int fd)
{
    struct sock_filter syn_drop[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),              /* TCP flags */
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),           /* SYN | ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),     /* SYN alone? */
        BPF_STMT(BPF_RET | BPF_K, 0),                        /* drop */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),              /* keep all */
    };
    struct sock_fprog prog = {.len = sizeof syn_drop / sizeof syn_drop[0], .filter = syn_drop};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

/* rolegate's own accept thread hands each connection to MHD's pool
 * (MHD_add_connection). MHD_quiesce_daemon() cannot stop an epoll pool
 * safely in 0.9.75: it and the pool threads both remove the listen socket
 * from the epoll sets, unlocked, and the loser's MHD_PANIC aborted rolegate
 * at shutdown (seen in test_session_refresh). Here draining is: stop new
 * handshakes (stop_handshakes), take in the backlog, end this thread,
 * close the socket. At the connection limit the thread waits
 * instead of accepting, so clients queue in the backlog as they did when
 * MHD accepted. */
static void *accept_loop(void *arg)
{
    rg_http_server *s = arg;
    int warned = 0;
    /* MHD starts a handed connection later, on its pool thread: until then
     * it is counted here. One MHD dropped before starting it (it closes the
     * socket) would count for ever, so a count that does not move for
     * 100 ms is taken back. The count is s->unstarted_conns (it may dip
     * below 0 when a start is noticed before its hand-over is counted): the
     * drain in rg_http_server_stop waits for those too. */
    int64_t stuck_since = 0, stop_at = 0;
    int settled = 0;
    for (;;) {
        /* on SIGTERM (accept_end has stopped new handshakes): what is
         * already in the backlog is still served (with "Connection:
         * close"), for at most DRAIN_ACCEPT_MS; closing the socket over it
         * would reset those clients (soak_drain's "reset fresh"). A
         * connect after that is refused. */
        if (!stop_at && atomic_load(&s->accept_stop))
            stop_at = rg_mono_us();
        if (stop_at && rg_mono_us() - stop_at > DRAIN_ACCEPT_MS * 1000)
            break;
        int waiting = atomic_load(&s->unstarted_conns);
        if (waiting < 0)
            waiting = 0;
        if (!stop_at && atomic_load(&s->open_conns) + waiting >= s->max_conn) {
            int64_t now = rg_mono_us();
            if (!waiting) {
                stuck_since = 0;
            } else if (!stuck_since) {
                stuck_since = now;
            } else if (now - stuck_since > 100 * 1000) {
                atomic_store(&s->unstarted_conns, 0);
                stuck_since = 0;
            }
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        stuck_since = 0;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int c = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (c < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                /* the backlog is empty: once more after DRAIN_SETTLE_MS,
                 * for a handshake another CPU finished as the filter went on */
                if (stop_at && settled)
                    break;
                if (stop_at) {
                    settled = 1;
                    poll(&(struct pollfd){.fd = s->fd, .events = POLLIN}, 1, DRAIN_SETTLE_MS);
                    continue;
                }
                struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
                poll(&pfd, 1, 100);   /* 100 ms: accept_stop is looked at */
                continue;
            }
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (stop_at)
                break;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off, say it once */
            if (!warned++)
                rg_log(RG_LOG_WARN, "event=accept_failed listener=%s error=%s", s->name,
                       strerror(e));
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        warned = 0;
        /* MHD closes the socket itself when it refuses it (per-IP limit) */
        if (MHD_add_connection(s->daemon, c, (struct sockaddr *)&ss, sl) == MHD_YES)
            atomic_fetch_add(&s->unstarted_conns, 1);
        else
            rg_log(RG_LOG_DEBUG, "event=connection_refused listener=%s error=%s", s->name,
                   strerror(errno));
    }
    return NULL;
}

/* The listener's open connections, counted as MHD opens and closes them
 * (the two notifications come in pairs): the accept thread's limit. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    rg_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        rg_http_guard_opened(s, conn, socket_ctx);
        atomic_fetch_add(&s->open_conns, 1);
        atomic_fetch_sub(&s->unstarted_conns, 1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        rg_http_guard_closed(s, socket_ctx);
        atomic_fetch_sub(&s->open_conns, 1);
    }
}

/* Stops new handshakes, ends the accept thread (it polls the non-blocking
 * socket and sees the flag within 100 ms, then takes in the backlog) and
 * closes the socket. */
static void accept_end(rg_http_server *s)
{
    if (!s->accepting)
        return;
    if (stop_handshakes(s->fd) != 0)
        rg_log(RG_LOG_WARN, "event=drain_filter_failed listener=%s error=%s", s->name,
               strerror(errno));
    atomic_store(&s->accept_stop, 1);
    pthread_join(s->acceptor, NULL);
    s->accepting = 0;
    close(s->fd);
    s->fd = -1;
}

int rg_http_server_start(rg_http_server *s, rg_error *err)
{
    char host[256], port[8];
    assert(!s->started);
    if (rg_http_split_listen(s->listen, host, sizeof host, port, sizeof port) != 0)
        return rg_error_set(err, RG_EINTERNAL, "listen_failed", "listen", "%s: bad address",
                            s->listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0)
        return rg_error_set(err, RG_EIO, "listen_failed", "listen", "%s: %s", s->listen,
                            gai_strerror(gai));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    int one = 1, family = ai->ai_family;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rg_error_set(err, RG_EIO, "listen_failed", "listen", "%s: %s", s->listen,
                            strerror(e));
    }
    freeaddrinfo(ai);
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } sa;
    memset(&sa, 0, sizeof sa);
    socklen_t sl = sizeof sa;
    if (getsockname(fd, &sa.sa, &sl) != 0) {
        int e = errno;
        close(fd);
        return rg_error_set(err, RG_EIO, "listen_failed", "listen", "%s: %s", s->listen,
                            strerror(e));
    }
    s->port = ntohs(sa.sa.sa_family == AF_INET6 ? sa.in6.sin6_port : sa.in4.sin_port);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->offload) {
        flags |= MHD_ALLOW_SUSPEND_RESUME;
        if (workers_start(s) != 0) {
            workers_stop(s);
            close(fd);
            return rg_error_set(err, RG_EIO, "listen_failed", "listen",
                                "%s: cannot start the worker threads", s->listen);
        }
    }
    struct MHD_OptionItem ops[12];
    int n = 0;
    /* LIBRARIES.md 5: epoll without a pool stalls at >= 128 keep-alive
     * connections; the pool also lets blocking handlers run side by side. */
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, s->threads, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY_LIMIT, NULL};
    /* the limit is the accept thread's (open_conns); MHD's own, which it
     * splits evenly over its pool threads while it places a connection by
     * its descriptor number, only backs it up */
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                       (intptr_t)s->max_conn * s->threads + 16, NULL};
    if (s->max_per_ip > 0)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->max_per_ip, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, s->timeout, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, rg_http_on_request, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, rg_http_on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                 MHD_OPTION_UNESCAPE_CALLBACK, rg_http_no_unescape, NULL,
                                 MHD_OPTION_URI_LOG_CALLBACK, rg_http_uri_seen, NULL,
                                 MHD_OPTION_EXTERNAL_LOGGER, rg_http_mhd_logger, s->name,
                                 MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!s->daemon) {
        workers_stop(s);
        close(fd);
        return rg_error_set(err, RG_EIO, "listen_failed", "listen",
                            "%s: the HTTP daemon did not start", s->listen);
    }
    s->fd = fd;
    if (rg_http_guard_start(s) != 0 || pthread_create(&s->acceptor, NULL, accept_loop, s) != 0) {
        MHD_stop_daemon(s->daemon);
        rg_http_guard_stop(s);
        s->daemon = NULL;
        workers_stop(s);
        close(fd);
        s->fd = -1;
        return rg_error_set(err, RG_EIO, "listen_failed", "listen",
                            "%s: cannot start the accept thread", s->listen);
    }
    s->accepting = 1;
    s->started = 1;
    rg_log(RG_LOG_INFO, "event=listen listener=%s addr=%s port=%d threads=%d", s->name,
           host[0] ? host : "*", s->port, s->threads);
    return RG_OK;
}

int rg_http_server_port(const rg_http_server *s)
{
    return s->port;
}

/* Sleeps in 5 ms steps while *count > 0, for at most ms. */
static void wait_zero(atomic_int *count, int ms)
{
    int64_t end = rg_mono_us() + (int64_t)ms * 1000;
    while (atomic_load(count) > 0 && rg_mono_us() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void rg_http_server_stop(rg_http_server *s, int grace_ms)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = 1;
    atomic_store(&s->draining, 1);
    accept_end(s);   /* no new connections: a connect is refused from here on */
    /* a connection the accept thread handed to MHD that no pool thread has
     * started yet is in neither count below: MHD_stop_daemon would close it
     * unanswered, a client that connected and sent its request getting EOF
     * (test_server's drain case; 5 such at one drain in 300 at load 6). So
     * first the pool threads start what they were handed. */
    int idle_ms = grace_ms < DRAIN_IDLE_MS ? grace_ms : DRAIN_IDLE_MS;
    wait_zero(&s->unstarted_conns, idle_ms);
    int unstarted = atomic_load(&s->unstarted_conns);
    wait_zero(&s->inflight, grace_ms);
    int left = atomic_load(&s->inflight);
    /* then a moment for the keep-alive connections: each next request on
     * one is answered with "Connection: close" and the client closes it,
     * where closing it under the client's feet would reset a request
     * already on its way (soak_drain's "reset reused"). Idle ones are
     * closed after DRAIN_IDLE_MS. */
    wait_zero(&s->open_conns, idle_ms);
    /* an offloaded request still queued or running finishes and resumes its
     * connection before the daemon (and the request) goes away */
    workers_stop(s);
    int still_open = atomic_load(&s->open_conns);
    MHD_stop_daemon(s->daemon);
    rg_http_guard_stop(s);   /* after the daemon: its last closes leave the list empty */
    s->daemon = NULL;
    rg_log(RG_LOG_INFO, "event=stopped listener=%s unfinished=%d unstarted=%d closed=%d", s->name,
           left, unstarted > 0 ? unstarted : 0, still_open);
}

void rg_http_server_free(rg_http_server *s)
{
    if (!s)
        return;
    rg_http_server_stop(s, 0);
    rg_http_router_free(s->router);
    rg_http_bsess_free(s->console);
    if (s->admin_key)
        memset(s->admin_key, 0, s->admin_key_len);
    free(s->admin_key);
    free(s->name);
    free(s->listen);
    pthread_mutex_destroy(&s->q_lock);
    pthread_mutex_destroy(&s->g_lock);
    pthread_cond_destroy(&s->q_cond);
    free(s);
}

/* ---- the admin listener's console sessions and key ---------------------- */

rg_http_bsess *rg_http_server_console(rg_http_server *s)
{
    return s->console;
}

int rg_http_server_console_enable(rg_http_server *s)
{
    assert(!s->started);
    if (!s->console)
        s->console = rg_http_bsess_new(64, RG_HTTP_CONSOLE_TTL);
    return s->console ? 0 : RG_ENOMEM;
}

int rg_http_server_key_equal(const rg_http_server *s, const char *key)
{
    return s->admin_key && key &&
           rg_ct_equal(key, strlen(key), s->admin_key, s->admin_key_len);
}
