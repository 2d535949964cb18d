/* cmd_generate.c — `switchyard generate`: run the edge engine on one prompt, streaming
 * the text, with optional per-token logprobs and a speed/confidence summary. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/spec.h"
#include "engine/jsonschema.h"

#define GEN_MAX_PROMPT_TOKENS (1 << 16)

static void generate_usage(FILE *f)
{
    fprintf(f, "usage: switchyard generate -m MODEL [-p TEXT] [options]\n\n"
               "Generates text with the in-process engine. MODEL is a GGUF file or a llama2.c\n"
               "checkpoint (then --tokenizer names its tokenizer.bin).\n\n"
               "  -m, --model PATH        model file\n"
               "      --tokenizer PATH    tokenizer.bin of a llama2.c checkpoint\n"
               "  -p, --prompt TEXT       prompt (default: empty, start from BOS)\n"
               "      --chat              render the prompt as a user message with the model's\n"
               "                          chat template\n"
               "  -n, --tokens N          tokens to generate (default 128)\n"
               "      --temp T            temperature, 0 = greedy (default 0.8)\n"
               "      --seed S            sampling seed (default 0)\n"
               "      --top-k K           (default 40, 0 = off)\n"
               "      --top-p P           (default 0.95, 1 = off)\n"
               "      --min-p P           (default 0.05, 0 = off)\n"
               "      --repeat-penalty R  (default 1 = off)\n"
               "      --stop TEXT         stop string (repeatable, up to 8)\n"
               "      --logprobs K        print each token's logprob and K alternatives\n"
               "  -t, --threads N         threads (default 1)\n"
               "      --ctx N             context size (default: the model's, at most 4096)\n"
               "      --draft PATH        speculative decoding: a smaller model with the same\n"
               "                          vocabulary drafts, MODEL verifies; the target alone\n"
               "                          runs after it for tokens/s with and without\n"
               "      --draft-tokenizer PATH  tokenizer.bin of a llama2.c draft (default:\n"
               "                          --tokenizer)\n"
               "      --draft-max K       tokens drafted per round, 1..32 (default 4)\n"
               "      --json              constrain the output to a JSON object\n"
               "      --json-schema FILE  constrain the output to FILE's JSON Schema (subset:\n"
               "                          docs/engine.md); --strict requires every property\n");
}

typedef struct gen_out {
    const engine_t *e;
    int n_logprobs;
    int prev;
    int n;
} gen_out_t;

/* Prints text as a quoted, escaped token for the logprob table. */
static void print_quoted(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The grammar asked for on the command line, or NULL. Returns 0 or nonzero after
 * printing why. */
static int gen_grammar(int json, const char *path, int strict, grammar_t **out)
{
    *out = NULL;
    if (json && path) {
        fprintf(stderr, "generate: --json and --json-schema exclude each other\n");
        return 1;
    }
    if (json) *out = grammar_new_json_object();
    if (!path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "generate: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    if (n == sizeof text) {
        fprintf(stderr, "generate: %s: schema larger than 1 MiB\n", path);
        return 1;
    }
    char err[512];
    int rc = jsonschema_compile(text, n, strict != 0, out, err, sizeof err);
    if (rc) fprintf(stderr, "generate: %s: %s\n", path, err);
    return rc ? 1 : 0;
}

/* Per-token callback: text to stdout, or one table row per token with --logprobs. */
static int on_token(void *ud, const engine_token_t *t)
{
    gen_out_t *o = ud;
    if (!o->n_logprobs) {
        fwrite(t->text, 1, t->len, stdout);
        fflush(stdout);
    } else {
        char piece[1100];
        int k = engine_token_text(o->e, o->prev, t->id, piece, sizeof piece);
        if (k > (int)sizeof piece) k = sizeof piece;
        printf("%4d %6d %9.4f  ", o->n, t->id, t->info->logprob);
        print_quoted(stdout, piece, (size_t)k);
        for (int i = 0; i < t->info->n_alts; i++) {
            int a = t->info->alts[i].id;
            k = engine_token_text(o->e, o->prev, a, piece, sizeof piece);
            if (k > (int)sizeof piece) k = sizeof piece;
            printf("  ");
            print_quoted(stdout, piece, (size_t)k);
            printf(" %.3f", t->info->alts[i].logprob);
        }
        putchar('\n');
    }
    o->prev = t->id;
    o->n++;
    return 0;
}

/* Callback of the speculative run and its baseline: ids kept for the comparison, the
 * text kept to print afterwards (so that neither timing includes terminal output). */
typedef struct spec_out {
    int *ids;
    int n, cap;
    buf_t *text; /* NULL: ids only */
} spec_out_t;

static int spec_on_token(void *ud, const engine_token_t *t)
{
    spec_out_t *o = ud;
    if (o->text) buf_append(o->text, t->text, t->len);
    if (o->n < o->cap) o->ids[o->n++] = t->id;
    return 0;
}

/* --draft: generates with speculative decoding, then with the target alone on a fresh
 * session, and reports the draft's counts, acceptance and both speeds on stderr. */
static int generate_speculative(const engine_t *e, const engine_t *d, const char *prompt, int chat,
                                const engine_gen_params_t *gp, const engine_session_opts_t *so,
                                int draft_max)
{
    engine_prompt_t pr;
    engine_prompt_init(&pr, 16u << 20);
    char err[256] = "";
    int rc = 0;
    if (chat) {
        engine_msg_t msg = {"user", prompt};
        rc = engine_chat_render(e, &msg, 1, true, &pr, err, sizeof err);
        if (rc) fprintf(stderr, "generate: %s\n", err);
    } else {
        rc = engine_prompt_append(&pr, prompt, strlen(prompt), true);
    }
    int *ids = mem_alloc(GEN_MAX_PROMPT_TOKENS * sizeof *ids);
    int n = rc ? rc : engine_prompt_tokenize(e, &pr, true, ids, GEN_MAX_PROMPT_TOKENS);
    if (n > GEN_MAX_PROMPT_TOKENS) n = SY_ECONTEXT;
    if (n <= 0) {
        fprintf(stderr, "generate: %s\n", sy_strerror(n == 0 ? SY_EINVAL : n));
        mem_free(ids);
        engine_prompt_deinit(&pr);
        return n == 0 ? SY_EINVAL : n;
    }
    int cap = gp->max_tokens + 1;
    buf_t gen;
    buf_init(&gen, 16u << 20);
    spec_out_t a = {.ids = mem_alloc((size_t)cap * sizeof(int)), .cap = cap, .text = &gen};
    spec_out_t b = {.ids = mem_alloc((size_t)cap * sizeof(int)), .cap = cap};
    engine_session_t *ts = engine_session_new(e, so), *ds = engine_session_new(d, so);
    engine_gen_result_t rs, rb;
    spec_stats_t st;
    fwrite(pr.text.data ? pr.text.data : "", 1, pr.text.len, stdout);
    rc = spec_generate(ts, ds, ids, n, gp, draft_max, spec_on_token, &a, &rs, &st);
    fwrite(gen.data ? gen.data : "", 1, gen.len, stdout);
    putchar('\n');
    buf_deinit(&gen);
    if (!rc) {
        engine_session_free(ts);
        ts = engine_session_new(e, so);
        rc = engine_generate(ts, ids, n, gp, spec_on_token, &b, &rb);
    }
    if (rc) {
        fprintf(stderr, "generate: %s\n", sy_strerror(rc));
    } else {
        double sp = rs.decode_ms > 0 ? 1e3 * rs.n_generated / rs.decode_ms : 0.0;
        double bp = rb.decode_ms > 0 ? 1e3 * rb.n_generated / rb.decode_ms : 0.0;
        fprintf(stderr,
                "\nspeculative: target %s, draft %s (%s), up to %d tokens per round\n"
                "drafted %d, accepted %d in %d rounds (%.2f tokens per round)\n"
                "acceptance %.2f\n"
                "with draft: %d tokens in %.1f ms, %.1f tok/s (draft %.1f ms, verify %.1f ms)\n"
                "target alone: %d tokens in %.1f ms, %.1f tok/s; speedup %.2fx\n",
                e->model->name, d->model->name, kern_type_name(d->model->weight_type), draft_max,
                st.drafted, st.accepted, st.rounds,
                st.rounds ? (double)rs.n_generated / st.rounds : 0.0, spec_acceptance(&st),
                rs.n_generated, rs.decode_ms, sp, st.draft_ms, st.verify_ms, rb.n_generated,
                rb.decode_ms, bp, bp > 0 ? sp / bp : 0.0);
        if (gp->sample.temperature <= 0.0f)
            fprintf(stderr, "greedy output %s the target alone's\n",
                    a.n == b.n && !memcmp(a.ids, b.ids, (size_t)a.n * sizeof(int))
                        ? "identical to"
                        : "DIFFERS from");
    }
    engine_session_free(ts);
    engine_session_free(ds);
    mem_free(a.ids);
    mem_free(b.ids);
    mem_free(ids);
    engine_prompt_deinit(&pr);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        generate_usage(stdout);
        return 0;
    }
    const char *model = NULL, *tok = NULL, *prompt = "", *draft = NULL, *dtok = NULL;
    int draft_max = 4;
    int chat = 0, n_stop = 0;
    engine_gen_params_t gp = {.max_tokens = 128};
    sample_params_default(&gp.sample);
    engine_session_opts_t so = {.n_threads = 1};
    enum {
        O_TOK = 256,
        O_TEMP,
        O_SEED,
        O_TOPK,
        O_TOPP,
        O_MINP,
        O_REP,
        O_STOP,
        O_LP,
        O_CTX,
        O_CHAT,
        O_DRAFT,
        O_DTOK,
        O_DMAX,
        O_JSON,
        O_SCHEMA,
        O_STRICT
    };
    int json = 0, strict = 0;
    const char *schema_path = NULL;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, O_TOK},
                                         {"prompt", required_argument, 0, 'p'},
                                         {"tokens", required_argument, 0, 'n'},
                                         {"temp", required_argument, 0, O_TEMP},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"top-k", required_argument, 0, O_TOPK},
                                         {"top-p", required_argument, 0, O_TOPP},
                                         {"min-p", required_argument, 0, O_MINP},
                                         {"repeat-penalty", required_argument, 0, O_REP},
                                         {"stop", required_argument, 0, O_STOP},
                                         {"logprobs", required_argument, 0, O_LP},
                                         {"threads", required_argument, 0, 't'},
                                         {"ctx", required_argument, 0, O_CTX},
                                         {"chat", no_argument, 0, O_CHAT},
                                         {"draft", required_argument, 0, O_DRAFT},
                                         {"draft-tokenizer", required_argument, 0, O_DTOK},
                                         {"draft-max", required_argument, 0, O_DMAX},
                                         {"json", no_argument, 0, O_JSON},
                                         {"json-schema", required_argument, 0, O_SCHEMA},
                                         {"strict", no_argument, 0, O_STRICT},
                                         {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case O_TOK:
            tok = optarg;
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'n':
            bad = cli_int(optarg, 0, 1 << 24, &gp.max_tokens);
            break;
        case O_TEMP:
            bad = cli_float(optarg, 0, 100, &gp.sample.temperature);
            break;
        case O_SEED:
            bad = cli_u64(optarg, &gp.sample.seed);
            break;
        case O_TOPK:
            bad = cli_int(optarg, 0, 1 << 30, &gp.sample.top_k);
            break;
        case O_TOPP:
            bad = cli_float(optarg, 0, 1, &gp.sample.top_p);
            break;
        case O_MINP:
            bad = cli_float(optarg, 0, 1, &gp.sample.min_p);
            break;
        case O_REP:
            bad = cli_float(optarg, 0, 100, &gp.sample.repeat_penalty);
            break;
        case O_STOP:
            if (n_stop >= ENGINE_MAX_STOPS) {
                fprintf(stderr, "generate: at most %d stop strings\n", ENGINE_MAX_STOPS);
                return 2;
            }
            gp.stop[n_stop++] = optarg;
            break;
        case O_LP:
            bad = cli_int(optarg, 0, SAMPLE_MAX_ALTS, &gp.n_logprobs);
            break;
        case 't':
            bad = cli_int(optarg, 1, 256, &so.n_threads);
            break;
        case O_CTX:
            bad = cli_int(optarg, 0, 1 << 24, &so.n_ctx);
            break;
        case O_CHAT:
            chat = 1;
            break;
        case O_DRAFT:
            draft = optarg;
            break;
        case O_DTOK:
            dtok = optarg;
            break;
        case O_DMAX:
            bad = cli_int(optarg, 1, SPEC_MAX_DRAFT, &draft_max);
            break;
        case O_JSON:
            json = 1;
            break;
        case O_SCHEMA:
            schema_path = optarg;
            break;
        case O_STRICT:
            strict = 1;
            break;
        default:
            generate_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "generate: bad value '%s' for %s\n", optarg, cli_optname(argv));
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "generate: -m MODEL is required\n");
        return 2;
    }
    if (draft && (draft_max < 1 || draft_max > SPEC_MAX_DRAFT)) {
        fprintf(stderr, "generate: --draft-max must be 1..%d\n", SPEC_MAX_DRAFT);
        return 2;
    }
    if (draft && (n_stop || gp.n_logprobs)) {
        fprintf(stderr, "generate: --stop and --logprobs are not supported with --draft\n");
        return 2;
    }
    if (draft && (json || schema_path)) {
        fprintf(stderr, "generate: --json and --json-schema are not supported with --draft\n");
        return 2;
    }
    char err[512];
    grammar_t *g = NULL;
    if (gen_grammar(json, schema_path, strict, &g)) return 2;
    gp.grammar = g;
    engine_t *e;
    int rc = engine_load(model, tok, &e, err, sizeof err);
    if (rc) {
        fprintf(stderr, "generate: %s\n", err[0] ? err : sy_strerror(rc));
        grammar_free(g);
        return 1;
    }
    if (draft) {
        engine_t *d;
        rc = engine_load(draft, dtok ? dtok : tok, &d, err, sizeof err);
        if (!rc) rc = spec_check(e, d, err, sizeof err);
        if (!rc)
            rc = generate_speculative(e, d, prompt, chat, &gp, &so, draft_max);
        else
            fprintf(stderr, "generate: %s\n", err[0] ? err : sy_strerror(rc));
        engine_free(d);
        engine_free(e);
        return rc ? 1 : 0;
    }
    engine_prompt_t pr;
    engine_prompt_init(&pr, 16u << 20);
    if (chat) {
        engine_msg_t msg = {"user", prompt};
        rc = engine_chat_render(e, &msg, 1, true, &pr, err, sizeof err);
        if (rc) fprintf(stderr, "generate: %s\n", err);
    } else {
        rc = engine_prompt_append(&pr, prompt, strlen(prompt), true);
    }
    int *ids = mem_alloc(GEN_MAX_PROMPT_TOKENS * sizeof *ids);
    int n = rc ? rc : engine_prompt_tokenize(e, &pr, true, ids, GEN_MAX_PROMPT_TOKENS);
    if (n > GEN_MAX_PROMPT_TOKENS) n = SY_ECONTEXT;
    engine_session_t *s = NULL;
    engine_gen_result_t res;
    if (n > 0) {
        s = engine_session_new(e, &so);
        if (!gp.n_logprobs) fwrite(pr.text.data ? pr.text.data : "", 1, pr.text.len, stdout);
        gen_out_t o = {.e = e, .n_logprobs = gp.n_logprobs, .prev = ids[n - 1]};
        rc = engine_generate(s, ids, n, &gp, on_token, &o, &res);
    } else {
        rc = n == 0 ? SY_EINVAL : n;
    }
    if (!gp.n_logprobs) putchar('\n');
    if (rc) {
        fprintf(stderr, "generate: %s\n", sy_strerror(rc));
    } else {
        static const char *fin[] = {"length", "eos", "stop", "callback"};
        fprintf(stderr,
                "\n%s (%s, %s): prompt %d tokens in %.1f ms (%.1f tok/s), generated %d in "
                "%.1f ms (%.1f tok/s), finish %s\n"
                "confidence: mean logprob %.4f, min logprob %.4f, mean entropy %.4f nats\n",
                e->model->name, e->model->format, kern_type_name(e->model->weight_type),
                res.n_prompt, res.prefill_ms,
                res.prefill_ms > 0 ? 1e3 * (res.n_prompt - res.n_reused) / res.prefill_ms : 0.0,
                res.n_generated, res.decode_ms,
                res.decode_ms > 0 ? 1e3 * res.n_generated / res.decode_ms : 0.0, fin[res.finish],
                sample_conf_mean_logprob(&res.conf), (double)res.conf.min_logprob,
                sample_conf_mean_entropy(&res.conf));
        if (g) fprintf(stderr, "grammar: %s\n", res.complete ? "complete" : "incomplete");
    }
    grammar_free(g);
    engine_session_free(s);
    mem_free(ids);
    engine_prompt_deinit(&pr);
    engine_free(e);
    return rc ? 1 : 0;
}
