/* test_cache_codec.c: the pieces of the cache layer that need no Redis: the
 * role-table blob (core_codec.h: round trip of order R8-R11, default R7/R9,
 * permissions, mappings R15; corrupt blobs refused), the Redis URL parser
 * and the bounded in-process maps (replay never forgets an unexpired id;
 * login state drops the oldest), and the cache without Redis configured. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/core_codec.h"
#include "rolegate/saml.h"
#include "test_cache_util.h"
#include "../../src/cache/cache_impl.h"

static const char *p_admin[] = {"users:edit", "users:view", "billing:view"};
static const char *p_member[] = {"users:view"};
static const char *p_org[] = {"reports:view", "users:view"};

static rg_role_table *sample_table(void)
{
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, p_admin, 3},
                          {"member", RG_ROLE_ENV, p_member, 1},
                          {"viewer", RG_ROLE_ENV, NULL, 0}};
    rg_role_spec org[] = {{"org-reports", RG_ROLE_ORG, p_org, 2},
                          {"org-zeta", RG_ROLE_ORG, NULL, 0}};
    const char *order[] = {"org-reports", "member", "admin"};  /* R9 own order, R10 rest */
    rg_group_mapping maps[] = {{"conn_a", "g1", "admin"},
                               {"conn_a", "g1", "org-reports"},
                               {"conn_a", "g2", "member"},
                               {"conn_b", "g1", "viewer"},
                               {"conn_b", "ghost", "no-such-role"}};
    rg_table_spec s = {.organization_id = "org_1", .version = 42, .multiple_roles = 1,
                       .env_roles = env, .n_env_roles = 3, .env_default = "member",
                       .org_roles = org, .n_org_roles = 2, .org_order = order,
                       .n_org_order = 3, .org_default = "org-zeta",
                       .mappings = maps, .n_mappings = 5};
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e);
    assert_non_null(t);
    return t;
}

static void test_R8_R11_blob_round_trip_keeps_table(void **st)
{
    (void)st;
    rg_role_table *t = sample_table();
    char *blob;
    size_t len;
    assert_int_equal(rg_core_table_encode(t, &blob, &len), 0);
    assert_true(len > 8);
    assert_memory_equal(blob, "RGT1", 4);
    rg_role_table *u = NULL;
    rg_error e;
    assert_int_equal(rg_core_table_decode(blob, len, &u, &e), 0);
    assert_true(rg_core_table_equal(t, u));
    /* spot checks through the public API, not only the equality helper */
    assert_int_equal(rg_role_table_version(u), 42);
    assert_int_equal(rg_role_table_multiple_roles(u), 1);
    assert_string_equal(rg_role_table_organization(u), "org_1");
    assert_string_equal(rg_role_table_default(u), "org-zeta");   /* R9 own default */
    assert_int_equal(rg_role_table_count(u), 5);
    const char *want[] = {"org-reports", "member", "admin", "viewer", "org-zeta"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(rg_role_table_slug_at(u, i), want[i]);
    assert_int_equal(rg_role_table_type_at(u, 0), RG_ROLE_ORG);
    assert_int_equal(rg_role_table_type_at(u, 1), RG_ROLE_ENV);
    size_t n;
    const char *const *p = rg_role_table_permissions(u, "admin", &n);
    assert_int_equal(n, 3);
    assert_string_equal(p[0], "billing:view");
    /* R15: (conn_a, g1) maps to admin and org-reports: multiple roles */
    const char *groups[] = {"g1"};
    rg_login_input in = {.connection_id = "conn_a", .groups = groups, .n_groups = 1};
    rg_resolution res;
    memset(&res, 0, sizeof res);
    assert_int_equal(rg_core_resolve_login(u, &in, &res, &e), 0);
    assert_int_equal(res.roles.n, 2);
    assert_string_equal(res.roles.v[0], "org-reports");
    assert_string_equal(res.roles.v[1], "admin");
    rg_resolution_clear(&res);
    /* the same blob twice: deterministic encoding */
    char *blob2;
    size_t len2;
    assert_int_equal(rg_core_table_encode(u, &blob2, &len2), 0);
    rg_role_table *w = NULL;
    assert_int_equal(rg_core_table_decode(blob2, len2, &w, &e), 0);
    assert_true(rg_core_table_equal(u, w));
    free(blob);
    free(blob2);
    rg_role_table_free(t);
    rg_role_table_free(u);
    rg_role_table_free(w);
}

static void test_R7_environment_table_round_trip(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"member", RG_ROLE_ENV, p_member, 1}};
    rg_table_spec s = {.version = 3, .env_roles = env, .n_env_roles = 1, .env_default = "member"};
    rg_error e;
    rg_role_table *t = rg_role_table_build(&s, &e), *u = NULL;
    assert_non_null(t);
    char *blob;
    size_t len;
    assert_int_equal(rg_core_table_encode(t, &blob, &len), 0);
    assert_int_equal(rg_core_table_decode(blob, len, &u, &e), 0);
    assert_null(rg_role_table_organization(u));
    assert_string_equal(rg_role_table_default(u), "member");
    assert_true(rg_core_table_equal(t, u));
    free(blob);
    rg_role_table_free(t);
    rg_role_table_free(u);
}

static void test_equal_tells_tables_apart(void **st)
{
    (void)st;
    rg_role_spec env[] = {{"a", RG_ROLE_ENV, NULL, 0}, {"b", RG_ROLE_ENV, NULL, 0}};
    rg_group_mapping m1[] = {{"c", "g", "a"}}, m2[] = {{"c", "g", "b"}};
    rg_table_spec s = {.version = 1, .env_roles = env, .n_env_roles = 2, .env_default = "a",
                       .mappings = m1, .n_mappings = 1};
    rg_error e;
    rg_role_table *t1 = rg_role_table_build(&s, &e);
    s.mappings = m2;
    rg_role_table *t2 = rg_role_table_build(&s, &e);
    s.mappings = m1;
    s.version = 2;
    rg_role_table *t3 = rg_role_table_build(&s, &e);
    assert_true(rg_core_table_equal(t1, t1));
    assert_false(rg_core_table_equal(t1, t2));   /* mapping to another role */
    assert_false(rg_core_table_equal(t1, t3));   /* another version */
    rg_role_table_free(t1);
    rg_role_table_free(t2);
    rg_role_table_free(t3);
}

static void test_corrupt_blobs_are_refused(void **st)
{
    (void)st;
    rg_role_table *t = sample_table();
    char *blob;
    size_t len;
    assert_int_equal(rg_core_table_encode(t, &blob, &len), 0);
    rg_role_table *u = (rg_role_table *)1;
    rg_error e;
    /* every truncation is refused, never half-decoded */
    for (size_t cut = 0; cut < len; cut++) {
        memset(&e, 0, sizeof e);
        assert_int_equal(rg_core_table_decode(blob, cut, &u, &e), RG_EINTERNAL);
        assert_null(u);
        assert_string_equal(e.code, "invalid_role_table_blob");
    }
    /* flipping any single byte either fails cleanly or yields a valid table
     * (e.g. a changed letter of a slug); it never crashes (ASan run) */
    size_t refused = 0;
    for (size_t i = 0; i < len; i++) {
        char *copy = malloc(len);
        memcpy(copy, blob, len);
        copy[i] ^= 0x5a;
        if (rg_core_table_decode(copy, len, &u, &e))
            refused++;
        else
            assert_false(rg_core_table_equal(t, u));
        rg_role_table_free(u);
        free(copy);
    }
    assert_true(refused > len / 2);
    /* another format, trailing bytes, NULL */
    assert_int_equal(rg_core_table_decode("RGT2xxxxxxxx", 12, &u, &e), RG_EINTERNAL);
    char *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    assert_int_equal(rg_core_table_decode(longer, len + 1, &u, &e), RG_EINTERNAL);
    assert_int_equal(rg_core_table_decode(NULL, 0, &u, &e), RG_EINTERNAL);
    free(longer);
    free(blob);
    rg_role_table_free(t);
}

static void test_url_parse(void **st)
{
    (void)st;
    rg_cache_url u;
    assert_int_equal(rg_cache_url_parse("redis://127.0.0.1:6390/2", &u), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.pass, "");
    assert_int_equal(rg_cache_url_parse("redis://app:s%40cret@redis.local", &u), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.pass, "s@cret");
    assert_string_equal(u.host, "redis.local");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(rg_cache_url_parse("redis://:pw@h:1/", &u), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "pw");
    assert_int_equal(rg_cache_url_parse("redis://[::1]:7000/1", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(rg_cache_url_parse("unix:/run/redis.sock?db=4", &u), 0);
    assert_int_equal(u.unix_socket, 1);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_int_equal(u.db, 4);
    const char *bad[] = {"http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x",
                         "redis://h/db", "redis://u:%zz@h", "unix:", "unix:rel", "redis://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(rg_cache_url_parse(bad[i], &u), -1);
}

static void test_replay_map_never_forgets_unexpired_ids(void **st)
{
    (void)st;
    rg_cache_lmap *m = rg_cache_lmap_new(2);
    int64_t later = rg_now_ms() + 60000, past = rg_now_ms() - 1;
    assert_int_equal(rg_cache_lmap_put_nx(m, "a", later), 0);
    assert_int_equal(rg_cache_lmap_put_nx(m, "a", later), 1);
    assert_int_equal(rg_cache_lmap_put_nx(m, "b", past), 0);    /* expired at once */
    assert_int_equal(rg_cache_lmap_put_nx(m, "b", later), 0);   /* expired: first use again */
    /* full of unexpired ids: refuse (fail closed), never evict one */
    assert_int_equal(rg_cache_lmap_put_nx(m, "c", later), -1);
    assert_int_equal(rg_cache_lmap_put_nx(m, "a", later), 1);
    assert_int_equal(rg_cache_lmap_count(m), 2);
    rg_cache_lmap_free(m);
}

static void test_state_map_takes_once_and_drops_oldest(void **st)
{
    (void)st;
    rg_cache_lmap *m = rg_cache_lmap_new(2);
    int64_t later = rg_now_ms() + 60000;
    char *v;
    assert_int_equal(rg_cache_lmap_put(m, "k1", "v1", later), 0);
    assert_int_equal(rg_cache_lmap_put(m, "k2", "v2", later), 0);
    assert_int_equal(rg_cache_lmap_put(m, "k3", "v3", later), 0);   /* drops k1 */
    assert_int_equal(rg_cache_lmap_take(m, "k1", &v), 0);
    assert_null(v);
    assert_int_equal(rg_cache_lmap_take(m, "k2", &v), 1);
    assert_string_equal(v, "v2");
    free(v);
    assert_int_equal(rg_cache_lmap_take(m, "k2", &v), 0);   /* one-time */
    assert_int_equal(rg_cache_lmap_put(m, "k4", "v4", rg_now_ms() - 1), 0);
    assert_int_equal(rg_cache_lmap_take(m, "k4", &v), 0);    /* expired */
    assert_int_equal(rg_cache_lmap_count(m), 1);
    rg_cache_lmap_free(m);
}

/* Without a Redis URL: one instance, everything in-process. */
static void test_without_redis_everything_is_local(void **st)
{
    (void)st;
    test_store ts;
    assert_int_equal(ts_create(&ts), 0);
    rg_error e;
    rg_store *s = rg_store_open(ts.path, &e);
    assert_non_null(s);
    rg_config cfg;
    tr_config(&cfg, NULL, NULL, 0);
    rg_cache *c = rg_cache_new(&cfg, s, &e);
    assert_non_null(c);
    rg_cache_stats stt;
    rg_cache_stats_get(c, &stt);
    assert_int_equal(stt.configured, 0);
    assert_int_equal(rg_cache_redis_up(c), 0);
    /* tables: store once, then in-process */
    rg_cache_ref *r1, *r2;
    assert_int_equal(rg_cache_table_get(c, ts.org, &r1, &e), 0);
    assert_int_equal(rg_cache_table_get(c, ts.org, &r2, &e), 0);
    assert_ptr_equal(rg_cache_ref_table(r1), rg_cache_ref_table(r2));
    assert_true(tr_maps(rg_cache_ref_table(r1), ts.conn, "admins"));
    rg_cache_stats_get(c, &stt);
    assert_int_equal(stt.table_store_loads, 1);
    assert_int_equal(stt.table_local_hits, 1);
    /* a change + invalidate: the next get has it; the old reference stays
     * readable until released */
    assert_int_equal(ts_add_mapping(s, &ts, "ops"), 0);
    assert_int_equal(rg_cache_table_invalidate(c, ts.org), 0);
    rg_cache_ref *r3;
    assert_int_equal(rg_cache_table_get(c, ts.org, &r3, &e), 0);
    assert_true(tr_maps(rg_cache_ref_table(r3), ts.conn, "ops"));
    assert_false(tr_maps(rg_cache_ref_table(r1), ts.conn, "ops"));
    assert_true(rg_role_table_version(rg_cache_ref_table(r3)) >
                rg_role_table_version(rg_cache_ref_table(r1)));
    rg_cache_ref_release(r1);
    rg_cache_ref_release(r2);
    rg_cache_ref_release(r3);
    /* unknown organization: the store's 404 comes through */
    rg_cache_ref *none = (rg_cache_ref *)1;
    assert_true(rg_cache_table_get(c, "org_01HZZZZZZZZZZZZZZZZZZZZZZZ", &none, &e) < 0);
    assert_null(none);
    assert_int_equal(e.status, 404);
    /* environment table (NULL) */
    rg_cache_ref *env;
    assert_int_equal(rg_cache_table_get(c, NULL, &env, &e), 0);
    assert_null(rg_role_table_organization(rg_cache_ref_table(env)));
    rg_cache_ref_release(env);
    /* replay: local map, through the SAML layer's callback type */
    rg_saml_replay_fn replay = rg_cache_replay_check;
    assert_int_equal(replay(c, "https://idp", "_cb", rg_now() + 300), 0);
    assert_int_equal(replay(c, "https://idp", "_cb", rg_now() + 300), 1);
    int64_t exp = rg_now() + 300;
    assert_int_equal(rg_cache_replay_check(c, "https://idp", "_a1", exp), 0);
    assert_int_equal(rg_cache_replay_check(c, "https://idp", "_a1", exp), 1);
    assert_int_equal(rg_cache_replay_check(c, "https://other", "_a1", exp), 0);
    /* state: once */
    char *v;
    assert_int_equal(rg_cache_state_put(c, "st1", "payload", 5000, &e), 0);
    assert_int_equal(rg_cache_state_take(c, "st1", &v, &e), 0);
    assert_string_equal(v, "payload");
    free(v);
    assert_int_equal(rg_cache_state_take(c, "st1", &v, &e), RG_ENOTFOUND);
    assert_string_equal(e.code, "state_not_found");
    assert_int_equal(rg_cache_state_put(c, "", "x", 5000, &e), RG_EINTERNAL);
    /* revocation publish: nothing to share, fine */
    assert_int_equal(rg_cache_revoke_publish(c, "sid_1", exp), 0);
    assert_int_equal(rg_cache_revoke_publish(c, "", exp), RG_EINVAL);
    rg_cache_free(c);
    rg_cache_free(NULL);
    rg_store_close(s);
    ts_remove(&ts);
}

static void test_malformed_url_is_refused_without_echo(void **st)
{
    (void)st;
    rg_config cfg;
    tr_config(&cfg, NULL, NULL, 0);
    snprintf(cfg.redis.url, sizeof cfg.redis.url, "redis://user:topsecret@host:notaport");
    rg_error e;
    memset(&e, 0, sizeof e);
    assert_null(rg_cache_new(&cfg, NULL, &e));
    assert_string_equal(e.code, "cache_error");
    assert_null(strstr(e.message, "topsecret"));
}

int main(void)
{
    tr_block_sigpipe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R8_R11_blob_round_trip_keeps_table),
        cmocka_unit_test(test_R7_environment_table_round_trip),
        cmocka_unit_test(test_equal_tells_tables_apart),
        cmocka_unit_test(test_corrupt_blobs_are_refused),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_replay_map_never_forgets_unexpired_ids),
        cmocka_unit_test(test_state_map_takes_once_and_drops_oldest),
        cmocka_unit_test(test_without_redis_everything_is_local),
        cmocka_unit_test(test_malformed_url_is_refused_without_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
