/* local.h — the in-process engine as a tier backend.
 *
 * A local tier answers OpenAI-shaped requests with the edge engine: the model is
 * loaded once and shared; each call generates on an engine thread and reports typed
 * events (backend.h) posted back to the caller's worker loop.
 */
#ifndef SY_TIER_LOCAL_H
#define SY_TIER_LOCAL_H

#include <stdbool.h>

#include "tier/backend.h"
#include "tier/tier.h"

/* Loads the tier's model (t->s.model) into t->backend and sets t->ops to
 * local_backend_ops. 0 or error with message. */
int local_tier_open(tier_t *t, char *err, size_t errlen);
void local_tier_close(tier_t *t);

/* start: the request's prompt is rendered with the model's template before start
 * returns (req is not read after); tier_call_opts_t.logprobs asks for each token's
 * logprob (the cascade's confidence) whatever the request says. An external verifier
 * (speculative) is not asked when local_only. */
extern const tier_backend_ops_t local_backend_ops;

#endif
