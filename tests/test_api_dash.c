/* test_api_dash.c — the dashboard state: the recent-decisions ring, the routing-mix
 * buckets (reused after a full ring), percentiles from the histograms, tier health,
 * PII type lists and cost, read back through the JSON it writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "api/dash.h"
#include "base/clock.h"

static tier_t tiers[2];
static metrics_t metrics;
static dash_t dash;

static int setup(void **state)
{
    static const char *names[2] = {"edge", "cloud"};
    for (int i = 0; i < 2; i++) {
        tier_settings_t s;
        memset(&s, 0, sizeof s);
        s.name = names[i];
        s.model = "m";
        s.version = "";
        s.base_url = "http://127.0.0.1:1/v1";
        s.max_concurrency = 2;
        s.max_queue = 2;
        s.brk_failures = 3;
        s.brk_error_rate = 0.5;
        s.brk_window = 10;
        s.brk_open_ms = 60000;
        tier_init(&tiers[i], i, &s);
    }
    metrics_init(&metrics, 2);
    dash_init(&dash, 2);
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < 2; i++)
        tier_deinit(&tiers[i]);
    return 0;
}

static cJSON *snapshot(int64_t now_ms)
{
    buf_t b;
    buf_init(&b, 1u << 20);
    dash_write(&dash, &metrics, tiers, 2, now_ms, &b);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    buf_deinit(&b);
    assert_non_null(j);
    return j;
}

static void test_recent_ring_keeps_last_50_newest_first(void **state)
{
    int64_t t0 = 1700000000000;
    for (int i = 0; i < 60; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        dash_record(&dash, t0, id, t0 + i, i % 3 == 2 ? -1 : i % 2, i % 3 == 2 ? 503 : 200,
                    "tier:x", i == 59 ? "EMAIL_ADDRESS,PHONE_NUMBER" : "", 0.5, 1.0);
    }
    cJSON *j = snapshot(t0);
    cJSON *rec = cJSON_GetObjectItem(j, "recent");
    assert_int_equal(cJSON_GetArraySize(rec), DASH_RECENT);
    cJSON *first = cJSON_GetArrayItem(rec, 0), *last = cJSON_GetArrayItem(rec, DASH_RECENT - 1);
    assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "r59");
    assert_string_equal(cJSON_GetObjectItem(last, "id")->valuestring, "r10");
    cJSON *pii = cJSON_GetObjectItem(first, "pii");
    assert_int_equal(cJSON_GetArraySize(pii), 2);
    assert_string_equal(cJSON_GetArrayItem(pii, 1)->valuestring, "PHONE_NUMBER");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(last, "pii")), 0);
    /* r59: 59 % 3 == 2, no tier */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(first, "tier")));
    assert_int_equal(cJSON_GetObjectItem(first, "status")->valueint, 503);
    /* cost: only the 40 requests a tier served count */
    cJSON *cost = cJSON_GetObjectItem(j, "cost");
    assert_float_equal(cJSON_GetObjectItem(cost, "cost_usd")->valuedouble, 20.0, 1e-9);
    assert_float_equal(cJSON_GetObjectItem(cost, "all_cloud_usd")->valuedouble, 40.0, 1e-9);
    assert_float_equal(cJSON_GetObjectItem(cost, "saved_usd")->valuedouble, 20.0, 1e-9);
    /* the mix: one bucket, the last, with 20 + 20 + 20 */
    cJSON *counts = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mix"), "counts");
    assert_int_equal(cJSON_GetArraySize(counts), DASH_BUCKETS);
    cJSON *now = cJSON_GetArrayItem(counts, DASH_BUCKETS - 1);
    for (int c = 0; c < 3; c++)
        assert_int_equal(cJSON_GetArrayItem(now, c)->valueint, 20);
    cJSON_Delete(j);
}

static void test_mix_bucket_reused_after_a_full_ring(void **state)
{
    int64_t t0 = 1700000000000, ring = (int64_t)DASH_BUCKETS * DASH_BUCKET_S * 1000;
    dash_record(&dash, t0, "a", t0, 0, 200, "", "", 0, 0);
    dash_record(&dash, t0, "b", t0, 0, 200, "", "", 0, 0);
    dash_record(&dash, t0 + DASH_BUCKET_S * 1000, "c", t0, 1, 200, "", "", 0, 0);
    cJSON *j = snapshot(t0 + DASH_BUCKET_S * 1000);
    cJSON *counts = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mix"), "counts");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(counts, DASH_BUCKETS - 2), 0)->valueint,
                     2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(counts, DASH_BUCKETS - 1), 1)->valueint,
                     1);
    cJSON_Delete(j);
    /* a full ring later the same slot starts over; the old buckets left the window */
    dash_record(&dash, t0 + ring, "d", t0, 1, 200, "", "", 0, 0);
    j = snapshot(t0 + ring);
    counts = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mix"), "counts");
    int total = 0;
    for (int b = 0; b < DASH_BUCKETS; b++)
        for (int c = 0; c < 3; c++)
            total += cJSON_GetArrayItem(cJSON_GetArrayItem(counts, b), c)->valueint;
    assert_int_equal(total,
                     2); /* "c" is still in the window (its oldest bucket), "a" and "b" not */
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(counts, 0), 1)->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(counts, DASH_BUCKETS - 1), 1)->valueint,
                     1);
    cJSON_Delete(j);
}

static void test_percentiles_and_tier_state(void **state)
{
    for (int i = 0; i < 90; i++)
        metrics_hist_observe(&metrics.total[0], 3000000); /* 3 ms: bucket (2.5, 5] ms */
    for (int i = 0; i < 10; i++)
        metrics_hist_observe(&metrics.total[0], 700000000); /* 0.7 s: bucket (0.5, 1] s */
    metrics_count_request(&metrics, 0, 200);
    metrics_count_request(&metrics, 0, 502);
    uint64_t now = clock_mono_ms();
    for (int i = 0; i < 3; i++)
        tier_breaker_record(&tiers[1], false, now);
    cJSON *j = snapshot(1700000000000);
    cJSON *edge = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tiers"), 0);
    cJSON *cloud = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tiers"), 1);
    cJSON *lat = cJSON_GetObjectItem(edge, "latency_s");
    double p50 = cJSON_GetObjectItem(lat, "p50")->valuedouble;
    double p99 = cJSON_GetObjectItem(lat, "p99")->valuedouble;
    assert_true(p50 > 0.0025 && p50 <= 0.005);
    assert_true(p99 > 0.5 && p99 <= 1.0);
    assert_int_equal(cJSON_GetObjectItem(lat, "n")->valueint, 100);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(edge, "ttft_s"), "p50")));
    assert_int_equal(cJSON_GetObjectItem(edge, "requests")->valueint, 2);
    cJSON *by = cJSON_GetObjectItem(edge, "by_status");
    assert_int_equal(cJSON_GetObjectItem(by, "2xx")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(by, "5xx")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(edge, "circuit")->valuestring, "closed");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(edge, "healthy")));
    assert_string_equal(cJSON_GetObjectItem(cloud, "circuit")->valuestring, "open");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cloud, "healthy")));
    cJSON_Delete(j);
}

static void test_long_fields_are_capped(void **state)
{
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    dash_record(&dash, 1700000000000, big, 1, 0, 200, big, big, 0, 0);
    cJSON *j = snapshot(1700000000000);
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "recent"), 0);
    assert_int_equal(strlen(cJSON_GetObjectItem(r, "id")->valuestring),
                     sizeof dash.recent[0].id - 1);
    assert_int_equal(strlen(cJSON_GetObjectItem(r, "reasons")->valuestring), DASH_REASONS - 1);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recent_ring_keeps_last_50_newest_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mix_bucket_reused_after_a_full_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percentiles_and_tier_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_fields_are_capped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
