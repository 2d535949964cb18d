/* model.c — loading Llama-family models from GGUF and llama2.c checkpoints. */
#include "engine/model.h"

#include <errno.h>
#include <fcntl.h>
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
    if (c->head_dim <= 0 || c->n_heads % c->n_kv_heads || c->head_dim % 2 ||
        c->rope_dim > c->head_dim || c->rope_dim % 2 || c->head_dim > 1024)
        return failf(err, errlen, SY_ECORRUPT,
                     "%s: heads do not divide the model (dim %d, heads %d, kv heads %d)", path,
                     c->dim, c->n_heads, c->n_kv_heads);
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
 * Q4_0 in groups of 16 rows for AVX-512 VNNI) into one anonymous mapping, kept in
 * m->map (unused by GGUF models otherwise, unmapped by model_free). Each source
 * range's file pages are dropped after its copy, so resident memory holds one copy of
 * the weights, not two, and peak RSS reports what the model really uses. A tied
 * output gets its own repacked copy while tok_embd keeps pointing into the file (the
 * embedding lookup reads single rows there, so only the looked-up pages come back).
 * Returns 0 or -errno. */
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

/* Reads an integer hyperparameter "<arch>.<key>". */
static int arch_u32(const gguf_t *g, const char *arch, const char *key, int *out, bool required)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    int rc = gguf_get_u32(g, full, &v);
    if (rc) return required ? rc : 0;
    if (v > (1u << 30)) return SY_EINVAL;
    *out = (int)v;
    return 0;
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
    char ar[16];
    if (alen == 5 && (!memcmp(arch, "llama", 5) || !memcmp(arch, "qwen2", 5))) {
        memcpy(ar, arch, 5);
        ar[5] = 0;
    } else {
        rc = failf(err, errlen, SY_EUNSUPPORTED,
                   "%s: architecture '%.*s' is not supported (llama, qwen2)", path,
                   (int)(alen < 64 ? alen : 64), arch);
        goto fail;
    }
    bool qwen = !strcmp(ar, "qwen2");
    model_config_t *c = &m->cfg;
    const char *keys[] = {"embedding_length", "feed_forward_length", "block_count",
                          "attention.head_count", "context_length"};
    int *dst[] = {&c->dim, &c->hidden_dim, &c->n_layers, &c->n_heads, &c->n_ctx};
    for (size_t i = 0; i < 5; i++)
        if (arch_u32(g, ar, keys[i], dst[i], true)) {
            rc = failf(err, errlen, SY_ECORRUPT, "%s: %s.%s is missing or invalid", path, ar,
                       keys[i]);
            goto fail;
        }
    c->n_kv_heads = c->n_heads;
    arch_u32(g, ar, "attention.head_count_kv", &c->n_kv_heads, false);
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    arch_u32(g, ar, "attention.key_length", &c->head_dim, false); /* pruned heads */
    c->rope_dim = c->head_dim;
    arch_u32(g, ar, "rope.dimension_count", &c->rope_dim, false);
    char key[96];
    c->rope_base = 10000.0f;
    snprintf(key, sizeof key, "%s.rope.freq_base", ar);
    gguf_get_f32(g, key, &c->rope_base);
    c->norm_eps = 1e-5f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", ar);
    gguf_get_f32(g, key, &c->norm_eps);
    c->rope_neox = qwen;

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

    int dim = c->dim, kv_dim = c->n_kv_heads * c->head_dim, hid = c->hidden_dim;
    /* f32 copies where the file stores vectors otherwise: two norms per layer and the
     * output norm first, then q/k/v biases and RoPE frequency factors. */
    size_t spare_n = 3 * (size_t)dim * (size_t)c->n_layers + (size_t)c->rope_dim;
    m->owned = mem_alloc(((size_t)(2 * c->n_layers + 1) * (size_t)dim + spare_n) * sizeof(float));
    float *spare = m->owned + (size_t)(2 * c->n_layers + 1) * dim;
    m->layers = mem_calloc((size_t)c->n_layers, sizeof *m->layers);
    if ((rc =
             gguf_matrix(g, "token_embd.weight", c->n_vocab, dim, &m->tok_embd, path, err, errlen)))
        goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        model_layer_t *L = &m->layers[l];
        char nm[GGUF_MAX_NAME];
#define MAT(field, suffix, r, cl)                                                                  \
    snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l);                                        \
    if ((rc = gguf_matrix(g, nm, r, cl, &L->field, path, err, errlen))) goto fail;
        MAT(wq, "attn_q", c->n_heads * c->head_dim, dim);
        MAT(wk, "attn_k", kv_dim, dim);
        MAT(wv, "attn_v", kv_dim, dim);
        MAT(wo, "attn_output", dim, c->n_heads * c->head_dim);
        MAT(w_gate, "ffn_gate", hid, dim);
        MAT(w_down, "ffn_down", dim, hid);
        MAT(w_up, "ffn_up", hid, dim);
#undef MAT
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if ((rc = gguf_vector(g, nm, dim, m->owned + (size_t)(2 * l) * dim, &L->attn_norm, path,
                              err, errlen)))
            goto fail;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if ((rc = gguf_vector(g, nm, dim, m->owned + (size_t)(2 * l + 1) * dim, &L->ffn_norm, path,
                              err, errlen)))
            goto fail;
        if (qwen) {
            const char *bn[3] = {"attn_q", "attn_k", "attn_v"};
            const float **bd[3] = {&L->bq, &L->bk, &L->bv};
            int bl[3] = {dim, kv_dim, kv_dim};
            for (int i = 0; i < 3; i++) {
                snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, bn[i]);
                if ((rc = gguf_vector(g, nm, bl[i], spare, bd[i], path, err, errlen))) goto fail;
                spare += bl[i];
            }
        }
    }
    if ((rc = gguf_vector(g, "output_norm.weight", dim, m->owned + (size_t)(2 * c->n_layers) * dim,
                          &m->out_norm, path, err, errlen)))
        goto fail;
    if (gguf_find_tensor(g, "rope_freqs.weight") &&
        (rc = gguf_vector(g, "rope_freqs.weight", c->rope_dim / 2, spare, &m->rope_freqs, path, err,
                          errlen)))
        goto fail;
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
    const char *s;
    size_t sl;
    if (!gguf_get_str(g, "tokenizer.chat_template", &s, &sl)) m->chat_template = mem_strndup(s, sl);
    if (!gguf_get_str(g, "general.name", &s, &sl))
        snprintf(m->name, sizeof m->name, "%.*s", (int)(sl < 127 ? sl : 127), s);
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
                          .norm_eps = 1e-5f};
    bool shared = h[5] > 0;
    c->head_dim = c->n_heads > 0 && c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 0;
    c->rope_dim = c->head_dim;
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
