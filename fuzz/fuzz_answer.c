/* fuzz_answer.c — libFuzzer target: arbitrary bytes as an upstream's non-streamed
 * answer. Wherever answer_scan() says it is sure, cJSON must parse the same bytes
 * and read the same facts from them (tests/answer_agrees.h); otherwise the target
 * aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "../tests/answer_agrees.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    answer_scan_t a;
    if (answer_scan((const char *)data, size, &a) &&
        !answer_agrees_with_cjson((const char *)data, size, &a))
        abort();
    return 0;
}
