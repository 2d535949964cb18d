/* pii.h — personal-data detection (pure: no I/O after construction).
 *
 * A scanner is built once (patterns compiled into one Hyperscan database, name
 * gazetteer loaded) and shared read-only by all threads; each thread scans with its
 * own pii_scratch_t. Matches are validated in C (Luhn, mod-97, SSN rules, ...),
 * scored Presidio-style (base score, validation, context words nearby), filtered by
 * a per-type threshold and merged where they overlap.
 */
#ifndef SY_ROUTE_PII_H
#define SY_ROUTE_PII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

typedef enum {
    PII_EMAIL_ADDRESS,
    PII_PHONE_NUMBER,
    PII_CREDIT_CARD,
    PII_US_SSN,
    PII_IBAN_CODE,
    PII_IP_ADDRESS,
    PII_PERSON,
    PII_STREET_ADDRESS,
    PII_DATE_OF_BIRTH,
    PII_US_DRIVER_LICENSE,
    PII_US_PASSPORT,
    PII_SECRET,
    PII_UNKNOWN, /* never detected: a finding past an internal limit, whose type is not known */
    PII_TYPE_COUNT
} pii_type_t;

typedef struct pii_span {
    pii_type_t type;
    float score;  /* 0..1 */
    size_t start; /* byte offset, inclusive */
    size_t end;   /* byte offset, exclusive */
} pii_span_t;

/* The census name lists, as bytes the caller read (route/ does no I/O): one
 * "NAME FREQ CUMFREQ RANK" line per name, as in $SY_SHARED/data/names. */
enum { PII_CENSUS_FEMALE_FIRST, PII_CENSUS_MALE_FIRST, PII_CENSUS_LAST, PII_CENSUS_COUNT };
/* The file names of the lists, indexed as above ("census1990_last.txt", ...). */
extern const char *const pii_census_files[PII_CENSUS_COUNT];
typedef struct pii_census {
    const char *data[PII_CENSUS_COUNT]; /* borrowed during pii_scanner_new only */
    size_t len[PII_CENSUS_COUNT];       /* bytes */
} pii_census_t;

typedef struct pii_options {
    const pii_census_t *census; /* name lists; NULL = no PERSON detection */
    float min_score;            /* default threshold for every type (e.g. 0.5) */
} pii_options_t;

typedef struct pii_scanner pii_scanner_t;
typedef struct pii_scratch pii_scratch_t;

/* Builds a scanner; returns owned scanner or NULL with a message in err. */
pii_scanner_t *pii_scanner_new(const pii_options_t *opts, char *err, size_t errlen);
void pii_scanner_free(pii_scanner_t *s);
/* Gives a scanner built with census lists the sequence labeller's model file as bytes
 * (data/names/pii-labeller.bin, made by `switchyard train pii`; borrowed, copied):
 * PERSON then comes from the labeller instead of the capitalised-run rules, and
 * STREET_ADDRESS from the labeller and the house-number rule together. Call before
 * scanning starts. 0; SY_EINVAL without census lists; SY_EPARSE with a message in err
 * for a corrupt or foreign file (bad magic, version or feature set, size, checksum),
 * the scanner then left as it was. */
int pii_scanner_load_labeller(pii_scanner_t *s, const void *bytes, size_t len, char *err,
                              size_t errlen);
/* Overrides the threshold of one type (0..1); call before scanning starts. 0 or
 * SY_EINVAL. */
int pii_scanner_set_threshold(pii_scanner_t *s, pii_type_t t, float min_score);
/* Per-thread scratch for one scanner. */
pii_scratch_t *pii_scratch_new(const pii_scanner_t *s);
void pii_scratch_free(pii_scratch_t *sc);

/* Scans text; writes up to max spans (sorted by start) into out and the total
 * found into *n_found (may exceed max: a caller that keeps only max must treat the
 * text as holding more, or use pii_scan_all). 0, SY_EINVAL, or SY_ETOOBIG when the
 * text holds more candidates than a scratch keeps (over a million): then nothing is
 * reported and the caller must fail closed (treat the text as holding unknown
 * personal data). */
int pii_scan(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len,
             pii_span_t *out, size_t max, size_t *n_found);
/* Same, with no cap on the spans reported: *spans points into sc (borrowed, valid
 * until the next scan with sc) and holds *n spans sorted by start. Same errors. */
int pii_scan_all(const pii_scanner_t *s, pii_scratch_t *sc, const char *text, size_t len,
                 const pii_span_t **spans, size_t *n);

/* ---- Training the labeller (pure; `switchyard train pii` drives it) ---------------- */

typedef struct pii_label_trainer pii_label_trainer_t;
typedef struct pii_label_stats {
    size_t texts, windows, wrong_windows, tokens, entity_tokens;
} pii_label_stats_t;
/* An owned trainer (pii_label_trainer_free) with 2^bits feature buckets (10..20)
 * reading the census lists of s (borrowed, must outlive it); NULL when s has none. */
pii_label_trainer_t *pii_label_trainer_new(const pii_scanner_t *s, unsigned bits);
void pii_label_trainer_free(pii_label_trainer_t *t);
/* One perceptron pass over one labelled text: gold holds its PERSON and
 * STREET_ADDRESS spans in bytes (other types are ignored). 0 or SY_EINVAL. */
int pii_label_trainer_learn(pii_label_trainer_t *t, const char *text, size_t len,
                            const pii_span_t *gold, size_t n);
const pii_label_stats_t *pii_label_trainer_stats(const pii_label_trainer_t *t);
/* Appends the averaged, quantised model file to out. 0 or SY_ETOOBIG. */
int pii_label_trainer_save(const pii_label_trainer_t *t, buf_t *out);

/* "EMAIL_ADDRESS", ...; pii_type_parse returns 0 or SY_EINVAL. */
const char *pii_type_name(pii_type_t t);
int pii_type_parse(const char *name, pii_type_t *out);

/* Appends text to out with every span replaced by "<TYPE>" (spans sorted). */
int pii_redact(const char *text, size_t len, const pii_span_t *spans, size_t n, buf_t *out);

/* ---- Validators (pure; also used by tests and the CLI) ---------------------------- */

/* Digits-only views: each takes the raw candidate text (digits plus the separators
 * the detector accepted) and returns true when it passes the checksum and shape rules. */
bool pii_luhn_valid(const char *s, size_t n);  /* Luhn over the digits of s */
bool pii_card_valid(const char *s, size_t n);  /* 12..19 digits, issuer prefix, Luhn */
bool pii_iban_valid(const char *s, size_t n);  /* country length table, mod 97 == 1 */
bool pii_ssn_valid(const char *s, size_t n);   /* AAA-GG-SSSS area/group/serial rules */
bool pii_ipv4_valid(const char *s, size_t n);  /* dotted quad, octets 0..255 */
bool pii_ipv6_valid(const char *s, size_t n);  /* RFC 4291 text forms */
bool pii_email_valid(const char *s, size_t n); /* local@domain.tld, sane TLD */
/* Phone: returns a base score in 0..1 for the shape (E.164, US, UK, DE, FR, IN,
 * generic grouped digits), 0 when it cannot be a phone number. */
float pii_phone_shape(const char *s, size_t n);

/* ---- Mask and restore ------------------------------------------------------------- *
 * The gateway's `mask` action: values are replaced by stable placeholders
 * ("<EMAIL_ADDRESS_1>") before a request leaves; the same value always gets the same
 * placeholder within one pii_mask_t, and pii_mask_restore puts the values back into
 * the answer text. A mask lives for one request (or one session). */
typedef struct pii_mask pii_mask_t;

/* Distinct values one mask holds at most. */
#define PII_MASK_MAX_VALUES 65536

/* Returns an owned, empty mask (free with pii_mask_free). max_bytes caps the values
 * it may hold (0 = 1 MiB). */
pii_mask_t *pii_mask_new(size_t max_bytes);
void pii_mask_free(pii_mask_t *m);
/* Appends text to out with each span replaced by its placeholder, recording the
 * values; every span is masked, however many there are. 0, SY_EINVAL (spans not
 * sorted, overlapping or out of text), or SY_ETOOBIG (the mask's byte cap,
 * PII_MASK_MAX_VALUES distinct values, or out's cap). On an error out holds a partial
 * text that must not be sent anywhere: fail closed (keep the request local or refuse
 * it). */
int pii_mask_apply(pii_mask_t *m, const char *text, size_t len, const pii_span_t *spans, size_t n,
                   buf_t *out);
/* Appends text to out with every placeholder this mask issued replaced by its value;
 * unknown placeholders are copied as they are. 0 or SY_ETOOBIG. */
int pii_mask_restore(const pii_mask_t *m, const char *text, size_t len, buf_t *out);
/* Number of distinct values held. */
size_t pii_mask_count(const pii_mask_t *m);

#endif
