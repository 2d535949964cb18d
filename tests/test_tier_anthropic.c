/* test_tier_anthropic.c — Anthropic answers into the OpenAI chat shape exec reads:
 * a whole message (text, tool_use, stop reasons, usage) and a stream of events
 * (text and input_json deltas, finish and usage chunks, error events, garbage).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/err.h"
#include "tier/anthropic.h"

static cJSON *answer(const char *body)
{
    buf_t out;
    buf_init(&out, 1u << 20);
    int rc = tier_anthropic_answer(body, strlen(body), 1700000000, &out);
    cJSON *j = rc ? NULL : cJSON_ParseWithLength(out.data, out.len);
    buf_deinit(&out);
    return j;
}

static const char *path_str(cJSON *j, const char *p)
{
    /* "a.b.0.c" */
    char k[64];
    while (j && *p) {
        size_t n = strcspn(p, ".");
        snprintf(k, sizeof k, "%.*s", (int)n, p);
        j = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, atoi(k))
                             : cJSON_GetObjectItemCaseSensitive(j, k);
        p += n + (p[n] == '.');
    }
    return cJSON_IsString(j) ? j->valuestring : cJSON_IsNumber(j) ? "<num>" : NULL;
}

static double path_num(cJSON *j, const char *obj, const char *k)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(j, obj);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_answer_text_and_tools(void **state)
{
    (void)state;
    cJSON *j = answer("{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                      "\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":\"Hello \"},{\"type\":"
                      "\"thinking\",\"thinking\":\"hm\"},{\"type\":\"text\",\"text\":\"world\"},{"
                      "\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":[1,"
                      "\"x\"]}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{"
                      "\"input_tokens\":11,\"output_tokens\":7}}");
    assert_non_null(j);
    assert_string_equal(path_str(j, "object"), "chat.completion");
    assert_string_equal(path_str(j, "model"), "claude-x");
    assert_string_equal(path_str(j, "choices.0.message.content"), "Hello world");
    assert_string_equal(path_str(j, "choices.0.message.tool_calls.0.id"), "t1");
    assert_string_equal(path_str(j, "choices.0.message.tool_calls.0.function.name"), "f");
    assert_string_equal(path_str(j, "choices.0.message.tool_calls.0.function.arguments"),
                        "{\"a\":[1,\"x\"]}");
    assert_string_equal(path_str(j, "choices.0.finish_reason"), "tool_calls");
    assert_true(path_num(j, "usage", "prompt_tokens") == 11);
    assert_true(path_num(j, "usage", "completion_tokens") == 7);
    assert_true(path_num(j, "usage", "total_tokens") == 18);
    cJSON_Delete(j);

    j = answer("{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}],"
               "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\",\"usage\":{}}");
    assert_string_equal(path_str(j, "choices.0.finish_reason"), "stop");
    assert_string_equal(path_str(j, "choices.0.stop_sequence"), "END");
    cJSON_Delete(j);
    j = answer("{\"type\":\"message\",\"content\":[],\"stop_reason\":\"max_tokens\"}");
    assert_string_equal(path_str(j, "choices.0.finish_reason"), "length");
    assert_null(path_str(j, "choices.0.message.content")); /* null, no text */
    cJSON_Delete(j);
    /* Not a message: refused (exec fails the attempt over). */
    buf_t out;
    buf_init(&out, 1024);
    assert_int_equal(tier_anthropic_answer("{\"type\":\"error\"}", 16, 0, &out), SY_EPARSE);
    assert_int_equal(tier_anthropic_answer("[]", 2, 0, &out), SY_EPARSE);
    assert_int_equal(tier_anthropic_answer("{\"content\":\"x\"}", 15, 0, &out), SY_EPARSE);
    buf_deinit(&out);
}

typedef struct got {
    char chunks[32][512];
    int n;
} got_t;

static void emit(void *arg, const char *json, size_t n)
{
    got_t *g = arg;
    assert_true(g->n < 32 && n < 512);
    memcpy(g->chunks[g->n], json, n);
    g->chunks[g->n++][n] = 0;
}

static int feed(tier_anthropic_stream_t *s, got_t *g, const char *data)
{
    buf_t b;
    buf_init(&b, 1u << 16);
    char err[200] = "";
    int rc = tier_anthropic_stream_event(s, NULL, data, strlen(data), &b, emit, g, err, sizeof err);
    if (rc == SY_EUPSTREAM) assert_non_null(strstr(err, "overloaded_error: Overloaded"));
    buf_deinit(&b);
    return rc;
}

static void test_stream(void **state)
{
    (void)state;
    tier_anthropic_stream_t s;
    tier_anthropic_stream_reset(&s, 1700000000);
    got_t g = {.n = 0};
    assert_int_equal(
        feed(&s, &g,
             "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"model\":\"cx\","
             "\"usage\":{\"input_tokens\":21,\"output_tokens\":1}}}"),
        0);
    assert_int_equal(feed(&s, &g, "{\"type\":\"ping\"}"), 0);
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{"
                          "\"type\":\"text\",\"text\":\"\"}}"),
                     0);
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                          "\"text_delta\",\"text\":\"Hi \\\"there\\\"\"}}"),
                     0);
    assert_int_equal(feed(&s, &g, "{\"type\":\"content_block_stop\",\"index\":0}"), 0);
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
                          "\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}}"),
                     0);
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                          "\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}"),
                     0);
    assert_int_equal(feed(&s, &g, "{\"type\":\"content_block_stop\",\"index\":1}"), 0);
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
                          "\"usage\":{\"output_tokens\":15}}"),
                     0);
    assert_int_equal(feed(&s, &g, "{\"type\":\"message_stop\"}"), 0);
    /* role, text, tool start, tool args, finish, usage */
    assert_int_equal(g.n, 6);
    cJSON *c[6];
    for (int i = 0; i < 6; i++) {
        c[i] = cJSON_Parse(g.chunks[i]);
        assert_non_null(c[i]);
        assert_string_equal(path_str(c[i], "id"), "msg_9");
        assert_string_equal(path_str(c[i], "object"), "chat.completion.chunk");
        assert_string_equal(path_str(c[i], "model"), "cx");
    }
    assert_string_equal(path_str(c[0], "choices.0.delta.role"), "assistant");
    assert_string_equal(path_str(c[1], "choices.0.delta.content"), "Hi \"there\"");
    assert_string_equal(path_str(c[2], "choices.0.delta.tool_calls.0.id"), "t1");
    assert_string_equal(path_str(c[2], "choices.0.delta.tool_calls.0.function.name"), "f");
    assert_string_equal(path_str(c[2], "choices.0.delta.tool_calls.0.index"), "<num>");
    assert_string_equal(path_str(c[3], "choices.0.delta.tool_calls.0.function.arguments"),
                        "{\"a\":");
    assert_string_equal(path_str(c[4], "choices.0.finish_reason"), "tool_calls");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c[5], "choices")), 0);
    assert_true(path_num(c[5], "usage", "prompt_tokens") == 21);
    assert_true(path_num(c[5], "usage", "completion_tokens") == 15);
    for (int i = 0; i < 6; i++)
        cJSON_Delete(c[i]);
    /* An error event, garbage and unknown types stop the stream. */
    assert_int_equal(feed(&s, &g,
                          "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                          "\"message\":\"Overloaded\"}}"),
                     SY_EUPSTREAM);
    assert_int_equal(feed(&s, &g, "not json"), SY_EPARSE);
    assert_int_equal(feed(&s, &g, "{\"type\":\"surprise\"}"), SY_EPARSE);
    assert_int_equal(feed(&s, &g, "{\"type\":\"message_start\"}"), SY_EPARSE);
}

static void test_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(tier_anthropic_finish_reason("end_turn"), "stop");
    assert_string_equal(tier_anthropic_finish_reason("stop_sequence"), "stop");
    assert_string_equal(tier_anthropic_finish_reason("max_tokens"), "length");
    assert_string_equal(tier_anthropic_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(tier_anthropic_finish_reason("refusal"), "content_filter");
    assert_string_equal(tier_anthropic_finish_reason(NULL), "stop");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_text_and_tools),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_finish_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
