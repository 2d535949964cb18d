/* anthropic.c — Anthropic Messages answers translated into the OpenAI chat shape. */
#include "tier/anthropic.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonw.h"

const char *tier_anthropic_finish_reason(const char *stop_reason)
{
    if (!stop_reason) return "stop";
    if (!strcmp(stop_reason, "max_tokens") || !strcmp(stop_reason, "model_context_window_exceeded"))
        return "length";
    if (!strcmp(stop_reason, "tool_use")) return "tool_calls";
    if (!strcmp(stop_reason, "refusal")) return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

static uint32_t count(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0)) return 0;
    return v->valuedouble >= 4294967295.0 ? UINT32_MAX : (uint32_t)v->valuedouble;
}

static const char *str_or(const cJSON *o, const char *k, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : def;
}

/* ----------------------------------------------------- whole answers ---- */

static void write_usage(jsonw_t *j, uint32_t in, uint32_t out)
{
    jsonw_key(j, "usage");
    jsonw_obj_begin(j);
    jsonw_key(j, "prompt_tokens");
    jsonw_uint(j, in);
    jsonw_key(j, "completion_tokens");
    jsonw_uint(j, out);
    jsonw_key(j, "total_tokens");
    jsonw_uint(j, (uint64_t)in + out);
    jsonw_obj_end(j);
}

int tier_anthropic_answer(const char *body, size_t n, int64_t created, buf_t *out)
{
    cJSON *m = cJSON_ParseWithLength(body ? body : "", n);
    cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m) || !cJSON_IsArray(content) ||
        strcmp(str_or(m, "type", "message"), "message")) {
        cJSON_Delete(m);
        return SY_EPARSE;
    }
    jsonw_t j;
    jsonw_init(&j, out);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, str_or(m, "id", "msg"));
    jsonw_key(&j, "object");
    jsonw_str(&j, "chat.completion");
    jsonw_key(&j, "created");
    jsonw_int(&j, created);
    jsonw_key(&j, "model");
    jsonw_str(&j, str_or(m, "model", ""));
    jsonw_key(&j, "choices");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "index");
    jsonw_int(&j, 0);
    jsonw_key(&j, "message");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "role");
    jsonw_str(&j, "assistant");
    /* Text blocks joined; tool_use blocks as tool calls with their input printed. */
    jsonw_key(&j, "content");
    bool any_text = false, any_tool = false;
    cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const char *t = str_or(b, "type", "");
        if (!strcmp(t, "text")) any_text = true;
        if (!strcmp(t, "tool_use")) any_tool = true;
    }
    if (any_text) {
        buf_t joined;
        buf_init(&joined, out->max ? out->max : (16u << 20));
        cJSON_ArrayForEach(b, content)
        {
            cJSON *tx = cJSON_GetObjectItemCaseSensitive(b, "text");
            if (!strcmp(str_or(b, "type", ""), "text") && cJSON_IsString(tx))
                buf_puts(&joined, tx->valuestring);
        }
        jsonw_strn(&j, joined.data ? joined.data : "", joined.len);
        buf_deinit(&joined);
    } else {
        jsonw_null(&j);
    }
    if (any_tool) {
        jsonw_key(&j, "tool_calls");
        jsonw_arr_begin(&j);
        int idx = 0;
        cJSON_ArrayForEach(b, content)
        {
            if (strcmp(str_or(b, "type", ""), "tool_use")) continue;
            jsonw_obj_begin(&j);
            jsonw_key(&j, "index");
            jsonw_int(&j, idx++);
            jsonw_key(&j, "id");
            jsonw_str(&j, str_or(b, "id", ""));
            jsonw_key(&j, "type");
            jsonw_str(&j, "function");
            jsonw_key(&j, "function");
            jsonw_obj_begin(&j);
            jsonw_key(&j, "name");
            jsonw_str(&j, str_or(b, "name", ""));
            jsonw_key(&j, "arguments");
            cJSON *in = cJSON_GetObjectItemCaseSensitive(b, "input");
            char *args = in ? cJSON_PrintUnformatted(in) : NULL;
            jsonw_str(&j, args ? args : "{}");
            cJSON_free(args);
            jsonw_obj_end(&j);
            jsonw_obj_end(&j);
        }
        jsonw_arr_end(&j);
    }
    jsonw_obj_end(&j);
    const char *sr = str_or(m, "stop_reason", NULL);
    jsonw_key(&j, "finish_reason");
    jsonw_str(&j, tier_anthropic_finish_reason(sr));
    const char *seq = str_or(m, "stop_sequence", NULL);
    if (seq) {
        jsonw_key(&j, "stop_sequence");
        jsonw_str(&j, seq);
    }
    jsonw_obj_end(&j);
    jsonw_arr_end(&j);
    cJSON *us = cJSON_GetObjectItemCaseSensitive(m, "usage");
    write_usage(&j, count(cJSON_GetObjectItemCaseSensitive(us, "input_tokens")),
                count(cJSON_GetObjectItemCaseSensitive(us, "output_tokens")));
    jsonw_obj_end(&j);
    cJSON_Delete(m);
    return jsonw_error(&j) ? SY_ETOOBIG : 0;
}

/* ------------------------------------------------------------ streams ---- */

void tier_anthropic_stream_reset(tier_anthropic_stream_t *s, int64_t created)
{
    memset(s, 0, sizeof *s);
    s->block_tool = -1;
    s->created = created;
    snprintf(s->id, sizeof s->id, "msg");
}

/* Opens a chunk object up to the delta's contents ("choices":[{"index":0,"delta":{). */
static void chunk_begin(tier_anthropic_stream_t *s, jsonw_t *j, buf_t *b)
{
    buf_reset(b);
    jsonw_init(j, b);
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, s->id);
    jsonw_key(j, "object");
    jsonw_str(j, "chat.completion.chunk");
    jsonw_key(j, "created");
    jsonw_int(j, s->created);
    jsonw_key(j, "model");
    jsonw_str(j, s->model);
    jsonw_key(j, "choices");
    jsonw_arr_begin(j);
    jsonw_obj_begin(j);
    jsonw_key(j, "index");
    jsonw_int(j, 0);
    jsonw_key(j, "delta");
    jsonw_obj_begin(j);
}

/* Closes it with finish_reason (NULL: null) and emits it. */
static void chunk_end(jsonw_t *j, buf_t *b, const char *finish, const char *seq,
                      tier_anthropic_emit_fn emit, void *arg)
{
    jsonw_obj_end(j);
    jsonw_key(j, "finish_reason");
    if (finish)
        jsonw_str(j, finish);
    else
        jsonw_null(j);
    if (seq) {
        jsonw_key(j, "stop_sequence");
        jsonw_str(j, seq);
    }
    jsonw_obj_end(j);
    jsonw_arr_end(j);
    jsonw_obj_end(j);
    if (!jsonw_error(j)) emit(arg, b->data, b->len);
}

/* A tool_calls delta: {"tool_calls":[{"index":i,...}]}, id and name on the first. */
static void tool_delta(tier_anthropic_stream_t *s, jsonw_t *j, const char *id, const char *name,
                       const char *args)
{
    jsonw_key(j, "tool_calls");
    jsonw_arr_begin(j);
    jsonw_obj_begin(j);
    jsonw_key(j, "index");
    jsonw_int(j, s->block_tool);
    if (id) {
        jsonw_key(j, "id");
        jsonw_str(j, id);
        jsonw_key(j, "type");
        jsonw_str(j, "function");
    }
    jsonw_key(j, "function");
    jsonw_obj_begin(j);
    if (name) {
        jsonw_key(j, "name");
        jsonw_str(j, name);
    }
    jsonw_key(j, "arguments");
    jsonw_str(j, args);
    jsonw_obj_end(j);
    jsonw_obj_end(j);
    jsonw_arr_end(j);
}

int tier_anthropic_stream_event(tier_anthropic_stream_t *s, const char *event, const char *data,
                                size_t n, buf_t *scratch, tier_anthropic_emit_fn emit, void *arg,
                                char *err, size_t errlen)
{
    cJSON *d = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return SY_EPARSE;
    }
    const char *type = str_or(d, "type", event ? event : "");
    int rc = 0;
    jsonw_t j;
    if (!strcmp(type, "message_start")) {
        cJSON *m = cJSON_GetObjectItemCaseSensitive(d, "message");
        if (!cJSON_IsObject(m)) {
            rc = SY_EPARSE;
            goto out;
        }
        snprintf(s->id, sizeof s->id, "%s", str_or(m, "id", "msg"));
        snprintf(s->model, sizeof s->model, "%s", str_or(m, "model", ""));
        cJSON *us = cJSON_GetObjectItemCaseSensitive(m, "usage");
        s->tokens_in = count(cJSON_GetObjectItemCaseSensitive(us, "input_tokens"));
        s->tokens_out = count(cJSON_GetObjectItemCaseSensitive(us, "output_tokens"));
        s->started = true;
        chunk_begin(s, &j, scratch);
        jsonw_key(&j, "role");
        jsonw_str(&j, "assistant");
        jsonw_key(&j, "content");
        jsonw_str(&j, "");
        chunk_end(&j, scratch, NULL, NULL, emit, arg);
    } else if (!strcmp(type, "content_block_start")) {
        cJSON *cb = cJSON_GetObjectItemCaseSensitive(d, "content_block");
        const char *bt = str_or(cb, "type", "");
        s->block_tool = -1;
        if (!strcmp(bt, "tool_use")) {
            s->block_tool = s->n_tools++;
            chunk_begin(s, &j, scratch);
            tool_delta(s, &j, str_or(cb, "id", ""), str_or(cb, "name", ""), "");
            chunk_end(&j, scratch, NULL, NULL, emit, arg);
        } else if (!strcmp(bt, "text") && *str_or(cb, "text", "")) {
            chunk_begin(s, &j, scratch);
            jsonw_key(&j, "content");
            jsonw_str(&j, str_or(cb, "text", ""));
            chunk_end(&j, scratch, NULL, NULL, emit, arg);
        }
    } else if (!strcmp(type, "content_block_delta")) {
        cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "delta");
        const char *dt = str_or(dl, "type", "");
        if (!strcmp(dt, "text_delta")) {
            chunk_begin(s, &j, scratch);
            jsonw_key(&j, "content");
            jsonw_str(&j, str_or(dl, "text", ""));
            chunk_end(&j, scratch, NULL, NULL, emit, arg);
        } else if (!strcmp(dt, "input_json_delta") && s->block_tool >= 0) {
            chunk_begin(s, &j, scratch);
            tool_delta(s, &j, NULL, NULL, str_or(dl, "partial_json", ""));
            chunk_end(&j, scratch, NULL, NULL, emit, arg);
        } else if (!*dt) {
            rc = SY_EPARSE;
        }
        /* thinking_delta, signature_delta, citations_delta: not passed on */
    } else if (!strcmp(type, "content_block_stop")) {
        s->block_tool = -1;
    } else if (!strcmp(type, "message_delta")) {
        cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "delta");
        cJSON *us = cJSON_GetObjectItemCaseSensitive(d, "usage");
        cJSON *ot = cJSON_GetObjectItemCaseSensitive(us, "output_tokens");
        cJSON *it = cJSON_GetObjectItemCaseSensitive(us, "input_tokens");
        if (cJSON_IsNumber(ot)) s->tokens_out = count(ot);
        if (cJSON_IsNumber(it)) s->tokens_in = count(it);
        const char *sr = str_or(dl, "stop_reason", NULL);
        if (sr) {
            s->finished = true;
            chunk_begin(s, &j, scratch);
            chunk_end(&j, scratch, tier_anthropic_finish_reason(sr),
                      str_or(dl, "stop_sequence", NULL), emit, arg);
        }
        /* The usage chunk, as an OpenAI upstream sends it with include_usage. */
        buf_reset(scratch);
        jsonw_init(&j, scratch);
        jsonw_obj_begin(&j);
        jsonw_key(&j, "id");
        jsonw_str(&j, s->id);
        jsonw_key(&j, "object");
        jsonw_str(&j, "chat.completion.chunk");
        jsonw_key(&j, "created");
        jsonw_int(&j, s->created);
        jsonw_key(&j, "model");
        jsonw_str(&j, s->model);
        jsonw_key(&j, "choices");
        jsonw_arr_begin(&j);
        jsonw_arr_end(&j);
        write_usage(&j, s->tokens_in, s->tokens_out);
        jsonw_obj_end(&j);
        if (!jsonw_error(&j)) emit(arg, scratch->data, scratch->len);
    } else if (!strcmp(type, "error")) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
        snprintf(err, errlen, "%s: %s", str_or(e, "type", "error"), str_or(e, "message", ""));
        rc = SY_EUPSTREAM;
    } else if (!strcmp(type, "message_stop") || !strcmp(type, "ping")) {
        /* nothing to pass on */
    } else {
        rc = SY_EPARSE;
    }
out:
    cJSON_Delete(d);
    return rc;
}
