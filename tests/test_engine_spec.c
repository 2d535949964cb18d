/* test_engine_spec.c — speculative decoding on stories260K: greedy output identical to
 * the target alone for 50 prompts (drafts: a Q4_0 copy, a distilled student, a pruned
 * model), speculative sampling keeps the target's next-token distribution (chi-square,
 * fixed seed, significance 0.001), and pairs that must be refused (another
 * vocabulary, a draft larger than the target). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/convert.h"
#include "engine/engine.h"
#include "engine/prune.h"
#include "engine/quant.h"
#include "engine/spec.h"
#include "engine/distill.h"

static char shared[512];
static char tmpdir[64];

#define skip_no_data()                                                                             \
    do {                                                                                           \
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);      \
        skip();                                                                                    \
    } while (0)

/* The target (stories260K as GGUF F32) and its Q4_0 copy, written once per run. */
static engine_t *target, *draft_q4;
static char path_f32[128], path_q4[128];

static int setup(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) return 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sy-spec-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(path_f32, sizeof path_f32, "%s/s-f32.gguf", tmpdir);
    snprintf(path_q4, sizeof path_q4, "%s/s-q4.gguf", tmpdir);
    model_t *m;
    if (model_load(bin, tok, &m, err, sizeof err)) return -1;
    int rc = convert_model_to_gguf(m, path_f32);
    model_free(m);
    quant_opts_t qo = {.type = KERN_Q4_0};
    if (rc || quant_file_opts(path_f32, path_q4, &qo, NULL, err, sizeof err)) return -1;
    if (engine_load(path_f32, NULL, &target, err, sizeof err) ||
        engine_load(path_q4, NULL, &draft_q4, err, sizeof err))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    engine_free(target);
    engine_free(draft_q4);
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd)) return -1;
    }
    return 0;
}

typedef struct ids {
    int v[256];
    int n;
} ids_t;

static int collect(void *ud, const engine_token_t *t)
{
    ids_t *c = ud;
    assert_true(c->n < 256);
    c->v[c->n++] = t->id;
    return 0;
}

/* 50 prompts: the first words of the first 50 stories of the TinyStories file. */
static int load_prompts(char prompts[50][64])
{
    char path[600];
    snprintf(path, sizeof path, "%s/data/corpora/tinystories_val_subset.txt", shared);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (n < 50 && fgets(line, sizeof line, f)) {
        if (strlen(line) < 40) continue;
        int words = 0, i = 0;
        for (; line[i] && i < 63; i++) /* 3 to 7 words */
            if (line[i] == ' ' && ++words == 3 + n % 5) break;
        memcpy(prompts[n], line, (size_t)i);
        prompts[n][i] = 0;
        n++;
    }
    fclose(f);
    return n;
}

/* Greedy: for every prompt and several draft lengths, spec output == target alone. */
static void check_greedy_identity(const engine_t *draft, const char *what, double *acceptance)
{
    static char prompts[50][64];
    assert_int_equal(load_prompts(prompts), 50);
    engine_session_t *ts = engine_session_new(target, NULL);
    engine_session_t *ds = engine_session_new(draft, NULL);
    engine_session_t *bs = engine_session_new(target, NULL);
    engine_gen_params_t p = {.max_tokens = 40};
    sample_params_default(&p.sample);
    p.sample.temperature = 0.0f;
    long drafted = 0, accepted = 0;
    for (int i = 0; i < 50; i++) {
        int ids[128];
        int n = engine_tokenize(target, prompts[i], strlen(prompts[i]), true, false, ids, 128);
        assert_true(n > 1 && n < 128);
        ids_t a = {0}, b = {0};
        engine_gen_result_t ra, rb;
        spec_stats_t st;
        int k = 1 + i % 8;
        assert_int_equal(spec_generate(ts, ds, ids, n, &p, k, collect, &a, &ra, &st), 0);
        assert_int_equal(engine_generate(bs, ids, n, &p, collect, &b, &rb), 0);
        if (a.n != b.n || memcmp(a.v, b.v, (size_t)a.n * sizeof(int)))
            fail_msg("%s draft, prompt %d '%s', draft-max %d: output differs", what, i, prompts[i],
                     k);
        assert_int_equal(ra.finish, rb.finish);
        assert_true(st.accepted <= st.drafted);
        assert_true(st.rounds <= ra.n_generated);
        drafted += st.drafted;
        accepted += st.accepted;
    }
    *acceptance = (double)accepted / (double)drafted;
    print_message("# %s draft: acceptance %.3f over 50 prompts\n", what, *acceptance);
    engine_session_free(ts);
    engine_session_free(ds);
    engine_session_free(bs);
}

static void test_greedy_q4(void **state)
{
    (void)state;
    if (!target) skip_no_data();
    double acc;
    check_greedy_identity(draft_q4, "q4_0", &acc);
    assert_true(acc > 0.5); /* the same model at 4 bits mostly agrees */
}

/* A student distilled for a few steps and a pruned copy of the target: weak drafts,
 * so most rounds reject, and the output must still be the target's. */
static void test_greedy_student_and_pruned(void **state)
{
    (void)state;
    if (!target) skip_no_data();
    char path[160], err[256];
    distill_opts_t o;
    distill_opts_default(&o);
    o.dim = 32, o.n_layers = 2, o.n_heads = 4, o.steps = 3, o.batch = 2, o.seq_len = 32;
    o.quiet = true;
    snprintf(path, sizeof path, "%s/student.gguf", tmpdir);
    assert_int_equal(distill_run(target, &o, path, NULL, err, sizeof err), 0);
    engine_t *st;
    assert_int_equal(engine_load(path, NULL, &st, err, sizeof err), 0);
    assert_int_equal(spec_check(target, st, err, sizeof err), 0);
    double acc;
    check_greedy_identity(st, "distilled", &acc);
    engine_free(st);

    prune_opts_t po;
    prune_opts_default(&po);
    po.ffn = 0.5f, po.heads = 0.5f, po.calib_tokens = 64;
    snprintf(path, sizeof path, "%s/pruned.gguf", tmpdir);
    assert_int_equal(prune_model(target, &po, path, NULL, err, sizeof err), 0);
    engine_t *pr;
    assert_int_equal(engine_load(path, NULL, &pr, err, sizeof err), 0);
    assert_int_equal(spec_check(target, pr, err, sizeof err), 0);
    check_greedy_identity(pr, "pruned", &acc);
    engine_free(pr);
}

/* Upper critical value of chi-square with df degrees of freedom at significance
 * 0.001 (Wilson-Hilferty; z = 3.0902). */
static double chi2_crit_001(int df)
{
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + 3.0902 * sqrt(a);
    return df * t * t * t;
}

/* Pearson's statistic of counts against probabilities over V ids, bins with expected
 * count below 5 pooled into one. *df gets the degrees of freedom. */
static double chi2(const int *counts, const float *probs, int V, int N, int *df)
{
    double stat = 0.0, pe = 0.0, po = 0.0;
    int bins = 0;
    for (int v = 0; v < V; v++) {
        double e = (double)probs[v] * N;
        if (e >= 5.0) {
            stat += (counts[v] - e) * (counts[v] - e) / e;
            bins++;
        } else {
            pe += e, po += counts[v];
        }
    }
    if (pe >= 5.0) {
        stat += (po - pe) * (po - pe) / pe;
        bins++;
    } else {
        /* mass where the target gives (almost) none: any sizeable count is an error */
        stat += po > pe + 5.0 ? 1e9 : 0.0;
    }
    *df = bins - 1;
    return stat;
}

/* Sampling at temperature 1 from a fixed context: the first token the speculative
 * loop emits (drafts of 4, so accepted and resampled tokens both occur) must follow
 * the target's distribution. The draft alone must not (the test has power). */
static void check_distribution(const engine_t *draft, const char *what)
{
    const char *ctxs[] = {"She wanted to", "Lily was very"}; /* entropy 2.9, 3.1 nats */
    const int N = 2000;
    int V = target->model->cfg.n_vocab;
    int *counts = calloc((size_t)V, sizeof *counts);
    int *dcounts = calloc((size_t)V, sizeof *dcounts);
    float *p = malloc((size_t)V * sizeof *p), *q = malloc((size_t)V * sizeof *q);
    engine_session_t *ts = engine_session_new(target, NULL);
    engine_session_t *ds = engine_session_new(draft, NULL);
    engine_gen_params_t gp = {.max_tokens = 5};
    gp.sample = (sample_params_t){.temperature = 1.0f, .top_p = 1.0f, .repeat_penalty = 1.0f};
    for (size_t c = 0; c < 2; c++) {
        int ids[64];
        int n = engine_tokenize(target, ctxs[c], strlen(ctxs[c]), true, false, ids, 64);
        memset(counts, 0, (size_t)V * sizeof *counts);
        memset(dcounts, 0, (size_t)V * sizeof *dcounts);
        sampler_t *smp = sample_new(V, &gp.sample);
        sample_dist(smp, engine_session_prefill(ts, ids, n, NULL), ids, n, p);
        sample_dist(smp, engine_session_prefill(ds, ids, n, NULL), ids, n, q);
        long drafted = 0, accepted = 0;
        for (int i = 0; i < N; i++) {
            ids_t out = {0};
            engine_gen_result_t r;
            spec_stats_t st;
            gp.sample.seed = 1000u * c + (unsigned)i;
            assert_int_equal(spec_generate(ts, ds, ids, n, &gp, 4, collect, &out, &r, &st), 0);
            assert_true(out.n >= 1);
            counts[out.v[0]]++;
            drafted += st.drafted, accepted += st.accepted;
            /* the draft alone: a draw from q with the same uniform stream */
            double u = sample_uniform(smp), acc = 0.0;
            int d = V - 1;
            for (int v = 0; v < V; v++)
                if ((acc += q[v]) > u) {
                    d = v;
                    break;
                }
            dcounts[d]++;
        }
        int df, ddf;
        double s = chi2(counts, p, V, N, &df), sd = chi2(dcounts, p, V, N, &ddf);
        print_message("# %s draft, context %zu: acceptance %.3f, chi2 %.1f (df %d, critical "
                      "%.1f at 0.001); draft alone chi2 %.1f (df %d)\n",
                      what, c, (double)accepted / drafted, s, df, chi2_crit_001(df), sd, ddf);
        assert_true(df >= 3);
        assert_true(s < chi2_crit_001(df));
        assert_true(sd > chi2_crit_001(ddf)); /* the test tells q from p */
        sample_free(smp);
    }
    engine_session_free(ts);
    engine_session_free(ds);
    free(counts), free(dcounts), free(p), free(q);
}

static void test_sampling_keeps_distribution(void **state)
{
    (void)state;
    if (!target) skip_no_data();
    /* A barely trained student: a draft far from the target, so rejections and
     * resampling from max(0, p - q) carry most of the mass. */
    char path[160], err[256];
    distill_opts_t o;
    distill_opts_default(&o);
    o.dim = 32, o.n_layers = 1, o.n_heads = 2, o.steps = 2, o.batch = 1, o.seq_len = 16;
    o.quiet = true;
    snprintf(path, sizeof path, "%s/weak.gguf", tmpdir);
    assert_int_equal(distill_run(target, &o, path, NULL, err, sizeof err), 0);
    engine_t *weak;
    assert_int_equal(engine_load(path, NULL, &weak, err, sizeof err), 0);
    check_distribution(weak, "weak");
    engine_free(weak);
    /* and a close draft, where most tokens are accepted */
    check_distribution(draft_q4, "q4_0");
}

/* Another vocabulary, a draft larger than the target, bad parameters. */
static void test_refusals(void **state)
{
    (void)state;
    if (!target) skip_no_data();
    char bin[600], tok[600], err[512];
    snprintf(bin, sizeof bin, "%s/data/models/aidreams260K/aidreams260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/aidreams260K/tok512_aidreams.bin", shared);
    engine_t *other;
    assert_int_equal(engine_load(bin, tok, &other, err, sizeof err), 0);
    assert_int_equal(spec_check(target, other, err, sizeof err), SY_EINVAL);
    assert_non_null(strstr(err, "vocabulary"));
    engine_free(other);

    err[0] = 0;
    assert_int_equal(spec_check(draft_q4, target, err, sizeof err), SY_EINVAL);
    assert_non_null(strstr(err, "larger than the target"));
    assert_int_equal(spec_check(target, draft_q4, err, sizeof err), 0);

    engine_session_t *ts = engine_session_new(target, NULL);
    engine_session_t *ds = engine_session_new(draft_q4, NULL);
    engine_gen_params_t p = {.max_tokens = 4};
    sample_params_default(&p.sample);
    int ids[2] = {1, 400};
    engine_gen_result_t r;
    spec_stats_t st;
    assert_int_equal(spec_generate(ts, ds, ids, 2, &p, 0, NULL, NULL, &r, &st), SY_EINVAL);
    assert_int_equal(spec_generate(ts, ds, ids, 2, &p, SPEC_MAX_DRAFT + 1, NULL, NULL, &r, &st),
                     SY_EINVAL);
    ids[1] = 512;
    assert_int_equal(spec_generate(ts, ds, ids, 2, &p, 4, NULL, NULL, &r, &st), SY_EINVAL);
    p.stop[0] = "x";
    ids[1] = 400;
    assert_int_equal(spec_generate(ts, ds, ids, 2, &p, 4, NULL, NULL, &r, &st), SY_EUNSUPPORTED);
    engine_session_free(ts);
    engine_session_free(ds);
}

/* The context limit: generation runs to the end of a short context with drafting
 * cut to fit, and still equals the target alone. */
static void test_context_end(void **state)
{
    (void)state;
    if (!target) skip_no_data();
    engine_session_opts_t so = {.n_ctx = 24};
    engine_session_t *ts = engine_session_new(target, &so), *ds = engine_session_new(draft_q4, &so);
    engine_session_t *bs = engine_session_new(target, &so);
    engine_gen_params_t p = {.max_tokens = 100};
    sample_params_default(&p.sample);
    p.sample.temperature = 0.0f;
    int ids[2] = {1, 400};
    ids_t a = {0}, b = {0};
    engine_gen_result_t ra, rb;
    spec_stats_t st;
    assert_int_equal(spec_generate(ts, ds, ids, 2, &p, 8, collect, &a, &ra, &st), 0);
    assert_int_equal(engine_generate(bs, ids, 2, &p, collect, &b, &rb), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.v, b.v, (size_t)a.n * sizeof(int));
    engine_session_free(ts);
    engine_session_free(ds);
    engine_session_free(bs);

    /* A draft context shorter than the prompt: the target decodes alone. */
    ts = engine_session_new(target, NULL);
    ds = engine_session_new(draft_q4, &(engine_session_opts_t){.n_ctx = 8});
    bs = engine_session_new(target, NULL);
    int long_ids[12] = {1, 400, 261, 298, 370, 315, 432, 376, 317, 261, 298, 370};
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    p.max_tokens = 20;
    assert_int_equal(spec_generate(ts, ds, long_ids, 12, &p, 4, collect, &a, &ra, &st), 0);
    assert_int_equal(st.drafted, 0);
    assert_int_equal(engine_generate(bs, long_ids, 12, &p, collect, &b, &rb), 0);
    assert_int_equal(a.n, 20);
    assert_memory_equal(a.v, b.v, (size_t)a.n * sizeof(int));
    /* and one that holds the prompt but runs out while generating drafts until then */
    engine_session_free(ds);
    ds = engine_session_new(draft_q4, &(engine_session_opts_t){.n_ctx = 16});
    memset(&a, 0, sizeof a);
    assert_int_equal(spec_generate(ts, ds, long_ids, 12, &p, 4, collect, &a, &ra, &st), 0);
    assert_true(st.drafted > 0);
    assert_memory_equal(a.v, b.v, (size_t)a.n * sizeof(int));
    engine_session_free(ts);
    engine_session_free(ds);
    engine_session_free(bs);
}

int main(void)
{
    const char *env = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_q4),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_context_end),
        cmocka_unit_test(test_sampling_keeps_distribution),
        cmocka_unit_test(test_greedy_student_and_pruned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
