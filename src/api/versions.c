/* versions.c — per-version figures, drift, and the gateway's view of them
 * (docs/versions.md). */
#include "api/versions.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

/* ============================================================ build ===== */

static void copy_field(char *dst, size_t n, const char *src)
{
    size_t k = strnlen(src, n - 1);
    memcpy(dst, src, k);
    dst[k] = 0;
}

/* The entry for (tier, version), added if new. NULL when the report is full. */
static versions_entry_t *entry_get(versions_report_t *r, const char *tier, const char *version)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].tier, tier) && !strcmp(r->v[i].version, version)) return &r->v[i];
    if (r->n == VERSIONS_MAX) return NULL;
    versions_entry_t *e = &r->v[r->n++];
    memset(e, 0, sizeof *e);
    copy_field(e->tier, sizeof e->tier, tier);
    copy_field(e->version, sizeof e->version, version);
    e->first_ms = INT64_MAX;
    e->last_ms = INT64_MIN;
    e->previous = -1;
    return e;
}

static versions_pair_t *pair_get(versions_report_t *r, const store_version_cell_t *c)
{
    for (size_t i = 0; i < r->np; i++) {
        versions_pair_t *p = &r->p[i];
        if (!strcmp(p->edge_tier, c->first_tier) && !strcmp(p->edge_version, c->first_version) &&
            !strcmp(p->cloud_tier, c->cloud_tier) && !strcmp(p->cloud_version, c->cloud_version))
            return p;
    }
    if (r->np == VERSIONS_MAX) return NULL;
    versions_pair_t *p = &r->p[r->np++];
    memset(p, 0, sizeof *p);
    copy_field(p->edge_tier, sizeof p->edge_tier, c->first_tier);
    copy_field(p->edge_version, sizeof p->edge_version, c->first_version);
    copy_field(p->cloud_tier, sizeof p->cloud_tier, c->cloud_tier);
    copy_field(p->cloud_version, sizeof p->cloud_version, c->cloud_version);
    return p;
}

int versions_add_speculative(versions_report_t *r, const char *drafter, const char *dver,
                             const char *verifier, const char *vver, uint64_t drafted,
                             uint64_t accepted)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].tier, drafter) && !strcmp(r->v[i].version, dver)) {
            r->v[i].spec_drafted += drafted;
            r->v[i].spec_accepted += accepted;
        }
    store_version_cell_t c;
    memset(&c, 0, sizeof c);
    copy_field(c.first_tier, sizeof c.first_tier, drafter);
    copy_field(c.first_version, sizeof c.first_version, dver);
    copy_field(c.cloud_tier, sizeof c.cloud_tier, verifier);
    copy_field(c.cloud_version, sizeof c.cloud_version, vver);
    versions_pair_t *p = pair_get(r, &c);
    if (!p) return SY_EFULL;
    p->spec_drafted += drafted;
    p->spec_accepted += accepted;
    return 0;
}

static double rate(uint64_t k, uint64_t n)
{
    return n ? (double)k / (double)n : NAN;
}

static double mean_confidence(const versions_entry_t *e)
{
    return e->confidences ? e->confidence_sum / (double)e->confidences : NAN;
}

static double cost_per_request(const versions_entry_t *e)
{
    return e->requests ? e->cost_usd / (double)e->requests : NAN;
}

/* Appends "name a->b" to e->reasons. */
static void add_reason(versions_entry_t *e, const char *name, double a, double b)
{
    size_t k = strlen(e->reasons);
    snprintf(e->reasons + k, sizeof e->reasons - k, "%s%s %.4g->%.4g", k ? "; " : "", name, a, b);
}

/* Compares e against prev under th and sets e->drift and its reasons. A figure
 * missing on either side (no confidences) is not compared. */
static void drift_check(versions_entry_t *e, const versions_entry_t *prev, const config_drift_t *th)
{
    double a, b;
    a = rate(prev->escalated, prev->requests), b = rate(e->escalated, e->requests);
    if (fabs(b - a) > th->escalation_rate) add_reason(e, "escalation_rate", a, b);
    a = mean_confidence(prev), b = mean_confidence(e);
    if (isfinite(a) && isfinite(b) && fabs(b - a) > th->confidence)
        add_reason(e, "mean_confidence", a, b);
    a = rate(prev->errors, prev->requests), b = rate(e->errors, e->requests);
    if (fabs(b - a) > th->error_rate) add_reason(e, "error_rate", a, b);
    a = cost_per_request(prev), b = cost_per_request(e);
    if ((a > 0 && fabs(b - a) / a > th->cost_per_request) || (a == 0 && b > 0))
        add_reason(e, "cost_per_request", a, b);
    e->drift = e->reasons[0] != 0;
}

/* Orders entries by tier name, then first request. */
static int entry_cmp(const void *x, const void *y)
{
    const versions_entry_t *a = x, *b = y;
    int c = strcmp(a->tier, b->tier);
    if (c) return c;
    return a->first_ms < b->first_ms ? -1 : a->first_ms > b->first_ms;
}

int versions_build(const store_version_cell_t *cells, size_t n, const config_drift_t *th,
                   int64_t since_ms, versions_report_t *out)
{
    memset(out, 0, sizeof *out);
    out->v = mem_calloc(VERSIONS_MAX, sizeof *out->v);
    out->p = mem_calloc(VERSIONS_MAX, sizeof *out->p);
    out->since_ms = since_ms;
    out->th = *th;
    for (size_t i = 0; i < n; i++) {
        const store_version_cell_t *c = &cells[i];
        if (*c->first_tier) {
            versions_entry_t *e = entry_get(out, c->first_tier, c->first_version);
            if (!e) goto full;
            e->requests += c->requests;
            e->errors += c->errors;
            e->escalated += c->escalated;
            e->confidences += c->confidences;
            e->confidence_sum += c->confidence_sum;
            e->cost_usd += c->cost_usd;
            if (c->first_ms < e->first_ms) e->first_ms = c->first_ms;
            if (c->last_ms > e->last_ms) e->last_ms = c->last_ms;
            if (*c->cloud_tier) {
                versions_pair_t *p = pair_get(out, c);
                if (!p) goto full;
                p->requests += c->requests;
                p->escalated += c->escalated;
            }
        }
        if (*c->tier) {
            versions_entry_t *e = entry_get(out, c->tier, c->version);
            if (!e) goto full;
            e->served += c->requests;
            if (c->first_ms < e->first_ms) e->first_ms = c->first_ms;
            if (c->last_ms > e->last_ms) e->last_ms = c->last_ms;
        }
    }
    qsort(out->v, out->n, sizeof *out->v, entry_cmp);
    /* Each version against the latest earlier version of its tier with enough
     * requests; a version below min_requests itself is not judged yet. */
    for (size_t i = 0; i < out->n; i++) {
        versions_entry_t *e = &out->v[i];
        for (size_t j = i; j-- > 0 && !strcmp(out->v[j].tier, e->tier);)
            if (out->v[j].requests >= th->min_requests) {
                e->previous = (int)j;
                break;
            }
        if (e->previous >= 0 && e->requests >= th->min_requests)
            drift_check(e, &out->v[e->previous], th);
    }
    return 0;
full:
    versions_report_free(out);
    return SY_ETOOBIG;
}

int versions_query(store_t *s, int64_t since_ms, const config_drift_t *th, versions_report_t *out)
{
    store_version_cell_t *cells = NULL;
    size_t n = 0;
    int rc = store_versions_query(s, since_ms, &cells, &n);
    if (rc) return rc;
    rc = versions_build(cells, n, th, since_ms, out);
    free(cells);
    return rc;
}

void versions_report_free(versions_report_t *r)
{
    if (!r) return;
    mem_free(r->v);
    mem_free(r->p);
    memset(r, 0, sizeof *r);
}

/* ========================================================== writing ===== */

static void str_or_null(jsonw_t *j, const char *s)
{
    if (*s)
        jsonw_str(j, s);
    else
        jsonw_null(j);
}

void versions_write_json(const versions_report_t *r, jsonw_t *j)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "since_ms");
    jsonw_int(j, r->since_ms);
    jsonw_key(j, "thresholds");
    jsonw_obj_begin(j);
    jsonw_key(j, "min_requests");
    jsonw_uint(j, r->th.min_requests);
    jsonw_key(j, "escalation_rate");
    jsonw_double(j, r->th.escalation_rate);
    jsonw_key(j, "confidence");
    jsonw_double(j, r->th.confidence);
    jsonw_key(j, "error_rate");
    jsonw_double(j, r->th.error_rate);
    jsonw_key(j, "cost_per_request");
    jsonw_double(j, r->th.cost_per_request);
    jsonw_obj_end(j);
    jsonw_key(j, "versions");
    jsonw_arr_begin(j);
    for (size_t i = 0; i < r->n; i++) {
        const versions_entry_t *e = &r->v[i];
        jsonw_obj_begin(j);
        jsonw_key(j, "tier");
        jsonw_str(j, e->tier);
        jsonw_key(j, "version");
        str_or_null(j, e->version);
        jsonw_key(j, "first_seen_ms");
        jsonw_int(j, e->first_ms);
        jsonw_key(j, "last_seen_ms");
        jsonw_int(j, e->last_ms);
        jsonw_key(j, "requests");
        jsonw_uint(j, e->requests);
        jsonw_key(j, "served");
        jsonw_uint(j, e->served);
        jsonw_key(j, "error_rate");
        jsonw_double(j, rate(e->errors, e->requests));
        jsonw_key(j, "escalation_rate");
        jsonw_double(j, rate(e->escalated, e->requests));
        jsonw_key(j, "mean_confidence");
        jsonw_double(j, mean_confidence(e));
        jsonw_key(j, "speculative_acceptance");
        if (e->spec_drafted)
            jsonw_double(j, rate(e->spec_accepted, e->spec_drafted));
        else
            jsonw_null(j);
        jsonw_key(j, "cost_usd");
        jsonw_double(j, e->cost_usd);
        jsonw_key(j, "cost_per_request");
        jsonw_double(j, cost_per_request(e));
        jsonw_key(j, "previous");
        if (e->previous >= 0)
            str_or_null(j, r->v[e->previous].version);
        else
            jsonw_null(j);
        jsonw_key(j, "drift");
        jsonw_bool(j, e->drift);
        jsonw_key(j, "drift_reasons");
        jsonw_arr_begin(j);
        for (const char *p = e->reasons; *p;) {
            size_t k = strcspn(p, ";");
            jsonw_strn(j, p, k);
            p += k;
            while (*p == ';' || *p == ' ')
                p++;
        }
        jsonw_arr_end(j);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
    jsonw_key(j, "pairs");
    jsonw_arr_begin(j);
    for (size_t i = 0; i < r->np; i++) {
        const versions_pair_t *p = &r->p[i];
        jsonw_obj_begin(j);
        jsonw_key(j, "edge_tier");
        jsonw_str(j, p->edge_tier);
        jsonw_key(j, "edge_version");
        str_or_null(j, p->edge_version);
        jsonw_key(j, "cloud_tier");
        jsonw_str(j, p->cloud_tier);
        jsonw_key(j, "cloud_version");
        str_or_null(j, p->cloud_version);
        jsonw_key(j, "requests");
        jsonw_uint(j, p->requests);
        jsonw_key(j, "escalation_rate");
        jsonw_double(j, rate(p->escalated, p->requests));
        jsonw_key(j, "acceptance_rate");
        if (p->spec_drafted)
            jsonw_double(j, rate(p->spec_accepted, p->spec_drafted));
        else
            jsonw_null(j);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
    jsonw_obj_end(j);
}

/* A rate or mean for the table: "-" when there is none. */
static const char *fmt_num(char *b, size_t n, double v, const char *fmt)
{
    if (!isfinite(v)) return "-";
    snprintf(b, n, fmt, v);
    return b;
}

static void fmt_time(char *b, size_t n, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(b, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void versions_print(const versions_report_t *r, FILE *f)
{
    fprintf(f, "%-12s %-14s %-20s %-20s %8s %8s %7s %7s %7s %6s %12s  %s\n", "tier", "version",
            "first_seen", "last_seen", "requests", "served", "errors", "escal", "conf", "accept",
            "usd/request", "drift");
    for (size_t i = 0; i < r->n; i++) {
        const versions_entry_t *e = &r->v[i];
        char t1[32], t2[32], a[32], b[32], c[32], d[32];
        fmt_time(t1, sizeof t1, e->first_ms);
        fmt_time(t2, sizeof t2, e->last_ms);
        fprintf(f, "%-12s %-14s %-20s %-20s %8llu %8llu %7s %7s %7s %6s %12s", e->tier,
                *e->version ? e->version : "-", t1, t2, (unsigned long long)e->requests,
                (unsigned long long)e->served,
                fmt_num(a, sizeof a, rate(e->errors, e->requests), "%.3f"),
                fmt_num(b, sizeof b, rate(e->escalated, e->requests), "%.3f"),
                fmt_num(c, sizeof c, mean_confidence(e), "%.3f"), "-",
                fmt_num(d, sizeof d, cost_per_request(e), "%.3g"));
        if (e->drift)
            fprintf(f, "  DRIFT vs %s: %s",
                    *r->v[e->previous].version ? r->v[e->previous].version : "-", e->reasons);
        fputc('\n', f);
    }
    if (!r->np) return;
    fprintf(f, "\n%-12s %-14s %-12s %-14s %8s %7s %7s\n", "edge", "edge_version", "cloud",
            "cloud_version", "requests", "escal", "accept");
    for (size_t i = 0; i < r->np; i++) {
        const versions_pair_t *p = &r->p[i];
        char a[32];
        fprintf(f, "%-12s %-14s %-12s %-14s %8llu %7s %7s\n", p->edge_tier,
                *p->edge_version ? p->edge_version : "-", p->cloud_tier,
                *p->cloud_version ? p->cloud_version : "-", (unsigned long long)p->requests,
                fmt_num(a, sizeof a, rate(p->escalated, p->requests), "%.3f"), "-");
    }
}

/* ==================================================== gateway state ===== */

#define VERSIONS_LOGGED_MAX 256

struct versions_state {
    pthread_mutex_t mu; /* guards last, have_last and logged */
    versions_report_t last;
    bool have_last;
    /* (tier, version) whose drift was logged: one line per process each. */
    char logged[VERSIONS_LOGGED_MAX][128];
    size_t n_logged;
    /* The periodic check. */
    store_t *store; /* the thread's own connection */
    store_ledger_writer_t *ledger;
    config_drift_t th;
    pthread_t thr;
    bool started, stop;
    pthread_cond_t wake;
};

static void *versions_main(void *arg)
{
    versions_state_t *vs = arg;
    pthread_mutex_lock(&vs->mu);
    bool first = true; /* a report right at start, then every interval_s */
    while (!vs->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += vs->th.interval_s;
        while (!first && !vs->stop &&
               pthread_cond_timedwait(&vs->wake, &vs->mu, &until) != ETIMEDOUT) {
        }
        first = false;
        if (vs->stop) break;
        pthread_mutex_unlock(&vs->mu);
        if (vs->ledger) store_ledger_writer_flush(vs->ledger);
        versions_report_t r;
        int rc = versions_query(vs->store, 0, &vs->th, &r);
        if (rc)
            log_warn("versions: ledger query failed: %s (%s)", sy_strerror(rc),
                     store_errmsg(vs->store));
        else {
            versions_state_update(vs, &r);
            versions_report_free(&r);
        }
        pthread_mutex_lock(&vs->mu);
    }
    pthread_mutex_unlock(&vs->mu);
    log_thread_cleanup();
    return NULL;
}

versions_state_t *versions_state_new(const char *store_url, store_ledger_writer_t *ledger,
                                     const config_drift_t *th, char *err, size_t errlen)
{
    versions_state_t *vs = mem_calloc(1, sizeof *vs);
    pthread_mutex_init(&vs->mu, NULL);
    pthread_cond_init(&vs->wake, NULL);
    vs->th = *th;
    vs->ledger = ledger;
    if (th->interval_s == 0) return vs;
    vs->store = store_open(store_url, err, errlen);
    if (!vs->store) {
        versions_state_free(vs);
        return NULL;
    }
    if (pthread_create(&vs->thr, NULL, versions_main, vs)) {
        snprintf(err, errlen, "cannot start the versions thread");
        versions_state_free(vs);
        return NULL;
    }
    vs->started = true;
    return vs;
}

void versions_state_free(versions_state_t *vs)
{
    if (!vs) return;
    if (vs->started) {
        pthread_mutex_lock(&vs->mu);
        vs->stop = true;
        pthread_cond_signal(&vs->wake);
        pthread_mutex_unlock(&vs->mu);
        pthread_join(vs->thr, NULL);
    }
    store_close(vs->store);
    versions_report_free(&vs->last);
    pthread_cond_destroy(&vs->wake);
    pthread_mutex_destroy(&vs->mu);
    mem_free(vs);
}

/* Logs e's drift unless this process already did (vs->mu held). */
static void log_drift_once(versions_state_t *vs, const versions_report_t *r,
                           const versions_entry_t *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s\x1f%s", e->tier, e->version);
    for (size_t i = 0; i < vs->n_logged; i++)
        if (!strcmp(vs->logged[i], key)) return;
    if (vs->n_logged == VERSIONS_LOGGED_MAX) return;
    memcpy(vs->logged[vs->n_logged++], key, sizeof key);
    jsonw_t *j = log_event_begin(LOG_WARN, "version_drift");
    if (!j) return;
    jsonw_key(j, "tier");
    jsonw_str(j, e->tier);
    jsonw_key(j, "version");
    jsonw_str(j, e->version);
    jsonw_key(j, "previous");
    jsonw_str(j, r->v[e->previous].version);
    jsonw_key(j, "requests");
    jsonw_uint(j, e->requests);
    jsonw_key(j, "reasons");
    jsonw_str(j, e->reasons);
    log_event_end();
}

void versions_state_update(versions_state_t *vs, const versions_report_t *r)
{
    versions_report_t copy = *r;
    copy.v = mem_calloc(VERSIONS_MAX, sizeof *copy.v);
    copy.p = mem_calloc(VERSIONS_MAX, sizeof *copy.p);
    memcpy(copy.v, r->v, r->n * sizeof *r->v);
    memcpy(copy.p, r->p, r->np * sizeof *r->p);
    pthread_mutex_lock(&vs->mu);
    versions_report_free(&vs->last);
    vs->last = copy;
    vs->have_last = true;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].drift) log_drift_once(vs, r, &r->v[i]);
    pthread_mutex_unlock(&vs->mu);
}

/* Writes s as a Prometheus label value (backslash, quote and newline escaped). */
static void label_value(buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(out, '\\'), buf_putc(out, *s);
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *s);
    }
}

void versions_state_write_metrics(versions_state_t *vs, buf_t *out)
{
    buf_puts(out, "# HELP switchyard_version_drift 1 when a model version's figures moved beyond "
                  "the drift thresholds against the tier's previous version\n"
                  "# TYPE switchyard_version_drift gauge\n");
    pthread_mutex_lock(&vs->mu);
    for (size_t i = 0; i < vs->last.n; i++) {
        const versions_entry_t *e = &vs->last.v[i];
        buf_puts(out, "switchyard_version_drift{tier=\"");
        label_value(out, e->tier);
        buf_puts(out, "\",version=\"");
        label_value(out, e->version);
        buf_printf(out, "\"} %d\n", e->drift ? 1 : 0);
    }
    pthread_mutex_unlock(&vs->mu);
}

void versions_state_write_json(versions_state_t *vs, jsonw_t *j)
{
    pthread_mutex_lock(&vs->mu);
    if (vs->have_last)
        versions_write_json(&vs->last, j);
    else
        jsonw_null(j);
    pthread_mutex_unlock(&vs->mu);
}
