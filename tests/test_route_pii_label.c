/* test_route_pii_label.c — the PII sequence labeller: the model file's checks (every
 * corrupt form is an error naming what is wrong), training on a few labelled texts
 * and finding the same pattern in new text, the shipped model on names, addresses and
 * clean prose, structured values that the labeller must not take over, and the span
 * contract on adversarial input through the labeller's windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii.h"
#include "route/pii/pii_label.h" /* the scanner's emission sums against the feature list */

/* Advances the xorshift64 generator *r of the random texts; returns its new state. */
static uint64_t xorshift(uint64_t *r)
{
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return *r;
}

/* A tiny census: enough for the gazetteer features. */
static const char female[] = "MARY           2.629  2.629      1\n"
                             "LENA           0.010 40.0     300\n"
                             "ANNA           0.500 10.0      20\n";
static const char male[] = "JAMES          3.318  3.318      1\n"
                           "PETER          1.000  5.000     10\n";
static const char last[] = "SMITH          1.006  1.006      1\n"
                           "JONES          0.500  3.000     20\n"
                           "ANDERSSON      0.001 80.000  20000\n";

static pii_scanner_t *small_scanner(void)
{
    pii_census_t c = {{female, male, last}, {sizeof female - 1, sizeof male - 1, sizeof last - 1}};
    pii_options_t o = {&c, 0.5f};
    char err[256];
    pii_scanner_t *s = pii_scanner_new(&o, err, sizeof err);
    assert_non_null(s);
    return s;
}

/* Adds the PERSON span at value's first occurrence in text. */
static size_t gold_at(const char *text, const char *value, pii_type_t t, pii_span_t *g, size_t n)
{
    const char *v = strstr(text, value);
    assert_non_null(v);
    g[n] = (pii_span_t){t, 1.0f, (size_t)(v - text), (size_t)(v - text) + strlen(value)};
    return n + 1;
}

/* Trains a small model on a handful of sentences; returns its bytes in out. */
static void train_small(pii_scanner_t *s, buf_t *out)
{
    pii_label_trainer_t *t = pii_label_trainer_new(s, 12);
    assert_non_null(t);
    static const char *const tx[] = {
        "Please call Lena Smith tomorrow.",  "Please call Peter Jones tomorrow.",
        "Please call Mary Andersson today.", "The Green Park opens at noon.",
        "The Blue Lake Hotel is closed.",    "Send it to 12 Oak Street today.",
        "Send it to 7 Mill Road tomorrow.",  "We met at the Grand Hall.",
        "Please call James Smith today.",    "Send it to 480 Elm Avenue now.",
    };
    static const char *const who[] = {"Lena Smith",  "Peter Jones",   "Mary Andersson", NULL,
                                      NULL,          "12 Oak Street", "7 Mill Road",    NULL,
                                      "James Smith", "480 Elm Avenue"};
    for (int epoch = 0; epoch < 20; epoch++)
        for (size_t i = 0; i < sizeof tx / sizeof tx[0]; i++) {
            pii_span_t g[2];
            size_t n = 0;
            if (who[i])
                n = gold_at(tx[i], who[i],
                            isdigit((unsigned char)who[i][0]) ? PII_STREET_ADDRESS : PII_PERSON, g,
                            n);
            assert_int_equal(pii_label_trainer_learn(t, tx[i], strlen(tx[i]), g, n), 0);
        }
    const pii_label_stats_t *st = pii_label_trainer_stats(t);
    assert_true(st->windows > 0);
    assert_true(st->entity_tokens > 0);
    /* bad input: a gold span past the text */
    pii_span_t bad = {PII_PERSON, 1, 3, 400};
    assert_int_equal(pii_label_trainer_learn(t, "short", 5, &bad, 1), SY_EINVAL);
    assert_int_equal(pii_label_trainer_save(t, out), 0);
    pii_label_trainer_free(t);
}

static bool has_span(const pii_scanner_t *s, const char *text, pii_type_t t, const char *value)
{
    pii_scratch_t *sc = pii_scratch_new(s);
    const pii_span_t *sp;
    size_t n;
    assert_int_equal(pii_scan_all(s, sc, text, strlen(text), &sp, &n), 0);
    bool hit = false;
    for (size_t i = 0; i < n; i++) {
        if (sp[i].type != t) continue;
        if (!value) {
            hit = true;
            continue;
        }
        const char *v = strstr(text, value);
        hit |= v && sp[i].start == (size_t)(v - text) && sp[i].end == sp[i].start + strlen(value);
    }
    pii_scratch_free(sc);
    return hit;
}

/* ================================================================== model file */

static void test_model_file_errors(void **state)
{
    (void)state;
    pii_scanner_t *s = small_scanner();
    buf_t m;
    buf_init(&m, 64u << 20);
    train_small(s, &m);
    char err[256];
    /* the good file loads */
    assert_int_equal(pii_scanner_load_labeller(s, m.data, m.len, err, sizeof err), 0);
    /* not a model */
    err[0] = 0;
    assert_int_equal(pii_scanner_load_labeller(s, "hello", 5, err, sizeof err), SY_EPARSE);
    assert_non_null(strstr(err, "not a model file"));
    assert_int_equal(pii_scanner_load_labeller(s, NULL, 0, err, sizeof err), SY_EPARSE);
    /* truncated */
    assert_int_equal(pii_scanner_load_labeller(s, m.data, m.len - 1, err, sizeof err), SY_EPARSE);
    assert_non_null(strstr(err, "truncated"));
    /* one flipped byte anywhere in the weights or header fields: checksum or field error */
    char *c = mem_dup(m.data, m.len);
    for (size_t at = 24; at < m.len; at += m.len / 37) {
        memcpy(c, m.data, m.len);
        c[at] ^= 0x10;
        err[0] = 0;
        assert_int_equal(pii_scanner_load_labeller(s, c, m.len, err, sizeof err), SY_EPARSE);
        assert_true(err[0] != 0);
    }
    /* another version: named as such */
    memcpy(c, m.data, m.len);
    c[8] = 2;
    assert_int_equal(pii_scanner_load_labeller(s, c, m.len, err, sizeof err), SY_EPARSE);
    assert_non_null(strstr(err, "version 2"));
    mem_free(c);
    /* a scanner without census lists takes no model */
    pii_options_t o = {NULL, 0.5f};
    pii_scanner_t *plain = pii_scanner_new(&o, err, sizeof err);
    assert_int_equal(pii_scanner_load_labeller(plain, m.data, m.len, err, sizeof err), SY_EINVAL);
    pii_scanner_free(plain);
    /* after the failed loads the scanner still holds the good model */
    assert_true(has_span(s, "Please call Anna Jones tomorrow.", PII_PERSON, "Anna Jones"));
    pii_scanner_free(s);
    buf_deinit(&m);
}

/* ================================================================== training */

static void test_train_and_find(void **state)
{
    (void)state;
    pii_scanner_t *s = small_scanner();
    assert_null(pii_label_trainer_new(s, 9)); /* bits out of range */
    buf_t m;
    buf_init(&m, 64u << 20);
    train_small(s, &m);
    /* an untrained model (all weights zero) labels everything outside: the findings
     * below come from what was learned */
    pii_label_trainer_t *t0 = pii_label_trainer_new(s, 12);
    buf_t m0;
    buf_init(&m0, 64u << 20);
    assert_int_equal(pii_label_trainer_save(t0, &m0), 0);
    pii_label_trainer_free(t0);
    assert_int_equal(pii_scanner_load_labeller(s, m0.data, m0.len, NULL, 0), 0);
    assert_false(has_span(s, "Please call Anna Jones tomorrow.", PII_PERSON, NULL));
    buf_deinit(&m0);
    assert_int_equal(pii_scanner_load_labeller(s, m.data, m.len, NULL, 0), 0);
    /* names and an address not seen in training, in the trained pattern */
    assert_true(has_span(s, "Please call Anna Jones tomorrow.", PII_PERSON, "Anna Jones"));
    assert_true(
        has_span(s, "Send it to 95 Oak Street today.", PII_STREET_ADDRESS, "95 Oak Street"));
    /* the trained negatives stay negative */
    assert_false(has_span(s, "The Blue Lake Hotel is closed.", PII_PERSON, NULL));
    assert_false(has_span(s, "the cat sat on the mat.", PII_PERSON, NULL));
    pii_scanner_free(s);
    buf_deinit(&m);
}

/* ================================================================== shipped model */

/* Reads path whole into an owned buffer (the test side of "route/ takes bytes"). */
static char *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b;
    buf_init(&b, 64u << 20);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        assert_int_equal(buf_append(&b, tmp, k), 0);
    fclose(f);
    *n = b.len;
    return buf_steal(&b);
}

/* The scanner with the repository's census lists and model (tests run from the
 * repository root); NULL when they are not there. */
static pii_scanner_t *shipped(void)
{
    if (access("data/names/pii-labeller.bin", R_OK) != 0) return NULL;
    pii_census_t c;
    for (int i = 0; i < PII_CENSUS_COUNT; i++) {
        char p[256];
        snprintf(p, sizeof p, "data/names/%s", pii_census_files[i]);
        c.data[i] = read_whole(p, &c.len[i]);
        assert_non_null(c.data[i]);
    }
    pii_options_t o = {&c, 0.5f};
    char err[512];
    pii_scanner_t *s = pii_scanner_new(&o, err, sizeof err);
    assert_non_null(s);
    for (int i = 0; i < PII_CENSUS_COUNT; i++)
        mem_free((void *)c.data[i]);
    size_t n;
    char *m = read_whole("data/names/pii-labeller.bin", &n);
    assert_non_null(m);
    if (pii_scanner_load_labeller(s, m, n, err, sizeof err)) fail_msg("%s", err);
    mem_free(m);
    return s;
}

static void test_shipped_model(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    assert_true(has_span(s, "Please send the contract to Maria Gonzalez by Friday.", PII_PERSON,
                         "Maria Gonzalez"));
    assert_true(has_span(s, "My name appears incorrectly, please correct it to Mr. Wijtze Smit.",
                         PII_PERSON, NULL));
    assert_true(has_span(s, "Ship it to 742 Evergreen Terrace, Springfield, IL 62704 please.",
                         PII_STREET_ADDRESS, NULL));
    assert_false(has_span(s, "The cat sat on the mat and then it went home.", PII_PERSON, NULL));
    /* a mask placeholder is not a name (the masked request is scanned again) */
    assert_false(has_span(s, "My friend <PERSON_1> likes tea", PII_PERSON, NULL));
    assert_false(has_span(s, "Dear <PERSON_12>, thanks", PII_PERSON, NULL));
    /* lower-case text: one census word alone is a word */
    assert_false(has_span(s, "plain words", PII_PERSON, NULL));
    assert_false(has_span(s, "the rose will grow long and the young bird sang", PII_PERSON, NULL));
    assert_false(has_span(s, "she felt hurt when she found the toy", PII_PERSON, NULL));
    /* ... but a given name alone, and every name of a list, is a name */
    assert_true(has_span(s, "can you send the report to ben tomorrow", PII_PERSON, "ben"));
    assert_true(has_span(s, "they had 3: silvana, adam and brian.", PII_PERSON, "adam"));
    /* validated values keep their type next to capitalised words */
    assert_true(has_span(s, "Transfer from GB82 WEST 1234 5698 7654 32 to Anna Jones.",
                         PII_IBAN_CODE, "GB82 WEST 1234 5698 7654 32"));
    assert_true(has_span(s, "Call Peter Jones at (212) 555-0187 today.", PII_PHONE_NUMBER,
                         "(212) 555-0187"));
    /* short prompts as a gateway sees them: commands, status words and stop sequences
     * are no names (they kept requests local or masked words while the labeller was
     * opt-in), while a name in the same shape of prompt still is one */
    const char *plain[] = {"Calling.",
                           "END",
                           "HALT",
                           "Error: Overloaded",
                           "Summarize: Overloaded servers",
                           "Explain TCP.",
                           "Stop when you see DONE",
                           "Write a poem about Paris."};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        assert_false(has_span(s, plain[i], PII_PERSON, NULL));
    assert_true(has_span(s, "Hi, I am Bob Smith", PII_PERSON, "Bob Smith"));
    assert_true(has_span(s, "Ask Lily to bring the book.", PII_PERSON, "Lily"));
    /* a chat role, a rare census name that is a common word, is no name; the census
     * name in its place still is one */
    assert_false(has_span(s, "Human: hi there\nAI: hello, how can I help?", PII_PERSON, NULL));
    assert_false(has_span(s, "what is ai and how does it work", PII_PERSON, NULL));
    assert_true(has_span(s, "Ai Nakamura called yesterday.", PII_PERSON, "Ai Nakamura"));
    /* a script's speakers; a surname that is a word, after a given name */
    assert_true(
        has_span(s, "JOHN:\nAre you coming tonight?\n\nMARY:\nYes, at eight.", PII_PERSON, "MARY"));
    assert_true(has_span(s, "The murder of Emmett Till in 1955 shocked the nation.", PII_PERSON,
                         "Emmett Till"));
    /* a boy's name in a story; a word of verse and a planet opening a sentence are none */
    assert_true(has_span(s, "There was a boy named Timmy who loved trains.", PII_PERSON, "Timmy"));
    assert_false(has_span(s, "Ay, my lord, I will go.", PII_PERSON, NULL));
    assert_false(has_span(s, "Earth is the third planet from the Sun.", PII_PERSON, NULL));
    /* an intersection is one address, its second street (a given name and a street
     * type, no number) no name */
    const char *corner = "Send the parcel to the corner of Rosenvej 7 and Harold Bypass, please.";
    assert_true(has_span(s, corner, PII_STREET_ADDRESS, "Rosenvej 7 and Harold Bypass"));
    assert_false(has_span(s, corner, PII_PERSON, NULL));
    /* a capitalised word alone is no address: an address has a number or a street */
    assert_false(has_span(s, "They rode to York before dawn.", PII_STREET_ADDRESS, NULL));
    /* lower-case postal lines: the house number before the street is found */
    assert_true(has_span(s, "billing address: jane doe\n    23 8 wressle road suite 771\n",
                         PII_STREET_ADDRESS, NULL));
    pii_scanner_free(s);
}

/* ================================================================== scan-path sums */

/* Asserts that the scanner's emission sums of every labelled token of w (token cache,
 * tables, window-wide features) equal the sums of the rows of the buckets of the
 * reference feature list; counts windows in *arg. */
static void check_sums(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    const pii_label_model_t *m = &c->s->label;
    int32_t fast[LAB_TOKS][PII_LABEL_TAGS];
    pii_label_emissions(c, w, fast);
    for (int i = 0; i < w->b - w->a; i++) {
        uint32_t feat[PII_LABEL_NFEAT];
        int n = pii_label_features(c, w, w->a + i, m->bits, feat);
        for (int t = 0; t < PII_LABEL_TAGS; t++) {
            int32_t ref = 0;
            for (int q = 0; q < n; q++)
                ref += m->w[(size_t)feat[q] * PII_LABEL_TAGS + t];
            assert_int_equal(fast[i][t], ref);
        }
    }
    (*(int *)arg)++;
}

/* Runs check_sums over every window of text and of its lower-case copy, twice with
 * the same scratch (the token cache cold, then warm); returns the windows seen. */
static int check_text_sums(const pii_scanner_t *s, pii_scratch_t *sc, const char *text)
{
    size_t len = strlen(text);
    char *low = mem_alloc(len + 1);
    for (size_t i = 0; i <= len; i++)
        low[i] = (char)tolower((unsigned char)text[i]);
    int windows = 0;
    for (int pass = 0; pass < 2; pass++) {
        scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len};
        pii_label_windows(&c, check_sums, &windows);
        scan_ctx_t cl = {.s = s, .sc = sc, .t = low, .len = len};
        pii_label_windows(&cl, check_sums, &windows);
    }
    mem_free(low);
    return windows;
}

/* Spans of text with sc, as "start end type score" lines appended to out. */
static void spans_of(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, buf_t *out)
{
    const pii_span_t *sp;
    size_t n;
    assert_int_equal(pii_scan_all(s, sc, text, strlen(text), &sp, &n), 0);
    for (size_t i = 0; i < n; i++) {
        char line[96];
        snprintf(line, sizeof line, "%zu %zu %d %.6f\n", sp[i].start, sp[i].end, (int)sp[i].type,
                 sp[i].score);
        assert_int_equal(buf_puts(out, line), 0);
    }
}

/* The scan path caches and tables what the features read; what it sums must be what
 * the trainer's feature list gives, on names, addresses, titles, initials, numbers,
 * possessives, long words, non-ASCII letters, URLs and lower-case text. A scratch that
 * meets another model (loaded into the same scanner) must forget the first one's sums:
 * it then finds exactly what a fresh scratch finds. */
static void test_scan_sums(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    static const char *const texts[] = {
        "Please send the contract to Maria Gonzalez by Friday. Lily said hi to Tom's dog.",
        "Mr. J. R. R. Tolkien-Smith and Dr. Anna van der Berg met O'Brien at 12 rue Victor "
        "Hugo, 3 ul. Dluga, 742 Evergreen Terrace, Springfield, IL 62704.\n\nKING RICHARD "
        "III:\nSo shall it be, Warwick.",
        "Ship it to #4B 221 Baker Street, Apt 7\nLondon NW1 6XE\n\nCall Peter Jones at "
        "(212) 555-0187 or peter.jones@example.com, see https://example.com/Smith.",
        "\xc3\x89mile \xc3\x89tienne and \xc5\x81ukasz Nowakowskiewiczowski-Brzeczyszczykiewicz "
        "visited Kirkegata 12 and Lindenweg 4; Internationalisation Committee said: HALT.",
        "billing address: jane doe\n    23 8 wressle road suite 771\ntracy sukhorukova lives "
        "at 46 velky pruhon 426 with anna smith",
    };
    pii_scratch_t *sc = pii_scratch_new(s);
    int windows = 0;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        windows += check_text_sums(s, sc, texts[i]);
    assert_true(windows > 40);
    /* another model into the same scanner, the same scratch scanning on */
    buf_t ref, got, m;
    buf_init(&ref, 1 << 20);
    buf_init(&got, 1 << 20);
    buf_init(&m, 64u << 20);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        spans_of(s, sc, texts[i], &got); /* fills the caches with the shipped model */
    train_small(s, &m);
    assert_int_equal(pii_scanner_load_labeller(s, m.data, m.len, NULL, 0), 0);
    buf_reset(&got);
    pii_scratch_t *fresh = pii_scratch_new(s);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        spans_of(s, sc, texts[i], &got);
        spans_of(s, fresh, texts[i], &ref);
    }
    assert_int_equal(got.len, ref.len);
    assert_memory_equal(got.data, ref.data, ref.len);
    windows = 0;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        windows += check_text_sums(s, sc, texts[i]);
    assert_true(windows > 40);
    buf_deinit(&ref);
    buf_deinit(&got);
    buf_deinit(&m);
    pii_scratch_free(fresh);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* Windows at their caps: long runs of capitals, numbers and joiners, lower-case text
 * full of census names, arbitrary bytes; every span must keep the contract. */
static void test_adversarial_windows(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    pii_scratch_t *sc = pii_scratch_new(s);
    size_t len = 1u << 20;
    char *t = mem_alloc(len);
    const char *pat[] = {"Anna Mary Smith Jones , 12 - ", "anna smith mary jones 12 oak street\n",
                         "A. B. C. D. E. ", "\xc3\x89mile \xc3\x89tienne O'Brien-Smith's "};
    uint64_t r = 88172645463325252ull;
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < len; i++) {
            if (k < 4) {
                t[i] = pat[k][i % strlen(pat[k])];
            } else {
                xorshift(&r);
                t[i] = (char)(r & 0xff);
            }
        }
        const pii_span_t *sp;
        size_t n;
        int rc = pii_scan_all(s, sc, t, len, &sp, &n);
        assert_true(rc == 0 || rc == SY_ETOOBIG);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            assert_true(sp[i].start < sp[i].end && sp[i].end <= len);
            assert_true(sp[i].score >= 0 && sp[i].score <= 1);
            if (i) assert_true(sp[i].start >= sp[i - 1].end);
        }
    }
    mem_free(t);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* The scanner reads the context before a seed a chunk at a time; it must find what
 * reading every byte from the window's earliest byte finds (the last tokens, the
 * first to label), at every capital of random texts of words, capitals, house
 * numbers, '#', street words, punctuation, URLs, apostrophes, UTF-8 letters and every
 * kind of gap, from random earlier window ends. */
static void test_ctx_chunks(void **state)
{
    (void)state;
    pii_scanner_t *s = small_scanner();
    pii_scratch_t *sc = pii_scratch_new(s);
    static const char *const frag[] = {
        "Anna", "Smith",   "rue",      "ul",      ".",      "12",           "4B",
        "#",    "7",       "street",   "ave",     "the",    "said",         ",",
        "'s",   "O'Brien", "Jean-Luc", "x@y.com", "/Smith", "\xc3\x89mile", "\xe2\x80\x94",
        "-",    "&",       "and",      "van",     "12345",  "III",          ":",
        "\"",   "St"};
    static const char *const gap[] = {" ", " ", " ", "  ", "\n", "\n\n", "\t", "\r\n", ""};
    uint64_t r = 0x9E3779B97F4A7C15ull;
    size_t checked = 0;
    char text[600];
    for (int round = 0; round < 400; round++) {
        size_t len = 0;
        while (len < sizeof text - 40) {
            xorshift(&r);
            const char *f = frag[r % (sizeof frag / sizeof *frag)];
            const char *g = gap[(r >> 20) % (sizeof gap / sizeof *gap)];
            memcpy(text + len, f, strlen(f));
            len += strlen(f);
            memcpy(text + len, g, strlen(g));
            len += strlen(g);
        }
        scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len};
        for (size_t j = 1; j < len; j++) {
            unsigned char b = (unsigned char)text[j - 1];
            if (!(text[j] >= 'A' && text[j] <= 'Z') || isalnum(b) || b >= 0x80) continue;
            xorshift(&r);
            size_t back = (size_t)(r % (j + 1)), from = j > back + 48 ? j - 48 : back;
            while (
                from > back && from < j &&
                (isalpha((unsigned char)text[from - 1]) || (unsigned char)text[from - 1] >= 0x80))
                from++;
            lab_tok_t bw[8], bc[8];
            int lw, lc, nw = pii_label_ctx(&c, from, j, true, bw, &lw),
                        nc = pii_label_ctx(&c, from, j, false, bc, &lc);
            /* the labelled tokens and the LAB_CTX before them */
            int cw = lw > LAB_CTX ? lw - LAB_CTX : 0, cc = lc > LAB_CTX ? lc - LAB_CTX : 0;
            assert_int_equal(nw - lw, nc - lc);
            assert_int_equal(nw - cw, nc - cc);
            for (int q = 0; q < nw - cw; q++) {
                assert_int_equal(bw[cw + q].st, bc[cc + q].st);
                assert_int_equal(bw[cw + q].en, bc[cc + q].en);
                assert_int_equal(bw[cw + q].kind, bc[cc + q].kind);
            }
            checked++;
        }
    }
    assert_true(checked > 4000);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* Records the first labelled token of every window. */
static void seed_words(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    buf_t *b = arg;
    const lab_tok_t *k = &w->tok[w->a];
    assert_int_equal(buf_append(b, c->t + k->st, k->en - k->st), 0);
    assert_int_equal(buf_puts(b, "|"), 0);
}

/* Common words capitalised by the grammar seed no window: contractions read as their
 * head, two-letter words the census holds as rare given names, a common word before
 * the pronoun "I"; given names that are words and common words before a name still
 * do. */
static void test_seed_rules(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    pii_scratch_t *sc = pii_scratch_new(s);
    static const char text[] = "So I went home.\nIn the park, I'll sing.\nMy dog and I ran.\n"
                               "Don't go. You're late. And I said so.\nLily ran to Tom's "
                               "house.\nSo Peter came.\nWill Smith waved.\n";
    buf_t b;
    buf_init(&b, 1 << 16);
    scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = sizeof text - 1};
    pii_label_windows(&c, seed_words, &b);
    assert_int_equal(buf_puts(&b, ""), 0);
    assert_string_equal(b.data, "Lily|Tom|So|Will|");
    buf_deinit(&b);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* Random texts of fragments that repeat (names, speaker labels, marks, URLs, glued
 * marks, numbers and street words, UTF-8, a stray continuation byte, tabs and carriage
 * returns), scanned with the span memo on one scratch that lives across all of them
 * and without it on another: the candidates are the same, in the same order. Every
 * text is scanned whole and cut short (windows at the text's end) and with bytes
 * before it (other `back`s and `from`s for the same windows). */
static void test_span_memo(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    static const char *const frag[] = {
        "Lily",        "Tom",
        "ROMEO",       "Maria Gonzalez",
        "J. R. Smith", "Dr. Anna van der Berg",
        "Jos\xc3\xa9", "O'Brien",
        "Mary-Jane",   "KING RICHARD III",
        " ",           "  ",
        "\n",          "\n\n",
        ", ",          ". ",
        ": ",          ":\n",
        "'s ",         "-",
        "\t",          "\r\n",
        " and ",       "@",
        "/",           ".com/",
        "\x80",        "said",
        "the",         "went",
        "Thus",        "But",
        "12",          "rue",
        "Main",        "St",
        "Street",      "#4",
        "Apt",         "B. ",
        "(C) ",        "x",
        "A.\nB.",      "Lily's",
        "e-mail",      "42 Baker Street",
    };
    enum { NF = sizeof frag / sizeof *frag };
    pii_scratch_t *on = pii_scratch_new(s), *off = pii_scratch_new(s);
    uint64_t r = 0x9E3779B97F4A7C15ull;
    char text[1024];
    size_t cands = 0;
    for (int t = 0; t < 3000; t++) {
        size_t len = 0;
        int nf = 4 + (int)(xorshift(&r) % 40);
        for (int f = 0; f < nf; f++) {
            const char *x = frag[xorshift(&r) % NF];
            size_t n = strlen(x);
            if (len + n >= sizeof text) break;
            memcpy(text + len, x, n);
            len += n;
        }
        for (int v = 0; v < 3; v++) {
            /* whole, cut short, and without its first bytes */
            size_t a = v == 2 ? (size_t)(xorshift(&r) % (len / 2 + 1)) : 0;
            size_t b = v == 1 ? len - (size_t)(xorshift(&r) % (len / 2 + 1)) : len;
            pii_scratch_t *sc[2] = {on, off};
            size_t n[2];
            for (int k = 0; k < 2; k++) {
                sc[k]->n = 0;
                scan_ctx_t c = {.s = s, .sc = sc[k], .t = text + a, .len = b - a};
                pii_label_scan(&c, k == 0);
                n[k] = sc[k]->n;
            }
            assert_int_equal(n[0], n[1]);
            for (size_t i = 0; i < n[0]; i++) {
                const pii_span_t *x = &on->cand[i], *y = &off->cand[i];
                if (x->type != y->type || x->score != y->score || x->start != y->start ||
                    x->end != y->end)
                    fail_msg("text %d: span %zu differs with the memo: %zu-%zu against %zu-%zu "
                             "in \"%.*s\"",
                             t, i, x->start, x->end, y->start, y->end, (int)(b - a), text + a);
            }
            cands += n[0];
        }
    }
    assert_true(cands > 10000);
    /* and the memo answers: a speaker label met again takes the spans its entry holds,
     * here marked by a score no decoding gives */
    static const char label[] = "Hello.\n\nROMEO:\nSpeak.\n";
    pii_span_memo_t *memo = (pii_span_memo_t *)(on->tok + (1u << PII_TOK_BITS));
    for (int pass = 0; pass < 2; pass++) {
        on->n = 0;
        scan_ctx_t c = {.s = s, .sc = on, .t = label, .len = sizeof label - 1};
        pii_label_scan(&c, true);
        assert_int_equal(on->n, 1);
        assert_int_equal(on->cand[0].start, 8);
        if (pass == 0) {
            for (size_t q = 0; q < (1u << PII_SPAN_MEMO_BITS); q++)
                for (int k = 0; k < memo[q].n; k++)
                    if (memo[q].st[k] == 0) memo[q].score[k] = 0.625f;
        } else {
            assert_true(on->cand[0].score == 0.625f);
        }
    }
    pii_scratch_free(on);
    pii_scratch_free(off);
    pii_scanner_free(s);
}

/* Asserts that window w ends at the text's end or before a line break, comma,
 * semicolon, '&' or "and": never inside one of the list's two-word names. */
static void check_cap_end(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    if (w->b < w->n) {
        const lab_tok_t *k = &w->tok[w->b];
        char ch = c->t[k->st];
        bool and = k->kind == LT_WORD && k->en - k->st == 3 && !strncmp(c->t + k->st, "and", 3);
        if (!(and || k->kind == LT_LINE ||
              (k->kind == LT_PUNCT && (ch == ',' || ch == ';' || ch == '&'))))
            fail_msg("a window ends before \"%.*s\" at byte %u", (int)(k->en - k->st), c->t + k->st,
                     k->st);
    }
    (*(int *)arg)++;
}

/* Lists far longer than a window's token cap, of random names and separators: every
 * window ends between two names, not inside one, and the scan's PERSON spans cover all
 * but at most 1 in 100 of the names whole. */
static void test_window_cap(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    static const char *const given[] = {"Elizabeth", "James", "Maria", "Peter", "Anna",
                                        "Robert",    "Linda", "Tomas", "Grace", "Oliver"};
    static const char *const surname[] = {"Brown",  "Smith",  "Garcia", "Novak", "Jensen",
                                          "Walker", "Moreno", "Keller", "Price", "Duarte"};
    static const char *const sep[] = {", ", "; ", " & ", " and ", "\n", ",\n"};
    pii_scratch_t *sc = pii_scratch_new(s);
    pii_span_t *sp = mem_alloc(4096 * sizeof *sp);
    uint64_t r = 0x9E3779B97F4A7C15ull;
    int total = 0, missed = 0;
    for (int round = 0; round < 8; round++) {
        char text[8192];
        size_t len = 0, st[200], en[200];
        int names = 40 + round * 20;
        for (int i = 0; i < names; i++) {
            xorshift(&r);
            /* one separator for most of a list (line breaks end windows: never the
             * list's own), sometimes another */
            const char *sp1 = r % 10 ? sep[round % 4] : sep[(r >> 4) % 6];
            if (i) len += (size_t)snprintf(text + len, sizeof text - len, "%s", sp1);
            st[i] = len;
            len += (size_t)snprintf(text + len, sizeof text - len, "%s %s", given[(r >> 8) % 10],
                                    surname[(r >> 16) % 10]);
            en[i] = len;
        }
        int windows = 0;
        scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len};
        pii_label_windows(&c, check_cap_end, &windows);
        assert_true(windows >= names / (LAB_TOKS / 3) - 1);
        size_t n = 0;
        assert_int_equal(pii_scan(s, sc, text, len, sp, 4096, &n), 0);
        /* a name is masked whole when every byte of it lies in a PERSON span */
        for (int i = 0; i < names; i++) {
            bool whole = true;
            for (size_t b = st[i]; b < en[i] && whole; b++) {
                bool in = text[b] == ' ';
                for (size_t q = 0; q < n && !in; q++)
                    in = sp[q].type == PII_PERSON && sp[q].start <= b && sp[q].end > b;
                whole = in;
            }
            if (!whole)
                print_message("not masked whole: \"%.*s\" (round %d, name %d of %d)\n",
                              (int)(en[i] - st[i]), text + st[i], round, i, names);
            total++;
            missed += !whole;
        }
    }
    /* the shipped model misses none of these 880 names; a model trained on lists of
     * commas alone missed 125 */
    assert_true(missed * 100 <= total);
    mem_free(sp);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* True when spans[0, n) hold one of type t exactly over the first occurrence of value
 * in text at or after from. */
static bool span_at(const pii_span_t *sp, size_t n, const char *text, size_t from, pii_type_t t,
                    const char *value)
{
    const char *v = strstr(text + from, value);
    if (!v) return false;
    size_t st = (size_t)(v - text), en = st + strlen(value);
    for (size_t i = 0; i < n; i++)
        if (sp[i].type == t && sp[i].start == st && sp[i].end == en) return true;
    return false;
}

/* A labeller span over a validated value is cut or dropped: an address keeps its part
 * before the value, or after it where it starts in one; a name goes. Each case is
 * checked alone and inside a long text of a thousand phone numbers, before, among and
 * after them, where the labeller looks a span's values up by position. */
static void test_values_cut(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    static const struct {
        const char *text, *value[2];
        pii_type_t type[2];
    } cases[] = {
        {"Meet at the corner of Rosenvej 7 and Harold Bypass 192.168.1.20 is the host.",
         {"Rosenvej 7 and Harold Bypass", "192.168.1.20"},
         {PII_STREET_ADDRESS, PII_IP_ADDRESS}},
        {"The office is at 17031 2202 Rissik St Apt. 050 Coalville South Africa.",
         {"Rissik St Apt. 050 Coalville South Africa", "17031 2202"},
         {PII_STREET_ADDRESS, PII_PHONE_NUMBER}},
        {"Ship to 742 Evergreen Terrace\n+44 20 7946 0958 is my number.",
         {"742 Evergreen Terrace", "+44 20 7946 0958"},
         {PII_STREET_ADDRESS, PII_PHONE_NUMBER}},
        {"Dear John Smith 4111 1111 1111 1111 thanks.",
         {"John Smith", "4111 1111 1111 1111"},
         {PII_PERSON, PII_CREDIT_CARD}},
    };
    const size_t ncase = sizeof cases / sizeof *cases;
    pii_scratch_t *sc = pii_scratch_new(s);
    size_t cap = 128 * 1024, len = 0, at[3][8];
    char *text = mem_alloc(cap);
    for (int part = 0; part < 3; part++) {
        for (size_t k = 0; k < ncase; k++) {
            at[part][k] = len;
            len += (size_t)snprintf(text + len, cap - len, "%s\n\n", cases[k].text);
        }
        for (int i = 0; part < 2 && i < 500; i++)
            len += (size_t)snprintf(text + len, cap - len, "Tel: (212) 555-%04d. ", i);
        len += (size_t)snprintf(text + len, cap - len, "\n\n");
    }
    const pii_span_t *sp;
    size_t n;
    for (size_t k = 0; k < ncase; k++) {
        const char *t = cases[k].text;
        assert_int_equal(pii_scan_all(s, sc, t, strlen(t), &sp, &n), 0);
        for (int v = 0; v < 2; v++)
            if (!span_at(sp, n, t, 0, cases[k].type[v], cases[k].value[v]))
                fail_msg("alone: no %s \"%s\" in \"%s\"", pii_type_name(cases[k].type[v]),
                         cases[k].value[v], t);
    }
    assert_int_equal(pii_scan_all(s, sc, text, len, &sp, &n), 0);
    size_t phones = 0;
    for (size_t i = 0; i < n; i++)
        phones += sp[i].type == PII_PHONE_NUMBER;
    assert_true(phones >= 1000);
    for (int part = 0; part < 3; part++)
        for (size_t k = 0; k < ncase; k++)
            for (int v = 0; v < 2; v++)
                if (!span_at(sp, n, text, at[part][k], cases[k].type[v], cases[k].value[v]))
                    fail_msg("part %d: no %s \"%s\" in \"%s\"", part,
                             pii_type_name(cases[k].type[v]), cases[k].value[v], cases[k].text);
    mem_free(text);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

/* The option letters of a text (byte offsets) that no window may label. */
typedef struct letters {
    size_t at[64];
    int n, windows;
} letters_t;

static void check_letters(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    letters_t *l = arg;
    for (int i = w->a; i < w->b; i++)
        for (int q = 0; q < l->n; q++)
            if (w->tok[i].st == l->at[q])
                fail_msg("a window labels the option letter '%c' at byte %zu", c->t[l->at[q]],
                         l->at[q]);
    l->windows++;
}

/* Multiple-choice questions of random options (names, common words, numbers) in the
 * letter styles prompts write ("B. ", "C) ", "(D) ", "A: "), blank lines between them
 * sometimes: no window labels a letter, no span covers one, and names among the options
 * are still found. A letter without its neighbours ("B. Smith" alone, "B." then "D.")
 * is an initial and seeds a window. */
static void test_option_letters(void **state)
{
    (void)state;
    pii_scanner_t *s = shipped();
    if (!s) {
        skip();
        return;
    }
    static const char *const fmt[] = {"%c. ", "%c) ", "(%c) ", "%c: ", "  %c. "};
    static const char *const opt[] = {"Normal saline", "Wrong, Not wrong", "None of these",
                                      "Negligence",    "Photosynthesis",   "12",
                                      "Both",          "Strict liability", "Ethanol"};
    static const char *const name[] = {"Maria Lopez", "James Walker", "Anna Novak", "Peter Jensen"};
    pii_scratch_t *sc = pii_scratch_new(s);
    pii_span_t *sp = mem_alloc(256 * sizeof *sp);
    uint64_t r = 0x2545F4914F6CDD1Dull;
    int names = 0, found = 0;
    for (int round = 0; round < 200; round++) {
        char text[2048];
        letters_t l = {.n = 0};
        size_t len = (size_t)snprintf(text, sizeof text, "Which of these is right?\n");
        const char *f = fmt[xorshift(&r) % 5];
        size_t nst[8], nen[8];
        int nn = 0;
        for (int i = 0, k = 2 + (int)(xorshift(&r) % 5); i < k; i++) {
            if (i && xorshift(&r) % 5 == 0) text[len++] = '\n';
            size_t ls = len;
            len += (size_t)snprintf(text + len, sizeof text - len, f, 'A' + i);
            l.at[l.n++] = (size_t)(strchr(text + ls, 'A' + i) - text);
            if (xorshift(&r) % 4 == 0) {
                nst[nn] = len;
                len += (size_t)snprintf(text + len, sizeof text - len, "%s", name[r % 4]);
                nen[nn++] = len;
            } else {
                len += (size_t)snprintf(text + len, sizeof text - len, "%s", opt[r % 9]);
            }
            text[len++] = '\n';
        }
        text[len] = 0;
        scan_ctx_t c = {.s = s, .sc = sc, .t = text, .len = len};
        pii_label_windows(&c, check_letters, &l);
        size_t n = 0;
        assert_int_equal(pii_scan(s, sc, text, len, sp, 256, &n), 0);
        for (size_t q = 0; q < n; q++)
            for (int i = 0; i < l.n; i++)
                if (sp[q].start <= l.at[i] && sp[q].end > l.at[i])
                    fail_msg("a span covers the option letter at byte %zu: \"%.*s\"", l.at[i],
                             (int)(sp[q].end - sp[q].start), text + sp[q].start);
        for (int i = 0; i < nn; i++) {
            bool hit = false;
            for (size_t q = 0; q < n && !hit; q++)
                hit = sp[q].type == PII_PERSON && sp[q].start < nen[i] && sp[q].end > nst[i];
            names++;
            found += hit;
        }
    }
    /* names among the options are found nearly all */
    assert_true(names > 50);
    assert_true(found * 10 >= names * 9);
    /* option letters at a text's edges, read from heap copies of their exact length
     * (an over-read fails under ASan) */
    static const char *const edge[] = {"A. x\nB",  "A. x\nB.", "\n\n\nB. ", "A)\n(B",
                                       "B. x\n\n", "\nC: ",    "C.\n\nD.",  "(J) "};
    for (int i = 0; i < 8; i++) {
        size_t n = strlen(edge[i]), k = 0;
        char *dup = mem_alloc(n);
        memcpy(dup, edge[i], n);
        assert_int_equal(pii_scan(s, sc, dup, n, sp, 256, &k), 0);
        mem_free(dup);
    }
    /* a letter without the letters next to it is an initial */
    static const char *const alone[] = {"Notes\nB. Smith called.\n", "B. Smith\nD. Jones\n"};
    for (int i = 0; i < 2; i++) {
        buf_t b;
        buf_init(&b, 1 << 12);
        scan_ctx_t c = {.s = s, .sc = sc, .t = alone[i], .len = strlen(alone[i])};
        pii_label_windows(&c, seed_words, &b);
        assert_int_equal(buf_puts(&b, ""), 0);
        assert_non_null(strstr(b.data, "B|"));
        buf_deinit(&b);
    }
    mem_free(sp);
    pii_scratch_free(sc);
    pii_scanner_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_file_errors),   cmocka_unit_test(test_train_and_find),
        cmocka_unit_test(test_shipped_model),       cmocka_unit_test(test_scan_sums),
        cmocka_unit_test(test_adversarial_windows), cmocka_unit_test(test_ctx_chunks),
        cmocka_unit_test(test_seed_rules),          cmocka_unit_test(test_window_cap),
        cmocka_unit_test(test_option_letters),      cmocka_unit_test(test_span_memo),
        cmocka_unit_test(test_values_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
