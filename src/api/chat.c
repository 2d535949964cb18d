/* chat.c — POST /v1/chat/completions, /v1/completions and /v1/route.
 *
 * A chat request flows: parse and validate (request.c) -> session state ->
 * router_decide (pure) -> exec (tiers, failover, cascade) -> response with the
 * switchyard object and headers (respond.c) -> ledger row, metrics, one log line
 * (account.c).
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
    return c;
}

static void big_free_tree(void *arg);
static void big_nop(void *arg);

void api_call_put(api_call_t *c)
{
    api_worker_t *w = c->w;
    /* A large request's tree (millions of nodes, possibly) is freed on the pool too. */
    if (c->big && c->req.json && w->app->big[0] &&
        !offload_submit(w->app->big[0], w->env.loop, big_free_tree, big_nop, big_free_tree,
                        c->req.json))
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

/* ------------------------------------------------------- privacy ---- */

/* The labels a request carries (tenant, team, feature, session, forced tier) are
 * identifiers written to the ledger, the log and cost reports: one holding personal
 * data is refused, and cleared so that nothing writes it. */
static int check_labels(api_scan_t *scan, api_call_t *c)
{
    static const struct {
        const char *name;
        size_t off;
    } labels[] = {
        {"tenant", offsetof(api_request_t, tenant)},
        {"team", offsetof(api_request_t, team)},
        {"feature", offsetof(api_request_t, feature)},
        {"session", offsetof(api_request_t, session)},
        {"tier", offsetof(api_request_t, forced_tier)},
    };
    int bad = -1;
    api_privacy_t pv = {0};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0] && bad < 0; i++) {
        const char *v = (const char *)&c->req + labels[i].off;
        if (!*v) continue;
        api_privacy_scan_text(scan, v, strlen(v), &pv);
        if (pv.types || pv.unknown) bad = (int)i;
    }
    if (bad < 0) return 0;
    char types[256];
    api_pii_names(pv.types, types, sizeof types);
    snprintf(c->prep_err, sizeof c->prep_err,
             "the %s label (metadata.%s or X-Switchyard-%c%s) holds personal data (%s): labels "
             "are identifiers and must not carry personal data",
             labels[bad].name, labels[bad].name, labels[bad].name[0] - 32, labels[bad].name + 1,
             pv.unknown ? "unknown" : types);
    snprintf(c->prep_param, sizeof c->prep_param, "metadata.%s", labels[bad].name);
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        *((char *)&c->req + labels[i].off) = 0;
    return 400;
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
    int rc = api_request_parse(&c->req, hr, completions, &c->arena, c->prep_err, sizeof c->prep_err,
                               c->prep_param, sizeof c->prep_param);
    if (rc) {
        c->prep_status = rc == SY_ETOOBIG ? 413 : 400;
        c->prep_code = rc == SY_EPARSE ? "invalid_json" : NULL;
        return;
    }
    if ((c->prep_status = check_labels(scan, c))) return;
    /* An error of the scan itself leaves pv.unknown set: fail closed. */
    api_privacy_scan(scan, &c->req, forward_unknown, &c->pv);
}

/* What the scan's findings require before routing: the types whose action is block
 * (a 403), and whether the request must stay local. A scan past a limit (unknown) is
 * treated as holding every type: blocked if any type's action is block, else local. */
static uint32_t scan_verdict(api_app_t *app, const api_privacy_t *pv, bool *local)
{
    uint32_t block = 0;
    bool any_block = false;
    for (int t = 0; t < PII_TYPE_COUNT; t++) {
        route_pii_action_t a = app->cfg->route.pii_action[t];
        any_block |= a == ROUTE_PII_BLOCK;
        if (!(pv->types & (1u << t))) continue;
        if (a == ROUTE_PII_BLOCK) block |= 1u << t;
        if (a == ROUTE_PII_LOCAL_ONLY) *local = true;
    }
    if (pv->unknown) {
        *local = true;
        if (any_block) block |= 1u << PII_TYPE_COUNT;
    }
    return block;
}

static void add_reason(route_decision_t *d, const char *what, uint32_t types, bool unknown)
{
    if (d->n_reasons >= ROUTE_MAX_REASONS) return;
    char names[200];
    api_pii_names(types & ((1u << PII_TYPE_COUNT) - 1), names, sizeof names);
    snprintf(d->reasons[d->n_reasons++], ROUTE_REASON_LEN, "scan:%.30s%s%s->%s", names,
             unknown && names[0] ? "," : "", unknown ? "unknown" : "", what);
}

/* Routing, masking and execution after the prepare step, on the worker loop. */
static void infer_continue(api_worker_t *w, api_call_t *c);

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
        app->big[i] = offload_new(API_BIG_PENDING);
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

/* POST /v1/chat/completions, /v1/completions, /v1/route. */
void api_handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                      bool route_only)
{
    api_app_t *app = w->app;
    api_call_t *c = api_call_get(w);
    c->res = res;
    c->start_us = hr->start_us ? hr->start_us : clock_mono_us();
    c->ts_ms = clock_wall_ms();
    c->completions = completions;
    c->route_only = route_only;
    make_id(app, c->id);
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
    bool completions = c->completions, route_only = c->route_only;
    bool fwd = app->cfg->forward_unknown == CONFIG_FORWARD_SCAN;
    if (c->prep_status) {
        api_send_error(w, res, c->prep_status, c->prep_type, c->prep_err, c->prep_param,
                       c->prep_code);
        metrics_count_request(&app->metrics, -1, 400);
        api_call_put(c);
        return;
    }
    char err[512];
    /* The gateway's scan covers every string that leaves; the router's only message
     * texts (its first findings of each). A type the scan found keeps the request
     * local through the router's input; a blocked one is refused here. */
    bool scan_local = false;
    uint32_t block = scan_verdict(app, &c->pv, &scan_local);
    if (scan_local) c->req.privacy_local_only = true;
    int st = decide(w, c, route_only, err, sizeof err);
    c->d.pii_types |= c->pv.types;
    if (scan_local) add_reason(&c->d, "local_only", c->pv.types, c->pv.unknown);
    if (block && st != 400) {
        add_reason(&c->d, "block", block, c->pv.unknown);
        char types[256];
        api_pii_names(block, types, sizeof types);
        snprintf(err, sizeof err, "the request holds personal data (%s%s%s) that policy blocks",
                 types, types[0] && block >> PII_TYPE_COUNT ? "," : "",
                 block >> PII_TYPE_COUNT ? "unknown: a scan limit was reached" : "");
        c->d.status = SY_EPRIVACY;
        c->d.tier = -1;
        c->d.n_order = 0;
        st = 403;
    }
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
    uint32_t mask_types = 0;
    for (int p = 0; p < PII_TYPE_COUNT; p++)
        if ((c->d.pii_types & (1u << p)) && app->cfg->route.pii_action[p] == ROUTE_PII_MASK)
            mask_types |= 1u << p;
    bool stream = c->req.stream;
    if (!st && mask_types && !c->d.local_only) {
        /* Mask, then scan again what would leave: a value that could not be masked (in
         * a key, a number, split across strings, past the mask's cap) keeps the request
         * on this machine. */
        int mrc = api_mask_request(w, c, mask_types);
        api_privacy_t after = {0};
        if (!mrc) api_privacy_scan(w->scan, &c->req, fwd, &after);
        if (mrc || after.unknown || (after.types & mask_types)) {
            c->req.privacy_local_only = true;
            st = decide(w, c, false, err, sizeof err);
            c->d.pii_types |= c->pv.types;
            add_reason(&c->d, "local_only", mrc ? mask_types : after.types & mask_types,
                       mrc || after.unknown);
        }
        /* Placeholders can split across stream chunks: take the whole answer, restore
         * it, and replay it as a stream. */
        stream = false;
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
    http_res_on_abort(res, on_client_abort, c);
    c->exec = exec_start(&w->env, &c->d, c->req.json, stream, completions, &api_exec_sink, c);
    if (!c->exec && !c->aborted) {
        /* exec_start refuses only a decision without a tier, which decide() caught. */
        api_send_error(w, res, 500, "internal_error", "routing produced no tier", NULL, NULL);
        api_call_put(c);
    }
}
