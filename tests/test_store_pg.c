/* test_store_pg.c — the PostgreSQL backend against a throwaway server: initdb into
 * a temporary folder, a server listening only on a Unix socket in that folder, run
 * as an unprivileged user when the tests run as root. Skipped (with the reason)
 * when the server binaries are absent or switchyard was built without libpq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "store/store.h"
#include "budget_race.h"
#include "kv_sums_race.h"

typedef struct pgfx {
    char dir[64];
    char bindir[256];
    char as_user[64]; /* "runuser -u postgres -- " when root, else "" */
    int port;
    char url[256];
    const char *skip_reason; /* non-NULL: every test skips with this */
} pgfx_t;

static pgfx_t G;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Finds initdb/pg_ctl/psql: $SY_PG_BINDIR, the newest /usr/lib/postgresql/N/bin,
 * or the folder of initdb on PATH. */
static int find_bindir(char *out, size_t cap)
{
    const char *env = getenv("SY_PG_BINDIR");
    if (env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(out, cap, "%s", g.gl_pathv[g.gl_pathc - 1]);
        globfree(&g);
        *strrchr(out, '/') = 0;
        return 0;
    }
    globfree(&g);
    FILE *p = popen("command -v initdb 2>/dev/null", "r");
    if (!p) return -1;
    char line[256] = "";
    char *got = fgets(line, sizeof line, p);
    pclose(p);
    if (!got || !strchr(line, '/')) return -1;
    line[strcspn(line, "\n")] = 0;
    *strrchr(line, '/') = 0;
    snprintf(out, cap, "%s", line);
    return 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Starts the throwaway server, or sets G.skip_reason. Returns -1 only on a setup
 * failure that is not about missing software. */
static int pg_start(void)
{
    char err[256];
    store_t *probe = store_open("postgresql://probe", err, sizeof err);
    store_close(probe);
    if (strstr(err, "without PostgreSQL support")) {
        G.skip_reason = "switchyard built without libpq (add libpq to the Makefile's PKGS)";
        return 0;
    }
    if (find_bindir(G.bindir, sizeof G.bindir)) {
        G.skip_reason = "PostgreSQL server binaries (initdb, pg_ctl) not found";
        return 0;
    }
    strcpy(G.dir, "/tmp/sy-pg-XXXXXX");
    if (!mkdtemp(G.dir)) return -1;
    if (geteuid() == 0) {
        /* The server refuses to run as root. */
        struct passwd *pw = getpwnam("postgres");
        if (!pw) pw = getpwnam("nobody");
        if (!pw || chown(G.dir, pw->pw_uid, pw->pw_gid) != 0) {
            G.skip_reason = "running as root and no postgres/nobody user to run the server";
            return 0;
        }
        snprintf(G.as_user, sizeof G.as_user, "runuser -u %s -- ", pw->pw_name);
    }
    G.port = 20000 + (int)(getpid() % 20000); /* names the socket file only */
    if (sh("%s%s/initdb -D %s/data -A trust -U sy -E UTF8 --locale=C --no-sync >%s/initdb.log "
           "2>&1",
           G.as_user, G.bindir, G.dir, G.dir)) {
        G.skip_reason = "initdb failed (see the log it left in /tmp/sy-pg-*)";
        return 0;
    }
    if (sh("%s%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-k %s -p %d -c "
           "listen_addresses='' -F\" start >/dev/null 2>&1",
           G.as_user, G.bindir, G.dir, G.dir, G.dir, G.port)) {
        G.skip_reason = "pg_ctl start failed";
        return 0;
    }
    snprintf(G.url, sizeof G.url, "postgresql://sy@/postgres?host=%s&port=%d", G.dir, G.port);
    return 0;
}

static void pg_stop(void)
{
    if (G.url[0])
        sh("%s%s/pg_ctl -D %s/data -m immediate -w stop >/dev/null 2>&1", G.as_user, G.bindir,
           G.dir);
    if (G.dir[0]) nftw(G.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Empties the tables before each test (they exist once any store opened). */
static int setup(void **state)
{
    (void)state;
    sh("%s%s/psql -q -h %s -p %d -U sy -d postgres -c "
       "'DO $$ BEGIN IF to_regclass($q$ledger$q$) IS NOT NULL THEN "
       "TRUNCATE ledger, sessions, feedback, kv, budgets; END IF; END $$' >/dev/null 2>&1",
       G.as_user, G.bindir, G.dir, G.port);
    return 0;
}

static store_t *open_pg(void)
{
    char err[512] = "";
    store_t *s = store_open(G.url, err, sizeof err);
    if (!s) fail_msg("store_open: %s", err);
    return s;
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

/* ------------------------------------------------------------------ tests -- */

static void test_pg_schema(void **state)
{
    (void)state;
    store_t *s = open_pg();
    assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_t *s2 = open_pg(); /* a second instance: no second migration */
    assert_int_equal(store_schema_version(s2), STORE_SCHEMA_VERSION);
    store_close(s2);
    store_close(s);
    char err[256] = "";
    char bad[300];
    snprintf(bad, sizeof bad, "postgresql://sy@/nosuchdb?host=%s&port=%d", G.dir, G.port);
    assert_null(store_open(bad, err, sizeof err));
    assert_non_null(strstr(err, "nosuchdb"));
}

static void test_pg_group_totals(void **state)
{
    (void)state;
    store_t *s = open_pg();
    enum { N = 300 };
    static const char *teams[] = {"search", "support", "ads"};
    store_ledger_row_t rows[N];
    int64_t want_cost[3] = {0}, want_cloud[3] = {0};
    uint64_t want_req[3] = {0}, want_tin[3] = {0};
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int t = (int)((seed >> 33) % 3);
        int64_t cost = (int64_t)((seed >> 20) % 5000000);
        int64_t cloud = cost + (int64_t)((seed >> 7) % 9000);
        rows[i] = row_make(i, teams[t], 1000 + i, cost, cloud);
        want_req[t]++, want_tin[t] += rows[i].tokens_in;
        want_cost[t] += cost, want_cloud[t] += cloud;
    }
    rows[5].pii_types = 3, rows[5].external = true, rows[5].pii_names = "EMAIL_ADDRESS,PHONE";
    rows[5].pii_allowed = 1, rows[5].pii_masked = 2;
    rows[6].pii_types = 3, rows[6].external = false, rows[6].pii_kept_local = 3;
    rows[7].pii_types = 2, rows[7].external = true, rows[7].pii_masked = 2; /* not in clear */
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
        assert_int_equal(out[k].requests, want_req[t]);
        assert_int_equal(out[k].tokens_in, want_tin[t]);
        assert_int_equal(llround(out[k].cost_usd * 1e9), want_cost[t]);
        assert_int_equal(llround(out[k].saved_usd * 1e9), want_cloud[t] - want_cost[t]);
    }
    free(out);
    assert_int_equal(store_costs_query(s, STORE_GROUP_TIER, 1000 + N - 10, &out, &n), 0);
    uint64_t req = 0;
    for (size_t k = 0; k < n; k++)
        req += out[k].requests;
    assert_int_equal(req, 10);
    free(out);
    store_audit_row_t *a;
    assert_int_equal(store_audit_query(s, 0, &a, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].id, "chatcmpl-5");
    assert_string_equal(a[0].pii_names, "EMAIL_ADDRESS,PHONE");
    assert_int_equal(a[0].pii_allowed, 1);
    assert_int_equal(a[0].pii_masked, 2);
    free(a);
    store_close(s);
}

/* Version cells on PostgreSQL: the same grouping and sums as SQLite, NULL
 * confidences out of the count, a 0/1 column summed as an integer. */
static void test_pg_versions(void **state)
{
    (void)state;
    store_t *s = open_pg();
    store_ledger_row_t rows[4];
    for (int i = 0; i < 4; i++) {
        rows[i] = row_make(i, "t", 5000 + i, 1000, 0);
        rows[i].tier = "edge";
        rows[i].version = "v1";
        rows[i].first_tier = "edge";
        rows[i].first_version = "v1";
        rows[i].cloud_tier = "cloud";
        rows[i].cloud_version = "c1";
        rows[i].has_confidence = i != 3;
        rows[i].confidence = 0.75f;
    }
    rows[2].status = "error";
    rows[1].tier = "cloud", rows[1].version = "c1", rows[1].escalated = true;
    assert_int_equal(store_ledger_append(s, rows, 4), 0);
    store_version_cell_t *c;
    size_t n;
    assert_int_equal(store_versions_query(s, 5000, &c, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c[i].first_version, "v1");
        if (!strcmp(c[i].tier, "cloud")) {
            assert_int_equal(c[i].escalated, 1);
            assert_int_equal(c[i].requests, 1);
        } else {
            assert_int_equal(c[i].requests, 3);
            assert_int_equal(c[i].errors, 1);
            assert_int_equal(c[i].confidences, 2);
            assert_true(fabs(c[i].confidence_sum - 1.5) < 1e-6);
            assert_int_equal(llround(c[i].cost_usd * 1e9), 3000);
            assert_int_equal(c[i].first_ms, 5000);
            assert_int_equal(c[i].last_ms, 5003);
        }
    }
    free(c);
    store_close(s);
}

/* A database at schema version 1 (no per-type PII actions) is migrated in place:
 * PII on an external tier stays a violation, refused rows count as blocked. */
static void test_pg_migrate_v1(void **state)
{
    (void)state;
    static const char v1[] =
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_ms BIGINT NOT NULL);\n"
        "INSERT INTO schema_version VALUES (1, 0);\n"
        "CREATE TABLE ledger (id TEXT NOT NULL, ts_ms BIGINT NOT NULL, tenant TEXT NOT NULL"
        " DEFAULT '', team TEXT NOT NULL DEFAULT '', feature TEXT NOT NULL DEFAULT '', session"
        " TEXT NOT NULL DEFAULT '', tier TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT"
        " '', status TEXT NOT NULL DEFAULT '', http_status INTEGER NOT NULL DEFAULT 0, tokens_in"
        " BIGINT NOT NULL DEFAULT 0, tokens_out BIGINT NOT NULL DEFAULT 0, cost_nusd BIGINT NOT"
        " NULL DEFAULT 0, cloud_cost_nusd BIGINT NOT NULL DEFAULT 0, latency_ms BIGINT NOT NULL"
        " DEFAULT 0, ttft_ms BIGINT NOT NULL DEFAULT 0, failover INTEGER NOT NULL DEFAULT 0,"
        " escalated INTEGER NOT NULL DEFAULT 0, degraded INTEGER NOT NULL DEFAULT 0, external"
        " INTEGER NOT NULL DEFAULT 0, pii_types BIGINT NOT NULL DEFAULT 0, pii_names TEXT NOT"
        " NULL DEFAULT '', reasons TEXT NOT NULL DEFAULT '');\n"
        "CREATE INDEX ledger_ts ON ledger (ts_ms);\n"
        "CREATE INDEX ledger_pii_external ON ledger (ts_ms) WHERE pii_types <> 0 AND external"
        " <> 0;\n"
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, turns BIGINT NOT NULL DEFAULT 0, tiers TEXT"
        " NOT NULL DEFAULT '', private INTEGER NOT NULL DEFAULT 0, updated_ms BIGINT NOT NULL"
        " DEFAULT 0);\n"
        "CREATE TABLE feedback (request_id TEXT NOT NULL, reward DOUBLE PRECISION NOT NULL,"
        " ts_ms BIGINT NOT NULL);\n"
        "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,"
        " PRIMARY KEY (ns, key));\n"
        "INSERT INTO ledger (id, ts_ms, http_status, external, pii_types, pii_names) VALUES"
        " ('a', 1, 200, 1, 1, 'EMAIL_ADDRESS'), ('b', 2, 200, 0, 2, 'PHONE_NUMBER'),"
        " ('c', 3, 403, 0, 8, 'US_SSN');\n";
    char path[400];
    snprintf(path, sizeof path, "%s/v1.sql", G.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(v1, f);
    fclose(f);
    chmod(path, 0644);
    sh("%s%s/psql -q -h %s -p %d -U sy -d postgres -c 'DROP DATABASE IF EXISTS v1db' >/dev/null "
       "2>&1",
       G.as_user, G.bindir, G.dir, G.port);
    assert_int_equal(sh("%s%s/psql -q -h %s -p %d -U sy -d postgres -c 'CREATE DATABASE v1db' "
                        ">/dev/null 2>&1",
                        G.as_user, G.bindir, G.dir, G.port),
                     0);
    assert_int_equal(sh("%s%s/psql -q -v ON_ERROR_STOP=1 -h %s -p %d -U sy -d v1db -f %s "
                        ">/dev/null 2>&1",
                        G.as_user, G.bindir, G.dir, G.port, path),
                     0);
    char url[400], err[512] = "";
    snprintf(url, sizeof url, "postgresql://sy@/v1db?host=%s&port=%d", G.dir, G.port);
    store_t *s = store_open(url, err, sizeof err);
    if (!s) fail_msg("store_open: %s", err);
    assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_audit_row_t *a;
    size_t n;
    assert_int_equal(store_audit_query(s, 0, &a, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].id, "a");
    assert_int_equal(a[0].pii_allowed, 1);
    free(a);
    /* New rows carry their actions. */
    store_ledger_row_t r = row_make(9, "t", 10, 1, 1);
    r.pii_types = 2, r.external = true, r.pii_masked = 2;
    assert_int_equal(store_ledger_append(s, &r, 1), 0);
    assert_int_equal(store_audit_query(s, 0, &a, &n), 0);
    assert_int_equal(n, 1);
    free(a);
    store_close(s);
}

static void test_pg_sessions_kv_feedback(void **state)
{
    (void)state;
    store_t *s = open_pg();
    store_session_t ss;
    assert_int_equal(store_session_get(s, "s1", &ss), SY_ENOTFOUND);
    assert_int_equal(store_session_turn(s, "s1", "edge", false, 10, &ss), 0);
    assert_int_equal(store_session_turn(s, "s1", "cloud", true, 20, &ss), 0);
    assert_int_equal(store_session_turn(s, "s1", "edge", false, 30, &ss), 0);
    assert_int_equal(ss.turns, 3);
    assert_string_equal(ss.tiers, "edge,cloud");
    assert_true(ss.is_private);
    store_session_t p = {.id = "s2", .turns = 4, .tiers = "edge", .updated_ms = 1};
    assert_int_equal(store_session_put(s, &p), 0);
    assert_int_equal(store_session_get(s, "s2", &ss), 0);
    assert_int_equal(ss.turns, 4);
    uint64_t del;
    assert_int_equal(store_session_prune(s, 5, &del), 0);
    assert_int_equal(del, 1);

    unsigned char blob[1000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 13);
    assert_int_equal(store_kv_put(s, "bandit", "k", blob, sizeof blob), 0);
    assert_int_equal(store_kv_put(s, "bandit", "k", blob, 10), 0);
    void *got;
    size_t len;
    assert_int_equal(store_kv_get(s, "bandit", "k", &got, &len), 0);
    assert_int_equal(len, 10);
    assert_memory_equal(got, blob, 10);
    free(got);
    assert_int_equal(store_kv_delete(s, "bandit", "k"), 0);
    assert_int_equal(store_kv_get(s, "bandit", "k", &got, &len), SY_ENOTFOUND);

    assert_int_equal(store_feedback_put(s, "r1", 0.125, 100), 0);
    assert_int_equal(store_feedback_put(s, "r2", -1, 200), 0);
    store_feedback_t *fb;
    size_t n;
    assert_int_equal(store_feedback_list(s, 150, &fb, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(fb[0].request_id, "r2");
    assert_true(fb[0].reward == -1);
    free(fb);
    store_close(s);
}

/* Two instances recording turns of one session at the same time lose none. */
typedef struct turner {
    int n;
    int errors;
} turner_t;

static void *turn_many(void *arg)
{
    turner_t *t = arg;
    char err[256];
    store_t *s = store_open(G.url, err, sizeof err);
    if (!s) {
        t->errors = t->n;
        return NULL;
    }
    for (int i = 0; i < t->n; i++)
        if (store_session_turn(s, "shared", i % 2 ? "edge" : "cloud", false, i, NULL)) t->errors++;
    store_close(s);
    return NULL;
}

static void test_pg_concurrent_instances(void **state)
{
    (void)state;
    store_t *s = open_pg();
    turner_t t[2] = {{200, 0}, {200, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, turn_many, &t[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(t[0].errors + t[1].errors, 0);
    store_session_t ss;
    assert_int_equal(store_session_get(s, "shared", &ss), 0);
    assert_int_equal(ss.turns, 400);
    store_close(s);
}

typedef struct producer {
    store_ledger_writer_t *w;
    int id, n, refused;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        store_ledger_row_t r = row_make(p->id * 100000 + i, p->id == 1 ? "a" : "b", i, 1000, 2000);
        if (store_ledger_writer_push(p->w, &r)) p->refused++;
    }
    return NULL;
}

static void test_pg_budgets(void **state)
{
    (void)state;
    store_t *s = open_pg();
    budget_basic_check(s);
    store_close(s);
    budget_race_check(G.url);
}

static void test_pg_kv_sums(void **state)
{
    (void)state;
    store_close(open_pg());
    kv_sums_check(G.url);
}

static void test_pg_writer(void **state)
{
    (void)state;
    store_t *s = open_pg();
    char err[256];
    store_ledger_writer_t *w = store_ledger_writer_new(G.url, 4096, 20, err, sizeof err);
    assert_non_null(w);
    producer_t p[2] = {{w, 1, 1500, 0}, {w, 2, 1500, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, produce, &p[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(p[0].refused + p[1].refused, 0);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), 3000);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].requests + out[1].requests, 3000);
    assert_int_equal(llround((out[0].saved_usd + out[1].saved_usd) * 1e9), 3000 * 1000);
    free(out);
    store_ledger_writer_free(w);
    store_close(s);
}

/* A bad row in a pipelined batch fails the batch cleanly and the connection keeps
 * working; the writer path cleans such text so nothing is lost. */
static void test_pg_bad_text(void **state)
{
    (void)state;
    store_t *s = open_pg();
    store_ledger_row_t rows[3];
    for (int i = 0; i < 3; i++)
        rows[i] = row_make(i, "ok", 10 + i, 1, 2);
    rows[1].team = "bad\xff";
    assert_int_equal(store_ledger_append(s, rows, 3), SY_EINVAL);
    assert_non_null(strstr(store_errmsg(s), "UTF8"));
    rows[1].team = "ok";
    assert_int_equal(store_ledger_append(s, rows, 3), 0);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].requests, 3); /* the failed batch left nothing */
    free(out);

    char err[256];
    store_ledger_writer_t *w = store_ledger_writer_new(G.url, 64, 10, err, sizeof err);
    assert_non_null(w);
    store_ledger_row_t r = row_make(99, "w\xc0\xafx", 50, 1, 2);
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), 1);
    store_ledger_writer_free(w);
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 50, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].key, "w??x");
    free(out);
    store_close(s);
}

/* The server drops every connection (a restart or failover): reads and
 * not-yet-prepared writes repeat on a fresh connection, the writer's retry
 * recommits its batch, and nothing is lost. */
static void test_pg_reconnect(void **state)
{
    (void)state;
    store_t *s = open_pg();
    char err[256];
    store_ledger_writer_t *w = store_ledger_writer_new(G.url, 64, 5, err, sizeof err);
    assert_non_null(w);
    store_ledger_row_t r = row_make(1, "x", 1, 5, 9);
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_flush(w);
    store_cost_row_t *out;
    size_t n;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    free(out);

    assert_int_equal(sh("%s%s/psql -q -h %s -p %d -U sy -d postgres -c \"SELECT "
                        "pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                        "pg_backend_pid() AND backend_type = 'client backend'\" >/dev/null 2>&1",
                        G.as_user, G.bindir, G.dir, G.port),
                     0);

    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0); /* a read */
    assert_int_equal(n, 1);
    free(out);
    assert_int_equal(store_kv_put(s, "ns", "k", "v", 1), 0); /* first use: prepares */
    r = row_make(2, "x", 2, 5, 9);
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), 2);
    assert_int_equal(store_ledger_writer_dropped(w), 0);
    store_ledger_writer_free(w);
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &out, &n), 0);
    assert_int_equal(out[0].requests, 2);
    free(out);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pg_schema, setup),
        cmocka_unit_test_setup(test_pg_group_totals, setup),
        cmocka_unit_test_setup(test_pg_migrate_v1, setup),
        cmocka_unit_test_setup(test_pg_versions, setup),
        cmocka_unit_test_setup(test_pg_sessions_kv_feedback, setup),
        cmocka_unit_test_setup(test_pg_concurrent_instances, setup),
        cmocka_unit_test_setup(test_pg_budgets, setup),
        cmocka_unit_test_setup(test_pg_kv_sums, setup),
        cmocka_unit_test_setup(test_pg_writer, setup),
        cmocka_unit_test_setup(test_pg_bad_text, setup),
        cmocka_unit_test_setup(test_pg_reconnect, setup),
    };
    /* Without a server the whole file is skipped the TAP way (a plan of 0 with the
     * reason), which prove reports as skipped rather than failed. */
    if (pg_start() != 0) {
        pg_stop();
        return 1;
    }
    if (G.skip_reason) {
        printf("1..0 # SKIP %s\n", G.skip_reason);
        pg_stop();
        return 0;
    }
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pg_stop();
    return rc;
}
