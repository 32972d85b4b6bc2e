/* resolve.c: what a membership's roles become. At login (R15-R17, R13, R18):
 * groups -> mapped roles through the table's hash index, with the precedence
 * of idp / api / directory / default. Through the API (R12, R19), when
 * multiple_roles is turned off (R14), after a role is deleted (R20), and the
 * permission union of a set of roles (R12, R24) as a bitmap walk. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/core.h"
#include "table_impl.h"

void rg_slugs_clear(rg_slugs *s)
{
    if (!s)
        return;
    if (!s->pooled)
        for (size_t i = 0; i < s->n; i++)
            free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
    s->pooled = 0;
}

/* Builds a pooled list of n copies of names[idx[i]] in ONE allocation: the
 * pointer array followed by the strings. Resolution returns hundreds of
 * slugs; one malloc instead of one per string halves its cost. */
static int slugs_pooled(rg_slugs *out, const char *const *names, const size_t *idx, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(names[idx[i]]) + 1;
    char **v = malloc((n ? n : 1) * sizeof *v + bytes);
    if (!v)
        return RG_ENOMEM;
    char *p = (char *)(v + (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[idx[i]]) + 1;
        memcpy(p, names[idx[i]], l);
        v[i] = p;
        p += l;
    }
    out->v = v;
    out->n = n;
    out->pooled = 1;
    return 0;
}

void rg_resolution_clear(rg_resolution *r)
{
    if (!r)
        return;
    rg_slugs_clear(&r->roles);
    rg_slugs_clear(&r->matched_groups);
    rg_slugs_clear(&r->matched_roles);
    rg_slugs_clear(&r->permissions);
    memset(r, 0, sizeof *r);
}

static int bit_get(const uint64_t *b, size_t i)
{
    return (int)((b[i / 64] >> (i % 64)) & 1);
}

static void bit_set(uint64_t *b, size_t i)
{
    b[i / 64] |= 1ull << (i % 64);
}

static size_t bits_count(const uint64_t *b, size_t words)
{
    size_t n = 0;
    for (size_t w = 0; w < words; w++)
        n += (size_t)__builtin_popcountll(b[w]);
    return n;
}

/* Lowest set bit (= highest priority when the bits are ranks), or -1. */
static long bits_first(const uint64_t *b, size_t words)
{
    for (size_t w = 0; w < words; w++)
        if (b[w])
            return (long)(w * 64 + (size_t)__builtin_ctzll(b[w]));
    return -1;
}

/* Fills out with copies of names[i] for each set bit i, ascending. */
static int slugs_from_bits(rg_slugs *out, const uint64_t *b, size_t words,
                           const char *const *names)
{
    size_t n = bits_count(b, words), k = 0;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return RG_ENOMEM;
    for (size_t w = 0; w < words; w++)
        for (uint64_t x = b[w]; x; x &= x - 1)
            idx[k++] = w * 64 + (size_t)__builtin_ctzll(x);
    assert(k == n);
    int rc = slugs_pooled(out, names, idx, n);
    free(idx);
    return rc;
}

static int slugs_one(rg_slugs *out, const char *s)
{
    const char *names[1] = {s};
    static const size_t idx[1] = {0};
    return slugs_pooled(out, names, idx, 1);
}

/* OR of the permission rows of the roles set in role_bits, into perm_bits. */
static void perm_union(const rg_role_table *t, const uint64_t *role_bits, uint64_t *perm_bits)
{
    for (size_t w = 0; w < t->role_words; w++)
        for (uint64_t x = role_bits[w]; x; x &= x - 1) {
            size_t r = w * 64 + (size_t)__builtin_ctzll(x);
            const uint64_t *row = t->perm_bits + r * t->perm_words;
            for (size_t p = 0; p < t->perm_words; p++)
                perm_bits[p] |= row[p];
        }
}

/* Marks the visible roles among roles[] in bits; returns how many were
 * marked (unique). Unknown ones are skipped (R13: stale roles drop out). */
static size_t mark_roles(const rg_role_table *t, const char *const *roles, size_t n,
                         uint64_t *bits)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        long r = rg_role_table_rank(t, roles ? roles[i] : NULL);
        if (r >= 0 && !bit_get(bits, (size_t)r)) {
            bit_set(bits, (size_t)r);
            k++;
        }
    }
    return k;
}

/* Keeps only the highest-priority bit (R14). */
static void keep_first_bit(uint64_t *bits, size_t words)
{
    long f = bits_first(bits, words);
    memset(bits, 0, words * sizeof *bits);
    if (f >= 0)
        bit_set(bits, (size_t)f);
}

typedef struct match {
    const char *group;
    uint32_t rank;
} match;

/* The matched (group, role) pairs of one login, for its record. */
typedef struct matches {
    match *v;
    size_t n, cap;
} matches;

static int matches_add(matches *m, const char *group, uint32_t rank)
{
    if (rg_grow(&m->v, m->n, &m->cap, sizeof *m->v, 16) != 0)
        return RG_ENOMEM;
    m->v[m->n++] = (match){.group = group, .rank = rank};
    return 0;
}

/* R15/R16: look each received group up among this connection's mappings
 * (exact, case-sensitive); groups that map to nothing are ignored. Sets the
 * mapped roles' bits in mapped (seen: the mapping keys met, kw words). */
static int match_groups(const rg_role_table *t, const rg_login_input *in, uint64_t *mapped,
                        uint64_t *seen, matches *m)
{
    long conn = t->n_keys ? core_index_find_str(&t->conn_ix, t->conns, in->connection_id) : -1;
    /* Groups go in batches: hash a batch and prefetch its slots first, so the
     * index's cache misses overlap instead of queueing one by one. */
    enum { BATCH = 16 };
    for (size_t g0 = 0; conn >= 0 && g0 < in->n_groups; g0 += BATCH) {
        size_t nb = in->n_groups - g0 < BATCH ? in->n_groups - g0 : BATCH;
        size_t len[BATCH];
        uint64_t hash[BATCH];
        for (size_t j = 0; j < nb; j++) {
            const char *grp = in->groups[g0 + j];
            len[j] = grp ? strlen(grp) : 0;
            hash[j] = grp ? core_hash(grp, len[j], core_key_seed((uint32_t)conn)) : 0;
            __builtin_prefetch(&t->key_ix.slots[hash[j] & t->key_ix.mask]);
        }
        for (size_t j = 0; j < nb; j++) {
            const char *grp = in->groups[g0 + j];
            if (!grp)
                continue;
            const core_mapkey *k = core_find_key_h(t, (uint32_t)conn, grp, len[j], hash[j]);
            if (!k)
                continue;
            size_t ki = (size_t)(k - t->keys);
            if (bit_get(seen, ki))
                continue;   /* a group received twice counts once */
            bit_set(seen, ki);
            for (uint32_t i = 0; i < k->n; i++) {
                uint32_t r = t->ranks[k->off + i];
                bit_set(mapped, r);
                if (matches_add(m, grp, r))
                    return RG_ENOMEM;
            }
        }
    }
    return 0;
}

/* R13, R14, R16, R17: the new roles (into next) and where they come from,
 * given the mapped roles and the current ones (cur, filled here). */
static rg_role_source choose_roles(const rg_role_table *t, const rg_login_input *in,
                                   const uint64_t *mapped, uint64_t *cur, uint64_t *next,
                                   size_t rw)
{
    /* R13: current roles no longer in the table drop out first. */
    size_t n_cur = mark_roles(t, in->current_roles, in->n_current, cur);
    if (!t->multiple_roles)
        keep_first_bit(cur, rw);    /* R14: single-role keeps the highest */
    int any_match = bits_first(mapped, rw) >= 0;
    if (in->current_source == RG_SOURCE_DIRECTORY) {
        /* R17: directory roles are never overridden by SSO */
        memcpy(next, cur, rw * sizeof *next);
        if (n_cur == 0) {
            bit_set(next, t->default_rank);   /* R13 */
            return RG_SOURCE_DEFAULT;
        }
        return RG_SOURCE_DIRECTORY;
    }
    if (any_match) {
        /* R16/R17: a match sets the roles, overriding API-set ones */
        memcpy(next, mapped, rw * sizeof *next);
        if (!t->multiple_roles)
            keep_first_bit(next, rw);
        return RG_SOURCE_IDP;
    }
    if (in->current_source == RG_SOURCE_API && n_cur > 0) {
        memcpy(next, cur, rw * sizeof *next);   /* R17: no match keeps API roles */
        return RG_SOURCE_API;
    }
    bit_set(next, t->default_rank);          /* R17/R13: the default role */
    return RG_SOURCE_DEFAULT;
}

/* changed: the new (roles, source) against the stored ones, as sets; a
 * stored role that is unknown or repeated means the stored list differs.
 * dup: rw zeroed scratch words. */
static int roles_changed(const rg_role_table *t, const rg_login_input *in, rg_role_source src,
                         const uint64_t *next, uint64_t *dup, size_t rw)
{
    if (src != in->current_source)
        return 1;
    size_t seen_cur = 0;
    for (size_t i = 0; i < in->n_current; i++) {
        long r = rg_role_table_rank(t, in->current_roles[i]);
        if (r < 0 || !bit_get(next, (size_t)r) || bit_get(dup, (size_t)r))
            return 1;
        bit_set(dup, (size_t)r);
        seen_cur++;
    }
    return seen_cur != bits_count(next, rw);
}

/* The login record: the mappings used, i.e. matched ones whose role the
 * membership now holds because of the login (source idp). */
static int record_matches(const rg_role_table *t, matches *m, const uint64_t *next,
                          rg_role_source src, rg_resolution *out)
{
    size_t used = 0;
    if (src == RG_SOURCE_IDP)
        for (size_t i = 0; i < m->n; i++)
            if (bit_get(next, m->v[i].rank))
                m->v[used++] = m->v[i];
    if (!used)
        return 0;
    const char **g = malloc(used * sizeof *g);
    size_t *gi = malloc(used * sizeof *gi), *ri = malloc(used * sizeof *ri);
    int rc = (!g || !gi || !ri) ? RG_ENOMEM : 0;
    for (size_t i = 0; !rc && i < used; i++) {
        g[i] = m->v[i].group;
        gi[i] = i;
        ri[i] = m->v[i].rank;
    }
    if (!rc)
        rc = slugs_pooled(&out->matched_groups, g, gi, used);
    if (!rc)
        rc = slugs_pooled(&out->matched_roles, (const char *const *)t->slugs, ri, used);
    free(g);
    free(gi);
    free(ri);
    return rc;
}

int rg_core_resolve_login(const rg_role_table *t, const rg_login_input *in,
                          rg_resolution *out, rg_error *err)
{
    assert(t && in && out);
    memset(out, 0, sizeof *out);
    const size_t rw = t->role_words ? t->role_words : 1;
    const size_t kw = (t->n_keys + 63) / 64 ? (t->n_keys + 63) / 64 : 1;
    /* one zeroed block: mapped roles, current roles, new roles, keys seen,
     * and the permission union */
    uint64_t *mem = calloc(3 * rw + kw + (t->perm_words ? t->perm_words : 1), sizeof *mem);
    matches m = {0};
    if (!mem)
        goto oom;
    uint64_t *mapped = mem, *cur = mem + rw, *next = mem + 2 * rw, *seen = mem + 3 * rw;
    uint64_t *perms = seen + kw;

    if (match_groups(t, in, mapped, seen, &m))
        goto oom;
    rg_role_source src = choose_roles(t, in, mapped, cur, next, rw);
    out->source = src;
    out->created = in->current_source == RG_SOURCE_NONE;   /* R18 */
    memset(mapped, 0, rw * sizeof *mapped);   /* mapped is scratch from here on */
    out->changed = roles_changed(t, in, src, next, mapped, rw);

    if (slugs_from_bits(&out->roles, next, rw, t->slugs))
        goto oom;
    assert(out->roles.n >= 1);   /* R13 */
    perm_union(t, next, perms);
    if (slugs_from_bits(&out->permissions, perms, t->perm_words, t->perms))
        goto oom;
    if (record_matches(t, &m, next, src, out))
        goto oom;
    free(mem);
    free(m.v);
    return 0;
oom:
    free(mem);
    free(m.v);
    rg_resolution_clear(out);
    return rg_error_oom(err);
}

int rg_core_roles_assign(const rg_role_table *t, const char *const *slugs, size_t n,
                         rg_slugs *out, rg_error *err)
{
    assert(t && out);
    out->v = NULL;
    out->n = 0;
    out->pooled = 0;
    if (n == 0 || !slugs)
        return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "role_slugs",
                            "R12: a membership needs at least one role");
    uint64_t *bits = calloc(t->role_words ? t->role_words : 1, sizeof *bits);
    if (!bits)
        return rg_error_oom(err);
    for (size_t i = 0; i < n; i++) {
        long r = rg_role_table_rank(t, slugs[i]);
        if (r < 0) {
            free(bits);
            return rg_error_set(err, RG_EUNPROCESSABLE, "invalid_role", "role_slugs",
                                "R19: unknown role '%.64s'", slugs[i] ? slugs[i] : "");
        }
        bit_set(bits, (size_t)r);
    }
    /* R12: duplicates count once, so ["a","a"] is one role */
    if (!t->multiple_roles && bits_count(bits, t->role_words) > 1) {
        free(bits);
        return rg_error_set(err, RG_EUNPROCESSABLE, "multiple_roles_not_enabled", "role_slugs",
                            "R12: multiple roles are not enabled in this environment");
    }
    int rc = slugs_from_bits(out, bits, t->role_words, t->slugs);
    free(bits);
    if (rc) {
        rg_slugs_clear(out);
        return rg_error_oom(err);
    }
    return 0;
}

int rg_core_roles_keep_highest(const rg_role_table *t, const char *const *roles,
                               size_t n, rg_slugs *out)
{
    assert(t && out);
    out->v = NULL;
    out->n = 0;
    out->pooled = 0;
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        long r = rg_role_table_rank(t, roles ? roles[i] : NULL);
        if (r >= 0 && (best < 0 || r < best))
            best = r;
    }
    /* R14, and R13 when none of them is visible any more */
    const char *keep = best >= 0 ? t->slugs[best] : rg_role_table_default(t);
    if (slugs_one(out, keep)) {
        rg_slugs_clear(out);
        return RG_ENOMEM;
    }
    return 0;
}

int rg_core_roles_after_delete(const rg_role_table *t, const char *const *roles,
                               size_t n, const char *deleted, rg_slugs *out,
                               rg_role_source *source)
{
    assert(t && out && source);
    out->v = NULL;
    out->n = 0;
    out->pooled = 0;
    int held = 0;
    for (size_t i = 0; i < n && deleted; i++)
        if (roles[i] && !strcmp(roles[i], deleted))
            held = 1;
    if (!held)
        return 0;
    uint64_t *bits = calloc(t->role_words ? t->role_words : 1, sizeof *bits);
    if (!bits)
        return RG_ENOMEM;
    /* t no longer shows `deleted`, so marking skips it (and any other stale
     * role) by itself. */
    size_t left = mark_roles(t, roles, n, bits);
    int rc;
    if (!t->multiple_roles || left == 0) {
        /* R20 single-role, R13 none left: the (replacement) default role */
        rc = slugs_one(out, rg_role_table_default(t));
        *source = RG_SOURCE_DEFAULT;
    } else {
        rc = slugs_from_bits(out, bits, t->role_words, t->slugs);
    }
    free(bits);
    if (rc) {
        rg_slugs_clear(out);
        return RG_ENOMEM;
    }
    return 1;
}

int rg_core_permissions_of(const rg_role_table *t, const char *const *roles, size_t n,
                           rg_slugs *out)
{
    assert(t && out);
    out->v = NULL;
    out->n = 0;
    out->pooled = 0;
    size_t rw = t->role_words ? t->role_words : 1;
    uint64_t *mem = calloc(rw + (t->perm_words ? t->perm_words : 1), sizeof *mem);
    if (!mem)
        return RG_ENOMEM;
    mark_roles(t, roles, n, mem);
    perm_union(t, mem, mem + rw);
    int rc = slugs_from_bits(out, mem + rw, t->perm_words, t->perms);
    free(mem);
    if (rc) {
        rg_slugs_clear(out);
        return RG_ENOMEM;
    }
    return 0;
}
