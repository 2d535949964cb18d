/* budget_race.h — a budget shared by concurrent connections is never overspent.
 *
 * Included by the store tests of each backend. Threads, each with its own
 * connection to url (as separate gateways would have), reserve a request's maximum
 * cost, "answer" with a real cost at or below it, and settle. The spent total must
 * equal the sum of settled costs, stay within the limit, and a reservation that did
 * not fit must have been refused while the money was in fact taken. */
#ifndef SY_TESTS_BUDGET_RACE_H
#define SY_TESTS_BUDGET_RACE_H

#include <math.h>
#include <pthread.h>

#include "base/err.h"
#include "store/store.h"

#define RACE_THREADS 8
#define RACE_TRIES   60

typedef struct race_arg {
    const char *url;
    int id;
    int granted, refused, errors;
    double settled; /* sum of real costs settled by this thread */
} race_arg_t;

static void *race_run(void *p)
{
    race_arg_t *a = p;
    char err[256];
    store_t *s = store_open(a->url, err, sizeof err);
    if (!s) {
        a->errors++;
        return NULL;
    }
    unsigned seed = (unsigned)a->id * 7919u + 1;
    for (int i = 0; i < RACE_TRIES; i++) {
        double max_cost = 0.01 + (double)(rand_r(&seed) % 100) / 1000.0; /* $0.01..0.109 */
        int rc = store_budget_reserve(s, "k-race", 1000, 1.0, max_cost, NULL);
        if (rc == SY_EFULL) {
            a->refused++;
            continue;
        }
        if (rc) {
            a->errors++;
            continue;
        }
        a->granted++;
        double real = max_cost * (double)(rand_r(&seed) % 101) / 100.0;
        if (store_budget_settle(s, "k-race", 1000, max_cost, real, NULL))
            a->errors++;
        else
            a->settled += real;
    }
    store_close(s);
    return NULL;
}

/* Runs the race against url and checks the totals. */
static void budget_race_check(const char *url)
{
    race_arg_t args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (race_arg_t){url, i, 0, 0, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race_run, &args[i]), 0);
    }
    int granted = 0, refused = 0, errors = 0;
    double settled = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        granted += args[i].granted;
        refused += args[i].refused;
        errors += args[i].errors;
        settled += args[i].settled;
    }
    assert_int_equal(errors, 0);
    assert_int_equal(granted + refused, RACE_THREADS * RACE_TRIES);
    /* 480 tries at ~$0.06 mean is ~$29 of demand against $1: most are refused,
     * some must be granted. */
    assert_true(granted > 0);
    assert_true(refused > 0);
    char err[256];
    store_t *s = store_open(url, err, sizeof err);
    assert_non_null(s);
    store_budget_t b;
    assert_int_equal(store_budget_get(s, "k-race", 1000, &b), 0);
    assert_true(b.spent_usd <= 1.0 + 1e-9);
    assert_true(fabs(b.reserved_usd) < 1e-9);
    assert_true(fabs(b.spent_usd - settled) < 1e-6);
    /* Another period or key is untouched. */
    assert_int_equal(store_budget_get(s, "k-race", 2000, &b), 0);
    assert_true(b.spent_usd == 0 && b.reserved_usd == 0);
    store_close(s);
}

/* Single-connection semantics: fit, refuse, settle frees the difference. */
static void budget_basic_check(store_t *s)
{
    store_budget_t b;
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, 0.6, &b), 0);
    assert_true(fabs(b.reserved_usd - 0.6) < 1e-9);
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, 0.5, &b), SY_EFULL);
    assert_true(fabs(b.reserved_usd - 0.6) < 1e-9 && b.spent_usd == 0);
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, 1.5, &b), SY_EFULL); /* > limit */
    assert_int_equal(store_budget_settle(s, "k1", 5, 0.6, 0.2, &b), 0);
    assert_true(fabs(b.spent_usd - 0.2) < 1e-9 && fabs(b.reserved_usd) < 1e-9);
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, 0.8, &b), 0);
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, 0.01, &b), SY_EFULL);
    assert_int_equal(store_budget_settle(s, "k1", 5, 0.8, 0.8, &b), 0);
    assert_true(fabs(b.spent_usd - 1.0) < 1e-9);
    assert_int_equal(store_budget_reserve(s, "k1", 6, 1.0, 1.0, &b), 0); /* next period */
    assert_int_equal(store_budget_reserve(s, "k1", 5, 1.0, -1, &b), SY_EINVAL);
    assert_int_equal(store_budget_reserve(s, "k1", 5, NAN, 0.1, &b), SY_EINVAL);
}

#endif
