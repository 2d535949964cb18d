/* test_engine_perplexity.c — the perplexity chunk layouts (engine_ppl_*) on
 * stories260K and the TinyStories validation text: chunk counts, which text tokens
 * each chunk holds and which of them are scored, checked against sums of
 * engine_score log probabilities built independently here, token by token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/engine.h"

#define CTX        64
#define CHUNKS     4
#define TEXT_BYTES 4096

static char shared[512];

/* Skips the current test, saying why: the shared model or text is not here. */
#define skip_no_data()                                                                             \
    do {                                                                                           \
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);      \
        skip();                                                                                    \
    } while (0)

/* Loads stories260K (llama2.c path) and tokenizes the start of the TinyStories
 * validation text into toks (no BOS). Returns the engine or NULL when absent. */
static engine_t *load(int *toks, int max, int *n_tok)
{
    char bin[600], tok[600], txt[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    snprintf(txt, sizeof txt, "%s/data/corpora/tinystories_val_subset.txt", shared);
    if (access(bin, R_OK) || access(tok, R_OK) || access(txt, R_OK)) return NULL;
    static char text[TEXT_BYTES];
    FILE *f = fopen(txt, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    *n_tok = engine_tokenize(e, text, n, false, false, toks, max);
    assert_true(*n_tok > (CHUNKS + 1) * CTX);
    return e;
}

/* The negative log likelihood of chunk positions from..CTX-1 of the chunk
 * BOS + text[0..CTX-1), every position scored in one fresh session. */
static double reference_nll(engine_t *e, int bos, const int *text, int from)
{
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = CTX});
    float lp[CTX];
    assert_int_equal(engine_score(s, &bos, 1, text, CTX - 1, lp, NULL), 0);
    engine_session_free(s);
    double nll = 0.0;
    /* lp[i] is chunk position i + 1 */
    for (int p = from; p < CTX; p++)
        nll -= lp[p - 1];
    return nll;
}

static void test_chunk_counts(void **state)
{
    (void)state;
    /* HALF counts the stream's BOS; ALL puts CTX - 1 text tokens in a chunk. */
    assert_int_equal(engine_ppl_n_chunks(2 * CTX - 2, CTX, ENGINE_PPL_HALF), 1);
    assert_int_equal(engine_ppl_n_chunks(2 * CTX - 1, CTX, ENGINE_PPL_HALF), 2);
    assert_int_equal(engine_ppl_n_chunks(2 * CTX - 3, CTX, ENGINE_PPL_ALL), 1);
    assert_int_equal(engine_ppl_n_chunks(2 * CTX - 2, CTX, ENGINE_PPL_ALL), 2);
    assert_int_equal(engine_ppl_n_chunks(CTX - 2, CTX, ENGINE_PPL_HALF), 0);
    assert_int_equal(engine_ppl_n_chunks(100, 1, ENGINE_PPL_ALL), 0);
    assert_int_equal(engine_ppl_n_chunks(0, CTX, ENGINE_PPL_ALL), 0);
}

static void test_layouts_match_token_scores(void **state)
{
    (void)state;
    static int toks[TEXT_BYTES + 2];
    int n_tok;
    engine_t *e = load(toks, TEXT_BYTES + 2, &n_tok);
    if (!e) skip_no_data();
    int bos_only[2];
    assert_int_equal(engine_tokenize(e, "", 0, true, false, bos_only, 2), 1);
    int bos = bos_only[0];
    /* Exactly n_tok ids on the heap, so a chunk reading past the end trips ASan. */
    int *ids = mem_alloc((size_t)n_tok * sizeof *ids);
    memcpy(ids, toks, (size_t)n_tok * sizeof *ids);
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = CTX});
    double half_nll = 0.0, all_nll = 0.0;
    long half_n = 0, all_n = 0;
    for (int c = 0; c < CHUNKS; c++) {
        /* HALF: chunk c is stream positions [c*CTX, (c+1)*CTX) of BOS + text with its
         * first token made BOS, so its text starts at toks[c*CTX]; positions after
         * CTX/2 are scored. */
        double nll = 0.0;
        long n = 0;
        assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, c, ENGINE_PPL_HALF, &nll, &n), 0);
        assert_int_equal(n, CTX - 1 - CTX / 2);
        double want = reference_nll(e, bos, toks + c * CTX, CTX / 2 + 1);
        assert_true(fabs(nll - want) < 1e-3);
        half_nll += nll;
        half_n += n;
        /* ALL: CTX - 1 text tokens a chunk, every one scored. */
        nll = 0.0;
        n = 0;
        assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, c, ENGINE_PPL_ALL, &nll, &n), 0);
        assert_int_equal(n, CTX - 1);
        want = reference_nll(e, bos, toks + c * (CTX - 1), 1);
        assert_true(fabs(nll - want) < 1e-3);
        all_nll += nll;
        all_n += n;
    }
    double ppl_half = exp(half_nll / (double)half_n), ppl_all = exp(all_nll / (double)all_n);
    print_message("# ctx %d, %d chunks: perplexity half %.4f, all %.4f\n", CTX, CHUNKS, ppl_half,
                  ppl_all);
    /* Tokens scored with at least CTX/2 of context are predicted better than the
     * average token of a chunk, most of which have less. */
    assert_true(ppl_half > 1.0 && ppl_half < ppl_all);
    /* Out-of-range chunks leave the sums alone. */
    double nll = 0.0;
    long n = 0;
    int last = engine_ppl_n_chunks(n_tok, CTX, ENGINE_PPL_HALF);
    assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, last, ENGINE_PPL_HALF, &nll, &n),
                     SY_EINVAL);
    assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, -1, ENGINE_PPL_ALL, &nll, &n), SY_EINVAL);
    assert_true(nll == 0.0 && n == 0);
    /* The last whole chunk of each layout reads up to, not past, the text's end. */
    assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, last - 1, ENGINE_PPL_HALF, &nll, &n), 0);
    int last_all = engine_ppl_n_chunks(n_tok, CTX, ENGINE_PPL_ALL);
    assert_int_equal(engine_ppl_chunk(s, ids, n_tok, CTX, last_all - 1, ENGINE_PPL_ALL, &nll, &n),
                     0);
    mem_free(ids);
    engine_session_free(s);
    engine_free(e);
}

int main(void)
{
    const char *env = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", env && *env ? env : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_counts),
        cmocka_unit_test(test_layouts_match_token_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
