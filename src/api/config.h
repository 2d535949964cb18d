/* config.h — the switchyard configuration file (YAML), validated at start.
 *
 * Shape (DESIGN.md §4): listen, workers, store, log_level, limits, tiers (a mapping
 * of tier name to tier settings, any number), routing. Every key is checked: an
 * unknown key, a value of the wrong type or out of range, or a missing required
 * key is an error that names the key path and its line ("tiers.cloud.timeout_ms,
 * line 14: expected an integer, got 'soon'"). Nothing falls back silently.
 *
 * Parsed with libyaml's document API (which keeps line marks for every node);
 * the schema is the table in config.c.
 */
#ifndef SY_API_CONFIG_H
#define SY_API_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/router.h"

typedef enum { CONFIG_TIER_OPENAI, CONFIG_TIER_LOCAL, CONFIG_TIER_ANTHROPIC } config_tier_kind_t;

typedef struct config_breaker {
    uint32_t failures; /* consecutive failures that open the circuit */
    double error_rate; /* or this failure share over the window (0..1) */
    uint32_t window;   /* requests in the error-rate window */
    uint32_t open_ms;  /* time open before a half-open probe */
} config_breaker_t;

typedef struct config_tier {
    char *name; /* owned; the mapping key */
    int line;   /* where the tier is defined */
    config_tier_kind_t kind;
    char *model;        /* owned; upstream model name, or a model file for kind local */
    char *tokenizer;    /* owned; kind local with a llama2.c model: its tokenizer.bin ("" = none) */
    char *version;      /* owned; model version label ("" = unset) */
    char *base_url;     /* owned; kind openai: e.g. http://127.0.0.1:9000/v1 */
    char *api_key_env;  /* owned; env var holding the API key ("" = none) */
    char *base_url_env; /* owned; env var that, when set, gives base_url ("" = none) */
    route_privacy_t privacy;
    route_role_t role;
    bool role_set;
    uint32_t max_concurrency; /* in-flight requests */
    uint32_t max_queue;       /* waiting requests beyond max_concurrency */
    double usd_per_hour;      /* edge hardware, amortized */
    double usd_per_mtok_in;   /* cloud prices */
    double usd_per_mtok_out;
    double tokens_per_second; /* measured edge throughput at full use (for $/token) */
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;      /* total */
    uint32_t ttft_timeout_ms; /* first byte */
    uint32_t retries;         /* extra attempts on connect error, 429, 5xx (before any byte) */
    uint32_t retry_backoff_ms;
    config_breaker_t breaker;
    uint32_t threads;   /* kind local: engine threads */
    uint32_t context;   /* kind local: context length (0 = model's) */
    bool logprobs;      /* tier returns token logprobs (kind local: always) */
    int model_line;     /* line of 'model' (0 = not in the file) */
    int tokenizer_line; /* line of 'tokenizer' (0 = not in the file) */
    uint32_t caps;      /* bitmask of route_cap_t (default: openai all, local none) */
    bool caps_set;
    uint32_t max_context; /* tokens the tier holds, prompt + output (0 = unknown; kind local:
                             context when unset) */
    char *draft;          /* owned; kind local: draft model of in-process speculative decoding
                             ("" = none) */
    uint32_t draft_max;   /* kind local with a draft: tokens drafted per round (0 = 4) */
    int draft_line;       /* line of 'draft' (0 = not in the file) */
    /* kind local: speculative: {verifier, draft_max}, the tier's drafts verified by another */
    char *spec_verifier;       /* owned; the verifying tier's name ("" = none) */
    char *spec_draft_max;      /* owned; "auto" or 1..CONFIG_SPEC_MAX_DRAFT as written */
    int spec_verifier_idx;     /* resolved index of spec_verifier, -1 = none */
    uint32_t spec_draft_max_n; /* tokens per round, 0 = auto */
    int spec_verifier_line, spec_draft_max_line; /* lines of the keys (0 = absent) */
} config_tier_t;

#define CONFIG_SPEC_MAX_DRAFT 32 /* speculative.draft_max at most (the engine's cap) */

/* auth: API keys, each fixing a team and tenant, with optional limits and budget. */
typedef enum {
    CONFIG_PERIOD_DAY,
    CONFIG_PERIOD_WEEK,
    CONFIG_PERIOD_MONTH,
    CONFIG_PERIOD_TOTAL
} config_period_t;

#define CONFIG_MAX_KEYS 4096

typedef struct config_key {
    char *name; /* owned; unique; shown in logs and the ledger, never the key itself */
    int line;
    char *key_env;      /* owned; env var holding the key ("" = use key_sha256) */
    char *key_sha256;   /* owned; hex SHA-256 of the key ("" = use key_env) */
    uint8_t digest[32]; /* SHA-256 of the key, resolved at load */
    char *team;         /* owned; fixed for every request made with this key ("" = none) */
    char *tenant;       /* owned */
    double budget_usd;  /* spend limit per period; 0 with budget_set false = none */
    bool budget_set;
    config_period_t budget_period;
    uint32_t rpm; /* requests per minute; 0 = unlimited */
    uint32_t tpm; /* tokens per minute (prompt + max output); 0 = unlimited */
} config_key_t;

typedef struct config_auth {
    bool enabled;           /* an auth section is present: every /v1 call needs a key */
    char *admin_key_env;    /* owned ("" = none) */
    char *admin_key_sha256; /* owned ("" = none) */
    bool admin_set;         /* an admin key is configured */
    uint8_t admin_digest[32];
    config_key_t *keys; /* owned array */
    size_t n_keys;
} config_auth_t;

/* models: a client-facing model name and what it routes to ("auto" or a tier). */
#define CONFIG_MAX_ALIASES 256
typedef struct config_alias {
    char *name;   /* owned */
    char *target; /* owned; "auto" or a tier name */
    int line;
} config_alias_t;

/* drift: when a model version's figures differ from the previous version of the
 * same tier by more than these, it is flagged (docs/versions.md). */
typedef struct config_drift {
    uint32_t min_requests;   /* each of the two versions needs this many requests */
    double escalation_rate;  /* absolute change of the escalation rate */
    double confidence;       /* absolute change of the mean confidence */
    double error_rate;       /* absolute change of the error rate */
    double cost_per_request; /* relative change of the cost per request (0.25 = 25%) */
    uint32_t interval_s;     /* how often the gateway checks the ledger (0 = only on
                                GET /v1/versions) */
} config_drift_t;

/* telemetry: OpenTelemetry trace export (docs/telemetry.md). */
typedef struct config_telemetry {
    char *otlp_endpoint;  /* owned; "http://host:port[/prefix]" ("" = export off) */
    char *service_name;   /* owned; service.name of the resource */
    uint32_t queue;       /* spans waiting at most; more are dropped and counted */
    uint32_t batch;       /* spans per POST at most */
    uint32_t interval_ms; /* a partial batch is sent after this long */
    uint32_t timeout_ms;  /* one POST */
} config_telemetry_t;

typedef struct config {
    char *path;        /* owned; file loaded */
    char *listen_host; /* owned */
    int listen_port;
    uint32_t workers;
    char *store; /* owned; "sqlite:PATH" or "postgresql://..." */
    char *log_level;
    size_t max_body_bytes;
    size_t max_header_bytes;
    uint32_t header_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t body_timeout_ms; /* time to receive a whole request body */
    uint32_t body_min_rate;   /* bytes/s a body must average (0 = no check) */
    uint32_t drain_ms;
    config_tier_t tiers[ROUTE_MAX_TIERS];
    size_t n_tiers;
    route_config_t route;
    char *pii_names_dir;    /* owned; "" = no PERSON gazetteer */
    bool pii_labeller;      /* routing.pii.labeller: PERSON/STREET_ADDRESS by the model */
    char *router_model;     /* owned; "" = built-in rules only */
    char *reference_tier;   /* owned; tier whose prices give the all-cloud counterfactual */
    char *classifier_model; /* owned; task classifier model file ("" = built-in heuristics) */
    double bandit_lambda;   /* reward weight per USD of cost */
    double bandit_mu;       /* reward weight per second of latency */
    /* Lines of the keys that name files (0 = not in the file), for --check messages. */
    int pii_names_dir_line, router_model_line, classifier_model_line, store_line;
    char *ledger_journal; /* owned; folder of the per-worker ledger journals */
    bool ledger_fsync;    /* fdatasync each journal append (power-loss durability) */
    int forward_unknown;  /* config_forward_t: request fields switchyard does not know */
    config_auth_t auth;
    config_alias_t aliases[CONFIG_MAX_ALIASES]; /* the models: map */
    size_t n_aliases;
    config_drift_t drift;
    config_telemetry_t telemetry;
} config_t;

/* What happens to request fields switchyard does not know: forwarded after every
 * string inside them (keys too) passed the PII scan, or dropped. */
typedef enum { CONFIG_FORWARD_SCAN, CONFIG_FORWARD_DROP } config_forward_t;

/* Loads and validates path into cfg (caller-allocated; config_deinit frees).
 * Relative file paths in the file (local tier model and tokenizer, routing.model,
 * routing.classifier, routing.pii.names_dir, a sqlite store) are resolved from the
 * folder of path, not the current directory.
 * 0, or SY_ECONFIG / -errno with a message naming key and line in err. */
int config_load(config_t *cfg, const char *path, char *err, size_t errlen);
/* Same, from a string (tests). name is used in messages. */
int config_load_string(config_t *cfg, const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen);
void config_deinit(config_t *cfg);
/* The drift section's defaults (docs/versions.md). */
void config_drift_defaults(config_drift_t *d);
/* Index of a tier by name or -1. */
int config_tier_find(const config_t *cfg, const char *name);

#endif
