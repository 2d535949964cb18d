/* test_net_http.c — the HTTP server over real loopback sockets (port 0): keep-alive,
 * pipelining order, chunked bodies, caps (413/431), malformed requests (400 with an
 * OpenAI error body), timeouts, HTTP/1.0, Expect: 100-continue, streaming, the abort
 * callback, and graceful drain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http.h"

/* ---------------------------------------------------------------- the test server */

typedef struct delayed {
    http_res_t *res;
    int step;
    char tag[64];
} delayed_t;

static atomic_int g_aborts;        /* abort callbacks run */
static atomic_int g_deinit;        /* worker_deinit calls */
static atomic_int g_stream_closed; /* stream writes that saw SY_ECLOSED */
static atomic_int g_srv_errs;      /* server-side expectations that failed */
/* Server threads must not longjmp out of cmocka: they count failures instead. */
#define SRV_EXPECT(cond) ((cond) ? (void)0 : (void)atomic_fetch_add(&g_srv_errs, 1))

static void delayed_send(loop_t *l, void *arg)
{
    delayed_t *d = arg;
    http_res_send(d->res, 200, "text/plain", d->tag, strlen(d->tag));
    mem_free(d);
}

static void stream_tick(loop_t *l, void *arg)
{
    delayed_t *d = arg;
    char chunk[32];
    int n = snprintf(chunk, sizeof chunk, "data: %d\n\n", d->step);
    if (http_res_stream_write(d->res, chunk, (size_t)n) == SY_ECLOSED)
        atomic_fetch_add(&g_stream_closed, 1);
    if (++d->step < 3) {
        loop_timer_add(l, 5, stream_tick, d);
        return;
    }
    http_res_stream_end(d->res);
    mem_free(d);
}

static void hold_abort(void *arg)
{
    delayed_t *d = arg;
    atomic_fetch_add(&g_aborts, 1);
    /* Finishing from inside the abort callback just releases the response. */
    SRV_EXPECT(http_res_send(d->res, 200, "text/plain", "late", 4) == SY_ECLOSED);
    mem_free(d);
}

static void late_finish(loop_t *l, void *arg)
{
    delayed_t *d = arg;
    SRV_EXPECT(http_res_aborted(d->res));
    SRV_EXPECT(http_res_stream_write(d->res, "x", 1) == SY_ECLOSED);
    http_res_stream_end(d->res);
    mem_free(d);
}

static void late_abort(void *arg)
{
    atomic_fetch_add(&g_aborts, 1);
}

/* Routes: /echo (method, path, query, header, body), /delay/N (answer after N ms
 * with the request's X-Tag), /stream (3 chunked events), /hold (finishes only on
 * abort), /holdlate (abort first, finish 20 ms later). */
static void handler(http_req_t *req, http_res_t *res, void *ctx)
{
    SRV_EXPECT(*(int *)ctx == 42);
    if (!strcmp(req->path, "/echo")) {
        buf_t b;
        buf_init(&b, 1 << 20);
        size_t tl = 0;
        const char *tag = http_req_header(req, "x-TAG", &tl);
        buf_printf(&b, "%s %s q=%s tag=%.*s len=%zu body=", req->method, req->path, req->query,
                   (int)tl, tag ? tag : "", req->body_len);
        buf_append(&b, req->body, req->body_len);
        http_res_header(res, "X-Echo", "1");
        http_res_header(res, "X-Bad", "a\r\nInjected: 1"); /* dropped */
        http_res_send(res, 200, "text/plain", b.data, b.len);
        buf_deinit(&b);
    } else if (!strncmp(req->path, "/delay/", 7)) {
        delayed_t *d = mem_calloc(1, sizeof *d);
        d->res = res;
        size_t tl = 0;
        const char *tag = http_req_header(req, "x-tag", &tl);
        snprintf(d->tag, sizeof d->tag, "%.*s", (int)tl, tag ? tag : "");
        loop_timer_add(http_res_loop(res), (uint64_t)atoi(req->path + 7), delayed_send, d);
    } else if (!strcmp(req->path, "/big")) { /* 2 MB at once: more than the socket takes */
        char *b = mem_alloc(2u << 20);
        size_t tl = 0;
        const char *tag = http_req_header(req, "x-tag", &tl);
        memset(b, tag && tl ? tag[0] : 'x', 2u << 20);
        http_res_send(res, 200, "application/octet-stream", b, 2u << 20);
        mem_free(b);
    } else if (!strcmp(req->path, "/nocontent")) {
        http_res_send(res, 204, "text/plain", "ignored", 7);
    } else if (!strcmp(req->path, "/stream")) {
        delayed_t *d = mem_calloc(1, sizeof *d);
        d->res = res;
        http_res_stream_begin(res, 200, "text/event-stream");
        stream_tick(http_res_loop(res), d);
    } else if (!strcmp(req->path, "/hold")) {
        delayed_t *d = mem_calloc(1, sizeof *d);
        d->res = res;
        http_res_on_abort(res, hold_abort, d);
    } else if (!strcmp(req->path, "/holdlate")) {
        delayed_t *d = mem_calloc(1, sizeof *d);
        d->res = res;
        http_res_stream_begin(res, 200, "text/plain");
        http_res_on_abort(res, late_abort, d);
        loop_timer_add(http_res_loop(res), 150, late_finish, d);
    } else {
        http_res_send(res, 404, "application/json", "{}", 2);
    }
}

static int g_ctx_value = 42;
static void *w_init(loop_t *l, int idx, void *app)
{
    int *p = mem_alloc(sizeof *p);
    *p = *(int *)app;
    return p;
}
static void w_deinit(void *ctx)
{
    atomic_fetch_add(&g_deinit, 1);
    mem_free(ctx);
}

typedef struct srv {
    http_server_t *s;
    pthread_t th;
    int port;
    int rc;
} srv_t;

static void *srv_main(void *arg)
{
    srv_t *t = arg;
    t->rc = http_server_run(t->s);
    return NULL;
}

static uint32_t g_body_timeout_ms; /* for the next srv_start (0 = the default) */
static uint32_t g_body_min_rate;

static srv_t *srv_start(int workers, uint32_t header_ms, uint32_t idle_ms)
{
    srv_t *t = mem_calloc(1, sizeof *t);
    http_server_opts_t o = {
        .host = "127.0.0.1",
        .port = 0,
        .n_workers = workers,
        .max_header_bytes = 4096,
        .max_body_bytes = 65536,
        .header_timeout_ms = header_ms,
        .idle_timeout_ms = idle_ms,
        .body_timeout_ms = g_body_timeout_ms,
        .body_min_rate = g_body_min_rate,
        .drain_ms = 300,
        .max_conns_per_worker = 1000,
        .handler = handler,
        .worker_init = w_init,
        .worker_deinit = w_deinit,
        .app = &g_ctx_value,
    };
    int err = 0;
    char msg[200];
    t->s = http_server_new(&o, &err, msg, sizeof msg);
    assert_non_null(t->s);
    t->port = http_server_port(t->s);
    assert_true(t->port > 0);
    pthread_create(&t->th, NULL, srv_main, t);
    return t;
}

static void srv_stop(srv_t *t)
{
    http_server_stop(t->s);
    pthread_join(t->th, NULL);
    assert_int_equal(t->rc, 0);
    assert_int_equal(atomic_load(&g_srv_errs), 0);
    http_server_free(t->s);
    mem_free(t);
}

/* ---------------------------------------------------------------- a tiny client */

static int cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void cli_send(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t r = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(r > 0);
        s += r;
        n -= (size_t)r;
    }
}
#define SEND(fd, s) cli_send(fd, s, strlen(s))

typedef struct resp {
    int status;
    char head[4096];
    buf_t body;
} resp_t;

/* Reads one response (Content-Length, chunked, or to EOF). Returns 0, or -1 on EOF
 * before a status line. The reader keeps unread bytes in rb between calls. */
typedef struct reader {
    int fd;
    char buf[1 << 16];
    size_t len;
} reader_t;

static int rd_fill(reader_t *r)
{
    if (r->len == sizeof r->buf) return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n <= 0) return -1;
    r->len += (size_t)n;
    return 0;
}

static void rd_take(reader_t *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

static int read_resp_cap(reader_t *r, resp_t *out, size_t cap);
static int read_resp(reader_t *r, resp_t *out)
{
    return read_resp_cap(r, out, 1 << 20);
}
static int read_resp_big(reader_t *r, resp_t *out)
{
    return read_resp_cap(r, out, 4u << 20);
}

static int read_resp_cap(reader_t *r, resp_t *out, size_t cap)
{
    buf_init(&out->body, cap);
    char *end;
    for (;;) {
        end = memmem(r->buf, r->len, "\r\n\r\n", 4);
        if (end) break;
        if (rd_fill(r)) return -1;
    }
    size_t hl = (size_t)(end - r->buf) + 4;
    assert_true(hl < sizeof out->head);
    memcpy(out->head, r->buf, hl);
    out->head[hl] = 0;
    rd_take(r, hl);
    out->status = atoi(out->head + 9);
    if (out->status == 100) {
        buf_deinit(&out->body);
        return read_resp_cap(r, out, cap);
    }
    const char *cl = strcasestr(out->head, "\r\ncontent-length:");
    if (cl) {
        size_t n = strtoul(cl + 17, NULL, 10);
        while (n) {
            if (!r->len && rd_fill(r)) return -1;
            size_t k = r->len < n ? r->len : n;
            buf_append(&out->body, r->buf, k);
            rd_take(r, k);
            n -= k;
        }
    } else if (strcasestr(out->head, "transfer-encoding: chunked")) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(r->buf, r->len, "\r\n", 2)))
                if (rd_fill(r)) return -1;
            size_t n = strtoul(r->buf, NULL, 16);
            rd_take(r, (size_t)(eol - r->buf) + 2);
            while (r->len < n + 2)
                if (rd_fill(r)) return -1;
            buf_append(&out->body, r->buf, n);
            rd_take(r, n + 2);
            if (n == 0) break;
        }
    } else {
        while (rd_fill(r) == 0) {
        }
        buf_append(&out->body, r->buf, r->len);
        r->len = 0;
    }
    return 0;
}

/* True when the server closed the connection (EOF within 3 s). */
static bool peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0;
}

/* ---------------------------------------------------------------- tests */

static void test_keepalive_and_echo(void **state)
{
    srv_t *t = srv_start(2, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    for (int i = 0; i < 3; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "POST /echo?x=%d HTTP/1.1\r\nHost: a\r\nX-Tag: t%d\r\nContent-Length: 5\r\n\r\n"
                 "hello",
                 i, i);
        SEND(fd, req);
        resp_t resp;
        assert_int_equal(read_resp(&r, &resp), 0);
        assert_int_equal(resp.status, 200);
        char want[128];
        snprintf(want, sizeof want, "POST /echo q=x=%d tag=t%d len=5 body=hello", i, i);
        assert_string_equal(resp.body.data, want);
        assert_non_null(strstr(resp.head, "X-Echo: 1\r\n"));
        assert_null(strstr(resp.head, "Injected"));
        assert_null(strstr(resp.head, "Connection: close"));
        buf_deinit(&resp.body);
    }
    /* 204 carries neither a body nor a length, and the connection goes on. */
    SEND(fd, "GET /nocontent HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n");
    resp_t resp;
    memset(&resp, 0, sizeof resp);
    char *end;
    while (!(end = memmem(r.buf, r.len, "\r\n\r\n", 4)))
        assert_int_equal(rd_fill(&r), 0);
    assert_memory_equal(r.buf, "HTTP/1.1 204 ", 13);
    assert_null(memmem(r.buf, (size_t)(end - r.buf), "Content-Length", 14));
    rd_take(&r, (size_t)(end - r.buf) + 4);
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_memory_equal(resp.body.data, "GET /echo", 9);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

/* Three pipelined requests whose handlers finish in reverse order (30, 15, 1 ms)
 * are still answered in request order. */
static void test_pipelining_order(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "GET /delay/30 HTTP/1.1\r\nX-Tag: first\r\n\r\n"
             "GET /delay/15 HTTP/1.1\r\nX-Tag: second\r\n\r\n"
             "GET /delay/1 HTTP/1.1\r\nX-Tag: third\r\n\r\n");
    const char *want[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        resp_t resp;
        assert_int_equal(read_resp(&r, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_string_equal(resp.body.data, want[i]);
        buf_deinit(&resp.body);
    }
    close(fd);
    srv_stop(t);
}

/* Pipelined requests whose answers do not fit the socket buffer: the next request
 * is parsed once the previous answer has been flushed on writability. */
static void test_pipelining_flush(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t *r = mem_calloc(1, sizeof *r);
    r->fd = fd;
    SEND(fd, "GET /big HTTP/1.1\r\nX-Tag: a\r\n\r\n"
             "GET /big HTTP/1.1\r\nX-Tag: b\r\n\r\n"
             "GET /echo HTTP/1.1\r\nX-Tag: c\r\n\r\n");
    usleep(50000); /* the server fills the socket and must wait for us */
    const char want[] = {'a', 'b'};
    for (int i = 0; i < 2; i++) {
        resp_t resp;
        resp.body.max = 0;
        assert_int_equal(read_resp_big(r, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_int_equal(resp.body.len, 2u << 20);
        assert_int_equal(resp.body.data[0], want[i]);
        assert_int_equal(resp.body.data[(2u << 20) - 1], want[i]);
        buf_deinit(&resp.body);
    }
    resp_t resp;
    assert_int_equal(read_resp(r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "GET /echo q= tag=c len=0 body=");
    buf_deinit(&resp.body);
    mem_free(r);
    close(fd);
    srv_stop(t);
}

static void test_chunked_request_body(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n");
    usleep(10000);
    SEND(fd, "6\r\n world\r\n0\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "POST /echo q= tag= len=11 body=hello world");
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

static void test_caps(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    /* Declared body over the cap: 413 at once, then close. */
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 413);
    assert_non_null(strstr(resp.body.data, "\"type\":\"invalid_request_error\""));
    assert_non_null(strstr(resp.head, "Connection: close"));
    buf_deinit(&resp.body);
    assert_true(peer_closed(fd));
    close(fd);

    /* Chunked body growing past the cap. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[8200];
    memcpy(chunk, "2000\r\n", 6);
    memset(chunk + 6, 'a', 8192);
    memcpy(chunk + 6 + 8192, "\r\n", 2);
    for (int i = 0; i < 9; i++)
        cli_send(fd, chunk, 6 + 8192 + 2);
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 413);
    buf_deinit(&resp.body);
    close(fd);

    /* Headers over the cap: 431. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "GET /echo HTTP/1.1\r\nX-Big: ");
    char big[5000];
    memset(big, 'b', sizeof big);
    cli_send(fd, big, sizeof big);
    SEND(fd, "\r\n\r\n");
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 431);
    assert_non_null(strstr(resp.body.data, "request_header_fields_too_large"));
    buf_deinit(&resp.body);
    close(fd);

    /* Just under the cap works. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "GET /echo HTTP/1.1\r\nX-Big: ");
    cli_send(fd, big, 3900);
    SEND(fd, "\r\n\r\n");
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

static void test_malformed_400(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "GET /echo HTTP/1.1\r\nX\x7f: y\r\n\r\n",
        "GET /echo\x01 HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = cli_connect(t->port);
        reader_t r = {.fd = fd};
        SEND(fd, bad[i]);
        resp_t resp;
        assert_int_equal(read_resp(&r, &resp), 0);
        if (resp.status != 400) fprintf(stderr, "case %zu: status %d\n", i, resp.status);
        assert_int_equal(resp.status, 400);
        assert_non_null(strstr(resp.body.data, "{\"error\":{\"message\":"));
        assert_non_null(strstr(resp.body.data, "\"param\":null"));
        buf_deinit(&resp.body);
        assert_true(peer_closed(fd));
        close(fd);
    }
    /* Still serving. */
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "GET /echo HTTP/1.1\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

static void test_timeouts(void **state)
{
    srv_t *t = srv_start(1, 100, 150);
    /* Half a request head: 408 after the header timeout. */
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    uint64_t t0 = clock_mono_ms();
    SEND(fd, "GET /echo HTTP/1.1\r\nX-A: 1\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 408);
    assert_true(clock_mono_ms() - t0 >= 90);
    buf_deinit(&resp.body);
    close(fd);
    /* Idle keep-alive connection: closed quietly after the idle timeout. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "GET /echo HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(&r, &resp), 0);
    buf_deinit(&resp.body);
    t0 = clock_mono_ms();
    assert_true(peer_closed(fd));
    uint64_t dt = clock_mono_ms() - t0;
    assert_true(dt >= 100 && dt < 2000);
    close(fd);
    srv_stop(t);
}

static void test_http10_and_connection_close(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "GET /echo HTTP/1.0\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.head, "Connection: close"));
    buf_deinit(&resp.body);
    assert_true(peer_closed(fd));
    close(fd);
    /* HTTP/1.0 keep-alive. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_non_null(strstr(resp.head, "Connection: keep-alive"));
    buf_deinit(&resp.body);
    SEND(fd, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.head, "Connection: close"));
    buf_deinit(&resp.body);
    assert_true(peer_closed(fd));
    close(fd);
    srv_stop(t);
}

static void test_expect_continue(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    while (!memmem(r.buf, r.len, "\r\n\r\n", 4))
        assert_int_equal(rd_fill(&r), 0);
    assert_memory_equal(r.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    SEND(fd, "abc");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "POST /echo q= tag= len=3 body=abc");
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

static void test_streaming(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    for (int i = 0; i < 2; i++) {
        SEND(fd, "GET /stream HTTP/1.1\r\n\r\n");
        resp_t resp;
        assert_int_equal(read_resp(&r, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_non_null(strstr(resp.head, "Content-Type: text/event-stream"));
        assert_string_equal(resp.body.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
        buf_deinit(&resp.body);
    }
    close(fd);
    /* HTTP/1.0 client: no chunking, the close ends the body. */
    fd = cli_connect(t->port);
    r = (reader_t){.fd = fd};
    SEND(fd, "GET /stream HTTP/1.0\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_null(strcasestr(resp.head, "chunked"));
    assert_string_equal(resp.body.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

static void test_abort_callback(void **state)
{
    srv_t *t = srv_start(1, 2000, 5000);
    atomic_store(&g_aborts, 0);
    /* Handler finishes inside the abort callback. */
    int fd = cli_connect(t->port);
    SEND(fd, "GET /hold HTTP/1.1\r\n\r\n");
    usleep(20000);
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&g_aborts) < 1; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&g_aborts), 1);
    /* Handler finishes after the abort, from a timer. */
    fd = cli_connect(t->port);
    SEND(fd, "GET /holdlate HTTP/1.1\r\n\r\n");
    usleep(20000);
    close(fd);
    for (int i = 0; i < 200 && atomic_load(&g_aborts) < 2; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&g_aborts), 2);
    usleep(200000); /* let late_finish run (it asserts SY_ECLOSED) */
    srv_stop(t);
}

/* Stop while one request is in flight and one connection idle: the idle one is
 * closed, the in-flight one gets its answer with Connection: close, run returns,
 * and each worker's deinit ran. */
static void test_drain(void **state)
{
    atomic_store(&g_deinit, 0);
    srv_t *t = srv_start(2, 2000, 5000);
    int idle = cli_connect(t->port);
    reader_t ri = {.fd = idle};
    SEND(idle, "GET /echo HTTP/1.1\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&ri, &resp), 0);
    buf_deinit(&resp.body);
    int busy = cli_connect(t->port);
    reader_t rb = {.fd = busy};
    SEND(busy, "GET /delay/100 HTTP/1.1\r\nX-Tag: done\r\n\r\n");
    usleep(20000);
    http_server_stop(t->s);
    assert_true(peer_closed(idle));
    assert_int_equal(read_resp(&rb, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "done");
    assert_non_null(strstr(resp.head, "Connection: close"));
    buf_deinit(&resp.body);
    pthread_join(t->th, NULL);
    assert_int_equal(atomic_load(&g_deinit), 2);
    close(idle);
    close(busy);
    http_server_free(t->s);
    mem_free(t);
}

/* Drain limit: a handler that never finishes on its own is aborted at drain_ms. */
static void test_drain_forced(void **state)
{
    atomic_store(&g_aborts, 0);
    srv_t *t = srv_start(1, 2000, 5000);
    int fd = cli_connect(t->port);
    SEND(fd, "GET /hold HTTP/1.1\r\n\r\n");
    usleep(20000);
    uint64_t t0 = clock_mono_ms();
    srv_stop(t);
    uint64_t dt = clock_mono_ms() - t0;
    assert_int_equal(atomic_load(&g_aborts), 1);
    assert_true(dt >= 250 && dt < 3000);
    close(fd);
}

/* Many connections at once over several workers. */
static void test_many_connections(void **state)
{
    srv_t *t = srv_start(2, 2000, 5000);
    enum { N = 64 };
    int fds[N];
    reader_t *rs = mem_calloc(N, sizeof *rs);
    for (int i = 0; i < N; i++) {
        fds[i] = cli_connect(t->port);
        rs[i].fd = fds[i];
        SEND(fds[i], "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
    }
    for (int i = 0; i < N; i++) {
        resp_t resp;
        assert_int_equal(read_resp(&rs[i], &resp), 0);
        assert_int_equal(resp.status, 200);
        buf_deinit(&resp.body);
        close(fds[i]);
    }
    mem_free(rs);
    srv_stop(t);
}

/* A body trickled a byte at a time, each byte well inside the idle timeout, is cut
 * with a 408 at body_timeout_ms (each byte used to extend its life). */
static void test_body_timeout(void **state)
{
    g_body_timeout_ms = 300;
    srv_t *t = srv_start(1, 2000, 2000);
    g_body_timeout_ms = 0;
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    uint64_t t0 = clock_mono_ms();
    SEND(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
    int sent = 0;
    while (sent < 100 && clock_mono_ms() - t0 < 1500) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) break;
        sent++;
        usleep(30000);
        struct timeval tv = {0};
        fd_set rf;
        FD_ZERO(&rf);
        FD_SET(fd, &rf);
        if (select(fd + 1, &rf, NULL, NULL, &tv) > 0) break; /* the answer is in */
    }
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 408);
    uint64_t dt = clock_mono_ms() - t0;
    assert_true(dt >= 280 && dt < 1500);
    assert_true(sent < 100);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

/* A body that keeps arriving but under body_min_rate bytes/s over a 5 s window is
 * cut there, before its (longer) body timeout. */
static void test_body_min_rate(void **state)
{
    g_body_timeout_ms = 20000;
    g_body_min_rate = 100;
    srv_t *t = srv_start(1, 2000, 2000);
    g_body_timeout_ms = g_body_min_rate = 0;
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    uint64_t t0 = clock_mono_ms();
    SEND(fd, "POST /echo HTTP/1.1\r\nContent-Length: 60000\r\n\r\n");
    for (;;) { /* 10 bytes every 200 ms: 50 bytes/s */
        if (send(fd, "xxxxxxxxxx", 10, MSG_NOSIGNAL) != 10) break;
        usleep(200000);
        struct timeval tv = {0};
        fd_set rf;
        FD_ZERO(&rf);
        FD_SET(fd, &rf);
        if (select(fd + 1, &rf, NULL, NULL, &tv) > 0 || clock_mono_ms() - t0 > 9000) break;
    }
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 408);
    uint64_t dt = clock_mono_ms() - t0;
    assert_true(dt >= 4900 && dt < 9000);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

/* A port another listener holds (SO_REUSEPORT or not) is refused with EADDRINUSE,
 * instead of silently sharing it. */
static void test_port_in_use(void **state)
{
    srv_t *t = srv_start(2, 2000, 2000);
    http_server_opts_t o = {
        .host = "127.0.0.1",
        .port = t->port,
        .n_workers = 2,
        .handler = handler,
    };
    int err = 0;
    char msg[300] = "";
    http_server_t *s2 = http_server_new(&o, &err, msg, sizeof msg);
    assert_null(s2);
    assert_int_equal(err, -EADDRINUSE);
    assert_non_null(strstr(msg, "already in use"));
    /* The first server still answers. */
    int fd = cli_connect(t->port);
    reader_t r = {.fd = fd};
    SEND(fd, "GET /echo HTTP/1.1\r\n\r\n");
    resp_t resp;
    assert_int_equal(read_resp(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    buf_deinit(&resp.body);
    close(fd);
    srv_stop(t);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_and_echo),
        cmocka_unit_test(test_pipelining_order),
        cmocka_unit_test(test_pipelining_flush),
        cmocka_unit_test(test_chunked_request_body),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_malformed_400),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_http10_and_connection_close),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_abort_callback),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_drain_forced),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_body_timeout),
        cmocka_unit_test(test_body_min_rate),
        cmocka_unit_test(test_port_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
