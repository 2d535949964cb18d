/* loop.c — epoll event loop with a timer heap and cross-thread posts.
 *
 * File descriptors: a table indexed by fd holds the callback of each watched fd and a
 * generation number; the generation travels in epoll_data next to the fd so an event
 * that was already fetched for a descriptor deleted (and maybe re-added) by an
 * earlier callback of the same iteration is dropped instead of being misdelivered.
 *
 * Timers: slots in a pool (reused, so no allocation per timer once warm) ordered by a
 * binary min-heap of slot indexes; each slot remembers its heap position so deletion
 * is O(log n). A timer id is (generation << 32 | slot + 1): stale ids are ignored.
 *
 * Posts: a mutex-protected array swapped out whole by the loop thread, woken through
 * an eventfd that is also what loop_stop() writes.
 */
#include "net/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"

#define LOOP_MAX_EVENTS 256
#define LOOP_MAX_FDS    (1 << 20)

typedef struct io_watch {
    loop_io_fn fn;
    void *arg;
    uint32_t gen; /* bumped on every add and delete */
    bool active;
} io_watch_t;

typedef struct timer_slot {
    uint64_t when_ms;
    uint64_t seq; /* insertion order: equal deadlines fire first-in first-out */
    loop_timer_fn fn;
    void *arg;
    uint32_t gen;
    int32_t heap_pos; /* -1 when free */
    uint32_t next_free;
} timer_slot_t;

typedef struct post_item {
    loop_post_fn fn;
    void *arg;
} post_item_t;

struct loop {
    int epfd;
    int wakefd;     /* eventfd: posts and stop */
    io_watch_t *io; /* indexed by fd */
    size_t n_io;    /* entries allocated */

    timer_slot_t *slots;
    uint32_t n_slots;   /* allocated */
    uint32_t free_head; /* slot index + 1; 0 = none */
    uint32_t *heap;     /* slot indexes */
    uint32_t heap_len;
    uint64_t timer_seq;

    pthread_mutex_t post_mu;
    post_item_t *posts; /* guarded by post_mu */
    size_t n_posts, cap_posts;
    post_item_t *run_posts; /* loop thread only */
    size_t cap_run_posts;

    atomic_bool stop;
    uint64_t now_ms;
};

/* ---------------------------------------------------------------- lifetime */

/* Makes a loop with its epoll fd and wake eventfd. Returns owned loop or NULL with
 * errno set. */
loop_t *loop_new(void)
{
    loop_t *l = mem_calloc(1, sizeof *l);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->wakefd < 0) {
        int e = errno;
        if (l->epfd >= 0) close(l->epfd);
        if (l->wakefd >= 0) close(l->wakefd);
        mem_free(l);
        errno = e;
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0) {
        int e = errno;
        close(l->epfd);
        close(l->wakefd);
        mem_free(l);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&l->post_mu, NULL);
    l->now_ms = clock_mono_ms();
    return l;
}

/* Frees the loop. Watched fds are not closed (their owners close them); pending
 * timers and posts are dropped without running. */
void loop_free(loop_t *l)
{
    if (!l) return;
    close(l->epfd);
    close(l->wakefd);
    pthread_mutex_destroy(&l->post_mu);
    mem_free(l->io);
    mem_free(l->slots);
    mem_free(l->heap);
    mem_free(l->posts);
    mem_free(l->run_posts);
    mem_free(l);
}

uint64_t loop_now_ms(loop_t *l)
{
    return l->now_ms;
}

/* ---------------------------------------------------------------- fds */

static uint32_t to_epoll(unsigned events)
{
    uint32_t e = EPOLLRDHUP;
    if (events & LOOP_READ) e |= EPOLLIN;
    if (events & LOOP_WRITE) e |= EPOLLOUT;
    if (events & LOOP_EDGE) e |= EPOLLET;
    return e;
}

/* Watches fd with fn(arg); fails with -EEXIST if already watched. 0 or -errno. */
int loop_io_add(loop_t *l, int fd, unsigned events, loop_io_fn fn, void *arg)
{
    if (fd < 0 || fd >= LOOP_MAX_FDS) return -EBADF;
    if ((size_t)fd >= l->n_io) {
        size_t n = l->n_io ? l->n_io : 64;
        while (n <= (size_t)fd)
            n *= 2;
        l->io = mem_realloc(l->io, n * sizeof *l->io);
        memset(l->io + l->n_io, 0, (n - l->n_io) * sizeof *l->io);
        l->n_io = n;
    }
    io_watch_t *w = &l->io[fd];
    if (w->active) return -EEXIST;
    w->gen++;
    struct epoll_event ev = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -errno;
    w->fn = fn;
    w->arg = arg;
    w->active = true;
    return 0;
}

int loop_io_mod(loop_t *l, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= l->n_io || !l->io[fd].active) return -ENOENT;
    struct epoll_event ev = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)l->io[fd].gen << 32) | (uint32_t)fd};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_io_del(loop_t *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_io || !l->io[fd].active) return -ENOENT;
    io_watch_t *w = &l->io[fd];
    w->active = false;
    w->gen++;
    /* The fd may already be closed by its owner: the kernel then removed it itself. */
    if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
        return -errno;
    return 0;
}

/* ---------------------------------------------------------------- timers */

static bool timer_less(const loop_t *l, uint32_t a, uint32_t b)
{
    const timer_slot_t *x = &l->slots[a], *y = &l->slots[b];
    return x->when_ms < y->when_ms || (x->when_ms == y->when_ms && x->seq < y->seq);
}

static void heap_set(loop_t *l, uint32_t pos, uint32_t slot)
{
    l->heap[pos] = slot;
    l->slots[slot].heap_pos = (int32_t)pos;
}

static void heap_up(loop_t *l, uint32_t pos)
{
    uint32_t s = l->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!timer_less(l, s, l->heap[parent])) break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, s);
}

static void heap_down(loop_t *l, uint32_t pos)
{
    uint32_t s = l->heap[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= l->heap_len) break;
        if (c + 1 < l->heap_len && timer_less(l, l->heap[c + 1], l->heap[c])) c++;
        if (!timer_less(l, l->heap[c], s)) break;
        heap_set(l, pos, l->heap[c]);
        pos = c;
    }
    heap_set(l, pos, s);
}

/* Removes the slot at heap position pos and returns the slot to the free list. */
static void heap_remove(loop_t *l, uint32_t pos)
{
    uint32_t slot = l->heap[pos];
    l->heap_len--;
    if (pos != l->heap_len) {
        heap_set(l, pos, l->heap[l->heap_len]);
        heap_down(l, pos);
        heap_up(l, (uint32_t)l->slots[l->heap[pos]].heap_pos);
    }
    timer_slot_t *t = &l->slots[slot];
    t->heap_pos = -1;
    t->gen++;
    t->next_free = l->free_head;
    l->free_head = slot + 1;
}

/* Schedules fn(arg) once after after_ms (relative to the cached now). Returns the
 * id (never 0). Allocates only when the pool of timer slots grows. */
uint64_t loop_timer_add(loop_t *l, uint64_t after_ms, loop_timer_fn fn, void *arg)
{
    if (!l->free_head) {
        uint32_t n = l->n_slots ? l->n_slots * 2 : 64;
        l->slots = mem_realloc(l->slots, n * sizeof *l->slots);
        l->heap = mem_realloc(l->heap, n * sizeof *l->heap);
        for (uint32_t i = n; i-- > l->n_slots;) {
            l->slots[i] = (timer_slot_t){.heap_pos = -1, .next_free = l->free_head};
            l->free_head = i + 1;
        }
        l->n_slots = n;
    }
    uint32_t slot = l->free_head - 1;
    timer_slot_t *t = &l->slots[slot];
    l->free_head = t->next_free;
    t->when_ms = l->now_ms + after_ms;
    t->seq = l->timer_seq++;
    t->fn = fn;
    t->arg = arg;
    l->heap[l->heap_len] = slot;
    t->heap_pos = (int32_t)l->heap_len++;
    heap_up(l, (uint32_t)t->heap_pos);
    return ((uint64_t)t->gen << 32) | (slot + 1);
}

void loop_timer_del(loop_t *l, uint64_t id)
{
    if (!id) return;
    uint32_t slot = (uint32_t)(id & 0xffffffffu) - 1;
    if (slot >= l->n_slots) return;
    timer_slot_t *t = &l->slots[slot];
    if (t->gen != (uint32_t)(id >> 32) || t->heap_pos < 0) return;
    heap_remove(l, (uint32_t)t->heap_pos);
}

/* Runs every timer due at the cached now. A timer added by a callback with delay 0
 * waits for the next iteration so a re-arming timer cannot starve I/O. */
static void run_timers(loop_t *l)
{
    uint64_t limit = l->timer_seq;
    while (l->heap_len) {
        timer_slot_t *t = &l->slots[l->heap[0]];
        if (t->when_ms > l->now_ms || t->seq >= limit) break;
        loop_timer_fn fn = t->fn;
        void *arg = t->arg;
        heap_remove(l, 0);
        fn(l, arg);
    }
}

/* ---------------------------------------------------------------- posts */

int loop_post(loop_t *l, loop_post_fn fn, void *arg)
{
    pthread_mutex_lock(&l->post_mu);
    if (l->n_posts == l->cap_posts) {
        l->cap_posts = l->cap_posts ? l->cap_posts * 2 : 16;
        l->posts = mem_realloc(l->posts, l->cap_posts * sizeof *l->posts);
    }
    l->posts[l->n_posts++] = (post_item_t){fn, arg};
    bool first = l->n_posts == 1;
    pthread_mutex_unlock(&l->post_mu);
    if (first) {
        uint64_t one = 1;
        if (write(l->wakefd, &one, sizeof one) < 0 && errno != EAGAIN) return -errno;
    }
    return 0;
}

/* Swaps the pending posts out under the lock and runs them without it, so a posted
 * function may post again. */
static void run_posts(loop_t *l)
{
    uint64_t v;
    while (read(l->wakefd, &v, sizeof v) > 0) {
    }
    pthread_mutex_lock(&l->post_mu);
    post_item_t *items = l->posts;
    size_t n = l->n_posts, cap = l->cap_posts;
    l->posts = l->run_posts;
    l->cap_posts = l->cap_run_posts;
    l->n_posts = 0;
    pthread_mutex_unlock(&l->post_mu);
    for (size_t i = 0; i < n; i++)
        items[i].fn(items[i].arg);
    l->run_posts = items;
    l->cap_run_posts = cap;
}

/* ---------------------------------------------------------------- run */

void loop_stop(loop_t *l)
{
    atomic_store(&l->stop, true);
    uint64_t one = 1;
    ssize_t r = write(l->wakefd, &one, sizeof one);
    (void)r;
}

/* Waits for events, runs fd callbacks, posts and due timers until loop_stop().
 * 0, or -errno if epoll_wait fails. */
int loop_run(loop_t *l)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    /* A stop requested before run (from another thread) is honoured; the flag is
     * cleared on the way out so the loop can be run again. */
    while (!atomic_load(&l->stop)) {
        int timeout = -1;
        if (l->heap_len) {
            /* Fresh time: the callbacks of this iteration may have taken a while. */
            l->now_ms = clock_mono_ms();
            uint64_t when = l->slots[l->heap[0]].when_ms;
            timeout = when <= l->now_ms ? 0 : (int)(when - l->now_ms);
        }
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            atomic_store(&l->stop, false);
            return -errno;
        }
        l->now_ms = clock_mono_ms();
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == UINT64_MAX) {
                run_posts(l);
                continue;
            }
            int fd = (int)(uint32_t)d;
            io_watch_t *w = &l->io[fd];
            if (!w->active || w->gen != (uint32_t)(d >> 32)) continue;
            unsigned ev = 0;
            if (evs[i].events & EPOLLIN) ev |= LOOP_READ;
            if (evs[i].events & EPOLLOUT) ev |= LOOP_WRITE;
            if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ev |= LOOP_HUP;
            w->fn(l, fd, ev, w->arg);
        }
        run_timers(l);
    }
    atomic_store(&l->stop, false);
    return 0;
}
