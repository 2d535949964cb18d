/* quant.h — rewriting a GGUF model with its weight matrices quantized.
 *
 * Two modes. The default (mix) is for serving: as pure below, except that a Q4_0
 * file keeps the output matrix (or the tied token embedding) and attn_v at Q8_0, and
 * its Q4_0 blocks take the scale that minimises each block's squared error rather
 * than ggml's reference rounding (same block format, any Q4_0 reader decodes it).
 * Q8_0 files are the same in both modes.
 *
 * Pure: the output is what llama.cpp's `llama-quantize --pure IN OUT q8_0|q4_0`
 * writes for the same input, byte for byte:
 *   - every tensor whose name ends in "weight", has two or more dimensions and is not
 *     a norm ("_norm.weight") is converted to the target type, the token embedding and
 *     output matrix included; a matrix whose row length is not a multiple of 32 (e.g.
 *     stories260K's ffn_down, rows of 172) becomes F16 instead;
 *   - everything else (norm vectors) is copied as is;
 *   - tensors are written in llama.cpp's loader order: those outside blk.N first, then
 *     by layer number, by name within a group; alignment 32;
 *   - metadata is copied in order, except general.alignment, with
 *     general.quantization_version = 2 and general.file_type (7 Q8_0, 2 Q4_0) moved to
 *     the end.
 * Rows are converted with kern_quantize_row, which is ggml's reference rounding; F16
 * sources are widened to f32 first. Already-quantized sources are refused, as
 * llama-quantize refuses them without --allow-requantize.
 */
#ifndef SY_ENGINE_QUANT_H
#define SY_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels.h"

typedef struct quant_stats {
    size_t n_tensors;
    size_t n_quantized; /* converted to the target type */
    size_t n_f16;       /* fell back to F16 (row length not a multiple of 32) */
    size_t n_kept;      /* mix: kept at Q8_0 in a Q4_0 file */
    size_t n_copied;    /* kept as they were */
    uint64_t bytes_in;  /* tensor bytes read */
    uint64_t bytes_out; /* tensor bytes written */
} quant_stats_t;

typedef struct quant_opts {
    kern_type_t type; /* KERN_Q8_0 or KERN_Q4_0 */
    int n_threads;    /* <= 1: one */
    int pure;         /* 1: as llama-quantize --pure; 0: the serving mix above */
} quant_opts_t;

/* Writes in_path quantized as out_path; n_threads convert rows in parallel. stats may
 * be NULL. Returns 0, -errno, or SY_EINVAL / SY_EUNSUPPORTED / SY_ECORRUPT with a
 * message in err. */
int quant_file_opts(const char *in_path, const char *out_path, const quant_opts_t *o,
                    quant_stats_t *stats, char *err, size_t errlen);
/* quant_file_opts with pure = 1. */
int quant_file(const char *in_path, const char *out_path, kern_type_t type, int n_threads,
               quant_stats_t *stats, char *err, size_t errlen);

/* Whether llama.cpp would convert a tensor of this name and shape (ne[0] = row
 * length), and to what: the target, KERN_F16 for awkward rows, or the tensor's own
 * type (returned as is) when it is not a weight matrix. */
kern_type_t quant_target_type(const char *name, int n_dims, const uint64_t *ne, kern_type_t cur,
                              kern_type_t target);

/* The mix mode's choice: quant_target_type, then Q8_0 for output.weight (or
 * token_embd.weight when has_output is 0) and *.attn_v.weight in a Q4_0 file. */
kern_type_t quant_mix_type(const char *name, int n_dims, const uint64_t *ne, kern_type_t cur,
                           kern_type_t target, int has_output);

/* ftype of general.file_type for a target type: 7 Q8_0, 2 Q4_0, 1 F16, 0 F32. */
uint32_t quant_file_type(kern_type_t t);

#endif
