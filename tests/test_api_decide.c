/* test_api_decide.c — the one decision path's pieces: capabilities a request needs,
 * the forced tier a request names, the answer for each refusal, and what the
 * ledger records per PII type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/decide.h"
#include "api/render.h"
#include "base/err.h"

static const char *yaml = "tiers:\n"
                          "  edge:\n"
                          "    kind: local\n"
                          "    model: m.gguf\n"
                          "    max_context: 1024\n"
                          "  cloud:\n"
                          "    kind: openai\n"
                          "    base_url: http://127.0.0.1:1/v1\n"
                          "    model: big\n"
                          "    privacy: external\n"
                          "    cost: { usd_per_mtok_in: 2, usd_per_mtok_out: 8 }\n";

typedef struct fx {
    config_t cfg;
    arena_t arena;
    api_request_t req;
    bool parsed;
} fx_t;

static int setup(void **state)
{
    static fx_t f;
    memset(&f, 0, sizeof f);
    char err[256];
    if (config_load_string(&f.cfg, yaml, strlen(yaml), "t.yaml", err, sizeof err)) return -1;
    arena_init(&f.arena, 4096);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->parsed) api_request_deinit(&f->req);
    arena_deinit(&f->arena);
    config_deinit(&f->cfg);
    return 0;
}

/* Parses body as POST /v1/route does. */
static api_request_t *parse(fx_t *f, const char *body)
{
    if (f->parsed) api_request_deinit(&f->req);
    arena_reset(&f->arena);
    http_req_t hr = {
        .method = "POST", .path = "/v1/route", .query = "", .body = body, .body_len = strlen(body)};
    char err[256], param[64];
    int rc =
        api_request_parse(&f->req, &hr, false, &f->arena, err, sizeof err, param, sizeof param);
    if (rc) fail_msg("parse %s: %s", body, err);
    f->parsed = true;
    return &f->req;
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_needs(void **state)
{
    fx_t *f = *state;
    const uint32_t T = 1u << ROUTE_CAP_TOOLS, J = 1u << ROUTE_CAP_JSON, V = 1u << ROUTE_CAP_VISION,
                   A = 1u << ROUTE_CAP_AUDIO;
    struct {
        const char *body;
        uint32_t needs;
    } cases[] = {
        {"{\"model\":\"auto\"," MSG "}", 0},
        {"{\"model\":\"auto\"," MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
         "\"f\"}}]}",
         T},
        {"{\"model\":\"auto\"," MSG ",\"tools\":[]}", 0},
        {"{\"model\":\"auto\"," MSG ",\"functions\":[{\"name\":\"f\"}]}", T},
        {"{\"model\":\"auto\"," MSG ",\"response_format\":{\"type\":\"json_object\"}}", J},
        {"{\"model\":\"auto\"," MSG ",\"response_format\":{\"type\":\"json_schema\","
         "\"json_schema\":{\"name\":\"x\",\"schema\":{}}}}",
         J},
        {"{\"model\":\"auto\"," MSG ",\"response_format\":{\"type\":\"text\"}}", 0},
        {"{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
         "\"text\":\"see\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/a.png\"}}]"
         "}]}",
         V},
        {"{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
         "\"input_audio\",\"input_audio\":{\"data\":\"AA\",\"format\":\"wav\"}}]}]}",
         A},
        {"{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\","
         "\"file\":{\"file_id\":\"f1\"}}]}]}",
         V},
        {"{\"model\":\"auto\"," MSG ",\"modalities\":[\"text\",\"audio\"],\"audio\":{\"voice\":"
         "\"alloy\",\"format\":\"wav\"}}",
         A},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t got = api_request_needs(parse(f, cases[i].body));
        if (got != cases[i].needs)
            fail_msg("case %zu: needs 0x%x, want 0x%x: %s", i, got, cases[i].needs, cases[i].body);
    }
}

static void test_forced_tier(void **state)
{
    fx_t *f = *state;
    assert_null(api_request_forced_tier(&f->cfg, parse(f, "{\"model\":\"auto\"," MSG "}")));
    assert_null(api_request_forced_tier(&f->cfg, parse(f, "{\"model\":\"gpt-4o\"," MSG "}")));
    /* Not a tier, not switchyard/, no alias: refused by the router as model_not_found. */
    assert_string_equal(
        api_request_unknown_model(&f->cfg, parse(f, "{\"model\":\"gpt-4o\"," MSG "}")), "gpt-4o");
    assert_null(api_request_unknown_model(&f->cfg, parse(f, "{\"model\":\"auto\"," MSG "}")));
    assert_null(api_request_unknown_model(&f->cfg, parse(f, "{\"model\":\"cloud\"," MSG "}")));
    assert_string_equal(api_request_forced_tier(&f->cfg, parse(f, "{\"model\":\"cloud\"," MSG "}")),
                        "cloud");
    assert_string_equal(
        api_request_forced_tier(&f->cfg, parse(f, "{\"model\":\"switchyard/edge\"," MSG "}")),
        "edge");
    /* An unknown switchyard/ name is forced as given, so the router refuses it. */
    assert_string_equal(
        api_request_forced_tier(&f->cfg, parse(f, "{\"model\":\"switchyard/gpu9\"," MSG "}")),
        "gpu9");
    /* The metadata tier wins over the model name. */
    assert_string_equal(
        api_request_forced_tier(
            &f->cfg, parse(f, "{\"model\":\"cloud\"," MSG ",\"metadata\":{\"tier\":\"edge\"}}")),
        "edge");
}

/* Decides body with a router built from the config, as the offline tools do. */
static void decide(fx_t *f, const char *body, bool priv, route_decision_t *d, api_refusal_t *a)
{
    char err[256];
    pii_options_t po = {NULL, f->cfg.route.pii_min_score};
    pii_scanner_t *pii = pii_scanner_new(&po, err, sizeof err);
    router_t *r = router_new(&f->cfg.route, pii, err, sizeof err);
    router_scratch_t *rs = router_scratch_new(r);
    route_tier_t tiers[ROUTE_MAX_TIERS];
    api_tier_views(&f->cfg, tiers);
    api_session_state_t ss = {priv};
    assert_int_equal(api_decide(&f->cfg, r, rs, parse(f, body), &ss, NULL, 0, tiers, 1, 1, d), 0);
    api_decision_http(d, tiers, a);
    router_scratch_free(rs);
    router_free(r);
    pii_scanner_free(pii);
}

/* Parses body as POST /v1/embeddings does: 0 or the error, with param. */
static int parse_embed(fx_t *f, const char *body, char *param, size_t paramlen)
{
    if (f->parsed) api_request_deinit(&f->req);
    f->parsed = false;
    arena_reset(&f->arena);
    http_req_t hr = {.method = "POST",
                     .path = "/v1/embeddings",
                     .query = "",
                     .body = body,
                     .body_len = strlen(body)};
    char err[256];
    int rc =
        api_request_parse_embeddings(&f->req, &hr, &f->arena, err, sizeof err, param, paramlen);
    f->parsed = rc == 0;
    return rc;
}

static int collect(void *arg, api_str_kind_t kind, int message, const char *s, size_t n)
{
    buf_t *b = arg;
    buf_printf(b, "%s%d:%.*s|", kind == API_STR_FLOW ? "F" : "O", message, (int)n, s);
    return 0;
}

/* The embeddings request: typed, each string a text of the router's and of the scan's
 * walk, rendered from the type, needing the capability; token ids are opaque. */
static void test_embeddings(void **state)
{
    fx_t *f = *state;
    char param[96];
    assert_int_equal(parse_embed(f,
                                 "{\"model\":\"auto\",\"input\":[\"one\",\"two\"],\"dimensions\":"
                                 "3,\"user\":\"u1\",\"encoding_format\":\"float\",\"extra\":1}",
                                 param, sizeof param),
                     0);
    api_request_t *r = &f->req;
    assert_true(r->embeddings);
    assert_false(r->input_tokens);
    assert_int_equal(r->n_texts, 2);
    assert_string_equal(r->texts[1].text, "two");
    assert_int_equal(r->dimensions, 3);
    assert_int_equal(api_request_needs(r), 1u << ROUTE_CAP_EMBEDDINGS);
    buf_t b;
    buf_init(&b, 1 << 16);
    api_render_opts_t o = {.model = "big", .forward_unknown = true};
    assert_int_equal(api_render_body(r, &o, &b), 0);
    assert_string_equal(b.data,
                        "{\"model\":\"big\",\"input\":[\"one\",\"two\"],\"encoding_format\":"
                        "\"float\",\"dimensions\":3,\"user\":\"u1\",\"extra\":1}");
    buf_reset(&b);
    assert_int_equal(api_render_strings(r, false, collect, &b), 0);
    assert_string_equal(b.data, "F0:one|F1:two|O2:float|O2:3|O2:u1|");
    buf_deinit(&b);

    assert_int_equal(parse_embed(f, "{\"input\":[[1,2],[3]]}", param, sizeof param), 0);
    assert_true(f->req.input_tokens);
    assert_int_equal(f->req.n_texts, 0);
    assert_int_equal(parse_embed(f, "{\"input\":[5,6]}", param, sizeof param), 0);
    assert_true(f->req.input_tokens);

    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "input"},
        {"{\"input\":\"\"}", "input"},
        {"{\"input\":[]}", "input"},
        {"{\"input\":[\"a\",[1]]}", "input[1]"},
        {"{\"input\":[1.5]}", "input"},
        {"{\"input\":\"a\",\"encoding_format\":\"hex\"}", "encoding_format"},
        {"{\"input\":\"a\",\"dimensions\":-1}", "dimensions"},
        {"{\"input\":\"a\",\"user\":false}", "user"},
        {"{\"input\":\"a\",\"metadata\":{\"team\":3}}", "metadata"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_embed(f, bad[i].body, param, sizeof param), SY_EINVAL);
        assert_string_equal(param, bad[i].param);
    }

    /* The capability refusal names input. */
    route_decision_t d;
    memset(&d, 0, sizeof d);
    d.refusal = ROUTE_REFUSE_CAPABILITY;
    d.caps_missing = 1u << ROUTE_CAP_EMBEDDINGS;
    api_refusal_t a;
    api_decision_http(&d, NULL, &a);
    assert_int_equal(a.http_status, 400);
    assert_string_equal(a.param, "input");
    assert_non_null(strstr(a.message, "embeddings"));
}

/* Parses body as POST /v1/completions does: 0 or the error, with param. */
static int parse_comp(fx_t *f, const char *body, char *param, size_t paramlen)
{
    if (f->parsed) api_request_deinit(&f->req);
    f->parsed = false;
    arena_reset(&f->arena);
    http_req_t hr = {.method = "POST",
                     .path = "/v1/completions",
                     .query = "",
                     .body = body,
                     .body_len = strlen(body)};
    char err[256];
    int rc = api_request_parse(&f->req, &hr, true, &f->arena, err, sizeof err, param, paramlen);
    f->parsed = rc == 0;
    return rc;
}

/* Decides the parsed request f->req over the config's tiers. */
static void decide_parsed(fx_t *f, route_decision_t *d)
{
    char err[256];
    router_t *r = router_new(&f->cfg.route, NULL, err, sizeof err);
    router_scratch_t *rs = router_scratch_new(r);
    route_tier_t tiers[ROUTE_MAX_TIERS];
    api_tier_views(&f->cfg, tiers);
    assert_int_equal(api_decide(&f->cfg, r, rs, &f->req, NULL, NULL, 0, tiers, 1, 1, d), 0);
    router_scratch_free(rs);
    router_free(r);
}

/* A completions prompt of token ids: typed, rendered as numbers (no text for the router
 * or the scan), and decided local only: the cloud tier is never in the order, forcing
 * it is refused. Other shapes are a 400 naming prompt. */
static void test_prompt_tokens(void **state)
{
    fx_t *f = *state;
    char param[96];
    assert_int_equal(
        parse_comp(f,
                   "{\"prompt\":[1,403,7],\"max_tokens\":1,\"echo\":true,\"logprobs\":"
                   "1,\"return_tokens_as_token_ids\":true,\"prompt_cache_key\":\"g1\"}",
                   param, sizeof param),
        0);
    assert_true(f->req.prompt_tokens);
    assert_int_equal(f->req.n_texts, 0);
    buf_t b;
    buf_init(&b, 1 << 16);
    api_render_opts_t o = {.model = "m"};
    assert_int_equal(api_render_body(&f->req, &o, &b), 0);
    assert_non_null(strstr(b.data, "\"prompt\":[1,403,7]"));
    assert_non_null(strstr(b.data, "\"return_tokens_as_token_ids\":true"));
    assert_non_null(strstr(b.data, "\"prompt_cache_key\":\"g1\""));
    buf_reset(&b);
    assert_int_equal(api_render_strings(&f->req, false, collect, &b), 0);
    assert_null(strstr(b.data, "F0:")); /* no flow text: ids are numbers */
    buf_deinit(&b);
    route_decision_t d;
    decide_parsed(f, &d);
    assert_int_equal(d.status, 0);
    assert_true(d.local_only);
    assert_int_equal(d.n_order, 1);
    assert_string_equal(f->cfg.tiers[d.tier].name, "edge");
    assert_int_equal(parse_comp(f, "{\"model\":\"cloud\",\"prompt\":[1,2]}", param, sizeof param),
                     0);
    decide_parsed(f, &d);
    assert_int_equal(d.refusal, ROUTE_REFUSE_FORCED_EXTERNAL);
    /* The same text prompt may go to the cloud. */
    assert_int_equal(parse_comp(f, "{\"model\":\"cloud\",\"prompt\":\"hi\"}", param, sizeof param),
                     0);
    assert_false(f->req.prompt_tokens);
    decide_parsed(f, &d);
    assert_int_equal(d.status, 0);
    assert_string_equal(f->cfg.tiers[d.tier].name, "cloud");

    static const char *const bad[] = {
        "{\"prompt\":[]}",        "{\"prompt\":[1,-2]}",    "{\"prompt\":[1,2.5]}",
        "{\"prompt\":[1,\"a\"]}", "{\"prompt\":[[1,2]]}",   "{\"prompt\":3}",
        "{\"prompt\":[1e10]}",    "{\"prompt\":{\"a\":1}}", "{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_comp(f, bad[i], param, sizeof param), SY_EINVAL);
        assert_string_equal(param, "prompt");
    }
}

static void test_refusals(void **state)
{
    fx_t *f = *state;
    route_decision_t d;
    api_refusal_t a;
    decide(f, "{\"model\":\"auto\"," MSG "}", false, &d, &a);
    assert_int_equal(a.http_status, 200);

    decide(f, "{\"model\":\"switchyard/gpu9\"," MSG "}", false, &d, &a);
    assert_int_equal(a.http_status, 400);
    assert_string_equal(a.param, "tier");
    assert_non_null(strstr(a.message, "unknown tier 'gpu9'"));

    decide(f, "{\"model\":\"cloud\"," MSG "}", true, &d, &a);
    assert_int_equal(a.http_status, 403);
    assert_string_equal(a.type, "privacy_blocked");
    assert_non_null(strstr(a.message, "forces the external tier 'cloud'"));

    /* Private with tools: the local tier serves tools (its call grammar) */
    decide(f,
           "{\"model\":\"auto\"," MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
           "\"f\"}}]}",
           true, &d, &a);
    assert_int_equal(a.http_status, 200);
    assert_int_equal(d.tier, 0);
    /* ...but not images: refused, naming what is missing */
    decide(f,
           "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
           "\"image_url\",\"image_url\":{\"url\":\"https://img.test/a.png\"}}]}]}",
           true, &d, &a);
    assert_int_equal(a.http_status, 400);
    assert_string_equal(a.code, "capability_unavailable");
    assert_string_equal(a.param, "messages");
    assert_non_null(strstr(a.message, "needs vision"));
    assert_non_null(strstr(a.message, "stay on this machine"));

    decide(f, "{\"model\":\"edge\"," MSG ",\"max_tokens\":2000}", false, &d, &a);
    assert_int_equal(a.http_status, 400);
    assert_string_equal(a.code, "capability_unavailable");
    assert_non_null(strstr(a.message, "context length"));

    /* The session's private mark is an input: the same body, another decision. */
    decide(f, "{\"model\":\"auto\"," MSG ",\"max_tokens\":4000}", false, &d, &a);
    assert_int_equal(d.tier, 1);
    decide(f, "{\"model\":\"auto\"," MSG ",\"max_tokens\":900}", true, &d, &a);
    assert_int_equal(d.tier, 0);
    assert_true(d.local_only);
}

static void test_pii_outcome(void **state)
{
    (void)state;
    route_decision_t d = {0};
    api_pii_outcome_t o;
    d.pii_types = 1u << PII_EMAIL_ADDRESS | 1u << PII_PERSON;
    api_pii_outcome(&d, 0, false, &o);
    assert_int_equal(o.kept_local, d.pii_types);
    assert_int_equal(o.masked | o.allowed | o.blocked, 0);
    api_pii_outcome(&d, 1u << PII_PERSON, true, &o);
    assert_int_equal(o.masked, 1u << PII_PERSON);
    assert_int_equal(o.allowed, 1u << PII_EMAIL_ADDRESS);
    assert_int_equal(o.kept_local | o.blocked, 0);
    d.refusal = ROUTE_REFUSE_PII_BLOCKED;
    d.status = SY_EPRIVACY;
    api_pii_outcome(&d, 0, false, &o);
    assert_int_equal(o.blocked, d.pii_types);
    d.refusal = ROUTE_REFUSE_CAPABILITY;
    api_pii_outcome(&d, 0, false, &o);
    assert_int_equal(o.kept_local, d.pii_types);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_needs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_tier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embeddings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_tokens, setup, teardown),
        cmocka_unit_test(test_pii_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
