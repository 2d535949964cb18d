/* fuzz_config.c — libFuzzer target: arbitrary YAML through config validation. A bad
 * file must be refused with a message, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>

#include "api/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config_t c;
    char err[512] = "";
    int rc = config_load_string(&c, (const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (rc && !err[0]) abort();
    config_deinit(&c);
    return 0;
}
