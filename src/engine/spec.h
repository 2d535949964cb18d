/* spec.h — speculative decoding: a small draft model proposes tokens, the target
 * model checks them all in one batched pass.
 *
 * One round, with the target's cache holding every token but the last:
 *   1. the draft samples up to K tokens d1..dK (its own distribution q_i each time);
 *   2. the target runs [last, d1..dK] in one forward pass with logits at every
 *      position, giving its distributions p_1..p_K+1;
 *   3. d_i is accepted with probability min(1, p_i(d_i) / q_i(d_i)), in order; the
 *      first rejected one is replaced by a draw from norm(max(0, p_i - q_i)), and
 *      when all K pass a bonus token is drawn from p_K+1;
 *   4. both caches are cut back to the tokens kept (positions past them are simply
 *      overwritten later).
 * Each emitted token is distributed exactly as the target alone would sample it
 * (Leviathan et al. 2023, Chen et al. 2023). Greedy decoding is the one-hot case: the
 * draft's argmax is kept while it equals the target's, and the text is the target's
 * own, token for token.
 *
 * Both models must share one vocabulary (tokenizer_fingerprint) and the draft must be
 * the smaller of the two: spec_check says why a pair does not qualify.
 */
#ifndef SY_ENGINE_SPEC_H
#define SY_ENGINE_SPEC_H

#include <stddef.h>

#include "engine/engine.h"

#define SPEC_MAX_DRAFT 32 /* tokens drafted per round at most */

typedef struct spec_stats {
    int rounds;       /* target verification passes */
    int drafted;      /* tokens the draft proposed */
    int accepted;     /* of which the target kept */
    double draft_ms;  /* time in the draft model */
    double verify_ms; /* time in the target's batched passes */
} spec_stats_t;

/* Whether draft may draft for target: 0, or SY_EINVAL with a message in err when the
 * vocabularies differ (tokens, scores, types, merges or special ids) or the draft's
 * weights take more bytes than the target's. */
int spec_check(const engine_t *target, const engine_t *draft, char *err, size_t errlen);

/* Generates like engine_generate on the target session ts, drafting up to draft_max
 * (1..SPEC_MAX_DRAFT, and below the target session's max_batch) tokens per round on
 * the draft session ds. Sessions are borrowed; their engines must pass spec_check.
 * The callback sees each kept token with its text and its logprob and entropy under
 * the target (no alternatives). Stop strings and n_logprobs are not supported
 * (SY_EUNSUPPORTED). Where the draft's context ends (a short-context student), the
 * target decodes alone. Returns 0 (res and st filled), SY_ECONTEXT when the prompt
 * does not fit the target's context, SY_EINVAL for bad ids or parameters. */
int spec_generate(engine_session_t *ts, engine_session_t *ds, const int *prompt, int n_prompt,
                  const engine_gen_params_t *p, int draft_max, engine_token_cb cb, void *ud,
                  engine_gen_result_t *res, spec_stats_t *st);

static inline double spec_acceptance(const spec_stats_t *st)
{
    return st->drafted ? (double)st->accepted / st->drafted : 0.0;
}

#endif
