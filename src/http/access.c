/* access.c: what one request goes through, as libmicrohttpd's callbacks
 * (the access handler, completion, the raw URI, the logger): the route,
 * the admin bearer key compared in constant time (or a console session),
 * body limits from Content-Length BEFORE reading (413) and by counting
 * chunked bytes, the body parsed as the route asks, the handler run (here
 * or on an offload worker), one log line per request with a request id
 * (also sent as X-Request-Id). The reply is never queued on the first
 * (headers-only) call unless the body must not be read (401, 413): queuing
 * there makes MHD close the connection, which kills keep-alive. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_internal.h"

#define DISCARD_SLACK (8u << 20)   /* oversized chunked body: drain this much, then close */

/* Issue 17: each MHD thread keeps the last request it finished, with its
 * arena's first block, for its next one. A request then mallocs neither
 * itself (1 kB: glibc consolidated its fast bins at each such malloc, 1%
 * of /auth's CPU) nor its arena's 4 KiB. The key's destructor frees the
 * spare when the thread ends. */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static int spare_ok;

/* What a finished request holds besides its arena: released, and NULLed
 * (a spare is reused; rg_buf_free leaves the buffer empty). */
static void req_clear(rg_http_req *r)
{
    if (r->json)
        json_decref(r->json);
    r->json = NULL;
    rg_buf_free(&r->body);
    free(r->raw_uri);
    r->raw_uri = NULL;
}

static void req_destroy(void *p)
{
    rg_http_req *r = p;
    req_clear(r);
    rg_arena_free(r->arena);
    free(r);
}

static void spare_init(void)
{
    spare_ok = pthread_key_create(&spare_key, req_destroy) == 0;
}

static rg_http_req *req_new(void)
{
    pthread_once(&spare_once, spare_init);
    rg_http_req *r = spare_ok ? pthread_getspecific(spare_key) : NULL;
    if (!r || pthread_setspecific(spare_key, NULL) != 0)
        return calloc(1, sizeof *r);
    rg_arena *a = r->arena;
    memset(r, 0, sizeof *r);
    r->arena = a;
    return r;
}

static void req_free(rg_http_req *r)
{
    if (!r)
        return;
    if (r->arena && spare_ok && !pthread_getspecific(spare_key)) {
        req_clear(r);
        rg_arena_reset(r->arena);
        if (pthread_setspecific(spare_key, r) == 0)
            return;
    }
    req_destroy(r);
}

/* How a request ended when it did not end with its answer sent in full:
 * the log line then says so (an answer cut by a shutdown is not "200"). */
static const char *end_of(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:     return NULL;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:  return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:  return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:       return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:     return "client_abort";
    default:                                      return "error";
    }
}

/* The request line's pairs are appended without printf (issue 17: its
 * vsnprintf was the larger part of the line's ~5% of /auth's CPU). */
typedef struct line { char b[1024]; size_t n; } line;

static void put(line *l, const char *s)
{
    size_t k = strlen(s);
    if (k > sizeof l->b - l->n)
        k = sizeof l->b - l->n;
    memcpy(l->b + l->n, s, k);
    l->n += k;
}

static void put_int(line *l, long long v)
{
    char d[24];
    int i = (int)sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    d[--i] = 0;
    do
        d[--i] = (char)('0' + u % 10);
    while ((u /= 10) && i > 1);
    if (v < 0)
        d[--i] = '-';
    put(l, d + i);
}

static void log_request(rg_http_req *r, enum MHD_RequestTerminationCode toe)
{
    rg_log_level lvl = r->status >= 500 ? RG_LOG_WARN : RG_LOG_INFO;
    if (!rg_log_enabled(lvl))
        return;
    char m[40], p[512];
    int64_t dur = rg_mono_us() - r->t0;
    const char *end = end_of(toe);
    line l;
    l.n = 0;
    /* path only: the query string may carry codes, tokens or SAML data */
    put(&l, "event=http listener=");
    put(&l, r->srv->name);
    put(&l, " method=");
    put(&l, rg_log_quote(m, sizeof m, r->method));
    put(&l, " path=");
    put(&l, rg_log_quote(p, sizeof p, r->path));
    put(&l, " status=");
    put_int(&l, r->queued ? r->status : 0);
    put(&l, " dur_us=");
    put_int(&l, (long long)dur);
    put(&l, " rid=");
    put(&l, r->rid);
    put(&l, " peer=");
    put(&l, r->peer);
    if (end) {
        put(&l, " end=");
        put(&l, end);
    }
    rg_log_batched_msg(lvl, l.b, l.n);
}

void rg_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rg_http_server *s = cls;
    rg_http_req *r = *con_cls;
    if (!r)
        return;
    if (!r->srv) {   /* only the URI was seen (rg_http_uri_seen), never a request */
        req_free(r);
        *con_cls = NULL;
        return;
    }
    rg_http_guard_request_done(conn);
    log_request(r, toe);
    req_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* The raw request URI (query included) before MHD splits it: HTTP-Redirect
 * SAML signatures cover the query's octets as sent (issue 13). Its return
 * value becomes the request's *con_cls, completed by rg_http_on_request. */
void *rg_http_uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    rg_http_req *r = req_new();
    if (r)
        r->raw_uri = strdup(uri ? uri : "");
    return r;
}

/* MHD must not decode the path: a %2F inside a {param} would become a
 * separator. The router and the query parser decode themselves. */
size_t rg_http_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

__attribute__((format(printf, 2, 0)))
void rg_http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512], q[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    rg_log(RG_LOG_DEBUG, "event=mhd listener=%s msg=%s", (const char *)cls,
           rg_log_quote(q, sizeof q, msg));
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

static void set_early(rg_http_req *r, int kind, const char *code, const char *field,
                      const char *msg)
{
    rg_error_set(&r->early, kind, code, field, "%s", msg);
    r->early_status = r->early.status;
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
            set_early(r, RG_EFORBIDDEN, "csrf_token_invalid", "X-CSRF-Token",
                      "a console write needs its X-CSRF-Token from the same origin");
            return;
        }
        if (st != 0) {
            set_early(r, RG_EUNAUTH, "unauthorized", NULL,
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
            set_early(r, RG_ETOOLARGE, "body_too_large", NULL, msg);
            return;
        }
    }
    if (r->match.status == 404) {
        set_early(r, RG_ENOTFOUND, "not_found", NULL, "no such path");
        return;
    }
    if (r->match.status == 405) {
        set_early(r, RG_EMETHOD, "method_not_allowed", NULL, "method not allowed on this path");
        return;
    }
    if (r->match.status == 400) {
        set_early(r, RG_EINVAL, "invalid_path", NULL, "bad percent-encoding in the path");
        return;
    }
    const char *ct = rg_http_content_type(r);
    int has_body = (cl && strcmp(cl, "0") != 0) ||
                   MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    if ((flags & RG_HTTP_BODY_JSON) && has_body && !is_json_type(ct)) {
        set_early(r, RG_EMEDIATYPE, "unsupported_media_type", NULL,
                  "the body must be application/json");
        return;
    }
    if ((flags & RG_HTTP_BODY_FORM) && has_body && !is_form_type(ct)) {
        set_early(r, RG_EMEDIATYPE, "unsupported_media_type", NULL,
                  "the body must be application/x-www-form-urlencoded");
        return;
    }
}

static enum MHD_Result queue_answer(rg_http_req *r)
{
    if (!r->answered) {
        rg_log(RG_LOG_ERROR, "event=handler_no_answer method=%s rid=%s", r->method, r->rid);
        rg_http_send_errorf(r, RG_EINTERNAL, "internal_error", NULL, "the handler gave no answer");
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
        set_early(r, RG_ETOOLARGE, "body_too_large", NULL, msg);
    }
    if (r->early_status) {
        rg_http_send_error(r, &r->early);
        return queue_answer(r);
    }
    if (r->body.oom) {
        rg_http_send_errorf(r, RG_ENOMEM, "out_of_memory", NULL, "out of memory");
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
                rg_http_send_errorf(r, RG_EINVAL, "invalid_json", NULL,
                                    "invalid JSON at byte %d: %s", je.position, je.text);
                return queue_answer(r);
            }
        }
    } else if (flags & RG_HTTP_BODY_FORM) {
        if (rg_http_parse_urlencoded(r->arena, r->body.data ? r->body.data : "", r->body.len,
                                     &r->form, &r->nform) != 0) {
            rg_http_send_errorf(r, RG_EINVAL, "invalid_form", NULL,
                                "the form body has a bad %%-escape");
            return queue_answer(r);
        }
    }
    if ((flags & RG_HTTP_OFFLOAD) && r->srv->nworkers > 0) {
        rg_http_offload(r);   /* answered when the worker resumes the connection */
        return MHD_YES;
    }
    rg_http_route_handler(rt)(r, rg_http_route_ctx(rt));
    return queue_answer(r);
}

/* a.b.c.d into out (INET_ADDRSTRLEN bytes at least): what inet_ntop
 * writes, without the sprintf glibc's makes it with (every request). */
static void put_ipv4(char *out, const struct in_addr *a)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            out[n++] = (char)('0' + v / 100);
        if (v >= 10)
            out[n++] = (char)('0' + v / 10 % 10);
        out[n++] = (char)('0' + v % 10);
        out[n++] = i < 3 ? '.' : 0;
    }
}

enum MHD_Result rg_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    rg_http_server *s = cls;
    rg_http_req *r = *con_cls;
    if (!r || !r->srv) {
        if (!r)
            r = req_new();
        rg_arena *a = r && r->arena ? r->arena : rg_arena_new(0);
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
        memcpy(r->peer, "-", 2);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                put_ipv4(r->peer, &((const struct sockaddr_in *)sa)->sin_addr);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer,
                          sizeof r->peer);
        }
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        if (!r->method || !r->path)
            return MHD_NO;
        rg_http_guard_headers_done(conn);
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
        if (rg_http_guard_body_late(r)) {   /* trickled: close (guard.c) */
            rg_log(RG_LOG_WARN, "event=request_timeout listener=%s phase=body rid=%s "
                   "received=%zu", r->srv->name, r->rid, r->received);
            return MHD_NO;
        }
        if (r->received > r->limit) {
            /* chunked or lying Content-Length: stop keeping bytes */
            if (!r->too_large) {
                r->too_large = 1;
                rg_buf_free(&r->body);
                char msg[96];
                snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", r->limit);
                set_early(r, RG_ETOOLARGE, "body_too_large", NULL, msg);
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
