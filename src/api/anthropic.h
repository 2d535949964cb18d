/* anthropic.h — the Anthropic Messages API on both sides of the gateway.
 *
 * Inbound (POST /v1/messages): the body is checked as Anthropic defines it and
 * mapped onto the same typed request as /v1/chat/completions (request.h), so
 * routing, the privacy scan, masking, limits, budgets and the ledger are the ones
 * every request goes through:
 *   system (string or text blocks)        -> a system message first
 *   user text / image blocks              -> user content parts (text, image_url)
 *   user tool_result blocks               -> tool messages (tool_call_id), before the
 *                                            user's other blocks
 *   assistant text / tool_use blocks      -> assistant content + tool_calls
 *                                            (input printed as the arguments string)
 *   tools {name, description, input_schema} -> function tools (parameters)
 *   tool_choice auto|any|tool|none        -> "auto"|"required"|{function}|"none";
 *     disable_parallel_tool_use           -> parallel_tool_calls: false
 *   max_tokens (required), stop_sequences (at most 4), temperature (0..1), top_p,
 *   stream                                -> the same fields
 *   top_k                                 -> kept as a top-level "top_k"
 *   metadata.user_id                      -> user; metadata's switchyard labels
 *                                            (tenant, team, feature, session, tier,
 *                                            privacy) -> switchyard's metadata
 * Other top-level fields go to the unknown bag (forward_unknown decides); a block
 * type or tool type switchyard cannot carry is a 400, never dropped.
 *
 * Outbound (a tier of kind anthropic): the typed request rendered as a Messages
 * body; every string written is one the privacy scan visited (render.h), plus the
 * API's own constants and validated numbers.
 */
#ifndef SY_API_ANTHROPIC_H
#define SY_API_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/request.h"
#include "base/buf.h"

/* Default max_tokens sent to an anthropic tier when the client gave none (the
 * Messages API requires one). */
#define API_ANTHROPIC_DEFAULT_MAX_TOKENS 4096

/* The client's stream, as its events are written (anthropic_reply.c). */
typedef struct api_anth_stream {
    bool started;         /* message_start sent */
    int block;            /* index of the open content block, or -1 */
    int tool_index;       /* the open block's OpenAI tool_calls index, or -1 (text) */
    int n_blocks;         /* blocks opened so far */
    char stop_reason[32]; /* from the finish chunk */
    char stop_seq[128];   /* the matched stop sequence, when the tier said */
    uint32_t tokens_in, tokens_out;
} api_anth_stream_t;

/* Parses an Anthropic Messages body (hr's) into r, as api_request_parse does for
 * chat (same contract: 0, or SY_EPARSE / SY_EINVAL / SY_ETOOBIG with a message in
 * err; on error r->json is NULL). */
int api_anthropic_parse(api_request_t *r, const http_req_t *hr, arena_t *a, char *err,
                        size_t errlen, char *param, size_t paramlen);

/* Appends the Messages body for an anthropic tier to out (model: its upstream model
 * name). 0; SY_EUNSUPPORTED for what the Messages API cannot carry (/v1/completions,
 * audio and file parts, legacy function messages, non-function tools); SY_EINVAL for
 * tool-call arguments that are not a JSON object; SY_ETOOBIG. */
int api_anthropic_render(const api_request_t *r, const char *model, bool stream,
                         bool forward_unknown, buf_t *out);

/* Anthropic's error type for an HTTP status. */
const char *api_anthropic_error_type(int status);

#endif
