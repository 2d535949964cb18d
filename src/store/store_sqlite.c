/* store_sqlite.c — the SQLite backend (the embedded default).
 *
 * One connection per store_t, opened with SQLITE_OPEN_NOMUTEX because a store is
 * used by one thread at a time. WAL mode lets the ledger writer's connection commit
 * while the gateway's connection reads; synchronous=NORMAL makes a commit one WAL
 * append without fsync (safe against process crashes); a busy timeout absorbs
 * short lock waits between connections and processes. Every statement is prepared
 * once, on first use, and reused.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "store/store_impl.h"

#define SQLITE_BUSY_TIMEOUT_MS 5000

/* ======================================================= statements ===== */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LEDGER_INSERT,
    ST_COSTS_TEAM, /* the four group-by queries, in store_group_t order */
    ST_COSTS_TENANT,
    ST_COSTS_FEATURE,
    ST_COSTS_TIER,
    ST_AUDIT,
    ST_LEDGER_IDS,
    ST_SESSIONS_PRIVATE,
    ST_SESSION_GET,
    ST_SESSION_PUT,
    ST_SESSION_TURN,
    ST_SESSION_PRUNE,
    ST_FEEDBACK_PUT,
    ST_FEEDBACK_LIST,
    ST_KV_PUT,
    ST_KV_GET,
    ST_KV_DELETE,
    ST_TRAFFIC,
    ST_VERSIONS,
    ST_BUDGET_RESERVE,
    ST_BUDGET_SETTLE,
    ST_BUDGET_GET,
    ST_COUNT
};

#define COSTS_SQL(col)                                                                             \
    "SELECT " col ", COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(cost_nusd),"                   \
    " SUM(cloud_cost_nusd) FROM ledger WHERE ts_ms >= ?1 GROUP BY " col                            \
    " ORDER BY SUM(cost_nusd) DESC, " col

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LEDGER_INSERT] =
        "INSERT INTO ledger (id, ts_ms, tenant, team, feature, session, tier, model, status,"
        " http_status, tokens_in, tokens_out, cost_nusd, cloud_cost_nusd, latency_ms, ttft_ms,"
        " failover, escalated, degraded, external, pii_types, pii_names, reasons,"
        " pii_kept_local, pii_masked, pii_allowed, pii_blocked, version, first_tier,"
        " first_version, cloud_tier, cloud_version, confidence)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
        " ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
    [ST_COSTS_TEAM] = COSTS_SQL("team"),
    [ST_COSTS_TENANT] = COSTS_SQL("tenant"),
    [ST_COSTS_FEATURE] = COSTS_SQL("feature"),
    [ST_COSTS_TIER] = COSTS_SQL("tier"),
    [ST_LEDGER_IDS] = "SELECT id FROM ledger WHERE ts_ms >= ?1",
    [ST_SESSIONS_PRIVATE] = "SELECT id, turns, tiers, private, updated_ms FROM sessions"
                            " WHERE updated_ms >= ?1 AND private <> 0",
    [ST_AUDIT] = "SELECT id, ts_ms, tier, pii_types, pii_names, pii_allowed, pii_masked"
                 " FROM ledger WHERE pii_allowed <> 0 AND ts_ms >= ?1 ORDER BY ts_ms, rowid",
    [ST_SESSION_GET] = "SELECT turns, tiers, private, updated_ms FROM sessions WHERE id = ?1",
    [ST_SESSION_PUT] = "INSERT OR REPLACE INTO sessions (id, turns, tiers, private, updated_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
    /* tiers is a ','-joined set; ?2 is added when new and when it still fits. */
    [ST_SESSION_TURN] =
        "INSERT INTO sessions (id, turns, tiers, private, updated_ms) VALUES (?1, 1, ?2, ?3, ?4)"
        " ON CONFLICT (id) DO UPDATE SET turns = turns + 1,"
        " tiers = CASE WHEN ?2 = '' OR instr(',' || tiers || ',', ',' || ?2 || ',') > 0"
        "   OR length(tiers) + length(?2) + 1 > ?5 THEN tiers"
        "   WHEN tiers = '' THEN ?2 ELSE tiers || ',' || ?2 END,"
        " private = (private | ?3), updated_ms = ?4"
        " RETURNING turns, tiers, private, updated_ms",
    [ST_SESSION_PRUNE] = "DELETE FROM sessions WHERE updated_ms < ?1",
    [ST_FEEDBACK_PUT] = "INSERT INTO feedback (request_id, reward, ts_ms) VALUES (?1, ?2, ?3)",
    [ST_FEEDBACK_LIST] = "SELECT request_id, reward, ts_ms FROM feedback WHERE ts_ms >= ?1"
                         " ORDER BY ts_ms, rowid",
    [ST_KV_PUT] = "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?1, ?2, ?3)",
    [ST_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_KV_DELETE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    /* One statement each, so a reservation is atomic across processes sharing the
     * file; the caller has checked amount <= limit for the insert case. */
    [ST_TRAFFIC] = "SELECT ts_ms, tier, status, tokens_in, tokens_out, cost_nusd, cloud_cost_nusd,"
                   " escalated, reasons FROM ledger WHERE ts_ms >= ?1 ORDER BY ts_ms",
    [ST_VERSIONS] = STORE_VERSIONS_SQL("?1"),
    [ST_BUDGET_RESERVE] =
        "INSERT INTO budgets (key, period_ms, spent_nusd, reserved_nusd) VALUES (?1, ?2, 0, ?3)"
        " ON CONFLICT (key, period_ms) DO UPDATE SET reserved_nusd = reserved_nusd + ?3"
        " WHERE spent_nusd + reserved_nusd + ?3 <= ?4 RETURNING spent_nusd, reserved_nusd",
    [ST_BUDGET_SETTLE] =
        "INSERT INTO budgets (key, period_ms, spent_nusd, reserved_nusd) VALUES (?1, ?2, ?4, 0)"
        " ON CONFLICT (key, period_ms) DO UPDATE SET"
        " reserved_nusd = MAX(reserved_nusd - ?3, 0), spent_nusd = spent_nusd + ?4"
        " RETURNING spent_nusd, reserved_nusd",
    [ST_BUDGET_GET] =
        "SELECT spent_nusd, reserved_nusd FROM budgets WHERE key = ?1 AND period_ms = ?2",
};

typedef struct sqlite_store {
    store_t base; /* first: a store_t * is a sqlite_store_t * */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT]; /* prepared on first use */
} sqlite_store_t;

static sqlite_store_t *sq(store_t *s)
{
    return (sqlite_store_t *)s;
}

/* Maps a SQLite result code to switchyard's table. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SY_ETIMEOUT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return SY_ECORRUPT;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_TOOBIG:
        return SY_ETOOBIG;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return SY_EINVAL;
    default:
        return SY_EIO;
    }
}

/* Records the connection's message and returns the mapped error. */
static int fail(sqlite_store_t *s, int rc)
{
    store_set_err(&s->base, "sqlite: %s", sqlite3_errmsg(s->db));
    return map_rc(rc);
}

/* Returns the cached statement, reset with bindings cleared, or NULL with the
 * message recorded (*err set). */
static sqlite3_stmt *stmt(sqlite_store_t *s, int which, int *err)
{
    sqlite3_stmt *st = s->st[which];
    if (!st) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[which], NULL);
        if (rc != SQLITE_OK) {
            *err = fail(s, rc);
            return NULL;
        }
        st = s->st[which];
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Steps a statement that returns no rows (or whose rows are ignored). */
static int exec_stmt(sqlite_store_t *s, sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    int r = rc == SQLITE_DONE ? 0 : fail(s, rc);
    sqlite3_reset(st);
    return r;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    store_copy_str(dst, cap, (const char *)sqlite3_column_text(st, i));
}

/* ============================================================ schema ===== */

static int exec_sql(sqlite_store_t *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(s, rc);
}

static int read_version(sqlite_store_t *s, int *version)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT MAX(version) FROM schema_version", -1, &st, NULL);
    if (rc != SQLITE_OK) return fail(s, rc);
    rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    int r = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : fail(s, rc);
    sqlite3_finalize(st);
    return r;
}

/* Brings the schema to STORE_SCHEMA_VERSION, one migration per transaction. The
 * version is read again inside BEGIN IMMEDIATE so two processes opening a new file
 * at once do not both migrate. A file from a newer switchyard is refused. */
static int migrate(sqlite_store_t *s)
{
    int rc = exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                         " version INTEGER NOT NULL, applied_ms INTEGER NOT NULL)");
    if (rc) return rc;
    for (;;) {
        if ((rc = exec_sql(s, "BEGIN IMMEDIATE"))) return rc;
        int v;
        if ((rc = read_version(s, &v))) goto out;
        if (v > STORE_SCHEMA_VERSION) {
            store_set_err(&s->base,
                          "store schema version %d is newer than this switchyard supports (%d)", v,
                          STORE_SCHEMA_VERSION);
            rc = SY_EUNSUPPORTED;
            goto out;
        }
        if (v == STORE_SCHEMA_VERSION) {
            exec_sql(s, "COMMIT");
            return 0;
        }
        for (const char *const *q = store_migrations[v]; *q; q++)
            if ((rc = exec_sql(s, *q))) goto out;
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, %lld)", v + 1,
                 (long long)clock_wall_ms());
        if ((rc = exec_sql(s, sql))) goto out;
        if ((rc = exec_sql(s, "COMMIT"))) goto out;
    }
out:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ============================================================ ops ======== */

static void sqlite_close(store_t *base)
{
    sqlite_store_t *s = sq(base);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    mem_free(s);
}

static int sqlite_schema_version(store_t *base)
{
    int v = 0;
    int rc = read_version(sq(base), &v);
    return rc ? rc : v;
}

static int run_simple(store_t *base, int which)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, which, &err);
    return st ? exec_stmt(s, st) : err;
}

static int sqlite_begin(store_t *base)
{
    return run_simple(base, ST_BEGIN);
}

static int sqlite_commit(store_t *base)
{
    return run_simple(base, ST_COMMIT);
}

static void sqlite_rollback(store_t *base)
{
    if (!sqlite3_get_autocommit(sq(base)->db)) run_simple(base, ST_ROLLBACK);
}

static int sqlite_ledger_insert(store_t *base, const store_ledger_row_t *r)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_LEDGER_INSERT, &err);
    if (!st) return err;
    sqlite3_bind_text(st, 1, r->id, (int)strnlen(r->id, sizeof r->id), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->ts_ms);
    bind_text(st, 3, r->tenant);
    bind_text(st, 4, r->team);
    bind_text(st, 5, r->feature);
    bind_text(st, 6, r->session);
    bind_text(st, 7, r->tier);
    bind_text(st, 8, r->model);
    bind_text(st, 9, r->status);
    sqlite3_bind_int(st, 10, r->http_status);
    sqlite3_bind_int64(st, 11, r->tokens_in);
    sqlite3_bind_int64(st, 12, r->tokens_out);
    sqlite3_bind_int64(st, 13, store_usd_to_nusd(r->cost_usd));
    sqlite3_bind_int64(st, 14, store_usd_to_nusd(r->cloud_cost_usd));
    sqlite3_bind_int64(st, 15, r->latency_ms);
    sqlite3_bind_int64(st, 16, r->ttft_ms);
    sqlite3_bind_int(st, 17, r->failover);
    sqlite3_bind_int(st, 18, r->escalated);
    sqlite3_bind_int(st, 19, r->degraded);
    sqlite3_bind_int(st, 20, r->external);
    sqlite3_bind_int64(st, 21, r->pii_types);
    bind_text(st, 22, r->pii_names);
    bind_text(st, 23, r->reasons);
    sqlite3_bind_int64(st, 24, r->pii_kept_local);
    sqlite3_bind_int64(st, 25, r->pii_masked);
    sqlite3_bind_int64(st, 26, r->pii_allowed);
    sqlite3_bind_int64(st, 27, r->pii_blocked);
    bind_text(st, 28, r->version);
    bind_text(st, 29, r->first_tier);
    bind_text(st, 30, r->first_version);
    bind_text(st, 31, r->cloud_tier);
    bind_text(st, 32, r->cloud_version);
    if (r->has_confidence)
        sqlite3_bind_double(st, 33, r->confidence);
    else
        sqlite3_bind_null(st, 33);
    return exec_stmt(s, st);
}

/* The bound for a "since" parameter: 0 (or less) means all time. */
static int64_t since_bound(int64_t since_ms)
{
    return since_ms > 0 ? since_ms : INT64_MIN;
}

/* Reads the current result row into row (zeroed by the caller). */
typedef void (*row_read_fn)(sqlite3_stmt *st, void *row);

/* Runs statement `which` with ?1 bound to since and reads every row with read into
 * a grown array of elem-sized, zeroed rows. 0 with *out owned (free()) and *n_out
 * set, or a negative error (SY_ETOOBIG past STORE_QUERY_MAX_ROWS). */
static int query_rows(sqlite_store_t *s, int which, int64_t since, size_t elem, row_read_fn read,
                      void **out, size_t *n_out)
{
    int err = 0;
    sqlite3_stmt *st = stmt(s, which, &err);
    if (!st) return err;
    sqlite3_bind_int64(st, 1, since);
    char *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((err = store_grow((void **)&rows, &cap, n + 1, elem))) break;
        memset(rows + n * elem, 0, elem);
        read(st, rows + n++ * elem);
    }
    if (!err && rc != SQLITE_DONE) err = fail(s, rc);
    sqlite3_reset(st);
    if (err) {
        mem_free(rows);
        return err;
    }
    *out = rows;
    *n_out = n;
    return 0;
}

static void cost_row(sqlite3_stmt *st, void *row)
{
    store_cost_row_t *c = row;
    col_text(st, 0, c->key, sizeof c->key);
    c->requests = (uint64_t)sqlite3_column_int64(st, 1);
    c->tokens_in = (uint64_t)sqlite3_column_int64(st, 2);
    c->tokens_out = (uint64_t)sqlite3_column_int64(st, 3);
    int64_t cost = sqlite3_column_int64(st, 4), cloud = sqlite3_column_int64(st, 5);
    c->cost_usd = store_nusd_to_usd(cost);
    c->cloud_cost_usd = store_nusd_to_usd(cloud);
    c->saved_usd = store_nusd_to_usd(cloud - cost);
}

static int sqlite_costs_query(store_t *base, store_group_t by, int64_t since_ms,
                              store_cost_row_t **out, size_t *n_out)
{
    return query_rows(sq(base), ST_COSTS_TEAM + (int)by, since_bound(since_ms), sizeof **out,
                      cost_row, (void **)out, n_out);
}

static void audit_row(sqlite3_stmt *st, void *row)
{
    store_audit_row_t *a = row;
    col_text(st, 0, a->id, sizeof a->id);
    a->ts_ms = sqlite3_column_int64(st, 1);
    col_text(st, 2, a->tier, sizeof a->tier);
    a->pii_types = (uint32_t)sqlite3_column_int64(st, 3);
    col_text(st, 4, a->pii_names, sizeof a->pii_names);
    a->pii_allowed = (uint32_t)sqlite3_column_int64(st, 5);
    a->pii_masked = (uint32_t)sqlite3_column_int64(st, 6);
}

static int sqlite_audit_query(store_t *base, int64_t since_ms, store_audit_row_t **out,
                              size_t *n_out)
{
    return query_rows(sq(base), ST_AUDIT, since_bound(since_ms), sizeof **out, audit_row,
                      (void **)out, n_out);
}

static void ledger_id_row(sqlite3_stmt *st, void *row)
{
    store_ledger_id_t *r = row;
    col_text(st, 0, r->id, sizeof r->id);
}

static int sqlite_ledger_ids(store_t *base, int64_t since_ms, store_ledger_id_t **out,
                             size_t *n_out)
{
    return query_rows(sq(base), ST_LEDGER_IDS, since_ms, sizeof **out, ledger_id_row, (void **)out,
                      n_out);
}

static void session_cols(sqlite3_stmt *st, store_session_t *out);

static void private_session_row(sqlite3_stmt *st, void *row)
{
    store_session_t *r = row;
    col_text(st, 0, r->id, sizeof r->id);
    r->turns = (uint32_t)sqlite3_column_int64(st, 1);
    col_text(st, 2, r->tiers, sizeof r->tiers);
    r->is_private = sqlite3_column_int(st, 3) != 0;
    r->updated_ms = sqlite3_column_int64(st, 4);
}

static int sqlite_sessions_private(store_t *base, int64_t since_ms, store_session_t **out,
                                   size_t *n_out)
{
    return query_rows(sq(base), ST_SESSIONS_PRIVATE, since_ms, sizeof **out, private_session_row,
                      (void **)out, n_out);
}

static void traffic_row(sqlite3_stmt *st, void *row)
{
    store_traffic_row_t *t = row;
    t->ts_ms = sqlite3_column_int64(st, 0);
    col_text(st, 1, t->tier, sizeof t->tier);
    col_text(st, 2, t->status, sizeof t->status);
    t->tokens_in = (uint32_t)sqlite3_column_int64(st, 3);
    t->tokens_out = (uint32_t)sqlite3_column_int64(st, 4);
    t->cost_usd = store_nusd_to_usd(sqlite3_column_int64(st, 5));
    t->cloud_cost_usd = store_nusd_to_usd(sqlite3_column_int64(st, 6));
    t->escalated = sqlite3_column_int(st, 7) != 0;
    col_text(st, 8, t->reasons, sizeof t->reasons);
}

static int sqlite_traffic_query(store_t *base, int64_t since_ms, store_traffic_row_t **out,
                                size_t *n_out)
{
    return query_rows(sq(base), ST_TRAFFIC, since_bound(since_ms), sizeof **out, traffic_row,
                      (void **)out, n_out);
}

static void version_cell(sqlite3_stmt *st, void *row)
{
    store_version_cell_t *c = row;
    col_text(st, 0, c->first_tier, sizeof c->first_tier);
    col_text(st, 1, c->first_version, sizeof c->first_version);
    col_text(st, 2, c->tier, sizeof c->tier);
    col_text(st, 3, c->version, sizeof c->version);
    col_text(st, 4, c->cloud_tier, sizeof c->cloud_tier);
    col_text(st, 5, c->cloud_version, sizeof c->cloud_version);
    c->first_ms = sqlite3_column_int64(st, 6);
    c->last_ms = sqlite3_column_int64(st, 7);
    c->requests = (uint64_t)sqlite3_column_int64(st, 8);
    c->errors = (uint64_t)sqlite3_column_int64(st, 9);
    c->escalated = (uint64_t)sqlite3_column_int64(st, 10);
    c->confidences = (uint64_t)sqlite3_column_int64(st, 11);
    c->confidence_sum = sqlite3_column_double(st, 12);
    c->cost_usd = store_nusd_to_usd(sqlite3_column_int64(st, 13));
}

static int sqlite_versions_query(store_t *base, int64_t since_ms, store_version_cell_t **out,
                                 size_t *n_out)
{
    return query_rows(sq(base), ST_VERSIONS, since_bound(since_ms), sizeof **out, version_cell,
                      (void **)out, n_out);
}

/* Reads (turns, tiers, private, updated_ms) from the current row into out. */
static void session_cols(sqlite3_stmt *st, store_session_t *out)
{
    out->turns = (uint32_t)sqlite3_column_int64(st, 0);
    col_text(st, 1, out->tiers, sizeof out->tiers);
    out->is_private = sqlite3_column_int(st, 2) != 0;
    out->updated_ms = sqlite3_column_int64(st, 3);
}

static int sqlite_session_get(store_t *base, const char *id, store_session_t *out)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_SESSION_GET, &err);
    if (!st) return err;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        store_copy_str(out->id, sizeof out->id, id);
        session_cols(st, out);
        err = 0;
    } else {
        err = rc == SQLITE_DONE ? SY_ENOTFOUND : fail(s, rc);
    }
    sqlite3_reset(st);
    return err;
}

static int sqlite_session_put(store_t *base, const store_session_t *sess)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_SESSION_PUT, &err);
    if (!st) return err;
    sqlite3_bind_text(st, 1, sess->id, (int)strnlen(sess->id, sizeof sess->id), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, sess->turns);
    sqlite3_bind_text(st, 3, sess->tiers, (int)strnlen(sess->tiers, sizeof sess->tiers),
                      SQLITE_STATIC);
    sqlite3_bind_int(st, 4, sess->is_private);
    sqlite3_bind_int64(st, 5, sess->updated_ms);
    return exec_stmt(s, st);
}

static int sqlite_session_turn(store_t *base, const char *id, const char *tier, bool had_pii,
                               int64_t now_ms, store_session_t *out)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_SESSION_TURN, &err);
    if (!st) return err;
    bind_text(st, 1, id);
    bind_text(st, 2, tier);
    sqlite3_bind_int(st, 3, had_pii);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_int(st, 5, (int)sizeof out->tiers - 1);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (out) {
            memset(out, 0, sizeof *out);
            store_copy_str(out->id, sizeof out->id, id);
            session_cols(st, out);
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
    }
    err = rc == SQLITE_DONE ? 0 : fail(s, rc);
    sqlite3_reset(st);
    return err;
}

static int sqlite_session_prune(store_t *base, int64_t before_ms, uint64_t *n_deleted)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_SESSION_PRUNE, &err);
    if (!st) return err;
    sqlite3_bind_int64(st, 1, before_ms);
    err = exec_stmt(s, st);
    *n_deleted = err ? 0 : (uint64_t)sqlite3_changes64(s->db);
    return err;
}

static int sqlite_feedback_put(store_t *base, const char *request_id, double reward, int64_t ts_ms)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_FEEDBACK_PUT, &err);
    if (!st) return err;
    bind_text(st, 1, request_id);
    sqlite3_bind_double(st, 2, reward);
    sqlite3_bind_int64(st, 3, ts_ms);
    return exec_stmt(s, st);
}

static void feedback_row(sqlite3_stmt *st, void *row)
{
    store_feedback_t *f = row;
    col_text(st, 0, f->request_id, sizeof f->request_id);
    f->reward = sqlite3_column_double(st, 1);
    f->ts_ms = sqlite3_column_int64(st, 2);
}

static int sqlite_feedback_list(store_t *base, int64_t since_ms, store_feedback_t **out,
                                size_t *n_out)
{
    return query_rows(sq(base), ST_FEEDBACK_LIST, since_bound(since_ms), sizeof **out, feedback_row,
                      (void **)out, n_out);
}

static int sqlite_kv_put(store_t *base, const char *ns, const char *key, const void *blob,
                         size_t len)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_KV_PUT, &err);
    if (!st) return err;
    bind_text(st, 1, ns);
    bind_text(st, 2, key);
    sqlite3_bind_blob64(st, 3, blob, len, SQLITE_STATIC);
    return exec_stmt(s, st);
}

static int sqlite_kv_get(store_t *base, const char *ns, const char *key, void **blob, size_t *len)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_KV_GET, &err);
    if (!st) return err;
    bind_text(st, 1, ns);
    bind_text(st, 2, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char *copy = mem_alloc(n + 1);
        if (n) memcpy(copy, p, n);
        copy[n] = 0;
        *blob = copy;
        *len = n;
        err = 0;
    } else {
        err = rc == SQLITE_DONE ? SY_ENOTFOUND : fail(s, rc);
    }
    sqlite3_reset(st);
    return err;
}

static int sqlite_kv_delete(store_t *base, const char *ns, const char *key)
{
    sqlite_store_t *s = sq(base);
    int err = 0;
    sqlite3_stmt *st = stmt(s, ST_KV_DELETE, &err);
    if (!st) return err;
    bind_text(st, 1, ns);
    bind_text(st, 2, key);
    return exec_stmt(s, st);
}

/* One write transaction (BEGIN IMMEDIATE takes the file's write lock, so another
 * connection's add waits for it): read, add, write back. */
static int sqlite_kv_add_f64(store_t *base, const char *ns, const char *key, const double *delta,
                             size_t n, double **total, size_t *n_total)
{
    int rc = sqlite_begin(base);
    if (rc) return rc;
    void *blob = NULL;
    size_t len = 0;
    rc = sqlite_kv_get(base, ns, key, &blob, &len);
    if (rc == SY_ENOTFOUND) rc = 0, len = 0;
    if (!rc) rc = store_f64_add(blob, len, delta, n, total, n_total);
    mem_free(blob);
    if (!rc) rc = sqlite_kv_put(base, ns, key, *total, *n_total * sizeof(double));
    if (!rc) rc = sqlite_commit(base);
    if (rc) {
        sqlite_rollback(base);
        free(*total);
        *total = NULL;
        *n_total = 0;
    }
    return rc;
}

/* ========================================================= budgets ===== */

/* Runs a budget statement bound as (key, period, a, b) and reads the one row it
 * returns, if any. 0 with a row, SY_ENOTFOUND without, or an error. */
static int budget_step(sqlite_store_t *s, int which, const char *key, int64_t period_ms, int64_t a,
                       int64_t b, int64_t *spent, int64_t *reserved)
{
    int err = 0;
    sqlite3_stmt *st = stmt(s, which, &err);
    if (!st) return err;
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, period_ms);
    if (which != ST_BUDGET_GET) {
        sqlite3_bind_int64(st, 3, a);
        sqlite3_bind_int64(st, 4, b);
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *spent = sqlite3_column_int64(st, 0);
        *reserved = sqlite3_column_int64(st, 1);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
        err = rc == SQLITE_DONE ? 0 : fail(s, rc);
    } else {
        err = rc == SQLITE_DONE ? SY_ENOTFOUND : fail(s, rc);
    }
    sqlite3_reset(st);
    return err;
}

static int sqlite_budget_get(store_t *base, const char *key, int64_t period_ms, int64_t *spent,
                             int64_t *reserved)
{
    int rc = budget_step(sq(base), ST_BUDGET_GET, key, period_ms, 0, 0, spent, reserved);
    return rc == SY_ENOTFOUND ? 0 : rc;
}

static int sqlite_budget_reserve(store_t *base, const char *key, int64_t period_ms,
                                 int64_t limit_nusd, int64_t amount_nusd, int64_t *spent,
                                 int64_t *reserved)
{
    int rc = budget_step(sq(base), ST_BUDGET_RESERVE, key, period_ms, amount_nusd, limit_nusd,
                         spent, reserved);
    if (rc != SY_ENOTFOUND) return rc;
    /* The conflict update's WHERE refused it: report the totals as they stand. */
    rc = sqlite_budget_get(base, key, period_ms, spent, reserved);
    return rc ? rc : SY_EFULL;
}

static int sqlite_budget_settle(store_t *base, const char *key, int64_t period_ms,
                                int64_t reserved_nusd, int64_t actual_nusd, int64_t *spent,
                                int64_t *reserved)
{
    return budget_step(sq(base), ST_BUDGET_SETTLE, key, period_ms, reserved_nusd, actual_nusd,
                       spent, reserved);
}

static const store_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .schema_version = sqlite_schema_version,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .ledger_insert = sqlite_ledger_insert,
    .costs_query = sqlite_costs_query,
    .audit_query = sqlite_audit_query,
    .traffic_query = sqlite_traffic_query,
    .versions_query = sqlite_versions_query,
    .ledger_ids = sqlite_ledger_ids,
    .sessions_private = sqlite_sessions_private,
    .session_get = sqlite_session_get,
    .session_put = sqlite_session_put,
    .session_turn = sqlite_session_turn,
    .session_prune = sqlite_session_prune,
    .feedback_put = sqlite_feedback_put,
    .feedback_list = sqlite_feedback_list,
    .kv_put = sqlite_kv_put,
    .kv_get = sqlite_kv_get,
    .kv_delete = sqlite_kv_delete,
    .kv_add_f64 = sqlite_kv_add_f64,
    .budget_reserve = sqlite_budget_reserve,
    .budget_settle = sqlite_budget_settle,
    .budget_get = sqlite_budget_get,
};

/* ============================================================ open ======= */

/* Opens or creates the database file at path (":memory:" for a private in-memory
 * store), sets WAL / synchronous / busy timeout and migrates the schema. The first
 * statement is what reads the file header, so a file that is not a SQLite database
 * is reported here with the path in the message. Returns owned or NULL + err. */
store_t *store_sqlite_open(const char *path, char *err, size_t errlen)
{
    sqlite_store_t *s = mem_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "store sqlite:%s: cannot open: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, SQLITE_BUSY_TIMEOUT_MS);
    if ((rc = exec_sql(s, "PRAGMA journal_mode = WAL")) ||
        (rc = exec_sql(s, "PRAGMA synchronous = NORMAL")) || (rc = migrate(s))) {
        if (rc == SY_ECORRUPT)
            snprintf(err, errlen,
                     "store sqlite:%s: %s: the file is not a switchyard store or is corrupt "
                     "(move it away to start a new one)",
                     path, s->base.errmsg);
        else
            snprintf(err, errlen, "store sqlite:%s: %s", path, s->base.errmsg);
        goto fail;
    }
    return &s->base;
fail:
    sqlite3_close(s->db);
    mem_free(s);
    return NULL;
}
