/* auth.c — API keys (constant-time lookup of SHA-256 digests) and token buckets. */
#include "api/auth.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

/* --------------------------------------------------------- digests ---- */

void auth_digest(const char *key, size_t n, uint8_t out[32])
{
    SHA256((const unsigned char *)key, n, out);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int auth_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return SY_EPARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* --------------------------------------------------------- buckets ---- */

/* A token bucket: up to cap tokens, refilled at cap per minute. */
typedef struct bucket {
    double level; /* tokens available (may go below 0 after a request larger than cap) */
    double cap;   /* 0 = unlimited */
    int64_t last_ms;
} bucket_t;

typedef struct key_state {
    pthread_mutex_t mu;
    bucket_t rpm, tpm;
} key_state_t;

struct auth {
    const config_auth_t *cfg; /* borrowed */
    key_state_t *keys;        /* (cfg->n_keys) */
};

static void bucket_refill(bucket_t *b, int64_t now_ms)
{
    if (b->cap <= 0) return;
    if (now_ms > b->last_ms) {
        b->level += (double)(now_ms - b->last_ms) * b->cap / 60000.0;
        if (b->level > b->cap) b->level = b->cap;
    }
    b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
}

/* Seconds until b holds `need` (a request larger than the whole bucket waits for
 * a full bucket and then takes it below zero). 0 = it can pay now. */
static uint32_t bucket_wait_s(const bucket_t *b, double need)
{
    if (b->cap <= 0) return 0;
    if (need > b->cap) need = b->cap;
    if (b->level >= need) return 0;
    double ms = (need - b->level) * 60000.0 / b->cap;
    double s = ceil(ms / 1000.0);
    return s < 1 ? 1 : (uint32_t)s;
}

/* --------------------------------------------------------- the table ---- */

auth_t *auth_new(const config_auth_t *cfg)
{
    if (!cfg->enabled) return NULL;
    auth_t *a = mem_calloc(1, sizeof *a);
    a->cfg = cfg;
    a->keys = mem_calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof *a->keys);
    for (size_t i = 0; i < cfg->n_keys; i++) {
        pthread_mutex_init(&a->keys[i].mu, NULL);
        a->keys[i].rpm = (bucket_t){cfg->keys[i].rpm, cfg->keys[i].rpm, 0};
        a->keys[i].tpm = (bucket_t){cfg->keys[i].tpm, cfg->keys[i].tpm, 0};
    }
    return a;
}

void auth_free(auth_t *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->cfg->n_keys; i++)
        pthread_mutex_destroy(&a->keys[i].mu);
    mem_free(a->keys);
    mem_free(a);
}

int auth_lookup(const auth_t *a, const char *token, size_t n)
{
    uint8_t d[32];
    auth_digest(token, n, d);
    /* Every digest is compared, and the match is selected without a branch on the
     * comparison, so the time does not depend on where (or whether) it matched. */
    int found = -1;
    for (size_t i = 0; i < a->cfg->n_keys; i++) {
        int eq = CRYPTO_memcmp(d, a->cfg->keys[i].digest, 32) == 0;
        int mask = -eq; /* all ones when equal */
        found = (found & ~mask) | ((int)i & mask);
    }
    return found;
}

bool auth_is_admin(const auth_t *a, const char *token, size_t n)
{
    if (!a->cfg->admin_set) return false;
    uint8_t d[32];
    auth_digest(token, n, d);
    return CRYPTO_memcmp(d, a->cfg->admin_digest, 32) == 0;
}

int auth_limit_take(auth_t *a, int key, uint32_t tokens, int64_t now_ms, uint32_t *retry_after_s,
                    const char **which)
{
    key_state_t *k = &a->keys[key];
    pthread_mutex_lock(&k->mu);
    bucket_refill(&k->rpm, now_ms);
    bucket_refill(&k->tpm, now_ms);
    uint32_t wr = bucket_wait_s(&k->rpm, 1), wt = bucket_wait_s(&k->tpm, tokens);
    int rc = 0;
    if (wr || wt) {
        *retry_after_s = wr > wt ? wr : wt;
        *which = wr >= wt ? "rpm" : "tpm";
        rc = SY_EFULL;
    } else {
        if (k->rpm.cap > 0) k->rpm.level -= 1;
        if (k->tpm.cap > 0) k->tpm.level -= tokens;
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

void auth_limit_refund(auth_t *a, int key, uint32_t tokens)
{
    key_state_t *k = &a->keys[key];
    pthread_mutex_lock(&k->mu);
    if (k->tpm.cap > 0) {
        k->tpm.level += tokens;
        if (k->tpm.level > k->tpm.cap) k->tpm.level = k->tpm.cap;
    }
    pthread_mutex_unlock(&k->mu);
}
