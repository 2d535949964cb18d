/* cmd_plan.c — `switchyard plan`: the decision matrix of edge against cloud.
 *
 * From the ledger (or a traffic description) and the configured prices it prints,
 * per task type and prompt-length band: the monthly volume, what one request costs on
 * the edge (amortized hardware at the tier's measured throughput) and on the cloud,
 * the escalation rate of edge answers (the quality proxy), the expected cost of
 * edge-first (edge plus the escalated share re-answered by the cloud) and the
 * recommended tier. Then the break-even of a dedicated edge box: the monthly volume
 * above which the box (usd_per_hour around the clock, tokens_per_second at a given
 * utilization) plus the escalations costs less than sending everything to the cloud.
 * --svg plots monthly cost against volume for both, with the crossover marked.
 *
 * Model (all per month of 730 hours):
 *   cloud(V)  = c * V                     c: cloud USD per token of the traffic mix
 *   box(V)    = ceil(V / C) * F + e*c*V   F: usd_per_hour * 730, C: box tokens per month,
 *                                         e: escalation rate of the edge-suited traffic
 *   crossover V* = F / (c * (1 - e)), valid while V* <= C (else one box never pays).
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/report.h"
#include "route/features.h"
#include "store/store.h"

#define PLAN_HOURS_PER_MONTH 730.0
#define PLAN_MAX_TASKS       32
#define PLAN_BANDS           4
#define PLAN_JSON_MAX        (16u << 20)

static const char *const band_names[PLAN_BANDS] = {"<256", "256-1k", "1k-4k", ">=4k"};

/* Traffic of one (task, prompt band) cell. */
typedef struct cell {
    double requests;  /* per month */
    double tokens_in; /* sums, per month */
    double tokens_out;
    double edge_tries; /* requests the edge answered or tried (escalated), per month */
    double escalated;  /* of those, re-answered by the cloud */
    bool esc_known;    /* some edge tries were seen */
} cell_t;

typedef struct plan {
    char tasks[PLAN_MAX_TASKS][32];
    int n_tasks;
    cell_t cells[PLAN_MAX_TASKS][PLAN_BANDS];
    /* prices */
    double edge_in, edge_out, edge_hour, edge_tps; /* edge tier */
    double cloud_in, cloud_out;                    /* cloud tier, USD per M tokens */
    double box_hour, box_tps, utilization;         /* dedicated box */
    double max_escalation;
    const char *edge_name, *cloud_name;
} plan_t;

static void plan_usage(FILE *f)
{
    fprintf(f,
            "usage: switchyard plan -c FILE [--store URL] [--since T] [--traffic FILE]\n"
            "                       [--edge TIER] [--cloud TIER] [--usd-per-hour X]\n"
            "                       [--tokens-per-second Y] [--utilization U]\n"
            "                       [--max-escalation E] [--svg FILE] [--json]\n\n"
            "Where edge beats cloud, per task type and prompt length, and the monthly volume\n"
            "at which a dedicated edge box pays for itself.\n\n"
            "  -c FILE               config: tier prices (cost:) and the store\n"
            "  --store URL           read the ledger from here instead\n"
            "  --since T             ledger rows since T (a date, a time, or 24h, 7d ...)\n"
            "  --traffic FILE        a traffic description instead of the ledger: JSON lines\n"
            "                        {\"task\":\"code\",\"requests\":N,\"tokens_in\":I,\n"
            "                         \"tokens_out\":O,\"escalation\":E} (per month, per request)\n"
            "  --edge, --cloud TIER  tiers to compare (default: the first edge and the\n"
            "                        reference or first cloud tier)\n"
            "  --usd-per-hour X      the dedicated box's price (default: the edge tier's)\n"
            "  --tokens-per-second Y its throughput (default: the edge tier's)\n"
            "  --utilization U       share of the box's throughput usable (default 0.5)\n"
            "  --max-escalation E    edge is recommended only below this rate (default 0.25)\n"
            "  --svg FILE            plot monthly cost against volume, crossover marked\n"
            "  --json                one JSON object instead of the tables\n");
}

/* ---------------------------------------------------------- traffic ---- */

static int band_of(double tokens_in)
{
    return tokens_in < 256 ? 0 : tokens_in < 1024 ? 1 : tokens_in < 4096 ? 2 : 3;
}

/* Index of a task name, added if new; the last slot takes the overflow. */
static int task_index(plan_t *p, const char *name)
{
    for (int i = 0; i < p->n_tasks; i++)
        if (!strcmp(p->tasks[i], name)) return i;
    if (p->n_tasks == PLAN_MAX_TASKS) return PLAN_MAX_TASKS - 1;
    snprintf(p->tasks[p->n_tasks], sizeof p->tasks[0], "%s", name);
    return p->n_tasks++;
}

/* The task class from a reason trace ("task:code,tier:cloud" -> "code"). */
static void task_of(const char *reasons, char *out, size_t n)
{
    const char *t = strstr(reasons, "task:");
    if (!t || (t != reasons && t[-1] != ',')) {
        snprintf(out, n, "(unclassified)");
        return;
    }
    t += 5;
    size_t len = strcspn(t, ",");
    snprintf(out, n, "%.*s", (int)(len < n - 1 ? len : n - 1), t);
}

/* Adds the answered ledger rows, scaled to a month of the span they cover. */
static int plan_from_ledger(plan_t *p, const store_traffic_row_t *rows, size_t n)
{
    size_t used = 0;
    int64_t t0 = 0, t1 = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].status, "ok")) continue;
        if (!used++) t0 = rows[i].ts_ms;
        t1 = rows[i].ts_ms;
    }
    if (!used) return SY_ENOTFOUND;
    /* At least an hour, so a short test run is not extrapolated wildly. */
    double span_ms = (double)(t1 - t0) > 3.6e6 ? (double)(t1 - t0) : 3.6e6;
    double scale = PLAN_HOURS_PER_MONTH * 3.6e6 / span_ms;
    for (size_t i = 0; i < n; i++) {
        const store_traffic_row_t *r = &rows[i];
        if (strcmp(r->status, "ok")) continue;
        char task[32];
        task_of(r->reasons, task, sizeof task);
        cell_t *c = &p->cells[task_index(p, task)][band_of(r->tokens_in)];
        c->requests += scale;
        c->tokens_in += scale * r->tokens_in;
        c->tokens_out += scale * r->tokens_out;
        bool edge = p->edge_name && !strcmp(r->tier, p->edge_name);
        if (edge || r->escalated) {
            c->edge_tries += scale;
            c->esc_known = true;
        }
        if (r->escalated) c->escalated += scale;
    }
    return 0;
}

/* Reads a traffic description (JSON lines). 0, or -1 after saying what is wrong. */
static int plan_from_file(plan_t *p, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "plan: %s: cannot open\n", path);
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        cJSON *j = cJSON_Parse(line);
        cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
        cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "requests");
        cJSON *tin = cJSON_GetObjectItemCaseSensitive(j, "tokens_in");
        cJSON *tout = cJSON_GetObjectItemCaseSensitive(j, "tokens_out");
        cJSON *esc = cJSON_GetObjectItemCaseSensitive(j, "escalation");
        if (!cJSON_IsObject(j) || !cJSON_IsString(task) || !cJSON_IsNumber(req) ||
            !cJSON_IsNumber(tin) || !cJSON_IsNumber(tout) || req->valuedouble < 0 ||
            tin->valuedouble < 0 || tout->valuedouble < 0 ||
            (esc && (!cJSON_IsNumber(esc) || esc->valuedouble < 0 || esc->valuedouble > 1))) {
            fprintf(stderr,
                    "plan: %s, line %d: expected {\"task\": string, \"requests\": n >= 0, "
                    "\"tokens_in\": n >= 0, \"tokens_out\": n >= 0, \"escalation\": 0..1 "
                    "(optional)}\n",
                    path, lineno);
            cJSON_Delete(j);
            rc = -1;
            break;
        }
        if (route_task_parse(task->valuestring) < 0) {
            /* The router's class names only, so the matrix lines up with the ledger's. */
            fprintf(stderr, "plan: %s, line %d: unknown task \"%.40s\" (one of:", path, lineno,
                    task->valuestring);
            for (int k = 0; k < ROUTE_TASK_COUNT; k++)
                fprintf(stderr, " %s", route_task_name((route_task_t)k));
            fprintf(stderr, ")\n");
            cJSON_Delete(j);
            rc = -1;
            break;
        }
        cell_t *c = &p->cells[task_index(p, task->valuestring)][band_of(tin->valuedouble)];
        double n = req->valuedouble;
        c->requests += n;
        c->tokens_in += n * tin->valuedouble;
        c->tokens_out += n * tout->valuedouble;
        if (esc) {
            c->edge_tries += n;
            c->escalated += n * esc->valuedouble;
            c->esc_known = true;
        }
        rows++;
        cJSON_Delete(j);
    }
    fclose(f);
    if (!rc && !rows) {
        fprintf(stderr, "plan: %s: no traffic lines\n", path);
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------ costs ---- */

static double edge_cost(const plan_t *p, double in, double out)
{
    double c = (p->edge_in * in + p->edge_out * out) / 1e6;
    if (p->edge_hour > 0 && p->edge_tps > 0) c += p->edge_hour / 3600.0 * (in + out) / p->edge_tps;
    return c;
}

static double cloud_cost(const plan_t *p, double in, double out)
{
    return (p->cloud_in * in + p->cloud_out * out) / 1e6;
}

typedef struct verdict {
    double per_req_in, per_req_out, edge_usd, cloud_usd, esc, edge_first_usd;
    const char *tier; /* "edge", "cloud", or "edge?" (no escalation data) */
} verdict_t;

static verdict_t judge(const plan_t *p, const cell_t *c)
{
    verdict_t v = {0};
    v.per_req_in = c->tokens_in / c->requests;
    v.per_req_out = c->tokens_out / c->requests;
    v.edge_usd = edge_cost(p, v.per_req_in, v.per_req_out);
    v.cloud_usd = cloud_cost(p, v.per_req_in, v.per_req_out);
    v.esc = c->esc_known && c->edge_tries > 0 ? c->escalated / c->edge_tries : -1;
    double e = v.esc >= 0 ? v.esc : 0;
    v.edge_first_usd = v.edge_usd + e * v.cloud_usd;
    if (v.edge_first_usd >= v.cloud_usd || v.esc > p->max_escalation)
        v.tier = "cloud";
    else
        v.tier = v.esc >= 0 ? "edge" : "edge?";
    return v;
}

/* The break-even of a dedicated box for the traffic recommended to the edge. */
typedef struct crossover {
    double volume_tokens; /* current, per month, of the edge-suited traffic */
    double volume_requests;
    double tokens_per_request;
    double cloud_per_token; /* c */
    double esc;             /* e */
    double box_month;       /* F */
    double box_capacity;    /* C, tokens per month */
    double at_tokens;       /* V*, or -1 when one box never pays */
    double at_requests;
    double cloud_month, box_month_now; /* at the current volume */
} crossover_t;

static double box_cost(const crossover_t *x, double v)
{
    double boxes = x->box_capacity > 0 ? ceil(v / x->box_capacity) : 1;
    if (boxes < 1) boxes = 1;
    return boxes * x->box_month + x->esc * x->cloud_per_token * v;
}

static crossover_t cross(const plan_t *p)
{
    crossover_t x = {0};
    double cloud_usd = 0, esc_w = 0, req = 0;
    for (int t = 0; t < p->n_tasks; t++)
        for (int b = 0; b < PLAN_BANDS; b++) {
            const cell_t *c = &p->cells[t][b];
            if (c->requests <= 0) continue;
            verdict_t v = judge(p, c);
            if (!strcmp(v.tier, "cloud")) continue;
            x.volume_tokens += c->tokens_in + c->tokens_out;
            req += c->requests;
            cloud_usd += v.cloud_usd * c->requests;
            esc_w += (v.esc >= 0 ? v.esc : 0) * c->requests;
        }
    x.volume_requests = req;
    x.tokens_per_request = req > 0 ? x.volume_tokens / req : 0;
    x.cloud_per_token = x.volume_tokens > 0 ? cloud_usd / x.volume_tokens : 0;
    x.esc = req > 0 ? esc_w / req : 0;
    x.box_month = p->box_hour * PLAN_HOURS_PER_MONTH;
    x.box_capacity = p->box_tps * 3600.0 * PLAN_HOURS_PER_MONTH * p->utilization;
    double margin = x.cloud_per_token * (1 - x.esc);
    x.at_tokens = margin > 0 ? x.box_month / margin : -1;
    if (x.at_tokens > x.box_capacity) x.at_tokens = -1;
    x.at_requests =
        x.at_tokens >= 0 && x.tokens_per_request > 0 ? x.at_tokens / x.tokens_per_request : -1;
    x.cloud_month = x.cloud_per_token * x.volume_tokens;
    x.box_month_now = box_cost(&x, x.volume_tokens);
    return x;
}

/* ----------------------------------------------------------- output ---- */

static void print_tables(const plan_t *p, const crossover_t *x)
{
    printf("decision matrix: edge '%s' vs cloud '%s' (volumes per month)\n\n", p->edge_name,
           p->cloud_name);
    printf("%-16s %-7s %12s %8s %8s %12s %12s %8s %12s %-6s\n", "task", "prompt", "requests",
           "in/req", "out/req", "edge_usd", "cloud_usd", "escal", "edge1st_usd", "tier");
    for (int t = 0; t < p->n_tasks; t++)
        for (int b = 0; b < PLAN_BANDS; b++) {
            const cell_t *c = &p->cells[t][b];
            if (c->requests <= 0) continue;
            verdict_t v = judge(p, c);
            char esc[16];
            if (v.esc >= 0)
                snprintf(esc, sizeof esc, "%.3f", v.esc);
            else
                snprintf(esc, sizeof esc, "-");
            printf("%-16s %-7s %12.0f %8.0f %8.0f %12.8f %12.8f %8s %12.8f %-6s\n", p->tasks[t],
                   band_names[b], c->requests, v.per_req_in, v.per_req_out, v.edge_usd, v.cloud_usd,
                   esc, v.edge_first_usd, v.tier);
        }
    printf("\nedge: amortized hardware at full throughput; edge1st: edge plus the escalated "
           "share re-answered by the cloud; edge? = no escalation seen yet.\n\n");
    printf("dedicated edge box: %.2f USD/hour (%.0f USD/month), %.0f tokens/s at %.0f%% use "
           "= %.3g tokens/month\n",
           p->box_hour, x->box_month, p->box_tps, 100 * p->utilization, x->box_capacity);
    printf("edge-suited traffic now: %.0f requests/month, %.3g tokens, cloud %.3g USD/Mtok, "
           "escalation %.3f\n",
           x->volume_requests, x->volume_tokens, x->cloud_per_token * 1e6, x->esc);
    if (x->at_tokens >= 0)
        printf("crossover: the box is cheaper above %.3g tokens/month (%.0f requests/month); "
               "now: box %.2f vs cloud %.2f USD/month\n",
               x->at_tokens, x->at_requests, x->box_month_now, x->cloud_month);
    else
        printf("crossover: none within one box's capacity (the cloud's price per token, less "
               "escalations, does not cover the box); now: box %.2f vs cloud %.2f USD/month\n",
               x->box_month_now, x->cloud_month);
}

static int print_json(const plan_t *p, const crossover_t *x)
{
    buf_t b;
    buf_init(&b, PLAN_JSON_MAX);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "edge_tier");
    jsonw_str(&w, p->edge_name);
    jsonw_key(&w, "cloud_tier");
    jsonw_str(&w, p->cloud_name);
    jsonw_key(&w, "cells");
    jsonw_arr_begin(&w);
    for (int t = 0; t < p->n_tasks; t++)
        for (int bd = 0; bd < PLAN_BANDS; bd++) {
            const cell_t *c = &p->cells[t][bd];
            if (c->requests <= 0) continue;
            verdict_t v = judge(p, c);
            jsonw_obj_begin(&w);
            jsonw_key(&w, "task");
            jsonw_str(&w, p->tasks[t]);
            jsonw_key(&w, "prompt_band");
            jsonw_str(&w, band_names[bd]);
            jsonw_key(&w, "requests_per_month");
            jsonw_double(&w, c->requests);
            jsonw_key(&w, "tokens_in_per_request");
            jsonw_double(&w, v.per_req_in);
            jsonw_key(&w, "tokens_out_per_request");
            jsonw_double(&w, v.per_req_out);
            jsonw_key(&w, "edge_usd_per_request");
            jsonw_double(&w, v.edge_usd);
            jsonw_key(&w, "cloud_usd_per_request");
            jsonw_double(&w, v.cloud_usd);
            jsonw_key(&w, "escalation_rate");
            if (v.esc >= 0)
                jsonw_double(&w, v.esc);
            else
                jsonw_null(&w);
            jsonw_key(&w, "edge_first_usd_per_request");
            jsonw_double(&w, v.edge_first_usd);
            jsonw_key(&w, "recommended");
            jsonw_str(&w, v.tier);
            jsonw_obj_end(&w);
        }
    jsonw_arr_end(&w);
    jsonw_key(&w, "box");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "usd_per_month");
    jsonw_double(&w, x->box_month);
    jsonw_key(&w, "tokens_per_month");
    jsonw_double(&w, x->box_capacity);
    jsonw_key(&w, "crossover_tokens_per_month");
    if (x->at_tokens >= 0)
        jsonw_double(&w, x->at_tokens);
    else
        jsonw_null(&w);
    jsonw_key(&w, "crossover_requests_per_month");
    if (x->at_requests >= 0)
        jsonw_double(&w, x->at_requests);
    else
        jsonw_null(&w);
    jsonw_key(&w, "edge_suited_tokens_per_month");
    jsonw_double(&w, x->volume_tokens);
    jsonw_key(&w, "edge_suited_requests_per_month");
    jsonw_double(&w, x->volume_requests);
    jsonw_key(&w, "escalation_rate");
    jsonw_double(&w, x->esc);
    jsonw_key(&w, "cloud_usd_per_month_now");
    jsonw_double(&w, x->cloud_month);
    jsonw_key(&w, "box_usd_per_month_now");
    jsonw_double(&w, x->box_month_now);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    int rc = jsonw_error(&w);
    if (!rc) printf("%s\n", b.data);
    buf_deinit(&b);
    return rc;
}

/* Monthly cost against monthly volume (tokens), both curves, crossover and the
 * current volume marked. 0, or -1 after saying why the file could not be written. */
static int write_svg(const crossover_t *x, const char *path)
{
    const double W = 760, H = 420, L = 90, R = 60, T = 40, B = 60;
    double vmax = x->at_tokens > 0 ? 2.5 * x->at_tokens : 0;
    if (x->volume_tokens * 1.5 > vmax) vmax = x->volume_tokens * 1.5;
    if (vmax <= 0) vmax = x->box_capacity > 0 ? x->box_capacity : 1e9;
    enum { NPTS = 240 };
    double ymax = 0;
    for (int i = 0; i <= NPTS; i++) {
        double v = vmax * i / NPTS;
        double a = x->cloud_per_token * v, bx = box_cost(x, v);
        if (a > ymax) ymax = a;
        if (bx > ymax) ymax = bx;
    }
    if (ymax <= 0) ymax = 1;
    ymax *= 1.1;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "plan: %s: cannot write\n", path);
        return -1;
    }
#define PX(v) (L + (W - L - R) * (v) / vmax)
#define PY(y) (H - B - (H - T - B) * (y) / ymax)
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"22\" font-size=\"15\">Monthly cost of the edge-suited traffic: "
            "cloud vs a dedicated edge box</text>\n",
            W, H, L);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    for (int i = 0; i <= 5; i++) {
        double v = vmax * i / 5, y = ymax * i / 5;
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                PX(v), H - B + 18, v, L - 6, PY(y) + 4, ymax >= 50 ? 0 : 2, y);
    }
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">tokens per month</text>\n"
            "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" "
            "text-anchor=\"middle\">USD per month</text>\n",
            (L + W - R) / 2, H - 16, (T + H - B) / 2, (T + H - B) / 2);
    const char *names[2] = {"cloud", "edge box + escalations"};
    const char *colors[2] = {"#d62728", "#1f77b4"};
    for (int k = 0; k < 2; k++) {
        fprintf(f,
                "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                k ? "box" : "cloud", colors[k]);
        for (int i = 0; i <= NPTS; i++) {
            double v = vmax * i / NPTS;
            double y = k ? box_cost(x, v) : x->cloud_per_token * v;
            fprintf(f, "%.1f,%.1f ", PX(v), PY(y));
        }
        fprintf(f, "\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n", W - R - 200,
                T + 16 + 16.0 * k, colors[k], names[k]);
    }
    if (x->at_tokens > 0) {
        double y = x->cloud_per_token * x->at_tokens;
        fprintf(f,
                "<line class=\"crossover\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"black\" stroke-dasharray=\"4 3\"/>\n"
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\">crossover %.3g tokens/month</text>\n",
                PX(x->at_tokens), T, PX(x->at_tokens), H - B, PX(x->at_tokens), PY(y),
                PX(x->at_tokens) + 6, PY(y) - 8, x->at_tokens);
    }
    if (x->volume_tokens > 0)
        fprintf(f,
                "<line class=\"now\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#2ca02c\" stroke-dasharray=\"2 2\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" fill=\"#2ca02c\">now</text>\n",
                PX(x->volume_tokens), T, PX(x->volume_tokens), H - B, PX(x->volume_tokens) + 4,
                T + 48);
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "plan: %s: write failed\n", path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- main ---- */

static int parse_pos(const char *opt, const char *s, double lo, double hi, double *out)
{
    if (!cli_double(s, lo, hi, out)) return 0;
    fprintf(stderr, "plan: %s '%s': expected a number in [%g, %g]\n", opt, s, lo, hi);
    return -1;
}

int cmd_plan(int argc, char **argv)
{
    const char *url = NULL, *cfg_path = NULL, *traffic = NULL, *svg = NULL;
    const char *edge = NULL, *cloudt = NULL;
    double box_hour = -1, box_tps = -1, util = 0.5, max_esc = 0.25;
    int64_t since_ms = 0;
    int json = 0;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"store", required_argument, NULL, 's'},
        {"since", required_argument, NULL, 't'},
        {"traffic", required_argument, NULL, 'f'},
        {"edge", required_argument, NULL, 'e'},
        {"cloud", required_argument, NULL, 'C'},
        {"usd-per-hour", required_argument, NULL, 'u'},
        {"tokens-per-second", required_argument, NULL, 'p'},
        {"utilization", required_argument, NULL, 'U'},
        {"max-escalation", required_argument, NULL, 'm'},
        {"svg", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:t:f:e:C:u:p:U:m:g:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case 's':
            url = optarg;
            break;
        case 't':
            if (report_since("plan", optarg, &since_ms)) return 2;
            break;
        case 'f':
            traffic = optarg;
            break;
        case 'e':
            edge = optarg;
            break;
        case 'C':
            cloudt = optarg;
            break;
        case 'u':
            if (parse_pos("--usd-per-hour", optarg, 0, 1e6, &box_hour)) return 2;
            break;
        case 'p':
            if (parse_pos("--tokens-per-second", optarg, 0.001, 1e9, &box_tps)) return 2;
            break;
        case 'U':
            if (parse_pos("--utilization", optarg, 0.01, 1, &util)) return 2;
            break;
        case 'm':
            if (parse_pos("--max-escalation", optarg, 0, 1, &max_esc)) return 2;
            break;
        case 'g':
            svg = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            plan_usage(stdout);
            return 0;
        default:
            plan_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "plan: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!cfg_path) {
        fprintf(stderr, "plan: -c FILE is required (the tiers' prices)\n");
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, cfg_path, err, sizeof err)) {
        fprintf(stderr, "plan: %s\n", err);
        return 2;
    }
    int ei = -1, ci = -1;
    if (edge && (ei = config_tier_find(&cfg, edge)) < 0) {
        fprintf(stderr, "plan: --edge %s: no such tier in %s\n", edge, cfg_path);
    } else if (cloudt && (ci = config_tier_find(&cfg, cloudt)) < 0) {
        fprintf(stderr, "plan: --cloud %s: no such tier in %s\n", cloudt, cfg_path);
    } else {
        for (size_t i = 0; i < cfg.n_tiers && ei < 0; i++)
            if (cfg.tiers[i].role == ROUTE_ROLE_EDGE) ei = (int)i;
        if (ci < 0 && *cfg.reference_tier) ci = config_tier_find(&cfg, cfg.reference_tier);
        for (size_t i = 0; i < cfg.n_tiers && ci < 0; i++)
            if (cfg.tiers[i].role == ROUTE_ROLE_CLOUD) ci = (int)i;
        if (ei < 0 || ci < 0)
            fprintf(stderr, "plan: %s needs an edge and a cloud tier (or --edge / --cloud)\n",
                    cfg_path);
    }
    if (ei < 0 || ci < 0) {
        config_deinit(&cfg);
        return 2;
    }
    plan_t *p = mem_calloc(1, sizeof *p);
    const config_tier_t *et = &cfg.tiers[ei], *ct = &cfg.tiers[ci];
    p->edge_name = et->name;
    p->cloud_name = ct->name;
    p->edge_in = et->usd_per_mtok_in, p->edge_out = et->usd_per_mtok_out;
    p->edge_hour = et->usd_per_hour, p->edge_tps = et->tokens_per_second;
    p->cloud_in = ct->usd_per_mtok_in, p->cloud_out = ct->usd_per_mtok_out;
    p->box_hour = box_hour >= 0 ? box_hour : et->usd_per_hour;
    p->box_tps = box_tps > 0 ? box_tps : et->tokens_per_second;
    p->utilization = util;
    p->max_escalation = max_esc;
    int rc = 0;
    if (traffic) {
        rc = plan_from_file(p, traffic) ? 2 : 0;
    } else {
        store_t *s;
        int orc = report_store_open("plan", url, cfg_path, &s);
        if (orc) {
            rc = orc == REPORT_ECONFIG ? 2 : 1;
        } else {
            store_traffic_row_t *rows = NULL;
            size_t n = 0;
            int q = store_traffic_query(s, since_ms, &rows, &n);
            if (q) {
                fprintf(stderr, "plan: ledger query failed: %s (%s)\n", sy_strerror(q),
                        store_errmsg(s));
                rc = 1;
            } else if (plan_from_ledger(p, rows, n)) {
                fprintf(stderr, "plan: the ledger holds no answered request%s\n",
                        since_ms ? " in that period" : "");
                rc = 1;
            }
            mem_free(rows);
            store_close(s);
        }
    }
    if (!rc) {
        if (p->box_hour <= 0 || p->box_tps <= 0)
            fprintf(stderr, "plan: the box has no price or throughput (set the edge tier's "
                            "cost.usd_per_hour and tokens_per_second, or --usd-per-hour and "
                            "--tokens-per-second); no crossover computed\n");
        crossover_t x = cross(p);
        if (json)
            rc = print_json(p, &x) ? 1 : 0;
        else
            print_tables(p, &x);
        if (!rc && svg && write_svg(&x, svg)) rc = 1;
    }
    mem_free(p);
    config_deinit(&cfg);
    return rc;
}
