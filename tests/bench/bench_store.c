/* bench_store.c: the store's hot reads at scale, through the public API on a
 * real SQLite file: an organization with 500 own roles (4 permissions each,
 * R8/R11 list), 10,000 IdP group mappings over 10 connections (R15) and 100
 * memberships of 3 roles each. Times rg_store_role_list (the admin role
 * list), rg_store_role_table (what every login loads) and
 * rg_store_membership_list (limit 100). Prints the machine and the figures;
 * compare builds by running this program built against each. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rolegate/store.h"
#include "bench_machine.h"

enum { N_ROLES = 500, N_PERMS = 50, PERMS_PER_ROLE = 4, N_CONNS = 10,
       MAPS_PER_CONN = 1000, N_MEMBERS = 100, ROLES_PER_MEMBER = 3 };

static void check(int rc, const char *what, const rg_error *err)
{
    if (rc) {
        fprintf(stderr, "bench_store: %s: %s %s\n", what, err->code, err->message);
        exit(1);
    }
}

/* Runs fn until at least min_us passed; prints and returns us per call. */
typedef int (*bench_fn)(rg_store *s, const char *org, rg_error *err);

static double timeit(const char *name, bench_fn fn, rg_store *s, const char *org,
                     double min_us)
{
    rg_error err;
    check(fn(s, org, &err), name, &err);   /* warm-up */
    long n = 0;
    double t0 = bench_now_us(), t;
    do {
        check(fn(s, org, &err), name, &err);
        n++;
        t = bench_now_us();
    } while (t - t0 < min_us);
    double per = (t - t0) / (double)n;
    printf("%-28s %10.1f us/call  (%ld calls)\n", name, per, n);
    return per;
}

static int do_role_list(rg_store *s, const char *org, rg_error *err)
{
    json_t *o = NULL;
    int rc = rg_store_role_list(s, org, &o, err);
    if (!rc && json_array_size(json_object_get(o, "data")) != N_ROLES + 1)
        rc = rg_error_set(err, RG_EIO, "bench", NULL, "wrong role count");
    json_decref(o);
    return rc;
}

static int do_role_table(rg_store *s, const char *org, rg_error *err)
{
    rg_role_table *t = NULL;
    int rc = rg_store_role_table(s, org, &t, err);
    if (!rc && rg_role_table_count(t) != N_ROLES + 1)
        rc = rg_error_set(err, RG_EIO, "bench", NULL, "wrong table size");
    rg_role_table_free(t);
    return rc;
}

static int do_member_list(rg_store *s, const char *org, rg_error *err)
{
    json_t *o = NULL;
    rg_store_list_opts lo = { .limit = 100 };
    int rc = rg_store_membership_list(s, NULL, org, &lo, &o, err);
    if (!rc && json_array_size(json_object_get(o, "data")) != N_MEMBERS)
        rc = rg_error_set(err, RG_EIO, "bench", NULL, "wrong membership count");
    json_decref(o);
    return rc;
}

int main(int argc, char **argv)
{
    double min_us = (argc > 1 ? atof(argv[1]) : 2.0) * 1e6;
    bench_print_machine();
    char dir[] = "/tmp/rg-bench-store-XXXXXX", path[128];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/rolegate.db", dir);
    rg_error err;
    rg_store *s = rg_store_open(path, &err);
    if (!s)
        check(-1, "open", &err);
    double t0 = bench_now_us();
    json_t *o = NULL;
    check(rg_store_environment_update(s, 1, NULL, NULL, &err), "multiple_roles", &err);
    check(rg_store_organization_create(s, "Bench", NULL, 0, &o, &err), "org", &err);
    char org[64];
    snprintf(org, sizeof org, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    char slug[64], name[64];
    for (int i = 0; i < N_PERMS; i++) {
        snprintf(slug, sizeof slug, "perm-%02d:read", i);
        check(rg_store_permission_create(s, slug, slug, NULL, 0, NULL, &err), "perm", &err);
    }
    for (int i = 0; i < N_ROLES; i++) {
        snprintf(slug, sizeof slug, "org-role-%03d", i);
        snprintf(name, sizeof name, "Role %d", i);
        check(rg_store_role_create(s, org, slug, name, NULL, NULL, &err), "role", &err);
        char p[PERMS_PER_ROLE][32];
        const char *pv[PERMS_PER_ROLE];
        for (int k = 0; k < PERMS_PER_ROLE; k++) {
            snprintf(p[k], sizeof p[k], "perm-%02d:read", (i * 7 + k * 11) % N_PERMS);
            pv[k] = p[k];
        }
        check(rg_store_role_permissions_set(s, org, slug, pv, PERMS_PER_ROLE, NULL, &err),
              "role perms", &err);
    }
    for (int c = 0; c < N_CONNS; c++) {
        snprintf(name, sizeof name, "Conn %d", c);
        check(rg_store_connection_create(s, org, "oidc", name, NULL, &o, &err), "conn", &err);
        char conn[64];
        snprintf(conn, sizeof conn, "%s", json_string_value(json_object_get(o, "id")));
        json_decref(o);
        json_t *maps = json_array();
        for (int m = 0; m < MAPS_PER_CONN; m++) {
            char g[32];
            snprintf(g, sizeof g, "group-%04d", m);
            snprintf(slug, sizeof slug, "org-role-%03d", (m + c * 37) % N_ROLES);
            json_array_append_new(maps, json_pack("{s:s,s:s}", "idp_group", g, "role_slug", slug));
        }
        check(rg_store_role_mappings_set(s, conn, maps, NULL, &err), "mappings", &err);
        json_decref(maps);
    }
    for (int u = 0; u < N_MEMBERS; u++) {
        char email[64], r[ROLES_PER_MEMBER][32];
        const char *rv[ROLES_PER_MEMBER];
        snprintf(email, sizeof email, "user%03d@example.com", u);
        check(rg_store_user_create(s, email, NULL, NULL, &o, &err), "user", &err);
        for (int k = 0; k < ROLES_PER_MEMBER; k++) {
            snprintf(r[k], sizeof r[k], "org-role-%03d", (u * 13 + k * 101) % N_ROLES);
            rv[k] = r[k];
        }
        check(rg_store_membership_create(s, json_string_value(json_object_get(o, "id")), org,
                                         rv, ROLES_PER_MEMBER, NULL, &err), "membership", &err);
        json_decref(o);
    }
    printf("setup: %d roles x %d permissions, %d mappings, %d memberships in %.1f s\n",
           N_ROLES, PERMS_PER_ROLE, N_CONNS * MAPS_PER_CONN, N_MEMBERS,
           (bench_now_us() - t0) / 1e6);
    timeit("rg_store_role_list(org)", do_role_list, s, org, min_us);
    timeit("rg_store_role_table(org)", do_role_table, s, org, min_us);
    timeit("rg_store_membership_list(100)", do_member_list, s, org, min_us);
    rg_store_close(s);
    const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}
