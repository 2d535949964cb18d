/* train.c — forward and backward passes of the llama architecture in f32, and AdamW.
 * See train.h. The forward pass mirrors forward.c (same RMSNorm, RoPE pairs, GQA,
 * SwiGLU), so a trained model runs in the engine as it was trained.
 */
#include "engine/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/convert.h"
#include "engine/kernels.h"

/* ============================================================ parameters ==== */

size_t train_n_params(const model_config_t *c, bool tied)
{
    size_t dim = (size_t)c->dim, qd = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)c->head_dim, hid = (size_t)c->hidden_dim;
    size_t layer = 2 * dim + qd * dim + 2 * kvd * dim + dim * qd + 3 * hid * dim;
    size_t n = (size_t)c->n_vocab * dim + (size_t)c->n_layers * layer + dim;
    return tied ? n : n + (size_t)c->n_vocab * dim;
}

void train_weights_map(const model_config_t *c, bool tied, float *base, train_weights_t *w)
{
    size_t dim = (size_t)c->dim, qd = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)c->head_dim, hid = (size_t)c->hidden_dim;
    float *p = base;
    w->tok_embd = p, p += (size_t)c->n_vocab * dim;
    w->layers = mem_calloc((size_t)c->n_layers, sizeof *w->layers);
    for (int l = 0; l < c->n_layers; l++) {
        train_layer_t *L = &w->layers[l];
        L->attn_norm = p, p += dim;
        L->wq = p, p += qd * dim;
        L->wk = p, p += kvd * dim;
        L->wv = p, p += kvd * dim;
        L->wo = p, p += dim * qd;
        L->ffn_norm = p, p += dim;
        L->w_gate = p, p += hid * dim;
        L->w_down = p, p += dim * hid;
        L->w_up = p, p += hid * dim;
    }
    w->out_norm = p, p += dim;
    w->output = tied ? w->tok_embd : p;
}

void train_weights_unmap(train_weights_t *w)
{
    mem_free(w->layers);
    w->layers = NULL;
}

/* splitmix64 */
static uint64_t rng_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal draw (Box-Muller). */
static float rng_normal(uint64_t *s)
{
    double u1 = ((double)(rng_u64(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(rng_u64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill_normal(float *p, size_t n, float sd, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = sd * rng_normal(s);
}

static train_model_t *model_alloc(const model_config_t *c, bool tied)
{
    train_model_t *tm = mem_calloc(1, sizeof *tm);
    tm->cfg = *c;
    tm->cfg.rope_neox = false;
    tm->tied = tied;
    tm->n_params = train_n_params(c, tied);
    tm->params = mem_calloc(tm->n_params, sizeof(float));
    train_weights_map(&tm->cfg, tied, tm->params, &tm->w);
    return tm;
}

train_model_t *train_model_new(const model_config_t *c, bool tied, uint64_t seed)
{
    train_model_t *tm = model_alloc(c, tied);
    const model_config_t *k = &tm->cfg;
    size_t dim = (size_t)k->dim, qd = (size_t)k->n_heads * (size_t)k->head_dim;
    size_t kvd = (size_t)k->n_kv_heads * (size_t)k->head_dim, hid = (size_t)k->hidden_dim;
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
    const float sd = 0.02f, sd_out = 0.02f / sqrtf(2.0f * (float)k->n_layers);
    fill_normal(tm->w.tok_embd, (size_t)k->n_vocab * dim, sd, &s);
    for (int l = 0; l < k->n_layers; l++) {
        train_layer_t *L = &tm->w.layers[l];
        for (size_t i = 0; i < dim; i++)
            L->attn_norm[i] = L->ffn_norm[i] = 1.0f;
        fill_normal(L->wq, qd * dim, sd, &s);
        fill_normal(L->wk, kvd * dim, sd, &s);
        fill_normal(L->wv, kvd * dim, sd, &s);
        fill_normal(L->wo, dim * qd, sd_out, &s);
        fill_normal(L->w_gate, hid * dim, sd, &s);
        fill_normal(L->w_down, dim * hid, sd_out, &s);
        fill_normal(L->w_up, hid * dim, sd, &s);
    }
    for (size_t i = 0; i < dim; i++)
        tm->w.out_norm[i] = 1.0f;
    if (!tied) fill_normal(tm->w.output, (size_t)k->n_vocab * dim, sd, &s);
    return tm;
}

/* Dequantizes a (rows, cols) matrix into dst. */
static int copy_matrix(const model_tensor_t *t, float *dst)
{
    size_t rb = kern_row_size(t->type, (size_t)t->cols);
    if (!rb || (t->type != KERN_F32 && t->type != KERN_F16 && t->type != KERN_Q8_0 &&
                t->type != KERN_Q4_0))
        return SY_EUNSUPPORTED;
    for (int r = 0; r < t->rows; r++)
        kern_dequantize_row(t->type, (const char *)t->data + rb * (size_t)r,
                            dst + (size_t)r * t->cols, (size_t)t->cols);
    return 0;
}

int train_model_from(const model_t *m, train_model_t **out)
{
    *out = NULL;
    if (m->cfg.rope_neox || (m->cfg.n_layers && m->layers[0].bq)) return SY_EUNSUPPORTED;
    train_model_t *tm = model_alloc(&m->cfg, m->tied_output);
    size_t dim = (size_t)m->cfg.dim;
    int rc = copy_matrix(&m->tok_embd, tm->w.tok_embd);
    for (int l = 0; l < m->cfg.n_layers && !rc; l++) {
        const model_layer_t *S = &m->layers[l];
        train_layer_t *L = &tm->w.layers[l];
        memcpy(L->attn_norm, S->attn_norm, dim * sizeof(float));
        memcpy(L->ffn_norm, S->ffn_norm, dim * sizeof(float));
        const model_tensor_t *src[] = {&S->wq,     &S->wk,     &S->wv,  &S->wo,
                                       &S->w_gate, &S->w_down, &S->w_up};
        float *dst[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_down, L->w_up};
        for (int i = 0; i < 7 && !rc; i++)
            rc = copy_matrix(src[i], dst[i]);
    }
    memcpy(tm->w.out_norm, m->out_norm, dim * sizeof(float));
    if (!rc && !m->tied_output) rc = copy_matrix(&m->output, tm->w.output);
    if (rc) {
        train_model_free(tm);
        return rc;
    }
    *out = tm;
    return 0;
}

void train_model_free(train_model_t *tm)
{
    if (!tm) return;
    train_weights_unmap(&tm->w);
    mem_free(tm->params);
    mem_free(tm);
}

static model_tensor_t f32_tensor(const float *p, int rows, int cols)
{
    return (model_tensor_t){.type = KERN_F32, .data = p, .rows = rows, .cols = cols};
}

int train_model_save(const train_model_t *tm, const model_t *like, const char *name,
                     const char *path)
{
    const model_config_t *c = &tm->cfg;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    model_t v = {.cfg = *c,
                 .tied_output = tm->tied,
                 .tok = like->tok,
                 .chat_template = like->chat_template,
                 .format = "gguf",
                 .weight_type = KERN_F32};
    snprintf(v.name, sizeof v.name, "%s", name);
    v.tok_embd = f32_tensor(tm->w.tok_embd, c->n_vocab, c->dim);
    v.output = f32_tensor(tm->w.output, c->n_vocab, c->dim);
    v.out_norm = tm->w.out_norm;
    v.layers = mem_calloc((size_t)c->n_layers, sizeof *v.layers);
    for (int l = 0; l < c->n_layers; l++) {
        const train_layer_t *L = &tm->w.layers[l];
        v.layers[l] = (model_layer_t){.attn_norm = L->attn_norm,
                                      .ffn_norm = L->ffn_norm,
                                      .wq = f32_tensor(L->wq, qd, c->dim),
                                      .wk = f32_tensor(L->wk, kvd, c->dim),
                                      .wv = f32_tensor(L->wv, kvd, c->dim),
                                      .wo = f32_tensor(L->wo, c->dim, qd),
                                      .w_gate = f32_tensor(L->w_gate, c->hidden_dim, c->dim),
                                      .w_down = f32_tensor(L->w_down, c->dim, c->hidden_dim),
                                      .w_up = f32_tensor(L->w_up, c->hidden_dim, c->dim)};
    }
    int rc = convert_model_to_gguf(&v, path);
    mem_free(v.layers);
    return rc;
}

/* ============================================================ activations ==== */

/* What one layer keeps from the forward pass for the backward pass. */
typedef struct act_layer {
    float *x_in;  /* (T, dim) residual stream entering the layer */
    float *r1;    /* (T) 1 / rms of x_in */
    float *xn1;   /* (T, dim) normed input to attention */
    float *q;     /* (T, qd) after RoPE */
    float *k;     /* (T, kvd) after RoPE */
    float *v;     /* (T, kvd) */
    float *P;     /* (n_heads, T, T) attention weights, row t over 0..t */
    float *o;     /* (T, qd) attention output */
    float *x_mid; /* (T, dim) after the attention residual */
    float *r2;    /* (T) */
    float *xn2;   /* (T, dim) normed input to the FFN */
    float *g;     /* (T, hid) gate before silu */
    float *u;     /* (T, hid) up */
    float *a;     /* (T, hid) silu(g) * u */
} act_layer_t;

struct train_ctx {
    const train_model_t *tm;
    int max_T;
    act_layer_t *L; /* (n_layers) */
    float *xf;      /* (T, dim) final residual stream */
    float *rf;      /* (T) */
    float *xnf;     /* (T, dim) */
    float *logits;  /* (T, n_vocab) */
    float *inv_freq;
    /* backward scratch */
    float *dx, *dxn, *dq, *dk, *dv, *dO, *da, *dg, *du; /* (T, width) */
    float *tmp;                                         /* (T, max width) */
    float *wt, *at, *bt, *gw;                           /* transposes and a dW */
    train_weights_t gv;                                 /* views into the grad vector */
    float *gv_base;
};

train_ctx_t *train_ctx_new(const train_model_t *tm, int max_T)
{
    const model_config_t *c = &tm->cfg;
    train_ctx_t *x = mem_calloc(1, sizeof *x);
    x->tm = tm;
    x->max_T = max_T;
    size_t T = (size_t)max_T, dim = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, hid = (size_t)c->hidden_dim;
    size_t V = (size_t)c->n_vocab;
    x->L = mem_calloc((size_t)c->n_layers, sizeof *x->L);
    for (int l = 0; l < c->n_layers; l++) {
        act_layer_t *A = &x->L[l];
        A->x_in = mem_alloc(T * dim * sizeof(float));
        A->r1 = mem_alloc(T * sizeof(float));
        A->xn1 = mem_alloc(T * dim * sizeof(float));
        A->q = mem_alloc(T * qd * sizeof(float));
        A->k = mem_alloc(T * kvd * sizeof(float));
        A->v = mem_alloc(T * kvd * sizeof(float));
        A->P = mem_calloc((size_t)c->n_heads * T * T, sizeof(float));
        A->o = mem_alloc(T * qd * sizeof(float));
        A->x_mid = mem_alloc(T * dim * sizeof(float));
        A->r2 = mem_alloc(T * sizeof(float));
        A->xn2 = mem_alloc(T * dim * sizeof(float));
        A->g = mem_alloc(T * hid * sizeof(float));
        A->u = mem_alloc(T * hid * sizeof(float));
        A->a = mem_alloc(T * hid * sizeof(float));
    }
    x->xf = mem_alloc(T * dim * sizeof(float));
    x->rf = mem_alloc(T * sizeof(float));
    x->xnf = mem_alloc(T * dim * sizeof(float));
    x->logits = mem_alloc(T * V * sizeof(float));
    x->inv_freq = mem_alloc((size_t)(c->rope_dim / 2 + 1) * sizeof(float));
    for (int i = 0; i < c->rope_dim / 2; i++)
        x->inv_freq[i] = 1.0f / powf(c->rope_base, (float)(2 * i) / (float)c->rope_dim);
    size_t wmax = V > hid ? V : hid;
    if (qd > wmax) wmax = qd;
    if (dim > wmax) wmax = dim;
    float **bufs[] = {&x->dx, &x->dxn, &x->dq, &x->dk, &x->dv, &x->dO, &x->da, &x->dg, &x->du};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        *bufs[i] = mem_alloc(T * wmax * sizeof(float));
    x->tmp = mem_alloc(T * wmax * sizeof(float));
    size_t mat = wmax * (dim > qd ? (dim > hid ? dim : hid) : (qd > hid ? qd : hid));
    x->wt = mem_alloc(mat * sizeof(float));
    x->gw = mem_alloc(mat * sizeof(float));
    x->at = mem_alloc(T * wmax * sizeof(float));
    x->bt = mem_alloc(T * wmax * sizeof(float));
    return x;
}

void train_ctx_free(train_ctx_t *x)
{
    if (!x) return;
    for (int l = 0; l < x->tm->cfg.n_layers; l++) {
        act_layer_t *A = &x->L[l];
        float *bufs[] = {A->x_in, A->r1,    A->xn1, A->q,   A->k, A->v, A->P,
                         A->o,    A->x_mid, A->r2,  A->xn2, A->g, A->u, A->a};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
            mem_free(bufs[i]);
    }
    mem_free(x->L);
    float *bufs[] = {x->xf,  x->rf, x->xnf, x->logits, x->inv_freq, x->dx, x->dxn,
                     x->dq,  x->dk, x->dv,  x->dO,     x->da,       x->dg, x->du,
                     x->tmp, x->wt, x->gw,  x->at,     x->bt};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        mem_free(bufs[i]);
    train_weights_unmap(&x->gv);
    mem_free(x);
}

const float *train_ctx_attn_out(const train_ctx_t *c, int l)
{
    return c->L[l].o;
}

const float *train_ctx_logits(const train_ctx_t *c)
{
    return c->logits;
}

const float *train_ctx_ffn_act(const train_ctx_t *c, int l)
{
    return c->L[l].a;
}

/* ============================================================ building blocks ==== */

/* Y (n, rows) = X (n, cols) . W^T */
static void mm(const float *X, const float *W, float *Y, int n, int rows, int cols)
{
    kern_matmul(NULL, KERN_F32, W, X, Y, (size_t)n, (size_t)rows, (size_t)cols);
}

/* At (c, r) = A (r, c)^T */
static void transpose(const float *A, float *At, int r, int c)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++)
            At[(size_t)j * r + i] = A[(size_t)i * c + j];
}

/* dX (n, cols) += dY (n, rows) . W (rows, cols) */
static void mm_dx(train_ctx_t *x, const float *dY, const float *W, float *dX, int n, int rows,
                  int cols)
{
    transpose(W, x->wt, rows, cols);
    mm(dY, x->wt, x->tmp, n, cols, rows);
    for (size_t i = 0; i < (size_t)n * cols; i++)
        dX[i] += x->tmp[i];
}

/* dW (rows, cols) += dY (n, rows)^T . X (n, cols) */
static void mm_dw(train_ctx_t *x, const float *dY, const float *X, float *dW, int n, int rows,
                  int cols)
{
    transpose(dY, x->at, n, rows);
    transpose(X, x->bt, n, cols);
    mm(x->at, x->bt, x->gw, rows, cols, n);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        dW[i] += x->gw[i];
}

/* out = w * x * r with r = 1 / sqrt(mean(x^2) + eps), per row; r saved. */
static void rmsnorm_rows(float *out, float *r, const float *X, const float *w, int T, int n,
                         float eps)
{
    for (int t = 0; t < T; t++) {
        const float *x = X + (size_t)t * n;
        float ss = 0.0f;
        for (int i = 0; i < n; i++)
            ss += x[i] * x[i];
        float rr = 1.0f / sqrtf(ss / (float)n + eps);
        r[t] = rr;
        for (int i = 0; i < n; i++)
            out[(size_t)t * n + i] = w[i] * (rr * x[i]);
    }
}

/* Backward of rmsnorm_rows: dX += d/dx, dw += d/dw for upstream dY. */
static void rmsnorm_back(float *dX, float *dw, const float *dY, const float *X, const float *r,
                         const float *w, int T, int n)
{
    for (int t = 0; t < T; t++) {
        const float *x = X + (size_t)t * n, *dy = dY + (size_t)t * n;
        float rr = r[t], dot = 0.0f;
        for (int i = 0; i < n; i++) {
            dw[i] += dy[i] * x[i] * rr;
            dot += w[i] * dy[i] * x[i];
        }
        float c = rr * rr * rr * dot / (float)n;
        for (int i = 0; i < n; i++)
            dX[(size_t)t * n + i] += rr * w[i] * dy[i] - c * x[i];
    }
}

/* RoPE on adjacent pairs of each head's first rope_dim dimensions at position pos;
 * sign -1 rotates back (the backward pass of a rotation is its inverse). */
static void rope(const train_ctx_t *x, float *v, int n_heads, int pos, float sign)
{
    const model_config_t *c = &x->tm->cfg;
    for (int i = 0; i < c->rope_dim / 2; i++) {
        float a = (float)pos * x->inv_freq[i];
        float cs = cosf(a), sn = sign * sinf(a);
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (size_t)h * c->head_dim + 2 * i;
            float x0 = p[0], x1 = p[1];
            p[0] = x0 * cs - x1 * sn;
            p[1] = x0 * sn + x1 * cs;
        }
    }
}

/* ============================================================ the passes ==== */

/* Forward over T tokens, keeping activations; logits in x->logits. */
static void forward(train_ctx_t *x, const int *tokens, int T)
{
    const train_model_t *tm = x->tm;
    const model_config_t *c = &tm->cfg;
    const train_weights_t *w = &tm->w;
    int dim = c->dim, hd = c->head_dim, H = c->n_heads, qd = H * hd;
    int kvd = c->n_kv_heads * hd, hid = c->hidden_dim, grp = H / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    float *cur = x->L[0].x_in;
    for (int t = 0; t < T; t++)
        memcpy(cur + (size_t)t * dim, w->tok_embd + (size_t)tokens[t] * dim,
               (size_t)dim * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        act_layer_t *A = &x->L[l];
        const train_layer_t *W = &w->layers[l];
        rmsnorm_rows(A->xn1, A->r1, A->x_in, W->attn_norm, T, dim, c->norm_eps);
        mm(A->xn1, W->wq, A->q, T, qd, dim);
        mm(A->xn1, W->wk, A->k, T, kvd, dim);
        mm(A->xn1, W->wv, A->v, T, kvd, dim);
        for (int t = 0; t < T; t++) {
            rope(x, A->q + (size_t)t * qd, H, t, 1.0f);
            rope(x, A->k + (size_t)t * kvd, c->n_kv_heads, t, 1.0f);
        }
        for (int h = 0; h < H; h++) {
            int kh = h / grp;
            for (int t = 0; t < T; t++) {
                const float *q = A->q + (size_t)t * qd + (size_t)h * hd;
                float *P = A->P + ((size_t)h * T + t) * T;
                float mx = -INFINITY;
                for (int u = 0; u <= t; u++) {
                    const float *k = A->k + (size_t)u * kvd + (size_t)kh * hd;
                    float d = 0.0f;
                    for (int i = 0; i < hd; i++)
                        d += q[i] * k[i];
                    P[u] = d * scale;
                    mx = P[u] > mx ? P[u] : mx;
                }
                float z = 0.0f;
                for (int u = 0; u <= t; u++)
                    z += (P[u] = expf(P[u] - mx));
                float *o = A->o + (size_t)t * qd + (size_t)h * hd;
                for (int i = 0; i < hd; i++)
                    o[i] = 0.0f;
                for (int u = 0; u <= t; u++) {
                    P[u] /= z;
                    const float *v = A->v + (size_t)u * kvd + (size_t)kh * hd;
                    for (int i = 0; i < hd; i++)
                        o[i] += P[u] * v[i];
                }
            }
        }
        mm(A->o, W->wo, x->tmp, T, dim, qd);
        for (size_t i = 0; i < (size_t)T * dim; i++)
            A->x_mid[i] = A->x_in[i] + x->tmp[i];
        rmsnorm_rows(A->xn2, A->r2, A->x_mid, W->ffn_norm, T, dim, c->norm_eps);
        mm(A->xn2, W->w_gate, A->g, T, hid, dim);
        mm(A->xn2, W->w_up, A->u, T, hid, dim);
        for (size_t i = 0; i < (size_t)T * hid; i++) {
            float g = A->g[i];
            A->a[i] = g / (1.0f + expf(-g)) * A->u[i];
        }
        mm(A->a, W->w_down, x->tmp, T, dim, hid);
        float *next = l + 1 < c->n_layers ? x->L[l + 1].x_in : x->xf;
        for (size_t i = 0; i < (size_t)T * dim; i++)
            next[i] = A->x_mid[i] + x->tmp[i];
    }
    rmsnorm_rows(x->xnf, x->rf, x->xf, w->out_norm, T, dim, c->norm_eps);
    mm(x->xnf, w->output, x->logits, T, c->n_vocab, dim);
}

/* Backward from x->logits, which hold dLoss/dlogits on entry. */
static void backward(train_ctx_t *x, const int *tokens, int T, const train_weights_t *gw)
{
    const train_model_t *tm = x->tm;
    const model_config_t *c = &tm->cfg;
    const train_weights_t *w = &tm->w;
    int dim = c->dim, hd = c->head_dim, H = c->n_heads, qd = H * hd;
    int kvd = c->n_kv_heads * hd, hid = c->hidden_dim, grp = H / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    const float *dlog = x->logits;

    /* classifier and final norm */
    mm_dw(x, dlog, x->xnf, gw->output, T, c->n_vocab, dim);
    memset(x->dxn, 0, (size_t)T * dim * sizeof(float));
    mm_dx(x, dlog, w->output, x->dxn, T, c->n_vocab, dim);
    memset(x->dx, 0, (size_t)T * dim * sizeof(float));
    rmsnorm_back(x->dx, gw->out_norm, x->dxn, x->xf, x->rf, w->out_norm, T, dim);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        act_layer_t *A = &x->L[l];
        const train_layer_t *W = &w->layers[l];
        const train_layer_t *G = &gw->layers[l];
        /* FFN: x_out = x_mid + a Wd^T; dx flows to x_mid unchanged */
        mm_dw(x, x->dx, A->a, G->w_down, T, dim, hid);
        memset(x->da, 0, (size_t)T * hid * sizeof(float));
        mm_dx(x, x->dx, W->w_down, x->da, T, dim, hid);
        for (size_t i = 0; i < (size_t)T * hid; i++) {
            float g = A->g[i], sg = 1.0f / (1.0f + expf(-g));
            float silu = g * sg;
            x->du[i] = x->da[i] * silu;
            x->dg[i] = x->da[i] * A->u[i] * (sg * (1.0f + g * (1.0f - sg)));
        }
        mm_dw(x, x->dg, A->xn2, G->w_gate, T, hid, dim);
        mm_dw(x, x->du, A->xn2, G->w_up, T, hid, dim);
        memset(x->dxn, 0, (size_t)T * dim * sizeof(float));
        mm_dx(x, x->dg, W->w_gate, x->dxn, T, hid, dim);
        mm_dx(x, x->du, W->w_up, x->dxn, T, hid, dim);
        rmsnorm_back(x->dx, G->ffn_norm, x->dxn, A->x_mid, A->r2, W->ffn_norm, T, dim);

        /* attention: x_mid = x_in + o Wo^T */
        mm_dw(x, x->dx, A->o, G->wo, T, dim, qd);
        memset(x->dO, 0, (size_t)T * qd * sizeof(float));
        mm_dx(x, x->dx, W->wo, x->dO, T, dim, qd);
        memset(x->dq, 0, (size_t)T * qd * sizeof(float));
        memset(x->dk, 0, (size_t)T * kvd * sizeof(float));
        memset(x->dv, 0, (size_t)T * kvd * sizeof(float));
        for (int h = 0; h < H; h++) {
            int kh = h / grp;
            for (int t = 0; t < T; t++) {
                const float *P = A->P + ((size_t)h * T + t) * T;
                const float *dout = x->dO + (size_t)t * qd + (size_t)h * hd;
                const float *q = A->q + (size_t)t * qd + (size_t)h * hd;
                float *dq = x->dq + (size_t)t * qd + (size_t)h * hd;
                float *dS = x->tmp; /* (t + 1) */
                float sum = 0.0f;
                for (int u = 0; u <= t; u++) {
                    const float *v = A->v + (size_t)u * kvd + (size_t)kh * hd;
                    float *dv = x->dv + (size_t)u * kvd + (size_t)kh * hd;
                    float d = 0.0f;
                    for (int i = 0; i < hd; i++) {
                        d += dout[i] * v[i];
                        dv[i] += P[u] * dout[i];
                    }
                    dS[u] = d;
                    sum += P[u] * d;
                }
                for (int u = 0; u <= t; u++) {
                    float ds = P[u] * (dS[u] - sum) * scale;
                    const float *k = A->k + (size_t)u * kvd + (size_t)kh * hd;
                    float *dk = x->dk + (size_t)u * kvd + (size_t)kh * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
        for (int t = 0; t < T; t++) {
            rope(x, x->dq + (size_t)t * qd, H, t, -1.0f);
            rope(x, x->dk + (size_t)t * kvd, c->n_kv_heads, t, -1.0f);
        }
        mm_dw(x, x->dq, A->xn1, G->wq, T, qd, dim);
        mm_dw(x, x->dk, A->xn1, G->wk, T, kvd, dim);
        mm_dw(x, x->dv, A->xn1, G->wv, T, kvd, dim);
        memset(x->dxn, 0, (size_t)T * dim * sizeof(float));
        mm_dx(x, x->dq, W->wq, x->dxn, T, qd, dim);
        mm_dx(x, x->dk, W->wk, x->dxn, T, kvd, dim);
        mm_dx(x, x->dv, W->wv, x->dxn, T, kvd, dim);
        rmsnorm_back(x->dx, G->attn_norm, x->dxn, A->x_in, A->r1, W->attn_norm, T, dim);
    }
    for (int t = 0; t < T; t++) {
        float *g = gw->tok_embd + (size_t)tokens[t] * dim;
        for (int i = 0; i < dim; i++)
            g[i] += x->dx[(size_t)t * dim + i];
    }
}

double train_forward_backward(train_ctx_t *x, const int *tokens, int T, const int *tgt_id,
                              const float *tgt_p, int k, float *grad, float scale, double *kl)
{
    const model_config_t *c = &x->tm->cfg;
    int V = c->n_vocab;
    if (T <= 0 || T > x->max_T || k <= 0) return -1.0;
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= V) return -1.0;
        for (int j = 0; j < k; j++)
            if (tgt_id[t * k + j] < 0 || tgt_id[t * k + j] >= V) return -1.0;
    }
    forward(x, tokens, T);
    /* loss, and dLoss/dlogits = scale * (softmax - target) in place of the logits */
    double loss = 0.0, ent = 0.0;
    for (int t = 0; t < T; t++) {
        float *lg = x->logits + (size_t)t * V;
        float mx = lg[0];
        for (int i = 1; i < V; i++)
            mx = lg[i] > mx ? lg[i] : mx;
        double z = 0.0;
        for (int i = 0; i < V; i++)
            z += exp((double)(lg[i] - mx));
        double lse = (double)mx + log(z);
        for (int j = 0; j < k; j++) {
            float p = tgt_p[t * k + j];
            if (p <= 0.0f) continue;
            loss -= p * ((double)lg[tgt_id[t * k + j]] - lse);
            ent -= p * log((double)p);
        }
        if (grad) {
            for (int i = 0; i < V; i++)
                lg[i] = scale * (float)exp((double)lg[i] - lse);
            for (int j = 0; j < k; j++)
                lg[tgt_id[t * k + j]] -= scale * tgt_p[t * k + j];
        }
    }
    if (kl) *kl = loss - ent;
    if (grad) {
        if (x->gv_base != grad) {
            train_weights_unmap(&x->gv);
            train_weights_map(c, x->tm->tied, grad, &x->gv);
            x->gv_base = grad;
        }
        backward(x, tokens, T, &x->gv);
    }
    return loss;
}

/* ============================================================ optimiser ==== */

void train_adamw_init(train_adamw_t *o, const train_model_t *tm, float weight_decay)
{
    *o = (train_adamw_t){.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = weight_decay};
    o->n = tm->n_params;
    o->m = mem_calloc(o->n, sizeof(float));
    o->v = mem_calloc(o->n, sizeof(float));
    o->decay = mem_alloc(o->n);
    memset(o->decay, 1, o->n);
    /* norms are not decayed */
    size_t dim = (size_t)tm->cfg.dim;
    for (int l = 0; l < tm->cfg.n_layers; l++) {
        memset(o->decay + (tm->w.layers[l].attn_norm - tm->params), 0, dim);
        memset(o->decay + (tm->w.layers[l].ffn_norm - tm->params), 0, dim);
    }
    memset(o->decay + (tm->w.out_norm - tm->params), 0, dim);
}

void train_adamw_deinit(train_adamw_t *o)
{
    mem_free(o->m);
    mem_free(o->v);
    mem_free(o->decay);
    o->m = o->v = NULL;
    o->decay = NULL;
}

double train_adamw_step(train_adamw_t *o, float *params, float *grad, float lr, float clip)
{
    double ss = 0.0;
    for (size_t i = 0; i < o->n; i++)
        ss += (double)grad[i] * grad[i];
    double norm = sqrt(ss);
    float gs = clip > 0.0f && norm > clip ? (float)(clip / norm) : 1.0f;
    o->t++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->t), bc2 = 1.0f - powf(o->beta2, (float)o->t);
    for (size_t i = 0; i < o->n; i++) {
        float g = grad[i] * gs;
        o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * g;
        o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * g * g;
        float mh = o->m[i] / bc1, vh = o->v[i] / bc2;
        float upd = mh / (sqrtf(vh) + o->eps);
        if (o->decay[i]) upd += o->weight_decay * params[i];
        params[i] -= lr * upd;
    }
    return norm;
}

float train_lr_cosine(long step, long total, long warmup, float lr_max, float lr_min)
{
    if (warmup > 0 && step < warmup) return lr_max * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return lr_max;
    double prog = (double)(step - warmup) / (double)(total - warmup);
    if (prog > 1.0) prog = 1.0;
    return lr_min + 0.5f * (lr_max - lr_min) * (float)(1.0 + cos(3.141592653589793 * prog));
}
