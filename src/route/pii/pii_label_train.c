/* pii_label_train.c — averaged structured perceptron for the labeller (pii_label.c).
 *
 * Each labelled text is cut into the same windows the scanner reads; the gold spans
 * give every labelled token a tag (B-/I-PER, B-/I-ADR, O), the current weights are
 * decoded with Viterbi and, where the decoding differs, the gold features gain one
 * and the decoded ones lose one. Weights are averaged over every step (the usual
 * running-sum trick: avg = w - u / c) and quantised to int16 on save. Gold entities
 * that fall outside every window cannot be learned and are counted as unreachable.
 */
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "route/pii/pii_label.h"

struct pii_label_trainer {
    const pii_scanner_t *s; /* borrowed; holds the census lists */
    pii_scratch_t *sc;
    unsigned bits;
    float *w, *u; /* (2^bits, PII_LABEL_TAGS): weights, weighted sum of updates */
    float tr[PII_LABEL_TAGS + 1][PII_LABEL_TAGS], utr[PII_LABEL_TAGS + 1][PII_LABEL_TAGS];
    double c; /* steps so far (from 1) */
    const pii_span_t *gold;
    size_t ngold;
    pii_label_stats_t st;
};

pii_label_trainer_t *pii_label_trainer_new(const pii_scanner_t *s, unsigned bits)
{
    if (!s || !s->names.slots || bits < 10 || bits > 20) return NULL;
    pii_label_trainer_t *t = mem_calloc(1, sizeof *t);
    t->s = s;
    t->sc = pii_scratch_new(s);
    t->bits = bits;
    size_t n = ((size_t)1 << bits) * PII_LABEL_TAGS;
    t->w = mem_calloc(n, sizeof *t->w);
    t->u = mem_calloc(n, sizeof *t->u);
    t->c = 1;
    return t;
}

void pii_label_trainer_free(pii_label_trainer_t *t)
{
    if (!t) return;
    pii_scratch_free(t->sc);
    mem_free(t->w);
    mem_free(t->u);
    mem_free(t);
}

/* Gold tag of each labelled token of w. */
static void gold_tags(const pii_label_trainer_t *t, const lab_win_t *w, int *tags)
{
    int prev_span = -1;
    for (int i = w->a; i < w->b; i++) {
        const lab_tok_t *k = &w->tok[i];
        int tag = LT_O, span = -1;
        for (size_t g = 0; g < t->ngold; g++) {
            const pii_span_t *x = &t->gold[g];
            if (x->start < k->en && k->st < x->end &&
                (x->type == PII_PERSON || x->type == PII_STREET_ADDRESS)) {
                span = (int)g;
                tag = x->type == PII_PERSON ? LT_B_PER : LT_B_ADR;
                break;
            }
        }
        if (tag != LT_O && span == prev_span) tag++; /* inside */
        /* punctuation opening a span stays outside it */
        if ((tag == LT_B_PER || tag == LT_B_ADR) && (k->kind == LT_PUNCT || k->kind == LT_LINE)) {
            tag = LT_O;
            span = -1;
        }
        tags[i - w->a] = tag;
        prev_span = span;
    }
}

static void upd(pii_label_trainer_t *t, const uint32_t *f, int nf, int tag, float d)
{
    for (int q = 0; q < nf; q++) {
        size_t o = (size_t)f[q] * PII_LABEL_TAGS + (size_t)tag;
        t->w[o] += d;
        t->u[o] += (float)t->c * d;
    }
}

/* One perceptron step on one window. */
static void train_window(scan_ctx_t *c, lab_win_t *w, void *arg)
{
    pii_label_trainer_t *t = arg;
    int n = w->b - w->a;
    if (n <= 0) return;
    static _Thread_local uint32_t feat[LAB_TOKS][PII_LABEL_NFEAT];
    int nf[LAB_TOKS];
    float em[LAB_TOKS][PII_LABEL_TAGS];
    for (int i = 0; i < n; i++) {
        nf[i] = pii_label_features(c, w, w->a + i, t->bits, feat[i]);
        for (int g = 0; g < PII_LABEL_TAGS; g++) {
            float a = 0;
            for (int q = 0; q < nf[i]; q++)
                a += t->w[(size_t)feat[i][q] * PII_LABEL_TAGS + (size_t)g];
            em[i][g] = a;
        }
    }
    int gold[LAB_TOKS], pred[LAB_TOKS];
    gold_tags(t, w, gold);
    uint8_t allow[LAB_TOKS];
    memset(allow, 0x1f, (size_t)n);
    pii_label_viterbi((const float(*)[PII_LABEL_TAGS])em, n, (const float(*)[PII_LABEL_TAGS])t->tr,
                      allow, pred);
    t->st.windows++;
    t->st.tokens += (size_t)n;
    bool wrong = false;
    for (int i = 0; i < n; i++) {
        int gp = i ? gold[i - 1] : PII_LABEL_TAGS, pp = i ? pred[i - 1] : PII_LABEL_TAGS;
        if (gold[i] != LT_O) t->st.entity_tokens++;
        if (gold[i] != pred[i]) {
            wrong = true;
            upd(t, feat[i], nf[i], gold[i], 1);
            upd(t, feat[i], nf[i], pred[i], -1);
        }
        if (gp != pp || gold[i] != pred[i]) {
            t->tr[gp][gold[i]] += 1, t->utr[gp][gold[i]] += (float)t->c;
            t->tr[pp][pred[i]] -= 1, t->utr[pp][pred[i]] -= (float)t->c;
        }
    }
    t->st.wrong_windows += wrong;
    t->c += 1;
}

int pii_label_trainer_learn(pii_label_trainer_t *t, const char *text, size_t len,
                            const pii_span_t *gold, size_t n)
{
    if (!t || (!text && len) || (!gold && n)) return SY_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (gold[i].start > gold[i].end || gold[i].end > len) return SY_EINVAL;
    t->gold = gold;
    t->ngold = n;
    name_memo_t memo = {0};
    scan_ctx_t c = {.s = t->s, .sc = t->sc, .t = text ? text : "", .len = len, .memo = &memo};
    pii_label_windows(&c, train_window, t);
    t->st.texts++;
    return 0;
}

const pii_label_stats_t *pii_label_trainer_stats(const pii_label_trainer_t *t)
{
    return &t->st;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

int pii_label_trainer_save(const pii_label_trainer_t *t, buf_t *out)
{
    size_t nw = ((size_t)1 << t->bits) * PII_LABEL_TAGS;
    size_t ntr = (PII_LABEL_TAGS + 1) * PII_LABEL_TAGS;
    float mx = 1e-6f;
    float *avg = mem_alloc((nw + ntr) * sizeof *avg);
    for (size_t i = 0; i < nw; i++)
        avg[i] = t->w[i] - t->u[i] / (float)t->c;
    for (size_t i = 0; i < ntr; i++)
        avg[nw + i] = (&t->tr[0][0])[i] - (&t->utr[0][0])[i] / (float)t->c;
    for (size_t i = 0; i < nw + ntr; i++)
        if (fabsf(avg[i]) > mx) mx = fabsf(avg[i]);
    float scale = mx / 32767.0f;
    size_t total = PII_LABEL_HEADER + nw * 2 + 4;
    unsigned char *p = mem_calloc(1, total);
    memcpy(p, PII_LABEL_MAGIC, 8);
    put32(p + 8, 1);
    put32(p + 12, t->bits);
    put32(p + 16, PII_LABEL_TAGS);
    put32(p + 20, PII_LABEL_FEATSET);
    memcpy(p + 24, &scale, 4);
    for (size_t i = 0; i < ntr; i++) {
        int16_t v = (int16_t)lrintf(avg[nw + i] / scale);
        memcpy(p + 28 + 2 * i, &v, 2);
    }
    for (size_t i = 0; i < nw; i++) {
        int16_t v = (int16_t)lrintf(avg[i] / scale);
        memcpy(p + PII_LABEL_HEADER + 2 * i, &v, 2);
    }
    put32(p + total - 4, pii_label_checksum(p, total - 4));
    int rc = buf_append(out, p, total);
    mem_free(p);
    mem_free(avg);
    return rc;
}
