/* request.c — parse an OpenAI request body once into the typed api_request_t. */
#include "api/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"

#define C_ API_FF_CHAT
#define P_ API_FF_COMP
#define I_ API_FF_INT
const api_field_t api_fields[API_F_COUNT] = {
    [API_F_MODEL] = {"model", API_FK_OWN, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_MESSAGES] = {"messages", API_FK_OWN, C_, 0, 0, API_SHAPE_ANY},
    [API_F_PROMPT] = {"prompt", API_FK_OWN, P_, 0, 0, API_SHAPE_ANY},
    [API_F_SUFFIX] = {"suffix", API_FK_STR, P_, 0, 0, API_SHAPE_ANY},
    [API_F_ECHO] = {"echo", API_FK_BOOL, P_, 0, 0, API_SHAPE_ANY},
    [API_F_BEST_OF] = {"best_of", API_FK_NUM, P_ | I_, 0, 20, API_SHAPE_ANY},
    [API_F_TEMPERATURE] = {"temperature", API_FK_NUM, C_ | P_, 0, 2, API_SHAPE_ANY},
    [API_F_TOP_P] = {"top_p", API_FK_NUM, C_ | P_, 0, 1, API_SHAPE_ANY},
    [API_F_MAX_TOKENS] = {"max_tokens", API_FK_NUM, C_ | P_ | I_, 0, 1 << 24, API_SHAPE_ANY},
    [API_F_MAX_COMPLETION_TOKENS] = {"max_completion_tokens", API_FK_NUM, C_ | I_, 1, 1 << 24,
                                     API_SHAPE_ANY},
    [API_F_N] = {"n", API_FK_NUM, C_ | P_ | I_, 1, 128, API_SHAPE_ANY},
    [API_F_SEED] = {"seed", API_FK_NUM, C_ | P_ | I_, -9.2e18, 9.2e18, API_SHAPE_ANY},
    [API_F_PRESENCE_PENALTY] = {"presence_penalty", API_FK_NUM, C_ | P_, -2, 2, API_SHAPE_ANY},
    [API_F_FREQUENCY_PENALTY] = {"frequency_penalty", API_FK_NUM, C_ | P_, -2, 2, API_SHAPE_ANY},
    [API_F_LOGPROBS] = {"logprobs", API_FK_OWN, C_ | P_, 0, 20, API_SHAPE_ANY},
    [API_F_TOP_LOGPROBS] = {"top_logprobs", API_FK_NUM, C_ | I_, 0, 20, API_SHAPE_ANY},
    [API_F_LOGIT_BIAS] = {"logit_bias", API_FK_VALUE, C_ | P_, 0, 0, API_SHAPE_OBJECT},
    [API_F_STOP] = {"stop", API_FK_VALUE, C_ | P_, 0, 0, API_SHAPE_STR_OR_ARRAY},
    [API_F_STREAM] = {"stream", API_FK_OWN, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_STREAM_OPTIONS] = {"stream_options", API_FK_OWN, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_TOOLS] = {"tools", API_FK_VALUE, C_, 0, 0, API_SHAPE_ARRAY},
    [API_F_TOOL_CHOICE] = {"tool_choice", API_FK_VALUE, C_, 0, 0, API_SHAPE_STR_OR_OBJECT},
    [API_F_PARALLEL_TOOL_CALLS] = {"parallel_tool_calls", API_FK_BOOL, C_, 0, 0, API_SHAPE_ANY},
    [API_F_FUNCTIONS] = {"functions", API_FK_VALUE, C_, 0, 0, API_SHAPE_ARRAY},
    [API_F_FUNCTION_CALL] = {"function_call", API_FK_VALUE, C_, 0, 0, API_SHAPE_STR_OR_OBJECT},
    [API_F_RESPONSE_FORMAT] = {"response_format", API_FK_VALUE, C_, 0, 0, API_SHAPE_OBJECT},
    [API_F_USER] = {"user", API_FK_STR, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_METADATA] = {"metadata", API_FK_OWN, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_STORE] = {"store", API_FK_BOOL, C_, 0, 0, API_SHAPE_ANY},
    [API_F_SERVICE_TIER] = {"service_tier", API_FK_STR, C_, 0, 0, API_SHAPE_ANY},
    [API_F_MODALITIES] = {"modalities", API_FK_VALUE, C_, 0, 0, API_SHAPE_ARRAY},
    [API_F_AUDIO] = {"audio", API_FK_VALUE, C_, 0, 0, API_SHAPE_OBJECT},
    [API_F_PREDICTION] = {"prediction", API_FK_VALUE, C_, 0, 0, API_SHAPE_OBJECT},
    [API_F_REASONING_EFFORT] = {"reasoning_effort", API_FK_STR, C_, 0, 0, API_SHAPE_ANY},
    [API_F_WEB_SEARCH_OPTIONS] = {"web_search_options", API_FK_VALUE, C_, 0, 0, API_SHAPE_OBJECT},
    [API_F_VERBOSITY] = {"verbosity", API_FK_STR, C_, 0, 0, API_SHAPE_ANY},
    [API_F_PROMPT_CACHE_KEY] = {"prompt_cache_key", API_FK_STR, C_ | P_, 0, 0, API_SHAPE_ANY},
    [API_F_SAFETY_IDENTIFIER] = {"safety_identifier", API_FK_STR, C_, 0, 0, API_SHAPE_ANY},
    [API_F_RETURN_TOKENS_AS_TOKEN_IDS] = {"return_tokens_as_token_ids", API_FK_BOOL, P_, 0, 0,
                                          API_SHAPE_ANY},
    [API_F_CONTINUE_FINAL_MESSAGE] = {"continue_final_message", API_FK_BOOL, C_, 0, 0,
                                      API_SHAPE_ANY},
    [API_F_ADD_GENERATION_PROMPT] = {"add_generation_prompt", API_FK_BOOL, C_, 0, 0, API_SHAPE_ANY},
};
#undef C_
#undef P_
#undef I_
_Static_assert(API_F_COUNT <= 64, "num_set is a 64-bit mask");

static bool token_ids(const cJSON *a);

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

/* ------------------------------------------------------- duplicate keys ---- */

static int key_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Appends ".key" or "[i]" to path (truncated with "..." when it does not fit). */
static void path_push(char *path, size_t n, size_t at, const char *key, int idx)
{
    if (at >= n) return;
    int w = key ? snprintf(path + at, n - at, "%s%s", at ? "." : "", key)
                : snprintf(path + at, n - at, "[%d]", idx);
    if (w < 0 || (size_t)w >= n - at) {
        if (n > 4) memcpy(path + n - 4, "...", 4);
    }
}

/* Small objects are checked pairwise; larger ones sorted by key (a body of many
 * keys must not cost n^2). */
static const cJSON *dup_in_object(const cJSON *j)
{
    size_t n = 0;
    const cJSON *c;
    for (c = j->child; c; c = c->next)
        n++;
    if (n < 2) return NULL;
    if (n <= 16) {
        for (const cJSON *a = j->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string)) return b;
        return NULL;
    }
    const cJSON **v = malloc(n * sizeof *v);
    if (!v) abort();
    size_t i = 0;
    for (c = j->child; c; c = c->next)
        v[i++] = c;
    qsort(v, n, sizeof *v, key_cmp);
    const cJSON *hit = NULL;
    for (i = 1; i < n && !hit; i++)
        if (!strcmp(v[i - 1]->string, v[i]->string)) hit = v[i];
    free(v);
    return hit;
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). An
 * upstream decoding invalid bytes leniently (dropping them, say) would read a value
 * the scan never saw: "4111\xff1111..." becomes a card number. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : -1;
        if (n < 0 || c > 0xf4 || c == 0xc0 || c == 0xc1) return false;
        unsigned cp = c & (0x3fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

static int find_dup(const cJSON *j, char *path, size_t n, size_t at)
{
    if (cJSON_IsString(j) && !utf8_valid(j->valuestring)) return SY_EPARSE;
    if (cJSON_IsObject(j)) {
        for (const cJSON *c = j->child; c; c = c->next)
            if (!utf8_valid(c->string)) {
                path_push(path, n, at, "(a key)", 0);
                return SY_EPARSE;
            }
        const cJSON *d = dup_in_object(j);
        if (d) {
            path_push(path, n, at, d->string, 0);
            return SY_EINVAL;
        }
        for (const cJSON *c = j->child; c; c = c->next) {
            if (!cJSON_IsObject(c) && !cJSON_IsArray(c) && !cJSON_IsString(c)) continue;
            path_push(path, n, at, c->string, 0);
            int rc = find_dup(c, path, n, strnlen(path, n));
            if (rc) return rc;
            if (at < n) path[at] = 0;
        }
    } else if (cJSON_IsArray(j)) {
        int i = 0;
        for (const cJSON *c = j->child; c; c = c->next, i++) {
            if (!cJSON_IsObject(c) && !cJSON_IsArray(c) && !cJSON_IsString(c)) continue;
            path_push(path, n, at, NULL, i);
            int rc = find_dup(c, path, n, strnlen(path, n));
            if (rc) return rc;
            if (at < n) path[at] = 0;
        }
    }
    return 0;
}

int api_json_find_duplicate(const cJSON *j, char *path, size_t pathlen)
{
    if (!pathlen) return SY_EINVAL;
    path[0] = 0;
    return find_dup(j, path, pathlen, 0);
}

/* ------------------------------------------------------------- messages ---- */

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

/* A string member of o, or NULL when absent or null; a 400 when of another type. */
static int opt_str(pctx_t *p, cJSON *o, const char *key, cJSON **out)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) {
        const char *w = where(p, "");
        return bad(p, SY_EINVAL, w, "%s.%s must be a string", w, key);
    }
    *out = v;
    return 0;
}

static const struct {
    const char *type;
    api_part_kind_t kind;
    bool is_string; /* value is a string (else an object) */
} part_kinds[] = {
    {"text", API_PART_TEXT, true},
    {"refusal", API_PART_REFUSAL, true},
    {"image_url", API_PART_IMAGE_URL, false},
    {"input_audio", API_PART_INPUT_AUDIO, false},
    {"file", API_PART_FILE, false},
};

/* Content: a string, null, or an array of typed parts. */
static int parse_content(pctx_t *p, api_message_t *m, cJSON *c)
{
    if (!c) return 0;
    if (cJSON_IsString(c)) {
        m->content = c;
        return add_text(p, m->role, c->valuestring, strlen(c->valuestring));
    }
    if (cJSON_IsNull(c)) {
        m->content = c;
        return 0;
    }
    const char *w;
    if (!cJSON_IsArray(c)) {
        w = where(p, ".content");
        return bad(p, SY_EINVAL, w, "%s must be a string or an array of content parts", w);
    }
    int n = cJSON_GetArraySize(c);
    m->has_parts = true;
    m->parts = n ? arena_alloc(p->a, sizeof(api_part_t) * (size_t)n) : NULL;
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
        size_t k = 0, nk = sizeof part_kinds / sizeof part_kinds[0];
        while (k < nk && strcmp(type->valuestring, part_kinds[k].type))
            k++;
        if (k == nk) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.type '%s' is not a known content part type", w,
                       type->valuestring);
        }
        cJSON *v = cJSON_GetObjectItemCaseSensitive(part, part_kinds[k].type);
        if (part_kinds[k].is_string ? !cJSON_IsString(v) : !cJSON_IsObject(v)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.%s must be %s", w, part_kinds[k].type,
                       part_kinds[k].is_string ? "a string" : "an object");
        }
        m->parts[m->n_parts++] = (api_part_t){part_kinds[k].kind, v, part};
        if (part_kinds[k].is_string) {
            int rc = add_text(p, m->role, v->valuestring, strlen(v->valuestring));
            if (rc) return rc;
        }
        p->part++;
    }
    p->part = -1;
    return 0;
}

static int parse_tool_calls(pctx_t *p, api_message_t *m, cJSON *tool_calls)
{
    const char *w;
    if (!cJSON_IsArray(tool_calls)) {
        w = where(p, "");
        return bad(p, SY_EINVAL, w, "%s.tool_calls must be an array", w);
    }
    int n = cJSON_GetArraySize(tool_calls);
    m->has_tool_calls = true;
    m->tool_calls = n ? arena_alloc(p->a, sizeof(api_tool_call_t) * (size_t)n) : NULL;
    cJSON *tc;
    int rc;
    cJSON_ArrayForEach(tc, tool_calls)
    {
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        if (!cJSON_IsObject(tc) || !cJSON_IsObject(fn)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s.tool_calls[] must hold a function object", w);
        }
        api_tool_call_t *t = &m->tool_calls[m->n_tool_calls++];
        memset(t, 0, sizeof *t);
        t->node = tc;
        t->function = fn;
        if ((rc = opt_str(p, tc, "id", &t->id)) || (rc = opt_str(p, tc, "type", &t->type)) ||
            (rc = opt_str(p, fn, "name", &t->name)) ||
            (rc = opt_str(p, fn, "arguments", &t->arguments)))
            return rc;
        if (t->arguments && (rc = add_text(p, "tool_call", t->arguments->valuestring,
                                           strlen(t->arguments->valuestring))))
            return rc;
        if (t->name &&
            (rc = add_text(p, "tool_call", t->name->valuestring, strlen(t->name->valuestring))))
            return rc;
    }
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
    p->r->messages = arena_alloc(p->a, sizeof(api_message_t) * (size_t)n);
    p->msg = 0;
    p->part = -1;
    const char *w;
    cJSON *j;
    cJSON_ArrayForEach(j, msgs)
    {
        if (!cJSON_IsObject(j)) {
            w = where(p, "");
            return bad(p, SY_EINVAL, w, "%s must be an object", w);
        }
        api_message_t *m = &p->r->messages[p->r->n_messages];
        memset(m, 0, sizeof *m);
        m->node = j;
        cJSON *role = cJSON_GetObjectItemCaseSensitive(j, "role");
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
        m->role = role->valuestring;
        cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
        cJSON *tool_calls = cJSON_GetObjectItemCaseSensitive(j, "tool_calls");
        if (!content && !tool_calls && strcmp(m->role, "assistant")) {
            w = where(p, ".content");
            return bad(p, SY_EINVAL, w, "%s is required", w);
        }
        int rc = parse_content(p, m, content);
        if (rc) return rc;
        if ((rc = opt_str(p, j, "name", &m->name)) ||
            (rc = opt_str(p, j, "tool_call_id", &m->tool_call_id)) ||
            (rc = opt_str(p, j, "refusal", &m->refusal)))
            return rc;
        if (m->name &&
            (rc = add_text(p, m->role, m->name->valuestring, strlen(m->name->valuestring))))
            return rc;
        if (m->refusal &&
            (rc = add_text(p, m->role, m->refusal->valuestring, strlen(m->refusal->valuestring))))
            return rc;
        cJSON *fc = cJSON_GetObjectItemCaseSensitive(j, "function_call");
        if (fc && !cJSON_IsNull(fc)) {
            if (!cJSON_IsObject(fc)) {
                w = where(p, "");
                return bad(p, SY_EINVAL, w, "%s.function_call must be an object", w);
            }
            m->function_call = fc;
        }
        if (tool_calls && !cJSON_IsNull(tool_calls) && (rc = parse_tool_calls(p, m, tool_calls)))
            return rc;
        p->r->n_messages++;
        p->msg++;
    }
    return 0;
}

static void copy_meta(char *dst, const char *s, size_t n)
{
    if (n >= API_META_LEN) n = API_META_LEN - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* switchyard's metadata from the body's "metadata" object and X-Switchyard-* headers:
 * a header overrides the body's label; for privacy, local_only from either wins. */
static int parse_meta(pctx_t *p, cJSON *md, const http_req_t *hr)
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
    char privacy[2][API_META_LEN] = {"", ""}; /* body, header */
    if (md && !cJSON_IsNull(md)) {
        if (!cJSON_IsObject(md))
            return bad(p, SY_EINVAL, "metadata", "'metadata' must be an object");
        cJSON *it;
        cJSON_ArrayForEach(it, md)
        {
            if (!cJSON_IsString(it))
                return bad(p, SY_EINVAL, "metadata", "metadata.%.60s must be a string", it->string);
            if (strlen(it->valuestring) >= API_META_LEN)
                return bad(p, SY_EINVAL, "metadata", "metadata.%.60s is longer than %d bytes",
                           it->string, API_META_LEN - 1);
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                if (!strcmp(it->string, keys[k].key))
                    copy_meta((char *)r + keys[k].off, it->valuestring, strlen(it->valuestring));
            if (!strcmp(it->string, "privacy"))
                copy_meta(privacy[0], it->valuestring, strlen(it->valuestring));
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
    if (v) copy_meta(privacy[1], v, n);
    for (int i = 0; i < 2; i++) {
        if (!privacy[i][0]) continue;
        if (!strcmp(privacy[i], "local_only"))
            r->privacy_local_only = true;
        else if (strcmp(privacy[i], "default"))
            return bad(p, SY_EINVAL, i ? "x-switchyard-privacy" : "metadata",
                       "privacy '%s' must be 'local_only' or 'default'", privacy[i]);
    }
    return 0;
}

/* ---------------------------------------------------------- top level ---- */

static bool shape_ok(const cJSON *v, api_shape_t s)
{
    switch (s) {
    case API_SHAPE_OBJECT:
        return cJSON_IsObject(v);
    case API_SHAPE_ARRAY:
        return cJSON_IsArray(v);
    case API_SHAPE_STR_OR_ARRAY:
        return cJSON_IsString(v) || cJSON_IsArray(v);
    case API_SHAPE_STR_OR_OBJECT:
        return cJSON_IsString(v) || cJSON_IsObject(v);
    default:
        return true;
    }
}

static const char *shape_name(api_shape_t s)
{
    return s == API_SHAPE_OBJECT          ? "an object"
           : s == API_SHAPE_ARRAY         ? "an array"
           : s == API_SHAPE_STR_OR_ARRAY  ? "a string or an array"
           : s == API_SHAPE_STR_OR_OBJECT ? "a string or an object"
                                          : "a JSON value";
}

/* Checks one table field (kinds NUM, BOOL, STR, VALUE) and records it typed. */
static int check_field(pctx_t *p, int f, cJSON *v)
{
    const api_field_t *d = &api_fields[f];
    api_request_t *r = p->r;
    if (cJSON_IsNull(v)) return 0; /* null: as if absent (not forwarded) */
    switch (d->kind) {
    case API_FK_NUM: {
        if (!cJSON_IsNumber(v)) return bad(p, SY_EINVAL, d->name, "'%s' must be a number", d->name);
        double x = v->valuedouble;
        if ((d->flags & API_FF_INT) && x != floor(x))
            return bad(p, SY_EINVAL, d->name, "'%s' must be an integer", d->name);
        if (x < d->lo || x > d->hi)
            return bad(p, SY_EINVAL, d->name, "'%s' must be between %g and %g", d->name, d->lo,
                       d->hi);
        r->num[f] = x;
        r->num_set |= 1ull << f;
        break;
    }
    case API_FK_BOOL:
        if (!cJSON_IsBool(v))
            return bad(p, SY_EINVAL, d->name, "'%s' must be true or false", d->name);
        break;
    case API_FK_STR:
        if (!cJSON_IsString(v)) return bad(p, SY_EINVAL, d->name, "'%s' must be a string", d->name);
        break;
    case API_FK_VALUE:
        if (!shape_ok(v, d->shape))
            return bad(p, SY_EINVAL, d->name, "'%s' must be %s", d->name, shape_name(d->shape));
        break;
    default:
        break;
    }
    r->field[f] = v;
    return 0;
}

/* A JSON media type: application/json, any other "x/json" or "x/y+json", with or
 * without parameters (as the OpenAI server accepts). */
static bool content_type_is_json(const char *ct, size_t n)
{
    size_t len = 0;
    while (len < n && ct[len] != ';')
        len++;
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    return (len >= 5 && !strncasecmp(ct + len - 5, "/json", 5)) ||
           (len >= 5 && !strncasecmp(ct + len - 5, "+json", 5));
}

/* Reads the body into r->json: a JSON media type (or none), one JSON object and
 * nothing after it, no duplicate key, UTF-8 throughout. 0, or an error in p. */
static int read_body(pctx_t *p, const http_req_t *hr);

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
    int rc = read_body(&p, hr);
    if (rc) return rc;
    cJSON *j = r->json;
    /* Sort the top-level fields into the table and the unknown bag. */
    unsigned want = completions ? API_FF_COMP : API_FF_CHAT;
    size_t n_top = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, j) n_top++;
    r->unknown = arena_alloc(a, sizeof(cJSON *) * (n_top ? n_top : 1));
    cJSON_ArrayForEach(it, j)
    {
        int f = 0;
        while (f < API_F_COUNT && strcmp(it->string, api_fields[f].name))
            f++;
        if (f == API_F_COUNT || !(api_fields[f].flags & want)) {
            r->unknown[r->n_unknown++] = it;
            continue;
        }
        if (api_fields[f].kind == API_FK_OWN) {
            r->field[f] = it;
        } else if ((rc = check_field(&p, f, it))) {
            goto out;
        }
    }
    /* Texts: reserve the maximum in the arena once (pointers only). */
    r->texts = arena_alloc(a, sizeof(route_text_t) * API_MAX_TEXTS);
    cJSON *model = r->field[API_F_MODEL];
    if (model && !cJSON_IsString(model)) {
        rc = bad(&p, SY_EINVAL, "model", "'model' must be a string");
        goto out;
    }
    if (model) copy_meta(r->model, model->valuestring, strlen(model->valuestring));
    if (completions) {
        cJSON *prompt = r->field[API_F_PROMPT];
        if (cJSON_IsArray(prompt)) {
            /* vLLM's form: the prompt as token ids of the serving model's vocabulary
             * (whether each id is in it, the local tier checks) */
            if (!token_ids(prompt) || cJSON_GetArraySize(prompt) > API_MAX_PROMPT_TOKENS) {
                rc = bad(&p, SY_EINVAL, "prompt",
                         "'prompt' must be a string or a non-empty array of at most %d token ids "
                         "(integers >= 0)",
                         API_MAX_PROMPT_TOKENS);
                goto out;
            }
            r->prompt_tokens = true;
        } else if (!cJSON_IsString(prompt)) {
            rc = bad(&p, SY_EINVAL, "prompt",
                     "'prompt' is required and must be a string or an array of token ids");
            goto out;
        } else if ((rc = add_text(&p, "user", prompt->valuestring, strlen(prompt->valuestring)))) {
            goto out;
        }
        cJSON *suffix = r->field[API_F_SUFFIX];
        if (suffix && (rc = add_text(&p, "user", suffix->valuestring, strlen(suffix->valuestring))))
            goto out;
        r->n_messages = 1;
    } else if ((rc = parse_messages(&p, r->field[API_F_MESSAGES]))) {
        goto out;
    }
    cJSON *stream = r->field[API_F_STREAM];
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) {
        rc = bad(&p, SY_EINVAL, "stream", "'stream' must be true or false");
        goto out;
    }
    r->stream = cJSON_IsTrue(stream);
    cJSON *so = r->field[API_F_STREAM_OPTIONS];
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            rc = bad(&p, SY_EINVAL, "stream_options", "'stream_options' must be an object");
            goto out;
        }
        r->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    if (!completions && (r->num_set >> API_F_MAX_TOKENS & 1) && r->num[API_F_MAX_TOKENS] < 1) {
        rc = bad(&p, SY_EINVAL, "max_tokens", "'max_tokens' must be between 1 and %d", 1 << 24);
        goto out;
    }
    if (r->num_set >> API_F_MAX_TOKENS & 1) r->max_tokens = (uint32_t)r->num[API_F_MAX_TOKENS];
    if (r->num_set >> API_F_MAX_COMPLETION_TOKENS & 1)
        r->max_tokens = (uint32_t)r->num[API_F_MAX_COMPLETION_TOKENS];
    cJSON *lp = r->field[API_F_LOGPROBS];
    if (lp && !cJSON_IsNull(lp)) {
        if (completions) {
            if (!cJSON_IsNumber(lp) || lp->valuedouble != floor(lp->valuedouble) ||
                lp->valuedouble < 0 || lp->valuedouble > 20) {
                rc = bad(&p, SY_EINVAL, "logprobs", "'logprobs' must be an integer in 0..20");
                goto out;
            }
        } else if (!cJSON_IsBool(lp)) {
            rc = bad(&p, SY_EINVAL, "logprobs", "'logprobs' must be true or false");
            goto out;
        }
    }
    cJSON *stop = r->field[API_F_STOP];
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
    }
    if (!completions && cJSON_IsTrue(r->field[API_F_CONTINUE_FINAL_MESSAGE])) {
        /* vLLM's contract: the final assistant message is left open and continued. */
        if (cJSON_IsTrue(r->field[API_F_ADD_GENERATION_PROMPT])) {
            rc = bad(&p, SY_EINVAL, "add_generation_prompt",
                     "'continue_final_message' and 'add_generation_prompt' cannot both be true");
            goto out;
        }
        if (!r->n_messages || strcmp(r->messages[r->n_messages - 1].role, "assistant")) {
            rc = bad(&p, SY_EINVAL, "continue_final_message",
                     "'continue_final_message' needs a final message of role 'assistant'");
            goto out;
        }
    }
    rc = parse_meta(&p, r->field[API_F_METADATA], hr);
out:
    if (rc) {
        cJSON_Delete(j);
        r->json = NULL;
    }
    return rc;
}

static int read_body(pctx_t *p, const http_req_t *hr)
{
    api_request_t *r = p->r;
    if (hr->body_len == 0)
        return bad(p, SY_EPARSE, "", "the request body is empty: send a JSON object");
    size_t ctl;
    const char *ct = http_req_header(hr, "content-type", &ctl);
    if (ct && !content_type_is_json(ct, ctl))
        return bad(p, SY_EINVAL, "",
                   "Content-Type must be JSON (application/json, or none), not '%.*s'",
                   (int)(ctl > 80 ? 80 : ctl), ct);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(hr->body, hr->body_len, &end, false);
    if (!j) {
        size_t off = end && end >= hr->body ? (size_t)(end - hr->body) : 0;
        return bad(p, SY_EPARSE, "", "the body is not valid JSON (error near byte %zu)", off);
    }
    /* Trailing garbage after the object. */
    if (end) {
        const char *q = end;
        while (q < hr->body + hr->body_len && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
            q++;
        if (q < hr->body + hr->body_len) {
            cJSON_Delete(j);
            return bad(p, SY_EPARSE, "", "the body has data after the JSON value (byte %zu)",
                       (size_t)(q - hr->body));
        }
    }
    r->json = j;
    int rc = 0;
    if (!cJSON_IsObject(j)) {
        rc = bad(p, SY_EINVAL, "", "the body must be a JSON object");
        goto fail;
    }
    char dpath[256];
    int drc = api_json_find_duplicate(j, dpath, sizeof dpath);
    if (drc == SY_EPARSE) {
        rc = bad(p, SY_EINVAL, dpath, "invalid UTF-8 at %s: JSON text must be UTF-8", dpath);
        goto fail;
    }
    if (drc) {
        rc = bad(p, SY_EINVAL, dpath,
                 "duplicate key at %s: each key may appear once per object (parsers disagree "
                 "on which copy counts)",
                 dpath);
        goto fail;
    }
    return 0;
fail:
    cJSON_Delete(j);
    r->json = NULL;
    return rc;
}

/* ------------------------------------------------------------ embeddings ---- */

/* A token id array: non-empty, every element an integer in [0, 2^31). */
static bool token_ids(const cJSON *a)
{
    if (!cJSON_IsArray(a) || !a->child) return false;
    for (const cJSON *t = a->child; t; t = t->next)
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= 2147483648.0)
            return false;
    return true;
}

/* input: a string, or an array of strings, of token ids, or of token id arrays. */
static int parse_input(pctx_t *p, cJSON *in)
{
    api_request_t *r = p->r;
    static const char shape[] = "'input' must be a non-empty string, or an array of non-empty "
                                "strings, of token ids, or of non-empty token id arrays";
    if (!in || cJSON_IsNull(in)) return bad(p, SY_EINVAL, "input", "'input' is required");
    r->input = in;
    if (cJSON_IsString(in)) {
        if (!in->valuestring[0]) return bad(p, SY_EINVAL, "input", "%s", shape);
        return add_text(p, "user", in->valuestring, strlen(in->valuestring));
    }
    int n = cJSON_GetArraySize(in);
    if (!cJSON_IsArray(in) || n == 0) return bad(p, SY_EINVAL, "input", "%s", shape);
    if (n > API_EMBED_MAX_INPUTS)
        return bad(p, SY_EINVAL, "input", "'input' holds at most %d items", API_EMBED_MAX_INPUTS);
    if (cJSON_IsNumber(in->child)) {
        if (!token_ids(in)) return bad(p, SY_EINVAL, "input", "%s", shape);
        r->input_tokens = true;
        return 0;
    }
    int i = 0;
    for (cJSON *it = in->child; it; it = it->next, i++) {
        bool ok =
            cJSON_IsString(in->child) ? cJSON_IsString(it) && it->valuestring[0] : token_ids(it);
        if (!ok) {
            snprintf(p->path, sizeof p->path, "input[%d]", i);
            return bad(p, SY_EINVAL, p->path, "%s (input[%d] is not)", shape, i);
        }
        if (cJSON_IsString(it)) {
            int rc = add_text(p, "user", it->valuestring, strlen(it->valuestring));
            if (rc) return rc;
        }
    }
    r->input_tokens = !cJSON_IsString(in->child);
    return 0;
}

int api_request_parse_embeddings(api_request_t *r, const http_req_t *hr, arena_t *a, char *err,
                                 size_t errlen, char *param, size_t paramlen)
{
    memset(r, 0, sizeof *r);
    r->embeddings = true;
    pctx_t p = {.r = r,
                .a = a,
                .err = err,
                .errlen = errlen,
                .param = param,
                .paramlen = paramlen,
                .part = -1};
    param[0] = 0;
    int rc = read_body(&p, hr);
    if (rc) return rc;
    cJSON *j = r->json, *it, *input = NULL, *md = NULL;
    size_t n_top = 0;
    cJSON_ArrayForEach(it, j) n_top++;
    r->unknown = arena_alloc(a, sizeof(cJSON *) * (n_top ? n_top : 1));
    r->texts = arena_alloc(a, sizeof(route_text_t) * API_MAX_TEXTS);
    r->n_messages = 1;
    cJSON_ArrayForEach(it, j)
    {
        const char *k = it->string;
        bool null = cJSON_IsNull(it);
        if (!strcmp(k, "input")) {
            input = it;
        } else if (!strcmp(k, "model")) {
            if (!cJSON_IsString(it)) {
                rc = bad(&p, SY_EINVAL, "model", "'model' must be a string");
                goto out;
            }
            r->field[API_F_MODEL] = it;
            copy_meta(r->model, it->valuestring, strlen(it->valuestring));
        } else if (!strcmp(k, "encoding_format")) {
            if (null) continue;
            if (!cJSON_IsString(it) ||
                (strcmp(it->valuestring, "float") && strcmp(it->valuestring, "base64"))) {
                rc = bad(&p, SY_EINVAL, "encoding_format",
                         "'encoding_format' must be 'float' or 'base64'");
                goto out;
            }
            r->encoding_format = it;
        } else if (!strcmp(k, "dimensions")) {
            if (null) continue;
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 1 || it->valuedouble > 65536) {
                rc = bad(&p, SY_EINVAL, "dimensions",
                         "'dimensions' must be an integer between 1 and 65536");
                goto out;
            }
            r->dimensions = (uint32_t)it->valuedouble;
        } else if (!strcmp(k, "user")) {
            if (null) continue;
            if ((rc = check_field(&p, API_F_USER, it))) goto out;
        } else if (!strcmp(k, "metadata")) {
            md = it;
        } else {
            r->unknown[r->n_unknown++] = it;
        }
    }
    if ((rc = parse_input(&p, input))) goto out;
    rc = parse_meta(&p, md, hr);
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
    r->num[API_F_MAX_TOKENS] = n; /* what the body is rendered from */
    r->num_set |= 1ull << API_F_MAX_TOKENS;
    cJSON *node = r->field[API_F_MAX_TOKENS];
    if (node)
        cJSON_SetNumberValue(node, n);
    else
        r->field[API_F_MAX_TOKENS] = cJSON_AddNumberToObject(r->json, "max_tokens", n);
}
