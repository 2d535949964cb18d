/* test_route_router.c — router_decide stages and reason traces as plain calls, the
 * privacy invariant as a property over random tier states, decision JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "route/router.h"

static route_tier_t edge(void)
{
    return (route_tier_t){
        "edge", ROUTE_PRIVACY_ON_DEVICE, ROUTE_ROLE_EDGE, true, false, true, 0.05, 0.2, 0, 0};
}
static route_tier_t cloud(void)
{
    return (route_tier_t){
        "cloud", ROUTE_PRIVACY_EXTERNAL, ROUTE_ROLE_CLOUD, true, false, false, 2.5, 10,
        0,       ROUTE_CAPS_ALL};
}

typedef struct fx {
    route_config_t cfg;
    router_t *r;
    router_scratch_t *s;
    pii_scanner_t *pii;
} fx_t;

static void fx_init(fx_t *f, bool with_pii)
{
    memset(f, 0, sizeof *f);
    route_config_defaults(&f->cfg);
    char err[256];
    if (with_pii) {
        pii_options_t po = {NULL, 0.5f};
        f->pii = pii_scanner_new(&po, err, sizeof err);
        assert_non_null(f->pii);
    }
    f->r = router_new(&f->cfg, f->pii, err, sizeof err);
    assert_non_null(f->r);
    f->s = router_scratch_new(f->r);
}

static void fx_deinit(fx_t *f)
{
    router_scratch_free(f->s);
    router_free(f->r);
    pii_scanner_free(f->pii);
}

static bool has_reason(const route_decision_t *d, const char *prefix)
{
    for (int i = 0; i < d->n_reasons; i++)
        if (!strncmp(d->reasons[i], prefix, strlen(prefix))) return true;
    return false;
}

static int decide(fx_t *f, const char *text, route_input_t *in, const route_tier_t *t, size_t n,
                  route_decision_t *d)
{
    static route_text_t tx;
    tx = (route_text_t){"user", text, strlen(text)};
    in->texts = &tx;
    in->n_texts = 1;
    if (!in->n_messages) in->n_messages = 1;
    return router_decide(f->r, f->s, in, t, n, d);
}

/* ------------------------------------------------------------- stages --- */

static void test_forced(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {.forced_tier = "cloud"};
    assert_int_equal(decide(&f, "hello", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.tier, 1);
    assert_int_equal(d.n_order, 1); /* that tier only */
    assert_string_equal(d.reasons[0], "forced:cloud");

    in = (route_input_t){.forced_tier = "gpu9"};
    assert_int_equal(decide(&f, "hello", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EINVAL);
    assert_int_equal(d.n_order, 0);

    /* An external tier forced under local_only: a privacy refusal, never a reroute. */
    in = (route_input_t){.forced_tier = "cloud", .privacy_local_only = true};
    assert_int_equal(decide(&f, "hello", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EPRIVACY);
    assert_int_equal(d.refusal, ROUTE_REFUSE_FORCED_EXTERNAL);
    assert_int_equal(d.n_order, 0);
    assert_true(has_reason(&d, "skip:cloud(external)"));
    /* A forced tier is still no cascade: the client named the tier that answers. */
    in = (route_input_t){.forced_tier = "edge", .privacy_local_only = true};
    assert_int_equal(decide(&f, "hello", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_false(d.cascade);

    /* Forced and unhealthy: nothing else may serve. */
    t[1].healthy = false;
    in = (route_input_t){.forced_tier = "cloud"};
    assert_int_equal(decide(&f, "hello", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EUNAVAILABLE);
    assert_true(has_reason(&d, "skip:cloud(unhealthy)"));
    fx_deinit(&f);
}

static void test_pii_local_only(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {.max_tokens = 4000}; /* the budget would prefer the cloud */
    assert_int_equal(decide(&f, "please email jane.roe@example.com the report", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_true(d.local_only);
    assert_true(d.pii_types & (1u << PII_EMAIL_ADDRESS));
    assert_string_equal(d.reasons[0], "pii:EMAIL_ADDRESS->local_only");
    assert_int_equal(d.n_order, 1);
    assert_int_equal(d.order[0], 0);
    assert_true(d.degraded); /* cloud preferred, edge must serve */
    /* No cloud tier is eligible to escalate to, but the edge still scores its answer
     * so a low-confidence one is marked (the order holds no other tier). */
    assert_true(d.cascade);

    /* Edge down: a clear refusal, never the external tier. */
    t[0].healthy = false;
    assert_int_equal(decide(&f, "my card is 4111 1111 1111 1111", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EUNAVAILABLE);
    assert_int_equal(d.n_order, 0);
    fx_deinit(&f);
}

static void test_pii_block_and_allow(void **state)
{
    (void)state;
    fx_t f;
    memset(&f, 0, sizeof f);
    route_config_defaults(&f.cfg);
    f.cfg.pii_action[PII_EMAIL_ADDRESS] = ROUTE_PII_BLOCK;
    f.cfg.pii_action[PII_IP_ADDRESS] = ROUTE_PII_ALLOW;
    char err[256];
    pii_options_t po = {NULL, 0.5f};
    f.pii = pii_scanner_new(&po, err, sizeof err);
    f.r = router_new(&f.cfg, f.pii, err, sizeof err);
    f.s = router_scratch_new(f.r);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {0};
    assert_int_equal(decide(&f, "write to jane.roe@example.com", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EPRIVACY);
    assert_true(has_reason(&d, "pii:EMAIL_ADDRESS->block"));
    in = (route_input_t){0};
    assert_int_equal(decide(&f, "ping 192.168.10.77 and report", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_false(d.local_only);
    fx_deinit(&f);
}

static void test_client_and_session_flags(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    route_tier_t t[3] = {cloud(), edge(), edge()};
    t[2].name = "onprem";
    t[2].privacy = ROUTE_PRIVACY_ON_PREM;
    route_decision_t d;
    route_input_t in = {.privacy_local_only = true};
    assert_int_equal(decide(&f, "hi", &in, t, 3, &d), 0);
    assert_true(d.local_only);
    assert_true(has_reason(&d, "client:privacy->local_only"));
    assert_int_equal(d.n_order, 2);
    for (int i = 0; i < d.n_order; i++)
        assert_int_not_equal(d.order[i], 0);
    in = (route_input_t){.session_private = true};
    assert_int_equal(decide(&f, "hi", &in, t, 3, &d), 0);
    assert_true(has_reason(&d, "session:private->local_only"));
    fx_deinit(&f);
}

static void test_budget_and_task(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {.max_tokens = 2000};
    assert_int_equal(decide(&f, "tell me a story", &in, t, 2, &d), 0);
    assert_true(has_reason(&d, "budget:est_out=2000>1024->cloud"));
    assert_int_equal(d.tier, 1);
    assert_int_equal(d.n_order, 2); /* edge stays as failover */
    assert_int_equal(d.order[1], 0);

    /* Code markers without a classifier: complex, cloud. */
    in = (route_input_t){0};
    assert_int_equal(
        decide(&f, "```python\ndef f(x):\n    return x+1;\n```\nfix this code", &in, t, 2, &d), 0);
    assert_true(has_reason(&d, "task:code->cloud"));
    assert_int_equal(d.tier, 1);
    assert_string_equal(d.reasons[d.n_reasons - 1], "tier:cloud");

    /* Plain chat: edge, with a cascade (edge has logprobs, cloud eligible). */
    in = (route_input_t){0};
    assert_int_equal(decide(&f, "good morning, nice weather", &in, t, 2, &d), 0);
    assert_int_equal(d.tier, 0);
    assert_true(d.cascade);
    assert_false(d.degraded);
    fx_deinit(&f);
}

static void test_tier_state_and_degraded(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    route_tier_t t[2] = {edge(), cloud()};
    t[1].healthy = false;
    route_decision_t d;
    route_input_t in = {.max_tokens = 3000};
    assert_int_equal(decide(&f, "write an essay", &in, t, 2, &d), 0);
    assert_true(has_reason(&d, "skip:cloud(unhealthy)"));
    assert_int_equal(d.tier, 0);
    assert_true(d.degraded);
    t[1].healthy = true;
    t[1].saturated = true;
    assert_int_equal(decide(&f, "write an essay", &in, t, 2, &d), 0);
    assert_true(has_reason(&d, "skip:cloud(saturated)"));
    fx_deinit(&f);
}

/* A tiny need-of-cloud model: the bias alone sets the score, so the threshold
 * comparison and its reason are checked exactly. */
static void test_policy_score(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    route_model_t *m = route_model_new(ROUTE_MODEL_CLOUD, 1, 64, ROUTE_DENSE_CLOUD, 7);
    m->bias[0] = 0.8950f; /* sigmoid = 0.71 */
    m->threshold = 0.55f;
    assert_int_equal(router_set_cloud_model(f.r, m), 0);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {0};
    assert_int_equal(decide(&f, "what is the capital of France", &in, t, 2, &d), 0);
    assert_true(has_reason(&d, "policy:score=0.71>0.55->cloud"));
    assert_int_equal(d.tier, 1);
    /* A wrong-kind model is refused and the old one stays. */
    route_model_t *bad = route_model_new(ROUTE_MODEL_CLASSIFIER, ROUTE_TASK_COUNT, 64, 0, 7);
    assert_int_equal(router_set_cloud_model(f.r, bad), SY_EINVAL);
    route_model_free(bad);
    assert_ptr_equal(router_cloud_model(f.r), m);
    fx_deinit(&f);
}

/* ------------------------------------------------- privacy as a property --- */

static void check_invariants(const route_decision_t *d, const route_tier_t *t, size_t n)
{
    if (d->local_only)
        for (int i = 0; i < d->n_order; i++)
            assert_int_not_equal(t[d->order[i]].privacy, ROUTE_PRIVACY_EXTERNAL);
    for (int i = 0; i < d->n_order; i++) {
        assert_true(d->order[i] >= 0 && (size_t)d->order[i] < n);
        assert_true(t[d->order[i]].healthy && !t[d->order[i]].saturated);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(d->order[i], d->order[j]);
    }
    if (d->status == 0)
        assert_int_equal(d->tier, d->order[0]);
    else
        assert_int_equal(d->n_order, 0);
}

/* Every tier in the order has what the request needs and holds its context; a
 * capability or context refusal names only what was truly missing. */
static void check_caps(const route_decision_t *d, const route_input_t *in, const route_tier_t *t,
                       size_t n)
{
    for (int i = 0; i < d->n_order; i++) {
        const route_tier_t *x = &t[d->order[i]];
        assert_int_equal(in->needs & ~x->caps, 0);
        assert_true(!x->max_context || d->need_context <= x->max_context);
    }
    if (d->refusal == ROUTE_REFUSE_CAPABILITY) {
        assert_int_equal(d->status, SY_EUNSUPPORTED);
        assert_int_not_equal(d->caps_missing, 0);
        assert_int_equal(d->caps_missing & ~in->needs, 0);
        /* No tier the privacy rules allow has every needed capability. */
        for (size_t i = 0; i < n; i++)
            if (!d->local_only || t[i].privacy != ROUTE_PRIVACY_EXTERNAL)
                assert_int_not_equal(in->needs & ~t[i].caps, 0);
    }
}

static void test_privacy_property(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    route_config_t bc = f.cfg;
    bc.policy = ROUTE_POLICY_BANDIT;
    char err[128];
    router_t *rb = router_new(&bc, f.pii, err, sizeof err);
    router_scratch_t *sb = router_scratch_new(rb);
    static const char *const texts[] = {"call me at +1 415 555 0199 tomorrow", "hello there",
                                        "def f(): return 1", "SSN 078-05-1120 on file"};
    uint64_t rs = 42;
    size_t local_cases = 0, cap_refusals = 0, ctx_refusals = 0;
    for (int it = 0; it < 3000; it++) {
        route_tier_t t[ROUTE_MAX_TIERS];
        size_t n = 1 + hash_mix(++rs) % 8;
        for (size_t i = 0; i < n; i++) {
            uint64_t h = hash_mix(++rs);
            t[i] = (route_tier_t){"t",
                                  (route_privacy_t)(h % 3),
                                  (route_role_t)((h >> 2) & 1),
                                  ((h >> 3) & 3) != 0,
                                  ((h >> 5) & 3) == 0,
                                  (h >> 7) & 1,
                                  1,
                                  1,
                                  (h >> 9) & 1 ? 0 : 100 + (uint32_t)((h >> 10) % 4000),
                                  (uint32_t)(h >> 20) & ROUTE_CAPS_ALL};
        }
        uint64_t h = hash_mix(++rs);
        route_input_t in = {.privacy_local_only = h & 1,
                            .session_private = (h >> 1) & 1 && (h >> 2) & 1,
                            .max_tokens = (h >> 3) & 1 ? 4000 : 0,
                            .rand_seed = h,
                            .needs = (h >> 13) & 1 ? (uint32_t)(h >> 20) & ROUTE_CAPS_ALL : 0};
        const char *txt = texts[(h >> 8) % 4];
        route_text_t tx = {"user", txt, strlen(txt)};
        in.texts = &tx;
        in.n_texts = 1;
        route_decision_t d;
        bool bandit = (h >> 12) & 1;
        assert_int_equal(router_decide(bandit ? rb : f.r, bandit ? sb : f.s, &in, t, n, &d), 0);
        check_invariants(&d, t, n);
        check_caps(&d, &in, t, n);
        local_cases += d.local_only;
        cap_refusals += d.refusal == ROUTE_REFUSE_CAPABILITY;
        ctx_refusals += d.refusal == ROUTE_REFUSE_CONTEXT;
        if (bandit && d.status == 0) /* feedback that favours external arms */
            router_feedback(rb, &d.features, d.tier,
                            t[d.tier].privacy == ROUTE_PRIVACY_EXTERNAL ? 1.0 : -1.0);
    }
    assert_true(local_cases > 1000); /* the property was exercised */
    assert_true(cap_refusals > 50);
    assert_true(ctx_refusals > 20);
    router_scratch_free(sb);
    router_free(rb);
    fx_deinit(&f);
}

/* ------------------------------------------------------- capabilities --- */

static void test_capabilities(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;

    /* Tools only on the cloud: the edge is skipped, whatever the policy prefers. */
    route_input_t in = {.needs = 1u << ROUTE_CAP_TOOLS};
    assert_int_equal(decide(&f, "hi", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.tier, 1);
    assert_int_equal(d.n_order, 1);
    assert_true(has_reason(&d, "cap:tools"));
    assert_true(has_reason(&d, "skip:edge(no tools)"));
    assert_false(d.cascade); /* the edge cannot answer it, so it cannot start a cascade */

    /* Personal data keeps it local, and the local tier lacks tools: a refusal naming
     * the capability, never an answer that ignored the tools. */
    in = (route_input_t){.needs = 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_JSON};
    assert_int_equal(decide(&f, "mail jane.roe@example.com", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EUNSUPPORTED);
    assert_int_equal(d.refusal, ROUTE_REFUSE_CAPABILITY);
    assert_int_equal(d.caps_missing, 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_JSON);
    assert_int_equal(d.n_order, 0);
    assert_true(d.local_only);

    /* A forced tier without the capability is refused too. */
    in = (route_input_t){.forced_tier = "edge", .needs = 1u << ROUTE_CAP_VISION};
    assert_int_equal(decide(&f, "what is in this picture", &in, t, 2, &d), 0);
    assert_int_equal(d.refusal, ROUTE_REFUSE_CAPABILITY);
    assert_int_equal(d.caps_missing, 1u << ROUTE_CAP_VISION);

    /* Each capability somewhere, no tier with both: both are named. */
    t[0].caps = 1u << ROUTE_CAP_TOOLS;
    t[1].caps = 1u << ROUTE_CAP_VISION;
    in = (route_input_t){.needs = 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_VISION};
    assert_int_equal(decide(&f, "hi", &in, t, 2, &d), 0);
    assert_int_equal(d.refusal, ROUTE_REFUSE_CAPABILITY);
    assert_int_equal(d.caps_missing, 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_VISION);

    /* The edge with the capability serves personal data that needs it. */
    t[0].caps = ROUTE_CAPS_ALL;
    in = (route_input_t){.needs = 1u << ROUTE_CAP_TOOLS};
    assert_int_equal(decide(&f, "mail jane.roe@example.com", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.tier, 0);

    /* Context length: a tier that cannot hold prompt + max_tokens is skipped; when
     * none can, a refusal of its own. */
    t[0].max_context = 512;
    in = (route_input_t){.max_tokens = 600};
    assert_int_equal(decide(&f, "hi", &in, t, 2, &d), 0);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.tier, 1);
    assert_true(has_reason(&d, "skip:edge(context "));
    in = (route_input_t){.max_tokens = 600, .privacy_local_only = true};
    assert_int_equal(decide(&f, "hi", &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_ECONTEXT);
    assert_int_equal(d.refusal, ROUTE_REFUSE_CONTEXT);
    assert_true(d.need_context > 600);
    fx_deinit(&f);
}

/* Past the findings the router keeps per text, the rest are of unknown type: the
 * request fails closed even when every type it saw is allowed. */
static void test_unknown_past_cap(void **state)
{
    (void)state;
    fx_t f;
    memset(&f, 0, sizeof f);
    route_config_defaults(&f.cfg);
    f.cfg.pii_action[PII_EMAIL_ADDRESS] = ROUTE_PII_ALLOW;
    f.cfg.pii_action[PII_UNKNOWN] = ROUTE_PII_ALLOW; /* cannot be loosened */
    char err[256];
    pii_options_t po = {NULL, 0.5f};
    f.pii = pii_scanner_new(&po, err, sizeof err);
    f.r = router_new(&f.cfg, f.pii, err, sizeof err);
    f.s = router_scratch_new(f.r);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    char text[8192];
    size_t used = 0;
    for (int i = 0; i < 70; i++) {
        used +=
            (size_t)snprintf(text + used, sizeof text - used, "write to user%d@example.com. ", i);
        if (i == 9) {
            /* Ten findings: all allowed, the cloud may serve. */
            route_input_t in = {.forced_tier = "cloud"};
            assert_int_equal(decide(&f, text, &in, t, 2, &d), 0);
            assert_int_equal(d.status, 0);
            assert_false(d.pii_types & (1u << PII_UNKNOWN));
        }
    }
    route_input_t in = {0};
    assert_int_equal(decide(&f, text, &in, t, 2, &d), 0);
    assert_true(d.pii_types & (1u << PII_EMAIL_ADDRESS));
    assert_true(d.pii_types & (1u << PII_UNKNOWN));
    assert_true(d.local_only);
    assert_true(has_reason(&d, "pii:UNKNOWN->local_only"));
    assert_int_equal(d.tier, 0);
    in = (route_input_t){.forced_tier = "cloud"};
    assert_int_equal(decide(&f, text, &in, t, 2, &d), 0);
    assert_int_equal(d.refusal, ROUTE_REFUSE_FORCED_EXTERNAL);
    fx_deinit(&f);

    /* Under block, unknown findings are refused. */
    memset(&f, 0, sizeof f);
    route_config_defaults(&f.cfg);
    f.cfg.pii_action[PII_EMAIL_ADDRESS] = ROUTE_PII_ALLOW;
    f.cfg.pii_action[PII_UNKNOWN] = ROUTE_PII_BLOCK;
    f.pii = pii_scanner_new(&po, err, sizeof err);
    f.r = router_new(&f.cfg, f.pii, err, sizeof err);
    f.s = router_scratch_new(f.r);
    in = (route_input_t){0};
    assert_int_equal(decide(&f, text, &in, t, 2, &d), 0);
    assert_int_equal(d.status, SY_EPRIVACY);
    assert_int_equal(d.refusal, ROUTE_REFUSE_PII_BLOCKED);
    fx_deinit(&f);
}

/* ---------------------------------------------------------------- JSON --- */

static void test_json(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    route_tier_t t[2] = {edge(), cloud()};
    route_decision_t d;
    route_input_t in = {0};
    assert_int_equal(decide(&f, "email jane.roe@example.com please", &in, t, 2, &d), 0);
    buf_t b;
    buf_init(&b, 1 << 16);
    jsonw_t w;
    jsonw_init(&w, &b);
    route_decision_write_json(&d, t, &w);
    assert_int_equal(jsonw_error(&w), 0);
    assert_non_null(strstr(b.data, "\"tier\":\"edge\""));
    assert_non_null(strstr(b.data, "\"order\":[\"edge\"]"));
    assert_non_null(strstr(b.data, "\"local_only\":true"));
    assert_non_null(strstr(b.data, "\"pii\":[\"EMAIL_ADDRESS\"]"));
    assert_non_null(strstr(b.data, "\"reasons\":[\"pii:EMAIL_ADDRESS->local_only\""));
    assert_non_null(strstr(b.data, "\"features\":{"));
    buf_deinit(&b);
    fx_deinit(&f);
}

static void test_confidence(void **state)
{
    (void)state;
    route_confidence_t c0, c1, c2;
    float sure[] = {-0.01f, -0.02f, -0.05f, -0.01f};
    float unsure[] = {-1.5f, -2.0f, -0.9f, -3.5f};
    route_confidence(sure, 4, NULL, &c0);
    route_confidence(unsure, 4, NULL, &c1);
    route_confidence(NULL, 0, NULL, &c2);
    assert_true(c0.confidence > 0.8f && c0.confidence <= 1.0f);
    assert_true(c1.confidence < 0.2f && c1.confidence >= 0.0f);
    assert_true(c2.confidence == 0.5f);
    assert_true(c1.min_logprob == -3.5f);
    float ent[] = {0.1f, 0.1f, 0.1f, 0.1f};
    route_confidence(unsure, 4, ent, &c2);
    assert_true(c2.mean_entropy > 0.09f && c2.mean_entropy < 0.11f);
    assert_true(c2.confidence > c1.confidence); /* low entropy raises it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forced),
        cmocka_unit_test(test_pii_local_only),
        cmocka_unit_test(test_pii_block_and_allow),
        cmocka_unit_test(test_client_and_session_flags),
        cmocka_unit_test(test_budget_and_task),
        cmocka_unit_test(test_tier_state_and_degraded),
        cmocka_unit_test(test_policy_score),
        cmocka_unit_test(test_privacy_property),
        cmocka_unit_test(test_capabilities),
        cmocka_unit_test(test_unknown_past_cap),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_confidence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
