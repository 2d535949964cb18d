/* test_engine_gguf.c — GGUF writer/reader round trip, and hostile files: truncated,
 * mutated, and hand-built with bad counts, lengths, offsets, types and shapes. Every
 * one must give an error with a message, never a crash (ASan/UBSan watch the reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

static char shared[512];

/* Skips the current test, saying why: the shared models are not on this machine. */
#define skip_no_data()                                                                             \
    do {                                                                                           \
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);      \
        skip();                                                                                    \
    } while (0)

/* Writes a small valid file with the writer and returns its bytes (malloc'd). */
static uint8_t *valid_file(size_t *size)
{
    static float a[64 * 4], b[64];
    for (int i = 0; i < 64 * 4; i++)
        a[i] = (float)i * 0.5f;
    for (int i = 0; i < 64; i++)
        b[i] = (float)-i;
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 7);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_writer_set_bool(w, "flag", true);
    const char *strs[] = {"a", "", "\xe2\x96\x81hello"};
    gguf_writer_set_arr_str(w, "strings", strs, 3);
    int32_t ints[3] = {-1, 2, 3};
    gguf_writer_set_arr(w, "ints", GGUF_TYPE_I32, ints, 3);
    uint64_t ne_a[2] = {64, 4}, ne_b[1] = {64};
    assert_int_equal(gguf_writer_add_tensor(w, "a", KERN_F32, 2, ne_a, a, sizeof a), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "b", KERN_F32, 1, ne_b, b, sizeof b), 0);
    /* Bad shapes and duplicates are refused by the writer. */
    assert_int_equal(gguf_writer_add_tensor(w, "a", KERN_F32, 1, ne_b, b, sizeof b), SY_EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "c", KERN_F32, 1, ne_b, b, 3), SY_EINVAL);
    char path[] = "/tmp/sy_gguf_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(*size);
    assert_int_equal(fread(d, 1, *size, f), *size);
    fclose(f);
    unlink(path);
    return d;
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t n;
    uint8_t *d = valid_file(&n);
    gguf_t *g;
    char err[256];
    assert_int_equal(gguf_open_mem(d, n, &g, err, sizeof err), 0);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 6);
    assert_int_equal(g->n_tensors, 2);
    uint32_t u;
    float f;
    bool b;
    const char *s;
    size_t sl;
    assert_int_equal(gguf_get_u32(g, "llama.block_count", &u), 0);
    assert_int_equal(u, 7);
    assert_int_equal(gguf_get_f32(g, "llama.rope.freq_base", &f), 0);
    assert_float_equal(f, 500000.0f, 0);
    assert_int_equal(gguf_get_bool(g, "flag", &b), 0);
    assert_true(b);
    assert_int_equal(gguf_get_str(g, "general.architecture", &s, &sl), 0);
    assert_int_equal(sl, 5);
    assert_memory_equal(s, "llama", 5);
    assert_int_equal(gguf_get_u32(g, "missing", &u), SY_ENOTFOUND);
    assert_int_equal(gguf_get_u32(g, "general.architecture", &u), SY_EINVAL);
    const gguf_arr_t *arr;
    assert_int_equal(gguf_get_arr(g, "strings", &arr), 0);
    assert_int_equal(arr->n, 3);
    assert_memory_equal(gguf_arr_str(arr, 2, &sl), "\xe2\x96\x81hello", 8);
    assert_int_equal(sl, 8);
    gguf_arr_str(arr, 1, &sl);
    assert_int_equal(sl, 0);
    assert_int_equal(gguf_get_arr(g, "ints", &arr), 0);
    assert_int_equal(gguf_arr_int(arr, 0), -1);
    const gguf_tensor_t *t = gguf_find_tensor(g, "a");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 4);
    assert_int_equal(t->nbytes, 64 * 4 * 4);
    /* Zero-copy and aligned. */
    assert_true((const uint8_t *)t->data >= d && (const uint8_t *)t->data < d + n);
    assert_int_equal(((const uint8_t *)t->data - d) % 32, 0);
    assert_float_equal(((const float *)t->data)[3], 1.5f, 0);
    assert_float_equal(((const float *)gguf_find_tensor(g, "b")->data)[5], -5.0f, 0);
    gguf_free(g);
    free(d);
}

/* Every truncation of a valid file that cuts into its header or tensor data fails. */
static void test_truncated(void **state)
{
    (void)state;
    size_t n;
    uint8_t *d = valid_file(&n);
    gguf_t *g;
    char err[256];
    assert_int_equal(gguf_open_mem(d, n, &g, err, sizeof err), 0);
    size_t end = g->data_offset + 64 * 4 * 4 + 64 * 4; /* b is padded to 32 bytes: exact */
    gguf_free(g);
    for (size_t k = 0; k < end; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, d, k);
        int rc = gguf_open_mem(c, k, &g, err, sizeof err);
        if (rc == 0) fail_msg("truncated to %zu of %zu bytes: accepted", k, n);
        assert_true(rc == SY_ECORRUPT || rc == SY_EUNSUPPORTED);
        assert_true(strlen(err) > 0);
        free(c);
    }
    free(d);
}

/* Random byte mutations: accept or refuse, never read out of bounds. */
static void test_mutations(void **state)
{
    (void)state;
    size_t n;
    uint8_t *d = valid_file(&n);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t header = 400 < n ? 400 : n;
    int refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *c = malloc(n);
        memcpy(c, d, n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % header);
            c[at] = (iter & 1) ? (uint8_t)(rng >> 32) : (uint8_t)(c[at] ^ (1u << (rng >> 40) % 8));
        }
        gguf_t *g;
        char err[256];
        if (gguf_open_mem(c, n, &g, err, sizeof err) == 0) {
            /* Whatever was accepted must be safe to use. */
            for (size_t i = 0; i < g->n_tensors; i++) {
                const uint8_t *p = g->tensors[i].data;
                volatile uint8_t x = p[0];
                x = p[g->tensors[i].nbytes - 1];
                (void)x;
            }
            tokenizer_t *t;
            if (tokenizer_from_gguf(g, &t, err, sizeof err) == 0) tokenizer_free(t);
            gguf_free(g);
        } else {
            refused++;
        }
        free(c);
    }
    assert_true(refused > 100);
    free(d);
}

/* ---------------------------------------------------- hand-built files ---- */

typedef struct bb {
    uint8_t d[4096];
    size_t n;
} bb_t;

static void put(bb_t *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void p32(bb_t *b, uint32_t v)
{
    put(b, &v, 4);
}
static void p64(bb_t *b, uint64_t v)
{
    put(b, &v, 8);
}
static void pstr(bb_t *b, const char *s)
{
    p64(b, strlen(s));
    put(b, s, strlen(s));
}

/* A header with one tensor info; fields chosen by the caller. */
static void one_tensor(bb_t *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
                       size_t data_bytes)
{
    b->n = 0;
    p32(b, GGUF_MAGIC);
    p32(b, 3);
    p64(b, 1);
    p64(b, 0);
    pstr(b, "t");
    p32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        p64(b, ne[i]);
    p32(b, type);
    p64(b, off);
    while (b->n % 32)
        b->d[b->n++] = 0;
    memset(b->d + b->n, 0, data_bytes);
    b->n += data_bytes;
}

/* Opens b and expects rc with a message containing want. */
static void expect(const bb_t *b, int rc, const char *want)
{
    gguf_t *g;
    char err[256] = "";
    int got = gguf_open_mem(b->d, b->n, &g, err, sizeof err);
    if (got != rc) fail_msg("expected %d, got %d (%s)", rc, got, err);
    if (!strstr(err, want)) fail_msg("message '%s' lacks '%s'", err, want);
}

static void test_hostile(void **state)
{
    (void)state;
    bb_t b;
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    one_tensor(&b, 2, ne, KERN_F32, 0, 256);
    gguf_t *g;
    char err[256];
    assert_int_equal(gguf_open_mem(b.d, b.n, &g, err, sizeof err), 0);
    gguf_free(g);

    one_tensor(&b, 2, ne, KERN_F32, 64, 256);
    expect(&b, SY_ECORRUPT, "past the end"); /* offset past the data */
    one_tensor(&b, 2, ne, KERN_F32, 0, 255);
    expect(&b, SY_ECORRUPT, "past the end"); /* data one byte short */
    one_tensor(&b, 2, ne, KERN_F32, 4, 256);
    expect(&b, SY_ECORRUPT, "aligned");
    one_tensor(&b, 2, ne, 77, 0, 256);
    expect(&b, SY_EUNSUPPORTED, "type 77"); /* unknown tensor type */
    one_tensor(&b, 5, ne, KERN_F32, 0, 256);
    expect(&b, SY_ECORRUPT, "dimensions");
    uint64_t huge[4] = {1ull << 40, 1ull << 40, 1ull << 40, 1};
    one_tensor(&b, 3, huge, KERN_F32, 0, 0);
    expect(&b, SY_ECORRUPT, "dimension"); /* n_elements overflow */
    uint64_t big[2] = {1ull << 39, 1ull << 23};
    one_tensor(&b, 2, big, KERN_F32, 0, 0);
    expect(&b, SY_ECORRUPT, ""); /* product * 4 bytes overflows */
    uint64_t odd[2] = {33, 2};
    one_tensor(&b, 2, odd, KERN_Q8_0, 0, 256);
    expect(&b, SY_ECORRUPT, "invalid for q8_0"); /* row not a multiple of 32 */
    uint64_t zero[2] = {0, 2};
    one_tensor(&b, 2, zero, KERN_F32, 0, 256);
    expect(&b, SY_ECORRUPT, "dimension");

    /* Header-level damage. */
    one_tensor(&b, 2, ne, KERN_F32, 0, 256);
    bb_t c = b;
    memcpy(c.d, "GGUG", 4);
    expect(&c, SY_ECORRUPT, "magic");
    c = b;
    c.d[4] = 1;
    expect(&c, SY_EUNSUPPORTED, "version");
    c = b;
    uint64_t many = 1ull << 40;
    memcpy(c.d + 8, &many, 8);
    expect(&c, SY_ECORRUPT, "tensor count");
    c = b;
    memcpy(c.d + 16, &many, 8);
    expect(&c, SY_ECORRUPT, "metadata count");
    c = b;
    memcpy(c.d + 24, &many, 8); /* tensor name length */
    expect(&c, SY_ECORRUPT, "tensor name");

    /* Metadata: string length past the end, unknown value type, array too long,
     * bad alignment, duplicate key. */
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 2);
    p64(&b, 0);
    p64(&b, 1);
    pstr(&b, "k");
    p32(&b, GGUF_TYPE_STRING);
    p64(&b, 1000);
    put(&b, "abc", 3);
    expect(&b, SY_ECORRUPT, "string value");
    b.n = 32;
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 3);
    p64(&b, 0);
    p64(&b, 1);
    pstr(&b, "k");
    p32(&b, 99);
    p32(&b, 0);
    expect(&b, SY_ECORRUPT, "unknown value type");
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 3);
    p64(&b, 0);
    p64(&b, 1);
    pstr(&b, "k");
    p32(&b, GGUF_TYPE_ARRAY);
    p32(&b, GGUF_TYPE_U64);
    p64(&b, 1ull << 61);
    expect(&b, SY_ECORRUPT, "past the end");
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 3);
    p64(&b, 0);
    p64(&b, 1);
    pstr(&b, "k");
    p32(&b, GGUF_TYPE_ARRAY);
    p32(&b, GGUF_TYPE_STRING);
    p64(&b, 1ull << 50);
    expect(&b, SY_ECORRUPT, "array count");
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 3);
    p64(&b, 0);
    p64(&b, 1);
    pstr(&b, "general.alignment");
    p32(&b, GGUF_TYPE_U32);
    p32(&b, 48);
    expect(&b, SY_ECORRUPT, "alignment");
    b.n = 0;
    p32(&b, GGUF_MAGIC);
    p32(&b, 3);
    p64(&b, 0);
    p64(&b, 2);
    pstr(&b, "k");
    p32(&b, GGUF_TYPE_U8);
    b.d[b.n++] = 1;
    pstr(&b, "k");
    p32(&b, GGUF_TYPE_U8);
    b.d[b.n++] = 1;
    expect(&b, SY_ECORRUPT, "duplicate");
}

/* A model file with a valid container but missing tensors is refused by the loader. */
static void test_model_missing_tensor(void **state)
{
    (void)state;
    char vp[600];
    snprintf(vp, sizeof vp, "%s/data/models/gguf/ggml-vocab-llama-spm.gguf", shared);
    if (access(vp, R_OK)) skip_no_data();
    model_t *m;
    char err[256];
    int rc = model_load(vp, NULL, &m, err, sizeof err);
    assert_int_equal(rc, SY_ENOTFOUND);
    assert_non_null(strstr(err, "token_embd.weight"));
    assert_int_equal(model_load("/nonexistent/x.gguf", NULL, &m, err, sizeof err), -2 /* ENOENT */);
}

int main(void)
{
    const char *e = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", e && *e ? e : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_model_missing_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
