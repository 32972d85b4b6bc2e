/* test_util_metrics.c: the metrics registry of rolegate/metrics.h counts
 * without a lock (issue 17): threads adding to one counter and observing
 * into one histogram at once lose no add, series made concurrently are
 * made once, and a histogram rendered while it is written keeps +Inf equal
 * to its count and never below its buckets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "rolegate/metrics.h"

#define THREADS 4
#define ROUNDS  20000

static void *adder(void *arg)
{
    char label[16];
    snprintf(label, sizeof label, "%d", (int)(intptr_t)arg);
    for (int i = 0; i < ROUNDS; i++) {
        rg_metrics_add("rolegate_auth_requests_total", "status", "200", NULL, NULL, 1);
        /* one new series per thread and round 0: created once each */
        rg_metrics_add("rolegate_login_successes_total", "connection", label, NULL, NULL, 1);
        rg_metrics_observe("rolegate_auth_duration_seconds", NULL, NULL,
                           (i % 3) ? 0.0002 : 0.003);
    }
    return NULL;
}

/* The number after "<series> " in text, or -1. */
static long long value_of(const char *text, const char *series)
{
    char key[160];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *p = strstr(text, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void test_concurrent_adds_lose_nothing(void **st)
{
    (void)st;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, (void *)(intptr_t)i), 0);
    /* rendered while the writers run: +Inf never below the last bucket */
    for (int k = 0; k < 50; k++) {
        char *mid = rg_metrics_render();
        long long inf = value_of(mid, "rolegate_auth_duration_seconds_bucket{le=\"+Inf\"}");
        long long b10 = value_of(mid, "rolegate_auth_duration_seconds_bucket{le=\"10\"}");
        if (inf >= 0)
            assert_true(inf >= b10);
        free(mid);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = rg_metrics_render();
    assert_non_null(text);
    long long n = (long long)THREADS * ROUNDS;
    assert_int_equal(value_of(text, "rolegate_auth_requests_total{status=\"200\"}"), n);
    assert_int_equal(value_of(text, "rolegate_auth_duration_seconds_count"), n);
    assert_int_equal(value_of(text, "rolegate_auth_duration_seconds_bucket{le=\"+Inf\"}"), n);
    /* 0.003 s lands in le=0.005, 0.0002 s in le=0.0005: one in three is slow */
    long long slow = (long long)THREADS * ((ROUNDS + 2) / 3), fast = n - slow;
    assert_int_equal(value_of(text, "rolegate_auth_duration_seconds_bucket{le=\"0.0005\"}"),
                     fast);
    assert_int_equal(value_of(text, "rolegate_auth_duration_seconds_bucket{le=\"0.005\"}"), n);
    const char *sum = strstr(text, "\nrolegate_auth_duration_seconds_sum ");
    assert_non_null(sum);
    double want = (double)fast * 0.0002 + (double)slow * 0.003;
    double got = strtod(sum + strlen("\nrolegate_auth_duration_seconds_sum "), NULL);
    assert_true(got > want * 0.999 && got < want * 1.001);
    for (int i = 0; i < THREADS; i++) {
        char s[96];
        snprintf(s, sizeof s, "rolegate_login_successes_total{connection=\"%d\"}", i);
        assert_int_equal(value_of(text, s), ROUNDS);
        snprintf(s, sizeof s, "\nrolegate_login_successes_total{connection=\"%d\"} ", i);
        const char *first = strstr(text, s);
        assert_non_null(first);
        assert_null(strstr(first + 1, s));   /* one series, not one per thread */
    }
    assert_int_equal(value_of(text, "rolegate_metrics_dropped_series_total"), 0);
    free(text);
}

/* Two labels, the second's value escaped as the text format wants (", \\
 * and newline escaped; other control bytes dropped). */
static void test_two_labels_escaped(void **st)
{
    (void)st;
    rg_metrics_add("rolegate_login_failures_total", "connection", "conn_1",
                   "reason", "a\"b\\c\nd\te", 3);
    char *text = rg_metrics_render();
    assert_non_null(text);
    assert_int_equal(value_of(text, "rolegate_login_failures_total{connection=\"conn_1\","
                                    "reason=\"a\\\"b\\\\c\\nde\"}"), 3);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_adds_lose_nothing),
        cmocka_unit_test(test_two_labels_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
