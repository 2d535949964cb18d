/* test_engine_distill.c — distillation and pruning on stories260K: a seeded run is
 * reproducible bit for bit and lowers the KL divergence; pruning gives the shapes
 * asked for and a model that loads and generates; bad options are refused with a
 * message. (The backward pass itself is checked in test_engine_train.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/distill.h"
#include "engine/engine.h"
#include "engine/prune.h"

static char shared[512], dir[64];
static engine_t *teacher;

static int setup(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) return 0;
    snprintf(dir, sizeof dir, "/tmp/sy-distill-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    return engine_load(bin, tok, &teacher, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    engine_free(teacher);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) return -1;
    }
    return 0;
}

#define need_teacher()                                                                             \
    do {                                                                                           \
        if (!teacher) {                                                                            \
            print_message("# skipped: shared data not found under %s\n", shared);                  \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The whole file, for byte comparison. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void small_opts(distill_opts_t *o)
{
    distill_opts_default(o);
    o->dim = 16, o->n_layers = 2, o->n_heads = 2, o->steps = 30, o->batch = 2, o->seq_len = 24;
    o->warmup = 3, o->lr = 1e-2f, o->lr_min = 1e-3f, o->quiet = true;
}

static void test_distill_seeded(void **state)
{
    (void)state;
    need_teacher();
    char p1[128], p2[128], p3[128], err[256];
    snprintf(p1, sizeof p1, "%s/a.gguf", dir);
    snprintf(p2, sizeof p2, "%s/b.gguf", dir);
    snprintf(p3, sizeof p3, "%s/c.gguf", dir);
    distill_opts_t o;
    small_opts(&o);
    distill_report_t r1, r2;
    assert_int_equal(distill_run(teacher, &o, p1, &r1, err, sizeof err), 0);
    assert_int_equal(distill_run(teacher, &o, p2, &r2, err, sizeof err), 0);
    print_message("# KL %.3f -> %.3f over %ld tokens\n", r1.kl_first, r1.kl_last, r1.tokens);
    assert_true(r1.kl_last < 0.8 * r1.kl_first);
    o.seed = 2;
    assert_int_equal(distill_run(teacher, &o, p3, NULL, err, sizeof err), 0);
    size_t n1, n2, n3;
    char *a = slurp(p1, &n1), *b = slurp(p2, &n2), *c = slurp(p3, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_int_equal(n1, n3);
    assert_true(memcmp(a, c, n1) != 0);
    free(a), free(b), free(c);
    /* the student loads, keeps the tokenizer and generates */
    engine_t *st;
    assert_int_equal(engine_load(p1, NULL, &st, err, sizeof err), 0);
    assert_int_equal(st->model->cfg.dim, 16);
    assert_int_equal(st->model->cfg.n_vocab, 512);
    assert_int_equal(st->model->cfg.n_ctx, 24); /* the positions it was trained on */
    engine_free(st);

    /* a corpus mixed in */
    char corpus[600];
    snprintf(corpus, sizeof corpus, "%s/data/corpora/tinystories_val_subset.txt", shared);
    o.corpus = corpus, o.steps = 4;
    assert_int_equal(distill_run(teacher, &o, p3, &r1, err, sizeof err), 0);
    assert_int_equal(r1.tokens, 4 * 2 * 24);
}

static void test_distill_refuses(void **state)
{
    (void)state;
    need_teacher();
    char p[128], err[256];
    snprintf(p, sizeof p, "%s/bad.gguf", dir);
    distill_opts_t o;
    small_opts(&o);
    o.seq_len = 4096;
    err[0] = 0;
    assert_int_equal(distill_run(teacher, &o, p, NULL, err, sizeof err), SY_EINVAL);
    assert_non_null(strstr(err, "seq_len"));
    small_opts(&o);
    o.top_k = 0;
    assert_int_equal(distill_run(teacher, &o, p, NULL, err, sizeof err), SY_EINVAL);
    small_opts(&o);
    o.dim = 18, o.n_heads = 4; /* 18 / 4 is not whole */
    assert_int_equal(distill_run(teacher, &o, p, NULL, err, sizeof err), SY_EINVAL);
    assert_non_null(strstr(err, "heads"));
    small_opts(&o);
    o.corpus = "/nonexistent/corpus.txt";
    assert_true(distill_run(teacher, &o, p, NULL, err, sizeof err) < 0);
    assert_non_null(strstr(err, "corpus"));
    assert_int_equal(access(p, F_OK), -1);
}

/* Pruning a quarter of the heads of a GQA model (8 heads, 4 kv): one whole group, as
 * two heads cannot leave each of four groups evenly; FFN 172 -> 129. */
static void test_prune(void **state)
{
    (void)state;
    need_teacher();
    char p[128], err[256], calib[600];
    snprintf(p, sizeof p, "%s/pruned.gguf", dir);
    snprintf(calib, sizeof calib, "%s/data/corpora/tinystories_val_subset.txt", shared);
    prune_opts_t o;
    prune_opts_default(&o);
    o.calib = calib, o.calib_tokens = 256, o.recover_steps = 3, o.quiet = true;
    o.rec.batch = 1, o.rec.seq_len = 16;
    prune_report_t r;
    assert_int_equal(prune_model(teacher, &o, p, &r, err, sizeof err), 0);
    assert_int_equal(r.n_heads, 6);
    assert_int_equal(r.n_kv_heads, 3);
    assert_int_equal(r.hidden_dim, 129);
    assert_int_equal(r.calib_tokens, 257);
    assert_true(r.params_out < r.params_in);
    assert_int_equal(r.rec.tokens, 3 * 16);
    engine_t *pm;
    assert_int_equal(engine_load(p, NULL, &pm, err, sizeof err), 0);
    assert_int_equal(pm->model->cfg.n_heads, 6);
    assert_int_equal(pm->model->cfg.head_dim, 8);
    engine_session_t *s = engine_session_new(pm, NULL);
    engine_gen_params_t gp = {.max_tokens = 10};
    sample_params_default(&gp.sample);
    engine_gen_result_t gr;
    int bos = 1;
    assert_int_equal(engine_generate(s, &bos, 1, &gp, NULL, NULL, &gr), 0);
    assert_int_equal(gr.n_generated, 10);
    engine_session_free(s);
    engine_free(pm);

    /* half the heads: one from each group */
    o.heads = 0.5f, o.ffn = 0.0f, o.calib = NULL, o.recover_steps = 0;
    assert_int_equal(prune_model(teacher, &o, p, &r, err, sizeof err), 0);
    assert_int_equal(r.n_heads, 4);
    assert_int_equal(r.n_kv_heads, 4);
    assert_int_equal(r.hidden_dim, 172);

    o.ffn = 1.5f;
    assert_int_equal(prune_model(teacher, &o, p, &r, err, sizeof err), SY_EINVAL);
    assert_non_null(strstr(err, "fractions"));
    prune_opts_default(&o);
    o.calib = "/nonexistent/calib.txt";
    assert_true(prune_model(teacher, &o, p, &r, err, sizeof err) < 0);
    assert_non_null(strstr(err, "calibration"));
}

int main(void)
{
    const char *env = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_seeded),
        cmocka_unit_test(test_distill_refuses),
        cmocka_unit_test(test_prune),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
