/* model.h — a Llama-family model in memory: configuration, weights and tokenizer.
 *
 * Two sources go through the same struct:
 *   - GGUF: llama.cpp's tensor names, token_embd.weight,
 *     blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_down,
 *     ffn_up}.weight, output_norm.weight, output.weight (absent: tied to the
 *     embedding); weights F32, F16, Q8_0 or Q4_0. Architectures (general.architecture)
 *     are the llama graph with the differences set as flags in model_config_t:
 *       llama   optional rope_freqs (Llama 3.x), optional sliding window (Mistral)
 *       qwen2   q/k/v biases, half-split RoPE
 *       qwen3   per-head RMSNorm of q and k (attn_q_norm, attn_k_norm), half-split RoPE
 *       gemma2  embedding times sqrt(dim), GeGLU, post_attention_norm / post_ffw_norm,
 *               attention and final logit soft-capping, every other layer windowed
 *       gemma3  as gemma2 with q/k norms instead of attention soft-capping, five
 *               windowed layers to one global, windowed layers with their own RoPE base
 *       phi3    fused attn_qkv and gate|up in ffn_up, LongRoPE factors
 *     Norm weights are used as stored: llama.cpp's converter already wrote Gemma's
 *     (1 + w).
 *   - llama2.c checkpoints (a header of seven int32, then fp32 weights; a negative
 *     vocab_size means a separate classifier) with their tokenizer.bin.
 * Weights are pointed into the read-only mapping, never copied, so one loaded model is
 * shared by any number of threads; everything mutable lives in forward_state_t.
 * Matrices are row-major (rows = outputs, cols = inputs), which is GGUF's ne[1] x ne[0].
 */
#ifndef SY_ENGINE_MODEL_H
#define SY_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/tokenizer.h"

/* A weight matrix in the mapped file. */
typedef struct model_tensor {
    kern_type_t type;
    const void *data; /* (rows, cols) in type's row layout */
    int rows;         /* outputs */
    int cols;         /* inputs, elements per row */
} model_tensor_t;

typedef struct model_config {
    int dim;        /* embedding width */
    int hidden_dim; /* feed-forward width */
    int n_layers;
    int n_heads;    /* query heads */
    int n_kv_heads; /* key/value heads (grouped-query attention) */
    int head_dim;   /* attention.key_length, else dim / n_heads */
    int n_vocab;
    int n_ctx;            /* trained context length, tokens */
    int rope_dim;         /* dimensions rotated per head (head_dim unless the file says) */
    float rope_base;      /* RoPE theta */
    float norm_eps;       /* RMSNorm epsilon */
    bool rope_neox;       /* rotate (i, i + rope_dim/2) pairs (qwen2), not adjacent ones */
    float rope_scale;     /* linear scaling: angles times 1 / rope.scaling.factor; else 1 */
    float rope_mscale;    /* cos and sin times this (rope.scaling.attn_factor; YaRN's too) */
    bool rope_yarn;       /* YaRN: the scale ramps off for high-frequency pairs */
    int rope_orig_ctx;    /* rope.scaling.original_context_length: LongRoPE uses the long
                             factors for sessions longer than this; YaRN's ramp */
    int n_swa;            /* sliding window: positions a windowed layer sees (0: none) */
    int swa_period;       /* layer l windowed when l % period < period - 1; 0: every layer */
    float rope_base_swa;  /* RoPE theta of windowed layers */
    float rope_scale_swa; /* linear scaling of windowed layers */
    float attn_scale;     /* query scale, 1/sqrt(head_dim) (Gemma 27B shapes: 1/sqrt(dim/heads)) */
    float attn_softcap;   /* attention scores s -> c tanh(s / c) before softmax; 0: none */
    float final_softcap;  /* logits likewise; 0: none */
    bool embd_scale;      /* embeddings times sqrt(dim) (gemma) */
    bool ffn_gelu;        /* GeGLU, gelu (tanh form) of the gate, instead of SwiGLU */
} model_config_t;

typedef struct model_layer {
    const float *attn_norm; /* (dim) */
    model_tensor_t wq;      /* (n_heads * head_dim, dim) */
    model_tensor_t wk;      /* (n_kv_heads * head_dim, dim) */
    model_tensor_t wv;      /* (n_kv_heads * head_dim, dim) */
    model_tensor_t wo;      /* (dim, n_heads * head_dim) */
    const float *bq;        /* (n_heads * head_dim) or NULL: qwen2's projection biases */
    const float *bk;        /* (n_kv_heads * head_dim) or NULL */
    const float *bv;        /* (n_kv_heads * head_dim) or NULL */
    const float *ffn_norm;  /* (dim) */
    model_tensor_t w_gate;  /* (hidden_dim, dim) */
    model_tensor_t w_down;  /* (dim, hidden_dim) */
    model_tensor_t w_up;    /* (hidden_dim, dim) */
    /* NULL unless the architecture has them */
    const float *q_norm;         /* (head_dim) RMSNorm of each query head (qwen3, gemma3) */
    const float *k_norm;         /* (head_dim) RMSNorm of each key head */
    const float *post_attn_norm; /* (dim) RMSNorm of the attention output (gemma) */
    const float *post_ffn_norm;  /* (dim) RMSNorm of the feed-forward output (gemma) */
    bool swa;                    /* attends to the last cfg.n_swa positions only */
} model_layer_t;

typedef struct model {
    model_config_t cfg;
    model_tensor_t tok_embd; /* (n_vocab, dim) */
    model_layer_t *layers;   /* (n_layers), owned */
    const float *out_norm;   /* (dim) */
    model_tensor_t output;   /* (n_vocab, dim); the embedding when tied */
    const float *rope_freqs; /* (rope_dim / 2) frequency divisors (Llama-3.1+), or NULL */
    const float *rope_long;  /* (rope_dim / 2) LongRoPE divisors past rope_orig_ctx, or NULL */
    const float *rope_short; /* (rope_dim / 2) LongRoPE divisors within it, or NULL */
    bool tied_output;
    tokenizer_t *tok;        /* owned */
    char *chat_template;     /* owned copy of tokenizer.chat_template, or NULL */
    char name[128];          /* general.name or the file's base name */
    const char *format;      /* "gguf" or "llama2c" */
    char arch[16];           /* general.architecture ("llama" for llama2.c) */
    kern_type_t weight_type; /* type of most matrices (for display) */
    /* storage */
    gguf_t *gguf; /* owned, GGUF models */
    void *map;    /* llama2.c: the mmapped checkpoint */
    size_t map_size;
    float *owned; /* norm vectors converted to f32 when stored otherwise */
} model_t;

/* Loads a model: a GGUF file (detected by its magic), else a llama2.c checkpoint
 * whose tokenizer is tokenizer_path (required then; ignored for GGUF). *out is owned
 * (model_free). Returns 0, -errno, SY_ECORRUPT, SY_EUNSUPPORTED or SY_ENOTFOUND with
 * a message in err naming the file and what is wrong. */
int model_load(const char *path, const char *tokenizer_path, model_t **out, char *err,
               size_t errlen);
int model_load_gguf(const char *path, model_t **out, char *err, size_t errlen);
int model_load_llama2c(const char *path, const char *tokenizer_path, model_t **out, char *err,
                       size_t errlen);
void model_free(model_t *m);

/* Bytes of all weights (for reports). */
size_t model_weight_bytes(const model_t *m);

#endif
