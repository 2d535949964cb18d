/* report.h — what the ledger reports (`costs`, `audit`) share: finding and opening
 * the store, and reading --since. Messages go to stderr, prefixed with the command. */
#ifndef SY_CLI_REPORT_H
#define SY_CLI_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "store/store.h"

/* Opens the store named by opt_url, else by the config file's `store:` key
 * (cfg_path), else sqlite:switchyard.db; a SQLite file that does not exist is an
 * error, not a new store. Returns 0 with *out set, REPORT_ECONFIG when the config
 * file does not load, or REPORT_ESTORE when the store does not open (said why). */
enum { REPORT_ECONFIG = -1, REPORT_ESTORE = -2 };
int report_store_open(const char *cmd, const char *opt_url, const char *cfg_path, store_t **out);

/* Reads a --since bound (see store_since_parse). Returns 0, or -1 after saying what
 * is expected. */
int report_since(const char *cmd, const char *arg, int64_t *since_ms);

/* The options every ledger report takes. */
typedef struct report_args {
    const char *url;      /* --store URL */
    const char *cfg_path; /* --config FILE */
    int64_t since_ms;     /* --since (0: all) */
    bool json;            /* --json */
} report_args_t;

/* Parses argv (--store, --config, --since, --json, --help) into a. Returns -1 to go
 * on, else the exit status: 0 after --help printed usage to stdout, 2 after a bad
 * argument (usage or the reason on stderr). */
int report_args_parse(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
                      report_args_t *a);

#endif
