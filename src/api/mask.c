/* mask.c — the mask action: personal data replaced by placeholders before a
 * request leaves, and put back into the answer.
 */
#include "api/app_impl.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ masking ---- */

/* Masks, in one string value, the spans of the types in `types`. */
static int mask_string(api_worker_t *w, api_call_t *c, cJSON *str, uint32_t types)
{
    api_app_t *app = w->app;
    pii_span_t spans[256];
    size_t n = 0, k = 0;
    const char *s = str->valuestring;
    size_t len = strlen(s);
    int rc = pii_scan(app->pii, w->pii, s, len, spans, 256, &n);
    if (rc) return rc;
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++)
        if (types & (1u << spans[i].type)) spans[k++] = spans[i];
    if (!k) return 0;
    buf_t out;
    buf_init(&out, len * 4 + 4096);
    rc = pii_mask_apply(c->mask, s, len, spans, k, &out);
    if (!rc && !cJSON_SetValuestring(str, out.data)) rc = SY_EINVAL;
    buf_deinit(&out);
    return rc;
}

/* The mask action: values of mask-typed entities are replaced by placeholders in
 * every text the request holds, before it leaves; the answer gets them back. */
int api_mask_request(api_worker_t *w, api_call_t *c, uint32_t types)
{
    c->mask = pii_mask_new(0);
    cJSON *root = c->req.json;
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsString(prompt)) return mask_string(w, c, prompt, types);
    cJSON *m;
    int rc = 0;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "messages"))
    {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(content) && (rc = mask_string(w, c, content, types))) return rc;
        cJSON *part;
        if (cJSON_IsArray(content)) cJSON_ArrayForEach(part, content)
            {
                cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (cJSON_IsString(t) && (rc = mask_string(w, c, t, types))) return rc;
            }
        cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            cJSON *args = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(tc, "function"), "arguments");
            if (cJSON_IsString(args) && (rc = mask_string(w, c, args, types))) return rc;
        }
    }
    return rc;
}

/* Puts masked values back into the answer's text (message content or text). */
void api_mask_restore(api_call_t *c, exec_result_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    cJSON *str = msg  ? cJSON_GetObjectItemCaseSensitive(msg, "content")
                 : c0 ? cJSON_GetObjectItemCaseSensitive(c0, "text")
                      : NULL;
    if (cJSON_IsString(str)) {
        buf_t out;
        buf_init(&out, 32u << 20);
        if (!pii_mask_restore(c->mask, str->valuestring, strlen(str->valuestring), &out))
            cJSON_SetValuestring(str, out.data ? out.data : "");
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
