/* router.h — the pure routing decision.
 *
 * router_decide() turns (request view, tier states, router parameters) into a
 * decision with its reason trace. It performs no I/O and reads no clock: time and
 * randomness come in through route_input_t. The same function runs in the server,
 * in `switchyard route` and in `switchyard replay`.
 *
 * Order of stages (DESIGN.md §2.3): hard constraints (forced tier, PII / private
 * session under local_only, blocked types, capabilities and context length the
 * request needs), token budget, policy (rules or bandit), tier state (unhealthy or
 * saturated tiers skipped, never past a hard constraint). Every rule that shapes
 * the decision lives here: callers execute it, they never adjust it.
 */
#ifndef SY_ROUTE_ROUTER_H
#define SY_ROUTE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/bandit.h"
#include "route/features.h"
#include "route/model.h"
#include "route/pii/pii.h"

#define ROUTE_MAX_TIERS   16
#define ROUTE_MAX_REASONS 16
#define ROUTE_REASON_LEN  64

/* ---------------------------------------------------------------- tiers ---- */

typedef enum {
    ROUTE_PRIVACY_ON_DEVICE,
    ROUTE_PRIVACY_ON_PREM,
    ROUTE_PRIVACY_EXTERNAL
} route_privacy_t;
/* Edge tiers are the cheap/local ones; cloud tiers the strong/expensive ones. */
typedef enum { ROUTE_ROLE_EDGE, ROUTE_ROLE_CLOUD } route_role_t;

/* What a tier can do beyond plain text in, text out. A request that needs a
 * capability is routed only to tiers that declare it (a hard constraint). */
typedef enum {
    ROUTE_CAP_TOOLS,      /* tools / functions, tool calls in the answer */
    ROUTE_CAP_JSON,       /* response_format json_object / json_schema */
    ROUTE_CAP_VISION,     /* image parts */
    ROUTE_CAP_AUDIO,      /* input_audio parts, audio output */
    ROUTE_CAP_EMBEDDINGS, /* POST /v1/embeddings */
    ROUTE_CAP_CONTINUE,   /* continues a partial answer (docs/routing.md "Continuation");
                             no request needs it */
    ROUTE_CAP_COUNT
} route_cap_t;
#define ROUTE_CAPS_ALL ((1u << ROUTE_CAP_COUNT) - 1u)

/* "tools", "json", "vision", "audio", "embeddings", "continue"; route_cap_parse: 0 or SY_EINVAL. */
const char *route_cap_name(route_cap_t c);
int route_cap_parse(const char *name, route_cap_t *out);
/* Writes the names of the bits of caps joined by sep ("tools, json") into out. */
void route_caps_names(uint32_t caps, const char *sep, char *out, size_t cap);

/* What the router may know about a tier at decision time (filled by tier/). */
typedef struct route_tier {
    const char *name;        /* config key, e.g. "edge" */
    route_privacy_t privacy; /* where data goes */
    route_role_t role;       /* edge (local/small) or cloud (strong) */
    bool healthy;            /* circuit not open */
    bool saturated;          /* concurrency limit reached and queue full */
    bool has_logprobs;       /* answers carry token logprobs (cascade possible) */
    double usd_per_mtok_in;  /* effective cost per million input tokens */
    double usd_per_mtok_out; /* effective cost per million output tokens */
    uint32_t max_context;    /* tokens; 0 = unknown/unlimited */
    uint32_t caps;           /* bitmask of route_cap_t the tier serves */
} route_tier_t;

/* ------------------------------------------------------------- settings ---- */

typedef enum {
    ROUTE_PII_LOCAL_ONLY,
    ROUTE_PII_MASK,
    ROUTE_PII_BLOCK,
    ROUTE_PII_ALLOW
} route_pii_action_t;
typedef enum { ROUTE_POLICY_RULES, ROUTE_POLICY_BANDIT } route_policy_kind_t;

typedef struct route_config {
    route_pii_action_t pii_action[PII_TYPE_COUNT]; /* per entity type */
    float pii_min_score;                           /* 0..1 */
    uint32_t cloud_above_tokens;                   /* token budget threshold; 0 = off */
    route_policy_kind_t policy;
    bool escalation_enabled;
    float escalation_min_confidence; /* 0..1 */
    /* Added with the learned policies; route_config_defaults fills them. */
    float policy_threshold;     /* need-of-cloud threshold; < 0 = the model file's calibrated one */
    route_bandit_opts_t bandit; /* policy bandit: algorithm, exploration */
} route_config_t;

/* Fills the DESIGN.md §4 defaults. */
void route_config_defaults(route_config_t *c);

/* -------------------------------------------------------------- request ---- */

/* One piece of text the request holds: a message's content or content part, a
 * tool-call argument string, a name, a system prompt. */
typedef struct route_text {
    const char *role; /* "system", "user", "assistant", "tool", ... */
    const char *text; /* not necessarily NUL-terminated */
    size_t len;
} route_text_t;

typedef struct route_input {
    const route_text_t *texts;
    size_t n_texts;
    uint32_t n_messages;
    uint32_t max_tokens;     /* requested output cap; 0 = not given */
    const char *forced_tier; /* tier name or NULL */
    /* A `model` the gateway could not resolve (not auto, a tier, switchyard/<tier> or
     * a configured alias), or NULL: the request is refused as model_not_found. */
    const char *unknown_model;
    bool privacy_local_only; /* client asked for local-only handling */
    bool session_private;    /* the session held PII earlier */
    uint64_t now_us;         /* time, passed in (the router reads no clock) */
    uint64_t rand_seed;      /* randomness, passed in */
    uint32_t needs;          /* bitmask of route_cap_t the request needs */
    /* Findings of the gateway's own scan of everything the request would send (fields
     * beyond texts, text split across parts), applied like the router's findings. */
    uint32_t pii_extra;    /* bitmask of pii_type_t */
    bool pii_unknown;      /* that scan hit a limit: the request holds PII_UNKNOWN */
    uint32_t pii_unmasked; /* types under mask whose masking did not hold: kept local */
} route_input_t;

/* ------------------------------------------------------------- decision ---- */

/* Why a decision has no tier (status != 0). */
typedef enum {
    ROUTE_REFUSE_NONE,
    ROUTE_REFUSE_UNKNOWN_TIER,    /* SY_EINVAL: the forced tier is not configured */
    ROUTE_REFUSE_UNKNOWN_MODEL,   /* SY_ENOTFOUND: the model name resolves to nothing */
    ROUTE_REFUSE_PII_BLOCKED,     /* SY_EPRIVACY: a found type's action is block */
    ROUTE_REFUSE_FORCED_EXTERNAL, /* SY_EPRIVACY: local_only, but an external tier is forced */
    ROUTE_REFUSE_CAPABILITY,      /* SY_EUNSUPPORTED: no eligible tier has caps_missing */
    ROUTE_REFUSE_CONTEXT,         /* SY_ECONTEXT: no eligible tier holds the prompt + output */
    ROUTE_REFUSE_UNAVAILABLE      /* SY_EUNAVAILABLE: eligible tiers exist, none healthy */
} route_refusal_t;

typedef struct route_decision {
    int status; /* 0 or the error of `refusal`: SY_EINVAL, SY_EPRIVACY, SY_EUNSUPPORTED,
                   SY_ECONTEXT, SY_EUNAVAILABLE */
    route_refusal_t refusal;
    int tier;                   /* chosen tier index, or -1 */
    int order[ROUTE_MAX_TIERS]; /* eligible tiers in preference order (order[0] == tier) */
    int n_order;                /* failover/spillover walk this list, nothing else */
    bool local_only;            /* hard constraint: no external tier may see this request */
    bool cascade;               /* answer on the edge, escalate below min_confidence */
    float min_confidence;
    bool degraded;      /* preferred a cloud tier but must use an edge tier */
    uint32_t pii_types; /* bitmask of pii_type_t found */
    uint32_t est_tokens_in;
    uint32_t est_tokens_out;
    uint32_t needs;        /* route_cap_t bitmask the request needs */
    uint32_t caps_missing; /* ROUTE_REFUSE_CAPABILITY: needed caps no eligible tier has (all
                              needed caps when each exists, but on different tiers) */
    uint32_t need_context; /* tokens: prompt estimate + max_tokens */
    char reasons[ROUTE_MAX_REASONS]
                [ROUTE_REASON_LEN]; /* trace, e.g. "pii:EMAIL_ADDRESS->local_only" */
    int n_reasons;
    route_features_t features; /* the feature vector every stage read (keep it per request
                                  id for router_feedback) */
    bool prefer_cloud;         /* budget or policy preferred a cloud tier */
} route_decision_t;

typedef struct router router_t;

/* Builds a router (takes nothing; copies cfg; borrows pii scanner, may be NULL for
 * no PII detection). Returns owned router or NULL with a message in err. */
router_t *router_new(const route_config_t *cfg, const pii_scanner_t *pii, char *err, size_t errlen);
void router_free(router_t *r);

/* Per-thread scratch (PII scratch, feature buffers). */
typedef struct router_scratch router_scratch_t;
router_scratch_t *router_scratch_new(const router_t *r);
void router_scratch_free(router_scratch_t *s);

/* The decision. Pure: same inputs, same output. Returns 0 (see out->status for a
 * refusal) or a negative error for bad arguments. */
int router_decide(const router_t *r, router_scratch_t *s, const route_input_t *in,
                  const route_tier_t *tiers, size_t n_tiers, route_decision_t *out);

/* Installs the task classifier / the need-of-cloud model (takes ownership; NULL
 * removes). Call before the router is shared between threads. SY_EINVAL when the
 * model has the wrong kind or shape (the router keeps its previous model). */
int router_set_classifier(router_t *r, route_model_t *m);
int router_set_cloud_model(router_t *r, route_model_t *m);
const route_model_t *router_classifier(const router_t *r);
const route_model_t *router_cloud_model(const router_t *r);

/* Computes the feature vector alone (what router_decide computes first): PII scan,
 * text statistics, task classifier, need-of-cloud score. Pure. */
int router_features(const router_t *r, router_scratch_t *s, const route_input_t *in,
                    route_features_t *out);

/* ---------------------------------------------------------------- bandit ---- *
 * Thread safety: router_decide takes the bandit's read lock (pthread rwlock held
 * only while scoring arms), router_feedback and the state calls take the write lock.
 * Decisions never wait on I/O; feedback is O(D³) with D = ROUTE_DENSE_DIM. */

/* Adds one reward for a past decision: f is the decision's features (the gateway
 * keeps route_decision_t.features per request id), tier the index that served it.
 * Reward: route_bandit_reward(quality, cost, latency, λ, μ). 0 or SY_EINVAL. */
int router_feedback(router_t *r, const route_features_t *f, int tier, double reward);
/* Bandit state as a byte blob (sums; persist it in the store), restore, and merge
 * another instance's delta. 0, SY_ECORRUPT or SY_ETOOBIG. */
int router_bandit_save(const router_t *r, buf_t *out);
int router_bandit_load(router_t *r, const void *blob, size_t n, char *err, size_t errlen);
int router_bandit_merge(router_t *r, const void *blob, size_t n, char *err, size_t errlen);

/* Statistics shared by gateways on one store. Each gateway adds its feedback to its
 * own state and to a pending delta; something off the decision path periodically
 * takes the delta (adds it into acc[router_bandit_sums_len(r)], clears it; false
 * when it was empty), adds it to the store's totals atomically, and sets the state
 * to the merged totals plus the delta gathered meanwhile (router_bandit_set_total;
 * 0 or SY_EINVAL for a vector of another shape). router_bandit_load_pending loads a
 * saved blob as a delta still to share. The sums layout: route_bandit_sums_*. */
size_t router_bandit_sums_len(const router_t *r);
bool router_bandit_take(router_t *r, double *acc);
int router_bandit_set_total(router_t *r, const double *total, size_t n);
int router_bandit_load_pending(router_t *r, const void *blob, size_t n, char *err, size_t errlen);
/* An arm's observations and reward sum in the state, and its observations pending. */
void router_bandit_arm_totals(const router_t *r, int arm, uint64_t *n, double *reward_sum,
                              uint64_t *pending);

/* ------------------------------------------------------------- confidence ---- */

/* Confidence of an answer from its token logprobs (natural log) and, optionally,
 * per-token entropies (nats; NULL when the tier gives none).
 *   confidence = σ(a·mean_logprob + b·min_logprob + c·mean_entropy + d)
 * with coefficients documented in docs/routing.md; 0..1, higher = more likely
 * right. n == 0 gives confidence 0.5 (no evidence). */
typedef struct route_confidence {
    float mean_logprob;
    float min_logprob;
    float mean_entropy; /* nats; from the given entropies or -mean_logprob */
    float confidence;   /* calibrated, 0..1 */
} route_confidence_t;
void route_confidence(const float *logprobs, size_t n, const float *entropies,
                      route_confidence_t *out);

/* Serializes a decision as JSON (for /v1/route and `switchyard route`). */
struct jsonw;
void route_decision_write_json(const route_decision_t *d, const route_tier_t *tiers,
                               struct jsonw *w);

#endif
