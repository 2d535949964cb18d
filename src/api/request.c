/* request.c — OpenAI request validation and metadata extraction. */
#include "api/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"

/* Top-level fields OpenAI accepts for chat completions (anything else is a 400,
 * as OpenAI itself answers "Unrecognized request argument supplied"). */
static const char *const chat_fields[] = {"messages",
                                          "model",
                                          "frequency_penalty",
                                          "logit_bias",
                                          "logprobs",
                                          "top_logprobs",
                                          "max_tokens",
                                          "max_completion_tokens",
                                          "n",
                                          "presence_penalty",
                                          "response_format",
                                          "seed",
                                          "service_tier",
                                          "stop",
                                          "stream",
                                          "stream_options",
                                          "temperature",
                                          "top_p",
                                          "tools",
                                          "tool_choice",
                                          "parallel_tool_calls",
                                          "user",
                                          "metadata",
                                          "store",
                                          "modalities",
                                          "prediction",
                                          "audio",
                                          "reasoning_effort",
                                          "functions",
                                          "function_call",
                                          "web_search_options",
                                          NULL};
static const char *const completion_fields[] = {"prompt",
                                                "model",
                                                "best_of",
                                                "echo",
                                                "frequency_penalty",
                                                "logit_bias",
                                                "logprobs",
                                                "max_tokens",
                                                "n",
                                                "presence_penalty",
                                                "seed",
                                                "stop",
                                                "stream",
                                                "stream_options",
                                                "suffix",
                                                "temperature",
                                                "top_p",
                                                "user",
                                                "metadata",
                                                NULL};
static const char *const roles[] = {"system", "developer", "user", "assistant",
                                    "tool",   "function",  NULL};

typedef struct pctx {
    api_request_t *r;
    arena_t *a;
    char *err;
    size_t errlen;
    char *param;
    size_t paramlen;
    int msg, part; /* indexes of the message and content part being parsed (part -1: none) */
    char path[96]; /* where()'s text */
} pctx_t;

static int bad(pctx_t *p, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(pctx_t *p, int code, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    snprintf(p->param, p->paramlen, "%s", param);
    return code;
}

/* The path of the message (and content part) being parsed, as errors name it:
 * "messages[2]" + tail, or "messages[2].content[0]" + tail while a part is read.
 * Formatted only when an error is reported; written into p->path. */
static const char *where(pctx_t *p, const char *tail)
{
    if (p->part >= 0)
        snprintf(p->path, sizeof p->path, "messages[%d].content[%d]%s", p->msg, p->part, tail);
    else
        snprintf(p->path, sizeof p->path, "messages[%d]%s", p->msg, tail);
    return p->path;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list)) return true;
    return false;
}

static int add_text(pctx_t *p, const char *role, const char *s, size_t n)
{
    api_request_t *r = p->r;
    if (r->n_texts >= API_MAX_TEXTS)
        return bad(p, SY_ETOOBIG, "messages", "the request holds more than %d text parts",
                   API_MAX_TEXTS);
    if (n == 0) return 0;
    r->texts[r->n_texts++] = (route_text_t){role, s, n};
    r->prompt_bytes += n;
    return 0;
}

/* Content: a string, null, or an array of parts ({"type":"text","text":...}, image,
 * audio, file parts pass through unscanned except their text fields). */
static int parse_content(pctx_t *p, const char *role, cJSON *c)
{
    if (cJSON_IsString(c)) return add_text(p, role, c->valuestring, strlen(c->valuestring));
    if (cJSON_IsNull(c) || !c) return 0;
    const char *w;
    if (!cJSON_IsArray(c)) {
        w = where(p, ".content");
        return bad(p, SY_EINVAL, w, "%s must be a string or an array of content parts", w);
    }
    p->part = 0;
    cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        if (!cJSON_IsObject(part)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s must be an object", w);
        }
        cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(type)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.type must be a string", w);
        }
        if (!strcmp(type->valuestring, "text")) {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(t)) {
                w = where(p, "");
                return bad(p, SY_EINVAL, w, "%s.text must be a string", w);
            }
            int rc = add_text(p, role, t->valuestring, strlen(t->valuestring));
            if (rc) return rc;
        } else if (strcmp(type->valuestring, "image_url") &&
                   strcmp(type->valuestring, "input_audio") && strcmp(type->valuestring, "file") &&
                   strcmp(type->valuestring, "refusal")) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.type '%s' is not a known content part type", w,
                       type->valuestring);
        }
        p->part++;
    }
    p->part = -1;
    return 0;
}

static int parse_messages(pctx_t *p, cJSON *msgs)
{
    if (!msgs) return bad(p, SY_EINVAL, "messages", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return bad(p, SY_EINVAL, "messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return bad(p, SY_EINVAL, "messages", "'messages' must not be empty");
    if (n > API_MAX_MESSAGES)
        return bad(p, SY_ETOOBIG, "messages", "at most %d messages", API_MAX_MESSAGES);
    p->msg = 0;
    p->part = -1;
    const char *w;
    cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!cJSON_IsObject(m)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s must be an object", w);
        }
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.role is required and must be a string", w);
        }
        if (!in_list(role->valuestring, roles)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w,
                       "%s.role '%s' must be one of system, developer, user, assistant, tool", w,
                       role->valuestring);
        }
        const char *rl = role->valuestring;
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        cJSON *tool_calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (!content && !tool_calls && strcmp(rl, "assistant")) {
            w = where(p, ".content");
            return bad(p, SY_EINVAL, w, "%s is required", w);
        }
        int rc = parse_content(p, rl, content);
        if (rc) return rc;
        cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        if (name) {
            if (!cJSON_IsString(name)) {
                w = where(p, "");
                return bad(p, SY_EINVAL, w, "%s.name must be a string", w);
            }
            if ((rc = add_text(p, rl, name->valuestring, strlen(name->valuestring)))) return rc;
        }
        if (tool_calls) {
            if (!cJSON_IsArray(tool_calls)) {
                w = where(p, "");
                return bad(p, SY_EINVAL, w, "%s.tool_calls must be an array", w);
            }
            cJSON *tc;
            cJSON_ArrayForEach(tc, tool_calls)
            {
                cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                cJSON *args = fn ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
                cJSON *fname = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
                if (!cJSON_IsObject(tc) || !cJSON_IsObject(fn)) {
                    w = where(p, "");
                    return bad(p, SY_EINVAL, w, "%s.tool_calls[] must hold a function object", w);
                }
                if (cJSON_IsString(args) &&
                    (rc = add_text(p, "tool_call", args->valuestring, strlen(args->valuestring))))
                    return rc;
                if (cJSON_IsString(fname) &&
                    (rc = add_text(p, "tool_call", fname->valuestring, strlen(fname->valuestring))))
                    return rc;
            }
        }
        p->r->n_messages++;
        p->msg++;
    }
    return 0;
}

static int num_field(pctx_t *p, cJSON *j, const char *k, double lo, double hi, bool integer,
                     double *out)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v || cJSON_IsNull(v)) return 1; /* absent */
    if (!cJSON_IsNumber(v)) return bad(p, SY_EINVAL, k, "'%s' must be a number", k);
    double d = v->valuedouble;
    if (integer && d != floor(d)) return bad(p, SY_EINVAL, k, "'%s' must be an integer", k);
    if (d < lo || d > hi) return bad(p, SY_EINVAL, k, "'%s' must be between %g and %g", k, lo, hi);
    *out = d;
    return 0;
}

static void copy_meta(char *dst, const char *s, size_t n)
{
    if (n >= API_META_LEN) n = API_META_LEN - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Metadata from the body's "metadata" object; X-Switchyard-* headers override. */
static int parse_meta(pctx_t *p, cJSON *j, const http_req_t *hr)
{
    api_request_t *r = p->r;
    static const struct {
        const char *key, *header;
        size_t off;
    } keys[] = {
        {"tenant", "x-switchyard-tenant", offsetof(api_request_t, tenant)},
        {"team", "x-switchyard-team", offsetof(api_request_t, team)},
        {"feature", "x-switchyard-feature", offsetof(api_request_t, feature)},
        {"session", "x-switchyard-session", offsetof(api_request_t, session)},
        {"tier", "x-switchyard-tier", offsetof(api_request_t, forced_tier)},
    };
    char privacy[API_META_LEN] = "";
    cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    if (md && !cJSON_IsNull(md)) {
        if (!cJSON_IsObject(md))
            return bad(p, SY_EINVAL, "metadata", "'metadata' must be an object");
        cJSON *it;
        cJSON_ArrayForEach(it, md)
        {
            if (!cJSON_IsString(it))
                return bad(p, SY_EINVAL, "metadata", "metadata.%s must be a string", it->string);
            if (strlen(it->valuestring) >= API_META_LEN)
                return bad(p, SY_EINVAL, "metadata", "metadata.%s is longer than %d bytes",
                           it->string, API_META_LEN - 1);
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                if (!strcmp(it->string, keys[k].key))
                    copy_meta((char *)r + keys[k].off, it->valuestring, strlen(it->valuestring));
            if (!strcmp(it->string, "privacy"))
                copy_meta(privacy, it->valuestring, strlen(it->valuestring));
        }
    }
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t n;
        const char *v = http_req_header(hr, keys[k].header, &n);
        if (!v) continue;
        if (n >= API_META_LEN)
            return bad(p, SY_EINVAL, keys[k].header, "header %s is longer than %d bytes",
                       keys[k].header, API_META_LEN - 1);
        copy_meta((char *)r + keys[k].off, v, n);
    }
    size_t n;
    const char *v = http_req_header(hr, "x-switchyard-privacy", &n);
    if (v) copy_meta(privacy, v, n);
    if (privacy[0]) {
        if (!strcmp(privacy, "local_only"))
            r->privacy_local_only = true;
        else if (strcmp(privacy, "default"))
            return bad(p, SY_EINVAL, "metadata", "privacy '%s' must be 'local_only' or 'default'",
                       privacy);
    }
    /* The model field may name a tier: "switchyard/<tier>" or the tier name itself is
     * resolved by the caller; keep what the client asked. */
    cJSON_DeleteItemFromObjectCaseSensitive(j, "metadata");
    return 0;
}

int api_request_parse(api_request_t *r, const http_req_t *hr, bool completions, arena_t *a,
                      char *err, size_t errlen, char *param, size_t paramlen)
{
    memset(r, 0, sizeof *r);
    r->completions = completions;
    pctx_t p = {.r = r,
                .a = a,
                .err = err,
                .errlen = errlen,
                .param = param,
                .paramlen = paramlen,
                .part = -1};
    param[0] = 0;
    if (hr->body_len == 0)
        return bad(&p, SY_EPARSE, "", "the request body is empty: send a JSON object");
    size_t ctl;
    const char *ct = http_req_header(hr, "content-type", &ctl);
    if (ct && !(ctl >= 16 && !strncasecmp(ct, "application/json", 16)))
        return bad(&p, SY_EINVAL, "", "Content-Type must be application/json");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(hr->body, hr->body_len, &end, false);
    if (!j) {
        size_t off = end && end >= hr->body ? (size_t)(end - hr->body) : 0;
        return bad(&p, SY_EPARSE, "", "the body is not valid JSON (error near byte %zu)", off);
    }
    /* Trailing garbage after the object. */
    if (end) {
        const char *q = end;
        while (q < hr->body + hr->body_len && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
            q++;
        if (q < hr->body + hr->body_len) {
            cJSON_Delete(j);
            return bad(&p, SY_EPARSE, "", "the body has data after the JSON value (byte %zu)",
                       (size_t)(q - hr->body));
        }
    }
    r->json = j;
    int rc = 0;
    if (!cJSON_IsObject(j)) {
        rc = bad(&p, SY_EINVAL, "", "the body must be a JSON object");
        goto out;
    }
    const char *const *allowed = completions ? completion_fields : chat_fields;
    cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (!in_list(it->string, allowed)) {
            rc = bad(&p, SY_EINVAL, it->string, "Unrecognized request argument supplied: %s",
                     it->string);
            goto out;
        }
    }
    /* Texts: reserve the maximum in the arena once (pointers only). */
    r->texts = arena_alloc(a, sizeof(route_text_t) * API_MAX_TEXTS);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (model && !cJSON_IsString(model)) {
        rc = bad(&p, SY_EINVAL, "model", "'model' must be a string");
        goto out;
    }
    if (model) copy_meta(r->model, model->valuestring, strlen(model->valuestring));
    if (completions) {
        cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (!cJSON_IsString(prompt)) {
            rc = bad(&p, SY_EINVAL, "prompt", "'prompt' is required and must be a string");
            goto out;
        }
        if ((rc = add_text(&p, "user", prompt->valuestring, strlen(prompt->valuestring)))) goto out;
        r->n_messages = 1;
    } else if ((rc = parse_messages(&p, cJSON_GetObjectItemCaseSensitive(j, "messages")))) {
        goto out;
    }
    cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) {
        rc = bad(&p, SY_EINVAL, "stream", "'stream' must be true or false");
        goto out;
    }
    r->stream = cJSON_IsTrue(stream);
    cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            rc = bad(&p, SY_EINVAL, "stream_options", "'stream_options' must be an object");
            goto out;
        }
        r->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    double d;
    int k;
    if ((k = num_field(&p, j, "max_tokens", completions ? 0 : 1, 1 << 24, true, &d)) < 0) {
        rc = k;
        goto out;
    }
    if (k == 0) r->max_tokens = (uint32_t)d;
    if ((k = num_field(&p, j, "max_completion_tokens", 1, 1 << 24, true, &d)) < 0) {
        rc = k;
        goto out;
    }
    if (k == 0) r->max_tokens = (uint32_t)d;
    if ((k = num_field(&p, j, "temperature", 0, 2, false, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "top_p", 0, 1, false, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "presence_penalty", -2, 2, false, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "frequency_penalty", -2, 2, false, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "seed", -9.2e18, 9.2e18, true, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "top_logprobs", 0, 20, true, &d)) < 0) {
        rc = k;
        goto out;
    }
    if ((k = num_field(&p, j, "n", 1, 128, true, &d)) < 0) {
        rc = k;
        goto out;
    }
    if (k == 0 && d != 1) {
        rc =
            bad(&p, SY_EINVAL, "n", "only n=1 is supported: each choice may be routed differently");
        goto out;
    }
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    if (lp && !cJSON_IsNull(lp)) {
        if (completions) {
            if ((k = num_field(&p, j, "logprobs", 0, 20, true, &d)) < 0) {
                rc = k;
                goto out;
            }
        } else if (!cJSON_IsBool(lp)) {
            rc = bad(&p, SY_EINVAL, "logprobs", "'logprobs' must be true or false");
            goto out;
        }
    }
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsArray(stop)) {
            if (cJSON_GetArraySize(stop) > 4) {
                rc = bad(&p, SY_EINVAL, "stop", "'stop' holds at most 4 sequences");
                goto out;
            }
            cJSON_ArrayForEach(it, stop) if (!cJSON_IsString(it))
            {
                rc = bad(&p, SY_EINVAL, "stop", "'stop' must be a string or an array of strings");
                goto out;
            }
        } else if (!cJSON_IsString(stop)) {
            rc = bad(&p, SY_EINVAL, "stop", "'stop' must be a string or an array of strings");
            goto out;
        }
    }
    cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    if (user && !cJSON_IsString(user)) {
        rc = bad(&p, SY_EINVAL, "user", "'user' must be a string");
        goto out;
    }
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    if (tools && !cJSON_IsArray(tools)) {
        rc = bad(&p, SY_EINVAL, "tools", "'tools' must be an array");
        goto out;
    }
    rc = parse_meta(&p, j, hr);
out:
    if (rc) {
        cJSON_Delete(j);
        r->json = NULL;
    }
    return rc;
}

void api_request_deinit(api_request_t *r)
{
    cJSON_Delete(r->json);
    r->json = NULL;
}

void api_request_set_max_tokens(api_request_t *r, uint32_t n)
{
    r->max_tokens = n;
    cJSON_DeleteItemFromObjectCaseSensitive(r->json, "max_tokens");
    cJSON_AddNumberToObject(r->json, "max_tokens", n);
}
