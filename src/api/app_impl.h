/* app_impl.h — private to src/api: the gateway's shared state (app, worker, call)
 * and the functions its files call across each other.
 */
#ifndef SY_API_APP_IMPL_H
#define SY_API_APP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/decide.h"
#include "api/feedback.h"
#include "api/metrics.h"
#include "api/offload.h"
#include "api/request.h"
#include "api/server.h"
#include "api/session.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http.h"
#include "net/upstream.h"
#include "route/router.h"
#include "store/store.h"
#include "tier/exec.h"
#include "tier/local.h"
#include "tier/tier.h"

struct api_app {
    const config_t *cfg;
    tier_t tiers[ROUTE_MAX_TIERS];
    size_t n_tiers;
    char *api_keys[ROUTE_MAX_TIERS]; /* owned copies of resolved secrets */
    char *base_urls[ROUTE_MAX_TIERS];
    pii_scanner_t *pii;
    router_t *router;
    store_ledger_writer_t *ledger;
    store_t *store; /* sessions, feedback, bandit state: under store_mu */
    pthread_mutex_t store_mu;
    store_t *report_store; /* ledger reports: used by the offload thread only */
    offload_t *offload;    /* runs reports off the worker loops */
    session_table_t *sessions;
    feedback_ring_t *feedback;
    atomic_uint_fast64_t n_feedback;
    metrics_t metrics;
    http_server_t *http;
    int ref_tier; /* the all-cloud counterfactual's tier, or -1 */
    atomic_bool draining;
    atomic_uint_fast64_t seq;
    uint64_t id_salt;
};

typedef struct api_worker {
    api_app_t *app;
    exec_env_t env;
    router_scratch_t *rs;
    pii_scratch_t *pii;          /* for the mask action's second scan */
    struct api_call *free_calls; /* reusable request states */
    buf_t scratch;               /* response building */
} api_worker_t;

/* One in-flight inference request. */
typedef struct api_call {
    struct api_call *next_free;
    api_worker_t *w;
    http_res_t *res;
    arena_t arena;
    api_request_t req;
    route_decision_t d;
    exec_t *exec;
    char id[40];
    int64_t ts_ms;
    uint64_t start_us;
    uint64_t decision_ns;
    buf_t out; /* SSE event assembly */
    bool aborted;
    pii_mask_t *mask;      /* values masked before the request left, or NULL */
    uint32_t masked_types; /* PII types replaced by placeholders before it left */
    buf_t restored;        /* the answer with masked values put back */
} api_call_t;

/* ---------------------------------------------------------- respond.c ---- */

void api_send_json(http_res_t *res, int status, buf_t *b);
/* An OpenAI-shaped error object. */
void api_send_error(api_worker_t *w, http_res_t *res, int status, const char *type, const char *msg,
                    const char *param, const char *code);
const char *api_privacy_name(route_privacy_t p);
/* The decision's reasons and the execution's notes, comma-separated, into out. */
void api_join_reasons(const api_call_t *c, const exec_result_t *r, char *out, size_t n);
void api_set_sy_headers(api_call_t *c, const exec_result_t *r, int tier);
/* Finishes every call that reached exec: the answer, accounting, the call freed. */
extern const exec_sink_t api_exec_sink;

/* ---------------------------------------------------------- account.c ---- */

/* Entity type names of a PII type mask, comma-separated, into out. */
void api_pii_names(uint32_t mask, char *out, size_t n);
/* Metrics, ledger row and log line for a finished (or refused) call. */
void api_account(api_call_t *c, const exec_result_t *r, int status, double cost);

/* ------------------------------------------------------------- mask.c ---- */

int api_mask_request(api_worker_t *w, api_call_t *c, uint32_t types);
void api_mask_restore(api_call_t *c, exec_result_t *r);

/* ------------------------------------------------------------- chat.c ---- */

/* Call states, pooled per worker. */
api_call_t *api_call_get(api_worker_t *w);
void api_call_put(api_call_t *c);
void api_call_free(api_call_t *c);
/* POST /v1/chat/completions, /v1/completions, /v1/route. */
void api_handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                      bool route_only);

/* ------------------------------------------------------------ admin.c ---- */

void api_handle_models(api_worker_t *w, http_res_t *res);
void api_handle_costs(api_worker_t *w, http_req_t *hr, http_res_t *res);
void api_handle_feedback(api_worker_t *w, http_req_t *hr, http_res_t *res);
void api_handle_ready(api_worker_t *w, http_res_t *res);

/* ------------------------------------------------------- tiers.c, app.c ---- */

int api_tiers_open(api_app_t *app, char *err, size_t errlen);
/* Persists the bandit's sums so learning survives a restart. */
void api_bandit_save(api_app_t *app);

#endif
