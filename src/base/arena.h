/* arena.h — bump allocator for per-request memory.
 *
 * A request's parsed fields, feature vectors and reason strings live in one arena
 * that is reset when the request ends: no per-field free, no allocation on the hot
 * path once the arena's first block has grown to the working size.
 */
#ifndef SY_BASE_ARENA_H
#define SY_BASE_ARENA_H

#include <stddef.h>

struct arena_block;

typedef struct arena {
    struct arena_block *head; /* owned list; head is the block in use */
    size_t block_size;        /* bytes per new block */
} arena_t;

void arena_init(arena_t *a, size_t block_size);
void arena_deinit(arena_t *a);
/* Returns 16-byte aligned memory owned by the arena; never NULL (aborts on OOM). */
void *arena_alloc(arena_t *a, size_t n);
char *arena_strndup(arena_t *a, const char *s, size_t n);
/* Frees all but the largest block and rewinds it. */
void arena_reset(arena_t *a);

#endif
