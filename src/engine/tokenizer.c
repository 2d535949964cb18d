/* tokenizer.c — SentencePiece-style and byte-level BPE tokenizers. See tokenizer.h. */
#include "engine/tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "engine/unicode_tables.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 ▁ */

struct tokenizer {
    tokenizer_kind_t kind;
    int n_vocab;
    char **piece;    /* (n_vocab) NUL-terminated, point into blob */
    uint32_t *len;   /* (n_vocab) bytes of each piece */
    float *score;    /* (n_vocab) */
    uint8_t *type;   /* (n_vocab) TOKENIZER_TYPE_* */
    char *blob;      /* owned storage of all pieces */
    uint32_t *slots; /* piece hash table: id + 1, 0 = empty; (n_slots) */
    size_t n_slots;  /* power of two */
    int bos, eos, unk, eot;
    bool add_bos, add_space_prefix;
    int byte_id[256]; /* id of each byte's token (<0xXX> or byte-level char), -1 */
    int *special;     /* ids of control/user pieces by first byte, longest first (n_special) */
    int n_special;
    int sp_first[257]; /* special[sp_first[b] .. sp_first[b + 1]) start with byte b */
    /* byte-level BPE only */
    char **merge; /* (n_merges) "left right" strings, owned by mblob */
    char *mblob;
    int n_merges;
    uint32_t *mslots; /* merge hash table: rank + 1 */
    size_t n_mslots;
    uint32_t byte_cp[256]; /* byte -> code point of the byte-level alphabet */
    bool llama3_pre;       /* pre-tokenizer variant */
    int pre_digits;        /* Llama-3 style split: digits per pre-token (3; qwen2: 1); 0: GPT-2 */
    bool ignore_merges;    /* a pre-token that is a whole piece is not merged (llama-bpe) */
    bool nfc;              /* text is NFC-normalised first (Qwen2's normalizer) */
};

/* ====================================================== construction ==== */

/* Finds the id of an exact piece through the open-addressing table. */
int tokenizer_find(const tokenizer_t *t, const char *s, size_t n)
{
    size_t mask = t->n_slots - 1;
    for (size_t i = hash_fnv1a(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = t->slots[i];
        if (!v) return -1;
        int id = (int)v - 1;
        if (t->len[id] == n && !memcmp(t->piece[id], s, n)) return id;
    }
}

/* Finds the rank of merge "a b" (a and b given separately), or -1. */
static int merge_rank(const tokenizer_t *t, const char *a, size_t na, const char *b, size_t nb)
{
    char key[2 * TOKENIZER_MAX_PIECE + 2];
    if (!t->n_merges || na + nb + 1 >= sizeof key) return -1;
    memcpy(key, a, na);
    key[na] = ' ';
    memcpy(key + na + 1, b, nb);
    size_t n = na + nb + 1;
    size_t mask = t->n_mslots - 1;
    for (size_t i = hash_fnv1a(key, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = t->mslots[i];
        if (!v) return -1;
        const char *m = t->merge[v - 1];
        if (strlen(m) == n && !memcmp(m, key, n)) return (int)v - 1;
    }
}

static size_t table_size(size_t n)
{
    size_t s = 16;
    while (s < 2 * n)
        s <<= 1;
    return s;
}

/* Allocates the per-token arrays and copies pieces from a (count, get) source into
 * one blob. get(src, i, &len) returns piece i. */
static void alloc_vocab(tokenizer_t *t, int n, size_t total_bytes)
{
    t->n_vocab = n;
    t->piece = mem_calloc((size_t)n, sizeof *t->piece);
    t->len = mem_calloc((size_t)n, sizeof *t->len);
    t->score = mem_calloc((size_t)n, sizeof *t->score);
    t->type = mem_calloc((size_t)n, sizeof *t->type);
    t->blob = mem_alloc(total_bytes + (size_t)n);
    t->bos = t->eos = t->unk = t->eot = -1;
}

static _Thread_local const tokenizer_t *sort_vocab; /* for special_cmp */

static int special_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    unsigned char fx = (unsigned char)sort_vocab->piece[x][0],
                  fy = (unsigned char)sort_vocab->piece[y][0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (sort_vocab->len[x] != sort_vocab->len[y])
        return sort_vocab->len[x] > sort_vocab->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Builds the hash table, byte table and special list once pieces and types are set. */
static void finish_vocab(tokenizer_t *t)
{
    t->n_slots = table_size((size_t)t->n_vocab);
    t->slots = mem_calloc(t->n_slots, sizeof *t->slots);
    size_t mask = t->n_slots - 1;
    for (int id = 0; id < t->n_vocab; id++) {
        size_t i = hash_fnv1a(t->piece[id], t->len[id]) & mask;
        bool dup = false;
        for (; t->slots[i]; i = (i + 1) & mask) {
            int o = (int)t->slots[i] - 1;
            if (t->len[o] == t->len[id] && !memcmp(t->piece[o], t->piece[id], t->len[id])) {
                dup = true; /* first occurrence wins, as llama.cpp's map does */
                break;
            }
        }
        if (!dup) t->slots[i] = (uint32_t)id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        if (t->kind == TOKENIZER_SPM) {
            snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_id[b] = tokenizer_find(t, s, 6);
        } else {
            uint32_t cp = t->byte_cp[b];
            size_t n = cp < 0x80 ? 1 : 2; /* the byte alphabet stays below U+0800 */
            if (n == 1)
                s[0] = (char)cp;
            else
                s[0] = (char)(0xc0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3f));
            t->byte_id[b] = tokenizer_find(t, s, n);
        }
    }
    /* Specials, longest first so "<|im_start|>" wins over a shorter prefix. */
    t->special = mem_alloc(((size_t)t->n_vocab + 1) * sizeof *t->special);
    for (int id = 0; id < t->n_vocab; id++)
        if ((t->type[id] == TOKENIZER_TYPE_CONTROL || t->type[id] == TOKENIZER_TYPE_USER) &&
            t->len[id] > 0)
            t->special[t->n_special++] = id;
    /* By first byte, then longest first, so "<|im_start|>" wins over a shorter prefix. */
    sort_vocab = t;
    qsort(t->special, (size_t)t->n_special, sizeof *t->special, special_cmp);
    for (int b = 0, k = 0; b <= 256; b++) {
        while (k < t->n_special && (unsigned char)t->piece[t->special[k]][0] < b)
            k++;
        t->sp_first[b] = k;
    }
    static const char *eot_pieces[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"};
    for (size_t i = 0; i < sizeof eot_pieces / sizeof *eot_pieces && t->eot < 0; i++)
        t->eot = tokenizer_find(t, eot_pieces[i], strlen(eot_pieces[i]));
}

/* GPT-2's byte-to-unicode alphabet: printable Latin-1 bytes map to themselves, the
 * rest to U+0100 upwards in byte order. */
static void init_byte_alphabet(tokenizer_t *t)
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        t->byte_cp[b] = keep ? (uint32_t)b : next++;
    }
}

void tokenizer_free(tokenizer_t *t)
{
    if (!t) return;
    mem_free(t->piece);
    mem_free(t->len);
    mem_free(t->score);
    mem_free(t->type);
    mem_free(t->blob);
    mem_free(t->slots);
    mem_free(t->special);
    mem_free(t->merge);
    mem_free(t->mblob);
    mem_free(t->mslots);
    mem_free(t);
}

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return rc;
}

int tokenizer_from_gguf(const gguf_t *g, tokenizer_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *model;
    size_t mlen;
    const gguf_arr_t *toks, *scores = NULL, *types = NULL, *merges = NULL;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen))
        return fail(err, errlen, SY_ENOTFOUND, "tokenizer: no tokenizer.ggml.model");
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) || toks->type != GGUF_TYPE_STRING)
        return fail(err, errlen, SY_ENOTFOUND, "tokenizer: no tokenizer.ggml.tokens array");
    if (toks->n == 0 || toks->n > TOKENIZER_MAX_VOCAB)
        return fail(err, errlen, SY_ECORRUPT, "tokenizer: vocabulary size out of range");
    tokenizer_kind_t kind;
    if (mlen == 5 && !memcmp(model, "llama", 5))
        kind = TOKENIZER_SPM;
    else if (mlen == 4 && !memcmp(model, "gpt2", 4))
        kind = TOKENIZER_BPE;
    else
        return fail(err, errlen, SY_EUNSUPPORTED,
                    "tokenizer: model kind not supported "
                    "(llama or gpt2)");
    int n = (int)toks->n;
    if (!gguf_get_arr(g, "tokenizer.ggml.scores", &scores) &&
        (scores->type != GGUF_TYPE_F32 || scores->n != toks->n))
        return fail(err, errlen, SY_ECORRUPT, "tokenizer: scores do not match the tokens");
    if (!gguf_get_arr(g, "tokenizer.ggml.token_type", &types) &&
        (types->n != toks->n || types->type == GGUF_TYPE_STRING || types->type == GGUF_TYPE_ARRAY ||
         types->type == GGUF_TYPE_F32 || types->type == GGUF_TYPE_F64))
        return fail(err, errlen, SY_ECORRUPT, "tokenizer: token types do not match the tokens");
    if (gguf_get_arr(g, "tokenizer.ggml.merges", &merges)) merges = NULL;
    if (merges && merges->type != GGUF_TYPE_STRING)
        return fail(err, errlen, SY_ECORRUPT, "tokenizer: merges are not strings");
    if (kind == TOKENIZER_BPE && !merges)
        return fail(err, errlen, SY_ECORRUPT, "tokenizer: gpt2 vocabulary without merges");

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t l;
        gguf_arr_str(toks, (uint64_t)i, &l);
        if (l > TOKENIZER_MAX_PIECE)
            return fail(err, errlen, SY_ECORRUPT, "tokenizer: a piece is longer than 1024 bytes");
        total += l;
    }
    tokenizer_t *t = mem_calloc(1, sizeof *t);
    t->kind = kind;
    alloc_vocab(t, n, total);
    char *w = t->blob;
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *s = gguf_arr_str(toks, (uint64_t)i, &l);
        memcpy(w, s, l);
        w[l] = 0;
        t->piece[i] = w;
        t->len[i] = (uint32_t)l;
        w += l + 1;
        t->score[i] = scores ? gguf_arr_f32(scores, (uint64_t)i) : 0.0f;
        int64_t ty = types ? gguf_arr_int(types, (uint64_t)i) : TOKENIZER_TYPE_NORMAL;
        t->type[i] = (uint8_t)(ty >= 1 && ty <= 6 ? ty : TOKENIZER_TYPE_NORMAL);
    }
    uint32_t v;
    if (!gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v) && v < (uint32_t)n) t->bos = (int)v;
    if (!gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &v) && v < (uint32_t)n) t->eos = (int)v;
    if (!gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &v) && v < (uint32_t)n) t->unk = (int)v;
    if (!gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &v) && v < (uint32_t)n) t->eot = (int)v;
    bool b;
    t->add_bos = kind == TOKENIZER_SPM; /* llama.cpp's defaults per kind */
    if (!gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = b;
    t->add_space_prefix = kind == TOKENIZER_SPM;
    if (!gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = b;

    if (kind == TOKENIZER_BPE) {
        init_byte_alphabet(t);
        const char *pre;
        size_t plen;
        if (!gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen)) {
            bool l3 = (plen == 9 && !memcmp(pre, "llama-bpe", 9)) ||
                      (plen == 6 && !memcmp(pre, "llama3", 6));
            bool qw = plen == 5 && !memcmp(pre, "qwen2", 5);
            t->llama3_pre = l3 || qw || (plen == 6 && !memcmp(pre, "smollm", 6));
            t->pre_digits = l3 ? 3 : qw ? 1 : 0;
            t->nfc = qw;
            t->ignore_merges = l3;
        }
    }
    if (merges) {
        if (merges->n > TOKENIZER_MAX_VOCAB) {
            tokenizer_free(t);
            return fail(err, errlen, SY_ECORRUPT, "tokenizer: too many merges");
        }
        size_t mt = 0;
        for (uint64_t i = 0; i < merges->n; i++) {
            size_t l;
            gguf_arr_str(merges, i, &l);
            mt += l + 1;
        }
        t->n_merges = (int)merges->n;
        t->merge = mem_calloc(merges->n + 1, sizeof *t->merge);
        t->mblob = mem_alloc(mt + 1);
        t->n_mslots = table_size(merges->n);
        t->mslots = mem_calloc(t->n_mslots, sizeof *t->mslots);
        char *mw = t->mblob;
        for (uint64_t i = 0; i < merges->n; i++) {
            size_t l;
            const char *s = gguf_arr_str(merges, i, &l);
            memcpy(mw, s, l);
            mw[l] = 0;
            t->merge[i] = mw;
            mw += l + 1;
            size_t mask = t->n_mslots - 1, j = hash_fnv1a(s, l) & mask;
            bool dup = false;
            for (; t->mslots[j]; j = (j + 1) & mask)
                if (!strcmp(t->merge[t->mslots[j] - 1], t->merge[i])) dup = true;
            if (!dup) t->mslots[j] = (uint32_t)i + 1;
        }
    }
    finish_vocab(t);
    if (kind == TOKENIZER_SPM && t->unk < 0) t->unk = tokenizer_find(t, "<unk>", 5);
    *out = t;
    return 0;
}

int tokenizer_from_llama2c(const char *path, int n_vocab, tokenizer_t **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > TOKENIZER_MAX_VOCAB)
        return fail(err, errlen, SY_EINVAL, "tokenizer: bad vocabulary size");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = -errno;
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return e;
    }
    fseek(f, 0, SEEK_END);
    long fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    int max_len;
    if (fsize <= 0 || fread(&max_len, 4, 1, f) != 1 || max_len <= 0 ||
        max_len > TOKENIZER_MAX_PIECE) {
        fclose(f);
        return fail(err, errlen, SY_ECORRUPT, "tokenizer.bin: bad header");
    }
    tokenizer_t *t = mem_calloc(1, sizeof *t);
    t->kind = TOKENIZER_SPM;
    /* Each piece grows by at most 2 bytes per space (' ' -> 3-byte ▁). */
    alloc_vocab(t, n_vocab, (size_t)fsize * 3);
    char *w = t->blob;
    char raw[TOKENIZER_MAX_PIECE + 1];
    for (int i = 0; i < n_vocab; i++) {
        int l;
        if (fread(&t->score[i], 4, 1, f) != 1 || fread(&l, 4, 1, f) != 1 || l < 0 || l > max_len ||
            fread(raw, 1, (size_t)l, f) != (size_t)l) {
            fclose(f);
            tokenizer_free(t);
            return fail(err, errlen, SY_ECORRUPT, "tokenizer.bin: truncated or bad piece");
        }
        raw[l] = 0;
        const char *src = raw;
        size_t sl = (size_t)l;
        t->type[i] = TOKENIZER_TYPE_NORMAL;
        if (i == 0) t->type[i] = TOKENIZER_TYPE_UNKNOWN;
        /* llama2.c stores BOS/EOS as "\n<s>\n" and "\n</s>\n". */
        if (i == 1) src = "<s>", sl = 3, t->type[i] = TOKENIZER_TYPE_CONTROL;
        if (i == 2) src = "</s>", sl = 4, t->type[i] = TOKENIZER_TYPE_CONTROL;
        unsigned hx;
        char tail;
        if (sl == 6 && sscanf(src, "<0x%2x%c", &hx, &tail) == 2 && tail == '>')
            t->type[i] = TOKENIZER_TYPE_BYTE;
        t->piece[i] = w;
        for (size_t k = 0; k < sl; k++) {
            if (src[k] == ' ' && t->type[i] == TOKENIZER_TYPE_NORMAL) {
                memcpy(w, SPACE_MARK, 3);
                w += 3;
            } else {
                *w++ = src[k];
            }
        }
        *w = 0;
        t->len[i] = (uint32_t)(w - t->piece[i]);
        w++;
    }
    fclose(f);
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = true;
    t->add_space_prefix = true;
    finish_vocab(t);
    *out = t;
    return 0;
}

/* ============================================================ queries ==== */

int tokenizer_n_vocab(const tokenizer_t *t)
{
    return t->n_vocab;
}
tokenizer_kind_t tokenizer_kind(const tokenizer_t *t)
{
    return t->kind;
}
int tokenizer_bos(const tokenizer_t *t)
{
    return t->bos;
}
int tokenizer_eos(const tokenizer_t *t)
{
    return t->eos;
}

bool tokenizer_is_eog(const tokenizer_t *t, int id)
{
    return id >= 0 && (id == t->eos || id == t->eot);
}

const char *tokenizer_piece(const tokenizer_t *t, int id)
{
    return id >= 0 && id < t->n_vocab ? t->piece[id] : NULL;
}

float tokenizer_score(const tokenizer_t *t, int id)
{
    return id >= 0 && id < t->n_vocab ? t->score[id] : 0.0f;
}

int tokenizer_type(const tokenizer_t *t, int id)
{
    return id >= 0 && id < t->n_vocab ? t->type[id] : 0;
}

/* Length of the UTF-8 sequence starting with byte c (1 for stray bytes). */
static size_t utf8_len(unsigned char c)
{
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

/* ============================================== SentencePiece BPE ======== */

/* Output sink: counts every id, stores those that fit. */
typedef struct sink {
    int *ids;
    int max;
    int n;
} sink_t;

static void emit(sink_t *s, int id)
{
    if (s->n < s->max) s->ids[s->n] = id;
    s->n++;
}

typedef struct sym {
    int prev, next; /* linked list of live symbols, -1 at the ends */
    size_t off, n;  /* bytes in the escaped text; n == 0 once merged away */
} sym_t;

typedef struct bigram {
    int left, right;
    float score;
    size_t n; /* combined bytes when queued, to detect stale entries */
} bigram_t;

/* Max-heap order: higher score first; on ties the leftmost pair. */
static bool bg_before(const bigram_t *a, const bigram_t *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct heap {
    bigram_t *v;
    size_t n, cap;
} heap_t;

static void heap_push(heap_t *h, bigram_t b)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = mem_realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0 && bg_before(&b, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = b;
}

static bigram_t heap_pop(heap_t *h)
{
    bigram_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bg_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bg_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static int merge_rank(const tokenizer_t *t, const char *a, size_t na, const char *b, size_t nb);

/* Queues the pair (l, r) when their concatenation is a vocabulary piece: by the
 * piece's score, or, when the vocabulary has merges (a BPE converted from
 * tokenizer.json, such as Gemma's), only listed pairs, lowest rank first. */
static void try_bigram(const tokenizer_t *t, const char *txt, const sym_t *s, heap_t *h, int l,
                       int r)
{
    if (l < 0 || r < 0) return;
    size_t n = s[l].n + s[r].n;
    int id = tokenizer_find(t, txt + s[l].off, n);
    if (id < 0) return;
    float score = t->score[id];
    if (t->n_merges) {
        int rank = merge_rank(t, txt + s[l].off, s[l].n, txt + s[r].off, s[r].n);
        if (rank < 0) return;
        score = -(float)rank;
    }
    heap_push(h, (bigram_t){.left = l, .right = r, .score = score, .n = n});
}

/* Tokenizes one run of plain text with the SentencePiece rules: escape spaces,
 * optional ▁ prefix, merge by score, byte fallback. */
static void spm_encode(const tokenizer_t *t, const char *text, size_t len, bool prefix, sink_t *out)
{
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++)
        n_sp += text[i] == ' ';
    size_t elen = len + 2 * n_sp + (prefix ? 3 : 0);
    char *e = mem_alloc(elen + 1);
    size_t w = 0;
    if (prefix) memcpy(e, SPACE_MARK, 3), w = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(e + w, SPACE_MARK, 3), w += 3;
        else
            e[w++] = text[i];
    }
    sym_t *s = mem_alloc((elen + 1) * sizeof *s);
    int ns = 0;
    for (size_t off = 0; off < elen;) {
        size_t n = utf8_len((unsigned char)e[off]);
        if (n > elen - off) n = elen - off;
        s[ns] = (sym_t){.prev = ns - 1, .next = -1, .off = off, .n = n};
        if (ns > 0) s[ns - 1].next = ns;
        ns++;
        off += n;
    }
    heap_t h = {0};
    for (int i = 1; i < ns; i++)
        try_bigram(t, e, s, &h, i - 1, i);
    while (h.n) {
        bigram_t b = heap_pop(&h);
        sym_t *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.n) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        try_bigram(t, e, s, &h, l->prev, b.left);
        try_bigram(t, e, s, &h, b.left, l->next);
    }
    for (int i = 0; i < ns && ns > 0; i = s[i].next) {
        int id = tokenizer_find(t, e + s[i].off, s[i].n);
        if (id >= 0) {
            emit(out, id);
        } else {
            for (size_t k = 0; k < s[i].n; k++) {
                int bid = t->byte_id[(unsigned char)e[s[i].off + k]];
                emit(out, bid >= 0 ? bid : t->unk);
            }
        }
        if (s[i].next < 0) break;
    }
    mem_free(h.v);
    mem_free(s);
    mem_free(e);
}

/* ============================================== byte-level BPE =========== */

/* Character classes of the pre-tokenizer. Non-ASCII code points count as letters
 * (a simplification of \p{L}: enough for Latin, Cyrillic, CJK text), except for
 * common Unicode spaces. */
enum { CC_SPACE, CC_LETTER, CC_DIGIT, CC_OTHER, CC_NL };

static int char_class(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c == '\n' || c == '\r') return CC_NL;
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f') return CC_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CC_LETTER;
    if (c >= '0' && c <= '9') return CC_DIGIT;
    if (c < 0x80) return CC_OTHER;
    if (n >= 2 && c == 0xc2 && p[1] == 0xa0) return CC_SPACE;
    if (n >= 3 && c == 0xe2 && p[1] == 0x80 && p[2] <= 0x8b) return CC_SPACE;
    if (n >= 3 && c == 0xe2 && p[1] <= 0x81) return CC_OTHER; /* general punctuation */
    return CC_LETTER;
}

/* Byte-pair merges of one pre-token, by merge rank. */
static void bpe_word(const tokenizer_t *t, const char *word, size_t len, sink_t *out)
{
    /* Map bytes to the byte-level alphabet (UTF-8, at most 2 bytes each). */
    char *m = mem_alloc(2 * len + 1);
    size_t *off = mem_alloc((len + 1) * sizeof *off), *sz = mem_alloc((len + 1) * sizeof *sz);
    size_t w = 0;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = t->byte_cp[(unsigned char)word[i]];
        off[n] = w;
        if (cp < 0x80)
            m[w++] = (char)cp;
        else
            m[w++] = (char)(0xc0 | (cp >> 6)), m[w++] = (char)(0x80 | (cp & 0x3f));
        sz[n] = w - off[n];
        n++;
    }
    /* A pre-token that is a whole piece is that piece (Llama-3's ignore_merges). */
    if (t->ignore_merges && n > 1) {
        int id = tokenizer_find(t, m, w);
        if (id >= 0) {
            emit(out, id);
            mem_free(m);
            mem_free(off);
            mem_free(sz);
            return;
        }
    }
    /* Merge adjacent parts while any pair is a known merge (lowest rank first). Parts
     * stay contiguous in m, so merging is widening one part and removing the next. */
    for (;;) {
        int best = -1, best_rank = 0;
        for (int i = 0; i + 1 < n; i++) {
            int r = merge_rank(t, m + off[i], sz[i], m + off[i + 1], sz[i + 1]);
            if (r >= 0 && (best < 0 || r < best_rank)) best = i, best_rank = r;
        }
        if (best < 0) break;
        sz[best] += sz[best + 1];
        memmove(off + best + 1, off + best + 2, (size_t)(n - best - 2) * sizeof *off);
        memmove(sz + best + 1, sz + best + 2, (size_t)(n - best - 2) * sizeof *sz);
        n--;
    }
    for (int i = 0; i < n; i++) {
        int id = tokenizer_find(t, m + off[i], sz[i]);
        if (id >= 0) {
            emit(out, id);
            continue;
        }
        /* Unknown part: its bytes one by one (each byte has a token in byte-level BPE). */
        for (size_t k = off[i]; k < off[i] + sz[i];) {
            size_t cl = utf8_len((unsigned char)m[k]);
            int bid = tokenizer_find(t, m + k, cl);
            emit(out, bid >= 0 ? bid : t->unk);
            k += cl;
        }
    }
    mem_free(m);
    mem_free(off);
    mem_free(sz);
}

/* Length of an English contraction ('s 't 're 've 'm 'll 'd) at p, or 0. */
static size_t contraction(const char *p, size_t n, bool icase)
{
    if (n < 2 || p[0] != '\'') return 0;
    char a = p[1], b = n > 2 ? p[2] : 0;
    if (icase) {
        a = (char)(a | 0x20);
        b = (char)(b | 0x20);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* ---- Llama-3 / Qwen2 pre-tokenizer, on Unicode classes --------------------- */

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

enum { U_OTHER, U_LETTER, U_NUMBER, U_SPACE, U_NL };

/* Class of a code point as the pattern's \p{L}, \p{N}, \s (JavaScript's) and [\r\n]. */
static int u_class(uint32_t cp)
{
    if (cp == '\n' || cp == '\r') return U_NL;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0xa0 || cp == 0x1680 ||
        (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
        cp == 0x205f || cp == 0x3000 || cp == 0xfeff)
        return U_SPACE;
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return U_LETTER;
        if (cp >= '0' && cp <= '9') return U_NUMBER;
        return U_OTHER;
    }
    if (in_ranges(unicode_letter, sizeof unicode_letter / sizeof *unicode_letter, cp))
        return U_LETTER;
    if (in_ranges(unicode_number, sizeof unicode_number / sizeof *unicode_number, cp))
        return U_NUMBER;
    return U_OTHER;
}

/* Decodes the UTF-8 sequence at p (n bytes left) into *cp; returns its length. A
 * malformed byte stands alone as U+FFFD (class other). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t l = utf8_len(p[0]);
    if (l == 1 || l > n) {
        *cp = p[0] < 0x80 ? p[0] : 0xfffd;
        return 1;
    }
    uint32_t c = p[0] & (0x7f >> l);
    for (size_t k = 1; k < l; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        c = (c << 6) | (p[k] & 0x3f);
    }
    *cp = c;
    return l;
}

/* ---- NFC ------------------------------------------------------------------ */

/* Row of a {key, ...} table sorted by key, or NULL. */
static const uint32_t *find3(const uint32_t (*tab)[3], size_t n, uint32_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tab[mid][0] == key) return tab[mid];
        if (tab[mid][0] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int ccc_of(uint32_t cp)
{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = sizeof unicode_ccc / sizeof *unicode_ccc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < unicode_ccc[mid][0])
            hi = mid;
        else if (cp > unicode_ccc[mid][1])
            lo = mid + 1;
        else
            return (int)unicode_ccc[mid][2];
    }
    return 0;
}

enum { H_SBASE = 0xac00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11a7 };
enum { H_LCOUNT = 19, H_VCOUNT = 21, H_TCOUNT = 28, H_NCOUNT = 588, H_SCOUNT = 11172 };

/* Appends the full canonical decomposition of cp to d (at most 4 code points per
 * level; depth bounded by the data). */
static void decompose(uint32_t cp, uint32_t *d, size_t *n, int depth)
{
    if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
        uint32_t si = cp - H_SBASE;
        d[(*n)++] = H_LBASE + si / H_NCOUNT;
        d[(*n)++] = H_VBASE + (si % H_NCOUNT) / H_TCOUNT;
        if (si % H_TCOUNT) d[(*n)++] = H_TBASE + si % H_TCOUNT;
        return;
    }
    const uint32_t *r =
        cp < 0xc0 || depth > 8
            ? NULL
            : find3(unicode_decomp, sizeof unicode_decomp / sizeof *unicode_decomp, cp);
    if (!r) {
        d[(*n)++] = cp;
        return;
    }
    decompose(r[1], d, n, depth + 1);
    if (r[2]) decompose(r[2], d, n, depth + 1);
}

/* The primary composite of a + b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = sizeof unicode_comp / sizeof *unicode_comp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint32_t *r = unicode_comp[mid];
        if (r[0] == a && r[1] == b) return r[2];
        if (r[0] < a || (r[0] == a && r[1] < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* NFC of text (UAX #15: decompose, order marks by combining class, compose). Returns
 * NULL when the text is NFC by the quick check (nothing at or above U+0300), else an
 * owned buffer of *out_len bytes. Malformed bytes pass through unchanged. */
static char *nfc(const char *text, size_t len, size_t *out_len)
{
    size_t k = 0;
    while (k < len && (unsigned char)text[k] < 0xcc) /* U+0300 is 0xcc 0x80 */
        k++;
    if (k == len) return NULL;
    uint32_t *d = mem_alloc((4 * len + 4) * sizeof *d);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = utf8_next((const unsigned char *)text + i, len - i, &cp);
        if (cp == 0xfffd && l == 1 && (unsigned char)text[i] >= 0x80)
            d[n++] = 0x80000000u | (unsigned char)text[i]; /* a raw byte, kept as is */
        else
            decompose(cp, d, &n, 0);
        i += l;
    }
    for (size_t i = 1; i < n; i++) /* stable: marks between starters by class */
        for (size_t j = i; j > 0; j--) {
            int c = ccc_of(d[j]), p = ccc_of(d[j - 1]);
            if (!c || p <= c) break;
            uint32_t x = d[j];
            d[j] = d[j - 1];
            d[j - 1] = x;
        }
    size_t w = n ? 1 : 0, starter = 0;
    int last = n ? ccc_of(d[0]) : 0;
    if (last) last = 256;
    for (size_t i = 1; i < n; i++) {
        uint32_t ch = d[i];
        int c = ccc_of(ch);
        uint32_t comp = compose(d[starter], ch);
        if (comp && (last < c || last == 0) && !(d[starter] & 0x80000000u)) {
            d[starter] = comp;
            continue;
        }
        if (c == 0) starter = w;
        last = c;
        d[w++] = ch;
    }
    char *o = mem_alloc(4 * w + 1);
    size_t ol = 0;
    for (size_t i = 0; i < w; i++) {
        if (d[i] & 0x80000000u)
            o[ol++] = (char)(d[i] & 0xff);
        else
            ol += utf8_put(d[i], o + ol);
    }
    mem_free(d);
    *out_len = ol;
    return o;
}

/* Splits text the way the Llama-3 pattern does (Qwen2's differs only in taking one
 * digit at a time):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * trying the alternatives in order at each position, and byte-pair-encodes each. */
static void bpe_encode_l3(const tokenizer_t *t, const char *text, size_t len, sink_t *out)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t ncp = 0;
    uint32_t *cp = mem_alloc((len + 1) * sizeof *cp);
    size_t *off = mem_alloc((len + 1) * sizeof *off);
    uint8_t *cls = mem_alloc(len + 1);
    for (size_t i = 0; i < len;) {
        off[ncp] = i;
        i += utf8_next(u + i, len - i, &cp[ncp]);
        cls[ncp] = (uint8_t)u_class(cp[ncp]);
        ncp++;
    }
    off[ncp] = len;
#define CLS(k) ((k) < ncp ? cls[k] : -1)
#define WS(k)  (CLS(k) == U_SPACE || CLS(k) == U_NL)
    size_t i = 0;
    while (i < ncp) {
        size_t j = i, c;
        if ((c = contraction(text + off[i], len - off[i], true))) {
            j = i + c; /* contractions are ASCII: one code point per byte */
        } else if (CLS(i) == U_LETTER ||
                   (CLS(i + 1) == U_LETTER && CLS(i) != U_NL && CLS(i) != U_NUMBER)) {
            j = CLS(i) == U_LETTER ? i : i + 1;
            while (CLS(j) == U_LETTER)
                j++;
        } else if (CLS(i) == U_NUMBER) {
            while (CLS(j) == U_NUMBER && (int)(j - i) < t->pre_digits)
                j++;
        } else if ((CLS(i) == U_OTHER) || (cp[i] == ' ' && CLS(i + 1) == U_OTHER)) {
            if (cp[i] == ' ') j++;
            while (CLS(j) == U_OTHER)
                j++;
            while (CLS(j) == U_NL)
                j++;
        } else {
            size_t e = i, last_nl = SIZE_MAX;
            while (WS(e)) {
                if (CLS(e) == U_NL) last_nl = e;
                e++;
            }
            if (last_nl != SIZE_MAX)
                j = last_nl + 1; /* \s*[\r\n]+ */
            else if (e == ncp || e - i < 2)
                j = e; /* \s+(?!\S) at the end, or a single \s+ */
            else
                j = e - 1; /* leave the last space to the next word */
        }
        if (j <= i) j = i + 1;
        bpe_word(t, text + off[i], off[j] - off[i], out);
        i = j;
    }
#undef CLS
#undef WS
    mem_free(cp);
    mem_free(off);
    mem_free(cls);
}

/* Splits text into pre-tokens following the GPT-2 pattern (or the Llama-3 variant:
 * case-insensitive contractions, digits in runs of at most three, a letter run may
 * take one leading non-letter) and byte-pair-encodes each. */
static void bpe_encode(const tokenizer_t *t, const char *text, size_t len, sink_t *out)
{
    if (t->pre_digits) {
        size_t nl;
        char *norm = t->nfc ? nfc(text, len, &nl) : NULL;
        bpe_encode_l3(t, norm ? norm : text, norm ? nl : len, out);
        mem_free(norm);
        return;
    }
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t start = i, c;
        size_t cl = utf8_len(u[i]);
        if (cl > len - i) cl = len - i;
        int cls = char_class(u + i, len - i);
        if ((c = contraction(text + i, len - i, t->llama3_pre))) {
            i += c;
        } else if (cls == CC_LETTER ||
                   (i + cl < len && char_class(u + i + cl, len - i - cl) == CC_LETTER &&
                    (t->llama3_pre ? (cls == CC_SPACE || cls == CC_OTHER) : u[i] == ' '))) {
            /* optional single leading char (GPT-2: a space) then letters */
            if (cls != CC_LETTER) i += cl;
            while (i < len && char_class(u + i, len - i) == CC_LETTER)
                i += utf8_len(u[i]);
        } else if (cls == CC_DIGIT || (!t->llama3_pre && u[i] == ' ' && i + 1 < len &&
                                       char_class(u + i + 1, len - i - 1) == CC_DIGIT)) {
            if (u[i] == ' ') i++;
            size_t k = 0;
            while (i < len && char_class(u + i, len - i) == CC_DIGIT && (!t->llama3_pre || k < 3))
                i++, k++;
        } else if (cls == CC_OTHER ||
                   (u[i] == ' ' && i + 1 < len && char_class(u + i + 1, len - i - 1) == CC_OTHER)) {
            if (u[i] == ' ') i++;
            while (i < len && char_class(u + i, len - i) == CC_OTHER)
                i += utf8_len(u[i]);
            if (t->llama3_pre)
                while (i < len && char_class(u + i, len - i) == CC_NL)
                    i++;
        } else {
            /* whitespace run; leave the last space for the next word if one follows */
            size_t j = i;
            bool nl = false;
            while (j < len) {
                int k = char_class(u + j, len - j);
                if (k != CC_SPACE && k != CC_NL) break;
                nl |= k == CC_NL;
                j += utf8_len(u[j]);
            }
            if (t->llama3_pre && nl) {
                /* \s*[\r\n]+ : up to the last newline */
                size_t last = i;
                for (size_t k = i; k < j; k++)
                    if (u[k] == '\n' || u[k] == '\r') last = k + 1;
                j = last;
            } else if (j < len && j - i > 1 && u[j - 1] == ' ') {
                j--;
            }
            i = j > i ? j : i + 1;
        }
        if (i > len) i = len;
        bpe_word(t, text + start, i - start, out);
    }
}

/* ============================================================ encode ==== */

/* True when [a, a + n) overlaps one of the plain spans (sorted, disjoint, so their
 * ends are sorted too: binary search for the first span ending after a). */
static bool in_plain(const tokenizer_span_t *plain, size_t n_plain, size_t a, size_t n)
{
    size_t lo = 0, hi = n_plain;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (plain[mid].off + plain[mid].len <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n_plain && plain[lo].off < a + n;
}

int tokenizer_encode_spans(const tokenizer_t *t, const char *text, size_t len, bool add_bos,
                           bool parse_special, const tokenizer_span_t *plain, size_t n_plain,
                           int *ids, int max)
{
    for (size_t k = 0; k < n_plain; k++)
        if (plain[k].off > len || plain[k].len > len - plain[k].off ||
            (k && plain[k].off < plain[k - 1].off + plain[k - 1].len))
            return SY_EINVAL;
    sink_t out = {.ids = ids, .max = max < 0 ? 0 : max};
    if (add_bos && t->add_bos && t->bos >= 0) emit(&out, t->bos);
    bool prev_special = true; /* SentencePiece prefixes a space at the start */
    size_t i = 0;
    while (i < len) {
        /* Next special piece: user-defined pieces anywhere (as the reference
         * tokenizers split on every added token), control pieces only when parsing
         * them and outside the plain spans. */
        size_t j = i;
        int sp = -1;
        for (; j < len && sp < 0 && t->n_special; j++) {
            unsigned char b = (unsigned char)text[j];
            for (int k = t->sp_first[b]; k < t->sp_first[b + 1]; k++) {
                int id = t->special[k];
                if (t->len[id] > len - j || memcmp(text + j, t->piece[id], t->len[id])) continue;
                if (t->type[id] != TOKENIZER_TYPE_USER &&
                    (!parse_special || in_plain(plain, n_plain, j, t->len[id])))
                    continue;
                sp = id;
                break;
            }
        }
        if (sp >= 0) j--;
        if (!t->n_special) j = len;
        if (j > i) {
            if (t->kind == TOKENIZER_SPM)
                spm_encode(t, text + i, j - i, t->add_space_prefix && prev_special, &out);
            else
                bpe_encode(t, text + i, j - i, &out);
            prev_special = false;
        }
        if (sp >= 0) {
            emit(&out, sp);
            j += t->len[sp];
            prev_special = true;
        }
        i = j;
    }
    return out.n;
}

int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int *ids, int max)
{
    return tokenizer_encode_spans(t, text, len, add_bos, parse_special, NULL, 0, ids, max);
}

/* ============================================================ decode ==== */

int tokenizer_decode(const tokenizer_t *t, int prev, int id, char *out, size_t cap)
{
    if (id < 0 || id >= t->n_vocab) return 0;
    char tmp[TOKENIZER_MAX_PIECE + 4];
    size_t n = 0;
    const char *p = t->piece[id];
    size_t pl = t->len[id];
    int ty = t->type[id];
    if (ty == TOKENIZER_TYPE_CONTROL || ty == TOKENIZER_TYPE_UNUSED) {
        n = 0;
    } else if (ty == TOKENIZER_TYPE_BYTE && t->kind == TOKENIZER_SPM) {
        unsigned v = 0;
        sscanf(p, "<0x%2x>", &v);
        tmp[n++] = (char)v;
    } else if (t->kind == TOKENIZER_SPM) {
        for (size_t k = 0; k < pl;) {
            if (pl - k >= 3 && !memcmp(p + k, SPACE_MARK, 3)) {
                tmp[n++] = ' ';
                k += 3;
            } else {
                tmp[n++] = p[k++];
            }
        }
        if (prev == t->bos && t->bos >= 0 && t->add_space_prefix && n && tmp[0] == ' ') {
            memmove(tmp, tmp + 1, --n);
        }
    } else if (ty == TOKENIZER_TYPE_USER) {
        memcpy(tmp, p, pl);
        n = pl;
    } else {
        /* byte-level: map each code point back to its byte */
        for (size_t k = 0; k < pl;) {
            uint32_t cp = (unsigned char)p[k];
            size_t cl = utf8_len((unsigned char)p[k]);
            if (cl == 2 && k + 1 < pl) cp = ((cp & 0x1f) << 6) | ((unsigned char)p[k + 1] & 0x3f);
            int b = -1;
            for (int x = 0; x < 256 && b < 0; x++)
                if (t->byte_cp[x] == cp) b = x;
            if (b >= 0 && cl <= 2)
                tmp[n++] = (char)b;
            else
                for (size_t q = 0; q < cl && k + q < pl; q++)
                    tmp[n++] = p[k + q];
            k += cl;
        }
    }
    memcpy(out, tmp, n < cap ? n : cap);
    return (int)n;
}

/* ======================================================== fingerprint ==== */

/* FNV-1a over n bytes, continuing from h. */
static uint64_t fp_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t tokenizer_fingerprint(const tokenizer_t *t)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int head[] = {
        (int)tokenizer_kind(t), t->n_vocab, t->n_merges, t->bos, t->eos, t->unk, t->eot, t->add_bos,
        t->add_space_prefix};
    h = fp_mix(h, head, sizeof head);
    for (int i = 0; i < t->n_vocab; i++) {
        h = fp_mix(h, t->piece[i], t->len[i] + 1); /* the NUL separates pieces */
        h = fp_mix(h, &t->score[i], sizeof t->score[i]);
        h = fp_mix(h, &t->type[i], 1);
    }
    for (int i = 0; i < t->n_merges; i++)
        h = fp_mix(h, t->merge[i], strlen(t->merge[i]) + 1);
    return h;
}
