/* budget.c — budget reservations on a background thread with its own store. */
#include "api/budget.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/offload.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store.h"

#define BUDGET_MAX_PENDING 4096

struct budget {
    offload_t *thread;
    store_t *store; /* used only on the offload thread */
};

typedef struct job {
    budget_t *b;
    char key[128];
    int64_t period_ms;
    double limit_usd, amount_usd;    /* reserve */
    double reserved_usd, actual_usd; /* settle */
    bool settle;
    int rc;
    store_budget_t totals;
    budget_done_fn done;
    void *arg;
} job_t;

budget_t *budget_new(const char *store_url, char *err, size_t errlen)
{
    if (!strncmp(store_url, "sqlite::memory:", 15)) {
        snprintf(err, errlen,
                 "auth: budgets need a store other gateways and threads can open (a SQLite file "
                 "or PostgreSQL), not %s",
                 store_url);
        return NULL;
    }
    budget_t *b = mem_calloc(1, sizeof *b);
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
    return b;
}

void budget_free(budget_t *b)
{
    if (!b) return;
    offload_free(b->thread); /* runs what is queued (settlements included) first */
    store_close(b->store);
    mem_free(b);
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

static void job_work(void *arg)
{
    job_t *j = arg;
    if (j->settle) {
        j->rc = store_budget_settle(j->b->store, j->key, j->period_ms, j->reserved_usd,
                                    j->actual_usd, &j->totals);
        if (j->rc)
            log_warn("budget: settling %.6f USD for key '%s' failed: %s", j->actual_usd, j->key,
                     store_errmsg(j->b->store));
    } else {
        j->rc = store_budget_reserve(j->b->store, j->key, j->period_ms, j->limit_usd, j->amount_usd,
                                     &j->totals);
        if (j->rc && j->rc != SY_EFULL)
            log_warn("budget: reserving for key '%s' failed: %s", j->key,
                     store_errmsg(j->b->store));
    }
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

static job_t *job_make(budget_t *b, const char *key, int64_t period_ms)
{
    job_t *j = mem_calloc(1, sizeof *j);
    j->b = b;
    snprintf(j->key, sizeof j->key, "%s", key);
    j->period_ms = period_ms;
    return j;
}

int budget_reserve(budget_t *b, loop_t *loop, const char *key, int64_t period_ms, double limit_usd,
                   double amount_usd, budget_done_fn done, void *arg)
{
    job_t *j = job_make(b, key, period_ms);
    j->limit_usd = limit_usd;
    j->amount_usd = amount_usd;
    j->done = done;
    j->arg = arg;
    int rc = offload_submit(b->thread, loop, job_work, job_done, job_drop, j);
    if (rc) mem_free(j);
    return rc;
}

void budget_settle(budget_t *b, loop_t *loop, const char *key, int64_t period_ms,
                   double reserved_usd, double actual_usd)
{
    job_t *j = job_make(b, key, period_ms);
    j->settle = true;
    j->reserved_usd = reserved_usd;
    j->actual_usd = actual_usd;
    if (offload_submit(b->thread, loop, job_work, job_done, job_drop, j)) {
        /* The queue is full: the reservation stays counted until the period ends,
         * which errs on the safe side (never lets spending pass the limit). */
        log_warn("budget: settlement queue full; key '%s' keeps %.6f USD reserved until the "
                 "period ends",
                 key, reserved_usd);
        mem_free(j);
    }
}
