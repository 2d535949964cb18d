/* cmd_convert.c — `switchyard convert`: a llama2.c checkpoint and its tokenizer.bin
 * written as one GGUF file (llama architecture, tokenizer in the metadata). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "cli/cli.h"
#include "engine/convert.h"
#include "engine/model.h"

static void convert_usage(FILE *f)
{
    fprintf(f, "usage: switchyard convert IN.bin --tokenizer TOK.bin OUT.gguf\n\n"
               "Writes a llama2.c checkpoint as GGUF: llama.* hyperparameters, the vocabulary\n"
               "as tokenizer.ggml.* (spaces as U+2581, <s>/</s>, <0xXX> byte pieces), weights\n"
               "as stored (F32). Quantize the result with `switchyard quantize`.\n");
}

int cmd_convert(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        convert_usage(stdout);
        return 0;
    }
    static const struct option opts[] = {{"tokenizer", required_argument, 0, 't'}, {0, 0, 0, 0}};
    const char *tok = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        if (c == 't')
            tok = optarg;
        else {
            convert_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2 || !tok) {
        convert_usage(stderr);
        return 2;
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    char err[512];
    model_t *m;
    int rc = model_load_llama2c(in, tok, &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "convert: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    rc = convert_model_to_gguf(m, out);
    if (rc)
        fprintf(stderr, "convert: %s: %s\n", out, sy_strerror(rc));
    else
        fprintf(stderr,
                "convert: %s -> %s (dim %d, %d layers, %d heads / %d kv, vocab %d, "
                "ctx %d, %s classifier)\n",
                in, out, m->cfg.dim, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads,
                m->cfg.n_vocab, m->cfg.n_ctx, m->tied_output ? "tied" : "separate");
    model_free(m);
    return rc ? 1 : 0;
}
