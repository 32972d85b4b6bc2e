/* parse.c: the small parsers of the HTTP layer: percent-decoding,
 * url-encoded pairs (query strings and form bodies, e.g. the SAML ACS
 * SAMLResponse field) and Cookie headers. Results live in the request's
 * arena; nothing is freed here. */
#include <string.h>
#include "rolegate/http.h"
#include "rolegate/util.h"

char *rg_http_pct_decode(rg_arena *a, const char *s, size_t n, int plus_is_space)
{
    char *out = rg_arena_alloc(a, n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int h, l;
            if (i + 2 >= n || (h = rg_hex_digit((unsigned char)s[i + 1])) < 0 ||
                (l = rg_hex_digit((unsigned char)s[i + 2])) < 0)
                return NULL;
            c = (char)(h * 16 + l);
            if (c == 0)
                return NULL;   /* an encoded NUL would cut the value short */
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == 0) {
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = 0;
    return out;
}

static int kv_push(rg_arena *a, rg_http_kv **kv, size_t *n, const char *k, const char *v)
{
    /* grows by doubling inside the arena: old arrays are simply abandoned */
    size_t cap = 4;
    while (cap < *n)
        cap *= 2;
    if (*n == 0 || *n == cap) {
        size_t ncap = *n == 0 ? 4 : cap * 2;
        rg_http_kv *nk = rg_arena_alloc(a, ncap * sizeof *nk);
        if (!nk)
            return -1;
        if (*n)
            memcpy(nk, *kv, *n * sizeof *nk);
        *kv = nk;
    }
    (*kv)[*n].key = k;
    (*kv)[*n].value = v;
    (*n)++;
    return 0;
}

int rg_http_parse_urlencoded(rg_arena *a, const char *s, size_t len,
                             rg_http_kv **kv, size_t *n)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(s + i, '=', j - i);
            size_t kl = eq ? (size_t)(eq - (s + i)) : j - i;
            char *k = rg_http_pct_decode(a, s + i, kl, 1);
            char *v = eq ? rg_http_pct_decode(a, eq + 1, (size_t)(s + j - eq - 1), 1)
                         : rg_arena_strdup(a, "");
            if (!k || !v || kv_push(a, kv, n, k, v) != 0)
                return -1;
        }
        i = j + 1;
    }
    return 0;
}

int rg_http_parse_cookies(rg_arena *a, const char *h, rg_http_kv **kv, size_t *n)
{
    const char *p = h;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ";");
        const char *eq = memchr(p, '=', len);
        if (eq) {
            size_t kl = (size_t)(eq - p);
            while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
                kl--;
            const char *v = eq + 1;
            size_t vl = len - (size_t)(v - p);
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
                v++, vl -= 2;
            char *k = rg_arena_strndup(a, p, kl);
            char *val = rg_arena_strndup(a, v, vl);
            if (!k || !val || kv_push(a, kv, n, k, val) != 0)
                return -1;
        }
        p += len;
    }
    return 0;
}
