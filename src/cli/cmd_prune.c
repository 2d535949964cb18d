/* cmd_prune.c — `switchyard prune`: remove FFN channels and attention heads by their
 * measured importance, optionally recover by distillation, write GGUF. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cli/cli.h"
#include "engine/prune.h"

static void prune_usage(FILE *f)
{
    fprintf(f, "usage: switchyard prune -m IN -o OUT.gguf [options]\n\n"
               "Structured pruning: each layer keeps the FFN channels and attention heads that\n"
               "contribute most to the residual stream on calibration text (mean |activation|\n"
               "times the output weights' norm), then optionally recovers by distillation\n"
               "from the unpruned model.\n\n"
               "  -m, --model PATH      model (GGUF, or llama2.c with --tokenizer)\n"
               "      --tokenizer PATH  tokenizer.bin of a llama2.c model\n"
               "  -o, --output PATH     pruned model (F32 GGUF; quantize it afterwards)\n"
               "      --ffn F           share of FFN channels removed (default 0.25)\n"
               "      --heads F         share of attention heads removed (default 0.25)\n"
               "      --calib FILE      calibration text (default: text the model samples)\n"
               "      --calib-tokens N  calibration tokens (default 4096)\n"
               "      --recover STEPS   distillation steps from the unpruned model (default 0)\n"
               "      --seed S          recovery seed (default 1)\n"
               "  -q, --quiet           no progress bar\n");
}

int cmd_prune(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        prune_usage(stdout);
        return 0;
    }
    const char *model = NULL, *tok = NULL, *out = NULL;
    prune_opts_t o;
    prune_opts_default(&o);
    enum { O_TOK = 256, O_FFN, O_HEADS, O_CALIB, O_CTOK, O_REC, O_SEED };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, O_TOK},
                                         {"output", required_argument, 0, 'o'},
                                         {"ffn", required_argument, 0, O_FFN},
                                         {"heads", required_argument, 0, O_HEADS},
                                         {"calib", required_argument, 0, O_CALIB},
                                         {"calib-tokens", required_argument, 0, O_CTOK},
                                         {"recover", required_argument, 0, O_REC},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"quiet", no_argument, 0, 'q'},
                                         {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:q", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case O_TOK:
            tok = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'q':
            o.quiet = true;
            break;
        case O_FFN:
            bad = cli_float(optarg, 0, 1, &o.ffn);
            break;
        case O_HEADS:
            bad = cli_float(optarg, 0, 1, &o.heads);
            break;
        case O_CALIB:
            o.calib = optarg;
            break;
        case O_CTOK:
            bad = cli_int(optarg, 0, 1 << 30, &o.calib_tokens);
            break;
        case O_REC:
            bad = cli_int(optarg, 0, 1 << 30, &o.recover_steps);
            break;
        case O_SEED:
            bad = cli_u64(optarg, &o.rec.seed);
            break;
        default:
            prune_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "prune: bad value '%s' for %s\n", optarg, cli_optname(argv));
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "prune: -m IN and -o OUT.gguf are required\n");
        return 2;
    }
    char err[512] = "";
    engine_t *e;
    int rc = engine_load(model, tok, &e, err, sizeof err);
    if (rc) {
        fprintf(stderr, "prune: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    prune_report_t rep;
    rc = prune_model(e, &o, out, &rep, err, sizeof err);
    if (rc) {
        fprintf(stderr, "prune: %s\n", err[0] ? err : sy_strerror(rc));
    } else {
        const model_config_t *mc = &e->model->cfg;
        fprintf(stderr,
                "prune: %s: heads %d -> %d (kv %d -> %d), FFN %d -> %d per layer, parameters "
                "%zu -> %zu (%.0f%%), importance over %d %s tokens\n",
                e->model->name, mc->n_heads, rep.n_heads, mc->n_kv_heads, rep.n_kv_heads,
                mc->hidden_dim, rep.hidden_dim, rep.params_in, rep.params_out,
                100.0 * (double)rep.params_out / (double)rep.params_in, rep.calib_tokens,
                o.calib ? "calibration" : "self-sampled");
        if (o.recover_steps)
            fprintf(stderr, "prune: recovery KL %.4f -> %.4f over %ld tokens in %.1f s\n",
                    rep.rec.kl_first, rep.rec.kl_last, rep.rec.tokens, rep.rec.seconds);
        fprintf(stderr, "prune: wrote %s\n", out);
    }
    engine_free(e);
    return rc ? 1 : 0;
}
