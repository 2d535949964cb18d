/* store.h — persistence behind one interface.
 *
 * Backends: SQLite (embedded default, WAL mode) selected by "sqlite:PATH", and
 * PostgreSQL ("postgresql://...") for many gateway instances. Holds the cost
 * ledger, sessions, feedback and learned router state.
 *
 * Threading: a store_t is used by one thread at a time. The gateway writes ledger
 * rows through store_ledger_writer_t, which batches rows on its own thread so the
 * request path only copies a row into a bounded queue.
 */
#ifndef SY_STORE_STORE_H
#define SY_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

/* One ledger row per request. Strings are copied by the writer. PII entity types
 * only, never values. */
typedef struct store_ledger_row {
    char id[40];        /* request id, e.g. "chatcmpl-..." */
    int64_t ts_ms;      /* wall-clock Unix ms when the request arrived */
    const char *tenant; /* NULL or "" = unknown */
    const char *team;
    const char *feature;
    const char *session;
    const char *tier;  /* tier that produced the answer ("" if none) */
    const char *model; /* model and version served */
    const char *status; /* "ok", "error", "refused" */
    int http_status;
    uint32_t tokens_in;
    uint32_t tokens_out;
    double cost_usd;       /* what this request cost */
    double cloud_cost_usd; /* counterfactual: the same tokens on the reference cloud tier */
    uint32_t latency_ms;
    uint32_t ttft_ms;
    bool failover;
    bool escalated;
    bool degraded;
    bool external;         /* the request reached a tier whose privacy is external */
    uint32_t pii_types;    /* bitmask of pii_type_t */
    const char *reasons;   /* reason trace joined by ',' */
} store_ledger_row_t;

typedef enum { STORE_GROUP_TEAM, STORE_GROUP_TENANT, STORE_GROUP_FEATURE, STORE_GROUP_TIER } store_group_t;

typedef struct store_cost_row {
    char key[128]; /* group value ("" shown as "(none)") */
    uint64_t requests;
    uint64_t tokens_in;
    uint64_t tokens_out;
    double cost_usd;
    double cloud_cost_usd;
    double saved_usd; /* cloud_cost_usd - cost_usd */
} store_cost_row_t;

/* Opens (creating the schema if needed). url: "sqlite:PATH", "sqlite::memory:",
 * or "postgresql://...". Returns owned store or NULL with a message in err. */
store_t *store_open(const char *url, char *err, size_t errlen);
void store_close(store_t *s);

/* Appends rows in one transaction. 0 or negative error. */
int store_ledger_append(store_t *s, const store_ledger_row_t *rows, size_t n);

/* Totals per group since since_ms (0 = all time). *out is owned (free()). */
int store_costs_query(store_t *s, store_group_t by, int64_t since_ms, store_cost_row_t **out,
                      size_t *n_out);
int store_group_parse(const char *s, store_group_t *out);

/* ------------------------------------------------------ batched writer ---- */

typedef struct store_ledger_writer store_ledger_writer_t;

/* Starts a writer thread that owns a second connection to url. queue_max bounds
 * memory; flush_ms bounds the delay before rows are durable. */
store_ledger_writer_t *store_ledger_writer_new(const char *url, size_t queue_max, uint32_t flush_ms,
                                               char *err, size_t errlen);
/* Copies the row into the queue; never blocks on I/O. SY_EFULL if the queue is full
 * (the row is counted as dropped). */
int store_ledger_writer_push(store_ledger_writer_t *w, const store_ledger_row_t *row);
/* Blocks until every pushed row is committed. */
void store_ledger_writer_flush(store_ledger_writer_t *w);
/* Flushes, stops the thread, frees. */
void store_ledger_writer_free(store_ledger_writer_t *w);
uint64_t store_ledger_writer_dropped(const store_ledger_writer_t *w);

#endif
