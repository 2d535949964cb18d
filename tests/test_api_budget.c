/* test_api_budget.c — budget leases: two gateways (two budget_t on one SQLite
 * file, each on its own thread and event loop) spend one key's budget with many
 * requests in flight; settled spending never passes the limit, the store's spent
 * total equals the costs settled, and no reservation is left once both stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/budget.h"
#include "api/config.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/loop.h"
#include "store/store.h"

#define IN_FLIGHT 8
#define ATTEMPTS  400
#define LIMIT     1.0

typedef struct gw {
    budget_t *b;
    loop_t *loop;
    unsigned seed;
    int attempts, in_flight, granted, refused, errors;
    double settled; /* sum of real costs */
    double granted_now_max;
} gw_t;

typedef struct req {
    gw_t *g;
    double amount;
    int64_t period;
} req_t;

static void issue(gw_t *g);

static void settle_cb(loop_t *loop, void *arg)
{
    (void)loop;
    req_t *r = arg;
    gw_t *g = r->g;
    double real = r->amount * (double)(rand_r(&g->seed) % 101) / 100.0;
    budget_settle(g->b, g->loop, 0, r->period, r->amount, real);
    g->settled += real;
    free(r);
    g->in_flight--;
    issue(g);
}

static void granted(gw_t *g, req_t *r)
{
    g->granted++;
    loop_timer_add(g->loop, (uint64_t)(rand_r(&g->seed) % 3), settle_cb, r);
}

static void on_done(void *arg, int rc, double spent, double reserved)
{
    (void)spent, (void)reserved;
    req_t *r = arg;
    gw_t *g = r->g;
    if (rc == 0) {
        granted(g, r);
        return;
    }
    if (rc == SY_EFULL)
        g->refused++;
    else
        g->errors++;
    free(r);
    g->in_flight--;
    issue(g);
}

static void issue(gw_t *g)
{
    while (g->in_flight < IN_FLIGHT && g->attempts < ATTEMPTS) {
        g->attempts++;
        g->in_flight++;
        req_t *r = calloc(1, sizeof *r);
        r->g = g;
        r->amount = 0.002 + (double)(rand_r(&g->seed) % 81) / 10000.0; /* 0.002..0.01 */
        int rc =
            budget_reserve(g->b, g->loop, 0, 1796578200000LL, r->amount, &r->period, on_done, r);
        if (rc == 0) {
            granted(g, r);
        } else if (rc < 0) {
            g->errors++;
            free(r);
            g->in_flight--;
        }
    }
    if (g->in_flight == 0 && g->attempts == ATTEMPTS) loop_stop(g->loop);
}

static void *gw_run(void *arg)
{
    gw_t *g = arg;
    issue(g);
    loop_run(g->loop);
    return NULL;
}

static void test_two_gateways_one_budget(void **state)
{
    (void)state;
    char dir[] = "/tmp/sy-budget-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite:%s/b.db", dir);
    config_key_t key = {
        .name = "k", .budget_usd = LIMIT, .budget_set = true, .budget_period = CONFIG_PERIOD_MONTH};
    config_auth_t auth = {.enabled = true, .keys = &key, .n_keys = 1};
    gw_t g[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        g[i] = (gw_t){.seed = 17u + (unsigned)i};
        g[i].b = budget_new(&auth, url, err, sizeof err);
        if (!g[i].b) fail_msg("%s", err);
        g[i].loop = loop_new();
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gw_run, &g[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double settled = 0;
    int granted_n = 0, refused = 0;
    for (int i = 0; i < 2; i++) {
        budget_free(g[i].b); /* gives the leases back */
        loop_free(g[i].loop);
        assert_int_equal(g[i].errors, 0);
        settled += g[i].settled;
        granted_n += g[i].granted;
        refused += g[i].refused;
    }
    printf("# granted %d, refused %d, settled %.6f of %.2f USD\n", granted_n, refused, settled,
           LIMIT);
    /* Demand (~2.4 USD of real cost) is well above the limit: both outcomes occur. */
    assert_true(granted_n > 100);
    assert_true(refused > 0);
    assert_true(settled <= LIMIT + 1e-9);
    store_t *s = store_open(url, err, sizeof err);
    assert_non_null(s);
    store_budget_t t;
    int64_t period = budget_period_start(CONFIG_PERIOD_MONTH, 1796578200000LL);
    assert_int_equal(store_budget_get(s, "k", period, &t), 0);
    if (fabs(t.spent_usd - settled) > 1e-6 || fabs(t.reserved_usd) > 1e-6)
        fail_msg("store spent %.9f reserved %.9f, settled %.9f", t.spent_usd, t.reserved_usd,
                 settled);
    /* Near the limit leases shrink to single requests: the budget is nearly used. */
    assert_true(settled > LIMIT * 0.5);
    store_close(s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* One request at a time on a key far from its limit: the lease is kept while the key
 * is idle (no store call per request), and budget_tick gives it back once the key
 * has been idle for a second, settling what was spent. */
static void tick_done(void *arg, int rc, double spent, double reserved)
{
    (void)spent, (void)reserved;
    *(int *)arg = rc == 0 ? 1 : -1;
}

static void stop_fn(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/* Runs loop until the budget thread's answers are in (they are posted to it). */
static void settle_loop(loop_t *loop)
{
    loop_timer_add(loop, 50, stop_fn, NULL);
    loop_run(loop);
}

static void test_idle_lease_kept_then_given_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/sy-budget-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite:%s/b.db", dir);
    config_key_t key = {
        .name = "k", .budget_usd = 100, .budget_set = true, .budget_period = CONFIG_PERIOD_MONTH};
    config_auth_t auth = {.enabled = true, .keys = &key, .n_keys = 1};
    budget_t *b = budget_new(&auth, url, err, sizeof err);
    if (!b) fail_msg("%s", err);
    loop_t *loop = loop_new();
    store_t *s = store_open(url, err, sizeof err);
    assert_non_null(s);
    const int64_t now = 1796578200000LL;
    int64_t period = 0;
    int got = 0;
    /* The first request grows a lease (1 USD) from the store. */
    assert_int_equal(budget_reserve(b, loop, 0, now, 0.01, &period, tick_done, &got), 1);
    while (!got)
        settle_loop(loop);
    assert_int_equal(got, 1);
    budget_settle(b, loop, 0, period, 0.01, 0.004);
    /* The next ones come one at a time and are granted from memory. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(budget_reserve(b, loop, 0, now, 0.01, &period, tick_done, &got), 0);
        budget_settle(b, loop, 0, period, 0.01, 0.004);
    }
    settle_loop(loop);
    store_budget_t t;
    assert_int_equal(store_budget_get(s, "k", period, &t), 0);
    assert_true(fabs(t.reserved_usd - 1.0) < 1e-9); /* still leased */
    assert_true(t.spent_usd < 1e-9);
    uint64_t mono = clock_mono_ms();
    budget_tick(b, loop, mono); /* idle for less than a second: kept */
    settle_loop(loop);
    assert_int_equal(store_budget_get(s, "k", period, &t), 0);
    assert_true(fabs(t.reserved_usd - 1.0) < 1e-9);
    budget_tick(b, loop, mono + 1500); /* idle long enough: given back, spending settled */
    settle_loop(loop);
    assert_int_equal(store_budget_get(s, "k", period, &t), 0);
    if (fabs(t.reserved_usd) > 1e-9 || fabs(t.spent_usd - 21 * 0.004) > 1e-9)
        fail_msg("store spent %.9f reserved %.9f", t.spent_usd, t.reserved_usd);
    budget_free(b);
    loop_free(loop);
    store_close(s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_gateways_one_budget),
        cmocka_unit_test(test_idle_lease_kept_then_given_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
