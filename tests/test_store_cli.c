/* test_store_cli.c — `switchyard costs` and `switchyard audit` run as a user would
 * run them, against a ledger written through the store API. Needs the binary
 * ($SY_BUILD/switchyard); skipped when it has not been built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "route/pii/pii.h"
#include "store/store.h"

typedef struct fx {
    char dir[64];
    char path[128];
    char bin[512];
    int64_t cost_n[2], cloud_n[2]; /* per team, nano-USD, as written */
    uint64_t req[2];
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Writes a small ledger: teams "alpha" and "beta", two PII rows that went to an
 * external tier (t = 2000 and 2200 ms) and one PII row that stayed local. */
static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    const char *b = getenv("SY_BUILD");
    snprintf(f->bin, sizeof f->bin, "%s/switchyard", b ? b : "build/asan");
    strcpy(f->dir, "/tmp/sy-cli-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/l.db", f->dir);
    char url[160], err[256];
    snprintf(url, sizeof url, "sqlite:%s", f->path);
    store_t *s = store_open(url, err, sizeof err);
    if (!s) return -1;
    store_ledger_row_t rows[40];
    for (int i = 0; i < 40; i++) {
        int t = i % 2;
        int64_t cost = 1000 * (i + 1), cloud = 7000 * (i + 1);
        rows[i] = (store_ledger_row_t){.ts_ms = 1000 + 100 * i,
                                       .team = t ? "beta" : "alpha",
                                       .tier = (i % 5) ? "edge" : "cloud",
                                       .status = "ok",
                                       .tokens_in = 10,
                                       .tokens_out = 20,
                                       .cost_usd = (double)cost / 1e9,
                                       .cloud_cost_usd = (double)cloud / 1e9};
        snprintf(rows[i].id, sizeof rows[i].id, "chatcmpl-%02d", i);
        f->cost_n[t] += cost;
        f->cloud_n[t] += cloud;
        f->req[t]++;
    }
    rows[10].pii_types = 1, rows[10].external = true, rows[10].pii_names = "EMAIL_ADDRESS";
    rows[10].pii_allowed = 1;
    rows[11].pii_types = 1, rows[11].external = false, rows[11].pii_names = "EMAIL_ADDRESS";
    rows[11].pii_kept_local = 1;
    /* The audit names the in-clear types' bits itself (the names column lists all). */
    rows[12].pii_types = (1u << PII_EMAIL_ADDRESS) | (1u << PII_US_SSN), rows[12].external = true;
    rows[12].pii_allowed = rows[12].pii_types;
    /* A name masked, an email in clear: only the email is reported. */
    rows[13].pii_types = (1u << PII_EMAIL_ADDRESS) | (1u << PII_PERSON), rows[13].external = true;
    rows[13].pii_names = "EMAIL_ADDRESS,PERSON";
    rows[13].pii_allowed = 1u << PII_EMAIL_ADDRESS, rows[13].pii_masked = 1u << PII_PERSON;
    /* Masked only: the value left as a placeholder, no violation. */
    rows[14].pii_types = 1u << PII_PERSON, rows[14].external = true;
    rows[14].pii_masked = 1u << PII_PERSON;
    int rc = store_ledger_append(s, rows, 40);
    store_close(s);
    *state = f;
    return rc;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs the binary with args; captures stdout into out (cap bytes) and returns the
 * exit status. Skips the test when the binary is missing. */
static int run(const fx_t *f, const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", f->bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_costs_table(void **state)
{
    fx_t *f = *state;
    char args[256], out[8192];
    snprintf(args, sizeof args, "costs --store sqlite:%s --group-by team", f->path);
    assert_int_equal(run(f, args, out, sizeof out), 0);
    /* Each team line and the total line carry the sums written in setup. */
    const char *names[] = {"alpha", "beta", "total"};
    for (int t = 0; t < 3; t++) {
        int64_t cost = t < 2 ? f->cost_n[t] : f->cost_n[0] + f->cost_n[1];
        int64_t cloud = t < 2 ? f->cloud_n[t] : f->cloud_n[0] + f->cloud_n[1];
        uint64_t req = t < 2 ? f->req[t] : f->req[0] + f->req[1];
        char want[256];
        snprintf(want, sizeof want, "%-24s %10llu", names[t], (unsigned long long)req);
        char *line = strstr(out, want);
        if (!line) fail_msg("no line '%s' in:\n%s", want, out);
        char money[128];
        snprintf(money, sizeof money, "%14.6f %14.6f %14.6f %7.1f%%", cost / 1e9, cloud / 1e9,
                 (cloud - cost) / 1e9, 100.0 * (cloud - cost) / cloud);
        char *eol = strchr(line, '\n');
        *eol = 0;
        if (!strstr(line, money)) fail_msg("line '%s' lacks '%s'", line, money);
        *eol = '\n';
    }
}

static void test_costs_json_since(void **state)
{
    fx_t *f = *state;
    char args[256], out[8192];
    /* Unix seconds 3 = 3000 ms keeps rows 20..39. */
    snprintf(args, sizeof args, "costs --store sqlite:%s --group-by tier --since 00003 --json",
             f->path);
    assert_int_equal(run(f, args, out, sizeof out), 0);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("not JSON: %s", out);
    assert_string_equal(cJSON_GetObjectItem(j, "group_by")->valuestring, "tier");
    cJSON *total = cJSON_GetObjectItem(j, "total");
    assert_int_equal(cJSON_GetObjectItem(total, "requests")->valuedouble, 20);
    int64_t cost = 0;
    for (int i = 20; i < 40; i++)
        cost += 1000 * (i + 1);
    assert_int_equal(llround(cJSON_GetObjectItem(total, "cost_usd")->valuedouble * 1e9), cost);
    assert_int_equal(llround(cJSON_GetObjectItem(total, "saved_usd")->valuedouble * 1e9), 6 * cost);
    cJSON *groups = cJSON_GetObjectItem(j, "groups");
    assert_int_equal(cJSON_GetArraySize(groups), 2);
    cJSON_Delete(j);
}

static void test_costs_errors(void **state)
{
    fx_t *f = *state;
    char args[256], out[4096];
    snprintf(args, sizeof args, "costs --store sqlite:%s/missing.db", f->dir);
    assert_int_equal(run(f, args, out, sizeof out), 1);
    assert_non_null(strstr(out, "no store at"));
    snprintf(args, sizeof args, "costs --store sqlite:%s --group-by region", f->path);
    assert_int_equal(run(f, args, out, sizeof out), 2);
    assert_non_null(strstr(out, "region"));
    assert_int_equal(run(f, "costs --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--group-by"));
}

/* -c FILE takes the store from the config's store: key; --store wins over it. */
static void test_costs_from_config(void **state)
{
    fx_t *f = *state;
    char cfg[192], args[512], out[8192], want[8192];
    snprintf(cfg, sizeof cfg, "%s/switchyard.yaml", f->dir);
    FILE *fp = fopen(cfg, "w");
    assert_non_null(fp);
    fprintf(fp,
            "store: sqlite:%s\n"
            "tiers:\n"
            "  cloud:\n"
            "    kind: openai\n"
            "    base_url: http://127.0.0.1:9/v1\n"
            "    model: m\n"
            "    privacy: external\n",
            f->path);
    fclose(fp);
    snprintf(args, sizeof args, "costs -c %s --json", cfg);
    int rc = run(f, args, out, sizeof out);
    if (rc) fail_msg("costs -c: exit %d: %s", rc, out);
    snprintf(args, sizeof args, "costs --store sqlite:%s --json", f->path);
    assert_int_equal(run(f, args, want, sizeof want), 0);
    assert_string_equal(out, want);
    snprintf(args, sizeof args, "costs -c %s --store sqlite:%s/other.db", cfg, f->dir);
    assert_int_equal(run(f, args, out, sizeof out), 1);
    assert_non_null(strstr(out, "other.db"));
}

static void test_audit(void **state)
{
    fx_t *f = *state;
    char args[256], out[8192];
    snprintf(args, sizeof args, "audit --store sqlite:%s", f->path);
    assert_int_equal(run(f, args, out, sizeof out), 1);
    assert_non_null(strstr(out, "chatcmpl-10"));
    assert_non_null(strstr(out, "EMAIL_ADDRESS"));
    assert_null(strstr(out, "chatcmpl-11")); /* PII that stayed local is fine */
    assert_non_null(strstr(out, "chatcmpl-12"));
    assert_non_null(strstr(out, "EMAIL_ADDRESS,US_SSN"));
    assert_non_null(strstr(out, "chatcmpl-13"));
    assert_null(strstr(out, "PERSON"));      /* masked: left as a placeholder */
    assert_null(strstr(out, "chatcmpl-14")); /* masked only: no violation */
    assert_non_null(strstr(out, "3 requests sent personal data to an external tier in clear"));
    /* Rows 10 to 13 are at 2000 to 2300 ms; from 3 s on the ledger is clean. */
    snprintf(args, sizeof args, "audit --store sqlite:%s --since 00003", f->path);
    assert_int_equal(run(f, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "no personal data reached an external tier in clear"));
    snprintf(args, sizeof args, "audit --store sqlite:%s --json", f->path);
    assert_int_equal(run(f, args, out, sizeof out), 1);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    cJSON *v = cJSON_GetObjectItem(j, "violations");
    assert_int_equal(cJSON_GetArraySize(v), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(v, 0), "id")->valuestring,
                        "chatcmpl-10");
    cJSON *v2 = cJSON_GetArrayItem(v, 2);
    assert_string_equal(cJSON_GetObjectItem(v2, "pii_types")->valuestring, "EMAIL_ADDRESS");
    assert_string_equal(cJSON_GetObjectItem(v2, "masked")->valuestring, "PERSON");
    cJSON_Delete(j);
    snprintf(args, sizeof args, "audit --store sqlite:%s/none.db", f->dir);
    assert_int_equal(run(f, args, out, sizeof out), 2);
}

int main(void)
{
    const char *b = getenv("SY_BUILD");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/switchyard", b ? b : "build/asan");
    if (access(bin, X_OK) != 0) {
        printf("1..0 # SKIP %s not built (set SY_BUILD to the build folder)\n", bin);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_costs_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_costs_json_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_costs_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_costs_from_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
