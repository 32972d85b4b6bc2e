/* arena.c: the arena of arena.h (STYLE.md, nginx model): memory is
 * bump-allocated from a list of blocks and freed in one go when its owner is
 * done (for the http layer, when the request completes); cleanups
 * (json_decref, free) registered with rg_arena_on_free run at that moment,
 * so handlers never free piecemeal. rg_grow is the doubling realloc every
 * growing array uses; rg_buf the growable NUL-terminated buffer (capped for
 * the bodies of HTTP fetches: rg_buf_capped). */
#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/arena.h"

#define ALIGN 16u

typedef struct block {
    struct block *next;
    size_t        used, cap;
    _Alignas(16) unsigned char data[];
} block;

typedef struct cleanup {
    struct cleanup *next;
    void          (*fn)(void *);
    void           *p;
} cleanup;

struct rg_arena {
    block   *head;
    size_t   chunk;
    cleanup *cleanups;
};

rg_arena *rg_arena_new(size_t chunk)
{
    rg_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->chunk = chunk ? chunk : 4096;
    return a;
}

void rg_arena_free(rg_arena *a)
{
    if (!a)
        return;
    for (cleanup *c = a->cleanups; c; c = c->next)   /* newest first */
        c->fn(c->p);
    block *b = a->head;
    while (b) {
        block *n = b->next;
        free(b);
        b = n;
    }
    free(a);
}

/* As rg_arena_free, but a's first block of its chunk size stays for the
 * next owner: a request reusing its thread's arena (issue 17) mallocs
 * nothing until it outgrows that block. */
void rg_arena_reset(rg_arena *a)
{
    if (!a)
        return;
    for (cleanup *c = a->cleanups; c; c = c->next)
        c->fn(c->p);
    a->cleanups = NULL;
    block *keep = NULL, *b = a->head;
    while (b) {
        block *n = b->next;
        if (!keep && b->cap == a->chunk) {
            keep = b;
        } else {
            free(b);
        }
        b = n;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}

void *rg_arena_alloc(rg_arena *a, size_t n)
{
    assert(a);
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need < n)
        return NULL;
    block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > a->chunk ? need : a->chunk;
        if (cap > SIZE_MAX - sizeof(block))
            return NULL;
        block *nb = malloc(sizeof(block) + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && need > a->chunk && b->cap - b->used >= ALIGN) {
            /* a big one-off block goes behind the current block so the
             * current block's free space stays in use */
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            return nb->data;
        }
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

char *rg_arena_strndup(rg_arena *a, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = rg_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *rg_arena_calloc(rg_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = rg_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *rg_arena_strdup(rg_arena *a, const char *s)
{
    return s ? rg_arena_strndup(a, s, strlen(s)) : NULL;
}

char *rg_arena_printf(rg_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = rg_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int rg_arena_on_free(rg_arena *a, void (*fn)(void *), void *p)
{
    cleanup *c = rg_arena_alloc(a, sizeof *c);
    if (!c) {
        fn(p);
        return -1;
    }
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

int rg_grow(void *pp, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : (first ? first : 1);
    if (nc < *cap || size == 0 || nc > SIZE_MAX / size)
        return -1;
    void *old;
    memcpy(&old, pp, sizeof old);   /* pp is a T **: read it as bytes */
    void *p = realloc(old, nc * size);
    if (!p)
        return -1;
    memcpy(pp, &p, sizeof p);
    *cap = nc;
    /* cppcheck-suppress memleak ; p escaped through the memcpy into *pp */
    return 0;
}

static int buf_grow(rg_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void rg_buf_append(rg_buf *b, const void *p, size_t n)
{
    if (buf_grow(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void rg_buf_puts(rg_buf *b, const char *s)
{
    rg_buf_append(b, s, strlen(s));
}

void rg_buf_printf(rg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_grow(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rg_buf_free(rg_buf *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

size_t rg_buf_capped_write(char *p, size_t size, size_t n, void *capped)
{
    rg_buf_capped *b = capped;
    size_t total = size * n;
    if (b->body.len + total > b->max) {
        b->over = 1;
        return 0;
    }
    rg_buf_append(&b->body, p, total);
    return b->body.oom ? 0 : total;
}

char *rg_buf_take(rg_buf *b)
{
    char *d = b->oom ? NULL : b->data;
    if (b->oom)
        free(b->data);
    if (!d && !b->oom)
        d = calloc(1, 1);
    memset(b, 0, sizeof *b);
    return d;
}
