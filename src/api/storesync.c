/* storesync.c — one thread for the store: queued writes, the private-session
 * view and the shared bandit statistics (see storesync.h). */
#include "api/storesync.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store.h"

#define SYNC_QUEUE      4096               /* writes waiting */
#define SYNC_OVERLAP_MS 60000              /* re-read this far back: clock skew */
#define SYNC_START_MS   (24 * 3600 * 1000) /* private sessions loaded at start */

typedef enum { JOB_PRIVATE, JOB_FEEDBACK, JOB_KV } job_kind_t;

typedef struct job {
    job_kind_t kind;
    char id[128];  /* session or request id */
    char ns[32];   /* kv */
    char key[64];  /* kv */
    double reward; /* feedback */
    int64_t ts_ms;
    void *blob; /* kv, owned */
    size_t len;
} job_t;

struct storesync {
    store_t *st;
    session_table_t *sessions;
    uint32_t sync_ms;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    job_t ring[SYNC_QUEUE];
    size_t head, count;
    uint64_t queued, settled, dropped;
    int64_t synced_ms; /* wall time the last sync started */
    bool stop;
    /* bandit sharing (see storesync.h) */
    pthread_mutex_t bmu;  /* guards router and handoff; never held across I/O */
    router_t *router;     /* attached, borrowed */
    double *handoff;      /* deltas taken from routers, for the next round */
    double *carry;        /* the thread's: deltas not yet in the store */
    size_t n_sums;        /* length of handoff and carry */
    bool handoff_any;     /* handoff holds a delta */
    bool carry_any;       /* carry holds a delta */
    uint64_t bandit_req;  /* rounds asked for (under mu) */
    uint64_t bandit_done; /* rounds run (under mu) */
};

/* Adds the private sessions updated since since_ms to the table (those it already
 * knows as private are left alone: recording counts a turn). */
static void sync_sessions(storesync_t *s, int64_t since_ms)
{
    store_session_t *rows = NULL;
    size_t n = 0;
    int rc = store_sessions_private_since(s->st, since_ms, &rows, &n);
    if (rc) {
        log_warn("session sync: %s (%s)", sy_strerror(rc), store_errmsg(s->st));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        session_info_t si;
        if (session_get(s->sessions, rows[i].id, &si) && si.private_) continue;
        session_record(s->sessions, rows[i].id, true, -1, rows[i].updated_ms);
    }
    free(rows);
}

/* ------------------------------------------------------------ bandit ---- */

void storesync_bandit_key(const router_t *r, char *out, size_t cap)
{
    snprintf(out, cap, "sums/d%d/n%zu", ROUTE_BANDIT_DIM, router_bandit_sums_len(r));
}

/* Under bmu: takes r's delta into handoff (sized for r on first use). */
static void bandit_take(storesync_t *s, router_t *r)
{
    size_t n = router_bandit_sums_len(r);
    if (!s->handoff) {
        s->n_sums = n;
        s->handoff = mem_calloc(n, sizeof(double));
        s->carry = mem_calloc(n, sizeof(double));
    }
    if (n != s->n_sums) return; /* every router of one process has the same shape */
    if (router_bandit_take(r, s->handoff)) s->handoff_any = true;
}

/* One round on the thread: take the attached router's delta, add what is owed to
 * the store's totals (or just read them when nothing is), and set the router to
 * the totals plus what it gathered meanwhile. */
static void bandit_round(storesync_t *s)
{
    char key[64];
    pthread_mutex_lock(&s->bmu);
    if (s->router) {
        bandit_take(s, s->router);
        storesync_bandit_key(s->router, key, sizeof key);
    }
    bool attached = s->router != NULL;
    if (s->handoff_any) {
        for (size_t i = 0; i < s->n_sums; i++)
            s->carry[i] += s->handoff[i];
        memset(s->handoff, 0, s->n_sums * sizeof(double));
        s->handoff_any = false;
        s->carry_any = true;
    }
    pthread_mutex_unlock(&s->bmu);
    if (!s->carry) return; /* no router ever attached */
    if (!attached) snprintf(key, sizeof key, "sums/d%d/n%zu", ROUTE_BANDIT_DIM, s->n_sums);
    double *total = NULL;
    size_t n = 0;
    int rc;
    if (s->carry_any) {
        rc = store_kv_add_f64(s->st, STORESYNC_BANDIT_NS, key, s->carry, s->n_sums, &total, &n);
        if (!rc) {
            memset(s->carry, 0, s->n_sums * sizeof(double));
            s->carry_any = false;
        }
    } else {
        void *blob = NULL;
        size_t len = 0;
        rc = store_kv_get(s->st, STORESYNC_BANDIT_NS, key, &blob, &len);
        if (!rc) rc = store_f64_add(blob, len, NULL, 0, &total, &n);
        free(blob);
        if (rc == SY_ENOTFOUND) return; /* nothing shared yet */
    }
    if (rc) {
        log_warn("bandit sync: %s (%s); the delta is kept for the next round", sy_strerror(rc),
                 store_errmsg(s->st));
        return;
    }
    pthread_mutex_lock(&s->bmu);
    if (s->router && n == s->n_sums && router_bandit_set_total(s->router, total, n))
        log_warn("bandit sync: the shared totals were refused (a count is not whole)");
    pthread_mutex_unlock(&s->bmu);
    free(total);
}

void storesync_bandit_attach(storesync_t *s, router_t *r)
{
    pthread_mutex_lock(&s->bmu);
    if (s->router && s->router != r) bandit_take(s, s->router);
    s->router = r;
    pthread_mutex_unlock(&s->bmu);
}

void storesync_bandit_detach(storesync_t *s, router_t *r)
{
    if (!s || !r) return;
    pthread_mutex_lock(&s->bmu);
    bandit_take(s, r);
    if (s->router == r) s->router = NULL;
    pthread_mutex_unlock(&s->bmu);
}

void storesync_bandit_sync(storesync_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t want = ++s->bandit_req;
    pthread_cond_signal(&s->wake);
    while (s->bandit_done < want && !s->stop)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------- writes ---- */

static int run_job(storesync_t *s, job_t *j)
{
    switch (j->kind) {
    case JOB_PRIVATE: {
        store_session_t ss;
        return store_session_turn(s->st, j->id, "", true, j->ts_ms, &ss);
    }
    case JOB_FEEDBACK:
        return store_feedback_put(s->st, j->id, j->reward, j->ts_ms);
    case JOB_KV:
        return store_kv_put(s->st, j->ns, j->key, j->blob, j->len);
    }
    return SY_EINVAL;
}

/* The thread: runs queued writes in order, and syncs the session view and the
 * bandit's statistics every sync_ms, writes or not. Exits once stopped with the
 * queue empty. */
static void *sync_main(void *arg)
{
    storesync_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->count == 0 && s->bandit_req == s->bandit_done) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += s->sync_ms / 1000;
            dl.tv_nsec += (long)(s->sync_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
            if (pthread_cond_timedwait(&s->wake, &s->mu, &dl) == ETIMEDOUT) break;
        }
        if (s->count) {
            job_t j = s->ring[s->head];
            pthread_mutex_unlock(&s->mu);
            int rc = run_job(s, &j);
            if (rc)
                log_warn("store write (%s) failed: %s (%s)",
                         j.kind == JOB_PRIVATE    ? "private session"
                         : j.kind == JOB_FEEDBACK ? "feedback"
                                                  : "kv",
                         sy_strerror(rc), store_errmsg(s->st));
            free(j.blob);
            pthread_mutex_lock(&s->mu);
            s->head = (s->head + 1) % SYNC_QUEUE;
            s->count--;
            s->settled++;
            if (rc) s->dropped++;
            pthread_cond_broadcast(&s->done);
            /* Under a steady stream of writes the periodic sync still runs. */
            if (clock_wall_ms() - s->synced_ms < (int64_t)s->sync_ms || s->stop) continue;
        }
        if (s->stop && s->count == 0) break;
        if (s->bandit_req != s->bandit_done) {
            uint64_t req = s->bandit_req;
            pthread_mutex_unlock(&s->mu);
            bandit_round(s);
            pthread_mutex_lock(&s->mu);
            s->bandit_done = req;
            pthread_cond_broadcast(&s->done);
            continue;
        }
        int64_t now = clock_wall_ms();
        if (now - s->synced_ms >= (int64_t)s->sync_ms) {
            int64_t since = s->synced_ms - SYNC_OVERLAP_MS;
            s->synced_ms = now;
            pthread_mutex_unlock(&s->mu);
            sync_sessions(s, since);
            bandit_round(s);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    bandit_round(s); /* what the routers detached at shutdown still owe */
    log_thread_cleanup();
    return NULL;
}

storesync_t *storesync_new(const char *url, session_table_t *sessions, uint32_t sync_ms, char *err,
                           size_t errlen)
{
    store_t *st = store_open(url, err, errlen);
    if (!st) return NULL;
    storesync_t *s = mem_calloc(1, sizeof *s);
    s->st = st;
    s->sessions = sessions;
    s->sync_ms = sync_ms ? sync_ms : 1000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->bmu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    s->synced_ms = clock_wall_ms();
    sync_sessions(s, s->synced_ms - SYNC_START_MS); /* before the first request */
    int rc = pthread_create(&s->thr, NULL, sync_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the store thread: %s", strerror(rc));
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->done);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->bmu);
        store_close(st);
        mem_free(s);
        return NULL;
    }
    return s;
}

void storesync_free(storesync_t *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thr, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->bmu);
    mem_free(s->handoff);
    mem_free(s->carry);
    store_close(s->st);
    mem_free(s);
}

/* Copies j into the ring and wakes the thread. 0 or SY_EFULL. */
static int enqueue(storesync_t *s, const job_t *j)
{
    static _Atomic int64_t last_log_ms;
    pthread_mutex_lock(&s->mu);
    if (s->count == SYNC_QUEUE || s->stop) {
        s->dropped++;
        pthread_mutex_unlock(&s->mu);
        int64_t now = clock_wall_ms(), prev = last_log_ms;
        if (now - prev >= 1000) {
            last_log_ms = now;
            log_warn("store writes are not keeping up: a write was refused (%d queued)",
                     SYNC_QUEUE);
        }
        return SY_EFULL;
    }
    s->ring[(s->head + s->count) % SYNC_QUEUE] = *j;
    s->count++;
    s->queued++;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int storesync_session_private(storesync_t *s, const char *session_id, int64_t now_ms)
{
    job_t j = {.kind = JOB_PRIVATE, .ts_ms = now_ms};
    snprintf(j.id, sizeof j.id, "%s", session_id);
    return enqueue(s, &j);
}

int storesync_feedback(storesync_t *s, const char *request_id, double reward, int64_t ts_ms)
{
    job_t j = {.kind = JOB_FEEDBACK, .reward = reward, .ts_ms = ts_ms};
    snprintf(j.id, sizeof j.id, "%s", request_id);
    return enqueue(s, &j);
}

int storesync_kv_put(storesync_t *s, const char *ns, const char *key, const void *blob, size_t len)
{
    job_t j = {.kind = JOB_KV, .len = len};
    snprintf(j.ns, sizeof j.ns, "%s", ns);
    snprintf(j.key, sizeof j.key, "%s", key);
    j.blob = len ? mem_dup(blob, len) : mem_alloc(1);
    int rc = enqueue(s, &j);
    if (rc) mem_free(j.blob);
    return rc;
}

void storesync_flush(storesync_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t target = s->queued;
    while (s->settled < target)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

uint64_t storesync_dropped(storesync_t *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->dropped;
    pthread_mutex_unlock(&s->mu);
    return n;
}
