/* engine.h — the public face of the inference engine, for the gateway's local tier
 * and the command line.
 *
 * Lifetimes:
 *   engine_t          one loaded model (weights mmapped, read-only). Load once, share
 *                     by every thread; free after the last session is gone.
 *   engine_session_t  one request slot: KV cache, activations, sampler and an optional
 *                     thread pool, all allocated at creation. One thread at a time.
 *
 * A session remembers the tokens in its cache; a new prompt that extends them (the
 * next turn of a conversation) reuses the shared prefix instead of recomputing it.
 *
 * Callback contract (libuv's): if engine_generate returns an error before generating,
 * the callback was never called.
 */
#ifndef SY_ENGINE_ENGINE_H
#define SY_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "engine/model.h"
#include "engine/sample.h"

typedef struct engine {
    model_t *model; /* owned */
} engine_t;

typedef struct engine_session engine_session_t;

#define ENGINE_DEFAULT_CTX 4096 /* session context when none is asked for, tokens */

/* Chat template families recognised in tokenizer.chat_template. */
typedef enum {
    ENGINE_CHAT_PLAIN,  /* no template: contents joined by newlines (base models) */
    ENGINE_CHAT_LLAMA2, /* [INST] ... [/INST] with <<SYS>> */
    ENGINE_CHAT_LLAMA3, /* <|start_header_id|>role<|end_header_id|> ... <|eot_id|> */
    ENGINE_CHAT_CHATML, /* <|im_start|>role ... <|im_end|> */
} engine_chat_t;

typedef struct engine_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} engine_msg_t;

typedef struct engine_session_opts {
    int n_ctx;     /* KV cache positions; 0: ENGINE_DEFAULT_CTX (at most the model's) */
    int n_threads; /* 1: the calling thread only */
    int max_batch; /* prefill batch; 0: 64 */
} engine_session_opts_t;

typedef enum {
    ENGINE_FINISH_LENGTH,   /* max_tokens reached or context full */
    ENGINE_FINISH_EOS,      /* end-of-generation token */
    ENGINE_FINISH_STOP,     /* a stop string matched */
    ENGINE_FINISH_CALLBACK, /* the callback asked to stop */
} engine_finish_t;

#define ENGINE_MAX_STOPS 8

typedef struct engine_gen_params {
    sample_params_t sample;
    int max_tokens;                     /* tokens to generate at most */
    int n_logprobs;                     /* alternatives per token, 0..SAMPLE_MAX_ALTS */
    const char *stop[ENGINE_MAX_STOPS]; /* stop strings (NULL-terminated list) */
    /* Constrained decoding (grammar.h; borrowed, NULL: free text): only tokens that
     * continue a valid value are sampled, end-of-generation only once it is complete,
     * and the value is closed within max_tokens. Logprobs are then those of the masked
     * distribution that was sampled. */
    const struct grammar *grammar;
} engine_gen_params_t;

/* What the per-token callback sees. text is the output released by this token: it
 * can be empty while a possible stop string is held back, and it never includes a
 * matched stop string. Pointers are valid during the call only. */
typedef struct engine_token {
    int id;
    const char *text;
    size_t len;
    const sample_info_t *info; /* logprob, entropy, alternatives */
} engine_token_t;

/* Return nonzero to stop generating. */
typedef int (*engine_token_cb)(void *ud, const engine_token_t *tok);

typedef struct engine_gen_result {
    int n_prompt; /* prompt tokens */
    int n_reused; /* of which found in the cache */
    int n_generated;
    engine_finish_t finish;
    sample_conf_t conf; /* confidence summary of the generated tokens */
    bool complete;      /* with a grammar: the output is a complete value */
    double prefill_ms, decode_ms;
} engine_gen_result_t;

/* ------------------------------------------------------------------ model ---- */

/* Loads a GGUF model or a llama2.c checkpoint (then tokenizer_path is its
 * tokenizer.bin). Returns 0 with *out owned (engine_free), or an error with a message
 * in err. */
int engine_load(const char *path, const char *tokenizer_path, engine_t **out, char *err,
                size_t errlen);
void engine_free(engine_t *e);

/* Which chat form the model's template is, PLAIN when it has none we recognise. */
engine_chat_t engine_chat_kind(const engine_t *e);
/* Renders messages into out (appended; capped by out's max) in the model's chat form,
 * ending with the assistant's header when add_assistant. The text contains special
 * pieces: tokenize it with parse_special. Returns 0 or SY_ETOOBIG / SY_EINVAL. */
int engine_chat_render(const engine_t *e, const engine_msg_t *msgs, size_t n, bool add_assistant,
                       buf_t *out);

/* Text to ids (see tokenizer_encode). */
int engine_tokenize(const engine_t *e, const char *text, size_t len, bool add_bos,
                    bool parse_special, int *ids, int max);
/* Bytes of token id after prev (see tokenizer_decode). */
int engine_token_text(const engine_t *e, int prev, int id, char *out, size_t cap);

/* ---------------------------------------------------------------- session ---- */

/* A session on e (borrowed; must outlive it). opts may be NULL. Owned result. */
engine_session_t *engine_session_new(const engine_t *e, const engine_session_opts_t *opts);
void engine_session_free(engine_session_t *s);
/* Forgets the cached tokens. */
void engine_session_reset(engine_session_t *s);
int engine_session_n_ctx(const engine_session_t *s);

/* Runs the prompt and samples up to p->max_tokens tokens, calling cb (may be NULL)
 * per token. Returns 0 (res filled), SY_ECONTEXT when the prompt does not fit the
 * context (cb never called), SY_EINVAL for an empty prompt or bad token ids. */
int engine_generate(engine_session_t *s, const int *prompt, int n_prompt,
                    const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                    engine_gen_result_t *res);

/* Teacher-forced scoring: the log probability of each continuation token cont[i]
 * given prompt and cont[0..i), written to logprobs[i]; argmax[i] (may be NULL) gets
 * the model's most likely token at that place, so a verifier can accept a draft up to
 * the first disagreement. Returns 0, SY_ECONTEXT or SY_EINVAL. */
int engine_score(engine_session_t *s, const int *prompt, int n_prompt, const int *cont, int n_cont,
                 float *logprobs, int *argmax);

/* ------------------------------------------------------------- perplexity ---- */

/* How a tokenized text (ids without BOS) is cut into chunks and scored.
 *   HALF  llama.cpp's llama-perplexity: the stream BOS + text cut into chunks of ctx
 *         tokens, each chunk's first token replaced by BOS (so one text token between
 *         chunks is never seen), and only chunk positions ctx/2 + 1 .. ctx - 1 scored:
 *         the first half is context. ctx - 1 - ctx/2 tokens per chunk.
 *   ALL   chunks of ctx - 1 text tokens after a BOS, every token scored. */
typedef enum { ENGINE_PPL_HALF, ENGINE_PPL_ALL } engine_ppl_mode_t;

/* Whole chunks of ctx tokens in n_tok text tokens under mode (0 when ctx < 2). */
int engine_ppl_n_chunks(int n_tok, int ctx, engine_ppl_mode_t mode);
/* Scores chunk number `chunk` of toks (n_tok text ids) on s (whose context must hold
 * ctx tokens): adds the negative log likelihood of its scored tokens to *nll and
 * their count to *n_scored. Returns 0, SY_EINVAL (bad chunk, no BOS, bad ids) or
 * SY_ECONTEXT. */
int engine_ppl_chunk(engine_session_t *s, const int *toks, int n_tok, int ctx, int chunk,
                     engine_ppl_mode_t mode, double *nll, long *n_scored);

#endif
