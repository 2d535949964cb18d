/* kernels_kq_avx2.c — AVX2 dot products of K-quant (Q2_K .. Q6_K) weight rows with Q8_K
 * activations, and of Q5_0/Q5_1 rows with Q8_0 activations (compiled with -mavx2 -mfma -mf16c;
 * called only after kernels.c saw those features at run time). Other types of kquants.h go to the
 * reference.
 *
 * Per super-block of 256 weights the integer dot is exact: quants are unpacked to
 * unsigned bytes (0..3, 0..7, 0..15, 0..31 or 0..63), maddubs multiplies them with the
 * signed activation bytes into 16-bit pair sums (at most 2 * 63 * 127, no saturation),
 * madd by the sub-block scales widens to 32 bits. Offsets (Q2_K/Q4_K/Q5_K mins, Q3_K's
 * -4, Q6_K's -32) come from the activation block's 16-element sums. Then, as in the
 * reference, the block adds d_w * d_x * sumi - dmin_w * d_x * summ in f32; only the
 * order of those block sums differs from kquants.c.
 *
 * A row meets up to KQ_TILE tokens per pass, so prefill unpacks each weight block
 * once per tile of tokens.
 *
 * The repacked layouts (KERN_Q4_K_X16, KERN_Q5_K_X16, KERN_Q6_K_X16) have AVX-512 VNNI
 * kernels here, and the Q2_K/Q3_K rows (never repacked) a 512-bit variant of their
 * AVX2 kernel (functions with their own target attribute, called only where
 * kern_avx2_use_vnni says the CPU has it); see the section below.
 */
#include <immintrin.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/kquants.h"

#define KQ_TILE     4    /* tokens per pass over a weight row */
#define KQ_PF_AHEAD 4096 /* bytes of a repacked group prefetched ahead (decode) */

/* A call for each tile size 1 .. KQ_TILE, so the kernel is compiled with T a constant
 * (its per-token arrays stay in registers). */
#define TILE_CASES(CALL)                                                                           \
    switch (T) {                                                                                   \
    case 1:                                                                                        \
        CALL(1);                                                                                   \
        break;                                                                                     \
    case 2:                                                                                        \
        CALL(2);                                                                                   \
        break;                                                                                     \
    case 3:                                                                                        \
        CALL(3);                                                                                   \
        break;                                                                                     \
    default:                                                                                       \
        CALL(KQ_TILE);                                                                             \
    }

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(kern_f16_t h)
{
    return _cvtsh_ss(h);
}

/* The 8 scales and 8 mins of a Q4_K/Q5_K block (6 bits each, see kquants.c) as 16
 * bytes, scales first: four 32-bit words rearranged with masks and shifts (the top 2
 * bits of sub-blocks 4..7 sit in the top bits of bytes 0..7). */
static inline __m128i k4_scales_mins(const uint8_t *q)
{
    uint32_t u[4];
    memcpy(u, q, 12);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
    const uint32_t mins03 = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4); /* scales 4..7 */
    u[2] = mins03;
    u[0] &= m6; /* scales 0..3 */
    return _mm_loadu_si128((const __m128i *)u);
}

/* Shuffle masks that broadcast 16-bit element k of a 128-bit lane to all 8 of its
 * 16-bit slots. */
static inline __m256i bcast16_mask(int k)
{
    return _mm256_set1_epi16((short)(0x0100 * (2 * k + 1) + 2 * k));
}

/* Row w (nb Q4_K or Q5_K blocks; HI5 selects Q5_K) against T tokens' Q8_K rows xs[t];
 * called with T a constant (TILE_CASES) so the per-token sums stay in registers. */
static inline __attribute__((always_inline)) void dot_k45_tile(const uint8_t *w, size_t nb,
                                                               const int HI5,
                                                               const kern_block_q8_k_t *const *xs,
                                                               int T, float *out)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256 acc[KQ_TILE];
    __m128 accm[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps(), accm[t] = _mm_setzero_ps();
    const size_t bb = HI5 ? sizeof(kern_block_q5_k_t) : sizeof(kern_block_q4_k_t);
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = w + i * bb;
        kern_f16_t dh, mh;
        memcpy(&dh, b, 2);
        memcpy(&mh, b + 2, 2);
        const uint8_t *qs = b + 16 + (HI5 ? 32 : 0);
        /* 16 x i16: scales 0..7 then mins 0..7 */
        const __m256i sm = _mm256_cvtepu8_epi16(k4_scales_mins(b + 4));
        const __m128i mins = _mm256_extracti128_si256(sm, 1);
        const __m256i scales = _mm256_permute2x128_si256(sm, sm, 0x00);
        const __m256i qh =
            HI5 ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
        const float d = h2f(dh), dmin = h2f(mh);
        __m256i sumi[KQ_TILE];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (HI5) {
                __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one);
                __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
            }
            const __m256i sl = _mm256_shuffle_epi8(scales, bcast16_mask(2 * j));
            const __m256i sh = _mm256_shuffle_epi8(scales, bcast16_mask(2 * j + 1));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const int8_t *xq = xs[t][i].qs + 64 * j;
                __m256i x0 = _mm256_loadu_si256((const __m256i *)xq);
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + 32));
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), sl);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), sh);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p0, p1));
            }
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const kern_block_q8_k_t *x = &xs[t][i];
            /* m_j * (bsum_2j + bsum_2j+1): the pairs of bsums added first */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x->bsums);
            const __m128i bs8 =
                _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            const __m128i summ = _mm_madd_epi16(mins, bs8);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            accm[t] = _mm_fmadd_ps(_mm_set1_ps(dmin * x->d), _mm_cvtepi32_ps(summ), accm[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        __m128 m = accm[t];
        m = _mm_add_ps(m, _mm_movehl_ps(m, m));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[t] = hsum8(acc[t]) - _mm_cvtss_f32(m);
    }
}

/* Row w (nb Q6_K blocks) against T tokens, T a constant (TILE_CASES). Each 32-weight
 * vector (sub-blocks 2k, 2k + 1 in its two lanes) is unpacked and its scales placed
 * once for the tile and used at once, so neither the unpacked block nor the per-token
 * sums leave the registers; the integer sums are the same, so the f32 ones are too. */
static inline __attribute__((always_inline)) void dot_q6_k_tile(const kern_block_q6_k_t *w,
                                                                size_t nb,
                                                                const kern_block_q8_k_t *const *xs,
                                                                int T, float *out)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    __m256 acc[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const kern_block_q6_k_t *b = &w[i];
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales)); /* 16 x i16 */
        __m256i sumi[KQ_TILE];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                                  : _mm256_permute2x128_si256(sc16, sc16, 0x00);
#pragma GCC unroll 16
            for (int k = 0; k < 4; k++) {
                /* vector 4h + k: nibbles of l0 (k even) or l1 (odd), low (k < 2) or high,
                   and bits 2k of qh as bits 4..5 */
                const __m256i l = k % 2 ? l1 : l0;
                const __m256i nib = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), m4);
                const __m256i hb =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m2), 4);
                const __m256i q = _mm256_or_si256(nib, hb);
                /* scale 2k of the half in the low lane, 2k + 1 in the high */
                const __m256i s = _mm256_shuffle_epi8(
                    sch, _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(2 * k + 1)),
                                          _mm256_castsi256_si128(bcast16_mask(2 * k))));
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const __m256i xv =
                        _mm256_loadu_si256((const __m256i *)(xs[t][i].qs + 32 * (4 * h + k)));
                    sumi[t] = _mm256_add_epi32(sumi[t],
                                               _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), s));
                }
            }
        }
        const float d = h2f(b->d);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const kern_block_q8_k_t *x = &xs[t][i];
            /* the -32 offset: 32 * sum of sc_g * bsum_g */
            const __m256i off =
                _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x->bsums));
            sumi[t] = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        out[t] = hsum8(acc[t]);
}

/* The 16 six-bit scales of a Q3_K block, minus 32, as bytes: scales 0..7 are the low
 * nibbles of bytes 0..7, 8..15 their high nibbles; scale j's top 2 bits sit at bits
 * 2 (j / 4) of byte 8 + j % 4, so dword k of the result takes bytes 8..11 shifted
 * right by 2k. All in registers: a scalar unpack stored and reloaded as a vector
 * stalls on store forwarding every block. */
static inline __m128i q3_k_scales(const uint8_t *p)
{
    const __m128i m4 = _mm_set1_epi8(0x0f), m2 = _mm_set1_epi8(3);
    const __m128i a = _mm_loadl_epi64((const __m128i *)p);
    int32_t top;
    memcpy(&top, p + 8, 4);
    const __m128i lo =
        _mm_unpacklo_epi64(_mm_and_si128(a, m4), _mm_and_si128(_mm_srli_epi16(a, 4), m4));
    const __m128i hi =
        _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(top), _mm_setr_epi32(0, 2, 4, 6)), m2);
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

/* Row w (nb Q2_K, or with Q3 Q3_K, blocks) against T tokens. The two share the low 2
 * bits: weights 32k .. 32k + 31 (sub-blocks 2k, 2k + 1) are the 32 bytes of 128-half
 * k / 4 of qs at shift 2 (k % 4); Q3_K adds bit k of hmask[0..31] as bit 2, so its
 * quant q - 4 * !hbit is u - 4 with u = 0..7. Per 32 weights one maddubs of the
 * unsigned quants with the activations and one madd by the two sub-blocks' scales
 * (Q2_K's 4-bit ones, Q3_K's signed 6-bit ones); each vector is unpacked once for the
 * tile and used at once, so the unpacked block never spills. Q2_K's mins and Q3_K's
 * -4 meet the activation block's 16-element sums in one madd per token. */
static inline __attribute__((always_inline)) void dot_k23_tile(const uint8_t *w, size_t nb,
                                                               const int Q3,
                                                               const kern_block_q8_k_t *const *xs,
                                                               int T, float *out)
{
    const __m256i m2 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const size_t bb = Q3 ? sizeof(kern_block_q3_k_t) : sizeof(kern_block_q2_k_t);
    __m256 acc[KQ_TILE], accm[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps(), accm[t] = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = w + i * bb;
        const uint8_t *qs =
            Q3 ? ((const kern_block_q3_k_t *)b)->qs : ((const kern_block_q2_k_t *)b)->qs;
        __m256i sc16, mn16 = _mm256_setzero_si256(), hm = _mm256_setzero_si256();
        float d, dmin = 0.0f;
        if (Q3) {
            const kern_block_q3_k_t *b3 = (const kern_block_q3_k_t *)b;
            sc16 = _mm256_cvtepi8_epi16(q3_k_scales(b3->scales));
            hm = _mm256_loadu_si256((const __m256i *)b3->hmask);
            d = h2f(b3->d);
        } else {
            const kern_block_q2_k_t *b2 = (const kern_block_q2_k_t *)b;
            const __m128i sm = _mm_loadu_si128((const __m128i *)b2->scales);
            sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
            mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
            d = h2f(b2->d), dmin = h2f(b2->dmin);
        }
        __m256i sumi[KQ_TILE];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            /* scales 8h .. 8h + 7 in both lanes */
            const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                                  : _mm256_permute2x128_si256(sc16, sc16, 0x00);
#pragma GCC unroll 16
            for (int k = 0; k < 4; k++) {
                const int g = 4 * h + k; /* 32-weight group */
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), m2);
                if (Q3) { /* bit g of hmask to bit 2 */
                    const __m256i hb =
                        g < 2 ? _mm256_slli_epi16(hm, 2 - g) : _mm256_srli_epi16(hm, g - 2);
                    q = _mm256_or_si256(q, _mm256_and_si256(hb, four));
                }
                /* scale 2k of the half in the low lane, 2k + 1 in the high */
                const __m256i sc = _mm256_shuffle_epi8(
                    sch, _mm256_set_m128i(_mm256_castsi256_si128(bcast16_mask(2 * k + 1)),
                                          _mm256_castsi256_si128(bcast16_mask(2 * k))));
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(xs[t][i].qs + 32 * g));
                    sumi[t] = _mm256_add_epi32(sumi[t],
                                               _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), sc));
                }
            }
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const kern_block_q8_k_t *x = &xs[t][i];
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x->bsums);
            if (Q3) { /* the -4: 4 * sum of sc_g * bsum_g */
                const __m256i off = _mm256_madd_epi16(sc16, bs);
                sumi[t] = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(off, 2));
            } else {
                accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * x->d),
                                          _mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, bs)), accm[t]);
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        out[t] = Q3 ? hsum8(acc[t]) : hsum8(acc[t]) - hsum8(accm[t]);
}

/* The 32 quants of a Q5_0/Q5_1 block as unsigned bytes 0..31 in weight order: the
 * nibbles (low ones are weights 0..15) plus the fifth bits of qh (bit j: weight j),
 * spread to one byte each by a byte shuffle, a bit mask and a compare. */
static inline __m256i q5_quants(const uint8_t *qs, const uint8_t *qh4)
{
    __m256i nib = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    nib = _mm256_and_si256(_mm256_srlv_epi64(nib, _mm256_setr_epi64x(0, 0, 4, 4)),
                           _mm256_set1_epi8(0x0f));
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    const __m256i spread =
        _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                            _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                             2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
}

/* Row r of a Q5_0 or Q5_1 job against every token (Q8_0 activations): per block the
 * unsigned quants meet the activation bytes through maddubs; Q5_0's -16 offset is
 * 16 * d_w * d_x * sum(x) = 2 * d_w * XS, Q5_1's min m * d_x * sum(x) = m * XS / 8. */
static void q5_row(const kern_job_t *j, size_t r)
{
    const size_t nb = j->cols / KERN_QK;
    const int q51 = j->type == KERN_Q5_1;
    const uint8_t *w = (const uint8_t *)j->W + r * j->row_bytes;
    const size_t bb = q51 ? sizeof(kern_block_q5_1_t) : sizeof(kern_block_q5_0_t);
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < j->n; b++) {
        const int8_t *xq = j->XQ + b * j->cols;
        const float *xd = j->XD + b * nb, *xs = j->XS + b * nb;
        __m256 acc = _mm256_setzero_ps();
        float off = 0.0f;
        for (size_t i = 0; i < nb; i++) {
            const uint8_t *blk = w + i * bb;
            kern_f16_t dh, mh = 0;
            memcpy(&dh, blk, 2);
            if (q51) memcpy(&mh, blk + 2, 2);
            const uint8_t *qh = blk + (q51 ? 4 : 2), *qs = qh + 4;
            const __m256i q = q5_quants(qs, qh);
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + i * KERN_QK));
            const __m256i sumi = _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), ones);
            const float dw = h2f(dh);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * xd[i]), _mm256_cvtepi32_ps(sumi), acc);
            off += q51 ? h2f(mh) * xs[i] * 0.125f : -2.0f * dw * xs[i];
        }
        j->Y[b * j->rows + r] = hsum8(acc) + off;
    }
}

/* Rows [r0, r1) against all tokens, KQ_TILE tokens per pass. */
static void kq_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    const size_t nb = j->cols / KERN_QK_K;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)j->W + r * j->row_bytes;
        for (size_t b = 0; b < j->n; b += KQ_TILE) {
            const int T = j->n - b < KQ_TILE ? (int)(j->n - b) : KQ_TILE;
            const kern_block_q8_k_t *xs[KQ_TILE];
            float out[KQ_TILE];
            for (int t = 0; t < T; t++)
                xs[t] = j->XK + (b + (size_t)t) * nb;
            if (j->type == KERN_Q2_K) {
#define CALL(n) dot_k23_tile(w, nb, 0, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else if (j->type == KERN_Q3_K) {
#define CALL(n) dot_k23_tile(w, nb, 1, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else if (j->type == KERN_Q6_K) {
#define CALL(n) dot_q6_k_tile((const kern_block_q6_k_t *)w, nb, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else if (j->type == KERN_Q5_K) {
#define CALL(n) dot_k45_tile(w, nb, 1, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else {
#define CALL(n) dot_k45_tile(w, nb, 0, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            }
            for (int t = 0; t < T; t++)
                j->Y[(b + (size_t)t) * j->rows + r] = out[t];
        }
    }
}

/* ------------------------------------------- AVX-512 VNNI, repacked rows ---- */

/* Repacked K-quant rows (KERN_Q4_K_X16 ..., layouts in kquants.c): a 64-byte load holds
 * 4 quants of each of 16 rows, dpbusd multiplies them by 4 broadcast activation quants
 * and sums each row's 4 products into its own 32-bit lane, so one sub-block's integer
 * dot for 16 rows is 8 (Q4_K/Q5_K) or 4 (Q6_K) instructions; a sub-block scale is one
 * 32-bit multiply per 16 rows, and the f32 scaling one multiply-add per super-block
 * per 16 rows. The unpacking (nibbles, fifth and high bits) is done once per group for
 * a tile of up to KQ_TILE tokens. */
#define VNNI_TARGET                                                                                \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")))

static inline VNNI_TARGET __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* (a & c) | b, and a | (b & c), bitwise: vpternlogd truth tables */
#define TL_AC_OR_B 0xEC
#define TL_A_OR_BC 0xF8

/* The 8 six-bit values (scales, or mins) of each of 16 rows as bytes: dword l of
 * out[0] holds values 0..3 of row l, of out[1] values 4..7. nib: dword l the low 4
 * bits of value j at bit 4j; hb: dword l their top 2 bits at bit hb0 + 2j. multishift
 * picks 8 bits at any offset of each 64-bit lane (two rows): offsets 4j for the
 * nibbles, hb0 + 2j - 4 (mod 64) for the top bits, which puts them at bits 4..5. */
static inline VNNI_TARGET void k4_values(__m512i nib, __m512i hb, int hb0, __m512i out[2])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 16
    for (int h = 0; h < 2; h++) {
        uint64_t cn = 0, ch = 0;
#pragma GCC unroll 16
        for (int k = 0; k < 8; k++) {
            const int row = k / 4, j = 4 * h + k % 4;
            cn |= (uint64_t)(32 * row + 4 * j) << (8 * k);
            ch |= (uint64_t)((32 * row + hb0 + 2 * j - 4 + 64) % 64) << (8 * k);
        }
        const __m512i lo = _mm512_multishift_epi64_epi8(_mm512_set1_epi64((long long)cn), nib);
        const __m512i hi = _mm512_multishift_epi64_epi8(_mm512_set1_epi64((long long)ch), hb);
        out[h] = _mm512_ternarylogic_epi32(lo, _mm512_and_si512(hi, m30), m4, TL_AC_OR_B);
    }
}

/* Byte k of every dword of v, zero-extended to the dword (16 rows' value k). */
static inline VNNI_TARGET __m512i dword_byte(__m512i v, int k)
{
    return _mm512_maskz_permutexvar_epi8(
        0x1111111111111111ull << 0,
        _mm512_add_epi32(_mm512_set1_epi32(k), _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 32,
                                                                 36, 40, 44, 48, 52, 56, 60)),
        v);
}

/* Bytes k and k + 1 of every dword as its two 16-bit halves (pairs of mins). */
static inline VNNI_TARGET __m512i dword_pair(__m512i v, int k)
{
    const __m512i base = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60),
        _mm512_set1_epi32(0x10001));
    const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(k | (k + 1) << 16));
    return _mm512_maskz_permutexvar_epi8(0x5555555555555555ull, idx, v);
}

/* One group of 16 Q4_K (HI5: Q5_K) rows of nb super-blocks at g against T tokens:
 * out[16 t + l] = dot(row l, token t). Per 64 weights each quant vector is loaded once
 * for its two sub-blocks; with one or two tokens each sub-block's dot runs in two
 * chains (even and odd slices) so the dpbusd latency overlaps. */
static inline VNNI_TARGET __attribute__((always_inline)) void
k45_group_vnni(const uint8_t *g, size_t nb, const int HI5, const kern_block_q8_k_t *const *xs,
               const int T, float *out)
{
    const size_t gb = KERN_X16_ROWS * (HI5 ? sizeof(kern_block_q5_k_t) : sizeof(kern_block_q4_k_t));
    const int P = T <= 2 ? 2 : 1; /* chains per sub-block */
    const __m512i m4 = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
    __m512 acc[KQ_TILE], accm[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps(), accm[t] = _mm512_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = g + i * gb;
        if (T <= 2) /* decode streams W: the hardware prefetcher alone falls short */
            for (size_t o = 0; o < gb; o += 64)
                _mm_prefetch((const char *)b + KQ_PF_AHEAD + o, _MM_HINT_T0);
        const uint8_t *qs = b + 256 + (HI5 ? 512 : 0);
        const __m512i HB = _mm512_loadu_si512(b + 192);
        __m512i sc[2], mn[2];
        k4_values(_mm512_loadu_si512(b + 64), HB, 0, sc);
        k4_values(_mm512_loadu_si512(b + 128), HB, 16, mn);
        __m512i sumi[KQ_TILE], summ[KQ_TILE];
        int32_t pairs[KQ_TILE][4];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            sumi[t] = _mm512_setzero_si512(), summ[t] = _mm512_setzero_si512();
            /* the 8 sub-block sums of the activations, two per dword (the mins' pairs) */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)xs[t][i].bsums);
            _mm_storeu_si128((__m128i *)pairs[t], _mm_hadd_epi16(_mm256_castsi256_si128(bs),
                                                                 _mm256_extracti128_si256(bs, 1)));
        }
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            __m512i al[KQ_TILE][2], ah[KQ_TILE][2];
#pragma GCC unroll 16
            for (int t = 0; t < T; t++)
#pragma GCC unroll 16
                for (int e = 0; e < P; e++)
                    al[t][e] = ah[t][e] = _mm512_setzero_si512();
#pragma GCC unroll 16
            for (int s = 0; s < 8; s++) {
                const int q = 8 * c + s;
                const __m512i Q = _mm512_loadu_si512(qs + 64 * q);
                __m512i lo = _mm512_and_si512(Q, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(Q, 4), m4);
                if (HI5) {
                    const __m512i H = _mm512_loadu_si512(b + 256 + 64 * (q / 4));
                    lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi16(H, (unsigned)(4 - q % 4)),
                                                   m10, TL_A_OR_BC);
                    hi = _mm512_ternarylogic_epi32(hi, _mm512_srli_epi16(H, (unsigned)(q % 4)), m10,
                                                   TL_A_OR_BC);
                }
                const int e = s % P;
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const int8_t *x = xs[t][i].qs + 64 * c + 4 * s;
                    al[t][e] = _mm512_dpbusd_epi32(al[t][e], lo, bcast4(x));
                    ah[t][e] = _mm512_dpbusd_epi32(ah[t][e], hi, bcast4(x + 32));
                }
            }
            const __m512i sl = dword_byte(sc[c / 2], 2 * (c % 2));
            const __m512i sh = dword_byte(sc[c / 2], 2 * (c % 2) + 1);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                __m512i l = al[t][0], h = ah[t][0];
                if (P == 2) l = _mm512_add_epi32(l, al[t][1]), h = _mm512_add_epi32(h, ah[t][1]);
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_add_epi32(_mm512_mullo_epi32(l, sl),
                                                                     _mm512_mullo_epi32(h, sh)));
            }
        }
/* mins: pairs (m_2k, m_2k+1) as 16-bit halves of each lane, one dpwssd per pair */
#pragma GCC unroll 16
        for (int k = 0; k < 4; k++) {
            const __m512i mp = dword_pair(mn[k / 2], 2 * (k % 2));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++)
                summ[t] = _mm512_dpwssd_epi32(summ[t], mp, _mm512_set1_epi32(pairs[t][k]));
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 32)));
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const __m512 xd = _mm512_set1_ps(xs[t][i].d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(d, xd), acc[t]);
            accm[t] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(summ[t]), _mm512_mul_ps(dmin, xd), accm[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + 16 * t, _mm512_sub_ps(acc[t], accm[t]));
}

/* The same for 16 Q6_K rows. Slice s (weights 4s..4s+3, sub-block s / 4) is nibble
 * s / 32 of low vector s % 32 and bits 2 (s / 16) of high vector s % 16, so sub-blocks
 * g, g + 4, g + 8 and g + 12 share their vectors and are done together (four
 * independent chains). The -32 offset starts each sub-block's dot at -32 * bsum. */
static inline VNNI_TARGET __attribute__((always_inline)) void
q6_group_vnni(const uint8_t *g, size_t nb, const kern_block_q8_k_t *const *xs, const int T,
              float *out)
{
    const size_t gb = KERN_X16_ROWS * sizeof(kern_block_q6_k_t);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = g + i * gb;
        if (T <= 2)
            for (size_t o = 0; o < gb; o += 64)
                _mm_prefetch((const char *)b + KQ_PF_AHEAD + o, _MM_HINT_T0);
        const uint8_t *ql = b + 288, *qh = b + 2336;
        __m512i sumi[KQ_TILE];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int g0 = 0; g0 < 4; g0++) {
            __m512i a[KQ_TILE][4];
#pragma GCC unroll 16
            for (int t = 0; t < T; t++)
#pragma GCC unroll 16
                for (int u = 0; u < 4; u++)
                    a[t][u] = _mm512_set1_epi32(-32 * xs[t][i].bsums[g0 + 4 * u]);
#pragma GCC unroll 16
            for (int k = 0; k < 4; k++) {
                const int p = 4 * g0 + k; /* slices p, p + 16, p + 32, p + 48 */
                const __m512i H = _mm512_loadu_si512(qh + 64 * p);
                const __m512i L0 = _mm512_loadu_si512(ql + 64 * p);
                const __m512i L1 = _mm512_loadu_si512(ql + 64 * (p + 16));
                __m512i v[4];
                v[0] = _mm512_ternarylogic_epi32(_mm512_and_si512(L0, m4), _mm512_slli_epi16(H, 4),
                                                 m30, TL_A_OR_BC);
                v[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(L1, m4), _mm512_slli_epi16(H, 2),
                                                 m30, TL_A_OR_BC);
                v[2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(L0, 4), m4), H,
                                                 m30, TL_A_OR_BC);
                v[3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(L1, 4), m4),
                                                 _mm512_srli_epi16(H, 2), m30, TL_A_OR_BC);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++)
#pragma GCC unroll 16
                    for (int u = 0; u < 4; u++)
                        a[t][u] = _mm512_dpbusd_epi32(a[t][u], v[u],
                                                      bcast4(xs[t][i].qs + 4 * (p + 16 * u)));
            }
#pragma GCC unroll 16
            for (int u = 0; u < 4; u++) {
                const __m512i sc = _mm512_cvtepi8_epi32(
                    _mm_loadu_si128((const __m128i *)(b + 32 + 16 * (g0 + 4 * u))));
#pragma GCC unroll 16
                for (int t = 0; t < T; t++)
                    sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(a[t][u], sc));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b));
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]),
                                     _mm512_mul_ps(d, _mm512_set1_ps(xs[t][i].d)), acc[t]);
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        _mm512_storeu_ps(out + 16 * t, acc[t]);
}

/* dot_k23_tile with 512-bit vectors, for the Q2_K/Q3_K rows (not repacked) where
 * AVX-512 is in use: one vector holds two 32-weight groups (64 weights, four
 * sub-blocks of 16, one per 128-bit lane), so per token a block is 4 maddubs and 4
 * madd instead of 8 and 8. Both halves load the same 32 quant bytes and shift them by
 * their own group's amount (vpsrlvw); the scales reach their lanes through one vpermw
 * per group pair. The same integers as the AVX2 kernel; only the f32 sums' order
 * differs. */
static inline VNNI_TARGET __attribute__((always_inline)) void
k23_tile_512(const uint8_t *w, size_t nb, const int Q3, const kern_block_q8_k_t *const *xs, int T,
             float *out)
{
    const __m512i m2 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const size_t bb = Q3 ? sizeof(kern_block_q3_k_t) : sizeof(kern_block_q2_k_t);
    __m512 acc[KQ_TILE];
    __m256 accm[KQ_TILE];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        acc[t] = _mm512_setzero_ps(), accm[t] = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = w + i * bb;
        const uint8_t *qs =
            Q3 ? ((const kern_block_q3_k_t *)b)->qs : ((const kern_block_q2_k_t *)b)->qs;
        __m256i sc16, mn16 = _mm256_setzero_si256();
        __m512i hm = _mm512_setzero_si512();
        float d, dmin = 0.0f;
        if (Q3) {
            const kern_block_q3_k_t *b3 = (const kern_block_q3_k_t *)b;
            sc16 = _mm256_cvtepi8_epi16(q3_k_scales(b3->scales));
            hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b3->hmask));
            d = h2f(b3->d);
        } else {
            const kern_block_q2_k_t *b2 = (const kern_block_q2_k_t *)b;
            const __m128i sm = _mm_loadu_si128((const __m128i *)b2->scales);
            sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
            mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
            d = h2f(b2->d), dmin = h2f(b2->dmin);
        }
        const __m512i sc512 = _mm512_zextsi256_si512(sc16);
        __m512i sumi[KQ_TILE];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int h = 0; h < 2; h++) {
            const __m512i v =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * h)));
#pragma GCC unroll 16
            for (int p = 0; p < 2; p++) {
                const int g = 4 * h + 2 * p; /* groups g (low half) and g + 1 (high half) */
                const __m512i cnt =
                    _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * (2 * p))),
                                       _mm256_set1_epi16((short)(2 * (2 * p + 1))), 1);
                __m512i q = _mm512_and_si512(_mm512_srlv_epi16(v, cnt), m2);
                if (Q3) { /* bit g (g + 1) of hmask as bit 2 */
                    const __m512i hc = _mm512_inserti64x4(_mm512_set1_epi16((short)g),
                                                          _mm256_set1_epi16((short)(g + 1)), 1);
                    const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hm, hc), one);
                    q = _mm512_or_si512(q, _mm512_slli_epi16(hb, 2));
                }
                /* lane l: scale 2g + l in all 8 slots */
                const __m512i idx = _mm512_setr_epi64(
                    0x0001000100010001ll * (2 * g), 0x0001000100010001ll * (2 * g),
                    0x0001000100010001ll * (2 * g + 1), 0x0001000100010001ll * (2 * g + 1),
                    0x0001000100010001ll * (2 * g + 2), 0x0001000100010001ll * (2 * g + 2),
                    0x0001000100010001ll * (2 * g + 3), 0x0001000100010001ll * (2 * g + 3));
                const __m512i sc = _mm512_permutexvar_epi16(idx, sc512);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const __m512i x = _mm512_loadu_si512(xs[t][i].qs + 32 * g);
                    sumi[t] = _mm512_add_epi32(sumi[t],
                                               _mm512_madd_epi16(_mm512_maddubs_epi16(q, x), sc));
                }
            }
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const kern_block_q8_k_t *x = &xs[t][i];
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x->bsums);
            if (Q3) { /* the -4: 4 * sum of sc_g * bsum_g */
                const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2);
                sumi[t] = _mm512_sub_epi32(sumi[t], _mm512_zextsi256_si512(off));
            } else {
                accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * x->d),
                                          _mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, bs)), accm[t]);
            }
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * x->d), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        out[t] = Q3 ? _mm512_reduce_add_ps(acc[t]) : _mm512_reduce_add_ps(acc[t]) - hsum8(accm[t]);
}

/* Rows [r0, r1) of a Q2_K or Q3_K job with k23_tile_512, KQ_TILE tokens per pass. */
static VNNI_TARGET void k23_rows_512(const kern_job_t *j, size_t r0, size_t r1)
{
    const size_t nb = j->cols / KERN_QK_K;
    const int q3 = j->type == KERN_Q3_K;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)j->W + r * j->row_bytes;
        for (size_t b = 0; b < j->n; b += KQ_TILE) {
            const int T = j->n - b < KQ_TILE ? (int)(j->n - b) : KQ_TILE;
            const kern_block_q8_k_t *xs[KQ_TILE];
            float out[KQ_TILE];
            for (int t = 0; t < T; t++)
                xs[t] = j->XK + (b + (size_t)t) * nb;
            if (q3) {
#define CALL(n) k23_tile_512(w, nb, 1, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else {
#define CALL(n) k23_tile_512(w, nb, 0, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            }
            for (int t = 0; t < T; t++)
                j->Y[(b + (size_t)t) * j->rows + r] = out[t];
        }
    }
}

/* Rows [r0, r1) (multiples of 16) of a repacked K-quant job: each group of 16 rows
 * against all tokens, KQ_TILE tokens per pass (the group's bytes stay in cache between
 * passes). */
static VNNI_TARGET void kq_x16_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    const size_t nb = j->cols / KERN_QK_K;
    const kern_type_t base = kern_kq_x16_base(j->type);
    const size_t gb = KERN_X16_ROWS * kern_kq_block_bytes(base);
    for (size_t g = r0 / KERN_X16_ROWS; g < r1 / KERN_X16_ROWS; g++) {
        const uint8_t *w = (const uint8_t *)j->W + g * nb * gb;
        for (size_t b = 0; b < j->n; b += KQ_TILE) {
            const int T = j->n - b < KQ_TILE ? (int)(j->n - b) : KQ_TILE;
            const kern_block_q8_k_t *xs[KQ_TILE];
            float out[KQ_TILE * KERN_X16_ROWS];
            for (int t = 0; t < T; t++)
                xs[t] = j->XK + (b + (size_t)t) * nb;
            if (base == KERN_Q6_K) {
#define CALL(n) q6_group_vnni(w, nb, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else if (base == KERN_Q5_K) {
#define CALL(n) k45_group_vnni(w, nb, 1, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            } else {
#define CALL(n) k45_group_vnni(w, nb, 0, xs, n, out)
                TILE_CASES(CALL)
#undef CALL
            }
            for (int t = 0; t < T; t++)
                memcpy(j->Y + (b + (size_t)t) * j->rows + g * KERN_X16_ROWS, out + 16 * t,
                       KERN_X16_ROWS * sizeof(float));
        }
    }
}

void kern_kq_avx2_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    if (kern_kq_x16_base(j->type)) {
        kq_x16_rows(j, r0, r1);
    } else if ((j->type == KERN_Q2_K || j->type == KERN_Q3_K) && kern_avx2_use_vnni(-1)) {
        k23_rows_512(j, r0, r1);
    } else if (kern_kq_is_k(j->type)) {
        kq_rows(j, r0, r1);
    } else if (j->type == KERN_Q5_0 || j->type == KERN_Q5_1) {
        for (size_t r = r0; r < r1; r++)
            q5_row(j, r);
    } else {
        kern_scalar_rows(j, r0, r1);
    }
}
