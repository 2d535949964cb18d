/* check.c — load every file a configuration names (serve --check). */
#include "api/piiload.h"
#include "api/check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api/server.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/spec.h"
#include "route/pii/pii.h"
#include "route/router.h"

/* Formats "FILE: KEY, line N: msg" into err and returns rc. */
static int fail(int rc, const config_t *cfg, const char *key, int line, char *err, size_t errlen,
                const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s, line %d: %s", cfg->path, key, line, msg);
    return rc;
}

/* 0 if path exists and is a regular file (dir: a folder), else -errno/SY_EINVAL. */
static int stat_kind(const char *path, bool dir)
{
    struct stat st;
    if (stat(path, &st)) return -errno;
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) return SY_EINVAL;
    return 0;
}

static int check_exists(const config_t *cfg, const char *key, int line, const char *path, bool dir,
                        char *err, size_t errlen)
{
    int rc = stat_kind(path, dir);
    if (rc == SY_EINVAL)
        return fail(rc, cfg, key, line, err, errlen, "%s is not a %s", path,
                    dir ? "folder" : "file");
    if (rc) return fail(rc, cfg, key, line, err, errlen, "%s: %s", path, strerror(-rc));
    return 0;
}

static int check_tiers(const config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const config_tier_t *t = &cfg->tiers[i];
        if (t->kind != CONFIG_TIER_LOCAL) continue;
        char key[96];
        snprintf(key, sizeof key, "tiers.%s.model", t->name);
        int rc = check_exists(cfg, key, t->model_line, t->model, false, err, errlen);
        if (rc) return rc;
        if (*t->tokenizer) {
            snprintf(key, sizeof key, "tiers.%s.tokenizer", t->name);
            rc = check_exists(cfg, key, t->tokenizer_line, t->tokenizer, false, err, errlen);
            if (rc) return rc;
        }
        engine_t *e = NULL;
        char e2[300];
        rc = engine_load(t->model, *t->tokenizer ? t->tokenizer : NULL, &e, e2, sizeof e2);
        engine_free(e);
        if (rc) {
            /* The engine names the tokenizer when that is the file it rejects. */
            bool tok = *t->tokenizer && !strncmp(e2, "tokenizer", 9);
            snprintf(key, sizeof key, "tiers.%s.%s", t->name, tok ? "tokenizer" : "model");
            return fail(rc, cfg, key, tok ? t->tokenizer_line : t->model_line, err, errlen,
                        "%s does not load: %s", tok ? t->tokenizer : t->model, e2);
        }
        if (*t->draft) {
            /* the draft loads (a llama2.c draft with the tier's tokenizer), shares the
             * model's vocabulary and is smaller (spec_check) */
            snprintf(key, sizeof key, "tiers.%s.draft", t->name);
            rc = check_exists(cfg, key, t->draft_line, t->draft, false, err, errlen);
            if (rc) return rc;
            rc = engine_load(t->model, *t->tokenizer ? t->tokenizer : NULL, &e, e2, sizeof e2);
            engine_t *d = NULL;
            if (!rc)
                rc = engine_load(t->draft, *t->tokenizer ? t->tokenizer : NULL, &d, e2, sizeof e2);
            else
                snprintf(e2, sizeof e2, "the tier's model does not load");
            if (!rc) rc = spec_check(e, d, e2, sizeof e2);
            engine_free(d);
            engine_free(e);
            if (rc) return fail(rc, cfg, key, t->draft_line, err, errlen, "%s: %s", t->draft, e2);
        }
    }
    return 0;
}

/* The routing model and the classifier, each on its own so the error names its key. */
static int check_router_models(const config_t *cfg, const pii_scanner_t *pii, char *err,
                               size_t errlen)
{
    const struct {
        const char *key;
        int line;
        const char *path;
        bool classifier;
    } m[2] = {{"routing.classifier", cfg->classifier_model_line, cfg->classifier_model, true},
              {"routing.model", cfg->router_model_line, cfg->router_model, false}};
    for (int i = 0; i < 2; i++) {
        if (!*m[i].path) continue;
        int rc = check_exists(cfg, m[i].key, m[i].line, m[i].path, false, err, errlen);
        if (rc) return rc;
        char e2[300];
        router_t *r = router_new(&cfg->route, pii, e2, sizeof e2);
        if (!r) return fail(SY_ECONFIG, cfg, "routing", 0, err, errlen, "%s", e2);
        config_t one = *cfg; /* shallow: only the path fields differ */
        one.classifier_model = m[i].classifier ? (char *)m[i].path : (char *)"";
        one.router_model = m[i].classifier ? (char *)"" : (char *)m[i].path;
        rc = api_router_load_models(r, &one, e2, sizeof e2);
        router_free(r);
        if (rc) return fail(rc, cfg, m[i].key, m[i].line, err, errlen, "%s", e2);
    }
    return 0;
}

int api_config_check(const config_t *cfg, char *err, size_t errlen)
{
    int rc = check_tiers(cfg, err, errlen);
    if (rc) return rc;
    if (*cfg->pii_names_dir) {
        rc = check_exists(cfg, "routing.pii.names_dir", cfg->pii_names_dir_line, cfg->pii_names_dir,
                          true, err, errlen);
        if (rc) return rc;
    }
    char e2[300];
    pii_scanner_t *pii = piiload_scanner_new(cfg->pii_names_dir, cfg->pii_labeller,
                                             cfg->route.pii_min_score, e2, sizeof e2);
    if (!pii)
        return fail(SY_ECONFIG, cfg, "routing.pii.names_dir", cfg->pii_names_dir_line, err, errlen,
                    "%s", e2);
    rc = check_router_models(cfg, pii, err, errlen);
    pii_scanner_free(pii);
    if (rc) return rc;
    if (!strncmp(cfg->store, "sqlite:", 7) && strcmp(cfg->store, "sqlite::memory:")) {
        const char *p = cfg->store + 7;
        const char *slash = strrchr(p, '/');
        if (slash) {
            char *dir = mem_strndup(p, slash == p ? 1 : (size_t)(slash - p));
            rc = check_exists(cfg, "store", cfg->store_line, dir, true, err, errlen);
            mem_free(dir);
            if (rc) return rc;
        }
    }
    return 0;
}
