/* chat.c — POST /v1/chat/completions, /v1/completions and /v1/route.
 *
 * A chat request flows: parse and validate (request.c) -> session state ->
 * api_decide (decide.c: the one decision path, router_decide inside) -> exec (tiers, failover,
 * cascade) -> response with the switchyard object and headers (respond.c) -> ledger row, metrics,
 * one log line (account.c).
 */
#include "api/app_impl.h"
#include <cjson/cJSON.h>
#include <errno.h>
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
        buf_init(&c->rest, 1u << 30);
    }
    c->next_free = NULL;
    c->w = w;
    c->exec = NULL;
    c->aborted = false;
    c->masked_types = 0;
    c->stream_id[0] = c->stream_model[0] = 0;
    c->embeddings = false;
    c->key = -1;
    c->tpm_taken = 0;
    c->budget_want = c->budget_reserved = 0;
    c->limits_cont = NULL;
    c->anthropic = false;
    api_worker_hold(w);
    return c;
}

static void big_free_tree(void *arg);
static void big_nop(void *arg);

void api_call_put(api_call_t *c)
{
    api_worker_t *w = c->w;
    api_anthropic_unlink(c);
    /* A large request's tree (millions of nodes, possibly) is freed on the pool too,
     * even when its queues are full: freeing it here would stall the loop. */
    if (c->big && c->req.json && w->app->big[0] &&
        !offload_submit_release(
            w->app->big[atomic_fetch_add(&w->app->big_next, 1) % API_BIG_THREADS], w->env.loop,
            big_free_tree, big_nop, big_free_tree, c->req.json))
        c->req.json = NULL;
    c->big = false;
    c->rest_ok = false;
    buf_reset(&c->rest);
    if (c->rest.cap > (1u << 20)) buf_deinit(&c->rest), buf_init(&c->rest, 1u << 30);
    api_request_deinit(&c->req);
    pii_mask_free(c->mask);
    c->mask = NULL;
    buf_reset(&c->restored);
    arena_reset(&c->arena);
    buf_reset(&c->out);
    if (c->out.cap > (1u << 20)) buf_deinit(&c->out), buf_init(&c->out, 32u << 20);
    c->next_free = w->free_calls;
    w->free_calls = c;
    api_worker_release(w);
}

void api_call_free(api_call_t *c)
{
    arena_deinit(&c->arena);
    buf_deinit(&c->out);
    buf_deinit(&c->restored);
    buf_deinit(&c->rest);
    mem_free(c);
}

static void on_client_abort(void *arg)
{
    api_call_t *c = arg;
    c->aborted = true;
    if (c->exec) exec_abort(c->exec); /* calls on_done, which finishes res */
}

/* --------------------------------------------------------- routing ---- */

/* Decides a prepared request through the one decision path (decide.h): the scan of
 * what would leave (c->pv) and the types whose masking did not hold (unmasked) are
 * inputs, like the session's private mark; around it the I/O the pure path does not
 * do: live tier state, metrics, and, unless dry (POST /v1/route), marking the
 * session private when the request holds personal data. Fills *a with the answer
 * for a refusal (http_status 200 when a tier serves); 0, or a negative error when
 * routing itself failed. */
static int decide(api_worker_t *w, api_call_t *c, bool dry, uint32_t unmasked, route_tier_t *views,
                  api_refusal_t *a)
{
    api_app_t *app = w->app;
    uint64_t now_ms = clock_mono_ms();
    for (size_t i = 0; i < app->n_tiers; i++)
        tier_route_view(&app->tiers[i], now_ms, &views[i]);
    session_info_t si = {0};
    bool known = c->req.session[0] && session_get(app->sessions, c->req.session, &si);
    /* Sessions marked private by another gateway sharing the store (or by this one
     * before a restart) reach the table through the store thread (storesync.h): no
     * store call on the loop. */
    api_session_state_t state = {.is_private = known && si.private_};
    uint64_t t0 = clock_mono_ns();
    int rc = api_decide(app->cfg, app->router, w->rs, &c->req, &state, &c->pv, unmasked, views,
                        clock_mono_us(),
                        atomic_load(&app->seq) * 0x9e3779b97f4a7c15ull ^ app->id_salt, &c->d);
    c->decision_ns = clock_mono_ns() - t0;
    c->decided_us = clock_mono_us();
    metrics_hist_observe(&app->metrics.decision, c->decision_ns);
    if (rc) return rc;
    for (int i = 0; i < c->d.n_reasons; i++)
        metrics_count_reason(&app->metrics, c->d.reasons[i]);
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if (c->d.pii_types & (1u << p)) atomic_fetch_add(&app->metrics.pii_hits[p], 1);
    if (c->d.pii_types && c->req.session[0] && !dry) {
        bool was_private = known && si.private_;
        session_record(app->sessions, c->req.session, true, -1, c->ts_ms);
        if (!was_private) {
            /* Written through by the store thread at once: the private mark must
             * outlive this process and be seen by every gateway sharing the store. */
            storesync_session_private(app->sync, c->req.session, c->ts_ms);
        }
    }
    api_decision_http(&c->d, views, a);
    if (c->req.prompt_tokens && (a->http_status == 403 || a->http_status == 503))
        snprintf(a->message, sizeof a->message,
                 "a prompt of token ids is served only by local tiers (ids cannot be scanned "
                 "for personal data, so they never leave this machine), and no local tier can "
                 "serve this request%s",
                 a->http_status == 403 ? " (it forces an external tier)" : "");
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

/* ------------------------------------------------------- privacy ---- */

/* The label check (decide.c), its outcome in c->prep_*. */
static int check_labels(api_scan_t *scan, api_call_t *c)
{
    return api_request_check_labels(scan, &c->req, c->prep_err, sizeof c->prep_err, c->prep_param,
                                    sizeof c->prep_param);
}

/* Parse, label check and the privacy scan of everything that would leave: CPU work
 * over the body alone, safe on any thread that owns scan. Sets c->prep_*. */
static void infer_prepare(api_call_t *c, api_scan_t *scan, const http_req_t *hr, bool completions,
                          bool forward_unknown)
{
    c->prep_status = 0;
    c->prep_code = NULL;
    c->prep_type = "invalid_request_error";
    memset(&c->pv, 0, sizeof c->pv);
    int rc =
        c->anthropic ? api_anthropic_parse(&c->req, hr, &c->arena, c->prep_err, sizeof c->prep_err,
                                           c->prep_param, sizeof c->prep_param)
        : c->embeddings
            ? api_request_parse_embeddings(&c->req, hr, &c->arena, c->prep_err, sizeof c->prep_err,
                                           c->prep_param, sizeof c->prep_param)
            : api_request_parse(&c->req, hr, completions, &c->arena, c->prep_err,
                                sizeof c->prep_err, c->prep_param, sizeof c->prep_param);
    if (rc) {
        c->prep_status = rc == SY_ETOOBIG ? 413 : 400;
        c->prep_code = rc == SY_EPARSE ? "invalid_json" : NULL;
        return;
    }
    if ((c->prep_status = check_labels(scan, c))) return;
    /* An error of the scan itself leaves pv.unknown set: fail closed. */
    api_privacy_scan(scan, &c->req, forward_unknown, &c->pv);
}

/* Routing, masking and execution after the prepare step, on the worker loop. */
static void infer_continue(api_worker_t *w, api_call_t *c);
static void dispatch(api_call_t *c);

/* --------------------------------------------------- large bodies ---- */

/* A large body's prepare step runs on the pool: a multi-megabyte body of tiny JSON
 * nodes takes a loop hundreds of milliseconds to parse and scan, which every other
 * connection of that worker would wait for. */
typedef struct big_job {
    api_call_t *c;
    http_req_t *hr;
    api_scan_t *scan;
    bool fwd;
} big_job_t;

static void big_work(void *arg)
{
    big_job_t *jb = arg;
    api_call_t *c = jb->c;
    infer_prepare(c, jb->scan, jb->hr, c->completions, jb->fwd);
    /* What every attempt sends but its head, rendered here rather than on the loop. */
    if (!c->prep_status && !c->route_only) {
        buf_reset(&c->rest);
        c->rest_ok = !api_render_rest(&c->req, jb->fwd, &c->rest);
    }
}

static void big_done(void *arg)
{
    big_job_t *jb = arg;
    api_call_t *c = jb->c;
    mem_free(jb);
    if (c->aborted) {
        /* The client left while its body was scanned: just release the response. */
        api_send_error(c->w, c->res, 499, "client_closed", "the client went away", NULL, NULL);
        api_call_put(c);
        return;
    }
    infer_continue(c->w, c);
}

/* The loop stopped first (shutdown past the drain): release the call only. */
static void big_drop(void *arg)
{
    big_job_t *jb = arg;
    api_anthropic_unlink(jb->c);
    api_request_deinit(&jb->c->req);
    pii_mask_free(jb->c->mask);
    api_call_free(jb->c);
    mem_free(jb);
}

static void big_free_tree(void *arg)
{
    cJSON_Delete(arg);
}

static void big_nop(void *arg)
{
    (void)arg;
}

int api_big_start(api_app_t *app)
{
    for (int i = 0; i < API_BIG_THREADS; i++) {
        app->big[i] = offload_new_nice(API_BIG_PENDING, API_BIG_NICE);
        if (!app->big[i]) return -EAGAIN;
        app->big_scan[i] = api_scan_new(app->pii, app->cfg->route.pii_min_score);
    }
    return 0;
}

void api_big_stop(api_app_t *app)
{
    for (int i = 0; i < API_BIG_THREADS; i++) {
        offload_free(app->big[i]);
        app->big[i] = NULL;
        api_scan_free(app->big_scan[i]);
        app->big_scan[i] = NULL;
    }
}

static void infer_start(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                        bool route_only, bool anthropic, bool embeddings);

/* POST /v1/chat/completions, /v1/completions, /v1/route. */
void api_handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                      bool route_only)
{
    infer_start(w, hr, res, completions, route_only, false, false);
}

/* POST /v1/messages: an Anthropic body onto the same typed request and path. */
void api_handle_messages(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    infer_start(w, hr, res, false, false, true, false);
}

/* POST /v1/embeddings: the same way as chat (parse, scan, decide under the privacy
 * policy and the embeddings capability, mask, limits, exec, ledger), with its own
 * typed parse (request.c) and body (render.c). */
void api_handle_embeddings(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    infer_start(w, hr, res, false, false, false, true);
}

static void infer_start(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                        bool route_only, bool anthropic, bool embeddings)
{
    api_app_t *app = w->app;
    api_call_t *c = api_call_get(w);
    if (anthropic) api_anthropic_link(c);
    c->embeddings = embeddings;
    c->res = res;
    c->start_us = hr->start_us ? hr->start_us : clock_mono_us();
    c->body_bytes = hr->body_len;
    c->ts_ms = clock_wall_ms();
    api_trace_begin(c, hr);
    c->completions = completions;
    c->route_only = route_only;
    make_id(app, c->id);
    c->key = w->caller_key;
    bool fwd = app->cfg->forward_unknown == CONFIG_FORWARD_SCAN;
    if (hr->body_len > API_BIG_BODY && app->big[0]) {
        unsigned i = atomic_fetch_add(&app->big_next, 1) % API_BIG_THREADS;
        c->big = true;
        big_job_t *jb = mem_calloc(1, sizeof *jb);
        *jb = (big_job_t){c, hr, app->big_scan[i], fwd};
        http_res_on_abort(res, on_client_abort, c);
        if (offload_submit(app->big[i], http_res_loop(res), big_work, big_done, big_drop, jb)) {
            mem_free(jb);
            http_res_on_abort(res, NULL, NULL);
            http_res_header(res, "Retry-After", "1");
            api_send_error(w, res, 503, "server_busy",
                           "too many large requests are being read; retry shortly", NULL, NULL);
            metrics_count_request(&app->metrics, -1, 503);
            api_call_put(c);
        }
        return;
    }
    infer_prepare(c, w->scan, hr, completions, fwd);
    infer_continue(w, c);
}

static void infer_continue(api_worker_t *w, api_call_t *c)
{
    api_app_t *app = w->app;
    http_res_t *res = c->res;
    bool route_only = c->route_only;
    bool fwd = app->cfg->forward_unknown == CONFIG_FORWARD_SCAN;
    if (c->prep_status) {
        api_send_error(w, res, c->prep_status, c->prep_type, c->prep_err, c->prep_param,
                       c->prep_code);
        metrics_count_request(&app->metrics, -1, 400);
        api_call_put(c);
        return;
    }
    if (c->key >= 0) {
        /* The key fixes team and tenant: client metadata cannot charge another team. */
        const config_key_t *k = &app->cfg->auth.keys[c->key];
        if (*k->team) snprintf(c->req.team, sizeof c->req.team, "%s", k->team);
        if (*k->tenant) snprintf(c->req.tenant, sizeof c->req.tenant, "%s", k->tenant);
    }
    char err[512];
    route_tier_t views[ROUTE_MAX_TIERS];
    api_refusal_t a;
    int rc = decide(w, c, route_only, 0, views, &a);
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
    uint32_t mask_types = 0;
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if ((c->d.pii_types & (1u << p)) && app->cfg->route.pii_action[p] == ROUTE_PII_MASK)
            mask_types |= 1u << p;
    bool stream = c->req.stream;
    if (a.http_status == 200 && mask_types && !c->d.local_only) {
        /* Mask, then scan again what would leave: a value that could not be masked (in
         * a key, a number, split across strings, past the mask's cap) is an input of a
         * new decision, which keeps those types on this machine. */
        int mrc = api_mask_request(w, c, mask_types);
        api_privacy_t after = {0};
        if (!mrc) api_privacy_scan(w->scan, &c->req, fwd, &after);
        uint32_t unmasked = mrc || after.unknown ? mask_types : after.types & mask_types;
        if (unmasked) {
            rc = decide(w, c, false, unmasked, views, &a);
            if (rc) {
                snprintf(err, sizeof err, "routing failed: %s", sy_strerror(rc));
                api_send_error(w, res, 500, "internal_error", err, NULL, NULL);
                api_call_put(c);
                return;
            }
        } else {
            c->masked_types = mask_types;
        }
        /* Placeholders can split across stream chunks: take the whole answer, restore
         * it, and replay it as a stream. */
        stream = false;
    }
    if (a.http_status != 200) {
        exec_result_t none = {0};
        none.tier = -1;
        api_set_sy_headers(c, &none, -1);
        api_account(c, &none, a.http_status, 0); /* journaled before the answer leaves */
        api_send_error(w, res, a.http_status, a.type, a.message, a.param, a.code);
        api_call_put(c);
        return;
    }
    c->send_stream = stream;
    http_res_on_abort(res, on_client_abort, c);
    if (api_limits_begin(c, dispatch)) return; /* refused, or resumed once reserved */
    dispatch(c);
}

/* prompt_cache_key names a cache whose use answers reveal (usage's cached_tokens says
 * how much of a prompt another request under the key began with): under keys, each
 * caller's key gets its own namespace, so one key cannot probe another's prompts. */
static void scope_cache_key(api_call_t *c)
{
    cJSON *k = c->req.field[API_F_PROMPT_CACHE_KEY];
    if (c->key < 0 || !cJSON_IsString(k)) return;
    const config_key_t *ck = &c->w->app->cfg->auth.keys[c->key];
    char scoped[512];
    snprintf(scoped, sizeof scoped, "%s/%s", ck->name, k->valuestring);
    cJSON_SetValuestring(k, scoped);
}

/* Sends a decided call to its tier(s). */
static void dispatch(api_call_t *c)
{
    api_worker_t *w = c->w;
    scope_cache_key(c);
    http_res_t *res = c->res;
    exec_endpoint_t ep = c->embeddings    ? EXEC_EP_EMBEDDINGS
                         : c->completions ? EXEC_EP_COMPLETIONS
                                          : EXEC_EP_CHAT;
    c->exec = exec_start_ep(&w->env, &c->d, c->req.json, c->send_stream, ep, &api_exec_sink, c);
    if (!c->exec && !c->aborted) {
        /* exec_start refuses only a decision without a tier, which decide() caught. */
        api_send_error(w, res, 500, "internal_error", "routing produced no tier", NULL, NULL);
        api_call_put(c);
    }
}
