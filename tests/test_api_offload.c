/* test_api_offload.c — the offload thread: work runs off the loop thread, done runs
 * on the loop that submitted the job, jobs keep their order, a full queue says so, and
 * queued jobs still run when the offload is freed, and a job whose loop stopped
 * before answering is dropped; release jobs pass the bound; a nice offload's thread
 * runs at the lower priority. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/offload.h"
#include "base/err.h"
#include "net/loop.h"

#define N_JOBS 8

typedef struct job {
    int idx;
    pthread_t loop_thread;
    pthread_t work_thread, done_thread;
    atomic_int started; /* set by work, read by the test thread */
    int *done_order, *n_done;
    atomic_int *gate; /* work waits until it is set */
    loop_t *loop;
} job_t;

static void work(void *arg)
{
    job_t *j = arg;
    j->work_thread = pthread_self();
    atomic_store(&j->started, 1);
    while (j->gate && !atomic_load(j->gate))
        usleep(1000);
}

static void done(void *arg)
{
    job_t *j = arg;
    j->done_thread = pthread_self();
    j->done_order[(*j->n_done)++] = j->idx;
    if (*j->n_done == N_JOBS) loop_stop(j->loop);
}

static void test_work_off_loop_done_on_loop(void **state)
{
    (void)state;
    loop_t *loop = loop_new();
    assert_non_null(loop);
    offload_t *o = offload_new(N_JOBS);
    assert_non_null(o);
    job_t jobs[N_JOBS];
    int order[N_JOBS], n_done = 0;
    for (int i = 0; i < N_JOBS; i++) {
        jobs[i] = (job_t){.idx = i,
                          .loop_thread = pthread_self(),
                          .done_order = order,
                          .n_done = &n_done,
                          .loop = loop};
        assert_int_equal(offload_submit(o, loop, work, done, NULL, &jobs[i]), 0);
    }
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(n_done, N_JOBS);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(order[i], i);
        assert_false(pthread_equal(jobs[i].work_thread, pthread_self()));
        assert_true(pthread_equal(jobs[i].done_thread, pthread_self()));
    }
    offload_free(o);
    loop_free(loop);
}

static void noop_done(void *arg)
{
    (void)arg;
}

/* One job holds the thread; max_pending more wait; the next is refused with SY_EFULL.
 * Freeing the offload runs what is queued (done is posted to the loop, run below). */
static void test_full_queue(void **state)
{
    (void)state;
    loop_t *loop = loop_new();
    offload_t *o = offload_new(2);
    atomic_int gate = 0;
    job_t jobs[5];
    int order[N_JOBS], n_done = 0;
    for (int i = 0; i < 5; i++)
        jobs[i] =
            (job_t){.idx = i, .done_order = order, .n_done = &n_done, .gate = &gate, .loop = loop};
    assert_int_equal(offload_submit(o, loop, work, noop_done, NULL, &jobs[0]), 0);
    /* wait until the thread has taken job 0, so exactly two can wait behind it */
    for (int k = 0; k < 5000 && !atomic_load(&jobs[0].started); k++)
        usleep(1000);
    assert_true(atomic_load(&jobs[0].started));
    assert_int_equal(offload_submit(o, loop, work, noop_done, NULL, &jobs[1]), 0);
    assert_int_equal(offload_submit(o, loop, work, noop_done, NULL, &jobs[2]), 0);
    assert_int_equal(offload_submit(o, loop, work, noop_done, NULL, &jobs[3]), SY_EFULL);
    /* A job that only releases what it holds is queued past the bound. */
    assert_int_equal(offload_submit_release(o, loop, work, noop_done, NULL, &jobs[4]), 0);
    atomic_store(&gate, 1);
    offload_free(o);
    assert_true(atomic_load(&jobs[1].started));
    assert_true(atomic_load(&jobs[2].started));
    assert_false(atomic_load(&jobs[3].started));
    assert_true(atomic_load(&jobs[4].started));
    loop_free(loop);
}

typedef struct owned {
    loop_t *loop;
    int *n_done, *n_dropped;
} owned_t;

static void owned_work(void *arg)
{
    (void)arg;
}

static void owned_done(void *arg)
{
    owned_t *a = arg;
    (*a->n_done)++;
    loop_stop(a->loop);
    free(a);
}

static void owned_drop(void *arg)
{
    owned_t *a = arg;
    (*a->n_dropped)++;
    free(a);
}

/* A job answered by its loop is not dropped; one whose loop has stopped for good gets
 * drop() from offload_free(), so what it owns is released (ASan reports it if not). */
static void test_drop_after_loop_stopped(void **state)
{
    (void)state;
    loop_t *loop = loop_new();
    offload_t *o = offload_new(4);
    int n_done = 0, n_dropped = 0;
    owned_t *a = malloc(sizeof *a);
    *a = (owned_t){loop, &n_done, &n_dropped};
    assert_int_equal(offload_submit(o, loop, owned_work, owned_done, owned_drop, a), 0);
    assert_int_equal(loop_run(loop), 0); /* a's done stops the loop */
    assert_int_equal(n_done, 1);
    owned_t *b = malloc(sizeof *b);
    *b = (owned_t){loop, &n_done, &n_dropped};
    assert_int_equal(offload_submit(o, loop, owned_work, owned_done, owned_drop, b), 0);
    offload_free(o); /* b is worked and posted, but the loop never runs again */
    assert_int_equal(n_done, 1);
    assert_int_equal(n_dropped, 1);
    loop_free(loop);
}

/* Background work: the thread runs at the process's nice value plus the one asked
 * for; the caller's own priority is untouched. */
typedef struct prio {
    int nice;   /* seen by work */
    int policy; /* the thread's scheduling policy, seen by work */
    loop_t *loop;
} prio_t;

static void prio_work(void *arg)
{
    prio_t *p = arg;
    errno = 0;
    p->nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno) p->nice = -100;
    p->policy = sched_getscheduler(0);
}

static void prio_done(void *arg)
{
    loop_stop(((prio_t *)arg)->loop);
}

static void test_nice_thread(void **state)
{
    (void)state;
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    assert_int_equal(errno, 0);
    if (base > 9) skip(); /* already near the floor: nothing to tell apart */
    loop_t *loop = loop_new();
    for (int k = 0; k < 2; k++) {
        offload_t *o = k ? offload_new_nice(2, 10) : offload_new(2);
        prio_t p = {.nice = -100, .loop = loop};
        assert_int_equal(offload_submit(o, loop, prio_work, prio_done, NULL, &p), 0);
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(p.nice, base + (k ? 10 : 0));
        assert_int_equal(p.policy, SCHED_OTHER);
        offload_free(o);
    }
    /* nice 19: the lowest there is, SCHED_IDLE */
    offload_t *o = offload_new_nice(2, 19);
    prio_t p = {.nice = -100, .policy = -1, .loop = loop};
    assert_int_equal(offload_submit(o, loop, prio_work, prio_done, NULL, &p), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(p.policy, SCHED_IDLE);
    offload_free(o);
    assert_int_equal(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), base);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_off_loop_done_on_loop),
        cmocka_unit_test(test_full_queue),
        cmocka_unit_test(test_drop_after_loop_stopped),
        cmocka_unit_test(test_nice_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
