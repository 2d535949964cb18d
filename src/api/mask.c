/* mask.c — the mask action: personal data replaced by placeholders before a
 * request leaves, and put back into the answer.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "api/app_impl.h"

/* Masks, in one string value, every span of the types in `types`; no count limit
 * (the span buffer grows to what the engine reports). */
static int mask_string(api_worker_t *w, api_call_t *c, cJSON *str, uint32_t types)
{
    api_app_t *app = w->app;
    pii_span_t local[256], *spans = local;
    size_t n = 0, k = 0;
    const char *s = str->valuestring;
    size_t len = strlen(s);
    int rc = pii_scan(app->pii, w->pii, s, len, spans, 256, &n);
    if (rc) return rc;
    if (n > 256) {
        spans = mem_alloc(n * sizeof *spans);
        size_t m = n;
        rc = pii_scan(app->pii, w->pii, s, len, spans, m, &n);
        if (!rc && n > m) rc = SY_ETOOBIG;
    }
    for (size_t i = 0; !rc && i < n; i++)
        if (types & (1u << spans[i].type)) spans[k++] = spans[i];
    if (!rc && k) {
        buf_t out;
        buf_init(&out, len * 4 + 4096);
        rc = pii_mask_apply(c->mask, s, len, spans, k, &out);
        if (!rc && !cJSON_SetValuestring(str, out.data)) rc = SY_EINVAL;
        buf_deinit(&out);
    }
    if (spans != local) mem_free(spans);
    return rc;
}

/* Every string value under j, at any depth. */
static int mask_tree(api_worker_t *w, api_call_t *c, cJSON *j, uint32_t types)
{
    int rc = 0;
    for (cJSON *it = j; it && !rc; it = it->next) {
        if (cJSON_IsString(it))
            rc = mask_string(w, c, it, types);
        else if (it->child)
            rc = mask_tree(w, c, it->child, types);
    }
    return rc;
}

/* The mask action: values of mask-typed entities are replaced by placeholders in
 * every string the request holds (contents, names, tool names and arguments,
 * schemas...), before it leaves; the answer gets them back. The caller re-scans the
 * result: a value that could not be masked (in a key, a number, or split across
 * strings) keeps the request local. */
int api_mask_request(api_worker_t *w, api_call_t *c, uint32_t types)
{
    if (!c->mask) c->mask = pii_mask_new(0);
    c->rest_ok = false; /* rendered before masking */
    return mask_tree(w, c, c->req.json->child, types);
}

/* Puts values back into every string of s (an answer's choice, at any depth). */
static void restore_tree(api_call_t *c, cJSON *j, buf_t *out)
{
    for (cJSON *it = j; it; it = it->next) {
        if (cJSON_IsString(it)) {
            if (!strchr(it->valuestring, '<')) continue;
            buf_reset(out);
            if (!pii_mask_restore(c->mask, it->valuestring, strlen(it->valuestring), out))
                cJSON_SetValuestring(it, out->data ? out->data : "");
        } else if (it->child) {
            restore_tree(c, it->child, out);
        }
    }
}

/* Puts masked values back into the answer: every string of its choices (message
 * content, tool calls, refusal, text). */
void api_mask_restore(api_call_t *c, exec_result_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (cJSON_IsArray(choices)) {
        buf_t out;
        buf_init(&out, 32u << 20);
        restore_tree(c, choices->child, &out);
        buf_deinit(&out);
        char *text = cJSON_PrintUnformatted(j);
        if (text) {
            buf_reset(&c->restored);
            if (!buf_puts(&c->restored, text)) {
                r->body = c->restored.data;
                r->body_len = c->restored.len;
            }
            free(text);
        }
    }
    cJSON_Delete(j);
}
