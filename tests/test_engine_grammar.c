/* test_engine_grammar.c — constrained decoding: the JSON state machine on hand-written
 * inputs, schema compilation and its refusals, and generations with stories260K under
 * random nested schemas, each parsed with cJSON and checked by a validator written
 * here (independent of the grammar code).
 *
 * SY_GRAMMAR_GENERATIONS=N sets how many random schemas are generated (default 150;
 * the figure in docs/engine.md comes from N=1000), SY_GRAMMAR_TOOL_CALLS=N how many
 * random tool sets are decoded as calls (default 200), SY_GRAMMAR_SEED the seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/engine.h"
#include "engine/grammar.h"
#include "engine/jsonschema.h"
#include "engine/session.h"

static char shared[512];

/* ========================================================== validator ===== */

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p >> 5) == 6 ? 1 : (*p >> 4) == 14 ? 2 : (*p >> 3) == 30 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xc2)) return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xc0) != 0x80) return false;
    }
    return true;
}

static bool type_ok(const char *t, const cJSON *v)
{
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v) && utf8_ok(v->valuestring);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    return false;
}

/* Does value v satisfy schema s (the subset the generator below writes)? */
static bool validate(const cJSON *s, const cJSON *v, bool strict)
{
    if (cJSON_IsTrue(s)) return true;
    const cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "const"))) return cJSON_Compare(x, v, true);
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        for (const cJSON *e = x->child; e; e = e->next)
            if (cJSON_Compare(e, v, true)) return true;
        return false;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) {
        for (const cJSON *b = x->child; b; b = b->next)
            if (validate(b, v, strict)) return true;
        return false;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "type"))) {
        bool ok = false;
        if (cJSON_IsString(x)) ok = type_ok(x->valuestring, v);
        for (const cJSON *t = cJSON_IsArray(x) ? x->child : NULL; t; t = t->next)
            ok = ok || type_ok(t->valuestring, v);
        if (!ok) return false;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        for (const cJSON *m = v->child; m; m = m->next) {
            if (!utf8_ok(m->string)) return false;
            for (const cJSON *o = v->child; o != m; o = o->next)
                if (!strcmp(o->string, m->string)) return false; /* duplicate key */
            const cJSON *ps = props ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
            if (!ps && cJSON_IsFalse(addl)) return false;
            if (ps && !validate(ps, m, strict)) return false;
        }
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring)) return false;
        for (const cJSON *p = strict && props ? props->child : NULL; p; p = p->next)
            if (!cJSON_GetObjectItemCaseSensitive(v, p->string)) return false;
    }
    if (cJSON_IsArray(v)) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        int n = cJSON_GetArraySize(v);
        if ((x = cJSON_GetObjectItemCaseSensitive(s, "minItems")) && n < x->valueint) return false;
        if ((x = cJSON_GetObjectItemCaseSensitive(s, "maxItems")) && n > x->valueint) return false;
        for (const cJSON *e = v->child; e && items; e = e->next)
            if (!validate(items, e, strict)) return false;
    }
    return true;
}

/* ===================================================== schema generator ===== */

static uint64_t rng;

static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(rng >> 33) % n;
}

static cJSON *gen_literal(void)
{
    static const char *strs[] = {"red", "green", "", "a b", "caf\xc3\xa9", "x\"y"};
    switch (rnd(6)) {
    case 0:
        return cJSON_CreateString(strs[rnd(6)]);
    case 1:
        return cJSON_CreateNumber((double)((int)rnd(2001) - 1000));
    case 2:
        return cJSON_CreateNumber(((int)rnd(2001) - 1000) / 8.0);
    case 3:
        return cJSON_CreateBool(rnd(2));
    case 4:
        return cJSON_CreateNull();
    default: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "k", rnd(10));
        return o;
    }
    }
}

static const char *simple_types[] = {"string", "number", "integer", "boolean", "null"};

/* A random schema; container: an object or an array. */
static cJSON *gen_schema(int depth, bool container)
{
    static const char *names[] = {"a", "ab", "name", "id", "value", "tags", "n", "items", "x"};
    cJSON *s = cJSON_CreateObject();
    unsigned k = rnd(depth < 3 ? 10 : 7);
    if (depth == 0 || container) k = 7 + rnd(2) * 2;
    switch (k) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
        cJSON_AddStringToObject(s, "type", simple_types[k]);
        break;
    case 5: {
        cJSON *e = cJSON_AddArrayToObject(s, "enum");
        int n = 1 + (int)rnd(4);
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(e, gen_literal());
        break;
    }
    case 6:
        if (rnd(2)) {
            cJSON_AddItemToObject(s, "const", gen_literal());
        } else { /* anyOf of distinct plain types, maybe with one object */
            cJSON *a = cJSON_AddArrayToObject(s, "anyOf");
            unsigned first = rnd(5), n = 2 + rnd(2);
            for (unsigned i = 0; i < n; i++) {
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "type", simple_types[(first + i) % 5]);
                cJSON_AddItemToArray(a, b);
            }
            if (depth < 3 && rnd(2)) cJSON_AddItemToArray(a, gen_schema(depth + 1, true));
        }
        break;
    case 7:
    case 8: {
        cJSON_AddStringToObject(s, "type", "object");
        cJSON *props = cJSON_AddObjectToObject(s, "properties");
        cJSON *req = cJSON_CreateArray();
        int n = (int)rnd(5);
        unsigned start = rnd(9);
        for (int i = 0; i < n; i++) {
            const char *nm = names[(start + (unsigned)i) % 9];
            cJSON_AddItemToObject(props, nm, gen_schema(depth + 1, false));
            if (rnd(2)) cJSON_AddItemToArray(req, cJSON_CreateString(nm));
        }
        cJSON_AddItemToObject(s, "required", req);
        if (rnd(2)) cJSON_AddFalseToObject(s, "additionalProperties");
        break;
    }
    default: {
        cJSON_AddStringToObject(s, "type", "array");
        cJSON_AddItemToObject(s, "items", gen_schema(depth + 1, false));
        int mn = (int)rnd(3);
        if (rnd(2)) cJSON_AddNumberToObject(s, "minItems", mn);
        if (rnd(2)) cJSON_AddNumberToObject(s, "maxItems", mn + rnd(3));
        break;
    }
    }
    if (!rnd(5)) cJSON_AddStringToObject(s, "description", "generated");
    return s;
}

/* ============================================================ machine ===== */

/* Feeds text to a fresh state of g: 1 complete, 0 valid but incomplete, -1 rejected. */
static int run(const grammar_t *g, const char *text)
{
    grammar_state_t st;
    grammar_state_init(&st, g);
    if (grammar_state_feed(&st, text, strlen(text))) return -1;
    return grammar_state_complete(&st) ? 1 : 0;
}

static grammar_t *compile(const char *schema, bool strict)
{
    grammar_t *g = NULL;
    char err[256];
    int rc = jsonschema_compile(schema, strlen(schema), strict, &g, err, sizeof err);
    if (rc) print_message("compile: %s\n", err);
    assert_int_equal(rc, 0);
    return g;
}

static void test_json_object(void **state)
{
    (void)state;
    grammar_t *g = grammar_new_json_object();
    assert_int_equal(run(g, "{}"), 1);
    assert_int_equal(run(g, " {\"a\": [1, -2.5e3, true, null, {\"b\":\"\\u00e9\\n\"}]}"), 1);
    assert_int_equal(run(g, "{\"a\":"), 0);
    assert_int_equal(run(g, "[]"), -1);                   /* an object, not any value */
    assert_int_equal(run(g, "{\"a\":01}"), -1);           /* no leading zeros */
    assert_int_equal(run(g, "{\"a\":1,}"), -1);           /* no trailing comma */
    assert_int_equal(run(g, "{\"a\":\"\x01\"}"), -1);     /* control byte in a string */
    assert_int_equal(run(g, "{\"a\":\"\xc3\x28\"}"), -1); /* bad UTF-8 */
    assert_int_equal(run(g, "{\"a\":\"\\ud800\"}"), -1);  /* lone surrogate */
    assert_int_equal(run(g, "{}x"), -1);
    assert_int_equal(run(g, "{  }"), -1); /* one whitespace byte per gap */
    grammar_free(g);
}

static void test_schema_machine(void **state)
{
    (void)state;
    grammar_t *g = compile("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                           "\"ab\":{\"enum\":[\"x\",1,12]},\"c\":{\"type\":\"array\",\"items\":"
                           "{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":2}},"
                           "\"required\":[\"a\"]}",
                           false);
    assert_int_equal(run(g, "{\"a\":3}"), 1);
    assert_int_equal(run(g, "{\"ab\":12,\"a\":-7}"), 1);
    assert_int_equal(run(g, "{\"ab\":1,\"a\":0}"), 1);
    assert_int_equal(run(g, "{\"ab\":\"x\"}"), -1);    /* a is required */
    assert_int_equal(run(g, "{\"a\":1.5}"), -1);       /* integer */
    assert_int_equal(run(g, "{\"a\":1,\"a\":2}"), -1); /* no repeats */
    assert_int_equal(run(g, "{\"b\":1}"), -1);         /* undeclared */
    assert_int_equal(run(g, "{\"a\":1,\"ab\":2}"), -1);
    assert_int_equal(run(g, "{\"a\":1,\"c\":[]}"), -1);                /* minItems */
    assert_int_equal(run(g, "{\"a\":1,\"c\":[true,false,true]}"), -1); /* maxItems */
    assert_int_equal(run(g, "{\"a\":1,\"c\":[true, false]}"), 1);
    /* closing cost: from `{"ab":` the shortest end is 1} then ,"a":0} */
    grammar_state_t st;
    grammar_state_init(&st, g);
    assert_int_equal(grammar_state_feed(&st, "{\"ab\":", 6), 0);
    assert_int_equal(grammar_state_close_cost(&st), (int)strlen("1,\"a\":0}"));
    grammar_free(g);
    g = compile("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
                "\"b\":{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"null\"}]}}}",
                true);
    assert_int_equal(run(g, "{\"a\":\"\"}"), -1); /* strict: b required too */
    assert_int_equal(run(g, "{\"b\":null,\"a\":\"q\"}"), 1);
    assert_int_equal(run(g, "{\"b\":2.5,\"a\":\"q\"}"), 1);
    grammar_free(g);
}

static void test_schema_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *schema, *word;
        int rc;
    } cases[] = {
        {"{\"type\":\"string\",\"pattern\":\"a\"}", "\"pattern\"", SY_EUNSUPPORTED},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"format\":\"date\"}}}", "/properties/a",
         SY_EUNSUPPORTED},
        {"{\"$ref\":\"#/x\"}", "\"$ref\"", SY_EUNSUPPORTED},
        {"{\"oneOf\":[]}", "\"oneOf\"", SY_EUNSUPPORTED},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
         "additionalProperties", SY_EUNSUPPORTED},
        {"{\"type\":\"date\"}", "date", SY_EUNSUPPORTED},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "b", SY_EINVAL},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":1}", "minItems", SY_EINVAL},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"object\"}]}", "anyOf", SY_EUNSUPPORTED},
        {"[1]", "object", SY_EINVAL},
        {"{\"type\":", "JSON", SY_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        grammar_t *g = NULL;
        char err[256] = "";
        int rc = jsonschema_compile(cases[i].schema, strlen(cases[i].schema), false, &g, err,
                                    sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].word))
            fail_msg("%s: rc %d, err \"%s\"", cases[i].schema, rc, err);
        assert_null(g);
    }
}

/* =================================================== generations ===== */

typedef struct out {
    char text[16384];
    size_t len;
} out_t;

static int on_token(void *ud, const engine_token_t *t)
{
    out_t *o = ud;
    assert_true(o->len + t->len < sizeof o->text);
    memcpy(o->text + o->len, t->text, t->len);
    o->len += t->len;
    o->text[o->len] = 0;
    return 0;
}

static void test_generations(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);
        skip();
    }
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = 512});
    const char *env = getenv("SY_GRAMMAR_GENERATIONS");
    int n = env ? atoi(env) : 150;
    static const char *prompts[] = {"Once upon a time", "{", "The answer is", "Tim said"};
    int n_tok = 0, n_eos = 0;
    const char *seed = getenv("SY_GRAMMAR_SEED");
    rng = seed ? strtoull(seed, NULL, 10) : 12345;
    static out_t o;
    for (int i = 0; i < n; i++) {
        cJSON *schema = gen_schema(0, true);
        bool strict = rnd(2);
        char *txt = cJSON_PrintUnformatted(schema);
        grammar_t *g = compile(txt, strict);
        int ids[64];
        const char *pr = prompts[rnd(4)];
        int np = engine_tokenize(e, pr, strlen(pr), true, false, ids, 64);
        /* a quarter with a budget just above the shortest value: closing must be steered */
        int extra = i % 4 ? (int)rnd(160) : (int)rnd(4);
        engine_gen_params_t gp = {.max_tokens = g->root->min_len + extra, .grammar = g};
        sample_params_default(&gp.sample);
        gp.sample.temperature = rnd(4) * 0.5f; /* greedy to hot */
        gp.sample.seed = (uint64_t)i;
        engine_gen_result_t res;
        o.len = 0;
        o.text[0] = 0;
        assert_int_equal(engine_generate(s, ids, np, &gp, on_token, &o, &res), 0);
        n_tok += res.n_generated;
        n_eos += res.finish == ENGINE_FINISH_EOS;
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithOpts(o.text, &end, true);
        if (!v || !res.complete || !validate(schema, v, strict)) {
            fprintf(stderr, "complete %d, finish %d, %d generated\noutput %s\n", res.complete,
                    (int)res.finish, res.n_generated, o.text);
            fail_msg("generation %d (strict %d, %d tokens max): %s\nschema %s\noutput %s", i,
                     strict, gp.max_tokens, !v ? "does not parse" : "does not validate", txt,
                     o.text);
        }
        cJSON_Delete(v);
        cJSON_free(txt);
        cJSON_Delete(schema);
        grammar_free(g);
    }
    print_message("# %d generations under random schemas parsed and validated (%d tokens, %d "
                  "ended by EOS, the rest by the budget)\n",
                  n, n_tok, n_eos);
    engine_session_free(s);
    engine_free(e);
}

/* ========================================================= tool calls ===== */

static const char *call_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"f2\"}}]";

/* Compiles a tools array text; rc and err for the caller. */
static int compile_tools(const char *tools, const char *only, grammar_t **g, char *err,
                         size_t errlen)
{
    cJSON *j = cJSON_Parse(tools);
    assert_non_null(j);
    *g = NULL;
    int rc = jsonschema_compile_tools(j, only, g, err, errlen);
    cJSON_Delete(j);
    return rc;
}

static void test_call_machine(void **state)
{
    (void)state;
    grammar_t *g;
    char err[256];
    assert_int_equal(compile_tools(call_tools, NULL, &g, err, sizeof err), 0);
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":1}}"), 1);
    assert_int_equal(run(g, " {\"name\":\"f\",\"arguments\": {\"x\":-3}}"), 1);
    assert_int_equal(run(g, "{\"name\":\"f2\",\"arguments\":{}}"), 1);
    assert_int_equal(run(g, "{\"name\":\"f2\",\"arguments\":{\"x\":1}}"), -1); /* no params */
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{}}"), -1);         /* x required */
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":\"1\"}}"), -1);
    assert_int_equal(run(g, "{\"name\":\"g\",\"arguments\":{}}"), -1);         /* unknown */
    assert_int_equal(run(g, "{\"arguments\":{},\"name\":\"f2\"}"), -1);        /* fixed order */
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":1} }"), -1); /* one gap */
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":1}"), 0);
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":1}}}"), -1);
    assert_int_equal(run(g, "hello"), -1);
    /* from {"name":"f the shortest end is 2","arguments":{}} (f2) */
    grammar_state_t st;
    grammar_state_init(&st, g);
    assert_int_equal(grammar_state_feed(&st, "{\"name\":\"f", 10), 0);
    assert_int_equal(grammar_state_close_cost(&st), (int)strlen("2\",\"arguments\":{}}"));
    assert_int_equal(g->root->min_len, (int)strlen("{\"name\":\"f2\",\"arguments\":{}}"));
    grammar_free(g);
    /* a named function: only its calls */
    assert_int_equal(compile_tools(call_tools, "f", &g, err, sizeof err), 0);
    assert_int_equal(run(g, "{\"name\":\"f\",\"arguments\":{\"x\":7}}"), 1);
    assert_int_equal(run(g, "{\"name\":\"f2\",\"arguments\":{}}"), -1);
    grammar_free(g);
    static const struct {
        const char *tools, *only, *word;
        int rc;
    } bad[] = {
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]", NULL, "function.name",
         SY_EINVAL},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\","
         "\"function\":{\"name\":\"a\"}}]",
         NULL, "twice", SY_EINVAL},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":"
         "\"string\"}}}]",
         NULL, "parameters", SY_EUNSUPPORTED},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"type\":"
         "\"object\",\"properties\":{\"q\":{\"type\":\"string\",\"pattern\":\"x\"}}}}}]",
         NULL, "pattern", SY_EUNSUPPORTED},
        {"[{\"type\":\"retrieval\"}]", NULL, "function", SY_EINVAL},
        {"[]", NULL, "non-empty", SY_EINVAL},
        {"{}", NULL, "non-empty", SY_EINVAL},
        {"[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}]", "nope", "nope", SY_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = compile_tools(bad[i].tools, bad[i].only, &g, err, sizeof err);
        if (rc != bad[i].rc || !strstr(err, bad[i].word))
            fail_msg("%s: rc %d, err \"%s\"", bad[i].tools, rc, err);
        assert_null(g);
    }
}

/* A random schema whose root is an object (a function's parameters). */
static cJSON *gen_params(void)
{
    for (;;) {
        cJSON *s = gen_schema(0, true);
        if (!strcmp(cJSON_GetObjectItem(s, "type")->valuestring, "object")) return s;
        cJSON_Delete(s);
    }
}

/* Random tool sets, decoded by stories260K as required, named or auto calls until n
 * calls were made (auto answers that chose text are counted apart); each
 * call must parse as {"name", "arguments"} with a declared name (the named one when
 * named) and arguments valid against that function's parameters. */
static void test_call_generations(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);
        skip();
    }
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = 512});
    const char *env = getenv("SY_GRAMMAR_TOOL_CALLS");
    int n = env ? atoi(env) : 200;
    static const char *names[] = {"get_weather", "search", "lookup-user", "f", "send_mail2"};
    static const char *prompts[] = {"Once upon a time", "{", "The answer is", "Tim said"};
    const char *seed = getenv("SY_GRAMMAR_SEED");
    rng = (seed ? strtoull(seed, NULL, 10) : 12345) ^ 0x5eed;
    static out_t o;
    int n_calls = 0, n_auto = 0, n_auto_calls = 0, n_tok = 0;
    for (int i = 0; n_calls < n; i++) {
        int nt = 1 + (int)rnd(4);
        unsigned first = rnd(5);
        cJSON *tools = cJSON_CreateArray();
        cJSON *params[4];
        bool strict[4];
        for (int k = 0; k < nt; k++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject(t, "function");
            cJSON_AddStringToObject(fn, "name", names[(first + (unsigned)k) % 5]);
            strict[k] = rnd(2);
            if (strict[k]) cJSON_AddTrueToObject(fn, "strict");
            params[k] = rnd(6) ? gen_params() : NULL;
            if (params[k]) cJSON_AddItemReferenceToObject(fn, "parameters", params[k]);
            cJSON_AddItemToArray(tools, t);
        }
        unsigned mode = rnd(4); /* 0 required, 1 named, 2 auto, 3 required */
        if (mode == 3) mode = 0;
        int named = (int)rnd((unsigned)nt);
        const char *only = mode == 1 ? names[(first + (unsigned)named) % 5] : NULL;
        grammar_t *g = NULL;
        int rc = jsonschema_compile_tools(tools, only, &g, err, sizeof err);
        if (rc) fail_msg("compile tools: %s", err);
        int ids[64];
        const char *pr = prompts[rnd(4)];
        int np = engine_tokenize(e, pr, strlen(pr), true, false, ids, 64);
        int extra = i % 4 ? (int)rnd(160) : (int)rnd(4);
        engine_gen_params_t gp = {
            .max_tokens = g->root->min_len + extra, .grammar = g, .grammar_optional = mode == 2};
        sample_params_default(&gp.sample);
        gp.sample.temperature = rnd(4) * 0.5f;
        gp.sample.seed = (uint64_t)i;
        engine_gen_result_t res;
        o.len = 0;
        o.text[0] = 0;
        assert_int_equal(engine_generate(s, ids, np, &gp, on_token, &o, &res), 0);
        n_tok += res.n_generated;
        n_auto += mode == 2;
        if (mode == 2 && !res.constrained) { /* the model chose text: nothing to check */
            assert_false(res.complete);
            goto next;
        }
        assert_true(res.constrained);
        n_calls++;
        n_auto_calls += mode == 2;
        cJSON *v = cJSON_ParseWithOpts(o.text, NULL, true);
        cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
        cJSON *args = cJSON_GetObjectItemCaseSensitive(v, "arguments");
        int which = -1;
        for (int k = 0; k < nt && cJSON_IsString(name); k++)
            if (!strcmp(name->valuestring, names[(first + (unsigned)k) % 5])) which = k;
        bool ok = v && res.complete && cJSON_GetArraySize(v) == 2 && which >= 0 &&
                  (!only || which == named) && cJSON_IsObject(args);
        if (ok && params[which]) ok = validate(params[which], args, strict[which]);
        if (ok && !params[which]) ok = cJSON_GetArraySize(args) == 0;
        if (!ok) {
            char *txt = cJSON_PrintUnformatted(tools);
            fail_msg("call %d (mode %u, %d tokens max): invalid\ntools %s\noutput %s", i, mode,
                     gp.max_tokens, txt, o.text);
        }
        cJSON_Delete(v);
    next:
        for (int k = 0; k < nt; k++)
            cJSON_Delete(params[k]);
        cJSON_Delete(tools);
        grammar_free(g);
    }
    print_message("# %d tool calls under random tool sets parsed and validated (%d tokens; "
                  "tool_choice auto: %d of %d chose a call)\n",
                  n_calls, n_tok, n_auto_calls, n_auto);
    assert_true(n_calls > 0);
    engine_session_free(s);
    engine_free(e);
}

/* tool_choice auto (grammar_optional) on steered logits: stories260K never starts
 * with '{' by itself, so the first step's logits are set by hand (the engine's
 * sampling step takes logits from its caller) and the later steps get random ones.
 * A first token '{' must give a complete, valid call; any other first token free text
 * with no grammar (a '"' right after it would be refused by the call grammar). */
static void test_call_auto_rule(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256], piece[64];
    snprintf(bin, sizeof bin, "%s/data/models/llama2c/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/data/models/llama2c/tok512.bin", shared);
    if (access(bin, R_OK) || access(tok, R_OK)) {
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);
        skip();
    }
    engine_t *e;
    assert_int_equal(engine_load(bin, tok, &e, err, sizeof err), 0);
    engine_session_t *s = engine_session_new(e, &(engine_session_opts_t){.n_ctx = 512});
    int n_vocab = tokenizer_n_vocab(e->model->tok), brace = -1, quote = -1, word = -1;
    char wtext[80] = "";
    for (int id = 0; id < n_vocab; id++) {
        int k = engine_token_text(e, -1, id, piece, sizeof piece - 1);
        piece[k > 0 ? k : 0] = 0;
        if (!strcmp(piece, "{")) brace = id;
        if (!strcmp(piece, "\"")) quote = id;
        if (word < 0 && k >= 3 && strspn(piece, "abcdefghijklmnopqrstuvwxyz") == (size_t)k) {
            word = id;
            snprintf(wtext, sizeof wtext, "%s\"", piece);
        }
    }
    assert_true(brace >= 0 && quote >= 0 && word >= 0);
    grammar_t *g;
    assert_int_equal(compile_tools(call_tools, NULL, &g, err, sizeof err), 0);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    static out_t o;
    for (int round = 0; round < 40; round++) {
        bool call = round % 2 == 0;
        engine_gen_params_t gp = {.max_tokens = 60, .grammar = g, .grammar_optional = true};
        sample_params_default(&gp.sample);
        gp.sample.seed = (uint64_t)round;
        engine_gen_result_t res;
        int one = 1;
        assert_int_equal(engine_gen_check(s, &one, 1, &res), 0);
        o.len = 0;
        o.text[0] = 0;
        engine_gen_start(s, &gp, on_token, &o, &res, 0);
        int next, step = 0;
        do {
            for (int i = 0; i < n_vocab; i++)
                logits[i] = (float)rnd(1000) / 250.0f;
            if (step == 0) logits[call ? brace : word] = 40;
            if (step == 1 && !call) logits[quote] = 40; /* free text takes it */
            step++;
        } while (engine_gen_step(s, logits, &next));
        engine_gen_end(s);
        assert_int_equal(res.constrained, call);
        if (!call) {
            assert_false(res.complete);
            if (strncmp(o.text, wtext, strlen(wtext)))
                fail_msg("auto text %d: %s (expected it to begin %s)", round, o.text, wtext);
            continue;
        }
        cJSON *v = cJSON_ParseWithOpts(o.text, NULL, true);
        cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
        cJSON *args = cJSON_GetObjectItemCaseSensitive(v, "arguments");
        if (!v || !res.complete || !cJSON_IsString(name) || !cJSON_IsObject(args))
            fail_msg("auto call %d: %s", round, o.text);
        if (!strcmp(name->valuestring, "f"))
            assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(args, "x")));
        else
            assert_int_equal(cJSON_GetArraySize(args), 0);
        cJSON_Delete(v);
    }
    free(logits);
    grammar_free(g);
    engine_session_free(s);
    engine_free(e);
}

int main(void)
{
    const char *sh = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", sh ? sh : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_object),     cmocka_unit_test(test_schema_machine),
        cmocka_unit_test(test_schema_refusals), cmocka_unit_test(test_generations),
        cmocka_unit_test(test_call_machine),    cmocka_unit_test(test_call_generations),
        cmocka_unit_test(test_call_auto_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
