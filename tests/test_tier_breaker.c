/* test_tier_breaker.c — circuit breaker, concurrency limit and its two-class queue,
 * the TTFT prediction spillover uses, cost model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "net/loop.h"
#include "tier/tier.h"

static tier_settings_t settings(void)
{
    tier_settings_t s;
    memset(&s, 0, sizeof s);
    s.name = "t";
    s.model = "m";
    s.version = "";
    s.base_url = "http://127.0.0.1:1/v1";
    s.max_concurrency = 2;
    s.max_queue = 2;
    s.brk_failures = 3;
    s.brk_error_rate = 0.5;
    s.brk_window = 10;
    s.brk_open_ms = 1000;
    return s;
}

static void test_consecutive_failures_open(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    tier_t t;
    tier_init(&t, 0, &s);
    uint64_t now = 1000;
    assert_true(tier_breaker_allow(&t, now));
    tier_breaker_record(&t, false, now);
    tier_breaker_record(&t, false, now);
    assert_int_equal(tier_circuit(&t, now), TIER_CLOSED);
    tier_breaker_record(&t, false, now);
    assert_int_equal(tier_circuit(&t, now), TIER_OPEN);
    assert_false(tier_breaker_allow(&t, now + 999));
    route_tier_t v;
    tier_route_view(&t, now + 10, &v);
    assert_false(v.healthy);
    /* After open_ms: exactly one probe. */
    assert_true(tier_breaker_allow(&t, now + 1000));
    assert_int_equal(tier_circuit(&t, now + 1000), TIER_HALF_OPEN);
    assert_false(tier_breaker_allow(&t, now + 1001));
    /* The probe fails: open again for another open_ms. */
    tier_breaker_record(&t, false, now + 1100);
    assert_int_equal(tier_circuit(&t, now + 1100), TIER_OPEN);
    assert_false(tier_breaker_allow(&t, now + 2000));
    assert_true(tier_breaker_allow(&t, now + 2100));
    tier_breaker_record(&t, true, now + 2150);
    assert_int_equal(tier_circuit(&t, now + 2150), TIER_CLOSED);
    /* Closed again: a single failure does not re-open it. */
    tier_breaker_record(&t, false, now + 2200);
    assert_int_equal(tier_circuit(&t, now + 2200), TIER_CLOSED);
    tier_deinit(&t);
}

static void test_error_rate_opens(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    s.brk_failures = 100; /* only the rate can open it */
    tier_t t;
    tier_init(&t, 0, &s);
    /* Alternate: never 2 failures in a row, but 50% over the window of 10. */
    for (int i = 0; i < 9; i++)
        tier_breaker_record(&t, i % 2 == 1, 0);
    assert_int_equal(tier_circuit(&t, 0), TIER_CLOSED); /* window not full yet */
    tier_breaker_record(&t, false, 0);                  /* 10th: 5 failures of 10 */
    assert_int_equal(tier_circuit(&t, 0), TIER_OPEN);
    tier_deinit(&t);
}

static int woken[8];
static void wake(void *arg)
{
    woken[(intptr_t)arg]++;
}

static void stop_loop(void *arg)
{
    loop_stop(arg);
}

static void test_queue_fifo_and_full(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    tier_t t;
    tier_init(&t, 0, &s);
    loop_t *loop = loop_new();
    tier_waiter_t w[5];
    memset(w, 0, sizeof w);
    memset(woken, 0, sizeof woken);
    for (int i = 0; i < 5; i++)
        w[i] = (tier_waiter_t){.loop = loop, .ready = wake, .arg = (void *)(intptr_t)i};
    assert_int_equal(tier_acquire(&t, &w[0]), 0);
    assert_int_equal(tier_acquire(&t, &w[1]), 0);
    assert_int_equal(tier_acquire(&t, &w[2]), 1); /* queued */
    assert_int_equal(tier_acquire(&t, &w[3]), 1);
    assert_int_equal(tier_acquire(&t, &w[4]), SY_EFULL);
    route_tier_t v;
    tier_route_view(&t, 0, &v);
    assert_true(v.saturated);
    assert_int_equal(tier_queued(&t), 2);
    /* Cancel the first waiter: the slot goes to the next in line. */
    assert_true(tier_wait_cancel(&t, &w[2]));
    tier_release(&t); /* hands the slot to w[3] via its loop */
    assert_int_equal(tier_inflight(&t), 2);
    assert_int_equal(tier_queued(&t), 0);
    assert_false(tier_wait_cancel(&t, &w[3])); /* already woken */
    /* Run the loop until a later post stops it: the wake-up is delivered first. */
    loop_post(loop, stop_loop, loop);
    loop_run(loop);
    assert_int_equal(woken[3], 1);
    assert_int_equal(woken[2], 0);
    tier_release(&t);
    tier_release(&t);
    assert_int_equal(tier_inflight(&t), 0);
    loop_free(loop);
    tier_deinit(&t);
}

static int spilled[8];
static void on_spill(void *arg)
{
    spilled[(intptr_t)arg]++;
}

/* Runs w's loop until everything posted before now has run. */
static void drain(loop_t *loop)
{
    loop_post(loop, stop_loop, loop);
    loop_run(loop);
}

/* Requests that may only run here go first; one finding the queue full takes the
 * place of the newest spillable waiter, which is told to move on. */
static void test_queue_pinned_first(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    s.max_concurrency = 1;
    tier_t t;
    tier_init(&t, 0, &s);
    loop_t *loop = loop_new();
    tier_waiter_t w[8];
    memset(w, 0, sizeof w);
    memset(woken, 0, sizeof woken);
    memset(spilled, 0, sizeof spilled);
    for (int i = 0; i < 8; i++)
        w[i] = (tier_waiter_t){.loop = loop,
                               .ready = wake,
                               .spilled = on_spill,
                               .arg = (void *)(intptr_t)i,
                               .spillable = i == 1 || i == 2};
    assert_int_equal(tier_acquire(&t, &w[0]), 0);           /* the one slot */
    assert_int_equal(tier_acquire(&t, &w[1]), TIER_QUEUED); /* spillable */
    assert_int_equal(tier_acquire(&t, &w[2]), TIER_QUEUED); /* spillable, queue now full */
    route_tier_t v;
    tier_route_view(&t, 0, &v);
    assert_false(v.saturated); /* full of spillable waiters: room for a pinned one */
    assert_int_equal(tier_acquire(&t, &w[3]), TIER_QUEUED); /* pinned: w[2] gives way */
    assert_int_equal(w[2].state, 3);
    assert_int_equal(tier_acquire(&t, &w[4]), TIER_QUEUED); /* pinned: w[1] gives way */
    assert_int_equal(tier_acquire(&t, &w[5]), SY_EFULL);    /* full of pinned waiters */
    tier_route_view(&t, 0, &v);
    assert_true(v.saturated);
    assert_int_equal(t.n_spilled_priority, 2);
    assert_false(tier_wait_cancel(&t, &w[1])); /* spilled: its callback owns it now */
    drain(loop);
    assert_int_equal(spilled[1], 1);
    assert_int_equal(spilled[2], 1);
    assert_int_equal(woken[1] + woken[2], 0);
    /* A spillable request queued behind a pinned one: the pinned one is served
     * first although it came later. */
    tier_release(&t); /* -> w[3] */
    w[6].spillable = true;
    assert_int_equal(tier_acquire(&t, &w[6]), TIER_QUEUED); /* w[4], w[6] */
    tier_release(&t);                                       /* -> w[4] */
    w[7].spillable = false;
    assert_int_equal(tier_acquire(&t, &w[7]), TIER_QUEUED); /* w[7] (pinned), w[6] */
    tier_release(&t);                                       /* -> w[7], not w[6] */
    drain(loop);
    assert_int_equal(woken[3], 1);
    assert_int_equal(woken[4], 1);
    assert_int_equal(woken[7], 1);
    assert_int_equal(woken[6], 0);
    tier_release(&t); /* -> w[6] */
    drain(loop);
    assert_int_equal(woken[6], 1);
    tier_release(&t);
    assert_int_equal(tier_inflight(&t), 0);
    assert_int_equal(tier_queued(&t), 0);
    loop_free(loop);
    tier_deinit(&t);
}

/* The predicted time to first token against the alternative's measured one. */
static void test_queue_eta_spill(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    s.max_concurrency = 2;
    s.max_queue = 8;
    tier_t t;
    tier_init(&t, 0, &s);
    loop_t *loop = loop_new();
    tier_waiter_t w[6];
    memset(w, 0, sizeof w);
    memset(woken, 0, sizeof woken);
    memset(spilled, 0, sizeof spilled);
    for (int i = 0; i < 6; i++)
        w[i] = (tier_waiter_t){.loop = loop,
                               .ready = wake,
                               .spilled = on_spill,
                               .arg = (void *)(intptr_t)i,
                               .spillable = true};
    assert_true(tier_eta_ms(&t, 3) == 0); /* nothing measured: no prediction */
    tier_service_observe(&t, 400000);     /* 400 ms a call */
    tier_ttft_observe(&t, 100000);        /* 100 ms to the first byte */
    /* (ahead + 1) x 400 / 2 + 100 */
    assert_true(fabs(tier_eta_ms(&t, 0) - 300) < 1e-9);
    assert_true(fabs(tier_eta_ms(&t, 3) - 900) < 1e-9);
    tier_service_observe(&t, 1200000); /* the mean moves by 1/8 of the gap */
    assert_true(fabs(tier_eta_ms(&t, 0) - 350) < 1e-9);
    tier_service_observe(&t, 400000);
    tier_service_observe(&t, 400000);
    double eta0 = tier_eta_ms(&t, 0);
    w[0].alt_ttft_ms = w[1].alt_ttft_ms = 1;
    assert_int_equal(tier_acquire(&t, &w[0]), 0); /* free slots: no prediction */
    assert_int_equal(tier_acquire(&t, &w[1]), 0);
    /* Slots busy: the alternative answers in 1 ms, far sooner. */
    w[2].alt_ttft_ms = 1;
    assert_int_equal(tier_acquire(&t, &w[2]), TIER_SPILL_ETA);
    assert_int_equal(w[2].eta_ms, (uint32_t)eta0);
    assert_int_equal(t.n_spilled_eta, 1);
    /* Unknown alternative (0): queued; an alternative slower than the wait: queued. */
    w[3].alt_ttft_ms = 0;
    assert_int_equal(tier_acquire(&t, &w[3]), TIER_QUEUED);
    w[4].alt_ttft_ms = (uint32_t)tier_eta_ms(&t, 1) + 1;
    assert_int_equal(tier_acquire(&t, &w[4]), TIER_QUEUED);
    /* A pinned request queued ahead of them: w[4]'s wait now exceeds its
     * alternative, so it moves on; w[3] (alternative unknown) stays. */
    w[5].spillable = false;
    assert_int_equal(tier_acquire(&t, &w[5]), TIER_QUEUED);
    assert_int_equal(tier_queued(&t), 2);
    drain(loop);
    assert_int_equal(spilled[4], 1);
    assert_int_equal(spilled[3], 0);
    assert_true(w[4].eta_ms > w[4].alt_ttft_ms);
    tier_release(&t); /* -> w[5] */
    tier_release(&t); /* -> w[3] */
    drain(loop);
    assert_int_equal(woken[5], 1);
    assert_int_equal(woken[3], 1);
    tier_release(&t);
    tier_release(&t);
    assert_int_equal(tier_inflight(&t), 0);
    loop_free(loop);
    tier_deinit(&t);
}

/* Which waiters may spill: a later tier in the order whose circuit is not open;
 * its measured TTFT is the bar. */
static void test_waiter_prepare(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    tier_t t[3];
    for (int i = 0; i < 3; i++)
        tier_init(&t[i], i, &s);
    tier_waiter_t w;
    memset(&w, 0, sizeof w);
    tier_waiter_prepare(&w, t, NULL, 0, 0);
    assert_false(w.spillable);
    int rest[2] = {1, 2};
    tier_waiter_prepare(&w, t, rest, 2, 0);
    assert_true(w.spillable);
    assert_int_equal(w.alt_ttft_ms, 0); /* not measured yet */
    tier_ttft_observe(&t[1], 250400);
    tier_waiter_prepare(&w, t, rest, 2, 0);
    assert_int_equal(w.alt_ttft_ms, 251);
    for (int i = 0; i < 3; i++) /* tier 1's circuit opens: tier 2 is the alternative */
        tier_breaker_record(&t[1], false, 0);
    tier_waiter_prepare(&w, t, rest, 2, 10);
    assert_true(w.spillable);
    assert_int_equal(w.alt_ttft_ms, 0);
    tier_waiter_prepare(&w, t, rest, 1, 10); /* only tier 1, open */
    assert_false(w.spillable);
    for (int i = 0; i < 3; i++)
        tier_deinit(&t[i]);
}

static void test_costs(void **state)
{
    (void)state;
    tier_settings_t s = settings();
    s.usd_per_mtok_in = 2.5;
    s.usd_per_mtok_out = 10;
    tier_t t;
    tier_init(&t, 0, &s);
    assert_true(tier_cost_usd(&t, 1000000, 0) == 2.5);
    assert_true(tier_cost_usd(&t, 1000, 500) == 0.0025 + 0.005);
    tier_deinit(&t);
    /* Edge: $3.60/h at 100 tok/s = $0.00001 per token. */
    s = settings();
    s.usd_per_hour = 3.6;
    s.tokens_per_second = 100;
    tier_init(&t, 0, &s);
    double c = tier_cost_usd(&t, 60, 40);
    assert_true(c > 0.000999 && c < 0.001001);
    route_tier_t v;
    tier_route_view(&t, 0, &v);
    assert_true(v.usd_per_mtok_out > 9.99 && v.usd_per_mtok_out < 10.01);
    tier_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consecutive_failures_open),
        cmocka_unit_test(test_error_rate_opens),
        cmocka_unit_test(test_queue_fifo_and_full),
        cmocka_unit_test(test_queue_pinned_first),
        cmocka_unit_test(test_queue_eta_spill),
        cmocka_unit_test(test_waiter_prepare),
        cmocka_unit_test(test_costs),
    };
    return cmocka_run_group_tests_name("tier", tests, NULL, NULL);
}
