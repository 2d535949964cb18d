/* test_route_model_lexicon.c — the need-of-cloud model's gain lexicon: word keys
 * (route_words), lookups (distinct entries, mean over the prompt's n-grams, the
 * weight), the score it adjusts (clamped), the file round trip in format version
 * 3, and refusal of a lexicon header that is out of range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "route/features.h"
#include "route/model.h"

#define SEED 77u

/* Keys of one text (owned array, count in *n). */
static uint64_t *words(const char *s, size_t *n)
{
    uint64_t *h = mem_alloc(ROUTE_WORDS_MAX * sizeof *h);
    *n = route_words(s, strlen(s), SEED, h, ROUTE_WORDS_MAX);
    return h;
}

/* Words are lowercased alphanumeric runs of two or more bytes; bigrams pair
 * consecutive such words (one-byte words are skipped, not breaks). */
static void test_words(void **state)
{
    (void)state;
    size_t n1, n2, n3;
    uint64_t *a = words("The cat, sat", &n1);
    uint64_t *b = words("the CAT a sat!", &n2);
    uint64_t *c = words("sat the cat", &n3);
    assert_int_equal(n1, 5); /* the, cat, the_cat, sat, cat_sat */
    assert_int_equal(n2, 5);
    assert_memory_equal(a, b, 5 * sizeof *a);
    assert_int_equal(n3, 5);
    assert_int_equal(c[0], a[3]);     /* "sat" */
    assert_int_equal(c[1], a[0]);     /* "the" */
    assert_int_not_equal(c[2], a[2]); /* sat_the is not the_cat */
    assert_int_equal(c[4], a[2]);     /* the_cat */
    /* the cap holds: no more than max keys written */
    uint64_t small[3];
    assert_true(route_words("one two three four", 18, SEED, small, 3) <= 3);
    /* only the first ROUTE_WORDS_MAX_BYTES are read */
    char *big = mem_alloc(ROUTE_WORDS_MAX_BYTES * 2 + 1);
    for (size_t i = 0; i < ROUTE_WORDS_MAX_BYTES * 2; i++)
        big[i] = i % 3 == 2 ? ' ' : 'a' + (char)(i / 3 % 26);
    big[ROUTE_WORDS_MAX_BYTES * 2] = 0;
    uint64_t *h = mem_alloc(ROUTE_WORDS_MAX * sizeof *h);
    size_t k = route_words(big, ROUTE_WORDS_MAX_BYTES * 2, SEED, h, ROUTE_WORDS_MAX);
    assert_true(k <= ROUTE_WORDS_MAX);
    assert_int_equal(k, 2 * ((ROUTE_WORDS_MAX_BYTES + 1) / 3) - 1);
    mem_free(h);
    mem_free(big);
    mem_free(a);
    mem_free(b);
    mem_free(c);
}

/* Mean over the prompt's n-grams of the entries found, each distinct entry once,
 * times the weight; clamped score; no lexicon = the score unchanged. */
static void test_lookup(void **state)
{
    (void)state;
    route_model_t *m = route_model_new(ROUTE_MODEL_CLOUD, 2, 64, 0, SEED);
    size_t n;
    uint64_t *k = words("integral theorem", &n); /* integral, theorem, integral_theorem */
    assert_int_equal(n, 3);
    assert_float_equal(route_model_cloud_text(m, 0.4f, "integral theorem", 16), 0.4f, 0);
    float v[2] = {0.3f, -0.1f};
    uint64_t keys[2] = {k[0], k[1]};
    assert_int_equal(route_model_lexicon_set(m, keys, v, 2, 2.0f), 0);
    assert_int_equal(m->lex_slots, 64);
    /* "integral theorem": 3 n-grams, both entries found: 2 * (0.3 - 0.1) / 3 */
    assert_float_equal(route_model_lexicon(m, k, n), 2.0f * 0.2f / 3.0f, 1e-6);
    /* a repeat counts once in the sum but every n-gram counts in the mean */
    size_t nr;
    uint64_t *r = words("integral integral", &nr); /* integral, integral, integral_integral */
    assert_int_equal(nr, 3);
    assert_float_equal(route_model_lexicon(m, r, nr), 2.0f * 0.3f / 3.0f, 1e-6);
    /* unknown words only: 0 */
    size_t nu;
    uint64_t *u = words("chat about weather", &nu);
    assert_float_equal(route_model_lexicon(m, u, nu), 0.0f, 0);
    assert_float_equal(route_model_cloud_text(m, 0.5f, "integral theorem", 16),
                       0.5f + 2.0f * 0.2f / 3.0f, 1e-6);
    /* clamped to 0..1; a missing score (-1) is left alone */
    v[0] = 30.0f;
    assert_int_equal(route_model_lexicon_set(m, keys, v, 2, 1.0f), 0);
    assert_float_equal(route_model_cloud_text(m, 0.9f, "integral theorem", 16), 1.0f, 0);
    assert_float_equal(route_model_cloud_text(m, -1.0f, "integral theorem", 16), -1.0f, 0);
    v[0] = -30.0f;
    assert_int_equal(route_model_lexicon_set(m, keys, v, 2, 1.0f), 0);
    assert_float_equal(route_model_cloud_text(m, 0.9f, "integral theorem", 16), 0.0f, 0);
    /* too many entries for the table */
    assert_int_equal(route_model_lexicon_set(m, keys, v, ROUTE_LEX_MAX_SLOTS / 2 + 1, 1.0f),
                     SY_ETOOBIG);
    mem_free(u);
    mem_free(r);
    mem_free(k);
    route_model_free(m);
}

/* Many entries (collisions in the low bits probe on): every key finds its own
 * value, and the file round trip keeps the lexicon; a corrupt lexicon size is
 * refused. */
static void test_roundtrip(void **state)
{
    (void)state;
    enum { N = 3000 };
    uint64_t *keys = mem_alloc(N * sizeof *keys);
    float *vals = mem_alloc(N * sizeof *vals);
    for (size_t i = 0; i < N; i++)
        keys[i] = hash_mix(i + 1), vals[i] = (float)i / N - 0.5f;
    route_model_t *m = route_model_new(ROUTE_MODEL_CLOUD, 2, 256, 4, SEED);
    m->w_sparse[7] = 0.25f;
    assert_int_equal(route_model_lexicon_set(m, keys, vals, N, 1.5f), 0);
    assert_int_equal(m->lex_slots, 8192);
    for (size_t i = 0; i < N; i += 97)
        assert_float_equal(route_model_lexicon(m, &keys[i], 1), 1.5f * vals[i], 1e-6);

    buf_t b;
    buf_init(&b, 1u << 20);
    assert_int_equal(route_model_write(m, &b), 0);
    char err[160];
    route_model_t *p = route_model_parse(b.data, b.len, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(p->lex_slots, m->lex_slots);
    assert_float_equal(p->lex_weight, 1.5f, 0);
    assert_memory_equal(p->lex_key, m->lex_key, m->lex_slots * sizeof *m->lex_key);
    assert_memory_equal(p->lex_val, m->lex_val, m->lex_slots * sizeof *m->lex_val);
    assert_float_equal(p->w_sparse[7], 0.25f, 0);
    route_model_free(p);

    /* lexicon slots not a power of two, fixed checksum: refused by the range check */
    b.data[52] = 100, b.data[53] = 0, b.data[54] = 0, b.data[55] = 0;
    uint64_t h = hash_bytes(b.data, b.len - 8, 0);
    memcpy(b.data + b.len - 8, &h, 8); /* little-endian host */
    assert_null(route_model_parse(b.data, b.len, err, sizeof err));
    assert_non_null(strstr(err, "lexicon"));
    buf_deinit(&b);

    /* a model without a lexicon writes L = 0 and reads back without one */
    route_model_t *z = route_model_new(ROUTE_MODEL_CLOUD, 2, 256, 4, SEED);
    buf_init(&b, 1u << 20);
    assert_int_equal(route_model_write(z, &b), 0);
    p = route_model_parse(b.data, b.len, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(p->lex_slots, 0);
    assert_float_equal(route_model_cloud_text(p, 0.3f, "integral theorem", 16), 0.3f, 0);
    route_model_free(p);
    buf_deinit(&b);
    route_model_free(z);
    route_model_free(m);
    mem_free(vals);
    mem_free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
