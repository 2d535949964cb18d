/* tiers.c — builds the tiers a config describes: secrets and URLs resolved from the
 * environment, local engines opened; a tier that cannot serve is kept, disabled, with
 * the reason.
 */
#include "api/app_impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- app ---- */

int api_tiers_open(api_app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = app->cfg;
    app->n_tiers = cfg->n_tiers;
    app->ref_tier = -1;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const config_tier_t *ct = &cfg->tiers[i];
        const char *key = *ct->api_key_env ? getenv(ct->api_key_env) : NULL;
        const char *url = ct->base_url;
        const char *url_env = *ct->base_url_env ? getenv(ct->base_url_env) : NULL;
        if (url_env && *url_env) url = url_env;
        app->api_keys[i] = key ? mem_strdup(key) : NULL;
        size_t ul = strlen(url);
        while (ul > 0 && url[ul - 1] == '/')
            ul--;
        app->base_urls[i] = mem_strndup(url, ul);
        tier_settings_t s;
        api_tier_settings(ct, &s); /* what `switchyard route` and `replay` see too */
        s.base_url = app->base_urls[i];
        s.api_key = app->api_keys[i];
        tier_t *t = &app->tiers[i];
        tier_init(t, (int)i, &s);
        if (s.kind != TIER_KIND_LOCAL) {
            if (*ct->api_key_env && !key) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s is not set",
                         ct->api_key_env);
            } else if (!ul) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s is not set",
                         ct->base_url_env);
            }
        } else {
            char lerr[120];
            if (local_tier_open(t, lerr, sizeof lerr)) {
                t->disabled = true;
                snprintf(t->disabled_why, sizeof t->disabled_why, "unavailable: %s", lerr);
            }
        }
        if (t->disabled)
            log_warn("tier %s %s", ct->name, t->disabled_why);
        else
            log_info("tier %s ready (%s, %s, %s)", ct->name,
                     s.kind == TIER_KIND_LOCAL       ? "local"
                     : s.kind == TIER_KIND_ANTHROPIC ? "anthropic"
                                                     : "openai",
                     api_privacy_name(s.privacy), s.role == ROUTE_ROLE_EDGE ? "edge" : "cloud");
    }
    for (size_t i = 0; i < app->n_tiers; i++) { /* speculative: the verifying tier */
        int v = app->tiers[i].s.spec_verifier ? config_tier_find(cfg, app->tiers[i].s.spec_verifier)
                                              : -1;
        if (v >= 0) app->tiers[i].verifier = &app->tiers[v];
    }
    if (*cfg->reference_tier) app->ref_tier = config_tier_find(cfg, cfg->reference_tier);
    for (size_t i = 0; i < app->n_tiers && app->ref_tier < 0; i++)
        if (app->tiers[i].s.role == ROUTE_ROLE_CLOUD) app->ref_tier = (int)i;
    (void)err, (void)errlen;
    return 0;
}
