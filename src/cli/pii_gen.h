/* pii_gen.h — labelled text for the PII detector, generated (`switchyard pii
 * --generate`).
 *
 * Fills the sentence templates of shared/data/pii/templates.txt (Faker-style
 * placeholders: {{person}}, {{address}}, {{city}}, ...) and sentences of its own with
 * names drawn from the census lists in many forms (initials, middle names, titles
 * outside the span, hyphenated and multi-part surnames, particles, lower case, all
 * capitals, diacritics and non-English surname endings built from the lists'
 * surnames), street addresses built from street names and numbers, and negatives
 * (places, firms made of surnames, products, pets and toys, titles and bands, verbs
 * and openers at sentence starts, lower-case prose of census words), and sentences
 * composed at random of names, common words and capitalised non-names. Capitalised
 * words of the templates' own text are sometimes swapped for a name or a non-name, so
 * a learner cannot learn the templates' wording instead of names. Writes the presidio-research JSON
 * format that `switchyard pii
 * --eval` reads (positions in code points), with the template's number in
 * template_id, so a learner can be cross-validated by template. It never reads the
 * labelled evaluation files.
 */
#ifndef SY_CLI_PII_GEN_H
#define SY_CLI_PII_GEN_H

#include <stdio.h>

#include "route/pii/pii.h"

/* Writes n records to out from the templates text (tmpl, tlen bytes) and the census
 * lists, drawn with seed. Returns 0, or SY_EINVAL with a message on stderr when the
 * templates or lists hold nothing usable. */
typedef struct pii_gen pii_gen_t;

/* An owned generator (pii_gen_free) over the templates text (borrowed: it must
 * outlive the generator) and the census lists (copied), drawing with seed; NULL with
 * a message on stderr when the templates or lists hold nothing usable or a template
 * holds a placeholder the generator does not know (named with its line). */
pii_gen_t *pii_gen_new(const char *tmpl, size_t tlen, const pii_census_t *census,
                       unsigned long seed);
void pii_gen_free(pii_gen_t *g);
/* Number of template ids (the file's lines and the built-in sentences). */
long pii_gen_templates(const pii_gen_t *g);
/* Number of template ids from the templates file (1..this); the built-in sentences
 * follow. */
long pii_gen_file_templates(const pii_gen_t *g);
/* Makes the next record; returns its template id (1-based). */
long pii_gen_next(pii_gen_t *g);
/* The record's text (borrowed until the next record) and its spans in bytes, of the
 * types pii_type_parse knows (at most max; returns the count). */
const char *pii_gen_text(const pii_gen_t *g, size_t *len);
size_t pii_gen_spans(const pii_gen_t *g, pii_span_t *out, size_t max);

int pii_gen_write(FILE *out, const char *tmpl, size_t tlen, const pii_census_t *census, long n,
                  unsigned long seed);

#endif
