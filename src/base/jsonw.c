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

/* The %.15g text of v when v is the double nearest to a decimal of at most 15
 * significant digits and 1e-7 <= |v| < 1e15 (fixed notation from 1e-4): that decimal
 * is then exactly what %.15g prints and it reads back as v. Found by trying k
 * decimals, smallest first, and checking M / 10^k (both exact doubles, one
 * correctly rounded division) against v. Returns the length, or 0 when v is not
 * such a number (the caller falls back to snprintf). */
static size_t short_decimal(double v, char out[40])
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double a = fabs(v);
    if (!(a >= 1e-7 && a < 1e15)) return 0;
    bool sci = a < 1e-4; /* %g switches to d.ddde-XX below 1e-4 */
    for (int k = 1; k <= 22; k++) {
        double m = nearbyint(a * p10[k]);
        if (m >= 1e15) return 0; /* more than 15 significant digits */
        if (m / p10[k] != a) continue;
        char tmp[32];
        char *d = fmt_dec(tmp, (uint64_t)m, false);
        size_t n = (size_t)(tmp + 32 - d), o = 0;
        if (v < 0) out[o++] = '-';
        if (sci) {
            int x = k - (int)n + 1; /* v = d.ddd * 10^-x, 5 <= x <= 7 here */
            out[o++] = d[0];
            if (n > 1) {
                out[o++] = '.';
                memcpy(out + o, d + 1, n - 1);
                o += n - 1;
            }
            out[o++] = 'e';
            out[o++] = '-';
            out[o++] = (char)('0' + x / 10);
            out[o++] = (char)('0' + x % 10);
            return o;
        }
        if (n <= (size_t)k) {
            out[o++] = '0';
            out[o++] = '.';
            for (size_t z = n; z < (size_t)k; z++)
                out[o++] = '0';
            memcpy(out + o, d, n);
            o += n;
        } else {
            memcpy(out + o, d, n - (size_t)k);
            o += n - (size_t)k;
            out[o++] = '.';
            memcpy(out + o, d + n - k, (size_t)k);
            o += (size_t)k;
        }
        return o;
    }
    return 0;
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
    size_t sn = short_decimal(v, tmp);
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
