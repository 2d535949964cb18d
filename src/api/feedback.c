/* feedback.c — a ring of recent decisions with a small open-addressing index. */
#include "api/feedback.h"

#include <pthread.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"

#define IDX_CAP (FEEDBACK_RING * 2) /* power of two */

typedef struct entry {
    char id[40];
    uint64_t h; /* 0 = empty */
    route_features_t f;
    int tier;
    int owner; /* API key index that made the request, or -1 */
} entry_t;

struct feedback_ring {
    pthread_mutex_t mu;
    entry_t *ring;   /* FEEDBACK_RING entries */
    uint32_t next;   /* slot to overwrite */
    int32_t *index;  /* IDX_CAP: ring slot + 1, or 0 */
    uint64_t *ihash; /* IDX_CAP: h of the entry at each used index position, so
                        probing and back-shifting never touch the (cold) ring */
};

feedback_ring_t *feedback_ring_new(void)
{
    feedback_ring_t *r = mem_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->ring = mem_calloc(FEEDBACK_RING, sizeof(entry_t));
    r->index = mem_calloc(IDX_CAP, sizeof(int32_t));
    r->ihash = mem_calloc(IDX_CAP, sizeof(uint64_t));
    return r;
}

void feedback_ring_free(feedback_ring_t *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    mem_free(r->ring);
    mem_free(r->index);
    mem_free(r->ihash);
    mem_free(r);
}

static uint64_t key(const char *id)
{
    uint64_t h = hash_bytes(id, strlen(id), 0xfeedu);
    return h ? h : 1;
}

/* Under mu: index position of ring slot `slot` holding h, or -1. */
static int64_t find_pos(feedback_ring_t *r, uint64_t h, const char *id)
{
    uint32_t i = (uint32_t)h & (IDX_CAP - 1);
    while (r->index[i]) {
        if (r->ihash[i] == h && !strcmp(r->ring[r->index[i] - 1].id, id)) return i;
        i = (i + 1) & (IDX_CAP - 1);
    }
    return -1;
}

/* Under mu: removes index position i with back-shift deletion. */
static void index_delete(feedback_ring_t *r, uint32_t i)
{
    r->index[i] = 0;
    for (uint32_t j = (i + 1) & (IDX_CAP - 1); r->index[j]; j = (j + 1) & (IDX_CAP - 1)) {
        uint32_t home = (uint32_t)r->ihash[j] & (IDX_CAP - 1);
        if (((j - home) & (IDX_CAP - 1)) >= ((j - i) & (IDX_CAP - 1))) {
            r->index[i] = r->index[j];
            r->ihash[i] = r->ihash[j];
            r->index[j] = 0;
            i = j;
        }
    }
}

void feedback_ring_put(feedback_ring_t *r, const char *id, const route_features_t *f, int tier,
                       int owner)
{
    if (strlen(id) >= sizeof r->ring[0].id) return;
    pthread_mutex_lock(&r->mu);
    entry_t *e = &r->ring[r->next];
    if (e->h) {
        int64_t pos = find_pos(r, e->h, e->id);
        if (pos >= 0) index_delete(r, (uint32_t)pos);
    }
    strcpy(e->id, id);
    e->h = key(id);
    e->f = *f;
    e->tier = tier;
    e->owner = owner;
    uint32_t i = (uint32_t)e->h & (IDX_CAP - 1);
    while (r->index[i])
        i = (i + 1) & (IDX_CAP - 1);
    r->index[i] = (int32_t)r->next + 1;
    r->ihash[i] = e->h;
    r->next = (r->next + 1) % FEEDBACK_RING;
    pthread_mutex_unlock(&r->mu);
}

bool feedback_ring_take(feedback_ring_t *r, const char *id, int owner, route_features_t *f,
                        int *tier)
{
    if (strlen(id) >= sizeof r->ring[0].id) return false;
    uint64_t h = key(id);
    pthread_mutex_lock(&r->mu);
    int64_t pos = find_pos(r, h, id);
    bool ok = pos >= 0 && (owner < 0 || r->ring[r->index[pos] - 1].owner == owner);
    if (ok) {
        entry_t *e = &r->ring[r->index[pos] - 1];
        *f = e->f;
        *tier = e->tier;
        e->h = 0;
        index_delete(r, (uint32_t)pos);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}
