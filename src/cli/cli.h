/* cli.h — subcommands of the switchyard binary. Each is int cmd_NAME(argc, argv)
 * with argv[0] the subcommand name; it returns the process exit status. */
#ifndef SY_CLI_CLI_H
#define SY_CLI_CLI_H

typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct cli_cmd {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} cli_cmd_t;

/* True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/* `switchyard train pii` (train_pii.c), called by cmd_train. */
int cmd_train_pii(int argc, char **argv);

#endif
