/* dataset.h — routing data sets in memory and the RouteLLM-style metrics.
 *
 * The parsers work on bytes the caller read (the route layer does no I/O). CSV is
 * RFC 4180: quoted fields may hold commas, doubled quotes and newlines.
 *
 * Metrics over a score per row (higher = send to the strong/cloud model first):
 * routing the top share c of rows to the strong model gives quality q(c) (mean of
 * strong_score on routed rows, weak_score on the rest). PGR(c) = (q(c) − q(0)) /
 * (q(1) − q(0)); APGR = ∫₀¹ PGR(c) dc (trapezoids over every row); CPT(x) = the
 * smallest c with PGR(c) ≥ x; share95 = the smallest c with q(c) ≥ 0.95·q(1).
 * Rows with equal scores are taken as one block whose gain grows linearly, which is
 * the expectation under random tie-breaking (so a constant score gives APGR 0.5).
 */
#ifndef SY_ROUTE_DATASET_H
#define SY_ROUTE_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* ------------------------------------------------------------------- CSV --- */

#define ROUTE_CSV_MAX_FIELDS 32

/* Parses one record starting at *off in p[0..n). Field contents (unquoted) are
 * appended to cells, each NUL-terminated; starts[i] is field i's offset in
 * cells->data. Returns the field count (> 0), 0 at end of input, SY_EPARSE
 * (unterminated quote) or SY_ETOOBIG (too many fields, cell cap). */
int route_csv_record(const char *p, size_t n, size_t *off, buf_t *cells, size_t *starts,
                     size_t max_fields);

/* ------------------------------------------------------------- data sets --- */

typedef struct route_row {
    char *prompt; /* owned, NUL-terminated */
    size_t len;
    char *benchmark;               /* owned; a label, never a router input */
    char *subset;                  /* owned; a label */
    double weak, strong;           /* quality scores (0..1) */
    double weak_cost, strong_cost; /* USD, NaN where unknown */
} route_row_t;

typedef struct route_dataset {
    route_row_t *rows; /* owned */
    size_t n;
} route_dataset_t;

/* Parses routing_train.csv-shaped data (a header naming prompt, weak_score,
 * strong_score and optionally benchmark, subset, weak_cost, strong_cost). Returns 0,
 * or SY_EPARSE with the record number in err. ds is caller-allocated and must be
 * freed with route_dataset_deinit even on error. */
int route_dataset_parse_csv(route_dataset_t *ds, const char *p, size_t n, char *err, size_t errlen);
void route_dataset_deinit(route_dataset_t *ds);
/* Drops rows whose prompt hashes (hash_bytes, seed 0) are in drop[] (any order).
 * Returns the number dropped. */
size_t route_dataset_drop(route_dataset_t *ds, const uint64_t *drop, size_t n_drop);
/* Digest of a data set (prompts and scores), for model headers. */
uint64_t route_dataset_digest(const route_dataset_t *ds);

/* --------------------------------------------------------------- metrics --- */

typedef struct route_eval {
    double q_weak, q_strong; /* mean quality, all-weak and all-strong */
    double apgr;
    double cpt50, cpt80; /* strong share for 50% / 80% of the gap */
    double share95;      /* strong share for 95% of all-strong quality */
} route_eval_t;

/* Metrics of score[] over rows weak[], strong[] (n rows). If curve is not NULL it
 * receives n_points (≥ 2) values of q(c) at c = i/(n_points−1). */
void route_eval_scores(const double *score, const double *weak, const double *strong, size_t n,
                       route_eval_t *out, double *curve, size_t n_points);

#endif
