/* tokjson2gguf — converts a Hugging Face tokenizer.json (BPE model) into a
 * vocabulary-only GGUF file in llama.cpp's form, so the engine's tokenizer can be
 * checked against real vocabularies.
 *
 *   tokjson2gguf TOKENIZER_JSON [TOKENIZER_CONFIG_JSON] OUT.gguf
 *
 * Writes tokenizer.ggml.model ("gpt2" for byte-level BPE, "llama" for a BPE with
 * byte fallback such as Gemma's), tokens, token_type (added special tokens CONTROL,
 * other added tokens USER_DEFINED, <0xXX> BYTE, the unknown token UNKNOWN, gaps
 * UNUSED), merges (also for "llama": the engine then merges by rank, as the source
 * does), pre ("llama-bpe" for the Llama-3 split pattern, "qwen2" for the one that
 * takes single digits), add_space_prefix, bos/eos/unknown ids and add_bos_token from
 * the config. Exits 0, or 1 with a message. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = mem_alloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    cJSON *j = cJSON_Parse(b);
    mem_free(b);
    return j;
}

static int die(const char *msg, const char *arg)
{
    fprintf(stderr, "tokjson2gguf: %s%s\n", msg, arg ? arg : "");
    return 1;
}

/* A special token of the config ("bos_token": "<s>" or {"content": "<s>"}). */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The Split regex of the pre-tokenizer, searched through a Sequence. */
static const char *split_regex(const cJSON *pre)
{
    if (!pre) return NULL;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "Split")) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(pre, "pattern"), "Regex");
        return cJSON_IsString(r) ? r->valuestring : NULL;
    }
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), *x;
    cJSON_ArrayForEach(x, seq)
    {
        const char *r = split_regex(x);
        if (r) return r;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return die("usage: tokjson2gguf TOKENIZER_JSON [CONFIG] OUT.gguf", 0);
    cJSON *j = read_json(argv[1]);
    if (!j) return die("cannot read JSON from ", argv[1]);
    cJSON *cfg = argc == 4 ? read_json(argv[2]) : NULL;
    if (argc == 4 && !cfg) return die("cannot read JSON from ", argv[2]);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *mty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(mty) || strcmp(mty->valuestring, "BPE")) return die("not a BPE model", 0);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return die("no vocab or merges", 0);
    bool spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));

    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) if (x->valueint + 1 > n) n = x->valueint + 1;
    cJSON_ArrayForEach(x, added)
    {
        int id = cJSON_GetObjectItemCaseSensitive(x, "id")->valueint;
        if (id + 1 > n) n = id + 1;
    }
    if (n <= 0 || n > TOKENIZER_MAX_VOCAB) return die("vocabulary size out of range", 0);
    const char **tok = mem_calloc((size_t)n, sizeof *tok);
    int32_t *type = mem_calloc((size_t)n, sizeof *type);
    cJSON_ArrayForEach(x, vocab)
    {
        if (x->valueint < 0) return die("negative id in vocab", 0);
        tok[x->valueint] = x->string;
        type[x->valueint] = TOKENIZER_TYPE_NORMAL;
        unsigned b;
        char tail;
        if (spm && strlen(x->string) == 6 && sscanf(x->string, "<0x%2X%c", &b, &tail) == 2 &&
            tail == '>')
            type[x->valueint] = TOKENIZER_TYPE_BYTE;
    }
    cJSON_ArrayForEach(x, added)
    {
        int id = cJSON_GetObjectItemCaseSensitive(x, "id")->valueint;
        tok[id] = cJSON_GetObjectItemCaseSensitive(x, "content")->valuestring;
        type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "special"))
                       ? TOKENIZER_TYPE_CONTROL
                       : TOKENIZER_TYPE_USER;
    }
    char **gap = mem_calloc((size_t)n, sizeof *gap);
    for (int i = 0; i < n; i++)
        if (!tok[i]) {
            gap[i] = mem_alloc(32);
            snprintf(gap[i], 32, "[UNUSED_%d]", i);
            tok[i] = gap[i];
            type[i] = TOKENIZER_TYPE_UNUSED;
        }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");

    size_t nm = (size_t)cJSON_GetArraySize(merges), k = 0;
    char **mg = mem_calloc(nm ? nm : 1, sizeof *mg);
    cJSON_ArrayForEach(x, merges)
    {
        if (cJSON_IsString(x)) {
            mg[k++] = mem_strdup(x->valuestring);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2) {
            const char *a = cJSON_GetArrayItem(x, 0)->valuestring,
                       *b = cJSON_GetArrayItem(x, 1)->valuestring;
            size_t la = strlen(a), lb = strlen(b);
            mg[k] = mem_alloc(la + lb + 2);
            memcpy(mg[k], a, la);
            mg[k][la] = ' ';
            memcpy(mg[k] + la + 1, b, lb + 1);
            k++;
        } else {
            return die("a merge is neither \"a b\" nor [a, b]", 0);
        }
    }

    int ids[3] = {-1, -1, -1};
    const char *names[3] = {config_token(cfg, "bos_token"), config_token(cfg, "eos_token"),
                            cJSON_IsString(unk) ? unk->valuestring : NULL};
    for (int i = 0; i < n; i++)
        for (int q = 0; q < 3; q++)
            if (names[q] && ids[q] < 0 && !strcmp(tok[i], names[q])) ids[q] = i;
    if (ids[2] >= 0) type[ids[2]] = TOKENIZER_TYPE_UNKNOWN;

    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    const char *re = split_regex(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
    const char *pre = "default";
    if (re && strstr(re, "\\p{N}{1,3}"))
        pre = "llama-bpe";
    else if (re && strstr(re, "\\p{N}|"))
        pre = "qwen2";
    gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, (size_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, type, (size_t)n);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mg, k);
    if (spm) {
        /* A normalizer that prepends ▁ is SentencePiece's add_dummy_prefix. */
        char *norm = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "normalizer"));
        gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix",
                             norm && strstr(norm, "\"Prepend\""));
        free(norm);
    }
    if (ids[0] >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)ids[0]);
    if (ids[1] >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)ids[1]);
    if (ids[2] >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)ids[2]);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    if (cJSON_IsBool(ab)) gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", cJSON_IsTrue(ab));
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(tmpl)) gguf_writer_set_str(w, "tokenizer.chat_template", tmpl->valuestring);
    int rc = gguf_writer_write(w, argv[argc - 1]);
    if (rc) fprintf(stderr, "tokjson2gguf: cannot write %s\n", argv[argc - 1]);
    gguf_writer_free(w);
    for (size_t i = 0; i < k; i++)
        mem_free(mg[i]);
    for (int i = 0; i < n; i++)
        mem_free(gap[i]);
    mem_free(mg);
    mem_free(gap);
    mem_free(tok);
    mem_free(type);
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return rc ? 1 : 0;
}
