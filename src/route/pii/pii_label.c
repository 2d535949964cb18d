/* pii_label.c — the learned sequence labeller for PERSON and STREET_ADDRESS.
 *
 * Design. A linear model over hashed token features, decoded with Viterbi over five
 * tags (O, B-PER, I-PER, B-ADR, I-ADR) and trained as an averaged structured
 * perceptron (pii_label_train.c). It runs only inside candidate windows: a window
 * starts at a capitalised word that is not a lone common word ("The", "She"), takes
 * the house numbers right before it, and grows over what can continue a name or an
 * address (capitalised words, numbers, initials, particles such as "van", street
 * types, commas and line breaks before more of the same). Text with (nearly) no
 * capitals is read a second way, where windows start at census names, numbers and
 * street types. Clean prose therefore costs the capital mask and one cached lookup
 * per sentence-initial word; only windows pay for features.
 *
 * Features of a token (each hashed with its kind into one of 2^bits buckets of five
 * weights): the word folded, its shape, prefix and suffixes, capitalisation, census
 * first/last membership with frequency-rank buckets, the gazetteer's common-word,
 * organisation and context flags, the two words either side, their shapes, sentence
 * and line position, title cues, street-type words nearby, numbers, and the place in
 * the window. Both training and scanning go through label_windows and label_features
 * below, so the model sees at training exactly what the scanner gives it.
 *
 * Model file (little-endian), parsed from the caller's bytes:
 *   0   "SYPIILB1"        magic
 *   8   u32 version (1)   12  u32 bits (hash bits, 10..20)
 *   16  u32 tags (5)      20  u32 feature set (PII_LABEL_FEATSET)
 *   24  f32 scale         (weight = int16 * scale)
 *   28  i16 trans[6][5]   previous tag (5 = start) x tag
 *   88  i16 w[2^bits][5]
 *   end u32 FNV-1a 32 of every byte before it
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "route/pii/pii_internal.h"
#include "route/pii/pii_label.h"

/* ================================================================== model bytes */

static void model_tables(pii_label_model_t *m);

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t pii_label_checksum(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

int pii_label_model_load(pii_label_model_t *m, const void *bytes, size_t len, char *err,
                         size_t errlen)
{
    const unsigned char *p = bytes;
    memset(m, 0, sizeof *m);
    if (!p || len < PII_LABEL_HEADER + 4 || memcmp(p, PII_LABEL_MAGIC, 8)) {
        snprintf(err, errlen, "labeller model: not a model file (bad magic or %zu bytes)", len);
        return SY_EPARSE;
    }
    uint32_t ver = rd32(p + 8), bits = rd32(p + 12), tags = rd32(p + 16), fs = rd32(p + 20);
    if (ver != 1 || tags != PII_LABEL_TAGS || fs != PII_LABEL_FEATSET) {
        snprintf(err, errlen,
                 "labeller model: version %u, %u tags, feature set %u; this build reads "
                 "version 1, %d tags, feature set %d (retrain with `switchyard train pii`)",
                 ver, tags, fs, PII_LABEL_TAGS, PII_LABEL_FEATSET);
        return SY_EPARSE;
    }
    if (bits < 10 || bits > 20) {
        snprintf(err, errlen, "labeller model: hash bits %u out of range 10..20", bits);
        return SY_EPARSE;
    }
    size_t want = PII_LABEL_HEADER + ((size_t)1 << bits) * PII_LABEL_TAGS * 2 + 4;
    if (len != want) {
        snprintf(err, errlen, "labeller model: %zu bytes, expected %zu (truncated or padded)", len,
                 want);
        return SY_EPARSE;
    }
    if (pii_label_checksum(p, len - 4) != rd32(p + len - 4)) {
        snprintf(err, errlen, "labeller model: checksum mismatch (corrupt file)");
        return SY_EPARSE;
    }
    float scale;
    memcpy(&scale, p + 24, 4);
    if (!(scale > 0 && scale < 1e6f)) {
        snprintf(err, errlen, "labeller model: bad weight scale");
        return SY_EPARSE;
    }
    static _Atomic uint64_t loads;
    m->bits = bits;
    m->scale = scale;
    m->id = ++loads * 0x9E3779B97F4A7C15ull | 1; /* never 0: an empty cache slot's key */
    for (int i = 0; i < (PII_LABEL_TAGS + 1) * PII_LABEL_TAGS; i++) {
        int16_t v;
        memcpy(&v, p + 28 + 2 * i, 2);
        m->trans[i / PII_LABEL_TAGS][i % PII_LABEL_TAGS] = (float)v * scale;
    }
    size_t nw = ((size_t)1 << bits) * PII_LABEL_TAGS;
    /* 8 lanes of slack: the scanner loads rows 8 lanes at a time */
    m->w = mem_calloc(nw + 8, sizeof *m->w);
    memcpy(m->w, p + PII_LABEL_HEADER, nw * sizeof *m->w);
    model_tables(m);
    return 0;
}

void pii_label_model_deinit(pii_label_model_t *m)
{
    mem_free(m->w);
    memset(m, 0, sizeof *m);
}

/* ================================================================== tokens */

/* True when p[0] starts an uppercase letter (ASCII, or a Latin-1/Extended-A capital). */
static inline bool cap_at(const unsigned char *p, size_t left)
{
    if (is_upper(p[0])) return true;
    if (left < 2) return false;
    if (p[0] == 0xC3) return p[1] >= 0x80 && p[1] <= 0x9E && p[1] != 0x97;
    if (p[0] == 0xC4 || p[0] == 0xC5) {
        unsigned cp = ((unsigned)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        bool odd_caps = (cp >= 0x139 && cp <= 0x148) || cp >= 0x179;
        return ((cp & 1) != 0) == odd_caps;
    }
    return false;
}

/* Byte classes of the tokeniser and the window rules, one table load each: a letter
 * byte (ASCII letters and every byte of a UTF-8 sequence), a digit, the gaps, the
 * apostrophe, the sentence ends. */
enum {
    TC_LETTER = 1,
    TC_DIGIT = 2,
    TC_GAP = 4,     /* a space between tokens */
    TC_APOS = 8,    /* an apostrophe */
    TC_CHUNK = 16,  /* ends a chunk of tokens: a gap or a line break */
    TC_SENT0 = 32,  /* a token of it before a word starts a sentence: .!?:" (and NUL) */
    TC_SSTART = 64, /* before a word (spaces and quotes aside) starts one: .!?: \n \r (NUL) */
};
static const uint8_t tok_class_of[256] = {
    ['0' ... '9'] = TC_DIGIT,
    ['A' ... 'Z'] = TC_LETTER,
    ['a' ... 'z'] = TC_LETTER,
    [0x80 ... 0xFF] = TC_LETTER,
    [' '] = TC_GAP | TC_CHUNK,
    ['\t'] = TC_GAP | TC_CHUNK,
    ['\r'] = TC_GAP | TC_CHUNK | TC_SSTART,
    ['\n'] = TC_CHUNK | TC_SSTART,
    ['\''] = TC_APOS,
    ['.'] = TC_SENT0 | TC_SSTART,
    ['!'] = TC_SENT0 | TC_SSTART,
    ['?'] = TC_SENT0 | TC_SSTART,
    [':'] = TC_SENT0 | TC_SSTART,
    ['"'] = TC_SENT0,
    [0] = TC_SENT0 | TC_SSTART, /* strchr finds the terminator: kept as it was */
};

static bool letter_byte(unsigned char ch)
{
    return tok_class_of[ch] & TC_LETTER;
}

/* The first byte at or after k (below len) of no class in `cls`, which holds TC_LETTER
 * and maybe TC_DIGIT and TC_APOS; len if none. Sixteen bytes at a time: a word's end
 * costs no mispredicted loop exit per byte count. */
static inline size_t class_run_end(const unsigned char *p, size_t k, size_t len, unsigned cls)
{
    const __m128i az = _mm_set1_epi8('a'), r25 = _mm_set1_epi8(25), d0 = _mm_set1_epi8('0'),
                  r9 = _mm_set1_epi8(9), sp = _mm_set1_epi8(0x20), ap = _mm_set1_epi8('\'');
    for (; k + 16 <= len; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + k));
        __m128i x = _mm_sub_epi8(_mm_or_si128(v, sp), az);
        /* ASCII letters, and every byte of a UTF-8 sequence */
        __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, r25), x),
                                  _mm_cmplt_epi8(v, _mm_setzero_si128()));
        if (cls & TC_DIGIT) {
            __m128i d = _mm_sub_epi8(v, d0);
            ok = _mm_or_si128(ok, _mm_cmpeq_epi8(_mm_min_epu8(d, r9), d));
        }
        if (cls & TC_APOS) ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, ap));
        unsigned stop = ~(unsigned)_mm_movemask_epi8(ok) & 0xFFFFu;
        if (stop) return k + (size_t)__builtin_ctz(stop);
    }
    while (k < len && (tok_class_of[p[k]] & cls))
        k++;
    return k;
}

/* Reads the token at i (i not on a space): a word (letters and UTF-8, inner hyphens
 * and apostrophes, but "'s" after a word is a token of its own), a number (digits,
 * then letters: "4B", "12th"), a line break, or one other byte. */
static size_t tok_read(const char *t, size_t len, size_t i, lab_tok_t *o)
{
    const unsigned char *p = (const unsigned char *)t;
    size_t k = i;
    o->st = (uint32_t)i;
    o->info = 0;
    o->known = false;
    o->slot = NULL;
    if (is_digit(p[k])) {
        while (k < len && is_digit(p[k]))
            k++;
        while (k < len && is_alpha(p[k]) && k - i < 12)
            k++;
        o->kind = LT_NUM;
    } else if (letter_byte(p[k])) {
        o->kind = LT_WORD;
        o->cap = cap_at(p + k, len - k);
        while (k < len) {
            k = class_run_end(p, k, len, TC_LETTER | TC_DIGIT);
            if (k == len) break;
            if ((p[k] == '-' || p[k] == '\'') && k + 1 < len && letter_byte(p[k + 1])) {
                if (p[k] == '\'' && (p[k + 1] | 0x20) == 's' &&
                    (k + 2 >= len || !letter_byte(p[k + 2])))
                    break;
                k++;
                continue;
            }
            break;
        }
    } else if (p[k] == '\'' && k + 1 < len && (p[k + 1] | 0x20) == 's' &&
               (k + 2 >= len || !letter_byte(p[k + 2]))) {
        k += 2;
        o->kind = LT_POSS;
    } else {
        /* one ASCII byte (every byte of UTF-8 is a letter byte) */
        o->kind = p[k] == '\n' ? LT_LINE : LT_PUNCT;
        k++;
    }
    o->en = (uint32_t)k;
    if (o->kind != LT_WORD) o->cap = false;
    /* a word glued to a domain, an address or a path ("smith.com", "jo@", "/smith")
     * is part of a URL or an email: no name and no street */
    if (o->kind == LT_WORD &&
        ((k + 1 < len && (p[k] == '.' || p[k] == '@' || p[k] == '/') && is_alnum(p[k + 1])) ||
         (i > 0 && (p[i - 1] == '@' || p[i - 1] == '/' || p[i - 1] == '.' || p[i - 1] == '_'))))
        o->kind = LT_URL;
    return k;
}

/* Next token start at or after i (skips spaces, tabs, carriage returns), or len. */
static size_t tok_skip(const char *t, size_t len, size_t i)
{
    while (i < len && (tok_class_of[(unsigned char)t[i]] & TC_GAP))
        i++;
    return i;
}

/* Word classes the window builder and the features share, from the gazetteer: a
 * particle or list joiner ("van", "and"), a street type or unit word, a title. */
enum { LC_PART = 1, LC_STREET = 2, LC_TITLE = 4 };

/* ================================================================== windows */

static unsigned tok_class(const scan_ctx_t *c, const lab_tok_t *k);
static uint64_t tok_shape(const scan_ctx_t *c, const lab_tok_t *k);
static uint64_t tok_word(const scan_ctx_t *c, const lab_tok_t *k);

/* True when the word s[0, n) is a street name by its ending, as several languages
 * write them in one word ("Kirkegata", "Lindenweg", "Mellemvej", "Koskikatu"). */
static bool street_suffix(const char *s, size_t n)
{
    static const struct {
        const char *s;
        size_t n;
    } sfx[] = {
#define S(x) {x, sizeof x - 1}
        S("gata"),   S("gatan"),   S("vej"),  S("veien"), S("vegen"), S("weg"),   S("katu"),
        S("straße"), S("strasse"), S("laan"), S("utca"),  S("útja"),  S("gasse"),
#undef S
    };
    if (n < 6) return false;
    /* every ending above ends in one of these letters: most words stop here */
    unsigned char z = (unsigned char)(s[n - 1] | 0x20);
    if (z != 'a' && z != 'j' && z != 'n' && z != 'g' && z != 'u' && z != 'e') return false;
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        size_t m = sfx[i].n;
        if (n > m + 2 && (unsigned char)sfx[i].s[m - 1] == z &&
            !strncasecmp(s + n - m, sfx[i].s, m))
            return true;
    }
    return false;
}

/* Computes what the features read of a token: the gazetteer information (through the
 * scratch's lookup cache), the word and shape hashes, the class. */
static void tok_fill(const scan_ctx_t *c, lab_tok_t *k)
{
    if (k->kind == LT_WORD) {
        uint32_t info = pii_names_info_hot(&c->s->names, c->sc->hot, c->t + k->st, k->en - k->st);
        k->info = (uint16_t)info;
        k->wclass = (uint8_t)(info >> PII_NAME_CLASS_SHIFT);
        if (street_suffix(c->t + k->st, k->en - k->st)) k->wclass |= LC_STREET;
    } else {
        k->info = 0;
        k->wclass = 0;
    }
    k->wh = tok_word(c, k);
    k->sh = tok_shape(c, k);
    k->cls = tok_class(c, k);
    k->known = true;
}

/* The span memo, after the token cache, and its keys after it. */
static pii_span_memo_t *span_memo_of(pii_scratch_t *sc)
{
    return (pii_span_memo_t *)(sc->tok + (1u << PII_TOK_BITS));
}
static uint64_t *span_keys_of(pii_scratch_t *sc)
{
    return (uint64_t *)(span_memo_of(sc) + (1u << PII_SPAN_MEMO_BITS));
}

/* The spans label_window gave one window, as it gave them to pii_cand_add. */
typedef struct lab_rec {
    int n;
    bool over; /* more than PII_SPAN_MEMO_SPANS */
    pii_type_t type[PII_SPAN_MEMO_SPANS];
    float score[PII_SPAN_MEMO_SPANS];
    size_t st[PII_SPAN_MEMO_SPANS], en[PII_SPAN_MEMO_SPANS];
} lab_rec_t;

/* The token cache's slot holding token k (kind, cap and bytes read), filled on a miss
 * (k's information then computed by tok_fill); NULL for tokens longer than the key. */
static pii_tok_slot_t *tok_slot_fill(const scan_ctx_t *c, const lab_tok_t *k, pii_tok_slot_t *e,
                                     uint64_t k0, uint64_t k1, uint16_t meta);

static inline pii_tok_slot_t *tok_slot(const scan_ctx_t *c, const lab_tok_t *k)
{
    /* the bytes of a token of n bytes in the key's two words */
#define LO_MASK(n) ((n) >= 8 ? ~0ull : (1ull << (8 * (n)&63)) - 1)
#define HI_MASK(n) ((n) <= 8 ? 0 : (n) >= 16 ? ~0ull : (1ull << (8 * ((n)-8) & 63)) - 1)
#define MASKS(f)                                                                                   \
    f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8), f(9), f(10), f(11), f(12), f(13), f(14), \
        f(15), f(16)
    static const uint64_t lo_mask[PII_TOK_BYTES + 1] = {MASKS(LO_MASK)},
                                                  hi_mask[PII_TOK_BYTES + 1] = {MASKS(HI_MASK)};
#undef MASKS
#undef HI_MASK
#undef LO_MASK
    _Static_assert(PII_TOK_BYTES == 16, "two words of key");
    size_t n = k->en - k->st;
    if (n > PII_TOK_BYTES) return NULL;
    uint64_t w[2] = {0, 0};
    if (k->st + PII_TOK_BYTES <= c->len) {
        memcpy(w, c->t + k->st, PII_TOK_BYTES);
        w[0] &= lo_mask[n];
        w[1] &= hi_mask[n];
    } else {
        memcpy(w, c->t + k->st, n);
    }
    uint16_t meta = (uint16_t)(n | (unsigned)k->kind << 5 | (unsigned)k->cap << 8 | 1u << 9);
    /* the top bits of a product read every bit of its factor */
    uint64_t h = (w[0] ^ meta) * 0x9E3779B97F4A7C15ull + w[1] * 0xC2B2AE3D27D4EB4Full;
    pii_tok_slot_t *e = &c->sc->tok[h >> (64 - PII_TOK_BITS)];
    if (e->k0 == w[0] && e->k1 == w[1] && e->meta == meta) return e;
    return tok_slot_fill(c, k, e, w[0], w[1], meta);
}

/* Fills slot e with token k, whose key is k0, k1, meta; returns e. Out of line: the
 * lookup's hits stay lean. */
__attribute__((noinline)) static pii_tok_slot_t *tok_slot_fill(const scan_ctx_t *c,
                                                               const lab_tok_t *k,
                                                               pii_tok_slot_t *e, uint64_t k0,
                                                               uint64_t k1, uint16_t meta)
{
    lab_tok_t x = *k;
    tok_fill(c, &x);
    e->k0 = k0, e->k1 = k1, e->meta = meta;
    e->cls = x.cls, e->wh = x.wh, e->sh = x.sh, e->info = x.info, e->wclass = x.wclass;
    e->has_self = 0;
    e->gen++;
    return e;
}

/* Fills what the features read of a token, from the scratch's token cache. */
static void tok_info(const scan_ctx_t *c, lab_tok_t *k)
{
    pii_tok_slot_t *e = tok_slot(c, k);
    k->slot = e;
    if (!e) {
        tok_fill(c, k);
        return;
    }
    k->gen = e->gen;
    k->info = e->info, k->wclass = e->wclass, k->wh = e->wh, k->sh = e->sh, k->cls = e->cls;
    k->known = true;
}

/* True when token k may continue (or, lower, start) a window in lower-case text. */
static bool lower_cand(const lab_tok_t *k)
{
    if (k->kind == LT_NUM) return true;
    if (k->kind != LT_WORD) return false;
    if (k->wclass & (LC_STREET | LC_TITLE)) return true;
    return (k->info & (PII_NAME_FIRST | PII_NAME_LAST)) && !(k->info & PII_NAME_STOP);
}

/* True when token k, in lower-case text, may be a name on its own: a census given
 * name that is no common word. */
static bool lower_given(const lab_tok_t *k)
{
    return k->kind == LT_WORD && (k->info & PII_NAME_FIRST) && !(k->info & PII_NAME_STOP);
}

/* True when token k continues a window: capitalised words, numbers, street types and,
 * in lower-case text, census names. */
static bool cont_tok(const lab_tok_t *k, bool lower)
{
    if (k->kind == LT_NUM) return true;
    if (k->kind != LT_WORD) return false;
    return k->cap || (k->wclass & LC_STREET) || (lower && lower_cand(k));
}

/* Tokens of the bytes [s, j) (s a token start), the last 8 kept in before; returns
 * their count. */
static int ctx_tokens(const scan_ctx_t *c, size_t s, size_t j, lab_tok_t *before)
{
    int nb = 0;
    for (size_t i = tok_skip(c->t, j, s); i < j; i = tok_skip(c->t, j, i)) {
        if (nb == 8) {
            memmove(before, before + 1, 7 * sizeof *before);
            nb = 7;
        }
        i = tok_read(c->t, j, i, &before[nb++]);
    }
    return nb;
}

/* The tokens of the chunk [s, e) (bytes between gaps and line breaks) to out, as
 * ctx_tokens reads them (at most 8); returns their count. Prose is made of chunks of
 * one word of ASCII letters, maybe with one mark after it ("said", "Lily,", "end."),
 * or of one mark: those are read here at once, others by ctx_tokens. */
static int chunk_tokens(const scan_ctx_t *c, size_t s, size_t e, lab_tok_t *out)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t m = s;
    while (m < e && is_alpha(p[m]))
        m++;
    if (m + 1 < e || (m < e && (p[m] >= 0x80 || is_digit(p[m])))) return ctx_tokens(c, s, e, out);
    int n = 0;
    if (m > s) {
        lab_tok_t *o = &out[n++];
        o->st = (uint32_t)s, o->en = (uint32_t)m;
        o->info = 0, o->known = false, o->slot = NULL;
        o->cap = is_upper(p[s]);
        /* the mark after it ends the chunk: the word is glued to no domain after it */
        o->kind =
            s > 0 && (p[s - 1] == '@' || p[s - 1] == '/' || p[s - 1] == '.' || p[s - 1] == '_')
                ? LT_URL
                : LT_WORD;
    }
    if (m < e) {
        lab_tok_t *o = &out[n++];
        o->st = (uint32_t)m, o->en = (uint32_t)e;
        o->info = 0, o->known = false, o->slot = NULL;
        o->cap = false;
        o->kind = p[m] == '\n' ? LT_LINE : LT_PUNCT;
    }
    return n;
}

/* Of the tokens before[0, nb) before a seed, the first to label: up to three house
 * numbers or '#', and a lower-case street word between them and the seed ("12 rue
 * Name", "3 ul. Name"), before the fix-up that never starts at a '#' or a street
 * word. */
static int ctx_labelled(scan_ctx_t *c, lab_tok_t *before, int nb)
{
    int lab0 = nb, nnum = 0;
    while (lab0 > 0 && nnum < 3) {
        lab_tok_t *q = &before[lab0 - 1];
        if (q->kind == LT_NUM || (q->kind == LT_PUNCT && c->t[q->st] == '#')) {
            nnum++;
        } else if (nnum == 0 && lab0 >= 2 && lab0 >= nb - 2 &&
                   ((q->kind == LT_WORD && !q->cap) ||
                    (q->kind == LT_PUNCT && c->t[q->st] == '.' &&
                     before[lab0 - 2].kind == LT_WORD && !before[lab0 - 2].cap))) {
            lab_tok_t *wd = q->kind == LT_WORD ? q : &before[lab0 - 2];
            tok_info(c, wd);
            if (!(wd->wclass & LC_STREET)) break;
            if (q->kind == LT_PUNCT) lab0--;
            bool num = lab0 >= 2 && (before[lab0 - 2].kind == LT_NUM);
            if (!num) break;
        } else {
            break;
        }
        lab0--;
    }
    return lab0;
}

/* True for the bytes that end a chunk of tokens: no token holds one, and a token
 * after one reads nothing before it but that byte. */
static inline bool chunk_gap(char ch)
{
    return tok_class_of[(unsigned char)ch] & TC_CHUNK;
}

/* Reading the bytes from `from` gives the context before a seed (the definition
 * pii_label_ctx states); so does reading from the start of any chunk (bytes between
 * gaps, a line break a chunk of its own) once 8 tokens were read or ctx_labelled
 * stopped at a token with LAB_CTX before it (lab0 >= LAB_CTX: the test of `lab0 >= 2`
 * it makes came out as it would with more tokens, and the context is whole). The
 * chunks are read from the seed backwards until then: a few tokens instead of the 48
 * bytes before the seed. */
/* pii_label_ctx; also *seen, the first byte the reading looked at, and whether it
 * stopped at tokens enough (settled: it would have stopped there had it been given
 * bytes from further back). */
static int label_ctx(scan_ctx_t *c, size_t from, size_t j, bool whole, lab_tok_t *before, int *lab0,
                     size_t *seen, bool *settled)
{
    const char *t = c->t;
    *seen = from > 0 ? from - 1 : 0;
    *settled = false;
    if (whole) {
        int nb = ctx_tokens(c, from, j, before);
        *lab0 = ctx_labelled(c, before, nb);
        return nb;
    }
    int nb = 0;
    size_t s = j;
    for (;;) {
        while (s > from && (tok_class_of[(unsigned char)t[s - 1]] & TC_GAP))
            s--;
        size_t e = s;
        bool line = s > from && t[s - 1] == '\n';
        if (line)
            s--;
        else
            while (s > from && !chunk_gap(t[s - 1]))
                s--;
        if (e > s) {
            lab_tok_t chunk[8];
            int nc = chunk_tokens(c, s, e, chunk), keep = nc + nb > 8 ? 8 - nb : nc;
            /* a few tokens each: copied one by one, no library call */
            for (int q = nb - 1; q >= 0; q--)
                before[q + keep] = before[q];
            for (int q = 0; q < keep; q++)
                before[q] = chunk[nc - keep + q];
            nb += keep;
        }
        /* lab0 <= nb: with fewer than LAB_CTX tokens read, more are read */
        if (s > from && nb < LAB_CTX) continue;
        *lab0 = ctx_labelled(c, before, nb);
        if (s <= from || nb >= 8 || *lab0 >= LAB_CTX) {
            /* a line break is read alone; other chunks end at the byte before them,
             * at which a word's URL rule looks too */
            *seen = line || s == 0 ? s : s - 1;
            *settled = nb >= 8 || *lab0 >= LAB_CTX;
            return nb;
        }
    }
}

int pii_label_ctx(scan_ctx_t *c, size_t from, size_t j, bool whole, lab_tok_t *before, int *lab0)
{
    size_t seen;
    bool settled;
    return label_ctx(c, from, j, whole, before, lab0, &seen, &settled);
}

/* Reads the token at i into *k with its information, or takes it from the lookahead
 * *nx when that one was read at i; returns its end. */
static size_t tok_next(scan_ctx_t *c, size_t i, lab_tok_t *k, const lab_tok_t *nx)
{
    if (nx->kind && nx->st == i) {
        *k = *nx;
        return k->en;
    }
    size_t e = tok_read(c->t, c->len, i, k);
    tok_info(c, k);
    return e;
}

/* True when token k separates the items of a list or the lines of a block: a line
 * break, a comma, semicolon or '&', or the word "and". */
static bool cap_joiner(const scan_ctx_t *c, const lab_tok_t *k)
{
    if (k->kind == LT_LINE) return true;
    if (k->kind == LT_WORD) return k->en - k->st == 3 && !strncasecmp(c->t + k->st, "and", 3);
    if (k->kind != LT_PUNCT) return false;
    char ch = c->t[k->st];
    return ch == ',' || ch == ';' || ch == '&';
}

/* One past the last byte tok_read looked at for token k: a mark or a line break only
 * itself; others the byte after them too, and two more after a hyphen, an apostrophe,
 * '.', '@' or '/' there (the inner-hyphen, "'s" and URL rules). */
static inline size_t tok_seen(const scan_ctx_t *c, const lab_tok_t *k)
{
    size_t e = k->en;
    if (k->kind == LT_PUNCT || k->kind == LT_LINE) return e;
    if (e >= c->len) return e + 1;
    char ch = c->t[e];
    return ch == '-' || ch == '\'' || ch == '.' || ch == '@' || ch == '/' ? e + 3 : e + 1;
}

/* The earliest byte the context of the seed at j is read from: back (the end of the
 * window before) or 48 bytes before j, at a word's start. */
static size_t ctx_from(const scan_ctx_t *c, size_t back, size_t j)
{
    size_t from = j > back + 48 ? j - 48 : back;
    while (from > back && from < j && letter_byte((unsigned char)c->t[from - 1]))
        from++;
    return from;
}

/* What building a window read: the bytes [lo, hi) of the text, and whether they are
 * all it depends on (whole: its context reading stopped at tokens enough, not at
 * `from`, which then matters only where it lies past lo, and it read nothing at or
 * past the text's end). */
typedef struct lab_ext {
    size_t lo, hi;
    bool whole;
} lab_ext_t;

/* Builds the window whose first labelled token starts at j (a seed) and calls the
 * consumer. back: earliest byte context may be read from; words starting before force
 * continue the window whatever they are (a house number's street: "8 wressle road").
 * Returns the end of the window's last labelled token; what it read to x when not NULL
 * (the mixed-case reading only: no force, not lower). */
static size_t window_at(scan_ctx_t *c, size_t back, size_t j, bool lower, size_t force, lab_fn fn,
                        void *arg, lab_ext_t *x)
{
    lab_win_t w;
    w.n = 0;
    /* one past every byte a token read looked at (tok_seen), and the byte a gap ended
     * at */
    size_t hi = j;
#define SEEN(b) (hi = (b) > hi ? (b) : hi)
    /* context before: tokens of the bytes back..j (at most 48 of them, from a word's
     * start), the last LAB_CTX kept, plus up to three numbers (and '#') right before
     * the seed, which are labelled */
    size_t from = ctx_from(c, back, j), seen;
    bool settled;
    lab_tok_t before[8];
    int lab0, nb = label_ctx(c, from, j, false, before, &lab0, &seen, &settled);
    if (x) x->whole = false;
    while (lab0 < nb && before[lab0].kind != LT_NUM)
        lab0++; /* never start at a '#' or a street word */
    int ctx0 = lab0 > LAB_CTX ? lab0 - LAB_CTX : 0;
    for (int i = ctx0; i < nb; i++) {
        w.tok[w.n] = before[i];
        if (!before[i].known) tok_info(c, &w.tok[w.n]);
        w.n++;
    }
    w.a = lab0 - ctx0;
    /* labelled tokens from the seed (none when the seed is part of a URL) */
    lab_tok_t k, nx = {.kind = LT_NONE};
    size_t i = j, e = tok_read(c->t, c->len, j, &k);
    SEEN(tok_seen(c, &k));
    if (k.kind == LT_URL) return e;
    tok_info(c, &k);
    bool has_num = w.a < w.n, has_street = false, have = true; /* have: k holds the token at i */
    while (i < c->len && w.n < LAB_TOKS - LAB_CTX) {
        if (!have) e = tok_next(c, i, &k, &nx);
        SEEN(tok_seen(c, &k));
        have = true;
        if (w.n > w.a) {
            const lab_tok_t *prev = &w.tok[w.n - 1];
            bool ok = cont_tok(&k, lower) || (k.kind == LT_WORD && k.st < force);
            /* lower case: a given name takes the word after it ("tracy sukhorukova") */
            if (!ok && lower && k.kind == LT_WORD && w.n - w.a == 1 && prev->kind == LT_WORD &&
                (prev->info & PII_NAME_FIRST) && !(prev->info & PII_NAME_STOP) &&
                !(k.info & PII_NAME_STOP))
                ok = true;
            if (!ok && (k.kind == LT_PUNCT || k.kind == LT_LINE ||
                        (k.kind == LT_WORD && (k.wclass & LC_PART)))) {
                /* a joiner: only before more of the window */
                unsigned char ch = (unsigned char)c->t[k.st];
                size_t n2 = tok_skip(c->t, c->len, e);
                SEEN(n2 + 1);
                lab_tok_t k2;
                bool next = false;
                if (n2 < c->len) {
                    size_t e2 = tok_next(c, n2, &k2, &nx);
                    SEEN(tok_seen(c, &k2));
                    nx = k2; /* the next token read, unless a blank line is passed */
                    /* a blank line inside a postal block: look past it */
                    if (k.kind == LT_LINE && k2.kind == LT_LINE) {
                        n2 = tok_skip(c->t, c->len, e2);
                        SEEN(n2 + 1);
                        if (n2 < c->len) {
                            tok_read(c->t, c->len, n2, &k2);
                            SEEN(tok_seen(c, &k2));
                            tok_info(c, &k2);
                        }
                    }
                    next = cont_tok(&k2, lower);
                }
                size_t pl = prev->en - prev->st;
                if (k.kind == LT_LINE)
                    ok = next && (has_num || has_street); /* the next line of a postal block */
                else if (k.kind == LT_WORD)
                    ok = next && k2.kind == LT_WORD;
                else if (ch == '.')
                    ok = prev->kind == LT_WORD && (pl == 1 || (pl <= 4 && prev->cap) ||
                                                   (prev->wclass & (LC_STREET | LC_TITLE)));
                else if (ch == ',' || ch == '-' || ch == '#' || ch == '&' || ch == '/')
                    ok = next;
                else if (ch == '\'')
                    ok = next && k2.kind == LT_WORD;
            }
            if (!ok) break;
        }
        has_num |= k.kind == LT_NUM;
        has_street |= k.kind == LT_WORD && (k.wclass & LC_STREET);
        w.tok[w.n++] = k;
        have = false;
        i = tok_skip(c->t, c->len, e);
        SEEN(i + 1);
    }
    /* A window cut at the token cap may end inside a name ("Elizabeth | Brown" in a long
     * list): it ends at its last line break, comma, semicolon, '&' or "and" instead, and
     * the next window starts at the name after it. */
    if (w.n == LAB_TOKS - LAB_CTX) {
        int q = w.n - 1;
        while (q > w.a && !cap_joiner(c, &w.tok[q]))
            q--;
        if (q > w.a) {
            w.n = q;
            i = w.tok[q].st;
            have = false;
        }
    }
    w.b = w.n;
    size_t end = w.tok[w.b - 1].en;
    /* context after: the token that ended the window first */
    for (int q = 0; q < LAB_CTX && i < c->len; q++) {
        if (!have) e = tok_next(c, i, &k, &nx);
        SEEN(tok_seen(c, &k));
        have = false;
        w.tok[w.n++] = k;
        i = tok_skip(c->t, c->len, e);
        if (q + 1 < LAB_CTX) SEEN(i + 1);
    }
#undef SEEN
    if (x) {
        x->lo = seen;
        x->hi = hi;
        x->whole = settled && w.a > 0 && hi <= c->len;
    }
    /* sentence start: the token before the first labelled one ends a sentence */
    w.sent0 = true;
    if (w.a > 0) {
        const lab_tok_t *pv = &w.tok[w.a - 1];
        unsigned char ch = (unsigned char)c->t[pv->st];
        w.sent0 = pv->kind == LT_LINE || (pv->kind == LT_PUNCT && (tok_class_of[ch] & TC_SENT0));
    } else {
        w.sent0 = from == 0; /* nothing before the seed but spaces */
    }
    w.lower = lower;
    /* In lower-case text a word alone that is a surname only ("plain", "found",
     * "hurt") is far more often a word than a name: a window there needs two
     * labelled tokens or a given name ("ben", "anna"; "rose" is a common word). */
    if (lower && w.b - w.a < 2 && !lower_given(&w.tok[w.a])) return end;
    fn(c, &w, arg);
    return end;
}

/* window_at for a seed of the mixed-case reading, through the scratch's span memo: a
 * window whose bytes read (its context, its tokens, their neighbours) are those of a
 * window built before gives that window's spans and end, at the same distance from
 * its seed. Only those bytes decide a window (its tokens, their gazetteer information,
 * its bounds and flags follow from them; `from` and `back` only where its context
 * reading reached them, which a memoized window's did not; the text's end only where
 * it was read), and with no validated value in the text (memo true) only the window
 * decides its spans. */
static size_t span_window(scan_ctx_t *c, size_t back, size_t j, lab_fn fn, void *arg, bool memo)
{
    const unsigned char *p = (const unsigned char *)c->t;
    /* seeds that open a line only: speaker labels, headings, list items and
     * signatures repeat with the bytes around them, a name inside a sentence seldom
     * does and would pay the memo's misses; every window the memo holds read the 8
     * bytes from j - 2 (two context tokens and a gap before, the seed and two tokens
     * after) */
    if (!memo || j < 2 || j + 6 > c->len || p[j - 1] != '\n')
        return window_at(c, back, j, false, 0, fn, arg, NULL);
    uint64_t key;
    memcpy(&key, p + j - 2, 8);
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - PII_SPAN_MEMO_BITS));
    uint64_t *mkey = &span_keys_of(c->sc)[slot];
    pii_span_memo_t *m = &span_memo_of(c->sc)[slot];
    size_t from = ctx_from(c, back, j);
    /* its context reading stopped at tokens enough at its first byte read, lo; with
     * from at or before lo, reading from here stops there too */
    if (*mkey == key && m->hi > m->lo && (ptrdiff_t)j + m->lo >= (ptrdiff_t)from &&
        j + (size_t)m->hi <= c->len && !memcmp(p + j + m->lo, m->bytes, (size_t)(m->hi - m->lo))) {
        for (int q = 0; q < m->n; q++)
            pii_cand_add(c, (pii_type_t)m->type[q], m->score[q], (size_t)((ptrdiff_t)j + m->st[q]),
                         (size_t)((ptrdiff_t)j + m->en[q]));
        return j + (size_t)m->end;
    }
    lab_rec_t rec = {.n = 0};
    lab_ext_t x;
    c->rec = &rec;
    size_t end = window_at(c, back, j, false, 0, fn, arg, &x);
    c->rec = NULL;
    if (x.whole && !rec.over && x.hi - x.lo <= PII_SPAN_MEMO_BYTES && end - j < 4096) {
        *mkey = key;
        m->lo = (int16_t)((ptrdiff_t)x.lo - (ptrdiff_t)j);
        m->hi = (int16_t)(x.hi - j);
        m->end = (int16_t)(end - j);
        m->n = (uint8_t)rec.n;
        for (int q = 0; q < rec.n; q++) {
            m->type[q] = (uint8_t)rec.type[q], m->score[q] = rec.score[q];
            m->st[q] = (int16_t)((ptrdiff_t)rec.st[q] - (ptrdiff_t)j);
            m->en[q] = (int16_t)((ptrdiff_t)rec.en[q] - (ptrdiff_t)j);
        }
        memcpy(m->bytes, p + x.lo, x.hi - x.lo);
    }
    return end;
}

/* True when the capital at j starts a word. */
static bool word_start(const unsigned char *p, size_t j)
{
    if (j == 0) return true;
    unsigned char b = p[j - 1];
    /* '<' too: a mask placeholder (<PERSON_1>) is not a name */
    return !(is_alnum(b) || b >= 0x80 || b == '\'' || b == '_' || b == '-' || b == '@' || b == '<');
}

/* True when the word at j opens a sentence or a line: nothing before it but spaces,
 * or a sentence end, a line break, a colon or an opening quote. */
static bool sent_start(const unsigned char *p, size_t j)
{
    while (j > 0 && (p[j - 1] == ' ' || p[j - 1] == '\t' || p[j - 1] == '"' || p[j - 1] == '\''))
        j--;
    return j == 0 || (tok_class_of[p[j - 1]] & TC_SSTART);
}

/* Bit j set when p[j] is 'A'..'Z' or a UTF-8 Latin capital lead byte. */
static uint64_t caps_block(const unsigned char *p, size_t n)
{
    if (n >= 64) return pii_caps64(p);
    uint64_t m = 0;
    for (size_t j = 0; j < n; j++)
        if ((p[j] >= 'A' && p[j] <= 'Z') || (p[j] >= 0xC3 && p[j] <= 0xC5)) m |= 1ull << j;
    return m;
}

/* The end of the head of the contraction p[j, e) ("I" of "I'll", "Let" of "Let's",
 * "Do" of "Don't"), or e when the word is none ("O'Brien"). */
static size_t contraction_head(const unsigned char *p, size_t j, size_t e)
{
    size_t q = j;
    while (q < e && p[q] != '\'')
        q++;
    if (q + 1 >= e) return e;
    size_t n = e - q - 1;
    unsigned char a = (unsigned char)(p[q + 1] | 0x20),
                  b = n > 1 ? (unsigned char)(p[q + 2] | 0x20) : 0;
    if (n == 1 && (a == 's' || a == 'm' || a == 'd')) return q;
    if (n == 2 && ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')))
        return q;
    if (n == 1 && a == 't' && q > j + 1 && (p[q - 1] | 0x20) == 'n') return q - 1;
    return e;
}

/* The option letter that opens the line starting at s: spaces, maybe '(', a capital
 * A..J, then '.', ')' or ':' and a space or the line's end ("B. 12", "(C) none",
 * "D: Paris"); its byte offset, with the letter and the byte after it in *ch and *pc.
 * len (no option) otherwise. */
static size_t option_letter(const unsigned char *p, size_t len, size_t s, unsigned char *ch,
                            unsigned char *pc)
{
    s = tok_skip((const char *)p, len, s);
    if (s < len && p[s] == '(') s++;
    if (s + 1 >= len || p[s] < 'A' || p[s] > 'J') return len;
    unsigned char q = p[s + 1];
    if (q != '.' && q != ')' && q != ':') return len;
    if (s + 2 < len && !chunk_gap((char)p[s + 2])) return len;
    *ch = p[s], *pc = q;
    return s;
}

/* True when the capital at j is the letter of a list of options ("A. 12\nB. 15\nC. 18"):
 * it opens its line as option_letter reads one, and the nearest line before or after
 * it that is not blank opens with the letter before or after it, written the same
 * way. Such a letter is no initial. */
static bool option_marker(const unsigned char *p, size_t len, size_t j)
{
    const size_t reach = 1024; /* bytes searched for the line before and after */
    size_t ls = j;
    while (ls > 0 && p[ls - 1] != '\n' && j - ls < 8)
        ls--;
    unsigned char ch, pc, c2, p2;
    if ((ls > 0 && p[ls - 1] != '\n') || option_letter(p, len, ls, &ch, &pc) != j) return false;
    /* the next line that holds more than spaces */
    size_t e = j;
    while (e < len && e - j < reach) {
        while (e < len && p[e] != '\n' && e - j < reach)
            e++;
        if (e >= len || p[e] != '\n') break;
        e++;
        size_t t = tok_skip((const char *)p, len, e);
        if (t < len && p[t] == '\n') continue; /* a blank line */
        if (option_letter(p, len, e, &c2, &p2) < len && c2 == ch + 1 && p2 == pc) return true;
        break;
    }
    /* the line before that holds more than spaces */
    size_t b = ls;
    while (b > 0 && ls - b < reach) {
        size_t s = b - 1; /* the line break ending the line before */
        while (s > 0 && p[s - 1] != '\n' && ls - s < reach)
            s--;
        if (tok_skip((const char *)p, b - 1, s) == b - 1 && s > 0) {
            b = s; /* a blank line */
            continue;
        }
        return option_letter(p, len, s, &c2, &p2) < len && c2 + 1 == ch && p2 == pc;
    }
    return false;
}

/* pii_label_windows; memo: through the span memo (see span_window). */
static void label_windows(scan_ctx_t *c, lab_fn fn, void *arg, bool memo)
{
    const unsigned char *p = (const unsigned char *)c->t;
    size_t len = c->len, i = 0, ncaps = 0;
    for (size_t blk = 0; blk < len; blk += 64) {
        uint64_t m = caps_block(p + blk, len - blk < 64 ? len - blk : 64);
        while (m) {
            size_t j = blk + (size_t)__builtin_ctzll(m);
            m &= m - 1;
            /* UTF-8 lead bytes of lower-case letters ("á", "ć") are in the mask too:
             * only capitals count towards "this text is written in lower case" */
            /* (the mask's ASCII bytes are capitals) */
            bool cap = p[j] < 0x80 || cap_at(p + j, len - j);
            ncaps += cap;
            if (j < i || !cap || !word_start(p, j)) continue;
            /* the letter of an option ("B. Normal saline") seeds nothing; the word
             * after it may */
            if (p[j] <= 'J' && j + 1 < len &&
                (p[j + 1] == '.' || p[j + 1] == ')' || p[j + 1] == ':') && option_marker(p, len, j))
                continue;
            /* a lone common word ("The", "She", "Once") seeds nothing unless a
             * capital or a number follows it */
            size_t e = class_run_end(p, j + 1, len, TC_LETTER);
            bool apos = e < len && p[e] == '\'';
            if (apos) e = class_run_end(p, e, len, TC_LETTER | TC_APOS);
            size_t h = e;
            uint8_t f = pii_name_flags(c, c->t + j, e - j);
            /* a contraction is read as its head: "I'll", "Let's", "Don't" */
            if (!f && apos && (h = contraction_head(p, j, e)) < e)
                f = pii_name_flags(c, c->t + j, h - j);
            /* at a sentence's or a line's start a common word is capitalised by the
             * grammar alone: "He", "But", "You" are census surnames too, but seed
             * nothing there unless a capital or a number follows (given names that
             * are words, "Lily", "Will", still do; not words of two letters, "In",
             * "My", "So", which the census holds as rare given names) */
            bool given = (f & PII_NAME_FIRST) && h - j > 2;
            if ((f & PII_NAME_STOP) &&
                ((f & (PII_NAME_FIRST | PII_NAME_LAST)) == 0 || (!given && sent_start(p, j)))) {
                size_t n2 = e < len && p[e] == ' ' ? e + 1 : e;
                /* the pronoun "I" is no name either: "And I", "If I'll" */
                if (n2 >= len || !(cap_at(p + n2, len - n2) || is_digit(p[n2])) ||
                    (p[n2] == 'I' && (n2 + 1 == len || !letter_byte(p[n2 + 1])))) {
                    i = e;
                    continue;
                }
            }
            i = span_window(c, i, j, fn, arg, memo);
        }
    }
    /* lower-case text: windows start at census names, numbers and street types */
    if (len < 8 || ncaps * 100 >= len) return;
    i = 0;
    size_t back = 0;
    for (i = tok_skip(c->t, len, 0); i < len;) {
        lab_tok_t k;
        size_t e = tok_read(c->t, len, i, &k);
        if (k.kind == LT_WORD && !k.cap) {
            tok_info(c, &k);
            if (lower_cand(&k) && !(k.wclass & LC_STREET)) {
                back = window_at(c, back, i, true, 0, fn, arg, NULL);
                i = tok_skip(c->t, len, back > e ? back : e);
                continue;
            }
        } else if (k.kind == LT_NUM) {
            /* a number with a street word within three words after it seeds a window
             * that runs at least to that word */
            size_t q = tok_skip(c->t, len, e), force = 0, last = 0;
            for (int s = 0; s < 3 && q < len && !force; s++) {
                lab_tok_t k2;
                size_t e2 = tok_read(c->t, len, q, &k2);
                /* or another number after one or two words ("46 velky pruhon 426") */
                if (k2.kind == LT_NUM && s > 0) force = last;
                if (k2.kind != LT_WORD) break;
                tok_info(c, &k2);
                if (k2.wclass & LC_STREET) force = e2;
                last = e2;
                q = tok_skip(c->t, len, e2);
            }
            if (force && i >= back) {
                back = window_at(c, back, i, true, force, fn, arg, NULL);
                i = tok_skip(c->t, len, back > e ? back : e);
                continue;
            }
        }
        i = tok_skip(c->t, len, e);
    }
}

void pii_label_windows(scan_ctx_t *c, lab_fn fn, void *arg)
{
    label_windows(c, fn, arg, false);
}

/* ================================================================== features */

static inline uint64_t fmix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

/* Hash of the folded bytes s[0..n) continuing h. */
static uint64_t fstr(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = fmix(h, fold((unsigned char)s[i]));
    return h;
}

/* Coarse class of a token for context features: kind, capitalisation, census. */
static unsigned tok_class(const scan_ctx_t *c, const lab_tok_t *k)
{
    if (k->kind == LT_NUM) return 1 + (k->en - k->st > 4 ? 1 : 0);
    if (k->kind == LT_LINE) return 3;
    if (k->kind == LT_POSS) return 4;
    if (k->kind == LT_URL) return 5 + 256 * 16;
    if (k->kind == LT_PUNCT) return 5 + (unsigned)(unsigned char)c->t[k->st] * 16;
    unsigned v = 6;
    if (k->cap) v += 1;
    if (k->info & PII_NAME_FIRST) v += 2;
    if (k->info & PII_NAME_LAST) v += 4;
    if (k->info & PII_NAME_STOP) v += 8;
    return v + (unsigned)k->wclass * 16;
}

/* Shape: X/x/d/other per byte, runs collapsed, at most 6. */
static uint64_t tok_shape(const scan_ctx_t *c, const lab_tok_t *k)
{
    uint64_t h = 0x5348;
    char last = 0;
    int n = 0;
    for (size_t i = k->st; i < k->en && n < 6; i++) {
        unsigned char b = (unsigned char)c->t[i];
        char s = is_upper(b) ? 'X' : is_lower(b) ? 'x' : is_digit(b) ? 'd' : b >= 0x80 ? 'u' : b;
        if (s == 'u' && (b & 0xC0) == 0x80) continue;
        if (s == last) continue;
        last = s;
        h = fmix(h, (unsigned char)s);
        n++;
    }
    return h;
}

static uint64_t tok_word(const scan_ctx_t *c, const lab_tok_t *k)
{
    if (k->kind == LT_NUM) return fmix(0x4e, k->en - k->st > 6 ? 6 : k->en - k->st);
    return fstr(0x57, c->t + k->st, k->en - k->st > 24 ? 24 : k->en - k->st);
}

/* Bucket of feature value f, the q-th feature of a token, among 2^bits. */
static inline uint32_t feat_bucket(uint64_t f, unsigned q, unsigned bits)
{
    return (uint32_t)(hash_mix(f * 0x9E3779B97F4A7C15ull + (uint64_t)q) >> (64 - bits));
}

/* The features of token k that read nothing but the token (and whether the window was
 * found in lower-case text): buckets to out, returns their count. */
static int feats_self(const scan_ctx_t *c, const lab_tok_t *k, bool lower, unsigned bits,
                      uint32_t *out)
{
    size_t len = k->en - k->st;
    const char *s = c->t + k->st;
    unsigned cls = k->cls;
    int n = 0;
    out[n++] = feat_bucket(1, 0, bits);
    out[n++] = feat_bucket(fmix(1, k->wh), 1, bits);
    out[n++] = feat_bucket(fmix(2, k->sh), 2, bits);
    out[n++] = feat_bucket(fmix(3, cls), 3, bits);
    out[n++] = feat_bucket(fstr(4, s + (len > 3 ? len - 3 : 0), len > 3 ? 3 : len), 4, bits);
    out[n++] = feat_bucket(fstr(5, s + (len > 2 ? len - 2 : 0), len > 2 ? 2 : len), 5, bits);
    out[n++] = feat_bucket(fstr(6, s, len > 3 ? 3 : len), 6, bits);
    out[n++] = feat_bucket(fmix(fmix(7, PII_NAME_FIRST_RANK(k->info)), PII_NAME_LAST_RANK(k->info)),
                           7, bits);
    out[n++] = feat_bucket(fmix(8, k->info & 0xff), 8, bits);
    out[n++] = feat_bucket(fmix(fmix(24, lower), cls), 24, bits);
    return n;
}

/* The features of token i of w that read its neighbours or the window: buckets to out,
 * returns their count. */
static int feats_ctx(const lab_win_t *w, int i, unsigned bits, uint32_t *out)
{
    const lab_tok_t *k = &w->tok[i];
    const lab_tok_t none = {.kind = LT_NONE, .sh = 0x5348};
    const lab_tok_t *p1 = i >= 1 ? &w->tok[i - 1] : &none, *p2 = i >= 2 ? &w->tok[i - 2] : &none;
    const lab_tok_t *n1 = i + 1 < w->n ? &w->tok[i + 1] : &none;
    const lab_tok_t *n2 = i + 2 < w->n ? &w->tok[i + 2] : &none;
    uint64_t f[PII_LABEL_NFEAT];
    uint8_t q[PII_LABEL_NFEAT];
    int n = 0;
    unsigned cls = k->cls, pc1 = p1->kind ? p1->cls : 0, nc1 = n1->kind ? n1->cls : 0;
#define F(id, v) (q[n] = (id), f[n++] = (v))
    F(9, p1->kind ? fmix(9, p1->wh) : 9);
    F(10, p2->kind ? fmix(10, p2->wh) : 10);
    F(11, n1->kind ? fmix(11, n1->wh) : 11);
    F(12, n2->kind ? fmix(12, n2->wh) : 12);
    F(13, fmix(fmix(13, pc1), cls));
    F(14, fmix(fmix(14, nc1), cls));
    F(15, fmix(15, n2->kind ? n2->cls : 0));
    F(16, fmix(16, p2->kind ? p2->cls : 0));
    bool sent = i == w->a ? w->sent0 : (p1->kind == LT_LINE);
    F(17, fmix(fmix(17, sent), k->cap));
    int pos = i - w->a, wl = w->b - w->a;
    F(18, fmix(fmix(18, pos > 3 ? 3 : pos), wl > 4 ? 4 : wl));
    bool st1 = n1->kind == LT_WORD && (n1->wclass & LC_STREET),
         st2 = n2->kind == LT_WORD && (n2->wclass & LC_STREET);
    F(19, fmix(fmix(19, st1), st2));
    F(20, fmix(fmix(20, p1->kind == LT_NUM), k->cap));
    F(21, fmix(21, (p1->kind == LT_WORD && (p1->wclass & LC_TITLE)) ||
                       (p2->kind == LT_WORD && (p2->wclass & LC_TITLE) && p1->kind == LT_PUNCT)));
    F(22, fmix(fmix(22, PII_NAME_FIRST_RANK(k->info)),
               n1->kind == LT_WORD ? PII_NAME_LAST_RANK(n1->info) : 7));
    F(23, fmix(fmix(23, p1->kind == LT_WORD ? PII_NAME_FIRST_RANK(p1->info) : 7),
               PII_NAME_LAST_RANK(k->info)));
    F(25, fmix(fmix(25, p1->sh), k->sh));
    F(26, fmix(26, n1->kind == LT_POSS));
    /* what surrounds the whole window, seen from each of its tokens */
    F(27, w->a > 0 ? fmix(27, w->tok[w->a - 1].wh) : 27);
    F(28, w->b < w->n ? fmix(28, w->tok[w->b].wh) : 28);
    F(29, fmix(fmix(29, w->a > 0 ? w->tok[w->a - 1].cls : 0), w->b < w->n ? w->tok[w->b].cls : 0));
#undef F
    for (int x = 0; x < n; x++)
        out[x] = feat_bucket(f[x], q[x], bits);
    return n;
}

int pii_label_features(const scan_ctx_t *c, const lab_win_t *w, int i, unsigned bits, uint32_t *out)
{
    int n = feats_self(c, &w->tok[i], w->lower, bits, out);
    return n + feats_ctx(w, i, bits, out + n);
}

/* Rows of pii_label_model_t.tab: the context features of few values, at their
 * value's index. */
enum {
    TAB_SENT = 0,    /* 17: (sentence start, capital), 2 x 2 */
    TAB_POS = 4,     /* 18: (position in the window 0..3, labelled length 1..4), 4 x 5 */
    TAB_STREET = 24, /* 19: (street word one ahead, two ahead), 2 x 2 */
    TAB_NUM = 28,    /* 20: (number before, capital), 2 x 2 */
    TAB_TITLE = 32,  /* 21: title before, 2 */
    TAB_FL = 34,     /* 22: (first-name rank, next word's last-name rank or 7), 8 x 8 */
    TAB_LF = 98,     /* 23: (previous word's first-name rank or 7, last-name rank), 8 x 8 */
    TAB_POSS = 162,  /* 26: possessive after, 2 */
    TAB_N = 164
};
_Static_assert(sizeof((pii_label_model_t *)0)->tab / sizeof *((pii_label_model_t *)0)->tab == TAB_N,
               "tab rows");

static void tab_set(pii_label_model_t *m, int row, uint64_t f, unsigned q)
{
    memcpy(m->tab[row], m->w + (size_t)feat_bucket(f, q, m->bits) * PII_LABEL_TAGS,
           PII_LABEL_TAGS * sizeof *m->tab[row]);
}

/* Copies the rows of every value of the few-valued context features into m->tab, with
 * the values hashed exactly as feats_ctx hashes them. */
static void model_tables(pii_label_model_t *m)
{
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            tab_set(m, TAB_SENT + 2 * a + b, fmix(fmix(17, a), b), 17);
            tab_set(m, TAB_STREET + 2 * a + b, fmix(fmix(19, a), b), 19);
            tab_set(m, TAB_NUM + 2 * a + b, fmix(fmix(20, a), b), 20);
        }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b <= 4; b++)
            tab_set(m, TAB_POS + 5 * a + b, fmix(fmix(18, a), b), 18);
    for (int a = 0; a < 2; a++) {
        tab_set(m, TAB_TITLE + a, fmix(21, a), 21);
        tab_set(m, TAB_POSS + a, fmix(26, a), 26);
    }
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 8; b++) {
            tab_set(m, TAB_FL + 8 * a + b, fmix(fmix(22, a), b), 22);
            tab_set(m, TAB_LF + 8 * a + b, fmix(fmix(23, a), b), 23);
        }
}

/* Adds row x (PII_LABEL_TAGS weights) to acc. */
static inline void row_add(int32_t *acc, const int16_t *x)
{
    acc[0] += x[0], acc[1] += x[1], acc[2] += x[2], acc[3] += x[3], acc[4] += x[4];
}

/* Adds the weights of buckets feat[0, n) to acc. */
static inline void weights_add(const pii_label_model_t *m, const uint32_t *feat, int n,
                               int32_t *acc)
{
    _Static_assert(PII_LABEL_TAGS == 5, "unrolled for five tags");
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4];
    for (int q = 0; q < n; q++) {
        const int16_t *x = m->w + (size_t)feat[q] * PII_LABEL_TAGS;
        a0 += x[0], a1 += x[1], a2 += x[2], a3 += x[3], a4 += x[4];
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3, acc[4] = a4;
}

/* The summed weights of the features every token of w shares (pii_label_features 27,
 * 28, 29: what surrounds the window) to acc. */
static void window_weights(const lab_win_t *w, const pii_label_model_t *m, int32_t *acc)
{
    uint64_t f27 = w->a > 0 ? fmix(27, w->tok[w->a - 1].wh) : 27;
    uint64_t f28 = w->b < w->n ? fmix(28, w->tok[w->b].wh) : 28;
    uint64_t f29 =
        fmix(fmix(29, w->a > 0 ? w->tok[w->a - 1].cls : 0), w->b < w->n ? w->tok[w->b].cls : 0);
    memset(acc, 0, PII_LABEL_TAGS * sizeof *acc);
    row_add(acc, m->w + (size_t)feat_bucket(f27, 27, m->bits) * PII_LABEL_TAGS);
    row_add(acc, m->w + (size_t)feat_bucket(f28, 28, m->bits) * PII_LABEL_TAGS);
    row_add(acc, m->w + (size_t)feat_bucket(f29, 29, m->bits) * PII_LABEL_TAGS);
}

/* Adds the weights of token i's context features but the window's (feats_ctx 9..26)
 * and the window's sums around to acc: the few-valued ones from m->tab, the rest
 * hashed as feats_ctx hashes them. */
static void ctx_weights(const lab_win_t *w, int i, const pii_label_model_t *m,
                        const int32_t *around, int32_t *acc)
{
    const lab_tok_t *k = &w->tok[i];
    const lab_tok_t none = {.kind = LT_NONE, .sh = 0x5348};
    const lab_tok_t *p1 = i >= 1 ? &w->tok[i - 1] : &none, *p2 = i >= 2 ? &w->tok[i - 2] : &none;
    const lab_tok_t *n1 = i + 1 < w->n ? &w->tok[i + 1] : &none;
    const lab_tok_t *n2 = i + 2 < w->n ? &w->tok[i + 2] : &none;
    unsigned cls = k->cls, pc1 = p1->kind ? p1->cls : 0, nc1 = n1->kind ? n1->cls : 0;
    const unsigned bits = m->bits;
    uint32_t b[9];
    b[0] = feat_bucket(p1->kind ? fmix(9, p1->wh) : 9, 9, bits);
    b[1] = feat_bucket(p2->kind ? fmix(10, p2->wh) : 10, 10, bits);
    b[2] = feat_bucket(n1->kind ? fmix(11, n1->wh) : 11, 11, bits);
    b[3] = feat_bucket(n2->kind ? fmix(12, n2->wh) : 12, 12, bits);
    b[4] = feat_bucket(fmix(fmix(13, pc1), cls), 13, bits);
    b[5] = feat_bucket(fmix(fmix(14, nc1), cls), 14, bits);
    b[6] = feat_bucket(fmix(15, n2->kind ? n2->cls : 0), 15, bits);
    b[7] = feat_bucket(fmix(16, p2->kind ? p2->cls : 0), 16, bits);
    b[8] = feat_bucket(fmix(fmix(25, p1->sh), k->sh), 25, bits);
    bool sent = i == w->a ? w->sent0 : (p1->kind == LT_LINE);
    int pos = i - w->a, wl = w->b - w->a;
    bool st1 = n1->kind == LT_WORD && (n1->wclass & LC_STREET),
         st2 = n2->kind == LT_WORD && (n2->wclass & LC_STREET);
    bool title = (p1->kind == LT_WORD && (p1->wclass & LC_TITLE)) ||
                 (p2->kind == LT_WORD && (p2->wclass & LC_TITLE) && p1->kind == LT_PUNCT);
    static const int16_t zero[8];
    const int16_t *r[18];
    for (int q = 0; q < 9; q++)
        r[q] = m->w + (size_t)b[q] * PII_LABEL_TAGS;
    r[9] = m->tab[TAB_SENT + 2 * sent + k->cap];
    r[10] = m->tab[TAB_POS + 5 * (pos > 3 ? 3 : pos) + (wl > 4 ? 4 : wl)];
    r[11] = m->tab[TAB_STREET + 2 * st1 + st2];
    r[12] = m->tab[TAB_NUM + 2 * (p1->kind == LT_NUM) + k->cap];
    r[13] = m->tab[TAB_TITLE + title];
    r[14] = m->tab[TAB_FL + 8 * PII_NAME_FIRST_RANK(k->info) +
                   (n1->kind == LT_WORD ? PII_NAME_LAST_RANK(n1->info) : 7)];
    r[15] = m->tab[TAB_LF + 8 * (p1->kind == LT_WORD ? PII_NAME_FIRST_RANK(p1->info) : 7) +
                   PII_NAME_LAST_RANK(k->info)];
    r[16] = m->tab[TAB_POSS + (n1->kind == LT_POSS)];
    r[17] = zero;
    /* two rows at a time: 8 lanes of each loaded (lanes 5..7 are not the row's), the
     * two interleaved and their lanes pair-added into 32 bits */
    const __m128i one = _mm_set1_epi16(1);
    __m128i lo = _mm_add_epi32(_mm_loadu_si128((const __m128i *)acc),
                               _mm_loadu_si128((const __m128i *)around)),
            hi = _mm_setzero_si128();
    for (int q = 0; q < 18; q += 2) {
        __m128i x = _mm_loadu_si128((const __m128i *)r[q]),
                y = _mm_loadu_si128((const __m128i *)r[q + 1]);
        lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(x, y), one));
        hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(x, y), one));
    }
    _mm_storeu_si128((__m128i *)acc, lo);
    acc[4] += around[4] + _mm_cvtsi128_si32(hi);
}

/* The summed weights of token k's own features, from the scratch's token cache when
 * it holds the token (lower-case windows, rare, are summed each time). */
static void self_weights(const scan_ctx_t *c, const lab_tok_t *k, bool lower, int32_t *acc)
{
    const pii_label_model_t *m = &c->s->label;
    uint32_t feat[PII_LABEL_NFEAT];
    /* the slot the token was read with, unless another token took it since */
    pii_tok_slot_t *e = lower ? NULL : k->slot && k->slot->gen == k->gen ? k->slot : tok_slot(c, k);
    if (!e) {
        memset(acc, 0, PII_LABEL_TAGS * sizeof *acc);
        weights_add(m, feat, feats_self(c, k, lower, m->bits, feat), acc);
        return;
    }
    if (!e->has_self) {
        memset(e->self, 0, sizeof e->self);
        weights_add(m, feat, feats_self(c, k, false, m->bits, feat), e->self);
        e->has_self = 1;
    }
    memcpy(acc, e->self, sizeof e->self);
}

/* ================================================================== decoding */

/* The confidence of a margin x >= 0: logistic(x). From x = 17 on expf(-x) is below
 * half a float's epsilon at 1 and the quotient is 1.0f exactly; expf is not called
 * there, as its underflow path is slow and a name's margin is often that large. */
static inline float margin_score(float x)
{
    return x >= 17.0f ? 1.0f : 1.0f / (1.0f + expf(-x));
}

/* Allowed transition: I-X only after B-X or I-X. */
static bool trans_ok(int from, int to)
{
    if (to == LT_I_PER) return from == LT_B_PER || from == LT_I_PER;
    if (to == LT_I_ADR) return from == LT_B_ADR || from == LT_I_ADR;
    return true;
}

/* Rows [from, n) of the Viterbi lattice over em under allow (dp[i][t]: the best score
 * of a path over tokens 0..i ending in tag t; bp, when not NULL, its tag before), from
 * row from - 1 given in dp: a path constrained from token `from` on shares the
 * unconstrained lattice's rows before it, computed by the same operations. */
static void lattice(const float (*em)[PII_LABEL_TAGS], int n, const float (*trans)[PII_LABEL_TAGS],
                    const uint8_t *allow, float (*dp)[PII_LABEL_TAGS], int (*bp)[PII_LABEL_TAGS],
                    int from)
{
    const float NEG = -1e30f;
    if (from == 0) {
        for (int t = 0; t < PII_LABEL_TAGS; t++) {
            bool ok = trans_ok(PII_LABEL_TAGS, t) && t != LT_I_PER && t != LT_I_ADR;
            dp[0][t] = ok && (allow[0] >> t & 1) ? trans[PII_LABEL_TAGS][t] + em[0][t] : NEG;
            if (bp) bp[0][t] = 0;
        }
        from = 1;
    }
    /* the tags each tag may follow (trans_ok), in order */
    static const uint8_t from_lo[PII_LABEL_TAGS] = {0, 0, LT_B_PER, 0, LT_B_ADR},
                         from_hi[PII_LABEL_TAGS] = {PII_LABEL_TAGS, PII_LABEL_TAGS, LT_I_PER + 1,
                                                    PII_LABEL_TAGS, LT_I_ADR + 1};
    for (int i = from; i < n; i++)
        for (int t = 0; t < PII_LABEL_TAGS; t++) {
            float best = NEG;
            int arg = 0;
            if (allow[i] >> t & 1)
                for (int u = from_lo[t]; u < from_hi[t]; u++) {
                    if (dp[i - 1][u] <= NEG) continue;
                    float v = dp[i - 1][u] + trans[u][t];
                    if (v > best) best = v, arg = u;
                }
            dp[i][t] = best > NEG ? best + em[i][t] : NEG;
            if (bp) bp[i][t] = arg;
        }
}

/* The best score in the last row of a lattice of n rows, and its tag in *arg. */
static float lattice_best(const float (*dp)[PII_LABEL_TAGS], int n, int *arg)
{
    int a = 0;
    for (int t = 1; t < PII_LABEL_TAGS; t++)
        if (dp[n - 1][t] > dp[n - 1][a]) a = t;
    *arg = a;
    return dp[n - 1][a];
}

/* pii_label_viterbi, its lattice left in dp. */
static float viterbi_dp(const float (*em)[PII_LABEL_TAGS], int n,
                        const float (*trans)[PII_LABEL_TAGS], const uint8_t *allow, int *tags,
                        float (*dp)[PII_LABEL_TAGS])
{
    int bp[LAB_TOKS][PII_LABEL_TAGS], arg;
    lattice(em, n, trans, allow, dp, bp, 0);
    float score = lattice_best((const float(*)[PII_LABEL_TAGS])dp, n, &arg);
    for (int i = n - 1; i >= 0; i--) {
        tags[i] = arg;
        arg = bp[i][arg];
    }
    return score;
}

float pii_label_viterbi(const float (*em)[PII_LABEL_TAGS], int n,
                        const float (*trans)[PII_LABEL_TAGS], const uint8_t *allow, int *tags)
{
    float dp[LAB_TOKS][PII_LABEL_TAGS];
    return viterbi_dp(em, n, trans, allow, tags, dp);
}

/* ================================================================== scanning */

/* Decodes window w with the scanner's model: the tags of its labelled tokens to tags,
 * and at each token tagged B-X the confidence of that entity to score (the margin of
 * the best labelling over the best with the entity's tokens outside any entity,
 * through a logistic). Returns false when every token is outside (tags then unset). */
void pii_label_emissions(scan_ctx_t *c, const lab_win_t *w, int32_t (*acc)[PII_LABEL_TAGS])
{
    const pii_label_model_t *m = &c->s->label;
    int32_t around[PII_LABEL_TAGS];
    window_weights(w, m, around);
    for (int i = 0; i < w->b - w->a; i++) {
        self_weights(c, &w->tok[w->a + i], w->lower, acc[i]);
        ctx_weights(w, w->a + i, m, around, acc[i]);
    }
}

bool pii_label_decode(scan_ctx_t *c, const lab_win_t *w, int *tags, float *score)
{
    const pii_label_model_t *m = &c->s->label;
    int n = w->b - w->a;
    float em[LAB_TOKS][PII_LABEL_TAGS];
    int32_t acc[LAB_TOKS][PII_LABEL_TAGS];
    pii_label_emissions(c, w, acc);
    if (n == 1) {
        /* pii_label_viterbi for one token: the best of O, B-PER, B-ADR, the first on a
         * tie (I-X cannot start); the alternative is O */
        float d0 = m->trans[PII_LABEL_TAGS][LT_O] + (float)acc[0][LT_O] * m->scale;
        float d1 = m->trans[PII_LABEL_TAGS][LT_B_PER] + (float)acc[0][LT_B_PER] * m->scale;
        float d3 = m->trans[PII_LABEL_TAGS][LT_B_ADR] + (float)acc[0][LT_B_ADR] * m->scale;
        float best = d1 > d0 ? d1 : d0;
        tags[0] = d1 > d0 ? LT_B_PER : LT_O;
        if (d3 > best) tags[0] = LT_B_ADR, best = d3;
        if (tags[0] == LT_O) return false;
        score[0] = margin_score(best - d0);
        return true;
    }
    for (int i = 0; i < n; i++)
        for (int t = 0; t < PII_LABEL_TAGS; t++)
            em[i][t] = (float)acc[i][t] * m->scale;
    uint8_t allow[LAB_TOKS];
    memset(allow, 0x1f, sizeof allow);
    float dp[LAB_TOKS][PII_LABEL_TAGS], alt_dp[LAB_TOKS][PII_LABEL_TAGS];
    const float(*tr)[PII_LABEL_TAGS] = (const float(*)[PII_LABEL_TAGS])m->trans;
    float best = viterbi_dp((const float(*)[PII_LABEL_TAGS])em, n, tr, allow, tags, dp);
    bool any = false;
    for (int i = 0; i < n;) {
        int t = tags[i];
        if (t != LT_B_PER && t != LT_B_ADR) {
            i++;
            continue;
        }
        int e = i + 1;
        while (e < n && tags[e] == t + 1)
            e++;
        /* the best path with the entity's tokens O: the lattice's rows before it are
         * the unconstrained ones */
        uint8_t al[LAB_TOKS];
        memset(al, 0x1f, (size_t)n);
        for (int q = i; q < e; q++)
            al[q] = 1u << LT_O;
        if (i > 0) memcpy(alt_dp[i - 1], dp[i - 1], sizeof *dp);
        lattice((const float(*)[PII_LABEL_TAGS])em, n, tr, al, alt_dp, NULL, i);
        int arg;
        float alt = lattice_best((const float(*)[PII_LABEL_TAGS])alt_dp, n, &arg);
        score[i] = margin_score(best - alt);
        any = true;
        i = e;
    }
    return any;
}

/* The values found before the labeller ran that a span of it must not cover (a phone,
 * an IBAN, a card: every type but PERSON and STREET_ADDRESS), sorted by start, in the
 * scratch's work space; the longest one's length. A span looks only at those starting at most
 * maxlen bytes before it, so a long text of many values and many names is not quadratic. */
typedef struct lab_val {
    size_t start, end, idx; /* idx: in c->sc->cand */
} lab_val_t;
typedef struct lab_vals {
    lab_val_t *v;
    size_t n, maxlen;
} lab_vals_t;

static int val_cmp(const void *a, const void *b)
{
    const lab_val_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Cuts the span of tokens [*lo, *hi] of w (tags starting with t) against the values it
 * overlaps, the one found first each time, until none is left: an address running on
 * into a value keeps its part before it (one starting in a value, its part after); any
 * other span over a value is dropped (*lo > *hi). */
static void values_cut(const scan_ctx_t *c, const lab_vals_t *vs, const lab_win_t *w, int t,
                       int *plo, int *phi)
{
    const lab_tok_t *tk = w->tok + w->a;
    int lo = *plo, hi = *phi;
    size_t st = tk[lo].st, en = tk[hi].en;
    /* a value overlapping the span starts at most maxlen bytes before it */
    size_t a = 0, b = vs->n, from = st > vs->maxlen ? st - vs->maxlen : 0;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (vs->v[m].start < from)
            a = m + 1;
        else
            b = m;
    }
    while (lo <= hi) {
        size_t xi = SIZE_MAX;
        for (size_t q = a; q < vs->n && vs->v[q].start < en; q++)
            if (vs->v[q].end > st && vs->v[q].idx < xi) xi = vs->v[q].idx;
        if (xi == SIZE_MAX) break;
        const pii_span_t *x = &c->sc->cand[xi];
        /* an address running on into the phone number of the next line keeps its
         * part before the value (and one starting in a value, its part after) */
        if (t == LT_B_ADR && tk[lo].st < x->start) {
            while (hi >= lo && tk[hi].en > x->start)
                hi--;
        } else if (t == LT_B_ADR && tk[hi].en > x->end) {
            while (lo <= hi && tk[lo].st < x->end)
                lo++;
        } else {
            hi = lo - 1;
        }
        while (hi > lo && (tk[hi].kind == LT_PUNCT || tk[hi].kind == LT_LINE))
            hi--;
        while (lo < hi && (tk[lo].kind == LT_PUNCT || tk[lo].kind == LT_LINE))
            lo++;
        if (lo > hi) break;
        st = tk[lo].st, en = tk[hi].en;
    }
    *plo = lo, *phi = hi;
}

/* Decodes one window and records its spans. */
static void label_window(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    const lab_vals_t *vals = arg;
    int n = w->b - w->a;
    if (n <= 0) return;
    int tags[LAB_TOKS];
    float scores[LAB_TOKS];
    if (!pii_label_decode(c, w, tags, scores)) return;
    for (int i = 0; i < n;) {
        int t = tags[i];
        if (t != LT_B_PER && t != LT_B_ADR) {
            i++;
            continue;
        }
        int inner = t + 1, e = i + 1;
        while (e < n && tags[e] == inner)
            e++;
        /* trailing punctuation is never part of a span */
        int last = e - 1;
        while (last > i &&
               (w->tok[w->a + last].kind == LT_PUNCT || w->tok[w->a + last].kind == LT_LINE))
            last--;
        float score = scores[i];
        /* a span over a validated value (a phone, an IBAN, a card) is the labeller
         * reading digits as an address: the value stands, the span goes */
        int lo = i, hi = last;
        if (vals->n) values_cut(c, vals, w, t, &lo, &hi);
        /* an address names a house number or a street: a lone capitalised word the
         * model calls an address ("York", "Tom" in fiction) is none */
        if (t == LT_B_ADR && lo <= hi) {
            bool anchor = false;
            for (int q = lo; q <= hi && !anchor; q++) {
                const lab_tok_t *tq = &w->tok[w->a + q];
                anchor = tq->kind == LT_NUM || (tq->kind == LT_WORD && (tq->wclass & LC_STREET));
            }
            if (!anchor) hi = lo - 1;
        }
        /* in lower-case text one word is a name only when it is a given name ("the
         * young bird sang", "she felt hurt") */
        if (t == LT_B_PER && w->lower && hi == lo && !lower_given(&w->tok[w->a + lo])) hi = lo - 1;
        if (lo <= hi) {
            pii_type_t type = t == LT_B_PER ? PII_PERSON : PII_STREET_ADDRESS;
            size_t s0 = w->tok[w->a + lo].st, e0 = w->tok[w->a + hi].en;
            lab_rec_t *r = c->rec;
            if (r && r->n == PII_SPAN_MEMO_SPANS) r->over = true;
            if (r && !r->over)
                r->type[r->n] = type, r->score[r->n] = score, r->st[r->n] = s0, r->en[r->n++] = e0;
            pii_cand_add(c, type, score, s0, e0);
        }
        i = e;
    }
}

void pii_label_scan(scan_ctx_t *c, bool memo)
{
    /* the values found before the labeller ran: its spans are checked against these
     * only, not against each other (which made fiction quadratic in its names) */
    const pii_span_t *cand = c->sc->cand;
    size_t first = c->first, end = c->sc->n;
    lab_vals_t vals = {.n = 0};
    for (size_t q = first; q < end; q++)
        vals.n += cand[q].type != PII_PERSON && cand[q].type != PII_STREET_ADDRESS;
    if (vals.n) {
        vals.v = pii_scratch_work(c->sc, vals.n * sizeof *vals.v);
        size_t k = 0;
        for (size_t q = first; q < end; q++) {
            if (cand[q].type == PII_PERSON || cand[q].type == PII_STREET_ADDRESS) continue;
            vals.v[k++] = (lab_val_t){cand[q].start, cand[q].end, q};
            if (cand[q].end - cand[q].start > vals.maxlen)
                vals.maxlen = cand[q].end - cand[q].start;
        }
        qsort(vals.v, vals.n, sizeof *vals.v, val_cmp);
    }
    /* the cache's weight sums are of one model: a scratch that meets another forgets */
    if (c->sc->tok_model != c->s->label.id) {
        memset(c->sc->tok, 0, PII_TOK_MEM);
        c->sc->tok_model = c->s->label.id;
    }
    /* the span memo's spans are the windows' alone where nothing validated is there to
     * cut them (names announced before, "named Lily", cut nothing) */
    label_windows(c, label_window, &vals, memo && vals.n == 0);
}
