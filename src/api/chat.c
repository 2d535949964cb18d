/* chat.c — POST /v1/chat/completions, /v1/completions and /v1/route.
 *
 * A chat request flows: parse and validate (request.c) -> session state ->
 * api_decide (decide.c: the one decision path, router_decide inside) -> exec (tiers, failover,
 * cascade) -> response with the switchyard object and headers (respond.c) -> ledger row, metrics,
 * one log line (account.c).
 */
#include "api/app_impl.h"
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------ call pool ---- */

api_call_t *api_call_get(api_worker_t *w)
{
    api_call_t *c = w->free_calls;
    if (c) {
        w->free_calls = c->next_free;
    } else {
        c = mem_calloc(1, sizeof *c);
        arena_init(&c->arena, 16384);
        buf_init(&c->out, 32u << 20);
        buf_init(&c->restored, 32u << 20);
    }
    c->next_free = NULL;
    c->w = w;
    c->exec = NULL;
    c->aborted = false;
    c->masked_types = 0;
    return c;
}

void api_call_put(api_call_t *c)
{
    api_worker_t *w = c->w;
    api_request_deinit(&c->req);
    pii_mask_free(c->mask);
    c->mask = NULL;
    buf_reset(&c->restored);
    arena_reset(&c->arena);
    buf_reset(&c->out);
    if (c->out.cap > (1u << 20)) buf_deinit(&c->out), buf_init(&c->out, 32u << 20);
    c->next_free = w->free_calls;
    w->free_calls = c;
}

void api_call_free(api_call_t *c)
{
    arena_deinit(&c->arena);
    buf_deinit(&c->out);
    buf_deinit(&c->restored);
    mem_free(c);
}

static void on_client_abort(void *arg)
{
    api_call_t *c = arg;
    c->aborted = true;
    if (c->exec) exec_abort(c->exec); /* calls on_done, which finishes res */
}

/* --------------------------------------------------------- routing ---- */

/* Decides a parsed request through the one decision path (decide.h), around it
 * the I/O the pure path does not do: live tier state, the session's private mark
 * (this instance's table, else the shared store), metrics, and, unless dry (POST
 * /v1/route), marking the session private when the request holds personal data.
 * Fills *a with the answer for a refusal (http_status 200 when a tier serves);
 * returns 0, or a negative error when routing itself failed. */
static int decide(api_worker_t *w, api_call_t *c, bool dry, route_tier_t *views, api_refusal_t *a)
{
    api_app_t *app = w->app;
    uint64_t now_ms = clock_mono_ms();
    for (size_t i = 0; i < app->n_tiers; i++)
        tier_route_view(&app->tiers[i], now_ms, &views[i]);
    session_info_t si = {0};
    bool known = c->req.session[0] && session_get(app->sessions, c->req.session, &si);
    if (c->req.session[0] && !known && app->store) {
        /* Not seen by this instance: another gateway sharing the store (or this one
         * before a restart) may have marked it private. */
        store_session_t ss;
        pthread_mutex_lock(&app->store_mu);
        int src = store_session_get(app->store, c->req.session, &ss);
        pthread_mutex_unlock(&app->store_mu);
        if (src == 0) {
            known = true;
            si.private_ = ss.is_private;
            session_record(app->sessions, c->req.session, ss.is_private, -1, c->ts_ms);
        }
    }
    api_session_state_t state = {.is_private = known && si.private_};
    uint64_t t0 = clock_mono_ns();
    int rc = api_decide(app->cfg, app->router, w->rs, &c->req, &state, views, clock_mono_us(),
                        atomic_load(&app->seq) * 0x9e3779b97f4a7c15ull ^ app->id_salt, &c->d);
    c->decision_ns = clock_mono_ns() - t0;
    metrics_hist_observe(&app->metrics.decision, c->decision_ns);
    if (rc) return rc;
    for (int i = 0; i < c->d.n_reasons; i++)
        metrics_count_reason(&app->metrics, c->d.reasons[i]);
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if (c->d.pii_types & (1u << p)) atomic_fetch_add(&app->metrics.pii_hits[p], 1);
    if (c->d.pii_types && c->req.session[0] && !dry) {
        bool was_private = known && si.private_;
        session_record(app->sessions, c->req.session, true, -1, c->ts_ms);
        if (!was_private && app->store) {
            /* Write through at once: the private mark must outlive this process and be
             * seen by every gateway sharing the store. */
            store_session_t ss;
            pthread_mutex_lock(&app->store_mu);
            store_session_turn(app->store, c->req.session, "", true, c->ts_ms, &ss);
            pthread_mutex_unlock(&app->store_mu);
        }
    }
    api_decision_http(&c->d, views, a);
    return 0;
}

static void make_id(api_app_t *app, char out[40])
{
    uint64_t n = atomic_fetch_add(&app->seq, 1) + 1;
    uint64_t h = hash_mix(n ^ app->id_salt);
    /* "chatcmpl-sy%016" PRIx64, without printf */
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "chatcmpl-sy", 11);
    for (int i = 15; i >= 0; i--, h >>= 4)
        out[11 + i] = hex[h & 15];
    out[27] = 0;
}

/* POST /v1/chat/completions, /v1/completions, /v1/route. */
void api_handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                      bool route_only)
{
    api_app_t *app = w->app;
    api_call_t *c = api_call_get(w);
    c->res = res;
    c->start_us = hr->start_us ? hr->start_us : clock_mono_us();
    c->ts_ms = clock_wall_ms();
    make_id(app, c->id);
    char err[512], param[64];
    int rc = api_request_parse(&c->req, hr, completions, &c->arena, err, sizeof err, param,
                               sizeof param);
    if (rc) {
        api_send_error(w, res, rc == SY_ETOOBIG ? 413 : 400, "invalid_request_error", err, param,
                       rc == SY_EPARSE ? "invalid_json" : NULL);
        metrics_count_request(&app->metrics, -1, 400);
        api_call_put(c);
        return;
    }
    route_tier_t views[ROUTE_MAX_TIERS];
    api_refusal_t a;
    rc = decide(w, c, route_only, views, &a);
    if (rc) {
        snprintf(err, sizeof err, "routing failed: %s", sy_strerror(rc));
        api_send_error(w, res, 500, "internal_error", err, NULL, NULL);
        api_call_put(c);
        return;
    }
    if (route_only) {
        buf_t *b = &w->scratch;
        buf_reset(b);
        jsonw_t j;
        jsonw_init(&j, b);
        api_decision_write_json(&c->d, views, &a, (double)c->decision_ns / 1000.0, &j);
        api_send_json(res, 200, b);
        api_call_put(c);
        return;
    }
    if (a.http_status != 200) {
        exec_result_t none = {0};
        none.tier = -1;
        api_set_sy_headers(c, &none, -1);
        api_send_error(w, res, a.http_status, a.type, a.message, a.param, a.code);
        api_account(c, &none, a.http_status, 0);
        api_call_put(c);
        return;
    }
    uint32_t mask_types = 0;
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if ((c->d.pii_types & (1u << p)) && app->cfg->route.pii_action[p] == ROUTE_PII_MASK)
            mask_types |= 1u << p;
    bool stream = c->req.stream;
    if (mask_types && !c->d.local_only) {
        int mrc = api_mask_request(w, c, mask_types);
        if (mrc) {
            snprintf(err, sizeof err, "cannot mask personal data: %s", sy_strerror(mrc));
            api_send_error(w, res, 500, "internal_error", err, NULL, NULL);
            api_call_put(c);
            return;
        }
        c->masked_types = mask_types;
        /* Placeholders can split across stream chunks: take the whole answer, restore
         * it, and replay it as a stream. */
        stream = false;
    }
    http_res_on_abort(res, on_client_abort, c);
    c->exec = exec_start(&w->env, &c->d, c->req.json, stream, completions, &api_exec_sink, c);
    if (!c->exec && !c->aborted) {
        /* exec_start refuses only a decision without a tier, which decide() caught. */
        api_send_error(w, res, 500, "internal_error", "routing produced no tier", NULL, NULL);
        api_call_put(c);
    }
}
