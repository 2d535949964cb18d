/* test_net_loop.c — event loop: timers (order, cancel, re-arm), cross-thread posts,
 * thread-safe stop, fd watches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/loop.h"

typedef struct {
    int order[16];
    int n;
    loop_t *loop;
    uint64_t cancel_id;
} tstate_t;

static void t_record(loop_t *l, void *arg);
static tstate_t *g_ts;

static void t_record(loop_t *l, void *arg)
{
    int v = (int)(intptr_t)arg;
    g_ts->order[g_ts->n++] = v;
    if (v == 1) loop_timer_del(l, g_ts->cancel_id); /* cancel a later one from a callback */
    if (v == 30) loop_stop(l);
}

static void test_timers_order_and_cancel(void **state)
{
    (void)state;
    tstate_t ts = {0};
    g_ts = &ts;
    loop_t *l = loop_new();
    assert_non_null(l);
    uint64_t t0 = clock_mono_ms();
    loop_timer_add(l, 30, t_record, (void *)(intptr_t)30);
    loop_timer_add(l, 10, t_record, (void *)(intptr_t)10);
    loop_timer_add(l, 1, t_record, (void *)(intptr_t)1);
    ts.cancel_id = loop_timer_add(l, 20, t_record, (void *)(intptr_t)20);
    uint64_t gone = loop_timer_add(l, 5, t_record, (void *)(intptr_t)5);
    loop_timer_del(l, gone);
    loop_timer_del(l, gone); /* twice: ignored */
    loop_timer_del(l, 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(ts.n, 3);
    assert_int_equal(ts.order[0], 1);
    assert_int_equal(ts.order[1], 10);
    assert_int_equal(ts.order[2], 30);
    assert_true(clock_mono_ms() - t0 >= 30);
    loop_free(l);
}

/* Many timers with random deadlines fire in deadline order (heap correctness). */
static uint64_t g_last;
static int g_fired, g_bad;
static void t_check(loop_t *l, void *arg)
{
    uint64_t when = (uint64_t)(uintptr_t)arg;
    if (when < g_last) g_bad++;
    g_last = when;
    if (++g_fired == 500) loop_stop(l);
}

static void test_timer_heap_many(void **state)
{
    (void)state;
    loop_t *l = loop_new();
    uint32_t x = 12345;
    uint64_t ids[1000];
    for (int i = 0; i < 1000; i++) {
        x = x * 1103515245u + 12345u;
        uint64_t d = (x >> 16) % 40;
        ids[i] = loop_timer_add(l, d, t_check, (void *)(uintptr_t)(loop_now_ms(l) + d));
    }
    for (int i = 0; i < 1000; i += 2)
        loop_timer_del(l, ids[i]); /* half canceled */
    g_last = 0, g_fired = 0, g_bad = 0;
    loop_run(l);
    assert_int_equal(g_fired, 500);
    assert_int_equal(g_bad, 0);
    loop_free(l);
}

static atomic_int g_posted;
static void p_inc(void *arg)
{
    atomic_fetch_add(&g_posted, 1);
    if (atomic_load(&g_posted) == 4000) loop_stop(arg);
}

static void *poster(void *arg)
{
    for (int i = 0; i < 1000; i++)
        loop_post(arg, p_inc, arg);
    return NULL;
}

static void test_posts_from_threads(void **state)
{
    (void)state;
    loop_t *l = loop_new();
    atomic_store(&g_posted, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, poster, l);
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&g_posted), 4000);
    loop_free(l);
}

static void *stopper(void *arg)
{
    usleep(20000);
    loop_stop(arg);
    return NULL;
}

static void test_stop_from_thread(void **state)
{
    (void)state;
    loop_t *l = loop_new();
    pthread_t th;
    pthread_create(&th, NULL, stopper, l);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(loop_run(l), 0); /* nothing watched: only the stop wakes it */
    pthread_join(th, NULL);
    assert_true(clock_mono_ms() - t0 < 2000);
    loop_free(l);
}

static void t_late(loop_t *l, void *arg)
{
    *(int *)arg = 1;
    loop_stop(l);
}

/* A stop requested before run is not lost, and the loop runs again afterwards. */
static void test_stop_before_run(void **state)
{
    (void)state;
    loop_t *l = loop_new();
    int late = 0;
    loop_timer_add(l, 1000, t_late, &late);
    loop_stop(l);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(late, 0); /* returned at once, not via the timer */
    loop_t *l2 = l;
    loop_timer_add(l2, 1, t_late, &late);
    assert_int_equal(loop_run(l2), 0); /* runs again until the new stop */
    assert_int_equal(late, 1);
    loop_free(l);
}

static int g_reads;
static void on_readable(loop_t *l, int fd, unsigned ev, void *arg)
{
    char b[16];
    ssize_t r = read(fd, b, sizeof b);
    if (r > 0) g_reads++;
    /* Deleting itself from its own callback is allowed. */
    loop_io_del(l, fd);
    loop_stop(l);
}

static void test_io_watch(void **state)
{
    (void)state;
    loop_t *l = loop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(loop_io_add(l, sv[0], LOOP_READ, on_readable, NULL), 0);
    assert_true(loop_io_add(l, sv[0], LOOP_READ, on_readable, NULL) < 0); /* twice */
    assert_int_equal(write(sv[1], "x", 1), 1);
    g_reads = 0;
    loop_run(l);
    assert_int_equal(g_reads, 1);
    assert_true(loop_io_del(l, sv[0]) < 0); /* already gone */
    assert_true(loop_io_mod(l, sv[0], LOOP_READ) < 0);
    close(sv[0]);
    close(sv[1]);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_order_and_cancel),
        cmocka_unit_test(test_timer_heap_many),
        cmocka_unit_test(test_posts_from_threads),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_io_watch),
        cmocka_unit_test(test_stop_before_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
