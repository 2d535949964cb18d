/* metrics.h — the gateway's Prometheus metrics.
 *
 * Counters and histograms are arrays of atomics indexed by small, bounded label
 * sets (tier index, status class, reason kind, PII type), so recording is a few
 * relaxed atomic adds on the hot path and a scrape never blocks a request.
 */
#ifndef SY_API_METRICS_H
#define SY_API_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/buf.h"
#include "route/router.h"
#include "tier/tier.h"

#define METRICS_BUCKETS        16
#define METRICS_REASON_KINDS   16
#define METRICS_STATUS_CLASSES 6 /* 1xx..5xx, plus 499 */

typedef struct metrics_hist {
    const double *bounds; /* METRICS_BUCKETS-1 upper bounds, in seconds */
    atomic_uint_fast64_t counts[METRICS_BUCKETS];
    atomic_uint_fast64_t n;
    atomic_uint_fast64_t sum_ns; /* sum of observations, nanoseconds */
} metrics_hist_t;

typedef struct metrics {
    size_t n_tiers;
    /* requests by tier (n_tiers = no tier) and status class */
    atomic_uint_fast64_t requests[ROUTE_MAX_TIERS + 1][METRICS_STATUS_CLASSES];
    atomic_uint_fast64_t decisions[METRICS_REASON_KINDS];
    char reason_kinds[METRICS_REASON_KINDS][24];
    atomic_int n_reason_kinds;
    atomic_uint_fast64_t failovers[ROUTE_MAX_TIERS]; /* by tier failed away from */
    atomic_uint_fast64_t escalations;
    atomic_uint_fast64_t degraded;
    atomic_uint_fast64_t pii_hits[PII_TYPE_COUNT];
    atomic_uint_fast64_t ledger_dropped;
    atomic_uint_fast64_t auth_refused;     /* 401/403 for a missing, unknown or non-admin key */
    atomic_uint_fast64_t rate_limited;     /* 429 rate_limit_exceeded */
    atomic_uint_fast64_t budget_refused;   /* 429 budget_exceeded */
    metrics_hist_t decision;               /* router time */
    metrics_hist_t ttft[ROUTE_MAX_TIERS];  /* per tier */
    metrics_hist_t total[ROUTE_MAX_TIERS]; /* per tier */
} metrics_t;

void metrics_init(metrics_t *m, size_t n_tiers);
void metrics_hist_observe(metrics_hist_t *h, uint64_t ns);
void metrics_count_request(metrics_t *m, int tier, int http_status);
/* Counts one decision reason by its kind (the text before the first ':'). */
void metrics_count_reason(metrics_t *m, const char *reason);
/* Writes the Prometheus text exposition; tiers give live gauges (circuit, queue). */
int metrics_write(metrics_t *m, tier_t *tiers, size_t n_tiers, buf_t *out);

#endif
