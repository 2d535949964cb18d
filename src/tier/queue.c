/* queue.c — a tier's concurrency limit, its two-class waiting queue, and the
 * latency estimates that spillover decides with (tier.h, "Concurrency").
 *
 * Why two classes: when an edge tier is saturated, a request that may only run
 * there (personal data under local_only) has nowhere else to go, while one that
 * may also run on the cloud does. A single FIFO lets the second kind hold every
 * place, and the first is refused. So pinned waiters are served first, and a
 * pinned request that finds the queue full takes the place of the newest
 * spillable waiter, which is sent on to its next tier.
 *
 * Why predictions: a full queue is a late signal. A spillable request is not
 * queued when its predicted time to first token here — the slots ahead of it
 * (waiters before it + 1, over max_concurrency) times the measured time a call
 * holds a slot, plus this tier's measured TTFT — exceeds the measured TTFT of
 * the tier it would go to instead; a spillable waiter leaves by the same rule
 * when a pinned request is queued ahead of it.
 *
 * Everything here runs under t->mu, held for a few instructions; callbacks are
 * posted to the waiters' loops after the mutex is released.
 */
#include <math.h>

#include "base/err.h"
#include "tier/tier.h"

#define EWMA_WEIGHT 0.125 /* weight of the newest sample */

/* ------------------------------------------------------------- estimates --- */

static void ewma_add(tier_ewma_t *e, double ms)
{
    e->mean_ms = e->n ? e->mean_ms + EWMA_WEIGHT * (ms - e->mean_ms) : ms;
    e->n++;
}

/* Under mu: predicted TTFT, ms, with `ahead` waiters before the request. */
static double eta_locked(const tier_t *t, uint32_t ahead)
{
    if (!t->service.n) return 0;
    uint32_t c = t->s.max_concurrency ? t->s.max_concurrency : 1;
    return (double)(ahead + 1) * t->service.mean_ms / c + t->ttft.mean_ms;
}

double tier_eta_ms(tier_t *t, uint32_t ahead)
{
    pthread_mutex_lock(&t->mu);
    double eta = eta_locked(t, ahead);
    pthread_mutex_unlock(&t->mu);
    return eta;
}

void tier_ttft_observe(tier_t *t, uint64_t us)
{
    pthread_mutex_lock(&t->mu);
    ewma_add(&t->ttft, (double)us / 1000.0);
    pthread_mutex_unlock(&t->mu);
}

void tier_service_observe(tier_t *t, uint64_t us)
{
    pthread_mutex_lock(&t->mu);
    ewma_add(&t->service, (double)us / 1000.0);
    pthread_mutex_unlock(&t->mu);
}

void tier_waiter_prepare(tier_waiter_t *w, tier_t *tiers, const int *rest, int n_rest,
                         uint64_t now_ms)
{
    w->spillable = false;
    w->alt_ttft_ms = 0;
    w->eta_ms = 0;
    for (int i = 0; i < n_rest; i++) {
        tier_t *o = &tiers[rest[i]];
        if (o->disabled || tier_circuit(o, now_ms) == TIER_OPEN) continue;
        pthread_mutex_lock(&o->mu);
        double m = o->ttft.n ? o->ttft.mean_ms : 0;
        pthread_mutex_unlock(&o->mu);
        w->spillable = true;
        w->alt_ttft_ms = m <= 0 ? 0 : m < 1 ? 1 : m > 3.6e6 ? 3600000u : (uint32_t)ceil(m);
        return;
    }
}

/* ----------------------------------------------------------------- queue --- */

static int class_of(const tier_waiter_t *w)
{
    return w->spillable ? TIER_Q_SPILLABLE : TIER_Q_PINNED;
}

/* Under mu: appends w to its class. */
static void push(tier_t *t, tier_waiter_t *w)
{
    int c = class_of(w);
    w->state = 1;
    w->next = NULL;
    w->prev = t->tail[c];
    if (t->tail[c])
        t->tail[c]->next = w;
    else
        t->head[c] = w;
    t->tail[c] = w;
    t->n_class[c]++;
    t->queued++;
}

/* Under mu: removes w from its class. */
static void unlink_waiter(tier_t *t, tier_waiter_t *w)
{
    int c = class_of(w);
    if (w->prev)
        w->prev->next = w->next;
    else
        t->head[c] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        t->tail[c] = w->prev;
    w->prev = w->next = NULL;
    t->n_class[c]--;
    t->queued--;
}

/* Under mu: takes spillable waiter v out as spilled, onto the list *gone (linked
 * through next; its callback is posted once the mutex is released). */
static void spill(tier_t *t, tier_waiter_t *v, tier_waiter_t **gone)
{
    unlink_waiter(t, v);
    v->state = 3;
    v->next = *gone;
    *gone = v;
    t->n_spilled_priority++;
}

/* Under mu, after a pinned request was queued: each spillable waiter now has one
 * more request before it; those whose prediction passed their alternative's TTFT
 * leave. */
static void reassess(tier_t *t, tier_waiter_t **gone)
{
    uint32_t kept = 0;
    tier_waiter_t *v = t->head[TIER_Q_SPILLABLE];
    while (v) {
        tier_waiter_t *nx = v->next;
        double eta = eta_locked(t, t->n_class[TIER_Q_PINNED] + kept);
        if (v->alt_ttft_ms && eta > v->alt_ttft_ms) {
            v->eta_ms = (uint32_t)fmin(eta, 3.6e6);
            spill(t, v, gone);
        } else {
            kept++;
        }
        v = nx;
    }
}

/* Posts the spilled waiters' callbacks (outside mu). A waiter is not touched after
 * its callback is posted: it may run at once on its loop. */
static void post_spilled(tier_waiter_t *gone)
{
    while (gone) {
        tier_waiter_t *nx = gone->next;
        gone->next = NULL;
        if (loop_post(gone->loop, gone->spilled, gone->arg) != 0) gone->spilled(gone->arg);
        gone = nx;
    }
}

int tier_acquire(tier_t *t, tier_waiter_t *w)
{
    int rc;
    tier_waiter_t *gone = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->inflight < t->s.max_concurrency) {
        t->inflight++;
        rc = 0;
    } else if (w->spillable) {
        double eta = eta_locked(t, t->queued);
        if (w->alt_ttft_ms && eta > w->alt_ttft_ms) {
            w->eta_ms = (uint32_t)fmin(eta, 3.6e6);
            t->n_spilled_eta++;
            rc = TIER_SPILL_ETA;
        } else if (t->queued < t->s.max_queue) {
            push(t, w);
            rc = TIER_QUEUED;
        } else {
            rc = SY_EFULL;
        }
    } else {
        if (t->queued >= t->s.max_queue && t->tail[TIER_Q_SPILLABLE])
            spill(t, t->tail[TIER_Q_SPILLABLE], &gone); /* the newest gives way */
        if (t->queued < t->s.max_queue) {
            push(t, w);
            reassess(t, &gone);
            rc = TIER_QUEUED;
        } else {
            rc = SY_EFULL;
        }
    }
    pthread_mutex_unlock(&t->mu);
    post_spilled(gone);
    return rc;
}

void tier_release(tier_t *t)
{
    pthread_mutex_lock(&t->mu);
    tier_waiter_t *w = t->head[TIER_Q_PINNED] ? t->head[TIER_Q_PINNED] : t->head[TIER_Q_SPILLABLE];
    if (w) {
        /* Hand the slot straight to the next waiter: inflight stays the same. */
        unlink_waiter(t, w);
        w->state = 2;
    } else if (t->inflight > 0) {
        t->inflight--;
    }
    pthread_mutex_unlock(&t->mu);
    if (w && loop_post(w->loop, w->ready, w->arg) != 0) w->ready(w->arg);
}

bool tier_wait_cancel(tier_t *t, tier_waiter_t *w)
{
    pthread_mutex_lock(&t->mu);
    bool was_queued = w->state == 1;
    if (was_queued) {
        unlink_waiter(t, w);
        w->state = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return was_queued;
}

uint32_t tier_inflight(tier_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint32_t n = t->inflight;
    pthread_mutex_unlock(&t->mu);
    return n;
}

uint32_t tier_queued(tier_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint32_t n = t->queued;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void tier_queue_stats(tier_t *t, tier_queue_stats_t *out)
{
    pthread_mutex_lock(&t->mu);
    *out = (tier_queue_stats_t){
        .pinned = t->n_class[TIER_Q_PINNED],
        .spillable = t->n_class[TIER_Q_SPILLABLE],
        .spilled_priority = t->n_spilled_priority,
        .spilled_eta = t->n_spilled_eta,
        .ttft_ms = t->ttft.n ? t->ttft.mean_ms : 0,
        .service_ms = t->service.n ? t->service.mean_ms : 0,
    };
    pthread_mutex_unlock(&t->mu);
}
