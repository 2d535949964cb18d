/* auth.h — API keys and per-key rate limits.
 *
 * With an `auth` section in the config, every /v1 call presents a key
 * (Authorization: Bearer <key>, or x-api-key). Keys are held only as SHA-256
 * digests; a presented key is hashed and compared against every configured digest
 * in constant time (no early exit), so timing tells nothing about which bytes
 * matched. Keys are never logged: only their configured names are.
 *
 * Rate limits are token buckets per key: rpm (one token per request) and tpm
 * (prompt tokens plus the most output the request may produce, refunded down to the
 * real count afterwards). A bucket refills continuously at its per-minute rate up to
 * one minute's worth. Buckets live in this process: with N gateways, each enforces
 * the limit on its own share of the traffic (budgets, which are money, live in the
 * store and are shared; see budget.h).
 */
#ifndef SY_API_AUTH_H
#define SY_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/config.h"

/* SHA-256 of key[0..n). */
void auth_digest(const char *key, size_t n, uint8_t out[32]);
/* Decodes 2n hex digits into out[n]. 0 or SY_EPARSE. */
int auth_hex_decode(const char *hex, uint8_t *out, size_t n);

typedef struct auth auth_t;

/* Builds the key table and buckets from cfg (borrowed: it must outlive the
 * auth_t). Returns owned; NULL when cfg->enabled is false. */
auth_t *auth_new(const config_auth_t *cfg);
void auth_free(auth_t *a);

/* The key presented (token[0..n)): its index in cfg->keys, or -1 if none matches. */
int auth_lookup(const auth_t *a, const char *token, size_t n);
/* Whether token is the admin key (false when no admin key is configured). */
bool auth_is_admin(const auth_t *a, const char *token, size_t n);

/* Takes one request and `tokens` tokens from key's buckets at now_ms. 0, or
 * SY_EFULL (nothing taken) with *retry_after_s, the whole seconds until both
 * buckets could pay, and *which = "rpm" or "tpm". */
int auth_limit_take(auth_t *a, int key, uint32_t tokens, int64_t now_ms, uint32_t *retry_after_s,
                    const char **which);
/* Gives back `tokens` taken by auth_limit_take that the request did not use. */
void auth_limit_refund(auth_t *a, int key, uint32_t tokens);

#endif
