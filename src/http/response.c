/* response.c: the handlers' write side of a request: headers (no
 * injection), a body copied into or handed over in the request's arena,
 * JSON, the error object, redirects. access.c queues what is set here. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_internal.h"

/* ---- response ---------------------------------------------------------------------- */

/* 1 if value can be a header value (no CR, no LF); *len gets its length.
 * The value (a 712-byte session token at /auth): strlen and memchr scan
 * it many bytes a step; strpbrk, one at a time, was 1.7% of /auth's CPU. */
static int header_value_ok(const char *value, size_t *len)
{
    size_t n = strlen(value);
    *len = n;
    return !memchr(value, '\r', n) && !memchr(value, '\n', n);
}

int rg_http_add_header(rg_http_req *r, const char *name, const char *value)
{
    size_t vlen = 0;
    if (!name || !value || strpbrk(name, "\r\n: ") || !header_value_ok(value, &vlen))
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
    const char *n = rg_arena_strdup(r->arena, name), *v = rg_arena_strndup(r->arena, value, vlen);
    if (!n || !v)
        return RG_ENOMEM;
    r->hdrs[r->nhdrs].name = n;
    r->hdrs[r->nhdrs].value = v;
    r->nhdrs++;
    return RG_OK;
}

int rg_http_add_headers(rg_http_req *r, const char *const (*pairs)[2], size_t n,
                        const char **bad)
{
    size_t before = r->nhdrs;
    for (size_t i = 0; i < n; i++) {
        int rc = pairs[i][1] ? rg_http_add_header(r, pairs[i][0], pairs[i][1]) : RG_OK;
        if (rc != RG_OK) {
            r->nhdrs = before;   /* none of them: the arena keeps the copies until the end */
            if (bad)
                *bad = pairs[i][0];
            return rc;
        }
    }
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

int rg_http_send_errorf(rg_http_req *r, int rc, const char *code, const char *field,
                        const char *fmt, ...)
{
    char msg[sizeof ((rg_error *)0)->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rg_error e;
    rg_error_set(&e, rc, code ? code : "internal_error", field, "%s", msg);
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

int rg_http_response_status(const rg_http_req *r)
{
    return r->status;
}
