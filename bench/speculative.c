/* speculative.c — speculative decoding measured in-process, and projected to realistic
 * model sizes.
 *
 *   speculative [--drafts A.gguf,B.gguf] [--prompts N] [-n TOKENS] [--k 2,4,8]
 *               [--models DIR] [--threads N] [--alpha NAME=A ...] [--projection-only]
 *       1. stories260K (converted in a temporary directory) as the target, drafted by
 *          its own Q8_0 and Q4_0 copies and any --drafts (same vocabulary): greedy
 *          decoding of N TinyStories prompts, acceptance, tokens per round, tokens/s
 *          with the draft and of the target alone (alternated in the same run),
 *          speedup; beside it the speedup the cost model below predicts from the
 *          measured per-token and per-verify costs, to check the model.
 *       2. a projection, when DIR (default bench/out) holds the shaped files: a
 *          Llama-3.2-1B-shaped target and a 100M-shaped draft (random Q4_0 weights,
 *          one 128256-token vocabulary): their decode and verify costs measured here,
 *          combined with acceptance rates, into the expected speedup per draft length;
 *          and the same with the target a verifying tier 0, 10, 30 and 80 ms away.
 *   speculative --make-model DIR
 *       writes DIR/spec-1b-q4_0.gguf (dim 2048, 16 layers, 32/8 heads, ffn 8192) and
 *       DIR/spec-100m-q4_0.gguf (dim 512, 8 layers, 8 heads, ffn 2048), both tied,
 *       about 0.75 GB and 0.06 GB. Speed does not depend on the weight values.
 *
 * Cost model: with per-token acceptance a and K drafted tokens a round yields
 * E = (1 - a^(K+1)) / (1 - a) tokens and costs K draft steps plus one verify pass of
 * K+1 tokens, so speedup = E * decode_target / (K * decode_draft + verify(K+1)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/convert.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/spec.h"

#define MAX_DRAFTS  8
#define MAX_KS      8
#define MAX_PROMPTS 200

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ============================================================ costs ==== */

/* Milliseconds per decoded token: 16 single-token appends after a 32-token prompt,
 * best of 5 (the least disturbed by other load). */
static double cost_decode(const engine_t *e, int threads)
{
    engine_session_t *s =
        engine_session_new(e, &(engine_session_opts_t){.n_ctx = 256, .n_threads = threads});
    int ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = 3 + (i * 37) % 200;
    double best = 1e300;
    for (int rep = 0; rep < 5; rep++) {
        engine_session_rewind(s, 0);
        engine_session_append(s, ids, 32, false);
        double t0 = now_ms();
        for (int i = 0; i < 16; i++)
            engine_session_append(s, &ids[32 + i], 1, false);
        double ms = (now_ms() - t0) / 16;
        best = ms < best ? ms : best;
    }
    engine_session_free(s);
    return best;
}

/* Milliseconds of one verify pass of n tokens (logits at every position) after a
 * 32-token prompt, best of 5. */
static double cost_verify(const engine_t *e, int n, int threads)
{
    engine_session_t *s =
        engine_session_new(e, &(engine_session_opts_t){.n_ctx = 256, .n_threads = threads});
    int ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = 3 + (i * 37) % 200;
    engine_session_append(s, ids, 32, false);
    double best = 1e300;
    for (int rep = 0; rep < 5; rep++) {
        engine_session_rewind(s, 32);
        double t0 = now_ms();
        engine_session_append(s, ids + 32, n, true);
        double ms = now_ms() - t0;
        best = ms < best ? ms : best;
    }
    engine_session_free(s);
    return best;
}

/* Expected speedup under the cost model (see the top of the file). */
static double model_speedup(double a, int K, double c_t, double c_d, double v)
{
    double E = a >= 1.0 ? K + 1 : (1.0 - pow(a, K + 1)) / (1.0 - a);
    return E * c_t / (K * c_d + v);
}

/* ======================================================= in-process ==== */

static int n_out;
static int count_tok(void *ud, const engine_token_t *t)
{
    (void)ud, (void)t;
    n_out++;
    return 0;
}

/* First words of the first n TinyStories paragraphs. */
static int load_prompts(const char *shared, char prompts[][64], int n)
{
    char path[600], line[4096];
    snprintf(path, sizeof path, "%s/data/corpora/tinystories_val_subset.txt", shared);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int k = 0;
    while (k < n && fgets(line, sizeof line, f)) {
        if (strlen(line) < 40) continue;
        int words = 0, i = 0;
        for (; line[i] && i < 63; i++)
            if (line[i] == ' ' && ++words == 3 + k % 5) break;
        memcpy(prompts[k], line, (size_t)i);
        prompts[k][i] = 0;
        k++;
    }
    fclose(f);
    return k;
}

static void in_process(const char *shared, const char *tmp, const char **extra, int n_extra,
                       int n_prompts, int n_tokens, const int *ks, int n_ks, int threads)
{
    char bin[600], tok[600], f32[256], paths[MAX_DRAFTS][256], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    snprintf(f32, sizeof f32, "%s/stories260K-f32.gguf", tmp);
    model_t *m;
    if (model_load(bin, tok, &m, err, sizeof err) || convert_model_to_gguf(m, f32)) {
        printf("stories260K not available (%s): in-process part skipped\n", err);
        return;
    }
    model_free(m);
    const char *names[MAX_DRAFTS];
    int nd = 0;
    kern_type_t qt[2] = {KERN_Q8_0, KERN_Q4_0};
    for (int i = 0; i < 2; i++) {
        snprintf(paths[nd], sizeof paths[nd], "%s/stories260K-%s.gguf", tmp, kern_type_name(qt[i]));
        quant_opts_t qo = {.type = qt[i]};
        if (quant_file_opts(f32, paths[nd], &qo, NULL, err, sizeof err)) continue;
        names[nd] = i ? "q4_0 copy" : "q8_0 copy";
        nd++;
    }
    for (int i = 0; i < n_extra && nd < MAX_DRAFTS; i++) {
        snprintf(paths[nd], sizeof paths[nd], "%s", extra[i]);
        const char *b = strrchr(extra[i], '/');
        names[nd++] = b ? b + 1 : extra[i];
    }
    static char prompts[MAX_PROMPTS][64];
    n_prompts = load_prompts(shared, prompts, n_prompts);
    engine_t *t;
    if (engine_load(f32, NULL, &t, err, sizeof err)) return;
    double c_t = cost_decode(t, threads);
    printf("\nIn-process: target stories260K F32, %d TinyStories prompts, %d greedy tokens each, "
           "%d thread(s).\nTarget alone: %.3f ms/token decode. Predicted = cost model with the "
           "measured acceptance and costs.\n\n",
           n_prompts, n_tokens, threads, c_t);
    printf("| draft | draft ms/token | K | acceptance | tokens/round | tok/s with draft | "
           "tok/s alone | speedup | predicted |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    engine_gen_params_t gp = {.max_tokens = n_tokens};
    sample_params_default(&gp.sample);
    gp.sample.temperature = 0.0f;
    engine_session_opts_t so = {.n_threads = threads};
    for (int d = 0; d < nd; d++) {
        engine_t *de;
        if (engine_load(paths[d], NULL, &de, err, sizeof err) ||
            spec_check(t, de, err, sizeof err)) {
            printf("| %s | refused: %s |\n", names[d], err);
            continue;
        }
        double c_d = cost_decode(de, threads);
        for (int ki = 0; ki < n_ks; ki++) {
            int K = ks[ki];
            engine_session_t *ts = engine_session_new(t, &so), *ds = engine_session_new(de, &so);
            engine_session_t *bs = engine_session_new(t, &so);
            double ms_spec = 0, ms_alone = 0;
            long gen_spec = 0, gen_alone = 0, drafted = 0, accepted = 0, rounds = 0;
            for (int p = 0; p < n_prompts; p++) {
                int ids[128];
                int n = engine_tokenize(t, prompts[p], strlen(prompts[p]), true, false, ids, 128);
                if (n <= 0 || n > 128) continue;
                engine_gen_result_t r;
                spec_stats_t st;
                n_out = 0;
                if (spec_generate(ts, ds, ids, n, &gp, K, count_tok, NULL, &r, &st)) continue;
                ms_spec += r.decode_ms, gen_spec += r.n_generated;
                drafted += st.drafted, accepted += st.accepted, rounds += st.rounds;
                if (engine_generate(bs, ids, n, &gp, count_tok, NULL, &r)) continue;
                ms_alone += r.decode_ms, gen_alone += r.n_generated;
            }
            double a = drafted ? (double)accepted / drafted : 0.0;
            double sp = gen_spec / ms_spec * 1e3, al = gen_alone / ms_alone * 1e3;
            double v = cost_verify(t, K + 1, threads);
            printf("| %s | %.3f | %d | %.3f | %.2f | %.0f | %.0f | %.2fx | %.2fx |\n", names[d],
                   c_d, K, a, rounds ? (double)gen_spec / rounds : 0.0, sp, al, sp / al,
                   model_speedup(a, K, c_t, c_d, v));
            engine_session_free(ts);
            engine_session_free(ds);
            engine_session_free(bs);
        }
        engine_free(de);
    }
    engine_free(t);
}

/* ======================================================= shaped models ==== */

typedef struct shape {
    const char *name;
    int dim, layers, heads, kv, ffn;
} shape_t;

static const shape_t SHAPE_1B = {"spec-1b-q4_0", 2048, 16, 32, 8, 8192};
static const shape_t SHAPE_100M = {"spec-100m-q4_0", 512, 8, 8, 8, 2048};
#define SHAPE_VOCAB 128256

/* Writes a shaped Q4_0 file with random blocks and a 128256-piece vocabulary shared by
 * every shape (so the draft passes the vocabulary check). */
static int make_shaped(const char *dir, const shape_t *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, s->name);
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", s->name);
    gguf_writer_set_u32(w, "general.file_type", 2);
    gguf_writer_set_u32(w, "llama.context_length", 2048);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)s->dim);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)s->ffn);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)s->layers);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)s->heads);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)s->kv);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(s->dim / s->heads));
    gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    char **pieces = mem_alloc(SHAPE_VOCAB * sizeof *pieces);
    float *scores = mem_alloc(SHAPE_VOCAB * sizeof *scores);
    int32_t *types = mem_alloc(SHAPE_VOCAB * sizeof *types);
    for (int i = 0; i < SHAPE_VOCAB; i++) {
        char b[32];
        if (i < 3)
            snprintf(b, sizeof b, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(b, sizeof b, "<0x%02X>", i - 3);
        else
            snprintf(b, sizeof b, "\xe2\x96\x81w%d", i);
        pieces[i] = mem_strndup(b, strlen(b));
        scores[i] = -(float)i;
        types[i] = i < 3 ? (i ? 3 : 2) : i < 259 ? 6 : 1;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, SHAPE_VOCAB);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, SHAPE_VOCAB);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, SHAPE_VOCAB);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    for (int i = 0; i < SHAPE_VOCAB; i++)
        mem_free(pieces[i]);
    mem_free(pieces), mem_free(scores), mem_free(types);
    /* One buffer of random Q4_0 blocks (scale 1/512) that every matrix points into. */
    size_t big = kern_row_size(KERN_Q4_0, (size_t)s->dim) * SHAPE_VOCAB;
    size_t ffn = kern_row_size(KERN_Q4_0, (size_t)s->ffn) * (size_t)s->dim;
    if (ffn > big) big = ffn;
    kern_block_q4_0_t *blocks = mem_alloc(big);
    uint64_t r = 42;
    for (size_t i = 0; i < big / sizeof *blocks; i++) {
        blocks[i].d = kern_f32_to_f16(1.0f / 512);
        for (int q = 0; q < KERN_QK / 2; q++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            blocks[i].qs[q] = (uint8_t)(r >> 56);
        }
    }
    float *ones = mem_alloc((size_t)s->dim * sizeof *ones);
    for (int i = 0; i < s->dim; i++)
        ones[i] = 1.0f;
    int rc = 0;
    int hd = s->dim / s->heads, kvd = hd * s->kv;
#define MAT(nm, cols, rows)                                                                        \
    do {                                                                                           \
        uint64_t ne[2] = {(uint64_t)(cols), (uint64_t)(rows)};                                     \
        if (!rc)                                                                                   \
            rc = gguf_writer_add_tensor(w, nm, KERN_Q4_0, 2, ne, blocks,                           \
                                        kern_row_size(KERN_Q4_0, (cols)) * (size_t)(rows));        \
    } while (0)
#define VEC(nm)                                                                                    \
    do {                                                                                           \
        uint64_t ne[1] = {(uint64_t)s->dim};                                                       \
        if (!rc)                                                                                   \
            rc = gguf_writer_add_tensor(w, nm, KERN_F32, 1, ne, ones,                              \
                                        (size_t)s->dim * sizeof(float));                           \
    } while (0)
    MAT("token_embd.weight", s->dim, SHAPE_VOCAB);
    VEC("output_norm.weight");
    for (int l = 0; l < s->layers; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        VEC(nm);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        VEC(nm);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        MAT(nm, s->dim, s->dim);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);
        MAT(nm, s->dim, kvd);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        MAT(nm, s->dim, kvd);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
        MAT(nm, s->dim, s->dim);
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);
        MAT(nm, s->dim, s->ffn);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        MAT(nm, s->dim, s->ffn);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        MAT(nm, s->ffn, s->dim);
    }
#undef MAT
#undef VEC
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    mem_free(blocks);
    mem_free(ones);
    printf("%s: %s\n", path, rc ? "FAILED" : "written");
    return rc;
}

/* ========================================================== projection ==== */

static void projection(const char *dir, const double *alphas, const char **alpha_names, int n_a,
                       int threads)
{
    char tp[600], dp[600], err[256];
    snprintf(tp, sizeof tp, "%s/%s.gguf", dir, SHAPE_1B.name);
    snprintf(dp, sizeof dp, "%s/%s.gguf", dir, SHAPE_100M.name);
    engine_t *t, *d;
    if (access(tp, R_OK) || access(dp, R_OK)) {
        printf("\nProjection skipped: %s and %s not found (speculative --make-model %s)\n", tp, dp,
               dir);
        return;
    }
    if (engine_load(tp, NULL, &t, err, sizeof err) || engine_load(dp, NULL, &d, err, sizeof err)) {
        printf("\nProjection skipped: %s\n", err);
        return;
    }
    if (spec_check(t, d, err, sizeof err)) {
        printf("\nProjection skipped: %s\n", err);
        return;
    }
    double c_t = cost_decode(t, threads), c_d = cost_decode(d, threads);
    double v[10];
    printf("\nPROJECTION (not a measured speedup): 1B-shaped Q4_0 target (%.0f MB of weights) "
           "and 100M-shaped Q4_0 draft (%.0f MB), random weights, %d thread(s).\n"
           "Measured here: target %.1f ms/token, draft %.2f ms/token (ratio %.1f); verify pass "
           "of n tokens with logits at every position:",
           model_weight_bytes(t->model) / 1e6, model_weight_bytes(d->model) / 1e6, threads, c_t,
           c_d, c_t / c_d);
    for (int n = 2; n <= 9; n++) {
        v[n] = cost_verify(t, n, threads);
        printf(" %d: %.1f ms%s", n, v[n], n < 9 ? "," : "\n");
    }
    printf(
        "Combined with acceptance a: speedup = E(a,K) * target / (K * draft + verify(K+1)).\n\n");
    printf("| acceptance a | from | K=1 | K=2 | K=4 | K=6 | K=8 | best K | best speedup |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n_a; i++) {
        printf("| %.2f | %s |", alphas[i], alpha_names[i]);
        int ks[] = {1, 2, 4, 6, 8}, bk = 1;
        double best = 0;
        for (int k = 1; k <= 8; k++) {
            double s = model_speedup(alphas[i], k, c_t, c_d, v[k + 1]);
            if (s > best) best = s, bk = k;
        }
        for (int j = 0; j < 5; j++)
            printf(" %.2fx |", model_speedup(alphas[i], ks[j], c_t, c_d, v[ks[j] + 1]));
        printf(" %d | %.2fx |\n", bk, best);
    }
    /* Across tiers: the target is a verifying tier a round trip away. A round pays the
     * K draft steps, the round trip and the verify pass; the target decoding alone over
     * the same link streams its answer, paying the round trip once per answer (here
     * of XT_ANSWER tokens). Drafting during a verification in flight is not counted. */
    enum { XT_ANSWER = 128 };
    static const double rtts[] = {0, 10, 30, 80};
    printf("\nPROJECTION across tiers (not a measured speedup): the same costs, the target a "
           "verifying tier a round trip away; against it decoding alone over the same link "
           "(one round trip per %d-token answer). Speedup at the best K (1..8), K in "
           "brackets:\n\n",
           XT_ANSWER);
    printf("| acceptance a | from | 0 ms | 10 ms | 30 ms | 80 ms |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < n_a; i++) {
        printf("| %.2f | %s |", alphas[i], alpha_names[i]);
        for (int r = 0; r < 4; r++) {
            double alone = c_t + rtts[r] / XT_ANSWER, best = 0;
            int bk = 1;
            for (int k = 1; k <= 8; k++) {
                double a = alphas[i];
                double E = a >= 1.0 ? k + 1 : (1.0 - pow(a, k + 1)) / (1.0 - a);
                double sp = E * alone / (k * c_d + rtts[r] + v[k + 1]);
                if (sp > best) best = sp, bk = k;
            }
            printf(" %.2fx (%d) |", best, bk);
        }
        printf("\n");
    }
    engine_free(t);
    engine_free(d);
}

/* ================================================================ main ==== */

int main(int argc, char **argv)
{
    const char *models = "bench/out", *drafts = NULL;
    int n_prompts = 20, n_tokens = 128, threads = 1, ks[MAX_KS] = {2, 4, 8}, n_ks = 3;
    int proj_only = 0;
    double alphas[16];
    const char *alpha_names[16];
    int n_a = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--make-model") && i + 1 < argc) {
            int rc = make_shaped(argv[i + 1], &SHAPE_1B) || make_shaped(argv[i + 1], &SHAPE_100M);
            return rc ? 1 : 0;
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc) {
            models = argv[++i];
        } else if (!strcmp(argv[i], "--projection-only")) {
            proj_only = 1;
        } else if (!strcmp(argv[i], "--drafts") && i + 1 < argc) {
            drafts = argv[++i];
        } else if (!strcmp(argv[i], "--prompts") && i + 1 < argc) {
            n_prompts = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            n_tokens = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--alpha") && i + 1 < argc && n_a < 16) {
            /* NAME=VALUE: a measured acceptance to project */
            char *eq = strchr(argv[++i], '=');
            if (!eq) {
                fprintf(stderr, "--alpha NAME=VALUE\n");
                return 2;
            }
            *eq = 0;
            alpha_names[n_a] = argv[i];
            alphas[n_a++] = atof(eq + 1);
        } else if (!strcmp(argv[i], "--k") && i + 1 < argc) {
            n_ks = 0;
            for (char *p = strtok(argv[++i], ","); p && n_ks < MAX_KS; p = strtok(NULL, ","))
                ks[n_ks++] = atoi(p);
        } else {
            fprintf(stderr,
                    "usage: speculative [--drafts A,B] [--prompts N] [-n TOKENS] [--k 2,4,8] "
                    "[--threads N] [--models DIR] [--alpha NAME=A ...] [--projection-only]\n"
                    "       speculative --make-model DIR\n");
            return 2;
        }
    }
    if (n_prompts < 1 || n_prompts > MAX_PROMPTS || n_tokens < 1 || threads < 1) {
        fprintf(stderr, "speculative: prompts 1..%d, tokens and threads >= 1\n", MAX_PROMPTS);
        return 2;
    }
    for (int k = 0; k < n_ks; k++)
        if (ks[k] < 1 || ks[k] > 8) {
            fprintf(stderr, "speculative: --k values 1..8\n");
            return 2;
        }
    const char *env = getenv("SY_SHARED");
    const char *shared = env && *env ? env : "../shared";
    char tmp[] = "/tmp/sy-bench-spec-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    const char *extra[MAX_DRAFTS];
    int n_extra = 0;
    char *dl = drafts ? strdup(drafts) : NULL;
    for (char *p = dl ? strtok(dl, ",") : NULL; p && n_extra < MAX_DRAFTS - 2;
         p = strtok(NULL, ","))
        extra[n_extra++] = p;
    printf("bench/speculative (the machine is shared: figures are noisy; compare within a run)\n");
    if (!proj_only) in_process(shared, tmp, extra, n_extra, n_prompts, n_tokens, ks, n_ks, threads);
    static const double grid[] = {0.5, 0.6, 0.7, 0.8, 0.9};
    for (int i = 0; i < 5 && n_a < 16; i++)
        alphas[n_a] = grid[i], alpha_names[n_a++] = "grid";
    projection(models, alphas, alpha_names, n_a, threads);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    free(dl);
    return 0;
}
