/* fuzz_router.c: libFuzzer target for the HTTP router and the request text
 * parsers of http.h, without a server: rg_http_router_match over the real
 * route table of the admin API and the gateway (DESIGN.md), on arbitrary raw
 * paths and methods, checked against an independent reference matcher
 * (segments, literal-before-param specificity, HEAD as GET, percent-decoded
 * params, 404/405/400); and rg_http_parse_urlencoded / rg_http_parse_cookies
 * / rg_http_pct_decode on the same bytes. Byte 0 picks the method. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/http.h"
#include "rolegate/util.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const ROUTES[][2] = {
    {"DELETE", "/authorization/permissions/{slug}"}, {"DELETE", "/authorization/roles/{slug}"},
    {"DELETE", "/authorization/roles/{slug}/permissions/{perm}"},
    {"DELETE", "/connections/{id}"}, {"DELETE", "/organizations/{id}"},
    {"DELETE", "/user_management/users/{id}"}, {"GET", "/authorization/permissions"},
    {"GET", "/authorization/permissions/{slug}"}, {"GET", "/authorization/roles"},
    {"GET", "/authorization/roles/{slug}"}, {"GET", "/connections/{id}"},
    {"GET", "/connections/{id}/role_mappings"}, {"GET", "/environment"}, {"GET", "/events"},
    {"GET", "/organizations"}, {"GET", "/organizations/{id}"},
    {"GET", "/organizations/{id}/connections"}, {"GET", "/user_management/users"},
    {"GET", "/user_management/users/{id}"}, {"PATCH", "/authorization/permissions/{slug}"},
    {"PATCH", "/authorization/roles/{slug}"}, {"PATCH", "/connections/{id}"},
    {"PATCH", "/environment"}, {"PATCH", "/organizations/{id}"},
    {"POST", "/authorization/permissions"}, {"POST", "/authorization/roles"},
    {"POST", "/authorization/roles/{slug}/permissions"}, {"POST", "/organizations"},
    {"POST", "/organizations/{id}/connections"}, {"POST", "/user_management/users"},
    {"PUT", "/authorization/roles/priority"}, {"PUT", "/authorization/roles/{slug}/permissions"},
    {"PUT", "/connections/{id}/role_mappings"}, {"GET", "/connections/{id}/logins"},
    {"GET", "/login"}, {"GET", "/logout"}, {"POST", "/logout"}, {"GET", "/oidc/callback"},
    {"GET", "/saml/metadata/{id}"}, {"POST", "/saml/acs/{id}"}, {"POST", "/sessions"},
    {"PUT", "/connections/{id}/metadata"}, {"GET", "/healthz"}, {"GET", "/auth"},
    {"GET", "/.well-known/jwks.json"},
    {"GET", "/organizations/{id}/roles/{slug}"}, {"PATCH", "/organizations/{org}/roles/{role}"},
};
#define N_ROUTES (sizeof ROUTES / sizeof *ROUTES)
static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                      "OPTIONS", "get"};

static rg_http_router *router;

static void handler(rg_http_req *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rg_log_open("/dev/null", RG_LOG_ERROR);
    router = rg_http_router_new();
    CHECK(router);
    for (size_t i = 0; i < N_ROUTES; i++) {
        rg_error err;
        /* ctx is the route's index, so a match names its pattern */
        CHECK(rg_http_router_add(router, ROUTES[i][0], ROUTES[i][1], handler,
                                 (void *)(uintptr_t)(i + 1), 0, 0, &err) == 0);
    }
    rg_error err;
    CHECK(rg_http_router_add(router, "GET", "/healthz", handler, NULL, 0, 0, &err) != 0);
    return 0;
}

/* ---- reference ------------------------------------------------------------ */
typedef struct { const char *p; size_t n; } span;

/* Splits a raw path into segments: -1 if it is not a routable path. */
static int ref_split(const char *path, span *seg, int max)
{
    size_t len = strlen(path);
    if (len == 0 || path[0] != '/')
        return -1;
    if (len > 1 && path[len - 1] == '/')
        len--;
    int n = 0;
    size_t i = 1;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (j == i || n == max)
            return -1;
        seg[n].p = path + i;
        seg[n].n = j - i;
        n++;
        i = j + 1;
    }
    if (len > 1 && path[len - 1] == '/')
        return -1;
    return n;
}

/* Specificity of pattern against the segments (literal bits, earliest
 * highest), or -1. */
static long long ref_score(const char *pattern, const span *seg, int n)
{
    span ps[16];
    int pn = ref_split(pattern, ps, 16);
    if (pn != n)
        return -1;
    long long sc = 0;
    for (int i = 0; i < n; i++) {
        if (ps[i].p[0] == '{') {
            sc <<= 1;
            continue;
        }
        if (ps[i].n != seg[i].n || memcmp(ps[i].p, seg[i].p, seg[i].n))
            return -1;
        sc = sc << 1 | 1;
    }
    return sc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX decoding; 0 on a bad escape or an encoded NUL. */
static int ref_decode(const char *s, size_t n, char *out, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n)
                return 0;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return 0;
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = 0;
    return 1;
}

static void check_match(const char *method, const char *path)
{
    rg_arena *a = rg_arena_new(0);
    CHECK(a);
    rg_http_match m;
    int st = rg_http_router_match(router, method, path, a, &m);
    CHECK(st == m.status);
    span seg[64];
    int n = ref_split(path, seg, 64);
    if (n >= 0 && path[0] == '/' && path[1] == '/')
        n = -1;
    long long best = -1;
    size_t best_i = 0;
    int method_ok = 0;
    for (size_t i = 0; n >= 0 && i < N_ROUTES; i++) {
        long long sc = ref_score(ROUTES[i][1], seg, n);
        if (sc > best) {
            best = sc;
            best_i = i;
        }
    }
    for (size_t i = 0; best >= 0 && i < N_ROUTES; i++)
        if (ref_score(ROUTES[i][1], seg, n) == best &&
            !strcmp(ROUTES[i][1], ROUTES[best_i][1]) &&
            (!strcmp(ROUTES[i][0], method) ||
             (!strcmp(method, "HEAD") && !strcmp(ROUTES[i][0], "GET"))))
            method_ok = 1;
    switch (st) {
    case 404:
        CHECK(best < 0);
        break;
    case 405:
        CHECK(best >= 0 && !method_ok && m.allow[0]);
        break;
    case 400:
    case 200: {
        CHECK(best >= 0 && method_ok);
        int bad = 0, np = 0;
        span ps[16];
        CHECK(ref_split(ROUTES[best_i][1], ps, 16) == n);
        for (int i = 0; i < n; i++) {
            if (ps[i].p[0] != '{')
                continue;
            char *dec = malloc(seg[i].n + 1);
            CHECK(dec);
            if (!ref_decode(seg[i].p, seg[i].n, dec, 0))
                bad = 1;
            else if (st == 200)
                CHECK(np < m.nparams && !strcmp(m.values[np], dec) &&
                      strlen(m.names[np]) + 2 == ps[i].n &&
                      !memcmp(m.names[np], ps[i].p + 1, ps[i].n - 2));
            np++;
            free(dec);
        }
        CHECK(bad == (st == 400));
        if (st == 200) {
            CHECK(m.nparams == np && m.route);
            size_t idx = (uintptr_t)rg_http_route_ctx(m.route) - 1;
            CHECK(idx < N_ROUTES && !strcmp(ROUTES[idx][1], ROUTES[best_i][1]));
            CHECK(rg_http_route_handler(m.route) == handler);
        }
        break;
    }
    default:
        CHECK(!"unexpected status");
    }
    rg_arena_free(a);
}

static void check_parsers(const char *s, size_t n)
{
    rg_arena *a = rg_arena_new(64);
    CHECK(a);
    rg_http_kv *kv = NULL;
    size_t nkv = 0;
    if (rg_http_parse_urlencoded(a, s, n, &kv, &nkv) == 0) {
        size_t amps = 0;
        for (size_t i = 0; i < n; i++)
            amps += s[i] == '&';
        for (size_t i = 0; i < nkv; i++)
            CHECK(kv[i].key && kv[i].value);
        CHECK(nkv <= amps + 1);   /* one pair per '&'-separated part at most */
    }
    kv = NULL;
    nkv = 0;
    if (rg_http_parse_cookies(a, s, &kv, &nkv) == 0)
        for (size_t i = 0; i < nkv; i++)
            CHECK(kv[i].key && kv[i].value && !strchr(kv[i].key, ';'));
    char *ref = malloc(n + 1);
    CHECK(ref);
    for (int plus = 0; plus < 2; plus++) {
        char *d = rg_http_pct_decode(a, s, n, plus);
        int ok = ref_decode(s, n, ref, plus);
        CHECK((d != NULL) == ok);
        if (d)
            CHECK(!strcmp(d, ref));
    }
    free(ref);
    rg_arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    const char *method = METHODS[data[0] % 8];
    char *s = malloc(size);
    CHECK(s);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    check_match(method, s);
    check_parsers(s, strlen(s));
    free(s);
    return 0;
}
