/* jinja.c — a Jinja-subset interpreter for chat templates. See jinja.h.
 *
 * Chapters: values, lexer, parser, runtime (expressions, filters, statements),
 * public API. The parser builds a tree in the template's arena; a render converts
 * the context into values in its own arena, walks the tree and drops the arena.
 * Runtime errors unwind with longjmp to jinja_render: everything a render allocates
 * lives in the arena, so nothing leaks on the way out.
 */
#include "engine/jinja.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/mem.h"

/* ============================================================ values ==== */

typedef enum {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_FN
} jv_kind_t;

typedef struct jstr {
    const char *s;
    uint8_t *t; /* (n) 1 = byte came from the context; NULL: none did */
    size_t n;
} jstr_t;

struct jlist;
struct jdict;
struct jfn;

typedef struct jv {
    uint8_t k;     /* jv_kind_t */
    uint8_t tuple; /* JV_LIST: a tuple; JV_DICT: a namespace */
    union {
        bool b;
        int64_t i;
        double f;
        jstr_t *s;
        struct jlist *l;
        struct jdict *d;
        struct jfn *fn;
    };
} jv_t;

typedef struct jlist {
    jv_t *v;
    size_t n, cap;
} jlist_t;

typedef struct jdict {
    jstr_t **key;
    jv_t *v;
    size_t n, cap;
} jdict_t;

struct node;
struct scope;
typedef struct jfn {
    int builtin;             /* FN_* or 0 for a macro */
    const struct node *node; /* the macro */
    struct scope *env;       /* the scope the macro was defined in */
    jv_t self;               /* bound object of a method */
} jfn_t;

/* ============================================================= lexer ==== */

typedef enum {
    T_EOF,
    T_TEXT,
    T_OSTMT,
    T_CSTMT,
    T_OEXPR,
    T_CEXPR,
    T_NAME,
    T_STR,
    T_INT,
    T_FLOAT,
    T_OP
} tok_kind_t;

typedef struct tok {
    tok_kind_t k;
    int line;
    const char *s; /* T_TEXT, T_NAME, T_OP: in the source; T_STR: decoded */
    size_t n;
    int64_t i;
    double f;
} tok_t;

struct jinja_tmpl {
    arena_t arena; /* tokens' strings and the tree */
    char *src;     /* preprocessed source (owned) */
    tok_t *toks;
    size_t n_toks, cap_toks;
    struct node *root;
};

typedef struct lexer {
    jinja_tmpl_t *t;
    const char *s;
    size_t n, i;
    int line;
    char *err;
    size_t errlen;
} lexer_t;

static int lex_fail(lexer_t *L, const char *msg)
{
    snprintf(L->err, L->errlen, "template line %d: %s", L->line, msg);
    return SY_EPARSE;
}

static tok_t *tok_push(jinja_tmpl_t *t, tok_kind_t k, int line, const char *s, size_t n)
{
    if (t->n_toks == t->cap_toks) {
        t->cap_toks = t->cap_toks ? 2 * t->cap_toks : 256;
        t->toks = mem_realloc(t->toks, t->cap_toks * sizeof *t->toks);
    }
    tok_t *k2 = &t->toks[t->n_toks++];
    *k2 = (tok_t){.k = k, .line = line, .s = s, .n = n};
    return k2;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The preprocessing Hugging Face's templating applies before lexing: one trailing
 * newline dropped; lstrip_blocks (spaces and tabs from a line's start up to "{%",
 * "{#" or "{-" removed); trim_blocks (a newline right after "%}", "#}" or "-}"
 * removed). Returns an owned string. */
static char *preprocess(const char *src, size_t len, size_t *out_len)
{
    if (len && src[len - 1] == '\n') len--;
    char *a = mem_alloc(len + 1);
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        if (i == 0 || src[i - 1] == '\n' || src[i - 1] == '\r') {
            size_t j = i;
            while (j < len && (src[j] == ' ' || src[j] == '\t'))
                j++;
            if (j > i && j + 1 < len && src[j] == '{' &&
                (src[j + 1] == '%' || src[j + 1] == '#' || src[j + 1] == '-')) {
                i = j;
                continue;
            }
        }
        a[w++] = src[i++];
    }
    size_t n = w;
    char *b = mem_alloc(n + 1);
    w = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == '\n' && i >= 2 && a[i - 1] == '}' &&
            (a[i - 2] == '%' || a[i - 2] == '#' || a[i - 2] == '-'))
            continue;
        b[w++] = a[i];
    }
    b[w] = 0;
    mem_free(a);
    a = b;
    *out_len = w;
    return a;
}

/* Strips trailing whitespace from the last text token (for "{%-", "{{-", "{#-"). */
static void strip_prev_text(jinja_tmpl_t *t)
{
    if (!t->n_toks || t->toks[t->n_toks - 1].k != T_TEXT) return;
    tok_t *k = &t->toks[t->n_toks - 1];
    while (k->n && is_space(k->s[k->n - 1]))
        k->n--;
    if (!k->n) t->n_toks--;
}

static const char *const ops3[] = {"//", "**", "==", "!=", "<=", ">=", NULL};

/* Decodes a string literal at L->i (on its quote) into the arena. */
static int lex_string(lexer_t *L)
{
    char q = L->s[L->i++];
    size_t end = L->i; /* the decoded text is at most as long as the literal */
    while (end < L->n && L->s[end] != q)
        end += L->s[end] == '\\' ? 2 : 1;
    char *o = arena_alloc(&L->t->arena, (end < L->n ? end : L->n) - L->i + 4);
    size_t w = 0;
    for (;;) {
        if (L->i >= L->n) return lex_fail(L, "unterminated string literal");
        char c = L->s[L->i++];
        if (c == q) break;
        if (c == '\n') L->line++;
        if (c != '\\') {
            o[w++] = c;
            continue;
        }
        if (L->i >= L->n) return lex_fail(L, "unterminated string literal");
        c = L->s[L->i++];
        switch (c) {
        case 'n':
            o[w++] = '\n';
            break;
        case 't':
            o[w++] = '\t';
            break;
        case 'r':
            o[w++] = '\r';
            break;
        case 'b':
            o[w++] = '\b';
            break;
        case 'f':
            o[w++] = '\f';
            break;
        case 'v':
            o[w++] = '\v';
            break;
        case '0':
            o[w++] = '\0';
            break;
        case '\\':
        case '\'':
        case '"':
            o[w++] = c;
            break;
        case 'x':
        case 'u': {
            int hl = c == 'x' ? 2 : 4;
            if (L->n - L->i < (size_t)hl) return lex_fail(L, "bad hexadecimal escape");
            unsigned cp = 0;
            for (int k = 0; k < hl; k++) {
                char h = L->s[L->i++];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0) return lex_fail(L, "bad hexadecimal escape");
                cp = cp * 16 + (unsigned)d;
            }
            if (cp < 0x80) {
                o[w++] = (char)cp;
            } else if (cp < 0x800) {
                o[w++] = (char)(0xc0 | (cp >> 6));
                o[w++] = (char)(0x80 | (cp & 0x3f));
            } else {
                o[w++] = (char)(0xe0 | (cp >> 12));
                o[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                o[w++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return lex_fail(L, "unknown escape in a string literal");
        }
    }
    tok_push(L->t, T_STR, L->line, o, w);
    return 0;
}

/* Lexes the inside of a tag up to its closing delimiter (close_c: '%' or '}'). */
static int lex_tag(lexer_t *L, char close_c)
{
    int depth = 0;
    for (;;) {
        while (L->i < L->n && is_space(L->s[L->i]))
            L->line += L->s[L->i++] == '\n';
        if (L->i >= L->n) return lex_fail(L, "unterminated tag");
        const char *p = L->s + L->i;
        size_t left = L->n - L->i;
        bool dash = p[0] == '-' && left >= 3 && p[1] == close_c && p[2] == '}';
        if (depth == 0 && (dash || (left >= 2 && p[0] == close_c && p[1] == '}'))) {
            tok_push(L->t, close_c == '%' ? T_CSTMT : T_CEXPR, L->line, p, 2);
            L->i += dash ? 3 : 2;
            if (dash)
                while (L->i < L->n && is_space(L->s[L->i]))
                    L->line += L->s[L->i++] == '\n';
            return 0;
        }
        char c = p[0];
        if (c == '\'' || c == '"') {
            int rc = lex_string(L);
            if (rc) return rc;
        } else if ((c >= '0' && c <= '9')) {
            size_t j = 0;
            bool fl = false;
            while (j < left && ((p[j] >= '0' && p[j] <= '9') || p[j] == '_'))
                j++;
            if (j + 1 < left && p[j] == '.' && p[j + 1] >= '0' && p[j + 1] <= '9') {
                fl = true;
                j++;
                while (j < left && p[j] >= '0' && p[j] <= '9')
                    j++;
            }
            char num[64];
            size_t w = 0;
            for (size_t k = 0; k < j && w < sizeof num - 1; k++)
                if (p[k] != '_') num[w++] = p[k];
            num[w] = 0;
            tok_t *k = tok_push(L->t, fl ? T_FLOAT : T_INT, L->line, p, j);
            if (fl)
                k->f = strtod(num, NULL);
            else
                k->i = strtoll(num, NULL, 10);
            L->i += j;
        } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t j = 0;
            while (j < left && (p[j] == '_' || (p[j] >= 'a' && p[j] <= 'z') ||
                                (p[j] >= 'A' && p[j] <= 'Z') || (p[j] >= '0' && p[j] <= '9')))
                j++;
            tok_push(L->t, T_NAME, L->line, p, j);
            L->i += j;
        } else {
            size_t j = 1;
            for (int k = 0; ops3[k]; k++)
                if (left >= 2 && !memcmp(p, ops3[k], 2)) j = 2;
            if (j == 1 && !strchr("()[]{},.:|=<>+-*/%~", c))
                return lex_fail(L, "unexpected character");
            if (c == '{') depth++;
            if (c == '}') depth--;
            tok_push(L->t, T_OP, L->line, p, j);
            L->i += j;
        }
    }
}

/* Splits the preprocessed source into text and tag tokens. */
static int lex(lexer_t *L)
{
    while (L->i < L->n) {
        const char *p = L->s + L->i;
        size_t left = L->n - L->i;
        if (left >= 2 && p[0] == '{' && (p[1] == '{' || p[1] == '%' || p[1] == '#')) {
            char kind = p[1];
            bool dash = left >= 3 && p[2] == '-';
            if (dash) strip_prev_text(L->t);
            L->i += dash ? 3 : 2;
            if (kind == '#') {
                const char *e = NULL;
                for (size_t k = L->i; k + 1 < L->n; k++)
                    if (L->s[k] == '#' && L->s[k + 1] == '}') {
                        e = L->s + k;
                        break;
                    }
                if (!e) return lex_fail(L, "unterminated comment");
                for (const char *q = L->s + L->i; q < e; q++)
                    L->line += *q == '\n';
                bool rdash = e > L->s + L->i && e[-1] == '-';
                L->i = (size_t)(e - L->s) + 2;
                if (rdash)
                    while (L->i < L->n && is_space(L->s[L->i]))
                        L->line += L->s[L->i++] == '\n';
                continue;
            }
            tok_push(L->t, kind == '%' ? T_OSTMT : T_OEXPR, L->line, p, 2);
            int rc = lex_tag(L, kind == '%' ? '%' : '}');
            if (rc) return rc;
            continue;
        }
        size_t j = 0;
        while (j < left) {
            if (p[j] == '{' && j + 1 < left &&
                (p[j + 1] == '{' || p[j + 1] == '%' || p[j + 1] == '#'))
                break;
            j++;
        }
        tok_push(L->t, T_TEXT, L->line, p, j);
        for (size_t k = 0; k < j; k++)
            L->line += p[k] == '\n';
        L->i += j;
    }
    tok_push(L->t, T_EOF, L->line, "", 0);
    return 0;
}

/* ============================================================ parser ==== */

typedef enum {
    N_BODY,
    N_TEXT,
    N_OUT,
    N_IF,
    N_FOR,
    N_SET,
    N_MACRO,
    N_BREAK,
    N_CONTINUE,
    N_STR,
    N_INT,
    N_FLOAT,
    N_CONST, /* true/false/none: i = 1, 0, -1 */
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_NAME,
    N_ATTR,
    N_INDEX,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_BIN,
    N_NOT,
    N_NEG,
    N_COND,
    N_KW,
    N_PARAM,
} node_kind_t;

typedef enum {
    OP_ADD = 1,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FDIV,
    OP_MOD,
    OP_POW,
    OP_CAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_IN,
    OP_NOTIN,
    OP_AND,
    OP_OR,
} op_t;

typedef struct node {
    uint8_t k;   /* node_kind_t */
    uint8_t neg; /* N_TEST: is not */
    int line;
    int op;
    struct node *a, *b, *c, *d; /* children; meaning per kind */
    struct node **kids;         /* body, arguments, elements */
    int n_kids;
    struct node **kw; /* keyword arguments (N_KW), dict values, else body */
    int n_kw;
    jstr_t name;          /* identifier, attribute, filter, literal text */
    const char **targets; /* N_FOR: loop variable names (n_targets) */
    size_t *target_len;
    int n_targets;
    int64_t i;
    double f;
} node_t;

#define JINJA_MAX_PARSE_DEPTH 256 /* nested expressions and blocks in the source */

typedef struct parser {
    jinja_tmpl_t *t;
    size_t p; /* current token */
    int depth;
    char *err;
    size_t errlen;
    jmp_buf jb;
} parser_t;

static _Noreturn void perr(parser_t *P, const char *fmt, ...)
{
    const tok_t *k = &P->t->toks[P->p < P->t->n_toks ? P->p : P->t->n_toks - 1];
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(P->err, P->errlen, "template line %d: %s", k->line, msg);
    longjmp(P->jb, 1);
}

static node_t *nnew(parser_t *P, node_kind_t k)
{
    node_t *n = arena_alloc(&P->t->arena, sizeof *n);
    memset(n, 0, sizeof *n);
    n->k = (uint8_t)k;
    n->line = P->t->toks[P->p].line;
    return n;
}

/* A growable node list built in the arena (copied on growth; lists are short). */
static void nlist_add(parser_t *P, node_t ***v, int *n, node_t *x)
{
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, 8...: grow */
        node_t **nv = arena_alloc(&P->t->arena, (size_t)(*n ? 2 * *n : 1) * sizeof *nv);
        if (*n) memcpy(nv, *v, (size_t)*n * sizeof *nv);
        *v = nv;
    }
    (*v)[(*n)++] = x;
}

static tok_t *cur(parser_t *P)
{
    return &P->t->toks[P->p];
}

static bool tok_is(const tok_t *k, tok_kind_t kind, const char *s)
{
    if (k->k != kind) return false;
    size_t l = strlen(s);
    return k->n == l && !memcmp(k->s, s, l);
}

static bool at_op(parser_t *P, const char *s)
{
    return tok_is(cur(P), T_OP, s);
}
static bool at_name(parser_t *P, const char *s)
{
    return tok_is(cur(P), T_NAME, s);
}

static void expect_op(parser_t *P, const char *s)
{
    if (!at_op(P, s)) perr(P, "expected '%s'", s);
    P->p++;
}

static void expect_name_kw(parser_t *P, const char *s)
{
    if (!at_name(P, s)) perr(P, "expected '%s'", s);
    P->p++;
}

static void expect_close(parser_t *P)
{
    if (cur(P)->k != T_CSTMT) perr(P, "expected the end of the tag");
    P->p++;
}

static node_t *parse_expr(parser_t *P);
static node_t *parse_or(parser_t *P);
static node_t *parse_postfix(parser_t *P, node_t *n);
static node_t *parse_primary(parser_t *P);

/* Arguments of a call, filter or test after "(": positional and name=value. */
static void parse_args(parser_t *P, node_t *n)
{
    expect_op(P, "(");
    while (!at_op(P, ")")) {
        if (cur(P)->k == T_NAME && tok_is(&P->t->toks[P->p + 1], T_OP, "=")) {
            node_t *kw = nnew(P, N_KW);
            kw->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
            P->p += 2;
            kw->a = parse_expr(P);
            nlist_add(P, &n->kw, &n->n_kw, kw);
        } else {
            nlist_add(P, &n->kids, &n->n_kids, parse_expr(P));
        }
        if (!at_op(P, ",")) break;
        P->p++;
    }
    expect_op(P, ")");
}

static bool starts_primary(const tok_t *k)
{
    static const char *const stop[] = {"and", "or", "if", "else", "in", "is", "not", NULL};
    if (k->k == T_STR || k->k == T_INT || k->k == T_FLOAT) return true;
    if (k->k == T_OP) return k->n == 1 && (k->s[0] == '(' || k->s[0] == '[' || k->s[0] == '{');
    if (k->k != T_NAME) return false;
    for (int i = 0; stop[i]; i++)
        if (tok_is(k, T_NAME, stop[i])) return false;
    return true;
}

static node_t *parse_postfix(parser_t *P, node_t *n)
{
    for (;;) {
        if (at_op(P, ".")) {
            P->p++;
            if (cur(P)->k != T_NAME && cur(P)->k != T_INT) perr(P, "expected an attribute name");
            node_t *a = nnew(P, N_ATTR);
            a->a = n;
            a->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
            P->p++;
            n = a;
        } else if (at_op(P, "[")) {
            P->p++;
            node_t *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (!at_op(P, ":") && !at_op(P, "]")) parts[np] = parse_expr(P);
                if (at_op(P, ":") && np < 2) {
                    slice = true;
                    np++;
                    P->p++;
                    continue;
                }
                break;
            }
            expect_op(P, "]");
            node_t *x = nnew(P, slice ? N_SLICE : N_INDEX);
            x->a = n;
            x->b = parts[0];
            x->c = parts[1];
            x->d = parts[2];
            if (!slice && !parts[0]) perr(P, "empty subscript");
            n = x;
        } else if (at_op(P, "(")) {
            node_t *c = nnew(P, N_CALL);
            c->a = n;
            parse_args(P, c);
            n = c;
        } else if (at_op(P, "|")) {
            P->p++;
            if (cur(P)->k != T_NAME) perr(P, "expected a filter name");
            node_t *f = nnew(P, N_FILTER);
            f->a = n;
            f->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
            P->p++;
            if (at_op(P, "(")) parse_args(P, f);
            n = f;
        } else if (at_name(P, "is")) {
            P->p++;
            node_t *t = nnew(P, N_TEST);
            if (at_name(P, "not")) t->neg = 1, P->p++;
            if (cur(P)->k != T_NAME) perr(P, "expected a test name");
            t->a = n;
            t->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
            P->p++;
            if (at_op(P, "("))
                parse_args(P, t);
            else if (starts_primary(cur(P)))
                nlist_add(P, &t->kids, &t->n_kids, parse_primary(P));
            n = t;
        } else {
            return n;
        }
    }
}

static node_t *parse_primary(parser_t *P)
{
    tok_t *k = cur(P);
    node_t *n;
    switch (k->k) {
    case T_STR: {
        n = nnew(P, N_STR);
        n->name = (jstr_t){.s = k->s, .n = k->n};
        P->p++;
        while (cur(P)->k == T_STR) { /* adjacent literals concatenate */
            char *s = arena_alloc(&P->t->arena, n->name.n + cur(P)->n + 1);
            memcpy(s, n->name.s, n->name.n);
            memcpy(s + n->name.n, cur(P)->s, cur(P)->n);
            n->name.s = s;
            n->name.n += cur(P)->n;
            P->p++;
        }
        return n;
    }
    case T_INT:
        n = nnew(P, N_INT);
        n->i = k->i;
        P->p++;
        return n;
    case T_FLOAT:
        n = nnew(P, N_FLOAT);
        n->f = k->f;
        P->p++;
        return n;
    case T_NAME:
        n = nnew(P, N_CONST);
        if (tok_is(k, T_NAME, "true") || tok_is(k, T_NAME, "True"))
            n->i = 1;
        else if (tok_is(k, T_NAME, "false") || tok_is(k, T_NAME, "False"))
            n->i = 0;
        else if (tok_is(k, T_NAME, "none") || tok_is(k, T_NAME, "None"))
            n->i = -1;
        else
            n->k = N_NAME, n->name = (jstr_t){.s = k->s, .n = k->n};
        P->p++;
        return n;
    case T_OP:
        if (at_op(P, "(")) {
            P->p++;
            if (at_op(P, ")")) {
                P->p++;
                return nnew(P, N_TUPLE);
            }
            node_t *e = parse_expr(P);
            if (at_op(P, ",")) {
                node_t *t = nnew(P, N_TUPLE);
                nlist_add(P, &t->kids, &t->n_kids, e);
                while (at_op(P, ",")) {
                    P->p++;
                    if (at_op(P, ")")) break;
                    nlist_add(P, &t->kids, &t->n_kids, parse_expr(P));
                }
                e = t;
            }
            expect_op(P, ")");
            return e;
        }
        if (at_op(P, "[")) {
            P->p++;
            n = nnew(P, N_LIST);
            while (!at_op(P, "]")) {
                nlist_add(P, &n->kids, &n->n_kids, parse_expr(P));
                if (!at_op(P, ",")) break;
                P->p++;
            }
            expect_op(P, "]");
            return n;
        }
        if (at_op(P, "{")) {
            P->p++;
            n = nnew(P, N_DICT);
            while (!at_op(P, "}")) {
                nlist_add(P, &n->kids, &n->n_kids, parse_expr(P));
                expect_op(P, ":");
                nlist_add(P, &n->kw, &n->n_kw, parse_expr(P));
                if (!at_op(P, ",")) break;
                P->p++;
            }
            expect_op(P, "}");
            return n;
        }
        break;
    default:
        break;
    }
    perr(P, "unexpected token in an expression");
}

static node_t *bin(parser_t *P, int op, node_t *a, node_t *b)
{
    node_t *n = nnew(P, N_BIN);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static node_t *parse_unary(parser_t *P)
{
    if (at_op(P, "-") || at_op(P, "+")) {
        if (++P->depth > JINJA_MAX_PARSE_DEPTH)
            perr(P, "expressions and blocks nest deeper than %d", JINJA_MAX_PARSE_DEPTH);
        bool neg = at_op(P, "-");
        P->p++;
        node_t *n = nnew(P, N_NEG);
        n->a = parse_unary(P);
        P->depth--;
        return neg ? n : n->a;
    }
    return parse_postfix(P, parse_primary(P));
}

static node_t *parse_pow(parser_t *P)
{
    node_t *n = parse_unary(P);
    while (at_op(P, "**")) {
        P->p++;
        n = bin(P, OP_POW, n, parse_unary(P));
    }
    return n;
}

static node_t *parse_mul(parser_t *P)
{
    node_t *n = parse_pow(P);
    for (;;) {
        int op = at_op(P, "*")    ? OP_MUL
                 : at_op(P, "/")  ? OP_DIV
                 : at_op(P, "//") ? OP_FDIV
                 : at_op(P, "%")  ? OP_MOD
                                  : 0;
        if (!op) return n;
        P->p++;
        n = bin(P, op, n, parse_pow(P));
    }
}

static node_t *parse_add(parser_t *P)
{
    node_t *n = parse_mul(P);
    for (;;) {
        int op = at_op(P, "+") ? OP_ADD : at_op(P, "-") ? OP_SUB : 0;
        if (!op) return n;
        P->p++;
        n = bin(P, op, n, parse_mul(P));
    }
}

static node_t *parse_cat(parser_t *P)
{
    node_t *n = parse_add(P);
    while (at_op(P, "~")) {
        P->p++;
        n = bin(P, OP_CAT, n, parse_add(P));
    }
    return n;
}

static node_t *parse_cmp(parser_t *P)
{
    node_t *n = parse_cat(P);
    for (;;) {
        int op = at_op(P, "==")     ? OP_EQ
                 : at_op(P, "!=")   ? OP_NE
                 : at_op(P, "<")    ? OP_LT
                 : at_op(P, ">")    ? OP_GT
                 : at_op(P, "<=")   ? OP_LE
                 : at_op(P, ">=")   ? OP_GE
                 : at_name(P, "in") ? OP_IN
                                    : 0;
        if (!op && at_name(P, "not") && tok_is(&P->t->toks[P->p + 1], T_NAME, "in")) {
            op = OP_NOTIN;
            P->p++;
        }
        if (!op) return n;
        P->p++;
        n = bin(P, op, n, parse_cat(P));
    }
}

static node_t *parse_not(parser_t *P)
{
    if (at_name(P, "not")) {
        if (++P->depth > JINJA_MAX_PARSE_DEPTH)
            perr(P, "expressions and blocks nest deeper than %d", JINJA_MAX_PARSE_DEPTH);
        P->p++;
        node_t *n = nnew(P, N_NOT);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_cmp(P);
}

static node_t *parse_and(parser_t *P)
{
    node_t *n = parse_not(P);
    while (at_name(P, "and")) {
        P->p++;
        n = bin(P, OP_AND, n, parse_not(P));
    }
    return n;
}

static node_t *parse_or(parser_t *P)
{
    node_t *n = parse_and(P);
    while (at_name(P, "or")) {
        P->p++;
        n = bin(P, OP_OR, n, parse_and(P));
    }
    return n;
}

static node_t *parse_expr(parser_t *P)
{
    if (++P->depth > JINJA_MAX_PARSE_DEPTH)
        perr(P, "expressions and blocks nest deeper than %d", JINJA_MAX_PARSE_DEPTH);
    node_t *n = parse_or(P);
    while (at_name(P, "if")) {
        P->p++;
        node_t *c = nnew(P, N_COND);
        c->a = n;
        c->b = parse_or(P);
        if (at_name(P, "else")) {
            P->p++;
            c->c = parse_or(P);
        }
        n = c;
    }
    P->depth--;
    return n;
}

static node_t *parse_body(parser_t *P, const char *const *ends, const char **which);

/* A block's end keyword matches one of ends? */
static bool at_end(parser_t *P, const char *const *ends, const char **which)
{
    if (cur(P)->k != T_OSTMT || P->t->toks[P->p + 1].k != T_NAME) return false;
    for (int i = 0; ends && ends[i]; i++)
        if (tok_is(&P->t->toks[P->p + 1], T_NAME, ends[i])) {
            *which = ends[i];
            return true;
        }
    return false;
}

static node_t *parse_if(parser_t *P)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    if (++P->depth > JINJA_MAX_PARSE_DEPTH) /* an elif chain recurses */
        perr(P, "expressions and blocks nest deeper than %d", JINJA_MAX_PARSE_DEPTH);
    node_t *n = nnew(P, N_IF);
    n->a = parse_expr(P);
    expect_close(P);
    const char *which = NULL;
    n->b = parse_body(P, ends, &which);
    if (!which) perr(P, "if without endif");
    P->p += 2; /* {% and the keyword */
    if (!strcmp(which, "elif")) {
        n->c = parse_if(P);
    } else if (!strcmp(which, "else")) {
        expect_close(P);
        static const char *const e2[] = {"endif", NULL};
        n->c = parse_body(P, e2, &which);
        if (!which || strcmp(which, "endif")) perr(P, "else without endif");
        P->p += 2;
        expect_close(P);
    } else {
        expect_close(P);
    }
    P->depth--;
    return n;
}

static node_t *parse_stmt(parser_t *P)
{
    P->p++; /* {% */
    tok_t *k = cur(P);
    if (k->k != T_NAME) perr(P, "expected a statement keyword");
    P->p++;
    const char *which = NULL;
    if (tok_is(k, T_NAME, "if")) return parse_if(P);
    if (tok_is(k, T_NAME, "for")) {
        node_t *n = nnew(P, N_FOR);
        bool paren = at_op(P, "(");
        if (paren) P->p++;
        const char *tg[8];
        size_t tl[8];
        for (;;) {
            if (cur(P)->k != T_NAME) perr(P, "expected a loop variable");
            if (n->n_targets == 8) perr(P, "too many loop variables");
            tg[n->n_targets] = cur(P)->s;
            tl[n->n_targets++] = cur(P)->n;
            P->p++;
            if (!at_op(P, ",")) break;
            P->p++;
        }
        n->targets = arena_alloc(&P->t->arena, (size_t)n->n_targets * sizeof *tg);
        n->target_len = arena_alloc(&P->t->arena, (size_t)n->n_targets * sizeof *tl);
        memcpy(n->targets, tg, (size_t)n->n_targets * sizeof *tg);
        memcpy(n->target_len, tl, (size_t)n->n_targets * sizeof *tl);
        if (paren) expect_op(P, ")");
        expect_name_kw(P, "in");
        n->a = parse_or(P);
        if (at_name(P, "if")) {
            P->p++;
            n->b = parse_or(P);
        }
        if (at_name(P, "recursive")) perr(P, "recursive loops are not supported");
        expect_close(P);
        static const char *const ends[] = {"else", "endfor", NULL};
        n->c = parse_body(P, ends, &which);
        if (!which) perr(P, "for without endfor");
        P->p += 2;
        expect_close(P);
        if (!strcmp(which, "else")) {
            static const char *const e2[] = {"endfor", NULL};
            n->d = parse_body(P, e2, &which);
            if (!which) perr(P, "for without endfor");
            P->p += 2;
            expect_close(P);
        }
        return n;
    }
    if (tok_is(k, T_NAME, "set")) {
        node_t *n = nnew(P, N_SET);
        n->a = parse_postfix(P, parse_primary(P));
        if (n->a->k != N_NAME && n->a->k != N_ATTR) perr(P, "can only set a name or an attribute");
        if (at_op(P, "=")) {
            P->p++;
            n->b = parse_expr(P);
            expect_close(P);
        } else {
            expect_close(P);
            static const char *const ends[] = {"endset", NULL};
            n->c = parse_body(P, ends, &which);
            if (!which) perr(P, "set without endset");
            P->p += 2;
            expect_close(P);
        }
        return n;
    }
    if (tok_is(k, T_NAME, "macro")) {
        node_t *n = nnew(P, N_MACRO);
        if (cur(P)->k != T_NAME) perr(P, "expected a macro name");
        n->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
        P->p++;
        expect_op(P, "(");
        while (!at_op(P, ")")) {
            if (cur(P)->k != T_NAME) perr(P, "expected a parameter name");
            node_t *pm = nnew(P, N_PARAM);
            pm->name = (jstr_t){.s = cur(P)->s, .n = cur(P)->n};
            P->p++;
            if (at_op(P, "=")) {
                P->p++;
                pm->a = parse_expr(P);
            }
            nlist_add(P, &n->kids, &n->n_kids, pm);
            if (!at_op(P, ",")) break;
            P->p++;
        }
        expect_op(P, ")");
        expect_close(P);
        static const char *const ends[] = {"endmacro", NULL};
        n->a = parse_body(P, ends, &which);
        if (!which) perr(P, "macro without endmacro");
        P->p += 2;
        expect_close(P);
        return n;
    }
    if (tok_is(k, T_NAME, "break") || tok_is(k, T_NAME, "continue")) {
        node_t *n = nnew(P, tok_is(k, T_NAME, "break") ? N_BREAK : N_CONTINUE);
        expect_close(P);
        return n;
    }
    if (tok_is(k, T_NAME, "generation") || tok_is(k, T_NAME, "endgeneration")) {
        expect_close(P);
        return nnew(P, N_BODY); /* training-only marker: renders nothing */
    }
    P->p--;
    perr(P, "unsupported statement '%.*s'", (int)k->n, k->s);
}

/* Statements until one of ends (left unconsumed, name in *which) or EOF. */
static node_t *parse_body(parser_t *P, const char *const *ends, const char **which)
{
    if (++P->depth > JINJA_MAX_PARSE_DEPTH)
        perr(P, "expressions and blocks nest deeper than %d", JINJA_MAX_PARSE_DEPTH);
    node_t *body = nnew(P, N_BODY);
    *which = NULL;
    for (;;) {
        tok_t *k = cur(P);
        if (k->k == T_EOF) {
            P->depth--;
            return body;
        }
        if (k->k == T_TEXT) {
            node_t *n = nnew(P, N_TEXT);
            n->name = (jstr_t){.s = k->s, .n = k->n};
            P->p++;
            nlist_add(P, &body->kids, &body->n_kids, n);
        } else if (k->k == T_OEXPR) {
            P->p++;
            node_t *n = nnew(P, N_OUT);
            n->a = parse_expr(P);
            if (cur(P)->k != T_CEXPR) perr(P, "expected '}}'");
            P->p++;
            nlist_add(P, &body->kids, &body->n_kids, n);
        } else if (k->k == T_OSTMT) {
            if (at_end(P, ends, which)) {
                P->depth--;
                return body;
            }
            nlist_add(P, &body->kids, &body->n_kids, parse_stmt(P));
        } else {
            perr(P, "unexpected token");
        }
    }
}

int jinja_parse(const char *src, size_t len, jinja_tmpl_t **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    *out = NULL;
    if (len > JINJA_MAX_SOURCE) {
        snprintf(err, errlen, "template: %zu bytes, more than the %u allowed", len,
                 JINJA_MAX_SOURCE);
        return SY_ETOOBIG;
    }
    jinja_tmpl_t *t = mem_calloc(1, sizeof *t);
    arena_init(&t->arena, 64 << 10);
    size_t n;
    t->src = preprocess(src, len, &n);
    lexer_t L = {.t = t, .s = t->src, .n = n, .line = 1, .err = err, .errlen = errlen};
    int rc = lex(&L);
    if (rc) {
        jinja_free(t);
        return rc;
    }
    parser_t P = {.t = t, .err = err, .errlen = errlen};
    if (setjmp(P.jb)) {
        jinja_free(t);
        return SY_EPARSE;
    }
    const char *which = NULL;
    t->root = parse_body(&P, NULL, &which);
    if (cur(&P)->k != T_EOF) perr(&P, "unexpected end tag");
    *out = t;
    return 0;
}

void jinja_free(jinja_tmpl_t *t)
{
    if (!t) return;
    arena_deinit(&t->arena);
    mem_free(t->src);
    mem_free(t->toks);
    mem_free(t);
}

/* =========================================================== runtime ==== */

typedef struct scope {
    struct scope *parent;
    jdict_t *vars;
} scope_t;

typedef struct rt {
    arena_t arena;
    size_t used, max_memory;
    int depth, max_depth;
    long iters, max_iters;
    jinja_out_t *out;
    size_t max_output;
    scope_t *global;
    jinja_out_t *tmp[64]; /* nested outputs of macro calls and set blocks */
    int n_tmp;
    char *err;
    size_t errlen;
    int rc;
    jmp_buf jb;
} rt_t;

static _Noreturn void rfail(rt_t *R, int rc, const node_t *at, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        snprintf(R->err, R->errlen, "template line %d: %s", at->line, msg);
    else
        snprintf(R->err, R->errlen, "template: %s", msg);
    R->rc = rc;
    longjmp(R->jb, 1);
}

static void *ralloc(rt_t *R, size_t n)
{
    R->used += n;
    if (R->used > R->max_memory)
        rfail(R, SY_ETOOBIG, NULL, "the render needs more than %zu bytes of memory", R->max_memory);
    return arena_alloc(&R->arena, n ? n : 1);
}

static const jv_t V_UNDEF = {.k = JV_UNDEF};
static const jv_t V_NONE = {.k = JV_NONE};

static jv_t vbool(bool b)
{
    return (jv_t){.k = JV_BOOL, .b = b};
}
static jv_t vint(int64_t i)
{
    return (jv_t){.k = JV_INT, .i = i};
}
static jv_t vfloat(double f)
{
    return (jv_t){.k = JV_FLOAT, .f = f};
}

/* A new string of n bytes (uninitialised), with a taint mask when taint. */
static jstr_t *str_alloc(rt_t *R, size_t n, bool taint)
{
    jstr_t *s = ralloc(R, sizeof *s);
    char *b = ralloc(R, n + 1);
    b[n] = 0;
    s->s = b;
    s->n = n;
    s->t = NULL;
    if (taint) {
        s->t = ralloc(R, n);
        memset(s->t, 0, n);
    }
    return s;
}

static jv_t vstr_lit(rt_t *R, const char *p, size_t n)
{
    jstr_t *s = ralloc(R, sizeof *s);
    *s = (jstr_t){.s = p, .n = n};
    return (jv_t){.k = JV_STR, .s = s};
}

static jv_t vstr_c(rt_t *R, const char *p)
{
    return vstr_lit(R, p, strlen(p));
}

/* Copies p (n bytes) into a new string, all tainted when taint. */
static jv_t vstr_copy(rt_t *R, const char *p, size_t n, bool taint)
{
    jstr_t *s = str_alloc(R, n, taint);
    memcpy((char *)s->s, p, n);
    if (taint) memset(s->t, 1, n);
    return (jv_t){.k = JV_STR, .s = s};
}

/* The substring [a, b) of s with its taint. */
static jv_t vstr_sub(rt_t *R, const jstr_t *s, size_t a, size_t b)
{
    jstr_t *o = ralloc(R, sizeof *o);
    o->s = s->s + a;
    o->n = b - a;
    o->t = s->t ? s->t + a : NULL;
    return (jv_t){.k = JV_STR, .s = o};
}

static bool str_tainted(const jstr_t *s)
{
    if (!s->t) return false;
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i]) return true;
    return false;
}

/* A string builder: bytes and taint marks. */
typedef struct sb {
    char *s;
    uint8_t *t;
    size_t n, cap;
    bool any;
} sb_t;

static void sb_put(rt_t *R, sb_t *b, const char *p, size_t n, const uint8_t *taint, bool all)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n)
            cap *= 2;
        char *ns = ralloc(R, cap);
        uint8_t *nt = ralloc(R, cap);
        if (b->n) memcpy(ns, b->s, b->n), memcpy(nt, b->t, b->n);
        b->s = ns;
        b->t = nt;
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, n);
    if (taint)
        memcpy(b->t + b->n, taint, n);
    else
        memset(b->t + b->n, all ? 1 : 0, n);
    if (all || (taint && n)) b->any = b->any || all || memchr(taint, 1, n);
    b->n += n;
}

static void sb_str(rt_t *R, sb_t *b, const jstr_t *s)
{
    sb_put(R, b, s->s, s->n, s->t, false);
}

static void sb_c(rt_t *R, sb_t *b, const char *p)
{
    sb_put(R, b, p, strlen(p), NULL, false);
}

static jv_t sb_done(rt_t *R, sb_t *b)
{
    jstr_t *s = ralloc(R, sizeof *s);
    char *z = ralloc(R, b->n + 1);
    if (b->n) memcpy(z, b->s, b->n);
    z[b->n] = 0;
    s->s = z;
    s->n = b->n;
    s->t = b->any ? b->t : NULL;
    return (jv_t){.k = JV_STR, .s = s};
}

static jlist_t *list_new(rt_t *R, size_t cap)
{
    jlist_t *l = ralloc(R, sizeof *l);
    l->n = 0;
    l->cap = cap ? cap : 4;
    l->v = ralloc(R, l->cap * sizeof *l->v);
    return l;
}

static void list_add(rt_t *R, jlist_t *l, jv_t v)
{
    if (l->n == l->cap) {
        jv_t *nv = ralloc(R, 2 * l->cap * sizeof *nv);
        memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}

static jv_t vlist(jlist_t *l, bool tuple)
{
    return (jv_t){.k = JV_LIST, .tuple = tuple, .l = l};
}

static jdict_t *dict_new(rt_t *R)
{
    jdict_t *d = ralloc(R, sizeof *d);
    memset(d, 0, sizeof *d);
    return d;
}

static jv_t *dict_get(const jdict_t *d, const char *k, size_t n)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->key[i]->n == n && !memcmp(d->key[i]->s, k, n)) return &d->v[i];
    return NULL;
}

static void dict_set(rt_t *R, jdict_t *d, jstr_t *k, jv_t v)
{
    jv_t *p = dict_get(d, k->s, k->n);
    if (p) {
        *p = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        jstr_t **nk = ralloc(R, cap * sizeof *nk);
        jv_t *nv = ralloc(R, cap * sizeof *nv);
        if (d->n) memcpy(nk, d->key, d->n * sizeof *nk), memcpy(nv, d->v, d->n * sizeof *nv);
        d->key = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->key[d->n] = k;
    d->v[d->n++] = v;
}

static void dict_set_c(rt_t *R, jdict_t *d, const char *k, jv_t v)
{
    dict_set(R, d, vstr_c(R, k).s, v);
}

/* Converts a cJSON value into a value: every string tainted when taint. */
static jv_t from_json(rt_t *R, const cJSON *j, int depth, bool taint)
{
    if (depth > 64) rfail(R, SY_EINVAL, NULL, "the context nests deeper than 64 levels");
    if (!j || cJSON_IsNull(j)) return V_NONE;
    if (cJSON_IsBool(j)) return vbool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) return vint((int64_t)d);
        return vfloat(d);
    }
    if (cJSON_IsString(j)) return vstr_copy(R, j->valuestring, strlen(j->valuestring), taint);
    if (cJSON_IsArray(j)) {
        jlist_t *l = list_new(R, (size_t)cJSON_GetArraySize(j));
        const cJSON *x;
        cJSON_ArrayForEach(x, j) list_add(R, l, from_json(R, x, depth + 1, taint));
        return vlist(l, false);
    }
    if (cJSON_IsObject(j)) {
        jdict_t *d = dict_new(R);
        const cJSON *x;
        cJSON_ArrayForEach(x, j)
        {
            jstr_t *k = vstr_copy(R, x->string, strlen(x->string), taint).s;
            dict_set(R, d, k, from_json(R, x, depth + 1, taint));
        }
        return (jv_t){.k = JV_DICT, .d = d};
    }
    return V_NONE;
}

/* ----------------------------------------------------- conversions ---- */

static bool truthy(jv_t v)
{
    switch (v.k) {
    case JV_BOOL:
        return v.b;
    case JV_INT:
        return v.i != 0;
    case JV_FLOAT:
        return v.f != 0;
    case JV_STR:
        return v.s->n > 0;
    case JV_LIST:
        return v.l->n > 0;
    case JV_DICT:
        return v.tuple || v.d->n > 0;
    case JV_FN:
        return true;
    default:
        return false;
    }
}

/* A float as JavaScript prints it (integral values as "N.0", as the reference does). */
static void fmt_float(double f, char *o, size_t cap, bool json)
{
    if (isnan(f)) {
        snprintf(o, cap, json ? "null" : "NaN");
        return;
    }
    if (isinf(f)) {
        snprintf(o, cap, json ? "null" : f > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (f == floor(f) && fabs(f) < 1e21) {
        if (f == 0 && signbit(f))
            snprintf(o, cap, json ? "0" : "-0.0");
        else
            snprintf(o, cap, json ? "%.0f" : "%.1f", f);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(o, cap, "%.*g", p, f);
        if (strtod(o, NULL) == f) break;
    }
    /* JavaScript writes exponents without padding or '+': 1e-7, 1e+21 */
    char *e = strchr(o, 'e');
    if (e) {
        char sign = e[1];
        char *d = e + 2;
        while (*d == '0' && d[1])
            d++;
        char tmp[32];
        snprintf(tmp, sizeof tmp, "e%c%s", sign, d);
        snprintf(e, cap - (size_t)(e - o), "%s", tmp);
    }
}

static void json_put(rt_t *R, sb_t *b, jv_t v, int indent, int depth);

/* Writes v as text (what {{ v }} prints) into b. */
static void to_text(rt_t *R, sb_t *b, jv_t v)
{
    char num[64];
    switch (v.k) {
    case JV_STR:
        sb_str(R, b, v.s);
        return;
    case JV_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.i);
        sb_c(R, b, num);
        return;
    case JV_FLOAT:
        fmt_float(v.f, num, sizeof num, false);
        sb_c(R, b, num);
        return;
    case JV_BOOL:
        sb_c(R, b, v.b ? "true" : "false");
        return;
    case JV_LIST:
    case JV_DICT:
        json_put(R, b, v, 0, 0);
        return;
    case JV_FN:
        sb_c(R, b, "<function>");
        return;
    default:
        return;
    }
}

static jv_t vtext(rt_t *R, jv_t v)
{
    if (v.k == JV_STR) return v;
    sb_t b = {0};
    to_text(R, &b, v);
    return sb_done(R, &b);
}

/* JSON.stringify of a string: quotes, escapes; non-ASCII kept. */
static void json_str(rt_t *R, sb_t *b, const jstr_t *s, bool taint)
{
    sb_put(R, b, "\"", 1, NULL, taint);
    for (size_t i = 0; i < s->n; i++) {
        unsigned char c = (unsigned char)s->s[i];
        char e[8];
        const char *p = NULL;
        switch (c) {
        case '"':
            p = "\\\"";
            break;
        case '\\':
            p = "\\\\";
            break;
        case '\n':
            p = "\\n";
            break;
        case '\r':
            p = "\\r";
            break;
        case '\t':
            p = "\\t";
            break;
        case '\b':
            p = "\\b";
            break;
        case '\f':
            p = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(e, sizeof e, "\\u%04x", c);
                p = e;
            }
        }
        if (p)
            sb_put(R, b, p, strlen(p), NULL, taint);
        else
            sb_put(R, b, s->s + i, 1, NULL, taint);
    }
    sb_put(R, b, "\"", 1, NULL, taint);
}

static bool val_tainted(jv_t v, int depth)
{
    if (depth > 64) return true;
    if (v.k == JV_STR) return str_tainted(v.s);
    if (v.k == JV_LIST)
        for (size_t i = 0; i < v.l->n; i++)
            if (val_tainted(v.l->v[i], depth + 1)) return true;
    if (v.k == JV_DICT)
        for (size_t i = 0; i < v.d->n; i++)
            if (str_tainted(v.d->key[i]) || val_tainted(v.d->v[i], depth + 1)) return true;
    return false;
}

static void json_rec(rt_t *R, sb_t *b, jv_t v, int indent, int depth, bool taint)
{
    char num[64];
    if (depth > 64) rfail(R, SY_EINVAL, NULL, "tojson: value nests deeper than 64 levels");
    const char *item = indent ? "," : ", ";
    switch (v.k) {
    case JV_UNDEF:
    case JV_NONE:
        sb_put(R, b, "null", 4, NULL, taint);
        return;
    case JV_BOOL:
        sb_put(R, b, v.b ? "true" : "false", v.b ? 4 : 5, NULL, taint);
        return;
    case JV_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.i);
        sb_put(R, b, num, strlen(num), NULL, taint);
        return;
    case JV_FLOAT:
        fmt_float(v.f, num, sizeof num, true);
        sb_put(R, b, num, strlen(num), NULL, taint);
        return;
    case JV_STR:
        json_str(R, b, v.s, taint);
        return;
    case JV_FN:
        sb_put(R, b, "null", 4, NULL, taint);
        return;
    default:
        break;
    }
    bool list = v.k == JV_LIST;
    size_t n = list ? v.l->n : v.d->n;
    sb_put(R, b, list ? "[" : "{", 1, NULL, taint);
    for (size_t i = 0; i < n; i++) {
        if (i) sb_put(R, b, item, strlen(item), NULL, taint);
        if (indent) {
            sb_put(R, b, "\n", 1, NULL, taint);
            for (int k = 0; k < indent * (depth + 1); k++)
                sb_put(R, b, " ", 1, NULL, taint);
        }
        if (list) {
            json_rec(R, b, v.l->v[i], indent, depth + 1, taint);
        } else {
            json_str(R, b, v.d->key[i], taint);
            sb_put(R, b, ": ", 2, NULL, taint);
            json_rec(R, b, v.d->v[i], indent, depth + 1, taint);
        }
    }
    if (indent && n) {
        sb_put(R, b, "\n", 1, NULL, taint);
        for (int k = 0; k < indent * depth; k++)
            sb_put(R, b, " ", 1, NULL, taint);
    }
    sb_put(R, b, list ? "]" : "}", 1, NULL, taint);
}

/* tojson: the whole text is tainted when any string inside v is. */
static void json_put(rt_t *R, sb_t *b, jv_t v, int indent, int depth)
{
    json_rec(R, b, v, indent, depth, val_tainted(v, 0));
}

/* ------------------------------------------------------------- scope ---- */

static jv_t *scope_find(scope_t *s, const char *k, size_t n)
{
    for (; s; s = s->parent) {
        jv_t *v = dict_get(s->vars, k, n);
        if (v) return v;
    }
    return NULL;
}

static scope_t *scope_new(rt_t *R, scope_t *parent)
{
    scope_t *s = ralloc(R, sizeof *s);
    s->parent = parent;
    s->vars = dict_new(R);
    return s;
}

/* ------------------------------------------------------------ output ---- */

static void out_put(rt_t *R, const char *p, size_t n, const uint8_t *taint)
{
    jinja_out_t *o = R->out;
    if (o->text.len + n > R->max_output)
        rfail(R, SY_ETOOBIG, NULL, "the output passes %zu bytes", R->max_output);
    size_t base = o->text.len;
    if (buf_append(&o->text, p, n))
        rfail(R, SY_ETOOBIG, NULL, "the output passes its buffer's %zu bytes", o->text.max);
    for (size_t i = 0; taint && i < n;) {
        if (!taint[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && taint[j])
            j++;
        size_t off = base + i, len = j - i;
        jinja_span_t *last = o->n_spans ? &o->spans[o->n_spans - 1] : NULL;
        if (last && last->off + last->len == off) {
            last->len += len;
        } else {
            if (o->n_spans == o->cap_spans) {
                o->cap_spans = o->cap_spans ? 2 * o->cap_spans : 16;
                o->spans = mem_realloc(o->spans, o->cap_spans * sizeof *o->spans);
            }
            o->spans[o->n_spans++] = (jinja_span_t){off, len};
        }
        i = j;
    }
}

/* ------------------------------------------------------- expressions ---- */

enum {
    FN_RAISE = 1,
    FN_RANGE,
    FN_NAMESPACE,
    FN_STRFTIME,
    /* methods */
    FN_M_FIRST,
    FN_UPPER = FN_M_FIRST,
    FN_LOWER,
    FN_STRIP,
    FN_LSTRIP,
    FN_RSTRIP,
    FN_SPLIT,
    FN_STARTSWITH,
    FN_ENDSWITH,
    FN_REPLACE,
    FN_TITLE,
    FN_CAPITALIZE,
    FN_ITEMS,
    FN_KEYS,
    FN_VALUES,
    FN_GET,
    FN_APPEND,
};

static const struct {
    const char *name;
    int id;
    int on; /* JV_STR, JV_DICT or JV_LIST */
} methods[] = {
    {"upper", FN_UPPER, JV_STR},
    {"lower", FN_LOWER, JV_STR},
    {"strip", FN_STRIP, JV_STR},
    {"lstrip", FN_LSTRIP, JV_STR},
    {"rstrip", FN_RSTRIP, JV_STR},
    {"split", FN_SPLIT, JV_STR},
    {"startswith", FN_STARTSWITH, JV_STR},
    {"endswith", FN_ENDSWITH, JV_STR},
    {"replace", FN_REPLACE, JV_STR},
    {"title", FN_TITLE, JV_STR},
    {"capitalize", FN_CAPITALIZE, JV_STR},
    {"items", FN_ITEMS, JV_DICT},
    {"keys", FN_KEYS, JV_DICT},
    {"values", FN_VALUES, JV_DICT},
    {"get", FN_GET, JV_DICT},
    {"append", FN_APPEND, JV_LIST},
};

static jv_t eval(rt_t *R, const node_t *n, scope_t *s);
static void exec_body(rt_t *R, const node_t *body, scope_t *s);

static jv_t vfn(rt_t *R, int id, const node_t *macro, jv_t self)
{
    jfn_t *f = ralloc(R, sizeof *f);
    f->builtin = id;
    f->node = macro;
    f->env = NULL;
    f->self = self;
    return (jv_t){.k = JV_FN, .fn = f};
}

static bool jstr_eq(const jstr_t *a, const char *b)
{
    size_t n = strlen(b);
    return a->n == n && !memcmp(a->s, b, n);
}

static int64_t utf8_count(const jstr_t *s)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += ((unsigned char)s->s[i] & 0xc0) != 0x80;
    return n;
}

/* Byte offsets of each code point of s, plus s->n at the end: (count + 1) entries. */
static size_t *utf8_offsets(rt_t *R, const jstr_t *s, size_t *count)
{
    size_t c = (size_t)utf8_count(s);
    size_t *o = ralloc(R, (c + 1) * sizeof *o);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (((unsigned char)s->s[i] & 0xc0) != 0x80) o[k++] = i;
    o[c] = s->n;
    *count = c;
    return o;
}

static double num_of(rt_t *R, const node_t *at, jv_t v)
{
    if (v.k == JV_INT) return (double)v.i;
    if (v.k == JV_FLOAT) return v.f;
    if (v.k == JV_BOOL) return v.b;
    rfail(R, SY_EINVAL, at, "expected a number");
}

static bool vequal(jv_t a, jv_t b, int depth)
{
    if (depth > 64) return false;
    bool an = a.k == JV_INT || a.k == JV_FLOAT, bn = b.k == JV_INT || b.k == JV_FLOAT;
    if (an && bn) return (a.k == JV_INT ? (double)a.i : a.f) == (b.k == JV_INT ? (double)b.i : b.f);
    if (a.k != b.k) return false;
    switch (a.k) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_BOOL:
        return a.b == b.b;
    case JV_STR:
        return a.s->n == b.s->n && !memcmp(a.s->s, b.s->s, a.s->n);
    case JV_LIST:
        if (a.l->n != b.l->n) return false;
        for (size_t i = 0; i < a.l->n; i++)
            if (!vequal(a.l->v[i], b.l->v[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.d->n != b.d->n) return false;
        for (size_t i = 0; i < a.d->n; i++) {
            jv_t *o = dict_get(b.d, a.d->key[i]->s, a.d->key[i]->n);
            if (!o || !vequal(a.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default:
        return a.fn == b.fn;
    }
}

static int vcompare(rt_t *R, const node_t *at, jv_t a, jv_t b)
{
    if (a.k == JV_STR && b.k == JV_STR) {
        size_t n = a.s->n < b.s->n ? a.s->n : b.s->n;
        int c = memcmp(a.s->s, b.s->s, n);
        if (c) return c < 0 ? -1 : 1;
        return a.s->n < b.s->n ? -1 : a.s->n > b.s->n;
    }
    double x = num_of(R, at, a), y = num_of(R, at, b);
    return x < y ? -1 : x > y;
}

static bool contains(rt_t *R, const node_t *at, jv_t hay, jv_t needle)
{
    if (hay.k == JV_STR) {
        if (needle.k != JV_STR) rfail(R, SY_EINVAL, at, "'in <string>' needs a string");
        if (!needle.s->n) return true;
        return memmem(hay.s->s, hay.s->n, needle.s->s, needle.s->n) != NULL;
    }
    if (hay.k == JV_LIST) {
        for (size_t i = 0; i < hay.l->n; i++)
            if (vequal(hay.l->v[i], needle, 0)) return true;
        return false;
    }
    if (hay.k == JV_DICT)
        return needle.k == JV_STR && dict_get(hay.d, needle.s->s, needle.s->n) != NULL;
    if (hay.k == JV_UNDEF || hay.k == JV_NONE) return false;
    rfail(R, SY_EINVAL, at, "'in' needs a string, list or mapping on the right");
}

static jv_t concat(rt_t *R, jv_t a, jv_t b)
{
    sb_t s = {0};
    if (a.k != JV_UNDEF) to_text(R, &s, a);
    if (b.k != JV_UNDEF) to_text(R, &s, b);
    return sb_done(R, &s);
}

static jv_t binop(rt_t *R, const node_t *n, int op, jv_t a, jv_t b)
{
    switch (op) {
    case OP_EQ:
        return vbool(vequal(a, b, 0));
    case OP_NE:
        return vbool(!vequal(a, b, 0));
    case OP_LT:
        return vbool(vcompare(R, n, a, b) < 0);
    case OP_GT:
        return vbool(vcompare(R, n, a, b) > 0);
    case OP_LE:
        return vbool(vcompare(R, n, a, b) <= 0);
    case OP_GE:
        return vbool(vcompare(R, n, a, b) >= 0);
    case OP_IN:
        return vbool(contains(R, n, b, a));
    case OP_NOTIN:
        return vbool(!contains(R, n, b, a));
    case OP_CAT:
        return concat(R, a, b);
    default:
        break;
    }
    if (op == OP_ADD && a.k == JV_LIST && b.k == JV_LIST) {
        jlist_t *l = list_new(R, a.l->n + b.l->n);
        for (size_t i = 0; i < a.l->n; i++)
            list_add(R, l, a.l->v[i]);
        for (size_t i = 0; i < b.l->n; i++)
            list_add(R, l, b.l->v[i]);
        return vlist(l, false);
    }
    if (op == OP_ADD && (a.k == JV_STR || b.k == JV_STR)) return concat(R, a, b);
    if (op == OP_MUL && a.k == JV_STR && b.k == JV_INT) {
        sb_t s = {0};
        if (b.i > 0 && (double)b.i * (double)a.s->n > (double)R->max_memory)
            rfail(R, SY_ETOOBIG, n, "string repetition is too large");
        for (int64_t i = 0; i < b.i; i++)
            sb_str(R, &s, a.s);
        return sb_done(R, &s);
    }
    bool fl = a.k == JV_FLOAT || b.k == JV_FLOAT;
    double x = num_of(R, n, a), y = num_of(R, n, b);
    switch (op) {
    case OP_ADD:
        return fl ? vfloat(x + y) : vint(a.i + b.i);
    case OP_SUB:
        return fl ? vfloat(x - y) : vint(a.i - b.i);
    case OP_MUL:
        return fl ? vfloat(x * y) : vint(a.i * b.i);
    case OP_DIV:
        if (y == 0) rfail(R, SY_EINVAL, n, "division by zero");
        return vfloat(x / y);
    case OP_FDIV:
        if (y == 0) rfail(R, SY_EINVAL, n, "division by zero");
        return fl ? vfloat(floor(x / y)) : vint((int64_t)floor(x / y));
    case OP_MOD:
        if (y == 0) rfail(R, SY_EINVAL, n, "modulo by zero");
        if (fl) return vfloat(x - y * floor(x / y));
        return vint(((a.i % b.i) + b.i) % b.i);
    case OP_POW:
        return fl || b.i < 0 ? vfloat(pow(x, y)) : vint((int64_t)pow(x, y));
    default:
        rfail(R, SY_EINVAL, n, "bad operator");
    }
}

/* Evaluated arguments of a call, filter or test. */
typedef struct args {
    jv_t pos[8];
    int n;
    jstr_t *kname[8];
    jv_t kval[8];
    int nk;
} args_t;

static void eval_args(rt_t *R, const node_t *n, scope_t *s, args_t *a, int skip)
{
    a->n = a->nk = 0;
    if (n->n_kids - skip > 8 || n->n_kw > 8) rfail(R, SY_EINVAL, n, "too many arguments");
    for (int i = skip; i < n->n_kids; i++)
        a->pos[a->n++] = eval(R, n->kids[i], s);
    for (int i = 0; i < n->n_kw; i++) {
        a->kname[a->nk] = (jstr_t *)&n->kw[i]->name;
        a->kval[a->nk++] = eval(R, n->kw[i]->a, s);
    }
}

/* Argument i, or keyword name, or V_UNDEF. */
static jv_t arg(const args_t *a, int i, const char *name)
{
    if (i >= 0 && i < a->n) return a->pos[i];
    for (int k = 0; name && k < a->nk; k++)
        if (jstr_eq(a->kname[k], name)) return a->kval[k];
    return V_UNDEF;
}

static jv_t arg_str(rt_t *R, const node_t *at, const args_t *a, int i, const char *name,
                    const char *what)
{
    jv_t v = arg(a, i, name);
    if (v.k != JV_STR) rfail(R, SY_EINVAL, at, "%s expects a string argument", what);
    return v;
}

/* Whitespace (Unicode's, as JavaScript's trim sees it) of length at p, or 0. */
static size_t ws_at(const unsigned char *p, size_t n)
{
    if (!n) return 0;
    if (is_space((char)p[0])) return 1;
    if (n >= 2 && p[0] == 0xc2 && p[1] == 0xa0) return 2;
    if (n >= 3 && p[0] == 0xe2 && p[1] == 0x80 &&
        (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
        return 3;
    if (n >= 3 && p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) return 3;
    if (n >= 3 && p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) return 3;
    if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) return 3;
    if (n >= 3 && p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) return 3;
    return 0;
}

/* Whitespace ending at p + n (length), or 0. */
static size_t ws_before(const unsigned char *p, size_t n)
{
    for (size_t l = 1; l <= 3 && l <= n; l++)
        if (ws_at(p + n - l, l) == l) return l;
    return 0;
}

static jv_t do_strip(rt_t *R, jv_t v, jv_t chars, bool left, bool right)
{
    const jstr_t *s = v.s;
    size_t a = 0, b = s->n;
    if (chars.k == JV_STR) {
        while (left && a < b && memchr(chars.s->s, s->s[a], chars.s->n))
            a++;
        while (right && b > a && memchr(chars.s->s, s->s[b - 1], chars.s->n))
            b--;
    } else {
        size_t w;
        while (left && a < b && (w = ws_at((const unsigned char *)s->s + a, b - a)))
            a += w;
        while (right && b > a && (w = ws_before((const unsigned char *)s->s + a, b - a)))
            b -= w;
    }
    return vstr_sub(R, s, a, b);
}

static jv_t case_map(rt_t *R, jv_t v, int mode) /* 0 upper, 1 lower, 2 title, 3 capitalize */
{
    jstr_t *o = str_alloc(R, v.s->n, false);
    char *w = (char *)o->s;
    bool start = true;
    for (size_t i = 0; i < v.s->n; i++) {
        char c = v.s->s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool up = mode == 0 || ((mode == 2 || mode == 3) && start);
        if (mode == 3 && i > 0) up = false;
        if (up && c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (!up && c >= 'A' && c <= 'Z') c = (char)(c + 32);
        w[i] = c;
        if (mode == 2)
            start = !alpha && !(c >= '0' && c <= '9') && c != '\'';
        else
            start = false;
    }
    o->t = v.s->t;
    return (jv_t){.k = JV_STR, .s = o};
}

static jv_t do_replace(rt_t *R, const node_t *at, jv_t v, jv_t from, jv_t to, jv_t count)
{
    if (from.k != JV_STR || to.k != JV_STR) rfail(R, SY_EINVAL, at, "replace expects strings");
    int64_t max = count.k == JV_INT ? count.i : -1;
    sb_t b = {0};
    const jstr_t *s = v.s;
    size_t i = 0;
    int64_t done = 0;
    if (!from.s->n) {
        /* Python inserts the replacement between characters */
        size_t nc;
        size_t *off = utf8_offsets(R, s, &nc);
        for (size_t k = 0; k <= nc; k++) {
            if (max < 0 || done < max) sb_str(R, &b, to.s), done++;
            if (k < nc)
                sb_put(R, &b, s->s + off[k], off[k + 1] - off[k], s->t ? s->t + off[k] : NULL,
                       false);
        }
        return sb_done(R, &b);
    }
    while (i < s->n) {
        const char *hit =
            (max < 0 || done < max) ? memmem(s->s + i, s->n - i, from.s->s, from.s->n) : NULL;
        size_t j = hit ? (size_t)(hit - s->s) : s->n;
        sb_put(R, &b, s->s + i, j - i, s->t ? s->t + i : NULL, false);
        if (!hit) break;
        sb_str(R, &b, to.s);
        done++;
        i = j + from.s->n;
    }
    return sb_done(R, &b);
}

static jv_t do_split(rt_t *R, const node_t *at, jv_t v, jv_t sep, jv_t maxsplit)
{
    jlist_t *l = list_new(R, 4);
    const jstr_t *s = v.s;
    int64_t max = maxsplit.k == JV_INT ? maxsplit.i : -1;
    if (sep.k == JV_NONE || sep.k == JV_UNDEF) {
        size_t i = 0, w;
        for (;;) {
            while (i < s->n && (w = ws_at((const unsigned char *)s->s + i, s->n - i)))
                i += w;
            if (i >= s->n) break;
            if (max >= 0 && (int64_t)l->n >= max) {
                size_t e = s->n;
                while (e > i && (w = ws_before((const unsigned char *)s->s + i, e - i)))
                    e -= w;
                list_add(R, l, vstr_sub(R, s, i, e));
                break;
            }
            size_t j = i;
            while (j < s->n && !ws_at((const unsigned char *)s->s + j, s->n - j))
                j++;
            list_add(R, l, vstr_sub(R, s, i, j));
            i = j;
        }
        return vlist(l, false);
    }
    if (sep.k != JV_STR || !sep.s->n) rfail(R, SY_EINVAL, at, "split: empty or bad separator");
    size_t i = 0;
    for (;;) {
        const char *hit = (max < 0 || (int64_t)l->n < max)
                              ? memmem(s->s + i, s->n - i, sep.s->s, sep.s->n)
                              : NULL;
        size_t j = hit ? (size_t)(hit - s->s) : s->n;
        list_add(R, l, vstr_sub(R, s, i, j));
        if (!hit) break;
        i = j + sep.s->n;
    }
    return vlist(l, false);
}

static bool affix(jv_t v, jv_t x, bool end)
{
    if (x.k == JV_LIST) {
        for (size_t i = 0; i < x.l->n; i++)
            if (affix(v, x.l->v[i], end)) return true;
        return false;
    }
    if (x.k != JV_STR || x.s->n > v.s->n) return false;
    return !memcmp(v.s->s + (end ? v.s->n - x.s->n : 0), x.s->s, x.s->n);
}

static jv_t dict_items(rt_t *R, jdict_t *d, int what) /* 0 items, 1 keys, 2 values */
{
    jlist_t *l = list_new(R, d->n);
    for (size_t i = 0; i < d->n; i++) {
        jv_t k = {.k = JV_STR, .s = d->key[i]};
        if (what == 1) {
            list_add(R, l, k);
        } else if (what == 2) {
            list_add(R, l, d->v[i]);
        } else {
            jlist_t *p = list_new(R, 2);
            list_add(R, p, k);
            list_add(R, p, d->v[i]);
            list_add(R, l, vlist(p, true));
        }
    }
    return vlist(l, false);
}

static void set_var(rt_t *R, scope_t *s, const jstr_t *name, jv_t v)
{
    jstr_t *k = ralloc(R, sizeof *k);
    *k = *name;
    k->t = NULL;
    dict_set(R, s->vars, k, v);
}

/* Renders body into a string of its own (a macro call, a set block), keeping taint. */
static jv_t capture(rt_t *R, const node_t *body, scope_t *s)
{
    if (R->n_tmp == (int)(sizeof R->tmp / sizeof *R->tmp))
        rfail(R, SY_ETOOBIG, body, "macro calls and set blocks nest deeper than %d", R->n_tmp);
    jinja_out_t *saved = R->out, *tmp = mem_alloc(sizeof *tmp);
    jinja_out_init(tmp, R->max_output);
    R->tmp[R->n_tmp++] = tmp;
    R->out = tmp;
    exec_body(R, body, s);
    R->out = saved;
    jv_t r = vstr_copy(R, tmp->text.data ? tmp->text.data : "", tmp->text.len, false);
    if (tmp->n_spans) {
        r.s->t = ralloc(R, r.s->n);
        memset(r.s->t, 0, r.s->n);
        for (size_t i = 0; i < tmp->n_spans; i++)
            memset(r.s->t + tmp->spans[i].off, 1, tmp->spans[i].len);
    }
    R->n_tmp--;
    jinja_out_deinit(tmp);
    mem_free(tmp);
    return r;
}

/* Calls a macro: a scope under the one it was defined in, with the parameters bound. */
static jv_t call_macro(rt_t *R, const node_t *at, const node_t *m, scope_t *env, const args_t *a)
{
    if (++R->depth > R->max_depth)
        rfail(R, SY_ETOOBIG, at, "calls nest deeper than %d", R->max_depth);
    scope_t *s = scope_new(R, env);
    for (int i = 0; i < m->n_kids; i++) {
        const node_t *pm = m->kids[i];
        jv_t v = arg(a, i, NULL);
        for (int k = 0; k < a->nk; k++)
            if (a->kname[k]->n == pm->name.n && !memcmp(a->kname[k]->s, pm->name.s, pm->name.n))
                v = a->kval[k];
        if (v.k == JV_UNDEF && pm->a) v = eval(R, pm->a, s);
        set_var(R, s, &pm->name, v);
    }
    jv_t r = capture(R, m->a, s);
    R->depth--;
    return r;
}

static jv_t call_fn(rt_t *R, const node_t *n, jv_t f, const args_t *a)
{
    if (f.k != JV_FN) rfail(R, SY_EINVAL, n, "called something that is not a function");
    jv_t self = f.fn->self;
    switch (f.fn->builtin) {
    case 0:
        return call_macro(R, n, f.fn->node, f.fn->env, a);
    case FN_RAISE: {
        jv_t m = arg(a, 0, NULL);
        sb_t b = {0};
        to_text(R, &b, m);
        rfail(R, SY_EINVAL, n, "raise_exception: %.*s", (int)(b.n < 200 ? b.n : 200),
              b.s ? b.s : "");
    }
    case FN_RANGE: {
        int64_t lo = 0, hi, st = 1;
        if (a->n == 1) {
            hi = (int64_t)num_of(R, n, a->pos[0]);
        } else if (a->n >= 2) {
            lo = (int64_t)num_of(R, n, a->pos[0]);
            hi = (int64_t)num_of(R, n, a->pos[1]);
            if (a->n > 2) st = (int64_t)num_of(R, n, a->pos[2]);
        } else {
            rfail(R, SY_EINVAL, n, "range expects 1 to 3 arguments");
        }
        if (st == 0) rfail(R, SY_EINVAL, n, "range step is zero");
        double count = ceil(((double)hi - (double)lo) / (double)st);
        if (count > (double)R->max_iters)
            rfail(R, SY_ETOOBIG, n, "range of %.0f items is more than %ld", count, R->max_iters);
        jlist_t *l = list_new(R, count > 0 ? (size_t)count : 1);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st)
            list_add(R, l, vint(i));
        return vlist(l, false);
    }
    case FN_NAMESPACE: {
        jdict_t *d = dict_new(R);
        jv_t init = arg(a, 0, NULL);
        if (init.k == JV_DICT)
            for (size_t i = 0; i < init.d->n; i++)
                dict_set(R, d, init.d->key[i], init.d->v[i]);
        for (int k = 0; k < a->nk; k++)
            dict_set(R, d, a->kname[k], a->kval[k]);
        return (jv_t){.k = JV_DICT, .tuple = 1, .d = d};
    }
    case FN_STRFTIME: {
        jv_t fmt = arg_str(R, n, a, 0, NULL, "strftime_now");
        char fz[128], o[256];
        snprintf(fz, sizeof fz, "%.*s", (int)fmt.s->n, fmt.s->s);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t k = strftime(o, sizeof o, fz, &tm);
        return vstr_copy(R, o, k, false);
    }
    case FN_UPPER:
        return case_map(R, self, 0);
    case FN_LOWER:
        return case_map(R, self, 1);
    case FN_TITLE:
        return case_map(R, self, 2);
    case FN_CAPITALIZE:
        return case_map(R, self, 3);
    case FN_STRIP:
        return do_strip(R, self, arg(a, 0, "chars"), true, true);
    case FN_LSTRIP:
        return do_strip(R, self, arg(a, 0, "chars"), true, false);
    case FN_RSTRIP:
        return do_strip(R, self, arg(a, 0, "chars"), false, true);
    case FN_SPLIT:
        return do_split(R, n, self, arg(a, 0, "sep"), arg(a, 1, "maxsplit"));
    case FN_STARTSWITH:
        return vbool(affix(self, arg(a, 0, NULL), false));
    case FN_ENDSWITH:
        return vbool(affix(self, arg(a, 0, NULL), true));
    case FN_REPLACE:
        return do_replace(R, n, self, arg(a, 0, NULL), arg(a, 1, NULL), arg(a, 2, "count"));
    case FN_ITEMS:
        return dict_items(R, self.d, 0);
    case FN_KEYS:
        return dict_items(R, self.d, 1);
    case FN_VALUES:
        return dict_items(R, self.d, 2);
    case FN_GET: {
        jv_t k = arg(a, 0, "key");
        jv_t *v = k.k == JV_STR ? dict_get(self.d, k.s->s, k.s->n) : NULL;
        if (v) return *v;
        jv_t def = arg(a, 1, "default");
        return def.k == JV_UNDEF ? V_NONE : def;
    }
    case FN_APPEND:
        list_add(R, self.l, arg(a, 0, NULL));
        return V_NONE;
    default:
        rfail(R, SY_EINVAL, n, "unknown function");
    }
}

/* obj.name / obj["name"]: dict entries, then methods. */
static jv_t get_attr(rt_t *R, const node_t *at, jv_t o, const char *name, size_t nl)
{
    if (o.k == JV_DICT) {
        jv_t *v = dict_get(o.d, name, nl);
        if (v) return *v;
    }
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (methods[i].on == o.k && strlen(methods[i].name) == nl &&
            !memcmp(methods[i].name, name, nl) && !(o.k == JV_DICT && o.tuple))
            return vfn(R, methods[i].id, NULL, o);
    if (o.k == JV_UNDEF) rfail(R, SY_EINVAL, at, "'%.*s' of an undefined value", (int)nl, name);
    if ((o.k == JV_LIST || o.k == JV_STR) && nl == 6 && !memcmp(name, "length", 6))
        return vint(o.k == JV_LIST ? (int64_t)o.l->n : utf8_count(o.s));
    return V_UNDEF;
}

static int64_t norm_index(int64_t i, int64_t n)
{
    return i < 0 ? i + n : i;
}

static jv_t get_index(rt_t *R, const node_t *at, jv_t o, jv_t k)
{
    if (k.k == JV_STR) return get_attr(R, at, o, k.s->s, k.s->n);
    if (k.k != JV_INT) rfail(R, SY_EINVAL, at, "subscript must be a string or an integer");
    if (o.k == JV_LIST) {
        int64_t i = norm_index(k.i, (int64_t)o.l->n);
        return i >= 0 && i < (int64_t)o.l->n ? o.l->v[i] : V_UNDEF;
    }
    if (o.k == JV_STR) {
        size_t nc;
        size_t *off = utf8_offsets(R, o.s, &nc);
        int64_t i = norm_index(k.i, (int64_t)nc);
        if (i < 0 || i >= (int64_t)nc) return V_UNDEF;
        return vstr_sub(R, o.s, off[i], off[i + 1]);
    }
    if (o.k == JV_UNDEF) rfail(R, SY_EINVAL, at, "subscript of an undefined value");
    return V_UNDEF;
}

static jv_t get_slice(rt_t *R, const node_t *n, jv_t o, scope_t *s)
{
    jv_t a = n->b ? eval(R, n->b, s) : V_NONE, b = n->c ? eval(R, n->c, s) : V_NONE,
         st = n->d ? eval(R, n->d, s) : V_NONE;
    int64_t step = st.k == JV_INT ? st.i : 1;
    if (step == 0) rfail(R, SY_EINVAL, n, "slice step is zero");
    size_t len;
    size_t *off = NULL;
    if (o.k == JV_LIST)
        len = o.l->n;
    else if (o.k == JV_STR)
        off = utf8_offsets(R, o.s, &len);
    else
        rfail(R, SY_EINVAL, n, "slice of something that is not a list or string");
    int64_t L = (int64_t)len;
    int64_t lo, hi;
    if (step > 0) {
        lo = a.k == JV_INT ? norm_index(a.i, L) : 0;
        hi = b.k == JV_INT ? norm_index(b.i, L) : L;
        lo = lo < 0 ? 0 : lo > L ? L : lo;
        hi = hi < 0 ? 0 : hi > L ? L : hi;
    } else {
        lo = a.k == JV_INT ? norm_index(a.i, L) : L - 1;
        hi = b.k == JV_INT ? norm_index(b.i, L) : -1;
        lo = lo < -1 ? -1 : lo > L - 1 ? L - 1 : lo;
        hi = hi < -1 ? -1 : hi > L - 1 ? L - 1 : hi;
    }
    if (o.k == JV_STR && step == 1)
        return lo < hi ? vstr_sub(R, o.s, off[lo], off[hi]) : vstr_lit(R, "", 0);
    sb_t sb = {0};
    jlist_t *l = o.k == JV_LIST ? list_new(R, 4) : NULL;
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if (l)
            list_add(R, l, o.l->v[i]);
        else
            sb_put(R, &sb, o.s->s + off[i], off[i + 1] - off[i], o.s->t ? o.s->t + off[i] : NULL,
                   false);
    }
    return l ? vlist(l, false) : sb_done(R, &sb);
}

/* Items of an iterable: a list's elements, a dict's keys, a string's characters. */
static jlist_t *iter_items(rt_t *R, const node_t *at, jv_t v)
{
    if (v.k == JV_LIST) return v.l;
    if (v.k == JV_DICT) return dict_items(R, v.d, 1).l;
    if (v.k == JV_STR) {
        size_t nc;
        size_t *off = utf8_offsets(R, v.s, &nc);
        jlist_t *l = list_new(R, nc);
        for (size_t i = 0; i < nc; i++)
            list_add(R, l, vstr_sub(R, v.s, off[i], off[i + 1]));
        return l;
    }
    if (v.k == JV_UNDEF || v.k == JV_NONE) return list_new(R, 1);
    rfail(R, SY_EINVAL, at, "cannot iterate over this value");
}

static bool run_test(rt_t *R, const node_t *n, const jstr_t *name, jv_t v, const args_t *a);

/* Applies filter `name` to v. */
static jv_t run_filter(rt_t *R, const node_t *n, const jstr_t *name, jv_t v, const args_t *a,
                       scope_t *s)
{
#define IS(x) jstr_eq(name, x)
    if (IS("trim")) {
        if (v.k != JV_STR) v = vtext(R, v);
        return do_strip(R, v, arg(a, 0, "chars"), true, true);
    }
    if (IS("tojson")) {
        jv_t ind = arg(a, 0, "indent");
        sb_t b = {0};
        json_put(R, &b, v, ind.k == JV_INT ? (int)ind.i : 0, 0);
        return sb_done(R, &b);
    }
    if (IS("length") || IS("count")) {
        if (v.k == JV_STR) return vint(utf8_count(v.s));
        if (v.k == JV_LIST) return vint((int64_t)v.l->n);
        if (v.k == JV_DICT) return vint((int64_t)v.d->n);
        rfail(R, SY_EINVAL, n, "length of a value without one");
    }
    if (IS("upper") || IS("lower") || IS("title") || IS("capitalize")) {
        v = vtext(R, v);
        return case_map(R, v, IS("upper") ? 0 : IS("lower") ? 1 : IS("title") ? 2 : 3);
    }
    if (IS("replace")) {
        v = vtext(R, v);
        return do_replace(R, n, v, arg(a, 0, NULL), arg(a, 1, NULL), arg(a, 2, "count"));
    }
    if (IS("items")) {
        if (v.k == JV_UNDEF || v.k == JV_NONE) return vlist(list_new(R, 1), false);
        if (v.k != JV_DICT) rfail(R, SY_EINVAL, n, "items of a value that is not a mapping");
        return dict_items(R, v.d, 0);
    }
    if (IS("default") || IS("d")) {
        jv_t def = arg(a, 0, "default_value");
        bool boolean = truthy(arg(a, 1, "boolean"));
        if (v.k == JV_UNDEF || (boolean && !truthy(v)))
            return def.k == JV_UNDEF ? vstr_lit(R, "", 0) : def;
        return v;
    }
    if (IS("join")) {
        jv_t sep = arg(a, 0, "d");
        jv_t attr = arg(a, 1, "attribute");
        jlist_t *l = iter_items(R, n, v);
        sb_t b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (i && sep.k == JV_STR) sb_str(R, &b, sep.s);
            jv_t x = l->v[i];
            if (attr.k == JV_STR) x = get_attr(R, n, x, attr.s->s, attr.s->n);
            to_text(R, &b, x);
        }
        return sb_done(R, &b);
    }
    if (IS("first") || IS("last")) {
        jlist_t *l = iter_items(R, n, v);
        if (!l->n) return V_UNDEF;
        return IS("first") ? l->v[0] : l->v[l->n - 1];
    }
    if (IS("list")) return vlist(iter_items(R, n, v), false);
    if (IS("string")) return vtext(R, v);
    if (IS("safe") || IS("e") || IS("escape")) {
        if (!IS("safe")) rfail(R, SY_EINVAL, n, "escape is not supported");
        return v;
    }
    if (IS("int")) {
        if (v.k == JV_STR) return vint(strtoll(v.s->s, NULL, 10));
        if (v.k == JV_FLOAT) return vint((int64_t)v.f);
        if (v.k == JV_INT) return v;
        if (v.k == JV_BOOL) return vint(v.b);
        jv_t def = arg(a, 0, "default");
        return def.k == JV_INT ? def : vint(0);
    }
    if (IS("float")) {
        if (v.k == JV_STR) return vfloat(strtod(v.s->s, NULL));
        if (v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL) return vfloat(num_of(R, n, v));
        return vfloat(0);
    }
    if (IS("abs"))
        return v.k == JV_INT ? vint(v.i < 0 ? -v.i : v.i) : vfloat(fabs(num_of(R, n, v)));
    if (IS("indent")) {
        jv_t w = arg(a, 0, "width");
        bool first = truthy(arg(a, 1, "first")), blank = truthy(arg(a, 2, "blank"));
        sb_t pad = {0};
        if (w.k == JV_STR)
            sb_str(R, &pad, w.s);
        else
            for (int64_t i = 0; i < (w.k == JV_INT ? w.i : 4) && i < 256; i++)
                sb_c(R, &pad, " ");
        v = vtext(R, v);
        sb_t b = {0};
        size_t i = 0;
        bool line0 = true;
        while (i <= v.s->n) {
            const char *nl = memchr(v.s->s + i, '\n', v.s->n - i);
            size_t j = nl ? (size_t)(nl - v.s->s) : v.s->n;
            bool empty = j == i;
            if ((!line0 || first) && (!empty || blank)) sb_put(R, &b, pad.s, pad.n, NULL, false);
            sb_put(R, &b, v.s->s + i, j - i, v.s->t ? v.s->t + i : NULL, false);
            if (!nl) break;
            sb_put(R, &b, "\n", 1, v.s->t ? v.s->t + j : NULL, false);
            i = j + 1;
            line0 = false;
        }
        return sb_done(R, &b);
    }
    if (IS("selectattr") || IS("rejectattr") || IS("select") || IS("reject")) {
        bool attr = IS("selectattr") || IS("rejectattr");
        bool want = IS("selectattr") || IS("select");
        jlist_t *l = iter_items(R, n, v), *o = list_new(R, l->n);
        int base = attr ? 1 : 0;
        jv_t an = attr ? arg(a, 0, NULL) : V_UNDEF;
        if (attr && an.k != JV_STR) rfail(R, SY_EINVAL, n, "selectattr needs an attribute name");
        jv_t tn = arg(a, base, NULL);
        args_t ta = {0};
        for (int i = base + 1; i < a->n; i++)
            ta.pos[ta.n++] = a->pos[i];
        for (size_t i = 0; i < l->n; i++) {
            jv_t x = attr ? get_attr(R, n, l->v[i], an.s->s, an.s->n) : l->v[i];
            bool ok = tn.k == JV_STR ? run_test(R, n, tn.s, x, &ta) : truthy(x);
            if (ok == want) list_add(R, o, l->v[i]);
        }
        return vlist(o, false);
    }
    if (IS("map")) {
        jlist_t *l = iter_items(R, n, v), *o = list_new(R, l->n);
        jv_t at = arg(a, -1, "attribute");
        jv_t fname = arg(a, 0, NULL);
        args_t fa = {0};
        for (int i = 1; i < a->n; i++)
            fa.pos[fa.n++] = a->pos[i];
        for (size_t i = 0; i < l->n; i++) {
            jv_t x = l->v[i];
            if (at.k == JV_STR) {
                x = get_attr(R, n, x, at.s->s, at.s->n);
                if (x.k == JV_UNDEF) x = arg(a, -1, "default");
            } else if (fname.k == JV_STR) {
                x = run_filter(R, n, fname.s, x, &fa, s);
            } else {
                rfail(R, SY_EINVAL, n, "map needs a filter name or attribute=");
            }
            list_add(R, o, x);
        }
        return vlist(o, false);
    }
    if (IS("reverse")) {
        if (v.k == JV_STR) {
            size_t nc;
            size_t *off = utf8_offsets(R, v.s, &nc);
            sb_t b = {0};
            for (size_t i = nc; i-- > 0;)
                sb_put(R, &b, v.s->s + off[i], off[i + 1] - off[i], v.s->t ? v.s->t + off[i] : NULL,
                       false);
            return sb_done(R, &b);
        }
        jlist_t *l = iter_items(R, n, v), *o = list_new(R, l->n);
        for (size_t i = l->n; i-- > 0;)
            list_add(R, o, l->v[i]);
        return vlist(o, false);
    }
    if (IS("sort")) {
        jlist_t *l = iter_items(R, n, v), *o = list_new(R, l->n);
        bool rev = truthy(arg(a, 0, "reverse"));
        jv_t at = arg(a, 2, "attribute");
        for (size_t i = 0; i < l->n; i++)
            list_add(R, o, l->v[i]);
        for (size_t i = 1; i < o->n; i++) /* stable insertion sort */
            for (size_t j = i; j > 0; j--) {
                jv_t x = o->v[j - 1], y = o->v[j];
                jv_t kx = at.k == JV_STR ? get_attr(R, n, x, at.s->s, at.s->n) : x;
                jv_t ky = at.k == JV_STR ? get_attr(R, n, y, at.s->s, at.s->n) : y;
                int c = vcompare(R, n, kx, ky);
                if (rev ? c >= 0 : c <= 0) break;
                o->v[j - 1] = y;
                o->v[j] = x;
            }
        return vlist(o, false);
    }
    if (IS("unique")) {
        jlist_t *l = iter_items(R, n, v), *o = list_new(R, l->n);
        for (size_t i = 0; i < l->n; i++) {
            bool seen = false;
            for (size_t j = 0; j < o->n && !seen; j++)
                seen = vequal(o->v[j], l->v[i], 0);
            if (!seen) list_add(R, o, l->v[i]);
        }
        return vlist(o, false);
    }
    rfail(R, SY_EINVAL, n, "unknown filter '%.*s'", (int)name->n, name->s);
#undef IS
}

static bool run_test(rt_t *R, const node_t *n, const jstr_t *name, jv_t v, const args_t *a)
{
#define IS(x) jstr_eq(name, x)
    if (IS("defined")) return v.k != JV_UNDEF;
    if (IS("undefined")) return v.k == JV_UNDEF;
    if (IS("none")) return v.k == JV_NONE;
    if (IS("string")) return v.k == JV_STR;
    if (IS("number")) return v.k == JV_INT || v.k == JV_FLOAT;
    if (IS("integer")) return v.k == JV_INT;
    if (IS("float")) return v.k == JV_FLOAT;
    if (IS("boolean")) return v.k == JV_BOOL;
    if (IS("true")) return v.k == JV_BOOL && v.b;
    if (IS("false")) return v.k == JV_BOOL && !v.b;
    if (IS("mapping")) return v.k == JV_DICT;
    if (IS("iterable")) return v.k == JV_LIST || v.k == JV_DICT || v.k == JV_STR;
    if (IS("sequence")) return v.k == JV_LIST || v.k == JV_STR || v.k == JV_DICT;
    if (IS("callable")) return v.k == JV_FN;
    if (IS("odd")) return v.k == JV_INT && (v.i & 1);
    if (IS("even")) return v.k == JV_INT && !(v.i & 1);
    if (IS("lower") || IS("upper")) {
        if (v.k != JV_STR) return false;
        for (size_t i = 0; i < v.s->n; i++) {
            char c = v.s->s[i];
            if (IS("lower") ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) return false;
        }
        return true;
    }
    jv_t x = arg(a, 0, NULL);
    if (IS("divisibleby")) {
        int64_t d = (int64_t)num_of(R, n, x);
        return d && v.k == JV_INT && v.i % d == 0;
    }
    if (IS("eq") || IS("equalto") || IS("==") || IS("sameas")) return vequal(v, x, 0);
    if (IS("ne") || IS("!=")) return !vequal(v, x, 0);
    if (IS("lt") || IS("lessthan")) return vcompare(R, n, v, x) < 0;
    if (IS("gt") || IS("greaterthan")) return vcompare(R, n, v, x) > 0;
    if (IS("le")) return vcompare(R, n, v, x) <= 0;
    if (IS("ge")) return vcompare(R, n, v, x) >= 0;
    if (IS("in")) return contains(R, n, x, v);
    rfail(R, SY_EINVAL, n, "unknown test '%.*s'", (int)name->n, name->s);
#undef IS
}

static jv_t eval(rt_t *R, const node_t *n, scope_t *s)
{
    if (++R->depth > R->max_depth)
        rfail(R, SY_ETOOBIG, n, "expressions nest deeper than %d", R->max_depth);
    jv_t r = V_UNDEF;
    args_t a;
    switch (n->k) {
    case N_STR:
        r = vstr_lit(R, n->name.s, n->name.n);
        break;
    case N_INT:
        r = vint(n->i);
        break;
    case N_FLOAT:
        r = vfloat(n->f);
        break;
    case N_CONST:
        r = n->i < 0 ? V_NONE : vbool(n->i == 1);
        break;
    case N_LIST:
    case N_TUPLE: {
        jlist_t *l = list_new(R, (size_t)n->n_kids);
        for (int i = 0; i < n->n_kids; i++)
            list_add(R, l, eval(R, n->kids[i], s));
        r = vlist(l, n->k == N_TUPLE);
        break;
    }
    case N_DICT: {
        jdict_t *d = dict_new(R);
        for (int i = 0; i < n->n_kids; i++) {
            jv_t k = eval(R, n->kids[i], s);
            if (k.k != JV_STR) rfail(R, SY_EINVAL, n, "dict keys must be strings");
            dict_set(R, d, k.s, eval(R, n->kw[i], s));
        }
        r = (jv_t){.k = JV_DICT, .d = d};
        break;
    }
    case N_NAME: {
        jv_t *v = scope_find(s, n->name.s, n->name.n);
        r = v ? *v : V_UNDEF;
        break;
    }
    case N_ATTR:
        r = get_attr(R, n, eval(R, n->a, s), n->name.s, n->name.n);
        break;
    case N_INDEX: {
        jv_t o = eval(R, n->a, s);
        r = get_index(R, n, o, eval(R, n->b, s));
        break;
    }
    case N_SLICE:
        r = get_slice(R, n, eval(R, n->a, s), s);
        break;
    case N_CALL: {
        jv_t f = eval(R, n->a, s);
        eval_args(R, n, s, &a, 0);
        r = call_fn(R, n, f, &a);
        break;
    }
    case N_FILTER: {
        jv_t v = eval(R, n->a, s);
        eval_args(R, n, s, &a, 0);
        r = run_filter(R, n, &n->name, v, &a, s);
        break;
    }
    case N_TEST: {
        jv_t v = eval(R, n->a, s);
        eval_args(R, n, s, &a, 0);
        r = vbool(run_test(R, n, &n->name, v, &a) != (bool)n->neg);
        break;
    }
    case N_BIN: {
        jv_t x = eval(R, n->a, s);
        if (n->op == OP_AND)
            r = truthy(x) ? eval(R, n->b, s) : x;
        else if (n->op == OP_OR)
            r = truthy(x) ? x : eval(R, n->b, s);
        else
            r = binop(R, n, n->op, x, eval(R, n->b, s));
        break;
    }
    case N_NOT:
        r = vbool(!truthy(eval(R, n->a, s)));
        break;
    case N_NEG: {
        jv_t x = eval(R, n->a, s);
        r = x.k == JV_INT ? vint(-x.i) : vfloat(-num_of(R, n, x));
        break;
    }
    case N_COND:
        if (truthy(eval(R, n->b, s)))
            r = eval(R, n->a, s);
        else
            r = n->c ? eval(R, n->c, s) : V_UNDEF;
        break;
    default:
        rfail(R, SY_EINVAL, n, "not an expression");
    }
    R->depth--;
    return r;
}

/* ------------------------------------------------------- statements ---- */

enum { FLOW_NONE, FLOW_BREAK, FLOW_CONTINUE };

static int exec_list(rt_t *R, const node_t *body, scope_t *s);

static void assign(rt_t *R, const node_t *target, jv_t v, scope_t *s)
{
    if (target->k == N_NAME) {
        set_var(R, s, &target->name, v);
        return;
    }
    jv_t o = eval(R, target->a, s);
    if (o.k != JV_DICT || !o.tuple)
        rfail(R, SY_EINVAL, target, "can only set attributes of a namespace");
    jstr_t *k = ralloc(R, sizeof *k);
    *k = target->name;
    dict_set(R, o.d, k, v);
}

static int exec_for(rt_t *R, const node_t *n, scope_t *s)
{
    jlist_t *items = iter_items(R, n, eval(R, n->a, s));
    /* With a loop filter, loop.* counts the items that pass it. */
    jlist_t *sel = items;
    if (n->b) {
        sel = list_new(R, items->n);
        for (size_t i = 0; i < items->n; i++) {
            scope_t *fs = scope_new(R, s);
            jv_t x = items->v[i];
            if (n->n_targets == 1) {
                jstr_t nm = {.s = n->targets[0], .n = n->target_len[0]};
                set_var(R, fs, &nm, x);
            } else if (x.k == JV_LIST) {
                for (int k = 0; k < n->n_targets && k < (int)x.l->n; k++) {
                    jstr_t nm = {.s = n->targets[k], .n = n->target_len[k]};
                    set_var(R, fs, &nm, x.l->v[k]);
                }
            }
            if (truthy(eval(R, n->b, fs))) list_add(R, sel, x);
        }
    }
    if (!sel->n) {
        if (n->d) return exec_list(R, n->d, s);
        return FLOW_NONE;
    }
    static const char *const names[9] = {"index", "index0", "revindex", "revindex0", "first",
                                         "last",  "length", "previtem", "nextitem"};
    jstr_t *keys[9];
    for (int k = 0; k < 9; k++)
        keys[k] = vstr_c(R, names[k]).s;
    for (size_t i = 0; i < sel->n; i++) {
        if (++R->iters > R->max_iters)
            rfail(R, SY_ETOOBIG, n, "loops ran more than %ld iterations", R->max_iters);
        scope_t *ls = scope_new(R, s);
        jv_t x = sel->v[i];
        if (n->n_targets == 1) {
            jstr_t nm = {.s = n->targets[0], .n = n->target_len[0]};
            set_var(R, ls, &nm, x);
        } else {
            if (x.k != JV_LIST || x.l->n != (size_t)n->n_targets)
                rfail(R, SY_EINVAL, n, "cannot unpack the loop item into %d names", n->n_targets);
            for (int k = 0; k < n->n_targets; k++) {
                jstr_t nm = {.s = n->targets[k], .n = n->target_len[k]};
                set_var(R, ls, &nm, x.l->v[k]);
            }
        }
        jdict_t *loop = dict_new(R);
        loop->key = ralloc(R, 9 * sizeof *loop->key);
        loop->v = ralloc(R, 9 * sizeof *loop->v);
        loop->cap = loop->n = 9;
        memcpy(loop->key, keys, sizeof keys);
        int64_t len = (int64_t)sel->n, idx = (int64_t)i;
        loop->v[0] = vint(idx + 1);
        loop->v[1] = vint(idx);
        loop->v[2] = vint(len - idx);
        loop->v[3] = vint(len - idx - 1);
        loop->v[4] = vbool(idx == 0);
        loop->v[5] = vbool(idx == len - 1);
        loop->v[6] = vint(len);
        loop->v[7] = i ? sel->v[i - 1] : V_UNDEF;
        loop->v[8] = i + 1 < sel->n ? sel->v[i + 1] : V_UNDEF;
        dict_set_c(R, ls->vars, "loop", (jv_t){.k = JV_DICT, .d = loop});
        int f = exec_list(R, n->c, ls);
        if (f == FLOW_BREAK) break;
    }
    return FLOW_NONE;
}

static int exec_node(rt_t *R, const node_t *n, scope_t *s)
{
    switch (n->k) {
    case N_BODY:
        return exec_list(R, n, s);
    case N_TEXT:
        out_put(R, n->name.s, n->name.n, NULL);
        return FLOW_NONE;
    case N_OUT: {
        jv_t v = eval(R, n->a, s);
        if (v.k == JV_UNDEF || v.k == JV_NONE) return FLOW_NONE;
        v = vtext(R, v);
        out_put(R, v.s->s, v.s->n, v.s->t);
        return FLOW_NONE;
    }
    case N_IF:
        if (truthy(eval(R, n->a, s))) return exec_list(R, n->b, s);
        if (n->c) return exec_node(R, n->c, s);
        return FLOW_NONE;
    case N_FOR:
        return exec_for(R, n, s);
    case N_SET:
        if (n->b) {
            assign(R, n->a, eval(R, n->b, s), s);
        } else {
            assign(R, n->a, capture(R, n->c, s), s);
        }
        return FLOW_NONE;
    case N_MACRO: {
        jv_t f = vfn(R, 0, n, V_NONE);
        f.fn->env = s;
        set_var(R, s, &n->name, f);
        return FLOW_NONE;
    }
    case N_BREAK:
        return FLOW_BREAK;
    case N_CONTINUE:
        return FLOW_CONTINUE;
    default:
        rfail(R, SY_EINVAL, n, "not a statement");
    }
}

static int exec_list(rt_t *R, const node_t *body, scope_t *s)
{
    if (++R->depth > R->max_depth)
        rfail(R, SY_ETOOBIG, body, "blocks nest deeper than %d", R->max_depth);
    int f = FLOW_NONE;
    if (body->k != N_BODY) {
        f = exec_node(R, body, s);
    } else {
        for (int i = 0; i < body->n_kids && f == FLOW_NONE; i++)
            f = exec_node(R, body->kids[i], s);
    }
    R->depth--;
    return f;
}

static void exec_body(rt_t *R, const node_t *body, scope_t *s)
{
    exec_list(R, body, s);
}

/* ========================================================== public ==== */

void jinja_out_init(jinja_out_t *o, size_t max_bytes)
{
    memset(o, 0, sizeof *o);
    buf_init(&o->text, max_bytes);
}

void jinja_out_deinit(jinja_out_t *o)
{
    buf_deinit(&o->text);
    mem_free(o->spans);
    memset(o, 0, sizeof *o);
}

void jinja_out_reset(jinja_out_t *o)
{
    buf_reset(&o->text);
    o->n_spans = 0;
}

int jinja_render(const jinja_tmpl_t *t, const cJSON *ctx, const cJSON *trusted,
                 const jinja_limits_t *lim, jinja_out_t *out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = 0;
    jinja_limits_t L = lim ? *lim : (jinja_limits_t){0};
    rt_t *R = mem_calloc(1, sizeof *R);
    arena_init(&R->arena, 64 << 10);
    R->max_memory = L.max_memory ? L.max_memory : 64u << 20;
    R->max_depth = L.max_depth > 0 ? L.max_depth : 200;
    R->max_iters = L.max_iterations > 0 ? L.max_iterations : 1000000;
    R->max_output = L.max_output ? L.max_output : 4u << 20;
    R->out = out;
    R->err = err;
    R->errlen = errlen;
    int rc = 0;
    /* Nested renders (macros, set blocks) keep their own output: free them on error. */
    if (setjmp(R->jb)) {
        rc = R->rc;
        for (int i = 0; i < R->n_tmp; i++) {
            jinja_out_deinit(R->tmp[i]);
            mem_free(R->tmp[i]);
        }
    } else {
        R->global = scope_new(R, NULL);
        jdict_t *g = R->global->vars;
        dict_set_c(R, g, "raise_exception", vfn(R, FN_RAISE, NULL, V_NONE));
        dict_set_c(R, g, "range", vfn(R, FN_RANGE, NULL, V_NONE));
        dict_set_c(R, g, "namespace", vfn(R, FN_NAMESPACE, NULL, V_NONE));
        dict_set_c(R, g, "strftime_now", vfn(R, FN_STRFTIME, NULL, V_NONE));
        for (int pass = 0; pass < 2; pass++) {
            const cJSON *src = pass ? trusted : ctx, *x;
            if (!src || !cJSON_IsObject(src)) continue;
            cJSON_ArrayForEach(x, src)
            {
                jstr_t *k = vstr_copy(R, x->string, strlen(x->string), false).s;
                dict_set(R, g, k, from_json(R, x, 0, pass == 0));
            }
        }
        exec_body(R, t->root, scope_new(R, R->global));
    }
    arena_deinit(&R->arena);
    mem_free(R);
    return rc;
}
