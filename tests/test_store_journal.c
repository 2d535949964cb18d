/* test_store_journal.c — ledger journals: rows appended survive to a replay that
 * inserts each once (rows the store already has are skipped), a torn tail keeps the
 * good rows, rotation deletes a sealed file only once the writer has settled it
 * with nothing dropped, and a live owner's file is left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "store/journal.h"
#include "store/store.h"

static char g_dir[64], g_jdir[128], g_url[160];

static int setup(void **state)
{
    strcpy(g_dir, "/tmp/sy-journal-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_jdir, sizeof g_jdir, "%s/j", g_dir);
    snprintf(g_url, sizeof g_url, "sqlite:%s/ledger.db", g_dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd);
}

static store_ledger_row_t row_n(int i, char *id)
{
    snprintf(id, 40, "chatcmpl-test%06d", i);
    store_ledger_row_t r = {0};
    memcpy(r.id, id, strlen(id) + 1);
    r.ts_ms = 1700000000000 + i;
    r.tenant = "acme";
    r.team = "search";
    r.tier = "cloud";
    r.model = "big-model";
    r.status = "ok";
    r.http_status = 200;
    r.tokens_in = (uint32_t)i;
    r.tokens_out = 7;
    r.cost_usd = 0.000123 * i;
    r.cloud_cost_usd = 0.5;
    r.external = true;
    r.pii_types = 5;
    r.pii_names = "EMAIL_ADDRESS,PERSON";
    r.reasons = "forced:cloud";
    return r;
}

static size_t count_journals(void)
{
    DIR *d = opendir(g_jdir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".journal")) n++;
    if (d) closedir(d);
    return n;
}

static void test_replay_once(void **state)
{
    char err[300] = "", id[40];
    store_t *s = store_open(g_url, err, sizeof err);
    assert_non_null(s);
    store_journal_t *j = store_journal_open(g_jdir, 0, false, err, sizeof err);
    assert_non_null(j);
    for (int i = 0; i < 100; i++) {
        store_ledger_row_t r = row_n(i, id);
        assert_int_equal(store_journal_append(j, &r), 0);
        if (i < 40) assert_int_equal(store_ledger_append(s, &r, 1), 0); /* committed already */
    }
    store_journal_close(j); /* as a crash leaves it */
    uint64_t rows, dup, bad;
    assert_int_equal(store_journal_replay(g_jdir, s, &rows, &dup, &bad, err, sizeof err), 0);
    assert_int_equal(rows, 60);
    assert_int_equal(dup, 40);
    assert_int_equal(bad, 0);
    assert_int_equal(count_journals(), 0);
    store_ledger_id_t *ids;
    size_t n;
    assert_int_equal(store_ledger_ids_since(s, 0, &ids, &n), 0);
    assert_int_equal(n, 100);
    free(ids);
    store_cost_row_t *cr;
    assert_int_equal(store_costs_query(s, STORE_GROUP_TEAM, 0, &cr, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(cr[0].key, "search");
    assert_int_equal(cr[0].tokens_in, 99 * 100 / 2);
    free(cr);
    store_close(s);
}

/* The version fields, the confidence and the PII action masks survive a replay. */
static void test_replay_versions(void **state)
{
    char err[300] = "", id[40];
    store_t *s = store_open(g_url, err, sizeof err);
    assert_non_null(s);
    store_journal_t *j = store_journal_open(g_jdir, 3, false, err, sizeof err);
    assert_non_null(j);
    for (int i = 0; i < 4; i++) {
        store_ledger_row_t r = row_n(500 + i, id);
        r.version = "c9";
        r.first_tier = "edge";
        r.first_version = "v7";
        r.cloud_tier = "cloud";
        r.cloud_version = "c9";
        r.escalated = true;
        r.has_confidence = i < 3;
        r.confidence = 0.25f;
        r.pii_allowed = 1;
        r.pii_masked = 4;
        assert_int_equal(store_journal_append(j, &r), 0);
    }
    store_journal_close(j);
    uint64_t rows, dup, bad;
    assert_int_equal(store_journal_replay(g_jdir, s, &rows, &dup, &bad, err, sizeof err), 0);
    assert_int_equal(rows, 4);
    store_version_cell_t *c;
    size_t n;
    assert_int_equal(store_versions_query(s, 1700000000500, &c, &n), 0); /* this test's rows */
    assert_int_equal(n, 1);
    assert_string_equal(c[0].first_tier, "edge");
    assert_string_equal(c[0].first_version, "v7");
    assert_string_equal(c[0].version, "c9");
    assert_string_equal(c[0].cloud_version, "c9");
    assert_int_equal(c[0].escalated, 4);
    assert_int_equal(c[0].confidences, 3);
    assert_true(c[0].confidence_sum > 0.749 && c[0].confidence_sum < 0.751);
    free(c);
    store_audit_row_t *a;
    assert_int_equal(store_audit_query(s, 1700000000500, &a, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(a[0].pii_allowed, 1);
    assert_int_equal(a[0].pii_masked, 4);
    free(a);
    store_close(s);
}

static void test_torn_tail(void **state)
{
    char err[300] = "", id[40], path[600];
    store_t *s = store_open(g_url, err, sizeof err);
    store_journal_t *j = store_journal_open(g_jdir, 1, true, err, sizeof err);
    for (int i = 200; i < 210; i++) {
        store_ledger_row_t r = row_n(i, id);
        assert_int_equal(store_journal_append(j, &r), 0);
    }
    store_journal_close(j);
    /* Cut the last record in half, as a power loss could. */
    DIR *d = opendir(g_jdir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".journal")) snprintf(path, sizeof path, "%s/%s", g_jdir, e->d_name);
    closedir(d);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 20), 0);
    uint64_t rows, dup, bad;
    assert_int_equal(store_journal_replay(g_jdir, s, &rows, &dup, &bad, err, sizeof err), 0);
    assert_int_equal(rows, 9);
    assert_int_equal(bad, 1);
    store_close(s);
}

static void test_rotate(void **state)
{
    char err[300] = "", id[40];
    store_journal_t *j = store_journal_open(g_jdir, 2, false, err, sizeof err);
    store_ledger_row_t r = row_n(300, id);
    assert_int_equal(store_journal_append(j, &r), 0);
    store_journal_rotate(j, 10, 9, 0); /* sealed at pushed 10; writer settled 9 */
    assert_int_equal(count_journals(), 2);
    store_journal_rotate(j, 10, 9, 0); /* nothing new: no seal, not settled yet */
    assert_int_equal(count_journals(), 2);
    store_journal_rotate(j, 10, 10, 0); /* settled, nothing dropped: deleted */
    assert_int_equal(count_journals(), 1);
    assert_int_equal(store_journal_append(j, &r), 0);
    store_journal_rotate(j, 20, 15, 3);
    store_journal_rotate(j, 20, 20, 4); /* a row was dropped meanwhile: kept for replay */
    assert_int_equal(count_journals(), 2);
    store_journal_close(j);
    store_journal_clear(g_jdir);
    assert_int_equal(count_journals(), 0);
}

/* A file another live process holds (its flock) is not replayed; once released it is. */
static void test_live_owner_skipped(void **state)
{
    char err[300] = "", id[40];
    store_t *s = store_open(g_url, err, sizeof err);
    store_journal_t *j = store_journal_open(g_jdir, 3, false, err, sizeof err);
    store_ledger_row_t r = row_n(400, id);
    assert_int_equal(store_journal_append(j, &r), 0);
    /* flock is per open file description: a second open in this process is as
     * foreign to it as another process. */
    uint64_t rows, dup, bad;
    assert_int_equal(store_journal_replay(g_jdir, s, &rows, &dup, &bad, err, sizeof err), 0);
    assert_int_equal(rows, 0);
    assert_int_equal(count_journals(), 1);
    store_journal_close(j);
    assert_int_equal(store_journal_replay(g_jdir, s, &rows, &dup, &bad, err, sizeof err), 0);
    assert_int_equal(rows, 1);
    assert_int_equal(count_journals(), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_once),        cmocka_unit_test(test_replay_versions),
        cmocka_unit_test(test_torn_tail),          cmocka_unit_test(test_rotate),
        cmocka_unit_test(test_live_owner_skipped),
    };
    return cmocka_run_group_tests_name("journal", tests, setup, teardown);
}
