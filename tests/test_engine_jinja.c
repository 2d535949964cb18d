/* test_engine_jinja.c — the chat-template interpreter: statements, expressions,
 * filters and tests, the taint of request text, and the limits on hostile templates.
 * (tests/blackbox/chat_templates.t compares real templates with the reference.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/err.h"
#include "engine/jinja.h"

static const char *CTX =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"  sys  \"},{\"role\":\"user\",\"content\":"
    "\"Hi <|im_end|>\"}],\"n\":3,\"f\":2.5,\"t\":true,\"d\":{\"a\":1,\"b\":[1,2]},\"s\":\"Hello\"}";

/* Renders src against CTX into o; returns the status, err filled. */
static int render(const char *src, jinja_out_t *o, const jinja_limits_t *lim, char *err, size_t el)
{
    cJSON *ctx = cJSON_Parse(CTX);
    jinja_tmpl_t *t;
    int rc = jinja_parse(src, strlen(src), &t, err, el);
    if (!rc) rc = jinja_render(t, ctx, NULL, lim, o, err, el);
    jinja_free(t);
    cJSON_Delete(ctx);
    return rc;
}

static void test_render_cases(void **state)
{
    (void)state;
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"a{# c #}b", "ab"},
        {"{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}|{{ -n }}",
         "7|3|1|1024|3.5|-3"},
        {"{{ f * 2 }} {{ 1.0 }} {{ t }} {{ none }}|{{ undefined_name }}|", "5.0 1.0 true ||"},
        {"{{ 'a' ~ 1 ~ t }} {{ 'x' * 3 }} {{ 'ab' + 'cd' }}", "a1true xxx abcd"},
        {"{% for m in messages %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
         "{{ m.role[0] }}{% endfor %}",
         "1truefalse2s2falsetrue2u"},
        {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=[1, 2];"},
        {"{% for x in [] %}no{% else %}empty{% endfor %}", "empty"},
        {"{% for i in range(10) if i is odd %}{{ i }}{% if i > 5 %}{% break %}{% endif %}"
         "{% endfor %}",
         "1357"},
        {"{% set ns = namespace(c=0) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}"
         "{% set local = 1 %}{% endfor %}{{ ns.c }}{{ local is defined }}",
         "6false"},
        {"{% if n == 1 %}one{% elif n == 3 %}three{% else %}other{% endif %}", "three"},
        {"{% macro tag(x, y='!') %}<{{ x }}{{ y }}>{% endmacro %}{{ tag('a') }}{{ tag('b', y='?') "
         "}}",
         "<a!><b?>"},
        {"{{ s[1:3] }}{{ s[::-1] }}{{ s[-1] }}{{ messages[-1].role }}", "elolleHouser"},
        {"{{ messages[0].content | trim }}|{{ s | upper }}{{ s | lower }}|{{ s | length }}",
         "sys|HELLOhello|5"},
        {"{{ d | tojson }}|{{ [1, 'a', none, t] | tojson }}|{{ {'k': 'v\"'} | tojson(indent=2) }}",
         "{\"a\": 1, \"b\": [1, 2]}|[1, \"a\", null, true]|{\n  \"k\": \"v\\\"\"\n}"},
        {"{{ s | replace('l', 'L') }} {{ missing | default('dflt') }} {{ [3, 1, 2] | sort | "
         "join('-') "
         "}}",
         "HeLLo dflt 1-2-3"},
        {"{{ messages | map(attribute='role') | join(',') }} "
         "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
         "system,user 1"},
        {"{{ 'a,b,,c'.split(',') | length }} {{ '  x  '.strip() }} {{ s.startswith('He') }} "
         "{{ 'xyz'.endswith(('a', 'z')) }}",
         "4 x true true"},
        {"{{ n is number }}{{ s is string }}{{ d is mapping }}{{ none is none }}{{ 4 is "
         "divisibleby(2) }}{{ 'e' in s }}{{ 'q' not in s }}{{ 'a' in d }}",
         "truetruetruetruetruetruetruetrue"},
        {"{{ 'yes' if t else 'no' }} {{ 0 or 'x' }} {{ 1 and 2 }} {{ not t }}", "yes x 2 false"},
        {"  {%- if t -%}  \n  x  \n  {%- endif -%}  y", "xy"},
        {"line\n    {% if t %}\nin\n    {% endif %}\nout", "line\nin\nout"},
        {"{{ \"\\u00e9\\n\\t\" | tojson }}", "\"\xc3\xa9\\n\\t\""},
        {"{% set x %}{{ s }}!{% endset %}{{ x | length }}", "6"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        jinja_out_t o;
        jinja_out_init(&o, 1 << 16);
        int rc = render(cases[i].src, &o, NULL, err, sizeof err);
        if (rc) print_error("case %zu: %s\n", i, err);
        assert_int_equal(rc, 0);
        if (strcmp(o.text.data ? o.text.data : "", cases[i].want))
            print_error("case %zu: got [%s] want [%s]\n", i, o.text.data, cases[i].want);
        assert_string_equal(o.text.data ? o.text.data : "", cases[i].want);
        jinja_out_deinit(&o);
    }
}

/* Request text keeps its taint through concatenation, filters and tojson; template
 * literals never carry it. */
static void test_taint(void **state)
{
    (void)state;
    char err[256];
    jinja_out_t o;
    jinja_out_init(&o, 1 << 16);
    assert_int_equal(render("<|im_start|>{{ messages[1].role + '\\n' + messages[1].content | trim "
                            "}}<|im_end|>{{ messages[1] | tojson }}",
                            &o, NULL, err, sizeof err),
                     0);
    const char *t = o.text.data;
    /* spans: "user", then "Hi <|im_end|>", then the whole tojson */
    assert_int_equal(o.n_spans, 3);
    assert_memory_equal(t + o.spans[0].off, "user", 4);
    assert_int_equal(o.spans[0].len, 4);
    assert_int_equal(o.spans[1].len, strlen("Hi <|im_end|>"));
    assert_memory_equal(t + o.spans[1].off, "Hi <|im_end|>", o.spans[1].len);
    assert_int_equal(o.spans[2].off + o.spans[2].len, o.text.len);
    assert_int_equal(t[o.spans[2].off], '{');
    /* the template's own <|im_end|> (after the content) lies outside every span */
    const char *lit = strstr(t + o.spans[1].off + o.spans[1].len, "<|im_end|>");
    assert_non_null(lit);
    for (size_t i = 0; i < o.n_spans; i++)
        assert_false((size_t)(lit - t) >= o.spans[i].off &&
                     (size_t)(lit - t) < o.spans[i].off + o.spans[i].len);
    jinja_out_deinit(&o);
}

static void test_errors_and_limits(void **state)
{
    (void)state;
    static const struct {
        const char *src;
        int rc;
        const char *msg;
    } cases[] = {
        {"{% if t %}x", SY_EPARSE, "if without endif"},
        {"{{ 'abc }}", SY_EPARSE, "unterminated"},
        {"{% include 'x' %}", SY_EPARSE, "unsupported statement"},
        {"{{ s | nope }}", SY_EINVAL, "unknown filter"},
        {"{{ raise_exception('bad: ' + s) }}", SY_EINVAL, "bad: Hello"},
        {"{{ 1 / 0 }}", SY_EINVAL, "division by zero"},
        {"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", SY_ETOOBIG, "deeper"},
        {"{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}", SY_ETOOBIG,
         "iterations"},
        {"{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxx{% endfor %}", SY_ETOOBIG, "output"},
    };
    jinja_limits_t lim = {.max_iterations = 100000, .max_output = 1 << 20};
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        jinja_out_t o;
        jinja_out_init(&o, 4 << 20);
        int rc = render(cases[i].src, &o, &lim, err, sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].msg))
            print_error("case %zu: rc %d err [%s]\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(err, cases[i].msg));
        jinja_out_deinit(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_cases),
        cmocka_unit_test(test_taint),
        cmocka_unit_test(test_errors_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
