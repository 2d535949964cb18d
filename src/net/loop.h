/* loop.h — a small epoll event loop with timers and cross-thread posts.
 *
 * One loop per worker thread. File descriptors are watched for readability and/or
 * writability (level-triggered unless LOOP_EDGE is given); timers fire once after a
 * delay in milliseconds; loop_post() is the only function safe to call from another
 * thread: it queues fn(arg) to run on the loop's thread and wakes it (eventfd).
 *
 * Contract: callbacks run on the loop's thread; a callback may add or delete any fd
 * or timer, including its own. If a function that takes a callback returns an error,
 * the callback is never called.
 */
#ifndef SY_NET_LOOP_H
#define SY_NET_LOOP_H

#include <stdint.h>

#define LOOP_READ  1u
#define LOOP_WRITE 2u
#define LOOP_EDGE  4u
/* Reported to callbacks only (never requested): the peer hung up or the fd has an
 * error (EPOLLRDHUP/EPOLLHUP/EPOLLERR). Callbacks should read to see EOF. */
#define LOOP_HUP 8u

typedef struct loop loop_t;
typedef void (*loop_io_fn)(loop_t *loop, int fd, unsigned events, void *arg);
typedef void (*loop_timer_fn)(loop_t *loop, void *arg);
typedef void (*loop_post_fn)(void *arg);

/* Returns an owned loop (free with loop_free) or NULL with errno set. */
loop_t *loop_new(void);
void loop_free(loop_t *loop);

/* Watches fd; 0 or -errno. events: LOOP_READ|LOOP_WRITE[|LOOP_EDGE]. */
int loop_io_add(loop_t *loop, int fd, unsigned events, loop_io_fn fn, void *arg);
int loop_io_mod(loop_t *loop, int fd, unsigned events);
int loop_io_del(loop_t *loop, int fd);

/* Schedules fn after after_ms; returns a nonzero id for loop_timer_del. */
uint64_t loop_timer_add(loop_t *loop, uint64_t after_ms, loop_timer_fn fn, void *arg);
/* Cancels a pending timer; unknown or fired ids are ignored. */
void loop_timer_del(loop_t *loop, uint64_t id);

/* Thread-safe: runs fn(arg) on the loop thread soon. 0 or -errno. */
int loop_post(loop_t *loop, loop_post_fn fn, void *arg);

/* Runs until loop_stop(); 0 or -errno. */
int loop_run(loop_t *loop);
/* Thread-safe: makes loop_run return after the current iteration. */
void loop_stop(loop_t *loop);
/* Cached monotonic milliseconds, refreshed once per iteration. */
uint64_t loop_now_ms(loop_t *loop);

#endif
