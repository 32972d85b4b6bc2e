/* table_impl.h: the private layout of rg_role_table, shared by table.c (which
 * builds it, R7-R11, R15) and resolve.c (which reads it, R12-R17, R20).
 * Only types and static inline helpers live here: no exported functions.
 * Everything a table owns comes from its arena and is freed in one go. */
#ifndef ROLEGATE_CORE_TABLE_IMPL_H
#define ROLEGATE_CORE_TABLE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "rolegate/arena.h"
#include "rolegate/core.h"

/* An open-addressing index: a power-of-two array of slots, each 0 (empty)
 * or (upper 32 bits of the key's hash << 32 | item index + 1). The tag
 * avoids most string compares; 8-byte slots keep the probe cache-friendly. */
typedef struct core_index {
    uint64_t *slots;
    size_t mask;
} core_index;

typedef struct core_role {
    const char *slug;
    rg_role_type type;
    const char *const *perms;   /* sorted, unique, into the table's list */
    size_t n_perms;
} core_role;

/* One (connection, idp group) key of the mappings and the roles it maps to
 * (ranks, ascending = priority order, unique). */
typedef struct core_mapkey {
    const char *group;
    size_t group_len;
    uint32_t conn;
    uint32_t off, n;            /* ranks[off .. off+n) */
} core_mapkey;


struct rg_role_table {
    rg_arena *arena;
    uint64_t version;
    int multiple_roles;
    const char *organization_id;        /* NULL: environment alone */

    core_role *roles;                   /* in effective priority order */
    const char **slugs;                 /* roles[i].slug, for the index */
    size_t n_roles;
    size_t role_words;                  /* 64-bit words of a role bitmap */
    size_t default_rank;
    core_index slug_ix;

    const char **perms;                 /* every permission, sorted, unique */
    size_t n_perms;
    size_t perm_words;                  /* 64-bit words of a permission bitmap */
    uint64_t *perm_bits;                /* n_roles rows of perm_words */

    const char **conns;                 /* distinct connection ids */
    size_t n_conns;
    core_index conn_ix;
    core_mapkey *keys;
    size_t n_keys;
    core_index key_ix;
    uint32_t *ranks;                    /* pool for core_mapkey.off/n */
};

/* A fast string hash: two independent lanes of 8 bytes each per step (so
 * the multiply chains overlap), a multiply-xorshift mix, and the murmur3
 * finalizer; seeded so (connection, group) keys hash apart. */
static inline uint64_t core_hash(const char *s, size_t n, uint64_t seed)
{
    const uint64_t m1 = 0x9E3779B97F4A7C15ull, m2 = 0xD6E8FEB86659FD93ull;
    uint64_t a = seed ^ (n * m1), b = ~seed + n;
    while (n >= 16) {
        uint64_t k1, k2;
        memcpy(&k1, s, 8);
        memcpy(&k2, s + 8, 8);
        a = (a ^ k1) * m1;
        a ^= a >> 29;
        b = (b ^ k2) * m2;
        b ^= b >> 31;
        s += 16;
        n -= 16;
    }
    uint64_t k1 = 0, k2 = 0;
    if (n >= 8) {
        memcpy(&k1, s, 8);
        memcpy(&k2, s + 8, n - 8);
    } else {
        memcpy(&k1, s, n);
    }
    a = (a ^ k1) * m1;
    b = (b ^ k2 ^ ((uint64_t)n << 59)) * m2;
    uint64_t h = a ^ (b >> 32 | b << 32);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t core_key_seed(uint32_t conn)
{
    return 0x5bd1e9955bd1e995ull + (uint64_t)conn * 0x2545F4914F6CDD1Dull;
}

/* Index of the string key among keys[] through ix, or -1. */
static inline long core_index_find_str(const core_index *ix, const char *const *keys,
                                       const char *key)
{
    if (!ix->slots || !key)
        return -1;
    size_t len = strlen(key);
    uint64_t h = core_hash(key, len, 0);
    uint64_t tag = h >> 32;
    for (size_t i = (size_t)h & ix->mask;; i = (i + 1) & ix->mask) {
        uint64_t s = ix->slots[i];
        if (!s)
            return -1;
        if ((s >> 32) == tag) {
            size_t item = (size_t)(s & 0xffffffffu) - 1;
            if (!strcmp(keys[item], key))
                return (long)item;
        }
    }
}

/* The mapping key of (conn, group) whose hash is h, or NULL. */
static inline const core_mapkey *core_find_key_h(const rg_role_table *t, uint32_t conn,
                                                 const char *group, size_t len, uint64_t h)
{
    uint64_t tag = h >> 32;
    for (size_t i = (size_t)h & t->key_ix.mask;; i = (i + 1) & t->key_ix.mask) {
        uint64_t s = t->key_ix.slots[i];
        if (!s)
            return NULL;
        if ((s >> 32) == tag) {
            const core_mapkey *k = &t->keys[(s & 0xffffffffu) - 1];
            if (k->conn == conn && k->group_len == len && !memcmp(k->group, group, len))
                return k;
        }
    }
}

#endif
