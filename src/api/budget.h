/* budget.h — spend budgets per API key, enforced before a request is dispatched.
 *
 * A request made with a key that has a budget reserves its maximum cost before
 * anything is sent and settles its real cost when it ends. The store holds the
 * truth shared by every gateway: per (key, period) the spent total and what is
 * reserved, changed only by atomic statements that keep spent + reserved within
 * the limit (store_budget_reserve).
 *
 * To keep a store round trip off every request, a gateway reserves budget from the
 * store in leases (1% of the limit, or the request's own amount when more) and
 * grants requests from its lease in memory. Settled costs are written back in
 * batches (spent += costs, reserved -= the same), and the rest of a lease is given
 * back when the key has no request in flight: at once when the store had less than
 * ten leases of room at the last grow, so near the limit the leases shrink to
 * single requests and other gateways can use what is left; otherwise after a second
 * of idleness (budget_tick), so requests that come one at a time are granted from
 * memory too. Whatever the
 * concurrency and however many gateways: settled spending never exceeds the limit
 * (as long as upstreams honour max_tokens; a request that cost more than its
 * reservation is logged).
 *
 * Store calls run on one background thread with its own connection; a request
 * that needs a new lease waits for it in a callback on its own loop (offload.h).
 *
 * Limits: a gateway killed with a lease outstanding leaves it counted as reserved
 * until the period ends (the budget errs on the safe side); spending settled in
 * the last moments before such a kill is counted in the reservation, not in
 * spent.
 */
#ifndef SY_API_BUDGET_H
#define SY_API_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/config.h"
#include "net/loop.h"

typedef struct budget budget_t;

/* Opens the thread and its own store connection to url, for the keys of auth
 * (borrowed; must outlive b). Returns owned, or NULL with a message (an in-memory
 * SQLite store cannot be shared, so it is refused). */
budget_t *budget_new(const config_auth_t *auth, const char *store_url, char *err, size_t errlen);
/* Runs queued work, gives back every lease (settling what was spent), stops the
 * thread, frees. NULL is fine. Call after the loops that used b stopped. */
void budget_free(budget_t *b);

/* Gives back the leases of keys idle for a second or more (now_ms: clock_mono_ms);
 * store calls go through the thread, done on loop. Call it every few hundred ms from
 * any loop. NULL is fine. */
void budget_tick(budget_t *b, loop_t *loop, uint64_t now_ms);

/* Start (Unix ms, UTC) of the period holding now_ms: midnight, Monday midnight,
 * the 1st of the month, or 0 for `total`. */
int64_t budget_period_start(config_period_t p, int64_t now_ms);

/* Outcome of a reservation that had to ask the store, on the submitting loop: 0
 * (reserved), SY_EFULL (it does not fit: spent_usd / reserved_usd are the store's
 * totals for the key), or another negative store error. */
typedef void (*budget_done_fn)(void *arg, int rc, double spent_usd, double reserved_usd);

/* Reserves amount_usd of key's budget (cfg->keys[key]) for the period holding
 * now_ms (its start goes to *period_ms, to settle with). Returns 0 when the lease
 * covered it (done never runs), 1 when the store is asked (done(arg, ...) runs
 * later on loop), or SY_EFULL when too many store calls wait already (done never
 * runs). */
int budget_reserve(budget_t *b, loop_t *loop, int key, int64_t now_ms, double amount_usd,
                   int64_t *period_ms, budget_done_fn done, void *arg);
/* Settles a granted reservation with the real cost (in memory; the store gets it
 * in a batch). */
void budget_settle(budget_t *b, loop_t *loop, int key, int64_t period_ms, double reserved_usd,
                   double actual_usd);

#endif
