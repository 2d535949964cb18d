/* http.h — the HTTP/1.1 server (llhttp) on the event loop.
 *
 * Workers: the server runs n_workers threads, each with its own loop_t; a request is
 * handled entirely on the worker that accepted its connection. Per-worker state for
 * the application (an upstream client, scratch memory) is made by worker_init and
 * passed to every handler call on that worker.
 *
 * Requests: keep-alive, pipelined requests answered in order (the next request is
 * not dispatched until the current response has ended), chunked request bodies,
 * caps on header bytes and body bytes (431 / 413 answered by the server itself),
 * header-read, body and idle timeouts, 400 on malformed HTTP. The handler receives
 * a complete request (body fully read).
 *
 * Listening: the workers share one port through SO_REUSEPORT, but a port another
 * process already listens on is refused (EADDRINUSE), switchyard or not. Accept
 * errors from running out of descriptors or memory pause accepting with a backoff
 * (10 ms doubling to 1 s) and are logged at most once a second.
 *
 * Responses: the handler owns the http_res_t until it finishes it with
 * http_res_send() or http_res_stream_end(); it may finish it later, from another
 * callback on the same worker loop. If the client goes away first, the abort
 * callback (if set) runs, later writes return SY_ECLOSED, and the handler must still
 * finish the response (which then just releases it).
 *
 * Drain: http_server_stop() (async-signal-safe) stops accepting, lets in-flight
 * responses finish (up to drain_ms), closes idle connections, and makes
 * http_server_run() return.
 */
#ifndef SY_NET_HTTP_H
#define SY_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"

typedef struct http_header {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *value; /* not NUL-terminated */
    size_t value_len;
} http_header_t;

/* A complete request. All pointers stay valid until the response is finished. */
typedef struct http_req {
    const char *method; /* NUL-terminated, e.g. "POST" */
    const char *path;   /* NUL-terminated, without the query string */
    const char *query;  /* NUL-terminated, without '?'; "" if none */
    const http_header_t *headers;
    size_t n_headers;
    const char *body; /* NUL-terminated for convenience (not counted in body_len) */
    size_t body_len;
    uint64_t start_us; /* monotonic time the first byte of the request arrived */
    const char *peer;  /* "ip:port" of the client */
} http_req_t;

typedef struct http_res http_res_t;
typedef struct http_server http_server_t;

/* worker_ctx is what worker_init returned for this worker. */
typedef void (*http_handler_fn)(http_req_t *req, http_res_t *res, void *worker_ctx);

typedef struct http_server_opts {
    const char *host;           /* bind address, e.g. "127.0.0.1" */
    int port;                   /* 0 = ephemeral; see http_server_port() */
    int n_workers;              /* >= 1 */
    size_t max_header_bytes;    /* all header bytes of one request; 431 above */
    size_t max_body_bytes;      /* 413 above */
    uint32_t header_timeout_ms; /* time to receive a full request head */
    uint32_t idle_timeout_ms;   /* keep-alive idle connection close */
    uint32_t body_timeout_ms;   /* time to receive a whole body after its head (0 = 30000) */
    uint32_t body_min_rate;     /* bytes/s a body must average per 5 s window (0 = no check) */
    uint32_t drain_ms;          /* graceful drain limit on stop */
    size_t max_conns_per_worker;
    http_handler_fn handler;
    void *(*worker_init)(loop_t *loop, int worker_idx, void *app); /* may be NULL */
    void (*worker_deinit)(void *worker_ctx);                       /* may be NULL */
    void *app;                                                     /* passed to worker_init */
} http_server_opts_t;

/* Binds and listens (does not start threads). Returns owned server or NULL with
 * err set (-errno or SY_E*) and a message in errbuf; -EADDRINUSE when another
 * process (another switchyard included) listens on host:port. */
http_server_t *http_server_new(const http_server_opts_t *opts, int *err, char *errbuf,
                               size_t errlen);
/* The bound port (useful with port 0). */
int http_server_port(const http_server_t *srv);
/* Runs all workers; blocks until stopped and drained. 0 or negative error. */
int http_server_run(http_server_t *srv);
/* Async-signal-safe and thread-safe: begins graceful drain. */
void http_server_stop(http_server_t *srv);
void http_server_free(http_server_t *srv);

/* Case-insensitive header lookup; returns value (not NUL-terminated) or NULL. */
const char *http_req_header(const http_req_t *req, const char *name, size_t *len);

/* Adds a response header before the response starts (copied). */
void http_res_header(http_res_t *res, const char *name, const char *value);
/* Sends a complete response with Content-Length and finishes res. 0 or SY_ECLOSED. */
int http_res_send(http_res_t *res, int status, const char *content_type, const void *body,
                  size_t len);
/* Starts a chunked (streaming) response, e.g. text/event-stream. */
int http_res_stream_begin(http_res_t *res, int status, const char *content_type);
/* Writes one chunk (flushed promptly); 0, SY_ECLOSED, or SY_ETOOBIG if the client
 * is not reading and the connection's output cap is reached. */
int http_res_stream_write(http_res_t *res, const void *p, size_t len);
/* Ends the chunked response and finishes res. */
int http_res_stream_end(http_res_t *res);
/* Ends the response abruptly: closes the connection without completing the body
 * (no terminating chunk), so the client sees a truncated response; finishes res.
 * For passing on an upstream that was cut mid-stream. */
void http_res_close(http_res_t *res);
/* Called once, from the loop, if the client disconnects before the response is
 * finished (seen on read, or when a write fails: that write returns SY_ECLOSED and
 * the callback follows on the next loop iteration). Set it in the handler; set after
 * the disconnect was seen, it may not run: check http_res_aborted(). */
void http_res_on_abort(http_res_t *res, void (*fn)(void *arg), void *arg);
/* The worker loop this response belongs to. */
loop_t *http_res_loop(http_res_t *res);
bool http_res_aborted(const http_res_t *res);

#endif
