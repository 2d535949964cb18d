/* err.c — messages for switchyard's error codes. */
#include "base/err.h"

#include <string.h>

const char *sy_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define SY_ERR_CASE(name, off, msg)                                                                \
    case SY_E##name:                                                                               \
        return msg;
        SY_ERRNO_MAP(SY_ERR_CASE)
#undef SY_ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > SY_EBASE) return strerror(-err);
    return "unknown error";
}
