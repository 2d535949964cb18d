/* gguf.h — reader and writer of GGUF model files (versions 2 and 3).
 *
 * The format, all integers little-endian:
 *
 *   header   u32 magic "GGUF" (0x46554747), u32 version (2 or 3),
 *            u64 tensor_count, u64 kv_count
 *   kv[]     string key, u32 value type, value
 *   tinfo[]  string name, u32 n_dims (1..4), u64 ne[n_dims] (ne[0] is the row length),
 *            u32 ggml type, u64 offset (relative to the data section, aligned)
 *   padding  up to a multiple of general.alignment (u32 key; 32 when absent)
 *   data     tensor bytes
 *
 * A string is a u64 byte length then the bytes (no NUL). Value types: 0 u8, 1 i8,
 * 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (one byte), 8 string, 9 array (u32 element
 * type, u64 count, elements; arrays of arrays are allowed by the format and read here),
 * 10 u64, 11 i64, 12 f64.
 *
 * The reader maps the file read-only and points into it: tensor data and metadata
 * values are never copied (string arrays get an index of offsets). Every count,
 * length and offset is checked against the file size before use, so a truncated or
 * hostile file yields SY_ECORRUPT (or SY_EUNSUPPORTED for an unknown version or tensor
 * type) with a message naming what is wrong, never a read past the end.
 *
 * The writer collects metadata and borrowed tensor pointers, then writes the file in
 * one pass with the tensors aligned.
 */
#ifndef SY_ENGINE_GGUF_H
#define SY_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/kernels.h"

/* ---------------------------------------------------------------- limits ---- */

#define GGUF_MAGIC             0x46554747u
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS          4
#define GGUF_MAX_KV            (1u << 20) /* metadata entries */
#define GGUF_MAX_TENSORS       (1u << 20) /* tensor infos */
#define GGUF_MAX_NAME          256        /* bytes of a tensor name */
#define GGUF_MAX_KEY           1024       /* bytes of a metadata key */
#define GGUF_MAX_ARRAY_DEPTH   4          /* nesting of arrays of arrays */

/* ----------------------------------------------------------------- types ---- */

typedef enum {
    GGUF_TYPE_U8 = 0,
    GGUF_TYPE_I8 = 1,
    GGUF_TYPE_U16 = 2,
    GGUF_TYPE_I16 = 3,
    GGUF_TYPE_U32 = 4,
    GGUF_TYPE_I32 = 5,
    GGUF_TYPE_F32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_U64 = 10,
    GGUF_TYPE_I64 = 11,
    GGUF_TYPE_F64 = 12,
    GGUF_TYPE_COUNT
} gguf_type_t;

/* A metadata array: points into the mapped file. */
typedef struct gguf_arr {
    gguf_type_t type;        /* element type */
    uint64_t n;              /* element count */
    const uint8_t *data;     /* first element (fixed-size types: packed little-endian) */
    const uint64_t *str_off; /* string arrays: offset of each string's u64 length in data */
} gguf_arr_t;

/* One metadata entry. */
typedef struct gguf_kv {
    char *key; /* owned, NUL-terminated copy */
    gguf_type_t type;
    const uint8_t *val; /* value bytes in the mapping (strings: the u64 length) */
    gguf_arr_t arr;     /* when type == GGUF_TYPE_ARRAY */
} gguf_kv_t;

/* One tensor. */
typedef struct gguf_tensor {
    char *name; /* owned, NUL-terminated copy */
    kern_type_t type;
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] = elements per row; unused dims are 1 */
    uint64_t n_elements;
    uint64_t nbytes;
    uint64_t offset;  /* from the start of the data section */
    const void *data; /* into the mapping */
} gguf_tensor_t;

typedef struct gguf {
    uint32_t version;
    uint32_t alignment;
    size_t n_kv;
    gguf_kv_t *kv; /* (n_kv) */
    size_t n_tensors;
    gguf_tensor_t *tensors; /* (n_tensors) */
    const uint8_t *base;    /* start of the file bytes */
    size_t size;            /* bytes */
    size_t data_offset;     /* start of the data section */
    bool mapped;            /* base was mmapped by gguf_open */
} gguf_t;

/* ---------------------------------------------------------------- reader ---- */

/* Opens and validates a GGUF file. On success *out is owned by the caller (gguf_free).
 * Returns 0, -errno when the file cannot be opened or mapped, SY_ECORRUPT or
 * SY_EUNSUPPORTED with a message in err (errlen bytes, may be 0) otherwise. */
int gguf_open(const char *path, gguf_t **out, char *err, size_t errlen);
/* Same over bytes in memory (borrowed; must outlive the result). Used by the fuzzer. */
int gguf_open_mem(const void *data, size_t size, gguf_t **out, char *err, size_t errlen);
void gguf_free(gguf_t *g);

/* Index of key, or -1. */
int gguf_find_key(const gguf_t *g, const char *key);
/* Tensor by name, or NULL. */
const gguf_tensor_t *gguf_find_tensor(const gguf_t *g, const char *name);

/* Typed getters. Integers of any width convert when the value fits; f32 accepts f64.
 * Return 0, SY_ENOTFOUND (no key) or SY_EINVAL (wrong type or out of range). */
int gguf_get_u32(const gguf_t *g, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_t *g, const char *key, int64_t *out);
int gguf_get_f32(const gguf_t *g, const char *key, float *out);
int gguf_get_bool(const gguf_t *g, const char *key, bool *out);
/* String value, pointing into the file (not NUL-terminated). */
int gguf_get_str(const gguf_t *g, const char *key, const char **s, size_t *len);
int gguf_get_arr(const gguf_t *g, const char *key, const gguf_arr_t **arr);

/* Array element accessors; i < arr->n and the element type must match (asserted). */
const char *gguf_arr_str(const gguf_arr_t *arr, uint64_t i, size_t *len);
float gguf_arr_f32(const gguf_arr_t *arr, uint64_t i);
int64_t gguf_arr_int(const gguf_arr_t *arr, uint64_t i); /* any integer element type */

const char *gguf_type_name(gguf_type_t t);

/* ---------------------------------------------------------------- writer ---- */

typedef struct gguf_writer gguf_writer_t;

/* A writer of a version-3 file with the given tensor alignment (0: 32). */
gguf_writer_t *gguf_writer_new(uint32_t alignment);
void gguf_writer_free(gguf_writer_t *w);

/* Metadata, written in the order added. Strings are copied. */
void gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v);
void gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *s);
/* Array of fixed-size elements (type not STRING/ARRAY), n elements at data (copied). */
void gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_type_t type, const void *data,
                         size_t n);
/* Array of n NUL-terminated strings (copied). */
void gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const char *const *strs, size_t n);
/* Copies every metadata entry of g (except general.alignment), for tools that
 * rewrite a file (quantize). */
void gguf_writer_copy_kv(gguf_writer_t *w, const gguf_t *g);

/* Adds a tensor: ne[0] is the row length; data (nbytes, must equal the size the type
 * and shape imply) is borrowed until gguf_writer_write returns. Returns 0 or
 * SY_EINVAL (bad shape/size or duplicate name). */
int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, kern_type_t type, int n_dims,
                           const uint64_t *ne, const void *data, size_t nbytes);

/* Writes the file. Returns 0 or -errno. */
int gguf_writer_write(gguf_writer_t *w, const char *path);

#endif
