/* piiload.h — reads the files the PII scanner needs and builds it.
 *
 * route/ does no I/O: the census name lists (and any other data the scanner takes)
 * come to pii_scanner_new as bytes. The gateway, the CLI and the benchmarks read
 * them here, so every caller builds the same scanner from the same folder.
 */
#ifndef SY_API_PIILOAD_H
#define SY_API_PIILOAD_H

#include <stddef.h>

#include "base/buf.h"
#include "route/pii/pii.h"

/* Reads the census lists (pii_census_files) from dir into c, each at most 16 MiB.
 * Returns 0 with owned bytes in c (free with piiload_census_free), or a negative
 * error with a message naming the file in err. */
int piiload_census_read(const char *dir, pii_census_t *c, char *err, size_t errlen);
/* Frees what piiload_census_read read; zeroes c. */
void piiload_census_free(pii_census_t *c);

/* The labeller's model file, read from the names folder when it is there. */
#define PIILOAD_LABELLER_FILE "pii-labeller.bin"
/* Reads dir/PIILOAD_LABELLER_FILE into out (owned: buf_deinit). 0; 1 when the folder
 * has none; or a negative error with a message naming the file in err. */
int piiload_labeller_read(const char *dir, buf_t *out, char *err, size_t errlen);

/* Builds a scanner with threshold min_score and, when names_dir is not NULL or empty,
 * the census lists from it; with labeller, also the labeller model from the same
 * folder when it holds one (PERSON and STREET_ADDRESS then come from the labeller; a
 * corrupt model is an error). Returns an owned scanner (pii_scanner_free) or NULL
 * with a message in err. */
pii_scanner_t *piiload_scanner_new(const char *names_dir, bool labeller, float min_score, char *err,
                                   size_t errlen);

#endif
