/* test_engine_kernels.c — half-float conversion, ggml-exact row quantization, every
 * matmul kernel against the scalar reference and against a double-precision dot on
 * awkward shapes, with the error bounds stated where they are asserted; the thread
 * pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

/* xorshift, so every run sees the same data */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
/* uniform in [-1, 1), with a few larger outliers like real activations */
static float rnd_f(void)
{
    float v = (float)(rnd_u32() % 2000001) / 1000000.0f - 1.0f;
    return rnd_u32() % 50 == 0 ? v * 8.0f : v;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ======================================================= half floats ==== */

/* Every one of the 65536 half values widens and narrows back to itself (NaNs: to a
 * NaN of the same sign). */
static void test_f16_round_trip_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kern_f16_to_f32((kern_f16_t)h);
        kern_f16_t back = kern_f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            assert_true(isnan(f));
            assert_int_equal(back, (h & 0x8000) | 0x7e00);
        } else {
            assert_int_equal(back, h);
        }
    }
}

static void test_f16_values(void **state)
{
    (void)state;
    assert_true(kern_f16_to_f32(0x3c00) == 1.0f);
    assert_true(kern_f16_to_f32(0xc000) == -2.0f);
    assert_true(kern_f16_to_f32(0x0001) == 0x1p-24f);        /* smallest subnormal */
    assert_true(kern_f16_to_f32(0x03ff) == 1023 * 0x1p-24f); /* largest subnormal */
    assert_true(kern_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(kern_f16_to_f32(0x7c00)) && kern_f16_to_f32(0xfc00) < 0);
    assert_true(signbit(kern_f16_to_f32(0x8000)));
    /* rounding to nearest, ties to even */
    assert_int_equal(kern_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);            /* tie -> even */
    assert_int_equal(kern_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);        /* tie -> even */
    assert_int_equal(kern_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* above tie */
    assert_int_equal(kern_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kern_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(kern_f32_to_f16(65520.0f), 0x7c00); /* overflow by rounding */
    assert_int_equal(kern_f32_to_f16(-1e30f), 0xfc00);
    assert_int_equal(kern_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(kern_f32_to_f16(NAN) & 0x7fff, 0x7e00);
    assert_int_equal(kern_f32_to_f16(0x1p-25f), 0x0000);           /* tie -> even zero */
    assert_int_equal(kern_f32_to_f16(0x1p-25f * 1.0001f), 0x0001); /* above tie */
    assert_int_equal(kern_f32_to_f16(3 * 0x1p-25f), 0x0002);       /* 1.5 ulp tie -> even */
    assert_int_equal(kern_f32_to_f16(-0x1p-24f), 0x8001);
    assert_int_equal(kern_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400); /* rounds up to normal */
    assert_int_equal(kern_f32_to_f16(1e-10f), 0x0000);
}

__attribute__((target("f16c"))) static kern_f16_t hw_f32_to_f16(float f)
{
    return (kern_f16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* The software narrowing agrees with the F16C instruction on a million random f32
 * bit patterns (NaN excluded: the instruction keeps payloads). */
static void test_f16_matches_hardware(void **state)
{
    (void)state;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) skip();
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = rnd_u32() ^ (rnd_u32() << 21);
        /* bias half of the samples into the half range, where rounding matters */
        if (i & 1) u = (u & 0x80ffffffu) | ((0x66u + (u >> 24) % 0x20u) << 23);
        float f = bits_f(u);
        if (isnan(f)) continue;
        assert_int_equal(kern_f32_to_f16(f), hw_f32_to_f16(f));
    }
}

/* ====================================================== quantization ==== */

static void test_q8_0_rounding(void **state)
{
    (void)state;
    float x[32] = {0};
    kern_block_q8_0_t b;
    x[0] = 127.0f; /* amax 127: d = 1, id = 1, so q = round(x) */
    x[1] = 2.5f;   /* ggml rounds half away from zero: 3, not 2 */
    x[2] = -2.5f;
    x[3] = 0.49f;
    x[4] = -126.5f;
    kern_quantize_row(KERN_Q8_0, x, &b, 32);
    assert_int_equal(b.d, 0x3c00);
    assert_int_equal(b.qs[0], 127);
    assert_int_equal(b.qs[1], 3);
    assert_int_equal(b.qs[2], -3);
    assert_int_equal(b.qs[3], 0);
    assert_int_equal(b.qs[4], -127);
    /* all zero: d = 0 and no division by zero */
    memset(x, 0, sizeof x);
    kern_quantize_row(KERN_Q8_0, x, &b, 32);
    assert_int_equal(b.d, 0);
    for (int j = 0; j < 32; j++)
        assert_int_equal(b.qs[j], 0);
}

static void test_q4_0_rounding(void **state)
{
    (void)state;
    float x[32] = {0};
    kern_block_q4_0_t b;
    x[0] = -8.0f;  /* signed max by magnitude: d = -8 / -8 = 1, id = 1 */
    x[1] = 0.5f;   /* trunc(0.5 + 8.5) = 9 */
    x[2] = -0.5f;  /* trunc(8) = 8 */
    x[3] = 7.5f;   /* 16 -> clamped to 15 */
    x[4] = 7.4f;   /* 15.9 -> 15 */
    x[16] = -7.6f; /* 0.9 -> 0: weight 16 sits in the high nibble of byte 0 */
    x[17] = 3.0f;  /* 11.5 -> 11 */
    kern_quantize_row(KERN_Q4_0, x, &b, 32);
    assert_int_equal(b.d, 0x3c00);
    assert_int_equal(b.qs[0], 0 | 0 << 4);
    assert_int_equal(b.qs[1], 9 | 11 << 4);
    assert_int_equal(b.qs[2], 8 | 8 << 4);
    assert_int_equal(b.qs[3], 15 | 8 << 4);
    assert_int_equal(b.qs[4], 15 | 8 << 4);
    /* a positive max flips the scale: max 4 -> d = -0.5, 4 maps to q = 0 */
    memset(x, 0, sizeof x);
    x[5] = 4.0f;
    x[6] = -4.0f; /* -4 * -2 + 8.5 = 16.5 -> 15 */
    kern_quantize_row(KERN_Q4_0, x, &b, 32);
    assert_int_equal(b.d, kern_f32_to_f16(-0.5f));
    assert_int_equal(b.qs[5] & 0xf, 0);
    assert_int_equal(b.qs[6] & 0xf, 15);
    assert_int_equal(b.qs[0] & 0xf, 8);
}

/* Quantize -> dequantize error, per element: Q8_0 within d/2 (round to nearest);
 * Q4_0 within d/2 except the clamp at q = 15, which costs up to one step: within |d|.
 * d is the stored f16 scale; its own rounding (relative 2^-11, times |q| <= 127 or 8)
 * is added to the bound. */
static void test_quantize_error_bounds(void **state)
{
    (void)state;
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    void *q = malloc(N * 2);
    for (int k = 0; k < N; k++)
        x[k] = rnd_f() * ((k / 32) % 7 + 1) * 0.1f;
    kern_quantize_row(KERN_Q8_0, x, q, N);
    kern_dequantize_row(KERN_Q8_0, q, y, N);
    for (int i = 0; i < N / 32; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[i * 32 + j]));
        float d = amax / 127;
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(y[i * 32 + j] - x[i * 32 + j]) <=
                        d * (0.5f + 127 * 0x1p-11f) + 1e-12f);
    }
    kern_quantize_row(KERN_Q4_0, x, q, N);
    kern_dequantize_row(KERN_Q4_0, q, y, N);
    for (int i = 0; i < N / 32; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[i * 32 + j]));
        float d = amax / 8;
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(y[i * 32 + j] - x[i * 32 + j]) <= d * (1.0f + 8 * 0x1p-11f) + 1e-12f);
    }
    /* F16 rows: relative 2^-11 */
    kern_quantize_row(KERN_F16, x, q, N);
    kern_dequantize_row(KERN_F16, q, y, N);
    for (int k = 0; k < N; k++)
        assert_true(fabsf(y[k] - x[k]) <= fabsf(x[k]) * 0x1p-11f + 0x1p-25f);
    free(x), free(y), free(q);
}

/* The SIMD activation quantizer equals the reference (random data has no exact ties,
 * the only inputs where they may differ). */
static void test_simd_activation_quantizer(void **state)
{
    (void)state;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") ||
        !__builtin_cpu_supports("f16c"))
        skip();
    enum { N = 4096 + 32 };
    float *x = malloc(N * sizeof(float));
    kern_block_q8_0_t a[N / 32], b[N / 32];
    for (int k = 0; k < N; k++)
        x[k] = rnd_f();
    kern_quantize_row(KERN_Q8_0, x, a, N);
    kern_avx2_quantize_q8_0(x, b, N);
    assert_memory_equal(a, b, sizeof a);
    free(x);
}

/* ============================================================ kernels ==== */

static const kern_type_t types[] = {KERN_F32, KERN_F16, KERN_Q8_0, KERN_Q4_0};

typedef struct mm_case {
    kern_type_t t;
    size_t rows, cols, n;
    void *W;   /* (rows, cols) in t */
    float *X;  /* (n, cols) */
    float *Wd; /* W dequantized */
} mm_case_t;

static void case_init(mm_case_t *c, kern_type_t t, size_t rows, size_t cols, size_t n)
{
    c->t = t, c->rows = rows, c->cols = cols, c->n = n;
    size_t rb = kern_row_size(t, cols);
    c->W = malloc(rb * rows);
    c->Wd = malloc(rows * cols * sizeof(float));
    c->X = malloc(n * cols * sizeof(float));
    float *tmp = malloc(cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < cols; k++)
            tmp[k] = rnd_f();
        kern_quantize_row(t, tmp, (char *)c->W + r * rb, cols);
        kern_dequantize_row(t, (char *)c->W + r * rb, c->Wd + r * cols, cols);
    }
    for (size_t k = 0; k < n * cols; k++)
        c->X[k] = rnd_f();
    free(tmp);
}

static void case_free(mm_case_t *c)
{
    free(c->W), free(c->Wd), free(c->X);
}

/* Bound on |kernel - exact| for one output, as documented per type:
 *  - float accumulation in any order: (cols + 4) * FLT_EPSILON * sum |w x|;
 *  - quantized types add the activation quantization: per block of 32, each x is off
 *    by at most d_x / 2 plus the f16 rounding of d_x (127 * 2^-11 * d_x), with
 *    d_x = amax_block / 127, times |w|. */
static double dot_bound(const mm_case_t *c, size_t r, size_t b)
{
    const float *w = c->Wd + r * c->cols, *x = c->X + b * c->cols;
    double s = 0, qerr = 0;
    for (size_t k = 0; k < c->cols; k++)
        s += fabs((double)w[k] * x[k]);
    if (c->t == KERN_Q8_0 || c->t == KERN_Q4_0) {
        for (size_t i = 0; i < c->cols / 32; i++) {
            double amax = 0, sw = 0;
            for (int j = 0; j < 32; j++) {
                amax = fmax(amax, fabs(x[i * 32 + j]));
                sw += fabs(w[i * 32 + j]);
            }
            qerr += sw * amax / 127 * (0.5 + 127 * 0x1p-11);
        }
        s += qerr * 1.01; /* the quantized products are summed in f32 too */
    }
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
 * dot of the stored weights; SIMD and reference within the sum of both bounds. */
static void check_shape(kern_type_t t, size_t rows, size_t cols, size_t n, int simd)
{
    mm_case_t c;
    case_init(&c, t, rows, cols, n);
    float *ref = malloc(n * rows * sizeof(float)), *got = malloc(n * rows * sizeof(float));
    kern_force_scalar(1);
    if (n == 1)
        kern_matvec(NULL, t, c.W, c.X, ref, rows, cols);
    else
        kern_matmul(NULL, t, c.W, c.X, ref, n, rows, cols);
    kern_force_scalar(0);
    if (simd) {
        if (n == 1)
            kern_matvec(NULL, t, c.W, c.X, got, rows, cols);
        else
            kern_matmul(NULL, t, c.W, c.X, got, n, rows, cols);
    }
    for (size_t b = 0; b < n; b++) {
        for (size_t r = 0; r < rows; r++) {
            double e = exact_dot(&c, r, b), bound = dot_bound(&c, r, b);
            float vr = ref[b * rows + r];
            if (fabs(vr - e) > bound)
                fail_msg("%s ref rows %zu cols %zu n %zu: |%g - %g| > %g", kern_type_name(t), rows,
                         cols, n, vr, e, bound);
            if (simd) {
                float vg = got[b * rows + r];
                if (fabs(vg - e) > bound || fabs(vg - vr) > 2 * bound)
                    fail_msg("%s simd rows %zu cols %zu n %zu: %g vs ref %g exact %g bound %g",
                             kern_type_name(t), rows, cols, n, vg, vr, e, bound);
            }
        }
    }
    free(ref), free(got);
    case_free(&c);
}

static void test_kernels_awkward_shapes(void **state)
{
    (void)state;
    static const size_t rows[] = {1, 3, 17, 67};
    static const size_t cols[] = {32, 64, 96, 4096 + 32};
    kern_force_scalar(0);
    int simd = strcmp(kern_impl_name(), "scalar") != 0;
    if (!simd) print_message("# no AVX2 on this CPU: reference kernels only\n");
    /* the AVX2 code, then the AVX-512 VNNI variant of the quantized kernels if the CPU
       has it */
    for (int v = 0; v < 2; v++) {
        if (simd && kern_avx2_use_vnni(v) != v) continue;
        if (!simd && v) continue;
        print_message("# simd kernels: %s\n", simd ? kern_impl_name() : "none");
        for (size_t ti = 0; ti < 4; ti++)
            for (size_t ri = 0; ri < 4; ri++)
                for (size_t ci = 0; ci < 4; ci++)
                    for (size_t n = 1; n <= 7; n++) {
                        if (cols[ci] > 96 && n > 2 && n != 5)
                            continue;                   /* keep the big ones quick */
                        if (v == 1 && ti < 2) continue; /* float kernels have no VNNI variant */
                        check_shape(types[ti], rows[ri], cols[ci], n, simd);
                    }
    }
    if (simd) kern_avx2_use_vnni(1);
    /* float types accept any length; quantized rows of 8 blocks and a tail */
    check_shape(KERN_F32, 5, 37, 3, simd);
    check_shape(KERN_F16, 9, 13, 1, simd);
    check_shape(KERN_Q4_0, 7, 32 * 11, 6, simd);
    check_shape(KERN_Q4_0, 5, 32 * 9, 19, simd); /* two full VNNI tiles of 8 tokens and a tail */
    /* batches run over blocks of rows per token tile (VNNI): several blocks, the last
       one partial, with full tiles and a tail, for short and long rows */
    check_shape(KERN_Q4_0, 211, 32 * 9, 19, simd);
    check_shape(KERN_Q4_0, 17, 4096 + 32, 9, simd);
    check_shape(KERN_Q8_0, 150, 32 * 9, 17, simd);
    check_shape(KERN_Q8_0, 3, 32 * 8, 16, simd);
    check_shape(KERN_Q8_0, 7, 32 * 19, 3, simd);
}

/* The repacked layouts (KERN_Q4_0_X16, KERN_Q8_0_X16): the reference reading them,
 * and the VNNI kernel where the CPU has it, each within dot_bound of the exact dot of
 * the stored weights, and within twice that of the row-major reference; the reference
 * on a repacked layout equals the row-major reference bit for bit (same blocks, same
 * order). Shapes: one and several groups of 16 rows, rows of 1, 3, 8, 9 and 129
 * blocks, token counts around the tile of 8, 1 to 3 threads. */
static void check_x16(kern_type_t from, size_t rows, size_t cols, size_t n, kern_pool_t *pool)
{
    const kern_type_t to = from == KERN_Q4_0 ? KERN_Q4_0_X16 : KERN_Q8_0_X16;
    mm_case_t c;
    case_init(&c, from, rows, cols, n);
    void *P = malloc(kern_row_size(to, cols) * rows);
    assert_int_equal(kern_repack(from, to, c.W, P, rows, cols), 0);
    float *ref = malloc(n * rows * sizeof(float)), *refp = malloc(n * rows * sizeof(float));
    float *got = malloc(n * rows * sizeof(float));
    kern_force_scalar(1);
    kern_matmul(NULL, from, c.W, c.X, ref, n, rows, cols);
    kern_matmul(NULL, to, P, c.X, refp, n, rows, cols);
    kern_force_scalar(0);
    assert_memory_equal(ref, refp, n * rows * sizeof(float));
    if (n == 1)
        kern_matvec(pool, to, P, c.X, got, rows, cols);
    else
        kern_matmul(pool, to, P, c.X, got, n, rows, cols);
    for (size_t b = 0; b < n; b++)
        for (size_t r = 0; r < rows; r++) {
            double e = exact_dot(&c, r, b), bound = dot_bound(&c, r, b);
            float vg = got[b * rows + r], vr = ref[b * rows + r];
            if (fabs(vg - e) > bound || fabs(vg - vr) > 2 * bound)
                fail_msg("%s (%s) rows %zu cols %zu n %zu row %zu tok %zu: %g vs ref %g "
                         "exact %g bound %g",
                         kern_type_name(to), kern_impl_name(), rows, cols, n, r, b, vg, vr, e,
                         bound);
        }
    free(ref), free(refp), free(got), free(P);
    case_free(&c);
}

static void test_repacked_layouts(void **state)
{
    (void)state;
    static const size_t rows[] = {16, 48};
    static const size_t cols[] = {32, 96, 256, 288, 32 * 129};
    static const size_t ns[] = {1, 2, 3, 7, 8, 9, 17};
    kern_force_scalar(0);
    print_message("# repacked q4_0 and q8_0 with %s kernels\n", kern_impl_name());
    for (int ti = 0; ti < 2; ti++) {
        kern_type_t from = ti ? KERN_Q8_0 : KERN_Q4_0;
        for (size_t ri = 0; ri < 2; ri++)
            for (size_t ci = 0; ci < 5; ci++)
                for (size_t ni = 0; ni < 7; ni++)
                    check_x16(from, rows[ri], cols[ci], ns[ni], NULL);
        for (int nt = 2; nt <= 3; nt++) {
            kern_pool_t *p = kern_pool_new(nt);
            check_x16(from, 208, 512, 1, p); /* 13 groups over the threads */
            check_x16(from, 208, 512, 11, p);
            kern_pool_free(p);
        }
    }
    /* only Q4_0 and Q8_0 with whole groups of 16 rows are repacked */
    assert_int_equal(kern_repack_type(KERN_Q4_0, 24, 512), KERN_Q4_0);
    assert_int_equal(kern_repack_type(KERN_Q8_0, 40, 512), KERN_Q8_0);
    assert_int_equal(kern_repack_type(KERN_F16, 32, 512), KERN_F16);
    assert_true(kern_repack(KERN_Q4_0, KERN_Q4_0_X16, NULL, NULL, 24, 512) < 0);
    assert_true(kern_repack(KERN_Q4_0, KERN_Q8_0_X16, NULL, NULL, 32, 512) < 0);
    assert_int_equal(kern_row_size(KERN_Q4_0_X16, 64), 36);
    assert_int_equal(kern_row_size(KERN_Q8_0_X16, 64), 68);
    assert_string_equal(kern_type_name(KERN_Q4_0_X16), "q4_0x16");
    assert_string_equal(kern_type_name(KERN_Q8_0_X16), "q8_0x16");
    if (strcmp(kern_impl_name(), "avx512vnni") == 0) {
        assert_int_equal(kern_repack_type(KERN_Q4_0, 32, 512), KERN_Q4_0_X16);
        assert_int_equal(kern_repack_type(KERN_Q8_0, 32, 512), KERN_Q8_0_X16);
    }
    kern_force_scalar(1);
    assert_int_equal(kern_repack_type(KERN_Q4_0, 32, 512), KERN_Q4_0);
    kern_force_scalar(0);
}

/* kern_matmul_many gives each matrix exactly what kern_matmul gives it alone, with
 * and without a pool, for quantized matrices sharing one activation quantization
 * (Q4_0 in both layouts, Q8_0), float matrices, and a mix (run one by one). */
static void test_matmul_many_matches_single(void **state)
{
    (void)state;
    const size_t cols = 512;
    static const size_t rows[] = {48, 16, 203, 64};
    static const kern_type_t ts[] = {KERN_Q4_0, KERN_Q8_0, KERN_Q4_0, KERN_F16};
    mm_case_t c[4];
    void *P = NULL;
    for (int k = 0; k < 4; k++)
        case_init(&c[k], ts[k], rows[k], cols, 9);
    kern_type_t t0 = kern_repack_type(KERN_Q4_0, rows[0], cols);
    if (t0 != KERN_Q4_0) {
        P = malloc(kern_row_size(t0, cols) * rows[0]);
        assert_int_equal(kern_repack(KERN_Q4_0, t0, c[0].W, P, rows[0], cols), 0);
    }
    kern_pool_t *pool = kern_pool_new(2);
    for (size_t n = 1; n <= 9; n += 8)
        for (int count = 1; count <= 4; count++) {
            kern_mat_t m[4];
            float *one[4], *many[4];
            for (int k = 0; k < count; k++) {
                one[k] = calloc(n * rows[k], sizeof(float));
                many[k] = calloc(n * rows[k], sizeof(float));
                m[k] = (kern_mat_t){.type = k == 0 ? t0 : ts[k],
                                    .W = k == 0 && P ? P : c[k].W,
                                    .rows = rows[k],
                                    .Y = many[k]};
                kern_matmul(NULL, m[k].type, m[k].W, c[0].X, one[k], n, rows[k], cols);
            }
            kern_matmul_many(count > 2 ? pool : NULL, m, count, c[0].X, n, cols);
            for (int k = 0; k < count; k++) {
                assert_memory_equal(one[k], many[k], n * rows[k] * sizeof(float));
                free(one[k]), free(many[k]);
            }
        }
    kern_pool_free(pool);
    free(P);
    for (int k = 0; k < 4; k++)
        case_free(&c[k]);
}

/* Matvec and a one-token matmul agree exactly; and matmul row b equals matvec of
 * token b (the tile code and the decode code compute the same sums). */
static void test_matmul_rows_match_matvec(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < 4; ti++) {
        mm_case_t c;
        case_init(&c, types[ti], 19, 160, 6);
        float Y[6 * 19], y[19];
        kern_matmul(NULL, c.t, c.W, c.X, Y, 6, 19, 160);
        for (size_t b = 0; b < 6; b++) {
            kern_matvec(NULL, c.t, c.W, c.X + b * 160, y, 19, 160);
            for (int r = 0; r < 19; r++) {
                double tol = 2 * dot_bound(&c, (size_t)r, b);
                assert_true(fabs(Y[b * 19 + r] - y[r]) <= tol);
            }
        }
        case_free(&c);
    }
}

/* 1, 2 and 3 threads give bit-identical results: a row is always summed by one
 * thread in the same order. */
static void test_threads_identical(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < 4; ti++) {
        mm_case_t c;
        case_init(&c, types[ti], 203, 512, 5); /* 203 x 512: above the size run inline */
        float *y1 = malloc(5 * 203 * sizeof(float)), *y2 = malloc(5 * 203 * sizeof(float));
        kern_matmul(NULL, c.t, c.W, c.X, y1, 5, 203, 512);
        for (int nt = 1; nt <= 3; nt++) {
            kern_pool_t *p = kern_pool_new(nt);
            assert_int_equal(kern_pool_size(p), nt);
            memset(y2, 0, 5 * 203 * sizeof(float));
            kern_matmul(p, c.t, c.W, c.X, y2, 5, 203, 512);
            assert_memory_equal(y1, y2, 5 * 203 * sizeof(float));
            kern_matvec(p, c.t, c.W, c.X, y2, 203, 512);
            kern_matvec(NULL, c.t, c.W, c.X, y1, 203, 512);
            assert_memory_equal(y1, y2, 203 * sizeof(float));
            kern_matmul(NULL, c.t, c.W, c.X, y1, 5, 203, 512);
            kern_pool_free(p);
        }
        free(y1), free(y2);
        case_free(&c);
    }
}

/* ======================================================== thread pool ==== */

typedef struct count_arg {
    atomic_int hits[100];
    atomic_int bad_n;
    int expect_n;
} count_arg_t;

static void count_fn(void *arg, int i, int n)
{
    count_arg_t *a = arg;
    if (n != a->expect_n) atomic_fetch_add(&a->bad_n, 1);
    atomic_fetch_add(&a->hits[i], 1);
}

/* Every index runs exactly once, for task counts below, at and above the thread
 * count, over many consecutive runs (the generation hand-off), and a NULL pool runs
 * inline. */
static void test_pool_runs_each_index_once(void **state)
{
    (void)state;
    static count_arg_t a;
    kern_pool_t *p = kern_pool_new(3);
    for (int round = 0; round < 600; round++) {
        int n = round % 100;
        memset(&a, 0, sizeof a);
        a.expect_n = n;
        kern_pool_run(round % 7 == 0 ? NULL : p, count_fn, &a, n);
        for (int i = 0; i < 100; i++)
            assert_int_equal(atomic_load(&a.hits[i]), i < n ? 1 : 0);
        assert_int_equal(atomic_load(&a.bad_n), 0);
    }
    kern_pool_free(p);
    kern_pool_free(NULL);
    assert_int_equal(kern_pool_size(NULL), 1);
}

static void test_types_and_dispatch(void **state)
{
    (void)state;
    assert_int_equal(kern_row_size(KERN_Q8_0, 64), 68);
    assert_int_equal(kern_row_size(KERN_Q4_0, 64), 36);
    assert_int_equal(kern_row_size(KERN_Q4_0, 172), 0);
    assert_int_equal(kern_row_size(KERN_F16, 172), 344);
    assert_int_equal(kern_type_valid(8), 0);
    assert_true(kern_type_valid(3) != 0);
    assert_string_equal(kern_type_name(KERN_Q4_0), "q4_0");
    kern_force_scalar(1);
    assert_string_equal(kern_impl_name(), "scalar");
    kern_force_scalar(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_round_trip_all),
        cmocka_unit_test(test_f16_values),
        cmocka_unit_test(test_f16_matches_hardware),
        cmocka_unit_test(test_q8_0_rounding),
        cmocka_unit_test(test_q4_0_rounding),
        cmocka_unit_test(test_quantize_error_bounds),
        cmocka_unit_test(test_simd_activation_quantizer),
        cmocka_unit_test(test_types_and_dispatch),
        cmocka_unit_test(test_kernels_awkward_shapes),
        cmocka_unit_test(test_repacked_layouts),
        cmocka_unit_test(test_matmul_many_matches_single),
        cmocka_unit_test(test_matmul_rows_match_matvec),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_pool_runs_each_index_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
