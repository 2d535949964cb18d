/* convert.h — writing a loaded model as a GGUF file (llama architecture keys, the
 * tokenizer as tokenizer.ggml.* metadata, llama.cpp tensor names).
 *
 * Tensor names written (the ones model.h reads): token_embd.weight,
 * blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_down,
 * ffn_up}.weight, output_norm.weight, and output.weight unless the classifier is tied
 * to the embedding. Weights keep their stored type (llama2.c checkpoints: F32).
 */
#ifndef SY_ENGINE_CONVERT_H
#define SY_ENGINE_CONVERT_H

#include "engine/gguf.h"
#include "engine/model.h"

/* Adds m's hyperparameters and tokenizer to w as GGUF metadata (llama.* keys,
 * general.*, tokenizer.ggml.*). file_type is general.file_type (0 all F32, 1 F16,
 * 7 Q8_0, 2 Q4_0). */
void convert_write_metadata(gguf_writer_t *w, const model_t *m, int file_type);

/* Writes m (borrowed) to path as a GGUF file with its weights as stored. Returns 0,
 * -errno or SY_EINVAL. */
int convert_model_to_gguf(const model_t *m, const char *path);

#endif
