/* test_api_config.c — configuration loading: defaults, every section, and errors
 * that name the key and the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/config.h"
#include "base/err.h"

static const char *good =
    "listen: 0.0.0.0:9090\n"
    "workers: 3\n"
    "store: sqlite:/tmp/x.db\n"
    "tiers:\n"
    "  edge:\n"
    "    kind: local\n"
    "    model: models/edge.gguf\n"
    "    max_concurrency: 2\n"
    "    max_queue: 32\n"
    "    cost: { usd_per_hour: 0.05 }\n"
    "    speculative: { verifier: cloud, draft_max: auto }\n"
    "  cloud:\n"
    "    kind: openai\n"
    "    base_url: https://api.example.com/v1\n"
    "    api_key_env: CLOUD_API_KEY\n"
    "    model: big-model\n"
    "    privacy: external\n"
    "    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }\n"
    "    timeout_ms: 30000\n"
    "    ttft_timeout_ms: 4000\n"
    "routing:\n"
    "  pii: { action: local_only, min_score: 0.5, types: { PERSON: mask, US_SSN: block } }\n"
    "  token_budget: { cloud_above: 1024 }\n"
    "  policy: bandit\n"
    "  escalation: { enabled: true, min_confidence: 0.55 }\n";

static void test_good(void **state)
{
    (void)state;
    config_t c;
    char err[256] = "";
    int rc = config_load_string(&c, good, strlen(good), "good.yaml", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9090);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.n_tiers, 2);
    assert_string_equal(c.tiers[0].name, "edge");
    assert_int_equal(c.tiers[0].kind, CONFIG_TIER_LOCAL);
    assert_int_equal(c.tiers[0].privacy, ROUTE_PRIVACY_ON_DEVICE); /* local default */
    assert_int_equal(c.tiers[0].role, ROUTE_ROLE_EDGE);
    assert_int_equal(c.tiers[0].line, 5);
    assert_true(c.tiers[0].usd_per_hour == 0.05);
    assert_int_equal(c.tiers[1].role, ROUTE_ROLE_CLOUD);
    assert_int_equal(c.tiers[1].ttft_timeout_ms, 4000);
    assert_true(c.tiers[1].usd_per_mtok_out == 10);
    assert_string_equal(c.tiers[0].spec_verifier, "cloud");
    assert_int_equal(c.tiers[0].spec_verifier_idx, 1);
    assert_int_equal(c.tiers[0].spec_draft_max_n, 0); /* auto */
    assert_int_equal(c.tiers[1].spec_verifier_idx, -1);
    assert_int_equal(c.route.policy, ROUTE_POLICY_BANDIT);
    assert_int_equal(c.route.cloud_above_tokens, 1024);
    assert_true(c.route.escalation_enabled);
    assert_int_equal(c.route.pii_action[PII_PERSON], ROUTE_PII_MASK);
    assert_int_equal(c.route.pii_action[PII_US_SSN], ROUTE_PII_BLOCK);
    assert_int_equal(c.route.pii_action[PII_EMAIL_ADDRESS], ROUTE_PII_LOCAL_ONLY);
    assert_int_equal(config_tier_find(&c, "cloud"), 1);
    assert_int_equal(config_tier_find(&c, "nope"), -1);
    /* Capabilities by kind: the engine serves JSON and tool calls (its grammar) and
     * continues a partial answer, an OpenAI upstream all but continue (OpenAI's own API
     * has no continue_final_message). */
    assert_int_equal(c.tiers[0].caps,
                     1u << ROUTE_CAP_JSON | 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_CONTINUE);
    assert_int_equal(c.tiers[1].caps, ROUTE_CAPS_ALL & ~(1u << ROUTE_CAP_CONTINUE));
    assert_int_equal(c.tiers[0].max_context, 0);
    /* A type is blocked: findings of unknown type are too. */
    assert_int_equal(c.route.pii_action[PII_UNKNOWN], ROUTE_PII_BLOCK);
    /* Drift and telemetry defaults (docs/versions.md, docs/telemetry.md). */
    assert_int_equal(c.drift.min_requests, 200);
    assert_true(c.drift.cost_per_request == 0.25);
    assert_int_equal(c.drift.interval_s, 60);
    assert_string_equal(c.telemetry.otlp_endpoint, "");
    assert_string_equal(c.telemetry.service_name, "switchyard");
    config_deinit(&c);
    const char *extra = "drift: { min_requests: 50, confidence: 0.2, interval_s: 0 }\n"
                        "telemetry: { otlp_endpoint: \"http://127.0.0.1:4318\", batch: 8 }\n";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s%s", good, extra);
    rc = config_load_string(&c, buf, strlen(buf), "good.yaml", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.drift.min_requests, 50);
    assert_true(c.drift.confidence == 0.2);
    assert_true(c.drift.escalation_rate == 0.1);
    assert_int_equal(c.drift.interval_s, 0);
    assert_string_equal(c.telemetry.otlp_endpoint, "http://127.0.0.1:4318");
    assert_int_equal(c.telemetry.batch, 8);
    assert_int_equal(c.telemetry.queue, 4096);
    config_deinit(&c);
}

static void expect_error(const char *yaml, const char *frag1, const char *frag2);

static void test_capabilities(void **state)
{
    (void)state;
    const char *yaml = "tiers:\n"
                       "  edge:\n"
                       "    kind: local\n"
                       "    model: m.gguf\n"
                       "    context: 4096\n"
                       "    capabilities: [json]\n"
                       "  small:\n"
                       "    kind: openai\n"
                       "    base_url: http://127.0.0.1:1/v1\n"
                       "    model: s\n"
                       "    capabilities: []\n"
                       "    max_context: 8192\n"
                       "  cloud:\n"
                       "    kind: openai\n"
                       "    base_url: http://127.0.0.1:1/v1\n"
                       "    model: c\n"
                       "    capabilities: [tools, vision]\n"
                       "routing:\n"
                       "  pii: { types: { UNKNOWN: block } }\n";
    config_t c;
    char err[256] = "";
    if (config_load_string(&c, yaml, strlen(yaml), "caps.yaml", err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(c.tiers[0].caps, 1u << ROUTE_CAP_JSON); /* as listed */
    assert_int_equal(c.tiers[0].max_context, 4096);          /* a local tier's context */
    assert_int_equal(c.tiers[1].caps, 0);
    assert_int_equal(c.tiers[1].max_context, 8192);
    assert_int_equal(c.tiers[2].caps, 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_VISION);
    assert_int_equal(c.route.pii_action[PII_UNKNOWN], ROUTE_PII_BLOCK);
    config_deinit(&c);
    const char *t = "tiers:\n  e:\n    kind: local\n    model: m\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s    capabilities: [tools, telepathy]\n", t);
    expect_error(buf, "tiers.e.capabilities, line 5", "'telepathy' is not one of: tools, json");
    snprintf(buf, sizeof buf, "%s    capabilities: tools\n", t);
    expect_error(buf, "tiers.e.capabilities", "list");
    snprintf(buf, sizeof buf, "%s    capabilities: [json, embeddings]\n", t);
    expect_error(buf, "tiers.e.capabilities, line 5", "cannot declare 'embeddings'");
    snprintf(buf, sizeof buf, "%s    max_context: -1\n", t);
    expect_error(buf, "tiers.e.max_context", "range");
    snprintf(buf, sizeof buf, "%srouting:\n  pii: { types: { UNKNOWN: allow } }\n", t);
    expect_error(buf, "routing.pii.types.UNKNOWN", "fails closed");
}

/* Each bad config must fail with a message that holds every listed fragment. */
static void expect_error(const char *yaml, const char *frag1, const char *frag2)
{
    config_t c;
    char err[512] = "";
    int rc = config_load_string(&c, yaml, strlen(yaml), "bad.yaml", err, sizeof err);
    config_deinit(&c);
    if (rc == 0) fail_msg("accepted a bad config: %s", yaml);
    if (!strstr(err, frag1)) fail_msg("error '%s' lacks '%s'", err, frag1);
    if (frag2 && !strstr(err, frag2)) fail_msg("error '%s' lacks '%s'", err, frag2);
}

/* tiers.X.speculative: the verifier must be another tier of kind openai; draft_max
 * auto or 1..32; only a local tier drafts. Errors name the key and its line. */
static void test_speculative(void **state)
{
    (void)state;
    const char *cloud =
        "  c:\n    kind: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n";
    char buf[1024];
    config_t c;
    char err[512] = "";
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { verifier: c, draft_max: 6 }\n%s",
             cloud);
    int rc = config_load_string(&c, buf, strlen(buf), "s.yaml", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.tiers[0].spec_draft_max_n, 6);
    assert_int_equal(c.tiers[0].spec_verifier_idx, 1);
    config_deinit(&c);
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative:\n      verifier: moon\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative.verifier, line 6", "no tier has this name");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { verifier: e }\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative.verifier, line 5", "cannot verify itself");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { verifier: f }\n  f:\n    kind: local\n    model: n.gguf\n");
    expect_error(buf, "tiers.e.speculative.verifier, line 5", "kind openai");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative:\n      verifier: c\n      draft_max: 33\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative.draft_max, line 7", "[1, 32]");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { verifier: c, draft_max: lots }\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative.draft_max, line 5", "neither auto nor");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { draft_max: 4 }\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative, line 5", "missing key 'verifier'");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n%s"
             "    speculative: { verifier: e }\n",
             cloud);
    expect_error(buf, "tiers.c.speculative, line 9", "only a local tier drafts");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n"
             "    speculative: { verifier: c, ratio: 2 }\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative.ratio", "unknown key");
    snprintf(buf, sizeof buf,
             "tiers:\n  e:\n    kind: local\n    model: m.gguf\n    draft: d.gguf\n"
             "    speculative: { verifier: c }\n%s",
             cloud);
    expect_error(buf, "tiers.e.speculative, line 6", "not both");
}

static void test_errors(void **state)
{
    (void)state;
    const char *tiers = "tiers:\n  e:\n    kind: local\n    model: m.gguf\n";
    char buf[1024];
    expect_error("listen: nowhere\n", "listen", "line 1");
    snprintf(buf, sizeof buf, "%sworkers: many\n", tiers);
    expect_error(buf, "workers, line 5", "integer");
    snprintf(buf, sizeof buf, "%sworkers: 0\n", tiers);
    expect_error(buf, "workers", "out of range");
    snprintf(buf, sizeof buf, "%sbogus: 1\n", tiers);
    expect_error(buf, "bogus, line 5", "unknown key");
    expect_error("tiers:\n  e:\n    kind: local\n    model: m\n    max_queue: -3\n",
                 "tiers.e.max_queue, line 5", "range");
    expect_error("tiers:\n  e:\n    kind: rocket\n", "tiers.e.kind, line 3", "openai, local");
    expect_error("tiers:\n  e:\n    model: m\n", "tiers.e", "kind");
    expect_error("tiers:\n  c:\n    kind: openai\n    model: m\n", "tiers.c", "base_url");
    expect_error("tiers:\n  c:\n    kind: openai\n    model: m\n    base_url: ftp://x\n", "tiers.c",
                 "http");
    expect_error("tiers:\n  e:\n    kind: local\n    model: m\n    cost: { usd_per_day: 3 }\n",
                 "tiers.e.cost.usd_per_day, line 5", "unknown key");
    expect_error("tiers:\n  e:\n    kind: local\n    model: m\n    privacy: cloudy\n",
                 "tiers.e.privacy", "on_device");
    snprintf(buf, sizeof buf, "%srouting:\n  policy: magic\n", tiers);
    expect_error(buf, "routing.policy, line 6", "rules, bandit");
    snprintf(buf, sizeof buf, "%srouting:\n  pii: { types: { SHOE_SIZE: mask } }\n", tiers);
    expect_error(buf, "routing.pii.types.SHOE_SIZE, line 6", "entity type");
    snprintf(buf, sizeof buf, "%srouting:\n  escalation: { min_confidence: 2 }\n", tiers);
    expect_error(buf, "routing.escalation.min_confidence", "range");
    snprintf(buf, sizeof buf, "%srouting:\n  speculative: { enabled: true }\n", tiers);
    expect_error(buf, "routing.speculative, line 6", "tiers.<name>.speculative");
    snprintf(buf, sizeof buf, "%srouting:\n  reference_tier: moon\n", tiers);
    expect_error(buf, "reference_tier", "moon");
    expect_error("workers: 2\n", "tiers", "at least one");
    expect_error("tiers: [1, 2]\n", "tiers, line 1", "mapping");
    expect_error("tiers:\n  e: {kind: local\n", "line", "YAML syntax error");
    expect_error("", "empty", NULL);
    snprintf(buf, sizeof buf, "%sstore: mysql://x\n", tiers);
    expect_error(buf, "store", "sqlite");
    snprintf(buf, sizeof buf, "%slog_level: chatty\n", tiers);
    expect_error(buf, "log_level", "debug");
    snprintf(buf, sizeof buf, "%sdrift: { escalation_rate: 1.5 }\n", tiers);
    expect_error(buf, "drift.escalation_rate, line 5", "range");
    snprintf(buf, sizeof buf, "%sdrift: { min_requests: 0 }\n", tiers);
    expect_error(buf, "drift.min_requests", "range");
    snprintf(buf, sizeof buf, "%sdrift: { sensitivity: high }\n", tiers);
    expect_error(buf, "drift.sensitivity", "unknown key");
    snprintf(buf, sizeof buf, "%stelemetry: { otlp_endpoint: \"https://otel.example\" }\n", tiers);
    expect_error(buf, "telemetry.otlp_endpoint", "http://");
    snprintf(buf, sizeof buf, "%stelemetry: { otlp_endpoint: \"http://c:4318\", queue: 0 }\n",
             tiers);
    expect_error(buf, "telemetry.queue", "range");
    snprintf(buf, sizeof buf, "%stelemetry: { service_name: \"\" }\n", tiers);
    expect_error(buf, "telemetry.service_name", "empty");
    expect_error(
        "tiers:\n  e:\n    kind: local\n    model: m\n  e:\n    kind: local\n    model: m\n",
        "tiers.e, line 5", "twice");
}

static void test_missing_file(void **state)
{
    (void)state;
    config_t c;
    char err[256];
    assert_int_equal(config_load(&c, "/nonexistent/switchyard.yaml", err, sizeof err), -2);
    assert_non_null(strstr(err, "cannot open"));
    config_deinit(&c);
}

/* Relative file paths resolve from the config file's folder; upstream model names,
 * absolute paths and an in-memory store are left alone. */
static void test_paths_resolve_from_config_folder(void **state)
{
    (void)state;
    static const char *yaml =
        "store: sqlite:ledger.db\n"
        "tiers:\n"
        "  edge: { kind: local, model: m/edge.bin, tokenizer: /abs/tok.bin }\n"
        "  cloud: { kind: openai, base_url: http://x/v1, model: gpt-4o }\n"
        "routing:\n"
        "  pii: { names_dir: ../names }\n"
        "  model: r.bin\n";
    config_t c;
    char err[256] = "";
    int rc = config_load_string(&c, yaml, strlen(yaml), "/etc/sy/conf.yaml", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(c.store, "sqlite:/etc/sy/ledger.db");
    assert_string_equal(c.tiers[0].model, "/etc/sy/m/edge.bin");
    assert_int_equal(c.tiers[0].model_line, 3);
    assert_string_equal(c.tiers[0].tokenizer, "/abs/tok.bin");
    assert_string_equal(c.tiers[1].model, "gpt-4o");
    assert_string_equal(c.pii_names_dir, "/etc/sy/../names");
    assert_int_equal(c.pii_names_dir_line, 6);
    assert_string_equal(c.router_model, "/etc/sy/r.bin");
    assert_string_equal(c.classifier_model, "");
    assert_string_equal(c.ledger_journal, "/etc/sy/ledger.db.journal"); /* beside the store */
    config_deinit(&c);
    rc = config_load_string(&c, yaml, strlen(yaml), "conf.yaml", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(c.tiers[0].model, "m/edge.bin"); /* a file in the cwd: its folder */
    config_deinit(&c);
}

static void test_default_config_parses(void **state)
{
    (void)state;
    config_t c;
    char err[256] = "";
    int rc = config_load(&c, "configs/default.yaml", err, sizeof err);
    if (rc) fail_msg("configs/default.yaml: %s", err);
    assert_true(c.n_tiers >= 1);
    config_deinit(&c);
}

/* models: an alias map to auto or a tier; names and targets checked with lines. */
static void test_models_map(void **state)
{
    (void)state;
    const char *head = "tiers:\n"
                       "  cloud: { kind: openai, base_url: http://x/v1, model: big }\n";
    char yaml[1024], err[256] = "";
    config_t c;
    snprintf(yaml, sizeof yaml, "%smodels: { gpt-4o-mini: auto, fast: cloud }\n", head);
    if (config_load_string(&c, yaml, strlen(yaml), "m.yaml", err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(c.n_aliases, 2);
    assert_string_equal(c.aliases[0].name, "gpt-4o-mini");
    assert_string_equal(c.aliases[0].target, "auto");
    assert_string_equal(c.aliases[1].target, "cloud");
    config_deinit(&c);
    struct {
        const char *models, *want;
    } bad[] = {
        {"models: { fast: gpu9 }\n", "models.fast, line 3: 'gpu9' is neither auto nor a tier"},
        {"models: { cloud: auto }\n", "models.cloud, line 3: 'cloud' already names auto or a tier"},
        {"models: { auto: cloud }\n", "already names auto or a tier"},
        {"models: [a, b]\n", "models, line 3: expected a mapping"},
        {"models: { a: auto, a: cloud }\n", "models.a, line 3: model name given twice"},
        {"models: { a: [x] }\n", "models.a, line 3: expected auto or a tier name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml, "%s%s", head, bad[i].models);
        int rc = config_load_string(&c, yaml, strlen(yaml), "m.yaml", err, sizeof err);
        if (rc != SY_ECONFIG || !strstr(err, bad[i].want))
            fail_msg("case %zu: rc %d, '%s', want '%s'", i, rc, err, bad[i].want);
        config_deinit(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_map),
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_speculative),
        cmocka_unit_test(test_capabilities),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_paths_resolve_from_config_folder),
        cmocka_unit_test(test_default_config_parses),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
