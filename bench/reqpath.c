/* reqpath.c — CPU of the request path that privacy by construction changed, per
 * request, in process: what the gateway did before (cJSON parse, validation, cJSON
 * print of the body for the tier) against what it does now (parse into the typed
 * request with the duplicate-key and UTF-8 walk, the PII scan of every string that
 * leaves, and the render with the JSON writer). The router's own scan, unchanged,
 * is in neither column. Prints a table; compare the added microseconds with the CPU
 * per proxied request of bench/overhead.sh.
 *
 *   build/rel/bench/reqpath [ITERATIONS]     (default 200000; names from $SY_SHARED)
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/piiload.h"
#include "api/privacy.h"
#include "api/render.h"
#include "api/request.h"
#include "base/arena.h"
#include "base/buf.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct {
    const char *name, *body;
} bodies[] = {
    {"overhead.lua chat",
     "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"Summarize the benefits "
     "of keep-alive connections in one line.\"}]}"},
    {"3 turns + tool",
     "{\"model\":\"auto\",\"temperature\":0.2,\"max_tokens\":256,\"messages\":[{\"role\":"
     "\"system\",\"content\":\"You are a helpful assistant for a travel site.\"},{\"role\":"
     "\"user\",\"content\":\"Find me a hotel in Lisbon for next weekend, two nights.\"},{\"role\":"
     "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
     "\"function\":{\"name\":\"search_hotels\",\"arguments\":\"{\\\"city\\\":\\\"Lisbon\\\","
     "\\\"nights\\\":2}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"[3 "
     "results]\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"search_hotels\","
     "\"description\":\"Search hotels by city\",\"parameters\":{\"type\":\"object\","
     "\"properties\":{\"city\":{\"type\":\"string\"},\"nights\":{\"type\":\"integer\"}}}}}]}"},
};

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    const char *sh = getenv("SY_SHARED");
    char names[512];
    snprintf(names, sizeof names, "%s/data/names", sh ? sh : "../shared");
    char err[256];
    pii_scanner_t *pii = piiload_scanner_new(names, false, 0.5f, err, sizeof err);
    if (!pii) pii = piiload_scanner_new(NULL, false, 0.5f, err, sizeof err);
    if (!pii) {
        fprintf(stderr, "reqpath: %s\n", err);
        return 1;
    }
    api_scan_t *scan = api_scan_new(pii, 0.5f);
    arena_t a;
    arena_init(&a, 1u << 16);
    buf_t out;
    buf_init(&out, 1u << 24);
    char *print = malloc(1u << 16);
    printf("# reqpath: %ld iterations per cell, one thread (machine shared: other builds run)\n",
           iters);
    printf("%-18s %10s %10s %10s %10s %9s\n", "body", "before_us", "after_us", "added_us",
           "scan_us", "render_us");
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
        const char *body = bodies[b].body;
        size_t len = strlen(body);
        http_req_t hr = {.method = "POST", .path = "/", .query = "", .body = body, .body_len = len};
        /* Before: parse, the same validation reads, print for the tier. */
        double t0 = cpu_s();
        for (long i = 0; i < iters; i++) {
            cJSON *j = cJSON_ParseWithLength(body, len);
            cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
            cJSON_AddStringToObject(j, "model", "m");
            cJSON_DeleteItemFromObjectCaseSensitive(j, "stream");
            cJSON_AddBoolToObject(j, "stream", false);
            cJSON_PrintPreallocated(j, print, 1 << 16, false);
            cJSON_Delete(j);
        }
        double before = (cpu_s() - t0) / (double)iters * 1e6;
        /* After, in parts: typed parse; + scan; + render. */
        double parts[3] = {0};
        for (int stage = 0; stage < 3; stage++) {
            t0 = cpu_s();
            for (long i = 0; i < iters; i++) {
                api_request_t r;
                char e[256], p[96];
                arena_reset(&a);
                if (api_request_parse(&r, &hr, false, &a, e, sizeof e, p, sizeof p)) {
                    fprintf(stderr, "reqpath: %s\n", e);
                    return 1;
                }
                if (stage >= 1) {
                    api_privacy_t pv;
                    api_privacy_scan(scan, &r, true, &pv);
                }
                if (stage >= 2) {
                    buf_reset(&out);
                    api_render_opts_t o = {.model = "m", .forward_unknown = true};
                    api_render_body(&r, &o, &out);
                }
                api_request_deinit(&r);
            }
            parts[stage] = (cpu_s() - t0) / (double)iters * 1e6;
        }
        printf("%-18s %10.2f %10.2f %10.2f %10.2f %9.2f\n", bodies[b].name, before, parts[2],
               parts[2] - before, parts[1] - parts[0], parts[2] - parts[1]);
    }
    free(print);
    buf_deinit(&out);
    arena_deinit(&a);
    api_scan_free(scan);
    pii_scanner_free(pii);
    return 0;
}
