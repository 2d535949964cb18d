/* features.c — text statistics and hashed n-grams of a request (pure). */
#include "route/features.h"

#include <emmintrin.h>
#include <math.h>
#include <string.h>

#include "base/hash.h"
#include "route/router.h"

/* ---------------------------------------------------------------- taxonomy --- */

static const char *const task_names[] = {
#define ROUTE_TASK_STR(name, str, out) str,
    ROUTE_TASKS(ROUTE_TASK_STR)
#undef ROUTE_TASK_STR
};
static const uint32_t task_out[] = {
#define ROUTE_TASK_OUT(name, str, out) out,
    ROUTE_TASKS(ROUTE_TASK_OUT)
#undef ROUTE_TASK_OUT
};

const char *route_task_name(route_task_t t)
{
    return (unsigned)t < ROUTE_TASK_COUNT ? task_names[t] : "unknown";
}

int route_task_parse(const char *name)
{
    for (int i = 0; i < ROUTE_TASK_COUNT; i++)
        if (!strcmp(name, task_names[i])) return i;
    return -1;
}

uint32_t route_task_typical_out(route_task_t t)
{
    return (unsigned)t < ROUTE_TASK_COUNT ? task_out[t] : 200;
}

const char *route_script_name(route_script_t s)
{
    static const char *const n[] = {"latin", "cyrillic", "cjk", "arabic", "other"};
    return (unsigned)s <= ROUTE_SCRIPT_OTHER ? n[s] : "other";
}

/* ------------------------------------------------------------ statistics --- */

/* Counts non-ASCII codepoints by UTF-8 lead byte; a wrong encoding only skews the
 * estimate, never reads past n. */
uint32_t route_tokens_estimate(const char *s, size_t n)
{
    size_t ascii = 0, cps = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80)
            ascii++;
        else if (c >= 0xc0)
            cps++;
    }
    return (uint32_t)((ascii + 3) / 4 + cps);
}

/* Case-insensitive match of the lowercase word w (length k) at s[i]. */
static bool word_at(const char *s, size_t n, size_t i, const char *w, size_t k)
{
    if (i + k > n) return false;
    for (size_t j = 0; j < k; j++) {
        char c = s[i + j];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != w[j]) return false;
    }
    return true;
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Marker words; the first MARK_CODE are code markers, the rest math markers. */
#define MARK_CODE 12
static const char *const mark_words[] = {
    "def ",     "return",   "function", "#include", "import ", "class ",  "public ",
    "const ",   "python",   "program",  "code",     "=>",      "solve",   "calculate",
    "how many", "how much", "equation", "sum",      "percent", "compute",
};
#define MARK_N (sizeof mark_words / sizeof *mark_words)

/* Bit w of first_mask[c] is set when marker word w starts with byte c (either
 * case): one look-up per word start instead of a scan of the list. Keep in step
 * with mark_words. */
#define FM_C ((1u << 5) | (1u << 7) | (1u << 10) | (1u << 13) | (1u << 19))
#define FM_P ((1u << 6) | (1u << 8) | (1u << 9) | (1u << 18))
#define FM_S ((1u << 12) | (1u << 17))
#define FM_H ((1u << 14) | (1u << 15))
static const uint32_t first_mask[256] = {
    ['d'] = 1u << 0, ['D'] = 1u << 0, ['r'] = 1u << 1, ['R'] = 1u << 1,  ['f'] = 1u << 2,
    ['F'] = 1u << 2, ['#'] = 1u << 3, ['i'] = 1u << 4, ['I'] = 1u << 4,  ['c'] = FM_C,
    ['C'] = FM_C,    ['p'] = FM_P,    ['P'] = FM_P,    ['='] = 1u << 11, ['s'] = FM_S,
    ['S'] = FM_S,    ['h'] = FM_H,    ['H'] = FM_H,    ['e'] = 1u << 16, ['E'] = 1u << 16,
};

static size_t mark_len(size_t w)
{
    static const uint8_t len[] = {4, 6, 8, 8, 7, 6, 7, 6, 6, 7, 4, 2, 5, 9, 8, 8, 8, 3, 7, 7};
    _Static_assert(sizeof len == MARK_N, "one length per marker word");
    return len[w];
}

/* Markers in the text the answer responds to: one pass, counting code tokens,
 * math tokens and the script of non-ASCII codepoints. */
static void markers(route_features_t *f, const char *s, size_t n)
{
    /* The head of the text decides; the tail is read only for the question form. */
    size_t full = n;
    if (n > ROUTE_NGRAM_MAX_BYTES) n = ROUTE_NGRAM_MAX_BYTES;
    unsigned code = 0, math = 0, digits = 0, ops = 0;
    unsigned scr[5] = {0};
    bool prev_alnum = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c == '+' || c == '*' || c == '/' || c == '=' || c == '^')
            ops++;
        else if (c == '{' || c == '}' || c == ';')
            code++;
        else if (c == '`' && i + 2 < n && s[i + 1] == '`' && s[i + 2] == '`')
            code += 8;
        else if (c >= 0xc0) {
            /* Lead byte: 0xd0-0xd3 Cyrillic, 0xd8-0xdb Arabic, 0xe3-0xe9 CJK and kana. */
            if (c >= 0xd0 && c <= 0xd3)
                scr[ROUTE_SCRIPT_CYRILLIC]++;
            else if (c >= 0xd8 && c <= 0xdb)
                scr[ROUTE_SCRIPT_ARABIC]++;
            else if (c >= 0xe3 && c <= 0xe9)
                scr[ROUTE_SCRIPT_CJK]++;
            else if (c < 0xd0)
                scr[ROUTE_SCRIPT_LATIN]++;
            else
                scr[ROUTE_SCRIPT_OTHER]++;
        }
        if (!prev_alnum) {
            for (uint32_t m = first_mask[c]; m; m &= m - 1) {
                size_t w = (size_t)__builtin_ctz(m);
                if (word_at(s, n, i, mark_words[w], mark_len(w))) {
                    if (w < MARK_CODE)
                        code += 3;
                    else
                        math += 3;
                }
            }
        }
        prev_alnum = is_alnum(c);
    }
    float len = (float)(n ? n : 1);
    f->code_score = fminf(1.0f, (float)code * 40.0f / (len + 200.0f));
    f->math_score = fminf(1.0f, ((float)math * 3.0f + (float)digits + 2.0f * (float)ops) * 4.0f /
                                    (len + 100.0f));
    f->script = ROUTE_SCRIPT_LATIN;
    unsigned best = 0;
    for (int k = 0; k <= ROUTE_SCRIPT_OTHER; k++)
        if (scr[k] > best) best = scr[k], f->script = (route_script_t)k;

    /* Question form: the last non-space byte is '?', or the text opens with a
     * question word. */
    size_t e = full;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\t' || s[e - 1] == '\r'))
        e--;
    size_t b = 0;
    while (b < n && (s[b] == ' ' || s[b] == '\n'))
        b++;
    static const char *const qw[] = {"what ",  "why ", "how ", "who ", "when ", "where ",
                                     "which ", "is ",  "are ", "can ", "does ", "do "};
    f->question = e > 0 && s[e - 1] == '?';
    for (size_t k = 0; !f->question && k < sizeof qw / sizeof *qw; k++)
        if (word_at(s, n, b, qw[k], strlen(qw[k]))) f->question = true;
}

void route_features_text(route_features_t *f, const route_text_t *texts, size_t n_texts,
                         const route_text_t *last)
{
    size_t bytes = 0, non_ascii = 0;
    uint32_t toks = 0;
    for (size_t i = 0; i < n_texts; i++) {
        const unsigned char *s = (const unsigned char *)texts[i].text;
        size_t n = texts[i].len, hi = 0, lead = 0, j = 0;
        /* Eight bytes at a time: bit 7 set = non-ASCII, bits 7 and 6 = a lead byte. */
        for (; j + 8 <= n; j += 8) {
            uint64_t w;
            memcpy(&w, s + j, 8);
            /* One bit per byte moved to bit 0, summed by a multiply (the build
             * targets baseline x86-64: no popcnt instruction). */
            uint64_t h = (w & 0x8080808080808080ull) >> 7;
            uint64_t l = (w & (w << 1) & 0x8080808080808080ull) >> 7;
            hi += (size_t)((h * 0x0101010101010101ull) >> 56);
            lead += (size_t)((l * 0x0101010101010101ull) >> 56);
        }
        for (; j < n; j++)
            hi += s[j] >= 0x80, lead += s[j] >= 0xc0;
        bytes += n;
        non_ascii += hi;
        /* route_tokens_estimate, from the same pass; 4 tokens of message framing */
        toks += (uint32_t)((n - hi + 3) / 4 + lead) + 4;
    }
    f->prompt_bytes = bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
    f->est_tokens_in = toks;
    f->non_ascii = bytes ? (float)non_ascii / (float)bytes : 0.0f;
    if (last) markers(f, last->text, last->len);
    if (last) route_features_choices(f, last->text, last->len);
}

/* Whether s[0..n) holds the word w (uppercase, bounded by non-letters). */
static bool has_upper_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = s; n >= wl && (p = memmem(p, n - (size_t)(p - s), w, wl));) {
        bool lb = p == s || !(p[-1] >= 'A' && p[-1] <= 'Z');
        bool rb = (size_t)(p - s) + wl == n || !(p[wl] >= 'A' && p[wl] <= 'Z');
        if (lb && rb) return true;
        p += wl;
        if ((size_t)(p - s) >= n) break;
    }
    return false;
}

void route_features_choices(route_features_t *f, const char *text, size_t len)
{
    memset(f->choice, 0, sizeof f->choice);
    if (len > 16384) return; /* no multiple-choice question is that long */
    size_t stem = len, n = 0, nnum = 0, above = 0;
    double sum = 0, sum2 = 0, mx = 0, mn = 1e9;
    for (const char *p = text, *end = text + len; p && p + 3 < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        p = nl + 1;
        if (p + 3 > end || p[0] < 'A' || p[0] > 'H' || p[1] != '.' || p[2] != ' ') continue;
        if (p[0] != (char)('A' + n)) continue; /* options come in order */
        if (!n) stem = (size_t)(nl - text);
        const char *o = p + 3, *oe = memchr(o, '\n', (size_t)(end - o));
        if (!oe) oe = end;
        double l = (double)(oe - o);
        bool num = l > 0;
        for (const char *c = o; c < oe && num; c++)
            num = (*c >= '0' && *c <= '9') || strchr(" .,-+/%$()", *c);
        nnum += num;
        if (l >= 14 && memmem(o, (size_t)(oe - o), "of the above", 12)) above++;
        sum += l, sum2 += l * l;
        if (l > mx) mx = l;
        if (l < mn) mn = l;
        n++;
        p = oe;
    }
    if (n < 2) return;
    double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    float *c = f->choice;
    c[0] = 1.0f;
    c[1] = (float)n / 4.0f;
    c[2] = (float)(log1p(mean) / 5.0);
    c[3] = (float)(log1p(mx / (mn + 1.0)) / 3.0);
    c[4] = (float)(mean > 0 && var > 0 ? sqrt(var) / mean : 0.0);
    c[5] = (float)nnum / (float)n;
    c[6] = above ? 1.0f : 0.0f;
    c[7] = has_upper_word(text, stem, "NOT") || has_upper_word(text, stem, "EXCEPT") ||
                   has_upper_word(text, stem, "LEAST")
               ? 1.0f
               : 0.0f;
    c[8] = memmem(text, stem, "Statement 1", 11) ? 1.0f : 0.0f;
    c[9] = (float)(log1p((double)stem) / 8.0);
}

void route_features_dense(const route_features_t *f, float out[ROUTE_DENSE_DIM])
{
    out[0] = 1.0f;
    out[1] = log1pf((float)f->prompt_bytes) / 8.0f;
    out[2] = log1pf((float)f->est_tokens_in) / 8.0f;
    out[3] = log1pf((float)f->max_tokens) / 8.0f;
    out[4] = log1pf((float)f->pred_tokens_out) / 8.0f;
    out[5] = (float)(f->n_messages > 20 ? 20 : f->n_messages) / 10.0f;
    out[6] = f->code_score;
    out[7] = f->math_score;
    out[8] = f->question ? 1.0f : 0.0f;
    out[9] = f->non_ascii;
    out[10] = f->pii_types ? 1.0f : 0.0f;
    for (int k = 0; k < ROUTE_TASK_COUNT; k++)
        out[ROUTE_DENSE_BASE + k] = f->task_prob[k];
    out[ROUTE_DENSE_CLOUD] = f->cloud_score >= 0 ? f->cloud_score : 0.0f;
}

_Static_assert(ROUTE_CLOUD_STATS + 1 == ROUTE_DENSE_BASE, "every request statistic interacts");
_Static_assert(sizeof(((route_features_t *)0)->choice) == ROUTE_CHOICE_DIM * sizeof(float),
               "one slot per choice feature");

void route_features_dense_cloud(const route_features_t *f, float out[ROUTE_CLOUD_DENSE_DIM])
{
    float d[ROUTE_DENSE_DIM];
    route_features_dense(f, d);
    memcpy(out, d, ROUTE_DENSE_CLOUD * sizeof *out);
    float *x = out + ROUTE_DENSE_CLOUD;
    for (int j = 0; j < ROUTE_CLOUD_STATS; j++)
        for (int k = 0; k < ROUTE_TASK_COUNT; k++)
            x[j * ROUTE_TASK_COUNT + k] = d[1 + j] * f->task_prob[k];
    memcpy(x + ROUTE_CLOUD_STATS * ROUTE_TASK_COUNT, f->choice, sizeof f->choice);
}

/* ---------------------------------------------------------------- n-grams --- */

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

size_t route_ngrams(const char *text, size_t len, uint64_t seed, uint32_t n_buckets, uint32_t *out,
                    size_t max)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t mask = n_buckets - 1;
    if (len > ROUTE_NGRAM_MAX_BYTES) len = ROUTE_NGRAM_MAX_BYTES;
    size_t k = 0;
    uint64_t prev = seed ^ 0x2545f4914f6cdd1dull; /* start-of-text token */
    uint64_t cseed = hash_mix(seed + 0x9e3779b97f4a7c15ull);
    uint32_t tri = 0x20; /* last three normalized bytes, packed */
    unsigned char last = ' ';
    uint64_t wseed = hash_mix(seed ^ 0xcbf29ce484222325ull);
    size_t i = 0;
    while (i < len && k + 3 <= max) {
        unsigned char c = s[i];
        /* Character trigrams over the lowercased stream, whitespace collapsed. */
        unsigned char nc = (c == ' ' || c == '\t' || c == '\r') ? ' ' : lower(c);
        if (!(nc == ' ' && last == ' ')) {
            tri = ((tri << 8) | nc) & 0xffffff;
            if (i < ROUTE_NGRAM_CHAR_BYTES) out[k++] = (uint32_t)hash_mix(cseed ^ tri) & mask;
            last = nc;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            i++;
            continue;
        }
        /* Word tokens: an alphanumeric run, or one punctuation byte, hashed as
         * they are read (FNV-1a steps over the lowercased bytes from a seeded
         * start, finished by hash_mix): no copy, no second pass. */
        uint64_t h = wseed;
        if (is_alnum(c)) {
            size_t j = i;
            while (j < len && is_alnum(s[j])) {
                unsigned char d = lower(s[j]);
                h = (h ^ d) * 0x100000001b3ull;
                if (j > i) {
                    tri = ((tri << 8) | d) & 0xffffff;
                    if (j < ROUTE_NGRAM_CHAR_BYTES && k + 3 <= max)
                        out[k++] = (uint32_t)hash_mix(cseed ^ tri) & mask;
                    last = d;
                }
                j++;
            }
            i = j;
        } else {
            h = (h ^ c) * 0x100000001b3ull;
            i++;
        }
        h = hash_mix(h);
        if (k + 2 > max) break;
        out[k++] = (uint32_t)h & mask;
        out[k++] = (uint32_t)hash_mix(prev * 31 + h) & mask;
        prev = h;
    }
    return k;
}

/* Alphanumeric bytes (is_alnum) of 16 bytes as a bit mask: letters and digits by
 * signed compares (bytes >= 0x80 are negative, so neither), bytes >= 0x80 by their
 * sign bit. SSE2 is part of baseline x86-64. */
static inline uint32_t alnum16(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                   _mm_cmpgt_epi8(_mm_set1_epi8('z' + 1), l));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                  _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), v));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), v));
}

/* Hash of the word s[0..l) lowercased (bit 5 set in every byte: letters; digits
 * have it; bytes >= 0x80 change the same way in training and at decision time),
 * eight bytes per step; avail = readable bytes from s (loads past the word are
 * masked off). */
static inline uint64_t word_hash(const unsigned char *s, size_t l, size_t avail, uint64_t seed)
{
    uint64_t h = seed;
    size_t p = 0;
    for (; l - p > 8; p += 8) { /* all but the last eight bytes or fewer */
        uint64_t x;
        memcpy(&x, s + p, 8);
        h = (h ^ (x | 0x2020202020202020ull)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    size_t r = l - p;
    uint64_t x = 0;
    if (avail - p >= 8)
        memcpy(&x, s + p, 8);
    else
        memcpy(&x, s + p, r);
    x &= ~0ull >> (64 - 8 * r); /* words are alphanumeric: no zero byte, so x
                                   also says where the word ends */
    return hash_mix(h ^ (x | (0x2020202020202020ull >> (64 - 8 * r))));
}

size_t route_words(const char *text, size_t len, uint64_t seed, uint64_t *out, size_t max)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t avail = len;
    if (len > ROUTE_WORDS_MAX_BYTES) len = ROUTE_WORDS_MAX_BYTES;
    /* One bit per byte, 64 bytes per mask word; a partial last block is copied
     * into zeroed bytes first. The bit past the end stays clear. */
    uint64_t mk[ROUTE_WORDS_MAX_BYTES / 64 + 1];
    size_t nb = (len + 63) / 64;
    for (size_t b = 0; b < nb; b++) {
        const unsigned char *p = s + b * 64;
        unsigned char tmp[64];
        if (len - b * 64 < 64) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, p, len - b * 64);
            p = tmp;
        }
        mk[b] = (uint64_t)alnum16(p) | (uint64_t)alnum16(p + 16) << 16 |
                (uint64_t)alnum16(p + 32) << 32 | (uint64_t)alnum16(p + 48) << 48;
    }
    mk[nb] = 0;
    uint64_t wseed = hash_mix(seed ^ 0x6c65786963616c31ull), prev = 0;
    size_t k = 0, i = 0;
    while (i < len && k + 2 <= max) {
        /* next set bit at or after i: a word's start */
        size_t b = i / 64;
        uint64_t m = mk[b] & (~0ull << (i % 64));
        while (!m && ++b < nb)
            m = mk[b];
        if (!m) break;
        i = b * 64 + (size_t)__builtin_ctzll(m);
        /* next clear bit after it: the word's end */
        uint64_t z = ~mk[b] & (~0ull << (i % 64));
        while (!z)
            z = ~mk[++b]; /* mk[nb] = 0 stops it */
        size_t j = b * 64 + (size_t)__builtin_ctzll(z);
        if (j > len) j = len;
        if (j - i >= 2) {
            uint64_t h = word_hash(s + i, j - i, avail - i, wseed);
            out[k++] = h;
            /* both halves already mixed: one multiply pairs them */
            if (prev) out[k++] = prev * 0x9e3779b97f4a7c15ull ^ (h >> 7 | h << 57);
            prev = h;
        }
        i = j;
    }
    return k;
}
