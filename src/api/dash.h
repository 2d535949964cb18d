/* dash.h — the live dashboard's state: recent decisions, routing mix over time and
 * cost so far, kept in memory per configuration generation (GET /v1/admin/dashboard,
 * the page at GET /ui; docs/dashboard.md).
 *
 * Recording takes a short spin lock (one copy of a fixed-size row); the JSON is
 * written from a snapshot taken under the same lock. Nothing here reads the store.
 */
#ifndef SY_API_DASH_H
#define SY_API_DASH_H

#include <stdatomic.h>
#include <stdint.h>

#include "api/metrics.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "tier/tier.h"

#define DASH_RECENT   50  /* recent decisions kept */
#define DASH_BUCKETS  60  /* routing-mix buckets kept ... */
#define DASH_BUCKET_S 5   /* ... of this many seconds each (5 minutes in all) */
#define DASH_REASONS  240 /* bytes of a decision's reasons kept */
#define DASH_PII      120 /* bytes of a decision's PII type names kept */

typedef struct dash_decision {
    char id[48];
    int64_t ts_ms;
    int tier; /* -1: no tier served it */
    int status;
    char reasons[DASH_REASONS];
    char pii[DASH_PII]; /* comma-separated entity type names, never values */
} dash_decision_t;

typedef struct dash {
    atomic_flag lock;
    dash_decision_t recent[DASH_RECENT];
    uint64_t n_recent; /* decisions recorded; recent[n % DASH_RECENT] is the next slot */
    /* counts[i][t]: requests that tier t (n_tiers: none) answered in bucket
     * bucket_id[i] (wall seconds / DASH_BUCKET_S) */
    int64_t bucket_id[DASH_BUCKETS];
    uint32_t counts[DASH_BUCKETS][ROUTE_MAX_TIERS + 1];
    size_t n_tiers;
    double cost_usd;      /* what the served requests cost */
    double all_cloud_usd; /* what they would have cost on the reference cloud tier */
    /* Writes the "versions" section (the versions report, api/versions.h); NULL:
     * null. Set once after dash_init. */
    void (*versions)(void *arg, jsonw_t *j);
    void *versions_arg;
} dash_t;

void dash_init(dash_t *d, size_t n_tiers);
/* Records one finished request: its decision row, its routing-mix bucket (by
 * now_ms, wall clock) and its cost. pii holds type names only. */
void dash_record(dash_t *d, int64_t now_ms, const char *id, int64_t ts_ms, int tier, int status,
                 const char *reasons, const char *pii, double cost, double all_cloud);
/* Writes the dashboard JSON (docs/dashboard.md) from d, the metrics and the tiers'
 * live state. */
void dash_write(dash_t *d, metrics_t *m, tier_t *tiers, size_t n_tiers, int64_t now_ms, buf_t *out);

#endif
