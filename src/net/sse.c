/* sse.c — incremental text/event-stream parser (WHATWG "interpreting an event
 * stream").
 *
 * Lines end with CRLF, LF or CR; a CR at the end of one slice whose LF arrives in
 * the next is remembered in saw_cr. Complete lines inside the fed slice are handled
 * in place; only a line split across slices is copied into p->line.
 */
#include "net/sse.h"

#include <string.h>

#include "base/err.h"

#define SSE_DATA_FACTOR 4 /* an event's data may hold this many max-size lines */

void sse_parser_init(sse_parser_t *p, size_t max_line)
{
    buf_init(&p->line, max_line);
    buf_init(&p->data, max_line * SSE_DATA_FACTOR);
    buf_init(&p->event, 256);
    p->saw_cr = 0;
}

void sse_parser_deinit(sse_parser_t *p)
{
    buf_deinit(&p->line);
    buf_deinit(&p->data);
    buf_deinit(&p->event);
}

void sse_parser_reset(sse_parser_t *p)
{
    buf_reset(&p->line);
    buf_reset(&p->data);
    buf_reset(&p->event);
    p->saw_cr = 0;
}

/* Handles one complete line (without its terminator). 0 or SY_ETOOBIG. */
static int sse_line(sse_parser_t *p, const char *s, size_t n, sse_event_fn fn, void *arg)
{
    if (n == 0) {
        /* Blank line: dispatch if any data was collected, then reset. */
        if (p->data.len) {
            size_t len = p->data.len - 1; /* drop the trailing '\n' */
            p->data.data[len] = 0;
            fn(arg, p->event.data ? p->event.data : "", p->data.data, len);
        }
        buf_reset(&p->data);
        buf_reset(&p->event);
        return 0;
    }
    if (s[0] == ':') return 0; /* comment */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = (size_t)(s + n - v);
    if (vlen && v[0] == ' ') v++, vlen--;
    if (flen == 4 && !memcmp(s, "data", 4)) {
        if (buf_append(&p->data, v, vlen) || buf_putc(&p->data, '\n')) return SY_ETOOBIG;
    } else if (flen == 5 && !memcmp(s, "event", 5)) {
        buf_reset(&p->event);
        if (buf_append(&p->event, v, vlen)) return SY_ETOOBIG;
    }
    /* "id", "retry" and unknown fields are ignored: the gateway passes them on. */
    return 0;
}

/* Feeds n bytes; calls fn for each event completed by them. 0 or SY_ETOOBIG (a
 * line or an event passed its cap; the parser should then be discarded). */
int sse_parser_feed(sse_parser_t *p, const char *s, size_t n, sse_event_fn fn, void *arg)
{
    size_t i = 0;
    if (p->saw_cr && n) {
        p->saw_cr = 0;
        if (s[0] == '\n') i = 1;
    }
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\n' && s[j] != '\r')
            j++;
        if (j == n) {
            if (buf_append(&p->line, s + i, n - i)) return SY_ETOOBIG;
            return 0;
        }
        int rc;
        if (p->line.len) {
            if (buf_append(&p->line, s + i, j - i)) return SY_ETOOBIG;
            rc = sse_line(p, p->line.data, p->line.len, fn, arg);
            buf_reset(&p->line);
        } else {
            if (j - i > p->line.max) return SY_ETOOBIG;
            rc = sse_line(p, s + i, j - i, fn, arg);
        }
        if (rc) return rc;
        if (s[j] == '\r') {
            if (j + 1 == n) {
                p->saw_cr = 1;
                return 0;
            }
            if (s[j + 1] == '\n') j++;
        }
        i = j + 1;
    }
    return 0;
}
