/* tokenize — token ids of texts under a GGUF vocabulary, for comparison with a
 * reference tokenizer.
 *
 *   tokenize VOCAB.gguf TEXTS.json
 *   tokenize VOCAB.gguf --chat CONTEXT.json
 *
 * TEXTS.json is a JSON array of strings; prints one JSON array of ids per text, one
 * per line, tokenized without BOS and without parsing special pieces (user text).
 * With --chat, renders the file's tokenizer.chat_template with CONTEXT.json (as the
 * engine does: the vocabulary's bos/eos pieces trusted, everything else request
 * text) and prints {"ids": [...], "control": [...], "control_unsafe": [...]}: the
 * prompt's ids, its control ids, and the control ids a tokenization that parses
 * special pieces over the whole text would give. Exits 0, or 1 with a message. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "engine/gguf.h"
#include "engine/jinja.h"
#include "engine/tokenizer.h"

/* Prints "[ids of type CONTROL]" of ids[0..n). */
static void print_control(const tokenizer_t *t, const int *ids, int n)
{
    putchar('[');
    for (int i = 0, k = 0; i < n; i++)
        if (tokenizer_type(t, ids[i]) == TOKENIZER_TYPE_CONTROL) printf(k++ ? ",%d" : "%d", ids[i]);
    putchar(']');
}

/* --chat: render the vocabulary's template with ctx and tokenize as the engine does. */
static int chat(const gguf_t *g, const tokenizer_t *t, cJSON *ctx)
{
    const char *src;
    size_t sl;
    char err[512];
    if (gguf_get_str(g, "tokenizer.chat_template", &src, &sl)) {
        fprintf(stderr, "tokenize: the vocabulary has no chat template\n");
        return 1;
    }
    jinja_tmpl_t *tm;
    if (jinja_parse(src, sl, &tm, err, sizeof err)) {
        fprintf(stderr, "tokenize: %s\n", err);
        return 1;
    }
    cJSON *trusted = cJSON_CreateObject();
    int bos = tokenizer_bos(t), eos = tokenizer_eos(t);
    cJSON_AddStringToObject(trusted, "bos_token", bos >= 0 ? tokenizer_piece(t, bos) : "");
    cJSON_AddStringToObject(trusted, "eos_token", eos >= 0 ? tokenizer_piece(t, eos) : "");
    jinja_out_t o;
    jinja_out_init(&o, 16u << 20);
    int rc = jinja_render(tm, ctx, trusted, NULL, &o, err, sizeof err);
    cJSON_Delete(trusted);
    jinja_free(tm);
    if (rc) {
        fprintf(stderr, "tokenize: %s\n", err);
        jinja_out_deinit(&o);
        return 1;
    }
    tokenizer_span_t *sp = mem_alloc((o.n_spans + 1) * sizeof *sp);
    for (size_t i = 0; i < o.n_spans; i++)
        sp[i] = (tokenizer_span_t){o.spans[i].off, o.spans[i].len};
    int cap = (int)o.text.len + 8;
    int *ids = mem_alloc((size_t)cap * sizeof *ids), *un = mem_alloc((size_t)cap * sizeof *un);
    const char *txt = o.text.data ? o.text.data : "";
    int n = tokenizer_encode_spans(t, txt, o.text.len, false, true, sp, o.n_spans, ids, cap);
    int m = tokenizer_encode(t, txt, o.text.len, false, true, un, cap);
    printf("{\"ids\":[");
    for (int i = 0; i < n && i < cap; i++)
        printf(i ? ",%d" : "%d", ids[i]);
    printf("],\"control\":");
    print_control(t, ids, n < cap ? n : cap);
    printf(",\"control_unsafe\":");
    print_control(t, un, m < cap ? m : cap);
    printf("}\n");
    mem_free(ids);
    mem_free(un);
    mem_free(sp);
    jinja_out_deinit(&o);
    return 0;
}

int main(int argc, char **argv)
{
    bool chat_mode = argc == 4 && !strcmp(argv[2], "--chat");
    if (argc != 3 && !chat_mode) {
        fprintf(stderr, "usage: tokenize VOCAB.gguf TEXTS.json | --chat CONTEXT.json\n");
        return 1;
    }
    char err[256];
    gguf_t *g;
    tokenizer_t *t;
    if (gguf_open(argv[1], &g, err, sizeof err) || tokenizer_from_gguf(g, &t, err, sizeof err)) {
        fprintf(stderr, "tokenize: %s\n", err);
        return 1;
    }
    FILE *f = fopen(argv[argc - 1], "rb");
    if (!f) {
        fprintf(stderr, "tokenize: cannot open %s\n", argv[argc - 1]);
        tokenizer_free(t);
        gguf_free(g);
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
    if (chat_mode) {
        int rc = cJSON_IsObject(texts) ? chat(g, t, texts) : 1;
        if (!cJSON_IsObject(texts)) fprintf(stderr, "tokenize: %s is not a JSON object\n", argv[3]);
        cJSON_Delete(texts);
        tokenizer_free(t);
        gguf_free(g);
        return rc;
    }
    gguf_free(g);
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
