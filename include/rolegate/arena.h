/* arena.h: the one arena of rolegate (util layer, libc only, so core may use
 * it): memory bump-allocated from a list of blocks and freed in one go, with
 * cleanups run at that moment. The http layer gives every request one
 * (rg_http_arena: handlers never free piecemeal); the store builds a role
 * table's strings in one while it loads them. Arrays that grow and outlive a
 * request grow with rg_grow, the one doubling loop; text and bytes built
 * piece by piece go into an rg_buf. */
#ifndef ROLEGATE_ARENA_H
#define ROLEGATE_ARENA_H

#include <stddef.h>

typedef struct rg_arena rg_arena;

/* New arena; memory comes in blocks of at least chunk bytes (0 = 4 KiB).
 * NULL on out of memory. Free with rg_arena_free. */
rg_arena *rg_arena_new(size_t chunk);
/* Frees every allocation and runs every cleanup (last registered first).
 * Accepts NULL. */
void rg_arena_free(rg_arena *a);
/* Runs the cleanups and frees what was allocated, keeping one block for
 * the next use: a is empty and ready, as from rg_arena_new. */
void rg_arena_reset(rg_arena *a);
/* n bytes aligned for any type, owned by the arena; NULL on OOM. */
void *rg_arena_alloc(rg_arena *a, size_t n);
/* n elements of size bytes, zeroed; NULL on OOM or overflow. */
void *rg_arena_calloc(rg_arena *a, size_t n, size_t size);
/* Copies (NUL-terminated) into the arena; NULL on OOM or s NULL. */
char *rg_arena_strdup(rg_arena *a, const char *s);
char *rg_arena_strndup(rg_arena *a, const char *s, size_t n);
char *rg_arena_printf(rg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs fn(p) when the arena is freed (e.g. json_decref for a json_t the
 * handler builds). Returns 0 or -1 on OOM (then fn(p) has ALREADY run). */
int rg_arena_on_free(rg_arena *a, void (*fn)(void *), void *p);

/* Room for one more element: when n == *cap, the array *(T **)pp of
 * elements of size bytes is reallocated to twice *cap (first when *cap is
 * 0) and *cap updated. 0, or -1 on out of memory or size overflow, with
 * *pp and *cap unchanged (the caller still owns the old array). */
int rg_grow(void *pp, size_t n, size_t *cap, size_t size, size_t first);

/* ---- growable buffer --------------------------------------------------- */
typedef struct rg_buf { char *data; size_t len, cap; int oom; } rg_buf;
/* All functions keep data NUL-terminated; on allocation failure oom is set
 * and later appends are ignored. rg_buf_free frees data (accepts NULL). */
void rg_buf_append(rg_buf *b, const void *p, size_t n);
void rg_buf_puts(rg_buf *b, const char *s);
void rg_buf_printf(rg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rg_buf_free(rg_buf *b);
/* Hands data to the caller (free() it) and resets b. NULL if oom. */
char *rg_buf_take(rg_buf *b);
/* A body received piece by piece and refused past max bytes: set max, give
 * rg_buf_capped_write as a libcurl CURLOPT_WRITEFUNCTION (its signature; no
 * curl here) with the struct as CURLOPT_WRITEDATA. A piece past max sets
 * over and answers 0, which aborts the transfer (CURLOPT_MAXFILESIZE does
 * not stop a running one on curl 7.88, LIBRARIES.md §6); so does oom. */
typedef struct rg_buf_capped { rg_buf body; size_t max; int over; } rg_buf_capped;
size_t rg_buf_capped_write(char *p, size_t size, size_t n, void *capped);

#endif
