/* gguf_gen.c — writes a small GGUF model with random weights for one architecture,
 * with llama.cpp's tensor names and metadata keys, so the same file can be run by
 * llama.cpp and by switchyard and their logits compared (tests/blackbox/arch.t).
 *
 *   gguf_gen TOK.bin VARIANT f32|f16|q8_0|q4_0 OUT.gguf [SEED]
 *
 * TOK.bin is a llama2.c tokenizer (stories260K's tok512.bin): its 512 pieces become
 * the file's tokenizer.ggml.* section, so llama.cpp loads the vocabulary. Variants:
 *
 *   llama    llama 2 shape: adjacent-pair RoPE, grouped-query attention, own output
 *   llama3   rope_freqs computed as llama.cpp's converter does for rope_type llama3
 *            (factor 8, low 1, high 4, original context 64), tied output
 *   mistral  llama (the same weights) with llama.attention.sliding_window 8
 *   qwen2    q/k/v biases
 *   qwen3    attn_q_norm / attn_k_norm, key_length 32 (heads wider than dim / heads)
 *   gemma2   key_length 32, post norms, GeGLU, soft-capping 8 / 6, window 4 every other
 *            layer, norm weights around 1 (the converter's 1 + w)
 *   gemma3   q/k norms, six layers with window 4 (5 local to 1 global), local RoPE
 *            base 10000, global base 1e6 with linear scaling factor 8
 *   phi3     attn_qkv and gate|up fused, LongRoPE long/short factors, attn_factor,
 *            original context 32
 *   phi4     phi3 with grouped-query attention and RoPE on 3/4 of each head
 *            (Phi-4-mini's partial rotary factor)
 *   llama3-keys  llama3's weights with rope.scaling.type "llama3" and its keys instead
 *            of the rope_freqs tensor (llama.cpp does not read this form)
 *   qwen2-yarn  qwen2's weights with YaRN scaling (factor 8, original context 4096)
 *   bad-rope, bad-vlen, bad-post  files the engine must refuse with a message:
 *            rope.scaling.type "dynamic" (llama), value_length != key_length (qwen3), gemma2
 * without post_ffw_norm
 *
 * Matrices are F32, F16, or Q8_0/Q4_0 by the engine's reference quantizer (rows of 32
 * columns); norms and RoPE factors stay F32, as llama.cpp's converter writes them.
 * The same seed gives the same file. Exit status 0, 2 on usage errors, 1 on failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/tokenizer.h"

#define GEN_MAX_BUFS 512

/* The shape and features of one variant. */
typedef struct spec {
    const char *name;
    const char *arch; /* general.architecture */
    int dim, hidden, layers, heads, kv_heads;
    int head_dim; /* attention.key_length written when nonzero */
    int ctx;      /* context_length */
    float rope_base;
    bool tied, qkv_bias, qk_norm, gemma, fused;
    const char *weights; /* the variant whose random weights these are (seed) */
} spec_t;

/* Shapes shared by several variants. */
#define LLAMA  "llama", 64, 128, 2, 4, 2, 0, 512, 10000.0f, false, false, false, false, false
#define LLAMA3 "llama", 64, 128, 2, 4, 2, 0, 512, 500000.0f, true, false, false, false, false
#define QWEN3  "qwen3", 64, 128, 2, 4, 2, 32, 512, 1000000.0f, true, false, true, false, false
#define GEMMA2 "gemma2", 64, 128, 2, 4, 2, 32, 512, 10000.0f, true, false, false, true, false
static const spec_t SPECS[] = {
    {"llama", LLAMA, "llama"},
    {"llama3", LLAMA3, "llama3"},
    {"mistral", LLAMA, "llama"},
    {"qwen2", "qwen2", 64, 128, 2, 4, 2, 0, 512, 1000000.0f, true, true, false, false, false,
     "qwen2"},
    {"qwen3", QWEN3, "qwen3"},
    {"gemma2", GEMMA2, "gemma2"},
    {"gemma3", "gemma3", 64, 128, 6, 4, 1, 32, 512, 1000000.0f, true, false, true, true, false,
     "gemma3"},
    {"phi3", "phi3", 64, 128, 2, 4, 4, 0, 4096, 10000.0f, false, false, false, false, true, "phi3"},
    {"phi4", "phi3", 64, 128, 2, 4, 2, 0, 4096, 10000.0f, false, false, false, false, true, "phi4"},
    {"llama3-keys", LLAMA3, "llama3"},
    {"qwen2-yarn", "qwen2", 64, 128, 2, 4, 2, 0, 32768, 1000000.0f, true, true, false, false, false,
     "qwen2"},
    {"bad-rope", LLAMA, "llama"},
    {"bad-vlen", QWEN3, "qwen3"},
    {"bad-post", GEMMA2, "gemma2"},
};

/* The file being built: the writer and the buffers it borrows until written. */
typedef struct gen {
    gguf_writer_t *w;
    kern_type_t type; /* of the matrices */
    uint64_t rng;
    void *bufs[GEN_MAX_BUFS];
    int n_bufs;
    int rc;
} gen_t;

/* Uniform in [-1, 1) from splitmix64. */
static float rnd(gen_t *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / (double)(1ull << 52) - 1.0);
}

static void *keep(gen_t *g, size_t bytes)
{
    if (g->n_bufs == GEN_MAX_BUFS) {
        fprintf(stderr, "gguf_gen: too many tensors\n");
        exit(1);
    }
    return g->bufs[g->n_bufs++] = mem_alloc(bytes);
}

/* A 1-D F32 tensor of n values: centre + spread * uniform. */
static void add_vector(gen_t *g, const char *name, int n, float centre, float spread)
{
    float *v = keep(g, (size_t)n * sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = centre + spread * rnd(g);
    uint64_t ne[1] = {(uint64_t)n};
    if (!g->rc) g->rc = gguf_writer_add_tensor(g->w, name, KERN_F32, 1, ne, v, (size_t)n * 4);
}

/* A (rows, cols) matrix, uniform with standard deviation gain / sqrt(cols), stored in
 * the file's matrix type. */
static void add_matrix(gen_t *g, const char *name, int rows, int cols, float gain)
{
    float *f = mem_alloc((size_t)rows * (size_t)cols * sizeof *f);
    const float a = gain * sqrtf(3.0f / (float)cols);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        f[i] = a * rnd(g);
    size_t rb = kern_row_size(g->type, (size_t)cols);
    uint8_t *q = keep(g, rb * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        const float *src = f + (size_t)r * cols;
        uint8_t *dst = q + (size_t)r * rb;
        if (g->type == KERN_F32)
            memcpy(dst, src, (size_t)cols * sizeof(float));
        else if (g->type == KERN_F16)
            for (int i = 0; i < cols; i++)
                ((kern_f16_t *)dst)[i] = kern_f32_to_f16(src[i]);
        else
            kern_quantize_row(g->type, src, dst, (size_t)cols);
    }
    mem_free(f);
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
    if (!g->rc) g->rc = gguf_writer_add_tensor(g->w, name, g->type, 2, ne, q, rb * (size_t)rows);
}

static bool is(const spec_t *s, const char *name)
{
    return !strcmp(s->name, name);
}

/* "<arch>.<key>" setters. */
static void set_u32(gen_t *g, const spec_t *s, const char *key, uint32_t v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", s->arch, key);
    gguf_writer_set_u32(g->w, k, v);
}

static void set_f32(gen_t *g, const spec_t *s, const char *key, float v)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", s->arch, key);
    gguf_writer_set_f32(g->w, k, v);
}

/* tokenizer.ggml.* from a llama2.c tokenizer (as `switchyard convert` writes it). */
static int add_tokenizer(gen_t *g, const char *path, int n_vocab)
{
    tokenizer_t *t;
    char err[256];
    if (tokenizer_from_llama2c(path, n_vocab, &t, err, sizeof err)) {
        fprintf(stderr, "gguf_gen: %s\n", err);
        return -1;
    }
    const char **pieces = mem_alloc((size_t)n_vocab * sizeof *pieces);
    float *scores = mem_alloc((size_t)n_vocab * sizeof *scores);
    int32_t *types = mem_alloc((size_t)n_vocab * sizeof *types);
    for (int i = 0; i < n_vocab; i++) {
        pieces[i] = tokenizer_piece(t, i);
        scores[i] = tokenizer_score(t, i);
        types[i] = tokenizer_type(t, i);
    }
    gguf_writer_set_str(g->w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(g->w, "tokenizer.ggml.tokens", pieces, (size_t)n_vocab);
    gguf_writer_set_arr(g->w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, (size_t)n_vocab);
    gguf_writer_set_arr(g->w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, (size_t)n_vocab);
    gguf_writer_set_u32(g->w, "tokenizer.ggml.bos_token_id", (uint32_t)tokenizer_bos(t));
    gguf_writer_set_u32(g->w, "tokenizer.ggml.eos_token_id", (uint32_t)tokenizer_eos(t));
    gguf_writer_set_u32(g->w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_bool(g->w, "tokenizer.ggml.add_bos_token", true);
    mem_free(pieces);
    mem_free(scores);
    mem_free(types);
    tokenizer_free(t);
    return 0;
}

/* Llama 3.x frequency divisors, as llama.cpp's converter computes rope_freqs. */
static void add_llama3_freqs(gen_t *g, int rope_dim, float base)
{
    const float factor = 8.0f, lo = 1.0f, hi = 4.0f, orig = 64.0f;
    float *v = keep(g, (size_t)(rope_dim / 2) * sizeof *v);
    for (int i = 0; i < rope_dim / 2; i++) {
        double freq = 1.0 / pow(base, (double)(2 * i) / rope_dim);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < orig / hi) {
            v[i] = 1.0f;
        } else if (wavelen > orig / lo) {
            v[i] = factor;
        } else {
            double smooth = (orig / wavelen - lo) / (hi - lo);
            v[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    uint64_t ne[1] = {(uint64_t)(rope_dim / 2)};
    if (!g->rc)
        g->rc = gguf_writer_add_tensor(g->w, "rope_freqs.weight", KERN_F32, 1, ne, v,
                                       (size_t)(rope_dim / 2) * 4);
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: gguf_gen TOK.bin VARIANT f32|f16|q8_0|q4_0 OUT.gguf [SEED]\n");
        return 2;
    }
    const spec_t *s = NULL;
    for (size_t i = 0; i < sizeof SPECS / sizeof *SPECS; i++)
        if (!strcmp(argv[2], SPECS[i].name)) s = &SPECS[i];
    const char *tn[] = {"f32", "f16", "q8_0", "q4_0"};
    const kern_type_t tt[] = {KERN_F32, KERN_F16, KERN_Q8_0, KERN_Q4_0};
    const uint32_t ftype[] = {0, 1, 7, 2};
    int ti = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(argv[3], tn[i])) ti = i;
    if (!s || ti < 0) {
        fprintf(stderr, "gguf_gen: unknown variant or type (variants:");
        for (size_t i = 0; i < sizeof SPECS / sizeof *SPECS; i++)
            fprintf(stderr, " %s", SPECS[i].name);
        fprintf(stderr, ")\n");
        return 2;
    }
    gen_t g = {.w = gguf_writer_new(0), .type = tt[ti]};
    g.rng = argc == 6 ? strtoull(argv[5], NULL, 10) : 1;
    for (const char *p = s->weights; *p; p++) /* the weights' variant, not the file's */
        g.rng = g.rng * 131u + (uint8_t)*p;
    g.rng = g.rng * 1000003u + (uint64_t)ti;
    const int n_vocab = 512;
    const int hd = s->head_dim ? s->head_dim : s->dim / s->heads;
    const int q_dim = s->heads * hd, kv_dim = s->kv_heads * hd;

    /* Metadata: general.*, the architecture's hyperparameters, the tokenizer. */
    /* general.name must not say "phi3": llama.cpp then looks for Phi-3's special
       pieces in the vocabulary */
    char name[64];
    snprintf(name, sizeof name, "synthetic-%s-%s", s->fused ? "fused" : s->name, tn[ti]);
    gguf_writer_set_str(g.w, "general.architecture", s->arch);
    gguf_writer_set_str(g.w, "general.name", name);
    gguf_writer_set_u32(g.w, "general.file_type", ftype[ti]);
    set_u32(&g, s, "context_length", (uint32_t)s->ctx);
    set_u32(&g, s, "embedding_length", (uint32_t)s->dim);
    set_u32(&g, s, "feed_forward_length", (uint32_t)s->hidden);
    set_u32(&g, s, "block_count", (uint32_t)s->layers);
    set_u32(&g, s, "attention.head_count", (uint32_t)s->heads);
    set_u32(&g, s, "attention.head_count_kv", (uint32_t)s->kv_heads);
    set_f32(&g, s, "rope.freq_base", s->rope_base);
    set_f32(&g, s, "attention.layer_norm_rms_epsilon", s->gemma ? 1e-6f : 1e-5f);
    const int rope_dim = is(s, "phi4") ? hd * 3 / 4 : hd; /* Phi-4-mini: partial rotary */
    set_u32(&g, s, "rope.dimension_count", (uint32_t)rope_dim);
    if (s->head_dim) {
        set_u32(&g, s, "attention.key_length", (uint32_t)hd);
        set_u32(&g, s, "attention.value_length", (uint32_t)(is(s, "bad-vlen") ? hd / 2 : hd));
    }
    if (is(s, "bad-rope")) {
        gguf_writer_set_str(g.w, "llama.rope.scaling.type", "dynamic");
        set_f32(&g, s, "rope.scaling.factor", 4.0f);
    }
    if (is(s, "qwen2-yarn")) {
        gguf_writer_set_str(g.w, "qwen2.rope.scaling.type", "yarn");
        set_f32(&g, s, "rope.scaling.factor", 8.0f);
        set_u32(&g, s, "rope.scaling.original_context_length", 4096);
    }
    if (is(s, "llama3-keys")) { /* what add_llama3_freqs computes, as keys */
        gguf_writer_set_str(g.w, "llama.rope.scaling.type", "llama3");
        set_f32(&g, s, "rope.scaling.factor", 8.0f);
        set_f32(&g, s, "rope.scaling.low_freq_factor", 1.0f);
        set_f32(&g, s, "rope.scaling.high_freq_factor", 4.0f);
        set_u32(&g, s, "rope.scaling.original_context_length", 64);
    }
    if (is(s, "mistral")) set_u32(&g, s, "attention.sliding_window", 8);
    if (s->gemma && !strcmp(s->arch, "gemma2")) {
        set_u32(&g, s, "attention.sliding_window", 4);
        set_f32(&g, s, "attn_logit_softcapping", 8.0f);
        set_f32(&g, s, "final_logit_softcapping", 6.0f);
    }
    if (is(s, "gemma3")) {
        set_u32(&g, s, "attention.sliding_window", 4);
        set_f32(&g, s, "rope.freq_base_swa", 10000.0f);
        gguf_writer_set_str(g.w, "gemma3.rope.scaling.type", "linear");
        set_f32(&g, s, "rope.scaling.factor", 8.0f);
    }
    if (s->fused) {
        set_u32(&g, s, "rope.scaling.original_context_length", 32);
        set_f32(&g, s, "rope.scaling.attn_factor", 1.19f);
    }
    if (add_tokenizer(&g, argv[1], n_vocab)) return 1;

    /* Tensors, in llama.cpp's names. Gemma norms are stored as 1 + w (around 1). */
    const float nc = 1.0f, ns = s->gemma ? 0.5f : 0.2f;
    add_matrix(&g, "token_embd.weight", n_vocab, s->dim, s->gemma ? 3.0f : 8.0f);
    for (int l = 0; l < s->layers; l++) {
        char nm[96];
#define NM(suffix) (snprintf(nm, sizeof nm, "blk.%d." suffix, l), nm)
        add_vector(&g, NM("attn_norm.weight"), s->dim, nc, ns);
        if (s->fused) {
            add_matrix(&g, NM("attn_qkv.weight"), q_dim + 2 * kv_dim, s->dim, 2.0f);
        } else {
            add_matrix(&g, NM("attn_q.weight"), q_dim, s->dim, 2.0f);
            add_matrix(&g, NM("attn_k.weight"), kv_dim, s->dim, 2.0f);
            add_matrix(&g, NM("attn_v.weight"), kv_dim, s->dim, 1.0f);
        }
        if (s->qkv_bias) {
            add_vector(&g, NM("attn_q.bias"), q_dim, 0.0f, 0.5f);
            add_vector(&g, NM("attn_k.bias"), kv_dim, 0.0f, 0.5f);
            add_vector(&g, NM("attn_v.bias"), kv_dim, 0.0f, 0.5f);
        }
        if (s->qk_norm) {
            add_vector(&g, NM("attn_q_norm.weight"), hd, nc, ns);
            add_vector(&g, NM("attn_k_norm.weight"), hd, nc, ns);
        }
        add_matrix(&g, NM("attn_output.weight"), s->dim, q_dim, 1.0f);
        if (s->gemma) add_vector(&g, NM("post_attention_norm.weight"), s->dim, nc, ns);
        add_vector(&g, NM("ffn_norm.weight"), s->dim, nc, ns);
        if (s->fused) {
            add_matrix(&g, NM("ffn_up.weight"), 2 * s->hidden, s->dim, 1.5f);
        } else {
            add_matrix(&g, NM("ffn_gate.weight"), s->hidden, s->dim, 1.5f);
            add_matrix(&g, NM("ffn_up.weight"), s->hidden, s->dim, 1.5f);
        }
        add_matrix(&g, NM("ffn_down.weight"), s->dim, s->hidden, 1.0f);
        if (s->gemma && !is(s, "bad-post"))
            add_vector(&g, NM("post_ffw_norm.weight"), s->dim, nc, ns);
#undef NM
    }
    add_vector(&g, "output_norm.weight", s->dim, nc, ns);
    if (!s->tied) add_matrix(&g, "output.weight", n_vocab, s->dim, 3.0f);
    if (is(s, "llama3")) add_llama3_freqs(&g, hd, s->rope_base);
    if (s->fused) {
        add_vector(&g, "rope_factors_long.weight", rope_dim / 2, 3.0f, 2.0f);
        add_vector(&g, "rope_factors_short.weight", rope_dim / 2, 1.2f, 0.2f);
    }

    int rc = g.rc ? g.rc : gguf_writer_write(g.w, argv[4]);
    if (rc) fprintf(stderr, "gguf_gen: cannot write %s (%d)\n", argv[4], rc);
    gguf_writer_free(g.w);
    for (int i = 0; i < g.n_bufs; i++)
        mem_free(g.bufs[i]);
    return rc ? 1 : 0;
}
