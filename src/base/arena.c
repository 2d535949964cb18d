/* arena.c — bump allocator for per-request memory. */
#include "base/arena.h"

#include <string.h>

#include "base/mem.h"

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes in data */
    size_t used;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 4096;
}

void arena_deinit(arena_t *a)
{
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *n = b->next;
        mem_free(b);
        b = n;
    }
    a->head = NULL;
}

void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t sz = a->block_size;
        while (sz < n)
            sz *= 2;
        b = mem_alloc(sizeof *b + sz);
        b->size = sz;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void arena_reset(arena_t *a)
{
    struct arena_block *keep = NULL, *b = a->head;
    while (b) {
        struct arena_block *n = b->next;
        if (!keep || b->size > keep->size) {
            if (keep) mem_free(keep);
            keep = b;
        } else {
            mem_free(b);
        }
        b = n;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}
