/* train_pii.c — `switchyard train pii`: the PII sequence labeller (PERSON and
 * STREET_ADDRESS) trained on generated text, with cross-validation by template.
 *
 * Records come from the generator (pii_gen.c: shared/data/pii/templates.txt and its
 * own sentences, census names); the labelled evaluation files are never read. With
 * --cv K the template ids are split into K folds: each fold's templates are held out
 * entirely, a model is trained on the others and scored on them by overlap (the
 * `pii --eval` rule: a finding counts when it overlaps a gold span of its type), so a
 * model that learned the templates' wording rather than names shows it here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/piiload.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/pii_gen.h"
#include "cli/routedata.h"

#define MAX_GOLD 32

typedef struct rec {
    char *text;
    size_t len;
    pii_span_t gold[MAX_GOLD];
    size_t ngold;
    long tmpl;
} rec_t;

typedef struct pr {
    size_t gold, gold_hit, pred, pred_hit;
} pr_t;

/* Fold of a template id. */
static int fold_of(long tmpl, int k)
{
    return (int)(hash_mix((uint64_t)tmpl * 0x9E3779B97F4A7C15ull + 17) % (uint64_t)k);
}

/* Trains a model on the records whose fold is not skip (-1: all) into out. */
static int train_on(const pii_scanner_t *base, const rec_t *r, size_t n, int k, int skip,
                    int epochs, unsigned bits, unsigned long seed, buf_t *out)
{
    pii_label_trainer_t *t = pii_label_trainer_new(base, bits);
    if (!t) return SY_EINVAL;
    size_t *ord = mem_alloc(n * sizeof *ord);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (skip < 0 || fold_of(r[i].tmpl, k) != skip) ord[m++] = i;
    uint64_t rng = seed * 2654435761u + 1;
    int rc = 0;
    for (int e = 0; e < epochs && !rc; e++) {
        for (size_t i = m; i > 1; i--) { /* a fresh order each epoch */
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t j = (size_t)(rng % i), x = ord[i - 1];
            ord[i - 1] = ord[j], ord[j] = x;
        }
        for (size_t i = 0; i < m && !rc; i++)
            rc = pii_label_trainer_learn(t, r[ord[i]].text, r[ord[i]].len, r[ord[i]].gold,
                                         r[ord[i]].ngold);
    }
    const pii_label_stats_t *st = pii_label_trainer_stats(t);
    fprintf(stderr, "  trained on %zu records x %d epochs: %zu windows, %.1f%% decoded wrong\n", m,
            epochs, st->windows,
            100.0 * (double)st->wrong_windows / (double)(st->windows + !st->windows));
    if (!rc) rc = pii_label_trainer_save(t, out);
    pii_label_trainer_free(t);
    mem_free(ord);
    return rc;
}

/* Prints one error of the cross-validation: what, the span, the template, the text's
 * first line. */
static void err_print(FILE *f, const char *what, pii_type_t t, const rec_t *r, size_t st, size_t en)
{
    const char *nl = memchr(r->text, '\n', r->len);
    int tl = (int)(nl ? (size_t)(nl - r->text) : r->len);
    char v[64]; /* the span on one line, cut at 63 bytes */
    size_t k = 0;
    for (size_t i = st; i < en && k + 1 < sizeof v; i++)
        v[k++] = r->text[i] == '\n' ? ' ' : r->text[i];
    v[k] = 0;
    fprintf(f, "%-5s %-14s %-28s t%-4ld | %.*s\n", what, pii_type_name(t), v, r->tmpl,
            tl > 120 ? 120 : tl, r->text);
}

/* Scores the records of fold only (-1: all) with scanner s, by overlap, counting into
 * per[src] and adr[src] (src 0: a line of the templates file, id <= nfile; 1: a sentence
 * of the generator's own); with errs, prints every missed and false PERSON and
 * STREET_ADDRESS there. */
static void score_on(const pii_scanner_t *s, const rec_t *r, size_t n, int k, int only, long nfile,
                     pr_t per[2], pr_t adr[2], FILE *errs)
{
    pii_scratch_t *sc = pii_scratch_new(s);
    for (size_t i = 0; i < n; i++) {
        if (only >= 0 && fold_of(r[i].tmpl, k) != only) continue;
        const pii_span_t *sp;
        size_t ns;
        if (pii_scan_all(s, sc, r[i].text, r[i].len, &sp, &ns)) continue;
        for (int ty = 0; ty < 2; ty++) {
            pii_type_t T = ty ? PII_STREET_ADDRESS : PII_PERSON;
            pr_t *c = &(ty ? adr : per)[r[i].tmpl > nfile];
            for (size_t g = 0; g < r[i].ngold; g++) {
                if (r[i].gold[g].type != T) continue;
                c->gold++;
                size_t q = 0;
                while (q < ns && !(sp[q].type == T && sp[q].start < r[i].gold[g].end &&
                                   r[i].gold[g].start < sp[q].end))
                    q++;
                c->gold_hit += q < ns;
                if (q == ns && errs)
                    err_print(errs, "miss", T, &r[i], r[i].gold[g].start, r[i].gold[g].end);
            }
            for (size_t q = 0; q < ns; q++) {
                if (sp[q].type != T) continue;
                c->pred++;
                size_t g = 0;
                while (g < r[i].ngold &&
                       !(r[i].gold[g].type == T && sp[q].start < r[i].gold[g].end &&
                         r[i].gold[g].start < sp[q].end))
                    g++;
                c->pred_hit += g < r[i].ngold;
                if (g == r[i].ngold && errs)
                    err_print(errs, "false", T, &r[i], sp[q].start, sp[q].end);
            }
        }
    }
    pii_scratch_free(sc);
}

static pr_t pr_sum(pr_t a, pr_t b)
{
    return (pr_t){a.gold + b.gold, a.gold_hit + b.gold_hit, a.pred + b.pred,
                  a.pred_hit + b.pred_hit};
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0;
}

/* One row of the cross-validation table: PERSON p and STREET_ADDRESS a over n records. */
static void cv_row(const char *label, size_t n, pr_t p, pr_t a)
{
    printf("%-5s %8zu | %.3f / %.3f (%5zu)   | %.3f / %.3f (%5zu)\n", label, n,
           ratio(p.pred_hit, p.pred), ratio(p.gold_hit, p.gold), p.gold, ratio(a.pred_hit, a.pred),
           ratio(a.gold_hit, a.gold), a.gold);
}

static void usage_pii(FILE *f)
{
    fprintf(f, "usage: switchyard train pii [-o data/names/pii-labeller.bin] [--names DIR]\n"
               "           [--templates FILE] [--records N] [--epochs E] [--bits B] [--seed S]\n"
               "           [--cv K [--errors]]\n\n"
               "Trains the PERSON / STREET_ADDRESS labeller on N generated records (default\n"
               "600000; templates from shared/data/pii/templates.txt, names from the census\n"
               "lists), E passes (default 2), 2^B feature buckets (default 14). --cv K first\n"
               "prints K-fold cross-validation by template (each fold's templates unseen in\n"
               "training), overlap P / R per fold and over the templates file's lines and the\n"
               "generator's own sentences (--errors: and every missed or false name and\n"
               "address of the held-out folds); then trains on everything and writes the model.\n");
}

int cmd_train_pii(int argc, char **argv)
{
    const char *out = "data/names/pii-labeller.bin", *names = "data/names", *tmpl = NULL;
    long nrec = 600000;
    int epochs = 2, cv = 0, errs = 0;
    unsigned bits = 14;
    unsigned long seed = 1;
    char tpath[4096], err[512];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        int bad = 0, n;
        uint64_t u;
        if (!strcmp(a, "-o") && v)
            out = argv[++i];
        else if (!strcmp(a, "--names") && v)
            names = argv[++i];
        else if (!strcmp(a, "--templates") && v)
            tmpl = argv[++i];
        else if (!strcmp(a, "--records") && v)
            bad = cli_int(argv[++i], 100, 10000000, &n), nrec = n;
        else if (!strcmp(a, "--epochs") && v)
            bad = cli_int(argv[++i], 1, 100, &epochs);
        else if (!strcmp(a, "--bits") && v)
            bad = cli_int(argv[++i], 10, 20, &n), bits = (unsigned)n;
        else if (!strcmp(a, "--seed") && v)
            bad = cli_u64(argv[++i], &u), seed = (unsigned long)u;
        else if (!strcmp(a, "--cv") && v)
            bad = cli_int(argv[++i], 0, 20, &cv);
        else if (!strcmp(a, "--errors"))
            errs = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_pii(stdout);
            return 0;
        } else {
            fprintf(stderr, "switchyard train pii: unknown option '%s'\n", a);
            usage_pii(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "switchyard train pii: bad value '%s' for %s\n", argv[i], a);
            return 2;
        }
    }
    if (nrec < 100 || nrec > 10000000 || epochs < 1 || epochs > 100 || bits < 10 || bits > 20 ||
        cv == 1 || cv < 0 || cv > 20) {
        fprintf(stderr, "switchyard train pii: --records 100.., --epochs 1..100, --bits "
                        "10..20, --cv 0 or 2..20\n");
        return 2;
    }
    if (!tmpl) {
        snprintf(tpath, sizeof tpath, "%s/data/pii/templates.txt", routedata_shared());
        tmpl = tpath;
    }
    buf_t tb;
    buf_init(&tb, 16u << 20);
    FILE *f = fopen(tmpl, "rb");
    int rc = f ? 0 : SY_EIO;
    if (f) {
        char chunk[65536];
        size_t n;
        while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
            rc = buf_append(&tb, chunk, n);
        fclose(f);
    }
    if (rc) {
        fprintf(stderr, "switchyard train pii: %s: %s\n", tmpl, sy_strerror(rc));
        buf_deinit(&tb);
        return 1;
    }
    pii_census_t census;
    if (piiload_census_read(names, &census, err, sizeof err)) {
        fprintf(stderr, "switchyard train pii: %s\n", err);
        buf_deinit(&tb);
        return 1;
    }
    pii_options_t o = {&census, 0.5f};
    pii_scanner_t *base = pii_scanner_new(&o, err, sizeof err);
    pii_gen_t *g = base ? pii_gen_new(tb.data ? tb.data : "", tb.len, &census, seed) : NULL;
    rec_t *r = mem_calloc((size_t)nrec, sizeof *r);
    size_t n = 0;
    long nfile = g ? pii_gen_file_templates(g) : 0;
    if (!g) {
        fprintf(stderr, "switchyard train pii: %s\n", base ? "generator failed" : err);
        rc = 1;
    }
    for (; g && n < (size_t)nrec; n++) {
        r[n].tmpl = pii_gen_next(g);
        const char *t = pii_gen_text(g, &r[n].len);
        r[n].text = mem_dup(t, r[n].len + 1);
        r[n].ngold = pii_gen_spans(g, r[n].gold, MAX_GOLD);
    }
    pii_gen_free(g);
    buf_t model;
    buf_init(&model, 64u << 20);
    if (!rc && cv) {
        printf("cross-validation by template, %d folds (%zu records, %d epochs, 2^%u buckets)\n",
               cv, n, epochs, bits);
        printf("%-5s %8s | %-22s | %-22s\n", "fold", "records", "PERSON P / R (gold)",
               "STREET_ADDRESS P / R (gold)");
        pr_t tp = {0}, ta = {0}, sp[2] = {{0}}, sa[2] = {{0}};
        for (int k = 0; k < cv && !rc; k++) {
            buf_reset(&model);
            rc = train_on(base, r, n, cv, k, epochs, bits, seed + (unsigned long)k, &model);
            pii_scanner_t *s = rc ? NULL : pii_scanner_new(&o, err, sizeof err);
            if (s && pii_scanner_load_labeller(s, model.data, model.len, err, sizeof err)) {
                pii_scanner_free(s);
                s = NULL;
            }
            if (!s) {
                fprintf(stderr, "switchyard train pii: fold %d: %s\n", k,
                        rc ? sy_strerror(rc) : err);
                rc = 1;
                break;
            }
            pr_t pp[2] = {{0}}, aa[2] = {{0}};
            size_t held = 0;
            for (size_t i = 0; i < n; i++)
                held += fold_of(r[i].tmpl, cv) == k;
            score_on(s, r, n, cv, k, nfile, pp, aa, errs ? stdout : NULL);
            pr_t p = pr_sum(pp[0], pp[1]), a = pr_sum(aa[0], aa[1]);
            for (int q = 0; q < 2; q++)
                sp[q] = pr_sum(sp[q], pp[q]), sa[q] = pr_sum(sa[q], aa[q]);
            char label[16];
            snprintf(label, sizeof label, "%d", k);
            cv_row(label, held, p, a);
            tp = pr_sum(tp, p), ta = pr_sum(ta, a);
            pii_scanner_free(s);
        }
        if (!rc) {
            cv_row("all", n, tp, ta);
            size_t nf = 0;
            for (size_t i = 0; i < n; i++)
                nf += r[i].tmpl <= nfile;
            cv_row("file", nf, sp[0], sa[0]);    /* the templates file's lines */
            cv_row("own", n - nf, sp[1], sa[1]); /* the generator's own sentences */
        }
    }
    if (!rc) {
        buf_reset(&model);
        rc = train_on(base, r, n, 1, -1, epochs, bits, seed, &model);
        FILE *of = rc ? NULL : fopen(out, "wb");
        if (!rc && (!of || fwrite(model.data, 1, model.len, of) != model.len)) rc = SY_EIO;
        if (of && fclose(of)) rc = SY_EIO;
        if (rc)
            fprintf(stderr, "switchyard train pii: %s: %s\n", out, sy_strerror(rc));
        else
            printf("wrote %s (%zu bytes)\n", out, model.len);
    }
    buf_deinit(&model);
    for (size_t i = 0; i < n; i++)
        mem_free(r[i].text);
    mem_free(r);
    pii_scanner_free(base);
    piiload_census_free(&census);
    buf_deinit(&tb);
    return rc ? 1 : 0;
}
