/* local.h — the in-process engine as a tier backend.
 *
 * A local tier answers OpenAI-shaped requests with the edge engine: the model is
 * loaded once and shared; each call generates on an engine thread and reports
 * through the same callbacks as an HTTP upstream (status, body bytes — JSON or
 * SSE events — then done), posted back to the caller's worker loop.
 */
#ifndef SY_TIER_LOCAL_H
#define SY_TIER_LOCAL_H

#include <stdbool.h>

#include "net/upstream.h"
#include "tier/tier.h"

struct cJSON;
typedef struct local_call local_call_t;

/* Loads the tier's model (t->s.model) into t->backend. 0 or error with message. */
int local_tier_open(tier_t *t, char *err, size_t errlen);
void local_tier_close(tier_t *t);

/* Starts generating for req on an engine thread; callbacks run on loop. logprobs:
 * include token logprobs in the answer. up: the loop's HTTP client, for a tier whose
 * drafts another tier verifies (speculative); local_only: the request holds personal
 * data that must not leave (then an external verifier is not asked). 0 or negative
 * (no callback then). */
int local_call_start(tier_t *t, loop_t *loop, upstream_t *up, bool local_only, struct cJSON *req,
                     bool stream, bool completions, bool logprobs, const upstream_cb_t *cb,
                     void *arg, local_call_t **out);
/* Cancels; no callback runs after this returns. */
void local_call_cancel(local_call_t *c);
/* Inside on_done: the call's report (what speculative decoding did, a JSON object),
 * or NULL; borrowed until on_done returns. */
const char *local_call_report(const local_call_t *c);

#endif
