/* replay.c — a whole chat answer's message re-sent as one stream delta.
 *
 * A client that asked for a stream gets a whole answer replayed when the gateway had
 * to hold it first (the cascade judged it; the mask restored its placeholders). The
 * delta carries everything the message does, as a streamed answer would have: content,
 * refusal, tool calls (each with its index) and the legacy function call.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "api/app_impl.h"

/* Writes v (any JSON value) as it is. */
static void write_value(jsonw_t *w, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        jsonw_str(w, v->valuestring);
        return;
    }
    char *text = cJSON_PrintUnformatted(v);
    if (text) {
        jsonw_raw(w, text, strlen(text));
        free(text);
    } else {
        jsonw_null(w);
    }
}

/* The members of the delta, inside the caller's object: "role" first, then every
 * member of msg (an answer's choices[i].message; NULL writes an empty answer).
 * "content" is a string, or null beside tool calls; each tool call gets its
 * "index". */
void api_replay_delta(jsonw_t *w, const cJSON *msg)
{
    jsonw_key(w, "role");
    jsonw_str(w, "assistant");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    bool calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls") ||
                 cJSON_GetObjectItemCaseSensitive(msg, "function_call");
    jsonw_key(w, "content");
    if (cJSON_IsString(content))
        jsonw_str(w, content->valuestring);
    else if (calls)
        jsonw_null(w);
    else
        jsonw_str(w, "");
    for (const cJSON *it = msg ? msg->child : NULL; it; it = it->next) {
        if (!it->string || !strcmp(it->string, "role") || !strcmp(it->string, "content")) continue;
        jsonw_key(w, it->string);
        if (strcmp(it->string, "tool_calls") || !cJSON_IsArray(it)) {
            write_value(w, it);
            continue;
        }
        jsonw_arr_begin(w);
        int i = 0;
        for (const cJSON *tc = it->child; tc; tc = tc->next, i++) {
            if (!cJSON_IsObject(tc)) {
                write_value(w, tc);
                continue;
            }
            jsonw_obj_begin(w);
            jsonw_key(w, "index");
            jsonw_int(w, i);
            for (const cJSON *f = tc->child; f; f = f->next) {
                if (!f->string || !strcmp(f->string, "index")) continue;
                jsonw_key(w, f->string);
                write_value(w, f);
            }
            jsonw_obj_end(w);
        }
        jsonw_arr_end(w);
    }
}
