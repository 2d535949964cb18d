/* respond.c — answers to inference requests: OpenAI-shaped errors, the switchyard
 * object and headers, SSE events (live or replayed from a whole answer), and the
 * exec sink that finishes every call.
 */
#include "api/app_impl.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ replies ---- */

void api_send_json(http_res_t *res, int status, buf_t *b)
{
    http_res_send(res, status, "application/json", b->data ? b->data : "", b->len);
}

/* An OpenAI-shaped error object. */
void api_send_error(api_worker_t *w, http_res_t *res, int status, const char *type, const char *msg,
                    const char *param, const char *code)
{
    if (w->anth_calls && api_anthropic_owns(w, res))
        return api_anthropic_send_error(w, res, status, msg);
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "error");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "message");
    jsonw_str(&j, msg);
    jsonw_key(&j, "type");
    jsonw_str(&j, type);
    jsonw_key(&j, "param");
    if (param && *param)
        jsonw_str(&j, param);
    else
        jsonw_null(&j);
    jsonw_key(&j, "code");
    if (code)
        jsonw_str(&j, code);
    else
        jsonw_null(&j);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    api_send_json(res, status, b);
}

const char *api_privacy_name(route_privacy_t p)
{
    return p == ROUTE_PRIVACY_ON_DEVICE ? "on_device"
           : p == ROUTE_PRIVACY_ON_PREM ? "on_prem"
                                        : "external";
}

/* What speculative decoding did for the answer: across tiers, the verifier and its
 * counts (or why this call was not verified); in-process, whether the draft applied
 * and its counts (or why not). */
static void write_spec(const tier_spec_report_t *sp, jsonw_t *j)
{
    jsonw_obj_begin(j);
    if (sp->verifier) {
        jsonw_key(j, "verifier");
        jsonw_str(j, sp->verifier);
        if (sp->skipped) {
            jsonw_key(j, "skipped");
            jsonw_str(j, sp->skipped);
            jsonw_obj_end(j);
            return;
        }
    } else {
        jsonw_key(j, "applied");
        jsonw_bool(j, sp->applied);
        if (!sp->applied) {
            jsonw_key(j, "reason");
            jsonw_str(j, sp->reason ? sp->reason : "");
            jsonw_obj_end(j);
            return;
        }
    }
    jsonw_key(j, "drafted");
    jsonw_uint(j, sp->drafted);
    jsonw_key(j, "accepted");
    jsonw_uint(j, sp->accepted);
    jsonw_key(j, "rounds");
    jsonw_uint(j, sp->rounds);
    if (sp->verifier) {
        jsonw_key(j, "acceptance");
        if (sp->drafted)
            jsonw_double(j, (double)sp->accepted / sp->drafted);
        else
            jsonw_null(j);
        jsonw_key(j, "draft_max");
        if (sp->draft_max)
            jsonw_uint(j, sp->draft_max);
        else
            jsonw_str(j, "auto");
        jsonw_key(j, "local_tokens");
        jsonw_uint(j, sp->local_tokens);
        jsonw_key(j, "degraded");
        jsonw_bool(j, sp->degraded);
        jsonw_key(j, "error");
        if (sp->error[0])
            jsonw_str(j, sp->error);
        else
            jsonw_null(j);
    }
    jsonw_obj_end(j);
}

/* ----------------------------------------------- the switchyard object ---- */

void api_join_reasons(const api_call_t *c, const exec_result_t *r, char *out, size_t n)
{
    out[0] = 0;
    for (int i = 0; i < c->d.n_reasons; i++) {
        if (out[0]) strncat(out, ",", n - strlen(out) - 1);
        strncat(out, c->d.reasons[i], n - strlen(out) - 1);
    }
    for (int i = 0; r && i < r->n_notes; i++) {
        if (out[0]) strncat(out, ",", n - strlen(out) - 1);
        strncat(out, r->notes[i], n - strlen(out) - 1);
    }
}

static void write_sy_object(api_call_t *c, const exec_result_t *r, double cost, jsonw_t *j)
{
    api_app_t *app = c->w->app;
    const tier_t *t = r->tier >= 0 ? &app->tiers[r->tier] : NULL;
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, c->id);
    jsonw_key(j, "tier");
    jsonw_str(j, t ? t->s.name : NULL);
    jsonw_key(j, "model");
    jsonw_str(j, t ? t->s.model : NULL);
    jsonw_key(j, "version");
    jsonw_str(j, t && t->s.version && *t->s.version ? t->s.version : NULL);
    jsonw_key(j, "privacy");
    jsonw_str(j, t ? api_privacy_name(t->s.privacy) : NULL);
    jsonw_key(j, "reasons");
    jsonw_arr_begin(j);
    for (int i = 0; i < c->d.n_reasons; i++)
        jsonw_str(j, c->d.reasons[i]);
    for (int i = 0; i < r->n_notes; i++)
        jsonw_str(j, r->notes[i]);
    jsonw_arr_end(j);
    jsonw_key(j, "pii");
    jsonw_arr_begin(j);
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if (c->d.pii_types & (1u << p)) jsonw_str(j, pii_type_name((pii_type_t)p));
    jsonw_arr_end(j);
    jsonw_key(j, "local_only");
    jsonw_bool(j, c->d.local_only);
    jsonw_key(j, "confidence");
    if (r->has_confidence)
        jsonw_double(j, r->confidence);
    else
        jsonw_null(j);
    jsonw_key(j, "escalated");
    jsonw_bool(j, r->escalated);
    jsonw_key(j, "low_confidence");
    jsonw_bool(j, r->low_confidence);
    jsonw_key(j, "failover");
    jsonw_bool(j, r->failover);
    jsonw_key(j, "degraded");
    jsonw_bool(j, r->degraded);
    if (r->degraded) {
        jsonw_key(j, "warning");
        jsonw_str(j, "degraded quality: the preferred cloud tier was unavailable, so a smaller "
                     "edge model answered");
    }
    jsonw_key(j, "continuation"); /* which tier wrote which part (docs/routing.md) */
    if (r->continued && r->cont_tier >= 0) {
        jsonw_obj_begin(j);
        jsonw_key(j, "reason");
        jsonw_str(j, r->cont_why);
        jsonw_key(j, "parts");
        jsonw_arr_begin(j);
        jsonw_obj_begin(j);
        jsonw_key(j, "tier");
        jsonw_str(j, app->tiers[r->cont_tier].s.name);
        jsonw_key(j, "tokens");
        jsonw_uint(j, r->cont_tokens);
        jsonw_key(j, "bytes");
        jsonw_uint(j, r->cont_bytes);
        jsonw_obj_end(j);
        jsonw_obj_begin(j);
        jsonw_key(j, "tier");
        jsonw_str(j, t ? t->s.name : NULL);
        jsonw_key(j, "tokens");
        jsonw_uint(j, r->tokens_out > r->cont_tokens ? r->tokens_out - r->cont_tokens : 0);
        jsonw_obj_end(j);
        jsonw_arr_end(j);
        jsonw_obj_end(j);
    } else {
        jsonw_null(j);
    }
    jsonw_key(j, "attempts");
    jsonw_int(j, r->attempts);
    jsonw_key(j, "tokens_in");
    jsonw_uint(j, r->tokens_in);
    jsonw_key(j, "tokens_out");
    jsonw_uint(j, r->tokens_out);
    jsonw_key(j, "cost_usd");
    jsonw_double(j, cost);
    jsonw_key(j, "decision_us");
    jsonw_double(j, (double)c->decision_ns / 1000.0);
    /* speculative: the tier's report (it drafted, or says why not) */
    if (r->spec.present) {
        jsonw_key(j, "speculative");
        write_spec(&r->spec, j);
    }
    jsonw_obj_end(j);
}

void api_sy_object_write(api_call_t *c, const exec_result_t *r, double cost, jsonw_t *j)
{
    write_sy_object(c, r, cost, j);
}

void api_set_sy_headers(api_call_t *c, const exec_result_t *r, int tier)
{
    api_app_t *app = c->w->app;
    char reasons[1024];
    api_join_reasons(c, r, reasons, sizeof reasons);
    http_res_header(c->res, "X-Request-Id", c->id);
    if (tier >= 0) http_res_header(c->res, "X-Switchyard-Tier", app->tiers[tier].s.name);
    http_res_header(c->res, "X-Switchyard-Reason", reasons);
    if ((r && r->degraded) || c->d.degraded)
        http_res_header(c->res, "X-Switchyard-Degraded",
                        "edge answered in place of an unavailable cloud tier");
}

/* -------------------------------------------------- exec callbacks ---- */

static void on_stream_begin(void *arg, int tier)
{
    api_call_t *c = arg;
    exec_result_t none = {0};
    none.tier = tier;
    api_set_sy_headers(c, &none, tier);
    http_res_header(c->res, "Cache-Control", "no-cache");
    http_res_stream_begin(c->res, 200, "text/event-stream");
}

static void write_event(api_call_t *c, const char *data, size_t n)
{
    buf_reset(&c->out);
    buf_append(&c->out, "data: ", 6);
    buf_append(&c->out, data, n);
    buf_append(&c->out, "\n\n", 2);
    http_res_stream_write(c->res, c->out.data, c->out.len);
}

/* A string field of a chunk's envelope ("id", "model": keys the first 256 bytes
 * hold in every OpenAI-shaped chunk), when plain (no escapes) and fits; else nothing. */
static void chunk_field(const char *data, size_t n, const char *key, char *out, size_t cap)
{
    char pat[24];
    int pn = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = memmem(data, n < 256 ? n : 256, pat, (size_t)pn);
    if (!p) return;
    p += pn;
    size_t k = 0;
    while (p + k < data + n && p[k] != '"' && p[k] != '\\' && k + 1 < cap)
        k++;
    if (p + k >= data + n || p[k] != '"') return;
    memcpy(out, p, k);
    out[k] = 0;
}

/* Whether a chunk's "choices" is an empty array (whitespace allowed around it). */
static bool choices_empty(const char *data, size_t n)
{
    const char *p = memmem(data, n, "\"choices\"", 9), *end = data + n;
    if (!p) return false;
    p += 9;
    const char *want = ":[]";
    for (; p < end && *want; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') continue;
        if (*p != *want++) return false;
    }
    return !*want;
}

static void on_stream_event(void *arg, const char *data, size_t n)
{
    api_call_t *c = arg;
    if (c->anthropic) return api_anthropic_stream_chunk(c, data, n);
    if (!c->stream_id[0]) {
        chunk_field(data, n, "id", c->stream_id, sizeof c->stream_id);
        chunk_field(data, n, "model", c->stream_model, sizeof c->stream_model);
    }
    /* The usage-only chunk switchyard asked for is held back: the usage goes on the
     * last chunk, with the switchyard object (write_sy_event). */
    if (memmem(data, n, "\"usage\"", 7) && choices_empty(data, n)) return;
    write_event(c, data, n);
}

/* The final stream chunk: no choices, the usage when the client asked for it
 * (stream_options.include_usage) and the switchyard object, under the id every
 * other chunk of the stream carries. */
static void write_sy_event(api_call_t *c, const exec_result_t *r, double cost)
{
    buf_t *b = &c->w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, c->stream_id[0] ? c->stream_id : c->id);
    jsonw_key(&j, "object");
    jsonw_str(&j, c->req.completions ? "text_completion" : "chat.completion.chunk");
    jsonw_key(&j, "created");
    jsonw_int(&j, c->ts_ms / 1000);
    jsonw_key(&j, "model");
    jsonw_str(&j, c->stream_model[0] ? c->stream_model
                  : r->tier >= 0     ? c->w->app->tiers[r->tier].s.model
                                     : "");
    jsonw_key(&j, "choices");
    jsonw_arr_begin(&j);
    jsonw_arr_end(&j);
    if (c->req.include_usage) {
        jsonw_key(&j, "usage");
        jsonw_obj_begin(&j);
        jsonw_key(&j, "prompt_tokens");
        jsonw_uint(&j, r->tokens_in);
        jsonw_key(&j, "completion_tokens");
        jsonw_uint(&j, r->tokens_out);
        jsonw_key(&j, "total_tokens");
        jsonw_uint(&j, (uint64_t)r->tokens_in + r->tokens_out);
        jsonw_obj_end(&j);
    }
    jsonw_key(&j, "switchyard");
    write_sy_object(c, r, cost, &j);
    jsonw_obj_end(&j);
    write_event(c, b->data, b->len);
}

/* A complete (non-streamed) answer re-sent as SSE: the client asked for a stream
 * but the cascade (or masking) needed the whole answer first. Each choice opens with
 * its text, indexed as in the answer; then each closes with its finish_reason. */
static void replay_as_stream(api_call_t *c, const exec_result_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const char *model = r->tier >= 0 ? c->w->app->tiers[r->tier].s.model : "";
    for (int phase = 0; phase < 2; phase++) {
        int i = 0;
        cJSON *ch;
        cJSON_ArrayForEach(ch, choices)
        {
            cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
            cJSON *text = cJSON_GetObjectItemCaseSensitive(ch, "text");
            cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
            cJSON *idx = cJSON_GetObjectItemCaseSensitive(ch, "index");
            buf_t *b = &c->w->scratch;
            buf_reset(b);
            jsonw_t w;
            jsonw_init(&w, b);
            jsonw_obj_begin(&w);
            jsonw_key(&w, "id");
            jsonw_str(&w, c->id);
            jsonw_key(&w, "object");
            jsonw_str(&w, c->req.completions ? "text_completion" : "chat.completion.chunk");
            jsonw_key(&w, "created");
            jsonw_int(&w, c->ts_ms / 1000);
            jsonw_key(&w, "model");
            jsonw_str(&w, model);
            jsonw_key(&w, "choices");
            jsonw_arr_begin(&w);
            jsonw_obj_begin(&w);
            jsonw_key(&w, "index");
            jsonw_int(&w, cJSON_IsNumber(idx) ? idx->valueint : i);
            if (c->req.completions) {
                jsonw_key(&w, "text");
                jsonw_str(&w, phase == 0 && cJSON_IsString(text) ? text->valuestring : "");
            } else {
                jsonw_key(&w, "delta");
                jsonw_obj_begin(&w);
                if (phase == 0) api_replay_delta(&w, msg); /* tool calls too */
                jsonw_obj_end(&w);
            }
            jsonw_key(&w, "finish_reason");
            if (phase == 1)
                jsonw_str(&w, cJSON_IsString(fr) ? fr->valuestring : "stop");
            else
                jsonw_null(&w);
            jsonw_obj_end(&w);
            jsonw_arr_end(&w);
            jsonw_obj_end(&w);
            write_event(c, b->data, b->len);
            i++;
        }
    }
    cJSON_Delete(j);
}

static void on_done(void *arg, exec_result_t *r)
{
    api_call_t *c = arg;
    api_app_t *app = c->w->app;
    c->exec = NULL;
    double cost = r->tier >= 0 ? tier_cost_usd(&app->tiers[r->tier],
                                               r->tokens_in ? r->tokens_in : c->d.est_tokens_in,
                                               r->tokens_out)
                               : 0;
    if (r->tier >= 0 && r->status == 200 && c->req.session[0])
        session_record(app->sessions, c->req.session, c->d.pii_types != 0, r->tier, c->ts_ms);
    if (r->tier >= 0 && r->status == 200 && !c->embeddings) {
        feedback_ring_put(app->feedback, c->id, &c->d.features, r->tier, c->key);
        /* Implicit feedback: an escalated edge answer was not good enough. */
        if (r->escalated && app->cfg->route.policy == ROUTE_POLICY_BANDIT && c->d.tier >= 0)
            router_feedback(app->router, &c->d.features, c->d.tier,
                            route_bandit_reward(0.0, 0.0, 0.0, 0, 0));
    }
    if (c->mask && r->status == 200 && !r->streamed) api_mask_restore(c, r);
    /* The ledger row is journaled before the answer's last byte leaves: a client
     * that got an answer has its row even if the process dies next. */
    api_account(c, r, r->status, cost);
    if (c->anthropic) {
        api_anthropic_finish(c, r, cost);
    } else if (r->streamed) {
        if (r->status != 200) {
            buf_t *b = &c->w->scratch;
            buf_reset(b);
            jsonw_t j;
            jsonw_init(&j, b);
            char msg[sizeof r->message + 40];
            snprintf(msg, sizeof msg, "the tier failed mid-stream: %s", r->message);
            jsonw_obj_begin(&j);
            jsonw_key(&j, "error");
            jsonw_obj_begin(&j);
            jsonw_key(&j, "message");
            jsonw_str(&j, msg);
            jsonw_key(&j, "type");
            jsonw_str(&j, r->err_type);
            jsonw_key(&j, "param");
            jsonw_null(&j);
            jsonw_key(&j, "code");
            jsonw_null(&j);
            jsonw_obj_end(&j);
            jsonw_obj_end(&j);
            write_event(c, b->data, b->len);
        } else {
            write_sy_event(c, r, cost);
        }
        http_res_stream_write(c->res, "data: [DONE]\n\n", 14);
        http_res_stream_end(c->res);
    } else if (r->status == 200 && c->req.stream) {
        api_set_sy_headers(c, r, r->tier);
        http_res_header(c->res, "Cache-Control", "no-cache");
        http_res_stream_begin(c->res, 200, "text/event-stream");
        replay_as_stream(c, r);
        write_sy_event(c, r, cost);
        http_res_stream_write(c->res, "data: [DONE]\n\n", 14);
        http_res_stream_end(c->res);
    } else if (r->status == 200) {
        /* Splice the switchyard object into the upstream's JSON object (validated by
         * exec), which saves a parse and print of the whole answer. */
        buf_t *b = &c->w->scratch;
        buf_reset(b);
        size_t end = r->body_len;
        while (end > 0 && r->body[end - 1] != '}')
            end--;
        buf_append(b, r->body, end - 1);
        buf_puts(b, ",\"switchyard\":");
        jsonw_t j;
        jsonw_init(&j, b);
        write_sy_object(c, r, cost, &j);
        buf_puts(b, "}");
        api_set_sy_headers(c, r, r->tier);
        api_send_json(c->res, 200, b);
    } else {
        api_set_sy_headers(c, r, r->tier);
        api_send_error(c->w, c->res, r->status, r->err_type, r->message, NULL, NULL);
    }
    api_call_put(c);
}

/* The upstream body, rendered from the typed request (never the client's bytes). */
static int on_render(void *arg, const char *model, bool stream, bool logprobs, const char **body,
                     size_t *len)
{
    api_call_t *c = arg;
    buf_t *b = &c->w->render;
    buf_reset(b);
    api_render_opts_t o = {
        .model = model,
        .stream = stream,
        .logprobs = logprobs,
        .forward_unknown = c->w->app->cfg->forward_unknown == CONFIG_FORWARD_SCAN,
        .rest = c->rest_ok ? c->rest.data : NULL,
        .rest_len = c->rest.len,
    };
    int rc = api_render_body(&c->req, &o, b);
    *body = b->data ? b->data : "";
    *len = b->len;
    return rc;
}

/* The upstream body for an anthropic tier, from the same typed request. */
static int on_render_anthropic(void *arg, const char *model, bool stream, const char **body,
                               size_t *len)
{
    api_call_t *c = arg;
    buf_t *b = &c->w->render;
    buf_reset(b);
    int rc = api_anthropic_render(&c->req, model, stream,
                                  c->w->app->cfg->forward_unknown == CONFIG_FORWARD_SCAN, b);
    *body = b->data ? b->data : "";
    *len = b->len;
    return rc;
}

/* An upstream's error text goes to the client only when the request held no
 * personal data (the text may echo the prompt, and a masked request's placeholders
 * are no business of the client's error) and the text itself scans clean. */
static bool on_cause(void *arg, const char *text, size_t n)
{
    api_call_t *c = arg;
    if (c->d.pii_types || c->pv.unknown) return false;
    api_privacy_t pv = {0};
    if (api_privacy_scan_text(c->w->scan, text, n, &pv)) return false;
    return !pv.types && !pv.unknown;
}

/* The continuation's gate: the answer so far becomes the typed request's final
 * assistant message (what render sends), and a tier outside this machine gets it only
 * when the scan of the whole request as it will be sent finds nothing but types the
 * policy lets leave. max_tokens is what is left of the client's. */
static int on_continue(void *arg, int tier, const char *text, size_t n, uint32_t tokens)
{
    api_call_t *c = arg;
    api_app_t *app = c->w->app;
    const tier_t *t = &app->tiers[tier];
    bool external = t->s.privacy == ROUTE_PRIVACY_EXTERNAL;
    if (external && c->d.local_only) return SY_EPRIVACY;
    c->req.prefill = text;
    c->req.prefill_len = n;
    if (external) {
        api_privacy_t pv = {0};
        int rc = api_privacy_scan(c->w->scan, &c->req,
                                  app->cfg->forward_unknown == CONFIG_FORWARD_SCAN, &pv);
        uint32_t may_leave = 0;
        for (int p = 0; p < PII_TYPE_COUNT; p++)
            if (app->cfg->route.pii_action[p] == ROUTE_PII_ALLOW) may_leave |= 1u << p;
        if (rc || pv.unknown || (pv.types & ~may_leave)) {
            c->req.prefill = NULL;
            c->req.prefill_len = 0;
            return SY_EPRIVACY;
        }
    }
    if (c->req.max_tokens)
        api_request_set_max_tokens(&c->req,
                                   c->req.max_tokens > tokens ? c->req.max_tokens - tokens : 1);
    return 0;
}

const exec_sink_t api_exec_sink = {on_stream_begin,     on_stream_event, on_done,    on_render,
                                   on_render_anthropic, on_cause,        on_continue};
