/* pii_valid.c — checksum and shape validators for detected candidates.
 *
 * The scanner finds candidates with Hyperscan; these functions decide whether a
 * candidate really is what it looks like. They take the candidate text as found
 * (digits with their separators) and never read outside [s, s+n).
 */
#include <arpa/inet.h>
#include <string.h>

#define PII_DIGITS_TABLES
#include "route/pii/pii_digits.h"
#include "route/pii/pii_internal.h"

/* ===================================================================== helpers */

/* is_digit, is_alpha: pii_internal.h (ASCII only) */

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Copies the digits of s into d (at most cap); returns how many digits s holds. */
static size_t digits_of(const char *s, size_t n, char *d, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (is_digit(s[i])) {
            if (k < cap) d[k] = s[i];
            k++;
        }
    return k;
}

/* Value of the first k digits of d (k <= 9). */
static unsigned prefix_num(const char *d, size_t k)
{
    unsigned v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

/* ===================================================================== UTF-8 */

size_t pii_utf8_decode(const unsigned char *p, size_t left, uint32_t *cp)
{
    if (!left) return 0;
    unsigned char b = p[0];
    size_t n;
    uint32_t v, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
        n = 2, v = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, v = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, v = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

size_t pii_utf8_digit(const unsigned char *p, size_t left, int *value)
{
    uint32_t cp;
    size_t n = pii_utf8_decode(p, left, &cp);
    if (!n || cp < 0x30) return 0;
    /* the last run whose zero is at or below cp */
    size_t lo = 0, hi = PII_ND_RUNS;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (pii_nd_zeros[mid] <= cp)
            lo = mid;
        else
            hi = mid;
    }
    if (cp - pii_nd_zeros[lo] >= 10) return 0;
    *value = (int)(cp - pii_nd_zeros[lo]);
    return n;
}

size_t pii_utf8_word(const unsigned char *p, size_t left)
{
    uint32_t cp;
    size_t n = pii_utf8_decode(p, left, &cp);
    if (n < 2) return 0;
    size_t lo = 0, hi = PII_WORD_RANGES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (pii_word_ranges[mid][1] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < PII_WORD_RANGES && pii_word_ranges[lo][0] <= cp ? n : 0;
}

/* ===================================================================== cards */

/* Luhn checksum over the digits of s; false when s holds fewer than 2 digits. */
bool pii_luhn_valid(const char *s, size_t n)
{
    int sum = 0, k = 0;
    for (size_t i = n; i-- > 0;) {
        if (!is_digit(s[i])) continue;
        int v = s[i] - '0';
        if (k & 1) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
        k++;
    }
    return k >= 2 && sum % 10 == 0;
}

/* Card number: 12..19 digits, a known issuer prefix with a length that issuer uses,
 * and a Luhn checksum. Groups are joined by one separator used throughout (space,
 * dash, dot or slash); a line break, with spaces around it, may stand in for it
 * anywhere (a number wrapped across lines). */
bool pii_card_valid(const char *s, size_t n)
{
    char d[24];
    char sep = 0;
    for (size_t i = 0; i < n;) {
        if (is_digit(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        bool nl = false;
        while (j < n && !is_digit(s[j])) {
            if (s[j] == '\n') {
                if (nl) return false;
                nl = true;
            } else if (s[j] != ' ' && s[j] != '\r' && s[j] != '-' && s[j] != '.' && s[j] != '/') {
                return false;
            }
            j++;
        }
        if (j - i > 3) return false;
        if (!nl) {
            if (j - i != 1 || (sep && s[i] != sep)) return false;
            sep = s[i];
        }
        i = j;
    }
    size_t k = digits_of(s, n, d, sizeof d);
    if (k < 12 || k > 19) return false;
    unsigned p1 = prefix_num(d, 1), p2 = prefix_num(d, 2), p3 = prefix_num(d, 3);
    unsigned p4 = prefix_num(d, 4), p6 = prefix_num(d, 6);
    bool ok = false;
    if (p1 == 4)
        ok = k == 13 || k == 16 || k == 19; /* Visa */
    else if (p2 >= 51 && p2 <= 55)
        ok = k == 16; /* Mastercard */
    else if (p4 >= 2221 && p4 <= 2720)
        ok = k == 16; /* Mastercard 2-series */
    else if (p2 == 34 || p2 == 37)
        ok = k == 15; /* Amex */
    else if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649))
        ok = k >= 16; /* Discover */
    else if (p6 >= 622126 && p6 <= 622925)
        ok = k >= 16; /* Discover/UnionPay */
    else if (p2 == 62)
        ok = k >= 16; /* UnionPay */
    else if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
        ok = k >= 14; /* Diners */
    else if (p2 == 35)
        ok = k >= 16; /* JCB */
    else if (p4 == 604 && d[0] == '0')
        ok = k >= 12; /* Maestro (UK, 0604) */
    else if (p4 == 2131 || p4 == 1800)
        ok = k == 15; /* JCB (old) */
    else if (p2 == 50 || (p2 >= 56 && p2 <= 69))
        ok = k >= 12; /* Maestro */
    return ok && pii_luhn_valid(s, n);
}

/* ===================================================================== IBAN */

/* IBAN length per country (ISO 13616 registry). */
static const struct {
    char cc[3];
    unsigned char len;
} iban_lens[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

/* IBAN: letters+digits with optional single spaces, country length, mod 97 == 1.
 * Case-insensitive (people type them in lower case). */
bool pii_iban_valid(const char *s, size_t n)
{
    char c[40];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') continue;
        if (!is_digit(s[i]) && !is_alpha(s[i])) return false;
        if (k == sizeof c) return false;
        c[k++] = (char)(is_alpha(s[i]) ? (s[i] & ~0x20) : s[i]);
    }
    if (k < 15 || !is_alpha(c[0]) || !is_alpha(c[1]) || !is_digit(c[2]) || !is_digit(c[3]))
        return false;
    size_t want = 0;
    for (size_t i = 0; i < sizeof iban_lens / sizeof iban_lens[0]; i++)
        if (iban_lens[i].cc[0] == c[0] && iban_lens[i].cc[1] == c[1]) want = iban_lens[i].len;
    if (want != k) return false;
    unsigned rem = 0;
    for (size_t j = 0; j < k; j++) {
        char ch = c[(j + 4) % k];
        if (is_digit(ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

/* ===================================================================== SSN */

/* US SSN: 9 digits as AAA-GG-SSSS (dash, space or dot, used consistently) or bare.
 * Area 000, 666 and 900-999 are never issued; group 00 and serial 0000 neither.
 * Numbers used in advertising (078-05-1120, 219-09-9999, 123-45-6789) and runs of one
 * digit are rejected too. */
bool pii_ssn_valid(const char *s, size_t n)
{
    char d[9];
    if (n == 11) {
        char sep = s[3];
        if ((sep != '-' && sep != ' ' && sep != '.') || s[6] != sep) return false;
        for (size_t i = 0; i < 11; i++)
            if (i != 3 && i != 6 && !is_digit(s[i])) return false;
    } else if (n == 9) {
        for (size_t i = 0; i < 9; i++)
            if (!is_digit(s[i])) return false;
    } else {
        return false;
    }
    digits_of(s, n, d, sizeof d);
    unsigned area = prefix_num(d, 3), group = prefix_num(d + 3, 2), serial = prefix_num(d + 5, 4);
    if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0) return false;
    if (!memcmp(d, "078051120", 9) || !memcmp(d, "219099999", 9) || !memcmp(d, "123456789", 9))
        return false;
    bool same = true;
    for (int i = 1; i < 9; i++)
        same &= d[i] == d[0];
    return !same;
}

/* ===================================================================== IP */

/* Dotted-quad IPv4 with octets 0..255 (a leading zero only as "0"). */
bool pii_ipv4_valid(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t st = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - st < 4)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t len = i - st;
        if (len == 0 || len > 3 || v > 255 || (len > 1 && s[st] == '0')) return false;
        parts++;
        if (parts < 4) {
            if (i >= n || s[i] != '.') return false;
            i++;
        }
    }
    return i == n;
}

/* IPv6 in any RFC 4291 text form; at least two colons and a hex digit so that
 * "::" alone and clock times never pass. */
bool pii_ipv6_valid(const char *s, size_t n)
{
    char tmp[64];
    unsigned char out[16];
    if (n < 3 || n >= sizeof tmp) return false;
    int colons = 0, hex = 0;
    for (size_t i = 0; i < n; i++) {
        colons += s[i] == ':';
        hex += s[i] != ':' && s[i] != '.';
    }
    if (colons < 2 || hex < 2) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return inet_pton(AF_INET6, tmp, out) == 1;
}

/* ===================================================================== email */

/* Generic top-level domains accepted besides every two-letter country code. */
static const char *const gtlds[] = {
    "com",     "org",    "net",    "edu",   "gov",    "mil",     "int",       "info",     "biz",
    "name",    "pro",    "app",    "dev",   "xyz",    "online",  "site",      "tech",     "store",
    "cloud",   "email",  "mobi",   "aero",  "coop",   "jobs",    "travel",    "museum",   "asia",
    "tel",     "blog",   "shop",   "live",  "news",   "agency",  "company",   "digital",  "group",
    "io",      "global", "world",  "space", "media",  "network", "solutions", "services", "center",
    "systems", "works",  "life",   "today", "design", "club",    "team",      "mail",     "academy",
    "bank",    "law",    "health", "page",  "art",    "one",     "top",       "link",
};

/* True when t[0, n) is an internationalised label: UTF-8 letters, marks and digits
 * (at least two characters, one of them not ASCII), or punycode ("xn--" then
 * [a-z0-9-]). */
static bool idn_label(const char *t, size_t n)
{
    if (n > 4 && lower(t[0]) == 'x' && lower(t[1]) == 'n' && t[2] == '-' && t[3] == '-') {
        for (size_t i = 4; i < n; i++)
            if (!is_alpha(t[i]) && !is_digit(t[i]) && t[i] != '-') return false;
        return true;
    }
    size_t chars = 0;
    bool wide = false;
    for (size_t i = 0; i < n;) {
        size_t l = (unsigned char)t[i] < 0x80 ? (is_alpha(t[i]) || is_digit(t[i]))
                                              : pii_utf8_word((const unsigned char *)t + i, n - i);
        if (!l) return false;
        wide |= l > 1;
        chars++;
        i += l;
    }
    return wide && chars >= 2;
}

static bool tld_ok(const char *t, size_t n)
{
    if (idn_label(t, n)) return true;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(t[i])) return false;
    if (n == 2) return true;
    for (size_t i = 0; i < sizeof gtlds / sizeof gtlds[0]; i++) {
        size_t l = strlen(gtlds[i]);
        if (l != n) continue;
        size_t j = 0;
        while (j < n && lower(t[j]) == gtlds[i][j])
            j++;
        if (j == n) return true;
    }
    return false;
}

/* local@label(.label)+ where local is [A-Za-z0-9._%+-] or UTF-8 letters (no
 * leading/trailing dot, no "..") up to 64 bytes, labels are [A-Za-z0-9-] or UTF-8
 * letters, marks and digits, not starting or ending with '-', and the last label is
 * a known TLD, a country code, or an internationalised one (UTF-8 or punycode). */
bool pii_email_valid(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at) return false;
    size_t ll = (size_t)(at - s), dl = n - ll - 1;
    if (ll == 0 || ll > 64 || dl < 4 || dl > 253) return false;
    if (s[0] == '.' || s[ll - 1] == '.') return false;
    for (size_t i = 0; i < ll; i++) {
        char c = s[i];
        if ((unsigned char)c >= 0x80) {
            size_t l = pii_utf8_word((const unsigned char *)s + i, ll - i);
            if (!l) return false;
            i += l - 1;
            continue;
        }
        if (!(is_alpha(c) || is_digit(c) || strchr("._%+-", c))) return false;
        if (c == '.' && i + 1 < ll && s[i + 1] == '.') return false;
    }
    const char *d = at + 1;
    size_t lab = 0, last = 0, nlabels = 0;
    for (size_t i = 0; i <= dl; i++) {
        if (i == dl || d[i] == '.') {
            if (lab == 0 || lab > 63 || d[i - lab] == '-' || d[i - 1] == '-') return false;
            nlabels++;
            last = i - lab;
            lab = 0;
            continue;
        }
        if ((unsigned char)d[i] >= 0x80) {
            size_t l = pii_utf8_word((const unsigned char *)d + i, dl - i);
            if (!l) return false;
            lab += l;
            i += l - 1;
            continue;
        }
        if (!(is_alpha(d[i]) || is_digit(d[i]) || d[i] == '-')) return false;
        lab++;
    }
    return nlabels >= 2 && tld_ok(d + last, dl - last);
}

/* ===================================================================== phone */

/* Returns a base score for a phone candidate from its shape. The candidate is digits
 * with separators (space - . / parentheses), an optional leading '+', an optional
 * trunk "(0)" after the country code and an optional extension ("x123", "ext 123").
 * National shapes we know score high; other grouped 7..15 digit runs score 0.4 (they
 * need a context word to pass); anything else is 0. */
float pii_phone_shape(const char *s, size_t n)
{
    /* Split off an extension. */
    size_t end = n;
    for (size_t i = 0; i + 1 < n; i++) {
        if (lower(s[i]) == 'x' || (lower(s[i]) == 'e' && i + 2 < n && lower(s[i + 1]) == 'x')) {
            size_t j = i;
            while (j < n && is_alpha(s[j]))
                j++;
            while (j < n && (s[j] == '.' || s[j] == ' '))
                j++;
            size_t ds = j;
            while (j < n && is_digit(s[j]))
                j++;
            if (j != n || j - ds == 0 || j - ds > 6) return 0;
            end = i;
            while (end > 0 && s[end - 1] == ' ')
                end--;
            break;
        }
    }
    char d[20];
    int groups[12], ng = 0, cur = 0;
    bool plus = false, paren = false, trunk = false;
    char seps[8];
    int nseps = 0;
    size_t k = 0;
    for (size_t i = 0; i < end; i++) {
        char c = s[i];
        if (is_digit(c)) {
            if (k >= sizeof d) return 0;
            d[k++] = c;
            cur++;
            continue;
        }
        if (cur) {
            if (ng == 12) return 0;
            groups[ng++] = cur;
            cur = 0;
        }
        if (c == '+') {
            if (i != 0) return 0;
            plus = true;
        } else if (c == '(') {
            if (i + 2 < end && s[i + 1] == '0' && s[i + 2] == ')') {
                trunk = true;
                i += 2;
                continue;
            }
            paren = true;
        } else if (c == ')') {
            if (i + 1 < end && s[i + 1] == ' ') i++; /* "(37) 788-063": not a separator */
        } else if (c == ' ' || c == '-' || c == '.' || c == '/') {
            if (nseps < 8) seps[nseps++] = c;
        } else {
            return 0;
        }
    }
    if (cur) {
        if (ng == 12) return 0;
        groups[ng++] = cur;
    }
    if (k < 7 || k > 15) return 0;
    /* One separator style (besides parentheses): "12-34 56.78" is not a phone. */
    bool mixed = false;
    for (int i = 1; i < nseps; i++)
        mixed |= seps[i] != seps[0];
    char sep = nseps ? seps[0] : 0;

    if (plus) {
        if (k < 8) return 0;
        if (d[0] == '0') return 0;
        return (trunk || !mixed || sep == ' ' || sep == '-') ? 0.75f : 0.6f;
    }
    /* US/NANP: [1] NXX NXX XXXX, also 001 prefix. */
    {
        size_t o = 0;
        if (k == 11 && d[0] == '1') o = 1;
        if (k == 13 && d[0] == '0' && d[1] == '0' && d[2] == '1') o = 3;
        if (k - o == 10 && d[o] >= '2' && d[o + 3] >= '2') {
            int g = ng - (int)(o ? 1 : 0);
            if (g == 3 && groups[ng - 3] == 3 && groups[ng - 2] == 3 && groups[ng - 1] == 4 &&
                !mixed)
                return 0.75f;
            if (g == 3 && paren && groups[ng - 1] == 4) return 0.75f;
            if (ng == 1) return 0.4f;
        }
    }
    if (mixed) return 0;
    if (d[0] == '0' && d[1] != '0') {
        /* UK 0 + 10 digits, DE 0 + 6..11 digits, FR 0[1-9] + 4 pairs. */
        if (k == 10 && ng == 5 && sep != '/') {
            bool pairs = true;
            for (int i = 0; i < 5; i++)
                pairs &= groups[i] == 2;
            if (pairs) return 0.7f;
        }
        if (k == 11 && d[1] == '7' && ng >= 2 && ng <= 3) return 0.7f; /* UK mobile */
        if (k == 11 && ng >= 2 && ng <= 4) return 0.6f;
        if (k >= 9 && ng >= 3) return 0.5f;
        if (k >= 7 && k <= 12 && ng >= 2) return 0.45f;
    }
    /* India: 10 digits starting 6-9, as 5-5 or bare. */
    if (k == 10 && d[0] >= '6' && ng == 2 && groups[0] == 5 && groups[1] == 5) return 0.6f;
    if (ng == 2 && groups[0] >= 2 && groups[0] <= 5 && groups[1] >= 3 && groups[1] <= 8)
        return 0.4f;
    if (ng >= 3 && ng <= 6) {
        for (int i = 0; i < ng; i++)
            if (groups[i] < 2 || groups[i] > 5) return 0;
        /* Three or more groups and 8+ digits is a phone layout; dotted thousands
         * ("1.000.000") are not. */
        bool thousands = sep == '.' && groups[0] <= 3;
        for (int i = 1; i < ng; i++)
            thousands &= groups[i] == 3;
        return k >= 8 && !thousands ? 0.5f : 0.4f;
    }
    if (ng == 1 && (k == 10 || k == 11)) return 0.35f;
    return 0;
}
