/* mem.h — allocation wrappers that abort on out-of-memory.
 *
 * switchyard is a long-running server: an allocation failure is not an input error
 * we can report to one client, so these wrappers print a message and abort().
 * Input-driven failures (oversized bodies, corrupt files) are caught earlier by caps.
 */
#ifndef SY_BASE_MEM_H
#define SY_BASE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
void *mem_dup(const void *p, size_t n);
static inline void mem_free(void *p)
{
    extern void free(void *);
    free(p);
}

#endif
