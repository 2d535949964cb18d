/* versions_http.c — GET /v1/versions: the versions report, built on the offload
 * thread from the ledger like /v1/costs (docs/versions.md). */
#include "api/app_impl.h"
#include "api/versions.h"
#include "tier/spec_remote.h"

#include <stdio.h>
#include <stdlib.h>

/* Offload thread (after the ledger's queued rows are written): the report; the
 * gateway's drift flags, metric and log line follow the all-time report. */
static void versions_job_build(api_report_job_t *jb)
{
    api_app_t *app = jb->w->app;
    api_app_t *root = app->root;
    versions_report_t r;
    jb->rc = versions_query(app->report_store, jb->since, &root->cfg->drift, &r);
    if (jb->rc) return;
    if (jb->since == 0 && root->versions) versions_state_update(root->versions, &r);
    /* Speculative acceptance per drafting tier and (drafter, verifier) pair: live
     * counters since start, at the tiers' configured versions. */
    for (size_t t = 0; t < root->n_tiers; t++) {
        const tier_t *d = &root->tiers[t];
        if (!d->verifier) continue;
        spec_remote_pair_t p;
        spec_remote_pair_get((int)t, d->verifier->idx, &p);
        if (p.drafted)
            versions_add_speculative(
                &r, d->s.name, d->s.version ? d->s.version : "", d->verifier->s.name,
                d->verifier->s.version ? d->verifier->s.version : "", p.drafted, p.accepted);
    }
    jsonw_t j;
    jsonw_init(&j, &jb->body);
    versions_write_json(&r, &j);
    versions_report_free(&r);
}

void api_handle_versions(api_worker_t *w, http_req_t *hr, http_res_t *res)
{
    api_report_submit(api_report_job_new(w, res, versions_job_build, 16u << 20), hr);
}
