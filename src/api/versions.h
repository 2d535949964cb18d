/* versions.h — figures per model version from the ledger, and drift between
 * consecutive versions of a tier (GET /v1/versions, `switchyard versions`, the
 * dashboard's versions section, the switchyard_version_drift metric;
 * docs/versions.md).
 *
 * A report is built from the store's version cells (store_versions_query): a
 * request counts against the version of the tier the decision sent it to first,
 * so an escalation, an error or the cost of re-answering elsewhere is charged to
 * the version that caused it. The build is pure (no I/O); the gateway state runs
 * it on its own thread with its own store connection.
 */
#ifndef SY_API_VERSIONS_H
#define SY_API_VERSIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "api/config.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "store/store.h"

#define VERSIONS_MAX         256 /* (tier, version) entries in a report at most */
#define VERSIONS_REASONS_LEN 384

typedef struct versions_entry {
    char tier[64];
    char version[64];                   /* "" = no version configured */
    int64_t first_ms, last_ms;          /* wall-clock Unix ms of its first and last request */
    uint64_t requests;                  /* sent to it first */
    uint64_t served;                    /* answered by it (escalations to it included) */
    uint64_t errors;                    /* of requests: ended in an error */
    uint64_t escalated;                 /* of requests: re-answered by a cloud tier */
    uint64_t confidences;               /* of requests: with a confidence score */
    double confidence_sum;              /* sum of those scores */
    double cost_usd;                    /* what its requests cost, escalations included */
    int previous;                       /* index of the version compared against, or -1 */
    bool drift;                         /* beyond a threshold against previous */
    char reasons[VERSIONS_REASONS_LEN]; /* "escalation_rate 0.05->0.62; ..." */
    /* speculative drafts it sent and the verifier kept (live counters since start) */
    uint64_t spec_drafted, spec_accepted;
} versions_entry_t;

/* A cascade's (edge version, escalation target version). */
typedef struct versions_pair {
    char edge_tier[64], edge_version[64];
    char cloud_tier[64], cloud_version[64];
    uint64_t requests;  /* cascades from this edge version with this target */
    uint64_t escalated; /* of them: escalated */
    /* speculative: the edge's drafts the cloud tier checked, and kept (live counters) */
    uint64_t spec_drafted, spec_accepted;
} versions_pair_t;

typedef struct versions_report {
    versions_entry_t *v; /* owned; per tier in order of first request */
    size_t n;
    versions_pair_t *p; /* owned */
    size_t np;
    int64_t since_ms; /* 0 = all time */
    config_drift_t th;
} versions_report_t;

/* Sums cells (borrowed) into out (caller-allocated, versions_report_free frees) and
 * flags drift under th. 0, or SY_ETOOBIG past VERSIONS_MAX entries. */
int versions_build(const store_version_cell_t *cells, size_t n, const config_drift_t *th,
                   int64_t since_ms, versions_report_t *out);
/* store_versions_query + versions_build. 0 or a negative error. */
int versions_query(store_t *s, int64_t since_ms, const config_drift_t *th, versions_report_t *out);
void versions_report_free(versions_report_t *r);
/* Adds a drafting tier's speculative counters (drafted, accepted; live, since start) to
 * its entry (drafter, dver) when the report has one, and to the pair (drafter, dver,
 * verifier, vver), added when new. 0 or SY_EFULL. */
int versions_add_speculative(versions_report_t *r, const char *drafter, const char *dver,
                             const char *verifier, const char *vver, uint64_t drafted,
                             uint64_t accepted);
/* The report as one JSON object (docs/versions.md). */
void versions_write_json(const versions_report_t *r, jsonw_t *j);
/* The report as the tables `switchyard versions` prints. */
void versions_print(const versions_report_t *r, FILE *f);

/* ---------------------------------------------------- gateway state ---- */

typedef struct versions_state versions_state_t;

/* The gateway's view: the last report, drift flags for /metrics, a log line the
 * first time a version drifts. With th->interval_s > 0 a thread rebuilds the report
 * that often from its own connection to store_url, after flushing ledger (borrowed,
 * may be NULL). Returns owned state or NULL with a message in err. */
versions_state_t *versions_state_new(const char *store_url, store_ledger_writer_t *ledger,
                                     const config_drift_t *th, char *err, size_t errlen);
void versions_state_free(versions_state_t *vs);
/* Takes a freshly built report in (copied): flags, metric, the one log line. */
void versions_state_update(versions_state_t *vs, const versions_report_t *r);
/* switchyard_version_drift{tier,version} for each version of the last report. */
void versions_state_write_metrics(versions_state_t *vs, buf_t *out);
/* The last report's JSON (null before the first). */
void versions_state_write_json(versions_state_t *vs, jsonw_t *j);

#endif
