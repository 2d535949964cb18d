/* tier.h — one serving tier: health, circuit breaker, concurrency and queue, cost.
 *
 * A tier_t is shared by every worker thread, so its mutable state sits behind a
 * mutex (held for a few instructions, never across I/O). The circuit breaker
 * opens on `failures` consecutive failures or when the failure share over the last
 * `window` outcomes reaches `error_rate`; after open_ms one probe is let through
 * (half-open); its success closes the circuit, its failure re-opens it.
 *
 * Concurrency: at most max_concurrency calls in flight; up to max_queue more wait
 * in FIFO order. A waiter is woken on its own worker loop (loop_post), holding the
 * slot it was handed; it must release it with tier_release() when done.
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
} tier_settings_t;

/* A queued request; embedded in the caller's request state. */
typedef struct tier_waiter {
    struct tier_waiter *prev, *next; /* intrusive FIFO links */
    loop_t *loop;                    /* the waiter's worker loop */
    void (*ready)(void *arg);        /* runs on loop, holding a slot */
    void *arg;
    int state; /* 0 idle, 1 queued, 2 woken */
} tier_waiter_t;

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
    uint32_t queued;
    tier_waiter_t *head, *tail;
    /* counters (atomic, for metrics) */
    atomic_uint_fast64_t n_opened;
    void *backend;          /* kind local: the engine handle */
    bool disabled;          /* cannot serve at all (e.g. its API key is not set) */
    char disabled_why[160]; /* said at start and by /readyz */
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

/* Takes a slot: 0 = acquired now; 1 = queued (w->ready will run later on w's loop,
 * holding a slot); SY_EFULL = concurrency and queue full (spill over). */
int tier_acquire(tier_t *t, tier_waiter_t *w);
/* Returns a slot, waking the next waiter if any. */
void tier_release(tier_t *t);
/* Removes a queued waiter: true if it was still queued (no slot is held), false
 * if it was already woken (its ready callback will run and must release). */
bool tier_wait_cancel(tier_t *t, tier_waiter_t *w);

/* Current state for the router. */
/* The router's view of a tier from its settings alone (healthy, not saturated):
 * name, privacy, role, logprobs, context, and prices per million tokens with the
 * edge's hardware time (usd_per_hour at tokens_per_second) folded in. */
void tier_settings_route_view(const tier_settings_t *s, route_tier_t *out);
void tier_route_view(tier_t *t, uint64_t now_ms, route_tier_t *out);
uint32_t tier_inflight(tier_t *t);
uint32_t tier_queued(tier_t *t);

/* Cost of tokens on this tier, USD. Edge tiers: hardware $/h over tokens/s. */
double tier_cost_usd(const tier_t *t, uint32_t tokens_in, uint32_t tokens_out);

#endif
