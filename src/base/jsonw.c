/* jsonw.c — a small streaming JSON writer. */
#include "base/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void jsonw_init(jsonw_t *w, buf_t *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->first[0] = true;
}

static void put_slow(jsonw_t *w, const char *s, size_t n)
{
    if (w->err) return;
    int rc = buf_append(w->out, s, n);
    if (rc) w->err = rc;
}

/* True when the buffer already has room for n more bytes (and its NUL) within its
 * cap, so they can be copied without a call into buf. */
static inline bool room(const buf_t *b, size_t n)
{
    return b->len + n < b->cap && b->len + n <= b->max;
}

/* Appends n bytes. Most values are a few bytes into a buffer that has long had
 * room: that case is inline (a response object is a hundred such appends). */
static inline void put(jsonw_t *w, const char *s, size_t n)
{
    buf_t *b = w->out;
    if (!w->err && room(b, n)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
        return;
    }
    put_slow(w, s, n);
}

/* Writes the separator a new value needs at the current depth. */
static void sep(jsonw_t *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth]) put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open(jsonw_t *w, char c)
{
    sep(w);
    put(w, &c, 1);
    if (w->depth >= JSONW_MAX_DEPTH) {
        w->err = SY_ETOOBIG;
        return;
    }
    w->first[++w->depth] = true;
}

static void close_(jsonw_t *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0) w->depth--;
}

void jsonw_obj_begin(jsonw_t *w)
{
    open(w, '{');
}
void jsonw_obj_end(jsonw_t *w)
{
    close_(w, '}');
}
void jsonw_arr_begin(jsonw_t *w)
{
    open(w, '[');
}
void jsonw_arr_end(jsonw_t *w)
{
    close_(w, ']');
}

int jsonw_escape(buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (i > run && (rc = buf_append(out, s + run, i - run))) return rc;
        char e[6] = {'\\', 0};
        size_t en = 2;
        switch (c) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            en = 6;
        }
        if ((rc = buf_append(out, e, en))) return rc;
        run = i + 1;
    }
    if (n > run) rc = buf_append(out, s + run, n - run);
    return rc;
}

/* Writes s as a quoted JSON string followed by `tail` (0 or 1 bytes: the key's
 * colon). A string with nothing to escape (keys, names, ids) is one copy into a
 * buffer with room; anything else goes through jsonw_escape. */
static void quoted(jsonw_t *w, const char *s, size_t n, const char *tail, size_t tn)
{
    buf_t *b = w->out;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') break;
        i++;
    }
    if (i == n && !w->err && room(b, n + 2 + tn)) {
        char *d = b->data + b->len;
        d[0] = '"';
        memcpy(d + 1, s, n);
        d[n + 1] = '"';
        if (tn) d[n + 2] = tail[0];
        b->len += n + 2 + tn;
        b->data[b->len] = 0;
        return;
    }
    put(w, "\"", 1);
    if (!w->err) {
        int rc = jsonw_escape(b, s, n);
        if (rc) w->err = rc;
    }
    put(w, "\"", 1);
    if (tn) put(w, tail, tn);
}

void jsonw_strn(jsonw_t *w, const char *s, size_t n)
{
    sep(w);
    quoted(w, s, n, NULL, 0);
}

void jsonw_str(jsonw_t *w, const char *s)
{
    if (!s) {
        jsonw_null(w);
        return;
    }
    jsonw_strn(w, s, strlen(s));
}

void jsonw_key(jsonw_t *w, const char *k)
{
    if (!k) {
        jsonw_null(w);
        put(w, ":", 1);
    } else {
        sep(w);
        quoted(w, k, strlen(k), ":", 1);
    }
    w->after_key = true;
}

/* Decimal digits of v (with a leading '-' when neg) written to the end of
 * tmp[32]; returns the first character. Cheaper than snprintf on every number. */
static char *fmt_dec(char tmp[32], uint64_t v, bool neg)
{
    char *p = tmp + 32;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) *--p = '-';
    return p;
}

void jsonw_int(jsonw_t *w, int64_t v)
{
    char tmp[32];
    char *p = fmt_dec(tmp, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
    sep(w);
    put(w, p, (size_t)(tmp + 32 - p));
}

void jsonw_uint(jsonw_t *w, uint64_t v)
{
    char tmp[32];
    char *p = fmt_dec(tmp, v, false);
    sep(w);
    put(w, p, (size_t)(tmp + 32 - p));
}

/* a * 10^k rounded to the nearest integer, exactly: a = mant * 2^exp2, so
 * a * 10^k = mant * 5^k * 2^(k + exp2), one 64x64-bit product and a shift in 128
 * bits. *floor_out gets the value before rounding (to check the digit count).
 * Returns false on an exact tie (left to printf's rounding) or k out of range. */
static bool scaled_round(uint64_t mant, int exp2, int k, uint64_t *out, uint64_t *floor_out)
{
    static const uint64_t p5[] = {1ull,
                                  5ull,
                                  25ull,
                                  125ull,
                                  625ull,
                                  3125ull,
                                  15625ull,
                                  78125ull,
                                  390625ull,
                                  1953125ull,
                                  9765625ull,
                                  48828125ull,
                                  244140625ull,
                                  1220703125ull,
                                  6103515625ull,
                                  30517578125ull,
                                  152587890625ull,
                                  762939453125ull,
                                  3814697265625ull,
                                  19073486328125ull,
                                  95367431640625ull,
                                  476837158203125ull,
                                  2384185791015625ull,
                                  11920928955078125ull};
    if (k < 0 || k > 23) return false;
    unsigned __int128 t = (unsigned __int128)mant * p5[k];
    int sh = k + exp2;
    if (sh >= 0) {
        if (sh > 20 || (t << sh) >> 64) return false;
        *out = *floor_out = (uint64_t)(t << sh);
        return true;
    }
    int s = -sh;
    if (s > 120) return false;
    unsigned __int128 n = t >> s, rem = t - (n << s), half = (unsigned __int128)1 << (s - 1);
    if (rem == half || n >> 63) return false;
    *floor_out = (uint64_t)n;
    *out = (uint64_t)n + (rem > half);
    return true;
}

/* Writes n (exactly p digits) as printf's %.<p>g does with decimal exponent x:
 * fixed notation when -4 <= x < p, else d.ddde[+-]XX; trailing zeros dropped. */
static size_t fmt_g(bool neg, uint64_t n, int p, int x, char *out)
{
    char d[24];
    for (int i = p - 1; i >= 0; i--) {
        d[i] = (char)('0' + n % 10);
        n /= 10;
    }
    int nd = p; /* significant digits left after dropping trailing zeros */
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (x >= -4 && x < p) {
        if (x >= 0) {
            memcpy(out + o, d, (size_t)x + 1);
            o += (size_t)x + 1;
            if (nd > x + 1) {
                out[o++] = '.';
                memcpy(out + o, d + x + 1, (size_t)(nd - x - 1));
                o += (size_t)(nd - x - 1);
            }
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < -x - 1; z++)
                out[o++] = '0';
            memcpy(out + o, d, (size_t)nd);
            o += (size_t)nd;
        }
        return o;
    }
    out[o++] = d[0];
    if (nd > 1) {
        out[o++] = '.';
        memcpy(out + o, d + 1, (size_t)nd - 1);
        o += (size_t)nd - 1;
    }
    out[o++] = 'e';
    out[o++] = x < 0 ? '-' : '+';
    int ax = x < 0 ? -x : x;
    if (ax >= 100) out[o++] = (char)('0' + ax / 100);
    out[o++] = (char)('0' + ax / 10 % 10);
    out[o++] = (char)('0' + ax % 10);
    return o;
}

/* The text "%.15g" gives for v when it reads back as v, else the "%.17g" text,
 * for 1e-7 <= |v| < 1e15, computed exactly in integers instead of printf's
 * multi-precision path. The 15-digit text reads back iff (double)N / 10^k == v
 * (N < 2^53 and 10^k exact, so that division is correctly rounded like strtod).
 * Returns the length, or 0 to leave v to snprintf (outside the range, or an
 * exact tie where printf's rounding rule would decide). */
static size_t g_exact(double v, char out[40])
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double a = fabs(v);
    if (!(a >= 1e-7 && a < 1e15)) return 0;
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    uint64_t mant = (bits & ((1ull << 52) - 1)) | (1ull << 52); /* normal in this range */
    int exp2 = (int)((bits >> 52) & 0x7ff) - 1075;
    int e = (int)floor(log10(a)); /* decimal exponent, corrected below */
    uint64_t n17 = 0, f17 = 0;
    for (int tries = 0;; tries++) {
        if (tries > 2 || !scaled_round(mant, exp2, 16 - e, &n17, &f17)) return 0;
        if (f17 < 10000000000000000ull)
            e--;
        else if (f17 >= 100000000000000000ull)
            e++;
        else
            break;
    }
    bool neg = v < 0;
    uint64_t n15, f15;
    int k15 = 14 - e;
    if (k15 >= 0 && k15 <= 22 && scaled_round(mant, exp2, k15, &n15, &f15) &&
        (double)n15 / p10[k15] == a) {
        if (n15 == 1000000000000000ull) return fmt_g(neg, n15 / 10, 15, e + 1, out);
        return fmt_g(neg, n15, 15, e, out);
    }
    if (n17 == 100000000000000000ull) return fmt_g(neg, n17 / 10, 17, e + 1, out);
    return fmt_g(neg, n17, 17, e, out);
}

void jsonw_double(jsonw_t *w, double v)
{
    if (!isfinite(v)) {
        jsonw_null(w);
        return;
    }
    /* 15 significant digits are exact for most values people write ("0.1"); when
     * they do not round-trip, 17 always do. One or two formats, never a search. */
    if (v == trunc(v) && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
        /* Whole numbers below 1e15 print as their digits under %.15g too. */
        jsonw_int(w, (int64_t)v);
        return;
    }
    char tmp[40];
    size_t sn = g_exact(v, tmp);
    if (sn) {
        sep(w);
        put(w, tmp, sn);
        return;
    }
    int n = snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) n = snprintf(tmp, sizeof tmp, "%.17g", v);
    sep(w);
    put(w, tmp, (size_t)n);
}

void jsonw_bool(jsonw_t *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw_t *w)
{
    sep(w);
    put(w, "null", 4);
}

void jsonw_raw(jsonw_t *w, const char *json, size_t n)
{
    sep(w);
    put(w, json, n);
}
