/* overhead_proxy.c — the network layer alone as a reverse proxy: switchyard's HTTP
 * server in front of its upstream client, with no routing. bench/overhead.sh runs it
 * next to the full gateway and nginx to split the overhead between the network
 * layer and the layers above it.
 *
 *   overhead_proxy --port N --upstream http://127.0.0.1:PORT [--workers N]
 *
 * Every request is forwarded with its body to the same path upstream; streamed
 * answers (text/event-stream) are passed through chunk by chunk.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/mem.h"
#include "net/http.h"
#include "net/upstream.h"

typedef struct fwd {
    http_res_t *res;
    upstream_call_t *call;
    buf_t body; /* non-streamed answer */
    bool stream;
    bool begun;
    int status;
} fwd_t;

typedef struct wctx {
    upstream_t *up;
    buf_t url;
} wctx_t;

static const char *g_upstream = "http://127.0.0.1:8000";
static http_server_t *g_srv;

static void f_head(void *arg, int status)
{
    fwd_t *f = arg;
    f->status = status;
    if (f->stream && status == 200) {
        http_res_stream_begin(f->res, 200, "text/event-stream");
        f->begun = true;
    }
}

static void f_data(void *arg, const char *p, size_t n)
{
    fwd_t *f = arg;
    if (f->begun)
        http_res_stream_write(f->res, p, n);
    else
        buf_append(&f->body, p, n);
}

static void f_done(void *arg, upstream_err_t err, int status, const char *msg)
{
    fwd_t *f = arg;
    if (f->begun) {
        if (err == UPSTREAM_OK)
            http_res_stream_end(f->res);
        else
            http_res_close(f->res);
    } else if (err == UPSTREAM_OK) {
        http_res_send(f->res, status, "application/json", f->body.data, f->body.len);
    } else {
        http_res_send(f->res, 502, "application/json", "{\"error\":{}}", 12);
    }
    buf_deinit(&f->body);
    mem_free(f);
}

static void f_abort(void *arg)
{
    fwd_t *f = arg;
    upstream_call_cancel(f->call);
    if (f->begun)
        http_res_stream_end(f->res);
    else
        http_res_send(f->res, 499, NULL, NULL, 0);
    buf_deinit(&f->body);
    mem_free(f);
}

static void handler(http_req_t *req, http_res_t *res, void *ctx)
{
    wctx_t *w = ctx;
    fwd_t *f = mem_calloc(1, sizeof *f);
    f->res = res;
    buf_init(&f->body, 16u << 20);
    f->stream = memmem(req->body, req->body_len, "\"stream\":true", 13) != NULL;
    buf_reset(&w->url);
    buf_puts(&w->url, g_upstream);
    buf_puts(&w->url, req->path);
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    upstream_req_t ur = {.url = w->url.data,
                         .method = req->method,
                         .headers = hdrs,
                         .body = req->body,
                         .body_len = req->body_len,
                         .connect_timeout_ms = 1000,
                         .total_timeout_ms = 30000,
                         .max_body = 16u << 20};
    static const upstream_cb_t cb = {f_head, f_data, f_done};
    if (upstream_call_start(w->up, &ur, &cb, f, &f->call)) {
        buf_deinit(&f->body);
        mem_free(f);
        http_res_send(res, 502, "application/json", "{\"error\":{}}", 12);
        return;
    }
    http_res_on_abort(res, f_abort, f);
}

static void *w_init(loop_t *loop, int idx, void *app)
{
    wctx_t *w = mem_calloc(1, sizeof *w);
    w->up = upstream_new(loop, 256);
    buf_init(&w->url, 4096);
    return w;
}

static void w_deinit(void *ctx)
{
    wctx_t *w = ctx;
    upstream_free(w->up);
    buf_deinit(&w->url);
    mem_free(w);
}

static void on_signal(int sig)
{
    http_server_stop(g_srv);
}

int main(int argc, char **argv)
{
    int port = 0, workers = 1;
    const char *port_file = NULL;
    static const struct option opts[] = {{"port", 1, 0, 'p'},    {"upstream", 1, 0, 'u'},
                                         {"workers", 1, 0, 'w'}, {"port-file", 1, 0, 'f'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            g_upstream = optarg;
            break;
        case 'w':
            workers = atoi(optarg);
            break;
        case 'f':
            port_file = optarg;
            break;
        default:
            printf("usage: overhead_proxy --port N --upstream URL [--workers N] "
                   "[--port-file F]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    http_server_opts_t o = {.host = "127.0.0.1",
                            .port = port,
                            .n_workers = workers,
                            .max_header_bytes = 16384,
                            .max_body_bytes = 4u << 20,
                            .header_timeout_ms = 10000,
                            .idle_timeout_ms = 60000,
                            .drain_ms = 2000,
                            .handler = handler,
                            .worker_init = w_init,
                            .worker_deinit = w_deinit};
    int err;
    char msg[256];
    g_srv = http_server_new(&o, &err, msg, sizeof msg);
    if (!g_srv) {
        fprintf(stderr, "overhead_proxy: %s\n", msg);
        return 1;
    }
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%d\n", http_server_port(g_srv));
            fclose(f);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rc = http_server_run(g_srv);
    http_server_free(g_srv);
    upstream_global_cleanup();
    return rc ? 1 : 0;
}
