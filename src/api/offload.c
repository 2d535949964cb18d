/* offload.c — the background thread for blocking work (see offload.h). */
#include "api/offload.h"

#include <pthread.h>
#include <stdbool.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

typedef struct job {
    struct job *next;
    loop_t *loop;
    offload_fn work, done;
    void *arg;
} job_t;

struct offload {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    size_t n_pending, max_pending;
    bool stopping;
};

/* The thread: takes jobs in order until stopped and the queue is empty; each job's
 * done() is posted to its loop (run in place if the post fails, which only happens
 * when the loop's wake-up fd is broken). */
static void *offload_main(void *arg)
{
    offload_t *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        while (!o->head && !o->stopping)
            pthread_cond_wait(&o->cv, &o->mu);
        job_t *j = o->head;
        if (j) {
            o->head = j->next;
            if (!o->head) o->tail = NULL;
            o->n_pending--;
        }
        pthread_mutex_unlock(&o->mu);
        if (!j) break;
        j->work(j->arg);
        if (loop_post(j->loop, j->done, j->arg)) {
            log_error("offload: cannot wake the worker loop");
            j->done(j->arg);
        }
        mem_free(j);
    }
    log_thread_cleanup();
    return NULL;
}

offload_t *offload_new(size_t max_pending)
{
    offload_t *o = mem_calloc(1, sizeof *o);
    o->max_pending = max_pending ? max_pending : 1;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->thread, NULL, offload_main, o)) {
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
        mem_free(o);
        return NULL;
    }
    return o;
}

void offload_free(offload_t *o)
{
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    mem_free(o);
}

int offload_submit(offload_t *o, loop_t *loop, offload_fn work, offload_fn done, void *arg)
{
    pthread_mutex_lock(&o->mu);
    if (o->n_pending >= o->max_pending || o->stopping) {
        pthread_mutex_unlock(&o->mu);
        return SY_EFULL;
    }
    job_t *j = mem_alloc(sizeof *j);
    *j = (job_t){NULL, loop, work, done, arg};
    if (o->tail)
        o->tail->next = j;
    else
        o->head = j;
    o->tail = j;
    o->n_pending++;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return 0;
}
