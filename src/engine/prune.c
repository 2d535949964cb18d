/* prune.c — structured pruning by activation-based importance. See prune.h. */
#include "engine/prune.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/tokenizer.h"
#include "engine/train.h"

#define PRUNE_CHUNK     128        /* calibration tokens per forward pass */
#define PRUNE_MAX_CALIB (8u << 20) /* bytes of calibration text read at most */

void prune_opts_default(prune_opts_t *o)
{
    *o = (prune_opts_t){.ffn = 0.25f, .heads = 0.25f, .calib_tokens = 4096};
    distill_opts_default(&o->rec);
}

/* Collects sampled ids up to cap. */
typedef struct sink {
    int *ids;
    int n, cap;
} sink_t;

static int sink_add(void *ud, const engine_token_t *t)
{
    sink_t *s = ud;
    if (s->n < s->cap) s->ids[s->n++] = t->id;
    return s->n >= s->cap;
}

/* Calibration ids, BOS first: the text file's tokens, or sequences the model samples. */
static int calib_ids(const engine_t *e, const prune_opts_t *o, int **ids, int *n, char *err,
                     size_t errlen)
{
    int bos = tokenizer_bos(e->model->tok);
    int cap = o->calib_tokens + 1;
    *ids = mem_alloc((size_t)cap * sizeof **ids);
    if (o->calib) {
        FILE *f = fopen(o->calib, "rb");
        if (!f) {
            int rc = -errno;
            snprintf(err, errlen, "calibration text %s: %s", o->calib, strerror(errno));
            return rc;
        }
        char *text = mem_alloc(PRUNE_MAX_CALIB);
        size_t len = fread(text, 1, PRUNE_MAX_CALIB, f);
        fclose(f);
        /* enough bytes for the tokens asked for (a token is at least one byte) */
        size_t take = len < (size_t)cap * 8 ? len : (size_t)cap * 8;
        int need = engine_tokenize(e, text, take, true, false, *ids, cap);
        mem_free(text);
        if (need < 0) {
            snprintf(err, errlen, "calibration text %s cannot be tokenized", o->calib);
            return SY_EINVAL;
        }
        *n = need < cap ? need : cap;
        if (*n < 16) {
            snprintf(err, errlen, "calibration text %s: %d tokens, need at least 16", o->calib, *n);
            return SY_EINVAL;
        }
        return 0;
    }
    if (bos < 0) {
        snprintf(err, errlen, "no calibration text and no BOS to sample from");
        return SY_EINVAL;
    }
    /* The model's own samples from BOS, seeded, one sequence after another. */
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = PRUNE_CHUNK + 1});
    engine_gen_params_t gp = {.max_tokens = PRUNE_CHUNK - 1};
    gp.sample = (sample_params_t){.temperature = 1.0f, .top_p = 1.0f, .repeat_penalty = 1.0f};
    sink_t sk = {.ids = *ids, .n = 0, .cap = cap};
    for (uint64_t seq = 0; sk.n < cap; seq++) {
        sk.ids[sk.n++] = bos;
        gp.sample.seed = seq + 1;
        engine_gen_result_t r;
        int rc = engine_generate(s, &bos, 1, &gp, sink_add, &sk, &r);
        if (rc) {
            engine_session_free(s);
            snprintf(err, errlen, "sampling calibration text: %s", sy_strerror(rc));
            return rc;
        }
    }
    *n = sk.n;
    engine_session_free(s);
    return 0;
}

/* Indices of the keep largest of imp[0..n), in ascending index order. */
static void top_indices(const double *imp, int n, int keep, int *out)
{
    bool *taken = mem_calloc((size_t)n, sizeof *taken);
    for (int k = 0; k < keep; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || imp[i] > imp[best])) best = i;
        taken[best] = true;
    }
    for (int i = 0, k = 0; i < n; i++)
        if (taken[i]) out[k++] = i;
    mem_free(taken);
}

/* Per-layer importances of FFN channels (n_layers, hidden) and heads (n_layers,
 * n_heads), accumulated over the calibration ids in chunks that each start a fresh
 * context. */
static void measure(const train_model_t *tm, const int *ids, int n, double *ffn_imp,
                    double *head_imp)
{
    const model_config_t *c = &tm->cfg;
    int dim = c->dim, hd = c->head_dim, H = c->n_heads, qd = H * hd, hid = c->hidden_dim;
    train_ctx_t *ctx = train_ctx_new(tm, PRUNE_CHUNK);
    int tid[PRUNE_CHUNK] = {0};
    float tp[PRUNE_CHUNK];
    for (int i = 0; i < PRUNE_CHUNK; i++)
        tp[i] = 1.0f;
    /* column norms of W_down: a channel's reach into the residual stream */
    double *down_norm = mem_alloc((size_t)c->n_layers * hid * sizeof *down_norm);
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < hid; j++) {
            double s = 0.0;
            for (int r = 0; r < dim; r++) {
                double w = tm->w.layers[l].w_down[(size_t)r * hid + j];
                s += w * w;
            }
            down_norm[(size_t)l * hid + j] = sqrt(s);
        }
    for (int done = 0; done < n;) {
        int T = n - done < PRUNE_CHUNK ? n - done : PRUNE_CHUNK;
        train_forward_backward(ctx, ids + done, T, tid, tp, 1, NULL, 1.0f, NULL);
        for (int l = 0; l < c->n_layers; l++) {
            const float *a = train_ctx_ffn_act(ctx, l), *o = train_ctx_attn_out(ctx, l);
            const float *wo = tm->w.layers[l].wo;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < hid; j++)
                    ffn_imp[(size_t)l * hid + j] +=
                        fabs(a[(size_t)t * hid + j]) * down_norm[(size_t)l * hid + j];
                for (int h = 0; h < H; h++) {
                    const float *oh = o + (size_t)t * qd + (size_t)h * hd;
                    double ss = 0.0;
                    for (int r = 0; r < dim; r++) {
                        float v = 0.0f;
                        for (int i = 0; i < hd; i++)
                            v += wo[(size_t)r * qd + (size_t)h * hd + i] * oh[i];
                        ss += (double)v * v;
                    }
                    head_imp[(size_t)l * H + h] += sqrt(ss);
                }
            }
        }
        done += T;
    }
    mem_free(down_norm);
    train_ctx_free(ctx);
}

/* Copies the listed rows (each of width cols) of src into dst, in order. */
static void take_rows(float *dst, const float *src, const int *rows, int n, int cols)
{
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * cols, src + (size_t)rows[i] * cols, (size_t)cols * sizeof(float));
}

/* Copies the listed columns of the (nrows, src_cols) matrix src into dst. */
static void take_cols(float *dst, const float *src, int nrows, int src_cols, const int *cols, int n)
{
    for (int r = 0; r < nrows; r++)
        for (int i = 0; i < n; i++)
            dst[(size_t)r * n + i] = src[(size_t)r * src_cols + cols[i]];
}

/* Row indices of the listed heads (each hd rows). */
static void head_rows(const int *heads, int n, int hd, int *rows)
{
    for (int i = 0; i < n; i++)
        for (int d = 0; d < hd; d++)
            rows[i * hd + d] = heads[i] * hd + d;
}

int prune_model(const engine_t *in, const prune_opts_t *o, const char *path, prune_report_t *rep,
                char *err, size_t errlen)
{
    const model_config_t *c = &in->model->cfg;
    if (!(o->ffn >= 0.0f && o->ffn <= 0.95f) || !(o->heads >= 0.0f && o->heads <= 0.95f) ||
        o->calib_tokens < 16 || o->recover_steps < 0 || c->n_heads / c->n_kv_heads > 64) {
        snprintf(err, errlen,
                 "bad pruning options: --ffn and --heads are fractions 0..0.95, calibration "
                 "tokens at least 16, recovery steps >= 0");
        return SY_EINVAL;
    }
    train_model_t *tm;
    int rc = train_model_from(in->model, &tm);
    if (rc) {
        snprintf(err, errlen,
                 "%s: cannot be pruned (qwen2 biases, or weights in a repacked layout: "
                 "set SWITCHYARD_KERNELS=avx2)",
                 in->model->name);
        return rc;
    }
    int *ids = NULL, n = 0;
    rc = calib_ids(in, o, &ids, &n, err, errlen);
    if (rc) {
        mem_free(ids);
        train_model_free(tm);
        return rc;
    }
    int L = c->n_layers, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
    int hid = c->hidden_dim, dim = c->dim, grp = H / KV;
    double *ffn_imp = mem_calloc((size_t)L * hid, sizeof *ffn_imp);
    double *head_imp = mem_calloc((size_t)L * H, sizeof *head_imp);
    measure(tm, ids, n, ffn_imp, head_imp);

    /* Shapes after pruning. */
    int hid2 = hid - (int)lround(hid * (double)o->ffn);
    if (hid2 < 1) hid2 = 1;
    /* Heads: evenly from every group when the count allows, else whole groups. */
    int rm = (int)lround(H * (double)o->heads), grp2 = grp, KV2 = KV;
    if (rm > 0 && grp > 1 && rm % KV == 0 && rm / KV < grp) {
        grp2 = grp - rm / KV;
    } else if (rm > 0) {
        int g = (int)lround(KV * (double)o->heads);
        KV2 = KV - (g > 0 ? g : 1);
        if (KV2 < 1) KV2 = 1;
    }
    int H2 = KV2 * grp2;
    model_config_t c2 = *c;
    c2.hidden_dim = hid2, c2.n_heads = H2, c2.n_kv_heads = KV2;
    train_model_t *pm = train_model_new(&c2, tm->tied, 0);
    memcpy(pm->w.tok_embd, tm->w.tok_embd, (size_t)c->n_vocab * dim * sizeof(float));
    memcpy(pm->w.out_norm, tm->w.out_norm, (size_t)dim * sizeof(float));
    if (!tm->tied) memcpy(pm->w.output, tm->w.output, (size_t)c->n_vocab * dim * sizeof(float));
    int *keep = mem_alloc((size_t)(hid > H ? hid : H) * sizeof *keep);
    int *rows = mem_alloc((size_t)(hid > H * hd ? hid : H * hd) * sizeof *rows);
    int *kv_keep = mem_alloc((size_t)KV * sizeof *kv_keep);
    double *gimp = mem_alloc((size_t)(KV > grp ? KV : grp) * sizeof *gimp);
    for (int l = 0; l < L; l++) {
        const train_layer_t *S = &tm->w.layers[l];
        train_layer_t *D = &pm->w.layers[l];
        memcpy(D->attn_norm, S->attn_norm, (size_t)dim * sizeof(float));
        memcpy(D->ffn_norm, S->ffn_norm, (size_t)dim * sizeof(float));
        /* FFN channels */
        top_indices(ffn_imp + (size_t)l * hid, hid, hid2, keep);
        take_rows(D->w_gate, S->w_gate, keep, hid2, dim);
        take_rows(D->w_up, S->w_up, keep, hid2, dim);
        take_cols(D->w_down, S->w_down, dim, hid, keep, hid2);
        /* heads: the kept groups, then the kept heads of each, in order */
        const double *hi = head_imp + (size_t)l * H;
        for (int g = 0; g < KV; g++) {
            gimp[g] = 0.0;
            for (int i = 0; i < grp; i++)
                gimp[g] += hi[g * grp + i];
        }
        top_indices(gimp, KV, KV2, kv_keep);
        int nh = 0;
        for (int gi = 0; gi < KV2; gi++) {
            int g = kv_keep[gi];
            double gh[64];
            int sel[64];
            for (int i = 0; i < grp && i < 64; i++)
                gh[i] = hi[g * grp + i];
            top_indices(gh, grp, grp2, sel);
            for (int i = 0; i < grp2; i++)
                keep[nh++] = g * grp + sel[i];
        }
        head_rows(keep, H2, hd, rows);
        take_rows(D->wq, S->wq, rows, H2 * hd, dim);
        take_cols(D->wo, S->wo, dim, H * hd, rows, H2 * hd);
        head_rows(kv_keep, KV2, hd, rows);
        take_rows(D->wk, S->wk, rows, KV2 * hd, dim);
        take_rows(D->wv, S->wv, rows, KV2 * hd, dim);
    }
    prune_report_t r = {.params_in = tm->n_params,
                        .params_out = pm->n_params,
                        .n_heads = H2,
                        .n_kv_heads = KV2,
                        .hidden_dim = hid2,
                        .calib_tokens = n};
    if (o->recover_steps > 0) {
        distill_opts_t d = o->rec;
        d.steps = o->recover_steps;
        d.quiet = o->quiet;
        if (!d.corpus) d.corpus = o->calib;
        if (d.warmup > d.steps / 5) d.warmup = d.steps / 5;
        if (d.seq_len > c->n_ctx - 1) d.seq_len = c->n_ctx - 1; /* a short-context student */
        rc = distill_train(in, pm, &d, &r.rec, err, errlen);
    }
    if (!rc) {
        char name[160];
        snprintf(name, sizeof name, "%.100s-pruned", in->model->name);
        rc = train_model_save(pm, in->model, name, path);
        if (rc) snprintf(err, errlen, "%s: cannot write: %s", path, sy_strerror(rc));
    }
    if (rep) *rep = r;
    mem_free(gimp);
    mem_free(kv_keep);
    mem_free(rows);
    mem_free(keep);
    mem_free(ffn_imp);
    mem_free(head_imp);
    mem_free(ids);
    train_model_free(pm);
    train_model_free(tm);
    return rc;
}
