/* test_engine_kquant.c — the Q5_0/Q5_1 and K-quant weight types: block sizes, bit
 * identity of our quantization and dequantization with ggml's own (libggml-base from
 * node-llama-cpp, through tests/tools/ggml_quants; skipped when not installed),
 * round-trip error, and every dot-product kernel against the exact dot of the stored
 * weights and against the scalar reference, on awkward shapes, with the bounds stated
 * where they are asserted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kernels.h"
#include "engine/kquants.h"

static char tmpdir[64];
static const char *ggml_libdir = "bench/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";

static const kern_type_t kq_types[] = {KERN_Q5_0, KERN_Q5_1, KERN_Q2_K, KERN_Q3_K,
                                       KERN_Q4_K, KERN_Q5_K, KERN_Q6_K};
#define N_KQ (sizeof kq_types / sizeof kq_types[0])

/* xorshift, so every run sees the same data */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
/* uniform in [-1, 1), with a few larger outliers like real weights and activations */
static float rnd_f(void)
{
    float v = (float)(rnd_u32() % 2000001) / 1000000.0f - 1.0f;
    return rnd_u32() % 50 == 0 ? v * 8.0f : v;
}

/* ========================================================== layouts ==== */

static void test_block_sizes(void **state)
{
    (void)state;
    static const struct {
        kern_type_t t;
        const char *name;
        size_t len, bytes;
    } want[] = {{KERN_Q5_0, "q5_0", 32, 22},   {KERN_Q5_1, "q5_1", 32, 24},
                {KERN_Q2_K, "q2_K", 256, 84},  {KERN_Q3_K, "q3_K", 256, 110},
                {KERN_Q4_K, "q4_K", 256, 144}, {KERN_Q5_K, "q5_K", 256, 176},
                {KERN_Q6_K, "q6_K", 256, 210}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(kern_type_valid(want[i].t), 0);
        assert_string_equal(kern_type_name(want[i].t), want[i].name);
        assert_int_equal(kern_row_size(want[i].t, want[i].len * 3), want[i].bytes * 3);
        /* a row that is not whole blocks has no size: the loader refuses it */
        assert_int_equal(kern_row_size(want[i].t, want[i].len + 16), 0);
    }
    /* ggml types this engine does not read */
    assert_int_equal(kern_type_valid(3), -1);  /* q4_1 */
    assert_int_equal(kern_type_valid(9), -1);  /* q8_1 */
    assert_int_equal(kern_type_valid(15), -1); /* q8_K is not a weight type here */
    assert_int_equal(kern_type_valid(16), -1); /* iq2_xxs */
}

/* ====================================================== against ggml ==== */

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int read_file(const char *path, void *p, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int ok = fread(p, 1, n + 1, f) == n;
    fclose(f);
    return ok ? 0 : -1;
}

/* Runs the ggml tool; 0 on success. */
static int run_ggml(const char *mode, kern_type_t t, const char *in, const char *out)
{
    const char *build = getenv("SY_BUILD");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tools/ggml_quants %s %s %s %s %s", build ? build : "build/asan",
             ggml_libdir, mode, kern_type_name(t), in, out);
    return system(cmd);
}

static int ggml_available(void)
{
    const char *build = getenv("SY_BUILD");
    char lib[600], tool[600];
    snprintf(lib, sizeof lib, "%s/libggml-base.so", ggml_libdir);
    snprintf(tool, sizeof tool, "%s/tools/ggml_quants", build ? build : "build/asan");
    if (access(lib, R_OK) || access(tool, X_OK)) {
        print_message("# skip: ggml not installed (cd bench && npm i) or %s not built\n", tool);
        return 0;
    }
    return 1;
}

#define N_VALS 2048 /* 8 super-blocks per input */

/* Input k of the quantization corpus: spread, zeros, constants, one sign, tiny,
 * outliers, and half-zero blocks (the edge cases of the scale searches). */
static void corpus(int k, float *x)
{
    for (int i = 0; i < N_VALS; i++) {
        float v = rnd_f();
        switch (k) {
        case 0:
            x[i] = v;
            break;
        case 1:
            x[i] = 0.0f;
            break;
        case 2:
            x[i] = 0.5f;
            break;
        case 3:
            x[i] = fabsf(v);
            break;
        case 4:
            x[i] = -fabsf(v) * 3.0f;
            break;
        case 5:
            x[i] = v * 1e-6f;
            break;
        case 6:
            x[i] = rnd_u32() % 97 == 0 ? v * 300.0f : v * 0.01f;
            break;
        case 7:
            x[i] = (i / 16) % 2 ? v : 0.0f;
            break;
        default:
            x[i] = (float)(int)(v * 4.0f);
            break; /* few distinct values */
        }
    }
}
#define N_CORPUS 9

/* Our reference quantization writes the bytes ggml's quantize_row_*_ref writes, for
 * every type and every input of the corpus. */
static void test_quantize_identical_to_ggml(void **state)
{
    (void)state;
    if (!ggml_available()) skip();
    float *x = malloc(N_VALS * sizeof(float));
    uint8_t *ours = malloc(N_VALS * 2), *theirs = malloc(N_VALS * 2);
    char in[128], out[128];
    snprintf(in, sizeof in, "%s/in.f32", tmpdir);
    snprintf(out, sizeof out, "%s/out.q", tmpdir);
    for (size_t ti = 0; ti < N_KQ; ti++) {
        kern_type_t t = kq_types[ti];
        size_t bytes = kern_row_size(t, N_VALS);
        for (int k = 0; k < N_CORPUS; k++) {
            corpus(k, x);
            kern_quantize_row(t, x, ours, N_VALS);
            assert_int_equal(write_file(in, x, N_VALS * sizeof(float)), 0);
            if (run_ggml("quant", t, in, out))
                fail_msg("ggml_quants failed for %s", kern_type_name(t));
            assert_int_equal(read_file(out, theirs, bytes), 0);
            if (memcmp(ours, theirs, bytes)) {
                size_t at = 0;
                while (ours[at] == theirs[at])
                    at++;
                fail_msg("%s corpus %d: byte %zu (block %zu) is %u, ggml writes %u",
                         kern_type_name(t), k, at, at / kern_row_size(t, kern_kq_block_len(t)),
                         ours[at], theirs[at]);
            }
        }
    }
    free(x), free(ours), free(theirs);
}

/* A random finite half (subnormals and both signs included). */
static kern_f16_t rnd_half(void)
{
    uint32_t e = rnd_u32() % 31; /* 31 would be inf/NaN */
    return (kern_f16_t)((rnd_u32() & 0x83ffu) | (e << 10));
}

/* Offsets of the f16 fields in a block of t. */
static int half_fields(kern_type_t t, size_t off[2])
{
    switch (t) {
    case KERN_Q5_0:
        off[0] = 0;
        return 1;
    case KERN_Q5_1:
        off[0] = 0, off[1] = 2;
        return 2;
    case KERN_Q2_K:
        off[0] = 80, off[1] = 82;
        return 2;
    case KERN_Q3_K:
        off[0] = 108;
        return 1;
    case KERN_Q6_K:
        off[0] = 208;
        return 1;
    default:
        off[0] = 0, off[1] = 2;
        return 2; /* Q4_K, Q5_K */
    }
}

/* Dequantizing random blocks (every bit pattern of quants and scales, finite f16
 * scales) gives the f32 bits ggml's dequantize_row_* gives. */
static void test_dequantize_identical_to_ggml(void **state)
{
    (void)state;
    if (!ggml_available()) skip();
    const size_t n = 64 * KERN_QK_K;
    float *ours = malloc(n * sizeof(float)), *theirs = malloc(n * sizeof(float));
    uint8_t *blocks = malloc(n * 2);
    char in[128], out[128];
    snprintf(in, sizeof in, "%s/in.q", tmpdir);
    snprintf(out, sizeof out, "%s/out.f32", tmpdir);
    for (size_t ti = 0; ti < N_KQ; ti++) {
        kern_type_t t = kq_types[ti];
        size_t bb = kern_kq_block_bytes(t), nb = n / kern_kq_block_len(t), off[2];
        int nh = half_fields(t, off);
        for (size_t i = 0; i < nb * bb; i++)
            blocks[i] = (uint8_t)rnd_u32();
        for (size_t b = 0; b < nb; b++)
            for (int h = 0; h < nh; h++) {
                kern_f16_t v = rnd_half();
                memcpy(blocks + b * bb + off[h], &v, 2);
            }
        kern_dequantize_row(t, blocks, ours, n);
        assert_int_equal(write_file(in, blocks, nb * bb), 0);
        if (run_ggml("dequant", t, in, out))
            fail_msg("ggml_quants failed for %s", kern_type_name(t));
        assert_int_equal(read_file(out, theirs, n * sizeof(float)), 0);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&ours[i], &theirs[i], 4))
                fail_msg("%s: value %zu is %a, ggml gives %a", kern_type_name(t), i, ours[i],
                         theirs[i]);
    }
    free(ours), free(theirs), free(blocks);
}

/* ======================================================== round trip ==== */

/* Quantize then dequantize uniform [-1, 1) weights: the RMS error, relative to the
 * RMS of the input, stays below each type's bound (about twice what these formats
 * give: 2, 3, 4, 5, 6 bits). A wrong bit order or scale packing gives errors near 1. */
static void test_round_trip_error(void **state)
{
    (void)state;
    static const double bound[] = {0.05, 0.05, 0.45, 0.25, 0.1, 0.05, 0.025};
    float *x = malloc(N_VALS * sizeof(float)), *y = malloc(N_VALS * sizeof(float));
    uint8_t *q = malloc(N_VALS * 2);
    for (size_t ti = 0; ti < N_KQ; ti++) {
        kern_type_t t = kq_types[ti];
        double se = 0, sx = 0;
        for (int rep = 0; rep < 8; rep++) {
            for (int i = 0; i < N_VALS; i++)
                x[i] = (float)(rnd_u32() % 2000001) / 1000000.0f - 1.0f;
            kern_quantize_row(t, x, q, N_VALS);
            kern_dequantize_row(t, q, y, N_VALS);
            for (int i = 0; i < N_VALS; i++) {
                se += (double)(x[i] - y[i]) * (x[i] - y[i]);
                sx += (double)x[i] * x[i];
            }
        }
        double rel = sqrt(se / sx);
        print_message("# %s: relative RMS error %.4f (bound %.3f)\n", kern_type_name(t), rel,
                      bound[ti]);
        if (!(rel < bound[ti])) fail_msg("%s: relative RMS error %g", kern_type_name(t), rel);
    }
    free(x), free(y), free(q);
}

/* ============================================================ kernels ==== */

typedef struct mm_case {
    kern_type_t t;
    size_t rows, cols, n;
    void *W;     /* (rows, cols) in t */
    float *X;    /* (n, cols) */
    float *Wd;   /* W dequantized */
    float *Wmin; /* the min subtracted from each weight (asymmetric types), else 0 */
} mm_case_t;

static void case_init(mm_case_t *c, kern_type_t t, size_t rows, size_t cols, size_t n)
{
    c->t = t, c->rows = rows, c->cols = cols, c->n = n;
    size_t rb = kern_row_size(t, cols);
    c->W = malloc(rb * rows);
    c->Wd = malloc(rows * cols * sizeof(float));
    c->Wmin = calloc(rows * cols, sizeof(float));
    c->X = malloc(n * cols * sizeof(float));
    float *tmp = malloc(cols * sizeof(float));
    uint8_t *blk = malloc(rb);
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < cols; k++)
            tmp[k] = rnd_f();
        uint8_t *w = (uint8_t *)c->W + r * rb;
        kern_quantize_row(t, tmp, w, cols);
        kern_dequantize_row(t, w, c->Wd + r * cols, cols);
        if (t == KERN_Q4_K || t == KERN_Q5_K || t == KERN_Q2_K) {
            /* quants all zero: what is left is each weight's -dmin * m */
            memcpy(blk, w, rb);
            size_t bb = kern_kq_block_bytes(t);
            for (size_t b = 0; b < rb / bb; b++)
                if (t == KERN_Q2_K)
                    memset(blk + b * bb + 16, 0, 64);
                else
                    memset(blk + b * bb + 16, 0, bb - 16);
            kern_dequantize_row(t, blk, c->Wmin + r * cols, cols);
        }
    }
    for (size_t k = 0; k < n * cols; k++)
        c->X[k] = rnd_f();
    free(tmp), free(blk);
}

static void case_free(mm_case_t *c)
{
    free(c->W), free(c->Wd), free(c->Wmin), free(c->X);
}

/* Bound on |kernel - exact dot of the stored weights| for one output:
 *  - activation quantization: per block of B (256 for K-quants, Q8_K with an f32
 *    scale; 32 for Q5_0/Q5_1, Q8_0 with an f16 scale), each x is off by at most
 *    d_x / 2 (plus the f16 rounding of d_x, 127 * 2^-11 * d_x, for Q8_0), d_x =
 *    amax_block / 127, times |w|;
 *  - float arithmetic: (cols + 4) * FLT_EPSILON times the sum of |w x| where an
 *    asymmetric type's w counts as |w| + 2 |min| (the integer dot is split into the
 *    scaled part and the min part, which may cancel). */
static double dot_bound(const mm_case_t *c, size_t r, size_t b)
{
    const float *w = c->Wd + r * c->cols, *mn = c->Wmin + r * c->cols, *x = c->X + b * c->cols;
    const size_t B = kern_kq_is_k(c->t) ? KERN_QK_K : KERN_QK;
    const double f16_round = kern_kq_is_k(c->t) ? 0.0 : 127 * 0x1p-11;
    double s = 0, qerr = 0;
    for (size_t k = 0; k < c->cols; k++)
        s += (fabs((double)w[k]) + 2 * fabs((double)mn[k])) * fabs((double)x[k]);
    for (size_t i = 0; i < c->cols / B; i++) {
        double amax = 0, sw = 0;
        for (size_t j = 0; j < B; j++) {
            amax = fmax(amax, fabs(x[i * B + j]));
            sw += fabs(w[i * B + j]);
        }
        qerr += sw * amax / 127 * (0.5 + f16_round);
    }
    s += qerr * 1.01;
    return (c->cols + 4) * FLT_EPSILON * s + qerr + 1e-30;
}

static double exact_dot(const mm_case_t *c, size_t r, size_t b)
{
    double s = 0;
    for (size_t k = 0; k < c->cols; k++)
        s += (double)c->Wd[r * c->cols + k] * c->X[b * c->cols + k];
    return s;
}

/* One shape: the reference and the SIMD kernels each within the bound of the exact
 * dot; SIMD and reference within twice the bound of each other. */
static void check_shape(kern_type_t t, size_t rows, size_t cols, size_t n, kern_pool_t *pool)
{
    mm_case_t c;
    case_init(&c, t, rows, cols, n);
    float *ref = malloc(n * rows * sizeof(float)), *got = malloc(n * rows * sizeof(float));
    kern_force_scalar(1);
    kern_matmul(NULL, t, c.W, c.X, ref, n, rows, cols);
    kern_force_scalar(0);
    if (n == 1)
        kern_matvec(pool, t, c.W, c.X, got, rows, cols);
    else
        kern_matmul(pool, t, c.W, c.X, got, n, rows, cols);
    for (size_t b = 0; b < n; b++)
        for (size_t r = 0; r < rows; r++) {
            double e = exact_dot(&c, r, b), bound = dot_bound(&c, r, b);
            float vr = ref[b * rows + r], vg = got[b * rows + r];
            if (fabs(vr - e) > bound)
                fail_msg("%s ref rows %zu cols %zu n %zu: |%g - %g| > %g", kern_type_name(t), rows,
                         cols, n, vr, e, bound);
            if (fabs(vg - e) > bound || fabs(vg - vr) > 2 * bound)
                fail_msg("%s %s rows %zu cols %zu n %zu: %g vs ref %g exact %g bound %g",
                         kern_type_name(t), kern_impl_name(), rows, cols, n, vg, vr, e, bound);
        }
    free(ref), free(got);
    case_free(&c);
}

/* Odd row counts, one to many super-blocks, token counts around the kernels' tile of
 * 4, with and without a pool of threads. */
static void test_kernels_awkward_shapes(void **state)
{
    (void)state;
    static const size_t rows[] = {1, 3, 17, 40};
    static const size_t cols[] = {256, 768, 2816};
    static const size_t ns[] = {1, 2, 3, 4, 5, 9};
    kern_pool_t *pool = kern_pool_new(3);
    print_message("# kernels: %s\n", kern_impl_name());
    for (size_t ti = 0; ti < N_KQ; ti++)
        for (size_t ri = 0; ri < 4; ri++)
            for (size_t ci = 0; ci < 3; ci++)
                for (size_t ni = 0; ni < 6; ni++) {
                    if (cols[ci] == 2816 && ns[ni] > 3) continue; /* keep the run short */
                    check_shape(kq_types[ti], rows[ri], cols[ci], ns[ni],
                                (ri + ni) % 2 ? pool : NULL);
                }
    kern_pool_free(pool);
}

/* One kern_matmul_many call over K-quant matrices of different types (the q/k/v of a
 * Q4_K_M file: Q4_K and Q6_K) gives what separate calls give, bit for bit. */
static void test_matmul_many_mixed(void **state)
{
    (void)state;
    const size_t cols = 512, n = 3;
    kern_type_t ts[3] = {KERN_Q4_K, KERN_Q4_K, KERN_Q6_K};
    size_t rs[3] = {32, 16, 16};
    mm_case_t c[3];
    kern_mat_t m[3];
    float *single[3];
    for (int k = 0; k < 3; k++) {
        case_init(&c[k], ts[k], rs[k], cols, n);
        if (k) memcpy(c[k].X, c[0].X, n * cols * sizeof(float));
        single[k] = malloc(n * rs[k] * sizeof(float));
        kern_matmul(NULL, ts[k], c[k].W, c[0].X, single[k], n, rs[k], cols);
        m[k] = (kern_mat_t){
            .type = ts[k], .W = c[k].W, .rows = rs[k], .Y = malloc(n * rs[k] * sizeof(float))};
    }
    kern_pool_t *pool = kern_pool_new(2);
    kern_matmul_many(pool, m, 3, c[0].X, n, cols);
    for (int k = 0; k < 3; k++) {
        assert_memory_equal(m[k].Y, single[k], n * rs[k] * sizeof(float));
        free(m[k].Y), free(single[k]);
        case_free(&c[k]);
    }
    kern_pool_free(pool);
}

/* Q8_K activations: d = amax / 127, quants within one step of x / d, bsums the sums
 * of each 16 quants; an all-zero block has d = 0. */
static void test_q8_k_activations(void **state)
{
    (void)state;
    float x[2 * KERN_QK_K];
    for (int i = 0; i < KERN_QK_K; i++)
        x[i] = rnd_f();
    memset(x + KERN_QK_K, 0, sizeof(float) * KERN_QK_K);
    kern_block_q8_k_t y[2];
    kern_kq_quantize_q8_k(x, y, 2 * KERN_QK_K);
    float amax = 0;
    for (int i = 0; i < KERN_QK_K; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    assert_true(y[0].d == amax / 127.0f);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int k = 0; k < 16; k++) {
            s += y[0].qs[16 * g + k];
            assert_true(fabsf(y[0].qs[16 * g + k] - x[16 * g + k] / y[0].d) <= 0.5f + 1e-4f);
        }
        assert_int_equal(y[0].bsums[g], s);
        assert_int_equal(y[1].bsums[g], 0);
    }
    assert_true(y[1].d == 0.0f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sy-kquant-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_sizes),
        cmocka_unit_test(test_quantize_identical_to_ggml),
        cmocka_unit_test(test_dequantize_identical_to_ggml),
        cmocka_unit_test(test_round_trip_error),
        cmocka_unit_test(test_q8_k_activations),
        cmocka_unit_test(test_kernels_awkward_shapes),
        cmocka_unit_test(test_matmul_many_mixed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
