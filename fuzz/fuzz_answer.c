/* fuzz_answer.c — libFuzzer target: arbitrary bytes as an upstream's non-streamed
 * answer. Wherever answer_scan() says it is sure, cJSON must parse the same bytes
 * and read the same facts from them (object or not, "choices" an array, the usage
 * counts, no first-choice logprobs object); otherwise the target aborts. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

#include "tier/answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    answer_scan_t a;
    if (!answer_scan((const char *)data, size, &a)) return 0;
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) abort();
    if (a.top_obj != (bool)cJSON_IsObject(j)) abort();
    if (a.top_obj) {
        cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
        if (a.choices_arr != (bool)cJSON_IsArray(ch)) abort();
        cJSON *us = cJSON_GetObjectItemCaseSensitive(j, "usage");
        cJSON *pt =
            cJSON_IsObject(us) ? cJSON_GetObjectItemCaseSensitive(us, "prompt_tokens") : NULL;
        cJSON *ct =
            cJSON_IsObject(us) ? cJSON_GetObjectItemCaseSensitive(us, "completion_tokens") : NULL;
        if (a.has_pt != (bool)cJSON_IsNumber(pt) || a.has_ct != (bool)cJSON_IsNumber(ct)) abort();
        if (a.has_pt && a.pt != pt->valuedouble) abort();
        if (a.has_ct && a.ct != ct->valuedouble) abort();
        cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
        if (cJSON_IsObject(c0) && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c0, "logprobs")))
            abort();
    }
    cJSON_Delete(j);
    return 0;
}
