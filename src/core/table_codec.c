/* table_codec.c: the binary form of a compiled role table (core_codec.h),
 * read from table_impl.h. Decoding turns the blob back into an rg_table_spec
 * whose own order is the encoded effective order (R8-R11) and whose default
 * is the encoded effective default (R7/R9), then rebuilds with
 * rg_role_table_build, so every invariant of table.c is checked again.
 * Layout (integers little-endian; str = u32 length, bytes, NUL):
 *   "RGT1" u64 version, u32 flags (1 multiple_roles, 2 has org) [str org]
 *   u32 n_perms {str}  u32 n_roles {str slug, u32 type, u32 n, u32 perm[n]}
 *   u32 default_rank  u32 n_conns {str}  u32 n_keys {u32 conn, str group,
 *   u32 n, u32 rank[n]}  "END1" */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/core.h"
#include "rolegate/core_codec.h"
#include "table_impl.h"

static const char codec_magic[4] = {'R', 'G', 'T', '1'};
static const char codec_end[4] = {'E', 'N', 'D', '1'};

/* ---- writing ------------------------------------------------------------ */
static void w_u32(rg_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    rg_buf_append(b, x, 4);
}

static void w_u64(rg_buf *b, uint64_t v)
{
    w_u32(b, (uint32_t)v);
    w_u32(b, (uint32_t)(v >> 32));
}

static void w_str(rg_buf *b, const char *s, size_t n)
{
    if (n > UINT32_MAX - 1) {
        b->oom = 1;
        return;
    }
    w_u32(b, (uint32_t)n);
    rg_buf_append(b, s, n);
    rg_buf_append(b, "", 1);
}

int rg_core_table_encode(const rg_role_table *t, char **out, size_t *len)
{
    assert(t && out && len);
    *out = NULL;
    *len = 0;
    rg_buf b = {0};
    rg_buf_append(&b, codec_magic, 4);
    w_u64(&b, t->version);
    uint32_t flags = (t->multiple_roles ? 1u : 0u) | (t->organization_id ? 2u : 0u);
    w_u32(&b, flags);
    if (t->organization_id)
        w_str(&b, t->organization_id, strlen(t->organization_id));
    w_u32(&b, (uint32_t)t->n_perms);
    for (size_t i = 0; i < t->n_perms; i++)
        w_str(&b, t->perms[i], strlen(t->perms[i]));
    w_u32(&b, (uint32_t)t->n_roles);
    for (size_t r = 0; r < t->n_roles; r++) {
        const core_role *role = &t->roles[r];
        w_str(&b, role->slug, strlen(role->slug));
        w_u32(&b, (uint32_t)role->type);
        w_u32(&b, (uint32_t)role->n_perms);
        /* the role's permissions are strings of t->perms (sorted, unique):
         * write their indexes, found by binary search */
        for (size_t p = 0; p < role->n_perms; p++) {
            size_t lo = 0, hi = t->n_perms, ix = SIZE_MAX;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(t->perms[mid], role->perms[p]);
                if (c == 0) {
                    ix = mid;
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            assert(ix != SIZE_MAX);
            w_u32(&b, (uint32_t)ix);
        }
    }
    w_u32(&b, (uint32_t)t->default_rank);
    w_u32(&b, (uint32_t)t->n_conns);
    for (size_t c = 0; c < t->n_conns; c++)
        w_str(&b, t->conns[c], strlen(t->conns[c]));
    w_u32(&b, (uint32_t)t->n_keys);
    for (size_t k = 0; k < t->n_keys; k++) {
        const core_mapkey *key = &t->keys[k];
        w_u32(&b, key->conn);
        w_str(&b, key->group, key->group_len);
        w_u32(&b, key->n);
        for (uint32_t i = 0; i < key->n; i++)
            w_u32(&b, t->ranks[key->off + i]);
    }
    rg_buf_append(&b, codec_end, 4);
    size_t n = b.len;
    if (!(*out = rg_buf_take(&b)))
        return RG_ENOMEM;
    *len = n;
    return 0;
}

/* ---- reading ------------------------------------------------------------ */
typedef struct rbuf {
    const unsigned char *p;
    size_t len, off;
    int bad;
} rbuf;

static uint32_t r_u32(rbuf *b)
{
    if (b->bad || b->len - b->off < 4) {
        b->bad = 1;
        return 0;
    }
    const unsigned char *x = b->p + b->off;
    b->off += 4;
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static uint64_t r_u64(rbuf *b)
{
    uint64_t lo = r_u32(b);
    uint64_t hi = r_u32(b);
    return lo | hi << 32;
}

/* A string of the blob, borrowed: NUL-terminated in place, no inner NUL. */
static const char *r_str(rbuf *b, size_t *n_out)
{
    uint32_t n = r_u32(b);
    if (b->bad || b->len - b->off < (size_t)n + 1) {
        b->bad = 1;
        return NULL;
    }
    const char *s = (const char *)b->p + b->off;
    if (s[n] != '\0' || memchr(s, '\0', n)) {
        b->bad = 1;
        return NULL;
    }
    b->off += (size_t)n + 1;
    if (n_out)
        *n_out = n;
    return s;
}

/* A count that cannot exceed what the remaining bytes could hold, so a
 * corrupt count never drives a huge allocation. */
static uint32_t r_count(rbuf *b, size_t min_item)
{
    uint32_t n = r_u32(b);
    if (!b->bad && (size_t)n > (b->len - b->off) / min_item)
        b->bad = 1;
    return b->bad ? 0 : n;
}

#define blob_error(err) \
    rg_error_set((err), RG_EINTERNAL, "invalid_role_table_blob", NULL, \
                 "the cached role table is not a well-formed table blob")

/* What the sections of a blob decode into (the strings borrowed from it),
 * before the table is rebuilt from them. */
typedef struct decoded {
    const char      **perms;            /* n_perms */
    uint32_t          n_perms;
    const char      **role_perm_pool;   /* the roles' permission lists */
    const char      **order;            /* role slugs by rank, n_roles */
    uint32_t          n_roles, default_rank;
    rg_role_spec     *env, *org;
    size_t            n_env, n_org;
    const char      **conns;            /* n_conns */
    uint32_t          n_conns;
    rg_group_mapping *maps;
    size_t            n_maps;
} decoded;

static void decoded_free(decoded *d)
{
    free(d->perms);
    free(d->role_perm_pool);
    free(d->order);
    free(d->env);
    free(d->org);
    free(d->conns);
    free(d->maps);
}

/* Version, flags (bit 0 multiple_roles, bit 1 an organization id follows). */
static void read_header(rbuf *b, rg_table_spec *spec)
{
    spec->version = r_u64(b);
    uint32_t flags = r_u32(b);
    if (flags & ~3u)
        b->bad = 1;
    spec->multiple_roles = (flags & 1u) ? 1 : 0;
    if (flags & 2u)
        spec->organization_id = r_str(b, NULL);
}

/* A counted list of strings (permissions, connections) into *v, *n. */
static int read_strs(rbuf *b, const char ***v, uint32_t *n)
{
    *n = r_count(b, 5);
    *v = calloc(*n ? *n : 1, sizeof **v);
    if (!*v)
        return RG_ENOMEM;
    for (uint32_t i = 0; i < *n && !b->bad; i++)
        (*v)[i] = r_str(b, NULL);
    return 0;
}

/* Each role: slug, type, its permissions as indexes into perms; then the
 * default's rank. */
static int read_roles(rbuf *b, decoded *d)
{
    uint32_t n_roles = d->n_roles = r_count(b, 13);
    /* every permission reference takes 4 bytes of the blob: the remaining
     * length bounds the pool */
    size_t pool_cap = (b->len - b->off) / 4 + 1;
    d->role_perm_pool = calloc(pool_cap, sizeof *d->role_perm_pool);
    d->order = calloc(n_roles ? n_roles : 1, sizeof *d->order);
    d->env = calloc(n_roles ? n_roles : 1, sizeof *d->env);
    d->org = calloc(n_roles ? n_roles : 1, sizeof *d->org);
    if (!d->role_perm_pool || !d->order || !d->env || !d->org)
        return RG_ENOMEM;
    size_t pool_used = 0;
    for (uint32_t r = 0; r < n_roles && !b->bad; r++) {
        rg_role_spec rs;
        rs.slug = r_str(b, NULL);
        uint32_t type = r_u32(b);
        uint32_t np = r_count(b, 4);
        if (b->bad || (type != RG_ROLE_ENV && type != RG_ROLE_ORG) || np > pool_cap - pool_used) {
            b->bad = 1;
            break;
        }
        rs.type = (rg_role_type)type;
        rs.permissions = d->role_perm_pool + pool_used;
        rs.n_permissions = np;
        for (uint32_t p = 0; p < np; p++) {
            uint32_t ix = r_u32(b);
            if (ix >= d->n_perms) {
                b->bad = 1;
                break;
            }
            d->role_perm_pool[pool_used++] = d->perms[ix];
        }
        d->order[r] = rs.slug;
        if (rs.type == RG_ROLE_ENV)
            d->env[d->n_env++] = rs;
        else
            d->org[d->n_org++] = rs;
    }
    d->default_rank = r_u32(b);
    if (!b->bad && d->default_rank >= n_roles)
        b->bad = 1;
    return 0;
}

/* Each mapping key: connection index, group, the ranks it maps to; one
 * rg_group_mapping per rank. */
static int read_mappings(rbuf *b, decoded *d)
{
    /* one mapping per rank reference, 4 bytes each: bounded by the blob */
    uint32_t n_keys = r_count(b, 13);
    size_t maps_cap = (b->len - b->off) / 4 + 1;
    d->maps = calloc(maps_cap, sizeof *d->maps);
    if (!d->maps)
        return RG_ENOMEM;
    for (uint32_t k = 0; k < n_keys && !b->bad; k++) {
        uint32_t conn = r_u32(b);
        const char *group = r_str(b, NULL);
        uint32_t nr = r_count(b, 4);
        if (b->bad || conn >= d->n_conns || nr > maps_cap - d->n_maps) {
            b->bad = 1;
            break;
        }
        for (uint32_t i = 0; i < nr; i++) {
            uint32_t rank = r_u32(b);
            if (rank >= d->n_roles) {
                b->bad = 1;
                break;
            }
            d->maps[d->n_maps++] = (rg_group_mapping){.connection_id = d->conns[conn],
                                                      .idp_group = group,
                                                      .role_slug = d->order[rank]};
        }
    }
    return 0;
}

/* R8-R11: the encoded order is the effective one: pass it as the own order
 * so the rebuild places every role exactly there. R7/R9: the effective
 * default becomes the (only) default. */
static int rebuild(rg_table_spec *spec, const decoded *d, rg_role_table **out, rg_error *err)
{
    spec->env_roles = d->env;
    spec->n_env_roles = d->n_env;
    spec->org_roles = d->org;
    spec->n_org_roles = d->n_org;
    spec->org_order = d->order;
    spec->n_org_order = d->n_roles;
    spec->env_default = d->order[d->default_rank];
    spec->mappings = d->maps;
    spec->n_mappings = d->n_maps;
    rg_error e;
    memset(&e, 0, sizeof e);
    *out = rg_role_table_build(spec, &e);
    if (*out)
        return 0;
    return e.status == 500 && !strcmp(e.code, "out_of_memory")
               ? rg_error_oom(err)
               : blob_error(err);
}

int rg_core_table_decode(const void *blob, size_t len, rg_role_table **out, rg_error *err)
{
    assert(out);
    *out = NULL;
    if (!blob || len < 8 || len > RG_TABLE_BLOB_MAX || memcmp(blob, codec_magic, 4))
        return blob_error(err);
    rbuf b = {.p = blob, .len = len, .off = 4};
    decoded d;
    memset(&d, 0, sizeof d);
    rg_table_spec spec;
    memset(&spec, 0, sizeof spec);
    int rc;
    read_header(&b, &spec);
    if (read_strs(&b, &d.perms, &d.n_perms) || read_roles(&b, &d) ||
        read_strs(&b, &d.conns, &d.n_conns) || read_mappings(&b, &d))
        rc = rg_error_oom(err);
    else if (b.bad || b.len - b.off != 4 || memcmp(b.p + b.off, codec_end, 4))
        rc = blob_error(err);
    else
        rc = rebuild(&spec, &d, out, err);
    decoded_free(&d);
    return rc;
}

/* ---- equality ----------------------------------------------------------- */
static int str_eq_null(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int rg_core_table_equal(const rg_role_table *a, const rg_role_table *b)
{
    assert(a && b);
    if (a->version != b->version || a->multiple_roles != b->multiple_roles ||
        !str_eq_null(a->organization_id, b->organization_id) || a->n_roles != b->n_roles ||
        a->default_rank != b->default_rank || a->n_perms != b->n_perms ||
        a->n_conns != b->n_conns || a->n_keys != b->n_keys)
        return 0;
    for (size_t r = 0; r < a->n_roles; r++) {
        const core_role *x = &a->roles[r], *y = &b->roles[r];
        if (strcmp(x->slug, y->slug) || x->type != y->type || x->n_perms != y->n_perms)
            return 0;
        for (size_t p = 0; p < x->n_perms; p++)
            if (strcmp(x->perms[p], y->perms[p]))
                return 0;
    }
    /* mappings: the same (connection, group) keys, each with the same ranks;
     * key and connection numbering may differ */
    for (size_t k = 0; k < a->n_keys; k++) {
        const core_mapkey *ka = &a->keys[k];
        long cb = core_index_find_str(&b->conn_ix, b->conns, a->conns[ka->conn]);
        if (cb < 0)
            return 0;
        uint64_t h = core_hash(ka->group, ka->group_len, core_key_seed((uint32_t)cb));
        const core_mapkey *kb = core_find_key_h(b, (uint32_t)cb, ka->group, ka->group_len, h);
        if (!kb || kb->n != ka->n ||
            memcmp(a->ranks + ka->off, b->ranks + kb->off, ka->n * sizeof *a->ranks))
            return 0;
    }
    return 1;
}
