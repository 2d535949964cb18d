/* offload.c — the background thread for blocking work (see offload.h). */
#include "api/offload.h"

#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

typedef struct job {
    struct job *next, *prev; /* the queue (next only), then the posted list */
    offload_t *o;
    loop_t *loop;
    offload_fn work, done, drop;
    void *arg;
} job_t;

struct offload {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    job_t *posted; /* worked, done() posted to its loop, not yet run; under mu */
    size_t n_pending, max_pending;
    int nice; /* added to the process's nice value on the thread, 0..19 */
    bool stopping;
};

static void unlink_posted(offload_t *o, job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        o->posted = j->next;
    if (j->next) j->next->prev = j->prev;
}

/* Runs on the job's loop: done(), then the job is forgotten. */
static void job_done(void *arg)
{
    job_t *j = arg;
    pthread_mutex_lock(&j->o->mu);
    unlink_posted(j->o, j);
    pthread_mutex_unlock(&j->o->mu);
    j->done(j->arg);
    mem_free(j);
}

/* The thread: takes jobs in order until stopped and the queue is empty; each job's
 * done() is posted to its loop (run in place if the post fails, which only happens
 * when the loop's wake-up fd is broken). A posted job stays on the posted list until
 * its loop runs it, so offload_free() can drop the ones a stopped loop never will. */
static void *offload_main(void *arg)
{
    offload_t *o = arg;
    if (o->nice > 0) {
        /* Linux applies a nice value per thread (by tid); raising it needs no
         * privilege. A failure leaves the thread at the process's priority. */
        pid_t tid = (pid_t)syscall(SYS_gettid);
        errno = 0;
        int base = getpriority(PRIO_PROCESS, (id_t)tid);
        if (!errno && setpriority(PRIO_PROCESS, (id_t)tid, base + o->nice))
            log_warn("offload: cannot lower the thread's priority: %s", strerror(errno));
        /* The lowest: SCHED_IDLE runs only when nothing else of the machine wants the
         * CPU (a nice value still gets its share, ~10% at +10, against every loop). */
        struct sched_param sp = {0};
        if (o->nice == 19 && pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp))
            log_warn("offload: cannot make the thread SCHED_IDLE");
    }
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
        pthread_mutex_lock(&o->mu);
        j->prev = NULL;
        j->next = o->posted;
        if (o->posted) o->posted->prev = j;
        o->posted = j;
        pthread_mutex_unlock(&o->mu);
        if (loop_post(j->loop, job_done, j)) {
            log_error("offload: cannot wake the worker loop");
            job_done(j);
        }
    }
    log_thread_cleanup();
    return NULL;
}

offload_t *offload_new(size_t max_pending)
{
    return offload_new_nice(max_pending, 0);
}

offload_t *offload_new_nice(size_t max_pending, int nice)
{
    offload_t *o = mem_calloc(1, sizeof *o);
    o->max_pending = max_pending ? max_pending : 1;
    o->nice = nice < 0 ? 0 : nice > 19 ? 19 : nice;
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
    /* The loops have stopped (see offload.h): what is still posted never runs. */
    for (job_t *j = o->posted, *next; j; j = next) {
        next = j->next;
        if (j->drop) j->drop(j->arg);
        mem_free(j);
    }
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    mem_free(o);
}

/* Queues a job; bounded: whether max_pending applies. */
static int submit(offload_t *o, loop_t *loop, offload_fn work, offload_fn done, offload_fn drop,
                  void *arg, bool bounded)
{
    pthread_mutex_lock(&o->mu);
    if ((bounded && o->n_pending >= o->max_pending) || o->stopping) {
        pthread_mutex_unlock(&o->mu);
        return SY_EFULL;
    }
    job_t *j = mem_alloc(sizeof *j);
    *j = (job_t){.o = o, .loop = loop, .work = work, .done = done, .drop = drop, .arg = arg};
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

int offload_submit(offload_t *o, loop_t *loop, offload_fn work, offload_fn done, offload_fn drop,
                   void *arg)
{
    return submit(o, loop, work, done, drop, arg, true);
}

int offload_submit_release(offload_t *o, loop_t *loop, offload_fn work, offload_fn done,
                           offload_fn drop, void *arg)
{
    return submit(o, loop, work, done, drop, arg, false);
}
