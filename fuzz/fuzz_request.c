/* fuzz_request.c — libFuzzer target: arbitrary bytes as a chat or completions
 * request body through the API's validation. Must never crash or leak; every
 * rejection carries a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"
#include "base/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    char *body = malloc(size + 1);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = 0;
    http_header_t hdr = {"x-switchyard-team", 17, (const char *)data, size < 8 ? size : 8};
    http_req_t hr = {.method = "POST",
                     .path = "/v1/chat/completions",
                     .query = "",
                     .headers = &hdr,
                     .n_headers = 1,
                     .body = body,
                     .body_len = size - 1};
    arena_t a;
    arena_init(&a, 4096);
    api_request_t r;
    char err[512], param[64];
    int rc = api_request_parse(&r, &hr, data[0] & 1, &a, err, sizeof err, param, sizeof param);
    if (rc && !err[0]) abort(); /* a rejection without a message is a bug */
    if (!rc) api_request_deinit(&r);
    arena_deinit(&a);
    free(body);
    return 0;
}
