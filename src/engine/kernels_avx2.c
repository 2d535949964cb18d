/* kernels_avx2.c — AVX2/FMA/F16C versions of the matmul kernels (compiled with
 * -mavx2 -mfma -mf16c; called only after kernels.c saw those features at run time).
 *
 * Every (weight row, token tile) pair is one pass over the row: the row's blocks are
 * loaded and unpacked once and meet up to TILE tokens, so a prefill batch reads W
 * once per call and the unpacking cost is shared by the tile. Decode (one token) is
 * the TILE = 1 case; it streams W once and is bound by memory bandwidth. The VNNI code
 * takes a batch of several tiles a block of rows at a time, each tile meeting every
 * row of the block before the next tile, so a tile's activations stay in L1.
 *
 * Integer dots run through maddubs (unsigned x signed bytes to exact 16-bit pair sums)
 * and madd (to 32 bits); per block the integer sum is scaled by d_w * d_x in f32.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/kquants.h"

#define TILE            4             /* tokens per pass over a weight row (AVX2: 16 registers) */
#define PF_AHEAD        2048          /* bytes of a weight row prefetched ahead (VNNI Q4_0) */
#define TILE_VNNI       KERN_X16_TILE /* the same with AVX-512's 32 registers */
#define ROW_BLOCK_BYTES (16 * 1024)   /* W bytes that meet one token tile in turn (VNNI) */

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

static inline uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The f16 scales of 8 consecutive blocks (stride bytes apart) as f32. */
static inline __m256 load_d8(const uint8_t *p, size_t stride)
{
    __m128i v = _mm_cvtsi32_si128(ld16(p));
    v = _mm_insert_epi16(v, ld16(p + stride), 1);
    v = _mm_insert_epi16(v, ld16(p + 2 * stride), 2);
    v = _mm_insert_epi16(v, ld16(p + 3 * stride), 3);
    v = _mm_insert_epi16(v, ld16(p + 4 * stride), 4);
    v = _mm_insert_epi16(v, ld16(p + 5 * stride), 5);
    v = _mm_insert_epi16(v, ld16(p + 6 * stride), 6);
    v = _mm_insert_epi16(v, ld16(p + 7 * stride), 7);
    return _mm256_cvtph_ps(v);
}

/* A Q4_0 block's 16 bytes as 32 unsigned nibbles 0..15 in weight order (low nibbles
 * are weights 0..15, high nibbles 16..31): one broadcast load, one shift, one mask. */
static inline __m256i nibbles_q4_0(const uint8_t *qs)
{
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    b = _mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* ------------------------------------------------------------ quantized ---- */

/* Row r against tokens b0 .. b0+T-1, Q8_0 or Q4_0 weights (T is a constant at each
 * call site, so the loops over t unroll).
 *
 * Per block: Q8_0 weights go through the sign trick (|w| unsigned times x with w's
 * sign); Q4_0 weights stay unsigned nibbles q in 0..15, maddubs(q, x) cannot saturate
 * (2 * 15 * 127), and the -8 offset is applied once per block as 8 * d_w * d_x * sum(x)
 * (XS, precomputed per activation block). Scales are handled 8 blocks at a time: the
 * 8 weight scales are gathered into one vector and multiplied by the 8 activation
 * scales, and each block broadcasts its product from memory. */
static inline __attribute__((always_inline)) void quant_row_tile(const kern_job_t *j, size_t r,
                                                                 size_t b0, int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t nb = j->cols / KERN_QK;
    const int q4 = j->type == KERN_Q4_0;
    const size_t bs = q4 ? sizeof(kern_block_q4_0_t) : sizeof(kern_block_q8_0_t);
    const uint8_t *w = (const uint8_t *)j->W + r * j->row_bytes;
    const int8_t *x[TILE];
    const float *xd[TILE], *xs[TILE];
    __m256 acc[TILE], corr[TILE];
    float tail_corr[TILE];
    float sc[TILE][8] __attribute__((aligned(32)));
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
    {
        x[t] = j->XQ + (b0 + t) * j->cols;
        xd[t] = j->XD + (b0 + t) * nb;
        xs[t] = j->XS + (b0 + t) * nb;
        acc[t] = corr[t] = _mm256_setzero_ps();
        tail_corr[t] = 0.0f;
    }
    size_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        const __m256 dw = load_d8(w + i * bs, bs);
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        {
            _mm256_store_ps(sc[t], _mm256_mul_ps(dw, _mm256_loadu_ps(xd[t] + i)));
            if (q4) corr[t] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(xs[t] + i), corr[t]);
        }
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)
        {
            const uint8_t *qs = w + (i + k) * bs + 2;
            __m256i wv, aw;
            if (q4) {
                aw = wv = nibbles_q4_0(qs);
            } else {
                wv = _mm256_loadu_si256((const __m256i *)qs);
                aw = _mm256_sign_epi8(wv, wv);
            }
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[t] + (i + k) * KERN_QK));
                if (!q4) xv = _mm256_sign_epi8(xv, wv);
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xv), ones);
                acc[t] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sc[t][k]), acc[t]);
            }
        }
    }
    for (; i < nb; i++) { /* the last nb % 8 blocks */
        const uint8_t *qs = w + i * bs + 2;
        const float dw = h2f(ld16(w + i * bs));
        __m256i wv = q4 ? nibbles_q4_0(qs) : _mm256_loadu_si256((const __m256i *)qs);
        __m256i aw = q4 ? wv : _mm256_sign_epi8(wv, wv);
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x[t] + i * KERN_QK));
            if (!q4) xv = _mm256_sign_epi8(xv, wv);
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xv), ones);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[t][i]), acc[t]);
            if (q4) tail_corr[t] += dw * xs[t][i];
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
    {
        float v = hsum8(acc[t]);
        if (q4) v -= hsum8(corr[t]) + tail_corr[t];
        j->Y[(b0 + t) * j->rows + r] = v;
    }
}

/* ------------------------------------------------------ AVX-512 VNNI ---- */

/* The same computation with 512-bit vectors, two blocks per vector: dpbusd does
 * maddubs + madd in one instruction (u8 x s8 summed into int32 without saturation),
 * the two blocks' activation quants are one contiguous 64-byte load, and the two
 * scales are spread over the halves by one permute. Q8_0 weights: |w| times x negated
 * where w < 0 (a masked subtract). */
#define VNNI_TARGET                                                                                \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")))

static inline VNNI_TARGET __attribute__((always_inline)) void
quant_row_tile_vnni(const kern_job_t *j, size_t r, size_t b0, int T)
{
    const size_t nb = j->cols / KERN_QK;
    const int q4 = j->type == KERN_Q4_0;
    const size_t bs = q4 ? sizeof(kern_block_q4_0_t) : sizeof(kern_block_q8_0_t);
    const uint8_t *w = (const uint8_t *)j->W + r * j->row_bytes;
    const __m512i shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    /* bytes 0-15, 18-33, 36-51 of a 64-byte load and 0-15 of a second load 54 bytes in:
       the quants of 4 consecutive Q4_0 blocks */
    static const uint8_t gather4_bytes[64] __attribute__((aligned(64))) = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22, 23,
        24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
        48, 49, 50, 51, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79};
    const __m512i gather4 = _mm512_load_si512((const void *)gather4_bytes);
    const int8_t *x[TILE_VNNI], *xpp[TILE_VNNI];
    const float *xd[TILE_VNNI], *xs[TILE_VNNI];
    __m512 acc[TILE_VNNI];
    __m256 corr[TILE_VNNI];
    float tail[TILE_VNNI];
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
    {
        x[t] = j->XQ + (b0 + t) * j->cols;
        xpp[t] = q4 ? j->XP + (b0 + t) * j->cols : NULL;
        xd[t] = j->XD + (b0 + t) * nb;
        xs[t] = j->XS + (b0 + t) * nb;
        acc[t] = _mm512_setzero_ps();
        corr[t] = _mm256_setzero_ps();
        tail[t] = 0.0f;
    }
    /* Q4_0: the 8 scales of a group are words 0, 9, ..., 63 of its 144 bytes */
    const __m512i gather_d = _mm512_setr_epi32(0 | 9 << 16, 18 | 27 << 16, 36 | 45 << 16,
                                               54 | 63 << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i gather_d8a =
        _mm512_setr_epi32(0 | 17 << 16, 34 | 51 << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i gather_d8b =
        _mm512_setr_epi32(0, 0, 4 | 21 << 16, 38 | 55 << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    size_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 dw;
        if (q4) {
            const uint8_t *g = w + i * bs;
            /* the hardware prefetcher alone leaves the Q4_0 stream short of bandwidth */
            _mm_prefetch((const char *)g + PF_AHEAD, _MM_HINT_T0);
            _mm_prefetch((const char *)g + PF_AHEAD + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)g + PF_AHEAD + 128, _MM_HINT_T0);
            __m512i d16 = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)g), gather_d,
                                                    _mm512_loadu_si512((const void *)(g + 64)));
            dw = _mm256_cvtph_ps(_mm512_castsi512_si128(d16));
        } else { /* Q8_0: words 0, 17, ..., 119 of the group's 272 bytes, from 4 loads */
            const uint8_t *g = w + i * bs;
            __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)g), gather_d8a,
                                                   _mm512_loadu_si512((const void *)(g + 64)));
            __m512i hi =
                _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(g + 128)), gather_d8b,
                                          _mm512_loadu_si512((const void *)(g + 192)));
            dw = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_mask_mov_epi16(lo, 0xf0, hi)));
        }
        __m512 sc[TILE_VNNI];
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        {
            sc[t] = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(xd[t] + i)));
            if (q4) corr[t] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(xs[t] + i), corr[t]);
        }
        if (q4) {
            /* four blocks per vector: their 64 quant bytes gathered by one byte permute,
               low nibbles and high nibbles each meet the matching XP half */
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            {
                const uint8_t *base = w + (i + 4 * h) * bs + 2;
                __m512i a = _mm512_loadu_si512((const void *)base);
                __m512i b = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(base + 54)));
                __m512i v = _mm512_permutex2var_epi8(a, gather4, b);
                __m512i lo = _mm512_and_si512(v, mask);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
                const __m512i idx =
                    _mm512_setr_epi32(4 * h, 4 * h, 4 * h, 4 * h, 4 * h + 1, 4 * h + 1, 4 * h + 1,
                                      4 * h + 1, 4 * h + 2, 4 * h + 2, 4 * h + 2, 4 * h + 2,
                                      4 * h + 3, 4 * h + 3, 4 * h + 3, 4 * h + 3);
                _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
                {
                    const int8_t *xp = xpp[t] + (i + 4 * h) * KERN_QK;
                    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo,
                                                    _mm512_loadu_si512((const void *)xp));
                    p = _mm512_dpbusd_epi32(p, hi, _mm512_loadu_si512((const void *)(xp + 64)));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
                                             _mm512_permutexvar_ps(idx, sc[t]), acc[t]);
                }
            }
            continue;
        }
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k += 2)
        {
            const uint8_t *q0 = w + (i + k) * bs + 2, *q1 = q0 + bs;
            __m512i wv;
            __mmask64 neg = 0;
            if (q4) {
                wv = _mm512_inserti64x4(
                    _mm512_castsi256_si512(
                        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q0))),
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q1)), 1);
                wv = _mm512_and_si512(_mm512_srlv_epi64(wv, shift), mask);
            } else {
                wv = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)q0)),
                    _mm256_loadu_si256((const __m256i *)q1), 1);
                neg = _mm512_movepi8_mask(wv);
                wv = _mm512_abs_epi8(wv);
            }
            const __m512i idx = _mm512_setr_epi32(k, k, k, k, k, k, k, k, k + 1, k + 1, k + 1,
                                                  k + 1, k + 1, k + 1, k + 1, k + 1);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            {
                __m512i xv = _mm512_loadu_si512((const void *)(x[t] + (i + k) * KERN_QK));
                if (!q4) xv = _mm512_mask_sub_epi8(xv, neg, _mm512_setzero_si512(), xv);
                __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(idx, sc[t]),
                                         acc[t]);
            }
        }
    }
    for (; i < nb; i++) { /* the last nb % 8 blocks, one at a time */
        const uint8_t *qs = w + i * bs + 2;
        const float dw = h2f(ld16(w + i * bs));
        __m256i wv = q4 ? nibbles_q4_0(qs) : _mm256_loadu_si256((const __m256i *)qs);
        __m256i aw = q4 ? wv : _mm256_sign_epi8(wv, wv);
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x[t] + i * KERN_QK));
            if (!q4) xv = _mm256_sign_epi8(xv, wv);
            __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, xv);
            tail[t] += dw * xd[t][i] * hsum8(_mm256_cvtepi32_ps(p));
            if (q4) tail[t] -= dw * xs[t][i];
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
    {
        float v = _mm512_reduce_add_ps(acc[t]) + tail[t];
        if (q4) v -= hsum8(corr[t]);
        j->Y[(b0 + t) * j->rows + r] = v;
    }
}

/* Row r against the tokens b .. n-1 (fewer than TILE_VNNI). */
static VNNI_TARGET void quant_rows_vnni_rest(const kern_job_t *j, size_t r, size_t b)
{
    switch (j->n - b) {
    case 7:
        quant_row_tile_vnni(j, r, b, 7);
        break;
    case 6:
        quant_row_tile_vnni(j, r, b, 6);
        break;
    case 5:
        quant_row_tile_vnni(j, r, b, 5);
        break;
    case 4:
        quant_row_tile_vnni(j, r, b, 4);
        break;
    case 3:
        quant_row_tile_vnni(j, r, b, 3);
        break;
    case 2:
        quant_row_tile_vnni(j, r, b, 2);
        break;
    case 1:
        quant_row_tile_vnni(j, r, b, 1);
        break;
    }
}

static VNNI_TARGET void quant_rows_vnni(const kern_job_t *j, size_t r0, size_t r1)
{
    /* Batches of more than one tile go over a block of rows (ROW_BLOCK_BYTES of W) per
       token tile, so the tile's activations are reused from L1 by every row of the
       block while the block's rows stay in L2, instead of all the activations streaming
       from L2 once per row. W still comes from memory once. */
    if (j->n == 1) { /* decode: streams W */
        for (size_t r = r0; r < r1; r++)
            quant_row_tile_vnni(j, r, 0, 1);
        return;
    }
    size_t rb = j->n > TILE_VNNI ? ROW_BLOCK_BYTES / j->row_bytes : 1;
    if (rb == 0) rb = 1;
    for (size_t ra = r0; ra < r1; ra += rb) {
        size_t re = ra + rb < r1 ? ra + rb : r1;
        size_t b = 0;
        for (; b + TILE_VNNI <= j->n; b += TILE_VNNI)
            for (size_t r = ra; r < re; r++)
                quant_row_tile_vnni(j, r, b, TILE_VNNI);
        for (size_t r = ra; r < re; r++)
            quant_rows_vnni_rest(j, r, b);
    }
}

/* ---------------------------------------- repacked Q4_0 / Q8_0 (VNNI) ---- */

/* The int32 at p (4 activation quants) in every lane; as the last operand of dpbusd
 * the compiler folds it into the instruction's embedded broadcast ({1to16}), one uop
 * with its load. */
static inline VNNI_TARGET __attribute__((always_inline)) __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Group g (rows 16g .. 16g+15) of a KERN_Q4_0_X16 (q8 = 0) or KERN_Q8_0_X16 (q8 = 1)
 * matrix against the tile of T tokens from b0 (kern_job_t's XT layout: one pointer
 * reaches all T tokens' block, so the loop needs no per-token pointers). Each int32
 * lane of a vector belongs to one row, so a block is 8 dpbusd per token (4 weight
 * bytes of 16 rows times 4 broadcast activation quants each), and the block's integer
 * sum is scaled by one f32 multiply-add for 16 rows at once. Q4_0 nibbles are
 * unpacked once per block for all T tokens; Q8_0 quants are stored plus 128 and go in
 * as they are. The offset (8 or 128) is taken off in integers: each token's dot starts
 * from -8 (or -128) times the sum of its block's quants (XTI), so a token-block costs 8
 * dpbusd, one broadcast, a convert, a multiply and a multiply-add. With one or two
 * tokens the dpbusd run as two chains (latency); with more, the tokens' chains
 * interleave. A token's sums do not depend on T (integers are exact), so a token gives
 * the same bits in any tile. */
static inline VNNI_TARGET __attribute__((always_inline)) void
x16_tile(const kern_job_t *j, size_t g, size_t b0, int T, int q8)
{
    const size_t nb = j->cols / KERN_QK;
    const size_t bb = q8 ? KERN_X16_BLOCK8 : KERN_X16_BLOCK;
    const uint8_t *w = (const uint8_t *)j->W + g * nb * bb;
    const __m512i mask = _mm512_set1_epi8(0x0f);
    const int8_t *xt = j->XT + b0 * j->cols;
    const float *xd = j->XTD + b0 * nb;
    const int32_t *xi = j->XTI + b0 * nb;
    __m512 acc[TILE_VNNI];
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (size_t i = 0; i < nb; i++, w += bb, xt += T * KERN_QK, xd += T, xi += T) {
        /* W streams from memory: the hardware prefetcher alone falls short */
        for (size_t o = 0; o < bb; o += 64)
            _mm_prefetch((const char *)w + PF_AHEAD + o, _MM_HINT_T0);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w));
        __m512i v[8]; /* slices of 4 weights of the 16 rows, in weight order */
        if (q8) {
            _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) v[q] =
                _mm512_loadu_si512((const void *)(w + 32 + 64 * q));
        } else {
            _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++)
            {
                __m512i raw = _mm512_loadu_si512((const void *)(w + 32 + 64 * q));
                v[q] = _mm512_and_si512(raw, mask);
                v[q + 4] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
            }
        }
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        {
            const int8_t *xb = xt + t * KERN_QK;
            __m512i s0 = _mm512_set1_epi32(xi[t]);
            if (q8) s0 = _mm512_slli_epi32(s0, 4);
            s0 = _mm512_dpbusd_epi32(s0, v[0], bcast4(xb));
            __m512i s1 = T <= 2 ? _mm512_setzero_si512() : s0;
            s0 = _mm512_dpbusd_epi32(s0, v[1], bcast4(xb + 4));
            s0 = _mm512_dpbusd_epi32(s0, v[2], bcast4(xb + 8));
            s0 = _mm512_dpbusd_epi32(s0, v[3], bcast4(xb + 12));
            if (T > 2) s1 = s0;
            s1 = _mm512_dpbusd_epi32(s1, v[4], bcast4(xb + 16));
            s1 = _mm512_dpbusd_epi32(s1, v[5], bcast4(xb + 20));
            s1 = _mm512_dpbusd_epi32(s1, v[6], bcast4(xb + 24));
            s1 = _mm512_dpbusd_epi32(s1, v[7], bcast4(xb + 28));
            if (T <= 2) s1 = _mm512_add_epi32(s0, s1);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1),
                                     _mm512_mul_ps(dw, _mm512_set1_ps(xd[t])), acc[t]);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
        _mm512_storeu_ps(j->Y + (b0 + t) * j->rows + g * KERN_X16_ROWS, acc[t]);
}

/* Groups [g0, g1) of one type: decode walks the groups once; a batch takes each group
 * (all its blocks, 18 KiB of Q4_0 for 2048 columns, kept in L1/L2) through every
 * token tile before the next group, so W comes from memory once per call. */
static inline VNNI_TARGET __attribute__((always_inline)) void
x16_groups(const kern_job_t *j, size_t g0, size_t g1, int q8)
{
    for (size_t g = g0; g < g1; g++) {
        size_t b = 0;
        for (; b + TILE_VNNI <= j->n; b += TILE_VNNI)
            x16_tile(j, g, b, TILE_VNNI, q8);
        switch (j->n - b) {
        case 7:
            x16_tile(j, g, b, 7, q8);
            break;
        case 6:
            x16_tile(j, g, b, 6, q8);
            break;
        case 5:
            x16_tile(j, g, b, 5, q8);
            break;
        case 4:
            x16_tile(j, g, b, 4, q8);
            break;
        case 3:
            x16_tile(j, g, b, 3, q8);
            break;
        case 2:
            x16_tile(j, g, b, 2, q8);
            break;
        case 1:
            x16_tile(j, g, b, 1, q8);
            break;
        }
    }
}

VNNI_TARGET void kern_avx2_x16_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    if (j->type == KERN_Q8_0_X16)
        x16_groups(j, r0 / KERN_X16_ROWS, r1 / KERN_X16_ROWS, 1);
    else
        x16_groups(j, r0 / KERN_X16_ROWS, r1 / KERN_X16_ROWS, 0);
}

static _Atomic int vnni = -1; /* -1: not decided; atomic: the first matmul of any thread decides */

int kern_avx2_use_vnni(int on)
{
    if (vnni < 0 || on >= 0) {
        __builtin_cpu_init();
        int has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                  __builtin_cpu_supports("avx512vbmi");
        const char *e = getenv("SWITCHYARD_KERNELS"); /* "avx2": no AVX-512 */
        vnni = has && on != 0 && !(on < 0 && e && strcmp(e, "avx2") == 0);
    }
    return vnni;
}

static void quant_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    if (kern_avx2_use_vnni(-1)) {
        quant_rows_vnni(j, r0, r1);
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        size_t b = 0;
        for (; b + TILE <= j->n; b += TILE)
            quant_row_tile(j, r, b, TILE);
        switch (j->n - b) {
        case 3:
            quant_row_tile(j, r, b, 3);
            break;
        case 2:
            quant_row_tile(j, r, b, 2);
            break;
        case 1:
            quant_row_tile(j, r, b, 1);
            break;
        }
    }
}

/* ------------------------------------------------------------ F32 / F16 ---- */

static inline __attribute__((always_inline)) __m256 load8(const void *w, size_t k, int f16)
{
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const kern_f16_t *)w + k)));
    return _mm256_loadu_ps((const float *)w + k);
}

static inline __attribute__((always_inline)) float load1(const void *w, size_t k, int f16)
{
    return f16 ? h2f(((const kern_f16_t *)w)[k]) : ((const float *)w)[k];
}

#define FTILE 3 /* tokens per pass with float weights: 4 accumulators each */

/* Row r against tokens b0 .. b0+T-1 (T <= FTILE) with float weights (f16: widened on
 * load). Each token has four independent accumulators over strides of 32 (they hide
 * the FMA latency when T is 1) and is summed in the same order whatever T is, so a
 * token's output does not depend on the batch it came in: a sequence decoded in a
 * batch of sequences gets the bits it gets decoded alone, and prefill the bits of
 * token-by-token decoding. */
static inline __attribute__((always_inline)) void float_row_tile(const kern_job_t *j, size_t r,
                                                                 size_t b0, int T, int f16)
{
    const void *w = (const char *)j->W + r * j->row_bytes;
    const size_t n = j->cols;
    const float *x[FTILE];
    __m256 a0[FTILE], a1[FTILE], a2[FTILE], a3[FTILE];
    _Pragma("GCC unroll 3") for (int t = 0; t < T; t++)
    {
        x[t] = j->X + (b0 + t) * n;
        a0[t] = a1[t] = a2[t] = a3[t] = _mm256_setzero_ps();
    }
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m256 w0 = load8(w, k, f16);
        _Pragma("GCC unroll 3") for (int t = 0; t < T; t++) a0[t] =
            _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
        __m256 w1 = load8(w, k + 8, f16);
        _Pragma("GCC unroll 3") for (int t = 0; t < T; t++) a1[t] =
            _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + k + 8), a1[t]);
        __m256 w2 = load8(w, k + 16, f16);
        _Pragma("GCC unroll 3") for (int t = 0; t < T; t++) a2[t] =
            _mm256_fmadd_ps(w2, _mm256_loadu_ps(x[t] + k + 16), a2[t]);
        __m256 w3 = load8(w, k + 24, f16);
        _Pragma("GCC unroll 3") for (int t = 0; t < T; t++) a3[t] =
            _mm256_fmadd_ps(w3, _mm256_loadu_ps(x[t] + k + 24), a3[t]);
    }
    for (; k + 8 <= n; k += 8) {
        __m256 w0 = load8(w, k, f16);
        _Pragma("GCC unroll 3") for (int t = 0; t < T; t++) a0[t] =
            _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + k), a0[t]);
    }
    _Pragma("GCC unroll 3") for (int t = 0; t < T; t++)
    {
        float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0[t], a1[t]), _mm256_add_ps(a2[t], a3[t])));
        for (size_t kk = k; kk < n; kk++)
            s += load1(w, kk, f16) * x[t][kk];
        j->Y[(b0 + t) * j->rows + r] = s;
    }
}

static inline __attribute__((always_inline)) void float_rows(const kern_job_t *j, size_t r0,
                                                             size_t r1, int f16)
{
    for (size_t r = r0; r < r1; r++) {
        size_t b = 0;
        for (; b + FTILE <= j->n; b += FTILE)
            float_row_tile(j, r, b, FTILE, f16);
        switch (j->n - b) {
        case 2:
            float_row_tile(j, r, b, 2, f16);
            break;
        case 1:
            float_row_tile(j, r, b, 1, f16);
            break;
        }
    }
}

/* ============================================================ exported ==== */

void kern_avx2_rows(const kern_job_t *j, size_t r0, size_t r1)
{
    switch (j->type) {
    case KERN_F32:
        float_rows(j, r0, r1, 0);
        break;
    case KERN_F16:
        float_rows(j, r0, r1, 1);
        break;
    case KERN_Q8_0:
    case KERN_Q4_0:
        quant_rows(j, r0, r1);
        break;
    default: /* Q5_0/Q5_1 and K-quants: kernels_kq_avx2.c */
        if (kern_kq_is_kq(j->type)) {
            kern_kq_avx2_rows(j, r0, r1);
            return;
        }
        break;
    }
    if (j->type == KERN_Q4_0_X16 || j->type == KERN_Q8_0_X16) /* sent to kern_avx2_x16_rows */
        kern_scalar_rows(j, r0, r1);
}

/* ------------------------------------------------------------ attention ---- */

/* q . K row t for n rows: two accumulators per row over strides of 16 floats. */
void kern_avx2_attn_scores(const float *q, const float *K, size_t stride, int n, int hd,
                           float scale, float *out)
{
    for (int t = 0; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int i = 0;
        for (; i + 16 <= hd; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(k + i + 8), a1);
        }
        if (i < hd) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a0);
        out[t] = hsum8(_mm256_add_ps(a0, a1)) * scale;
    }
}

/* acc += w[t] * V row t, 64 floats of acc in registers per pass over the rows. */
void kern_avx2_attn_accum(float *acc, const float *w, const float *V, size_t stride, int n, int hd)
{
    for (int i0 = 0; i0 < hd; i0 += 64) {
        const int m = hd - i0 < 64 ? (hd - i0) / 8 : 8;
        __m256 a[8];
        for (int k = 0; k < m; k++)
            a[k] = _mm256_loadu_ps(acc + i0 + 8 * k);
        for (int t = 0; t < n; t++) {
            const float *v = V + (size_t)t * stride + i0;
            const __m256 wt = _mm256_set1_ps(w[t]);
            for (int k = 0; k < m; k++)
                a[k] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(v + 8 * k), a[k]);
        }
        for (int k = 0; k < m; k++)
            _mm256_storeu_ps(acc + i0 + 8 * k, a[k]);
    }
}

/* Activation quantization, 32 floats per block: d = amax / 127 (as the reference),
 * q = x / d rounded to nearest even (the reference rounds ties away from zero, so the
 * two differ by one step on exact ties), packed back into order after the saturating
 * packs interleave the 128-bit lanes. */
void kern_avx2_quantize_q8_0(const float *x, kern_block_q8_0_t *y, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t i = 0; i < n / KERN_QK; i++) {
        const float *xb = x + i * KERN_QK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                          _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_f32_to_f16(d);
        const __m256 vid = _mm256_set1_ps(id);
#define KERN_RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, vid), KERN_RND));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, vid), KERN_RND));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, vid), KERN_RND));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, vid), KERN_RND));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)y[i].qs, _mm256_permutevar8x32_epi32(p, perm));
    }
}
