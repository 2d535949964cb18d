/* store_pg.c — the PostgreSQL backend: one store shared by many gateway instances.
 *
 * Same schema and semantics as the SQLite backend. Statements are prepared once per
 * connection (lazily, again after a reconnect) and parameters travel as text, except
 * kv blobs which travel binary. Migrations run in one transaction under an advisory
 * lock, so instances starting together migrate once. Session turns are single
 * upserts, so concurrent instances never lose a turn.
 *
 * Compiled in when libpq's header is on the include path (libpq in the Makefile's
 * pkg-config list); otherwise store_pg_open says PostgreSQL support is absent.
 */
#include <stdio.h>

#include "store/store_impl.h"

#if defined(__has_include) && __has_include(<libpq-fe.h>)

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

/* Any constant: the key of the advisory lock that serializes migrations. */
#define PG_MIGRATE_LOCK 0x5357594152444201LL

/* ======================================================= statements ===== */

enum {
    PQ_LEDGER_INSERT,
    PQ_COSTS_TEAM, /* in store_group_t order */
    PQ_COSTS_TENANT,
    PQ_COSTS_FEATURE,
    PQ_COSTS_TIER,
    PQ_AUDIT,
    PQ_LEDGER_IDS,
    PQ_SESSIONS_PRIVATE,
    PQ_SESSION_GET,
    PQ_SESSION_PUT,
    PQ_SESSION_TURN,
    PQ_SESSION_PRUNE,
    PQ_FEEDBACK_PUT,
    PQ_FEEDBACK_LIST,
    PQ_KV_PUT,
    PQ_KV_GET,
    PQ_KV_DELETE,
    PQ_TRAFFIC,
    PQ_VERSIONS,
    PQ_BUDGET_RESERVE,
    PQ_BUDGET_SETTLE,
    PQ_BUDGET_GET,
    PQ_KV_ENSURE,
    PQ_KV_LOCK,
    PQ_COUNT
};

#define PG_COSTS_SQL(col)                                                                          \
    "SELECT " col ", COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(cost_nusd),"                   \
    " SUM(cloud_cost_nusd) FROM ledger WHERE ts_ms >= $1::bigint GROUP BY " col                    \
    " ORDER BY SUM(cost_nusd) DESC, " col

static const struct {
    const char *name;
    const char *sql;
} pq_stmts[PQ_COUNT] = {
    [PQ_LEDGER_INSERT] = {"sy_ledger_insert",
                          "INSERT INTO ledger (id, ts_ms, tenant, team, feature, session, tier,"
                          " model, status, http_status, tokens_in, tokens_out, cost_nusd,"
                          " cloud_cost_nusd, latency_ms, ttft_ms, failover, escalated, degraded,"
                          " external, pii_types, pii_names, reasons, pii_kept_local, pii_masked,"
                          " pii_allowed, pii_blocked, version, first_tier, first_version,"
                          " cloud_tier, cloud_version, confidence) VALUES ($1, $2, $3, $4, $5, $6,"
                          " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,"
                          " $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32,"
                          " $33::double precision)"},
    [PQ_COSTS_TEAM] = {"sy_costs_team", PG_COSTS_SQL("team")},
    [PQ_COSTS_TENANT] = {"sy_costs_tenant", PG_COSTS_SQL("tenant")},
    [PQ_COSTS_FEATURE] = {"sy_costs_feature", PG_COSTS_SQL("feature")},
    [PQ_COSTS_TIER] = {"sy_costs_tier", PG_COSTS_SQL("tier")},
    [PQ_AUDIT] = {"sy_audit", "SELECT id, ts_ms, tier, pii_types, pii_names, pii_allowed,"
                              " pii_masked FROM ledger WHERE pii_allowed <> 0"
                              " AND ts_ms >= $1::bigint ORDER BY ts_ms, id"},
    [PQ_LEDGER_IDS] = {"sy_ledger_ids", "SELECT id FROM ledger WHERE ts_ms >= $1::bigint"},
    [PQ_SESSIONS_PRIVATE] = {"sy_sessions_private",
                             "SELECT id, turns, tiers, private, updated_ms FROM sessions"
                             " WHERE updated_ms >= $1::bigint AND private <> 0"},
    [PQ_SESSION_GET] = {"sy_session_get",
                        "SELECT turns, tiers, private, updated_ms FROM sessions WHERE id = $1"},
    [PQ_SESSION_PUT] = {"sy_session_put",
                        "INSERT INTO sessions (id, turns, tiers, private, updated_ms)"
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
                        " turns = EXCLUDED.turns, tiers = EXCLUDED.tiers,"
                        " private = EXCLUDED.private, updated_ms = EXCLUDED.updated_ms"},
    [PQ_SESSION_TURN] =
        {"sy_session_turn",
         "INSERT INTO sessions AS s (id, turns, tiers, private, updated_ms)"
         " VALUES ($1, 1, $2::text, $3::int, $4::bigint) ON CONFLICT (id) DO UPDATE SET"
         " turns = s.turns + 1,"
         " tiers = CASE WHEN $2::text = '' OR strpos(',' || s.tiers || ',', ',' || $2::text || ',')"
         "   > 0 OR length(s.tiers) + length($2::text) + 1 > $5::int THEN s.tiers"
         "   WHEN s.tiers = '' THEN $2::text ELSE s.tiers || ',' || $2::text END,"
         " private = (s.private | $3::int), updated_ms = $4::bigint"
         " RETURNING turns, tiers, private, updated_ms"},
    [PQ_SESSION_PRUNE] = {"sy_session_prune", "DELETE FROM sessions WHERE updated_ms < $1"},
    [PQ_FEEDBACK_PUT] = {"sy_feedback_put",
                         "INSERT INTO feedback (request_id, reward, ts_ms) VALUES ($1, $2, $3)"},
    [PQ_FEEDBACK_LIST] = {"sy_feedback_list", "SELECT request_id, reward, ts_ms FROM feedback"
                                              " WHERE ts_ms >= $1::bigint ORDER BY ts_ms"},
    [PQ_KV_PUT] = {"sy_kv_put", "INSERT INTO kv (ns, key, value) VALUES ($1, $2, $3)"
                                " ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value"},
    [PQ_KV_GET] = {"sy_kv_get", "SELECT value FROM kv WHERE ns = $1 AND key = $2"},
    [PQ_KV_DELETE] = {"sy_kv_delete", "DELETE FROM kv WHERE ns = $1 AND key = $2"},
    [PQ_TRAFFIC] = {"sy_traffic", "SELECT ts_ms, tier, status, tokens_in, tokens_out, cost_nusd,"
                                  " cloud_cost_nusd, escalated, reasons FROM ledger"
                                  " WHERE ts_ms >= $1::bigint ORDER BY ts_ms"},
    [PQ_VERSIONS] = {"sy_versions", STORE_VERSIONS_SQL("$1::bigint")},
    [PQ_BUDGET_RESERVE] = {"sy_budget_reserve",
                           "INSERT INTO budgets AS b (key, period_ms, spent_nusd, reserved_nusd)"
                           " VALUES ($1, $2::bigint, 0, $3::bigint) ON CONFLICT (key, period_ms)"
                           " DO UPDATE SET reserved_nusd = b.reserved_nusd + $3::bigint"
                           " WHERE b.spent_nusd + b.reserved_nusd + $3::bigint <= $4::bigint"
                           " RETURNING spent_nusd, reserved_nusd"},
    [PQ_BUDGET_SETTLE] = {"sy_budget_settle",
                          "INSERT INTO budgets AS b (key, period_ms, spent_nusd, reserved_nusd)"
                          " VALUES ($1, $2::bigint, $4::bigint, 0) ON CONFLICT (key, period_ms)"
                          " DO UPDATE SET reserved_nusd = GREATEST(b.reserved_nusd - $3::bigint,"
                          " 0), spent_nusd = b.spent_nusd + $4::bigint"
                          " RETURNING spent_nusd, reserved_nusd"},
    [PQ_BUDGET_GET] = {"sy_budget_get", "SELECT spent_nusd, reserved_nusd FROM budgets"
                                        " WHERE key = $1 AND period_ms = $2::bigint"},
    /* store_kv_add_f64: the row exists (a second inserter waits for the first to
     * commit), then is locked until the transaction ends. */
    [PQ_KV_ENSURE] = {"sy_kv_ensure", "INSERT INTO kv (ns, key, value) VALUES ($1, $2, '')"
                                      " ON CONFLICT (ns, key) DO NOTHING"},
    [PQ_KV_LOCK] = {"sy_kv_lock", "SELECT value FROM kv WHERE ns = $1 AND key = $2 FOR UPDATE"},
};

typedef struct pg_store {
    store_t base; /* first: a store_t * is a pg_store_t * */
    PGconn *conn;
    bool prepared[PQ_COUNT]; /* on this connection; cleared by a reconnect */
    bool in_pipe;            /* a ledger batch is being sent in pipeline mode */
    int pipe_err;            /* first error while sending the batch */
} pg_store_t;

static pg_store_t *pg(store_t *s)
{
    return (pg_store_t *)s;
}

/* Maps a SQLSTATE to switchyard's table. */
static int map_state(const char *state)
{
    if (!state) return SY_EIO;
    if (!strncmp(state, "08", 2)) return SY_ECLOSED; /* connection exception */
    if (!strcmp(state, "53100")) return -ENOSPC;     /* disk full */
    if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2)) return SY_EINVAL; /* data */
    if (!strcmp(state, "57014") || !strcmp(state, "55P03")) return SY_ETIMEOUT;
    if (!strncmp(state, "XX", 2)) return SY_ECORRUPT; /* internal error, data corrupted */
    return SY_EIO;
}

/* Records the message of a failed result, clears it, returns the mapped error. */
static int fail(pg_store_t *s, PGresult *r)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn);
    if (!msg || !*msg) msg = PQerrorMessage(s->conn);
    store_set_err(&s->base, "postgresql: %.*s", (int)strcspn(msg, "\n"), msg);
    int rc = r ? map_state(PQresultErrorField(r, PG_DIAG_SQLSTATE)) : SY_ECLOSED;
    PQclear(r);
    return rc;
}

/* A dropped connection is reopened once before the next statement; statements
 * prepared on the old one are gone. Only outside a transaction: inside one, the
 * failure must surface so the caller rolls back and retries the whole batch. */
static void maybe_reconnect(pg_store_t *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK) return;
    PQreset(s->conn);
    memset(s->prepared, 0, sizeof s->prepared);
}

static int ensure_prepared(pg_store_t *s, int which);

/* Statements that change nothing, so repeating one is always safe. */
static bool stmt_is_read(int which)
{
    return (which >= PQ_COSTS_TEAM && which <= PQ_SESSIONS_PRIVATE) || which == PQ_SESSION_GET ||
           which == PQ_FEEDBACK_LIST || which == PQ_KV_GET || which == PQ_BUDGET_GET ||
           which == PQ_TRAFFIC;
}

/* Runs prepared statement `which` with n text parameters (binary where fmts says
 * so). Returns the result (caller PQclear()s) with *err = 0, or NULL with *err set.
 * When the server went away (restart, failover, a proxy's idle timeout) the call
 * is repeated once on a fresh connection if nothing can have run: the statement
 * failed to prepare, or it is a read. A failed write is not repeated, since it may
 * have committed before the connection dropped. */
static PGresult *run(pg_store_t *s, int which, int n, const char *const *vals, const int *lens,
                     const int *fmts, int result_fmt, int *err)
{
    for (int attempt = 0;; attempt++) {
        bool outside_tx = PQtransactionStatus(s->conn) == PQTRANS_IDLE ||
                          PQtransactionStatus(s->conn) == PQTRANS_UNKNOWN;
        if (outside_tx) maybe_reconnect(s);
        bool can_repeat = attempt == 0 && outside_tx;
        if ((*err = ensure_prepared(s, which))) {
            if (can_repeat && PQstatus(s->conn) != CONNECTION_OK) continue;
            return NULL;
        }
        PGresult *r =
            PQexecPrepared(s->conn, pq_stmts[which].name, n, vals, lens, fmts, result_fmt);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *err = 0;
            return r;
        }
        if (can_repeat && stmt_is_read(which) && PQstatus(s->conn) != CONNECTION_OK) {
            PQclear(r);
            continue;
        }
        *err = fail(s, r);
        return NULL;
    }
}

/* Runs a statement whose result is not needed. */
static int run_cmd(pg_store_t *s, int which, int n, const char *const *vals)
{
    int err;
    PGresult *r = run(s, which, n, vals, NULL, NULL, 0, &err);
    PQclear(r);
    return err;
}

/* Runs literal SQL (transaction control, migrations). */
static int exec_sql(pg_store_t *s, const char *sql)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail(s, r);
    PQclear(r);
    return 0;
}

static int64_t val_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void val_str(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    store_copy_str(dst, cap, PQgetvalue(r, row, col));
}

/* Text for a 64-bit integer parameter. */
typedef struct num {
    char s[24];
} num_t;

static const char *num_i64(num_t *n, int64_t v)
{
    snprintf(n->s, sizeof n->s, "%lld", (long long)v);
    return n->s;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* ============================================================ schema ===== */

/* Rewrites the portable schema text for PostgreSQL ("BLOB" -> "BYTEA"). */
static char *pg_dialect(const char *sql)
{
    size_t n = strlen(sql);
    char *out = mem_alloc(n + n / 5 + 1); /* each 5-byte " BLOB" grows by one */
    char *o = out;
    for (const char *p = sql; *p;) {
        if (!strncmp(p, " BLOB", 5)) {
            memcpy(o, " BYTEA", 6);
            o += 6;
            p += 5;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static int read_version(pg_store_t *s, int *v)
{
    PGresult *r = PQexec(s->conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return fail(s, r);
    *v = (int)val_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Applies every missing migration in one transaction under an advisory lock. */
static int migrate(pg_store_t *s)
{
    char sql[160];
    int rc = exec_sql(s, "BEGIN");
    if (rc) return rc;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", PG_MIGRATE_LOCK);
    if ((rc = exec_sql(s, sql))) goto out;
    if ((rc = exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                          " version INTEGER NOT NULL, applied_ms BIGINT NOT NULL)")))
        goto out;
    int v;
    if ((rc = read_version(s, &v))) goto out;
    if (v > STORE_SCHEMA_VERSION) {
        store_set_err(&s->base,
                      "store schema version %d is newer than this switchyard supports (%d)", v,
                      STORE_SCHEMA_VERSION);
        rc = SY_EUNSUPPORTED;
        goto out;
    }
    for (; v < STORE_SCHEMA_VERSION; v++) {
        for (const char *const *q = store_migrations[v]; *q; q++) {
            char *d = pg_dialect(*q);
            rc = exec_sql(s, d);
            mem_free(d);
            if (rc) goto out;
        }
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, %lld)", v + 1,
                 (long long)clock_wall_ms());
        if ((rc = exec_sql(s, sql))) goto out;
    }
    return exec_sql(s, "COMMIT");
out:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

/* ============================================================ ops ======== */

static void pg_close(store_t *base)
{
    PQfinish(pg(base)->conn);
    mem_free(base);
}

static int pg_schema_version(store_t *base)
{
    int v = 0;
    int rc = read_version(pg(base), &v);
    return rc ? rc : v;
}

/* A ledger batch is one pipeline: BEGIN, every INSERT and COMMIT go out without
 * waiting for each answer, then one sync collects them, so a batch costs one round
 * trip instead of one per row (about 30k rows/s became several times that). The
 * answers to a bounded batch (WRITER_BATCH_MAX rows, tens of bytes each) fit the
 * socket buffers, so blocking sends cannot deadlock against unread results. */
static int ensure_prepared(pg_store_t *s, int which)
{
    if (s->prepared[which]) return 0;
    PGresult *r = PQprepare(s->conn, pq_stmts[which].name, pq_stmts[which].sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) return fail(s, r);
    PQclear(r);
    s->prepared[which] = true;
    return 0;
}

static void pipe_send_failed(pg_store_t *s)
{
    if (!s->pipe_err) s->pipe_err = fail(s, NULL);
}

/* Sends a sync and reads every pending answer up to it; returns the first error
 * (recording its message) and leaves pipeline mode. */
static int pipe_finish(pg_store_t *s)
{
    int err = s->pipe_err;
    if (PQpipelineSync(s->conn) != 1 && !err) err = fail(s, NULL);
    int nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(s->conn);
        if (!r) {
            /* One NULL ends each query's answers; two in a row mean nothing is left
             * (a dead connection never sends the sync). */
            if (++nulls > 1 || PQstatus(s->conn) != CONNECTION_OK) {
                if (!err) err = SY_ECLOSED;
                break;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_FATAL_ERROR && !err)
            err = fail(s, r);
        else
            PQclear(r);
    }
    PQexitPipelineMode(s->conn);
    s->in_pipe = false;
    s->pipe_err = 0;
    return err;
}

static int pg_begin(store_t *base)
{
    pg_store_t *s = pg(base);
    maybe_reconnect(s);
    int rc = ensure_prepared(s, PQ_LEDGER_INSERT);
    if (rc) return rc;
    if (PQenterPipelineMode(s->conn) != 1) return fail(s, NULL);
    s->in_pipe = true;
    s->pipe_err = 0;
    if (PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1) pipe_send_failed(s);
    return s->pipe_err;
}

static int pg_commit(store_t *base)
{
    pg_store_t *s = pg(base);
    if (!s->in_pipe) return exec_sql(s, "COMMIT");
    if (!s->pipe_err && PQsendQueryParams(s->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1)
        pipe_send_failed(s);
    return pipe_finish(s);
}

/* After a failed batch the server may sit in an aborted transaction: end it. */
static void pg_rollback(store_t *base)
{
    pg_store_t *s = pg(base);
    if (s->in_pipe) pipe_finish(s);
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) PQclear(PQexec(s->conn, "ROLLBACK"));
}

static int pg_ledger_insert(store_t *base, const store_ledger_row_t *r)
{
    num_t n[18];
    char id[sizeof r->id + 1];
    store_copy_str(id, sizeof id, r->id);
    const char *v[33] = {
        id,
        num_i64(&n[0], r->ts_ms),
        nz(r->tenant),
        nz(r->team),
        nz(r->feature),
        nz(r->session),
        nz(r->tier),
        nz(r->model),
        nz(r->status),
        num_i64(&n[1], r->http_status),
        num_i64(&n[2], r->tokens_in),
        num_i64(&n[3], r->tokens_out),
        num_i64(&n[4], store_usd_to_nusd(r->cost_usd)),
        num_i64(&n[5], store_usd_to_nusd(r->cloud_cost_usd)),
        num_i64(&n[6], r->latency_ms),
        num_i64(&n[7], r->ttft_ms),
        num_i64(&n[8], r->failover),
        num_i64(&n[9], r->escalated),
        num_i64(&n[10], r->degraded),
        num_i64(&n[11], r->external),
        num_i64(&n[12], r->pii_types),
        nz(r->pii_names),
        nz(r->reasons),
        num_i64(&n[14], r->pii_kept_local),
        num_i64(&n[15], r->pii_masked),
        num_i64(&n[16], r->pii_allowed),
        num_i64(&n[17], r->pii_blocked),
        nz(r->version),
        nz(r->first_tier),
        nz(r->first_version),
        nz(r->cloud_tier),
        nz(r->cloud_version),
        NULL, /* confidence: SQL NULL unless scored */
    };
    char conf[32];
    if (r->has_confidence) {
        snprintf(conf, sizeof conf, "%.9g", (double)r->confidence);
        v[32] = conf;
    }
    pg_store_t *s = pg(base);
    if (!s->in_pipe) return run_cmd(s, PQ_LEDGER_INSERT, 33, v);
    if (s->pipe_err) return s->pipe_err;
    if (PQsendQueryPrepared(s->conn, pq_stmts[PQ_LEDGER_INSERT].name, 33, v, NULL, NULL, 0) != 1)
        pipe_send_failed(s);
    return s->pipe_err;
}

static int pg_costs_query(store_t *base, store_group_t by, int64_t since_ms, store_cost_row_t **out,
                          size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms > 0 ? since_ms : INT64_MIN)};
    int err;
    PGresult *r = run(pg(base), PQ_COSTS_TEAM + (int)by, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_cost_row_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        val_str(r, k, 0, o[i].key, sizeof o[i].key);
        o[i].requests = (uint64_t)val_i64(r, k, 1);
        o[i].tokens_in = (uint64_t)val_i64(r, k, 2);
        o[i].tokens_out = (uint64_t)val_i64(r, k, 3);
        int64_t cost = val_i64(r, k, 4), cloud = val_i64(r, k, 5);
        o[i].cost_usd = store_nusd_to_usd(cost);
        o[i].cloud_cost_usd = store_nusd_to_usd(cloud);
        o[i].saved_usd = store_nusd_to_usd(cloud - cost);
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_audit_query(store_t *base, int64_t since_ms, store_audit_row_t **out, size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms > 0 ? since_ms : INT64_MIN)};
    int err;
    PGresult *r = run(pg(base), PQ_AUDIT, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_audit_row_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        val_str(r, k, 0, o[i].id, sizeof o[i].id);
        o[i].ts_ms = val_i64(r, k, 1);
        val_str(r, k, 2, o[i].tier, sizeof o[i].tier);
        o[i].pii_types = (uint32_t)val_i64(r, k, 3);
        val_str(r, k, 4, o[i].pii_names, sizeof o[i].pii_names);
        o[i].pii_allowed = (uint32_t)val_i64(r, k, 5);
        o[i].pii_masked = (uint32_t)val_i64(r, k, 6);
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_ledger_ids(store_t *base, int64_t since_ms, store_ledger_id_t **out, size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms)};
    int err;
    PGresult *r = run(pg(base), PQ_LEDGER_IDS, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_ledger_id_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++)
        val_str(r, (int)i, 0, o[i].id, sizeof o[i].id);
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_sessions_private(store_t *base, int64_t since_ms, store_session_t **out,
                               size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms)};
    int err;
    PGresult *r = run(pg(base), PQ_SESSIONS_PRIVATE, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_session_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        val_str(r, k, 0, o[i].id, sizeof o[i].id);
        o[i].turns = (uint32_t)val_i64(r, k, 1);
        val_str(r, k, 2, o[i].tiers, sizeof o[i].tiers);
        o[i].is_private = val_i64(r, k, 3) != 0;
        o[i].updated_ms = val_i64(r, k, 4);
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_traffic_query(store_t *base, int64_t since_ms, store_traffic_row_t **out,
                            size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms > 0 ? since_ms : INT64_MIN)};
    int err;
    PGresult *r = run(pg(base), PQ_TRAFFIC, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_traffic_row_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        o[i].ts_ms = val_i64(r, k, 0);
        val_str(r, k, 1, o[i].tier, sizeof o[i].tier);
        val_str(r, k, 2, o[i].status, sizeof o[i].status);
        o[i].tokens_in = (uint32_t)val_i64(r, k, 3);
        o[i].tokens_out = (uint32_t)val_i64(r, k, 4);
        o[i].cost_usd = store_nusd_to_usd(val_i64(r, k, 5));
        o[i].cloud_cost_usd = store_nusd_to_usd(val_i64(r, k, 6));
        o[i].escalated = val_i64(r, k, 7) != 0;
        val_str(r, k, 8, o[i].reasons, sizeof o[i].reasons);
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_versions_query(store_t *base, int64_t since_ms, store_version_cell_t **out,
                             size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms > 0 ? since_ms : INT64_MIN)};
    int err;
    PGresult *r = run(pg(base), PQ_VERSIONS, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_version_cell_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        val_str(r, k, 0, o[i].first_tier, sizeof o[i].first_tier);
        val_str(r, k, 1, o[i].first_version, sizeof o[i].first_version);
        val_str(r, k, 2, o[i].tier, sizeof o[i].tier);
        val_str(r, k, 3, o[i].version, sizeof o[i].version);
        val_str(r, k, 4, o[i].cloud_tier, sizeof o[i].cloud_tier);
        val_str(r, k, 5, o[i].cloud_version, sizeof o[i].cloud_version);
        o[i].first_ms = val_i64(r, k, 6);
        o[i].last_ms = val_i64(r, k, 7);
        o[i].requests = (uint64_t)val_i64(r, k, 8);
        o[i].errors = (uint64_t)val_i64(r, k, 9);
        o[i].escalated = (uint64_t)val_i64(r, k, 10);
        o[i].confidences = (uint64_t)val_i64(r, k, 11);
        o[i].confidence_sum = strtod(PQgetvalue(r, k, 12), NULL);
        o[i].cost_usd = store_nusd_to_usd(val_i64(r, k, 13));
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static void session_cols(const PGresult *r, const char *id, store_session_t *out)
{
    memset(out, 0, sizeof *out);
    store_copy_str(out->id, sizeof out->id, id);
    out->turns = (uint32_t)val_i64(r, 0, 0);
    val_str(r, 0, 1, out->tiers, sizeof out->tiers);
    out->is_private = val_i64(r, 0, 2) != 0;
    out->updated_ms = val_i64(r, 0, 3);
}

static int pg_session_get(store_t *base, const char *id, store_session_t *out)
{
    const char *v[1] = {id};
    int err;
    PGresult *r = run(pg(base), PQ_SESSION_GET, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SY_ENOTFOUND;
    }
    session_cols(r, id, out);
    PQclear(r);
    return 0;
}

static int pg_session_put(store_t *base, const store_session_t *sess)
{
    num_t n[3];
    char id[sizeof sess->id + 1], tiers[sizeof sess->tiers + 1];
    store_copy_str(id, sizeof id, sess->id);
    store_copy_str(tiers, sizeof tiers, sess->tiers);
    const char *v[5] = {id, num_i64(&n[0], sess->turns), tiers, num_i64(&n[1], sess->is_private),
                        num_i64(&n[2], sess->updated_ms)};
    return run_cmd(pg(base), PQ_SESSION_PUT, 5, v);
}

static int pg_session_turn(store_t *base, const char *id, const char *tier, bool had_pii,
                           int64_t now_ms, store_session_t *out)
{
    num_t n[3];
    const char *v[5] = {id, tier, num_i64(&n[0], had_pii), num_i64(&n[1], now_ms),
                        num_i64(&n[2], (int64_t)sizeof out->tiers - 1)};
    int err;
    PGresult *r = run(pg(base), PQ_SESSION_TURN, 5, v, NULL, NULL, 0, &err);
    if (!r) return err;
    if (out && PQntuples(r) > 0) session_cols(r, id, out);
    PQclear(r);
    return 0;
}

static int pg_session_prune(store_t *base, int64_t before_ms, uint64_t *n_deleted)
{
    num_t n;
    const char *v[1] = {num_i64(&n, before_ms)};
    int err;
    PGresult *r = run(pg(base), PQ_SESSION_PRUNE, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    *n_deleted = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

static int pg_feedback_put(store_t *base, const char *request_id, double reward, int64_t ts_ms)
{
    num_t n;
    char rw[40];
    snprintf(rw, sizeof rw, "%.17g", reward);
    const char *v[3] = {request_id, rw, num_i64(&n, ts_ms)};
    return run_cmd(pg(base), PQ_FEEDBACK_PUT, 3, v);
}

static int pg_feedback_list(store_t *base, int64_t since_ms, store_feedback_t **out, size_t *n_out)
{
    num_t n;
    const char *v[1] = {num_i64(&n, since_ms > 0 ? since_ms : INT64_MIN)};
    int err;
    PGresult *r = run(pg(base), PQ_FEEDBACK_LIST, 1, v, NULL, NULL, 0, &err);
    if (!r) return err;
    size_t rows = (size_t)PQntuples(r);
    if (rows > STORE_QUERY_MAX_ROWS) {
        PQclear(r);
        return SY_ETOOBIG;
    }
    store_feedback_t *o = mem_calloc(rows ? rows : 1, sizeof *o);
    for (size_t i = 0; i < rows; i++) {
        val_str(r, (int)i, 0, o[i].request_id, sizeof o[i].request_id);
        o[i].reward = strtod(PQgetvalue(r, (int)i, 1), NULL);
        o[i].ts_ms = val_i64(r, (int)i, 2);
    }
    PQclear(r);
    *out = o;
    *n_out = rows;
    return 0;
}

static int pg_kv_put(store_t *base, const char *ns, const char *key, const void *blob, size_t len)
{
    const char *v[3] = {ns, key, blob};
    int lens[3] = {0, 0, (int)len};
    int fmts[3] = {0, 0, 1}; /* the blob travels binary */
    int err;
    PGresult *r = run(pg(base), PQ_KV_PUT, 3, v, lens, fmts, 0, &err);
    PQclear(r);
    return err;
}

static int pg_kv_get(store_t *base, const char *ns, const char *key, void **blob, size_t *len)
{
    const char *v[2] = {ns, key};
    int err;
    PGresult *r = run(pg(base), PQ_KV_GET, 2, v, NULL, NULL, 1, &err);
    if (!r) return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SY_ENOTFOUND;
    }
    size_t n = (size_t)PQgetlength(r, 0, 0);
    char *copy = mem_alloc(n + 1);
    if (n) memcpy(copy, PQgetvalue(r, 0, 0), n);
    copy[n] = 0;
    PQclear(r);
    *blob = copy;
    *len = n;
    return 0;
}

static int pg_kv_delete(store_t *base, const char *ns, const char *key)
{
    const char *v[2] = {ns, key};
    return run_cmd(pg(base), PQ_KV_DELETE, 2, v);
}

/* Read, add and write back in one transaction holding the row's lock: concurrent
 * adds from other connections wait for it, so none is lost. */
static int pg_kv_add_f64(store_t *base, const char *ns, const char *key, const double *delta,
                         size_t n, double **total, size_t *n_total)
{
    pg_store_t *s = pg(base);
    const char *v[2] = {ns, key};
    maybe_reconnect(s);
    int err = exec_sql(s, "BEGIN");
    if (err) return err;
    if ((err = run_cmd(s, PQ_KV_ENSURE, 2, v))) goto out;
    PGresult *r = run(s, PQ_KV_LOCK, 2, v, NULL, NULL, 1, &err);
    if (!r) goto out;
    if (PQntuples(r) != 1) {
        PQclear(r);
        store_set_err(base, "postgresql: the kv row vanished inside its transaction");
        err = SY_EIO;
        goto out;
    }
    err =
        store_f64_add(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), delta, n, total, n_total);
    PQclear(r);
    if (err) goto out;
    if ((err = pg_kv_put(base, ns, key, *total, *n_total * sizeof(double)))) goto out;
    if ((err = exec_sql(s, "COMMIT"))) goto out;
    return 0;
out:
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) PQclear(PQexec(s->conn, "ROLLBACK"));
    free(*total);
    *total = NULL;
    *n_total = 0;
    return err;
}

/* Runs a budget statement with (key, period[, a, b]) and reads its one row, if any:
 * 0 with a row, SY_ENOTFOUND without, or an error. */
static int pg_budget_run(store_t *base, int which, const char *key, int64_t period_ms, int64_t a,
                         int64_t b, int64_t *spent, int64_t *reserved)
{
    num_t n[3];
    const char *v[4] = {key, num_i64(&n[0], period_ms), num_i64(&n[1], a), num_i64(&n[2], b)};
    int err;
    PGresult *r = run(pg(base), which, which == PQ_BUDGET_GET ? 2 : 4, v, NULL, NULL, 0, &err);
    if (!r) return err;
    if (PQntuples(r) > 0) {
        *spent = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *reserved = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    } else {
        err = SY_ENOTFOUND;
    }
    PQclear(r);
    return err;
}

static int pg_budget_get(store_t *base, const char *key, int64_t period_ms, int64_t *spent,
                         int64_t *reserved)
{
    int rc = pg_budget_run(base, PQ_BUDGET_GET, key, period_ms, 0, 0, spent, reserved);
    return rc == SY_ENOTFOUND ? 0 : rc;
}

static int pg_budget_reserve(store_t *base, const char *key, int64_t period_ms, int64_t limit_nusd,
                             int64_t amount_nusd, int64_t *spent, int64_t *reserved)
{
    int rc = pg_budget_run(base, PQ_BUDGET_RESERVE, key, period_ms, amount_nusd, limit_nusd, spent,
                           reserved);
    if (rc != SY_ENOTFOUND) return rc;
    rc = pg_budget_get(base, key, period_ms, spent, reserved);
    return rc ? rc : SY_EFULL;
}

static int pg_budget_settle(store_t *base, const char *key, int64_t period_ms,
                            int64_t reserved_nusd, int64_t actual_nusd, int64_t *spent,
                            int64_t *reserved)
{
    return pg_budget_run(base, PQ_BUDGET_SETTLE, key, period_ms, reserved_nusd, actual_nusd, spent,
                         reserved);
}

static const store_ops_t pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .schema_version = pg_schema_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .ledger_insert = pg_ledger_insert,
    .costs_query = pg_costs_query,
    .audit_query = pg_audit_query,
    .traffic_query = pg_traffic_query,
    .versions_query = pg_versions_query,
    .ledger_ids = pg_ledger_ids,
    .sessions_private = pg_sessions_private,
    .session_get = pg_session_get,
    .session_put = pg_session_put,
    .session_turn = pg_session_turn,
    .session_prune = pg_session_prune,
    .feedback_put = pg_feedback_put,
    .feedback_list = pg_feedback_list,
    .kv_put = pg_kv_put,
    .kv_get = pg_kv_get,
    .kv_delete = pg_kv_delete,
    .kv_add_f64 = pg_kv_add_f64,
    .budget_reserve = pg_budget_reserve,
    .budget_settle = pg_budget_settle,
    .budget_get = pg_budget_get,
};

/* Connects with the URL as libpq reads it (host, port, user, dbname, sslmode,
 * connect_timeout, ...) and migrates. Returns owned store or NULL with a message
 * naming the URL's host part but never its password. */
store_t *store_pg_open(const char *url, char *err, size_t errlen)
{
    pg_store_t *s = mem_calloc(1, sizeof *s);
    s->base.ops = &pg_ops;
    s->conn = PQconnectdb(url);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        const char *m = s->conn ? PQerrorMessage(s->conn) : "out of memory";
        snprintf(err, errlen, "store postgresql: cannot connect: %.*s", (int)strcspn(m, "\n"), m);
        goto fail;
    }
    PQclear(PQexec(s->conn, "SET client_min_messages = warning"));
    int rc = migrate(s);
    if (rc) {
        snprintf(err, errlen, "store postgresql: %s", s->base.errmsg);
        goto fail;
    }
    return &s->base;
fail:
    PQfinish(s->conn);
    mem_free(s);
    return NULL;
}

#else /* no libpq */

store_t *store_pg_open(const char *url, char *err, size_t errlen)
{
    (void)url;
    snprintf(err, errlen,
             "this switchyard was built without PostgreSQL support (install libpq-dev and add "
             "libpq to the Makefile's PKGS)");
    return NULL;
}

#endif
