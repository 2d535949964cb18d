/* test_api_auth.c — the auth config section (errors name key and line), key lookup
 * (digests from env vars and hex, constant-time selection), token buckets, budget
 * periods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/budget.h"
#include "api/config.h"
#include "base/err.h"

static const char *head = "tiers:\n"
                          "  cloud:\n"
                          "    kind: openai\n"
                          "    base_url: http://127.0.0.1:1/v1\n"
                          "    model: m\n";

static int load(config_t *c, const char *auth_yaml, char *err, size_t errlen)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", head, auth_yaml);
    return config_load_string(c, text, strlen(text), "t.yaml", err, errlen);
}

/* sha256("beta-key") as sha256sum prints it. */
#define BETA_HEX "7a3d637bc601f7000cc2c33141c8c8a7554e02e319fa8b293a0c88c613b77620"

static void test_config_and_lookup(void **state)
{
    (void)state;
    setenv("SY_T_ADMIN", "admin-secret", 1);
    setenv("SY_T_SEARCH", "search-key", 1);
    uint8_t beta[32];
    auth_digest("beta-key", 8, beta);
    char hex[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", beta[i]);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "auth:\n"
             "  admin_key_env: SY_T_ADMIN\n"
             "  keys:\n"
             "    - { name: search, key_env: SY_T_SEARCH, team: search, tenant: acme,\n"
             "        budget_usd: 50, budget_period: month, rpm: 600, tpm: 200000 }\n"
             "    - { name: beta, key_sha256: %s }\n",
             hex);
    config_t c;
    char err[256] = "";
    if (load(&c, yaml, err, sizeof err)) fail_msg("%s", err);
    assert_true(c.auth.enabled);
    assert_int_equal(c.auth.n_keys, 2);
    const config_key_t *k = &c.auth.keys[0];
    assert_string_equal(k->team, "search");
    assert_string_equal(k->tenant, "acme");
    assert_true(k->budget_set && k->budget_usd == 50);
    assert_int_equal(k->budget_period, CONFIG_PERIOD_MONTH);
    assert_int_equal(k->rpm, 600);
    assert_int_equal(k->tpm, 200000);
    assert_false(c.auth.keys[1].budget_set);

    auth_t *a = auth_new(&c.auth);
    assert_int_equal(auth_lookup(a, "search-key", 10), 0);
    assert_int_equal(auth_lookup(a, "beta-key", 8), 1);
    assert_int_equal(auth_lookup(a, "search-ke", 9), -1);
    assert_int_equal(auth_lookup(a, "search-keyx", 11), -1);
    assert_int_equal(auth_lookup(a, "", 0), -1);
    assert_int_equal(auth_lookup(a, "admin-secret", 12), -1);
    assert_true(auth_is_admin(a, "admin-secret", 12));
    assert_false(auth_is_admin(a, "search-key", 10));
    auth_free(a);
    config_deinit(&c);

    /* No auth section: nothing to build. */
    assert_int_equal(load(&c, "", err, sizeof err), 0);
    assert_false(c.auth.enabled);
    assert_null(auth_new(&c.auth));
    config_deinit(&c);
}

static void test_config_errors(void **state)
{
    (void)state;
    unsetenv("SY_T_MISSING");
    setenv("SY_T_K", "k", 1);
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_MISSING }\n",
         "auth.keys[0], line 8: key_env: environment variable SY_T_MISSING is not set"},
        {"auth:\n  keys:\n    - { name: a }\n", "auth.keys[0], line 8: missing key 'key_env'"},
        {"auth:\n  keys:\n    - { key_env: SY_T_K }\n", "auth.keys[0], line 8: missing key 'name'"},
        {"auth:\n  keys:\n    - { name: a, key_sha256: abc }\n", "expected 64 hex digits"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K, key_sha256: " BETA_HEX " }\n",
         "not both"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K }\n    - { name: a, key_env: SY_T_K }\n",
         "auth.keys[1], line 9: key name 'a' used twice"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K }\n    - { name: b, key_env: SY_T_K }\n",
         "same key as auth.keys[0]"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K, budget_period: week }\n",
         "budget_period without budget_usd"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K, budget_usd: 5, budget_period: year }\n",
         "auth.keys[0].budget_period, line 8: 'year' is not one of: day, week, month, total"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K, rpm: fast }\n",
         "auth.keys[0].rpm, line 8: expected an integer"},
        {"auth:\n  keys:\n    - { name: a, key_env: SY_T_K, colour: red }\n",
         "auth.keys[0].colour, line 8: unknown key"},
        {"auth:\n  keys: { name: a }\n", "auth.keys, line 7: expected a list"},
        {"auth:\n  admin_key_env: SY_T_MISSING\n", "environment variable SY_T_MISSING"},
        {"auth:\n  root: x\n", "auth.root, line 7: unknown key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_t c;
        char err[256] = "";
        int rc = load(&c, cases[i].yaml, err, sizeof err);
        if (rc != SY_ECONFIG || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err, cases[i].want);
        config_deinit(&c);
    }
}

static void test_buckets(void **state)
{
    (void)state;
    setenv("SY_T_K", "k", 1);
    config_t c;
    char err[256] = "";
    if (load(&c, "auth:\n  keys:\n    - { name: a, key_env: SY_T_K, rpm: 60, tpm: 1000 }\n", err,
             sizeof err))
        fail_msg("%s", err);
    auth_t *a = auth_new(&c.auth);
    uint32_t retry = 0;
    const char *which = "";
    int64_t t = 1000000;
    /* A full minute's worth of requests, then a refusal. */
    for (int i = 0; i < 60; i++)
        assert_int_equal(auth_limit_take(a, 0, 1, t, &retry, &which), 0);
    assert_int_equal(auth_limit_take(a, 0, 1, t, &retry, &which), SY_EFULL);
    assert_string_equal(which, "rpm");
    assert_int_equal(retry, 1); /* one request per second refills */
    assert_int_equal(auth_limit_take(a, 0, 1, t + 1000, &retry, &which), 0);
    /* Tokens: 1000 per minute; 60 were taken above plus one. */
    assert_int_equal(auth_limit_take(a, 0, 990, t + 60000, &retry, &which), 0);
    assert_int_equal(auth_limit_take(a, 0, 500, t + 60000, &retry, &which), SY_EFULL);
    assert_string_equal(which, "tpm");
    assert_true(retry >= 29 && retry <= 31);
    auth_limit_refund(a, 0, 490); /* the request used 500 of 990 */
    assert_int_equal(auth_limit_take(a, 0, 500, t + 60000, &retry, &which), 0);
    /* A request larger than the bucket waits for a full one, then passes once. */
    assert_int_equal(auth_limit_take(a, 0, 5000, t + 120000, &retry, &which), 0);
    assert_int_equal(auth_limit_take(a, 0, 1, t + 121000, &retry, &which), SY_EFULL);
    auth_free(a);
    config_deinit(&c);
}

static void test_periods(void **state)
{
    (void)state;
    /* 2026-12-06 17:30:00 UTC (a Sunday). */
    int64_t now = 1796578200000LL;
    assert_int_equal(budget_period_start(CONFIG_PERIOD_DAY, now), 1796515200000LL);
    assert_int_equal(budget_period_start(CONFIG_PERIOD_WEEK, now), 1795996800000LL); /* Mon 11-30 */
    assert_int_equal(budget_period_start(CONFIG_PERIOD_MONTH, now), 1796083200000LL); /* 12-01 */
    assert_int_equal(budget_period_start(CONFIG_PERIOD_TOTAL, now), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_lookup),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_periods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
