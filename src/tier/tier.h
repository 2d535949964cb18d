/* tier.h — one serving tier: health, circuit breaker, concurrency and queue, cost.
 *
 * A tier_t is shared by every worker thread, so its mutable state sits behind a
 * mutex (held for a few instructions, never across I/O). The circuit breaker
 * opens on `failures` consecutive failures or when the failure share over the last
 * `window` outcomes reaches `error_rate`; after open_ms one probe is let through
 * (half-open); its success closes the circuit, its failure re-opens it.
 *
 * Concurrency (tier/queue.c): at most max_concurrency calls in flight; up to
 * max_queue more wait. The queue has two classes: a request that may only run on
 * this tier (PINNED: personal data under local_only, a forced tier, nothing else
 * left in its decision) is served before one that may also run elsewhere
 * (SPILLABLE), FIFO within a class. A spillable waiter gives its place up (is
 * spilled) when a pinned request needs the room, and it is not queued, or leaves,
 * when its predicted time to first token here exceeds the measured TTFT of the tier
 * it would go to instead. A waiter is woken on its own worker loop (loop_post),
 * holding the slot it was handed; it must release it with tier_release() when done.
 */
#ifndef SY_TIER_TIER_H
#define SY_TIER_TIER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/loop.h"
#include "route/router.h"

typedef enum { TIER_CLOSED, TIER_OPEN, TIER_HALF_OPEN } tier_circuit_t;
typedef enum { TIER_KIND_OPENAI, TIER_KIND_LOCAL, TIER_KIND_ANTHROPIC } tier_kind_t;

/* Settings the tier needs, copied from the config. */
typedef struct tier_settings {
    const char *name; /* borrowed, lives as long as the tier */
    tier_kind_t kind;
    const char *model;     /* upstream model name or model file */
    const char *tokenizer; /* kind local, llama2.c models: tokenizer file or NULL */
    const char *draft;     /* kind local: draft model (speculative decoding) or NULL */
    uint32_t draft_max;    /* kind local with a draft: tokens drafted per round (0 = 4) */
    uint32_t threads;      /* kind local: engine threads per request */
    const char *version;   /* "" = unset */
    const char *base_url;  /* kind openai, without trailing '/' */
    const char *api_key;   /* resolved secret or NULL */
    route_privacy_t privacy;
    route_role_t role;
    uint32_t max_concurrency;
    uint32_t max_queue;
    double usd_per_hour, usd_per_mtok_in, usd_per_mtok_out, tokens_per_second;
    uint32_t connect_timeout_ms, timeout_ms, ttft_timeout_ms;
    uint32_t retries, retry_backoff_ms;
    uint32_t brk_failures;
    double brk_error_rate;
    uint32_t brk_window;
    uint32_t brk_open_ms;
    bool logprobs;
    uint32_t max_context;    /* tokens the router lets in (0 = no limit), from the config only,
                                so offline tools decide as the server does */
    uint32_t engine_context; /* kind local: engine context (0 = the model's; set at open) */
    uint32_t caps;           /* bitmask of route_cap_t */
    /* kind local, speculative: the tier verifying its drafts (NULL = none), and the
     * tokens drafted per round (0 = adaptive) */
    const char *spec_verifier;
    uint32_t spec_draft_max;
} tier_settings_t;

/* A queued request; embedded in the caller's request state. Zeroed, it is pinned. */
typedef struct tier_waiter {
    struct tier_waiter *prev, *next; /* intrusive FIFO links */
    loop_t *loop;                    /* the waiter's worker loop */
    void (*ready)(void *arg);        /* runs on loop, holding a slot */
    void (*spilled)(void *arg);      /* spillable only: runs on loop, holding nothing */
    void *arg;
    int state;            /* 0 idle, 1 queued, 2 woken, 3 spilled */
    bool spillable;       /* another tier may serve it (tier_waiter_prepare) */
    uint32_t alt_ttft_ms; /* spillable: that tier's measured TTFT, 0 = unknown */
    uint32_t eta_ms;      /* out: the prediction it was spilled on (TIER_SPILL_ETA, state 3) */
} tier_waiter_t;

/* The classes of the queue, served in this order. */
enum { TIER_Q_PINNED, TIER_Q_SPILLABLE, TIER_Q_CLASSES };

/* tier_acquire's answers besides 0 (a slot now) and SY_EFULL. */
#define TIER_QUEUED    1 /* w->ready (or w->spilled) runs later on w's loop */
#define TIER_SPILL_ETA 2 /* spillable: predicted TTFT here above alt_ttft_ms; not queued */

/* A measured latency: exponentially weighted mean of the samples (weight 1/8 on
 * the newest), 0 until the first. */
typedef struct tier_ewma {
    double mean_ms;
    uint64_t n;
} tier_ewma_t;

#define TIER_OUTCOME_WINDOW 256

typedef struct tier {
    tier_settings_t s;
    int idx;
    char chat_url[512]; /* base_url + /chat/completions (kind anthropic: + /messages) */
    char completions_url[512];
    char auth_header[512]; /* "Authorization: Bearer ..." (anthropic: "x-api-key: ...") or "" */
    pthread_mutex_t mu;
    /* breaker (under mu) */
    tier_circuit_t circuit;
    uint32_t consec_failures;
    uint64_t open_until_ms;
    bool probe_inflight;
    uint8_t outcomes[TIER_OUTCOME_WINDOW]; /* 1 = failure, ring */
    uint32_t n_outcomes, outcome_pos, window_failures;
    /* concurrency (under mu) */
    uint32_t inflight;
    uint32_t queued;                     /* both classes */
    uint32_t n_class[TIER_Q_CLASSES];    /* waiters per class */
    tier_waiter_t *head[TIER_Q_CLASSES]; /* per class, oldest first */
    tier_waiter_t *tail[TIER_Q_CLASSES]; /* per class, newest */
    tier_ewma_t ttft;                    /* call start -> first answer byte */
    tier_ewma_t service;                 /* call start -> end: how long a slot is held */
    uint64_t n_spilled_priority;         /* spillable waiters that gave way to pinned */
    uint64_t n_spilled_eta;              /* spillable requests sent on by prediction */
    /* counters (atomic, for metrics) */
    atomic_uint_fast64_t n_opened;
    void *backend;                      /* kind local: the engine handle */
    const struct tier_backend_ops *ops; /* typed backend (kind local), NULL: HTTP */
    bool disabled;                      /* cannot serve at all (e.g. its API key is not set) */
    char disabled_why[160];             /* said at start and by /readyz */
    /* kind local: s.spec_verifier's tier (same array), NULL = none */
    struct tier *verifier;
} tier_t;

/* Initialises t from settings (strings borrowed). */
void tier_init(tier_t *t, int idx, const tier_settings_t *s);
void tier_deinit(tier_t *t);

/* Breaker: may a call start now? Moves OPEN to HALF_OPEN when open_ms passed and
 * reserves the single probe. */
bool tier_breaker_allow(tier_t *t, uint64_t now_ms);
/* Records a call's outcome (ok or failed) and updates the circuit. */
void tier_breaker_record(tier_t *t, bool ok, uint64_t now_ms);
tier_circuit_t tier_circuit(tier_t *t, uint64_t now_ms);
/* Gives back a half-open probe reserved by tier_breaker_allow that was not used
 * (the tier's queue was full), recording no outcome. */
void tier_breaker_cancel_probe(tier_t *t);

/* ---- Queue (tier/queue.c) ---- */

/* Sets w's class for a call on this tier: spillable when a tier of rest[n_rest]
 * (what the decision lists after it) has its circuit not open, with alt_ttft_ms
 * that tier's measured TTFT (0 = not measured yet); else pinned. */
void tier_waiter_prepare(tier_waiter_t *w, tier_t *tiers, const int *rest, int n_rest,
                         uint64_t now_ms);
/* Takes a slot for w. 0: acquired now. TIER_QUEUED: queued; later w->ready runs on
 * w's loop holding a slot, or (spillable only) w->spilled runs holding nothing when
 * a pinned request took its place or moved ahead of it past its alt_ttft_ms.
 * TIER_SPILL_ETA: spillable, and its predicted TTFT here is above alt_ttft_ms (not
 * queued). SY_EFULL: concurrency and queue full (for a pinned request: full of
 * pinned requests). A pinned request finding the queue full evicts the newest
 * spillable waiter. */
int tier_acquire(tier_t *t, tier_waiter_t *w);
/* Returns a slot, handing it to the oldest pinned waiter, else the oldest
 * spillable one, if any. */
void tier_release(tier_t *t);
/* Removes a queued waiter: true if it was still queued (no slot is held), false
 * if it was already woken or spilled (its callback will run; ready must release). */
bool tier_wait_cancel(tier_t *t, tier_waiter_t *w);
/* Predicted time to first token, ms, of a request that would have `ahead` waiters
 * before it: (ahead + 1) x service / max_concurrency + ttft, from the measured
 * means; 0 while the service time is not measured. */
double tier_eta_ms(tier_t *t, uint32_t ahead);
/* Samples for the estimates: a call's time to its first answer byte, and how long
 * it held its slot (microseconds). */
void tier_ttft_observe(tier_t *t, uint64_t us);
void tier_service_observe(tier_t *t, uint64_t us);
/* A consistent snapshot of the queue for metrics. */
typedef struct tier_queue_stats {
    uint32_t pinned, spillable;             /* waiting, per class */
    uint64_t spilled_priority, spilled_eta; /* counters since start */
    double ttft_ms, service_ms;             /* measured means, 0 until measured */
} tier_queue_stats_t;
void tier_queue_stats(tier_t *t, tier_queue_stats_t *out);

/* Current state for the router. */
/* The router's view of a tier from its settings alone (healthy, not saturated):
 * name, privacy, role, logprobs, context, and prices per million tokens with the
 * edge's hardware time (usd_per_hour at tokens_per_second) folded in. */
void tier_settings_route_view(const tier_settings_t *s, route_tier_t *out);
/* Live state: healthy, and saturated when there is no room even for a pinned
 * request (slots busy, queue full of pinned waiters); a spillable request finds
 * a queue full of spillable waiters at tier_acquire and spills there. */
void tier_route_view(tier_t *t, uint64_t now_ms, route_tier_t *out);
uint32_t tier_inflight(tier_t *t);
uint32_t tier_queued(tier_t *t);

/* Cost of tokens on this tier, USD. Edge tiers: hardware $/h over tokens/s. */
double tier_cost_usd(const tier_t *t, uint32_t tokens_in, uint32_t tokens_out);

#endif
