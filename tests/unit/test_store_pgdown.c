/* test_store_pgdown.c: a PostgreSQL store whose server goes away (issue 15):
 * an unreachable server at open answers 503 store_unavailable (and the
 * message never holds the URL's password); with the store open, the server
 * stopped costs errors with 503 store_unavailable, never a crash, and the
 * first call after it is back works again (the connection is reset at the
 * next transaction, the runner's backoff between attempts). The second
 * test needs tests/with-postgres (ROLEGATE_TEST_PG_CTL); without it, it is
 * skipped. */
#include "test_store_helpers.h"

static void test_unreachable_server_is_503_without_password(void **state)
{
    (void)state;
    rg_error e = { 0 };
    /* port 1 on loopback: nothing listens there */
    rg_store *s = rg_store_open("postgresql://app:s3cret-pw@127.0.0.1:1/rg?connect_timeout=2",
                                &e);
    assert_null(s);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "store_unavailable");
    assert_null(strstr(e.message, "s3cret-pw"));
}

static int ctl(const char *what)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", getenv("ROLEGATE_TEST_PG_CTL"), what);
    return system(cmd);
}

static void test_server_stopped_then_back(void **state)
{
    fx *f = *state;
    if (!pg_base() || !getenv("ROLEGATE_TEST_PG_CTL"))
        skip();
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(f->s, NULL, "before", "Before", NULL, &o, &f->err), 0);
    json_decref(o);
    assert_int_equal(ctl("stop -m fast"), 0);
    o = NULL;
    int rc = rg_store_role_create(f->s, NULL, "during", "During", NULL, &o, &f->err);
    assert_int_not_equal(rc, 0);
    assert_null(o);
    assert_int_equal(f->err.status, 503);
    assert_string_equal(f->err.code, "store_unavailable");
    json_t *l = NULL;
    assert_int_not_equal(rg_store_role_list(f->s, NULL, &l, &f->err), 0);
    assert_int_equal(f->err.status, 503);
    assert_int_equal(ctl("start"), 0);
    /* every pooled connection is reset at its next use */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(rg_store_role_list(f->s, NULL, &l, &f->err), 0);
        json_decref(l);
    }
    assert_int_equal(rg_store_role_create(f->s, NULL, "after", "After", NULL, &o, &f->err), 0);
    json_decref(o);
    char buf[128];
    assert_string_equal(roles_of(f, NULL, buf, sizeof buf), "member,before,after");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable_server_is_503_without_password),
        cmocka_unit_test_setup_teardown(test_server_stopped_then_back, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
