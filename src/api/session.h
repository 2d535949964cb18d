/* session.h — conversation sessions across tiers (in memory, bounded).
 *
 * A session remembers how many turns it had, which tier served the last one, and
 * whether it ever held personal data: a private session stays private, so later
 * turns are routed local-only even when they hold no PII themselves.
 */
#ifndef SY_API_SESSION_H
#define SY_API_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct session_info {
    bool private_; /* ever held PII */
    uint32_t turns;
    int last_tier; /* -1 none */
    int64_t updated_ms;
} session_info_t;

typedef struct session_table session_table_t;

/* Holds at most max_sessions; the least recently updated is evicted past that. */
session_table_t *session_table_new(uint32_t max_sessions);
void session_table_free(session_table_t *t);
/* Copies the session's state into out; false if unknown. */
bool session_get(session_table_t *t, const char *id, session_info_t *out);
/* Records a turn: marks private if pii, sets the serving tier. */
void session_record(session_table_t *t, const char *id, bool pii, int tier, int64_t now_ms);
uint32_t session_count(session_table_t *t);

#endif
