/* bench/pii — PII scanner throughput and accuracy, side by side with npm libraries.
 *
 *   build/rel/bench/pii [--no-npm] [--seconds S]
 *   build/rel/bench/pii --one-pass     (the clean messages scanned once with the
 *                                        labeller, for valgrind --tool=callgrind)
 *
 * Texts: 2 KB messages cut from the clean prose corpora (all clean, and "mixed": one
 * in ten carries a record of the presidio data), and the long documents whole; last a
 * dense synthetic text, every token a candidate (our scanners only: the worst case). The
 * scanner runs single-threaded with and without the name gazetteer. The same texts
 * are written to a temporary folder and run through bench/pii-npm/run.mjs (npm
 * packages installed there on first use), and every engine's F1 is measured on the
 * presidio files with one definition: overlap, any type, gold labels of the types
 * we target. Needs $SY_SHARED (default ../shared).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "api/piiload.h"
#include "route/pii/pii.h"

#define MSG_BYTES 2048
#define MAX_SPANS 4096

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b;
    buf_init(&b, 64u << 20);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(&b, tmp, n)) break;
    fclose(f);
    *len = b.len;
    return b.data ? buf_steal(&b) : mem_strdup("");
}

typedef struct texts {
    char **v;
    size_t *len;
    size_t n, cap, bytes;
} texts_t;

static void texts_add(texts_t *t, const char *s, size_t n)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->v = mem_realloc(t->v, t->cap * sizeof *t->v);
        t->len = mem_realloc(t->len, t->cap * sizeof *t->len);
    }
    t->v[t->n] = mem_strndup(s, n);
    t->len[t->n++] = n;
    t->bytes += n;
}

static void texts_free(texts_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        mem_free(t->v[i]);
    mem_free(t->v);
    mem_free(t->len);
}

/* Cuts text into ~2 KB messages at paragraph breaks. */
static void cut_messages(texts_t *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t e = i + MSG_BYTES < n ? i + MSG_BYTES : n;
        if (e < n) {
            size_t k = e;
            while (k > i + MSG_BYTES / 2 && !(s[k - 1] == '\n' && s[k - 2] == '\n'))
                k--;
            if (k > i + MSG_BYTES / 2) e = k;
        }
        texts_add(out, s + i, e - i);
        i = e;
    }
}

/* MB/s of scanning every text repeatedly for at least min_s seconds. */
static double measure(const pii_scanner_t *s, pii_scratch_t *sc, const texts_t *t, double min_s)
{
    static pii_span_t sp[MAX_SPANS];
    uint64_t t0 = clock_mono_ns(), el;
    size_t rounds = 0, found;
    do {
        for (size_t i = 0; i < t->n; i++)
            pii_scan(s, sc, t->v[i], t->len[i], sp, MAX_SPANS, &found);
        rounds++;
        el = clock_mono_ns() - t0;
    } while ((double)el / 1e9 < min_s);
    return (double)t->bytes * (double)rounds / 1e6 / ((double)el / 1e9);
}

static size_t cp_to_byte(const char *s, size_t len, size_t cp)
{
    size_t i = 0;
    while (i < len && cp > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

static bool targeted(const char *t)
{
    static const char *const v[] = {
        "EMAIL_ADDRESS", "PHONE_NUMBER",      "CREDIT_CARD", "US_SSN",
        "IBAN_CODE",     "IP_ADDRESS",        "PERSON",      "STREET_ADDRESS",
        "ADDRESS",       "US_DRIVER_LICENSE", NULL};
    for (int i = 0; v[i]; i++)
        if (!strcmp(v[i], t)) return true;
    return false;
}

/* Overlap precision/recall, any type, over the presidio files; also collects the
 * record texts that hold PII (for the mixed set). */
static void f1_presidio(const pii_scanner_t *s, pii_scratch_t *sc, char **files, int nf, double *p,
                        double *r, texts_t *pii_texts)
{
    static pii_span_t sp[MAX_SPANS];
    size_t gold = 0, gold_hit = 0, pred = 0, pred_hit = 0;
    for (int f = 0; f < nf; f++) {
        size_t n;
        char *raw = slurp(files[f], &n);
        cJSON *root = raw ? cJSON_ParseWithLength(raw, n) : NULL;
        mem_free(raw);
        const cJSON *rec;
        cJSON_ArrayForEach(rec, root)
        {
            const cJSON *ft = cJSON_GetObjectItemCaseSensitive(rec, "full_text");
            if (!cJSON_IsString(ft)) continue;
            const char *t = ft->valuestring;
            size_t len = strlen(t), np = 0, g[128][2], ng = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rec, "spans"))
            {
                const cJSON *et = cJSON_GetObjectItemCaseSensitive(x, "entity_type");
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(x, "start_position");
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(x, "end_position");
                if (!cJSON_IsString(et) || !targeted(et->valuestring) || ng == 128) continue;
                g[ng][0] = cp_to_byte(t, len, (size_t)a->valuedouble);
                g[ng][1] = cp_to_byte(t, len, (size_t)b->valuedouble);
                ng++;
            }
            if (ng && pii_texts) texts_add(pii_texts, t, len);
            pii_scan(s, sc, t, len, sp, MAX_SPANS, &np);
            if (np > MAX_SPANS) np = MAX_SPANS;
            gold += ng;
            pred += np;
            for (size_t i = 0; i < ng; i++)
                for (size_t j = 0; j < np; j++)
                    if (sp[j].start < g[i][1] && g[i][0] < sp[j].end) {
                        gold_hit++;
                        break;
                    }
            for (size_t j = 0; j < np; j++)
                for (size_t i = 0; i < ng; i++)
                    if (sp[j].start < g[i][1] && g[i][0] < sp[j].end) {
                        pred_hit++;
                        break;
                    }
        }
        cJSON_Delete(root);
    }
    *p = pred ? (double)pred_hit / (double)pred : 0;
    *r = gold ? (double)gold_hit / (double)gold : 0;
}

/* Writes a list of strings as a JSON array. */
static int write_json_list(const char *path, const texts_t *t)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < t->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(t->v[i]));
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(s);
        return -1;
    }
    fputs(s, f);
    fclose(f);
    free(s);
    return 0;
}

typedef struct row {
    char name[64];
    double clean, mixed, lng, p, r;
    bool ok;
} row_t;

/* The worst case measured: 256 KB in which every token opens or continues a window (full
 * names, house numbers and streets, in both cases, joined by commas, "and", semicolons
 * and line breaks: a contact list or postal blocks run together), one text. Fixed by
 * its seed, so every run scans the same bytes. */
static void dense_text(texts_t *out)
{
    static const char *const first[] = {"Anna", "Peter", "Maria", "John", "Lily", "james", "mary"};
    static const char *const last[] = {"Jones", "Smith", "Lopez", "O'Neil", "brown", "Novak"};
    static const char *const street[] = {"Main St",     "Oak Road",   "rue Victor Hugo",
                                         "Harbor Lane", "Elm Avenue", "main street"};
    static const char *const sep[] = {", ", " and ", "\n", " ", "; "};
    uint64_t r = 0x9E3779B97F4A7C15ull;
    buf_t b;
    buf_init(&b, 1u << 20);
    while (b.len < 256 * 1024) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        char item[96];
        if (r % 3 == 0)
            snprintf(item, sizeof item, "%u %s", (unsigned)(1 + (r >> 8) % 9999),
                     street[(r >> 24) % (sizeof street / sizeof *street)]);
        else
            snprintf(item, sizeof item, "%s %s", first[(r >> 8) % (sizeof first / sizeof *first)],
                     last[(r >> 24) % (sizeof last / sizeof *last)]);
        buf_puts(&b, item);
        buf_puts(&b, sep[(r >> 40) % (sizeof sep / sizeof *sep)]);
    }
    texts_add(out, b.data, b.len);
    buf_deinit(&b);
}

static double f1(double p, double r)
{
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
}

int main(int argc, char **argv)
{
    bool npm = true, one_pass = false;
    double secs = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-npm"))
            npm = false;
        else if (!strcmp(argv[i], "--one-pass"))
            one_pass = true;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            secs = atof(argv[++i]);
    }
    const char *sh = getenv("SY_SHARED") ? getenv("SY_SHARED") : "../shared";
    char path[4096], names[4096];
    /* the repository's names folder holds the labeller model; the shared one may not */
    if (access("data/names/" PIILOAD_LABELLER_FILE, R_OK) == 0)
        snprintf(names, sizeof names, "data/names");
    else
        snprintf(names, sizeof names, "%s/data/names", sh);
    const char *corpora[] = {"tinystories_val_subset.txt", "tinyshakespeare_input.txt"};
    texts_t clean = {0}, mixed = {0}, lng = {0}, pii = {0};
    for (int i = 0; i < 2; i++) {
        size_t n;
        snprintf(path, sizeof path, "%s/data/corpora/%s", sh, corpora[i]);
        char *s = slurp(path, &n);
        if (!s) {
            fprintf(stderr, "bench/pii: %s missing (set SY_SHARED)\n", path);
            return 1;
        }
        cut_messages(&clean, s, n);
        texts_add(&lng, s, n);
        mem_free(s);
    }
    char f_synth[4096], f_small[4096];
    snprintf(f_synth, sizeof f_synth, "%s/data/pii/synth_dataset_v2.json", sh);
    snprintf(f_small, sizeof f_small, "%s/data/pii/generated_small.json", sh);
    char *dsets[] = {f_synth, f_small};

    char err[256];

    pii_scanner_t *s_on = piiload_scanner_new(names, true, 0.5f, err, sizeof err),
                  *s_off = piiload_scanner_new(NULL, false, 0.5f, err, sizeof err), *s_rules = NULL;
    pii_census_t census;
    if (s_on && !piiload_census_read(names, &census, err, sizeof err)) {
        /* the census lists without the labeller: the rules find names */
        pii_options_t o = {&census, 0.5f};
        s_rules = pii_scanner_new(&o, err, sizeof err);
        piiload_census_free(&census);
    }
    if (!s_on || !s_off || !s_rules) {
        fprintf(stderr, "bench/pii: %s\n", err);
        return 1;
    }
    pii_scratch_t *sc_on = pii_scratch_new(s_on), *sc_off = pii_scratch_new(s_off),
                  *sc_rules = pii_scratch_new(s_rules);

    if (one_pass) {
        /* instructions per byte, counted from outside: nothing but the scans */
        static pii_span_t sp[MAX_SPANS];
        size_t found, total = 0;
        for (size_t i = 0; i < clean.n; i++) {
            pii_scan(s_on, sc_on, clean.v[i], clean.len[i], sp, MAX_SPANS, &found);
            total += found;
        }
        printf("%zu messages, %zu bytes, %zu spans\n", clean.n, clean.bytes, total);
        goto done;
    }
    row_t rows[8];
    int nr = 0;
    rows[nr] = (row_t){"switchyard (labeller)", 0, 0, 0, 0, 0, true};
    f1_presidio(s_on, sc_on, dsets, 2, &rows[nr].p, &rows[nr].r, &pii);
    /* Mixed: every tenth message gets a PII record appended. */
    for (size_t i = 0; i < clean.n; i++) {
        if (i % 10 == 0 && pii.n) {
            buf_t b;
            buf_init(&b, 1 << 20);
            buf_append(&b, clean.v[i], clean.len[i] > 1500 ? 1500 : clean.len[i]);
            buf_puts(&b, "\n\n");
            buf_puts(&b, pii.v[(i / 10) % pii.n]);
            texts_add(&mixed, b.data, b.len);
            buf_deinit(&b);
        } else {
            texts_add(&mixed, clean.v[i], clean.len[i]);
        }
    }
    rows[nr].clean = measure(s_on, sc_on, &clean, secs);
    rows[nr].mixed = measure(s_on, sc_on, &mixed, secs);
    rows[nr].lng = measure(s_on, sc_on, &lng, secs);
    nr++;
    rows[nr] = (row_t){"switchyard (names by rules)", 0, 0, 0, 0, 0, true};
    f1_presidio(s_rules, sc_rules, dsets, 2, &rows[nr].p, &rows[nr].r, NULL);
    rows[nr].clean = measure(s_rules, sc_rules, &clean, secs);
    rows[nr].mixed = measure(s_rules, sc_rules, &mixed, secs);
    rows[nr].lng = measure(s_rules, sc_rules, &lng, secs);
    nr++;
    rows[nr] = (row_t){"switchyard (names off)", 0, 0, 0, 0, 0, true};
    f1_presidio(s_off, sc_off, dsets, 2, &rows[nr].p, &rows[nr].r, NULL);
    rows[nr].clean = measure(s_off, sc_off, &clean, secs);
    rows[nr].mixed = measure(s_off, sc_off, &mixed, secs);
    rows[nr].lng = measure(s_off, sc_off, &lng, secs);
    nr++;

    if (npm) {
        char dir[] = "/tmp/sy-pii-bench-XXXXXX";
        if (mkdtemp(dir)) {
            snprintf(path, sizeof path, "%s/clean.json", dir);
            write_json_list(path, &clean);
            snprintf(path, sizeof path, "%s/mixed.json", dir);
            write_json_list(path, &mixed);
            snprintf(path, sizeof path, "%s/long.txt", dir);
            FILE *f = fopen(path, "w");
            if (f) {
                fwrite(lng.v[0], 1, lng.len[0], f);
                fclose(f);
            }
            if (access("bench/pii-npm/node_modules", F_OK) != 0) {
                fprintf(stderr, "bench/pii: installing npm packages into bench/pii-npm\n");
                if (system("cd bench/pii-npm && npm install --no-audit --no-fund --silent "
                           ">/dev/null 2>&1"))
                    fprintf(stderr, "bench/pii: npm install failed; npm rows skipped\n");
            }
            char cmd[16384];
            snprintf(cmd, sizeof cmd, "node bench/pii-npm/run.mjs %s %s %s 2>/dev/null", dir,
                     f_synth, f_small);
            FILE *pp = popen(cmd, "r");
            char line[4096];
            while (pp && fgets(line, sizeof line, pp) && nr < 8) {
                cJSON *o = cJSON_Parse(line);
                const cJSON *lib = cJSON_GetObjectItem(o, "lib");
                if (cJSON_IsString(lib)) {
                    row_t *w = &rows[nr++];
                    memset(w, 0, sizeof *w);
                    snprintf(w->name, sizeof w->name, "%s", lib->valuestring);
                    w->ok = !cJSON_GetObjectItem(o, "error");
                    w->clean = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "clean_mbps"));
                    w->mixed = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "mixed_mbps"));
                    w->lng = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "long_mbps"));
                    w->p = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "p"));
                    w->r = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "r"));
                }
                cJSON_Delete(o);
            }
            if (pp) pclose(pp);
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            if (system(cmd)) {
            }
        }
    }

    printf(
        "PII scan, single core. clean: %zu msgs of ~2 KB (%.1f MB); mixed: 1 in 10 with PII; long: "
        "%zu documents (%.1f MB)\n",
        clean.n, (double)clean.bytes / 1e6, lng.n, (double)lng.bytes / 1e6);
    printf(
        "F1: overlap, any type, presidio synth_dataset_v2 + generated_small (targeted labels)\n\n");
    printf("%-30s %10s %10s %10s %7s %7s %7s %9s\n", "engine", "clean MB/s", "mixed MB/s",
           "long MB/s", "P", "R", "F1", "vs ours");
    for (int i = 0; i < nr; i++) {
        if (!rows[i].ok) {
            printf("%-30s (failed)\n", rows[i].name);
            continue;
        }
        printf("%-30s %10.1f %10.1f %10.1f %7.3f %7.3f %7.3f %8.2fx\n", rows[i].name, rows[i].clean,
               rows[i].mixed, rows[i].lng, rows[i].p, rows[i].r, f1(rows[i].p, rows[i].r),
               rows[0].clean > 0 ? rows[i].clean / rows[0].clean : 0);
    }
    /* the labeller's cost in this run, where the load on the machine is the same */
    printf("\nlabeller / names off: clean %.2f, mixed %.2f, long %.2f; labeller / rules: clean "
           "%.2f, mixed %.2f, long %.2f\n",
           rows[0].clean / rows[2].clean, rows[0].mixed / rows[2].mixed, rows[0].lng / rows[2].lng,
           rows[0].clean / rows[1].clean, rows[0].mixed / rows[1].mixed, rows[0].lng / rows[1].lng);
    {
        texts_t dense = {0};
        dense_text(&dense);
        double d_on = measure(s_on, sc_on, &dense, secs),
               d_rules = measure(s_rules, sc_rules, &dense, secs),
               d_off = measure(s_off, sc_off, &dense, secs);
        printf("dense (worst case: %.0f KB of names, numbers and streets, one text): labeller %.1f "
               "MB/s, rules %.1f, names off %.1f\n",
               (double)dense.bytes / 1024, d_on, d_rules, d_off);
        texts_free(&dense);
    }
done:
    pii_scratch_free(sc_on);
    pii_scratch_free(sc_off);
    pii_scratch_free(sc_rules);
    pii_scanner_free(s_rules);
    pii_scanner_free(s_on);
    pii_scanner_free(s_off);
    texts_free(&clean);
    texts_free(&mixed);
    texts_free(&lng);
    texts_free(&pii);
    return 0;
}
