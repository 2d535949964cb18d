/* test_store_sqlite.c — the SQLite store: schema, ledger round trip, cost totals,
 * since filter, audit selection, reopen, corrupt files, sessions, feedback, kv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "store/store.h"
#include "budget_race.h"
#include "kv_sums_race.h"

/* ------------------------------------------------------------ fixture ---- */

typedef struct fx {
    char dir[64];
    char path[128]; /* database file */
    char url[160];  /* "sqlite:" + path */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/sy-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/ledger.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static store_t *open_ok(const fx_t *f)
{
    char err[256] = "";
    store_t *s = store_open(f->url, err, sizeof err);
    if (!s) fail_msg("store_open(%s): %s", f->url, err);
    return s;
}

/* Runs one query on a separate raw connection and returns its first column. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s", msg);
    sqlite3_close(db);
}

static store_ledger_row_t row_make(int i, const char *team, int64_t ts_ms, int64_t cost_nusd,
                                   int64_t cloud_nusd)
{
    store_ledger_row_t r = {0};
    snprintf(r.id, sizeof r.id, "chatcmpl-%d", i);
    r.ts_ms = ts_ms;
    r.tenant = (i % 2) ? "acme" : "globex";
    r.team = team;
    r.feature = (i % 3) ? "chat" : "search";
    r.tier = (i % 4) ? "edge" : "cloud";
    r.model = "m-1";
    r.status = "ok";
    r.http_status = 200;
    r.tokens_in = (uint32_t)(10 + i);
    r.tokens_out = (uint32_t)(100 + 2 * i);
    r.cost_usd = (double)cost_nusd / 1e9;
    r.cloud_cost_usd = (double)cloud_nusd / 1e9;
    return r;
}

/* Converts back to nano-USD for exact comparisons. */
static int64_t nusd(double usd)
{
    return llround(usd * 1e9);
}

/* ------------------------------------------------------------- schema ---- */

static void test_schema_created(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_close(s);
    /* WAL is a property of the file, visible to any connection. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    const char *tables[] = {"ledger", "sessions", "feedback", "kv", "schema_version", "budgets"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='%s'", tables[i]);
        assert_int_equal(raw_int(f->path, sql), 1);
    }
    const char *indexes[] = {"ledger_ts", "ledger_pii_allowed", "sessions_updated", "feedback_ts",
                             "feedback_request"};
    for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_master WHERE type='index' AND name='%s'", indexes[i]);
        assert_int_equal(raw_int(f->path, sql), 1);
    }
    /* Opening again does not migrate twice. */
    s = open_ok(f);
    store_close(s);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM schema_version"), STORE_SCHEMA_VERSION);
}

static void test_bad_urls(void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {"", "mysql://x", "sqlite:", "switchyard.db", "sqlite:/no/such/dir/x.db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_null(store_open(bad[i], err, sizeof err));
        assert_true(strlen(err) > 10);
    }
    store_group_t g;
    assert_int_equal(store_group_parse("team", &g), 0);
    assert_int_equal(g, STORE_GROUP_TEAM);
    assert_int_equal(store_group_parse("tier", &g), 0);
    assert_int_equal(g, STORE_GROUP_TIER);
    assert_int_equal(store_group_parse("teams", &g), SY_EINVAL);
    assert_int_equal(store_group_parse(NULL, &g), SY_EINVAL);
    assert_string_equal(store_group_name(STORE_GROUP_FEATURE), "feature");
}

/* --------------------------------------------------------------- ledger ---- */

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t r = row_make(7, "search", 1700000000123, 1234, 98765);
    r.session = "sess-1";
    r.http_status = 201;
    r.latency_ms = 321;
    r.ttft_ms = 45;
    r.failover = true;
    r.degraded = true;
    r.external = true;
    r.pii_types = (1u << 0) | (1u << 3);
    r.pii_names = "EMAIL_ADDRESS,US_SSN";
    r.reasons = "pii:EMAIL_ADDRESS->local_only,tier:edge";
    assert_int_equal(store_ledger_append(s, &r, 1), 0);
    store_close(s);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id, ts_ms, tenant, team, feature, session, tier,"
                                        " model, status, http_status, tokens_in, tokens_out,"
                                        " cost_nusd, cloud_cost_nusd, latency_ms, ttft_ms,"
                                        " failover, escalated, degraded, external, pii_types,"
                                        " pii_names, reasons FROM ledger",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
#define TXT(i) ((const char *)sqlite3_column_text(st, i))
    assert_string_equal(TXT(0), r.id);
    assert_int_equal(sqlite3_column_int64(st, 1), r.ts_ms);
    assert_string_equal(TXT(2), r.tenant);
    assert_string_equal(TXT(3), r.team);
    assert_string_equal(TXT(4), r.feature);
    assert_string_equal(TXT(5), "sess-1");
    assert_string_equal(TXT(6), r.tier);
    assert_string_equal(TXT(7), "m-1");
    assert_string_equal(TXT(8), "ok");
    assert_int_equal(sqlite3_column_int(st, 9), 201);
    assert_int_equal(sqlite3_column_int(st, 10), r.tokens_in);
    assert_int_equal(sqlite3_column_int(st, 11), r.tokens_out);
    assert_int_equal(sqlite3_column_int64(st, 12), 1234);
    assert_int_equal(sqlite3_column_int64(st, 13), 98765);
    assert_int_equal(sqlite3_column_int(st, 14), 321);
    assert_int_equal(sqlite3_column_int(st, 15), 45);
    assert_int_equal(sqlite3_column_int(st, 16), 1);
    assert_int_equal(sqlite3_column_int(st, 17), 0);
    assert_int_equal(sqlite3_column_int(st, 18), 1);
    assert_int_equal(sqlite3_column_int(st, 19), 1);
    assert_int_equal(sqlite3_column_int(st, 20), r.pii_types);
    assert_string_equal(TXT(21), r.pii_names);
    assert_string_equal(TXT(22), r.reasons);
#undef TXT
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Null strings are stored as "" and group under the empty key. */
static void test_null_strings(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t r = {.id = "x", .ts_ms = 5, .cost_usd = 0.5, .cloud_cost_usd = 2.0};
    assert_int_equal(store_ledger_append(s, &r, 1), 0);
    store_cost_row_t *rows;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].key, "");
    assert_int_equal(rows[0].requests, 1);
    assert_true(rows[0].saved_usd == 1.5);
    free(rows);
    store_close(s);
}

/* Many rows with varied costs: every group's totals equal the sums computed here
 * from the inputs, to the nano-dollar. */
static void test_group_totals(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    enum { N = 500 };
    static const char *teams[] = {"search", "support", "ads"};
    store_ledger_row_t rows[N];
    struct {
        uint64_t req, tin, tout;
        int64_t cost, cloud;
    } want[3] = {{0}};
    uint64_t seed = 42;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int t = (int)((seed >> 33) % 3);
        int64_t cost = (int64_t)((seed >> 20) % 5000000);     /* up to $0.005 */
        int64_t cloud = cost + (int64_t)((seed >> 7) % 9000); /* cloud >= cost */
        rows[i] = row_make(i, teams[t], 1000 + i, cost, cloud);
        want[t].req++;
        want[t].tin += rows[i].tokens_in;
        want[t].tout += rows[i].tokens_out;
        want[t].cost += cost;
        want[t].cloud += cloud;
    }
    assert_int_equal(store_ledger_append(s, rows, N), 0);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(n, 3);
    for (size_t k = 0; k < n; k++) {
        int t = -1;
        for (int j = 0; j < 3; j++)
            if (!strcmp(out[k].key, teams[j])) t = j;
        assert_true(t >= 0);
        assert_int_equal(out[k].requests, want[t].req);
        assert_int_equal(out[k].tokens_in, want[t].tin);
        assert_int_equal(out[k].tokens_out, want[t].tout);
        assert_int_equal(nusd(out[k].cost_usd), want[t].cost);
        assert_int_equal(nusd(out[k].cloud_cost_usd), want[t].cloud);
        assert_int_equal(nusd(out[k].saved_usd), want[t].cloud - want[t].cost);
        if (k > 0) assert_true(out[k - 1].cost_usd >= out[k].cost_usd); /* costliest first */
    }
    free(out);

    /* Every grouping partitions the same rows. */
    for (int g = STORE_GROUP_TEAM; g <= STORE_GROUP_TIER; g++) {
        assert_int_equal(store_costs_query(s, (store_group_t)g, 0, &out, &n), 0);
        uint64_t req = 0;
        int64_t cost = 0;
        for (size_t k = 0; k < n; k++)
            req += out[k].requests, cost += nusd(out[k].cost_usd);
        assert_int_equal(req, N);
        assert_int_equal(cost, want[0].cost + want[1].cost + want[2].cost);
        free(out);
    }
    assert_int_equal(store_costs_query(s, STORE_GROUP_TIER, 0, &out, &n), 0);
    assert_int_equal(n, 2); /* edge and cloud */
    free(out);
    store_close(s);
}

static void test_since_filter(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t rows[10];
    for (int i = 0; i < 10; i++)
        rows[i] = row_make(i, "t", 1000 * (i + 1), 1000, 3000);
    assert_int_equal(store_ledger_append(s, rows, 10), 0);
    store_cost_row_t *out;
    size_t n;
    /* ts 1000..10000; since 7000 keeps 7000, 8000, 9000, 10000 (inclusive). */
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 7000, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].requests, 4);
    assert_int_equal(nusd(out[0].cost_usd), 4000);
    assert_int_equal(nusd(out[0].saved_usd), 8000);
    free(out);
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 10001, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    store_close(s);
}

static void test_append_atomic(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t rows[3];
    for (int i = 0; i < 3; i++)
        rows[i] = row_make(i, "t", 1, 1, 1);
    assert_int_equal(store_ledger_append(s, rows, 3), 0);
    assert_int_equal(store_ledger_append(s, rows, 0), 0);
    store_close(s);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), 3);
}

static void test_reopen_persists(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t r = row_make(1, "persist", 77, 250000000, 1000000000);
    assert_int_equal(store_ledger_append(s, &r, 1), 0);
    store_close(s);
    s = open_ok(f);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].key, "persist");
    assert_true(out[0].cost_usd == 0.25);
    assert_true(out[0].saved_usd == 0.75);
    free(out);
    store_close(s);
}

static void test_memory_store(void **state)
{
    (void)state;
    char err[256];
    store_t *s = store_open("sqlite::memory:", err, sizeof err);
    assert_non_null(s);
    store_ledger_row_t r = row_make(1, "mem", 1, 10, 20);
    assert_int_equal(store_ledger_append(s, &r, 1), 0);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(n, 1);
    free(out);
    store_close(s);
}

/* ------------------------------------------------------- corrupt files ---- */

static void test_corrupt_file(void **state)
{
    fx_t *f = *state;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 8192; i++)
        fputc((i * 131 + 7) & 0xff, fp);
    fclose(fp);
    char err[512] = "";
    assert_null(store_open(f->url, err, sizeof err));
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "not a switchyard store"));
}

/* A real SQLite file whose pages were overwritten. */
static void test_damaged_pages(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t rows[200];
    for (int i = 0; i < 200; i++)
        rows[i] = row_make(i, "t", i, 1, 1);
    assert_int_equal(store_ledger_append(s, rows, 200), 0);
    store_close(s); /* last connection: checkpoints the WAL into the file */
    FILE *fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    assert_true(size > 4096 * 3);
    fseek(fp, 4096, SEEK_SET); /* page 2 onward; the header page stays valid */
    for (long i = 4096; i < size; i++)
        fputc(0x5A, fp);
    fclose(fp);
    char err[512] = "";
    s = store_open(f->url, err, sizeof err);
    if (s) {
        /* The header may still parse; then the damage shows on the first read. */
        store_cost_row_t *out = NULL;
        size_t n;
        int rc = store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n);
        assert_int_equal(rc, SY_ECORRUPT);
        assert_non_null(strstr(store_errmsg(s), "malformed"));
        store_close(s);
    } else {
        assert_non_null(strstr(err, f->path));
    }
}

static void test_newer_schema_refused(void **state)
{
    fx_t *f = *state;
    store_close(open_ok(f));
    raw_exec(f->path, "INSERT INTO schema_version VALUES (99, 0)");
    char err[512] = "";
    assert_null(store_open(f->url, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
}

/* --------------------------------------------------------------- audit ---- */

static void test_audit_selection(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t r[7];
    for (int i = 0; i < 7; i++)
        r[i] = row_make(i, "t", 100 * (i + 1), 1, 1);
    /* In clear on an external tier: a violation. */
    r[0].pii_types = 1, r[0].external = true, r[0].pii_names = "EMAIL_ADDRESS";
    r[0].pii_allowed = 1;
    r[1].pii_types = 2, r[1].pii_kept_local = 2; /* kept local: fine */
    r[2].pii_types = 0, r[2].external = true;    /* external, no PII: fine */
    /* One type in clear, one masked: only the one in clear is reported. */
    r[3].pii_types = 6, r[3].external = true, r[3].pii_names = "PHONE_NUMBER,CREDIT_CARD";
    r[3].pii_allowed = 4, r[3].pii_masked = 2;
    r[4].pii_types = 0, r[4].external = false;
    r[5].pii_types = 1u << 11, r[5].external = true, r[5].pii_allowed = 1u << 11;
    /* Masked only: the value left as a placeholder, not a violation. */
    r[6].pii_types = 1u << 6, r[6].external = true, r[6].pii_masked = 1u << 6;
    assert_int_equal(store_ledger_append(s, r, 7), 0);
    store_audit_row_t *out;
    size_t n;
    assert_int_equal(store_audit_query(s, 0, &out, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].id, "chatcmpl-0");
    assert_int_equal(out[0].ts_ms, 100);
    assert_string_equal(out[0].pii_names, "EMAIL_ADDRESS");
    assert_int_equal(out[0].pii_allowed, 1);
    assert_string_equal(out[1].id, "chatcmpl-3");
    assert_int_equal(out[1].pii_types, 6);
    assert_int_equal(out[1].pii_allowed, 4);
    assert_int_equal(out[1].pii_masked, 2);
    assert_string_equal(out[1].tier, r[3].tier);
    assert_string_equal(out[2].id, "chatcmpl-5");
    assert_string_equal(out[2].pii_names, "");
    assert_int_equal(out[2].pii_types, 1u << 11);
    free(out);
    assert_int_equal(store_audit_query(s, 200, &out, &n), 0);
    assert_int_equal(n, 2);
    free(out);
    assert_int_equal(store_audit_query(s, 601, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    /* Every action lands in its column. */
    assert_int_equal(raw_int(f->path, "SELECT SUM(pii_kept_local) FROM ledger"), 2);
    assert_int_equal(raw_int(f->path, "SELECT SUM(pii_masked) FROM ledger"), 2 + 64);
    store_close(s);
}

/* A database written at schema version 1 (no per-type actions) is migrated in
 * place: its rows keep what the audit reported before (PII on an external tier
 * counts as in clear), refused ones count as blocked, others as kept local. */
static void test_migrate_v1(void **state)
{
    fx_t *f = *state;
    static const char *const v1[] = {
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_ms INTEGER NOT NULL)",
        "INSERT INTO schema_version VALUES (1, 0)",
        "CREATE TABLE ledger (id TEXT NOT NULL, ts_ms BIGINT NOT NULL, tenant TEXT NOT NULL"
        " DEFAULT '', team TEXT NOT NULL DEFAULT '', feature TEXT NOT NULL DEFAULT '', session"
        " TEXT NOT NULL DEFAULT '', tier TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT"
        " '', status TEXT NOT NULL DEFAULT '', http_status INTEGER NOT NULL DEFAULT 0, tokens_in"
        " BIGINT NOT NULL DEFAULT 0, tokens_out BIGINT NOT NULL DEFAULT 0, cost_nusd BIGINT NOT"
        " NULL DEFAULT 0, cloud_cost_nusd BIGINT NOT NULL DEFAULT 0, latency_ms BIGINT NOT NULL"
        " DEFAULT 0, ttft_ms BIGINT NOT NULL DEFAULT 0, failover INTEGER NOT NULL DEFAULT 0,"
        " escalated INTEGER NOT NULL DEFAULT 0, degraded INTEGER NOT NULL DEFAULT 0, external"
        " INTEGER NOT NULL DEFAULT 0, pii_types BIGINT NOT NULL DEFAULT 0, pii_names TEXT NOT"
        " NULL DEFAULT '', reasons TEXT NOT NULL DEFAULT '')",
        "CREATE INDEX ledger_ts ON ledger (ts_ms)",
        "CREATE INDEX ledger_pii_external ON ledger (ts_ms) WHERE pii_types <> 0 AND external <> 0",
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, turns BIGINT NOT NULL DEFAULT 0, tiers TEXT"
        " NOT NULL DEFAULT '', private INTEGER NOT NULL DEFAULT 0, updated_ms BIGINT NOT NULL"
        " DEFAULT 0)",
        "CREATE TABLE feedback (request_id TEXT NOT NULL, reward DOUBLE PRECISION NOT NULL,"
        " ts_ms BIGINT NOT NULL)",
        "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (ns, key))",
        "INSERT INTO ledger (id, ts_ms, http_status, external, pii_types, pii_names) VALUES"
        " ('a', 1, 200, 1, 1, 'EMAIL_ADDRESS'), ('b', 2, 200, 0, 2, 'PHONE_NUMBER'),"
        " ('c', 3, 403, 0, 8, 'US_SSN'), ('d', 4, 200, 1, 0, '')",
    };
    for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++)
        raw_exec(f->path, v1[i]);
    store_t *s = open_ok(f);
    assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_audit_row_t *out;
    size_t n;
    assert_int_equal(store_audit_query(s, 0, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, "a");
    assert_int_equal(out[0].pii_allowed, 1);
    assert_string_equal(out[0].pii_names, "EMAIL_ADDRESS");
    free(out);
    store_close(s);
    assert_int_equal(raw_int(f->path, "SELECT pii_kept_local FROM ledger WHERE id = 'b'"), 2);
    assert_int_equal(raw_int(f->path, "SELECT pii_blocked FROM ledger WHERE id = 'c'"), 8);
    assert_int_equal(raw_int(f->path, "SELECT pii_allowed + pii_kept_local + pii_blocked"
                                      " FROM ledger WHERE id = 'd'"),
                     0);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM sqlite_master WHERE"
                                      " name = 'ledger_pii_external'"),
                     0);
}

/* Version cells: rows group by (first tier/version, serving tier/version, cascade
 * target/version); errors, escalations, confidences and cost are summed per cell,
 * NULL confidences left out of the count and the sum, refused rows left out. */
static void test_versions_cells(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_ledger_row_t rows[6];
    for (int i = 0; i < 6; i++) {
        rows[i] = row_make(i, "t", 1000 + i, 1000 * (i + 1), 0);
        rows[i].tier = "edge";
        rows[i].version = "v1";
        rows[i].first_tier = "edge";
        rows[i].first_version = "v1";
        rows[i].cloud_tier = "cloud";
        rows[i].cloud_version = "c1";
        rows[i].has_confidence = true;
        rows[i].confidence = 0.5f;
    }
    rows[1].tier = "cloud"; /* escalated */
    rows[1].version = "c1";
    rows[1].escalated = true;
    rows[2].status = "error";
    rows[3].has_confidence = false;
    rows[4].first_version = "v2"; /* a later version */
    rows[4].version = "v2";
    rows[4].confidence = 0.25f;
    rows[5].tier = ""; /* refused before any tier */
    rows[5].first_tier = "";
    assert_int_equal(store_ledger_append(s, rows, 6), 0);
    store_version_cell_t *c;
    size_t n;
    assert_int_equal(store_versions_query(s, 0, &c, &n), 0);
    assert_int_equal(n, 3);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c[i].first_tier, "edge");
        assert_string_equal(c[i].cloud_version, "c1");
        if (!strcmp(c[i].tier, "cloud")) { /* the escalated row */
            assert_string_equal(c[i].first_version, "v1");
            assert_int_equal(c[i].requests, 1);
            assert_int_equal(c[i].escalated, 1);
            assert_int_equal(nusd(c[i].cost_usd), 2000);
            seen |= 1;
        } else if (!strcmp(c[i].first_version, "v1")) { /* rows 0, 2, 3 */
            assert_string_equal(c[i].version, "v1");
            assert_int_equal(c[i].requests, 3);
            assert_int_equal(c[i].errors, 1);
            assert_int_equal(c[i].escalated, 0);
            assert_int_equal(c[i].confidences, 2);
            assert_true(fabs(c[i].confidence_sum - 1.0) < 1e-6);
            assert_int_equal(nusd(c[i].cost_usd), 1000 + 3000 + 4000);
            assert_int_equal(c[i].first_ms, 1000);
            assert_int_equal(c[i].last_ms, 1003);
            seen |= 2;
        } else {
            assert_string_equal(c[i].first_version, "v2");
            assert_int_equal(c[i].requests, 1);
            assert_true(fabs(c[i].confidence_sum - 0.25) < 1e-6);
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    free(c);
    /* The since bound applies. */
    assert_int_equal(store_versions_query(s, 1004, &c, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].first_version, "v2");
    free(c);
    store_close(s);
}

/* ------------------------------------------------------------ sessions ---- */

static void test_sessions(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_session_t ss;
    assert_int_equal(store_session_get(s, "nope", &ss), SY_ENOTFOUND);
    assert_int_equal(store_session_turn(s, "s1", "edge", false, 1000, &ss), 0);
    assert_int_equal(ss.turns, 1);
    assert_string_equal(ss.tiers, "edge");
    assert_false(ss.is_private);
    assert_int_equal(store_session_turn(s, "s1", "cloud", false, 2000, NULL), 0);
    assert_int_equal(store_session_turn(s, "s1", "edge", true, 3000, &ss), 0);
    assert_int_equal(store_session_turn(s, "s1", "", false, 4000, &ss), 0);
    assert_int_equal(ss.turns, 4);
    assert_string_equal(ss.tiers, "edge,cloud");
    assert_true(ss.is_private); /* once private, stays private */
    assert_int_equal(ss.updated_ms, 4000);
    assert_int_equal(store_session_turn(s, "s1", "a,b", false, 1, NULL), SY_EINVAL);
    memset(&ss, 0, sizeof ss);
    assert_int_equal(store_session_get(s, "s1", &ss), 0);
    assert_string_equal(ss.id, "s1");
    assert_int_equal(ss.turns, 4);
    assert_string_equal(ss.tiers, "edge,cloud");
    assert_true(ss.is_private);
    /* A tier that is a suffix of a known one is still new. */
    assert_int_equal(store_session_turn(s, "s1", "ge", false, 5000, &ss), 0);
    assert_string_equal(ss.tiers, "edge,cloud,ge");

    store_session_t p = {.id = "s2", .turns = 9, .tiers = "cloud", .updated_ms = 10};
    assert_int_equal(store_session_put(s, &p), 0);
    assert_int_equal(store_session_get(s, "s2", &ss), 0);
    assert_int_equal(ss.turns, 9);
    assert_string_equal(ss.tiers, "cloud");
    assert_false(ss.is_private);
    uint64_t del = 99;
    assert_int_equal(store_session_prune(s, 100, &del), 0);
    assert_int_equal(del, 1);
    assert_int_equal(store_session_get(s, "s2", &ss), SY_ENOTFOUND);
    assert_int_equal(store_session_get(s, "s1", &ss), 0);
    store_close(s);
}

static void test_session_tiers_cap(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    store_session_t ss;
    char tier[64];
    for (int i = 0; i < 100; i++) {
        snprintf(tier, sizeof tier, "tier-number-%03d", i);
        assert_int_equal(store_session_turn(s, "big", tier, false, i, &ss), 0);
    }
    assert_int_equal(ss.turns, 100);
    assert_true(strlen(ss.tiers) < sizeof ss.tiers);
    assert_int_equal(strncmp(ss.tiers, "tier-number-000,tier-number-001", 31), 0);
    store_close(s);
}

/* ------------------------------------------------------ feedback & kv ---- */

static void test_feedback(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    assert_int_equal(store_feedback_put(s, "r1", 1.0, 100), 0);
    assert_int_equal(store_feedback_put(s, "r2", -0.5, 200), 0);
    assert_int_equal(store_feedback_put(s, "r3", 0.25, 300), 0);
    assert_int_equal(store_feedback_put(s, "r4", NAN, 300), SY_EINVAL);
    assert_int_equal(store_feedback_put(s, "", 1, 300), SY_EINVAL);
    store_feedback_t *out;
    size_t n;
    assert_int_equal(store_feedback_list(s, 200, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].request_id, "r2");
    assert_true(out[0].reward == -0.5);
    assert_int_equal(out[1].ts_ms, 300);
    free(out);
    store_close(s);
}

static void test_kv(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    unsigned char blob[300];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 7); /* has NULs */
    void *got;
    size_t len;
    assert_int_equal(store_kv_get(s, "bandit", "linucb", &got, &len), SY_ENOTFOUND);
    assert_null(got);
    assert_int_equal(store_kv_put(s, "bandit", "linucb", blob, sizeof blob), 0);
    assert_int_equal(store_kv_put(s, "features", "linucb", "other", 5), 0);
    assert_int_equal(store_kv_get(s, "bandit", "linucb", &got, &len), 0);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(got, blob, sizeof blob);
    free(got);
    assert_int_equal(store_kv_put(s, "bandit", "linucb", "v2", 2), 0);
    assert_int_equal(store_kv_get(s, "bandit", "linucb", &got, &len), 0);
    assert_int_equal(len, 2);
    assert_string_equal(got, "v2");
    free(got);
    assert_int_equal(store_kv_put(s, "bandit", "empty", NULL, 0), 0);
    assert_int_equal(store_kv_get(s, "bandit", "empty", &got, &len), 0);
    assert_int_equal(len, 0);
    free(got);
    assert_int_equal(store_kv_delete(s, "bandit", "linucb"), 0);
    assert_int_equal(store_kv_get(s, "bandit", "linucb", &got, &len), SY_ENOTFOUND);
    assert_int_equal(store_kv_get(s, "features", "linucb", &got, &len), 0);
    assert_int_equal(len, 5);
    free(got);
    assert_int_equal(store_kv_delete(s, "bandit", "linucb"), 0);
    store_close(s);
}

/* ------------------------------------------------------------ budgets ---- */

static void test_budget_basic(void **state)
{
    fx_t *f = *state;
    store_t *s = open_ok(f);
    budget_basic_check(s);
    store_close(s);
}

static void test_budget_race(void **state)
{
    fx_t *f = *state;
    store_close(open_ok(f));
    budget_race_check(f->url);
}

static void test_kv_sums_race(void **state)
{
    fx_t *f = *state;
    store_close(open_ok(f));
    kv_sums_check(f->url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_created, setup, teardown),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_totals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persists, setup, teardown),
        cmocka_unit_test(test_memory_store),
        cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_cells, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_tiers_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_sums_race, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
