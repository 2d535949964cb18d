/* jinja.h — the subset of Jinja that chat templates (tokenizer.chat_template) use.
 *
 * A template is parsed once into a tree and rendered many times against a context
 * given as a cJSON object (messages, tools, add_generation_prompt, bos_token, ...).
 * The dialect is the one Hugging Face's chat templating applies: trim_blocks and
 * lstrip_blocks on, one trailing newline of the template dropped, `{%-`/`-%}`
 * whitespace control; booleans print as true/false and none prints nothing.
 *
 * Supported: text, {{ }}, {# #}, if/elif/else, for (tuple targets, loop filter,
 * else, loop.index/index0/revindex/first/last/length/previtem/nextitem, break,
 * continue), set (to a name, a namespace attribute, or a block), macro with default
 * arguments; literals (strings, numbers, lists, tuples, dicts), attribute and
 * subscript access, slices, calls, ternaries, and/or/not, comparisons, in, is-tests,
 * + - * / // % ** and ~; filters trim, tojson, length/count, upper, lower, title,
 * capitalize, replace, items, default/d, join, first, last, list, string, int,
 * float, abs, indent, map, select/rejectattr, reverse, sort, unique, safe; string,
 * dict and list methods (strip, split, startswith, items, get, append, ...); globals
 * raise_exception, range, namespace, strftime_now.
 *
 * Taint: every string that comes from the context (a message's content, a tool's
 * schema) is marked byte by byte, and the marks travel through concatenation,
 * slicing, filters and tojson into the output, which lists the marked byte ranges.
 * A tokenizer then parses special pieces only outside them (tokenizer_encode_spans).
 *
 * Limits (jinja_limits_t): nesting depth of evaluation and macro calls, loop
 * iterations, output bytes and working memory; passing one stops the render with
 * SY_ETOOBIG and a message naming the limit.
 */
#ifndef SY_ENGINE_JINJA_H
#define SY_ENGINE_JINJA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define JINJA_MAX_SOURCE (1u << 20) /* template bytes */

typedef struct jinja_tmpl jinja_tmpl_t;

typedef struct jinja_limits {
    int max_depth;       /* nested evaluation + macro calls; 0: 200 */
    long max_iterations; /* loop iterations in one render; 0: 1,000,000 */
    size_t max_output;   /* output bytes; 0: 4 MiB */
    size_t max_memory;   /* working memory of one render, bytes; 0: 64 MiB */
} jinja_limits_t;

/* A byte range of the output. */
typedef struct jinja_span {
    size_t off, len;
} jinja_span_t;

/* The rendered text and the byte ranges that came from the context (tainted),
 * sorted and disjoint. */
typedef struct jinja_out {
    buf_t text;
    jinja_span_t *spans; /* owned */
    size_t n_spans, cap_spans;
} jinja_out_t;

/* Parses src (len bytes). Returns 0 with *out owned (jinja_free), SY_EPARSE with a
 * message naming the line in err, or SY_ETOOBIG for a source over JINJA_MAX_SOURCE. */
int jinja_parse(const char *src, size_t len, jinja_tmpl_t **out, char *err, size_t errlen);
void jinja_free(jinja_tmpl_t *t);

void jinja_out_init(jinja_out_t *o, size_t max_bytes);
void jinja_out_deinit(jinja_out_t *o);
void jinja_out_reset(jinja_out_t *o);

/* Renders t with the variables of ctx (a cJSON object; borrowed; all its strings are
 * tainted) and of trusted (may be NULL; strings not tainted: the vocabulary's
 * bos_token and eos_token, which the template writes as control pieces), appending to
 * out. lim may be NULL (defaults). Returns 0; SY_EINVAL for a runtime error
 * (raise_exception, a bad operand, an unknown filter) with the message in err;
 * SY_ETOOBIG when a limit is passed. out holds partial output on error. */
int jinja_render(const jinja_tmpl_t *t, const cJSON *ctx, const cJSON *trusted,
                 const jinja_limits_t *lim, jinja_out_t *out, char *err, size_t errlen);

#endif
