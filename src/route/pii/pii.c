/* pii.c — the PII scanner: one Hyperscan database of triggers, C extractors behind it.
 *
 * Design. Hyperscan runs once over the text with a small set of trigger patterns
 * (an '@' followed by a domain, two digits, an IBAN prefix, a secret prefix, a context
 * keyword, a street suffix). Triggers report only their end offset; each one wakes a C
 * extractor that finds the whole candidate around it, validates it (pii_valid.c) and
 * scores it Presidio-style: a base score from the shape, a boost from context words in
 * a window, then a per-type threshold. Each extractor records how far it has read so a
 * burst of triggers inside one candidate costs one extraction. Person names are found
 * by a separate pass over capitalised tokens with one hash probe each. Candidates that
 * overlap are merged (the higher score wins, then the longer span).
 *
 * Text with look-alike characters (fullwidth digits, Arabic-Indic digits, zero-width
 * characters, Unicode dashes between digits) is also normalised into a copy with an
 * offset map and scanned again, so "４６０-８９-９８４７" is found at its true offsets.
 */
#include <emmintrin.h>
#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_internal.h"

/* ================================================================== triggers */

enum {
    T_EMAIL = 1,
    T_NUM,
    T_IBAN,
    T_IPV6,
    T_AWS,
    T_GCP,
    T_GITHUB,
    T_GITHUB_PAT,
    T_SLACK,
    T_PRIVKEY,
    T_BEARER,
    T_KEY_LICENSE,
    T_KEY_PASSPORT,
    T_KEY_BIRTH,
    T_KEY_SSN,
    T_KEY_NAME,
    T_LOOKALIKE,
    T_COUNT
};

/* Triggers are short literals or digit pairs: Hyperscan runs literal-led patterns at
 * GB/s, while long character-class patterns slow the whole database to ~150 MB/s. The
 * C extractors do the rest. The IPv6 trigger (H{1,4}::?H{1,4}: with H a hex digit) is
 * found in C (v6_scan): in the database it slowed every scan of prose by 6-11%.
 * `rare` marks the triggers that find nothing in a text without a digit or an '@' (a
 * digit pair; keywords whose value must hold digits; an email's '@'): a text with
 * neither, most prose, is scanned with a second database that leaves them out (10-13%
 * faster on prose, the keywords with \b and two-letter literals, the email pattern's
 * classes being the costly part). */
static const struct {
    int id;
    unsigned flags;
    bool rare;
    const char *re;
} triggers[] = {
    {T_EMAIL, 0, true, "@[A-Za-z0-9\\-]+\\.[A-Za-z]{2}"},
    {T_NUM, 0, true, "\\d[\\-./ ]?\\d"},
    {T_AWS, 0, false, "AKIA|ASIA|AGPA|AIDA|AROA"},
    {T_GCP, 0, false, "AIza"},
    {T_GITHUB, 0, false, "gh[pousr]_"},
    {T_GITHUB_PAT, 0, false, "github_pat_"},
    {T_SLACK, 0, false, "xox[abposr]-"},
    {T_PRIVKEY, 0, false, "-----BEGIN "},
    {T_BEARER, 0, false, "[Bb]earer "},
    {T_KEY_LICENSE, HS_FLAG_CASELESS, true, "licen[cs]e|\\bDL\\b|driving permit"},
    {T_KEY_PASSPORT, HS_FLAG_CASELESS, true, "passport"},
    {T_KEY_BIRTH, HS_FLAG_CASELESS, true, "\\bborn\\b|birth|\\bdob\\b|d\\.o\\.b"},
    {T_KEY_SSN, HS_FLAG_CASELESS, true, "\\bssn\\b|social security"},
    {T_KEY_NAME, HS_FLAG_CASELESS, false,
     "name is |name's |name\\? |\\bname: |call(s|ed)? me |\\bnamed "},
    /* the digit alternative cannot match without digits; the others can */
    {T_LOOKALIKE, 0, false,
     "\\xEF\\xBC[\\x90-\\x99\\xA0-\\xBF]|\\xEF\\xBD[\\x80-\\x9A]|\\xD9[\\xA0-\\xA9]|"
     "\\xDB[\\xB0-\\xB9]|\\xE2\\x80[\\x8B-\\x8D]|\\xE2\\x81\\xA0|\\xEF\\xBB\\xBF|"
     "\\d(?:\\xE2\\x80[\\x90-\\x95]|\\xE2\\x88\\x92|\\xC2\\xA0)\\d"},
};
#define N_TRIGGERS (sizeof triggers / sizeof triggers[0])

/* ================================================================== types */

struct pii_scanner {
    hs_database_t *db;         /* every trigger */
    hs_database_t *db_prose;   /* the triggers that fire without a digit or an '@' */
    pii_names_t names;         /* empty (slots NULL) when no names_dir */
    float thr[PII_TYPE_COUNT]; /* per-type threshold */
};

#define PII_MAX_CANDS (1u << 20) /* cap on candidates per scan */
#define WORD_BITS     13         /* short-word cache entries (log2) */

struct pii_scratch {
    hs_scratch_t *hs;
    pii_span_t *cand; /* candidates before merging */
    size_t n, cap;
    size_t done[T_COUNT]; /* per trigger: text read up to here */
    bool lookalike;       /* saw look-alike characters: normalise and rescan */
    char *norm;           /* normalised copy (slow path) */
    size_t *map;          /* norm offset -> text offset, (norm_len + 1) */
    size_t norm_cap;
    uint64_t hot[1u << PII_HOT_BITS]; /* gazetteer lookup cache */
    uint64_t word[1u << WORD_BITS];   /* short-word cache: folded word | flags << 56 */
};

typedef struct scan_ctx {
    const pii_scanner_t *s;
    pii_scratch_t *sc;
    const char *t;
    size_t len;
    struct name_memo *memo;     /* runs kept and left, lone given names held: see lone_add */
    size_t first;               /* sc->n when this pass began: candidates past it identify */
    size_t v6_q, v6_prev, v6_n; /* IPv6 trigger: colons before v6_q done, the last of
                                   them (or far back), block length */
} scan_ctx_t;

static const char *const type_names[PII_TYPE_COUNT] = {
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",    "US_SSN",        "IBAN_CODE",
    "IP_ADDRESS",    "PERSON",       "STREET_ADDRESS", "DATE_OF_BIRTH", "US_DRIVER_LICENSE",
    "US_PASSPORT",   "SECRET",       "UNKNOWN",
};

const char *pii_type_name(pii_type_t t)
{
    return (unsigned)t < PII_TYPE_COUNT ? type_names[t] : "UNKNOWN";
}

int pii_type_parse(const char *name, pii_type_t *out)
{
    for (int i = 0; i < PII_TYPE_COUNT; i++)
        if (!strcmp(name, type_names[i])) {
            *out = (pii_type_t)i;
            return 0;
        }
    return SY_EINVAL;
}

/* ================================================================== char classes */

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static inline bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
static inline bool is_alnum(unsigned char c)
{
    return is_digit(c) || is_alpha(c);
}
static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
static inline bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}
static inline bool is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}
static inline unsigned char fold(unsigned char c)
{
    return is_upper(c) ? (unsigned char)(c + 32) : c;
}
static inline bool is_email_local(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static inline bool is_token_char(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}
static inline unsigned char at(const scan_ctx_t *c, size_t i)
{
    return i < c->len ? (unsigned char)c->t[i] : 0;
}

/* Gazetteer flags of the word s[0..n) inside the text. Words of up to 7 bytes with 8
 * readable bytes from s (nearly every capitalised word in prose) are looked up in a
 * direct-mapped cache keyed by the word itself, ASCII case folded: one load, one
 * multiply, one compare on a hit. Others go through the hashed lookup. */
static inline uint8_t name_flags(const scan_ctx_t *c, const char *s, size_t n)
{
    if (n - 1 < 7 && s + 8 <= c->t + c->len) {
        uint64_t w;
        memcpy(&w, s, 8);
        w = (w | 0x2020202020202020ull) & (~0ull >> (64 - 8 * n));
        size_t h = (size_t)((w * 0x9E3779B97F4A7C15ull) >> (64 - WORD_BITS));
        uint64_t e = c->sc->word[h];
        if ((e & 0x00FFFFFFFFFFFFFFull) == w) return (uint8_t)(e >> 56);
        uint8_t f = pii_names_lookup(&c->s->names, s, n);
        c->sc->word[h] = w | (uint64_t)f << 56;
        return f;
    }
    return pii_names_lookup_hot(&c->s->names, c->sc->hot, s, n);
}

/* Context flags of the word s[0..n) inside the text (pii_ctx_lookup with one 8-byte
 * load for the key where the text allows it), 0 for words that do not pass filter
 * (g->ctx_filter or one of the narrower ones: then only the flags it was built from
 * can be trusted). */
static inline uint8_t ctx_flags_in(const scan_ctx_t *c, const uint64_t *filter, const char *s,
                                   size_t n)
{
    const pii_names_t *g = &c->s->names;
    if (n - 1 >= 255) return 0;
    uint64_t k;
    if (s + 8 <= c->t + c->len) {
        memcpy(&k, s, 8);
        k = (k | 0x2020202020202020ull) & (n >= 8 ? ~0ull : ~0ull >> (64 - 8 * n));
    } else {
        k = pii_ctx_key(s, n);
    }
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    if (!(filter[h >> 58] >> ((h >> 52) & 63) & 1)) return 0;
    size_t i = (size_t)(h >> (64 - PII_CTX_BITS));
    for (;;) {
        const pii_ctx_slot_t *e = &g->ctx[i];
        if (!e->len) return 0;
        if (e->key == k && e->len == n) return e->flags;
        i = (i + 1) & (PII_CTX_SLOTS - 1);
    }
}

static inline uint8_t ctx_flags(const scan_ctx_t *c, const char *s, size_t n)
{
    return ctx_flags_in(c, c->s->names.ctx_filter, s, n);
}

/* ================================================================== candidates */

/* Records a candidate if it passes its type's threshold. Candidates past the cap are
 * dropped (the cap is far above anything a request body can hold). */
static void cand_add(scan_ctx_t *c, pii_type_t type, float score, size_t st, size_t en)
{
    if (score > 1.0f) score = 1.0f;
    if (score < c->s->thr[type] || en <= st) return;
    pii_scratch_t *sc = c->sc;
    if (sc->n == sc->cap) {
        if (sc->cap >= PII_MAX_CANDS) return;
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        sc->cand = mem_realloc(sc->cand, sc->cap * sizeof *sc->cand);
    }
    sc->cand[sc->n++] = (pii_span_t){type, score, st, en};
}

/* True when one of words (lowercase, NULL-terminated list) starts at a word boundary
 * within `before` bytes before st or `after` bytes after en. ASCII case is folded. */
static bool ctx_has(const scan_ctx_t *c, size_t st, size_t en, size_t before, size_t after,
                    const char *const *words)
{
    size_t lo = st > before ? st - before : 0;
    size_t hi = en + after < c->len ? en + after : c->len;
    for (size_t i = lo; i < hi; i++) {
        if (i == st) i = en;
        if (i >= hi) break;
        if (i > 0 && is_alpha(at(c, i - 1))) continue;
        unsigned char ch = at(c, i) | 0x20;
        for (const char *const *w = words; *w; w++) {
            if ((unsigned char)(*w)[0] != ch) continue;
            size_t k = 1;
            while ((*w)[k] && i + k < c->len && (at(c, i + k) | 0x20) == (unsigned char)(*w)[k])
                k++;
            /* whole words only ("to" must not match "top"), unless the entry ends in
             * punctuation ("cc:") */
            if (!(*w)[k] && (!is_alpha((unsigned char)(*w)[k - 1]) || !is_alpha(at(c, i + k))))
                return true;
        }
    }
    return false;
}

static const char *const ctx_phone[] = {
    "phone",      "tel",     "call",  "mobile",    "cell",     "fax",      "desk",
    "office",     "contact", "reach", "text me",   "sms",      "whatsapp", "messages",
    "registered", "dial",    "ring",  "answering", "landline", "home:",    "work:",
    "number:",    "ph:",     "ph.",   "mob",       NULL};
static const char *const ctx_card[] = {"card",  "visa", "mastercard", "amex", "credit",
                                       "debit", "cc",   "payment",    NULL};
static const char *const ctx_ip[] = {"ip",      "address", "server",  "host",   "ping",
                                     "connect", "router",  "gateway", "subnet", NULL};
static const char *const ctx_addr[] = {"address", "live", "lives",  "located", "ship",
                                       "deliver", "meet", "corner", "at",      NULL};
/* ================================================================== extractors */

/* Email: the trigger ends two letters into the TLD after an '@'. Walks left over the
 * local part and right over the domain; on a bad TLD, drops trailing labels. */
static void x_email(scan_ctx_t *c, size_t to)
{
    size_t a = to;
    while (a > 0 && at(c, a - 1) != '@')
        a--;
    if (a == 0) return;
    size_t atp = a - 1;
    size_t st = atp;
    while (st > 0 && is_email_local(at(c, st - 1)))
        st--;
    while (st < atp && at(c, st) == '.')
        st++;
    size_t en = atp + 1;
    while (en < c->len && (is_alnum(at(c, en)) || at(c, en) == '.' || at(c, en) == '-'))
        en++;
    c->sc->done[T_EMAIL] = en;
    while (en > atp && (at(c, en - 1) == '.' || at(c, en - 1) == '-'))
        en--;
    while (en > atp + 1) {
        if (pii_email_valid(c->t + st, en - st)) {
            cand_add(c, PII_EMAIL_ADDRESS, 0.95f, st, en);
            return;
        }
        while (en > atp + 1 && at(c, en - 1) != '.')
            en--;
        if (en > atp + 1) en--;
    }
}

static void x_house_number(scan_ctx_t *c, size_t st, size_t en);
static void x_iban(scan_ctx_t *c, size_t st);
static int month_len(const scan_ctx_t *c, size_t i);

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

/* Finds the whole cluster around a digit-pair trigger. Clusters longer than a phone
 * number (tables, digit dumps) are classified piece by piece between spaces. */
static void x_num(scan_ctx_t *c, size_t to)
{
    size_t st = to - 1, en = to, lo = c->sc->done[T_NUM];
    /* Left: digit runs joined by 1..3 separator bytes. */
    for (;;) {
        while (st > lo && is_digit(at(c, st - 1)))
            st--;
        size_t k = st;
        while (k > lo && st - k < 3 && is_num_sep(at(c, k - 1)))
            k--;
        if (k < st && k > lo && is_digit(at(c, k - 1))) {
            st = k;
            continue;
        }
        break;
    }
    for (;;) {
        while (en < c->len && is_digit(at(c, en)))
            en++;
        size_t k = en;
        while (k < c->len && k - en < 3 && is_num_sep(at(c, k)))
            k++;
        if (k > en && is_digit(at(c, k))) {
            en = k;
            continue;
        }
        break;
    }
    c->sc->done[T_NUM] = en;
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
        if (one) x_house_number(c, st, en);
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
                cand_add(c, PII_IP_ADDRESS,
                         ctx_has(c, st + i, st + j, 40, 0, ctx_ip) ? 0.95f : 0.6f, st + i, st + j);
                any = true;
            }
            i = j;
        }
        if (any || (groups == 4 && dots == 3 && other == 0)) return;
    }
    if (xe == en && (n == 11 || n == 9) && pii_ssn_valid(s, n)) {
        bool ctx =
            ctx_has(c, st, en, 48, 0, (const char *const[]){"ssn", "social", "security", NULL});
        if (n == 11)
            cand_add(c, PII_US_SSN, ctx ? 1.0f : 0.85f, st, en);
        else if (ctx)
            cand_add(c, PII_US_SSN, 0.75f, st, en);
        if (n == 11) return;
    }
    if (xe == en && digits >= 12 && digits <= 19 && pii_card_valid(s, n)) {
        cand_add(c, PII_CREDIT_CARD, ctx_has(c, st, en, 48, 0, ctx_card) ? 1.0f : 0.9f, st, en);
        return;
    }
    if (looks_like_date(c, st, en)) return; /* dates of birth come from x_keyword */
    float ps = pii_phone_shape(s, xe - st);
    if (ps > 0) {
        if (ctx_has(c, st, xe, 48, 12, ctx_phone)) ps += 0.35f;
        cand_add(c, PII_PHONE_NUMBER, ps, st, xe);
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
            cand_add(c, PII_IBAN_CODE, 0.95f, st, ends[i]);
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
        cand_add(c, PII_IP_ADDRESS, ctx_has(c, st, en, 40, 0, ctx_ip) ? 0.95f : 0.7f, st, en);
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
static size_t text_survey(const unsigned char *p, size_t n, bool *rare)
{
    const __m128i colon = _mm_set1_epi8(':'), at_ = _mm_set1_epi8('@');
    const __m128i to_min = _mm_set1_epi8((char)(0x80 - '0'));
    const __m128i ten = _mm_set1_epi8((char)(-128 + 10)); /* '0'..'9' become -128..-119 */
    uint64_t prev = 0;
    size_t pair = n, b = 0;
    bool dig = false;
    for (; b + 64 <= n; b += 64) {
        __m128i cl[4], dg = _mm_setzero_si128();
        for (int q = 0; q < 4; q++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + b + 16 * q));
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
    size_t last = prev ? b - 1 - (size_t)__builtin_clzll(prev) : (size_t)-8;
    for (; b < n; b++) {
        dig |= is_digit(p[b]) || p[b] == '@';
        if (p[b] == ':' && pair == n) {
            if (b - last - 2 <= 3) pair = b;
            last = b;
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
static void v6_scan(scan_ctx_t *c, size_t to)
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
static void x_secret(scan_ctx_t *c, int id, size_t to)
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
    cand_add(c, PII_SECRET, 0.95f, st, en);
}

/* Month names for written dates of birth. */
static int month_len(const scan_ctx_t *c, size_t i)
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
    int ml = month_len(c, k);
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
static void x_keyword(scan_ctx_t *c, int id, size_t to)
{
    size_t lim = to + 48 < c->len ? to + 48 : c->len;
    for (size_t i = to; i < lim; i++) {
        unsigned char ch = at(c, i);
        if (i > 0 && is_alnum(at(c, i - 1))) continue;
        if (!is_alnum(ch)) continue;
        if (id == T_KEY_BIRTH) {
            size_t e = date_at(c, i);
            if (e) {
                cand_add(c, PII_DATE_OF_BIRTH, 0.85f, i, e);
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
                cand_add(c, PII_US_SSN, 0.9f, i, e);
            if (digits) return;
            i = e;
            continue;
        }
        if (digits >= 6 && letters <= 2 && e - i <= 16 && !(letters && !is_alpha(ch))) {
            if (id == T_KEY_LICENSE)
                cand_add(c, PII_US_DRIVER_LICENSE, 0.8f, i, e);
            else if (digits <= 9 && e - i <= 9)
                cand_add(c, PII_US_PASSPORT, 0.8f, i, e);
            return;
        }
        i = e;
    }
}

/* Street address ending in a suffix word ("1755 Nelson Mandela Drive"): walks back
 * over up to four words to a house number, then forward over an optional unit and
 * ", City, ST 12345". */
static void x_address(scan_ctx_t *c, size_t to)
{
    size_t sfx = to;
    while (sfx > 0 && is_alpha(at(c, sfx - 1)))
        sfx--;
    if (sfx == 0 || at(c, sfx - 1) != ' ') return;
    size_t k = sfx - 1; /* at the space before the suffix */
    int words = 0;
    size_t st = 0;
    bool found = false;
    while (words <= 4 && k > 0) {
        size_t e = k;
        while (k > 0 && at(c, k - 1) != ' ' && at(c, k - 1) != '\n' && e - k < 30)
            k--;
        size_t w = k;
        bool num = e > w;
        for (size_t j = w; j < e; j++)
            num &= is_digit(at(c, j)) || (j == e - 1 && is_alpha(at(c, j)));
        if (num && is_digit(at(c, w)) && e - w <= 6) {
            st = w;
            found = words >= 1;
            break;
        }
        bool word = e > w;
        for (size_t j = w; j < e; j++)
            word &= is_alpha(at(c, j)) || at(c, j) >= 0x80 || at(c, j) == '.' || at(c, j) == '\'';
        if (!word || k == 0 || at(c, k - 1) != ' ') return;
        words++;
        k--;
    }
    if (!found || (st > 0 && is_alnum(at(c, st - 1)))) return;
    size_t en = to;
    if (at(c, en) == '.') en++;
    /* Unit: ", Apt 5" " Suite 501" " #12" */
    size_t u = en;
    if (at(c, u) == ',') u++;
    if (at(c, u) == ' ') u++;
    static const char *const units[] = {"apt", "apartment", "suite", "ste",  "unit",
                                        "#",   "floor",     "fl",    "room", NULL};
    for (int i = 0; units[i]; i++) {
        size_t l = strlen(units[i]), j = 0;
        while (j < l && (at(c, u + j) | 0x20) == (unsigned char)units[i][j])
            j++;
        if (j < l) continue;
        size_t v = u + l;
        if (at(c, v) == '.') v++;
        if (at(c, v) == ' ') v++;
        size_t d = v;
        while (is_alnum(at(c, v)) && v - d < 6)
            v++;
        if (v > d && is_digit(at(c, d))) en = v;
        break;
    }
    /* ", City, ST 12345" on the same line */
    size_t ci = en;
    if (at(c, ci) == ',' && at(c, ci + 1) == ' ' && is_upper(at(c, ci + 2))) {
        size_t v = ci + 2;
        int w = 0;
        while (w < 3 && is_upper(at(c, v))) {
            while (is_alpha(at(c, v)) || at(c, v) >= 0x80)
                v++;
            w++;
            if (at(c, v) == ' ' && is_upper(at(c, v + 1)))
                v++;
            else
                break;
        }
        size_t city_end = v;
        if (at(c, v) == ',') v++;
        if (at(c, v) == ' ') v++;
        if (is_upper(at(c, v)) && is_upper(at(c, v + 1)) && !is_alpha(at(c, v + 2))) {
            v += 2;
            if (at(c, v) == ' ') v++;
            size_t z = v;
            while (is_digit(at(c, v)) && v - z < 5)
                v++;
            en = v - z == 5 && !is_digit(at(c, v)) ? v : z - 1;
            if (en < city_end) en = city_end;
        } else {
            en = city_end;
        }
    }
    float score = 0.7f + (ctx_has(c, st, en, 40, 0, ctx_addr) ? 0.2f : 0.0f);
    cand_add(c, PII_STREET_ADDRESS, score, st, en);
}

/* European street names with the suffix inside the word ("Koskikatu 25"); en is the
 * end of the house number that follows the name. */
static void x_address_eu(scan_ctx_t *c, size_t en)
{
    size_t num = en;
    while (num > 0 && is_digit(at(c, num - 1)))
        num--;
    if (num < 2) return;
    size_t st = num - 1;
    while (st > 0 && (is_alpha(at(c, st - 1)) || at(c, st - 1) >= 0x80 || at(c, st - 1) == '-'))
        st--;
    if (!is_upper(at(c, st)) && at(c, st) < 0x80) return;
    if (en - num == 4 && (at(c, num) == '1' || at(c, num) == '2')) return; /* a year */
    cand_add(c, PII_STREET_ADDRESS, 0.75f, st, en);
}

/* Street-type words that end a street name ("Drive", "St."). */
static const char *const street_sfx[] = {
    "street",  "st",      "avenue",  "ave",     "road",   "rd",       "boulevard",
    "blvd",    "lane",    "ln",      "drive",   "dr",     "court",    "ct",
    "place",   "pl",      "way",     "terrace", "square", "sq",       "highway",
    "hwy",     "parkway", "pkwy",    "circle",  "cir",    "trail",    "crescent",
    "close",   "grove",   "gardens", "alley",   "plaza",  "crossing", "streets",
    "squares", "route",   "row",     "walk",    "mews",   NULL};
/* Endings of street names written as one word ("Koskikatu", "Auerstrasse"). */
static const char *const street_eu[] = {
    "strasse", "straße", "gasse", "katu", "tie",   "vej",   "gata",  "gatan", "weg",   "laan",
    "straat",  "vägen",  "väg",   "utca", "ulica", "allee", "platz", "vegen", "veien", NULL};

/* True when s[0..n) equals (whole) or ends with (!whole) one of list, ASCII case folded. */
static bool word_in(const char *s, size_t n, const char *const *list, bool whole)
{
    for (int i = 0; list[i]; i++) {
        if (whole && fold((unsigned char)s[0]) != (unsigned char)list[i][0]) continue;
        size_t l = strlen(list[i]);
        if (l > n || (whole && l != n)) continue;
        size_t j = 0;
        while (j < l && fold((unsigned char)s[n - l + j]) == (unsigned char)list[i][j])
            j++;
        if (j == l) return true;
    }
    return false;
}

/* A house number at [st, en): looks for "<number> <1..5 words> <suffix>" forward and
 * "<Word ending in -katu/-strasse...> <number>" backward. */
static void x_house_number(scan_ctx_t *c, size_t st, size_t en)
{
    /* Unit or box before the number: "Apt. 595", "Suite 501", "PSC 0413, Box 8144",
     * "APO AA 42323". */
    static const char *const unit_words[] = {"apt",  "apartment", "suite",   "ste",
                                             "unit", "room",      "floor",   "fl",
                                             "box",  "psc",       "postbox", NULL};
    size_t b = st;
    while (b > 0 && (at(c, b - 1) == ' ' || at(c, b - 1) == '#') && st - b < 3)
        b--;
    if (b > 0 && at(c, b - 1) == '.') b--;
    size_t we = b;
    while (b > 0 && is_alpha(at(c, b - 1)))
        b--;
    if (we > b && b < st && (b == 0 || !is_alnum(at(c, b - 1)))) {
        if (word_in(c->t + b, we - b, unit_words, true)) {
            cand_add(c, PII_STREET_ADDRESS, 0.6f, b, en);
            return;
        }
        /* military: (APO|FPO|DPO) (AA|AE|AP) 12345 */
        if (we - b == 2 && b >= 4 && at(c, b - 1) == ' ' && en - st == 5) {
            size_t m = b - 4;
            char x = (char)fold(at(c, m));
            if ((x == 'a' || x == 'f' || x == 'd') && fold(at(c, m + 1)) == 'p' &&
                fold(at(c, m + 2)) == 'o' && (m == 0 || !is_alnum(at(c, m - 1)))) {
                cand_add(c, PII_STREET_ADDRESS, 0.7f, m, en);
                return;
            }
        }
    }
    size_t k = en;
    for (int w = 0; w < 6 && at(c, k) == ' '; w++) {
        size_t ws = ++k;
        while (k < c->len && (is_alpha(at(c, k)) || at(c, k) >= 0x80 || at(c, k) == '\'' ||
                              at(c, k) == '-' || (at(c, k) == '.' && k > ws)))
            k++;
        if (k == ws) {
            /* "<number> <name words> <number>": building and street number around a
             * street name ("28245 Puruntie 82", "3482 Via Franscini 71"). */
            size_t d = k;
            while (is_digit(at(c, k)) && k - d < 6)
                k++;
            if (w >= 1 && w <= 3 && k - d >= 1 && k - d <= 4 && !is_alnum(at(c, k)) &&
                at(c, k) != '%' && at(c, k) != ':' &&
                !(at(c, k) == '.' && is_digit(at(c, k + 1)))) {
                unsigned char w0 = at(c, en + 1);
                bool named = is_upper(w0) || w0 >= 0x80 || en - st >= 4;
                size_t w0e = en + 1;
                while (w0e < c->len && at(c, w0e) != ' ')
                    w0e++;
                uint8_t fl = pii_names_lookup(&c->s->names, c->t + en + 1, w0e - en - 1);
                if (named && !(fl & PII_NAME_STOP) && !month_len(c, en + 1) && w0e - en - 1 >= 3)
                    cand_add(c, PII_STREET_ADDRESS, 0.65f, st, k);
            }
            break;
        }
        size_t we2 = k;
        while (we2 > ws && at(c, we2 - 1) == '.')
            we2--;
        if (w > 0 && word_in(c->t + ws, we2 - ws, street_sfx, true)) {
            x_address(c, we2);
            return;
        }
    }
    if (st >= 2 && at(c, st - 1) == ' ') {
        size_t e = st - 1, b2 = e;
        while (b2 > 0 && (is_alpha(at(c, b2 - 1)) || at(c, b2 - 1) >= 0x80 || at(c, b2 - 1) == '-'))
            b2--;
        if (e - b2 >= 5 && word_in(c->t + b2, e - b2, street_eu, false)) x_address_eu(c, en);
    }
}

static void x_name_key(scan_ctx_t *c, size_t to);

/* Hyperscan callback: dispatches each trigger to its extractor. */
static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *vctx)
{
    (void)flags;
    scan_ctx_t *c = vctx;
    size_t t = (size_t)to;
    v6_scan(c, t); /* IPv6 matches before this one (none can end at t: t - 1 is no colon) */
    switch (id) {
    case T_EMAIL:
        if (t > c->sc->done[T_EMAIL]) x_email(c, t);
        break;
    case T_NUM:
        if (t > c->sc->done[T_NUM]) x_num(c, t);
        break;
    case T_AWS:
    case T_GCP:
    case T_GITHUB:
    case T_GITHUB_PAT:
    case T_SLACK:
    case T_PRIVKEY:
    case T_BEARER:
        x_secret(c, (int)id, t);
        break;
    case T_KEY_LICENSE:
    case T_KEY_PASSPORT:
    case T_KEY_BIRTH:
    case T_KEY_SSN:
        x_keyword(c, (int)id, t);
        break;
    case T_KEY_NAME:
        if (c->s->names.slots) x_name_key(c, t);
        break;
    case T_LOOKALIKE:
        c->sc->lookalike = true;
        break;
    }
    return 0;
}

/* ================================================================== person names */

/* Length of the UTF-8 uppercase Latin letter at p (Latin-1 Supplement and Extended-A
 * capitals), else 0. */
static inline size_t utf8_upper(const unsigned char *p, size_t left)
{
    if (left < 2 || p[0] < 0xC3 || p[0] > 0xC5) return 0;
    if (p[0] == 0xC3 && p[1] >= 0x80 && p[1] <= 0x9E && p[1] != 0x97) return 2;
    if ((p[0] == 0xC4 || p[0] == 0xC5) && p[1] >= 0x80 && p[1] <= 0xBF) {
        /* U+0100..U+017F: capitals are even code points except U+0139..U+0148 and
         * U+0179..U+017E, where they are odd ("Ł" U+0141, "ł" U+0142). */
        unsigned cp = ((unsigned)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        bool odd_caps = (cp >= 0x139 && cp <= 0x148) || cp >= 0x179;
        if (cp == 0x138 || cp == 0x149 || cp == 0x17F) return 0;
        return ((cp & 1) != 0) == odd_caps ? 2 : 0;
    }
    return 0;
}

typedef struct tok {
    size_t st, en;
    uint8_t flags;
    bool initial; /* single capital, maybe with a dot */
} tok_t;

/* Reads a capitalised token at i: capital then at least one lowercase or non-ASCII
 * byte ("Krisztián", "O'Brien", "Jean-Luc"), or an initial ("J", "J."). Returns its
 * end, or i when there is none. */
static size_t cap_token(const scan_ctx_t *c, size_t i, bool *initial)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t k = i;
    if (i >= c->len) return i; /* a list separator at the very end */
    size_t u = is_upper(p[i]) ? 1 : utf8_upper(p + i, c->len - i);
    if (!u) return i;
    k += u;
    size_t body = k;
    /* The lowercase ASCII body 16 bytes at a time; the loop below does the rest. */
    while (k + 16 <= c->len) {
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + k)), _mm_set1_epi8('a'));
        unsigned low =
            (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(25)), v));
        if (low != 0xFFFF) {
            k += (size_t)__builtin_ctz(~low);
            break;
        }
        k += 16;
    }
    while (k < c->len &&
           (is_lower(p[k]) || (p[k] >= 0x80 && !utf8_upper(p + k, c->len - k)) ||
            ((p[k] == '\'' || p[k] == '-') && k + 1 < c->len && is_upper(p[k + 1]) && k > body)))
        k++;
    *initial = false;
    if (k == body) {
        if (k < c->len && is_alnum(p[k])) return i;
        *initial = true;
        if (k < c->len && p[k] == '.') k++;
        return k;
    }
    if (k < c->len && (is_alnum(p[k]) || p[k] == '_' || p[k] == '@')) return i;
    return k;
}

/* True when a token holds a non-ASCII letter (Latin-1 or Extended-A lead byte). */
static int nonascii(const scan_ctx_t *c, tok_t t)
{
    for (size_t i = t.st; i < t.en; i++)
        if (at(c, i) >= 0xC3 && at(c, i) <= 0xC5) return 1;
    return 0;
}

/* True when a token ends like a surname in many languages (Slavic, Baltic, Nordic,
 * Georgian, Armenian, Greek, Romanian, Icelandic): "-ová", "-ić", "-ski", "-dze". */
static bool surname_shape(const char *s, size_t n)
{
#define S(x)                                                                                       \
    {                                                                                              \
        x, sizeof(x) - 1                                                                           \
    }
    static const struct {
        const char *s;
        size_t n;
    } sfx[] = {S("ov"),     S("ova"),    S("ev"),    S("eva"),    S("ová"),  S("ić"),   S("ic"),
               S("ski"),    S("ska"),    S("sky"),   S("cki"),    S("cka"),  S("dze"),  S("shvili"),
               S("yan"),    S("ian"),    S("enko"),  S("chuk"),   S("uk"),   S("sson"), S("sen"),
               S("dóttir"), S("dottir"), S("escu"),  S("poulos"), S("akis"), S("idis"), S("oglu"),
               S("oğlu"),   S("ovich"),  S("evich"), S("ovna"),   S("evna"), S("inen"), S("nen"),
               S("lä"),     S("vá"),     S("ská"),   S("ný"),     S("ák"),   S("ek"),   S("czyk"),
               S("wicz"),   S("ez")};
#undef S
    if (n < 5) return false;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (sfx[i].n < n && s[n - 1] == sfx[i].s[sfx[i].n - 1]) {
            size_t j = 0;
            while (j < sfx[i].n && s[n - sfx[i].n + j] == sfx[i].s[j])
                j++;
            if (j == sfx[i].n) return true;
        }
    return false;
}

/* Person context: the context flags (PII_CTX_STRONG, PII_CTX_WEAK, see pii_names.c)
 * of the three words before st, OR-ed; one probe of the small context table per word.
 * Only the flags in need (PII_CTX_STRONG, or both) are looked for. */
static uint8_t ctx_before(const scan_ctx_t *c, size_t st, uint8_t need)
{
    const uint64_t *filt =
        need & PII_CTX_WEAK ? c->s->names.ctx_filter_near : c->s->names.ctx_filter_strong;
    const unsigned char *t = (const unsigned char *)c->t;
    if (st >= 32) {
        /* The 32 bytes before st as a bit mask of ASCII letters; the words are the
         * runs of ones, read from the top without a branch per byte. */
        const __m128i a_ = _mm_set1_epi8('a'), r25 = _mm_set1_epi8(25), f = _mm_set1_epi8(0x20);
        __m128i v0 =
            _mm_sub_epi8(_mm_or_si128(_mm_loadu_si128((const __m128i *)(t + st - 32)), f), a_);
        __m128i v1 =
            _mm_sub_epi8(_mm_or_si128(_mm_loadu_si128((const __m128i *)(t + st - 16)), f), a_);
        uint32_t m = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v0, r25), v0)) |
                     (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v1, r25), v1)) << 16;
        int wb[3], wn[3], nw = 0;
        for (int w = 0; w < 3 && m; w++) {
            int e = 32 - __builtin_clz(m);
            uint32_t gap = ~m & (e == 32 ? ~0u : (1u << e) - 1);
            int b = gap ? 32 - __builtin_clz(gap) : 0;
            if (e - b <= 12) {
                wb[nw] = b;
                wn[nw++] = e - b;
            }
            m &= b ? (1u << b) - 1 : 0;
        }
        const unsigned char *w0 = t + st - 32;
        uint8_t fl = 0;
        if (st + 8 <= c->len) {
            /* Most words are no context word: the filter bits of all of them first,
             * with one branch for the lot, then the table for those that pass. */
            unsigned pass = 0;
            for (int k = 0; k < nw; k++) {
                uint64_t key;
                memcpy(&key, w0 + wb[k], 8); /* ends at most 8 bytes past st - 1 */
                key = (key | 0x2020202020202020ull) &
                      (wn[k] >= 8 ? ~0ull : ~0ull >> (64 - 8 * wn[k]));
                uint64_t h = key * 0x9E3779B97F4A7C15ull;
                pass |= (unsigned)(filt[h >> 58] >> ((h >> 52) & 63) & 1) << k;
            }
            if (!pass) return 0;
            for (int k = 0; k < nw; k++)
                if (pass >> k & 1)
                    fl |= ctx_flags_in(c, filt, c->t + st - 32 + wb[k], (size_t)wn[k]);
            return fl;
        }
        for (int k = 0; k < nw; k++)
            fl |= ctx_flags_in(c, filt, c->t + st - 32 + wb[k], (size_t)wn[k]);
        return fl;
    }
    size_t p = st, lo = st > 32 ? st - 32 : 0;
    uint8_t f = 0;
    for (int w = 0; w < 3 && p > lo; w++) {
        while (p > lo && !is_alpha(t[p - 1]))
            p--;
        size_t e = p;
        while (p > lo && is_alpha(t[p - 1]))
            p--;
        if (e == p) break;
        if (e - p <= 12) f |= ctx_flags_in(c, filt, c->t + p, e - p);
    }
    return f;
}

/* True when a census name token sits next to position p in a list: after p (skipping
 * ", " or " and ") when forward, else before p. */
static bool neighbour_name(const scan_ctx_t *c, size_t p, bool forward)
{
    if (forward) {
        size_t k = p;
        if (at(c, k) == ',') k++;
        if (at(c, k) == ' ') k++;
        if (k + 4 <= c->len && !memcmp(c->t + k, "and ", 4)) k += 4;
        if (!is_upper(at(c, k))) return false;
        size_t e = k;
        while (e < c->len && (is_alpha(at(c, e)) || at(c, e) >= 0x80))
            e++;
        uint8_t f = name_flags(c, c->t + k, e - k);
        return (f & (PII_NAME_FIRST | PII_NAME_LAST)) && !(f & PII_NAME_STOP);
    }
    size_t k = p;
    while (k > 0 && (at(c, k - 1) == ' ' || at(c, k - 1) == ','))
        k--;
    if (k >= 3 && !memcmp(c->t + k - 3, "and", 3)) {
        k -= 3;
        while (k > 0 && (at(c, k - 1) == ' ' || at(c, k - 1) == ','))
            k--;
    }
    size_t e = k;
    while (k > 0 && (is_alpha(at(c, k - 1)) || at(c, k - 1) >= 0x80))
        k--;
    if (e == k || !is_upper(at(c, k))) return false;
    uint8_t f = name_flags(c, c->t + k, e - k);
    return (f & (PII_NAME_FIRST | PII_NAME_LAST)) && !(f & PII_NAME_STOP);
}

/* A word of letters (ASCII or UTF-8) at i, with inner ' or -; returns its end. */
static size_t word_end(const scan_ctx_t *c, size_t i)
{
    size_t k = i;
    while (k < c->len &&
           (is_alpha(at(c, k)) || at(c, k) >= 0x80 ||
            ((at(c, k) == '\'' || at(c, k) == '-') && k > i && is_alpha(at(c, k + 1)))))
        k++;
    return k;
}

static void lone_add(scan_ctx_t *c, float score, size_t st, size_t en);

/* After a phrase that announces a name ("my name is", "call me", "named", "Name:"):
 * the next one to three words are the name, in any case ("my name is lena
 * andersson"). Stops at punctuation, a line end or a common word. */
static void x_name_key(scan_ctx_t *c, size_t to)
{
    size_t k = to;
    while (at(c, k) == ' ' || at(c, k) == '"')
        k++;
    size_t st = k, en = k;
    for (int w = 0; w < 3; w++) {
        size_t e = word_end(c, k);
        if (e == k) break;
        bool ini = e - k == 1 && is_alpha(at(c, k));
        /* "a dog named Spot ran": a capitalised name ends at a lowercase word. */
        if (w > 0 && is_upper(at(c, st)) && !is_upper(at(c, k)) && at(c, k) < 0x80) break;
        if (!ini) {
            uint8_t f = name_flags(c, c->t + k, e - k);
            if (f & (PII_NAME_STOP | PII_CTX_STRONG | PII_CTX_WEAK | PII_CTX_AFTER)) break;
            en = e;
        } else if (w == 0) {
            break;
        }
        if (at(c, e) == '.' && ini) e++;
        if (at(c, e) != ' ') break;
        k = e + 1;
    }
    if (en <= st) return;
    /* A lowercase word is taken only after "my name is", "call me": elsewhere ("the
     * file name is config") it is more often not a name. */
    if (!is_upper(at(c, st)) && at(c, st) < 0x80 &&
        !(name_flags(c, c->t + st, word_end(c, st) - st) & (PII_NAME_FIRST | PII_NAME_LAST))) {
        bool mine = false;
        size_t lo = to > 24 ? to - 24 : 0;
        for (size_t i = lo; i + 3 <= to && !mine; i++)
            mine = (fold(at(c, i)) == 'm' &&
                    (fold(at(c, i + 1)) == 'y' || fold(at(c, i + 1)) == 'e') &&
                    at(c, i + 2) == ' ' && (i == 0 || !is_alpha(at(c, i - 1))));
        if (!mine) return;
    }
    /* "a girl named Sarah": a story introducing someone, not identifying on its own;
     * "my name is Sarah", "call me Sarah", "last name? Sarah" are. */
    if (to >= 6 && !memcmp(c->t + to - 6, "named ", 6) && word_end(c, st) == en &&
        (name_flags(c, c->t + st, en - st) & PII_NAME_FIRST))
        lone_add(c, 0.75f, st, en);
    else
        cand_add(c, PII_PERSON, 0.75f, st, en);
}

/* What the name pass remembers within one text: the tokens of runs it kept as
 * names, and the runs it left below the threshold. A run left alone that repeats a
 * token of a kept name ("Adam McDowell ... McDowell was") is the same person. */
#define MEMO_MAX 128
#define PEND_MAX 128
#define LAB_MAX  16
typedef struct name_memo {
    size_t kept[MEMO_MAX][2];
    size_t left[MEMO_MAX][2];
    int nkept, nleft;
    size_t pend[PEND_MAX][2]; /* lone given names waiting for identifying context */
    float pend_score[PEND_MAX];
    int npend;
    bool pend_over;         /* more than PEND_MAX held: the pass is run again if needed */
    size_t lab[LAB_MAX][2]; /* speaker labels that are no given name ("Leverett:") */
    int nlab, nlab_all;     /* those, and all speaker labels */
} name_memo_t;

/* A lone given name ("Lily", "Timmy", "Romeo"): a given name on the census lists is
 * shared by thousands of people, so on its own it does not identify anyone. It is
 * recorded at once when the text already holds identifying context (another
 * entity, a full name, a titled or announced name), else held in the memo until
 * such context turns up; scan_names drops what is still held at the end. */
static void lone_add(scan_ctx_t *c, float score, size_t st, size_t en)
{
    if (score < c->s->thr[PII_PERSON]) return;
    if (c->sc->n > c->first) {
        cand_add(c, PII_PERSON, score, st, en);
        return;
    }
    name_memo_t *m = c->memo;
    if (m->npend == PEND_MAX) {
        m->pend_over = true;
        return;
    }
    m->pend[m->npend][0] = st;
    m->pend[m->npend][1] = en;
    m->pend_score[m->npend++] = score;
}

/* Records the result of one scored run in the memo. */
static void memo_note(scan_ctx_t *c, const tok_t *tk, int a, int b, float score)
{
    name_memo_t *m = c->memo;
    if (!m) return;
    if (score >= c->s->thr[PII_PERSON]) {
        for (int i = a; i < b && m->nkept < MEMO_MAX; i++) {
            if (tk[i].initial || (tk[i].flags & PII_NAME_STOP)) continue;
            m->kept[m->nkept][0] = tk[i].st;
            m->kept[m->nkept++][1] = tk[i].en;
        }
    } else if (score >= 0.2f && m->nleft < MEMO_MAX) {
        m->left[m->nleft][0] = tk[a].st;
        m->left[m->nleft++][1] = tk[b - 1].en;
    }
}

/* The first min(n, 8) bytes at k, as they are (no folding), zero padded: with the
 * length, a cheap first test for equal words. */
static inline uint64_t raw_key(const scan_ctx_t *c, size_t k, size_t n)
{
    uint64_t w = 0;
    if (k + 8 <= c->len) {
        memcpy(&w, c->t + k, 8);
        if (n < 8) w &= ~0ull >> (64 - 8 * n);
    } else {
        for (size_t i = 0; i < n && i < 8; i++)
            w |= (uint64_t)(unsigned char)c->t[k + i] << (8 * i);
    }
    return w;
}

/* Second look at the runs left below the threshold: one whose words repeat a word
 * of a kept name is recorded as a name too. The kept words (3 bytes or more) are
 * summarised first (key and length, and a 256-bit filter of both), so the words of
 * the runs left, mostly no kept word, are answered by one filter test. */
static void memo_resolve(scan_ctx_t *c)
{
    name_memo_t *m = c->memo;
    float score = c->s->thr[PII_PERSON] + 0.05f;
    uint64_t key[MEMO_MAX], filt[4] = {0};
    size_t kst[MEMO_MAX], kn[MEMO_MAX];
    int nk = 0;
    for (int j = 0; j < m->nkept; j++) {
        size_t n = m->kept[j][1] - m->kept[j][0];
        if (n < 3) continue;
        kst[nk] = m->kept[j][0];
        kn[nk] = n;
        key[nk] = raw_key(c, kst[nk], n);
        uint64_t h = (key[nk] ^ n) * 0x9E3779B97F4A7C15ull;
        filt[h >> 62] |= 1ull << ((h >> 56) & 63);
        nk++;
    }
    if (!nk) return;
    for (int i = 0; i < m->nleft; i++) {
        size_t k = m->left[i][0], en = m->left[i][1];
        bool hit = false;
        while (k < en && !hit) {
            size_t e = word_end(c, k);
            if (e > en) e = en;
            size_t n = e - k;
            if (n >= 3) {
                uint64_t w = raw_key(c, k, n), h = (w ^ n) * 0x9E3779B97F4A7C15ull;
                if (filt[h >> 62] >> ((h >> 56) & 63) & 1)
                    for (int j = 0; j < nk && !hit; j++)
                        hit = kn[j] == n && key[j] == w && !memcmp(c->t + k, c->t + kst[j], n);
            }
            k = e + 1;
            while (k < en && !is_alpha(at(c, k)) && at(c, k) < 0x80)
                k++;
        }
        if (hit) cand_add(c, PII_PERSON, score, m->left[i][0], en);
    }
}

/* True when the word after position en announces a person in the subject of a
 * verb ("Tomomi is from", "Enrico shouted", "Sofie lives"). */
static bool ctx_after(const scan_ctx_t *c, size_t en)
{
    /* "Arne's address", "Sumaya's kid": a possessive before a word for a person's
     * belongings or relatives. */
    if (at(c, en) == '\'' && at(c, en + 1) == 's' && at(c, en + 2) == ' ') {
        static const char *const owned[] = {
            "address",  "kid",    "kids",    "daughter", "son",    "wife",   "husband",
            "mother",   "father", "brother", "sister",   "friend", "phone",  "email",
            "birthday", "family", "killers", "house",    "home",   "number", NULL};
        size_t k = en + 3, e = word_end(c, k);
        return e > k && word_in(c->t + k, e - k, owned, true);
    }
    /* A vocative: "Jakobine, can I please speak to your boss?" */
    if (at(c, en) == ',' && at(c, en + 1) == ' ') {
        static const char *const asks[] = {"can", "could", "would", "will", "please", NULL};
        size_t k = en + 2, e = word_end(c, k);
        return e > k && word_in(c->t + k, e - k, asks, true);
    }
    if (at(c, en) != ' ') return false;
    size_t k = en + 1, e = k;
    while (is_lower(at(c, e)))
        e++;
    if (e == k) return false;
    if (e - k == 2 && at(c, k) == 'i' && at(c, k + 1) == 's' && e + 5 <= c->len &&
        !memcmp(c->t + e, " from", 5))
        return true;
    return (ctx_flags_in(c, c->s->names.ctx_filter_after, c->t + k, e - k) & PII_CTX_AFTER) != 0;
}

/* True when the word right before a lone given name at st makes it identifying: a
 * title ("Mr. Ellis", "Dr. Ana"), a role in a record ("customer Ana", "Contact:
 * Ana"), a closing above a signature ("Regards,\nAna"), "Dear" opening a line, or a
 * relative of the writer ("my kid Selma", "our landlord Ana"). */
static bool id_before(const scan_ctx_t *c, size_t st)
{
    size_t p = st;
    bool dot = false, nl = false;
    while (p > 0 && st - p < 4 &&
           (at(c, p - 1) == ' ' || at(c, p - 1) == ',' || at(c, p - 1) == ':' ||
            at(c, p - 1) == '.' || at(c, p - 1) == '\n')) {
        dot |= at(c, p - 1) == '.';
        nl |= at(c, p - 1) == '\n';
        p--;
    }
    size_t e = p;
    while (p > 0 && is_alpha(at(c, p - 1)))
        p--;
    if (e == p || e - p > 12 || (p > 0 && at(c, p - 1) >= 0x80)) return false;
    uint8_t f = ctx_flags(c, c->t + p, e - p);
    if (f & PII_CTX_ID) {
        if (dot) return e - p <= 4 && !nl; /* "Mr.", "Dr.", not "the customer. Ana" */
        if (e - p == 4 && (at(c, p) | 0x20) == 'd' && (at(c, p + 1) | 0x20) == 'e') {
            /* "Dear Ana" opening a letter, not "my dear Juliet" */
            while (p > 0 && (at(c, p - 1) == ' ' || at(c, p - 1) == '\t'))
                p--;
            return p == 0 || at(c, p - 1) == '\n';
        }
        return true;
    }
    if ((f & PII_CTX_REL) && st - e == 1 && at(c, e) == ' ' && p >= 3 && at(c, p - 1) == ' ') {
        size_t q = p - 1, w = q;
        while (w > 0 && is_alpha(at(c, w - 1)))
            w--;
        return (q - w == 2 && fold(at(c, w)) == 'm' && fold(at(c, w + 1)) == 'y') ||
               (q - w == 3 && fold(at(c, w)) == 'o' && fold(at(c, w + 1)) == 'u' &&
                fold(at(c, w + 2)) == 'r');
    }
    return false;
}

/* True when st starts a line that goes on from the line before (verse, wrapped
 * text): the line before ends in a letter, a comma or a semicolon. A capital there
 * says nothing about the word. */
static bool line_goes_on(const scan_ctx_t *c, size_t st)
{
    if (st < 2 || at(c, st - 1) != '\n') return false;
    unsigned char pc = at(c, st - 2);
    return is_alpha(pc) || pc == ',' || pc == ';' || pc == '-';
}

/* True when a run at st starts a sentence, which cannot take context from before it
 * (except after a title: "Dr. Ubul"); most capitalised words in prose are sentence
 * starts. */
static bool sentence_start(const scan_ctx_t *c, size_t st)
{
    size_t q2 = st;
    while (q2 > 0 && (at(c, q2 - 1) == ' ' || at(c, q2 - 1) == '"' || at(c, q2 - 1) == '\''))
        q2--;
    if (q2 == 0) return true;
    unsigned char pc = at(c, q2 - 1);
    if (pc == '.') {
        size_t w0 = q2 - 1;
        while (w0 > 0 && is_alpha(at(c, w0 - 1)))
            w0--;
        return q2 - 1 - w0 > 3;
    }
    if (pc == '\n') return q2 < 2 || (at(c, q2 - 2) != ':' && at(c, q2 - 2) != ',');
    return pc == '!' || pc == '?';
}

/* Scores one run of capitalised tokens and records it. */
static void person_run(scan_ctx_t *c, tok_t *tk, int nt)
{
    /* "Johnson Inc", "Cockle Bay", "Berg Hills Street": an organisation or a place. */
    if (nt >= 2 && (tk[nt - 1].flags & PII_NAME_ORG)) return;
    int a = 0, b = nt;
    /* Leading titles and context words stay out of the name ("Producer Liviana
     * Palerma", "Dear Ann"); they count as context below. */
    while (a < b &&
           (tk[a].initial || (tk[a].flags & (PII_NAME_STOP | PII_CTX_STRONG | PII_CTX_WEAK))))
        a++;
    /* "Plough Rome and harrow Italy" at the start of a verse line: a word that is no
     * census name is only capitalised by its place. */
    if (a == 0 && b > 0 && !(tk[0].flags & (PII_NAME_FIRST | PII_NAME_LAST)) &&
        line_goes_on(c, tk[0].st))
        a++;
    /* "Ivan King", "Zoe Young": a given name and a surname that is also a common
     * word is a full name; elsewhere a trailing common word is not part of it. */
    bool stop_surname = b - a == 2 && !tk[a].initial && (tk[a].flags & PII_NAME_FIRST) &&
                        !(tk[a].flags & PII_NAME_STOP) && (tk[b - 1].flags & PII_NAME_LAST);
    while (!stop_surname && b > a && (tk[b - 1].initial || (tk[b - 1].flags & PII_NAME_STOP)))
        b--;
    if (a >= b) return;
    int n = b - a, known = 0, unknown = 0;
    for (int i = a; i < b; i++) {
        if (tk[i].initial) continue;
        if (tk[i].flags & (PII_NAME_FIRST | PII_NAME_LAST))
            known++;
        else
            unknown++;
    }
    uint8_t f0 = tk[a].flags, fl = tk[b - 1].flags;
    bool mid_initial = false;
    for (int i = a + 1; i < b - 1; i++)
        mid_initial |= tk[i].initial;
    float score;
    if (n >= 2 && (f0 & PII_NAME_FIRST) && (f0 & PII_NAME_COMMON) && ((fl & PII_NAME_LAST) || !fl))
        score = 0.85f;
    else if (n >= 3 && mid_initial && n <= 4)
        score = 0.8f; /* "Faina D. Yefremova" */
    else if (n >= 2 && n <= 3 && surname_shape(c->t + tk[b - 1].st, tk[b - 1].en - tk[b - 1].st))
        score = 0.75f; /* "Wisława Szczepańska" */
    else if (n >= 2 && known)
        score = 0.6f;
    else if (n == 2 && nonascii(c, tk[a]) + nonascii(c, tk[b - 1]) >= 1)
        score = 0.55f; /* "Krisztián Szöllösy": Latin letters with diacritics */
    else if (n >= 2)
        score = 0.35f;
    else if (known)
        score = (f0 & PII_NAME_COMMON) ? 0.4f : 0.3f;
    else
        score = 0.2f;
    size_t st = tk[a].st, en = tk[b - 1].en;
    /* A house number before or after: a street name, not a person. */
    size_t q = st;
    while (q > 0 && at(c, q - 1) == ' ')
        q--;
    if (q < st && q > 0 && is_digit(at(c, q - 1))) return;
    if (at(c, en) == ' ' && is_digit(at(c, en + 1))) return;
    if (at(c, en) == '\'' && (at(c, en + 1) | 0x20) == 't') return; /* "Don't" */
    /* A speaker label of a given name ("Mary: ..."); role labels ("Provost:",
     * "Clown:") are not names. */
    bool label1 = n == 1 && at(c, en) == ':' && (st == 0 || at(c, st - 1) == '\n');
    if (label1 && c->memo) {
        /* Other labels count when the text has two or more: a dialogue between named
         * people ("Leverett: ...\nDanielle: ..."), not a play's single speech. */
        name_memo_t *m = c->memo;
        if (!(f0 & PII_NAME_FIRST) && m->nlab < LAB_MAX) {
            m->lab[m->nlab][0] = st;
            m->lab[m->nlab++][1] = en;
        }
        m->nlab_all++;
    }
    label1 &= (f0 & PII_NAME_FIRST) != 0;
    if (n == 1 && known) {
        /* Neighbours in a list ("Eklund, Michael and Hodge") make a single known name
         * much more likely; a common first name alone is likely too. */
        bool list = false;
        if (at(c, en) == ',' || (at(c, en) == ' ' && at(c, en + 1) == 'a' && at(c, en + 2) == 'n' &&
                                 at(c, en + 3) == 'd' && at(c, en + 4) == ' '))
            list = neighbour_name(c, en, true);
        if (!list && st >= 2 &&
            (at(c, st - 2) == ',' || (st >= 5 && !memcmp(c->t + st - 5, " and ", 5))))
            list = neighbour_name(c, st, false);
        if (list && (f0 & PII_NAME_FIRST))
            score += 0.25f;
        else if ((f0 & PII_NAME_FIRST) && (f0 & PII_NAME_COMMON))
            score += 0.15f;
    }
    /* A speaker label at a line start ("Mary: ...", "Halldór: ..."). */
    if (label1) score += 0.35f;
    float thr = c->s->thr[PII_PERSON];
    /* Context only matters when it can move the score across the threshold. */
    /* A verb of a person right after the run: "Tomomi is from", "Enrico shouted".
     * Looked at first: one word forward is cheaper than three words back. */
    if (score < thr && score + 0.35f >= thr && n <= 3 && ctx_after(c, en)) score += 0.35f;
    if (score < thr && score + 0.35f >= thr && !sentence_start(c, st)) {
        /* below the threshold even with a weak word: only a strong one counts */
        uint8_t cf =
            ctx_before(c, st, score + 0.2f >= thr ? PII_CTX_STRONG | PII_CTX_WEAK : PII_CTX_STRONG);
        if (cf & PII_CTX_STRONG)
            score += 0.35f;
        else if (score + 0.2f >= thr && (cf & PII_CTX_WEAK))
            score += 0.2f;
    }
    /* A lone given name without a title, a speaker label or a word of a record
     * before it waits for identifying context elsewhere in the text (lone_add). */
    if (n == 1 && !tk[a].initial && (f0 & PII_NAME_FIRST) && !label1 && score >= thr &&
        !id_before(c, st)) {
        memo_note(c, tk, a, b, 0.0f);
        lone_add(c, score, st, en);
        return;
    }
    memo_note(c, tk, a, b, score);
    cand_add(c, PII_PERSON, score, st, en);
}

/* Skips a list separator at k (", ", ", and ", " and "); returns the next item's
 * start, or 0 when there is none. *and_seen is set by " and ". */
static size_t list_sep(const scan_ctx_t *c, size_t k, bool *and_seen)
{
    size_t j = k;
    if (at(c, j) == ',') j++;
    if (at(c, j) != ' ') return 0;
    j++;
    if (j + 4 <= c->len && !memcmp(c->t + j, "and ", 4)) {
        j += 4;
        *and_seen = true;
    }
    return j > k + 1 || at(c, k) == ',' ? j : 0;
}

/* A list of single capitalised words joined by commas and "and" ("founders: Eklund,
 * Michael and Hodge", "Marrero and Murphy were"): when at least half are census
 * names and nothing marks it as a firm or a place (a preposition before it, "Inc" or
 * "is a" after it, alone on its line), every item is a person. Returns the end of
 * the list when it was decided (its items recorded, or all left out as a firm or a
 * place), else 0. */
static size_t list_run(scan_ctx_t *c, size_t i)
{
    /* Only from the head of a list: the rest was decided with it. */
    if (i >= 2 && (at(c, i - 2) == ',' || (i >= 5 && !memcmp(c->t + i - 5, " and ", 5)))) return 0;
    size_t it[8][2];
    int n = 0, known = 0;
    bool and_seen = false, ini = false, firm = false;
    size_t k = i;
    while (n < 8) {
        size_t e = cap_token(c, k, &ini);
        if (e == k || ini) break;
        uint8_t f = name_flags(c, c->t + k, e - k);
        firm |= (f & (PII_NAME_STOP | PII_NAME_ORG)) != 0;
        known += (f & (PII_NAME_FIRST | PII_NAME_LAST)) ? 1 : surname_shape(c->t + k, e - k);
        it[n][0] = k;
        it[n++][1] = e;
        if (and_seen) break; /* the item after "and" is the last */
        size_t nx = list_sep(c, e, &and_seen);
        if (!nx) break;
        k = nx;
    }
    if (n < 2 || !and_seen) return 0;
    size_t st = it[0][0], en = it[n - 1][1];
    if (firm) return en; /* "Clark, Romero and Hall": a common word among the items */
    if (2 * known < n || (n == 2 && known < 2)) return 0;
    /* Alone on its line: a firm in a signature or address block. */
    size_t q = st;
    while (q > 0 && (at(c, q - 1) == ' ' || at(c, q - 1) == '>'))
        q--;
    if ((q == 0 || at(c, q - 1) == '\n') && (en == c->len || at(c, en) == '\n')) return en;
    /* Followed by an organisation word or "is a/an": a firm. */
    if (at(c, en) == ' ') {
        size_t w = en + 1, we = word_end(c, en + 1);
        if (we > w && (ctx_flags(c, c->t + w, we - w) & PII_NAME_ORG)) return en;
        if (w + 5 <= c->len && !memcmp(c->t + w, "is a", 4) &&
            !is_alpha(at(c, w + 4 + (at(c, w + 4) == 'n'))))
            return en;
    }
    /* After "at", "from", "of", "for", "with", "to", "by": a firm or a place. */
    size_t p = st;
    while (p > 0 && at(c, p - 1) == ' ')
        p--;
    size_t ws = p;
    while (ws > 0 && is_alpha(at(c, ws - 1)))
        ws--;
    static const char *const preps[] = {"at", "from", "of", "for", "with",
                                        "to", "by",   "in", "the", NULL};
    if (ws < p && word_in(c->t + ws, p - ws, preps, true)) return en;
    /* Three or more names together (a family, the founders of a firm) narrow down who
     * is meant; a pair ("Tom and Sue") is two lone names. */
    for (int j = 0; j < n; j++) {
        uint8_t f = name_flags(c, c->t + it[j][0], it[j][1] - it[j][0]);
        if (n == 2 && (f & PII_NAME_FIRST))
            lone_add(c, 0.6f, it[j][0], it[j][1]);
        else
            cand_add(c, PII_PERSON, 0.6f, it[j][0], it[j][1]);
    }
    if (c->memo)
        for (int j = 0; j < n && c->memo->nkept < MEMO_MAX; j++) {
            c->memo->kept[c->memo->nkept][0] = it[j][0];
            c->memo->kept[c->memo->nkept++][1] = it[j][1];
        }
    return en;
}

/* Reads the run of capitalised tokens starting at i (a capital or UTF-8 capital lead
 * byte), scores it and returns where the scan goes on. Inlined into the scan loop:
 * most capitals leave by the fast path below without a call. */
static size_t name_run(scan_ctx_t *c, size_t i, size_t e1, uint8_t f1, int nt);
static inline size_t name_at(scan_ctx_t *c, size_t i)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t len = c->len;
    if (i > 0 && (is_alnum(p[i - 1]) || p[i - 1] >= 0x80 || p[i - 1] == '_' || p[i - 1] == '@')) {
        /* Inside a word ("ROMEO", "McDonald", "iPhone"): skip the rest of it. */
        i++;
        while (i < len && (is_alnum(p[i]) || p[i] >= 0x80))
            i++;
        return i;
    }
    /* Fast path for the capitals that cannot start a name, most of them in prose:
     * a common word alone ("The", "And", "That's"), the pronoun "I", an all-capitals
     * word ("ROMEO:"), a word that is no census name at the start of a verse line.
     * The lowercase body is measured 16 bytes at a time and the word looked up in the
     * word cache; such a word not followed by another capitalised word is passed
     * over without reading a run. Any other single word goes on to scoring without
     * being read again. */
    size_t e1 = 0;
    uint8_t f1 = 0;
    int nt = 0;
    if (i + 18 <= len && is_upper(p[i])) { /* p[e] below is at most p[i + 17] */
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + i + 1)), _mm_set1_epi8('a'));
        unsigned low =
            (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(25)), v));
        size_t body = (size_t)__builtin_ctz(~low | 0x10000u), e = i + 1 + body;
        unsigned char t = p[e];
        if (body == 0 && is_upper(t)) {
            /* "ROMEO", "NASA": no name token starts inside it */
            while (e < len && (is_alnum(p[e]) || p[e] >= 0x80))
                e++;
            return e;
        }
        /* Where cap_token would end the word too: not inside "Jean-Luc", "Krisztián". */
        bool ends = body < 16 && t < 0x80 && !is_alnum(t) && t != '_' && t != '@' &&
                    !(body > 0 && (t == '\'' || t == '-') && is_upper(at(c, e + 1)));
        if (ends) {
            bool cap_after =
                t == ' ' && (is_upper(at(c, e + 1)) || utf8_upper(p + e + 1, len - e - 1));
            /* Only another capitalised word continues the run. A common word at the
             * head of a list ("Well, Tom and Sue went") is passed over like any other,
             * and the list is read from its next item. */
            bool next_cap = cap_after;
            if (body == 0) {
                if (t != '.' && !cap_after) return e; /* "I", "I'll", "A:" */
            } else if (!next_cap) {
                uint8_t f = name_flags(c, c->t + i, e - i);
                if ((f & PII_NAME_STOP) ||
                    (!(f & (PII_NAME_FIRST | PII_NAME_LAST)) && line_goes_on(c, i)))
                    return e;
                e1 = e;
                f1 = f;
                nt = 1;
            }
        }
    }
    return name_run(c, i, e1, f1, nt);
}

/* The rest of name_at: reads the run (unless the fast path has read its one word
 * into tk[0], nt = 1), then scores it as a list or a run of tokens. */
static __attribute__((noinline)) size_t name_run(scan_ctx_t *c, size_t i, size_t e1, uint8_t f1,
                                                 int nt)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t len = c->len;
    tok_t tk[5];
    if (nt) tk[0] = (tok_t){i, e1, f1, false};
    if (nt == 0) {
        size_t k = i;
        while (nt < 5) {
            bool ini;
            size_t e = cap_token(c, k, &ini);
            if (e == k) break;
            tk[nt].st = k;
            tk[nt].en = e;
            tk[nt].initial = ini;
            tk[nt].flags = ini ? 0 : name_flags(c, c->t + k, e - k);
            nt++;
            if (e + 1 < len && p[e] == ' ' &&
                (is_upper(p[e + 1]) || utf8_upper(p + e + 1, len - e - 1)))
                k = e + 1;
            else
                break;
        }
    }
    if (nt == 0) {
        /* Not a capitalised word ("ROMEO", "X1"): skip the rest of it. */
        i++;
        while (i < len && (is_alnum(p[i]) || p[i] >= 0x80))
            i++;
        return i;
    }
    /* A list head: one word, or one after a common word ("The Clark, Romero and Hall
     * Orchestra"). */
    size_t le = tk[nt - 1].en;
    if ((nt == 1 || (nt == 2 && (tk[0].flags & PII_NAME_STOP))) && !tk[nt - 1].initial &&
        (at(c, le) == ',' || (at(c, le) == ' ' && at(c, le + 1) == 'a' && at(c, le + 2) == 'n' &&
                              at(c, le + 3) == 'd'))) {
        size_t lr = list_run(c, tk[nt - 1].st);
        if (lr) return lr;
    }
    person_run(c, tk, nt);
    return le > i ? le : i + 1;
}

/* Bit j set when p[j] is 'A'..'Z' or a UTF-8 Latin capital lead byte (0xC3..0xC5), for
 * the 64 bytes at p. */
static inline uint64_t caps64(const unsigned char *p)
{
    const __m128i a_ = _mm_set1_epi8('A'), c3 = _mm_set1_epi8((char)0xC3);
    const __m128i r25 = _mm_set1_epi8(25), r2 = _mm_set1_epi8(2);
    uint64_t m = 0;
    for (int q = 0; q < 4; q++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * q));
        __m128i x = _mm_sub_epi8(v, a_), y = _mm_sub_epi8(v, c3);
        __m128i b = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, r25), x),
                                 _mm_cmpeq_epi8(_mm_min_epu8(y, r2), y));
        m |= (uint64_t)(unsigned)_mm_movemask_epi8(b) << (16 * q);
    }
    return m;
}

/* Bit j set when p[j] is 'A'..'Z', for the 64 bytes at p. */
static inline uint64_t upper64(const unsigned char *p)
{
    const __m128i a_ = _mm_set1_epi8('A'), r25 = _mm_set1_epi8(25);
    uint64_t u = 0;
    for (int q = 0; q < 4; q++) {
        __m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * q)), a_);
        u |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, r25), x))
             << (16 * q);
    }
    return u;
}

/* Finds runs of capitalised tokens (up to five, single spaces, initials allowed) and
 * scores them against the gazetteer. The text is classified 64 bytes at a time into a
 * bit mask of capitals; only those bytes cost more than a few vector instructions,
 * and one branch per 64 bytes is left for clean prose to mispredict. */
static void scan_names(scan_ctx_t *c)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t len = c->len;
    name_memo_t *memo = c->memo;
    memo->nkept = memo->nleft = memo->nlab = memo->nlab_all = 0;
    size_t i = 0;
    for (size_t blk = 0; blk < len; blk += 64) {
        uint64_t m = 0;
        if (blk + 64 <= len) {
            m = caps64(p + blk);
            if ((m & m >> 1) && blk + 64 + 17 <= len) {
                /* Capitals next to another ASCII capital ("ROMEO:", "KING", "NASA")
                 * are passed over by name_at with no other effect: the first as an
                 * all-capitals word, the rest as capitals inside a word. Where the
                 * block has two capitals in a row (verse speaker labels; rare in
                 * prose), they are dropped here for a few instructions instead of a
                 * branchy call each; the next capital that starts a word is the same
                 * either way. */
                uint64_t up = upper64(p + blk);
                uint64_t nx = up >> 1 | (uint64_t)(p[blk + 64] >= 'A' && p[blk + 64] <= 'Z') << 63;
                uint64_t pv =
                    up << 1 | (uint64_t)(blk > 0 && p[blk - 1] >= 'A' && p[blk - 1] <= 'Z');
                m &= ~((up & nx) | pv);
            }
        } else if (len >= 64) {
            /* The tail of a longer text: the last 64 bytes, shifted to this block. */
            m = caps64(p + len - 64) >> (blk + 64 - len);
        } else {
            for (size_t j = 0; blk + j < len; j++) {
                unsigned char ch = p[blk + j];
                if ((ch >= 'A' && ch <= 'Z') || (ch >= 0xC3 && ch <= 0xC5)) m |= 1ull << j;
            }
        }
        /* The next capital is taken from the mask before the word at the last one
         * is decided, so its loads can start early; one read past it (below i) is
         * skipped by a branch that is nearly always not taken. */
        while (m) {
            size_t j = blk + (size_t)__builtin_ctzll(m);
            m &= m - 1;
            if (j < i) continue;
            i = name_at(c, j);
        }
    }
    if (memo->nlab_all >= 2)
        for (int k = 0; k < memo->nlab; k++)
            cand_add(c, PII_PERSON, 0.55f, memo->lab[k][0], memo->lab[k][1]);
    if (memo->nkept && memo->nleft) memo_resolve(c);
    /* Identifying context was found after some lone names were held: record them
     * (or, when more were seen than the memo holds, read the text again: every lone
     * name now goes straight in, and the merge folds the repeats). */
    if (c->sc->n > c->first && memo->npend) {
        for (int k = 0; k < memo->npend; k++)
            cand_add(c, PII_PERSON, memo->pend_score[k], memo->pend[k][0], memo->pend[k][1]);
        memo->npend = 0;
        if (memo->pend_over) {
            memo->pend_over = false;
            scan_names(c);
        }
    }
}

/* ================================================================== merge */

static int span_cmp(const void *a, const void *b)
{
    const pii_span_t *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->end != y->end) return x->end > y->end ? -1 : 1;
    return (int)x->type - (int)y->type;
}

/* Sorts candidates and resolves overlaps in place: within a chain of overlapping
 * spans the higher score wins, then the longer one. Returns the count kept. */
static size_t merge_spans(pii_span_t *v, size_t n)
{
    if (n == 0) return 0;
    if (n <= 32) {
        /* A 2 KB message holds a handful of candidates, mostly in order already: an
         * insertion sort beats qsort's calls through span_cmp. span_cmp orders all
         * but identical candidates, so the result is the same. */
        for (size_t i = 1; i < n; i++) {
            pii_span_t x = v[i];
            size_t j = i;
            while (j > 0 && span_cmp(&x, &v[j - 1]) < 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
    } else {
        qsort(v, n, sizeof *v, span_cmp);
    }
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        pii_span_t *last = &v[k];
        if (v[i].start < last->end) {
            bool better =
                v[i].score > last->score ||
                (v[i].score == last->score && v[i].end - v[i].start > last->end - last->start);
            if (better) *last = v[i];
            continue;
        }
        v[++k] = v[i];
    }
    return k + 1;
}

/* ================================================================== look-alikes */

/* Decodes one UTF-8 look-alike at p: writes its ASCII stand-in to *out (0 = drop the
 * character) and returns its byte length, or 0 when p is not a look-alike. */
static size_t lookalike_at(const unsigned char *p, size_t left, char *out)
{
    if (left >= 3 && p[0] == 0xEF && (p[1] == 0xBC || p[1] == 0xBD)) {
        unsigned cp = 0xFF00u + ((unsigned)(p[1] & 0x03) << 6) + (p[2] & 0x3F);
        if (cp >= 0xFF01 && cp <= 0xFF5E) {
            *out = (char)(cp - 0xFF01 + 0x21);
            return 3;
        }
    }
    if (left >= 2 && p[0] == 0xD9 && p[1] >= 0xA0 && p[1] <= 0xA9) {
        *out = (char)('0' + p[1] - 0xA0);
        return 2;
    }
    if (left >= 2 && p[0] == 0xDB && p[1] >= 0xB0 && p[1] <= 0xB9) {
        *out = (char)('0' + p[1] - 0xB0);
        return 2;
    }
    if (left >= 3 && p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x8B && p[2] <= 0x8D) {
        *out = 0;
        return 3;
    }
    if (left >= 3 && ((p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0xA0) ||
                      (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF))) {
        *out = 0;
        return 3;
    }
    if (left >= 3 && p[0] == 0xE2 &&
        ((p[1] == 0x80 && p[2] >= 0x90 && p[2] <= 0x95) || (p[1] == 0x88 && p[2] == 0x92))) {
        *out = '-';
        return 3;
    }
    if (left >= 2 && p[0] == 0xC2 && p[1] == 0xA0) {
        *out = ' ';
        return 2;
    }
    return 0;
}

static int scan_pass(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len);

/* Slow path for text holding look-alikes: builds a normalised copy with an offset
 * map, scans it, and maps the spans found back to the original offsets. */
static int scan_lookalikes(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len)
{
    if (len + 1 > sc->norm_cap) {
        sc->norm_cap = len + 1;
        sc->norm = mem_realloc(sc->norm, sc->norm_cap);
        sc->map = mem_realloc(sc->map, sc->norm_cap * sizeof *sc->map);
    }
    const unsigned char *p = (const unsigned char *)text;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        char ch;
        size_t l = lookalike_at(p + i, len - i, &ch);
        if (l) {
            if (ch) {
                sc->map[k] = i;
                sc->norm[k++] = ch;
            }
            i += l;
            continue;
        }
        sc->map[k] = i;
        sc->norm[k++] = text[i++];
    }
    sc->map[k] = len;
    size_t first = sc->n;
    int rc = scan_pass(s, sc, sc->norm, k);
    if (rc) return rc;
    for (size_t i = first; i < sc->n; i++) {
        size_t e = sc->cand[i].end;
        sc->cand[i].start = sc->map[sc->cand[i].start];
        /* end: one past the original bytes of the last normalised character */
        sc->cand[i].end = e < k ? sc->map[e] : len;
    }
    return 0;
}

/* ================================================================== scan */

/* One Hyperscan pass plus the name pass over text, appending candidates. */
static int scan_pass(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len)
{
    name_memo_t memo;
    memo.nkept = memo.nleft = memo.npend = 0;
    memo.pend_over = false;
    scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len, .memo = &memo, .first = sc->n};
    memset(sc->done, 0, sizeof sc->done);
    /* hs_scan takes an unsigned int length: scan huge inputs in overlapping blocks. */
    const size_t block = 1u << 30, overlap = 4096;
    for (size_t off = 0; off < len || (len == 0 && off == 0); off += block - overlap) {
        size_t n = len - off < block ? len - off : block;
        c.t = text + off;
        c.len = len - off;
        size_t first = sc->n;
        bool rare;
        c.v6_q = text_survey((const unsigned char *)text + off, n, &rare);
        c.v6_prev = c.v6_q - 2; /* the first pair is looked at whatever lies before it */
        c.v6_n = n;
        /* Without a digit or an '@' the triggers left out of db_prose would not fire, or
         * fire only where their extractors find nothing. Keywords read past a block's
         * end, so a text of more than one block takes every trigger. */
        const hs_database_t *db = rare || len > block ? s->db : s->db_prose;
        hs_error_t e = hs_scan(db, text + off, (unsigned)n, 0, sc->hs, on_match, &c);
        if (e != HS_SUCCESS) return SY_EINVAL;
        v6_scan(&c, n + 1);
        for (size_t i = first; i < sc->n; i++) {
            sc->cand[i].start += off;
            sc->cand[i].end += off;
        }
        if (off + n >= len) break;
        memset(sc->done, 0, sizeof sc->done);
    }
    c.t = text;
    c.len = len;
    if (s->names.slots) scan_names(&c);
    return 0;
}

int pii_scan(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len,
             pii_span_t *out, size_t max, size_t *n_found)
{
    if (!s || !sc || (!text && len)) return SY_EINVAL;
    if (!text) text = "";
    sc->n = 0;
    sc->lookalike = false;
    int rc = scan_pass(s, sc, text, len);
    if (!rc && sc->lookalike) rc = scan_lookalikes(s, sc, text, len);
    if (rc) return rc;
    size_t n = merge_spans(sc->cand, sc->n);
    if (out && n && max) memcpy(out, sc->cand, (n < max ? n : max) * sizeof *out);
    if (n_found) *n_found = n;
    return 0;
}

/* ================================================================== lifetime */

/* Compiles the triggers (prose: only those not `rare`) into *db. 0, or
 * SY_EINVAL with err filled. */
static int triggers_compile(bool prose, hs_database_t **db, char *err, size_t errlen)
{
    const char *exprs[N_TRIGGERS];
    unsigned flags[N_TRIGGERS], ids[N_TRIGGERS], n = 0;
    for (size_t i = 0; i < N_TRIGGERS; i++) {
        if (prose && triggers[i].rare) continue;
        exprs[n] = triggers[i].re;
        flags[n] = triggers[i].flags;
        ids[n++] = (unsigned)triggers[i].id;
    }
    hs_compile_error_t *ce = NULL;
    if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, db, &ce) != HS_SUCCESS) {
        snprintf(err, errlen, "pattern %d: %s", ce ? ce->expression : -1,
                 ce ? ce->message : "compile failed");
        hs_free_compile_error(ce);
        return SY_EINVAL;
    }
    return 0;
}

pii_scanner_t *pii_scanner_new(const pii_options_t *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    pii_scanner_t *s = mem_calloc(1, sizeof *s);
    float thr = opts && opts->min_score > 0 ? opts->min_score : 0.5f;
    for (int i = 0; i < PII_TYPE_COUNT; i++)
        s->thr[i] = thr;
    if (triggers_compile(false, &s->db, err, errlen) ||
        triggers_compile(true, &s->db_prose, err, errlen) ||
        (opts && opts->names_dir && pii_names_load(&s->names, opts->names_dir, err, errlen))) {
        hs_free_database(s->db); /* NULL: nothing to free */
        hs_free_database(s->db_prose);
        mem_free(s);
        return NULL;
    }
    return s;
}

void pii_scanner_free(pii_scanner_t *s)
{
    if (!s) return;
    hs_free_database(s->db);
    hs_free_database(s->db_prose);
    pii_names_deinit(&s->names);
    mem_free(s);
}

int pii_scanner_set_threshold(pii_scanner_t *s, pii_type_t t, float min_score)
{
    if (!s || (unsigned)t >= PII_TYPE_COUNT || min_score < 0 || min_score > 1) return SY_EINVAL;
    s->thr[t] = min_score;
    return 0;
}

pii_scratch_t *pii_scratch_new(const pii_scanner_t *s)
{
    if (!s) return NULL;
    pii_scratch_t *sc = mem_calloc(1, sizeof *sc);
    /* one scratch space large enough for both databases */
    if (hs_alloc_scratch(s->db, &sc->hs) != HS_SUCCESS ||
        hs_alloc_scratch(s->db_prose, &sc->hs) != HS_SUCCESS) {
        hs_free_scratch(sc->hs);
        mem_free(sc);
        return NULL;
    }
    return sc;
}

void pii_scratch_free(pii_scratch_t *sc)
{
    if (!sc) return;
    hs_free_scratch(sc->hs);
    mem_free(sc->cand);
    mem_free(sc->norm);
    mem_free(sc->map);
    mem_free(sc);
}

/* ================================================================== redact */

int pii_redact(const char *text, size_t len, const pii_span_t *spans, size_t n, buf_t *out)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t st = spans[i].start, en = spans[i].end;
        if (st < pos || en > len || st > en) return SY_EINVAL;
        int rc = buf_append(out, text + pos, st - pos);
        if (!rc) rc = buf_printf(out, "<%s>", pii_type_name(spans[i].type));
        if (rc) return rc;
        pos = en;
    }
    return buf_append(out, text + pos, len - pos);
}
