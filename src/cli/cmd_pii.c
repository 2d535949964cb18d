/* cmd_pii.c — `switchyard pii`: scan text for personal data, evaluate the detector.
 *
 *   switchyard pii [--json] [--redact] [--names DIR] [FILE|-]
 *   switchyard pii --eval FILE.json [--eval FILE2.json] [--names DIR] [--json]
 *   switchyard pii --flag-rate [--prompts] [--seconds S] FILE.txt|SET [...] [--names DIR]
 *
 * --eval reads the presidio-research format (a JSON list of {full_text, spans:
 * [{entity_type, entity_value, start_position, end_position}]}, positions in code
 * points) and prints per-entity precision, recall and F1, exact span and overlap.
 * --flag-rate splits text into messages at blank lines (with --prompts: takes each
 * prompt of shared/data's prompt sets as one) and prints the fraction flagged per
 * type and the most frequent PERSON and STREET_ADDRESS strings; with --seconds, the
 * scanner's throughput on those messages.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/hash.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "api/piiload.h"
#include "cli/pii_gen.h"
#include "cli/routedata.h"
#include "route/pii/pii.h"

#define PII_CLI_MAX_INPUT (256u << 20) /* bytes read from one file */
#define PII_CLI_MAX_SPANS 65536

/* Reads a whole file ("-" = stdin) into out (capped). 0 or -errno / SY_ETOOBIG. */
static int read_all(const char *path, buf_t *out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return -errno;
    char tmp[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if ((rc = buf_append(out, tmp, n))) break;
    if (!rc && ferror(f)) rc = SY_EIO;
    if (f != stdin) fclose(f);
    return rc;
}

/* Default gazetteer folder: the repository's data/names when it holds the labeller
 * model, else $SY_SHARED/data/names, else ../shared/data/names. */
static const char *default_names_dir(char *tmp, size_t n)
{
    if (access("data/names/" PIILOAD_LABELLER_FILE, R_OK) == 0 &&
        access("data/names/census1990_last.txt", R_OK) == 0) {
        snprintf(tmp, n, "data/names");
        return tmp;
    }
    const char *sh = getenv("SY_SHARED");
    snprintf(tmp, n, "%s/data/names", sh ? sh : "../shared");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/census1990_last.txt", tmp);
    return access(probe, R_OK) == 0 ? tmp : NULL;
}

/* ================================================================== eval */

/* Presidio entity names mapped to ours; the others are reported as not targeted. */
static int map_presidio(const char *name, pii_type_t *t)
{
    if (!strcmp(name, "ADDRESS")) name = "STREET_ADDRESS";
    if (!strcmp(name, "DATE_TIME") || !strcmp(name, "DATE_OF_BIRTH")) return SY_ENOTFOUND;
    return pii_type_parse(name, t) ? SY_ENOTFOUND : 0;
}

static bool show_errors; /* --errors: print each miss and false finding of --eval */

typedef struct gold {
    pii_type_t type;
    size_t start, end; /* bytes */
} gold_t;

typedef struct counts {
    size_t gold, pred;
    size_t tp_exact;           /* predictions equal to a gold span */
    size_t pred_hit, gold_hit; /* overlap: predictions / golds that overlap the other side */
} counts_t;

/* Byte offset of code point index cp in the UTF-8 string s (len bytes). */
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

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0.0;
}
static double f1(double p, double r)
{
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

/* Evaluates one dataset file, adding to counts; not-targeted gold labels are counted
 * in skipped. 0 or an error with a message printed (naming the record, 1-based, for
 * a malformed one: positions are code points within full_text). */
static int eval_file(const char *path, const pii_scanner_t *s, pii_scratch_t *sc,
                     counts_t cnt[PII_TYPE_COUNT], size_t *skipped, size_t *records)
{
    buf_t raw;
    buf_init(&raw, PII_CLI_MAX_INPUT);
    int rc = read_all(path, &raw);
    if (rc) {
        fprintf(stderr, "pii: %s: %s\n", path, sy_strerror(rc));
        buf_deinit(&raw);
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength(raw.data, raw.len);
    buf_deinit(&raw);
    if (!cJSON_IsArray(root)) {
        fprintf(stderr, "pii: %s: not a JSON list of records\n", path);
        cJSON_Delete(root);
        return SY_EPARSE;
    }
    pii_span_t *pred = mem_alloc(PII_CLI_MAX_SPANS * sizeof *pred);
    gold_t gold[256];
    const cJSON *rec;
    size_t ri = 0;
    rc = 0;
    cJSON_ArrayForEach(rec, root)
    {
        ri++;
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(rec, "full_text");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(rec, "spans");
        if (!cJSON_IsString(ft) || (sp && !cJSON_IsArray(sp))) {
            fprintf(stderr,
                    "pii: %s: record %zu: needs a \"full_text\" string and a \"spans\" list\n",
                    path, ri);
            rc = SY_EPARSE;
            break;
        }
        const char *text = ft->valuestring;
        size_t len = strlen(text);
        size_t ng = 0;
        const cJSON *g;
        cJSON_ArrayForEach(g, sp)
        {
            const cJSON *et = cJSON_GetObjectItemCaseSensitive(g, "entity_type");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, "start_position");
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(g, "end_position");
            if (!cJSON_IsString(et) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) ||
                !(a->valuedouble >= 0) || !(b->valuedouble >= a->valuedouble) ||
                b->valuedouble > (double)len) {
                fprintf(stderr,
                        "pii: %s: record %zu: a span needs entity_type (a string) and "
                        "start_position <= end_position within the text\n",
                        path, ri);
                rc = SY_EPARSE;
                break;
            }
            pii_type_t t;
            if (map_presidio(et->valuestring, &t)) {
                (*skipped)++;
                continue;
            }
            if (ng == sizeof gold / sizeof gold[0]) {
                fprintf(stderr, "pii: %s: record %zu: more than %zu spans\n", path, ri,
                        sizeof gold / sizeof gold[0]);
                rc = SY_EPARSE;
                break;
            }
            gold[ng++] = (gold_t){t, cp_to_byte(text, len, (size_t)a->valuedouble),
                                  cp_to_byte(text, len, (size_t)b->valuedouble)};
        }
        if (rc) break;
        size_t np = 0;
        rc = pii_scan(s, sc, text, len, pred, PII_CLI_MAX_SPANS, &np);
        if (rc) {
            fprintf(stderr, "pii: %s: record %zu: scan failed: %s\n", path, ri, sy_strerror(rc));
            break;
        }
        if (np > PII_CLI_MAX_SPANS) np = PII_CLI_MAX_SPANS;
        (*records)++;
        for (size_t i = 0; i < ng; i++) {
            counts_t *c = &cnt[gold[i].type];
            c->gold++;
            bool hit = false;
            for (size_t j = 0; j < np; j++)
                if (pred[j].type == gold[i].type && pred[j].start < gold[i].end &&
                    gold[i].start < pred[j].end)
                    hit = true;
            c->gold_hit += hit;
            if (!hit && show_errors)
                printf("miss  %-15s %.*s  | %.120s\n", pii_type_name(gold[i].type),
                       (int)(gold[i].end - gold[i].start), text + gold[i].start, text);
        }
        for (size_t j = 0; j < np; j++) {
            counts_t *c = &cnt[pred[j].type];
            c->pred++;
            bool hit = false, exact = false;
            for (size_t i = 0; i < ng; i++) {
                if (gold[i].type != pred[j].type) continue;
                if (pred[j].start < gold[i].end && gold[i].start < pred[j].end) hit = true;
                if (pred[j].start == gold[i].start && pred[j].end == gold[i].end) exact = true;
            }
            c->pred_hit += hit;
            c->tp_exact += exact;
            if (!hit && show_errors)
                printf("false %-15s %.*s  | %.120s\n", pii_type_name(pred[j].type),
                       (int)(pred[j].end - pred[j].start), text + pred[j].start, text);
        }
    }
    mem_free(pred);
    cJSON_Delete(root);
    return rc;
}

/* Prints the evaluation table (or JSON) for the accumulated counts. */
static void eval_print(const counts_t cnt[PII_TYPE_COUNT], size_t skipped, size_t records,
                       bool json)
{
    if (json) {
        buf_t b;
        buf_init(&b, 1 << 20);
        jsonw_t w;
        jsonw_init(&w, &b);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "records");
        jsonw_uint(&w, records);
        jsonw_key(&w, "not_targeted");
        jsonw_uint(&w, skipped);
        jsonw_key(&w, "entities");
        jsonw_obj_begin(&w);
        for (int t = 0; t < PII_TYPE_COUNT; t++) {
            const counts_t *c = &cnt[t];
            if (!c->gold && !c->pred) continue;
            double pe = ratio(c->tp_exact, c->pred), re = ratio(c->tp_exact, c->gold);
            double po = ratio(c->pred_hit, c->pred), ro = ratio(c->gold_hit, c->gold);
            jsonw_key(&w, pii_type_name((pii_type_t)t));
            jsonw_obj_begin(&w);
            jsonw_key(&w, "gold"), jsonw_uint(&w, c->gold);
            jsonw_key(&w, "pred"), jsonw_uint(&w, c->pred);
            jsonw_key(&w, "exact_p"), jsonw_double(&w, pe);
            jsonw_key(&w, "exact_r"), jsonw_double(&w, re);
            jsonw_key(&w, "exact_f1"), jsonw_double(&w, f1(pe, re));
            jsonw_key(&w, "overlap_p"), jsonw_double(&w, po);
            jsonw_key(&w, "overlap_r"), jsonw_double(&w, ro);
            jsonw_key(&w, "overlap_f1"), jsonw_double(&w, f1(po, ro));
            jsonw_obj_end(&w);
        }
        jsonw_obj_end(&w);
        jsonw_obj_end(&w);
        printf("%s\n", b.data ? b.data : "{}");
        buf_deinit(&b);
        return;
    }
    printf("%-18s %6s %6s | %6s %6s %6s | %6s %6s %6s\n", "entity", "gold", "pred", "P", "R", "F1",
           "P~", "R~", "F1~");
    printf("%-18s %6s %6s | %-20s | %-20s\n", "", "", "", "  exact span", "  overlap");
    for (int t = 0; t < PII_TYPE_COUNT; t++) {
        const counts_t *c = &cnt[t];
        if (!c->gold && !c->pred) continue;
        double pe = ratio(c->tp_exact, c->pred), re = ratio(c->tp_exact, c->gold);
        double po = ratio(c->pred_hit, c->pred), ro = ratio(c->gold_hit, c->gold);
        printf("%-18s %6zu %6zu | %6.3f %6.3f %6.3f | %6.3f %6.3f %6.3f\n",
               pii_type_name((pii_type_t)t), c->gold, c->pred, pe, re, f1(pe, re), po, ro,
               f1(po, ro));
    }
    printf("records: %zu; gold labels not targeted (DATE_TIME, GPE, ORGANIZATION, ...): %zu\n",
           records, skipped);
}

/* ================================================================== flag rate */

/* Distinct flagged strings of one type, counted (--flag-rate prints the most
 * frequent). */
#define TALLY_SLOTS (1u << 16)
typedef struct tally {
    char *str[TALLY_SLOTS]; /* owned; NULL = empty */
    size_t count[TALLY_SLOTS];
    size_t n, dropped; /* distinct strings held; flags not counted once full */
} tally_t;

static void tally_add(tally_t *t, const char *s, size_t n)
{
    if (n > 80) n = 80;
    size_t h = (size_t)hash_bytes(s, n, 7) & (TALLY_SLOTS - 1);
    for (; t->str[h]; h = (h + 1) & (TALLY_SLOTS - 1))
        if (strlen(t->str[h]) == n && !memcmp(t->str[h], s, n)) {
            t->count[h]++;
            return;
        }
    if (t->n >= TALLY_SLOTS / 2) {
        t->dropped++;
        return;
    }
    t->str[h] = mem_strndup(s, n);
    t->count[h] = 1;
    t->n++;
}

static void tally_free(tally_t *t)
{
    for (size_t i = 0; i < TALLY_SLOTS; i++)
        mem_free(t->str[i]);
    mem_free(t);
}

/* Prints the k most frequent strings of t, with newlines shown as "\n". */
static void tally_print(const tally_t *t, int k)
{
    bool *shown = mem_calloc(TALLY_SLOTS, sizeof *shown);
    for (int r = 0; r < k; r++) {
        size_t best = TALLY_SLOTS;
        for (size_t i = 0; i < TALLY_SLOTS; i++)
            if (t->str[i] && !shown[i] && (best == TALLY_SLOTS || t->count[i] > t->count[best]))
                best = i;
        if (best == TALLY_SLOTS) break;
        shown[best] = true;
        printf("  %5zu  ", t->count[best]);
        for (const char *c = t->str[best]; *c; c++)
            fputs(*c == '\n' ? "\\n" : (char[2]){*c, 0}, stdout);
        putchar('\n');
    }
    mem_free(shown);
}

/* What --flag-rate counts over the messages scanned. */
typedef struct rate {
    const pii_scanner_t *s;
    pii_scratch_t *sc;
    pii_span_t *sp;
    tally_t *persons, *streets;
    size_t msgs, flagged, flagged_np, by_type[PII_TYPE_COUNT];
} rate_t;

/* Scans one message and counts what it holds. A message the scanner refuses (past its
 * limits: it reports nothing then) counts as flagged with PII_UNKNOWN, as the gateway
 * treats it, not as clean. */
static void rate_message(rate_t *r, const char *p, size_t n)
{
    size_t np = 0;
    r->msgs++;
    if (pii_scan(r->s, r->sc, p, n, r->sp, PII_CLI_MAX_SPANS, &np)) {
        r->by_type[PII_UNKNOWN]++;
        r->flagged++;
        r->flagged_np++;
        return;
    }
    bool seen[PII_TYPE_COUNT] = {0}, any_np = false;
    for (size_t i = 0; i < np && i < PII_CLI_MAX_SPANS; i++) {
        const pii_span_t *x = &r->sp[i];
        seen[x->type] = true;
        any_np |= x->type != PII_PERSON;
        if (x->type == PII_PERSON || x->type == PII_STREET_ADDRESS)
            tally_add(x->type == PII_PERSON ? r->persons : r->streets, p + x->start,
                      x->end - x->start);
    }
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        r->by_type[t] += seen[t];
    r->flagged += np > 0;
    r->flagged_np += any_np;
}

/* The messages --flag-rate scans, borrowed from the buffers and prompt sets that hold
 * them (kept until the end: the timed passes scan them again). */
typedef struct msgs {
    const char **v;
    size_t *len, n, cap, bytes;
    buf_t *raw;
    routedata_texts_t *sets;
    size_t nraw, nsets;
} msgs_t;

static void msgs_add(msgs_t *m, const char *p, size_t n)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->v = mem_realloc(m->v, m->cap * sizeof *m->v);
        m->len = mem_realloc(m->len, m->cap * sizeof *m->len);
    }
    m->v[m->n] = p, m->len[m->n++] = n, m->bytes += n;
}

static void msgs_free(msgs_t *m)
{
    for (size_t i = 0; i < m->nraw; i++)
        buf_deinit(&m->raw[i]);
    for (size_t i = 0; i < m->nsets; i++)
        routedata_texts_free(&m->sets[i]);
    mem_free(m->raw);
    mem_free(m->sets);
    mem_free(m->v);
    mem_free(m->len);
}

/* Reads the messages of each file (split at blank lines), or of each prompt set of
 * shared/data (a prompt is a message), into m. 0 or an error (message printed). */
static int msgs_read(msgs_t *m, char **files, int nfiles, bool prompts)
{
    if (prompts)
        m->sets = mem_calloc((size_t)nfiles, sizeof *m->sets);
    else
        m->raw = mem_calloc((size_t)nfiles, sizeof *m->raw);
    for (int f = 0; f < nfiles; f++) {
        int rc;
        if (prompts) {
            routedata_texts_t *t = &m->sets[m->nsets];
            if ((rc = routedata_prompts(routedata_shared(), files[f], t))) {
                fprintf(stderr, "pii: prompt set %s: %s\n", files[f], sy_strerror(rc));
                return rc;
            }
            m->nsets++;
            for (size_t i = 0; i < t->n; i++)
                msgs_add(m, t->v[i].text, strlen(t->v[i].text));
            continue;
        }
        buf_t *raw = &m->raw[m->nraw++];
        buf_init(raw, PII_CLI_MAX_INPUT);
        if ((rc = read_all(files[f], raw))) {
            fprintf(stderr, "pii: %s: %s\n", files[f], sy_strerror(rc));
            return rc;
        }
        const char *p = raw->data ? raw->data : "", *end = p + raw->len;
        while (p < end) {
            const char *q = strstr(p, "\n\n");
            if (!q) q = end;
            if (q > p) msgs_add(m, p, (size_t)(q - p));
            p = q + (q < end ? 2 : 0);
            while (p < end && *p == '\n')
                p++;
        }
    }
    return 0;
}

/* Scans the messages of each file or prompt set (msgs_read) and prints per-type counts
 * of flagged messages, the rate with and without PERSON, and the most frequent PERSON
 * and STREET_ADDRESS strings; then, when secs > 0, the scanner's throughput over
 * repeated passes of all messages for at least secs seconds (one thread). */
static int flag_rate(char **files, int nfiles, bool prompts, double secs, const pii_scanner_t *s,
                     pii_scratch_t *sc)
{
    msgs_t m = {0};
    int rc = msgs_read(&m, files, nfiles, prompts);
    if (rc) {
        msgs_free(&m);
        return rc;
    }
    rate_t r = {.s = s, .sc = sc};
    r.persons = mem_calloc(1, sizeof *r.persons), r.streets = mem_calloc(1, sizeof *r.streets);
    r.sp = mem_alloc(PII_CLI_MAX_SPANS * sizeof *r.sp);
    for (size_t i = 0; i < m.n; i++)
        rate_message(&r, m.v[i], m.len[i]);
    printf("messages: %zu\n", r.msgs);
    printf("flagged (any type):        %6zu  rate %.5f (1 in %.0f)\n", r.flagged,
           ratio(r.flagged, r.msgs), r.flagged ? (double)r.msgs / (double)r.flagged : 0.0);
    printf("flagged (excluding PERSON): %5zu  rate %.5f\n", r.flagged_np,
           ratio(r.flagged_np, r.msgs));
    printf("messages flagged per type:\n");
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        if (r.by_type[t])
            printf("  %-18s %6zu  rate %.5f\n", pii_type_name((pii_type_t)t), r.by_type[t],
                   ratio(r.by_type[t], r.msgs));
    printf("most frequent PERSON strings (%zu distinct%s):\n", r.persons->n,
           r.persons->dropped ? ", more not counted" : "");
    tally_print(r.persons, 20);
    printf("most frequent STREET_ADDRESS strings (%zu distinct%s):\n", r.streets->n,
           r.streets->dropped ? ", more not counted" : "");
    tally_print(r.streets, 20);
    if (secs > 0 && m.n) {
        size_t np, passes = 0;
        uint64_t t0 = clock_mono_ns(), el;
        do {
            for (size_t i = 0; i < m.n; i++)
                pii_scan(s, sc, m.v[i], m.len[i], r.sp, PII_CLI_MAX_SPANS, &np);
            passes++;
            el = clock_mono_ns() - t0;
        } while ((double)el < secs * 1e9);
        double sec = (double)el / 1e9;
        printf("throughput: %.1f MB/s, %.2f us per message (%zu bytes, %zu passes, one "
               "thread)\n",
               (double)m.bytes * (double)passes / 1e6 / sec,
               sec * 1e6 / ((double)m.n * (double)passes), m.bytes, passes);
    }
    mem_free(r.sp);
    tally_free(r.persons);
    tally_free(r.streets);
    msgs_free(&m);
    return 0;
}

/* ================================================================== scan */

static int scan_file(const char *path, const pii_scanner_t *s, pii_scratch_t *sc, bool json,
                     bool redact)
{
    buf_t raw;
    buf_init(&raw, PII_CLI_MAX_INPUT);
    int rc = read_all(path, &raw);
    if (rc) {
        fprintf(stderr, "pii: %s: %s\n", path, sy_strerror(rc));
        buf_deinit(&raw);
        return 1;
    }
    const char *text = raw.data ? raw.data : "";
    size_t np = 0;
    pii_span_t *sp = mem_alloc(PII_CLI_MAX_SPANS * sizeof *sp);
    rc = pii_scan(s, sc, text, raw.len, sp, PII_CLI_MAX_SPANS, &np);
    if (np > PII_CLI_MAX_SPANS) np = PII_CLI_MAX_SPANS;
    buf_t out;
    buf_init(&out, PII_CLI_MAX_INPUT * 2);
    if (rc) {
        fprintf(stderr, "pii: scan failed: %s\n", sy_strerror(rc));
    } else if (redact) {
        rc = pii_redact(text, raw.len, sp, np, &out);
        if (!rc) fwrite(out.data ? out.data : "", 1, out.len, stdout);
    } else if (json) {
        jsonw_t w;
        jsonw_init(&w, &out);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "spans");
        jsonw_arr_begin(&w);
        for (size_t i = 0; i < np; i++) {
            jsonw_obj_begin(&w);
            jsonw_key(&w, "type"), jsonw_str(&w, pii_type_name(sp[i].type));
            jsonw_key(&w, "start"), jsonw_uint(&w, sp[i].start);
            jsonw_key(&w, "end"), jsonw_uint(&w, sp[i].end);
            jsonw_key(&w, "score"),
                jsonw_double(&w, (double)((int)(sp[i].score * 1000 + 0.5f)) / 1000);
            jsonw_key(&w, "text"), jsonw_strn(&w, text + sp[i].start, sp[i].end - sp[i].start);
            jsonw_obj_end(&w);
        }
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        rc = jsonw_error(&w);
        if (!rc) printf("%s\n", out.data);
    } else {
        for (size_t i = 0; i < np; i++) {
            int n = (int)(sp[i].end - sp[i].start);
            const char *v = text + sp[i].start;
            const char *nl = memchr(v, '\n', (size_t)n);
            printf("%8zu %8zu  %-18s %.2f  %.*s%s\n", sp[i].start, sp[i].end,
                   pii_type_name(sp[i].type), (double)sp[i].score, nl ? (int)(nl - v) : n, v,
                   nl ? " ..." : "");
        }
    }
    buf_deinit(&out);
    buf_deinit(&raw);
    mem_free(sp);
    return rc ? 1 : 0;
}

/* --generate: reads the templates and the census lists, writes n records. */
static int generate(const char *templates, const char *names, long n, unsigned long seed)
{
    char tpath[4096], err[512];
    if (!templates) {
        const char *sh = getenv("SY_SHARED");
        snprintf(tpath, sizeof tpath, "%s/data/pii/templates.txt", sh ? sh : "../shared");
        templates = tpath;
    }
    if (n < 0 || !names) {
        fprintf(stderr, "pii --generate: %s\n",
                n < 0 ? "N must be 0 or more" : "needs the census name lists (--names DIR)");
        return 2;
    }
    buf_t t;
    buf_init(&t, 16u << 20);
    int rc = read_all(templates, &t);
    if (rc) {
        fprintf(stderr, "pii --generate: %s: %s\n", templates, sy_strerror(rc));
        buf_deinit(&t);
        return 1;
    }
    pii_census_t census;
    if (piiload_census_read(names, &census, err, sizeof err)) {
        fprintf(stderr, "pii --generate: %s\n", err);
        buf_deinit(&t);
        return 1;
    }
    rc = pii_gen_write(stdout, t.data ? t.data : "", t.len, &census, n, seed);
    piiload_census_free(&census);
    buf_deinit(&t);
    return rc ? 1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyard pii [--json] [--redact] [--names DIR] [FILE|-]\n"
               "       switchyard pii --eval FILE.json [--eval FILE.json ...] [--json] [--errors]\n"
               "                      [--names DIR]\n"
               "       switchyard pii --flag-rate [--prompts] [--seconds S] FILE.txt|SET [...]\n"
               "                      [--names DIR]\n"
               "       switchyard pii --generate N [--seed S] [--templates FILE] [--names DIR]\n"
               "  --names DIR   census1990_*.txt name lists (default $SY_SHARED/data/names);\n"
               "                --names none disables PERSON detection\n"
               "  --rules       PERSON and STREET_ADDRESS by the rules, as the gateway finds\n"
               "                them unless routing.pii.labeller is true (default here: the\n"
               "                labeller model of the names folder, when it holds one)\n"
               "  --min-score X threshold for every type (default 0.5)\n"
               "  --prompts     with --flag-rate: the arguments name prompt sets of\n"
               "                $SY_SHARED/data (routing, specbench, banking77, clinc150),\n"
               "                each prompt one message\n"
               "  --seconds S   with --flag-rate: then scan all messages again and again for S\n"
               "                seconds and print the throughput (MB/s, us per message)\n"
               "  --errors      with --eval: print each missed gold span and each finding that\n"
               "                overlaps none (\"miss\"/\"false\", type, value, text)\n"
               "  --generate N  write N labelled records (the --eval format) to stdout: the\n"
               "                templates ($SY_SHARED/data/pii/templates.txt) and sentences of\n"
               "                our own filled with census names, addresses and negatives\n");
}

int cmd_pii(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    bool json = false, redact = false, rate = false, prompts = false, labeller = true;
    const char *names = NULL, *input = NULL;
    char tmp[4096];
    bool names_set = false, gen = false;
    const char *templates = NULL;
    long gen_n = 0;
    unsigned long gen_seed = 1;
    float min_score = 0.5f, secs = 0;
    char **evals = mem_calloc((size_t)argc + 1, sizeof *evals),
         **rates = mem_calloc((size_t)argc + 1, sizeof *rates);
    int ne = 0, nr = 0, status = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, n;
        uint64_t u;
        if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--redact"))
            redact = true;
        else if (!strcmp(a, "--rules"))
            labeller = false;
        else if (!strcmp(a, "--errors"))
            show_errors = true;
        else if (!strcmp(a, "--generate") && i + 1 < argc)
            bad = cli_int(argv[++i], 1, 10000000, &n), gen_n = n, gen = true;
        else if (!strcmp(a, "--seed") && i + 1 < argc)
            bad = cli_u64(argv[++i], &u), gen_seed = (unsigned long)u;
        else if (!strcmp(a, "--templates") && i + 1 < argc)
            templates = argv[++i];
        else if (!strcmp(a, "--names") && i + 1 < argc)
            names = argv[++i], names_set = true;
        else if (!strcmp(a, "--min-score") && i + 1 < argc)
            bad = cli_float(argv[++i], 0, 1, &min_score);
        else if (!strcmp(a, "--eval") && i + 1 < argc)
            evals[ne++] = argv[++i];
        else if (!strcmp(a, "--flag-rate"))
            rate = true;
        else if (!strcmp(a, "--prompts") && rate)
            prompts = true;
        else if (!strcmp(a, "--seconds") && rate && i + 1 < argc)
            bad = cli_float(argv[++i], 0, 600, &secs);
        else if (rate && a[0] != '-')
            rates[nr++] = argv[i];
        else if (!input && (a[0] != '-' || !strcmp(a, "-")))
            input = a;
        else {
            usage(stderr);
            status = 2;
            goto done;
        }
        if (bad) {
            fprintf(stderr, "pii: bad value '%s' for %s\n", argv[i], a);
            status = 2;
            goto done;
        }
    }
    if (!names_set) names = default_names_dir(tmp, sizeof tmp);
    if (names && !strcmp(names, "none")) names = NULL;
    char err[512] = "";
    if (gen) {
        status = generate(templates, names, gen_n, gen_seed);
        goto done;
    }
    pii_scanner_t *s = piiload_scanner_new(names, labeller, min_score, err, sizeof err);
    if (!s) {
        fprintf(stderr, "pii: %s\n", err);
        status = 1;
        goto done;
    }
    pii_scratch_t *sc = pii_scratch_new(s);
    if (!names)
        fprintf(stderr, "pii: no name lists found: PERSON detection is off (see --names)\n");
    if (ne) {
        counts_t cnt[PII_TYPE_COUNT] = {0};
        size_t skipped = 0, records = 0;
        for (int i = 0; i < ne && !status; i++)
            if (eval_file(evals[i], s, sc, cnt, &skipped, &records)) status = 1;
        if (!status) eval_print(cnt, skipped, records, json);
    } else if (rate) {
        status = nr && !flag_rate(rates, nr, prompts, secs, s, sc) ? 0 : 1;
    } else {
        status = scan_file(input ? input : "-", s, sc, json, redact);
    }
    pii_scratch_free(sc);
    pii_scanner_free(s);
done:
    mem_free(evals);
    mem_free(rates);
    return status;
}
