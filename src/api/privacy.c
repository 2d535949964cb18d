/* privacy.c — scan what leaves: every rendered string, and the joined text flow. */
#include "api/privacy.h"

#include <string.h>

#include "api/render.h"
#include "base/err.h"
#include "base/mem.h"

/* Short strings are scanned in batches joined by a separator no detector spans (a
 * NUL between line breaks), which saves a scan call per tiny JSON node. */
#define SCAN_BATCH (64u << 10)
#define SCAN_SEP   "\n\0\n"
#define SCAN_SEP_N 3
/* A text longer than a window is scanned in windows overlapping by SCAN_OVERLAP: the
 * engine keeps at most 2^20 candidates per call, which a 256 KiB window cannot reach
 * (it would take four per byte), and a value is far shorter than the overlap. */
#define SCAN_WINDOW    (256u << 10)
#define SCAN_OVERLAP   (64u << 10)
#define SCAN_ALIGN     (4u << 10)
#define SCAN_MAX_BYTES (1u << 30)

struct api_scan {
    const pii_scanner_t *pii;
    pii_scratch_t *sc;
    float min_score;
    buf_t batch; /* short strings, separated */
    buf_t flow;  /* the text flow, joined as the model reads it */
    pii_span_t *spans;
    size_t cap; /* spans allocated */
    api_privacy_t *out;
};

api_scan_t *api_scan_new(const pii_scanner_t *pii, float min_score)
{
    api_scan_t *s = mem_calloc(1, sizeof *s);
    s->pii = pii;
    s->sc = pii ? pii_scratch_new(pii) : NULL;
    s->min_score = min_score;
    buf_init(&s->batch, SCAN_MAX_BYTES);
    buf_init(&s->flow, SCAN_MAX_BYTES);
    s->cap = 256;
    s->spans = mem_alloc(s->cap * sizeof *s->spans);
    return s;
}

void api_scan_free(api_scan_t *s)
{
    if (!s) return;
    pii_scratch_free(s->sc);
    buf_deinit(&s->batch);
    buf_deinit(&s->flow);
    mem_free(s->spans);
    mem_free(s);
}

/* Scans one window with every finding kept: the span buffer grows to what the engine
 * reports, up to API_SCAN_MAX_SPANS; past that the result is unknown. */
static int scan_window(api_scan_t *s, const char *text, size_t len)
{
    if (!s->pii || !len) return 0;
    size_t n = 0;
    int rc = pii_scan(s->pii, s->sc, text, len, s->spans, s->cap, &n);
    if (rc) return rc;
    if (n > s->cap) {
        size_t want = n < API_SCAN_MAX_SPANS ? n : API_SCAN_MAX_SPANS;
        if (want > s->cap) {
            mem_free(s->spans);
            s->cap = want;
            s->spans = mem_alloc(s->cap * sizeof *s->spans);
            rc = pii_scan(s->pii, s->sc, text, len, s->spans, s->cap, &n);
            if (rc) return rc;
        }
        if (n > s->cap) {
            s->out->unknown = true;
            n = s->cap;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (s->spans[i].score >= s->min_score) s->out->types |= 1u << s->spans[i].type;
    return 0;
}

static bool scan_gap(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scans text in windows whose cut ends sit at a gap (space, tab, line break) when one
 * is within SCAN_ALIGN bytes of the cut: half a word is another word ("lore" of
 * "lorem" is a given name). The overlap stays far longer than a value. */
static int scan(api_scan_t *s, const char *text, size_t len)
{
    if (len <= SCAN_WINDOW) return scan_window(s, text, len);
    for (size_t at = 0; at < len; at += SCAN_WINDOW - SCAN_OVERLAP) {
        size_t st = at, en = len - at < SCAN_WINDOW ? len : at + SCAN_WINDOW;
        for (size_t k = st; st > 0 && k < at + SCAN_ALIGN && k < en; k++)
            if (scan_gap(text[k - 1])) {
                st = k;
                break;
            }
        for (size_t k = en; en < len && k > en - SCAN_ALIGN && k > st; k--)
            if (scan_gap(text[k])) {
                en = k;
                break;
            }
        int rc = scan_window(s, text + st, en - st);
        if (rc) return rc;
        if (at + SCAN_WINDOW >= len) break;
    }
    return 0;
}

static int flush_batch(api_scan_t *s)
{
    int rc = scan(s, s->batch.data, s->batch.len);
    buf_reset(&s->batch);
    return rc;
}

static int on_string(void *arg, api_str_kind_t kind, int message, const char *str, size_t n)
{
    (void)message;
    api_scan_t *s = arg;
    if (kind == API_STR_FLOW) {
        /* The flow is scanned whole at the end; each piece is also scanned on its own
         * so a finding never depends on its neighbours. */
        if (buf_append(&s->flow, str, n)) return SY_ETOOBIG;
    }
    if (buf_append(&s->batch, str, n) || buf_append(&s->batch, SCAN_SEP, SCAN_SEP_N))
        return SY_ETOOBIG;
    return s->batch.len >= SCAN_BATCH ? flush_batch(s) : 0;
}

int api_privacy_scan(api_scan_t *s, const api_request_t *r, bool forward_unknown,
                     api_privacy_t *out)
{
    memset(out, 0, sizeof *out);
    s->out = out;
    buf_reset(&s->batch);
    buf_reset(&s->flow);
    int rc = api_render_strings(r, forward_unknown, on_string, s);
    if (!rc) rc = flush_batch(s);
    if (!rc) rc = scan(s, s->flow.data, s->flow.len);
    if (rc) out->unknown = true;
    /* Token ids read as text only under the tier's tokenizer: not scannable here. */
    if (r->embeddings && r->input_tokens) out->unknown = true;
    /* Do not keep a multi-megabyte body's copies between requests. */
    if (s->batch.cap > (1u << 20)) buf_deinit(&s->batch), buf_init(&s->batch, SCAN_MAX_BYTES);
    if (s->flow.cap > (1u << 20)) buf_deinit(&s->flow), buf_init(&s->flow, SCAN_MAX_BYTES);
    return rc;
}

int api_privacy_scan_text(api_scan_t *s, const char *text, size_t len, api_privacy_t *out)
{
    memset(out, 0, sizeof *out);
    s->out = out;
    int rc = scan(s, text, len);
    if (rc) out->unknown = true;
    return rc;
}
