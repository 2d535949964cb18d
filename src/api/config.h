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

typedef enum { CONFIG_TIER_OPENAI, CONFIG_TIER_LOCAL } config_tier_kind_t;

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
    uint32_t threads; /* kind local: engine threads */
    uint32_t context; /* kind local: context length (0 = model's) */
    bool logprobs;    /* tier returns token logprobs (kind local: always) */
    uint32_t caps;    /* bitmask of route_cap_t (default: openai all, local none) */
    bool caps_set;
    uint32_t max_context; /* tokens the tier holds, prompt + output (0 = unknown; kind local:
                             context when unset) */
} config_tier_t;

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
    uint32_t drain_ms;
    config_tier_t tiers[ROUTE_MAX_TIERS];
    size_t n_tiers;
    route_config_t route;
    char *pii_names_dir;    /* owned; "" = no PERSON gazetteer */
    char *router_model;     /* owned; "" = built-in rules only */
    char *reference_tier;   /* owned; tier whose prices give the all-cloud counterfactual */
    char *classifier_model; /* owned; task classifier model file ("" = built-in heuristics) */
    double bandit_lambda;   /* reward weight per USD of cost */
    double bandit_mu;       /* reward weight per second of latency */
} config_t;

/* Loads and validates path into cfg (caller-allocated; config_deinit frees).
 * 0, or SY_ECONFIG / -errno with a message naming key and line in err. */
int config_load(config_t *cfg, const char *path, char *err, size_t errlen);
/* Same, from a string (tests). name is used in messages. */
int config_load_string(config_t *cfg, const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen);
void config_deinit(config_t *cfg);
/* Index of a tier by name or -1. */
int config_tier_find(const config_t *cfg, const char *name);

#endif
