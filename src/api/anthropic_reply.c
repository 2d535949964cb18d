/* anthropic_reply.c — answers to POST /v1/messages in Anthropic's shapes.
 *
 * Whatever tier served (OpenAI-compatible, anthropic, the local engine), exec hands
 * over an OpenAI chat answer or chunks; here they become a Messages answer:
 *   - a message object {id, type, role, model, content: [text, tool_use], stop_reason,
 *     stop_sequence, usage: {input_tokens, output_tokens}} plus the switchyard object;
 *   - a stream: message_start, ping, content_block_start / content_block_delta
 *     (text_delta, input_json_delta) / content_block_stop per block, message_delta
 *     (stop_reason, usage, switchyard), message_stop; a failure after the start is an
 *     `error` event;
 *   - errors {"type":"error","error":{"type":...,"message":...}} with Anthropic's
 *     type for the status.
 * Every /v1/messages call is on its worker's list while it lives, so the shared
 * error path (api_send_error) answers it in this shape.
 */
#include "api/anthropic.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "api/app_impl.h"

/* --------------------------------------------------------------- calls ---- */

void api_anthropic_link(api_call_t *c)
{
    api_worker_t *w = c->w;
    c->anthropic = true;
    c->anth_prev = NULL;
    c->anth_next = w->anth_calls;
    if (w->anth_calls) w->anth_calls->anth_prev = c;
    w->anth_calls = c;
    memset(&c->anth, 0, sizeof c->anth);
    c->anth.block = -1;
    c->anth.tool_index = -1;
}

void api_anthropic_unlink(api_call_t *c)
{
    if (!c->anthropic) return;
    api_worker_t *w = c->w;
    if (c->anth_prev)
        c->anth_prev->anth_next = c->anth_next;
    else if (w->anth_calls == c)
        w->anth_calls = c->anth_next;
    if (c->anth_next) c->anth_next->anth_prev = c->anth_prev;
    c->anth_prev = c->anth_next = NULL;
    c->anthropic = false;
}

bool api_anthropic_owns(api_worker_t *w, const http_res_t *res)
{
    for (api_call_t *c = w->anth_calls; c; c = c->anth_next)
        if (c->res == res) return true;
    return false;
}

void api_anthropic_send_error(api_worker_t *w, http_res_t *res, int status, const char *msg)
{
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, "error");
    jsonw_key(&j, "error");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, api_anthropic_error_type(status));
    jsonw_key(&j, "message");
    jsonw_str(&j, msg);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    api_send_json(res, status, b);
}

/* ------------------------------------------------------------ events ---- */

static void event(api_call_t *c, const char *name, const buf_t *data)
{
    buf_reset(&c->out);
    buf_puts(&c->out, "event: ");
    buf_puts(&c->out, name);
    buf_puts(&c->out, "\ndata: ");
    buf_append(&c->out, data->data ? data->data : "{}", data->len);
    buf_append(&c->out, "\n\n", 2);
    http_res_stream_write(c->res, c->out.data, c->out.len);
}

/* Starts an event's JSON {"type":name, ...} in the worker's scratch buffer. */
static jsonw_t ev_begin(api_call_t *c, const char *name)
{
    buf_t *b = &c->w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, name);
    return j;
}

static void ev_end(api_call_t *c, jsonw_t *j, const char *name)
{
    jsonw_obj_end(j);
    event(c, name, &c->w->scratch);
}

static const char *stop_reason(const char *finish, bool had_seq)
{
    if (!finish) return "end_turn";
    if (!strcmp(finish, "length")) return "max_tokens";
    if (!strcmp(finish, "tool_calls") || !strcmp(finish, "function_call")) return "tool_use";
    if (!strcmp(finish, "content_filter")) return "refusal";
    return had_seq ? "stop_sequence" : "end_turn";
}

static void usage(jsonw_t *j, uint32_t in, uint32_t out)
{
    jsonw_key(j, "usage");
    jsonw_obj_begin(j);
    jsonw_key(j, "input_tokens");
    jsonw_uint(j, in);
    jsonw_key(j, "output_tokens");
    jsonw_uint(j, out);
    jsonw_obj_end(j);
}

static void msg_start(api_call_t *c, const char *model)
{
    api_anth_stream_t *s = &c->anth;
    if (s->started) return;
    s->started = true;
    jsonw_t j = ev_begin(c, "message_start");
    jsonw_key(&j, "message");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, c->id);
    jsonw_key(&j, "type");
    jsonw_str(&j, "message");
    jsonw_key(&j, "role");
    jsonw_str(&j, "assistant");
    jsonw_key(&j, "model");
    jsonw_str(&j, model ? model : "");
    jsonw_key(&j, "content");
    jsonw_arr_begin(&j);
    jsonw_arr_end(&j);
    jsonw_key(&j, "stop_reason");
    jsonw_null(&j);
    jsonw_key(&j, "stop_sequence");
    jsonw_null(&j);
    usage(&j, c->d.est_tokens_in, 0);
    jsonw_obj_end(&j);
    ev_end(c, &j, "message_start");
    j = ev_begin(c, "ping");
    ev_end(c, &j, "ping");
}

static void block_stop(api_call_t *c)
{
    api_anth_stream_t *s = &c->anth;
    if (s->block < 0) return;
    jsonw_t j = ev_begin(c, "content_block_stop");
    jsonw_key(&j, "index");
    jsonw_int(&j, s->block);
    ev_end(c, &j, "content_block_stop");
    s->block = -1;
    s->tool_index = -1;
}

static void text_open(api_call_t *c)
{
    api_anth_stream_t *s = &c->anth;
    if (s->block >= 0 && s->tool_index < 0) return;
    block_stop(c);
    s->block = s->n_blocks++;
    jsonw_t j = ev_begin(c, "content_block_start");
    jsonw_key(&j, "index");
    jsonw_int(&j, s->block);
    jsonw_key(&j, "content_block");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, "text");
    jsonw_key(&j, "text");
    jsonw_str(&j, "");
    jsonw_obj_end(&j);
    ev_end(c, &j, "content_block_start");
}

static void text_delta(api_call_t *c, const char *text, size_t n)
{
    if (!n) return;
    text_open(c);
    jsonw_t j = ev_begin(c, "content_block_delta");
    jsonw_key(&j, "index");
    jsonw_int(&j, c->anth.block);
    jsonw_key(&j, "delta");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, "text_delta");
    jsonw_key(&j, "text");
    jsonw_strn(&j, text, n);
    jsonw_obj_end(&j);
    ev_end(c, &j, "content_block_delta");
}

static void tool_open(api_call_t *c, int index, const char *id, const char *name)
{
    api_anth_stream_t *s = &c->anth;
    block_stop(c);
    s->block = s->n_blocks++;
    s->tool_index = index;
    jsonw_t j = ev_begin(c, "content_block_start");
    jsonw_key(&j, "index");
    jsonw_int(&j, s->block);
    jsonw_key(&j, "content_block");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, "tool_use");
    jsonw_key(&j, "id");
    jsonw_str(&j, id ? id : "");
    jsonw_key(&j, "name");
    jsonw_str(&j, name ? name : "");
    jsonw_key(&j, "input");
    jsonw_obj_begin(&j);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    ev_end(c, &j, "content_block_start");
}

static void json_delta(api_call_t *c, const char *part)
{
    if (!*part) return;
    jsonw_t j = ev_begin(c, "content_block_delta");
    jsonw_key(&j, "index");
    jsonw_int(&j, c->anth.block);
    jsonw_key(&j, "delta");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "type");
    jsonw_str(&j, "input_json_delta");
    jsonw_key(&j, "partial_json");
    jsonw_str(&j, part);
    jsonw_obj_end(&j);
    ev_end(c, &j, "content_block_delta");
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One tool_calls entry of a chunk (or of a whole answer, index = position). */
static void tool_call(api_call_t *c, const cJSON *tc, int pos)
{
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
    int index = cJSON_IsNumber(ix) ? ix->valueint : pos;
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *id = jstr(tc, "id"), *name = jstr(fn, "name"), *args = jstr(fn, "arguments");
    if (c->anth.tool_index != index || c->anth.block < 0 || id) tool_open(c, index, id, name);
    if (args) json_delta(c, args);
}

void api_anthropic_stream_chunk(api_call_t *c, const char *data, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return;
    }
    msg_start(c, jstr(j, "model"));
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
    if (cJSON_IsString(content)) text_delta(c, content->valuestring, strlen(content->valuestring));
    const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls"), *tc;
    int pos = 0;
    cJSON_ArrayForEach(tc, tcs) tool_call(c, tc, pos++);
    const char *fr = jstr(c0, "finish_reason"), *seq = jstr(c0, "stop_sequence");
    if (fr) snprintf(c->anth.stop_reason, sizeof c->anth.stop_reason, "%s", fr);
    if (seq) snprintf(c->anth.stop_seq, sizeof c->anth.stop_seq, "%s", seq);
    cJSON_Delete(j);
}

/* content_block_stop, message_delta (with the switchyard object), message_stop. */
static void stream_close(api_call_t *c, const exec_result_t *r, double cost)
{
    block_stop(c);
    api_anth_stream_t *s = &c->anth;
    jsonw_t j = ev_begin(c, "message_delta");
    jsonw_key(&j, "delta");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "stop_reason");
    jsonw_str(&j, stop_reason(s->stop_reason[0] ? s->stop_reason : NULL, s->stop_seq[0]));
    jsonw_key(&j, "stop_sequence");
    if (s->stop_seq[0])
        jsonw_str(&j, s->stop_seq);
    else
        jsonw_null(&j);
    jsonw_obj_end(&j);
    usage(&j, r->tokens_in ? r->tokens_in : c->d.est_tokens_in, r->tokens_out);
    jsonw_key(&j, "switchyard");
    api_sy_object_write(c, r, cost, &j);
    ev_end(c, &j, "message_delta");
    j = ev_begin(c, "message_stop");
    ev_end(c, &j, "message_stop");
}

/* A whole OpenAI answer fed through the stream translation, as one chunk. */
static void replay(api_call_t *c, const exec_result_t *r, cJSON *ans)
{
    const char *model = jstr(ans, "model");
    msg_start(c, model ? model : r->tier >= 0 ? c->w->app->tiers[r->tier].s.model : "");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content)) text_delta(c, content->valuestring, strlen(content->valuestring));
    const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), *tc;
    int pos = 0;
    cJSON_ArrayForEach(tc, tcs)
    {
        c->anth.tool_index = -1; /* each entry its own block */
        tool_call(c, tc, pos++);
    }
    const char *fr = jstr(c0, "finish_reason"), *seq = jstr(c0, "stop_sequence");
    if (fr) snprintf(c->anth.stop_reason, sizeof c->anth.stop_reason, "%s", fr);
    if (seq) snprintf(c->anth.stop_seq, sizeof c->anth.stop_seq, "%s", seq);
}

/* ---------------------------------------------------------- messages ---- */

/* The message object for a whole OpenAI answer, with the switchyard object. */
static void message(api_call_t *c, const exec_result_t *r, double cost, cJSON *ans, buf_t *b)
{
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), *tc;
    const char *seq = jstr(c0, "stop_sequence");
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "id");
    jsonw_str(&j, c->id);
    jsonw_key(&j, "type");
    jsonw_str(&j, "message");
    jsonw_key(&j, "role");
    jsonw_str(&j, "assistant");
    jsonw_key(&j, "model");
    jsonw_str(&j, jstr(ans, "model") ? jstr(ans, "model")
                  : r->tier >= 0     ? c->w->app->tiers[r->tier].s.model
                                     : "");
    jsonw_key(&j, "content");
    jsonw_arr_begin(&j);
    if (cJSON_IsString(content) && *content->valuestring) {
        jsonw_obj_begin(&j);
        jsonw_key(&j, "type");
        jsonw_str(&j, "text");
        jsonw_key(&j, "text");
        jsonw_str(&j, content->valuestring);
        jsonw_obj_end(&j);
    }
    cJSON_ArrayForEach(tc, tcs)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *args = jstr(fn, "arguments");
        jsonw_obj_begin(&j);
        jsonw_key(&j, "type");
        jsonw_str(&j, "tool_use");
        jsonw_key(&j, "id");
        jsonw_str(&j, jstr(tc, "id") ? jstr(tc, "id") : "");
        jsonw_key(&j, "name");
        jsonw_str(&j, jstr(fn, "name") ? jstr(fn, "name") : "");
        jsonw_key(&j, "input");
        cJSON *in = args ? cJSON_Parse(args) : NULL;
        if (cJSON_IsObject(in)) {
            jsonw_raw(&j, args, strlen(args));
        } else {
            /* A model's arguments that are not a JSON object: kept, as a string. */
            jsonw_obj_begin(&j);
            jsonw_key(&j, "arguments");
            jsonw_str(&j, args ? args : "");
            jsonw_obj_end(&j);
        }
        cJSON_Delete(in);
        jsonw_obj_end(&j);
    }
    jsonw_arr_end(&j);
    jsonw_key(&j, "stop_reason");
    jsonw_str(&j, stop_reason(jstr(c0, "finish_reason"), seq != NULL));
    jsonw_key(&j, "stop_sequence");
    if (seq)
        jsonw_str(&j, seq);
    else
        jsonw_null(&j);
    usage(&j, r->tokens_in ? r->tokens_in : c->d.est_tokens_in, r->tokens_out);
    jsonw_key(&j, "switchyard");
    api_sy_object_write(c, r, cost, &j);
    jsonw_obj_end(&j);
}

void api_anthropic_finish(api_call_t *c, exec_result_t *r, double cost)
{
    if (r->streamed) {
        if (r->status != 200) {
            char msg[sizeof r->message + 40];
            snprintf(msg, sizeof msg, "the tier failed mid-stream: %s",
                     r->message[0] ? r->message : r->err_type);
            jsonw_t j = ev_begin(c, "error");
            jsonw_key(&j, "error");
            jsonw_obj_begin(&j);
            jsonw_key(&j, "type");
            jsonw_str(&j, "api_error");
            jsonw_key(&j, "message");
            jsonw_str(&j, msg);
            jsonw_obj_end(&j);
            ev_end(c, &j, "error");
        } else {
            msg_start(c, r->tier >= 0 ? c->w->app->tiers[r->tier].s.model : "");
            stream_close(c, r, cost);
        }
        http_res_stream_end(c->res);
        return;
    }
    if (r->status != 200) {
        api_set_sy_headers(c, r, r->tier);
        api_anthropic_send_error(c->w, c->res, r->status, r->message);
        return;
    }
    cJSON *ans = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    api_set_sy_headers(c, r, r->tier);
    if (c->req.stream) {
        http_res_header(c->res, "Cache-Control", "no-cache");
        http_res_stream_begin(c->res, 200, "text/event-stream");
        replay(c, r, ans);
        stream_close(c, r, cost);
        http_res_stream_end(c->res);
    } else {
        buf_t *b = &c->w->render; /* free until the next request on this worker */
        buf_reset(b);
        message(c, r, cost, ans, b);
        api_send_json(c->res, 200, b);
    }
    cJSON_Delete(ans);
}
