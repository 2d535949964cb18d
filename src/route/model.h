/* model.h — small linear models over hashed n-grams plus the dense feature vector.
 *
 * Two kinds share one format: the task classifier (multinomial logistic regression,
 * K = ROUTE_TASK_COUNT outputs, softmax) and the need-of-cloud model: K = 2
 * independent sigmoid heads, P(the strong model answers well) and P(the weak model
 * does), whose difference is the expected gain of the strong model (K = 1, one
 * sigmoid P(strong beats weak), is still read). Its dense inputs are
 * route_features_dense_cloud (ROUTE_CLOUD_DENSE_DIM entries).
 *
 * A need-of-cloud model may carry a gain lexicon: exact word unigram and bigram
 * keys (route_words) with the smoothed mean gain of the training prompts holding
 * each; the mean over a prompt's n-grams, times lex_weight, is added to the score
 * (route_model_cloud_text).
 *
 * Either kind may carry the fingerprints of its training texts (a 32-bit hash of
 * each, route_model_fingerprint), so a tool scoring a data set can tell how much
 * of it the model was trained on (`switchyard replay` warns: in-sample figures).
 *
 * File format (little-endian, version 4; version 3 is version 4 without
 * fingerprints and version 2 version 3 without a lexicon, both still read;
 * version 1 had K = 1 cloud models over at most ROUTE_DENSE_DIM dense inputs and
 * is refused: retrain):
 *
 *   off  size  field
 *     0     4  magic "SYRM"
 *     4     4  u32 format version (4 written; 2 and 3 read)
 *     8     4  u32 kind (1 classifier, 2 need-of-cloud)
 *    12     4  u32 n_out K
 *    16     4  u32 n_buckets (power of two)
 *    20     4  u32 n_dense (dense inputs read: classifier <= ROUTE_DENSE_DIM,
 *              need-of-cloud <= ROUTE_CLOUD_DENSE_DIM)
 *    24     8  u64 hash seed of the n-grams
 *    32     8  u64 digest of the training data (hash of every example's text and label)
 *    40     4  f32 threshold (need-of-cloud: cloud when score > threshold)
 *    44     4  u32 n_train (examples trained on)
 *    48     4  u32 feature version (ROUTE_FEATURES_VERSION: how n-grams and dense
 *              features were computed; a model of another version is refused)
 *    52     4  u32 lexicon slots L (0, or a power of two in 64 .. ROUTE_LEX_MAX_SLOTS;
 *              version 3)
 *    56     4  f32 lexicon weight (version 3)
 *    60     4  u32 fingerprints F (0 .. ROUTE_FP_MAX; version 4, else reserved zero)
 *    64   ...  f32 w_sparse[n_buckets][K], f32 w_dense[n_dense][K], f32 bias[K],
 *              u32 lex_key[L] (0 = empty slot), f32 lex_val[L],
 *              u32 fp[F] (strictly ascending)
 *   end     8  u64 hash_bytes of everything before it (seed 0): corruption check
 *
 * Parsing copies the weights, so the blob may be freed afterwards. The model is
 * read-only after parse/train and safe to share between threads.
 */
#ifndef SY_ROUTE_MODEL_H
#define SY_ROUTE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "route/features.h"

#define ROUTE_MODEL_MAGIC       "SYRM"
#define ROUTE_MODEL_VERSION     4 /* written */
#define ROUTE_MODEL_VERSION_MIN 2 /* oldest read (no lexicon) */
#define ROUTE_MODEL_HEADER      64
#define ROUTE_MODEL_MAX_OUT     32
#define ROUTE_MODEL_MAX_BUCKETS (1u << 20)
#define ROUTE_LEX_MAX_SLOTS     (1u << 16) /* lexicon: at most half of them used */
#define ROUTE_FP_MAX            (1u << 22) /* training-text fingerprints */

typedef enum { ROUTE_MODEL_CLASSIFIER = 1, ROUTE_MODEL_CLOUD = 2 } route_model_kind_t;

typedef struct route_model {
    route_model_kind_t kind;
    uint32_t n_out;     /* K */
    uint32_t n_buckets; /* power of two */
    uint32_t n_dense;
    uint64_t seed;   /* n-gram hash seed */
    uint64_t digest; /* training data digest */
    float threshold; /* need-of-cloud decision threshold, 0..1 */
    uint32_t n_train;
    float *w_sparse;    /* (n_buckets, K), owned */
    float *w_dense;     /* (n_dense, K), owned */
    float *bias;        /* (K), owned */
    uint32_t lex_slots; /* gain lexicon: 0 (none) or a power of two */
    float lex_weight;
    uint32_t *lex_key; /* (lex_slots), owned: high half of the key's hash, 0 = empty */
    float *lex_val;    /* (lex_slots), owned */
    uint32_t n_fp;     /* training-text fingerprints: 0 (none recorded) or their count */
    uint32_t *fp;      /* (n_fp), owned, strictly ascending */
} route_model_t;

/* Returns an owned, zero-weight model (free with route_model_free). */
route_model_t *route_model_new(route_model_kind_t kind, uint32_t n_out, uint32_t n_buckets,
                               uint32_t n_dense, uint64_t seed);
void route_model_free(route_model_t *m);

/* Parses a model file held in memory (borrows blob). Returns an owned model, or
 * NULL with a message in err (bad magic, version, sizes, digest). */
route_model_t *route_model_parse(const void *blob, size_t n, char *err, size_t errlen);
/* Appends the file image to out. 0 or SY_ETOOBIG. */
int route_model_write(const route_model_t *m, buf_t *out);

/* Raw scores: out[K] = W·x + b, where x is the n-grams (each weighing scale) and the
 * dense vector (first n_dense entries). */
void route_model_logits(const route_model_t *m, const uint32_t *idx, size_t n_idx, float scale,
                        const float *dense, float *out);
/* Probabilities: softmax (classifier) or sigmoid (K = 1) of the logits. */
void route_model_predict(const route_model_t *m, const uint32_t *idx, size_t n_idx,
                         const float *dense, float *out);

/* Need-of-cloud score of a ROUTE_MODEL_CLOUD model, 0..1: (1 + P(strong) − P(weak))
 * / 2 for two heads, the sigmoid for one. dense is route_features_dense_cloud. */
float route_model_cloud_score(const route_model_t *m, const uint32_t *idx, size_t n_idx,
                              const float *dense);

/* Gain lexicon of a need-of-cloud model. route_model_lexicon_set replaces it with
 * n entries (keys are route_words hashes, distinct; vals their mean gains) in an
 * open-addressing table of at least twice n slots (64 .. ROUTE_LEX_MAX_SLOTS).
 * 0 or SY_ETOOBIG (more than ROUTE_LEX_MAX_SLOTS / 2 entries). */
int route_model_lexicon_set(route_model_t *m, const uint64_t *keys, const float *vals, size_t n,
                            float weight);
/* Mean lexicon value over the n hashes of a prompt (each distinct entry counted
 * once, keys not in the lexicon as 0), times lex_weight; 0 without a lexicon. */
float route_model_lexicon(const route_model_t *m, const uint64_t *h, size_t n);
/* The need-of-cloud score of a prompt given the heads' score (route_model_cloud_score):
 * adds the lexicon term over text's words, clamped to 0..1; returns score as is
 * without a lexicon. */
float route_model_cloud_text(const route_model_t *m, float score, const char *text, size_t len);

/* Training-text fingerprints. route_model_fingerprint is the 32-bit hash of one
 * text (its bytes as given, no normalisation); route_model_fingerprints_set replaces
 * the model's set with the distinct values of h[0..n) (sorted here): 0 or
 * SY_ETOOBIG (more than ROUTE_FP_MAX distinct). route_model_trained_on is true
 * when the text's fingerprint is in the set (false positives about n / 2^32). */
uint32_t route_model_fingerprint(const char *text, size_t len);
int route_model_fingerprints_set(route_model_t *m, const uint32_t *h, size_t n);
bool route_model_trained_on(const route_model_t *m, const char *text, size_t len);

/* ---------------------------------------------------------------- training --- */

/* One training example (borrowed arrays). */
typedef struct route_example {
    const uint32_t *idx; /* n-gram buckets */
    uint32_t n_idx;
    const float *dense;   /* n_dense entries */
    float label;          /* class index (classifier) or 0/1 target (one-head need-of-cloud) */
    float weight;         /* example weight (class balance) */
    const float *targets; /* need-of-cloud with K > 1: K targets in 0..1, one per
                             independent sigmoid head (NULL otherwise) */
} route_example_t;

typedef struct route_train_opts {
    uint32_t epochs;
    float lr;      /* initial step, decays as lr / (1 + t/n) */
    float l2;      /* weight decay per step */
    uint64_t seed; /* shuffle order */
    bool average;  /* return the mean of the weights after each epoch (lower variance) */
} route_train_opts_t;

/* Stochastic gradient descent on the log loss over ex[0..n): softmax for the
 * classifier, one sigmoid per output for the need-of-cloud kind. Deterministic for
 * a given opts->seed. Sets n_train. */
void route_model_train(route_model_t *m, const route_example_t *ex, size_t n,
                       const route_train_opts_t *opts);

#endif
