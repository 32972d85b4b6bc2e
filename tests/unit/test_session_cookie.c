/* test_session_cookie.c: the session Set-Cookie value (R24; DESIGN.md
 * "cookies Secure; HttpOnly; SameSite=Lax, __Host- prefix under HTTPS"): its
 * exact form, its size computed without building it, refusal of characters
 * that would split the header (the session.oversize names are config's:
 * test_util_config). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/session.h"

static void test_R24_cookie_secure_form_and_length(void **st)
{
    (void)st;
    char *c = NULL;
    long n = rg_session_cookie_build(NULL, "aaa.bbb.ccc", 3600, 1, &c);
    assert_string_equal(c, "__Host-rolegate=aaa.bbb.ccc; Path=/; Max-Age=3600; HttpOnly; "
                           "SameSite=Lax; Secure");
    assert_int_equal(n, (long)strlen(c));
    assert_int_equal(rg_session_cookie_len(NULL, 11, 3600, 1), strlen(c));
    free(c);
}

static void test_R24_cookie_plain_form_and_length(void **st)
{
    (void)st;
    char *c = NULL;
    long n = rg_session_cookie_build(NULL, "t.o.k", 86400, 0, &c);
    assert_string_equal(c, "rolegate=t.o.k; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax");
    assert_int_equal(n, (long)strlen(c));
    assert_int_equal(rg_session_cookie_len(NULL, 5, 86400, 0), strlen(c));
    assert_string_equal(rg_session_cookie_name(0), "rolegate");
    assert_string_equal(rg_session_cookie_name(1), "__Host-rolegate");
    free(c);
    /* clearing (logout): empty value, Max-Age=0 */
    n = rg_session_cookie_build("rolegate", "", 0, 0, &c);
    assert_string_equal(c, "rolegate=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    assert_int_equal(rg_session_cookie_len("rolegate", 0, 0, 0), (size_t)n);
    free(c);
}

static void test_R24_cookie_length_matches_for_many_sizes(void **st)
{
    (void)st;
    for (size_t len = 0; len < 5000; len += 397) {
        char *tok = malloc(len + 1);
        memset(tok, 'A', len);
        tok[len] = 0;
        const int64_t ages[] = {0, 9, 10, 99999, 31536000};
        for (size_t a = 0; a < 5; a++)
            for (int sec = 0; sec < 2; sec++) {
                char *c = NULL;
                long n = rg_session_cookie_build(NULL, tok, ages[a], sec, &c);
                assert_true(n >= 0);
                assert_int_equal((size_t)n, rg_session_cookie_len(NULL, len, ages[a], sec));
                assert_int_equal((size_t)n, strlen(c));
                free(c);
            }
        free(tok);
    }
}

static void test_cookie_refuses_header_splitting(void **st)
{
    (void)st;
    const char *bad[] = {"a;b", "a b", "a\r\nSet-Cookie: x=y", "a,b", "a\"b", "a\\b", "\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *c = (char *)1;
        assert_int_equal(rg_session_cookie_build(NULL, bad[i], 60, 1, &c), RG_EINVAL);
        assert_null(c);
    }
    char *c = NULL;
    assert_int_equal(rg_session_cookie_build("bad name", "x", 60, 1, &c), RG_EINVAL);
    assert_int_equal(rg_session_cookie_build("a=b", "x", 60, 1, &c), RG_EINVAL);
    assert_int_equal(rg_session_cookie_build("", "x", 60, 1, &c), RG_EINVAL);
    assert_int_equal(rg_session_cookie_build(NULL, "x", -1, 1, &c), RG_EINVAL);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R24_cookie_secure_form_and_length),
        cmocka_unit_test(test_R24_cookie_plain_form_and_length),
        cmocka_unit_test(test_R24_cookie_length_matches_for_many_sizes),
        cmocka_unit_test(test_cookie_refuses_header_splitting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
