/* routedata.h — file reading and training-set assembly shared by `switchyard train`,
 * `calibrate` and `replay` (the route layer itself does no I/O). */
#ifndef SY_CLI_ROUTEDATA_H
#define SY_CLI_ROUTEDATA_H

#include <stddef.h>
#include <stdint.h>

#include "route/dataset.h"
#include "route/router.h"

/* Reads a whole file (cap max bytes) into an owned NUL-terminated buffer. 0 or
 * -errno / SY_ETOOBIG. */
int routedata_read_file(const char *path, size_t max, char **out, size_t *n);
/* Writes n bytes to path atomically (temp file + rename). 0 or -errno. */
int routedata_write_file(const char *path, const void *p, size_t n);

/* The shared data folder: $SY_SHARED, else "../shared". */
const char *routedata_shared(void);

/* Loads a routing CSV and drops the prompts of a contaminated-prompts JSONL file
 * (every "train_prompt"/"eval_prompt"/"prompt" string; path may be NULL). Prints
 * what it dropped to stderr. 0 or an error (message printed). */
int routedata_load_routing(const char *csv, const char *contaminated, route_dataset_t *ds);

/* Loads a model file. Returns owned model or NULL (message printed). */
route_model_t *routedata_load_model(const char *path);

/* Labelled texts for the task classifier. */
enum { ROUTEDATA_SRC_DATA = 0, ROUTEDATA_SRC_TEMPLATE = 1 };
#define ROUTEDATA_PER_TEMPLATE 40 /* requests built from each instruction template */

typedef struct routedata_text {
    char *text; /* owned */
    int label;  /* route_task_t */
    int fold;   /* 0..4: the text's hash (data), its template's rank (templates) */
    int source; /* ROUTEDATA_SRC_DATA: a prompt of the shared data; _TEMPLATE: built */
} routedata_text_t;

typedef struct routedata_texts {
    routedata_text_t *v;
    size_t n, cap;
} routedata_texts_t;

/* Assembles the classifier set from shared/data (Spec-Bench, banking77, CLINC150,
 * the benchmark labels of the routing rows; docs/routing.md has the mapping) and
 * the requests built from the instruction templates at path instructions (NULL:
 * none), capping each class at per_class examples (chosen by hash,
 * deterministic). Rows of ds whose fold equals skip_fold are left out (-1 keeps
 * all). 0 or an error (message printed). */
int routedata_taskclass(const char *shared, const char *instructions, const route_dataset_t *ds,
                        int skip_fold, size_t per_class, routedata_texts_t *out);
void routedata_texts_free(routedata_texts_t *t);
/* Every prompt of one prompt set of shared/data, whole, in file order, labelled 0:
 * "routing" (the prompts of routing/routing_train.csv), "specbench" (every turn of
 * every question), "banking77" (train, then test), "clinc150" (every split, out of
 * scope too). 0, SY_EINVAL for another name (message printed) or the read error
 * (message printed). */
int routedata_prompts(const char *shared, const char *set, routedata_texts_t *out);
/* The task class a routing row's benchmark/subset maps to, or -1. */
int routedata_benchmark_class(const char *benchmark, const char *subset);
/* Fold of a text (hash of its bytes mod 5). */
int routedata_fold(const char *text, size_t len);

/* Trains a classifier on t (rows with fold == hold_fold held back; -1 = none). */
route_model_t *routedata_train_classifier(const routedata_texts_t *t, int hold_fold,
                                          uint32_t n_buckets, uint64_t seed);

/* Task class of one prompt as a one-message request under classifier m (what
 * router_features computes); p (may be NULL) receives the ROUTE_TASK_COUNT
 * probabilities. */
int routedata_classify(const route_model_t *m, const char *s, size_t len, float *p);

/* Features of one prompt as a one-message request (what the router computes). */
int routedata_features(const router_t *r, router_scratch_t *s, const char *prompt, size_t len,
                       route_features_t *f);

#endif
