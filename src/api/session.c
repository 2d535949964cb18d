/* session.c — a bounded in-memory session table: open addressing keyed by a hash
 * of the session id, with the id stored for exact comparison. */
#include "api/session.h"

#include <string.h>

#include "base/hash.h"
#include "base/mem.h"

#define SESSION_ID_MAX 128

typedef struct slot {
    uint64_t h; /* 0 = empty */
    char id[SESSION_ID_MAX];
    session_info_t info;
} slot_t;

struct session_table {
    pthread_mutex_t mu;
    slot_t *slots;
    uint32_t cap; /* power of two, >= 2 * max */
    uint32_t max;
    uint32_t count;
};

session_table_t *session_table_new(uint32_t max_sessions)
{
    session_table_t *t = mem_calloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->max = max_sessions ? max_sessions : 1;
    t->cap = 16;
    while (t->cap < 2 * t->max)
        t->cap *= 2;
    t->slots = mem_calloc(t->cap, sizeof(slot_t));
    return t;
}

void session_table_free(session_table_t *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    mem_free(t->slots);
    mem_free(t);
}

static uint64_t key(const char *id)
{
    uint64_t h = hash_bytes(id, strlen(id), 0x5e55);
    return h ? h : 1;
}

/* Under mu: the slot holding id, or the empty slot where it would go. */
static slot_t *find(session_table_t *t, const char *id, uint64_t h)
{
    uint32_t i = (uint32_t)h & (t->cap - 1);
    for (;;) {
        slot_t *s = &t->slots[i];
        if (s->h == 0 || (s->h == h && !strcmp(s->id, id))) return s;
        i = (i + 1) & (t->cap - 1);
    }
}

/* Under mu: removes the least recently updated session, a non-private one if any
 * (forgetting a private session would let its next turn leave the machine), with
 * back-shift deletion so linear-probing lookups stay correct. */
static void evict_oldest(session_table_t *t)
{
    uint32_t victim = UINT32_MAX;
    for (int pass = 0; pass < 2 && victim == UINT32_MAX; pass++)
        for (uint32_t i = 0; i < t->cap; i++) {
            slot_t *s = &t->slots[i];
            if (!s->h || (pass == 0 && s->info.private_)) continue;
            if (victim == UINT32_MAX || s->info.updated_ms < t->slots[victim].info.updated_ms)
                victim = i;
        }
    if (victim == UINT32_MAX) return;
    uint32_t i = victim;
    t->slots[i].h = 0;
    for (uint32_t j = (i + 1) & (t->cap - 1); t->slots[j].h; j = (j + 1) & (t->cap - 1)) {
        uint32_t home = (uint32_t)t->slots[j].h & (t->cap - 1);
        /* Move j back to i if i lies cyclically in [home, j). */
        if (((j - home) & (t->cap - 1)) >= ((j - i) & (t->cap - 1))) {
            t->slots[i] = t->slots[j];
            t->slots[j].h = 0;
            i = j;
        }
    }
    t->count--;
}

bool session_get(session_table_t *t, const char *id, session_info_t *out)
{
    if (!id || !*id || strlen(id) >= SESSION_ID_MAX) return false;
    uint64_t h = key(id);
    pthread_mutex_lock(&t->mu);
    slot_t *s = find(t, id, h);
    bool ok = s->h != 0;
    if (ok) *out = s->info;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void session_record(session_table_t *t, const char *id, bool pii, int tier, int64_t now_ms)
{
    if (!id || !*id || strlen(id) >= SESSION_ID_MAX) return;
    uint64_t h = key(id);
    pthread_mutex_lock(&t->mu);
    slot_t *s = find(t, id, h);
    if (s->h == 0) {
        if (t->count >= t->max) {
            evict_oldest(t);
            s = find(t, id, h);
        }
        s->h = h;
        strcpy(s->id, id);
        s->info = (session_info_t){false, 0, -1, now_ms};
        t->count++;
    }
    s->info.private_ |= pii;
    s->info.turns++;
    if (tier >= 0) s->info.last_tier = tier;
    s->info.updated_ms = now_ms;
    pthread_mutex_unlock(&t->mu);
}

uint32_t session_count(session_table_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint32_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
