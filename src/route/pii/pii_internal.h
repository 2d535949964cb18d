/* pii_internal.h — shared between the files of the PII module; not a public API. */
#ifndef SY_ROUTE_PII_INTERNAL_H
#define SY_ROUTE_PII_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "route/pii/pii.h"

/* Flags stored with each gazetteer entry. */
#define PII_NAME_FIRST  0x01 /* census first name (female or male) */
#define PII_NAME_LAST   0x02 /* census last name */
#define PII_NAME_COMMON 0x04 /* frequent in at least one list (census rank) */
#define PII_NAME_STOP   0x08 /* a common word: never a name on its own */
#define PII_CTX_STRONG  0x10 /* a word that announces a name ("Mr", "Dear", "named") */
#define PII_CTX_WEAK    0x20 /* a word often before a name ("by", "with", "said") */
#define PII_NAME_ORG    0x40 /* ends organisation and place names ("Inc", "Bay", "Street") */
#define PII_CTX_AFTER   0x80 /* a verb often after a name ("said", "lives", "shouted") */
/* Above the flags, each gazetteer entry keeps census frequency-rank buckets (1: rank
 * <= 100, 2: <= 500, 3: <= 2000, 4: <= 8000, 5: <= 30000, 6: beyond; 0: not on the
 * list), read by the labeller through pii_names_info. */
#define PII_NAME_FIRST_RANK(i) (((i) >> 8) & 7)
#define PII_NAME_LAST_RANK(i)  (((i) >> 11) & 7)
/* Above those, the labeller's word classes (pii_label.c LC_*): particle or list
 * joiner, street type or unit, title. */
#define PII_NAME_CLASS_SHIFT 14
#define PII_NAME_PART        (1u << 14)
#define PII_NAME_STREET      (1u << 15)
#define PII_NAME_TITLE       (1u << 16)
#define PII_NAME_INFO_BITS   17
#define PII_NAME_INFO_MASK   ((1ull << PII_NAME_INFO_BITS) - 1)
/* Context table only (the census bits have no use there): a word that makes a lone
 * given name identifying: a title ("Mr"), a word for the person's role in a record
 * ("customer", "contact"), "name" ("last name"), a closing ("regards"). */
#define PII_CTX_ID 0x01
/* Context table only: a word for a relative or someone close ("my kid Selma"). */
#define PII_CTX_REL 0x02

/* Context words (PII_CTX_*, PII_NAME_ORG), a few hundred bytes: looked up for the
 * lowercase words around a capitalised run without touching the big set. Key: the
 * first 8 bytes of the word, ASCII case folded, zero padded; len: its length. */
#define PII_CTX_BITS  10
#define PII_CTX_SLOTS (1u << PII_CTX_BITS)
typedef struct pii_ctx_slot {
    uint64_t key;
    uint8_t len, flags;
} pii_ctx_slot_t;

typedef struct pii_names {
    uint64_t *slots; /* (mask+1) entries: hash with low byte = flags; 0 = empty */
    size_t mask;     /* table size - 1 (power of two) */
    size_t count;    /* entries stored */
    pii_ctx_slot_t ctx[PII_CTX_SLOTS];
    /* One bit per 12-bit hash of the context words: most words looked up are none,
     * and this 512-byte filter answers them without touching the 16 KB table. */
    uint64_t ctx_filter[64];
    /* The same for the words with PII_CTX_STRONG, with PII_CTX_STRONG or PII_CTX_WEAK,
     * and with PII_CTX_AFTER, for the lookups where only those count: fewer words
     * pass them ("with", "by" and "at", frequent in prose, are weak context words). */
    uint64_t ctx_filter_strong[64], ctx_filter_near[64], ctx_filter_after[64];
} pii_names_t;

/* Folded first 8 bytes of s[0..n) (n >= 1), zero padded. */
static inline uint64_t pii_ctx_key(const char *s, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        w |= (uint64_t)((unsigned char)s[i] | 0x20) << (8 * i);
    return w;
}

/* Context flags of the word with key k (pii_ctx_key) and length n, 0 when it is none
 * or when it does not pass filter (g->ctx_filter, or one of the narrower filters:
 * then only the flags that filter was built from can be trusted). */
static inline uint8_t pii_ctx_probe(const pii_names_t *g, const uint64_t *filter, uint64_t k,
                                    size_t n)
{
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

/* Context flags of the word s[0..n), 0 when it is none. */
static inline uint8_t pii_ctx_lookup(const pii_names_t *g, const char *s, size_t n)
{
    if (n == 0 || n > 255) return 0;
    return pii_ctx_probe(g, g->ctx_filter, pii_ctx_key(s, n), n);
}

int pii_names_load(pii_names_t *g, const pii_census_t *c, char *err, size_t errlen);
void pii_names_deinit(pii_names_t *g);
uint8_t pii_names_lookup(const pii_names_t *g, const char *s, size_t n);
/* Flags, rank buckets (PII_NAME_*_RANK) and word classes (PII_NAME_PART, ...) of the word s[0..n),
 * 0 when absent. */
uint32_t pii_names_info(const pii_names_t *g, const char *s, size_t n);
/* Same, through a per-thread direct-mapped cache of (1 << PII_HOT_BITS) entries: the
 * frequent words of a text ("The", "She", "Lily") then cost an L1 hit. */
#define PII_HOT_BITS 12
uint8_t pii_names_lookup_hot(const pii_names_t *g, uint64_t *hot, const char *s, size_t n);
/* pii_names_info through the same cache. */
uint32_t pii_names_info_hot(const pii_names_t *g, uint64_t *hot, const char *s, size_t n);

/* ---- Scanner state shared by the files of the module ------------------------------ */

#include <emmintrin.h>
#include <hs/hs.h>
#include <stdbool.h>
#include <string.h>

/* Trigger ids of the Hyperscan database (pii.c); extractors keep per-trigger state. */
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

/* The labeller's model (pii_label.c), parsed from the caller's bytes. */
#define PII_LABEL_TAGS 5
typedef struct pii_label_model {
    int16_t *w;                                      /* (2^bits, PII_LABEL_TAGS) */
    unsigned bits;                                   /* hash bits of the feature table */
    float scale;                                     /* weight = w * scale */
    float trans[PII_LABEL_TAGS + 1][PII_LABEL_TAGS]; /* previous tag (last row: start) x tag */
    uint64_t id;                                     /* distinct per load: keys scratch caches */
    /* The weight rows of the context features with few values (sentence start,
     * position, street words ahead, number and title before, rank pairs, possessive),
     * copied out of w at load for every value: pii_label.c tab_* gives the layout.
     * Rows padded to 8 lanes (zeros) for vector loads. */
    int16_t tab[164][8];
} pii_label_model_t;

/* One entry of the labeller's per-scratch token cache, one cache line: what the
 * features read of a token that depends on nothing but its bytes, its kind and its
 * capital (gazetteer information, hashes, class), and the summed weights of its own
 * features (those that read no neighbour) in mixed-case text for the model the
 * scratch last scanned with. Keyed by exactly those: tokens of up to 16 bytes. */
#define PII_TOK_BITS  12
#define PII_TOK_BYTES 16
typedef struct pii_tok_slot {
    uint64_t k0, k1;              /* the token's bytes, zero padded */
    uint64_t wh, sh;              /* word and shape hashes */
    uint32_t cls;                 /* coarse class (pii_label.c tok_class) */
    uint16_t meta;                /* length | kind << 5 | cap << 8 | 1 << 9; 0: empty */
    uint16_t gen;                 /* fill count: a token pointing here checks it */
    uint16_t info;                /* gazetteer flags and rank buckets */
    uint8_t wclass;               /* particle, street type, title bits */
    uint8_t has_self;             /* self holds the sums */
    int32_t self[PII_LABEL_TAGS]; /* token-only weight sums (not lower-case), per tag */
} pii_tok_slot_t;
_Static_assert(sizeof(pii_tok_slot_t) == 64, "one cache line per token");

/* The labeller's span memo, after the token cache: the spans a window gave, keyed by
 * every byte building it read ([j + lo, j + hi) around its seed j), so a window met
 * again (a speaker label, a name in the same words) is not built at all. Filled and
 * used only where nothing validated lies in the text (the spans then depend on the
 * window alone) and only for windows whose context reading stopped at tokens enough
 * and whose bytes read lie before the text's end, and only for seeds that open a line
 * (span_window: those repeat). Direct-mapped by the 8 bytes from
 * j - 2 (which every such window reads); those keys are kept apart, in
 * PII_SPAN_MEMO_KEYS, so that a seed met for the first time reads 8 bytes of it. */
#define PII_SPAN_MEMO_BITS  9
#define PII_SPAN_MEMO_SPANS 3
#define PII_SPAN_MEMO_BYTES 92
typedef struct pii_span_memo {
    int16_t lo, hi;                    /* bytes read: [j + lo, j + hi); hi == lo: empty */
    int16_t end;                       /* what building returned, less j */
    uint8_t n;                         /* spans recorded */
    uint8_t type[PII_SPAN_MEMO_SPANS]; /* pii_type_t */
    int16_t st[PII_SPAN_MEMO_SPANS], en[PII_SPAN_MEMO_SPANS]; /* less j */
    float score[PII_SPAN_MEMO_SPANS];                         /* as given to pii_cand_add */
    uint8_t bytes[PII_SPAN_MEMO_BYTES];                       /* the bytes read (hi - lo) */
} pii_span_memo_t;
_Static_assert(sizeof(pii_span_memo_t) == 128, "two cache lines per window");
#define PII_SPAN_MEMO_KEYS (sizeof(uint64_t) << PII_SPAN_MEMO_BITS)
/* Bytes of the token cache, the span memo and its keys together. */
#define PII_TOK_MEM                                                                                \
    ((sizeof(pii_tok_slot_t) << PII_TOK_BITS) + (sizeof(pii_span_memo_t) << PII_SPAN_MEMO_BITS) +  \
     PII_SPAN_MEMO_KEYS)

struct pii_scanner {
    hs_database_t *db;         /* every trigger */
    hs_database_t *db_prose;   /* the triggers that fire without a digit or an '@' */
    pii_names_t names;         /* empty (slots NULL) without census lists */
    float thr[PII_TYPE_COUNT]; /* per-type threshold */
    pii_label_model_t label;   /* w NULL: no labeller (names by the rules) */
};

#define PII_MAX_CANDS (1u << 20) /* cap on candidates per scan */
#define PII_WORD_BITS 13         /* short-word cache entries (log2) */

struct pii_scratch {
    hs_scratch_t *hs;
    pii_span_t *cand; /* candidates before merging */
    size_t n, cap;
    size_t done[T_COUNT]; /* per trigger: text read up to here */
    bool lookalike;       /* saw look-alike characters: normalise and rescan */
    bool over;            /* a candidate was dropped at PII_MAX_CANDS */
    char *norm;           /* normalised copy (slow path) */
    size_t *map;          /* norm offset -> text offset, (norm_len + 1) */
    size_t norm_cap;
    void *work; /* pii_scratch_work: the labeller's value index, the merge's runs */
    size_t work_cap;
    uint64_t hot[1u << PII_HOT_BITS];   /* gazetteer lookup cache */
    uint64_t word[1u << PII_WORD_BITS]; /* short-word cache: folded word | flags << 56 */
    pii_tok_slot_t *tok;                /* labeller: token cache, 64-byte aligned, then the
                                           span memo (PII_TOK_MEM bytes in all) */
    void *tok_mem;                      /* its allocation */
    uint64_t tok_model;                 /* model id the cache's weight sums are of */
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
    struct lab_rec *rec;        /* labeller: where a window's spans are also recorded */
} scan_ctx_t;

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

/* ---- Character classes and word lookups -------------------------------------------- */

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
static inline uint8_t pii_name_flags(const scan_ctx_t *c, const char *s, size_t n)
{
    if (n - 1 < 7 && s + 8 <= c->t + c->len) {
        uint64_t w;
        memcpy(&w, s, 8);
        w = (w | 0x2020202020202020ull) & (~0ull >> (64 - 8 * n));
        size_t h = (size_t)((w * 0x9E3779B97F4A7C15ull) >> (64 - PII_WORD_BITS));
        uint64_t e = c->sc->word[h];
        if ((e & 0x00FFFFFFFFFFFFFFull) == w) return (uint8_t)(e >> 56);
        uint8_t f = pii_names_lookup(&c->s->names, s, n);
        c->sc->word[h] = w | (uint64_t)f << 56;
        return f;
    }
    return pii_names_lookup_hot(&c->s->names, c->sc->hot, s, n);
}

/* Context flags of the word s[0..n) inside the text (pii_ctx_probe with one 8-byte
 * load for the key where the text allows it), 0 for words that do not pass filter
 * (g->ctx_filter or one of the narrower ones: then only the flags it was built from
 * can be trusted). */
static inline uint8_t pii_ctx_flags_in(const scan_ctx_t *c, const uint64_t *filter, const char *s,
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
    return pii_ctx_probe(g, filter, k, n);
}

static inline uint8_t pii_ctx_flags(const scan_ctx_t *c, const char *s, size_t n)
{
    return pii_ctx_flags_in(c, c->s->names.ctx_filter, s, n);
}

/* Bit j set when p[j] is 'A'..'Z' or a UTF-8 Latin capital lead byte (0xC3..0xC5), for
 * the 64 bytes at p. */
static inline uint64_t pii_caps64(const unsigned char *p)
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

/* ---- Candidates and context (pii_ctx.c) -------------------------------------------- */

/* At least bytes of the scratch's work space, kept between scans (its contents are not:
 * one user at a time, the labeller's value index during the name pass, the merge's
 * runs after it). */
void *pii_scratch_work(pii_scratch_t *sc, size_t bytes);

/* Records a candidate of type at [st, en) when score passes the type's threshold. */
void pii_cand_add(scan_ctx_t *c, pii_type_t type, float score, size_t st, size_t en);
/* True when one of words (lowercase, NULL-terminated) starts a word within before
 * bytes before st or after bytes after en. */
bool pii_ctx_has(const scan_ctx_t *c, size_t st, size_t en, size_t before, size_t after,
                 const char *const *words);
/* True when s[0..n) equals (whole) or ends with (!whole) a word of list. */
bool pii_word_in(const char *s, size_t n, const char *const *list, bool whole);

/* ---- UTF-8 (pii_valid.c, tables in pii_digits.h) ---------------------------------- */

/* Decodes the UTF-8 character at p (left bytes); returns its length with the code
 * point in *cp, or 0 when the bytes are malformed. */
size_t pii_utf8_decode(const unsigned char *p, size_t left, uint32_t *cp);
/* Length of the decimal digit of any script (Unicode Nd) at p with its value in
 * *value, 0 when p holds none. */
size_t pii_utf8_digit(const unsigned char *p, size_t left, int *value);
/* Length of the non-ASCII letter, mark or decimal digit at p, 0 when none. */
size_t pii_utf8_word(const unsigned char *p, size_t left);

/* ---- Structured types (pii_extract.c) ---------------------------------------------- */

void pii_extract_email(scan_ctx_t *c, size_t to);
void pii_extract_num(scan_ctx_t *c, size_t to);
void pii_extract_secret(scan_ctx_t *c, int id, size_t to);
void pii_extract_keyword(scan_ctx_t *c, int id, size_t to);
/* IPv6 candidates ending before to (found in C, not by the trigger database). */
void pii_extract_v6(scan_ctx_t *c, size_t to);
/* Sets *rare when p[0, n) holds a digit or an '@'; returns the first colon pair. */
/* True when p[0, n) holds a decimal digit of a script other than ASCII. */
bool pii_text_has_nd(const unsigned char *p, size_t n);
size_t pii_text_survey(const unsigned char *p, size_t n, bool *rare);
/* Length of the month name at i, 0 when there is none. */
int pii_month_len(const scan_ctx_t *c, size_t i);

/* ---- Street addresses (pii_address.c) ---------------------------------------------- */

/* A house number at [st, en): looks for the street around it. */
void pii_address_number(scan_ctx_t *c, size_t st, size_t en);

/* ---- Person names (pii_person.c) --------------------------------------------------- */

/* After a phrase announcing a name ("my name is"), ending at to. */
void pii_person_name_key(scan_ctx_t *c, size_t to);
/* The name pass over the whole text. */
void pii_person_scan(scan_ctx_t *c);

#endif
