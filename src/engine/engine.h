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
#include "engine/jinja.h"
#include "engine/model.h"
#include "engine/sample.h"

typedef struct engine {
    model_t *model; /* owned */
} engine_t;

typedef struct engine_session engine_session_t;

#define ENGINE_DEFAULT_CTX 4096 /* session context when none is asked for, tokens */

/* How chat messages become a prompt. */
typedef enum {
    ENGINE_CHAT_PLAIN,    /* the model has no template: contents joined by newlines */
    ENGINE_CHAT_TEMPLATE, /* the model's own tokenizer.chat_template, executed */
} engine_chat_t;

/* A rendered prompt: the text, and the byte ranges of it that came from the request
 * (message contents, tool schemas). Special pieces are parsed only outside them. */
typedef jinja_out_t engine_prompt_t;

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
    /* With a grammar: the first token chooses. One whose first non-whitespace byte is
     * '{' must begin the grammar's value and the rest is constrained; any other first
     * token (end of generation included) makes the whole answer free text. What a
     * tool_choice "auto" decodes under (the grammar: a call). */
    bool grammar_optional;
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
    bool constrained;   /* the output was decoded under the grammar (grammar_optional: a
                           first token of '{') */
    double prefill_ms, decode_ms;
} engine_gen_result_t;

/* ------------------------------------------------------------------ model ---- */

/* Loads a GGUF model or a llama2.c checkpoint (then tokenizer_path is its
 * tokenizer.bin). Returns 0 with *out owned (engine_free), or an error with a message
 * in err. */
int engine_load(const char *path, const char *tokenizer_path, engine_t **out, char *err,
                size_t errlen);
void engine_free(engine_t *e);

/* Whether the model has a chat template (PLAIN: none, contents joined by newlines). */
engine_chat_t engine_chat_kind(const engine_t *e);

#define ENGINE_MAX_PROMPT_BYTES (4u << 20) /* a rendered prompt, bytes */

/* Prompt buffers: init with a cap on the text's bytes, deinit frees. */
void engine_prompt_init(engine_prompt_t *p, size_t max_bytes);
void engine_prompt_deinit(engine_prompt_t *p);
/* Appends text; from_request marks it as request text (never parsed for special
 * pieces). Returns 0 or SY_ETOOBIG. */
int engine_prompt_append(engine_prompt_t *p, const char *text, size_t len, bool from_request);

/* Renders messages (a cJSON array of {role, content, tool_calls, ...} objects, as the
 * OpenAI API carries them) and tools (a cJSON array or NULL) with the model's chat
 * template into out (appended), ending with the assistant's header when
 * add_assistant. bos_token and eos_token are the vocabulary's pieces. A model without
 * a template gets the contents joined by newlines. Returns 0; SY_EINVAL when the
 * template refuses the conversation (raise_exception) or fails at run time,
 * SY_EUNSUPPORTED when it uses Jinja beyond the supported subset (see jinja.h),
 * SY_ETOOBIG past a limit, each with a message in err. */
int engine_chat_render_json(const engine_t *e, const cJSON *messages, const cJSON *tools,
                            bool add_assistant, engine_prompt_t *out, char *err, size_t errlen);
/* Cuts a rendered prompt right after the last occurrence of text (len > 0 bytes)
 * inside request text: with the conversation rendered without the generation prompt,
 * this leaves the final assistant message open to be continued (the template's own
 * rendering of it, before its end tokens). 0, or SY_EINVAL when text is not there. */
int engine_prompt_cut_after(engine_prompt_t *p, const char *text, size_t len);
/* engine_chat_render_json for plain {role, content} messages. */
int engine_chat_render(const engine_t *e, const engine_msg_t *msgs, size_t n, bool add_assistant,
                       engine_prompt_t *out, char *err, size_t errlen);

/* A rendered prompt to ids: special pieces parsed where the template wrote them, never
 * inside request text; BOS prepended when the vocabulary adds one, unless the template
 * already wrote it. Returns as tokenizer_encode. */
int engine_prompt_tokenize(const engine_t *e, const engine_prompt_t *p, bool add_bos, int *ids,
                           int max);

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

/* Step by step, for drivers that interleave two models on one sequence (speculative
 * decoding, distillation): the session's cache is a prefix of tokens the driver
 * extends and cuts back. Bad ids or positions past the context give NULL. */

/* Brings the cache to hold exactly tokens[0..n) (reusing the common prefix, always
 * recomputing the last token) and returns the last token's logits (n_vocab, valid
 * until the next call), or NULL. *reused (may be NULL) gets the positions kept. */
const float *engine_session_prefill(engine_session_t *s, const int *tokens, int n, int *reused);
/* Appends n tokens after the cached ones in one batched pass. With all_logits (n at
 * most engine_session_max_batch) the result holds n rows of n_vocab logits, row i
 * predicting the token after tokens[i]; otherwise the last token's row. NULL when
 * they do not fit the context or an id is out of range (the cache is unchanged). */
const float *engine_session_append(engine_session_t *s, const int *tokens, int n, bool all_logits);
/* Keeps the first n cached tokens (n <= engine_session_n_cached): later positions are
 * overwritten by the next append. */
void engine_session_rewind(engine_session_t *s, int n);
int engine_session_n_cached(const engine_session_t *s);
const int *engine_session_tokens(const engine_session_t *s); /* (n_cached) */
int engine_session_max_batch(const engine_session_t *s);
const engine_t *engine_session_engine(const engine_session_t *s);

/* ------------------------------------------------------ continuous batching ---- */

/* One scheduler runs the next token of every active sequence in one batched forward
 * pass (every weight matrix read once per step for all of them), and folds new
 * prompts' prefill into the same passes in chunks. A sequence is a session: its KV
 * cache, cached tokens (prefix reuse), sampler and grammar state stay its own, so a
 * sequence's output is exactly what engine_generate gives on that session alone (bit
 * for bit: the kernels sum each token the same way whatever the batch). */
typedef struct engine_sched engine_sched_t;

typedef struct engine_sched_opts {
    int n_threads; /* the scheduler's pool; 1: its own thread only */
    int max_seqs;  /* sequences decoded together; more wait their turn. 0: 8 */
    int max_batch; /* tokens per pass (decode rows plus prefill chunks); 0: 64, at
                      least max_seqs + 1 */
} engine_sched_opts_t;

/* A scheduler on e (borrowed), with its thread. NULL on bad options. */
engine_sched_t *engine_sched_new(const engine_t *e, const engine_sched_opts_t *opts);
/* Stops the thread; no engine_sched_generate may be in flight. */
void engine_sched_free(engine_sched_t *sc);

/* engine_generate on session s (made on the same engine; one call per session at a
 * time; best made with n_threads 1: the scheduler's pool does the work), run by the
 * scheduler among the other active sequences. Blocks until the sequence is done; cb
 * runs on the scheduler's thread, between passes. A callback that returns nonzero
 * ends its own sequence only. Returns as engine_generate. */
int engine_sched_generate(engine_sched_t *sc, engine_session_t *s, const int *prompt, int n_prompt,
                          const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                          engine_gen_result_t *res);

typedef struct engine_sched_stats {
    long passes;      /* forward passes run */
    long rows;        /* token rows in them */
    long decode_rows; /* of which decode steps */
} engine_sched_stats_t;
void engine_sched_stats(engine_sched_t *sc, engine_sched_stats_t *out);

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
