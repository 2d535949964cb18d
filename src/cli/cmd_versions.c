/* cmd_versions.c — `switchyard versions`: figures per tier and model version from
 * the ledger, the (edge version, cloud version) pairs, and drift against the
 * previous version of each tier (docs/versions.md). The same report as
 * GET /v1/versions. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/config.h"
#include "api/versions.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "cli/cli.h"
#include "cli/report.h"
#include "store/store.h"

static void versions_usage(FILE *f)
{
    fprintf(f, "usage: switchyard versions [-c FILE | --store URL] [--since T] [--json]\n\n"
               "Per tier and model version: first and last request, requests, error rate,\n"
               "escalation rate, mean confidence, speculative acceptance, cost per request, and\n"
               "drift against the tier's previous version; per (edge version, cloud version)\n"
               "pair the escalation rate. Exit status 3 when a version drifted.\n\n"
               "  -c FILE         take the store and the drift thresholds from this config\n"
               "  --store URL     sqlite:PATH or postgresql://... (default sqlite:switchyard.db)\n"
               "  --since T       2026-11-28, an RFC 3339 time, Unix seconds, or a duration back\n"
               "                  from now: 30m, 24h, 7d (default: all time)\n"
               "  --json          the JSON of GET /v1/versions instead of the tables\n");
}

int cmd_versions(int argc, char **argv)
{
    report_args_t a;
    int arc = report_args_parse("versions", argc, argv, versions_usage, &a);
    if (arc >= 0) return arc;
    const char *url = a.url, *cfg_path = a.cfg_path;
    int64_t since_ms = a.since_ms;
    int json = a.json;
    /* Thresholds: the config's drift section, else its defaults. */
    config_drift_t th;
    config_drift_defaults(&th);
    if (cfg_path) {
        config_t cfg = {0};
        char err[512];
        if (config_load(&cfg, cfg_path, err, sizeof err)) {
            fprintf(stderr, "versions: %s\n", err);
            config_deinit(&cfg);
            return 2;
        }
        th = cfg.drift;
        config_deinit(&cfg);
    }
    store_t *s;
    int orc = report_store_open("versions", url, cfg_path, &s);
    if (orc) return orc == REPORT_ECONFIG ? 2 : 1;
    versions_report_t r;
    int rc = versions_query(s, since_ms, &th, &r);
    if (rc) {
        fprintf(stderr, "versions: query failed: %s (%s)\n", sy_strerror(rc), store_errmsg(s));
        store_close(s);
        return 1;
    }
    bool drift = false;
    for (size_t i = 0; i < r.n; i++)
        drift |= r.v[i].drift;
    if (json) {
        buf_t b;
        buf_init(&b, 64u << 20);
        jsonw_t j;
        jsonw_init(&j, &b);
        versions_write_json(&r, &j);
        rc = jsonw_error(&j);
        if (!rc) printf("%s\n", b.data);
        buf_deinit(&b);
    } else {
        versions_print(&r, stdout);
    }
    versions_report_free(&r);
    store_close(s);
    return rc ? 1 : drift ? 3 : 0;
}
