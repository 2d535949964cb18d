/* test_store_writer.c — the batched ledger writer: concurrent producers lose
 * nothing, a full queue refuses and counts, flush makes rows visible, the timer
 * commits on its own, free drains, long strings are cut safely. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "store/store.h"

typedef struct fx {
    char dir[64];
    char path[128];
    char url[160];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/sy-writer-XXXXXX");
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

static store_ledger_writer_t *writer_ok(const fx_t *f, size_t qmax, uint32_t flush_ms)
{
    char err[256] = "";
    store_ledger_writer_t *w = store_ledger_writer_new(f->url, qmax, flush_ms, err, sizeof err);
    if (!w) fail_msg("writer_new: %s", err);
    return w;
}

/* First column of sql on a fresh raw connection (-1 if the table does not exist). */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static store_ledger_row_t row_make(int producer, int i)
{
    store_ledger_row_t r = {0};
    snprintf(r.id, sizeof r.id, "req-%d-%06d", producer, i);
    r.ts_ms = 1000 + i;
    r.team = producer ? "blue" : "red";
    r.tier = "edge";
    r.status = "ok";
    r.tokens_in = 1;
    r.tokens_out = 2;
    r.cost_usd = 0.000001;
    r.cloud_cost_usd = 0.000003;
    return r;
}

/* ---------------------------------------------------------- producers ---- */

enum { PER_THREAD = 4000 };

typedef struct producer {
    store_ledger_writer_t *w;
    int id;
    int refused;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        store_ledger_row_t r = row_make(p->id, i);
        /* Strings on the stack that die right after the push: the writer must copy. */
        char team[32];
        snprintf(team, sizeof team, "team-%d", p->id);
        r.team = team;
        if (store_ledger_writer_push(p->w, &r) != 0) p->refused++;
    }
    return NULL;
}

static void test_concurrent_push(void **state)
{
    fx_t *f = *state;
    /* Queue big enough that nothing may be refused. */
    store_ledger_writer_t *w = writer_ok(f, 2 * PER_THREAD, 20);
    producer_t p[2] = {{w, 0, 0}, {w, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(p[0].refused + p[1].refused, 0);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), 2 * PER_THREAD);
    assert_int_equal(store_ledger_writer_dropped(w), 0);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), 2 * PER_THREAD);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(DISTINCT id) FROM ledger"), 2 * PER_THREAD);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger WHERE team = 'team-1'"),
                     PER_THREAD);
    store_ledger_writer_free(w);
}

/* A small queue under the same load: whatever is not refused lands, and
 * accepted + refused = pushed. */
static void test_concurrent_small_queue(void **state)
{
    fx_t *f = *state;
    store_ledger_writer_t *w = writer_ok(f, 16, 1);
    producer_t p[2] = {{w, 0, 0}, {w, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    store_ledger_writer_flush(w);
    uint64_t refused = (uint64_t)(p[0].refused + p[1].refused);
    assert_int_equal(store_ledger_writer_dropped(w), refused);
    assert_int_equal(store_ledger_writer_committed(w) + refused, 2 * PER_THREAD);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"),
                     2 * PER_THREAD - (int64_t)refused);
    store_ledger_writer_free(w);
}

/* ---------------------------------------------------------- full queue ---- */

static void test_queue_full(void **state)
{
    fx_t *f = *state;
    enum { Q = 8 };
    store_ledger_writer_t *w = writer_ok(f, Q, 1);
    /* Hold the write lock from another connection: the writer cannot commit, so
     * queued rows stay queued. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < Q; i++) {
        store_ledger_row_t r = row_make(0, i);
        assert_int_equal(store_ledger_writer_push(w, &r), 0);
    }
    for (int i = 0; i < 3; i++) {
        store_ledger_row_t r = row_make(1, i);
        assert_int_equal(store_ledger_writer_push(w, &r), SY_EFULL);
    }
    assert_int_equal(store_ledger_writer_dropped(w), 3);
    assert_int_equal(store_ledger_writer_committed(w), 0);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), Q);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), Q);
    /* Room again after the commit. */
    store_ledger_row_t r = row_make(2, 0);
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_free(w);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), Q + 1);
}

/* -------------------------------------------------------------- flush ---- */

static void test_flush_makes_visible(void **state)
{
    fx_t *f = *state;
    /* An hour-long flush interval and a large batch: only flush() can commit. */
    store_ledger_writer_t *w = writer_ok(f, 4096, 3600 * 1000);
    for (int i = 0; i < 5; i++) {
        store_ledger_row_t r = row_make(0, i);
        assert_int_equal(store_ledger_writer_push(w, &r), 0);
    }
    usleep(50 * 1000);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), 0);
    store_ledger_writer_flush(w);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), 5);
    store_ledger_writer_flush(w); /* nothing pending: returns at once */
    store_ledger_writer_free(w);
}

static void test_timer_commits(void **state)
{
    fx_t *f = *state;
    store_ledger_writer_t *w = writer_ok(f, 4096, 30);
    store_ledger_row_t r = row_make(0, 1);
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    int64_t n = 0;
    for (int i = 0; i < 200 && n != 1; i++) { /* up to 2 s */
        usleep(10 * 1000);
        n = raw_int(f->path, "SELECT COUNT(*) FROM ledger");
    }
    assert_int_equal(n, 1);
    store_ledger_writer_free(w);
}

static void test_free_drains(void **state)
{
    fx_t *f = *state;
    store_ledger_writer_t *w = writer_ok(f, 4096, 3600 * 1000);
    for (int i = 0; i < 300; i++) {
        store_ledger_row_t r = row_make(0, i);
        assert_int_equal(store_ledger_writer_push(w, &r), 0);
    }
    store_ledger_writer_free(w);
    store_ledger_writer_free(NULL);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger"), 300);
}

/* ------------------------------------------------------------ strings ---- */

static void test_long_strings_truncated(void **state)
{
    fx_t *f = *state;
    store_ledger_writer_t *w = writer_ok(f, 16, 10);
    char reasons[5000];
    /* Two-byte UTF-8 characters so a cut could land mid-character. */
    for (size_t i = 0; i + 2 < sizeof reasons; i += 2)
        reasons[i] = '\xc3', reasons[i + 1] = '\xa9';
    reasons[sizeof reasons - 2] = 0;
    store_ledger_row_t r = row_make(0, 0);
    r.reasons = reasons;
    r.pii_names = "EMAIL_ADDRESS";
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_flush(w);
    int64_t len = raw_int(f->path, "SELECT length(CAST(reasons AS BLOB)) FROM ledger");
    assert_true(len > 900 && len < 1024);
    assert_int_equal(len % 2, 0); /* whole characters only */
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger WHERE pii_names = "
                                      "'EMAIL_ADDRESS'"),
                     1);
    store_ledger_writer_free(w);
}

/* Client-supplied metadata that is not UTF-8 is stored with '?' in place of the
 * bad bytes, valid multi-byte characters kept. */
static void test_invalid_utf8(void **state)
{
    fx_t *f = *state;
    store_ledger_writer_t *w = writer_ok(f, 16, 10);
    store_ledger_row_t r = row_make(0, 0);
    r.team = "t\xff\xfe-\xc3\xa9-\xed\xa0\x80-\xc3";
    assert_int_equal(store_ledger_writer_push(w, &r), 0);
    store_ledger_writer_flush(w);
    assert_int_equal(store_ledger_writer_committed(w), 1);
    assert_int_equal(raw_int(f->path, "SELECT COUNT(*) FROM ledger WHERE team = "
                                      "'t?\?-\xc3\xa9-?\?\?-?'"), /* \? avoids trigraphs */
                     1);
    store_ledger_writer_free(w);
}

static void test_bad_url(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_ledger_writer_new("nosuch:x", 16, 10, err, sizeof err));
    assert_non_null(strstr(err, "nosuch:x"));
    fx_t f;
    strcpy(f.dir, "/tmp/sy-writer-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.url, sizeof f.url, "sqlite:%s/q.db", f.dir);
    err[0] = 0;
    assert_null(store_ledger_writer_new(f.url, 0, 10, err, sizeof err));
    assert_non_null(strstr(err, "queue_max"));
    nftw(f.dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    /* A private in-memory database would hide every row from the readers. */
    assert_null(store_ledger_writer_new("sqlite::memory:", 16, 10, err, sizeof err));
    assert_non_null(strstr(err, "private"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_small_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_makes_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_strings_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test(test_bad_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
