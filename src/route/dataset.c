/* dataset.c — CSV records, routing data sets, APGR / CPT metrics. */
#include "route/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

/* ------------------------------------------------------------------- CSV --- */

int route_csv_record(const char *p, size_t n, size_t *off, buf_t *cells, size_t *starts,
                     size_t max_fields)
{
    size_t i = *off;
    if (i >= n) return 0;
    buf_reset(cells);
    size_t nf = 0;
    for (;;) {
        if (nf >= max_fields) return SY_ETOOBIG;
        starts[nf++] = cells->len;
        int rc = 0;
        if (i < n && p[i] == '"') {
            i++;
            for (;;) {
                if (i >= n) return SY_EPARSE;
                if (p[i] == '"') {
                    if (i + 1 < n && p[i + 1] == '"') {
                        rc = buf_putc(cells, '"');
                        i += 2;
                        if (rc) return rc;
                        continue;
                    }
                    i++;
                    break;
                }
                size_t j = i;
                while (j < n && p[j] != '"')
                    j++;
                if ((rc = buf_append(cells, p + i, j - i))) return rc;
                i = j;
            }
        } else {
            size_t j = i;
            while (j < n && p[j] != ',' && p[j] != '\n' && p[j] != '\r')
                j++;
            if ((rc = buf_append(cells, p + i, j - i))) return rc;
            i = j;
        }
        if ((rc = buf_append(cells, "", 1))) return rc; /* NUL separator */
        if (i < n && p[i] == ',') {
            i++;
            continue;
        }
        if (i < n && p[i] == '\r') i++;
        if (i < n && p[i] == '\n') i++;
        break;
    }
    *off = i;
    return (int)nf;
}

/* ------------------------------------------------------------- data sets --- */

static double num(const char *s)
{
    if (!*s) return NAN;
    char *e;
    double v = strtod(s, &e);
    return *e ? NAN : v;
}

int route_dataset_parse_csv(route_dataset_t *ds, const char *p, size_t n, char *err, size_t errlen)
{
    memset(ds, 0, sizeof *ds);
    buf_t cells;
    buf_init(&cells, 1u << 24);
    size_t st[ROUTE_CSV_MAX_FIELDS], off = 0, cap = 0;
    int col[6] = {-1, -1, -1, -1, -1, -1}; /* prompt weak strong benchmark subset wc sc */
    int c_wc = -1, c_sc = -1;
    int nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS);
    int rc = 0;
    if (nf <= 0) {
        snprintf(err, errlen, "no CSV header");
        rc = SY_EPARSE;
        goto out;
    }
    static const char *const want[] = {"prompt", "weak_score", "strong_score", "benchmark",
                                       "subset"};
    for (int i = 0; i < nf; i++) {
        const char *h = cells.data + st[i];
        for (int k = 0; k < 5; k++)
            if (!strcmp(h, want[k])) col[k] = i;
        if (!strcmp(h, "weak_cost")) c_wc = i;
        if (!strcmp(h, "strong_cost")) c_sc = i;
    }
    if (col[0] < 0 || col[1] < 0 || col[2] < 0) {
        snprintf(err, errlen, "CSV header lacks prompt, weak_score or strong_score");
        rc = SY_EPARSE;
        goto out;
    }
    for (size_t rec = 2;; rec++) {
        nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS);
        if (nf == 0) break;
        if (nf < 0) {
            snprintf(err, errlen, "CSV record %zu: %s", rec, sy_strerror(nf));
            rc = SY_EPARSE;
            goto out;
        }
        if (nf == 1 && !cells.data[st[0]]) continue; /* blank line */
        int need = col[0] > col[1] ? col[0] : col[1];
        if (col[2] > need) need = col[2];
        if (nf <= need) {
            snprintf(err, errlen, "CSV record %zu: %d fields, want more than %d", rec, nf, need);
            rc = SY_EPARSE;
            goto out;
        }
        route_row_t r = {0};
        r.weak = num(cells.data + st[col[1]]);
        r.strong = num(cells.data + st[col[2]]);
        if (!isfinite(r.weak) || !isfinite(r.strong)) {
            snprintf(err, errlen, "CSV record %zu: scores are not numbers", rec);
            rc = SY_EPARSE;
            goto out;
        }
        r.prompt = mem_strdup(cells.data + st[col[0]]);
        r.len = strlen(r.prompt);
        r.benchmark = mem_strdup(col[3] >= 0 && col[3] < nf ? cells.data + st[col[3]] : "");
        r.subset = mem_strdup(col[4] >= 0 && col[4] < nf ? cells.data + st[col[4]] : "");
        r.weak_cost = c_wc >= 0 && c_wc < nf ? num(cells.data + st[c_wc]) : NAN;
        r.strong_cost = c_sc >= 0 && c_sc < nf ? num(cells.data + st[c_sc]) : NAN;
        if (ds->n == cap) {
            cap = cap ? cap * 2 : 1024;
            ds->rows = mem_realloc(ds->rows, cap * sizeof *ds->rows);
        }
        ds->rows[ds->n++] = r;
    }
out:
    buf_deinit(&cells);
    return rc;
}

void route_dataset_deinit(route_dataset_t *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        mem_free(ds->rows[i].prompt);
        mem_free(ds->rows[i].benchmark);
        mem_free(ds->rows[i].subset);
    }
    mem_free(ds->rows);
    memset(ds, 0, sizeof *ds);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t route_dataset_drop(route_dataset_t *ds, const uint64_t *drop, size_t n_drop)
{
    uint64_t *s = mem_dup(drop, (n_drop ? n_drop : 1) * sizeof *s);
    qsort(s, n_drop, sizeof *s, cmp_u64);
    size_t k = 0, dropped = 0;
    for (size_t i = 0; i < ds->n; i++) {
        route_row_t *r = &ds->rows[i];
        uint64_t h = hash_bytes(r->prompt, r->len, 0);
        if (n_drop && bsearch(&h, s, n_drop, sizeof *s, cmp_u64)) {
            mem_free(r->prompt);
            mem_free(r->benchmark);
            mem_free(r->subset);
            dropped++;
            continue;
        }
        ds->rows[k++] = *r;
    }
    ds->n = k;
    mem_free(s);
    return dropped;
}

uint64_t route_dataset_digest(const route_dataset_t *ds)
{
    uint64_t h = 0x5359524f55544531ull;
    for (size_t i = 0; i < ds->n; i++) {
        const route_row_t *r = &ds->rows[i];
        h = hash_mix(h ^ hash_bytes(r->prompt, r->len, h));
        h = hash_mix(h ^ (uint64_t)(r->weak * 1e6) ^ ((uint64_t)(r->strong * 1e6) << 32));
    }
    return h;
}

/* --------------------------------------------------------------- metrics --- */

typedef struct {
    double s;
    size_t i;
} scored_t;

static int cmp_scored(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void route_eval_scores(const double *score, const double *weak, const double *strong, size_t n,
                       route_eval_t *o, double *curve, size_t n_points)
{
    memset(o, 0, sizeof *o);
    if (!n) return;
    scored_t *v = mem_alloc(n * sizeof *v);
    double sw = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        v[i].s = isfinite(score[i]) ? score[i] : -INFINITY;
        v[i].i = i;
        sw += weak[i];
        ss += strong[i];
    }
    qsort(v, n, sizeof *v, cmp_scored);
    /* q[k] = quality with the top k rows on the strong model; tie blocks are
     * linear between their ends. */
    double *q = mem_alloc((n + 1) * sizeof *q);
    q[0] = sw / (double)n;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double gain = 0;
        while (b < n && v[b].s == v[a].s)
            gain += strong[v[b].i] - weak[v[b].i], b++;
        for (size_t k = a + 1; k <= b; k++)
            q[k] = q[a] + gain / (double)n * (double)(k - a) / (double)(b - a);
        a = b;
    }
    o->q_weak = q[0];
    o->q_strong = ss / (double)n;
    double gap = o->q_strong - o->q_weak;
    double area = 0;
    o->cpt50 = o->cpt80 = o->share95 = 1.0;
    bool h50 = false, h80 = false, h95 = false;
    for (size_t k = 0; k <= n; k++) {
        double pgr = gap > 0 ? (q[k] - q[0]) / gap : 1.0;
        double c = (double)k / (double)n;
        if (k) area += 0.5 * (pgr + (gap > 0 ? (q[k - 1] - q[0]) / gap : 1.0)) / (double)n;
        if (!h50 && pgr >= 0.5) o->cpt50 = c, h50 = true;
        if (!h80 && pgr >= 0.8) o->cpt80 = c, h80 = true;
        if (!h95 && q[k] >= 0.95 * o->q_strong - 1e-12) o->share95 = c, h95 = true;
    }
    o->apgr = area;
    if (curve && n_points >= 2)
        for (size_t p = 0; p < n_points; p++) {
            size_t k = (size_t)llround((double)p * (double)n / (double)(n_points - 1));
            curve[p] = q[k];
        }
    mem_free(q);
    mem_free(v);
}
