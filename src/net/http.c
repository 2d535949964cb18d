/* http.c — HTTP/1.1 server on the event loop, parsing with llhttp.
 *
 * Threads: one worker per thread, each with its own loop and its own listening
 * socket bound with SO_REUSEPORT to the same port, so the kernel spreads new
 * connections and a connection never leaves the worker that accepted it.
 *
 * A connection reads into its input buffer and feeds llhttp. on_message_complete
 * pauses the parser, so at most one request is being handled per connection; its
 * response is written (directly with sendmsg when the output queue is empty, else
 * queued) and once the response has ended and the output is flushed, parsing
 * resumes on the bytes that followed: pipelined requests are answered in order.
 *
 * Lifetimes: a conn outlives its socket while the handler still owns its response
 * (the socket is closed on client disconnect, the conn is freed when the handler
 * finishes the response). Frees are deferred while a conn callback is on the stack
 * (conn->busy), so the handler may finish the response from inside the abort
 * callback.
 *
 * Drain: http_server_stop() writes an eventfd every worker watches; each worker then
 * closes its listener and idle connections, answers in-flight requests with
 * Connection: close, force-closes what is left after drain_ms, and stops its loop
 * when no connection is left.
 */
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

#define HTTP_MAX_HEADERS    100
#define HTTP_READ_CHUNK     16384
#define HTTP_PIPELINE_CAP   65536        /* unparsed bytes held while a request runs */
#define HTTP_STREAM_OUT_CAP (1u << 20)   /* queued output before stream writes fail */
#define HTTP_OUT_MAX        (256u << 20) /* absolute cap on one conn's output queue */
#define HTTP_RES_HDR_MAX    16384
#define HTTP_LINGER_MS      2000
#define HTTP_FORCE_GRACE_MS 1000
#define HTTP_KEEP_BUF       (256u << 10) /* larger per-conn buffers are freed between requests */
#define HTTP_RATE_WINDOW_MS 5000         /* a body's minimum rate is checked per window */
#define HTTP_ACCEPT_MIN_MS  10           /* first pause after accept runs out of fds */
#define HTTP_ACCEPT_MAX_MS  1000         /* longest pause (doubling from the first) */
#define HTTP_ACCEPT_LOG_MS  1000         /* accept errors are logged at most this often */

typedef enum {
    CS_IDLE,    /* between requests */
    CS_HEAD,    /* reading a request head */
    CS_BODY,    /* reading a request body */
    CS_HANDLER, /* request dispatched, response not finished */
    CS_LINGER,  /* output flushed and write side shut; discarding input */
} conn_state_t;

typedef struct hdr_off {
    uint32_t n_off, n_len, v_off, v_len; /* offsets into conn->hb */
} hdr_off_t;

typedef struct conn conn_t;
typedef struct worker worker_t;

struct http_res {
    conn_t *conn;
    bool active;       /* owned by the handler (not finished yet) */
    bool started;      /* head written */
    bool chunked;      /* chunked transfer encoding in use */
    bool aborted;      /* client went away */
    bool abort_called; /* abort callback ran (or was due with none set) */
    void (*abort_fn)(void *arg);
    void *abort_arg;
    buf_t headers; /* extra "Name: value\r\n" lines, capped */
};

struct conn {
    worker_t *w;
    conn_t *prev, *next; /* worker's list */
    int fd;              /* -1 once closed */
    unsigned events;     /* current loop interest */
    conn_state_t state;
    llhttp_t parser;
    buf_t in; /* received bytes; [in_off, len) not parsed yet */
    size_t in_off;
    buf_t hb; /* URL + NUL, then header names and values */
    hdr_off_t hoff[HTTP_MAX_HEADERS];
    http_header_t hdrs[HTTP_MAX_HEADERS];
    size_t n_hdr;
    int hlast;           /* 0 none, 1 in a field, 2 in a value */
    size_t header_bytes; /* URL + header bytes of the current request */
    buf_t body;
    int err_status; /* set by a parser callback on a cap */
    bool keep_alive;
    bool http10;
    bool is_head;
    bool close_after; /* close once the output is flushed */
    bool busy;        /* a conn callback is on the stack: defer the free */
    bool parsing;     /* process_input is on the stack: do not re-enter it */
    buf_t out;        /* queued output; [out_off, len) not sent */
    size_t out_off;
    buf_t head; /* scratch for response heads */
    uint64_t timer;
    uint64_t resume_timer; /* parse pipelined input on the next iteration */
    uint64_t abort_timer;  /* deliver the abort callback after a failed write */
    uint64_t flush_timer;  /* send queued stream output at the end of this iteration */
    uint64_t last_read_ms;
    uint64_t rx_bytes;      /* bytes received on this conn */
    uint64_t body_start_ms; /* the current request's head completed (body reading) */
    uint64_t win_start_ms;  /* start of the current body-rate window */
    uint64_t win_rx;        /* rx_bytes at the start of that window */
    http_req_t req;
    http_res_t res;
    char peer[64];
};

struct worker {
    http_server_t *srv;
    int idx;
    loop_t *loop;
    int lfd;
    pthread_t thr;
    void *ctx;
    conn_t *conns; /* every conn not yet freed */
    size_t n_open; /* conns with an open socket */
    bool draining;
    bool forced;
    uint64_t drain_timer;
    uint64_t accept_timer;      /* resumes accepting after a pause */
    uint32_t accept_backoff_ms; /* current pause; 0 when accepting normally */
};

struct http_server {
    http_server_opts_t o;
    char host[64];
    int port;
    int stopfd; /* eventfd written by http_server_stop */
    int n;
    worker_t *w;
};

static const llhttp_settings_t *parser_settings(void);
static void conn_io(loop_t *loop, int fd, unsigned events, void *arg);
static void process_input(conn_t *c);
static void conn_fail(conn_t *c, int status);

/* ---------------------------------------------------------------- small helpers */

static const char *status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return s < 300 ? "OK" : s < 500 ? "Client Error" : "Server Error";
    }
}

/* Appends the decimal form of v without printf (this runs for every response). */
static void put_u64(buf_t *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

/* Writes "<hex len>\r\n" into out[20]; returns its length. */
static int chunk_head(char *out, uint64_t v)
{
    char tmp[20];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    int n = (int)sizeof tmp - i;
    memcpy(out, tmp + i, (size_t)n);
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

/* (Re)arms the conn's single timer. */
static void conn_timer_fn(loop_t *loop, void *arg);
static void conn_set_timer(conn_t *c, uint64_t ms)
{
    loop_t *l = c->w->loop;
    loop_timer_del(l, c->timer);
    c->timer = ms ? loop_timer_add(l, ms, conn_timer_fn, c) : 0;
}

static void conn_update_interest(conn_t *c)
{
    if (c->fd < 0) return;
    unsigned ev = 0;
    bool pending_out = c->out.len > c->out_off;
    /* Stop reading while the unparsed input is at its cap (a request is running or
     * output is waiting); EOF is still reported through LOOP_HUP. */
    if (c->in.len - c->in_off < HTTP_PIPELINE_CAP) ev |= LOOP_READ;
    if (pending_out) ev |= LOOP_WRITE;
    if (ev != c->events) {
        loop_io_mod(c->w->loop, c->fd, ev);
        c->events = ev;
    }
}

/* ---------------------------------------------------------------- conn lifetime */

static void worker_check_drained(worker_t *w);

/* Makes a conn for an accepted socket and watches it. Returns NULL if the loop
 * refuses the fd (the caller closes it). */
static conn_t *conn_new(worker_t *w, int fd, const struct sockaddr_storage *ss)
{
    const http_server_opts_t *o = &w->srv->o;
    conn_t *c = mem_calloc(1, sizeof *c);
    c->w = w;
    c->fd = fd;
    buf_init(&c->in, HTTP_PIPELINE_CAP + HTTP_READ_CHUNK);
    buf_init(&c->hb, o->max_header_bytes + 64);
    buf_init(&c->body, o->max_body_bytes);
    buf_init(&c->out, HTTP_OUT_MAX);
    buf_init(&c->head, HTTP_RES_HDR_MAX + 512);
    buf_init(&c->res.headers, HTTP_RES_HDR_MAX);
    c->res.conn = c;
    llhttp_init(&c->parser, HTTP_REQUEST, parser_settings());
    c->parser.data = c;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    c->events = LOOP_READ;
    if (loop_io_add(w->loop, fd, LOOP_READ, conn_io, c) < 0) {
        buf_deinit(&c->in);
        mem_free(c);
        return NULL;
    }
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->n_open++;
    c->state = CS_IDLE;
    uint32_t first =
        o->header_timeout_ms < o->idle_timeout_ms ? o->header_timeout_ms : o->idle_timeout_ms;
    conn_set_timer(c, first ? first : o->idle_timeout_ms);
    return c;
}

/* Closes the socket (the conn itself may live on while the handler owns res). */
static void conn_close(conn_t *c)
{
    if (c->fd < 0) return;
    loop_io_del(c->w->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    c->w->n_open--;
    loop_timer_del(c->w->loop, c->timer);
    c->timer = 0;
    loop_timer_del(c->w->loop, c->resume_timer);
    c->resume_timer = 0;
    loop_timer_del(c->w->loop, c->flush_timer);
    c->flush_timer = 0;
}

/* Frees c once its socket is closed, the handler has finished and no conn callback
 * is on the stack. */
static void conn_maybe_free(conn_t *c)
{
    if (c->fd >= 0 || c->res.active || c->busy) return;
    worker_t *w = c->w;
    loop_timer_del(w->loop, c->abort_timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    buf_deinit(&c->in);
    buf_deinit(&c->hb);
    buf_deinit(&c->body);
    buf_deinit(&c->out);
    buf_deinit(&c->head);
    buf_deinit(&c->res.headers);
    mem_free(c);
    worker_check_drained(w);
}

/* Runs the handler's abort callback once, if its response is still open. */
static void conn_notify_abort(conn_t *c)
{
    if (!c->res.active || c->res.abort_called) return;
    c->res.abort_called = true;
    void (*fn)(void *) = c->res.abort_fn;
    c->res.abort_fn = NULL;
    if (fn) fn(c->res.abort_arg);
}

static void conn_abort_fn(loop_t *loop, void *arg)
{
    conn_t *c = arg;
    c->abort_timer = 0;
    c->busy = true;
    conn_notify_abort(c);
    c->busy = false;
    conn_maybe_free(c);
}

/* The client is gone (EOF, reset). A running handler learns it through its abort
 * callback (if any) and SY_ECLOSED on later writes. */
static void conn_hangup(conn_t *c)
{
    conn_close(c);
    if (c->res.active) c->res.aborted = true;
    conn_notify_abort(c);
}

/* ---------------------------------------------------------------- output */

/* Sends iov now if nothing is queued, queues what the socket did not take. 0, or
 * SY_ECLOSED if the socket is closed or broke (then the conn is closed, not freed),
 * or SY_ETOOBIG if the queue cap is reached. */
static int conn_write(conn_t *c, struct iovec *iov, int n)
{
    if (c->fd < 0) return SY_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t sent = 0;
    if (c->out.len == c->out_off) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                /* The writer gets SY_ECLOSED now and the abort callback from the
                 * loop, never from inside its own write. */
                conn_close(c);
                if (c->res.active) {
                    c->res.aborted = true;
                    if (!c->abort_timer)
                        c->abort_timer = loop_timer_add(c->w->loop, 0, conn_abort_fn, c);
                }
                return SY_ECLOSED;
            }
            r = 0;
        }
        sent = (size_t)r;
        if (sent == total) return 0;
        if (c->out_off) {
            buf_reset(&c->out);
            c->out_off = 0;
        }
    }
    if (c->out.len - c->out_off + (total - sent) > c->out.max) return SY_ETOOBIG;
    if (c->out_off && c->out_off == c->out.len) {
        buf_reset(&c->out);
        c->out_off = 0;
    }
    if (c->out_off > c->out.len / 2 || c->out.len + (total - sent) > c->out.max) {
        buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        if (buf_append(&c->out, (const char *)iov[i].iov_base + sent, len - sent))
            return SY_ETOOBIG;
        sent = 0;
    }
    conn_update_interest(c);
    return 0;
}

static void conn_resume_fn(loop_t *loop, void *arg)
{
    conn_t *c = arg;
    c->resume_timer = 0;
    process_input(c);
}

/* Called when the response has ended and all output is flushed. */
static void conn_after_response(conn_t *c)
{
    if (c->fd < 0) return;
    if (c->close_after) {
        /* Lingering close: shut our side, discard what the client still sends so
         * the kernel does not reset the connection before it read the answer. */
        shutdown(c->fd, SHUT_WR);
        c->state = CS_LINGER;
        buf_reset(&c->in);
        c->in_off = 0;
        conn_update_interest(c);
        conn_set_timer(c, HTTP_LINGER_MS);
        return;
    }
    /* Buffers keep their capacity across requests (no allocation per request),
     * except after an unusually large one: idle keep-alive connections must not
     * each hold megabytes. */
    if (c->body.cap > HTTP_KEEP_BUF) buf_deinit(&c->body);
    if (c->out.cap > HTTP_KEEP_BUF && c->out.len == 0) buf_deinit(&c->out);
    if (c->parsing) return; /* the parse loop on the stack goes on by itself */
    if (c->in.len > c->in_off) {
        /* A pipelined request is waiting: dispatch it from the loop, not from
         * inside whatever callback finished this response. */
        if (!c->resume_timer) c->resume_timer = loop_timer_add(c->w->loop, 0, conn_resume_fn, c);
        return;
    }
    process_input(c);
}

/* Flushes queued output on writability. */
static void conn_flush(conn_t *c)
{
    while (c->out.len > c->out_off) {
        ssize_t r = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            conn_hangup(c);
            return;
        }
        c->out_off += (size_t)r;
    }
    if (c->out.len == c->out_off) {
        buf_reset(&c->out);
        c->out_off = 0;
    }
    conn_update_interest(c);
    if (c->out.len == 0 && !c->res.active) conn_after_response(c);
}

static void conn_flush_fn(loop_t *loop, void *arg)
{
    conn_t *c = arg;
    c->flush_timer = 0;
    c->busy = true;
    if (c->fd >= 0) conn_flush(c);
    c->busy = false;
    conn_maybe_free(c);
}

/* Queues stream output and sends it once at the end of this loop iteration (a 0 ms
 * timer runs after the iteration's I/O callbacks), so the many small writes one
 * upstream read turns into (one per SSE chunk) leave in one send. 0, SY_ECLOSED or
 * SY_ETOOBIG. */
static int conn_queue(conn_t *c, struct iovec *iov, int n)
{
    if (c->fd < 0) return SY_ECLOSED;
    bool was_empty = c->out.len == c->out_off;
    if (was_empty && c->out_off) {
        buf_reset(&c->out);
        c->out_off = 0;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (c->out.len + total > c->out.max) {
        buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    if (buf_reserve(&c->out, total)) return SY_ETOOBIG;
    for (int i = 0; i < n; i++)
        buf_append(&c->out, iov[i].iov_base, iov[i].iov_len);
    /* Output already waiting means a flush is due anyway (timer or writability). */
    if (was_empty && !c->flush_timer)
        c->flush_timer = loop_timer_add(c->w->loop, 0, conn_flush_fn, c);
    return 0;
}

/* ---------------------------------------------------------------- responses */

/* The handler finished res: release it, or set up the next request. */
static void res_done(conn_t *c)
{
    http_res_t *res = &c->res;
    res->active = false;
    res->abort_fn = NULL;
    buf_reset(&res->headers);
    c->state = CS_IDLE;
    if (c->fd < 0) {
        conn_maybe_free(c);
        return;
    }
    if (c->out.len == c->out_off) conn_after_response(c);
}

/* Writes the status line and headers into c->head. */
static void build_head(conn_t *c, int status, const char *ctype, bool has_len, size_t len)
{
    buf_t *h = &c->head;
    buf_reset(h);
    if (!c->keep_alive || c->w->draining) c->close_after = true;
    buf_append(h, "HTTP/1.1 ", 9);
    put_u64(h, (uint64_t)status);
    buf_putc(h, ' ');
    buf_puts(h, status_text(status));
    buf_append(h, "\r\n", 2);
    if (ctype) {
        buf_append(h, "Content-Type: ", 14);
        buf_puts(h, ctype);
        buf_append(h, "\r\n", 2);
    }
    if (status == 204 || status == 304 || status < 200) {
        /* These carry no body and no length. */
    } else if (has_len) {
        buf_append(h, "Content-Length: ", 16);
        put_u64(h, len);
        buf_append(h, "\r\n", 2);
    } else if (!c->http10) {
        buf_append(h, "Transfer-Encoding: chunked\r\n", 28);
        c->res.chunked = true;
    } else {
        c->close_after = true; /* HTTP/1.0 stream: the end is the close */
    }
    if (c->res.headers.len) buf_append(h, c->res.headers.data, c->res.headers.len);
    if (c->close_after)
        buf_append(h, "Connection: close\r\n", 19);
    else if (c->http10)
        buf_append(h, "Connection: keep-alive\r\n", 24);
    buf_append(h, "\r\n", 2);
    c->res.started = true;
}

void http_res_header(http_res_t *res, const char *name, const char *value)
{
    if (!res->active || res->started) return;
    /* Header injection guard: values with CR or LF are dropped. */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return;
    buf_t *b = &res->headers;
    size_t mark = b->len;
    if (buf_puts(b, name) || buf_append(b, ": ", 2) || buf_puts(b, value) ||
        buf_append(b, "\r\n", 2)) {
        b->len = mark;
        if (b->data) b->data[mark] = 0;
    }
}

/* Sends a whole response with Content-Length and finishes res. 0 or SY_ECLOSED
 * (client gone; res is released either way). */
int http_res_send(http_res_t *res, int status, const char *content_type, const void *body,
                  size_t len)
{
    conn_t *c = res->conn;
    if (!res->active) return SY_EINVAL;
    int rc = SY_ECLOSED;
    if (c->fd >= 0 && !res->started) {
        build_head(c, status, content_type, true, len);
        struct iovec iov[2] = {{c->head.data, c->head.len}, {(void *)body, len}};
        bool bodyless = c->is_head || !len || status == 204 || status == 304;
        rc = conn_write(c, iov, bodyless ? 1 : 2);
        if (rc == SY_ETOOBIG) {
            conn_close(c);
            rc = SY_ECLOSED;
        }
    }
    res_done(c);
    return rc;
}

int http_res_stream_begin(http_res_t *res, int status, const char *content_type)
{
    conn_t *c = res->conn;
    if (!res->active || res->started) return SY_EINVAL;
    if (c->fd < 0) return SY_ECLOSED;
    build_head(c, status, content_type, false, 0);
    struct iovec iov[1] = {{c->head.data, c->head.len}};
    return conn_queue(c, iov, 1);
}

int http_res_stream_write(http_res_t *res, const void *p, size_t len)
{
    conn_t *c = res->conn;
    if (!res->active || !res->started) return SY_EINVAL;
    if (c->fd < 0) return SY_ECLOSED;
    if (!len || c->is_head) return 0;
    if (c->out.len - c->out_off > HTTP_STREAM_OUT_CAP) return SY_ETOOBIG;
    if (!res->chunked) {
        struct iovec iov[1] = {{(void *)p, len}};
        return conn_queue(c, iov, 1);
    }
    char hex[24];
    int hn = chunk_head(hex, len);
    struct iovec iov[3] = {{hex, (size_t)hn}, {(void *)p, len}, {"\r\n", 2}};
    return conn_queue(c, iov, 3);
}

int http_res_stream_end(http_res_t *res)
{
    conn_t *c = res->conn;
    if (!res->active) return SY_EINVAL;
    int rc = SY_ECLOSED;
    if (c->fd >= 0 && res->started) {
        rc = 0;
        if (res->chunked && !c->is_head) {
            struct iovec iov[1] = {{"0\r\n\r\n", 5}};
            rc = conn_queue(c, iov, 1);
        }
    }
    res_done(c);
    return rc;
}

void http_res_close(http_res_t *res)
{
    conn_t *c = res->conn;
    if (!res->active) return;
    if (c->fd >= 0) {
        /* Hand over what is queued, then close (FIN) before the body is complete:
         * the client sees EOF inside the body, i.e. a cut. */
        if (c->out.len > c->out_off)
            (void)!send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        conn_close(c);
    }
    res_done(c);
}

void http_res_on_abort(http_res_t *res, void (*fn)(void *arg), void *arg)
{
    res->abort_fn = fn;
    res->abort_arg = arg;
}

loop_t *http_res_loop(http_res_t *res)
{
    return res->conn->w->loop;
}

bool http_res_aborted(const http_res_t *res)
{
    return res->aborted || res->conn->fd < 0;
}

const char *http_req_header(const http_req_t *req, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len == n && !strncasecmp(h->name, name, n)) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- errors */

static const char *status_code_word(int status)
{
    switch (status) {
    case 408:
        return "request_timeout";
    case 413:
        return "payload_too_large";
    case 431:
        return "request_header_fields_too_large";
    default:
        return "bad_request";
    }
}

/* Answers a protocol error itself (400/408/413/431) with an OpenAI-shaped error
 * body and closes the connection after the answer is flushed. */
static void conn_fail(conn_t *c, int status)
{
    if (c->fd < 0) return;
    const char *msg = status == 408   ? "request not received in time"
                      : status == 413 ? "request body exceeds the size limit"
                      : status == 431 ? "request headers exceed the size limit"
                                      : "malformed HTTP request";
    char body[320];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                     "\"param\":null,\"code\":\"%s\"}}",
                     msg, status_code_word(status));
    c->keep_alive = false;
    c->is_head = false;
    c->http10 = false;
    c->res.active = true; /* borrow the response machinery */
    c->res.started = false;
    c->res.chunked = false;
    buf_reset(&c->res.headers);
    http_res_send(&c->res, status, "application/json", body, (size_t)n);
}

/* ---------------------------------------------------------------- body limits */

/* When the body-reading conn c must next be looked at: the earliest of its
 * deadline (body_timeout_ms from the end of the head), the end of its rate window,
 * and idle_timeout_ms after its last byte. */
static uint64_t body_next_check(const conn_t *c, uint64_t now)
{
    const http_server_opts_t *o = &c->w->srv->o;
    uint64_t t = c->body_start_ms + o->body_timeout_ms;
    uint64_t idle = c->last_read_ms + o->idle_timeout_ms;
    if (idle < t) t = idle;
    if (o->body_min_rate) {
        uint64_t win = c->win_start_ms + HTTP_RATE_WINDOW_MS;
        if (win < t) t = win;
    }
    return t > now ? t : now + 1;
}

/* The body timer: a body that is not complete within body_timeout_ms, that
 * averaged under body_min_rate bytes/s over the last window, or that stalled for
 * idle_timeout_ms gets a 408 and the connection is closed. Each byte no longer
 * extends a body's life, so a client trickling bytes cannot hold a body buffer
 * (up to max_body_bytes) for ever. */
static void conn_check_body(conn_t *c, uint64_t now)
{
    const http_server_opts_t *o = &c->w->srv->o;
    if (now >= c->body_start_ms + o->body_timeout_ms ||
        now >= c->last_read_ms + o->idle_timeout_ms) {
        conn_fail(c, 408);
        return;
    }
    if (o->body_min_rate && now >= c->win_start_ms + HTTP_RATE_WINDOW_MS) {
        uint64_t want = (uint64_t)o->body_min_rate * (now - c->win_start_ms) / 1000;
        if (c->rx_bytes - c->win_rx < want) {
            conn_fail(c, 408);
            return;
        }
        c->win_start_ms = now;
        c->win_rx = c->rx_bytes;
    }
    conn_set_timer(c, body_next_check(c, now) - now);
}

/* ---------------------------------------------------------------- parser callbacks */

static int header_room(conn_t *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->w->srv->o.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    c->state = CS_HEAD;
    buf_reset(&c->hb);
    buf_reset(&c->body);
    c->n_hdr = 0;
    c->hlast = 0;
    c->header_bytes = 0;
    c->req.start_us = clock_mono_us();
    conn_set_timer(c, c->w->srv->o.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (header_room(c, n)) return -1;
    buf_append(&c->hb, at, n);
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->req.path = NULL;
    buf_putc(&c->hb, 0);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (header_room(c, n)) return -1;
    if (c->hlast != 1) {
        if (c->n_hdr == HTTP_MAX_HEADERS) {
            c->err_status = 431;
            return -1;
        }
        hdr_off_t *h = &c->hoff[c->n_hdr++];
        h->n_off = (uint32_t)c->hb.len;
        h->n_len = h->v_len = 0;
        h->v_off = (uint32_t)c->hb.len;
        c->hlast = 1;
    }
    buf_append(&c->hb, at, n);
    c->hoff[c->n_hdr - 1].n_len += (uint32_t)n;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (header_room(c, n)) return -1;
    hdr_off_t *h = &c->hoff[c->n_hdr - 1];
    if (c->hlast != 2) {
        h->v_off = (uint32_t)c->hb.len;
        c->hlast = 2;
    }
    buf_append(&c->hb, at, n);
    h->v_len += (uint32_t)n;
    return 0;
}

static bool hdr_is(const conn_t *c, const hdr_off_t *h, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    return h->n_len == nl && !strncasecmp(c->hb.data + h->n_off, name, nl) && h->v_len == vl &&
           !strncasecmp(c->hb.data + h->v_off, value, vl);
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->w->srv->o.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    c->state = CS_BODY;
    uint64_t now = loop_now_ms(c->w->loop);
    c->last_read_ms = now;
    if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length)) {
        /* A body follows: from here the body limits time it, not the head's. */
        c->body_start_ms = c->win_start_ms = now;
        c->win_rx = c->rx_bytes;
        conn_set_timer(c, body_next_check(c, now) - now);
    }
    if (p->http_major == 1 && p->http_minor >= 1 &&
        ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length))) {
        for (size_t i = 0; i < c->n_hdr; i++)
            if (hdr_is(c, &c->hoff[i], "expect", "100-continue")) {
                struct iovec iov[1] = {{"HTTP/1.1 100 Continue\r\n\r\n", 25}};
                conn_write(c, iov, 1);
                break;
            }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (buf_append(&c->body, at, n)) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    c->is_head = p->method == HTTP_HEAD;
    return HPE_PAUSED;
}

static llhttp_settings_t g_settings;
static pthread_once_t g_settings_once = PTHREAD_ONCE_INIT;

static void settings_init(void)
{
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = on_message_begin;
    g_settings.on_url = on_url;
    g_settings.on_url_complete = on_url_complete;
    g_settings.on_header_field = on_header_field;
    g_settings.on_header_value = on_header_value;
    g_settings.on_headers_complete = on_headers_complete;
    g_settings.on_body = on_body;
    g_settings.on_message_complete = on_message_complete;
}

static const llhttp_settings_t *parser_settings(void)
{
    pthread_once(&g_settings_once, settings_init);
    return &g_settings;
}

/* ---------------------------------------------------------------- dispatch */

/* Fills c->req from the parsed pieces and calls the handler. */
static void dispatch(conn_t *c)
{
    worker_t *w = c->w;
    loop_timer_del(w->loop, c->timer);
    c->timer = 0;
    c->state = CS_HANDLER;
    http_req_t *r = &c->req;
    char *url = c->hb.data ? c->hb.data : (char *)"";
    char *q = strchr(url, '?');
    if (q) *q++ = 0;
    r->method = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->path = url;
    r->query = q ? q : "";
    for (size_t i = 0; i < c->n_hdr; i++) {
        const hdr_off_t *h = &c->hoff[i];
        c->hdrs[i] =
            (http_header_t){c->hb.data + h->n_off, h->n_len, c->hb.data + h->v_off, h->v_len};
    }
    r->headers = c->hdrs;
    r->n_headers = c->n_hdr;
    r->body = c->body.data ? c->body.data : "";
    r->body_len = c->body.len;
    r->peer = c->peer;
    http_res_t *res = &c->res;
    res->active = true;
    res->started = res->chunked = res->aborted = res->abort_called = false;
    res->abort_fn = NULL;
    w->srv->o.handler(r, res, w->ctx);
}

/* Parses buffered input and dispatches complete requests, one at a time, while
 * no response is pending and the output queue is empty. */
static void process_input(conn_t *c)
{
    bool was_busy = c->busy;
    c->busy = true;
    c->parsing = true;
    while (c->fd >= 0 && !c->res.active && !c->close_after && c->out.len == c->out_off &&
           c->in_off < c->in.len) {
        const char *p = c->in.data + c->in_off;
        size_t n = c->in.len - c->in_off;
        llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
        if (e == HPE_OK) {
            c->in_off = c->in.len;
            break;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            c->in_off = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data);
            if (e == HPE_PAUSED_UPGRADE) c->keep_alive = false;
            llhttp_resume(&c->parser);
            dispatch(c);
            continue;
        }
        conn_fail(c, c->err_status ? c->err_status : 400);
        break;
    }
    if (c->in_off == c->in.len) {
        buf_reset(&c->in);
        c->in_off = 0;
    }
    if (c->fd >= 0 && !c->res.active && c->state == CS_IDLE && !c->close_after &&
        c->out.len == c->out_off)
        conn_set_timer(c, c->w->srv->o.idle_timeout_ms);
    conn_update_interest(c);
    c->parsing = false;
    c->busy = was_busy;
    if (!was_busy) conn_maybe_free(c);
}

/* Reads what the socket has. Returns 0, or 1 if the peer closed (or failed). */
static int conn_read(conn_t *c)
{
    for (int i = 0; i < 4; i++) {
        if (c->in_off && c->in_off == c->in.len) {
            buf_reset(&c->in);
            c->in_off = 0;
        } else if (c->in_off > HTTP_PIPELINE_CAP / 2) {
            buf_consume(&c->in, c->in_off);
            c->in_off = 0;
        }
        /* Read into the room the buffer already has; start at 4 KiB and let a
         * read that fills it grow it (doubling), so an idle keep-alive conn with
         * small requests holds 4 KiB, not a full read chunk. */
        size_t room = c->in.cap > c->in.len + 1 ? c->in.cap - c->in.len - 1 : 0;
        if (room < 4095) room = c->in.cap ? c->in.cap : 4095;
        if (room > HTTP_READ_CHUNK) room = HTTP_READ_CHUNK;
        if (room > c->in.max - c->in.len) room = c->in.max - c->in.len;
        if (c->in.len - c->in_off >= HTTP_PIPELINE_CAP) return 0;
        if (!room) return 0;
        buf_reserve(&c->in, room);
        ssize_t r = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (r > 0) {
            c->in.len += (size_t)r;
            c->in.data[c->in.len] = 0;
            c->rx_bytes += (uint64_t)r;
            c->last_read_ms = loop_now_ms(c->w->loop);
            if ((size_t)r < room) return 0;
            continue;
        }
        if (r == 0) return 1;
        if (errno == EAGAIN || errno == EINTR) return 0;
        return 1;
    }
    return 0;
}

static void conn_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    conn_t *c = arg;
    c->busy = true;
    if (events & LOOP_WRITE) conn_flush(c);
    if (c->fd >= 0 && (events & (LOOP_READ | LOOP_HUP))) {
        if (c->state == CS_LINGER) {
            char tmp[4096];
            ssize_t r;
            while ((r = recv(c->fd, tmp, sizeof tmp, 0)) > 0) {
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) conn_close(c);
        } else {
            bool full = c->in.len - c->in_off >= HTTP_PIPELINE_CAP;
            int eof = conn_read(c);
            if (full && (events & LOOP_HUP)) eof = 1;
            if (eof) {
                conn_hangup(c);
            } else {
                conn_update_interest(c);
                if (!c->res.active) process_input(c);
            }
        }
    }
    c->busy = false;
    conn_maybe_free(c);
}

/* The conn's timer: header/body read timeout (408), idle close, linger end. */
static void conn_timer_fn(loop_t *loop, void *arg)
{
    conn_t *c = arg;
    c->timer = 0;
    if (c->fd < 0) return;
    c->busy = true;
    switch (c->state) {
    case CS_IDLE:
        if (c->in.len > c->in_off)
            conn_fail(c, 408);
        else
            conn_close(c);
        break;
    case CS_HEAD:
        conn_fail(c, 408);
        break;
    case CS_BODY:
        conn_check_body(c, loop_now_ms(loop));
        break;
    case CS_HANDLER:
        break;
    case CS_LINGER:
        conn_close(c);
        break;
    }
    c->busy = false;
    conn_maybe_free(c);
}

/* ---------------------------------------------------------------- workers */

static void worker_check_drained(worker_t *w)
{
    if (w->draining && !w->conns) loop_stop(w->loop);
}

/* Drain limit reached: close every connection (handlers get their abort callback),
 * then give handlers a short grace to finish before the loop stops regardless. */
static void force_stop_fn(loop_t *loop, void *arg)
{
    worker_t *w = arg;
    loop_stop(loop);
    (void)w;
}

static void drain_timer_fn(loop_t *loop, void *arg)
{
    worker_t *w = arg;
    w->drain_timer = 0;
    w->forced = true;
    /* Pin every conn first: an abort callback may finish other responses, and no
     * conn may be freed under this walk. Then free in a last pass. */
    for (conn_t *c = w->conns; c; c = c->next)
        c->busy = true;
    for (conn_t *c = w->conns; c; c = c->next)
        if (c->fd >= 0) conn_hangup(c);
    for (conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        c->busy = false;
        conn_maybe_free(c);
    }
    if (w->conns) loop_timer_add(loop, HTTP_FORCE_GRACE_MS, force_stop_fn, w);
}

static void worker_begin_drain(worker_t *w)
{
    if (w->draining) return;
    w->draining = true;
    loop_io_del(w->loop, w->srv->stopfd);
    loop_timer_del(w->loop, w->accept_timer);
    w->accept_timer = 0;
    if (w->lfd >= 0) {
        loop_io_del(w->loop, w->lfd);
        close(w->lfd);
        w->lfd = -1;
    }
    for (conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->fd >= 0 && !c->res.active && c->state == CS_IDLE && c->out.len == c->out_off) {
            conn_close(c);
            conn_maybe_free(c);
        }
    }
    if (w->conns) w->drain_timer = loop_timer_add(w->loop, w->srv->o.drain_ms, drain_timer_fn, w);
    worker_check_drained(w);
}

static void stop_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    worker_begin_drain(arg);
}

static void accept_io(loop_t *loop, int fd, unsigned events, void *arg);

/* Logs an accept error, at most once per HTTP_ACCEPT_LOG_MS for the whole process
 * (every worker hits the same limit at once), with the count of those not logged. */
static void accept_log(int err, uint32_t pause_ms)
{
    static _Atomic uint64_t last_ms;
    static _Atomic uint64_t suppressed;
    uint64_t now = clock_mono_ms(), prev = atomic_load(&last_ms);
    if (prev && now - prev < HTTP_ACCEPT_LOG_MS) {
        atomic_fetch_add(&suppressed, 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&last_ms, &prev, now)) {
        atomic_fetch_add(&suppressed, 1);
        return;
    }
    uint64_t n = atomic_exchange(&suppressed, 0);
    log_warn("http: accept: %s; not accepting for %u ms (%" PRIu64
             " more accept errors since the last message)",
             strerror(err), pause_ms, n);
}

static void accept_resume_fn(loop_t *loop, void *arg)
{
    worker_t *w = arg;
    w->accept_timer = 0;
    if (w->draining || w->lfd < 0) return;
    loop_io_add(loop, w->lfd, LOOP_READ, accept_io, w);
    accept_io(loop, w->lfd, LOOP_READ, w);
}

/* Out of descriptors or kernel memory: the pending connection stays in the backlog
 * and the listener stays readable, so retrying at once would spin. Stop watching
 * the listener and retry after a pause that doubles while the error persists. */
static void accept_pause(worker_t *w, int err)
{
    uint32_t b = w->accept_backoff_ms ? w->accept_backoff_ms * 2 : HTTP_ACCEPT_MIN_MS;
    w->accept_backoff_ms = b > HTTP_ACCEPT_MAX_MS ? HTTP_ACCEPT_MAX_MS : b;
    accept_log(err, w->accept_backoff_ms);
    loop_io_del(w->loop, w->lfd);
    w->accept_timer = loop_timer_add(w->loop, w->accept_backoff_ms, accept_resume_fn, w);
}

static void accept_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 64 && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                accept_pause(w, errno);
                return;
            }
            if (errno != EAGAIN) accept_log(errno, 0);
            break;
        }
        w->accept_backoff_ms = 0;
        if (w->srv->o.max_conns_per_worker && w->n_open >= w->srv->o.max_conns_per_worker) {
            close(cfd);
            continue;
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!conn_new(w, cfd, &ss)) close(cfd);
    }
}

/* One worker's thread body: init, loop until drained, deinit. */
static void *worker_main(void *arg)
{
    worker_t *w = arg;
    http_server_t *s = w->srv;
    if (s->o.worker_init) w->ctx = s->o.worker_init(w->loop, w->idx, s->o.app);
    loop_io_add(w->loop, w->lfd, LOOP_READ, accept_io, w);
    loop_io_add(w->loop, s->stopfd, LOOP_READ, stop_io, w);
    loop_run(w->loop);
    /* Anything left was forced: close it before the application's state goes. */
    for (conn_t *c = w->conns; c; c = c->next)
        conn_close(c);
    if (s->o.worker_deinit) s->o.worker_deinit(w->ctx);
    while (w->conns) {
        conn_t *c = w->conns;
        c->res.active = false;
        c->busy = false;
        conn_maybe_free(c);
    }
    if (w->drain_timer) loop_timer_del(w->loop, w->drain_timer);
    log_thread_cleanup();
    return NULL;
}

/* ---------------------------------------------------------------- server */

/* Fills ss for host:port. 0 or SY_EINVAL. */
static int sock_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl,
                     int *fam)
{
    memset(ss, 0, sizeof *ss);
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    else if (!*host || !strcmp(host, "*"))
        host = "0.0.0.0";
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (void *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return SY_EINVAL;
        *sl = sizeof *a;
        *fam = AF_INET6;
    } else {
        struct sockaddr_in *a = (void *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return SY_EINVAL;
        *sl = sizeof *a;
        *fam = AF_INET;
    }
    return 0;
}

/* Binds a socket without SO_REUSEPORT to host:port and closes it: that bind fails
 * with EADDRINUSE while any process listens there, also one that set
 * SO_REUSEPORT itself (which would otherwise let a second switchyard join the port
 * silently and take half its connections). 0 or -errno. A second instance started
 * in the same instant as the first can still pass this check (the window between
 * the probe and the real binds); a service manager starts one at a time. */
static int probe_port(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fam;
    if (sock_addr(host, port, &ss, &sl, &fam)) return SY_EINVAL;
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT is no owner */
    int rc = bind(fd, (struct sockaddr *)&ss, sl) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Makes one SO_REUSEPORT listener on host:port. Returns fd or -errno. */
static int listen_on(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fam;
    if (sock_addr(host, port, &ss, &sl, &fam)) return SY_EINVAL;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Validates opts, binds one listener per worker (the first picks the port when
 * port is 0) and makes the loops. Returns owned server or NULL with *err and a
 * message in errbuf. */
http_server_t *http_server_new(const http_server_opts_t *opts, int *err, char *errbuf,
                               size_t errlen)
{
    if (!opts->handler || opts->n_workers < 1 || !opts->host) {
        *err = SY_EINVAL;
        snprintf(errbuf, errlen, "http: handler, host and n_workers >= 1 are required");
        return NULL;
    }
    http_server_t *s = mem_calloc(1, sizeof *s);
    s->o = *opts;
    if (!s->o.max_header_bytes) s->o.max_header_bytes = 16384;
    if (!s->o.max_body_bytes) s->o.max_body_bytes = 1 << 20;
    if (!s->o.header_timeout_ms) s->o.header_timeout_ms = 10000;
    if (!s->o.idle_timeout_ms) s->o.idle_timeout_ms = 60000;
    if (!s->o.body_timeout_ms) s->o.body_timeout_ms = 30000;
    snprintf(s->host, sizeof s->host, "%s", opts->host);
    s->o.host = s->host;
    s->n = opts->n_workers;
    s->w = mem_calloc((size_t)s->n, sizeof *s->w);
    s->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    for (int i = 0; i < s->n; i++)
        s->w[i].lfd = -1;
    int port = opts->port;
    int perr = port ? probe_port(s->host, port) : 0;
    if (perr) {
        *err = perr;
        if (perr == -EADDRINUSE)
            snprintf(errbuf, errlen,
                     "http: %s:%d is already in use by another process (another switchyard "
                     "or another server); stop it or choose another 'listen' address",
                     s->host, port);
        else
            snprintf(errbuf, errlen, "http: cannot listen on %s:%d: %s", s->host, port,
                     sy_strerror(perr));
        http_server_free(s);
        return NULL;
    }
    for (int i = 0; i < s->n; i++) {
        worker_t *w = &s->w[i];
        w->srv = s;
        w->idx = i;
        w->loop = loop_new();
        int fd = listen_on(s->host, port);
        if (fd < 0 || !w->loop) {
            *err = fd < 0 ? fd : -errno;
            snprintf(errbuf, errlen, "http: cannot listen on %s:%d: %s", s->host, port,
                     sy_strerror(*err));
            http_server_free(s);
            return NULL;
        }
        w->lfd = fd;
        if (i == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &sl);
            port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    s->port = port;
    return s;
}

int http_server_port(const http_server_t *srv)
{
    return srv->port;
}

/* Runs worker 0 on the calling thread and the others on their own threads; returns
 * when every worker has drained. */
int http_server_run(http_server_t *s)
{
    for (int i = 1; i < s->n; i++) {
        int e = pthread_create(&s->w[i].thr, NULL, worker_main, &s->w[i]);
        if (e) {
            for (int j = 1; j < i; j++)
                pthread_join(s->w[j].thr, NULL);
            return -e;
        }
    }
    worker_main(&s->w[0]);
    for (int i = 1; i < s->n; i++)
        pthread_join(s->w[i].thr, NULL);
    return 0;
}

void http_server_stop(http_server_t *s)
{
    uint64_t one = 1;
    ssize_t r = write(s->stopfd, &one, sizeof one);
    (void)r;
}

void http_server_free(http_server_t *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        worker_t *w = &s->w[i];
        if (w->lfd >= 0) close(w->lfd);
        loop_free(w->loop);
    }
    if (s->stopfd >= 0) close(s->stopfd);
    mem_free(s->w);
    mem_free(s);
}
