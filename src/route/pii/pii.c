/* pii.c — the PII scanner: one Hyperscan database of triggers, C extractors behind it.
 *
 * Design. Hyperscan runs once over the text with a small set of trigger patterns
 * (an '@' followed by a domain, two digits, an IBAN prefix, a secret prefix, a context
 * keyword, a street suffix). Triggers report only their end offset; each one wakes a C
 * extractor that finds the whole candidate around it, validates it (pii_valid.c) and
 * scores it Presidio-style: a base score from the shape, a boost from context words in
 * a window, then a per-type threshold. Each extractor records how far it has read so a
 * burst of triggers inside one candidate costs one extraction. Person names are found
 * by a separate pass over capitalised tokens with one hash probe each. Candidates that
 * overlap are merged (the higher score wins, then the longer span).
 *
 * Text with look-alike characters (decimal digits of any script, fullwidth forms,
 * zero-width characters, Unicode dashes between digits) is also normalised into a copy with an
 * offset map and scanned again, so "４６０-８９-９８４７" is found at its true offsets.
 */

#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_label.h"

/* ================================================================== triggers */

/* Triggers are short literals or digit pairs: Hyperscan runs literal-led patterns at
 * GB/s, while long character-class patterns slow the whole database to ~150 MB/s. The
 * C extractors do the rest. The IPv6 trigger (H{1,4}::?H{1,4}: with H a hex digit) is
 * found in C (v6_scan): in the database it slowed every scan of prose by 6-11%.
 * `rare` marks the triggers that find nothing in a text without a digit or an '@' (a
 * digit pair; keywords whose value must hold digits; an email's '@'): a text with
 * neither, most prose, is scanned with a second database that leaves them out (10-13%
 * faster on prose, the keywords with \b and two-letter literals, the email pattern's
 * classes being the costly part). */
static const struct {
    int id;
    unsigned flags;
    bool rare;
    const char *re;
} triggers[] = {
    /* internationalised domains: a UTF-8 lead byte in the first label or the TLD (a
     * class of every non-ASCII byte under the + made the database 2x slower to build) */
    {T_EMAIL, 0, true,
     "@[A-Za-z0-9\\-]+\\.(?:[A-Za-z]{2}|[\\xC2-\\xF4])|@[A-Za-z0-9\\-]*[\\xC2-\\xF4]"},
    {T_NUM, 0, true, "\\d[\\-./ ]?\\d"},
    {T_AWS, 0, false, "AKIA|ASIA|AGPA|AIDA|AROA"},
    {T_GCP, 0, false, "AIza"},
    {T_GITHUB, 0, false, "gh[pousr]_"},
    {T_GITHUB_PAT, 0, false, "github_pat_"},
    {T_SLACK, 0, false, "xox[abposr]-"},
    {T_PRIVKEY, 0, false, "-----BEGIN "},
    {T_BEARER, 0, false, "[Bb]earer "},
    {T_KEY_LICENSE, HS_FLAG_CASELESS, true, "licen[cs]e|\\bDL\\b|driving permit"},
    {T_KEY_PASSPORT, HS_FLAG_CASELESS, true, "passport"},
    {T_KEY_BIRTH, HS_FLAG_CASELESS, true, "\\bborn\\b|birth|\\bdob\\b|d\\.o\\.b"},
    {T_KEY_SSN, HS_FLAG_CASELESS, true, "\\bssn\\b|social security"},
    {T_KEY_NAME, HS_FLAG_CASELESS, false,
     "name is |name's |name\\? |\\bname: |call(s|ed)? me |\\bnamed "},
    /* the digit alternative cannot match without digits; the others can */
    {T_LOOKALIKE, 0, false,
     "\\xEF\\xBC[\\x90-\\x99\\xA0-\\xBF]|\\xEF\\xBD[\\x80-\\x9A]|\\xD9[\\xA0-\\xA9]|"
     "\\xDB[\\xB0-\\xB9]|\\xE2\\x80[\\x8B-\\x8D]|\\xE2\\x81\\xA0|\\xEF\\xBB\\xBF|"
     "\\d(?:\\xE2\\x80[\\x90-\\x95]|\\xE2\\x88\\x92|\\xC2\\xA0)\\d"},
};
#define N_TRIGGERS (sizeof triggers / sizeof triggers[0])

/* ================================================================== types */

static const char *const type_names[PII_TYPE_COUNT] = {
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",    "US_SSN",        "IBAN_CODE",
    "IP_ADDRESS",    "PERSON",       "STREET_ADDRESS", "DATE_OF_BIRTH", "US_DRIVER_LICENSE",
    "US_PASSPORT",   "SECRET",       "UNKNOWN",
};

const char *pii_type_name(pii_type_t t)
{
    return (unsigned)t < PII_TYPE_COUNT ? type_names[t] : "UNKNOWN";
}

int pii_type_parse(const char *name, pii_type_t *out)
{
    for (int i = 0; i < PII_TYPE_COUNT; i++)
        if (!strcmp(name, type_names[i])) {
            *out = (pii_type_t)i;
            return 0;
        }
    return SY_EINVAL;
}

/* Hyperscan callback: dispatches each trigger to its extractor. */
static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *vctx)
{
    (void)flags;
    scan_ctx_t *c = vctx;
    size_t t = (size_t)to;
    pii_extract_v6(c, t); /* IPv6 matches before this one (none can end at t: t - 1 is no colon) */
    switch (id) {
    case T_EMAIL:
        if (t > c->sc->done[T_EMAIL]) pii_extract_email(c, t);
        break;
    case T_NUM:
        if (t > c->sc->done[T_NUM]) pii_extract_num(c, t);
        break;
    case T_AWS:
    case T_GCP:
    case T_GITHUB:
    case T_GITHUB_PAT:
    case T_SLACK:
    case T_PRIVKEY:
    case T_BEARER:
        pii_extract_secret(c, (int)id, t);
        break;
    case T_KEY_LICENSE:
    case T_KEY_PASSPORT:
    case T_KEY_BIRTH:
    case T_KEY_SSN:
        pii_extract_keyword(c, (int)id, t);
        break;
    case T_KEY_NAME:
        if (c->s->names.slots) pii_person_name_key(c, t);
        break;
    case T_LOOKALIKE:
        c->sc->lookalike = true;
        break;
    }
    return 0;
}

/* ================================================================== merge */

static int span_cmp(const void *a, const void *b)
{
    const pii_span_t *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->end != y->end) return x->end > y->end ? -1 : 1;
    return (int)x->type - (int)y->type;
}

/* Sorts v[0, n) by span_cmp by merging its ascending runs, stable: candidates come as
 * a few runs (the triggers' in the order they fire, the labeller's in text order), so a
 * message or a long text costs a pass and a merge or two, not a full sort. Its buffers
 * are the scratch's work space. */
static void sort_spans(pii_scratch_t *sc, pii_span_t *v, size_t n)
{
    pii_span_t *tmp = pii_scratch_work(sc, n * sizeof *tmp + (n + 1) * sizeof(size_t));
    size_t *run = (size_t *)(tmp + n), nr = 0;
    for (size_t i = 0; i < n;) {
        run[nr++] = i++;
        while (i < n && span_cmp(&v[i - 1], &v[i]) <= 0)
            i++;
    }
    run[nr] = n; /* runs r: [run[r], run[r + 1]) */
    while (nr > 1) {
        size_t w = 0;
        for (size_t r = 0; r < nr; r += 2) {
            size_t a = run[r], m = run[r + 1], e = r + 1 < nr ? run[r + 2] : m, i = a, j = m;
            for (size_t k = a; k < e; k++)
                tmp[k] = j == e || (i < m && span_cmp(&v[i], &v[j]) <= 0) ? v[i++] : v[j++];
            memcpy(v + a, tmp + a, (e - a) * sizeof *v);
            run[w++] = a;
        }
        run[w] = n;
        nr = w;
    }
}

/* Sorts candidates and resolves overlaps in place: within a chain of overlapping
 * spans the higher score wins, then the longer one. Returns the count kept. */
static size_t merge_spans(pii_scratch_t *sc, pii_span_t *v, size_t n)
{
    if (n == 0) return 0;
    sort_spans(sc, v, n);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        pii_span_t *last = &v[k];
        if (v[i].start < last->end) {
            bool better =
                v[i].score > last->score ||
                (v[i].score == last->score && v[i].end - v[i].start > last->end - last->start);
            if (better) *last = v[i];
            continue;
        }
        v[++k] = v[i];
    }
    return k + 1;
}

/* ================================================================== look-alikes */

/* Decodes one UTF-8 look-alike at p: writes its ASCII stand-in to *out (0 = drop the
 * character) and returns its byte length, or 0 when p is not a look-alike. */
static size_t lookalike_at(const unsigned char *p, size_t left, char *out)
{
    if (left >= 3 && p[0] == 0xEF && (p[1] == 0xBC || p[1] == 0xBD)) {
        unsigned cp = 0xFF00u + ((unsigned)(p[1] & 0x03) << 6) + (p[2] & 0x3F);
        if (cp >= 0xFF01 && cp <= 0xFF5E) {
            *out = (char)(cp - 0xFF01 + 0x21);
            return 3;
        }
    }
    if (p[0] >= 0xC2) {
        /* a decimal digit of any script: Arabic-Indic, Devanagari, Thai, Bengali,
         * mathematical bold, ... */
        int v;
        size_t l = pii_utf8_digit(p, left, &v);
        if (l) {
            *out = (char)('0' + v);
            return l;
        }
    }
    if (left >= 3 && p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x8B && p[2] <= 0x8D) {
        *out = 0;
        return 3;
    }
    if (left >= 3 && ((p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0xA0) ||
                      (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF))) {
        *out = 0;
        return 3;
    }
    if (left >= 3 && p[0] == 0xE2 &&
        ((p[1] == 0x80 && p[2] >= 0x90 && p[2] <= 0x95) || (p[1] == 0x88 && p[2] == 0x92))) {
        *out = '-';
        return 3;
    }
    if (left >= 2 && p[0] == 0xC2 && p[1] == 0xA0) {
        *out = ' ';
        return 2;
    }
    return 0;
}

static int scan_pass(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len);

/* Slow path for text holding look-alikes: builds a normalised copy with an offset
 * map, scans it, and maps the spans found back to the original offsets. */
static int scan_lookalikes(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len)
{
    if (len + 1 > sc->norm_cap) {
        sc->norm_cap = len + 1;
        sc->norm = mem_realloc(sc->norm, sc->norm_cap);
        sc->map = mem_realloc(sc->map, sc->norm_cap * sizeof *sc->map);
    }
    const unsigned char *p = (const unsigned char *)text;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        char ch;
        size_t l = lookalike_at(p + i, len - i, &ch);
        if (l) {
            if (ch) {
                sc->map[k] = i;
                sc->norm[k++] = ch;
            }
            i += l;
            continue;
        }
        sc->map[k] = i;
        sc->norm[k++] = text[i++];
    }
    sc->map[k] = len;
    size_t first = sc->n;
    int rc = scan_pass(s, sc, sc->norm, k);
    if (rc) return rc;
    for (size_t i = first; i < sc->n; i++) {
        size_t e = sc->cand[i].end;
        sc->cand[i].start = sc->map[sc->cand[i].start];
        /* end: one past the original bytes of the last normalised character */
        sc->cand[i].end = e < k ? sc->map[e] : len;
    }
    return 0;
}

/* ================================================================== scan */

/* One Hyperscan pass plus the name pass over text, appending candidates. */
static int scan_pass(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len)
{
    name_memo_t memo;
    memo.nkept = memo.nleft = memo.npend = 0;
    memo.pend_over = false;
    scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len, .memo = &memo, .first = sc->n};
    memset(sc->done, 0, sizeof sc->done);
    /* hs_scan takes an unsigned int length: scan huge inputs in overlapping blocks. */
    const size_t block = 1u << 30, overlap = 4096;
    for (size_t off = 0; off < len || (len == 0 && off == 0); off += block - overlap) {
        size_t n = len - off < block ? len - off : block;
        c.t = text + off;
        c.len = len - off;
        size_t first = sc->n;
        bool rare;
        c.v6_q = pii_text_survey((const unsigned char *)text + off, n, &rare);
        c.v6_prev = c.v6_q - 2; /* the first pair is looked at whatever lies before it */
        c.v6_n = n;
        /* Without a digit or an '@' the triggers left out of db_prose would not fire, or
         * fire only where their extractors find nothing. Keywords read past a block's
         * end, so a text of more than one block takes every trigger. */
        const hs_database_t *db = rare || len > block ? s->db : s->db_prose;
        hs_error_t e = hs_scan(db, text + off, (unsigned)n, 0, sc->hs, on_match, &c);
        if (e != HS_SUCCESS) return SY_EINVAL;
        pii_extract_v6(&c, n + 1);
        for (size_t i = first; i < sc->n; i++) {
            sc->cand[i].start += off;
            sc->cand[i].end += off;
        }
        if (off + n >= len) break;
        memset(sc->done, 0, sizeof sc->done);
    }
    c.t = text;
    c.len = len;
    /* Names: the labeller where a model was given (it supersedes the capitalised-run
     * rules, which are the fallback without one); street addresses: the labeller's
     * and the house-number rule's findings together (measured better than either). */
    if (s->label.w)
        pii_label_scan(&c, true);
    else if (s->names.slots)
        pii_person_scan(&c);
    return 0;
}

int pii_scan_all(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len,
                 const pii_span_t **spans, size_t *n)
{
    if (!s || !sc || (!text && len) || !spans || !n) return SY_EINVAL;
    if (!text) text = "";
    sc->n = 0;
    sc->lookalike = false;
    sc->over = false;
    *spans = NULL;
    *n = 0;
    int rc = scan_pass(s, sc, text, len);
    /* Decimal digits of other scripts are found in C, not by a trigger: ~700 more
     * literals made building the database (each scanner, each test) twice as slow. */
    if (!rc && (sc->lookalike || pii_text_has_nd((const unsigned char *)text, len)))
        rc = scan_lookalikes(s, sc, text, len);
    if (!rc && sc->over) rc = SY_ETOOBIG;
    if (rc) return rc;
    *n = merge_spans(sc, sc->cand, sc->n);
    *spans = sc->cand;
    return 0;
}

int pii_scan(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len,
             pii_span_t *out, size_t max, size_t *n_found)
{
    const pii_span_t *all;
    size_t n;
    int rc = pii_scan_all(s, sc, text, len, &all, &n);
    if (rc) return rc;
    if (out && n && max) memcpy(out, all, (n < max ? n : max) * sizeof *out);
    if (n_found) *n_found = n;
    return 0;
}

/* ================================================================== lifetime */

/* Compiles the triggers (prose: only those not `rare`) into *db. 0, or
 * SY_EINVAL with err filled. */
static int triggers_compile(bool prose, hs_database_t **db, char *err, size_t errlen)
{
    const char *exprs[N_TRIGGERS];
    unsigned flags[N_TRIGGERS], ids[N_TRIGGERS], n = 0;
    for (size_t i = 0; i < N_TRIGGERS; i++) {
        if (prose && triggers[i].rare) continue;
        exprs[n] = triggers[i].re;
        flags[n] = triggers[i].flags;
        ids[n++] = (unsigned)triggers[i].id;
    }
    hs_compile_error_t *ce = NULL;
    if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, db, &ce) != HS_SUCCESS) {
        snprintf(err, errlen, "pattern %d: %s", ce ? ce->expression : -1,
                 ce ? ce->message : "compile failed");
        hs_free_compile_error(ce);
        return SY_EINVAL;
    }
    return 0;
}

pii_scanner_t *pii_scanner_new(const pii_options_t *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    pii_scanner_t *s = mem_calloc(1, sizeof *s);
    float thr = opts && opts->min_score > 0 ? opts->min_score : 0.5f;
    for (int i = 0; i < PII_TYPE_COUNT; i++)
        s->thr[i] = thr;
    int rc = triggers_compile(false, &s->db, err, errlen);
    if (!rc) rc = triggers_compile(true, &s->db_prose, err, errlen);
    if (!rc && opts && opts->census) rc = pii_names_load(&s->names, opts->census, err, errlen);
    if (rc) {
        pii_scanner_free(s);
        return NULL;
    }
    return s;
}

void pii_scanner_free(pii_scanner_t *s)
{
    if (!s) return;
    hs_free_database(s->db);
    hs_free_database(s->db_prose);
    pii_names_deinit(&s->names);
    pii_label_model_deinit(&s->label);
    mem_free(s);
}

int pii_scanner_load_labeller(pii_scanner_t *s, const void *bytes, size_t len, char *err,
                              size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!s || !s->names.slots) {
        snprintf(err, errlen, "labeller model needs a scanner with census lists");
        return SY_EINVAL;
    }
    pii_label_model_t m;
    int rc = pii_label_model_load(&m, bytes, len, err, errlen);
    if (rc) return rc;
    pii_label_model_deinit(&s->label);
    s->label = m;
    return 0;
}

int pii_scanner_set_threshold(pii_scanner_t *s, pii_type_t t, float min_score)
{
    if (!s || (unsigned)t >= PII_TYPE_COUNT || min_score < 0 || min_score > 1) return SY_EINVAL;
    s->thr[t] = min_score;
    return 0;
}

pii_scratch_t *pii_scratch_new(const pii_scanner_t *s)
{
    if (!s) return NULL;
    pii_scratch_t *sc = mem_calloc(1, sizeof *sc);
    /* the labeller's token cache: one line per slot */
    sc->tok_mem = mem_calloc(1, PII_TOK_MEM + 63);
    sc->tok = (pii_tok_slot_t *)(((uintptr_t)sc->tok_mem + 63) & ~(uintptr_t)63);
    /* one scratch space large enough for both databases */
    if (hs_alloc_scratch(s->db, &sc->hs) != HS_SUCCESS ||
        hs_alloc_scratch(s->db_prose, &sc->hs) != HS_SUCCESS) {
        hs_free_scratch(sc->hs);
        mem_free(sc->tok_mem);
        mem_free(sc);
        return NULL;
    }
    return sc;
}

void pii_scratch_free(pii_scratch_t *sc)
{
    if (!sc) return;
    hs_free_scratch(sc->hs);
    mem_free(sc->cand);
    mem_free(sc->norm);
    mem_free(sc->map);
    mem_free(sc->work);
    mem_free(sc->tok_mem);
    mem_free(sc);
}

void *pii_scratch_work(pii_scratch_t *sc, size_t bytes)
{
    if (bytes > sc->work_cap) {
        sc->work = mem_realloc(sc->work, bytes);
        sc->work_cap = bytes;
    }
    return sc->work;
}

/* ================================================================== redact */

int pii_redact(const char *text, size_t len, const pii_span_t *spans, size_t n, buf_t *out)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t st = spans[i].start, en = spans[i].end;
        if (st < pos || en > len || st > en) return SY_EINVAL;
        int rc = buf_append(out, text + pos, st - pos);
        if (!rc) rc = buf_printf(out, "<%s>", pii_type_name(spans[i].type));
        if (rc) return rc;
        pos = en;
    }
    return buf_append(out, text + pos, len - pos);
}
