/* jsonschema.c — JSON Schema subset to grammar nodes (see jsonschema.h). */
#include "engine/jsonschema.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

typedef struct compiler {
    grammar_t *g;
    bool strict;
    char *err;
    size_t errlen;
    char path[256]; /* JSON pointer of the schema being compiled */
} compiler_t;

static int fail(compiler_t *c, int rc, const char *fmt, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof msg, fmt, what);
    snprintf(c->err, c->errlen, "%s at %s", msg, c->path[0] ? c->path : "/");
    return rc;
}

static grammar_node_t *node_new(compiler_t *c)
{
    grammar_node_t *n = arena_alloc(&c->g->arena, sizeof *n);
    memset(n, 0, sizeof *n);
    n->max_items = -1;
    n->items = (grammar_node_t *)grammar_node_any();
    return n;
}

static unsigned type_bit(const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"object", GRAMMAR_OBJECT},   {"array", GRAMMAR_ARRAY},
                 {"string", GRAMMAR_STRING},   {"number", GRAMMAR_NUMBER},
                 {"integer", GRAMMAR_INTEGER}, {"boolean", GRAMMAR_BOOLEAN},
                 {"null", GRAMMAR_NULL}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name)) return names[i].bit;
    return 0;
}

static bool known_keyword(const char *k)
{
    static const char *const kw[] = {"type",    "properties", "required", "additionalProperties",
                                     "items",   "minItems",   "maxItems", "enum",
                                     "const",   "anyOf",      "title",    "description",
                                     "default", "examples",   "$schema",  "$id",
                                     "$comment"};
    for (size_t i = 0; i < sizeof kw / sizeof *kw; i++)
        if (!strcmp(k, kw[i])) return true;
    return false;
}

static int compile(compiler_t *c, const cJSON *s, int depth, grammar_node_t **out);

/* Descends into key (appended to the path) to compile a child schema. */
static int compile_child(compiler_t *c, const cJSON *s, const char *key, int depth,
                         grammar_node_t **out)
{
    size_t len = strlen(c->path);
    snprintf(c->path + len, sizeof c->path - len, "/%s", key);
    int rc = compile(c, s, depth + 1, out);
    if (!rc) c->path[len] = 0;
    return rc;
}

static int get_count(compiler_t *c, const cJSON *v, const char *name, int *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 100000 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return fail(c, SY_EINVAL, "%s must be a non-negative integer", name);
    *out = (int)v->valuedouble;
    return 0;
}

/* enum / const: the compact JSON text of each allowed value. */
static int compile_enum(compiler_t *c, const cJSON *vals, bool is_const, grammar_node_t *n)
{
    int cnt = is_const ? 1 : cJSON_GetArraySize(vals);
    if (!is_const && (!cJSON_IsArray(vals) || cnt == 0))
        return fail(c, SY_EINVAL, "%s must be a non-empty array", "enum");
    if (cnt > GRAMMAR_MAX_PROPS)
        return fail(c, SY_EUNSUPPORTED, "%s with more than 64 values", "enum");
    n->types = GRAMMAR_ENUM;
    n->n_lits = cnt;
    n->lits = arena_alloc(&c->g->arena, (size_t)cnt * sizeof *n->lits);
    n->llen = arena_alloc(&c->g->arena, (size_t)cnt * sizeof *n->llen);
    for (int i = 0; i < cnt; i++) {
        const cJSON *v = is_const ? vals : cJSON_GetArrayItem(vals, i);
        char *txt = cJSON_PrintUnformatted(v);
        if (!txt) return fail(c, SY_EINVAL, "%s value cannot be printed", "enum");
        size_t l = strlen(txt);
        n->lits[i] = arena_strndup(&c->g->arena, txt, l);
        n->llen[i] = (int)l;
        cJSON_free(txt);
    }
    return 0;
}

static int compile_object(compiler_t *c, const cJSON *s, int depth, grammar_node_t *n)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (addl && !cJSON_IsBool(addl))
        return fail(c, SY_EUNSUPPORTED, "%s as a schema is not supported", "additionalProperties");
    if (props && !cJSON_IsObject(props))
        return fail(c, SY_EINVAL, "%s must be an object", "properties");
    int np = props ? cJSON_GetArraySize(props) : 0;
    if (np > GRAMMAR_MAX_PROPS)
        return fail(c, SY_EUNSUPPORTED, "%s: more than 64 properties", "properties");
    /* no properties: any object, unless additionalProperties false (then only {}) */
    n->free_obj = np == 0 && !cJSON_IsFalse(addl);
    n->n_props = np;
    n->keys = arena_alloc(&c->g->arena, (size_t)(np ? np : 1) * sizeof *n->keys);
    n->klen = arena_alloc(&c->g->arena, (size_t)(np ? np : 1) * sizeof *n->klen);
    n->props = arena_alloc(&c->g->arena, (size_t)(np ? np : 1) * sizeof *n->props);
    int i = 0;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next, i++) {
        for (const char *k = p->string; *k; k++)
            if ((unsigned char)*k < 0x20 || *k == '"' || *k == '\\')
                return fail(c, SY_EUNSUPPORTED, "property name \"%s\" needs escaping", p->string);
        n->klen[i] = (int)strlen(p->string);
        n->keys[i] = arena_strndup(&c->g->arena, p->string, (size_t)n->klen[i]);
        char where[160];
        snprintf(where, sizeof where, "properties/%s", p->string);
        int rc = compile_child(c, p, where, depth, &n->props[i]);
        if (rc) return rc;
    }
    if (c->strict) {
        n->required = np >= 64 ? ~0ull : (1ull << np) - 1;
    } else if (req) {
        if (!cJSON_IsArray(req)) return fail(c, SY_EINVAL, "%s must be an array", "required");
        for (const cJSON *r = req->child; r; r = r->next) {
            int k = -1;
            for (int j = 0; j < np && k < 0; j++)
                if (cJSON_IsString(r) && !strcmp(r->valuestring, n->keys[j])) k = j;
            if (k < 0)
                return fail(c, SY_EINVAL, "required names %s, which is not in properties",
                            cJSON_IsString(r) ? r->valuestring : "a non-string");
            n->required |= 1ull << k;
        }
    }
    return 0;
}

static int compile_array(compiler_t *c, const cJSON *s, int depth, grammar_node_t *n)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    if (items && cJSON_IsArray(items))
        return fail(c, SY_EUNSUPPORTED, "%s as a list (tuple form) is not supported", "items");
    if (items) {
        int rc = compile_child(c, items, "items", depth, &n->items);
        if (rc) return rc;
    }
    if (mn && get_count(c, mn, "minItems", &n->min_items)) return SY_EINVAL;
    if (mx && get_count(c, mx, "maxItems", &n->max_items)) return SY_EINVAL;
    if (n->max_items >= 0 && n->min_items > n->max_items)
        return fail(c, SY_EINVAL, "%s exceeds maxItems", "minItems");
    return 0;
}

/* anyOf: branches of plain types merged into one node (the first byte picks one). */
static int compile_anyof(compiler_t *c, const cJSON *s, const cJSON *any, int depth,
                         grammar_node_t *n)
{
    for (const cJSON *k = s->child; k; k = k->next)
        if (strcmp(k->string, "anyOf") && strcmp(k->string, "title") &&
            strcmp(k->string, "description"))
            return fail(c, SY_EUNSUPPORTED, "%s next to anyOf is not supported", k->string);
    if (!cJSON_IsArray(any) || !cJSON_GetArraySize(any))
        return fail(c, SY_EINVAL, "%s must be a non-empty array", "anyOf");
    for (const cJSON *b = any->child; b; b = b->next) {
        grammar_node_t *x;
        int rc = compile_child(c, b, "anyOf", depth, &x);
        if (rc) return rc;
        if (x->types & GRAMMAR_ENUM)
            return fail(c, SY_EUNSUPPORTED, "%s branches with enum/const are not supported",
                        "anyOf");
        if (x->types & n->types & (GRAMMAR_OBJECT | GRAMMAR_ARRAY))
            return fail(c, SY_EUNSUPPORTED, "%s with two object or two array branches", "anyOf");
        if (x->types & GRAMMAR_OBJECT) {
            n->free_obj = x->free_obj;
            n->n_props = x->n_props;
            n->keys = x->keys;
            n->klen = x->klen;
            n->props = x->props;
            n->required = x->required;
        }
        if (x->types & GRAMMAR_ARRAY) {
            n->items = x->items;
            n->min_items = x->min_items;
            n->max_items = x->max_items;
        }
        n->types |= x->types;
    }
    return 0;
}

static int compile(compiler_t *c, const cJSON *s, int depth, grammar_node_t **out)
{
    if (depth > GRAMMAR_MAX_SCHEMA_DEPTH)
        return fail(c, SY_EUNSUPPORTED, "schema nested deeper than %s levels", "12");
    if (cJSON_IsTrue(s)) {
        *out = (grammar_node_t *)grammar_node_any();
        return 0;
    }
    if (!cJSON_IsObject(s)) return fail(c, SY_EINVAL, "a schema must be an %s", "object");
    for (const cJSON *k = s->child; k; k = k->next)
        if (!known_keyword(k->string))
            return fail(c, SY_EUNSUPPORTED, "unsupported JSON Schema keyword \"%s\"", k->string);
    grammar_node_t *n = node_new(c);
    *out = n;
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type");
    int rc = 0;
    if (any) {
        rc = compile_anyof(c, s, any, depth, n);
    } else if (en || cn) {
        if (en && cn) return fail(c, SY_EUNSUPPORTED, "%s together with enum", "const");
        rc = compile_enum(c, en ? en : cn, cn != NULL, n);
    } else {
        if (cJSON_IsString(ty)) {
            n->types = type_bit(ty->valuestring);
            if (!n->types) return fail(c, SY_EUNSUPPORTED, "type \"%s\"", ty->valuestring);
        } else if (cJSON_IsArray(ty)) {
            for (const cJSON *t = ty->child; t; t = t->next) {
                unsigned b = cJSON_IsString(t) ? type_bit(t->valuestring) : 0;
                if (!b) return fail(c, SY_EINVAL, "%s list holds an unknown type", "type");
                n->types |= b;
            }
        } else if (ty) {
            return fail(c, SY_EINVAL, "%s must be a string or a list", "type");
        } else if (cJSON_GetObjectItemCaseSensitive(s, "properties")) {
            n->types = GRAMMAR_OBJECT;
        } else if (cJSON_GetObjectItemCaseSensitive(s, "items")) {
            n->types = GRAMMAR_ARRAY;
        } else {
            *out = (grammar_node_t *)grammar_node_any();
            return 0;
        }
        if (n->types & GRAMMAR_OBJECT) rc = compile_object(c, s, depth, n);
        if (!rc && n->types & GRAMMAR_ARRAY) rc = compile_array(c, s, depth, n);
    }
    if (rc) return rc;
    if ((n->types & (GRAMMAR_NUMBER | GRAMMAR_INTEGER)) == (GRAMMAR_NUMBER | GRAMMAR_INTEGER))
        n->types &= ~(unsigned)GRAMMAR_INTEGER;
    grammar_node_finish(n);
    return 0;
}

int jsonschema_compile_json(const cJSON *schema, bool strict, grammar_t **out, char *err,
                            size_t errlen)
{
    compiler_t c = {.g = grammar_new(), .strict = strict, .err = err, .errlen = errlen};
    int rc = compile(&c, schema, 0, &c.g->root);
    if (rc) {
        grammar_free(c.g);
        return rc;
    }
    *out = c.g;
    return 0;
}

int jsonschema_compile(const char *text, size_t len, bool strict, grammar_t **out, char *err,
                       size_t errlen)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        snprintf(err, errlen, "schema is not valid JSON");
        return SY_EPARSE;
    }
    int rc = jsonschema_compile_json(j, strict, out, err, errlen);
    cJSON_Delete(j);
    return rc;
}

/* A function name as OpenAI allows it: 1-64 of [A-Za-z0-9_-] (never needs escaping). */
static bool tool_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* One function's arguments node: its parameters schema, which must describe an
 * object (absent: only {}). */
static int compile_params(compiler_t *c, const cJSON *params, grammar_node_t **out)
{
    if (!params) {
        grammar_node_t *n = node_new(c);
        n->types = GRAMMAR_OBJECT;
        n->keys = arena_alloc(&c->g->arena, sizeof *n->keys);
        n->klen = arena_alloc(&c->g->arena, sizeof *n->klen);
        n->props = arena_alloc(&c->g->arena, sizeof *n->props);
        grammar_node_finish(n);
        *out = n;
        return 0;
    }
    int rc = compile(c, params, 1, out);
    if (rc) return rc;
    if (*out == grammar_node_any()) { /* {} or true: any object */
        grammar_node_t *n = node_new(c);
        n->types = GRAMMAR_OBJECT;
        n->free_obj = true;
        grammar_node_finish(n);
        *out = n;
    } else if ((*out)->types != GRAMMAR_OBJECT) {
        return fail(c, SY_EUNSUPPORTED, "%s must describe an object (type object)", "parameters");
    }
    return 0;
}

int jsonschema_compile_tools(const cJSON *tools, const char *only, grammar_t **out, char *err,
                             size_t errlen)
{
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0) {
        snprintf(err, errlen, "tools must be a non-empty array");
        return SY_EINVAL;
    }
    compiler_t c = {.g = grammar_new(), .err = err, .errlen = errlen};
    grammar_node_t *root = arena_alloc(&c.g->arena, sizeof *root);
    memset(root, 0, sizeof *root);
    root->types = GRAMMAR_CALL;
    root->max_items = -1;
    root->items = (grammar_node_t *)grammar_node_any();
    int cnt = cJSON_GetArraySize(tools);
    root->lits = arena_alloc(&c.g->arena, (size_t)cnt * sizeof *root->lits);
    root->llen = arena_alloc(&c.g->arena, (size_t)cnt * sizeof *root->llen);
    root->props = arena_alloc(&c.g->arena, (size_t)cnt * sizeof *root->props);
    int i = 0, rc = 0;
    for (const cJSON *t = tools->child; t && !rc; t = t->next, i++) {
        snprintf(c.path, sizeof c.path, "tools[%d]", i);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsObject(fn)) {
            rc = fail(&c, SY_EINVAL, "a tool must be {\"type\": \"%s\", \"function\": {...}}",
                      "function");
        } else if (!cJSON_IsString(name) || !tool_name_ok(name->valuestring)) {
            rc = fail(&c, SY_EINVAL, "function.name must be 1-64 of %s", "[A-Za-z0-9_-]");
        } else {
            char lit[128];
            int l = snprintf(lit, sizeof lit, "{\"name\":\"%s\",\"arguments\":", name->valuestring);
            for (int k = 0; k < root->n_lits && !rc; k++)
                if (!strcmp(root->lits[k], lit))
                    rc = fail(&c, SY_EINVAL, "function name \"%s\" appears twice",
                              name->valuestring);
            if (rc || (only && strcmp(only, name->valuestring))) continue;
            if (root->n_lits >= GRAMMAR_MAX_PROPS) {
                rc = fail(&c, SY_EUNSUPPORTED, "more than %s functions", "64");
                break;
            }
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
            c.strict = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fn, "strict"));
            snprintf(c.path, sizeof c.path, "tools[%d].function.parameters", i);
            rc = compile_params(&c, params, &root->props[root->n_lits]);
            if (rc) break;
            root->lits[root->n_lits] = arena_strndup(&c.g->arena, lit, (size_t)l);
            root->llen[root->n_lits] = l;
            root->n_lits++;
        }
    }
    if (!rc && root->n_lits == 0) {
        snprintf(err, errlen, "tool_choice names function \"%s\", which is not in tools",
                 only ? only : "");
        rc = SY_EINVAL;
    }
    if (rc) {
        grammar_free(c.g);
        return rc;
    }
    grammar_node_finish(root);
    c.g->root = root;
    *out = c.g;
    return 0;
}
