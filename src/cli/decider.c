/* decider.c — the server's decision path, offline (see decider.h). */
#include "api/piiload.h"
#include "cli/decider.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api/server.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/jsonw.h"

/* Opens the store session marks are read from (see cli_decider_open). */
static int open_sessions(cli_decider_t *x, const char *store_url)
{
    char err[512];
    if (store_url && !*store_url) return 0;
    const char *url = store_url ? store_url : x->cfg.store;
    if (!url || !*url) return 0;
    x->store = store_open_existing(url, err, sizeof err);
    if (x->store) return 0;
    if (store_url) {
        fprintf(stderr, "%s: %s\n", x->cmd, err);
        return -1;
    }
    fprintf(stderr, "%s: note: %s; no session is taken as private (--store URL to name one)\n",
            x->cmd, err);
    return 0;
}

int cli_decider_load(cli_decider_t *x, const char *cmd, const char *cfg_path, const char *builtin)
{
    memset(x, 0, sizeof *x);
    x->cmd = cmd;
    char err[512];
    int rc = cfg_path ? config_load(&x->cfg, cfg_path, err, sizeof err)
                      : config_load_string(&x->cfg, builtin, strlen(builtin), "(built-in)", err,
                                           sizeof err);
    if (rc) {
        fprintf(stderr, "%s: invalid configuration: %s\n", cmd, err);
        config_deinit(&x->cfg);
        memset(&x->cfg, 0, sizeof x->cfg);
        return -1;
    }
    arena_init(&x->arena, 16384);
    x->loaded = true;
    return 0;
}

int cli_decider_build(cli_decider_t *x, const char *store_url)
{
    char err[512];
    x->pii = piiload_scanner_new(x->cfg.pii_names_dir, x->cfg.pii_labeller,
                                 x->cfg.route.pii_min_score, err, sizeof err);
    x->router = x->pii ? router_new(&x->cfg.route, x->pii, err, sizeof err) : NULL;
    if (x->router && api_router_load_models(x->router, &x->cfg, err, sizeof err)) {
        router_free(x->router);
        x->router = NULL;
    }
    if (!x->router) {
        fprintf(stderr, "%s: %s\n", x->cmd, err);
        return -1;
    }
    x->rs = router_scratch_new(x->router);
    x->scan = api_scan_new(x->pii, x->cfg.route.pii_min_score);
    api_tier_views(&x->cfg, x->tiers);
    return open_sessions(x, store_url);
}

int cli_decider_open(cli_decider_t *x, const char *cmd, const char *cfg_path, const char *builtin,
                     const char *store_url)
{
    if (cli_decider_load(x, cmd, cfg_path, builtin)) return -1;
    if (cli_decider_build(x, store_url)) {
        cli_decider_close(x);
        return -1;
    }
    return 0;
}

void cli_decider_close(cli_decider_t *x)
{
    store_close(x->store);
    api_scan_free(x->scan);
    router_scratch_free(x->rs);
    router_free(x->router);
    pii_scanner_free(x->pii);
    if (x->loaded) {
        arena_deinit(&x->arena);
        config_deinit(&x->cfg);
    }
    memset(x, 0, sizeof *x);
}

int cli_decider_run(cli_decider_t *x, const char *body, size_t len, uint64_t rand_seed,
                    route_decision_t *d, buf_t *out)
{
    http_req_t hr = {
        .method = "POST", .path = "/v1/route", .query = "", .body = body, .body_len = len};
    api_request_t req;
    char err[512], param[64];
    jsonw_t w;
    jsonw_init(&w, out);
    arena_reset(&x->arena);
    int rc = api_request_parse(&req, &hr, false, &x->arena, err, sizeof err, param, sizeof param);
    int st = rc == SY_ETOOBIG ? 413 : rc ? 400 : 0;
    if (!rc && (st = api_request_check_labels(x->scan, &req, err, sizeof err, param, sizeof param)))
        api_request_deinit(&req);
    if (st) {
        /* What the server answers a body it cannot parse or whose labels hold PII. */
        jsonw_obj_begin(&w);
        jsonw_key(&w, "status");
        jsonw_int(&w, st);
        jsonw_key(&w, "message");
        jsonw_str(&w, err);
        jsonw_obj_end(&w);
        return st;
    }
    api_session_state_t ss = {false};
    if (req.session[0] && x->store) {
        store_session_t s;
        rc = store_session_get(x->store, req.session, &s);
        if (rc == 0)
            ss.is_private = s.is_private;
        else if (rc != SY_ENOTFOUND)
            fprintf(stderr, "%s: session '%s': %s (%s)\n", x->cmd, req.session, sy_strerror(rc),
                    store_errmsg(x->store));
    }
    /* An error of the scan itself leaves pv.unknown set: fail closed, as the server. */
    api_privacy_t pv = {0};
    api_privacy_scan(x->scan, &req, x->cfg.forward_unknown == CONFIG_FORWARD_SCAN, &pv);
    uint64_t t0 = clock_mono_ns();
    rc = api_decide(&x->cfg, x->router, x->rs, &req, &ss, &pv, 0, x->tiers, clock_mono_us(),
                    rand_seed, d);
    uint64_t dt = clock_mono_ns() - t0;
    api_request_deinit(&req);
    if (rc) return rc;
    api_refusal_t a;
    api_decision_http(d, x->tiers, &a);
    api_decision_write_json(d, x->tiers, &a, (double)dt / 1000.0, &w);
    return jsonw_error(&w) ? jsonw_error(&w) : a.http_status;
}
