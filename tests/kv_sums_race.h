/* kv_sums_race.h — vectors added by concurrent connections lose no update.
 *
 * Included by the store tests of each backend. Threads, each with its own
 * connection to url (as separate gateways' store threads would have), add small
 * integer-valued vectors to one key many times, while the key does not exist yet
 * at the start (two first inserts race too). Every element of the final total must
 * equal the exact sum of what was added (integers: exact in doubles), and the
 * single-connection contract holds: a shorter stored vector is extended, a blob
 * that is not doubles is refused, non-finite deltas are refused. */
#ifndef SY_TESTS_KV_SUMS_RACE_H
#define SY_TESTS_KV_SUMS_RACE_H

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/err.h"
#include "store/store.h"

#define SUMS_THREADS 6
#define SUMS_ADDS    40
#define SUMS_LEN     553 /* one bandit arm: n, 23 x 23, 23 */

typedef struct sums_arg {
    const char *url;
    int id;
    int errors;
} sums_arg_t;

/* Thread id adds, SUMS_ADDS times, the vector v[i] = id + 1 + i % 7. */
static void *sums_run(void *p)
{
    sums_arg_t *a = p;
    char err[256];
    store_t *s = store_open(a->url, err, sizeof err);
    if (!s) {
        a->errors++;
        return NULL;
    }
    double d[SUMS_LEN];
    for (int i = 0; i < SUMS_LEN; i++)
        d[i] = a->id + 1 + i % 7;
    for (int k = 0; k < SUMS_ADDS; k++) {
        double *tot = NULL;
        size_t n = 0;
        if (store_kv_add_f64(s, "bandit", "race", d, SUMS_LEN, &tot, &n) || n != SUMS_LEN)
            a->errors++;
        free(tot);
    }
    store_close(s);
    return NULL;
}

static void kv_sums_check(const char *url)
{
    sums_arg_t args[SUMS_THREADS];
    pthread_t th[SUMS_THREADS];
    for (int i = 0; i < SUMS_THREADS; i++) {
        args[i] = (sums_arg_t){url, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sums_run, &args[i]), 0);
    }
    int errors = 0;
    for (int i = 0; i < SUMS_THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += args[i].errors;
    }
    assert_int_equal(errors, 0);
    char err[256];
    store_t *s = store_open(url, err, sizeof err);
    assert_non_null(s);
    void *blob = NULL;
    size_t len = 0;
    assert_int_equal(store_kv_get(s, "bandit", "race", &blob, &len), 0);
    assert_int_equal(len, SUMS_LEN * sizeof(double));
    double *v = NULL;
    size_t n = 0;
    assert_int_equal(store_f64_add(blob, len, NULL, 0, &v, &n), 0);
    assert_int_equal(n, SUMS_LEN);
    for (int i = 0; i < SUMS_LEN; i++) {
        double want = 0;
        for (int t = 0; t < SUMS_THREADS; t++)
            want += (double)SUMS_ADDS * (t + 1 + i % 7);
        assert_true(v[i] == want);
    }
    free(v);
    free(blob);
    /* A longer delta extends the vector with zeros first. */
    double d3[3] = {1, 2, 3}, *tot = NULL;
    assert_int_equal(store_kv_add_f64(s, "bandit", "short", d3, 2, &tot, &n), 0);
    free(tot);
    assert_int_equal(store_kv_add_f64(s, "bandit", "short", d3, 3, &tot, &n), 0);
    assert_int_equal(n, 3);
    assert_true(tot[0] == 2 && tot[1] == 4 && tot[2] == 3);
    free(tot);
    /* What is not a vector of doubles is refused, and left alone. */
    assert_int_equal(store_kv_put(s, "bandit", "odd", "12345", 5), 0);
    assert_int_equal(store_kv_add_f64(s, "bandit", "odd", d3, 3, &tot, &n), SY_ECORRUPT);
    assert_null(tot);
    assert_int_equal(store_kv_get(s, "bandit", "odd", &blob, &len), 0);
    assert_int_equal(len, 5);
    free(blob);
    d3[1] = NAN;
    assert_int_equal(store_kv_add_f64(s, "bandit", "short", d3, 3, &tot, &n), SY_EINVAL);
    d3[1] = INFINITY;
    assert_int_equal(store_kv_add_f64(s, "bandit", "short", d3, 3, &tot, &n), SY_EINVAL);
    /* The refused ones changed nothing; the connection still works. */
    double zero = 0;
    assert_int_equal(store_kv_add_f64(s, "bandit", "short", &zero, 1, &tot, &n), 0);
    assert_true(n == 3 && tot[0] == 2 && tot[1] == 4 && tot[2] == 3);
    free(tot);
    store_close(s);
}

#endif
