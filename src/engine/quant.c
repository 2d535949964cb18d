/* quant.c — GGUF file quantization (see quant.h for the rules it follows). */
#include "engine/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/gguf.h"

/* ======================================================= type choice ==== */

uint32_t quant_file_type(kern_type_t t)
{
    switch (t) {
    case KERN_F32:
        return 0;
    case KERN_F16:
        return 1;
    case KERN_Q4_0:
        return 2;
    case KERN_Q8_0:
        return 7;
    case KERN_Q5_0:
        return 8;
    case KERN_Q5_1:
        return 9;
    case KERN_Q2_K:
        return 10;
    case KERN_Q3_K:
        return 11; /* Q3_K_S */
    case KERN_Q4_K:
        return QUANT_FTYPE_Q4_K_S;
    case KERN_Q5_K:
        return QUANT_FTYPE_Q5_K_S;
    case KERN_Q6_K:
        return QUANT_FTYPE_Q6_K;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Whether llama.cpp quantizes a tensor of this name and shape at all. */
static int is_quantizable(const char *name, int n_dims, const uint64_t *ne)
{
    /* dimensions as ggml counts them: trailing ones do not count */
    int nd = n_dims;
    while (nd > 1 && ne[nd - 1] == 1)
        nd--;
    if (nd < 2) return 0;
    if (!ends_with(name, "weight") || strstr(name, "_norm.weight")) return 0;
    /* tensors llama.cpp never quantizes that a Llama-family file could hold */
    if (strstr(name, "ffn_gate_inp.weight") || !strcmp(name, "position_embd.weight") ||
        !strcmp(name, "token_types.weight"))
        return 0;
    return 1;
}

kern_type_t quant_target_type(const char *name, int n_dims, const uint64_t *ne, kern_type_t cur,
                              kern_type_t target)
{
    if (!is_quantizable(name, n_dims, ne)) return cur;
    if (ne[0] % KERN_QK != 0) return KERN_F16;
    return target;
}

/* ================================================= K-quant mixes ==== */

kern_type_t quant_ftype_base(int ftype)
{
    switch (ftype) {
    case QUANT_FTYPE_Q2_K:
        return KERN_Q2_K;
    case QUANT_FTYPE_Q3_K_S:
    case QUANT_FTYPE_Q3_K_M:
        return KERN_Q3_K;
    case QUANT_FTYPE_Q4_K_S:
    case QUANT_FTYPE_Q4_K_M:
        return KERN_Q4_K;
    case QUANT_FTYPE_Q5_K_S:
    case QUANT_FTYPE_Q5_K_M:
        return KERN_Q5_K;
    case QUANT_FTYPE_Q6_K:
        return KERN_Q6_K;
    default:
        return KERN_F32;
    }
}

/* llama.cpp's choice of layers that get more bits: the first and last eighth, and
 * every third layer between. */
static int use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* A K-quant type where the rows are not whole super-blocks becomes the 32-block type
 * of about the same size (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; Q2_K and Q3_K ->
 * IQ4_NL, which only marks the tensor here), and F16 where the rows are not whole
 * blocks of 32 either. */
static kern_type_t fallback(kern_type_t t, uint64_t cols)
{
    if (kern_row_size(t, (size_t)cols)) return t;
    if (t == KERN_Q2_K || t == KERN_Q3_K) return cols % KERN_QK ? KERN_F16 : QUANT_TYPE_IQ4_NL;
    t = t == KERN_Q4_K ? KERN_Q5_0 : t == KERN_Q5_K ? KERN_Q5_1 : KERN_Q8_0;
    return kern_row_size(t, (size_t)cols) ? t : KERN_F16;
}

kern_type_t quant_kmix_type(quant_kmix_t *s, const char *name, int n_dims, const uint64_t *ne,
                            kern_type_t cur, int ftype, int has_output, int pure)
{
    if (!is_quantizable(name, n_dims, ne)) return cur;
    kern_type_t t = quant_ftype_base(ftype);
    const int m = ftype == QUANT_FTYPE_Q4_K_M || ftype == QUANT_FTYPE_Q5_K_M;
    if (pure) {
        /* every matrix the same type */
    } else if (!strcmp(name, "output.weight") ||
               (!has_output && !strcmp(name, "token_embd.weight"))) {
        t = ne[0] % KERN_QK_K ? KERN_Q8_0 : KERN_Q6_K;
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the file's type */
    } else if (strstr(name, "attn_v.weight")) {
        if (ftype == QUANT_FTYPE_Q2_K)
            t = s->n_gqa >= 4 ? KERN_Q4_K : KERN_Q3_K;
        else if (ftype == QUANT_FTYPE_Q3_K_M)
            t = s->i_attn_v < 2 ? KERN_Q5_K : KERN_Q4_K;
        else if (m && use_more_bits(s->i_attn_v, s->n_attn_v))
            t = KERN_Q6_K;
        else if (ftype == QUANT_FTYPE_Q4_K_S && s->i_attn_v < 4)
            t = KERN_Q5_K;
        s->i_attn_v++;
    } else if (strstr(name, "ffn_down")) {
        if (ftype == QUANT_FTYPE_Q2_K)
            t = KERN_Q3_K;
        else if (ftype == QUANT_FTYPE_Q3_K_M)
            t = s->i_ffn_down < s->n_ffn_down / 16 ? KERN_Q5_K : KERN_Q4_K;
        else if (m && use_more_bits(s->i_ffn_down, s->n_ffn_down))
            t = KERN_Q6_K;
        else if (ftype == QUANT_FTYPE_Q4_K_S && s->i_ffn_down < s->n_ffn_down / 8)
            t = KERN_Q5_K;
        s->i_ffn_down++;
    } else if (strstr(name, "attn_output.weight")) {
        if (ftype == QUANT_FTYPE_Q2_K)
            t = KERN_Q3_K;
        else if (ftype == QUANT_FTYPE_Q3_K_M)
            t = KERN_Q4_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (ftype == QUANT_FTYPE_Q3_K_M)
            t = KERN_Q4_K;
        else if (ftype == QUANT_FTYPE_Q4_K_M)
            t = KERN_Q5_K;
        else if (ftype == QUANT_FTYPE_Q5_K_M)
            t = KERN_Q6_K;
    }
    return fallback(t, ne[0]);
}

/* ================================================== Q4_0 scale search ==== */

/* One Q4_0 block chosen to minimise the squared error sum (x - d q)^2 instead of
 * ggml's reference rounding (largest magnitude -> -8, d = max / -8). Candidate inverse
 * scales map the largest magnitude to -7..-9 or to +6..+8 in steps of 0.05 (the
 * reference one among them); for each, the quants are rounded, the least-squares scale
 * for those quants is computed and rounded to f16, and the error is measured with that
 * f16 scale, so the block written is the best one tried. The format is unchanged: any
 * Q4_0 reader decodes it. */
static void q4_0_block_search(const float *x, kern_block_q4_0_t *y)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < KERN_QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    int8_t best_q[KERN_QK] = {0};
    kern_f16_t best_d = 0;
    if (amax > 0.0f) {
        float best_err = INFINITY;
        for (int c = 0; c < 2 * 41; c++) {
            int is = c % 41 - 20;
            float iscale =
                c < 41 ? -(8.0f + 0.05f * (float)is) / max : (7.0f + 0.05f * (float)is) / max;
            int8_t q[KERN_QK];
            float sxq = 0.0f, sqq = 0.0f;
            for (int j = 0; j < KERN_QK; j++) {
                int v = (int)lrintf(x[j] * iscale);
                v = v < -8 ? -8 : v > 7 ? 7 : v;
                q[j] = (int8_t)v;
                sxq += x[j] * (float)v;
                sqq += (float)v * (float)v;
            }
            if (sqq <= 0.0f) continue;
            kern_f16_t dh = kern_f32_to_f16(sxq / sqq);
            float d = kern_f16_to_f32(dh), err = 0.0f;
            for (int j = 0; j < KERN_QK; j++) {
                float e = x[j] - d * (float)q[j];
                err += e * e;
            }
            if (err < best_err) {
                best_err = err;
                best_d = dh;
                memcpy(best_q, q, sizeof q);
            }
        }
    }
    y->d = best_d;
    for (int j = 0; j < KERN_QK / 2; j++)
        y->qs[j] = (uint8_t)((best_q[j] + 8) | (best_q[j + KERN_QK / 2] + 8) << 4);
}

/* llama.cpp's default tensor mix for a Q4_0 file, in the types this engine has:
 * the output matrix (or the token embedding when it doubles as the output) is kept at
 * Q8_0 (llama.cpp uses Q6_K where rows are a multiple of 256 and Q8_0 elsewhere), and
 * attn_v at Q8_0 as llama.cpp's K-quant mixes give it more bits: under grouped-query
 * attention it is a small share of the weights and the one quantization hurts most. */
kern_type_t quant_mix_type(const char *name, int n_dims, const uint64_t *ne, kern_type_t cur,
                           kern_type_t target, int has_output)
{
    kern_type_t t = quant_target_type(name, n_dims, ne, cur, target);
    if (t != KERN_Q4_0) return t;
    if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight")) ||
        ends_with(name, ".attn_v.weight"))
        return KERN_Q8_0;
    return t;
}

/* ===================================================== tensor order ==== */

/* llama.cpp's loader sorts weights by layer (blk.N., -1 for the rest), then by name. */
static int layer_of(const char *name)
{
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) return -1;
    return l;
}

static int cmp_tensor(const void *a, const void *b)
{
    const gguf_tensor_t *x = *(const gguf_tensor_t *const *)a;
    const gguf_tensor_t *y = *(const gguf_tensor_t *const *)b;
    int lx = layer_of(x->name), ly = layer_of(y->name);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ======================================================= conversion ==== */

typedef struct conv_task {
    const gguf_tensor_t *t;
    kern_type_t to;
    int search; /* Q4_0 blocks by error search instead of reference rounding */
    uint8_t *out;
    size_t in_row, out_row, cols, rows;
    size_t rows_per_task;
} conv_task_t;

/* Converts a range of rows through f32 (rows at most a few hundred thousand floats,
 * one buffer per task). */
static void conv_rows(void *arg, int i, int n)
{
    (void)n;
    const conv_task_t *c = arg;
    size_t r0 = (size_t)i * c->rows_per_task;
    size_t r1 = r0 + c->rows_per_task < c->rows ? r0 + c->rows_per_task : c->rows;
    float *tmp = mem_alloc(c->cols * sizeof(float));
    for (size_t r = r0; r < r1; r++) {
        kern_dequantize_row(c->t->type, (const uint8_t *)c->t->data + r * c->in_row, tmp, c->cols);
        if (c->to == KERN_Q4_0 && c->search) {
            kern_block_q4_0_t *y = (kern_block_q4_0_t *)(c->out + r * c->out_row);
            for (size_t b = 0; b < c->cols / KERN_QK; b++)
                q4_0_block_search(tmp + b * KERN_QK, y + b);
        } else {
            kern_quantize_row(c->to, tmp, c->out + r * c->out_row, c->cols);
        }
    }
    mem_free(tmp);
}

/* Query heads per kv head from the file's metadata (ARCH.attention.head_count and
 * head_count_kv, the latter defaulting to the former, as llama.cpp reads them); 0 where
 * either is missing or zero. */
static int quant_file_gqa(const gguf_t *g)
{
    const char *arch;
    size_t len;
    char key[128];
    uint32_t nh = 0, nkv = 0;
    if (gguf_get_str(g, "general.architecture", &arch, &len) || len > 64) return 0;
    snprintf(key, sizeof key, "%.*s.attention.head_count", (int)len, arch);
    if (gguf_get_u32(g, key, &nh) || nh == 0) return 0;
    snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)len, arch);
    if (gguf_get_u32(g, key, &nkv)) nkv = nh;
    return nkv ? (int)(nh / nkv) : 0;
}

/* Writes in_path quantized. The converted tensors are held in memory until the
 * writer has written them (the writer borrows them). */
int quant_file(const char *in_path, const char *out_path, kern_type_t type, int n_threads,
               quant_stats_t *stats, char *err, size_t errlen)
{
    quant_opts_t o = {.type = type, .n_threads = n_threads, .pure = 1};
    return quant_file_opts(in_path, out_path, &o, stats, err, errlen);
}

int quant_file_opts(const char *in_path, const char *out_path, const quant_opts_t *o,
                    quant_stats_t *stats, char *err, size_t errlen)
{
    const int ftype = o->ftype;
    kern_type_t type = ftype ? quant_ftype_base(ftype) : o->type;
    int n_threads = o->n_threads;
    if (type != KERN_Q8_0 && type != KERN_Q4_0 && !(ftype && type != KERN_F32)) {
        snprintf(err, errlen,
                 "quantize: target must be q8_0, q4_0 or a K-quant file type "
                 "(q2_k, q3_k_s, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k)");
        return SY_EINVAL;
    }
    quant_stats_t st = {0};
    gguf_t *g = NULL;
    int rc = gguf_open(in_path, &g, err, errlen);
    if (rc) return rc;

    const gguf_tensor_t **order = mem_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*order));
    uint8_t **bufs = mem_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*bufs));
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof(*order), cmp_tensor);

    /* metadata: everything but the two keys that move to the end */
    gguf_writer_t *w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT);
    gguf_kv_t *kept = mem_calloc(g->n_kv ? g->n_kv : 1, sizeof(*kept));
    gguf_t view = *g;
    view.n_kv = 0;
    view.kv = kept;
    for (size_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, "general.quantization_version") &&
            strcmp(g->kv[i].key, "general.file_type"))
            kept[view.n_kv++] = g->kv[i];
    gguf_writer_copy_kv(w, &view);
    mem_free(kept);
    gguf_writer_set_u32(w, "general.quantization_version", 2);
    gguf_writer_set_u32(w, "general.file_type", ftype ? (uint32_t)ftype : quant_file_type(type));

    int has_output = 0;
    quant_kmix_t ks = {0};
    for (size_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_t *t = &g->tensors[i];
        has_output |= !strcmp(t->name, "output.weight");
        if (!is_quantizable(t->name, t->n_dims, t->ne)) continue;
        ks.n_attn_v += strstr(t->name, "attn_v.weight") != NULL;
        ks.n_ffn_down += strstr(t->name, "ffn_down") != NULL;
    }
    ks.n_gqa = quant_file_gqa(g);
    kern_pool_t *pool = n_threads > 1 ? kern_pool_new(n_threads) : NULL;
    for (size_t i = 0; i < g->n_tensors && !rc; i++) {
        const gguf_tensor_t *t = order[i];
        kern_type_t to = ftype ? quant_kmix_type(&ks, t->name, t->n_dims, t->ne, t->type, ftype,
                                                 has_output, o->pure)
                         : o->pure
                             ? quant_target_type(t->name, t->n_dims, t->ne, t->type, type)
                             : quant_mix_type(t->name, t->n_dims, t->ne, t->type, type, has_output);
        if (to == QUANT_TYPE_IQ4_NL) {
            snprintf(err, errlen,
                     "%s: tensor '%s' has rows of %llu, not a multiple of 256: llama.cpp writes "
                     "IQ4_NL there, which switchyard does not support (use q4_k_m or q4_0)",
                     in_path, t->name, (unsigned long long)t->ne[0]);
            rc = SY_EUNSUPPORTED;
            break;
        }
        const void *data = t->data;
        size_t nbytes = t->nbytes;
        st.n_tensors++;
        st.bytes_in += t->nbytes;
        if (to == t->type) {
            st.n_copied++;
        } else if (t->type != KERN_F32 && t->type != KERN_F16) {
            snprintf(err, errlen, "%s: tensor '%s' is already %s; requantizing is not supported",
                     in_path, t->name, kern_type_name(t->type));
            rc = SY_EUNSUPPORTED;
            break;
        } else {
            conv_task_t c = {.t = t,
                             .to = to,
                             .search = !o->pure && !ftype,
                             .cols = t->ne[0],
                             .rows = t->n_elements / t->ne[0],
                             .in_row = kern_row_size(t->type, t->ne[0]),
                             .out_row = kern_row_size(to, t->ne[0])};
            nbytes = c.out_row * c.rows;
            c.out = bufs[i] = mem_alloc(nbytes ? nbytes : 1);
            int nt = kern_pool_size(pool);
            c.rows_per_task = (c.rows + (size_t)nt * 4 - 1) / ((size_t)nt * 4);
            if (c.rows_per_task == 0) c.rows_per_task = 1;
            kern_pool_run(pool, conv_rows, &c,
                          (int)((c.rows + c.rows_per_task - 1) / c.rows_per_task));
            data = c.out;
            if (to == KERN_F16)
                st.n_f16++;
            else if (ftype && to != type)
                st.n_kept++; /* the mix's other types, fallbacks included */
            else if (to != type)
                st.n_kept++;
            else
                st.n_quantized++;
        }
        st.bytes_out += nbytes;
        int nd = t->n_dims; /* written as ggml counts dimensions: trailing ones dropped */
        while (nd > 1 && t->ne[nd - 1] == 1)
            nd--;
        rc = gguf_writer_add_tensor(w, t->name, to, nd, t->ne, data, nbytes);
        if (rc) snprintf(err, errlen, "%s: cannot add tensor '%s'", out_path, t->name);
    }
    kern_pool_free(pool);
    if (!rc) {
        rc = gguf_writer_write(w, out_path);
        if (rc) snprintf(err, errlen, "%s: %s", out_path, sy_strerror(rc));
    }
    gguf_writer_free(w);
    for (size_t i = 0; i < g->n_tensors; i++)
        mem_free(bufs[i]);
    mem_free(bufs);
    mem_free(order);
    gguf_free(g);
    if (stats) *stats = st;
    return rc;
}
