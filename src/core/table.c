/* table.c: compiles what the store holds for one organization into an
 * immutable role table: the effective priority order (R8-R11: own order or
 * the environment's live, missing roles at the bottom per R10), the default
 * role (R7/R9), per-role permission bitmaps over one sorted permission list,
 * and a hash index (connection, IdP group) -> roles for login (R15). */
#include <assert.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/core.h"
#include "table_impl.h"

/* Every allocation of a table comes from its rg_arena (arena.h), freed in
 * one go by rg_role_table_free. */
#define ARENA_BLOCK (64 * 1024)

static int index_init(core_index *ix, size_t n, uint64_t *slots_or_null, rg_arena *arena)
{
    size_t cap = 8;
    while (cap < 2 * n)
        cap <<= 1;
    ix->mask = cap - 1;
    ix->slots = slots_or_null ? slots_or_null : rg_arena_calloc(arena, cap, sizeof *ix->slots);
    return ix->slots ? 0 : -1;
}

static void index_put(core_index *ix, uint64_t h, size_t item)
{
    assert(item < 0xffffffffu);
    size_t i = (size_t)h & ix->mask;
    while (ix->slots[i])
        i = (i + 1) & ix->mask;
    ix->slots[i] = (h & 0xffffffff00000000ull) | (uint64_t)(item + 1);
}

/* ---- build -------------------------------------------------------------- */
typedef struct build_role {
    const rg_role_spec *spec;
    int placed;
} build_role;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_spec_slug(const void *a, const void *b)
{
    const build_role *x = *(const build_role *const *)a, *y = *(const build_role *const *)b;
    return strcmp(x->spec->slug, y->spec->slug);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* A spec the store should never produce: a bug, hence 500. */
#define table_error(err, ...) \
    rg_error_set((err), RG_EINTERNAL, "invalid_role_table", NULL, __VA_ARGS__)

/* Places the roles in effective priority order (R8-R11) into order[]. */
static int place_roles(const rg_table_spec *spec, build_role *br, size_t n,
                       const core_index *ix, const char *const *spec_slugs,
                       build_role **order, rg_error *err)
{
    size_t k = 0;
    /* R9: an independent organization's own order first; unknown and
     * repeated slugs in it are ignored. NULL: inherit the environment's. */
    for (size_t i = 0; i < spec->n_org_order; i++) {
        long j = core_index_find_str(ix, spec_slugs, spec->org_order[i]);
        if (j >= 0 && !br[j].placed) {
            br[j].placed = 1;
            order[k++] = &br[j];
        }
    }
    /* R10: environment roles missing from the own order go to the bottom, in
     * environment order (for an inheriting table that is the whole order). */
    for (size_t i = 0; i < spec->n_env_roles; i++)
        if (!br[i].placed) {
            br[i].placed = 1;
            order[k++] = &br[i];
        }
    /* then organization roles missing from it, by slug (deterministic) */
    size_t first_org = k;
    for (size_t i = spec->n_env_roles; i < n; i++)
        if (!br[i].placed) {
            br[i].placed = 1;
            order[k++] = &br[i];
        }
    qsort(order + first_org, k - first_org, sizeof *order, cmp_spec_slug);
    if (k != n)
        return table_error(err, "priority order lost roles");
    return 0;
}

static int build_permissions(rg_role_table *t, build_role **order, rg_error *err)
{
    size_t total = 0;
    for (size_t r = 0; r < t->n_roles; r++)
        total += order[r]->spec->n_permissions;
    const char **all = malloc((total ? total : 1) * sizeof *all);
    uint32_t *idx = malloc((total ? total : 1) * sizeof *idx);
    if (!all || !idx) {
        free(all);
        free(idx);
        return rg_error_oom(err);
    }
    size_t k = 0;
    for (size_t r = 0; r < t->n_roles; r++) {
        const rg_role_spec *s = order[r]->spec;
        for (size_t p = 0; p < s->n_permissions; p++) {
            if (!s->permissions || !s->permissions[p]) {
                free(all);
                free(idx);
                return table_error(err, "role '%.64s' has a NULL permission", s->slug);
            }
            all[k++] = s->permissions[p];
        }
    }
    qsort(all, total, sizeof *all, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (u == 0 || strcmp(all[u - 1], all[i]))
            all[u++] = all[i];
    int rc = 0;
    t->n_perms = u;
    t->perm_words = (u + 63) / 64;
    t->perms = rg_arena_calloc(t->arena, u ? u : 1, sizeof *t->perms);
    t->perm_bits = rg_arena_calloc(t->arena, t->n_roles * t->perm_words + 1, sizeof(uint64_t));
    if (!t->perms || !t->perm_bits) {
        rc = rg_error_oom(err);
        goto out;
    }
    for (size_t i = 0; i < u; i++)
        if (!(t->perms[i] = rg_arena_strdup(t->arena, all[i]))) {
            rc = rg_error_oom(err);
            goto out;
        }
    /* Per role: its permissions as indexes into the sorted list (sorted,
     * unique), a bitmap row for unions, and the sorted string view. */
    for (size_t r = 0; r < t->n_roles; r++) {
        const rg_role_spec *s = order[r]->spec;
        size_t m = 0;
        for (size_t p = 0; p < s->n_permissions; p++) {
            const char *key = s->permissions[p];
            const char **hit = bsearch(&key, t->perms, u, sizeof *t->perms, cmp_str);
            assert(hit);
            idx[m++] = (uint32_t)(hit - t->perms);
        }
        qsort(idx, m, sizeof *idx, cmp_u32);
        size_t mu = 0;
        for (size_t i = 0; i < m; i++)
            if (mu == 0 || idx[mu - 1] != idx[i])
                idx[mu++] = idx[i];
        const char **v = rg_arena_calloc(t->arena, mu ? mu : 1, sizeof *v);
        if (!v) {
            rc = rg_error_oom(err);
            goto out;
        }
        uint64_t *row = t->perm_bits + r * t->perm_words;
        for (size_t i = 0; i < mu; i++) {
            v[i] = t->perms[idx[i]];
            row[idx[i] / 64] |= 1ull << (idx[i] % 64);
        }
        t->roles[r].perms = v;
        t->roles[r].n_perms = mu;
    }
out:
    free(all);
    free(idx);
    return rc;
}

/* The key of (conn, group) among the keys built so far (kix indexes them
 * by hash h), or -1. */
static long key_find(const core_index *kix, const core_mapkey *keys, uint32_t conn,
                     const char *group, size_t glen, uint64_t h)
{
    for (size_t s = (size_t)h & kix->mask; kix->slots[s]; s = (s + 1) & kix->mask) {
        size_t item = (size_t)(kix->slots[s] & 0xffffffffu) - 1;
        if ((kix->slots[s] >> 32) == (h >> 32) && keys[item].conn == conn &&
            keys[item].group_len == glen && !memcmp(keys[item].group, group, glen))
            return (long)item;
    }
    return -1;
}

/* R15: the (connection, group) -> roles index. Mappings to roles that are
 * not visible in this table are dropped; repeated mappings count once. */
static int build_mappings(rg_role_table *t, const rg_table_spec *spec, rg_error *err)
{
    size_t n = spec->n_mappings;
    int rc = 0;
    long *key_of = malloc((n ? n : 1) * sizeof *key_of);
    uint32_t *rank_of = malloc((n ? n : 1) * sizeof *rank_of);
    uint64_t *key_hash = malloc((n ? n : 1) * sizeof *key_hash);
    uint64_t *conn_hash = malloc((n ? n : 1) * sizeof *conn_hash);
    const char **conns = malloc((n ? n : 1) * sizeof *conns);
    /* zeroed: clang's analyzer cannot tie an index slot to the key it was
     * put for, and would read keys[item] as uninitialized */
    core_mapkey *keys = calloc(n ? n : 1, sizeof *keys);
    core_index cix = {0}, kix = {0};
    size_t cap = 8;
    while (cap < 2 * n)
        cap <<= 1;
    uint64_t *cslots = calloc(cap, sizeof *cslots), *kslots = calloc(cap, sizeof *kslots);
    if (!key_of || !rank_of || !key_hash || !conn_hash || !conns || !keys || !cslots ||
        !kslots) {
        rc = rg_error_oom(err);
        goto out;
    }
    index_init(&cix, n, cslots, NULL);
    index_init(&kix, n, kslots, NULL);
    size_t n_conns = 0, n_keys = 0;
    for (size_t i = 0; i < n; i++) {
        const rg_group_mapping *m = &spec->mappings[i];
        key_of[i] = -1;
        if (!m->connection_id || !m->idp_group || !m->role_slug) {
            rc = table_error(err, "a mapping has a NULL field");
            goto out;
        }
        long rank = core_index_find_str(&t->slug_ix, t->slugs, m->role_slug);
        if (rank < 0)
            continue;   /* R15: only roles visible in the organization */
        long c = core_index_find_str(&cix, conns, m->connection_id);
        if (c < 0) {
            c = (long)n_conns;
            conns[n_conns] = m->connection_id;
            conn_hash[n_conns] = core_hash(m->connection_id, strlen(m->connection_id), 0);
            index_put(&cix, conn_hash[n_conns], n_conns);
            n_conns++;
        }
        size_t glen = strlen(m->idp_group);
        uint64_t h = core_hash(m->idp_group, glen, core_key_seed((uint32_t)c));
        long k = key_find(&kix, keys, (uint32_t)c, m->idp_group, glen, h);
        if (k < 0) {
            k = (long)n_keys;
            keys[n_keys] = (core_mapkey){.group = m->idp_group, .group_len = glen,
                                         .conn = (uint32_t)c, .off = 0, .n = 0};
            key_hash[n_keys] = h;
            index_put(&kix, h, n_keys);
            n_keys++;
        }
        key_of[i] = k;
        rank_of[i] = (uint32_t)rank;
        keys[k].n++;
    }
    /* Lay out the rank lists, then copy everything into the arena with
     * indexes sized for what was kept. */
    size_t total = 0;
    for (size_t k = 0; k < n_keys; k++) {
        keys[k].off = (uint32_t)total;
        total += keys[k].n;
        keys[k].n = 0;
    }
    t->ranks = rg_arena_calloc(t->arena, total ? total : 1, sizeof *t->ranks);
    t->keys = rg_arena_calloc(t->arena, n_keys ? n_keys : 1, sizeof *t->keys);
    t->conns = rg_arena_calloc(t->arena, n_conns ? n_conns : 1, sizeof *t->conns);
    if (!t->ranks || !t->keys || !t->conns || index_init(&t->conn_ix, n_conns, NULL, t->arena) ||
        index_init(&t->key_ix, n_keys, NULL, t->arena)) {
        rc = rg_error_oom(err);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (key_of[i] >= 0) {
            core_mapkey *k = &keys[key_of[i]];
            t->ranks[k->off + k->n++] = rank_of[i];
        }
    for (size_t c = 0; c < n_conns; c++) {
        if (!(t->conns[c] = rg_arena_strdup(t->arena, conns[c]))) {
            rc = rg_error_oom(err);
            goto out;
        }
        index_put(&t->conn_ix, conn_hash[c], c);
    }
    for (size_t k = 0; k < n_keys; k++) {
        core_mapkey *d = &t->keys[k];
        *d = keys[k];
        if (!(d->group = rg_arena_strdup(t->arena, keys[k].group))) {
            rc = rg_error_oom(err);
            goto out;
        }
        uint32_t *r = t->ranks + d->off;
        qsort(r, d->n, sizeof *r, cmp_u32);
        uint32_t u = 0;
        for (uint32_t i = 0; i < d->n; i++)
            if (u == 0 || r[u - 1] != r[i])
                r[u++] = r[i];
        d->n = u;
        index_put(&t->key_ix, key_hash[k], k);
    }
    t->n_conns = n_conns;
    t->n_keys = n_keys;
out:
    free(key_of);
    free(rank_of);
    free(key_hash);
    free(conn_hash);
    free(conns);
    free(keys);
    free(cslots);
    free(kslots);
    return rc;
}

/* br[i] and spec_slugs[i]: the environment's roles, then the
 * organization's; each with a slug and listed with its own type. */
static int spec_roles(const rg_table_spec *spec, build_role *br, const char **spec_slugs,
                      size_t n, rg_error *err)
{
    for (size_t i = 0; i < n; i++) {
        br[i].spec = i < spec->n_env_roles ? &spec->env_roles[i]
                                           : &spec->org_roles[i - spec->n_env_roles];
        if (!br[i].spec->slug || !*br[i].spec->slug)
            return table_error(err, "a role has no slug");
        /* an environment role listed among the organization's own is a spec
         * error as much as a wrong type is */
        if (br[i].spec->type != (i < spec->n_env_roles ? RG_ROLE_ENV : RG_ROLE_ORG))
            return table_error(err, "role '%.64s' is listed with the wrong type",
                               br[i].spec->slug);
        spec_slugs[i] = br[i].spec->slug;
    }
    return 0;
}

/* Indexes the n slugs in six (empty, sized for n); a repeated slug is
 * refused (R3, R4). */
static int index_slugs_unique(core_index *six, const char **spec_slugs, size_t n, rg_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (core_index_find_str(six, spec_slugs, spec_slugs[i]) >= 0)
            return table_error(err, "duplicate role slug '%.64s' (R3/R4)", spec_slugs[i]);
        index_put(six, core_hash(spec_slugs[i], strlen(spec_slugs[i]), 0), i);
    }
    return 0;
}

rg_role_table *rg_role_table_build(const rg_table_spec *spec, rg_error *err)
{
    if (!spec) {
        table_error(err, "no spec");
        return NULL;
    }
    if ((spec->n_env_roles && !spec->env_roles) || (spec->n_org_roles && !spec->org_roles) ||
        (spec->n_org_order && !spec->org_order) || (spec->n_mappings && !spec->mappings)) {
        table_error(err, "spec has a count without its array");
        return NULL;
    }
    size_t n = spec->n_env_roles + spec->n_org_roles;
    rg_role_table *t = NULL;
    rg_arena *arena = rg_arena_new(ARENA_BLOCK);
    build_role *br = calloc(n ? n : 1, sizeof *br);
    build_role **order = calloc(n ? n : 1, sizeof *order);
    const char **spec_slugs = calloc(n ? n : 1, sizeof *spec_slugs);
    uint64_t *tmp_slots = NULL;
    if (!arena || !br || !order || !spec_slugs)
        goto oom;
    if (spec_roles(spec, br, spec_slugs, n, err))
        goto fail;
    /* a temporary index over the spec's slugs: duplicates (R3, R4) and the
     * lookups of the own order */
    core_index six;
    size_t cap = 8;
    while (cap < 2 * n)
        cap <<= 1;
    if (!(tmp_slots = calloc(cap, sizeof *tmp_slots)))
        goto oom;
    index_init(&six, n, tmp_slots, NULL);
    if (index_slugs_unique(&six, spec_slugs, n, err))
        goto fail;
    if (place_roles(spec, br, n, &six, spec_slugs, order, err))
        goto fail;

    t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->version = spec->version;
    t->multiple_roles = spec->multiple_roles ? 1 : 0;
    t->n_roles = n;
    t->role_words = (n + 63) / 64;
    t->arena = arena;   /* the table's from here: rg_role_table_free frees it */
    t->roles = rg_arena_calloc(arena, n ? n : 1, sizeof *t->roles);
    t->slugs = rg_arena_calloc(arena, n ? n : 1, sizeof *t->slugs);
    if (!t->roles || !t->slugs)
        goto oom;
    if (spec->organization_id &&
        !(t->organization_id = rg_arena_strdup(t->arena, spec->organization_id)))
        goto oom;
    if (index_init(&t->slug_ix, n, NULL, t->arena))
        goto oom;
    for (size_t r = 0; r < n; r++) {
        t->roles[r].type = order[r]->spec->type;
        if (!(t->roles[r].slug = t->slugs[r] = rg_arena_strdup(t->arena, order[r]->spec->slug)))
            goto oom;
        index_put(&t->slug_ix, core_hash(t->slugs[r], strlen(t->slugs[r]), 0), r);
    }
    /* R7/R9: the organization's own default, else the environment's; it must
     * be a role of this table. */
    const char *def = spec->org_default ? spec->org_default : spec->env_default;
    long d = core_index_find_str(&t->slug_ix, t->slugs, def);
    if (d < 0) {
        table_error(err, "the default role '%.64s' is not in the table (R7/R9)",
                    def ? def : "(none)");
        goto fail;
    }
    t->default_rank = (size_t)d;
    if (build_permissions(t, order, err) || build_mappings(t, spec, err))
        goto fail;
    free(br);
    free(order);
    free(spec_slugs);
    free(tmp_slots);
    return t;
oom:
    rg_error_oom(err);
fail:
    if (t)
        rg_role_table_free(t);
    else
        rg_arena_free(arena);
    free(br);
    free(order);
    free(spec_slugs);
    free(tmp_slots);
    return NULL;
}

void rg_role_table_free(rg_role_table *t)
{
    if (!t)
        return;
    rg_arena_free(t->arena);
    free(t);
}

uint64_t rg_role_table_version(const rg_role_table *t)
{
    assert(t);
    return t->version;
}

int rg_role_table_multiple_roles(const rg_role_table *t)
{
    assert(t);
    return t->multiple_roles;
}

const char *rg_role_table_organization(const rg_role_table *t)
{
    assert(t);
    return t->organization_id;
}

size_t rg_role_table_count(const rg_role_table *t)
{
    assert(t);
    return t->n_roles;
}

const char *rg_role_table_slug_at(const rg_role_table *t, size_t rank)
{
    assert(t);
    return rank < t->n_roles ? t->roles[rank].slug : NULL;
}

rg_role_type rg_role_table_type_at(const rg_role_table *t, size_t rank)
{
    assert(t && rank < t->n_roles);
    return t->roles[rank].type;
}

long rg_role_table_rank(const rg_role_table *t, const char *slug)
{
    assert(t);
    return core_index_find_str(&t->slug_ix, t->slugs, slug);
}

const char *rg_role_table_default(const rg_role_table *t)
{
    assert(t && t->default_rank < t->n_roles);
    return t->roles[t->default_rank].slug;
}

const char *const *rg_role_table_permissions(const rg_role_table *t, const char *slug,
                                             size_t *n)
{
    assert(t);
    long r = rg_role_table_rank(t, slug);
    if (r < 0) {
        if (n)
            *n = 0;
        return NULL;
    }
    if (n)
        *n = t->roles[r].n_perms;
    return t->roles[r].perms;
}
