/* pii_mask.c — reversible masking for the gateway's `mask` action.
 *
 * Each distinct (type, value) gets a placeholder "<TYPE_N>" with N counting per type
 * from 1, so a model sees "<PERSON_1> wrote to <PERSON_2>" and can still refer to them;
 * the answer is restored by swapping the placeholders back. Values are kept in one
 * capped buffer and found again through a hash index; the mask is per request (or per
 * session) and never logged.
 *
 * Fail closed: no limit lets a value through. Past the byte cap or PII_MASK_MAX_VALUES
 * distinct values, pii_mask_apply returns SY_ETOOBIG and its output must not be sent
 * (the caller treats the request as holding unknown personal data).
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"
#include "route/pii/pii.h"

typedef struct mask_entry {
    pii_type_t type;
    unsigned index; /* N in <TYPE_N> */
    size_t off;     /* value at values.data + off */
    size_t len;
} mask_entry_t;

struct pii_mask {
    buf_t values;      /* all values, concatenated; capped */
    mask_entry_t *ent; /* n entries */
    size_t n, cap;     /* n <= PII_MASK_MAX_VALUES */
    uint32_t *index;   /* (index_mask + 1) slots: entry + 1, 0 = empty; load <= 1/2 */
    size_t index_mask;
    unsigned per_type[PII_TYPE_COUNT];  /* placeholders issued per type */
    uint32_t *of_type[PII_TYPE_COUNT];  /* entry of <TYPE_N> at [N - 1], per_type[t] used */
    size_t of_type_cap[PII_TYPE_COUNT]; /* entries */
};

pii_mask_t *pii_mask_new(size_t max_bytes)
{
    pii_mask_t *m = mem_calloc(1, sizeof *m);
    buf_init(&m->values, max_bytes ? max_bytes : (1u << 20));
    return m;
}

static uint64_t value_hash(pii_type_t type, const char *v, size_t n)
{
    return hash_bytes(v, n, 0x5EED0000u + (uint64_t)type);
}

/* Doubles the hash index (or makes the first one) and reinserts every entry. */
static void index_grow(pii_mask_t *m)
{
    size_t slots = m->index ? 2 * (m->index_mask + 1) : 64;
    mem_free(m->index);
    m->index = mem_calloc(slots, sizeof *m->index);
    m->index_mask = slots - 1;
    for (size_t i = 0; i < m->n; i++) {
        const mask_entry_t *e = &m->ent[i];
        size_t h = (size_t)value_hash(e->type, m->values.data + e->off, e->len) & m->index_mask;
        while (m->index[h])
            h = (h + 1) & m->index_mask;
        m->index[h] = (uint32_t)i + 1;
    }
}

void pii_mask_free(pii_mask_t *m)
{
    if (!m) return;
    buf_deinit(&m->values);
    mem_free(m->ent);
    mem_free(m->index);
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        mem_free(m->of_type[t]);
    mem_free(m);
}

size_t pii_mask_count(const pii_mask_t *m)
{
    return m ? m->n : 0;
}

/* Returns the entry for (type, value), adding it when new; NULL when the byte cap or
 * the value cap is reached. */
static const mask_entry_t *mask_intern(pii_mask_t *m, pii_type_t type, const char *v, size_t n)
{
    if (!m->index || 2 * (m->n + 1) > m->index_mask + 1) index_grow(m);
    size_t h = (size_t)value_hash(type, v, n) & m->index_mask;
    for (; m->index[h]; h = (h + 1) & m->index_mask) {
        const mask_entry_t *e = &m->ent[m->index[h] - 1];
        if (e->type == type && e->len == n && !memcmp(m->values.data + e->off, v, n)) return e;
    }
    if (m->n >= PII_MASK_MAX_VALUES) return NULL;
    size_t off = m->values.len;
    if (buf_append(&m->values, v, n)) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->ent = mem_realloc(m->ent, m->cap * sizeof *m->ent);
    }
    unsigned idx = ++m->per_type[type];
    if (idx > m->of_type_cap[type]) {
        m->of_type_cap[type] = m->of_type_cap[type] ? 2 * m->of_type_cap[type] : 16;
        m->of_type[type] =
            mem_realloc(m->of_type[type], m->of_type_cap[type] * sizeof *m->of_type[type]);
    }
    m->of_type[type][idx - 1] = (uint32_t)m->n;
    m->ent[m->n] = (mask_entry_t){type, idx, off, n};
    m->index[h] = (uint32_t)++m->n;
    return &m->ent[m->n - 1];
}

int pii_mask_apply(pii_mask_t *m, const char *text, size_t len, const pii_span_t *spans, size_t n,
                   buf_t *out)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t st = spans[i].start, en = spans[i].end;
        if (st < pos || en > len || st > en || (unsigned)spans[i].type >= PII_TYPE_COUNT)
            return SY_EINVAL;
        const mask_entry_t *e = mask_intern(m, spans[i].type, text + st, en - st);
        if (!e) return SY_ETOOBIG;
        int rc = buf_append(out, text + pos, st - pos);
        if (!rc) rc = buf_printf(out, "<%s_%u>", pii_type_name(e->type), e->index);
        if (rc) return rc;
        pos = en;
    }
    return buf_append(out, text + pos, len - pos);
}

/* Parses "<TYPE_N>" at p (p[0] == '<'); returns its length and the entry, or 0. */
static size_t placeholder_at(const pii_mask_t *m, const char *p, size_t left,
                             const mask_entry_t **out)
{
    size_t k = 1;
    while (k < left && k < 40 &&
           ((p[k] >= 'A' && p[k] <= 'Z') || p[k] == '_' || (p[k] >= '0' && p[k] <= '9')))
        k++;
    if (k >= left || p[k] != '>') return 0;
    size_t us = k;
    while (us > 1 && p[us - 1] != '_')
        us--;
    if (us <= 2 || us == k) return 0;
    unsigned idx = 0;
    for (size_t j = us; j < k; j++) {
        if (p[j] < '0' || p[j] > '9') return 0;
        idx = idx * 10 + (unsigned)(p[j] - '0');
        if (idx > PII_MASK_MAX_VALUES) return 0;
    }
    char name[40];
    size_t nl = us - 2;
    memcpy(name, p + 1, nl);
    name[nl] = 0;
    pii_type_t t;
    if (pii_type_parse(name, &t)) return 0;
    if (idx == 0 || idx > m->per_type[t]) return 0;
    *out = &m->ent[m->of_type[t][idx - 1]];
    return k + 1;
}

int pii_mask_restore(const pii_mask_t *m, const char *text, size_t len, buf_t *out)
{
    size_t pos = 0, i = 0;
    while (i < len) {
        const char *lt = memchr(text + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - text);
        const mask_entry_t *e = NULL;
        size_t pl = m->n ? placeholder_at(m, lt, len - i, &e) : 0;
        if (!pl) {
            i++;
            continue;
        }
        int rc = buf_append(out, text + pos, i - pos);
        if (!rc) rc = buf_append(out, m->values.data + e->off, e->len);
        if (rc) return rc;
        i += pl;
        pos = i;
    }
    return buf_append(out, text + pos, len - pos);
}
