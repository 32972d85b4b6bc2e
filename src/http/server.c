/* server.c: one HTTP listener on libmicrohttpd 0.9.75 (LIBRARIES.md sec. 5):
 * epoll + a thread pool, 64 KiB per-connection pool, idle timeout, body
 * limits from Content-Length BEFORE reading (413) and by counting chunked
 * bytes, the admin bearer key compared in constant time, one log line per
 * request with a request id (also sent as X-Request-Id), and the request /
 * response API handlers use. The reply is never queued on the first
 * (headers-only) call unless the body must not be read (401, 413): queuing
 * there makes MHD close the connection, which kills keep-alive.
 *
 * MHD's pool threads each own the connections they accepted (one thread may
 * accept several in a row), so a slow handler holds up every connection of
 * its thread. Routes flagged RG_HTTP_OFFLOAD run on the listener's workers
 * instead: the connection is suspended, a worker runs the handler and
 * resumes it, and the poll thread queues the answer. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "http_internal.h"
#include "rolegate/util.h"

#define CONN_MEMORY_LIMIT (64 * 1024)   /* MHD zeroes the whole pool per request (issue 17) */
#define DISCARD_SLACK     (8u << 20)   /* oversized chunked body: drain this much, then close */
#define MAX_PROXIES       64

typedef struct cidr { int family; unsigned char addr[16]; int bits; } cidr;

struct rg_http_server {
    char           *name, *listen, *admin_key;
    size_t          admin_key_len;
    int             threads, timeout, max_conn, max_per_ip;
    size_t          max_body;
    cidr            proxies[MAX_PROXIES];
    int             nproxies;
    rg_http_router *router;
    rg_http_bsess  *console;          /* console sessions (admin listener), or NULL */
    struct MHD_Daemon *daemon;
    int             fd, port, started, stopped;
    atomic_int      inflight;
    atomic_int      draining;
    /* workers of RG_HTTP_OFFLOAD routes: a FIFO of suspended requests */
    int             offload;          /* some route has the flag */
    pthread_mutex_t q_lock;
    pthread_cond_t  q_cond;
    struct rg_http_req *q_head, *q_tail;
    pthread_t      *workers;
    int             nworkers, q_stop;
    /* rolegate accepts, MHD serves (MHD_USE_NO_LISTEN_SOCKET): see accept_loop */
    pthread_t       acceptor;
    int             accepting;
    atomic_int      accept_stop;
    atomic_int      open_conns;
    atomic_long     started_conns;
};

typedef struct hdr { const char *name, *value; } hdr;

struct rg_http_req {
    rg_http_server        *srv;
    struct MHD_Connection *conn;
    rg_arena              *arena;
    int64_t                t0;
    char                   rid[40];
    const char            *method, *path;
    char                  *raw_uri;          /* as received, query included (malloc'd) */
    rg_http_match          match;
    /* decided on the first call, answered after the body */
    rg_error               early;
    int                    early_status;     /* 0 = none */
    size_t                 limit, received;
    int                    too_large, keep_body, queued;
    int                    offloaded;        /* suspended, handed to a worker */
    atomic_int             handled;          /* the worker has run the handler */
    struct rg_http_req    *q_next;
    rg_buf                 body;
    json_t                *json;
    rg_http_kv            *form;
    size_t                 nform;
    rg_http_kv            *query;
    size_t                 nquery, capquery;
    int                    query_done;
    rg_http_kv            *cookies;
    size_t                 ncookies;
    int                    cookies_done;
    char                   peer[INET6_ADDRSTRLEN];
    const char            *client;
    /* the answer */
    int                    answered, status;
    const char            *ctype;
    const void            *rbody;
    size_t                 rlen;
    hdr                   *hdrs;
    size_t                 nhdrs, caphdrs;
};

/* ---- addresses and trusted proxies -------------------------------------- */

static int parse_cidr(const char *s, size_t n, cidr *c)
{
    char buf[80];
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = 0;
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || b < 0 || b > c->bits)
            return -1;
        c->bits = (int)b;
    }
    return 0;
}

static int addr_in(const rg_http_server *s, const char *ip)
{
    unsigned char a[16];
    int fam;
    if (!ip)
        return 0;
    if (inet_pton(AF_INET, ip, a) == 1) {
        fam = AF_INET;
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        fam = AF_INET6;
        /* an IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d */
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            fam = AF_INET;
        }
    } else {
        return 0;
    }
    for (int i = 0; i < s->nproxies; i++) {
        const cidr *c = &s->proxies[i];
        if (c->family != fam)
            continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)full) != 0)
            continue;
        if (rest && ((a[full] ^ c->addr[full]) & (0xff << (8 - rest)) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

/* "host:port", "[v6]:port", ":port"; port 0 allowed (any free port). */
static int split_listen(const char *s, char *host, size_t hsz, char *port, size_t psz)
{
    const char *h = s, *colon;
    size_t hl;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) >= psz || strspn(p, "0123456789") != strlen(p) || atol(p) > 65535 ||
        hl >= hsz)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    strcpy(port, p);
    return 0;
}

/* ---- server lifecycle ---------------------------------------------------- */

rg_http_server *rg_http_server_new(const rg_http_options *opt, rg_error *err)
{
    assert(opt && opt->listen);
    char host[256], port[8];
    if (split_listen(opt->listen, host, sizeof host, port, sizeof port) != 0) {
        rg_error_set(err, RG_EINVAL, 500, "listen_invalid", "listen",
                     "bad listen address '%s'", opt->listen);
        return NULL;
    }
    rg_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        rg_error_set(err, RG_ENOMEM, 500, "out_of_memory", NULL, "out of memory");
        return NULL;
    }
    s->fd = -1;
    pthread_mutex_init(&s->q_lock, NULL);
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
    if (!s->name || !s->listen || !s->router || (opt->admin_key && !s->admin_key)) {
        rg_http_server_free(s);
        rg_error_set(err, RG_ENOMEM, 500, "out_of_memory", NULL, "out of memory");
        return NULL;
    }
    if (opt->admin_key && s->admin_key_len == 0) {
        rg_http_server_free(s);
        rg_error_set(err, RG_EINVAL, 500, "admin_key_empty", "admin_key",
                     "an empty admin key would let anyone in");
        return NULL;
    }
    for (const char *p = opt->trusted_proxies; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        if (s->nproxies == MAX_PROXIES || parse_cidr(p, n, &s->proxies[s->nproxies]) != 0) {
            rg_error_set(err, RG_EINVAL, 500, "trusted_proxies_invalid", "trusted_proxies",
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
            return rg_error_set(err, rc, 500, e.code, e.field, "%s listener: %s %s: %s",
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

static void req_free(rg_http_req *r)
{
    if (!r)
        return;
    if (r->json)
        json_decref(r->json);
    rg_buf_free(&r->body);
    if (r->arena)
        rg_arena_free(r->arena);
    free(r->raw_uri);
    free(r);
}

int rg_http_response_status(const rg_http_req *r)
{
    return r->status;
}

static void log_request(rg_http_req *r)
{
    char m[40], p[512];
    int64_t dur = rg_mono_us() - r->t0;
    /* path only: the query string may carry codes, tokens or SAML data */
    rg_log(r->status >= 500 ? RG_LOG_WARN : RG_LOG_INFO,
           "event=http listener=%s method=%s path=%s status=%d dur_us=%lld rid=%s peer=%s",
           r->srv->name, rg_log_quote(m, sizeof m, r->method),
           rg_log_quote(p, sizeof p, r->path), r->queued ? r->status : 0, (long long)dur,
           r->rid, r->peer);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rg_http_server *s = cls;
    rg_http_req *r = *con_cls;
    if (!r)
        return;
    if (!r->srv) {   /* only the URI was seen (uri_seen), never a request */
        req_free(r);
        *con_cls = NULL;
        return;
    }
    log_request(r);
    req_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* The raw request URI (query included) before MHD splits it: HTTP-Redirect
 * SAML signatures cover the query's octets as sent (issue 13). Its return
 * value becomes the request's *con_cls, completed by on_request. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    rg_http_req *r = calloc(1, sizeof *r);
    if (r)
        r->raw_uri = strdup(uri ? uri : "");
    return r;
}

/* MHD must not decode the path: a %2F inside a {param} would become a
 * separator. The router and the query parser decode themselves. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

__attribute__((format(printf, 2, 0)))
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    rg_log(RG_LOG_DEBUG, "event=mhd listener=%s msg=%s", (const char *)cls,
           rg_log_quote(q, sizeof q, msg));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **con_cls);

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

static void offload(rg_http_req *r)
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

/* rolegate's own accept thread hands each connection to MHD's pool
 * (MHD_add_connection). MHD_quiesce_daemon() cannot stop an epoll pool
 * safely in 0.9.75: it and the pool threads both remove the listen socket
 * from the epoll sets, unlocked, and the loser's MHD_PANIC aborted rolegate
 * at shutdown (seen in test_session_refresh). Here draining is: stop this
 * thread, close the socket. At the connection limit the thread waits
 * instead of accepting, so clients queue in the backlog as they did when
 * MHD accepted. */
static void *accept_loop(void *arg)
{
    rg_http_server *s = arg;
    int warned = 0;
    /* MHD starts a handed connection later, on its pool thread: until then
     * it is counted here. One MHD dropped before starting it (it closes the
     * socket) would count for ever, so a count that does not move for
     * 100 ms is taken back. */
    long handed = 0;
    int64_t stuck_since = 0;
    while (!atomic_load(&s->accept_stop)) {
        long started = atomic_load(&s->started_conns);
        long waiting = handed > started ? handed - started : 0;
        if (atomic_load(&s->open_conns) + waiting >= s->max_conn) {
            int64_t now = rg_mono_us();
            if (!waiting) {
                stuck_since = 0;
            } else if (!stuck_since) {
                stuck_since = now;
            } else if (now - stuck_since > 100 * 1000) {
                handed = started;
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
            if (atomic_load(&s->accept_stop))
                break;
            if (e == EINTR || e == EAGAIN || e == ECONNABORTED || e == EPROTO)
                continue;
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
            handed++;
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
        atomic_fetch_add(&s->open_conns, 1);
        atomic_fetch_add(&s->started_conns, 1);
    }
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&s->open_conns, 1);
}

/* Ends the accept thread and closes the listen socket. shutdown(2) wakes
 * a blocked accept() (EINVAL on Linux). */
static void accept_end(rg_http_server *s)
{
    if (!s->accepting)
        return;
    atomic_store(&s->accept_stop, 1);
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    s->accepting = 0;
    close(s->fd);
    s->fd = -1;
}

int rg_http_server_start(rg_http_server *s, rg_error *err)
{
    char host[256], port[8];
    assert(!s->started);
    if (split_listen(s->listen, host, sizeof host, port, sizeof port) != 0)
        return rg_error_set(err, RG_EINVAL, 500, "listen_failed", "listen", "%s: bad address",
                            s->listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0)
        return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen", "%s: %s", s->listen,
                            gai_strerror(gai));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1, family = ai->ai_family;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen", "%s: %s", s->listen,
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
        return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen", "%s: %s", s->listen,
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
            return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen",
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
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                 MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                                 MHD_OPTION_URI_LOG_CALLBACK, uri_seen, NULL,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s->name,
                                 MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!s->daemon) {
        workers_stop(s);
        close(fd);
        return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen",
                            "%s: the HTTP daemon did not start", s->listen);
    }
    s->fd = fd;
    if (pthread_create(&s->acceptor, NULL, accept_loop, s) != 0) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        workers_stop(s);
        close(fd);
        s->fd = -1;
        return rg_error_set(err, RG_EIO, 500, "listen_failed", "listen",
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

void rg_http_server_stop(rg_http_server *s, int grace_ms)
{
    if (!s || !s->started || s->stopped)
        return;
    s->stopped = 1;
    atomic_store(&s->draining, 1);
    accept_end(s);   /* no new connections: a connect is refused from here on */
    int64_t end = rg_mono_us() + (int64_t)grace_ms * 1000;
    while (atomic_load(&s->inflight) > 0 && rg_mono_us() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&s->inflight);
    /* an offloaded request still queued or running finishes and resumes its
     * connection before the daemon (and the request) goes away */
    workers_stop(s);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    rg_log(RG_LOG_INFO, "event=stopped listener=%s unfinished=%d", s->name, left);
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
    pthread_cond_destroy(&s->q_cond);
    free(s);
}

/* ---- the access handler ---------------------------------------------------- */

static int is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    /* application/<anything>+json (e.g. application/merge-patch+json) */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static int is_form_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

static int authorized(const rg_http_req *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *k = h + 7;
    while (*k == ' ')
        k++;
    /* constant time: the key's content must not leak through timing */
    return rg_ct_equal(k, strlen(k), r->srv->admin_key, r->srv->admin_key_len);
}

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

static void set_early(rg_http_req *r, int status, const char *code, const char *field,
                      const char *msg)
{
    r->early_status = status;
    rg_error_set(&r->early, RG_ERR, status, code, field, "%s", msg);
}

/* First call: headers only. Route, auth, size and type are decided here. */
static void req_begin(rg_http_req *r)
{
    rg_http_server *s = r->srv;
    rg_http_router_match(s->router, r->method, r->path, r->arena, &r->match);
    unsigned flags = r->match.route ? rg_http_route_flags(r->match.route) : 0;
    size_t rlimit = r->match.route ? rg_http_route_max_body(r->match.route) : 0;
    r->limit = rlimit ? rlimit : s->max_body;
    r->keep_body = (flags & (RG_HTTP_BODY_JSON | RG_HTTP_BODY_FORM | RG_HTTP_BODY_RAW)) != 0;

    if (s->admin_key && !(flags & RG_HTTP_NO_AUTH) && !authorized(r)) {
        /* else the console's cookie, with its CSRF token on writes */
        int st = rg_http_console_authorize(s, r);
        if (st == 403) {
            set_early(r, 403, "csrf_token_invalid", "X-CSRF-Token",
                      "a console write needs its X-CSRF-Token from the same origin");
            return;
        }
        if (st != 0) {
            set_early(r, 401, "unauthorized", NULL,
                      "missing or wrong bearer key (Authorization: Bearer <key>)");
            return;
        }
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    /* the size is checked before the route errors: whatever the path, a
     * declared oversize body is never read */
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || *end || end == cl || v > r->limit) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", r->limit);
            set_early(r, 413, "body_too_large", NULL, msg);
            return;
        }
    }
    if (r->match.status == 404) {
        set_early(r, 404, "not_found", NULL, "no such path");
        return;
    }
    if (r->match.status == 405) {
        set_early(r, 405, "method_not_allowed", NULL, "method not allowed on this path");
        return;
    }
    if (r->match.status == 400) {
        set_early(r, 400, "invalid_path", NULL, "bad percent-encoding in the path");
        return;
    }
    const char *ct = rg_http_content_type(r);
    int has_body = (cl && strcmp(cl, "0") != 0) ||
                   MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    if ((flags & RG_HTTP_BODY_JSON) && has_body && !is_json_type(ct)) {
        set_early(r, 415, "unsupported_media_type", NULL,
                  "the body must be application/json");
        return;
    }
    if ((flags & RG_HTTP_BODY_FORM) && has_body && !is_form_type(ct)) {
        set_early(r, 415, "unsupported_media_type", NULL,
                  "the body must be application/x-www-form-urlencoded");
        return;
    }
}

static enum MHD_Result queue_answer(rg_http_req *r)
{
    if (!r->answered) {
        rg_log(RG_LOG_ERROR, "event=handler_no_answer method=%s rid=%s", r->method, r->rid);
        rg_http_send_errorf(r, 500, "internal_error", NULL, "the handler gave no answer");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->rlen, (void *)(r->rbody ? r->rbody : ""),
                                        MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (r->ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    if (r->status == 405 && r->match.allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->match.allow);
    if (r->status == 401 && r->srv->admin_key)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    for (size_t i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES)
        r->queued = 1;
    return ok;
}

/* Last call: the whole body is in. Parse it as the route asks, run the
 * handler, queue the answer. */
static enum MHD_Result req_finish(rg_http_req *r)
{
    if (r->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", r->limit);
        set_early(r, 413, "body_too_large", NULL, msg);
    }
    if (r->early_status) {
        rg_http_send_error(r, &r->early);
        return queue_answer(r);
    }
    if (r->body.oom) {
        rg_http_send_errorf(r, 500, "out_of_memory", NULL, "out of memory");
        return queue_answer(r);
    }
    const rg_http_route *rt = r->match.route;
    assert(rt);   /* no route always sets early_status (404/405/400) */
    unsigned flags = rg_http_route_flags(rt);
    if (flags & RG_HTTP_BODY_JSON) {
        if (r->body.len == 0 && (flags & RG_HTTP_BODY_OPTIONAL)) {
            r->json = NULL;
        } else {
            json_error_t je;
            r->json = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                                 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
            if (!r->json) {
                rg_http_send_errorf(r, 400, "invalid_json", NULL,
                                    "invalid JSON at byte %d: %s", je.position, je.text);
                return queue_answer(r);
            }
        }
    } else if (flags & RG_HTTP_BODY_FORM) {
        if (rg_http_parse_urlencoded(r->arena, r->body.data ? r->body.data : "", r->body.len,
                                     &r->form, &r->nform) != 0) {
            rg_http_send_errorf(r, 400, "invalid_form", NULL,
                                "the form body has a bad %%-escape");
            return queue_answer(r);
        }
    }
    if ((flags & RG_HTTP_OFFLOAD) && r->srv->nworkers > 0) {
        offload(r);   /* answered when the worker resumes the connection */
        return MHD_YES;
    }
    rg_http_route_handler(rt)(r, rg_http_route_ctx(rt));
    return queue_answer(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    rg_http_server *s = cls;
    rg_http_req *r = *con_cls;
    if (!r || !r->srv) {
        if (!r)
            r = calloc(1, sizeof *r);
        rg_arena *a = rg_arena_new(0);
        if (!r || !a) {
            if (r)
                free(r->raw_uri);
            free(r);
            *con_cls = NULL;
            rg_arena_free(a);
            return MHD_NO;
        }
        r->srv = s;
        r->conn = conn;
        r->arena = a;
        r->t0 = rg_mono_us();
        rg_id_new("req", r->rid, sizeof r->rid);
        r->method = rg_arena_strdup(a, method);
        r->path = rg_arena_strdup(a, url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        snprintf(r->peer, sizeof r->peer, "-");
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->peer,
                          sizeof r->peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer,
                          sizeof r->peer);
        }
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        if (!r->method || !r->path)
            return MHD_NO;
        req_begin(r);
        /* A body we must not read (no key, or declared too large): answer
         * now. MHD then closes the connection instead of reading on. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int has_body = (cl && strcmp(cl, "0") != 0) ||
                       MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (has_body && (r->early_status == 413 || r->early_status == 401)) {
            rg_http_send_error(r, &r->early);
            return queue_answer(r);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->queued)
            return MHD_YES;
        r->received += n;
        if (r->received > r->limit) {
            /* chunked or lying Content-Length: stop keeping bytes */
            if (!r->too_large) {
                r->too_large = 1;
                rg_buf_free(&r->body);
                char msg[96];
                snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", r->limit);
                set_early(r, 413, "body_too_large", NULL, msg);
                rg_http_send_error(r, &r->early);
                /* MHD 0.9.75 refuses a reply while the body is still coming
                 * (measured): the 413 built here is then queued after the
                 * last chunk, or the connection is closed past the slack */
                if (queue_answer(r) == MHD_YES)
                    return MHD_YES;
            }
            if (r->received - r->limit > DISCARD_SLACK)
                return MHD_NO;   /* an endless body: close the connection */
            return MHD_YES;
        }
        if (r->keep_body && !r->early_status)
            rg_buf_append(&r->body, upload_data, n);
        return MHD_YES;
    }
    if (r->queued)
        return MHD_YES;
    if (r->offloaded)   /* resumed: the worker has run the handler */
        return atomic_load(&r->handled) ? queue_answer(r) : MHD_YES;
    return req_finish(r);
}

/* ---- request accessors --------------------------------------------------------- */

const char *rg_http_method(const rg_http_req *r) { return r->method; }
const char *rg_http_path(const rg_http_req *r) { return r->path; }

const char *rg_http_raw_query(const rg_http_req *r)
{
    const char *q = r->raw_uri ? strchr(r->raw_uri, '?') : NULL;
    return q ? q + 1 : "";
}
const char *rg_http_request_id(const rg_http_req *r) { return r->rid; }
rg_arena *rg_http_arena(rg_http_req *r) { return r->arena; }
json_t *rg_http_json(const rg_http_req *r) { return r->json; }

const char *rg_http_param(const rg_http_req *r, const char *name)
{
    for (int i = 0; i < r->match.nparams; i++)
        if (strcmp(r->match.names[i], name) == 0)
            return r->match.values[i];
    return NULL;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    rg_http_req *r = cls;
    char *k = rg_http_pct_decode(r->arena, key, strlen(key), 1);
    char *v = value ? rg_http_pct_decode(r->arena, value, strlen(value), 1)
                    : rg_arena_strdup(r->arena, "");
    if (!k || !v)
        return MHD_YES;   /* a badly escaped parameter is dropped */
    if (r->nquery == r->capquery) {   /* doubling: no quadratic copying */
        size_t cap = r->capquery ? r->capquery * 2 : 8;
        rg_http_kv *nk = rg_arena_alloc(r->arena, cap * sizeof *nk);
        if (!nk)
            return MHD_YES;
        if (r->nquery)
            memcpy(nk, r->query, r->nquery * sizeof *nk);
        r->query = nk;
        r->capquery = cap;
    }
    r->query[r->nquery].key = k;
    r->query[r->nquery].value = v;
    r->nquery++;
    return MHD_YES;
}

static void load_query(const rg_http_req *cr)
{
    rg_http_req *r = (rg_http_req *)cr;   /* lazily filled cache */
    if (r->query_done)
        return;
    r->query_done = 1;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
}

static size_t kv_all(const rg_http_kv *kv, size_t n, const char *name, const char **out,
                     size_t max)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, name) == 0) {
            if (c < max)
                out[c] = kv[i].value;
            c++;
        }
    return c;
}

const char *rg_http_query(const rg_http_req *r, const char *name)
{
    const char *v = NULL;
    load_query(r);
    return kv_all(r->query, r->nquery, name, &v, 1) ? v : NULL;
}

size_t rg_http_query_all(const rg_http_req *r, const char *name, const char **out, size_t max)
{
    load_query(r);
    return kv_all(r->query, r->nquery, name, out, max);
}

const char *rg_http_form(const rg_http_req *r, const char *name)
{
    const char *v = NULL;
    return kv_all(r->form, r->nform, name, &v, 1) ? v : NULL;
}

size_t rg_http_form_all(const rg_http_req *r, const char *name, const char **out, size_t max)
{
    return kv_all(r->form, r->nform, name, out, max);
}

const char *rg_http_header(const rg_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result collect_cookie_header(void *cls, enum MHD_ValueKind kind,
                                             const char *key, const char *value)
{
    rg_http_req *r = cls;
    if (value && strcasecmp(key, MHD_HTTP_HEADER_COOKIE) == 0)
        rg_http_parse_cookies(r->arena, value, &r->cookies, &r->ncookies);
    return MHD_YES;
}

static void load_cookies(const rg_http_req *cr)
{
    rg_http_req *r = (rg_http_req *)cr;
    if (r->cookies_done)
        return;
    r->cookies_done = 1;
    /* every Cookie header, so a second planted header is seen too */
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_cookie_header, r);
}

const char *rg_http_cookie(const rg_http_req *r, const char *name)
{
    const char *v = NULL;
    load_cookies(r);
    return kv_all(r->cookies, r->ncookies, name, &v, 1) ? v : NULL;
}

int rg_http_cookie_count(const rg_http_req *r, const char *name)
{
    load_cookies(r);
    return (int)kv_all(r->cookies, r->ncookies, name, NULL, 0);
}

const char *rg_http_peer_addr(const rg_http_req *r)
{
    return r->peer;
}

int rg_http_peer_trusted(const rg_http_req *r)
{
    return addr_in(r->srv, r->peer);
}

const char *rg_http_client_addr(const rg_http_req *cr)
{
    rg_http_req *r = (rg_http_req *)cr;
    if (r->client)
        return r->client;
    r->client = r->peer;
    const char *xff = rg_http_header(r, "X-Forwarded-For");
    if (!xff || !addr_in(r->srv, r->peer))
        return r->client;   /* forwarded headers only from trusted proxies */
    /* walk from the right: the first address that is not a trusted proxy */
    size_t end = strlen(xff);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t b = start, e = end;
        while (b < e && (xff[b] == ' ' || xff[b] == '\t'))
            b++;
        while (e > b && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        char *ip = rg_arena_strndup(r->arena, xff + b, e - b);
        unsigned char tmp[16];
        if (!ip || (inet_pton(AF_INET, ip, tmp) != 1 && inet_pton(AF_INET6, ip, tmp) != 1))
            break;   /* garbage: keep the last good hop */
        r->client = ip;
        if (!addr_in(r->srv, ip))
            break;
        end = start ? start - 1 : 0;
    }
    return r->client;
}

const void *rg_http_body(const rg_http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *rg_http_content_type(const rg_http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct ? ct : "";
}

/* ---- response ---------------------------------------------------------------------- */

int rg_http_add_header(rg_http_req *r, const char *name, const char *value)
{
    if (!name || !value || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
        return RG_EINVAL;   /* no header injection */
    if (r->nhdrs == r->caphdrs) {
        size_t cap = r->caphdrs ? r->caphdrs * 2 : 8;
        hdr *nh = rg_arena_alloc(r->arena, cap * sizeof *nh);
        if (!nh)
            return RG_ENOMEM;
        if (r->nhdrs)
            memcpy(nh, r->hdrs, r->nhdrs * sizeof *nh);
        r->hdrs = nh;
        r->caphdrs = cap;
    }
    const char *n = rg_arena_strdup(r->arena, name), *v = rg_arena_strdup(r->arena, value);
    if (!n || !v)
        return RG_ENOMEM;
    r->hdrs[r->nhdrs].name = n;
    r->hdrs[r->nhdrs].value = v;
    r->nhdrs++;
    return RG_OK;
}

int rg_http_send_arena(rg_http_req *r, int status, const char *content_type,
                       const void *body, size_t len)
{
    if (r->answered)
        return RG_ERR;
    r->answered = 1;
    r->status = status;
    r->ctype = content_type;
    r->rbody = body;
    r->rlen = body ? len : 0;
    return RG_OK;
}

int rg_http_send(rg_http_req *r, int status, const char *content_type, const void *body,
                 size_t len)
{
    if (r->answered)
        return RG_ERR;
    void *copy = NULL;
    if (body && len) {
        copy = rg_arena_alloc(r->arena, len);
        if (!copy) {
            rg_http_send_arena(r, 500, NULL, NULL, 0);
            return RG_ENOMEM;
        }
        memcpy(copy, body, len);
    }
    const char *ct = content_type ? rg_arena_strdup(r->arena, content_type) : NULL;
    return rg_http_send_arena(r, status, ct, copy, copy ? len : 0);
}

int rg_http_send_json(rg_http_req *r, int status, json_t *obj)
{
    if (r->answered) {
        json_decref(obj);
        return RG_ERR;
    }
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(obj);
    if (!s) {
        static const char oom[] = "{\"code\":\"internal_error\",\"message\":\"cannot encode\","
                                  "\"errors\":[]}";
        return rg_http_send_arena(r, 500, "application/json", oom, sizeof oom - 1);
    }
    int rc = rg_http_send(r, status, "application/json", s, strlen(s));
    free(s);
    return rc;
}

int rg_http_send_error(rg_http_req *r, const rg_error *err)
{
    int status = err && err->status ? err->status : 500;
    const char *code = err && err->code[0] ? err->code : "internal_error";
    const char *msg = err && err->message[0] ? err->message : "internal error";
    json_t *errors = json_array();
    if (err && err->field[0])
        json_array_append_new(errors, json_pack("{s:s,s:s}", "field", err->field, "code", code));
    json_t *o = json_pack("{s:s,s:s,s:o}", "code", code, "message", msg, "errors", errors);
    return rg_http_send_json(r, status, o);
}

int rg_http_send_errorf(rg_http_req *r, int status, const char *code, const char *field,
                        const char *fmt, ...)
{
    rg_error e;
    rg_error_clear(&e);
    e.status = status;
    snprintf(e.code, sizeof e.code, "%s", code ? code : "internal_error");
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return rg_http_send_error(r, &e);
}

int rg_http_redirect(rg_http_req *r, int status, const char *location)
{
    if (r->answered)
        return RG_ERR;
    int rc = rg_http_add_header(r, "Location", location);
    if (rc != 0)
        return rc;
    return rg_http_send_arena(r, status, NULL, NULL, 0);
}

int rg_http_answered(const rg_http_req *r)
{
    return r->answered;
}
