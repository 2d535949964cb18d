/* route.c — time of one routing decision with every stage on, for a 2 KB prompt:
 * PII scan, text statistics, task classifier, need-of-cloud model, budget, policy
 * (rules and bandit), tier state, reason trace. Prints p50/p99/p999 per
 * configuration, with the stages added one at a time so their cost is visible.
 *
 *   route [--iters N] [--models DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "route/router.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static route_model_t *load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = mem_alloc((size_t)n);
    size_t got = fread(p, 1, (size_t)n, f);
    fclose(f);
    char err[128];
    route_model_t *m = route_model_parse(p, got, err, sizeof err);
    if (!m) fprintf(stderr, "%s: %s\n", path, err);
    mem_free(p);
    return m;
}

/* A 2 KB prompt: a question with a code block, numbers and prose, no PII. */
static void make_prompt(char *out, size_t n)
{
    static const char *const parts[] = {
        "Can you explain why the following function returns the wrong total when the list "
        "holds negative numbers? ",
        "```python\ndef total(xs):\n    s = 0\n    for x in xs:\n        if x > 0:\n"
        "            s += x\n    return s\n```\n",
        "I tried it with [3, -2, 7, -1] and expected 7 but got 10. The documentation of our "
        "billing service says totals must include refunds, which are negative amounts. ",
        "Please also suggest a test case and describe the complexity of the fix in plain "
        "words for the code review. ",
    };
    size_t k = 0, i = 0;
    while (k + 1 < n) {
        const char *p = parts[i++ % 4];
        size_t l = strlen(p);
        if (k + l >= n) l = n - 1 - k;
        memcpy(out + k, p, l);
        k += l;
    }
    out[k] = 0;
}

typedef struct setup {
    const char *name;
    bool pii, cls, cloud, bandit;
} setup_t;

int main(int argc, char **argv)
{
    int iters = 200000;
    const char *dir = "models";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--models") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: route [--iters N] [--models DIR]\n");
            return 2;
        }
    }
    char prompt[2048];
    make_prompt(prompt, sizeof prompt);
    route_text_t texts[2] = {{"system", "You are a helpful assistant.", 28},
                             {"user", prompt, strlen(prompt)}};
    route_tier_t tiers[2] = {
        {"edge", ROUTE_PRIVACY_ON_DEVICE, ROUTE_ROLE_EDGE, true, false, true, 0.05, 0.2, 0, 0},
        {"cloud", ROUTE_PRIVACY_EXTERNAL, ROUTE_ROLE_CLOUD, true, false, false, 2.5, 10, 0,
         ROUTE_CAPS_ALL},
    };
    char err[256];
    pii_options_t po = {NULL, 0.5f};
    pii_scanner_t *pii = pii_scanner_new(&po, err, sizeof err);
    if (!pii) fprintf(stderr, "PII scanner: %s (PII rows skipped)\n", err);
    static const setup_t setups[] = {
        {"rules, no stages", false, false, false, false},
        {"+ PII scan", true, false, false, false},
        {"+ task classifier", true, true, false, false},
        {"+ need-of-cloud (all)", true, true, true, false},
        {"bandit, all stages", true, true, true, true},
    };
    uint64_t *t = mem_alloc((size_t)iters * sizeof *t);
    printf("one decision, %zu-byte prompt + system message, %d iterations\n\n", strlen(prompt),
           iters);
    printf("%-24s %9s %9s %9s %9s %8s\n", "configuration", "p50_us", "p99_us", "p999_us", "mean_us",
           "ratio");
    double base = 0;
    for (size_t c = 0; c < sizeof setups / sizeof *setups; c++) {
        const setup_t *st = &setups[c];
        if (st->pii && !pii) continue;
        route_config_t cfg;
        route_config_defaults(&cfg);
        cfg.policy = st->bandit ? ROUTE_POLICY_BANDIT : ROUTE_POLICY_RULES;
        router_t *r = router_new(&cfg, st->pii ? pii : NULL, err, sizeof err);
        if (st->cls) {
            route_model_t *m = load(dir, "taskclass.bin");
            if (!m) {
                fprintf(stderr, "no %s/taskclass.bin: run from the repository root\n", dir);
                return 1;
            }
            router_set_classifier(r, m);
        }
        if (st->cloud) router_set_cloud_model(r, load(dir, "router.bin"));
        router_scratch_t *s = router_scratch_new(r);
        route_decision_t d;
        route_input_t in = {.texts = texts, .n_texts = 2, .n_messages = 2, .max_tokens = 512};
        for (int i = 0; i < 2000; i++)
            router_decide(r, s, &in, tiers, 2, &d); /* warm */
        double sum = 0;
        for (int i = 0; i < iters; i++) {
            in.rand_seed = (uint64_t)i;
            uint64_t t0 = clock_mono_ns();
            router_decide(r, s, &in, tiers, 2, &d);
            t[i] = clock_mono_ns() - t0;
            sum += (double)t[i];
            if (st->bandit && i % 64 == 0) router_feedback(r, &d.features, d.tier, 0.5);
        }
        qsort(t, (size_t)iters, sizeof *t, cmp_u64);
        double mean = sum / iters / 1e3;
        if (c == 0) base = mean;
        printf("%-24s %9.2f %9.2f %9.2f %9.2f %7.1fx\n", st->name, (double)t[iters / 2] / 1e3,
               (double)t[(size_t)iters * 99 / 100] / 1e3,
               (double)t[(size_t)iters * 999 / 1000] / 1e3, mean, mean / base);
        router_scratch_free(s);
        router_free(r);
    }
    printf("\ntarget: p99 <= 20 us with every stage on\n");
    mem_free(t);
    pii_scanner_free(pii);
    return 0;
}
