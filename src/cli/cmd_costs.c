/* cmd_costs.c — `switchyard costs`: cost attribution from the ledger, grouped by
 * team, tenant, feature or tier, with the all-cloud counterfactual and what the
 * routing saved against it. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/report.h"
#include "store/store.h"

#define COSTS_JSON_MAX (256u << 20)

static void costs_usage(FILE *f)
{
    fprintf(
        f, "usage: switchyard costs [-c FILE | --store URL] [--group-by team|tenant|feature|tier]\n"
           "                        [--since T] [--json]\n\n"
           "Totals per group from the cost ledger: requests, tokens, what was spent, what\n"
           "the same tokens would have cost on the reference cloud tier, and the saving.\n\n"
           "  -c FILE         take the store from this config file's store: key\n"
           "  --store URL     sqlite:PATH or postgresql://... (default sqlite:switchyard.db)\n"
           "  --group-by G    team (default), tenant, feature or tier\n"
           "  --since T       2026-11-28, 2026-11-28T10:00:00Z, Unix seconds, or a duration\n"
           "                  back from now: 30m, 24h, 7d, 2w (default: all time)\n"
           "  --json          one JSON object instead of the table\n");
}

/* Saved as a percentage of the all-cloud cost; negative when routing cost more. */
static double saved_pct(double saved, double cloud)
{
    return cloud > 0 ? 100.0 * saved / cloud : 0.0;
}

static void json_row(jsonw_t *w, const store_cost_row_t *r)
{
    jsonw_uint(w, r->requests);
    jsonw_key(w, "tokens_in");
    jsonw_uint(w, r->tokens_in);
    jsonw_key(w, "tokens_out");
    jsonw_uint(w, r->tokens_out);
    jsonw_key(w, "cost_usd");
    jsonw_double(w, r->cost_usd);
    jsonw_key(w, "cloud_cost_usd");
    jsonw_double(w, r->cloud_cost_usd);
    jsonw_key(w, "saved_usd");
    jsonw_double(w, r->saved_usd);
    jsonw_key(w, "saved_pct");
    if (r->cloud_cost_usd > 0)
        jsonw_double(w, saved_pct(r->saved_usd, r->cloud_cost_usd));
    else
        jsonw_null(w);
}

static int print_json(store_group_t by, int64_t since_ms, const store_cost_row_t *rows, size_t n,
                      const store_cost_row_t *total)
{
    buf_t b;
    buf_init(&b, COSTS_JSON_MAX);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "group_by");
    jsonw_str(&w, store_group_name(by));
    jsonw_key(&w, "since");
    if (since_ms) {
        char ts[32];
        clock_fmt_rfc3339(since_ms, ts);
        jsonw_str(&w, ts);
    } else {
        jsonw_null(&w);
    }
    jsonw_key(&w, "groups");
    jsonw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "key");
        jsonw_str(&w, rows[i].key);
        jsonw_key(&w, "requests");
        json_row(&w, &rows[i]);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "total");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "requests");
    json_row(&w, total);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    int rc = jsonw_error(&w);
    if (!rc) printf("%s\n", b.data);
    buf_deinit(&b);
    return rc;
}

static void print_line(const char *key, const store_cost_row_t *r)
{
    char pct[16];
    if (r->cloud_cost_usd > 0)
        snprintf(pct, sizeof pct, "%.1f%%", saved_pct(r->saved_usd, r->cloud_cost_usd));
    else
        snprintf(pct, sizeof pct, "-");
    printf("%-24s %10llu %13llu %13llu %14.6f %14.6f %14.6f %8s\n", key,
           (unsigned long long)r->requests, (unsigned long long)r->tokens_in,
           (unsigned long long)r->tokens_out, r->cost_usd, r->cloud_cost_usd, r->saved_usd, pct);
}

static void print_table(store_group_t by, int64_t since_ms, const store_cost_row_t *rows, size_t n,
                        const store_cost_row_t *total)
{
    if (since_ms) {
        char ts[32];
        clock_fmt_rfc3339(since_ms, ts);
        printf("costs by %s since %s\n\n", store_group_name(by), ts);
    } else {
        printf("costs by %s, all time\n\n", store_group_name(by));
    }
    printf("%-24s %10s %13s %13s %14s %14s %14s %8s\n", store_group_name(by), "requests",
           "tokens_in", "tokens_out", "cost_usd", "all_cloud_usd", "saved_usd", "saved");
    for (size_t i = 0; i < n; i++)
        print_line(rows[i].key[0] ? rows[i].key : "(none)", &rows[i]);
    printf("%.*s\n", 24 + 11 + 14 + 14 + 15 + 15 + 15 + 9,
           "-----------------------------------"
           "-----------------------------------"
           "-----------------------------------"
           "-----------------------------------");
    print_line("total", total);
}

int cmd_costs(int argc, char **argv)
{
    const char *url = NULL, *cfg_path = NULL;
    store_group_t by = STORE_GROUP_TEAM;
    int64_t since_ms = 0;
    int json = 0;
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"group-by", required_argument, NULL, 'g'},
        {"since", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:g:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            url = optarg;
            break;
        case 'c':
            cfg_path = optarg;
            break;
        case 'g':
            if (store_group_parse(optarg, &by)) {
                fprintf(stderr, "costs: --group-by '%s': expected team, tenant, feature or tier\n",
                        optarg);
                return 2;
            }
            break;
        case 't':
            if (report_since("costs", optarg, &since_ms)) return 2;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            costs_usage(stdout);
            return 0;
        default:
            costs_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "costs: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    store_t *s;
    int orc = report_store_open("costs", url, cfg_path, &s);
    if (orc) return orc == REPORT_ECONFIG ? 2 : 1;
    store_cost_row_t *rows = NULL;
    size_t n = 0;
    int rc = store_costs_query(s, by, since_ms, &rows, &n);
    if (rc) {
        fprintf(stderr, "costs: query failed: %s (%s)\n", sy_strerror(rc), store_errmsg(s));
        store_close(s);
        return 1;
    }
    /* The store keeps money as integer nano-USD; sum in that unit so the total
     * line is exactly the sum of the lines above it. */
    store_cost_row_t total = {.key = "total"};
    int64_t cost_n = 0, cloud_n = 0;
    for (size_t i = 0; i < n; i++) {
        total.requests += rows[i].requests;
        total.tokens_in += rows[i].tokens_in;
        total.tokens_out += rows[i].tokens_out;
        cost_n += llround(rows[i].cost_usd * 1e9);
        cloud_n += llround(rows[i].cloud_cost_usd * 1e9);
    }
    total.cost_usd = (double)cost_n / 1e9;
    total.cloud_cost_usd = (double)cloud_n / 1e9;
    total.saved_usd = (double)(cloud_n - cost_n) / 1e9;
    if (json)
        rc = print_json(by, since_ms, rows, n, &total);
    else
        print_table(by, since_ms, rows, n, &total);
    mem_free(rows);
    store_close(s);
    return rc ? 1 : 0;
}
