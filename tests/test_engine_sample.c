/* test_engine_sample.c — samplers on hand-made logits: greedy, filters, the empirical
 * distribution of a seeded draw, the repetition penalty, logprobs, entropy and the
 * confidence summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "engine/sample.h"

static sample_params_t params(float temp)
{
    sample_params_t p;
    sample_params_default(&p);
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static void test_greedy_and_logprobs(void **state)
{
    (void)state;
    float lg[6] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, 1.9f};
    sample_params_t p = params(0.0f);
    sampler_t *s = sample_new(6, &p);
    sample_info_t info;
    assert_int_equal(sample_token(s, lg, NULL, 0, 3, &info), 1);
    double z = 0;
    for (int i = 0; i < 6; i++)
        z += exp(lg[i]);
    assert_float_equal(info.logprob, 2.0 - log(z), 1e-5);
    double h = 0;
    for (int i = 0; i < 6; i++)
        h -= exp(lg[i]) / z * (lg[i] - log(z));
    assert_float_equal(info.entropy, h, 1e-5);
    float ent;
    assert_float_equal(sample_logprob(lg, 6, 3, &ent), 1.5 - log(z), 1e-5);
    assert_float_equal(ent, h, 1e-5);
    /* alternatives: ids 1, 5, 3 in order */
    assert_int_equal(info.n_alts, 3);
    assert_int_equal(info.alts[0].id, 1);
    assert_int_equal(info.alts[1].id, 5);
    assert_int_equal(info.alts[2].id, 3);
    assert_float_equal(info.alts[1].logprob, 1.9 - log(z), 1e-5);
    sample_free(s);
}

static void test_filters_pick_the_best(void **state)
{
    (void)state;
    float lg[5] = {1.0f, 3.0f, 2.9f, 0.0f, 2.95f};
    sample_info_t info;
    sample_params_t p = params(1.0f);
    p.top_k = 1;
    sampler_t *s = sample_new(5, &p);
    for (int i = 0; i < 50; i++)
        assert_int_equal(sample_token(s, lg, NULL, 0, 0, &info), 1);
    p = params(1.0f);
    p.top_p = 0.01f;
    sample_reset(s, &p);
    for (int i = 0; i < 50; i++)
        assert_int_equal(sample_token(s, lg, NULL, 0, 0, &info), 1);
    p = params(1.0f);
    p.min_p = 0.99f;
    sample_reset(s, &p);
    for (int i = 0; i < 50; i++)
        assert_int_equal(sample_token(s, lg, NULL, 0, 0, &info), 1);
    /* top-k 3 never picks outside the best three */
    p = params(5.0f);
    p.top_k = 3;
    p.seed = 9;
    sample_reset(s, &p);
    int seen[5] = {0};
    for (int i = 0; i < 500; i++)
        seen[sample_token(s, lg, NULL, 0, 0, &info)]++;
    assert_int_equal(seen[0] + seen[3], 0);
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[4] > 0);
    sample_free(s);
}

/* With no filters, draws follow softmax(logits / T). */
static void test_distribution(void **state)
{
    (void)state;
    float lg[2] = {0.0f, logf(3.0f)};
    sample_params_t p = params(1.0f);
    p.seed = 123;
    sampler_t *s = sample_new(2, &p);
    sample_info_t info;
    int ones = 0, n = 20000;
    for (int i = 0; i < n; i++)
        ones += sample_token(s, lg, NULL, 0, 0, &info);
    assert_float_equal((double)ones / n, 0.75, 0.015);
    /* temperature 2 flattens: p1 = sqrt(3) / (1 + sqrt(3)) */
    p.temperature = 2.0f;
    sample_reset(s, &p);
    ones = 0;
    for (int i = 0; i < n; i++)
        ones += sample_token(s, lg, NULL, 0, 0, &info);
    assert_float_equal((double)ones / n, sqrt(3.0) / (1 + sqrt(3.0)), 0.015);
    /* the same seed gives the same sequence */
    int a[32], b[32];
    sample_reset(s, &p);
    for (int i = 0; i < 32; i++)
        a[i] = sample_token(s, lg, NULL, 0, 0, &info);
    sample_reset(s, &p);
    for (int i = 0; i < 32; i++)
        b[i] = sample_token(s, lg, NULL, 0, 0, &info);
    assert_memory_equal(a, b, sizeof a);
    sample_free(s);
}

static void test_repeat_penalty(void **state)
{
    (void)state;
    float lg[3] = {2.0f, 1.9f, -1.0f};
    sample_params_t p = params(0.0f);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    sampler_t *s = sample_new(3, &p);
    sample_info_t info;
    int recent[3] = {0, 2, 2};
    /* token 0 left the window of 2: not penalised */
    assert_int_equal(sample_token(s, lg, recent, 3, 0, &info), 0);
    int recent2[2] = {2, 0};
    assert_int_equal(sample_token(s, lg, recent2, 2, 0, &info), 1);
    /* the reported logprob is the model's, not the penalised one */
    assert_float_equal(info.logprob, sample_logprob(lg, 3, 1, NULL), 1e-6);
    sample_free(s);
}

static void test_conf(void **state)
{
    (void)state;
    sample_conf_t c;
    sample_conf_init(&c);
    assert_float_equal(sample_conf_mean_logprob(&c), 0, 0);
    sample_info_t a = {.logprob = -0.5f, .entropy = 1.0f}, b = {.logprob = -2.5f, .entropy = 3.0f};
    sample_conf_add(&c, &a);
    sample_conf_add(&c, &b);
    assert_int_equal(c.n, 2);
    assert_float_equal(sample_conf_mean_logprob(&c), -1.5, 1e-9);
    assert_float_equal(c.min_logprob, -2.5, 0);
    assert_float_equal(sample_conf_mean_entropy(&c), 2.0, 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_and_logprobs),
        cmocka_unit_test(test_filters_pick_the_best),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_conf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
