/* store.c — the store front: URL dispatch, the schema history, shared helpers, and
 * the batched ledger writer that keeps database I/O off the request path.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store_impl.h"

/* =========================================================== schema ===== */

/* Version 1: the ledger, sessions, feedback and key/value blobs. Money columns are
 * integer nano-USD. Boolean columns are 0/1 integers (portable across backends).
 * "BLOB" is rewritten to "BYTEA" by the PostgreSQL backend. */
static const char *const schema_v1[] = {
    "CREATE TABLE ledger ("
    " id TEXT NOT NULL,"
    " ts_ms BIGINT NOT NULL,"
    " tenant TEXT NOT NULL DEFAULT '',"
    " team TEXT NOT NULL DEFAULT '',"
    " feature TEXT NOT NULL DEFAULT '',"
    " session TEXT NOT NULL DEFAULT '',"
    " tier TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL DEFAULT '',"
    " http_status INTEGER NOT NULL DEFAULT 0,"
    " tokens_in BIGINT NOT NULL DEFAULT 0,"
    " tokens_out BIGINT NOT NULL DEFAULT 0,"
    " cost_nusd BIGINT NOT NULL DEFAULT 0,"
    " cloud_cost_nusd BIGINT NOT NULL DEFAULT 0,"
    " latency_ms BIGINT NOT NULL DEFAULT 0,"
    " ttft_ms BIGINT NOT NULL DEFAULT 0,"
    " failover INTEGER NOT NULL DEFAULT 0,"
    " escalated INTEGER NOT NULL DEFAULT 0,"
    " degraded INTEGER NOT NULL DEFAULT 0,"
    " external INTEGER NOT NULL DEFAULT 0,"
    " pii_types BIGINT NOT NULL DEFAULT 0,"
    " pii_names TEXT NOT NULL DEFAULT '',"
    " reasons TEXT NOT NULL DEFAULT '')",
    /* Reports filter on time and group whatever remains. Indexes on the group
     * columns were measured (docs/store.md): they cut ledger inserts from about
     * 150k to 52k rows/s and the planner then scans them instead of the time
     * index, so a 7-day report got slower too. Only time is indexed. */
    "CREATE INDEX ledger_ts ON ledger (ts_ms)",
    /* The audit reads only the (rare) rows where PII reached an external tier. */
    "CREATE INDEX ledger_pii_external ON ledger (ts_ms) WHERE pii_types <> 0 AND external <> 0",
    "CREATE TABLE sessions ("
    " id TEXT PRIMARY KEY,"
    " turns BIGINT NOT NULL DEFAULT 0,"
    " tiers TEXT NOT NULL DEFAULT '',"
    " private INTEGER NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX sessions_updated ON sessions (updated_ms)",
    "CREATE TABLE feedback ("
    " request_id TEXT NOT NULL,"
    " reward DOUBLE PRECISION NOT NULL,"
    " ts_ms BIGINT NOT NULL)",
    "CREATE INDEX feedback_ts ON feedback (ts_ms)",
    "CREATE INDEX feedback_request ON feedback (request_id)",
    "CREATE TABLE kv ("
    " ns TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key))",
    NULL,
};

/* Version 2: spend budgets per API key and period (see store_budget_reserve). */
static const char *const schema_v2[] = {
    "CREATE TABLE budgets ("
    " key TEXT NOT NULL,"
    " period_ms BIGINT NOT NULL,"
    " spent_nusd BIGINT NOT NULL DEFAULT 0,"
    " reserved_nusd BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (key, period_ms))",
    NULL,
};

/* Version 3: what was done with each PII type found (kept local, masked, allowed in
 * clear, blocked), so the audit reports only data that left in clear. Rows written
 * before recorded no action: an external one is taken as allowed (what the audit
 * reported until then), a refused one (403) as blocked, any other as kept local. */
static const char *const schema_v3[] = {
    "ALTER TABLE ledger ADD COLUMN pii_kept_local BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE ledger ADD COLUMN pii_masked BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE ledger ADD COLUMN pii_allowed BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE ledger ADD COLUMN pii_blocked BIGINT NOT NULL DEFAULT 0",
    "UPDATE ledger SET pii_allowed = pii_types WHERE pii_types <> 0 AND external <> 0",
    "UPDATE ledger SET pii_blocked = pii_types"
    " WHERE pii_types <> 0 AND external = 0 AND http_status = 403",
    "UPDATE ledger SET pii_kept_local = pii_types"
    " WHERE pii_types <> 0 AND external = 0 AND http_status <> 403",
    /* The audit reads only the (rare) rows where personal data left in clear. */
    "DROP INDEX ledger_pii_external",
    "CREATE INDEX ledger_pii_allowed ON ledger (ts_ms) WHERE pii_allowed <> 0",
    NULL,
};

/* Version 4: model versions. `version` is the serving tier's; `first_tier` and
 * `first_version` name the tier the decision sent the request to first (whose
 * figures an escalation or an error count against); `cloud_tier` and
 * `cloud_version` the escalation target of a cascade; `confidence` the first
 * answer's score (NULL: none). Earlier rows carry none of these. */
static const char *const schema_v4[] = {
    "ALTER TABLE ledger ADD COLUMN version TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE ledger ADD COLUMN first_tier TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE ledger ADD COLUMN first_version TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE ledger ADD COLUMN cloud_tier TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE ledger ADD COLUMN cloud_version TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE ledger ADD COLUMN confidence DOUBLE PRECISION",
    NULL,
};

const char *const *const store_migrations[STORE_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3,
                                                                   schema_v4};

/* ========================================================== helpers ===== */

void store_set_err(store_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

int store_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap) return 0;
    if (n > STORE_QUERY_MAX_ROWS) return SY_ETOOBIG;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    if (c > STORE_QUERY_MAX_ROWS) c = STORE_QUERY_MAX_ROWS;
    *arr = mem_realloc(*arr, c * elem);
    *cap = c;
    return 0;
}

/* Rounds to the nearest nano-USD; NaN and negatives count as 0 and values past
 * about 9.2e9 USD saturate, so one bad row cannot poison a sum. */
int64_t store_usd_to_nusd(double usd)
{
    if (!(usd > 0)) return 0;
    if (usd >= 9.2e9) return INT64_C(9200000000000000000);
    return llround(usd * 1e9);
}

size_t store_copy_str(char *dst, size_t cap, const char *s)
{
    if (!cap) return 0;
    size_t n = s ? strlen(s) : 0;
    if (n >= cap) {
        n = cap - 1;
        /* Do not cut a multi-byte UTF-8 sequence in half. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    if (n) memcpy(dst, s, n);
    dst[n] = 0;
    return n;
}

/* ======================================================== dispatch ===== */

/* Opens the backend named by the URL scheme. Returns an owned store (free with
 * store_close) or NULL with a message a person can act on in err. */
store_t *store_open(const char *url, char *err, size_t errlen)
{
    if (!url || !*url) {
        snprintf(err, errlen, "empty store URL (expected sqlite:PATH or postgresql://...)");
        return NULL;
    }
    if (!strncmp(url, "sqlite:", 7)) {
        const char *path = url + 7;
        if (!strncmp(path, "//", 2)) path += 2; /* also accept sqlite://PATH */
        if (!*path) {
            snprintf(err, errlen, "store URL '%s' names no file", url);
            return NULL;
        }
        return store_sqlite_open(path, err, errlen);
    }
    if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
        return store_pg_open(url, err, errlen);
    snprintf(err, errlen, "unsupported store URL '%s' (expected sqlite:PATH or postgresql://...)",
             url);
    return NULL;
}

/* Checks that a SQLite file exists before opening it, so a mistyped path in a
 * report command says so instead of creating an empty database. */
store_t *store_open_existing(const char *url, char *err, size_t errlen)
{
    if (url && !strncmp(url, "sqlite:", 7)) {
        const char *path = url + 7;
        if (!strncmp(path, "//", 2)) path += 2;
        struct stat sb;
        if (*path && strcmp(path, ":memory:") != 0 && stat(path, &sb) != 0) {
            snprintf(err, errlen, "no store at %s: %s (is --store right?)", path, strerror(errno));
            return NULL;
        }
    }
    return store_open(url, err, errlen);
}

int store_since_parse(const char *s, int64_t now_ms, int64_t *since_ms)
{
    if (!s || !*s) return SY_EPARSE;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end && !end[1] && v >= 0 && errno == 0) {
        int64_t unit = 0;
        switch (*end) {
        case 's':
            unit = 1000;
            break;
        case 'm':
            unit = 60 * 1000;
            break;
        case 'h':
            unit = 3600 * 1000;
            break;
        case 'd':
            unit = 86400 * 1000;
            break;
        case 'w':
            unit = 7 * 86400 * 1000;
            break;
        }
        if (unit && v <= INT64_MAX / unit / 2) {
            *since_ms = now_ms - v * unit;
            return 0;
        }
    }
    return clock_parse_time(s, since_ms);
}

void store_close(store_t *s)
{
    if (s) s->ops->close(s);
}

const char *store_errmsg(const store_t *s)
{
    return s->errmsg;
}

int store_schema_version(store_t *s)
{
    return s->ops->schema_version(s);
}

/* Appends n rows in one transaction: all land or none. */
int store_ledger_append(store_t *s, const store_ledger_row_t *rows, size_t n)
{
    if (n == 0) return 0;
    int rc = s->ops->begin(s);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        rc = s->ops->ledger_insert(s, &rows[i]);
        if (rc) {
            s->ops->rollback(s);
            return rc;
        }
    }
    rc = s->ops->commit(s);
    if (rc) s->ops->rollback(s);
    return rc;
}

int store_costs_query(store_t *s, store_group_t by, int64_t since_ms, store_cost_row_t **out,
                      size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if ((unsigned)by > STORE_GROUP_TIER) return SY_EINVAL;
    return s->ops->costs_query(s, by, since_ms, out, n_out);
}

static const char *const group_names[] = {"team", "tenant", "feature", "tier"};

int store_group_parse(const char *s, store_group_t *out)
{
    for (size_t i = 0; s && i < sizeof group_names / sizeof group_names[0]; i++)
        if (!strcmp(s, group_names[i])) {
            *out = (store_group_t)i;
            return 0;
        }
    return SY_EINVAL;
}

const char *store_group_name(store_group_t g)
{
    return (unsigned)g <= STORE_GROUP_TIER ? group_names[g] : "?";
}

int store_ledger_ids_since(store_t *s, int64_t since_ms, store_ledger_id_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    return s->ops->ledger_ids(s, since_ms, out, n_out);
}

int store_sessions_private_since(store_t *s, int64_t since_ms, store_session_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    return s->ops->sessions_private(s, since_ms, out, n_out);
}

int store_audit_query(store_t *s, int64_t since_ms, store_audit_row_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    return s->ops->audit_query(s, since_ms, out, n_out);
}

int store_session_get(store_t *s, const char *id, store_session_t *out)
{
    if (!id || !*id) return SY_EINVAL;
    return s->ops->session_get(s, id, out);
}

int store_session_put(store_t *s, const store_session_t *sess)
{
    if (!sess->id[0]) return SY_EINVAL;
    return s->ops->session_put(s, sess);
}

int store_session_turn(store_t *s, const char *id, const char *tier, bool had_pii, int64_t now_ms,
                       store_session_t *out)
{
    if (!id || !*id) return SY_EINVAL;
    if (tier && strchr(tier, ',')) return SY_EINVAL; /* tiers is a ','-joined list */
    return s->ops->session_turn(s, id, tier ? tier : "", had_pii, now_ms, out);
}

int store_session_prune(store_t *s, int64_t before_ms, uint64_t *n_deleted)
{
    uint64_t dummy;
    return s->ops->session_prune(s, before_ms, n_deleted ? n_deleted : &dummy);
}

int store_feedback_put(store_t *s, const char *request_id, double reward, int64_t ts_ms)
{
    if (!request_id || !*request_id || !isfinite(reward)) return SY_EINVAL;
    return s->ops->feedback_put(s, request_id, reward, ts_ms);
}

int store_feedback_list(store_t *s, int64_t since_ms, store_feedback_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    return s->ops->feedback_list(s, since_ms, out, n_out);
}

int store_kv_put(store_t *s, const char *ns, const char *key, const void *blob, size_t len)
{
    if (!ns || !key || (!blob && len)) return SY_EINVAL;
    if (len > STORE_KV_MAX_BLOB) return SY_ETOOBIG;
    return s->ops->kv_put(s, ns, key, blob ? blob : "", len);
}

int store_kv_get(store_t *s, const char *ns, const char *key, void **blob, size_t *len)
{
    *blob = NULL;
    *len = 0;
    if (!ns || !key) return SY_EINVAL;
    return s->ops->kv_get(s, ns, key, blob, len);
}

int store_kv_delete(store_t *s, const char *ns, const char *key)
{
    if (!ns || !key) return SY_EINVAL;
    return s->ops->kv_delete(s, ns, key);
}

int store_versions_query(store_t *s, int64_t since_ms, store_version_cell_t **out, size_t *n_out)
{
    if (!s || !out || !n_out) return SY_EINVAL;
    *out = NULL;
    *n_out = 0;
    return s->ops->versions_query(s, since_ms, out, n_out);
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kv sums are stored little-endian");

int store_f64_add(const void *blob, size_t len, const double *delta, size_t n, double **out,
                  size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (len % sizeof(double) || len > STORE_KV_MAX_BLOB) return SY_ECORRUPT;
    size_t have = len / sizeof(double), m = have > n ? have : n;
    double *v = calloc(m ? m : 1, sizeof *v);
    if (!v) abort();
    if (have) memcpy(v, blob, len);
    for (size_t i = 0; i < n; i++)
        v[i] += delta[i];
    *out = v;
    *n_out = m;
    return 0;
}

int store_kv_add_f64(store_t *s, const char *ns, const char *key, const double *delta, size_t n,
                     double **total, size_t *n_total)
{
    *total = NULL;
    *n_total = 0;
    if (!ns || !key || (!delta && n)) return SY_EINVAL;
    if (n > STORE_KV_MAX_BLOB / sizeof(double)) return SY_ETOOBIG;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(delta[i])) return SY_EINVAL;
    return s->ops->kv_add_f64(s, ns, key, delta, n, total, n_total);
}

int store_traffic_query(store_t *s, int64_t since_ms, store_traffic_row_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    return s->ops->traffic_query(s, since_ms, out, n_out);
}

/* ========================================================= budgets ===== */

static void budget_out(store_budget_t *out, int64_t spent, int64_t reserved)
{
    if (!out) return;
    out->spent_usd = store_nusd_to_usd(spent);
    out->reserved_usd = store_nusd_to_usd(reserved);
}

int store_budget_reserve(store_t *s, const char *key, int64_t period_ms, double limit_usd,
                         double amount_usd, store_budget_t *after)
{
    budget_out(after, 0, 0);
    if (!key || !(limit_usd >= 0) || !(amount_usd >= 0)) return SY_EINVAL;
    int64_t limit = store_usd_to_nusd(limit_usd), amount = store_usd_to_nusd(amount_usd);
    int64_t spent = 0, reserved = 0;
    int rc;
    if (amount > limit) /* never fits: the row (if any) is only read */
        rc = s->ops->budget_get(s, key, period_ms, &spent, &reserved), rc = rc ? rc : SY_EFULL;
    else
        rc = s->ops->budget_reserve(s, key, period_ms, limit, amount, &spent, &reserved);
    if (rc == 0 || rc == SY_EFULL) budget_out(after, spent, reserved);
    return rc;
}

int store_budget_settle(store_t *s, const char *key, int64_t period_ms, double reserved_usd,
                        double actual_usd, store_budget_t *after)
{
    budget_out(after, 0, 0);
    if (!key || !(reserved_usd >= 0) || !(actual_usd >= 0)) return SY_EINVAL;
    int64_t spent = 0, reserved = 0;
    int rc = s->ops->budget_settle(s, key, period_ms, store_usd_to_nusd(reserved_usd),
                                   store_usd_to_nusd(actual_usd), &spent, &reserved);
    if (rc == 0) budget_out(after, spent, reserved);
    return rc;
}

int store_budget_get(store_t *s, const char *key, int64_t period_ms, store_budget_t *out)
{
    budget_out(out, 0, 0);
    if (!key) return SY_EINVAL;
    int64_t spent = 0, reserved = 0;
    int rc = s->ops->budget_get(s, key, period_ms, &spent, &reserved);
    if (rc == 0) budget_out(out, spent, reserved);
    return rc;
}

/* =================================================== ledger writer ===== */

/* A queued row keeps its strings in its own slot, so a push is one bounded copy
 * and no allocation. Longer strings are truncated to these caps. */
enum {
    WCAP_TENANT = 128,
    WCAP_TEAM = 128,
    WCAP_FEATURE = 128,
    WCAP_SESSION = 128,
    WCAP_TIER = 64,
    WCAP_MODEL = 128,
    WCAP_STATUS = 32,
    WCAP_REASONS = 1024,
    WCAP_PII = 256,
    WCAP_VERSION = 64, /* each of version, first_tier, first_version, cloud_tier, cloud_version */
    WCAP_TOTAL = WCAP_TENANT + WCAP_TEAM + WCAP_FEATURE + WCAP_SESSION + WCAP_TIER + WCAP_MODEL +
                 WCAP_STATUS + WCAP_REASONS + WCAP_PII + 5 * WCAP_VERSION,
};

#define WRITER_BATCH_MAX  1024 /* rows per transaction at most */
#define WRITER_RETRIES    3    /* commit attempts before a batch is counted lost */
#define WRITER_YIELD_ROWS 16   /* rows inserted between yields to the worker loops */

typedef struct writer_slot {
    store_ledger_row_t row; /* string pointers point into str */
    char str[WCAP_TOTAL];
} writer_slot_t;

struct store_ledger_writer {
    store_t *st; /* owned; touched only by the writer thread after _new */
    pthread_t thread;
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t wake;  /* to the thread: rows, flush request or stop */
    pthread_cond_t done;  /* from the thread: a batch settled */
    writer_slot_t *slots; /* (cap) ring; [head, head+count) queued or being written */
    size_t cap;
    size_t head;
    size_t count;
    size_t batch_rows; /* queued rows that trigger a commit before flush_ms */
    uint32_t flush_ms;
    uint64_t pushed;  /* rows accepted */
    uint64_t settled; /* rows committed or lost, in push order */
    uint64_t committed;
    uint64_t dropped;      /* refused (queue full) + lost (failed commits) */
    uint64_t flush_target; /* a flusher waits until settled reaches this */
    bool stop;
};

/* Copies s (at most cap - 1 bytes) to *p and advances *p past its NUL. Strings are
 * packed back to back: a typical row's strings share two or three cache lines,
 * which is what the writer thread, on another core, has to pull in. */
static const char *slot_str(char **p, const char *s, size_t cap)
{
    char *d = *p;
    *p += store_copy_str(d, cap, s) + 1;
    return d;
}

/* Deep-copies row into slot (strings truncated to the slot caps). */
static void slot_fill(writer_slot_t *slot, const store_ledger_row_t *row)
{
    char *p = slot->str;
    slot->row = *row;
    slot->row.id[sizeof slot->row.id - 1] = 0;
    slot->row.tenant = slot_str(&p, row->tenant, WCAP_TENANT);
    slot->row.team = slot_str(&p, row->team, WCAP_TEAM);
    slot->row.feature = slot_str(&p, row->feature, WCAP_FEATURE);
    slot->row.session = slot_str(&p, row->session, WCAP_SESSION);
    slot->row.tier = slot_str(&p, row->tier, WCAP_TIER);
    slot->row.model = slot_str(&p, row->model, WCAP_MODEL);
    slot->row.status = slot_str(&p, row->status, WCAP_STATUS);
    slot->row.reasons = slot_str(&p, row->reasons, WCAP_REASONS);
    slot->row.pii_names = slot_str(&p, row->pii_names, WCAP_PII);
    slot->row.version = slot_str(&p, row->version, WCAP_VERSION);
    slot->row.first_tier = slot_str(&p, row->first_tier, WCAP_VERSION);
    slot->row.first_version = slot_str(&p, row->first_version, WCAP_VERSION);
    slot->row.cloud_tier = slot_str(&p, row->cloud_tier, WCAP_VERSION);
    slot->row.cloud_version = slot_str(&p, row->cloud_version, WCAP_VERSION);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there are not
 * one (stray continuation, overlong form, surrogate, past U+10FFFF, cut short). */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0)
        n = 2, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        n = 3, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
        n = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0; /* includes the terminating NUL */
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Replaces every byte that is not part of valid UTF-8 with '?', in place. Request
 * metadata is client input; PostgreSQL rejects invalid text, and one such row
 * must not make a whole batch fail. */
static void utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0) {
            *p++ = '?';
        } else {
            p += n;
        }
    }
}

/* Makes a queued row's text safe for every backend (runs on the writer thread). */
static void slot_sanitize(writer_slot_t *slot)
{
    utf8_fix(slot->row.id);
    for (char *p = slot->str; p < slot->str + sizeof slot->str && p <= slot->row.cloud_version;) {
        utf8_fix(p);
        p += strlen(p) + 1;
    }
}

/* Writes slots [start, start+n) of the ring in one transaction. The slots are not
 * touched by producers meanwhile: they still count as queued. Every yield_rows rows
 * the thread yields: a worker loop woken meanwhile on the same core would otherwise
 * wait for the whole batch (a woken sleeper is not preempted for about a
 * millisecond), which was most of the gateway's p99 at low load. */
static int writer_commit(store_ledger_writer_t *w, size_t start, size_t n, size_t yield_rows)
{
    store_t *s = w->st;
    int rc = s->ops->begin(s);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (i && i % yield_rows == 0) sched_yield();
        writer_slot_t *slot = &w->slots[(start + i) % w->cap];
        slot_sanitize(slot);
        rc = s->ops->ledger_insert(s, &slot->row);
        if (rc) {
            s->ops->rollback(s);
            return rc;
        }
    }
    rc = s->ops->commit(s);
    if (rc) s->ops->rollback(s);
    return rc;
}

static void deadline_after_ms(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The writer thread: sleeps until rows arrive, then waits up to flush_ms for a
 * batch to fill (a flush request or stop cuts the wait short), commits the batch
 * with the lock released, and repeats. It exits only with the queue empty. */
static void *writer_main(void *arg)
{
    store_ledger_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->count == 0)
            pthread_cond_wait(&w->wake, &w->mu);
        if (w->count == 0) break; /* stop requested and drained */
        struct timespec dl;
        deadline_after_ms(&dl, w->flush_ms);
        while (!w->stop && w->count < w->batch_rows && w->flush_target <= w->settled)
            if (pthread_cond_timedwait(&w->wake, &w->mu, &dl) == ETIMEDOUT) break;
        size_t start = w->head;
        size_t n = w->count < WRITER_BATCH_MAX ? w->count : WRITER_BATCH_MAX;
        /* Short runs between yields while the queue is short; longer ones as it
         * grows, since under CFS a yielding thread next to a busy loop gets little
         * CPU and a queue that keeps growing ends in dropped rows. */
        size_t yield_rows = w->count / 8 > WRITER_YIELD_ROWS ? w->count / 8 : WRITER_YIELD_ROWS;
        pthread_mutex_unlock(&w->mu);

        int rc = 0;
        for (int attempt = 0; attempt < WRITER_RETRIES; attempt++) {
            rc = writer_commit(w, start, n, yield_rows);
            if (rc == 0) break;
            struct timespec pause = {0, 50000000L * (attempt + 1)};
            nanosleep(&pause, NULL);
        }
        if (rc)
            log_error("ledger: %zu rows lost: %s (%s)", n, sy_strerror(rc), store_errmsg(w->st));

        pthread_mutex_lock(&w->mu);
        w->head = (w->head + n) % w->cap;
        w->count -= n;
        w->settled += n;
        if (rc)
            w->dropped += n;
        else
            w->committed += n;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    log_thread_cleanup();
    return NULL;
}

/* Opens a second connection to url (so a bad URL or a corrupt file is reported
 * here, to the caller) and starts the thread. Returns an owned writer or NULL with
 * a message in err. */
store_ledger_writer_t *store_ledger_writer_new(const char *url, size_t queue_max, uint32_t flush_ms,
                                               char *err, size_t errlen)
{
    if (queue_max == 0) {
        snprintf(err, errlen, "ledger writer: queue_max must be at least 1");
        return NULL;
    }
    if (url && (!strcmp(url, "sqlite::memory:") || !strcmp(url, "sqlite://:memory:"))) {
        /* Its own connection would get its own empty database: every row written
         * would be invisible to the readers. Refuse rather than lose the ledger. */
        snprintf(err, errlen,
                 "ledger writer: %s is private to one connection; the ledger needs a database "
                 "file (sqlite:PATH) or postgresql://...",
                 url);
        return NULL;
    }
    store_t *st = store_open(url, err, errlen);
    if (!st) return NULL;
    store_ledger_writer_t *w = mem_calloc(1, sizeof *w);
    w->st = st;
    w->cap = queue_max;
    w->slots = mem_calloc(queue_max, sizeof *w->slots);
    w->batch_rows = queue_max / 4;
    if (w->batch_rows > WRITER_BATCH_MAX / 2) w->batch_rows = WRITER_BATCH_MAX / 2;
    if (w->batch_rows == 0) w->batch_rows = 1;
    w->flush_ms = flush_ms;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_cond_init(&w->done, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) {
        snprintf(err, errlen, "ledger writer: cannot start thread: %s", strerror(rc));
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done);
        pthread_mutex_destroy(&w->mu);
        mem_free(w->slots);
        store_close(st);
        mem_free(w);
        return NULL;
    }
    return w;
}

/* Copies the row into the ring under the lock (a bounded memcpy, no I/O, no
 * allocation). Returns 0, or SY_EFULL when the queue is full (counted as dropped). */
int store_ledger_writer_push(store_ledger_writer_t *w, const store_ledger_row_t *row)
{
    pthread_mutex_lock(&w->mu);
    if (w->count == w->cap || w->stop) {
        w->dropped++;
        pthread_mutex_unlock(&w->mu);
        return SY_EFULL;
    }
    slot_fill(&w->slots[(w->head + w->count) % w->cap], row);
    w->count++;
    w->pushed++;
    /* Wake the thread when the queue goes non-empty (it sleeps without a deadline)
     * and when a batch is full. */
    if (w->count == 1 || w->count == w->batch_rows) pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* Blocks until every row pushed before the call is committed (or counted lost).
 * With SQLite in WAL mode and synchronous=NORMAL a committed row survives a crash
 * of the process; an OS crash may lose the last commits before a checkpoint. */
void store_ledger_writer_flush(store_ledger_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->pushed;
    if (w->flush_target < target) w->flush_target = target;
    pthread_cond_signal(&w->wake);
    while (w->settled < target)
        pthread_cond_wait(&w->done, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void store_ledger_writer_free(store_ledger_writer_t *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* the thread drains the queue before exiting */
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    store_close(w->st);
    mem_free(w->slots);
    mem_free(w);
}

uint64_t store_ledger_writer_dropped(const store_ledger_writer_t *w)
{
    store_ledger_writer_t *m = (store_ledger_writer_t *)w;
    pthread_mutex_lock(&m->mu);
    uint64_t v = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return v;
}

uint64_t store_ledger_writer_committed(const store_ledger_writer_t *w)
{
    store_ledger_writer_t *m = (store_ledger_writer_t *)w;
    pthread_mutex_lock(&m->mu);
    uint64_t v = m->committed;
    pthread_mutex_unlock(&m->mu);
    return v;
}

void store_ledger_writer_counts(const store_ledger_writer_t *w, uint64_t *pushed, uint64_t *settled,
                                uint64_t *dropped)
{
    store_ledger_writer_t *m = (store_ledger_writer_t *)w;
    pthread_mutex_lock(&m->mu);
    *pushed = m->pushed;
    *settled = m->settled;
    *dropped = m->dropped;
    pthread_mutex_unlock(&m->mu);
}
