/* tier.c — circuit breaker, route view, cost model (the queue: tier/queue.c). */
#include "tier/tier.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "tier/backend.h"

bool tier_asks_logprobs(const cJSON *req, bool completions)
{
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(req, "logprobs");
    return cJSON_IsTrue(lp) || (completions && cJSON_IsNumber(lp));
}

void tier_init(tier_t *t, int idx, const tier_settings_t *s)
{
    memset(t, 0, sizeof *t);
    t->s = *s;
    t->idx = idx;
    if (s->base_url) {
        snprintf(t->chat_url, sizeof t->chat_url, "%s/chat/completions", s->base_url);
        snprintf(t->completions_url, sizeof t->completions_url, "%s/completions", s->base_url);
    }
    if (s->api_key && *s->api_key)
        snprintf(t->auth_header, sizeof t->auth_header, "Authorization: Bearer %s", s->api_key);
    if (s->kind == TIER_KIND_ANTHROPIC) {
        /* The Messages API: one endpoint, its own key header. */
        if (s->base_url) snprintf(t->chat_url, sizeof t->chat_url, "%s/messages", s->base_url);
        if (s->api_key && *s->api_key)
            snprintf(t->auth_header, sizeof t->auth_header, "x-api-key: %s", s->api_key);
    }
    if (t->s.brk_window > TIER_OUTCOME_WINDOW) t->s.brk_window = TIER_OUTCOME_WINDOW;
    if (t->s.brk_window == 0) t->s.brk_window = 1;
    pthread_mutex_init(&t->mu, NULL);
    t->circuit = TIER_CLOSED;
}

void tier_deinit(tier_t *t)
{
    pthread_mutex_destroy(&t->mu);
}

/* Under mu: OPEN turns HALF_OPEN once its time is up. */
static void breaker_tick(tier_t *t, uint64_t now_ms)
{
    if (t->circuit == TIER_OPEN && now_ms >= t->open_until_ms) {
        t->circuit = TIER_HALF_OPEN;
        t->probe_inflight = false;
    }
}

bool tier_breaker_allow(tier_t *t, uint64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    breaker_tick(t, now_ms);
    bool ok = true;
    if (t->circuit == TIER_OPEN) {
        ok = false;
    } else if (t->circuit == TIER_HALF_OPEN) {
        ok = !t->probe_inflight;
        if (ok) t->probe_inflight = true;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void open_circuit(tier_t *t, uint64_t now_ms)
{
    t->circuit = TIER_OPEN;
    t->open_until_ms = now_ms + t->s.brk_open_ms;
    t->probe_inflight = false;
    atomic_fetch_add(&t->n_opened, 1);
}

void tier_breaker_record(tier_t *t, bool ok, uint64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    /* The error-rate window. */
    uint32_t w = t->s.brk_window;
    if (t->n_outcomes == w) {
        t->window_failures -= t->outcomes[t->outcome_pos];
    } else {
        t->n_outcomes++;
    }
    t->outcomes[t->outcome_pos] = ok ? 0 : 1;
    t->window_failures += ok ? 0 : 1;
    t->outcome_pos = (t->outcome_pos + 1) % w;

    if (ok) {
        t->consec_failures = 0;
        if (t->circuit == TIER_HALF_OPEN) {
            t->circuit = TIER_CLOSED;
            t->probe_inflight = false;
            /* A fresh start: old failures must not re-open it at once. */
            memset(t->outcomes, 0, sizeof t->outcomes);
            t->n_outcomes = t->outcome_pos = t->window_failures = 0;
        }
    } else {
        t->consec_failures++;
        if (t->circuit == TIER_HALF_OPEN) {
            open_circuit(t, now_ms);
        } else if (t->circuit == TIER_CLOSED) {
            bool rate =
                t->n_outcomes >= w && (double)t->window_failures >= t->s.brk_error_rate * (double)w;
            if (t->consec_failures >= t->s.brk_failures || rate) open_circuit(t, now_ms);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void tier_breaker_cancel_probe(tier_t *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->circuit == TIER_HALF_OPEN) t->probe_inflight = false;
    pthread_mutex_unlock(&t->mu);
}

tier_circuit_t tier_circuit(tier_t *t, uint64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    breaker_tick(t, now_ms);
    tier_circuit_t c = t->circuit;
    pthread_mutex_unlock(&t->mu);
    return c;
}

void tier_settings_route_view(const tier_settings_t *s, route_tier_t *out)
{
    out->name = s->name;
    out->privacy = s->privacy;
    out->role = s->role;
    out->healthy = true;
    out->saturated = false;
    out->has_logprobs = s->logprobs;
    double per_tok_hw = 0;
    if (s->usd_per_hour > 0 && s->tokens_per_second > 0)
        per_tok_hw = s->usd_per_hour / 3600.0 / s->tokens_per_second * 1e6;
    out->usd_per_mtok_in = s->usd_per_mtok_in + per_tok_hw;
    out->usd_per_mtok_out = s->usd_per_mtok_out + per_tok_hw;
    out->max_context = s->max_context;
    out->caps = s->caps;
}

void tier_route_view(tier_t *t, uint64_t now_ms, route_tier_t *out)
{
    tier_settings_route_view(&t->s, out);
    pthread_mutex_lock(&t->mu);
    breaker_tick(t, now_ms);
    out->healthy = !t->disabled && t->circuit != TIER_OPEN &&
                   !(t->circuit == TIER_HALF_OPEN && t->probe_inflight);
    out->saturated =
        t->inflight >= t->s.max_concurrency && t->n_class[TIER_Q_PINNED] >= t->s.max_queue;
    pthread_mutex_unlock(&t->mu);
}

double tier_cost_usd(const tier_t *t, uint32_t tokens_in, uint32_t tokens_out)
{
    double c = (t->s.usd_per_mtok_in * tokens_in + t->s.usd_per_mtok_out * tokens_out) / 1e6;
    /* Edge: amortized hardware time for the tokens processed, at measured throughput. */
    if (t->s.usd_per_hour > 0 && t->s.tokens_per_second > 0)
        c += t->s.usd_per_hour / 3600.0 *
             ((double)(tokens_in + tokens_out) / t->s.tokens_per_second);
    return c;
}
