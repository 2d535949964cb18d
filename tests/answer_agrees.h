/* answer_agrees.h — the property tests/test_tier_answer.c and fuzz/fuzz_answer.c
 * check: where answer_scan() is sure, cJSON parses the same bytes and reads the same
 * facts from them. */
#ifndef SY_TESTS_ANSWER_AGREES_H
#define SY_TESTS_ANSWER_AGREES_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "tier/answer.h"

/* True when cJSON accepts s[0, n) and reads what a says: object or not, "choices" an
 * array, the usage counts, and no logprobs object in the first choice. */
static inline bool answer_agrees_with_cjson(const char *s, size_t n, const answer_scan_t *a)
{
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) return false;
    bool ok = a->top_obj == (bool)cJSON_IsObject(j);
    if (ok && a->top_obj) {
        cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
        cJSON *us = cJSON_GetObjectItemCaseSensitive(j, "usage");
        cJSON *pt =
            cJSON_IsObject(us) ? cJSON_GetObjectItemCaseSensitive(us, "prompt_tokens") : NULL;
        cJSON *ct =
            cJSON_IsObject(us) ? cJSON_GetObjectItemCaseSensitive(us, "completion_tokens") : NULL;
        cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
        ok = a->choices_arr == (bool)cJSON_IsArray(ch) && a->has_pt == (bool)cJSON_IsNumber(pt) &&
             a->has_ct == (bool)cJSON_IsNumber(ct) && (!a->has_pt || a->pt == pt->valuedouble) &&
             (!a->has_ct || a->ct == ct->valuedouble) &&
             !(cJSON_IsObject(c0) &&
               cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c0, "logprobs")));
    }
    cJSON_Delete(j);
    return ok;
}

#endif
