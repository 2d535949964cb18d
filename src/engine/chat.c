/* chat.c — chat messages to a prompt with the model's own template, and a prompt to
 * token ids with special pieces parsed only where the template wrote them. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/jinja.h"
#include "engine/tokenizer.h"

engine_chat_t engine_chat_kind(const engine_t *e)
{
    return e->model->chat_template ? ENGINE_CHAT_TEMPLATE : ENGINE_CHAT_PLAIN;
}

void engine_prompt_init(engine_prompt_t *p, size_t max_bytes)
{
    jinja_out_init(p, max_bytes);
}

void engine_prompt_deinit(engine_prompt_t *p)
{
    jinja_out_deinit(p);
}

int engine_prompt_append(engine_prompt_t *p, const char *text, size_t len, bool from_request)
{
    size_t off = p->text.len;
    int rc = buf_append(&p->text, text, len);
    if (rc || !from_request || !len) return rc;
    jinja_span_t *last = p->n_spans ? &p->spans[p->n_spans - 1] : NULL;
    if (last && last->off + last->len == off) {
        last->len += len;
        return 0;
    }
    if (p->n_spans == p->cap_spans) {
        p->cap_spans = p->cap_spans ? 2 * p->cap_spans : 16;
        p->spans = mem_realloc(p->spans, p->cap_spans * sizeof *p->spans);
    }
    p->spans[p->n_spans++] = (jinja_span_t){off, len};
    return 0;
}

int engine_prompt_cut_after(engine_prompt_t *p, const char *text, size_t len)
{
    /* The last occurrence that lies inside request text: the template's own rendering
     * of the message, whatever it wrote around it. */
    for (size_t i = p->n_spans; i-- > 0;) {
        const jinja_span_t *sp = &p->spans[i];
        if (sp->len < len) continue;
        const char *base = p->text.data + sp->off;
        for (size_t at = sp->len - len + 1; at-- > 0;) {
            if (memcmp(base + at, text, len)) continue;
            size_t end = sp->off + at + len;
            p->text.len = end;
            p->text.data[end] = 0;
            p->n_spans = i + 1;
            p->spans[i].len = at + len;
            return 0;
        }
    }
    return SY_EINVAL;
}

/* The vocabulary's piece for id as a JSON string in ctx under key ("" when none). */
static void add_piece(cJSON *ctx, const char *key, const tokenizer_t *t, int id)
{
    const char *p = id >= 0 ? tokenizer_piece(t, id) : NULL;
    cJSON_AddStringToObject(ctx, key, p ? p : "");
}

/* No template (a base model such as stories260K continues text): the contents, one
 * per line. Said so in docs/engine.md; engine_chat_kind tells a caller. */
static int render_plain(const cJSON *messages, engine_prompt_t *out, char *err, size_t errlen)
{
    int rc = 0, i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(c)) continue;
        if (i++ && (rc = engine_prompt_append(out, "\n", 1, false))) break;
        if ((rc = engine_prompt_append(out, c->valuestring, strlen(c->valuestring), true))) break;
    }
    if (rc) snprintf(err, errlen, "chat: the prompt passes %zu bytes", out->text.max);
    return rc;
}

int engine_chat_render_json(const engine_t *e, const cJSON *messages, const cJSON *tools,
                            bool add_assistant, engine_prompt_t *out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = 0;
    if (!cJSON_IsArray(messages)) {
        snprintf(err, errlen, "chat: messages must be an array");
        return SY_EINVAL;
    }
    const model_t *m = e->model;
    if (!m->chat_template) return render_plain(messages, out, err, errlen);
    jinja_tmpl_t *t;
    char perr[400];
    int rc = jinja_parse(m->chat_template, strlen(m->chat_template), &t, perr, sizeof perr);
    if (rc) {
        snprintf(err, errlen, "the model's chat template is not supported: %s", perr);
        return rc == SY_EPARSE ? SY_EUNSUPPORTED : rc;
    }
    /* The context: borrowed items are referenced, not copied. */
    cJSON *ctx = cJSON_CreateObject();
    cJSON_AddItemToObject(ctx, "messages", cJSON_CreateArrayReference(messages->child));
    if (tools && cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0)
        cJSON_AddItemToObject(ctx, "tools", cJSON_CreateArrayReference(tools->child));
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_assistant);
    cJSON *trusted = cJSON_CreateObject();
    add_piece(trusted, "bos_token", m->tok, tokenizer_bos(m->tok));
    add_piece(trusted, "eos_token", m->tok, tokenizer_eos(m->tok));
    jinja_limits_t lim = {.max_output = out->text.max};
    rc = jinja_render(t, ctx, trusted, &lim, out, err, errlen);
    cJSON_Delete(ctx);
    cJSON_Delete(trusted);
    jinja_free(t);
    return rc;
}

int engine_chat_render(const engine_t *e, const engine_msg_t *msgs, size_t n, bool add_assistant,
                       engine_prompt_t *out, char *err, size_t errlen)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            cJSON_Delete(arr);
            if (err && errlen) snprintf(err, errlen, "chat: message %zu has no role or content", i);
            return SY_EINVAL;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", msgs[i].role);
        cJSON_AddStringToObject(o, "content", msgs[i].content);
        cJSON_AddItemToArray(arr, o);
    }
    int rc = engine_chat_render_json(e, arr, NULL, add_assistant, out, err, errlen);
    cJSON_Delete(arr);
    return rc;
}

int engine_prompt_tokenize(const engine_t *e, const engine_prompt_t *p, bool add_bos, int *ids,
                           int max)
{
    const tokenizer_t *t = e->model->tok;
    const char *text = p->text.data ? p->text.data : "";
    size_t len = p->text.len;
    /* A template that writes BOS itself ({{ bos_token }}) must not get a second one. */
    int bos = tokenizer_bos(t);
    const char *bp = bos >= 0 ? tokenizer_piece(t, bos) : NULL;
    size_t bl = bp ? strlen(bp) : 0;
    if (add_bos && bl && len >= bl && !memcmp(text, bp, bl) &&
        !(p->n_spans && p->spans[0].off < bl))
        add_bos = false;
    tokenizer_span_t stack[64], *sp = stack;
    if (p->n_spans > 64) sp = mem_alloc(p->n_spans * sizeof *sp);
    for (size_t i = 0; i < p->n_spans; i++)
        sp[i] = (tokenizer_span_t){p->spans[i].off, p->spans[i].len};
    int n = tokenizer_encode_spans(t, text, len, add_bos, true, sp, p->n_spans, ids, max);
    if (sp != stack) mem_free(sp);
    return n;
}
