/* grammar.c — the JSON state machine behind constrained decoding (see grammar.h). */
#include "engine/grammar.h"

#include <string.h>

#include "base/err.h"
#include "base/mem.h"

/* ================================================================ nodes ===== */

static const char *const bool_lits[] = {"true", "false"};
static const int bool_llen[] = {4, 5};
static const char *const null_lits[] = {"null"};
static const int null_llen[] = {4};

static grammar_node_t any_node = {
    .types = GRAMMAR_OBJECT | GRAMMAR_ARRAY | GRAMMAR_STRING | GRAMMAR_NUMBER | GRAMMAR_BOOLEAN |
             GRAMMAR_NULL,
    .free_obj = true,
    .items = &any_node,
    .max_items = -1,
    .min_len = 1,
};

const grammar_node_t *grammar_node_any(void)
{
    return &any_node;
}

grammar_t *grammar_new(void)
{
    grammar_t *g = mem_calloc(1, sizeof *g);
    arena_init(&g->arena, 4096);
    return g;
}

grammar_t *grammar_new_json_object(void)
{
    grammar_t *g = grammar_new();
    grammar_node_t *n = arena_alloc(&g->arena, sizeof *n);
    memset(n, 0, sizeof *n);
    n->types = GRAMMAR_OBJECT;
    n->free_obj = true;
    n->max_items = -1;
    grammar_node_finish(n);
    g->root = n;
    return g;
}

void grammar_free(grammar_t *g)
{
    if (!g) return;
    arena_deinit(&g->arena);
    mem_free(g);
}

/* Bytes of `"key":value` for property i at its shortest. */
static int entry_cost(const grammar_node_t *n, int i)
{
    return n->klen[i] + 3 + n->props[i]->min_len;
}

void grammar_node_finish(grammar_node_t *n)
{
    int best = 1 << 30;
    if (n->types & GRAMMAR_ENUM)
        for (int i = 0; i < n->n_lits; i++)
            if (n->llen[i] < best) best = n->llen[i];
    if (n->types & GRAMMAR_CALL)
        for (int i = 0; i < n->n_lits; i++)
            if (n->llen[i] + n->props[i]->min_len + 1 < best)
                best = n->llen[i] + n->props[i]->min_len + 1;
    if (n->types & (GRAMMAR_NUMBER | GRAMMAR_INTEGER)) best = 1;
    if (n->types & GRAMMAR_STRING && best > 2) best = 2;
    if (n->types & GRAMMAR_BOOLEAN && best > 4) best = 4;
    if (n->types & GRAMMAR_NULL && best > 4) best = 4;
    if (n->types & GRAMMAR_ARRAY) {
        int c = 2 + (n->min_items > 0 ? n->min_items * (n->items->min_len + 1) - 1 : 0);
        if (c < best) best = c;
    }
    if (n->types & GRAMMAR_OBJECT) {
        int c = 2, r = 0;
        for (int i = 0; i < n->n_props; i++)
            if (n->required >> i & 1) c += entry_cost(n, i), r++;
        if (r > 1) c += r - 1;
        if (c < best) best = c;
    }
    n->min_len = best;
}

/* ================================================================ state ===== */

enum { F_VALUE, F_OBJ, F_ARR, F_STR, F_NUM, F_LIT, F_CALL };
enum { C_PREFIX, C_VALUE, C_END };
enum { O_OPEN, O_COMMA, O_KEY, O_FKEY, O_COLON, O_VALUE, O_AFTER };
enum { A_OPEN, A_COMMA, A_VALUE, A_AFTER };
enum { S_IN, S_UTF, S_ESC, S_U };
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

enum { STEP_OK, STEP_BAD, STEP_REFEED };

#define MAX_INT_DIGITS 15
#define MAX_EXP_DIGITS 2 /* keeps every number a finite double */

static bool is_ws(int c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void push_value(grammar_state_t *s, const grammar_node_t *n)
{
    grammar_frame_t *f = &s->f[s->depth++];
    memset(f, 0, sizeof *f);
    f->n = n;
    f->kind = F_VALUE;
}

/* The top frame finished its value: pop it and tell the parent. */
static void pop_done(grammar_state_t *s)
{
    const grammar_frame_t *top = &s->f[s->depth - 1];
    if (top->kind == F_OBJ) s->n_keys = top->count; /* its keys are forgotten */
    s->depth--;
    if (s->depth == 0) {
        s->done = true;
        return;
    }
    grammar_frame_t *p = &s->f[s->depth - 1];
    if (p->kind == F_OBJ)
        p->st = p->st == O_FKEY ? O_COLON : O_AFTER;
    else if (p->kind == F_ARR)
        p->st = A_AFTER;
    else if (p->kind == F_CALL)
        p->st = C_END;
}

static bool lit_complete(const grammar_frame_t *f)
{
    for (int i = 0; i < 64; i++)
        if (f->alive >> i & 1 && f->llen[i] == f->pos) return true;
    return false;
}

static uint64_t all_bits(int n)
{
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static int step_lit(grammar_state_t *s, grammar_frame_t *f, int c)
{
    uint64_t next = 0;
    for (int i = 0; i < 64; i++)
        if (f->alive >> i & 1 && f->llen[i] > f->pos && (uint8_t)f->lits[i][f->pos] == c)
            next |= 1ull << i;
    if (!next) {
        if (!lit_complete(f)) return STEP_BAD;
        pop_done(s);
        return STEP_REFEED;
    }
    f->alive = next;
    f->pos++;
    /* done as soon as no candidate can grow */
    bool grow = false;
    for (int i = 0; i < 64 && !grow; i++)
        grow = f->alive >> i & 1 && f->llen[i] > f->pos;
    if (!grow) pop_done(s);
    return STEP_OK;
}

static int step_num(grammar_state_t *s, grammar_frame_t *f, int c)
{
    bool real = f->n->types & GRAMMAR_NUMBER;
    switch (f->st) {
    case N_START:
        if (c == '-') return f->st = N_MINUS, STEP_OK;
        /* fall through */
    case N_MINUS:
        if (c == '0') return f->st = N_ZERO, STEP_OK;
        if (c >= '1' && c <= '9') return f->st = N_INT, f->pos = 1, STEP_OK;
        return STEP_BAD;
    case N_INT:
        if (is_digit(c)) return f->pos < MAX_INT_DIGITS ? (f->pos++, STEP_OK) : STEP_BAD;
        /* fall through */
    case N_ZERO:
        if (real && c == '.') return f->st = N_DOT, STEP_OK;
        if (real && (c == 'e' || c == 'E')) return f->st = N_E, STEP_OK;
        break;
    case N_DOT:
        if (is_digit(c)) return f->st = N_FRAC, f->pos = 1, STEP_OK;
        return STEP_BAD;
    case N_FRAC:
        if (is_digit(c)) return f->pos < MAX_INT_DIGITS ? (f->pos++, STEP_OK) : STEP_BAD;
        if (c == 'e' || c == 'E') return f->st = N_E, STEP_OK;
        break;
    case N_E:
        if (c == '+' || c == '-') return f->st = N_ESIGN, STEP_OK;
        /* fall through */
    case N_ESIGN:
        if (is_digit(c)) return f->st = N_EXP, f->pos = 1, STEP_OK;
        return STEP_BAD;
    case N_EXP:
        if (is_digit(c)) return f->pos < MAX_EXP_DIGITS ? (f->pos++, STEP_OK) : STEP_BAD;
        break;
    }
    pop_done(s); /* an accepting state followed by a byte of the parent */
    return STEP_REFEED;
}

/* A tool call: its prefix literal, then (once one is matched whole) the arguments
 * value as a child frame, then the closing brace. */
static int step_call(grammar_state_t *s, grammar_frame_t *f, int c)
{
    const grammar_node_t *n = f->n;
    if (f->st == C_END) return c == '}' ? (pop_done(s), STEP_OK) : STEP_BAD;
    uint64_t next = 0;
    for (int i = 0; i < n->n_lits; i++)
        if (f->alive >> i & 1 && n->llen[i] > f->pos && (uint8_t)n->lits[i][f->pos] == c)
            next |= 1ull << i;
    if (!next) return STEP_BAD;
    f->alive = next;
    f->pos++;
    for (int i = 0; i < n->n_lits; i++)
        if (f->alive >> i & 1 && n->llen[i] == f->pos) {
            if (s->depth >= GRAMMAR_MAX_DEPTH) return STEP_BAD;
            f->cur = (int16_t)i;
            f->st = C_VALUE;
            push_value(s, n->props[i]);
            break;
        }
    return STEP_OK;
}

/* Records a free object's key hash; nonzero when it repeats one or there is no room. */
static int key_add(grammar_state_t *s, uint32_t h)
{
    const grammar_frame_t *obj = &s->f[s->depth - 2];
    for (int i = obj->count; i < s->n_keys; i++)
        if (s->keys[i] == h) return 1;
    if (s->n_keys >= GRAMMAR_MAX_KEYS) return 1;
    s->keys[s->n_keys++] = h;
    return 0;
}

static int step_str(grammar_state_t *s, grammar_frame_t *f, int c)
{
    switch (f->st) {
    case S_IN:
        if (c == '"' && f->key && key_add(s, (uint32_t)f->alive)) return STEP_BAD;
        if (c == '"') return pop_done(s), STEP_OK;
        if (f->key) f->alive = ((uint32_t)f->alive ^ (uint32_t)c) * 16777619u;
        if (c == '\\') return f->st = S_ESC, STEP_OK;
        if (c < 0x20 || c == 0x7f) return STEP_BAD;
        if (c < 0x80) return STEP_OK;
        if (c >= 0xc2 && c <= 0xdf)
            f->count = 1;
        else if (c >= 0xe0 && c <= 0xef)
            f->count = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            f->count = 3;
        else
            return STEP_BAD;
        f->pos = (int16_t)c; /* lead byte: limits the second byte */
        f->st = S_UTF;
        return STEP_OK;
    case S_UTF: {
        int lo = 0x80, hi = 0xbf;
        if (f->pos == 0xe0)
            lo = 0xa0;
        else if (f->pos == 0xed)
            hi = 0x9f;
        else if (f->pos == 0xf0)
            lo = 0x90;
        else if (f->pos == 0xf4)
            hi = 0x8f;
        if (c < lo || c > hi) return STEP_BAD;
        f->pos = 0;
        if (--f->count == 0) f->st = S_IN;
        return STEP_OK;
    }
    case S_ESC:
        if (c == 'u') return f->st = S_U, f->pos = 0, f->count = 0, STEP_OK;
        if (strchr("\"\\/bfnrt", c) && c) return f->st = S_IN, STEP_OK;
        return STEP_BAD;
    case S_U:
        if (!is_hex(c)) return STEP_BAD;
        /* no surrogates (D800-DFFF): a lone one is not valid text */
        if (f->pos == 0 && (c == 'd' || c == 'D')) f->count = 1;
        if (f->pos == 1 && f->count && !(c >= '0' && c <= '7')) return STEP_BAD;
        if (++f->pos == 4) f->st = S_IN, f->count = 0;
        return STEP_OK;
    }
    return STEP_BAD;
}

static bool obj_required_met(const grammar_frame_t *f)
{
    return (f->n->required & ~f->seen) == 0;
}

static bool obj_has_unseen(const grammar_state_t *s, const grammar_frame_t *f)
{
    if (f->n->free_obj) return s->n_keys < GRAMMAR_MAX_KEYS;
    return (all_bits(f->n->n_props) & ~f->seen) != 0;
}

/* A key starts (its opening quote was read). */
static int obj_key_start(grammar_state_t *s, grammar_frame_t *f)
{
    if (f->n->free_obj) {
        if (s->depth >= GRAMMAR_MAX_DEPTH) return STEP_BAD;
        f->st = O_FKEY;
        grammar_frame_t *k = &s->f[s->depth++];
        memset(k, 0, sizeof *k);
        k->n = &any_node;
        k->kind = F_STR;
        k->st = S_IN;
        k->key = 1;
        k->alive = 2166136261u; /* FNV-1a of the key's bytes */
        return STEP_OK;
    }
    f->alive = all_bits(f->n->n_props) & ~f->seen;
    if (!f->alive) return STEP_BAD;
    f->pos = 0;
    f->st = O_KEY;
    return STEP_OK;
}

static int step_obj(grammar_state_t *s, grammar_frame_t *f, int c)
{
    const grammar_node_t *n = f->n;
    if (is_ws(c) && (f->st == O_OPEN || f->st == O_COMMA || f->st == O_AFTER)) {
        if (f->ws) return STEP_BAD;
        f->ws = 1;
        return STEP_OK;
    }
    switch (f->st) {
    case O_OPEN:
        f->ws = 0;
        if (c == '}' && obj_required_met(f)) return pop_done(s), STEP_OK;
        if (c == '"') return obj_key_start(s, f);
        return STEP_BAD;
    case O_COMMA:
        f->ws = 0;
        if (c == '"') return obj_key_start(s, f);
        return STEP_BAD;
    case O_KEY: {
        if (c == '"') {
            for (int i = 0; i < n->n_props; i++)
                if (f->alive >> i & 1 && n->klen[i] == f->pos) {
                    f->cur = (int16_t)i;
                    f->seen |= 1ull << i;
                    f->st = O_COLON;
                    return STEP_OK;
                }
            return STEP_BAD;
        }
        uint64_t next = 0;
        for (int i = 0; i < n->n_props; i++)
            if (f->alive >> i & 1 && n->klen[i] > f->pos && (uint8_t)n->keys[i][f->pos] == c)
                next |= 1ull << i;
        if (!next) return STEP_BAD;
        f->alive = next;
        f->pos++;
        return STEP_OK;
    }
    case O_COLON:
        if (c != ':') return STEP_BAD;
        if (s->depth >= GRAMMAR_MAX_DEPTH) return STEP_BAD;
        f->st = O_VALUE;
        push_value(s, n->free_obj ? &any_node : n->props[f->cur]);
        return STEP_OK;
    case O_AFTER:
        f->ws = 0;
        if (c == '}' && obj_required_met(f)) return pop_done(s), STEP_OK;
        if (c == ',' && obj_has_unseen(s, f)) return f->st = O_COMMA, STEP_OK;
        return STEP_BAD;
    }
    return STEP_BAD;
}

static int step_arr(grammar_state_t *s, grammar_frame_t *f, int c)
{
    const grammar_node_t *n = f->n;
    if (is_ws(c) && f->st != A_VALUE) {
        if (f->ws) return STEP_BAD;
        f->ws = 1;
        return STEP_OK;
    }
    f->ws = 0;
    switch (f->st) {
    case A_OPEN:
        if (c == ']' && n->min_items == 0) return pop_done(s), STEP_OK;
        if (n->max_items == 0) return STEP_BAD;
        /* fall through */
    case A_COMMA:
        if (s->depth >= GRAMMAR_MAX_DEPTH) return STEP_BAD;
        f->st = A_VALUE;
        f->count++;
        push_value(s, n->items);
        return STEP_REFEED;
    case A_AFTER:
        if (c == ']' && f->count >= n->min_items) return pop_done(s), STEP_OK;
        if (c == ',' && (n->max_items < 0 || f->count < n->max_items))
            return f->st = A_COMMA, STEP_OK;
        return STEP_BAD;
    }
    return STEP_BAD;
}

/* A value's first byte picks its type. */
static int step_value(grammar_state_t *s, grammar_frame_t *f, int c)
{
    const grammar_node_t *n = f->n;
    unsigned t = n->types;
    if (is_ws(c)) {
        if (f->ws) return STEP_BAD;
        f->ws = 1;
        return STEP_OK;
    }
    f->ws = 0;
    if (t & GRAMMAR_CALL) {
        f->kind = F_CALL;
        f->st = C_PREFIX;
        f->alive = all_bits(n->n_lits);
        f->pos = 0;
        return step_call(s, f, c);
    }
    if (t & GRAMMAR_ENUM) {
        f->kind = F_LIT;
        f->lits = n->lits;
        f->llen = n->llen;
        f->alive = all_bits(n->n_lits);
        f->pos = 0;
        return step_lit(s, f, c);
    }
    /* room for this container and the string or scalar inside it */
    bool room = s->depth + 2 <= GRAMMAR_MAX_DEPTH;
    if (c == '{' && t & GRAMMAR_OBJECT && room) {
        f->kind = F_OBJ;
        f->st = O_OPEN;
        f->count = s->n_keys; /* where this object's keys start */
        return STEP_OK;
    }
    if (c == '[' && t & GRAMMAR_ARRAY && room) {
        f->kind = F_ARR;
        f->st = A_OPEN;
        f->count = 0;
        return STEP_OK;
    }
    if (c == '"' && t & GRAMMAR_STRING) return f->kind = F_STR, f->st = S_IN, STEP_OK;
    if ((c == '-' || is_digit(c)) && t & (GRAMMAR_NUMBER | GRAMMAR_INTEGER)) {
        f->kind = F_NUM;
        f->st = N_START;
        return step_num(s, f, c);
    }
    if ((c == 't' || c == 'f') && t & GRAMMAR_BOOLEAN) {
        f->kind = F_LIT;
        f->lits = bool_lits;
        f->llen = bool_llen;
        f->alive = 3;
        f->pos = 0;
        return step_lit(s, f, c);
    }
    if (c == 'n' && t & GRAMMAR_NULL) {
        f->kind = F_LIT;
        f->lits = null_lits;
        f->llen = null_llen;
        f->alive = 1;
        f->pos = 0;
        return step_lit(s, f, c);
    }
    return STEP_BAD;
}

static int feed_byte(grammar_state_t *s, int c)
{
    for (;;) {
        if (s->depth == 0) return SY_EINVAL; /* the value is complete */
        grammar_frame_t *f = &s->f[s->depth - 1];
        int r;
        switch (f->kind) {
        case F_VALUE:
            r = step_value(s, f, c);
            break;
        case F_OBJ:
            r = step_obj(s, f, c);
            break;
        case F_ARR:
            r = step_arr(s, f, c);
            break;
        case F_STR:
            r = step_str(s, f, c);
            break;
        case F_NUM:
            r = step_num(s, f, c);
            break;
        case F_CALL:
            r = step_call(s, f, c);
            break;
        default:
            r = step_lit(s, f, c);
            break;
        }
        if (r == STEP_OK) return 0;
        if (r == STEP_BAD) return SY_EINVAL;
    }
}

void grammar_state_init(grammar_state_t *s, const grammar_t *g)
{
    s->depth = 0;
    s->done = false;
    s->n_keys = 0;
    push_value(s, g->root);
}

int grammar_state_feed(grammar_state_t *s, const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (feed_byte(s, (uint8_t)bytes[i])) return SY_EINVAL;
    return 0;
}

bool grammar_state_complete(const grammar_state_t *s)
{
    if (s->done) return true;
    if (s->depth != 1) return false;
    const grammar_frame_t *f = &s->f[0];
    if (f->kind == F_NUM)
        return f->st == N_ZERO || f->st == N_INT || f->st == N_FRAC || f->st == N_EXP;
    if (f->kind == F_LIT) return lit_complete(f);
    return false;
}

/* ============================================================ close cost ==== */

/* Bytes of the required properties not given yet, each with its leading comma,
 * leaving property `skip` out; plus the closing brace. */
static int obj_tail(const grammar_frame_t *f, int skip)
{
    const grammar_node_t *n = f->n;
    uint64_t rem = n->required & ~f->seen;
    int c = 1;
    for (int i = 0; i < n->n_props; i++)
        if (rem >> i & 1 && i != skip) c += entry_cost(n, i) + 1;
    return c;
}

/* What frame f still needs once its child (if any) is complete. */
static int frame_cost(const grammar_frame_t *f)
{
    const grammar_node_t *n = f->n;
    switch (f->kind) {
    case F_VALUE:
        return n->min_len;
    case F_LIT: {
        int best = 1 << 30;
        for (int i = 0; i < 64; i++)
            if (f->alive >> i & 1 && f->llen[i] - f->pos < best) best = f->llen[i] - f->pos;
        return best;
    }
    case F_CALL: {
        if (f->st != C_PREFIX) return 1;
        int best = 1 << 30;
        for (int i = 0; i < n->n_lits; i++) {
            int c = n->llen[i] - f->pos + n->props[i]->min_len + 1;
            if (f->alive >> i & 1 && c < best) best = c;
        }
        return best;
    }
    case F_NUM:
        return f->st == N_ZERO || f->st == N_INT || f->st == N_FRAC || f->st == N_EXP ? 0 : 1;
    case F_STR:
        if (f->st == S_IN) return f->key ? 2 : 1; /* a repeated key needs one more byte */
        if (f->st == S_UTF) return f->count + 1;
        if (f->st == S_ESC) return 2;
        return 4 - f->pos + 1;
    case F_ARR: {
        int ml = n->items->min_len + 1;
        int need = n->min_items - f->count;
        if (f->st == A_OPEN) return n->min_items > 0 ? n->min_items * ml : 1;
        if (f->st == A_COMMA) return (need > 1 ? need : 1) * ml;
        return (need > 0 ? need * ml : 0) + 1;
    }
    case F_OBJ: {
        int tail = obj_tail(f, -1);
        switch (f->st) {
        case O_OPEN:
            return tail > 1 ? tail - 1 : 1;
        case O_COMMA: {
            if (tail > 1) return tail - 1;
            if (n->free_obj) return 6; /* "x":0} (x: not a repeated key) */
            int best = 1 << 30;
            for (int i = 0; i < n->n_props; i++)
                if (!(f->seen >> i & 1) && entry_cost(n, i) < best) best = entry_cost(n, i);
            return best + 1;
        }
        case O_KEY: {
            int best = 1 << 30;
            for (int i = 0; i < n->n_props; i++) {
                if (!(f->alive >> i & 1)) continue;
                int c = n->klen[i] - f->pos + 2 + n->props[i]->min_len + obj_tail(f, i);
                if (c < best) best = c;
            }
            return best;
        }
        case O_FKEY:
            return 1 + 1 + tail; /* :0 then the rest */
        case O_COLON:
            return 1 + (n->free_obj ? 1 : n->props[f->cur]->min_len) + tail;
        default:
            return tail;
        }
    }
    }
    return 0;
}

int grammar_state_close_cost(const grammar_state_t *s)
{
    int c = 0;
    for (int i = 0; i < s->depth; i++)
        c += frame_cost(&s->f[i]);
    return c;
}

/* ================================================================ vocab ===== */

struct grammar_vocab {
    int n;
    char *bytes;     /* all token strings, back to back */
    uint32_t *off;   /* (n + 1) */
    bool *eog;       /* (n) ends generation */
    int *by_first;   /* (n) token ids grouped by first, then second byte */
    int *first;      /* (256 * 257 + 1) bucket starts: b0 * 257 + (one byte ? 0 : 1 + b1) */
    uint16_t *plain; /* (n) leading bytes that are whole characters of string content */
    int *cost;       /* (n) scratch: close cost after the token, -1 not allowed */
    grammar_state_t tmp, probe, probe2;
};

/* Bytes at the start of b that are whole characters of string content (step_str's
 * rules: printable ASCII but " and \\, or complete valid UTF-8 sequences). */
static int plain_prefix(const char *b, int k)
{
    int i = 0;
    while (i < k && i < 65000) {
        int c = (uint8_t)b[i], need, lo = 0x80, hi = 0xbf;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3;
        else
            break;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        else if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        if (i + need >= k) break;
        bool ok = (uint8_t)b[i + 1] >= lo && (uint8_t)b[i + 1] <= hi;
        for (int j = 2; j <= need && ok; j++)
            ok = ((uint8_t)b[i + j] & 0xc0) == 0x80;
        if (!ok) break;
        i += need + 1;
    }
    return i;
}

/* Index bucket of a token's bytes: first byte, then second (single bytes first). */
static int bucket_of(const char *b, int k)
{
    return (uint8_t)b[0] * 257 + (k > 1 ? 1 + (uint8_t)b[1] : 0);
}

grammar_vocab_t *grammar_vocab_new(const tokenizer_t *t)
{
    int n = tokenizer_n_vocab(t);
    grammar_vocab_t *v = mem_calloc(1, sizeof *v);
    v->n = n;
    v->off = mem_alloc((size_t)(n + 1) * sizeof *v->off);
    v->eog = mem_calloc((size_t)n, sizeof *v->eog);
    v->by_first = mem_alloc((size_t)(n ? n : 1) * sizeof *v->by_first);
    v->cost = mem_alloc((size_t)(n ? n : 1) * sizeof *v->cost);
    size_t cap = 4096, len = 0;
    v->bytes = mem_alloc(cap);
    char piece[TOKENIZER_MAX_PIECE + 4];
    int *counts = mem_calloc(256 * 257 + 1, sizeof *counts);
    v->first = mem_alloc((256 * 257 + 1) * sizeof *v->first);
    v->plain = mem_alloc((size_t)(n ? n : 1) * sizeof *v->plain);
    for (int i = 0; i < n; i++) {
        v->off[i] = (uint32_t)len;
        v->eog[i] = tokenizer_is_eog(t, i);
        int k = v->eog[i] ? 0 : tokenizer_decode(t, -1, i, piece, sizeof piece);
        if (k > (int)sizeof piece) k = sizeof piece;
        if (len + (size_t)k > cap) {
            while (len + (size_t)k > cap)
                cap *= 2;
            v->bytes = mem_realloc(v->bytes, cap);
        }
        memcpy(v->bytes + len, piece, (size_t)k);
        len += (size_t)k;
        v->plain[i] = (uint16_t)plain_prefix(piece, k);
        if (k) counts[bucket_of(piece, k)]++;
    }
    v->off[n] = (uint32_t)len;
    v->first[0] = 0;
    for (int b = 0; b < 256 * 257; b++)
        v->first[b + 1] = v->first[b] + counts[b];
    memcpy(counts, v->first, 256 * 257 * sizeof *counts);
    for (int i = 0; i < n; i++) {
        uint32_t o = v->off[i], k = v->off[i + 1] - o;
        if (k) v->by_first[counts[bucket_of(v->bytes + o, (int)k)]++] = i;
    }
    mem_free(counts);
    return v;
}

void grammar_vocab_free(grammar_vocab_t *v)
{
    if (!v) return;
    mem_free(v->bytes);
    mem_free(v->off);
    mem_free(v->eog);
    mem_free(v->by_first);
    mem_free(v->first);
    mem_free(v->plain);
    mem_free(v->cost);
    mem_free(v);
}

int grammar_vocab_lead(const grammar_vocab_t *v, int id)
{
    if (id < 0 || id >= v->n) return -1;
    for (uint32_t k = v->off[id]; k < v->off[id + 1]; k++)
        if (!is_ws((uint8_t)v->bytes[k])) return (uint8_t)v->bytes[k];
    return -1;
}

/* ================================================================= mask ===== */

/* Copies the live part of a state. */
static void state_copy(grammar_state_t *d, const grammar_state_t *s)
{
    d->depth = s->depth;
    d->done = s->done;
    d->n_keys = s->n_keys;
    memcpy(d->keys, s->keys, (size_t)s->n_keys * sizeof *s->keys);
    memcpy(d->f, s->f, (size_t)s->depth * sizeof *s->f);
}

/* Feeds token id's bytes from offset `from` on to a copy of st; its close cost after
 * them goes to v->cost[id] (left -1 when rejected). */
static void try_token(grammar_vocab_t *v, const grammar_state_t *st, int id, uint32_t from)
{
    uint32_t o = v->off[id] + from, e = v->off[id + 1];
    state_copy(&v->tmp, st);
    for (uint32_t k = o; k < e; k++)
        if (feed_byte(&v->tmp, (uint8_t)v->bytes[k])) return;
    v->cost[id] = grammar_state_close_cost(&v->tmp);
}

/* Inside string content, plain bytes leave the state as it is: a token of plain bytes
 * only is allowed at the current cost, others are tried from their first special
 * byte. */
static void mask_string(const grammar_state_t *s, grammar_vocab_t *v)
{
    int c0 = grammar_state_close_cost(s);
    for (int id = 0; id < v->n; id++) {
        uint32_t len = v->off[id + 1] - v->off[id];
        if (!len) continue;
        if (v->plain[id] == len)
            v->cost[id] = c0;
        else
            try_token(v, s, id, v->plain[id]);
    }
}

/* Elsewhere few first bytes fit: probe each first byte, then each second byte, and
 * try only the tokens in buckets that survive both. */
static void mask_buckets(const grammar_state_t *s, grammar_vocab_t *v)
{
    for (int b0 = 0; b0 < 256; b0++) {
        const int *fb = v->first + b0 * 257;
        if (fb[0] == fb[257]) continue;
        state_copy(&v->probe, s);
        if (feed_byte(&v->probe, b0)) continue; /* no token starting with b0 can follow */
        for (int j = fb[0]; j < fb[1]; j++)
            v->cost[v->by_first[j]] = grammar_state_close_cost(&v->probe);
        for (int b1 = 0; b1 < 256; b1++) {
            if (fb[1 + b1] == fb[2 + b1]) continue;
            state_copy(&v->probe2, &v->probe);
            if (feed_byte(&v->probe2, b1)) continue;
            for (int j = fb[1 + b1]; j < fb[2 + b1]; j++)
                try_token(v, &v->probe2, v->by_first[j], 2);
        }
    }
}

int grammar_mask(const grammar_state_t *s, grammar_vocab_t *v, int budget, float *logits)
{
    for (int i = 0; i < v->n; i++)
        v->cost[i] = -1;
    const grammar_frame_t *top = s->depth ? &s->f[s->depth - 1] : NULL;
    if (top && top->kind == F_STR && top->st == S_IN && !top->key)
        mask_string(s, v);
    else
        mask_buckets(s, v);
    int min_cost = 1 << 30;
    for (int i = 0; i < v->n; i++)
        if (v->cost[i] >= 0 && v->cost[i] < min_cost) min_cost = v->cost[i];
    bool complete = grammar_state_complete(s);
    /* Tokens after this one: the rest must fit, else keep the ones closing soonest. */
    int limit = budget > 0 ? budget - 1 : 1 << 30;
    if (min_cost > limit && !complete) limit = min_cost;
    int allowed = 0;
    for (int i = 0; i < v->n; i++) {
        bool ok = v->eog[i] ? complete : v->cost[i] >= 0 && v->cost[i] <= limit;
        if (ok)
            allowed++;
        else
            logits[i] = GRAMMAR_MASKED;
    }
    return allowed;
}
