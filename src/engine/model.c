/* model.c — loading Llama-family models from GGUF and llama2.c checkpoints. */
#include "engine/model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"

#define MODEL_MAX_DIM    (1 << 16)
#define MODEL_MAX_LAYERS 1024
#define MODEL_MAX_CTX    (1 << 20)

static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats a message into err (if any) and returns rc. */
static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void model_free(model_t *m)
{
    if (!m) return;
    tokenizer_free(m->tok);
    mem_free(m->layers);
    mem_free(m->chat_template);
    mem_free(m->owned);
    gguf_free(m->gguf);
    if (m->map) munmap(m->map, m->map_size);
    mem_free(m);
}

size_t model_weight_bytes(const model_t *m)
{
    const model_tensor_t *all[] = {&m->tok_embd, m->tied_output ? NULL : &m->output};
    size_t n = 0;
    for (size_t i = 0; i < 2; i++)
        if (all[i]) n += kern_row_size(all[i]->type, (size_t)all[i]->cols) * (size_t)all[i]->rows;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const model_layer_t *L = &m->layers[l];
        const model_tensor_t *ts[] = {&L->wq,     &L->wk,     &L->wv,  &L->wo,
                                      &L->w_gate, &L->w_down, &L->w_up};
        for (size_t i = 0; i < 7; i++)
            n += kern_row_size(ts[i]->type, (size_t)ts[i]->cols) * (size_t)ts[i]->rows;
    }
    return n;
}

/* Checks the configuration for values the forward pass relies on. */
static int check_config(const model_config_t *c, const char *path, char *err, size_t errlen)
{
    if (c->dim <= 0 || c->dim > MODEL_MAX_DIM || c->hidden_dim <= 0 ||
        c->hidden_dim > 8 * MODEL_MAX_DIM || c->n_layers <= 0 || c->n_layers > MODEL_MAX_LAYERS ||
        c->n_heads <= 0 || c->n_kv_heads <= 0 || c->n_vocab <= 0 || c->n_ctx <= 0 ||
        c->n_ctx > MODEL_MAX_CTX)
        return failf(err, errlen, SY_ECORRUPT,
                     "%s: implausible model shape (dim %d, hidden %d, layers %d, heads %d/%d, "
                     "vocab %d, ctx %d)",
                     path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                     c->n_vocab, c->n_ctx);
    if (c->n_heads % c->n_kv_heads || c->head_dim <= 0 || c->head_dim % 2 ||
        c->rope_dim > c->head_dim || c->rope_dim % 2 || c->head_dim > 1024 ||
        (size_t)c->n_heads * (size_t)c->head_dim > 8 * MODEL_MAX_DIM || c->n_swa < 0)
        return failf(err, errlen, SY_ECORRUPT,
                     "%s: heads do not fit the model (dim %d, heads %d, kv heads %d, head size "
                     "%d, rope %d)",
                     path, c->dim, c->n_heads, c->n_kv_heads, c->head_dim, c->rope_dim);
    return 0;
}

/* ================================================================ GGUF ==== */

/* Looks up a matrix by name and checks it has shape (rows, cols). */
static int gguf_matrix(const gguf_t *g, const char *name, int rows, int cols, model_tensor_t *t,
                       const char *path, char *err, size_t errlen)
{
    const gguf_tensor_t *gt = gguf_find_tensor(g, name);
    if (!gt) return failf(err, errlen, SY_ENOTFOUND, "%s: tensor '%s' is missing", path, name);
    if (gt->ne[0] != (uint64_t)cols || gt->ne[1] != (uint64_t)rows || gt->ne[2] != 1 ||
        gt->ne[3] != 1)
        return failf(err, errlen, SY_ECORRUPT,
                     "%s: tensor '%s' has shape [%llu, %llu], expected [%d, %d]", path, name,
                     (unsigned long long)gt->ne[0], (unsigned long long)gt->ne[1], cols, rows);
    *t = (model_tensor_t){.type = gt->type, .data = gt->data, .rows = rows, .cols = cols};
    return 0;
}

/* Looks up a vector of n elements; returns a pointer to f32 data, converting into
 * the caller's slot of m->owned when stored in another type. */
static int gguf_vector(const gguf_t *g, const char *name, int n, float *slot, const float **out,
                       const char *path, char *err, size_t errlen)
{
    const gguf_tensor_t *gt = gguf_find_tensor(g, name);
    if (!gt) return failf(err, errlen, SY_ENOTFOUND, "%s: tensor '%s' is missing", path, name);
    if (gt->n_elements != (uint64_t)n)
        return failf(err, errlen, SY_ECORRUPT, "%s: tensor '%s' has %llu elements, expected %d",
                     path, name, (unsigned long long)gt->n_elements, n);
    if (gt->type == KERN_F32 && ((uintptr_t)gt->data & 3) == 0) {
        *out = gt->data;
    } else {
        kern_dequantize_row(gt->type, gt->data, slot, (size_t)n);
        *out = slot;
    }
    return 0;
}

/* Moves the matrices the kernels in use want in another layout (kern_repack_type:
 * Q4_0, Q8_0 and the K-quants in groups of 16 rows for AVX-512 VNNI) into one anonymous mapping,
 * kept in m->map (unused by GGUF models otherwise, unmapped by model_free). Each source range's
 * file pages are dropped after its copy, so resident memory holds one copy of the weights, not two,
 * and peak RSS reports what the model really uses. A tied output gets its own repacked copy while
 * tok_embd keeps pointing into the file (the embedding lookup reads single rows there, so only the
 * looked-up pages come back). Returns 0 or -errno. */
static int repack_weights(model_t *m)
{
    model_tensor_t *ts[7 * MODEL_MAX_LAYERS + 1];
    size_t n = 0, total = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        model_layer_t *L = &m->layers[l];
        model_tensor_t *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_down, &L->w_up};
        for (size_t i = 0; i < 7; i++)
            ts[n++] = mats[i];
    }
    ts[n++] = &m->output;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        model_tensor_t *t = ts[i];
        if (kern_repack_type(t->type, (size_t)t->rows, (size_t)t->cols) == t->type) continue;
        ts[k++] = t;
        total += (kern_row_size(t->type, (size_t)t->cols) * (size_t)t->rows + 63) & ~(size_t)63;
    }
    if (!k) return 0;
    void *map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return -errno;
    const long page = sysconf(_SC_PAGESIZE);
    uint8_t *dst = map;
    for (size_t i = 0; i < k; i++) {
        model_tensor_t *t = ts[i];
        kern_type_t to = kern_repack_type(t->type, (size_t)t->rows, (size_t)t->cols);
        const size_t rb = kern_row_size(t->type, (size_t)t->cols), rows = (size_t)t->rows;
        const uint8_t *src = t->data;
        /* 8 MiB of source at a time, its pages dropped as soon as they are copied, so
           the peak is the repacked weights plus one chunk; whole pages inside the
           source only (neighbouring tensors may still be in use) */
        size_t step = ((size_t)8 << 20) / rb / KERN_X16_ROWS * KERN_X16_ROWS;
        if (step == 0) step = KERN_X16_ROWS;
        uintptr_t a = ((uintptr_t)src + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
        for (size_t r = 0; r < rows; r += step) {
            size_t nr = rows - r < step ? rows - r : step;
            kern_repack(t->type, to, src + r * rb, dst + r * rb, nr, (size_t)t->cols);
            uintptr_t e = ((uintptr_t)src + (r + nr) * rb) & ~((uintptr_t)page - 1);
            if (e > a) {
                madvise((void *)a, e - a, MADV_DONTNEED);
                a = e;
            }
        }
        const size_t bytes = rb * rows;
        t->data = dst;
        t->type = to;
        dst += (bytes + 63) & ~(size_t)63;
    }
    mprotect(map, total, PROT_READ);
    m->map = map;
    m->map_size = total;
    return 0;
}

/* What an architecture changes in the llama graph (model.h lists them). */
typedef struct arch_info {
    const char *name;
    bool rope_neox; /* half-split RoPE */
    bool qkv_bias;  /* blk.N.attn_{q,k,v}.bias */
    bool qk_norm;   /* blk.N.attn_{q,k}_norm */
    bool gemma;     /* embedding scale, GeGLU, post-attention and post-FFN norms */
    bool fused;     /* blk.N.attn_qkv (or separate q/k/v), gate|up stacked in blk.N.ffn_up */
} arch_info_t;

static const arch_info_t ARCHS[] = {
    {"llama", false, false, false, false, false}, {"qwen2", true, true, false, false, false},
    {"qwen3", true, false, true, false, false},   {"gemma2", true, false, false, true, false},
    {"gemma3", true, false, true, true, false},   {"phi3", true, false, false, false, true},
};

/* Reads an integer hyperparameter "<arch>.<key>". */
static int arch_u32(const gguf_t *g, const char *arch, const char *key, int *out, bool required)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    int rc = gguf_get_u32(g, full, &v);
    if (rc) return required || rc != SY_ENOTFOUND ? rc : 0;
    if (v > (1u << 30)) return SY_EINVAL;
    *out = (int)v;
    return 0;
}

/* Reads a float hyperparameter "<arch>.<key>" if present; *found says whether. */
static int arch_f32(const gguf_t *g, const char *arch, const char *key, float *out, bool *found)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int rc = gguf_get_f32(g, full, out);
    if (found) *found = rc == 0;
    return rc == SY_ENOTFOUND ? 0 : rc;
}

/* Llama 3.x frequency divisors from rope.scaling.{factor, low_freq_factor,
 * high_freq_factor, original_context_length}, as llama.cpp's converter computes the
 * rope_freqs tensor: wavelengths shorter than orig/high kept, longer than orig/low
 * divided by factor, a smooth blend between. */
static void llama3_rope_factors(const model_config_t *c, float factor, float lo, float hi,
                                float orig, float *out)
{
    const float lo_wavelen = orig / lo, hi_wavelen = orig / hi;
    for (int i = 0; i < c->rope_dim / 2; i++) {
        float freq = 1.0f / powf(c->rope_base, (float)(2 * i) / (float)c->rope_dim);
        float wavelen = 2.0f * (float)M_PI / freq;
        if (wavelen < hi_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > lo_wavelen) {
            out[i] = factor;
        } else {
            float smooth = (orig / wavelen - lo) / (hi - lo);
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

/* Reads the hyperparameters of architecture a into c (shape, RoPE and its scaling,
 * sliding window, soft-capping). Each missing required key or unsupported setting is
 * an error naming the key. */
static int read_hparams(const gguf_t *g, const arch_info_t *a, model_config_t *c, const char *path,
                        char *err, size_t errlen)
{
    const char *ar = a->name;
    const char *keys[] = {"embedding_length", "feed_forward_length", "block_count",
                          "attention.head_count", "context_length"};
    int *dst[] = {&c->dim, &c->hidden_dim, &c->n_layers, &c->n_heads, &c->n_ctx};
    for (size_t i = 0; i < 5; i++)
        if (arch_u32(g, ar, keys[i], dst[i], true))
            return failf(err, errlen, SY_ECORRUPT, "%s: %s.%s is missing or invalid", path, ar,
                         keys[i]);
    c->n_kv_heads = c->n_heads;
    c->head_dim = 0;
    int v_len = 0;
    if (arch_u32(g, ar, "attention.head_count_kv", &c->n_kv_heads, false) ||
        arch_u32(g, ar, "attention.key_length", &c->head_dim, false) ||
        arch_u32(g, ar, "attention.value_length", &v_len, false))
        return failf(err, errlen, SY_ECORRUPT, "%s: %s.attention.* head sizes are invalid", path,
                     ar);
    if (c->head_dim == 0) {
        if (c->n_heads <= 0 || c->dim % c->n_heads)
            return failf(err, errlen, SY_ECORRUPT,
                         "%s: heads do not divide the model (dim %d, heads %d)", path, c->dim,
                         c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (v_len && v_len != c->head_dim)
        return failf(err, errlen, SY_EUNSUPPORTED,
                     "%s: %s.attention.value_length %d differs from key_length %d", path, ar, v_len,
                     c->head_dim);
    c->rope_dim = c->head_dim;
    if (arch_u32(g, ar, "rope.dimension_count", &c->rope_dim, false))
        return failf(err, errlen, SY_ECORRUPT, "%s: %s.rope.dimension_count is invalid", path, ar);
    c->rope_base = 10000.0f;
    c->norm_eps = 1e-5f;
    float factor = 0.0f, mscale = 1.0f;
    bool has_factor = false;
    int rc = arch_f32(g, ar, "rope.freq_base", &c->rope_base, NULL);
    if (!rc) rc = arch_f32(g, ar, "attention.layer_norm_rms_epsilon", &c->norm_eps, NULL);
    if (!rc) rc = arch_f32(g, ar, "rope.scaling.factor", &factor, &has_factor);
    if (!rc && !has_factor) rc = arch_f32(g, ar, "rope.scale_linear", &factor, &has_factor);
    if (!rc) rc = arch_f32(g, ar, "rope.scaling.attn_factor", &mscale, NULL);
    if (rc || !(c->rope_base > 0.0f) || !(c->norm_eps >= 0.0f) || !(mscale > 0.0f) ||
        (has_factor && !(factor >= 0.0f)))
        return failf(err, errlen, SY_ECORRUPT, "%s: a %s.rope.* or epsilon value is invalid", path,
                     ar);
    c->rope_neox = a->rope_neox;
    c->rope_mscale = mscale;
    c->rope_orig_ctx = c->n_ctx;
    arch_u32(g, ar, "rope.scaling.original_context_length", &c->rope_orig_ctx, false);

    /* Scaling type as llama.cpp reads it: "linear" when absent, the factor applies
     * unless "none". "llama3" is handled by the caller (frequency divisors). YaRN's
     * cos/sin factor is 1 + 0.1 ln(factor) (llama.cpp's, with its beta 32 / 1 and
     * extrapolation factor 1, which these architectures never override). */
    char key[96];
    const char *type = "linear";
    size_t tlen = 6;
    snprintf(key, sizeof key, "%s.rope.scaling.type", ar);
    if (gguf_get_str(g, key, &type, &tlen) == SY_EINVAL)
        return failf(err, errlen, SY_ECORRUPT, "%s: %s is not a string", path, key);
#define TYPE_IS(s) (tlen == sizeof(s) - 1 && !memcmp(type, s, tlen))
    if (!TYPE_IS("none") && !TYPE_IS("linear") && !TYPE_IS("longrope") && !TYPE_IS("llama3") &&
        !TYPE_IS("yarn"))
        return failf(err, errlen, SY_EUNSUPPORTED,
                     "%s: %s '%.*s' is not supported (none, linear, yarn, longrope, llama3)", path,
                     key, (int)(tlen < 32 ? tlen : 32), type);
    c->rope_scale = 1.0f;
    if ((TYPE_IS("linear") || TYPE_IS("longrope") || TYPE_IS("yarn")) && has_factor &&
        factor != 0.0f)
        c->rope_scale = 1.0f / factor;
    c->rope_yarn = TYPE_IS("yarn");
    if (c->rope_yarn && has_factor && factor > 1.0f) c->rope_mscale *= 1.0f + 0.1f * logf(factor);
#undef TYPE_IS

    /* Sliding window and soft-capping, with llama.cpp's per-architecture defaults.
     * Pattern as llama.cpp's: layer l is windowed when l % period < period - 1, every
     * layer when period is 0 (Mistral), none when it is 1. */
    int period = 0;
    c->n_swa = 0;
    c->rope_base_swa = c->rope_base;
    c->rope_scale_swa = c->rope_scale;
    if (!strcmp(ar, "gemma2")) {
        c->n_swa = 4096;
        period = 2;
        c->attn_softcap = 50.0f;
        c->final_softcap = 30.0f;
    } else if (!strcmp(ar, "gemma3")) {
        period = 6;
        c->rope_base_swa = 10000.0f;
        c->rope_scale_swa = 1.0f;
    }
    bool windowed = !strcmp(ar, "llama") || a->gemma; /* phi3's window is off in llama.cpp too */
    if (windowed) {
        rc = arch_u32(g, ar, "attention.sliding_window", &c->n_swa, false);
        if (!rc) rc = arch_u32(g, ar, "attention.sliding_window_pattern", &period, false);
        if (!rc) rc = arch_f32(g, ar, "rope.freq_base_swa", &c->rope_base_swa, NULL);
        if (rc || !(c->rope_base_swa > 0.0f))
            return failf(err, errlen, rc == SY_EINVAL ? SY_EUNSUPPORTED : SY_ECORRUPT,
                         "%s: %s.attention.sliding_window* or rope.freq_base_swa is invalid "
                         "(a per-layer pattern array is not supported)",
                         path, ar);
    }
    if (a->gemma) {
        rc = 0;
        if (!strcmp(ar, "gemma2"))
            rc = arch_f32(g, ar, "attn_logit_softcapping", &c->attn_softcap, NULL);
        if (!rc) rc = arch_f32(g, ar, "final_logit_softcapping", &c->final_softcap, NULL);
        if (rc || !(c->attn_softcap >= 0.0f) || !(c->final_softcap >= 0.0f))
            return failf(err, errlen, SY_ECORRUPT, "%s: a %s soft-capping value is invalid", path,
                         ar);
        c->embd_scale = true;
        c->ffn_gelu = true;
    }
    /* Gemma's query_pre_attn_scalar is dim / heads for the 27B shapes, head_dim
       otherwise; llama.cpp knows the 27B models by their layer count. */
    bool big_gemma = c->n_heads > 0 && ((!strcmp(ar, "gemma2") && c->n_layers == 46) ||
                                        (!strcmp(ar, "gemma3") && c->n_layers == 62));
    c->attn_scale = 1.0f / sqrtf((float)(big_gemma ? c->dim / c->n_heads : c->head_dim));
    c->swa_period = period;
    return 0;
}

/* A view of rows [first, first + n) of t (fused tensors split without copying). */
static model_tensor_t tensor_rows(const model_tensor_t *t, int first, int n)
{
    size_t rb = kern_row_size(t->type, (size_t)t->cols);
    return (model_tensor_t){.type = t->type,
                            .data = (const char *)t->data + rb * (size_t)first,
                            .rows = n,
                            .cols = t->cols};
}

/* Next n floats of m->owned (sized by the loader for every vector it may convert). */
static float *owned_take(float **next, int n)
{
    float *p = *next;
    *next += n;
    return p;
}

int model_load_gguf(const char *path, model_t **out, char *err, size_t errlen)
{
    *out = NULL;
    gguf_t *g;
    int rc = gguf_open(path, &g, err, errlen);
    if (rc) return rc;
    model_t *m = mem_calloc(1, sizeof *m);
    m->gguf = g;
    m->format = "gguf";
    const char *arch;
    size_t alen;
    if (gguf_get_str(g, "general.architecture", &arch, &alen)) {
        rc = failf(err, errlen, SY_ECORRUPT, "%s: no general.architecture", path);
        goto fail;
    }
    const arch_info_t *a = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++)
        if (strlen(ARCHS[i].name) == alen && !memcmp(arch, ARCHS[i].name, alen)) a = &ARCHS[i];
    if (!a) {
        rc = failf(err, errlen, SY_EUNSUPPORTED,
                   "%s: architecture '%.*s' is not supported (llama, qwen2, qwen3, gemma2, "
                   "gemma3, phi3)",
                   path, (int)(alen < 64 ? alen : 64), arch);
        goto fail;
    }
    snprintf(m->arch, sizeof m->arch, "%s", a->name);
    model_config_t *c = &m->cfg;
    if ((rc = read_hparams(g, a, c, path, err, errlen))) goto fail;

    rc = tokenizer_from_gguf(g, &m->tok, err, errlen);
    if (rc) goto fail;
    const gguf_tensor_t *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) {
        rc = failf(err, errlen, SY_ENOTFOUND,
                   "%s: no 2-D tensor 'token_embd.weight' (a vocabulary-only file?)", path);
        goto fail;
    }
    c->n_vocab = emb ? (int)emb->ne[1] : 0;
    if (emb && emb->ne[1] > (1u << 24)) c->n_vocab = 0;
    if ((rc = check_config(c, path, err, errlen))) goto fail;
    if (tokenizer_n_vocab(m->tok) != c->n_vocab) {
        rc = failf(err, errlen, SY_ECORRUPT, "%s: vocabulary has %d pieces, embedding %d rows",
                   path, tokenizer_n_vocab(m->tok), c->n_vocab);
        goto fail;
    }

    int dim = c->dim, hd = c->head_dim, hid = c->hidden_dim;
    int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd, half = c->rope_dim / 2;
    /* f32 copies where the file stores vectors otherwise: per layer four norms of dim,
     * two head norms and the q/k/v biases; the output norm; three RoPE vectors. */
    size_t per_layer = 4 * (size_t)dim + 2 * (size_t)hd + (size_t)q_dim + 2 * (size_t)kv_dim;
    m->owned = mem_alloc((per_layer * (size_t)c->n_layers + (size_t)dim + 3 * (size_t)half) *
                         sizeof(float));
    float *next = m->owned;
    m->layers = mem_calloc((size_t)c->n_layers, sizeof *m->layers);
    if ((rc =
             gguf_matrix(g, "token_embd.weight", c->n_vocab, dim, &m->tok_embd, path, err, errlen)))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        model_layer_t *L = &m->layers[l];
        char nm[GGUF_MAX_NAME];
#define MAT(field, suffix, r, cl)                                                                  \
    snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l);                                        \
    if ((rc = gguf_matrix(g, nm, r, cl, field, path, err, errlen))) goto fail;
#define VEC(field, suffix, n)                                                                      \
    snprintf(nm, sizeof nm, "blk.%d." suffix, l);                                                  \
    if ((rc = gguf_vector(g, nm, n, owned_take(&next, n), &L->field, path, err, errlen))) goto fail;
        snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", l);
        if (a->fused && gguf_find_tensor(g, nm)) {
            model_tensor_t qkv;
            MAT(&qkv, "attn_qkv", q_dim + 2 * kv_dim, dim);
            L->wq = tensor_rows(&qkv, 0, q_dim);
            L->wk = tensor_rows(&qkv, q_dim, kv_dim);
            L->wv = tensor_rows(&qkv, q_dim + kv_dim, kv_dim);
        } else {
            MAT(&L->wq, "attn_q", q_dim, dim);
            MAT(&L->wk, "attn_k", kv_dim, dim);
            MAT(&L->wv, "attn_v", kv_dim, dim);
        }
        MAT(&L->wo, "attn_output", dim, q_dim);
        if (a->fused) { /* gate rows first, then up, as llama.cpp's fused SwiGLU splits */
            model_tensor_t gate_up;
            MAT(&gate_up, "ffn_up", 2 * hid, dim);
            L->w_gate = tensor_rows(&gate_up, 0, hid);
            L->w_up = tensor_rows(&gate_up, hid, hid);
        } else {
            MAT(&L->w_gate, "ffn_gate", hid, dim);
            MAT(&L->w_up, "ffn_up", hid, dim);
        }
        MAT(&L->w_down, "ffn_down", dim, hid);
        VEC(attn_norm, "attn_norm.weight", dim);
        VEC(ffn_norm, "ffn_norm.weight", dim);
        if (a->qkv_bias) {
            VEC(bq, "attn_q.bias", q_dim);
            VEC(bk, "attn_k.bias", kv_dim);
            VEC(bv, "attn_v.bias", kv_dim);
        }
        if (a->qk_norm) {
            VEC(q_norm, "attn_q_norm.weight", hd);
            VEC(k_norm, "attn_k_norm.weight", hd);
        }
        if (a->gemma) {
            VEC(post_attn_norm, "post_attention_norm.weight", dim);
            VEC(post_ffn_norm, "post_ffw_norm.weight", dim);
        }
#undef MAT
#undef VEC
        const int p = c->swa_period;
        L->swa = c->n_swa > 0 && (p == 0 || l % p < p - 1);
    }
    if ((rc = gguf_vector(g, "output_norm.weight", dim, owned_take(&next, dim), &m->out_norm, path,
                          err, errlen)))
        goto fail;
    /* RoPE frequency divisors: rope_freqs (Llama 3.x as converted), the llama3 scaling
     * keys, or LongRoPE's pair. */
    const char *rv[] = {"rope_freqs.weight", "rope_factors_long.weight",
                        "rope_factors_short.weight"};
    const float **rd[] = {&m->rope_freqs, &m->rope_long, &m->rope_short};
    for (int i = 0; i < 3; i++)
        if (gguf_find_tensor(g, rv[i]) &&
            (rc = gguf_vector(g, rv[i], half, owned_take(&next, half), rd[i], path, err, errlen)))
            goto fail;
    if ((m->rope_long != NULL) != (m->rope_short != NULL)) {
        rc = failf(err, errlen, SY_ECORRUPT, "%s: only one of rope_factors_long/short", path);
        goto fail;
    }
    const char *st;
    size_t sl;
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a->name);
    if (!m->rope_freqs && !gguf_get_str(g, key, &st, &sl) && sl == 6 && !memcmp(st, "llama3", 6)) {
        float f[4] = {8.0f, 1.0f, 4.0f, 8192.0f};
        const char *fk[4] = {"rope.scaling.factor", "rope.scaling.low_freq_factor",
                             "rope.scaling.high_freq_factor",
                             "rope.scaling.original_context_length"};
        int orig = 0;
        bool ok = !arch_u32(g, a->name, fk[3], &orig, false);
        if (orig) f[3] = (float)orig;
        for (int i = 0; i < 3 && ok; i++)
            ok = !arch_f32(g, a->name, fk[i], &f[i], NULL) && f[i] > 0.0f;
        if (!ok || f[2] == f[1]) {
            rc = failf(err, errlen, SY_ECORRUPT, "%s: %s.rope.scaling.* (llama3) is invalid", path,
                       a->name);
            goto fail;
        }
        float *fr = owned_take(&next, half);
        llama3_rope_factors(c, f[0], f[1], f[2], f[3], fr);
        m->rope_freqs = fr;
    }
    if (gguf_find_tensor(g, "output.weight")) {
        if ((rc = gguf_matrix(g, "output.weight", c->n_vocab, dim, &m->output, path, err, errlen)))
            goto fail;
    } else {
        m->output = m->tok_embd;
        m->tied_output = true;
    }
    m->weight_type = m->layers[0].wq.type;
    if ((rc = repack_weights(m))) {
        failf(err, errlen, rc, "%s: no memory for repacked weights", path);
        goto fail;
    }
    if (!gguf_get_str(g, "tokenizer.chat_template", &st, &sl))
        m->chat_template = mem_strndup(st, sl);
    if (!gguf_get_str(g, "general.name", &st, &sl))
        snprintf(m->name, sizeof m->name, "%.*s", (int)(sl < 127 ? sl : 127), st);
    else {
        const char *b = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
    }
    *out = m;
    return 0;
fail:
    model_free(m);
    return rc;
}

/* ============================================================= llama2.c ==== */

/* Points t at the next rows x cols f32 matrix of the checkpoint and advances *p. */
static void take_matrix(model_tensor_t *t, const float **p, int rows, int cols)
{
    *t = (model_tensor_t){.type = KERN_F32, .data = *p, .rows = rows, .cols = cols};
    *p += (size_t)rows * (size_t)cols;
}

int model_load_llama2c(const char *path, const char *tokenizer_path, model_t **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t size = (size_t)st.st_size;
    if (size < 7 * sizeof(int32_t)) {
        close(fd);
        return failf(err, errlen, SY_ECORRUPT, "%s: too short for a llama2.c header", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = -errno;
    close(fd);
    if (map == MAP_FAILED) return failf(err, errlen, e, "%s: mmap: %s", path, strerror(-e));
    model_t *m = mem_calloc(1, sizeof *m);
    m->map = map;
    m->map_size = size;
    m->format = "llama2c";
    m->weight_type = KERN_F32;
    int32_t h[7];
    memcpy(h, map, sizeof h);
    model_config_t *c = &m->cfg;
    *c = (model_config_t){.dim = h[0],
                          .hidden_dim = h[1],
                          .n_layers = h[2],
                          .n_heads = h[3],
                          .n_kv_heads = h[4],
                          .n_vocab = h[5] < 0 ? -h[5] : h[5],
                          .n_ctx = h[6],
                          .rope_base = 10000.0f,
                          .rope_scale = 1.0f,
                          .rope_mscale = 1.0f,
                          .norm_eps = 1e-5f};
    bool shared = h[5] > 0;
    snprintf(m->arch, sizeof m->arch, "llama");
    c->head_dim = c->n_heads > 0 && c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 0;
    c->rope_dim = c->head_dim;
    c->rope_orig_ctx = c->n_ctx;
    c->attn_scale = c->head_dim > 0 ? 1.0f / sqrtf((float)c->head_dim) : 0.0f;
    int rc = check_config(c, path, err, errlen);
    if (rc) goto fail;
    /* Expected size, in floats, computed in 64 bits (all factors are bounded above). */
    uint64_t dim = (uint64_t)c->dim, hid = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t kv_dim = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim;
    uint64_t need = (uint64_t)c->n_vocab * dim +
                    L * (2 * dim + 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hid) + dim +
                    (uint64_t)c->n_ctx * (uint64_t)c->head_dim; /* + freq_cis */
    if (!shared) need += (uint64_t)c->n_vocab * dim;
    if (need > (size - 28) / 4) {
        rc =
            failf(err, errlen, SY_ECORRUPT, "%s: file has %zu bytes, the header's shape needs %llu",
                  path, size, (unsigned long long)(need * 4 + 28));
        goto fail;
    }
    const float *p = (const float *)((const char *)map + 28);
    m->layers = mem_calloc((size_t)c->n_layers, sizeof *m->layers);
    take_matrix(&m->tok_embd, &p, c->n_vocab, c->dim);
    /* Weights are stored grouped by kind, each kind for all layers in order. */
    for (int l = 0; l < c->n_layers; l++)
        m->layers[l].attn_norm = p, p += dim;
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].wq, &p, c->dim, c->dim);
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].wk, &p, (int)kv_dim, c->dim);
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].wv, &p, (int)kv_dim, c->dim);
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].wo, &p, c->dim, c->dim);
    for (int l = 0; l < c->n_layers; l++)
        m->layers[l].ffn_norm = p, p += dim;
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].w_gate, &p, c->hidden_dim, c->dim);
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].w_down, &p, c->dim, c->hidden_dim);
    for (int l = 0; l < c->n_layers; l++)
        take_matrix(&m->layers[l].w_up, &p, c->hidden_dim, c->dim);
    m->out_norm = p;
    p += dim;
    p += (size_t)c->n_ctx * (size_t)c->head_dim; /* freq_cis_real/imag: recomputed instead */
    if (shared) {
        m->output = m->tok_embd;
        m->tied_output = true;
    } else {
        take_matrix(&m->output, &p, c->n_vocab, c->dim);
    }
    if (!tokenizer_path) {
        rc = failf(err, errlen, SY_EINVAL, "%s: a llama2.c model needs its tokenizer.bin", path);
        goto fail;
    }
    rc = tokenizer_from_llama2c(tokenizer_path, c->n_vocab, &m->tok, err, errlen);
    if (rc) goto fail;
    const char *b = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
    *out = m;
    return 0;
fail:
    model_free(m);
    return rc;
}

int model_load(const char *path, const char *tokenizer_path, model_t **out, char *err,
               size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return failf(err, errlen, -errno, "%s: %s", path, strerror(errno));
    uint32_t magic = 0;
    size_t n = fread(&magic, 1, 4, f);
    fclose(f);
    if (n == 4 && magic == GGUF_MAGIC) return model_load_gguf(path, out, err, errlen);
    return model_load_llama2c(path, tokenizer_path, out, err, errlen);
}
