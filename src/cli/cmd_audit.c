/* cmd_audit.c — `switchyard audit`: the privacy check over the ledger. Lists every
 * request whose personal data reached a tier whose privacy class is external in
 * clear; a type that left only as placeholders (the mask action) is not listed.
 * The routing promise is that this list is empty; the exit status makes it
 * scriptable (0 clean, 1 violations found, 2 usage or store error). Entity types
 * only: the ledger never holds the values. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/report.h"
#include "route/pii/pii.h"
#include "store/store.h"

#define AUDIT_JSON_MAX (256u << 20)

static void audit_usage(FILE *f)
{
    fprintf(f, "usage: switchyard audit [-c FILE | --store URL] [--since T] [--json]\n\n"
               "Lists requests whose personal data reached an external tier in clear (entity\n"
               "types, never values); data that left as placeholders (masked) is not listed.\n"
               "Exit status: 0 none found, 1 some found, 2 usage or store error.\n\n"
               "  -c FILE         take the store from this config file's store: key\n"
               "  --store URL     sqlite:PATH or postgresql://... (default sqlite:switchyard.db)\n"
               "  --since T       2026-11-28, 2026-11-28T10:00:00Z, Unix seconds, or a duration\n"
               "                  back from now: 30m, 24h, 7d, 2w (default: all time)\n"
               "  --json          one JSON object instead of the table\n");
}

/* Names of the types in mask, joined by ','; a bit this build does not know as hex.
 * The names the gateway stored are used when they name exactly these types (rows
 * from before per-type actions were recorded). */
static const char *types_text(const store_audit_row_t *r, uint32_t mask, char *tmp, size_t cap)
{
    if (mask == r->pii_types && r->pii_names[0]) return r->pii_names;
    size_t used = 0;
    tmp[0] = 0;
    uint32_t unknown = 0;
    for (unsigned b = 0; b < 32; b++) {
        if (!(mask & (1u << b))) continue;
        if (b >= PII_TYPE_COUNT) {
            unknown |= 1u << b;
            continue;
        }
        int n =
            snprintf(tmp + used, cap - used, "%s%s", used ? "," : "", pii_type_name((pii_type_t)b));
        if (n < 0 || (size_t)n >= cap - used) break;
        used += (size_t)n;
    }
    if (unknown && used + 16 < cap)
        snprintf(tmp + used, cap - used, "%s0x%x", used ? "," : "", unknown);
    return tmp;
}

static int print_json(int64_t since_ms, const store_audit_row_t *rows, size_t n)
{
    buf_t b;
    buf_init(&b, AUDIT_JSON_MAX);
    jsonw_t w;
    jsonw_init(&w, &b);
    char ts[32], tmp[256];
    jsonw_obj_begin(&w);
    jsonw_key(&w, "since");
    if (since_ms) {
        clock_fmt_rfc3339(since_ms, ts);
        jsonw_str(&w, ts);
    } else {
        jsonw_null(&w);
    }
    jsonw_key(&w, "violations");
    jsonw_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "id");
        jsonw_str(&w, rows[i].id);
        jsonw_key(&w, "time");
        clock_fmt_rfc3339(rows[i].ts_ms, ts);
        jsonw_str(&w, ts);
        jsonw_key(&w, "tier");
        jsonw_str(&w, rows[i].tier);
        jsonw_key(&w, "pii_types"); /* in clear */
        jsonw_str(&w, types_text(&rows[i], rows[i].pii_allowed, tmp, sizeof tmp));
        jsonw_key(&w, "pii_mask");
        jsonw_uint(&w, rows[i].pii_allowed);
        jsonw_key(&w, "masked");
        jsonw_str(&w, types_text(&rows[i], rows[i].pii_masked, tmp, sizeof tmp));
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
    int rc = jsonw_error(&w);
    if (!rc) printf("%s\n", b.data);
    buf_deinit(&b);
    return rc;
}

static void print_table(int64_t since_ms, const store_audit_row_t *rows, size_t n)
{
    char ts[32], tmp[256];
    const char *span = "";
    char since[64] = "";
    if (since_ms) {
        clock_fmt_rfc3339(since_ms, ts);
        snprintf(since, sizeof since, " since %s", ts);
        span = since;
    }
    if (n == 0) {
        printf("audit: no personal data reached an external tier in clear%s\n", span);
        return;
    }
    printf("%-40s %-24s %-16s %s\n", "id", "time", "tier", "pii_types (in clear)");
    for (size_t i = 0; i < n; i++) {
        clock_fmt_rfc3339(rows[i].ts_ms, ts);
        printf("%-40s %-24s %-16s %s\n", rows[i].id, ts, rows[i].tier[0] ? rows[i].tier : "(none)",
               types_text(&rows[i], rows[i].pii_allowed, tmp, sizeof tmp));
    }
    printf("\naudit: %zu request%s sent personal data to an external tier in clear%s\n", n,
           n == 1 ? "" : "s", span);
}

int cmd_audit(int argc, char **argv)
{
    report_args_t a;
    int arc = report_args_parse("audit", argc, argv, audit_usage, &a);
    if (arc >= 0) return arc;
    const char *url = a.url, *cfg_path = a.cfg_path;
    int64_t since_ms = a.since_ms;
    int json = a.json;
    store_t *s;
    int orc = report_store_open("audit", url, cfg_path, &s);
    if (orc) return 2; /* 1 is kept for "PII reached an external tier" */
    store_audit_row_t *rows = NULL;
    size_t n = 0;
    int rc = store_audit_query(s, since_ms, &rows, &n);
    if (rc) {
        fprintf(stderr, "audit: query failed: %s (%s)\n", sy_strerror(rc), store_errmsg(s));
        store_close(s);
        return 2;
    }
    if (json)
        rc = print_json(since_ms, rows, n);
    else
        print_table(since_ms, rows, n);
    mem_free(rows);
    store_close(s);
    if (rc) return 2;
    return n ? 1 : 0;
}
