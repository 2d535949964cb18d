/* report.c — the store and --since handling of the ledger reports (see report.h). */
#include "cli/report.h"

#include <getopt.h>
#include <stdio.h>

#include "api/config.h"
#include "base/clock.h"

int report_store_open(const char *cmd, const char *opt_url, const char *cfg_path, store_t **out)
{
    char url[1024];
    snprintf(url, sizeof url, "%s", opt_url ? opt_url : "sqlite:switchyard.db");
    char err[512];
    if (!opt_url && cfg_path) {
        config_t cfg;
        if (config_load(&cfg, cfg_path, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            return REPORT_ECONFIG;
        }
        if (cfg.store && *cfg.store) snprintf(url, sizeof url, "%s", cfg.store);
        config_deinit(&cfg);
    }
    *out = store_open_existing(url, err, sizeof err);
    if (!*out) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return REPORT_ESTORE;
    }
    return 0;
}

int report_since(const char *cmd, const char *arg, int64_t *since_ms)
{
    if (!store_since_parse(arg, clock_wall_ms(), since_ms)) return 0;
    fprintf(stderr,
            "%s: --since '%s': expected a date (2026-11-28), a time (2026-11-28T10:00:00Z), "
            "Unix seconds or a duration (24h, 7d)\n",
            cmd, arg);
    return -1;
}

int report_args_parse(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
                      report_args_t *a)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"since", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    *a = (report_args_t){0};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            a->url = optarg;
            break;
        case 'c':
            a->cfg_path = optarg;
            break;
        case 't':
            if (report_since(cmd, optarg, &a->since_ms)) return 2;
            break;
        case 'j':
            a->json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}
