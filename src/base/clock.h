/* clock.h — time sources. Layers that must stay pure (route/) take time as an
 * argument instead of calling these. */
#ifndef SY_BASE_CLOCK_H
#define SY_BASE_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void); /* monotonic, for durations */
uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
int64_t clock_wall_ms(void); /* Unix time in milliseconds */
/* Formats a Unix-ms time as RFC 3339 UTC ("2026-11-28T10:00:00.123Z") into out[32]. */
void clock_fmt_rfc3339(int64_t wall_ms, char out[32]);
/* Parses RFC 3339 / ISO 8601 ("2026-11-28", "2026-11-28T10:00:00Z") or a Unix
 * seconds integer. 0 on success, SY_EPARSE otherwise. */
int clock_parse_time(const char *s, int64_t *wall_ms);

#endif
