/* progress.h — progress reporting for long work: a redrawn bar on a terminal,
 * plain lines (at most one per 10%) when stderr is not a terminal. */
#ifndef SY_BASE_PROGRESS_H
#define SY_BASE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
    const char *label;
    uint64_t total;
    uint64_t done;
    uint64_t last_draw_us;
    int last_decile;
    bool tty;
    bool quiet;
} progress_t;

void progress_init(progress_t *p, const char *label, uint64_t total);
void progress_update(progress_t *p, uint64_t done);
void progress_finish(progress_t *p);

#endif
