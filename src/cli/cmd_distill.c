/* cmd_distill.c — `switchyard distill`: train a small student on a teacher's
 * next-token distributions and write it as GGUF (same tokenizer: a valid draft for
 * speculative decoding). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "cli/cli.h"
#include "engine/distill.h"

static void distill_usage(FILE *f)
{
    fprintf(f, "usage: switchyard distill -m TEACHER -o STUDENT.gguf [options]\n\n"
               "Trains a student of the llama architecture on the teacher's top-k next-token\n"
               "distributions (KL divergence), on sequences the teacher samples from BOS and/or\n"
               "windows of a corpus. Same options and seed: the same student.\n\n"
               "  -m, --model PATH      teacher (GGUF, or llama2.c with --tokenizer)\n"
               "      --tokenizer PATH  tokenizer.bin of a llama2.c teacher\n"
               "  -o, --output PATH     student GGUF (F32)\n"
               "      --dim D           student width (default: half the teacher's)\n"
               "      --layers L        (default: 4/5 of the teacher's)\n"
               "      --heads H         (default: width / the teacher's head width)\n"
               "      --kv-heads H      (default: --heads)\n"
               "      --hidden N        FFN width (default: 8/3 of the width, rounded up to 32)\n"
               "      --steps N         optimiser steps (default 1500)\n"
               "      --batch N         sequences per step (default 8)\n"
               "      --seq N           tokens per sequence (default 128)\n"
               "      --top-k K         teacher tokens kept per position (default 20)\n"
               "      --lr R            peak learning rate (default 3e-3; cosine to a tenth)\n"
               "      --warmup N        warmup steps (default 50)\n"
               "      --corpus FILE     text to distill on as well\n"
               "      --gen-frac F      with --corpus, share of teacher-sampled sequences\n"
               "                        (default 0.5; without a corpus all are sampled)\n"
               "      --seed S          (default 1)\n"
               "  -q, --quiet           no progress bar\n");
}

int cmd_distill(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        distill_usage(stdout);
        return 0;
    }
    const char *model = NULL, *tok = NULL, *out = NULL;
    distill_opts_t o;
    distill_opts_default(&o);
    enum {
        O_TOK = 256,
        O_DIM,
        O_LAY,
        O_HEADS,
        O_KV,
        O_HID,
        O_STEPS,
        O_BATCH,
        O_SEQ,
        O_TOPK,
        O_LR,
        O_WARM,
        O_CORPUS,
        O_GEN,
        O_SEED
    };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, O_TOK},
                                         {"output", required_argument, 0, 'o'},
                                         {"dim", required_argument, 0, O_DIM},
                                         {"layers", required_argument, 0, O_LAY},
                                         {"heads", required_argument, 0, O_HEADS},
                                         {"kv-heads", required_argument, 0, O_KV},
                                         {"hidden", required_argument, 0, O_HID},
                                         {"steps", required_argument, 0, O_STEPS},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"seq", required_argument, 0, O_SEQ},
                                         {"top-k", required_argument, 0, O_TOPK},
                                         {"lr", required_argument, 0, O_LR},
                                         {"warmup", required_argument, 0, O_WARM},
                                         {"corpus", required_argument, 0, O_CORPUS},
                                         {"gen-frac", required_argument, 0, O_GEN},
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
        case O_DIM:
            bad |= cli_int(optarg, 0, 1 << 30, &o.dim);
            break;
        case O_LAY:
            bad |= cli_int(optarg, 0, 1 << 30, &o.n_layers);
            break;
        case O_HEADS:
            bad |= cli_int(optarg, 0, 1 << 30, &o.n_heads);
            break;
        case O_KV:
            bad |= cli_int(optarg, 0, 1 << 30, &o.n_kv_heads);
            break;
        case O_HID:
            bad |= cli_int(optarg, 0, 1 << 30, &o.hidden_dim);
            break;
        case O_STEPS:
            bad |= cli_int(optarg, 0, 1 << 30, &o.steps);
            break;
        case O_BATCH:
            bad |= cli_int(optarg, 0, 1 << 30, &o.batch);
            break;
        case O_SEQ:
            bad |= cli_int(optarg, 0, 1 << 30, &o.seq_len);
            break;
        case O_TOPK:
            bad |= cli_int(optarg, 0, 1 << 30, &o.top_k);
            break;
        case O_WARM:
            bad |= cli_int(optarg, 0, 1 << 30, &o.warmup);
            break;
        case O_LR:
            bad |= cli_float(optarg, 0, 10, &o.lr);
            o.lr_min = o.lr / 10.0f;
            break;
        case O_GEN:
            bad |= cli_float(optarg, 0, 1, &o.gen_frac);
            break;
        case O_CORPUS:
            o.corpus = optarg;
            break;
        case O_SEED:
            bad |= cli_u64(optarg, &o.seed);
            break;
        default:
            distill_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "distill: bad value '%s' for %s\n", optarg, cli_optname(argv));
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "distill: -m TEACHER and -o STUDENT.gguf are required\n");
        return 2;
    }
    char err[512] = "";
    engine_t *e;
    int rc = engine_load(model, tok, &e, err, sizeof err);
    if (rc) {
        fprintf(stderr, "distill: %s\n", err[0] ? err : sy_strerror(rc));
        return 1;
    }
    model_config_t sc;
    rc = distill_student_config(&e->model->cfg, &o, &sc, err, sizeof err);
    if (!rc) {
        size_t tp = train_n_params(&e->model->cfg, e->model->tied_output);
        size_t sp = train_n_params(&sc, true);
        fprintf(stderr,
                "distill: teacher %s (%zu parameters) -> student dim %d, %d layers, %d heads "
                "(%d kv), hidden %d: %zu parameters (%.0f%%)\n"
                "distill: %d steps x %d sequences x %d tokens, top-%d, lr %.2g, seed %llu, %s\n",
                e->model->name, tp, sc.dim, sc.n_layers, sc.n_heads, sc.n_kv_heads, sc.hidden_dim,
                sp, 100.0 * (double)sp / (double)tp, o.steps, o.batch, o.seq_len, o.top_k,
                (double)o.lr, (unsigned long long)o.seed,
                o.corpus ? "teacher samples and corpus" : "teacher samples");
        distill_report_t rep;
        rc = distill_run(e, &o, out, &rep, err, sizeof err);
        if (!rc)
            fprintf(stderr,
                    "distill: KL %.4f -> %.4f nats/token over %ld tokens in %.1f s (%.0f tok/s); "
                    "wrote %s\n",
                    rep.kl_first, rep.kl_last, rep.tokens, rep.seconds,
                    rep.seconds > 0 ? rep.tokens / rep.seconds : 0.0, out);
    }
    if (rc) fprintf(stderr, "distill: %s\n", err[0] ? err : sy_strerror(rc));
    engine_free(e);
    return rc ? 1 : 0;
}
