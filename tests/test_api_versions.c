/* test_api_versions.c — the versions report from ledger cells: sums per first
 * tier and version, served counts, pairs, the comparison against the latest earlier
 * version with enough requests, each drift threshold on both sides of its edge, and
 * the JSON and table it writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/versions.h"
#include "base/err.h"

/* A cell of n requests for edge version ver first seen at t, with k escalated to
 * cloud c1, e errors, mean confidence conf (< 0: none) and cost usd in all. */
static store_version_cell_t cell(const char *ver, int64_t t, uint64_t n, uint64_t k, uint64_t e,
                                 double conf, double usd)
{
    store_version_cell_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.first_tier, sizeof c.first_tier, "edge");
    snprintf(c.first_version, sizeof c.first_version, "%s", ver);
    snprintf(c.tier, sizeof c.tier, "edge");
    snprintf(c.version, sizeof c.version, "%s", ver);
    snprintf(c.cloud_tier, sizeof c.cloud_tier, "cloud");
    snprintf(c.cloud_version, sizeof c.cloud_version, "c1");
    c.first_ms = t;
    c.last_ms = t + 10;
    c.requests = n;
    c.escalated = k;
    c.errors = e;
    c.confidences = conf < 0 ? 0 : n;
    c.confidence_sum = conf < 0 ? 0 : conf * (double)n;
    c.cost_usd = usd;
    return c;
}

static config_drift_t th(void)
{
    config_drift_t d;
    config_drift_defaults(&d);
    d.min_requests = 100;
    return d;
}

static const versions_entry_t *find(const versions_report_t *r, const char *ver)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].version, ver)) return &r->v[i];
    fail_msg("version %s not in the report", ver);
    return NULL;
}

static void test_no_drift_within_thresholds(void **state)
{
    (void)state;
    config_drift_t d = th();
    /* Every figure moves, each just inside its threshold. */
    store_version_cell_t c[2] = {cell("v1", 1000, 100, 10, 0, 0.80, 1.0),
                                 cell("v2", 2000, 100, 19, 4, 0.71, 1.24)};
    versions_report_t r;
    assert_int_equal(versions_build(c, 2, &d, 0, &r), 0);
    assert_int_equal(r.n, 2);
    const versions_entry_t *v2 = find(&r, "v2");
    assert_string_equal(r.v[v2->previous].version, "v1");
    assert_false(v2->drift);
    assert_string_equal(v2->reasons, "");
    versions_report_free(&r);
}

static void test_each_threshold_flags(void **state)
{
    (void)state;
    config_drift_t d = th();
    struct {
        store_version_cell_t v2;
        const char *reason;
    } cases[] = {
        {cell("v2", 2000, 100, 21, 0, 0.80, 1.0), "escalation_rate"},
        {cell("v2", 2000, 100, 10, 0, 0.69, 1.0), "mean_confidence"},
        {cell("v2", 2000, 100, 10, 6, 0.80, 1.0), "error_rate"},
        {cell("v2", 2000, 100, 10, 0, 0.80, 1.26), "cost_per_request"},
        {cell("v2", 2000, 100, 10, 0, 0.80, 0.74), "cost_per_request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_version_cell_t c[2] = {cell("v1", 1000, 100, 10, 0, 0.80, 1.0), cases[i].v2};
        versions_report_t r;
        assert_int_equal(versions_build(c, 2, &d, 0, &r), 0);
        const versions_entry_t *v2 = find(&r, "v2");
        assert_true(v2->drift);
        assert_non_null(strstr(v2->reasons, cases[i].reason));
        assert_null(strchr(v2->reasons, ';')); /* that one reason only */
        versions_report_free(&r);
    }
}

/* A version below min_requests is neither judged nor used as the baseline; a
 * missing confidence is not compared. */
static void test_min_requests_and_baseline(void **state)
{
    (void)state;
    config_drift_t d = th();
    store_version_cell_t c[4] = {
        cell("v1", 1000, 150, 0, 0, 0.9, 1.0),
        cell("v2", 2000, 20, 20, 0, 0.1, 9.0),  /* too few to judge or to compare with */
        cell("v3", 3000, 120, 0, 0, -1, 0.8),   /* no confidences */
        cell("v4", 4000, 99, 99, 0, 0.1, 99.0), /* one short of min_requests */
    };
    versions_report_t r;
    assert_int_equal(versions_build(c, 4, &d, 0, &r), 0);
    assert_int_equal(r.n, 4);
    assert_false(find(&r, "v2")->drift);
    assert_string_equal(r.v[find(&r, "v2")->previous].version, "v1");
    const versions_entry_t *v3 = find(&r, "v3");
    assert_string_equal(r.v[v3->previous].version, "v1"); /* v2 skipped */
    assert_false(v3->drift); /* same cost per request; confidence not compared */
    const versions_entry_t *v4 = find(&r, "v4");
    assert_string_equal(r.v[v4->previous].version, "v3");
    assert_false(v4->drift);
    assert_int_equal(find(&r, "v1")->previous, -1);
    versions_report_free(&r);
}

/* Served counts go to the serving version; pairs sum per (edge, cloud) version;
 * the JSON carries nulls where a figure does not exist. */
static void test_served_pairs_json(void **state)
{
    (void)state;
    config_drift_t d = th();
    store_version_cell_t c[2] = {cell("v1", 1000, 10, 0, 0, 0.9, 0.1),
                                 cell("v1", 1005, 5, 5, 1, 0.2, 0.5)};
    snprintf(c[1].tier, sizeof c[1].tier, "cloud"); /* the escalated ones */
    snprintf(c[1].version, sizeof c[1].version, "c1");
    versions_report_t r;
    assert_int_equal(versions_build(c, 2, &d, 0, &r), 0);
    assert_int_equal(r.n, 2);
    const versions_entry_t *v1 = find(&r, "v1"), *c1 = find(&r, "c1");
    assert_int_equal(v1->requests, 15);
    assert_int_equal(v1->served, 10);
    assert_int_equal(v1->escalated, 5);
    assert_int_equal(v1->first_ms, 1000);
    assert_int_equal(v1->last_ms, 1015);
    assert_int_equal(c1->requests, 0);
    assert_int_equal(c1->served, 5);
    assert_int_equal(r.np, 1);
    assert_int_equal(r.p[0].requests, 15);
    assert_int_equal(r.p[0].escalated, 5);
    buf_t b;
    buf_init(&b, 1 << 20);
    jsonw_t j;
    jsonw_init(&j, &b);
    versions_write_json(&r, &j);
    cJSON *doc = cJSON_Parse(b.data);
    assert_non_null(doc);
    cJSON *vs = cJSON_GetObjectItem(doc, "versions");
    assert_int_equal(cJSON_GetArraySize(vs), 2);
    cJSON *cloud = cJSON_GetArrayItem(vs, 0); /* tiers in name order */
    assert_string_equal(cJSON_GetObjectItem(cloud, "tier")->valuestring, "cloud");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cloud, "error_rate")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cloud, "mean_confidence")));
    cJSON *edge = cJSON_GetArrayItem(vs, 1);
    assert_true(fabs(cJSON_GetObjectItem(edge, "escalation_rate")->valuedouble - 5.0 / 15) < 1e-9);
    assert_true(fabs(cJSON_GetObjectItem(edge, "mean_confidence")->valuedouble - (9.0 + 1.0) / 15) <
                1e-9);
    assert_true(fabs(cJSON_GetObjectItem(edge, "cost_per_request")->valuedouble - 0.6 / 15) < 1e-9);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(edge, "speculative_acceptance")));
    cJSON *pair = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "pairs"), 0);
    assert_string_equal(cJSON_GetObjectItem(pair, "edge_version")->valuestring, "v1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(pair, "acceptance_rate")));
    cJSON_Delete(doc);
    buf_deinit(&b);
    versions_report_free(&r);
}

/* More versions than a report holds is an error, not a silent cut. */
static void test_too_many(void **state)
{
    (void)state;
    config_drift_t d = th();
    size_t n = VERSIONS_MAX + 1;
    store_version_cell_t *c = calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%zu", i);
        c[i] = cell(v, (int64_t)i, 1, 0, 0, 0.5, 0);
        snprintf(c[i].tier, sizeof c[i].tier, "edge"); /* served by itself */
    }
    versions_report_t r;
    assert_int_equal(versions_build(c, n, &d, 0, &r), SY_ETOOBIG);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_drift_within_thresholds),
        cmocka_unit_test(test_each_threshold_flags),
        cmocka_unit_test(test_min_requests_and_baseline),
        cmocka_unit_test(test_served_pairs_json),
        cmocka_unit_test(test_too_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
