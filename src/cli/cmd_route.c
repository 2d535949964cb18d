/* cmd_route.c — `switchyard route`: explain one routing decision offline.
 *
 * Reads a chat completion request (JSON) on stdin, runs the same validation and
 * router_decide() the server runs (with the models the config names), with every
 * configured tier taken as healthy, and prints the decision with its reasons as JSON. No request is
 * sent anywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"
#include "api/piiload.h"
#include "api/request.h"
#include "api/server.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/jsonw.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "route/router.h"
#include "tier/tier.h"

int cmd_route(int argc, char **argv)
{
    const char *path = NULL;
    if (cli_wants_help(argc, argv)) {
        printf("usage: switchyard route -c FILE < request.json\n\n"
               "Prints the routing decision for one chat completion request (read on stdin)\n"
               "as JSON: tier, eligible order, PII types, reasons. Nothing is sent upstream.\n");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "switchyard route: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "switchyard route: -c FILE is required\n");
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, path, err, sizeof err)) {
        fprintf(stderr, "switchyard: invalid configuration: %s\n", err);
        config_deinit(&cfg);
        return 1;
    }
    buf_t body;
    buf_init(&body, cfg.max_body_bytes);
    char chunk[65536];
    size_t n;
    int rc = 1;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (buf_append(&body, chunk, n)) {
            fprintf(stderr, "switchyard route: request larger than limits.max_body_bytes\n");
            goto out;
        }
    http_req_t hr = {.method = "POST",
                     .path = "/v1/route",
                     .query = "",
                     .body = body.data ? body.data : "",
                     .body_len = body.len};
    arena_t arena;
    arena_init(&arena, 16384);
    api_request_t req;
    char param[64];
    if (api_request_parse(&req, &hr, false, &arena, err, sizeof err, param, sizeof param)) {
        fprintf(stderr, "switchyard route: bad request%s%s: %s\n", param[0] ? " at " : "", param,
                err);
        arena_deinit(&arena);
        goto out;
    }
    pii_scanner_t *pii =
        piiload_scanner_new(cfg.pii_names_dir, cfg.route.pii_min_score, err, sizeof err);
    router_t *r = pii ? router_new(&cfg.route, pii, err, sizeof err) : NULL;
    if (r && api_router_load_models(r, &cfg, err, sizeof err)) {
        router_free(r);
        r = NULL;
    }
    if (!r) {
        fprintf(stderr, "switchyard route: %s\n", err);
        pii_scanner_free(pii);
        api_request_deinit(&req);
        arena_deinit(&arena);
        goto out;
    }
    router_scratch_t *rs = router_scratch_new(r);
    route_tier_t tiers[ROUTE_MAX_TIERS];
    for (size_t i = 0; i < cfg.n_tiers; i++) {
        const config_tier_t *t = &cfg.tiers[i];
        tier_settings_t ts = {.name = t->name,
                              .privacy = t->privacy,
                              .role = t->role,
                              .logprobs = t->logprobs,
                              .usd_per_hour = t->usd_per_hour,
                              .tokens_per_second = t->tokens_per_second,
                              .usd_per_mtok_in = t->usd_per_mtok_in,
                              .usd_per_mtok_out = t->usd_per_mtok_out,
                              .max_context = t->context};
        tier_settings_route_view(&ts, &tiers[i]);
    }
    const char *forced = req.forced_tier[0] ? req.forced_tier : NULL;
    for (size_t i = 0; !forced && i < cfg.n_tiers; i++)
        if (!strcmp(cfg.tiers[i].name, req.model)) forced = cfg.tiers[i].name;
    route_input_t in = {req.texts,      req.n_texts,     req.n_messages,
                        req.max_tokens, forced,          req.privacy_local_only,
                        false,          clock_mono_us(), 42};
    route_decision_t d;
    uint64_t t0 = clock_mono_ns();
    int drc = router_decide(r, rs, &in, tiers, cfg.n_tiers, &d);
    uint64_t dt = clock_mono_ns() - t0;
    if (drc == 0) {
        buf_t out;
        buf_init(&out, 1 << 20);
        jsonw_t w;
        jsonw_init(&w, &out);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "decision");
        route_decision_write_json(&d, tiers, &w);
        jsonw_key(&w, "decision_us");
        jsonw_double(&w, (double)dt / 1000.0);
        jsonw_obj_end(&w);
        printf("%s\n", out.data);
        buf_deinit(&out);
        rc = d.status == 0 ? 0 : 3;
    } else {
        fprintf(stderr, "switchyard route: router failed: %d\n", drc);
    }
    router_scratch_free(rs);
    router_free(r);
    pii_scanner_free(pii);
    api_request_deinit(&req);
    arena_deinit(&arena);
out:
    buf_deinit(&body);
    config_deinit(&cfg);
    return rc;
}
