/* cmd_replay.c — `switchyard replay`: run the server's decision path (cli/decider.h:
 * api_decide() and router_decide(), tiers from the config) over many requests.
 *
 * Over logged requests (--requests, one body per line): one decision per line, as
 * POST /v1/route answers it. Over a routing CSV (prompt, weak and strong quality):
 * each row becomes a one-message request; the policy is compared with the
 * baselines: quality, cost, cloud share, APGR, CPT(50%), CPT(80%), strong share for
 * 95% quality; the cost–quality curve as an SVG; or one need-of-cloud score per row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/hash.h"
#include "base/mem.h"
#include "base/progress.h"
#include "cli/cli.h"
#include "cli/decider.h"
#include "cli/routedata.h"
#include "route/dataset.h"
#include "route/router.h"

#define CURVE_POINTS 101

/* Without -c: an edge tier standing for the weak model, a cloud tier for the
 * strong one, at the list prices the seed figures use. */
static const char builtin_config[] = "tiers:\n"
                                     "  edge:\n"
                                     "    kind: local\n"
                                     "    model: models/edge.gguf\n"
                                     "    cost: { usd_per_mtok_in: 0.05, usd_per_mtok_out: 0.2 }\n"
                                     "  cloud:\n"
                                     "    kind: openai\n"
                                     "    base_url: http://127.0.0.1:1/v1\n"
                                     "    model: cloud\n"
                                     "    privacy: external\n"
                                     "    cost: { usd_per_mtok_in: 2.5, usd_per_mtok_out: 10 }\n";

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyard replay [-c CONFIG] [--policy rules|bandit] [--model FILE]\n"
               "                         [--classifier FILE] [--exclude JSONL] [--svg OUT.svg]\n"
               "                         [--scores | --json] [--seed N] [--lambda L] DATA.csv\n"
               "       switchyard replay [-c CONFIG] [--store URL|none] --requests FILE.jsonl\n\n"
               "Runs the server's decision path over every row (prompt, weak_score,\n"
               "strong_score[, costs]): a tier of role edge stands for the weak model, one of\n"
               "role cloud for the strong one. With --requests, over request bodies (one per\n"
               "line), printing one POST /v1/route answer per line.\n"
               "  -c CONFIG       tiers, routing settings and router model from a config\n"
               "                  (default: a built-in edge and cloud tier)\n"
               "  --store URL     --requests: sessions' private marks (default: the config's\n"
               "                  store when it exists; none: no session store)\n"
               "  --policy P      rules (need-of-cloud threshold) or bandit (learns from the\n"
               "                  replayed rewards: quality - lambda x cost in USD)\n"
               "  --lambda L      bandit cost weight (default 20 per USD)\n"
               "  --model FILE    need-of-cloud model (default models/router.bin)\n"
               "  --classifier F  task classifier (default models/taskclass.bin)\n"
               "  --exclude JSONL drop these prompts (contaminated_prompts.jsonl)\n"
               "  --svg OUT       write the cost-quality curve\n"
               "  --scores        print one need-of-cloud score per row, in row order, only\n"
               "  --json          print the table as one JSON object\n\n"
               "Rows the need-of-cloud model was trained on (fingerprints in its file) make\n"
               "the APGR / CPT / share95 figures in-sample: replay says so on stderr and in\n"
               "the JSON's in_sample field.\n");
}

typedef struct point {
    const char *name;
    double share, quality, cost;
    const route_eval_t *ev; /* NULL: no score ordering */
} point_t;

static void print_point(const point_t *p)
{
    printf("%-24s %7.3f %8.4f %10.4f", p->name, p->share, p->quality, p->cost);
    if (p->ev)
        printf(" %7.3f %7.3f %7.3f %8.3f\n", p->ev->apgr, p->ev->cpt50, p->ev->cpt80,
               p->ev->share95);
    else
        printf(" %7s %7s %7s %8s\n", "-", "-", "-", "-");
}

/* The cost–quality plane: cloud share on x, quality on y; the router's curve, the
 * random diagonal, the operating points. */
static int write_svg(const char *path, const double *curve, const point_t *pts, size_t n_pts,
                     double qmin, double qmax)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    const double W = 640, H = 440, L = 60, T = 30, PW = 540, PH = 340;
    double lo = qmin - 0.02, hi = qmax + 0.02;
#define X(c) (L + (c)*PW)
#define Y(q) (T + PH - ((q)-lo) / (hi - lo) * PH)
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif' font-size='12'>\n<rect width='100%%' height='100%%' "
            "fill='white'/>\n",
            W, H);
    fprintf(f, "<rect x='%.0f' y='%.0f' width='%.0f' height='%.0f' fill='none' stroke='#444'/>\n",
            L, T, PW, PH);
    for (int i = 0; i <= 10; i += 2) {
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>%.1f</text>\n", X(i / 10.0),
                T + PH + 16, i / 10.0);
        double q = lo + (hi - lo) * i / 10.0;
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end'>%.3f</text>\n", L - 4, Y(q) + 4, q);
    }
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>cloud (strong model) share</text>\n",
            L + PW / 2, H - 8);
    fprintf(f,
            "<text x='14' y='%.1f' transform='rotate(-90 14 %.1f)' "
            "text-anchor='middle'>quality</text>\n",
            T + PH / 2, T + PH / 2);
    fprintf(f,
            "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#999' "
            "stroke-dasharray='4 3'/>\n",
            X(0), Y(qmin), X(1), Y(qmax));
    fprintf(f, "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='");
    for (int i = 0; i < CURVE_POINTS; i++)
        fprintf(f, "%.1f,%.1f ", X(i / (double)(CURVE_POINTS - 1)), Y(curve[i]));
    fprintf(f, "'/>\n");
    for (size_t i = 0; i < n_pts; i++) {
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='#d62728'/>\n", X(pts[i].share),
                Y(pts[i].quality));
        fprintf(f, "<text x='%.1f' y='%.1f'>%s</text>\n", X(pts[i].share) + 6,
                Y(pts[i].quality) - 6, pts[i].name);
    }
    fprintf(f, "<text x='%.1f' y='20'>need-of-cloud score (blue), random (dashed)</text>\n", L);
    fprintf(f, "</svg>\n");
#undef X
#undef Y
    return fclose(f) ? -1 : 0;
}

/* Cost of answering a row on one side: the data's cost when given, else tokens
 * at list prices of the replay tiers. */
static double row_cost(const route_row_t *r, bool strong, const route_decision_t *d,
                       const route_tier_t *t)
{
    double c = strong ? r->strong_cost : r->weak_cost;
    if (isfinite(c)) return c;
    return ((double)d->est_tokens_in * t->usd_per_mtok_in +
            (double)d->est_tokens_out * t->usd_per_mtok_out) /
           1e6;
}

/* --requests: one decision per request body line; a tier count on stderr. */
static int replay_requests(cli_decider_t *x, const char *path, uint64_t seed)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    buf_t out;
    buf_init(&out, 16u << 20);
    char *line = NULL;
    size_t cap = 0, n_req = 0, n_refused = 0, per_tier[ROUTE_MAX_TIERS] = {0};
    ssize_t n;
    int ret = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n) continue;
        route_decision_t d;
        buf_reset(&out);
        int st = cli_decider_run(x, line, (size_t)n, hash_mix(seed + n_req), &d, &out);
        if (st < 0) {
            fprintf(stderr, "switchyard replay: %s: request %zu: %s\n", path, n_req + 1,
                    sy_strerror(st));
            ret = 1;
            break;
        }
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
        n_req++;
        if (st == 200 && d.tier >= 0)
            per_tier[d.tier]++;
        else
            n_refused++;
    }
    free(line);
    if (ferror(f)) {
        perror(path);
        ret = 1;
    }
    fclose(f);
    buf_deinit(&out);
    fprintf(stderr, "replay: %zu requests:", n_req);
    for (size_t i = 0; i < x->cfg.n_tiers; i++)
        fprintf(stderr, " %s %zu,", x->tiers[i].name, per_tier[i]);
    fprintf(stderr, " refused %zu\n", n_refused);
    return ret;
}

/* The first tier of a role, or -1. */
static int tier_of_role(const cli_decider_t *x, route_role_t role)
{
    for (size_t i = 0; i < x->cfg.n_tiers; i++)
        if (x->tiers[i].role == role) return (int)i;
    return -1;
}

/* A routing CSV row as the request body a client would send. */
static void row_body(const route_row_t *row, buf_t *b)
{
    buf_reset(b);
    jsonw_t w;
    jsonw_init(&w, b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "model");
    jsonw_str(&w, "auto");
    jsonw_key(&w, "messages");
    jsonw_arr_begin(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "role");
    jsonw_str(&w, "user");
    jsonw_key(&w, "content");
    jsonw_strn(&w, row->prompt, row->len);
    jsonw_obj_end(&w);
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
}

/* How much of the replayed data the models were trained on. */
typedef struct in_sample {
    size_t rows;     /* rows whose prompt the need-of-cloud model was trained on */
    size_t cls_rows; /* ... the task classifier was trained on */
    bool digest;     /* the data set's digest equals the model's training digest */
} in_sample_t;

/* Counts the rows of ds in the models' training fingerprints and warns on stderr
 * when the need-of-cloud figures would be in-sample. */
static void check_in_sample(const router_t *r, const route_dataset_t *ds, const char *model,
                            in_sample_t *o)
{
    memset(o, 0, sizeof *o);
    const route_model_t *cl = router_cloud_model(r), *cls = router_classifier(r);
    for (size_t i = 0; i < ds->n; i++) {
        o->rows += route_model_trained_on(cl, ds->rows[i].prompt, ds->rows[i].len);
        o->cls_rows += route_model_trained_on(cls, ds->rows[i].prompt, ds->rows[i].len);
    }
    o->digest = cl && cl->digest == route_dataset_digest(ds);
    if (o->rows || o->digest)
        fprintf(stderr,
                "replay: warning: %zu of %zu rows (%.1f%%) are prompts the need-of-cloud model "
                "%s was trained on%s: APGR, CPT and share95 are in-sample and overstate how it "
                "ranks new prompts (cross-validated figures: switchyard train router)\n",
                o->rows, ds->n, 100.0 * (double)o->rows / (double)ds->n, model,
                o->digest ? " (this is its training data set)" : "");
}

/* --json: the table as one object. */
static void print_json(const point_t *pts, size_t n_pts, size_t rows, size_t fails,
                       const in_sample_t *ins, const char *model)
{
    buf_t b;
    buf_init(&b, 1u << 20);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "rows");
    jsonw_uint(&w, rows);
    jsonw_key(&w, "failed");
    jsonw_uint(&w, fails);
    jsonw_key(&w, "policies");
    jsonw_arr_begin(&w);
    for (size_t i = 0; i < n_pts; i++) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "name");
        jsonw_str(&w, pts[i].name);
        jsonw_key(&w, "cloud_share");
        jsonw_double(&w, pts[i].share);
        jsonw_key(&w, "quality");
        jsonw_double(&w, pts[i].quality);
        jsonw_key(&w, "cost_usd");
        jsonw_double(&w, pts[i].cost);
        if (pts[i].ev) {
            jsonw_key(&w, "apgr");
            jsonw_double(&w, pts[i].ev->apgr);
            jsonw_key(&w, "cpt50");
            jsonw_double(&w, pts[i].ev->cpt50);
            jsonw_key(&w, "cpt80");
            jsonw_double(&w, pts[i].ev->cpt80);
            jsonw_key(&w, "share95");
            jsonw_double(&w, pts[i].ev->share95);
        }
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "in_sample");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "warning");
    jsonw_bool(&w, ins->rows || ins->digest);
    jsonw_key(&w, "model");
    jsonw_str(&w, model);
    jsonw_key(&w, "rows");
    jsonw_uint(&w, ins->rows);
    jsonw_key(&w, "share");
    jsonw_double(&w, rows ? (double)ins->rows / (double)rows : 0.0);
    jsonw_key(&w, "training_set");
    jsonw_bool(&w, ins->digest);
    jsonw_key(&w, "classifier_rows");
    jsonw_uint(&w, ins->cls_rows);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    fwrite(b.data, 1, b.len, stdout);
    fputc('\n', stdout);
    buf_deinit(&b);
}

int cmd_replay(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *conf = NULL, *model = "models/router.bin", *cls = "models/taskclass.bin",
               *svg = NULL, *data = NULL, *exclude = NULL, *requests = NULL, *store = NULL;
    bool scores_only = false, model_set = false, cls_set = false, json = false;
    int policy = -1;
    uint64_t seed = 1;
    double lambda = 20.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc)
            conf = argv[++i];
        else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "rules"))
                policy = ROUTE_POLICY_RULES;
            else if (!strcmp(argv[i], "bandit"))
                policy = ROUTE_POLICY_BANDIT;
            else {
                fprintf(stderr, "switchyard replay: --policy rules or bandit\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i], model_set = true;
        else if (!strcmp(argv[i], "--classifier") && i + 1 < argc)
            cls = argv[++i], cls_set = true;
        else if (!strcmp(argv[i], "--exclude") && i + 1 < argc)
            exclude = argv[++i];
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc)
            svg = argv[++i];
        else if ((!strcmp(argv[i], "--seed") || !strcmp(argv[i], "--lambda")) && i + 1 < argc) {
            i++;
            if (argv[i - 1][2] == 's' ? cli_u64(argv[i], &seed)
                                      : cli_double(argv[i], 0, 1e9, &lambda)) {
                fprintf(stderr, "switchyard replay: bad value '%s' for %s\n", argv[i], argv[i - 1]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--scores"))
            scores_only = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            requests = argv[++i];
        else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
            if (!strcmp(store, "none")) store = "";
        } else if (argv[i][0] == '-' || data) {
            fprintf(stderr, "switchyard replay: unexpected '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else
            data = argv[i];
    }
    if (requests) {
        if (data || policy >= 0 || model_set || cls_set || svg || scores_only || exclude || json) {
            fprintf(stderr, "switchyard replay: --requests decides as the server does: only -c "
                            "and --store apply\n");
            return 2;
        }
        cli_decider_t x;
        if (cli_decider_open(&x, "switchyard replay", conf, builtin_config, store)) return 1;
        int ret = replay_requests(&x, requests, seed);
        cli_decider_close(&x);
        return ret;
    }
    if (!data) {
        usage(stderr);
        return 2;
    }
    if (json && scores_only) {
        fprintf(stderr, "switchyard replay: --scores and --json are exclusive\n");
        return 2;
    }

    cli_decider_t x;
    if (cli_decider_load(&x, "switchyard replay", conf, builtin_config)) return 1;
    if (policy >= 0) x.cfg.route.policy = (route_policy_kind_t)policy;
    x.cfg.route.cloud_above_tokens = 0; /* benchmark rows carry no max_tokens */
    /* The rows' models come from the flags, the config, or the committed files. */
    if (!model_set && *x.cfg.router_model) model = x.cfg.router_model;
    if (!cls_set && *x.cfg.classifier_model) cls = x.cfg.classifier_model;
    static char path[4096], cpath[4096];
    snprintf(path, sizeof path, "%s", model);
    snprintf(cpath, sizeof cpath, "%s", cls);
    model = path;
    cls = cpath;
    x.cfg.router_model[0] = 0;
    x.cfg.classifier_model[0] = 0;
    route_dataset_t ds = {0};
    if (cli_decider_build(&x, "") || routedata_load_routing(data, exclude, &ds) || !ds.n) {
        route_dataset_deinit(&ds);
        cli_decider_close(&x);
        return 1;
    }
    int weak = tier_of_role(&x, ROUTE_ROLE_EDGE), strong_t = tier_of_role(&x, ROUTE_ROLE_CLOUD);
    if (weak < 0 || strong_t < 0) {
        fprintf(stderr, "switchyard replay: the config needs a tier of role edge (the weak model) "
                        "and one of role cloud (the strong one)\n");
        route_dataset_deinit(&ds);
        cli_decider_close(&x);
        return 1;
    }
    router_t *r = x.router;
    route_model_t *m = routedata_load_model(cls);
    if (m) router_set_classifier(r, m);
    m = routedata_load_model(model);
    if (m && router_set_cloud_model(r, m)) {
        fprintf(stderr, "%s: not a need-of-cloud model\n", model);
        route_model_free(m);
    }
    if (!router_cloud_model(r) && x.cfg.route.policy == ROUTE_POLICY_RULES)
        fprintf(stderr, "no need-of-cloud model: rules use the task class alone\n");
    in_sample_t ins;
    check_in_sample(r, &ds, model, &ins);
    const route_tier_t *tiers = x.tiers;
    size_t n = ds.n;
    double *score = mem_alloc(n * sizeof *score), *w = mem_alloc(n * sizeof *w),
           *st = mem_alloc(n * sizeof *st);
    double q = 0, cost = 0, cost_w = 0, cost_s = 0, q_oracle = 0, cost_oracle = 0;
    size_t n_cloud = 0, n_oracle = 0, fails = 0;
    progress_t pr;
    progress_init(&pr, "replay", n);
    pr.quiet = scores_only || json;
    route_decision_t d;
    buf_t body, out;
    buf_init(&body, x.cfg.max_body_bytes);
    buf_init(&out, 16u << 20);
    for (size_t i = 0; i < n; i++) {
        const route_row_t *row = &ds.rows[i];
        row_body(row, &body);
        buf_reset(&out);
        if (cli_decider_run(&x, body.data, body.len, hash_mix(seed + i), &d, &out) != 200) {
            fails++;
            d.tier = weak;
        }
        bool strong = tiers[d.tier].role == ROUTE_ROLE_CLOUD;
        double qi = strong ? row->strong : row->weak;
        double ci = row_cost(row, strong, &d, &tiers[d.tier]);
        q += qi;
        cost += ci;
        n_cloud += strong;
        cost_w += row_cost(row, false, &d, &tiers[weak]);
        cost_s += row_cost(row, true, &d, &tiers[strong_t]);
        bool o = row->strong > row->weak;
        q_oracle += o ? row->strong : row->weak;
        cost_oracle += row_cost(row, o, &d, &tiers[o ? strong_t : weak]);
        n_oracle += o;
        score[i] = d.features.cloud_score;
        w[i] = row->weak;
        st[i] = row->strong;
        if (x.cfg.route.policy == ROUTE_POLICY_BANDIT)
            router_feedback(r, &d.features, d.tier, route_bandit_reward(qi, ci, 0, lambda, 0));
        if (!pr.quiet) progress_update(&pr, i + 1);
    }
    buf_deinit(&body);
    buf_deinit(&out);
    if (!pr.quiet) progress_finish(&pr);
    int ret = 0;
    if (scores_only) {
        for (size_t i = 0; i < n; i++)
            printf("%.6f\n", score[i]);
    } else {
        double dn = (double)n;
        route_eval_t ev, ev_rand, ev_oracle;
        double curve[CURVE_POINTS];
        route_eval_scores(score, w, st, n, &ev, curve, CURVE_POINTS);
        double *aux = mem_alloc(n * sizeof *aux);
        for (size_t i = 0; i < n; i++)
            aux[i] = (double)(hash_mix(seed ^ (i * 7919)) >> 11);
        route_eval_scores(aux, w, st, n, &ev_rand, NULL, 0);
        for (size_t i = 0; i < n; i++)
            aux[i] = st[i] - w[i];
        route_eval_scores(aux, w, st, n, &ev_oracle, NULL, 0);
        mem_free(aux);
        double share = (double)n_cloud / dn;
        char pname[64];
        snprintf(pname, sizeof pname, "%s%s",
                 x.cfg.route.policy == ROUTE_POLICY_BANDIT ? "bandit" : "rules",
                 router_cloud_model(r) ? "" : " (task only)");
        point_t pts[] = {
            {"all-weak", 0, ev.q_weak, cost_w, NULL},
            {"all-strong", 1, ev.q_strong, cost_s, NULL},
            {"random", share, ev.q_weak + share * (ev.q_strong - ev.q_weak),
             cost_w + share * (cost_s - cost_w), &ev_rand},
            {"oracle", (double)n_oracle / dn, q_oracle / dn, cost_oracle, &ev_oracle},
            {pname, share, q / dn, cost, router_cloud_model(r) ? &ev : NULL},
        };
        if (json) {
            print_json(pts, sizeof pts / sizeof *pts, n, fails, &ins, model);
        } else {
            printf("\n%zu rows%s; APGR/CPT columns rank rows by the need-of-cloud score%s\n\n", n,
                   fails ? " (some decisions failed: counted as edge)" : "",
                   ins.rows ? " (IN-SAMPLE: the model was trained on these rows)" : "");
            printf("%-24s %7s %8s %10s %7s %7s %7s %8s\n", "policy", "cloud", "quality", "cost_usd",
                   "APGR", "CPT50", "CPT80", "share95");
            for (size_t i = 0; i < sizeof pts / sizeof *pts; i++)
                print_point(&pts[i]);
        }
        if (svg && router_cloud_model(r)) {
            point_t op[] = {pts[3], pts[4]};
            if (write_svg(svg, curve, op, 2, ev.q_weak, fmax(ev.q_strong, q_oracle / dn)))
                ret = 1;
            else
                fprintf(stderr, "wrote %s\n", svg);
        }
    }
    mem_free(score);
    mem_free(w);
    mem_free(st);
    route_dataset_deinit(&ds);
    cli_decider_close(&x);
    return ret;
}
