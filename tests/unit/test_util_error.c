/* test_util_error.c: the error kinds of rolegate/error.h and their one
 * table (issue 16 item 5): each kind has exactly one HTTP status, the
 * statuses clients see today; rg_error_set takes the status from it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/error.h"

static void test_every_kind_has_one_status_and_a_name(void **st)
{
    (void)st;
    static const struct { int kind; int status; const char *name; } want[] = {
        {RG_OK, 200, "RG_OK"},
        {RG_ERR, 500, "RG_ERR"},
        {RG_ENOMEM, 500, "RG_ENOMEM"},
        {RG_ENOTFOUND, 404, "RG_ENOTFOUND"},
        {RG_ECONFLICT, 409, "RG_ECONFLICT"},
        {RG_EINVAL, 400, "RG_EINVAL"},
        {RG_EIO, 500, "RG_EIO"},
        {RG_EUNAUTH, 401, "RG_EUNAUTH"},
        {RG_EFORBIDDEN, 403, "RG_EFORBIDDEN"},
        {RG_EMETHOD, 405, "RG_EMETHOD"},
        {RG_ETOOLARGE, 413, "RG_ETOOLARGE"},
        {RG_EMEDIATYPE, 415, "RG_EMEDIATYPE"},
        {RG_EUNPROCESSABLE, 422, "RG_EUNPROCESSABLE"},
        {RG_EINTERNAL, 500, "RG_EINTERNAL"},
        {RG_EUPSTREAM, 502, "RG_EUPSTREAM"},
        {RG_EUNREACHABLE, 502, "RG_EUNREACHABLE"},
        {RG_EUNAVAIL, 503, "RG_EUNAVAIL"},
    };
    assert_int_equal(sizeof want / sizeof *want, RG_ERRKIND_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_int_equal(want[i].kind, -(int)i);   /* dense: 0, -1, ... */
        assert_int_equal(rg_error_status(want[i].kind), want[i].status);
        assert_string_equal(rg_error_name(want[i].kind), want[i].name);
    }
}

static void test_not_a_kind_is_500(void **st)
{
    (void)st;
    assert_int_equal(rg_error_status(-RG_ERRKIND_COUNT), 500);
    assert_int_equal(rg_error_status(1), 500);
    assert_int_equal(rg_error_status(-1000), 500);
    assert_string_equal(rg_error_name(-RG_ERRKIND_COUNT), "RG_E?");
    assert_string_equal(rg_error_name(7), "RG_E?");
}

static void test_set_takes_the_status_of_the_kind(void **st)
{
    (void)st;
    rg_error e;
    rg_error_clear(&e);
    assert_int_equal(rg_error_set(&e, RG_EUNPROCESSABLE, "invalid_name", "name", "R2: %d", 48),
                     RG_EUNPROCESSABLE);
    assert_int_equal(e.status, 422);
    assert_string_equal(e.code, "invalid_name");
    assert_string_equal(e.field, "name");
    assert_string_equal(e.message, "R2: 48");
    assert_int_equal(rg_error_set(&e, RG_EUNAUTH, "token_expired", NULL, "x"), RG_EUNAUTH);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.field, "");
    assert_int_equal(rg_error_set(NULL, RG_EUNAVAIL, "store_unavailable", NULL, "x"),
                     RG_EUNAVAIL);
    assert_int_equal(rg_error_oom(&e), RG_ENOMEM);
    assert_int_equal(e.status, 500);
    assert_string_equal(e.code, "out_of_memory");
    rg_error_clear(&e);
    assert_int_equal(e.status, 0);
    assert_string_equal(e.code, "");
}

/* recast keeps what the error says and takes the new kind's status; the
 * kind it returns is the one the status came from */
static void test_recast_keeps_the_error_and_takes_the_kind_status(void **st)
{
    (void)st;
    rg_error e;
    rg_error_set(&e, RG_EUNPROCESSABLE, "session_too_large", "cookie", "over %d", 4096);
    assert_int_equal(e.status, 422);
    assert_int_equal(rg_error_recast(&e, RG_EUNAUTH), RG_EUNAUTH);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.code, "session_too_large");
    assert_string_equal(e.field, "cookie");
    assert_string_equal(e.message, "over 4096");
    assert_int_equal(rg_error_recast(&e, RG_EUNAVAIL), RG_EUNAVAIL);
    assert_int_equal(e.status, 503);
    assert_int_equal(rg_error_recast(NULL, RG_EINVAL), RG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_has_one_status_and_a_name),
        cmocka_unit_test(test_not_a_kind_is_500),
        cmocka_unit_test(test_set_takes_the_status_of_the_kind),
        cmocka_unit_test(test_recast_keeps_the_error_and_takes_the_kind_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
