/* bandit.c — LinUCB and Thompson sampling with sums as state. */
#include "route/bandit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

#define D ROUTE_BANDIT_DIM

typedef struct arm {
    double s[D * D]; /* Σ x xᵀ */
    double b[D];     /* Σ r x */
    uint64_t n;
    /* Derived from the sums: */
    double ainv[D * D]; /* (ridge I + S)⁻¹ */
    double theta[D];    /* A⁻¹ b */
    double chol[D * D]; /* lower L with L Lᵀ = A⁻¹ (Thompson) */
} arm_t;

struct route_bandit {
    int n_arms;
    route_bandit_opts_t o;
    arm_t arm[ROUTE_BANDIT_MAX_ARMS];
};

void route_bandit_opts_defaults(route_bandit_opts_t *o)
{
    o->algo = ROUTE_BANDIT_LINUCB;
    o->alpha = 0.5;
    o->v = 0.3;
    o->ridge = 1.0;
    o->explore = true;
}

/* ------------------------------------------------------------- linear algebra --- */

/* In-place Cholesky of a symmetric positive definite matrix (lower triangle). */
static int cholesky(double *a, int n)
{
    for (int j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (int k = 0; k < j; k++)
            s -= a[j * n + k] * a[j * n + k];
        if (s <= 1e-12) return -1;
        double l = sqrt(s);
        a[j * n + j] = l;
        for (int i = j + 1; i < n; i++) {
            double t = a[i * n + j];
            for (int k = 0; k < j; k++)
                t -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = t / l;
        }
        for (int i = 0; i < j; i++)
            a[i * n + j] = 0;
    }
    return 0;
}

/* Rebuilds A⁻¹, θ and the Cholesky factor of A⁻¹ from the sums (O(D³)). */
static void arm_derive(arm_t *a, double ridge)
{
    double l[D * D];
    for (int i = 0; i < D * D; i++)
        l[i] = a->s[i];
    for (int i = 0; i < D; i++)
        l[i * D + i] += ridge;
    if (cholesky(l, D)) { /* cannot happen with ridge > 0; keep the prior */
        memset(a->ainv, 0, sizeof a->ainv);
        for (int i = 0; i < D; i++)
            a->ainv[i * D + i] = 1.0 / ridge;
    } else {
        /* A⁻¹ column by column: solve L Lᵀ x = e_c. */
        for (int c = 0; c < D; c++) {
            double y[D];
            for (int i = 0; i < D; i++) {
                double t = i == c ? 1.0 : 0.0;
                for (int k = 0; k < i; k++)
                    t -= l[i * D + k] * y[k];
                y[i] = t / l[i * D + i];
            }
            for (int i = D - 1; i >= 0; i--) {
                double t = y[i];
                for (int k = i + 1; k < D; k++)
                    t -= l[k * D + i] * a->ainv[k * D + c];
                a->ainv[i * D + c] = t / l[i * D + i];
            }
        }
    }
    for (int i = 0; i < D; i++) {
        double t = 0;
        for (int k = 0; k < D; k++)
            t += a->ainv[i * D + k] * a->b[k];
        a->theta[i] = t;
    }
    memcpy(a->chol, a->ainv, sizeof a->chol);
    if (cholesky(a->chol, D)) {
        memset(a->chol, 0, sizeof a->chol);
        for (int i = 0; i < D; i++)
            a->chol[i * D + i] = sqrt(fmax(a->ainv[i * D + i], 0));
    }
}

/* ------------------------------------------------------------------ life --- */

route_bandit_t *route_bandit_new(int n_arms, const route_bandit_opts_t *o)
{
    if (n_arms < 1 || n_arms > ROUTE_BANDIT_MAX_ARMS) return NULL;
    route_bandit_t *b = mem_calloc(1, sizeof *b);
    b->n_arms = n_arms;
    if (o)
        b->o = *o;
    else
        route_bandit_opts_defaults(&b->o);
    if (b->o.ridge <= 0) b->o.ridge = 1.0;
    route_bandit_reset(b);
    return b;
}

void route_bandit_free(route_bandit_t *b)
{
    mem_free(b);
}

int route_bandit_arms(const route_bandit_t *b)
{
    return b->n_arms;
}

void route_bandit_set_opts(route_bandit_t *b, const route_bandit_opts_t *o)
{
    double old = b->o.ridge;
    b->o = *o;
    if (b->o.ridge <= 0) b->o.ridge = 1.0;
    if (b->o.ridge != old)
        for (int i = 0; i < b->n_arms; i++)
            arm_derive(&b->arm[i], b->o.ridge);
}

void route_bandit_reset(route_bandit_t *b)
{
    for (int i = 0; i < b->n_arms; i++) {
        arm_t *a = &b->arm[i];
        memset(a, 0, sizeof *a);
        arm_derive(a, b->o.ridge);
    }
}

uint64_t route_bandit_count(const route_bandit_t *b, int arm)
{
    return arm >= 0 && arm < b->n_arms ? b->arm[arm].n : 0;
}

/* --------------------------------------------------------------- decisions --- */

/* Standard normal from two uniform draws (Box–Muller). */
static double gauss(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    double u1 = ((double)(hash_mix(*s) >> 11) + 0.5) / 9007199254740992.0;
    *s += 0x9e3779b97f4a7c15ull;
    double u2 = (double)(hash_mix(*s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int route_bandit_choose(const route_bandit_t *b, const float xf[D], uint32_t mask, uint64_t seed,
                        double *scores)
{
    double x[D];
    for (int i = 0; i < D; i++)
        x[i] = xf[i];
    int best = -1;
    double best_s = -INFINITY;
    uint64_t rs = seed;
    for (int k = 0; k < b->n_arms; k++) {
        if (!(mask & (1u << k))) {
            if (scores) scores[k] = -INFINITY;
            continue;
        }
        const arm_t *a = &b->arm[k];
        double mean = 0;
        for (int i = 0; i < D; i++)
            mean += a->theta[i] * x[i];
        double s = mean;
        if (b->o.explore && b->o.algo == ROUTE_BANDIT_LINUCB) {
            double q = 0;
            for (int i = 0; i < D; i++) {
                double t = 0;
                for (int j = 0; j < D; j++)
                    t += a->ainv[i * D + j] * x[j];
                q += x[i] * t;
            }
            s += b->o.alpha * sqrt(fmax(q, 0));
        } else if (b->o.explore) {
            /* θ̃·x = θ·x + v·(L z)·x with z standard normal. */
            double z[D], e = 0;
            for (int i = 0; i < D; i++)
                z[i] = gauss(&rs);
            for (int i = 0; i < D; i++) {
                double t = 0;
                for (int j = 0; j <= i; j++)
                    t += a->chol[i * D + j] * z[j];
                e += t * x[i];
            }
            s += b->o.v * e;
        }
        if (scores) scores[k] = s;
        if (s > best_s) best_s = s, best = k;
    }
    return best;
}

/* Sherman–Morrison keeps A⁻¹ current in O(D²); θ and the Cholesky factor are
 * rebuilt from the updated inverse. */
int route_bandit_update(route_bandit_t *b, int arm, const float xf[D], double r)
{
    if (arm < 0 || arm >= b->n_arms || !isfinite(r)) return SY_EINVAL;
    arm_t *a = &b->arm[arm];
    double x[D];
    for (int i = 0; i < D; i++) {
        if (!isfinite(xf[i])) return SY_EINVAL;
        x[i] = xf[i];
    }
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++)
            a->s[i * D + j] += x[i] * x[j];
        a->b[i] += r * x[i];
    }
    a->n++;
    arm_derive(a, b->o.ridge);
    return 0;
}

/* ------------------------------------------------------------- persistence --- */

int route_bandit_save(const route_bandit_t *b, buf_t *out)
{
    uint32_t hdr[4] = {0, ROUTE_BANDIT_VERSION, (uint32_t)b->n_arms, D};
    memcpy(hdr, ROUTE_BANDIT_MAGIC, 4);
    size_t start = out->len;
    int rc = buf_append(out, hdr, sizeof hdr);
    for (int k = 0; !rc && k < b->n_arms; k++) {
        const arm_t *a = &b->arm[k];
        rc = buf_append(out, &a->n, sizeof a->n);
        if (!rc) rc = buf_append(out, a->s, sizeof a->s);
        if (!rc) rc = buf_append(out, a->b, sizeof a->b);
    }
    if (rc) return rc;
    uint64_t h = hash_bytes(out->data + start, out->len - start, 0);
    return buf_append(out, &h, sizeof h);
}

int route_bandit_load(route_bandit_t *b, const void *blob, size_t n, char *err, size_t errlen)
{
    const unsigned char *p = blob;
    uint32_t hdr[4];
    size_t per = sizeof(uint64_t) + sizeof(double) * (D * D + D);
    if (n < sizeof hdr + 8 || memcmp(p, ROUTE_BANDIT_MAGIC, 4)) {
        snprintf(err, errlen, "not a bandit state blob");
        return SY_ECORRUPT;
    }
    memcpy(hdr, p, sizeof hdr);
    if (hdr[1] != ROUTE_BANDIT_VERSION || hdr[3] != D || hdr[2] < 1 ||
        hdr[2] > (uint32_t)b->n_arms || n != sizeof hdr + hdr[2] * per + 8) {
        snprintf(err, errlen, "bandit state has version %u, %u arms, dim %u (want v%d, <= %d, %d)",
                 hdr[1], hdr[2], hdr[3], ROUTE_BANDIT_VERSION, b->n_arms, D);
        return SY_ECORRUPT;
    }
    uint64_t h;
    memcpy(&h, p + n - 8, 8);
    if (h != hash_bytes(p, n - 8, 0)) {
        snprintf(err, errlen, "bandit state checksum mismatch");
        return SY_ECORRUPT;
    }
    route_bandit_reset(b);
    const unsigned char *q = p + sizeof hdr;
    for (uint32_t k = 0; k < hdr[2]; k++) {
        arm_t *a = &b->arm[k];
        memcpy(&a->n, q, sizeof a->n);
        memcpy(a->s, q + 8, sizeof a->s);
        memcpy(a->b, q + 8 + sizeof a->s, sizeof a->b);
        q += per;
        arm_derive(a, b->o.ridge);
    }
    return 0;
}

int route_bandit_merge(route_bandit_t *dst, const route_bandit_t *delta)
{
    if (delta->n_arms > dst->n_arms) return SY_EINVAL;
    for (int k = 0; k < delta->n_arms; k++) {
        arm_t *a = &dst->arm[k];
        const arm_t *d = &delta->arm[k];
        if (!d->n) continue;
        for (int i = 0; i < D * D; i++)
            a->s[i] += d->s[i];
        for (int i = 0; i < D; i++)
            a->b[i] += d->b[i];
        a->n += d->n;
        arm_derive(a, dst->o.ridge);
    }
    return 0;
}

/* ------------------------------------------------------------ shared sums --- */

#define ARM_SUMS (1 + D * D + D) /* n, S, b */

size_t route_bandit_sums_len(const route_bandit_t *b)
{
    return (size_t)b->n_arms * ARM_SUMS;
}

void route_bandit_sums_add_to(const route_bandit_t *b, double *acc)
{
    for (int k = 0; k < b->n_arms; k++, acc += ARM_SUMS) {
        const arm_t *a = &b->arm[k];
        if (!a->n) continue;
        acc[0] += (double)a->n;
        for (int i = 0; i < D * D; i++)
            acc[1 + i] += a->s[i];
        for (int i = 0; i < D; i++)
            acc[1 + D * D + i] += a->b[i];
    }
}

int route_bandit_sums_set(route_bandit_t *b, const double *v, size_t n)
{
    if (n != route_bandit_sums_len(b)) return SY_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return SY_EINVAL;
    for (int k = 0; k < b->n_arms; k++) {
        double c = v[(size_t)k * ARM_SUMS];
        if (c < 0 || c != floor(c) || c > 9007199254740992.0) return SY_EINVAL;
    }
    for (int k = 0; k < b->n_arms; k++, v += ARM_SUMS) {
        arm_t *a = &b->arm[k];
        a->n = (uint64_t)v[0];
        memcpy(a->s, v + 1, sizeof a->s);
        memcpy(a->b, v + 1 + D * D, sizeof a->b);
        arm_derive(a, b->o.ridge);
    }
    return 0;
}

void route_bandit_arm_totals(const route_bandit_t *b, int arm, uint64_t *n, double *reward_sum)
{
    bool ok = arm >= 0 && arm < b->n_arms;
    *n = ok ? b->arm[arm].n : 0;
    *reward_sum = ok ? b->arm[arm].b[0] : 0;
}
