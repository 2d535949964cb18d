/* pii_internal.h — shared between the files of the PII module; not a public API. */
#ifndef SY_ROUTE_PII_INTERNAL_H
#define SY_ROUTE_PII_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "route/pii/pii.h"

/* Flags stored with each gazetteer entry. */
#define PII_NAME_FIRST  0x01 /* census first name (female or male) */
#define PII_NAME_LAST   0x02 /* census last name */
#define PII_NAME_COMMON 0x04 /* frequent in at least one list (census rank) */
#define PII_NAME_STOP   0x08 /* a common word: never a name on its own */
#define PII_CTX_STRONG  0x10 /* a word that announces a name ("Mr", "Dear", "named") */
#define PII_CTX_WEAK    0x20 /* a word often before a name ("by", "with", "said") */
#define PII_NAME_ORG    0x40 /* ends organisation and place names ("Inc", "Bay", "Street") */
#define PII_CTX_AFTER   0x80 /* a verb often after a name ("said", "lives", "shouted") */
/* Context table only (the census bits have no use there): a word that makes a lone
 * given name identifying: a title ("Mr"), a word for the person's role in a record
 * ("customer", "contact"), "name" ("last name"), a closing ("regards"). */
#define PII_CTX_ID 0x01
/* Context table only: a word for a relative or someone close ("my kid Selma"). */
#define PII_CTX_REL 0x02

/* Context words (PII_CTX_*, PII_NAME_ORG), a few hundred bytes: looked up for the
 * lowercase words around a capitalised run without touching the big set. Key: the
 * first 8 bytes of the word, ASCII case folded, zero padded; len: its length. */
#define PII_CTX_BITS  10
#define PII_CTX_SLOTS (1u << PII_CTX_BITS)
typedef struct pii_ctx_slot {
    uint64_t key;
    uint8_t len, flags;
} pii_ctx_slot_t;

typedef struct pii_names {
    uint64_t *slots; /* (mask+1) entries: hash with low byte = flags; 0 = empty */
    size_t mask;     /* table size - 1 (power of two) */
    size_t count;    /* entries stored */
    pii_ctx_slot_t ctx[PII_CTX_SLOTS];
    /* One bit per 12-bit hash of the context words: most words looked up are none,
     * and this 512-byte filter answers them without touching the 16 KB table. */
    uint64_t ctx_filter[64];
    /* The same for the words with PII_CTX_STRONG, with PII_CTX_STRONG or PII_CTX_WEAK,
     * and with PII_CTX_AFTER, for the lookups where only those count: fewer words
     * pass them ("with", "by" and "at", frequent in prose, are weak context words). */
    uint64_t ctx_filter_strong[64], ctx_filter_near[64], ctx_filter_after[64];
} pii_names_t;

/* Folded first 8 bytes of s[0..n) (n >= 1), zero padded. */
static inline uint64_t pii_ctx_key(const char *s, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        w |= (uint64_t)((unsigned char)s[i] | 0x20) << (8 * i);
    return w;
}

/* Context flags of the word s[0..n), 0 when it is none. */
static inline uint8_t pii_ctx_lookup(const pii_names_t *g, const char *s, size_t n)
{
    if (n == 0 || n > 255) return 0;
    uint64_t k = pii_ctx_key(s, n), h = k * 0x9E3779B97F4A7C15ull;
    if (!(g->ctx_filter[h >> 58] >> ((h >> 52) & 63) & 1)) return 0;
    size_t i = (size_t)(h >> (64 - PII_CTX_BITS));
    for (;;) {
        const pii_ctx_slot_t *e = &g->ctx[i];
        if (!e->len) return 0;
        if (e->key == k && e->len == n) return e->flags;
        i = (i + 1) & (PII_CTX_SLOTS - 1);
    }
}

int pii_names_load(pii_names_t *g, const char *dir, char *err, size_t errlen);
void pii_names_deinit(pii_names_t *g);
uint8_t pii_names_lookup(const pii_names_t *g, const char *s, size_t n);
/* Same, through a per-thread direct-mapped cache of (1 << PII_HOT_BITS) entries: the
 * frequent words of a text ("The", "She", "Lily") then cost an L1 hit. */
#define PII_HOT_BITS 12
uint8_t pii_names_lookup_hot(const pii_names_t *g, uint64_t *hot, const char *s, size_t n);

#endif
