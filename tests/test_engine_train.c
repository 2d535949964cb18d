/* test_engine_train.c — the training code: the backward pass against central finite
 * differences on a tiny model (grouped-query attention, tied and separate
 * classifiers), the training forward pass against the engine's forward pass on a
 * saved model, AdamW fitting one sequence, the cosine schedule, and determinism. */
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

#include "base/mem.h"
#include "engine/engine.h"
#include "engine/forward.h"
#include "engine/train.h"

static const model_config_t tiny = {.dim = 16,
                                    .hidden_dim = 24,
                                    .n_layers = 2,
                                    .n_heads = 4,
                                    .n_kv_heads = 2,
                                    .head_dim = 4,
                                    .n_vocab = 37,
                                    .n_ctx = 32,
                                    .rope_dim = 4,
                                    .rope_base = 10000.0f,
                                    .norm_eps = 1e-5f};

static uint64_t rs = 12345;
static double urand(void)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rs >> 11) / 9007199254740992.0;
}

/* A tiny model with weights large enough for every path to matter. */
static train_model_t *tiny_model(bool tied)
{
    train_model_t *tm = train_model_new(&tiny, tied, 7);
    for (size_t i = 0; i < tm->n_params; i++)
        tm->params[i] = (float)(urand() - 0.5) * 0.8f;
    /* norms near 1 */
    for (int l = 0; l < tiny.n_layers; l++)
        for (int i = 0; i < tiny.dim; i++) {
            tm->w.layers[l].attn_norm[i] = 1.0f + (float)(urand() - 0.5) * 0.4f;
            tm->w.layers[l].ffn_norm[i] = 1.0f + (float)(urand() - 0.5) * 0.4f;
        }
    return tm;
}

#define T 7
#define K 3

static void make_batch(int *tok, int *ids, float *p)
{
    for (int t = 0; t < T; t++) {
        tok[t] = (int)(urand() * tiny.n_vocab);
        float z = 0.0f;
        for (int j = 0; j < K; j++) {
            ids[t * K + j] = (t * 5 + j * 11) % tiny.n_vocab;
            p[t * K + j] = (float)(0.1 + urand());
            z += p[t * K + j];
        }
        for (int j = 0; j < K; j++)
            p[t * K + j] /= z;
    }
}

static void check_gradients(bool tied)
{
    train_model_t *tm = tiny_model(tied);
    train_ctx_t *c = train_ctx_new(tm, T);
    int tok[T], ids[T * K];
    float p[T * K];
    make_batch(tok, ids, p);
    float *grad = calloc(tm->n_params, sizeof(float));
    double kl;
    double loss = train_forward_backward(c, tok, T, ids, p, K, grad, 1.0f, &kl);
    assert_true(loss > 0.0 && kl > 0.0 && kl < loss);
    /* Every third parameter of a small model: central differences at e and e/2,
     * combined (Richardson) so the e^2 term cancels. */
    const float eps = 2e-2f;
    int checked = 0, bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < tm->n_params; i += 3) {
        float w0 = tm->params[i];
        double d[2];
        for (int h = 0; h < 2; h++) {
            float e = h ? eps / 2 : eps;
            tm->params[i] = w0 + e;
            double lp = train_forward_backward(c, tok, T, ids, p, K, NULL, 1.0f, NULL);
            tm->params[i] = w0 - e;
            double lm = train_forward_backward(c, tok, T, ids, p, K, NULL, 1.0f, NULL);
            d[h] = (lp - lm) / (2.0 * (double)e);
        }
        tm->params[i] = w0;
        double num = (4.0 * d[1] - d[0]) / 3.0, an = grad[i];
        double err = fabs(num - an) / (fabs(num) + fabs(an) + 1e-2);
        if (err > worst) worst = err;
        if (err > 1e-2) {
            if (bad < 5) print_message("# param %zu: analytic %.6f numeric %.6f\n", i, an, num);
            bad++;
        }
        checked++;
    }
    print_message("# %s classifier: %d parameters checked, worst relative error %.2e\n",
                  tied ? "tied" : "separate", checked, worst);
    assert_int_equal(bad, 0);
    free(grad);
    train_ctx_free(c);
    train_model_free(tm);
}

static void test_gradients_tied(void **state)
{
    (void)state;
    check_gradients(true);
}

static void test_gradients_separate(void **state)
{
    (void)state;
    check_gradients(false);
}

/* A saved model runs in the engine with the logits the training pass computed. */
static void test_engine_agrees(void **state)
{
    (void)state;
    char shared[512], bin[600], tok[600], err[256];
    const char *env = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : "../shared");
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skipped: shared data not found under %s\n", shared);
        skip();
    }
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    /* the real model copied into training form: same logits as the engine */
    train_model_t *tm;
    assert_int_equal(train_model_from(e->model, &tm), 0);
    int ids[20];
    int n = engine_tokenize(e, "Once upon a time, a cat", 23, true, false, ids, 20);
    train_ctx_t *c = train_ctx_new(tm, 20);
    int tid[20] = {0};
    float tp[20];
    for (int i = 0; i < 20; i++)
        tp[i] = 1.0f;
    assert_true(train_forward_backward(c, ids, n, tid, tp, 1, NULL, 1.0f, NULL) > 0);
    engine_session_t *s = engine_session_new(e, NULL);
    const float *lg = engine_session_append(s, ids, n, true);
    assert_non_null(lg);
    for (int i = 0; i < n * 512; i++)
        assert_float_equal(lg[i], train_ctx_logits(c)[i], 2e-3);
    engine_session_free(s);
    /* pruned-shape model (fewer heads than dim / head_dim) saved and reloaded */
    char path[] = "/tmp/sy-train-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    model_config_t pc = tm->cfg;
    pc.n_heads = 4, pc.n_kv_heads = 2, pc.hidden_dim = 64;
    train_model_t *pm = train_model_new(&pc, true, 3);
    assert_int_equal(train_model_save(pm, e->model, "pruned-shape", path), 0);
    engine_t *e2;
    assert_int_equal(engine_load(path, NULL, &e2, err, sizeof err), 0);
    assert_int_equal(e2->model->cfg.n_heads, 4);
    assert_int_equal(e2->model->cfg.head_dim, 8);
    train_ctx_t *c2 = train_ctx_new(pm, 20);
    assert_true(train_forward_backward(c2, ids, n, tid, tp, 1, NULL, 1.0f, NULL) > 0);
    s = engine_session_new(e2, NULL);
    lg = engine_session_append(s, ids, n, true);
    for (int i = 0; i < n * 512; i++)
        assert_float_equal(lg[i], train_ctx_logits(c2)[i], 2e-3);
    engine_session_free(s);
    unlink(path);
    engine_free(e2);
    train_ctx_free(c2);
    train_model_free(pm);
    train_ctx_free(c);
    train_model_free(tm);
    engine_free(e);
}

/* AdamW fits one batch: the loss falls to a fraction of where it started; the same
 * seed gives the same parameters. */
static void test_adamw_fits(void **state)
{
    (void)state;
    float *final[2];
    for (int run = 0; run < 2; run++) {
        train_model_t *tm = train_model_new(&tiny, true, 11);
        train_ctx_t *c = train_ctx_new(tm, T);
        train_adamw_t o;
        train_adamw_init(&o, tm, 0.01f);
        rs = 99;
        int tok[T], ids[T * K];
        float p[T * K];
        make_batch(tok, ids, p);
        float *grad = calloc(tm->n_params, sizeof(float));
        double kl0 = 0, kl = 0;
        for (int step = 0; step < 150; step++) {
            memset(grad, 0, tm->n_params * sizeof(float));
            train_forward_backward(c, tok, T, ids, p, K, grad, 1.0f / T, &kl);
            if (step == 0) kl0 = kl;
            train_adamw_step(&o, tm->params, grad, train_lr_cosine(step, 150, 10, 1e-2f, 1e-3f),
                             1.0f);
        }
        print_message("# KL %.4f -> %.4f\n", kl0, kl);
        assert_true(kl < 0.25 * kl0);
        final[run] = malloc(tm->n_params * sizeof(float));
        memcpy(final[run], tm->params, tm->n_params * sizeof(float));
        if (run == 1) assert_memory_equal(final[0], final[1], tm->n_params * sizeof(float));
        free(grad);
        train_adamw_deinit(&o);
        train_ctx_free(c);
        train_model_free(tm);
    }
    free(final[0]);
    free(final[1]);
}

static void test_schedule(void **state)
{
    (void)state;
    assert_float_equal(train_lr_cosine(0, 100, 10, 1.0f, 0.1f), 0.1f, 1e-6);
    assert_float_equal(train_lr_cosine(9, 100, 10, 1.0f, 0.1f), 1.0f, 1e-6);
    assert_float_equal(train_lr_cosine(10, 100, 10, 1.0f, 0.1f), 1.0f, 1e-6);
    assert_float_equal(train_lr_cosine(55, 100, 10, 1.0f, 0.1f), 0.55f, 1e-6);
    assert_float_equal(train_lr_cosine(100, 100, 10, 1.0f, 0.1f), 0.1f, 1e-6);
    assert_true(train_lr_cosine(30, 100, 10, 1.0f, 0.1f) >
                train_lr_cosine(31, 100, 10, 1.0f, 0.1f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_tied), cmocka_unit_test(test_gradients_separate),
        cmocka_unit_test(test_engine_agrees),  cmocka_unit_test(test_adamw_fits),
        cmocka_unit_test(test_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
