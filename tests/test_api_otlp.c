/* test_api_otlp.c — W3C traceparent parsing (valid, each kind of malformed), the
 * OTLP JSON encoding of a span tree (ids in hex, times as strings, typed attribute
 * values, parent ids, events), the fixed-size trace record's limits, and the
 * exporter's bounded queue counting what it drops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/otlp.h"
#include "base/err.h"

static void test_traceparent(void **state)
{
    (void)state;
    uint8_t tid[16], sid[8], fl;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(otlp_traceparent_parse(ok, strlen(ok), tid, sid, &fl), 0);
    assert_int_equal(tid[0], 0x4b);
    assert_int_equal(tid[15], 0x36);
    assert_int_equal(sid[0], 0x00);
    assert_int_equal(sid[7], 0xb7);
    assert_int_equal(fl, 1);
    /* A later version may carry more fields after a '-'. */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    assert_int_equal(otlp_traceparent_parse(v1, strlen(v1), tid, sid, &fl), 0);
    const char *bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* no flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 has no more */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(otlp_traceparent_parse(bad[i], strlen(bad[i]), tid, sid, &fl), SY_EPARSE);
    assert_int_equal(otlp_traceparent_parse(NULL, 0, tid, sid, &fl), SY_EPARSE);
}

static cJSON *attr_value(cJSON *span, const char *key)
{
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(span, "attributes"))
    {
        if (!strcmp(cJSON_GetObjectItem(a, "key")->valuestring, key))
            return cJSON_GetObjectItem(a, "value");
    }
    return NULL;
}

static void test_encode_tree(void **state)
{
    (void)state;
    static otlp_trace_t t;
    uint8_t tid[16], parent[8] = {1, 2, 3, 4, 5, 6, 7, 8}, a[8] = {0xaa}, b[8] = {0xbb};
    for (int i = 0; i < 16; i++)
        tid[i] = (uint8_t)(i * 17);
    otlp_trace_init(&t, tid, parent);
    int root = otlp_span_add(&t, -1, a, "POST /v1/chat/completions", OTLP_KIND_SERVER,
                             1700000000000000000ull, 1700000000500000000ull);
    otlp_attr_str(&t, "switchyard.tier", "edge \"quoted\"");
    otlp_attr_int(&t, "gen_ai.usage.input_tokens", 12);
    otlp_attr_double(&t, "switchyard.cost_usd", 0.25);
    otlp_attr_bool(&t, "switchyard.escalated", true);
    t.spans[root].event_ns = 1700000000100000000ull;
    t.spans[root].event_name = "first_token";
    int kid = otlp_span_add(&t, root, b, "decision", OTLP_KIND_INTERNAL, 5, 3); /* end < start */
    assert_int_equal(kid, 1);
    t.spans[kid].status = OTLP_STATUS_ERROR;
    buf_t out;
    buf_init(&out, 1 << 20);
    assert_int_equal(otlp_encode(&t, 1, "svc", &out), 0);
    cJSON *doc = cJSON_Parse(out.data);
    assert_non_null(doc);
    cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "resourceSpans"), 0);
    cJSON *svc = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"), "attributes"), 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(svc, "value"), "stringValue")->valuestring, "svc");
    cJSON *spans =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(cJSON_GetArraySize(spans), 2);
    cJSON *r = cJSON_GetArrayItem(spans, 0), *k = cJSON_GetArrayItem(spans, 1);
    assert_string_equal(cJSON_GetObjectItem(r, "traceId")->valuestring,
                        "00112233445566778899aabbccddeeff");
    assert_string_equal(cJSON_GetObjectItem(r, "spanId")->valuestring, "aa00000000000000");
    assert_string_equal(cJSON_GetObjectItem(r, "parentSpanId")->valuestring, "0102030405060708");
    assert_string_equal(cJSON_GetObjectItem(k, "parentSpanId")->valuestring, "aa00000000000000");
    assert_int_equal(cJSON_GetObjectItem(r, "kind")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(r, "startTimeUnixNano")->valuestring,
                        "1700000000000000000");
    assert_string_equal(cJSON_GetObjectItem(k, "endTimeUnixNano")->valuestring, "5");
    assert_string_equal(
        cJSON_GetObjectItem(attr_value(r, "switchyard.tier"), "stringValue")->valuestring,
        "edge \"quoted\"");
    assert_string_equal(
        cJSON_GetObjectItem(attr_value(r, "gen_ai.usage.input_tokens"), "intValue")->valuestring,
        "12");
    assert_true(
        cJSON_GetObjectItem(attr_value(r, "switchyard.cost_usd"), "doubleValue")->valuedouble ==
        0.25);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(attr_value(r, "switchyard.escalated"), "boolValue")));
    cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "events"), 0);
    assert_string_equal(cJSON_GetObjectItem(ev, "name")->valuestring, "first_token");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "status"), "code")->valueint, 2);
    assert_null(cJSON_GetObjectItem(k, "events"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(k, "attributes")), 0);
    cJSON_Delete(doc);
    /* Without a remote parent the root has no parentSpanId. */
    otlp_trace_init(&t, tid, NULL);
    otlp_span_add(&t, -1, a, "x", OTLP_KIND_SERVER, 1, 2);
    buf_reset(&out);
    assert_int_equal(otlp_encode(&t, 1, "svc", &out), 0);
    assert_null(strstr(out.data, "parentSpanId"));
    buf_deinit(&out);
}

/* A full record refuses more spans and attributes; a long string is cut to the pool
 * at a UTF-8 boundary. */
static void test_limits(void **state)
{
    (void)state;
    static otlp_trace_t t;
    uint8_t tid[16] = {1}, id[8] = {1};
    otlp_trace_init(&t, tid, NULL);
    for (int i = 0; i < OTLP_MAX_SPANS; i++)
        assert_int_equal(otlp_span_add(&t, -1, id, "s", OTLP_KIND_INTERNAL, 1, 2), i);
    assert_int_equal(otlp_span_add(&t, -1, id, "s", OTLP_KIND_INTERNAL, 1, 2), -1);
    for (int i = 0; i < OTLP_MAX_ATTRS + 5; i++)
        otlp_attr_int(&t, "k", i);
    assert_int_equal(t.n_attrs, OTLP_MAX_ATTRS);
    char big[OTLP_POOL * 2];
    for (size_t i = 0; i + 2 < sizeof big; i += 2)
        big[i] = (char)0xc3, big[i + 1] = (char)0xa9; /* "é" repeated */
    big[sizeof big - 2] = 0;
    otlp_trace_init(&t, tid, NULL);
    otlp_span_add(&t, -1, id, "n", OTLP_KIND_INTERNAL, 1, 2); /* 1 byte of the pool */
    otlp_attr_str(&t, "k", big);
    assert_true(t.pool_len <= OTLP_POOL);
    assert_int_equal(t.attrs[0].len % 2, 0); /* whole characters only */
}

/* Nothing listens at the endpoint: every span is counted as dropped, whether the
 * queue was full at submit or the POST failed; an https endpoint is refused. */
static void test_exporter_drops(void **state)
{
    (void)state;
    otlp_opts_t o = {"http://127.0.0.1:1", "svc", 2, 2, 10, 500};
    char err[200];
    otlp_t *x = otlp_new(&o, err, sizeof err);
    assert_non_null(x);
    static otlp_trace_t t;
    uint8_t tid[16] = {1}, id[8] = {1};
    otlp_trace_init(&t, tid, NULL);
    otlp_span_add(&t, -1, id, "a", OTLP_KIND_SERVER, 1, 2);
    otlp_span_add(&t, 0, id, "b", OTLP_KIND_INTERNAL, 1, 2);
    for (int i = 0; i < 20; i++) {
        int rc = otlp_submit(x, &t);
        assert_true(rc == 0 || rc == SY_EFULL);
    }
    /* Refused at submit or lost in a failed POST: every span is counted. */
    for (int i = 0; i < 400 && otlp_dropped(x) < 40; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(otlp_dropped(x), 40);
    assert_int_equal(otlp_exported(x), 0);
    otlp_free(x);
    o.endpoint = "https://example.org";
    assert_null(otlp_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "http://"));
}

/* The counters after a run against a closed port add up to every span submitted. */
static void test_exporter_counts(void **state)
{
    (void)state;
    otlp_opts_t o = {"http://127.0.0.1:1/", "svc", 4, 4, 10, 500};
    char err[200];
    otlp_t *x = otlp_new(&o, err, sizeof err);
    assert_non_null(x);
    static otlp_trace_t t;
    uint8_t tid[16] = {1}, id[8] = {1};
    otlp_trace_init(&t, tid, NULL);
    otlp_span_add(&t, -1, id, "a", OTLP_KIND_SERVER, 1, 2);
    otlp_span_add(&t, 0, id, "b", OTLP_KIND_INTERNAL, 1, 2);
    otlp_span_add(&t, 0, id, "c", OTLP_KIND_INTERNAL, 1, 2);
    for (int i = 0; i < 10; i++)
        otlp_submit(x, &t);
    /* Wait for the thread to settle every trace (failed POSTs count as they happen). */
    for (int i = 0; i < 400 && otlp_dropped(x) < 30; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(otlp_dropped(x), 30);
    assert_int_equal(otlp_exported(x), 0);
    otlp_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent),     cmocka_unit_test(test_encode_tree),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_exporter_drops),
        cmocka_unit_test(test_exporter_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
