/* versions_http.c — GET /v1/versions: the versions report, built on the offload
 * thread from the ledger like /v1/costs (docs/versions.md). */
#include "api/app_impl.h"
#include "api/versions.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct versions_job {
    api_worker_t *w;
    http_res_t *res;
    int64_t since;
    int rc;
    buf_t body;
} versions_job_t;

/* Offload thread: every answered request in the store first, then the report; the
 * gateway's drift flags, metric and log line follow the all-time report. */
static void versions_work(void *arg)
{
    versions_job_t *jb = arg;
    api_app_t *app = jb->w->app;
    api_app_t *root = app->root;
    store_ledger_writer_flush(app->ledger);
    versions_report_t r;
    jb->rc = versions_query(app->report_store, jb->since, &root->cfg->drift, &r);
    if (jb->rc) return;
    if (jb->since == 0 && root->versions) versions_state_update(root->versions, &r);
    jsonw_t j;
    jsonw_init(&j, &jb->body);
    versions_write_json(&r, &j);
    versions_report_free(&r);
}

static void versions_drop(void *arg)
{
    versions_job_t *jb = arg;
    buf_deinit(&jb->body);
    mem_free(jb);
}

static void versions_done(void *arg)
{
    versions_job_t *jb = arg;
    api_worker_t *w = jb->w;
    if (jb->rc)
        api_send_error(w, jb->res, 500, "store_error", sy_strerror(jb->rc), NULL, NULL);
    else
        api_send_json(jb->res, 200, &jb->body);
    versions_drop(jb);
    api_worker_release(w);
}

void api_handle_versions(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    api_app_t *app = w->app;
    char since_s[64] = "";
    int64_t since = 0;
    if (api_query_get(hr->query, "since", since_s, sizeof since_s) &&
        store_since_parse(since_s, clock_wall_ms(), &since)) {
        api_send_error(w, res, 400, "invalid_request_error",
                       "since must be a date (2026-11-28), an RFC 3339 time, Unix seconds or a "
                       "duration back from now (30m, 24h, 7d)",
                       "since", NULL);
        return;
    }
    if (!app->report_store || !app->offload) {
        api_send_error(w, res, 503, "store_unavailable", "the store is not open", NULL, NULL);
        return;
    }
    versions_job_t *jb = mem_calloc(1, sizeof *jb);
    jb->w = w;
    jb->res = res;
    jb->since = since;
    buf_init(&jb->body, 16u << 20);
    api_worker_hold(w);
    if (offload_submit(app->offload, http_res_loop(res), versions_work, versions_done,
                       versions_drop, jb)) {
        versions_drop(jb);
        api_worker_release(w);
        http_res_header(res, "Retry-After", "1");
        api_send_error(w, res, 503, "server_busy", "too many reports are running; retry shortly",
                       NULL, NULL);
    }
}
