/* kernels.h — tensor element types, ggml-compatible quant blocks, and the compute
 * kernels of the engine.
 *
 * Types and block layouts are bit-compatible with ggml (GGUF tensor type ids), so
 * files quantized by llama.cpp load and files we quantize load there:
 *   Q8_0: blocks of 32 weights: fp16 scale d, 32 x int8;        w = d * q
 *   Q4_0: blocks of 32 weights: fp16 scale d, 16 bytes of nibbles; w = d * (q - 8),
 *         low nibbles hold weights 0..15 of the block, high nibbles 16..31.
 *
 * Every kernel has a scalar reference; AVX2/FMA versions (kernels_avx2.c) are chosen
 * at run time when the CPU has them, unless SWITCHYARD_KERNELS=scalar, and the quantized
 * ones have AVX-512 VNNI variants used where the CPU has AVX512BW/VL/VNNI/VBMI (unless
 * SWITCHYARD_KERNELS=avx2). Threads: kern_matvec/kern_matmul split weight rows over the
 * pool; each output is summed by one thread, so results do not depend on the count.
 * Matrices are row-major: W has shape (rows, cols), each row is cols elements stored
 * in the row's type (cols a multiple of 32 for quantized types).
 */
#ifndef SY_ENGINE_KERNELS_H
#define SY_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* GGUF / ggml tensor type ids. */
typedef enum {
    KERN_F32 = 0,
    KERN_F16 = 1,
    KERN_Q4_0 = 2,
    KERN_Q5_0 = 6,
    KERN_Q5_1 = 7,
    KERN_Q8_0 = 8,
    KERN_Q2_K = 10,
    KERN_Q3_K = 11,
    KERN_Q4_K = 12,
    KERN_Q5_K = 13,
    KERN_Q6_K = 14,
} kern_type_t;

/* Not a file type (so not an enumerator: switches over file types stay complete):
 * Q4_0 rows repacked 16 at a time for the AVX-512 VNNI kernels (kern_repack); the
 * same bytes per row as Q4_0, rows no longer addressable one by one. Block i of a
 * group of 16 rows is 288 bytes: the 16 rows' f16 scales, then for each 4-byte slice
 * q = 0..3 of the 16 quant bytes, that slice of rows 0..15 (64 bytes). One 64-byte
 * load then holds 4 quant bytes of each of 16 rows, which is what dpbusd multiplies
 * by 4 broadcast activation quants. Only kern_matmul/kern_matvec, kern_row_size and
 * kern_type_name accept it. */
#define KERN_Q4_0_X16 ((kern_type_t)0x102)
/* The same for Q8_0: a block of a group is 544 bytes, the 16 scales, then 8 slices of
 * 4 quant bytes of rows 0..15, each quant stored plus 128 (an unsigned byte, so it is
 * dpbusd's unsigned operand as it stands; the 128 offset is taken off per block). */
#define KERN_Q8_0_X16 ((kern_type_t)0x108)

/* K-quants repacked 16 rows at a time for the AVX-512 VNNI kernels (kern_repack), the
 * same bytes per row as the file's type; like Q4_0_X16, only the matmul entry points,
 * kern_row_size, kern_type_name and kern_repack accept them. Per super-block of a group (16 x 144,
 * 176 or 210 bytes): the 16 rows' f16 d (and dmin), the sub-block scales and mins spread so that a
 * shift and a mask give one per 32-bit lane (one lane per row), then the quants in 4-byte slices of
 * all 16 rows (64 bytes: 4 weights of each row, what dpbusd multiplies by 4 broadcast activation
 * quants). kquants.c spells the layouts out. */
#define KERN_Q4_K_X16 ((kern_type_t)0x10C)
#define KERN_Q5_K_X16 ((kern_type_t)0x10D)
#define KERN_Q6_K_X16 ((kern_type_t)0x10E)

#define KERN_X16_ROWS   16  /* rows per repacked group */
#define KERN_X16_BLOCK  288 /* bytes of one Q4_0 block of a repacked group (16 x 18) */
#define KERN_X16_BLOCK8 544 /* bytes of one Q8_0 block of a repacked group (16 x 34) */

#define KERN_X16_TILE 8 /* tokens per pass over a repacked group (XT's tiles) */

#define KERN_QK 32 /* weights per quant block */

typedef uint16_t kern_f16_t; /* IEEE half, raw bits */

typedef struct {
    kern_f16_t d;       /* scale */
    int8_t qs[KERN_QK]; /* quants */
} kern_block_q8_0_t;
_Static_assert(sizeof(kern_block_q8_0_t) == 34, "q8_0 block must be 34 bytes (ggml)");

typedef struct {
    kern_f16_t d;            /* scale */
    uint8_t qs[KERN_QK / 2]; /* nibbles */
} kern_block_q4_0_t;
_Static_assert(sizeof(kern_block_q4_0_t) == 18, "q4_0 block must be 18 bytes (ggml)");

/* Q5_0 / Q5_1 (what llama.cpp writes for K-quant targets whose rows are not a multiple
 * of 256): 32 weights, fp16 d (and m), 32 fifth bits (bit j: weight j), 16 bytes of
 * nibbles as Q4_0. Q5_0: w = d * (q - 16); Q5_1: w = d * q + m. */
typedef struct {
    kern_f16_t d;
    uint8_t qh[4];
    uint8_t qs[KERN_QK / 2];
} kern_block_q5_0_t;
_Static_assert(sizeof(kern_block_q5_0_t) == 22, "q5_0 block must be 22 bytes (ggml)");

typedef struct {
    kern_f16_t d, m;
    uint8_t qh[4];
    uint8_t qs[KERN_QK / 2];
} kern_block_q5_1_t;
_Static_assert(sizeof(kern_block_q5_1_t) == 24, "q5_1 block must be 24 bytes (ggml)");

/* K-quants: super-blocks of 256 weights (KERN_QK_K) made of sub-blocks of 16 or 32
 * weights, each sub-block with its own small integer scale (and min) that multiplies
 * the super-block's fp16 d (dmin). Layouts (bytes in order) and values:
 *   Q2_K  84: scales[16] (low nibble scale, high nibble min of each 16), qs[64] (2 bits,
 *             4 weights per byte), d, dmin;      w = d * sc * q - dmin * m
 *   Q3_K 110: hmask[32] (third bit), qs[64] (low 2 bits), scales[12] (16 x 6 bits), d;
 *             w = d * (sc - 32) * (q - 4 * !hbit)
 *   Q4_K 144: d, dmin, scales[12] (8 x 6-bit scale and 8 x 6-bit min), qs[128];
 *             w = d * sc * q - dmin * m, sub-blocks of 32
 *   Q5_K 176: as Q4_K plus qh[32] (fifth bit) before qs
 *   Q6_K 210: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d;
 *             w = d * sc * (q - 32), sub-blocks of 16
 * The bit orders are ggml's (kquants.c spells them out). */
#define KERN_QK_K     256
#define KERN_K_SCALES 12

typedef struct {
    uint8_t scales[KERN_QK_K / 16];
    uint8_t qs[KERN_QK_K / 4];
    kern_f16_t d, dmin;
} kern_block_q2_k_t;
_Static_assert(sizeof(kern_block_q2_k_t) == 84, "q2_K block must be 84 bytes (ggml)");

typedef struct {
    uint8_t hmask[KERN_QK_K / 8];
    uint8_t qs[KERN_QK_K / 4];
    uint8_t scales[KERN_K_SCALES];
    kern_f16_t d;
} kern_block_q3_k_t;
_Static_assert(sizeof(kern_block_q3_k_t) == 110, "q3_K block must be 110 bytes (ggml)");

typedef struct {
    kern_f16_t d, dmin;
    uint8_t scales[KERN_K_SCALES];
    uint8_t qs[KERN_QK_K / 2];
} kern_block_q4_k_t;
_Static_assert(sizeof(kern_block_q4_k_t) == 144, "q4_K block must be 144 bytes (ggml)");

typedef struct {
    kern_f16_t d, dmin;
    uint8_t scales[KERN_K_SCALES];
    uint8_t qh[KERN_QK_K / 8];
    uint8_t qs[KERN_QK_K / 2];
} kern_block_q5_k_t;
_Static_assert(sizeof(kern_block_q5_k_t) == 176, "q5_K block must be 176 bytes (ggml)");

typedef struct {
    uint8_t ql[KERN_QK_K / 2];
    uint8_t qh[KERN_QK_K / 4];
    int8_t scales[KERN_QK_K / 16];
    kern_f16_t d;
} kern_block_q6_k_t;
_Static_assert(sizeof(kern_block_q6_k_t) == 210, "q6_K block must be 210 bytes (ggml)");

/* Activations for K-quant weights (not a file type): 256 int8 quants with one f32
 * scale, and the sums of each 16 quants (for the mins and offsets of the weights). */
typedef struct {
    float d;
    int8_t qs[KERN_QK_K];
    int16_t bsums[KERN_QK_K / 16];
} kern_block_q8_k_t;
_Static_assert(sizeof(kern_block_q8_k_t) == 292, "q8_K block must be 292 bytes (ggml)");

typedef struct kern_pool kern_pool_t; /* thread pool, see below */

/* --------------------------------------------------------------- types ---- */

/* "f32", "f16", "q4_0", "q5_0", "q5_1", "q8_0", "q2_K" .. "q6_K", "q4_0x16", "q8_0x16" or
 * NULL */
const char *kern_type_name(kern_type_t t);
/* 0 if t is one of the supported types. */
int kern_type_valid(uint32_t t);
/* Bytes of one row of n elements; 0 if n is not a valid length for the type (a
 * multiple of 32, of 256 for K-quants). */
size_t kern_row_size(kern_type_t t, size_t n);
float kern_f16_to_f32(kern_f16_t h);
kern_f16_t kern_f32_to_f16(float f); /* round to nearest even, as ggml */

/* The type a (rows, cols) matrix of type t is best kept in for the kernels in use:
 * KERN_Q4_0_X16 for Q4_0 (KERN_Q8_0_X16 for Q8_0) when the AVX-512 VNNI kernels are in
 * use, rows % 16 == 0 and the matrix is large enough for the layout to pay
 * (cols >= 512); KERN_Q4_K_X16 / KERN_Q5_K_X16 / KERN_Q6_K_X16 for Q4_K / Q5_K / Q6_K
 * with those kernels and rows % 16 == 0; else t. */
kern_type_t kern_repack_type(kern_type_t t, size_t rows, size_t cols);
/* Writes the (rows, cols) matrix src of type from into dst in type to (one of the
 * pairs kern_repack_type returns; dst holds kern_row_size(to, cols) * rows bytes,
 * the same as src). Returns 0, or SY_EINVAL for a pair it does not convert. */
int kern_repack(kern_type_t from, kern_type_t to, const void *src, void *dst, size_t rows,
                size_t cols);

/* Row conversion, reference-exact (ggml's quantize_row_*_ref rounding). */
void kern_quantize_row(kern_type_t t, const float *src, void *dst, size_t n);
void kern_dequantize_row(kern_type_t t, const void *src, float *dst, size_t n);

/* ------------------------------------------------------------- compute ---- */

/* y[rows] = W[rows, cols] . x[cols]. Rows are split across the pool's threads
 * (pool may be NULL for single-threaded). */
void kern_matvec(kern_pool_t *pool, kern_type_t t, const void *W, const float *x, float *y,
                 size_t rows, size_t cols);
/* Y[n, rows] = X[n, cols] . W[rows, cols]^T (batched prefill). */
void kern_matmul(kern_pool_t *pool, kern_type_t t, const void *W, const float *X, float *Y,
                 size_t n, size_t rows, size_t cols);

/* One matrix of a kern_matmul_many call: W (rows, cols) of type, output Y (n, rows). */
typedef struct kern_mat {
    kern_type_t type;
    const void *W;
    size_t rows;
    float *Y;
} kern_mat_t;
/* kern_matmul for count matrices (at most 8 in one pass) that read the same X (q, k, v;
 * gate, up): X is quantized once and all of them go through the pool in one hand-off.
 * Each output is summed exactly as kern_matmul sums it. */
void kern_matmul_many(kern_pool_t *pool, const kern_mat_t *mats, int count, const float *X,
                      size_t n, size_t cols);

/* Attention over n cached positions whose rows are `stride` floats apart, each of
 * width hd: out[t] = scale * dot(q, K row t), and acc[0..hd) += sum_t w[t] * V row t
 * (positions in order). AVX2 where in use (hd a multiple of 8), else scalar. */
void kern_attn_scores(const float *q, const float *K, size_t stride, int n, int hd, float scale,
                      float *out);
void kern_attn_accum(float *acc, const float *w, const float *V, size_t stride, int n, int hd);
void kern_avx2_attn_scores(const float *q, const float *K, size_t stride, int n, int hd,
                           float scale, float *out);
void kern_avx2_attn_accum(float *acc, const float *w, const float *V, size_t stride, int n, int hd);

/* Which implementation is in use: "avx2" or "scalar". */
const char *kern_impl_name(void);
/* Forces the scalar reference (tests); also set by SWITCHYARD_KERNELS=scalar. */
void kern_force_scalar(int on);

/* Activation rows of quantized matmuls are quantized to Q8_0 first (as ggml does), then
 * each weight block meets an activation block in an integer dot product scaled by
 * d_w * d_x. F32 and F16 weights meet the f32 activations directly (F16 widened to f32,
 * never the activations narrowed). */

/* ------------------------------------------- implementation interface ---- */

/* One matmul as the implementations (scalar in kernels.c, SIMD in kernels_avx2.c) see
 * it: Y[b * rows + r] = dot(W row r, X row b) for b < n and r in a row range. */
typedef struct kern_job {
    kern_type_t type;
    const void *W;               /* (rows, cols) in type's row layout */
    size_t row_bytes;            /* bytes of one W row */
    const float *X;              /* (n, cols) f32 activations: F32/F16 weights */
    const int8_t *XQ;            /* (n, cols) Q8_0 quants of X: Q8_0/Q4_0 weights */
    const float *XD;             /* (n, cols / 32) their block scales (f16 values) as f32 */
    const int8_t *XP;            /* (n, cols) XQ for the VNNI Q4_0 kernel: each group of 4 blocks
                                    as their 4 x 16 first-half quants, then their 4 x 16 second-half
                                    quants (the nibble order of 4 Q4_0 blocks); tail blocks as in XQ */
    const float *XS;             /* (n, cols / 32) 8 * scale * sum of the block's quants
                                    (Q4_0: the -8 offset of the weights, applied once) */
    const int8_t *XT;            /* XQ for the repacked (X16) kernels, in tiles of KERN_X16_TILE
                                    tokens (the last tile: what is left, T tokens): block i of
                                    token t of the tile from token b0 at (b0 * cols / 32 + i * T
                                    + t) * 32, so one pointer reaches a whole tile's block */
    const float *XTD;            /* XD in the same tiles: b0 * cols / 32 + i * T + t */
    const int32_t *XTI;          /* -8 * the sum of each block's quants, in the same tiles (the
                                    Q4_0 offset in integers; times 16 for the Q8_0 128) */
    const kern_block_q8_k_t *XK; /* (n, cols / 256) Q8_K activations: K-quant weights */
    float *Y;                    /* (n, rows) */
    size_t n, rows, cols;
} kern_job_t;

/* Rows [r0, r1) of a job. */
void kern_scalar_rows(const kern_job_t *j, size_t r0, size_t r1);
void kern_avx2_rows(const kern_job_t *j, size_t r0, size_t r1);
/* Whether kern_avx2_rows uses its AVX-512 VNNI variant for quantized weights (CPUs
 * with AVX512BW/VL/VNNI, the default there). on = 0 selects the AVX2 code, on = 1 the
 * VNNI code where the CPU has it, on < 0 only asks (first time: SWITCHYARD_KERNELS=avx2
 * turns it off). Returns whether VNNI is in use. */
int kern_avx2_use_vnni(int on);
/* Rows [r0, r1) of a KERN_Q4_0_X16 or KERN_Q8_0_X16 job (r0, r1 multiples of 16) with AVX-512 VNNI;
 * only called where kern_avx2_use_vnni says the CPU has it. */
void kern_avx2_x16_rows(const kern_job_t *j, size_t r0, size_t r1);
/* Quantizes n floats (n % 32 == 0) to Q8_0 activation blocks; the AVX2 version
 * rounds ties to even where the reference rounds them away from zero. */
void kern_avx2_quantize_q8_0(const float *x, kern_block_q8_0_t *y, size_t n);

/* --------------------------------------------------------- thread pool ---- */

/* A fixed pool of n_threads workers (the caller counts as one). */
kern_pool_t *kern_pool_new(int n_threads);
void kern_pool_free(kern_pool_t *p);
int kern_pool_size(const kern_pool_t *p);
/* Runs fn(arg, i, n) for i in [0, n) across the pool and waits. */
void kern_pool_run(kern_pool_t *p, void (*fn)(void *arg, int i, int n), void *arg, int n);

#endif
