/* decide.c — the one decision path: request + session state -> route input ->
 * router_decide(), and what the client is answered for the decision (decide.h). */
#include "api/decide.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonw.h"

/* ------------------------------------------------------------------ tiers --- */

void api_tier_settings(const config_tier_t *ct, tier_settings_t *out)
{
    *out = (tier_settings_t){
        .name = ct->name,
        .kind = ct->kind == CONFIG_TIER_LOCAL       ? TIER_KIND_LOCAL
                : ct->kind == CONFIG_TIER_ANTHROPIC ? TIER_KIND_ANTHROPIC
                                                    : TIER_KIND_OPENAI,
        .model = ct->model,
        .tokenizer = *ct->tokenizer ? ct->tokenizer : NULL,
        .draft = *ct->draft ? ct->draft : NULL,
        .draft_max = ct->draft_max,
        .threads = ct->threads,
        .version = ct->version,
        .privacy = ct->privacy,
        .role = ct->role,
        .max_concurrency = ct->max_concurrency,
        .max_queue = ct->max_queue,
        .usd_per_hour = ct->usd_per_hour,
        .usd_per_mtok_in = ct->usd_per_mtok_in,
        .usd_per_mtok_out = ct->usd_per_mtok_out,
        .tokens_per_second = ct->tokens_per_second,
        .connect_timeout_ms = ct->connect_timeout_ms,
        .timeout_ms = ct->timeout_ms,
        .ttft_timeout_ms = ct->ttft_timeout_ms,
        .retries = ct->retries,
        .retry_backoff_ms = ct->retry_backoff_ms,
        .brk_failures = ct->breaker.failures,
        .brk_error_rate = ct->breaker.error_rate,
        .brk_window = ct->breaker.window,
        .brk_open_ms = ct->breaker.open_ms,
        .logprobs = ct->logprobs,
        .max_context = ct->max_context,
        .engine_context = ct->context,
        .caps = ct->caps,
        .spec_verifier = *ct->spec_verifier ? ct->spec_verifier : NULL,
        .spec_draft_max = ct->spec_draft_max_n,
    };
}

void api_tier_views(const config_t *cfg, route_tier_t out[ROUTE_MAX_TIERS])
{
    for (size_t i = 0; i < cfg->n_tiers && i < ROUTE_MAX_TIERS; i++) {
        tier_settings_t s;
        api_tier_settings(&cfg->tiers[i], &s);
        tier_settings_route_view(&s, &out[i]);
    }
}

/* --------------------------------------------------------------- request --- */

/* ==== Capabilities a request needs ==========================================
 * Read from the request body as cJSON today; when the request is typed, this
 * function reads its typed fields (tools, response_format, part kinds) instead.
 * Nothing else in the decision path looks at the body. */
uint32_t api_request_needs(const api_request_t *r)
{
    const cJSON *j = r->json;
    uint32_t needs = 0;
    if (!j) return 0;
    if (r->embeddings) return 1u << ROUTE_CAP_EMBEDDINGS;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    const cJSON *fns = cJSON_GetObjectItemCaseSensitive(j, "functions");
    if (cJSON_GetArraySize(tools) > 0 || cJSON_GetArraySize(fns) > 0)
        needs |= 1u << ROUTE_CAP_TOOLS;
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    const cJSON *rft = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (cJSON_IsString(rft) && strcmp(rft->valuestring, "text") != 0)
        needs |= 1u << ROUTE_CAP_JSON; /* json_object, json_schema */
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(j, "modalities");
    const cJSON *m;
    cJSON_ArrayForEach(m, mods)
    {
        if (cJSON_IsString(m) && !strcmp(m->valuestring, "audio")) needs |= 1u << ROUTE_CAP_AUDIO;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "audio")) needs |= 1u << ROUTE_CAP_AUDIO;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, cJSON_GetObjectItemCaseSensitive(j, "messages"))
    {
        const cJSON *part;
        cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(msg, "content"))
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
            if (!cJSON_IsString(t)) continue;
            /* A file part (a PDF) is read as pages of images by the models that take it. */
            if (!strcmp(t->valuestring, "image_url") || !strcmp(t->valuestring, "file"))
                needs |= 1u << ROUTE_CAP_VISION;
            else if (!strcmp(t->valuestring, "input_audio"))
                needs |= 1u << ROUTE_CAP_AUDIO;
        }
    }
    return needs;
}

/* The alias map's target for a model name ("auto" or a tier), or NULL. */
static const char *alias_target(const config_t *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_aliases; i++)
        if (!strcmp(cfg->aliases[i].name, model)) return cfg->aliases[i].target;
    return NULL;
}

const char *api_request_forced_tier(const config_t *cfg, const api_request_t *r)
{
    if (r->forced_tier[0]) return r->forced_tier;
    if (!strncmp(r->model, "switchyard/", 11)) return r->model + 11;
    int i = config_tier_find(cfg, r->model);
    if (i >= 0) return cfg->tiers[i].name;
    const char *a = alias_target(cfg, r->model);
    return a && strcmp(a, "auto") ? a : NULL;
}

const char *api_request_unknown_model(const config_t *cfg, const api_request_t *r)
{
    if (r->forced_tier[0] || !r->model[0] || !strcmp(r->model, "auto")) return NULL;
    if (!strncmp(r->model, "switchyard/", 11) || config_tier_find(cfg, r->model) >= 0) return NULL;
    return alias_target(cfg, r->model) ? NULL : r->model;
}

/* ---------------------------------------------------------------- labels --- */

/* The labels a request carries (tenant, team, feature, session, forced tier) are
 * identifiers written to the ledger, the log and cost reports: one holding personal
 * data is refused, and cleared so that nothing writes it. */
int api_request_check_labels(api_scan_t *scan, api_request_t *r, char *err, size_t errlen,
                             char *param, size_t paramlen)
{
    static const struct {
        const char *name;
        size_t off;
    } labels[] = {
        {"tenant", offsetof(api_request_t, tenant)},
        {"team", offsetof(api_request_t, team)},
        {"feature", offsetof(api_request_t, feature)},
        {"session", offsetof(api_request_t, session)},
        {"tier", offsetof(api_request_t, forced_tier)},
    };
    int bad = -1;
    api_privacy_t pv = {0};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0] && bad < 0; i++) {
        const char *v = (const char *)r + labels[i].off;
        if (!*v) continue;
        api_privacy_scan_text(scan, v, strlen(v), &pv);
        if (pv.types || pv.unknown) bad = (int)i;
    }
    if (bad < 0) return 0;
    char types[256];
    types[0] = 0;
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        if (pv.types & (1u << t)) {
            if (types[0]) strncat(types, ",", sizeof types - strlen(types) - 1);
            strncat(types, pii_type_name((pii_type_t)t), sizeof types - strlen(types) - 1);
        }
    snprintf(err, errlen,
             "the %s label (metadata.%s or X-Switchyard-%c%s) holds personal data (%s): labels "
             "are identifiers and must not carry personal data",
             labels[bad].name, labels[bad].name, labels[bad].name[0] - 32, labels[bad].name + 1,
             pv.unknown ? "unknown" : types);
    snprintf(param, paramlen, "metadata.%s", labels[bad].name);
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        *((char *)r + labels[i].off) = 0;
    return 400;
}

/* -------------------------------------------------------------- decision --- */

int api_decide(const config_t *cfg, const router_t *rt, router_scratch_t *rs,
               const api_request_t *r, const api_session_state_t *ss, const api_privacy_t *scan,
               uint32_t unmasked, const route_tier_t *tiers, uint64_t now_us, uint64_t rand_seed,
               route_decision_t *d)
{
    if (!cfg || !r || !d) return SY_EINVAL;
    route_input_t in = {
        .texts = r->texts,
        .n_texts = r->n_texts,
        .n_messages = r->n_messages,
        .max_tokens = r->max_tokens,
        .forced_tier = api_request_forced_tier(cfg, r),
        .unknown_model = api_request_unknown_model(cfg, r),
        .privacy_local_only = r->privacy_local_only,
        .session_private = ss && ss->is_private,
        .now_us = now_us,
        .rand_seed = rand_seed,
        .needs = api_request_needs(r),
        .pii_extra = scan ? scan->types : 0,
        .pii_unknown = scan && scan->unknown,
        .pii_unmasked = unmasked,
    };
    if (r->prompt_tokens) {
        /* Token ids read as text only under a tier's own tokenizer, so they cannot be
         * scanned for personal data: they never leave this machine. Every tier but the
         * in-process ones counts as external, and the request as local only. */
        route_tier_t local[ROUTE_MAX_TIERS];
        size_t n = cfg->n_tiers < ROUTE_MAX_TIERS ? cfg->n_tiers : ROUTE_MAX_TIERS;
        for (size_t i = 0; i < n; i++) {
            local[i] = tiers[i];
            if (cfg->tiers[i].kind != CONFIG_TIER_LOCAL) local[i].privacy = ROUTE_PRIVACY_EXTERNAL;
        }
        in.privacy_local_only = true;
        return router_decide(rt, rs, &in, local, n, d);
    }
    return router_decide(rt, rs, &in, tiers, cfg->n_tiers, d);
}

/* The request field a missing capability comes from, for the error's param. */
static const char *cap_param(uint32_t caps)
{
    if (caps & (1u << ROUTE_CAP_TOOLS)) return "tools";
    if (caps & (1u << ROUTE_CAP_JSON)) return "response_format";
    if (caps & (1u << ROUTE_CAP_EMBEDDINGS)) return "input";
    return "messages";
}

void api_decision_http(const route_decision_t *d, const route_tier_t *tiers, api_refusal_t *out)
{
    memset(out, 0, sizeof *out);
    const char *stay = d->local_only ? ": the request must stay on this machine (personal data "
                                       "or a private session)"
                                     : "";
    char names[256];
    switch (d->refusal) {
    case ROUTE_REFUSE_NONE:
        out->http_status = 200;
        return;
    case ROUTE_REFUSE_UNKNOWN_TIER: {
        /* The trace's first reason is "forced:NAME(unknown)". */
        const char *name = d->n_reasons ? d->reasons[0] + strlen("forced:") : "";
        int len = (int)strcspn(name, "(");
        out->http_status = 400;
        out->type = "invalid_request_error";
        out->param = "tier";
        snprintf(out->message, sizeof out->message,
                 "unknown tier '%.*s' (GET /v1/models lists them)", len, name);
        return;
    }
    case ROUTE_REFUSE_UNKNOWN_MODEL: {
        /* The trace's first reason is "model:NAME(unknown)". */
        const char *name = d->n_reasons ? d->reasons[0] + strlen("model:") : "";
        int len = (int)strcspn(name, "(");
        out->http_status = 404;
        out->type = "invalid_request_error";
        out->code = "model_not_found";
        out->param = "model";
        snprintf(out->message, sizeof out->message,
                 "The model '%.*s' does not exist: use auto, a tier name (GET /v1/models), "
                 "switchyard/<tier>, or an alias from the config's models: map",
                 len, name);
        return;
    }
    case ROUTE_REFUSE_PII_BLOCKED:
        names[0] = 0;
        for (int t = 0; t < PII_TYPE_COUNT; t++)
            if (d->pii_types & (1u << t)) {
                if (names[0]) strncat(names, ",", sizeof names - strlen(names) - 1);
                strncat(names, pii_type_name((pii_type_t)t), sizeof names - strlen(names) - 1);
            }
        out->http_status = 403;
        out->type = "privacy_blocked";
        snprintf(out->message, sizeof out->message,
                 "the request holds personal data (%s) that policy blocks", names);
        return;
    case ROUTE_REFUSE_FORCED_EXTERNAL: {
        const char *forced = d->n_reasons ? d->reasons[0] + strlen("forced:") : "";
        out->http_status = 403;
        out->type = "privacy_blocked";
        snprintf(out->message, sizeof out->message,
                 "the request must stay on this machine (personal data or a private session), "
                 "but it forces the external tier '%s'",
                 forced);
        return;
    }
    case ROUTE_REFUSE_CAPABILITY:
        route_caps_names(d->caps_missing, ", ", names, sizeof names);
        out->http_status = 400;
        out->type = "invalid_request_error";
        out->code = "capability_unavailable";
        out->param = cap_param(d->caps_missing);
        snprintf(out->message, sizeof out->message,
                 "the request needs %s, which no tier it may use serves%s", names, stay);
        return;
    case ROUTE_REFUSE_CONTEXT:
        out->http_status = 400;
        out->type = "invalid_request_error";
        out->code = "capability_unavailable";
        out->param = "messages";
        snprintf(out->message, sizeof out->message,
                 "context length: the request needs about %u tokens (prompt + max_tokens), more "
                 "than any tier it may use holds%s",
                 d->need_context, stay);
        return;
    case ROUTE_REFUSE_UNAVAILABLE:
    default: {
        /* The cause of each tier skipped, from the trace's "skip:NAME(why)". */
        char causes[256] = "";
        for (int i = 0; i < d->n_reasons; i++) {
            const char *r = d->reasons[i];
            if (strncmp(r, "skip:", 5)) continue;
            int len = (int)strcspn(r + 5, "(");
            const char *why = strstr(r, "(unhealthy)")   ? "circuit open"
                              : strstr(r, "(saturated)") ? "queue full"
                                                         : NULL;
            if (!why) continue;
            size_t at = strlen(causes);
            snprintf(causes + at, sizeof causes - at, "%s%.*s: %s", at ? "; " : " (", len, r + 5,
                     why);
        }
        if (causes[0] && strlen(causes) + 2 < sizeof causes) strcat(causes, ")");
        out->http_status = 503;
        out->type = "tier_unavailable";
        snprintf(out->message, sizeof out->message, "no eligible tier can serve this request%s%s",
                 causes,
                 d->local_only ? ": it must stay on this machine (personal data or a private "
                                 "session) and no local tier is available"
                               : "");
        return;
    }
    }
}

void api_decision_write_json(const route_decision_t *d, const route_tier_t *tiers,
                             const api_refusal_t *a, double decision_us, struct jsonw *w)
{
    jsonw_obj_begin(w);
    jsonw_key(w, "decision");
    route_decision_write_json(d, tiers, w);
    jsonw_key(w, "status");
    jsonw_int(w, a->http_status);
    if (a->http_status != 200) {
        jsonw_key(w, "message");
        jsonw_str(w, a->message);
        if (a->code) {
            jsonw_key(w, "code");
            jsonw_str(w, a->code);
        }
    }
    jsonw_key(w, "decision_us");
    jsonw_double(w, decision_us);
    jsonw_obj_end(w);
}

/* ------------------------------------------------------------ accounting --- */

void api_pii_outcome(const route_decision_t *d, uint32_t masked, bool sent_external,
                     api_pii_outcome_t *out)
{
    uint32_t found = d->pii_types;
    memset(out, 0, sizeof *out);
    if (d->refusal == ROUTE_REFUSE_PII_BLOCKED || d->refusal == ROUTE_REFUSE_FORCED_EXTERNAL)
        out->blocked = found;
    else if (!sent_external)
        out->kept_local = found;
    else {
        out->masked = found & masked;
        out->allowed = found & ~masked;
    }
}
