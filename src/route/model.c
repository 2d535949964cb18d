/* model.c — linear models over hashed n-grams: file format, inference, training. */
#include "route/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

_Static_assert(sizeof(float) == 4, "model files store IEEE-754 binary32");
_Static_assert(ROUTE_TASK_COUNT == 11, "the classifier's row sum is unrolled for 11 classes");

route_model_t *route_model_new(route_model_kind_t kind, uint32_t n_out, uint32_t n_buckets,
                               uint32_t n_dense, uint64_t seed)
{
    route_model_t *m = mem_calloc(1, sizeof *m);
    m->kind = kind;
    m->n_out = n_out;
    m->n_buckets = n_buckets;
    m->n_dense = n_dense;
    m->seed = seed;
    m->threshold = 0.5f;
    m->w_sparse = mem_calloc((size_t)n_buckets * n_out, sizeof(float));
    m->w_dense = mem_calloc((size_t)(n_dense ? n_dense : 1) * n_out, sizeof(float));
    m->bias = mem_calloc(n_out, sizeof(float));
    return m;
}

void route_model_free(route_model_t *m)
{
    if (!m) return;
    mem_free(m->w_sparse);
    mem_free(m->w_dense);
    mem_free(m->bias);
    mem_free(m->lex_key);
    mem_free(m->lex_val);
    mem_free(m->fp);
    mem_free(m);
}

/* ------------------------------------------------------------ file format --- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static float rdf(const unsigned char *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static size_t payload_floats(uint32_t k, uint32_t nb, uint32_t nd)
{
    return ((size_t)nb + nd + 1) * k;
}

route_model_t *route_model_parse(const void *blob, size_t n, char *err, size_t errlen)
{
    const unsigned char *p = blob;
    if (n < ROUTE_MODEL_HEADER + 8 || memcmp(p, ROUTE_MODEL_MAGIC, 4)) {
        snprintf(err, errlen, "not a switchyard router model (bad magic)");
        return NULL;
    }
    uint32_t ver = rd32(p + 4), kind = rd32(p + 8), k = rd32(p + 12), nb = rd32(p + 16),
             nd = rd32(p + 20);
    if (ver > ROUTE_MODEL_VERSION || ver < ROUTE_MODEL_VERSION_MIN) {
        snprintf(err, errlen,
                 "model format version %u, this build reads %u to %u: retrain it (switchyard "
                 "train)",
                 ver, ROUTE_MODEL_VERSION_MIN, ROUTE_MODEL_VERSION);
        return NULL;
    }
    if ((kind != ROUTE_MODEL_CLASSIFIER && kind != ROUTE_MODEL_CLOUD) || k == 0 ||
        k > ROUTE_MODEL_MAX_OUT || nb == 0 || (nb & (nb - 1)) || nb > ROUTE_MODEL_MAX_BUCKETS ||
        nd > (kind == ROUTE_MODEL_CLOUD ? ROUTE_CLOUD_DENSE_DIM : ROUTE_DENSE_DIM)) {
        snprintf(err, errlen,
                 "model header out of range (kind %u, outputs %u, buckets %u, dense %u)", kind, k,
                 nb, nd);
        return NULL;
    }
    uint32_t ls = ver >= 3 ? rd32(p + 52) : 0;
    if (ls &&
        ((ls & (ls - 1)) || ls < 64 || ls > ROUTE_LEX_MAX_SLOTS || kind != ROUTE_MODEL_CLOUD)) {
        snprintf(err, errlen, "model lexicon of %u slots out of range", ls);
        return NULL;
    }
    uint32_t nfp = ver >= 4 ? rd32(p + 60) : 0;
    if (nfp > ROUTE_FP_MAX) {
        snprintf(err, errlen, "model fingerprint count %u out of range", nfp);
        return NULL;
    }
    size_t need = ROUTE_MODEL_HEADER + (payload_floats(k, nb, nd) + 2 * (size_t)ls + nfp) * 4 + 8;
    if (n != need) {
        snprintf(err, errlen, "model file is %zu bytes, its header says %zu (truncated?)", n, need);
        return NULL;
    }
    if (hash_bytes(p, n - 8, 0) != rd64(p + n - 8)) {
        snprintf(err, errlen, "model file checksum mismatch (corrupt)");
        return NULL;
    }
    if (rd32(p + 48) != ROUTE_FEATURES_VERSION) {
        snprintf(err, errlen,
                 "model trained on feature version %u, this build computes version %d: "
                 "retrain it (switchyard train)",
                 rd32(p + 48), ROUTE_FEATURES_VERSION);
        return NULL;
    }
    route_model_t *m = route_model_new((route_model_kind_t)kind, k, nb, nd, rd64(p + 24));
    m->digest = rd64(p + 32);
    m->threshold = rdf(p + 40);
    m->n_train = rd32(p + 44);
    const unsigned char *q = p + ROUTE_MODEL_HEADER;
    for (size_t i = 0; i < (size_t)nb * k; i++, q += 4)
        m->w_sparse[i] = rdf(q);
    for (size_t i = 0; i < (size_t)nd * k; i++, q += 4)
        m->w_dense[i] = rdf(q);
    for (size_t i = 0; i < k; i++, q += 4)
        m->bias[i] = rdf(q);
    if (ls) {
        m->lex_slots = ls;
        m->lex_weight = rdf(p + 56);
        m->lex_key = mem_alloc((size_t)ls * sizeof *m->lex_key);
        m->lex_val = mem_alloc((size_t)ls * sizeof *m->lex_val);
        for (size_t i = 0; i < ls; i++, q += 4)
            m->lex_key[i] = rd32(q);
        for (size_t i = 0; i < ls; i++, q += 4)
            m->lex_val[i] = rdf(q);
    }
    if (nfp) {
        m->n_fp = nfp;
        m->fp = mem_alloc((size_t)nfp * sizeof *m->fp);
        for (size_t i = 0; i < nfp; i++, q += 4) {
            m->fp[i] = rd32(q);
            if (i && m->fp[i] <= m->fp[i - 1]) {
                route_model_free(m);
                snprintf(err, errlen, "model fingerprints not in ascending order (corrupt)");
                return NULL;
            }
        }
    }
    return m;
}

static int put_floats(buf_t *out, const float *v, size_t n)
{
    unsigned char tmp[4];
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        wr32(tmp, u);
        int rc = buf_append(out, tmp, 4);
        if (rc) return rc;
    }
    return 0;
}

int route_model_write(const route_model_t *m, buf_t *out)
{
    size_t start = out->len;
    unsigned char h[ROUTE_MODEL_HEADER] = {0};
    memcpy(h, ROUTE_MODEL_MAGIC, 4);
    wr32(h + 4, ROUTE_MODEL_VERSION);
    wr32(h + 8, m->kind);
    wr32(h + 12, m->n_out);
    wr32(h + 16, m->n_buckets);
    wr32(h + 20, m->n_dense);
    wr64(h + 24, m->seed);
    wr64(h + 32, m->digest);
    uint32_t t;
    memcpy(&t, &m->threshold, 4);
    wr32(h + 40, t);
    wr32(h + 44, m->n_train);
    wr32(h + 48, ROUTE_FEATURES_VERSION);
    wr32(h + 52, m->lex_slots);
    memcpy(&t, &m->lex_weight, 4);
    wr32(h + 56, t);
    wr32(h + 60, m->n_fp);
    int rc = buf_append(out, h, sizeof h);
    if (!rc) rc = put_floats(out, m->w_sparse, (size_t)m->n_buckets * m->n_out);
    if (!rc) rc = put_floats(out, m->w_dense, (size_t)m->n_dense * m->n_out);
    if (!rc) rc = put_floats(out, m->bias, m->n_out);
    for (size_t i = 0; !rc && i < m->lex_slots; i++) {
        unsigned char b[4];
        wr32(b, m->lex_key[i]);
        rc = buf_append(out, b, 4);
    }
    if (!rc && m->lex_slots) rc = put_floats(out, m->lex_val, m->lex_slots);
    for (size_t i = 0; !rc && i < m->n_fp; i++) {
        unsigned char b[4];
        wr32(b, m->fp[i]);
        rc = buf_append(out, b, 4);
    }
    if (rc) return rc;
    unsigned char d[8];
    wr64(d, hash_bytes(out->data + start, out->len - start, 0));
    return buf_append(out, d, 8);
}

/* ----------------------------------------------------------- fingerprints --- */

uint32_t route_model_fingerprint(const char *text, size_t len)
{
    return (uint32_t)(hash_bytes(text, len, 0x66696e6765727072ull) >> 32);
}

/* Ascending order of u32 (qsort). */
static int cmpu32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int route_model_fingerprints_set(route_model_t *m, const uint32_t *h, size_t n)
{
    if (!n) {
        mem_free(m->fp);
        m->fp = NULL;
        m->n_fp = 0;
        return 0;
    }
    uint32_t *v = mem_dup(h, n * sizeof *h);
    qsort(v, n, sizeof *v, cmpu32);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || v[i] != v[k - 1]) v[k++] = v[i];
    if (k > ROUTE_FP_MAX) {
        mem_free(v);
        return SY_ETOOBIG;
    }
    mem_free(m->fp);
    m->fp = v;
    m->n_fp = (uint32_t)k;
    return 0;
}

bool route_model_trained_on(const route_model_t *m, const char *text, size_t len)
{
    if (!m || !m->n_fp) return false;
    uint32_t h = route_model_fingerprint(text, len);
    size_t lo = 0, hi = m->n_fp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->fp[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n_fp && m->fp[lo] == h;
}

/* --------------------------------------------------------------- inference --- */

void route_model_logits(const route_model_t *m, const uint32_t *idx, size_t n_idx, float scale,
                        const float *dense, float *out)
{
    uint32_t k = m->n_out;
    float acc[ROUTE_MODEL_MAX_OUT] = {0};
    /* The hot loop: fixed trip counts for the two shapes in use let the compiler
     * unroll and vectorize the row sums. */
    if (k == 1) {
        float a0 = 0, a1 = 0;
        size_t i = 0;
        for (; i + 1 < n_idx; i += 2)
            a0 += m->w_sparse[idx[i]], a1 += m->w_sparse[idx[i + 1]];
        if (i < n_idx) a0 += m->w_sparse[idx[i]];
        acc[0] = a0 + a1;
    } else if (k == 2) {
        /* Two rows per step into two pairs of sums: shorter add chains. */
        float a0 = 0, a1 = 0, b0 = 0, b1 = 0;
        size_t i = 0;
        for (; i + 1 < n_idx; i += 2) {
            const float *w = m->w_sparse + (size_t)idx[i] * 2;
            const float *v = m->w_sparse + (size_t)idx[i + 1] * 2;
            a0 += w[0], a1 += w[1];
            b0 += v[0], b1 += v[1];
        }
        if (i < n_idx) {
            const float *w = m->w_sparse + (size_t)idx[i] * 2;
            a0 += w[0], a1 += w[1];
        }
        acc[0] = a0 + b0;
        acc[1] = a1 + b1;
    } else if (k == 11) {
        /* Rows of 11 floats: two 4-wide vectors and three scalars, all in
         * registers (an array accumulator makes every add wait on a store). */
        typedef float v4 __attribute__((vector_size(16)));
        v4 a = {0}, b = {0};
        float c8 = 0, c9 = 0, c10 = 0;
        for (size_t i = 0; i < n_idx; i++) {
            const float *w = m->w_sparse + (size_t)idx[i] * 11;
            v4 x, y;
            memcpy(&x, w, sizeof x);
            memcpy(&y, w + 4, sizeof y);
            a += x;
            b += y;
            c8 += w[8];
            c9 += w[9];
            c10 += w[10];
        }
        for (int j = 0; j < 4; j++)
            acc[j] = a[j], acc[4 + j] = b[j];
        acc[8] = c8;
        acc[9] = c9;
        acc[10] = c10;
    } else {
        for (size_t i = 0; i < n_idx; i++) {
            const float *w = m->w_sparse + (size_t)idx[i] * k;
            for (uint32_t j = 0; j < k; j++)
                acc[j] += w[j];
        }
    }
    for (uint32_t j = 0; j < k; j++)
        out[j] = acc[j] * scale + m->bias[j];
    for (uint32_t d = 0; d < m->n_dense; d++) {
        const float *w = m->w_dense + (size_t)d * k;
        float x = dense[d];
        if (x == 0.0f) continue;
        for (uint32_t j = 0; j < k; j++)
            out[j] += w[j] * x;
    }
}

static float ngram_scale(size_t n)
{
    return n ? 1.0f / sqrtf((float)n) : 0.0f;
}

/* Logits to probabilities: one sigmoid per output for the need-of-cloud kind (its
 * heads are independent), softmax for the classifier. */
static void squash(const route_model_t *m, float *out)
{
    uint32_t k = m->n_out;
    if (k == 1 || m->kind == ROUTE_MODEL_CLOUD) {
        for (uint32_t j = 0; j < k; j++)
            out[j] = 1.0f / (1.0f + expf(-out[j]));
        return;
    }
    float mx = out[0], sum = 0;
    for (uint32_t j = 1; j < k; j++)
        mx = fmaxf(mx, out[j]);
    for (uint32_t j = 0; j < k; j++)
        sum += out[j] = expf(out[j] - mx);
    for (uint32_t j = 0; j < k; j++)
        out[j] /= sum;
}

void route_model_predict(const route_model_t *m, const uint32_t *idx, size_t n_idx,
                         const float *dense, float *out)
{
    route_model_logits(m, idx, n_idx, ngram_scale(n_idx), dense, out);
    squash(m, out);
}

float route_model_cloud_score(const route_model_t *m, const uint32_t *idx, size_t n_idx,
                              const float *dense)
{
    float p[ROUTE_MODEL_MAX_OUT];
    route_model_predict(m, idx, n_idx, dense, p);
    return m->n_out >= 2 ? 0.5f * (1.0f + p[0] - p[1]) : p[0];
}

/* ----------------------------------------------------------------- lexicon --- */

static inline uint32_t lex_tag(uint64_t h)
{
    uint32_t t = (uint32_t)(h >> 32);
    return t ? t : 1;
}

int route_model_lexicon_set(route_model_t *m, const uint64_t *keys, const float *vals, size_t n,
                            float weight)
{
    uint32_t slots = 0;
    if (n) {
        slots = 64;
        while (slots < 2 * n && slots < ROUTE_LEX_MAX_SLOTS)
            slots <<= 1;
        if (slots < 2 * n) return SY_ETOOBIG;
    }
    mem_free(m->lex_key);
    mem_free(m->lex_val);
    m->lex_slots = slots;
    m->lex_weight = weight;
    m->lex_key = slots ? mem_calloc(slots, sizeof *m->lex_key) : NULL;
    m->lex_val = slots ? mem_calloc(slots, sizeof *m->lex_val) : NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = (uint32_t)keys[i] & (slots - 1), t = lex_tag(keys[i]);
        while (m->lex_key[s] && m->lex_key[s] != t)
            s = (s + 1) & (slots - 1);
        m->lex_key[s] = t; /* a tag already there (a 32-bit collision) is overwritten */
        m->lex_val[s] = vals[i];
    }
    return 0;
}

/* Lookups probe from the key's low bits; a slot found is marked in a bitmap over
 * the slots (ROUTE_LEX_MAX_SLOTS bits on the stack) so a prompt that repeats a word
 * counts it once, as the lexicon was built. */
float route_model_lexicon(const route_model_t *m, const uint64_t *h, size_t n)
{
    if (!m->lex_slots || !n) return 0.0f;
    uint32_t mask = m->lex_slots - 1;
    uint64_t seen[ROUTE_LEX_MAX_SLOTS / 64];
    memset(seen, 0, (m->lex_slots + 63) / 64 * sizeof *seen);
    float sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = (uint32_t)h[i] & mask, t = lex_tag(h[i]);
        while (m->lex_key[s] && m->lex_key[s] != t)
            s = (s + 1) & mask;
        if (!m->lex_key[s] || (seen[s / 64] >> (s % 64) & 1)) continue;
        seen[s / 64] |= 1ull << (s % 64);
        sum += m->lex_val[s];
    }
    return m->lex_weight * sum / (float)n;
}

float route_model_cloud_text(const route_model_t *m, float score, const char *text, size_t len)
{
    if (!m->lex_slots || score < 0) return score;
    uint64_t h[ROUTE_WORDS_MAX];
    size_t n = route_words(text, len, m->seed, h, ROUTE_WORDS_MAX);
    float s = score + route_model_lexicon(m, h, n);
    return s < 0.0f ? 0.0f : s > 1.0f ? 1.0f : s;
}

/* ---------------------------------------------------------------- training --- */

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return hash_mix(*s);
}

/* Plain SGD on the log loss with a decaying step and lazy-free L2 (applied to the
 * weights an example touches, which is what keeps an epoch linear in the data). */
void route_model_train(route_model_t *m, const route_example_t *ex, size_t n,
                       const route_train_opts_t *o)
{
    uint32_t k = m->n_out;
    size_t *order = mem_alloc((n ? n : 1) * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    uint64_t rs = o->seed;
    size_t t = 0;
    float p[ROUTE_MODEL_MAX_OUT], g[ROUTE_MODEL_MAX_OUT];
    size_t ns = (size_t)m->n_buckets * k, nd = (size_t)m->n_dense * k;
    float *avg = o->average ? mem_calloc(ns + nd + k, sizeof *avg) : NULL;
    for (uint32_t ep = 0; ep < o->epochs; ep++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = rng_next(&rs) % i;
            size_t tmp = order[i - 1];
            order[i - 1] = order[j];
            order[j] = tmp;
        }
        for (size_t ii = 0; ii < n; ii++, t++) {
            const route_example_t *e = &ex[order[ii]];
            float lr = o->lr / (1.0f + (float)t / (float)(n ? n : 1));
            float sc = ngram_scale(e->n_idx);
            route_model_logits(m, e->idx, e->n_idx, sc, e->dense, p);
            squash(m, p);
            for (uint32_t j = 0; j < k; j++) {
                float y = k == 1                                       ? e->label
                          : m->kind == ROUTE_MODEL_CLOUD && e->targets ? e->targets[j]
                          : (uint32_t)e->label == j                    ? 1.0f
                                                                       : 0.0f;
                g[j] = (p[j] - y) * e->weight * lr;
            }
            float decay = 1.0f - lr * o->l2;
            for (uint32_t i = 0; i < e->n_idx; i++) {
                float *w = m->w_sparse + (size_t)e->idx[i] * k;
                for (uint32_t j = 0; j < k; j++)
                    w[j] = w[j] * decay - g[j] * sc;
            }
            for (uint32_t d = 0; d < m->n_dense; d++) {
                float *w = m->w_dense + (size_t)d * k;
                for (uint32_t j = 0; j < k; j++)
                    w[j] -= g[j] * e->dense[d];
            }
            for (uint32_t j = 0; j < k; j++)
                m->bias[j] -= g[j];
        }
        if (avg) {
            for (size_t i = 0; i < ns; i++)
                avg[i] += m->w_sparse[i];
            for (size_t i = 0; i < nd; i++)
                avg[ns + i] += m->w_dense[i];
            for (size_t i = 0; i < k; i++)
                avg[ns + nd + i] += m->bias[i];
        }
    }
    if (avg && o->epochs) {
        float inv = 1.0f / (float)o->epochs;
        for (size_t i = 0; i < ns; i++)
            m->w_sparse[i] = avg[i] * inv;
        for (size_t i = 0; i < nd; i++)
            m->w_dense[i] = avg[ns + i] * inv;
        for (size_t i = 0; i < k; i++)
            m->bias[i] = avg[ns + nd + i] * inv;
    }
    mem_free(avg);
    m->n_train = (uint32_t)n;
    mem_free(order);
}
