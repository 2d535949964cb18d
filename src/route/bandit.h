/* bandit.h — contextual bandit over the request feature vector, one arm per tier.
 *
 * Linear model per arm (disjoint LinUCB, Li et al. 2010): with x the dense feature
 * vector, each arm keeps the sums S = Σ x xᵀ, b = Σ r x and n. The posterior uses
 * A = ridge·I + S, θ = A⁻¹ b.
 *   LinUCB:   score = θ·x + alpha·sqrt(xᵀ A⁻¹ x)
 *   Thompson: score = θ̃·x with θ̃ ~ N(θ, v² A⁻¹) (randomness passed in)
 *   greedy:   score = θ·x (exploration off)
 * A mask of allowed arms is a hard constraint (privacy, budget): a masked arm is
 * never scored, whatever its value.
 *
 * State is sums, so deltas from many gateway instances merge by addition
 * (route_bandit_merge); A⁻¹ and its Cholesky factor are derived and rebuilt on load
 * and merge. Not thread-safe by itself: the router wraps it in a rwlock (decisions
 * read, feedback writes).
 */
#ifndef SY_ROUTE_BANDIT_H
#define SY_ROUTE_BANDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "route/features.h"

#define ROUTE_BANDIT_DIM      ROUTE_DENSE_DIM
#define ROUTE_BANDIT_MAX_ARMS 16
#define ROUTE_BANDIT_MAGIC    "SYBN"
#define ROUTE_BANDIT_VERSION  1

typedef enum { ROUTE_BANDIT_LINUCB, ROUTE_BANDIT_THOMPSON } route_bandit_algo_t;

typedef struct route_bandit_opts {
    route_bandit_algo_t algo;
    double alpha; /* LinUCB width (e.g. 0.5) */
    double v;     /* Thompson posterior scale (e.g. 0.3) */
    double ridge; /* prior precision (e.g. 1.0) */
    bool explore; /* false: greedy on θ·x */
} route_bandit_opts_t;

void route_bandit_opts_defaults(route_bandit_opts_t *o);

typedef struct route_bandit route_bandit_t;

/* Returns an owned bandit with n_arms empty arms (free with route_bandit_free). */
route_bandit_t *route_bandit_new(int n_arms, const route_bandit_opts_t *o);
void route_bandit_free(route_bandit_t *b);
int route_bandit_arms(const route_bandit_t *b);
void route_bandit_set_opts(route_bandit_t *b, const route_bandit_opts_t *o);

/* Scores every arm in mask (bit i = arm i allowed) into scores[n_arms] (masked arms
 * get -INFINITY) and returns the best allowed arm, or -1 when mask allows none.
 * seed drives Thompson sampling. Reads only. */
int route_bandit_choose(const route_bandit_t *b, const float x[ROUTE_BANDIT_DIM], uint32_t mask,
                        uint64_t seed, double *scores);

/* Adds one observation (feature vector, arm played, reward). 0 or SY_EINVAL. */
int route_bandit_update(route_bandit_t *b, int arm, const float x[ROUTE_BANDIT_DIM], double reward);

/* Reward from outcome: quality (0..1) − lambda·cost_usd − mu·latency_s. */
static inline double route_bandit_reward(double quality, double cost_usd, double latency_s,
                                         double lambda, double mu)
{
    return quality - lambda * cost_usd - mu * latency_s;
}

/* Observations of an arm. */
uint64_t route_bandit_count(const route_bandit_t *b, int arm);

/* Serializes the sums (not the options) to out. 0 or SY_ETOOBIG. */
int route_bandit_save(const route_bandit_t *b, buf_t *out);
/* Restores sums saved by route_bandit_save into b (same arm count or fewer arms
 * saved). 0, SY_ECORRUPT (message in err). */
int route_bandit_load(route_bandit_t *b, const void *blob, size_t n, char *err, size_t errlen);
/* Adds delta's sums into dst (arms by index). 0 or SY_EINVAL. */
int route_bandit_merge(route_bandit_t *dst, const route_bandit_t *delta);
/* Zeroes all sums. */
void route_bandit_reset(route_bandit_t *b);

/* The sums as one vector of doubles, per arm (n, S row by row, b), for stores that
 * add vectors (gateways sharing statistics add their deltas). Length in doubles. */
size_t route_bandit_sums_len(const route_bandit_t *b);
/* Adds b's sums into acc[route_bandit_sums_len(b)]. */
void route_bandit_sums_add_to(const route_bandit_t *b, double *acc);
/* Replaces b's sums with v[n] (n == route_bandit_sums_len(b)). 0, or SY_EINVAL
 * (wrong length, a count that is negative or not whole, a value not finite). */
int route_bandit_sums_set(route_bandit_t *b, const double *v, size_t n);
/* An arm's observations and the sum of its rewards (b's first entry: the first
 * feature is the constant 1). */
void route_bandit_arm_totals(const route_bandit_t *b, int arm, uint64_t *n, double *reward_sum);

#endif
