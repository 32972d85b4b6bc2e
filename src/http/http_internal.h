/* http_internal.h: what the files of src/http share and nobody else sees:
 * the listener and request structs (server.c owns the listener's
 * lifecycle, access.c the MHD callbacks that run a request, request.c and
 * response.c the handlers' API on a request, addr.c the trusted proxies),
 * and the admin listener's console sessions (bsess.c) read by the auth
 * check of access.c. */
#ifndef ROLEGATE_HTTP_INTERNAL_H
#define ROLEGATE_HTTP_INTERNAL_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include "rolegate/http.h"
#include "rolegate/util.h"

#define MAX_PROXIES       64

typedef struct rg_http_watch rg_http_watch;
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
    atomic_int      unstarted_conns;  /* handed to MHD, not yet started by a pool thread */
    /* the slow-client guard (guard.c): every open connection, watched */
    int             request_timeout;  /* seconds */
    pthread_mutex_t g_lock;
    struct rg_http_watch *g_head;
    pthread_t       g_thread;
    int             g_running;
    atomic_int      g_stop;
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


/* addr.c: "host:port", "[v6]:port", ":port" (port 0: any free port);
 * one address or CIDR of [server] trusted_proxies; 1 if ip is one of the
 * listener's trusted proxies (IPv4-mapped IPv6 seen as IPv4). */
int rg_http_split_listen(const char *s, char *host, size_t hsz, char *port, size_t psz);
int rg_http_parse_cidr(const char *s, size_t n, cidr *c);
int rg_http_addr_trusted(const rg_http_server *s, const char *ip);

/* access.c: the MHD callbacks of a listener's daemon. */
enum MHD_Result rg_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_size,
                                   void **con_cls);
void rg_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
void *rg_http_uri_seen(void *cls, const char *uri, struct MHD_Connection *conn);
size_t rg_http_no_unescape(void *cls, struct MHD_Connection *c, char *s);
void rg_http_mhd_logger(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* guard.c: the slow-client guard (see its opening comment). opened/closed
 * from MHD's connection notifications; headers_done at a request's first
 * call, request_done at its end; body_late: 1 once a body arrives too
 * slowly (the caller closes the connection). */
void rg_http_guard_opened(rg_http_server *s, struct MHD_Connection *conn, void **socket_ctx);
void rg_http_guard_closed(rg_http_server *s, void **socket_ctx);
void rg_http_guard_headers_done(struct MHD_Connection *conn);
void rg_http_guard_request_done(struct MHD_Connection *conn);
int rg_http_guard_body_late(const rg_http_req *r);
int rg_http_guard_start(rg_http_server *s);
void rg_http_guard_stop(rg_http_server *s);

/* server.c: suspends the request's connection and queues it for the
 * listener's offload workers, which run the handler and resume it. */
void rg_http_offload(rg_http_req *r);

/* The console session table of an admin listener, NULL until enabled. */
rg_http_bsess *rg_http_server_console(rg_http_server *s);
/* Creates it (idempotent). 0 or RG_ENOMEM. */
int rg_http_server_console_enable(rg_http_server *s);
/* 1 if key is the listener's admin key (constant time), else 0. */
int rg_http_server_key_equal(const rg_http_server *s, const char *key);
/* 0 if the request carries a console session (and, on a write, the CSRF
 * token and a same-origin Origin), else the status to answer: 401 or 403. */
int rg_http_console_authorize(rg_http_server *s, const rg_http_req *r);

#endif
