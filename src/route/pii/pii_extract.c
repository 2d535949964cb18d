/* pii_extract.c — extractors for the structured types: email, phone, card, SSN, IBAN,
 * IP, secrets, and the identifiers announced by a keyword (licence, passport, date
 * of birth). Each is woken by a trigger of the Hyperscan database (pii.c) at the
 * trigger's end offset, finds the whole candidate around it, validates it
 * (pii_valid.c) and scores it with the context words nearby.
 */
#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_internal.h"

static const char *const ctx_phone[] = {
    "phone",      "tel",     "call",  "mobile",    "cell",     "fax",      "desk",
    "office",     "contact", "reach", "text me",   "sms",      "whatsapp", "messages",
    "registered", "dial",    "ring",  "answering", "landline", "home:",    "work:",
    "number:",    "ph:",     "ph.",   "mob",       NULL};
static const char *const ctx_card[] = {"card",  "visa", "mastercard", "amex", "credit",
                                       "debit", "cc",   "payment",    NULL};
static const char *const ctx_ip[] = {"ip",      "address", "server",  "host",   "ping",
                                     "connect", "router",  "gateway", "subnet", NULL};

/* Length of the UTF-8 letter, mark or digit ending at e (the character before e),
 * 0 when the character there is none or is ASCII. */
static size_t word_before(const scan_ctx_t *c, size_t e)
{
    size_t b = e;
    while (b > 0 && e - b < 4 && (at(c, b - 1) & 0xC0) == 0x80)
        b--;
    if (b == 0 || at(c, b - 1) < 0xC2) return 0;
    b--;
    size_t l = pii_utf8_word((const unsigned char *)c->t + b, e - b);
    return l == e - b ? l : 0;
}

/* Email: the trigger ends two letters (or one UTF-8 lead byte) into the TLD after an
 * '@'. Walks left over the local part and right over the domain, both may hold UTF-8
 * letters (internationalised addresses); on a bad TLD, drops trailing labels. */
void pii_extract_email(scan_ctx_t *c, size_t to)
{
    size_t a = to;
    while (a > 0 && at(c, a - 1) != '@')
        a--;
    if (a == 0) return;
    size_t atp = a - 1;
    size_t st = atp;
    for (;;) {
        size_t l;
        if (st > 0 && is_email_local(at(c, st - 1)))
            st--;
        else if (st > 0 && at(c, st - 1) >= 0x80 && (l = word_before(c, st)))
            st -= l;
        else
            break;
    }
    while (st < atp && at(c, st) == '.')
        st++;
    size_t en = atp + 1;
    for (;;) {
        size_t l;
        if (en < c->len && (is_alnum(at(c, en)) || at(c, en) == '.' || at(c, en) == '-'))
            en++;
        else if (en < c->len && at(c, en) >= 0x80 &&
                 (l = pii_utf8_word((const unsigned char *)c->t + en, c->len - en)))
            en += l;
        else
            break;
    }
    c->sc->done[T_EMAIL] = en;
    while (en > atp && (at(c, en - 1) == '.' || at(c, en - 1) == '-'))
        en--;
    while (en > atp + 1) {
        if (pii_email_valid(c->t + st, en - st)) {
            pii_cand_add(c, PII_EMAIL_ADDRESS, 0.95f, st, en);
            return;
        }
        while (en > atp + 1 && at(c, en - 1) != '.')
            en--;
        if (en > atp + 1) en--;
    }
}

static void x_iban(scan_ctx_t *c, size_t st);

static bool is_num_sep(unsigned char ch)
{
    return ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')' || ch == '/';
}

/* True when d..e starts like a calendar date: YYYY-MM-DD or DD.MM.YYYY / MM/DD/YYYY. */
static bool looks_like_date(const scan_ctx_t *c, size_t st, size_t en)
{
    int g[4], ng = 0, cur = 0;
    char sep = 0;
    for (size_t i = st; i <= en && ng < 4; i++) {
        unsigned char ch = i < en ? at(c, i) : ' ';
        if (is_digit(ch)) {
            cur++;
            continue;
        }
        if (cur) g[ng++] = cur;
        cur = 0;
        if (ng == 1 && i < en) sep = (char)ch;
        if (ng >= 1 && i < en && ch != (unsigned char)sep) break;
    }
    if (ng < 3 || (sep != '-' && sep != '/' && sep != '.')) return false;
    return (g[0] == 4 && g[1] <= 2 && g[2] <= 2) || (g[0] <= 2 && g[1] <= 2 && g[2] == 4);
}

/* Digit clusters: digits joined by short separator runs (space - . / parentheses) with
 * an optional leading '+' or '(' and an extension. One cluster is read once and tried
 * as IPv4, SSN, card, date and phone, in that order of specificity. */
static void x_num_at(scan_ctx_t *c, size_t st, size_t en);

/* Classifies the cluster [st, en): short ones whole, longer ones (tables, digit dumps)
 * piece by piece between spaces. */
static void num_cluster(scan_ctx_t *c, size_t st, size_t en)
{
    if (en - st <= 40) {
        x_num_at(c, st, en);
        return;
    }
    for (size_t i = st; i < en;) {
        while (i < en && !is_digit(at(c, i)))
            i++;
        size_t j = i;
        while (j < en && at(c, j) != ' ')
            j++;
        while (j > i && !is_digit(at(c, j - 1)))
            j--;
        if (j > i) x_num_at(c, i, j);
        i = j + 1;
    }
}

/* True when [st, en) is a card number wrapped across lines: 12..19 digits that
 * validate, nothing glued on either side. */
static bool wrapped_card(const scan_ctx_t *c, size_t st, size_t en)
{
    int digits = 0;
    for (size_t i = st; i < en; i++)
        digits += is_digit(at(c, i));
    return digits >= 12 && digits <= 19 && (st == 0 || !is_alnum(at(c, st - 1))) &&
           !is_alnum(at(c, en)) && pii_card_valid(c->t + st, en - st);
}

/* Finds the whole cluster around a digit-pair trigger: digit runs joined by short
 * separator runs, which may hold one line break. A cluster over a line break is one
 * candidate only as a card number wrapped across lines; otherwise each line's part
 * is classified on its own (two phone numbers on two lines stay two). */
void pii_extract_num(scan_ctx_t *c, size_t to)
{
    size_t st = to - 1, en = to, lo = c->sc->done[T_NUM];
    bool nl = false;
    /* Left: digit runs joined by 1..3 separator bytes. */
    for (;;) {
        while (st > lo && is_digit(at(c, st - 1)))
            st--;
        size_t k = st;
        bool brk = false;
        while (k > lo && st - k < 3 &&
               (is_num_sep(at(c, k - 1)) || at(c, k - 1) == '\n' || at(c, k - 1) == '\r')) {
            brk |= at(c, k - 1) == '\n';
            k--;
        }
        if (k < st && k > lo && is_digit(at(c, k - 1))) {
            st = k;
            nl |= brk;
            continue;
        }
        break;
    }
    for (;;) {
        while (en < c->len && is_digit(at(c, en)))
            en++;
        size_t k = en;
        bool brk = false;
        while (k < c->len && k - en < 3 &&
               (is_num_sep(at(c, k)) || at(c, k) == '\n' || at(c, k) == '\r')) {
            brk |= at(c, k) == '\n';
            k++;
        }
        if (k > en && is_digit(at(c, k))) {
            en = k;
            nl |= brk;
            continue;
        }
        break;
    }
    c->sc->done[T_NUM] = en;
    if (!nl) {
        num_cluster(c, st, en);
        return;
    }
    if (wrapped_card(c, st, en)) {
        pii_cand_add(c, PII_CREDIT_CARD, pii_ctx_has(c, st, en, 48, 0, ctx_card) ? 1.0f : 0.9f, st,
                     en);
        return;
    }
    for (size_t i = st; i < en;) {
        const char *e = memchr(c->t + i, '\n', en - i);
        size_t j = e ? (size_t)(e - c->t) : en;
        size_t a = i, b = j;
        while (a < b && !is_digit(at(c, a)))
            a++;
        while (b > a && !is_digit(at(c, b - 1)))
            b--;
        if (b > a) num_cluster(c, a, b);
        i = j + 1;
    }
}

/* Classifies one digit cluster [st, en) as IPv4, SSN, card, date or phone. */
static void x_num_at(scan_ctx_t *c, size_t st, size_t en)
{
    if (st > 0 && (at(c, st - 1) == '+' || at(c, st - 1) == '(')) st--;
    if (st > 0 && at(c, st) == '(' && at(c, st - 1) == '+') st--;
    /* Extension: x123, ext. 123 */
    size_t xe = en;
    {
        size_t k = en;
        if (at(c, k) == ' ') k++;
        if ((at(c, k) | 0x20) == 'x')
            k++;
        else if ((at(c, k) | 0x20) == 'e' && (at(c, k + 1) | 0x20) == 'x' &&
                 (at(c, k + 2) | 0x20) == 't') {
            k += 3;
            if (at(c, k) == '.') k++;
            if (at(c, k) == ' ') k++;
        } else
            k = en;
        if (k > en) {
            size_t d = k;
            while (d < c->len && is_digit(at(c, d)) && d - k < 7)
                d++;
            if (d > k && d - k <= 6 && !is_alnum(at(c, d))) xe = d;
        }
    }
    if (xe == en && en - st <= 6 && is_digit(at(c, st))) {
        bool one = true;
        for (size_t i = st; i < en; i++)
            one &= is_digit(at(c, i));
        if (one) pii_address_number(c, st, en);
    }
    /* Two letters glued on the left at a word start: maybe an IBAN ("GB29 NWBK ..."). */
    if (st >= 2 && is_alpha(at(c, st - 1)) && is_alpha(at(c, st - 2)) &&
        (st == 2 || !is_alnum(at(c, st - 3))))
        x_iban(c, st - 2);
    /* Part of a longer token (letters glued on): not ours. */
    if (st > 0 && (is_alnum(at(c, st - 1)) || at(c, st - 1) == '_')) return;
    if (is_alpha(at(c, xe)) || at(c, xe) == '_') return;
    if (st > 0 && at(c, st - 1) == '.' && st > 1 && is_digit(at(c, st - 2))) return;

    const char *s = c->t + st;
    size_t n = en - st;
    int groups = 0, dots = 0, digits = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_digit((unsigned char)s[i])) {
            digits++;
            if (i == 0 || !is_digit((unsigned char)s[i - 1])) groups++;
        } else if (s[i] == '.')
            dots++;
        else
            other++;
    }
    if (dots >= 3) {
        /* Dotted quads inside the cluster ("256.1.1.1 10.0.0.1"): each run of digits
         * joined by single dots is one IPv4 candidate. */
        bool any = false;
        for (size_t i = 0; i < n;) {
            if (!is_digit((unsigned char)s[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && (is_digit((unsigned char)s[j]) ||
                             (s[j] == '.' && j + 1 < n && is_digit((unsigned char)s[j + 1]))))
                j++;
            if (pii_ipv4_valid(s + i, j - i) && (st + j != en || at(c, en) != '.')) {
                pii_cand_add(c, PII_IP_ADDRESS,
                             pii_ctx_has(c, st + i, st + j, 40, 0, ctx_ip) ? 0.95f : 0.6f, st + i,
                             st + j);
                any = true;
            }
            i = j;
        }
        bool card = xe == en && digits >= 12 && digits <= 19 && pii_card_valid(s, n);
        if (any || (groups == 4 && dots == 3 && other == 0 && !card)) return;
    }
    if (xe == en && (n == 11 || n == 9) && pii_ssn_valid(s, n)) {
        bool ctx =
            pii_ctx_has(c, st, en, 48, 0, (const char *const[]){"ssn", "social", "security", NULL});
        if (n == 11)
            pii_cand_add(c, PII_US_SSN, ctx ? 1.0f : 0.85f, st, en);
        else if (ctx)
            pii_cand_add(c, PII_US_SSN, 0.75f, st, en);
        if (n == 11) return;
    }
    if (xe == en && digits >= 12 && digits <= 19 && pii_card_valid(s, n)) {
        pii_cand_add(c, PII_CREDIT_CARD, pii_ctx_has(c, st, en, 48, 0, ctx_card) ? 1.0f : 0.9f, st,
                     en);
        return;
    }
    if (looks_like_date(c, st, en)) return; /* dates of birth come from x_keyword */
    float ps = pii_phone_shape(s, xe - st);
    if (ps > 0) {
        if (pii_ctx_has(c, st, xe, 48, 12, ctx_phone)) ps += 0.35f;
        pii_cand_add(c, PII_PHONE_NUMBER, ps, st, xe);
    }
}

/* IBAN starting at st (two letters, then the check digits): reads up to 34
 * characters (plus single spaces between groups) and tries the longest prefix that
 * validates, ending at a group boundary. */
static void x_iban(scan_ctx_t *c, size_t st)
{
    if (st < c->sc->done[T_IBAN] || (st > 0 && is_alnum(at(c, st - 1)))) return;
    size_t en = st, chars = 0;
    size_t ends[48];
    int ne = 0;
    while (en < c->len && chars < 34) {
        unsigned char ch = at(c, en);
        if (is_alnum(ch)) {
            en++;
            chars++;
            if (!is_alnum(at(c, en)) && ne < 48) ends[ne++] = en;
        } else if (ch == ' ' && is_alnum(at(c, en + 1)) && chars >= 4) {
            en++;
        } else
            break;
    }
    for (int i = ne; i-- > 0;) {
        if (pii_iban_valid(c->t + st, ends[i] - st)) {
            pii_cand_add(c, PII_IBAN_CODE, 0.95f, st, ends[i]);
            c->sc->done[T_IBAN] = ends[i];
            return;
        }
    }
}

/* IPv6: extends the trigger over hex digits, colons and dots (embedded IPv4). */
static void x_ipv6(scan_ctx_t *c, size_t to)
{
    if (to <= c->sc->done[T_IPV6]) return;
    size_t st = to, en = to;
    while (st > 0 && (is_hex(at(c, st - 1)) || at(c, st - 1) == ':'))
        st--;
    while (en < c->len && (is_hex(at(c, en)) || at(c, en) == ':' || at(c, en) == '.'))
        en++;
    c->sc->done[T_IPV6] = en;
    while (en > st && at(c, en - 1) == '.')
        en--;
    if ((st > 0 && (is_alnum(at(c, st - 1)) || at(c, st - 1) == '_')) || is_alpha(at(c, en)))
        return;
    if (pii_ipv6_valid(c->t + st, en - st))
        pii_cand_add(c, PII_IP_ADDRESS, pii_ctx_has(c, st, en, 40, 0, ctx_ip) ? 0.95f : 0.7f, st,
                     en);
}

/* True when the IPv6 trigger H{1,4}::?H{1,4}: (H a hex digit) has a match ending
 * after the colon at p[q]: 1-4 hex digits end at q - 1 (no more, or the match would
 * need a colon among them), a colon precedes them, and a hex digit or a second colon
 * and a hex digit precede that. */
static bool v6_end_at(const unsigned char *p, size_t q)
{
    size_t h = 0;
    while (h < 5 && h < q && is_hex(p[q - 1 - h]))
        h++;
    if (h == 0 || h == 5 || h == q) return false;
    size_t r = q - 1 - h;
    if (p[r] != ':') return false;
    return (r >= 1 && is_hex(p[r - 1])) || (r >= 2 && p[r - 1] == ':' && is_hex(p[r - 2]));
}

/* One pass over p[0, n) before the triggers: sets *rare when it holds a digit or an
 * '@', and returns the offset of the first colon with another colon two to five bytes
 * before it, or n when there is none. Every IPv6 trigger match ends at such a colon;
 * prose has a colon every hundred bytes or so but almost never two that close, and
 * mostly no digit or '@', so 64 bytes at a time one mask test passes over them. */
bool pii_text_has_nd(const unsigned char *p, size_t n)
{
    /* Bytes that may lead a non-ASCII decimal digit: 0xD9..0xE1 (Arabic-Indic to
     * Khmer and Mongolian), 0xEA, 0xEF (fullwidth) and 0xF0 (the supplementary
     * planes). Prose in English holds none of them (curly quotes and dashes lead
     * with 0xE2, Latin accents with 0xC3), so one vector test per 16 bytes passes. */
    const __m128i d9 = _mm_set1_epi8((char)0xD9), eight = _mm_set1_epi8(8);
    const __m128i ea = _mm_set1_epi8((char)0xEA), ef = _mm_set1_epi8((char)0xEF);
    const __m128i f0 = _mm_set1_epi8((char)0xF0);
    size_t b = 0;
    for (; b + 16 <= n; b += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + b)), x = _mm_sub_epi8(v, d9);
        __m128i m =
            _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, eight), x),
                         _mm_or_si128(_mm_cmpeq_epi8(v, ea),
                                      _mm_or_si128(_mm_cmpeq_epi8(v, ef), _mm_cmpeq_epi8(v, f0))));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        while (bits) {
            size_t k = b + (size_t)__builtin_ctz(bits);
            bits &= bits - 1;
            int v10;
            if (pii_utf8_digit(p + k, n - k, &v10)) return true;
        }
    }
    for (; b < n; b++) {
        int v10;
        if (p[b] >= 0xD9 && pii_utf8_digit(p + b, n - b, &v10)) return true;
    }
    return false;
}

size_t pii_text_survey(const unsigned char *p, size_t n, bool *rare)
{
    const __m128i colon = _mm_set1_epi8(':'), at_ = _mm_set1_epi8('@');
    const __m128i to_min = _mm_set1_epi8((char)(0x80 - '0'));
    const __m128i ten = _mm_set1_epi8((char)(-128 + 10)); /* '0'..'9' become -128..-119 */
    uint64_t prev = 0;
    size_t pair = n, b = 0;
    bool dig = false;
    unsigned char tail[64]; /* the last, partial block, padded with spaces */
    for (; b < n; b += 64) {
        const unsigned char *blk = p + b;
        if (b + 64 > n) {
            memset(tail, ' ', sizeof tail);
            memcpy(tail, p + b, n - b);
            blk = tail;
        }
        __m128i cl[4], dg = _mm_setzero_si128();
        for (int q = 0; q < 4; q++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(blk + 16 * q));
            cl[q] = _mm_cmpeq_epi8(v, colon);
            dg = _mm_or_si128(dg, _mm_or_si128(_mm_cmpeq_epi8(v, at_),
                                               _mm_cmplt_epi8(_mm_add_epi8(v, to_min), ten)));
        }
        __m128i any = _mm_or_si128(_mm_or_si128(cl[0], cl[1]), _mm_or_si128(cl[2], cl[3]));
        if (!_mm_movemask_epi8(_mm_or_si128(any, dg))) {
            prev = 0;
            continue;
        }
        dig |= _mm_movemask_epi8(dg) != 0;
        if (pair == n) {
            uint64_t m = (uint64_t)(unsigned)_mm_movemask_epi8(cl[0]) |
                         (uint64_t)(unsigned)_mm_movemask_epi8(cl[1]) << 16 |
                         (uint64_t)(unsigned)_mm_movemask_epi8(cl[2]) << 32 |
                         (uint64_t)(unsigned)_mm_movemask_epi8(cl[3]) << 48;
            /* x: colons of the previous 64 bytes and these; g bit k: a colon among x
             * bits k - 3 .. k; f: colons here with one two to five bytes before. */
            unsigned __int128 x = (unsigned __int128)m << 64 | prev, g = x | x << 1;
            g |= g << 2;
            uint64_t f = m & (uint64_t)(g >> 62);
            if (f) pair = b + (size_t)__builtin_ctzll(f);
            prev = m;
        }
        if (dig && pair < n) {
            *rare = true;
            return pair;
        }
    }
    *rare = dig;
    return pair;
}

/* Calls x_ipv6 for each IPv6 trigger match ending before `to`, in order, from where
 * the last call stopped: Hyperscan delivers the other triggers in order of their end,
 * and on_match calls this before each of them, so the extractors see the same order
 * as when the trigger was in the database. Starts at the first colon pair found by
 * text_survey (none: nothing to do); from there colons are found with memchr, and
 * only those with the previous colon two to five bytes before are looked at. */
void pii_extract_v6(scan_ctx_t *c, size_t to)
{
    const unsigned char *p = (const unsigned char *)c->t;
    if (to == 0) return;
    size_t qe = to - 1 < c->v6_n ? to - 1 : c->v6_n; /* colons at q < qe */
    while (c->v6_q < qe) {
        const unsigned char *r = memchr(p + c->v6_q, ':', qe - c->v6_q);
        if (!r) {
            c->v6_q = qe;
            break;
        }
        size_t q = (size_t)(r - p);
        if (q - c->v6_prev - 2 <= 3 && v6_end_at(p, q)) x_ipv6(c, q + 1);
        c->v6_prev = q;
        c->v6_q = q + 1;
    }
}

/* Secrets with a known prefix: the trigger is the prefix; checks the body that must
 * follow it and extends variable-length tokens to their end. */
void pii_extract_secret(scan_ctx_t *c, int id, size_t to)
{
    static const unsigned char plen[T_COUNT] = {
        [T_AWS] = 4,   [T_GCP] = 4,      [T_GITHUB] = 4, [T_GITHUB_PAT] = 11,
        [T_SLACK] = 5, [T_PRIVKEY] = 11, [T_BEARER] = 7};
    size_t st = to - plen[id], en = to;
    if (st < c->sc->done[T_AWS]) return;
    size_t body = to;
    if (id == T_PRIVKEY) {
        size_t lim = to + 40 < c->len ? to + 40 : c->len;
        const char *pk = memmem(c->t + to, lim - to, "PRIVATE KEY-----", 16);
        if (!pk) return;
        const char *end = memmem(c->t + to, c->len - to, "-----END", 8);
        if (end) {
            size_t k = (size_t)(end - c->t) + 8;
            const char *close = memmem(c->t + k, c->len - k, "-----", 5);
            en = close && close - (c->t + k) < 64 ? (size_t)(close - c->t) + 5 : k;
        } else {
            en = c->len; /* a truncated key is still a key */
        }
    } else if (id == T_BEARER) {
        while (at(c, body) == ' ')
            body++;
        st = body;
        en = body;
        while (en < c->len && is_token_char(at(c, en)))
            en++;
        while (en < c->len && at(c, en) == '=')
            en++;
        if (en - body < 16) return;
    } else {
        if (st > 0 && is_alnum(at(c, st - 1))) return;
        while (en < c->len && (is_alnum(at(c, en)) || at(c, en) == '_' || at(c, en) == '-'))
            en++;
        size_t n = en - body;
        bool ok;
        switch (id) {
        case T_AWS:
            ok = n == 16;
            for (size_t i = body; ok && i < en; i++)
                ok = is_upper(at(c, i)) || is_digit(at(c, i));
            break;
        case T_GCP:
            ok = n == 35;
            break;
        case T_GITHUB:
            ok = n == 36;
            break;
        case T_GITHUB_PAT:
            ok = n >= 22;
            break;
        default:
            ok = n >= 10;
            break; /* Slack */
        }
        if (!ok) return;
    }
    c->sc->done[T_AWS] = en;
    pii_cand_add(c, PII_SECRET, 0.95f, st, en);
}

/* Month names for written dates of birth. */
int pii_month_len(const scan_ctx_t *c, size_t i)
{
    static const char *const m[] = {
        "january", "february", "march",    "april", "may", "june", "july", "august", "september",
        "october", "november", "december", "jan",   "feb", "mar",  "apr",  "jun",    "jul",
        "aug",     "sep",      "sept",     "oct",   "nov", "dec",  NULL};
    if (!is_alpha(at(c, i))) return 0;
    for (int k = 0; m[k]; k++) {
        if (fold(at(c, i)) != (unsigned char)m[k][0]) continue;
        size_t l = strlen(m[k]), j = 0;
        while (j < l && (at(c, i + j) | 0x20) == (unsigned char)m[k][j])
            j++;
        if (j == l && !is_alpha(at(c, i + l))) return (int)l;
    }
    return 0;
}

/* Finds a date starting at i (numeric with - / . or written with a month name);
 * returns its end or 0. */
static size_t date_at(const scan_ctx_t *c, size_t i)
{
    size_t k = i;
    int g[3], ng = 0;
    char sep = 0;
    while (ng < 3) {
        size_t d = k;
        while (is_digit(at(c, k)) && k - d < 4)
            k++;
        if (k == d) break;
        g[ng++] = (int)(k - d);
        if (ng == 3) break;
        unsigned char ch = at(c, k);
        if (ng == 1) sep = (char)ch;
        if ((ch != '-' && ch != '/' && ch != '.') || ch != (unsigned char)sep) break;
        k++;
    }
    if (ng == 3 && !is_digit(at(c, k)) &&
        ((g[0] == 4 && g[1] <= 2 && g[2] <= 2) ||
         (g[0] <= 2 && g[1] <= 2 && (g[2] == 4 || g[2] == 2))))
        return k;
    /* "March 5, 1980" / "5 March 1980" / "5th of March 1980" */
    k = i;
    size_t d = k;
    while (is_digit(at(c, k)) && k - d < 2)
        k++;
    if (k > d) {
        if (is_alpha(at(c, k))) k += 2; /* st, nd, rd, th */
        if (at(c, k) == ' ') k++;
        if ((at(c, k) | 0x20) == 'o' && (at(c, k + 1) | 0x20) == 'f' && at(c, k + 2) == ' ') k += 3;
    }
    int ml = pii_month_len(c, k);
    if (!ml) return 0;
    k += (size_t)ml;
    if (at(c, k) == '.') k++;
    if (at(c, k) == ' ') k++;
    if (d == i && k > i) {
        size_t e = k;
        while (is_digit(at(c, e)) && e - k < 2)
            e++;
        if (e == k) return 0;
        if (is_alpha(at(c, e))) e += 2;
        k = e;
        if (at(c, k) == ',') k++;
        if (at(c, k) == ' ') k++;
    }
    size_t y = k;
    while (is_digit(at(c, k)) && k - y < 4)
        k++;
    return k - y == 4 && !is_digit(at(c, k)) ? k : 0;
}

/* Context keywords for identifiers that have no checksum: driver licence, passport,
 * date of birth, bare SSN. Looks for the first plausible value within a short window
 * after the keyword. */
void pii_extract_keyword(scan_ctx_t *c, int id, size_t to)
{
    size_t lim = to + 48 < c->len ? to + 48 : c->len;
    for (size_t i = to; i < lim; i++) {
        unsigned char ch = at(c, i);
        if (i > 0 && is_alnum(at(c, i - 1))) continue;
        if (!is_alnum(ch)) continue;
        if (id == T_KEY_BIRTH) {
            size_t e = date_at(c, i);
            if (e) {
                pii_cand_add(c, PII_DATE_OF_BIRTH, 0.85f, i, e);
                return;
            }
            continue;
        }
        /* ID token: [A-Z0-9-] run with >= 6 digits and at most 2 letters. */
        size_t e = i;
        int digits = 0, letters = 0;
        while (e < c->len && (is_alnum(at(c, e)) || (at(c, e) == '-' && is_alnum(at(c, e + 1))))) {
            digits += is_digit(at(c, e));
            letters += is_alpha(at(c, e));
            e++;
        }
        if (id == T_KEY_SSN) {
            if (e - i == 9 && digits == 9 && pii_ssn_valid(c->t + i, 9))
                pii_cand_add(c, PII_US_SSN, 0.9f, i, e);
            if (digits) return;
            i = e;
            continue;
        }
        if (digits >= 6 && letters <= 2 && e - i <= 16 && !(letters && !is_alpha(ch))) {
            if (id == T_KEY_LICENSE)
                pii_cand_add(c, PII_US_DRIVER_LICENSE, 0.8f, i, e);
            else if (digits <= 9 && e - i <= 9)
                pii_cand_add(c, PII_US_PASSPORT, 0.8f, i, e);
            return;
        }
        i = e;
    }
}
