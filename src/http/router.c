/* router.c: METHOD + path pattern → handler. Patterns are "/"-separated
 * segments, literal or {param}; the most specific pattern wins (a literal
 * segment beats a {param} at the first position where they differ, so the
 * reserved /roles/priority shadows /roles/{slug}, RBAC R1). A path that
 * matches a pattern but not its methods is 405 with Allow, else 404. The
 * router is built before the server starts and read-only afterwards. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/http.h"

#define MAX_SEGS 32
#define SCORE_CACHE 256   /* routes whose score a match keeps on its stack */

typedef struct seg {
    char  *text;    /* literal text, or the param name */
    size_t len;     /* strlen(text): compared on every request */
    int    param;
} seg;

struct rg_http_route {
    char           *method;
    char           *pattern;
    seg             segs[MAX_SEGS];
    int             nsegs;
    rg_http_handler fn;
    void           *ctx;
    unsigned        flags;
    size_t          max_body;
};

struct rg_http_router {
    rg_http_route **routes;
    size_t          n, cap;
};

rg_http_router *rg_http_router_new(void)
{
    return calloc(1, sizeof(rg_http_router));
}

static void route_free(rg_http_route *rt)
{
    if (!rt)
        return;
    for (int i = 0; i < rt->nsegs; i++)
        free(rt->segs[i].text);
    free(rt->method);
    free(rt->pattern);
    free(rt);
}

void rg_http_router_free(rg_http_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        route_free(r->routes[i]);
    free(r->routes);
    free(r);
}

static int valid_method(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return 0;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return 0;
    return 1;
}

int rg_http_router_add(rg_http_router *r, const char *method, const char *pattern,
                       rg_http_handler fn, void *ctx, unsigned flags, size_t max_body,
                       rg_error *err)
{
    assert(r && fn);
    if (!valid_method(method))
        return rg_error_set(err, RG_EINTERNAL, "route_invalid", "method",
                            "bad method '%s'", method ? method : "");
    if (!pattern || pattern[0] != '/' ||
        (strlen(pattern) > 1 && pattern[strlen(pattern) - 1] == '/'))
        return rg_error_set(err, RG_EINTERNAL, "route_invalid", "pattern",
                            "pattern must start with / and not end with /: '%s'",
                            pattern ? pattern : "");
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->routes[i]->method, method) == 0 &&
            strcmp(r->routes[i]->pattern, pattern) == 0)
            return rg_error_set(err, RG_EINTERNAL, "route_duplicate", "pattern",
                                "%s %s registered twice", method, pattern);
    rg_http_route *rt = calloc(1, sizeof *rt);
    if (!rt)
        return rg_error_oom(err);
    rt->method = strdup(method);
    rt->pattern = strdup(pattern);
    rt->fn = fn;
    rt->ctx = ctx;
    rt->flags = flags;
    rt->max_body = max_body;
    int nparams = 0;
    const char *p = pattern + 1;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 0 || rt->nsegs == MAX_SEGS) {
            route_free(rt);
            return rg_error_set(err, RG_EINTERNAL, "route_invalid", "pattern",
                                "empty segment or too many segments in '%s'", pattern);
        }
        seg *s = &rt->segs[rt->nsegs++];
        if (p[0] == '{') {
            if (n < 3 || p[n - 1] != '}' || memchr(p + 1, '{', n - 2) ||
                ++nparams > RG_HTTP_MAX_PARAMS) {
                route_free(rt);
                return rg_error_set(err, RG_EINTERNAL, "route_invalid", "pattern",
                                    "bad or too many {params} in '%s'", pattern);
            }
            s->param = 1;
            s->text = strndup(p + 1, n - 2);
            s->len = n - 2;
        } else {
            if (memchr(p, '{', n) || memchr(p, '}', n)) {
                route_free(rt);
                return rg_error_set(err, RG_EINTERNAL, "route_invalid", "pattern",
                                    "a {param} must be a whole segment in '%s'", pattern);
            }
            s->text = strndup(p, n);
            s->len = n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    int oom = !rt->method || !rt->pattern;
    for (int i = 0; i < rt->nsegs; i++)
        oom |= !rt->segs[i].text;
    if (!oom)
        oom = rg_grow(&r->routes, r->n, &r->cap, sizeof *r->routes, 16) != 0;
    if (oom) {
        route_free(rt);
        return rg_error_oom(err);
    }
    r->routes[r->n++] = rt;
    return RG_OK;
}

typedef struct pseg { const char *p; size_t n; } pseg;

/* Specificity of rt against the split path, or -1 if it does not match.
 * Literal segments count more the earlier they are. */
static long long score(const rg_http_route *rt, const pseg *ps, int n)
{
    if (rt->nsegs != n)
        return -1;
    long long sc = 0;
    for (int i = 0; i < n; i++) {
        const seg *s = &rt->segs[i];
        if (s->param) {
            sc <<= 1;
            continue;
        }
        if (s->len != ps[i].n || memcmp(s->text, ps[i].p, ps[i].n) != 0)
            return -1;
        sc = (sc << 1) | 1;
    }
    return sc;
}

static void allow_add(char *allow, size_t sz, const char *m)
{
    /* keeps the list unique; Allow is informative, order of registration */
    size_t ml = strlen(m);
    for (const char *p = allow; *p;) {
        size_t n = strcspn(p, ",");
        if (n == ml && strncmp(p, m, n) == 0)
            return;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    size_t l = strlen(allow);
    if (l + ml + 3 > sz)
        return;
    if (l)
        strcat(allow, ", ");
    strcat(allow, m);
}

int rg_http_router_match(const rg_http_router *r, const char *method, const char *path,
                         rg_arena *a, rg_http_match *m)
{
    memset(m, 0, sizeof *m);
    m->status = 404;
    if (!path || path[0] != '/' || path[1] == '/')   /* "//..." has an empty segment */
        return m->status;
    size_t plen = strlen(path);
    if (plen > 1 && path[plen - 1] == '/')   /* one trailing slash is ignored */
        plen--;
    pseg ps[MAX_SEGS];
    int n = 0;
    size_t i = 1;
    while (i < plen) {
        size_t j = i;
        while (j < plen && path[j] != '/')
            j++;
        if (j == i || n == MAX_SEGS)   /* "//" or too deep: no route */
            return m->status;
        ps[n].p = path + i;
        ps[n].n = j - i;
        n++;
        i = j + 1;
    }
    if (plen > 1 && path[plen - 1] == '/')   /* "//" at the end */
        return m->status;

    /* each route scored once (issue 17: twice was 1% of /auth's CPU) */
    long long scores[SCORE_CACHE], best = -1;
    for (size_t k = 0; k < r->n; k++) {
        long long sc = score(r->routes[k], ps, n);
        if (k < SCORE_CACHE)
            scores[k] = sc;
        if (sc > best)
            best = sc;
    }
    if (best < 0)
        return m->status;
    const char *best_pattern = NULL;
    const rg_http_route *hit = NULL;
    int is_head = strcmp(method, "HEAD") == 0;
    /* the Allow list only for a 405 (issue 17: it was built, then dropped,
     * on every request that matched) */
    for (int pass = 0; pass < 2 && !hit; pass++) {
        for (size_t k = 0; k < r->n; k++) {
            const rg_http_route *rt = r->routes[k];
            if ((k < SCORE_CACHE ? scores[k] : score(rt, ps, n)) != best)
                continue;
            if (!best_pattern)
                best_pattern = rt->pattern;
            if (strcmp(rt->pattern, best_pattern) != 0)
                continue;   /* same specificity, other param names: first wins */
            if (pass == 1) {
                allow_add(m->allow, sizeof m->allow, rt->method);
                if (strcmp(rt->method, "GET") == 0)
                    allow_add(m->allow, sizeof m->allow, "HEAD");
            } else if (strcmp(rt->method, method) == 0) {
                hit = rt;
                break;
            } else if (is_head && strcmp(rt->method, "GET") == 0 && !hit) {
                hit = rt;   /* a HEAD route registered later still wins */
            }
        }
    }
    if (!hit) {
        m->status = 405;
        return m->status;
    }
    for (int s = 0; s < n; s++) {
        if (!hit->segs[s].param)
            continue;
        char *v = rg_http_pct_decode(a, ps[s].p, ps[s].n, 0);
        if (!v) {
            m->nparams = 0;
            m->status = 400;
            return m->status;
        }
        m->names[m->nparams] = hit->segs[s].text;
        m->values[m->nparams] = v;
        m->nparams++;
    }
    m->route = hit;
    m->status = 200;
    return m->status;
}

rg_http_handler rg_http_route_handler(const rg_http_route *rt) { return rt->fn; }
void *rg_http_route_ctx(const rg_http_route *rt) { return rt->ctx; }
unsigned rg_http_route_flags(const rg_http_route *rt) { return rt->flags; }
size_t rg_http_route_max_body(const rg_http_route *rt) { return rt->max_body; }
