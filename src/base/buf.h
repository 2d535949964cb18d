/* buf.h — growable byte buffer with a hard cap.
 *
 * Every growable buffer in switchyard has a maximum set at init (request bodies,
 * headers, SSE lines, upstream responses). An append that would pass the cap fails
 * with SY_ETOOBIG and leaves the buffer unchanged, so callers can answer 413 or
 * drop the upstream cleanly. The data is always NUL-terminated (not counted in len).
 */
#ifndef SY_BASE_BUF_H
#define SY_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the trailing NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
} buf_t;

/* Caller-allocated lifetime. buf_init allocates nothing. */
void buf_init(buf_t *b, size_t max);
void buf_deinit(buf_t *b);

/* Appends; 0 or SY_ETOOBIG (buffer unchanged). */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_puts(buf_t *b, const char *s);
int buf_putc(buf_t *b, char c);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Ensures room for n more bytes without changing len; 0 or SY_ETOOBIG. */
int buf_reserve(buf_t *b, size_t n);

/* Drops the first n bytes (n <= len). */
void buf_consume(buf_t *b, size_t n);
static inline void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data) b->data[0] = 0;
}
/* Appends all that f holds up to its end: 0, SY_ETOOBIG past the cap (what was read
 * stays, the rest is not read), SY_EIO on a read error. */
int buf_read_stream(buf_t *b, FILE *f);
/* Appends the whole file at path: as buf_read_stream, or -errno when it cannot be
 * opened. */
int buf_read_file(buf_t *b, const char *path);
/* Returns the data and resets the buffer to empty; caller owns the result. */
char *buf_steal(buf_t *b);

#endif
