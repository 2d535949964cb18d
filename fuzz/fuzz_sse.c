/* fuzz_sse.c — libFuzzer target: an upstream's event stream, fed in arbitrary
 * slices (the first byte picks the slice size), through the SSE parser. */
#include <stdint.h>
#include <stdlib.h>

#include "net/sse.h"

static void on_event(void *arg, const char *event, const char *data, size_t len)
{
    size_t *total = arg;
    *total += len + (event ? 1 : 0);
    if (len && !data) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t step = (size_t)data[0] % 17 + 1, total = 0;
    sse_parser_t p;
    sse_parser_init(&p, 4096);
    for (size_t i = 1; i < size; i += step) {
        size_t n = size - i < step ? size - i : step;
        if (sse_parser_feed(&p, (const char *)data + i, n, on_event, &total)) break;
    }
    sse_parser_deinit(&p);
    return 0;
}
