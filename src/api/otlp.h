/* otlp.h — OpenTelemetry trace export: OTLP/HTTP with the JSON encoding
 * (POST {endpoint}/v1/traces, an ExportTraceServiceRequest), batched on its own
 * thread (docs/telemetry.md).
 *
 * A request's spans are built in one fixed-size otlp_trace_t (no allocation) and
 * handed to otlp_submit, which copies it into a bounded ring and never waits on I/O:
 * when the ring is full the trace is dropped and its spans counted. The exporter
 * thread sends up to `batch` traces per POST, as soon as that many wait or
 * `interval_ms` after the first one, with a blocking libcurl request bounded by
 * `timeout_ms`; spans of a POST that fails are counted as dropped too (no retry: a
 * collector that is down must not make the gateway hold memory).
 *
 * This module knows nothing of the gateway: what goes into a span is decided by
 * the caller (api/trace.c).
 */
#ifndef SY_API_OTLP_H
#define SY_API_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define OTLP_MAX_SPANS 12   /* spans in one trace record */
#define OTLP_MAX_ATTRS 48   /* attributes over all its spans */
#define OTLP_POOL      2048 /* bytes of text (names, string values) per trace record */

typedef enum { OTLP_STR, OTLP_INT, OTLP_DOUBLE, OTLP_BOOL } otlp_attr_type_t;
typedef enum { OTLP_KIND_INTERNAL = 1, OTLP_KIND_SERVER = 2 } otlp_kind_t;
typedef enum { OTLP_STATUS_UNSET = 0, OTLP_STATUS_OK = 1, OTLP_STATUS_ERROR = 2 } otlp_status_t;

typedef struct otlp_attr {
    const char *key; /* a string literal (static storage) */
    otlp_attr_type_t type;
    uint16_t off, len; /* OTLP_STR: the value in the trace's pool */
    int64_t i;
    double d;
} otlp_attr_t;

typedef struct otlp_span {
    uint8_t span_id[8];
    int parent; /* index of the parent span in the trace, or -1: the trace's parent */
    otlp_kind_t kind;
    otlp_status_t status;
    uint64_t start_ns, end_ns; /* Unix ns */
    uint16_t name_off, name_len;
    uint8_t first_attr, n_attrs; /* attrs[first_attr .. +n_attrs) */
    uint64_t event_ns;           /* 0 = no event */
    const char *event_name;      /* a string literal */
} otlp_span_t;

/* One request's spans. */
typedef struct otlp_trace {
    uint8_t trace_id[16];
    uint8_t parent_span_id[8]; /* the client's span (traceparent), all zero if none */
    otlp_span_t spans[OTLP_MAX_SPANS];
    int n_spans;
    otlp_attr_t attrs[OTLP_MAX_ATTRS];
    int n_attrs;
    char pool[OTLP_POOL];
    size_t pool_len;
} otlp_trace_t;

/* ----------------------------------------------------------- building ---- */

/* Starts an empty trace with its ids. parent_span_id may be NULL. */
void otlp_trace_init(otlp_trace_t *t, const uint8_t trace_id[16], const uint8_t parent_span_id[8]);
/* Adds a span (name copied, cut to fit); attributes added next belong to it until
 * the next span is added. Returns its index, or -1 when the trace is full. */
int otlp_span_add(otlp_trace_t *t, int parent, const uint8_t span_id[8], const char *name,
                  otlp_kind_t kind, uint64_t start_ns, uint64_t end_ns);
/* Attributes of the last span added (dropped silently when the trace is full; a
 * string is cut to fit the pool at a UTF-8 boundary). key: a string literal. */
void otlp_attr_str(otlp_trace_t *t, const char *key, const char *v);
void otlp_attr_int(otlp_trace_t *t, const char *key, int64_t v);
void otlp_attr_double(otlp_trace_t *t, const char *key, double v);
void otlp_attr_bool(otlp_trace_t *t, const char *key, bool v);

/* The ExportTraceServiceRequest JSON for n traces. 0 or SY_ETOOBIG (out's cap). */
int otlp_encode(const otlp_trace_t *traces, size_t n, const char *service_name, buf_t *out);

/* Parses a W3C traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>"). 0, or
 * SY_EPARSE for anything else (all-zero ids and version ff included). */
int otlp_traceparent_parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                           uint8_t *flags);

/* ----------------------------------------------------------- exporter ---- */

typedef struct otlp_opts {
    const char *endpoint;     /* "http://host:port[/prefix]": POSTs go to {endpoint}/v1/traces */
    const char *service_name; /* resource attribute service.name */
    uint32_t queue;           /* traces waiting at most */
    uint32_t batch;           /* traces per POST at most */
    uint32_t interval_ms;     /* a partial batch leaves after this long */
    uint32_t timeout_ms;      /* one POST */
} otlp_opts_t;

typedef struct otlp otlp_t;

/* Starts the exporter thread (strings copied). Returns owned exporter or NULL with
 * a message in err. */
otlp_t *otlp_new(const otlp_opts_t *o, char *err, size_t errlen);
/* Sends what is queued (one try each), stops the thread, frees. NULL is fine. */
void otlp_free(otlp_t *x);
/* Copies t into the queue; never blocks on I/O. SY_EFULL when the queue is full
 * (its spans are counted as dropped). Any thread. */
int otlp_submit(otlp_t *x, const otlp_trace_t *t);
/* Spans dropped (queue full or a failed POST) and spans the collector accepted. */
uint64_t otlp_dropped(const otlp_t *x);
uint64_t otlp_exported(const otlp_t *x);

#endif
