/* cmd_perplexity.c — `switchyard perplexity`: how well a model predicts a text.
 *
 * The text is tokenized once and cut into chunks of --ctx tokens, each scored after a
 * BOS in a fresh context (teacher-forced, batched). Perplexity = exp(mean negative
 * log likelihood) over the scored tokens. By default chunks are cut and scored as
 * llama.cpp's llama-perplexity does: only the second half of each chunk counts, the
 * first half being context, so figures compare with llama.cpp's. --all-tokens scores
 * every token of each chunk instead (lower context on average, so higher figures).
 * The layouts are engine_ppl_* in the engine.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/progress.h"
#include "cli/cli.h"
#include "engine/engine.h"

#define PPL_MAX_TEXT ((size_t)256 << 20)

static void perplexity_usage(FILE *f)
{
    fprintf(f, "usage: switchyard perplexity -m MODEL -f TEXT [options]\n\n"
               "  -m, --model PATH       GGUF file or llama2.c checkpoint\n"
               "      --tokenizer PATH   tokenizer.bin of a llama2.c checkpoint\n"
               "  -f, --file PATH        text to score\n"
               "      --ctx N            tokens per chunk, BOS included (default: the model's\n"
               "                         context, at most 512)\n"
               "      --chunks N         score only the first N chunks (default: all)\n"
               "      --all-tokens       score every token of each chunk (default: only the\n"
               "                         second half, as llama.cpp's llama-perplexity)\n"
               "  -t, --threads N        threads (default 1)\n");
}

/* Reads a whole file, capped. Returns owned bytes or NULL. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = mem_alloc(PPL_MAX_TEXT + 1);
    *len = fread(b, 1, PPL_MAX_TEXT, f);
    fclose(f);
    b[*len] = 0;
    return b;
}

int cmd_perplexity(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        perplexity_usage(stdout);
        return 0;
    }
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"tokenizer", required_argument, 0, 'T'},
        {"file", required_argument, 0, 'f'},   {"ctx", required_argument, 0, 'c'},
        {"chunks", required_argument, 0, 'k'}, {"threads", required_argument, 0, 't'},
        {"all-tokens", no_argument, 0, 'a'},   {0, 0, 0, 0}};
    const char *model = NULL, *tok = NULL, *file = NULL;
    int ctx = 0, max_chunks = 0, threads = 1, c, bad = 0;
    engine_ppl_mode_t mode = ENGINE_PPL_HALF;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'T':
            tok = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'c':
            bad = cli_int(optarg, 0, 1 << 24, &ctx);
            break;
        case 'k':
            bad = cli_int(optarg, 0, 1 << 30, &max_chunks);
            break;
        case 't':
            bad = cli_int(optarg, 1, 256, &threads);
            break;
        case 'a':
            mode = ENGINE_PPL_ALL;
            break;
        default:
            perplexity_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "perplexity: bad value '%s' for %s\n", optarg, cli_optname(argv));
            return 2;
        }
    }
    if (!model || !file || ctx < 0 || (ctx > 0 && ctx < 4) || threads < 1) {
        perplexity_usage(stderr);
        return 2;
    }
    char err[512];
    engine_t *e;
    int rc = engine_load(model, tok, &e, err, sizeof err);
    if (rc) {
        fprintf(stderr, "perplexity: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    size_t len;
    char *text = read_text(file, &len);
    if (!text) {
        fprintf(stderr, "perplexity: cannot read %s\n", file);
        engine_free(e);
        return 1;
    }
    int n_ctx = e->model->cfg.n_ctx;
    if (ctx == 0) ctx = n_ctx < 512 ? n_ctx : 512;
    if (ctx > n_ctx) ctx = n_ctx;
    /* Tokenize (no BOS: each chunk gets its own). */
    /* At most one token per byte plus the prefix space: one pass suffices. */
    int *toks = mem_alloc((len + 2) * sizeof *toks);
    int n_tok = engine_tokenize(e, text, len, false, false, toks, (int)(len + 2));
    mem_free(text);
    if (n_tok < 0) {
        fprintf(stderr, "perplexity: tokenizing %s: %s\n", file, sy_strerror(n_tok));
        mem_free(toks);
        engine_free(e);
        return 1;
    }
    int n_chunks = engine_ppl_n_chunks(n_tok, ctx, mode);
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    if (n_chunks == 0 || tokenizer_bos(e->model->tok) < 0) {
        fprintf(stderr, "perplexity: %s\n",
                n_chunks ? "the model has no BOS token" : "text shorter than one chunk");
        mem_free(toks);
        engine_free(e);
        return 1;
    }
    engine_session_t *s =
        engine_session_new(e, &(engine_session_opts_t){.n_ctx = ctx, .n_threads = threads});
    double nll = 0.0;
    long scored = 0;
    progress_t pr;
    progress_init(&pr, "perplexity", (uint64_t)n_chunks);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int ch = 0; ch < n_chunks && !rc; ch++) {
        rc = engine_ppl_chunk(s, toks, n_tok, ctx, ch, mode, &nll, &scored);
        progress_update(&pr, (uint64_t)ch + 1);
    }
    progress_finish(&pr);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc) {
        fprintf(stderr, "perplexity: %s\n", sy_strerror(rc));
    } else {
        printf("%-24s %-6s %-6s %8s %7s %6s %10s %9s\n", "model", "type", "scored", "tokens",
               "chunks", "ctx", "perplexity", "tok/s");
        printf("%-24s %-6s %-6s %8ld %7d %6d %10.4f %9.0f\n", e->model->name,
               kern_type_name(e->model->weight_type), mode == ENGINE_PPL_HALF ? "half" : "all",
               scored, n_chunks, ctx, exp(nll / (double)scored),
               secs > 0 ? (double)scored / secs : 0.0);
    }
    mem_free(toks);
    engine_session_free(s);
    engine_free(e);
    return rc ? 1 : 0;
}
