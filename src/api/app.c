/* app.c — the gateway's lifetime: build everything a config describes, the HTTP
 * workers and their dispatch, bandit state persistence, graceful stop.
 */
#include "api/app_impl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API_MAX_SESSIONS 100000
/* Rows queued for the ledger thread: about 0.8 s of writes at 20k requests/s. Each
 * slot is ~2 KiB and the ring is walked in order, so a larger queue only spreads
 * pushes over more cold memory (and first-touch page faults). */
#define API_LEDGER_QUEUE    16384
#define API_LEDGER_FLUSH_MS 200
/* Cost reports waiting for the offload thread before new ones get a 503. */
#define API_MAX_REPORTS 16

static void handler(http_req_t *hr, http_res_t *res, void *ctx)
{
    api_worker_t *w = ctx;
    api_app_t *app = w->app;
    const char *p = hr->path;
    bool post = !strcmp(hr->method, "POST"), get = !strcmp(hr->method, "GET");
    if (!strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions")) {
        if (post) return api_handle_infer(w, hr, res, false, false);
    } else if (!strcmp(p, "/v1/completions") || !strcmp(p, "/completions")) {
        if (post) return api_handle_infer(w, hr, res, true, false);
    } else if (!strcmp(p, "/v1/route")) {
        if (post) return api_handle_infer(w, hr, res, false, true);
    } else if (!strcmp(p, "/v1/models") || !strcmp(p, "/models")) {
        if (get) return api_handle_models(w, res);
    } else if (!strcmp(p, "/v1/feedback")) {
        if (post) return api_handle_feedback(w, hr, res);
    } else if (!strcmp(p, "/v1/costs")) {
        if (get) return api_handle_costs(w, hr, res);
    } else if (!strcmp(p, "/metrics")) {
        if (get) {
            buf_t *b = &w->scratch;
            buf_reset(b);
            metrics_write(&app->metrics, app->tiers, app->n_tiers, b);
            return (void)http_res_send(res, 200, "text/plain; version=0.0.4", b->data, b->len);
        }
    } else if (!strcmp(p, "/healthz")) {
        if (get)
            return (void)http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (!strcmp(p, "/readyz")) {
        if (get) return api_handle_ready(w, res);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "no route for %s %.200s", hr->method, p);
        return api_send_error(w, res, 404, "not_found", msg, NULL, NULL);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "method %s is not allowed on %.200s", hr->method, p);
    http_res_header(res, "Allow", post ? "GET" : "POST");
    api_send_error(w, res, 405, "method_not_allowed", msg, NULL, NULL);
}

/* ---------------------------------------------------------- workers ---- */

static void *worker_init(loop_t *loop, int idx, void *arg)
{
    api_app_t *app = arg;
    api_worker_t *w = mem_calloc(1, sizeof *w);
    w->app = app;
    w->env.tiers = app->tiers;
    w->env.n_tiers = app->n_tiers;
    w->env.loop = loop;
    w->env.up = upstream_new(loop, 64);
    w->env.rand = hash_mix((uint64_t)idx + 1 + app->id_salt);
    w->rs = router_scratch_new(app->router);
    w->pii = pii_scratch_new(app->pii);
    buf_init(&w->scratch, 64u << 20);
    return w;
}

static void worker_deinit(void *ctx)
{
    api_worker_t *w = ctx;
    while (w->free_calls) {
        api_call_t *c = w->free_calls;
        w->free_calls = c->next_free;
        api_call_free(c);
    }
    exec_env_deinit(&w->env);
    upstream_free(w->env.up);
    router_scratch_free(w->rs);
    pii_scratch_free(w->pii);
    buf_deinit(&w->scratch);
    log_thread_cleanup();
    mem_free(w);
}

static int read_file(const char *path, size_t max, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    buf_init(out, max);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(out, chunk, n);
    fclose(f);
    if (rc) buf_deinit(out);
    return rc;
}

/* Installs a model file into the router (the router itself does no I/O). */
static int load_model(router_t *r, const char *path, bool classifier, char *err, size_t errlen)
{
    buf_t b;
    int rc = read_file(path, 256u << 20, &b);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, sy_strerror(rc));
        return rc;
    }
    char e2[200];
    route_model_t *m = route_model_parse(b.data, b.len, e2, sizeof e2);
    buf_deinit(&b);
    if (!m) {
        snprintf(err, errlen, "%s: %s", path, e2);
        return SY_ECORRUPT;
    }
    rc = classifier ? router_set_classifier(r, m) : router_set_cloud_model(r, m);
    if (rc) {
        route_model_free(m);
        snprintf(err, errlen, "%s: not a %s model", path,
                 classifier ? "task classifier" : "need-of-cloud");
    }
    return rc;
}

int api_router_load_models(router_t *r, const config_t *cfg, char *err, size_t errlen)
{
    if (*cfg->classifier_model) {
        int rc = load_model(r, cfg->classifier_model, true, err, errlen);
        if (rc) return rc;
    }
    if (*cfg->router_model) return load_model(r, cfg->router_model, false, err, errlen);
    return 0;
}

#define BANDIT_KV_NS  "bandit"
#define BANDIT_KV_KEY "state"

/* Persists the bandit's sums so learning survives a restart. */
void api_bandit_save(api_app_t *app)
{
    if (!app->store || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    buf_t b;
    buf_init(&b, 64u << 20);
    if (router_bandit_save(app->router, &b) == 0) {
        pthread_mutex_lock(&app->store_mu);
        int rc = store_kv_put(app->store, BANDIT_KV_NS, BANDIT_KV_KEY, b.data, b.len);
        pthread_mutex_unlock(&app->store_mu);
        if (rc) log_warn("cannot save the bandit state: %s", sy_strerror(rc));
    }
    buf_deinit(&b);
}

static void load_bandit(api_app_t *app)
{
    if (!app->store || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    void *blob = NULL;
    size_t n = 0;
    if (store_kv_get(app->store, BANDIT_KV_NS, BANDIT_KV_KEY, &blob, &n) == 0) {
        char e2[200];
        if (router_bandit_load(app->router, blob, n, e2, sizeof e2))
            log_warn("bandit state in the store not restored: %s", e2);
        else
            log_info("bandit state restored (%zu bytes)", n);
    }
    free(blob);
}

api_app_t *api_app_new(const config_t *cfg, char *err, size_t errlen)
{
    api_app_t *app = mem_calloc(1, sizeof *app);
    app->cfg = cfg;
    app->id_salt = hash_mix((uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32));
    pthread_mutex_init(&app->store_mu, NULL);
    log_level_t lvl;
    if (!log_level_parse(cfg->log_level, &lvl)) log_set_level(lvl);
    api_tiers_open(app, err, errlen);
    metrics_init(&app->metrics, app->n_tiers);
    app->sessions = session_table_new(API_MAX_SESSIONS);

    pii_options_t po = {*cfg->pii_names_dir ? cfg->pii_names_dir : NULL, cfg->route.pii_min_score};
    char e2[256];
    app->pii = pii_scanner_new(&po, e2, sizeof e2);
    if (!app->pii) {
        snprintf(err, errlen, "PII scanner: %s", e2);
        goto fail;
    }
    app->router = router_new(&cfg->route, app->pii, e2, sizeof e2);
    if (!app->router) {
        snprintf(err, errlen, "router: %s", e2);
        goto fail;
    }
    if (api_router_load_models(app->router, cfg, err, errlen)) goto fail;
    app->feedback = feedback_ring_new();
    app->store = store_open(cfg->store, e2, sizeof e2);
    if (!app->store) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        goto fail;
    }
    app->report_store = store_open(cfg->store, e2, sizeof e2);
    if (!app->report_store) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        goto fail;
    }
    app->offload = offload_new(API_MAX_REPORTS);
    if (!app->offload) {
        snprintf(err, errlen, "cannot start the report thread");
        goto fail;
    }
    load_bandit(app);
    app->ledger =
        store_ledger_writer_new(cfg->store, API_LEDGER_QUEUE, API_LEDGER_FLUSH_MS, e2, sizeof e2);
    if (!app->ledger) {
        snprintf(err, errlen, "ledger %s: %s", cfg->store, e2);
        goto fail;
    }
    http_server_opts_t ho = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .n_workers = (int)cfg->workers,
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .drain_ms = cfg->drain_ms,
        .max_conns_per_worker = 10000,
        .handler = handler,
        .worker_init = worker_init,
        .worker_deinit = worker_deinit,
        .app = app,
    };
    int herr = 0;
    app->http = http_server_new(&ho, &herr, e2, sizeof e2);
    if (!app->http) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->listen_host, cfg->listen_port, e2);
        goto fail;
    }
    return app;
fail:
    api_app_free(app);
    return NULL;
}

int api_app_port(const api_app_t *app)
{
    return http_server_port(app->http);
}

int api_app_run(api_app_t *app)
{
    return http_server_run(app->http);
}

void api_app_stop(api_app_t *app)
{
    atomic_store(&app->draining, true);
    http_server_stop(app->http);
}

void api_app_free(api_app_t *app)
{
    if (!app) return;
    offload_free(app->offload); /* before the loops its answers go to are freed */
    http_server_free(app->http);
    if (app->router) api_bandit_save(app);
    feedback_ring_free(app->feedback);
    store_ledger_writer_free(app->ledger);
    store_close(app->store);
    store_close(app->report_store);
    router_free(app->router);
    pii_scanner_free(app->pii);
    session_table_free(app->sessions);
    for (size_t i = 0; i < app->n_tiers; i++) {
        if (app->tiers[i].s.kind == TIER_KIND_LOCAL) local_tier_close(&app->tiers[i]);
        tier_deinit(&app->tiers[i]);
        mem_free(app->api_keys[i]);
        mem_free(app->base_urls[i]);
    }
    pthread_mutex_destroy(&app->store_mu);
    mem_free(app);
}
