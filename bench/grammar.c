/* grammar.c — what constrained decoding costs.
 *
 *   grammar [--shared DIR] [--runs N]
 *
 * Table 1: stories260K decode tokens/s free, under "any JSON object" and under a
 * nested schema (same prompt, sampler and budget; the runs alternate). The model is
 * tiny (a forward pass is ~0.2 ms), so this is the mask's worst case relative to
 * the model.
 * Table 2: the mask alone on a 32,000-token vocabulary (ggml-vocab-llama-spm.gguf) at
 * typical states, in microseconds per step: the cost a 7B-class vocabulary adds to
 * every decode step whatever the model size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/grammar.h"
#include "engine/jsonschema.h"
#include "engine/tokenizer.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
    "\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"address\":{"
    "\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"zip\":{\"type\":"
    "\"integer\"}}}},\"required\":[\"name\",\"age\",\"tags\",\"address\"]}";

/* Decode tokens/s of one configuration over `runs` generations. */
static double decode_rate(engine_session_t *s, const int *ids, int n, const grammar_t *g, int runs,
                          int *tokens)
{
    double ms = 0;
    long tok = 0;
    for (int r = 0; r < runs; r++) {
        engine_gen_params_t gp = {.max_tokens = 256, .grammar = g};
        sample_params_default(&gp.sample);
        gp.sample.seed = (uint64_t)r;
        engine_session_reset(s);
        engine_gen_result_t res;
        if (engine_generate(s, ids, n, &gp, NULL, NULL, &res)) return 0;
        ms += res.decode_ms;
        tok += res.n_generated;
    }
    *tokens = (int)tok;
    return ms > 0 ? 1e3 * (double)tok / ms : 0;
}

static int table_stories(const char *shared, int runs)
{
    char bin[600], tokp[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tokp, sizeof tokp, "%s/data/models/llama2c/tok512.bin", shared);
    engine_t *e;
    if (engine_load(bin, tokp, &e, err, sizeof err)) {
        printf("stories260K: %s (skipped)\n", err);
        return 0;
    }
    grammar_t *obj = grammar_new_json_object(), *sch = NULL;
    if (jsonschema_compile(SCHEMA, strlen(SCHEMA), false, &sch, err, sizeof err)) {
        printf("schema: %s\n", err);
        return 1;
    }
    engine_session_t *s = engine_session_new(e, NULL);
    int ids[16];
    int n = engine_tokenize(e, "Once upon a time", 16, true, false, ids, 16);
    double rate[3] = {0}, best[3] = {0};
    int toks[3] = {0};
    const grammar_t *gs[3] = {NULL, obj, sch};
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 3; k++) {
            rate[k] = decode_rate(s, ids, n, gs[k], runs, &toks[k]);
            if (rate[k] > best[k]) best[k] = rate[k];
        }
    static const char *names[] = {"free text", "json_object", "json_schema (nested)"};
    printf("stories260K (vocab 512), 256-token budget, %d generations per row, best of 3 "
           "alternating rounds\n",
           runs);
    printf("%-22s %12s %10s %10s\n", "decoding", "tokens/s", "vs free", "tokens");
    for (int k = 0; k < 3; k++)
        printf("%-22s %12.0f %9.2fx %10d\n", names[k], best[k], best[k] / best[0], toks[k]);
    engine_session_free(s);
    grammar_free(obj);
    grammar_free(sch);
    engine_free(e);
    return 0;
}

static int table_mask(const char *shared)
{
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/data/models/gguf/ggml-vocab-llama-spm.gguf", shared);
    gguf_t *gf;
    tokenizer_t *t;
    if (gguf_open(path, &gf, err, sizeof err) || tokenizer_from_gguf(gf, &t, err, sizeof err)) {
        printf("%s: %s (skipped)\n", path, err);
        return 0;
    }
    gguf_free(gf);
    double t0 = now_ms();
    grammar_vocab_t *v = grammar_vocab_new(t);
    double build = now_ms() - t0;
    grammar_t *sch = NULL;
    jsonschema_compile(SCHEMA, strlen(SCHEMA), false, &sch, err, sizeof err);
    int nv = tokenizer_n_vocab(t);
    float *logits = calloc((size_t)nv, sizeof *logits);
    static const struct {
        const char *name, *prefix;
    } states[] = {
        {"start of value", ""},
        {"after {", "{"},
        {"inside a key", "{\"na"},
        {"after a key's :", "{\"name\":"},
        {"inside a string", "{\"name\":\"Tim and"},
        {"inside an integer", "{\"name\":\"x\",\"age\":12"},
        {"inside an array", "{\"name\":\"x\",\"age\":1,\"tags\":[\"a\","},
    };
    printf("\nmask alone, %s (vocab %d; byte strings built once in %.1f ms)\n", path, nv, build);
    printf("%-20s %12s %10s\n", "state", "us/step", "allowed");
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        grammar_state_t st;
        grammar_state_init(&st, sch);
        grammar_state_feed(&st, states[i].prefix, strlen(states[i].prefix));
        int reps = 200, allowed = 0;
        double a = now_ms();
        for (int r = 0; r < reps; r++)
            allowed = grammar_mask(&st, v, 0, logits);
        double us = (now_ms() - a) * 1e3 / reps;
        printf("%-20s %12.1f %10d\n", states[i].name, us, allowed);
    }
    free(logits);
    grammar_free(sch);
    grammar_vocab_free(v);
    tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    const char *shared = "../shared";
    int runs = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: grammar [--shared DIR] [--runs N]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    int rc = table_stories(shared, runs);
    return rc ? rc : table_mask(shared);
}
