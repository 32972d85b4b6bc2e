/* fuzz_table_codec.c: libFuzzer target for the binary role-table codec
 * (core_codec.h), the form in which compiled tables (R7-R11, R15) travel
 * through Redis: a blob from the cache is untrusted input. Properties: any
 * blob is refused cleanly (500 invalid_role_table_blob, *out NULL) or decodes
 * to a table that re-encodes to a blob decoding to an equal table
 * (rg_core_table_equal) and re-encoding byte for byte the same; the decoded
 * table is usable: its priority order has unique slugs, its default is
 * in it (R7/R9), and login resolution (R12-R17) returns >= 1 role (R13) in
 * the table. RG_FUZZ_MINT_SEEDS=<dir> writes seed blobs and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/core.h"
#include "rolegate/core_codec.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void write_blob(const char *dir, const char *name, const rg_role_table *t)
{
    char *blob = NULL;
    size_t len = 0;
    CHECK(rg_core_table_encode(t, &blob, &len) == 0);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f && fwrite(blob, 1, len, f) == len && fclose(f) == 0);
    free(blob);
}

static void mint_seeds(const char *dir)
{
    static const char *const pa[] = {"users:view", "users:edit", "reports.*"};
    static const char *const pb[] = {"users:view"};
    rg_role_spec env[] = {{"admin", RG_ROLE_ENV, pa, 3}, {"member", RG_ROLE_ENV, pb, 1}};
    rg_role_spec org[] = {{"org-billing", RG_ROLE_ORG, pb, 1}};
    static const char *const order[] = {"org-billing", "admin"};
    rg_group_mapping maps[] = {{"conn_1", "Admins", "admin"}, {"conn_1", "Billing", "org-billing"},
                               {"conn_2", "Admins", "member"}};
    rg_table_spec s = {.organization_id = NULL, .version = 7, .multiple_roles = 0,
                       .env_roles = env, .n_env_roles = 2, .env_default = "member"};
    rg_error err;
    rg_role_table *t = rg_role_table_build(&s, &err);
    CHECK(t);
    write_blob(dir, "env-only", t);
    rg_role_table_free(t);
    s.organization_id = "org_01HFUZZ";
    s.multiple_roles = 1;
    s.org_roles = org;
    s.n_org_roles = 1;
    s.org_order = order;
    s.n_org_order = 2;
    s.org_default = "org-billing";
    s.mappings = maps;
    s.n_mappings = 3;
    t = rg_role_table_build(&s, &err);
    CHECK(t);
    write_blob(dir, "org-independent", t);
    rg_role_table_free(t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("RG_FUZZ_MINT_SEEDS");
    if (dir) {
        mint_seeds(dir);
        exit(0);
    }
    return 0;
}

static void check_usable(const rg_role_table *t)
{
    size_t n = rg_role_table_count(t);
    rg_error err;
    for (size_t i = 0; i < n; i++) {
        const char *s = rg_role_table_slug_at(t, i);
        CHECK(s && rg_role_table_rank(t, s) == (long)i);
        /* slugs are not re-validated (rg_role_table_build does not either):
         * only that each is a distinct, findable string */
        CHECK(rg_role_table_type_at(t, i) == RG_ROLE_ENV || rg_role_table_type_at(t, i) == RG_ROLE_ORG);
        size_t np = 0;
        const char *const *p = rg_role_table_permissions(t, s, &np);
        for (size_t k = 0; k < np; k++)
            CHECK(p[k] && (k == 0 || strcmp(p[k - 1], p[k]) < 0));   /* sorted, unique */
    }
    const char *def = rg_role_table_default(t);
    CHECK(def && rg_role_table_rank(t, def) >= 0);   /* R7/R9 */
    static const char *const groups[] = {"Admins", "Billing", "x"};
    rg_login_input in = {.connection_id = "conn_1", .groups = groups, .n_groups = 3};
    rg_resolution r;
    CHECK(rg_core_resolve_login(t, &in, &r, &err) == 0);
    CHECK(r.roles.n >= 1);                              /* R13 */
    for (size_t i = 0; i < r.roles.n; i++)
        CHECK(rg_role_table_rank(t, r.roles.v[i]) >= 0);
    if (!rg_role_table_multiple_roles(t))
        CHECK(r.roles.n == 1);                          /* R12 */
    rg_resolution_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rg_role_table *t = (rg_role_table *)1;
    rg_error err;
    int rc = rg_core_table_decode(data, size, &t, &err);
    if (rc != 0) {
        CHECK(t == NULL && rc < 0);
        CHECK(rc == RG_ENOMEM || (err.status == 500 && !strcmp(err.code, "invalid_role_table_blob")));
        return 0;
    }
    CHECK(t);
    check_usable(t);
    char *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    CHECK(rg_core_table_encode(t, &b1, &l1) == 0);
    rg_role_table *t2 = NULL;
    CHECK(rg_core_table_decode(b1, l1, &t2, &err) == 0);
    CHECK(rg_core_table_equal(t, t2) && rg_core_table_equal(t2, t));
    CHECK(rg_core_table_encode(t2, &b2, &l2) == 0);
    CHECK(l1 == l2 && !memcmp(b1, b2, l1));
    free(b1);
    free(b2);
    rg_role_table_free(t2);
    rg_role_table_free(t);
    return 0;
}
