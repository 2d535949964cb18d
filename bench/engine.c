/* engine.c — prefill and decode speed of the engine beside llama.cpp on the same GGUF
 * files and thread counts, with peak RSS, the machine's read bandwidth and decode as a
 * share of the bandwidth limit (bandwidth / weight bytes read per token).
 *
 *   engine [--threads 1,2] [--gen N] [--models DIR] [--no-llama] [--only NAME-PART]
 *       stories260K (converted and quantized in a temporary directory) and, when DIR
 *       (default bench/out) holds them, the Llama-3.2-1B-shaped files below.
 *   engine --make-model DIR [TYPE,...]
 *       writes DIR/llama1b-{f32,q8_0,q4_0,q4_k_m,q5_k_m,q6_k,q3_k_m,q2_k}.gguf (or the
 *       TYPEs named):
 *       Llama-3.2-1B dimensions (dim 2048, 16 layers, 32 heads, 8 kv heads, ffn 8192,
 *       vocab 128256, tied output) with random weights, the quantized files written
 *       directly (speed does not depend on the weight values; q4_k_m with
 *       llama-quantize's tensor mix: Q4_K, Q6_K tied embedding/output, Q6_K attn_v and
 *       ffn_down on 10 of 16 layers; q5_k_m, q6_k, q3_k_m and q2_k likewise). About 5 GiB +
 *       1.3 GiB + 0.7 GiB + 0.8 GiB (+ 0.9 GiB + 1.0 GiB + 0.6 GiB + 0.5 GiB) of disk.
 *   engine --kernels
 *       matvec alone on the 1B shapes (one token's worth of matrices) against the
 *       bandwidth limit, no model needed.
 *   engine --batch 1,2,4,8,16 [--threads T] [--gen N] [--models DIR] [--only NAME-PART]
 *       continuous batching: N sequences (16-token prompts, N greedy tokens each)
 *       started together on one engine scheduler, aggregate decode tokens/s while all
 *       N decode, against llama.cpp with N sequences in one context (node-llama-cpp
 *       `sequences: N`, bench/engine-llamacpp-batch.mjs) in the same run; default
 *       model the 1B-shaped q4_0. Also checks that each sequence's tokens are the same
 *       whatever the number of sequences beside it.
 *
 * Each (model, threads) measurement runs in a forked child so its peak RSS is its
 * own. llama.cpp runs through bench/engine-llamacpp.mjs (node-llama-cpp 3.21.1,
 * `cd bench && npm i`); its figures read "-" when node or the package is missing.
 */
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "engine/convert.h"
#include "engine/engine.h"
#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/quant.h"

#define N_PROMPT 64
#define REPS     3 /* timed runs per process (after the first touch of the weights) */
#define ROUNDS   2 /* alternations of our engine and llama.cpp */

/* ======================================================= bandwidth ==== */

typedef struct bw_arg {
    const float *p;
    size_t n;
    float sink;
} bw_arg_t;

__attribute__((target("avx2"))) static void *bw_read(void *arg)
{
    bw_arg_t *a = arg;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 32 <= a->n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(a->p + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(a->p + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(a->p + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(a->p + i + 24));
    }
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    a->sink = out[0] + out[7];
    return NULL;
}

/* Read bandwidth in GB/s with nt threads each streaming its share of a 1 GiB buffer
 * (best of 5 passes). */
static double measure_bandwidth(int nt)
{
    const size_t bytes = (size_t)1 << 30, n = bytes / 4;
    float *p = aligned_alloc(64, bytes);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i & 1023);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        bw_arg_t a[64];
        uint64_t t0 = clock_mono_ns();
        for (int t = 0; t < nt; t++) {
            a[t] = (bw_arg_t){p + n / nt * t, n / nt, 0};
            pthread_create(&th[t], NULL, bw_read, &a[t]);
        }
        for (int t = 0; t < nt; t++)
            pthread_join(th[t], NULL);
        double gbs = bytes / ((clock_mono_ns() - t0) / 1e9) / 1e9;
        if (gbs > best) best = gbs;
    }
    free(p);
    return best;
}

/* ==================================================== 1B-shaped model ==== */

enum {
    L1B_DIM = 2048,
    L1B_LAYERS = 16,
    L1B_HEADS = 32,
    L1B_KV = 8,
    L1B_FFN = 8192,
    L1B_VOCAB = 128256,
    L1B_CTX = 2048
};

static uint64_t rng_state;
static float rnd_weight(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((float)(rng_state >> 40) / (float)(1 << 24) - 0.5f) * 0.04f;
}

/* A tensor of random weights in type t (norm vectors: ones). Returns owned bytes. */
static void *make_tensor(gguf_writer_t *w, const char *name, kern_type_t t, uint64_t cols,
                         uint64_t rows, int is_norm)
{
    size_t rb = kern_row_size(t, cols);
    uint8_t *data = mem_alloc(rb * rows);
    float *row = mem_alloc(cols * sizeof(float));
    rng_state = 0;
    for (const char *c = name; *c; c++)
        rng_state = rng_state * 31 + (uint8_t)*c;
    for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t k = 0; k < cols; k++)
            row[k] = is_norm ? 1.0f : rnd_weight();
        kern_quantize_row(t, row, data + r * rb, cols);
    }
    mem_free(row);
    uint64_t ne[2] = {cols, rows};
    if (gguf_writer_add_tensor(w, name, t, rows > 1 ? 2 : 1, ne, data, rb * rows)) abort();
    return data;
}

/* Writes one 1B-shaped file of weight type t (norms F32), or of the K-quant mix ftype
 * (a QUANT_FTYPE_*, then t is ignored): each matrix the type quant_kmix_type gives. */
static int make_model(const char *path, kern_type_t t, int ftype)
{
    quant_kmix_t ks = {
        .n_attn_v = L1B_LAYERS, .n_ffn_down = L1B_LAYERS, .n_gqa = L1B_HEADS / L1B_KV};
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "llama-3.2-1b-shaped-random");
    gguf_writer_set_u32(w, "general.file_type", ftype ? (uint32_t)ftype : quant_file_type(t));
    gguf_writer_set_u32(w, "llama.context_length", L1B_CTX);
    gguf_writer_set_u32(w, "llama.embedding_length", L1B_DIM);
    gguf_writer_set_u32(w, "llama.feed_forward_length", L1B_FFN);
    gguf_writer_set_u32(w, "llama.block_count", L1B_LAYERS);
    gguf_writer_set_u32(w, "llama.attention.head_count", L1B_HEADS);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", L1B_KV);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", L1B_DIM / L1B_HEADS);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_u32(w, "llama.vocab_size", L1B_VOCAB);
    /* a SentencePiece-style vocabulary: control tokens, 256 byte pieces, fillers */
    char **pieces = mem_alloc(L1B_VOCAB * sizeof(char *));
    float *scores = mem_alloc(L1B_VOCAB * sizeof(float));
    int32_t *types = mem_alloc(L1B_VOCAB * sizeof(int32_t));
    for (int i = 0; i < L1B_VOCAB; i++) {
        char b[32];
        if (i < 3)
            snprintf(b, sizeof b, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(b, sizeof b, "<0x%02X>", i - 3);
        else
            snprintf(b, sizeof b, "\xe2\x96\x81t%d", i);
        pieces[i] = mem_strdup(b);
        scores[i] = -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, L1B_VOCAB);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, L1B_VOCAB);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, L1B_VOCAB);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int i = 0; i < L1B_VOCAB; i++)
        mem_free(pieces[i]);
    mem_free(pieces), mem_free(scores), mem_free(types);

    void *bufs[3 + 9 * L1B_LAYERS];
    int nb = 0;
    const int kv = L1B_DIM / L1B_HEADS * L1B_KV;
    /* the matrix type of a tensor: t, or the mix's choice */
#define MT(name, cols, rows)                                                                       \
    (ftype ? quant_kmix_type(&ks, name, 2, (uint64_t[]){cols, rows}, KERN_F32, ftype, 0, 0) : t)
    bufs[nb++] = make_tensor(w, "token_embd.weight", MT("token_embd.weight", L1B_DIM, L1B_VOCAB),
                             L1B_DIM, L1B_VOCAB, 0);
    bufs[nb++] = make_tensor(w, "output_norm.weight", KERN_F32, L1B_DIM, 1, 1);
    for (int l = 0; l < L1B_LAYERS; l++) {
        char n[64];
#define T(name, norm, cols, rows)                                                                  \
    snprintf(n, sizeof n, "blk.%d." name, l);                                                      \
    bufs[nb++] = make_tensor(w, n, norm ? KERN_F32 : MT(n, cols, rows), cols, rows, norm)
        T("attn_norm.weight", 1, L1B_DIM, 1);
        T("attn_q.weight", 0, L1B_DIM, L1B_DIM);
        T("attn_k.weight", 0, L1B_DIM, kv);
        T("attn_v.weight", 0, L1B_DIM, kv);
        T("attn_output.weight", 0, L1B_DIM, L1B_DIM);
        T("ffn_norm.weight", 1, L1B_DIM, 1);
        T("ffn_gate.weight", 0, L1B_DIM, L1B_FFN);
        T("ffn_up.weight", 0, L1B_DIM, L1B_FFN);
        T("ffn_down.weight", 0, L1B_FFN, L1B_DIM);
#undef T
#undef MT
    }
    int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++)
        mem_free(bufs[i]);
    return rc;
}

/* ====================================================== measurements ==== */

typedef struct result {
    int ok;
    double prefill_tps, decode_tps; /* tokens/s, best of REPS */
    double rss_mib;
    double weight_bytes; /* bytes of weights read per decoded token */
} result_t;

/* The best of REPS: on a shared machine the fastest run is the one least disturbed, and
 * both engines get the same treatment. */
static double best_of(const double *v)
{
    double b = v[0];
    for (int i = 1; i < REPS; i++)
        if (v[i] > b) b = v[i];
    return b;
}

/* In a child: load, prefill N_PROMPT tokens, decode n_gen, REPS times. */
static result_t run_ours_child(const char *path, int threads, int n_gen)
{
    result_t r = {0};
    char err[512];
    model_t *m;
    if (model_load(path, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "engine: %s\n", err);
        return r;
    }
    kern_pool_t *pool = kern_pool_new(threads);
    forward_state_t *s = forward_state_new(m, N_PROMPT + n_gen + 16, N_PROMPT, pool);
    int prompt[N_PROMPT];
    unsigned x = 12345;
    for (int i = 0; i < N_PROMPT; i++) {
        x = x * 1103515245u + 12345u;
        prompt[i] = 3 + (int)(x % 509u);
    }
    double pre[REPS], dec[REPS];
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t t0 = clock_mono_ns();
        const float *logits = forward_run(s, prompt, N_PROMPT, 0, false);
        pre[rep] = N_PROMPT / ((clock_mono_ns() - t0) / 1e9);
        int tok = 0;
        t0 = clock_mono_ns();
        for (int i = 0; i < n_gen; i++) {
            /* greedy, as the llama.cpp side */
            int best = 0;
            for (int v = 1; v < m->cfg.n_vocab; v++)
                if (logits[v] > logits[best]) best = v;
            tok = best;
            logits = forward_run(s, &tok, 1, N_PROMPT + i, false);
        }
        dec[rep] = n_gen / ((clock_mono_ns() - t0) / 1e9);
    }
    r.ok = 1;
    r.prefill_tps = best_of(pre);
    r.decode_tps = best_of(dec);
    r.weight_bytes = (double)model_weight_bytes(m);
    if (!m->tied_output)
        r.weight_bytes -= (double)kern_row_size(m->tok_embd.type, m->cfg.dim) * m->cfg.n_vocab;
    forward_state_free(s);
    kern_pool_free(pool);
    model_free(m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.rss_mib = ru.ru_maxrss / 1024.0;
    return r;
}

/* Forks a child for one measurement so peak RSS is per model. */
static result_t run_ours(const char *path, int threads, int n_gen)
{
    int fd[2];
    result_t r = {0};
    if (pipe(fd)) return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        result_t c = run_ours_child(path, threads, n_gen);
        ssize_t wr = write(fd[1], &c, sizeof c);
        _exit(wr == (ssize_t)sizeof c ? 0 : 1);
    }
    close(fd[1]);
    if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) r.ok = 0;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

/* llama.cpp through node; ok = 0 when node or node-llama-cpp is missing. */
static result_t run_llama(const char *path, int threads, int n_gen)
{
    result_t r = {0};
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "node bench/engine-llamacpp.mjs '%s' %d %d %d %d 2>/dev/null", path,
             threads, N_PROMPT, n_gen, REPS);
    FILE *f = popen(cmd, "r");
    if (!f) return r;
    char line[1024] = "";
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "{\"prefill_tps\":%lf,\"decode_tps\":%lf,\"rss_mib\":%lf", &r.prefill_tps,
                   &r.decode_tps, &r.rss_mib) == 3)
            r.ok = 1;
    pclose(f);
    return r;
}

/* ============================================================= kernels ==== */

/* Matvec alone over one token's matrices of the 1B shape (random weights in memory),
 * bytes streamed per second and tokens/s if the whole token were these matvecs (Q2_K ..
 * Q6_K: every matrix in that type). Each quantized type runs twice: in the file's row
 * layout, then in the layout model loading repacks it into for the kernels in use (q8_0x16,
 * q4_0x16, q4_Kx16 ... with AVX-512 VNNI; the same as the first otherwise). */
static void bench_kernels(const int *threads, int n_threads, const double *bw)
{
    const int kv = L1B_DIM / L1B_HEADS * L1B_KV;
    const size_t shapes[][2] = {{L1B_DIM, L1B_DIM}, {kv, L1B_DIM},      {kv, L1B_DIM},
                                {L1B_DIM, L1B_DIM}, {L1B_FFN, L1B_DIM}, {L1B_FFN, L1B_DIM},
                                {L1B_DIM, L1B_FFN}};
    const kern_type_t types[] = {KERN_F32,  KERN_Q8_0, KERN_Q8_0, KERN_Q4_0, KERN_Q4_0,
                                 KERN_Q4_K, KERN_Q4_K, KERN_Q5_K, KERN_Q5_K, KERN_Q6_K,
                                 KERN_Q6_K, KERN_Q3_K, KERN_Q2_K};
    const int repacked[] = {0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0};
    const int n_types = (int)(sizeof types / sizeof types[0]);
    printf("\nmatvec alone, one layer of the 1B shape x 16 + output (%s kernels)\n",
           kern_impl_name());
    printf("%-7s %4s %10s %10s %12s %9s %12s\n", "type", "thr", "GB/s", "tok/s", "limit tok/s",
           "share", "GB/cpu-s");
    float *x = mem_alloc(L1B_FFN * sizeof(float)), *y = mem_alloc(L1B_VOCAB * sizeof(float));
    for (int i = 0; i < L1B_FFN; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (int ti = 0; ti < n_types; ti++) {
        kern_type_t t = types[ti];
        /* the second of each quantized type as loaded models keep it (all 1B shapes
           repack alike) */
        kern_type_t run_t = repacked[ti] ? kern_repack_type(t, L1B_DIM, L1B_DIM) : t;
        /* distinct buffers per layer so nothing stays in cache */
        void *W[L1B_LAYERS][7];
        size_t layer_bytes = 0;
        for (int l = 0; l < L1B_LAYERS; l++)
            for (int k = 0; k < 7; k++) {
                size_t nbytes = kern_row_size(t, shapes[k][1]) * shapes[k][0];
                W[l][k] = mem_alloc(nbytes);
                memset(W[l][k], 0x11, nbytes);
                if (l == 0) layer_bytes += nbytes;
            }
        size_t out_bytes = kern_row_size(t, L1B_DIM) * L1B_VOCAB;
        void *out = mem_alloc(out_bytes);
        memset(out, 0x11, out_bytes);
        double token_bytes = (double)layer_bytes * L1B_LAYERS + out_bytes;
        for (int ni = 0; ni < n_threads; ni++) {
            kern_pool_t *p = kern_pool_new(threads[ni]);
            double best = 1e30, best_cpu = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                struct timespec c0, c1;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
                uint64_t t0 = clock_mono_ns();
                for (int l = 0; l < L1B_LAYERS; l++)
                    for (int k = 0; k < 7; k++)
                        kern_matvec(p, run_t, W[l][k], x, y, shapes[k][0], shapes[k][1]);
                kern_matvec(p, run_t, out, x, y, L1B_VOCAB, L1B_DIM);
                double s = (clock_mono_ns() - t0) / 1e9;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
                double cpu = (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
                if (s < best) best = s;
                if (cpu < best_cpu) best_cpu = cpu;
            }
            double limit = bw[ni] * 1e9 / token_bytes;
            /* GB per CPU-second: the kernel's own speed when the machine is shared (the
               caller's and workers' CPU time, spinning included) */
            printf("%-7s %4d %10.1f %10.1f %12.1f %8.0f%% %12.1f\n", kern_type_name(run_t),
                   threads[ni], token_bytes / best / 1e9, 1 / best, limit, 100.0 / best / limit,
                   token_bytes / best_cpu / 1e9);
            kern_pool_free(p);
        }
        for (int l = 0; l < L1B_LAYERS; l++)
            for (int k = 0; k < 7; k++)
                mem_free(W[l][k]);
        mem_free(out);
    }
    mem_free(x), mem_free(y);
}

/* ================================================================ main ==== */

static int parse_threads(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static void fmt_ratio(char *b, size_t n, double ours, double theirs, int ok)
{
    if (ok && theirs > 0)
        snprintf(b, n, "%.2fx", ours / theirs);
    else
        snprintf(b, n, "-");
}

static void fmt_num(char *b, size_t n, double v, int ok)
{
    if (ok)
        snprintf(b, n, "%.1f", v);
    else
        snprintf(b, n, "-");
}

/* ============================================================ batching ==== */

#define B_PROMPT    16
#define B_MAXGEN    256
#define B_MAXSEQ    64
#define B_MAXROUNDS 16

/* The median of v[0..n) (sorted in place; n <= B_MAXROUNDS). */
static double median_of(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
            double t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct bseq {
    engine_sched_t *sc;
    engine_session_t *s;
    int prompt[B_PROMPT];
    engine_gen_params_t p;
    double t[B_MAXGEN], cpu[B_MAXGEN]; /* wall and process CPU seconds at each token */
    int ids[B_MAXGEN];
    int n, rc;
    engine_gen_result_t r;
} bseq_t;

static int bseq_token(void *ud, const engine_token_t *t)
{
    bseq_t *q = ud;
    if (q->n < B_MAXGEN) {
        struct timespec c;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
        q->cpu[q->n] = (double)c.tv_sec + c.tv_nsec / 1e9;
        q->t[q->n] = clock_mono_ns() / 1e9;
        q->ids[q->n] = t->id;
    }
    q->n++;
    return 0;
}

static void *bseq_main(void *arg)
{
    bseq_t *q = arg;
    q->rc = engine_sched_generate(q->sc, q->s, q->prompt, B_PROMPT, &q->p, bseq_token, q, &q->r);
    return NULL;
}

/* Sequence i's prompt (the same ids engine-llamacpp-batch.mjs gives its sequence i). */
static void bseq_prompt(int i, int *out)
{
    uint32_t s = 12345u + 7919u * (uint32_t)i;
    for (int k = 0; k < B_PROMPT; k++) {
        s = s * 1103515245u + 12345u;
        out[k] = 3 + (int)(s % 509u);
    }
}

/* Decode tokens per second over all sequences while every one of them was decoding:
 * from the last first token to the first last token; *per_cpu: the same tokens per
 * second of CPU time the process got in that window (steadier on a shared machine). */
static double bseq_aggregate(bseq_t *q, int nseq, double *per_cpu)
{
    double ta = 0, tb = 1e300, ca = 0, cb = 0;
    *per_cpu = 0;
    for (int i = 0; i < nseq; i++) {
        int n = q[i].n < B_MAXGEN ? q[i].n : B_MAXGEN;
        if (n < 2) return 0;
        if (q[i].t[0] > ta) ta = q[i].t[0], ca = q[i].cpu[0];
        if (q[i].t[n - 1] < tb) tb = q[i].t[n - 1], cb = q[i].cpu[n - 1];
    }
    long count = 0;
    for (int i = 0; i < nseq; i++)
        for (int k = 0; k < q[i].n && k < B_MAXGEN; k++)
            count += q[i].t[k] > ta && q[i].t[k] <= tb;
    if (cb > ca) *per_cpu = count / (cb - ca);
    return tb > ta ? count / (tb - ta) : 0;
}

/* nseq sequences at once on a fresh scheduler; their ids into ids[i]. */
static double run_batch_ours(const engine_t *e, int threads, int nseq, int n_gen,
                             int (*ids)[B_MAXGEN], double *per_cpu)
{
    engine_sched_t *sc =
        engine_sched_new(e, &(engine_sched_opts_t){.n_threads = threads, .max_seqs = nseq});
    static bseq_t q[B_MAXSEQ];
    pthread_t th[B_MAXSEQ];
    for (int i = 0; i < nseq; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].sc = sc;
        q[i].s = engine_session_new(
            e, &(engine_session_opts_t){.n_ctx = B_PROMPT + n_gen + 16, .n_threads = 1});
        bseq_prompt(i, q[i].prompt);
        sample_params_default(&q[i].p.sample);
        q[i].p.sample.temperature = 0;
        q[i].p.max_tokens = n_gen;
    }
    for (int i = 0; i < nseq; i++)
        pthread_create(&th[i], NULL, bseq_main, &q[i]);
    for (int i = 0; i < nseq; i++)
        pthread_join(th[i], NULL);
    double agg = bseq_aggregate(q, nseq, per_cpu);
    for (int i = 0; i < nseq; i++) {
        memset(ids[i], 0xff, sizeof ids[i]);
        memcpy(ids[i], q[i].ids, sizeof(int) * (size_t)(q[i].n < n_gen ? q[i].n : n_gen));
        if (q[i].rc || q[i].n < n_gen) agg = -1; /* failed or stopped early (EOS) */
        engine_session_free(q[i].s);
    }
    engine_sched_free(sc);
    return agg;
}

static double run_batch_llama(const char *path, int threads, int nseq, int n_gen, double *per_cpu)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "node bench/engine-llamacpp-batch.mjs '%s' %d %d %d %d 2>/dev/null",
             path, threads, nseq, B_PROMPT, n_gen);
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    char line[1024];
    double v = 0;
    *per_cpu = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "{\"agg_tps\":%lf,\"cpu_tps\":%lf", &v, per_cpu) == 2) break;
    pclose(f);
    return v;
}

static void bench_batch(const char *path, const char *name, const int *counts, int n_counts,
                        int threads, int n_gen, int use_llama, int rounds)
{
    char err[512];
    engine_t *e;
    if (engine_load(path, NULL, &e, err, sizeof err)) {
        printf("%s: %s\n", path, err);
        return;
    }
    if (n_gen > B_MAXGEN) n_gen = B_MAXGEN;
    static int ids[8][B_MAXSEQ][B_MAXGEN];
    if (rounds > B_MAXROUNDS) rounds = B_MAXROUNDS;
    /* per count and round: ours, llama.cpp, then the same per CPU second */
    static double val[4][8][B_MAXROUNDS];
    double ours[8] = {0}, theirs[8] = {0}, ocpu[8] = {0}, lcpu[8] = {0}, load[8][2];
    memset(val, 0, sizeof val);
    for (int c = 0; c < n_counts; c++)
        load[c][0] = 1e9, load[c][1] = 0;
    /* rounds outermost, each count once per round, ours and llama.cpp alternating: a
     * change of load in the middle of the run falls on every count alike */
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < n_counts; c++) {
            double ac = 0, bc = 0, la[3];
            getloadavg(la, 3);
            load[c][0] = la[0] < load[c][0] ? la[0] : load[c][0];
            load[c][1] = la[0] > load[c][1] ? la[0] : load[c][1];
            double a = run_batch_ours(e, threads, counts[c], n_gen, ids[c], &ac);
            if (a < 0) printf("(%d sequences: a sequence failed or ended early)\n", counts[c]);
            val[0][c][r] = a > 0 ? a : 0;
            val[2][c][r] = a > 0 ? ac : 0;
            if (use_llama) {
                double b = run_batch_llama(path, threads, counts[c], n_gen, &bc);
                val[1][c][r] = b;
                val[3][c][r] = bc;
            }
        }
    for (int c = 0; c < n_counts; c++) {
        ours[c] = median_of(val[0][c], rounds);
        theirs[c] = median_of(val[1][c], rounds);
        ocpu[c] = median_of(val[2][c], rounds);
        lcpu[c] = median_of(val[3][c], rounds);
    }
    printf("\ncontinuous batching, %s, %d thread%s, %d-token prompts, %d greedy tokens per "
           "sequence, median of %d rounds (ours and llama.cpp alternating)\n",
           name, threads, threads > 1 ? "s" : "", B_PROMPT, n_gen, rounds);
    printf("aggregate decode tokens/s while all sequences decode (wall clock; then per second "
           "of CPU the process got);\nx1 = over one sequence, ratio = ours / llama.cpp\n");
    printf("%5s | %8s %6s %8s %6s %6s | %8s %6s %8s %6s %6s | %9s | %s\n", "seqs", "ours", "x1",
           "llama", "x1", "ratio", "ours/cpu", "x1", "llama", "x1", "ratio", "same ids",
           "load avg (min, max)");
    for (int c = 0; c < n_counts; c++) {
        /* sequence i's tokens against the same sequence in every other run */
        int same = 0;
        for (int i = 0; i < counts[c]; i++) {
            int ok = 1;
            for (int d = 0; d < n_counts; d++)
                if (i < counts[d] && memcmp(ids[c][i], ids[d][i], sizeof ids[c][i])) ok = 0;
            same += ok;
        }
        char f[2][5][32];
        for (int k = 0; k < 2; k++) {
            const double *o = k ? ocpu : ours, *l = k ? lcpu : theirs;
            fmt_num(f[k][0], 32, o[c], o[c] > 0);
            fmt_ratio(f[k][1], 32, o[c], o[0], o[c] > 0 && o[0] > 0);
            fmt_num(f[k][2], 32, l[c], l[c] > 0);
            fmt_ratio(f[k][3], 32, l[c], l[0], l[c] > 0 && l[0] > 0);
            fmt_ratio(f[k][4], 32, o[c], l[c], l[c] > 0 && o[c] > 0);
        }
        printf("%5d | %8s %6s %8s %6s %6s | %8s %6s %8s %6s %6s | %4d/%-4d | %.1f, %.1f\n",
               counts[c], f[0][0], f[0][1], f[0][2], f[0][3], f[0][4], f[1][0], f[1][1], f[1][2],
               f[1][3], f[1][4], same, counts[c], load[c][0], load[c][1]);
    }
    fflush(stdout);
    engine_free(e);
}

int main(int argc, char **argv)
{
    int threads[8] = {1, 2}, n_threads = 2, n_gen = 32, use_llama = 1, kernels_only = 0;
    int counts[8], n_counts = 0, rounds = 2;
    const char *dir = "bench/out", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--make-model") && i + 1 < argc) {
            const char *d = argv[++i];
            const char *want = i + 1 < argc && argv[i + 1][0] != '-' ? argv[++i] : NULL;
            mkdir(d, 0755);
            static const struct {
                const char *name;
                kern_type_t t;
                int ftype;
            } ts[] = {{"q4_0", KERN_Q4_0, 0},
                      {"q8_0", KERN_Q8_0, 0},
                      {"f32", KERN_F32, 0},
                      {"q4_k_m", KERN_Q4_K, QUANT_FTYPE_Q4_K_M},
                      {"q5_k_m", KERN_Q5_K, QUANT_FTYPE_Q5_K_M},
                      {"q6_k", KERN_Q6_K, QUANT_FTYPE_Q6_K},
                      {"q3_k_m", KERN_Q3_K, QUANT_FTYPE_Q3_K_M},
                      {"q2_k", KERN_Q2_K, QUANT_FTYPE_Q2_K}};
            for (int k = 0; k < (int)(sizeof ts / sizeof ts[0]); k++) {
                if (want && !strstr(want, ts[k].name)) continue;
                char p[1024];
                snprintf(p, sizeof p, "%s/llama1b-%s.gguf", d, ts[k].name);
                uint64_t t0 = clock_mono_ns();
                int rc = make_model(p, ts[k].t, ts[k].ftype);
                printf("%s: %s (%.1f s)\n", p, rc ? "FAILED" : "written",
                       (clock_mono_ns() - t0) / 1e9);
                if (rc) return 1;
            }
            return 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = parse_threads(argv[++i], threads, 8);
        } else if (!strcmp(argv[i], "--gen") && i + 1 < argc) {
            n_gen = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--no-llama")) {
            use_llama = 0;
        } else if (!strcmp(argv[i], "--kernels")) {
            kernels_only = 1;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            n_counts = parse_threads(argv[++i], counts, 8);
            for (int k = 0; k < n_counts; k++)
                if (counts[k] < 1 || counts[k] > B_MAXSEQ) {
                    fprintf(stderr, "engine: --batch counts are 1..%d\n", B_MAXSEQ);
                    return 2;
                }
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        } else {
            fprintf(stderr, "usage: engine [--threads 1,2] [--gen N] [--models DIR] [--no-llama] "
                            "[--only NAME-PART] [--kernels] [--batch 1,2,4,8,16 [--rounds R]] | "
                            "--make-model DIR [TYPE,...]\n");
            return 2;
        }
    }
    if (n_counts) {
        char path[1024], name[64];
        const char *want = only ? only : "q4_0";
        snprintf(path, sizeof path, "%.900s/llama1b-%s.gguf", dir, want);
        snprintf(name, sizeof name, "1B-shaped %s", want);
        if (access(path, R_OK)) {
            printf("%s missing: make it with `engine --make-model %s %s`\n", path, dir, want);
            return 1;
        }
        for (int ti = 0; ti < n_threads; ti++)
            bench_batch(path, name, counts, n_counts, threads[ti], n_gen, use_llama, rounds);
        return 0;
    }
    double bw[8];
    printf("read bandwidth (1 GiB streamed, best of 5):");
    for (int i = 0; i < n_threads; i++) {
        bw[i] = measure_bandwidth(threads[i]);
        printf("  %d thread%s %.1f GB/s", threads[i], threads[i] > 1 ? "s" : "", bw[i]);
    }
    printf("\nkernels: %s\n", kern_impl_name());
    if (kernels_only) {
        bench_kernels(threads, n_threads, bw);
        return 0;
    }

    /* the model list: stories260K in three types (made here), then the 1B files */
    char tmp[] = "/tmp/sy-bench-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    char paths[16][1024], names[16][48];
    int n_models = 0;
    const char *shared = getenv("SY_SHARED") ? getenv("SY_SHARED") : "../shared";
    char bin[1024], tok[1024], err[512];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    model_t *m;
    if (model_load_llama2c(bin, tok, &m, err, sizeof err) == 0) {
        snprintf(paths[0], sizeof paths[0], "%s/s260k-f32.gguf", tmp);
        convert_model_to_gguf(m, paths[0]);
        model_free(m);
        snprintf(names[n_models++], 48, "stories260K f32");
        const kern_type_t qt[] = {KERN_Q8_0, KERN_Q4_0};
        for (int k = 0; k < 2; k++) {
            snprintf(paths[n_models], sizeof paths[0], "%s/s260k-%s.gguf", tmp,
                     kern_type_name(qt[k]));
            if (quant_file(paths[0], paths[n_models], qt[k], 1, NULL, err, sizeof err) == 0)
                snprintf(names[n_models++], 48, "stories260K %s", kern_type_name(qt[k]));
        }
        /* llama-quantize's Q4_K_M mix; 64-wide rows: Q5_0, Q8_0 and F16, no K blocks */
        quant_opts_t qo = {.ftype = QUANT_FTYPE_Q4_K_M, .n_threads = 1};
        snprintf(paths[n_models], sizeof paths[0], "%s/s260k-q4_k_m.gguf", tmp);
        if (quant_file_opts(paths[0], paths[n_models], &qo, NULL, err, sizeof err) == 0)
            snprintf(names[n_models++], 48, "stories260K q4_k_m");
    } else {
        printf("(stories260K not found: %s)\n", err);
    }
    static const char *t1b[] = {"f32",    "q8_0", "q4_0",   "q4_k_m",
                                "q5_k_m", "q6_k", "q3_k_m", "q2_k"};
    for (int k = 0; k < 8; k++) {
        snprintf(paths[n_models], sizeof paths[0], "%.900s/llama1b-%s.gguf", dir, t1b[k]);
        if (access(paths[n_models], R_OK) == 0)
            snprintf(names[n_models++], 48, "1B-shaped %s", t1b[k]);
        else
            printf("(%s missing: make it with `engine --make-model %s`)\n", paths[n_models], dir);
    }

    printf("\nprefill %d tokens, decode %d tokens; best of %d runs x %d alternating rounds; "
           "ratio = ours / llama.cpp\n",
           N_PROMPT, n_gen, REPS, ROUNDS);
    printf("%-18s %3s | %9s %9s %6s | %9s %9s %6s | %8s %8s | %7s %6s\n", "model", "thr", "prefill",
           "llama", "ratio", "decode", "llama", "ratio", "RSS MiB", "llama", "limit", "share");
    for (int i = 0; i < n_models; i++) {
        if (only && !strstr(names[i], only)) continue;
        for (int ti = 0; ti < n_threads; ti++) {
            /* ROUNDS alternations of the two engines, the best figures of each kept, so a
               burst of load elsewhere on the machine does not favour either */
            result_t o = {0}, l = {0};
            for (int round = 0; round < ROUNDS; round++) {
                result_t a = run_ours(paths[i], threads[ti], n_gen);
                if (a.ok) {
                    if (a.prefill_tps > o.prefill_tps) o.prefill_tps = a.prefill_tps;
                    if (a.decode_tps > o.decode_tps) o.decode_tps = a.decode_tps;
                    if (a.rss_mib > o.rss_mib) o.rss_mib = a.rss_mib;
                    o.weight_bytes = a.weight_bytes;
                    o.ok = 1;
                }
                if (!use_llama) continue;
                result_t b = run_llama(paths[i], threads[ti], n_gen);
                if (b.ok) {
                    if (b.prefill_tps > l.prefill_tps) l.prefill_tps = b.prefill_tps;
                    if (b.decode_tps > l.decode_tps) l.decode_tps = b.decode_tps;
                    if (b.rss_mib > l.rss_mib) l.rss_mib = b.rss_mib;
                    l.ok = 1;
                }
            }
            char a[6][32];
            fmt_num(a[0], 32, l.prefill_tps, l.ok);
            fmt_ratio(a[1], 32, o.prefill_tps, l.prefill_tps, l.ok && o.ok);
            fmt_num(a[2], 32, l.decode_tps, l.ok);
            fmt_ratio(a[3], 32, o.decode_tps, l.decode_tps, l.ok && o.ok);
            fmt_num(a[4], 32, l.rss_mib, l.ok);
            double limit = o.weight_bytes > 0 ? bw[ti] * 1e9 / o.weight_bytes : 0;
            printf("%-18s %3d | %9.1f %9s %6s | %9.1f %9s %6s | %8.0f %8s | %7.1f %5.0f%%\n",
                   names[i], threads[ti], o.prefill_tps, a[0], a[1], o.decode_tps, a[2], a[3],
                   o.rss_mib, a[4], limit, limit > 0 ? 100 * o.decode_tps / limit : 0);
            fflush(stdout);
        }
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "engine: could not remove %s\n", tmp);
    return 0;
}
