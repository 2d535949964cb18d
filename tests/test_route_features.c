/* test_route_features.c — the answer-choice structure of multiple-choice prompts
 * (route_features_choices) and where it lands in the need-of-cloud dense inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "route/features.h"
#include "route/router.h"

static route_features_t choices_of(const char *s)
{
    route_features_t f;
    memset(&f, 0x55, sizeof f); /* every slot must be written */
    route_features_choices(&f, s, strlen(s));
    return f;
}

/* Four numeric options in order, a stem with NOT: count, numeric share, negation. */
static void test_numeric_options(void **state)
{
    (void)state;
    const char *q = "Which of these is NOT a prime?\nA. 2\nB. 3\nC. 9\nD. 11\nAnswer:";
    route_features_t f = choices_of(q);
    assert_float_equal(f.choice[0], 1.0f, 0);
    assert_float_equal(f.choice[1], 1.0f, 1e-6); /* 4 options / 4 */
    assert_float_equal(f.choice[5], 1.0f, 1e-6); /* all numeric */
    assert_float_equal(f.choice[6], 0.0f, 0);    /* no "of the above" */
    assert_float_equal(f.choice[7], 1.0f, 0);    /* NOT in the stem */
    assert_float_equal(f.choice[8], 0.0f, 0);
    /* mean option length 1.25 bytes; stem 30 bytes */
    assert_float_equal(f.choice[2], (float)(log1p(1.25) / 5.0), 1e-6);
    assert_float_equal(f.choice[9], (float)(log1p(30.0) / 8.0), 1e-6);
    /* lengths 1,1,1,2: max/min = 2/2, spread = std/mean */
    assert_float_equal(f.choice[3], (float)(log1p(2.0 / 2.0) / 3.0), 1e-6);
    assert_float_equal(f.choice[4], (float)(sqrt(0.1875) / 1.25), 1e-5);
}

/* Text options, "None of the above", paired statements, "not" in lowercase (no
 * negation flag: only the uppercase words of exam stems count). */
static void test_text_options(void **state)
{
    (void)state;
    const char *q = "Statement 1 | Every group is not cyclic. Statement 2 | Some are.\n"
                    "A. True, True\nB. False, False\nC. None of the above\n";
    route_features_t f = choices_of(q);
    assert_float_equal(f.choice[0], 1.0f, 0);
    assert_float_equal(f.choice[1], 0.75f, 1e-6);
    assert_float_equal(f.choice[5], 0.0f, 0);
    assert_float_equal(f.choice[6], 1.0f, 0);
    assert_float_equal(f.choice[7], 0.0f, 0);
    assert_float_equal(f.choice[8], 1.0f, 0);
}

/* Not a multiple-choice prompt: one option, options out of order, a word that
 * merely contains NOT, plain chat. All zero. */
static void test_no_options(void **state)
{
    (void)state;
    const char *v[] = {
        "Write a poem about the sea.",
        "NOTHING here\nA. only one option\nAnswer:",
        "Pick one\nB. first\nA. second\n",
        "",
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        route_features_t f = choices_of(v[i]);
        for (int j = 0; j < ROUTE_CHOICE_DIM; j++)
            assert_float_equal(f.choice[j], 0.0f, 0);
    }
    /* NOTHING is not NOT; options after it still count. */
    route_features_t f = choices_of("NOTHING works\nA. x\nB. yy\n");
    assert_float_equal(f.choice[0], 1.0f, 0);
    assert_float_equal(f.choice[7], 0.0f, 0);
}

/* route_features_text fills the choices from the last text, and the
 * need-of-cloud dense inputs end with them. */
static void test_dense_cloud_tail(void **state)
{
    (void)state;
    const char *q = "Which is largest?\nA. 10\nB. 200\nC. 3\nD. 4000\nAnswer:";
    route_text_t t = {"user", q, strlen(q)};
    route_features_t f = {0};
    f.n_messages = 1;
    f.cloud_score = -1;
    route_features_text(&f, &t, 1, &t);
    float d[ROUTE_CLOUD_DENSE_DIM];
    route_features_dense_cloud(&f, d);
    const float *tail = d + ROUTE_CLOUD_DENSE_DIM - ROUTE_CHOICE_DIM;
    assert_float_equal(tail[0], 1.0f, 0);
    assert_float_equal(tail[1], 1.0f, 1e-6);
    assert_float_equal(tail[5], 1.0f, 1e-6);
    assert_memory_equal(tail, f.choice, sizeof f.choice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_options),
        cmocka_unit_test(test_text_options),
        cmocka_unit_test(test_no_options),
        cmocka_unit_test(test_dense_cloud_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
