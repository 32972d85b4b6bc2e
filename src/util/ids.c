/* ids.c: ULIDs (48-bit ms timestamp + 80 random bits, Crockford base32) and
 * the "<prefix>_<ULID>" ids of RBAC.md. Monotonic within the process: two ids
 * made in the same millisecond differ by an increment of the random part, so
 * ids sort by creation. */
#include <pthread.h>
#include <string.h>
#include "rolegate/util.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static pthread_mutex_t ulid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static unsigned char last_rand[10];

/* This thread's random bytes, drawn RAND_POOL at a time: the draw (a
 * getrandom(2) each new millisecond) was made under ulid_lock, and the
 * request threads queued behind it (issue 17: ~0.2 futex calls per /auth). */
#define RAND_POOL 1280
static _Thread_local unsigned char pool[RAND_POOL];
static _Thread_local size_t pool_left;

static void fresh_random(unsigned char r[10])
{
    if (pool_left < 10) {
        rg_random_bytes(pool, sizeof pool);
        pool_left = sizeof pool;
    }
    pool_left -= 10;
    memcpy(r, pool + pool_left, 10);
    memset(pool + pool_left, 0, 10);   /* a byte is used once, then gone */
}

void rg_ulid_new(char out[RG_ULID_LEN + 1])
{
    unsigned char b[16], fresh[10];
    fresh_random(fresh);   /* outside the lock; unused when ms repeats */
    fresh[0] &= 0x7f;   /* room to increment without overflow */
    pthread_mutex_lock(&ulid_lock);
    int64_t ms = rg_now_ms();
    if (ms <= last_ms) {
        ms = last_ms;
        for (int i = 9; i >= 0; i--)  /* increment the 80-bit random part */
            if (++last_rand[i] != 0)
                break;
    } else {
        memcpy(last_rand, fresh, sizeof last_rand);
        last_ms = ms;
    }
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
    memcpy(b + 6, last_rand, 10);
    pthread_mutex_unlock(&ulid_lock);
    /* 128 bits -> 26 chars of 5 bits; the first char holds the top 3 bits
     * (26*5 = 130: two leading zero bits). */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; i++) {
        hi = hi << 8 | b[i];
        lo = lo << 8 | b[8 + i];
    }
    for (int c = RG_ULID_LEN - 1; c >= 0; c--) {   /* the low 5 bits, then shift */
        out[c] = crockford[lo & 31];
        lo = lo >> 5 | hi << 59;
        hi >>= 5;
    }
    out[RG_ULID_LEN] = 0;
}

void rg_id_new(const char *prefix, char *out, size_t outsz)
{
    char u[RG_ULID_LEN + 1];
    rg_ulid_new(u);
    size_t pl = strlen(prefix);
    if (outsz < pl + RG_ULID_LEN + 2) {
        if (outsz)
            out[0] = 0;
        return;
    }
    memcpy(out, prefix, pl);
    out[pl] = '_';
    memcpy(out + pl + 1, u, RG_ULID_LEN + 1);
}

int rg_id_valid(const char *prefix, const char *s)
{
    if (!s)
        return 0;
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0 || s[pl] != '_')
        return 0;
    const char *u = s + pl + 1;
    if (strlen(u) != RG_ULID_LEN || u[0] > '7')
        return 0;
    for (int i = 0; i < RG_ULID_LEN; i++)
        if (!strchr(crockford, u[i]) || u[i] == 0)
            return 0;
    return 1;
}
