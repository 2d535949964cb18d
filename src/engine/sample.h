/* sample.h — choosing the next token from logits, and what the router learns from it.
 *
 * Sampling transforms, in llama.cpp's order: repetition penalty over the recent tokens
 * (positive logits divided, negative multiplied), temperature, top-k, top-p (nucleus),
 * min-p (relative to the most likely token), then a seeded draw. Temperature 0 is
 * greedy (argmax after the penalty).
 *
 * Reported per token, under the model's own distribution (softmax of the raw logits,
 * before any transform, as OpenAI's logprobs are): the chosen token's log probability,
 * the distribution's entropy, and the top alternatives. sample_conf_t folds those into
 * the confidence summary a cascade uses to decide on escalation.
 */
#ifndef SY_ENGINE_SAMPLE_H
#define SY_ENGINE_SAMPLE_H

#include <stdint.h>

#define SAMPLE_MAX_ALTS 20 /* top alternatives reported per token */

typedef struct sample_params {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* recent tokens the penalty looks at */
    uint64_t seed;
} sample_params_t;

typedef struct sample_alt {
    int id;
    float logprob;
} sample_alt_t;

typedef struct sample_info {
    int id;        /* chosen token */
    float logprob; /* log p(id), nats */
    float entropy; /* of the model's distribution, nats */
    int n_alts;
    sample_alt_t alts[SAMPLE_MAX_ALTS]; /* most likely first */
} sample_info_t;

/* Confidence summary over generated tokens. */
typedef struct sample_conf {
    int n;
    double sum_logprob;
    float min_logprob; /* 0 when n == 0 */
    double sum_entropy;
} sample_conf_t;

typedef struct sampler sampler_t;

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty, seed 0. */
void sample_params_default(sample_params_t *p);

/* A sampler for n_vocab logits; scratch is allocated here once. Owned (sample_free). */
sampler_t *sample_new(int n_vocab, const sample_params_t *p);
void sample_free(sampler_t *s);
/* Reseeds and replaces the parameters (a new request on a reused sampler). */
void sample_reset(sampler_t *s, const sample_params_t *p);

/* Picks the next token from logits (n_vocab, not modified). recent holds the last
 * n_recent tokens (for the penalty; may be NULL). Fills info with n_alts <=
 * SAMPLE_MAX_ALTS alternatives. Returns the chosen id. */
int sample_token(sampler_t *s, const float *logits, const int *recent, int n_recent, int n_alts,
                 sample_info_t *info);

/* The distribution sample_token draws from, over all n_vocab ids (zeros outside the
 * candidates; one-hot at the choice when greedy), written to probs (n_vocab). The
 * exact form speculative sampling needs to keep a target model's distribution. */
void sample_dist(sampler_t *s, const float *logits, const int *recent, int n_recent, float *probs);
/* The next uniform number in [0, 1) of the sampler's seeded stream. */
double sample_uniform(sampler_t *s);

/* log softmax(logits)[id] over n logits; also the entropy when ent is non-NULL. */
float sample_logprob(const float *logits, int n, int id, float *ent);

void sample_conf_init(sample_conf_t *c);
void sample_conf_add(sample_conf_t *c, const sample_info_t *info);
static inline double sample_conf_mean_logprob(const sample_conf_t *c)
{
    return c->n ? c->sum_logprob / c->n : 0.0;
}
static inline double sample_conf_mean_entropy(const sample_conf_t *c)
{
    return c->n ? c->sum_entropy / c->n : 0.0;
}

#endif
