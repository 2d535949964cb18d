/* oai_writer.c — typed events to an OpenAI-shaped answer (see oai_writer.h). */
#include "tier/oai_writer.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"

void oai_writer_init(oai_writer_t *w)
{
    memset(w, 0, sizeof *w);
    buf_t *bufs[] = {&w->json, &w->text, &w->lp,   &w->ltok,
                     &w->lval, &w->ltop, &w->loff, &w->choices};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        buf_init(bufs[i], OAI_WRITER_MAX);
}

void oai_writer_deinit(oai_writer_t *w)
{
    buf_t *bufs[] = {&w->json, &w->text, &w->lp,   &w->ltok,
                     &w->lval, &w->ltop, &w->loff, &w->choices};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        buf_deinit(bufs[i]);
}

size_t oai_writer_kept_bytes(const oai_writer_t *w)
{
    return w->json.cap + w->text.cap + w->lp.cap + w->ltok.cap + w->lval.cap + w->ltop.cap +
           w->loff.cap + w->choices.cap;
}

/* A fresh tool call id for the current choice. */
static void new_call_id(oai_writer_t *w, int choice)
{
    snprintf(w->call_id, sizeof w->call_id, "call_%016llx%08x",
             (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)w ^ 0x7001),
             (unsigned)(hash_mix((uintptr_t)w + (uint64_t)choice) & 0xffffffffu));
}

/* Empties the per-choice state for the next choice. */
static void choice_reset(oai_writer_t *w, int next)
{
    buf_reset(&w->text);
    buf_reset(&w->lp);
    buf_reset(&w->ltok);
    buf_reset(&w->lval);
    buf_reset(&w->ltop);
    buf_reset(&w->loff);
    w->text_off = 0;
    w->choice_gen = 0;
    w->call_head = false;
    w->in_call = false;
    w->args_sent = 0;
    new_call_id(w, next);
}

void oai_writer_begin(oai_writer_t *w, const oai_writer_opts_t *o)
{
    w->o = *o;
    snprintf(w->id, sizeof w->id, "%s", o->id ? o->id : "");
    snprintf(w->model, sizeof w->model, "%s", o->model ? o->model : "");
    w->o.id = w->id;
    w->o.model = w->model;
    buf_reset(&w->choices);
    w->prompt_tokens = w->completion_tokens = w->cached_tokens = 0;
    choice_reset(w, 0);
}

static void json_head(oai_writer_t *w, jsonw_t *j, bool chunk)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, w->id);
    jsonw_key(j, "object");
    jsonw_str(j, w->o.completions ? "text_completion"
                 : chunk          ? "chat.completion.chunk"
                                  : "chat.completion");
    jsonw_key(j, "created");
    jsonw_int(j, w->o.created);
    jsonw_key(j, "model");
    jsonw_str(j, w->model);
}

/* chunk_begin opens a stream chunk of a choice ({head, choices: [{index, ...);
 * chunk_end closes it and hands it to emit. */
static void chunk_begin(oai_writer_t *w, jsonw_t *j, int choice)
{
    buf_reset(&w->json);
    jsonw_init(j, &w->json);
    json_head(w, j, true);
    jsonw_key(j, "choices");
    jsonw_arr_begin(j);
    jsonw_obj_begin(j);
    jsonw_key(j, "index");
    jsonw_int(j, choice);
}

static int chunk_end(oai_writer_t *w, jsonw_t *j, oai_emit_fn emit, void *arg)
{
    jsonw_obj_end(j);
    jsonw_arr_end(j);
    jsonw_obj_end(j);
    if (jsonw_error(j)) return SY_ETOOBIG;
    emit(arg, w->json.data, w->json.len);
    return 0;
}

/* ------------------------------------------------------- tool calls ---- */

/* Where the arguments of the call in text begin (after {"name":"X","arguments":, the
 * grammar's literal prefix, maybe whitespace ahead), with the name's span; 0 while
 * the prefix is not complete. */
static size_t call_args_at(const char *text, size_t len, const char **name, size_t *nlen)
{
    static const char head[] = "{\"name\":\"", mid[] = "\",\"arguments\":";
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (len - i < sizeof head - 1 || memcmp(text + i, head, sizeof head - 1)) return 0;
    i += sizeof head - 1;
    const char *q = memchr(text + i, '"', len - i);
    if (!q || (size_t)(text + len - q) < sizeof mid - 1 || memcmp(q, mid, sizeof mid - 1)) return 0;
    *name = text + i;
    *nlen = (size_t)(q - (text + i));
    return (size_t)(q - text) + sizeof mid - 1;
}

/* One stream chunk of the call: the head (index, id, type, name, empty arguments) or
 * an arguments fragment. */
static int stream_call_chunk(oai_writer_t *w, int choice, const char *name, size_t nlen,
                             const char *args, size_t alen, oai_emit_fn emit, void *arg)
{
    jsonw_t j;
    chunk_begin(w, &j, choice);
    jsonw_key(&j, "delta");
    jsonw_obj_begin(&j);
    if (name) {
        jsonw_key(&j, "role");
        jsonw_str(&j, "assistant");
        jsonw_key(&j, "content");
        jsonw_null(&j);
    }
    jsonw_key(&j, "tool_calls");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "index");
    jsonw_int(&j, 0);
    if (name) {
        jsonw_key(&j, "id");
        jsonw_str(&j, w->call_id);
        jsonw_key(&j, "type");
        jsonw_str(&j, "function");
    }
    jsonw_key(&j, "function");
    jsonw_obj_begin(&j);
    if (name) {
        jsonw_key(&j, "name");
        jsonw_strn(&j, name, nlen);
    }
    jsonw_key(&j, "arguments");
    jsonw_strn(&j, args, alen);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    jsonw_key(&j, "logprobs");
    jsonw_null(&j);
    jsonw_key(&j, "finish_reason");
    jsonw_null(&j);
    return chunk_end(w, &j, emit, arg);
}

/* Stream: sends what is new of the call. The last byte is held back: at the end it is
 * the call object's closing brace, not part of the arguments. */
static int stream_call(oai_writer_t *w, int choice, oai_emit_fn emit, void *arg)
{
    const char *text = w->text.data ? w->text.data : "";
    int rc = 0;
    if (!w->call_head) {
        const char *name;
        size_t nlen;
        size_t at = call_args_at(text, w->text.len, &name, &nlen);
        if (!at) return 0;
        w->call_head = true;
        w->args_sent = at;
        rc = stream_call_chunk(w, choice, name, nlen, "", 0, emit, arg);
    }
    if (!rc && w->text.len > w->args_sent + 1) {
        size_t from = w->args_sent;
        w->args_sent = w->text.len - 1;
        rc = stream_call_chunk(w, choice, NULL, 0, text + from, w->args_sent - from, emit, arg);
    }
    return rc;
}

/* Whole answer: the message's tool_calls (one call) from the decoded text. */
static void write_tool_calls(oai_writer_t *w, jsonw_t *j)
{
    const char *text = w->text.data ? w->text.data : "";
    const char *name = "";
    size_t nlen = 0;
    size_t at = call_args_at(text, w->text.len, &name, &nlen);
    jsonw_key(j, "tool_calls");
    jsonw_arr_begin(j);
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, w->call_id);
    jsonw_key(j, "type");
    jsonw_str(j, "function");
    jsonw_key(j, "function");
    jsonw_obj_begin(j);
    jsonw_key(j, "name");
    jsonw_strn(j, name, nlen);
    jsonw_key(j, "arguments");
    jsonw_strn(j, text + at, w->text.len - at - 1); /* the call's closing brace left out */
    jsonw_obj_end(j);
    jsonw_obj_end(j);
    jsonw_arr_end(j);
}

/* -------------------------------------------------------- logprobs ---- */

/* One token's logprob entry in OpenAI's chat form. */
static void write_lp_entry(const oai_writer_t *w, jsonw_t *j, const tier_ev_t *ev)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "token");
    jsonw_strn(j, ev->tok, ev->tok_len);
    jsonw_key(j, "logprob");
    jsonw_double(j, ev->logprob);
    jsonw_key(j, "bytes");
    jsonw_arr_begin(j);
    for (uint32_t i = 0; i < ev->tok_len; i++)
        jsonw_int(j, (unsigned char)ev->tok[i]);
    jsonw_arr_end(j);
    jsonw_key(j, "top_logprobs");
    jsonw_arr_begin(j);
    for (int a = 0; a < ev->n_alts; a++) {
        jsonw_obj_begin(j);
        jsonw_key(j, "token");
        jsonw_strn(j, ev->alts[a].tok, ev->alts[a].len);
        jsonw_key(j, "logprob");
        jsonw_double(j, ev->alts[a].logprob);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
    jsonw_obj_end(j);
}

/* One token in the legacy completions form: parallel arrays of tokens, logprobs
 * (null where there is none: the first prompt token), top alternatives as {token:
 * logprob} objects, and byte offsets into the text. */
static int legacy_add(oai_writer_t *w, const tier_ev_t *ev)
{
    char key[256];
    jsonw_t j;
    int bad = 0;
    const char *sep = w->ltok.len ? "," : "";
    bad |= buf_puts(&w->ltok, sep);
    jsonw_init(&j, &w->ltok);
    jsonw_strn(&j, ev->tok, ev->tok_len);
    bad |= jsonw_error(&j);
    bad |= buf_puts(&w->lval, sep);
    jsonw_init(&j, &w->lval);
    if (ev->has_lp)
        jsonw_double(&j, ev->logprob);
    else
        jsonw_null(&j);
    bad |= jsonw_error(&j);
    bad |= buf_puts(&w->ltop, sep);
    jsonw_init(&j, &w->ltop);
    if (!ev->has_lp || ev->n_alts == 0) {
        jsonw_null(&j);
    } else {
        jsonw_obj_begin(&j);
        for (int a = 0; a < ev->n_alts; a++) {
            size_t m = ev->alts[a].len < sizeof key - 1 ? ev->alts[a].len : sizeof key - 1;
            memcpy(key, ev->alts[a].tok, m);
            key[m] = 0;
            jsonw_key(&j, key);
            jsonw_double(&j, ev->alts[a].logprob);
        }
        jsonw_obj_end(&j);
    }
    bad |= jsonw_error(&j);
    bad |= buf_puts(&w->loff, sep);
    bad |= buf_printf(&w->loff, "%zu", w->text_off);
    w->text_off += ev->len;
    return bad ? SY_ETOOBIG : 0;
}

/* ---------------------------------------------------------- events ---- */

/* A generated token. */
static int on_token(oai_writer_t *w, const tier_ev_t *ev, oai_emit_fn emit, void *arg)
{
    w->choice_gen++;
    if (ev->call) {
        w->in_call = true;
        if (buf_append(&w->text, ev->text, ev->len)) return SY_ETOOBIG;
        return w->o.stream ? stream_call(w, ev->choice, emit, arg) : 0;
    }
    if (!w->o.stream) {
        if (buf_append(&w->text, ev->text, ev->len)) return SY_ETOOBIG;
        if (w->o.logprobs && w->o.completions && ev->has_lp) {
            return legacy_add(w, ev);
        } else if (w->o.logprobs && ev->has_lp) {
            if (w->lp.len && buf_putc(&w->lp, ',')) return SY_ETOOBIG;
            jsonw_t j;
            jsonw_init(&j, &w->lp);
            write_lp_entry(w, &j, ev);
            if (jsonw_error(&j)) return SY_ETOOBIG;
        }
        return 0;
    }
    bool lp = w->o.logprobs && ev->has_lp;
    if (ev->len == 0 && !lp) return 0;
    jsonw_t j;
    chunk_begin(w, &j, ev->choice);
    if (w->o.completions) {
        jsonw_key(&j, "text");
        jsonw_strn(&j, ev->text, ev->len);
    } else {
        jsonw_key(&j, "delta");
        jsonw_obj_begin(&j);
        if (w->choice_gen == 1) {
            jsonw_key(&j, "role");
            jsonw_str(&j, "assistant");
        }
        jsonw_key(&j, "content");
        jsonw_strn(&j, ev->text, ev->len);
        jsonw_obj_end(&j);
    }
    jsonw_key(&j, "logprobs");
    if (lp && !w->o.completions) {
        jsonw_obj_begin(&j);
        jsonw_key(&j, "content");
        jsonw_arr_begin(&j);
        write_lp_entry(w, &j, ev);
        jsonw_arr_end(&j);
        jsonw_obj_end(&j);
    } else {
        jsonw_null(&j);
    }
    jsonw_key(&j, "finish_reason");
    jsonw_null(&j);
    return chunk_end(w, &j, emit, arg);
}

/* An echoed prompt token (whole answers only: a stream does not echo). */
static int on_echo(oai_writer_t *w, const tier_ev_t *ev)
{
    if (w->o.stream) return 0;
    if (buf_append(&w->text, ev->text, ev->len)) return SY_ETOOBIG;
    return w->o.logprobs ? legacy_add(w, ev) : 0;
}

/* A choice ended. Streamed: its closing chunk goes out. Whole: its object joins the
 * choices. Either way the per-choice state is emptied for the next. */
static int on_finish(oai_writer_t *w, const tier_ev_t *ev, oai_emit_fn emit, void *arg)
{
    /* A call cut short (max_tokens below its close, a stop string) is answered as the
     * text it is, finish_reason length/stop; streamed, its fragments already went out. */
    const char *name;
    size_t nlen;
    bool call = w->in_call && ev->complete &&
                call_args_at(w->text.data ? w->text.data : "", w->text.len, &name, &nlen);
    const char *reason = call ? "tool_calls" : ev->finish == TIER_FINISH_LENGTH ? "length" : "stop";
    jsonw_t j;
    int rc = 0;
    if (w->o.stream) {
        chunk_begin(w, &j, ev->choice);
        if (w->o.completions) {
            jsonw_key(&j, "text");
            jsonw_str(&j, "");
        } else {
            jsonw_key(&j, "delta");
            jsonw_obj_begin(&j);
            jsonw_obj_end(&j);
        }
        jsonw_key(&j, "finish_reason");
        jsonw_str(&j, reason);
        rc = chunk_end(w, &j, emit, arg);
        choice_reset(w, ev->choice + 1);
        return rc;
    }
    if (w->choices.len && buf_putc(&w->choices, ',')) return SY_ETOOBIG;
    jsonw_init(&j, &w->choices);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "index");
    jsonw_int(&j, ev->choice);
    if (w->o.completions) {
        jsonw_key(&j, "text");
        jsonw_strn(&j, w->text.data ? w->text.data : "", w->text.len);
    } else {
        jsonw_key(&j, "message");
        jsonw_obj_begin(&j);
        jsonw_key(&j, "role");
        jsonw_str(&j, "assistant");
        jsonw_key(&j, "content");
        if (call)
            jsonw_null(&j);
        else
            jsonw_strn(&j, w->text.data ? w->text.data : "", w->text.len);
        if (call) write_tool_calls(w, &j);
        jsonw_obj_end(&j);
    }
    jsonw_key(&j, "logprobs");
    if (w->o.logprobs && !w->o.completions) {
        jsonw_obj_begin(&j);
        jsonw_key(&j, "content");
        jsonw_raw(&j, "[", 1);
        if (buf_append(&w->choices, w->lp.data ? w->lp.data : "", w->lp.len) ||
            buf_puts(&w->choices, "]"))
            rc = SY_ETOOBIG;
        jsonw_obj_end(&j);
    } else if (w->o.logprobs) {
        const buf_t *arrs[4] = {&w->ltok, &w->lval, &w->ltop, &w->loff};
        const char *keys[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
        jsonw_obj_begin(&j);
        for (int k = 0; k < 4; k++) {
            jsonw_key(&j, keys[k]);
            jsonw_raw(&j, "[", 1);
            if (buf_append(&w->choices, arrs[k]->data ? arrs[k]->data : "", arrs[k]->len) ||
                buf_puts(&w->choices, "]"))
                rc = SY_ETOOBIG;
        }
        jsonw_obj_end(&j);
    } else {
        jsonw_null(&j);
    }
    jsonw_key(&j, "finish_reason");
    jsonw_str(&j, reason);
    jsonw_obj_end(&j);
    if (jsonw_error(&j)) rc = SY_ETOOBIG;
    choice_reset(w, ev->choice + 1);
    return rc;
}

static void write_usage(const oai_writer_t *w, jsonw_t *j)
{
    jsonw_key(j, "usage");
    jsonw_obj_begin(j);
    jsonw_key(j, "prompt_tokens");
    jsonw_uint(j, w->prompt_tokens);
    jsonw_key(j, "completion_tokens");
    jsonw_uint(j, w->completion_tokens);
    jsonw_key(j, "total_tokens");
    jsonw_uint(j, (uint64_t)w->prompt_tokens + w->completion_tokens);
    jsonw_key(j, "prompt_tokens_details");
    jsonw_obj_begin(j);
    jsonw_key(j, "cached_tokens");
    jsonw_uint(j, w->cached_tokens);
    jsonw_obj_end(j);
    jsonw_obj_end(j);
}

/* The usage: streamed, the last chunk (no choices); whole, kept for the answer. */
static int on_usage(oai_writer_t *w, const tier_ev_t *ev, oai_emit_fn emit, void *arg)
{
    w->prompt_tokens = ev->prompt_tokens;
    w->completion_tokens = ev->completion_tokens;
    w->cached_tokens = ev->cached_tokens;
    if (!w->o.stream) return 0;
    jsonw_t j;
    buf_reset(&w->json);
    jsonw_init(&j, &w->json);
    json_head(w, &j, true);
    jsonw_key(&j, "choices");
    jsonw_arr_begin(&j);
    jsonw_arr_end(&j);
    write_usage(w, &j);
    jsonw_obj_end(&j);
    if (jsonw_error(&j)) return SY_ETOOBIG;
    emit(arg, w->json.data, w->json.len);
    return 0;
}

int oai_writer_event(oai_writer_t *w, const tier_ev_t *ev, oai_emit_fn emit, void *arg)
{
    switch (ev->kind) {
    case TIER_EV_TOKEN:
        return on_token(w, ev, emit, arg);
    case TIER_EV_ECHO:
        return on_echo(w, ev);
    case TIER_EV_FINISH:
        return on_finish(w, ev, emit, arg);
    case TIER_EV_USAGE:
        return on_usage(w, ev, emit, arg);
    }
    return SY_EINVAL;
}

int oai_writer_answer(oai_writer_t *w, buf_t *out)
{
    jsonw_t j;
    jsonw_init(&j, out);
    json_head(w, &j, false);
    jsonw_key(&j, "choices");
    jsonw_raw(&j, "[", 1);
    int bad = buf_append(out, w->choices.data ? w->choices.data : "", w->choices.len);
    bad |= buf_puts(out, "]");
    write_usage(w, &j);
    jsonw_obj_end(&j);
    return bad || jsonw_error(&j) ? SY_ETOOBIG : 0;
}
