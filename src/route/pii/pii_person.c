/* pii_person.c — person names: runs of capitalised tokens scored against the census
 * gazetteer and the context words around them, names announced by a phrase ("my
 * name is"), lists of names, speaker labels, and lone given names held until the
 * text shows identifying context.
 */
#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_internal.h"

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
                    fl |= pii_ctx_flags_in(c, filt, c->t + st - 32 + wb[k], (size_t)wn[k]);
            return fl;
        }
        for (int k = 0; k < nw; k++)
            fl |= pii_ctx_flags_in(c, filt, c->t + st - 32 + wb[k], (size_t)wn[k]);
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
        if (e - p <= 12) f |= pii_ctx_flags_in(c, filt, c->t + p, e - p);
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
        uint8_t f = pii_name_flags(c, c->t + k, e - k);
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
    uint8_t f = pii_name_flags(c, c->t + k, e - k);
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
void pii_person_name_key(scan_ctx_t *c, size_t to)
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
            uint8_t f = pii_name_flags(c, c->t + k, e - k);
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
        !(pii_name_flags(c, c->t + st, word_end(c, st) - st) & (PII_NAME_FIRST | PII_NAME_LAST))) {
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
        (pii_name_flags(c, c->t + st, en - st) & PII_NAME_FIRST))
        lone_add(c, 0.75f, st, en);
    else
        pii_cand_add(c, PII_PERSON, 0.75f, st, en);
}

/* A lone given name ("Lily", "Timmy", "Romeo"): a given name on the census lists is
 * shared by thousands of people, so on its own it does not identify anyone. It is
 * recorded at once when the text already holds identifying context (another
 * entity, a full name, a titled or announced name), else held in the memo until
 * such context turns up; scan_names drops what is still held at the end. */
static void lone_add(scan_ctx_t *c, float score, size_t st, size_t en)
{
    if (score < c->s->thr[PII_PERSON]) return;
    if (c->sc->n > c->first) {
        pii_cand_add(c, PII_PERSON, score, st, en);
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
        if (hit) pii_cand_add(c, PII_PERSON, score, m->left[i][0], en);
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
        return e > k && pii_word_in(c->t + k, e - k, owned, true);
    }
    /* A vocative: "Jakobine, can I please speak to your boss?" */
    if (at(c, en) == ',' && at(c, en + 1) == ' ') {
        static const char *const asks[] = {"can", "could", "would", "will", "please", NULL};
        size_t k = en + 2, e = word_end(c, k);
        return e > k && pii_word_in(c->t + k, e - k, asks, true);
    }
    if (at(c, en) != ' ') return false;
    size_t k = en + 1, e = k;
    while (is_lower(at(c, e)))
        e++;
    if (e == k) return false;
    if (e - k == 2 && at(c, k) == 'i' && at(c, k + 1) == 's' && e + 5 <= c->len &&
        !memcmp(c->t + e, " from", 5))
        return true;
    return (pii_ctx_flags_in(c, c->s->names.ctx_filter_after, c->t + k, e - k) & PII_CTX_AFTER) !=
           0;
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
    uint8_t f = pii_ctx_flags(c, c->t + p, e - p);
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
    pii_cand_add(c, PII_PERSON, score, st, en);
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
        uint8_t f = pii_name_flags(c, c->t + k, e - k);
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
        if (we > w && (pii_ctx_flags(c, c->t + w, we - w) & PII_NAME_ORG)) return en;
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
    if (ws < p && pii_word_in(c->t + ws, p - ws, preps, true)) return en;
    /* Three or more names together (a family, the founders of a firm) narrow down who
     * is meant; a pair ("Tom and Sue") is two lone names. */
    for (int j = 0; j < n; j++) {
        uint8_t f = pii_name_flags(c, c->t + it[j][0], it[j][1] - it[j][0]);
        if (n == 2 && (f & PII_NAME_FIRST))
            lone_add(c, 0.6f, it[j][0], it[j][1]);
        else
            pii_cand_add(c, PII_PERSON, 0.6f, it[j][0], it[j][1]);
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
                uint8_t f = pii_name_flags(c, c->t + i, e - i);
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
            tk[nt].flags = ini ? 0 : pii_name_flags(c, c->t + k, e - k);
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
void pii_person_scan(scan_ctx_t *c)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t len = c->len;
    name_memo_t *memo = c->memo;
    memo->nkept = memo->nleft = memo->nlab = memo->nlab_all = 0;
    size_t i = 0;
    for (size_t blk = 0; blk < len; blk += 64) {
        uint64_t m = 0;
        if (blk + 64 <= len) {
            m = pii_caps64(p + blk);
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
            m = pii_caps64(p + len - 64) >> (blk + 64 - len);
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
            pii_cand_add(c, PII_PERSON, 0.55f, memo->lab[k][0], memo->lab[k][1]);
    if (memo->nkept && memo->nleft) memo_resolve(c);
    /* Identifying context was found after some lone names were held: record them
     * (or, when more were seen than the memo holds, read the text again: every lone
     * name now goes straight in, and the merge folds the repeats). */
    if (c->sc->n > c->first && memo->npend) {
        for (int k = 0; k < memo->npend; k++)
            pii_cand_add(c, PII_PERSON, memo->pend_score[k], memo->pend[k][0], memo->pend[k][1]);
        memo->npend = 0;
        if (memo->pend_over) {
            memo->pend_over = false;
            pii_person_scan(c);
        }
    }
}
