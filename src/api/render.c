/* render.c — write (or walk) the upstream body from the typed request. */
#include "api/render.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonw.h"

/* One walk: with j, writes; with fn, visits. Both may be set. */
typedef struct rw {
    jsonw_t *j;
    api_str_fn fn;
    void *arg;
    bool unknown; /* forward fields outside the schema */
    int msg;      /* message index for API_STR_FLOW */
    int rc;
} rw_t;

static void key(rw_t *w, const char *k)
{
    if (w->j) jsonw_key(w->j, k);
}

static void visit(rw_t *w, api_str_kind_t kind, const char *s, size_t n)
{
    if (w->fn && !w->rc) w->rc = w->fn(w->arg, kind, w->msg, s, n);
}

static void str(rw_t *w, api_str_kind_t kind, const cJSON *v)
{
    const char *s = v->valuestring ? v->valuestring : "";
    size_t n = strlen(s);
    visit(w, kind, s, n);
    if (w->j) jsonw_strn(w->j, s, n);
}

static void strn(rw_t *w, api_str_kind_t kind, const char *s, size_t n)
{
    visit(w, kind, s, n);
    if (w->j) jsonw_strn(w->j, s, n);
}

/* A number as JSON text: integers exactly (below 2^53, without printf: a body may
 * hold millions), others round-trip. */
static void number(rw_t *w, double x)
{
    char t[40];
    size_t n;
    if (!isfinite(x)) {
        n = (size_t)snprintf(t, sizeof t, "null");
    } else if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        uint64_t v = (uint64_t)fabs(x);
        char rev[24];
        size_t k = 0;
        do
            rev[k++] = (char)('0' + v % 10);
        while ((v /= 10));
        n = 0;
        if (x < 0) t[n++] = '-';
        while (k)
            t[n++] = rev[--k];
        t[n] = 0;
    } else {
        n = (size_t)snprintf(t, sizeof t, "%.17g", x);
    }
    visit(w, API_STR_OTHER, t, n);
    if (w->j) jsonw_raw(w->j, t, n);
}

/* Any JSON value, free-form: every key and scalar is visited. */
static void value(rw_t *w, const cJSON *v)
{
    const cJSON *c;
    if (cJSON_IsString(v)) {
        str(w, API_STR_OTHER, v);
    } else if (cJSON_IsNumber(v)) {
        number(w, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        if (w->j) jsonw_bool(w->j, cJSON_IsTrue(v));
    } else if (cJSON_IsArray(v)) {
        if (w->j) jsonw_arr_begin(w->j);
        for (c = v->child; c; c = c->next)
            value(w, c);
        if (w->j) jsonw_arr_end(w->j);
    } else if (cJSON_IsObject(v)) {
        if (w->j) jsonw_obj_begin(w->j);
        for (c = v->child; c; c = c->next) {
            visit(w, API_STR_OTHER, c->string, strlen(c->string));
            key(w, c->string);
            value(w, c);
        }
        if (w->j) jsonw_obj_end(w->j);
    } else {
        if (w->j) jsonw_null(w->j);
    }
}

static bool listed(const char *k, const char *const *known)
{
    for (; *known; known++)
        if (!strcmp(k, *known)) return true;
    return false;
}

/* The members of o the schema does not define (known: NULL-terminated), when the
 * policy forwards them. */
static void unknown_members(rw_t *w, const cJSON *o, const char *const *known)
{
    if (!w->unknown || !o) return;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (listed(c->string, known)) continue;
        visit(w, API_STR_OTHER, c->string, strlen(c->string));
        key(w, c->string);
        value(w, c);
    }
}

static const char *const part_type[] = {"text", "refusal", "image_url", "input_audio", "file"};

static void parts(rw_t *w, const api_message_t *m)
{
    if (w->j) jsonw_arr_begin(w->j);
    for (uint32_t i = 0; i < m->n_parts; i++) {
        const api_part_t *p = &m->parts[i];
        const char *t = part_type[p->kind];
        if (w->j) jsonw_obj_begin(w->j);
        key(w, "type");
        if (w->j) jsonw_str(w->j, t);
        key(w, t);
        if (p->kind == API_PART_TEXT || p->kind == API_PART_REFUSAL)
            str(w, API_STR_FLOW, p->value);
        else
            value(w, p->value);
        const char *known[] = {"type", t, NULL};
        unknown_members(w, p->node, known);
        if (w->j) jsonw_obj_end(w->j);
    }
    if (w->j) jsonw_arr_end(w->j);
}

static void opt_str(rw_t *w, const char *k, const cJSON *v)
{
    if (!v) return;
    key(w, k);
    str(w, API_STR_OTHER, v);
}

/* Every key and string inside v, decoded. */
static void visit_decoded(rw_t *w, const cJSON *v, int depth)
{
    for (; v && depth < 4096; v = v->next) {
        if (v->string) visit(w, API_STR_OTHER, v->string, strlen(v->string));
        if (cJSON_IsString(v)) visit(w, API_STR_OTHER, v->valuestring, strlen(v->valuestring));
        if (v->child) visit_decoded(w, v->child, depth + 1);
    }
}

/* Tool-call arguments: JSON text, sent as it is, which a tier may decode (an
 * Anthropic tier's tool_use input is that text parsed). An escape such as \u0040
 * hides a value from the scan of the raw text, so the walk also visits the decoded
 * strings when the text has escapes (text that is not JSON is visited raw only, and
 * an Anthropic render refuses it). */
static void arguments_decoded(rw_t *w, const cJSON *v)
{
    if (!w->fn || !cJSON_IsString(v) || !strchr(v->valuestring, '\\')) return;
    cJSON *j = cJSON_Parse(v->valuestring);
    if (j) visit_decoded(w, j, 0);
    cJSON_Delete(j);
}

static void arguments(rw_t *w, const cJSON *v)
{
    if (!v) return;
    key(w, "arguments");
    str(w, API_STR_OTHER, v);
    arguments_decoded(w, v);
}

static void tool_calls(rw_t *w, const api_message_t *m)
{
    static const char *const tc_known[] = {"id", "type", "function", NULL};
    static const char *const fn_known[] = {"name", "arguments", NULL};
    if (w->j) jsonw_arr_begin(w->j);
    for (uint32_t i = 0; i < m->n_tool_calls; i++) {
        const api_tool_call_t *t = &m->tool_calls[i];
        if (w->j) jsonw_obj_begin(w->j);
        opt_str(w, "id", t->id);
        opt_str(w, "type", t->type);
        key(w, "function");
        if (w->j) jsonw_obj_begin(w->j);
        opt_str(w, "name", t->name);
        arguments(w, t->arguments);
        unknown_members(w, t->function, fn_known);
        if (w->j) jsonw_obj_end(w->j);
        unknown_members(w, t->node, tc_known);
        if (w->j) jsonw_obj_end(w->j);
    }
    if (w->j) jsonw_arr_end(w->j);
}

static void messages(rw_t *w, const api_request_t *r)
{
    static const char *const known[] = {"role",    "content",       "name",       "tool_call_id",
                                        "refusal", "function_call", "tool_calls", NULL};
    if (w->j) jsonw_arr_begin(w->j);
    for (uint32_t i = 0; i < r->n_messages; i++) {
        const api_message_t *m = &r->messages[i];
        w->msg = (int)i;
        if (w->j) jsonw_obj_begin(w->j);
        key(w, "role");
        if (w->j) jsonw_str(w->j, m->role);
        if (m->has_parts) {
            key(w, "content");
            parts(w, m);
        } else if (m->content) {
            key(w, "content");
            if (cJSON_IsString(m->content))
                str(w, API_STR_FLOW, m->content);
            else if (w->j)
                jsonw_null(w->j);
        }
        opt_str(w, "name", m->name);
        opt_str(w, "tool_call_id", m->tool_call_id);
        opt_str(w, "refusal", m->refusal);
        if (m->function_call) {
            key(w, "function_call");
            value(w, m->function_call);
            arguments_decoded(w, cJSON_GetObjectItemCaseSensitive(m->function_call, "arguments"));
        }
        if (m->has_tool_calls) {
            key(w, "tool_calls");
            tool_calls(w, m);
        }
        unknown_members(w, m->node, known);
        if (w->j) jsonw_obj_end(w->j);
    }
    if (r->prefill) {
        /* The continuation's partial answer: sent, so visited like any content. */
        w->msg = (int)r->n_messages;
        if (w->j) jsonw_obj_begin(w->j);
        key(w, "role");
        if (w->j) jsonw_str(w->j, "assistant");
        key(w, "content");
        strn(w, API_STR_FLOW, r->prefill, r->prefill_len);
        if (w->j) jsonw_obj_end(w->j);
    }
    if (w->j) jsonw_arr_end(w->j);
}

/* The fields that depend on the tier and the attempt: model, stream, stream_options
 * and logprobs (the cascade asks for them). o NULL: visit the client's logprobs only. */
static void walk_head(rw_t *w, const api_request_t *r, const api_render_opts_t *o)
{
    const cJSON *lp = r->field[API_F_LOGPROBS];
    if (o && r->embeddings) {
        key(w, "model");
        jsonw_str(w->j, o->model);
        return;
    }
    if (o) {
        key(w, "model");
        jsonw_str(w->j, o->model);
        key(w, "stream");
        jsonw_bool(w->j, o->stream);
        if (o->stream) {
            key(w, "stream_options");
            jsonw_obj_begin(w->j);
            jsonw_key(w->j, "include_usage");
            jsonw_bool(w->j, true);
            jsonw_obj_end(w->j);
        }
    }
    if (o && r->prefill) {
        /* vLLM's names: the final assistant message is continued, not answered. */
        key(w, "continue_final_message");
        jsonw_bool(w->j, true);
        key(w, "add_generation_prompt");
        jsonw_bool(w->j, false);
    }
    if (o && o->logprobs && !r->completions) {
        key(w, "logprobs");
        jsonw_bool(w->j, true);
    } else if (lp && !cJSON_IsNull(lp)) {
        key(w, "logprobs");
        value(w, lp);
    }
}

/* An embeddings body: input (each string its own text), encoding_format, dimensions,
 * user, and the unknown fields. */
static void walk_embeddings(rw_t *w, const api_request_t *r)
{
    key(w, "input");
    if (cJSON_IsString(r->input)) {
        w->msg = 0;
        str(w, API_STR_FLOW, r->input);
    } else if (r->input_tokens) {
        value(w, r->input); /* token ids: the caller treats them as unscannable */
    } else {
        if (w->j) jsonw_arr_begin(w->j);
        w->msg = 0;
        for (const cJSON *c = r->input ? r->input->child : NULL; c; c = c->next, w->msg++)
            str(w, API_STR_FLOW, c);
        if (w->j) jsonw_arr_end(w->j);
    }
    if (r->encoding_format) {
        key(w, "encoding_format");
        str(w, API_STR_OTHER, r->encoding_format);
    }
    if (r->dimensions) {
        key(w, "dimensions");
        number(w, r->dimensions);
    }
    if (r->field[API_F_USER]) {
        key(w, "user");
        str(w, API_STR_OTHER, r->field[API_F_USER]);
    }
    for (size_t i = 0; w->unknown && i < r->n_unknown; i++) {
        const cJSON *u = r->unknown[i];
        visit(w, API_STR_OTHER, u->string, strlen(u->string));
        key(w, u->string);
        value(w, u);
    }
}

/* Every other field, the same for each attempt. */
static void walk_rest(rw_t *w, const api_request_t *r)
{
    if (r->embeddings) {
        walk_embeddings(w, r);
        return;
    }
    unsigned want = r->completions ? API_FF_COMP : API_FF_CHAT;
    for (int f = 0; f < API_F_COUNT; f++) {
        const api_field_t *d = &api_fields[f];
        const cJSON *v = r->field[f];
        if (!(d->flags & want)) continue;
        switch (f) {
        case API_F_MODEL:
        case API_F_STREAM:
        case API_F_STREAM_OPTIONS:
        case API_F_LOGPROBS:
            continue; /* walk_head's */
        case API_F_CONTINUE_FINAL_MESSAGE:
        case API_F_ADD_GENERATION_PROMPT:
            if (r->prefill) continue; /* walk_head writes them for a continuation */
            break;
        case API_F_MESSAGES:
            key(w, "messages");
            messages(w, r);
            continue;
        case API_F_PROMPT:
            key(w, "prompt");
            w->msg = 0;
            if (r->prompt_tokens)
                value(w, v); /* token ids: numbers, never sent beyond local tiers */
            else
                str(w, API_STR_FLOW, v);
            continue;
        case API_F_SUFFIX:
            if (!v) continue;
            key(w, "suffix");
            w->msg = 0;
            str(w, API_STR_FLOW, v);
            continue;
        case API_F_METADATA:
            continue; /* switchyard's own labels: never forwarded */
        default:
            break;
        }
        if (d->kind == API_FK_NUM) {
            if (!(r->num_set >> f & 1)) continue;
            key(w, d->name);
            number(w, r->num[f]);
        } else if (v) {
            key(w, d->name);
            value(w, v);
        }
    }
    for (size_t i = 0; w->unknown && i < r->n_unknown; i++) {
        const cJSON *u = r->unknown[i];
        visit(w, API_STR_OTHER, u->string, strlen(u->string));
        key(w, u->string);
        value(w, u);
    }
}

int api_render_rest(const api_request_t *r, bool forward_unknown, buf_t *out)
{
    jsonw_t j;
    jsonw_init(&j, out);
    rw_t w = {.j = &j, .unknown = forward_unknown};
    jsonw_obj_begin(&j);
    walk_rest(&w, r);
    jsonw_obj_end(&j);
    return jsonw_error(&j) ? SY_ETOOBIG : 0;
}

int api_render_body(const api_request_t *r, const api_render_opts_t *o, buf_t *out)
{
    jsonw_t j;
    jsonw_init(&j, out);
    rw_t w = {.j = &j, .unknown = o->forward_unknown};
    jsonw_obj_begin(&j);
    walk_head(&w, r, o);
    if (o->rest && !r->prefill) {
        /* The pre-rendered object's members, after the head's (never empty). */
        if (jsonw_error(&j)) return SY_ETOOBIG;
        if (o->rest_len > 2 &&
            (buf_putc(out, ',') || buf_append(out, o->rest + 1, o->rest_len - 2)))
            return SY_ETOOBIG;
        return buf_putc(out, '}') ? SY_ETOOBIG : 0;
    }
    walk_rest(&w, r);
    jsonw_obj_end(&j);
    return jsonw_error(&j) ? SY_ETOOBIG : 0;
}

int api_render_strings(const api_request_t *r, bool forward_unknown, api_str_fn fn, void *arg)
{
    rw_t w = {.fn = fn, .arg = arg, .unknown = forward_unknown};
    walk_head(&w, r, NULL);
    walk_rest(&w, r);
    return w.rc;
}
