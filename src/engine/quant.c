/* quant.c — GGUF file quantization (see quant.h for the rules it follows). */
#include "engine/quant.h"

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
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

kern_type_t quant_target_type(const char *name, int n_dims, const uint64_t *ne, kern_type_t cur,
                              kern_type_t target)
{
    /* dimensions as ggml counts them: trailing ones do not count */
    int nd = n_dims;
    while (nd > 1 && ne[nd - 1] == 1)
        nd--;
    if (nd < 2) return cur;
    if (!ends_with(name, "weight") || strstr(name, "_norm.weight")) return cur;
    /* tensors llama.cpp never quantizes that a Llama-family file could hold */
    if (strstr(name, "ffn_gate_inp.weight") || !strcmp(name, "position_embd.weight") ||
        !strcmp(name, "token_types.weight"))
        return cur;
    if (ne[0] % KERN_QK != 0) return KERN_F16;
    return target;
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
        kern_quantize_row(c->to, tmp, c->out + r * c->out_row, c->cols);
    }
    mem_free(tmp);
}

/* Writes in_path quantized. The converted tensors are held in memory until the
 * writer has written them (the writer borrows them). */
int quant_file(const char *in_path, const char *out_path, kern_type_t type, int n_threads,
               quant_stats_t *stats, char *err, size_t errlen)
{
    if (type != KERN_Q8_0 && type != KERN_Q4_0) {
        snprintf(err, errlen, "quantize: target type must be q8_0 or q4_0");
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
    gguf_writer_set_u32(w, "general.file_type", quant_file_type(type));

    kern_pool_t *pool = n_threads > 1 ? kern_pool_new(n_threads) : NULL;
    for (size_t i = 0; i < g->n_tensors && !rc; i++) {
        const gguf_tensor_t *t = order[i];
        kern_type_t to = quant_target_type(t->name, t->n_dims, t->ne, t->type, type);
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
