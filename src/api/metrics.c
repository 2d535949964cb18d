/* metrics.c — Prometheus text exposition of the gateway's counters. */
#include "api/metrics.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "tier/spec_remote.h"

/* Router decisions take microseconds; tier latencies take milliseconds to minutes. */
static const double decision_bounds[METRICS_BUCKETS - 1] = {
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 1e-1};
static const double latency_bounds[METRICS_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

void metrics_init(metrics_t *m, size_t n_tiers)
{
    memset(m, 0, sizeof *m);
    m->n_tiers = n_tiers;
    m->decision.bounds = decision_bounds;
    for (int i = 0; i < ROUTE_MAX_TIERS; i++) {
        m->ttft[i].bounds = latency_bounds;
        m->total[i].bounds = latency_bounds;
    }
}

void metrics_hist_observe(metrics_hist_t *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && s > h->bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->counts[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static int status_class(int st)
{
    if (st == 499) return 5;
    int c = st / 100 - 1;
    return c < 0 || c > 4 ? 4 : c;
}

void metrics_count_request(metrics_t *m, int tier, int st)
{
    int t = tier < 0 || (size_t)tier >= m->n_tiers ? (int)m->n_tiers : tier;
    atomic_fetch_add_explicit(&m->requests[t][status_class(st)], 1, memory_order_relaxed);
}

void metrics_count_reason(metrics_t *m, const char *reason)
{
    size_t k = strcspn(reason, ":");
    if (k == 0 || k >= sizeof m->reason_kinds[0]) return;
    int n = atomic_load(&m->n_reason_kinds);
    for (int i = 0; i < n; i++)
        if (!strncmp(m->reason_kinds[i], reason, k) && m->reason_kinds[i][k] == 0) {
            atomic_fetch_add_explicit(&m->decisions[i], 1, memory_order_relaxed);
            return;
        }
    /* A new kind: claim a slot (kinds are few and fixed by the router's code). */
    static atomic_flag lock = ATOMIC_FLAG_INIT;
    while (atomic_flag_test_and_set(&lock)) {
    }
    n = atomic_load(&m->n_reason_kinds);
    int i;
    for (i = 0; i < n; i++)
        if (!strncmp(m->reason_kinds[i], reason, k) && m->reason_kinds[i][k] == 0) break;
    if (i == n && n < METRICS_REASON_KINDS) {
        memcpy(m->reason_kinds[n], reason, k);
        m->reason_kinds[n][k] = 0;
        atomic_store(&m->n_reason_kinds, n + 1);
    }
    atomic_flag_clear(&lock);
    if (i < METRICS_REASON_KINDS)
        atomic_fetch_add_explicit(&m->decisions[i], 1, memory_order_relaxed);
}

static void write_hist(buf_t *o, const char *name, const char *labels, metrics_hist_t *h)
{
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->counts[b], memory_order_relaxed);
        if (b < METRICS_BUCKETS - 1)
            buf_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "",
                       h->bounds[b], (unsigned long long)cum);
        else
            buf_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
                       (unsigned long long)cum);
    }
    buf_printf(o, "%s_sum{%s} %.9f\n", name, labels, (double)atomic_load(&h->sum_ns) / 1e9);
    buf_printf(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)atomic_load(&h->n));
}

/* The queue's classes, spills and the estimates spillover decides with
 * (tier/queue.c). */
static void metrics_write_queues(tier_t *tiers, size_t n_tiers, buf_t *o)
{
    buf_puts(o, "# HELP switchyard_queue_pinned Waiters that may only run on the tier.\n"
                "# TYPE switchyard_queue_pinned gauge\n");
    for (size_t t = 0; t < n_tiers; t++) {
        tier_queue_stats_t q;
        tier_queue_stats(&tiers[t], &q);
        buf_printf(o, "switchyard_queue_pinned{tier=\"%s\"} %u\n", tiers[t].s.name, q.pinned);
    }
    buf_puts(o, "# HELP switchyard_spilled_total Requests sent on from a tier's queue: priority "
                "(gave way to a request that may only run there), eta (predicted TTFT above "
                "the next tier's).\n"
                "# TYPE switchyard_spilled_total counter\n");
    for (size_t t = 0; t < n_tiers; t++) {
        tier_queue_stats_t q;
        tier_queue_stats(&tiers[t], &q);
        buf_printf(o, "switchyard_spilled_total{tier=\"%s\",why=\"priority\"} %llu\n",
                   tiers[t].s.name, (unsigned long long)q.spilled_priority);
        buf_printf(o, "switchyard_spilled_total{tier=\"%s\",why=\"eta\"} %llu\n", tiers[t].s.name,
                   (unsigned long long)q.spilled_eta);
    }
    buf_puts(o, "# HELP switchyard_tier_estimate_seconds Measured means (EWMA) spillover "
                "predicts with: ttft (call start to first byte), service (slot held).\n"
                "# TYPE switchyard_tier_estimate_seconds gauge\n");
    for (size_t t = 0; t < n_tiers; t++) {
        tier_queue_stats_t q;
        tier_queue_stats(&tiers[t], &q);
        buf_printf(o, "switchyard_tier_estimate_seconds{tier=\"%s\",what=\"ttft\"} %.6f\n",
                   tiers[t].s.name, q.ttft_ms / 1000.0);
        buf_printf(o, "switchyard_tier_estimate_seconds{tier=\"%s\",what=\"service\"} %.6f\n",
                   tiers[t].s.name, q.service_ms / 1000.0);
    }
}

/* Speculative decoding across tiers, per pair (a local tier drafting, the tier that
 * verifies its drafts): draft tokens sent and kept, rounds, generations, fallbacks,
 * and the acceptance rate (kept / sent; NaN before the first round). */
static void metrics_write_speculative(tier_t *tiers, size_t n_tiers, buf_t *o)
{
    static const char *names[] = {"generations", "rounds",   "drafted", "accepted",
                                  "fallbacks",   "unusable", "skipped"};
    bool any = false;
    for (size_t t = 0; t < n_tiers; t++)
        any |= tiers[t].verifier != NULL;
    if (!any) return;
    buf_puts(o, "# HELP switchyard_speculative_total Speculative decoding across tiers: "
                "generations that drafted, verify rounds, draft tokens sent and accepted, "
                "generations finished locally after the verifier failed (fallbacks) or "
                "answered without what verification needs (unusable), requests decoded "
                "alone (skipped).\n"
                "# TYPE switchyard_speculative_total counter\n");
    for (size_t t = 0; t < n_tiers; t++) {
        if (!tiers[t].verifier) continue;
        spec_remote_pair_t p;
        spec_remote_pair_get((int)t, tiers[t].verifier->idx, &p);
        uint64_t v[] = {p.generations, p.rounds,   p.drafted, p.accepted,
                        p.fallbacks,   p.unusable, p.skipped};
        for (size_t k = 0; k < sizeof v / sizeof *v; k++)
            buf_printf(o,
                       "switchyard_speculative_total{drafter=\"%s\",verifier=\"%s\",what=\"%s\"} "
                       "%llu\n",
                       tiers[t].s.name, tiers[t].verifier->s.name, names[k],
                       (unsigned long long)v[k]);
    }
    buf_puts(o, "# HELP switchyard_speculative_acceptance Draft tokens the verifier kept over "
                "those sent, since start.\n"
                "# TYPE switchyard_speculative_acceptance gauge\n");
    for (size_t t = 0; t < n_tiers; t++) {
        if (!tiers[t].verifier) continue;
        spec_remote_pair_t p;
        spec_remote_pair_get((int)t, tiers[t].verifier->idx, &p);
        if (p.drafted)
            buf_printf(
                o, "switchyard_speculative_acceptance{drafter=\"%s\",verifier=\"%s\"} %.6f\n",
                tiers[t].s.name, tiers[t].verifier->s.name, (double)p.accepted / (double)p.drafted);
        else
            buf_printf(o, "switchyard_speculative_acceptance{drafter=\"%s\",verifier=\"%s\"} NaN\n",
                       tiers[t].s.name, tiers[t].verifier->s.name);
    }
    buf_puts(o, "# HELP switchyard_speculative_round_seconds Measured verify round trip (EWMA) "
                "the adaptive draft length is chosen with.\n"
                "# TYPE switchyard_speculative_round_seconds gauge\n");
    for (size_t t = 0; t < n_tiers; t++) {
        if (!tiers[t].verifier) continue;
        spec_remote_pair_t p;
        spec_remote_pair_get((int)t, tiers[t].verifier->idx, &p);
        buf_printf(o, "switchyard_speculative_round_seconds{drafter=\"%s\",verifier=\"%s\"} %.6f\n",
                   tiers[t].s.name, tiers[t].verifier->s.name, p.round_ms / 1000.0);
    }
}

int metrics_write(metrics_t *m, tier_t *tiers, size_t n_tiers, buf_t *o)
{
    static const char *classes[METRICS_STATUS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "499"};
    static const char *circuits[] = {"closed", "open", "half_open"};
    char lab[160];
    uint64_t now = clock_mono_ms();

    buf_puts(o, "# HELP switchyard_requests_total Requests by serving tier and status class.\n"
                "# TYPE switchyard_requests_total counter\n");
    for (size_t t = 0; t <= n_tiers; t++)
        for (int c = 0; c < METRICS_STATUS_CLASSES; c++) {
            uint64_t v = atomic_load(&m->requests[t][c]);
            if (!v) continue;
            buf_printf(o, "switchyard_requests_total{tier=\"%s\",status=\"%s\"} %llu\n",
                       t < n_tiers ? tiers[t].s.name : "none", classes[c], (unsigned long long)v);
        }
    buf_puts(o, "# HELP switchyard_tier_info The model and version each tier serves (always 1).\n"
                "# TYPE switchyard_tier_info gauge\n");
    for (size_t t = 0; t < n_tiers; t++)
        buf_printf(o, "switchyard_tier_info{tier=\"%s\",model=\"%s\",version=\"%s\"} 1\n",
                   tiers[t].s.name, tiers[t].s.model, tiers[t].s.version ? tiers[t].s.version : "");
    buf_puts(o, "# HELP switchyard_decisions_total Routing decision reasons by kind.\n"
                "# TYPE switchyard_decisions_total counter\n");
    int nk = atomic_load(&m->n_reason_kinds);
    for (int i = 0; i < nk; i++)
        buf_printf(o, "switchyard_decisions_total{reason=\"%s\"} %llu\n", m->reason_kinds[i],
                   (unsigned long long)atomic_load(&m->decisions[i]));
    buf_puts(o, "# HELP switchyard_failovers_total Failovers away from a tier.\n"
                "# TYPE switchyard_failovers_total counter\n");
    for (size_t t = 0; t < n_tiers; t++)
        buf_printf(o, "switchyard_failovers_total{tier=\"%s\"} %llu\n", tiers[t].s.name,
                   (unsigned long long)atomic_load(&m->failovers[t]));
    buf_printf(o,
               "# HELP switchyard_escalations_total Cascade escalations to a cloud tier.\n"
               "# TYPE switchyard_escalations_total counter\nswitchyard_escalations_total %llu\n",
               (unsigned long long)atomic_load(&m->escalations));
    buf_printf(
        o,
        "# HELP switchyard_degraded_total Answers given by an edge tier in place of a cloud tier.\n"
        "# TYPE switchyard_degraded_total counter\nswitchyard_degraded_total %llu\n",
        (unsigned long long)atomic_load(&m->degraded));
    buf_puts(o, "# HELP switchyard_pii_hits_total Requests holding each PII entity type.\n"
                "# TYPE switchyard_pii_hits_total counter\n");
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        buf_printf(o, "switchyard_pii_hits_total{type=\"%s\"} %llu\n", pii_type_name((pii_type_t)p),
                   (unsigned long long)atomic_load(&m->pii_hits[p]));
    buf_printf(
        o,
        "# HELP switchyard_ledger_dropped_total Ledger rows dropped on a full queue.\n"
        "# TYPE switchyard_ledger_dropped_total counter\nswitchyard_ledger_dropped_total %llu\n",
        (unsigned long long)atomic_load(&m->ledger_dropped));
    buf_printf(o,
               "# HELP switchyard_auth_refused_total Requests refused for a missing, unknown or "
               "non-admin key.\n"
               "# TYPE switchyard_auth_refused_total counter\nswitchyard_auth_refused_total %llu\n"
               "# HELP switchyard_limited_total Requests refused by a key's limits.\n"
               "# TYPE switchyard_limited_total counter\n"
               "switchyard_limited_total{limit=\"rate\"} %llu\n"
               "switchyard_limited_total{limit=\"budget\"} %llu\n",
               (unsigned long long)atomic_load(&m->auth_refused),
               (unsigned long long)atomic_load(&m->rate_limited),
               (unsigned long long)atomic_load(&m->budget_refused));
    buf_puts(o,
             "# HELP switchyard_circuit_state Circuit state per tier (1 for the current state).\n"
             "# TYPE switchyard_circuit_state gauge\n");
    for (size_t t = 0; t < n_tiers; t++) {
        tier_circuit_t c = tier_circuit(&tiers[t], now);
        for (int s = 0; s < 3; s++)
            buf_printf(o, "switchyard_circuit_state{tier=\"%s\",state=\"%s\"} %d\n",
                       tiers[t].s.name, circuits[s], (int)c == s);
    }
    buf_puts(o, "# HELP switchyard_tier_inflight Requests in flight per tier.\n"
                "# TYPE switchyard_tier_inflight gauge\n");
    for (size_t t = 0; t < n_tiers; t++)
        buf_printf(o, "switchyard_tier_inflight{tier=\"%s\"} %u\n", tiers[t].s.name,
                   tier_inflight(&tiers[t]));
    buf_puts(o, "# HELP switchyard_queue_depth Requests waiting for a slot per tier.\n"
                "# TYPE switchyard_queue_depth gauge\n");
    for (size_t t = 0; t < n_tiers; t++)
        buf_printf(o, "switchyard_queue_depth{tier=\"%s\"} %u\n", tiers[t].s.name,
                   tier_queued(&tiers[t]));
    metrics_write_queues(tiers, n_tiers, o);
    metrics_write_speculative(tiers, n_tiers, o);
    buf_puts(o, "# HELP switchyard_decision_seconds Router decision time.\n"
                "# TYPE switchyard_decision_seconds histogram\n");
    write_hist(o, "switchyard_decision_seconds", "", &m->decision);
    buf_puts(o, "# HELP switchyard_ttft_seconds Time to first byte of the answer per tier.\n"
                "# TYPE switchyard_ttft_seconds histogram\n");
    for (size_t t = 0; t < n_tiers; t++) {
        snprintf(lab, sizeof lab, "tier=\"%s\"", tiers[t].s.name);
        write_hist(o, "switchyard_ttft_seconds", lab, &m->ttft[t]);
    }
    buf_puts(o, "# HELP switchyard_request_seconds Total request time per tier.\n"
                "# TYPE switchyard_request_seconds histogram\n");
    for (size_t t = 0; t < n_tiers; t++) {
        snprintf(lab, sizeof lab, "tier=\"%s\"", tiers[t].s.name);
        write_hist(o, "switchyard_request_seconds", lab, &m->total[t]);
    }
    return 0;
}
