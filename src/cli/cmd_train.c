/* cmd_train.c — `switchyard train classifier|router`: fit the task classifier and
 * the need-of-cloud model, report held-out and cross-validated figures, write the
 * model files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/routedata.h"
#include "route/dataset.h"
#include "route/router.h"

#define CLS_BUCKETS   8192u
#define CLOUD_BUCKETS 16384u
#define PER_CLASS     3000
#define SEED          0x5357594152444d31ull

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyard train classifier [-o models/taskclass.bin] [--shared DIR]\n"
               "                                   [--cv N] [--eval TSV] [--no-write]\n"
               "                                   [--instructions TSV]\n"
               "       switchyard train pii [--cv K] [-o data/names/pii-labeller.bin] (--help)\n"
               "       switchyard train router [-o models/router.bin] [--classifier FILE]\n"
               "                               [--data CSV] [--shared DIR] [--folds-only]\n"
               "                               [--dump CSV]\n\n"
               "classifier (or task): task classes from shared/data (Spec-Bench, banking77,\n"
               "  CLINC150, the routing benchmarks) and requests built from the instruction\n"
               "  templates (default data/taskclass/instructions.tsv; '' for none); prints\n"
               "  N-fold (default 5, 0 none) cross-validated precision and recall per class,\n"
               "  then trains on everything; --eval scores the model on a class<TAB>prompt file.\n"
               "router: need-of-cloud model (expected gain of the strong model) on\n"
               "  routing_train.csv minus contaminated prompts; prints 5-fold cross-validated\n"
               "  APGR, CPT and the strong share for 95%% quality, then trains on everything\n"
               "  with the threshold at the cross-validated 95%%-quality point (switchyard\n"
               "  calibrate picks another). --dump writes one line per row: fold, out-of-fold\n"
               "  score, the row's need-of-cloud dense inputs (for analysis).\n");
}

static int save_model(const route_model_t *m, const char *path)
{
    buf_t b;
    buf_init(&b, 256u << 20);
    int rc = route_model_write(m, &b);
    if (!rc) rc = routedata_write_file(path, b.data, b.len);
    if (rc)
        fprintf(stderr, "%s: %s\n", path, sy_strerror(rc));
    else
        fprintf(stderr, "wrote %s (%zu KB)\n", path, (b.len + 1023) / 1024);
    buf_deinit(&b);
    return rc;
}

/* -------------------------------------------------------------- classifier --- */

#define K ROUTE_TASK_COUNT

/* Per-class precision and recall of a confusion matrix (rows: true class,
 * columns: predicted), each class's most frequent confusion, macro averages. */
static double print_confusion(size_t conf[K][K], size_t conf_data[K][K])
{
    printf("%-15s %6s %6s %6s %6s %12s  %s\n", "class", "n", "prec", "recall", "F1", "recall(data)",
           "most taken for");
    double macro_r = 0, macro_p = 0;
    size_t ok = 0, tot = 0;
    int present = 0;
    for (int c = 0; c < K; c++) {
        size_t n = 0, pred = 0, nd = 0;
        int worst = -1;
        for (int d = 0; d < K; d++) {
            n += conf[c][d];
            pred += conf[d][c];
            nd += conf_data[c][d];
            if (d != c && conf[c][d] && (worst < 0 || conf[c][d] > conf[c][worst])) worst = d;
        }
        ok += conf[c][c];
        tot += n;
        if (!n) {
            printf("%-15s %6zu %6s %6s %6s %12s\n", route_task_name((route_task_t)c), n, "-", "-",
                   "-", "-");
            continue;
        }
        double r = (double)conf[c][c] / (double)n,
               pr = pred ? (double)conf[c][c] / (double)pred : 0;
        macro_r += r;
        macro_p += pr;
        present++;
        char rd[32] = "-", wt[64] = "";
        if (nd) snprintf(rd, sizeof rd, "%.3f (%zu)", (double)conf_data[c][c] / (double)nd, nd);
        if (worst >= 0)
            snprintf(wt, sizeof wt, "%s %zu", route_task_name((route_task_t)worst), conf[c][worst]);
        printf("%-15s %6zu %6.3f %6.3f %6.3f %12s  %s\n", route_task_name((route_task_t)c), n, pr,
               r, pr + r > 0 ? 2 * pr * r / (pr + r) : 0.0, rd, wt);
    }
    macro_r /= present ? present : 1;
    macro_p /= present ? present : 1;
    printf("\naccuracy %.3f, macro precision %.3f, macro recall %.3f (%d classes)\n",
           tot ? (double)ok / (double)tot : 0.0, macro_p, macro_r, present);
    return macro_r;
}

/* Accuracy of m on a file of hand-written prompts (class<TAB>prompt per line, "#"
 * comments, "\n" a newline). */
static int eval_file(const route_model_t *m, const char *path)
{
    char *p;
    size_t n;
    int rc = routedata_read_file(path, 1u << 24, &p, &n);
    if (rc) {
        fprintf(stderr, "%s: %s\n", path, sy_strerror(rc));
        return 1;
    }
    size_t conf[K][K] = {{0}}, none[K][K] = {{0}};
    int lineno = 0;
    for (char *line = p, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end) *end = 0;
        lineno++;
        if (!*line || *line == '#') continue;
        char *tab = strchr(line, '\t');
        if (tab) *tab = 0;
        int want = tab ? route_task_parse(line) : -1;
        if (want < 0) {
            fprintf(stderr, "%s:%d: expected class<TAB>prompt\n", path, lineno);
            mem_free(p);
            return 1;
        }
        char *t = tab + 1, *o = t;
        for (char *i = t; *i; i++)
            if (i[0] == '\\' && i[1] == 'n')
                *o++ = '\n', i++;
            else
                *o++ = *i;
        *o = 0;
        int got = routedata_classify(m, t, strlen(t), NULL);
        conf[want][got]++;
        if (got != want)
            printf("  %-14s -> %-14s %.70s\n", route_task_name((route_task_t)want),
                   route_task_name((route_task_t)got), t);
    }
    mem_free(p);
    printf("\n%s:\n", path);
    print_confusion(conf, none);
    return 0;
}

static int train_classifier(const char *shared, const char *instructions, const char *outp, int cv,
                            const char *eval)
{
    char csv[4096], cont[4096];
    snprintf(csv, sizeof csv, "%s/data/routing/routing_train.csv", shared);
    snprintf(cont, sizeof cont, "%s/data/routing/contaminated_prompts.jsonl", shared);
    route_dataset_t ds;
    if (routedata_load_routing(csv, cont, &ds)) route_dataset_deinit(&ds);
    routedata_texts_t t;
    int rc = routedata_taskclass(shared, instructions, &ds, -1, PER_CLASS, &t);
    route_dataset_deinit(&ds);
    if (rc) return 1;

    /* Cross-validation over the text folds (data: by hash; templates: by
     * template, so a fold's phrasings are unseen). */
    if (cv > 0) {
        size_t conf[K][K] = {{0}}, conf_data[K][K] = {{0}};
        for (int f = 0; f < 5 && f < cv; f++) {
            route_model_t *m = routedata_train_classifier(&t, f, CLS_BUCKETS, SEED);
            for (size_t i = 0; i < t.n; i++) {
                if (t.v[i].fold != f) continue;
                int got = routedata_classify(m, t.v[i].text, strlen(t.v[i].text), NULL);
                conf[t.v[i].label][got]++;
                if (t.v[i].source == ROUTEDATA_SRC_DATA) conf_data[t.v[i].label][got]++;
            }
            route_model_free(m);
        }
        printf("task classifier: %zu examples, %d-fold cross-validation%s\n\n", t.n,
               cv < 5 ? cv : 5, cv < 5 ? " (first folds of 5)" : "");
        print_confusion(conf, conf_data);
    }

    route_model_t *m = routedata_train_classifier(&t, -1, CLS_BUCKETS, SEED);
    routedata_texts_free(&t);
    if (eval && eval_file(m, eval)) rc = 1;
    if (!rc && outp) rc = save_model(m, outp);
    route_model_free(m);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ router --- */

/* Gain lexicon settings, chosen by cross-validation (docs/routing.md): weight 1 /
 * 2 / 3 / 4 gave APGR 0.677 / 0.679 / 0.680 / 0.679; 2 / 10 pseudo-rows and a
 * minimum of 8 prompts within 0.002. */
#define LEX_WEIGHT 3.0
#define LEX_PRIOR  5.0
#define LEX_MIN    5

/* 64-bit keys, ascending (qsort). */
static int cmpu64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Gives m the gain lexicon of the rows with train[i] set: for each word unigram
 * and bigram (route_words) in at least LEX_MIN of those prompts, the mean of
 * (strong − weak − the rows' mean gain) over them, shrunk toward 0 by LEX_PRIOR
 * pseudo-rows. Each prompt counts a word once. Rarer words are left out (their
 * means are noise, and the table must stay small enough for the cache). */
static void fit_lexicon(route_model_t *m, const route_dataset_t *ds, const bool *train)
{
    size_t cap = 0, n = 0, nt = 0;
    double mean = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (train[i]) cap += ROUTE_WORDS_MAX, mean += ds->rows[i].strong - ds->rows[i].weak, nt++;
    mean /= nt ? (double)nt : 1.0;
    /* (key, row) pairs: sort every prompt's distinct keys into one list, then
     * sort the list and sum runs. */
    uint64_t *all = mem_alloc((cap ? cap : 1) * sizeof *all);
    float *gain = mem_alloc((cap ? cap : 1) * sizeof *gain);
    uint64_t *h = mem_alloc(ROUTE_WORDS_MAX * sizeof *h);
    typedef struct {
        uint64_t k;
        float g;
    } kg_t;
    for (size_t i = 0; i < ds->n; i++) {
        if (!train[i]) continue;
        size_t k = route_words(ds->rows[i].prompt, ds->rows[i].len, m->seed, h, ROUTE_WORDS_MAX);
        qsort(h, k, sizeof *h, cmpu64);
        float g = (float)(ds->rows[i].strong - ds->rows[i].weak - mean);
        for (size_t j = 0; j < k; j++)
            if (!j || h[j] != h[j - 1]) all[n] = h[j], gain[n++] = g;
    }
    kg_t *v = mem_alloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (kg_t){all[i], gain[i]};
    qsort(v, n, sizeof *v, cmpu64); /* k is the first member */
    size_t ne = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double sum = 0;
        while (b < n && v[b].k == v[a].k)
            sum += v[b].g, b++;
        if (b - a >= LEX_MIN)
            all[ne] = v[a].k, gain[ne++] = (float)(sum / ((double)(b - a) + LEX_PRIOR));
        a = b;
    }
    if (ne > ROUTE_LEX_MAX_SLOTS / 2) { /* the table's cap: keep the first keys */
        fprintf(stderr, "gain lexicon: %zu entries, keeping %u\n", ne, ROUTE_LEX_MAX_SLOTS / 2);
        ne = ROUTE_LEX_MAX_SLOTS / 2;
    }
    route_model_lexicon_set(m, all, gain, ne, (float)LEX_WEIGHT);
    mem_free(v);
    mem_free(h);
    mem_free(gain);
    mem_free(all);
}

/* Fits the need-of-cloud model on the rows with train[i] set, given each row's
 * feature vector. Two independent sigmoid heads learn how well each model answers,
 * P(strong score) and P(weak score); the score is their difference mapped to 0..1,
 * the expected gain of the strong model. Against one head on the soft label
 * (1 + strong − weak) / 2 this measured +0.004 cross-validated APGR, and with the
 * length and marker × task-class interactions of route_features_dense_cloud
 * +0.006 (share95 0.515 → 0.503): each head's target is far less often a tie
 * than the gain's, so the n-gram weights learn difficulty rather than noise.
 * Returns an owned model. */
static route_model_t *fit_cloud(const route_dataset_t *ds, const route_features_t *feat,
                                const bool *train, uint64_t digest)
{
    route_model_t *m =
        route_model_new(ROUTE_MODEL_CLOUD, 2, CLOUD_BUCKETS, ROUTE_CLOUD_DENSE_DIM, SEED);
    route_example_t *ex = mem_alloc(ds->n * sizeof *ex);
    float *dense = mem_alloc(ds->n * ROUTE_CLOUD_DENSE_DIM * sizeof(float));
    float *tgt = mem_alloc(ds->n * 2 * sizeof(float));
    uint32_t *idx = mem_alloc(ROUTE_NGRAM_MAX * sizeof *idx);
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (!train[i]) continue;
        const route_row_t *r = &ds->rows[i];
        size_t k = route_ngrams(r->prompt, r->len, SEED, CLOUD_BUCKETS, idx, ROUTE_NGRAM_MAX);
        float *d = dense + n * ROUTE_CLOUD_DENSE_DIM;
        route_features_dense_cloud(&feat[i], d);
        float *y = tgt + n * 2;
        y[0] = (float)r->strong;
        y[1] = (float)r->weak;
        ex[n++] = (route_example_t){
            mem_dup(idx, (k ? k : 1) * sizeof *idx), (uint32_t)k, d, 0.0f, 1.0f, y};
    }
    /* Small steps, weights averaged over epochs: plain SGD past 3 epochs overfits
     * the prompt n-grams (CV APGR falls); the average does not. */
    route_train_opts_t o = {.epochs = 8, .lr = 0.05f, .l2 = 1e-5f, .seed = SEED, .average = true};
    route_model_train(m, ex, n, &o);
    m->digest = digest;
    fit_lexicon(m, ds, train);
    /* Fingerprints of the prompts trained on: replay warns when it scores them. */
    uint32_t *fp = mem_alloc((ds->n ? ds->n : 1) * sizeof *fp);
    size_t nfp = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (train[i]) fp[nfp++] = route_model_fingerprint(ds->rows[i].prompt, ds->rows[i].len);
    route_model_fingerprints_set(m, fp, nfp);
    mem_free(fp);
    for (size_t i = 0; i < n; i++)
        mem_free((void *)ex[i].idx);
    mem_free(idx);
    mem_free(tgt);
    mem_free(dense);
    mem_free(ex);
    return m;
}

/* Feature vectors of every row under classifier cls (borrowed; NULL = markers). */
static void all_features(const route_dataset_t *ds, route_model_t *cls, route_features_t *feat)
{
    route_config_t cfg;
    route_config_defaults(&cfg);
    char err[128];
    router_t *r = router_new(&cfg, NULL, err, sizeof err);
    router_set_classifier(r, cls);
    router_scratch_t *s = router_scratch_new(r);
    for (size_t i = 0; i < ds->n; i++)
        routedata_features(r, s, ds->rows[i].prompt, ds->rows[i].len, &feat[i]);
    router_scratch_free(s);
    router_set_classifier(r, NULL); /* frees cls: the caller hands it over */
    router_free(r);
}

/* Descending order of doubles (qsort). */
static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

static void print_eval(const char *name, const route_eval_t *e)
{
    printf("%-22s %7.3f %7.3f %7.3f %7.3f %9.3f\n", name, e->apgr, e->cpt50, e->cpt80, e->share95,
           e->q_strong);
}

static int train_router(const char *shared, const char *instructions, const char *data,
                        const char *cls_path, const char *outp, bool folds_only, const char *dump)
{
    char csv[4096], cont[4096];
    snprintf(csv, sizeof csv, "%s/data/routing/routing_train.csv", shared);
    snprintf(cont, sizeof cont, "%s/data/routing/contaminated_prompts.jsonl", shared);
    route_dataset_t ds;
    if (routedata_load_routing(data ? data : csv, cont, &ds)) {
        route_dataset_deinit(&ds);
        return 1;
    }
    size_t n = ds.n;
    double *oof = mem_alloc(n * sizeof *oof), *w = mem_alloc(n * sizeof *w),
           *st = mem_alloc(n * sizeof *st), *len = mem_alloc(n * sizeof *len);
    bool *train = mem_alloc(n * sizeof *train);
    route_features_t *feat = mem_alloc(n * sizeof *feat);
    int *fold = mem_alloc(n * sizeof *fold);
    for (size_t i = 0; i < n; i++) {
        fold[i] = routedata_fold(ds.rows[i].prompt, ds.rows[i].len);
        w[i] = ds.rows[i].weak;
        st[i] = ds.rows[i].strong;
        len[i] = (double)ds.rows[i].len;
    }
    uint64_t digest = route_dataset_digest(&ds);

    float *oofd = dump ? mem_alloc(n * ROUTE_CLOUD_DENSE_DIM * sizeof *oofd) : NULL;
    /* 5-fold cross-validation; each fold's classifier is retrained without the
     * fold's rows, so no test prompt is seen by either model. */
    for (int f = 0; f < 5; f++) {
        routedata_texts_t t;
        if (routedata_taskclass(shared, instructions, &ds, f, PER_CLASS, &t)) return 1;
        route_model_t *cls = routedata_train_classifier(&t, -1, CLS_BUCKETS, SEED);
        routedata_texts_free(&t);
        all_features(&ds, cls, feat);
        for (size_t i = 0; i < n; i++)
            train[i] = fold[i] != f;
        route_model_t *m = fit_cloud(&ds, feat, train, digest);
        uint32_t *idx = mem_alloc(ROUTE_NGRAM_MAX * sizeof *idx);
        for (size_t i = 0; i < n; i++) {
            if (train[i]) continue;
            size_t k = route_ngrams(ds.rows[i].prompt, ds.rows[i].len, SEED, CLOUD_BUCKETS, idx,
                                    ROUTE_NGRAM_MAX);
            float dense[ROUTE_CLOUD_DENSE_DIM];
            route_features_dense_cloud(&feat[i], dense);
            oof[i] = route_model_cloud_text(m, route_model_cloud_score(m, idx, k, dense),
                                            ds.rows[i].prompt, ds.rows[i].len);
            if (oofd) memcpy(oofd + i * ROUTE_CLOUD_DENSE_DIM, dense, sizeof dense);
        }
        mem_free(idx);
        route_model_free(m);
        fprintf(stderr, "fold %d/5 done\n", f + 1);
    }
    /* --dump: the out-of-fold scores and dense inputs, row order, for analysis
     * outside this program (what a variant would add over the model). */
    if (dump) {
        FILE *df = fopen(dump, "w");
        if (!df) {
            perror(dump);
        } else {
            for (size_t i = 0; i < n; i++) {
                fprintf(df, "%d,%.6f", fold[i], oof[i]);
                for (int j = 0; j < ROUTE_CLOUD_DENSE_DIM; j++)
                    fprintf(df, ",%.5g", (double)oofd[i * ROUTE_CLOUD_DENSE_DIM + j]);
                fputc('\n', df);
            }
            fclose(df);
        }
        mem_free(oofd);
    }
    route_eval_t e_m, e_len, e_rand;
    route_eval_scores(oof, w, st, n, &e_m, NULL, 0);
    route_eval_scores(len, w, st, n, &e_len, NULL, 0);
    double *rnd = mem_alloc(n * sizeof *rnd);
    for (size_t i = 0; i < n; i++)
        rnd[i] = (double)(hash_mix(i + 12345) >> 11);
    route_eval_scores(rnd, w, st, n, &e_rand, NULL, 0);
    printf("need-of-cloud model, 5-fold cross-validation on %zu rows\n\n", n);
    printf("%-22s %7s %7s %7s %7s %9s\n", "router", "APGR", "CPT50", "CPT80", "share95",
           "q_strong");
    print_eval("need-of-cloud (CV)", &e_m);
    print_eval("prompt length", &e_len);
    print_eval("random", &e_rand);

    /* Threshold at the cross-validated share95 point. */
    double *sorted = mem_dup(oof, n * sizeof *oof);
    qsort(sorted, n, sizeof *sorted, cmpd);
    size_t k = (size_t)(e_m.share95 * (double)n);
    float th = k < n ? (float)sorted[k] : 1.0f;
    mem_free(sorted);

    int rc = 0;
    if (!folds_only) {
        route_model_t *cls = routedata_load_model(cls_path);
        if (!cls) {
            rc = 1;
        } else {
            all_features(&ds, cls, feat);
            for (size_t i = 0; i < n; i++)
                train[i] = true;
            route_model_t *m = fit_cloud(&ds, feat, train, digest);
            m->threshold = th;
            printf("\nthreshold %.4f (cloud share %.3f in cross-validation)\n", th, e_m.share95);
            rc = save_model(m, outp) ? 1 : 0;
            route_model_free(m);
        }
    }
    mem_free(rnd);
    mem_free(oof);
    mem_free(w);
    mem_free(st);
    mem_free(len);
    mem_free(train);
    mem_free(feat);
    mem_free(fold);
    route_dataset_deinit(&ds);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    /* `train pii --help` is the pii trainer's own usage */
    if (argc >= 2 && !strcmp(argv[1], "pii")) return cmd_train_pii(argc, argv);
    if (argc < 2 || cli_wants_help(argc, argv)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *shared = routedata_shared(), *out = NULL, *cls = "models/taskclass.bin",
               *data = NULL, *dump = NULL, *instr = "data/taskclass/instructions.tsv", *eval = NULL;
    bool folds_only = false, no_write = false;
    int cv = 5;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--classifier") && i + 1 < argc)
            cls = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--instructions") && i + 1 < argc)
            instr = argv[++i];
        else if (!strcmp(argv[i], "--eval") && i + 1 < argc)
            eval = argv[++i];
        else if (!strcmp(argv[i], "--cv") && i + 1 < argc) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 0 || v > 5) {
                fprintf(stderr, "switchyard train: --cv takes 0 (none) to 5 folds\n");
                return 2;
            }
            cv = (int)v;
        } else if (!strcmp(argv[i], "--no-write"))
            no_write = true;
        else if (!strcmp(argv[i], "--folds-only"))
            folds_only = true;
        else {
            fprintf(stderr, "switchyard train: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!*instr) instr = NULL;
    if (!strcmp(argv[1], "classifier") || !strcmp(argv[1], "task"))
        return train_classifier(shared, instr,
                                no_write ? NULL
                                : out    ? out
                                         : "models/taskclass.bin",
                                cv, eval);
    if (!strcmp(argv[1], "router"))
        return train_router(shared, instr, data, cls, out ? out : "models/router.bin", folds_only,
                            dump);
    fprintf(stderr, "switchyard train: unknown model '%s' (classifier, pii or router)\n", argv[1]);
    return 2;
}
