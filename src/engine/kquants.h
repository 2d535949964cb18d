/* kquants.h — the Q5_0/Q5_1 and K-quant (Q2_K .. Q6_K) weight types: ggml-exact
 * dequantization and reference quantization, Q8_K activations, and the scalar dot
 * products the SIMD ones (kernels_kq_avx2.c) are tested against.
 *
 * Block layouts are in kernels.h. Quantization is ggml's reference rounding
 * (quantize_row_*_ref: what llama-quantize writes when no importance matrix is given),
 * so files we quantize match llama.cpp's byte for byte; dequantization evaluates the
 * same float expressions in the same order as ggml's dequantize_row_*, so its output
 * is bit for bit ggml's. This file is compiled for baseline x86-64 (no FMA
 * contraction), as ggml's reference code is.
 */
#ifndef SY_ENGINE_KQUANTS_H
#define SY_ENGINE_KQUANTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels.h"

/* Whether t is one of this file's types (Q5_0, Q5_1, Q2_K .. Q6_K). */
int kern_kq_is_kq(kern_type_t t);
/* Whether t is a K-quant (activations in Q8_K; rows a multiple of 256). */
int kern_kq_is_k(kern_type_t t);
/* Bytes of a block and weights per block of t (one of this file's types). */
size_t kern_kq_block_bytes(kern_type_t t);
size_t kern_kq_block_len(kern_type_t t);

/* n weights (a multiple of the block length) of type t: src to f32 (bit for bit ggml's
 * dequantize_row_*), f32 to t (byte for byte ggml's quantize_row_*_ref). */
void kern_kq_dequantize_row(kern_type_t t, const void *src, float *dst, size_t n);
void kern_kq_quantize_row(kern_type_t t, const float *src, void *dst, size_t n);

/* Activations to Q8_K (n a multiple of 256): d = amax / 127, q = round(x / d) half
 * away from zero, bsums the sums of each 16 quants. */
void kern_kq_quantize_q8_k(const float *x, kern_block_q8_k_t *y, size_t n);

/* The reference dot product of one weight row of t (nb blocks) with activations:
 * Q8_K blocks xk for K-quants, Q8_0 quants xq and block scales xd for Q5_0/Q5_1. Per
 * block the integer dot (exact) is scaled in f32: d_w * d_x * sum(sc * dot)
 * - dmin_w * d_x * sum(m * bsum). */
float kern_kq_dot(kern_type_t t, const void *w, const kern_block_q8_k_t *xk, const int8_t *xq,
                  const float *xd, size_t nb);

/* The repacked layouts (KERN_Q4_K_X16, KERN_Q5_K_X16, KERN_Q6_K_X16; kquants.c spells
 * them out): the file type of a repacked type and the repacked type of a file type
 * (0 where there is none). */
kern_type_t kern_kq_x16_base(kern_type_t t);
kern_type_t kern_kq_x16_type(kern_type_t t);
/* Writes the (rows, cols) Q4_K/Q5_K/Q6_K matrix src in its repacked type into dst (the
 * same bytes). Returns 0, or -1 for another type, rows not a multiple of 16 or cols not
 * a multiple of 256. */
int kern_kq_repack(kern_type_t from, const void *src, void *dst, size_t rows, size_t cols);
/* Block i of row r of a repacked matrix W (type t, nb blocks per row) back in the file
 * type's layout, byte for byte what the file held. */
void kern_kq_x16_block(kern_type_t t, const void *W, size_t nb, size_t r, size_t i, void *out);
/* The reference dot product of row r of a repacked matrix with nb Q8_K blocks: the
 * blocks read back and kern_kq_dot's sums in the same order (so bit for bit the row-major
 * reference). */
float kern_kq_dot_x16(kern_type_t t, const void *W, size_t nb, size_t r,
                      const kern_block_q8_k_t *xk);

/* Rows [r0, r1) of a K-quant, Q5_0 or Q5_1 job with AVX2 (kernels_kq_avx2.c); other types
 * go to the reference. Called only where kernels.c saw AVX2/FMA/F16C; the repacked types
 * only where kern_avx2_use_vnni says AVX-512 VNNI is in use (Q2_K/Q3_K rows then take a
 * 512-bit variant). */
void kern_kq_avx2_rows(const kern_job_t *j, size_t r0, size_t r1);

#endif
