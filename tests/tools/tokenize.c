/* tokenize — token ids of texts under a GGUF vocabulary, for comparison with a
 * reference tokenizer.
 *
 *   tokenize VOCAB.gguf TEXTS.json
 *
 * TEXTS.json is a JSON array of strings; prints one JSON array of ids per text, one
 * per line, tokenized without BOS and without parsing special pieces (user text).
 * Exits 0, or 1 with a message. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tokenize VOCAB.gguf TEXTS.json\n");
        return 1;
    }
    char err[256];
    gguf_t *g;
    tokenizer_t *t;
    if (gguf_open(argv[1], &g, err, sizeof err) || tokenizer_from_gguf(g, &t, err, sizeof err)) {
        fprintf(stderr, "tokenize: %s\n", err);
        return 1;
    }
    gguf_free(g);
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "tokenize: cannot open %s\n", argv[2]);
        tokenizer_free(t);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = mem_alloc((size_t)n + 1);
    b[fread(b, 1, (size_t)n, f)] = 0;
    fclose(f);
    cJSON *texts = cJSON_Parse(b);
    mem_free(b);
    if (!cJSON_IsArray(texts)) {
        fprintf(stderr, "tokenize: %s is not a JSON array\n", argv[2]);
        tokenizer_free(t);
        cJSON_Delete(texts);
        return 1;
    }
    int cap = 1 << 16;
    int *ids = mem_alloc((size_t)cap * sizeof *ids);
    const cJSON *x;
    cJSON_ArrayForEach(x, texts)
    {
        const char *s = cJSON_IsString(x) ? x->valuestring : "";
        size_t len = strlen(s);
        int k = tokenizer_encode(t, s, len, false, false, ids, cap);
        if (k > cap) {
            cap = k;
            ids = mem_realloc(ids, (size_t)cap * sizeof *ids);
            k = tokenizer_encode(t, s, len, false, false, ids, cap);
        }
        putchar('[');
        for (int i = 0; i < k; i++)
            printf(i ? ",%d" : "%d", ids[i]);
        puts("]");
    }
    mem_free(ids);
    cJSON_Delete(texts);
    tokenizer_free(t);
    return 0;
}
