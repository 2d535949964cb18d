/* test_tier_spec_remote.c — the parts of cross-tier speculative decoding that need no
 * network: reading a verifier's answer (what it keeps, and every way it can be
 * unusable) and the adaptive draft length's cost model. The rounds themselves run
 * through real gateways in tests/blackbox/speculative_tier.t. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "tier/spec_remote.h"

/* An answer in the protocol's shape for ids[0..n) and one generated token: tops[i] is
 * the top alternative at position i (ignored at 0). */
static void answer(buf_t *b, const int *ids, int n, const int *tops, int next, const char *tokfmt)
{
    buf_reset(b);
    buf_puts(b, "{\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"\","
                "\"logprobs\":{\"tokens\":[");
    for (int i = 0; i <= n; i++) {
        buf_puts(b, i ? ",\"" : "\"");
        buf_printf(b, tokfmt, i < n ? ids[i] : next);
        buf_puts(b, "\"");
    }
    buf_puts(b, "],\"token_logprobs\":[null");
    for (int i = 1; i <= n; i++)
        buf_printf(b, ",-%d.5", i);
    buf_puts(b, "],\"top_logprobs\":[null");
    for (int i = 1; i <= n; i++)
        buf_printf(b, ",{\"token_id:%d\":-0.25}", i < n ? tops[i] : next);
    buf_puts(b, "]},\"finish_reason\":\"length\"}]}");
}

static void test_parse(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1 << 20);
    int ids[6] = {1, 40, 41, 42, 43, 44}; /* context of 3, drafts 42 43 44 */
    int tops[6] = {0, 40, 41, 42, 99, 44};
    answer(&b, ids, 6, tops, 77, "token_id:%d");
    spec_remote_verdict_t v;
    char err[200] = "";
    assert_int_equal(spec_remote_parse(b.data, b.len, ids, 6, 3, &v, err, sizeof err), 0);
    assert_int_equal(v.top[0], 42);
    assert_int_equal(v.top[1], 99);
    assert_int_equal(v.top[2], 44);
    assert_int_equal(v.next, 77);
    assert_true(v.top_lp[1] == -0.25f);
    assert_true(v.draft_lp[0] == -3.5f); /* token_logprobs at position 3 */
    assert_true(v.next_lp == -6.5f);

    /* another vocabulary: the echoed ids differ */
    answer(&b, (int[]){1, 40, 41, 43, 43, 44}, 6, tops, 77, "token_id:%d");
    assert_int_equal(spec_remote_parse(b.data, b.len, ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    assert_non_null(strstr(err, "vocabulary"));
    /* tokens as text, not ids */
    answer(&b, ids, 6, tops, 77, "tok%d");
    assert_int_equal(spec_remote_parse(b.data, b.len, ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    assert_non_null(strstr(err, "token_id:N"));
    /* no prompt logprobs at all */
    const char *none = "{\"choices\":[{\"text\":\"x\",\"logprobs\":null}]}";
    assert_int_equal(spec_remote_parse(none, strlen(none), ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    assert_non_null(strstr(err, "no prompt logprobs"));
    /* no echo: only the generated entry */
    const char *gen = "{\"choices\":[{\"logprobs\":{\"tokens\":[\"token_id:5\"],"
                      "\"token_logprobs\":[-1],\"top_logprobs\":[{\"token_id:5\":-1}]}}]}";
    assert_int_equal(spec_remote_parse(gen, strlen(gen), ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    assert_non_null(strstr(err, "no echo"));
    /* a missing top alternative at a draft position */
    answer(&b, ids, 6, tops, 77, "token_id:%d");
    char *p = strstr(b.data, "{\"token_id:99\":-0.25}");
    assert_non_null(p);
    memcpy(p, "null                 ", 21);
    assert_int_equal(spec_remote_parse(b.data, b.len, ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    assert_non_null(strstr(err, "no top alternative at position 4"));
    /* not JSON, and truncated */
    assert_int_equal(spec_remote_parse("<html>", 6, ids, 6, 3, &v, err, sizeof err), SY_EUPSTREAM);
    answer(&b, ids, 6, tops, 77, "token_id:%d");
    assert_int_equal(spec_remote_parse(b.data, b.len / 2, ids, 6, 3, &v, err, sizeof err),
                     SY_EUPSTREAM);
    /* a top object with two entries: the most likely one counts */
    const char *two = "{\"choices\":[{\"logprobs\":{\"tokens\":[\"token_id:1\",\"token_id:7\","
                      "\"token_id:8\"],\"token_logprobs\":[null,-2,-0.1],\"top_logprobs\":[null,"
                      "{\"token_id:7\":-2,\"token_id:9\":-0.3},{\"token_id:8\":-0.1}]}}]}";
    assert_int_equal(spec_remote_parse(two, strlen(two), (int[]){1, 7}, 2, 1, &v, err, sizeof err),
                     0);
    assert_int_equal(v.top[0], 9);
    assert_int_equal(v.next, 8);
    /* the generated entry without a top alternative (as some servers write it) */
    const char *gen_null =
        "{\"choices\":[{\"logprobs\":{\"tokens\":[\"token_id:1\",\"token_id:7\","
        "\"token_id:8\"],\"token_logprobs\":[null,-2,-0.5],\"top_logprobs\":[null,"
        "{\"token_id:7\":-2},null]}}]}";
    assert_int_equal(
        spec_remote_parse(gen_null, strlen(gen_null), (int[]){1, 7}, 2, 1, &v, err, sizeof err), 0);
    assert_int_equal(v.next, 8);
    assert_true(v.next_lp == -0.5f);
    buf_deinit(&b);
}

/* The draft length grows with the round trip and with the acceptance, and stays in
 * 1..cap. */
static void test_best_k(void **state)
{
    (void)state;
    int prev = 0;
    const double delays[] = {0.05, 1, 10, 30, 80, 300};
    for (size_t i = 0; i < sizeof delays / sizeof *delays; i++) {
        int k = spec_remote_best_k(0.8, 0.5, delays[i], 16);
        assert_true(k >= prev && k >= 1 && k <= 16);
        prev = k;
    }
    assert_true(spec_remote_best_k(0.8, 0.5, 80, 16) > spec_remote_best_k(0.8, 0.5, 1, 16));
    assert_true(spec_remote_best_k(0.95, 0.5, 30, 16) > spec_remote_best_k(0.4, 0.5, 30, 16));
    assert_int_equal(spec_remote_best_k(0.1, 5, 0.01, 16), 1); /* drafting costs, little kept */
    assert_int_equal(spec_remote_best_k(0.99, 0.01, 1000, 8), 8);
    assert_int_equal(spec_remote_best_k(0.5, 1, 10, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_best_k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
