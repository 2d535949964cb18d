/* fuzz_pii.c — libFuzzer target for the PII scanner.
 *
 * Scans arbitrary bytes and checks the span contract: sorted, non-overlapping, inside
 * the input, known types, scores in 0..1. Then redacts and masks with the spans and
 * checks that restoring the masked text gives the input back. The names and the
 * labeller model come from data/names (run from the repository root), else the
 * gazetteer from $SY_SHARED/data/names (else PERSON detection is off).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/mem.h"
#include "api/piiload.h"
#include "route/pii/pii.h"

static pii_scanner_t *scanner;
static pii_scratch_t *scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[4096], probe[4200];
    const char *sh = getenv("SY_SHARED");
    /* the repository's folder holds the labeller model as well */
    snprintf(dir, sizeof dir, "data/names");
    snprintf(probe, sizeof probe, "%s/%s", dir, PIILOAD_LABELLER_FILE);
    FILE *m = fopen(probe, "r");
    if (m)
        fclose(m);
    else
        snprintf(dir, sizeof dir, "%s/data/names", sh ? sh : "../shared");
    snprintf(probe, sizeof probe, "%s/census1990_last.txt", dir);
    FILE *f = fopen(probe, "r");
    if (f) fclose(f);
    char err[256];
    scanner = piiload_scanner_new(f ? dir : NULL, true, 0.5f, err, sizeof err);
    if (!scanner) {
        fprintf(stderr, "fuzz_pii: %s\n", err);
        abort();
    }
    scratch = pii_scratch_new(scanner);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX = 256 };
    pii_span_t sp[MAX];
    size_t n = 0;
    const char *t = (const char *)data;
    if (pii_scan(scanner, scratch, t, size, sp, MAX, &n)) abort();
    size_t k = n < MAX ? n : MAX;
    for (size_t i = 0; i < k; i++) {
        if (sp[i].start >= sp[i].end || sp[i].end > size) abort();
        if ((unsigned)sp[i].type >= PII_TYPE_COUNT) abort();
        if (!(sp[i].score >= 0.0f && sp[i].score <= 1.0f)) abort();
        if (i && sp[i].start < sp[i - 1].end) abort();
    }
    buf_t red, masked, back;
    buf_init(&red, 4 * size + 4096);
    buf_init(&masked, 4 * size + 4096);
    buf_init(&back, 4 * size + 4096);
    if (pii_redact(t, size, sp, k, &red)) abort();
    pii_mask_t *m = pii_mask_new(size + 1);
    if (pii_mask_apply(m, t, size, sp, k, &masked)) abort();
    if (pii_mask_restore(m, masked.data, masked.len, &back)) abort();
    /* Restoring gives the input back unless the input itself held placeholder-like
     * text ("<PERSON_1>"), which restore replaces too. */
    if (!memchr(t, '<', size) && (back.len != size || memcmp(back.data, t, size))) abort();
    pii_mask_free(m);
    buf_deinit(&red);
    buf_deinit(&masked);
    buf_deinit(&back);
    return 0;
}
