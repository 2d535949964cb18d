/* budget.c — budget leases per key, granted in memory, backed by the store. */
#include "api/budget.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/offload.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store.h"

#define BUDGET_MAX_PENDING 4096
#define BUDGET_LEASE_SHARE 0.01 /* of the limit, per store round trip */
/* An idle key keeps its lease while the store had room for this many more leases at
 * its last grow, for BUDGET_IDLE_MS of idleness (budget_tick); nearer the limit it
 * goes back at once, so other gateways can use what is left. */
#define BUDGET_KEEP_LEASES 10
#define BUDGET_IDLE_MS     1000

/* This gateway's share of one key's budget in one period. All amounts USD. */
typedef struct lease {
    pthread_mutex_t mu;
    int64_t period_ms; /* period the lease belongs to */
    double leased;     /* reserved in the store for this gateway */
    double granted;    /* reservations of requests in flight */
    double spent;      /* settled costs not yet written back to the store */
    double headroom;   /* limit - spent - reserved in the store after the last grow */
    uint64_t idle_ms;  /* monotonic time the key went idle with its lease kept; 0: not */
} lease_t;

struct budget {
    const config_auth_t *auth; /* borrowed */
    lease_t *leases;           /* (auth->n_keys) */
    offload_t *thread;
    store_t *store; /* used only on the offload thread (and in budget_free after it) */
};

typedef enum { JOB_GROW, JOB_RETURN } job_kind_t;

typedef struct job {
    budget_t *b;
    job_kind_t kind;
    int key;
    int64_t period_ms;
    double amount;  /* GROW: the request's reservation */
    double grow;    /* GROW: lease asked for */
    double spent;   /* RETURN: costs to move from reserved to spent */
    double release; /* RETURN: reservation to give back in all (spent included) */
    int rc;
    store_budget_t totals;
    budget_done_fn done;
    void *arg;
} job_t;

budget_t *budget_new(const config_auth_t *auth, const char *store_url, char *err, size_t errlen)
{
    if (!strncmp(store_url, "sqlite::memory:", 15)) {
        snprintf(err, errlen,
                 "auth: budgets need a store other gateways and threads can open (a SQLite file "
                 "or PostgreSQL), not %s",
                 store_url);
        return NULL;
    }
    budget_t *b = mem_calloc(1, sizeof *b);
    b->auth = auth;
    b->store = store_open(store_url, err, errlen);
    if (!b->store) {
        mem_free(b);
        return NULL;
    }
    b->thread = offload_new(BUDGET_MAX_PENDING);
    if (!b->thread) {
        snprintf(err, errlen, "auth: cannot start the budget thread");
        store_close(b->store);
        mem_free(b);
        return NULL;
    }
    b->leases = mem_calloc(auth->n_keys ? auth->n_keys : 1, sizeof *b->leases);
    for (size_t i = 0; i < auth->n_keys; i++) {
        pthread_mutex_init(&b->leases[i].mu, NULL);
        b->leases[i].period_ms = -1;
    }
    return b;
}

int64_t budget_period_start(config_period_t p, int64_t now_ms)
{
    const int64_t day = 86400000;
    int64_t days = now_ms >= 0 ? now_ms / day : (now_ms - day + 1) / day;
    switch (p) {
    case CONFIG_PERIOD_DAY:
        return days * day;
    case CONFIG_PERIOD_WEEK: {
        int64_t since_monday = ((days + 3) % 7 + 7) % 7; /* 1970-01-01 was a Thursday */
        return (days - since_monday) * day;
    }
    case CONFIG_PERIOD_MONTH: {
        time_t t = (time_t)(now_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        return (int64_t)timegm(&tm) * 1000;
    }
    case CONFIG_PERIOD_TOTAL:
    default:
        return 0;
    }
}

/* ------------------------------------------------------------ jobs ---- */

/* Gives back `release` of the store reservation, `spent` of it as spending. */
static int store_return(budget_t *b, int key, int64_t period_ms, double spent, double release)
{
    const char *name = b->auth->keys[key].name;
    int rc = store_budget_settle(b->store, name, period_ms, release, spent, NULL);
    if (rc)
        log_warn("budget: writing back %.6f USD spent by key '%s' failed: %s (it stays "
                 "reserved until the period ends)",
                 spent, name, store_errmsg(b->store));
    return rc;
}

static void job_work(void *arg)
{
    job_t *j = arg;
    budget_t *b = j->b;
    const config_key_t *k = &b->auth->keys[j->key];
    if (j->kind == JOB_RETURN) {
        j->rc = store_return(b, j->key, j->period_ms, j->spent, j->release);
        return;
    }
    /* A whole lease if it fits, else exactly what this request lacks. */
    lease_t *l = &b->leases[j->key];
    double need = j->grow;
    j->rc = store_budget_reserve(b->store, k->name, j->period_ms, k->budget_usd, need, &j->totals);
    if (j->rc == SY_EFULL) {
        pthread_mutex_lock(&l->mu);
        double avail = l->period_ms == j->period_ms ? l->leased - l->granted - l->spent : 0;
        pthread_mutex_unlock(&l->mu);
        double exact = j->amount - (avail > 0 ? avail : 0);
        if (exact < need) {
            need = exact > 0 ? exact : 0;
            j->rc = need > 0 ? store_budget_reserve(b->store, k->name, j->period_ms, k->budget_usd,
                                                    need, &j->totals)
                             : 0;
        }
    }
    if (j->rc && j->rc != SY_EFULL)
        log_warn("budget: reserving for key '%s' failed: %s", k->name, store_errmsg(b->store));
    if (j->rc) return;
    pthread_mutex_lock(&l->mu);
    if (l->period_ms == j->period_ms) {
        l->leased += need;
        l->granted += j->amount;
        l->headroom = k->budget_usd - j->totals.spent_usd - j->totals.reserved_usd;
        l->idle_ms = 0;
    } else {
        /* The period turned while we asked: this reservation stands alone. */
        pthread_mutex_unlock(&l->mu);
        j->rc = need >= j->amount ? 0 : SY_EFULL;
        if (need > 0) store_return(b, j->key, j->period_ms, 0, j->rc ? need : need - j->amount);
        return;
    }
    pthread_mutex_unlock(&l->mu);
}

static void job_done(void *arg)
{
    job_t *j = arg;
    if (j->done) j->done(j->arg, j->rc, j->totals.spent_usd, j->totals.reserved_usd);
    mem_free(j);
}

static void job_drop(void *arg)
{
    mem_free(arg);
}

/* Queues the write-back of a lease's settled costs and, with give_back, the rest
 * of it. Called with l->mu held; the lease is changed at once (the store follows). */
static void lease_return(budget_t *b, loop_t *loop, int key, lease_t *l, bool give_back)
{
    double spent = l->spent;
    double release = give_back ? l->leased - l->granted : spent;
    if (release <= 0 && spent <= 0) return;
    job_t *j = mem_calloc(1, sizeof *j);
    *j = (job_t){.b = b,
                 .kind = JOB_RETURN,
                 .key = key,
                 .period_ms = l->period_ms,
                 .spent = spent,
                 .release = release};
    if (offload_submit(b->thread, loop, job_work, job_done, job_drop, j)) {
        mem_free(j); /* queue full: keep it in the lease for a later batch */
        return;
    }
    l->leased -= release;
    l->spent = 0;
}

int budget_reserve(budget_t *b, loop_t *loop, int key, int64_t now_ms, double amount_usd,
                   int64_t *period_ms, budget_done_fn done, void *arg)
{
    const config_key_t *k = &b->auth->keys[key];
    lease_t *l = &b->leases[key];
    int64_t period = budget_period_start(k->budget_period, now_ms);
    *period_ms = period;
    pthread_mutex_lock(&l->mu);
    if (l->period_ms != period) {
        /* A new period: write back and give back the old lease. */
        if (l->period_ms >= 0) lease_return(b, loop, key, l, true);
        l->period_ms = period;
        l->leased = l->granted = l->spent = l->headroom = 0;
        l->idle_ms = 0;
    }
    if (amount_usd <= l->leased - l->granted - l->spent) {
        l->granted += amount_usd;
        l->idle_ms = 0;
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    pthread_mutex_unlock(&l->mu);
    double share = k->budget_usd * BUDGET_LEASE_SHARE;
    job_t *j = mem_calloc(1, sizeof *j);
    *j = (job_t){.b = b,
                 .kind = JOB_GROW,
                 .key = key,
                 .period_ms = period,
                 .amount = amount_usd,
                 .grow = share > amount_usd ? share : amount_usd,
                 .done = done,
                 .arg = arg};
    int rc = offload_submit(b->thread, loop, job_work, job_done, job_drop, j);
    if (rc) {
        mem_free(j);
        return rc;
    }
    return 1;
}

void budget_settle(budget_t *b, loop_t *loop, int key, int64_t period_ms, double reserved_usd,
                   double actual_usd)
{
    const config_key_t *k = &b->auth->keys[key];
    lease_t *l = &b->leases[key];
    pthread_mutex_lock(&l->mu);
    if (l->period_ms == period_ms) {
        l->granted -= reserved_usd;
        if (l->granted < 1e-12) l->granted = 0;
        l->spent += actual_usd;
        /* Idle key near its limit: everything goes back. Idle with room to spare: the
         * lease is kept a moment (budget_tick gives it back), so a key whose requests
         * come one at a time does not pay two store writes per request. Busy: costs
         * go back in batches. */
        double share = k->budget_usd * BUDGET_LEASE_SHARE;
        if (l->granted == 0 && l->headroom < share * BUDGET_KEEP_LEASES)
            lease_return(b, loop, key, l, true);
        else if (l->granted == 0 && !l->idle_ms)
            l->idle_ms = clock_mono_ms() | 1;
        if (l->granted > 0 && l->spent >= share / 2) lease_return(b, loop, key, l, false);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    pthread_mutex_unlock(&l->mu);
    /* Its period's lease was given back already, all but the reservations still in
     * flight, like this one: settle it against the store alone. */
    job_t *j = mem_calloc(1, sizeof *j);
    *j = (job_t){.b = b,
                 .kind = JOB_RETURN,
                 .key = key,
                 .period_ms = period_ms,
                 .spent = actual_usd,
                 .release = reserved_usd};
    if (offload_submit(b->thread, loop, job_work, job_done, job_drop, j)) mem_free(j);
}

void budget_tick(budget_t *b, loop_t *loop, uint64_t now_ms)
{
    if (!b) return;
    for (size_t i = 0; i < b->auth->n_keys; i++) {
        lease_t *l = &b->leases[i];
        pthread_mutex_lock(&l->mu);
        if (l->idle_ms && l->granted == 0 && now_ms - l->idle_ms >= BUDGET_IDLE_MS) {
            lease_return(b, loop, (int)i, l, true);
            l->idle_ms = 0;
        }
        pthread_mutex_unlock(&l->mu);
    }
}

void budget_free(budget_t *b)
{
    if (!b) return;
    offload_free(b->thread); /* runs what is queued first */
    for (size_t i = 0; i < b->auth->n_keys; i++) {
        lease_t *l = &b->leases[i];
        if (l->period_ms >= 0 && (l->leased > 0 || l->spent > 0))
            store_return(b, (int)i, l->period_ms, l->spent, l->leased);
        pthread_mutex_destroy(&l->mu);
    }
    store_close(b->store);
    mem_free(b->leases);
    mem_free(b);
}
