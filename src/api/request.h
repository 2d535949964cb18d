/* request.h — an OpenAI-shaped request body, parsed once into a typed request.
 *
 * POST /v1/chat/completions and /v1/completions bodies are parsed with cJSON, then:
 *  - a key that appears twice in one object, at any depth, is a 400 naming its path
 *    (parsers disagree on which copy wins; the gateway must not guess);
 *  - every field the API defines is checked against its type and range (a 400 names
 *    the param, as OpenAI does) and kept typed: messages with their parts, tool calls
 *    and names; sampling parameters as validated numbers; structured values (tools,
 *    response_format, stop, ...) as the checked JSON subtree;
 *  - fields switchyard does not know go into an explicit bag (forwarded or dropped by
 *    the config's forward_unknown), never silently through.
 * The body sent to a tier is rendered from this type (render.h), never the client's
 * bytes. switchyard's own metadata (tenant, team, feature, session, tier, privacy)
 * comes from the body's "metadata" object and X-Switchyard-* headers and is never
 * forwarded: a header overrides the body for the labels, and for privacy the more
 * restrictive of the two wins.
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

#define API_MAX_TEXTS         4096
#define API_MAX_MESSAGES      2048
#define API_META_LEN          128
#define API_MAX_PROMPT_TOKENS (1 << 20) /* completions prompt given as token ids */

/* ------------------------------------------------------------ known fields ---- */

typedef enum {
    API_FK_NUM,   /* number in [lo, hi] (integer when API_FF_INT) */
    API_FK_BOOL,  /* true/false */
    API_FK_STR,   /* string */
    API_FK_VALUE, /* structured JSON value of the shape in `shape`, forwarded as checked */
    API_FK_OWN    /* handled by hand: messages, prompt, model, stream, stream_options,
                     metadata, logprobs */
} api_field_kind_t;

typedef enum {
    API_SHAPE_ANY,
    API_SHAPE_OBJECT,
    API_SHAPE_ARRAY,
    API_SHAPE_STR_OR_ARRAY, /* stop */
    API_SHAPE_STR_OR_OBJECT /* tool_choice, function_call */
} api_shape_t;

#define API_FF_CHAT 1u /* defined for /v1/chat/completions */
#define API_FF_COMP 2u /* defined for /v1/completions */
#define API_FF_INT  4u /* API_FK_NUM: integer */

typedef struct api_field {
    const char *name;
    api_field_kind_t kind;
    unsigned flags;
    double lo, hi; /* API_FK_NUM */
    api_shape_t shape;
} api_field_t;

/* Every top-level field either endpoint defines, in the order they are rendered. */
enum {
    API_F_MODEL,
    API_F_MESSAGES,
    API_F_PROMPT,
    API_F_SUFFIX,
    API_F_ECHO,
    API_F_BEST_OF,
    API_F_TEMPERATURE,
    API_F_TOP_P,
    API_F_MAX_TOKENS,
    API_F_MAX_COMPLETION_TOKENS,
    API_F_N,
    API_F_SEED,
    API_F_PRESENCE_PENALTY,
    API_F_FREQUENCY_PENALTY,
    API_F_LOGPROBS,
    API_F_TOP_LOGPROBS,
    API_F_LOGIT_BIAS,
    API_F_STOP,
    API_F_STREAM,
    API_F_STREAM_OPTIONS,
    API_F_TOOLS,
    API_F_TOOL_CHOICE,
    API_F_PARALLEL_TOOL_CALLS,
    API_F_FUNCTIONS,
    API_F_FUNCTION_CALL,
    API_F_RESPONSE_FORMAT,
    API_F_USER,
    API_F_METADATA,
    API_F_STORE,
    API_F_SERVICE_TIER,
    API_F_MODALITIES,
    API_F_AUDIO,
    API_F_PREDICTION,
    API_F_REASONING_EFFORT,
    API_F_WEB_SEARCH_OPTIONS,
    API_F_VERBOSITY,
    API_F_PROMPT_CACHE_KEY,
    API_F_SAFETY_IDENTIFIER,
    API_F_RETURN_TOKENS_AS_TOKEN_IDS,
    API_F_CONTINUE_FINAL_MESSAGE, /* vLLM's: continue the final assistant message */
    API_F_ADD_GENERATION_PROMPT,  /* vLLM's: false with continue_final_message */
    API_F_COUNT
};
extern const api_field_t api_fields[API_F_COUNT];

/* -------------------------------------------------------------- messages ---- */

typedef enum {
    API_PART_TEXT,        /* value: the "text" string */
    API_PART_REFUSAL,     /* value: the "refusal" string */
    API_PART_IMAGE_URL,   /* value: the "image_url" object */
    API_PART_INPUT_AUDIO, /* value: the "input_audio" object */
    API_PART_FILE         /* value: the "file" object */
} api_part_kind_t;

/* All cJSON pointers below point into api_request_t.json (borrowed). */
typedef struct api_part {
    api_part_kind_t kind;
    struct cJSON *value;
    struct cJSON *node; /* the part object: its other keys are unknown fields */
} api_part_t;

typedef struct api_tool_call {
    struct cJSON *id, *type, *name, *arguments; /* strings or NULL */
    struct cJSON *node, *function;              /* their other keys are unknown fields */
} api_tool_call_t;

typedef struct api_message {
    const char *role;      /* one of system, developer, user, assistant, tool, function */
    struct cJSON *content; /* string or null node; NULL when absent or given as parts */
    api_part_t *parts;     /* arena-owned; n_parts entries when content is an array */
    uint32_t n_parts;
    bool has_parts;
    struct cJSON *name, *tool_call_id, *refusal; /* strings or NULL */
    struct cJSON *function_call;                 /* legacy {name, arguments} or NULL */
    api_tool_call_t *tool_calls;                 /* arena-owned */
    uint32_t n_tool_calls;
    bool has_tool_calls;
    struct cJSON *node; /* the message object: its other keys are unknown fields */
} api_message_t;

/* --------------------------------------------------------------- request ---- */

typedef struct api_request {
    struct cJSON *json; /* owned; the parsed body, duplicate-free; every pointer below
                           points into it */
    bool completions;   /* /v1/completions */
    bool prompt_tokens; /* completions: prompt given as token ids (opaque to the PII scan:
                           served by local tiers only) */
    /* Typed values of what the gateway itself reads. */
    bool stream;
    bool include_usage; /* client asked stream_options.include_usage */
    uint32_t max_tokens;
    double num[API_F_COUNT];          /* validated numbers (API_FK_NUM fields), when set */
    uint64_t num_set;                 /* bit f: num[f] given */
    struct cJSON *field[API_F_COUNT]; /* each known field's node, or NULL */
    api_message_t *messages;          /* arena-owned, n_messages entries (chat) */
    uint32_t n_messages;
    struct cJSON **unknown; /* arena-owned: top-level fields not in api_fields */
    size_t n_unknown;
    char model[API_META_LEN]; /* what the client asked for */
    char tenant[API_META_LEN];
    char team[API_META_LEN];
    char feature[API_META_LEN];
    char session[API_META_LEN];
    char forced_tier[API_META_LEN];
    bool privacy_local_only;
    /* POST /v1/embeddings (api_request_parse_embeddings): model and user in field[]. */
    bool embeddings;
    struct cJSON *input;           /* a string, or an array of strings, of token ids, or of
                                      arrays of token ids */
    bool input_tokens;             /* input holds token ids: opaque to the PII scan */
    struct cJSON *encoding_format; /* "float" or "base64", or NULL */
    uint32_t dimensions;           /* 0 = not given */
    /* What the router reads: message contents, names, tool calls (arena-owned). */
    route_text_t *texts;
    size_t n_texts;
    size_t prompt_bytes;
    /* A continuation (docs/routing.md): the answer so far, rendered as a final assistant
     * message the next tier continues (vLLM's continue_final_message, an Anthropic
     * prefill). NULL otherwise; borrowed, set by the continuation's caller. */
    const char *prefill;
    size_t prefill_len;
} api_request_t;

/* Parses hr's body. 0, or SY_EPARSE / SY_EINVAL / SY_ETOOBIG with a message in err
 * and the param name or path (or "") in param. On error r->json is NULL. */
int api_request_parse(api_request_t *r, const http_req_t *hr, bool completions, arena_t *a,
                      char *err, size_t errlen, char *param, size_t paramlen);
/* Parses hr's body as POST /v1/embeddings: model, input (a string, or 1 to
 * API_EMBED_MAX_INPUTS strings, token ids, or arrays of token ids; none empty),
 * encoding_format (float, base64), dimensions (a positive integer), user, switchyard's
 * metadata as for chat; other fields go to the unknown bag. The input strings are the
 * router's texts. Returns as api_request_parse. */
#define API_EMBED_MAX_INPUTS 2048
int api_request_parse_embeddings(api_request_t *r, const http_req_t *hr, arena_t *a, char *err,
                                 size_t errlen, char *param, size_t paramlen);
void api_request_deinit(api_request_t *r);
/* Sets max_tokens, in the typed field and in the body sent upstream. */
void api_request_set_max_tokens(api_request_t *r, uint32_t n);

/* The first key that appears twice in one object of j, at any depth: 0, or SY_EINVAL
 * with its path ("messages[1].content[0].text") in path; SY_EPARSE with the path of
 * the first string or key that is not valid UTF-8. Pure; used by parse. */
int api_json_find_duplicate(const struct cJSON *j, char *path, size_t pathlen);

#endif
