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
    size_t n_kept;      /* mix: kept at Q8_0 in a Q4_0 file; K mixes: another type than
                           the file's (Q6_K/Q5_K layers, Q5_0/Q5_1/Q8_0 fallbacks) */
    size_t n_copied;    /* kept as they were */
    uint64_t bytes_in;  /* tensor bytes read */
    uint64_t bytes_out; /* tensor bytes written */
} quant_stats_t;

/* llama.cpp's file types (general.file_type) of the K-quant mixes. */
enum {
    QUANT_FTYPE_Q2_K = 10,
    QUANT_FTYPE_Q3_K_S = 11,
    QUANT_FTYPE_Q3_K_M = 12,
    QUANT_FTYPE_Q4_K_S = 14,
    QUANT_FTYPE_Q4_K_M = 15,
    QUANT_FTYPE_Q5_K_S = 16,
    QUANT_FTYPE_Q5_K_M = 17,
    QUANT_FTYPE_Q6_K = 18,
};

typedef struct quant_opts {
    kern_type_t type; /* KERN_Q8_0 or KERN_Q4_0 (ignored when ftype is set) */
    int ftype;        /* a QUANT_FTYPE_* K-quant mix, or 0 */
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

/* The K-quant mix rules of llama.cpp's llama_tensor_get_type (no importance matrix,
 * one expert, not Falcon, not a 70B), per tensor in the file's tensor order. Counters
 * of the attn_v and ffn_down matrices seen so far; n_* are the totals in the file;
 * n_gqa is the query heads per kv head (head_count / head_count_kv; 0 counts as 1). */
typedef struct quant_kmix {
    int n_attn_v, i_attn_v;
    int n_ffn_down, i_ffn_down;
    int n_gqa;
} quant_kmix_t;

/* What quant_kmix_type gives where llama.cpp writes IQ4_NL (a Q2_K or Q3_K matrix
 * whose rows are a multiple of 32 but not of 256): a type this engine does not have,
 * so the quantizer refuses the file. Not a kern_type_t any other function accepts. */
#define QUANT_TYPE_IQ4_NL ((kern_type_t)20)

/* The type of a tensor in a K-quant file of ftype (a QUANT_FTYPE_*):
 *   - not a weight matrix (norms): cur, unchanged;
 *   - output.weight (or token_embd.weight when has_output is 0): Q6_K (Q8_0 where rows
 *     are not a multiple of 256);
 *   - attn_v: Q6_K in the layers use_more_bits picks (first and last eighth, every
 *     third between) for the _M mixes; Q5_K in the first 4 layers for Q4_K_S;
 *   - ffn_down: the same layers Q6_K for _M; Q5_K in the first eighth for Q4_K_S;
 *   - fused attn_qkv: Q5_K (Q4_K_M) or Q6_K (Q5_K_M);
 *   - Q3_K_M: attn_v Q5_K in the first 2 layers, Q4_K after; ffn_down Q5_K in the
 *     first sixteenth, Q4_K after; attn_output and attn_qkv Q4_K;
 *   - Q2_K: attn_v Q4_K where n_gqa >= 4, else Q3_K; ffn_down and attn_output Q3_K;
 *   - Q3_K_S: nothing but the output differs;
 *   - every other matrix the mix's type (Q2_K .. Q6_K);
 * then, where rows are not a multiple of 256: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 * Q2_K and Q3_K -> QUANT_TYPE_IQ4_NL, and F16 where not a multiple of 32 either. pure:
 * every matrix the mix's type, the same fallbacks. Updates s. */
kern_type_t quant_kmix_type(quant_kmix_t *s, const char *name, int n_dims, const uint64_t *ne,
                            kern_type_t cur, int ftype, int has_output, int pure);
/* The main weight type of a K-quant ftype (Q2_K .. Q6_K); KERN_F32 for others. */
kern_type_t quant_ftype_base(int ftype);

/* ftype of general.file_type for a target type: 7 Q8_0, 2 Q4_0, 1 F16, 0 F32; the
 * 32-block and K types as llama.cpp numbers them (a K type alone: its _S mix). */
uint32_t quant_file_type(kern_type_t t);

#endif
