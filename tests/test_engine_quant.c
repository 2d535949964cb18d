/* test_engine_quant.c — GGUF file quantization: which tensors convert to what, the
 * tensor and metadata order llama.cpp writes, the converted bytes, refusals; and,
 * when llama.cpp's library from node-llama-cpp is installed under bench/, byte
 * identity with llama_model_quantize (--pure) on stories260K converted to GGUF, and
 * the mix mode's tensor types against llama.cpp's default Q4_0 mix. */
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
#include "engine/convert.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"

static char tmpdir[64];
static char shared[512];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

/* ------------------------------------------------------- synthetic file ---- */

typedef struct src_tensor {
    const char *name;
    kern_type_t type;
    int n_dims;
    uint64_t ne[2];
} src_tensor_t;

static const src_tensor_t src_tensors[] = {
    {"token_embd.weight", KERN_F32, 2, {64, 10}},
    {"blk.10.attn_q.weight", KERN_F32, 2, {64, 4}},
    {"blk.2.attn_norm.weight", KERN_F32, 1, {64, 1}},
    {"blk.2.ffn_down.weight", KERN_F32, 2, {40, 4}}, /* rows of 40: F16 */
    {"blk.2.attn_k.weight", KERN_F16, 2, {32, 3}},   /* F16 source */
    {"output_norm.weight", KERN_F32, 1, {64, 1}},
    {"blk.2.extra.bias", KERN_F32, 2, {32, 2}}, /* not a weight: copied */
};
#define N_SRC (sizeof src_tensors / sizeof src_tensors[0])

static float src_value(size_t t, size_t k)
{
    return (float)((int)((t * 7919 + k * 104729) % 2001) - 1000) / 377.0f;
}

/* Writes the synthetic model; data[] receives owned buffers (caller frees). */
static void write_synthetic(const char *path)
{
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "general.file_type", 0);
    gguf_writer_set_u32(w, "general.quantization_version", 1);
    gguf_writer_set_f32(w, "test.last", 1.5f);
    void *bufs[N_SRC];
    for (size_t t = 0; t < N_SRC; t++) {
        const src_tensor_t *s = &src_tensors[t];
        size_t n = s->ne[0] * s->ne[1];
        float *f = malloc(n * sizeof(float));
        for (size_t k = 0; k < n; k++)
            f[k] = src_value(t, k);
        size_t nbytes = kern_row_size(s->type, s->ne[0]) * s->ne[1];
        bufs[t] = malloc(nbytes);
        for (size_t r = 0; r < s->ne[1]; r++)
            kern_quantize_row(s->type, f + r * s->ne[0],
                              (char *)bufs[t] + r * kern_row_size(s->type, s->ne[0]), s->ne[0]);
        free(f);
        assert_int_equal(
            gguf_writer_add_tensor(w, s->name, s->type, s->n_dims, s->ne, bufs[t], nbytes), 0);
    }
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    for (size_t t = 0; t < N_SRC; t++)
        free(bufs[t]);
}

static void test_synthetic_q4_0(void **state)
{
    (void)state;
    char in[128], out[128], err[256] = "";
    tmp_path(in, sizeof in, "syn.gguf");
    tmp_path(out, sizeof out, "syn-q4.gguf");
    write_synthetic(in);
    quant_stats_t st;
    int rc = quant_file(in, out, KERN_Q4_0, 2, &st, err, sizeof err);
    if (rc) fail_msg("quant_file: %s", err);
    assert_int_equal(st.n_tensors, N_SRC);
    assert_int_equal(st.n_quantized, 3);
    assert_int_equal(st.n_f16, 1);
    assert_int_equal(st.n_copied, 3);

    gguf_t *g;
    assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
    /* llama.cpp's order: outside blk.N by name, then by layer number, then by name */
    static const char *order[] = {"output_norm.weight",  "token_embd.weight",
                                  "blk.2.attn_k.weight", "blk.2.attn_norm.weight",
                                  "blk.2.extra.bias",    "blk.2.ffn_down.weight",
                                  "blk.10.attn_q.weight"};
    assert_int_equal(g->n_tensors, N_SRC);
    for (size_t i = 0; i < N_SRC; i++)
        assert_string_equal(g->tensors[i].name, order[i]);
    /* metadata order kept, the two version keys moved to the end */
    assert_int_equal(g->n_kv, 4);
    assert_string_equal(g->kv[0].key, "general.architecture");
    assert_string_equal(g->kv[1].key, "test.last");
    assert_string_equal(g->kv[2].key, "general.quantization_version");
    assert_string_equal(g->kv[3].key, "general.file_type");
    uint32_t v;
    assert_int_equal(gguf_get_u32(g, "general.file_type", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(gguf_get_u32(g, "general.quantization_version", &v), 0);
    assert_int_equal(v, 2);

    /* types and bytes: each converted row is kern_quantize_row of the f32 source */
    for (size_t t = 0; t < N_SRC; t++) {
        const src_tensor_t *s = &src_tensors[t];
        const gguf_tensor_t *o = gguf_find_tensor(g, s->name);
        assert_non_null(o);
        kern_type_t want = quant_target_type(s->name, s->n_dims, s->ne, s->type, KERN_Q4_0);
        assert_int_equal(o->type, want);
        size_t rb = kern_row_size(want, s->ne[0]);
        float *f = malloc(s->ne[0] * sizeof(float)), *back = malloc(s->ne[0] * sizeof(float));
        void *row = malloc(s->ne[0] * sizeof(float)); /* fits any row type */
        for (size_t r = 0; r < s->ne[1]; r++) {
            for (size_t k = 0; k < s->ne[0]; k++)
                f[k] = src_value(t, r * s->ne[0] + k);
            if (s->type == KERN_F16) { /* the source itself was rounded to f16 */
                kern_quantize_row(KERN_F16, f, row, s->ne[0]);
                kern_dequantize_row(KERN_F16, row, back, s->ne[0]);
                memcpy(f, back, s->ne[0] * sizeof(float));
            }
            kern_quantize_row(want, f, row, s->ne[0]);
            assert_memory_equal((const char *)o->data + r * rb, row, rb);
        }
        free(f), free(back), free(row);
    }
    assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->type, KERN_Q4_0);
    assert_int_equal(gguf_find_tensor(g, "blk.2.attn_k.weight")->type, KERN_Q4_0);
    assert_int_equal(gguf_find_tensor(g, "blk.10.attn_q.weight")->type, KERN_Q4_0);
    assert_int_equal(gguf_find_tensor(g, "blk.2.ffn_down.weight")->type, KERN_F16);
    assert_int_equal(gguf_find_tensor(g, "blk.2.attn_norm.weight")->type, KERN_F32);
    assert_int_equal(gguf_find_tensor(g, "blk.2.extra.bias")->type, KERN_F32);
    gguf_free(g);
}

/* Squared error of one row of type t against the f32 source. */
static double row_error(kern_type_t t, const void *row, const float *f, size_t n)
{
    float *back = malloc(n * sizeof(float));
    kern_dequantize_row(t, row, back, n);
    double e = 0;
    for (size_t k = 0; k < n; k++)
        e += ((double)f[k] - back[k]) * ((double)f[k] - back[k]);
    free(back);
    return e;
}

/* The mix mode's type rules, tensor by tensor. */
static void test_mix_types(void **state)
{
    (void)state;
    const uint64_t ok[2] = {64, 8}, odd[2] = {40, 8};
    assert_int_equal(quant_mix_type("output.weight", 2, ok, KERN_F32, KERN_Q4_0, 1), KERN_Q8_0);
    assert_int_equal(quant_mix_type("token_embd.weight", 2, ok, KERN_F32, KERN_Q4_0, 0), KERN_Q8_0);
    assert_int_equal(quant_mix_type("token_embd.weight", 2, ok, KERN_F32, KERN_Q4_0, 1), KERN_Q4_0);
    assert_int_equal(quant_mix_type("blk.3.attn_v.weight", 2, ok, KERN_F32, KERN_Q4_0, 1),
                     KERN_Q8_0);
    assert_int_equal(quant_mix_type("blk.3.attn_q.weight", 2, ok, KERN_F32, KERN_Q4_0, 1),
                     KERN_Q4_0);
    assert_int_equal(quant_mix_type("blk.3.attn_v.weight", 2, odd, KERN_F32, KERN_Q4_0, 1),
                     KERN_F16);
    assert_int_equal(quant_mix_type("blk.3.attn_norm.weight", 1, ok, KERN_F32, KERN_Q4_0, 1),
                     KERN_F32);
    /* a Q8_0 file is the same in both modes */
    assert_int_equal(quant_mix_type("output.weight", 2, ok, KERN_F32, KERN_Q8_0, 1), KERN_Q8_0);
    assert_int_equal(quant_mix_type("blk.3.attn_q.weight", 2, ok, KERN_F32, KERN_Q8_0, 1),
                     KERN_Q8_0);
}

/* Mix mode on the synthetic file: the tied embedding stays Q8_0 (reference
 * rounding), and every Q4_0 row is no worse than ggml's reference rounding of the same
 * values (up to the f16 rounding of the scale), and better on the whole tensor. */
static void test_synthetic_q4_0_mix(void **state)
{
    (void)state;
    char in[128], out[128], err[256] = "";
    tmp_path(in, sizeof in, "synm.gguf");
    tmp_path(out, sizeof out, "synm-q4.gguf");
    write_synthetic(in);
    quant_stats_t st;
    quant_opts_t o = {.type = KERN_Q4_0, .n_threads = 2, .pure = 0};
    int rc = quant_file_opts(in, out, &o, &st, err, sizeof err);
    if (rc) fail_msg("quant_file_opts: %s", err);
    assert_int_equal(st.n_quantized, 2);
    assert_int_equal(st.n_kept, 1);
    assert_int_equal(st.n_f16, 1);
    gguf_t *g;
    assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
    assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->type, KERN_Q8_0);
    double ours_total = 0, ref_total = 0;
    for (size_t t = 0; t < N_SRC; t++) {
        const src_tensor_t *s = &src_tensors[t];
        const gguf_tensor_t *ot = gguf_find_tensor(g, s->name);
        if (ot->type != KERN_Q4_0 && ot->type != KERN_Q8_0) continue;
        size_t rb = kern_row_size(ot->type, s->ne[0]);
        float *f = malloc(s->ne[0] * sizeof(float));
        void *row = malloc(s->ne[0] * sizeof(float));
        for (size_t r = 0; r < s->ne[1]; r++) {
            for (size_t k = 0; k < s->ne[0]; k++)
                f[k] = src_value(t, r * s->ne[0] + k);
            if (s->type == KERN_F16) { /* the source itself was rounded to f16 */
                kern_quantize_row(KERN_F16, f, row, s->ne[0]);
                kern_dequantize_row(KERN_F16, row, f, s->ne[0]);
            }
            kern_quantize_row(ot->type, f, row, s->ne[0]);
            const void *mine = (const char *)ot->data + r * rb;
            if (ot->type == KERN_Q8_0) {
                assert_memory_equal(mine, row, rb);
                continue;
            }
            double e_ours = row_error(KERN_Q4_0, mine, f, s->ne[0]);
            double e_ref = row_error(KERN_Q4_0, row, f, s->ne[0]);
            assert_true(e_ours <= e_ref * 1.001 + 1e-12);
            ours_total += e_ours;
            ref_total += e_ref;
        }
        free(f), free(row);
    }
    assert_true(ours_total < ref_total * 0.95);
    print_message("# q4_0 squared error: searched %.4g, reference %.4g\n", ours_total, ref_total);
    gguf_free(g);
}

/* Already-quantized input is refused (llama-quantize needs --allow-requantize), as are
 * other targets and missing files. */
static void test_refusals(void **state)
{
    (void)state;
    char in[128], q8[128], out[128], err[256] = "";
    tmp_path(in, sizeof in, "syn2.gguf");
    tmp_path(q8, sizeof q8, "syn2-q8.gguf");
    tmp_path(out, sizeof out, "syn2-q4.gguf");
    write_synthetic(in);
    assert_int_equal(quant_file(in, q8, KERN_Q8_0, 1, NULL, err, sizeof err), 0);
    assert_int_equal(quant_file(q8, out, KERN_Q4_0, 1, NULL, err, sizeof err), SY_EUNSUPPORTED);
    assert_non_null(strstr(err, "already q8_0"));
    /* same type again: nothing to convert, every tensor copied */
    quant_stats_t st;
    assert_int_equal(quant_file(q8, out, KERN_Q8_0, 1, &st, err, sizeof err), 0);
    assert_int_equal(st.n_quantized + st.n_f16, 0);
    assert_true(files_equal(q8, out));
    assert_int_equal(quant_file(in, out, KERN_F16, 1, NULL, err, sizeof err), SY_EINVAL);
    assert_true(quant_file("/nonexistent/x.gguf", out, KERN_Q8_0, 1, NULL, err, sizeof err) < 0);
}

/* ------------------------------------------------ against llama.cpp ---- */

static const char *llama_libdir = "bench/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";

/* stories260K (llama2.c) converted to GGUF, quantized by us and by llama.cpp's
 * llama_model_quantize through tests/tools/llama_quantize: the files are identical. */
static void test_identical_to_llama_cpp(void **state)
{
    (void)state;
    char bin[600], tok[600], lib[700], tool[600];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    snprintf(lib, sizeof lib, "%s/libllama.v0.4.0.so", llama_libdir);
    const char *build = getenv("SY_BUILD");
    snprintf(tool, sizeof tool, "%s/tools/llama_quantize", build ? build : "build/asan");
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skip: stories260K not under %s\n", shared);
        skip();
    }
    if (access(lib, R_OK) || access(tool, X_OK)) {
        print_message("# skip: llama.cpp not installed (cd bench && npm i) or %s not built\n",
                      tool);
        skip();
    }
    char f32[128], err[512] = "";
    tmp_path(f32, sizeof f32, "s260k.gguf");
    model_t *m;
    assert_int_equal(model_load_llama2c(bin, tok, &m, err, sizeof err), 0);
    assert_int_equal(convert_model_to_gguf(m, f32), 0);
    model_free(m);
    static const char *types[] = {"q8_0", "q4_0"};
    for (int i = 0; i < 2; i++) {
        char ours[128], theirs[160], cmd[2048];
        tmp_path(ours, sizeof ours, types[i]);
        snprintf(theirs, sizeof theirs, "%s-llama", ours);
        assert_int_equal(
            quant_file(f32, ours, i == 0 ? KERN_Q8_0 : KERN_Q4_0, 2, NULL, err, sizeof err), 0);
        /* the tool loads a C++ library we do not own: no leak check in the child */
        snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 %s %s %s %s %s >/dev/null 2>&1",
                 tool, llama_libdir, f32, theirs, types[i]);
        int rc = system(cmd);
        if (rc != 0) fail_msg("llama.cpp quantizer failed (%d): %s", rc, cmd);
        if (!files_equal(ours, theirs))
            fail_msg("%s: %s differs from llama.cpp's %s", types[i], ours, theirs);
        print_message("# %s: identical to llama.cpp's llama_model_quantize --pure\n", types[i]);
    }

    /* mix mode: the tensor types llama.cpp's default Q4_0 mix picks, plus attn_v */
    char ours[128], theirs[160], cmd[2048];
    tmp_path(ours, sizeof ours, "q4_0-mix");
    snprintf(theirs, sizeof theirs, "%s-llama", ours);
    quant_opts_t o = {.type = KERN_Q4_0, .n_threads = 2, .pure = 0};
    assert_int_equal(quant_file_opts(f32, ours, &o, NULL, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 %s %s %s %s q4_0 --mix >/dev/null 2>&1",
             tool, llama_libdir, f32, theirs);
    int rc = system(cmd);
    if (rc != 0) fail_msg("llama.cpp quantizer failed (%d): %s", rc, cmd);
    gguf_t *a, *b;
    assert_int_equal(gguf_open(ours, &a, err, sizeof err), 0);
    assert_int_equal(gguf_open(theirs, &b, err, sizeof err), 0);
    assert_int_equal(a->n_tensors, b->n_tensors);
    int n_v = 0;
    for (size_t i = 0; i < a->n_tensors; i++) {
        const gguf_tensor_t *tb = gguf_find_tensor(b, a->tensors[i].name);
        assert_non_null(tb);
        if (strstr(a->tensors[i].name, ".attn_v.weight")) {
            assert_int_equal(tb->type, KERN_Q4_0);
            assert_int_equal(a->tensors[i].type, KERN_Q8_0);
            n_v++;
        } else if (a->tensors[i].type != tb->type) {
            fail_msg("%s: ours %s, llama.cpp %s", a->tensors[i].name,
                     kern_type_name(a->tensors[i].type), kern_type_name(tb->type));
        }
    }
    assert_int_equal(n_v, 5);
    assert_int_equal(gguf_find_tensor(a, "token_embd.weight")->type, KERN_Q8_0);
    gguf_free(a);
    gguf_free(b);
}

/* Perplexity (llama.cpp's chunk layout, ctx 256) of a model over the start of the
 * TinyStories validation text. */
#define PPL_CTX    256
#define PPL_CHUNKS 24
static double ppl_of(const char *path, const char *text, size_t len)
{
    char err[256] = "";
    engine_t *e;
    if (engine_load(path, NULL, &e, err, sizeof err)) fail_msg("%s: %s", path, err);
    int max = (int)len + 16;
    int *ids = malloc((size_t)max * sizeof(int));
    int n = engine_tokenize(e, text, len, false, false, ids, max);
    assert_true(engine_ppl_n_chunks(n, PPL_CTX, ENGINE_PPL_HALF) >= PPL_CHUNKS);
    engine_session_t *s =
        engine_session_new(e, &(engine_session_opts_t){.n_ctx = PPL_CTX, .n_threads = 2});
    double nll = 0;
    long scored = 0;
    for (int c = 0; c < PPL_CHUNKS; c++)
        assert_int_equal(engine_ppl_chunk(s, ids, n, PPL_CTX, c, ENGINE_PPL_HALF, &nll, &scored),
                         0);
    engine_session_free(s);
    engine_free(e);
    free(ids);
    return exp(nll / (double)scored);
}

/* The serving mix keeps Q4_0 stories260K within 5% of F32's perplexity, where the
 * pure file (ggml's reference rounding everywhere) loses about 10%. */
static void test_mix_perplexity(void **state)
{
    (void)state;
    char bin[600], tok[600], txt[600];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    snprintf(txt, sizeof txt, "%s/data/corpora/tinystories_val_subset.txt", shared);
    if (access(bin, R_OK) || access(tok, R_OK) || access(txt, R_OK)) {
        print_message("# skip: stories260K or the TinyStories text not under %s\n", shared);
        skip();
    }
    static char text[64 << 10];
    FILE *f = fopen(txt, "rb");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    char f32[128], mix[128], pure[128], err[512] = "";
    tmp_path(f32, sizeof f32, "ppl-f32.gguf");
    tmp_path(mix, sizeof mix, "ppl-q4-mix.gguf");
    tmp_path(pure, sizeof pure, "ppl-q4-pure.gguf");
    model_t *m;
    assert_int_equal(model_load_llama2c(bin, tok, &m, err, sizeof err), 0);
    assert_int_equal(convert_model_to_gguf(m, f32), 0);
    model_free(m);
    quant_opts_t o = {.type = KERN_Q4_0, .n_threads = 2, .pure = 0};
    assert_int_equal(quant_file_opts(f32, mix, &o, NULL, err, sizeof err), 0);
    o.pure = 1;
    assert_int_equal(quant_file_opts(f32, pure, &o, NULL, err, sizeof err), 0);
    double p_f32 = ppl_of(f32, text, len), p_mix = ppl_of(mix, text, len),
           p_pure = ppl_of(pure, text, len);
    print_message("# perplexity (%d chunks of %d): f32 %.4f, q4_0 mix %.4f (%+.2f%%), "
                  "q4_0 pure %.4f (%+.2f%%)\n",
                  PPL_CHUNKS, PPL_CTX, p_f32, p_mix, 100 * (p_mix / p_f32 - 1), p_pure,
                  100 * (p_pure / p_f32 - 1));
    assert_true(p_mix < p_f32 * 1.05);
    assert_true(p_mix < p_pure);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sy-quant-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    const char *e = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", e ? e : "../shared");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_q4_0), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_mix_types),      cmocka_unit_test(test_synthetic_q4_0_mix),
        cmocka_unit_test(test_mix_perplexity), cmocka_unit_test(test_identical_to_llama_cpp),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
