/* test_tier_answer.c — the strict scan of upstream answers: ordinary answers take the
 * fast path with the right facts, everything it cannot be sure of is left to cJSON,
 * and over many mutated answers every "sure" agrees with cJSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "answer_agrees.h"
#include "tier/answer.h"

static bool scan(const char *s, answer_scan_t *a)
{
    return answer_scan(s, strlen(s), a);
}

static void test_ordinary_answers(void **state)
{
    (void)state;
    answer_scan_t a;
    assert_true(
        scan("{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
             "\"message\":{\"role\":\"assistant\",\"content\":\"Hi \\\"there\\\"\\n\"},"
             "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
             "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}",
             &a));
    assert_true(a.top_obj);
    assert_true(a.choices_arr);
    assert_true(a.has_pt && a.has_ct);
    assert_true(a.pt == 12 && a.ct == 3);
    /* no usage; choices not an array; not an object; whitespace around */
    assert_true(scan(" {\"choices\":[]} \n", &a));
    assert_true(a.choices_arr && !a.has_pt && !a.has_ct);
    assert_true(scan("{\"choices\":{}}", &a));
    assert_true(a.top_obj && !a.choices_arr);
    assert_true(scan("[1,2,3]", &a));
    assert_false(a.top_obj);
    /* the first "usage" and the first count are the ones read, as cJSON does */
    assert_true(scan("{\"usage\":1,\"usage\":{\"prompt_tokens\":5},\"choices\":[]}", &a));
    assert_false(a.has_pt);
    assert_true(scan("{\"usage\":{\"prompt_tokens\":-7,\"prompt_tokens\":9}}", &a));
    assert_true(a.has_pt && a.pt == -7);
    /* a surrogate pair and escapes in values are fine */
    assert_true(scan("{\"choices\":[{\"text\":\"\\ud83d\\ude00 \\u00e9\\/\\t\"}]}", &a));
}

static void test_left_to_cjson(void **state)
{
    (void)state;
    answer_scan_t a;
    const char *unsure[] = {
        "",
        "   ",
        "{\"choices\":[]} trailing",
        "{\"choices\":[],}",
        "{'choices':[]}",
        "{\"choices\":[{\"logprobs\":{\"content\":[]}}]}", /* confidence to compute */
        "{\"cho\\u0069ces\":[]}",                          /* escaped key where keys matter */
        "{\"choices\":[\"\\udc00\"]}",                     /* lone low surrogate */
        "{\"choices\":[\"\\ud800x\"]}",                    /* high surrogate alone */
        "{\"choices\":[\"\\x\"]}",
        "{\"choices\":[\"a\tb\"]}", /* raw control byte */
        "{\"choices\":[01]}",
        "{\"choices\":[1.]}",
        "{\"choices\":[.5]}",
        "{\"choices\":[1e]}",
        "{\"choices\":[+1]}",
        "{\"choices\":[tru]}",
        "{\"choices\":[1234567890123456789012345678901234567890123456789012345678901234]}",
        "{\"choices\":[\"unterminated]}",
    };
    for (size_t i = 0; i < sizeof unsure / sizeof *unsure; i++)
        if (scan(unsure[i], &a)) fail_msg("sure of %s", unsure[i]);
    /* nesting past the scan's limit */
    char deep[2 * (ANSWER_MAX_DEPTH + 8) + 1];
    size_t n = 0;
    for (int i = 0; i < ANSWER_MAX_DEPTH + 4; i++)
        deep[n++] = '[';
    for (int i = 0; i < ANSWER_MAX_DEPTH + 4; i++)
        deep[n++] = ']';
    assert_false(answer_scan(deep, n, &a));
    /* a NUL inside a string is not JSON */
    assert_false(answer_scan("{\"a\":\"x\0y\"}", 11, &a));
}

/* Seeds mutated by byte flips, insertions of JSON punctuation and deletions; every
 * mutant the scan is sure of must read the same through cJSON. */
static void test_mutants_agree_with_cjson(void **state)
{
    (void)state;
    const char *seeds[] = {
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":\"Paris.\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}",
        "{\"choices\":[{\"text\":\"a\\\"b\\\\c\\u00e9\",\"logprobs\":{\"token_logprobs\":[-0.1,-2e-"
        "3]}}],"
        "\"usage\":{\"completion_tokens\":1.5e1,\"prompt_tokens\":-0}}",
        "[{\"choices\":[true,false,null]},{\"usage\":{\"prompt_tokens\":1}}]",
        "{\"usage\":{\"prompt_tokens\":123456789012,\"completion_tokens\":1E+2},\"choices\":[[],{}]"
        "}",
    };
    const char punct[] = "{}[]\":,\\ 0-.eEu\x01";
    uint64_t x = 0x2545f4914f6cdd1dull;
    char buf[512];
    long sure = 0, total = 0;
    for (size_t si = 0; si < sizeof seeds / sizeof *seeds; si++) {
        size_t len0 = strlen(seeds[si]);
        for (int it = 0; it < 40000; it++) {
            memcpy(buf, seeds[si], len0);
            size_t len = len0;
            int edits = 1 + (int)(x % 3);
            for (int e = 0; e < edits; e++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = (size_t)(x >> 20) % (len + 1);
                switch ((x >> 8) % 3) {
                case 0: /* replace */
                    if (at < len) buf[at] = punct[(x >> 40) % (sizeof punct - 1)];
                    break;
                case 1: /* insert */
                    if (len + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, len - at);
                        buf[at] = punct[(x >> 40) % (sizeof punct - 1)];
                        len++;
                    }
                    break;
                default: /* delete */
                    if (at < len) {
                        memmove(buf + at, buf + at + 1, len - at - 1);
                        len--;
                    }
                }
            }
            answer_scan_t a;
            total++;
            if (!answer_scan(buf, len, &a)) continue;
            sure++;
            if (!answer_agrees_with_cjson(buf, len, &a))
                fail_msg("scan and cJSON differ on %.*s", (int)len, buf);
        }
    }
    /* the comparison is not vacuous: a good share of mutants stay valid JSON */
    print_message("%ld of %ld mutants scanned as sure\n", sure, total);
    assert_true(sure > total / 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ordinary_answers),
        cmocka_unit_test(test_left_to_cjson),
        cmocka_unit_test(test_mutants_agree_with_cjson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
