/* exec.h — carrying out one routing decision across tiers.
 *
 * exec walks decision.order and nothing else (so a request the router marked
 * local_only can never reach an external tier), and applies, in this order:
 *   - circuit breakers: an open tier is skipped;
 *   - spillover: a tier whose concurrency limit and queue are full is skipped; a
 *     request another tier of the order can take is not queued where its
 *     predicted time to first token exceeds that tier's measured one, gives its
 *     place up to a request that can only run there, and moves on after waiting
 *     past the tier's ttft timeout (tier/queue.c);
 *   - retries with exponential backoff and jitter on connect errors, 429 and 5xx,
 *     while nothing has been sent to the client;
 *   - failover to the next tier in the order, in either direction, under the same
 *     condition; an edge answer standing in for a preferred cloud tier is marked
 *     degraded;
 *   - cascade: when decision.cascade is set, the edge answers first (non-streamed,
 *     with logprobs); below the confidence threshold the next cloud tier in the
 *     order re-answers the full conversation;
 *   - continuation: a streamed cascade whose next cloud tier declares `continue`
 *     streams the edge's answer live and, when its running confidence falls below
 *     the threshold, stops it and has that tier continue the partial answer in the
 *     same stream; a stream that breaks after some text continues on an edge tier
 *     of the order, marked degraded (docs/routing.md "Continuation").
 *
 * Callbacks run on the worker loop. done() runs exactly once per exec_start that
 * returned 0 (also after exec_abort, synchronously, with status 499).
 */
#ifndef SY_TIER_EXEC_H
#define SY_TIER_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/upstream.h"
#include "route/router.h"
#include "tier/backend.h"
#include "tier/tier.h"

struct cJSON;

/* Per-worker environment. */
typedef struct exec_env {
    tier_t *tiers; /* borrowed, n_tiers entries, shared by all workers */
    size_t n_tiers;
    loop_t *loop;   /* this worker's loop */
    upstream_t *up; /* this worker's HTTP client */
    uint64_t rand;  /* jitter state */
    /* Reused across this worker's requests (start zeroed; exec_env_deinit frees). */
    struct exec *pool; /* finished execs keeping their buffers */
    int n_pool;
    char *print; /* the rewritten upstream request body */
    size_t print_cap;
} exec_env_t;

/* Frees what env keeps for reuse; call on the worker's thread after its last exec
 * has finished. */
void exec_env_deinit(exec_env_t *env);

#define EXEC_MAX_NOTES 8
#define EXEC_MAX_CALLS 8 /* upstream calls kept for tracing */

/* One upstream call (or local engine call), for tracing. */
typedef struct exec_call_span {
    int tier;
    bool ok;                   /* answered (false: failed, timed out, cancelled) */
    uint64_t start_us, end_us; /* monotonic */
} exec_call_span_t;

/* ---- Errors -----------------------------------------------------------------
 * A request no tier answered fails with 503 tier_unavailable and a message naming
 * each tier's cause, in the order tried: "cloud: connection refused", "cloud: HTTP
 * 500: overloaded", "cloud: timeout after 4000 ms", "cloud: malformed response",
 * "edge: queue full", "edge: circuit open"; with several, "all tiers failed: cloud:
 * HTTP 500: overloaded; edge: queue full". An upstream's own error text (which may
 * echo the prompt) is included only when the sink's cause_ok accepts it, else
 * "(message withheld)". */

typedef struct exec_result {
    int status;          /* HTTP status for the client (200 on success) */
    char err_type[40];   /* OpenAI error type when status != 200 */
    char message[512];   /* error message when status != 200: the cause of each tier
                            that failed ("cloud: HTTP 500: overloaded; edge: queue full") */
    int tier;            /* tier that produced the answer, or -1 */
    int attempts;        /* upstream calls made */
    uint32_t tiers_sent; /* bit i: tier i was sent the request (called at least once) */
    bool failover;       /* served by another tier than the decision's first */
    bool escalated;      /* cascade re-answered on a cloud tier */
    bool degraded;       /* an edge tier answered in place of a preferred cloud tier */
    bool low_confidence; /* cascade answer below threshold that could not escalate */
    bool streamed;       /* events were forwarded through stream_event */
    bool has_confidence;
    float confidence; /* 0..1 from the edge's token logprobs */
    const char *body; /* non-streamed answer JSON (borrowed until done returns) */
    size_t body_len;
    uint32_t tokens_in, tokens_out;
    uint64_t ttft_us, total_us;
    char notes[EXEC_MAX_NOTES][ROUTE_REASON_LEN]; /* appended reasons: failover, escalation */
    int n_notes;
    uint64_t start_us;                      /* monotonic: when the exec started (ttft_us from) */
    exec_call_span_t calls[EXEC_MAX_CALLS]; /* the first calls, in order */
    int n_calls;
    /* Continuation: the answer is one tier's partial answer (the first part) continued
     * by tier (the second); the usage counts both. */
    bool continued;
    const char *cont_why; /* "low_confidence" (the edge's running confidence fell) or
                             "cut" (the stream broke); NULL when not continued */
    int cont_tier;        /* the tier that wrote the first part, -1 when not continued */
    uint32_t cont_tokens; /* the first part's tokens */
    uint32_t cont_bytes;  /* the first part's text, bytes */
    /* A typed backend's report of what speculative decoding did (present false for
     * none): the answer's switchyard object carries it. */
    tier_spec_report_t spec;
} exec_result_t;

typedef struct exec_sink {
    /* Before the first forwarded stream event; tier is the serving tier. */
    void (*stream_begin)(void *arg, int tier);
    /* One SSE data payload (JSON text), "[DONE]" excluded. */
    void (*stream_event)(void *arg, const char *data, size_t n);
    /* The end, exactly once. */
    void (*done)(void *arg, exec_result_t *r);
    /* The body for an openai-kind tier (model: its upstream model name; stream: ask for
     * a stream with usage; logprobs: ask for token logprobs), in *body (the sink's
     * memory, valid until the next call). 0, or an error that fails the attempt. NULL:
     * req is printed with the fields rewritten. */
    int (*render)(void *arg, const char *model, bool stream, bool logprobs, const char **body,
                  size_t *len);
    /* The body for an anthropic-kind tier: an Anthropic Messages request, as render.
     * NULL: such tiers fail (and fail over). */
    int (*render_anthropic)(void *arg, const char *model, bool stream, const char **body,
                            size_t *len);
    /* May an upstream's own error text (n bytes, which may echo the prompt) go into the
     * client's error message? NULL: never; it is then replaced by "(message withheld)". */
    bool (*cause_ok)(void *arg, const char *text, size_t n);
    /* A continuation: tier (an index into env->tiers) is to continue the answer so far
     * (text, n bytes, tokens generated; borrowed, unchanged until done; max_tokens is
     * lowered by tokens). 0 when the request may go there
     * with it: the text becomes the typed request's final assistant message, which
     * render and render_anthropic send, and which the privacy gate has scanned with the
     * rest; an error when it may not (the tier answers as without continuation). NULL:
     * never continue. */
    int (*continue_with)(void *arg, int tier, const char *text, size_t n, uint32_t tokens);
} exec_sink_t;

/* What the request asks for: the upstream path and the answer's shape. */
typedef enum {
    EXEC_EP_CHAT,        /* /chat/completions: choices[].message or .delta */
    EXEC_EP_COMPLETIONS, /* /completions: choices[].text */
    EXEC_EP_EMBEDDINGS   /* /embeddings: data[].embedding; never streamed or cascaded */
} exec_endpoint_t;

typedef struct exec exec_t;

/* Starts carrying out d for the OpenAI-shaped request req (borrowed: must outlive
 * the exec; its "model" and "stream" fields are rewritten per attempt). stream:
 * whether the client asked for streaming. endpoint: "/chat/completions" or
 * "/completions". Returns owned exec (freed after done) or NULL if d has no tier
 * (then done is not called). */
exec_t *exec_start(exec_env_t *env, const route_decision_t *d, struct cJSON *req, bool stream,
                   bool completions, const exec_sink_t *sink, void *arg);
/* The same for any endpoint (exec_start: chat or completions). An embeddings request
 * goes only to openai-kind tiers (a local tier in d.order is skipped as failed). */
exec_t *exec_start_ep(exec_env_t *env, const route_decision_t *d, struct cJSON *req, bool stream,
                      exec_endpoint_t ep, const exec_sink_t *sink, void *arg);
/* The client went away: cancels upstream work and waits, releases slots, and
 * calls done (status 499) before returning. */
void exec_abort(exec_t *x);

#endif
