/* test_util_arena.c: the arena of arena.h (allocations outlive nothing but
 * the arena, cleanups run last-registered first) and rg_grow, the one
 * doubling loop of every growing array (first capacity, doubling, the old
 * array kept on a refused growth). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "rolegate/arena.h"

static char order[8];
static size_t norder;

static void mark(void *p)
{
    order[norder++] = *(const char *)p;
}

static void test_arena_allocations_and_cleanups_in_reverse(void **state)
{
    (void)state;
    rg_arena *a = rg_arena_new(64);   /* small blocks: several are chained */
    assert_non_null(a);
    char *s[40];
    for (int i = 0; i < 40; i++) {
        s[i] = rg_arena_printf(a, "item-%d", i);
        assert_non_null(s[i]);
        assert_int_equal((uintptr_t)rg_arena_alloc(a, 24) % 16, 0);
    }
    for (int i = 0; i < 40; i++) {   /* nothing overwrote an earlier string */
        char want[32];
        snprintf(want, sizeof want, "item-%d", i);
        assert_string_equal(s[i], want);
    }
    assert_string_equal(rg_arena_strndup(a, "abcdef", 3), "abc");
    assert_null(rg_arena_strdup(a, NULL));
    static const char x = 'x', y = 'y';
    norder = 0;
    assert_int_equal(rg_arena_on_free(a, mark, (void *)&x), 0);
    assert_int_equal(rg_arena_on_free(a, mark, (void *)&y), 0);
    assert_int_equal(norder, 0);
    rg_arena_free(a);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, "yx", 2);
    rg_arena_free(NULL);
}

/* rg_arena_reset (issue 17: a thread's next request reuses the arena):
 * the cleanups run once, newest first, and not again at the next reset
 * or free; the arena serves again afterwards, small and big requests. */
static void test_arena_reset_runs_cleanups_and_reuses_a_block(void **state)
{
    (void)state;
    rg_arena *a = rg_arena_new(256);
    assert_non_null(a);
    static char x = 'x', y = 'y';
    norder = 0;
    char *first = rg_arena_alloc(a, 16);
    assert_non_null(first);
    assert_int_equal(rg_arena_on_free(a, mark, &x), 0);
    assert_non_null(rg_arena_alloc(a, 4096));   /* a one-off block */
    for (int i = 0; i < 30; i++)                /* several chunk blocks */
        assert_non_null(rg_arena_alloc(a, 64));
    assert_int_equal(rg_arena_on_free(a, mark, &y), 0);
    rg_arena_reset(a);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, "yx", 2);
    /* empty and usable again: strings laid out one after the other in
     * the block, a one-off block beside them, nothing overwritten */
    char *again = rg_arena_strdup(a, "0123456789abcde");
    assert_non_null(again);
    char *second = rg_arena_alloc(a, 16);
    assert_ptr_equal(second, again + 16);
    memset(second, 'z', 16);
    char *big = rg_arena_calloc(a, 1, 1000);
    assert_non_null(big);
    assert_int_equal(big[999], 0);
    assert_string_equal(again, "0123456789abcde");
    rg_arena_reset(a);
    assert_int_equal(norder, 2);   /* cleanups ran once, not again */
    assert_int_equal(rg_arena_on_free(a, mark, &x), 0);
    rg_arena_free(a);
    assert_int_equal(norder, 3);
    assert_int_equal(order[2], 'x');
    rg_arena_reset(NULL);
}

static void test_grow_starts_at_first_and_doubles(void **state)
{
    (void)state;
    int *v = NULL;
    size_t n = 0, cap = 0;
    size_t caps[6], ncaps = 0;
    for (int i = 0; i < 100; i++) {
        size_t before = cap;
        assert_int_equal(rg_grow(&v, n, &cap, sizeof *v, 4), 0);
        if (cap != before)
            caps[ncaps++] = cap;
        v[n++] = i;
    }
    assert_int_equal(ncaps, 6);
    size_t want[] = {4, 8, 16, 32, 64, 128};
    assert_memory_equal(caps, want, sizeof want);
    for (int i = 0; i < 100; i++)   /* realloc kept every element */
        assert_int_equal(v[i], i);
    int *same = v;
    assert_int_equal(rg_grow(&v, 50, &cap, sizeof *v, 4), 0);   /* room left: no-op */
    assert_ptr_equal(v, same);
    assert_int_equal(cap, 128);
    free(v);
}

static void test_grow_refuses_an_overflow_and_keeps_the_array(void **state)
{
    (void)state;
    char *v = malloc(8);
    assert_non_null(v);
    memcpy(v, "kept", 5);
    size_t cap = SIZE_MAX / 2 + 1;   /* doubling wraps */
    char *same = v;
    assert_int_equal(rg_grow(&v, cap, &cap, 1, 4), -1);
    assert_ptr_equal(v, same);
    assert_int_equal(cap, SIZE_MAX / 2 + 1);
    size_t cap2 = SIZE_MAX / 16;     /* bytes overflow */
    assert_int_equal(rg_grow(&v, cap2, &cap2, 16, 4), -1);
    assert_int_equal(cap2, SIZE_MAX / 16);
    assert_string_equal(v, "kept");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_allocations_and_cleanups_in_reverse),
        cmocka_unit_test(test_arena_reset_runs_cleanups_and_reuses_a_block),
        cmocka_unit_test(test_grow_starts_at_first_and_doubles),
        cmocka_unit_test(test_grow_refuses_an_overflow_and_keeps_the_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
