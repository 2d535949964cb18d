/* main.c — the switchyard binary: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* Subcommands: one line each; the implementations live in cmd_<name>.c. */
/* X(name, summary); keep one command per line. */
#define CLI_COMMANDS(X)                                                                            \
    X(serve, "serve the OpenAI-compatible API and route each request to a tier")                   \
    X(route, "explain the routing decision for one request (JSON on stdin)")                       \
    X(costs, "cost attribution from the ledger: totals and saved vs all-cloud")                    \
    X(audit, "requests with PII that reached an external tier (exit 1 if any)")                    \
    X(plan, "edge vs cloud per task and prompt length; when a dedicated edge box pays off")        \
    X(versions, "figures per model version from the ledger; drift against the previous version")   \
    X(generate, "generate text with the in-process edge engine")                                   \
    X(convert, "write a llama2.c checkpoint and tokenizer as a GGUF file")                         \
    X(perplexity, "perplexity of a model on a text file")                                          \
    X(train, "train the task classifier or the need-of-cloud router model")                        \
    X(replay, "evaluate a routing policy offline over a routing CSV (APGR, CPT, SVG curve)")       \
    X(calibrate, "set the need-of-cloud threshold for a target cloud share or quality")            \
    X(pii, "find personal data in text; evaluate the detector (--eval)")                           \
    X(quantize,                                                                                    \
      "write a GGUF model with its weights quantized (q8_0, q4_0, q4_k_m, q5_k_m, q6_k ...)")      \
    X(distill, "train a small student on a teacher's next-token distributions")                    \
    X(prune, "remove FFN channels and attention heads by measured importance")                     \
    X(version, "print the version")

#define CLI_DECL(name, summary) int cmd_##name(int argc, char **argv);
CLI_COMMANDS(CLI_DECL)
#undef CLI_DECL

static const cli_cmd_t commands[] = {
#define CLI_ROW(name, summary) {#name, cmd_##name, summary},
    CLI_COMMANDS(CLI_ROW)
#undef CLI_ROW
        {NULL, NULL, NULL},
};

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

int cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("switchyard %s\n", SY_VERSION);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "switchyard %s: the routing layer between edge and cloud LLM tiers\n\n"
            "usage: switchyard COMMAND [options]   (switchyard COMMAND --help for more)\n\n"
            "commands:\n",
            SY_VERSION);
    for (const cli_cmd_t *c = commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version")) return cmd_version(argc - 1, argv + 1);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (const cli_cmd_t *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "switchyard: unknown command '%s' (see switchyard --help)\n", argv[1]);
    return 2;
}
