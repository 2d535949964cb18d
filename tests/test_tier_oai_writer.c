/* test_tier_oai_writer.c — the client's answer written from typed events: every
 * payload is JSON of the OpenAI shape, a stream's chunks spell the same text, tool
 * call and logprobs as the whole answer does, however the tokens fall, and an answer
 * past the cap is an error, never a cut document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tier/oai_writer.h"

/* The payloads a stream emitted, each parsed. */
typedef struct sink {
    cJSON *chunks[512];
    int n;
} sink_t;

static void emit(void *arg, const char *json, size_t n)
{
    sink_t *s = arg;
    cJSON *j = cJSON_ParseWithLength(json, n);
    assert_non_null(j); /* every payload is one JSON document */
    assert_true(s->n < 512);
    s->chunks[s->n++] = j;
}

static void sink_free(sink_t *s)
{
    for (int i = 0; i < s->n; i++)
        cJSON_Delete(s->chunks[i]);
    s->n = 0;
}

static tier_ev_t token(int choice, const char *text, float lp, bool call)
{
    return (tier_ev_t){.kind = TIER_EV_TOKEN,
                       .choice = choice,
                       .text = text,
                       .len = (uint32_t)strlen(text),
                       .tok = text,
                       .tok_len = (uint32_t)strlen(text),
                       .has_lp = true,
                       .logprob = lp,
                       .call = call};
}

static tier_ev_t fin(int choice, tier_finish_t f, bool complete)
{
    return (tier_ev_t){.kind = TIER_EV_FINISH, .choice = choice, .finish = f, .complete = complete};
}

static tier_ev_t usage(uint32_t p, uint32_t c, uint32_t cached)
{
    return (tier_ev_t){
        .kind = TIER_EV_USAGE, .prompt_tokens = p, .completion_tokens = c, .cached_tokens = cached};
}

/* The node at a dotted path ("choices.0.message.content"), or NULL. */
static const cJSON *node_at(const cJSON *j, const char *path)
{
    char buf[200];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *at = j;
    for (char *tok = strtok(buf, "."); tok && at; tok = strtok(NULL, ".")) {
        if (tok[0] >= '0' && tok[0] <= '9')
            at = cJSON_GetArrayItem(at, atoi(tok));
        else
            at = cJSON_GetObjectItemCaseSensitive(at, tok);
    }
    return at;
}

static const char *str_at(const cJSON *j, const char *path)
{
    const cJSON *at = node_at(j, path);
    return cJSON_IsString(at) ? at->valuestring : NULL;
}

static double num_at(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, a), b);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

/* The writer's whole answer, parsed (it must be one JSON document). */
static cJSON *answer(oai_writer_t *w)
{
    buf_t out;
    buf_init(&out, 1 << 20);
    assert_int_equal(oai_writer_answer(w, &out), 0);
    cJSON *j = cJSON_ParseWithLength(out.data, out.len);
    buf_deinit(&out);
    assert_non_null(j);
    return j;
}

static void test_chat_whole_and_streamed(void **state)
{
    (void)state;
    oai_writer_t w;
    oai_writer_init(&w);
    const char *toks[] = {"Once", " upon", " a \"time\"", "\n"};
    /* whole, with logprobs */
    oai_writer_begin(&w, &(oai_writer_opts_t){"chatcmpl-1", "edge", 7, false, false, true});
    for (int i = 0; i < 4; i++) {
        tier_ev_t ev = token(0, toks[i], -0.5f * (float)i, false);
        assert_int_equal(oai_writer_event(&w, &ev, emit, NULL), 0);
    }
    tier_ev_t ev = fin(0, TIER_FINISH_LENGTH, false);
    assert_int_equal(oai_writer_event(&w, &ev, emit, NULL), 0);
    ev = usage(10, 4, 6);
    assert_int_equal(oai_writer_event(&w, &ev, emit, NULL), 0);
    cJSON *j = answer(&w);
    assert_non_null(j);
    assert_string_equal(str_at(j, "object"), "chat.completion");
    assert_string_equal(str_at(j, "id"), "chatcmpl-1");
    assert_string_equal(str_at(j, "choices.0.message.content"), "Once upon a \"time\"\n");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "length");
    assert_string_equal(str_at(j, "choices.0.logprobs.content.2.token"), " a \"time\"");
    assert_int_equal(cJSON_GetArraySize(node_at(j, "choices.0.logprobs.content.3.bytes")), 1);
    assert_true(node_at(j, "choices.0.logprobs.content.1.logprob")->valuedouble == -0.5);
    assert_true(num_at(j, "usage", "prompt_tokens") == 10);
    assert_true(num_at(j, "usage", "completion_tokens") == 4);
    assert_true(num_at(j, "usage", "total_tokens") == 14);
    cJSON_Delete(j);

    /* streamed, no logprobs asked: the deltas spell the same text, the role once */
    sink_t s = {0};
    oai_writer_begin(&w, &(oai_writer_opts_t){"chatcmpl-2", "edge", 7, false, true, false});
    for (int i = 0; i < 4; i++) {
        ev = token(0, toks[i], -1, false);
        assert_int_equal(oai_writer_event(&w, &ev, emit, &s), 0);
    }
    ev = fin(0, TIER_FINISH_STOP, true);
    assert_int_equal(oai_writer_event(&w, &ev, emit, &s), 0);
    ev = usage(10, 4, 0);
    assert_int_equal(oai_writer_event(&w, &ev, emit, &s), 0);
    assert_int_equal(s.n, 6);
    char text[200] = "";
    int roles = 0;
    for (int i = 0; i < 4; i++) {
        assert_string_equal(str_at(s.chunks[i], "object"), "chat.completion.chunk");
        assert_string_equal(str_at(s.chunks[i], "id"), "chatcmpl-2");
        strcat(text, str_at(s.chunks[i], "choices.0.delta.content"));
        roles += str_at(s.chunks[i], "choices.0.delta.role") != NULL;
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s.chunks[i], "choices"), 0),
            "logprobs")));
    }
    assert_string_equal(text, "Once upon a \"time\"\n");
    assert_int_equal(roles, 1);
    assert_string_equal(str_at(s.chunks[4], "choices.0.finish_reason"), "stop");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s.chunks[5], "choices")),
                     0);
    assert_true(num_at(s.chunks[5], "usage", "completion_tokens") == 4);
    sink_free(&s);
    oai_writer_deinit(&w);
}

/* A tool call split into tokens at every possible place: streamed, the head carries
 * the name and the fragments join to the arguments; whole, tool_calls holds the same;
 * the closing brace of the call object is never part of the arguments. */
static void test_tool_call_any_split(void **state)
{
    (void)state;
    const char *call = "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\",\"n\":[1,2]}}";
    const char *args = "{\"city\":\"Oslo\",\"n\":[1,2]}";
    size_t n = strlen(call);
    oai_writer_t w;
    oai_writer_init(&w);
    unsigned rng = 12345;
    for (int round = 0; round < 300; round++) {
        /* random cut points */
        char pieces[64][80];
        int np = 0;
        size_t at = 0;
        while (at < n) {
            rng = rng * 1103515245u + 12345u;
            size_t k = 1 + (rng >> 16) % 7;
            if (k > n - at) k = n - at;
            memcpy(pieces[np], call + at, k);
            pieces[np++][k] = 0;
            at += k;
        }
        for (int stream = 0; stream < 2; stream++) {
            sink_t s = {0};
            oai_writer_begin(&w, &(oai_writer_opts_t){"c", "edge", 1, false, stream, false});
            for (int i = 0; i < np; i++) {
                tier_ev_t ev = token(0, pieces[i], -0.1f, true);
                assert_int_equal(oai_writer_event(&w, &ev, emit, &s), 0);
            }
            tier_ev_t ev = fin(0, TIER_FINISH_STOP, true);
            assert_int_equal(oai_writer_event(&w, &ev, emit, &s), 0);
            if (stream) {
                char got[200] = "";
                int heads = 0;
                for (int i = 0; i < s.n - 1; i++) {
                    const char *name =
                        str_at(s.chunks[i], "choices.0.delta.tool_calls.0.function.name");
                    if (name) {
                        assert_string_equal(name, "get_weather");
                        assert_non_null(str_at(s.chunks[i], "choices.0.delta.tool_calls.0.id"));
                        heads++;
                    }
                    const char *a =
                        str_at(s.chunks[i], "choices.0.delta.tool_calls.0.function.arguments");
                    assert_non_null(a);
                    strcat(got, a);
                }
                assert_int_equal(heads, 1);
                assert_string_equal(got, args);
                assert_string_equal(str_at(s.chunks[s.n - 1], "choices.0.finish_reason"),
                                    "tool_calls");
            } else {
                cJSON *j = answer(&w);
                assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.name"),
                                    "get_weather");
                assert_string_equal(str_at(j, "choices.0.message.tool_calls.0.function.arguments"),
                                    args);
                assert_string_equal(str_at(j, "choices.0.finish_reason"), "tool_calls");
                cJSON_Delete(j);
            }
            sink_free(&s);
        }
    }
    /* cut short (max_tokens): the text as it is, finish_reason length */
    oai_writer_begin(&w, &(oai_writer_opts_t){"c", "edge", 1, false, false, false});
    tier_ev_t ev = token(0, "{\"name\":\"get_w", -0.1f, true);
    assert_int_equal(oai_writer_event(&w, &ev, emit, NULL), 0);
    ev = fin(0, TIER_FINISH_LENGTH, false);
    assert_int_equal(oai_writer_event(&w, &ev, emit, NULL), 0);
    cJSON *j = answer(&w);
    assert_string_equal(str_at(j, "choices.0.message.content"), "{\"name\":\"get_w");
    assert_string_equal(str_at(j, "choices.0.finish_reason"), "length");
    cJSON_Delete(j);
    oai_writer_deinit(&w);
}

/* Completions: echo and legacy logprobs (null at the first prompt token, alternatives
 * as objects, offsets into the text), two choices each with its own echo. */
static void test_completions_echo_legacy(void **state)
{
    (void)state;
    oai_writer_t w;
    oai_writer_init(&w);
    oai_writer_begin(&w, &(oai_writer_opts_t){"cmpl-1", "edge", 1, true, false, true});
    tier_alt_t alt = {"token_id:9", 10, -0.25f};
    for (int c = 0; c < 2; c++) {
        tier_ev_t e0 = {.kind = TIER_EV_ECHO,
                        .choice = c,
                        .text = "Hi",
                        .len = 2,
                        .tok = "token_id:5",
                        .tok_len = 10};
        tier_ev_t e1 = {.kind = TIER_EV_ECHO,
                        .choice = c,
                        .text = " there",
                        .len = 6,
                        .tok = "token_id:6",
                        .tok_len = 10,
                        .has_lp = true,
                        .logprob = -1.5f,
                        .n_alts = 1,
                        .alts = &alt};
        tier_ev_t t = token(c, c ? "!" : ".", -0.75f, false);
        tier_ev_t f = fin(c, TIER_FINISH_LENGTH, false);
        assert_int_equal(oai_writer_event(&w, &e0, emit, NULL), 0);
        assert_int_equal(oai_writer_event(&w, &e1, emit, NULL), 0);
        assert_int_equal(oai_writer_event(&w, &t, emit, NULL), 0);
        assert_int_equal(oai_writer_event(&w, &f, emit, NULL), 0);
    }
    cJSON *j = answer(&w);
    assert_non_null(j);
    assert_string_equal(str_at(j, "object"), "text_completion");
    assert_string_equal(str_at(j, "choices.0.text"), "Hi there.");
    assert_string_equal(str_at(j, "choices.1.text"), "Hi there!");
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 1), "logprobs");
    cJSON *vals = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    assert_int_equal(cJSON_GetArraySize(vals), 3);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(vals, 0)));
    assert_true(cJSON_GetArrayItem(vals, 1)->valuedouble == -1.5);
    cJSON *tops = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(tops, 0)));
    assert_true(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tops, 1), "token_id:9")->valuedouble ==
        -0.25);
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(lp, "text_offset");
    assert_int_equal(cJSON_GetArrayItem(offs, 2)->valueint, 8);
    assert_string_equal(str_at(lp, "tokens.1"), "token_id:6");
    cJSON_Delete(j);
    oai_writer_deinit(&w);
}

/* Random event sequences with random bytes (quotes, backslashes, control bytes,
 * broken UTF-8) in every string, in every mode: every payload and every answer is
 * one JSON document, and the text a stream spells equals the whole answer's. */
static void test_random_events_always_json(void **state)
{
    (void)state;
    static const char alphabet[] = "ab \"\\\n\t\x01\x1f{}[]:,\xc3\xa9\xff\xe2\x82";
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    oai_writer_t w;
    oai_writer_init(&w);
    for (int round = 0; round < 400; round++) {
        bool completions = round & 1, lp = round & 2;
        char texts[40][16], alts[40][4][8];
        tier_alt_t at[40][4];
        tier_ev_t evs[48];
        int ne = 0, choices = 1 + (int)(round % 3);
        for (int c = 0; c < choices; c++) {
            int nt = (int)((rng >> 40) % 12);
            for (int t = 0; t < nt && ne < 40; t++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                int len = (int)((rng >> 33) % 15);
                for (int b = 0; b < len; b++)
                    texts[ne][b] = alphabet[(rng >> (b % 40)) % (sizeof alphabet - 1)];
                texts[ne][len] = 0;
                int na = (int)((rng >> 20) % 5);
                for (int a = 0; a < na; a++) {
                    for (int b = 0; b < 7; b++)
                        alts[ne][a][b] = alphabet[(rng >> (a * 7 + b)) % (sizeof alphabet - 1)];
                    alts[ne][a][7] = 0;
                    at[ne][a] = (tier_alt_t){alts[ne][a], 7, -(float)a};
                }
                evs[ne] = token(c, texts[ne], -0.3f, false);
                evs[ne].len = (uint32_t)len; /* may hold a NUL-free cut of UTF-8 */
                evs[ne].tok_len = (uint32_t)len;
                evs[ne].n_alts = na;
                evs[ne].alts = at[ne];
                ne++;
            }
            evs[ne++] = fin(c, (rng & 1) ? TIER_FINISH_LENGTH : TIER_FINISH_STOP, false);
        }
        evs[ne++] = usage(5, 7, 1);
        char whole_text[3][1024];
        for (int stream = 0; stream < 2; stream++) {
            sink_t s = {0};
            oai_writer_begin(&w, &(oai_writer_opts_t){"id\"x", "m\\n", 3, completions, stream, lp});
            for (int i = 0; i < ne; i++)
                assert_int_equal(oai_writer_event(&w, &evs[i], emit, &s), 0);
            if (!stream) {
                cJSON *j = answer(&w);
                assert_non_null(j);
                assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")),
                                 choices);
                for (int c = 0; c < choices; c++) {
                    char path[64];
                    snprintf(path, sizeof path,
                             completions ? "choices.%d.text" : "choices.%d.message.content", c);
                    const char *t = str_at(j, path);
                    assert_non_null(t);
                    snprintf(whole_text[c], sizeof whole_text[c], "%s", t);
                }
                cJSON_Delete(j);
            } else {
                char got[3][1024] = {"", "", ""};
                for (int i = 0; i < s.n; i++) {
                    const cJSON *ch = node_at(s.chunks[i], "choices.0");
                    if (!ch) continue;
                    int c = (int)cJSON_GetObjectItemCaseSensitive(ch, "index")->valuedouble;
                    const char *t = str_at(ch, completions ? "text" : "delta.content");
                    if (t) strncat(got[c], t, sizeof got[c] - strlen(got[c]) - 1);
                }
                for (int c = 0; c < choices; c++)
                    assert_string_equal(got[c], whole_text[c]);
            }
            sink_free(&s);
        }
    }
    oai_writer_deinit(&w);
}

/* Past the cap: an error, not a cut document. */
static void test_cap(void **state)
{
    (void)state;
    oai_writer_t w;
    oai_writer_init(&w);
    oai_writer_begin(&w, &(oai_writer_opts_t){"c", "edge", 1, false, false, false});
    static char big[1 << 20];
    memset(big, 'a', sizeof big - 1);
    int rc = 0;
    for (int i = 0; i < 20 && !rc; i++) {
        tier_ev_t ev = token(0, big, -0.1f, false);
        rc = oai_writer_event(&w, &ev, emit, NULL);
    }
    assert_int_equal(rc, SY_ETOOBIG);
    oai_writer_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_whole_and_streamed),
        cmocka_unit_test(test_tool_call_any_split),
        cmocka_unit_test(test_completions_echo_legacy),
        cmocka_unit_test(test_random_events_always_json),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
