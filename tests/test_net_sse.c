/* test_net_sse.c — SSE parser: line endings, multi-line data, comments, event names,
 * caps, and the same stream split at every byte offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "net/sse.h"

/* Collects events as "event|data\n" lines. */
static void collect(void *arg, const char *event, const char *data, size_t len)
{
    buf_t *b = arg;
    buf_printf(b, "%s|", event);
    buf_append(b, data, len);
    buf_putc(b, '\n');
    assert_int_equal(data[len], 0); /* NUL-terminated for convenience */
}

static const char *STREAM = ": comment line\r\n"
                            "data: {\"a\":1}\r\n\r\n"
                            "event: delta\n"
                            "data: line one\n"
                            "data:line two\n"
                            "id: 7\n"
                            "retry: 100\n\n"
                            "data\r\r" /* field without colon: empty data line, CR endings */
                            "data:  two spaces\n\n"
                            "event: ignored\n\n" /* no data: not dispatched, event name reset */
                            "data: [DONE]\n\n";

static const char *EXPECT = "|{\"a\":1}\n"
                            "delta|line one\nline two\n"
                            "|\n"
                            "| two spaces\n"
                            "|[DONE]\n";

static void test_sse_whole(void **state)
{
    (void)state;
    sse_parser_t p;
    sse_parser_init(&p, 1024);
    buf_t out;
    buf_init(&out, 1 << 16);
    assert_int_equal(sse_parser_feed(&p, STREAM, strlen(STREAM), collect, &out), 0);
    assert_string_equal(out.data, EXPECT);
    buf_deinit(&out);
    sse_parser_deinit(&p);
}

static void test_sse_every_split(void **state)
{
    (void)state;
    size_t n = strlen(STREAM);
    for (size_t cut = 0; cut <= n; cut++) {
        for (size_t cut2 = cut; cut2 <= n; cut2 += 7) {
            sse_parser_t p;
            sse_parser_init(&p, 1024);
            buf_t out;
            buf_init(&out, 1 << 16);
            assert_int_equal(sse_parser_feed(&p, STREAM, cut, collect, &out), 0);
            assert_int_equal(sse_parser_feed(&p, STREAM + cut, cut2 - cut, collect, &out), 0);
            assert_int_equal(sse_parser_feed(&p, STREAM + cut2, n - cut2, collect, &out), 0);
            if (strcmp(out.data ? out.data : "", EXPECT)) {
                fprintf(stderr, "split at %zu/%zu gave:\n%s\n", cut, cut2, out.data);
                fail();
            }
            buf_deinit(&out);
            sse_parser_deinit(&p);
        }
    }
}

static void test_sse_byte_by_byte(void **state)
{
    (void)state;
    sse_parser_t p;
    sse_parser_init(&p, 1024);
    buf_t out;
    buf_init(&out, 1 << 16);
    for (size_t i = 0; STREAM[i]; i++)
        assert_int_equal(sse_parser_feed(&p, STREAM + i, 1, collect, &out), 0);
    assert_string_equal(out.data, EXPECT);
    buf_deinit(&out);
    sse_parser_deinit(&p);
}

static void test_sse_line_cap(void **state)
{
    (void)state;
    sse_parser_t p;
    sse_parser_init(&p, 16);
    buf_t out;
    buf_init(&out, 1 << 16);
    /* Exactly at the cap is fine, in one slice or split. */
    assert_int_equal(sse_parser_feed(&p, "data: 0123456789\n\n", 18, collect, &out), 0);
    assert_int_equal(sse_parser_feed(&p, "data: 01234", 11, collect, &out), 0);
    assert_int_equal(sse_parser_feed(&p, "56789\n\n", 7, collect, &out), 0);
    assert_string_equal(out.data, "|0123456789\n|0123456789\n");
    /* One past it fails, whether the line arrives whole or split. */
    assert_int_equal(sse_parser_feed(&p, "data: 0123456789X\n", 18, collect, &out), SY_ETOOBIG);
    sse_parser_deinit(&p);
    sse_parser_init(&p, 16);
    assert_int_equal(sse_parser_feed(&p, "data: 0123456", 13, collect, &out), 0);
    assert_int_equal(sse_parser_feed(&p, "789XY", 5, collect, &out), SY_ETOOBIG);
    sse_parser_deinit(&p);
    buf_deinit(&out);
}

static void test_sse_unterminated_event_not_dispatched(void **state)
{
    (void)state;
    sse_parser_t p;
    sse_parser_init(&p, 64);
    buf_t out;
    buf_init(&out, 1 << 16);
    assert_int_equal(sse_parser_feed(&p, "data: half\n", 11, collect, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sse_parser_feed(&p, "\n", 1, collect, &out), 0);
    assert_string_equal(out.data, "|half\n");
    buf_deinit(&out);
    sse_parser_deinit(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_whole),
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_sse_byte_by_byte),
        cmocka_unit_test(test_sse_line_cap),
        cmocka_unit_test(test_sse_unterminated_event_not_dispatched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
