/* anthropic.h — a tier of kind anthropic: an Anthropic Messages API upstream.
 *
 * The request body is rendered by the caller from the typed request (exec_sink_t's
 * render_anthropic); this module holds what is particular to the upstream's side:
 * the version header, and the translation of its answers into the OpenAI chat shape
 * the rest of exec reads (usage, finish reason, tool calls), so failover, breakers,
 * accounting and the client's own answer shape work as for any other tier.
 *
 * Answers:  {"type":"message","content":[text | tool_use blocks],"stop_reason",
 *            "stop_sequence","usage":{"input_tokens","output_tokens"}}
 *        -> {"object":"chat.completion","choices":[{"message":{content, tool_calls},
 *            "finish_reason"[, "stop_sequence"]}],"usage":{...}}
 * Streams:  message_start, content_block_start/delta/stop (text_delta,
 *           input_json_delta), message_delta, message_stop, ping, error
 *        -> chat.completion.chunk objects (content deltas, tool_calls deltas with
 *           their index, a finish chunk, a usage chunk with "choices":[]).
 * stop_reason maps end_turn/stop_sequence -> stop, max_tokens -> length, tool_use ->
 * tool_calls, refusal -> content_filter; a matched stop sequence is kept in the
 * choice's "stop_sequence" so an Anthropic client gets it back. Thinking blocks and
 * their deltas are not passed on.
 */
#ifndef SY_TIER_ANTHROPIC_H
#define SY_TIER_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The API version switchyard speaks to Anthropic upstreams. */
#define TIER_ANTHROPIC_VERSION_HEADER "anthropic-version: 2023-06-01"

/* Translation state of one streamed answer (no heap; reset per call). */
typedef struct tier_anthropic_stream {
    char id[96];         /* the message id, reused on every chunk */
    char model[128];     /* the model the upstream names */
    int64_t created;     /* Unix seconds */
    int block_tool;      /* OpenAI tool_calls index of the open tool_use block, or -1 */
    int n_tools;         /* tool_use blocks seen */
    uint32_t tokens_in;  /* usage.input_tokens from message_start */
    uint32_t tokens_out; /* usage.output_tokens, last seen */
    bool started;        /* message_start seen */
    bool finished;       /* message_delta with a stop_reason seen */
} tier_anthropic_stream_t;

/* Called with one chat.completion.chunk JSON text. */
typedef void (*tier_anthropic_emit_fn)(void *arg, const char *json, size_t n);

void tier_anthropic_stream_reset(tier_anthropic_stream_t *s, int64_t created);

/* Translates one SSE event (event name may be NULL: the data's "type" decides) into
 * zero or more chunks, written into scratch (reset per chunk) and passed to emit.
 * 0; SY_EPARSE when data is not a JSON object of a known shape; SY_EUPSTREAM for an
 * "error" event, with its type and message in err. */
int tier_anthropic_stream_event(tier_anthropic_stream_t *s, const char *event, const char *data,
                                size_t n, buf_t *scratch, tier_anthropic_emit_fn emit, void *arg,
                                char *err, size_t errlen);

/* Translates a whole (non-streamed) Anthropic message into an OpenAI chat.completion
 * object appended to out. 0, SY_EPARSE (not a message object) or SY_ETOOBIG. */
int tier_anthropic_answer(const char *body, size_t n, int64_t created, buf_t *out);

/* OpenAI finish_reason for an Anthropic stop_reason (NULL or unknown: "stop"). */
const char *tier_anthropic_finish_reason(const char *stop_reason);

#endif
