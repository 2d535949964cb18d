/* features.h — the request feature vector, computed once per request.
 *
 * Every stage of the router (hard constraints, token budget, rules, need-of-cloud
 * model, bandit) reads the same route_features_t. Text statistics are cheap single
 * passes over the bytes; n-grams are hashed into a fixed number of buckets with the
 * seed a model file carries, so training (`switchyard train`) and decision time hash
 * identically. Nothing here allocates, reads a clock or touches global state.
 */
#ifndef SY_ROUTE_FEATURES_H
#define SY_ROUTE_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped whenever feature extraction changes (n-gram rules, caps, dense entries):
 * model files record it, and a model trained on other features is refused. */
#define ROUTE_FEATURES_VERSION 5

/* ------------------------------------------------------------ taxonomy ---- */

/* Task classes (docs/routing.md maps the training sets onto them). */
#define ROUTE_TASKS(X)                                                                             \
    X(EXTRACTION, "extraction", 120)                                                               \
    X(CLASSIFICATION, "classification", 20)                                                        \
    X(INTENT, "intent", 40)                                                                        \
    X(SUMMARIZATION, "summarization", 200)                                                         \
    X(TRANSLATION, "translation", 0) /* 0: as long as the input */                                 \
    X(WRITING, "writing", 600)                                                                     \
    X(KNOWLEDGE_QA, "knowledge_qa", 150)                                                           \
    X(MATH, "math", 300)                                                                           \
    X(CODE, "code", 400)                                                                           \
    X(REASONING, "reasoning", 300)                                                                 \
    X(CHAT, "chat", 250)

typedef enum {
#define ROUTE_TASK_ENUM(name, str, out) ROUTE_TASK_##name,
    ROUTE_TASKS(ROUTE_TASK_ENUM)
#undef ROUTE_TASK_ENUM
        ROUTE_TASK_COUNT
} route_task_t;

/* "code", ...; route_task_parse returns the class or -1. */
const char *route_task_name(route_task_t t);
int route_task_parse(const char *name);
/* Typical answer length of a class in tokens (0 = as long as the input). */
uint32_t route_task_typical_out(route_task_t t);

/* The seed's simple-vs-complex split: simple classes prefer the edge. */
static inline bool route_task_is_simple(route_task_t t)
{
    return t == ROUTE_TASK_EXTRACTION || t == ROUTE_TASK_CLASSIFICATION || t == ROUTE_TASK_INTENT ||
           t == ROUTE_TASK_SUMMARIZATION || t == ROUTE_TASK_TRANSLATION;
}
static inline bool route_task_is_complex(route_task_t t)
{
    return t == ROUTE_TASK_MATH || t == ROUTE_TASK_CODE || t == ROUTE_TASK_REASONING;
}

typedef enum {
    ROUTE_SCRIPT_LATIN, /* ASCII or Latin with diacritics */
    ROUTE_SCRIPT_CYRILLIC,
    ROUTE_SCRIPT_CJK,
    ROUTE_SCRIPT_ARABIC,
    ROUTE_SCRIPT_OTHER
} route_script_t;

const char *route_script_name(route_script_t s);

/* ------------------------------------------------------------ features ---- */

typedef struct route_features {
    uint32_t pii_types;       /* bitmask of pii_type_t at or above the score threshold */
    float pii_max_score;      /* 0..1 */
    uint32_t prompt_bytes;    /* all texts */
    uint32_t est_tokens_in;   /* estimate: ~4 bytes per token, 1 per non-ASCII codepoint */
    uint32_t max_tokens;      /* requested output cap (0 = not given) */
    uint32_t pred_tokens_out; /* predicted answer length from the task class */
    uint32_t
        est_tokens_out;    /* what the budget stage compares: max_tokens if given, else predicted */
    uint32_t n_messages;   /* conversation depth */
    float code_score;      /* 0..1: code markers (fences, keywords, braces) */
    float math_score;      /* 0..1: digits, operators, math words */
    bool question;         /* ends with '?' or opens with a question word */
    route_script_t script; /* dominant non-ASCII script */
    float non_ascii;       /* share of non-ASCII bytes, 0..1 */
    bool has_classifier;   /* task_prob is a model output (else uniform) */
    int task;              /* argmax of task_prob */
    float task_prob[ROUTE_TASK_COUNT];
    float cloud_score; /* need-of-cloud score 0..1 (expected gain of the strong model
                          mapped to 0..1), or -1 without a model */
    float choice[10];  /* answer-choice structure of the last text (ROUTE_CHOICE_DIM,
                          route_features_choices) */
} route_features_t;

/* Dense view used by the linear models and the bandit: fixed order, roughly unit
 * scale. Index ROUTE_DENSE_CLOUD holds cloud_score (0 when absent); the
 * need-of-cloud model itself reads only the first ROUTE_DENSE_CLOUD entries. */
#define ROUTE_DENSE_BASE  11
#define ROUTE_DENSE_CLOUD (ROUTE_DENSE_BASE + ROUTE_TASK_COUNT)
#define ROUTE_DENSE_DIM   (ROUTE_DENSE_CLOUD + 1)
void route_features_dense(const route_features_t *f, float out[ROUTE_DENSE_DIM]);

/* The need-of-cloud model's dense inputs: the first ROUTE_DENSE_CLOUD entries of the
 * dense view, then each of the ten request statistics (dense entries 1..10: lengths,
 * token counts, depth, markers, script, PII) times each task-class probability, so
 * one linear model can weigh length or math markers differently per kind of task
 * (a long math prompt and a long chat prompt differ in what they need). */
#define ROUTE_CLOUD_STATS 10
#define ROUTE_CHOICE_DIM  10
#define ROUTE_CLOUD_DENSE_DIM                                                                      \
    (ROUTE_DENSE_CLOUD + ROUTE_CLOUD_STATS * ROUTE_TASK_COUNT + ROUTE_CHOICE_DIM)
void route_features_dense_cloud(const route_features_t *f, float out[ROUTE_CLOUD_DENSE_DIM]);

/* Text statistics of one request: fills prompt_bytes, est_tokens_in, code_score,
 * math_score, question, script, non_ascii from the texts (the question form and the
 * markers are read from last, the text the answer responds to). Pure. */
struct route_text;
void route_features_text(route_features_t *f, const struct route_text *texts, size_t n_texts,
                         const struct route_text *last);

/* Answer-choice structure of a multiple-choice prompt (lines "A. ..." to "H. ..."),
 * into f->choice: has options, option count / 4, log mean and log max/min option
 * length, their spread, share of numeric options, "of the above" among them, a
 * NOT / EXCEPT / LEAST in the stem, paired statements ("Statement 1"), log stem
 * length. All zero when the text has fewer than two options. Reads the whole text
 * (the options close it). Called by route_features_text. Pure. */
void route_features_choices(route_features_t *f, const char *text, size_t len);

/* Token estimate of n bytes of text. */
uint32_t route_tokens_estimate(const char *s, size_t n);

/* ---------------------------------------------------------------- n-grams ---- */

/* Word unigrams and bigrams of the first ROUTE_WORDS_MAX_BYTES of a text as 64-bit
 * hashes (words: alphanumeric runs of two or more bytes, lowercased; a bigram is
 * two such words in a row), for the need-of-cloud model's gain lexicon, which
 * needs exact keys (hashed into a few thousand buckets its entries collide and
 * cancel). Writes at most max; returns the count. Pure. */
#define ROUTE_WORDS_MAX_BYTES 2048
#define ROUTE_WORDS_MAX       (2 * (ROUTE_WORDS_MAX_BYTES / 3) + 4)
size_t route_words(const char *text, size_t len, uint64_t seed, uint64_t *out, size_t max);

/* Upper bound on features one text yields (longer texts are cut at
 * ROUTE_NGRAM_MAX_BYTES: the head of a prompt carries its task). */
#define ROUTE_NGRAM_MAX_BYTES 512
/* Character trigrams come from the first bytes only: they carry the format of a
 * prompt (its opening), and they are most of the model's cost per request. */
#define ROUTE_NGRAM_CHAR_BYTES 256
#define ROUTE_NGRAM_MAX        (3 * ROUTE_NGRAM_MAX_BYTES + 8)
/* The task classifier reads the first features only (they come in text order):
 * a task shows in the opening of a prompt, and this bounds its cost. */
#define ROUTE_CLASS_NGRAMS 384

/* Hashes (seeded FNV-1a steps finished by hash_mix, and hash_mix of packed bytes for
 * the trigrams) word unigrams and bigrams (lowercased alphanumeric runs; each punctuation
 * byte is a token of its own) and character trigrams (whitespace collapsed, first
 * ROUTE_NGRAM_CHAR_BYTES) of text into bucket indices (hash & (n_buckets-1), n_buckets a power of
 * two). Writes at most max indices into out and returns how many. */
size_t route_ngrams(const char *text, size_t len, uint64_t seed, uint32_t n_buckets, uint32_t *out,
                    size_t max);

#endif
