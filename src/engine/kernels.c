/* kernels.c — element types, half-precision conversion, ggml-exact row quantization,
 * the scalar reference kernels, and run-time dispatch to the SIMD ones.
 *
 * The scalar code here is the definition every SIMD kernel is tested against: it is
 * written for clarity, not speed. kern_matmul quantizes the activation rows once per
 * call (quantized weight types), then splits the weight rows across the thread pool,
 * so each weight row is read once per call however many tokens the batch holds.
 */
#include "engine/kernels.h"

#include <cpuid.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/kquants.h"

/* =============================================================== types ==== */

const char *kern_type_name(kern_type_t t)
{
    switch (t) {
    case KERN_F32:
        return "f32";
    case KERN_F16:
        return "f16";
    case KERN_Q4_0:
        return "q4_0";
    case KERN_Q8_0:
        return "q8_0";
    case KERN_Q5_0:
        return "q5_0";
    case KERN_Q5_1:
        return "q5_1";
    case KERN_Q2_K:
        return "q2_K";
    case KERN_Q3_K:
        return "q3_K";
    case KERN_Q4_K:
        return "q4_K";
    case KERN_Q5_K:
        return "q5_K";
    case KERN_Q6_K:
        return "q6_K";
    }
    if (t == KERN_Q4_K_X16 || t == KERN_Q5_K_X16 || t == KERN_Q6_K_X16)
        return t == KERN_Q4_K_X16 ? "q4_Kx16" : t == KERN_Q5_K_X16 ? "q5_Kx16" : "q6_Kx16";
    return t == KERN_Q4_0_X16 ? "q4_0x16" : t == KERN_Q8_0_X16 ? "q8_0x16" : NULL;
}

int kern_type_valid(uint32_t t)
{
    return (t == KERN_F32 || t == KERN_F16 || t == KERN_Q4_0 || t == KERN_Q8_0 ||
            kern_kq_is_kq((kern_type_t)t))
               ? 0
               : -1;
}

size_t kern_row_size(kern_type_t t, size_t n)
{
    if (t == KERN_Q4_0_X16) t = KERN_Q4_0; /* same bytes, rows interleaved */
    if (t == KERN_Q8_0_X16) t = KERN_Q8_0;
    if (kern_kq_x16_base(t)) t = kern_kq_x16_base(t);
    switch (t) {
    case KERN_F32:
        return n * 4;
    case KERN_F16:
        return n * 2;
    case KERN_Q4_0:
        return n % KERN_QK ? 0 : n / KERN_QK * sizeof(kern_block_q4_0_t);
    case KERN_Q8_0:
        return n % KERN_QK ? 0 : n / KERN_QK * sizeof(kern_block_q8_0_t);
    case KERN_Q5_0:
    case KERN_Q5_1:
    case KERN_Q2_K:
    case KERN_Q3_K:
    case KERN_Q4_K:
    case KERN_Q5_K:
    case KERN_Q6_K:
        return n % kern_kq_block_len(t) ? 0 : n / kern_kq_block_len(t) * kern_kq_block_bytes(t);
    }
    return 0;
}

/* ========================================================= half floats ==== */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Exact widening: every half value (subnormals, infinities, NaN payloads) has an f32
 * twin. */
float kern_f16_to_f32(kern_f16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return f32_from_bits(f32_bits(v) | sign);
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Narrowing with round-to-nearest-even, overflow to infinity, gradual underflow to
 * half subnormals; NaN becomes the quiet NaN 0x7e00 with the sign kept, as ggml's
 * software conversion does (so quantized files match llama.cpp's bit for bit). */
kern_f16_t kern_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00;
    if (x >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to infinity */
    if (x < 0x38800000u) {                      /* below 2^-14: half subnormal or zero */
        uint32_t e = x >> 23;
        if (e < 102) return sign; /* below 2^-25 (or exactly it: ties to even 0) */
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        uint32_t s = 126 - e; /* 14..24 */
        uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t q = ((x >> 23) - 112) << 10 | ((x & 0x7fffffu) >> 13);
    uint32_t rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* a carry moves the exponent */
    return sign | (uint16_t)q;
}

/* ======================================================= quantization ==== */

/* Q8_0, as ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d) half away
 * from zero. The clamp changes nothing for finite input; it keeps NaN/inf inputs from
 * undefined float-to-int conversions. */
static void quantize_row_q8_0(const float *x, kern_block_q8_0_t *y, size_t n)
{
    for (size_t i = 0; i < n / KERN_QK; i++) {
        float amax = 0.0f;
        for (int j = 0; j < KERN_QK; j++)
            amax = fmaxf(amax, fabsf(x[i * KERN_QK + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_f32_to_f16(d);
        for (int j = 0; j < KERN_QK; j++) {
            float v = fminf(fmaxf(x[i * KERN_QK + j] * id, -127.0f), 127.0f);
            y[i].qs[j] = (int8_t)roundf(v);
        }
    }
}

/* Q4_0, as ggml's quantize_row_q4_0_ref: the value of largest magnitude (sign kept)
 * maps to -8, d = max / -8, q = min(15, trunc(x / d + 8.5)). */
static void quantize_row_q4_0(const float *x, kern_block_q4_0_t *y, size_t n)
{
    for (size_t i = 0; i < n / KERN_QK; i++) {
        const float *xb = x + i * KERN_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < KERN_QK; j++) {
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_f32_to_f16(d);
        for (int j = 0; j < KERN_QK / 2; j++) {
            /* clamp to [0, 15] then truncate == min(15, (int8_t)v) for v >= 0 */
            float v0 = fminf(fmaxf(xb[j] * id + 8.5f, 0.0f), 15.0f);
            float v1 = fminf(fmaxf(xb[j + KERN_QK / 2] * id + 8.5f, 0.0f), 15.0f);
            y[i].qs[j] = (uint8_t)((uint8_t)v0 | (uint8_t)v1 << 4);
        }
    }
}

/* Converts n floats to one row of type t. n must be a multiple of 32 for quantized
 * types (asserted by kern_row_size returning non-zero at the callers). */
void kern_quantize_row(kern_type_t t, const float *src, void *dst, size_t n)
{
    switch (t) {
    case KERN_F32:
        memcpy(dst, src, n * 4);
        break;
    case KERN_F16:
        for (size_t i = 0; i < n; i++)
            ((kern_f16_t *)dst)[i] = kern_f32_to_f16(src[i]);
        break;
    case KERN_Q8_0:
        quantize_row_q8_0(src, dst, n);
        break;
    case KERN_Q4_0:
        quantize_row_q4_0(src, dst, n);
        break;
    default:
        kern_kq_quantize_row(t, src, dst, n);
        break;
    }
}

void kern_dequantize_row(kern_type_t t, const void *src, float *dst, size_t n)
{
    switch (t) {
    case KERN_F32:
        memcpy(dst, src, n * 4);
        break;
    case KERN_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = kern_f16_to_f32(((const kern_f16_t *)src)[i]);
        break;
    case KERN_Q8_0: {
        const kern_block_q8_0_t *b = src;
        for (size_t i = 0; i < n / KERN_QK; i++) {
            const float d = kern_f16_to_f32(b[i].d);
            for (int j = 0; j < KERN_QK; j++)
                dst[i * KERN_QK + j] = b[i].qs[j] * d;
        }
        break;
    }
    case KERN_Q4_0: {
        const kern_block_q4_0_t *b = src;
        for (size_t i = 0; i < n / KERN_QK; i++) {
            const float d = kern_f16_to_f32(b[i].d);
            for (int j = 0; j < KERN_QK / 2; j++) {
                dst[i * KERN_QK + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
                dst[i * KERN_QK + j + KERN_QK / 2] = ((b[i].qs[j] >> 4) - 8) * d;
            }
        }
        break;
    }
    default:
        kern_kq_dequantize_row(t, src, dst, n);
        break;
    }
}

/* ================================================== scalar reference ==== */

static float dot_f32(const float *w, const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static float dot_f16(const kern_f16_t *w, const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += kern_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_q8_0(const kern_block_q8_0_t *w, const int8_t *xq, const float *xd, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < KERN_QK; j++)
            sumi += w[i].qs[j] * xq[i * KERN_QK + j];
        s += (float)sumi * (kern_f16_to_f32(w[i].d) * xd[i]);
    }
    return s;
}

static float dot_q4_0(const kern_block_q4_0_t *w, const int8_t *xq, const float *xd, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < KERN_QK / 2; j++) {
            sumi += ((w[i].qs[j] & 0x0f) - 8) * xq[i * KERN_QK + j];
            sumi += ((w[i].qs[j] >> 4) - 8) * xq[i * KERN_QK + j + KERN_QK / 2];
        }
        s += (float)sumi * (kern_f16_to_f32(w[i].d) * xd[i]);
    }
    return s;
}

/* Block i of row r of a KERN_Q4_0_X16 matrix of nb blocks per row, back in ggml's
 * layout (see KERN_Q4_0_X16 in kernels.h). */
static void x16_block(const void *W, size_t nb, size_t r, size_t i, kern_block_q4_0_t *out)
{
    const uint8_t *g =
        (const uint8_t *)W + (r / KERN_X16_ROWS) * nb * KERN_X16_BLOCK + i * KERN_X16_BLOCK;
    const size_t l = r % KERN_X16_ROWS;
    memcpy(&out->d, g + 2 * l, 2);
    for (int q = 0; q < 4; q++)
        memcpy(out->qs + 4 * q, g + 32 + 64 * q + 4 * l, 4);
}

/* The same for KERN_Q8_0_X16 (quants stored plus 128). */
static void x16_block8(const void *W, size_t nb, size_t r, size_t i, kern_block_q8_0_t *out)
{
    const uint8_t *g =
        (const uint8_t *)W + (r / KERN_X16_ROWS) * nb * KERN_X16_BLOCK8 + i * KERN_X16_BLOCK8;
    const size_t l = r % KERN_X16_ROWS;
    memcpy(&out->d, g + 2 * l, 2);
    for (int q = 0; q < 8; q++)
        for (int k = 0; k < 4; k++)
            out->qs[4 * q + k] = (int8_t)(g[32 + 64 * q + 4 * l + k] - 128);
}

static float dot_q8_0_x16(const void *W, size_t nb, size_t r, const int8_t *xq, const float *xd)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        kern_block_q8_0_t blk;
        x16_block8(W, nb, r, i, &blk);
        s += dot_q8_0(&blk, xq + i * KERN_QK, xd + i, 1);
    }
    return s;
}

static float dot_q4_0_x16(const void *W, size_t nb, size_t r, const int8_t *xq, const float *xd)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        kern_block_q4_0_t blk;
        x16_block(W, nb, r, i, &blk);
        s += dot_q4_0(&blk, xq + i * KERN_QK, xd + i, 1);
    }
    return s;
}

/* The reference for rows [r0, r1) of a job: one plain dot product per (token, row). */
void kern_scalar_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    const size_t nb = j->cols / KERN_QK;
    for (size_t r = r0; r < r1; r++) {
        const void *w = (const char *)j->W + r * j->row_bytes;
        for (size_t b = 0; b < j->n; b++) {
            float v = 0.0f;
            if (j->type == KERN_Q4_0_X16 || j->type == KERN_Q8_0_X16) {
                v = j->type == KERN_Q4_0_X16
                        ? dot_q4_0_x16(j->W, nb, r, j->XQ + b * j->cols, j->XD + b * nb)
                        : dot_q8_0_x16(j->W, nb, r, j->XQ + b * j->cols, j->XD + b * nb);
                j->Y[b * j->rows + r] = v;
                continue;
            }
            if (kern_kq_x16_base(j->type)) {
                const size_t nbk = j->cols / KERN_QK_K;
                j->Y[b * j->rows + r] = kern_kq_dot_x16(j->type, j->W, nbk, r, j->XK + b * nbk);
                continue;
            }
            switch (j->type) {
            case KERN_F32:
                v = dot_f32(w, j->X + b * j->cols, j->cols);
                break;
            case KERN_F16:
                v = dot_f16(w, j->X + b * j->cols, j->cols);
                break;
            case KERN_Q8_0:
                v = dot_q8_0(w, j->XQ + b * j->cols, j->XD + b * nb, nb);
                break;
            case KERN_Q4_0:
                v = dot_q4_0(w, j->XQ + b * j->cols, j->XD + b * nb, nb);
                break;
            default: /* Q5_0/Q5_1 (Q8_0 activations), K-quants (Q8_K) */
                v = kern_kq_is_k(j->type)
                        ? kern_kq_dot(j->type, w, j->XK + b * (j->cols / KERN_QK_K), NULL, NULL,
                                      j->cols / KERN_QK_K)
                        : kern_kq_dot(j->type, w, NULL, j->XQ + b * j->cols, j->XD + b * nb, nb);
                break;
            }
            j->Y[b * j->rows + r] = v;
        }
    }
}

/* ========================================================== repacking ==== */

kern_type_t kern_repack_type(kern_type_t t, size_t rows, size_t cols)
{
    if ((t == KERN_Q4_0 || t == KERN_Q8_0) && rows % KERN_X16_ROWS == 0 && cols % KERN_QK == 0 &&
        cols >= 512 && strcmp(kern_impl_name(), "avx512vnni") == 0)
        return t == KERN_Q4_0 ? KERN_Q4_0_X16 : KERN_Q8_0_X16;
    if (kern_kq_x16_type(t) && rows % KERN_X16_ROWS == 0 && cols % KERN_QK_K == 0 &&
        strcmp(kern_impl_name(), "avx512vnni") == 0)
        return kern_kq_x16_type(t);
    return t;
}

/* Q4_0 -> Q4_0_X16: each group of 16 rows block by block, scales first, then the
 * quant bytes in 4-byte slices (the layout in kernels.h); Q8_0 likewise; the K-quants
 * in kquants.c (kern_kq_repack). */
int kern_repack(kern_type_t from, kern_type_t to, const void *src, void *dst, size_t rows,
                size_t cols)
{
    if (kern_kq_x16_type(from) && to == kern_kq_x16_type(from))
        return kern_kq_repack(from, src, dst, rows, cols) ? SY_EINVAL : 0;
    if (!((from == KERN_Q4_0 && to == KERN_Q4_0_X16) ||
          (from == KERN_Q8_0 && to == KERN_Q8_0_X16)) ||
        rows % KERN_X16_ROWS || cols % KERN_QK)
        return SY_EINVAL;
    const size_t nb = cols / KERN_QK;
    if (from == KERN_Q8_0) {
        const kern_block_q8_0_t *in8 = src;
        uint8_t *o = dst;
        for (size_t g = 0; g < rows / KERN_X16_ROWS; g++)
            for (size_t i = 0; i < nb; i++, o += KERN_X16_BLOCK8)
                for (size_t l = 0; l < KERN_X16_ROWS; l++) {
                    const kern_block_q8_0_t *b = &in8[(g * KERN_X16_ROWS + l) * nb + i];
                    memcpy(o + 2 * l, &b->d, 2);
                    for (int q = 0; q < 8; q++)
                        for (int k = 0; k < 4; k++)
                            o[32 + 64 * q + 4 * l + k] = (uint8_t)(b->qs[4 * q + k] + 128);
                }
        return 0;
    }
    const kern_block_q4_0_t *in = src;
    uint8_t *out = dst;
    for (size_t g = 0; g < rows / KERN_X16_ROWS; g++)
        for (size_t i = 0; i < nb; i++, out += KERN_X16_BLOCK)
            for (size_t l = 0; l < KERN_X16_ROWS; l++) {
                const kern_block_q4_0_t *b = &in[(g * KERN_X16_ROWS + l) * nb + i];
                memcpy(out + 2 * l, &b->d, 2);
                for (int q = 0; q < 4; q++)
                    memcpy(out + 32 + 64 * q + 4 * l, b->qs + 4 * q, 4);
            }
    return 0;
}

/* ============================================================ dispatch ==== */

typedef void (*rows_fn_t)(const kern_job_t *j, size_t r0, size_t r1);

static _Atomic int force_scalar = -1; /* -1: not decided yet; atomic: any thread may decide */
static _Atomic int cpu_has_avx2 = -1;

static int detect_avx2(void)
{
    if (cpu_has_avx2 < 0) {
        __builtin_cpu_init();
        /* F16C straight from CPUID leaf 1 (ECX bit 29): clang's builtin does not
         * know the name. */
        unsigned a, b, c, d;
        int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        cpu_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    }
    return cpu_has_avx2;
}

static int use_simd(void)
{
    if (force_scalar < 0) {
        const char *e = getenv("SWITCHYARD_KERNELS");
        force_scalar = e && strcmp(e, "scalar") == 0;
    }
    return !force_scalar && detect_avx2();
}

const char *kern_impl_name(void)
{
    if (!use_simd()) return "scalar";
    return kern_avx2_use_vnni(-1) ? "avx512vnni" : "avx2";
}

void kern_force_scalar(int on)
{
    force_scalar = on ? 1 : 0;
}

/* ------------------------------------------------------------ attention ---- */

void kern_attn_scores(const float *q, const float *K, size_t stride, int n, int hd, float scale,
                      float *out)
{
    if (hd % 8 == 0 && use_simd()) {
        kern_avx2_attn_scores(q, K, stride, n, hd, scale, out);
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        float d = 0.0f;
        for (int i = 0; i < hd; i++)
            d += q[i] * k[i];
        out[t] = d * scale;
    }
}

void kern_attn_accum(float *acc, const float *w, const float *V, size_t stride, int n, int hd)
{
    if (hd % 8 == 0 && hd <= 256 && use_simd()) {
        kern_avx2_attn_accum(acc, w, V, stride, n, hd);
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *v = V + (size_t)t * stride;
        for (int i = 0; i < hd; i++)
            acc[i] += w[t] * v[i];
    }
}

/* --------------------------------------------------- activation scratch ---- */

/* Quantized activations live in a per-thread buffer that only grows, so a decode step
 * allocates nothing once warm; it is freed when the thread exits. Capped: a batch
 * larger than SCRATCH_MAX bytes is processed in several passes. */
#define SCRATCH_MAX ((size_t)64 << 20)

typedef struct scratch {
    void *p;
    size_t cap;
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static __thread scratch_t *tls_scratch;

static void scratch_destroy(void *arg)
{
    scratch_t *s = arg;
    mem_free(s->p);
    mem_free(s);
}

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, scratch_destroy);
}

static void *scratch_get(size_t n)
{
    if (!tls_scratch) {
        pthread_once(&scratch_once, scratch_key_init);
        tls_scratch = mem_calloc(1, sizeof(*tls_scratch));
        pthread_setspecific(scratch_key, tls_scratch);
    }
    if (tls_scratch->cap < n) {
        mem_free(tls_scratch->p);
        tls_scratch->p = mem_alloc(n);
        tls_scratch->cap = n;
    }
    return tls_scratch->p;
}

/* ------------------------------------------------------------- matmul ---- */

#define MANY_MAX 8 /* matrices per kern_matmul_many call */

typedef struct matmul_task {
    kern_job_t jobs[MANY_MAX];
    rows_fn_t fn[MANY_MAX];
    size_t chunk[MANY_MAX];  /* rows per task of each job, a multiple of 16 */
    int first[MANY_MAX + 1]; /* task index where each job's tasks start */
    int count;
} matmul_task_t;

static void matmul_task_run(void *arg, int i, int n)
{
    (void)n;
    const matmul_task_t *t = arg;
    int k = 0;
    while (i >= t->first[k + 1])
        k++;
    const kern_job_t *j = &t->jobs[k];
    size_t r0 = (size_t)(i - t->first[k]) * t->chunk[k];
    size_t r1 = r0 + t->chunk[k] < j->rows ? r0 + t->chunk[k] : j->rows;
    if (r0 < r1) t->fn[k](j, r0, r1);
}

/* Runs the jobs of t in one pass of the pool: each job's rows in one contiguous range
 * per thread (rounded to 16 rows, whole groups of a repacked matrix), so each thread
 * streams its own part of every W once, and one hand-off serves all the matrices that
 * share an input. Small work runs on the caller. */
static void run_jobs(kern_pool_t *pool, matmul_task_t *t)
{
    int nt = pool ? kern_pool_size(pool) : 1;
    size_t work = 0;
    for (int k = 0; k < t->count; k++)
        work += t->jobs[k].rows * t->jobs[k].cols * t->jobs[k].n;
    /* below ~64K multiply-adds the hand-off to other threads costs more than it saves */
    if (nt <= 1 || work < ((size_t)1 << 16)) {
        for (int k = 0; k < t->count; k++)
            t->fn[k](&t->jobs[k], 0, t->jobs[k].rows);
        return;
    }
    t->first[0] = 0;
    for (int k = 0; k < t->count; k++) {
        size_t rows = t->jobs[k].rows;
        size_t chunk = rows < 16 ? rows : (rows + (size_t)nt - 1) / (size_t)nt;
        chunk = (chunk + 15) & ~(size_t)15;
        t->chunk[k] = chunk;
        t->first[k + 1] = t->first[k] + (int)((rows + chunk - 1) / chunk);
    }
    kern_pool_run(pool, matmul_task_run, t, t->first[t->count]);
}

/* Copies the quantized activations of nb tokens into the tiled layout of kern_job_t's
 * XT, XTD, XTI (the repacked kernels read a whole tile's block through one pointer). */
static void tile_acts(const int8_t *xq, const float *xd, const float *xs, size_t nb, size_t cols,
                      int8_t *xt, float *xtd, int32_t *xti)
{
    const size_t nblk = cols / KERN_QK;
    for (size_t b0 = 0; b0 < nb; b0 += KERN_X16_TILE) {
        size_t T = nb - b0 < KERN_X16_TILE ? nb - b0 : KERN_X16_TILE;
        for (size_t t = 0; t < T; t++)
            for (size_t i = 0; i < nblk; i++) {
                size_t at = b0 * nblk + i * T + t, from = (b0 + t) * nblk + i;
                memcpy(xt + at * KERN_QK, xq + from * KERN_QK, KERN_QK);
                xtd[at] = xd[from];
                /* xs = 8 * xd * sum exactly (xd has 11 significant bits, sum 13) */
                xti[at] = xd[from] != 0.0f ? -(int32_t)lrintf(xs[from] / xd[from]) : 0;
            }
    }
}

/* Quantizes activation rows X[0..nb) (cols each) to Q8_0 into the scratch layout
 * kern_job_t describes (XD, XS, XQ, then XP when want_xp), by the reference routine
 * when !simd so the scalar path is ggml's exactly. */
static void quantize_acts(const float *X, size_t nb, size_t cols, int simd, int want_xp, float *xd,
                          float *xs, int8_t *xq)
{
    const size_t nblk = cols / KERN_QK;
    for (size_t b = 0; b < nb; b++) {
        const float *xr = X + b * cols;
        for (size_t i = 0; i < nblk; i++) {
            kern_block_q8_0_t blk;
            if (simd)
                kern_avx2_quantize_q8_0(xr + i * KERN_QK, &blk, KERN_QK);
            else
                quantize_row_q8_0(xr + i * KERN_QK, &blk, KERN_QK);
            int sum = 0;
            for (int k = 0; k < KERN_QK; k++)
                sum += blk.qs[k];
            memcpy(xq + b * cols + i * KERN_QK, blk.qs, KERN_QK);
            xd[b * nblk + i] = kern_f16_to_f32(blk.d);
            xs[b * nblk + i] = 8.0f * xd[b * nblk + i] * (float)sum;
        }
    }
    if (!want_xp) return;
    int8_t *xp = xq + nb * cols; /* the 4-block half-interleaved copy (see kern_job_t) */
    for (size_t b = 0; b < nb; b++) {
        const int8_t *src = xq + b * cols;
        int8_t *dst = xp + b * cols;
        size_t i = 0;
        for (; i + 4 <= nblk; i += 4)
            for (size_t k = 0; k < 4; k++) {
                memcpy(dst + i * KERN_QK + k * 16, src + (i + k) * KERN_QK, 16);
                memcpy(dst + i * KERN_QK + 64 + k * 16, src + (i + k) * KERN_QK + 16, 16);
            }
        memcpy(dst + i * KERN_QK, src + i * KERN_QK, (nblk - i) * KERN_QK);
    }
}

/* The implementation for rows of type t. */
static rows_fn_t rows_fn(kern_type_t t, int simd)
{
    /* the repacked layout has VNNI code only; the reference reads it otherwise */
    if (t == KERN_Q4_0_X16 || t == KERN_Q8_0_X16)
        return simd && kern_avx2_use_vnni(-1) ? kern_avx2_x16_rows : kern_scalar_rows;
    if (kern_kq_x16_base(t))
        return simd && kern_avx2_use_vnni(-1) ? kern_kq_avx2_rows : kern_scalar_rows;
    if (kern_kq_is_kq(t)) return simd ? kern_kq_avx2_rows : kern_scalar_rows;
    return simd ? kern_avx2_rows : kern_scalar_rows;
}

/* What a matrix of type t wants its activations in: 0 f32, 1 Q8_0, 2 Q8_K. */
static int act_kind(kern_type_t t)
{
    if (kern_kq_is_k(t) || kern_kq_x16_base(t)) return 2;
    return t == KERN_Q8_0 || t == KERN_Q4_0 || t == KERN_Q4_0_X16 || t == KERN_Q8_0_X16 ||
                   t == KERN_Q5_0 || t == KERN_Q5_1
               ? 1
               : 0;
}

/* Y_k[n, rows_k] = X[n, cols] . W_k^T for every matrix. Quantized weights: X is
 * quantized to Q8_0 (Q8_K for K-quants) once for all of them, in passes of at most
 * SCRATCH_MAX bytes of activations. Matrices wanting different activations go one call
 * at a time. */
void kern_matmul_many(kern_pool_t *pool, const kern_mat_t *mats, int count, const float *X,
                      size_t n, size_t cols)
{
    int mixed = 0;
    for (int k = 1; k < count; k++)
        mixed |= act_kind(mats[k].type) != act_kind(mats[0].type);
    if (count > MANY_MAX || mixed) {
        for (int k = 0; k < count; k++)
            kern_matmul_many(pool, &mats[k], 1, X, n, cols);
        return;
    }
    const int simd = use_simd();
    matmul_task_t t = {.count = count};
    int want_xp = 0, want_xt = 0;
    for (int k = 0; k < count; k++) {
        t.fn[k] = rows_fn(mats[k].type, simd);
        t.jobs[k] = (kern_job_t){.type = mats[k].type,
                                 .W = mats[k].W,
                                 .row_bytes = kern_row_size(mats[k].type, cols),
                                 .rows = mats[k].rows,
                                 .cols = cols};
        want_xp |= simd && mats[k].type == KERN_Q4_0 && kern_avx2_use_vnni(-1);
        want_xt |= t.fn[k] == kern_avx2_x16_rows;
    }
    if (act_kind(mats[0].type) == 0) {
        for (int k = 0; k < count; k++)
            t.jobs[k].X = X, t.jobs[k].Y = mats[k].Y, t.jobs[k].n = n;
        run_jobs(pool, &t);
        return;
    }
    if (act_kind(mats[0].type) == 2) {
        const size_t nbk = cols / KERN_QK_K, per_row = nbk * sizeof(kern_block_q8_k_t);
        size_t per_pass = SCRATCH_MAX / per_row;
        if (per_pass == 0) per_pass = 1;
        for (size_t b0 = 0; b0 < n; b0 += per_pass) {
            size_t nb = n - b0 < per_pass ? n - b0 : per_pass;
            kern_block_q8_k_t *xk = scratch_get(nb * per_row);
            for (size_t b = 0; b < nb; b++)
                kern_kq_quantize_q8_k(X + (b0 + b) * cols, xk + b * nbk, cols);
            for (int k = 0; k < count; k++) {
                kern_job_t *j = &t.jobs[k];
                j->XK = xk;
                j->Y = mats[k].Y + b0 * mats[k].rows, j->n = nb;
            }
            run_jobs(pool, &t);
        }
        return;
    }
    const size_t nblk = cols / KERN_QK;
    const size_t per_row = cols * (1 + (size_t)want_xp + (size_t)want_xt) +
                           (2 + 2 * (size_t)want_xt) * nblk * sizeof(float);
    size_t per_pass = SCRATCH_MAX / per_row;
    if (per_pass == 0) per_pass = 1;
    for (size_t b0 = 0; b0 < n; b0 += per_pass) {
        size_t nb = n - b0 < per_pass ? n - b0 : per_pass;
        float *xd = scratch_get(nb * per_row);
        float *xs = xd + nb * nblk;
        float *xtd = xs + nb * nblk;                 /* want_xt only */
        int32_t *xti = (int32_t *)(xtd + nb * nblk); /* want_xt only */
        int8_t *xq = (int8_t *)(xd + (2 + 2 * (size_t)want_xt) * nb * nblk);
        int8_t *xt = xq + nb * cols * (1 + (size_t)want_xp); /* want_xt only */
        quantize_acts(X + b0 * cols, nb, cols, simd, want_xp, xd, xs, xq);
        if (want_xt) tile_acts(xq, xd, xs, nb, cols, xt, xtd, xti);
        for (int k = 0; k < count; k++) {
            kern_job_t *j = &t.jobs[k];
            j->XQ = xq, j->XD = xd, j->XS = xs, j->XP = want_xp ? xq + nb * cols : NULL;
            j->XT = want_xt ? xt : NULL, j->XTD = want_xt ? xtd : NULL;
            j->XTI = want_xt ? xti : NULL;
            j->Y = mats[k].Y + b0 * mats[k].rows, j->n = nb;
        }
        run_jobs(pool, &t);
    }
}

void kern_matmul(kern_pool_t *pool, kern_type_t t, const void *W, const float *X, float *Y,
                 size_t n, size_t rows, size_t cols)
{
    kern_mat_t m = {.type = t, .W = W, .rows = rows, .Y = Y};
    kern_matmul_many(pool, &m, 1, X, n, cols);
}

void kern_matvec(kern_pool_t *pool, kern_type_t t, const void *W, const float *x, float *y,
                 size_t rows, size_t cols)
{
    kern_matmul(pool, t, W, x, y, 1, rows, cols);
}
