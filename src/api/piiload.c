/* piiload.c — the file side of the PII scanner (see piiload.h). */
#include "api/piiload.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"

#define CENSUS_MAX   (16u << 20) /* bytes per list; the 1990 lists are under 3 MiB */
#define LABELLER_MAX (64u << 20) /* bytes of the labeller model (2^20 buckets: 10 MiB) */

/* Reads a whole file into an owned buffer of at most max bytes. 0, -errno or
 * SY_ETOOBIG; out is left empty on failure. */
static int read_all(const char *path, size_t max, buf_t *out)
{
    buf_init(out, max);
    int rc = buf_read_file(out, path);
    if (rc) buf_deinit(out);
    return rc;
}

int piiload_census_read(const char *dir, pii_census_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < PII_CENSUS_COUNT; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, pii_census_files[i]);
        buf_t b;
        int rc = read_all(path, CENSUS_MAX, &b);
        if (rc) {
            snprintf(err, errlen, "%s: %s", path, sy_strerror(rc));
            piiload_census_free(c);
            return rc;
        }
        c->len[i] = b.len;
        c->data[i] = buf_steal(&b);
    }
    return 0;
}

void piiload_census_free(pii_census_t *c)
{
    for (int i = 0; i < PII_CENSUS_COUNT; i++)
        mem_free((void *)c->data[i]);
    memset(c, 0, sizeof *c);
}

int piiload_labeller_read(const char *dir, buf_t *out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, PIILOAD_LABELLER_FILE);
    int rc = read_all(path, LABELLER_MAX, out);
    if (rc == -ENOENT) return 1;
    if (rc) snprintf(err, errlen, "%s: %s", path, sy_strerror(rc));
    return rc;
}

pii_scanner_t *piiload_scanner_new(const char *names_dir, bool labeller, float min_score, char *err,
                                   size_t errlen)
{
    pii_census_t census;
    bool names = names_dir && *names_dir;
    if (names && piiload_census_read(names_dir, &census, err, errlen)) return NULL;
    buf_t model = {0};
    int mrc = names && labeller ? piiload_labeller_read(names_dir, &model, err, errlen) : 1;
    if (mrc < 0) {
        piiload_census_free(&census);
        return NULL;
    }
    pii_options_t o = {names ? &census : NULL, min_score};
    pii_scanner_t *s = pii_scanner_new(&o, err, errlen);
    if (s && mrc == 0) {
        char e2[400];
        if (pii_scanner_load_labeller(s, model.data, model.len, e2, sizeof e2)) {
            snprintf(err, errlen, "%s/%s: %s", names_dir, PIILOAD_LABELLER_FILE, e2);
            pii_scanner_free(s);
            s = NULL;
        }
    }
    if (mrc == 0) buf_deinit(&model);
    if (names) piiload_census_free(&census);
    return s;
}
