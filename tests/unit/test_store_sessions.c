/* test_store_sessions.c: pruning of the sessions table (issue 13): each new
 * session record deletes up to 32 of those past their absolute end
 * (expires_at), oldest first, and never a live one, revoked or not; the
 * index on expires_at is there (migration 4). */
#include "test_store_helpers.h"
#include "rolegate/util.h"

static void session_at(fx *f, const char *om, int n, int64_t expires_at)
{
    rg_store_session_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "session_t%04d", n);
    r.expires_at = expires_at;
    assert_int_equal(rg_store_session_create(f->s, &r, om, NULL, &f->err), 0);
}

static void test_a_new_session_prunes_ended_ones_bounded(void **st)
{
    fx *f = *st;
    char org[64], user[64], om[64];
    mk_one_member(f, "a@example.com", org, user, om);
    int64_t now = rg_now();
    /* 40 ended ones: the first insert of each is a prune of what ended
     * before it, so they are made directly, bypassing the API */
    for (int i = 0; i < 40; i++) {
        char sql[800];
        snprintf(sql, sizeof sql,
                 "INSERT INTO sessions(id, membership_id, user_id, organization_id,"
                 " created_at, expires_at) VALUES ('session_old%02d', '%s', '%s', '%s',"
                 " '2026-01-01T00:00:00.000Z', '2026-01-01T%02d:00:00.000Z')",
                 i, om, user, org, i % 24);
        q_exec(f, sql);
    }
    session_at(f, om, 1, now + 3600);          /* live */
    session_at(f, om, 2, now + 3600);          /* live, then revoked */
    assert_int_equal(rg_store_session_revoke(f->s, "session_t0002", "test", NULL, &f->err), 0);
    /* each of the two inserts took up to 32: 40 - 32 = 8 left after the
     * first, 0 after the second; the live ones stay */
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions WHERE id LIKE 'session_old%'"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions"), 2);
    /* bounded: one insert never deletes more than 32 */
    for (int i = 0; i < 40; i++) {
        char sql[800];
        snprintf(sql, sizeof sql,
                 "INSERT INTO sessions(id, membership_id, user_id, organization_id,"
                 " created_at, expires_at) VALUES ('session_end%02d', '%s', '%s', '%s',"
                 " '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:%02d.000Z')",
                 i, om, user, org, i);
        q_exec(f, sql);
    }
    session_at(f, om, 3, now + 3600);
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions WHERE id LIKE 'session_end%'"), 8);
    /* oldest first: the 8 left are the latest-ending ones */
    assert_int_equal(q_int(f, "SELECT count(*) FROM sessions WHERE id >= 'session_end32'"
                              " AND id LIKE 'session_end%'"), 8);
    assert_int_equal(rg_store_session_get(f->s, "session_t0001", NULL, &f->err), 0);
    assert_int_equal(rg_store_session_get(f->s, "session_t0002", NULL, &f->err), 0);
    /* found by the index, not a scan */
    assert_int_equal(q_int(f, getenv("ROLEGATE_TEST_PG")
                                  ? "SELECT count(*) FROM pg_indexes"
                                    " WHERE indexname = 'sessions_expires'"
                                  : "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND name = 'sessions_expires'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_new_session_prunes_ended_ones_bounded, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
