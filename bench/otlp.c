/* otlp.c — what tracing adds per request, in process: building a typical trace
 * record (request, decision and two upstream calls, 20 attributes) and handing it to
 * the exporter's queue on the worker loop, and encoding it to OTLP JSON on the
 * exporter thread; against the ledger row push every request already pays, measured
 * in the same run. The exporter posts to a closed port (a collector that is down: the
 * thread encodes, fails fast and counts drops), so the figures are the gateway's
 * side only.
 *
 *   build/rel/bench/otlp [ITERATIONS]     (default 200000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/otlp.h"
#include "base/buf.h"
#include "base/log.h"
#include "store/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void build(otlp_trace_t *t, uint64_t i)
{
    uint8_t tid[16], id[8];
    memset(tid, 0, sizeof tid);
    memcpy(tid, &i, sizeof i);
    memcpy(id, &i, sizeof i);
    otlp_trace_init(t, tid, NULL);
    int root =
        otlp_span_add(t, -1, id, "POST /v1/chat/completions", OTLP_KIND_SERVER, 1000 + i, 2000 + i);
    otlp_attr_str(t, "switchyard.request_id", "chatcmpl-sy0123456789abcdef");
    otlp_attr_int(t, "http.response.status_code", 200);
    otlp_attr_str(t, "switchyard.tier", "cloud");
    otlp_attr_str(t, "switchyard.model", "big-model");
    otlp_attr_str(t, "switchyard.version", "2026-11");
    otlp_attr_str(t, "switchyard.reasons",
                  "task:chat,tier:edge,escalate:conf=0.31<0.55->cloud,confident:0.91>=0.55");
    otlp_attr_str(t, "switchyard.pii_types", "");
    otlp_attr_int(t, "gen_ai.usage.input_tokens", 42);
    otlp_attr_int(t, "gen_ai.usage.output_tokens", 120);
    otlp_attr_double(t, "switchyard.cost_usd", 0.00131);
    otlp_attr_bool(t, "switchyard.escalated", true);
    t->spans[root].event_ns = 1500 + i;
    t->spans[root].event_name = "first_token";
    otlp_span_add(t, root, id, "decision", OTLP_KIND_INTERNAL, 1001 + i, 1002 + i);
    otlp_attr_str(t, "switchyard.reasons", "task:chat,tier:edge");
    otlp_attr_str(t, "switchyard.tier", "edge");
    for (int k = 0; k < 2; k++) {
        otlp_span_add(t, root, id, k ? "attempt cloud" : "attempt edge", OTLP_KIND_INTERNAL,
                      1003 + i, 1500 + i);
        otlp_attr_int(t, "switchyard.attempt", k + 1);
        otlp_attr_str(t, "switchyard.tier", k ? "cloud" : "edge");
        otlp_attr_str(t, "switchyard.version", k ? "2026-11" : "v3");
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n < 1000) n = 1000;
    log_set_level(LOG_ERROR); /* the exporter's "collector down" warning */
    static otlp_trace_t t;

    /* Baseline: the ledger row push (copy into the writer's queue). */
    char dir[] = "/tmp/sy-bench-otlp-XXXXXX", url[128], err[256];
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    snprintf(url, sizeof url, "sqlite:%s/l.db", dir);
    store_ledger_writer_t *w = store_ledger_writer_new(url, 8192, 200, err, sizeof err);
    if (!w) return fprintf(stderr, "ledger: %s\n", err), 1;
    store_ledger_row_t row = {.ts_ms = 1,
                              .tenant = "acme",
                              .team = "search",
                              .feature = "chat",
                              .tier = "cloud",
                              .model = "big-model@2026-11",
                              .status = "ok",
                              .http_status = 200,
                              .tokens_in = 42,
                              .tokens_out = 120,
                              .reasons = "task:chat,tier:edge",
                              .version = "2026-11",
                              .first_tier = "edge",
                              .first_version = "v3"};
    /* Rounds that fit the queue, flushed between rounds (not timed): every timed
     * push is a real copy into the queue, none a refusal. */
    long pushed = 0, round = 8000;
    double ledger_s = 0, t0;
    for (long done = 0; done < n; done += round) {
        t0 = now_s();
        for (long i = done; i < done + round && i < n; i++) {
            snprintf(row.id, sizeof row.id, "chatcmpl-%ld", i);
            if (store_ledger_writer_push(w, &row) == 0) pushed++;
        }
        ledger_s += now_s() - t0;
        store_ledger_writer_flush(w);
    }
    double ledger = ledger_s / (double)n;
    store_ledger_writer_free(w);
    snprintf(err, sizeof err, "rm -rf %s", dir);
    if (system(err)) fprintf(stderr, "could not remove %s\n", dir);

    /* Build only. */
    t0 = now_s();
    for (long i = 0; i < n; i++)
        build(&t, (uint64_t)i);
    double b = (now_s() - t0) / (double)n;

    /* Build + submit, the exporter thread draining to a closed port meanwhile. */
    otlp_opts_t o = {"http://127.0.0.1:1", "bench", 4096, 256, 1000, 1000};
    otlp_t *x = otlp_new(&o, err, sizeof err);
    if (!x) return fprintf(stderr, "%s\n", err), 1;
    /* Rounds of 4000 into an empty queue of 4096; between rounds (not timed) the
     * exporter settles them (encode, failed POST, counted as dropped). */
    long full = 0;
    double bs_s = 0;
    for (long done = 0; done < n; done += 4000) {
        uint64_t before = otlp_dropped(x);
        long k = 0;
        t0 = now_s();
        for (long i = done; i < done + 4000 && i < n; i++, k++) {
            build(&t, (uint64_t)i);
            full += otlp_submit(x, &t) != 0;
        }
        bs_s += now_s() - t0;
        while (otlp_dropped(x) < before + (uint64_t)k * 4)
            usleep(1000);
    }
    double bs = bs_s / (double)n;
    otlp_free(x);

    /* Encoding, as the exporter thread does it, 256 traces per POST body. */
    static otlp_trace_t batch[256];
    for (int i = 0; i < 256; i++)
        build(&batch[i], (uint64_t)i);
    buf_t body;
    buf_init(&body, 256u << 14);
    long rounds = n / 256;
    size_t bytes = 0;
    t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        buf_reset(&body);
        otlp_encode(batch, 256, "bench", &body);
        bytes = body.len;
    }
    double enc = (now_s() - t0) / (double)(rounds * 256);
    buf_deinit(&body);

    printf("tracing cost per request, %ld iterations (wall clock, one thread; a loaded "
           "2-core machine: compare ratios)\n\n",
           n);
    printf("%-44s %12s %10s\n", "step", "us/request", "x ledger");
    printf("%-44s %12.3f %10.2f\n", "ledger row push (baseline, every request)", ledger * 1e6, 1.0);
    printf("%-44s %12.3f %10.2f\n", "build trace record (worker loop)", b * 1e6, b / ledger);
    printf("%-44s %12.3f %10.2f\n", "build + submit to queue (worker loop)", bs * 1e6, bs / ledger);
    printf("%-44s %12.3f %10.2f\n", "encode OTLP JSON (exporter thread)", enc * 1e6, enc / ledger);
    printf("\n4 spans, 20 attributes per trace; %zu JSON bytes per trace; %ld of %ld submits found "
           "the queue full; %ld of %ld ledger pushes queued\n",
           bytes / 256, full, n, pushed, n);
    return 0;
}
