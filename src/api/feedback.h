/* feedback.h — recent decisions kept for bandit feedback.
 *
 * POST /v1/feedback names a past request by id; the bandit needs that request's
 * feature vector and the tier that served it. A bounded ring remembers the last
 * FEEDBACK_RING decisions (older ids answer 404), so memory stays fixed whatever
 * the traffic. Thread-safe.
 */
#ifndef SY_API_FEEDBACK_H
#define SY_API_FEEDBACK_H

#include <stdbool.h>

#include "route/router.h"

#define FEEDBACK_RING 16384

typedef struct feedback_ring feedback_ring_t;

feedback_ring_t *feedback_ring_new(void);
void feedback_ring_free(feedback_ring_t *r);
/* Remembers the decision of request id (copied), made with API key `owner` (-1:
 * none). */
void feedback_ring_put(feedback_ring_t *r, const char *id, const route_features_t *f, int tier,
                       int owner);
/* Finds id: copies its features and tier, and forgets it so feedback counts once.
 * owner >= 0 finds only that key's requests (another key's look unknown); -1 finds
 * any. false if unknown, not the owner's, or already forgotten. */
bool feedback_ring_take(feedback_ring_t *r, const char *id, int owner, route_features_t *f,
                        int *tier);

#endif
