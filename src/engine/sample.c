/* sample.c — samplers, per-token logprobs and confidence summaries. See sample.h. */
#include "engine/sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* A candidate token and its transformed logit. */
typedef struct cand {
    float v;
    int id;
} cand_t;

struct sampler {
    int n_vocab;
    sample_params_t p;
    uint64_t rng;
    float *work;  /* (n_vocab) transformed logits */
    cand_t *cand; /* (n_vocab) candidates */
    float *prob;  /* (n_vocab) candidate probabilities */
};

void sample_params_default(sample_params_t *p)
{
    *p = (sample_params_t){.temperature = 0.8f,
                           .top_k = 40,
                           .top_p = 0.95f,
                           .min_p = 0.05f,
                           .repeat_penalty = 1.0f,
                           .repeat_last_n = 64,
                           .seed = 0};
}

sampler_t *sample_new(int n_vocab, const sample_params_t *p)
{
    sampler_t *s = mem_calloc(1, sizeof *s);
    s->n_vocab = n_vocab;
    s->work = mem_alloc((size_t)n_vocab * sizeof *s->work);
    s->cand = mem_alloc((size_t)n_vocab * sizeof *s->cand);
    s->prob = mem_alloc((size_t)n_vocab * sizeof *s->prob);
    sample_reset(s, p);
    return s;
}

void sample_free(sampler_t *s)
{
    if (!s) return;
    mem_free(s->work);
    mem_free(s->cand);
    mem_free(s->prob);
    mem_free(s);
}

void sample_reset(sampler_t *s, const sample_params_t *p)
{
    s->p = *p;
    s->rng = p->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
}

/* splitmix64: a uniform double in [0, 1). */
static double rng_next(sampler_t *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* The largest of x[0..n), in 8 independent lanes (the same value as a serial scan:
 * a maximum does not depend on the order). */
static float max_of(const float *x, int n)
{
    float m[8];
    for (int k = 0; k < 8; k++)
        m[k] = x[0];
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    for (int k = 1; k < 8; k++)
        m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

float sample_logprob(const float *logits, int n, int id, float *ent)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(logits[i] - mx));
    double lse = (double)mx + log(sum);
    if (ent) {
        double h = 0.0;
        for (int i = 0; i < n; i++) {
            double lp = (double)logits[i] - lse;
            h -= exp(lp) * lp;
        }
        *ent = (float)h;
    }
    return (float)((double)logits[id] - lse);
}

/* Fills info's alternatives: the n most likely ids by raw logit, with logprobs. */
static void top_alts(const float *logits, int nv, int n, float lse, sample_info_t *info)
{
    if (n > SAMPLE_MAX_ALTS) n = SAMPLE_MAX_ALTS;
    if (n > nv) n = nv;
    int k = 0;
    for (int i = 0; i < nv && n > 0; i++) {
        if (k == n && logits[i] <= info->alts[k - 1].logprob) continue;
        int j = k < n ? k++ : k - 1;
        while (j > 0 && info->alts[j - 1].logprob < logits[i]) {
            info->alts[j] = info->alts[j - 1];
            j--;
        }
        info->alts[j] = (sample_alt_t){.id = i, .logprob = logits[i]};
    }
    for (int i = 0; i < k; i++)
        info->alts[i].logprob -= lse;
    info->n_alts = k;
}

/* Candidates by logit, descending. */
static int cmp_desc(const void *a, const void *b)
{
    float x = ((const cand_t *)a)->v, y = ((const cand_t *)b)->v;
    return (x < y) - (x > y);
}

/* Moves the k largest of c[0..n) to the front, in order (k small: selection). */
static void partial_sort(cand_t *c, int n, int k)
{
    for (int i = 0; i < k && i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (c[j].v > c[best].v) best = j;
        cand_t t = c[i];
        c[i] = c[best];
        c[best] = t;
    }
}

/* The sampling transforms (penalty, temperature, top-k, top-p, min-p) of logits:
 * leaves the surviving candidates in s->cand[0..n), most likely first, with
 * unnormalised probabilities in s->prob[0..n), and returns n; greedy (temperature 0)
 * returns 0 with the argmax of the penalised logits in *chosen. */
static int candidates(sampler_t *s, const float *logits, const int *recent, int n_recent,
                      int *chosen)
{
    int nv = s->n_vocab;
    const sample_params_t *p = &s->p;
    const float *w = logits; /* copied only when the penalty changes it */
    if (p->repeat_penalty != 1.0f && recent) {
        float *pw = s->work;
        memcpy(pw, logits, (size_t)nv * sizeof *pw);
        w = pw;
        int from = n_recent > p->repeat_last_n ? n_recent - p->repeat_last_n : 0;
        for (int i = from; i < n_recent; i++) {
            int id = recent[i];
            if (id < 0 || id >= nv) continue;
            /* a token repeated in the window is penalised once */
            bool seen = false;
            for (int j = from; j < i && !seen; j++)
                seen = recent[j] == id;
            if (seen) continue;
            pw[id] = pw[id] > 0 ? pw[id] / p->repeat_penalty : pw[id] * p->repeat_penalty;
        }
    }
    if (p->temperature <= 0.0f) {
        int best = 0;
        float bv = w[0]; /* in a register: no load in the loop's dependency chain */
        for (int i = 1; i < nv; i++)
            if (w[i] > bv) bv = w[i], best = i;
        *chosen = best;
        return 0;
    }
    float wmx = max_of(w, nv);
    /* Candidates: tokens within a factor e^-40 of the best after temperature carry no
     * measurable mass; dropping them keeps sorting cheap on large vocabularies. */
    int n = 0;
    float cut = wmx - 40.0f * p->temperature;
    for (int i = 0; i < nv; i++)
        if (w[i] >= cut) s->cand[n++] = (cand_t){.v = w[i] / p->temperature, .id = i};
    if (p->top_k > 0 && p->top_k < n) {
        partial_sort(s->cand, n, p->top_k);
        n = p->top_k;
    } else {
        qsort(s->cand, (size_t)n, sizeof *s->cand, cmp_desc);
    }
    float top = s->cand[0].v;
    double z = 0.0;
    for (int i = 0; i < n; i++)
        z += (s->prob[i] = expf(s->cand[i].v - top));
    /* top-p: the smallest prefix whose mass reaches p */
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        double c = 0.0;
        for (int i = 0; i < n; i++) {
            c += s->prob[i] / z;
            if (c >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    /* min-p: drop tokens less likely than min_p times the best */
    if (p->min_p > 0.0f) {
        int k = 1;
        while (k < n && s->prob[k] >= p->min_p * s->prob[0])
            k++;
        n = k;
    }
    return n;
}

int sample_token(sampler_t *s, const float *logits, const int *recent, int n_recent, int n_alts,
                 sample_info_t *info)
{
    int nv = s->n_vocab;

    /* What the model itself says: logprob base and entropy from the raw logits, with
     * one exp per token: H = log Z - sum q (l - max), q = exp(l - max) / Z. */
    float mx = max_of(logits, nv);
    double sum = 0.0, wsum = 0.0;
    for (int i = 0; i < nv; i++) {
        float d = logits[i] - mx;
        float e = expf(d);
        sum += e;
        wsum += (double)e * d;
    }
    float lse = (float)((double)mx + log(sum));
    double h = log(sum) - wsum / sum;

    int chosen = 0;
    int n = candidates(s, logits, recent, n_recent, &chosen);
    if (n > 0) {
        double z = 0.0;
        for (int i = 0; i < n; i++)
            z += s->prob[i];
        double r = rng_next(s) * z;
        chosen = s->cand[n - 1].id;
        for (int i = 0; i < n; i++) {
            r -= s->prob[i];
            if (r < 0) {
                chosen = s->cand[i].id;
                break;
            }
        }
    }
    info->id = chosen;
    info->logprob = logits[chosen] - lse;
    info->entropy = (float)h;
    top_alts(logits, nv, n_alts, lse, info);
    return chosen;
}

void sample_dist(sampler_t *s, const float *logits, const int *recent, int n_recent, float *probs)
{
    int chosen = 0;
    int n = candidates(s, logits, recent, n_recent, &chosen);
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    if (n == 0) {
        probs[chosen] = 1.0f;
        return;
    }
    double z = 0.0;
    for (int i = 0; i < n; i++)
        z += s->prob[i];
    for (int i = 0; i < n; i++)
        probs[s->cand[i].id] = (float)(s->prob[i] / z);
}

double sample_uniform(sampler_t *s)
{
    return rng_next(s);
}

void sample_conf_init(sample_conf_t *c)
{
    *c = (sample_conf_t){0};
}

void sample_conf_add(sample_conf_t *c, const sample_info_t *info)
{
    if (c->n == 0 || info->logprob < c->min_logprob) c->min_logprob = info->logprob;
    c->n++;
    c->sum_logprob += info->logprob;
    c->sum_entropy += info->entropy;
}
