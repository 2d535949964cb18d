/* log.h — JSON-lines logging to stderr.
 *
 * One line per event, written with a single write(2) so lines from worker threads
 * never interleave. Callers must never pass personal data: request logs carry PII
 * entity types, never values.
 */
#ifndef SY_BASE_LOG_H
#define SY_BASE_LOG_H

#include "base/jsonw.h"

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level_t;

void log_set_level(log_level_t lvl);
log_level_t log_get_level(void);
/* Parses "debug|info|warn|error|off"; 0 or SY_EINVAL. */
int log_level_parse(const char *s, log_level_t *out);
/* Redirects output to fd (default 2). */
void log_set_fd(int fd);

/* Logs {"ts":..., "level":..., "msg": formatted}. */
void log_msg(log_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Structured event: begin writes ts/level/event keys into a thread-local writer the
 * caller fills with more keys, then log_event_end() emits the line. Returns NULL if
 * the level is filtered out (then skip the body and do not call end). */
jsonw_t *log_event_begin(log_level_t lvl, const char *event);
void log_event_end(void);
/* Frees the calling thread's log buffer (call before a worker thread exits). */
void log_thread_cleanup(void);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
