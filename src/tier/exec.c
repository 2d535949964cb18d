/* exec.c — carry out a routing decision: breakers, queues, retries, failover,
 * spillover and cascade over the tiers in decision order. */
#include "tier/exec.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/sse.h"
#include "tier/answer.h"
#include "tier/local.h"

#define EXEC_MAX_BODY     (16u << 20) /* cap on one upstream answer */
#define EXEC_MAX_ERR_BODY (64u << 10)
#define EXEC_MAX_SSE_LINE (1u << 20)
#define EXEC_POOL_MAX     64           /* finished execs kept per worker */
#define EXEC_KEEP_BYTES   (256u << 10) /* buffers larger than this are not kept */
#define EXEC_PRINT_MAX    (8u << 20)   /* largest kept request print buffer */

struct exec {
    exec_env_t *env;
    route_decision_t d; /* copy */
    cJSON *req;         /* borrowed */
    bool stream;        /* client asked for a stream */
    bool completions;   /* /v1/completions instead of chat */
    const exec_sink_t *sink;
    void *arg;

    int pos;            /* index into d.order of the tier being tried */
    int tier;           /* tier of the current call or wait, -1 none */
    int tries_here;     /* attempts on the current tier */
    bool cascade_phase; /* current call is the cascade's edge answer */
    bool escalating;    /* current call re-answers a low-confidence edge answer */
    bool holding_slot;
    tier_waiter_t waiter;
    uint64_t wait_timer;
    uint64_t retry_timer;
    upstream_call_t *call;
    local_call_t *lcall;

    /* current response */
    int status;
    buf_t body;      /* non-stream body or error body */
    buf_t edge_body; /* the edge's answer kept while its escalation runs */
    int edge_tier;   /* the tier that gave edge_body */
    uint32_t edge_in, edge_out;
    sse_parser_t sse;
    bool sse_bad; /* an event that is not JSON */
    bool begun;   /* stream_begin called */
    bool done_called;
    bool wake_pending; /* aborted while a queue wake-up was in flight */
    uint32_t stream_tokens;
    uint64_t start_us;
    uint64_t call_start_us;

    exec_result_t r;
    exec_t *next_free; /* in env->pool */
};

/* An upstream's token count as the ledger keeps it: negative, NaN or fractional
 * garbage must not become an undefined conversion. */
static uint32_t token_count(double v)
{
    if (!(v > 0)) return 0;
    if (v >= 4294967295.0) return UINT32_MAX;
    return (uint32_t)v;
}

/* The usage counts of an answer or stream event (root may be NULL), when present. */
static void read_usage(exec_t *x, const cJSON *root)
{
    const cJSON *us = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (!cJSON_IsObject(us)) return;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(us, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(us, "completion_tokens");
    if (cJSON_IsNumber(pt)) x->r.tokens_in = token_count(pt->valuedouble);
    if (cJSON_IsNumber(ct)) x->r.tokens_out = token_count(ct->valuedouble);
}

static void next_tier(exec_t *x);
static void start_call(exec_t *x);

static void note(exec_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(exec_t *x, const char *fmt, ...)
{
    if (x->r.n_notes >= EXEC_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->r.notes[x->r.n_notes++], ROUTE_REASON_LEN, fmt, ap);
    va_end(ap);
}

static tier_t *cur(exec_t *x)
{
    return &x->env->tiers[x->tier];
}

/* Closes the open call span (tracing), if any. */
static void call_span_end(exec_t *x, bool ok)
{
    exec_call_span_t *s = x->r.n_calls ? &x->r.calls[x->r.n_calls - 1] : NULL;
    if (s && !s->end_us) s->ok = ok, s->end_us = clock_mono_us();
}

static void finish(exec_t *x)
{
    if (x->done_called) return;
    x->done_called = true;
    call_span_end(x, false);
    x->r.start_us = x->start_us;
    x->r.total_us = clock_mono_us() - x->start_us;
    x->r.degraded = x->r.degraded || x->d.degraded;
    if (x->r.tier >= 0 && x->d.tier >= 0 && x->r.tier != x->d.tier && !x->r.escalated)
        x->r.failover = true;
    x->sink->done(x->arg, &x->r);
    exec_env_t *env = x->env;
    bool keep = !x->wake_pending && env->n_pool < EXEC_POOL_MAX && x->body.cap <= EXEC_KEEP_BYTES &&
                x->edge_body.cap <= EXEC_KEEP_BYTES && x->sse.line.cap <= EXEC_KEEP_BYTES &&
                x->sse.data.cap <= EXEC_KEEP_BYTES;
    if (keep) {
        /* Back to the worker's pool with its buffers: the next request allocates
         * neither the exec nor its body while it grows. */
        x->next_free = env->pool;
        env->pool = x;
        env->n_pool++;
        return;
    }
    sse_parser_deinit(&x->sse);
    buf_deinit(&x->body);
    buf_deinit(&x->edge_body);
    if (!x->wake_pending) mem_free(x);
}

static void fail_all(exec_t *x, int status, const char *type, const char *msg)
{
    x->r.status = status;
    snprintf(x->r.err_type, sizeof x->r.err_type, "%s", type);
    snprintf(x->r.message, sizeof x->r.message, "%s", msg);
    finish(x);
}

static void release_slot(exec_t *x)
{
    if (x->holding_slot) {
        x->holding_slot = false;
        tier_release(cur(x));
    }
}

/* ------------------------------------------------------------ streams ---- */

/* Counts content deltas as tokens when the upstream sends no usage. */
static void stream_event(void *arg, const char *event, const char *data, size_t n)
{
    exec_t *x = arg;
    (void)event;
    if (n == 6 && !memcmp(data, "[DONE]", 6)) return;
    size_t i = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\t'))
        i++;
    if (x->sse_bad) return; /* nothing after a malformed event is forwarded */
    /* Every event must be a JSON object: one that is not would make the client's
     * stream skip text and still end as a success. */
    answer_scan_t as;
    cJSON *j = NULL;
    bool ok;
    if (i < n && data[i] == '{' && answer_scan(data, n, &as)) {
        ok = as.top_obj;
    } else {
        j = i < n && data[i] == '{' ? cJSON_ParseWithLength(data, n) : NULL;
        ok = cJSON_IsObject(j);
    }
    if (!ok) {
        cJSON_Delete(j);
        x->sse_bad = true;
        return;
    }
    if (!x->begun) {
        x->begun = true;
        x->r.streamed = true;
        x->r.tier = x->tier;
        x->r.ttft_us = clock_mono_us() - x->start_us;
        x->sink->stream_begin(x->arg, x->tier);
    }
    /* Usage (stream_options.include_usage) when present. */
    const char *u = memmem(data, n, "\"usage\":{", 9);
    if (u) {
        if (!j) j = cJSON_ParseWithLength(data, n);
        read_usage(x, j);
    }
    cJSON_Delete(j);
    if (memmem(data, n, "\"content\":\"", 11) || memmem(data, n, "\"text\":\"", 8))
        x->stream_tokens++;
    x->sink->stream_event(x->arg, data, n);
}

/* ----------------------------------------------------- upstream calls ---- */

static bool retryable(upstream_err_t e, int status)
{
    if (e == UPSTREAM_CONNECT) return true;
    if (e == UPSTREAM_OK) return status == 429 || status >= 500;
    return false;
}

static void retry_fire(loop_t *loop, void *arg)
{
    (void)loop;
    exec_t *x = arg;
    x->retry_timer = 0;
    next_tier(x);
}

/* Parses a complete non-streamed answer: usage, and the confidence of the edge's
 * token logprobs. Returns false if it is not an OpenAI-shaped JSON object. */
static bool digest_body(exec_t *x)
{
    answer_scan_t s;
    if (answer_scan(x->body.data ? x->body.data : "", x->body.len, &s)) {
        if (!s.top_obj || !s.choices_arr) return false;
        if (s.has_pt) x->r.tokens_in = token_count(s.pt);
        if (s.has_ct) x->r.tokens_out = token_count(s.ct);
        return true;
    }
    cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
    if (!cJSON_IsObject(j) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "choices"))) {
        cJSON_Delete(j);
        return false;
    }
    read_usage(x, j);
    /* choices[0].logprobs.content[].logprob (chat) or .token_logprobs[] (completions). */
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *lp = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "logprobs") : NULL;
    if (cJSON_IsObject(lp)) {
        float vals[4096];
        size_t n = 0;
        cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
        cJSON *tl = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
        cJSON *it;
        if (cJSON_IsArray(content)) {
            cJSON_ArrayForEach(it, content)
            {
                cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "logprob");
                if (cJSON_IsNumber(v) && n < 4096) vals[n++] = (float)v->valuedouble;
            }
        } else if (cJSON_IsArray(tl)) {
            cJSON_ArrayForEach(it, tl) if (cJSON_IsNumber(it) && n < 4096) vals[n++] =
                (float)it->valuedouble;
        }
        if (n > 0) {
            /* The router's calibrated confidence, so online escalation and offline
             * evaluation use the same number. */
            route_confidence_t rc;
            route_confidence(vals, n, NULL, &rc);
            x->r.has_confidence = true;
            x->r.confidence = rc.confidence;
        }
    }
    cJSON_Delete(j);
    return true;
}

/* Index in d.order of the next cloud tier after pos, or -1. */
static int next_cloud(exec_t *x)
{
    for (int i = x->pos + 1; i < x->d.n_order; i++)
        if (x->env->tiers[x->d.order[i]].s.role == ROUTE_ROLE_CLOUD) return i;
    return -1;
}

static void call_failed(exec_t *x, upstream_err_t e, int status, const char *why)
{
    call_span_end(x, false);
    tier_t *t = cur(x);
    tier_breaker_record(t, false, clock_mono_ms());
    release_slot(x);
    if (x->begun) {
        /* Bytes already reached the client: no failover, end the stream with an error. */
        fail_all(x, 502, "upstream_error", why);
        return;
    }
    if (retryable(e, status) && (uint32_t)x->tries_here <= t->s.retries) {
        uint64_t base = (uint64_t)t->s.retry_backoff_ms
                        << (x->tries_here - 1 < 6 ? x->tries_here - 1 : 6);
        x->env->rand = x->env->rand * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t jitter = base ? (x->env->rand >> 33) % (base + 1) : 0;
        note(x, "retry:%s(%s)", t->s.name, why);
        x->retry_timer = loop_timer_add(x->env->loop, base / 2 + jitter, retry_fire, x);
        return;
    }
    note(x, "failover:%s(%s)", t->s.name, why);
    x->pos++;
    x->tries_here = 0;
    next_tier(x);
}

static void call_succeeded(exec_t *x)
{
    call_span_end(x, true);
    tier_t *t = cur(x);
    tier_breaker_record(t, true, clock_mono_ms());
    release_slot(x);
    x->r.tier = x->tier;
    if (x->r.tier != x->d.tier && t->s.role == ROUTE_ROLE_EDGE && x->d.tier >= 0 &&
        x->env->tiers[x->d.tier].s.role == ROUTE_ROLE_CLOUD)
        x->r.degraded = true;
    if (x->cascade_phase) {
        x->cascade_phase = false;
        float thr = x->d.min_confidence;
        if (x->r.has_confidence && x->r.confidence < thr) {
            int nc = next_cloud(x);
            if (nc >= 0) {
                note(x, "escalate:conf=%.2f<%.2f->%s", x->r.confidence, thr,
                     x->env->tiers[x->d.order[nc]].s.name);
                x->r.escalated = true;
                x->escalating = true;
                /* Keep the edge answer: if no cloud tier can answer, it still stands. */
                buf_t tmp = x->edge_body;
                x->edge_body = x->body;
                x->body = tmp;
                buf_reset(&x->body);
                x->edge_tier = x->tier;
                x->edge_in = x->r.tokens_in;
                x->edge_out = x->r.tokens_out;
                x->pos = nc;
                x->tries_here = 0;
                x->r.has_confidence = true;
                next_tier(x);
                return;
            }
            x->r.low_confidence = true;
            note(x, "escalate:blocked(%s)", x->d.local_only ? "local_only" : "no_cloud_tier");
        } else if (x->r.has_confidence) {
            note(x, "confident:%.2f>=%.2f", x->r.confidence, thr);
        }
    }
    x->r.status = 200;
    x->r.body = x->body.data;
    x->r.body_len = x->body.len;
    if (x->r.streamed && x->r.tokens_out == 0) x->r.tokens_out = x->stream_tokens;
    finish(x);
}

static void up_head(void *arg, int status)
{
    exec_t *x = arg;
    x->status = status;
    buf_reset(&x->body);
    x->body.max = status == 200 ? EXEC_MAX_BODY : EXEC_MAX_ERR_BODY;
}

static void up_data(void *arg, const char *p, size_t n)
{
    exec_t *x = arg;
    bool streaming = x->stream && !x->cascade_phase && x->status == 200;
    if (!streaming) {
        if (buf_append(&x->body, p, n) && x->status == 200) x->sse_bad = true;
        return;
    }
    if (x->r.ttft_us == 0) x->r.ttft_us = clock_mono_us() - x->start_us;
    if (sse_parser_feed(&x->sse, p, n, stream_event, x)) x->sse_bad = true;
    if (x->sse_bad && x->begun && x->call) {
        /* A malformed event mid-stream: end the client's stream with an error now and
         * count a failure of the tier (its breaker sees it). */
        upstream_call_cancel(x->call);
        x->call = NULL;
        call_failed(x, UPSTREAM_OTHER, 0, "bad_stream_event");
    }
}

static void up_done(void *arg, upstream_err_t e, int status, const char *msg)
{
    exec_t *x = arg;
    x->call = NULL;
    char why[48];
    if (e != UPSTREAM_OK) {
        snprintf(why, sizeof why, "%s", upstream_err_name(e));
        if (x->begun) snprintf(x->r.message, sizeof x->r.message, "%s", msg ? msg : why);
        call_failed(x, e, status, why);
        return;
    }
    if (status == 429 || status >= 500) {
        snprintf(why, sizeof why, "http_%d", status);
        call_failed(x, e, status, why);
        return;
    }
    if (status != 200) {
        /* The upstream rejected the request itself (4xx): pass its answer on. */
        tier_breaker_record(cur(x), true, clock_mono_ms());
        release_slot(x);
        x->r.tier = x->tier;
        x->r.status = status;
        snprintf(x->r.err_type, sizeof x->r.err_type, "upstream_rejected");
        cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
        cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(j, "error"), "message")
                     : NULL;
        snprintf(x->r.message, sizeof x->r.message, "tier '%s' rejected the request (HTTP %d): %s",
                 cur(x)->s.name, status, cJSON_IsString(m) ? m->valuestring : "no message");
        cJSON_Delete(j);
        finish(x);
        return;
    }
    bool streaming = x->stream && !x->cascade_phase;
    if (streaming) {
        if (x->sse_bad && !x->begun) {
            call_failed(x, UPSTREAM_OTHER, 0, "bad_stream");
            return;
        }
        if (!x->begun) {
            call_failed(x, UPSTREAM_CUT, 0, "empty_stream");
            return;
        }
        call_succeeded(x);
        return;
    }
    if (x->sse_bad || !digest_body(x)) {
        call_failed(x, UPSTREAM_OTHER, 0, "bad_json");
        return;
    }
    if (x->r.ttft_us == 0) x->r.ttft_us = clock_mono_us() - x->start_us;
    call_succeeded(x);
}

static const upstream_cb_t up_cb = {up_head, up_data, up_done};

static void start_http(exec_t *x, tier_t *t, const char *body, size_t len);

/* Renders (or rewrites) the request for tier t and starts the HTTP call. */
static void start_openai(exec_t *x, tier_t *t)
{
    bool streaming = x->stream && !x->cascade_phase;
    if (x->sink->render) {
        const char *body = NULL;
        size_t len = 0;
        int rc = x->sink->render(x->arg, t->s.model, streaming, x->cascade_phase && !x->completions,
                                 &body, &len);
        if (rc) {
            x->status = 0;
            buf_reset(&x->body);
            x->call = NULL;
            up_done(x, UPSTREAM_CONNECT, 0, sy_strerror(rc));
            return;
        }
        start_http(x, t, body, len);
        return;
    }
    cJSON *req = x->req;
    cJSON_DeleteItemFromObjectCaseSensitive(req, "model");
    cJSON_AddStringToObject(req, "model", t->s.model);
    cJSON_DeleteItemFromObjectCaseSensitive(req, "stream");
    cJSON_AddBoolToObject(req, "stream", streaming);
    cJSON_DeleteItemFromObjectCaseSensitive(req, "stream_options");
    if (streaming) {
        cJSON *so = cJSON_AddObjectToObject(req, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", true);
    }
    cJSON *had_lp = cJSON_GetObjectItemCaseSensitive(req, "logprobs");
    bool add_lp = x->cascade_phase && !cJSON_IsTrue(had_lp) && !x->completions;
    if (add_lp) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "logprobs");
        cJSON_AddBoolToObject(req, "logprobs", true);
    }
    /* Printed into the worker's reusable buffer; a request that does not fit is
     * printed by cJSON into its own allocation and the buffer grows for the next. */
    exec_env_t *env = x->env;
    char *owned = NULL;
    const char *body;
    if (!env->print) {
        env->print_cap = 16384;
        env->print = mem_alloc(env->print_cap);
    }
    if (cJSON_PrintPreallocated(req, env->print, (int)env->print_cap, false)) {
        body = env->print;
    } else {
        owned = cJSON_PrintUnformatted(req);
        body = owned ? owned : "";
        size_t want = 2 * strlen(body) + 64;
        if (want > env->print_cap && want <= EXEC_PRINT_MAX) {
            mem_free(env->print);
            env->print_cap = want;
            env->print = mem_alloc(want);
        }
    }
    start_http(x, t, body, strlen(body));
    free(owned);
    if (add_lp) cJSON_DeleteItemFromObjectCaseSensitive(req, "logprobs");
}

/* Starts the HTTP call to tier t with a request body (copied by the upstream). */
static void start_http(exec_t *x, tier_t *t, const char *body, size_t len)
{
    const char *hdrs[4];
    int nh = 0;
    hdrs[nh++] = "Content-Type: application/json";
    if (t->auth_header[0]) hdrs[nh++] = t->auth_header;
    hdrs[nh] = NULL;
    upstream_req_t ur = {
        .url = x->completions ? t->completions_url : t->chat_url,
        .method = "POST",
        .headers = hdrs,
        .body = body,
        .body_len = len,
        .connect_timeout_ms = t->s.connect_timeout_ms,
        .ttft_timeout_ms = t->s.ttft_timeout_ms,
        .total_timeout_ms = t->s.timeout_ms,
        .max_body = EXEC_MAX_BODY,
    };
    x->status = 0;
    buf_reset(&x->body);
    sse_parser_reset(&x->sse);
    x->sse_bad = false;
    int rc = upstream_call_start(x->env->up, &ur, &up_cb, x, &x->call);
    if (rc) {
        x->call = NULL;
        up_done(x, UPSTREAM_CONNECT, 0, sy_strerror(rc));
    }
}

/* Local engine calls report through the same three callbacks. */
static void start_call(exec_t *x)
{
    tier_t *t = cur(x);
    x->tries_here++;
    x->r.attempts++;
    x->call_start_us = clock_mono_us();
    if (x->r.n_calls < EXEC_MAX_CALLS)
        x->r.calls[x->r.n_calls++] = (exec_call_span_t){x->tier, false, x->call_start_us, 0};
    if (x->d.local_only && t->s.privacy == ROUTE_PRIVACY_EXTERNAL) {
        /* Unreachable by construction (the router never orders it); refuse anyway. */
        log_error("exec: refused to send a local_only request to external tier %s", t->s.name);
        release_slot(x);
        x->pos++;
        next_tier(x);
        return;
    }
    x->r.tiers_sent |= 1u << t->idx;
    if (t->s.kind == TIER_KIND_LOCAL) {
        bool streaming = x->stream && !x->cascade_phase;
        x->status = 0;
        buf_reset(&x->body);
        sse_parser_reset(&x->sse);
        x->sse_bad = false;
        int rc = local_call_start(t, x->env->loop, x->req, streaming, x->completions,
                                  x->cascade_phase, &up_cb, x, &x->lcall);
        if (rc) {
            x->lcall = NULL;
            up_done(x, UPSTREAM_CONNECT, 0, sy_strerror(rc));
        }
        return;
    }
    start_openai(x, t);
}

/* ------------------------------------------------------ tier walking ---- */

static void wait_timeout(loop_t *loop, void *arg)
{
    (void)loop;
    exec_t *x = arg;
    x->wait_timer = 0;
    if (tier_wait_cancel(cur(x), &x->waiter)) {
        note(x, "spill:%s(queue_wait)", cur(x)->s.name);
        x->pos++;
        x->tries_here = 0;
        next_tier(x);
    }
    /* else: already woken; slot_ready will run. */
}

static void slot_ready(void *arg)
{
    exec_t *x = arg;
    x->waiter.state = 0;
    if (x->wait_timer) loop_timer_del(x->env->loop, x->wait_timer), x->wait_timer = 0;
    if (x->wake_pending) {
        /* The client left while this wake-up was in flight: give the slot back. */
        tier_release(cur(x));
        mem_free(x);
        return;
    }
    x->holding_slot = true;
    start_call(x);
}

static void next_tier(exec_t *x)
{
    uint64_t now = clock_mono_ms();
    while (x->pos < x->d.n_order) {
        x->tier = x->d.order[x->pos];
        tier_t *t = cur(x);
        x->cascade_phase = x->d.cascade && !x->escalating && t->s.role == ROUTE_ROLE_EDGE &&
                           t->s.logprobs && !x->completions;
        if (!tier_breaker_allow(t, now)) {
            note(x, "skip:%s(circuit_open)", t->s.name);
            x->pos++;
            x->tries_here = 0;
            continue;
        }
        x->waiter.loop = x->env->loop;
        x->waiter.ready = slot_ready;
        x->waiter.arg = x;
        int rc = tier_acquire(t, &x->waiter);
        if (rc == SY_EFULL) {
            tier_breaker_cancel_probe(t);
            note(x, "spill:%s(queue_full)", t->s.name);
            x->pos++;
            x->tries_here = 0;
            continue;
        }
        if (rc == 1) {
            uint32_t wait = t->s.ttft_timeout_ms ? t->s.ttft_timeout_ms : t->s.timeout_ms;
            x->wait_timer = loop_timer_add(x->env->loop, wait, wait_timeout, x);
            return;
        }
        x->holding_slot = true;
        start_call(x);
        return;
    }
    if (x->r.escalated && x->edge_body.len) {
        /* Escalation found no cloud tier that answers: the edge answer stands, marked. */
        note(x, "escalate:failed->%s", x->env->tiers[x->edge_tier].s.name);
        x->r.escalated = false;
        x->r.low_confidence = true;
        x->r.tier = x->edge_tier;
        x->r.tokens_in = x->edge_in;
        x->r.tokens_out = x->edge_out;
        x->r.status = 200;
        x->r.body = x->edge_body.data;
        x->r.body_len = x->edge_body.len;
        finish(x);
        return;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "no eligible tier could serve the request%s",
             x->d.local_only ? " (personal data: only local tiers are eligible)" : "");
    fail_all(x, 503, "tier_unavailable", msg);
}

exec_t *exec_start(exec_env_t *env, const route_decision_t *d, cJSON *req, bool stream,
                   bool completions, const exec_sink_t *sink, void *arg)
{
    if (d->tier < 0 || d->n_order <= 0) return NULL;
    exec_t *x = env->pool;
    if (x) {
        env->pool = x->next_free;
        env->n_pool--;
        buf_t body = x->body, edge = x->edge_body;
        sse_parser_t sse = x->sse;
        memset(x, 0, sizeof *x);
        x->body = body;
        x->edge_body = edge;
        x->sse = sse;
        buf_reset(&x->body);
        buf_reset(&x->edge_body);
        x->body.max = EXEC_MAX_BODY; /* up_head lowers it for error bodies */
        x->edge_body.max = EXEC_MAX_BODY;
        sse_parser_reset(&x->sse);
    } else {
        x = mem_calloc(1, sizeof *x);
        buf_init(&x->body, EXEC_MAX_BODY);
        buf_init(&x->edge_body, EXEC_MAX_BODY);
        sse_parser_init(&x->sse, EXEC_MAX_SSE_LINE);
    }
    x->env = env;
    x->d = *d;
    x->req = req;
    x->stream = stream;
    x->completions = completions;
    x->sink = sink;
    x->arg = arg;
    x->tier = -1;
    x->r.tier = -1;
    x->start_us = clock_mono_us();
    next_tier(x);
    return x;
}

void exec_abort(exec_t *x)
{
    if (x->done_called) return;
    if (x->call) upstream_call_cancel(x->call), x->call = NULL;
    if (x->lcall) local_call_cancel(x->lcall), x->lcall = NULL;
    if (x->retry_timer) loop_timer_del(x->env->loop, x->retry_timer), x->retry_timer = 0;
    if (x->wait_timer) loop_timer_del(x->env->loop, x->wait_timer), x->wait_timer = 0;
    if (x->tier >= 0 && x->waiter.state != 0 && !tier_wait_cancel(cur(x), &x->waiter)) {
        /* Woken on another thread: slot_ready is posted to our loop and will give
         * the slot back and free x. */
        x->wake_pending = true;
    }
    release_slot(x);
    fail_all(x, 499, "client_closed", "the client closed the connection");
}

void exec_env_deinit(exec_env_t *env)
{
    while (env->pool) {
        exec_t *x = env->pool;
        env->pool = x->next_free;
        sse_parser_deinit(&x->sse);
        buf_deinit(&x->body);
        buf_deinit(&x->edge_body);
        mem_free(x);
    }
    env->n_pool = 0;
    mem_free(env->print);
    env->print = NULL;
    env->print_cap = 0;
}
