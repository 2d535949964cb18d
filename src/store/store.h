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
    const char *tier;   /* tier that produced the answer ("" if none) */
    const char *model;  /* model and version served */
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
    bool external;       /* the request reached a tier whose privacy is external */
    uint32_t pii_types;  /* bitmask of pii_type_t */
    const char *reasons; /* reason trace joined by ',' */
    /* The same PII types as names joined by ',' ("EMAIL_ADDRESS,US_SSN"), for
     * `switchyard audit`; NULL or "" = none given (the audit then shows the mask). */
    const char *pii_names;
    /* What was done with each type found: each bit of pii_types is in exactly one of
     * these masks (docs/store.md, "Audit"). */
    uint32_t pii_kept_local; /* no external tier was sent the request */
    uint32_t pii_masked;     /* sent to an external tier as placeholders only */
    uint32_t pii_allowed;    /* sent to an external tier in clear */
    uint32_t pii_blocked;    /* the request was refused for its personal data */
    /* Model versions (schema version 4, docs/versions.md). */
    const char *version;       /* version of `tier` ("" = unset) */
    const char *first_tier;    /* the decision's first tier ("" = none) */
    const char *first_version; /* its version */
    const char *cloud_tier;    /* a cascade's escalation target ("" = no cascade) */
    const char *cloud_version; /* its version */
    bool has_confidence;       /* the first tier's answer was scored */
    float confidence;          /* 0..1, from the edge answer's token logprobs */
} store_ledger_row_t;

typedef enum {
    STORE_GROUP_TEAM,
    STORE_GROUP_TENANT,
    STORE_GROUP_FEATURE,
    STORE_GROUP_TIER
} store_group_t;

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
/* Like store_open, but a SQLite file that does not exist yet is an error (with a clear
 * message) instead of a new empty store: for reports and audits. */
store_t *store_open_existing(const char *url, char *err, size_t errlen);
/* Parses a "since" bound for queries: anything clock_parse_time accepts (RFC 3339
 * date or time, Unix seconds), or a duration back from now_ms: "90s", "30m", "24h",
 * "7d", "2w". 0 or SY_EPARSE. */
int store_since_parse(const char *s, int64_t now_ms, int64_t *since_ms);
/* The backend's message for the last failed call on s (static until the next call). */
const char *store_errmsg(const store_t *s);
/* Schema version the store is at after store_open (STORE_SCHEMA_VERSION). */
int store_schema_version(store_t *s);

/* Appends rows in one transaction. 0 or negative error. */
int store_ledger_append(store_t *s, const store_ledger_row_t *rows, size_t n);

/* Totals per group since since_ms (0 = all time). *out is owned (free()). */
int store_costs_query(store_t *s, store_group_t by, int64_t since_ms, store_cost_row_t **out,
                      size_t *n_out);
/* "team" | "tenant" | "feature" | "tier" -> 0, else SY_EINVAL. */
int store_group_parse(const char *s, store_group_t *out);
const char *store_group_name(store_group_t g);

/* Ledger rows where personal data reached an external tier in clear (pii_allowed
 * != 0), since since_ms (0 = all time), oldest first. A type that left only as
 * placeholders (pii_masked) is no such row. *out is owned (free()). */
typedef struct store_audit_row {
    char id[40];
    int64_t ts_ms;
    char tier[64];
    uint32_t pii_types;   /* bitmask of pii_type_t: every type found */
    uint32_t pii_allowed; /* the types that reached the external tier in clear */
    uint32_t pii_masked;  /* the types that reached it as placeholders */
    char pii_names[256];  /* names of pii_types as the gateway logged them, "" if none */
} store_audit_row_t;
int store_audit_query(store_t *s, int64_t since_ms, store_audit_row_t **out, size_t *n_out);

/* Ledger rows since since_ms, oldest first, with what `switchyard plan` needs to
 * price the same traffic on other tiers. *out is owned (free()). */
typedef struct store_traffic_row {
    int64_t ts_ms;
    char tier[64];
    char status[16];
    uint32_t tokens_in;
    uint32_t tokens_out;
    double cost_usd;
    double cloud_cost_usd;
    bool escalated;
    char reasons[192]; /* truncated at a UTF-8 boundary */
} store_traffic_row_t;
int store_traffic_query(store_t *s, int64_t since_ms, store_traffic_row_t **out, size_t *n_out);
/* Ledger totals since since_ms per (first tier, first version, serving tier,
 * serving version, escalation target, its version): the cells that per-version and
 * per-pair figures are summed from (api/versions.c). *out is owned (free()). */
typedef struct store_version_cell {
    char first_tier[64], first_version[64];
    char tier[64], version[64];
    char cloud_tier[64], cloud_version[64];
    int64_t first_ms, last_ms; /* wall-clock Unix ms of the first and last row */
    uint64_t requests;
    uint64_t errors;      /* status "error" */
    uint64_t escalated;   /* re-answered by the escalation target */
    uint64_t confidences; /* rows with a confidence */
    double confidence_sum;
    double cost_usd;
} store_version_cell_t;
int store_versions_query(store_t *s, int64_t since_ms, store_version_cell_t **out, size_t *n_out);
/* Ids of the ledger rows with ts_ms >= since_ms (the journal replay skips rows the
 * store already has). *out is owned (free()). */
typedef struct store_ledger_id {
    char id[40];
} store_ledger_id_t;
int store_ledger_ids_since(store_t *s, int64_t since_ms, store_ledger_id_t **out, size_t *n_out);

/* Queries return at most this many rows; more is SY_ETOOBIG. */
#define STORE_QUERY_MAX_ROWS (1u << 20)
#define STORE_SCHEMA_VERSION 4

/* ------------------------------------------------------------ sessions ---- */

/* What the gateway remembers about a conversation between requests. */
typedef struct store_session {
    char id[128];
    uint32_t turns;     /* requests served in this session */
    char tiers[256];    /* distinct tiers that served it, joined by ',' in first-use order */
    bool is_private;    /* the session ever held PII: it stays local from then on */
    int64_t updated_ms; /* wall-clock Unix ms of the last turn */
} store_session_t;

/* Loads a session: 0, SY_ENOTFOUND, or another negative error. */
int store_session_get(store_t *s, const char *id, store_session_t *out);
/* Inserts or replaces the whole record. */
int store_session_put(store_t *s, const store_session_t *sess);
/* Records one turn atomically (safe with many gateway instances on one store):
 * turns += 1, tier added to tiers if new (tier NULL or "" adds nothing),
 * is_private |= had_pii, updated_ms = now_ms. Creates the session if missing.
 * out (may be NULL) receives the record after the update. */
int store_session_turn(store_t *s, const char *id, const char *tier, bool had_pii, int64_t now_ms,
                       store_session_t *out);
/* Private sessions updated at or after since_ms (the gateway's in-memory view is
 * synced from these). *out is owned (free()). */
int store_sessions_private_since(store_t *s, int64_t since_ms, store_session_t **out,
                                 size_t *n_out);
/* Deletes sessions last updated before before_ms; *n_deleted (may be NULL) = count. */
int store_session_prune(store_t *s, int64_t before_ms, uint64_t *n_deleted);

/* ------------------------------------------------------------ feedback ---- */

typedef struct store_feedback {
    char request_id[40];
    double reward;
    int64_t ts_ms;
} store_feedback_t;

/* Appends one reward for a past request (POST /v1/feedback). */
int store_feedback_put(store_t *s, const char *request_id, double reward, int64_t ts_ms);
/* Feedback since since_ms, oldest first; *out is owned (free()). */
int store_feedback_list(store_t *s, int64_t since_ms, store_feedback_t **out, size_t *n_out);

/* --------------------------------------------------- key/value blobs ---- */

/* Learned router state and request features: opaque blobs under (namespace, key),
 * e.g. ("bandit", "linucb/v1") or ("features", request id). */
#define STORE_KV_MAX_BLOB (64u << 20)

/* Inserts or replaces; SY_ETOOBIG above STORE_KV_MAX_BLOB. */
int store_kv_put(store_t *s, const char *ns, const char *key, const void *blob, size_t len);
/* *blob is owned (free()), NUL-terminated past len for convenience; SY_ENOTFOUND if absent. */
int store_kv_get(store_t *s, const char *ns, const char *key, void **blob, size_t *len);
/* 0 whether or not the key existed. */
int store_kv_delete(store_t *s, const char *ns, const char *key);
/* Sums shared by many writers: the blob under (ns, key) is a vector of doubles
 * (IEEE 754, little-endian; absent = empty = all zero) to which delta[n] is added
 * element by element in one transaction holding the row's lock, so concurrent adds
 * from any number of connections and processes are never lost. A shorter stored
 * vector is extended with zeros. *total (owned, free()) gets the vector after the
 * add, *n_total its length. SY_ECORRUPT when the stored blob is not a whole number
 * of doubles; SY_EINVAL on a non-finite delta. */
int store_kv_add_f64(store_t *s, const char *ns, const char *key, const double *delta, size_t n,
                     double **total, size_t *n_total);
/* Its arithmetic, also the way to read such a blob (delta NULL, n 0): *out (owned,
 * free()) = the blob as doubles plus delta[n]; 0 or SY_ECORRUPT (not a whole
 * number of doubles, or past STORE_KV_MAX_BLOB). */
int store_f64_add(const void *blob, size_t len, const double *delta, size_t n, double **out,
                  size_t *n_out);

/* ------------------------------------------------------------- budgets ---- */

/* Spend budgets per API key and period (a day, week, month, or all time; the
 * period is named by its start in Unix ms). A request reserves its maximum cost
 * before it is sent anywhere and settles the real cost afterwards, so the spent
 * total plus what is reserved never exceeds the limit, whatever the concurrency and
 * however many gateways share the store: each call is one atomic statement. */
typedef struct store_budget {
    double spent_usd;    /* settled costs */
    double reserved_usd; /* reservations not settled yet */
} store_budget_t;

/* Reserves amount_usd against (key, period_ms) if spent + reserved + amount_usd <=
 * limit_usd. 0 (reserved), SY_EFULL (it does not fit: nothing changed), or another
 * negative error. *after (may be NULL) gets the totals after the call (on SY_EFULL:
 * as they are, when the row exists). */
int store_budget_reserve(store_t *s, const char *key, int64_t period_ms, double limit_usd,
                         double amount_usd, store_budget_t *after);
/* Turns a reservation into spending: reserved -= reserved_usd (not below 0),
 * spent += actual_usd. A missing row is created. 0 or a negative error. */
int store_budget_settle(store_t *s, const char *key, int64_t period_ms, double reserved_usd,
                        double actual_usd, store_budget_t *after);
/* Totals of (key, period_ms); zeros and 0 when nothing was recorded. */
int store_budget_get(store_t *s, const char *key, int64_t period_ms, store_budget_t *out);

/* ------------------------------------------------------ batched writer ---- */

typedef struct store_ledger_writer store_ledger_writer_t;

/* Starts a writer thread that owns a second connection to url. queue_max bounds
 * memory (about 2.5 KB per slot, allocated here once); flush_ms bounds the delay
 * before rows are committed. Refuses sqlite::memory: (private to one connection). */
store_ledger_writer_t *store_ledger_writer_new(const char *url, size_t queue_max, uint32_t flush_ms,
                                               char *err, size_t errlen);
/* Copies the row into the queue; never blocks on I/O. SY_EFULL if the queue is full
 * (the row is counted as dropped). */
int store_ledger_writer_push(store_ledger_writer_t *w, const store_ledger_row_t *row);
/* Blocks until every pushed row is committed. */
void store_ledger_writer_flush(store_ledger_writer_t *w);
/* Flushes, stops the thread, frees. */
void store_ledger_writer_free(store_ledger_writer_t *w);
/* Rows refused because the queue was full, plus rows lost to failed commits. */
uint64_t store_ledger_writer_dropped(const store_ledger_writer_t *w);
/* Rows committed so far. */
uint64_t store_ledger_writer_committed(const store_ledger_writer_t *w);
/* One consistent read of the counters: rows pushed, settled (committed or lost:
 * pushed rows leave the queue in order) and dropped. */
void store_ledger_writer_counts(const store_ledger_writer_t *w, uint64_t *pushed, uint64_t *settled,
                                uint64_t *dropped);

#endif
