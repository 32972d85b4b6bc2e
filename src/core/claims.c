/* claims.c: the session claims of R24 as compact JSON with a fixed key
 * order (iss, sub, sid, org_id, role, roles, permissions | permissions_omitted,
 * email, act, iat, exp, jti), so tokens are byte-stable for a given snapshot
 * (R25). Strings are escaped per RFC 8259; invalid UTF-8 becomes U+FFFD so
 * the output is always valid JSON. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/core.h"
#include "rolegate/util.h"

static void jb_lit(rg_buf *b, const char *s)
{
    rg_buf_append(b, s, strlen(s));
}

/* A JSON string, or null for NULL. */
static void jb_str(rg_buf *b, const char *s)
{
    if (!s) {
        jb_lit(b, "null");
        return;
    }
    rg_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (*p) {
        const unsigned char *run = p;
        /* copy the longest run that needs no escaping in one go */
        while (*p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
            p++;
        rg_buf_append(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            rg_buf_append(b, e, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7F) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", (unsigned)*p);
            rg_buf_append(b, e, 6);
            p++;
        } else {
            size_t l = rg_utf8_char(p, end, NULL);
            if (l) {
                rg_buf_append(b, (const char *)p, l);
                p += l;
            } else {
                jb_lit(b, "\\ufffd");   /* never emit invalid UTF-8 */
                p++;
            }
        }
    }
    rg_buf_append(b, "\"", 1);
}

static void jb_key(rg_buf *b, const char *key, int first)
{
    if (!first)
        rg_buf_append(b, ",", 1);
    jb_str(b, key);
    rg_buf_append(b, ":", 1);
}

static void jb_str_array(rg_buf *b, const char *const *v, size_t n)
{
    rg_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            rg_buf_append(b, ",", 1);
        jb_str(b, v ? v[i] : NULL);
    }
    rg_buf_append(b, "]", 1);
}

static void jb_int(rg_buf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    assert(n > 0 && (size_t)n < sizeof num);
    rg_buf_append(b, num, (size_t)n);
}

int rg_core_claims_json(const rg_claims *c, char **json, size_t *len)
{
    assert(c && json);
    *json = NULL;
    if (len)
        *len = 0;
    rg_buf b = {0};
    rg_buf_append(&b, "{", 1);
    jb_key(&b, "iss", 1);
    jb_str(&b, c->iss);
    jb_key(&b, "sub", 0);
    jb_str(&b, c->sub);
    jb_key(&b, "sid", 0);
    jb_str(&b, c->sid);
    jb_key(&b, "org_id", 0);
    jb_str(&b, c->org_id);
    /* R24: role is the highest-priority role, roles[0]; R13 says there is
     * always one, but a caller's mistake still yields valid JSON. */
    jb_key(&b, "role", 0);
    jb_str(&b, c->n_roles && c->roles ? c->roles[0] : NULL);
    jb_key(&b, "roles", 0);
    jb_str_array(&b, c->roles, c->n_roles);
    if (c->omit_permissions) {
        /* R24 oversize policy: the app looks permissions up from roles */
        jb_key(&b, "permissions_omitted", 0);
        jb_lit(&b, "true");
    } else {
        jb_key(&b, "permissions", 0);
        jb_str_array(&b, c->permissions, c->n_permissions);
    }
    if (c->email) {
        jb_key(&b, "email", 0);
        jb_str(&b, c->email);
    }
    if (c->act_sub) {
        jb_key(&b, "act", 0);
        rg_buf_append(&b, "{", 1);
        jb_key(&b, "sub", 1);
        jb_str(&b, c->act_sub);
        rg_buf_append(&b, "}", 1);
    }
    if (c->auth_time) {
        /* the login this session started with: refreshed tokens keep it
         * (absolute lifetime, issue 13) */
        jb_key(&b, "auth_time", 0);
        jb_int(&b, c->auth_time);
    }
    jb_key(&b, "iat", 0);
    jb_int(&b, c->iat);
    jb_key(&b, "exp", 0);
    jb_int(&b, c->exp);
    jb_key(&b, "jti", 0);
    jb_str(&b, c->jti);
    rg_buf_append(&b, "}", 1);
    size_t n = b.len;
    if (!(*json = rg_buf_take(&b)))
        return RG_ENOMEM;
    if (len)
        *len = n;
    return 0;
}
