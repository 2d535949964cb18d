/* report.c — the store and --since handling of the ledger reports (see report.h). */
#include "cli/report.h"

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
