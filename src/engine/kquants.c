/* kquants.c — Q5_0/Q5_1 and K-quant weights: dequantization, reference quantization,
 * Q8_K activations and the scalar dot products (see kquants.h).
 *
 * Bit exactness with ggml rests on evaluating the same float operations in the same
 * order: products are written out left to right as ggml writes them, sums run in the
 * same index order, and this file is compiled without FMA so nothing is contracted.
 */
#include "engine/kquants.h"

#include <math.h>
#include <string.h>

/* ============================================================== types ==== */

int kern_kq_is_k(kern_type_t t)
{
    return t == KERN_Q2_K || t == KERN_Q3_K || t == KERN_Q4_K || t == KERN_Q5_K || t == KERN_Q6_K;
}

int kern_kq_is_kq(kern_type_t t)
{
    return t == KERN_Q5_0 || t == KERN_Q5_1 || kern_kq_is_k(t);
}

size_t kern_kq_block_bytes(kern_type_t t)
{
    switch (t) {
    case KERN_Q5_0:
        return sizeof(kern_block_q5_0_t);
    case KERN_Q5_1:
        return sizeof(kern_block_q5_1_t);
    case KERN_Q2_K:
        return sizeof(kern_block_q2_k_t);
    case KERN_Q3_K:
        return sizeof(kern_block_q3_k_t);
    case KERN_Q4_K:
        return sizeof(kern_block_q4_k_t);
    case KERN_Q5_K:
        return sizeof(kern_block_q5_k_t);
    case KERN_Q6_K:
        return sizeof(kern_block_q6_k_t);
    default:
        return 0;
    }
}

size_t kern_kq_block_len(kern_type_t t)
{
    return kern_kq_is_k(t) ? KERN_QK_K : KERN_QK;
}

/* ============================================================ helpers ==== */

/* Round to nearest, ties to even, by adding 1.5 * 2^23 in f32 (ggml's nearest_int;
 * the float addition is the rounding, so results agree for |v| < 2^22). */
static inline int nearest_int(float v)
{
    float f = v + 12582912.f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}

static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

/* The 6-bit scale and min of sub-block j (0..7) from Q4_K/Q5_K's 12 scale bytes:
 * sub-blocks 0..3 in the low 6 bits of bytes j and j + 4; 4..7 in the nibbles of
 * bytes j + 4 with their top 2 bits in the top bits of bytes j - 4 and j. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The 16 6-bit scales of a Q3_K block, minus 32: low nibbles of bytes 0..7 (scales
 * 0..7) and high nibbles (8..15), top 2 bits in bytes 8..11 (scale j at bits 2*(j/4)
 * of byte 8 + j%4). */
static inline void scales_q3_k(const uint8_t *s, int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* ====================================================== dequantization ==== */

static void dequant_q5_0(const kern_block_q5_0_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = ((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[i * 32 + j] = x0 * d;
            y[i * 32 + j + 16] = x1 * d;
        }
    }
}

static void dequant_q5_1(const kern_block_q5_1_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d), m = kern_f16_to_f32(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            y[i * 32 + j] = x0 * d + m;
            y[i * 32 + j + 16] = x1 * d + m;
        }
    }
}

/* Q2_K: each 128 weights are 32 bytes of qs read 4 times at shifts 0, 2, 4, 6; each
 * read covers two sub-blocks of 16 (bytes 0..15, 16..31). */
static void dequant_q2_k(const kern_block_q2_k_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d), min = kern_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < KERN_QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int h = 0; h < 2; h++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * ((int8_t)((q[l + 16 * h] >> shift) & 3)) - ml;
                }
    }
}

/* Q3_K: as Q2_K for the low 2 bits; the third bit of weight k of each 128 is bit
 * (k / 32) + 4 * (128-half) of hmask[k % 32], and a clear bit subtracts 4. */
static void dequant_q3_k(const kern_block_q3_k_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d_all = kern_f16_to_f32(x[i].d);
        int8_t sc[16];
        scales_q3_k(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < KERN_QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int h = 0; h < 2; h++) {
                    const float dl = d_all * sc[is++];
                    for (int l = 16 * h; l < 16 * h + 16; l++)
                        *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

/* Q4_K: each 64 weights are 32 bytes, low nibbles first (sub-block 2k), then high
 * nibbles (2k + 1). */
static void dequant_q4_k(const kern_block_q4_k_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d), min = kern_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: Q4_K plus the fifth bit of weight l of 64-group g in bits 2g (low nibbles)
 * and 2g + 1 (high nibbles) of qh[l]. */
static void dequant_q5_k(const kern_block_q5_k_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d), min = kern_f16_to_f32(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* The 6-bit quant of weight e (0..255) of a Q6_K block: in each half of 128, weight
 * l + 32k takes the low nibble (k = 0, 1) or high nibble (k = 2, 3) of ql[l + 32 (k &
 * 1)] and bits 2k..2k+1 of qh[l]. */
static inline int q6_k_quant(const kern_block_q6_k_t *b, int e)
{
    const int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const uint8_t lq = b->ql[64 * half + l + 32 * (k & 1)];
    const int lo = k < 2 ? lq & 0xF : lq >> 4;
    const int hi = (b->qh[32 * half + l] >> (2 * k)) & 3;
    return lo | hi << 4;
}

static void dequant_q6_k(const kern_block_q6_k_t *x, float *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        const float d = kern_f16_to_f32(x[i].d);
        for (int e = 0; e < KERN_QK_K; e++) {
            const int8_t q = (int8_t)(q6_k_quant(&x[i], e) - 32);
            y[i * KERN_QK_K + e] = d * x[i].scales[e / 16] * q;
        }
    }
}

void kern_kq_dequantize_row(kern_type_t t, const void *src, float *dst, size_t n)
{
    const size_t nb = n / kern_kq_block_len(t);
    switch (t) {
    case KERN_Q5_0:
        dequant_q5_0(src, dst, nb);
        break;
    case KERN_Q5_1:
        dequant_q5_1(src, dst, nb);
        break;
    case KERN_Q2_K:
        dequant_q2_k(src, dst, nb);
        break;
    case KERN_Q3_K:
        dequant_q3_k(src, dst, nb);
        break;
    case KERN_Q4_K:
        dequant_q4_k(src, dst, nb);
        break;
    case KERN_Q5_K:
        dequant_q5_k(src, dst, nb);
        break;
    case KERN_Q6_K:
        dequant_q6_k(src, dst, nb);
        break;
    default:
        break;
    }
}

/* ======================================================== quantization ==== */

#define GROUP_MAX_EPS 1e-15f

static void quant_q5_0(const float *x, kern_block_q5_0_t *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++, x += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = kern_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            /* clamp then truncate == MIN(31, (int8_t)v) for the finite range */
            const float v0 = fminf(fmaxf(x[j] * id + 16.5f, 0.0f), 31.0f);
            const float v1 = fminf(fmaxf(x[j + 16] * id + 16.5f, 0.0f), 31.0f);
            const uint8_t q0 = (uint8_t)v0, q1 = (uint8_t)v1;
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void quant_q5_1(const float *x, kern_block_q5_1_t *y, size_t nb)
{
    for (size_t i = 0; i < nb; i++, x += 32) {
        float min = x[0], max = x[0];
        for (int j = 1; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = kern_f32_to_f16(d);
        y[i].m = kern_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const float v0 = fminf(fmaxf((x[j] - min) * id + 0.5f, 0.0f), 255.0f);
            const float v1 = fminf(fmaxf((x[j + 16] - min) * id + 0.5f, 0.0f), 255.0f);
            const uint8_t q0 = (uint8_t)v0, q1 = (uint8_t)v1;
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10u) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* Symmetric quants of n values in [-nmax, nmax - 1] (stored plus nmax) with the scale
 * of least weighted squared error (weights x^2) among 19 candidates around
 * -nmax / max (ggml's make_qx_quants, rmse_type 1, no importance weights). Returns the
 * scale. */
static float qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric 3-bit quants (values -4..3) refined by coordinate descent on the x^2
 * weighted error (ggml's make_q3_quants with do_rmse). L gets the quant plus nmax.
 * Returns the scale. */
static float q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric quants in [0, nmax] with scale and min fitted by weighted least squares
 * over nstep + 1 candidate scales (ggml's make_qkx2_quants). *the_min gets the
 * (non-negative) amount subtracted; returns the scale. Laux is scratch of n. */
static float qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                         float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                         int use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 256 2-bit values L into 64 bytes: byte l of each 32 holds values l, l + 32,
 * l + 64, l + 96 of its 128 at shifts 0, 2, 4, 6. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < KERN_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

static void quant_q2_k(const float *x, kern_block_q2_k_t *y, size_t nb)
{
    uint8_t L[KERN_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (size_t i = 0; i < nb; i++, x += KERN_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                    0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = kern_f32_to_f16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = kern_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = kern_f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = kern_f32_to_f16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = kern_f16_to_f32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = kern_f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + ii] + dm) / d)));
        }
        pack_2bit(L, y[i].qs);
    }
}

static void quant_q3_k(const float *x, kern_block_q3_k_t *y, size_t nb)
{
    int8_t L[KERN_QK_K];
    float scales[16];
    for (size_t i = 0; i < nb; i++, x += KERN_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, KERN_K_SCALES);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                if (j < 8)
                    y[i].scales[j] = l & 0xF;
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = kern_f32_to_f16(1 / iscale);
        } else {
            y[i].d = kern_f32_to_f16(0.f);
        }
        int8_t sc[16];
        scales_q3_k(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = kern_f16_to_f32(y[i].d) * sc[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + ii] / d))) + 4);
        }
        /* third bit of value j: bit j / 32 of hmask[j % 32] */
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < KERN_QK_K; j++)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] -= 4;
            }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* Q4_K and Q5_K share everything but the quant width (nmax 15 or 31), the search
 * (rmin, steps) and the packing: per sub-block of 32 an asymmetric fit weighted by
 * rms + |x|, the 8 scales and mins quantized to 6 bits against their maxima, then
 * every weight requantized with the rounded scale and min. */
static void quant_k4k5(const float *x, uint8_t *scales_out, kern_f16_t *d_out, kern_f16_t *dmin_out,
                       uint8_t *L, int nmax)
{
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = nmax == 15 ? qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j],
                                             Laux, -1.f, 0.1f, 20, 0)
                               : qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j],
                                             Laux, -0.5f, 0.1f, 15, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = kern_f32_to_f16(max_scale / 63.f);
    *dmin_out = kern_f32_to_f16(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        scale_min_k4(j, scales_out, &sc, &m);
        const float d = kern_f16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = kern_f16_to_f32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + ii] + dm) / d)));
    }
}

static void quant_q4_k(const float *x, kern_block_q4_k_t *y, size_t nb)
{
    uint8_t L[KERN_QK_K];
    for (size_t i = 0; i < nb; i++, x += KERN_QK_K) {
        memset(y[i].scales, 0, KERN_K_SCALES);
        quant_k4k5(x, y[i].scales, &y[i].d, &y[i].dmin, L, 15);
        for (int j = 0; j < KERN_QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void quant_q5_k(const float *x, kern_block_q5_k_t *y, size_t nb)
{
    uint8_t L[KERN_QK_K];
    for (size_t i = 0; i < nb; i++, x += KERN_QK_K) {
        memset(y[i].scales, 0, KERN_K_SCALES);
        quant_k4k5(x, y[i].scales, &y[i].d, &y[i].dmin, L, 31);
        memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < KERN_QK_K; n += 64, m1 <<= 2, m2 <<= 2)
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    y[i].qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[i].qh[j] |= m2;
                }
                y[i].qs[n / 2 + j] = (uint8_t)(l1 | (l2 << 4));
            }
    }
}

static void quant_q6_k(const float *x, kern_block_q6_k_t *y, size_t nb)
{
    int8_t L[KERN_QK_K];
    float scales[16];
    for (size_t i = 0; i < nb; i++, x += KERN_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float a = fabsf(scales[ib]);
            if (a > max_abs_scale) {
                max_abs_scale = a;
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = kern_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++)
            y[i].scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            const float d = kern_f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] =
                    (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + ii] / d))) + 32);
        }
        /* the inverse of q6_k_quant */
        for (int half = 0; half < 2; half++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *q = (const uint8_t *)L + 128 * half + l;
                y[i].ql[64 * half + l] = (uint8_t)((q[0] & 0xF) | ((q[64] & 0xF) << 4));
                y[i].ql[64 * half + l + 32] = (uint8_t)((q[32] & 0xF) | ((q[96] & 0xF) << 4));
                y[i].qh[32 * half + l] = (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) |
                                                   ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
            }
    }
}

void kern_kq_quantize_row(kern_type_t t, const float *src, void *dst, size_t n)
{
    const size_t nb = n / kern_kq_block_len(t);
    switch (t) {
    case KERN_Q5_0:
        quant_q5_0(src, dst, nb);
        break;
    case KERN_Q5_1:
        quant_q5_1(src, dst, nb);
        break;
    case KERN_Q2_K:
        quant_q2_k(src, dst, nb);
        break;
    case KERN_Q3_K:
        quant_q3_k(src, dst, nb);
        break;
    case KERN_Q4_K:
        quant_q4_k(src, dst, nb);
        break;
    case KERN_Q5_K:
        quant_q5_k(src, dst, nb);
        break;
    case KERN_Q6_K:
        quant_q6_k(src, dst, nb);
        break;
    default:
        break;
    }
}

/* ========================================================= activations ==== */

void kern_kq_quantize_q8_k(const float *x, kern_block_q8_k_t *y, size_t n)
{
    for (size_t i = 0; i < n / KERN_QK_K; i++, x += KERN_QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < KERN_QK_K; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int j = 0; j < KERN_QK_K; j++)
            y[i].qs[j] = (int8_t)roundf(fminf(fmaxf(x[j] * id, -127.0f), 127.0f));
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int k = 0; k < 16; k++)
                s += y[i].qs[16 * g + k];
            y[i].bsums[g] = (int16_t)s;
        }
    }
}

/* ======================================================== dot products ==== */

/* Each returns the sum over blocks of d_x * (d_w * sumi - dmin_w * summ) in that
 * float order; the AVX2 kernels compute the same integers and the same per-block
 * expression, so only the order of the block sums differs. */

static float dot_q2_k(const kern_block_q2_k_t *w, const kern_block_q8_k_t *x, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++)
            summ += (w[i].scales[g] >> 4) * x[i].bsums[g];
        /* weight e: 128-half e / 128, shift 2 * ((e % 128) / 32), byte (e % 32) */
        for (int e = 0; e < KERN_QK_K; e++) {
            const int q = (w[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            sumi += (w[i].scales[e / 16] & 0xF) * q * x[i].qs[e];
        }
        const float dd = kern_f16_to_f32(w[i].d) * x[i].d;
        const float dm = kern_f16_to_f32(w[i].dmin) * x[i].d;
        s += dd * (float)sumi - dm * (float)summ;
    }
    return s;
}

static float dot_q3_k(const kern_block_q3_k_t *w, const kern_block_q8_k_t *x, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int8_t sc[16];
        scales_q3_k(w[i].scales, sc);
        int32_t sumi = 0;
        for (int e = 0; e < KERN_QK_K; e++) {
            const int lo = (w[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            const int hb = (w[i].hmask[e % 32] >> (e / 32)) & 1;
            sumi += sc[e / 16] * (lo - (hb ? 0 : 4)) * x[i].qs[e];
        }
        s += kern_f16_to_f32(w[i].d) * x[i].d * (float)sumi;
    }
    return s;
}

/* Q4_K / Q5_K: sumi = sum of sc_j * dot(q, x) over the 8 sub-blocks, summ = sum of
 * m_j * (bsum_2j + bsum_2j+1). */
static float dot_q4_k(const kern_block_q4_k_t *w, const kern_block_q8_k_t *x, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            scale_min_k4(j, w[i].scales, &sc, &m);
            const uint8_t *q = w[i].qs + 32 * (j / 2);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++)
                dot += (j & 1 ? q[l] >> 4 : q[l] & 0xF) * x[i].qs[32 * j + l];
            sumi += sc * dot;
            summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        const float dd = kern_f16_to_f32(w[i].d) * x[i].d;
        const float dm = kern_f16_to_f32(w[i].dmin) * x[i].d;
        s += dd * (float)sumi - dm * (float)summ;
    }
    return s;
}

static float dot_q5_k(const kern_block_q5_k_t *w, const kern_block_q8_k_t *x, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            scale_min_k4(j, w[i].scales, &sc, &m);
            const uint8_t *q = w[i].qs + 32 * (j / 2);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                const int v = (j & 1 ? q[l] >> 4 : q[l] & 0xF) | (((w[i].qh[l] >> j) & 1) << 4);
                dot += v * x[i].qs[32 * j + l];
            }
            sumi += sc * dot;
            summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        const float dd = kern_f16_to_f32(w[i].d) * x[i].d;
        const float dm = kern_f16_to_f32(w[i].dmin) * x[i].d;
        s += dd * (float)sumi - dm * (float)summ;
    }
    return s;
}

static float dot_q6_k(const kern_block_q6_k_t *w, const kern_block_q8_k_t *x, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int g = 0; g < 16; g++) {
            int32_t dot = 0;
            for (int k = 0; k < 16; k++)
                dot += (q6_k_quant(&w[i], 16 * g + k) - 32) * x[i].qs[16 * g + k];
            sumi += w[i].scales[g] * dot;
        }
        s += kern_f16_to_f32(w[i].d) * x[i].d * (float)sumi;
    }
    return s;
}

static float dot_q5_0(const kern_block_q5_0_t *w, const int8_t *xq, const float *xd, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, w[i].qh, 4);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int x0 = ((w[i].qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
            const int x1 = ((w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            sumi += x0 * xq[i * 32 + j] + x1 * xq[i * 32 + j + 16];
        }
        s += (float)sumi * (kern_f16_to_f32(w[i].d) * xd[i]);
    }
    return s;
}

static float dot_q5_1(const kern_block_q5_1_t *w, const int8_t *xq, const float *xd, size_t nb)
{
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, w[i].qh, 4);
        int32_t sumi = 0, sumx = 0;
        for (int j = 0; j < 16; j++) {
            const int x0 = (w[i].qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
            const int x1 = (w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            sumi += x0 * xq[i * 32 + j] + x1 * xq[i * 32 + j + 16];
            sumx += xq[i * 32 + j] + xq[i * 32 + j + 16];
        }
        s += (float)sumi * (kern_f16_to_f32(w[i].d) * xd[i]) +
             kern_f16_to_f32(w[i].m) * xd[i] * (float)sumx;
    }
    return s;
}

float kern_kq_dot(kern_type_t t, const void *w, const kern_block_q8_k_t *xk, const int8_t *xq,
                  const float *xd, size_t nb)
{
    switch (t) {
    case KERN_Q5_0:
        return dot_q5_0(w, xq, xd, nb);
    case KERN_Q5_1:
        return dot_q5_1(w, xq, xd, nb);
    case KERN_Q2_K:
        return dot_q2_k(w, xk, nb);
    case KERN_Q3_K:
        return dot_q3_k(w, xk, nb);
    case KERN_Q4_K:
        return dot_q4_k(w, xk, nb);
    case KERN_Q5_K:
        return dot_q5_k(w, xk, nb);
    case KERN_Q6_K:
        return dot_q6_k(w, xk, nb);
    default:
        return 0.0f;
    }
}

/* ================================================== repacked layouts ==== */

/* Layouts of a group of 16 rows, super-block i (kernels.h KERN_Q4_K_X16 ..), each
 * super-block 16 times the file block's bytes; l is a row of the group (0..15):
 *
 * Q4_K_X16, Q5_K_X16:
 *   [0, 32)     d of rows 0..15 (f16)          [32, 64)    dmin of rows 0..15
 *   [64, 128)   dword l: the low 4 bits of scale j at bits 4j (j = 0..7)
 *   [128, 192)  dword l: the low 4 bits of min j at bits 4j
 *   [192, 256)  dword l: scale j's top 2 bits at bits 2j, min j's at 16 + 2j
 *   Q5_K only, [256, 768): 8 x 64 bytes of fifth bits; byte 4l + k of vector h: bit i
 *               (i = 0..3) the fifth bit of the low nibble of quant slice 4h + i,
 *               position k, bit 4 + i that of its high nibble
 *   then 32 quant slices of 64 bytes: slice 8c + s (c = 0..3, s = 0..7), byte 4l + k
 *               = row l's qs[32c + 4s + k] (low nibble: weight 64c + 4s + k, high
 *               nibble: weight 64c + 32 + 4s + k)
 * Q6_K_X16 (q[e]: the 6-bit quant of weight e, 0..63):
 *   [0, 32)     d of rows 0..15
 *   [32, 288)   byte 16g + l: row l's scale g (int8)
 *   [288, 2336) 32 x 64: vector p, byte 4l + k = q[4p + k] & 15 | (q[4p + 128 + k] & 15) << 4
 *   [2336, 3360) 16 x 64: vector p, byte 4l + k: bits 2i..2i+1 = q[4p + 64i + k] >> 4
 */

kern_type_t kern_kq_x16_base(kern_type_t t)
{
    return t == KERN_Q4_K_X16   ? KERN_Q4_K
           : t == KERN_Q5_K_X16 ? KERN_Q5_K
           : t == KERN_Q6_K_X16 ? KERN_Q6_K
                                : (kern_type_t)0;
}

kern_type_t kern_kq_x16_type(kern_type_t t)
{
    return t == KERN_Q4_K   ? KERN_Q4_K_X16
           : t == KERN_Q5_K ? KERN_Q5_K_X16
           : t == KERN_Q6_K ? KERN_Q6_K_X16
                            : (kern_type_t)0;
}

/* The 12 scale bytes of a Q4_K/Q5_K block from the 8 scales and mins (the inverse of
 * scale_min_k4: every bit of the 12 bytes is one bit of a scale or min). */
static void scales_k4_encode(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12])
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        out[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
}

/* Row l's Q4_K/Q5_K block b (hi5: Q5_K) into the group super-block o. */
static void x16_put_k45(const uint8_t *b, int hi5, size_t l, uint8_t *o)
{
    memcpy(o + 2 * l, b, 2);
    memcpy(o + 32 + 2 * l, b + 2, 2);
    uint32_t a = 0, mn = 0, h = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        scale_min_k4(j, b + 4, &sc, &m);
        a |= (uint32_t)(sc & 0xF) << (4 * j);
        mn |= (uint32_t)(m & 0xF) << (4 * j);
        h |= (uint32_t)(sc >> 4) << (2 * j) | (uint32_t)(m >> 4) << (16 + 2 * j);
    }
    memcpy(o + 64 + 4 * l, &a, 4);
    memcpy(o + 128 + 4 * l, &mn, 4);
    memcpy(o + 192 + 4 * l, &h, 4);
    const uint8_t *qh = b + 16, *qs = b + 16 + (hi5 ? 32 : 0);
    uint8_t *oq = o + 256 + (hi5 ? 512 : 0);
    for (int q = 0; q < 32; q++)
        memcpy(oq + 64 * q + 4 * l, qs + 32 * (q / 8) + 4 * (q % 8), 4);
    if (!hi5) return;
    for (int v = 0; v < 8; v++)
        for (int k = 0; k < 4; k++) {
            unsigned byte = 0;
            for (int i = 0; i < 4; i++) {
                const int q = 4 * v + i, c = q / 8, pos = 4 * (q % 8) + k;
                byte |= ((qh[pos] >> (2 * c)) & 1u) << i | ((qh[pos] >> (2 * c + 1)) & 1u)
                                                               << (4 + i);
            }
            o[256 + 64 * v + 4 * l + k] = (uint8_t)byte;
        }
}

/* Row l's Q4_K/Q5_K block back out of the group super-block o (the inverse of
 * x16_put_k45). */
static void x16_get_k45(const uint8_t *o, int hi5, size_t l, uint8_t *b)
{
    memcpy(b, o + 2 * l, 2);
    memcpy(b + 2, o + 32 + 2 * l, 2);
    uint32_t a, mn, h;
    memcpy(&a, o + 64 + 4 * l, 4);
    memcpy(&mn, o + 128 + 4 * l, 4);
    memcpy(&h, o + 192 + 4 * l, 4);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(((a >> (4 * j)) & 0xF) | ((h >> (2 * j)) & 3) << 4);
        m[j] = (uint8_t)(((mn >> (4 * j)) & 0xF) | ((h >> (16 + 2 * j)) & 3) << 4);
    }
    scales_k4_encode(sc, m, b + 4);
    uint8_t *qh = b + 16, *qs = b + 16 + (hi5 ? 32 : 0);
    const uint8_t *oq = o + 256 + (hi5 ? 512 : 0);
    for (int q = 0; q < 32; q++)
        memcpy(qs + 32 * (q / 8) + 4 * (q % 8), oq + 64 * q + 4 * l, 4);
    if (!hi5) return;
    memset(qh, 0, 32);
    for (int v = 0; v < 8; v++)
        for (int k = 0; k < 4; k++) {
            const unsigned byte = o[256 + 64 * v + 4 * l + k];
            for (int i = 0; i < 4; i++) {
                const int q = 4 * v + i, c = q / 8, pos = 4 * (q % 8) + k;
                qh[pos] |= (uint8_t)(((byte >> i) & 1u) << (2 * c) | ((byte >> (4 + i)) & 1u)
                                                                         << (2 * c + 1));
            }
        }
}

/* Row l's Q6_K block b into the group super-block o. */
static void x16_put_q6_k(const kern_block_q6_k_t *b, size_t l, uint8_t *o)
{
    uint8_t q[KERN_QK_K];
    for (int e = 0; e < KERN_QK_K; e++)
        q[e] = (uint8_t)q6_k_quant(b, e);
    memcpy(o + 2 * l, &b->d, 2);
    for (int g = 0; g < 16; g++)
        o[32 + 16 * g + l] = (uint8_t)b->scales[g];
    for (int p = 0; p < 32; p++)
        for (int k = 0; k < 4; k++)
            o[288 + 64 * p + 4 * l + k] =
                (uint8_t)((q[4 * p + k] & 15) | (q[4 * p + 128 + k] & 15) << 4);
    for (int p = 0; p < 16; p++)
        for (int k = 0; k < 4; k++) {
            unsigned byte = 0;
            for (int i = 0; i < 4; i++)
                byte |= (unsigned)(q[4 * p + 64 * i + k] >> 4) << (2 * i);
            o[2336 + 64 * p + 4 * l + k] = (uint8_t)byte;
        }
}

/* Row l's Q6_K block back out of the group super-block o. */
static void x16_get_q6_k(const uint8_t *o, size_t l, kern_block_q6_k_t *b)
{
    memcpy(&b->d, o + 2 * l, 2);
    for (int g = 0; g < 16; g++)
        b->scales[g] = (int8_t)o[32 + 16 * g + l];
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int e = 0; e < KERN_QK_K; e++) {
        const int p = (e % 128) / 4, k = e % 4, nib = e / 128;
        const int ph = (e % 64) / 4, i = e / 64;
        const int lo = (o[288 + 64 * p + 4 * l + k] >> (4 * nib)) & 15;
        const int hi = (o[2336 + 64 * ph + 4 * l + k] >> (2 * i)) & 3;
        /* ggml's places (q6_k_quant) */
        const int half = e / 128, r = e % 128, kk = r / 32, ll = r % 32;
        b->ql[64 * half + ll + 32 * (kk & 1)] |= (uint8_t)(kk < 2 ? lo : lo << 4);
        b->qh[32 * half + ll] |= (uint8_t)(hi << (2 * kk));
    }
}

int kern_kq_repack(kern_type_t from, const void *src, void *dst, size_t rows, size_t cols)
{
    const kern_type_t to = kern_kq_x16_type(from);
    if (!to || rows % KERN_X16_ROWS || cols % KERN_QK_K) return -1;
    const size_t nb = cols / KERN_QK_K, bb = kern_kq_block_bytes(from);
    const uint8_t *in = src;
    uint8_t *out = dst;
    for (size_t g = 0; g < rows / KERN_X16_ROWS; g++)
        for (size_t i = 0; i < nb; i++, out += KERN_X16_ROWS * bb)
            for (size_t l = 0; l < KERN_X16_ROWS; l++) {
                const uint8_t *b = in + ((g * KERN_X16_ROWS + l) * nb + i) * bb;
                if (from == KERN_Q6_K)
                    x16_put_q6_k((const kern_block_q6_k_t *)b, l, out);
                else
                    x16_put_k45(b, from == KERN_Q5_K, l, out);
            }
    return 0;
}

void kern_kq_x16_block(kern_type_t t, const void *W, size_t nb, size_t r, size_t i, void *out)
{
    const kern_type_t base = kern_kq_x16_base(t);
    const size_t gb = KERN_X16_ROWS * kern_kq_block_bytes(base);
    const uint8_t *o = (const uint8_t *)W + ((r / KERN_X16_ROWS) * nb + i) * gb;
    if (base == KERN_Q6_K)
        x16_get_q6_k(o, r % KERN_X16_ROWS, out);
    else
        x16_get_k45(o, base == KERN_Q5_K, r % KERN_X16_ROWS, out);
}

float kern_kq_dot_x16(kern_type_t t, const void *W, size_t nb, size_t r,
                      const kern_block_q8_k_t *xk)
{
    const kern_type_t base = kern_kq_x16_base(t);
    float s = 0.0f;
    for (size_t i = 0; i < nb; i++) {
        union {
            kern_block_q4_k_t q4;
            kern_block_q5_k_t q5;
            kern_block_q6_k_t q6;
        } blk;
        kern_kq_x16_block(t, W, nb, r, i, &blk);
        s += kern_kq_dot(base, &blk, xk + i, NULL, NULL, 1);
    }
    return s;
}
