/* upstream.h — HTTP client for upstream tiers: libcurl multi-socket on the loop.
 *
 * One upstream_t per worker loop; it owns a CURLM whose sockets and timers are
 * driven by that loop (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), so connections
 * are pooled and kept alive per worker. A call reports the response head, then
 * body bytes as they arrive (for SSE pass-through), then completion exactly once.
 *
 * Timeouts are separate: connect, time to first body byte (TTFT), and total. The
 * error kind says which phase failed so the tier layer can decide on retry and
 * failover (only before any byte was passed on).
 */
#ifndef SY_NET_UPSTREAM_H
#define SY_NET_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "net/loop.h"

typedef enum {
    UPSTREAM_OK = 0,
    UPSTREAM_CONNECT,      /* DNS / connect / TLS failed or connect timeout */
    UPSTREAM_TTFT_TIMEOUT, /* no body byte within ttft_timeout_ms */
    UPSTREAM_TIMEOUT,      /* total timeout */
    UPSTREAM_CUT,          /* connection closed mid-response */
    UPSTREAM_TOOBIG,       /* response passed max_body */
    UPSTREAM_CANCELED,
    UPSTREAM_OTHER,
} upstream_err_t;

typedef struct upstream upstream_t;
typedef struct upstream_call upstream_call_t;

typedef struct upstream_req {
    const char *url;            /* copied */
    const char *method;         /* "POST" or "GET" */
    const char *const *headers; /* NULL-terminated "Name: value" strings, copied */
    const char *body;           /* copied */
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t ttft_timeout_ms; /* 0 = none */
    uint32_t total_timeout_ms;
    size_t max_body; /* cap on response body bytes */
} upstream_req_t;

typedef struct upstream_cb {
    /* Status line and headers received. */
    void (*on_head)(void *arg, int status);
    /* Body bytes in arrival order (not NUL-terminated). */
    void (*on_data)(void *arg, const char *p, size_t n);
    /* Exactly once unless canceled: err UPSTREAM_OK or the failure kind; status is
     * the HTTP status or 0; msg a short description (borrowed for the call). The
     * call is freed after on_done returns. */
    void (*on_done)(void *arg, upstream_err_t err, int status, const char *msg);
} upstream_cb_t;

/* Returns owned client bound to loop (free with upstream_free on the same thread). */
upstream_t *upstream_new(loop_t *loop, long max_conns_per_host);
void upstream_free(upstream_t *u);

/* Starts a request. On success *out (may be NULL) receives the call handle for
 * cancellation and callbacks will follow; on error (negative) none are called. */
int upstream_call_start(upstream_t *u, const upstream_req_t *req, const upstream_cb_t *cb,
                        void *arg, upstream_call_t **out);
/* Cancels a pending call; no callback runs after this returns. */
void upstream_call_cancel(upstream_call_t *call);
const char *upstream_err_name(upstream_err_t e);
/* Releases libcurl's global state; call once at process exit after every
 * upstream_free (keeps leak checkers quiet). */
void upstream_global_cleanup(void);

#endif
