/* tokenizer.h — text to token ids and back, from GGUF metadata or llama2.c's
 * tokenizer.bin.
 *
 * Two kinds, as tokenizer.ggml.model names them:
 *   "llama": SentencePiece-style BPE. Spaces become U+2581 (▁), a ▁ is prepended to
 *            the text, then adjacent symbols (UTF-8 characters to begin with) are
 *            merged highest vocabulary score first (ties: leftmost). Characters not
 *            in the vocabulary fall back to their bytes as <0xXX> tokens.
 *            With tokenizer.ggml.merges (a BPE converted from tokenizer.json, such as
 *            Gemma's), only listed pairs merge, lowest rank first.
 *   "gpt2":  byte-level BPE. Text is split into words by a pre-tokenizer (the
 *            Llama-3 / Qwen2 patterns on Unicode classes, Qwen2 after NFC, or GPT-2's),
 *            each byte is mapped to a printable code point, and pairs are merged in
 *            the rank order of tokenizer.ggml.merges.
 * User-defined added pieces are split out of any text (as Hugging Face's tokenizers
 * do); control pieces only when asked to parse special pieces.
 * A llama2.c tokenizer.bin is read into the "llama" kind with the same conventions a
 * conversion to GGUF uses: spaces as ▁, BOS/EOS pieces as <s>/</s>, byte pieces typed
 * as bytes, so both paths tokenize alike.
 */
#ifndef SY_ENGINE_TOKENIZER_H
#define SY_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

/* Token types of tokenizer.ggml.token_type (llama.cpp's values). */
enum {
    TOKENIZER_TYPE_NORMAL = 1,
    TOKENIZER_TYPE_UNKNOWN = 2,
    TOKENIZER_TYPE_CONTROL = 3,
    TOKENIZER_TYPE_USER = 4,
    TOKENIZER_TYPE_UNUSED = 5,
    TOKENIZER_TYPE_BYTE = 6,
};

typedef enum { TOKENIZER_SPM, TOKENIZER_BPE } tokenizer_kind_t;

#define TOKENIZER_MAX_VOCAB (1 << 20)
#define TOKENIZER_MAX_PIECE 1024 /* bytes of one vocabulary piece */

typedef struct tokenizer tokenizer_t;

/* Builds a tokenizer from the tokenizer.ggml.* metadata of g (copied: g may be freed
 * afterwards). Returns 0, SY_ENOTFOUND (no vocabulary), SY_EUNSUPPORTED (unknown
 * model kind) or SY_ECORRUPT, with a message in err. *out is owned (tokenizer_free). */
int tokenizer_from_gguf(const gguf_t *g, tokenizer_t **out, char *err, size_t errlen);
/* Reads a llama2.c tokenizer.bin holding n_vocab pieces. Same returns, or -errno. */
int tokenizer_from_llama2c(const char *path, int n_vocab, tokenizer_t **out, char *err,
                           size_t errlen);
void tokenizer_free(tokenizer_t *t);

/* Text (len bytes, any bytes) to ids. add_bos prepends BOS when the vocabulary says
 * BOS is added; parse_special matches control pieces (such as "<|im_start|>") in the
 * text as single tokens; user-defined pieces are always matched. Writes at most max ids; returns
 * the number of ids the text needs (may exceed max: call again with more room), or a negative
 * error. */
int tokenizer_encode(const tokenizer_t *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int *ids, int max);

/* A byte range of a text. */
typedef struct tokenizer_span {
    size_t off, len;
} tokenizer_span_t;

/* tokenizer_encode where special pieces are parsed (when parse_special) everywhere
 * except where they would overlap one of the n_plain spans: text that came from a
 * user (message contents in a rendered chat prompt) is tokenized as plain text, so
 * "<|im_end|>" typed by a user never becomes a control token, while the same piece
 * written by the chat template does. Spans are sorted and disjoint. The text is
 * otherwise tokenized exactly as tokenizer_encode would. Returns as tokenizer_encode,
 * or SY_EINVAL for spans outside the text, out of order or overlapping. */
int tokenizer_encode_spans(const tokenizer_t *t, const char *text, size_t len, bool add_bos,
                           bool parse_special, const tokenizer_span_t *plain, size_t n_plain,
                           int *ids, int max);

/* The text of token id, following prev (-1 at the start): ▁ becomes a space, byte
 * tokens their byte, control tokens nothing; a leading space right after BOS is
 * dropped, as SentencePiece does. Writes at most cap bytes (not NUL-terminated) and
 * returns the full length. */
int tokenizer_decode(const tokenizer_t *t, int prev, int id, char *out, size_t cap);

/* The raw vocabulary piece (NUL-terminated; owned by t), or NULL for a bad id. */
const char *tokenizer_piece(const tokenizer_t *t, int id);
float tokenizer_score(const tokenizer_t *t, int id);
int tokenizer_type(const tokenizer_t *t, int id);
/* Id of an exact piece, or -1. */
int tokenizer_find(const tokenizer_t *t, const char *piece, size_t len);

int tokenizer_n_vocab(const tokenizer_t *t);
tokenizer_kind_t tokenizer_kind(const tokenizer_t *t);
int tokenizer_bos(const tokenizer_t *t); /* -1 when none */
int tokenizer_eos(const tokenizer_t *t); /* -1 when none */
/* True for ids that end generation (EOS, and end-of-turn pieces such as <|eot_id|>). */
bool tokenizer_is_eog(const tokenizer_t *t, int id);
/* A hash of everything that decides how text maps to ids and back: kind, pieces,
 * scores, types, merges, special ids. Equal fingerprints: interchangeable ids (a
 * draft model for speculative decoding must share its target's). */
uint64_t tokenizer_fingerprint(const tokenizer_t *t);

#endif
