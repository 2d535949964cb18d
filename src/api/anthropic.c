/* anthropic.c — Anthropic Messages bodies: parsed onto the typed request, and
 * rendered from it for anthropic tiers. */
#include "api/anthropic.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"

const char *api_anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* ================================================================ inbound ==== */

typedef struct actx {
    char *err;
    size_t errlen;
    char *param;
    size_t paramlen;
} actx_t;

static int bad(actx_t *p, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(actx_t *p, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    snprintf(p->param, p->paramlen, "%s", param);
    return SY_EINVAL;
}

static cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Checks that every key of o is in allowed (NULL-terminated); cache_control is
 * accepted anywhere Anthropic accepts it and not passed on (a caching hint). */
static int only_keys(actx_t *p, const cJSON *o, const char *path, const char *const *allowed)
{
    for (const cJSON *c = o->child; c; c = c->next) {
        bool ok = !strcmp(c->string, "cache_control");
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(c->string, *a);
        if (!ok) return bad(p, path, "%s.%.60s: Extra inputs are not permitted", path, c->string);
    }
    return 0;
}

static cJSON *add_str(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddItemToObject(o, k, cJSON_CreateString(v)) ? get(o, k) : NULL;
}

/* An image block's source as an OpenAI image_url part. */
static int image_part(actx_t *p, const cJSON *b, const char *path, cJSON *parts)
{
    static const char *const keys[] = {"type", "source", NULL};
    int rc = only_keys(p, b, path, keys);
    if (rc) return rc;
    cJSON *src = get(b, "source");
    cJSON *st = get(src, "type");
    if (!cJSON_IsObject(src) || !cJSON_IsString(st))
        return bad(p, path, "%s.source must be an object with a type", path);
    cJSON *part = cJSON_CreateObject();
    cJSON_AddItemToArray(parts, part);
    add_str(part, "type", "image_url");
    cJSON *iu = cJSON_AddObjectToObject(part, "image_url");
    if (!strcmp(st->valuestring, "base64")) {
        cJSON *mt = get(src, "media_type"), *data = get(src, "data");
        if (!cJSON_IsString(mt) || !cJSON_IsString(data))
            return bad(p, path, "%s.source needs media_type and data strings", path);
        size_t n = strlen(mt->valuestring) + strlen(data->valuestring) + 16;
        char *url = mem_alloc(n);
        snprintf(url, n, "data:%s;base64,%s", mt->valuestring, data->valuestring);
        add_str(iu, "url", url);
        mem_free(url);
    } else if (!strcmp(st->valuestring, "url")) {
        cJSON *u = get(src, "url");
        if (!cJSON_IsString(u)) return bad(p, path, "%s.source.url must be a string", path);
        add_str(iu, "url", u->valuestring);
    } else {
        return bad(p, path, "%s.source.type '%.40s' is not supported (base64, url)", path,
                   st->valuestring);
    }
    return 0;
}

/* A text block as a text part. */
static int text_part(actx_t *p, const cJSON *b, const char *path, cJSON *parts)
{
    static const char *const keys[] = {"type", "text", "citations", NULL};
    int rc = only_keys(p, b, path, keys);
    if (rc) return rc;
    cJSON *t = get(b, "text");
    if (!cJSON_IsString(t)) return bad(p, path, "%s.text must be a string", path);
    cJSON *part = cJSON_CreateObject();
    cJSON_AddItemToArray(parts, part);
    add_str(part, "type", "text");
    add_str(part, "text", t->valuestring);
    return 0;
}

/* A tool_result block as a tool message. */
static int tool_result(actx_t *p, const cJSON *b, const char *path, cJSON *msgs)
{
    static const char *const keys[] = {"type", "tool_use_id", "content", "is_error", NULL};
    int rc = only_keys(p, b, path, keys);
    if (rc) return rc;
    cJSON *id = get(b, "tool_use_id"), *content = get(b, "content"), *ie = get(b, "is_error");
    if (!cJSON_IsString(id)) return bad(p, path, "%s.tool_use_id must be a string", path);
    if (ie && !cJSON_IsBool(ie)) return bad(p, path, "%s.is_error must be a boolean", path);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(msgs, m);
    add_str(m, "role", "tool");
    add_str(m, "tool_call_id", id->valuestring);
    if (!content || cJSON_IsNull(content)) {
        add_str(m, "content", "");
    } else if (cJSON_IsString(content)) {
        add_str(m, "content", content->valuestring);
    } else if (cJSON_IsArray(content)) {
        cJSON *parts = cJSON_AddArrayToObject(m, "content");
        int i = 0;
        cJSON *c;
        cJSON_ArrayForEach(c, content)
        {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.content[%d]", path, i++);
            cJSON *t = get(c, "type");
            if (!cJSON_IsObject(c) || !cJSON_IsString(t))
                return bad(p, sub, "%s must be a block with a type", sub);
            if (strcmp(t->valuestring, "text"))
                return bad(p, sub, "%s: a tool_result may hold text blocks only here, not '%.40s'",
                           sub, t->valuestring);
            if ((rc = text_part(p, c, sub, parts))) return rc;
        }
    } else {
        return bad(p, path, "%s.content must be a string or an array of blocks", path);
    }
    return 0;
}

/* A tool_use block as a tool call. */
static int tool_use(actx_t *p, const cJSON *b, const char *path, cJSON *calls)
{
    static const char *const keys[] = {"type", "id", "name", "input", NULL};
    int rc = only_keys(p, b, path, keys);
    if (rc) return rc;
    cJSON *id = get(b, "id"), *name = get(b, "name"), *input = get(b, "input");
    if (!cJSON_IsString(id) || !cJSON_IsString(name) || !cJSON_IsObject(input))
        return bad(p, path, "%s needs id and name strings and an input object", path);
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddItemToArray(calls, tc);
    add_str(tc, "id", id->valuestring);
    add_str(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    add_str(fn, "name", name->valuestring);
    char *args = cJSON_PrintUnformatted(input);
    add_str(fn, "arguments", args ? args : "{}");
    cJSON_free(args);
    return 0;
}

/* One Anthropic message as one or more OpenAI messages appended to msgs. */
static int message(actx_t *p, const cJSON *m, int idx, cJSON *msgs)
{
    char path[64];
    snprintf(path, sizeof path, "messages[%d]", idx);
    if (!cJSON_IsObject(m)) return bad(p, path, "%s must be an object", path);
    static const char *const keys[] = {"role", "content", NULL};
    int rc = only_keys(p, m, path, keys);
    if (rc) return rc;
    cJSON *role = get(m, "role"), *content = get(m, "content");
    if (!cJSON_IsString(role) ||
        (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "assistant")))
        return bad(p, path, "%s.role must be 'user' or 'assistant'", path);
    bool user = !strcmp(role->valuestring, "user");
    if (cJSON_IsString(content)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(msgs, o);
        add_str(o, "role", role->valuestring);
        add_str(o, "content", content->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(content))
        return bad(p, path, "%s.content must be a string or an array of content blocks", path);
    cJSON *parts = cJSON_CreateArray(), *calls = cJSON_CreateArray();
    int i = 0;
    cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        char sub[128];
        snprintf(sub, sizeof sub, "%s.content[%d]", path, i++);
        cJSON *t = get(b, "type");
        if (!cJSON_IsObject(b) || !cJSON_IsString(t)) {
            rc = bad(p, sub, "%s must be a content block with a type", sub);
            break;
        }
        const char *ty = t->valuestring;
        if (!strcmp(ty, "text"))
            rc = text_part(p, b, sub, parts);
        else if (!strcmp(ty, "image") && user)
            rc = image_part(p, b, sub, parts);
        else if (!strcmp(ty, "tool_result") && user)
            rc = tool_result(p, b, sub, msgs); /* before the user's own blocks */
        else if (!strcmp(ty, "tool_use") && !user)
            rc = tool_use(p, b, sub, calls);
        else
            rc = bad(p, sub, "%s: content block type '%.40s' is not supported in a%s message", sub,
                     ty, user ? " user" : "n assistant");
        if (rc) break;
    }
    if (!rc &&
        (cJSON_GetArraySize(parts) || cJSON_GetArraySize(calls) || !cJSON_GetArraySize(content))) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(msgs, o);
        add_str(o, "role", role->valuestring);
        if (cJSON_GetArraySize(parts)) {
            cJSON_AddItemToObject(o, "content", parts);
            parts = NULL;
        } else if (user) {
            add_str(o, "content", "");
        } else {
            cJSON_AddNullToObject(o, "content");
        }
        if (cJSON_GetArraySize(calls)) {
            cJSON_AddItemToObject(o, "tool_calls", calls);
            calls = NULL;
        }
    }
    cJSON_Delete(parts);
    cJSON_Delete(calls);
    return rc;
}

/* system: a string or an array of text blocks, as the first message. */
static int system_msg(actx_t *p, const cJSON *sys, cJSON *msgs)
{
    if (!sys || cJSON_IsNull(sys)) return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(msgs, o);
    add_str(o, "role", "system");
    if (cJSON_IsString(sys)) {
        add_str(o, "content", sys->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(sys)) return bad(p, "system", "system must be a string or text blocks");
    cJSON *parts = cJSON_AddArrayToObject(o, "content");
    int i = 0;
    cJSON *b;
    cJSON_ArrayForEach(b, sys)
    {
        char sub[48];
        snprintf(sub, sizeof sub, "system[%d]", i++);
        cJSON *t = get(b, "type");
        if (!cJSON_IsObject(b) || !cJSON_IsString(t) || strcmp(t->valuestring, "text"))
            return bad(p, sub, "%s must be a text block", sub);
        int rc = text_part(p, b, sub, parts);
        if (rc) return rc;
    }
    return 0;
}

static int tools(actx_t *p, const cJSON *in, cJSON *out)
{
    if (!cJSON_IsArray(in)) return bad(p, "tools", "tools must be an array");
    cJSON *arr = cJSON_AddArrayToObject(out, "tools");
    int i = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, in)
    {
        char path[48];
        snprintf(path, sizeof path, "tools[%d]", i++);
        if (!cJSON_IsObject(t)) return bad(p, path, "%s must be an object", path);
        cJSON *ty = get(t, "type");
        if (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "custom")))
            return bad(p, path, "%s.type '%.60s': only client tools (custom) are supported", path,
                       cJSON_IsString(ty) ? ty->valuestring : "?");
        static const char *const keys[] = {"type", "name", "description", "input_schema", NULL};
        int rc = only_keys(p, t, path, keys);
        if (rc) return rc;
        cJSON *name = get(t, "name"), *desc = get(t, "description"),
              *schema = get(t, "input_schema");
        if (!cJSON_IsString(name)) return bad(p, path, "%s.name must be a string", path);
        if (desc && !cJSON_IsString(desc))
            return bad(p, path, "%s.description must be a string", path);
        if (!cJSON_IsObject(schema)) return bad(p, path, "%s.input_schema must be an object", path);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_str(o, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(o, "function");
        add_str(fn, "name", name->valuestring);
        if (desc) add_str(fn, "description", desc->valuestring);
        cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(schema, true));
    }
    return 0;
}

static int tool_choice(actx_t *p, const cJSON *tc, cJSON *out)
{
    cJSON *ty = get(tc, "type");
    if (!cJSON_IsObject(tc) || !cJSON_IsString(ty))
        return bad(p, "tool_choice", "tool_choice must be an object with a type");
    static const char *const keys[] = {"type", "name", "disable_parallel_tool_use", NULL};
    int rc = only_keys(p, tc, "tool_choice", keys);
    if (rc) return rc;
    const char *t = ty->valuestring;
    if (!strcmp(t, "auto")) {
        add_str(out, "tool_choice", "auto");
    } else if (!strcmp(t, "any")) {
        add_str(out, "tool_choice", "required");
    } else if (!strcmp(t, "none")) {
        add_str(out, "tool_choice", "none");
    } else if (!strcmp(t, "tool")) {
        cJSON *name = get(tc, "name");
        if (!cJSON_IsString(name))
            return bad(p, "tool_choice", "tool_choice.name must be a string for type 'tool'");
        cJSON *o = cJSON_AddObjectToObject(out, "tool_choice");
        add_str(o, "type", "function");
        add_str(cJSON_AddObjectToObject(o, "function"), "name", name->valuestring);
    } else {
        return bad(p, "tool_choice", "tool_choice.type must be auto, any, tool or none");
    }
    cJSON *dp = get(tc, "disable_parallel_tool_use");
    if (dp && !cJSON_IsBool(dp))
        return bad(p, "tool_choice", "tool_choice.disable_parallel_tool_use must be a boolean");
    if (cJSON_IsTrue(dp)) cJSON_AddFalseToObject(out, "parallel_tool_calls");
    return 0;
}

static int number(actx_t *p, const cJSON *in, const char *k, double lo, double hi, bool integer,
                  cJSON *out, const char *as)
{
    cJSON *v = get(in, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || (integer && v->valuedouble != floor(v->valuedouble)) ||
        v->valuedouble < lo || v->valuedouble > hi)
        return bad(p, k, "%s must be a%s number between %g and %g", k, integer ? "n integer" : "",
                   lo, hi);
    cJSON_AddNumberToObject(out, as, v->valuedouble);
    return 0;
}

/* metadata: user_id goes upstream as the end-user id; switchyard's own labels stay. */
static int metadata(actx_t *p, const cJSON *md, cJSON *out)
{
    if (!md || cJSON_IsNull(md)) return 0;
    if (!cJSON_IsObject(md)) return bad(p, "metadata", "metadata must be an object");
    static const char *const labels[] = {"tenant", "team", "feature", "session", "tier", "privacy"};
    cJSON *sy = NULL;
    for (cJSON *c = md->child; c; c = c->next) {
        if (!strcmp(c->string, "user_id")) {
            if (cJSON_IsNull(c)) continue;
            if (!cJSON_IsString(c))
                return bad(p, "metadata.user_id", "metadata.user_id must be a string");
            add_str(out, "user", c->valuestring);
            continue;
        }
        size_t k = 0;
        while (k < sizeof labels / sizeof labels[0] && strcmp(c->string, labels[k]))
            k++;
        if (k == sizeof labels / sizeof labels[0])
            return bad(p, "metadata",
                       "metadata.%.60s: Extra inputs are not permitted (user_id, or "
                       "switchyard's tenant, team, feature, session, tier, privacy)",
                       c->string);
        if (!sy) sy = cJSON_AddObjectToObject(out, "metadata");
        cJSON_AddItemToObject(sy, c->string, cJSON_Duplicate(c, true));
    }
    return 0;
}

/* The Anthropic body `in` as an OpenAI chat body (owned tree in *out). */
static int convert(actx_t *p, const cJSON *in, cJSON **out)
{
    cJSON *o = cJSON_CreateObject();
    *out = o;
    int rc;
    cJSON *model = get(in, "model");
    if (!cJSON_IsString(model)) return bad(p, "model", "model: Field required (a string)");
    add_str(o, "model", model->valuestring);
    cJSON *mt = get(in, "max_tokens");
    if (!mt) return bad(p, "max_tokens", "max_tokens: Field required");
    if ((rc = number(p, in, "max_tokens", 1, 1 << 24, true, o, "max_tokens"))) return rc;
    cJSON *msgs = get(in, "messages");
    if (!cJSON_IsArray(msgs)) return bad(p, "messages", "messages: Field required (an array)");
    if (!cJSON_GetArraySize(msgs))
        return bad(p, "messages", "messages: at least one message is required");
    cJSON *om = cJSON_AddArrayToObject(o, "messages");
    if ((rc = system_msg(p, get(in, "system"), om))) return rc;
    int i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, msgs) if ((rc = message(p, m, i++, om))) return rc;
    cJSON *ss = get(in, "stop_sequences");
    if (ss && !cJSON_IsNull(ss)) {
        if (!cJSON_IsArray(ss)) return bad(p, "stop_sequences", "stop_sequences must be an array");
        if (cJSON_GetArraySize(ss) > 4)
            return bad(p, "stop_sequences",
                       "stop_sequences: at most 4 sequences through switchyard");
        cJSON *s;
        cJSON_ArrayForEach(s, ss) if (!cJSON_IsString(s)) return bad(
            p, "stop_sequences", "stop_sequences must hold strings");
        if (cJSON_GetArraySize(ss)) cJSON_AddItemToObject(o, "stop", cJSON_Duplicate(ss, true));
    }
    if ((rc = number(p, in, "temperature", 0, 1, false, o, "temperature")) ||
        (rc = number(p, in, "top_p", 0, 1, false, o, "top_p")) ||
        (rc = number(p, in, "top_k", 0, 1 << 20, true, o, "top_k")))
        return rc;
    cJSON *st = get(in, "stream");
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsBool(st)) return bad(p, "stream", "stream must be a boolean");
        cJSON_AddBoolToObject(o, "stream", cJSON_IsTrue(st));
    }
    if ((rc = metadata(p, get(in, "metadata"), o))) return rc;
    cJSON *t = get(in, "tools");
    if (t && !cJSON_IsNull(t) && (rc = tools(p, t, o))) return rc;
    cJSON *tc = get(in, "tool_choice");
    if (tc && !cJSON_IsNull(tc) && (rc = tool_choice(p, tc, o))) return rc;
    /* The rest: Anthropic fields switchyard does not map, kept in the unknown bag
     * (scanned, forwarded or dropped by forward_unknown) unless the name means
     * something else in the typed request. */
    static const char *const mapped[] = {
        "model",  "max_tokens", "messages", "system",      "temperature",    "top_p", "top_k",
        "stream", "metadata",   "tools",    "tool_choice", "stop_sequences", NULL};
    for (const cJSON *c = in->child; c; c = c->next) {
        bool m2 = false;
        for (const char *const *k = mapped; *k && !m2; k++)
            m2 = !strcmp(c->string, *k);
        if (m2) continue;
        for (int f = 0; f < API_F_COUNT; f++)
            if (!strcmp(c->string, api_fields[f].name))
                return bad(p, c->string, "%.60s is not supported on /v1/messages", c->string);
        cJSON_AddItemToObject(o, c->string, cJSON_Duplicate(c, true));
    }
    return 0;
}

int api_anthropic_parse(api_request_t *r, const http_req_t *hr, arena_t *a, char *err,
                        size_t errlen, char *param, size_t paramlen)
{
    actx_t p = {err, errlen, param, paramlen};
    memset(r, 0, sizeof *r);
    param[0] = 0;
    if (hr->body_len == 0) {
        snprintf(err, errlen, "the request body is empty: send a JSON object");
        return SY_EPARSE;
    }
    const char *end = NULL;
    cJSON *in = cJSON_ParseWithLengthOpts(hr->body, hr->body_len, &end, false);
    if (!in) {
        size_t off = end && end >= hr->body ? (size_t)(end - hr->body) : 0;
        snprintf(err, errlen, "the body is not valid JSON (error near byte %zu)", off);
        return SY_EPARSE;
    }
    int rc = 0;
    cJSON *out = NULL;
    char dpath[256];
    if (!cJSON_IsObject(in)) {
        rc = bad(&p, "", "the body must be a JSON object");
    } else if ((rc = api_json_find_duplicate(in, dpath, sizeof dpath))) {
        rc =
            rc == SY_EPARSE
                ? bad(&p, dpath, "invalid UTF-8 at %s: JSON text must be UTF-8", dpath)
                : bad(&p, dpath, "duplicate key at %s: each key may appear once per object", dpath);
    } else {
        rc = convert(&p, in, &out);
    }
    cJSON_Delete(in);
    if (!rc) {
        /* The chat body is parsed as any other: one typed request, one set of checks.
         * Trailing bytes after the JSON value are refused there. */
        char *body = cJSON_PrintUnformatted(out);
        if (!body) abort();
        http_req_t h = *hr;
        size_t tail = end ? hr->body_len - (size_t)(end - hr->body) : 0;
        size_t n = strlen(body);
        char *joined = mem_alloc(n + tail + 1);
        memcpy(joined, body, n);
        if (tail) memcpy(joined + n, end, tail);
        joined[n + tail] = 0;
        cJSON_free(body);
        h.body = joined;
        h.body_len = n + tail;
        rc = api_request_parse(r, &h, false, a, err, errlen, param, paramlen);
        mem_free(joined);
    }
    cJSON_Delete(out);
    return rc;
}

/* =============================================================== outbound ==== */

static bool is_system(const api_message_t *m)
{
    return !strcmp(m->role, "system") || !strcmp(m->role, "developer");
}

static void text_block(jsonw_t *j, const char *s, size_t n)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "type");
    jsonw_str(j, "text");
    jsonw_key(j, "text");
    jsonw_strn(j, s, n);
    jsonw_obj_end(j);
}

/* A message's text as text blocks (string content, text and refusal parts). */
static void text_blocks(jsonw_t *j, const api_message_t *m)
{
    if (m->has_parts) {
        for (uint32_t i = 0; i < m->n_parts; i++) {
            const api_part_t *pt = &m->parts[i];
            if ((pt->kind == API_PART_TEXT || pt->kind == API_PART_REFUSAL) &&
                *pt->value->valuestring)
                text_block(j, pt->value->valuestring, strlen(pt->value->valuestring));
        }
    } else if (cJSON_IsString(m->content) && *m->content->valuestring) {
        text_block(j, m->content->valuestring, strlen(m->content->valuestring));
    }
}

/* An image_url part as an image block: a data: URL as base64 source, else a URL. */
static int image_block(jsonw_t *j, const api_part_t *pt)
{
    cJSON *u = cJSON_GetObjectItemCaseSensitive(pt->value, "url");
    if (!cJSON_IsString(u)) return SY_EINVAL;
    const char *s = u->valuestring;
    jsonw_obj_begin(j);
    jsonw_key(j, "type");
    jsonw_str(j, "image");
    jsonw_key(j, "source");
    jsonw_obj_begin(j);
    const char *semi = !strncmp(s, "data:", 5) ? strstr(s, ";base64,") : NULL;
    if (semi) {
        jsonw_key(j, "type");
        jsonw_str(j, "base64");
        jsonw_key(j, "media_type");
        jsonw_strn(j, s + 5, (size_t)(semi - s - 5));
        jsonw_key(j, "data");
        jsonw_str(j, semi + 8);
    } else {
        jsonw_key(j, "type");
        jsonw_str(j, "url");
        jsonw_key(j, "url");
        jsonw_str(j, s);
    }
    jsonw_obj_end(j);
    jsonw_obj_end(j);
    return 0;
}

static int user_content(jsonw_t *j, const api_message_t *m)
{
    if (!m->has_parts) {
        jsonw_str(j, cJSON_IsString(m->content) ? m->content->valuestring : "");
        return 0;
    }
    jsonw_arr_begin(j);
    for (uint32_t i = 0; i < m->n_parts; i++) {
        const api_part_t *pt = &m->parts[i];
        if (pt->kind == API_PART_TEXT || pt->kind == API_PART_REFUSAL) {
            text_block(j, pt->value->valuestring, strlen(pt->value->valuestring));
        } else if (pt->kind == API_PART_IMAGE_URL) {
            int rc = image_block(j, pt);
            if (rc) return rc;
        } else {
            return SY_EUNSUPPORTED; /* audio, files */
        }
    }
    jsonw_arr_end(j);
    return 0;
}

/* Assistant content: text blocks, then tool_use blocks whose input is the
 * arguments text itself (checked to be a JSON object: the bytes that leave are the
 * bytes the scan read). */
static int assistant_content(jsonw_t *j, const api_message_t *m)
{
    jsonw_arr_begin(j);
    text_blocks(j, m);
    for (uint32_t i = 0; i < m->n_tool_calls; i++) {
        const api_tool_call_t *t = &m->tool_calls[i];
        const char *args = t->arguments ? t->arguments->valuestring : "";
        size_t n = strlen(args);
        size_t k = 0;
        while (k < n && (args[k] == ' ' || args[k] == '\n' || args[k] == '\t' || args[k] == '\r'))
            k++;
        if (k < n) {
            cJSON *in = cJSON_ParseWithLength(args, n);
            bool obj = cJSON_IsObject(in);
            cJSON_Delete(in);
            if (!obj) return SY_EINVAL;
        }
        jsonw_obj_begin(j);
        jsonw_key(j, "type");
        jsonw_str(j, "tool_use");
        jsonw_key(j, "id");
        jsonw_str(j, t->id ? t->id->valuestring : "");
        jsonw_key(j, "name");
        jsonw_str(j, t->name ? t->name->valuestring : "");
        jsonw_key(j, "input");
        if (k < n)
            jsonw_raw(j, args, n);
        else
            jsonw_raw(j, "{}", 2);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
    return 0;
}

static void tool_result_block(jsonw_t *j, const api_message_t *m)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "type");
    jsonw_str(j, "tool_result");
    jsonw_key(j, "tool_use_id");
    jsonw_str(j, m->tool_call_id ? m->tool_call_id->valuestring : "");
    jsonw_key(j, "content");
    if (m->has_parts) {
        jsonw_arr_begin(j);
        text_blocks(j, m);
        jsonw_arr_end(j);
    } else {
        jsonw_str(j, cJSON_IsString(m->content) ? m->content->valuestring : "");
    }
    jsonw_obj_end(j);
}

static int messages(jsonw_t *j, const api_request_t *r)
{
    jsonw_key(j, "messages");
    jsonw_arr_begin(j);
    for (uint32_t i = 0; i < r->n_messages; i++) {
        const api_message_t *m = &r->messages[i];
        int rc = 0;
        if (is_system(m)) continue;
        if (!strcmp(m->role, "tool")) {
            /* Consecutive tool answers: one user turn of tool_result blocks. */
            jsonw_obj_begin(j);
            jsonw_key(j, "role");
            jsonw_str(j, "user");
            jsonw_key(j, "content");
            jsonw_arr_begin(j);
            for (; i < r->n_messages && !strcmp(r->messages[i].role, "tool"); i++)
                tool_result_block(j, &r->messages[i]);
            i--;
            jsonw_arr_end(j);
            jsonw_obj_end(j);
            continue;
        }
        if (!strcmp(m->role, "user")) {
            jsonw_obj_begin(j);
            jsonw_key(j, "role");
            jsonw_str(j, "user");
            jsonw_key(j, "content");
            rc = user_content(j, m);
            jsonw_obj_end(j);
        } else if (!strcmp(m->role, "assistant")) {
            bool text = m->has_parts ? m->n_parts > 0
                                     : cJSON_IsString(m->content) && *m->content->valuestring;
            if (!text && !m->n_tool_calls) continue; /* nothing said */
            jsonw_obj_begin(j);
            jsonw_key(j, "role");
            jsonw_str(j, "assistant");
            jsonw_key(j, "content");
            rc = assistant_content(j, m);
            jsonw_obj_end(j);
        } else {
            rc = SY_EUNSUPPORTED; /* legacy function messages */
        }
        if (rc) return rc;
    }
    if (r->prefill) {
        /* A continuation: the answer so far as the assistant's prefill, which the
         * Messages API continues. */
        jsonw_obj_begin(j);
        jsonw_key(j, "role");
        jsonw_str(j, "assistant");
        jsonw_key(j, "content");
        jsonw_strn(j, r->prefill, r->prefill_len);
        jsonw_obj_end(j);
    }
    jsonw_arr_end(j);
    return 0;
}

static const cJSON *unknown_field(const api_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_unknown; i++)
        if (!strcmp(r->unknown[i]->string, name)) return r->unknown[i];
    return NULL;
}

static int tools_out(jsonw_t *j, const api_request_t *r)
{
    const cJSON *tools = r->field[API_F_TOOLS];
    if (tools && cJSON_GetArraySize(tools)) {
        jsonw_key(j, "tools");
        jsonw_arr_begin(j);
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsString(name))
                return SY_EUNSUPPORTED;
            const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
            jsonw_obj_begin(j);
            jsonw_key(j, "name");
            jsonw_str(j, name->valuestring);
            if (cJSON_IsString(desc)) {
                jsonw_key(j, "description");
                jsonw_str(j, desc->valuestring);
            }
            jsonw_key(j, "input_schema");
            if (cJSON_IsObject(params)) {
                char *s = cJSON_PrintUnformatted(params);
                jsonw_raw(j, s ? s : "{}", s ? strlen(s) : 2);
                cJSON_free(s);
            } else {
                jsonw_raw(j, "{\"type\":\"object\"}", 17);
            }
            jsonw_obj_end(j);
        }
        jsonw_arr_end(j);
    }
    const cJSON *tc = r->field[API_F_TOOL_CHOICE];
    const cJSON *ptc = r->field[API_F_PARALLEL_TOOL_CALLS];
    bool no_parallel = cJSON_IsFalse(ptc);
    if (!tc && !no_parallel) return 0;
    jsonw_key(j, "tool_choice");
    jsonw_obj_begin(j);
    jsonw_key(j, "type");
    if (!tc || (cJSON_IsString(tc) && !strcmp(tc->valuestring, "auto"))) {
        jsonw_str(j, "auto");
    } else if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "required")) {
        jsonw_str(j, "any");
    } else if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "none")) {
        jsonw_str(j, "none");
    } else {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(name)) return SY_EUNSUPPORTED;
        jsonw_str(j, "tool");
        jsonw_key(j, "name");
        jsonw_str(j, name->valuestring);
    }
    if (no_parallel) {
        jsonw_key(j, "disable_parallel_tool_use");
        jsonw_bool(j, true);
    }
    jsonw_obj_end(j);
    return 0;
}

int api_anthropic_render(const api_request_t *r, const char *model, bool stream,
                         bool forward_unknown, buf_t *out)
{
    if (r->completions) return SY_EUNSUPPORTED;
    jsonw_t j;
    jsonw_init(&j, out);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "model");
    jsonw_str(&j, model);
    jsonw_key(&j, "max_tokens");
    jsonw_uint(&j, r->max_tokens ? r->max_tokens : API_ANTHROPIC_DEFAULT_MAX_TOKENS);
    jsonw_key(&j, "stream");
    jsonw_bool(&j, stream);
    bool any_system = false;
    for (uint32_t i = 0; i < r->n_messages; i++)
        any_system = any_system || is_system(&r->messages[i]);
    if (any_system) {
        /* Every system and developer message, in order, as the system prompt. */
        jsonw_key(&j, "system");
        jsonw_arr_begin(&j);
        for (uint32_t i = 0; i < r->n_messages; i++)
            if (is_system(&r->messages[i])) text_blocks(&j, &r->messages[i]);
        jsonw_arr_end(&j);
    }
    int rc = messages(&j, r);
    if (rc) return rc;
    const cJSON *stop = r->field[API_F_STOP];
    if (cJSON_IsString(stop) || (cJSON_IsArray(stop) && cJSON_GetArraySize(stop))) {
        jsonw_key(&j, "stop_sequences");
        jsonw_arr_begin(&j);
        if (cJSON_IsString(stop)) {
            jsonw_str(&j, stop->valuestring);
        } else {
            const cJSON *s;
            cJSON_ArrayForEach(s, stop) jsonw_str(&j, s->valuestring);
        }
        jsonw_arr_end(&j);
    }
    if (r->num_set >> API_F_TEMPERATURE & 1) {
        /* OpenAI's range is 0..2, Anthropic's 0..1. */
        jsonw_key(&j, "temperature");
        jsonw_double(&j, r->num[API_F_TEMPERATURE] > 1 ? 1.0 : r->num[API_F_TEMPERATURE]);
    }
    if (r->num_set >> API_F_TOP_P & 1) {
        jsonw_key(&j, "top_p");
        jsonw_double(&j, r->num[API_F_TOP_P]);
    }
    /* top_k sits in the unknown bag: it leaves under the same policy (and scan). */
    const cJSON *top_k = forward_unknown ? unknown_field(r, "top_k") : NULL;
    if (cJSON_IsNumber(top_k) && top_k->valuedouble >= 0 &&
        top_k->valuedouble == floor(top_k->valuedouble) && top_k->valuedouble <= (1 << 20)) {
        jsonw_key(&j, "top_k");
        jsonw_uint(&j, (uint64_t)top_k->valuedouble);
    }
    if ((rc = tools_out(&j, r))) return rc;
    const cJSON *user = r->field[API_F_USER];
    if (cJSON_IsString(user)) {
        jsonw_key(&j, "metadata");
        jsonw_obj_begin(&j);
        jsonw_key(&j, "user_id");
        jsonw_str(&j, user->valuestring);
        jsonw_obj_end(&j);
    }
    for (size_t i = 0; forward_unknown && i < r->n_unknown; i++) {
        const cJSON *u = r->unknown[i];
        if (!strcmp(u->string, "top_k")) continue;
        char *s = cJSON_PrintUnformatted(u);
        jsonw_key(&j, u->string);
        jsonw_raw(&j, s ? s : "null", s ? strlen(s) : 4);
        cJSON_free(s);
    }
    jsonw_obj_end(&j);
    return jsonw_error(&j) ? SY_ETOOBIG : 0;
}
