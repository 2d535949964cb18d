/* server.c — the gateway: one handler per endpoint, on the HTTP workers.
 *
 * A chat request flows: parse and validate (request.c) -> session state ->
 * router_decide (pure) -> exec (tiers, failover, cascade) -> response with the
 * switchyard object and headers -> ledger row, metrics, one log line. Personal
 * data never reaches logs or the ledger: only entity type names do.
 */
#include "api/server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/feedback.h"
#include "api/metrics.h"
#include "api/offload.h"
#include "api/piiload.h"
#include "api/request.h"
#include "api/session.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http.h"
#include "net/upstream.h"
#include "route/router.h"
#include "store/store.h"
#include "tier/exec.h"
#include "tier/local.h"
#include "tier/tier.h"

#define API_MAX_SESSIONS 100000
/* Rows queued for the ledger thread: about 0.8 s of writes at 20k requests/s. Each
 * slot is ~2 KiB and the ring is walked in order, so a larger queue only spreads
 * pushes over more cold memory (and first-touch page faults). */
#define API_LEDGER_QUEUE    16384
#define API_LEDGER_FLUSH_MS 200
/* Cost reports waiting for the offload thread before new ones get a 503. */
#define API_MAX_REPORTS 16

struct api_app {
    const config_t *cfg;
    tier_t tiers[ROUTE_MAX_TIERS];
    size_t n_tiers;
    char *api_keys[ROUTE_MAX_TIERS]; /* owned copies of resolved secrets */
    char *base_urls[ROUTE_MAX_TIERS];
    pii_scanner_t *pii;
    router_t *router;
    store_ledger_writer_t *ledger;
    store_t *store; /* sessions, feedback, bandit state: under store_mu */
    pthread_mutex_t store_mu;
    store_t *report_store; /* ledger reports: used by the offload thread only */
    offload_t *offload;    /* runs reports off the worker loops */
    session_table_t *sessions;
    feedback_ring_t *feedback;
    atomic_uint_fast64_t n_feedback;
    metrics_t metrics;
    http_server_t *http;
    int ref_tier; /* the all-cloud counterfactual's tier, or -1 */
    atomic_bool draining;
    atomic_uint_fast64_t seq;
    uint64_t id_salt;
};

typedef struct api_worker {
    api_app_t *app;
    exec_env_t env;
    router_scratch_t *rs;
    pii_scratch_t *pii;          /* for the mask action's second scan */
    struct api_call *free_calls; /* reusable request states */
    buf_t scratch;               /* response building */
} api_worker_t;

/* One in-flight inference request. */
typedef struct api_call {
    struct api_call *next_free;
    api_worker_t *w;
    http_res_t *res;
    arena_t arena;
    api_request_t req;
    route_decision_t d;
    exec_t *exec;
    char id[40];
    int64_t ts_ms;
    uint64_t start_us;
    uint64_t decision_ns;
    buf_t out; /* SSE event assembly */
    bool aborted;
    pii_mask_t *mask; /* values masked before the request left, or NULL */
    buf_t restored;   /* the answer with masked values put back */
} api_call_t;

/* ------------------------------------------------------------ replies ---- */

static void send_json(http_res_t *res, int status, buf_t *b)
{
    http_res_send(res, status, "application/json", b->data ? b->data : "", b->len);
}

/* An OpenAI-shaped error object. */
static void send_error(api_worker_t *w, http_res_t *res, int status, const char *type,
                       const char *msg, const char *param, const char *code)
{
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "error");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "message");
    jsonw_str(&j, msg);
    jsonw_key(&j, "type");
    jsonw_str(&j, type);
    jsonw_key(&j, "param");
    if (param && *param)
        jsonw_str(&j, param);
    else
        jsonw_null(&j);
    jsonw_key(&j, "code");
    if (code)
        jsonw_str(&j, code);
    else
        jsonw_null(&j);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    send_json(res, status, b);
}

static const char *privacy_name(route_privacy_t p)
{
    return p == ROUTE_PRIVACY_ON_DEVICE ? "on_device"
           : p == ROUTE_PRIVACY_ON_PREM ? "on_prem"
                                        : "external";
}

/* ---------------------------------------------------------- costs ---- */

static int reference_tier(const api_app_t *app)
{
    return app->ref_tier;
}

static void pii_names(uint32_t mask, char *out, size_t n)
{
    out[0] = 0;
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        if (mask & (1u << t)) {
            if (out[0]) strncat(out, ",", n - strlen(out) - 1);
            strncat(out, pii_type_name((pii_type_t)t), n - strlen(out) - 1);
        }
}

/* ----------------------------------------------- the switchyard object ---- */

static void join_reasons(const api_call_t *c, const exec_result_t *r, char *out, size_t n)
{
    out[0] = 0;
    for (int i = 0; i < c->d.n_reasons; i++) {
        if (out[0]) strncat(out, ",", n - strlen(out) - 1);
        strncat(out, c->d.reasons[i], n - strlen(out) - 1);
    }
    for (int i = 0; r && i < r->n_notes; i++) {
        if (out[0]) strncat(out, ",", n - strlen(out) - 1);
        strncat(out, r->notes[i], n - strlen(out) - 1);
    }
}

static void write_sy_object(api_call_t *c, const exec_result_t *r, double cost, jsonw_t *j)
{
    api_app_t *app = c->w->app;
    const tier_t *t = r->tier >= 0 ? &app->tiers[r->tier] : NULL;
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, c->id);
    jsonw_key(j, "tier");
    jsonw_str(j, t ? t->s.name : NULL);
    jsonw_key(j, "model");
    jsonw_str(j, t ? t->s.model : NULL);
    jsonw_key(j, "version");
    jsonw_str(j, t && t->s.version && *t->s.version ? t->s.version : NULL);
    jsonw_key(j, "privacy");
    jsonw_str(j, t ? privacy_name(t->s.privacy) : NULL);
    jsonw_key(j, "reasons");
    jsonw_arr_begin(j);
    for (int i = 0; i < c->d.n_reasons; i++)
        jsonw_str(j, c->d.reasons[i]);
    for (int i = 0; i < r->n_notes; i++)
        jsonw_str(j, r->notes[i]);
    jsonw_arr_end(j);
    jsonw_key(j, "pii");
    jsonw_arr_begin(j);
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if (c->d.pii_types & (1u << p)) jsonw_str(j, pii_type_name((pii_type_t)p));
    jsonw_arr_end(j);
    jsonw_key(j, "local_only");
    jsonw_bool(j, c->d.local_only);
    jsonw_key(j, "confidence");
    if (r->has_confidence)
        jsonw_double(j, r->confidence);
    else
        jsonw_null(j);
    jsonw_key(j, "escalated");
    jsonw_bool(j, r->escalated);
    jsonw_key(j, "low_confidence");
    jsonw_bool(j, r->low_confidence);
    jsonw_key(j, "failover");
    jsonw_bool(j, r->failover);
    jsonw_key(j, "degraded");
    jsonw_bool(j, r->degraded);
    if (r->degraded) {
        jsonw_key(j, "warning");
        jsonw_str(j, "degraded quality: the preferred cloud tier was unavailable, so a smaller "
                     "edge model answered");
    }
    jsonw_key(j, "attempts");
    jsonw_int(j, r->attempts);
    jsonw_key(j, "tokens_in");
    jsonw_uint(j, r->tokens_in);
    jsonw_key(j, "tokens_out");
    jsonw_uint(j, r->tokens_out);
    jsonw_key(j, "cost_usd");
    jsonw_double(j, cost);
    jsonw_key(j, "decision_us");
    jsonw_double(j, (double)c->decision_ns / 1000.0);
    jsonw_obj_end(j);
}

static void set_sy_headers(api_call_t *c, const exec_result_t *r, int tier)
{
    api_app_t *app = c->w->app;
    char reasons[1024];
    join_reasons(c, r, reasons, sizeof reasons);
    http_res_header(c->res, "X-Request-Id", c->id);
    if (tier >= 0) http_res_header(c->res, "X-Switchyard-Tier", app->tiers[tier].s.name);
    http_res_header(c->res, "X-Switchyard-Reason", reasons);
    if ((r && r->degraded) || c->d.degraded)
        http_res_header(c->res, "X-Switchyard-Degraded",
                        "edge answered in place of an unavailable cloud tier");
}

/* ---------------------------------------------------- accounting ---- */

static void account(api_call_t *c, const exec_result_t *r, int status, double cost)
{
    api_app_t *app = c->w->app;
    uint64_t total_us = clock_mono_us() - c->start_us;
    int tier = r ? r->tier : -1;
    metrics_count_request(&app->metrics, tier, status);
    if (tier >= 0) {
        metrics_hist_observe(&app->metrics.total[tier], total_us * 1000);
        if (r->ttft_us) metrics_hist_observe(&app->metrics.ttft[tier], r->ttft_us * 1000);
    }
    if (r && r->escalated) atomic_fetch_add(&app->metrics.escalations, 1);
    if (r && r->degraded) atomic_fetch_add(&app->metrics.degraded, 1);
    if (r && r->failover && c->d.tier >= 0) atomic_fetch_add(&app->metrics.failovers[c->d.tier], 1);

    char reasons[1024], pii[256];
    join_reasons(c, r, reasons, sizeof reasons);
    pii_names(c->d.pii_types, pii, sizeof pii);
    const tier_t *t = tier >= 0 ? &app->tiers[tier] : NULL;
    uint32_t tin = r && r->tokens_in ? r->tokens_in : c->d.est_tokens_in;
    uint32_t tout = r ? r->tokens_out : 0;
    int ref = reference_tier(app);
    double cloud_cost = ref >= 0 ? tier_cost_usd(&app->tiers[ref], tin, tout) : cost;
    char model[256] = "";
    if (t && *t->s.version)
        snprintf(model, sizeof model, "%s@%s", t->s.model, t->s.version);
    else if (t) {
        size_t n = strnlen(t->s.model, sizeof model - 1); /* as snprintf "%s" truncates */
        memcpy(model, t->s.model, n);
        model[n] = 0;
    }

    if (app->ledger) {
        store_ledger_row_t row = {0};
        size_t idn = strnlen(c->id, sizeof row.id - 1);
        memcpy(row.id, c->id, idn); /* row is zeroed: NUL-terminated */
        row.ts_ms = c->ts_ms;
        row.tenant = c->req.tenant;
        row.team = c->req.team;
        row.feature = c->req.feature;
        row.session = c->req.session;
        row.tier = t ? t->s.name : "";
        row.model = model;
        row.status = status == 200                            ? "ok"
                     : (status == 403 || status == 503) && !t ? "refused"
                                                              : "error";
        row.http_status = status;
        row.tokens_in = t ? tin : 0;
        row.tokens_out = tout;
        row.cost_usd = cost;
        row.cloud_cost_usd = t ? cloud_cost : 0;
        row.latency_ms = (uint32_t)(total_us / 1000);
        row.ttft_ms = r ? (uint32_t)(r->ttft_us / 1000) : 0;
        row.failover = r && r->failover;
        row.escalated = r && r->escalated;
        row.degraded = r && r->degraded;
        row.external = r && r->attempts > 0 && t && t->s.privacy == ROUTE_PRIVACY_EXTERNAL;
        row.pii_types = c->d.pii_types;
        row.pii_names = pii;
        row.reasons = reasons;
        if (store_ledger_writer_push(app->ledger, &row))
            atomic_fetch_add(&app->metrics.ledger_dropped, 1);
    }
    jsonw_t *j = log_event_begin(LOG_INFO, "request");
    if (j) {
        jsonw_key(j, "id");
        jsonw_str(j, c->id);
        jsonw_key(j, "status");
        jsonw_int(j, status);
        jsonw_key(j, "tier");
        jsonw_str(j, t ? t->s.name : NULL);
        jsonw_key(j, "tenant");
        jsonw_str(j, c->req.tenant);
        jsonw_key(j, "team");
        jsonw_str(j, c->req.team);
        jsonw_key(j, "feature");
        jsonw_str(j, c->req.feature);
        jsonw_key(j, "stream");
        jsonw_bool(j, c->req.stream);
        jsonw_key(j, "pii");
        jsonw_str(j, pii);
        jsonw_key(j, "reasons");
        jsonw_str(j, reasons);
        jsonw_key(j, "tokens_in");
        jsonw_uint(j, tin);
        jsonw_key(j, "tokens_out");
        jsonw_uint(j, tout);
        jsonw_key(j, "cost_usd");
        jsonw_double(j, cost);
        jsonw_key(j, "latency_ms");
        jsonw_double(j, (double)total_us / 1000.0);
        jsonw_key(j, "decision_us");
        jsonw_double(j, (double)c->decision_ns / 1000.0);
        log_event_end();
    }
}

/* ------------------------------------------------------ call pool ---- */

static api_call_t *call_get(api_worker_t *w)
{
    api_call_t *c = w->free_calls;
    if (c) {
        w->free_calls = c->next_free;
    } else {
        c = mem_calloc(1, sizeof *c);
        arena_init(&c->arena, 16384);
        buf_init(&c->out, 32u << 20);
        buf_init(&c->restored, 32u << 20);
    }
    c->next_free = NULL;
    c->w = w;
    c->exec = NULL;
    c->aborted = false;
    return c;
}

static void call_put(api_call_t *c)
{
    api_worker_t *w = c->w;
    api_request_deinit(&c->req);
    pii_mask_free(c->mask);
    c->mask = NULL;
    buf_reset(&c->restored);
    arena_reset(&c->arena);
    buf_reset(&c->out);
    if (c->out.cap > (1u << 20)) buf_deinit(&c->out), buf_init(&c->out, 32u << 20);
    c->next_free = w->free_calls;
    w->free_calls = c;
}

static void call_free(api_call_t *c)
{
    arena_deinit(&c->arena);
    buf_deinit(&c->out);
    buf_deinit(&c->restored);
    mem_free(c);
}

/* -------------------------------------------------- exec callbacks ---- */

static void on_stream_begin(void *arg, int tier)
{
    api_call_t *c = arg;
    exec_result_t none = {0};
    none.tier = tier;
    set_sy_headers(c, &none, tier);
    http_res_header(c->res, "Cache-Control", "no-cache");
    http_res_stream_begin(c->res, 200, "text/event-stream");
}

static void write_event(api_call_t *c, const char *data, size_t n)
{
    buf_reset(&c->out);
    buf_append(&c->out, "data: ", 6);
    buf_append(&c->out, data, n);
    buf_append(&c->out, "\n\n", 2);
    http_res_stream_write(c->res, c->out.data, c->out.len);
}

static void on_stream_event(void *arg, const char *data, size_t n)
{
    api_call_t *c = arg;
    /* The usage-only chunk switchyard asked for: pass it on only if the client did. */
    if (!c->req.include_usage && memmem(data, n, "\"choices\":[]", 12) &&
        memmem(data, n, "\"usage\"", 7))
        return;
    write_event(c, data, n);
}

/* The final stream chunk carrying the switchyard object. */
static void write_sy_event(api_call_t *c, const exec_result_t *r, double cost)
{
    buf_t *b = &c->w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, c->id);
    jsonw_key(&j, "object");
    jsonw_str(&j, c->req.completions ? "text_completion" : "chat.completion.chunk");
    jsonw_key(&j, "created");
    jsonw_int(&j, c->ts_ms / 1000);
    jsonw_key(&j, "model");
    jsonw_str(&j, r->tier >= 0 ? c->w->app->tiers[r->tier].s.model : "");
    jsonw_key(&j, "choices");
    jsonw_arr_begin(&j);
    jsonw_arr_end(&j);
    jsonw_key(&j, "switchyard");
    write_sy_object(c, r, cost, &j);
    jsonw_obj_end(&j);
    write_event(c, b->data, b->len);
}

/* A complete (non-streamed) answer re-sent as SSE: the client asked for a stream
 * but the cascade needed the whole edge answer first. */
static void replay_as_stream(api_call_t *c, const exec_result_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    cJSON *text = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "text") : NULL;
    cJSON *fr = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "finish_reason") : NULL;
    const char *model = r->tier >= 0 ? c->w->app->tiers[r->tier].s.model : "";
    for (int phase = 0; phase < 2; phase++) {
        buf_t *b = &c->w->scratch;
        buf_reset(b);
        jsonw_t w;
        jsonw_init(&w, b);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "id");
        jsonw_str(&w, c->id);
        jsonw_key(&w, "object");
        jsonw_str(&w, c->req.completions ? "text_completion" : "chat.completion.chunk");
        jsonw_key(&w, "created");
        jsonw_int(&w, c->ts_ms / 1000);
        jsonw_key(&w, "model");
        jsonw_str(&w, model);
        jsonw_key(&w, "choices");
        jsonw_arr_begin(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "index");
        jsonw_int(&w, 0);
        if (c->req.completions) {
            jsonw_key(&w, "text");
            jsonw_str(&w, phase == 0 && cJSON_IsString(text) ? text->valuestring : "");
        } else {
            jsonw_key(&w, "delta");
            jsonw_obj_begin(&w);
            if (phase == 0) {
                jsonw_key(&w, "role");
                jsonw_str(&w, "assistant");
                jsonw_key(&w, "content");
                jsonw_str(&w, cJSON_IsString(content) ? content->valuestring : "");
            }
            jsonw_obj_end(&w);
        }
        jsonw_key(&w, "finish_reason");
        if (phase == 1)
            jsonw_str(&w, cJSON_IsString(fr) ? fr->valuestring : "stop");
        else
            jsonw_null(&w);
        jsonw_obj_end(&w);
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        write_event(c, b->data, b->len);
    }
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ masking ---- */

/* Masks, in one string value, the spans of the types in `types`. */
static int mask_string(api_worker_t *w, api_call_t *c, cJSON *str, uint32_t types)
{
    api_app_t *app = w->app;
    pii_span_t spans[256];
    size_t n = 0, k = 0;
    const char *s = str->valuestring;
    size_t len = strlen(s);
    int rc = pii_scan(app->pii, w->pii, s, len, spans, 256, &n);
    if (rc) return rc;
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++)
        if (types & (1u << spans[i].type)) spans[k++] = spans[i];
    if (!k) return 0;
    buf_t out;
    buf_init(&out, len * 4 + 4096);
    rc = pii_mask_apply(c->mask, s, len, spans, k, &out);
    if (!rc && !cJSON_SetValuestring(str, out.data)) rc = SY_EINVAL;
    buf_deinit(&out);
    return rc;
}

/* The mask action: values of mask-typed entities are replaced by placeholders in
 * every text the request holds, before it leaves; the answer gets them back. */
static int mask_request(api_worker_t *w, api_call_t *c, uint32_t types)
{
    c->mask = pii_mask_new(0);
    cJSON *root = c->req.json;
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsString(prompt)) return mask_string(w, c, prompt, types);
    cJSON *m;
    int rc = 0;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "messages"))
    {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(content) && (rc = mask_string(w, c, content, types))) return rc;
        cJSON *part;
        if (cJSON_IsArray(content)) cJSON_ArrayForEach(part, content)
            {
                cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (cJSON_IsString(t) && (rc = mask_string(w, c, t, types))) return rc;
            }
        cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            cJSON *args = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(tc, "function"), "arguments");
            if (cJSON_IsString(args) && (rc = mask_string(w, c, args, types))) return rc;
        }
    }
    return rc;
}

/* Puts masked values back into the answer's text (message content or text). */
static void restore_masked(api_call_t *c, exec_result_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    cJSON *str = msg  ? cJSON_GetObjectItemCaseSensitive(msg, "content")
                 : c0 ? cJSON_GetObjectItemCaseSensitive(c0, "text")
                      : NULL;
    if (cJSON_IsString(str)) {
        buf_t out;
        buf_init(&out, 32u << 20);
        if (!pii_mask_restore(c->mask, str->valuestring, strlen(str->valuestring), &out))
            cJSON_SetValuestring(str, out.data ? out.data : "");
        buf_deinit(&out);
        char *text = cJSON_PrintUnformatted(j);
        if (text) {
            buf_reset(&c->restored);
            if (!buf_puts(&c->restored, text)) {
                r->body = c->restored.data;
                r->body_len = c->restored.len;
            }
            free(text);
        }
    }
    cJSON_Delete(j);
}

static void on_done(void *arg, exec_result_t *r)
{
    api_call_t *c = arg;
    api_app_t *app = c->w->app;
    c->exec = NULL;
    double cost = r->tier >= 0 ? tier_cost_usd(&app->tiers[r->tier],
                                               r->tokens_in ? r->tokens_in : c->d.est_tokens_in,
                                               r->tokens_out)
                               : 0;
    if (r->tier >= 0 && r->status == 200 && c->req.session[0])
        session_record(app->sessions, c->req.session, c->d.pii_types != 0, r->tier, c->ts_ms);
    if (r->tier >= 0 && r->status == 200) {
        feedback_ring_put(app->feedback, c->id, &c->d.features, r->tier);
        /* Implicit feedback: an escalated edge answer was not good enough. */
        if (r->escalated && app->cfg->route.policy == ROUTE_POLICY_BANDIT && c->d.tier >= 0)
            router_feedback(app->router, &c->d.features, c->d.tier,
                            route_bandit_reward(0.0, 0.0, 0.0, 0, 0));
    }
    if (c->mask && r->status == 200 && !r->streamed) restore_masked(c, r);
    if (r->streamed) {
        if (r->status != 200) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "{\"error\":{\"message\":\"the tier failed mid-stream: %s\","
                     "\"type\":\"upstream_error\",\"param\":null,\"code\":null}}",
                     r->err_type);
            write_event(c, msg, strlen(msg));
        } else {
            write_sy_event(c, r, cost);
        }
        http_res_stream_write(c->res, "data: [DONE]\n\n", 14);
        http_res_stream_end(c->res);
    } else if (r->status == 200 && c->req.stream) {
        set_sy_headers(c, r, r->tier);
        http_res_header(c->res, "Cache-Control", "no-cache");
        http_res_stream_begin(c->res, 200, "text/event-stream");
        replay_as_stream(c, r);
        write_sy_event(c, r, cost);
        http_res_stream_write(c->res, "data: [DONE]\n\n", 14);
        http_res_stream_end(c->res);
    } else if (r->status == 200) {
        /* Splice the switchyard object into the upstream's JSON object (validated by
         * exec), which saves a parse and print of the whole answer. */
        buf_t *b = &c->w->scratch;
        buf_reset(b);
        size_t end = r->body_len;
        while (end > 0 && r->body[end - 1] != '}')
            end--;
        buf_append(b, r->body, end - 1);
        buf_puts(b, ",\"switchyard\":");
        jsonw_t j;
        jsonw_init(&j, b);
        write_sy_object(c, r, cost, &j);
        buf_puts(b, "}");
        set_sy_headers(c, r, r->tier);
        send_json(c->res, 200, b);
    } else {
        set_sy_headers(c, r, r->tier);
        send_error(c->w, c->res, r->status, r->err_type, r->message, NULL, NULL);
    }
    account(c, r, r->status, cost);
    call_put(c);
}

static void on_client_abort(void *arg)
{
    api_call_t *c = arg;
    c->aborted = true;
    if (c->exec) exec_abort(c->exec); /* calls on_done, which finishes res */
}

static const exec_sink_t sink = {on_stream_begin, on_stream_event, on_done};

/* --------------------------------------------------------- routing ---- */

/* Resolves the tier a request forces: metadata/header "tier", or a model name that
 * is a tier name or "switchyard/<tier>". */
static const char *forced_tier(api_app_t *app, api_request_t *r)
{
    if (r->forced_tier[0]) return r->forced_tier;
    const char *m = r->model;
    if (!strncmp(m, "switchyard/", 11)) m += 11;
    for (size_t i = 0; i < app->n_tiers; i++)
        if (!strcmp(app->tiers[i].s.name, m)) return app->tiers[i].s.name;
    return NULL;
}

/* Runs the router for a parsed request. Returns the HTTP status to refuse with,
 * or 0 to go on. dry (POST /v1/route): decide only, leave session state alone. */
static int decide(api_worker_t *w, api_call_t *c, bool dry, char *msg, size_t msglen)
{
    api_app_t *app = w->app;
    route_tier_t views[ROUTE_MAX_TIERS];
    uint64_t now_ms = clock_mono_ms();
    for (size_t i = 0; i < app->n_tiers; i++)
        tier_route_view(&app->tiers[i], now_ms, &views[i]);
    session_info_t si = {0};
    bool known = c->req.session[0] && session_get(app->sessions, c->req.session, &si);
    if (c->req.session[0] && !known && app->store) {
        /* Not seen by this instance: another gateway sharing the store (or this one
         * before a restart) may have marked it private. */
        store_session_t ss;
        pthread_mutex_lock(&app->store_mu);
        int src = store_session_get(app->store, c->req.session, &ss);
        pthread_mutex_unlock(&app->store_mu);
        if (src == 0) {
            known = true;
            si.private_ = ss.is_private;
            session_record(app->sessions, c->req.session, ss.is_private, -1, c->ts_ms);
        }
    }
    route_input_t in = {
        .texts = c->req.texts,
        .n_texts = c->req.n_texts,
        .n_messages = c->req.n_messages,
        .max_tokens = c->req.max_tokens,
        .forced_tier = forced_tier(app, &c->req),
        .privacy_local_only = c->req.privacy_local_only,
        .session_private = known && si.private_,
        .now_us = clock_mono_us(),
        .rand_seed = atomic_load(&app->seq) * 0x9e3779b97f4a7c15ull ^ app->id_salt,
    };
    uint64_t t0 = clock_mono_ns();
    int rc = router_decide(app->router, w->rs, &in, views, app->n_tiers, &c->d);
    c->decision_ns = clock_mono_ns() - t0;
    metrics_hist_observe(&app->metrics.decision, c->decision_ns);
    if (rc) {
        snprintf(msg, msglen, "routing failed: %s", sy_strerror(rc));
        return 500;
    }
    for (int i = 0; i < c->d.n_reasons; i++)
        metrics_count_reason(&app->metrics, c->d.reasons[i]);
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if (c->d.pii_types & (1u << p)) atomic_fetch_add(&app->metrics.pii_hits[p], 1);
    if (c->d.pii_types && c->req.session[0] && !dry) {
        bool was_private = known && si.private_;
        session_record(app->sessions, c->req.session, true, -1, c->ts_ms);
        if (!was_private && app->store) {
            /* Write through at once: the private mark must outlive this process and be
             * seen by every gateway sharing the store. */
            store_session_t ss;
            pthread_mutex_lock(&app->store_mu);
            store_session_turn(app->store, c->req.session, "", true, c->ts_ms, &ss);
            pthread_mutex_unlock(&app->store_mu);
        }
    }
    int forced = in.forced_tier ? config_tier_find(app->cfg, in.forced_tier) : -1;
    if (c->d.status && c->d.local_only && forced >= 0 &&
        app->tiers[forced].s.privacy == ROUTE_PRIVACY_EXTERNAL) {
        snprintf(msg, msglen,
                 "the request must stay on this machine (personal data or a private "
                 "session), but it forces the external tier '%s'",
                 in.forced_tier);
        return 403;
    }
    /* Under local_only no cloud tier is eligible, so nothing can escalate; the edge
     * still scores its answer so a low-confidence one is marked as such. */
    if (c->d.status == 0 && !c->d.cascade && app->cfg->route.escalation_enabled && c->d.tier >= 0 &&
        app->tiers[c->d.tier].s.role == ROUTE_ROLE_EDGE && app->tiers[c->d.tier].s.logprobs &&
        c->d.local_only && !in.forced_tier) {
        c->d.cascade = true;
        c->d.min_confidence = app->cfg->route.escalation_min_confidence;
    }
    switch (c->d.status) {
    case 0:
        return 0;
    case SY_EINVAL:
        snprintf(msg, msglen, "unknown tier '%s' (GET /v1/models lists them)", in.forced_tier);
        return 400;
    case SY_EPRIVACY: {
        char types[256];
        pii_names(c->d.pii_types, types, sizeof types);
        snprintf(msg, msglen, "the request holds personal data (%s) that policy blocks", types);
        return 403;
    }
    default:
        snprintf(msg, msglen, "no eligible tier can serve this request%s",
                 c->d.local_only ? ": it must stay on this machine (personal data or a private "
                                   "session) and no local tier is available"
                                 : "");
        return 503;
    }
}

static void make_id(api_app_t *app, char out[40])
{
    uint64_t n = atomic_fetch_add(&app->seq, 1) + 1;
    uint64_t h = hash_mix(n ^ app->id_salt);
    /* "chatcmpl-sy%016" PRIx64, without printf */
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "chatcmpl-sy", 11);
    for (int i = 15; i >= 0; i--, h >>= 4)
        out[11 + i] = hex[h & 15];
    out[27] = 0;
}

/* POST /v1/chat/completions, /v1/completions, /v1/route. */
static void handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                         bool route_only)
{
    api_app_t *app = w->app;
    api_call_t *c = call_get(w);
    c->res = res;
    c->start_us = hr->start_us ? hr->start_us : clock_mono_us();
    c->ts_ms = clock_wall_ms();
    make_id(app, c->id);
    char err[512], param[64];
    int rc = api_request_parse(&c->req, hr, completions, &c->arena, err, sizeof err, param,
                               sizeof param);
    if (rc) {
        send_error(w, res, rc == SY_ETOOBIG ? 413 : 400, "invalid_request_error", err, param,
                   rc == SY_EPARSE ? "invalid_json" : NULL);
        metrics_count_request(&app->metrics, -1, 400);
        call_put(c);
        return;
    }
    int st = decide(w, c, route_only, err, sizeof err);
    if (route_only) {
        buf_t *b = &w->scratch;
        buf_reset(b);
        jsonw_t j;
        jsonw_init(&j, b);
        route_tier_t views[ROUTE_MAX_TIERS];
        for (size_t i = 0; i < app->n_tiers; i++)
            tier_route_view(&app->tiers[i], clock_mono_ms(), &views[i]);
        jsonw_obj_begin(&j);
        jsonw_key(&j, "decision");
        route_decision_write_json(&c->d, views, &j);
        jsonw_key(&j, "status");
        jsonw_int(&j, st ? st : 200);
        if (st) {
            jsonw_key(&j, "message");
            jsonw_str(&j, err);
        }
        jsonw_key(&j, "decision_us");
        jsonw_double(&j, (double)c->decision_ns / 1000.0);
        jsonw_obj_end(&j);
        send_json(res, 200, b);
        call_put(c);
        return;
    }
    if (st) {
        exec_result_t none = {0};
        none.tier = -1;
        set_sy_headers(c, &none, -1);
        send_error(w, res, st,
                   st == 403   ? "privacy_blocked"
                   : st == 503 ? "tier_unavailable"
                               : "invalid_request_error",
                   err, st == 400 ? "tier" : NULL, NULL);
        account(c, &none, st, 0);
        call_put(c);
        return;
    }
    uint32_t mask_types = 0;
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if ((c->d.pii_types & (1u << p)) && app->cfg->route.pii_action[p] == ROUTE_PII_MASK)
            mask_types |= 1u << p;
    bool stream = c->req.stream;
    if (mask_types && !c->d.local_only) {
        int mrc = mask_request(w, c, mask_types);
        if (mrc) {
            snprintf(err, sizeof err, "cannot mask personal data: %s", sy_strerror(mrc));
            send_error(w, res, 500, "internal_error", err, NULL, NULL);
            call_put(c);
            return;
        }
        /* Placeholders can split across stream chunks: take the whole answer, restore
         * it, and replay it as a stream. */
        stream = false;
    }
    http_res_on_abort(res, on_client_abort, c);
    c->exec = exec_start(&w->env, &c->d, c->req.json, stream, completions, &sink, c);
    if (!c->exec && !c->aborted) {
        /* exec_start refuses only a decision without a tier, which decide() caught. */
        send_error(w, res, 500, "internal_error", "routing produced no tier", NULL, NULL);
        call_put(c);
    }
}

/* ----------------------------------------------------- other routes ---- */

static void handle_models(api_worker_t *w, http_res_t *res)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "object");
    jsonw_str(&j, "list");
    jsonw_key(&j, "data");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, "auto");
    jsonw_key(&j, "object");
    jsonw_str(&j, "model");
    jsonw_key(&j, "created");
    jsonw_int(&j, 0);
    jsonw_key(&j, "owned_by");
    jsonw_str(&j, "switchyard");
    jsonw_obj_end(&j);
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; i < app->n_tiers; i++) {
        tier_t *t = &app->tiers[i];
        route_tier_t v;
        tier_route_view(t, now, &v);
        jsonw_obj_begin(&j);
        jsonw_key(&j, "id");
        jsonw_str(&j, t->s.name);
        jsonw_key(&j, "object");
        jsonw_str(&j, "model");
        jsonw_key(&j, "created");
        jsonw_int(&j, 0);
        jsonw_key(&j, "owned_by");
        jsonw_str(&j, "switchyard");
        jsonw_key(&j, "switchyard");
        jsonw_obj_begin(&j);
        jsonw_key(&j, "kind");
        jsonw_str(&j, t->s.kind == TIER_KIND_LOCAL ? "local" : "openai");
        jsonw_key(&j, "model");
        jsonw_str(&j, t->s.model);
        jsonw_key(&j, "version");
        jsonw_str(&j, *t->s.version ? t->s.version : NULL);
        jsonw_key(&j, "privacy");
        jsonw_str(&j, privacy_name(t->s.privacy));
        jsonw_key(&j, "role");
        jsonw_str(&j, t->s.role == ROUTE_ROLE_EDGE ? "edge" : "cloud");
        jsonw_key(&j, "healthy");
        jsonw_bool(&j, v.healthy);
        if (t->disabled) {
            jsonw_key(&j, "unavailable");
            jsonw_str(&j, t->disabled_why);
        }
        jsonw_obj_end(&j);
        jsonw_obj_end(&j);
    }
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    send_json(res, 200, b);
}

/* Reads one query parameter into out; false if absent. */
static bool query_get(const char *q, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > kl && q[kl] == '=' && !strncmp(q, key, kl)) {
            size_t vl = len - kl - 1, o = 0;
            for (size_t i = 0; i < vl && o + 1 < n; i++) {
                char ch = q[kl + 1 + i];
                if (ch == '+') ch = ' ';
                if (ch == '%' && i + 2 < vl + 1 && i + 2 <= vl) {
                    char hx[3] = {q[kl + 2 + i], q[kl + 3 + i], 0};
                    ch = (char)strtol(hx, NULL, 16);
                    i += 2;
                }
                out[o++] = ch;
            }
            out[o] = 0;
            return true;
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

/* One cost group (or the total, with saved_pct and no key) as a JSON object. */
static void write_cost_row(jsonw_t *j, const store_cost_row_t *r, bool keyed)
{
    jsonw_obj_begin(j);
    if (keyed) {
        jsonw_key(j, "key");
        jsonw_str(j, r->key);
    }
    jsonw_key(j, "requests");
    jsonw_uint(j, r->requests);
    jsonw_key(j, "tokens_in");
    jsonw_uint(j, r->tokens_in);
    jsonw_key(j, "tokens_out");
    jsonw_uint(j, r->tokens_out);
    jsonw_key(j, "cost_usd");
    jsonw_double(j, r->cost_usd);
    jsonw_key(j, "cloud_cost_usd");
    jsonw_double(j, r->cloud_cost_usd);
    jsonw_key(j, "saved_usd");
    jsonw_double(j, r->saved_usd);
    if (!keyed) {
        jsonw_key(j, "saved_pct");
        jsonw_double(j, r->cloud_cost_usd > 0 ? 100.0 * r->saved_usd / r->cloud_cost_usd : 0);
    }
    jsonw_obj_end(j);
}

/* A /v1/costs query in flight: parsed on the worker loop, run on the offload thread
 * (a report over the whole ledger takes as long as the ledger is big: it must not
 * stall the loop's other connections), answered back on the loop. */
typedef struct costs_job {
    api_worker_t *w;
    http_res_t *res;
    store_group_t by;
    int64_t since;
    char by_s[32];
    int rc;
    buf_t body;
} costs_job_t;

/* Offload thread: waits for the rows already queued to the ledger (so a report sees
 * every request answered before it), queries, and writes the JSON answer. */
static void costs_work(void *arg)
{
    costs_job_t *jb = arg;
    api_app_t *app = jb->w->app;
    store_ledger_writer_flush(app->ledger);
    store_cost_row_t *rows = NULL;
    size_t n = 0;
    jb->rc = store_costs_query(app->report_store, jb->by, jb->since, &rows, &n);
    if (jb->rc) return;
    jsonw_t j;
    jsonw_init(&j, &jb->body);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "group_by");
    jsonw_str(&j, jb->by_s);
    jsonw_key(&j, "since_ms");
    jsonw_int(&j, jb->since);
    jsonw_key(&j, "groups");
    jsonw_arr_begin(&j);
    store_cost_row_t tot = {0};
    for (size_t i = 0; i < n; i++) {
        write_cost_row(&j, &rows[i], true);
        tot.requests += rows[i].requests;
        tot.tokens_in += rows[i].tokens_in;
        tot.tokens_out += rows[i].tokens_out;
        tot.cost_usd += rows[i].cost_usd;
        tot.cloud_cost_usd += rows[i].cloud_cost_usd;
        tot.saved_usd += rows[i].saved_usd;
    }
    jsonw_arr_end(&j);
    jsonw_key(&j, "total");
    write_cost_row(&j, &tot, false);
    jsonw_obj_end(&j);
    free(rows);
}

/* Frees the job. Also its offload drop(): at shutdown, a report whose loop stopped
 * before it could answer (the drain timed out) leaves the connection and its response
 * to the loop; only the job is ours. */
static void costs_drop(void *arg)
{
    costs_job_t *jb = arg;
    buf_deinit(&jb->body);
    mem_free(jb);
}

/* Worker loop: answers (a client that left meanwhile just releases the response). */
static void costs_done(void *arg)
{
    costs_job_t *jb = arg;
    if (jb->rc)
        send_error(jb->w, jb->res, 500, "store_error", sy_strerror(jb->rc), NULL, NULL);
    else
        send_json(jb->res, 200, &jb->body);
    costs_drop(jb);
}

static void handle_costs(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    api_app_t *app = w->app;
    char by_s[32] = "team", since_s[64] = "";
    query_get(hr->query, "group_by", by_s, sizeof by_s);
    store_group_t by;
    if (store_group_parse(by_s, &by)) {
        send_error(w, res, 400, "invalid_request_error",
                   "group_by must be one of team, tenant, feature, tier", "group_by", NULL);
        return;
    }
    int64_t since = 0;
    if (query_get(hr->query, "since", since_s, sizeof since_s) &&
        store_since_parse(since_s, clock_wall_ms(), &since)) {
        send_error(w, res, 400, "invalid_request_error",
                   "since must be a date (2026-11-28), an RFC 3339 time, Unix seconds or a "
                   "duration back from now (30m, 24h, 7d)",
                   "since", NULL);
        return;
    }
    if (!app->report_store || !app->offload) {
        send_error(w, res, 503, "store_unavailable", "the store is not open", NULL, NULL);
        return;
    }
    costs_job_t *jb = mem_calloc(1, sizeof *jb);
    jb->w = w;
    jb->res = res;
    jb->by = by;
    jb->since = since;
    snprintf(jb->by_s, sizeof jb->by_s, "%s", by_s);
    buf_init(&jb->body, 64u << 20);
    if (offload_submit(app->offload, http_res_loop(res), costs_work, costs_done, costs_drop, jb)) {
        costs_drop(jb);
        http_res_header(res, "Retry-After", "1");
        send_error(w, res, 503, "server_busy", "too many cost reports are running; retry shortly",
                   NULL, NULL);
    }
}

static void save_bandit(api_app_t *app);

/* POST /v1/feedback {"id": "...", "reward": r}: a reward for a past request feeds the
 * bandit (with quality in 0..1, cost and latency weighed in by the config). */
static void handle_feedback(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    api_app_t *app = w->app;
    cJSON *j = cJSON_ParseWithLength(hr->body, hr->body_len);
    cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
    cJSON *reward = j ? cJSON_GetObjectItemCaseSensitive(j, "reward") : NULL;
    char msg[200];
    if (!cJSON_IsObject(j)) {
        send_error(w, res, 400, "invalid_request_error", "the body must be a JSON object", NULL,
                   "invalid_json");
    } else if (!cJSON_IsString(id) || !*id->valuestring) {
        send_error(w, res, 400, "invalid_request_error", "'id' (the request id) is required", "id",
                   NULL);
    } else if (!cJSON_IsNumber(reward) || reward->valuedouble < -1 || reward->valuedouble > 1) {
        send_error(w, res, 400, "invalid_request_error", "'reward' must be a number in [-1, 1]",
                   "reward", NULL);
    } else {
        route_features_t f;
        int tier;
        if (!feedback_ring_take(app->feedback, id->valuestring, &f, &tier)) {
            snprintf(msg, sizeof msg,
                     "no recent request with id '%.60s' awaits feedback (unknown, too old, or "
                     "already rated)",
                     id->valuestring);
            send_error(w, res, 404, "not_found", msg, "id", NULL);
        } else {
            int rc = router_feedback(app->router, &f, tier, reward->valuedouble);
            if (app->store) {
                pthread_mutex_lock(&app->store_mu);
                store_feedback_put(app->store, id->valuestring, reward->valuedouble,
                                   clock_wall_ms());
                pthread_mutex_unlock(&app->store_mu);
            }
            if ((atomic_fetch_add(&app->n_feedback, 1) + 1) % 256 == 0) save_bandit(app);
            buf_t *b = &w->scratch;
            buf_reset(b);
            buf_printf(b, "{\"ok\":true,\"tier\":\"%s\",\"applied\":%s}", app->tiers[tier].s.name,
                       rc == 0 ? "true" : "false");
            send_json(res, 200, b);
        }
    }
    cJSON_Delete(j);
}

static void handle_ready(api_worker_t *w, http_res_t *res)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    bool any = false;
    uint64_t now = clock_mono_ms();
    jsonw_obj_begin(&j);
    jsonw_key(&j, "tiers");
    jsonw_obj_begin(&j);
    for (size_t i = 0; i < app->n_tiers; i++) {
        route_tier_t v;
        tier_route_view(&app->tiers[i], now, &v);
        any |= v.healthy;
        jsonw_key(&j, app->tiers[i].s.name);
        jsonw_str(&j, app->tiers[i].disabled ? app->tiers[i].disabled_why
                      : v.healthy            ? "ready"
                                             : "circuit open");
    }
    jsonw_obj_end(&j);
    bool draining = atomic_load(&app->draining);
    jsonw_key(&j, "status");
    jsonw_str(&j, draining ? "draining" : any ? "ready" : "no tier available");
    jsonw_obj_end(&j);
    send_json(res, !draining && any ? 200 : 503, b);
}

static void handler(http_req_t *hr, http_res_t *res, void *ctx)
{
    api_worker_t *w = ctx;
    api_app_t *app = w->app;
    const char *p = hr->path;
    bool post = !strcmp(hr->method, "POST"), get = !strcmp(hr->method, "GET");
    if (!strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions")) {
        if (post) return handle_infer(w, hr, res, false, false);
    } else if (!strcmp(p, "/v1/completions") || !strcmp(p, "/completions")) {
        if (post) return handle_infer(w, hr, res, true, false);
    } else if (!strcmp(p, "/v1/route")) {
        if (post) return handle_infer(w, hr, res, false, true);
    } else if (!strcmp(p, "/v1/models") || !strcmp(p, "/models")) {
        if (get) return handle_models(w, res);
    } else if (!strcmp(p, "/v1/feedback")) {
        if (post) return handle_feedback(w, hr, res);
    } else if (!strcmp(p, "/v1/costs")) {
        if (get) return handle_costs(w, hr, res);
    } else if (!strcmp(p, "/metrics")) {
        if (get) {
            buf_t *b = &w->scratch;
            buf_reset(b);
            metrics_write(&app->metrics, app->tiers, app->n_tiers, b);
            return (void)http_res_send(res, 200, "text/plain; version=0.0.4", b->data, b->len);
        }
    } else if (!strcmp(p, "/healthz")) {
        if (get)
            return (void)http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (!strcmp(p, "/readyz")) {
        if (get) return handle_ready(w, res);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "no route for %s %.200s", hr->method, p);
        return send_error(w, res, 404, "not_found", msg, NULL, NULL);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "method %s is not allowed on %.200s", hr->method, p);
    http_res_header(res, "Allow", post ? "GET" : "POST");
    send_error(w, res, 405, "method_not_allowed", msg, NULL, NULL);
}

/* ---------------------------------------------------------- workers ---- */

static void *worker_init(loop_t *loop, int idx, void *arg)
{
    api_app_t *app = arg;
    api_worker_t *w = mem_calloc(1, sizeof *w);
    w->app = app;
    w->env.tiers = app->tiers;
    w->env.n_tiers = app->n_tiers;
    w->env.loop = loop;
    w->env.up = upstream_new(loop, 64);
    w->env.rand = hash_mix((uint64_t)idx + 1 + app->id_salt);
    w->rs = router_scratch_new(app->router);
    w->pii = pii_scratch_new(app->pii);
    buf_init(&w->scratch, 64u << 20);
    return w;
}

static void worker_deinit(void *ctx)
{
    api_worker_t *w = ctx;
    while (w->free_calls) {
        api_call_t *c = w->free_calls;
        w->free_calls = c->next_free;
        call_free(c);
    }
    exec_env_deinit(&w->env);
    upstream_free(w->env.up);
    router_scratch_free(w->rs);
    pii_scratch_free(w->pii);
    buf_deinit(&w->scratch);
    log_thread_cleanup();
    mem_free(w);
}

/* ------------------------------------------------------------- app ---- */

static int open_tiers(api_app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = app->cfg;
    app->n_tiers = cfg->n_tiers;
    app->ref_tier = -1;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const config_tier_t *ct = &cfg->tiers[i];
        const char *key = *ct->api_key_env ? getenv(ct->api_key_env) : NULL;
        const char *url = ct->base_url;
        const char *url_env = *ct->base_url_env ? getenv(ct->base_url_env) : NULL;
        if (url_env && *url_env) url = url_env;
        app->api_keys[i] = key ? mem_strdup(key) : NULL;
        size_t ul = strlen(url);
        while (ul > 0 && url[ul - 1] == '/')
            ul--;
        app->base_urls[i] = mem_strndup(url, ul);
        tier_settings_t s = {
            .name = ct->name,
            .kind = ct->kind == CONFIG_TIER_LOCAL ? TIER_KIND_LOCAL : TIER_KIND_OPENAI,
            .model = ct->model,
            .tokenizer = *ct->tokenizer ? ct->tokenizer : NULL,
            .threads = ct->threads,
            .version = ct->version,
            .base_url = app->base_urls[i],
            .api_key = app->api_keys[i],
            .privacy = ct->privacy,
            .role = ct->role,
            .max_concurrency = ct->max_concurrency,
            .max_queue = ct->max_queue,
            .usd_per_hour = ct->usd_per_hour,
            .usd_per_mtok_in = ct->usd_per_mtok_in,
            .usd_per_mtok_out = ct->usd_per_mtok_out,
            .tokens_per_second = ct->tokens_per_second,
            .connect_timeout_ms = ct->connect_timeout_ms,
            .timeout_ms = ct->timeout_ms,
            .ttft_timeout_ms = ct->ttft_timeout_ms,
            .retries = ct->retries,
            .retry_backoff_ms = ct->retry_backoff_ms,
            .brk_failures = ct->breaker.failures,
            .brk_error_rate = ct->breaker.error_rate,
            .brk_window = ct->breaker.window,
            .brk_open_ms = ct->breaker.open_ms,
            .logprobs = ct->logprobs,
            .max_context = ct->context,
        };
        tier_t *t = &app->tiers[i];
        tier_init(t, (int)i, &s);
        if (s.kind == TIER_KIND_OPENAI) {
            if (*ct->api_key_env && !key) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s is not set",
                         ct->api_key_env);
            } else if (!ul) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s is not set",
                         ct->base_url_env);
            }
        } else {
            char lerr[120];
            if (local_tier_open(t, lerr, sizeof lerr)) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s", lerr);
            }
        }
        if (t->disabled)
            log_warn("tier %s %s", ct->name, t->disabled_why);
        else
            log_info("tier %s ready (%s, %s, %s)", ct->name,
                     s.kind == TIER_KIND_LOCAL ? "local" : "openai", privacy_name(s.privacy),
                     s.role == ROUTE_ROLE_EDGE ? "edge" : "cloud");
    }
    if (*cfg->reference_tier) app->ref_tier = config_tier_find(cfg, cfg->reference_tier);
    for (size_t i = 0; i < app->n_tiers && app->ref_tier < 0; i++)
        if (app->tiers[i].s.role == ROUTE_ROLE_CLOUD) app->ref_tier = (int)i;
    (void)err, (void)errlen;
    return 0;
}

/* Reads a whole file (at most max bytes) into an owned buffer. 0 or -errno/SY_ETOOBIG. */
static int read_file(const char *path, size_t max, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    buf_init(out, max);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(out, chunk, n);
    fclose(f);
    if (rc) buf_deinit(out);
    return rc;
}

/* Installs a model file into the router (the router itself does no I/O). */
static int load_model(router_t *r, const char *path, bool classifier, char *err, size_t errlen)
{
    buf_t b;
    int rc = read_file(path, 256u << 20, &b);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, sy_strerror(rc));
        return rc;
    }
    char e2[200];
    route_model_t *m = route_model_parse(b.data, b.len, e2, sizeof e2);
    buf_deinit(&b);
    if (!m) {
        snprintf(err, errlen, "%s: %s", path, e2);
        return SY_ECORRUPT;
    }
    rc = classifier ? router_set_classifier(r, m) : router_set_cloud_model(r, m);
    if (rc) {
        route_model_free(m);
        snprintf(err, errlen, "%s: not a %s model", path,
                 classifier ? "task classifier" : "need-of-cloud");
    }
    return rc;
}

int api_router_load_models(router_t *r, const config_t *cfg, char *err, size_t errlen)
{
    if (*cfg->classifier_model) {
        int rc = load_model(r, cfg->classifier_model, true, err, errlen);
        if (rc) return rc;
    }
    if (*cfg->router_model) return load_model(r, cfg->router_model, false, err, errlen);
    return 0;
}

#define BANDIT_KV_NS  "bandit"
#define BANDIT_KV_KEY "state"

/* Persists the bandit's sums so learning survives a restart. */
static void save_bandit(api_app_t *app)
{
    if (!app->store || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    buf_t b;
    buf_init(&b, 64u << 20);
    if (router_bandit_save(app->router, &b) == 0) {
        pthread_mutex_lock(&app->store_mu);
        int rc = store_kv_put(app->store, BANDIT_KV_NS, BANDIT_KV_KEY, b.data, b.len);
        pthread_mutex_unlock(&app->store_mu);
        if (rc) log_warn("cannot save the bandit state: %s", sy_strerror(rc));
    }
    buf_deinit(&b);
}

static void load_bandit(api_app_t *app)
{
    if (!app->store || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    void *blob = NULL;
    size_t n = 0;
    if (store_kv_get(app->store, BANDIT_KV_NS, BANDIT_KV_KEY, &blob, &n) == 0) {
        char e2[200];
        if (router_bandit_load(app->router, blob, n, e2, sizeof e2))
            log_warn("bandit state in the store not restored: %s", e2);
        else
            log_info("bandit state restored (%zu bytes)", n);
    }
    free(blob);
}

api_app_t *api_app_new(const config_t *cfg, char *err, size_t errlen)
{
    api_app_t *app = mem_calloc(1, sizeof *app);
    app->cfg = cfg;
    app->id_salt = hash_mix((uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32));
    pthread_mutex_init(&app->store_mu, NULL);
    log_level_t lvl;
    if (!log_level_parse(cfg->log_level, &lvl)) log_set_level(lvl);
    open_tiers(app, err, errlen);
    metrics_init(&app->metrics, app->n_tiers);
    app->sessions = session_table_new(API_MAX_SESSIONS);

    char e2[256];
    app->pii = piiload_scanner_new(cfg->pii_names_dir, cfg->route.pii_min_score, e2, sizeof e2);
    if (!app->pii) {
        snprintf(err, errlen, "PII scanner: %s", e2);
        goto fail;
    }
    app->router = router_new(&cfg->route, app->pii, e2, sizeof e2);
    if (!app->router) {
        snprintf(err, errlen, "router: %s", e2);
        goto fail;
    }
    if (api_router_load_models(app->router, cfg, err, errlen)) goto fail;
    app->feedback = feedback_ring_new();
    app->store = store_open(cfg->store, e2, sizeof e2);
    if (!app->store) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        goto fail;
    }
    app->report_store = store_open(cfg->store, e2, sizeof e2);
    if (!app->report_store) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        goto fail;
    }
    app->offload = offload_new(API_MAX_REPORTS);
    if (!app->offload) {
        snprintf(err, errlen, "cannot start the report thread");
        goto fail;
    }
    load_bandit(app);
    app->ledger =
        store_ledger_writer_new(cfg->store, API_LEDGER_QUEUE, API_LEDGER_FLUSH_MS, e2, sizeof e2);
    if (!app->ledger) {
        snprintf(err, errlen, "ledger %s: %s", cfg->store, e2);
        goto fail;
    }
    http_server_opts_t ho = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .n_workers = (int)cfg->workers,
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .drain_ms = cfg->drain_ms,
        .max_conns_per_worker = 10000,
        .handler = handler,
        .worker_init = worker_init,
        .worker_deinit = worker_deinit,
        .app = app,
    };
    int herr = 0;
    app->http = http_server_new(&ho, &herr, e2, sizeof e2);
    if (!app->http) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port, e2);
        goto fail;
    }
    return app;
fail:
    api_app_free(app);
    return NULL;
}

int api_app_port(const api_app_t *app)
{
    return http_server_port(app->http);
}

int api_app_run(api_app_t *app)
{
    return http_server_run(app->http);
}

void api_app_stop(api_app_t *app)
{
    atomic_store(&app->draining, true);
    http_server_stop(app->http);
}

void api_app_free(api_app_t *app)
{
    if (!app) return;
    offload_free(app->offload); /* before the loops its answers go to are freed */
    http_server_free(app->http);
    if (app->router) save_bandit(app);
    feedback_ring_free(app->feedback);
    store_ledger_writer_free(app->ledger);
    store_close(app->store);
    store_close(app->report_store);
    router_free(app->router);
    pii_scanner_free(app->pii);
    session_table_free(app->sessions);
    for (size_t i = 0; i < app->n_tiers; i++) {
        if (app->tiers[i].s.kind == TIER_KIND_LOCAL) local_tier_close(&app->tiers[i]);
        tier_deinit(&app->tiers[i]);
        mem_free(app->api_keys[i]);
        mem_free(app->base_urls[i]);
    }
    pthread_mutex_destroy(&app->store_mu);
    mem_free(app);
}
