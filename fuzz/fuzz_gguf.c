/* fuzz_gguf.c — libFuzzer target for the GGUF reader and the tokenizer built from its
 * metadata: any input must be accepted or refused with an error, never crash. */
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_t *g;
    char err[256];
    if (gguf_open_mem(data, size, &g, err, sizeof err) != 0) return 0;
    /* Touch everything the reader vouched for. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        const uint8_t *p = g->tensors[i].data;
        if (g->tensors[i].nbytes) sink ^= p[0] ^ p[g->tensors[i].nbytes - 1];
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        const gguf_kv_t *kv = &g->kv[i];
        if (kv->type != GGUF_TYPE_ARRAY) continue;
        for (uint64_t k = 0; k < kv->arr.n && k < 64; k++) {
            if (kv->arr.type == GGUF_TYPE_STRING) {
                size_t n;
                const char *s = gguf_arr_str(&kv->arr, k, &n);
                if (n) sink ^= (uint8_t)s[n - 1];
            } else if (kv->arr.type == GGUF_TYPE_F32) {
                sink ^= (uint8_t)gguf_arr_f32(&kv->arr, k);
            } else if (kv->arr.type != GGUF_TYPE_ARRAY && kv->arr.type != GGUF_TYPE_F64) {
                sink ^= (uint8_t)gguf_arr_int(&kv->arr, k);
            }
        }
    }
    tokenizer_t *t;
    if (tokenizer_from_gguf(g, &t, err, sizeof err) == 0) {
        int ids[64];
        tokenizer_encode(t, "Hello world <s>", 15, true, true, ids, 64);
        tokenizer_free(t);
    }
    (void)sink;
    gguf_free(g);
    return 0;
}
