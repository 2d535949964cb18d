/* distill.c — a student trained on a teacher's top-k distributions. See distill.h. */
#include "engine/distill.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/tokenizer.h"

#define DISTILL_MAX_TOPK   64
#define DISTILL_MAX_CORPUS (256u << 20) /* bytes of corpus text read at most */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void distill_opts_default(distill_opts_t *o)
{
    *o = (distill_opts_t){.steps = 1500,
                          .batch = 8,
                          .seq_len = 128,
                          .top_k = 20,
                          .lr = 3e-3f,
                          .lr_min = 3e-4f,
                          .warmup = 50,
                          .weight_decay = 0.01f,
                          .clip = 1.0f,
                          .gen_frac = 0.5f,
                          .temperature = 1.0f,
                          .seed = 1};
}

int distill_student_config(const model_config_t *t, const distill_opts_t *o, model_config_t *out,
                           char *err, size_t errlen)
{
    /* The context is what the student is trained on: RoPE positions it never saw
     * would give it no useful distribution. */
    model_config_t c = {.n_vocab = t->n_vocab,
                        .n_ctx = o->seq_len > 0 && o->seq_len < t->n_ctx ? o->seq_len : t->n_ctx,
                        .rope_base = t->rope_base,
                        .norm_eps = t->norm_eps};
    c.dim = o->dim > 0 ? o->dim : (t->dim / 2 + 7) / 8 * 8;
    c.n_layers = o->n_layers > 0 ? o->n_layers : (t->n_layers * 4 + 4) / 5;
    c.n_heads = o->n_heads > 0 ? o->n_heads : c.dim / t->head_dim;
    if (c.n_heads < 1) c.n_heads = 1;
    c.n_kv_heads = o->n_kv_heads > 0 ? o->n_kv_heads : c.n_heads;
    c.hidden_dim = o->hidden_dim > 0 ? o->hidden_dim : (8 * c.dim / 3 + 31) / 32 * 32;
    if (c.dim < 2 || c.dim > 8192 || c.n_layers > 256 || c.hidden_dim > 65536 ||
        c.dim % c.n_heads || (c.dim / c.n_heads) % 2 || c.n_heads % c.n_kv_heads) {
        snprintf(err, errlen,
                 "student shape dim %d, heads %d, kv heads %d, layers %d, hidden %d does not "
                 "work: heads must divide dim into an even head width, kv heads divide heads",
                 c.dim, c.n_heads, c.n_kv_heads, c.n_layers, c.hidden_dim);
        return SY_EINVAL;
    }
    c.head_dim = c.dim / c.n_heads;
    c.rope_dim = c.head_dim;
    *out = c;
    return 0;
}

/* Reads and tokenizes the corpus (no BOS). Returns 0 with *ids owned, or an error. */
static int load_corpus(const engine_t *e, const char *path, int **ids, int *n, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = -errno;
        snprintf(err, errlen, "corpus %s: %s", path, strerror(errno));
        return rc;
    }
    char *text = mem_alloc(DISTILL_MAX_CORPUS);
    size_t len = fread(text, 1, DISTILL_MAX_CORPUS, f);
    fclose(f);
    int cap = (int)len + 16;
    *ids = mem_alloc((size_t)cap * sizeof **ids);
    *n = engine_tokenize(e, text, len, false, false, *ids, cap);
    mem_free(text);
    if (*n < 0 || *n > cap) {
        snprintf(err, errlen, "corpus %s: cannot be tokenized", path);
        mem_free(*ids);
        *ids = NULL;
        return SY_EINVAL;
    }
    return 0;
}

/* Collects generated ids. */
typedef struct gen_buf {
    int *ids;
    int n, cap;
} gen_buf_t;

static int on_gen(void *ud, const engine_token_t *t)
{
    gen_buf_t *g = ud;
    if (g->n < g->cap) g->ids[g->n++] = t->id;
    return 0;
}

/* The teacher's top-k at each of the first n - 1 positions of seq (row t predicts
 * seq[t + 1]): ids and renormalised probabilities, k per row. */
static int teacher_targets(engine_session_t *ts, const int *seq, int n, int k, int *tid, float *tp)
{
    int V = engine_session_engine(ts)->model->cfg.n_vocab, B = engine_session_max_batch(ts);
    engine_session_rewind(ts, 0);
    for (int done = 0; done < n - 1;) {
        int m = n - 1 - done < B ? n - 1 - done : B;
        const float *rows = engine_session_append(ts, seq + done, m, true);
        if (!rows) return SY_EINVAL;
        for (int j = 0; j < m; j++) {
            const float *lg = rows + (size_t)j * V;
            int *id = tid + (size_t)(done + j) * k;
            float *p = tp + (size_t)(done + j) * k;
            /* selection of the k largest logits, in order */
            int got = 0;
            for (int v = 0; v < V; v++) {
                if (got == k && lg[v] <= lg[id[k - 1]]) continue;
                int at = got < k ? got++ : k - 1;
                while (at > 0 && lg[id[at - 1]] < lg[v]) {
                    id[at] = id[at - 1];
                    at--;
                }
                id[at] = v;
            }
            double z = 0.0;
            float mx = lg[id[0]];
            for (int i = 0; i < k; i++)
                z += exp((double)(lg[id[i]] - mx));
            for (int i = 0; i < k; i++)
                p[i] = (float)(exp((double)(lg[id[i]] - mx)) / z);
        }
        done += m;
    }
    return 0;
}

/* One line of progress, rewritten in place. */
static void progress(int step, int steps, double kl, double tok_s, double eta)
{
    char bar[31];
    int fill = (int)(30.0 * step / steps);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\rdistill [%s] %d/%d  kl %.4f  %.0f tok/s  eta %.0fs   ", bar, step, steps, kl,
            tok_s, eta);
    if (step == steps) fputc('\n', stderr);
    fflush(stderr);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int distill_train(const engine_t *teacher, train_model_t *student, const distill_opts_t *o,
                  distill_report_t *rep, char *err, size_t errlen)
{
    const model_t *tm = teacher->model;
    if (student->cfg.n_vocab != tm->cfg.n_vocab) {
        snprintf(err, errlen, "student vocabulary %d differs from the teacher's %d",
                 student->cfg.n_vocab, tm->cfg.n_vocab);
        return SY_EINVAL;
    }
    if (o->steps < 1 || o->batch < 1 || o->seq_len < 2 || o->seq_len + 1 > tm->cfg.n_ctx ||
        o->top_k < 1 || o->top_k > DISTILL_MAX_TOPK || o->top_k > tm->cfg.n_vocab ||
        !(o->lr > 0.0f) || o->lr_min < 0.0f || o->warmup < 0 || o->gen_frac < 0.0f ||
        o->gen_frac > 1.0f || !(o->temperature > 0.0f) || o->clip < 0.0f) {
        snprintf(err, errlen,
                 "bad distillation options (steps, batch >= 1; seq_len 2..%d; top_k 1..%d; "
                 "lr > 0; gen_frac 0..1; temperature > 0)",
                 tm->cfg.n_ctx - 1, DISTILL_MAX_TOPK);
        return SY_EINVAL;
    }
    int bos = tokenizer_bos(tm->tok);
    if (bos < 0) {
        snprintf(err, errlen, "teacher has no BOS token to start sequences from");
        return SY_EINVAL;
    }
    int *corpus = NULL, n_corpus = 0;
    if (o->corpus) {
        int rc = load_corpus(teacher, o->corpus, &corpus, &n_corpus, err, errlen);
        if (rc) return rc;
        if (n_corpus < o->seq_len + 1) {
            snprintf(err, errlen, "corpus %s: %d tokens, fewer than one sequence of %d", o->corpus,
                     n_corpus, o->seq_len + 1);
            mem_free(corpus);
            return SY_EINVAL;
        }
    }
    float gen_frac = o->corpus ? o->gen_frac : 1.0f;
    const int S = o->seq_len, K = o->top_k;
    engine_session_t *ts = engine_session_new(
        teacher, &(engine_session_opts_t){.n_ctx = S + 2, .n_threads = 1, .max_batch = 64});
    train_ctx_t *ctx = train_ctx_new(student, S);
    train_adamw_t opt;
    train_adamw_init(&opt, student, o->weight_decay);
    float *grad = mem_alloc(student->n_params * sizeof(float));
    int *seq = mem_alloc((size_t)(S + 2) * sizeof *seq);
    int *tid = mem_alloc((size_t)S * K * sizeof *tid);
    float *tp = mem_alloc((size_t)S * K * sizeof *tp);
    gen_buf_t gb = {.ids = seq + 1, .cap = S};
    engine_gen_params_t gp = {.max_tokens = S};
    gp.sample =
        (sample_params_t){.temperature = o->temperature, .top_p = 1.0f, .repeat_penalty = 1.0f};
    distill_report_t r = {0};
    double t0 = now_s(), kl_win = 0.0;
    long tok_win = 0;
    int rc = 0;
    for (int step = 0; step < o->steps && !rc; step++) {
        memset(grad, 0, student->n_params * sizeof(float));
        double kl_step = 0.0;
        long tok_step = 0;
        /* Sequences first (their token counts set the loss scale), then the passes. */
        for (int b = 0; b < o->batch && !rc; b++) {
            uint64_t h =
                mix64(o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)step * 1315423911u + (uint64_t)b);
            double u = (double)(h >> 11) / 9007199254740992.0;
            int n;
            seq[0] = bos;
            if (u < gen_frac) {
                gb.n = 0;
                gp.sample.seed = mix64(h + 1);
                engine_gen_result_t gr;
                rc = engine_generate(ts, seq, 1, &gp, on_gen, &gb, &gr);
                n = 1 + gb.n;
            } else {
                size_t off = (size_t)(mix64(h + 2) % (uint64_t)(n_corpus - S + 1));
                memcpy(seq + 1, corpus + off, (size_t)S * sizeof *seq);
                n = S + 1;
            }
            if (rc || n < 2) continue;
            rc = teacher_targets(ts, seq, n, K, tid, tp);
            if (rc) break;
            double kl;
            /* the batch mean: every sequence's tokens weigh the same */
            float scale = 1.0f / (float)(o->batch * S);
            if (train_forward_backward(ctx, seq, n - 1, tid, tp, K, grad, scale, &kl) < 0) {
                rc = SY_EINVAL;
                break;
            }
            kl_step += kl;
            tok_step += n - 1;
        }
        if (rc) break;
        float lr = train_lr_cosine(step, o->steps, o->warmup, o->lr, o->lr_min);
        train_adamw_step(&opt, student->params, grad, lr, o->clip);
        double kl_tok = tok_step ? kl_step / tok_step : 0.0;
        r.tokens += tok_step;
        if (step < 10) r.kl_first += kl_tok / (o->steps < 10 ? o->steps : 10);
        if (step >= o->steps - 10) r.kl_last += kl_tok / (o->steps < 10 ? o->steps : 10);
        kl_win += kl_step, tok_win += tok_step;
        if (!o->quiet && (step % 5 == 4 || step + 1 == o->steps)) {
            double el = now_s() - t0;
            progress(step + 1, o->steps, tok_win ? kl_win / tok_win : 0.0, r.tokens / el,
                     el / (step + 1) * (o->steps - step - 1));
            kl_win = 0.0, tok_win = 0;
        }
    }
    if (rc) snprintf(err, errlen, "distillation failed: %s", sy_strerror(rc));
    r.seconds = now_s() - t0;
    if (rep) *rep = r;
    mem_free(tp);
    mem_free(tid);
    mem_free(seq);
    mem_free(grad);
    train_adamw_deinit(&opt);
    train_ctx_free(ctx);
    engine_session_free(ts);
    mem_free(corpus);
    return rc;
}

int distill_run(const engine_t *teacher, const distill_opts_t *o, const char *path,
                distill_report_t *rep, char *err, size_t errlen)
{
    model_config_t c;
    int rc = distill_student_config(&teacher->model->cfg, o, &c, err, errlen);
    if (rc) return rc;
    train_model_t *st = train_model_new(&c, true, o->seed);
    rc = distill_train(teacher, st, o, rep, err, errlen);
    if (!rc) {
        char name[128];
        snprintf(name, sizeof name, "%.100s-distilled", teacher->model->name);
        rc = train_model_save(st, teacher->model, name, path);
        if (rc) snprintf(err, errlen, "%s: cannot write: %s", path, sy_strerror(rc));
    }
    train_model_free(st);
    return rc;
}
