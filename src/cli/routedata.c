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
    buf_t b;
    buf_init(&b, max);
    int rc = buf_read_file(&b, path);
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

static void add_text_src(routedata_texts_t *t, const char *s, size_t len, int label, int fold,
                         int source)
{
    if (!len || label < 0) return;
    if (t->n == t->cap)
        t->v = mem_realloc(t->v, (t->cap = t->cap ? t->cap * 2 : 4096) * sizeof *t->v);
    routedata_text_t *e = &t->v[t->n++];
    e->text = mem_strndup(s, len);
    e->label = label;
    e->fold = fold >= 0 ? fold : routedata_fold(s, len);
    e->source = source;
}

static void add_text(routedata_texts_t *t, const char *s, size_t len, int label)
{
    add_text_src(t, s, len, label, -1, ROUTEDATA_SRC_DATA);
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

/* MMLU subjects that are a task of their own rather than recall: mathematics and
 * statistics are math, formal logic and fallacies reasoning. */
static int mmlu_class(const char *subject)
{
    static const char *const math[] = {"abstract_algebra", "college_mathematics",
                                       "elementary_mathematics", "high_school_mathematics",
                                       "high_school_statistics"};
    for (size_t i = 0; i < sizeof math / sizeof *math; i++)
        if (!strcmp(subject, math[i])) return ROUTE_TASK_MATH;
    if (!strcmp(subject, "formal_logic") || !strcmp(subject, "logical_fallacies"))
        return ROUTE_TASK_REASONING;
    return ROUTE_TASK_KNOWLEDGE_QA;
}

int routedata_benchmark_class(const char *b, const char *subset)
{
    if (!strcmp(b, "gsm8k")) return ROUTE_TASK_MATH;
    if (!strcmp(b, "mbpp")) return ROUTE_TASK_CODE;
    if (!strcmp(b, "mmlu")) return mmlu_class(subset ? subset : "");
    if (!strcmp(b, "arc-challenge")) return ROUTE_TASK_KNOWLEDGE_QA;
    if (!strcmp(b, "winogrande")) return ROUTE_TASK_REASONING;
    if (!strcmp(b, "mt_bench")) return category_class(subset ? subset : "");
    return -1;
}

/* CLINC150 intents that are a task of their own: small talk is chat, "translate"
 * translation, "calculator" math, "definition" knowledge; the rest are assistant
 * commands (intent). */
static int clinc_class(const char *intent)
{
    static const char *const chat[] = {"who_made_you",
                                       "meaning_of_life",
                                       "who_do_you_work_for",
                                       "do_you_have_pets",
                                       "what_are_your_hobbies",
                                       "fun_fact",
                                       "what_is_your_name",
                                       "where_are_you_from",
                                       "goodbye",
                                       "thank_you",
                                       "greeting",
                                       "tell_joke",
                                       "are_you_a_bot",
                                       "how_old_are_you",
                                       "what_can_i_ask_you"};
    for (size_t i = 0; i < sizeof chat / sizeof *chat; i++)
        if (!strcmp(intent, chat[i])) return ROUTE_TASK_CHAT;
    if (!strcmp(intent, "translate")) return ROUTE_TASK_TRANSLATION;
    if (!strcmp(intent, "calculator")) return ROUTE_TASK_MATH;
    if (!strcmp(intent, "definition")) return ROUTE_TASK_KNOWLEDGE_QA;
    return ROUTE_TASK_INTENT;
}

static char *read_opt(const char *shared, const char *rel, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/%s", shared, rel);
    char *p = NULL;
    int rc = routedata_read_file(path, 1u << 28, &p, n);
    if (rc) fprintf(stderr, "%s: %s (skipped)\n", path, sy_strerror(rc));
    return rc ? NULL : p;
}

/* ------------------------------------------------ instruction templates --- */

/* A list of slot fillers (owned strings). */
typedef struct pool {
    char *name;
    char **v;
    size_t n, cap;
} pool_t;

typedef struct pools {
    pool_t *v;
    size_t n, cap;
} pools_t;

static pool_t *pool_get(pools_t *ps, const char *name, size_t nlen, bool create)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strlen(ps->v[i].name) == nlen && !memcmp(ps->v[i].name, name, nlen)) return &ps->v[i];
    if (!create) return NULL;
    if (ps->n == ps->cap)
        ps->v = mem_realloc(ps->v, (ps->cap = ps->cap ? ps->cap * 2 : 16) * sizeof *ps->v);
    pool_t *p = &ps->v[ps->n++];
    memset(p, 0, sizeof *p);
    p->name = mem_strndup(name, nlen);
    return p;
}

/* Adds s[0..len) to pool name, cut at the last space before max bytes. */
static void pool_add(pools_t *ps, const char *name, const char *s, size_t len, size_t max)
{
    while (len && (*s == ' ' || *s == '\n'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\n'))
        len--;
    if (len > max) {
        size_t cut = max;
        while (cut > max / 2 && s[cut] != ' ')
            cut--;
        len = cut;
    }
    if (!len) return;
    pool_t *p = pool_get(ps, name, strlen(name), true);
    if (p->n == p->cap)
        p->v = mem_realloc(p->v, (p->cap = p->cap ? p->cap * 2 : 256) * sizeof *p->v);
    p->v[p->n++] = mem_strndup(s, len);
}

static void pools_free(pools_t *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        for (size_t j = 0; j < ps->v[i].n; j++)
            mem_free(ps->v[i].v[j]);
        mem_free(ps->v[i].v);
        mem_free(ps->v[i].name);
    }
    mem_free(ps->v);
    memset(ps, 0, sizeof *ps);
}

/* The question of a benchmark prompt without its few-shot examples and answer
 * options: the text after the last blank line, up to its first "\nA" option. */
static void pool_add_question(pools_t *ps, const char *p, size_t len)
{
    const char *start = p;
    for (const char *q = p; (q = memmem(q, len - (size_t)(q - p), "\n\n", 2)) != NULL; q += 2)
        if ((size_t)(q + 2 - p) < len && q[2] != '\n') start = q + 2;
    size_t n = len - (size_t)(start - p);
    const char *opt = memmem(start, n, "\nA", 2);
    if (opt) n = (size_t)(opt - start);
    if (n > 20) pool_add(ps, "question", start, n, 600);
}

/* Fillers from the shared data: TinyStories paragraphs and sentences, Spec-Bench
 * articles, presidio texts, MBPP tasks, benchmark questions, banking77 intents,
 * census first names. Queries ({q}) are added while the intent sets load. */
static void load_fillers(const char *shared, const route_dataset_t *ds, int skip_fold, pools_t *ps)
{
    size_t n;
    char *p;
    if ((p = read_opt(shared, "corpora/tinystories_val_subset.txt", &n))) {
        for (char *s = p, *e; s && *s; s = e ? e + 2 : NULL) {
            e = strstr(s, "\n\n");
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len < 80) continue;
            pool_add(ps, "para", s, len, 700);
            const char *dot = memchr(s, '.', len);
            if (dot && dot - s > 15) pool_add(ps, "sent", s, (size_t)(dot + 1 - s), 300);
        }
        mem_free(p);
    }
    if ((p = read_opt(shared, "taskclass/specbench/spec_bench_question.jsonl", &n))) {
        for (char *line = p, *end; line && *line; line = end ? end + 1 : NULL) {
            end = strchr(line, '\n');
            if (end) *end = 0;
            cJSON *j = cJSON_Parse(line);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "category");
            const cJSON *turns = cJSON_GetObjectItemCaseSensitive(j, "turns");
            const cJSON *t0 = cJSON_IsArray(turns) ? cJSON_GetArrayItem(turns, 0) : NULL;
            if (cJSON_IsString(c) && cJSON_IsString(t0) &&
                !strcmp(c->valuestring, "summarization")) {
                const char *a = t0->valuestring;
                if (!strncmp(a, "Summarize: ", 11)) a += 11;
                pool_add(ps, "article", a, strlen(a), 900);
            }
            cJSON_Delete(j);
        }
        mem_free(p);
    }
    if ((p = read_opt(shared, "pii/synth_dataset_v2.json", &n))) {
        cJSON *j = cJSON_Parse(p);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "full_text");
            if (cJSON_IsString(t)) pool_add(ps, "pii", t->valuestring, strlen(t->valuestring), 600);
        }
        cJSON_Delete(j);
        mem_free(p);
    }
    if ((p = read_opt(shared, "taskclass/banking77/categories.json", &n))) {
        cJSON *j = cJSON_Parse(p);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            if (!cJSON_IsString(e)) continue;
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%s", e->valuestring);
            for (char *c = tmp; *c; c++)
                if (*c == '_') *c = ' ';
            pool_add(ps, "category", tmp, strlen(tmp), 100);
        }
        cJSON_Delete(j);
        mem_free(p);
    }
    static const char *const names[] = {"names/census1990_female_first.txt",
                                        "names/census1990_male_first.txt"};
    for (int f = 0; f < 2; f++) {
        if (!(p = read_opt(shared, names[f], &n))) continue;
        int k = 0;
        for (char *line = p, *end; line && *line && k < 300; line = end ? end + 1 : NULL, k++) {
            end = strchr(line, '\n');
            size_t len = strcspn(line, " \n");
            char tmp[64];
            if (len < 2 || len >= sizeof tmp) continue;
            for (size_t i = 0; i < len; i++)
                tmp[i] = (char)(i ? line[i] - 'A' + 'a' : line[i]);
            pool_add(ps, "name", tmp, len, 64);
        }
        mem_free(p);
    }
    for (size_t i = 0; ds && i < ds->n; i++) {
        const route_row_t *r = &ds->rows[i];
        if (skip_fold >= 0 && routedata_fold(r->prompt, r->len) == skip_fold) continue;
        if (!strcmp(r->benchmark, "mbpp")) {
            const char *to = strstr(r->prompt, " to ");
            if (to && to - r->prompt < 40) pool_add(ps, "task", to + 4, strlen(to + 4), 300);
        } else if (!strcmp(r->benchmark, "mmlu") || !strcmp(r->benchmark, "arc-challenge")) {
            if (routedata_benchmark_class(r->benchmark, r->subset) == ROUTE_TASK_KNOWLEDGE_QA)
                pool_add_question(ps, r->prompt, r->len);
        }
    }
}

/* Appends the filler of slot name[0..nlen) for request k of template tpl. */
static int fill_slot(const pools_t *ps, const char *name, size_t nlen, uint64_t h, buf_t *out)
{
    char tmp[32];
    if (nlen == 3 && !memcmp(name, "num", 3)) {
        snprintf(tmp, sizeof tmp, "%u", (unsigned)(2 + h % 48));
        return buf_puts(out, tmp);
    }
    if (nlen == 4 && !memcmp(name, "num2", 4)) {
        snprintf(tmp, sizeof tmp, "%u", (unsigned)(3 + h % 250));
        return buf_puts(out, tmp);
    }
    if (nlen == 4 && !memcmp(name, "cats", 4)) {
        const pool_t *c = pool_get((pools_t *)ps, "category", 8, false);
        if (!c || !c->n) return SY_ENOTFOUND;
        int k = 3 + (int)(h % 3);
        for (int i = 0; i < k; i++) {
            if (i) buf_puts(out, ", ");
            buf_puts(out, c->v[hash_mix(h + (uint64_t)i) % c->n]);
        }
        return 0;
    }
    /* name2, noun3: the list without its digit, another draw. */
    size_t base = nlen;
    if (base > 1 && name[base - 1] >= '2' && name[base - 1] <= '3') base--;
    const pool_t *p = pool_get((pools_t *)ps, name, base, false);
    if (!p || !p->n) return SY_ENOTFOUND;
    return buf_puts(out, p->v[h % p->n]);
}

/* Reads the instruction templates (data/taskclass/instructions.tsv: "@list<TAB>
 * item" lines add to a filler list, "class<TAB>template" lines are templates) and
 * adds per_template requests of each to out. The requests of one template share
 * a fold (its rank within its class, mod 5), so cross-validation holds out whole
 * phrasings. 0 or an error (message printed). */
static int add_templates(const char *path, pools_t *ps, size_t per_template, routedata_texts_t *out)
{
    char *p;
    size_t n;
    int rc = routedata_read_file(path, 1u << 24, &p, &n);
    if (rc) {
        fprintf(stderr, "%s: %s\n", path, sy_strerror(rc));
        return rc;
    }
    /* Lists first (a template may precede the list it names). */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        int rank[ROUTE_TASK_COUNT] = {0}, lineno = 0;
        for (char *line = p, *end; line && *line && !rc; line = end ? end + 1 : NULL) {
            end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            lineno++;
            if (!len || *line == '#') continue;
            const char *tab = memchr(line, '\t', len);
            if (!tab) {
                fprintf(stderr, "%s:%d: expected class<TAB>template\n", path, lineno);
                rc = SY_EPARSE;
                break;
            }
            const char *body = tab + 1;
            size_t blen = len - (size_t)(body - line);
            if (*line == '@') {
                if (!pass) {
                    char name[32];
                    snprintf(name, sizeof name, "%.*s", (int)(tab - line - 1), line + 1);
                    pool_add(ps, name, body, blen, 200);
                }
                continue;
            }
            char cls[32];
            snprintf(cls, sizeof cls, "%.*s", (int)(tab - line), line);
            int label = route_task_parse(cls);
            if (label < 0) {
                fprintf(stderr, "%s:%d: unknown task class '%s'\n", path, lineno, cls);
                rc = SY_EPARSE;
                break;
            }
            int fold = rank[label]++ % 5;
            if (!pass) continue;
            buf_t b;
            buf_init(&b, 1u << 16);
            for (size_t k = 0; k < per_template && !rc; k++) {
                buf_reset(&b);
                for (size_t i = 0; i < blen && !rc; i++) {
                    if (body[i] == '\\' && i + 1 < blen && body[i + 1] == 'n') {
                        buf_putc(&b, '\n');
                        i++;
                    } else if (body[i] == '{') {
                        const char *close = memchr(body + i, '}', blen - i);
                        if (!close) {
                            fprintf(stderr, "%s:%d: unclosed {\n", path, lineno);
                            rc = SY_EPARSE;
                            break;
                        }
                        size_t nlen = (size_t)(close - body - i - 1);
                        uint64_t h = hash_mix(((uint64_t)lineno << 32) ^ (k << 8) ^ i);
                        if (fill_slot(ps, body + i + 1, nlen, h, &b)) {
                            fprintf(stderr, "%s:%d: no fillers for {%.*s}\n", path, lineno,
                                    (int)nlen, body + i + 1);
                            rc = SY_EPARSE;
                            break;
                        }
                        i += nlen + 1;
                    } else {
                        buf_putc(&b, body[i]);
                    }
                }
                if (!rc) add_text_src(out, b.data, b.len, label, fold, ROUTEDATA_SRC_TEMPLATE);
            }
            buf_deinit(&b);
        }
    }
    mem_free(p);
    return rc;
}

/* One intent-set query: its class (clinc_class for CLINC150) and, with ps, a {q}
 * filler when it is an assistant command. */
static void add_query(routedata_texts_t *t, pools_t *ps, const char *s, int label)
{
    add_text(t, s, strlen(s), label);
    if (ps && label == ROUTE_TASK_INTENT) pool_add(ps, "q", s, strlen(s), 300);
}

/* The questions of Spec-Bench's jsonl text p (NUL-terminated; its line breaks are
 * overwritten): the first turn of each with its category's class, or (every_turn)
 * every turn, labelled 0. */
static void specbench_texts(routedata_texts_t *t, char *p, bool every_turn)
{
    for (char *line = p, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end) *end = 0;
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "category");
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(j, "turns"), *turn;
        if (!cJSON_IsArray(turns)) turns = NULL;
        int k = 0;
        cJSON_ArrayForEach(turn, turns)
        {
            if (!every_turn && (k++ > 0 || !cJSON_IsString(c))) break;
            if (cJSON_IsString(turn))
                add_text(t, turn->valuestring, strlen(turn->valuestring),
                         every_turn ? 0 : category_class(c->valuestring));
        }
        cJSON_Delete(j);
    }
}

/* The queries of CLINC150's data_full.json text p: those in scope with their class
 * (and {q} fillers into ps), or (every_query) all of them, labelled 0. */
static void clinc_texts(routedata_texts_t *t, pools_t *ps, const char *p, bool every_query)
{
    cJSON *j = cJSON_Parse(p);
    const cJSON *split;
    cJSON_ArrayForEach(split, j)
    {
        /* out of scope */
        if (!every_query && (!split->string || !strncmp(split->string, "oos", 3))) continue;
        const cJSON *e;
        cJSON_ArrayForEach(e, split)
        {
            const cJSON *s = cJSON_GetArrayItem(e, 0), *in = cJSON_GetArrayItem(e, 1);
            if (cJSON_IsString(s) && (every_query || cJSON_IsString(in)))
                add_query(t, ps, s->valuestring, every_query ? 0 : clinc_class(in->valuestring));
        }
    }
    cJSON_Delete(j);
}

static void load_csv_texts(routedata_texts_t *t, pools_t *ps, const char *p, size_t n)
{
    buf_t cells;
    buf_init(&cells, 1u << 20);
    size_t st[ROUTE_CSV_MAX_FIELDS], off = 0;
    int nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS); /* header */
    while (nf > 0 && (nf = route_csv_record(p, n, &off, &cells, st, ROUTE_CSV_MAX_FIELDS)) > 0)
        add_query(t, ps, cells.data + st[0], ROUTE_TASK_INTENT);
    buf_deinit(&cells);
}

int routedata_taskclass(const char *shared, const char *instructions, const route_dataset_t *ds,
                        int skip_fold, size_t per_class, routedata_texts_t *out)
{
    routedata_texts_t all = {0};
    pools_t ps = {0};
    size_t n;
    char *p;
    memset(out, 0, sizeof *out);
    if ((p = read_opt(shared, "taskclass/specbench/spec_bench_question.jsonl", &n)))
        specbench_texts(&all, p, false), mem_free(p);
    if ((p = read_opt(shared, "taskclass/banking77/train.csv", &n)))
        load_csv_texts(&all, &ps, p, n), mem_free(p);
    if ((p = read_opt(shared, "taskclass/banking77/test.csv", &n)))
        load_csv_texts(&all, &ps, p, n), mem_free(p);
    if ((p = read_opt(shared, "taskclass/clinc150/data_full.json", &n)))
        clinc_texts(&all, &ps, p, false), mem_free(p);
    for (size_t i = 0; ds && i < ds->n; i++) {
        const route_row_t *r = &ds->rows[i];
        int fold = routedata_fold(r->prompt, r->len);
        if (skip_fold >= 0 && fold == skip_fold) continue;
        int label = routedata_benchmark_class(r->benchmark, r->subset);
        add_text(&all, r->prompt, r->len, label);
        /* Few-shot prompts (ARC, Winogrande) open with the same examples: their
         * last question alone is a second example, in the row's fold. */
        const char *last = NULL;
        for (const char *q = r->prompt; (q = strstr(q, "\n\n")) != NULL; q += 2)
            if (q[2] && q[2] != '\n') last = q + 2;
        bool few_shot =
            !strcmp(r->benchmark, "arc-challenge") || !strcmp(r->benchmark, "winogrande");
        if (last && few_shot)
            add_text_src(&all, last, strlen(last), label, fold, ROUTEDATA_SRC_DATA);
        /* A multiple-choice question asked without its options (as people ask
         * them): the stem, in the row's fold. */
        if (few_shot || !strcmp(r->benchmark, "mmlu")) {
            const char *q = last && few_shot ? last : r->prompt;
            const char *opt = strstr(q, "\nA");
            size_t len = opt ? (size_t)(opt - q) : strlen(q);
            if (opt && len > 20 && len < 600)
                add_text_src(&all, q, len, label, fold, ROUTEDATA_SRC_DATA);
        }
    }
    int rc = 0;
    if (instructions) {
        load_fillers(shared, ds, skip_fold, &ps);
        rc = add_templates(instructions, &ps, ROUTEDATA_PER_TEMPLATE, &all);
    }
    pools_free(&ps);
    if (!rc && !all.n) {
        fprintf(stderr, "no task-classifier data under %s/data\n", shared);
        rc = SY_ENOTFOUND;
    }
    if (rc) {
        routedata_texts_free(&all);
        return rc;
    }
    /* Cap each class, keeping the examples with the smallest hash (a fixed random
     * sample): intent queries alone outnumber everything else. */
    size_t count[ROUTE_TASK_COUNT] = {0};
    for (size_t i = 0; i < all.n; i++)
        count[all.v[i].label]++;
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

int routedata_prompts(const char *shared, const char *set, routedata_texts_t *out)
{
    memset(out, 0, sizeof *out);
    char *p;
    size_t n;
    if (!strcmp(set, "routing")) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data/routing/routing_train.csv", shared);
        route_dataset_t ds;
        int rc = routedata_load_routing(path, NULL, &ds);
        if (rc) return rc;
        for (size_t i = 0; i < ds.n; i++)
            add_text(out, ds.rows[i].prompt, ds.rows[i].len, 0);
        route_dataset_deinit(&ds);
    } else if (!strcmp(set, "specbench")) {
        if (!(p = read_opt(shared, "taskclass/specbench/spec_bench_question.jsonl", &n)))
            return SY_ENOTFOUND;
        specbench_texts(out, p, true), mem_free(p);
    } else if (!strcmp(set, "banking77")) {
        for (int i = 0; i < 2; i++) {
            if (!(p = read_opt(shared,
                               i ? "taskclass/banking77/test.csv" : "taskclass/banking77/train.csv",
                               &n)))
                return routedata_texts_free(out), SY_ENOTFOUND;
            load_csv_texts(out, NULL, p, n), mem_free(p);
        }
    } else if (!strcmp(set, "clinc150")) {
        if (!(p = read_opt(shared, "taskclass/clinc150/data_full.json", &n))) return SY_ENOTFOUND;
        clinc_texts(out, NULL, p, true), mem_free(p);
    } else {
        fprintf(stderr, "unknown prompt set '%s' (routing, specbench, banking77, clinc150)\n", set);
        return SY_EINVAL;
    }
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
    uint32_t *fp = mem_alloc((t->n ? t->n : 1) * sizeof *fp);
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
        fp[n - 1] = route_model_fingerprint(e->text, len);
    }
    route_train_opts_t o = {.epochs = 8, .lr = 0.5f, .l2 = 1e-6f, .seed = seed};
    route_model_train(m, ex, n, &o);
    m->digest = digest;
    route_model_fingerprints_set(m, fp, n);
    mem_free(fp);
    for (size_t i = 0; i < n; i++)
        mem_free((void *)ex[i].idx);
    mem_free(idx);
    mem_free(dense);
    mem_free(ex);
    return m;
}

int routedata_classify(const route_model_t *m, const char *s, size_t len, float *p)
{
    uint32_t idx[ROUTE_NGRAM_MAX];
    size_t k = route_ngrams(s, len, m->seed, m->n_buckets, idx, ROUTE_NGRAM_MAX);
    if (k > ROUTE_CLASS_NGRAMS) k = ROUTE_CLASS_NGRAMS; /* as router_features */
    float dense[ROUTE_DENSE_DIM], tmp[ROUTE_TASK_COUNT];
    text_dense(s, len, dense);
    if (!p) p = tmp;
    route_model_predict(m, idx, k, dense, p);
    int best = 0;
    for (int c = 1; c < ROUTE_TASK_COUNT; c++)
        if (p[c] > p[best]) best = c;
    return best;
}

int routedata_features(const router_t *r, router_scratch_t *s, const char *prompt, size_t len,
                       route_features_t *f)
{
    route_text_t t = {"user", prompt, len};
    route_input_t in = {.texts = &t, .n_texts = 1, .n_messages = 1};
    return router_features(r, s, &in, f);
}
