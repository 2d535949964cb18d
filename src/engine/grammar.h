/* grammar.h — constrained decoding: a JSON state machine, driven by a compiled schema,
 * that says which vocabulary tokens may come next.
 *
 * Three parts, with three lifetimes:
 *   grammar_t        a compiled grammar (a tree of value nodes), immutable once built:
 *                    from a JSON Schema subset (jsonschema.h) or "any JSON object".
 *   grammar_vocab_t  the byte string of every token of one vocabulary, computed once,
 *                    indexed by first byte, plus per-token scratch for the mask.
 *   grammar_state_t  where one generation is: a stack of frames (object, array, string,
 *                    number, literal), caller-allocated, no heap.
 *
 * At each step grammar_mask() tries every token whose first byte the state accepts on
 * a copy of the state (only the live frames are copied) and pushes the logits of the
 * rest far down; an end-of-generation token is allowed only when the value is
 * complete. With a token budget it also keeps the output closable: a token is allowed
 * only if the bytes still needed to finish the value (grammar_state_close_cost, one
 * token per byte at worst, which byte-fallback and byte-level vocabularies guarantee)
 * fit the tokens left after it, so the output parses whenever max_tokens ends it.
 *
 * Output form: compact JSON with at most one whitespace byte in each gap; objects of
 * a schema with properties carry declared properties only, each at most once, in any
 * order; a free object (no properties declared) never repeats a key (compared as
 * raw bytes: "\u0041" and "A" count as different); numbers have at most 15 integer and 15 fraction
 * digits; strings are valid UTF-8 without \u escapes of surrogates.
 */
#ifndef SY_ENGINE_GRAMMAR_H
#define SY_ENGINE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "engine/tokenizer.h"

/* Value types a node accepts (a mask: several for anyOf / type lists). */
enum {
    GRAMMAR_OBJECT = 1 << 0,
    GRAMMAR_ARRAY = 1 << 1,
    GRAMMAR_STRING = 1 << 2,
    GRAMMAR_NUMBER = 1 << 3,
    GRAMMAR_INTEGER = 1 << 4,
    GRAMMAR_BOOLEAN = 1 << 5,
    GRAMMAR_NULL = 1 << 6,
    GRAMMAR_ENUM = 1 << 7, /* exactly one of lits (alone, no other type bit) */
    /* a tool call (alone): one of lits, an object's opening up to a key's colon, then
     * the value props[i] of the literal taken, then '}' (jsonschema_compile_tools) */
    GRAMMAR_CALL = 1 << 8,
};

#define GRAMMAR_MAX_PROPS        64 /* properties per object, literals per enum */
#define GRAMMAR_MAX_DEPTH        32 /* frames: nesting of values, strings included */
#define GRAMMAR_MAX_SCHEMA_DEPTH 12
#define GRAMMAR_MAX_KEYS         32 /* keys of open free objects, all together */

/* One value of the grammar. */
typedef struct grammar_node {
    unsigned types;
    /* object: declared properties (none and free_obj: any keys, any values) */
    bool free_obj;
    int n_props;
    const char **keys; /* (n_props) raw bytes, no escapes needed */
    int *klen;
    struct grammar_node **props;
    uint64_t required; /* bit i: props[i] must appear */
    /* array */
    struct grammar_node *items; /* element schema (grammar_node_any() for any) */
    int min_items, max_items;   /* max_items -1: no limit */
    /* enum / const: compact JSON texts; call: the prefixes (none a prefix of another) */
    int n_lits;
    const char **lits;
    int *llen;
    int min_len; /* bytes of the shortest value this node accepts */
} grammar_node_t;

typedef struct grammar {
    arena_t arena; /* every node and string */
    grammar_node_t *root;
} grammar_t;

/* The node for any JSON value (objects, arrays, strings, numbers, literals). */
const grammar_node_t *grammar_node_any(void);
/* A grammar over a root built by the caller in g->arena (jsonschema.c). */
grammar_t *grammar_new(void);
/* A grammar for any JSON object (response_format json_object). Owned. */
grammar_t *grammar_new_json_object(void);
void grammar_free(grammar_t *g);
/* Fills n->min_len from its children (call children first). */
void grammar_node_finish(grammar_node_t *n);

/* ----------------------------------------------------------------- vocab ---- */

typedef struct grammar_vocab grammar_vocab_t;

/* Byte strings of t's tokens as tokenizer_decode gives them with no previous token.
 * Owned (grammar_vocab_free). */
grammar_vocab_t *grammar_vocab_new(const tokenizer_t *t);
void grammar_vocab_free(grammar_vocab_t *v);
/* The first byte of token id's string that is not whitespace, -1 when none. */
int grammar_vocab_lead(const grammar_vocab_t *v, int id);

/* ----------------------------------------------------------------- state ---- */

typedef struct grammar_frame {
    const grammar_node_t *n;
    uint8_t kind, st, ws, key; /* key: this string is a free object key */
    int16_t pos, cur;          /* literal/key position, digit count; current property */
    int32_t count;             /* array items; utf-8 bytes still due */
    uint64_t alive, seen;      /* candidate literals or keys; properties given */
    const char *const *lits;   /* literal frame: candidates */
    const int *llen;
} grammar_frame_t;

typedef struct grammar_state {
    int depth;
    bool done;  /* the root value is complete */
    int n_keys; /* hashes of the keys of the open free objects (no repeated key) */
    uint32_t keys[GRAMMAR_MAX_KEYS];
    grammar_frame_t f[GRAMMAR_MAX_DEPTH];
} grammar_state_t;

/* Starts a generation of g's root value. */
void grammar_state_init(grammar_state_t *s, const grammar_t *g);
/* Advances by n output bytes. Returns 0, or SY_EINVAL when they cannot continue a
 * valid value (s is then undefined). */
int grammar_state_feed(grammar_state_t *s, const char *bytes, size_t n);
/* True when the output so far is a complete value (generation may end here). */
bool grammar_state_complete(const grammar_state_t *s);
/* Fewest bytes that complete the value from here. */
int grammar_state_close_cost(const grammar_state_t *s);

/* Pushes logits[id] to GRAMMAR_MASKED for every token that may not come next, given
 * `budget` tokens left including this one (<= 0: no budget). When no continuation fits
 * the budget, the ones that close soonest stay allowed. Returns how many tokens stay
 * allowed (0: none; the vocabulary cannot continue the value). */
#define GRAMMAR_MASKED (-1e30f)
int grammar_mask(const grammar_state_t *s, grammar_vocab_t *v, int budget, float *logits);

#endif
