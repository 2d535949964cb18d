/* log.c — JSON-lines logging. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"

static log_level_t g_level = LOG_INFO;
static int g_fd = 2;
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

static _Thread_local buf_t t_buf;
static _Thread_local jsonw_t t_w;
static _Thread_local int t_init;

void log_set_level(log_level_t lvl)
{
    g_level = lvl;
}
log_level_t log_get_level(void)
{
    return g_level;
}
void log_set_fd(int fd)
{
    g_fd = fd;
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    return SY_EINVAL;
}

jsonw_t *log_event_begin(log_level_t lvl, const char *event)
{
    if (lvl < g_level || g_level == LOG_OFF) return NULL;
    if (!t_init) {
        buf_init(&t_buf, 64 * 1024);
        t_init = 1;
    }
    buf_reset(&t_buf);
    jsonw_init(&t_w, &t_buf);
    char ts[32];
    clock_fmt_rfc3339(clock_wall_ms(), ts);
    jsonw_obj_begin(&t_w);
    jsonw_key(&t_w, "ts");
    jsonw_str(&t_w, ts);
    jsonw_key(&t_w, "level");
    jsonw_str(&t_w, names[lvl]);
    jsonw_key(&t_w, "event");
    jsonw_str(&t_w, event);
    return &t_w;
}

void log_event_end(void)
{
    jsonw_obj_end(&t_w);
    buf_putc(&t_buf, '\n');
    if (t_w.err) return;
    ssize_t off = 0;
    while ((size_t)off < t_buf.len) {
        ssize_t n = write(g_fd, t_buf.data + off, t_buf.len - (size_t)off);
        if (n <= 0) break;
        off += n;
    }
}

void log_msg(log_level_t lvl, const char *fmt, ...)
{
    jsonw_t *w = log_event_begin(lvl, "log");
    if (!w) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jsonw_key(w, "msg");
    jsonw_str(w, msg);
    log_event_end();
}

void log_thread_cleanup(void)
{
    if (t_init) buf_deinit(&t_buf);
    t_init = 0;
}
