/* convert.c — a loaded model written out as GGUF. See convert.h. */
#include "engine/convert.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"

void convert_write_metadata(gguf_writer_t *w, const model_t *m, int file_type)
{
    const model_config_t *c = &m->cfg;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", m->name);
    gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type);
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->rope_dim);
    if (c->head_dim * c->n_heads != c->dim) { /* heads pruned: no longer dim / n_heads */
        gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim);
        gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim);
    }
    gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab);

    const tokenizer_t *t = m->tok;
    int n = tokenizer_n_vocab(t);
    const char **pieces = mem_alloc((size_t)n * sizeof *pieces);
    float *scores = mem_alloc((size_t)n * sizeof *scores);
    int32_t *types = mem_alloc((size_t)n * sizeof *types);
    for (int i = 0; i < n; i++) {
        pieces[i] = tokenizer_piece(t, i);
        scores[i] = tokenizer_score(t, i);
        types[i] = tokenizer_type(t, i);
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model",
                        tokenizer_kind(t) == TOKENIZER_SPM ? "llama" : "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, (size_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, (size_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, (size_t)n);
    if (tokenizer_bos(t) >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tokenizer_bos(t));
    if (tokenizer_eos(t) >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tokenizer_eos(t));
    if (tokenizer_kind(t) == TOKENIZER_SPM) {
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
        gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    }
    if (m->chat_template) gguf_writer_set_str(w, "tokenizer.chat_template", m->chat_template);
    mem_free(pieces);
    mem_free(scores);
    mem_free(types);
}

/* Adds a matrix tensor (ne = [cols, rows]). */
static int add_matrix(gguf_writer_t *w, const char *name, const model_tensor_t *t)
{
    uint64_t ne[2] = {(uint64_t)t->cols, (uint64_t)t->rows};
    size_t nbytes = kern_row_size(t->type, (size_t)t->cols) * (size_t)t->rows;
    return gguf_writer_add_tensor(w, name, t->type, 2, ne, t->data, nbytes);
}

/* Adds an f32 vector tensor of n elements. */
static int add_vector(gguf_writer_t *w, const char *name, const float *v, int n)
{
    uint64_t ne[1] = {(uint64_t)n};
    return gguf_writer_add_tensor(w, name, KERN_F32, 1, ne, v, (size_t)n * sizeof(float));
}

int convert_model_to_gguf(const model_t *m, const char *path)
{
    int ft = m->weight_type == KERN_F32    ? 0
             : m->weight_type == KERN_F16  ? 1
             : m->weight_type == KERN_Q8_0 ? 7
                                           : 2;
    gguf_writer_t *w = gguf_writer_new(0);
    convert_write_metadata(w, m, ft);
    int rc = add_matrix(w, "token_embd.weight", &m->tok_embd);
    for (int l = 0; l < m->cfg.n_layers && !rc; l++) {
        const model_layer_t *L = &m->layers[l];
        char nm[64];
#define ADD(call, suffix)                                                                          \
    snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l);                                        \
    if (!rc) rc = call;
        ADD(add_vector(w, nm, L->attn_norm, m->cfg.dim), "attn_norm");
        ADD(add_matrix(w, nm, &L->wq), "attn_q");
        ADD(add_matrix(w, nm, &L->wk), "attn_k");
        ADD(add_matrix(w, nm, &L->wv), "attn_v");
        ADD(add_matrix(w, nm, &L->wo), "attn_output");
        ADD(add_vector(w, nm, L->ffn_norm, m->cfg.dim), "ffn_norm");
        ADD(add_matrix(w, nm, &L->w_gate), "ffn_gate");
        ADD(add_matrix(w, nm, &L->w_down), "ffn_down");
        ADD(add_matrix(w, nm, &L->w_up), "ffn_up");
#undef ADD
    }
    if (!rc) rc = add_vector(w, "output_norm.weight", m->out_norm, m->cfg.dim);
    if (!rc && !m->tied_output) rc = add_matrix(w, "output.weight", &m->output);
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}
