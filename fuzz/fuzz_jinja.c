/* fuzz_jinja.c — libFuzzer target for the chat-template interpreter: any template
 * must parse and render, or be refused with an error, within its limits; never
 * crash, hang or leak. */
#include <stddef.h>
#include <stdint.h>

#include "engine/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *ctx;
    if (!ctx)
        ctx = cJSON_Parse("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                          "{\"role\":\"user\",\"content\":\"Hi <|im_end|>\",\"tool_calls\":"
                          "[{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1.5}}}]}],"
                          "\"tools\":[{\"type\":\"function\"}],\"add_generation_prompt\":true}");
    jinja_tmpl_t *t;
    char err[256];
    if (jinja_parse((const char *)data, size, &t, err, sizeof err)) return 0;
    jinja_limits_t lim = {
        .max_depth = 64, .max_iterations = 10000, .max_output = 1 << 16, .max_memory = 8u << 20};
    jinja_out_t o;
    jinja_out_init(&o, 1 << 16);
    jinja_render(t, ctx, NULL, &lim, &o, err, sizeof err);
    jinja_out_deinit(&o);
    jinja_free(t);
    return 0;
}
