/* pii_mask.c — reversible masking for the gateway's `mask` action.
 *
 * Each distinct (type, value) gets a placeholder "<TYPE_N>" with N counting per type
 * from 1, so a model sees "<PERSON_1> wrote to <PERSON_2>" and can still refer to them;
 * the answer is restored by swapping the placeholders back. Values are kept in one
 * capped buffer; the mask is per request (or per session) and never logged.
 */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
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
    size_t n, cap;
    unsigned per_type[PII_TYPE_COUNT];
};

pii_mask_t *pii_mask_new(size_t max_bytes)
{
    pii_mask_t *m = mem_calloc(1, sizeof *m);
    buf_init(&m->values, max_bytes ? max_bytes : (1u << 20));
    return m;
}

void pii_mask_free(pii_mask_t *m)
{
    if (!m) return;
    buf_deinit(&m->values);
    mem_free(m->ent);
    mem_free(m);
}

size_t pii_mask_count(const pii_mask_t *m)
{
    return m ? m->n : 0;
}

/* Returns the entry for (type, value), adding it when new; NULL when the value cap
 * is reached. */
static const mask_entry_t *mask_intern(pii_mask_t *m, pii_type_t type, const char *v, size_t n)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->ent[i].type == type && m->ent[i].len == n &&
            !memcmp(m->values.data + m->ent[i].off, v, n))
            return &m->ent[i];
    size_t off = m->values.len;
    if (buf_append(&m->values, v, n)) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->ent = mem_realloc(m->ent, m->cap * sizeof *m->ent);
    }
    m->ent[m->n] = (mask_entry_t){type, ++m->per_type[type], off, n};
    return &m->ent[m->n++];
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
        if (idx > 1000000) return 0;
    }
    char name[40];
    size_t nl = us - 2;
    memcpy(name, p + 1, nl);
    name[nl] = 0;
    pii_type_t t;
    if (pii_type_parse(name, &t)) return 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->ent[i].type == t && m->ent[i].index == idx) {
            *out = &m->ent[i];
            return k + 1;
        }
    return 0;
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
