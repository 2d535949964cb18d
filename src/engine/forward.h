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

typedef struct forward_state forward_state_t;

/* One row of a batched pass: a token of some sequence at a position. */
typedef struct forward_row {
    forward_state_t *seq; /* whose KV cache (and RoPE tables) the row uses */
    int token, pos;
    bool logits; /* wants its logits */
} forward_row_t;

struct forward_state {
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
    float *key_cache;    /* (n_layers, n_ctx, kv_dim) */
    float *value_cache;  /* (n_layers, n_ctx, kv_dim) */
    forward_row_t *rows; /* (max_batch) forward_run's rows */
};

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

/* Continuous batching: n rows (n <= ws->max_batch) of any sequences through ws's
 * activations and pool in one pass, so every weight matrix is read once for all of
 * them. Each row's key and value go into its sequence's cache at its position and its
 * attention reads that cache up to there, so a sequence's rows must come in increasing
 * positions with the earlier positions already cached (or earlier in the batch). A
 * row's results are bit for bit those of the same token run alone through
 * forward_run (the kernels sum each token's outputs the same way whatever the batch).
 * The logits of the rows that want them go to ws->logits in row order. Returns 0, or
 * -1 (nothing run) for a bad token, position or sequence. */
int forward_batch(forward_state_t *ws, const forward_row_t *rows, int n);

#endif
