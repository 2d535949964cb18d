/* gguf.c — GGUF reader (mmap, validated, zero-copy) and writer. See gguf.h. */
#include "engine/gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/mem.h"

/* ============================================================ reading ==== */

/* A bounds-checked cursor over the file bytes. Every read checks the remaining
 * length first; the first failure records a message and sticks. */
typedef struct cursor {
    const uint8_t *p;
    size_t size;
    size_t pos;
    int err;
    char *msg;
    size_t msglen;
} cursor_t;

static void cur_fail(cursor_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error with a printf-style message (later ones are ignored). */
static void cur_fail(cursor_t *c, int err, const char *fmt, ...)
{
    if (c->err) return;
    c->err = err;
    if (c->msg && c->msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->msglen, fmt, ap);
        va_end(ap);
    }
}

/* Returns a pointer to n bytes at the cursor and advances, or NULL (and fails)
 * when fewer than n remain. */
static const uint8_t *cur_take(cursor_t *c, uint64_t n, const char *what)
{
    if (c->err) return NULL;
    if (n > c->size - c->pos) {
        cur_fail(c, SY_ECORRUPT, "gguf: %s at offset %zu needs %llu bytes, file has %zu left", what,
                 c->pos, (unsigned long long)n, c->size - c->pos);
        return NULL;
    }
    const uint8_t *r = c->p + c->pos;
    c->pos += n;
    return r;
}

static uint32_t rd_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* x86-64 and the format are little-endian */
    return v;
}

static uint64_t rd_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t cur_u32(cursor_t *c, const char *what)
{
    const uint8_t *p = cur_take(c, 4, what);
    return p ? rd_u32(p) : 0;
}

static uint64_t cur_u64(cursor_t *c, const char *what)
{
    const uint8_t *p = cur_take(c, 8, what);
    return p ? rd_u64(p) : 0;
}

/* Reads a string (u64 length + bytes); returns its bytes or NULL, length in *len. */
static const char *cur_str(cursor_t *c, size_t *len, const char *what)
{
    uint64_t n = cur_u64(c, what);
    if (c->err) return NULL;
    const uint8_t *s = cur_take(c, n, what);
    *len = (size_t)n;
    return (const char *)s;
}

/* Size in bytes of a fixed-size value type; 0 for string/array/unknown. */
static size_t type_size(gguf_type_t t)
{
    switch (t) {
    case GGUF_TYPE_U8:
    case GGUF_TYPE_I8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_U16:
    case GGUF_TYPE_I16:
        return 2;
    case GGUF_TYPE_U32:
    case GGUF_TYPE_I32:
    case GGUF_TYPE_F32:
        return 4;
    case GGUF_TYPE_U64:
    case GGUF_TYPE_I64:
    case GGUF_TYPE_F64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_type_name(gguf_type_t t)
{
    static const char *names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "unknown";
}

/* Skips one value of type t at the cursor (recursing into nested arrays up to a
 * depth limit). When arr is non-NULL and t is an array, fills it (string arrays get
 * an offset index, owned by arr). */
static void skip_value(cursor_t *c, gguf_type_t t, int depth, gguf_arr_t *arr, const char *key)
{
    if (t >= GGUF_TYPE_COUNT) {
        cur_fail(c, SY_ECORRUPT, "gguf: key '%s' has unknown value type %u", key, (unsigned)t);
        return;
    }
    if (t == GGUF_TYPE_STRING) {
        size_t n;
        cur_str(c, &n, "string value");
        return;
    }
    if (t != GGUF_TYPE_ARRAY) {
        cur_take(c, type_size(t), "value");
        return;
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        cur_fail(c, SY_ECORRUPT, "gguf: key '%s' nests arrays too deeply", key);
        return;
    }
    uint32_t et = cur_u32(c, "array type");
    uint64_t n = cur_u64(c, "array count");
    if (c->err) return;
    if (et >= GGUF_TYPE_COUNT) {
        cur_fail(c, SY_ECORRUPT, "gguf: key '%s' is an array of unknown type %u", key, et);
        return;
    }
    if (arr) {
        arr->type = (gguf_type_t)et;
        arr->n = n;
        arr->data = c->p + c->pos;
    }
    size_t es = type_size((gguf_type_t)et);
    if (es) {
        if (n > (c->size - c->pos) / es) {
            cur_fail(c, SY_ECORRUPT,
                     "gguf: key '%s': array of %llu %s elements runs past the end of the file", key,
                     (unsigned long long)n, gguf_type_name((gguf_type_t)et));
            return;
        }
        c->pos += n * es;
        return;
    }
    /* Variable-size elements: each takes at least 8 bytes, so a count larger than the
     * rest of the file is wrong before we allocate an index for it. */
    if (n > (c->size - c->pos) / 8) {
        cur_fail(c, SY_ECORRUPT, "gguf: key '%s': array count %llu exceeds the file size", key,
                 (unsigned long long)n);
        return;
    }
    uint64_t *off = NULL;
    if (arr && et == GGUF_TYPE_STRING) off = mem_alloc((n ? n : 1) * sizeof *off);
    size_t start = c->pos;
    for (uint64_t i = 0; i < n && !c->err; i++) {
        if (off) off[i] = c->pos - start;
        skip_value(c, (gguf_type_t)et, depth + 1, NULL, key);
    }
    if (arr)
        arr->str_off = off;
    else
        mem_free(off);
}

/* Frees the parts of g allocated so far; g itself too. */
void gguf_free(gguf_t *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        mem_free(g->kv[i].key);
        mem_free((void *)g->kv[i].arr.str_off);
    }
    for (size_t i = 0; i < g->n_tensors; i++)
        mem_free(g->tensors[i].name);
    mem_free(g->kv);
    mem_free(g->tensors);
    if (g->mapped) munmap((void *)g->base, g->size);
    mem_free(g);
}

/* Parses the header, metadata and tensor infos of the bytes in g->base/g->size and
 * validates every tensor's extent. Returns 0 or an error with the message in c. */
static int parse(gguf_t *g, cursor_t *c)
{
    uint32_t magic = cur_u32(c, "magic");
    if (c->err) return c->err;
    if (magic != GGUF_MAGIC) {
        cur_fail(c, SY_ECORRUPT, "gguf: bad magic 0x%08x (not a GGUF file)", magic);
        return c->err;
    }
    g->version = cur_u32(c, "version");
    if (c->err) return c->err;
    if (g->version != 2 && g->version != 3) {
        cur_fail(c, SY_EUNSUPPORTED, "gguf: version %u not supported (2 or 3)", g->version);
        return c->err;
    }
    uint64_t n_tensors = cur_u64(c, "tensor count");
    uint64_t n_kv = cur_u64(c, "metadata count");
    if (c->err) return c->err;
    if (n_tensors > GGUF_MAX_TENSORS || n_tensors > c->size / 24) {
        cur_fail(c, SY_ECORRUPT, "gguf: tensor count %llu is implausible for a %zu-byte file",
                 (unsigned long long)n_tensors, c->size);
        return c->err;
    }
    if (n_kv > GGUF_MAX_KV || n_kv > c->size / 13) {
        cur_fail(c, SY_ECORRUPT, "gguf: metadata count %llu is implausible for a %zu-byte file",
                 (unsigned long long)n_kv, c->size);
        return c->err;
    }

    /* Metadata. */
    g->kv = mem_calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        size_t klen;
        const char *k = cur_str(c, &klen, "metadata key");
        if (c->err) return c->err;
        if (klen == 0 || klen > GGUF_MAX_KEY || memchr(k, 0, klen)) {
            cur_fail(c, SY_ECORRUPT, "gguf: metadata key %llu has a bad length %zu or a NUL",
                     (unsigned long long)i, klen);
            return c->err;
        }
        gguf_kv_t *kv = &g->kv[g->n_kv++];
        kv->key = mem_strndup(k, klen);
        if (gguf_find_key(g, kv->key) != (int)(g->n_kv - 1)) {
            cur_fail(c, SY_ECORRUPT, "gguf: duplicate metadata key '%s'", kv->key);
            return c->err;
        }
        uint32_t t = cur_u32(c, "value type");
        if (c->err) return c->err;
        kv->type = (gguf_type_t)t;
        kv->val = c->p + c->pos;
        skip_value(c, kv->type, 0, &kv->arr, kv->key);
        if (c->err) return c->err;
    }
    int ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        uint32_t a;
        if (gguf_get_u32(g, "general.alignment", &a) || a == 0 || (a & (a - 1)) || a > 65536) {
            cur_fail(c, SY_ECORRUPT, "gguf: general.alignment must be a power of two <= 65536");
            return c->err;
        }
        g->alignment = a;
    }

    /* Tensor infos. */
    g->tensors = mem_calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        size_t nlen;
        const char *nm = cur_str(c, &nlen, "tensor name");
        if (c->err) return c->err;
        if (nlen == 0 || nlen >= GGUF_MAX_NAME || memchr(nm, 0, nlen)) {
            cur_fail(c, SY_ECORRUPT, "gguf: tensor %llu has a bad name length %zu",
                     (unsigned long long)i, nlen);
            return c->err;
        }
        gguf_tensor_t *t = &g->tensors[g->n_tensors++];
        t->name = mem_strndup(nm, nlen);
        if (gguf_find_tensor(g, t->name) != t) {
            cur_fail(c, SY_ECORRUPT, "gguf: duplicate tensor '%s'", t->name);
            return c->err;
        }
        uint32_t nd = cur_u32(c, "tensor n_dims");
        if (c->err) return c->err;
        if (nd < 1 || nd > GGUF_MAX_DIMS) {
            cur_fail(c, SY_ECORRUPT, "gguf: tensor '%s' has %u dimensions (1..%d)", t->name, nd,
                     GGUF_MAX_DIMS);
            return c->err;
        }
        t->n_dims = (int)nd;
        uint64_t ne_total = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d >= (int)nd) continue;
            t->ne[d] = cur_u64(c, "tensor dimension");
            if (c->err) return c->err;
            if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) ||
                ne_total > (UINT64_MAX >> 1) / t->ne[d]) {
                cur_fail(c, SY_ECORRUPT, "gguf: tensor '%s' dimension %d = %llu is invalid",
                         t->name, d, (unsigned long long)t->ne[d]);
                return c->err;
            }
            ne_total *= t->ne[d];
        }
        t->n_elements = ne_total;
        uint32_t ty = cur_u32(c, "tensor type");
        t->offset = cur_u64(c, "tensor offset");
        if (c->err) return c->err;
        if (kern_type_valid(ty) != 0) {
            cur_fail(c, SY_EUNSUPPORTED,
                     "gguf: tensor '%s' has type %u (supported: f32, f16, "
                     "q4_0, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K)",
                     t->name, ty);
            return c->err;
        }
        t->type = (kern_type_t)ty;
        size_t row = kern_row_size(t->type, (size_t)t->ne[0]);
        uint64_t rows = ne_total / t->ne[0];
        if (row == 0 || rows > UINT64_MAX / row) {
            cur_fail(c, SY_ECORRUPT, "gguf: tensor '%s' row of %llu elements is invalid for %s",
                     t->name, (unsigned long long)t->ne[0], kern_type_name(t->type));
            return c->err;
        }
        t->nbytes = rows * row;
        if (t->offset % g->alignment) {
            cur_fail(c, SY_ECORRUPT, "gguf: tensor '%s' offset %llu is not %u-aligned", t->name,
                     (unsigned long long)t->offset, g->alignment);
            return c->err;
        }
    }

    /* Data section. */
    size_t data = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors && data > c->size) {
        cur_fail(c, SY_ECORRUPT, "gguf: file ends before its data section (offset %zu)", data);
        return c->err;
    }
    g->data_offset = data;
    size_t avail = data <= c->size ? c->size - data : 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor_t *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            cur_fail(c, SY_ECORRUPT,
                     "gguf: tensor '%s' (%llu bytes at data offset %llu) runs past the end of "
                     "the file (%zu data bytes)",
                     t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset, avail);
            return c->err;
        }
        t->data = g->base + data + t->offset;
    }
    return 0;
}

int gguf_open_mem(const void *data, size_t size, gguf_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen) err[0] = 0;
    gguf_t *g = mem_calloc(1, sizeof *g);
    g->base = data;
    g->size = size;
    cursor_t c = {.p = data, .size = size, .msg = err, .msglen = errlen};
    int rc = parse(g, &c);
    if (rc) {
        gguf_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gguf_open(const char *path, gguf_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen) err[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(-e));
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        if (err && errlen) snprintf(err, errlen, "%s: empty file", path);
        return SY_ECORRUPT;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = -errno;
    close(fd);
    if (p == MAP_FAILED) return e;
    int rc = gguf_open_mem(p, size, out, err, errlen);
    if (rc) {
        munmap(p, size);
        return rc;
    }
    (*out)->mapped = true;
    return 0;
}

/* ============================================================ lookups ==== */

int gguf_find_key(const gguf_t *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return (int)i;
    return -1;
}

const gguf_tensor_t *gguf_find_tensor(const gguf_t *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* Reads an integer value of any integer type at p as int64 (u64 above INT64_MAX
 * fails). Returns 0 or SY_EINVAL. */
static int int_value(gguf_type_t t, const uint8_t *p, int64_t *out)
{
    switch (t) {
    case GGUF_TYPE_U8:
    case GGUF_TYPE_BOOL:
        *out = p[0];
        return 0;
    case GGUF_TYPE_I8:
        *out = (int8_t)p[0];
        return 0;
    case GGUF_TYPE_U16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return 0;
    }
    case GGUF_TYPE_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return 0;
    }
    case GGUF_TYPE_U32:
        *out = rd_u32(p);
        return 0;
    case GGUF_TYPE_I32:
        *out = (int32_t)rd_u32(p);
        return 0;
    case GGUF_TYPE_U64: {
        uint64_t v = rd_u64(p);
        if (v > INT64_MAX) return SY_EINVAL;
        *out = (int64_t)v;
        return 0;
    }
    case GGUF_TYPE_I64:
        *out = (int64_t)rd_u64(p);
        return 0;
    default:
        return SY_EINVAL;
    }
}

int gguf_get_i64(const gguf_t *g, const char *key, int64_t *out)
{
    int i = gguf_find_key(g, key);
    if (i < 0) return SY_ENOTFOUND;
    return int_value(g->kv[i].type, g->kv[i].val, out);
}

int gguf_get_u32(const gguf_t *g, const char *key, uint32_t *out)
{
    int64_t v;
    int rc = gguf_get_i64(g, key, &v);
    if (rc) return rc;
    if (v < 0 || v > UINT32_MAX) return SY_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_t *g, const char *key, float *out)
{
    int i = gguf_find_key(g, key);
    if (i < 0) return SY_ENOTFOUND;
    const gguf_kv_t *kv = &g->kv[i];
    if (kv->type == GGUF_TYPE_F32) {
        memcpy(out, kv->val, 4);
    } else if (kv->type == GGUF_TYPE_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
    } else {
        int64_t v;
        if (int_value(kv->type, kv->val, &v)) return SY_EINVAL;
        *out = (float)v;
    }
    return 0;
}

int gguf_get_bool(const gguf_t *g, const char *key, bool *out)
{
    int64_t v;
    int rc = gguf_get_i64(g, key, &v);
    if (rc) return rc;
    *out = v != 0;
    return 0;
}

int gguf_get_str(const gguf_t *g, const char *key, const char **s, size_t *len)
{
    int i = gguf_find_key(g, key);
    if (i < 0) return SY_ENOTFOUND;
    if (g->kv[i].type != GGUF_TYPE_STRING) return SY_EINVAL;
    *len = (size_t)rd_u64(g->kv[i].val);
    *s = (const char *)g->kv[i].val + 8;
    return 0;
}

int gguf_get_arr(const gguf_t *g, const char *key, const gguf_arr_t **arr)
{
    int i = gguf_find_key(g, key);
    if (i < 0) return SY_ENOTFOUND;
    if (g->kv[i].type != GGUF_TYPE_ARRAY) return SY_EINVAL;
    *arr = &g->kv[i].arr;
    return 0;
}

const char *gguf_arr_str(const gguf_arr_t *arr, uint64_t i, size_t *len)
{
    assert(arr->type == GGUF_TYPE_STRING && i < arr->n && arr->str_off);
    const uint8_t *p = arr->data + arr->str_off[i];
    *len = (size_t)rd_u64(p);
    return (const char *)p + 8;
}

float gguf_arr_f32(const gguf_arr_t *arr, uint64_t i)
{
    assert(arr->type == GGUF_TYPE_F32 && i < arr->n);
    float v;
    memcpy(&v, arr->data + 4 * i, 4);
    return v;
}

int64_t gguf_arr_int(const gguf_arr_t *arr, uint64_t i)
{
    assert(i < arr->n);
    int64_t v = 0;
    size_t es = type_size(arr->type);
    if (int_value(arr->type, arr->data + es * i, &v)) return 0;
    return v;
}

/* ============================================================ writing ==== */

#define GGUF_WRITER_MAX_META ((size_t)1 << 30) /* 1 GiB of metadata is plenty */

typedef struct wtensor {
    char *name;
    kern_type_t type;
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const void *data; /* borrowed */
    size_t nbytes;
    uint64_t offset;
} wtensor_t;

struct gguf_writer {
    uint32_t alignment;
    buf_t meta; /* encoded key/value pairs */
    uint64_t n_kv;
    wtensor_t *t; /* (n_t) */
    size_t n_t, cap_t;
    uint64_t data_size; /* bytes of the data section so far (aligned ends) */
    int err;            /* sticky: metadata over its cap */
};

gguf_writer_t *gguf_writer_new(uint32_t alignment)
{
    gguf_writer_t *w = mem_calloc(1, sizeof *w);
    w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    buf_init(&w->meta, GGUF_WRITER_MAX_META);
    if (w->alignment != GGUF_DEFAULT_ALIGNMENT)
        gguf_writer_set_u32(w, "general.alignment", w->alignment);
    return w;
}

void gguf_writer_free(gguf_writer_t *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++)
        mem_free(w->t[i].name);
    mem_free(w->t);
    buf_deinit(&w->meta);
    mem_free(w);
}

static void w_bytes(gguf_writer_t *w, const void *p, size_t n)
{
    if (!w->err) w->err = buf_append(&w->meta, p, n);
}

static void w_u32(gguf_writer_t *w, uint32_t v)
{
    w_bytes(w, &v, 4);
}
static void w_u64(gguf_writer_t *w, uint64_t v)
{
    w_bytes(w, &v, 8);
}

static void w_str(gguf_writer_t *w, const char *s, size_t n)
{
    w_u64(w, n);
    w_bytes(w, s, n);
}

/* Starts an entry: key and value type. */
static void w_key(gguf_writer_t *w, const char *key, gguf_type_t t)
{
    w_str(w, key, strlen(key));
    w_u32(w, (uint32_t)t);
    w->n_kv++;
}

void gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v)
{
    w_key(w, key, GGUF_TYPE_U32);
    w_u32(w, v);
}

void gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v)
{
    w_key(w, key, GGUF_TYPE_I32);
    w_bytes(w, &v, 4);
}

void gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v)
{
    w_key(w, key, GGUF_TYPE_F32);
    w_bytes(w, &v, 4);
}

void gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v)
{
    uint8_t b = v;
    w_key(w, key, GGUF_TYPE_BOOL);
    w_bytes(w, &b, 1);
}

void gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *s)
{
    w_key(w, key, GGUF_TYPE_STRING);
    w_str(w, s, strlen(s));
}

void gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_type_t type, const void *data,
                         size_t n)
{
    assert(type_size(type) > 0);
    w_key(w, key, GGUF_TYPE_ARRAY);
    w_u32(w, (uint32_t)type);
    w_u64(w, n);
    w_bytes(w, data, n * type_size(type));
}

void gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const char *const *strs, size_t n)
{
    w_key(w, key, GGUF_TYPE_ARRAY);
    w_u32(w, GGUF_TYPE_STRING);
    w_u64(w, n);
    for (size_t i = 0; i < n; i++)
        w_str(w, strs[i], strlen(strs[i]));
}

void gguf_writer_copy_kv(gguf_writer_t *w, const gguf_t *g)
{
    for (size_t i = 0; i < g->n_kv; i++) {
        const gguf_kv_t *kv = &g->kv[i];
        if (!strcmp(kv->key, "general.alignment")) continue;
        /* The value's bytes run from kv->val to the next key (or the end of the value);
         * recompute its extent with the validated cursor. */
        cursor_t c = {.p = g->base, .size = g->size, .pos = (size_t)(kv->val - g->base)};
        skip_value(&c, kv->type, 0, NULL, kv->key);
        assert(!c.err);
        w_key(w, kv->key, kv->type);
        w_bytes(w, kv->val, c.pos - (size_t)(kv->val - g->base));
    }
}

int gguf_writer_add_tensor(gguf_writer_t *w, const char *name, kern_type_t type, int n_dims,
                           const uint64_t *ne, const void *data, size_t nbytes)
{
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || strlen(name) >= GGUF_MAX_NAME) return SY_EINVAL;
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++)
        n *= ne[d];
    size_t row = kern_row_size(type, ne[0]);
    if (row == 0 || (n / ne[0]) * row != nbytes) return SY_EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return SY_EINVAL;
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = mem_realloc(w->t, w->cap_t * sizeof *w->t);
    }
    wtensor_t *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = mem_strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->ne[d] = ne[d];
    t->data = data;
    t->nbytes = nbytes;
    t->offset = w->data_size;
    w->data_size += (nbytes + w->alignment - 1) / w->alignment * w->alignment;
    return 0;
}

/* Writes n zero bytes of padding. */
static int write_pad(FILE *f, size_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return -EIO;
        n -= k;
    }
    return 0;
}

int gguf_writer_write(gguf_writer_t *w, const char *path)
{
    if (w->err) return w->err;
    buf_t head;
    buf_init(&head, GGUF_WRITER_MAX_META * 2);
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = w->n_t;
    int rc = buf_append(&head, &magic, 4);
    rc = rc ? rc : buf_append(&head, &version, 4);
    rc = rc ? rc : buf_append(&head, &nt, 8);
    rc = rc ? rc : buf_append(&head, &w->n_kv, 8);
    rc = rc ? rc : buf_append(&head, w->meta.data ? w->meta.data : "", w->meta.len);
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor_t *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        rc = buf_append(&head, &nl, 8);
        rc = rc ? rc : buf_append(&head, t->name, nl);
        rc = rc ? rc : buf_append(&head, &nd, 4);
        rc = rc ? rc : buf_append(&head, t->ne, 8 * nd);
        rc = rc ? rc : buf_append(&head, &ty, 4);
        rc = rc ? rc : buf_append(&head, &t->offset, 8);
    }
    if (rc) {
        buf_deinit(&head);
        return rc;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = -errno;
        buf_deinit(&head);
        return rc;
    }
    if (fwrite(head.data, 1, head.len, f) != head.len) rc = -EIO;
    size_t pos = head.len;
    size_t data_start = (pos + w->alignment - 1) / w->alignment * w->alignment;
    if (!rc) rc = write_pad(f, data_start - pos);
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor_t *t = &w->t[i];
        if (fwrite(t->data, 1, t->nbytes, f) != t->nbytes) rc = -EIO;
        size_t padded = (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
        if (!rc) rc = write_pad(f, padded - t->nbytes);
    }
    if (fclose(f) != 0 && !rc) rc = -errno;
    buf_deinit(&head);
    return rc;
}
