/* offload.h — one background thread for blocking work that must not hold up a
 * worker's event loop (reports over the whole ledger, for instance).
 *
 * A job's work() runs on the offload thread; its done() then runs on the loop that
 * submitted it (through loop_post), where it may answer an HTTP response. Jobs run one
 * at a time in submission order; at most max_pending wait, so a flood of slow
 * requests gets a clear "busy" instead of an unbounded queue.
 *
 * Shutdown: offload_free() lets queued jobs run, then joins the thread. It must be
 * called after the loops that submitted jobs have stopped running and before they are
 * freed. The server's drain keeps a loop running while a response is pending, so
 * done() normally runs before the loop stops; a job whose done() a stopped loop will
 * never run (a report still running when the drain timed out) gets drop(arg) from
 * offload_free() instead, to release what it holds.
 */
#ifndef SY_API_OFFLOAD_H
#define SY_API_OFFLOAD_H

#include <stddef.h>

#include "net/loop.h"

typedef struct offload offload_t;
typedef void (*offload_fn)(void *arg);

/* Starts the thread. Returns NULL if it cannot be started. */
offload_t *offload_new(size_t max_pending);
/* The same, for background work: the thread runs at nice value `nice` (0..19) above
 * the process's, so under CPU contention the worker loops (and anything else at the
 * process's own priority) run first and the jobs take what is left; 19 also makes it
 * SCHED_IDLE (a weight of 3 against a loop's 1024, where nice +10 is still 110). Work
 * that one client can make arbitrarily expensive (a multi-megabyte request) belongs
 * here. */
offload_t *offload_new_nice(size_t max_pending, int nice);
/* Runs the jobs still queued, stops and joins the thread, frees o. NULL is fine. */
void offload_free(offload_t *o);
/* Queues work(arg) for the thread, then done(arg) on loop; drop(arg) (may be NULL)
 * runs instead of done() if the loop stopped first. Returns 0, or SY_EFULL when
 * max_pending jobs already wait (nothing is queued; the caller still owns arg). */
int offload_submit(offload_t *o, loop_t *loop, offload_fn work, offload_fn done, offload_fn drop,
                   void *arg);
/* The same without the max_pending bound, for work that only releases what arg
 * already holds (freeing a large tree): queueing it costs nothing new, and refusing
 * it would leave the caller to do it on its loop. Returns 0, or SY_EFULL once
 * offload_free() began. */
int offload_submit_release(offload_t *o, loop_t *loop, offload_fn work, offload_fn done,
                           offload_fn drop, void *arg);

#endif
