/* dash.c — the dashboard's in-memory state and its JSON (docs/dashboard.md). */
#include "api/dash.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/jsonw.h"

void dash_init(dash_t *d, size_t n_tiers)
{
    memset(d, 0, sizeof *d);
    atomic_flag_clear(&d->lock);
    d->n_tiers = n_tiers > ROUTE_MAX_TIERS ? ROUTE_MAX_TIERS : n_tiers;
    for (int i = 0; i < DASH_BUCKETS; i++)
        d->bucket_id[i] = -1;
}

static void dash_lock(dash_t *d)
{
    while (atomic_flag_test_and_set_explicit(&d->lock, memory_order_acquire)) {
    }
}

static void dash_unlock(dash_t *d)
{
    atomic_flag_clear_explicit(&d->lock, memory_order_release);
}

/* Copies src into a fixed field, cut at the field's size. */
static void copy_capped(char *dst, size_t n, const char *src)
{
    size_t k = src ? strnlen(src, n - 1) : 0;
    if (k) memcpy(dst, src, k);
    dst[k] = 0;
}

void dash_record(dash_t *d, int64_t now_ms, const char *id, int64_t ts_ms, int tier, int status,
                 const char *reasons, const char *pii, double cost, double all_cloud)
{
    dash_decision_t row;
    copy_capped(row.id, sizeof row.id, id);
    row.ts_ms = ts_ms;
    row.tier = tier >= 0 && (size_t)tier < d->n_tiers ? tier : -1;
    row.status = status;
    copy_capped(row.reasons, sizeof row.reasons, reasons);
    copy_capped(row.pii, sizeof row.pii, pii);
    int64_t bid = now_ms / 1000 / DASH_BUCKET_S;
    int slot = (int)(bid % DASH_BUCKETS);
    int col = row.tier >= 0 ? row.tier : (int)d->n_tiers;

    dash_lock(d);
    d->recent[d->n_recent % DASH_RECENT] = row;
    d->n_recent++;
    if (d->bucket_id[slot] != bid) { /* a bucket from a full ring ago: start it over */
        memset(d->counts[slot], 0, sizeof d->counts[slot]);
        d->bucket_id[slot] = bid;
    }
    d->counts[slot][col]++;
    if (row.tier >= 0) {
        d->cost_usd += cost;
        d->all_cloud_usd += all_cloud;
    }
    dash_unlock(d);
}

/* The q-quantile (0..1) of a histogram in seconds, interpolated inside its bucket;
 * observations above the last bound report that bound. Null when empty. */
static void write_quantile(jsonw_t *j, metrics_hist_t *h, double q)
{
    uint64_t c[METRICS_BUCKETS], n = 0;
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        c[b] = atomic_load_explicit(&h->counts[b], memory_order_relaxed);
        n += c[b];
    }
    if (!n) return jsonw_null(j);
    double rank = q * (double)n, cum = 0;
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        if (cum + (double)c[b] >= rank && c[b]) {
            if (b == METRICS_BUCKETS - 1) return jsonw_double(j, h->bounds[b - 1]);
            double lo = b ? h->bounds[b - 1] : 0, hi = h->bounds[b];
            return jsonw_double(j, lo + (hi - lo) * (rank - cum) / (double)c[b]);
        }
        cum += (double)c[b];
    }
    jsonw_double(j, h->bounds[METRICS_BUCKETS - 2]);
}

static void write_percentiles(jsonw_t *j, const char *key, metrics_hist_t *h)
{
    jsonw_key(j, key);
    jsonw_obj_begin(j);
    jsonw_key(j, "n");
    jsonw_uint(j, atomic_load(&h->n));
    jsonw_key(j, "p50");
    write_quantile(j, h, 0.50);
    jsonw_key(j, "p95");
    write_quantile(j, h, 0.95);
    jsonw_key(j, "p99");
    write_quantile(j, h, 0.99);
    jsonw_obj_end(j);
}

static const char *status_classes[METRICS_STATUS_CLASSES] = {"1xx", "2xx", "3xx",
                                                             "4xx", "5xx", "499"};

/* {"2xx": n, ...} for one row of the request counters, and its total in *total. */
static void write_status_counts(jsonw_t *j, atomic_uint_fast64_t *row, uint64_t *total)
{
    *total = 0;
    jsonw_obj_begin(j);
    for (int c = 0; c < METRICS_STATUS_CLASSES; c++) {
        uint64_t v = atomic_load(&row[c]);
        *total += v;
        if (!v) continue;
        jsonw_key(j, status_classes[c]);
        jsonw_uint(j, v);
    }
    jsonw_obj_end(j);
}

static void write_tiers(jsonw_t *j, metrics_t *m, tier_t *tiers, size_t n_tiers)
{
    static const char *circuits[] = {"closed", "open", "half_open"};
    uint64_t now = clock_mono_ms();
    jsonw_key(j, "tiers");
    jsonw_arr_begin(j);
    for (size_t i = 0; i < n_tiers; i++) {
        tier_t *t = &tiers[i];
        tier_circuit_t c = tier_circuit(t, now);
        jsonw_obj_begin(j);
        jsonw_key(j, "name");
        jsonw_str(j, t->s.name);
        jsonw_key(j, "role");
        jsonw_str(j, t->s.role == ROUTE_ROLE_EDGE ? "edge" : "cloud");
        jsonw_key(j, "model");
        jsonw_str(j, t->s.model);
        jsonw_key(j, "version");
        jsonw_str(j, *t->s.version ? t->s.version : NULL);
        jsonw_key(j, "healthy");
        jsonw_bool(j, c != TIER_OPEN && !t->disabled);
        jsonw_key(j, "circuit");
        jsonw_str(j, (unsigned)c < 3 ? circuits[c] : "unknown");
        jsonw_key(j, "inflight");
        jsonw_uint(j, tier_inflight(t));
        jsonw_key(j, "queued");
        jsonw_uint(j, tier_queued(t));
        jsonw_key(j, "max_concurrency");
        jsonw_uint(j, t->s.max_concurrency);
        jsonw_key(j, "max_queue");
        jsonw_uint(j, t->s.max_queue);
        uint64_t total;
        jsonw_key(j, "by_status");
        write_status_counts(j, m->requests[i], &total);
        jsonw_key(j, "requests");
        jsonw_uint(j, total);
        jsonw_key(j, "failovers");
        jsonw_uint(j, atomic_load(&m->failovers[i]));
        write_percentiles(j, "latency_s", &m->total[i]);
        write_percentiles(j, "ttft_s", &m->ttft[i]);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
}

/* The routing mix: the last DASH_BUCKETS buckets up to now, oldest first, with a
 * column per tier and a last one for requests no tier served. */
static void write_mix(jsonw_t *j, const dash_t *s, tier_t *tiers, size_t n_tiers, int64_t now_ms)
{
    int64_t last = now_ms / 1000 / DASH_BUCKET_S;
    jsonw_key(j, "mix");
    jsonw_obj_begin(j);
    jsonw_key(j, "bucket_s");
    jsonw_int(j, DASH_BUCKET_S);
    jsonw_key(j, "start_ms");
    jsonw_int(j, (last - DASH_BUCKETS + 1) * DASH_BUCKET_S * 1000);
    jsonw_key(j, "columns");
    jsonw_arr_begin(j);
    for (size_t t = 0; t < n_tiers; t++)
        jsonw_str(j, tiers[t].s.name);
    jsonw_str(j, "none");
    jsonw_arr_end(j);
    jsonw_key(j, "counts");
    jsonw_arr_begin(j);
    for (int64_t b = last - DASH_BUCKETS + 1; b <= last; b++) {
        int slot = (int)(((b % DASH_BUCKETS) + DASH_BUCKETS) % DASH_BUCKETS);
        bool live = s->bucket_id[slot] == b;
        jsonw_arr_begin(j);
        for (size_t t = 0; t <= n_tiers; t++)
            jsonw_uint(j, live ? s->counts[slot][t] : 0);
        jsonw_arr_end(j);
    }
    jsonw_arr_end(j);
    jsonw_obj_end(j);
}

/* The recent decisions, newest first; PII as a list of type names. */
static void write_recent(jsonw_t *j, const dash_t *s, tier_t *tiers)
{
    jsonw_key(j, "recent");
    jsonw_arr_begin(j);
    uint64_t n = s->n_recent < DASH_RECENT ? s->n_recent : DASH_RECENT;
    for (uint64_t k = 0; k < n; k++) {
        const dash_decision_t *r = &s->recent[(s->n_recent - 1 - k) % DASH_RECENT];
        jsonw_obj_begin(j);
        jsonw_key(j, "id");
        jsonw_str(j, r->id);
        jsonw_key(j, "ts_ms");
        jsonw_int(j, r->ts_ms);
        jsonw_key(j, "tier");
        jsonw_str(j, r->tier >= 0 ? tiers[r->tier].s.name : NULL);
        jsonw_key(j, "status");
        jsonw_int(j, r->status);
        jsonw_key(j, "reasons");
        jsonw_str(j, r->reasons);
        jsonw_key(j, "pii");
        jsonw_arr_begin(j);
        for (const char *p = r->pii; *p;) {
            size_t k2 = strcspn(p, ",");
            if (k2) jsonw_strn(j, p, k2);
            p += k2;
            if (*p == ',') p++;
        }
        jsonw_arr_end(j);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
}

void dash_write(dash_t *d, metrics_t *m, tier_t *tiers, size_t n_tiers, int64_t now_ms, buf_t *out)
{
    dash_t s;
    dash_lock(d);
    memcpy(&s, d, sizeof s);
    dash_unlock(d);
    if (n_tiers > s.n_tiers) n_tiers = s.n_tiers; /* tiers of this generation only */

    jsonw_t j;
    jsonw_init(&j, out);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "now_ms");
    jsonw_int(&j, now_ms);
    write_tiers(&j, m, tiers, n_tiers);
    uint64_t none_total;
    jsonw_key(&j, "unserved");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "by_status");
    write_status_counts(&j, m->requests[n_tiers], &none_total);
    jsonw_key(&j, "requests");
    jsonw_uint(&j, none_total);
    jsonw_obj_end(&j);
    uint64_t failovers = 0;
    for (size_t t = 0; t < n_tiers; t++)
        failovers += atomic_load(&m->failovers[t]);
    jsonw_key(&j, "escalations");
    jsonw_uint(&j, atomic_load(&m->escalations));
    jsonw_key(&j, "failovers");
    jsonw_uint(&j, failovers);
    jsonw_key(&j, "degraded");
    jsonw_uint(&j, atomic_load(&m->degraded));
    jsonw_key(&j, "reasons");
    jsonw_obj_begin(&j);
    int nk = atomic_load(&m->n_reason_kinds);
    for (int i = 0; i < nk && i < METRICS_REASON_KINDS; i++) {
        jsonw_key(&j, m->reason_kinds[i]);
        jsonw_uint(&j, atomic_load(&m->decisions[i]));
    }
    jsonw_obj_end(&j);
    jsonw_key(&j, "cost");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "cost_usd");
    jsonw_double(&j, s.cost_usd);
    jsonw_key(&j, "all_cloud_usd");
    jsonw_double(&j, s.all_cloud_usd);
    jsonw_key(&j, "saved_usd");
    jsonw_double(&j, s.all_cloud_usd - s.cost_usd);
    jsonw_obj_end(&j);
    write_mix(&j, &s, tiers, n_tiers, now_ms);
    write_recent(&j, &s, tiers);
    jsonw_key(&j, "versions");
    if (s.versions)
        s.versions(s.versions_arg, &j);
    else
        jsonw_null(&j);
    jsonw_obj_end(&j);
}
