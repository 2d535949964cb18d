/* test_api_request_prop.c — the privacy property of the typed request, on random
 * bodies.
 *
 * Each case is a random valid request body (any depth, random keys, duplicate keys,
 * unknown fields, content parts, tool calls, numbers) with one unique personal value
 * (email, card or phone) planted in one random string: a value, a key, a number, or
 * split across two consecutive content parts or messages. For every body:
 *   - the parse refuses it (a duplicate key, say), or
 *   - the privacy scan finds personal data (the gateway keeps it local or refuses), or
 *   - the rendered upstream body holds no byte sequence of the planted value
 *     (and a split value, which no rendered string holds whole, must be found).
 * Every rendered body must also be the same JSON document as the client's (model
 * aside): the render drops and invents nothing.
 * Also checks that a body with a duplicate key is always refused, with its path.
 *
 * PROP_CASES (default 3000) sets the number of cases and PROP_SEED the seed, so the
 * same binary runs millions in a separate run:
 *   PROP_CASES=2000000 build/rel/tests/test_api_request_prop
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "api/privacy.h"
#include "api/render.h"
#include "api/request.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"

/* ------------------------------------------------------------ random ---- */

static uint64_t rng;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

typedef enum { PLANT_EMAIL, PLANT_CARD, PLANT_PHONE, PLANT_CONTROL } plant_kind_t;
static const int plant_type[] = {PII_EMAIL_ADDRESS, PII_CREDIT_CARD, PII_PHONE_NUMBER, -1};

typedef struct gen {
    buf_t b;
    char value[64];  /* the planted value */
    char digits[64]; /* a card's digits without separators, "" otherwise */
    int slots_left;  /* string slots until the plant (-1: planted) */
    bool split;      /* planted split across two flow strings */
    bool as_number;  /* planted as a JSON number (card digits) */
    bool dup;        /* the body holds a duplicate key */
    plant_kind_t kind;
} gen_t;

static void make_value(gen_t *g, uint64_t id)
{
    g->digits[0] = 0;
    switch (g->kind) {
    case PLANT_EMAIL:
        snprintf(g->value, sizeof g->value, "u%llux.q@example.com", (unsigned long long)id);
        break;
    case PLANT_CARD: {
        char d[17];
        snprintf(d, sizeof d, "4539%011llu", (unsigned long long)(id % 100000000000ull));
        int s = 0;
        for (int i = 0; i < 15; i++) {
            int v = d[14 - i] - '0';
            if (i % 2 == 0) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
            s += v;
        }
        d[15] = (char)('0' + (10 - s % 10) % 10);
        d[16] = 0;
        memcpy(g->digits, d, 17);
        snprintf(g->value, sizeof g->value, "%.4s %.4s %.4s %.4s", d, d + 4, d + 8, d + 12);
        break;
    }
    case PLANT_PHONE:
        snprintf(g->value, sizeof g->value, "+1 415 555 %04u", 1000 + (unsigned)(id % 9000));
        break;
    case PLANT_CONTROL: /* harmless: must reach the rendered body (the check is live) */
        snprintf(g->value, sizeof g->value, "zqcontrol%llu", (unsigned long long)id);
        break;
    }
}

static void word(gen_t *g)
{
    static const char *const w[] = {"alpha", "the",  "river", "blue", "x",  "note", "7",
                                    "id",    "data", "to",    "list", "of", "a",    "value"};
    int n = 1 + (int)rnd(4);
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(&g->b, ' ');
        buf_puts(&g->b, w[rnd(sizeof w / sizeof w[0])]);
    }
}

/* A JSON string at a slot: the plant when its turn comes. */
static void string(gen_t *g)
{
    buf_putc(&g->b, '"');
    if (g->slots_left >= 0 && g->slots_left-- == 0) {
        if (rnd(2)) buf_puts(&g->b, "see ");
        buf_puts(&g->b, g->value);
        if (rnd(2)) buf_puts(&g->b, " now");
    } else {
        word(g);
    }
    buf_putc(&g->b, '"');
}

static void key(gen_t *g, const char *const *seen, int n_seen, char *out, size_t outn)
{
    static const char *const k[] = {"a", "b", "kind", "x_note", "items", "meta", "zz", "q"};
    if (n_seen && rnd(12) == 0) {
        /* A duplicate of a key already in this object. */
        snprintf(out, outn, "%s", seen[rnd((uint32_t)n_seen)]);
        g->dup = true;
    } else if (g->slots_left >= 0 && g->slots_left-- == 0) {
        snprintf(out, outn, "%s", g->value);
    } else {
        snprintf(out, outn, "%s%u", k[rnd(sizeof k / sizeof k[0])], rnd(1000));
    }
    buf_printf(&g->b, "\"%s\":", out);
}

static void value(gen_t *g, int depth);

static void object(gen_t *g, int depth)
{
    char keys[8][72];
    const char *seen[8];
    int n = (int)rnd(5);
    buf_putc(&g->b, '{');
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(&g->b, ',');
        key(g, seen, i, keys[i], sizeof keys[i]);
        seen[i] = keys[i];
        value(g, depth + 1);
    }
    buf_putc(&g->b, '}');
}

static void value(gen_t *g, int depth)
{
    uint32_t c = rnd(depth > 5 ? 4 : 7);
    switch (c) {
    case 0:
        buf_printf(&g->b, "%d", (int)rnd(100000) - 50000);
        break;
    case 1:
        buf_puts(&g->b, rnd(2) ? "true" : "null");
        break;
    case 2:
    case 3:
        string(g);
        break;
    case 4:
    case 5: {
        int n = (int)rnd(5);
        buf_putc(&g->b, '[');
        for (int i = 0; i < n; i++) {
            if (i) buf_putc(&g->b, ',');
            value(g, depth + 1);
        }
        buf_putc(&g->b, ']');
        break;
    }
    default:
        object(g, depth);
    }
}

/* A flow text: content string, or a part; the split plant goes over two of them. */
static void content(gen_t *g)
{
    if (rnd(2)) {
        string(g);
        return;
    }
    int n = 1 + (int)rnd(3);
    buf_putc(&g->b, '[');
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(&g->b, ',');
        buf_puts(&g->b, "{\"type\":\"text\",\"text\":");
        string(g);
        if (rnd(6) == 0) {
            buf_puts(&g->b, ",\"x_part\":");
            value(g, 3);
        }
        buf_putc(&g->b, '}');
    }
    buf_putc(&g->b, ']');
}

static const char *const known_str[] = {"user", "safety_identifier", "prompt_cache_key", "stop",
                                        "verbosity"};

/* One random request body into g->b (planted unless g->slots_left ran past all slots). */
static void body(gen_t *g)
{
    buf_reset(&g->b);
    buf_puts(&g->b, "{\"model\":\"auto\",\"messages\":[");
    int n = 1 + (int)rnd(4);
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(&g->b, ',');
        static const char *const roles[] = {"user", "system", "assistant", "developer"};
        buf_printf(&g->b, "{\"role\":\"%s\",\"content\":", roles[rnd(4)]);
        content(g);
        if (rnd(5) == 0) {
            buf_puts(&g->b, ",\"name\":");
            string(g);
        }
        if (rnd(6) == 0) {
            buf_puts(&g->b, ",\"x_msg\":");
            value(g, 2);
        }
        buf_putc(&g->b, '}');
    }
    if (g->split) {
        /* Two consecutive flow strings that read as the value: parts or messages. */
        size_t cut = 3 + rnd((uint32_t)strlen(g->value) - 5);
        if (rnd(2))
            buf_printf(&g->b,
                       ",{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"see "
                       "%.*s\"},{\"type\":\"text\",\"text\":\"%s now\"}]}",
                       (int)cut, g->value, g->value + cut);
        else
            buf_printf(&g->b,
                       ",{\"role\":\"user\",\"content\":\"see %.*s\"},{\"role\":\"user\","
                       "\"content\":\"%s now\"}",
                       (int)cut, g->value, g->value + cut);
    }
    buf_putc(&g->b, ']');
    int extra = (int)rnd(4);
    for (int i = 0; i < extra; i++) {
        uint32_t c = rnd(4);
        if (c == 0) {
            buf_printf(&g->b, ",\"%s\":", known_str[rnd(5)]);
            string(g);
        } else if (c == 1) {
            buf_puts(&g->b, ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                            "\"description\":");
            string(g);
            buf_puts(&g->b, ",\"parameters\":");
            object(g, 2);
            buf_puts(&g->b, "}}]");
        } else {
            buf_printf(&g->b, ",\"x_extra%d\":", i);
            value(g, 1);
        }
    }
    if (g->as_number) buf_printf(&g->b, ",\"x_num\":%s", g->digits);
    buf_putc(&g->b, '}');
}

/* ------------------------------------------------------------ property ---- */

typedef struct stats {
    uint64_t cases, refused, found, clean, split, dups, controls, faithful;
} stats_t;

static pii_scanner_t *scanner;
static api_scan_t *scan;

static bool contains(const buf_t *b, const char *s)
{
    return b->len && *s && memmem(b->data, b->len, s, strlen(s));
}

/* Runs n cases from seed; fails the test on the first counterexample (printed). */
static void prop_run(uint64_t seed, uint64_t n, stats_t *st)
{
    gen_t g;
    buf_init(&g.b, 64u << 20);
    buf_t out;
    buf_init(&out, 256u << 20);
    arena_t a;
    arena_init(&a, 1u << 16);
    rng = seed ? seed : 1;
    for (uint64_t i = 0; i < n; i++) {
        g.kind = rnd(10) == 0 ? PLANT_CONTROL : (plant_kind_t)rnd(3);
        make_value(&g, seed * 1000003u + i);
        g.split = g.kind != PLANT_CONTROL && rnd(8) == 0;
        g.as_number = !g.split && g.kind == PLANT_CARD && rnd(8) == 0;
        g.slots_left = g.split || g.as_number ? -1 : (int)rnd(10);
        g.dup = false;
        body(&g);
        bool planted = g.split || g.as_number || g.slots_left < 0;
        if (!planted) continue; /* fewer string slots than drawn: no plant, skip */
        st->cases++;
        st->split += g.split;
        http_req_t hr = {.method = "POST",
                         .path = "/v1/chat/completions",
                         .query = "",
                         .body = g.b.data,
                         .body_len = g.b.len};
        api_request_t r;
        char err[256], param[96];
        arena_reset(&a);
        int rc = api_request_parse(&r, &hr, false, &a, err, sizeof err, param, sizeof param);
        if (g.dup) {
            st->dups++;
            if (rc != SY_EINVAL || !strstr(err, "duplicate key")) {
                print_message("duplicate not refused (rc %d: %s):\n%s\n", rc, err, g.b.data);
                fail();
            }
        }
        if (rc) {
            st->refused++;
            continue;
        }
        api_privacy_t pv;
        api_privacy_scan(scan, &r, true, &pv);
        buf_reset(&out);
        api_render_opts_t o = {.model = "m", .forward_unknown = true};
        assert_int_equal(api_render_body(&r, &o, &out), 0);
        /* The render is faithful: the same document, model aside. */
        cJSON *in = cJSON_Parse(g.b.data), *back = cJSON_Parse(out.data);
        cJSON_DeleteItemFromObjectCaseSensitive(in, "model");
        cJSON_DeleteItemFromObjectCaseSensitive(back, "model");
        cJSON_DeleteItemFromObjectCaseSensitive(back, "stream");
        bool same = back && cJSON_Compare(in, back, true);
        cJSON_Delete(in);
        cJSON_Delete(back);
        if (!same) {
            print_message("render differs from the body:\n%s\n%s\n", g.b.data, out.data);
            fail();
        }
        st->faithful++;
        if (g.kind == PLANT_CONTROL) {
            st->controls++;
            if (!contains(&out, g.value)) {
                print_message("control value %s not rendered:\n%s\n", g.value, out.data);
                fail();
            }
            api_request_deinit(&r);
            continue;
        }
        /* Found means the planted value's own type (another finding would not keep it
         * from leaving under a mask policy). */
        if (pv.unknown || (pv.types >> plant_type[g.kind] & 1)) {
            st->found++;
            api_request_deinit(&r);
            continue;
        }
        bool leak = g.split || contains(&out, g.value) || contains(&out, g.digits);
        if (leak) {
            print_message("counterexample (seed %llu, case %llu): %s%s not found, rendered:\n%s\n",
                          (unsigned long long)seed, (unsigned long long)i, g.value,
                          g.split ? " (split)" : "", out.data);
            fail();
        }
        st->clean++;
        api_request_deinit(&r);
    }
    arena_deinit(&a);
    buf_deinit(&out);
    buf_deinit(&g.b);
}

static void test_property(void **state)
{
    (void)state;
    const char *e = getenv("PROP_CASES");
    const char *s = getenv("PROP_SEED");
    uint64_t n = e ? strtoull(e, NULL, 10) : 3000;
    uint64_t seed = s ? strtoull(s, NULL, 10) : 20261206;
    stats_t st = {0};
    clock_t t0 = clock();
    prop_run(seed, n, &st);
    double sec = (double)(clock() - t0) / CLOCKS_PER_SEC;
    print_message("# %llu cases (seed %llu, %.1f s CPU): %llu refused (%llu with a duplicate key), "
                  "%llu found, %llu rendered clean, %llu split, %llu harmless controls rendered, "
                  "%llu renders equal to their body; 0 counterexamples\n",
                  (unsigned long long)st.cases, (unsigned long long)seed, sec,
                  (unsigned long long)st.refused, (unsigned long long)st.dups,
                  (unsigned long long)st.found, (unsigned long long)st.clean,
                  (unsigned long long)st.split, (unsigned long long)st.controls,
                  (unsigned long long)st.faithful);
    /* The generator must exercise every outcome, or the property says little. */
    assert_true(st.cases > n / 2);
    assert_true(st.refused > 0 && st.found > 0 && st.split > 0 && st.controls > 0);
}

/* Duplicate keys are found at any depth with their path, in small and large objects. */
static void test_duplicate_paths(void **state)
{
    (void)state;
    static const struct {
        const char *json, *path;
        int rc; /* a duplicate is SY_EINVAL, bytes that are not UTF-8 SY_EPARSE */
    } cases[] = {
        {"{\"a\":1,\"a\":2}", "a", SY_EINVAL},
        {"{\"m\":[{\"x\":1},{\"c\":1,\"c\":2}]}", "m[1].c", SY_EINVAL},
        {"{\"t\":{\"f\":{\"p\":{\"q\":[[{\"d\":1,\"e\":2,\"d\":3}]]}}}}", "t.f.p.q[0][0].d",
         SY_EINVAL},
        {"{\"a\":1,\"b\":2}", NULL, 0},
        {"{\"m\":[{\"t\":\"41\xff"
         "11\"}]}",
         "m[0].t", SY_EPARSE},
        {"{\"m\":{\"k\xc0\x80\":1}}", "m.(a key)", SY_EPARSE},
        {"{\"s\":\"\xed\xa0\x80\"}", "s", SY_EPARSE},
        {"{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", NULL, 0},
        {"[{\"a\":{\"a\":{\"a\":1}}}]", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        assert_non_null(j);
        char path[128];
        int rc = api_json_find_duplicate(j, path, sizeof path);
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].path) assert_string_equal(path, cases[i].path);
        cJSON_Delete(j);
    }
    /* A large object (sorted check): 5,000 keys, one repeated far apart. */
    buf_t b;
    buf_init(&b, 1u << 20);
    buf_putc(&b, '{');
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i == 4999 ? 17 : i, i);
    buf_putc(&b, '}');
    cJSON *j = cJSON_Parse(b.data);
    char path[64];
    assert_int_equal(api_json_find_duplicate(j, path, sizeof path), SY_EINVAL);
    assert_string_equal(path, "k17");
    cJSON_Delete(j);
    buf_deinit(&b);
}

/* A continuation's text so far is part of what is sent: rendered as the final
 * assistant message with vLLM's two fields (never twice), and visited by the scan. */
static void test_prefill(void **state)
{
    (void)state;
    static const char body[] = "{\"model\":\"auto\",\"max_tokens\":20,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    http_req_t hr = {.method = "POST",
                     .path = "/v1/chat/completions",
                     .query = "",
                     .body = body,
                     .body_len = sizeof body - 1};
    arena_t a;
    arena_init(&a, 4096);
    api_request_t r;
    char err[256], param[96];
    assert_int_equal(api_request_parse(&r, &hr, false, &a, err, sizeof err, param, sizeof param),
                     0);
    api_privacy_t pv = {0};
    assert_int_equal(api_privacy_scan(scan, &r, false, &pv), 0);
    assert_false(pv.types >> PII_EMAIL_ADDRESS & 1);
    static const char part[] = "Write to jane.doe@example.com and";
    r.prefill = part;
    r.prefill_len = sizeof part - 1;
    memset(&pv, 0, sizeof pv);
    assert_int_equal(api_privacy_scan(scan, &r, false, &pv), 0);
    assert_true(pv.types >> PII_EMAIL_ADDRESS & 1);
    /* Rendered whole, and past a pre-rendered rest (which lacks the prefill). */
    buf_t rest, out;
    buf_init(&rest, 1 << 16);
    buf_init(&out, 1 << 16);
    assert_int_equal(api_render_rest(&r, false, &rest), 0);
    for (int with_rest = 0; with_rest < 2; with_rest++) {
        buf_reset(&out);
        api_render_opts_t o = {.model = "m", .stream = true};
        if (with_rest) o.rest = rest.data, o.rest_len = rest.len;
        assert_int_equal(api_render_body(&r, &o, &out), 0);
        cJSON *j = cJSON_Parse(out.data);
        assert_non_null(j);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "continue_final_message")));
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "add_generation_prompt")));
        cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        assert_int_equal(cJSON_GetArraySize(msgs), 2);
        cJSON *last = cJSON_GetArrayItem(msgs, 1);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "role")->valuestring,
                            "assistant");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "content")->valuestring, part);
        cJSON_Delete(j);
    }
    buf_deinit(&rest);
    buf_deinit(&out);
    api_request_deinit(&r);
    arena_deinit(&a);
}

int main(void)
{
    pii_options_t po = {NULL, 0.5f};
    char err[256];
    scanner = pii_scanner_new(&po, err, sizeof err);
    if (!scanner) {
        fprintf(stderr, "pii scanner: %s\n", err);
        return 1;
    }
    scan = api_scan_new(scanner, 0.5f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_paths),
        cmocka_unit_test(test_property),
        cmocka_unit_test(test_prefill),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    api_scan_free(scan);
    pii_scanner_free(scanner);
    return rc;
}
