/* test_store_pgdown.c: a PostgreSQL store whose server goes away (issue 15):
 * an unreachable server at open answers 503 store_unavailable (and the
 * message never holds the URL's password); with the store open, the server
 * stopped costs errors with 503 store_unavailable, never a crash, and the
 * first call after it is back works again (the connection is reset at the
 * next transaction, the runner's backoff between attempts). The second
 * test needs tests/with-postgres (ROLEGATE_TEST_PG_CTL); without it, it is
 * skipped.
 * And the backend's prepared-statement cache (src/store/be_pg.c), through
 * the backend interface on one connection: a statement text is prepared on
 * the server once and run again with other parameters; the cache stays
 * bounded (the server's pg_prepared_statements never holds more than its
 * bound) and an evicted text is prepared again; a statement prepared but
 * not yet stepped is never evicted; a failed prepare (an aborted
 * transaction) is not kept; a connection the server cut is reset with its
 * cache dropped; statements the server forgot (DEALLOCATE ALL) are prepared
 * again after one failed run. They need ROLEGATE_TEST_PG.
 * And durability (tx.c, be_pg.c's early commit): a write commits with
 * synchronous_commit off so its locks go at once, then waits for its flush
 * outside them: when the store answers, the server's WAL is flushed past it
 * (insert position = flush position; the server's WAL writer held off, an
 * asynchronous commit made beside it shows the measure can fail). A role
 * refused pg_logical_emit_message gets the same guarantee by synchronous
 * commits. The writers' advisory lock: another instance's writer (holding
 * it shared) does not hold up this store's writes; a deletion batch of
 * another instance (holding it exclusively) does, until it commits. */
#include <pthread.h>
#include <stdatomic.h>
#include "test_store_helpers.h"
#include "../../src/store/backend.h"

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
    /* the rc is the error's kind, not a bare RG_EIO (issue 16 item 5) */
    assert_int_equal(rc, RG_EUNAVAIL);
    assert_int_equal(f->err.kind, RG_EUNAVAIL);
    json_t *l = NULL;
    assert_int_equal(rg_store_role_list(f->s, NULL, &l, &f->err), RG_EUNAVAIL);
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

#define PREP_BOUND 128   /* be_pg.c's PG_PREP_MAX */

typedef struct pfx {
    fx *f;
    st_db *db;
} pfx;

static int pfx_setup(void **state)
{
    if (!pg_base()) {
        *state = NULL;
        return 0;
    }
    pfx *p = calloc(1, sizeof *p);
    assert_non_null(p);
    void *fs = NULL;
    fx_setup(&fs);
    p->f = fs;
    rg_error e = { 0 };
    p->db = rg_st_pg_open(p->f->path, &e);
    if (!p->db)
        fail_msg("rg_st_pg_open: %s", e.message);
    *state = p;
    return 0;
}

static int pfx_teardown(void **state)
{
    pfx *p = *state;
    if (!p)
        return 0;
    p->db->be->close(p->db);
    void *fs = p->f;
    fx_teardown(&fs);
    free(p);
    return 0;
}

/* Runs sql with one text parameter (NULL: none) on db; its first column of
 * the first row as an integer, or -1 when it fails. */
static long long run1(st_db *db, const char *sql, const char *param)
{
    rg_error e = { 0 };
    st_stmt *st = db->be->prepare(db, sql, &e);
    if (!st)
        return -1;
    long long v = -1;
    if ((!param || db->be->bind_text(st, 1, param) == 0) && db->be->step(st) == 1)
        v = db->be->col_int64(st, 0);
    db->be->finalize(st);
    return v;
}

static long long prepared_count(st_db *db, const char *like)
{
    return run1(db, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ?", like);
}

static void test_one_prepare_per_text(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) + 1", v), i + 1);
    }
    assert_int_equal(prepared_count(p->db, "SELECT CAST($1 AS INTEGER) + 1"), 1);
}

static void test_bounded_and_evicted_texts_prepared_again(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    char sql[64];
    for (int i = 0; i < 3 * PREP_BOUND; i++) {
        snprintf(sql, sizeof sql, "SELECT %d + CAST(? AS INTEGER)", i);
        assert_int_equal(run1(p->db, sql, "1000"), i + 1000);
    }
    long long n = prepared_count(p->db, "%");
    assert_true(n > 0 && n <= PREP_BOUND);
    /* the first texts were evicted long ago: prepared again, same answers */
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof sql, "SELECT %d + CAST(? AS INTEGER)", i);
        assert_int_equal(run1(p->db, sql, "7"), i + 7);
    }
    assert_true(prepared_count(p->db, "%") <= PREP_BOUND);
}

static void test_pinned_statement_survives_eviction(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    rg_error e = { 0 };
    st_stmt *held = p->db->be->prepare(p->db, "SELECT CAST(? AS INTEGER) * 3", &e);
    assert_non_null(held);
    char sql[64];
    for (int i = 0; i < 2 * PREP_BOUND; i++) {
        snprintf(sql, sizeof sql, "SELECT %d", i);
        assert_int_equal(run1(p->db, sql, NULL), i);
    }
    assert_int_equal(p->db->be->bind_text(held, 1, "14"), 0);
    assert_int_equal(p->db->be->step(held), 1);
    assert_int_equal(p->db->be->col_int64(held, 0), 42);
    p->db->be->finalize(held);
}

static void test_failed_prepare_not_kept(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    assert_int_equal(p->db->be->begin(p->db, ST_BEGIN_READ), 0);
    assert_int_equal(run1(p->db, "SELECT 1 / CAST(? AS INTEGER)", "0"), -1);
    /* the transaction is aborted: this text's prepare fails */
    assert_int_equal(run1(p->db, "SELECT 5 + CAST(? AS INTEGER)", "1"), -1);
    p->db->be->rollback(p->db);
    assert_int_equal(run1(p->db, "SELECT 5 + CAST(? AS INTEGER)", "1"), 6);
    assert_int_equal(run1(p->db, "SELECT 1 / CAST(? AS INTEGER)", "1"), 1);
}

static void test_reset_connection_drops_cache(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) - 1", "10"), 9);
    long long pid = run1(p->db, "SELECT pg_backend_pid()", NULL);
    assert_true(pid > 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid);
    PQclear(pg_run("postgres", sql));
    /* the next statement finds the connection cut; begin resets it */
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) - 1", "10"), -1);
    assert_int_equal(p->db->be->begin(p->db, ST_BEGIN_READ), 0);
    assert_int_not_equal(run1(p->db, "SELECT pg_backend_pid()", NULL), pid);
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) - 1", "10"), 9);
    assert_int_equal(p->db->be->commit(p->db), 0);
}

/* The store speaks UTF-8 on every connection, the first and each one
 * PQreset makes after a cut: a URL asking for another client encoding
 * does not change that (the session's SET went with the old backend). */
static void test_reset_connection_keeps_utf8(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    char url[320];
    snprintf(url, sizeof url, "%s%sclient_encoding=LATIN1", p->f->path,
             strchr(p->f->path, '?') ? "&" : "?");
    rg_error e = { 0 };
    st_db *db = rg_st_pg_open(url, &e);
    if (!db)
        fail_msg("rg_st_pg_open: %s", e.message);
    const char *utf8 = "SELECT CAST(current_setting('client_encoding') = 'UTF8' AS INTEGER)";
    assert_int_equal(run1(db, utf8, NULL), 1);
    long long pid = run1(db, "SELECT pg_backend_pid()", NULL);
    assert_true(pid > 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid);
    PQclear(pg_run("postgres", sql));
    assert_int_equal(run1(db, utf8, NULL), -1);   /* the cut is seen */
    assert_int_equal(db->be->begin(db, ST_BEGIN_READ), 0);   /* which resets */
    assert_int_not_equal(run1(db, "SELECT pg_backend_pid()", NULL), pid);
    assert_int_equal(run1(db, utf8, NULL), 1);
    assert_int_equal(db->be->commit(db), 0);
    db->be->close(db);
}

static void test_forgotten_statements_prepared_again(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) + 2", "1"), 3);
    assert_int_equal(p->db->be->exec_script(p->db, "DEALLOCATE ALL"), 0);
    /* one run fails (26000: the runner retries it), the next prepares it */
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) + 2", "1"), -1);
    rg_error e = { 0 };
    p->db->be->dberr(p->db, &e);
    assert_int_equal(e.status, 500);
    assert_string_equal(e.code, "store_error");
    assert_int_equal(run1(p->db, "SELECT CAST(? AS INTEGER) + 2", "1"), 3);
}

/* The server's WAL written but not yet flushed, in bytes. */
static long long wal_unflushed(st_db *db)
{
    return run1(db, "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_insert_lsn(),"
                    " pg_current_wal_flush_lsn()) AS BIGINT)", NULL);
}

/* The WAL writer flushes asynchronous commits every wal_writer_delay: held
 * off (10 s), only a commit's own flush moves the flush position. */
static void wal_writer_delay(st_db *db, const char *v)
{
    char sql[80];
    snprintf(sql, sizeof sql, "ALTER SYSTEM SET wal_writer_delay = '%s'", v);
    assert_int_equal(db->be->exec_script(db, sql), 0);
    assert_int_equal(run1(db, "SELECT CAST(pg_reload_conf() AS INTEGER)", NULL), 1);
    usleep(300 * 1000);   /* the reload is a signal to every process */
}

static void test_write_answered_after_its_flush(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    wal_writer_delay(p->db, "10s");
    /* the measure sees an asynchronous commit nobody waited for */
    assert_int_equal(p->db->be->exec_script(p->db, "CREATE TABLE walprobe(v TEXT)"), 0);
    /* (one statement per call: a string of several is one transaction,
     * committed under the last SET) */
    assert_int_equal(p->db->be->exec_script(p->db, "SET synchronous_commit = off"), 0);
    assert_int_equal(p->db->be->exec_script(p->db, "INSERT INTO walprobe SELECT repeat('x', 3000)"),
                     0);
    assert_int_equal(p->db->be->exec_script(p->db, "SET synchronous_commit = on"), 0);
    assert_true(wal_unflushed(p->db) > 0);
    /* the store's writes: each answered once it is on disk (R23: one
     * transaction each; here, durable when it answers) */
    for (int i = 0; i < 3; i++) {
        char slug[24];
        snprintf(slug, sizeof slug, "durable-%d", i);
        json_t *o = NULL;
        assert_int_equal(rg_store_role_create(p->f->s, NULL, slug, "Durable", NULL, &o,
                                              &p->f->err), 0);
        json_decref(o);
        assert_int_equal(wal_unflushed(p->db), 0);
    }
    wal_writer_delay(p->db, "200ms");
}

/* A statement that fails inside a write: the store function returns the
 * kind of the error it filled (issue 16 item 5), so rc and err.status agree.
 * A trigger makes the role INSERT fail with the SQLSTATE given; the runner
 * retries both kinds (ST_TX_ATTEMPTS) and then answers. Before the store's
 * rc followed its err, both came back as RG_EIO beside a 409 or a 503. */
static void raise_on_role_insert(st_db *db, const char *sqlstate)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "CREATE OR REPLACE FUNCTION rg_fail() RETURNS trigger LANGUAGE plpgsql AS"
             " $$BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '%s'; END$$", sqlstate);
    assert_int_equal(db->be->exec_script(db, sql), 0);
    assert_int_equal(db->be->exec_script(db, "DROP TRIGGER IF EXISTS rg_fail ON roles"), 0);
    assert_int_equal(db->be->exec_script(db, "CREATE TRIGGER rg_fail BEFORE INSERT ON roles"
                                             " FOR EACH ROW EXECUTE FUNCTION rg_fail()"), 0);
}

static void test_failed_statement_returns_its_kind(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    static const struct { const char *sqlstate; int kind, status; const char *code; } cases[] = {
        {"23505", RG_ECONFLICT, 409, "conflict"},
        {"40001", RG_EUNAVAIL, 503, "store_conflict"},
        {"22012", RG_EIO, 500, "store_error"},   /* anything else: the database failed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raise_on_role_insert(p->db, cases[i].sqlstate);
        json_t *o = NULL;
        int rc = rg_store_role_create(p->f->s, NULL, "injected", "Injected", NULL, &o,
                                      &p->f->err);
        assert_null(o);
        assert_int_equal(rc, cases[i].kind);
        assert_int_equal(p->f->err.status, cases[i].status);
        assert_int_equal(rg_error_status(rc), p->f->err.status);
        assert_string_equal(p->f->err.code, cases[i].code);
    }
    assert_int_equal(p->db->be->exec_script(p->db, "DROP TRIGGER rg_fail ON roles"), 0);
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(p->f->s, NULL, "injected", "Injected", NULL, &o,
                                          &p->f->err), 0);
    json_decref(o);
}

static void test_sync_commits_without_wal_message(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    /* a role that owns its database but may not emit WAL messages */
    PQclear(pg_run("postgres", "DROP DATABASE IF EXISTS rg_plain_db"));
    PQclear(pg_run("postgres", "DROP ROLE IF EXISTS rg_plain"));
    PQclear(pg_run("postgres", "CREATE ROLE rg_plain LOGIN"));
    PQclear(pg_run("postgres", "CREATE DATABASE rg_plain_db OWNER rg_plain"));
    PQclear(pg_run("rg_plain_db", "REVOKE EXECUTE ON FUNCTION"
                                  " pg_logical_emit_message(boolean, text, text) FROM PUBLIC"));
    const char *base = pg_base(), *at = strchr(base, '@');
    assert_non_null(at);
    char url[300];
    snprintf(url, sizeof url, "postgresql://rg_plain%s/rg_plain_db", at);
    rg_error e = { 0 };
    rg_store *s = rg_store_open(url, &e);   /* its migrations run as rg_plain */
    if (!s)
        fail_msg("rg_store_open as rg_plain: %s", e.message);
    wal_writer_delay(p->db, "10s");
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(s, NULL, "sync-commit", "Sync", NULL, &o, &e), 0);
    json_decref(o);
    assert_int_equal(wal_unflushed(p->db), 0);
    wal_writer_delay(p->db, "200ms");
    rg_store_close(s);
    PQclear(pg_run("postgres", "DROP DATABASE rg_plain_db WITH (FORCE)"));
    PQclear(pg_run("postgres", "DROP ROLE rg_plain"));
}

#define WRITERS_LOCK "7526768494185166183"   /* be_pg.c's */

typedef struct bg_write { rg_store *s; atomic_int done; int rc; } bg_write;

static void *bg_role_create(void *arg)
{
    bg_write *w = arg;
    rg_error e = { 0 };
    json_t *o = NULL;
    w->rc = rg_store_role_create(w->s, NULL, "behind-lock", "Behind", NULL, &o, &e);
    json_decref(o);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_writers_lock_shared_and_alone(void **state)
{
    pfx *p = *state;
    if (!p)
        skip();
    /* another instance's writer in its transaction: this store still writes */
    assert_int_equal(p->db->be->begin(p->db, ST_BEGIN_READ), 0);
    assert_int_equal(run1(p->db, "SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared("
                                 WRITERS_LOCK ")) l", NULL), 1);
    json_t *o = NULL;
    assert_int_equal(rg_store_role_create(p->f->s, NULL, "beside", "Beside", NULL, &o,
                                          &p->f->err), 0);
    json_decref(o);
    assert_int_equal(p->db->be->commit(p->db), 0);
    /* another instance's deletion batch (a write alone): writes wait for it */
    assert_int_equal(p->db->be->begin(p->db, ST_BEGIN_READ), 0);
    assert_int_equal(run1(p->db, "SELECT 1 FROM (SELECT pg_advisory_xact_lock("
                                 WRITERS_LOCK ")) l", NULL), 1);
    bg_write w = { p->f->s, 0, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_role_create, &w), 0);
    usleep(400 * 1000);
    assert_int_equal(atomic_load(&w.done), 0);
    assert_int_equal(p->db->be->commit(p->db), 0);   /* the batch ends */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.rc, 0);
    char buf[128];
    assert_string_equal(roles_of(p->f, NULL, buf, sizeof buf), "member,beside,behind-lock");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable_server_is_503_without_password),
        cmocka_unit_test_setup_teardown(test_server_stopped_then_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_one_prepare_per_text, pfx_setup, pfx_teardown),
        cmocka_unit_test_setup_teardown(test_bounded_and_evicted_texts_prepared_again,
                                        pfx_setup, pfx_teardown),
        cmocka_unit_test_setup_teardown(test_pinned_statement_survives_eviction, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_prepare_not_kept, pfx_setup, pfx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_connection_drops_cache, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_reset_connection_keeps_utf8, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_forgotten_statements_prepared_again, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_write_answered_after_its_flush, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_statement_returns_its_kind, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_commits_without_wal_message, pfx_setup,
                                        pfx_teardown),
        cmocka_unit_test_setup_teardown(test_writers_lock_shared_and_alone, pfx_setup,
                                        pfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
