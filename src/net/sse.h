/* sse.h — incremental Server-Sent Events parser (text/event-stream).
 *
 * Fed arbitrary byte slices; emits one event per blank-line-terminated block with
 * its data lines joined by '\n' (per the WHATWG spec). Lines are capped: a line
 * longer than max_line makes feed return SY_ETOOBIG (upstream garbage).
 */
#ifndef SY_NET_SSE_H
#define SY_NET_SSE_H

#include <stddef.h>

#include "base/buf.h"

typedef void (*sse_event_fn)(void *arg, const char *event, const char *data, size_t len);

typedef struct sse_parser {
    buf_t line;  /* partial line */
    buf_t data;  /* data of the event being built */
    buf_t event; /* event name ("" = message) */
    int saw_cr;
} sse_parser_t;

void sse_parser_init(sse_parser_t *p, size_t max_line);
void sse_parser_deinit(sse_parser_t *p);
/* Back to the state after init, keeping the buffers' memory for the next stream. */
void sse_parser_reset(sse_parser_t *p);
/* 0 or SY_ETOOBIG. Calls fn for each complete event. */
int sse_parser_feed(sse_parser_t *p, const char *data, size_t n, sse_event_fn fn, void *arg);

#endif
