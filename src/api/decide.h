/* decide.h — the one decision path.
 *
 * api_decide() turns a parsed request plus session state (the private mark) into
 * the router's input and runs router_decide() on it; api_decision_http() says what
 * the client is answered when the decision refuses. The server (chat, completions
 * and POST /v1/route), `switchyard route` and `switchyard replay` all call these two
 * functions, with tiers built from the config by api_tier_settings(), so a decision
 * explained or replayed offline is the decision the server makes. Nothing adjusts a
 * decision after router_decide() returns: every rule lives inside it.
 */
#ifndef SY_API_DECIDE_H
#define SY_API_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/config.h"
#include "api/privacy.h"
#include "api/request.h"
#include "route/router.h"
#include "tier/tier.h"

struct jsonw;

/* The settings of tier ct as the router and the executor see them (name, kind,
 * model, privacy, role, prices, limits, capabilities). Strings are borrowed from
 * ct. Base URL and API key are left NULL: resolving them is the server's job. */
void api_tier_settings(const config_tier_t *ct, tier_settings_t *out);

/* The router's view of every configured tier, each taken as healthy and not
 * saturated (offline tools; the server reads live state with tier_route_view). */
void api_tier_views(const config_t *cfg, route_tier_t out[ROUTE_MAX_TIERS]);

/* Capabilities (route_cap_t bitmask) the request needs to be answered in full. */
uint32_t api_request_needs(const api_request_t *r);

/* The tier a request forces, or NULL: the metadata/header `tier`, else a model name
 * "switchyard/<name>" (whatever name: an unknown one is refused by the router),
 * else a model name equal to a tier name. Borrowed from r or cfg. */
const char *api_request_forced_tier(const config_t *cfg, const api_request_t *r);
/* The request's model name when it resolves to nothing (not "auto" or empty, a tier,
 * "switchyard/<name>" or an alias of the config's `models:` map) and no metadata or
 * header forces a tier; else NULL. The router refuses such a request (404
 * model_not_found). Borrowed from r. */
const char *api_request_unknown_model(const config_t *cfg, const api_request_t *r);

/* The labels a request carries (tenant, team, feature, session, forced tier) are
 * identifiers written to the ledger, the log and cost reports: one holding personal
 * data is refused (returns 400 with the message and param filled), and every label
 * is cleared so that nothing writes it. 0 when none holds any. */
int api_request_check_labels(api_scan_t *scan, api_request_t *r, char *err, size_t errlen,
                             char *param, size_t paramlen);

/* State of the request's session that the decision reads. */
typedef struct api_session_state {
    bool is_private; /* the session held personal data earlier */
} api_session_state_t;

/* Builds the route input for r (borrowed; in points into r) and decides over
 * tiers[cfg->n_tiers]. scan: api_privacy_scan of what r would send (NULL = none
 * done); unmasked: types under mask whose masking did not hold (0 before masking).
 * now_us and rand_seed are passed through. Returns 0 with d filled (a refusal is
 * d->status), or a negative error for bad arguments. */
int api_decide(const config_t *cfg, const router_t *rt, router_scratch_t *rs,
               const api_request_t *r, const api_session_state_t *ss, const api_privacy_t *scan,
               uint32_t unmasked, const route_tier_t *tiers, uint64_t now_us, uint64_t rand_seed,
               route_decision_t *d);

/* What the client is answered for a decision: the HTTP status (200 when a tier
 * serves it), and for a refusal the message, OpenAI error type, code (NULL when
 * none) and param (NULL when none). */
typedef struct api_refusal {
    int http_status;
    const char *type;
    const char *code;
    const char *param;
    char message[512];
} api_refusal_t;
void api_decision_http(const route_decision_t *d, const route_tier_t *tiers, api_refusal_t *out);

/* Writes the body of a POST /v1/route answer: {"decision": ..., "status": N,
 * "message": ..., "decision_us": x}. */
void api_decision_write_json(const route_decision_t *d, const route_tier_t *tiers,
                             const api_refusal_t *a, double decision_us, struct jsonw *w);

/* What was done with each personal-data type a decided request held (the ledger's
 * per-type record, the audit's input): each type of d->pii_types lands in exactly
 * one mask. masked: the types replaced by placeholders in every string before the
 * request left; sent_external: an external tier was sent the request. */
typedef struct api_pii_outcome {
    uint32_t kept_local; /* no external tier was sent the request */
    uint32_t masked;     /* an external tier got placeholders only */
    uint32_t allowed;    /* an external tier got the values in clear */
    uint32_t blocked;    /* refused for its personal data (block, or external forced) */
} api_pii_outcome_t;
void api_pii_outcome(const route_decision_t *d, uint32_t masked, bool sent_external,
                     api_pii_outcome_t *out);

#endif
