/* spec_remote.h — speculative decoding across tiers: a local tier's model drafts, an
 * OpenAI-compatible tier verifies each round over HTTP.
 *
 * One round (greedy only: the emitted text is the verifier's own greedy output):
 *   1. the local model drafts K tokens d1..dK after the context (argmax each);
 *   2. one POST {verifier}/completions with the context + drafts as token ids,
 *      max_tokens 1, temperature 0, echo, logprobs 1, return_tokens_as_token_ids and
 *      a prompt_cache_key per generation; the answer gives the verifier's most likely
 *      token at every prompt position and its own next token;
 *   3. d_j is kept while it equals the verifier's top token at its position, the
 *      first disagreement is replaced by that top token, and when all K agree the
 *      generated token is a bonus;
 *   4. the draft's cache is cut back to the kept tokens (engine_session_prefill
 *      reuses the common prefix).
 * While a verification is in flight the slot thread drafts the next round, assuming
 * every draft is accepted; those drafts are kept when they are and the bonus token
 * equals the first of them.
 *
 * The HTTP call runs on the caller's worker loop (upstream.h); the slot thread waits
 * for it (or drafts ahead). A verifier without prompt logprobs or with another
 * vocabulary (echoed ids differ) is unusable: logged once per tier pair, that
 * generation decodes alone. A verifier that fails mid-answer (connect, timeout, 5xx)
 * leaves the rest to the local model, and the answer says so.
 *
 * Draft length: fixed, or adaptive (0): the K maximising expected tokens per
 * millisecond, E(K) / (K * t_draft + t_round), with E(K) = (1 - a^(K+1)) / (1 - a)
 * from the measured acceptance a, draft time per token and round trip of the pair.
 */
#ifndef SY_TIER_SPEC_REMOTE_H
#define SY_TIER_SPEC_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "net/upstream.h"
#include "tier/tier.h"

#define SPEC_REMOTE_MAX_DRAFT 32         /* tokens per round at most */
#define SPEC_REMOTE_MAX_AUTO  16         /* adaptive draft length at most */
#define SPEC_REMOTE_MAX_BODY  (8u << 20) /* a verifier's answer, bytes */

/* What one generation did, for the answer's switchyard object. */
typedef struct spec_remote_stats {
    int rounds;       /* verify calls answered */
    int drafted;      /* draft tokens sent for verification */
    int accepted;     /* of which the verifier kept */
    int draft_max;    /* the setting: tokens per round, 0 = adaptive */
    int last_k;       /* draft length of the last round */
    int local_tokens; /* tokens decoded by the local model alone after a failure */
    bool fell_back;   /* the verifier failed mid-answer; the local model finished */
    char error[240];  /* why verification stopped ("" = it did not) */
} spec_remote_stats_t;

/* One generation's settings. Borrowed pointers live for the call. */
typedef struct spec_remote_opts {
    tier_t *drafter;  /* the local tier */
    tier_t *verifier; /* kind openai */
    loop_t *loop;     /* worker loop the HTTP calls run on */
    upstream_t *up;   /* that loop's client */
    int draft_max;    /* 1..SPEC_REMOTE_MAX_DRAFT, 0 = adaptive */
} spec_remote_opts_t;

/* Why a request that the tier would speculate on decodes alone, or NULL when it may
 * speculate: no verifier, sampling (temperature > 0: top-1 logprobs cannot verify a
 * sampled draft exactly), constrained decoding, n > 1, echo, alternatives asked for,
 * personal data under local_only with an external verifier, a verifier that is
 * disabled or whose circuit is open. */
const char *spec_remote_skip_reason(tier_t *drafter, float temperature, bool constrained,
                                    int n_choices, bool echo, int top_logprobs, bool local_only,
                                    uint64_t now_ms);

/* Generates greedily on s (the drafter's session, borrowed; used directly, not
 * through the scheduler) from prompt, calling cb per token as engine_generate does
 * (the token's logprob is the verifier's; no alternatives). Stop strings, max_tokens
 * and end of generation end it. Returns 0 with res and st filled (a verifier failure
 * is not an error: st says so), SY_EINVAL for bad ids, SY_ECONTEXT when the prompt
 * does not fit. */
int spec_remote_generate(engine_session_t *s, const spec_remote_opts_t *o, const int *prompt,
                         int n_prompt, const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                         engine_gen_result_t *res, spec_remote_stats_t *st);

/* ---- Parts, exposed for tests ---- */

/* The verifier's verdict on one round. */
typedef struct spec_remote_verdict {
    int top[SPEC_REMOTE_MAX_DRAFT];        /* its most likely token at each draft position */
    float top_lp[SPEC_REMOTE_MAX_DRAFT];   /* and its logprob */
    float draft_lp[SPEC_REMOTE_MAX_DRAFT]; /* logprob of the draft token there */
    int next;                              /* its generated token after all of them */
    float next_lp;
} spec_remote_verdict_t;

/* Reads a verifier's answer (body, n bytes) to a round that sent ids[0..n_sent), of
 * which the last k are drafts. 0, or SY_EUPSTREAM with a message in err: not JSON, no
 * choices[0].logprobs, fewer entries than sent + 1, a token that is not "token_id:N",
 * an echoed id that differs from the one sent (another vocabulary), a missing top
 * alternative at a draft position. */
int spec_remote_parse(const char *body, size_t n, const int *ids, int n_sent, int k,
                      spec_remote_verdict_t *out, char *err, size_t errlen);

/* Draft length maximising expected tokens per millisecond (see above), in 1..cap. */
int spec_remote_best_k(double acceptance, double draft_ms_per_token, double round_ms, int cap);

/* ---- Counters per tier pair (drafter, verifier), for /metrics and /v1/versions ---- */

typedef struct spec_remote_pair {
    uint64_t generations; /* generations that drafted for this verifier */
    uint64_t rounds, drafted, accepted;
    uint64_t fallbacks; /* generations finished locally after the verifier failed */
    uint64_t unusable;  /* generations whose verifier answered without what is needed */
    uint64_t skipped;   /* requests decoded alone (privacy, sampling, ...) */
    double round_ms;    /* measured round trip (EWMA), 0 = none yet */
    double draft_ms;    /* draft time per token (EWMA) */
    double acceptance;  /* per-token acceptance (EWMA), 0 = none yet */
} spec_remote_pair_t;

/* A snapshot of the pair's counters (drafter and verifier tier indexes). */
void spec_remote_pair_get(int drafter, int verifier, spec_remote_pair_t *out);
/* Counts a request decoded alone although its tier drafts for a verifier. */
void spec_remote_count_skip(int drafter, int verifier);

#endif
