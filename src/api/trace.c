/* trace.c — one trace per request for the OTLP exporter (docs/telemetry.md): a
 * server span for the request, child spans for the routing decision and for each
 * upstream call, and a first_token event. Attributes carry the tier, model,
 * version, reasons, tokens, cost and PII entity types, never request text.
 */
#include "api/app_impl.h"
#include "api/otlp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_uint_fast64_t trace_seq;

/* Fills n bytes of a fresh, non-zero id. Unique, not secret: a counter mixed with
 * the generation's salt. */
static void new_id(const api_app_t *app, uint8_t *out, size_t n)
{
    for (size_t k = 0; k < n; k += 8) {
        uint64_t v = hash_mix(atomic_fetch_add(&trace_seq, 1) ^ app->id_salt ^ (uint64_t)k);
        if (!v) v = 1;
        memcpy(out + k, &v, n - k < 8 ? n - k : 8);
    }
}

void api_trace_begin(api_call_t *c, const http_req_t *hr)
{
    api_app_t *app = c->w->app;
    c->decided_us = 0;
    memset(c->trace_parent, 0, sizeof c->trace_parent);
    if (!app->root->otlp) return;
    size_t n = 0;
    const char *v = http_req_header(hr, "traceparent", &n);
    uint8_t flags;
    if (!v || otlp_traceparent_parse(v, n, c->trace_id, c->trace_parent, &flags)) {
        new_id(app, c->trace_id, sizeof c->trace_id);
        memset(c->trace_parent, 0, sizeof c->trace_parent);
    }
    new_id(app, c->span_id, sizeof c->span_id);
}

/* Monotonic microseconds to Unix nanoseconds, through one reading of both clocks. */
typedef struct {
    int64_t offset_ns;
} clock_map_t;

static clock_map_t clock_map_now(void)
{
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    uint64_t mono_ns = clock_mono_ns();
    return (clock_map_t){(int64_t)w.tv_sec * 1000000000 + w.tv_nsec - (int64_t)mono_ns};
}

static uint64_t to_unix_ns(clock_map_t m, uint64_t mono_us)
{
    return (uint64_t)((int64_t)mono_us * 1000 + m.offset_ns);
}

void api_trace_end(api_call_t *c, const exec_result_t *r, int status, double cost,
                   const char *reasons, const char *pii)
{
    api_app_t *app = c->w->app;
    otlp_t *x = app->root->otlp;
    if (!x) return;
    clock_map_t cm = clock_map_now();
    uint64_t now_us = clock_mono_us();
    static _Thread_local otlp_trace_t scratch; /* per worker thread: no allocation */
    otlp_trace_t *t = &scratch;
    otlp_trace_init(t, c->trace_id, c->trace_parent);
    const tier_t *served = r && r->tier >= 0 ? &app->tiers[r->tier] : NULL;

    /* The request. */
    const char *name = c->route_only    ? "POST /v1/route"
                       : c->completions ? "POST /v1/completions"
                                        : "POST /v1/chat/completions";
    int root = otlp_span_add(t, -1, c->span_id, name, OTLP_KIND_SERVER, to_unix_ns(cm, c->start_us),
                             to_unix_ns(cm, now_us));
    t->spans[root].status = status >= 500 ? OTLP_STATUS_ERROR : OTLP_STATUS_UNSET;
    otlp_attr_str(t, "switchyard.request_id", c->id);
    otlp_attr_int(t, "http.response.status_code", status);
    otlp_attr_str(t, "switchyard.tier", served ? served->s.name : "");
    otlp_attr_str(t, "switchyard.model", served ? served->s.model : "");
    otlp_attr_str(t, "switchyard.version", served ? served->s.version : "");
    otlp_attr_str(t, "switchyard.reasons", reasons);
    otlp_attr_str(t, "switchyard.pii_types", pii);
    otlp_attr_int(t, "gen_ai.usage.input_tokens", r ? r->tokens_in : 0);
    otlp_attr_int(t, "gen_ai.usage.output_tokens", r ? r->tokens_out : 0);
    otlp_attr_double(t, "switchyard.cost_usd", cost);
    otlp_attr_bool(t, "switchyard.escalated", r && r->escalated);
    otlp_attr_bool(t, "switchyard.stream", c->req.stream);
    if (r && r->has_confidence) otlp_attr_double(t, "switchyard.confidence", r->confidence);
    if (r && r->ttft_us && r->start_us) {
        t->spans[root].event_ns = to_unix_ns(cm, r->start_us + r->ttft_us);
        t->spans[root].event_name = "first_token";
    }

    /* The decision: the router's time, ending when it returned. */
    if (c->decided_us) {
        uint8_t id[8];
        new_id(app, id, sizeof id);
        uint64_t us = c->decision_ns / 1000;
        otlp_span_add(t, root, id, "decision", OTLP_KIND_INTERNAL,
                      to_unix_ns(cm, c->decided_us - (us < c->decided_us ? us : 0)),
                      to_unix_ns(cm, c->decided_us));
        char buf[1024] = "";
        for (int i = 0; i < c->d.n_reasons; i++) {
            size_t k = strlen(buf);
            snprintf(buf + k, sizeof buf - k, "%s%s", i ? "," : "", c->d.reasons[i]);
        }
        otlp_attr_str(t, "switchyard.reasons", buf);
        otlp_attr_str(
            t, "switchyard.tier",
            c->d.tier >= 0 && (size_t)c->d.tier < app->n_tiers ? app->tiers[c->d.tier].s.name : "");
        otlp_attr_str(t, "switchyard.pii_types", pii);
        otlp_attr_bool(t, "switchyard.local_only", c->d.local_only);
        otlp_attr_bool(t, "switchyard.cascade", c->d.cascade);
    }

    /* Each upstream (or local engine) call. */
    for (int i = 0; r && i < r->n_calls; i++) {
        const exec_call_span_t *cs = &r->calls[i];
        if (cs->tier < 0 || (size_t)cs->tier >= app->n_tiers) continue;
        const tier_t *ct = &app->tiers[cs->tier];
        uint8_t id[8];
        new_id(app, id, sizeof id);
        char sname[96];
        snprintf(sname, sizeof sname, "attempt %s", ct->s.name);
        int k = otlp_span_add(t, root, id, sname, OTLP_KIND_INTERNAL, to_unix_ns(cm, cs->start_us),
                              to_unix_ns(cm, cs->end_us ? cs->end_us : now_us));
        if (k < 0) break;
        t->spans[k].status = cs->ok ? OTLP_STATUS_OK : OTLP_STATUS_ERROR;
        otlp_attr_int(t, "switchyard.attempt", i + 1);
        otlp_attr_str(t, "switchyard.tier", ct->s.name);
        otlp_attr_str(t, "switchyard.model", ct->s.model);
        otlp_attr_str(t, "switchyard.version", ct->s.version);
        otlp_attr_str(t, "switchyard.privacy", api_privacy_name(ct->s.privacy));
        otlp_attr_bool(t, "switchyard.ok", cs->ok);
    }
    otlp_submit(x, t);
}

/* The exporter's counters (zero when telemetry is off). */
void api_trace_metrics(api_app_t *root, buf_t *b)
{
    buf_printf(b,
               "# HELP switchyard_otlp_dropped_total Spans not exported: queue full or a failed "
               "POST.\n# TYPE switchyard_otlp_dropped_total counter\n"
               "switchyard_otlp_dropped_total %llu\n"
               "# HELP switchyard_otlp_exported_total Spans the collector accepted.\n"
               "# TYPE switchyard_otlp_exported_total counter\n"
               "switchyard_otlp_exported_total %llu\n",
               (unsigned long long)(root->otlp ? otlp_dropped(root->otlp) : 0),
               (unsigned long long)(root->otlp ? otlp_exported(root->otlp) : 0));
}
