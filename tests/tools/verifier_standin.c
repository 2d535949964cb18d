/* verifier_standin.c — a stand-in for a verifying tier in speculative-decoding tests:
 * answers POST /v1/completions in the cross-tier verification protocol from a real
 * engine session on a real model (docs/speculative.md).
 *
 * The request's prompt is a list of token ids; the answer is a text_completion whose
 * choices[0].logprobs holds, for every prompt position, "token_id:N", its logprob
 * under the model (null at 0) and the model's most likely token there as a one-entry
 * top_logprobs object (null at 0), then one generated entry: the model's greedy next
 * token. One session serves every request; rows already computed for a prefix the
 * last request shared are kept (what prompt_cache_key asks a real server to do).
 *
 * Misbehaviours for the bad-input tests: --drop-logprobs (answers without logprobs,
 * as a server that ignores echo/logprobs), --shift-ids (echoes every id + 1, as a
 * server with another vocabulary), --fail-after N (HTTP 500 from request N + 1 on).
 * GET /_received gives {"count": N} completion requests seen.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "net/http.h"

static struct {
    http_server_t *srv;
    engine_t *e;
    engine_session_t *s;
    int n_vocab, n_ctx;
    int *top;     /* (n_ctx + 1) most likely token at each position (from row pos - 1) */
    float *toplp; /* its logprob */
    float *rowlp; /* (n_ctx + 1) log-softmax normaliser per row, to score any token */
    float *rows;  /* (n_ctx + 1, n_vocab) logits of each computed position */
    int n_known;  /* rows valid for tokens[0..n_known) of the session */
    bool drop_logprobs, shift_ids;
    long fail_after; /* -1 = never */
    long count;
} g = {.fail_after = -1};

static void on_signal(int sig)
{
    (void)sig;
    if (g.srv) http_server_stop(g.srv);
}

static void send_error(http_res_t *res, int status, const char *msg)
{
    buf_t b;
    buf_init(&b, 1 << 16);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "error");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "message");
    jsonw_str(&w, msg);
    jsonw_key(&w, "type");
    jsonw_str(&w, status >= 500 ? "server_error" : "invalid_request_error");
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    http_res_send(res, status, "application/json", b.data, b.len);
    buf_deinit(&b);
}

/* Brings the session to hold ids[0..n) with a logits row for every position,
 * computing only the rows past the prefix the last request shared. 0 or -1. */
static int compute_rows(const int *ids, int n)
{
    const int *have = engine_session_tokens(g.s);
    int nc = engine_session_n_cached(g.s), m = 0;
    if (g.n_known > nc) g.n_known = nc;
    while (m < g.n_known && m < n && have[m] == ids[m])
        m++;
    if (m == n) m = n - 1; /* the row of the last token is recomputed (cheap) */
    engine_session_rewind(g.s, m);
    int B = engine_session_max_batch(g.s);
    for (int at = m; at < n;) {
        int k = n - at < B ? n - at : B;
        const float *lg = engine_session_append(g.s, ids + at, k, true);
        if (!lg) return -1;
        memcpy(g.rows + (size_t)at * g.n_vocab, lg, sizeof(float) * (size_t)k * g.n_vocab);
        at += k;
    }
    g.n_known = n;
    for (int r = m; r < n; r++) { /* row r predicts position r + 1 */
        const float *row = g.rows + (size_t)r * g.n_vocab;
        int b = 0;
        for (int i = 1; i < g.n_vocab; i++)
            if (row[i] > row[b]) b = i;
        double sum = 0;
        for (int i = 0; i < g.n_vocab; i++)
            sum += exp((double)row[i] - row[b]);
        g.rowlp[r] = (float)(row[b] + log(sum));
        g.top[r + 1] = b;
        g.toplp[r + 1] = row[b] - g.rowlp[r];
    }
    return 0;
}

static void handle_completion(http_req_t *req, http_res_t *res)
{
    g.count++;
    if (g.fail_after >= 0 && g.count > g.fail_after) {
        send_error(res, 500, "the stand-in verifier is set to fail");
        return;
    }
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    int n = cJSON_GetArraySize(prompt);
    if (!cJSON_IsArray(prompt) || n < 1 || n >= g.n_ctx) {
        cJSON_Delete(root);
        send_error(res, 400, "prompt must be 1..n_ctx-1 token ids");
        return;
    }
    int *ids = mem_alloc(sizeof(int) * (size_t)n);
    int i = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, prompt)
    {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= g.n_vocab) break;
        ids[i++] = (int)t->valuedouble;
    }
    cJSON_Delete(root);
    if (i != n || compute_rows(ids, n)) {
        mem_free(ids);
        send_error(res, 400, "token ids out of the vocabulary");
        return;
    }
    buf_t b;
    buf_init(&b, 32u << 20);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "id");
    jsonw_str(&w, "cmpl-standin");
    jsonw_key(&w, "object");
    jsonw_str(&w, "text_completion");
    jsonw_key(&w, "model");
    jsonw_str(&w, "standin");
    jsonw_key(&w, "choices");
    jsonw_arr_begin(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "index");
    jsonw_int(&w, 0);
    jsonw_key(&w, "text");
    jsonw_str(&w, "");
    jsonw_key(&w, "logprobs");
    if (g.drop_logprobs) {
        jsonw_null(&w);
    } else {
        char key[32];
        jsonw_obj_begin(&w);
        const char *names[3] = {"tokens", "token_logprobs", "top_logprobs"};
        for (int a = 0; a < 3; a++) {
            jsonw_key(&w, names[a]);
            jsonw_arr_begin(&w);
            for (int p = 0; p <= n; p++) {
                int id = p < n ? ids[p] : g.top[n];
                if (a == 0) {
                    snprintf(key, sizeof key, "token_id:%d", id + (g.shift_ids && p < n));
                    jsonw_str(&w, key);
                } else if (p == 0) {
                    jsonw_null(&w);
                } else if (a == 1) {
                    const float *row = g.rows + (size_t)(p - 1) * g.n_vocab;
                    jsonw_double(&w, row[id] - g.rowlp[p - 1]);
                } else {
                    snprintf(key, sizeof key, "token_id:%d", g.top[p]);
                    jsonw_obj_begin(&w);
                    jsonw_key(&w, key);
                    jsonw_double(&w, g.toplp[p]);
                    jsonw_obj_end(&w);
                }
            }
            jsonw_arr_end(&w);
        }
        jsonw_obj_end(&w);
    }
    jsonw_key(&w, "finish_reason");
    jsonw_str(&w, "length");
    jsonw_obj_end(&w);
    jsonw_arr_end(&w);
    jsonw_key(&w, "usage");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "prompt_tokens");
    jsonw_int(&w, n);
    jsonw_key(&w, "completion_tokens");
    jsonw_int(&w, 1);
    jsonw_key(&w, "total_tokens");
    jsonw_int(&w, n + 1);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    http_res_send(res, 200, "application/json", b.data, b.len);
    buf_deinit(&b);
    mem_free(ids);
}

static void handler(http_req_t *req, http_res_t *res, void *ctx)
{
    (void)ctx;
    if (!strcmp(req->path, "/v1/completions") && !strcmp(req->method, "POST"))
        return handle_completion(req, res);
    if (!strcmp(req->path, "/_received")) {
        char body[64];
        int k = snprintf(body, sizeof body, "{\"count\":%ld}", g.count);
        http_res_send(res, 200, "application/json", body, (size_t)k);
        return;
    }
    if (!strcmp(req->path, "/healthz")) {
        http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    }
    send_error(res, 404, "the stand-in verifier serves POST /v1/completions only");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: verifier_standin -m MODEL [--tokenizer TOK] [--port N] [--port-file F]\n"
               "       [--drop-logprobs] [--shift-ids] [--fail-after N] [--quiet]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},         {"tokenizer", 1, 0, 't'},
        {"port", 1, 0, 'p'},          {"port-file", 1, 0, 'f'},
        {"drop-logprobs", 0, 0, 'D'}, {"shift-ids", 0, 0, 'S'},
        {"fail-after", 1, 0, 'F'},    {"quiet", 0, 0, 'q'},
        {"help", 0, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *model = NULL, *tok = NULL, *port_file = NULL;
    int port = 0, c;
    bool quiet = false;
    while ((c = getopt_long(argc, argv, "hm:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 't':
            tok = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'D':
            g.drop_logprobs = true;
            break;
        case 'S':
            g.shift_ids = true;
            break;
        case 'F':
            g.fail_after = atol(optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (quiet) log_set_level(LOG_OFF);
    char err[256];
    if (engine_load(model, tok, &g.e, err, sizeof err)) {
        fprintf(stderr, "verifier_standin: %s\n", err);
        return 1;
    }
    g.s = engine_session_new(g.e, &(engine_session_opts_t){0, 1, 0});
    g.n_vocab = g.e->model->cfg.n_vocab;
    g.n_ctx = engine_session_n_ctx(g.s);
    g.top = mem_calloc((size_t)g.n_ctx + 1, sizeof(int));
    g.toplp = mem_calloc((size_t)g.n_ctx + 1, sizeof(float));
    g.rowlp = mem_calloc((size_t)g.n_ctx + 1, sizeof(float));
    g.rows = mem_calloc(((size_t)g.n_ctx + 1) * (size_t)g.n_vocab, sizeof(float));
    http_server_opts_t o = {
        .host = "127.0.0.1",
        .port = port,
        .n_workers = 1,
        .max_header_bytes = 65536,
        .max_body_bytes = 32u << 20,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 120000,
        .drain_ms = 2000,
        .handler = handler,
    };
    int e2;
    g.srv = http_server_new(&o, &e2, err, sizeof err);
    if (!g.srv) {
        fprintf(stderr, "verifier_standin: %s\n", err);
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", http_server_port(g.srv)) < 0 || fclose(f) ||
            rename(tmp, port_file)) {
            fprintf(stderr, "verifier_standin: cannot write %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = http_server_run(g.srv);
    http_server_free(g.srv);
    engine_session_free(g.s);
    engine_free(g.e);
    mem_free(g.top);
    mem_free(g.toplp);
    mem_free(g.rowlp);
    mem_free(g.rows);
    return rc ? 1 : 0;
}
