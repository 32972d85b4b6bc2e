/* test_store_notify.c: the store's change channel (issue 15). On PostgreSQL:
 * a listener of its own receives, after the commit and only then, "*" for
 * an environment change, the org id for an organization's change and the
 * members payload for a membership write, each sent inside the writing
 * transaction (a write that fails sends nothing); a message sent alone
 * arrives; revoked session records within their end and memberships
 * deprovisioned lately (R30) are read back. On SQLite: no channel (every
 * call refuses), the records read the same. */
#include <poll.h>
#include "test_store_helpers.h"
#include "rolegate/util.h"

#define CHAN "rgtest:invalidate"
#define CHAN2 "rgtest:revoked"

typedef struct got {
    char msgs[16][128];
    int n;
} got;

static void on_msg(void *ctx, const char *channel, const char *payload)
{
    got *g = ctx;
    if (g->n < 16)
        snprintf(g->msgs[g->n++], sizeof g->msgs[0], "%s %s", channel, payload);
}

/* Reads what arrives within ms into g. */
static void collect(rg_store_listener *l, got *g, int ms)
{
    int64_t end = rg_mono_us() + (int64_t)ms * 1000;
    char why[200];
    for (int64_t now = rg_mono_us(); now < end; now = rg_mono_us()) {
        struct pollfd p = {.fd = rg_store_listener_fd(l), .events = POLLIN};
        if (poll(&p, 1, (int)((end - now) / 1000) + 1) > 0)
            assert_true(rg_store_listener_read(l, on_msg, g, why, sizeof why) >= 0);
    }
}

static rg_store_listener *listener(fx *f)
{
    const char *chans[2] = {CHAN, CHAN2};
    char why[200] = "";
    rg_store_listener *l = rg_store_listen(f->s, chans, 2, why, sizeof why);
    if (!l)
        fail_msg("listen: %s", why);
    return l;
}

static void test_writes_announce_their_changes_on_commit_only(void **st)
{
    fx *f = *st;
    if (!f->pgdb[0]) {
        const char *chans[1] = {CHAN};
        char why[200];
        assert_int_equal(rg_store_channel_supported(f->s), 0);
        assert_int_equal(rg_store_channel_on_write(f->s, CHAN, "~members"), RG_EINVAL);
        assert_int_not_equal(rg_store_channel_send(f->s, CHAN, "x", &f->err), 0);
        assert_null(rg_store_listen(f->s, chans, 1, why, sizeof why));
        return;
    }
    assert_int_equal(rg_store_channel_supported(f->s), 1);
    assert_int_equal(rg_store_channel_on_write(f->s, CHAN, "~members"), 0);
    rg_store_listener *l = listener(f);
    got g = {0};
    /* an environment role: the environment's version, "*" */
    assert_int_equal(rg_store_role_create(f->s, NULL, "viewer", "Viewer", NULL, NULL, &f->err),
                     0);
    collect(l, &g, 300);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.msgs[0], CHAN " *");
    /* the same slug again: 409, rolled back, nothing sent */
    g.n = 0;
    assert_int_not_equal(rg_store_role_create(f->s, NULL, "viewer", "Viewer", NULL, NULL,
                                              &f->err), 0);
    assert_int_equal(f->err.status, 409);
    collect(l, &g, 300);
    assert_int_equal(g.n, 0);
    /* an organization's own role: its id */
    char org[64], user[64], msg[200];
    mk_org(f, "Acme", org);
    collect(l, &g, 200);
    g.n = 0;
    if (rg_store_role_create(f->s, org, "org-biller", "Biller", NULL, NULL, &f->err))
        fail_msg("org role: %s %s", f->err.code, f->err.message);
    collect(l, &g, 300);
    snprintf(msg, sizeof msg, "%s %s", CHAN, org);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.msgs[0], msg);
    /* a membership: the members payload */
    mk_user(f, "a@example.com", user);
    g.n = 0;
    assert_int_equal(rg_store_membership_create(f->s, user, org, NULL, 0, NULL, &f->err), 0);
    collect(l, &g, 300);
    int members = 0;
    for (int i = 0; i < g.n; i++)
        members += !strcmp(g.msgs[i], CHAN " ~members");
    assert_int_equal(members, 1);
    /* a message of its own, on the other channel; a payload too long */
    g.n = 0;
    assert_int_equal(rg_store_channel_send(f->s, CHAN2, "1767225600 session_x", &f->err), 0);
    collect(l, &g, 300);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.msgs[0], CHAN2 " 1767225600 session_x");
    char *big = malloc(RG_STORE_CHANNEL_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', RG_STORE_CHANNEL_MAX + 1);
    big[RG_STORE_CHANNEL_MAX + 1] = 0;
    assert_int_not_equal(rg_store_channel_send(f->s, CHAN2, big, &f->err), 0);
    free(big);
    /* a ping is answered */
    char why[200];
    assert_int_equal(rg_store_listener_ping(l, why, sizeof why), 0);
    assert_int_equal(rg_store_listener_ping(l, why, sizeof why), 1);
    g.n = 0;
    collect(l, &g, 300);
    assert_int_equal(rg_store_listener_ping(l, why, sizeof why), 0);
    /* channel off: writes send nothing more */
    assert_int_equal(rg_store_channel_on_write(f->s, NULL, NULL), 0);
    collect(l, &g, 200);
    g.n = 0;
    assert_int_equal(rg_store_role_create(f->s, NULL, "closer", "Closer", NULL, NULL, &f->err),
                     0);
    collect(l, &g, 300);
    assert_int_equal(g.n, 0);
    rg_store_listener_close(l);
}

typedef struct seen {
    char sids[8][96];
    int64_t exps[8];
    int n;
} seen;

static void on_revoked(void *ctx, const char *sid, int64_t exp)
{
    seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->sids[s->n], sizeof s->sids[0], "%s", sid);
        s->exps[s->n++] = exp;
    }
}

static void on_inactive(void *ctx, const char *user, const char *org, int64_t at)
{
    seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->sids[s->n], sizeof s->sids[0], "%s %s", user, org);
        s->exps[s->n++] = at;
    }
}

static void test_revoked_records_within_their_end_are_read_back(void **st)
{
    fx *f = *st;
    char org[64], user[64], om[64];
    mk_one_member(f, "a@example.com", org, user, om);
    int64_t now = rg_now();
    const char *ids[3] = {"session_live", "session_gone", "session_kept"};
    for (int i = 0; i < 3; i++) {
        rg_store_session_rec r;
        memset(&r, 0, sizeof r);
        snprintf(r.id, sizeof r.id, "%s", ids[i]);
        r.expires_at = now + 3600 + i;
        assert_int_equal(rg_store_session_create(f->s, &r, om, NULL, &f->err), 0);
    }
    assert_int_equal(rg_store_session_revoke(f->s, "session_gone", "test", NULL, &f->err), 0);
    assert_int_equal(rg_store_session_revoke(f->s, "session_kept", "test", NULL, &f->err), 0);
    /* revoked, but past its end: no token of it verifies any more */
    q_exec(f, "UPDATE sessions SET expires_at = '2026-01-01T00:00:00.000Z'"
              " WHERE id = 'session_kept'");
    seen s = {0};
    assert_int_equal(rg_store_session_revoked_each(f->s, on_revoked, &s, &f->err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.sids[0], "session_gone");
    assert_int_equal(s.exps[0], now + 3600 + 1);
    /* R30: a membership a directory made inactive, lately: its user, org and
     * time; the active one and one deprovisioned before `since` are not */
    seen m = {0};
    assert_int_equal(rg_store_membership_inactive_each(f->s, now - 60, on_inactive, &m,
                                                       &f->err), 0);
    assert_int_equal(m.n, 0);
    char sql[300];
    snprintf(sql, sizeof sql, "UPDATE memberships SET status = 'inactive',"
             " updated_at = '2026-12-31T10:00:00.000Z' WHERE id = '%s'", om);
    q_exec(f, sql);
    assert_int_equal(rg_store_membership_inactive_each(f->s, 1798711200 - 60, on_inactive, &m,
                                                       &f->err), 0);
    assert_int_equal(m.n, 1);
    char want[200];
    snprintf(want, sizeof want, "%s %s", user, org);
    assert_string_equal(m.sids[0], want);
    assert_int_equal(m.exps[0], 1798711200);   /* 2026-12-31T10:00:00Z */
    m.n = 0;
    assert_int_equal(rg_store_membership_inactive_each(f->s, 1798711200 + 1, on_inactive, &m,
                                                       &f->err), 0);
    assert_int_equal(m.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_announce_their_changes_on_commit_only,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_revoked_records_within_their_end_are_read_back,
                                        fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
