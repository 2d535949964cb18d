/* admin.c — the endpoints around inference: models, costs, feedback, readiness. */
#include "api/app_impl.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------- other routes ---- */

/* One entry of GET /v1/models: "auto" (tier < 0) or a tier with its switchyard
 * details (kind, model, version, privacy, role, health, capabilities). */
static void write_model(api_app_t *app, int tier, uint64_t now, jsonw_t *j)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "id");
    jsonw_str(j, tier < 0 ? "auto" : app->tiers[tier].s.name);
    jsonw_key(j, "object");
    jsonw_str(j, "model");
    jsonw_key(j, "created");
    jsonw_int(j, 0);
    jsonw_key(j, "owned_by");
    jsonw_str(j, "switchyard");
    if (tier < 0) {
        jsonw_obj_end(j);
        return;
    }
    tier_t *t = &app->tiers[tier];
    route_tier_t v;
    tier_route_view(t, now, &v);
    jsonw_key(j, "switchyard");
    jsonw_obj_begin(j);
    jsonw_key(j, "kind");
    jsonw_str(j, t->s.kind == TIER_KIND_LOCAL       ? "local"
                 : t->s.kind == TIER_KIND_ANTHROPIC ? "anthropic"
                                                    : "openai");
    jsonw_key(j, "model");
    jsonw_str(j, t->s.model);
    jsonw_key(j, "version");
    jsonw_str(j, *t->s.version ? t->s.version : NULL);
    jsonw_key(j, "privacy");
    jsonw_str(j, api_privacy_name(t->s.privacy));
    jsonw_key(j, "role");
    jsonw_str(j, t->s.role == ROUTE_ROLE_EDGE ? "edge" : "cloud");
    jsonw_key(j, "healthy");
    jsonw_bool(j, v.healthy);
    jsonw_key(j, "capabilities"); /* what requests it may be routed (docs/routing.md) */
    jsonw_arr_begin(j);
    for (int k = 0; k < ROUTE_CAP_COUNT; k++)
        if (v.caps & (1u << k)) jsonw_str(j, route_cap_name((route_cap_t)k));
    jsonw_arr_end(j);
    jsonw_key(j, "max_context");
    if (v.max_context)
        jsonw_uint(j, v.max_context);
    else
        jsonw_null(j);
    if (t->disabled) {
        jsonw_key(j, "unavailable");
        jsonw_str(j, t->disabled_why);
    }
    jsonw_obj_end(j);
    jsonw_obj_end(j);
}

void api_handle_models(api_worker_t *w, http_res_t *res, const char *id)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    uint64_t now = clock_mono_ms();
    if (id) {
        /* GET /v1/models/{id}: "auto", a tier name, or "switchyard/<tier>". */
        const char *name = !strncmp(id, "switchyard/", 11) ? id + 11 : id;
        int tier = -2;
        if (!strcmp(name, "auto"))
            tier = -1;
        else
            for (size_t i = 0; i < app->n_tiers && tier == -2; i++)
                if (!strcmp(app->tiers[i].s.name, name)) tier = (int)i;
        if (tier == -2) {
            char msg[300];
            snprintf(msg, sizeof msg,
                     "The model '%.200s' does not exist (GET /v1/models lists auto and the tiers)",
                     id);
            api_send_error(w, res, 404, "invalid_request_error", msg, "model", "model_not_found");
            return;
        }
        write_model(app, tier, now, &j);
        api_send_json(res, 200, b);
        return;
    }
    jsonw_obj_begin(&j);
    jsonw_key(&j, "object");
    jsonw_str(&j, "list");
    jsonw_key(&j, "data");
    jsonw_arr_begin(&j);
    write_model(app, -1, now, &j);
    for (size_t i = 0; i < app->n_tiers; i++)
        write_model(app, (int)i, now, &j);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    api_send_json(res, 200, b);
}

/* Reads one query parameter into out; false if absent. */
static bool query_get(const char *q, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > kl && q[kl] == '=' && !strncmp(q, key, kl)) {
            size_t vl = len - kl - 1, o = 0;
            for (size_t i = 0; i < vl && o + 1 < n; i++) {
                char ch = q[kl + 1 + i];
                if (ch == '+') ch = ' ';
                if (ch == '%' && i + 2 < vl + 1 && i + 2 <= vl) {
                    char hx[3] = {q[kl + 2 + i], q[kl + 3 + i], 0};
                    ch = (char)strtol(hx, NULL, 16);
                    i += 2;
                }
                out[o++] = ch;
            }
            out[o] = 0;
            return true;
        }
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

/* One cost group (or the total, with saved_pct and no key) as a JSON object. */
static void write_cost_row(jsonw_t *j, const store_cost_row_t *r, bool keyed)
{
    jsonw_obj_begin(j);
    if (keyed) {
        jsonw_key(j, "key");
        jsonw_str(j, r->key);
    }
    jsonw_key(j, "requests");
    jsonw_uint(j, r->requests);
    jsonw_key(j, "tokens_in");
    jsonw_uint(j, r->tokens_in);
    jsonw_key(j, "tokens_out");
    jsonw_uint(j, r->tokens_out);
    jsonw_key(j, "cost_usd");
    jsonw_double(j, r->cost_usd);
    jsonw_key(j, "cloud_cost_usd");
    jsonw_double(j, r->cloud_cost_usd);
    jsonw_key(j, "saved_usd");
    jsonw_double(j, r->saved_usd);
    if (!keyed) {
        jsonw_key(j, "saved_pct");
        jsonw_double(j, r->cloud_cost_usd > 0 ? 100.0 * r->saved_usd / r->cloud_cost_usd : 0);
    }
    jsonw_obj_end(j);
}

/* A report in flight (/v1/costs, /v1/versions): parsed on the worker loop, built on
 * the offload thread (a report over the whole ledger takes as long as the ledger is
 * big: it must not stall the loop's other connections), answered back on the loop. */

/* Offload thread: waits for the rows already queued to the ledger (so a report sees
 * every request answered before it), then builds the answer. */
static void report_work(void *arg)
{
    api_report_job_t *jb = arg;
    store_ledger_writer_flush(jb->w->app->ledger);
    jb->build(jb);
}

/* Frees the job. Also its offload drop(): at shutdown, a report whose loop stopped
 * before it could answer (the drain timed out) leaves the connection and its response
 * to the loop; only the job is ours. */
static void report_drop(void *arg)
{
    api_report_job_t *jb = arg;
    buf_deinit(&jb->body);
    mem_free(jb);
}

/* Worker loop: answers (a client that left meanwhile just releases the response). */
static void report_done(void *arg)
{
    api_report_job_t *jb = arg;
    api_worker_t *w = jb->w;
    if (jb->rc)
        api_send_error(w, jb->res, 500, "store_error", sy_strerror(jb->rc), NULL, NULL);
    else
        api_send_json(jb->res, 200, &jb->body);
    report_drop(jb);
    api_worker_release(w);
}

api_report_job_t *api_report_job_new(api_worker_t *w, http_res_t *res,
                                     void (*build)(api_report_job_t *), size_t body_cap)
{
    api_report_job_t *jb = mem_calloc(1, sizeof *jb);
    jb->w = w;
    jb->res = res;
    jb->build = build;
    buf_init(&jb->body, body_cap);
    return jb;
}

void api_report_submit(api_report_job_t *jb, http_req_t *hr)
{
    api_worker_t *w = jb->w;
    api_app_t *app = w->app;
    http_res_t *res = jb->res;
    char since_s[64] = "";
    if (query_get(hr->query, "since", since_s, sizeof since_s) &&
        store_since_parse(since_s, clock_wall_ms(), &jb->since)) {
        report_drop(jb);
        api_send_error(w, res, 400, "invalid_request_error",
                       "since must be a date (2026-11-28), an RFC 3339 time, Unix seconds or a "
                       "duration back from now (30m, 24h, 7d)",
                       "since", NULL);
        return;
    }
    if (!app->report_store || !app->offload) {
        report_drop(jb);
        api_send_error(w, res, 503, "store_unavailable", "the store is not open", NULL, NULL);
        return;
    }
    api_worker_hold(w); /* the report reads this worker's generation */
    if (offload_submit(app->offload, http_res_loop(res), report_work, report_done, report_drop,
                       jb)) {
        report_drop(jb);
        api_worker_release(w);
        http_res_header(res, "Retry-After", "1");
        api_send_error(w, res, 503, "server_busy", "too many reports are running; retry shortly",
                       NULL, NULL);
    }
}

/* Offload thread: the costs report as JSON. */
static void costs_build(api_report_job_t *jb)
{
    store_cost_row_t *rows = NULL;
    size_t n = 0;
    jb->rc = store_costs_query(jb->w->app->report_store, jb->by, jb->since, &rows, &n);
    if (jb->rc) return;
    jsonw_t j;
    jsonw_init(&j, &jb->body);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "group_by");
    jsonw_str(&j, jb->by_s);
    jsonw_key(&j, "since_ms");
    jsonw_int(&j, jb->since);
    jsonw_key(&j, "groups");
    jsonw_arr_begin(&j);
    store_cost_row_t tot = {0};
    for (size_t i = 0; i < n; i++) {
        write_cost_row(&j, &rows[i], true);
        tot.requests += rows[i].requests;
        tot.tokens_in += rows[i].tokens_in;
        tot.tokens_out += rows[i].tokens_out;
        tot.cost_usd += rows[i].cost_usd;
        tot.cloud_cost_usd += rows[i].cloud_cost_usd;
        tot.saved_usd += rows[i].saved_usd;
    }
    jsonw_arr_end(&j);
    jsonw_key(&j, "total");
    write_cost_row(&j, &tot, false);
    jsonw_obj_end(&j);
    free(rows);
}

void api_handle_costs(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    char by_s[32] = "team";
    query_get(hr->query, "group_by", by_s, sizeof by_s);
    store_group_t by;
    if (store_group_parse(by_s, &by)) {
        api_send_error(w, res, 400, "invalid_request_error",
                       "group_by must be one of team, tenant, feature, tier", "group_by", NULL);
        return;
    }
    api_report_job_t *jb = api_report_job_new(w, res, costs_build, 64u << 20);
    jb->by = by;
    snprintf(jb->by_s, sizeof jb->by_s, "%s", by_s);
    api_report_submit(jb, hr);
}

/* POST /v1/feedback {"id": "...", "reward": r}: a reward for a past request feeds the
 * bandit (with quality in 0..1, cost and latency weighed in by the config). */
void api_handle_feedback(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    api_app_t *app = w->app;
    cJSON *j = cJSON_ParseWithLength(hr->body, hr->body_len);
    cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
    cJSON *reward = j ? cJSON_GetObjectItemCaseSensitive(j, "reward") : NULL;
    char msg[200];
    if (!cJSON_IsObject(j)) {
        api_send_error(w, res, 400, "invalid_request_error", "the body must be a JSON object", NULL,
                       "invalid_json");
    } else if (!cJSON_IsString(id) || !*id->valuestring) {
        api_send_error(w, res, 400, "invalid_request_error", "'id' (the request id) is required",
                       "id", NULL);
    } else if (!cJSON_IsNumber(reward) || reward->valuedouble < -1 || reward->valuedouble > 1) {
        api_send_error(w, res, 400, "invalid_request_error", "'reward' must be a number in [-1, 1]",
                       "reward", NULL);
    } else {
        route_features_t f;
        int tier;
        if (!feedback_ring_take(app->feedback, id->valuestring, w->caller_key, &f, &tier)) {
            snprintf(msg, sizeof msg,
                     "no recent request with id '%.60s' awaits feedback (unknown, too old, or "
                     "already rated)",
                     id->valuestring);
            api_send_error(w, res, 404, "not_found", msg, "id", NULL);
        } else {
            int rc = router_feedback(app->router, &f, tier, reward->valuedouble);
            /* Stored by the store thread: never a store call on the loop. */
            storesync_feedback(app->sync, id->valuestring, reward->valuedouble, clock_wall_ms());
            atomic_fetch_add(&app->n_feedback, 1); /* shared by the store thread */
            buf_t *b = &w->scratch;
            buf_reset(b);
            buf_printf(b, "{\"ok\":true,\"tier\":\"%s\",\"applied\":%s}", app->tiers[tier].s.name,
                       rc == 0 ? "true" : "false");
            api_send_json(res, 200, b);
        }
    }
    cJSON_Delete(j);
}

/* GET /v1/admin/bandit: per tier (arm), the observations and reward sum in this
 * gateway's bandit state — the totals merged from every gateway on the store, as of
 * the last sync, plus this one's since — and how many of them are not shared yet. */
void api_handle_bandit(api_worker_t *w, http_res_t *res)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "policy");
    jsonw_str(&j, app->cfg->route.policy == ROUTE_POLICY_BANDIT ? "bandit" : "rules");
    jsonw_key(&j, "arms");
    jsonw_arr_begin(&j);
    for (size_t i = 0; i < app->n_tiers; i++) {
        uint64_t n, pending;
        double sum;
        router_bandit_arm_totals(app->router, (int)i, &n, &sum, &pending);
        jsonw_obj_begin(&j);
        jsonw_key(&j, "tier");
        jsonw_str(&j, app->tiers[i].s.name);
        jsonw_key(&j, "n");
        jsonw_int(&j, (int64_t)n);
        jsonw_key(&j, "reward_sum");
        jsonw_double(&j, sum);
        jsonw_key(&j, "pending");
        jsonw_int(&j, (int64_t)pending);
        jsonw_obj_end(&j);
    }
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    api_send_json(res, 200, b);
}

void api_handle_ready(api_worker_t *w, http_res_t *res)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    jsonw_t j;
    jsonw_init(&j, b);
    bool any = false;
    uint64_t now = clock_mono_ms();
    jsonw_obj_begin(&j);
    jsonw_key(&j, "tiers");
    jsonw_obj_begin(&j);
    for (size_t i = 0; i < app->n_tiers; i++) {
        route_tier_t v;
        tier_route_view(&app->tiers[i], now, &v);
        any |= v.healthy;
        jsonw_key(&j, app->tiers[i].s.name);
        jsonw_str(&j, app->tiers[i].disabled ? app->tiers[i].disabled_why
                      : v.healthy            ? "ready"
                                             : "circuit open");
    }
    jsonw_obj_end(&j);
    bool draining = atomic_load(&app->draining);
    jsonw_key(&j, "status");
    jsonw_str(&j, draining ? "draining" : any ? "ready" : "no tier available");
    jsonw_obj_end(&j);
    api_send_json(res, !draining && any ? 200 : 503, b);
}
