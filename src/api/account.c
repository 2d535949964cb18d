/* account.c — after each inference request: metrics, one ledger row and one log
 * line. Personal data never reaches logs or the ledger: only entity type names do.
 */
#include "api/app_impl.h"
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------- costs ---- */

static int reference_tier(const api_app_t *app)
{
    return app->ref_tier;
}

void api_pii_names(uint32_t mask, char *out, size_t n)
{
    out[0] = 0;
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        if (mask & (1u << t)) {
            if (out[0]) strncat(out, ",", n - strlen(out) - 1);
            strncat(out, pii_type_name((pii_type_t)t), n - strlen(out) - 1);
        }
}

/* ------------------------------------------------------ versions ---- */

void api_version_fields(const api_app_t *app, const route_decision_t *d, const exec_result_t *r,
                        store_ledger_row_t *row)
{
    const tier_t *served = r && r->tier >= 0 ? &app->tiers[r->tier] : NULL;
    row->version = served ? served->s.version : "";
    /* Refused before any tier was called (a limit, no eligible tier): not a
     * version's request. */
    if (!r || !r->tiers_sent || d->tier < 0 || (size_t)d->tier >= app->n_tiers) return;
    const tier_t *first = &app->tiers[d->tier];
    row->first_tier = first->s.name;
    row->first_version = first->s.version;
    row->has_confidence = r->has_confidence;
    row->confidence = r->confidence;
    if (!d->cascade || first->s.role != ROUTE_ROLE_EDGE) return;
    /* The escalation target: where it went, or where it would have gone. */
    int target = -1;
    if (r->escalated)
        target = r->tier;
    else
        for (int i = 1; i < d->n_order && target < 0; i++)
            if (app->tiers[d->order[i]].s.role == ROUTE_ROLE_CLOUD) target = d->order[i];
    if (target < 0) return;
    row->cloud_tier = app->tiers[target].s.name;
    row->cloud_version = app->tiers[target].s.version;
}

/* ---------------------------------------------------- accounting ---- */

void api_account(api_call_t *c, const exec_result_t *r, int status, double cost)
{
    api_app_t *app = c->w->app;
    api_limits_end(c, r, cost);
    uint64_t total_us = clock_mono_us() - c->start_us;
    int tier = r ? r->tier : -1;
    metrics_count_request(&app->metrics, tier, status);
    if (tier >= 0) {
        metrics_hist_observe(&app->metrics.total[tier], total_us * 1000);
        if (r->ttft_us) metrics_hist_observe(&app->metrics.ttft[tier], r->ttft_us * 1000);
    }
    if (r && r->escalated) atomic_fetch_add(&app->metrics.escalations, 1);
    if (r && r->degraded) atomic_fetch_add(&app->metrics.degraded, 1);
    if (r && r->failover && c->d.tier >= 0) atomic_fetch_add(&app->metrics.failovers[c->d.tier], 1);

    char reasons[1024], pii[256];
    api_join_reasons(c, r, reasons, sizeof reasons);
    api_pii_names(c->d.pii_types, pii, sizeof pii);
    const tier_t *t = tier >= 0 ? &app->tiers[tier] : NULL;
    uint32_t tin = r && r->tokens_in ? r->tokens_in : c->d.est_tokens_in;
    uint32_t tout = r ? r->tokens_out : 0;
    int ref = reference_tier(app);
    double cloud_cost = ref >= 0 ? tier_cost_usd(&app->tiers[ref], tin, tout) : cost;
    dash_record(&app->dash, clock_wall_ms(), c->id, c->ts_ms, tier, status, reasons, pii, cost,
                t ? cloud_cost : 0);
    char model[256] = "";
    if (t && *t->s.version)
        snprintf(model, sizeof model, "%s@%s", t->s.model, t->s.version);
    else if (t) {
        size_t n = strnlen(t->s.model, sizeof model - 1); /* as snprintf "%s" truncates */
        memcpy(model, t->s.model, n);
        model[n] = 0;
    }

    if (app->ledger) {
        store_ledger_row_t row = {0};
        size_t idn = strnlen(c->id, sizeof row.id - 1);
        memcpy(row.id, c->id, idn); /* row is zeroed: NUL-terminated */
        row.ts_ms = c->ts_ms;
        row.tenant = c->req.tenant;
        row.team = c->req.team;
        row.feature = c->req.feature;
        row.session = c->req.session;
        row.tier = t ? t->s.name : "";
        row.model = model;
        row.status = status == 200                            ? "ok"
                     : (status == 403 || status == 503) && !t ? "refused"
                                                              : "error";
        row.http_status = status;
        row.tokens_in = t ? tin : 0;
        row.tokens_out = tout;
        row.cost_usd = cost;
        row.cloud_cost_usd = t ? cloud_cost : 0;
        row.latency_ms = (uint32_t)(total_us / 1000);
        row.ttft_ms = r ? (uint32_t)(r->ttft_us / 1000) : 0;
        row.failover = r && r->failover;
        row.escalated = r && r->escalated;
        row.degraded = r && r->degraded;
        /* Any external tier that was sent the request counts, not only the one that
         * answered: a failover or an escalation sends it to more than one. */
        bool sent_external = false;
        for (size_t i = 0; r && i < app->n_tiers; i++)
            if ((r->tiers_sent & (1u << i)) && app->tiers[i].s.privacy == ROUTE_PRIVACY_EXTERNAL)
                sent_external = true;
        api_pii_outcome_t po;
        api_pii_outcome(&c->d, c->masked_types, sent_external, &po);
        row.external = sent_external;
        row.pii_types = c->d.pii_types;
        row.pii_names = pii;
        row.pii_kept_local = po.kept_local;
        row.pii_masked = po.masked;
        row.pii_allowed = po.allowed;
        row.pii_blocked = po.blocked;
        row.reasons = reasons;
        api_version_fields(app, &c->d, r, &row);
        api_ledger_record(c->w, &row);
    }
    jsonw_t *j = log_event_begin(LOG_INFO, "request");
    if (j) {
        jsonw_key(j, "id");
        jsonw_str(j, c->id);
        jsonw_key(j, "status");
        jsonw_int(j, status);
        jsonw_key(j, "tier");
        jsonw_str(j, t ? t->s.name : NULL);
        jsonw_key(j, "tenant");
        jsonw_str(j, c->req.tenant);
        jsonw_key(j, "team");
        jsonw_str(j, c->req.team);
        jsonw_key(j, "feature");
        jsonw_str(j, c->req.feature);
        jsonw_key(j, "stream");
        jsonw_bool(j, c->req.stream);
        jsonw_key(j, "pii");
        jsonw_str(j, pii);
        jsonw_key(j, "reasons");
        jsonw_str(j, reasons);
        jsonw_key(j, "tokens_in");
        jsonw_uint(j, tin);
        jsonw_key(j, "tokens_out");
        jsonw_uint(j, tout);
        jsonw_key(j, "cost_usd");
        jsonw_double(j, cost);
        jsonw_key(j, "latency_ms");
        jsonw_double(j, (double)total_us / 1000.0);
        jsonw_key(j, "decision_us");
        jsonw_double(j, (double)c->decision_ns / 1000.0);
        log_event_end();
    }
    api_trace_end(c, r, status, cost, reasons, pii);
}
