/* otlp.c — OTLP/HTTP JSON trace export (docs/telemetry.md). */
#include "api/otlp.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"

#ifndef SY_VERSION
#define SY_VERSION "dev"
#endif

/* ========================================================= building ===== */

void otlp_trace_init(otlp_trace_t *t, const uint8_t trace_id[16], const uint8_t parent_span_id[8])
{
    memcpy(t->trace_id, trace_id, 16);
    if (parent_span_id)
        memcpy(t->parent_span_id, parent_span_id, 8);
    else
        memset(t->parent_span_id, 0, 8);
    t->n_spans = 0;
    t->n_attrs = 0;
    t->pool_len = 0;
}

/* Copies s into the pool, cut at a UTF-8 boundary to what fits. */
static void pool_put(otlp_trace_t *t, const char *s, uint16_t *off, uint16_t *len)
{
    size_t n = s ? strlen(s) : 0, room = OTLP_POOL - t->pool_len;
    if (n > room) {
        n = room;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(t->pool + t->pool_len, s, n);
    *off = (uint16_t)t->pool_len;
    *len = (uint16_t)n;
    t->pool_len += n;
}

int otlp_span_add(otlp_trace_t *t, int parent, const uint8_t span_id[8], const char *name,
                  otlp_kind_t kind, uint64_t start_ns, uint64_t end_ns)
{
    if (t->n_spans == OTLP_MAX_SPANS) return -1;
    otlp_span_t *s = &t->spans[t->n_spans];
    memset(s, 0, sizeof *s);
    memcpy(s->span_id, span_id, 8);
    s->parent = parent;
    s->kind = kind;
    s->start_ns = start_ns;
    s->end_ns = end_ns < start_ns ? start_ns : end_ns;
    pool_put(t, name, &s->name_off, &s->name_len);
    s->first_attr = (uint8_t)t->n_attrs;
    return t->n_spans++;
}

/* A new attribute of the last span, or NULL when there is no room. */
static otlp_attr_t *attr_new(otlp_trace_t *t, const char *key, otlp_attr_type_t type)
{
    if (!t->n_spans || t->n_attrs == OTLP_MAX_ATTRS) return NULL;
    otlp_attr_t *a = &t->attrs[t->n_attrs++];
    memset(a, 0, sizeof *a);
    a->key = key;
    a->type = type;
    t->spans[t->n_spans - 1].n_attrs++;
    return a;
}

void otlp_attr_str(otlp_trace_t *t, const char *key, const char *v)
{
    otlp_attr_t *a = attr_new(t, key, OTLP_STR);
    if (a) pool_put(t, v, &a->off, &a->len);
}

void otlp_attr_int(otlp_trace_t *t, const char *key, int64_t v)
{
    otlp_attr_t *a = attr_new(t, key, OTLP_INT);
    if (a) a->i = v;
}

void otlp_attr_double(otlp_trace_t *t, const char *key, double v)
{
    otlp_attr_t *a = attr_new(t, key, OTLP_DOUBLE);
    if (a) a->d = v;
}

void otlp_attr_bool(otlp_trace_t *t, const char *key, bool v)
{
    otlp_attr_t *a = attr_new(t, key, OTLP_BOOL);
    if (a) a->i = v;
}

/* ========================================================= encoding ===== */

static void hex_str(jsonw_t *j, const uint8_t *b, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    char s[33];
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = hx[b[i] >> 4];
        s[2 * i + 1] = hx[b[i] & 15];
    }
    jsonw_strn(j, s, 2 * n);
}

/* proto3 JSON writes 64-bit integers as strings. */
static void u64_str(jsonw_t *j, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    jsonw_strn(j, s, (size_t)n);
}

static void write_attr(jsonw_t *j, const otlp_trace_t *t, const otlp_attr_t *a)
{
    jsonw_obj_begin(j);
    jsonw_key(j, "key");
    jsonw_str(j, a->key);
    jsonw_key(j, "value");
    jsonw_obj_begin(j);
    switch (a->type) {
    case OTLP_STR:
        jsonw_key(j, "stringValue");
        jsonw_strn(j, t->pool + a->off, a->len);
        break;
    case OTLP_INT: {
        char s[24];
        int n = snprintf(s, sizeof s, "%lld", (long long)a->i);
        jsonw_key(j, "intValue");
        jsonw_strn(j, s, (size_t)n);
        break;
    }
    case OTLP_DOUBLE:
        jsonw_key(j, "doubleValue");
        jsonw_double(j, a->d);
        break;
    case OTLP_BOOL:
        jsonw_key(j, "boolValue");
        jsonw_bool(j, a->i != 0);
        break;
    }
    jsonw_obj_end(j);
    jsonw_obj_end(j);
}

static void write_span(jsonw_t *j, const otlp_trace_t *t, const otlp_span_t *s)
{
    static const uint8_t zero[8] = {0};
    jsonw_obj_begin(j);
    jsonw_key(j, "traceId");
    hex_str(j, t->trace_id, 16);
    jsonw_key(j, "spanId");
    hex_str(j, s->span_id, 8);
    const uint8_t *parent = s->parent >= 0 ? t->spans[s->parent].span_id : t->parent_span_id;
    if (memcmp(parent, zero, 8)) {
        jsonw_key(j, "parentSpanId");
        hex_str(j, parent, 8);
    }
    jsonw_key(j, "name");
    jsonw_strn(j, t->pool + s->name_off, s->name_len);
    jsonw_key(j, "kind");
    jsonw_int(j, s->kind);
    jsonw_key(j, "startTimeUnixNano");
    u64_str(j, s->start_ns);
    jsonw_key(j, "endTimeUnixNano");
    u64_str(j, s->end_ns);
    jsonw_key(j, "attributes");
    jsonw_arr_begin(j);
    for (int i = 0; i < s->n_attrs; i++)
        write_attr(j, t, &t->attrs[s->first_attr + i]);
    jsonw_arr_end(j);
    if (s->event_ns) {
        jsonw_key(j, "events");
        jsonw_arr_begin(j);
        jsonw_obj_begin(j);
        jsonw_key(j, "timeUnixNano");
        u64_str(j, s->event_ns);
        jsonw_key(j, "name");
        jsonw_str(j, s->event_name);
        jsonw_obj_end(j);
        jsonw_arr_end(j);
    }
    jsonw_key(j, "status");
    jsonw_obj_begin(j);
    jsonw_key(j, "code");
    jsonw_int(j, s->status);
    jsonw_obj_end(j);
    jsonw_obj_end(j);
}

int otlp_encode(const otlp_trace_t *traces, size_t n, const char *service_name, buf_t *out)
{
    jsonw_t j;
    jsonw_init(&j, out);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "resourceSpans");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "resource");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "attributes");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "key");
    jsonw_str(&j, "service.name");
    jsonw_key(&j, "value");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "stringValue");
    jsonw_str(&j, service_name);
    jsonw_obj_end(&j);
    jsonw_obj_end(&j);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    jsonw_key(&j, "scopeSpans");
    jsonw_arr_begin(&j);
    jsonw_obj_begin(&j);
    jsonw_key(&j, "scope");
    jsonw_obj_begin(&j);
    jsonw_key(&j, "name");
    jsonw_str(&j, "switchyard");
    jsonw_key(&j, "version");
    jsonw_str(&j, SY_VERSION);
    jsonw_obj_end(&j);
    jsonw_key(&j, "spans");
    jsonw_arr_begin(&j);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < traces[i].n_spans; k++)
            write_span(&j, &traces[i], &traces[i].spans[k]);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    jsonw_arr_end(&j);
    jsonw_obj_end(&j);
    return jsonw_error(&j) ? SY_ETOOBIG : 0;
}

/* ====================================================== traceparent ===== */

static int hex_bytes(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return -1; /* upper case is invalid in traceparent */
        if (i % 2)
            out[i / 2] = (uint8_t)(out[i / 2] | v);
        else
            out[i / 2] = (uint8_t)(v << 4);
    }
    return 0;
}

int otlp_traceparent_parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                           uint8_t *flags)
{
    static const uint8_t zero[16] = {0};
    uint8_t ver;
    /* Version 00 is exactly 55 bytes; a later version may append fields after '-'. */
    if (!v || n < 55 || (n > 55 && v[55] != '-')) return SY_EPARSE;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-') return SY_EPARSE;
    if (hex_bytes(v, &ver, 1) || ver == 0xff || (ver == 0 && n != 55)) return SY_EPARSE;
    if (hex_bytes(v + 3, trace_id, 16) || hex_bytes(v + 36, span_id, 8) ||
        hex_bytes(v + 53, flags, 1))
        return SY_EPARSE;
    if (!memcmp(trace_id, zero, 16) || !memcmp(span_id, zero, 8)) return SY_EPARSE;
    return 0;
}

/* ========================================================= exporter ===== */

struct otlp {
    char *url; /* {endpoint}/v1/traces */
    char *service_name;
    uint32_t batch, interval_ms, timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    otlp_trace_t *ring; /* (cap) */
    size_t cap, head, count;
    bool stop;
    pthread_t thr;
    otlp_trace_t *out; /* (batch) the thread's copy of what it sends */
    buf_t body;
    atomic_uint_fast64_t dropped, exported;
    bool failing; /* the last POST failed: logged once per streak */
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* One POST of x->body; true on a 2xx answer. */
static bool post_body(otlp_t *x, CURL *h, struct curl_slist *hdr, char *why, size_t whylen)
{
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body.data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return false;
    }
    if (code < 200 || code > 299) {
        snprintf(why, whylen, "HTTP %ld", code);
        return false;
    }
    return true;
}

/* Encodes and sends n traces of x->out; counts what was exported or lost. */
static void send_batch(otlp_t *x, CURL *h, struct curl_slist *hdr, size_t n)
{
    uint64_t spans = 0;
    for (size_t i = 0; i < n; i++)
        spans += (uint64_t)x->out[i].n_spans;
    buf_reset(&x->body);
    char why[160] = "";
    bool ok = false;
    if (otlp_encode(x->out, n, x->service_name, &x->body))
        snprintf(why, sizeof why, "batch too large to encode");
    else
        ok = h && post_body(x, h, hdr, why, sizeof why);
    if (ok) {
        atomic_fetch_add(&x->exported, spans);
        if (x->failing) log_info("otlp: export to %s works again", x->url);
        x->failing = false;
        return;
    }
    atomic_fetch_add(&x->dropped, spans);
    if (!x->failing)
        log_warn("otlp: export to %s failed (%s); %llu spans dropped (counted in "
                 "switchyard_otlp_dropped_total, logged once until it works again)",
                 x->url, why, (unsigned long long)spans);
    x->failing = true;
}

static void *otlp_main(void *arg)
{
    otlp_t *x = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    pthread_mutex_lock(&x->mu);
    for (;;) {
        if (x->count == 0 && !x->stop) pthread_cond_wait(&x->wake, &x->mu);
        if (x->count == 0 && x->stop) break;
        if (x->count < x->batch && !x->stop) {
            /* A partial batch waits up to interval_ms for more. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)x->interval_ms * 1000000ull;
            until.tv_sec += (time_t)(ns / 1000000000ull);
            until.tv_nsec = (long)(ns % 1000000000ull);
            while (x->count < x->batch && !x->stop &&
                   pthread_cond_timedwait(&x->wake, &x->mu, &until) != ETIMEDOUT) {
            }
        }
        size_t n = x->count < x->batch ? x->count : x->batch;
        for (size_t i = 0; i < n; i++)
            x->out[i] = x->ring[(x->head + i) % x->cap];
        x->head = (x->head + n) % x->cap;
        x->count -= n;
        pthread_mutex_unlock(&x->mu);
        if (n) send_batch(x, h, hdr, n);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    curl_slist_free_all(hdr);
    if (h) curl_easy_cleanup(h);
    log_thread_cleanup();
    return NULL;
}

otlp_t *otlp_new(const otlp_opts_t *o, char *err, size_t errlen)
{
    if (!o->endpoint || strncmp(o->endpoint, "http://", 7) || !o->queue || !o->batch) {
        snprintf(err, errlen,
                 "otlp: endpoint must be http://host:port[/path], queue and batch > 0");
        return NULL;
    }
    otlp_t *x = mem_calloc(1, sizeof *x);
    size_t n = strlen(o->endpoint);
    while (n > 7 && o->endpoint[n - 1] == '/')
        n--;
    x->url = mem_alloc(n + sizeof "/v1/traces");
    memcpy(x->url, o->endpoint, n);
    memcpy(x->url + n, "/v1/traces", sizeof "/v1/traces");
    x->service_name = mem_strdup(o->service_name ? o->service_name : "switchyard");
    x->cap = o->queue;
    x->batch = o->batch < o->queue ? o->batch : o->queue;
    x->interval_ms = o->interval_ms ? o->interval_ms : 1;
    x->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
    x->ring = mem_calloc(x->cap, sizeof *x->ring);
    x->out = mem_calloc(x->batch, sizeof *x->out);
    /* A full trace record encodes to well under 16 KB. */
    buf_init(&x->body, (size_t)x->batch * (16u << 10) + 4096);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->wake, NULL);
    if (pthread_create(&x->thr, NULL, otlp_main, x)) {
        snprintf(err, errlen, "otlp: cannot start the exporter thread");
        pthread_cond_destroy(&x->wake);
        pthread_mutex_destroy(&x->mu);
        buf_deinit(&x->body);
        mem_free(x->out);
        mem_free(x->ring);
        mem_free(x->service_name);
        mem_free(x->url);
        mem_free(x);
        return NULL;
    }
    return x;
}

void otlp_free(otlp_t *x)
{
    if (!x) return;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thr, NULL);
    pthread_cond_destroy(&x->wake);
    pthread_mutex_destroy(&x->mu);
    buf_deinit(&x->body);
    mem_free(x->out);
    mem_free(x->ring);
    mem_free(x->service_name);
    mem_free(x->url);
    mem_free(x);
}

int otlp_submit(otlp_t *x, const otlp_trace_t *t)
{
    pthread_mutex_lock(&x->mu);
    if (x->count == x->cap || x->stop) {
        pthread_mutex_unlock(&x->mu);
        atomic_fetch_add(&x->dropped, (uint64_t)t->n_spans);
        return SY_EFULL;
    }
    otlp_trace_t *slot = &x->ring[(x->head + x->count) % x->cap];
    /* Only the used part of the record is copied. */
    memcpy(slot->trace_id, t->trace_id, sizeof t->trace_id);
    memcpy(slot->parent_span_id, t->parent_span_id, sizeof t->parent_span_id);
    memcpy(slot->spans, t->spans, (size_t)t->n_spans * sizeof *t->spans);
    slot->n_spans = t->n_spans;
    memcpy(slot->attrs, t->attrs, (size_t)t->n_attrs * sizeof *t->attrs);
    slot->n_attrs = t->n_attrs;
    memcpy(slot->pool, t->pool, t->pool_len);
    slot->pool_len = t->pool_len;
    bool wake = ++x->count >= x->batch || x->count == 1;
    if (wake) pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->mu);
    return 0;
}

uint64_t otlp_dropped(const otlp_t *x)
{
    return atomic_load(&((otlp_t *)x)->dropped);
}

uint64_t otlp_exported(const otlp_t *x)
{
    return atomic_load(&((otlp_t *)x)->exported);
}
