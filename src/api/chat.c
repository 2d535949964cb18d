/* chat.c — POST /v1/chat/completions, /v1/completions and /v1/route.
 *
 * A chat request flows: parse and validate (request.c) -> session state ->
 * router_decide (pure) -> exec (tiers, failover, cascade) -> response with the
 * switchyard object and headers (respond.c) -> ledger row, metrics, one log line
 * (account.c).
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

/* Resolves the tier a request forces: metadata/header "tier", or a model name that
 * is a tier name or "switchyard/<tier>". */
static const char *forced_tier(api_app_t *app, api_request_t *r)
{
    if (r->forced_tier[0]) return r->forced_tier;
    const char *m = r->model;
    if (!strncmp(m, "switchyard/", 11)) m += 11;
    for (size_t i = 0; i < app->n_tiers; i++)
        if (!strcmp(app->tiers[i].s.name, m)) return app->tiers[i].s.name;
    return NULL;
}

/* Runs the router for a parsed request. Returns the HTTP status to refuse with,
 * or 0 to go on. dry (POST /v1/route): decide only, leave session state alone. */
static int decide(api_worker_t *w, api_call_t *c, bool dry, char *msg, size_t msglen)
{
    api_app_t *app = w->app;
    route_tier_t views[ROUTE_MAX_TIERS];
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
    route_input_t in = {
        .texts = c->req.texts,
        .n_texts = c->req.n_texts,
        .n_messages = c->req.n_messages,
        .max_tokens = c->req.max_tokens,
        .forced_tier = forced_tier(app, &c->req),
        .privacy_local_only = c->req.privacy_local_only,
        .session_private = known && si.private_,
        .now_us = clock_mono_us(),
        .rand_seed = atomic_load(&app->seq) * 0x9e3779b97f4a7c15ull ^ app->id_salt,
    };
    uint64_t t0 = clock_mono_ns();
    int rc = router_decide(app->router, w->rs, &in, views, app->n_tiers, &c->d);
    c->decision_ns = clock_mono_ns() - t0;
    metrics_hist_observe(&app->metrics.decision, c->decision_ns);
    if (rc) {
        snprintf(msg, msglen, "routing failed: %s", sy_strerror(rc));
        return 500;
    }
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
    int forced = in.forced_tier ? config_tier_find(app->cfg, in.forced_tier) : -1;
    if (c->d.status && c->d.local_only && forced >= 0 &&
        app->tiers[forced].s.privacy == ROUTE_PRIVACY_EXTERNAL) {
        snprintf(msg, msglen,
                 "the request must stay on this machine (personal data or a private "
                 "session), but it forces the external tier '%s'",
                 in.forced_tier);
        return 403;
    }
    /* Under local_only no cloud tier is eligible, so nothing can escalate; the edge
     * still scores its answer so a low-confidence one is marked as such. */
    if (c->d.status == 0 && !c->d.cascade && app->cfg->route.escalation_enabled && c->d.tier >= 0 &&
        app->tiers[c->d.tier].s.role == ROUTE_ROLE_EDGE && app->tiers[c->d.tier].s.logprobs &&
        c->d.local_only && !in.forced_tier) {
        c->d.cascade = true;
        c->d.min_confidence = app->cfg->route.escalation_min_confidence;
    }
    switch (c->d.status) {
    case 0:
        return 0;
    case SY_EINVAL:
        snprintf(msg, msglen, "unknown tier '%s' (GET /v1/models lists them)", in.forced_tier);
        return 400;
    case SY_EPRIVACY: {
        char types[256];
        api_pii_names(c->d.pii_types, types, sizeof types);
        snprintf(msg, msglen, "the request holds personal data (%s) that policy blocks", types);
        return 403;
    }
    default:
        snprintf(msg, msglen, "no eligible tier can serve this request%s",
                 c->d.local_only ? ": it must stay on this machine (personal data or a private "
                                   "session) and no local tier is available"
                                 : "");
        return 503;
    }
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
    int st = decide(w, c, route_only, err, sizeof err);
    if (route_only) {
        buf_t *b = &w->scratch;
        buf_reset(b);
        jsonw_t j;
        jsonw_init(&j, b);
        route_tier_t views[ROUTE_MAX_TIERS];
        for (size_t i = 0; i < app->n_tiers; i++)
            tier_route_view(&app->tiers[i], clock_mono_ms(), &views[i]);
        jsonw_obj_begin(&j);
        jsonw_key(&j, "decision");
        route_decision_write_json(&c->d, views, &j);
        jsonw_key(&j, "status");
        jsonw_int(&j, st ? st : 200);
        if (st) {
            jsonw_key(&j, "message");
            jsonw_str(&j, err);
        }
        jsonw_key(&j, "decision_us");
        jsonw_double(&j, (double)c->decision_ns / 1000.0);
        jsonw_obj_end(&j);
        api_send_json(res, 200, b);
        api_call_put(c);
        return;
    }
    if (st) {
        exec_result_t none = {0};
        none.tier = -1;
        api_set_sy_headers(c, &none, -1);
        api_send_error(w, res, st,
                       st == 403   ? "privacy_blocked"
                       : st == 503 ? "tier_unavailable"
                                   : "invalid_request_error",
                       err, st == 400 ? "tier" : NULL, NULL);
        api_account(c, &none, st, 0);
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
