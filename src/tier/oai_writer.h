/* oai_writer.h — the client's OpenAI-shaped answer, written from a typed backend's
 * events.
 *
 * A typed backend (backend.h) reports tokens, choice ends and usage; this writes
 * them as the answer an OpenAI client expects: chat.completion or text_completion
 * whole, or chat.completion.chunk / text_completion stream payloads (the JSON of
 * each "data:" line, "[DONE]" left to the caller). It writes choices[].message or
 * .delta, tool calls (a token stream marked `call` is the call's JSON, {"name":
 * ..., "arguments": ...}: its arguments go out as they grow), logprobs in the chat
 * form (content[] with bytes and top_logprobs) or the legacy completions form
 * (tokens, token_logprobs, top_logprobs, text_offset), echo, n > 1 and usage with
 * cached prompt tokens. Runs on the worker loop; one writer serves one call at a
 * time and keeps its buffers for the next.
 */
#ifndef SY_TIER_OAI_WRITER_H
#define SY_TIER_OAI_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "tier/backend.h"

#define OAI_WRITER_MAX (16u << 20) /* bytes of one buffer (an answer, a choice's text) */

typedef struct oai_writer_opts {
    const char *id;    /* the answer's id */
    const char *model; /* the answer's model */
    int64_t created;   /* unix seconds */
    bool completions;  /* text_completion instead of chat */
    bool stream;       /* chunks instead of one answer */
    bool logprobs;     /* the client asked for logprobs (the events' alternatives are
                          those it asked for) */
} oai_writer_opts_t;

typedef struct oai_writer {
    oai_writer_opts_t o;
    char id[64], model[128];
    buf_t json;                   /* the chunk or answer being written */
    buf_t text;                   /* the choice's text (whole answer; a tool call) */
    buf_t lp;                     /* the choice's chat logprobs entries */
    buf_t ltok, lval, ltop, loff; /* the choice's legacy logprobs arrays */
    buf_t choices;                /* whole answer: the finished choices */
    size_t text_off;              /* legacy text_offset of the next token */
    int choice_gen;               /* tokens of the current choice */
    bool in_call;                 /* the current choice is a tool call */
    bool call_head;               /* stream: the call's id and name went out */
    size_t args_sent;             /* stream: text bytes up to which arguments went out */
    char call_id[40];
    uint32_t prompt_tokens, completion_tokens, cached_tokens;
} oai_writer_t;

/* Stream payloads are handed to emit (n bytes of JSON, valid until it returns). */
typedef void (*oai_emit_fn)(void *arg, const char *json, size_t n);

void oai_writer_init(oai_writer_t *w);
void oai_writer_deinit(oai_writer_t *w);
/* The memory its buffers hold (a pool keeps writers below some size). */
size_t oai_writer_kept_bytes(const oai_writer_t *w);
/* Starts an answer (strings copied). */
void oai_writer_begin(oai_writer_t *w, const oai_writer_opts_t *o);
/* Takes one event: streamed, the chunks it makes go to emit; whole, it is kept for
 * oai_writer_answer. 0 or SY_ETOOBIG (past OAI_WRITER_MAX). */
int oai_writer_event(oai_writer_t *w, const tier_ev_t *ev, oai_emit_fn emit, void *arg);
/* The whole answer (choices and usage) into out. 0 or SY_ETOOBIG. */
int oai_writer_answer(oai_writer_t *w, buf_t *out);

#endif
