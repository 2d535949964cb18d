/* decider.h — what `switchyard route` and `switchyard replay` share: the server's
 * decision path built offline from a config (PII scanner, router and its models,
 * tiers from the config, every tier healthy), and the sessions' private marks read
 * from the config's store, so an offline decision is the server's decision. */
#ifndef SY_CLI_DECIDER_H
#define SY_CLI_DECIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "api/config.h"
#include "api/decide.h"
#include "base/arena.h"
#include "base/buf.h"
#include "route/router.h"
#include "store/store.h"

typedef struct cli_decider {
    config_t cfg;
    pii_scanner_t *pii;
    router_t *router;
    router_scratch_t *rs;
    api_scan_t *scan; /* the scan of what a request would send, as the server's */
    route_tier_t tiers[ROUTE_MAX_TIERS];
    store_t *store; /* sessions' private marks; NULL = none known */
    arena_t arena;  /* per request */
    const char *cmd;
    bool loaded; /* cfg and arena are initialised */
} cli_decider_t;

/* Loads cfg_path (or, when NULL, the YAML text builtin) and builds the decision
 * path. store_url: the store to read session marks from; NULL = the config's store
 * when it exists (a note on stderr when it does not), "" = none. 0, or -1 after
 * printing why. */
int cli_decider_open(cli_decider_t *x, const char *cmd, const char *cfg_path, const char *builtin,
                     const char *store_url);
void cli_decider_close(cli_decider_t *x);
/* The two halves of cli_decider_open, for a caller that adjusts the loaded
 * configuration (x->cfg) before the router is built from it. On failure the caller
 * still calls cli_decider_close. */
int cli_decider_load(cli_decider_t *x, const char *cmd, const char *cfg_path, const char *builtin);
int cli_decider_build(cli_decider_t *x, const char *store_url);

/* Parses one request body (a chat completion, as POST /v1/route takes it) and
 * decides it. Writes the answer POST /v1/route gives (api_decision_write_json, or
 * {"status": 400, "message": ...} for a request the server refuses to parse) to
 * out as one JSON object. Returns the HTTP status, or a negative error. */
int cli_decider_run(cli_decider_t *x, const char *body, size_t len, uint64_t rand_seed,
                    route_decision_t *d, buf_t *out);

#endif
