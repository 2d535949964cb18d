/* test_route_bandit.c — the contextual bandit: convergence on a simulated stream
 * with known per-arm rewards (regret printed), hard masks, state round trip and
 * merge, and through the router (feedback changes decisions, state survives a
 * restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "route/bandit.h"
#include "route/router.h"

#define DIM ROUTE_BANDIT_DIM

static double unif(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return (double)(hash_mix(*s) >> 11) / 9007199254740992.0;
}

/* Context: bias, one "hardness" feature h in [0,1], the rest small noise.
 * Expected rewards: arm 0 (edge) 0.8 - 0.6 h, arm 1 (cloud) 0.55 + 0.1 h, arm 2 0.3:
 * the best arm switches at h = 1/3. */
static void context(uint64_t *s, float *x, double *h)
{
    memset(x, 0, DIM * sizeof *x);
    x[0] = 1;
    *h = unif(s);
    x[1] = (float)*h;
    x[2] = (float)(unif(s) * 0.1);
}

static double mean_reward(int arm, double h)
{
    return arm == 0 ? 0.8 - 0.6 * h : arm == 1 ? 0.55 + 0.1 * h : 0.3;
}

static double run_stream(route_bandit_algo_t algo, int steps, double *late_regret)
{
    route_bandit_opts_t o;
    route_bandit_opts_defaults(&o);
    o.algo = algo;
    route_bandit_t *b = route_bandit_new(3, &o);
    uint64_t s = 99;
    double regret = 0, late = 0;
    for (int t = 0; t < steps; t++) {
        float x[DIM];
        double h;
        context(&s, x, &h);
        int a = route_bandit_choose(b, x, 0x7, (uint64_t)t * 7919, NULL);
        assert_true(a >= 0 && a < 3);
        double best = fmax(mean_reward(0, h), fmax(mean_reward(1, h), mean_reward(2, h)));
        double r = mean_reward(a, h) + (unif(&s) - 0.5) * 0.2; /* noisy */
        regret += best - mean_reward(a, h);
        if (t >= steps - 500) late += best - mean_reward(a, h);
        assert_int_equal(route_bandit_update(b, a, x, r), 0);
    }
    route_bandit_free(b);
    *late_regret = late / 500.0;
    return regret;
}

static void test_converges(void **state)
{
    (void)state;
    /* Uniform random play has expected per-step regret of about 0.27 here. */
    for (int algo = 0; algo < 2; algo++) {
        double late;
        double regret = run_stream((route_bandit_algo_t)algo, 3000, &late);
        printf("# %s: cumulative regret %.1f over 3000 steps, last-500 mean regret %.4f\n",
               algo ? "thompson" : "linucb", regret, late);
        assert_true(late < 0.03);
        assert_true(regret < 0.1 * 3000);
    }
}

static void test_masks(void **state)
{
    (void)state;
    route_bandit_t *b = route_bandit_new(3, NULL);
    float x[DIM] = {1};
    /* Make arm 2 clearly the best... */
    for (int i = 0; i < 200; i++)
        route_bandit_update(b, 2, x, 1.0), route_bandit_update(b, 0, x, 0);
    assert_int_equal(route_bandit_choose(b, x, 0x7, 1, NULL), 2);
    /* ...and mask it: never chosen, whatever its value. */
    double sc[3];
    for (uint64_t seed = 0; seed < 200; seed++) {
        int a = route_bandit_choose(b, x, 0x3, seed, sc);
        assert_true(a == 0 || a == 1);
        assert_true(isinf(sc[2]) && sc[2] < 0);
    }
    assert_int_equal(route_bandit_choose(b, x, 0, 1, NULL), -1);
    assert_int_equal(route_bandit_update(b, 3, x, 1), SY_EINVAL);
    assert_int_equal(route_bandit_update(b, 0, x, NAN), SY_EINVAL);
    route_bandit_free(b);
}

static void test_state_roundtrip_and_merge(void **state)
{
    (void)state;
    route_bandit_opts_t o;
    route_bandit_opts_defaults(&o);
    o.explore = false;
    route_bandit_t *a = route_bandit_new(2, &o), *c = route_bandit_new(2, &o),
                   *whole = route_bandit_new(2, &o);
    uint64_t s = 5;
    for (int i = 0; i < 300; i++) {
        float x[DIM];
        double h;
        context(&s, x, &h);
        int arm = i % 2;
        double r = mean_reward(arm, h);
        route_bandit_update(i < 150 ? a : c, arm, x, r);
        route_bandit_update(whole, arm, x, r);
    }
    buf_t blob;
    buf_init(&blob, 1 << 20);
    assert_int_equal(route_bandit_save(a, &blob), 0);
    route_bandit_t *restored = route_bandit_new(2, &o);
    char err[128];
    assert_int_equal(route_bandit_load(restored, blob.data, blob.len, err, sizeof err), 0);
    float x[DIM] = {1, 0.7f};
    double s1[2], s2[2], s3[2];
    route_bandit_choose(a, x, 3, 0, s1);
    route_bandit_choose(restored, x, 3, 0, s2);
    assert_true(fabs(s1[0] - s2[0]) < 1e-12 && fabs(s1[1] - s2[1]) < 1e-12);
    assert_int_equal(route_bandit_count(restored, 0), 75);
    /* Two instances' sums merged equal one instance that saw everything. */
    assert_int_equal(route_bandit_merge(restored, c), 0);
    route_bandit_choose(restored, x, 3, 0, s2);
    route_bandit_choose(whole, x, 3, 0, s3);
    assert_true(fabs(s2[0] - s3[0]) < 1e-9 && fabs(s2[1] - s3[1]) < 1e-9);
    /* A flipped byte is caught. */
    blob.data[40] ^= 1;
    assert_int_equal(route_bandit_load(restored, blob.data, blob.len, err, sizeof err),
                     SY_ECORRUPT);
    assert_int_equal(route_bandit_load(restored, blob.data, 10, err, sizeof err), SY_ECORRUPT);
    buf_deinit(&blob);
    route_bandit_free(a);
    route_bandit_free(c);
    route_bandit_free(whole);
    route_bandit_free(restored);
}

/* Through the router: rewards that favour the cloud for code move code requests
 * there; the state saved and loaded into a new router gives the same decisions;
 * local_only masks the cloud arm even when it is the best. */
static void test_router_feedback_restart(void **state)
{
    (void)state;
    route_config_t cfg;
    route_config_defaults(&cfg);
    cfg.policy = ROUTE_POLICY_BANDIT;
    cfg.bandit.explore = false;
    char err[128];
    router_t *r = router_new(&cfg, NULL, err, sizeof err);
    router_scratch_t *s = router_scratch_new(r);
    route_tier_t t[2] = {
        {"edge", ROUTE_PRIVACY_ON_DEVICE, ROUTE_ROLE_EDGE, true, false, false, 0, 0, 0, 0},
        {"cloud", ROUTE_PRIVACY_EXTERNAL, ROUTE_ROLE_CLOUD, true, false, false, 1, 1, 0, 0},
    };
    const char *code = "```c\nint main(void) { return 0; }\n```\nwhy does this code crash?";
    route_text_t tx = {"user", code, strlen(code)};
    route_input_t in = {.texts = &tx, .n_texts = 1, .n_messages = 1};
    route_decision_t d;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(router_decide(r, s, &in, t, 2, &d), 0);
        router_feedback(r, &d.features, 1, 0.9);
        router_feedback(r, &d.features, 0, 0.2);
    }
    assert_int_equal(router_decide(r, s, &in, t, 2, &d), 0);
    assert_int_equal(d.tier, 1);
    assert_true(!strncmp(d.reasons[0], "bandit:cloud", 12));
    buf_t blob;
    buf_init(&blob, 1 << 20);
    assert_int_equal(router_bandit_save(r, &blob), 0);
    router_t *r2 = router_new(&cfg, NULL, err, sizeof err);
    assert_int_equal(router_bandit_load(r2, blob.data, blob.len, err, sizeof err), 0);
    route_decision_t d2;
    assert_int_equal(router_decide(r2, s, &in, t, 2, &d2), 0);
    assert_int_equal(d2.tier, 1);
    in.privacy_local_only = true;
    assert_int_equal(router_decide(r2, s, &in, t, 2, &d2), 0);
    assert_int_equal(d2.tier, 0);
    assert_int_equal(d2.n_order, 1);
    assert_int_equal(router_bandit_merge(r2, blob.data, blob.len, err, sizeof err), 0);
    buf_deinit(&blob);
    router_free(r2);
    router_scratch_free(s);
    router_free(r);
}

/* Two gateways' routers share statistics as the store thread does: each takes its
 * pending delta, the deltas are added (the store's job), and each is set to the
 * total plus what it gathered meanwhile; both then decide as one router that saw
 * every reward. */
static void test_router_shared_sums(void **state)
{
    (void)state;
    route_config_t cfg;
    route_config_defaults(&cfg);
    cfg.policy = ROUTE_POLICY_BANDIT;
    cfg.bandit.explore = false;
    char err[128];
    router_t *ga = router_new(&cfg, NULL, err, sizeof err);
    router_t *gb = router_new(&cfg, NULL, err, sizeof err);
    router_t *whole = router_new(&cfg, NULL, err, sizeof err);
    router_scratch_t *s = router_scratch_new(ga);
    route_tier_t t[2] = {
        {"edge", ROUTE_PRIVACY_ON_DEVICE, ROUTE_ROLE_EDGE, true, false, false, 0, 0, 0, 0},
        {"cloud", ROUTE_PRIVACY_EXTERNAL, ROUTE_ROLE_CLOUD, true, false, false, 1, 1, 0, 0},
    };
    const char *texts[3] = {"```c\nint x = 1 / 0;\n```\nwhy does this crash?",
                            "Translate to French: the cat sleeps", "What is 17 * 23?"};
    double rewards_a = 0;
    for (int i = 0; i < 60; i++) {
        route_text_t tx = {"user", texts[i % 3], strlen(texts[i % 3])};
        route_input_t in = {.texts = &tx, .n_texts = 1, .n_messages = 1};
        route_decision_t d;
        assert_int_equal(router_decide(whole, s, &in, t, 2, &d), 0);
        double r = (i % 3 == 0) == (i % 2 == 1) ? 0.9 : 0.1;
        router_t *g = i < 25 ? ga : gb; /* gateway A gets 25 rewards, B 35 */
        assert_int_equal(router_feedback(g, &d.features, i % 2, r), 0);
        assert_int_equal(router_feedback(whole, &d.features, i % 2, r), 0);
        if (g == ga && i % 2 == 1) rewards_a += r;
    }
    uint64_t n, pending;
    double sum;
    router_bandit_arm_totals(ga, 1, &n, &sum, &pending);
    assert_int_equal(n, 12);
    assert_int_equal(pending, 12);
    assert_true(fabs(sum - rewards_a) < 1e-9); /* the first feature is the constant 1 */
    size_t len = router_bandit_sums_len(ga);
    assert_int_equal(len, (size_t)ROUTE_MAX_TIERS * (1 + DIM * DIM + DIM));
    double *da = calloc(len, sizeof(double)), *db = calloc(len, sizeof(double));
    double *total = calloc(len, sizeof(double));
    assert_true(router_bandit_take(ga, da));
    assert_false(router_bandit_take(ga, da)); /* taken: nothing pending */
    assert_true(router_bandit_take(gb, db));
    for (size_t i = 0; i < len; i++)
        total[i] = da[i] + db[i];
    /* B has a reward more before its totals come back: it keeps it. */
    route_text_t tx = {"user", texts[1], strlen(texts[1])};
    route_input_t in = {.texts = &tx, .n_texts = 1, .n_messages = 1};
    route_decision_t d;
    assert_int_equal(router_decide(gb, s, &in, t, 2, &d), 0);
    assert_int_equal(router_feedback(gb, &d.features, 0, 0.5), 0);
    assert_int_equal(router_bandit_set_total(ga, total, len), 0);
    assert_int_equal(router_bandit_set_total(gb, total, len), 0);
    router_bandit_arm_totals(ga, 0, &n, &sum, &pending);
    assert_int_equal(n, 30);
    assert_int_equal(pending, 0);
    router_bandit_arm_totals(gb, 0, &n, &sum, &pending);
    assert_int_equal(n, 31);
    assert_int_equal(pending, 1);
    /* A decides exactly as the router that saw all 60 rewards. */
    for (int k = 0; k < 3; k++) {
        route_text_t q = {"user", texts[k], strlen(texts[k])};
        route_input_t qi = {.texts = &q, .n_texts = 1, .n_messages = 1};
        route_decision_t d1, d2;
        assert_int_equal(router_decide(ga, s, &qi, t, 2, &d1), 0);
        assert_int_equal(router_decide(whole, s, &qi, t, 2, &d2), 0);
        assert_int_equal(d1.tier, d2.tier);
        assert_string_equal(d1.reasons[0], d2.reasons[0]); /* bandit:TIER(score) */
    }
    /* Vectors of another shape, or with a count that is not whole, are refused. */
    assert_int_equal(router_bandit_set_total(ga, total, len - 1), SY_EINVAL);
    total[0] += 0.5;
    assert_int_equal(router_bandit_set_total(ga, total, len), SY_EINVAL);
    total[0] = -1;
    assert_int_equal(router_bandit_set_total(ga, total, len), SY_EINVAL);
    free(da);
    free(db);
    free(total);
    router_scratch_free(s);
    router_free(ga);
    router_free(gb);
    router_free(whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converges),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_state_roundtrip_and_merge),
        cmocka_unit_test(test_router_feedback_restart),
        cmocka_unit_test(test_router_shared_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
