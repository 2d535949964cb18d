/* err.h — switchyard's error codes.
 *
 * One convention everywhere: functions return int, 0 is success, a negative value
 * is an error. System errors are wrapped as -errno; switchyard's own codes live
 * below SY_EBASE so they never collide with errno values. sy_strerror() names both.
 */
#ifndef SY_BASE_ERR_H
#define SY_BASE_ERR_H

#define SY_EBASE (-10000)

/* X-macro table: name, value offset, message. */
#define SY_ERRNO_MAP(X)                                                                            \
    X(INVAL, 1, "invalid argument")                                                                \
    X(TOOBIG, 2, "input exceeds its size limit")                                                   \
    X(PARSE, 3, "malformed input")                                                                 \
    X(NOTFOUND, 4, "not found")                                                                    \
    X(UNSUPPORTED, 5, "unsupported")                                                               \
    X(CORRUPT, 6, "corrupt or truncated file")                                                     \
    X(TIMEOUT, 7, "timed out")                                                                     \
    X(UPSTREAM, 8, "upstream error")                                                               \
    X(UNAVAILABLE, 9, "no eligible tier is available")                                             \
    X(FULL, 10, "queue full")                                                                      \
    X(CLOSED, 11, "connection closed")                                                             \
    X(PRIVACY, 12, "blocked by privacy policy")                                                    \
    X(CONFIG, 13, "invalid configuration")                                                         \
    X(IO, 14, "input/output error")                                                                \
    X(CANCELED, 15, "canceled")                                                                    \
    X(CONTEXT, 16, "prompt exceeds the model context")

enum {
#define SY_ERR_ENUM(name, off, msg) SY_E##name = SY_EBASE - (off),
    SY_ERRNO_MAP(SY_ERR_ENUM)
#undef SY_ERR_ENUM
};

/* Returns a static, human-readable message for any code (switchyard or -errno). */
const char *sy_strerror(int err);

#endif
