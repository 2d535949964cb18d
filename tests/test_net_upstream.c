/* test_net_upstream.c — the libcurl client on the loop against an in-test HTTP
 * server: streamed pass-through order, status pass-through, TTFT / total / connect
 * errors, a cut stream, the response cap, cancellation (outside and inside a
 * callback), and connection reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http.h"
#include "net/upstream.h"

/* ---------------------------------------------------------------- server side */

typedef struct sjob {
    http_res_t *res;
    int left;
    int every_ms;
    int n;
} sjob_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_peers[16][64];
static int g_n_peers;
static char g_last_body[256];

static void sjob_tick(loop_t *l, void *arg)
{
    sjob_t *j = arg;
    char ev[64];
    int n = snprintf(ev, sizeof ev, "data: {\"i\":%d}\n\n", j->n++);
    if (j->left-- <= 0 || http_res_stream_write(j->res, ev, (size_t)n) == SY_ECLOSED) {
        http_res_stream_end(j->res);
        mem_free(j);
        return;
    }
    loop_timer_add(l, (uint64_t)j->every_ms, sjob_tick, j);
}

static void first_late(loop_t *l, void *arg)
{
    sjob_t *j = arg;
    if (!http_res_aborted(j->res)) http_res_stream_begin(j->res, 200, "text/event-stream");
    loop_timer_add(l, 0, sjob_tick, j);
}

static void cut_now(loop_t *l, void *arg)
{
    sjob_t *j = arg;
    http_res_close(j->res);
    mem_free(j);
}

static void srv_handler(http_req_t *req, http_res_t *res, void *ctx)
{
    pthread_mutex_lock(&g_mu);
    int seen = 0;
    for (int i = 0; i < g_n_peers; i++)
        seen |= !strcmp(g_peers[i], req->peer);
    if (!seen && g_n_peers < 16) snprintf(g_peers[g_n_peers++], 64, "%s", req->peer);
    snprintf(g_last_body, sizeof g_last_body, "%.*s", (int)req->body_len, req->body);
    pthread_mutex_unlock(&g_mu);
    loop_t *l = http_res_loop(res);
    if (!strcmp(req->path, "/sse")) {
        sjob_t *j = mem_calloc(1, sizeof *j);
        *j = (sjob_t){res, 5, 2, 0};
        http_res_stream_begin(res, 200, "text/event-stream");
        sjob_tick(l, j);
    } else if (!strcmp(req->path, "/late")) { /* first byte after 400 ms */
        sjob_t *j = mem_calloc(1, sizeof *j);
        *j = (sjob_t){res, 2, 1, 0};
        loop_timer_add(l, 400, first_late, j);
    } else if (!strcmp(req->path, "/slow")) { /* first byte now, then 20 x 50 ms */
        sjob_t *j = mem_calloc(1, sizeof *j);
        *j = (sjob_t){res, 20, 50, 0};
        http_res_stream_begin(res, 200, "text/event-stream");
        sjob_tick(l, j);
    } else if (!strcmp(req->path, "/cut")) {
        sjob_t *j = mem_calloc(1, sizeof *j);
        j->res = res;
        http_res_stream_begin(res, 200, "text/event-stream");
        http_res_stream_write(res, "data: partial\n\n", 15);
        loop_timer_add(l, 20, cut_now, j);
    } else if (!strcmp(req->path, "/big")) {
        char *b = mem_alloc(100000);
        memset(b, 'z', 100000);
        http_res_send(res, 200, "text/plain", b, 100000);
        mem_free(b);
    } else if (!strcmp(req->path, "/status/500")) {
        http_res_send(res, 500, "application/json", "{\"error\":{}}", 12);
    } else {
        size_t n = 0;
        const char *h = http_req_header(req, "x-probe", &n);
        char body[128];
        int bn = snprintf(body, sizeof body, "%s %.*s %zu", req->method, (int)n, h ? h : "",
                          req->body_len);
        http_res_send(res, 200, "text/plain", body, (size_t)bn);
    }
}

typedef struct srv {
    http_server_t *s;
    pthread_t th;
    int port;
} srv_t;

static void *srv_main(void *arg)
{
    srv_t *t = arg;
    http_server_run(t->s);
    return NULL;
}

static uint32_t g_idle_ms = 5000;

static int setup(void **state)
{
    srv_t *t = mem_calloc(1, sizeof *t);
    http_server_opts_t o = {.host = "127.0.0.1",
                            .n_workers = 1,
                            .max_header_bytes = 8192,
                            .max_body_bytes = 1 << 20,
                            .header_timeout_ms = 5000,
                            .idle_timeout_ms = g_idle_ms,
                            .drain_ms = 200,
                            .handler = srv_handler};
    int err;
    char msg[128];
    t->s = http_server_new(&o, &err, msg, sizeof msg);
    assert_non_null(t->s);
    t->port = http_server_port(t->s);
    pthread_create(&t->th, NULL, srv_main, t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    srv_t *t = *state;
    http_server_stop(t->s);
    pthread_join(t->th, NULL);
    http_server_free(t->s);
    mem_free(t);
    return 0;
}

/* ---------------------------------------------------------------- client side */

typedef struct result {
    loop_t *loop;
    upstream_call_t *call;
    int heads, dones, status, head_status;
    upstream_err_t err;
    buf_t data;
    bool cancel_in_data;
    char msg[256];
} result_t;

static void on_head(void *arg, int status)
{
    result_t *r = arg;
    r->heads++;
    r->head_status = status;
}

static void on_data(void *arg, const char *p, size_t n)
{
    result_t *r = arg;
    buf_append(&r->data, p, n);
    if (r->cancel_in_data) {
        upstream_call_cancel(r->call);
        loop_stop(r->loop);
    }
}

static void on_done(void *arg, upstream_err_t err, int status, const char *msg)
{
    result_t *r = arg;
    r->dones++;
    r->err = err;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    loop_stop(r->loop);
}

static const upstream_cb_t CB = {on_head, on_data, on_done};

static void safety_stop(loop_t *l, void *arg)
{
    loop_stop(l);
}

/* Runs one call to path on a fresh loop and client; fills r. */
static void run_call(int port, const char *path, uint32_t ttft_ms, uint32_t total_ms,
                     size_t max_body, result_t *r)
{
    loop_t *l = loop_new();
    upstream_t *u = upstream_new(l, 4);
    memset(r, 0, sizeof *r);
    r->loop = l;
    buf_init(&r->data, 1 << 20);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    const char *hdrs[] = {"X-Probe: yes", NULL};
    upstream_req_t req = {.url = url,
                          .method = "POST",
                          .headers = hdrs,
                          .body = "{\"q\":1}",
                          .body_len = 7,
                          .connect_timeout_ms = 500,
                          .ttft_timeout_ms = ttft_ms,
                          .total_timeout_ms = total_ms,
                          .max_body = max_body};
    assert_int_equal(upstream_call_start(u, &req, &CB, r, &r->call), 0);
    uint64_t safety = loop_timer_add(l, 5000, safety_stop, NULL);
    loop_run(l);
    loop_timer_del(l, safety);
    upstream_free(u);
    loop_free(l);
}

static void test_simple_post(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/echo", 0, 2000, 1 << 20, &r);
    assert_int_equal(r.dones, 1);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.err, UPSTREAM_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.data.data, "POST yes 7");
    pthread_mutex_lock(&g_mu);
    assert_string_equal(g_last_body, "{\"q\":1}");
    pthread_mutex_unlock(&g_mu);
    buf_deinit(&r.data);
}

static void test_stream_order(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/sse", 1000, 2000, 1 << 20, &r);
    assert_int_equal(r.err, UPSTREAM_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.data.data, "data: {\"i\":0}\n\ndata: {\"i\":1}\n\ndata: {\"i\":2}\n\n"
                                     "data: {\"i\":3}\n\ndata: {\"i\":4}\n\n");
    buf_deinit(&r.data);
}

static void test_status_passthrough(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/status/500", 0, 2000, 1 << 20, &r);
    assert_int_equal(r.err, UPSTREAM_OK);
    assert_int_equal(r.head_status, 500);
    assert_int_equal(r.status, 500);
    buf_deinit(&r.data);
}

static void test_ttft_timeout(void **state)
{
    srv_t *t = *state;
    result_t r;
    uint64_t t0 = clock_mono_ms();
    run_call(t->port, "/late", 100, 3000, 1 << 20, &r);
    uint64_t dt = clock_mono_ms() - t0;
    assert_int_equal(r.dones, 1);
    assert_int_equal(r.err, UPSTREAM_TTFT_TIMEOUT);
    assert_int_equal(r.data.len, 0);
    assert_true(dt >= 95 && dt < 3000);
    buf_deinit(&r.data);
    /* With a looser TTFT limit the same path succeeds. */
    run_call(t->port, "/late", 1000, 3000, 1 << 20, &r);
    assert_int_equal(r.err, UPSTREAM_OK);
    buf_deinit(&r.data);
}

static void test_total_timeout(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/slow", 1000, 200, 1 << 20, &r);
    assert_int_equal(r.err, UPSTREAM_TIMEOUT);
    assert_true(r.data.len > 0); /* bytes arrived before it */
    buf_deinit(&r.data);
}

static void test_connect_refused(void **state)
{
    /* A port that was just free: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    int port = ntohs(a.sin_port);
    close(fd);
    result_t r;
    run_call(port, "/x", 0, 2000, 1 << 20, &r);
    assert_int_equal(r.dones, 1);
    assert_int_equal(r.err, UPSTREAM_CONNECT);
    assert_int_equal(r.heads, 0);
    assert_true(strlen(r.msg) > 0);
    buf_deinit(&r.data);
}

static void test_cut_stream(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/cut", 0, 2000, 1 << 20, &r);
    assert_int_equal(r.err, UPSTREAM_CUT);
    assert_string_equal(r.data.data, "data: partial\n\n");
    buf_deinit(&r.data);
}

static void test_cap(void **state)
{
    srv_t *t = *state;
    result_t r;
    run_call(t->port, "/big", 0, 2000, 10000, &r);
    assert_int_equal(r.err, UPSTREAM_TOOBIG);
    assert_true(r.data.len <= 10000);
    buf_deinit(&r.data);
    run_call(t->port, "/big", 0, 2000, 100000, &r); /* exactly at the cap is fine */
    assert_int_equal(r.err, UPSTREAM_OK);
    assert_int_equal(r.data.len, 100000);
    buf_deinit(&r.data);
}

static void cancel_fire(loop_t *l, void *arg)
{
    result_t *r = arg;
    upstream_call_cancel(r->call);
    loop_timer_add(l, 50, safety_stop, NULL); /* any callback would come before this */
}

static void test_cancel(void **state)
{
    srv_t *t = *state;
    loop_t *l = loop_new();
    upstream_t *u = upstream_new(l, 4);
    result_t r = {.loop = l};
    buf_init(&r.data, 1 << 20);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/late", t->port);
    upstream_req_t req = {.url = url, .method = "GET", .total_timeout_ms = 2000, .max_body = 1000};
    assert_int_equal(upstream_call_start(u, &req, &CB, &r, &r.call), 0);
    loop_timer_add(l, 30, cancel_fire, &r);
    loop_run(l);
    assert_int_equal(r.heads + r.dones + (int)r.data.len, 0);
    /* Cancel from inside on_data: no on_done afterwards. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sse", t->port);
    r.cancel_in_data = true;
    assert_int_equal(upstream_call_start(u, &req, &CB, &r, &r.call), 0);
    loop_run(l);
    assert_true(r.data.len > 0);
    r.cancel_in_data = false;
    loop_timer_add(l, 50, safety_stop, NULL);
    loop_run(l);
    assert_int_equal(r.dones, 0);
    upstream_free(u);
    loop_free(l);
    buf_deinit(&r.data);
}

/* A call started from inside another call's on_data runs to completion. */
typedef struct nested {
    upstream_t *u;
    char url[128];
    result_t outer, inner;
    bool started;
} nested_t;

static void n_data(void *arg, const char *p, size_t n)
{
    nested_t *x = arg;
    buf_append(&x->outer.data, p, n);
    if (x->started) return;
    x->started = true;
    upstream_req_t req = {
        .url = x->url, .method = "GET", .total_timeout_ms = 2000, .max_body = 1000};
    assert_int_equal(upstream_call_start(x->u, &req, &CB, &x->inner, NULL), 0);
}

static void n_done(void *arg, upstream_err_t err, int status, const char *msg)
{
    nested_t *x = arg;
    x->outer.dones++;
    x->outer.err = err;
}

static void test_start_inside_callback(void **state)
{
    srv_t *t = *state;
    loop_t *l = loop_new();
    nested_t *x = mem_calloc(1, sizeof *x);
    x->u = upstream_new(l, 4);
    x->inner.loop = l;
    buf_init(&x->inner.data, 1 << 20);
    buf_init(&x->outer.data, 1 << 20);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%d/echo", t->port);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/sse", t->port);
    upstream_req_t req = {
        .url = url, .method = "GET", .total_timeout_ms = 2000, .max_body = 100000};
    static const upstream_cb_t ncb = {NULL, n_data, n_done};
    assert_int_equal(upstream_call_start(x->u, &req, &ncb, x, NULL), 0);
    loop_timer_add(l, 3000, safety_stop, NULL);
    loop_run(l); /* the inner call's on_done stops the loop */
    assert_true(x->started);
    assert_int_equal(x->inner.dones, 1);
    assert_int_equal(x->inner.err, UPSTREAM_OK);
    assert_string_equal(x->inner.data.data, "GET  0");
    upstream_free(x->u);
    loop_free(l);
    buf_deinit(&x->inner.data);
    buf_deinit(&x->outer.data);
    mem_free(x);
}

static void test_connection_reuse(void **state)
{
    srv_t *t = *state;
    pthread_mutex_lock(&g_mu);
    g_n_peers = 0;
    pthread_mutex_unlock(&g_mu);
    loop_t *l = loop_new();
    upstream_t *u = upstream_new(l, 4);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", t->port);
    for (int i = 0; i < 5; i++) {
        result_t r = {.loop = l};
        buf_init(&r.data, 1 << 20);
        upstream_req_t req = {.url = url,
                              .method = "POST",
                              .body = "abc",
                              .body_len = 3,
                              .total_timeout_ms = 2000,
                              .max_body = 1000};
        assert_int_equal(upstream_call_start(u, &req, &CB, &r, NULL), 0);
        loop_run(l);
        assert_int_equal(r.err, UPSTREAM_OK);
        assert_string_equal(r.data.data, "POST  3");
        buf_deinit(&r.data);
    }
    pthread_mutex_lock(&g_mu);
    assert_int_equal(g_n_peers, 1); /* one kept-alive connection served all five */
    pthread_mutex_unlock(&g_mu);
    upstream_free(u);
    loop_free(l);
}

/* The server closes an idle kept-alive connection (idle timeout 50 ms): the client
 * notices on the parked socket, and the next call opens a new connection. */
static void test_idle_connection_closed_by_server(void **state)
{
    srv_t *t = *state;
    pthread_mutex_lock(&g_mu);
    g_n_peers = 0;
    pthread_mutex_unlock(&g_mu);
    loop_t *l = loop_new();
    upstream_t *u = upstream_new(l, 4);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", t->port);
    for (int i = 0; i < 2; i++) {
        result_t r = {.loop = l};
        buf_init(&r.data, 1 << 20);
        upstream_req_t req = {
            .url = url, .method = "GET", .total_timeout_ms = 2000, .max_body = 1000};
        assert_int_equal(upstream_call_start(u, &req, &CB, &r, NULL), 0);
        loop_run(l);
        assert_int_equal(r.err, UPSTREAM_OK);
        assert_string_equal(r.data.data, "GET  0");
        buf_deinit(&r.data);
        if (i == 0) {
            loop_timer_add(l, 200, safety_stop, NULL); /* idle: the server closes */
            loop_run(l);
        }
    }
    pthread_mutex_lock(&g_mu);
    assert_int_equal(g_n_peers, 2);
    pthread_mutex_unlock(&g_mu);
    upstream_free(u);
    loop_free(l);
}

static int setup_short_idle(void **state)
{
    g_idle_ms = 50;
    int rc = setup(state);
    g_idle_ms = 5000;
    return rc;
}

static int global_teardown(void **state)
{
    upstream_global_cleanup();
    return 0;
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simple_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttft_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_timeout, setup, teardown),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test_setup_teardown(test_cut_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_closed_by_server, setup_short_idle,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, global_teardown);
}
