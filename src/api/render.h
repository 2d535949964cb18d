/* render.h — the body a tier receives, written from the typed request.
 *
 * The upstream body is never the client's bytes: it is rendered field by field from
 * api_request_t with the JSON writer, so what leaves is exactly what the schema and
 * the forward_unknown policy let through, with no duplicate key and no field the
 * gateway did not look at. The same walk, without a writer, visits every string the
 * rendered body will hold (values, keys of free-form objects, and numbers as their
 * text): the privacy scan runs on that walk, so what is scanned and what leaves are
 * one code path.
 */
#ifndef SY_API_RENDER_H
#define SY_API_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "api/request.h"
#include "base/buf.h"

typedef struct api_render_opts {
    const char *model;    /* the tier's upstream model name */
    bool stream;          /* ask the tier for a stream (with usage) */
    bool logprobs;        /* ask for token logprobs (the cascade's edge answer) */
    bool forward_unknown; /* render fields outside the schema (else they are dropped) */
    const char *rest;     /* api_render_rest's output for this request, or NULL */
    size_t rest_len;
} api_render_opts_t;

/* Where a visited string sits: text the model reads as one flow (message contents,
 * text and refusal parts, prompt, suffix; `message` counts messages), or any other
 * string (names, ids, tool schemas, URLs, keys, numbers, unknown fields...). */
typedef enum { API_STR_FLOW, API_STR_OTHER } api_str_kind_t;

/* Called for each string; a non-zero return stops the walk and is returned. */
typedef int (*api_str_fn)(void *arg, api_str_kind_t kind, int message, const char *s, size_t n);

/* Renders the fields that are the same for every attempt (all but model, stream,
 * stream_options, logprobs) as one JSON object: a large request renders them once,
 * off the worker loop, and each attempt only adds its head. 0 or SY_ETOOBIG. */
int api_render_rest(const api_request_t *r, bool forward_unknown, buf_t *out);
/* Appends the upstream body to out. 0 or SY_ETOOBIG (out's cap). */
int api_render_body(const api_request_t *r, const api_render_opts_t *o, buf_t *out);
/* Visits every string api_render_body would write for the same forward_unknown (the
 * tier's model name and the schema's own keys and constants excepted). */
int api_render_strings(const api_request_t *r, bool forward_unknown, api_str_fn fn, void *arg);

#endif
