/* session.h — the inside of an engine session, shared by engine.c (one sequence at a
 * time) and batch.c (many sequences in one forward pass). Not for use outside
 * src/engine.
 *
 * Generation is a step function so that both drivers run the very same per-token
 * logic (grammar mask, sampling, stop strings, logprobs, the callback):
 *
 *   engine_gen_check     validate the prompt (fills res)
 *   ... bring the cache to hold the prompt, get the last token's logits ...
 *   engine_gen_start     reset sampler, text and grammar for the call
 *   engine_gen_step      sample from logits and report the token; true: run *next
 *                        at position n_cached, append it to cached, step again
 *   engine_gen_end       timings and grammar completeness into res
 */
#ifndef SY_ENGINE_SESSION_H
#define SY_ENGINE_SESSION_H

#include "engine/engine.h"
#include "engine/forward.h"
#include "engine/grammar.h"

#define ENGINE_MAX_TEXT (1 << 20) /* generated text kept for stop matching, bytes */

/* The call being generated. */
typedef struct engine_gen {
    const engine_gen_params_t *p;
    engine_token_cb cb;
    void *ud;
    engine_gen_result_t *res;
    size_t released; /* bytes of the session's text given to the callback */
    int i;           /* tokens sampled */
    int n_alts;
    bool constrained; /* the grammar drives this call (set at the first token) */
    double t1;        /* end of prefill, ms */
} engine_gen_t;

struct engine_session {
    const engine_t *e;
    forward_state_t *fs;
    kern_pool_t *pool; /* owned, NULL with one thread */
    sampler_t *sampler;
    int *cached; /* (n_ctx) tokens whose keys/values are in the cache */
    int n_cached;
    buf_t text;              /* generated text of the current call */
    grammar_vocab_t *gvocab; /* token bytes for constrained decoding, built on first use */
    float *masked;           /* (n_vocab) logits under the grammar */
    grammar_state_t gstate;
    engine_gen_t gen;
};

double engine_now_ms(void);
/* Cached positions a prompt of n tokens can keep (the common prefix, never the last
 * token, whose logits are needed). */
int engine_session_keep(const engine_session_t *s, const int *tokens, int n);

int engine_gen_check(const engine_session_t *s, const int *prompt, int n_prompt,
                     engine_gen_result_t *res);
/* t0: when the call started (prefill_ms = now - t0). */
void engine_gen_start(engine_session_t *s, const engine_gen_params_t *p, engine_token_cb cb,
                      void *ud, engine_gen_result_t *res, double t0);
bool engine_gen_step(engine_session_t *s, const float *logits, int *next);
/* engine_gen_step in two halves: pick (grammar and sampling; touches only s, so the
 * picks of different sessions may run on different threads at once) returns the token,
 * or -1 where the step ends before one (budget spent, the grammar cannot continue);
 * emit (text, stop strings, the callback) reports it and returns as engine_gen_step. */
int engine_gen_pick(engine_session_t *s, const float *logits, sample_info_t *info);
bool engine_gen_emit(engine_session_t *s, int tok, sample_info_t *info, int *next);
void engine_gen_end(engine_session_t *s);

#endif
