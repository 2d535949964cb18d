/* privacy.h — the PII scan of everything a request would send to a tier.
 *
 * api_privacy_scan walks the exact strings the upstream body is rendered from
 * (render.h: message contents and parts, names, tool calls and schemas, stop, user,
 * URLs, file data, numbers as text, fields outside the schema when they are
 * forwarded, keys of free-form objects) and scans them all with the PII engine,
 * with no cap on findings. Text the model reads as one flow (consecutive content
 * parts and messages, prompt and suffix) is also scanned joined, so a value split
 * across parts or messages is found. When an internal limit is reached the result
 * says `unknown`: the caller must then treat the request as holding any type.
 */
#ifndef SY_API_PRIVACY_H
#define SY_API_PRIVACY_H

#include <stdbool.h>
#include <stdint.h>

#include "api/request.h"
#include "route/pii/pii.h"

/* Findings cap per scanned chunk; past it the result is `unknown`. */
#define API_SCAN_MAX_SPANS (1u << 16)

typedef struct api_privacy {
    uint32_t types; /* bit t: pii_type_t t found (at or above min_score) */
    bool unknown;   /* a limit was reached: any type may be present */
} api_privacy_t;

typedef struct api_scan api_scan_t;

/* Per-thread scan state over a shared scanner (borrowed; may be NULL: nothing is
 * ever found). min_score: the routing threshold. Returns owned state. */
api_scan_t *api_scan_new(const pii_scanner_t *pii, float min_score);
void api_scan_free(api_scan_t *s);

/* Scans every string of r that a tier would receive (forward_unknown as the config
 * says). 0 or a negative error (then treat the request as `unknown`). */
int api_privacy_scan(api_scan_t *s, const api_request_t *r, bool forward_unknown,
                     api_privacy_t *out);
/* Scans one string (a label such as team or session). */
int api_privacy_scan_text(api_scan_t *s, const char *text, size_t len, api_privacy_t *out);

#endif
