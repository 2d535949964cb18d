/* forward.h — the Llama forward pass and its run state (activations and KV cache).
 *
 * A forward_state_t belongs to one sequence (one request): it is allocated once, sized
 * for n_ctx positions and batches of up to max_batch tokens, and reused for every
 * token. The model it reads is shared and never written.
 */
#ifndef SY_ENGINE_FORWARD_H
#define SY_ENGINE_FORWARD_H

#include <stdbool.h>

#include "engine/kernels.h"
#include "engine/model.h"

typedef struct forward_state {
    const model_t *m;  /* borrowed */
    kern_pool_t *pool; /* borrowed, may be NULL */
    int n_ctx;         /* positions the KV cache holds */
    int max_batch;     /* tokens per forward_run call chunk */
    /* activations, one row per token of a batch */
    float *x;        /* (max_batch, dim) residual stream */
    float *xb;       /* (max_batch, max(dim, n_heads * head_dim)) normed input / attention out */
    float *xb2;      /* (max_batch, dim) projection output */
    float *q;        /* (max_batch, n_heads * head_dim) */
    float *k;        /* (max_batch, kv_dim) */
    float *v;        /* (max_batch, kv_dim) */
    float *hb;       /* (max_batch, hidden_dim) gate */
    float *hb2;      /* (max_batch, hidden_dim) up */
    float *logits;   /* (max_batch, n_vocab) */
    float *inv_freq; /* (rope_dim / 2) RoPE angle per position */
    float *inv_freq_swa; /* (rope_dim / 2) the same for windowed layers */
    /* KV cache */
    float *key_cache;   /* (n_layers, n_ctx, kv_dim) */
    float *value_cache; /* (n_layers, n_ctx, kv_dim) */
} forward_state_t;

/* Allocates the run state for m. n_ctx <= 0 means the model's trained context;
 * max_batch <= 0 means 64. pool is borrowed (NULL: one thread). Returns owned state
 * (forward_state_free). */
forward_state_t *forward_state_new(const model_t *m, int n_ctx, int max_batch, kern_pool_t *pool);
void forward_state_free(forward_state_t *s);

/* Runs n tokens at positions pos .. pos+n-1 (earlier positions must already be in the
 * cache), in chunks of max_batch. With all_logits, n must be <= max_batch and
 * s->logits holds (n, n_vocab); otherwise it holds the logits of the last token in its
 * first row. Returns a pointer to the last token's logits, or NULL when the positions
 * do not fit the context or a token id is out of range. */
const float *forward_run(forward_state_t *s, const int *tokens, int n, int pos, bool all_logits);

#endif
