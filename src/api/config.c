/* config.c — load and validate the YAML configuration.
 *
 * The file is parsed into a libyaml document (nodes keep their line marks), then
 * walked against the schema tables below. Each table row names a key, its type,
 * where it lands in the struct, and its bounds. Errors carry the dotted key path
 * and the line, and stop the load: a bad config never starts a server.
 */
#include "api/config.h"
#include "api/auth.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

/* ------------------------------------------------------------ schema ---- */

typedef enum {
    F_STR,    /* char * (owned) */
    F_U32,    /* uint32_t */
    F_SIZE,   /* size_t */
    F_F64,    /* double */
    F_F32,    /* float */
    F_BOOL,   /* bool */
    F_ENUM,   /* int-sized enum from a name table */
    F_MAP,    /* nested fixed mapping */
    F_LISTEN, /* "host:port" */
    F_CAPS,   /* uint32_t bitmask of route_cap_t, from a list of names */
} ftype_t;

typedef struct field {
    const char *key;
    ftype_t type;
    size_t off;
    double min, max;          /* numeric bounds */
    const char *const *names; /* F_ENUM: NULL-terminated names, value = index */
    const struct field *sub;  /* F_MAP */
    size_t set_off;           /* offset of a bool set when the key is present, or 0 */
} field_t;

typedef struct walk {
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
    int failed;
} walk_t;

static const char *const kind_names[] = {"openai", "local", "anthropic", NULL};
static const char *const privacy_names[] = {"on_device", "on_prem", "external", NULL};
static const char *const forward_unknown_names[] = {"scan", "drop", NULL};
static const char *const role_names[] = {"edge", "cloud", NULL};
static const char *const policy_names[] = {"rules", "bandit", NULL};
static const char *const bandit_algo_names[] = {"linucb", "thompson", NULL};
static const char *const pii_action_names[] = {"local_only", "mask", "block", "allow", NULL};

#define T(f) offsetof(config_tier_t, f)
#define C(f) offsetof(config_t, f)
#define R(f) (offsetof(config_t, route) + offsetof(route_config_t, f))
#define NUM(k, ty, off, lo, hi)                                                                    \
    {                                                                                              \
        k, ty, off, lo, hi, NULL, NULL, 0                                                          \
    }
#define STR(k, off)                                                                                \
    {                                                                                              \
        k, F_STR, off, 0, 0, NULL, NULL, 0                                                         \
    }
#define ENUM(k, off, names)                                                                        \
    {                                                                                              \
        k, F_ENUM, off, 0, 0, names, NULL, 0                                                       \
    }
#define MAP(k, sub)                                                                                \
    {                                                                                              \
        k, F_MAP, 0, 0, 0, NULL, sub, 0                                                            \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, 0, 0, 0, NULL, NULL, 0                                                            \
    }

static const field_t cost_fields[] = {
    NUM("usd_per_hour", F_F64, T(usd_per_hour), 0, 1e6),
    NUM("usd_per_mtok_in", F_F64, T(usd_per_mtok_in), 0, 1e6),
    NUM("usd_per_mtok_out", F_F64, T(usd_per_mtok_out), 0, 1e6),
    NUM("tokens_per_second", F_F64, T(tokens_per_second), 0.001, 1e9),
    END,
};

static const field_t breaker_fields[] = {
    NUM("failures", F_U32, T(breaker.failures), 1, 1e6),
    NUM("error_rate", F_F64, T(breaker.error_rate), 0.01, 1),
    NUM("window", F_U32, T(breaker.window), 1, 1e6),
    NUM("open_ms", F_U32, T(breaker.open_ms), 1, 3.6e6),
    END,
};

static const field_t tier_speculative_fields[] = {
    STR("verifier", T(spec_verifier)),
    STR("draft_max", T(spec_draft_max)),
    END,
};

static const field_t tier_fields[] = {
    ENUM("kind", T(kind), kind_names),
    STR("model", T(model)),
    STR("tokenizer", T(tokenizer)),
    STR("version", T(version)),
    STR("base_url", T(base_url)),
    STR("api_key_env", T(api_key_env)),
    STR("base_url_env", T(base_url_env)),
    ENUM("privacy", T(privacy), privacy_names),
    {"role", F_ENUM, T(role), 0, 0, role_names, NULL, T(role_set)},
    NUM("max_concurrency", F_U32, T(max_concurrency), 1, 100000),
    NUM("max_queue", F_U32, T(max_queue), 0, 1000000),
    {"cost", F_MAP, 0, 0, 0, NULL, cost_fields, 0},
    NUM("connect_timeout_ms", F_U32, T(connect_timeout_ms), 1, 3.6e6),
    NUM("timeout_ms", F_U32, T(timeout_ms), 1, 3.6e6),
    NUM("ttft_timeout_ms", F_U32, T(ttft_timeout_ms), 0, 3.6e6),
    NUM("retries", F_U32, T(retries), 0, 10),
    NUM("retry_backoff_ms", F_U32, T(retry_backoff_ms), 0, 60000),
    MAP("breaker", breaker_fields),
    NUM("threads", F_U32, T(threads), 1, 256),
    NUM("context", F_U32, T(context), 0, 1 << 24),
    NUM("logprobs", F_BOOL, T(logprobs), 0, 0),
    {"capabilities", F_CAPS, T(caps), 0, 0, NULL, NULL, T(caps_set)},
    NUM("max_context", F_U32, T(max_context), 0, 1 << 24),
    MAP("speculative", tier_speculative_fields),
    STR("draft", T(draft)),
    NUM("draft_max", F_U32, T(draft_max), 1, 32),
    END,
};

static const field_t limits_fields[] = {
    NUM("max_body_bytes", F_SIZE, C(max_body_bytes), 1024, 1 << 30),
    NUM("max_header_bytes", F_SIZE, C(max_header_bytes), 1024, 1 << 20),
    NUM("header_timeout_ms", F_U32, C(header_timeout_ms), 1, 3.6e6),
    NUM("idle_timeout_ms", F_U32, C(idle_timeout_ms), 1, 3.6e6),
    NUM("body_timeout_ms", F_U32, C(body_timeout_ms), 1, 3.6e6),
    NUM("body_min_rate", F_U32, C(body_min_rate), 0, 1e9),
    NUM("drain_ms", F_U32, C(drain_ms), 0, 3.6e6),
    END,
};

static const field_t budget_fields[] = {
    NUM("cloud_above", F_U32, R(cloud_above_tokens), 0, 1 << 24),
    END,
};

static const field_t escalation_fields[] = {
    NUM("enabled", F_BOOL, R(escalation_enabled), 0, 0),
    NUM("min_confidence", F_F32, R(escalation_min_confidence), 0, 1),
    END,
};

static const field_t bandit_fields[] = {
    ENUM("algorithm", R(bandit.algo), bandit_algo_names),
    NUM("alpha", F_F64, R(bandit.alpha), 0, 100),
    NUM("v", F_F64, R(bandit.v), 0, 100),
    NUM("ridge", F_F64, R(bandit.ridge), 1e-6, 1e6),
    NUM("explore", F_BOOL, R(bandit.explore), 0, 0),
    NUM("lambda", F_F64, C(bandit_lambda), 0, 1e9),
    NUM("mu", F_F64, C(bandit_mu), 0, 1e6),
    END,
};

/* routing.pii is handled by hand (its "types" mapping has entity-type keys). */
static const field_t routing_fields[] = {
    MAP("token_budget", budget_fields),
    ENUM("policy", R(policy), policy_names),
    STR("model", C(router_model)),
    STR("classifier", C(classifier_model)),
    MAP("bandit", bandit_fields),
    NUM("threshold", F_F32, R(policy_threshold), -1, 1),
    MAP("escalation", escalation_fields),
    STR("reference_tier", C(reference_tier)),
    END,
};

static const field_t drift_fields[] = {
    NUM("min_requests", F_U32, C(drift.min_requests), 1, 1e9),
    NUM("escalation_rate", F_F64, C(drift.escalation_rate), 0, 1),
    NUM("confidence", F_F64, C(drift.confidence), 0, 1),
    NUM("error_rate", F_F64, C(drift.error_rate), 0, 1),
    NUM("cost_per_request", F_F64, C(drift.cost_per_request), 0, 1000),
    NUM("interval_s", F_U32, C(drift.interval_s), 0, 86400),
    END,
};

static const field_t telemetry_fields[] = {
    STR("otlp_endpoint", C(telemetry.otlp_endpoint)),
    STR("service_name", C(telemetry.service_name)),
    NUM("queue", F_U32, C(telemetry.queue), 1, 1000000),
    NUM("batch", F_U32, C(telemetry.batch), 1, 10000),
    NUM("interval_ms", F_U32, C(telemetry.interval_ms), 1, 3.6e6),
    NUM("timeout_ms", F_U32, C(telemetry.timeout_ms), 1, 3.6e6),
    END,
};

static const field_t top_fields[] = {
    {"listen", F_LISTEN, 0, 0, 0, NULL, NULL, 0},
    NUM("workers", F_U32, C(workers), 1, 256),
    STR("store", C(store)),
    STR("log_level", C(log_level)),
    ENUM("forward_unknown", C(forward_unknown), forward_unknown_names),
    MAP("limits", limits_fields),
    STR("ledger_journal", C(ledger_journal)),
    NUM("ledger_fsync", F_BOOL, C(ledger_fsync), 0, 0),
    MAP("drift", drift_fields),
    MAP("telemetry", telemetry_fields),
    END,
};

/* ----------------------------------------------------------- helpers ---- */

static void fail(walk_t *w, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    if (w->failed) return;
    w->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(w->err, w->errlen, "%s: %s, line %lu: %s", w->file, path,
             n ? (unsigned long)n->start_mark.line + 1 : 0ul, msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void join(char *out, size_t n, const char *base, const char *key)
{
    if (base && *base)
        snprintf(out, n, "%s.%s", base, key);
    else
        snprintf(out, n, "%s", key);
}

static int parse_double(const char *s, double *v)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return (*end || errno || !isfinite(*v)) ? -1 : 0;
}

static int parse_bool(const char *s, bool *v)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) return *v = true, 0;
    if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) return *v = false, 0;
    return -1;
}

static void set_str(char **dst, const char *s)
{
    mem_free(*dst);
    *dst = mem_strdup(s);
}

static int parse_listen(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || p < 0 || p > 65535) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') h++, hl -= 2;
    mem_free(*host);
    *host = mem_strndup(h, hl);
    *port = (int)p;
    return 0;
}

/* Reads one scalar value into base+f->off according to its type. */
static void read_value(walk_t *w, const field_t *f, const yaml_node_t *v, const char *path,
                       void *base)
{
    char *p = (char *)base + f->off;
    const char *s = scalar(v);
    if (f->type != F_MAP && !s) {
        fail(w, v, path, "expected a single value, got a %s",
             v->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return;
    }
    double d;
    switch (f->type) {
    case F_STR:
        set_str((char **)p, s);
        break;
    case F_U32:
    case F_SIZE:
        if (parse_double(s, &d) || d != floor(d)) {
            fail(w, v, path, "expected an integer, got '%s'", s);
            return;
        }
        if (d < f->min || d > f->max) {
            fail(w, v, path, "%s is out of range [%.0f, %.0f]", s, f->min, f->max);
            return;
        }
        if (f->type == F_U32)
            *(uint32_t *)p = (uint32_t)d;
        else
            *(size_t *)p = (size_t)d;
        break;
    case F_F64:
    case F_F32:
        if (parse_double(s, &d)) {
            fail(w, v, path, "expected a number, got '%s'", s);
            return;
        }
        if (d < f->min || d > f->max) {
            fail(w, v, path, "%s is out of range [%g, %g]", s, f->min, f->max);
            return;
        }
        if (f->type == F_F64)
            *(double *)p = d;
        else
            *(float *)p = (float)d;
        break;
    case F_BOOL:
        if (parse_bool(s, (bool *)p)) fail(w, v, path, "expected true or false, got '%s'", s);
        break;
    case F_ENUM: {
        for (int i = 0; f->names[i]; i++)
            if (!strcmp(s, f->names[i])) {
                *(int *)p = i;
                if (f->set_off) *((bool *)base + f->set_off) = true;
                return;
            }
        char opts[128] = "";
        for (int i = 0; f->names[i]; i++) {
            if (i) strncat(opts, ", ", sizeof opts - strlen(opts) - 1);
            strncat(opts, f->names[i], sizeof opts - strlen(opts) - 1);
        }
        fail(w, v, path, "'%s' is not one of: %s", s, opts);
        break;
    }
    default:
        break;
    }
}

static void walk_map(walk_t *w, const yaml_node_t *map, const field_t *fields, const char *path,
                     void *base);

/* Reads a list of capability names ("[tools, json]", "[]" for none) into a bitmask. */
static void read_caps(walk_t *w, const field_t *f, const yaml_node_t *v, const char *path,
                      void *base)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        fail(w, v, path, "expected a list of capabilities, e.g. [tools, json, vision]");
        return;
    }
    uint32_t caps = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *n = yaml_document_get_node(w->doc, *it);
        const char *s = scalar(n);
        route_cap_t c;
        if (!s || route_cap_parse(s, &c)) {
            char opts[96];
            route_caps_names(ROUTE_CAPS_ALL, ", ", opts, sizeof opts);
            fail(w, n, path, "'%s' is not one of: %s", s ? s : "(not a name)", opts);
            return;
        }
        caps |= 1u << c;
    }
    *(uint32_t *)((char *)base + f->off) = caps;
    *((bool *)base + f->set_off) = true;
}

static void walk_pair(walk_t *w, const yaml_node_t *k, const yaml_node_t *v, const field_t *fields,
                      const char *path, void *base)
{
    const char *key = scalar(k);
    char sub[256];
    if (!key) {
        fail(w, k, path, "keys must be plain names");
        return;
    }
    join(sub, sizeof sub, path, key);
    for (const field_t *f = fields; f->key; f++) {
        if (strcmp(f->key, key)) continue;
        if (f->type == F_MAP) {
            walk_map(w, v, f->sub, sub, base);
        } else if (f->type == F_CAPS) {
            read_caps(w, f, v, sub, base);
        } else if (f->type == F_LISTEN) {
            config_t *c = base;
            const char *s = scalar(v);
            if (!s || parse_listen(s, &c->listen_host, &c->listen_port))
                fail(w, v, sub, "expected HOST:PORT, got '%s'", s ? s : "(not a value)");
        } else {
            read_value(w, f, v, sub, base);
        }
        return;
    }
    fail(w, k, sub, "unknown key");
}

static void walk_map(walk_t *w, const yaml_node_t *map, const field_t *fields, const char *path,
                     void *base)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(w, map, path, "expected a mapping of keys");
        return;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top && !w->failed; pr++)
        walk_pair(w, yaml_document_get_node(w->doc, pr->key),
                  yaml_document_get_node(w->doc, pr->value), fields, path, base);
}

/* --------------------------------------------------------- sections ---- */

static void tier_defaults(config_tier_t *t)
{
    memset(t, 0, sizeof *t);
    t->model = mem_strdup("");
    t->tokenizer = mem_strdup("");
    t->draft = mem_strdup("");
    t->version = mem_strdup("");
    t->base_url = mem_strdup("");
    t->api_key_env = mem_strdup("");
    t->base_url_env = mem_strdup("");
    t->spec_verifier = mem_strdup("");
    t->spec_draft_max = mem_strdup("");
    t->spec_verifier_idx = -1;
    t->privacy = ROUTE_PRIVACY_EXTERNAL;
    t->max_concurrency = 64;
    t->max_queue = 256;
    t->connect_timeout_ms = 2000;
    t->timeout_ms = 60000;
    t->ttft_timeout_ms = 10000;
    t->retries = 1;
    t->retry_backoff_ms = 50;
    t->breaker = (config_breaker_t){5, 0.5, 20, 5000};
    t->threads = 1;
    t->context = 0;
    t->tokens_per_second = 50;
}

static const yaml_node_t *map_get(walk_t *w, const yaml_node_t *map, const char *key)
{
    if (map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        const char *k = scalar(yaml_document_get_node(w->doc, pr->key));
        if (k && !strcmp(k, key)) return yaml_document_get_node(w->doc, pr->value);
    }
    return NULL;
}

/* tiers.X.speculative: only on a local tier, a verifier named, draft_max "auto" or
 * 1..CONFIG_SPEC_MAX_DRAFT (default auto). The verifier itself is checked once every
 * tier is known (check_speculative). */
static void walk_tier_speculative(walk_t *w, config_tier_t *t, const yaml_node_t *v,
                                  const char *path)
{
    const yaml_node_t *sp = map_get(w, v, "speculative");
    if (!sp) return;
    char sub[192];
    snprintf(sub, sizeof sub, "%s.speculative", path);
    if (t->kind != CONFIG_TIER_LOCAL) {
        fail(w, sp, sub,
             "only a local tier drafts (speculative decoding needs the draft model in-process)");
        return;
    }
    if (*t->draft) {
        fail(w, sp, sub,
             "a tier drafts either for itself (draft) or for another tier (speculative), not "
             "both");
        return;
    }
    const yaml_node_t *vn = map_get(w, sp, "verifier");
    const yaml_node_t *dn = map_get(w, sp, "draft_max");
    if (!vn || !*t->spec_verifier) {
        fail(w, vn ? vn : sp, sub, "missing key 'verifier' (the tier that checks the drafts)");
        return;
    }
    t->spec_verifier_line = (int)vn->start_mark.line + 1;
    t->spec_draft_max_line = dn ? (int)dn->start_mark.line + 1 : t->spec_verifier_line;
    const char *dm = t->spec_draft_max;
    if (!*dm || !strcmp(dm, "auto")) {
        t->spec_draft_max_n = 0;
        return;
    }
    char *end;
    long k = strtol(dm, &end, 10);
    snprintf(sub, sizeof sub, "%s.speculative.draft_max", path);
    if (*end || end == dm || k < 1 || k > CONFIG_SPEC_MAX_DRAFT)
        fail(w, dn, sub, "'%s' is neither auto nor a number of tokens in [1, %d]", dm,
             CONFIG_SPEC_MAX_DRAFT);
    else
        t->spec_draft_max_n = (uint32_t)k;
}

static void walk_tiers(walk_t *w, config_t *c, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(w, map, "tiers", "expected a mapping of tier name to settings");
        return;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top && !w->failed; pr++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *name = scalar(k);
        char path[160];
        snprintf(path, sizeof path, "tiers.%s", name ? name : "?");
        if (!name || !*name || strlen(name) > 48 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_-.") != strlen(name)) {
            fail(w, k, path, "tier names are 1-48 letters, digits, '_', '-' or '.'");
            return;
        }
        if (config_tier_find(c, name) >= 0) {
            fail(w, k, path, "tier defined twice");
            return;
        }
        if (c->n_tiers == ROUTE_MAX_TIERS) {
            fail(w, k, path, "at most %d tiers", ROUTE_MAX_TIERS);
            return;
        }
        config_tier_t *t = &c->tiers[c->n_tiers++];
        tier_defaults(t);
        t->name = mem_strdup(name);
        t->line = (int)k->start_mark.line + 1;
        walk_map(w, v, tier_fields, path, t);
        if (w->failed) return;
        if (!map_get(w, v, "kind")) {
            fail(w, v, path, "missing key 'kind' (openai, anthropic or local)");
            return;
        }
        /* draft: in-process speculative decoding; the file is checked by serve --check
         * and when the tier opens (it must share the model's vocabulary and be smaller) */
        if (t->kind != CONFIG_TIER_LOCAL && map_get(w, v, "draft")) {
            char sub[192];
            snprintf(sub, sizeof sub, "%s.draft", path);
            fail(w, map_get(w, v, "draft"), sub,
                 "'draft' is a key of local tiers (the in-process engine drafts)");
            return;
        }
        if (map_get(w, v, "draft_max") && !*t->draft) {
            char sub[192];
            snprintf(sub, sizeof sub, "%s.draft_max", path);
            fail(w, map_get(w, v, "draft_max"), sub, "'draft_max' needs 'draft' (a model file)");
            return;
        }
        if (t->kind != CONFIG_TIER_LOCAL) {
            if (!*t->base_url && !*t->base_url_env)
                fail(w, v, path, "missing key 'base_url' or 'base_url_env' (kind openai)");
            else if (*t->base_url && strncmp(t->base_url, "http://", 7) &&
                     strncmp(t->base_url, "https://", 8))
                fail(w, map_get(w, v, "base_url"), path,
                     "base_url must start with http:// or https://");
            else if (!*t->model)
                fail(w, v, path, "missing key 'model' (the upstream model name)");
        } else {
            if (!*t->model) fail(w, v, path, "missing key 'model' (a GGUF or llama2.c model file)");
            if (!map_get(w, v, "privacy")) t->privacy = ROUTE_PRIVACY_ON_DEVICE;
            t->logprobs = true;
            if (!t->max_context) t->max_context = t->context;
        }
        /* An OpenAI-compatible upstream is taken to serve every capability unless the
         * list says otherwise; the in-process engine serves none of them today (it
         * answers text from text: no tools, no response_format, no images or audio). */
        /* A local tier decodes JSON, JSON Schema and tool calls under its grammar
         * (docs/engine.md); images and audio it does not do. */
        /* Continuing a partial answer: the local engine and Anthropic's prefill do it;
         * an OpenAI-compatible server declares it (vLLM, switchyard: continue_final_message),
         * since OpenAI's own API does not. */
        if (!t->caps_set)
            t->caps = t->kind == CONFIG_TIER_OPENAI
                          ? ROUTE_CAPS_ALL & ~(1u << ROUTE_CAP_CONTINUE)
                          : 1u << ROUTE_CAP_JSON | 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_CONTINUE;
        /* The Messages API takes tools and images; no response_format, audio or
         * embeddings. */
        if (!t->caps_set && t->kind == CONFIG_TIER_ANTHROPIC)
            t->caps = 1u << ROUTE_CAP_TOOLS | 1u << ROUTE_CAP_VISION | 1u << ROUTE_CAP_CONTINUE;
        /* The in-process engine computes no embeddings: declaring them would route
         * POST /v1/embeddings to a tier that can only fail it. */
        if (t->kind == CONFIG_TIER_LOCAL && (t->caps & (1u << ROUTE_CAP_EMBEDDINGS))) {
            char sub[192];
            snprintf(sub, sizeof sub, "%s.capabilities", path);
            fail(w, map_get(w, v, "capabilities"), sub,
                 "a local tier cannot declare 'embeddings' (the in-process engine does not "
                 "compute them)");
        }
        if (!t->role_set)
            t->role = t->privacy == ROUTE_PRIVACY_EXTERNAL ? ROUTE_ROLE_CLOUD : ROUTE_ROLE_EDGE;
        walk_tier_speculative(w, t, v, path);
    }
}

static void walk_pii(walk_t *w, config_t *c, const yaml_node_t *map)
{
    bool unknown_set = false;
    if (map->type != YAML_MAPPING_NODE) {
        fail(w, map, "routing.pii", "expected a mapping");
        return;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top && !w->failed; pr++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *key = scalar(k);
        const char *s = scalar(v);
        char path[160];
        snprintf(path, sizeof path, "routing.pii.%s", key ? key : "?");
        if (key && !strcmp(key, "action")) {
            int a = 0;
            field_t f = ENUM("action", 0, pii_action_names);
            read_value(w, &f, v, path, &a);
            if (!w->failed)
                for (int i = 0; i < PII_TYPE_COUNT; i++)
                    c->route.pii_action[i] = a;
        } else if (key && !strcmp(key, "min_score")) {
            field_t f = NUM("min_score", F_F32, R(pii_min_score), 0, 1);
            read_value(w, &f, v, path, c);
        } else if (key && !strcmp(key, "labeller")) {
            bool b = false;
            if (!s || parse_bool(s, &b))
                fail(w, v, path, "expected true or false");
            else
                c->pii_labeller = b;
        } else if (key && !strcmp(key, "names_dir")) {
            if (!s)
                fail(w, v, path, "expected a folder path");
            else
                set_str(&c->pii_names_dir, s);
        } else if (key && !strcmp(key, "types")) {
            if (v->type != YAML_MAPPING_NODE) {
                fail(w, v, path, "expected a mapping of entity type to action");
                return;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
                 q < v->data.mapping.pairs.top && !w->failed; q++) {
                const yaml_node_t *tk = yaml_document_get_node(w->doc, q->key);
                const yaml_node_t *tv = yaml_document_get_node(w->doc, q->value);
                const char *tname = scalar(tk);
                char tp[200];
                snprintf(tp, sizeof tp, "%s.%s", path, tname ? tname : "?");
                pii_type_t ty;
                if (!tname || pii_type_parse(tname, &ty)) {
                    fail(w, tk, tp,
                         "unknown entity type (e.g. EMAIL_ADDRESS, PERSON, CREDIT_CARD)");
                    return;
                }
                int a = 0;
                field_t f = ENUM("action", 0, pii_action_names);
                read_value(w, &f, tv, tp, &a);
                if (!w->failed && ty == PII_UNKNOWN && a != ROUTE_PII_LOCAL_ONLY &&
                    a != ROUTE_PII_BLOCK) {
                    fail(w, tv, tp,
                         "UNKNOWN (findings past a scan limit) fails closed: "
                         "local_only or block");
                    return;
                }
                c->route.pii_action[ty] = a;
                if (ty == PII_UNKNOWN) unknown_set = true;
            }
        } else {
            fail(w, k, path, "unknown key");
        }
    }
    /* Findings past a scan limit are of unknown type: unless configured, they are
     * refused when any type is blocked (any of them may be that type), else kept
     * local. */
    if (!unknown_set) {
        bool any_block = false;
        for (int t = 0; t < PII_UNKNOWN; t++)
            any_block |= c->route.pii_action[t] == ROUTE_PII_BLOCK;
        c->route.pii_action[PII_UNKNOWN] = any_block ? ROUTE_PII_BLOCK : ROUTE_PII_LOCAL_ONLY;
    }
}

/* ------------------------------------------------------------- auth ---- */

static const char *const period_names[] = {"day", "week", "month", "total", NULL};

#define K(f) offsetof(config_key_t, f)
static const field_t key_fields[] = {
    STR("name", K(name)),
    STR("key_env", K(key_env)),
    STR("key_sha256", K(key_sha256)),
    STR("team", K(team)),
    STR("tenant", K(tenant)),
    NUM("budget_usd", F_F64, K(budget_usd), 0, 1e12),
    ENUM("budget_period", K(budget_period), period_names),
    NUM("rpm", F_U32, K(rpm), 1, 1e9),
    NUM("tpm", F_U32, K(tpm), 1, 4e9),
    END,
};

/* Resolves a key given as an env var or a hex SHA-256 into its digest. Exactly
 * one of the two must be set; path and node name the place for errors. */
static void key_digest(walk_t *w, const yaml_node_t *n, const char *path, const char *env_key,
                       const char *env, const char *hex_key, const char *hex, uint8_t out[32])
{
    if (*env && *hex) {
        fail(w, n, path, "give %s or %s, not both", env_key, hex_key);
    } else if (*env) {
        const char *v = getenv(env);
        if (!v || !*v)
            fail(w, n, path, "%s: environment variable %s is not set", env_key, env);
        else
            auth_digest(v, strlen(v), out);
    } else if (*hex) {
        if (strlen(hex) != 64 || auth_hex_decode(hex, out, 32))
            fail(w, n, path, "%s: expected 64 hex digits (sha256sum of the key)", hex_key);
    } else {
        fail(w, n, path, "missing key '%s' or '%s'", env_key, hex_key);
    }
}

static void walk_auth(walk_t *w, config_t *c, const yaml_node_t *map)
{
    config_auth_t *a = &c->auth;
    a->enabled = true;
    if (map->type != YAML_MAPPING_NODE) {
        fail(w, map, "auth", "expected a mapping (admin_key_env, keys)");
        return;
    }
    const yaml_node_t *keys = NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top && !w->failed; pr++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *key = scalar(k);
        char path[64];
        snprintf(path, sizeof path, "auth.%s", key ? key : "?");
        if (key && !strcmp(key, "admin_key_env")) {
            field_t f = STR("admin_key_env", offsetof(config_auth_t, admin_key_env));
            read_value(w, &f, v, path, a);
        } else if (key && !strcmp(key, "admin_key_sha256")) {
            field_t f = STR("admin_key_sha256", offsetof(config_auth_t, admin_key_sha256));
            read_value(w, &f, v, path, a);
        } else if (key && !strcmp(key, "keys")) {
            keys = v;
        } else {
            fail(w, k, path, "unknown key (admin_key_env, admin_key_sha256, keys)");
        }
    }
    if (w->failed) return;
    if (*a->admin_key_env || *a->admin_key_sha256) {
        key_digest(w, map, "auth", "admin_key_env", a->admin_key_env, "admin_key_sha256",
                   a->admin_key_sha256, a->admin_digest);
        a->admin_set = !w->failed;
    }
    if (!keys || w->failed) return;
    if (keys->type != YAML_SEQUENCE_NODE) {
        fail(w, keys, "auth.keys", "expected a list of keys ({ name, key_env, team, ... })");
        return;
    }
    size_t n = (size_t)(keys->data.sequence.items.top - keys->data.sequence.items.start);
    if (n > CONFIG_MAX_KEYS) {
        fail(w, keys, "auth.keys", "at most %d keys", CONFIG_MAX_KEYS);
        return;
    }
    a->keys = mem_calloc(n ? n : 1, sizeof *a->keys);
    for (size_t i = 0; i < n && !w->failed; i++) {
        const yaml_node_t *v = yaml_document_get_node(w->doc, keys->data.sequence.items.start[i]);
        config_key_t *k = &a->keys[a->n_keys++];
        k->name = mem_strdup("");
        k->key_env = mem_strdup("");
        k->key_sha256 = mem_strdup("");
        k->team = mem_strdup("");
        k->tenant = mem_strdup("");
        k->budget_period = CONFIG_PERIOD_MONTH;
        k->line = (int)v->start_mark.line + 1;
        char path[64];
        snprintf(path, sizeof path, "auth.keys[%zu]", i);
        walk_map(w, v, key_fields, path, k);
        if (w->failed) return;
        if (!*k->name) {
            fail(w, v, path, "missing key 'name'");
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->keys[j].name, k->name)) {
                fail(w, v, path, "key name '%s' used twice", k->name);
                return;
            }
        k->budget_set = map_get(w, v, "budget_usd") != NULL;
        if (map_get(w, v, "budget_period") && !k->budget_set) {
            fail(w, v, path, "budget_period without budget_usd");
            return;
        }
        key_digest(w, v, path, "key_env", k->key_env, "key_sha256", k->key_sha256, k->digest);
        for (size_t j = 0; j < i && !w->failed; j++)
            if (!memcmp(a->keys[j].digest, k->digest, 32))
                fail(w, v, path, "same key as auth.keys[%zu] ('%s')", j, a->keys[j].name);
    }
}

/* ----------------------------------------------------------- models ---- */

/* models: { NAME: auto | TIER, ... } — targets are checked once tiers are known. */
static void walk_models(walk_t *w, config_t *c, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        fail(w, map, "models", "expected a mapping of model name to auto or a tier");
        return;
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top && !w->failed; pr++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        const char *name = scalar(k), *target = scalar(v);
        char path[200];
        snprintf(path, sizeof path, "models.%s", name ? name : "?");
        if (!name || !*name) {
            fail(w, k, "models", "model names must be plain, non-empty names");
        } else if (!target || !*target) {
            fail(w, v, path, "expected auto or a tier name");
        } else if (c->n_aliases == CONFIG_MAX_ALIASES) {
            fail(w, k, path, "at most %d model names", CONFIG_MAX_ALIASES);
        } else {
            for (size_t i = 0; i < c->n_aliases; i++)
                if (!strcmp(c->aliases[i].name, name)) {
                    fail(w, k, path, "model name given twice");
                    return;
                }
            config_alias_t *a = &c->aliases[c->n_aliases++];
            a->name = mem_strdup(name);
            a->target = mem_strdup(target);
            a->line = (int)k->start_mark.line + 1;
        }
    }
}

/* ------------------------------------------------------------- load ---- */

static void config_defaults(config_t *c)
{
    memset(c, 0, sizeof *c);
    c->listen_host = mem_strdup("127.0.0.1");
    c->listen_port = 8080;
    c->workers = 2;
    c->store = mem_strdup("sqlite:switchyard.db");
    c->log_level = mem_strdup("info");
    c->max_body_bytes = 4 << 20;
    c->max_header_bytes = 32 << 10;
    c->header_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->body_timeout_ms = 30000;
    c->body_min_rate = 1024;
    c->drain_ms = 10000;
    route_config_defaults(&c->route);
    c->pii_names_dir = mem_strdup("");
    c->pii_labeller = true; /* routing.pii.labeller: the model, where names_dir holds one */
    c->router_model = mem_strdup("");
    c->reference_tier = mem_strdup("");
    c->classifier_model = mem_strdup("");
    c->ledger_journal = mem_strdup("");
    c->bandit_lambda = 100; /* a cent costs 1.0 of reward */
    c->bandit_mu = 0.05;
    c->auth.admin_key_env = mem_strdup("");
    c->auth.admin_key_sha256 = mem_strdup("");
    config_drift_defaults(&c->drift);
    c->telemetry.otlp_endpoint = mem_strdup("");
    c->telemetry.service_name = mem_strdup("switchyard");
    c->telemetry.queue = 4096;
    c->telemetry.batch = 256;
    c->telemetry.interval_ms = 1000;
    c->telemetry.timeout_ms = 5000;
}

/* ------------------------------------------------------ file paths ---- */

/* Resolves a relative path in *p against dir (the config file's folder, with its
 * trailing '/'); absolute paths, "" and a dir of "" are left alone. */
static void resolve_one(char **p, const char *dir)
{
    if (!**p || **p == '/' || !*dir) return;
    size_t n = strlen(dir) + strlen(*p) + 1;
    char *out = mem_alloc(n);
    snprintf(out, n, "%s%s", dir, *p);
    mem_free(*p);
    *p = out;
}

/* The line of the value at root.k1[.k2[.k3]], or 0 if absent. */
static int line_of(walk_t *w, const yaml_node_t *root, const char *k1, const char *k2,
                   const char *k3)
{
    const yaml_node_t *n = map_get(w, root, k1);
    if (n && k2) n = map_get(w, n, k2);
    if (n && k3) n = map_get(w, n, k3);
    return n ? (int)n->start_mark.line + 1 : 0;
}

/* Resolves every file path the config names from the config file's folder (a
 * config read by a service manager from /etc must not depend on its cwd) and
 * records the line of each key for the file checks of serve --check. */
static void resolve_paths(walk_t *w, config_t *c, const yaml_node_t *root)
{
    const char *slash = strrchr(w->file, '/');
    char *dir = slash ? mem_strndup(w->file, (size_t)(slash - w->file) + 1) : mem_strdup("");
    for (size_t i = 0; i < c->n_tiers; i++) {
        config_tier_t *t = &c->tiers[i];
        t->model_line = line_of(w, root, "tiers", t->name, "model");
        t->tokenizer_line = line_of(w, root, "tiers", t->name, "tokenizer");
        t->draft_line = line_of(w, root, "tiers", t->name, "draft");
        if (t->kind != CONFIG_TIER_LOCAL) continue; /* an upstream's model is a name */
        resolve_one(&t->model, dir);
        resolve_one(&t->tokenizer, dir);
        resolve_one(&t->draft, dir);
    }
    c->pii_names_dir_line = line_of(w, root, "routing", "pii", "names_dir");
    c->router_model_line = line_of(w, root, "routing", "model", NULL);
    c->classifier_model_line = line_of(w, root, "routing", "classifier", NULL);
    c->store_line = line_of(w, root, "store", NULL, NULL);
    resolve_one(&c->pii_names_dir, dir);
    resolve_one(&c->router_model, dir);
    resolve_one(&c->classifier_model, dir);
    if (!strncmp(c->store, "sqlite:", 7) && strcmp(c->store, "sqlite::memory:") &&
        strncmp(c->store, "sqlite://", 9)) {
        char *p = mem_strdup(c->store + 7);
        resolve_one(&p, dir);
        size_t n = strlen(p) + 8;
        mem_free(c->store);
        c->store = mem_alloc(n);
        snprintf(c->store, n, "sqlite:%s", p);
        mem_free(p);
    }
    if (!*c->ledger_journal) { /* beside a sqlite file, else in the config's folder */
        bool file = !strncmp(c->store, "sqlite:", 7) && strcmp(c->store, "sqlite::memory:");
        size_t n = strlen(c->store) + 32;
        mem_free(c->ledger_journal);
        c->ledger_journal = mem_alloc(n);
        snprintf(c->ledger_journal, n, "%s", file ? c->store + 7 : "");
        if (!file) snprintf(c->ledger_journal, n, "%sswitchyard", dir);
        strcat(c->ledger_journal, ".journal");
    } else {
        resolve_one(&c->ledger_journal, dir);
    }
    mem_free(dir);
}

static int load_doc(config_t *c, yaml_document_t *doc, const char *name, char *err, size_t errlen)
{
    walk_t w = {doc, name, err, errlen, 0};
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) {
        snprintf(err, errlen, "%s: the file is empty", name);
        return SY_ECONFIG;
    }
    if (root->type != YAML_MAPPING_NODE) {
        fail(&w, root, "(top)", "expected a mapping of keys");
        return SY_ECONFIG;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top && !w.failed; pr++) {
        const yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        const char *key = scalar(k);
        if (key && !strcmp(key, "tiers")) {
            walk_tiers(&w, c, v);
        } else if (key && !strcmp(key, "auth")) {
            walk_auth(&w, c, v);
        } else if (key && !strcmp(key, "models")) {
            walk_models(&w, c, v);
        } else if (key && !strcmp(key, "routing")) {
            if (v->type != YAML_MAPPING_NODE) {
                fail(&w, v, "routing", "expected a mapping");
                break;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
                 q < v->data.mapping.pairs.top && !w.failed; q++) {
                const yaml_node_t *rk = yaml_document_get_node(doc, q->key);
                const yaml_node_t *rv = yaml_document_get_node(doc, q->value);
                const char *rkey = scalar(rk);
                if (rkey && !strcmp(rkey, "pii"))
                    walk_pii(&w, c, rv);
                else if (rkey && !strcmp(rkey, "speculative"))
                    fail(&w, rk, "routing.speculative",
                         "speculative decoding is set on the drafting local tier: "
                         "tiers.<name>.speculative: {verifier: <tier>, draft_max: N | auto}");
                else
                    walk_pair(&w, rk, rv, routing_fields, "routing", c);
            }
        } else {
            walk_pair(&w, k, v, top_fields, "", c);
        }
    }
    if (w.failed) return SY_ECONFIG;
    resolve_paths(&w, c, root);
    log_level_t lvl;
    if (log_level_parse(c->log_level, &lvl)) {
        snprintf(err, errlen, "%s: log_level: '%s' is not one of debug, info, warn, error, off",
                 name, c->log_level);
        return SY_ECONFIG;
    }
    if (c->n_tiers == 0) {
        snprintf(err, errlen, "%s: tiers: at least one tier is required", name);
        return SY_ECONFIG;
    }
    for (size_t i = 0; i < c->n_aliases; i++) {
        const config_alias_t *a = &c->aliases[i];
        if (!strcmp(a->name, "auto") || config_tier_find(c, a->name) >= 0 ||
            !strncmp(a->name, "switchyard/", 11)) {
            snprintf(err, errlen,
                     "%s: models.%s, line %d: '%s' already names auto or a tier and cannot be "
                     "an alias",
                     name, a->name, a->line, a->name);
            return SY_ECONFIG;
        }
        if (strcmp(a->target, "auto") && config_tier_find(c, a->target) < 0) {
            snprintf(err, errlen, "%s: models.%s, line %d: '%s' is neither auto nor a tier", name,
                     a->name, a->line, a->target);
            return SY_ECONFIG;
        }
    }
    for (size_t i = 0; i < c->n_tiers; i++) {
        config_tier_t *t = &c->tiers[i];
        if (!*t->spec_verifier) continue;
        int v = config_tier_find(c, t->spec_verifier);
        const char *why = v < 0         ? "no tier has this name"
                          : v == (int)i ? "a tier cannot verify itself"
                          : c->tiers[v].kind != CONFIG_TIER_OPENAI
                              ? "the verifier must be of kind openai (an OpenAI-compatible server "
                                "answering /v1/completions with prompt logprobs, such as another "
                                "switchyard whose local tier holds the target model)"
                              : NULL;
        if (why) {
            snprintf(err, errlen, "%s: tiers.%s.speculative.verifier, line %d: '%s': %s", name,
                     t->name, t->spec_verifier_line, t->spec_verifier, why);
            return SY_ECONFIG;
        }
        t->spec_verifier_idx = v;
    }
    if (*c->reference_tier && config_tier_find(c, c->reference_tier) < 0) {
        snprintf(err, errlen, "%s: routing.reference_tier: no tier named '%s'", name,
                 c->reference_tier);
        return SY_ECONFIG;
    }
    if (*c->telemetry.otlp_endpoint && strncmp(c->telemetry.otlp_endpoint, "http://", 7)) {
        snprintf(err, errlen,
                 "%s: telemetry.otlp_endpoint: '%s' must be http://host:port[/path] (OTLP/HTTP;"
                 " put a local collector in front for TLS)",
                 name, c->telemetry.otlp_endpoint);
        return SY_ECONFIG;
    }
    if (!*c->telemetry.service_name) {
        snprintf(err, errlen, "%s: telemetry.service_name: must not be empty", name);
        return SY_ECONFIG;
    }
    if (strncmp(c->store, "sqlite:", 7) && strncmp(c->store, "postgresql://", 13) &&
        strncmp(c->store, "postgres://", 11)) {
        snprintf(err, errlen, "%s: store: '%s' must be sqlite:PATH or postgresql://...", name,
                 c->store);
        return SY_ECONFIG;
    }
    return 0;
}

int config_load_string(config_t *c, const char *text, size_t len, const char *name, char *err,
                       size_t errlen)
{
    config_defaults(c);
    c->path = mem_strdup(name);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise the YAML parser", name);
        return SY_ECONFIG;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: line %lu: YAML syntax error: %s", name,
                 (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "unknown");
        rc = SY_ECONFIG;
    } else {
        rc = load_doc(c, &doc, name, err, errlen);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int config_load(config_t *c, const char *path, char *err, size_t errlen)
{
    buf_t text;
    buf_init(&text, 8u << 20);
    int rc = buf_read_file(&text, path);
    if (rc) {
        buf_deinit(&text);
        config_defaults(c);
        if (rc == SY_ETOOBIG)
            snprintf(err, errlen, "%s: larger than 8 MiB: not a config file", path);
        else
            snprintf(err, errlen, "%s: cannot %s: %s", path, rc == SY_EIO ? "read" : "open",
                     sy_strerror(rc));
        return rc == SY_ETOOBIG ? SY_ECONFIG : rc;
    }
    rc = config_load_string(c, text.data ? text.data : "", text.len, path, err, errlen);
    buf_deinit(&text);
    return rc;
}

void config_deinit(config_t *c)
{
    for (size_t i = 0; i < c->n_tiers; i++) {
        config_tier_t *t = &c->tiers[i];
        mem_free(t->name);
        mem_free(t->model);
        mem_free(t->tokenizer);
        mem_free(t->draft);
        mem_free(t->version);
        mem_free(t->base_url);
        mem_free(t->api_key_env);
        mem_free(t->base_url_env);
        mem_free(t->spec_verifier);
        mem_free(t->spec_draft_max);
    }
    mem_free(c->path);
    mem_free(c->listen_host);
    mem_free(c->store);
    mem_free(c->log_level);
    mem_free(c->pii_names_dir);
    mem_free(c->router_model);
    mem_free(c->reference_tier);
    mem_free(c->classifier_model);
    for (size_t i = 0; i < c->auth.n_keys; i++) {
        config_key_t *k = &c->auth.keys[i];
        mem_free(k->name);
        mem_free(k->key_env);
        mem_free(k->key_sha256);
        mem_free(k->team);
        mem_free(k->tenant);
    }
    mem_free(c->auth.keys);
    for (size_t i = 0; i < c->n_aliases; i++) {
        mem_free(c->aliases[i].name);
        mem_free(c->aliases[i].target);
    }
    mem_free(c->auth.admin_key_env);
    mem_free(c->auth.admin_key_sha256);
    mem_free(c->ledger_journal);
    mem_free(c->telemetry.otlp_endpoint);
    mem_free(c->telemetry.service_name);
    memset(c, 0, sizeof *c);
}

void config_drift_defaults(config_drift_t *d)
{
    *d = (config_drift_t){.min_requests = 200,
                          .escalation_rate = 0.1,
                          .confidence = 0.1,
                          .error_rate = 0.05,
                          .cost_per_request = 0.25,
                          .interval_s = 60};
}

int config_tier_find(const config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_tiers; i++)
        if (!strcmp(c->tiers[i].name, name)) return (int)i;
    return -1;
}
