/* budget.h — spend budgets per API key, enforced before a request is dispatched.
 *
 * A request made with a key that has a budget reserves its maximum cost (prompt
 * tokens at the input price plus max_tokens at the output price of the most
 * expensive tier the decision may use) before anything is sent, and settles its
 * real cost when it ends. Reservations and totals live in the store
 * (store_budget_reserve: one atomic statement), so the spent total never exceeds
 * the budget under any concurrency, and gateways sharing a PostgreSQL share it.
 *
 * The store is only touched from one background thread with its own connection;
 * the worker loop submits a reservation and resumes the request in a callback on
 * the same loop (offload.h), so no store round trip runs on a loop.
 *
 * Limits: a gateway killed between a reservation and its settlement leaves that
 * reservation counted until the period ends (the budget errs on the safe side).
 */
#ifndef SY_API_BUDGET_H
#define SY_API_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/config.h"
#include "net/loop.h"

typedef struct budget budget_t;

/* Opens the thread and its own store connection to url. Returns owned, or NULL
 * with a message (an in-memory SQLite store cannot be shared, so it is refused). */
budget_t *budget_new(const char *store_url, char *err, size_t errlen);
/* Runs queued settlements, stops the thread, frees. NULL is fine. Call after the
 * loops that submitted work stopped. */
void budget_free(budget_t *b);

/* Start (Unix ms, UTC) of the period holding now_ms: midnight, Monday midnight,
 * the 1st of the month, or 0 for `total`. */
int64_t budget_period_start(config_period_t p, int64_t now_ms);

/* Called on the submitting loop with the outcome of a reservation: 0 (reserved),
 * SY_EFULL (does not fit; spent_usd and reserved_usd tell why), SY_EFULL with
 * busy = true (the queue is full), or another negative store error. */
typedef void (*budget_done_fn)(void *arg, int rc, double spent_usd, double reserved_usd);

/* Reserves amount_usd of key's budget (limit_usd per period_ms). done(arg, ...)
 * runs later on loop, unless this returns an error (then it never runs):
 * SY_EFULL when too many reservations wait already. key is copied. */
int budget_reserve(budget_t *b, loop_t *loop, const char *key, int64_t period_ms, double limit_usd,
                   double amount_usd, budget_done_fn done, void *arg);
/* Settles a reservation with the real cost, in the background (fire and forget;
 * a failure is logged). key is copied. */
void budget_settle(budget_t *b, loop_t *loop, const char *key, int64_t period_ms,
                   double reserved_usd, double actual_usd);

#endif
