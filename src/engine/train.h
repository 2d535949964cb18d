/* train.h — training the engine's llama architecture in f32: forward pass with saved
 * activations, backward pass, AdamW with gradient clipping and a cosine schedule.
 *
 * The model is the one forward.c runs (RMSNorm, RoPE on adjacent pairs, grouped-query
 * causal attention, SwiGLU, tied or separate classifier), held as one flat f32
 * parameter vector so that gradients and optimiser moments are vectors of the same
 * layout. A trained model is written as a GGUF file the engine loads.
 *
 * The loss at each position is the cross-entropy to a target distribution given as k
 * (id, probability) pairs summing to 1: the teacher's top-k for distillation (the
 * KL divergence up to the teacher's own entropy), or k = 1 for next-token training.
 * Its gradient with respect to the logits is softmax(logits) - target.
 *
 * Matrix products go through kern_matmul (F32), so they use the SIMD kernels; the
 * result does not depend on the thread count.
 */
#ifndef SY_ENGINE_TRAIN_H
#define SY_ENGINE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* Views of one layer's parameters (or gradients) in the flat vector. */
typedef struct train_layer {
    float *attn_norm; /* (dim) */
    float *wq;        /* (n_heads * head_dim, dim) */
    float *wk;        /* (kv_dim, dim) */
    float *wv;        /* (kv_dim, dim) */
    float *wo;        /* (dim, n_heads * head_dim) */
    float *ffn_norm;  /* (dim) */
    float *w_gate;    /* (hidden_dim, dim) */
    float *w_down;    /* (dim, hidden_dim) */
    float *w_up;      /* (hidden_dim, dim) */
} train_layer_t;

typedef struct train_weights {
    float *tok_embd;       /* (n_vocab, dim) */
    train_layer_t *layers; /* (n_layers), owned */
    float *out_norm;       /* (dim) */
    float *output;         /* (n_vocab, dim); tok_embd when tied */
} train_weights_t;

typedef struct train_model {
    model_config_t cfg; /* rope_neox false, no biases: the llama architecture */
    bool tied;          /* classifier shares the embedding */
    size_t n_params;
    float *params;     /* (n_params), owned */
    train_weights_t w; /* views into params */
} train_model_t;

/* Parameters of a model of shape c. */
size_t train_n_params(const model_config_t *c, bool tied);
/* Points w's views into base (train_n_params floats); w->layers is allocated
 * (train_weights_unmap frees it). */
void train_weights_map(const model_config_t *c, bool tied, float *base, train_weights_t *w);
void train_weights_unmap(train_weights_t *w);

/* A fresh model of shape c: matrices N(0, 0.02) (output projections scaled by
 * 1/sqrt(2 n_layers)), norms 1, from seed. Owned (train_model_free). */
train_model_t *train_model_new(const model_config_t *c, bool tied, uint64_t seed);
/* An f32 copy of a loaded model (any stored type). Returns 0, or SY_EUNSUPPORTED
 * (qwen2 biases, or weights kept in a repacked layout) with *out NULL. */
int train_model_from(const model_t *m, train_model_t **out);
void train_model_free(train_model_t *tm);
/* Writes tm as an F32 GGUF file with like's tokenizer and chat template (borrowed),
 * named name. Returns 0, -errno or SY_EINVAL. */
int train_model_save(const train_model_t *tm, const model_t *like, const char *name,
                     const char *path);

/* ------------------------------------------------------ forward/backward ---- */

typedef struct train_ctx train_ctx_t;

/* Activations for sequences of up to max_T tokens. Owned (train_ctx_free). */
train_ctx_t *train_ctx_new(const train_model_t *tm, int max_T);
void train_ctx_free(train_ctx_t *c);

/* The summed loss over T positions of tokens (T <= max_T): at position t the target
 * is k pairs (tgt_id[t*k + j], tgt_p[t*k + j]); pairs with probability 0 are ignored.
 * When grad (n_params floats, layout of tm->params) is non-NULL, adds scale times the
 * loss's gradient into it. *kl (may be NULL) gets the summed KL divergence (the loss
 * less the targets' entropy). Returns the loss, or a negative value for bad input. */
double train_forward_backward(train_ctx_t *c, const int *tokens, int T, const int *tgt_id,
                              const float *tgt_p, int k, float *grad, float scale, double *kl);
/* Activations of the last forward pass, for importance measures (pruning): layer l's
 * attention output before the output projection (T, n_heads * head_dim) and its FFN
 * activation silu(gate) * up (T, hidden_dim). */
const float *train_ctx_attn_out(const train_ctx_t *c, int l);
/* (T, n_vocab) logits of the last pass run without a gradient. */
const float *train_ctx_logits(const train_ctx_t *c);
const float *train_ctx_ffn_act(const train_ctx_t *c, int l);

/* ------------------------------------------------------------ optimiser ---- */

typedef struct train_adamw {
    float beta1, beta2, eps, weight_decay;
    float *m, *v;   /* (n) moments, owned */
    uint8_t *decay; /* (n) 1 where weight decay applies (matrices, not norms) */
    size_t n;
    long t; /* steps taken */
} train_adamw_t;

/* AdamW state for tm (betas 0.9 / 0.95, eps 1e-8). */
void train_adamw_init(train_adamw_t *o, const train_model_t *tm, float weight_decay);
void train_adamw_deinit(train_adamw_t *o);
/* Clips grad to global norm clip (clip <= 0: no clipping), then one AdamW step at
 * learning rate lr. Returns the norm before clipping. */
double train_adamw_step(train_adamw_t *o, float *params, float *grad, float lr, float clip);
/* Linear warmup over warmup steps to lr_max, then cosine decay to lr_min at total. */
float train_lr_cosine(long step, long total, long warmup, float lr_max, float lr_min);

#endif
