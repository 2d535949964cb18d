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
#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/sse.h"
#include "tier/anthropic.h"
#include "tier/answer.h"
#include "tier/backend.h"
#include "tier/oai_writer.h"

#define EXEC_MAX_BODY     (16u << 20) /* cap on one upstream answer */
#define EXEC_MAX_ERR_BODY (64u << 10)
#define EXEC_MAX_SSE_LINE (1u << 20)
#define EXEC_POOL_MAX     64           /* finished execs kept per worker */
#define EXEC_KEEP_BYTES   (256u << 10) /* buffers larger than this are not kept */
#define EXEC_PRINT_MAX    (8u << 20)   /* largest kept request print buffer */
#define EXEC_CHAIN_LEN    400          /* the failover chain in an error message */
#define EXEC_CAUSE_TEXT   160          /* an upstream's own error message, at most */
#define EXEC_CONT_WINDOW  8            /* tokens the running confidence is computed over */
#define EXEC_CONT_MIN     8            /* tokens streamed before the edge can be stopped */
#define EXEC_MAX_PART     (1u << 20)   /* the answer so far a continuation carries, bytes */
#define EXEC_MAX_LP       4096         /* token logprobs a choice's confidence is computed over */

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
    void *tcall;                    /* a typed backend's call (backend.h) */
    const tier_backend_ops_t *tops; /* its backend */
    bool typed;                     /* the current call is typed (else bytes) */
    oai_writer_t ow;                /* typed: the client's answer from the events */
    float *lpv;                     /* typed: the current choice's logprobs (EXEC_MAX_LP) */
    uint32_t n_lpv;
    uint32_t n_fin;   /* typed: choices ended */
    uint32_t w_total; /* whole cascade answer: its first choice's tokens */
    uint32_t w_cut;   /* ... where its window first fell below, 0 none */
    float w_conf;     /* ... the confidence there */
    bool w_bad;       /* ... its text did not fit part */

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
    bool ttft_seen;    /* typed: the call's first event came */
    uint32_t stream_tokens;
    char chain[EXEC_CHAIN_LEN]; /* "tier: cause; tier: cause" of the tiers that failed */
    char url[512];              /* the embeddings endpoint of the tier called */
    exec_endpoint_t ep;
    uint64_t start_us;
    uint64_t call_start_us;
    /* continuation (docs/routing.md "Continuation") */
    buf_t part;                   /* the streamed answer's text so far (chat, one choice) */
    bool part_ok;                 /* part holds all of it (no tool call, nothing unreadable) */
    bool fin_seen;                /* a finish_reason was forwarded: the answer is complete */
    bool live;                    /* the cascade's edge answer streams, its confidence watched */
    bool judged;                  /* the live answer fell below the threshold once */
    bool short_max;               /* max_tokens <= EXEC_CONT_MIN: judged whole, never live */
    bool cut_pending;             /* stop this call: the next tier continues */
    bool continuing;              /* the current call continues part */
    bool cont_begun;              /* the continuation forwarded an event */
    bool cont_fallback;           /* the continuation moved back to the edge once */
    int part_pos;                 /* index in d.order of the tier that wrote part */
    int cont_pos;                 /* index in d.order of the continuing tier */
    float win[EXEC_CONT_WINDOW];  /* the last token logprobs of the live edge answer */
    uint32_t n_lp;                /* token logprobs seen */
    uint32_t part_in;             /* the first part's prompt tokens, when known */
    char sid[64];                 /* the client stream's chunk id */
    buf_t chunk;                  /* a continuation chunk with that id */
    tier_anthropic_stream_t anth; /* kind anthropic: the stream's translation state */
    bool anth_emitting;           /* stream_event is passing on a translated chunk */
    char anth_err[160];           /* an error event's type and message */

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
static bool cont_possible(const cJSON *req);

/* Whether the current call streams: the client asked for a stream, and the cascade
 * does not need the whole edge answer first (it does unless the answer is watched
 * live for a continuation). */
static bool call_streams(const exec_t *x)
{
    return x->stream && (!x->cascade_phase || x->live);
}

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

/* Appends "tier: cause" to the failover chain (cut with "..." when full). */
static void chain_add(exec_t *x, const char *tier, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void chain_add(exec_t *x, const char *tier, const char *fmt, ...)
{
    size_t at = strlen(x->chain), n = sizeof x->chain;
    if (at + 4 >= n) return;
    int w = snprintf(x->chain + at, n - at, "%s%s: ", at ? "; " : "", tier);
    if (w > 0 && (size_t)w < n - at) {
        at += (size_t)w;
        va_list ap;
        va_start(ap, fmt);
        w = vsnprintf(x->chain + at, n - at, fmt, ap);
        va_end(ap);
    }
    if (w < 0 || (size_t)w >= n - at) memcpy(x->chain + n - 4, "...", 4);
}

/* The upstream's own error text from an error body: error.message, error (a string)
 * or message; else the body itself when it is short printable text (a proxy's "Bad
 * Gateway"). Control bytes become spaces; cut at EXEC_CAUSE_TEXT. "" when none. */
static void upstream_text(const buf_t *body, char *out, size_t n)
{
    out[0] = 0;
    if (!body->len) return;
    cJSON *j = cJSON_ParseWithLength(body->data, body->len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const char *src = cJSON_IsString(m) ? m->valuestring : j ? NULL : body->data;
    size_t len = cJSON_IsString(m) ? strlen(src) : j ? 0 : body->len;
    if (src && !cJSON_IsString(m) && memchr(src, '<', len)) src = NULL; /* an HTML page */
    size_t k = 0;
    for (size_t i = 0; src && i < len && k + 1 < n && k < EXEC_CAUSE_TEXT; i++)
        out[k++] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
    /* Never end inside a UTF-8 sequence. */
    if (k && src && k < len) {
        while (k && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k && (unsigned char)out[k - 1] >= 0xC0) k--;
    }
    while (k && out[k - 1] == ' ')
        k--;
    out[k] = 0;
    cJSON_Delete(j);
}

/* What went wrong with a call, as the client's error message names it. */
static void describe(exec_t *x, upstream_err_t e, int status, const char *msg, char *out, size_t n)
{
    const tier_settings_t *s = &cur(x)->s;
    switch (e) {
    case UPSTREAM_OK:
        if (status == 0) {
            snprintf(out, n, "malformed response");
            return;
        }
        char text[EXEC_CAUSE_TEXT + 8];
        upstream_text(&x->body, text, sizeof text);
        if (text[0] && !(x->sink->cause_ok && x->sink->cause_ok(x->arg, text, strlen(text))))
            snprintf(text, sizeof text, "(message withheld)");
        snprintf(out, n, "HTTP %d%s%s", status, text[0] ? ": " : "", text);
        return;
    case UPSTREAM_CONNECT:
        if (msg && strstr(msg, "refused"))
            snprintf(out, n, "connection refused");
        else if (msg && (strstr(msg, "resolve") || strstr(msg, "Resolve")))
            snprintf(out, n, "cannot resolve the host");
        else if (msg && (strstr(msg, "timed out") || strstr(msg, "Timeout")))
            snprintf(out, n, "connect timeout after %u ms", s->connect_timeout_ms);
        else
            snprintf(out, n, "cannot connect");
        return;
    case UPSTREAM_TTFT_TIMEOUT:
        snprintf(out, n, "timeout after %u ms (no first byte)", s->ttft_timeout_ms);
        return;
    case UPSTREAM_TIMEOUT:
        snprintf(out, n, "timeout after %u ms", s->timeout_ms);
        return;
    case UPSTREAM_CUT:
        snprintf(out, n, "connection closed mid-response");
        return;
    case UPSTREAM_TOOBIG:
        snprintf(out, n, "response larger than %u MiB", EXEC_MAX_BODY >> 20);
        return;
    default:
        snprintf(out, n, "%s", msg && *msg ? msg : upstream_err_name(e));
        return;
    }
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
                x->part.cap <= EXEC_KEEP_BYTES && x->chunk.cap <= EXEC_KEEP_BYTES &&
                x->sse.data.cap <= EXEC_KEEP_BYTES &&
                oai_writer_kept_bytes(&x->ow) <= EXEC_KEEP_BYTES;
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
    buf_deinit(&x->part);
    buf_deinit(&x->chunk);
    oai_writer_deinit(&x->ow);
    mem_free(x->lpv);
    x->lpv = NULL;
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

/* ------------------------------------------------------- continuation ---- */

/* Where the string value of the first "key": "..." of data starts (after its quote),
 * or NULL: a key followed by another kind of value is skipped. */
static const char *json_str_at(const char *data, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *end = data + n, *p = data;
    while ((p = memmem(p, (size_t)(end - p), key, kl))) {
        p += kl;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p >= end || *p != ':') continue;
        p++;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p < end && *p == '"') return p + 1;
    }
    return NULL;
}

/* Adds text to the streamed answer so far (part); past its cap, part is unusable. */
static void part_add(exec_t *x, const char *text, size_t n)
{
    if (x->part_ok && buf_append(&x->part, text, n)) x->part_ok = false;
}

/* Keeps the text of a streamed chat chunk in part (the answer so far a continuation
 * carries), and whether the chunk finished the answer. A tool call, a function call
 * or a text that does not decode makes part unusable. Runs on every chunk of a
 * streamed chat answer, so the chunk is not parsed: only its content string is, by
 * cJSON, after memmem finds it. */
static void part_track(exec_t *x, const char *data, size_t n)
{
    if (!x->part_ok) return;
    if (memmem(data, n, "\"tool_calls\"", 12) || memmem(data, n, "\"function_call\"", 15)) {
        x->part_ok = false;
        return;
    }
    const char *p = json_str_at(data, n, "\"content\""), *end = data + n;
    if (p) {
        const char *q = p;
        while (q < end && *q != '"')
            q += *q == '\\' ? 2 : 1;
        cJSON *str = q < end ? cJSON_ParseWithLength(p - 1, (size_t)(q + 1 - (p - 1))) : NULL;
        if (cJSON_IsString(str))
            part_add(x, str->valuestring, strlen(str->valuestring));
        else
            x->part_ok = false;
        cJSON_Delete(str);
    }
    if (json_str_at(data, n, "\"finish_reason\"")) x->fin_seen = true;
}

/* The tokens of the answer so far: its logprobs, its content events, or its usage. */
static uint32_t part_tokens(const exec_t *x)
{
    uint32_t n = x->n_lp > x->stream_tokens ? x->n_lp : x->stream_tokens;
    return x->r.tokens_out > n ? x->r.tokens_out : n;
}

/* Index in d.order of the first tier after from that continues a partial answer and
 * has role role, or -1. */
static int cont_find(exec_t *x, int from, route_role_t role)
{
    for (int i = from + 1; i < x->d.n_order; i++) {
        const tier_t *t = &x->env->tiers[x->d.order[i]];
        if (t->s.role == role && (t->s.caps & (1u << ROUTE_CAP_CONTINUE))) return i;
    }
    return -1;
}

/* Adds a token logprob to the running window; returns the window's confidence once
 * EXEC_CONT_MIN tokens are in, else 2 (not judged yet). */
static float window_add(exec_t *x, float lp)
{
    x->win[x->n_lp++ % EXEC_CONT_WINDOW] = lp;
    if (x->n_lp < EXEC_CONT_MIN) return 2;
    route_confidence_t rc;
    route_confidence(x->win, EXEC_CONT_WINDOW, NULL, &rc);
    return rc.confidence;
}

/* The live edge answer's window after a chunk (conf: window_add's answer for its last
 * token): below the threshold it asks for the cut (when the privacy gate lets the
 * answer so far go to the continuing tier). */
static void live_judge(exec_t *x, float conf)
{
    if (x->fin_seen || !x->part_ok || conf > 1 || !x->part.len) return;
    /* The answer's confidence is its least confident window. */
    if (!x->r.has_confidence || conf < x->r.confidence) x->r.confidence = conf;
    x->r.has_confidence = true;
    float thr = x->d.min_confidence;
    if (conf >= thr) return;
    int nc = cont_find(x, x->pos, ROUTE_ROLE_CLOUD);
    if (nc < 0) return;
    const tier_t *t = &x->env->tiers[x->d.order[nc]];
    x->judged = true; /* once: cut, or kept here by the gate */
    if (x->sink->continue_with(x->arg, t->idx, x->part.data, x->part.len, part_tokens(x))) {
        /* The answer so far may not leave: the edge finishes it, marked. */
        note(x, "continue:blocked(pii)");
        x->r.low_confidence = true;
        return;
    }
    note(x, "continue:conf=%.2f<%.2f->%s", conf, thr, t->s.name);
    x->cut_pending = true;
    x->r.cont_why = "low_confidence";
    x->r.escalated = true;
    x->part_pos = x->pos;
    x->pos = nc;
}

/* The running confidence of a live edge answer streamed as bytes: the chunk's token
 * logprobs join the window, then it is judged. */
static void live_watch(exec_t *x, const char *data, size_t n)
{
    if (!memmem(data, n, "\"logprob\"", 9)) return;
    cJSON *j = cJSON_ParseWithLength(data, n);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "logprobs"),
                                                 "content");
    cJSON *it;
    float conf = 2;
    cJSON_ArrayForEach(it, lp)
    {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "logprob");
        if (cJSON_IsNumber(v)) conf = window_add(x, (float)v->valuedouble);
    }
    cJSON_Delete(j);
    live_judge(x, conf);
}

/* Starts the continuation of part on the tier at x->pos (chosen and gated by the
 * caller), after the current call stopped. */
static void cont_start(exec_t *x)
{
    x->continuing = true;
    x->cont_begun = false;
    x->cont_pos = x->pos;
    x->part_ok = false; /* part stays as sent: the continuation's text is not added */
    x->r.continued = true;
    x->r.cont_tier = x->d.order[x->part_pos];
    x->r.cont_bytes = (uint32_t)x->part.len;
    x->r.cont_tokens = part_tokens(x);
    x->part_in = x->r.tokens_in;
    x->r.tokens_in = x->r.tokens_out = 0;
    x->stream_tokens = 0;
    x->tries_here = 0;
    next_tier(x);
}

/* The live edge answer fell below the threshold: stop it where the client's stream
 * stands and let the chosen cloud tier continue. */
static void cont_cut(exec_t *x)
{
    x->cut_pending = false;
    if (x->call) upstream_call_cancel(x->call), x->call = NULL;
    if (x->tcall) x->tops->cancel(x->tcall), x->tcall = NULL;
    call_span_end(x, true);
    tier_breaker_record(cur(x), true, clock_mono_ms());
    release_slot(x);
    cont_start(x);
}

/* A stream that had begun broke (cut, error event) on the current tier: continue on
 * an edge tier of the order (or, for a failed continuation of a live edge answer, on
 * that edge again). True when a continuation started. */
static bool cont_after_failure(exec_t *x)
{
    if (!x->sink->continue_with || !x->part.len) return false;
    int pos = -1;
    if (x->continuing) {
        /* The continuing tier failed before its first event: back to the edge that
         * wrote the first part, once. */
        if (x->cont_begun || x->cont_fallback || x->r.cont_why == NULL ||
            strcmp(x->r.cont_why, "low_confidence"))
            return false;
        x->cont_fallback = true;
        pos = x->part_pos;
        note(x, "continue:failed->%s", x->env->tiers[x->d.order[pos]].s.name);
        x->r.escalated = false;
        x->r.low_confidence = true;
        x->r.tokens_in = x->r.tokens_out = 0; /* the edge's usage is read afresh */
        x->stream_tokens = 0;
    } else {
        if (!x->part_ok || x->fin_seen || cur(x)->s.role != ROUTE_ROLE_CLOUD) return false;
        pos = cont_find(x, -1, ROUTE_ROLE_EDGE);
        if (pos < 0) return false;
        const tier_t *t = &x->env->tiers[x->d.order[pos]];
        if (x->sink->continue_with(x->arg, t->idx, x->part.data, x->part.len, part_tokens(x)))
            return false;
        note(x, "continue:cut(%s)->%s", cur(x)->s.name, t->s.name);
        x->r.cont_why = "cut";
        x->r.degraded = true;
        x->part_pos = x->pos;
        x->pos = pos;
        cont_start(x);
        return true;
    }
    x->pos = x->cont_pos = pos;
    x->continuing = true;
    x->cont_begun = false;
    x->tries_here = 0;
    next_tier(x);
    return true;
}

/* A continuation chunk under the stream's id (the client sees one answer), in x->chunk;
 * the chunk itself when its id is already that or it has none. */
static void cont_chunk(exec_t *x, const char **data, size_t *n)
{
    const char *p = json_str_at(*data, *n < 256 ? *n : 256, "\"id\"");
    if (!p || !x->sid[0]) return;
    const char *q = memchr(p, '"', (size_t)(*data + *n - p));
    if (!q || memchr(p, '\\', (size_t)(q - p))) return;
    size_t il = strlen(x->sid);
    if ((size_t)(q - p) == il && !memcmp(p, x->sid, il)) return;
    buf_reset(&x->chunk);
    if (buf_append(&x->chunk, *data, (size_t)(p - *data)) || buf_append(&x->chunk, x->sid, il) ||
        buf_append(&x->chunk, q, (size_t)(*data + *n - q)))
        return;
    *data = x->chunk.data;
    *n = x->chunk.len;
}

/* ------------------------------------------------------------ streams ---- */

static void anth_emit(void *arg, const char *json, size_t n);

/* Hands one stream payload to the client (the stream begins with the first). */
static void forward(exec_t *x, const char *data, size_t n)
{
    if (!x->begun) {
        x->begun = true;
        x->r.streamed = true;
        x->r.tier = x->tier;
        x->r.ttft_us = clock_mono_us() - x->start_us;
        x->sink->stream_begin(x->arg, x->tier);
    }
    if (x->continuing) x->cont_begun = true;
    x->sink->stream_event(x->arg, data, n);
}

static void ow_emit(void *arg, const char *json, size_t n)
{
    forward(arg, json, n);
}

static void stream_event(void *arg, const char *event, const char *data, size_t n)
{
    exec_t *x = arg;
    if (x->tier >= 0 && cur(x)->s.kind == TIER_KIND_ANTHROPIC && !x->anth_emitting) {
        /* An Anthropic stream: its events become OpenAI chunks, checked below. */
        if (x->sse_bad) return;
        char err[160];
        x->anth_emitting = true;
        int rc = tier_anthropic_stream_event(&x->anth, event, data, n, &x->body, anth_emit, x, err,
                                             sizeof err);
        x->anth_emitting = false;
        if (rc) {
            x->sse_bad = true;
            if (rc == SY_EUPSTREAM) snprintf(x->anth_err, sizeof x->anth_err, "%s", err);
        }
        return;
    }
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
    if (x->cut_pending) {
        cJSON_Delete(j);
        return; /* the edge is being stopped: nothing after the cut */
    }
    if (memmem(data, n, "\"error\"", 7) && !memmem(data, n, "\"choices\"", 9)) {
        /* An error event in an OpenAI-shaped stream: the tier failed mid-answer. */
        cJSON_Delete(j);
        x->sse_bad = true;
        snprintf(x->anth_err, sizeof x->anth_err, "error event");
        return;
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
    if (!x->sid[0]) {
        const char *p = json_str_at(data, n < 256 ? n : 256, "\"id\"");
        const char *q = p ? memchr(p, '"', (size_t)(data + n - p)) : NULL;
        if (q && (size_t)(q - p) < sizeof x->sid && !memchr(p, '\\', (size_t)(q - p))) {
            memcpy(x->sid, p, (size_t)(q - p));
            x->sid[q - p] = 0;
        }
    }
    if (x->continuing) cont_chunk(x, &data, &n);
    part_track(x, data, n);
    forward(x, data, n);
    if (x->live && !x->judged) live_watch(x, data, n);
}

static void anth_emit(void *arg, const char *json, size_t n)
{
    stream_event(arg, NULL, json, n);
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

/* Folds a choice's token logprobs (the first EXEC_MAX_LP) into the answer's
 * confidence: the router's calibrated confidence, so online escalation and offline
 * evaluation use the same number. With n > 1 the answer's confidence is its least
 * confident choice's: all choices come from one tier, so one weak choice escalates
 * the whole answer. */
static void choice_confidence(exec_t *x, const float *vals, size_t n)
{
    if (n == 0) return;
    route_confidence_t rc;
    route_confidence(vals, n, NULL, &rc);
    if (!x->r.has_confidence || rc.confidence < x->r.confidence) x->r.confidence = rc.confidence;
    x->r.has_confidence = true;
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
    /* choices[i].logprobs.content[].logprob (chat) or .token_logprobs[] (completions) */
    cJSON *c0;
    cJSON_ArrayForEach(c0, cJSON_GetObjectItemCaseSensitive(j, "choices"))
    {
        cJSON *lp = cJSON_GetObjectItemCaseSensitive(c0, "logprobs");
        if (!cJSON_IsObject(lp)) continue;
        float vals[EXEC_MAX_LP];
        size_t n = 0;
        cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
        cJSON *tl = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
        cJSON *it;
        if (cJSON_IsArray(content)) {
            cJSON_ArrayForEach(it, content)
            {
                cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "logprob");
                if (cJSON_IsNumber(v) && n < EXEC_MAX_LP) vals[n++] = (float)v->valuedouble;
            }
        } else if (cJSON_IsArray(tl)) {
            cJSON_ArrayForEach(it, tl) if (cJSON_IsNumber(it) && n < EXEC_MAX_LP) vals[n++] =
                (float)it->valuedouble;
        }
        choice_confidence(x, vals, n);
    }
    cJSON_Delete(j);
    return true;
}

/* An embeddings answer: an object whose "data" is an array; usage.prompt_tokens is
 * the tokens read (nothing is generated). */
static bool digest_embeddings(exec_t *x)
{
    cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
    bool ok = cJSON_IsObject(j) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "data"));
    if (ok) read_usage(x, j);
    x->r.tokens_out = 0;
    cJSON_Delete(j);
    return ok;
}

/* Index in d.order of the next cloud tier after pos, or -1. */
static int next_cloud(exec_t *x)
{
    for (int i = x->pos + 1; i < x->d.n_order; i++)
        if (x->env->tiers[x->d.order[i]].s.role == ROUTE_ROLE_CLOUD) return i;
    return -1;
}

/* One token of a whole edge answer's first choice, judged as a live answer is: its
 * text joins part until the first window below the threshold (the cut). */
static void whole_feed(exec_t *x, const char *text, size_t n, float lp)
{
    x->w_total++;
    if (x->w_cut || x->w_bad) return;
    if (buf_append(&x->part, text, n)) {
        x->w_bad = true;
        return;
    }
    float conf = window_add(x, lp);
    if (conf < x->d.min_confidence) x->w_cut = x->n_lp, x->w_conf = conf;
}

/* A whole answer received as bytes: its first choice's tokens are fed to whole_feed.
 * False when it is not one chat choice with token logprobs, or the tokens do not
 * spell the start of its content (then the cut is not where it seems). */
static bool whole_tokens(exec_t *x)
{
    cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c0, "message"), "content");
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "logprobs"),
                                                 "content");
    bool ok = cJSON_GetArraySize(choices) == 1 && cJSON_IsString(content) && cJSON_IsArray(lp);
    cJSON *it;
    if (ok) cJSON_ArrayForEach(it, lp)
        {
            cJSON *tok = cJSON_GetObjectItemCaseSensitive(it, "token");
            cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "logprob");
            if (!cJSON_IsString(tok) || !cJSON_IsNumber(v)) {
                ok = false;
                break;
            }
            whole_feed(x, tok->valuestring, strlen(tok->valuestring), (float)v->valuedouble);
        }
    ok = ok && !strncmp(content->valuestring, x->part.data ? x->part.data : "", x->part.len);
    cJSON_Delete(j);
    return ok;
}

/* A whole (non-streamed) edge answer judged as a live one is: the first window below
 * the threshold cuts it there, and the next cloud tier that continues is sent the
 * text up to the cut (the answer is kept in edge_body should the continuation fail).
 * A typed backend's tokens were fed as they came; an answer in bytes is read here.
 * 1: the continuation started; 0: it did not (no continuing tier, no window fell, the
 * answer ended at the cut, or the gate kept the text here): the cascade's
 * whole-answer rule applies. */
static int whole_continue(exec_t *x)
{
    int nc = cont_find(x, x->pos, ROUTE_ROLE_CLOUD);
    if (nc < 0 || x->stream || x->ep != EXEC_EP_CHAT || !x->sink->continue_with ||
        !cont_possible(x->req))
        return 0;
    if (x->typed ? x->n_fin != 1 : !whole_tokens(x)) return 0;
    uint32_t cut = x->w_cut;
    if (!cut || cut >= x->w_total || x->w_bad || !x->part.len) return 0;
    float thr = x->d.min_confidence, conf = x->w_conf;
    const tier_t *t = &x->env->tiers[x->d.order[nc]];
    if (x->sink->continue_with(x->arg, t->idx, x->part.data, x->part.len, cut)) {
        /* The text may not leave: regenerating sends none of it. */
        note(x, "continue:blocked(pii)");
        return 0;
    }
    note(x, "continue:conf=%.2f<%.2f->%s", conf, thr, t->s.name);
    x->r.escalated = true;
    x->r.cont_why = "low_confidence";
    /* Keep the edge answer: if the continuation fails, it stands. */
    buf_t tmp = x->edge_body;
    x->edge_body = x->body;
    x->body = tmp;
    buf_reset(&x->body);
    x->edge_tier = x->tier;
    x->edge_in = x->r.tokens_in;
    x->edge_out = x->r.tokens_out;
    x->n_lp = cut;
    x->r.tokens_out = 0;
    x->part_pos = x->pos;
    x->pos = nc;
    cont_start(x);
    return 1;
}

/* A whole continuation's answer becomes the client's: the first part's text before
 * its content, the usage of both parts. 0, or SY_EPARSE when it is not a chat answer. */
static int cont_merge(exec_t *x)
{
    cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message");
    if (!cJSON_IsObject(msg)) {
        cJSON_Delete(j);
        return SY_EPARSE;
    }
    cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    buf_t text;
    buf_init(&text, EXEC_MAX_BODY);
    buf_append(&text, x->part.data ? x->part.data : "", x->part.len);
    if (cJSON_IsString(content)) buf_puts(&text, content->valuestring);
    cJSON_DeleteItemFromObjectCaseSensitive(msg, "content");
    cJSON_AddStringToObject(msg, "content", text.data ? text.data : "");
    buf_deinit(&text);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "usage");
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", x->r.tokens_in);
    cJSON_AddNumberToObject(u, "completion_tokens", x->r.tokens_out);
    cJSON_AddNumberToObject(u, "total_tokens", (double)x->r.tokens_in + x->r.tokens_out);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    buf_reset(&x->body);
    int rc = out && !buf_puts(&x->body, out) ? 0 : SY_EPARSE;
    free(out);
    return rc;
}

/* A call failed: why is the short code of the reason trace ("http_500"), cause the
 * client's words for it ("HTTP 500: overloaded"). */
static void call_failed(exec_t *x, upstream_err_t e, int status, const char *why, const char *cause)
{
    call_span_end(x, false);
    tier_t *t = cur(x);
    tier_breaker_record(t, false, clock_mono_ms());
    release_slot(x);
    /* A continuation that sent nothing yet is retried like a first answer. */
    bool cont_retry = x->continuing && !x->cont_begun && retryable(e, status) &&
                      (uint32_t)x->tries_here <= t->s.retries;
    if (x->begun && !cont_retry) {
        /* Bytes already reached the client: no failover; continue on another tier from
         * the text streamed so far where one can, else end the stream with an error. */
        if (cont_after_failure(x)) return;
        char msg[EXEC_CHAIN_LEN];
        snprintf(msg, sizeof msg, "%s: %s", t->s.name, cause);
        fail_all(x, 502, "upstream_error", msg);
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
    chain_add(x, t->s.name, "%s", cause);
    x->pos++;
    x->tries_here = 0;
    next_tier(x);
}

static void call_succeeded(exec_t *x)
{
    call_span_end(x, true);
    tier_t *t = cur(x);
    tier_breaker_record(t, true, clock_mono_ms());
    tier_service_observe(t, clock_mono_us() - x->call_start_us);
    release_slot(x);
    x->r.tier = x->tier;
    if (x->r.tier != x->d.tier && t->s.role == ROUTE_ROLE_EDGE && x->d.tier >= 0 &&
        x->env->tiers[x->d.tier].s.role == ROUTE_ROLE_CLOUD)
        x->r.degraded = true;
    if (x->cascade_phase && call_streams(x)) {
        /* The live edge answer ran to its end above the threshold (or the gate kept it
         * here): it stands. */
        x->cascade_phase = x->live = false;
        if (x->r.has_confidence && !x->r.low_confidence)
            note(x, "confident:%.2f>=%.2f", x->r.confidence, x->d.min_confidence);
    } else if (x->cascade_phase) {
        x->cascade_phase = false;
        float thr = x->d.min_confidence;
        if (whole_continue(x)) return;
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
    if (x->r.continued) {
        /* One answer, the usage of both parts. */
        x->r.tokens_in += x->part_in;
        x->r.tokens_out += x->r.cont_tokens;
        if (!x->r.streamed && cont_merge(x)) {
            call_failed(x, UPSTREAM_OTHER, 0, "bad_json", "malformed response");
            return;
        }
        x->r.body = x->body.data;
        x->r.body_len = x->body.len;
    }
    finish(x);
}

static void up_head(void *arg, int status)
{
    exec_t *x = arg;
    x->status = status;
    if (status == 200) tier_ttft_observe(cur(x), clock_mono_us() - x->call_start_us);
    buf_reset(&x->body);
    x->body.max = status == 200 ? EXEC_MAX_BODY : EXEC_MAX_ERR_BODY;
}

static void up_data(void *arg, const char *p, size_t n)
{
    exec_t *x = arg;
    bool streaming = call_streams(x) && x->status == 200;
    if (!streaming) {
        if (buf_append(&x->body, p, n) && x->status == 200) x->sse_bad = true;
        return;
    }
    if (x->r.ttft_us == 0) x->r.ttft_us = clock_mono_us() - x->start_us;
    if (sse_parser_feed(&x->sse, p, n, stream_event, x)) x->sse_bad = true;
    if (x->cut_pending) {
        cont_cut(x);
        return;
    }
    if (x->sse_bad && x->begun && x->call) {
        /* A malformed event mid-stream: end the client's stream with an error now and
         * count a failure of the tier (its breaker sees it). */
        upstream_call_cancel(x->call);
        x->call = NULL;
        /* An Anthropic error event's text may echo the prompt: the sink judges it. */
        const char *cause = "malformed stream event";
        if (x->anth_err[0])
            cause = x->sink->cause_ok && x->sink->cause_ok(x->arg, x->anth_err, strlen(x->anth_err))
                        ? x->anth_err
                        : "error event (message withheld)";
        call_failed(x, UPSTREAM_OTHER, 0, x->anth_err[0] ? "error_event" : "bad_stream_event",
                    cause);
    }
}

/* The tier rejected the request itself (4xx; text: its message, NULL none): the
 * client gets that status; no failover, since any tier would refuse it alike. */
static void call_rejected(exec_t *x, int status, const char *text)
{
    tier_breaker_record(cur(x), true, clock_mono_ms());
    release_slot(x);
    x->r.tier = x->tier;
    x->r.status = status;
    snprintf(x->r.err_type, sizeof x->r.err_type, "upstream_rejected");
    if (!text)
        text = "no message";
    else if (!(x->sink->cause_ok && x->sink->cause_ok(x->arg, text, strlen(text))))
        text = "(message withheld)";
    snprintf(x->r.message, sizeof x->r.message, "tier '%s' rejected the request (HTTP %d): %s",
             cur(x)->s.name, status, text);
    finish(x);
}

static void up_done(void *arg, upstream_err_t e, int status, const char *msg)
{
    exec_t *x = arg;
    x->call = NULL;
    char why[48], cause[EXEC_CAUSE_TEXT + 64];
    if (e != UPSTREAM_OK) {
        snprintf(why, sizeof why, "%s", upstream_err_name(e));
        describe(x, e, status, msg, cause, sizeof cause);
        call_failed(x, e, status, why, cause);
        return;
    }
    if (status == 429 || status >= 500) {
        snprintf(why, sizeof why, "http_%d", status);
        describe(x, e, status, msg, cause, sizeof cause);
        call_failed(x, e, status, why, cause);
        return;
    }
    if (status != 200) {
        /* The upstream rejected the request itself (4xx): pass its answer on. */
        cJSON *j = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
        cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(
                           cJSON_GetObjectItemCaseSensitive(j, "error"), "message")
                     : NULL;
        call_rejected(x, status, cJSON_IsString(m) ? m->valuestring : NULL);
        cJSON_Delete(j);
        return;
    }
    bool streaming = call_streams(x);
    if (streaming) {
        if (x->sse_bad && !x->begun) {
            call_failed(x, UPSTREAM_OTHER, 0, "bad_stream", "malformed response");
            return;
        }
        if (!x->begun) {
            call_failed(x, UPSTREAM_CUT, 0, "empty_stream", "empty stream");
            return;
        }
        call_succeeded(x);
        return;
    }
    if (cur(x)->s.kind == TIER_KIND_ANTHROPIC && !x->sse_bad) {
        /* An Anthropic message becomes an OpenAI chat completion: one reader below. */
        buf_t oa;
        buf_init(&oa, EXEC_MAX_BODY);
        int trc = tier_anthropic_answer(x->body.data, x->body.len, clock_wall_ms() / 1000, &oa);
        buf_reset(&x->body);
        if (trc || buf_append(&x->body, oa.data ? oa.data : "", oa.len)) x->sse_bad = true;
        buf_deinit(&oa);
    }
    if (x->sse_bad || !(x->ep == EXEC_EP_EMBEDDINGS ? digest_embeddings(x) : digest_body(x))) {
        call_failed(x, UPSTREAM_OTHER, 0, "bad_json", "malformed response");
        return;
    }
    if (x->r.ttft_us == 0) x->r.ttft_us = clock_mono_us() - x->start_us;
    call_succeeded(x);
}

static const upstream_cb_t up_cb = {up_head, up_data, up_done};

/* ------------------------------------------------------- typed calls ---- */

/* The typed call cannot go on (its answer outgrew the writer): stop it and fail. */
static void typed_abort(exec_t *x, int rc)
{
    if (x->tcall) x->tops->cancel(x->tcall), x->tcall = NULL;
    call_failed(x, UPSTREAM_TOOBIG, 0, "too_big", sy_strerror(rc));
}

/* The call's first answer: its time to first token is sampled for the queue. */
static void typed_first(exec_t *x)
{
    if (x->ttft_seen) return;
    x->ttft_seen = true;
    tier_ttft_observe(cur(x), clock_mono_us() - x->call_start_us);
}

/* One event of a typed backend: the facts exec needs are read from it as they are
 * (usage, token logprobs, text), and the client's answer is written from it. */
static void tev_event(void *arg, const tier_ev_t *ev)
{
    exec_t *x = arg;
    if (x->cut_pending) return; /* the edge is being stopped: nothing after the cut */
    typed_first(x);
    bool streaming = call_streams(x);
    float conf = 2;
    if (ev->kind == TIER_EV_TOKEN) {
        if (streaming) {
            x->stream_tokens++;
            if (ev->call)
                x->part_ok = false;
            else
                part_add(x, ev->text, ev->len);
            if (x->live && !x->judged && ev->has_lp) conf = window_add(x, ev->logprob);
        } else if (ev->has_lp) {
            if (x->n_lpv < EXEC_MAX_LP) x->lpv[x->n_lpv++] = ev->logprob;
            if (x->cascade_phase && ev->choice == 0) whole_feed(x, ev->text, ev->len, ev->logprob);
        }
    } else if (ev->kind == TIER_EV_FINISH) {
        if (streaming) x->fin_seen = true;
        x->n_fin++;
        if (!streaming) choice_confidence(x, x->lpv, x->n_lpv);
        x->n_lpv = 0;
    } else if (ev->kind == TIER_EV_USAGE) {
        x->r.tokens_in = ev->prompt_tokens;
        x->r.tokens_out = ev->completion_tokens;
    }
    int rc = oai_writer_event(&x->ow, ev, ow_emit, x);
    if (rc) {
        typed_abort(x, rc);
        return;
    }
    if (streaming && x->live && !x->judged) live_judge(x, conf);
    if (x->cut_pending) cont_cut(x);
}

/* The end of a typed call. */
static void tev_end(void *arg, const tier_end_t *end)
{
    exec_t *x = arg;
    x->tcall = NULL;
    if (end->status == 200) typed_first(x); /* an answer with no event */
    if (end->status == 200 && end->spec) x->r.spec = *end->spec;
    if (end->status >= 500) {
        char cause[EXEC_CAUSE_TEXT + 64];
        snprintf(cause, sizeof cause, "%s: %.*s", end->type ? end->type : "error", EXEC_CAUSE_TEXT,
                 end->message ? end->message : "");
        call_failed(x, UPSTREAM_OK, end->status, "engine_error", cause);
        return;
    }
    if (end->status != 200) {
        call_rejected(x, end->status, end->message);
        return;
    }
    if (call_streams(x)) {
        if (!x->begun) {
            call_failed(x, UPSTREAM_CUT, 0, "empty_stream", "empty stream");
            return;
        }
        call_succeeded(x);
        return;
    }
    buf_reset(&x->body);
    int rc = oai_writer_answer(&x->ow, &x->body);
    if (rc) {
        call_failed(x, UPSTREAM_TOOBIG, 0, "too_big", sy_strerror(rc));
        return;
    }
    if (x->r.ttft_us == 0) x->r.ttft_us = clock_mono_us() - x->start_us;
    call_succeeded(x);
}

static const tier_events_t tev_cb = {tev_event, tev_end};

/* Starts the call on a typed backend: the writer begins the client's answer (a
 * continuation's chunks under the stream's id). */
static void start_typed(exec_t *x, tier_t *t)
{
    bool streaming = call_streams(x);
    x->typed = true;
    x->ttft_seen = false;
    x->n_lpv = 0;
    x->n_fin = 0;
    if (!x->lpv) x->lpv = mem_alloc(EXEC_MAX_LP * sizeof *x->lpv);
    char id[64];
    if (x->continuing && x->sid[0])
        snprintf(id, sizeof id, "%s", x->sid);
    else
        snprintf(id, sizeof id, "%s-local-%016llx", x->completions ? "cmpl" : "chatcmpl",
                 (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)x));
    if (!x->sid[0] && streaming) snprintf(x->sid, sizeof x->sid, "%s", id);
    oai_writer_begin(&x->ow,
                     &(oai_writer_opts_t){.id = id,
                                          .model = t->s.name,
                                          .created = clock_wall_ms() / 1000,
                                          .completions = x->completions,
                                          .stream = streaming,
                                          .logprobs = tier_asks_logprobs(x->req, x->completions)});
    /* A continuation reaches the engine as vLLM's request would: the answer so far
     * as a final assistant message, continue_final_message (the backend reads the
     * request only while it starts, so the request is restored at once). */
    cJSON *msgs = x->continuing ? cJSON_GetObjectItemCaseSensitive(x->req, "messages") : NULL;
    cJSON *pm = NULL;
    if (cJSON_IsArray(msgs)) {
        pm = cJSON_CreateObject();
        cJSON_AddStringToObject(pm, "role", "assistant");
        cJSON_AddStringToObject(pm, "content", x->part.data ? x->part.data : "");
        cJSON_AddItemToArray(msgs, pm);
        cJSON_AddTrueToObject(x->req, "continue_final_message");
    }
    tier_call_opts_t o = {x->env->loop,   x->env->up, x->d.local_only,
                          x->completions, streaming,  x->cascade_phase};
    x->tops = t->ops;
    int rc = t->ops->start(t, x->req, &o, &tev_cb, x, &x->tcall);
    if (pm) {
        cJSON_DeleteItemFromArray(msgs, cJSON_GetArraySize(msgs) - 1);
        cJSON_DeleteItemFromObjectCaseSensitive(x->req, "continue_final_message");
    }
    if (rc) {
        x->tcall = NULL;
        char m[96];
        snprintf(m, sizeof m, "the tier cannot start: %s", sy_strerror(rc));
        up_done(x, UPSTREAM_OTHER, 0, m);
    }
}

static void start_http(exec_t *x, tier_t *t, const char *body, size_t len);

/* Renders (or rewrites) the request for tier t and starts the HTTP call. */
static void start_openai(exec_t *x, tier_t *t)
{
    bool streaming = call_streams(x);
    if (t->s.kind == TIER_KIND_ANTHROPIC) {
        /* Rendered by the caller from its typed request as a Messages body; a request
         * the Messages API cannot carry fails this tier (no retry) and fails over. */
        const char *body = NULL;
        size_t len = 0;
        int rc = x->sink->render_anthropic
                     ? x->sink->render_anthropic(x->arg, t->s.model, streaming, &body, &len)
                     : SY_EUNSUPPORTED;
        if (rc) {
            x->status = 0;
            buf_reset(&x->body);
            x->call = NULL;
            up_done(x, UPSTREAM_OTHER, 0, sy_strerror(rc));
            return;
        }
        start_http(x, t, body, len);
        return;
    }
    if (x->sink->render) {
        const char *body = NULL;
        size_t len = 0;
        int rc = x->sink->render(x->arg, t->s.model, streaming, x->cascade_phase && !x->completions,
                                 &body, &len);
        if (rc) {
            x->status = 0;
            buf_reset(&x->body);
            x->call = NULL;
            char m[96];
            snprintf(m, sizeof m, "the request cannot be rendered: %s", sy_strerror(rc));
            up_done(x, UPSTREAM_OTHER, 0, m);
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
    if (t->s.kind == TIER_KIND_ANTHROPIC) hdrs[nh++] = TIER_ANTHROPIC_VERSION_HEADER;
    hdrs[nh] = NULL;
    if (x->ep == EXEC_EP_EMBEDDINGS)
        snprintf(x->url, sizeof x->url, "%s/embeddings", t->s.base_url ? t->s.base_url : "");
    upstream_req_t ur = {
        .url = x->ep == EXEC_EP_EMBEDDINGS ? x->url
               : x->completions            ? t->completions_url
                                           : t->chat_url,
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
    tier_anthropic_stream_reset(&x->anth, clock_wall_ms() / 1000);
    x->anth_err[0] = 0;
    int rc = upstream_call_start(x->env->up, &ur, &up_cb, x, &x->call);
    if (rc) {
        x->call = NULL;
        up_done(x, UPSTREAM_CONNECT, 0, sy_strerror(rc));
    }
}

/* Starts the current attempt: on a typed backend (events) or over HTTP (bytes). */
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
    x->typed = false;
    if (x->cascade_phase && !call_streams(x)) {
        /* a whole cascade answer: its first choice is judged token by token */
        buf_reset(&x->part);
        x->n_lp = x->w_total = x->w_cut = 0;
        x->w_bad = false;
    }
    if (x->ep == EXEC_EP_EMBEDDINGS && t->ops) {
        /* The router orders only tiers declaring the capability; config refuses it on
         * a local tier. */
        x->status = 0;
        buf_reset(&x->body);
        up_done(x, UPSTREAM_OTHER, 0, "the local engine does not serve embeddings");
        return;
    }
    if (t->ops) {
        start_typed(x, t);
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
        tier_t *t = cur(x);
        chain_add(x, t->s.name, "queue wait over %u ms",
                  t->s.ttft_timeout_ms ? t->s.ttft_timeout_ms : t->s.timeout_ms);
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

/* A pinned request took this waiter's place in the queue, or moved ahead of it
 * past what its next tier takes to answer: go on to that tier. */
static void slot_spilled(void *arg)
{
    exec_t *x = arg;
    x->waiter.state = 0;
    if (x->wait_timer) loop_timer_del(x->env->loop, x->wait_timer), x->wait_timer = 0;
    if (x->wake_pending) {
        mem_free(x); /* the client left meanwhile; no slot is held */
        return;
    }
    if (x->waiter.eta_ms)
        note(x, "spill:%s(priority,eta=%u>%ums)", cur(x)->s.name, x->waiter.eta_ms,
             x->waiter.alt_ttft_ms);
    else
        note(x, "spill:%s(priority)", cur(x)->s.name);
    chain_add(x, cur(x)->s.name, "queue full");
    x->pos++;
    x->tries_here = 0;
    next_tier(x);
}

static void next_tier(exec_t *x)
{
    uint64_t now = clock_mono_ms();
    while (x->pos < x->d.n_order) {
        if (x->continuing && x->pos != x->cont_pos) break; /* only the chosen tier continues */
        x->tier = x->d.order[x->pos];
        tier_t *t = cur(x);
        x->cascade_phase = x->d.cascade && !x->escalating && !x->continuing &&
                           t->s.role == ROUTE_ROLE_EDGE && t->s.logprobs && x->ep == EXEC_EP_CHAT;
        /* A streamed cascade whose next cloud tier continues: the edge streams live. */
        x->live = x->cascade_phase && x->stream && x->part_ok && !x->short_max &&
                  x->sink->continue_with && cont_find(x, x->pos, ROUTE_ROLE_CLOUD) >= 0;
        if (!tier_breaker_allow(t, now)) {
            note(x, "skip:%s(circuit_open)", t->s.name);
            chain_add(x, t->s.name, "circuit open");
            x->pos++;
            x->tries_here = 0;
            continue;
        }
        x->waiter.loop = x->env->loop;
        x->waiter.ready = slot_ready;
        x->waiter.spilled = slot_spilled;
        x->waiter.arg = x;
        /* Pinned unless a later tier of the order can take it (tier/queue.c). */
        tier_waiter_prepare(&x->waiter, x->env->tiers, x->d.order + x->pos + 1,
                            x->d.n_order - x->pos - 1, now);
        int rc = tier_acquire(t, &x->waiter);
        if (rc == SY_EFULL || rc == TIER_SPILL_ETA) {
            tier_breaker_cancel_probe(t);
            if (rc == SY_EFULL) {
                note(x, "spill:%s(queue_full)", t->s.name);
                chain_add(x, t->s.name, "queue full");
            } else {
                note(x, "spill:%s(eta=%u>%ums)", t->s.name, x->waiter.eta_ms,
                     x->waiter.alt_ttft_ms);
                chain_add(x, t->s.name, "spilled (slow queue)");
            }
            x->pos++;
            x->tries_here = 0;
            continue;
        }
        if (rc == TIER_QUEUED) {
            uint32_t wait = t->s.ttft_timeout_ms ? t->s.ttft_timeout_ms : t->s.timeout_ms;
            x->wait_timer = loop_timer_add(x->env->loop, wait, wait_timeout, x);
            return;
        }
        x->holding_slot = true;
        start_call(x);
        return;
    }
    if (x->continuing && !x->stream && x->edge_body.len) {
        /* A whole answer's continuation failed: the edge answer stands, as below. */
        x->continuing = false;
        x->r.continued = false;
        x->r.cont_tier = -1;
        x->r.cont_why = NULL;
    } else if (x->continuing) {
        /* The continuing tier cannot be reached (circuit open, queue full). */
        if (cont_after_failure(x)) return;
        char msg[EXEC_CHAIN_LEN + 48];
        snprintf(msg, sizeof msg, "the continuation found no tier: %s", x->chain);
        fail_all(x, 502, "upstream_error", msg);
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
    char msg[sizeof x->r.message];
    const char *local = x->d.local_only ? " (personal data: only local tiers are eligible)" : "";
    if (!x->chain[0])
        snprintf(msg, sizeof msg, "no eligible tier could serve the request%s", local);
    else if (strchr(x->chain, ';'))
        snprintf(msg, sizeof msg, "all tiers failed: %s%s", x->chain, local);
    else
        snprintf(msg, sizeof msg, "%s%s", x->chain, local);
    fail_all(x, 503, "tier_unavailable", msg);
}

/* Whether an answer to req can be continued by another tier: one choice, no tools or
 * functions, no response format (a grammar-bound answer cut in the middle is not
 * resumed elsewhere), and not itself a continuation. */
static bool cont_possible(const cJSON *req)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "n");
    if (cJSON_IsNumber(n) && n->valuedouble > 1) return false;
    static const char *const no[] = {"tools", "functions", "response_format",
                                     "continue_final_message"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, no[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v) &&
            !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
            return false;
    }
    return true;
}

exec_t *exec_start(exec_env_t *env, const route_decision_t *d, cJSON *req, bool stream,
                   bool completions, const exec_sink_t *sink, void *arg)
{
    return exec_start_ep(env, d, req, stream, completions ? EXEC_EP_COMPLETIONS : EXEC_EP_CHAT,
                         sink, arg);
}

exec_t *exec_start_ep(exec_env_t *env, const route_decision_t *d, cJSON *req, bool stream,
                      exec_endpoint_t ep, const exec_sink_t *sink, void *arg)
{
    bool completions = ep == EXEC_EP_COMPLETIONS;
    if (d->tier < 0 || d->n_order <= 0) return NULL;
    exec_t *x = env->pool;
    if (x) {
        env->pool = x->next_free;
        env->n_pool--;
        buf_t body = x->body, edge = x->edge_body, part = x->part, chunk = x->chunk;
        sse_parser_t sse = x->sse;
        oai_writer_t ow = x->ow;
        float *lpv = x->lpv;
        memset(x, 0, sizeof *x);
        x->ow = ow;
        x->lpv = lpv;
        x->body = body;
        x->edge_body = edge;
        x->part = part;
        x->chunk = chunk;
        x->sse = sse;
        buf_reset(&x->body);
        buf_reset(&x->edge_body);
        buf_reset(&x->part);
        buf_reset(&x->chunk);
        x->body.max = EXEC_MAX_BODY; /* up_head lowers it for error bodies */
        x->edge_body.max = EXEC_MAX_BODY;
        sse_parser_reset(&x->sse);
    } else {
        x = mem_calloc(1, sizeof *x);
        buf_init(&x->body, EXEC_MAX_BODY);
        buf_init(&x->edge_body, EXEC_MAX_BODY);
        buf_init(&x->part, EXEC_MAX_PART);
        buf_init(&x->chunk, EXEC_MAX_SSE_LINE + 128);
        sse_parser_init(&x->sse, EXEC_MAX_SSE_LINE);
        oai_writer_init(&x->ow);
    }
    x->env = env;
    x->d = *d;
    x->req = req;
    x->stream = stream;
    x->completions = completions;
    x->ep = ep;
    x->stream = stream && ep != EXEC_EP_EMBEDDINGS;
    x->sink = sink;
    x->arg = arg;
    x->tier = -1;
    x->r.tier = -1;
    x->r.cont_tier = -1;
    x->part_ok = x->stream && ep == EXEC_EP_CHAT && sink->continue_with && cont_possible(req);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
    if (!cJSON_IsNumber(mt)) mt = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
    x->short_max = cJSON_IsNumber(mt) && mt->valuedouble <= EXEC_CONT_MIN;
    x->start_us = clock_mono_us();
    next_tier(x);
    return x;
}

void exec_abort(exec_t *x)
{
    if (x->done_called) return;
    if (x->call) upstream_call_cancel(x->call), x->call = NULL;
    if (x->tcall) x->tops->cancel(x->tcall), x->tcall = NULL;
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
        buf_deinit(&x->part);
        buf_deinit(&x->chunk);
        oai_writer_deinit(&x->ow);
        mem_free(x->lpv);
        mem_free(x);
    }
    env->n_pool = 0;
    mem_free(env->print);
    env->print = NULL;
    env->print_cap = 0;
}
