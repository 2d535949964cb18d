/* test_engine_batch.c — continuous batching (batch.c): sequences decoded together by
 * one scheduler give exactly what each gives decoded alone.
 *
 * - kernels: a batch of tokens through kern_matmul gives, for every token, the bits
 *   kern_matvec gives for that token alone, for every weight type (the property the
 *   scheduler's exactness rests on), SIMD and scalar, with and without threads;
 * - scheduler: sequences with different prompts, lengths and sampling (greedy,
 *   seeded temperature, stop strings, logprobs, a JSON grammar, a prompt longer than
 *   a pass), started at different moments while others decode, each compared token
 *   by token and logprob by logprob with a run of engine_generate on a fresh session;
 *   one of them stopped by its callback without disturbing the others; prefix reuse
 *   on a second turn. On stories260K (F32) and on gguf_gen files (llama Q4_0, Q8_0,
 *   F16; gemma2 Q4_0 for windows, soft-caps and GeGLU; phi3 for LongRoPE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/grammar.h"
#include "engine/kernels.h"
#include "engine/kquants.h"

static char shared[512], tool[512], dir[64];

/* ------------------------------------------------------------- kernels ---- */

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* One type: W (rows, cols) random, X (n, cols); Y of the batch against one token at a
 * time, bit for bit, for every batch of 1..19 tokens (the repacked kernels' tiles of 8:
 * two full tiles and every tail). */
static void check_type(kern_type_t t, kern_pool_t *pool)
{
    const size_t rows = 48, cols = 512, nmax = 19;
    float *wf = mem_alloc(rows * cols * sizeof(float));
    for (size_t i = 0; i < rows * cols; i++)
        wf[i] = frand();
    kern_type_t base = t == KERN_Q4_0_X16 ? KERN_Q4_0 : t == KERN_Q8_0_X16 ? KERN_Q8_0 : t;
    size_t rb = kern_row_size(base, cols);
    assert_true(rb > 0);
    char *w = mem_alloc(rows * rb);
    for (size_t r = 0; r < rows; r++) {
        if (base == KERN_F32)
            memcpy(w + r * rb, wf + r * cols, cols * sizeof(float));
        else if (base == KERN_F16)
            for (size_t k = 0; k < cols; k++)
                ((kern_f16_t *)(w + r * rb))[k] = kern_f32_to_f16(wf[r * cols + k]);
        else if (kern_kq_is_kq(base))
            kern_kq_quantize_row(base, wf + r * cols, w + r * rb, cols);
        else
            kern_quantize_row(base, wf + r * cols, w + r * rb, cols);
    }
    if (t != base) {
        char *p = mem_alloc(rows * rb);
        assert_int_equal(kern_repack(base, t, w, p, rows, cols), 0);
        mem_free(w);
        w = p;
    }
    float *x = mem_alloc(nmax * cols * sizeof(float));
    for (size_t i = 0; i < nmax * cols; i++)
        x[i] = frand() * 3.0f;
    float *yb = mem_alloc(nmax * rows * sizeof(float)), *y1 = mem_alloc(rows * sizeof(float));
    for (size_t n = 1; n <= nmax; n++) {
        kern_matmul(pool, t, w, x, yb, n, rows, cols);
        for (size_t b = 0; b < n; b++) {
            kern_matvec(pool, t, w, x + b * cols, y1, rows, cols);
            if (memcmp(y1, yb + b * rows, rows * sizeof(float)))
                fail_msg("%s: token %zu of a batch of %zu differs from the token alone",
                         kern_type_name(t), b, n);
        }
    }
    mem_free(wf);
    mem_free(w);
    mem_free(x);
    mem_free(yb);
    mem_free(y1);
}

static void test_kernels_batch_invariant(void **state)
{
    (void)state;
    const kern_type_t types[] = {KERN_F32,  KERN_F16,      KERN_Q8_0,    KERN_Q4_0, KERN_Q5_0,
                                 KERN_Q5_1, KERN_Q2_K,     KERN_Q3_K,    KERN_Q4_K, KERN_Q5_K,
                                 KERN_Q6_K, KERN_Q4_0_X16, KERN_Q8_0_X16};
    kern_pool_t *pool = kern_pool_new(2);
    for (int scalar = 0; scalar <= 1; scalar++) {
        kern_force_scalar(scalar);
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            check_type(types[i], NULL);
            check_type(types[i], pool);
        }
    }
    kern_force_scalar(0);
    /* the AVX2 Q2_K/Q3_K kernels where the CPU would use their 512-bit variant */
    if (kern_avx2_use_vnni(-1)) {
        kern_avx2_use_vnni(0);
        check_type(KERN_Q2_K, pool);
        check_type(KERN_Q3_K, pool);
        kern_avx2_use_vnni(1);
    }
    kern_pool_free(pool);
}

/* ----------------------------------------------------------- scheduler ---- */

typedef struct run {
    int ids[256];
    float lp[256];
    int n;
    char text[4096];
    size_t len;
    int stop_after; /* the callback stops after this many tokens (0: never) */
    sem_t *signal;  /* posted when signal_at tokens are out (starts the next sequence) */
    int signal_at;
    engine_gen_result_t res;
    int rc;
} run_t;

static int on_token(void *ud, const engine_token_t *t)
{
    run_t *r = ud;
    assert_true(r->n < 256);
    r->ids[r->n] = t->id;
    r->lp[r->n] = t->info->logprob;
    r->n++;
    assert_true(r->len + t->len < sizeof r->text);
    memcpy(r->text + r->len, t->text, t->len);
    r->len += t->len;
    if (r->signal && r->n == r->signal_at) sem_post(r->signal);
    return r->stop_after && r->n >= r->stop_after;
}

/* What one sequence of the scenario does. */
typedef struct seq_spec {
    int prompt[160];
    int n_prompt;
    engine_gen_params_t p;
    int stop_after;
} seq_spec_t;

#define N_SEQ 6

static grammar_t *json_grammar;

/* Six sequences: different prompts and lengths, greedy and sampled, a stop string, a
 * grammar, a prompt longer than a pass (16 rows), one stopped by its callback. */
static void make_specs(const engine_t *e, seq_spec_t *sp)
{
    const char *texts[N_SEQ] = {
        "Once upon a time, there was a little girl named Lily.",
        "The dog ran to the park and",
        "Tom and Sue went to the beach. They saw a big crab. Tom said",
        "One day, a bird",
        "There was a boy who loved to play with his red ball in the garden every day. He "
        "would throw it high into the sky and catch it. One day the ball flew over the fence "
        "and landed in the garden of an old man who lived next door. The boy was scared",
        "Mia had a cat",
    };
    for (int i = 0; i < N_SEQ; i++) {
        seq_spec_t *s = &sp[i];
        memset(s, 0, sizeof *s);
        s->n_prompt = engine_tokenize(e, texts[i], strlen(texts[i]), true, false, s->prompt, 160);
        assert_true(s->n_prompt > 0 && s->n_prompt <= 160);
        sample_params_default(&s->p.sample);
        s->p.sample.temperature = 0.0f;
        s->p.max_tokens = 20 + 7 * i;
        s->p.n_logprobs = 3;
    }
    sp[1].p.sample.temperature = 0.9f; /* sampled, seeded */
    sp[1].p.sample.seed = 7;
    sp[1].p.sample.top_p = 0.9f;
    sp[2].p.stop[0] = "."; /* a stop string */
    sp[3].p.grammar = json_grammar;
    sp[3].p.max_tokens = 40;
    sp[5].stop_after = 4; /* the callback stops it */
}

typedef struct worker {
    engine_sched_t *sc;
    engine_session_t *s;
    const seq_spec_t *spec;
    sem_t *wait; /* start when posted (NULL: at once) */
    run_t *run;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    if (w->wait) sem_wait(w->wait);
    w->run->rc = engine_sched_generate(w->sc, w->s, w->spec->prompt, w->spec->n_prompt, &w->spec->p,
                                       on_token, w->run, &w->run->res);
    return NULL;
}

/* The reference: spec on a fresh session, alone. */
static void run_alone(const engine_t *e, const seq_spec_t *sp, run_t *r)
{
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = 512});
    memset(r, 0, sizeof *r);
    r->stop_after = sp->stop_after;
    r->rc = engine_generate(s, sp->prompt, sp->n_prompt, &sp->p, on_token, r, &r->res);
    engine_session_free(s);
}

static void assert_same(const run_t *a, const run_t *b, int i)
{
    assert_int_equal(a->rc, 0);
    assert_int_equal(b->rc, 0);
    if (a->n != b->n || memcmp(a->ids, b->ids, (size_t)a->n * sizeof(int)))
        fail_msg("sequence %d: %d tokens batched, %d alone, or different ids", i, a->n, b->n);
    if (memcmp(a->lp, b->lp, (size_t)a->n * sizeof(float)))
        fail_msg("sequence %d: logprobs differ", i);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->text, b->text, a->len);
    assert_int_equal(a->res.finish, b->res.finish);
    assert_int_equal(a->res.n_generated, b->res.n_generated);
    assert_int_equal(a->res.complete, b->res.complete);
}

/* The scenario on one model: each sequence starts once the one before has produced
 * a few tokens (so prompts join passes that are decoding others), batched results
 * against single runs; then a second turn on the same sessions reuses their caches. */
static void scenario(const engine_t *e, int n_threads)
{
    seq_spec_t sp[N_SEQ];
    make_specs(e, sp);
    run_t alone[N_SEQ];
    for (int i = 0; i < N_SEQ; i++)
        run_alone(e, &sp[i], &alone[i]);
    assert_int_equal(alone[5].n, 4);
    assert_int_equal(alone[5].res.finish, ENGINE_FINISH_CALLBACK);

    engine_sched_t *sc = engine_sched_new(
        e, &(engine_sched_opts_t){.n_threads = n_threads, .max_seqs = 4, .max_batch = 16});
    assert_non_null(sc);
    engine_session_t *ss[N_SEQ];
    static run_t batched[N_SEQ];
    sem_t go[N_SEQ];
    worker_t w[N_SEQ];
    pthread_t th[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) {
        ss[i] = engine_session_new(e, &(engine_session_opts_t){.n_ctx = 512});
        sem_init(&go[i], 0, 0);
        memset(&batched[i], 0, sizeof batched[i]);
        batched[i].stop_after = sp[i].stop_after;
    }
    for (int i = 0; i < N_SEQ; i++) {
        /* sequence i + 1 starts when i has 2 tokens out (or at once if i ends sooner) */
        if (i + 1 < N_SEQ) {
            batched[i].signal = &go[i + 1];
            batched[i].signal_at = 2;
        }
        w[i] = (worker_t){sc, ss[i], &sp[i], i ? &go[i] : NULL, &batched[i]};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < N_SEQ; i++) {
        pthread_join(th[i], NULL);
        if (batched[i].n < 2 && i + 1 < N_SEQ) sem_post(&go[i + 1]); /* ended early */
    }
    for (int i = 0; i < N_SEQ; i++)
        assert_same(&batched[i], &alone[i], i);
    engine_sched_stats_t st;
    engine_sched_stats(sc, &st);
    assert_true(st.passes > 0);
    assert_true(st.decode_rows > st.passes); /* passes did run several sequences at once */

    /* second turn: prompt + first answer + more text, on the same sessions (cache
     * reuse), all at once; against a single session doing the same two turns */
    for (int i = 0; i < N_SEQ; i++) {
        seq_spec_t *s = &sp[i];
        int n = s->n_prompt;
        for (int k = 0; k < batched[i].n - 1 && n < 150; k++)
            s->prompt[n++] = batched[i].ids[k];
        s->prompt[n++] = 13 + i;
        s->n_prompt = n;
        s->stop_after = 0;
        memset(&batched[i], 0, sizeof batched[i]);
        w[i].wait = NULL;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < N_SEQ; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_SEQ; i++) {
        run_alone(e, &sp[i], &alone[i]);
        assert_same(&batched[i], &alone[i], i);
        assert_true(batched[i].res.n_reused > 0);
    }
    engine_sched_free(sc);
    for (int i = 0; i < N_SEQ; i++) {
        engine_session_free(ss[i]);
        sem_destroy(&go[i]);
    }
}

static void test_sched_stories(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skipped: %s is absent (set SY_SHARED)\n", bin);
        skip();
    }
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    scenario(e, 1);
    scenario(e, 2);
    engine_free(e);
}

/* gguf_gen variant/type: the same scenario. */
static void gen_scenario(const char *variant, const char *type)
{
    char tok[600], cmd[2048], path[256], err[256];
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(tok, R_OK) || access(tool, X_OK)) {
        print_message("# skipped: %s or %s is absent (set SY_SHARED, build the tools)\n", tok,
                      tool);
        skip();
    }
    snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, variant, type);
    snprintf(cmd, sizeof cmd, "%s %s %s %s %s", tool, tok, variant, type, path);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
    engine_t *e;
    if (engine_load(path, NULL, &e, err, sizeof err)) fail_msg("%s: %s", path, err);
    scenario(e, 2);
    engine_free(e);
}

static void test_sched_types(void **state)
{
    (void)state;
    gen_scenario("llama", "q4_0");
    gen_scenario("llama", "q8_0");
    gen_scenario("llama", "f16");
    gen_scenario("gemma2", "q4_0");
    gen_scenario("phi3", "f32");
}

/* Bad options and a session of another model are refused. */
static void test_sched_refusals(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) skip();
    engine_t *e, *e2;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    assert_int_equal(engine_load(bin, tok, &e2, err, sizeof err), 0);
    assert_null(engine_sched_new(e, &(engine_sched_opts_t){.max_seqs = 100000}));
    engine_sched_t *sc = engine_sched_new(e, NULL);
    engine_session_t *other = engine_session_new(e2, NULL), *s = engine_session_new(e, NULL);
    engine_gen_params_t p = {.max_tokens = 4};
    sample_params_default(&p.sample);
    engine_gen_result_t r;
    int ids[3] = {1, 50, 60}, bad[2] = {1, 100000};
    assert_int_equal(engine_sched_generate(sc, other, ids, 3, &p, NULL, NULL, &r), SY_EINVAL);
    assert_int_equal(engine_sched_generate(sc, s, bad, 2, &p, NULL, NULL, &r), SY_EINVAL);
    assert_int_equal(engine_sched_generate(sc, s, ids, 0, &p, NULL, NULL, &r), SY_EINVAL);
    assert_int_equal(engine_sched_generate(sc, s, ids, 3, &p, NULL, NULL, &r), 0);
    assert_int_equal(r.n_generated, 4);
    engine_sched_free(sc);
    engine_session_free(s);
    engine_session_free(other);
    engine_free(e);
    engine_free(e2);
}

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("SY_SHARED"), *b = getenv("SY_BUILD");
    snprintf(shared, sizeof shared, "%s", s && *s ? s : "../shared");
    snprintf(tool, sizeof tool, "%s/tools/gguf_gen", b ? b : "build/asan");
    snprintf(dir, sizeof dir, "/tmp/sy-batch-XXXXXX");
    json_grammar = grammar_new_json_object();
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    grammar_free(json_grammar);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_batch_invariant),
        cmocka_unit_test(test_sched_stories),
        cmocka_unit_test(test_sched_types),
        cmocka_unit_test(test_sched_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
