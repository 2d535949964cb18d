/* progress.c — progress bar on a terminal, sparse plain lines otherwise. */
#include "base/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "base/clock.h"

void progress_init(progress_t *p, const char *label, uint64_t total)
{
    p->label = label;
    p->total = total ? total : 1;
    p->done = 0;
    p->last_draw_us = 0;
    p->last_decile = -1;
    p->tty = isatty(2);
    p->quiet = false;
}

static void draw(progress_t *p)
{
    double f = (double)p->done / (double)p->total;
    if (f > 1) f = 1;
    if (p->tty) {
        int w = 30, fill = (int)(f * w);
        fprintf(stderr, "\r%s [", p->label);
        for (int i = 0; i < w; i++)
            fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %5.1f%% (%llu/%llu)", f * 100, (unsigned long long)p->done,
                (unsigned long long)p->total);
        fflush(stderr);
    } else {
        int dec = (int)(f * 10);
        if (dec != p->last_decile) {
            p->last_decile = dec;
            fprintf(stderr, "%s: %d%% (%llu/%llu)\n", p->label, dec * 10,
                    (unsigned long long)p->done, (unsigned long long)p->total);
        }
    }
}

void progress_update(progress_t *p, uint64_t done)
{
    p->done = done;
    if (p->quiet) return;
    uint64_t now = clock_mono_us();
    if (p->tty && now - p->last_draw_us < 100000 && done < p->total) return;
    p->last_draw_us = now;
    draw(p);
}

void progress_finish(progress_t *p)
{
    p->done = p->total;
    if (p->quiet) return;
    draw(p);
    if (p->tty) fputc('\n', stderr);
}
