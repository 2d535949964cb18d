/* upstream.c — libcurl multi-socket client driven by a worker loop.
 *
 * curl tells us which sockets to watch (socket callback) and when to call it back
 * (timer callback); the loop reports readiness and we hand it to
 * curl_multi_socket_action(), then collect finished transfers with
 * curl_multi_info_read(). The multi handle keeps the connection cache, so requests
 * from one worker reuse kept-alive connections to each host.
 *
 * Calls: each call owns an easy handle taken from a small per-client pool (reset
 * between uses). The TTFT timeout is a loop timer canceled by the first body byte.
 * Cancellation inside a curl callback (on_head/on_data) cannot remove the handle
 * there, so it only marks the call; the write callback then aborts the transfer and
 * the completion is swallowed.
 */
#include "net/upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"

#define UPSTREAM_POOL_MAX 64

struct upstream_call {
    upstream_t *u;
    upstream_call_t *prev, *next; /* live calls */
    CURL *easy;
    struct curl_slist *headers; /* kept by a pooled call, reused when unchanged */
    char *post;                 /* request body given to curl without a copy */
    size_t post_cap;
    upstream_cb_t cb;
    void *arg;
    uint64_t ttft_timer;
    uint64_t add_timer; /* pending deferred curl_multi_add_handle */
    size_t max_body;
    size_t got; /* body bytes received */
    int status;
    bool head_sent;        /* on_head called */
    bool canceled;         /* no more callbacks */
    bool in_cb;            /* inside a curl callback of this call */
    upstream_err_t forced; /* error decided by us (TOOBIG); UPSTREAM_OK if none */
    char errbuf[CURL_ERROR_SIZE];
};

struct upstream {
    loop_t *loop;
    CURLM *multi;
    uint64_t timer;
    upstream_call_t *live;
    upstream_call_t *pool[UPSTREAM_POOL_MAX]; /* finished calls, each keeping its easy handle */
    int n_pool;
    int depth;      /* > 0 while curl_multi_socket_action is on the stack */
    uint8_t *fds;   /* FD_* by fd, for sockets curl opened through open_cb */
    uint8_t *fd_ev; /* loop interest of each such watched socket */
    size_t n_fds;
    int n_deferred; /* calls canceled during depth > 0, reaped after it */
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *upstream_err_name(upstream_err_t e)
{
    switch (e) {
    case UPSTREAM_OK:
        return "ok";
    case UPSTREAM_CONNECT:
        return "connect";
    case UPSTREAM_TTFT_TIMEOUT:
        return "ttft_timeout";
    case UPSTREAM_TIMEOUT:
        return "timeout";
    case UPSTREAM_CUT:
        return "cut";
    case UPSTREAM_TOOBIG:
        return "too_big";
    case UPSTREAM_CANCELED:
        return "canceled";
    case UPSTREAM_OTHER:
        return "other";
    }
    return "?";
}

/* ---------------------------------------------------------------- loop glue */

static void check_done(upstream_t *u);

/* Per-fd state of the connection sockets curl opened through us (opensocket), so
 * that a kept-alive connection going idle stays registered with the loop
 * ("parked") instead of being deleted from epoll and added back on its next use:
 * two epoll_ctl calls saved per request. A parked socket that becomes readable
 * (the server closed it) is deleted then; curl's own liveness check does the rest.
 * Sockets curl made otherwise (resolver pipes) take the plain add/delete path. */
enum { FD_FOREIGN = 0, FD_IDLE, FD_WATCHED, FD_PARKED };

static uint8_t *fd_slot(upstream_t *u, int fd)
{
    if (fd < 0) return NULL;
    if ((size_t)fd >= u->n_fds) {
        size_t n = u->n_fds ? u->n_fds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        u->fds = mem_realloc(u->fds, n);
        u->fd_ev = mem_realloc(u->fd_ev, n);
        memset(u->fds + u->n_fds, 0, n - u->n_fds);
        memset(u->fd_ev + u->n_fds, 0, n - u->n_fds);
        u->n_fds = n;
    }
    return &u->fds[fd];
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    upstream_t *u = clientp;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    *fd_slot(u, fd) = FD_IDLE;
    return fd;
}

static int close_cb(void *clientp, curl_socket_t fd)
{
    upstream_t *u = clientp;
    uint8_t *st = fd_slot(u, fd);
    if (st && (*st == FD_WATCHED || *st == FD_PARKED)) loop_io_del(u->loop, fd);
    if (st) *st = FD_FOREIGN;
    return close(fd);
}

static void sock_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    upstream_t *u = arg;
    if ((size_t)fd < u->n_fds && u->fds[fd] == FD_PARKED) {
        /* No transfer wants this idle connection: whatever happened to it (EOF,
         * stray bytes), stop watching; curl checks it before any reuse. */
        loop_io_del(loop, fd);
        u->fds[fd] = FD_IDLE;
        return;
    }
    int mask = 0;
    if (events & LOOP_READ) mask |= CURL_CSELECT_IN;
    if (events & LOOP_WRITE) mask |= CURL_CSELECT_OUT;
    if ((events & LOOP_HUP) && !mask) mask |= CURL_CSELECT_IN;
    int running;
    u->depth++;
    curl_multi_socket_action(u->multi, fd, mask, &running);
    u->depth--;
    check_done(u);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's wishes in the loop. For foreign sockets
 * socketp marks one we already watch. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    upstream_t *u = userp;
    uint8_t *st = fd_slot(u, s);
    unsigned ev = 0;
    if (what & CURL_POLL_IN) ev |= LOOP_READ;
    if (what & CURL_POLL_OUT) ev |= LOOP_WRITE;
    if (*st != FD_FOREIGN) {
        if (what == CURL_POLL_REMOVE) {
            if (*st == FD_WATCHED) {
                /* Park it, reading only: a writable idle socket would wake us. */
                if (u->fd_ev[s] != LOOP_READ) loop_io_mod(u->loop, s, LOOP_READ);
                u->fd_ev[s] = LOOP_READ;
                *st = FD_PARKED;
            }
            return 0;
        }
        if (*st == FD_IDLE) {
            if (loop_io_add(u->loop, s, ev, sock_io, u) < 0) return -1;
        } else if (u->fd_ev[s] != ev && loop_io_mod(u->loop, s, ev) < 0) {
            return -1;
        }
        u->fd_ev[s] = (uint8_t)ev;
        *st = FD_WATCHED;
        return 0;
    }
    if (what == CURL_POLL_REMOVE) {
        loop_io_del(u->loop, s);
        curl_multi_assign(u->multi, s, NULL);
        return 0;
    }
    if (socketp) {
        loop_io_mod(u->loop, s, ev);
    } else {
        if (loop_io_add(u->loop, s, ev, sock_io, u) == 0) curl_multi_assign(u->multi, s, (void *)1);
    }
    return 0;
}

static void curl_timer_fire(loop_t *loop, void *arg)
{
    upstream_t *u = arg;
    u->timer = 0;
    int running;
    u->depth++;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    u->depth--;
    check_done(u);
}

/* CURLMOPT_TIMERFUNCTION: one loop timer for the whole multi handle. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    upstream_t *u = userp;
    loop_timer_del(u->loop, u->timer);
    u->timer = 0;
    if (timeout_ms >= 0)
        u->timer = loop_timer_add(u->loop, (uint64_t)timeout_ms, curl_timer_fire, u);
    return 0;
}

/* ---------------------------------------------------------------- lifetime */

upstream_t *upstream_new(loop_t *loop, long max_conns_per_host)
{
    pthread_once(&g_curl_once, curl_init_once);
    upstream_t *u = mem_calloc(1, sizeof *u);
    u->loop = loop;
    u->multi = curl_multi_init();
    if (!u->multi) {
        mem_free(u);
        return NULL;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    if (max_conns_per_host > 0) {
        curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns_per_host);
        curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS,
                          max_conns_per_host * 4 < 64 ? 64L : max_conns_per_host * 4);
    }
    return u;
}

static void call_release(upstream_call_t *c);

/* Cancels live calls (no callbacks), closes pooled connections and frees u. */
void upstream_free(upstream_t *u)
{
    if (!u) return;
    while (u->live) {
        upstream_call_t *c = u->live;
        curl_multi_remove_handle(u->multi, c->easy);
        call_release(c);
    }
    for (int i = 0; i < u->n_pool; i++) {
        curl_easy_cleanup(u->pool[i]->easy);
        curl_slist_free_all(u->pool[i]->headers);
        mem_free(u->pool[i]->post);
        mem_free(u->pool[i]);
    }
    curl_multi_cleanup(u->multi);
    /* Anything still registered (closed by curl without our callback) is dropped. */
    for (size_t fd = 0; fd < u->n_fds; fd++)
        if (u->fds[fd] == FD_WATCHED || u->fds[fd] == FD_PARKED) loop_io_del(u->loop, (int)fd);
    mem_free(u->fds);
    mem_free(u->fd_ev);
    loop_timer_del(u->loop, u->timer);
    mem_free(u);
}

void upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

/* ---------------------------------------------------------------- curl callbacks */

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
    upstream_call_t *c = arg;
    size_t len = size * n;
    if (c->canceled) return 0;
    if (!strncmp(p, "HTTP/", 5)) {
        /* A new status line (after 1xx or a redirect): parse its code. */
        const char *sp = memchr(p, ' ', len);
        c->status = sp ? atoi(sp + 1) : 0;
    } else if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        if (c->status >= 200 && !c->head_sent) {
            c->head_sent = true;
            if (c->cb.on_head) {
                c->in_cb = true;
                c->cb.on_head(c->arg, c->status);
                c->in_cb = false;
                if (c->canceled) return 0;
            }
        }
    }
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    upstream_call_t *c = arg;
    size_t len = size * n;
    if (c->canceled) return 0;
    if (c->ttft_timer) {
        loop_timer_del(c->u->loop, c->ttft_timer);
        c->ttft_timer = 0;
    }
    if (!c->head_sent) {
        c->head_sent = true;
        long st = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
        c->status = (int)st;
        if (c->cb.on_head) {
            c->in_cb = true;
            c->cb.on_head(c->arg, c->status);
            c->in_cb = false;
            if (c->canceled) return 0;
        }
    }
    if (c->max_body && (len > c->max_body || c->got > c->max_body - len)) {
        c->forced = UPSTREAM_TOOBIG;
        return 0;
    }
    c->got += len;
    if (c->cb.on_data && len) {
        c->in_cb = true;
        c->cb.on_data(c->arg, p, len);
        c->in_cb = false;
        if (c->canceled) return 0;
    }
    return len;
}

/* ---------------------------------------------------------------- calls */

static void call_unlink(upstream_call_t *c)
{
    upstream_t *u = c->u;
    if (c->prev)
        c->prev->next = c->next;
    else
        u->live = c->next;
    if (c->next) c->next->prev = c->prev;
}

/* Frees the call (its handle must already be out of the multi); the easy handle
 * goes back to the pool. */
static void call_release(upstream_call_t *c)
{
    upstream_t *u = c->u;
    call_unlink(c);
    loop_timer_del(u->loop, c->ttft_timer);
    loop_timer_del(u->loop, c->add_timer);
    if (u->n_pool < UPSTREAM_POOL_MAX) {
        /* Kept with its handle configured, its header list and body buffer: the
         * next call overwrites every per-call option, so none is allocated again. */
        u->pool[u->n_pool++] = c;
    } else {
        curl_easy_cleanup(c->easy);
        curl_slist_free_all(c->headers);
        mem_free(c->post);
        mem_free(c);
    }
}

/* Maps a finished transfer to the error kind the tier layer acts on. */
static upstream_err_t classify(upstream_call_t *c, CURLcode rc)
{
    if (c->forced != UPSTREAM_OK) return c->forced;
    switch (rc) {
    case CURLE_OK:
        return UPSTREAM_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return UPSTREAM_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t ct = 0;
        curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &ct);
        return ct == 0 ? UPSTREAM_CONNECT : UPSTREAM_TIMEOUT;
    }
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return UPSTREAM_CUT;
    case CURLE_WRITE_ERROR:
        return c->canceled ? UPSTREAM_CANCELED : UPSTREAM_OTHER;
    default:
        return UPSTREAM_OTHER;
    }
}

/* Ends a call: removes the handle, reports (unless canceled) and frees it. */
static void call_finish(upstream_call_t *c, upstream_err_t err, const char *msg)
{
    curl_multi_remove_handle(c->u->multi, c->easy);
    upstream_cb_t cb = c->cb;
    void *arg = c->arg;
    bool report = !c->canceled;
    int status = c->status;
    char m[CURL_ERROR_SIZE + 32];
    snprintf(m, sizeof m, "%s", msg);
    call_release(c);
    if (report && cb.on_done) cb.on_done(arg, err, status, m);
}

/* Reaps finished transfers (and calls canceled while curl was on the stack). */
static void check_done(upstream_t *u)
{
    CURLMsg *msg;
    int left;
    if (u->n_deferred && !u->depth) {
        u->n_deferred = 0;
        for (upstream_call_t *c = u->live, *next; c; c = next) {
            next = c->next;
            if (c->canceled && !c->in_cb) {
                curl_multi_remove_handle(u->multi, c->easy);
                call_release(c);
            }
        }
    }
    while ((msg = curl_multi_info_read(u->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        upstream_call_t *c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = msg->data.result;
        upstream_err_t err = classify(c, rc);
        const char *m = err == UPSTREAM_OK       ? "ok"
                        : err == UPSTREAM_TOOBIG ? "upstream response exceeds the size limit"
                        : c->errbuf[0]           ? c->errbuf
                                                 : curl_easy_strerror(rc);
        /* The system's reason ("Connection refused"), which curl's text may lack. */
        long os_err = 0;
        char with_os[CURL_ERROR_SIZE + 64];
        if (err != UPSTREAM_OK && err != UPSTREAM_TOOBIG &&
            curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &os_err) == CURLE_OK && os_err > 0) {
            snprintf(with_os, sizeof with_os, "%.*s: %s", CURL_ERROR_SIZE, m,
                     strerror((int)os_err));
            m = with_os;
        }
        call_finish(c, err, m);
    }
}

static void ttft_fire(loop_t *loop, void *arg)
{
    upstream_call_t *c = arg;
    c->ttft_timer = 0;
    call_finish(c, UPSTREAM_TTFT_TIMEOUT, "no response byte within the TTFT timeout");
}

/* Adds the call's handle to the multi (deferred when curl was on the stack). */
static void deferred_add(loop_t *loop, void *arg)
{
    upstream_call_t *c = arg;
    c->add_timer = 0;
    if (curl_multi_add_handle(c->u->multi, c->easy) != CURLM_OK) {
        upstream_cb_t cb = c->cb;
        void *cbarg = c->arg;
        call_release(c);
        if (cb.on_done) cb.on_done(cbarg, UPSTREAM_OTHER, 0, "curl refused the transfer");
    }
}

/* True when list is "Expect:" followed by exactly the lines of hdrs. */
static bool headers_equal(const struct curl_slist *list, const char *const *hdrs)
{
    if (!list || strcmp(list->data, "Expect:")) return false;
    list = list->next;
    for (const char *const *h = hdrs; h && *h; h++, list = list->next)
        if (!list || strcmp(list->data, *h)) return false;
    return list == NULL;
}

/* Starts req. Copies everything it needs from req. 0 and callbacks will follow, or
 * a negative error and no callback. */
int upstream_call_start(upstream_t *u, const upstream_req_t *req, const upstream_cb_t *cb,
                        void *arg, upstream_call_t **out)
{
    if (!req->url || !cb) return SY_EINVAL;
    _Static_assert(offsetof(upstream_call_t, errbuf) > offsetof(upstream_call_t, easy),
                   "errbuf must be last");
    upstream_call_t *c;
    if (u->n_pool) {
        c = u->pool[--u->n_pool];
        CURL *e = c->easy;
        struct curl_slist *hl = c->headers;
        char *post = c->post;
        size_t post_cap = c->post_cap;
        memset(c, 0, offsetof(upstream_call_t, errbuf));
        c->errbuf[0] = 0;
        c->easy = e;
        c->headers = hl;
        c->post = post;
        c->post_cap = post_cap;
    } else {
        c = mem_calloc(1, sizeof *c);
        c->easy = curl_easy_init();
        if (!c->easy) {
            mem_free(c);
            return SY_EUPSTREAM;
        }
        /* Options that never change for a pooled handle. */
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETFUNCTION, open_cb);
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETDATA, u);
        curl_easy_setopt(c->easy, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
        curl_easy_setopt(c->easy, CURLOPT_CLOSESOCKETDATA, u);
    }
    c->u = u;
    c->cb = *cb;
    c->arg = arg;
    c->max_body = req->max_body;
    /* Every per-call option is set on every call (a pooled handle keeps the last
     * call's values otherwise); curl_easy_reset would cost more than this. */
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->total_timeout_ms);
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* clears a previous POST */
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, post || get ? NULL : method);
    if (post || (!get && req->body)) {
        /* Copied into the call's own buffer, which outlives the transfer (curl may
         * send it again on a fresh connection), instead of a copy by curl. */
        if (req->body_len + 1 > c->post_cap) {
            mem_free(c->post);
            c->post_cap = req->body_len + 1 > 4096 ? req->body_len + 1 : 4096;
            c->post = mem_alloc(c->post_cap);
        }
        if (req->body_len) memcpy(c->post, req->body, req->body_len);
        c->post[req->body_len] = 0;
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->post);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    /* No "Expect: 100-continue" round trip for large bodies. The list of the
     * handle's previous call is reused when it is the same. */
    if (!headers_equal(c->headers, req->headers)) {
        curl_slist_free_all(c->headers);
        c->headers = curl_slist_append(NULL, "Expect:");
        for (const char *const *h = req->headers; h && *h; h++)
            c->headers = curl_slist_append(c->headers, *h);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);

    c->next = u->live;
    if (u->live) u->live->prev = c;
    u->live = c;
    /* From inside a curl callback the multi handle may not be re-entered: add the
     * transfer from the loop right after. */
    CURLMcode mc = CURLM_OK;
    if (u->depth)
        c->add_timer = loop_timer_add(u->loop, 0, deferred_add, c);
    else
        mc = curl_multi_add_handle(u->multi, e);
    if (mc != CURLM_OK) {
        c->cb = (upstream_cb_t){0};
        c->canceled = true;
        call_release(c);
        return SY_EUPSTREAM;
    }
    if (req->ttft_timeout_ms)
        c->ttft_timer = loop_timer_add(u->loop, req->ttft_timeout_ms, ttft_fire, c);
    if (out) *out = c;
    return 0;
}

/* No callback runs for call after this returns. Inside one of the call's own
 * callbacks the transfer is aborted when the callback returns. */
void upstream_call_cancel(upstream_call_t *c)
{
    if (!c || c->canceled) return;
    c->canceled = true;
    if (c->add_timer) { /* never reached curl */
        call_release(c);
        return;
    }
    if (c->in_cb || c->u->depth) {
        /* curl is on the stack: it may not be re-entered; reap afterwards. */
        c->u->n_deferred++;
        return;
    }
    curl_multi_remove_handle(c->u->multi, c->easy);
    call_release(c);
}
