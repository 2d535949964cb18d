/* journal.c — per-worker ledger journals: append, seal, collect, replay. */
#include "store/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/store_impl.h"

#define JOURNAL_MAX_SEALED  64   /* sealed files awaiting the writer */
#define JOURNAL_REC_MAX     8192 /* a record's payload (strings are capped below) */
#define JOURNAL_REPLAY_ROWS 4096 /* rows per store transaction at replay */
#define JOURNAL_SUFFIX      ".journal"

typedef struct sealed {
    char path[512];
    int fd;           /* kept open: its lock tells a starting process the owner lives */
    uint64_t mark;    /* writer's pushed count at the seal */
    uint64_t dropped; /* writer's dropped count at the seal */
    bool keep;        /* a row never reached the writer: leave for replay */
} sealed_t;

struct store_journal {
    char dir[400];
    int idx;
    bool sync;
    int fd;
    char path[512];
    uint64_t n;   /* files opened so far (names are unique per process start) */
    size_t bytes; /* in the current file */
    bool keep;    /* the current file holds a row the writer never got */
    sealed_t sealed[JOURNAL_MAX_SEALED];
    size_t n_sealed;
};

/* ------------------------------------------------------------ records ---- */

static uint32_t checksum(const void *p, size_t n)
{
    return (uint32_t)hash_bytes(p, n, 0x4a4f55524e414cull);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* The caps of the ledger writer's slots (what a row keeps of each string). */
static const size_t str_caps[10] = {40, 128, 128, 128, 128, 64, 128, 32, 1024, 256};
#define FIXED_BYTES  (8 + 4 + 4 + 4 + 8 + 8 + 4 + 4 + 4 + 1)
#define TAIL_FIXED   (4 * 4 + 4 + 1)
#define TAIL_STR_CAP 64

/* Serialises row into out (at least JOURNAL_REC_MAX + 8 bytes); returns the
 * record's length. */
static size_t rec_encode(const store_ledger_row_t *r, unsigned char *out)
{
    unsigned char *p = out + 8;
    uint64_t cost, cloud;
    memcpy(&cost, &r->cost_usd, 8);
    memcpy(&cloud, &r->cloud_cost_usd, 8);
    put_u64(p, (uint64_t)r->ts_ms);
    put_u32(p + 8, (uint32_t)r->http_status);
    put_u32(p + 12, r->tokens_in);
    put_u32(p + 16, r->tokens_out);
    put_u64(p + 20, cost);
    put_u64(p + 28, cloud);
    put_u32(p + 36, r->latency_ms);
    put_u32(p + 40, r->ttft_ms);
    put_u32(p + 44, r->pii_types);
    p[48] = (unsigned char)(r->failover | r->escalated << 1 | r->degraded << 2 | r->external << 3);
    p += FIXED_BYTES;
    const char *strs[10] = {r->id,   r->tenant, r->team,   r->feature, r->session,
                            r->tier, r->model,  r->status, r->reasons, r->pii_names};
    for (int i = 0; i < 10; i++)
        p += store_copy_str((char *)p, str_caps[i], strs[i]) + 1;
    /* Tail added with schema version 4 (a record without it decodes as before):
     * the PII action masks, the confidence and the version strings. */
    put_u32(p, r->pii_kept_local);
    put_u32(p + 4, r->pii_masked);
    put_u32(p + 8, r->pii_allowed);
    put_u32(p + 12, r->pii_blocked);
    uint32_t conf;
    float cf = r->confidence;
    memcpy(&conf, &cf, 4);
    put_u32(p + 16, conf);
    p[20] = r->has_confidence;
    p += TAIL_FIXED;
    const char *vs[5] = {r->version, r->first_tier, r->first_version, r->cloud_tier,
                         r->cloud_version};
    for (int i = 0; i < 5; i++)
        p += store_copy_str((char *)p, TAIL_STR_CAP, vs[i]) + 1;
    size_t len = (size_t)(p - (out + 8));
    put_u32(out, (uint32_t)len);
    put_u32(out + 4, checksum(out + 8, len));
    return len + 8;
}

/* Decodes a payload into row (strings point into payload). 0 or SY_ECORRUPT. */
static int rec_decode(const unsigned char *p, size_t len, store_ledger_row_t *r)
{
    if (len < FIXED_BYTES + 10) return SY_ECORRUPT;
    memset(r, 0, sizeof *r);
    r->ts_ms = (int64_t)get_u64(p);
    r->http_status = (int)get_u32(p + 8);
    r->tokens_in = get_u32(p + 12);
    r->tokens_out = get_u32(p + 16);
    uint64_t cost = get_u64(p + 20), cloud = get_u64(p + 28);
    memcpy(&r->cost_usd, &cost, 8);
    memcpy(&r->cloud_cost_usd, &cloud, 8);
    r->latency_ms = get_u32(p + 36);
    r->ttft_ms = get_u32(p + 40);
    r->pii_types = get_u32(p + 44);
    r->failover = p[48] & 1;
    r->escalated = p[48] & 2;
    r->degraded = p[48] & 4;
    r->external = p[48] & 8;
    const char *s = (const char *)p + FIXED_BYTES, *end = (const char *)p + len;
    const char **dst[9] = {&r->tenant, &r->team,   &r->feature, &r->session,  &r->tier,
                           &r->model,  &r->status, &r->reasons, &r->pii_names};
    for (int i = 0; i < 10; i++) {
        const char *nul = memchr(s, 0, (size_t)(end - s));
        if (!nul || (size_t)(nul - s) >= str_caps[i]) return SY_ECORRUPT;
        if (i == 0)
            memcpy(r->id, s, (size_t)(nul - s) + 1);
        else
            *dst[i - 1] = s;
        s = nul + 1;
    }
    if (s == end) return 0; /* written before the tail existed */
    if ((size_t)(end - s) < TAIL_FIXED + 5) return SY_ECORRUPT;
    const unsigned char *t = (const unsigned char *)s;
    r->pii_kept_local = get_u32(t);
    r->pii_masked = get_u32(t + 4);
    r->pii_allowed = get_u32(t + 8);
    r->pii_blocked = get_u32(t + 12);
    uint32_t conf = get_u32(t + 16);
    memcpy(&r->confidence, &conf, 4);
    r->has_confidence = t[20] != 0;
    s += TAIL_FIXED;
    const char **vd[5] = {&r->version, &r->first_tier, &r->first_version, &r->cloud_tier,
                          &r->cloud_version};
    for (int i = 0; i < 5; i++) {
        const char *nul = memchr(s, 0, (size_t)(end - s));
        if (!nul || (size_t)(nul - s) >= TAIL_STR_CAP) return SY_ECORRUPT;
        *vd[i] = s;
        s = nul + 1;
    }
    return s == end ? 0 : SY_ECORRUPT;
}

/* ------------------------------------------------------------ writing ---- */

static int open_next(store_journal_t *j)
{
    snprintf(j->path, sizeof j->path, "%s/ledger-%d-%" PRIu64 "-%ld%s", j->dir, j->idx, j->n++,
             (long)getpid(), JOURNAL_SUFFIX);
    j->fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    j->bytes = 0;
    j->keep = false;
    if (j->fd < 0) return -errno;
    flock(j->fd, LOCK_EX | LOCK_NB); /* a new file: nobody else holds it */
    return 0;
}

store_journal_t *store_journal_open(const char *dir, int idx, bool sync, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "ledger journal %s: %s", dir, strerror(errno));
        return NULL;
    }
    store_journal_t *j = mem_calloc(1, sizeof *j);
    snprintf(j->dir, sizeof j->dir, "%s", dir);
    j->idx = idx;
    j->sync = sync;
    int rc = open_next(j);
    if (rc) {
        snprintf(err, errlen, "ledger journal %s: %s", j->path, strerror(-rc));
        mem_free(j);
        return NULL;
    }
    return j;
}

int store_journal_append(store_journal_t *j, const store_ledger_row_t *row)
{
    unsigned char rec[JOURNAL_REC_MAX + 8];
    size_t n = rec_encode(row, rec);
    ssize_t w = write(j->fd, rec, n);
    if (w != (ssize_t)n) {
        int e = w < 0 ? errno : ENOSPC;
        if (w > 0 && ftruncate(j->fd, (off_t)j->bytes)) { /* leave no torn record */
        }
        return -e;
    }
    j->bytes += n;
    if (j->sync && fdatasync(j->fd)) return -errno;
    return 0;
}

void store_journal_keep(store_journal_t *j)
{
    j->keep = true;
}

void store_journal_rotate(store_journal_t *j, uint64_t pushed, uint64_t settled, uint64_t dropped)
{
    if (j->bytes && j->n_sealed < JOURNAL_MAX_SEALED) {
        sealed_t *s = &j->sealed[j->n_sealed++];
        memcpy(s->path, j->path, sizeof s->path);
        s->mark = pushed;
        s->dropped = dropped;
        s->keep = j->keep;
        s->fd = j->fd; /* still locked until deleted or given up */
        if (open_next(j)) {
            log_error("ledger journal %s: %s; rows are no longer journaled", j->path,
                      strerror(errno));
            j->fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < j->n_sealed; i++) {
        sealed_t *s = &j->sealed[i];
        if (settled >= s->mark && !s->keep && dropped == s->dropped) {
            unlink(s->path); /* every row of it is in the store */
            close(s->fd);
        } else if (settled >= s->mark) {
            /* A row of it may have missed the store: the next start replays it. */
            close(s->fd);
        } else {
            j->sealed[k++] = *s;
        }
    }
    j->n_sealed = k;
}

void store_journal_close(store_journal_t *j)
{
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    for (size_t i = 0; i < j->n_sealed; i++)
        close(j->sealed[i].fd);
    mem_free(j);
}

/* ------------------------------------------------------------- replay ---- */

static bool is_journal(const char *name)
{
    size_t n = strlen(name), sl = strlen(JOURNAL_SUFFIX);
    return n > sl && !strncmp(name, "ledger-", 7) && !strcmp(name + n - sl, JOURNAL_SUFFIX);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const store_ledger_id_t *)a)->id, ((const store_ledger_id_t *)b)->id);
}

/* Reads a whole file; owned buffer or NULL with errno. */
static unsigned char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *b = mem_alloc(n ? n : 1);
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, b + off, n - off);
        if (r <= 0) break;
        off += (size_t)r;
    }
    close(fd);
    *len = off;
    return b;
}

/* Decodes every good record of buf into rows (pointing into buf); false when the
 * file ends in a torn or corrupt record. */
static bool decode_all(unsigned char *buf, size_t len, store_ledger_row_t **rows, size_t *n,
                       size_t *cap)
{
    size_t off = 0;
    while (off + 8 <= len) {
        uint32_t pl = get_u32(buf + off), sum = get_u32(buf + off + 4);
        if (pl > JOURNAL_REC_MAX || off + 8 + pl > len || checksum(buf + off + 8, pl) != sum)
            return false;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 1024;
            *rows = mem_realloc(*rows, *cap * sizeof **rows);
        }
        if (rec_decode(buf + off + 8, pl, &(*rows)[*n])) return false;
        (*n)++;
        off += 8 + pl;
    }
    return off == len;
}

int store_journal_replay(const char *dir, store_t *s, uint64_t *n_rows, uint64_t *n_dup,
                         uint64_t *n_bad, char *err, size_t errlen)
{
    *n_rows = *n_dup = *n_bad = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0
                               : (snprintf(err, errlen, "%s: %s", dir, strerror(errno)), -errno);
    char(*paths)[512] = NULL;
    size_t n_paths = 0;
    unsigned char **bufs = NULL;
    int *locks = NULL;
    store_ledger_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!is_journal(e->d_name)) continue;
        paths = mem_realloc(paths, (n_paths + 1) * sizeof *paths);
        bufs = mem_realloc(bufs, (n_paths + 1) * sizeof *bufs);
        locks = mem_realloc(locks, (n_paths + 1) * sizeof *locks);
        snprintf(paths[n_paths], sizeof paths[0], "%s/%s", dir, e->d_name);
        /* A file whose lock is held belongs to a live gateway sharing the folder. */
        locks[n_paths] = open(paths[n_paths], O_RDONLY | O_CLOEXEC);
        if (locks[n_paths] < 0 || flock(locks[n_paths], LOCK_EX | LOCK_NB)) {
            if (locks[n_paths] >= 0) close(locks[n_paths]);
            continue;
        }
        size_t len = 0;
        bufs[n_paths] = slurp(paths[n_paths], &len);
        if (!bufs[n_paths]) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", paths[n_paths], strerror(errno));
            close(locks[n_paths]);
            bufs[n_paths] = NULL;
            n_paths++;
            break;
        }
        if (!decode_all(bufs[n_paths], len, &rows, &n, &cap)) (*n_bad)++;
        n_paths++;
    }
    closedir(d);
    if (!rc && n) {
        /* Rows the writer committed before the crash are in the store already: skip
         * them by id over the journal's time span (the time index keeps it short). */
        int64_t since = rows[0].ts_ms;
        for (size_t i = 1; i < n; i++)
            if (rows[i].ts_ms < since) since = rows[i].ts_ms;
        store_ledger_id_t *have = NULL;
        size_t n_have = 0;
        rc = store_ledger_ids_since(s, since, &have, &n_have);
        if (rc) snprintf(err, errlen, "reading ledger ids: %s", store_errmsg(s));
        if (!rc) {
            if (n_have) qsort(have, n_have, sizeof *have, cmp_id);
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                store_ledger_id_t key;
                memcpy(key.id, rows[i].id, sizeof key.id);
                if (n_have && bsearch(&key, have, n_have, sizeof *have, cmp_id))
                    (*n_dup)++;
                else
                    rows[k++] = rows[i];
            }
            for (size_t i = 0; i < k && !rc; i += JOURNAL_REPLAY_ROWS) {
                size_t m = k - i < JOURNAL_REPLAY_ROWS ? k - i : JOURNAL_REPLAY_ROWS;
                rc = store_ledger_append(s, rows + i, m);
                if (rc)
                    snprintf(err, errlen, "inserting replayed rows: %s", store_errmsg(s));
                else
                    *n_rows += m;
            }
        }
        free(have);
    }
    for (size_t i = 0; i < n_paths; i++) {
        if (!rc) unlink(paths[i]);
        mem_free(bufs[i]);
        if (bufs[i]) close(locks[i]);
    }
    mem_free(locks);
    mem_free(bufs);
    mem_free(paths);
    mem_free(rows);
    return rc;
}

void store_journal_clear(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[800], own[32];
    snprintf(own, sizeof own, "-%ld%s", (long)getpid(), JOURNAL_SUFFIX);
    size_t ol = strlen(own);
    while ((e = readdir(d)))
        if (is_journal(e->d_name) && strlen(e->d_name) > ol &&
            !strcmp(e->d_name + strlen(e->d_name) - ol, own)) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}
