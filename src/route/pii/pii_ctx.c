/* pii_ctx.c — what every detector of the PII module shares: recording a candidate
 * against its type's threshold and looking for context words around it.
 */
#include "base/mem.h"
#include "route/pii/pii_internal.h"

/* Records a candidate if it passes its type's threshold. Past the cap (far above
 * anything a request body holds) the scan is marked over: pii_scan then fails with
 * SY_ETOOBIG rather than report part of what the text holds. */
void pii_cand_add(scan_ctx_t *c, pii_type_t type, float score, size_t st, size_t en)
{
    if (score > 1.0f) score = 1.0f;
    if (score < c->s->thr[type] || en <= st) return;
    pii_scratch_t *sc = c->sc;
    if (sc->n == sc->cap) {
        if (sc->cap >= PII_MAX_CANDS) {
            sc->over = true; /* pii_scan fails closed */
            return;
        }
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        sc->cand = mem_realloc(sc->cand, sc->cap * sizeof *sc->cand);
    }
    sc->cand[sc->n++] = (pii_span_t){type, score, st, en};
}

/* True when one of words (lowercase, NULL-terminated list) starts at a word boundary
 * within `before` bytes before st or `after` bytes after en. ASCII case is folded. */
bool pii_ctx_has(const scan_ctx_t *c, size_t st, size_t en, size_t before, size_t after,
                 const char *const *words)
{
    size_t lo = st > before ? st - before : 0;
    size_t hi = en + after < c->len ? en + after : c->len;
    for (size_t i = lo; i < hi; i++) {
        if (i == st) i = en;
        if (i >= hi) break;
        if (i > 0 && is_alpha(at(c, i - 1))) continue;
        unsigned char ch = at(c, i) | 0x20;
        for (const char *const *w = words; *w; w++) {
            if ((unsigned char)(*w)[0] != ch) continue;
            size_t k = 1;
            while ((*w)[k] && i + k < c->len && (at(c, i + k) | 0x20) == (unsigned char)(*w)[k])
                k++;
            /* whole words only ("to" must not match "top"), unless the entry ends in
             * punctuation ("cc:") */
            if (!(*w)[k] && (!is_alpha((unsigned char)(*w)[k - 1]) || !is_alpha(at(c, i + k))))
                return true;
        }
    }
    return false;
}

/* True when s[0..n) equals (whole) or ends with (!whole) one of list, ASCII case folded. */
bool pii_word_in(const char *s, size_t n, const char *const *list, bool whole)
{
    for (int i = 0; list[i]; i++) {
        if (whole && fold((unsigned char)s[0]) != (unsigned char)list[i][0]) continue;
        size_t l = strlen(list[i]);
        if (l > n || (whole && l != n)) continue;
        size_t j = 0;
        while (j < l && fold((unsigned char)s[n - l + j]) == (unsigned char)list[i][j])
            j++;
        if (j == l) return true;
    }
    return false;
}
