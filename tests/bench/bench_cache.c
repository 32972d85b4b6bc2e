/* bench_cache.c: cost of a role-table lookup through the cache layer for an
 * organization with 500 roles (400 environment + 100 own, 8 permissions
 * each of 300) and 10,000 group mappings: an in-process hit, a Redis hit
 * (store version read + GET + decode and rebuild of the blob) and, as the
 * same-run baseline, a store rebuild (rg_store_role_table: what every login
 * would pay without the cache). Starts its own redis-server on a free
 * loopback port. Prints the machine and the figures. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/cache.h"
#include "bench_machine.h"
#include "rolegate/core_codec.h"
#include "../unit/test_cache_util.h"
#include "../../src/cache/cache_impl.h"

enum { N_ENV = 400, N_ORG = 100, N_PERMS = 300, PERMS_PER_ROLE = 8, N_MAPPINGS = 10000,
       N_GROUPS = 8000 };

static void die(const char *what, const rg_error *e)
{
    fprintf(stderr, "bench_cache: %s: %s %s\n", what, e ? e->code : "", e ? e->message : "");
    exit(1);
}

/* The organization of the benchmark in a fresh store. */
static void build_org(rg_store *s, char *org, size_t orgsz, char *conn, size_t connsz)
{
    rg_error e;
    char slug[64], name[64];
    for (int p = 0; p < N_PERMS; p++) {
        snprintf(slug, sizeof slug, "perm-%03d", p);
        if (rg_store_permission_create(s, slug, slug, NULL, 0, NULL, &e))
            die("permission", &e);
    }
    json_t *o = NULL;
    if (rg_store_organization_create(s, "Bench", NULL, 0, &o, &e))
        die("organization", &e);
    tr_json_id(o, org, orgsz);
    if (rg_store_connection_create(s, org, "saml", "IdP", NULL, &o, &e))
        die("connection", &e);
    tr_json_id(o, conn, connsz);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int r = 0; r < N_ENV + N_ORG; r++) {
        const char *scope = r < N_ENV ? NULL : org;
        snprintf(slug, sizeof slug, r < N_ENV ? "env-role-%03d" : "org-role-%03d", r);
        snprintf(name, sizeof name, "Role %d", r);
        if (rg_store_role_create(s, scope, slug, name, NULL, NULL, &e))
            die("role", &e);
        char pbuf[PERMS_PER_ROLE][16];
        const char *perms[PERMS_PER_ROLE];
        for (int k = 0; k < PERMS_PER_ROLE; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            snprintf(pbuf[k], sizeof pbuf[k], "perm-%03d", (int)(rng % N_PERMS));
            perms[k] = pbuf[k];
        }
        if (rg_store_role_permissions_set(s, scope, slug, perms, PERMS_PER_ROLE, NULL, &e))
            die("role permissions", &e);
    }
    json_t *maps = json_array();
    for (int m = 0; m < N_MAPPINGS; m++) {
        char g[32];
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int r = (int)(rng % (N_ENV + N_ORG));
        snprintf(g, sizeof g, "group-%04d", m < N_GROUPS ? m : (int)(rng >> 20) % N_GROUPS);
        snprintf(slug, sizeof slug, r < N_ENV ? "env-role-%03d" : "org-role-%03d", r);
        json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", g, "role_slug", slug));
    }
    if (rg_store_role_mappings_set(s, conn, maps, NULL, &e))
        die("mappings", &e);
    json_decref(maps);
}

int main(void)
{
    tr_block_sigpipe();
    rg_log_open(NULL, RG_LOG_WARN);
    bench_print_machine();
    test_store ts;
    snprintf(ts.dir, sizeof ts.dir, "/tmp/rgbenchXXXXXX");
    if (!mkdtemp(ts.dir))
        die("mkdtemp", NULL);
    snprintf(ts.path, sizeof ts.path, "%s/rolegate.db", ts.dir);
    rg_error e;
    rg_store *s = rg_store_open(ts.path, &e);
    if (!s)
        die("store", &e);
    int64_t t0 = rg_mono_us();
    build_org(s, ts.org, sizeof ts.org, ts.conn, sizeof ts.conn);
    printf("setup: %d roles, %d mappings in the store (%.1f s)\n", N_ENV + N_ORG, N_MAPPINGS,
           (double)(rg_mono_us() - t0) / 1e6);

    test_redis redis = {0};
    if (tr_start(&redis))
        die("redis-server", NULL);
    rg_config cfg;
    tr_config(&cfg, &redis, NULL, 0);
    cfg.redis.table_ttl = 600;
    rg_cache *c = rg_cache_new(&cfg, s, &e);
    if (!c || !TR_WAIT(3000, rg_cache_redis_up(c)))
        die("cache", &e);

    /* baseline: a store rebuild */
    enum { N_STORE = 30, N_REDIS = 200, N_LOCAL = 1000000 };
    rg_role_table *t = NULL;
    t0 = rg_mono_us();
    for (int i = 0; i < N_STORE; i++) {
        if (rg_store_role_table(s, ts.org, &t, &e))
            die("rg_store_role_table", &e);
        if (i < N_STORE - 1)
            rg_role_table_free(t);
    }
    double store_us = (double)(rg_mono_us() - t0) / N_STORE;
    char *blob;
    size_t blob_len;
    if (rg_core_table_encode(t, &blob, &blob_len))
        die("encode", NULL);
    t0 = rg_mono_us();
    for (int i = 0; i < N_REDIS; i++) {
        rg_role_table *u;
        if (rg_core_table_decode(blob, blob_len, &u, &e))
            die("decode", &e);
        rg_role_table_free(u);
    }
    double decode_us = (double)(rg_mono_us() - t0) / N_REDIS;
    t0 = rg_mono_us();
    for (int i = 0; i < N_STORE; i++)
        (void)rg_store_table_version(s, ts.org);
    double version_us = (double)(rg_mono_us() - t0) / N_STORE;
    rg_role_table_free(t);
    free(blob);

    /* first lookup fills Redis */
    rg_cache_ref *r;
    if (rg_cache_table_get(c, ts.org, &r, &e))
        die("table_get", &e);
    rg_cache_ref_release(r);
    /* Redis hit: drop the in-process copy each time */
    t0 = rg_mono_us();
    for (int i = 0; i < N_REDIS; i++) {
        rg_cache_tables_drop(c, ts.org);
        if (rg_cache_table_get(c, ts.org, &r, &e))
            die("table_get", &e);
        rg_cache_ref_release(r);
    }
    double redis_us = (double)(rg_mono_us() - t0) / N_REDIS;
    /* in-process hit */
    t0 = rg_mono_us();
    for (int i = 0; i < N_LOCAL; i++) {
        if (rg_cache_table_get(c, ts.org, &r, &e))
            die("table_get", &e);
        rg_cache_ref_release(r);
    }
    double local_us = (double)(rg_mono_us() - t0) / N_LOCAL;
    rg_cache_stats st;
    rg_cache_stats_get(c, &st);
    if (st.table_redis_hits != N_REDIS || st.table_store_loads != 1)
        die("unexpected path counts", NULL);

    printf("role-table lookup, organization with %d roles and %d mappings (blob %zu bytes):\n",
           N_ENV + N_ORG, N_MAPPINGS, blob_len);
    printf("  in-process hit        %10.3f us   (%d runs)\n", local_us, N_LOCAL);
    printf("  Redis hit             %10.1f us   (%d runs; of which version read %.1f us, "
           "decode+rebuild %.1f us)\n", redis_us, N_REDIS, version_us, decode_us);
    printf("  store rebuild         %10.1f us   (%d runs; baseline)\n", store_us, N_STORE);
    printf("  ratio store/Redis %.1fx, store/in-process %.0fx\n", store_us / redis_us,
           store_us / local_us);
    rg_cache_free(c);
    rg_store_close(s);
    tr_kill(&redis);
    ts_remove(&ts);
    return 0;
}
