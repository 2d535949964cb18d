/* cli.h — subcommands of the switchyard binary. Each is int cmd_NAME(argc, argv)
 * with argv[0] the subcommand name; it returns the process exit status. */
#ifndef SY_CLI_CLI_H
#define SY_CLI_CLI_H

#include <stdint.h>

typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct cli_cmd {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} cli_cmd_t;

/* True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/* Option values (args.c): 0 when s is wholly a number within [lo, hi], else -1 and
 * *out untouched; the caller names the option in its error. */
int cli_int(const char *s, long lo, long hi, int *out);
int cli_float(const char *s, double lo, double hi, float *out);
int cli_double(const char *s, double lo, double hi, double *out);
int cli_u64(const char *s, uint64_t *out);
/* Inside a getopt_long loop: the word naming the option whose value optarg is. */
const char *cli_optname(char **argv);
/* `switchyard train pii` (train_pii.c), called by cmd_train. */
int cmd_train_pii(int argc, char **argv);

#endif
