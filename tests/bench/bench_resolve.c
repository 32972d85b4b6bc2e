/* bench_resolve.c: login-time role resolution (R15-R17) at scale: an
 * organization with 500 roles, 10,000 group mappings and a user with 1,000
 * groups, in single- and multiple-role mode, against a same-run baseline
 * that scans every mapping for every group. Prints the machine, the figures
 * and the ratio. Standalone program (may do I/O; core itself does not). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rolegate/core.h"
#include "bench_machine.h"

enum { N_ENV = 400, N_ORG = 100, N_ROLES = N_ENV + N_ORG, N_PERMS = 300, PERMS_PER_ROLE = 8,
       N_MAPPINGS = 10000, N_MAPPED_GROUPS = 8000, N_USER_GROUPS = 1000, N_USER_MATCHING = 100 };

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        perror("strdup");
        exit(1);
    }
    return p;
}

/* The baseline: every group against every mapping; returns how many roles
 * were marked (and the marks in hit[]). */
static size_t naive_resolve(const rg_role_table *t, const rg_group_mapping *m, size_t nm,
                            const char *conn, const char *const *groups, size_t ng,
                            unsigned char *hit)
{
    memset(hit, 0, N_ROLES);
    size_t n = 0;
    for (size_t g = 0; g < ng; g++)
        for (size_t i = 0; i < nm; i++)
            if (!strcmp(m[i].connection_id, conn) && !strcmp(m[i].idp_group, groups[g])) {
                long r = rg_role_table_rank(t, m[i].role_slug);
                if (r >= 0 && !hit[r]) {
                    hit[r] = 1;
                    n++;
                }
            }
    return n;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 20000;
    int naive_iters = argc > 2 ? atoi(argv[2]) : 10;
    bench_print_machine();

    char *perm_names[N_PERMS];
    for (int i = 0; i < N_PERMS; i++) {
        char b[32];
        snprintf(b, sizeof b, "app%02d:perm-%03d", i % 17, i);
        perm_names[i] = xstrdup(b);
    }
    static const char *role_perms[N_ROLES][PERMS_PER_ROLE];
    rg_role_spec env[N_ENV], org[N_ORG];
    for (int i = 0; i < N_ROLES; i++) {
        char b[32];
        snprintf(b, sizeof b, i < N_ENV ? "role-%03d" : "org-role-%03d", i);
        for (int p = 0; p < PERMS_PER_ROLE; p++)
            role_perms[i][p] = perm_names[rnd() % N_PERMS];
        rg_role_spec s = {xstrdup(b), i < N_ENV ? RG_ROLE_ENV : RG_ROLE_ORG, role_perms[i],
                          PERMS_PER_ROLE};
        if (i < N_ENV)
            env[i] = s;
        else
            org[i - N_ENV] = s;
    }
    /* realistic LDAP-style group names, ~45 bytes each */
    static rg_group_mapping maps[N_MAPPINGS];
    char *mapped_groups[N_MAPPED_GROUPS];
    for (int i = 0; i < N_MAPPED_GROUPS; i++) {
        char b[96];
        snprintf(b, sizeof b, "CN=grp-%05d,OU=Groups,DC=corp,DC=example,DC=com", i);
        mapped_groups[i] = xstrdup(b);
    }
    for (int i = 0; i < N_MAPPINGS; i++) {
        int r = (int)(rnd() % N_ROLES);
        maps[i] = (rg_group_mapping){i % 5 == 0 ? "conn_b" : "conn_a",
                                     mapped_groups[(i * 7919) % N_MAPPED_GROUPS],
                                     r < N_ENV ? env[r].slug : org[r - N_ENV].slug};
    }
    /* the user: 100 groups mapped on conn_a, 900 unknown ones */
    const char *user_groups[N_USER_GROUPS];
    int k = 0;
    for (int i = 0; i < N_MAPPINGS && k < N_USER_MATCHING; i += 97)
        if (!strcmp(maps[i].connection_id, "conn_a"))
            user_groups[k++] = maps[i].idp_group;
    for (; k < N_USER_GROUPS; k++) {
        char b[96];
        snprintf(b, sizeof b, "CN=team-%05d,OU=Teams,DC=corp,DC=example,DC=com", k);
        user_groups[k] = xstrdup(b);
    }
    /* shuffle so matches are spread through the list */
    for (int i = N_USER_GROUPS - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        const char *x = user_groups[i];
        user_groups[i] = user_groups[j];
        user_groups[j] = x;
    }

    printf("setup: %d roles (%d env + %d org), %d permissions, %d mappings, "
           "%d user groups (%d mapped)\n", N_ROLES, N_ENV, N_ORG, N_PERMS, N_MAPPINGS,
           N_USER_GROUPS, N_USER_MATCHING);
    for (int mode = 0; mode < 2; mode++) {
        rg_table_spec spec = {.organization_id = "org_bench", .version = 1,
                              .multiple_roles = mode, .env_roles = env, .n_env_roles = N_ENV,
                              .env_default = env[N_ENV - 1].slug, .org_roles = org,
                              .n_org_roles = N_ORG, .mappings = maps, .n_mappings = N_MAPPINGS};
        rg_error err;
        double b0 = bench_now_us();
        rg_role_table *t = rg_role_table_build(&spec, &err);
        double build_us = bench_now_us() - b0;
        if (!t) {
            fprintf(stderr, "build failed: %s\n", err.message);
            return 1;
        }
        rg_login_input in = {.connection_id = "conn_a", .groups = user_groups,
                             .n_groups = N_USER_GROUPS, .current_source = RG_SOURCE_IDP};
        /* correctness against the baseline before timing */
        unsigned char hit[N_ROLES];
        size_t nn = naive_resolve(t, maps, N_MAPPINGS, "conn_a", user_groups, N_USER_GROUPS, hit);
        rg_resolution r;
        if (rg_core_resolve_login(t, &in, &r, &err)) {
            fprintf(stderr, "resolve failed\n");
            return 1;
        }
        size_t want = mode ? nn : 1;
        if (r.roles.n != want || !hit[rg_role_table_rank(t, r.roles.v[0])]) {
            fprintf(stderr, "mismatch: %zu roles vs baseline %zu\n", r.roles.n, want);
            return 1;
        }
        size_t nroles = r.roles.n, nperms = r.permissions.n;
        rg_resolution_clear(&r);

        for (int i = 0; i < iters / 10; i++) {   /* warm up */
            rg_core_resolve_login(t, &in, &r, &err);
            rg_resolution_clear(&r);
        }
        double t0 = bench_now_us();
        for (int i = 0; i < iters; i++) {
            rg_core_resolve_login(t, &in, &r, &err);
            rg_resolution_clear(&r);
        }
        double fast = (bench_now_us() - t0) / iters;
        double n0 = bench_now_us();
        volatile size_t sink = 0;
        for (int i = 0; i < naive_iters; i++)
            sink += naive_resolve(t, maps, N_MAPPINGS, "conn_a", user_groups, N_USER_GROUPS, hit);
        double naive = (bench_now_us() - n0) / naive_iters;
        (void)sink;
        printf("%s: %.2f us/resolution (%zu roles, %zu permissions, output included; "
               "%d runs) | naive scan: %.0f us (matching only; %d runs) | ratio %.0fx | "
               "table build %.0f us\n",
               mode ? "multiple" : "single  ", fast, nroles, nperms, iters, naive, naive_iters,
               naive / fast, build_us);
        rg_role_table_free(t);
    }
    for (int i = 0; i < N_PERMS; i++)
        free(perm_names[i]);
    for (int i = 0; i < N_ROLES; i++)
        free((char *)(i < N_ENV ? env[i].slug : org[i - N_ENV].slug));
    for (int i = 0; i < N_USER_GROUPS; i++)   /* the unmapped ones are ours */
        if (!strncmp(user_groups[i], "CN=team-", 8))
            free((char *)user_groups[i]);
    for (int i = 0; i < N_MAPPED_GROUPS; i++)
        free(mapped_groups[i]);
    return 0;
}
