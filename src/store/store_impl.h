/* store_impl.h — what a store backend provides (private to src/store).
 *
 * store.c parses the URL, picks a backend and forwards every call through this
 * table; the batched ledger writer is written once on top of begin / ledger_insert /
 * commit. A backend struct embeds struct store as its first member.
 */
#ifndef SY_STORE_STORE_IMPL_H
#define SY_STORE_STORE_IMPL_H

#include <stdarg.h>

#include "store/store.h"

typedef struct store_ops {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(store_t *s);
    int (*schema_version)(store_t *s);
    /* One write transaction around many ledger_insert calls. */
    int (*begin)(store_t *s);
    int (*commit)(store_t *s);
    void (*rollback)(store_t *s);
    int (*ledger_insert)(store_t *s, const store_ledger_row_t *r);
    int (*costs_query)(store_t *s, store_group_t by, int64_t since_ms, store_cost_row_t **out,
                       size_t *n_out);
    int (*audit_query)(store_t *s, int64_t since_ms, store_audit_row_t **out, size_t *n_out);
    int (*traffic_query)(store_t *s, int64_t since_ms, store_traffic_row_t **out, size_t *n_out);
    int (*versions_query)(store_t *s, int64_t since_ms, store_version_cell_t **out, size_t *n_out);
    int (*ledger_ids)(store_t *s, int64_t since_ms, store_ledger_id_t **out, size_t *n_out);
    int (*sessions_private)(store_t *s, int64_t since_ms, store_session_t **out, size_t *n_out);
    int (*session_get)(store_t *s, const char *id, store_session_t *out);
    int (*session_put)(store_t *s, const store_session_t *sess);
    int (*session_turn)(store_t *s, const char *id, const char *tier, bool had_pii, int64_t now_ms,
                        store_session_t *out);
    int (*session_prune)(store_t *s, int64_t before_ms, uint64_t *n_deleted);
    int (*feedback_put)(store_t *s, const char *request_id, double reward, int64_t ts_ms);
    int (*feedback_list)(store_t *s, int64_t since_ms, store_feedback_t **out, size_t *n_out);
    int (*kv_put)(store_t *s, const char *ns, const char *key, const void *blob, size_t len);
    int (*kv_get)(store_t *s, const char *ns, const char *key, void **blob, size_t *len);
    int (*kv_delete)(store_t *s, const char *ns, const char *key);
    /* store_kv_add_f64 (arguments checked), with store_f64_add for the arithmetic. */
    int (*kv_add_f64)(store_t *s, const char *ns, const char *key, const double *delta, size_t n,
                      double **total, size_t *n_total);
    /* Budgets in integer nano-USD; reserve returns SY_EFULL when it does not fit. */
    int (*budget_reserve)(store_t *s, const char *key, int64_t period_ms, int64_t limit_nusd,
                          int64_t amount_nusd, int64_t *spent, int64_t *reserved);
    int (*budget_settle)(store_t *s, const char *key, int64_t period_ms, int64_t reserved_nusd,
                         int64_t actual_nusd, int64_t *spent, int64_t *reserved);
    int (*budget_get)(store_t *s, const char *key, int64_t period_ms, int64_t *spent,
                      int64_t *reserved);
} store_ops_t;

struct store {
    const store_ops_t *ops;
    char errmsg[256]; /* last backend message, "" if none */
};

/* Backends: return an owned store or NULL with a message in err. */
store_t *store_sqlite_open(const char *path, char *err, size_t errlen);
store_t *store_pg_open(const char *url, char *err, size_t errlen);

/* Records a message for store_errmsg(). */
void store_set_err(store_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Grows *arr (elements of size elem, *cap of them) to hold n; 0 or SY_ETOOBIG past
 * STORE_QUERY_MAX_ROWS. */
int store_grow(void **arr, size_t *cap, size_t n, size_t elem);

/* Money is kept as integer nano-USD so sums are exact; these convert. */
int64_t store_usd_to_nusd(double usd);
static inline double store_nusd_to_usd(int64_t nusd)
{
    return (double)nusd / 1e9;
}

/* Copies s (NULL = "") into dst[cap], truncated at a UTF-8 boundary. Returns the
 * length copied (0 when cap is 0). */
size_t store_copy_str(char *dst, size_t cap, const char *s);

/* The per-version cells (store_versions_query), with the since bound's parameter
 * written the backend's way. Sums of 0/1 columns and counts are integers in both. */
#define STORE_VERSIONS_SQL(since)                                                                  \
    "SELECT first_tier, first_version, tier, version, cloud_tier, cloud_version, MIN(ts_ms),"      \
    " MAX(ts_ms), COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(escalated),"    \
    " COUNT(confidence), COALESCE(SUM(confidence), 0), SUM(cost_nusd) FROM ledger"                 \
    " WHERE ts_ms >= " since " AND (first_tier <> '' OR tier <> '')"                               \
    " GROUP BY first_tier, first_version, tier, version, cloud_tier, cloud_version"

/* Schema history: STORE_SCHEMA_VERSION steps, each a list of statements that takes
 * the schema from version i to i+1. Written in the SQL both backends accept; the
 * few dialect differences are tokens a backend substitutes (see store_schema.c). */
extern const char *const *const store_migrations[STORE_SCHEMA_VERSION];

#endif
