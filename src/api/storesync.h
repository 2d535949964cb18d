/* storesync.h — the gateway's store traffic, off the worker loops.
 *
 * Sessions, feedback and the bandit state live in the store (shared by every
 * gateway on one PostgreSQL). A store call is disk or network I/O: on a worker loop
 * it stalls every connection of that loop (with PostgreSQL, a round trip inside an
 * epoll callback). So the loops never call the store; one thread with its own
 * connection does:
 *
 * - writes the loops queue: a session's private mark, feedback rewards, the bandit
 *   state. Queuing copies the data into a bounded ring and never blocks; a full
 *   ring refuses (the count is kept, and logged at most once a second).
 * - a view of private sessions: at start every private session updated in the last
 *   day is loaded into the session table the loops read; then, every sync_ms, those
 *   updated since the last sync (with a minute of overlap for clock skew between
 *   gateways). A session marked private by another gateway is seen here within
 *   about sync_ms; one this gateway marks is in its table at once.
 */
#ifndef SY_API_STORESYNC_H
#define SY_API_STORESYNC_H

#include <stddef.h>
#include <stdint.h>

#include "api/session.h"

typedef struct storesync storesync_t;

/* Opens its own connection to url, loads the private sessions into sessions
 * (borrowed; must outlive the syncer), starts the thread. Returns owned or NULL
 * with err. */
storesync_t *storesync_new(const char *url, session_table_t *sessions, uint32_t sync_ms, char *err,
                           size_t errlen);
/* Runs the writes still queued, stops the thread, frees. NULL is a no-op. */
void storesync_free(storesync_t *s);

/* Queue one write; 0 or SY_EFULL (nothing queued). Strings and blobs are copied. */
int storesync_session_private(storesync_t *s, const char *session_id, int64_t now_ms);
int storesync_feedback(storesync_t *s, const char *request_id, double reward, int64_t ts_ms);
int storesync_kv_put(storesync_t *s, const char *ns, const char *key, const void *blob, size_t len);
/* Blocks until every write queued before the call is done (tests, shutdown). */
void storesync_flush(storesync_t *s);
/* Writes refused (ring full) or failed so far. */
uint64_t storesync_dropped(storesync_t *s);

#endif
