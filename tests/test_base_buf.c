/* test_base_buf.c — buffers with caps, arenas, the JSON writer, hashing, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"

static void test_buf_cap(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_puts(&b, "world"), 0);
    assert_int_equal(b.len, 10);
    /* One byte past the cap fails and changes nothing. */
    assert_int_equal(buf_putc(&b, '!'), SY_ETOOBIG);
    assert_string_equal(b.data, "helloworld");
    buf_consume(&b, 5);
    assert_string_equal(b.data, "world");
    assert_int_equal(buf_printf(&b, "%d", 12345), 0);
    assert_int_equal(buf_printf(&b, "%d", 1), SY_ETOOBIG);
    assert_string_equal(b.data, "world12345");
    buf_deinit(&b);
}

static void test_buf_printf_long(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1 << 20);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '[');
    assert_int_equal(b.data[1000], ']');
    char *s = buf_steal(&b);
    assert_int_equal(strlen(s), 1001);
    free(s);
    buf_deinit(&b);
}

/* buf_read_file: the whole file, bytes exact (NULs and all, past one 64 KiB chunk);
 * a cap below the size is SY_ETOOBIG; a missing file -ENOENT; a directory SY_EIO. */
static void test_buf_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sy-buf-read-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = 200000;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(hash_mix(i) & 0xff);
    FILE *f = fdopen(fd, "wb");
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);

    buf_t b;
    buf_init(&b, n);
    assert_int_equal(buf_read_file(&b, path), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    buf_deinit(&b);

    buf_init(&b, n - 1);
    assert_int_equal(buf_read_file(&b, path), SY_ETOOBIG);
    assert_true(b.len < n);
    buf_deinit(&b);

    buf_init(&b, n);
    assert_int_equal(buf_read_file(&b, "/nonexistent/sy-buf"), -ENOENT);
    assert_int_equal(buf_read_file(&b, "/tmp"), SY_EIO);
    assert_int_equal(b.len, 0);
    buf_deinit(&b);
    unlink(path);
    free(data);
}

static void test_arena(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 64);
    char *p = arena_alloc(&a, 10);
    char *q = arena_alloc(&a, 1000); /* larger than a block */
    assert_true(((uintptr_t)p & 15) == 0);
    assert_true(((uintptr_t)q & 15) == 0);
    memset(q, 1, 1000);
    assert_string_equal(arena_strndup(&a, "abcdef", 3), "abc");
    arena_reset(&a);
    assert_non_null(arena_alloc(&a, 8));
    arena_deinit(&a);
}

static void test_jsonw(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1024);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "s");
    jsonw_str(&w, "a\"b\\c\n\x01");
    jsonw_key(&w, "n");
    jsonw_int(&w, -3);
    jsonw_key(&w, "d");
    jsonw_double(&w, 0.1);
    jsonw_key(&w, "a");
    jsonw_arr_begin(&w);
    jsonw_bool(&w, true);
    jsonw_null(&w);
    jsonw_arr_begin(&w);
    jsonw_arr_end(&w);
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
    assert_int_equal(jsonw_error(&w), 0);
    assert_string_equal(
        b.data, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"n\":-3,\"d\":0.1,\"a\":[true,null,[]]}");
    buf_deinit(&b);
}

static void test_jsonw_cap_sticky(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 8);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_arr_begin(&w);
    jsonw_str(&w, "this is too long");
    jsonw_arr_end(&w);
    assert_int_equal(jsonw_error(&w), SY_ETOOBIG);
    buf_deinit(&b);
}

/* The writer's in-place copies stop exactly where buf_append would: a value that
 * fits the cap to the byte is written, one byte more is refused, also once the
 * buffer has room (a reused buffer), and keys with escapes read the same. */
static void test_jsonw_fast_path_cap(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_str(&w, "abcdefgh");
    assert_int_equal(jsonw_error(&w), 0);
    assert_string_equal(b.data, "\"abcdefgh\"");
    buf_reset(&b);
    jsonw_init(&w, &b);
    jsonw_str(&w, "abcdefghi");
    assert_int_equal(jsonw_error(&w), SY_ETOOBIG);
    buf_deinit(&b);

    buf_init(&b, 1024);
    buf_reserve(&b, 512);
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "k\"q");
    jsonw_str(&w, "plain");
    jsonw_key(&w, "t");
    jsonw_strn(&w, "a\tb", 3);
    jsonw_obj_end(&w);
    assert_int_equal(jsonw_error(&w), 0);
    assert_string_equal(b.data, "{\"k\\\"q\":\"plain\",\"t\":\"a\\tb\"}");
    buf_deinit(&b);
}

/* What jsonw_double promises: %.15g when that reads back as v, else %.17g. */
static void ref_double(double v, char *out, size_t n)
{
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, n, "%.17g", v);
}

static void check_double(double v)
{
    buf_t b;
    buf_init(&b, 64);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_double(&w, v);
    char want[64];
    if (!isfinite(v))
        snprintf(want, sizeof want, "null");
    else
        ref_double(v, want, sizeof want);
    if (strcmp(b.data, want)) fail_msg("jsonw_double(%a): got %s, want %s", v, b.data, want);
    buf_deinit(&b);
}

/* The integer paths of jsonw_double against printf, over costs (price * tokens /
 * 1e6), latencies, short decimals, random bit patterns of every magnitude the fast
 * path covers and its edges, both signs. */
static void test_jsonw_double_matches_printf(void **state)
{
    (void)state;
    const double prices[] = {0.15, 0.6, 2.5, 10, 0.075, 1.1, 3, 0.35, 0.19};
    for (int p = 0; p < 9; p++)
        for (int q = 0; q < 9; q++)
            for (unsigned t = 0; t < 3000; t += 7) {
                check_double(prices[p] * t / 1e6 + prices[q] * (t / 3 + 1) / 1e6);
                check_double(prices[p] * (double)t / 1e6);
            }
    for (int i = 1; i < 200000; i += 3) {
        check_double(i / 1000.0);
        check_double(-i / 1e7);
        check_double(i * 0.1);
        check_double((double)i / 3.0);
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* exponents of 1e-9 .. 1e16 */
        uint64_t e = 1023 - 30 + (x >> 58) % 84;
        uint64_t bits = (e << 52) | (x & ((1ull << 52) - 1));
        double v;
        memcpy(&v, &bits, sizeof v);
        check_double((x & 1) ? -v : v);
    }
    const double edges[] = {1e-7, 1e-5, 1e-4, 1e-3, 0.1, 1, 10, 1e14, 1e15, 1e16, 0.5, 0.25};
    for (int i = 0; i < 12; i++) {
        double v = edges[i];
        for (int s = 0; s < 40; s++) {
            check_double(v);
            check_double(-v);
            v = nextafter(v, 0);
        }
        v = edges[i];
        for (int s = 0; s < 40; s++, v = nextafter(v, INFINITY))
            check_double(v);
    }
    check_double(0.0);
    check_double(-0.0);
    check_double(NAN);
    check_double(INFINITY);
    check_double(5e-324);
    check_double(1.7976931348623157e308);
    check_double(999999999999999.9);
    check_double(99999.999999999999);
    check_double(0.000099999999999999999);
}

static void test_hash_stable(void **state)
{
    (void)state;
    /* Model files store the seed: the hash must not change between builds. */
    uint64_t h1 = hash_bytes("hello world", 11, 42);
    assert_int_equal(h1, hash_bytes("hello world", 11, 42));
    assert_int_not_equal(h1, hash_bytes("hello world", 11, 43));
    assert_int_not_equal(h1, hash_bytes("hello worle", 11, 42));
    assert_int_equal(hash_fnv1a("a", 1), 0xaf63dc4c8601ec8cull);
}

static void test_clock_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(clock_parse_time("2026-11-28", &ms), 0);
    assert_int_equal(ms, 1795824000000LL);
    assert_int_equal(clock_parse_time("2026-11-28T01:02:03Z", &ms), 0);
    assert_int_equal(ms, 1795824000000LL + 3723000);
    assert_int_equal(clock_parse_time("1795824000", &ms), 0);
    assert_int_equal(ms, 1795824000000LL);
    assert_int_equal(clock_parse_time("yesterday", &ms), SY_EPARSE);
    assert_int_equal(clock_parse_time("2026-13-01", &ms), SY_EPARSE);
    char out[32];
    clock_fmt_rfc3339(1795824000123LL, out);
    assert_string_equal(out, "2026-11-28T00:00:00.123Z");
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(sy_strerror(SY_ETOOBIG), "input exceeds its size limit");
    assert_string_equal(sy_strerror(-2), "No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_printf_long),
        cmocka_unit_test(test_buf_read_file),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_jsonw),
        cmocka_unit_test(test_jsonw_cap_sticky),
        cmocka_unit_test(test_jsonw_fast_path_cap),
        cmocka_unit_test(test_jsonw_double_matches_printf),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_clock_parse),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
