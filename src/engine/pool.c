/* pool.c — the engine's fixed thread pool.
 *
 * n_threads - 1 workers are started once; the thread calling kern_pool_run is the
 * n-th. A run publishes (fn, arg, n) under a new generation number; every thread,
 * caller included, takes task indices from one atomic counter until they run out,
 * then the caller waits until every worker has checked out of the generation.
 *
 * Decode calls the pool a few hundred times per token, each run lasting tens of
 * microseconds, so sleeping on a condition variable between runs would cost more than
 * the work. Workers therefore spin (with a pause instruction) for a short while after
 * a run before they sleep; a run wakes sleepers with a broadcast only when some are
 * asleep. Runs from different threads on one pool are serialized by a mutex.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/mem.h"
#include "engine/kernels.h"

#define SPIN_ITERS 50000 /* pause loops (about a millisecond) before a worker sleeps */

struct kern_pool {
    int n_threads;            /* workers + the caller */
    pthread_t *threads;       /* (n_threads - 1) */
    pthread_mutex_t run_lock; /* one run at a time */
    pthread_mutex_t lock;     /* guards sleeping and the condition variables */
    pthread_cond_t wake;
    int sleeping; /* workers waiting on wake */
    /* the current run */
    void (*fn)(void *arg, int i, int n);
    void *arg;
    int n;
    atomic_int next;    /* next task index */
    atomic_int pending; /* workers not yet done with this generation */
    atomic_uint gen;    /* bumped per run */
    atomic_bool stop;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Takes and runs task indices until none are left. */
static void run_tasks(kern_pool_t *p)
{
    for (;;) {
        int i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n) break;
        p->fn(p->arg, i, p->n);
    }
}

/* Worker loop: wait for a new generation (spin, then sleep), run, check out. */
static void *worker_main(void *arg)
{
    kern_pool_t *p = arg;
    unsigned seen = 0; /* the generation at creation: a run may start before this thread does */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->lock);
            p->sleeping++;
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->lock);
            p->sleeping--;
            pthread_mutex_unlock(&p->lock);
            spins = 0;
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        run_tasks(p);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

/* Starts n_threads - 1 workers (n_threads < 1 counts as 1). Returns an owned pool
 * (kern_pool_free); thread creation failure aborts, like an allocation failure. */
kern_pool_t *kern_pool_new(int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    kern_pool_t *p = mem_calloc(1, sizeof(*p));
    p->n_threads = n_threads;
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    if (n_threads > 1) {
        p->threads = mem_calloc((size_t)n_threads - 1, sizeof(pthread_t));
        for (int i = 0; i < n_threads - 1; i++)
            if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) abort();
    }
    return p;
}

/* Stops and joins the workers. p may be NULL. */
void kern_pool_free(kern_pool_t *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads - 1; i++)
        pthread_join(p->threads[i], NULL);
    mem_free(p->threads);
    pthread_mutex_destroy(&p->run_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    mem_free(p);
}

int kern_pool_size(const kern_pool_t *p)
{
    return p ? p->n_threads : 1;
}

/* Runs fn(arg, i, n) for every i in [0, n) on the pool's threads and the caller's, and
 * returns when all have finished. A NULL pool or a one-thread pool runs inline. */
void kern_pool_run(kern_pool_t *p, void (*fn)(void *arg, int i, int n), void *arg, int n)
{
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        for (int i = 0; i < n; i++)
            fn(arg, i, n);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_mutex_lock(&p->lock);
    if (p->sleeping) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_tasks(p);
    /* spin for the workers; yield the CPU when they are slow (a shared machine) */
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&p->run_lock);
}
