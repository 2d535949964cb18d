/* answer.c — the strict scan of an upstream answer (see answer.h). */
#include "tier/answer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The scan: a recursive descent over the bytes that also picks out what the
 * answer's digest needs, without building a cJSON tree. It decides only what it is sure
 * cJSON would decide the same way: everything it accepts cJSON parses to the same
 * structure (no \u escapes that cJSON may reject, numbers within cJSON's 63-char
 * limit, nesting below cJSON's), and object keys it matches contain no escapes.
 * Anything else (invalid or lenient JSON, escaped keys where they matter, an edge
 * answer with logprobs to score) leaves "sure" false and digest_body parses the
 * answer with cJSON as before. */
enum { JS_ANY, JS_TOP, JS_CHOICES, JS_CHOICE0, JS_USAGE };

typedef struct jscan {
    const char *p, *end;
    bool sure;         /* cleared when cJSON must decide */
    bool seen_choices; /* a top-level "choices" key was met (the first counts) */
    bool seen_usage, seen_pt, seen_ct, seen_lp;
    answer_scan_t a; /* what the caller gets */
} jscan_t;

static bool js_value(jscan_t *s, int depth, int ctx);

static void js_ws(jscan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int js_hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at s->p ('"'); *esc tells whether it held escapes. False if invalid or
 * an escape cJSON might treat differently (a \u outside proper UTF-16 pairs). */
static bool js_string(jscan_t *s, const char **str, size_t *len, bool *esc)
{
    const char *p = s->p + 1;
    *esc = false;
    *str = p;
    for (;;) {
        /* Skip 8 plain bytes at a time (no '"', '\\' or control byte among them);
         * the byte loop below decides everything else. */
        while (s->end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
            uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x);
            if (hit & highs) break;
            p += 8;
        }
        if (p >= s->end) return false;
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c < 0x20) return false;
        if (c != '\\') {
            p++;
            continue;
        }
        *esc = true;
        if (p + 1 >= s->end) return false;
        char e = p[1];
        if (e == 'u') {
            if (s->end - p < 6) return false;
            int u = js_hex4(p + 2);
            if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) return false;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
                int lo = js_hex4(p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF) return false;
                p += 6;
            }
            continue;
        }
        if (!strchr("\"\\/bfnrt", e) || !e) return false;
        p += 2;
    }
    *len = (size_t)(p - *str);
    s->p = p + 1;
    return true;
}

/* A number at s->p; *out gets its value when out is not NULL. */
static bool js_number(jscan_t *s, double *out)
{
    const char *p = s->p, *b = p;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end) return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return false;
    }
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9') return false;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || *p < '0' || *p > '9') return false;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - b);
    if (n > 63) return false; /* cJSON reads at most 63 characters of a number */
    if (out) {
        char tmp[64];
        memcpy(tmp, b, n);
        tmp[n] = 0;
        *out = strtod(tmp, NULL);
    }
    s->p = p;
    return true;
}

static bool js_object(jscan_t *s, int depth, int ctx)
{
    s->p++; /* '{' */
    js_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        js_ws(s);
        if (s->p >= s->end || *s->p != '"') return false;
        const char *k;
        size_t kn;
        bool esc;
        if (!js_string(s, &k, &kn, &esc)) return false;
        if (esc && ctx != JS_ANY) s->sure = false; /* cJSON would match the unescaped key */
        js_ws(s);
        if (s->p >= s->end || *s->p != ':') return false;
        s->p++;
        js_ws(s);
        if (s->p >= s->end) return false;
        char first = *s->p;
        int child = JS_ANY;
#define KEY_IS(lit) (kn == sizeof lit - 1 && !memcmp(k, lit, kn))
        if (ctx == JS_TOP && !s->seen_choices && KEY_IS("choices")) {
            s->seen_choices = true;
            s->a.choices_arr = first == '[';
            child = JS_CHOICES;
        } else if (ctx == JS_TOP && !s->seen_usage && KEY_IS("usage")) {
            s->seen_usage = true;
            child = JS_USAGE;
        } else if (ctx == JS_CHOICE0 && !s->seen_lp && KEY_IS("logprobs")) {
            s->seen_lp = true;
            if (first == '{') s->sure = false; /* confidence to compute: cJSON path */
        } else if (ctx == JS_USAGE && !s->seen_pt && KEY_IS("prompt_tokens")) {
            s->seen_pt = true;
            if (first == '-' || (first >= '0' && first <= '9')) {
                s->a.has_pt = true;
                if (!js_number(s, &s->a.pt)) return false;
                goto next;
            }
        } else if (ctx == JS_USAGE && !s->seen_ct && KEY_IS("completion_tokens")) {
            s->seen_ct = true;
            if (first == '-' || (first >= '0' && first <= '9')) {
                s->a.has_ct = true;
                if (!js_number(s, &s->a.ct)) return false;
                goto next;
            }
        }
#undef KEY_IS
        if (!js_value(s, depth + 1, child)) return false;
    next:
        js_ws(s);
        if (s->p >= s->end) return false;
        if (*s->p == '}') {
            s->p++;
            return true;
        }
        if (*s->p != ',') return false;
        s->p++;
    }
}

static bool js_array(jscan_t *s, int depth, int ctx)
{
    s->p++; /* '[' */
    js_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return true;
    }
    for (int i = 0;; i++) {
        js_ws(s);
        int child = ctx == JS_CHOICES && i == 0 ? JS_CHOICE0 : JS_ANY;
        if (!js_value(s, depth + 1, child)) return false;
        js_ws(s);
        if (s->p >= s->end) return false;
        if (*s->p == ']') {
            s->p++;
            return true;
        }
        if (*s->p != ',') return false;
        s->p++;
    }
}

static bool js_lit(jscan_t *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n)) return false;
    s->p += n;
    return true;
}

static bool js_value(jscan_t *s, int depth, int ctx)
{
    if (depth > ANSWER_MAX_DEPTH || s->p >= s->end) return false;
    const char *str;
    size_t n;
    bool esc;
    switch (*s->p) {
    case '{':
        return js_object(s, depth, ctx);
    case '[':
        return js_array(s, depth, ctx);
    case '"':
        return js_string(s, &str, &n, &esc);
    case 't':
        return js_lit(s, "true", 4);
    case 'f':
        return js_lit(s, "false", 5);
    case 'n':
        return js_lit(s, "null", 4);
    default:
        return js_number(s, NULL);
    }
}

bool answer_scan(const char *body, size_t len, answer_scan_t *out)
{
    jscan_t js, *s = &js;
    memset(s, 0, sizeof *s);
    s->p = body;
    s->end = body + len;
    s->sure = true;
    js_ws(s);
    if (s->p >= s->end) return false;
    s->a.top_obj = *s->p == '{';
    if (!js_value(s, 0, s->a.top_obj ? JS_TOP : JS_ANY)) return false;
    js_ws(s);
    if (s->p != s->end || !s->sure) return false;
    *out = s->a;
    return true;
}
