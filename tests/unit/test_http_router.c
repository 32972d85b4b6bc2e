/* test_http_router.c: the router (param extraction, literal-over-param
 * precedence for the reserved /roles/priority, 404 vs 405 with Allow,
 * trailing slashes, percent-decoding of params), the arena and the
 * url-encoded / cookie parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/http.h"

static int tag_a, tag_b, tag_c, tag_d, tag_e;
static void h_dummy(rg_http_req *r, void *ctx) { (void)r; (void)ctx; }

typedef struct fixture { rg_http_router *r; rg_arena *a; } fixture;

static int setup(void **st)
{
    fixture *f = calloc(1, sizeof *f);
    f->r = rg_http_router_new();
    f->a = rg_arena_new(0);
    rg_error err;
    const char *org = "/authorization/organizations/{org}/roles";
    assert_int_equal(rg_http_router_add(f->r, "GET", "/authorization/roles", h_dummy, &tag_a, 0, 0, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "POST", "/authorization/roles", h_dummy, &tag_a,
                                        RG_HTTP_BODY_JSON, 0, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/authorization/roles/{slug}", h_dummy, &tag_b, 0, 0, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "PATCH", "/authorization/roles/{slug}", h_dummy, &tag_b, 0, 0, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "PUT", "/authorization/roles/priority", h_dummy, &tag_c, 0, 0, &err), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/{slug}", org);
    assert_int_equal(rg_http_router_add(f->r, "DELETE", p, h_dummy, &tag_d, 0, 4096, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "GET", p, h_dummy, &tag_d, 0, 0, &err), 0);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/", h_dummy, &tag_e, 0, 0, &err), 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fixture *f = *st;
    rg_http_router_free(f->r);
    rg_arena_free(f->a);
    free(f);
    return 0;
}

static void test_params_extracted(void **st)
{
    fixture *f = *st;
    rg_http_match m;
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/organizations/org_123/roles/admin",
                                          f->a, &m), 200);
    assert_ptr_equal(rg_http_route_ctx(m.route), &tag_d);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "org");
    assert_string_equal(m.values[0], "org_123");
    assert_string_equal(m.names[1], "slug");
    assert_string_equal(m.values[1], "admin");
    assert_int_equal(rg_http_router_match(f->r, "DELETE", "/authorization/organizations/o/roles/r",
                                          f->a, &m), 200);
    assert_int_equal(rg_http_route_max_body(m.route), 4096);
    assert_int_equal(rg_http_router_match(f->r, "POST", "/authorization/roles", f->a, &m), 200);
    assert_int_equal(rg_http_route_flags(m.route), RG_HTTP_BODY_JSON);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/", f->a, &m), 200);
    assert_ptr_equal(rg_http_route_ctx(m.route), &tag_e);
}

static void test_404_vs_405_with_allow(void **st)
{
    fixture *f = *st;
    rg_http_match m;
    assert_int_equal(rg_http_router_match(f->r, "DELETE", "/authorization/roles", f->a, &m), 405);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    assert_null(m.route);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/nothing", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/a/b", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "relative", f->a, &m), 404);
    /* HEAD is served by GET */
    assert_int_equal(rg_http_router_match(f->r, "HEAD", "/authorization/roles/x", f->a, &m), 200);
    assert_ptr_equal(rg_http_route_ctx(m.route), &tag_b);
}

static void test_R1_reserved_priority_literal_beats_param(void **st)
{
    fixture *f = *st;
    rg_http_match m;
    assert_int_equal(rg_http_router_match(f->r, "PUT", "/authorization/roles/priority", f->a, &m), 200);
    assert_ptr_equal(rg_http_route_ctx(m.route), &tag_c);
    /* the literal shadows {slug}: POST/GET there is 405 with the literal's methods */
    assert_int_equal(rg_http_router_match(f->r, "POST", "/authorization/roles/priority", f->a, &m), 405);
    assert_string_equal(m.allow, "PUT");
    assert_int_equal(rg_http_router_match(f->r, "PATCH", "/authorization/roles/prio", f->a, &m), 200);
    assert_string_equal(m.values[0], "prio");
}

static void test_trailing_slash_and_empty_segments(void **st)
{
    fixture *f = *st;
    rg_http_match m;
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/", f->a, &m), 200);
    assert_ptr_equal(rg_http_route_ctx(m.route), &tag_a);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/admin/", f->a, &m), 200);
    assert_string_equal(m.values[0], "admin");
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles//", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization//roles", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "//authorization/roles", f->a, &m), 404);
    assert_int_equal(rg_http_router_match(f->r, "GET", "//", f->a, &m), 404);
}

static void test_params_percent_decoded(void **st)
{
    fixture *f = *st;
    rg_http_match m;
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/a%2Fb%20c+d", f->a, &m), 200);
    assert_string_equal(m.values[0], "a/b c+d");   /* '+' stays a plus in a path */
    /* an encoded slash does not split segments */
    assert_int_equal(rg_http_router_match(f->r, "GET",
                                          "/authorization/organizations/x%2Fy/roles/%41", f->a, &m), 200);
    assert_string_equal(m.values[0], "x/y");
    assert_string_equal(m.values[1], "A");
    /* bad escapes and encoded NUL: 400 */
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/%zz", f->a, &m), 400);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/%4", f->a, &m), 400);
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/a%00b", f->a, &m), 400);
    /* literal segments are compared raw: %70riority is a {slug}, not the literal */
    assert_int_equal(rg_http_router_match(f->r, "GET", "/authorization/roles/%70riority", f->a, &m), 200);
    assert_string_equal(m.values[0], "priority");
}

static void test_bad_patterns_refused(void **st)
{
    fixture *f = *st;
    rg_error err;
    assert_int_equal(rg_http_router_add(f->r, "GET", "no-slash", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/trailing/", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/a//b", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/a/{}", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/a/x{y}", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "get", "/a", h_dummy, NULL, 0, 0, &err), RG_EINTERNAL);
    assert_int_equal(rg_http_router_add(f->r, "GET", "/authorization/roles", h_dummy, NULL, 0, 0, &err),
                     RG_EINTERNAL);
    assert_string_equal(err.code, "route_duplicate");
    assert_int_equal(rg_http_router_add(f->r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h_dummy,
                                        NULL, 0, 0, &err), RG_EINTERNAL);
}

static char cleanup_log[8];
static void note_cleanup(void *p)
{
    strncat(cleanup_log, (const char *)p, 1);
}

static void test_arena_alloc_align_cleanup(void **st)
{
    (void)st;
    rg_arena *a = rg_arena_new(64);
    for (int i = 0; i < 100; i++) {
        void *p = rg_arena_alloc(a, (size_t)i + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)i + 1);
    }
    char *big = rg_arena_alloc(a, 100000);   /* larger than a chunk */
    assert_non_null(big);
    memset(big, 1, 100000);
    char *s = rg_arena_printf(a, "%s-%d", "x", 42);
    assert_string_equal(s, "x-42");
    assert_string_equal(rg_arena_strndup(a, "abcdef", 3), "abc");
    assert_null(rg_arena_strdup(a, NULL));
    /* cleanups run at free, newest first; a malloc handed over is freed
     * (the ASan build would report it otherwise) */
    cleanup_log[0] = 0;
    assert_int_equal(rg_arena_on_free(a, free, malloc(10)), 0);
    assert_int_equal(rg_arena_on_free(a, note_cleanup, "1"), 0);
    assert_int_equal(rg_arena_on_free(a, note_cleanup, "2"), 0);
    assert_string_equal(cleanup_log, "");
    rg_arena_free(a);
    assert_string_equal(cleanup_log, "21");
    rg_arena_free(NULL);
}

static void test_pct_decode(void **st)
{
    (void)st;
    rg_arena *a = rg_arena_new(0);
    assert_string_equal(rg_http_pct_decode(a, "a+b%2B%7e", 9, 1), "a b+~");
    assert_string_equal(rg_http_pct_decode(a, "a+b", 3, 0), "a+b");
    assert_null(rg_http_pct_decode(a, "%", 1, 1));
    assert_null(rg_http_pct_decode(a, "%G0", 3, 1));
    assert_null(rg_http_pct_decode(a, "ab%0", 4, 1));
    assert_null(rg_http_pct_decode(a, "%00", 3, 1));
    rg_arena_free(a);
}

static void test_urlencoded_repeated_and_empty(void **st)
{
    (void)st;
    rg_arena *a = rg_arena_new(0);
    rg_http_kv *kv = NULL;
    size_t n = 0;
    const char *q = "a=1&b=x+y&a=2&&flag&c=%26%3D&a=3&e=";
    assert_int_equal(rg_http_parse_urlencoded(a, q, strlen(q), &kv, &n), 0);
    assert_int_equal(n, 7);
    assert_string_equal(kv[0].key, "a");
    assert_string_equal(kv[0].value, "1");
    assert_string_equal(kv[1].value, "x y");
    assert_string_equal(kv[2].value, "2");
    assert_string_equal(kv[3].key, "flag");
    assert_string_equal(kv[3].value, "");
    assert_string_equal(kv[4].value, "&=");
    assert_string_equal(kv[5].value, "3");
    assert_string_equal(kv[6].key, "e");
    assert_string_equal(kv[6].value, "");
    kv = NULL;
    n = 0;
    assert_int_equal(rg_http_parse_urlencoded(a, "x=%zz", 5, &kv, &n), -1);
    /* many pairs: the array grows */
    char big[4096] = "";
    for (int i = 0; i < 300; i++)
        strcat(big, i ? "&k=v" : "k=v");
    kv = NULL;
    n = 0;
    assert_int_equal(rg_http_parse_urlencoded(a, big, strlen(big), &kv, &n), 0);
    assert_int_equal(n, 300);
    assert_string_equal(kv[299].value, "v");
    rg_arena_free(a);
}

static void test_cookies_duplicates_visible(void **st)
{
    (void)st;
    rg_arena *a = rg_arena_new(0);
    rg_http_kv *kv = NULL;
    size_t n = 0;
    assert_int_equal(rg_http_parse_cookies(a, "rolegate=abc; theme=\"dark\";  rolegate=evil ;x", &kv, &n), 0);
    assert_int_equal(n, 3);   /* "x" without '=' is not a cookie */
    assert_string_equal(kv[0].key, "rolegate");
    assert_string_equal(kv[0].value, "abc");
    assert_string_equal(kv[1].value, "dark");
    assert_string_equal(kv[2].key, "rolegate");
    assert_string_equal(kv[2].value, "evil");
    rg_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_params_extracted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_vs_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_R1_reserved_priority_literal_beats_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash_and_empty_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_percent_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_patterns_refused, setup, teardown),
        cmocka_unit_test(test_arena_alloc_align_cleanup),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_urlencoded_repeated_and_empty),
        cmocka_unit_test(test_cookies_duplicates_visible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
