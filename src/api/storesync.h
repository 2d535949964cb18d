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
 * - the bandit's statistics, merged across gateways: every sync_ms the thread takes
 *   the delta the attached router gathered since the last round, adds it to the
 *   store's totals in one atomic step (store_kv_add_f64, under ("bandit",
 *   STORESYNC_BANDIT_KEY)) and sets the router to the new totals plus what it
 *   gathered meanwhile. A delta the store refused is kept and added next round.
 */
#ifndef SY_API_STORESYNC_H
#define SY_API_STORESYNC_H

#include <stddef.h>
#include <stdint.h>

#include "api/session.h"
#include "route/router.h"

/* The key of the shared bandit sums: their shape (feature dimension, arms) is in
 * it, so gateways whose feature vectors differ never add into each other's. */
#define STORESYNC_BANDIT_NS "bandit"
void storesync_bandit_key(const router_t *r, char *out, size_t cap);

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

/* The router whose bandit statistics the thread shares (borrowed until
 * storesync_bandit_detach). Attaching another takes the previous one's delta. */
void storesync_bandit_attach(storesync_t *s, router_t *r);
/* Takes r's last delta (shared at the next round) and, if r is attached, detaches
 * it: the thread does not touch r after this returns. */
void storesync_bandit_detach(storesync_t *s, router_t *r);
/* Runs one bandit round on the thread now and waits for it (reload, tests). */
void storesync_bandit_sync(storesync_t *s);

#endif
