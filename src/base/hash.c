/* hash.c — a multiply-mix hash over 8-byte words, finished with a 64-bit avalanche.
 * Little-endian reads; results are stable for a given (bytes, seed). */
#include "base/hash.h"

#include <string.h>

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint64_t hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = seed ^ (n * k);
    while (n >= 8) {
        h = (h ^ hash_mix(rd64(p))) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t |= (uint64_t)p[i] << (8 * i);
    h = (h ^ hash_mix(t ^ n)) * k;
    return hash_mix(h);
}

uint64_t hash_fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
