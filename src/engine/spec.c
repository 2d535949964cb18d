/* spec.c — speculative decoding: draft, verify in one batched pass, keep the
 * agreeing prefix. See spec.h for the scheme and why it keeps the target's
 * distribution. */
#include "engine/spec.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/tokenizer.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int spec_check(const engine_t *target, const engine_t *draft, char *err, size_t errlen)
{
    const model_t *t = target->model, *d = draft->model;
    if (tokenizer_fingerprint(t->tok) != tokenizer_fingerprint(d->tok)) {
        snprintf(err, errlen,
                 "draft '%s' does not share the target's vocabulary (%d vs %d tokens; "
                 "tokens, scores, merges or special ids differ): its token ids would not mean "
                 "the same text",
                 d->name, tokenizer_n_vocab(d->tok), tokenizer_n_vocab(t->tok));
        return SY_EINVAL;
    }
    size_t tb = model_weight_bytes(t), db = model_weight_bytes(d);
    if (db > tb) {
        snprintf(err, errlen,
                 "draft '%s' is larger than the target '%s' (%zu vs %zu weight bytes): "
                 "drafting would cost more than decoding with the target alone",
                 d->name, t->name, db, tb);
        return SY_EINVAL;
    }
    return 0;
}

/* A draw from the distribution probs (n entries summing to about 1) with u in [0, 1):
 * the last id with mass when rounding leaves u past the end. */
static int draw(const float *probs, int n, double u)
{
    int last = 0;
    double r = u;
    for (int i = 0; i < n; i++) {
        if (probs[i] <= 0.0f) continue;
        last = i;
        r -= probs[i];
        if (r < 0) return i;
    }
    return last;
}

/* Per-call state: two samplers (separate seeded streams), the drafted distributions
 * and the token sequence. Allocated once per generation. */
typedef struct spec_run {
    const tokenizer_t *tok;
    int V;
    sampler_t *ts, *ds; /* target's and draft's samplers */
    float *q;           /* (SPEC_MAX_DRAFT, V) draft distributions */
    float *pd;          /* (V) target distribution */
    int *seq;           /* (t_ctx + SPEC_MAX_DRAFT + 2) prompt and generated tokens */
    int n;              /* tokens in seq */
    /* emission */
    const engine_gen_params_t *p;
    engine_token_cb cb;
    void *ud;
    engine_gen_result_t *res;
    bool done;
} spec_run_t;

/* Appends tok (drawn from the target's logits row) to the output: callback, counts,
 * finish reason. Sets r->done when generation ends here. */
static void emit(spec_run_t *r, int tok, const float *row)
{
    sample_info_t info = {.id = tok};
    info.logprob = sample_logprob(row, r->V, tok, &info.entropy);
    sample_conf_add(&r->res->conf, &info);
    r->res->n_generated++;
    char piece[TOKENIZER_MAX_PIECE + 4];
    bool eog = tokenizer_is_eog(r->tok, tok);
    int k = eog ? 0 : tokenizer_decode(r->tok, r->seq[r->n - 1], tok, piece, sizeof piece);
    if (k > (int)sizeof piece) k = sizeof piece;
    r->seq[r->n++] = tok;
    engine_token_t et = {.id = tok, .text = piece, .len = (size_t)k, .info = &info};
    int stop = r->cb ? r->cb(r->ud, &et) : 0;
    if (eog) {
        r->res->finish = ENGINE_FINISH_EOS;
        r->done = true;
    } else if (stop) {
        r->res->finish = ENGINE_FINISH_CALLBACK;
        r->done = true;
    } else if (r->res->n_generated >= r->p->max_tokens) {
        r->done = true;
    }
}

int spec_generate(engine_session_t *ts, engine_session_t *ds, const int *prompt, int n_prompt,
                  const engine_gen_params_t *p, int draft_max, engine_token_cb cb, void *ud,
                  engine_gen_result_t *res, spec_stats_t *st)
{
    const model_t *tm = engine_session_engine(ts)->model;
    const int V = tm->cfg.n_vocab;
    memset(res, 0, sizeof *res);
    memset(st, 0, sizeof *st);
    sample_conf_init(&res->conf);
    res->n_prompt = n_prompt;
    res->finish = ENGINE_FINISH_LENGTH;
    if (p->stop[0] || p->n_logprobs) return SY_EUNSUPPORTED;
    if (draft_max < 1 || draft_max > SPEC_MAX_DRAFT || draft_max >= engine_session_max_batch(ts) ||
        engine_session_engine(ds)->model->cfg.n_vocab != V || n_prompt <= 0)
        return SY_EINVAL;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return SY_EINVAL;
    const int t_ctx = engine_session_n_ctx(ts), d_ctx = engine_session_n_ctx(ds);
    if (n_prompt >= t_ctx) return SY_ECONTEXT;

    spec_run_t r = {.tok = tm->tok, .V = V, .p = p, .cb = cb, .ud = ud, .res = res};
    r.ts = sample_new(V, &p->sample);
    sample_params_t dp = p->sample;
    dp.seed = p->sample.seed ^ 0x5deece66dull; /* the draft's own stream */
    r.ds = sample_new(V, &dp);
    r.q = mem_alloc((size_t)SPEC_MAX_DRAFT * (size_t)V * sizeof *r.q);
    r.pd = mem_alloc((size_t)V * sizeof *r.pd);
    r.seq = mem_alloc((size_t)(t_ctx + SPEC_MAX_DRAFT + 2) * sizeof *r.seq);
    memcpy(r.seq, prompt, (size_t)n_prompt * sizeof *prompt);
    r.n = n_prompt;

    /* Both caches hold every token but the last, which each round feeds. */
    double t0 = now_ms();
    if (r.n > 1) {
        /* a draft whose context cannot hold the prompt drafts nothing (K = 0 below) */
        if (!engine_session_prefill(ts, r.seq, r.n - 1, &res->n_reused) ||
            (r.n < d_ctx && !engine_session_prefill(ds, r.seq, r.n - 1, NULL)))
            r.done = true;
    } else {
        engine_session_rewind(ts, 0);
        engine_session_rewind(ds, 0);
    }
    double t1 = now_ms();
    res->prefill_ms = t1 - t0;
    if (p->max_tokens <= 0) r.done = true;

    while (!r.done && r.n - 1 < t_ctx) {
        int n0 = r.n;
        /* Round size: the target feeds last + K tokens, the draft up to d_K-1; the
         * round emits K + 1 tokens at most. */
        int K = draft_max;
        if (K > t_ctx - n0) K = t_ctx - n0;
        if (K > d_ctx - n0 + 1) K = d_ctx - n0 + 1;
        if (n0 > d_ctx) K = 0; /* the draft never held this prompt */
        if (K > p->max_tokens - res->n_generated - 1) K = p->max_tokens - res->n_generated - 1;
        if (K < 0) K = 0;

        /* 1. Draft: catch up on the tokens it has not seen, then sample K. */
        double a = now_ms();
        if (K > 0) {
            int dn = engine_session_n_cached(ds);
            const float *lg = engine_session_append(ds, r.seq + dn, n0 - dn, false);
            for (int i = 0; i < K && lg; i++) {
                float *q = r.q + (size_t)i * V;
                sample_dist(r.ds, lg, r.seq, n0 + i, q);
                int d = draw(q, V, sample_uniform(r.ds));
                r.seq[n0 + i] = d;
                if (tokenizer_is_eog(r.tok, d)) K = i + 1;
                if (i + 1 < K) lg = engine_session_append(ds, &d, 1, false);
            }
            if (!lg) K = 0; /* cannot happen within the limits above; decode plainly */
            st->drafted += K;
        }
        double b = now_ms();
        st->draft_ms += b - a;

        /* 2. Verify: last + drafts in one pass, a row of logits per position. */
        const float *rows = engine_session_append(ts, r.seq + n0 - 1, K + 1, true);
        if (!rows) break;
        st->rounds++;

        /* 3. Accept in order; the first rejection is replaced, a full pass earns a
         *    bonus token. */
        int i = 0;
        for (; i < K && !r.done; i++) {
            const float *row = rows + (size_t)i * V;
            sample_dist(r.ts, row, r.seq, n0 + i, r.pd);
            const float *q = r.q + (size_t)i * V;
            int x = r.seq[n0 + i];
            double u = sample_uniform(r.ts);
            if ((double)r.pd[x] >= (double)q[x] || u * q[x] < r.pd[x]) {
                st->accepted++;
                r.n = n0 + i; /* emit() appends seq[n] = x again */
                emit(&r, x, row);
                continue;
            }
            double z = 0.0;
            for (int v = 0; v < V; v++) {
                float d = r.pd[v] - q[v];
                r.pd[v] = d > 0.0f ? d : 0.0f;
                z += r.pd[v];
            }
            if (z <= 0.0) /* p == q up to rounding: p itself */
                sample_dist(r.ts, row, r.seq, n0 + i, r.pd);
            else
                for (int v = 0; v < V; v++)
                    r.pd[v] = (float)(r.pd[v] / z);
            r.n = n0 + i;
            emit(&r, draw(r.pd, V, sample_uniform(r.ts)), row);
            break;
        }
        if (i == K && !r.done) {
            const float *row = rows + (size_t)K * V;
            sample_dist(r.ts, row, r.seq, n0 + K, r.pd);
            r.n = n0 + K;
            emit(&r, draw(r.pd, V, sample_uniform(r.ts)), row);
        }
        st->verify_ms += now_ms() - b;

        /* 4. Cut both caches back to the tokens kept (all but the last). */
        engine_session_rewind(ts, r.n - 1);
        int dn = engine_session_n_cached(ds);
        engine_session_rewind(ds, dn < r.n - 1 ? dn : r.n - 1);
    }
    res->decode_ms = now_ms() - t1;
    sample_free(r.ts);
    sample_free(r.ds);
    mem_free(r.q);
    mem_free(r.pd);
    mem_free(r.seq);
    return 0;
}
