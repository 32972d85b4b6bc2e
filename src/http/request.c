/* request.c: the handlers' read side of a request: method, path, route
 * parameters, query and form values, headers, cookies (every Cookie
 * header), the peer and the client address behind trusted proxies, the
 * body. Query and cookies are parsed on first use into the request's
 * arena. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_internal.h"

/* ---- request accessors --------------------------------------------------------- */

const char *rg_http_method(const rg_http_req *r) { return r->method; }

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
    return rg_http_addr_trusted(r->srv, r->peer);
}

const char *rg_http_client_addr(const rg_http_req *cr)
{
    rg_http_req *r = (rg_http_req *)cr;
    if (r->client)
        return r->client;
    r->client = r->peer;
    const char *xff = rg_http_header(r, "X-Forwarded-For");
    if (!xff || !rg_http_addr_trusted(r->srv, r->peer))
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
        if (!rg_http_addr_trusted(r->srv, ip))
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
