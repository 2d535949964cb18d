/* test_api_anthropic.c — Anthropic Messages bodies onto the typed request and back.
 *
 *  - a body using every mapped field parses into the typed request as documented;
 *  - parse then render for an anthropic tier gives back the same Messages request
 *    (model replaced, cache_control dropped): the round trip drops and invents nothing;
 *  - every string of the rendered body is the API's own constant or lies inside a
 *    string the privacy scan visited (what is scanned is what leaves);
 *  - bad bodies are refused with a message naming the path.
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

#include "api/anthropic.h"
#include "api/render.h"
#include "api/request.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"

static const char *FULL =
    "{\"model\":\"auto\",\"max_tokens\":64,"
    "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\",\"cache_control\":{\"type\":"
    "\"ephemeral\"}},{\"type\":\"text\",\"text\":\"Answer in English.\"}],"
    "\"messages\":["
    "{\"role\":\"user\",\"content\":\"Find cats\"},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Searching.\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"search\",\"input\":{\"q\":\"cats\","
    "\"n\":3}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
    "\"content\":\"12 cats\"},{\"type\":\"text\",\"text\":\"And this one?\"},"
    "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
    "\"data\":\"iVBORw0KGgo=\"}},"
    "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://img.test/c.png\"}}]}],"
    "\"tools\":[{\"name\":\"search\",\"description\":\"web search\",\"input_schema\":{\"type\":"
    "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}],"
    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"search\",\"disable_parallel_tool_use\":true},"
    "\"stop_sequences\":[\"END\",\"STOP\"],\"temperature\":0.25,\"top_p\":0.5,\"top_k\":9,"
    "\"stream\":true,\"metadata\":{\"user_id\":\"u-1\",\"team\":\"search\"}}";

typedef struct fx {
    arena_t a;
    api_request_t r;
    char err[512], param[96];
} fx_t;

static int parse(fx_t *f, const char *body)
{
    http_req_t hr = {
        .method = "POST", .path = "/v1/messages", .body = body, .body_len = strlen(body)};
    arena_init(&f->a, 16384);
    return api_anthropic_parse(&f->r, &hr, &f->a, f->err, sizeof f->err, f->param, sizeof f->param);
}

static void done(fx_t *f)
{
    api_request_deinit(&f->r);
    arena_deinit(&f->a);
}

static void test_typed(void **state)
{
    (void)state;
    fx_t f;
    int rc = parse(&f, FULL);
    if (rc) fail_msg("parse: %s", f.err);
    api_request_t *r = &f.r;
    assert_true(r->stream);
    assert_int_equal(r->max_tokens, 64);
    assert_string_equal(r->team, "search");
    /* system, user, assistant, tool, user */
    assert_int_equal(r->n_messages, 5);
    assert_string_equal(r->messages[0].role, "system");
    assert_int_equal(r->messages[0].n_parts, 2);
    assert_string_equal(r->messages[2].role, "assistant");
    assert_int_equal(r->messages[2].n_tool_calls, 1);
    assert_string_equal(r->messages[2].tool_calls[0].arguments->valuestring,
                        "{\"q\":\"cats\",\"n\":3}");
    assert_string_equal(r->messages[3].role, "tool");
    assert_string_equal(r->messages[3].tool_call_id->valuestring, "toolu_1");
    assert_string_equal(r->messages[4].role, "user");
    assert_int_equal(r->messages[4].n_parts, 3);
    assert_int_equal(r->messages[4].parts[1].kind, API_PART_IMAGE_URL);
    assert_string_equal(r->field[API_F_USER]->valuestring, "u-1");
    assert_true(cJSON_IsArray(r->field[API_F_STOP]));
    assert_true(cJSON_IsFalse(r->field[API_F_PARALLEL_TOOL_CALLS]));
    assert_true(r->num_set >> API_F_TEMPERATURE & 1);
    assert_true(r->num[API_F_TEMPERATURE] == 0.25);
    done(&f);
}

/* Removes every cache_control member, at any depth. */
static void strip_cache_control(cJSON *j)
{
    cJSON_DeleteItemFromObjectCaseSensitive(j, "cache_control");
    for (cJSON *c = j->child; c; c = c->next)
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) strip_cache_control(c);
}

static void test_round_trip(void **state)
{
    (void)state;
    fx_t f;
    assert_int_equal(parse(&f, FULL), 0);
    buf_t out;
    buf_init(&out, 1u << 20);
    /* forward_unknown: drop keeps top_k (in the unknown bag) home. */
    assert_int_equal(api_anthropic_render(&f.r, "claude-x", true, false, &out), 0);
    assert_null(strstr(out.data, "top_k"));
    buf_reset(&out);
    assert_int_equal(api_anthropic_render(&f.r, "claude-x", true, true, &out), 0);
    cJSON *got = cJSON_ParseWithLength(out.data, out.len);
    cJSON *want = cJSON_Parse(FULL);
    assert_non_null(got);
    strip_cache_control(want);
    cJSON_ReplaceItemInObjectCaseSensitive(want, "model", cJSON_CreateString("claude-x"));
    /* The user's tool_result and the blocks after it become two user turns (Anthropic
     * merges consecutive user turns back into one); switchyard's label stays home. */
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(want, "messages");
    cJSON *last = cJSON_DetachItemFromArray(msgs, 2);
    cJSON *blocks = cJSON_GetObjectItemCaseSensitive(last, "content");
    cJSON *tr = cJSON_DetachItemFromArray(blocks, 0);
    cJSON *turn = cJSON_CreateObject();
    cJSON_AddStringToObject(turn, "role", "user");
    cJSON *arr = cJSON_AddArrayToObject(turn, "content");
    cJSON_AddItemToArray(arr, tr);
    cJSON_AddItemToArray(msgs, turn);
    cJSON_AddItemToArray(msgs, last);
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(want, "metadata"),
                                            "team");
    if (!cJSON_Compare(got, want, true)) {
        char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(want);
        print_message("got  %s\nwant %s\n", a, b);
        free(a), free(b);
        fail();
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    buf_deinit(&out);
    done(&f);
}

/* ------------------------------------------------- what leaves was seen ---- */

typedef struct seen {
    char *all; /* every visited string, NUL-separated */
    size_t len, cap;
} seen_t;

static int on_str(void *arg, api_str_kind_t kind, int message, const char *s, size_t n)
{
    (void)kind, (void)message;
    seen_t *v = arg;
    if (v->len + n + 1 > v->cap) {
        v->cap = (v->len + n + 1) * 2;
        v->all = realloc(v->all, v->cap);
    }
    memcpy(v->all + v->len, s, n);
    v->all[v->len + n] = 0;
    v->len += n + 1;
    return 0;
}

static bool in_seen(const seen_t *v, const char *s)
{
    for (size_t at = 0; at < v->len; at += strlen(v->all + at) + 1)
        if (strstr(v->all + at, s)) return true;
    return false;
}

static const char *const constants[] = {
    "claude-x",  "text", "tool_use", "tool_result", "image", "base64", "url",  "user",
    "assistant", "tool", "object",   "type",        "auto",  "any",    "none", NULL};

static bool is_constant(const char *s)
{
    for (const char *const *c = constants; *c; c++)
        if (!strcmp(s, *c)) return true;
    return false;
}

/* Every string value (and every key of a free-form object) of j. */
static void check_strings(const cJSON *j, const seen_t *v, bool keys, int *bad)
{
    for (const cJSON *c = j->child; c; c = c->next) {
        if (keys && c->string && !is_constant(c->string) && !in_seen(v, c->string)) {
            print_message("key not scanned: %s\n", c->string);
            (*bad)++;
        }
        if (cJSON_IsString(c) && !is_constant(c->valuestring) && !in_seen(v, c->valuestring)) {
            print_message("value not scanned: %s\n", c->valuestring);
            (*bad)++;
        }
        bool free_form = c->string && (!strcmp(c->string, "input_schema") ||
                                       !strcmp(c->string, "input") || keys);
        if (c->child) check_strings(c, v, free_form, bad);
    }
}

static void test_rendered_strings_were_scanned(void **state)
{
    (void)state;
    fx_t f;
    assert_int_equal(parse(&f, FULL), 0);
    for (int fwd = 0; fwd < 2; fwd++) {
        seen_t v = {0};
        assert_int_equal(api_render_strings(&f.r, fwd, on_str, &v), 0);
        buf_t out;
        buf_init(&out, 1u << 20);
        assert_int_equal(api_anthropic_render(&f.r, "claude-x", false, fwd, &out), 0);
        cJSON *got = cJSON_ParseWithLength(out.data, out.len);
        int bad = 0;
        check_strings(got, &v, false, &bad);
        assert_int_equal(bad, 0);
        cJSON_Delete(got);
        buf_deinit(&out);
        free(v.all);
    }
    done(&f);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *body, *says;
    } cases[] = {
        {"{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Field required"},
        {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[]}", "at least one message"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":"
         "\"x\"}]}",
         "messages[0].role"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"document\"}]}]}",
         "messages[0].content[0]"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\",\"text\":\"x\",\"extra\":1}]}]}",
         "extra: Extra inputs are not permitted"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":\"x\"}]}]}",
         "input object"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"temperature\":1.5,\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "temperature"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"stop_sequences\":[\"1\",\"2\",\"3\",\"4\",\"5\"],"
         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "at most 4"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"tools\":[{\"type\":\"web_search_20250305\","
         "\"name\":\"w\"}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "only client tools"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"metadata\":{\"note\":\"x\"},\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "metadata.note"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"service_tier\":\"auto\",\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "service_tier is not supported"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"system\":\"a\",\"system\":\"b\",\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "duplicate key at system"},
        {"{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
         " trailing",
         "after the JSON value"},
        {"", "empty"},
        {"[1]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_t f;
        int rc = parse(&f, cases[i].body);
        if (!rc) fail_msg("case %zu accepted", i);
        assert_null(f.r.json);
        if (!strstr(f.err, cases[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, f.err, cases[i].says);
        arena_deinit(&f.a);
    }
}

static void test_render_refuses_what_messages_cannot_carry(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"input_audio\",\"input_audio\":{\"data\":\"x\",\"format\":\"wav\"}}]}]}",
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":"
        "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
    };
    for (size_t i = 0; i < 2; i++) {
        arena_t a;
        arena_init(&a, 16384);
        api_request_t r;
        char err[256], param[64];
        http_req_t hr = {.method = "POST",
                         .path = "/v1/chat/completions",
                         .body = bodies[i],
                         .body_len = strlen(bodies[i])};
        assert_int_equal(
            api_request_parse(&r, &hr, false, &a, err, sizeof err, param, sizeof param), 0);
        buf_t out;
        buf_init(&out, 1u << 20);
        int rc = api_anthropic_render(&r, "m", false, false, &out);
        assert_int_equal(rc, i == 0 ? SY_EUNSUPPORTED : SY_EINVAL);
        buf_deinit(&out);
        api_request_deinit(&r);
        arena_deinit(&a);
    }
}

/* A continuation to an anthropic tier: the text so far is the assistant's prefill,
 * the last message of the Messages body. */
static void test_render_prefill(void **state)
{
    (void)state;
    static const char body[] = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"Tell a story\"}]}";
    arena_t a;
    arena_init(&a, 16384);
    api_request_t r;
    char err[256], param[64];
    http_req_t hr = {
        .method = "POST", .path = "/v1/chat/completions", .body = body, .body_len = strlen(body)};
    assert_int_equal(api_request_parse(&r, &hr, false, &a, err, sizeof err, param, sizeof param),
                     0);
    r.prefill = "Once upon a time";
    r.prefill_len = strlen(r.prefill);
    buf_t out;
    buf_init(&out, 1u << 20);
    assert_int_equal(api_anthropic_render(&r, "m", true, false, &out), 0);
    cJSON *j = cJSON_Parse(out.data);
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    cJSON *last = cJSON_GetArrayItem(msgs, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "role")->valuestring, "assistant");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "content")->valuestring,
                        "Once upon a time");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "continue_final_message"));
    cJSON_Delete(j);
    buf_deinit(&out);
    api_request_deinit(&r);
    arena_deinit(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rendered_strings_were_scanned),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_render_refuses_what_messages_cannot_carry),
        cmocka_unit_test(test_render_prefill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
