/* metrics.h: process-wide Prometheus metrics (issue 11 item 9): counters
 * and latency histograms that any layer bumps (login results by
 * connection and reason, /auth answers by status, IdP call latency), and
 * their text exposition for GET /metrics. One registry per process, like
 * the log: metrics are observations, not state any decision reads.
 * Layer: util (libc + pthread only). */
#ifndef ROLEGATE_METRICS_H
#define ROLEGATE_METRICS_H

#include <stdint.h>

/* Adds n to counter name{k1="v1",k2="v2"} (k2 or both keys may be NULL;
 * values are escaped here). name must be a static string. Thread-safe.
 * Past RG_METRICS_MAX_SERIES series a new one is dropped and counted in
 * rolegate_metrics_dropped_series_total. */
#define RG_METRICS_MAX_SERIES 512
void rg_metrics_add(const char *name, const char *k1, const char *v1, const char *k2,
                    const char *v2, uint64_t n);
/* Observes seconds in histogram name{k1="v1"} (buckets 0.5 ms .. 10 s). */
void rg_metrics_observe(const char *name, const char *k1, const char *v1, double seconds);
/* The exposition text of every series (# HELP / # TYPE once per name),
 * malloc'd (caller frees); NULL on OOM. */
char *rg_metrics_render(void);

#endif
