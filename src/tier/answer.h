/* answer.h — a strict check of a complete non-streamed upstream answer that decides
 * only where it is sure to agree with cJSON.
 *
 * The gateway reads little of an upstream's JSON answer (is it an object, is
 * "choices" an array, the usage counts), but must reject what cJSON would reject.
 * Building and freeing a cJSON tree for that is a large share of a proxied
 * request's CPU, so answer_scan() validates the bytes in one pass (RFC 8259) and
 * reads those fields. When it cannot be sure cJSON would decide the same (lenient
 * or invalid JSON, \u escapes outside proper UTF-16 pairs, numbers over cJSON's 63
 * characters, nesting past ANSWER_MAX_DEPTH, escaped keys where a key matters, a
 * first choice carrying a logprobs object to score) it says so, and the caller
 * parses with cJSON. fuzz/fuzz_answer.c and tests/test_tier_answer.c check the
 * agreement.
 */
#ifndef SY_TIER_ANSWER_H
#define SY_TIER_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#define ANSWER_MAX_DEPTH 512 /* nesting the scan follows (cJSON allows 1000) */

typedef struct answer_scan {
    bool top_obj;     /* the document is an object */
    bool choices_arr; /* its first "choices" key holds an array */
    bool has_pt;      /* its first "usage" object's first "prompt_tokens" is a number */
    bool has_ct;      /* ... and "completion_tokens" */
    double pt, ct;    /* their values (as strtod reads them: may be negative or huge) */
} answer_scan_t;

/* True when the scan is sure (out filled: body is valid JSON and cJSON reads it the
 * same way); false when cJSON must decide (out untouched). */
bool answer_scan(const char *body, size_t len, answer_scan_t *out);

#endif
