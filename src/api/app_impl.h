/* app_impl.h — private to src/api: the gateway's shared state (app, worker, call)
 * and the functions its files call across each other.
 */
#ifndef SY_API_APP_IMPL_H
#define SY_API_APP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/anthropic.h"
#include "api/dash.h"
#include "api/decide.h"
#include "api/auth.h"
#include "api/budget.h"
#include "api/feedback.h"
#include "api/metrics.h"
#include "api/offload.h"
#include "api/privacy.h"
#include "api/render.h"
#include "api/request.h"
#include "api/server.h"
#include "api/session.h"
#include "api/storesync.h"
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

/* Request bodies above API_BIG_BODY are parsed and scanned on a pool of
 * API_BIG_THREADS threads, at most API_BIG_PENDING waiting per thread, running at
 * nice 19 under SCHED_IDLE (offload.c): under CPU contention the small requests run
 * first, and multi-megabyte ones take what is left. */
#define API_BIG_BODY    (256u << 10)
#define API_BIG_THREADS 2
#define API_BIG_PENDING 8
#define API_BIG_NICE    19

struct api_app {
    const config_t *cfg;
    tier_t tiers[ROUTE_MAX_TIERS];
    size_t n_tiers;
    char *api_keys[ROUTE_MAX_TIERS]; /* owned copies of resolved secrets */
    char *base_urls[ROUTE_MAX_TIERS];
    pii_scanner_t *pii;
    router_t *router;
    store_ledger_writer_t *ledger;
    store_t *store;         /* read at build time only (the bandit state) */
    struct storesync *sync; /* every store call of the loops (root's, shared) */
    bool served;            /* became current: its bandit state is worth saving */
    store_t *report_store;  /* ledger reports: used by the offload thread only */
    offload_t *offload;     /* runs reports off the worker loops */
    /* Parse and scan of large request bodies, off the worker loops (chat.c). */
    offload_t *big[API_BIG_THREADS];
    api_scan_t *big_scan[API_BIG_THREADS]; /* big[i]'s thread only */
    atomic_uint big_next;
    session_table_t *sessions;
    feedback_ring_t *feedback;
    atomic_uint_fast64_t n_feedback;
    metrics_t metrics;
    dash_t dash; /* the dashboard's recent decisions, mix and cost */
    http_server_t *http;
    int ref_tier; /* the all-cloud counterfactual's tier, or -1 */
    atomic_bool draining;
    atomic_uint_fast64_t seq;
    uint64_t id_salt;
    auth_t *auth;     /* API keys and rate limits; NULL without an auth section */
    budget_t *budget; /* budget reservations; NULL when no key has a budget */
    /* Reload (app.c): each configuration applied is one api_app_t, the "generation".
     * Workers, calls and reports hold the generation they started on, so a reload
     * leaves in-flight requests on the old tiers. The HTTP server, ledger writer,
     * report store, offload thread and session table belong to the root and are
     * shared by every generation. */
    struct api_app *root;  /* the app api_app_new returned */
    atomic_int refs;       /* being current + workers built on it + pending switches */
    config_t *owned_cfg;   /* a reloaded config (the first one is borrowed) */
    bool closed;           /* this generation's own parts are released */
    struct api_reload *rl; /* root only: reload thread and worker slots */
    /* Root only: drift flags and the last versions report (versions.h). */
    struct versions_state *versions;
    struct otlp *otlp; /* root only: the trace exporter, NULL when telemetry is off */
};

typedef struct api_worker {
    api_app_t *app;
    exec_env_t env;
    router_scratch_t *rs;
    pii_scratch_t *pii;          /* for the mask action's second scan */
    api_scan_t *scan;            /* the privacy scan of what leaves */
    buf_t render;                /* upstream request bodies */
    struct api_call *free_calls; /* reusable request states */
    buf_t scratch;               /* response building */
    /* Who sent the request being handled (set by api_gate for the synchronous
     * handler call): a key index or -1, and whether it was the admin key. */
    int caller_key;
    bool caller_admin;
    atomic_uint inflight; /* calls and reports that hold this worker */
    bool retired;         /* a newer generation serves this loop */
    struct api_worker *next_retired;
    struct api_slot *slot;
    struct api_call *anth_calls; /* live /v1/messages calls (anthropic_reply.c) */
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
    bool completions, route_only; /* the endpoint */
    bool big;                     /* prepared on the large-body pool */
    buf_t rest;                   /* api_render_rest's output, rendered on the pool */
    bool rest_ok;                 /* rest is valid for the request as it stands */
    pii_mask_t *mask;             /* values masked before the request left, or NULL */
    uint32_t masked_types;        /* PII types replaced by placeholders before it left */
    api_privacy_t pv;             /* the scan of what the request would send to a tier */
    /* Parse and scan outcome (chat.c's prepare step): HTTP status to refuse with, or 0. */
    int prep_status;
    const char *prep_type, *prep_code;
    char prep_err[512];
    char prep_param[96];
    char stream_id[64];     /* the id of the stream's chunks (the tier's), "" before the first */
    char stream_model[128]; /* and their model */
    bool embeddings;        /* POST /v1/embeddings (embed.c) */
    buf_t restored;         /* the answer with masked values put back */
    bool send_stream;       /* stream from the tier (false when masked: replayed as a stream) */
    size_t body_bytes;      /* the client's body: bounds every string any tier is sent */
    /* Limits of the key that sent it (limits.c). */
    int key;                                 /* index in cfg->auth.keys, or -1 */
    uint32_t tpm_taken;                      /* tokens taken from the key's tpm bucket */
    double budget_want;                      /* maximum cost, to reserve */
    double budget_reserved;                  /* reserved and not settled yet */
    int64_t budget_period;                   /* start of the budget period, Unix ms */
    void (*limits_cont)(struct api_call *c); /* resumes the call once reserved */
    /* POST /v1/messages: answered in Anthropic's shapes (anthropic_reply.c). */
    bool anthropic;
    struct api_call *anth_prev, *anth_next; /* the worker's anth_calls list */
    api_anth_stream_t anth;                 /* the client's stream state */
    /* Trace context (trace.c): W3C ids, the client's span from traceparent or zero. */
    uint8_t trace_id[16], trace_parent[8], span_id[8];
    uint64_t decided_us; /* monotonic: when the decision was made (0 = not made) */
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
/* Writes the switchyard object of a finished call as one JSON value. */
void api_sy_object_write(api_call_t *c, const exec_result_t *r, double cost, jsonw_t *j);

/* -------------------------------------------------- anthropic_reply.c ---- */

/* A /v1/messages call joins (and leaves) its worker's list of Anthropic-shaped calls. */
void api_anthropic_link(api_call_t *c);
void api_anthropic_unlink(api_call_t *c);
/* Whether res answers a live /v1/messages call of w (its errors take that shape). */
bool api_anthropic_owns(api_worker_t *w, const http_res_t *res);
/* {"type":"error","error":{"type":<for status>,"message":msg}}. */
void api_anthropic_send_error(api_worker_t *w, http_res_t *res, int status, const char *msg);
/* One OpenAI chunk from exec, written as the Anthropic events it amounts to. */
void api_anthropic_stream_chunk(api_call_t *c, const char *data, size_t n);
/* The end of a /v1/messages call that reached exec: message, stream end or error. */
void api_anthropic_finish(api_call_t *c, exec_result_t *r, double cost);

/* ---------------------------------------------------------- account.c ---- */

/* Entity type names of a PII type mask, comma-separated, into out. */
void api_pii_names(uint32_t mask, char *out, size_t n);
/* Sets row's version fields (docs/versions.md) from the decision d and the
 * result r (may be NULL): strings borrowed from app's tiers. */
void api_version_fields(const api_app_t *app, const route_decision_t *d, const exec_result_t *r,
                        store_ledger_row_t *row);
/* Metrics, ledger row and log line for a finished (or refused) call. */
void api_account(api_call_t *c, const exec_result_t *r, int status, double cost);

/* ------------------------------------------------------------ trace.c ---- */

/* Sets up c's trace context: the incoming traceparent header joined, else a new
 * trace; a bad header is ignored (a new trace, as the W3C spec says). */
void api_trace_begin(api_call_t *c, const http_req_t *hr);
/* Hands c's spans (request, decision, each upstream call, first token) to the
 * exporter when telemetry is on. reasons and pii (type names) as accounted. */
void api_trace_end(api_call_t *c, const exec_result_t *r, int status, double cost,
                   const char *reasons, const char *pii);
/* switchyard_otlp_dropped_total and _exported_total (zero when telemetry is off). */
void api_trace_metrics(api_app_t *root, buf_t *b);

/* ------------------------------------------------------------- mask.c ---- */

int api_mask_request(api_worker_t *w, api_call_t *c, uint32_t types);
void api_mask_restore(api_call_t *c, exec_result_t *r);

/* ----------------------------------------------------------- replay.c ---- */

/* Writes a whole answer's message (msg, borrowed; NULL for none) as the members of
 * one stream delta: role, content, and every other member (tool calls indexed). */
void api_replay_delta(jsonw_t *w, const struct cJSON *msg);

/* ------------------------------------------------------------- chat.c ---- */

/* Call states, pooled per worker. */
api_call_t *api_call_get(api_worker_t *w);
void api_call_put(api_call_t *c);
void api_call_free(api_call_t *c);
/* Starts and stops the large-body pool (0, or -EAGAIN when a thread cannot start). */
int api_big_start(api_app_t *app);
void api_big_stop(api_app_t *app);
/* POST /v1/chat/completions, /v1/completions, /v1/route. */
void api_handle_infer(api_worker_t *w, http_req_t *hr, http_res_t *res, bool completions,
                      bool route_only);
/* POST /v1/messages (Anthropic Messages), through the same path. */
void api_handle_messages(api_worker_t *w, http_req_t *hr, http_res_t *res);
/* POST /v1/embeddings. */
void api_handle_embeddings(api_worker_t *w, http_req_t *hr, http_res_t *res);

/* ------------------------------------------------------------ admin.c ---- */

/* GET /v1/models (id NULL) and GET /v1/models/{id}. */
void api_handle_models(api_worker_t *w, http_res_t *res, const char *id);
void api_handle_costs(api_worker_t *w, http_req_t *hr, http_res_t *res);
void api_handle_feedback(api_worker_t *w, http_req_t *hr, http_res_t *res);
void api_handle_bandit(api_worker_t *w, http_res_t *res);
void api_handle_ready(api_worker_t *w, http_res_t *res);
void api_handle_dashboard(api_worker_t *w, http_res_t *res);
void api_handle_ui(api_worker_t *w, http_res_t *res);

/* A ledger report answered from the offload thread (admin.c): build writes the JSON
 * answer into body (or sets rc) after the ledger rows already queued are written. */
typedef struct api_report_job {
    api_worker_t *w;
    http_res_t *res;
    void (*build)(struct api_report_job *jb);
    int64_t since; /* ?since, 0 = all time */
    int rc;
    buf_t body;
    store_group_t by; /* /v1/costs only */
    char by_s[32];
} api_report_job_t;
api_report_job_t *api_report_job_new(api_worker_t *w, http_res_t *res,
                                     void (*build)(api_report_job_t *), size_t body_cap);
/* Reads ?since (400 on a bad one), needs the store (503), then runs the job: 200 with
 * its body, 500 on a store error, 503 with Retry-After when the offload is full. Takes
 * jb in every case. */
void api_report_submit(api_report_job_t *jb, http_req_t *hr);

/* ---------------------------------------------------- versions_http.c ---- */

/* GET /v1/versions?since=... (docs/versions.md). */
void api_handle_versions(api_worker_t *w, http_req_t *hr, http_res_t *res);

/* ------------------------------------------------- gate.c, limits.c ---- */

/* Checks the key a request presents (when auth is on) and sets w->caller_key /
 * caller_admin. 0 to go on, or -1 after answering 401/403. */
int api_gate(api_worker_t *w, const http_req_t *hr, http_res_t *res);
/* Applies the calling key's rate limits and budget to a decided call. 0: go on
 * now; 1: waiting for the budget store, cont(c) runs later (or the call is
 * refused then); -1: refused and finished. */
int api_limits_begin(api_call_t *c, void (*cont)(api_call_t *c));
/* Gives back unused rate-limit tokens and settles the budget with the real cost. */
void api_limits_end(api_call_t *c, const exec_result_t *r, double cost);

/* ------------------------------------------------------- tiers.c, app.c ---- */

int api_tiers_open(api_app_t *app, char *err, size_t errlen);
/* A call or report holds its worker (and so its generation) until released; a
 * retired worker is freed, on its loop, once the last holder releases it. Both run
 * on the worker's loop. */
void api_worker_hold(api_worker_t *w);
/* Hands a ledger row off durably: appended to the loop's journal (write(2)), then
 * queued for the ledger writer. Call before the answer's last byte is sent. */
void api_ledger_record(api_worker_t *w, const store_ledger_row_t *row);
void api_worker_release(api_worker_t *w);
/* Persists the bandit's sums so learning survives a restart. */
void api_bandit_save(api_app_t *app);

#endif
