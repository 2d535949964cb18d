/* cmd_calibrate.c — `switchyard calibrate`: pick the need-of-cloud threshold for a
 * target cloud share or a target quality (RouteLLM-style) on a routing CSV, and
 * write it into the model file's header. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/routedata.h"
#include "route/dataset.h"
#include "route/router.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: switchyard calibrate (--cloud-share S | --quality Q) [--model FILE]\n"
           "                            [--classifier FILE] [--exclude JSONL] [-o OUT] DATA.csv\n\n"
           "  --cloud-share S  threshold so that a share S (0..1) of rows goes to the cloud\n"
           "  --quality Q      smallest cloud share whose quality reaches Q x all-strong\n"
           "                   quality (e.g. 0.95)\n"
           "  --model FILE     need-of-cloud model to calibrate (default models/router.bin)\n"
           "  -o OUT           where to write it (default: in place)\n"
           "Calibrate on data the model was not trained on where you can: on its own\n"
           "training rows the scores are over-confident.\n");
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

int cmd_calibrate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = "models/router.bin", *cls = "models/taskclass.bin", *out = NULL,
               *data = NULL, *exclude = NULL;
    double share = -1, quality = -1;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--cloud-share") || !strcmp(argv[i], "--quality")) && i + 1 < argc) {
            if (cli_double(argv[i + 1], 0, 1, argv[i][2] == 'c' ? &share : &quality)) {
                fprintf(stderr, "switchyard calibrate: bad value '%s' for %s (0..1)\n", argv[i + 1],
                        argv[i]);
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--classifier") && i + 1 < argc)
            cls = argv[++i];
        else if (!strcmp(argv[i], "--exclude") && i + 1 < argc)
            exclude = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] == '-' || data) {
            fprintf(stderr, "switchyard calibrate: unexpected '%s'\n", argv[i]);
            return 2;
        } else
            data = argv[i];
    }
    if (!data || (share < 0) == (quality < 0) || share > 1 || quality > 1) {
        usage(stderr);
        return 2;
    }
    route_dataset_t ds;
    if (routedata_load_routing(data, exclude, &ds) || !ds.n) {
        route_dataset_deinit(&ds);
        return 1;
    }
    route_config_t rc;
    route_config_defaults(&rc);
    char err[256];
    router_t *r = router_new(&rc, NULL, err, sizeof err);
    route_model_t *m = routedata_load_model(cls);
    if (m) router_set_classifier(r, m);
    m = routedata_load_model(model);
    if (!m || router_set_cloud_model(r, m)) {
        fprintf(stderr, "%s: need a need-of-cloud model\n", model);
        route_model_free(m);
        router_free(r);
        route_dataset_deinit(&ds);
        return 1;
    }
    router_scratch_t *s = router_scratch_new(r);
    size_t n = ds.n;
    double *sc = mem_alloc(n * sizeof *sc), *w = mem_alloc(n * sizeof *w),
           *st = mem_alloc(n * sizeof *st);
    for (size_t i = 0; i < n; i++) {
        route_features_t f;
        routedata_features(r, s, ds.rows[i].prompt, ds.rows[i].len, &f);
        sc[i] = f.cloud_score;
        w[i] = ds.rows[i].weak;
        st[i] = ds.rows[i].strong;
    }
    route_eval_t ev;
    route_eval_scores(sc, w, st, n, &ev, NULL, 0);
    if (quality >= 0) {
        /* Walk the ranking until quality reaches the target. */
        double *curve = mem_alloc((n + 1) * sizeof *curve);
        route_eval_scores(sc, w, st, n, &ev, curve, n + 1);
        share = 1.0;
        for (size_t k = 0; k <= n; k++)
            if (curve[k] >= quality * ev.q_strong - 1e-12) {
                share = (double)k / (double)n;
                break;
            }
        mem_free(curve);
    }
    qsort(sc, n, sizeof *sc, cmp_desc);
    size_t k = (size_t)llround(share * (double)n);
    /* Cloud when score > threshold: the k-th highest score is the last one sent. */
    float th = k == 0 ? 1.0f : k >= n ? -1e-6f : (float)(0.5 * (sc[k - 1] + sc[k]));
    route_model_t *mm = (route_model_t *)router_cloud_model(r);
    printf("rows %zu, APGR %.3f, share95 %.3f\n", n, ev.apgr, ev.share95);
    printf("threshold %.4f -> cloud share %.3f (was %.4f)\n", th, share, mm->threshold);
    mm->threshold = th;
    buf_t b;
    buf_init(&b, 256u << 20);
    int rc2 = route_model_write(mm, &b);
    const char *path = out ? out : model;
    if (!rc2) rc2 = routedata_write_file(path, b.data, b.len);
    if (rc2)
        fprintf(stderr, "%s: %s\n", path, sy_strerror(rc2));
    else
        fprintf(stderr, "wrote %s\n", path);
    buf_deinit(&b);
    mem_free(sc);
    mem_free(w);
    mem_free(st);
    router_scratch_free(s);
    router_free(r);
    route_dataset_deinit(&ds);
    return rc2 ? 1 : 0;
}
