/* forward.c — the Llama forward pass, readable top to bottom.
 *
 *   x = embed(token)                                  (gemma: times sqrt(dim))
 *   for each layer:
 *       h = rmsnorm(x) * attn_norm
 *       q, k, v = Wq h, Wk h, Wv h                    (qwen2: + biases)
 *       q, k = rmsnorm per head * q_norm, k_norm      (qwen3, gemma3)
 *       rotate q and k (RoPE: adjacent pairs, or halves; windowed layers' own base)
 *       append k, v to the cache
 *       a = Wo attention(q, cache)                    (soft-capped scores: gemma2;
 *                                                      windowed layers: last n_swa)
 *       x += a                                        (gemma: rmsnorm(a) * post_attn_norm)
 *       h = rmsnorm(x) * ffn_norm
 *       f = Wdown (act(Wgate h) * (Wup h))            (act: silu, or gelu for gemma)
 *       x += f                                        (gemma: rmsnorm(f) * post_ffn_norm)
 *   logits = Wout (rmsnorm(x) * out_norm)             (soft-capped: gemma2)
 *
 * A batch of tokens (prefill) goes through each matrix in one kern_matmul, so weights
 * are streamed once per batch instead of once per token; a single token (decode) uses
 * kern_matvec. Attention runs per (token, head) pair across the thread pool.
 */
#include "engine/forward.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/mem.h"

#define FORWARD_DEFAULT_BATCH 64

/* ============================================================ state ===== */

/* RoPE angle per position of each pair i: base^(-2i/d), divided by the file's
 * frequency factors (Llama 3.x rope_freqs, LongRoPE), times the linear scale. With
 * YaRN the scale applies fully to the low-frequency pairs only: between the pairs
 * whose wavelength fits beta_fast (32) and beta_slow (1) turns in the original
 * context, it ramps to none (llama.cpp's corr_dims and ramp, ext_factor 1). */
static void rope_table(const model_config_t *c, float base, float scale, const float *factors,
                       float *out)
{
    const int d = c->rope_dim;
    float lo = 0.0f, hi = 0.0f;
    if (c->rope_yarn) {
        const float orig = (float)c->rope_orig_ctx, two_pi = 2.0f * (float)M_PI;
        lo = floorf((float)d * logf(orig / (32.0f * two_pi)) / (2.0f * logf(base)));
        hi = ceilf((float)d * logf(orig / (1.0f * two_pi)) / (2.0f * logf(base)));
        lo = fmaxf(0.0f, lo);
        hi = fminf((float)(d - 1), hi);
    }
    for (int i = 0; i < d / 2; i++) {
        float theta = 1.0f / powf(base, (float)(2 * i) / (float)d);
        if (factors) theta /= factors[i];
        float keep = 0.0f; /* share of the unscaled angle (YaRN's ramp) */
        if (c->rope_yarn)
            keep = 1.0f - fminf(1.0f, fmaxf(0.0f, ((float)i - lo) / fmaxf(0.001f, hi - lo)));
        out[i] = theta * (scale * (1.0f - keep) + keep);
    }
}

forward_state_t *forward_state_new(const model_t *m, int n_ctx, int max_batch, kern_pool_t *pool)
{
    const model_config_t *c = &m->cfg;
    forward_state_t *s = mem_calloc(1, sizeof *s);
    s->m = m;
    s->pool = pool;
    s->n_ctx = n_ctx > 0 ? n_ctx : c->n_ctx;
    s->max_batch = max_batch > 0 ? max_batch : FORWARD_DEFAULT_BATCH;
    size_t B = (size_t)s->max_batch, dim = (size_t)c->dim;
    size_t q_dim = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    s->x = mem_alloc(B * dim * sizeof(float));
    s->xb = mem_alloc(B * (dim > q_dim ? dim : q_dim) * sizeof(float));
    s->xb2 = mem_alloc(B * dim * sizeof(float));
    s->q = mem_alloc(B * q_dim * sizeof(float));
    s->k = mem_alloc(B * kv_dim * sizeof(float));
    s->v = mem_alloc(B * kv_dim * sizeof(float));
    s->hb = mem_alloc(B * (size_t)c->hidden_dim * sizeof(float));
    s->hb2 = mem_alloc(B * (size_t)c->hidden_dim * sizeof(float));
    s->logits = mem_alloc(B * (size_t)c->n_vocab * sizeof(float));
    s->rows = mem_alloc(B * sizeof *s->rows);
    /* RoPE tables; LongRoPE's long factors when the session is longer than the
     * original context, as llama.cpp picks them. Windowed layers have their own base
     * and scale (gemma3) and no factors. */
    const float *factors = m->rope_freqs;
    if (!factors && m->rope_long)
        factors = s->n_ctx > c->rope_orig_ctx ? m->rope_long : m->rope_short;
    s->inv_freq = mem_alloc((size_t)(c->rope_dim / 2 + 1) * sizeof(float));
    s->inv_freq_swa = mem_alloc((size_t)(c->rope_dim / 2 + 1) * sizeof(float));
    rope_table(c, c->rope_base, c->rope_scale, factors, s->inv_freq);
    rope_table(c, c->rope_base_swa, c->rope_scale_swa, NULL, s->inv_freq_swa);
    size_t cache = (size_t)c->n_layers * (size_t)s->n_ctx * kv_dim;
    s->key_cache = mem_calloc(cache, sizeof(float));
    s->value_cache = mem_calloc(cache, sizeof(float));
    return s;
}

void forward_state_free(forward_state_t *s)
{
    if (!s) return;
    float *bufs[] = {
        s->x,      s->xb,       s->xb2,          s->q,         s->k,          s->v, s->hb, s->hb2,
        s->logits, s->inv_freq, s->inv_freq_swa, s->key_cache, s->value_cache};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        mem_free(bufs[i]);
    mem_free(s->rows);
    mem_free(s);
}

/* ========================================================= building blocks ==== */

/* out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps), over n elements. */
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (ss * x[i]);
}

/* Y (n, rows) = X (n, cols) . W^T: one token through matvec, a batch through matmul. */
static void project(const forward_state_t *s, const model_tensor_t *w, const float *X, float *Y,
                    int n)
{
    if (n == 1)
        kern_matvec(s->pool, w->type, w->data, X, Y, (size_t)w->rows, (size_t)w->cols);
    else
        kern_matmul(s->pool, w->type, w->data, X, Y, (size_t)n, (size_t)w->rows, (size_t)w->cols);
}

/* Several projections of the same X (n, cols) in one kernel call: X is quantized once
 * and the pool is handed the matrices together (q, k, v; gate, up). */
static void project_many(const forward_state_t *s, const model_tensor_t *const *w, float *const *Y,
                         int count, const float *X, int n)
{
    kern_mat_t mats[3];
    for (int i = 0; i < count; i++)
        mats[i] = (kern_mat_t){
            .type = w[i]->type, .W = w[i]->data, .rows = (size_t)w[i]->rows, .Y = Y[i]};
    kern_matmul_many(s->pool, mats, count, X, (size_t)n, (size_t)w[0]->cols);
}

/* Rotates pairs of each head's first rope_dim dimensions by pos * inv_freq[i]: adjacent
 * pairs (v[2i], v[2i+1]) as llama2.c and llama.cpp's llama architecture do, or with
 * rope_neox the pairs (v[i], v[i + rope_dim/2]) (qwen2 and later). cos and sin are
 * scaled by rope_mscale (LongRoPE's attention factor; 1 otherwise). */
static void rope(const forward_state_t *s, const float *inv_freq, float *v, int n_heads, int pos)
{
    const model_config_t *c = &s->m->cfg;
    for (int i = 0; i < c->rope_dim / 2; i++) {
        float a = (float)pos * inv_freq[i];
        float cs = cosf(a) * c->rope_mscale, sn = sinf(a) * c->rope_mscale;
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (size_t)h * c->head_dim;
            float *pa = c->rope_neox ? p + i : p + 2 * i;
            float *pb = c->rope_neox ? p + i + c->rope_dim / 2 : p + 2 * i + 1;
            float x0 = *pa, x1 = *pb;
            *pa = x0 * cs - x1 * sn;
            *pb = x0 * sn + x1 * cs;
        }
    }
}

/* y[b, i] += bias[i] for n rows of width w. */
static void add_bias(float *y, const float *bias, int n, int w)
{
    for (int b = 0; b < n; b++)
        for (int i = 0; i < w; i++)
            y[(size_t)b * w + i] += bias[i];
}

#define ATTN_BLOCK 128 /* positions per attention block (scores on the stack) */

/* e^x for x <= 0 (attention weights): 2^n * e^r with |r| <= ln2/2 and a degree-6
 * polynomial; relative error below 2e-7, far inside what softmax weights need, and
 * several times cheaper than libm's expf in the attention loop. */
static inline float fast_exp(float x)
{
    if (x < -87.0f) return 0.0f;
    float n = nearbyintf(x * 1.44269504f);
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    union {
        uint32_t u;
        float f;
    } sc = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * sc.f;
}

/* One attention task: row b of the batch (its sequence's cache, at its position
 * pos), query head h, over cached positions 0..pos (the last `window` of them when
 * window > 0) with an online softmax (no score buffer). */
typedef struct attn_job {
    const forward_state_t *s; /* activations */
    const forward_row_t *rows;
    int layer, n_heads;
    int window; /* positions seen, 0: all */
} attn_job_t;

static void attn_task(void *arg, int task, int n_tasks)
{
    (void)n_tasks;
    const attn_job_t *j = arg;
    const forward_state_t *s = j->s;
    const model_config_t *c = &s->m->cfg;
    int b = task / j->n_heads, h = task % j->n_heads;
    int hd = c->head_dim, kv_dim = c->n_kv_heads * hd;
    int kvh = h / (c->n_heads / c->n_kv_heads); /* grouped-query: heads share a kv head */
    const forward_state_t *seq = j->rows[b].seq;
    int pos = j->rows[b].pos;
    const float *q = s->q + (size_t)b * c->n_heads * hd + (size_t)h * hd;
    size_t base = (size_t)j->layer * (size_t)seq->n_ctx * kv_dim + (size_t)kvh * hd;
    float *out = s->xb + (size_t)b * c->n_heads * hd + (size_t)h * hd;
    const float scale = c->attn_scale, cap = c->attn_softcap;
    float acc[1024], sc[ATTN_BLOCK];
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < hd; i++)
        acc[i] = 0.0f;
    int first = j->window > 0 && pos >= j->window ? pos - j->window + 1 : 0;
    /* Positions in blocks: scores, one rescale per block when the maximum grows, then
     * the block's weights in one exp loop and the weighted values. */
    for (int t0 = first; t0 <= pos; t0 += ATTN_BLOCK) {
        int nb = pos + 1 - t0 < ATTN_BLOCK ? pos + 1 - t0 : ATTN_BLOCK;
        float bmx = -INFINITY;
        kern_attn_scores(q, seq->key_cache + base + (size_t)t0 * kv_dim, (size_t)kv_dim, nb, hd,
                         scale, sc);
        for (int t = 0; t < nb; t++)
            bmx = sc[t] > bmx ? sc[t] : bmx;
        if (cap > 0.0f) { /* soft-capping (gemma2): monotonic, so caps the maximum too */
            for (int t = 0; t < nb; t++)
                sc[t] = cap * tanhf(sc[t] / cap);
            bmx = cap * tanhf(bmx / cap);
        }
        if (bmx > mx) { /* rescale what was accumulated under the old maximum */
            float r = fast_exp(mx - bmx);
            sum *= r;
            for (int i = 0; i < hd; i++)
                acc[i] *= r;
            mx = bmx;
        }
        for (int t = 0; t < nb; t++) {
            sc[t] = fast_exp(sc[t] - mx);
            sum += sc[t];
        }
        kern_attn_accum(acc, sc, seq->value_cache + base + (size_t)t0 * kv_dim, (size_t)kv_dim, nb,
                        hd);
    }
    for (int i = 0; i < hd; i++)
        out[i] = acc[i] / sum;
}

/* Runs fn over n tasks on the pool, or inline without one. */
static void run_tasks(kern_pool_t *pool, void (*fn)(void *, int, int), void *arg, int n)
{
    if (pool) {
        kern_pool_run(pool, fn, arg, n);
        return;
    }
    for (int i = 0; i < n; i++)
        fn(arg, i, n);
}

/* ========================================================= the pass ====== */

/* x[i] += w ? rmsnorm(y) * w : y, for n rows of dim: a residual add, with the output
 * normalised first where the architecture has a post-norm (gemma). y is overwritten. */
static void residual_add(float *x, float *y, const float *w, int n, int dim, float eps)
{
    for (int b = 0; b < n && w; b++)
        rmsnorm(y + (size_t)b * dim, y + (size_t)b * dim, w, dim, eps);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        x[i] += y[i];
}

/* gelu, tanh approximation (as llama.cpp's GeGLU). */
static inline float gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(0.7978845608f * x * (1.0f + 0.044715f * x * x)));
}

/* n <= max_batch rows through s's activations, each row's keys and values into its
 * sequence's cache; the logits of the rows that want them, in row order. */
static void forward_rows(forward_state_t *s, const forward_row_t *rows, int n)
{
    const model_t *m = s->m;
    const model_config_t *c = &m->cfg;
    int dim = c->dim, hid = c->hidden_dim, hd = c->head_dim;
    int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    size_t row = kern_row_size(m->tok_embd.type, (size_t)dim);

    /* Embedding lookup. */
    for (int b = 0; b < n; b++)
        kern_dequantize_row(m->tok_embd.type,
                            (const char *)m->tok_embd.data + row * (size_t)rows[b].token,
                            s->x + (size_t)b * dim, (size_t)dim);
    if (c->embd_scale)
        for (size_t i = 0; i < (size_t)n * dim; i++)
            s->x[i] *= sqrtf((float)dim);

    for (int l = 0; l < c->n_layers; l++) {
        const model_layer_t *L = &m->layers[l];

        /* Attention: norm, project, rotate, cache, attend, project back. */
        for (int b = 0; b < n; b++)
            rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, L->attn_norm, dim,
                    c->norm_eps);
        const model_tensor_t *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[3] = {s->q, s->k, s->v};
        project_many(s, qkv, qkv_out, 3, s->xb, n);
        if (L->bq) add_bias(s->q, L->bq, n, q_dim);
        if (L->bk) add_bias(s->k, L->bk, n, kv_dim);
        if (L->bv) add_bias(s->v, L->bv, n, kv_dim);
        if (L->q_norm) /* each head on its own */
            for (int h = 0; h < n * c->n_heads; h++)
                rmsnorm(s->q + (size_t)h * hd, s->q + (size_t)h * hd, L->q_norm, hd, c->norm_eps);
        if (L->k_norm)
            for (int h = 0; h < n * c->n_kv_heads; h++)
                rmsnorm(s->k + (size_t)h * hd, s->k + (size_t)h * hd, L->k_norm, hd, c->norm_eps);
        for (int b = 0; b < n; b++) {
            forward_state_t *seq = rows[b].seq;
            const float *freq = L->swa ? seq->inv_freq_swa : seq->inv_freq;
            int pos = rows[b].pos;
            rope(s, freq, s->q + (size_t)b * q_dim, c->n_heads, pos);
            rope(s, freq, s->k + (size_t)b * kv_dim, c->n_kv_heads, pos);
            size_t at = ((size_t)l * seq->n_ctx + (size_t)pos) * kv_dim;
            memcpy(seq->key_cache + at, s->k + (size_t)b * kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(seq->value_cache + at, s->v + (size_t)b * kv_dim,
                   (size_t)kv_dim * sizeof(float));
        }
        attn_job_t job = {.s = s,
                          .rows = rows,
                          .layer = l,
                          .n_heads = c->n_heads,
                          .window = L->swa ? c->n_swa : 0};
        run_tasks(s->pool, attn_task, &job, n * c->n_heads);
        project(s, &L->wo, s->xb, s->xb2, n);
        residual_add(s->x, s->xb2, L->post_attn_norm, n, dim, c->norm_eps);

        /* Feed-forward: norm, SwiGLU (GeGLU), project back. */
        for (int b = 0; b < n; b++)
            rmsnorm(s->xb + (size_t)b * dim, s->x + (size_t)b * dim, L->ffn_norm, dim, c->norm_eps);
        const model_tensor_t *gate_up[2] = {&L->w_gate, &L->w_up};
        float *gate_up_out[2] = {s->hb, s->hb2};
        project_many(s, gate_up, gate_up_out, 2, s->xb, n);
        if (c->ffn_gelu) {
            for (size_t i = 0; i < (size_t)n * hid; i++)
                s->hb[i] = gelu(s->hb[i]) * s->hb2[i];
        } else {
            for (size_t i = 0; i < (size_t)n * hid; i++) {
                float g = s->hb[i];
                s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
            }
        }
        project(s, &L->w_down, s->hb, s->xb2, n);
        residual_add(s->x, s->xb2, L->post_ffn_norm, n, dim, c->norm_eps);
    }

    /* Final norm and classifier, for the rows that want logits. */
    int out = 0;
    for (int b = 0; b < n; b++)
        if (rows[b].logits)
            rmsnorm(s->xb + (size_t)out++ * dim, s->x + (size_t)b * dim, m->out_norm, dim,
                    c->norm_eps);
    if (!out) return;
    project(s, &m->output, s->xb, s->logits, out);
    if (c->final_softcap > 0.0f)
        for (size_t i = 0; i < (size_t)out * c->n_vocab; i++)
            s->logits[i] = c->final_softcap * tanhf(s->logits[i] / c->final_softcap);
}

const float *forward_run(forward_state_t *s, const int *tokens, int n, int pos, bool all_logits)
{
    const model_config_t *c = &s->m->cfg;
    if (n <= 0 || pos < 0 || pos > s->n_ctx - n || (all_logits && n > s->max_batch)) return NULL;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab) return NULL;
    const float *last = NULL;
    for (int done = 0; done < n;) {
        int k = n - done < s->max_batch ? n - done : s->max_batch;
        for (int b = 0; b < k; b++)
            s->rows[b] = (forward_row_t){.seq = s,
                                         .token = tokens[done + b],
                                         .pos = pos + done + b,
                                         .logits = all_logits || done + b == n - 1};
        forward_rows(s, s->rows, k);
        last = all_logits ? s->logits + (size_t)(k - 1) * c->n_vocab : s->logits;
        done += k;
    }
    return last;
}

int forward_batch(forward_state_t *ws, const forward_row_t *rows, int n)
{
    const model_config_t *c = &ws->m->cfg;
    if (n <= 0 || n > ws->max_batch) return -1;
    for (int b = 0; b < n; b++) {
        const forward_row_t *r = &rows[b];
        if (!r->seq || r->seq->m != ws->m || r->pos < 0 || r->pos >= r->seq->n_ctx ||
            r->token < 0 || r->token >= c->n_vocab)
            return -1;
    }
    forward_rows(ws, rows, n);
    return 0;
}
