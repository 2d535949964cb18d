/* app.c — the gateway's lifetime: build everything a config describes, the HTTP
 * workers and their dispatch, bandit state persistence, reload, graceful stop.
 *
 * Reload: api_app_reload (SIGHUP) wakes the reload thread, which loads the config
 * file again and builds a new generation (tiers, PII scanner, router, store
 * connection, metrics) beside the running one. An invalid file or a generation that
 * cannot be built is logged and changes nothing. Otherwise the new generation
 * becomes current and each worker loop is posted a switch: its next requests get a
 * worker state built on the new generation, while the calls already running keep
 * theirs. A generation is freed when nothing holds it any more.
 */
#include "api/piiload.h"
#include "api/app_impl.h"
#include "store/journal.h"
#include "api/otlp.h"
#include "api/versions.h"
#include <errno.h>
#include <inttypes.h>
#include <semaphore.h>
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
/* How often a worker seals its ledger journal and deletes what the store has. */
#define API_JOURNAL_ROTATE_MS 1000
/* How often each loop gives back the budget leases of idle keys (budget_tick). */
#define API_BUDGET_TICK_MS 250
/* How often private sessions other gateways marked are read from the store. */
#define API_SESSION_SYNC_MS 1000
/* Cost reports waiting for the offload thread before new ones get a 503. */
#define API_MAX_REPORTS 16

/* One per HTTP worker loop: the worker state requests on that loop start with, and
 * the retired ones calls still hold. Touched only on the loop's thread (loop is
 * also read, under api_reload.mu, by the reload thread). */
typedef struct api_slot {
    loop_t *loop;
    int idx;
    api_worker_t *cur;
    api_worker_t *retired;    /* list through next_retired */
    store_journal_t *journal; /* this loop's ledger journal, or NULL */
    store_ledger_writer_t *ledger;
} api_slot_t;

typedef struct api_reload {
    pthread_t thr;
    bool started;
    sem_t wake; /* posted by api_app_reload (async-signal-safe) */
    atomic_bool stop;
    pthread_mutex_t mu;       /* cur and the slots' loops */
    _Atomic(api_app_t *) cur; /* the generation new requests get */
    api_slot_t *slots;
    int n_slots;
} api_reload_t;

static void handler(http_req_t *hr, http_res_t *res, void *ctx)
{
    api_slot_t *slot = ctx;
    api_worker_t *w = slot->cur;
    api_app_t *app = w->app;
    if (api_gate(w, hr, res)) return;
    const char *p = hr->path;
    bool post = !strcmp(hr->method, "POST"), get = !strcmp(hr->method, "GET");
    if (!strcmp(p, "/v1/chat/completions") || !strcmp(p, "/chat/completions")) {
        if (post) return api_handle_infer(w, hr, res, false, false);
    } else if (!strcmp(p, "/v1/completions") || !strcmp(p, "/completions")) {
        if (post) return api_handle_infer(w, hr, res, true, false);
    } else if (!strcmp(p, "/v1/embeddings") || !strcmp(p, "/embeddings")) {
        if (post) return api_handle_embeddings(w, hr, res);
    } else if (!strcmp(p, "/v1/route")) {
        if (post) return api_handle_infer(w, hr, res, false, true);
    } else if (!strcmp(p, "/v1/messages")) {
        if (post) return api_handle_messages(w, hr, res);
    } else if (!strcmp(p, "/v1/models") || !strcmp(p, "/models")) {
        if (get) return api_handle_models(w, res, NULL);
    } else if (!strncmp(p, "/v1/models/", 11) && p[11]) {
        if (get) return api_handle_models(w, res, p + 11);
    } else if (!strcmp(p, "/v1/feedback")) {
        if (post) return api_handle_feedback(w, hr, res);
    } else if (!strcmp(p, "/v1/costs")) {
        if (get) return api_handle_costs(w, hr, res);
    } else if (!strcmp(p, "/v1/versions")) {
        if (get) return api_handle_versions(w, hr, res);
    } else if (!strcmp(p, "/metrics")) {
        if (get) {
            buf_t *b = &w->scratch;
            buf_reset(b);
            metrics_write(&app->metrics, app->tiers, app->n_tiers, b);
            if (app->root->versions) versions_state_write_metrics(app->root->versions, b);
            api_trace_metrics(app->root, b);
            return (void)http_res_send(res, 200, "text/plain; version=0.0.4", b->data, b->len);
        }
    } else if (!strcmp(p, "/healthz")) {
        if (get)
            return (void)http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (!strcmp(p, "/readyz")) {
        if (get) return api_handle_ready(w, res);
    } else if (!strcmp(p, "/v1/admin/dashboard")) {
        if (get) return api_handle_dashboard(w, res);
    } else if (!strcmp(p, "/v1/admin/bandit")) {
        if (get) return api_handle_bandit(w, res);
    } else if (!strcmp(p, "/ui")) {
        if (get) return api_handle_ui(w, res);
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

static void gen_release(api_app_t *g);

/* A worker state on generation app for one loop; takes over a reference the caller
 * holds on app. */
static api_worker_t *worker_new(api_app_t *app, api_slot_t *slot, loop_t *loop, int idx)
{
    api_worker_t *w = mem_calloc(1, sizeof *w);
    w->app = app;
    w->slot = slot;
    w->env.tiers = app->tiers;
    w->env.n_tiers = app->n_tiers;
    w->env.loop = loop;
    w->env.up = upstream_new(loop, 64);
    w->env.rand = hash_mix((uint64_t)idx + 1 + app->id_salt);
    w->rs = router_scratch_new(app->router);
    w->pii = pii_scratch_new(app->pii);
    w->scan = api_scan_new(app->pii, app->cfg->route.pii_min_score);
    buf_init(&w->render, 1u << 30);
    buf_init(&w->scratch, 64u << 20);
    return w;
}

/* Frees a worker state (on its loop's thread, or after the loop stopped) and drops
 * its reference on the generation. */
static void worker_free(api_worker_t *w)
{
    api_app_t *app = w->app;
    while (w->free_calls) {
        api_call_t *c = w->free_calls;
        w->free_calls = c->next_free;
        api_call_free(c);
    }
    exec_env_deinit(&w->env);
    upstream_free(w->env.up);
    router_scratch_free(w->rs);
    pii_scratch_free(w->pii);
    api_scan_free(w->scan);
    buf_deinit(&w->render);
    buf_deinit(&w->scratch);
    mem_free(w);
    gen_release(app);
}

void api_worker_hold(api_worker_t *w)
{
    atomic_fetch_add(&w->inflight, 1);
}

/* Timer on the loop: frees a retired worker once nothing holds it (never from
 * inside the release itself, which runs within the call's own callbacks). */
static void retired_free_fn(loop_t *loop, void *arg)
{
    api_worker_t *w = arg;
    api_slot_t *slot = w->slot;
    if (atomic_load(&w->inflight)) return; /* held again meanwhile: a later release frees it */
    for (api_worker_t **p = &slot->retired; *p; p = &(*p)->next_retired)
        if (*p == w) {
            *p = w->next_retired;
            worker_free(w);
            return;
        }
}

void api_worker_release(api_worker_t *w)
{
    if (atomic_fetch_sub(&w->inflight, 1) == 1 && w->retired)
        loop_timer_add(w->env.loop, 0, retired_free_fn, w);
}

void api_ledger_record(api_worker_t *w, const store_ledger_row_t *row)
{
    api_slot_t *slot = w->slot;
    if (slot->journal) {
        int rc = store_journal_append(slot->journal, row);
        if (rc) log_error("ledger journal: %s (the row is only queued)", sy_strerror(rc));
    }
    if (store_ledger_writer_push(slot->ledger, row)) {
        atomic_fetch_add(&w->app->metrics.ledger_dropped, 1);
        if (slot->journal) store_journal_keep(slot->journal); /* replayed at next start */
    }
}

/* Loop timer: seals the journal and deletes the sealed files the store has. */
static void journal_rotate_fn(loop_t *loop, void *arg)
{
    api_slot_t *slot = arg;
    uint64_t pushed, settled, dropped;
    store_ledger_writer_counts(slot->ledger, &pushed, &settled, &dropped);
    store_journal_rotate(slot->journal, pushed, settled, dropped);
    loop_timer_add(loop, API_JOURNAL_ROTATE_MS, journal_rotate_fn, slot);
}

/* Loop timer: the current generation's idle budget leases go back to the store. */
static void budget_tick_fn(loop_t *loop, void *arg)
{
    api_slot_t *slot = arg;
    budget_tick(slot->cur->app->budget, loop, clock_mono_ms());
    loop_timer_add(loop, API_BUDGET_TICK_MS, budget_tick_fn, slot);
}

/* HTTP worker_init: the loop's slot, with a worker state on the current generation. */
static void *worker_init(loop_t *loop, int idx, void *arg)
{
    api_app_t *root = arg;
    api_reload_t *rl = root->rl;
    api_slot_t *slot = &rl->slots[idx];
    pthread_mutex_lock(&rl->mu);
    slot->loop = loop;
    slot->idx = idx;
    api_app_t *g = atomic_load(&rl->cur);
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&rl->mu);
    slot->cur = worker_new(g, slot, loop, idx);
    slot->ledger = root->ledger;
    if (slot->journal) loop_timer_add(loop, API_JOURNAL_ROTATE_MS, journal_rotate_fn, slot);
    loop_timer_add(loop, API_BUDGET_TICK_MS, budget_tick_fn, slot);
    return slot;
}

/* HTTP worker_deinit, after the loop stopped: frees every worker state of the slot,
 * retired ones included (whatever still held them was forced closed by the drain). */
static void worker_deinit(void *ctx)
{
    api_slot_t *slot = ctx;
    api_reload_t *rl = slot->cur->app->root->rl;
    pthread_mutex_lock(&rl->mu);
    slot->loop = NULL; /* no more switches posted here */
    pthread_mutex_unlock(&rl->mu);
    while (slot->retired) {
        api_worker_t *w = slot->retired;
        slot->retired = w->next_retired;
        worker_free(w);
    }
    worker_free(slot->cur);
    slot->cur = NULL;
    store_journal_close(slot->journal);
    slot->journal = NULL;
    log_thread_cleanup();
}

typedef struct switch_msg {
    api_slot_t *slot;
    api_app_t *gen; /* holds a reference, handed to the new worker state */
} switch_msg_t;

/* On the worker loop: new requests get a worker state on the new generation; the
 * old one is freed now if nothing holds it, else when the last holder releases. */
static void slot_switch_fn(void *arg)
{
    switch_msg_t *m = arg;
    api_slot_t *slot = m->slot;
    api_worker_t *old = slot->cur;
    slot->cur = worker_new(m->gen, slot, slot->loop, slot->idx);
    mem_free(m);
    old->retired = true;
    if (atomic_load(&old->inflight) == 0) {
        worker_free(old);
    } else {
        old->next_retired = slot->retired;
        slot->retired = old;
    }
}

/* Installs a model file into the router (the router itself does no I/O). */
static int load_model(router_t *r, const char *path, bool classifier, char *err, size_t errlen)
{
    buf_t b;
    buf_init(&b, 256u << 20);
    int rc = buf_read_file(&b, path);
    if (rc) {
        buf_deinit(&b);
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

/* The bandit's statistics are shared through the store by the store thread
 * (storesync.h): this waits until what the serving router gathered is in the
 * store's totals (reload: the new router starts from them). Not on a loop. */
void api_bandit_save(api_app_t *app)
{
    if (!app->sync || !app->served || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    storesync_bandit_sync(app->sync);
}

/* Starts the router from the store's merged totals; a state saved whole by an
 * older version (BANDIT_KV_KEY) is taken as a delta still to share. */
static void load_bandit(api_app_t *app)
{
    if (!app->store || app->cfg->route.policy != ROUTE_POLICY_BANDIT) return;
    void *blob = NULL;
    size_t n = 0;
    char key[64], e2[200];
    storesync_bandit_key(app->router, key, sizeof key);
    if (store_kv_get(app->store, STORESYNC_BANDIT_NS, key, &blob, &n) == 0) {
        double *v = NULL;
        size_t nv = 0;
        if (store_f64_add(blob, n, NULL, 0, &v, &nv) || router_bandit_set_total(app->router, v, nv))
            log_warn("bandit statistics in the store not restored: %zu bytes, not %zu sums", n,
                     router_bandit_sums_len(app->router));
        else
            log_info("bandit state restored (%zu sums shared through the store)", nv);
        free(v);
    } else if (store_kv_get(app->store, BANDIT_KV_NS, BANDIT_KV_KEY, &blob, &n) == 0) {
        if (router_bandit_load_pending(app->router, blob, n, e2, sizeof e2))
            log_warn("bandit state in the store not restored: %s", e2);
        else
            log_info("bandit state restored (%zu bytes, to be shared through the store)", n);
    }
    free(blob);
}

/* ------------------------------------------------------ generations ---- */

/* Builds what one configuration describes into app: tiers, PII scanner, router
 * and its models, feedback ring, metrics, and a store connection for sessions,
 * feedback and bandit state (restored from it). 0 or an error in err. */
/* The dashboard's versions section: the gateway's last versions report. */
static void dash_versions(void *arg, jsonw_t *j)
{
    api_app_t *root = arg;
    if (root->versions)
        versions_state_write_json(root->versions, j);
    else
        jsonw_null(j);
}

static int gen_open(api_app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = app->cfg;
    app->id_salt =
        hash_mix((uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)app);
    log_level_t lvl;
    if (!log_level_parse(cfg->log_level, &lvl)) log_set_level(lvl);
    api_tiers_open(app, err, errlen);
    metrics_init(&app->metrics, app->n_tiers);
    dash_init(&app->dash, app->n_tiers);
    app->dash.versions = dash_versions;
    app->dash.versions_arg = app->root;
    char e2[256];
    app->pii = piiload_scanner_new(cfg->pii_names_dir, cfg->pii_labeller, cfg->route.pii_min_score,
                                   e2, sizeof e2);
    if (!app->pii) {
        snprintf(err, errlen, "PII scanner: %s", e2);
        return SY_ECONFIG;
    }
    app->router = router_new(&cfg->route, app->pii, e2, sizeof e2);
    if (!app->router) {
        snprintf(err, errlen, "router: %s", e2);
        return SY_ECONFIG;
    }
    int rc = api_router_load_models(app->router, cfg, err, errlen);
    if (rc) return rc;
    app->feedback = feedback_ring_new();
    app->store = store_open(cfg->store, e2, sizeof e2);
    if (!app->store) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        return SY_ECONFIG;
    }
    load_bandit(app);
    /* Keys and budgets belong to a generation: a reload applies new keys, and the
     * old generation's budget leases go back to the store when it closes. */
    app->auth = auth_new(&cfg->auth);
    for (size_t i = 0; i < cfg->auth.n_keys && !app->budget; i++)
        if (cfg->auth.keys[i].budget_set) {
            app->budget = budget_new(&cfg->auth, cfg->store, e2, sizeof e2);
            if (!app->budget) {
                snprintf(err, errlen, "%s", e2);
                return SY_ECONFIG;
            }
        }
    return 0;
}

/* Releases what gen_open built (saving the bandit state first); safe on a partly
 * built generation and twice. */
static void gen_close(api_app_t *app)
{
    if (app->closed) return;
    app->closed = true;
    budget_free(app->budget); /* settles what is queued, gives the leases back */
    auth_free(app->auth);
    app->budget = NULL;
    app->auth = NULL;
    if (app->router) storesync_bandit_detach(app->sync, app->router); /* its last delta */
    feedback_ring_free(app->feedback);
    store_close(app->store);
    router_free(app->router);
    pii_scanner_free(app->pii);
    for (size_t i = 0; i < app->n_tiers; i++) {
        if (app->tiers[i].s.kind == TIER_KIND_LOCAL) local_tier_close(&app->tiers[i]);
        tier_deinit(&app->tiers[i]);
        mem_free(app->api_keys[i]);
        mem_free(app->base_urls[i]);
    }
}

/* Drops one reference; the last closes the generation (and frees a reloaded one;
 * the root's struct lives until api_app_free). */
static void gen_release(api_app_t *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1) return;
    gen_close(g);
    if (g == g->root) return;
    for (int i = 0; i < API_BIG_THREADS; i++)
        api_scan_free(g->big_scan[i]);
    config_deinit(g->owned_cfg);
    mem_free(g->owned_cfg);
    mem_free(g);
}

/* Settings a reload cannot change (the listener, workers, limits and the ledger
 * belong to the running process): warned about, the running values kept. */
static void reload_warn_fixed(const config_t *old, const config_t *nw)
{
    if (strcmp(old->listen_host, nw->listen_host) || old->listen_port != nw->listen_port ||
        old->workers != nw->workers || strcmp(old->store, nw->store) ||
        old->max_body_bytes != nw->max_body_bytes ||
        old->max_header_bytes != nw->max_header_bytes ||
        old->header_timeout_ms != nw->header_timeout_ms ||
        old->idle_timeout_ms != nw->idle_timeout_ms ||
        old->body_timeout_ms != nw->body_timeout_ms || old->body_min_rate != nw->body_min_rate ||
        old->drain_ms != nw->drain_ms)
        log_warn("reload: listen, workers, store and limits apply at the next restart; the "
                 "running values stay");
}

/* The reload thread's work for one SIGHUP. */
static void reload_once(api_app_t *root)
{
    api_reload_t *rl = root->rl;
    api_app_t *cur = atomic_load(&rl->cur);
    config_t *cfg = mem_calloc(1, sizeof *cfg);
    char err[512];
    if (config_load(cfg, root->cfg->path, err, sizeof err)) {
        log_error("reload: invalid configuration: %s; the running configuration stays", err);
        config_deinit(cfg);
        mem_free(cfg);
        return;
    }
    reload_warn_fixed(cur->cfg, cfg);
    api_app_t *g = mem_calloc(1, sizeof *g);
    g->cfg = g->owned_cfg = cfg;
    g->root = root;
    atomic_init(&g->refs, 1);
    g->http = root->http;
    g->ledger = root->ledger;
    g->report_store = root->report_store;
    g->offload = root->offload;
    g->sessions = root->sessions;
    g->sync = root->sync;
    atomic_store(&g->seq, atomic_load(&cur->seq));
    api_bandit_save(cur); /* the new router starts from what the old one learnt */
    storesync_flush(root->sync);
    if (gen_open(g, err, sizeof err)) {
        log_error("reload: cannot apply %s: %s; the running configuration stays", cfg->path, err);
        gen_release(g);
        return;
    }
    /* The large-request threads are shared; each generation scans with its own
     * scanner (a scan is used only by its thread, one job at a time). */
    for (int i = 0; i < API_BIG_THREADS; i++)
        if ((g->big[i] = root->big[i]))
            g->big_scan[i] = api_scan_new(g->pii, cfg->route.pii_min_score);
    g->served = true;
    pthread_mutex_lock(&rl->mu);
    atomic_store(&rl->cur, g);
    for (int i = 0; i < rl->n_slots; i++) {
        if (!rl->slots[i].loop) continue; /* not started yet (it takes cur) or stopped */
        switch_msg_t *m = mem_alloc(sizeof *m);
        m->slot = &rl->slots[i];
        m->gen = g;
        atomic_fetch_add(&g->refs, 1);
        if (loop_post(rl->slots[i].loop, slot_switch_fn, m)) {
            atomic_fetch_sub(&g->refs, 1);
            mem_free(m);
        }
    }
    pthread_mutex_unlock(&rl->mu);
    if (atomic_load(&root->draining)) atomic_store(&g->draining, true);
    if (cfg->route.policy == ROUTE_POLICY_BANDIT) storesync_bandit_attach(root->sync, g->router);
    gen_release(cur); /* no longer current */
    log_info("configuration reloaded from %s (%zu tiers)", cfg->path, cfg->n_tiers);
}

static void *reload_main(void *arg)
{
    api_app_t *root = arg;
    api_reload_t *rl = root->rl;
    for (;;) {
        while (sem_wait(&rl->wake) && errno == EINTR) {
        }
        if (atomic_load(&rl->stop)) break;
        reload_once(root);
    }
    log_thread_cleanup();
    return NULL;
}

/* --------------------------------------------------------------- app ---- */

api_app_t *api_app_new(const config_t *cfg, char *err, size_t errlen)
{
    api_app_t *app = mem_calloc(1, sizeof *app);
    app->cfg = cfg;
    app->root = app;
    atomic_init(&app->refs, 1);
    api_reload_t *rl = app->rl = mem_calloc(1, sizeof *rl);
    pthread_mutex_init(&rl->mu, NULL);
    sem_init(&rl->wake, 0, 0);
    atomic_init(&rl->cur, app);
    rl->n_slots = (int)cfg->workers;
    rl->slots = mem_calloc((size_t)rl->n_slots, sizeof *rl->slots);
    app->sessions = session_table_new(API_MAX_SESSIONS);
    char e2[256];
    app->sync = storesync_new(cfg->store, app->sessions, API_SESSION_SYNC_MS, e2, sizeof e2);
    if (!app->sync) {
        snprintf(err, errlen, "store %s: %s", cfg->store, e2);
        goto fail;
    }
    if (gen_open(app, err, errlen)) goto fail;
    if (cfg->route.policy == ROUTE_POLICY_BANDIT) storesync_bandit_attach(app->sync, app->router);
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
    if (api_big_start(app)) {
        snprintf(err, errlen, "cannot start the large-request threads");
        goto fail;
    }
    app->ledger =
        store_ledger_writer_new(cfg->store, API_LEDGER_QUEUE, API_LEDGER_FLUSH_MS, e2, sizeof e2);
    if (!app->ledger) {
        snprintf(err, errlen, "ledger %s: %s", cfg->store, e2);
        goto fail;
    }
    if (*cfg->telemetry.otlp_endpoint) {
        const config_telemetry_t *tc = &cfg->telemetry;
        otlp_opts_t oo = {tc->otlp_endpoint, tc->service_name, tc->queue,
                          tc->batch,         tc->interval_ms,  tc->timeout_ms};
        app->otlp = otlp_new(&oo, e2, sizeof e2);
        if (!app->otlp) {
            snprintf(err, errlen, "telemetry: %s", e2);
            goto fail;
        }
    }
    app->versions = versions_state_new(cfg->store, app->ledger, &cfg->drift, e2, sizeof e2);
    if (!app->versions) {
        snprintf(err, errlen, "versions %s: %s", cfg->store, e2);
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
        .body_timeout_ms = cfg->body_timeout_ms,
        .body_min_rate = cfg->body_min_rate,
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
    /* Rows a crash left in the journals reach the store before anything else (after
     * the listener: a second instance fails on its port before it reads anything). */
    uint64_t n_rows, n_dup, n_bad;
    if (store_journal_replay(cfg->ledger_journal, app->report_store, &n_rows, &n_dup, &n_bad, e2,
                             sizeof e2))
        log_error("ledger journal %s not replayed: %s (kept for the next start)",
                  cfg->ledger_journal, e2);
    else if (n_rows || n_dup || n_bad)
        log_info("ledger journal: %" PRIu64 " rows replayed into the store, %" PRIu64
                 " already there, %" PRIu64 " files ended in a torn record",
                 n_rows, n_dup, n_bad);
    for (int i = 0; i < rl->n_slots; i++) {
        rl->slots[i].journal =
            store_journal_open(cfg->ledger_journal, i, cfg->ledger_fsync, e2, sizeof e2);
        if (!rl->slots[i].journal) {
            snprintf(err, errlen, "%s", e2);
            goto fail;
        }
    }
    if (pthread_create(&rl->thr, NULL, reload_main, app)) {
        snprintf(err, errlen, "cannot start the reload thread");
        goto fail;
    }
    rl->started = true;
    app->served = true;
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
    atomic_store(&atomic_load(&app->rl->cur)->draining, true);
    http_server_stop(app->http);
}

void api_app_reload(api_app_t *app)
{
    sem_post(&app->rl->wake);
}

void api_app_free(api_app_t *app)
{
    if (!app) return;
    api_reload_t *rl = app->rl;
    if (rl->started) {
        atomic_store(&rl->stop, true);
        sem_post(&rl->wake);
        pthread_join(rl->thr, NULL);
    }
    offload_free(app->offload); /* before the loops its answers go to are freed */
    api_big_stop(app);
    http_server_free(app->http);
    otlp_free(app->otlp); /* after the workers that submit to it */
    bool all_in = false;
    if (app->ledger) {
        uint64_t pushed, settled, dropped;
        store_ledger_writer_flush(app->ledger);
        store_ledger_writer_counts(app->ledger, &pushed, &settled, &dropped);
        all_in = dropped == 0;
    }
    versions_state_free(app->versions); /* its thread flushes the ledger writer */
    store_ledger_writer_free(app->ledger);
    for (int i = 0; i < rl->n_slots; i++) /* never started: journals still open */
        store_journal_close(rl->slots[i].journal);
    if (all_in) store_journal_clear(app->cfg->ledger_journal); /* every row is committed */
    store_close(app->report_store);
    api_app_t *cur = atomic_load(&rl->cur);
    if (cur != app) gen_release(cur); /* its workers are gone: this is its last reference */
    gen_close(app);
    storesync_free(app->sync);         /* after the last bandit save is queued */
    session_table_free(app->sessions); /* after the thread that syncs into it */
    sem_destroy(&rl->wake);
    pthread_mutex_destroy(&rl->mu);
    mem_free(rl->slots);
    mem_free(rl);
    mem_free(app);
}
