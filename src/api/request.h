/* request.h — parse and validate an OpenAI-shaped request body.
 *
 * POST /v1/chat/completions and /v1/completions bodies are checked field by field
 * against the OpenAI schema: a wrong type, a value out of range, n != 1 or an
 * unknown top-level field is a 400 with the offending param named, as OpenAI does.
 * switchyard's own metadata (tenant, team, feature, session, tier, privacy) comes
 * from the body's "metadata" object or X-Switchyard-* headers (headers win), and is
 * removed before the request goes upstream.
 */
#ifndef SY_API_REQUEST_H
#define SY_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "net/http.h"
#include "route/router.h"

struct cJSON;

#define API_MAX_TEXTS    4096
#define API_MAX_MESSAGES 2048
#define API_META_LEN     128

typedef struct api_request {
    struct cJSON *json; /* owned; the body as forwarded upstream (metadata removed) */
    bool completions;   /* /v1/completions */
    bool stream;
    bool include_usage; /* client asked stream_options.include_usage */
    uint32_t max_tokens;
    char model[API_META_LEN]; /* what the client asked for */
    char tenant[API_META_LEN];
    char team[API_META_LEN];
    char feature[API_META_LEN];
    char session[API_META_LEN];
    char forced_tier[API_META_LEN];
    bool privacy_local_only;
    route_text_t *texts; /* arena-owned: every text the request holds */
    size_t n_texts;
    uint32_t n_messages;
    size_t prompt_bytes;
} api_request_t;

/* Parses hr's body. 0, or SY_EPARSE / SY_EINVAL / SY_ETOOBIG with a message in err
 * and the param name (or "") in param. On error r->json is NULL. */
int api_request_parse(api_request_t *r, const http_req_t *hr, bool completions, arena_t *a,
                      char *err, size_t errlen, char *param, size_t paramlen);
void api_request_deinit(api_request_t *r);
/* Sets max_tokens, in the typed field and in the body sent upstream. */
void api_request_set_max_tokens(api_request_t *r, uint32_t n);

#endif
