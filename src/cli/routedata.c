/* routedata.c — reading routing data and model files for the CLI; assembling the
 * task-classifier training set. */
#include "cli/routedata.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

int routedata_read_file(const char *path, size_t max, char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    buf_t b;
    buf_init(&b, max);
    char tmp[65536];
    size_t k;
    int rc = 0;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        if ((rc = buf_append(&b, tmp, k))) break;
    if (!rc && ferror(f)) rc = SY_EIO;
    fclose(f);
    if (rc) {
        buf_deinit(&b);
        return rc;
    }
    *n = b.len;
    if (!b.data) buf_putc(&b, 0), b.len = 0;
    *out = buf_steal(&b);
    return 0;
}

int routedata_write_file(const char *path, const void *p, size_t n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return -errno;
    int rc = fwrite(p, 1, n, f) == n ? 0 : SY_EIO;
    if (fclose(f) && !rc) rc = -errno;
    if (!rc && rename(tmp, path)) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

const char *routedata_shared(void)
{
    const char *s = getenv("SY_SHARED");
    return s && *s ? s : "../shared";
}

int routedata_fold(const char *text, size_t len)
{
    return (int)(hash_bytes(text, len, 0x51ed) % 5);
}

/* --------------------------------------------------------------- routing --- */

int routedata_load_routing(const char *csv, const char *contaminated, route_dataset_t *ds)
{
    char *p;
    size_t n;
    int rc = routedata_read_file(csv, 1u << 30, &p, &n);
    if (rc) {
        fprintf(stderr, "%s: %s\n", csv, sy_strerror(rc));
        memset(ds, 0, sizeof *ds);
        return rc;
    }
    char err[256];
    rc = route_dataset_parse_csv(ds, p, n, err, sizeof err);
    mem_free(p);
    if (rc) {
        fprintf(stderr, "%s: %s\n", csv, err);
        return rc;
    }
    if (!contaminated) return 0;
    if ((rc = routedata_read_file(contaminated, 1u << 28, &p, &n))) {
        fprintf(stderr, "%s: %s (no contamination filter)\n", contaminated, sy_strerror(rc));
        return 0;
    }
    uint64_t *h = NULL;
    size_t nh = 0, cap = 0;
    for (char *line = p, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end) *end = 0;
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        static const char *const keys[] = {"train_prompt", "eval_prompt", "prompt"};
        for (int k = 0; k < 3; k++) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (!cJSON_IsString(s)) continue;
            if (nh == cap) h = mem_realloc(h, (cap = cap ? cap * 2 : 64) * sizeof *h);
            h[nh++] = hash_bytes(s->valuestring, strlen(s->valuestring), 0);
        }
        cJSON_Delete(j);
    }
    size_t dropped = route_dataset_drop(ds, h, nh);
    fprintf(stderr, "routing data: %zu rows (%zu contaminated prompts dropped)\n", ds->n, dropped);
    mem_free(h);
    mem_free(p);
    return 0;
}

route_model_t *routedata_load_model(const char *path)
{
    char *p;
    size_t n;
    int rc = routedata_read_file(path, 64u << 20, &p, &n);
    if (rc) {
        fprintf(stderr, "%s: %s\n", path, sy_strerror(rc));
        return NULL;
    }
    char err[256];
    route_model_t *m = route_model_parse(p, n, err, sizeof err);
    mem_free(p);
    if (!m) fprintf(stderr, "%s: %s\n", path, err);
    return m;
}

/* ------------------------------------------------------------- taskclass --- */

static void add_text(routedata_texts_t *t, const char *s, size_t len, int label)
{
    if (!len || label < 0) return;
    if (t->n == t->cap)
        t->v = mem_realloc(t->v, (t->cap = t->cap ? t->cap * 2 : 4096) * sizeof *t->v);
    routedata_text_t *e = &t->v[t->n++];
    e->text = mem_strndup(s, len);
    e->label = label;
    e->fold = routedata_fold(s, len);
}

void routedata_texts_free(routedata_texts_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        mem_free(t->v[i].text);
    mem_free(t->v);
    memset(t, 0, sizeof *t);
}

/* Spec-Bench and MT-Bench categories. */
static int category_class(const char *c)
{
    static const struct {
        const char *name;
        int cls;
    } map[] = {
        {"translation", ROUTE_TASK_TRANSLATION},
        {"summarization", ROUTE_TASK_SUMMARIZATION},
        {"qa", ROUTE_TASK_KNOWLEDGE_QA},
        {"math_reasoning", ROUTE_TASK_MATH},
        {"rag", ROUTE_TASK_EXTRACTION},
        {"writing", ROUTE_TASK_WRITING},
        {"roleplay", ROUTE_TASK_CHAT},
        {"reasoning", ROUTE_TASK_REASONING},
        {"math", ROUTE_TASK_MATH},
        {"coding", ROUTE_TASK_CODE},
        {"extraction", ROUTE_TASK_EXTRACTION},
        {"stem", ROUTE_TASK_KNOWLEDGE_QA},
        {"humanities", ROUTE_TASK_KNOWLEDGE_QA},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(c, map[i].name)) return map[i].cls;
    return -1;
}

int routedata_benchmark_class(const char *b, const char *subset)
{
    if (!strcmp(b, "gsm8k")) return ROUTE_TASK_MATH;
    if (!strcmp(b, "mbpp")) return ROUTE_TASK_CODE;
    if (!strcmp(b, "mmlu") || !strcmp(b, "arc-challenge")) return ROUTE_TASK_KNOWLEDGE_QA;
    if (!strcmp(b, "winogrande")) return ROUTE_TASK_REASONING;
    if (!strcmp(b, "mt_bench")) return category_class(subset);
    return -1;
}

static char *read_opt(const char *shared, const char *rel, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/taskclass/%s", shared, rel);
    char *p = NULL;
    int rc = routedata_read_file(path, 1u << 28, &p, n);
    if (rc) fprintf(stderr, "%s: %s (skipped)\n", path, sy_strerror(rc));
    return rc ? NULL : p;
}

static void load_csv_texts(routedata_texts_t *t, const char *p, size_t n)
{
    buf_t cells;
    buf_init(&cells, 1u << 20);
    size_t st[ROUTE_CSV_MAX_FIELDS], off = 0;
    int nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS); /* header */
    while (nf > 0 && (nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS)) > 0)
        add_text(t, cells.data + st[0], strlen(cells.data + st[0]), ROUTE_TASK_INTENT);
    buf_deinit(&cells);
}

int routedata_taskclass(const char *shared, const route_dataset_t *ds, int skip_fold,
                        size_t per_class, routedata_texts_t *out)
{
    routedata_texts_t all = {0};
    size_t n;
    char *p;
    if ((p = read_opt(shared, "specbench/spec_bench_question.jsonl", &n))) {
        for (char *line = p, *end; line && *line; line = end ? end + 1 : NULL) {
            end = strchr(line, '\n');
            if (end) *end = 0;
            cJSON *j = cJSON_Parse(line);
            if (!j) continue;
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "category");
            const cJSON *turns = cJSON_GetObjectItemCaseSensitive(j, "turns");
            const cJSON *t0 = cJSON_IsArray(turns) ? cJSON_GetArrayItem(turns, 0) : NULL;
            if (cJSON_IsString(c) && cJSON_IsString(t0))
                add_text(&all, t0->valuestring, strlen(t0->valuestring),
                         category_class(c->valuestring));
            cJSON_Delete(j);
        }
        mem_free(p);
    }
    if ((p = read_opt(shared, "banking77/train.csv", &n))) load_csv_texts(&all, p, n), mem_free(p);
    if ((p = read_opt(shared, "banking77/test.csv", &n))) load_csv_texts(&all, p, n), mem_free(p);
    if ((p = read_opt(shared, "clinc150/data_full.json", &n))) {
        cJSON *j = cJSON_Parse(p);
        const cJSON *split;
        cJSON_ArrayForEach(split, j)
        {
            const cJSON *e;
            cJSON_ArrayForEach(e, split)
            {
                const cJSON *s = cJSON_GetArrayItem(e, 0);
                if (cJSON_IsString(s))
                    add_text(&all, s->valuestring, strlen(s->valuestring), ROUTE_TASK_INTENT);
            }
        }
        cJSON_Delete(j);
        mem_free(p);
    }
    for (size_t i = 0; ds && i < ds->n; i++) {
        const route_row_t *r = &ds->rows[i];
        if (skip_fold >= 0 && routedata_fold(r->prompt, r->len) == skip_fold) continue;
        add_text(&all, r->prompt, r->len, routedata_benchmark_class(r->benchmark, r->subset));
    }
    if (!all.n) {
        fprintf(stderr, "no task-classifier data under %s/data\n", shared);
        return SY_ENOTFOUND;
    }
    /* Cap each class, keeping the examples with the smallest hash (a fixed random
     * sample): intent queries alone outnumber everything else. */
    size_t count[ROUTE_TASK_COUNT] = {0};
    for (size_t i = 0; i < all.n; i++)
        count[all.v[i].label]++;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < all.n; i++) {
        routedata_text_t *e = &all.v[i];
        size_t c = count[e->label];
        uint64_t h = hash_bytes(e->text, strlen(e->text), 77);
        if (c > per_class &&
            (double)(h >> 11) / 9007199254740992.0 >= (double)per_class / (double)c) {
            mem_free(e->text);
            continue;
        }
        if (out->n == out->cap)
            out->v =
                mem_realloc(out->v, (out->cap = out->cap ? out->cap * 2 : 4096) * sizeof *out->v);
        out->v[out->n++] = *e;
    }
    mem_free(all.v);
    return 0;
}

/* ------------------------------------------------------------- training --- */

static void text_dense(const char *s, size_t len, float *dense)
{
    route_features_t f = {0};
    route_text_t t = {"user", s, len};
    f.n_messages = 1;
    f.cloud_score = -1;
    route_features_text(&f, &t, 1, &t);
    route_features_dense(&f, dense);
}

route_model_t *routedata_train_classifier(const routedata_texts_t *t, int hold_fold,
                                          uint32_t n_buckets, uint64_t seed)
{
    route_model_t *m = route_model_new(ROUTE_MODEL_CLASSIFIER, ROUTE_TASK_COUNT, n_buckets,
                                       ROUTE_DENSE_BASE, seed);
    route_example_t *ex = mem_alloc((t->n ? t->n : 1) * sizeof *ex);
    float *dense = mem_alloc((t->n ? t->n : 1) * ROUTE_DENSE_DIM * sizeof(float));
    uint32_t *idx = mem_alloc(ROUTE_NGRAM_MAX * sizeof *idx);
    size_t count[ROUTE_TASK_COUNT] = {0}, n = 0, present = 0;
    uint64_t digest = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].fold != hold_fold) count[t->v[i].label]++;
    for (int k = 0; k < ROUTE_TASK_COUNT; k++)
        present += count[k] > 0;
    size_t total = 0;
    for (int k = 0; k < ROUTE_TASK_COUNT; k++)
        total += count[k];
    for (size_t i = 0; i < t->n; i++) {
        const routedata_text_t *e = &t->v[i];
        if (e->fold == hold_fold) continue;
        size_t len = strlen(e->text);
        size_t k = route_ngrams(e->text, len, seed, n_buckets, idx, ROUTE_NGRAM_MAX);
        if (k > ROUTE_CLASS_NGRAMS) k = ROUTE_CLASS_NGRAMS; /* as router_features */
        float *d = dense + n * ROUTE_DENSE_DIM;
        text_dense(e->text, len, d);
        uint32_t *copy = mem_dup(idx, (k ? k : 1) * sizeof *idx);
        double w = (double)total / ((double)present * (double)count[e->label]);
        ex[n++] = (route_example_t){
            copy, (uint32_t)k, d, (float)e->label, (float)(w < 0.3 ? 0.3 : w > 5 ? 5 : w), NULL};
        digest = hash_mix(digest ^ hash_bytes(e->text, len, (uint64_t)e->label));
    }
    route_train_opts_t o = {.epochs = 8, .lr = 0.5f, .l2 = 1e-6f, .seed = seed};
    route_model_train(m, ex, n, &o);
    m->digest = digest;
    for (size_t i = 0; i < n; i++)
        mem_free((void *)ex[i].idx);
    mem_free(idx);
    mem_free(dense);
    mem_free(ex);
    return m;
}

int routedata_features(const router_t *r, router_scratch_t *s, const char *prompt, size_t len,
                       route_features_t *f)
{
    route_text_t t = {"user", prompt, len};
    route_input_t in = {.texts = &t, .n_texts = 1, .n_messages = 1};
    return router_features(r, s, &in, f);
}
