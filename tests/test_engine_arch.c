/* test_engine_arch.c — the architecture flags of model.c/forward.c on files written by
 * tests/tools/gguf_gen (the comparison with llama.cpp itself is tests/blackbox/arch.t):
 * what each architecture sets when loaded, batched prefill against one token at a
 * time, the Mistral window, the llama3 scaling keys against the rope_freqs tensor,
 * LongRoPE's choice by context, and files the loader must refuse with a message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/model.h"

static char shared[512], tool[512], dir[64];

/* Writes variant/type with gguf_gen into the temporary folder; the path in out.
 * Skips the test when the tool or the vocabulary is not there. */
static void gen(const char *variant, const char *type, char *out, size_t n)
{
    char tok[600], cmd[2048];
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(tok, R_OK) || access(tool, X_OK)) {
        print_message("# skipped: %s or %s is absent (set SY_SHARED, build the tools)\n", tok,
                      tool);
        skip();
    }
    snprintf(out, n, "%s/%s-%s.gguf", dir, variant, type);
    snprintf(cmd, sizeof cmd, "%s %s %s %s %s", tool, tok, variant, type, out);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

static model_t *load(const char *variant, const char *type)
{
    char path[256], err[512] = "";
    gen(variant, type, path, sizeof path);
    model_t *m;
    if (model_load(path, NULL, &m, err, sizeof err)) fail_msg("%s: %s", path, err);
    return m;
}

static const int IDS[12] = {1, 45, 300, 12, 99, 7, 260, 400, 33, 5, 128, 77};

/* Logits of every position of IDS, all tokens in one batch (out: 12 x n_vocab). */
static void logits_batched(const model_t *m, int n_ctx, float *out)
{
    forward_state_t *s = forward_state_new(m, n_ctx, 12, NULL);
    assert_non_null(forward_run(s, IDS, 12, 0, true));
    memcpy(out, s->logits, 12 * (size_t)m->cfg.n_vocab * sizeof(float));
    forward_state_free(s);
}

/* The same, one token at a time (the decode path). */
static void logits_stepwise(const model_t *m, int n_ctx, float *out)
{
    forward_state_t *s = forward_state_new(m, n_ctx, 1, NULL);
    for (int i = 0; i < 12; i++) {
        const float *lg = forward_run(s, &IDS[i], 1, i, false);
        assert_non_null(lg);
        memcpy(out + (size_t)i * m->cfg.n_vocab, lg, (size_t)m->cfg.n_vocab * sizeof(float));
    }
    forward_state_free(s);
}

/* max |a - b| / max |b| over n values. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, sc = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        sc = fmax(sc, fabs((double)b[i]));
    }
    return d / sc;
}

/* Each architecture's flags as loaded. */
static void test_flags(void **state)
{
    (void)state;
    model_t *m = load("gemma3", "f32");
    const model_config_t *c = &m->cfg;
    assert_string_equal(m->arch, "gemma3");
    assert_int_equal(c->head_dim, 32); /* key_length, not dim / heads (16) */
    assert_int_equal(c->n_swa, 4);
    for (int l = 0; l < 6; l++) /* five windowed layers, then a global one */
        assert_int_equal(m->layers[l].swa, l < 5);
    assert_true(c->embd_scale && c->ffn_gelu);
    assert_float_equal(c->rope_base_swa, 10000.0f, 0);
    assert_float_equal(c->rope_scale, 0.125f, 1e-7); /* linear factor 8, global layers */
    assert_float_equal(c->rope_scale_swa, 1.0f, 0);
    assert_float_equal(c->attn_softcap, 0.0f, 0);
    assert_non_null(m->layers[0].q_norm);
    assert_non_null(m->layers[0].post_ffn_norm);
    model_free(m);

    m = load("gemma2", "f32");
    assert_true(m->layers[0].swa && !m->layers[1].swa);
    assert_float_equal(m->cfg.attn_softcap, 8.0f, 0);
    assert_float_equal(m->cfg.final_softcap, 6.0f, 0);
    assert_null(m->layers[0].q_norm);
    model_free(m);

    m = load("phi3", "q8_0"); /* fused tensors become consecutive row ranges */
    const model_layer_t *L = &m->layers[0];
    size_t rb = kern_row_size(L->wq.type, (size_t)L->wq.cols);
    if (L->wq.type == KERN_Q8_0) {
        assert_ptr_equal((const char *)L->wq.data + rb * (size_t)L->wq.rows, L->wk.data);
        assert_ptr_equal((const char *)L->wk.data + rb * (size_t)L->wk.rows, L->wv.data);
    }
    assert_int_equal(L->w_gate.rows, m->cfg.hidden_dim);
    assert_int_equal(L->w_up.rows, m->cfg.hidden_dim);
    assert_non_null(m->rope_long);
    assert_float_equal(m->cfg.rope_mscale, 1.19f, 1e-6);
    assert_int_equal(m->cfg.n_swa, 0);
    model_free(m);

    m = load("qwen3", "f32");
    assert_true(m->cfg.rope_neox && m->layers[1].k_norm && !m->layers[1].swa);
    model_free(m);
}

/* Batched prefill and token-by-token decoding give the same logits, windows and all. */
static void test_batched_equals_stepwise(void **state)
{
    (void)state;
    static const char *variants[] = {"llama3", "mistral", "qwen3", "gemma2",
                                     "gemma3", "phi3",    "phi4"};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        model_t *m = load(variants[v], "f32");
        size_t n = 12 * (size_t)m->cfg.n_vocab;
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        logits_batched(m, 64, a);
        logits_stepwise(m, 64, b);
        double d = rel_diff(a, b, n);
        if (d > 1e-5) fail_msg("%s: batched vs stepwise %g", variants[v], d);
        free(a);
        free(b);
        model_free(m);
    }
}

/* Mistral's window: the same weights as "llama", identical logits while every
 * position is within the window of 8, different once earlier ones fall out. */
static void test_mistral_window(void **state)
{
    (void)state;
    model_t *w = load("mistral", "f32"), *m = load("llama", "f32");
    assert_int_equal(w->cfg.n_swa, 8);
    assert_true(w->layers[0].swa && w->layers[1].swa && !m->layers[0].swa);
    size_t V = (size_t)m->cfg.n_vocab;
    float *a = malloc(12 * V * sizeof *a), *b = malloc(12 * V * sizeof *b);
    logits_batched(w, 64, a);
    logits_batched(m, 64, b);
    assert_memory_equal(a, b, 8 * V * sizeof *a);
    for (int p = 8; p < 12; p++)
        assert_true(rel_diff(a + p * V, b + p * V, V) > 1e-3);
    free(a);
    free(b);
    model_free(w);
    model_free(m);
}

/* rope.scaling.type "llama3" with its keys gives what the converter's rope_freqs
 * tensor gives (factors computed in float here, in double by the generator). */
static void test_llama3_keys(void **state)
{
    (void)state;
    model_t *t = load("llama3", "f32"), *k = load("llama3-keys", "f32");
    assert_non_null(k->rope_freqs);
    for (int i = 0; i < k->cfg.rope_dim / 2; i++)
        assert_float_equal(k->rope_freqs[i], t->rope_freqs[i], 1e-5 * t->rope_freqs[i]);
    size_t n = 12 * (size_t)t->cfg.n_vocab;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    logits_batched(t, 64, a);
    logits_batched(k, 64, b);
    assert_true(rel_diff(b, a, n) < 1e-5);
    free(a);
    free(b);
    model_free(t);
    model_free(k);
}

/* LongRoPE: short factors for a session within the original context (32), long ones
 * beyond it, as llama.cpp picks them by its context size. */
static void test_longrope_by_context(void **state)
{
    (void)state;
    model_t *m = load("phi3", "f32");
    size_t n = 12 * (size_t)m->cfg.n_vocab;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    logits_batched(m, 32, a);
    logits_batched(m, 33, b);
    logits_batched(m, 64, c);
    assert_true(rel_diff(a, b, n) > 1e-3);
    assert_memory_equal(b, c, n * sizeof *b);
    free(a);
    free(b);
    free(c);
    model_free(m);
}

/* Files the loader refuses, each with a message naming what is wrong. */
static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *variant;
        int rc;
        const char *says;
    } cases[] = {
        {"bad-rope", SY_EUNSUPPORTED, "rope.scaling.type 'dynamic'"},
        {"bad-vlen", SY_EUNSUPPORTED, "value_length"},
        {"bad-post", SY_ENOTFOUND, "post_ffw_norm"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256], err[512] = "";
        gen(cases[i].variant, "f32", path, sizeof path);
        model_t *m = NULL;
        assert_int_equal(model_load(path, NULL, &m, err, sizeof err), cases[i].rc);
        assert_null(m);
        if (!strstr(err, cases[i].says)) fail_msg("%s: message '%s'", cases[i].variant, err);
    }
}

/* A Gemma-27B-shaped layer count with zero heads once divided by the head count
 * while choosing the query scale; now the file is refused. */
static void test_zero_heads(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/zero-heads.gguf", dir);
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "gemma2");
    const char *keys[] = {"gemma2.embedding_length", "gemma2.feed_forward_length",
                          "gemma2.block_count",      "gemma2.attention.head_count",
                          "gemma2.context_length",   "gemma2.attention.key_length"};
    const uint32_t vals[] = {64, 128, 46, 0, 512, 32};
    for (int i = 0; i < 6; i++)
        gguf_writer_set_u32(w, keys[i], vals[i]);
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    model_t *m = NULL;
    assert_true(model_load(path, NULL, &m, err, sizeof err) < 0);
    assert_null(m);
    assert_true(err[0] != 0);
}

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("SY_SHARED"), *b = getenv("SY_BUILD");
    snprintf(shared, sizeof shared, "%s", s ? s : "../shared");
    snprintf(tool, sizeof tool, "%s/tools/gguf_gen", b ? b : "build/asan");
    snprintf(dir, sizeof dir, "/tmp/sy-arch-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_batched_equals_stepwise),
        cmocka_unit_test(test_mistral_window),
        cmocka_unit_test(test_llama3_keys),
        cmocka_unit_test(test_longrope_by_context),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_zero_heads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
