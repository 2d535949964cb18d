/* server.h — the switchyard gateway: HTTP API over tiers, router and ledger.
 *
 * api_app_new builds everything a config describes (tiers, PII scanner, router,
 * ledger writer, metrics) and binds the listener; api_app_run serves until
 * api_app_stop (async-signal-safe) drains it.
 */
#ifndef SY_API_SERVER_H
#define SY_API_SERVER_H

#include <stddef.h>

#include "api/config.h"
#include "route/router.h"

typedef struct api_app api_app_t;

/* Returns owned app or NULL with a message in err. cfg is borrowed and must
 * outlive the app. */
api_app_t *api_app_new(const config_t *cfg, char *err, size_t errlen);
int api_app_port(const api_app_t *app);
/* Serves until stopped; 0 or negative error. */
int api_app_run(api_app_t *app);
/* Async-signal-safe: begins graceful drain. */
void api_app_stop(api_app_t *app);
/* Async-signal-safe: re-reads the config file on the reload thread. A valid file
 * is applied atomically (new requests see the new tiers and routing; requests in
 * flight finish on the old); an invalid one is logged and the running config stays.
 * listen, workers, store and limits are kept until a restart. */
void api_app_reload(api_app_t *app);
void api_app_free(api_app_t *app);

/* Installs the models cfg names (routing.classifier, routing.model) into r, as the
 * gateway does at start, so offline tools decide as the server would. 0, or an
 * error with the file and the reason in err. */
int api_router_load_models(router_t *r, const config_t *cfg, char *err, size_t errlen);

#endif
