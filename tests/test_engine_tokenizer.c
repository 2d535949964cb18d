/* test_engine_tokenizer.c — the SentencePiece tokenizer against llama.cpp's vocabulary
 * test cases, decoding round trips, the llama2.c tokenizer.bin, special pieces and the
 * byte-level BPE kind on a small hand-made vocabulary. */
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
#include "engine/tokenizer.h"

static char shared[512];

/* Skips the current test, saying why: the shared models are not on this machine. */
#define skip_no_data()                                                                             \
    do {                                                                                           \
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);      \
        skip();                                                                                    \
    } while (0)

static const char *shared_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", shared, rel);
    return access(out, R_OK) == 0 ? out : NULL;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Decodes ids to text, concatenating pieces. */
static size_t decode_all(const tokenizer_t *t, const int *ids, int n, char *out, size_t cap)
{
    size_t w = 0;
    int prev = -1;
    for (int i = 0; i < n; i++) {
        int k = tokenizer_decode(t, prev, ids[i], out + w, cap - w);
        assert_true(k >= 0 && (size_t)k <= cap - w);
        w += (size_t)k;
        prev = ids[i];
    }
    out[w] = 0;
    return w;
}

static void test_vocab_cases(void **state)
{
    (void)state;
    char vp[600], ip[600], op[600], err[256];
    if (!shared_path(vp, sizeof vp, "data/models/gguf/ggml-vocab-llama-spm.gguf") ||
        !shared_path(ip, sizeof ip, "data/models/gguf/ggml-vocab-llama-spm.gguf.inp") ||
        !shared_path(op, sizeof op, "data/models/gguf/ggml-vocab-llama-spm.gguf.out"))
        skip_no_data();
    gguf_t *g;
    assert_int_equal(gguf_open(vp, &g, err, sizeof err), 0);
    tokenizer_t *t;
    int rc = tokenizer_from_gguf(g, &t, err, sizeof err);
    if (rc) fail_msg("tokenizer: %s", err);
    gguf_free(g); /* the tokenizer keeps its own copy */
    assert_int_equal(tokenizer_kind(t), TOKENIZER_SPM);
    assert_int_equal(tokenizer_n_vocab(t), 32000);

    size_t il, ol;
    char *inp = slurp(ip, &il), *outp = slurp(op, &ol);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *ip_cur = inp, *op_cur = outp;
    int cases = 0;
    static int ids[4096];
    static char text[65536];
    while (*ip_cur) {
        char *end = strstr(ip_cur, sep);
        assert_non_null(end);
        size_t n = (size_t)(end - ip_cur);
        char *eol = strchr(op_cur, '\n');
        assert_non_null(eol);
        *eol = 0;
        int expect[4096], ne = 0;
        for (char *p = op_cur; *p;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            expect[ne++] = (int)v;
            p = q;
        }
        int got = tokenizer_encode(t, ip_cur, n, false, false, ids, 4096);
        if (got != ne || memcmp(ids, expect, (size_t)ne * sizeof(int)))
            fail_msg("case %d '%.*s': got %d ids (first %d), expected %d (first %d)", cases, (int)n,
                     ip_cur, got, got ? ids[0] : -1, ne, ne ? expect[0] : -1);
        /* Decoding gives the text back (SentencePiece's prefix space aside). */
        size_t dl = decode_all(t, ids, got, text, sizeof text - 1);
        const char *d = text;
        if (dl && text[0] == ' ') d++, dl--;
        if (dl != n || memcmp(d, ip_cur, n)) fail_msg("case %d does not round-trip", cases);
        cases++;
        ip_cur = end + strlen(sep);
        op_cur = eol + 1;
    }
    assert_int_equal(cases, 46);
    /* With BOS, and the count when the output is too small. */
    assert_int_equal(tokenizer_encode(t, "Hello world", 11, true, false, ids, 1), 3);
    assert_int_equal(ids[0], 1);
    free(inp);
    free(outp);
    tokenizer_free(t);
}

static void test_llama2c_tokenizer(void **state)
{
    (void)state;
    char tp[600], err[256];
    if (!shared_path(tp, sizeof tp, "data/models/llama2c/tok512.bin")) skip_no_data();
    tokenizer_t *t;
    assert_int_equal(tokenizer_from_llama2c(tp, 512, &t, err, sizeof err), 0);
    assert_string_equal(tokenizer_piece(t, 1), "<s>");
    assert_string_equal(tokenizer_piece(t, 2), "</s>");
    assert_int_equal(tokenizer_type(t, 3), TOKENIZER_TYPE_BYTE);
    int ids[64];
    const char *s = "Once upon a time, there was a little girl named Lily.";
    int n = tokenizer_encode(t, s, strlen(s), true, false, ids, 64);
    assert_true(n > 3 && n < 40);
    assert_int_equal(ids[0], 1);
    /* The golden run starts "Once upon a time": 403 407 261 378. */
    assert_int_equal(ids[1], 403);
    assert_int_equal(ids[2], 407);
    char text[256];
    decode_all(t, ids, n, text, sizeof text - 1);
    assert_string_equal(text, s);
    /* Bytes outside the vocabulary fall back to <0xXX> and decode back. */
    const char *odd = "\xc3\xa9t\xc3\xa9 \xf0\x9f\xa6\x99";
    n = tokenizer_encode(t, odd, strlen(odd), false, false, ids, 64);
    decode_all(t, ids, n, text, sizeof text - 1);
    assert_string_equal(text + (text[0] == ' '), odd);
    tokenizer_free(t);
    /* Wrong vocabulary size: the file runs out. */
    assert_int_equal(tokenizer_from_llama2c(tp, 100000, &t, err, sizeof err), SY_ECORRUPT);
}

/* A tiny byte-level BPE vocabulary written with the GGUF writer. */
static void test_bpe_kind(void **state)
{
    (void)state;
    /* Ġ is U+0120, the byte-level form of a space. */
    const char *toks[] = {"h",           "e",
                          "l",           "o",
                          "\xc4\xa0",    "w",
                          "r",           "d",
                          "he",          "ll",
                          "hell",        "hello",
                          "\xc4\xa0w",   "or",
                          "\xc4\xa0wor", "\xc4\xa0world",
                          "ld",          "<|im_start|>",
                          "!",           "1",
                          "2",           "3",
                          "12",          "123"};
    const char *merges[] = {"h e",          "l l", "he ll",          "hell o", "\xc4\xa0 w", "o r",
                            "\xc4\xa0w or", "l d", "\xc4\xa0wor ld", "1 2",    "12 3"};
    int n = (int)(sizeof toks / sizeof *toks);
    int32_t types[32];
    for (int i = 0; i < n; i++)
        types[i] = i == 17 ? TOKENIZER_TYPE_CONTROL : TOKENIZER_TYPE_NORMAL;
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, (size_t)n);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, sizeof merges / sizeof *merges);
    char path[] = "/tmp/sy_bpe_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    gguf_t *g;
    char err[256];
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    tokenizer_t *t;
    assert_int_equal(tokenizer_from_gguf(g, &t, err, sizeof err), 0);
    gguf_free(g);
    unlink(path);
    int ids[32];
    int k = tokenizer_encode(t, "hello world!", 12, false, false, ids, 32);
    assert_int_equal(k, 3);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 15);
    assert_int_equal(ids[2], 18);
    char text[64];
    assert_int_equal(decode_all(t, ids, k, text, sizeof text - 1), 12);
    assert_string_equal(text, "hello world!");
    /* Special pieces only when asked. */
    k = tokenizer_encode(t, "<|im_start|>hello", 17, false, true, ids, 32);
    assert_int_equal(k, 2);
    assert_int_equal(ids[0], 17);
    assert_int_equal(ids[1], 11);
    k = tokenizer_encode(t, "123", 3, false, false, ids, 32);
    assert_int_equal(k, 1);
    assert_int_equal(ids[0], 23);
    tokenizer_free(t);
}

int main(void)
{
    const char *e = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", e && *e ? e : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_cases),
        cmocka_unit_test(test_llama2c_tokenizer),
        cmocka_unit_test(test_bpe_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
