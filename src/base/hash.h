/* hash.h — fast non-cryptographic hashing (feature hashing, tables). */
#ifndef SY_BASE_HASH_H
#define SY_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit hash of n bytes with a seed; stable across runs and machines (model files
 * store the seed they were trained with). */
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);
/* FNV-1a 64, for tiny keys. */
uint64_t hash_fnv1a(const void *p, size_t n);
static inline uint64_t hash_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

#endif
