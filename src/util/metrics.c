/* metrics.c: the process-wide metrics registry of metrics.h (issue 11
 * item 9): a fixed table of series (a handful of names, a few hundred
 * series at most: a linear scan), counters and fixed-bucket histograms,
 * rendered in the Prometheus text format 0.0.4. A series is found without
 * a lock and counted with atomic adds; the mutex is taken only to add a
 * series, which is published by its release store of the count (issue 17:
 * every /auth took the one mutex twice, and both pool threads met there). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rolegate/metrics.h"
#include "rolegate/util.h"

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB (sizeof buckets / sizeof *buckets)

typedef struct series {
    const char *name;
    char        labels[200];
    int         hist;
    _Atomic uint64_t value;      /* counter, or histogram count */
    _Atomic uint64_t bucket[NB]; /* non-cumulative */
    _Atomic uint64_t sum_ns;     /* histogram sum, in nanoseconds */
} series;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   /* adding a series */
static series table[RG_METRICS_MAX_SERIES];
static atomic_size_t n_series;
static _Atomic uint64_t dropped;

static const struct { const char *name, *help; } helps[] = {
    {"rolegate_login_successes_total", "Browser logins that issued a session, by connection."},
    {"rolegate_login_failures_total", "Refused browser logins, by connection and reason code."},
    {"rolegate_auth_requests_total", "Answers of /auth, by HTTP status."},
    {"rolegate_auth_duration_seconds", "Time to answer /auth."},
    {"rolegate_idp_request_duration_seconds", "Calls to identity providers (OIDC discovery, "
                                              "JWKS, token, userinfo; SAML metadata), by kind."},
};

static void put(char *out, size_t n, size_t *at, const char *s)
{
    while (*s && *at + 1 < n)
        out[(*at)++] = *s++;
}

/* Appends k="v" (escaped) to out; made by hand, not with snprintf: it runs
 * at every /auth (issue 17). */
static void label(char *out, size_t n, size_t *at, const char *k, const char *v)
{
    if (!k || !v || *at >= n)
        return;
    if (*at)
        put(out, n, at, ",");
    put(out, n, at, k);
    put(out, n, at, "=\"");
    for (const char *p = v; *p && *at + 3 < n; p++) {
        if (*p == '"' || *p == '\\' || *p == '\n') {
            out[(*at)++] = '\\';
            out[(*at)++] = (char)(*p == '\n' ? 'n' : *p);
        } else if ((unsigned char)*p >= 0x20) {
            out[(*at)++] = *p;
        }
    }
    if (*at + 1 < n)
        out[(*at)++] = '"';
    out[*at < n ? *at : n - 1] = 0;
}

/* The series name{labels} among the first n, or NULL. */
static series *lookup(const char *name, const char *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].name == name && strcmp(table[i].labels, labels) == 0)
            return &table[i];
    for (size_t i = 0; i < n; i++)   /* the same name from another caller */
        if (strcmp(table[i].name, name) == 0 && strcmp(table[i].labels, labels) == 0)
            return &table[i];
    return NULL;
}

/* The series name{labels}, created if new; NULL when the table is full. */
static series *find(const char *name, const char *labels, int hist)
{
    series *s = lookup(name, labels, atomic_load_explicit(&n_series, memory_order_acquire));
    if (s)
        return s;
    pthread_mutex_lock(&lock);
    size_t n = atomic_load_explicit(&n_series, memory_order_relaxed);
    s = lookup(name, labels, n);   /* another thread may have added it */
    if (!s && n == RG_METRICS_MAX_SERIES) {
        atomic_fetch_add(&dropped, 1);
    } else if (!s) {
        s = &table[n];
        s->name = name;
        s->hist = hist;
        snprintf(s->labels, sizeof s->labels, "%s", labels);
        atomic_store_explicit(&n_series, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&lock);
    return s;
}

void rg_metrics_add(const char *name, const char *k1, const char *v1, const char *k2,
                    const char *v2, uint64_t n)
{
    char l[200];
    size_t at = 0;
    l[0] = 0;
    label(l, sizeof l, &at, k1, v1);
    label(l, sizeof l, &at, k2, v2);
    series *s = find(name, l, 0);
    if (s)
        atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void rg_metrics_observe(const char *name, const char *k1, const char *v1, double seconds)
{
    char l[200];
    size_t at = 0;
    l[0] = 0;
    label(l, sizeof l, &at, k1, v1);
    size_t b = 0;
    while (b < NB && seconds > buckets[b])
        b++;
    series *s = find(name, l, 1);
    if (s) {
        atomic_fetch_add_explicit(&s->value, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sum_ns, seconds > 0 ? (uint64_t)(seconds * 1e9) : 0,
                                  memory_order_relaxed);
        if (b < NB)
            atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_release);
    }
}

static void render_one(rg_buf *o, const series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    if (!s->hist) {
        rg_buf_printf(o, "%s%s%s%s %llu\n", s->name, s->labels[0] ? "{" : "", s->labels,
                      s->labels[0] ? "}" : "", (unsigned long long)atomic_load(&s->value));
        return;
    }
    /* read beside the writers, buckets first: an observation adds to the
     * count before its bucket (release), so the count read after them is
     * never below their sum, as the format wants of +Inf */
    uint64_t cum = 0;
    for (size_t b = 0; b < NB; b++) {
        cum += atomic_load(&s->bucket[b]);
        rg_buf_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep,
                      buckets[b], (unsigned long long)cum);
    }
    uint64_t count = atomic_load(&s->value);
    rg_buf_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep,
                  (unsigned long long)count);
    rg_buf_printf(o, "%s_sum%s%s%s %.6f\n", s->name, s->labels[0] ? "{" : "", s->labels,
                  s->labels[0] ? "}" : "", (double)atomic_load(&s->sum_ns) / 1e9);
    rg_buf_printf(o, "%s_count%s%s%s %llu\n", s->name, s->labels[0] ? "{" : "", s->labels,
                  s->labels[0] ? "}" : "", (unsigned long long)count);
}

char *rg_metrics_render(void)
{
    rg_buf o = {0};
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_series; i++) {
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(table[j].name, table[i].name) != 0;
        if (!first)
            continue;   /* rendered with the first series of its name */
        for (size_t h = 0; h < sizeof helps / sizeof *helps; h++)
            if (strcmp(helps[h].name, table[i].name) == 0)
                rg_buf_printf(&o, "# HELP %s %s\n", table[i].name, helps[h].help);
        rg_buf_printf(&o, "# TYPE %s %s\n", table[i].name, table[i].hist ? "histogram" : "counter");
        for (size_t j = i; j < n_series; j++)
            if (strcmp(table[j].name, table[i].name) == 0)
                render_one(&o, &table[j]);
    }
    rg_buf_printf(&o, "# TYPE rolegate_metrics_dropped_series_total counter\n"
                      "rolegate_metrics_dropped_series_total %llu\n",
                  (unsigned long long)atomic_load(&dropped));
    pthread_mutex_unlock(&lock);
    return rg_buf_take(&o);
}
