/* pii_label.h — the sequence labeller's insides, shared by scanning (pii_label.c) and
 * training (pii_label_train.c); not a public API. */
#ifndef SY_ROUTE_PII_LABEL_H
#define SY_ROUTE_PII_LABEL_H

#include "route/pii/pii_internal.h"

#define PII_LABEL_MAGIC   "SYPIILB1"
#define PII_LABEL_HEADER  88 /* bytes before the weights */
#define PII_LABEL_FEATSET 2  /* bumped whenever pii_label_features changes */
#define PII_LABEL_NFEAT   32 /* features per token, at most */
_Static_assert(PII_LABEL_HEADER == 28 + 2 * (PII_LABEL_TAGS + 1) * PII_LABEL_TAGS, "header layout");

/* Tags: outside, begin/inside a person, begin/inside an address. */
enum { LT_O, LT_B_PER, LT_I_PER, LT_B_ADR, LT_I_ADR };
/* Token kinds (LT_NONE: past either end of the window). */
enum { LT_NONE, LT_WORD, LT_NUM, LT_PUNCT, LT_LINE, LT_POSS, LT_URL };

typedef struct lab_tok {
    uint64_t wh, sh;      /* hashes of the folded word (numbers: of their length), of the shape */
    uint32_t cls;         /* coarse class: kind, capital, census, word classes */
    uint32_t st, en;      /* bytes of the text */
    uint16_t info;        /* gazetteer flags and rank buckets (words) */
    uint8_t kind;         /* LT_WORD, ... */
    uint8_t wclass;       /* particle, street type, title bits */
    bool cap;             /* a word starting with a capital */
    bool known;           /* info, wclass, wh, sh and cls are filled */
    uint16_t gen;         /* slot->gen when slot held this token */
    pii_tok_slot_t *slot; /* its token cache slot when known (NULL: none) */
} lab_tok_t;

#define LAB_TOKS 40 /* tokens per window, context included */
#define LAB_CTX  2  /* context tokens either side */

/* One window: tokens [0, n), of which [a, b) are labelled, the rest context. */
typedef struct lab_win {
    lab_tok_t tok[LAB_TOKS];
    int n, a, b;
    bool sent0; /* the first labelled token starts a sentence or a line */
    bool lower; /* found by the lower-case reading */
} lab_win_t;

typedef void (*lab_fn)(scan_ctx_t *c, lab_win_t *w, void *arg);

/* The tokens of the bytes [from, j) before the seed at j (from at a word's start),
 * the last 8 of them in before, and in *lab0 the first of those to label (house
 * numbers right before the seed); returns their count. By definition (whole) the
 * bytes are read from `from`; the scanner reads chunks from j backwards until the
 * result is the same. */
int pii_label_ctx(scan_ctx_t *c, size_t from, size_t j, bool whole, lab_tok_t *before, int *lab0);
/* Calls fn on every candidate window of c's text, in order, not overlapping. */
void pii_label_windows(scan_ctx_t *c, lab_fn fn, void *arg);
/* The emission sums of the labelled tokens of w, acc[i] for token w->a + i, as the
 * scanner computes them (cached and tabled): the sums of the weights of the buckets
 * pii_label_features gives, exactly. */
void pii_label_emissions(scan_ctx_t *c, const lab_win_t *w, int32_t (*acc)[PII_LABEL_TAGS]);
/* Writes the feature buckets (of 2^bits) of token i of w to out; returns their count
 * (<= PII_LABEL_NFEAT). */
int pii_label_features(const scan_ctx_t *c, const lab_win_t *w, int i, unsigned bits,
                       uint32_t *out);
/* Best tag sequence of n tokens (n <= LAB_TOKS) for emissions em and transitions
 * trans (last row: start), tag t at i allowed when allow[i] bit t is set; writes
 * tags and returns the path's score. */
float pii_label_viterbi(const float (*em)[PII_LABEL_TAGS], int n,
                        const float (*trans)[PII_LABEL_TAGS], const uint8_t *allow, int *tags);
/* FNV-1a 32 of p[0, n): the model file's checksum. */
uint32_t pii_label_checksum(const unsigned char *p, size_t n);

/* Parses a model file from bytes into m (copies them). 0, or SY_EPARSE with err
 * filled: bad magic, another version or feature set, wrong size, checksum. */
int pii_label_model_load(pii_label_model_t *m, const void *bytes, size_t len, char *err,
                         size_t errlen);
void pii_label_model_deinit(pii_label_model_t *m);
/* Decodes window w: the tags of its labelled tokens to tags and each entity's score at
 * its B- tag to score (other scores unset); false when every token is outside (tags
 * then unset). */
bool pii_label_decode(scan_ctx_t *c, const lab_win_t *w, int *tags, float *score);
/* Labels the windows of the text and records PERSON and STREET_ADDRESS candidates;
 * memo: windows of the mixed-case reading through the scratch's span memo where no
 * validated value was found (the same candidates). */
void pii_label_scan(scan_ctx_t *c, bool memo);

#endif
