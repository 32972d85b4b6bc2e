/* http.h: rolegate's HTTP layer over libmicrohttpd: a listener
 * (rg_http_server), a router with {param} path segments, a per-request arena
 * (nginx model: request-lifetime memory freed in one go), the request API
 * handlers read, the response API they answer with, and the one place an
 * rg_error becomes the JSON error body {"code","message","errors":[...]}.
 * Handlers run on the server's pool threads and may block (store, Redis, IdP
 * calls); each request logs ONE line (method, path without query, status,
 * duration, request id), never a body, key or token. */
#ifndef ROLEGATE_HTTP_H
#define ROLEGATE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rolegate/arena.h"
#include "rolegate/error.h"

/* ---- percent-decoding (shared by router, query and form parsing) -------- */
/* Decodes %XX (and '+' as space when plus_is_space) of s[0..n) into the
 * arena. NULL on a bad escape, an encoded NUL, or OOM. */
char *rg_http_pct_decode(rg_arena *a, const char *s, size_t n, int plus_is_space);

/* A decoded name/value pair (both NUL-terminated, in an arena). */
typedef struct rg_http_kv { const char *key, *value; } rg_http_kv;
/* Parses "a=1&b=x+y&a=2" (query or x-www-form-urlencoded body; '+' is a
 * space, a name without '=' has value ""). Appends to *kv (arena array of
 * *n items, grown in the arena). Returns 0, or -1 on a bad %-escape / OOM. */
int rg_http_parse_urlencoded(rg_arena *a, const char *s, size_t len,
                             rg_http_kv **kv, size_t *n);
/* Parses one Cookie header ("a=1; b=2") the same way (values are NOT
 * decoded; surrounding double quotes are removed). Returns 0 or -1 (OOM). */
int rg_http_parse_cookies(rg_arena *a, const char *header, rg_http_kv **kv, size_t *n);

/* ---- router ---------------------------------------------------------------- */
typedef struct rg_http_req rg_http_req;
/* A handler answers through the response API below. If it returns without
 * having answered, the server answers 500. ctx is the pointer given at
 * route registration (e.g. an rg_ctx). */
typedef void (*rg_http_handler)(rg_http_req *req, void *ctx);

/* Route flags. Without a body flag the body is read, counted against the
 * limit, and dropped. */
#define RG_HTTP_BODY_JSON     0x01u  /* 415 unless JSON; parsed (any JSON value),
                                        400 invalid_json on bad JSON or duplicate keys */
#define RG_HTTP_BODY_FORM     0x02u  /* 415 unless x-www-form-urlencoded; parsed */
#define RG_HTTP_BODY_RAW      0x04u  /* bytes kept as they are (e.g. metadata XML) */
#define RG_HTTP_BODY_OPTIONAL 0x08u  /* with JSON: an empty body is allowed */
#define RG_HTTP_NO_AUTH       0x10u  /* on an admin listener: no bearer key needed */
#define RG_HTTP_OFFLOAD       0x20u  /* the handler is CPU-heavy or blocks (SAML ACS,
                                        AuthnRequest signing, an IdP round trip): it
                                        runs on the listener's worker threads while
                                        the connection is suspended, so it never holds
                                        up the other connections of its poll thread */

typedef struct rg_http_router rg_http_router;
typedef struct rg_http_route rg_http_route;

#define RG_HTTP_MAX_PARAMS 8
typedef struct rg_http_match {
    int                  status;      /* 200 found, 404, 405, 400 (bad escape) */
    const rg_http_route *route;       /* when status == 200 */
    int                  nparams;
    const char          *names[RG_HTTP_MAX_PARAMS];   /* borrowed from the route */
    const char          *values[RG_HTTP_MAX_PARAMS];  /* decoded, in the arena */
    char                 allow[128];  /* for 405: "GET, HEAD, POST" */
} rg_http_match;

/* Empty router (NULL on OOM); rg_http_router_free accepts NULL. */
rg_http_router *rg_http_router_new(void);
void rg_http_router_free(rg_http_router *r);
/* Adds METHOD pattern. Pattern: "/a/{name}/b"; a {name} matches one
 * non-empty segment, percent-decoded. max_body 0 = the server default.
 * Returns 0, or RG_EINVAL (bad pattern, > RG_HTTP_MAX_PARAMS params, the
 * same method+pattern twice) / RG_ENOMEM, with err filled. GET also
 * answers HEAD. */
int rg_http_router_add(rg_http_router *r, const char *method, const char *pattern,
                       rg_http_handler fn, void *ctx, unsigned flags, size_t max_body,
                       rg_error *err);
/* Matches a RAW (still percent-encoded) path without query. A trailing '/'
 * is ignored ("/healthz/" is "/healthz"); empty segments ("//") never
 * match. Literal segments win over {params}. Fills m; returns m->status. */
int rg_http_router_match(const rg_http_router *r, const char *method, const char *path,
                         rg_arena *a, rg_http_match *m);
/* Accessors of a matched route. */
rg_http_handler rg_http_route_handler(const rg_http_route *rt);
void    *rg_http_route_ctx(const rg_http_route *rt);
unsigned rg_http_route_flags(const rg_http_route *rt);
size_t   rg_http_route_max_body(const rg_http_route *rt);

/* ---- server ---------------------------------------------------------------- */
typedef struct rg_http_server rg_http_server;

typedef struct rg_http_options {
    const char *name;                /* "public" / "admin": in log lines */
    const char *listen;              /* "host:port" ("127.0.0.1:0" = any free port) */
    int         threads;             /* pool threads (>= 1) */
    size_t      max_body;            /* default body cap, bytes */
    int         connection_timeout;  /* idle seconds */
    int         request_timeout;     /* seconds for a request's headers, then its body
                                        (+1 s per 8 KiB); 0 = 10 (http/guard.c) */
    int         max_connections;     /* 0 = 1024 */
    int         max_connections_per_ip; /* 0 = no limit */
    const char *admin_key;           /* non-NULL: every route (but NO_AUTH) needs
                                        "Authorization: Bearer <key>" (copied) */
    const char *trusted_proxies;     /* "ip,cidr,..." whose X-Forwarded-For is
                                        believed; NULL/"" = none (copied) */
} rg_http_options;

/* Creates a server (not listening yet). NULL with err on a bad option. */
rg_http_server *rg_http_server_new(const rg_http_options *opt, rg_error *err);
/* ---- route tables ---------------------------------------------------------
 * Every listener's routes are declared as a table of rg_http_route_def, one
 * line a route, next to the handlers they name, and registered with one
 * call. "Where is route X" is one grep for its pattern. Example:
 *
 *     static const rg_http_route_def routes[] = {
 *         {"GET",  "/widgets/{id}", h_widget_get, 0, 0},
 *         {"POST", "/widgets",      h_widget_new, RG_HTTP_BODY_JSON, 0},
 *     };
 *     if (rg_http_routes_add(srv, routes, RG_HTTP_NROUTES(routes), ctx, err) != 0)
 *         return ...;   (err names the route; the server logged it)
 *
 * A table whose max_body depends on the config is a const local array. */
typedef struct rg_http_route_def {
    const char     *method;     /* "GET" (also answers HEAD), "POST", ... */
    const char     *pattern;    /* "/a/{name}/b" (see rg_http_router_add) */
    rg_http_handler handler;    /* called with the ctx given to rg_http_routes_add */
    unsigned        flags;      /* RG_HTTP_BODY_* | RG_HTTP_NO_AUTH | RG_HTTP_OFFLOAD */
    size_t          max_body;   /* body cap for this route, 0 = the listener's */
} rg_http_route_def;
#define RG_HTTP_NROUTES(table) (sizeof(table) / sizeof((table)[0]))

/* Registers table[0..n) on s (not started yet), every route with ctx. Fails
 * loudly: a bad or duplicate route is logged (event=route_add error=...)
 * and returned as RG_EINVAL / RG_ENOMEM with err naming "METHOD pattern";
 * the routes before it stay registered (the caller gives up on the server).
 * s NULL (a listener this run does not have) registers nothing: 0. */
int rg_http_routes_add(rg_http_server *s, const rg_http_route_def *table, size_t n,
                       void *ctx, rg_error *err);
/* Binds and starts the pool. Returns 0 or RG_EIO with err. */
int rg_http_server_start(rg_http_server *s, rg_error *err);
/* The bound TCP port (useful with port 0). */
int rg_http_server_port(const rg_http_server *s);
/* Stops accepting, waits up to grace_ms for in-flight requests to finish
 * (answers during the drain carry "Connection: close"), then stops the
 * pool. Idempotent. */
void rg_http_server_stop(rg_http_server *s, int grace_ms);
/* Stops (grace 0) if needed and frees. Accepts NULL. */
void rg_http_server_free(rg_http_server *s);

/* ---- request (all returned strings are borrowed: valid until the reply) -- */
const char *rg_http_method(const rg_http_req *r);
/* The query string exactly as received (still percent-encoded, no '?'; ""
 * if none): for signatures over its octets (SAML HTTP-Redirect). */
const char *rg_http_raw_query(const rg_http_req *r);
const char *rg_http_request_id(const rg_http_req *r);
rg_arena   *rg_http_arena(rg_http_req *r);
/* Path parameter {name}, percent-decoded; NULL if none. */
const char *rg_http_param(const rg_http_req *r, const char *name);
/* First value of a query parameter (decoded, '+' = space), NULL if absent. */
const char *rg_http_query(const rg_http_req *r, const char *name);
/* Every value of a repeatable query parameter: fills out[0..max) and
 * returns how many there are (may exceed max). */
size_t rg_http_query_all(const rg_http_req *r, const char *name, const char **out, size_t max);
/* Request header (case-insensitive name), first occurrence; NULL if absent. */
const char *rg_http_header(const rg_http_req *r, const char *name);
/* Cookie value; NULL if absent. rg_http_cookie_count tells how many times
 * the name appears (a planted duplicate cookie shows as 2). */
const char *rg_http_cookie(const rg_http_req *r, const char *name);
int rg_http_cookie_count(const rg_http_req *r, const char *name);
/* Peer address of the TCP connection, and the client address: the peer, or
 * when the peer is a trusted proxy, the right-most X-Forwarded-For entry
 * that is not itself a trusted proxy. */
const char *rg_http_peer_addr(const rg_http_req *r);
const char *rg_http_client_addr(const rg_http_req *r);
/* 1 if the peer (the socket's address) is one of server.trusted_proxies:
 * only then may forwarded headers (X-Forwarded-*) be believed. */
int rg_http_peer_trusted(const rg_http_req *r);
/* Body bytes (NUL-terminated for convenience; len excludes it). */
const void *rg_http_body(const rg_http_req *r, size_t *len);
/* Content-Type header, "" if none. */
const char *rg_http_content_type(const rg_http_req *r);
/* JSON body of a RG_HTTP_BODY_JSON route (borrowed; NULL if the body was
 * empty and optional). */
json_t *rg_http_json(const rg_http_req *r);
/* Form fields of a RG_HTTP_BODY_FORM route (decoded). */
const char *rg_http_form(const rg_http_req *r, const char *name);
size_t rg_http_form_all(const rg_http_req *r, const char *name, const char **out, size_t max);

/* ---- response -------------------------------------------------------------- */
/* Adds a response header (repeatable: two Set-Cookie are two calls). Name
 * and value are copied; a value with CR/LF is refused (RG_EINVAL). */
int rg_http_add_header(rg_http_req *r, const char *name, const char *value);
/* Adds n headers {name, value} in order, all or none: at the first that
 * cannot be added (its name in *bad, if bad is not NULL) none of them is
 * left on the response. A pair whose value is NULL is skipped. */
int rg_http_add_headers(rg_http_req *r, const char *const (*pairs)[2], size_t n,
                        const char **bad);
/* Answers with status and body (copied), content_type may be NULL. Returns
 * 0, or RG_ERR if the request was already answered. */
/* The status answered so far (0 before a send): for a wrapper that meters
 * a handler (issue 11 item 9). */
int rg_http_response_status(const rg_http_req *r);
int rg_http_send(rg_http_req *r, int status, const char *content_type,
                 const void *body, size_t len);
/* The same without a copy: body must live in the request's arena (or be
 * static). */
int rg_http_send_arena(rg_http_req *r, int status, const char *content_type,
                       const void *body, size_t len);
/* Answers JSON and STEALS the reference to obj (json_decref'd here). */
int rg_http_send_json(rg_http_req *r, int status, json_t *obj);
/* THE error body: {"code","message","errors":[{"field","code"}]} (errors is
 * [] when err->field is empty) with err->status (500 if unset). */
int rg_http_send_error(rg_http_req *r, const rg_error *err);
/* Shorthand: fills an rg_error of kind rc (its status from error.c's table,
 * e.g. RG_ENOTFOUND answers 404) and sends it. */
int rg_http_send_errorf(rg_http_req *r, int rc, const char *code, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 302/303 with Location (copied), empty body. */
int rg_http_redirect(rg_http_req *r, int status, const char *location);
/* 1 once an answer was set. */
int rg_http_answered(const rg_http_req *r);

/* ---- browser sessions (admin console, setup portal) ------------------------ */
/* A cookie id (HttpOnly, SameSite=Strict) paired with a CSRF token the page
 * sends back as X-CSRF-Token on writes, and a scope (the portal's
 * organization id, "" for the console). In process, at most max (the oldest
 * goes when full), ttl_s seconds each. */
typedef struct rg_http_bsess rg_http_bsess;
#define RG_HTTP_BSESS_TOKEN    48    /* 32 random bytes, base64url, NUL */
#define RG_HTTP_BSESS_SCOPE    96
#define RG_HTTP_CONSOLE_COOKIE "rolegate_console"
#define RG_HTTP_CONSOLE_TTL    (8 * 3600)

rg_http_bsess *rg_http_bsess_new(size_t max, int ttl_s);
void rg_http_bsess_free(rg_http_bsess *b);   /* accepts NULL */
/* New session: fills id and csrf (RG_HTTP_BSESS_TOKEN bytes each) and
 * *expires (seconds). 0, or RG_EINVAL (scope too long). */
int rg_http_bsess_create(rg_http_bsess *b, const char *scope, char *id, char *csrf,
                         int64_t *expires);
/* The session of the request's cookie (present exactly once): 0 (scope and
 * csrf_out, when given, filled), RG_ENOTFOUND (none, unknown or expired) or
 * RG_EINVAL (need_csrf and the X-CSRF-Token header is missing or wrong). */
int rg_http_bsess_check(rg_http_bsess *b, const rg_http_req *r, const char *cookie,
                        int need_csrf, char *scope, size_t scope_size, char *csrf_out);
/* Ends the request's session (no-op if none). */
void rg_http_bsess_delete(rg_http_bsess *b, const rg_http_req *r, const char *cookie);
/* Adds Set-Cookie for id (NULL: clears the cookie). */
int rg_http_bsess_cookie(rg_http_req *r, const char *cookie, const char *id, int max_age,
                         int secure);
/* 1 unless the browser says the request is cross-origin (Sec-Fetch-Site
 * other than same-origin/none, or an Origin other than the Host). */
int rg_http_same_origin(const rg_http_req *r);
/* Console sign-in routes on an admin listener: POST /console/session
 * {"key"} -> 201 {"csrf_token","expires_at"} + cookie; GET (the token again,
 * or 401); DELETE (sign out, CSRF token needed). From then on the listener
 * also accepts the cookie instead of the bearer key, and on writes only
 * with X-CSRF-Token. Returns 0 or a negative code with err. */
int rg_http_console_auth_register(rg_http_server *admin, rg_error *err);

#endif
