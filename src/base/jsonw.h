/* jsonw.h — a small streaming JSON writer for hot-path output.
 *
 * Writes into a capped buf_t; commas are inserted automatically. Strings are
 * escaped per RFC 8259 (control bytes as \u00XX); invalid UTF-8 is passed through
 * byte for byte except that it never breaks the quoting. Errors (buffer cap) are
 * sticky: check jsonw_error() once at the end.
 */
#ifndef SY_BASE_JSONW_H
#define SY_BASE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSONW_MAX_DEPTH 32

typedef struct jsonw {
    buf_t *out;                      /* borrowed */
    int depth;                       /* current nesting */
    bool first[JSONW_MAX_DEPTH + 1]; /* no element written yet at this depth */
    bool after_key;                  /* a key was just written */
    int err;                         /* first error, sticky */
} jsonw_t;

void jsonw_init(jsonw_t *w, buf_t *out);
void jsonw_obj_begin(jsonw_t *w);
void jsonw_obj_end(jsonw_t *w);
void jsonw_arr_begin(jsonw_t *w);
void jsonw_arr_end(jsonw_t *w);
void jsonw_key(jsonw_t *w, const char *k);
void jsonw_str(jsonw_t *w, const char *s);
void jsonw_strn(jsonw_t *w, const char *s, size_t n);
void jsonw_int(jsonw_t *w, int64_t v);
void jsonw_uint(jsonw_t *w, uint64_t v);
void jsonw_double(jsonw_t *w, double v); /* non-finite values are written as null */
void jsonw_bool(jsonw_t *w, bool v);
void jsonw_null(jsonw_t *w);
/* Inserts already-serialized JSON as one value. */
void jsonw_raw(jsonw_t *w, const char *json, size_t n);
static inline int jsonw_error(const jsonw_t *w)
{
    return w->err;
}
/* Escapes s into out as a JSON string body (no quotes). */
int jsonw_escape(buf_t *out, const char *s, size_t n);

#endif
