/* runner/progress.c — progress bar and plain progress lines (see progress.h). */
#include "runner/progress.h"
#include "runner/watchdog.h"
#include "util/mem.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bt_progress {
    bt_progress_mode mode;
    double every;
    FILE *out;
    double last;     /* monotonic time of the last draw; < 0: never */
    int bar_shown;   /* a bar line is on screen (needs clearing) */
};

bt_progress *bt_progress_create(bt_progress_mode mode, double every_s, FILE *out)
{
    bt_progress *p = bt_xcalloc(1, sizeof *p);
    p->out = out;
    p->every = every_s > 0 ? every_s : 30;
    p->last = -1;
    if (mode == BT_PROGRESS_AUTO) mode = isatty(fileno(out)) ? BT_PROGRESS_BAR : BT_PROGRESS_PLAIN;
    p->mode = mode;
    return p;
}

void bt_progress_free(bt_progress *p) { free(p); }

bt_progress_mode bt_progress_resolved_mode(const bt_progress *p) { return p->mode; }

static void fmt_eta(double s, char *b, size_t n)
{
    if (!isfinite(s) || s < 0) {
        snprintf(b, n, "?");
        return;
    }
    if (s >= 60) s = floor(s / 60) * 60; /* minutes are enough past a minute */
    else s = ceil(s);
    bt_format_duration(s, b, (unsigned)n);
}

int bt_progress_format(const bt_progress_info *i, int bar_width, char *buf, size_t n)
{
    size_t k = 0;
#define PUT(...)                                                                        \
    do {                                                                                \
        int w_ = snprintf(buf + k, k < n ? n - k : 0, __VA_ARGS__);                     \
        if (w_ > 0) k += (size_t)w_;                                                    \
    } while (0)
    if (n) buf[0] = '\0';
    if (bar_width > 0) {
        double frac = i->total_steps > 0 ? (double)i->step / (double)i->total_steps : 0;
        if (frac < 0) frac = 0;
        if (frac > 1) frac = 1;
        int full = (int)floor(frac * bar_width);
        PUT("[");
        for (int c = 0; c < bar_width; c++) PUT("%c", c < full ? '#' : '.');
        PUT("] ");
    }
    if (i->total_steps > 0) PUT("step %lld/%lld", (long long)i->step, (long long)i->total_steps);
    else PUT("step %lld", (long long)i->step);
    if (i->epochs > 0) PUT("  epoch %.2f/%lld", i->epoch, (long long)i->epochs);
    if (isfinite(i->loss)) PUT("  loss %.4f", i->loss);
    if (i->loss_scale > 0) PUT("  fp16 scale %g, %lld skipped", i->loss_scale, (long long)i->skipped);
    if (isfinite(i->examples_per_s)) PUT("  %.1f ex/s", i->examples_per_s);
    if (i->n_dev > 1 && i->dev) {
        PUT("  devices ");
        for (int j = 0; j < i->n_dev; j++) PUT("%s%.1f", j ? "+" : "", i->dev[j].examples_per_s);
        PUT(" ex/s ");
        for (int j = 0; j < i->n_dev; j++) PUT("%s%.0f", j ? "+" : "", i->dev[j].memory_bytes / 1048576.0);
        PUT(" MiB");
    }
    if (isfinite(i->eta_job_s) || isfinite(i->eta_segment_s)) {
        char a[32], b[32];
        fmt_eta(i->eta_job_s, a, sizeof a);
        fmt_eta(i->eta_segment_s, b, sizeof b);
        if (isfinite(i->eta_segment_s) && (!isfinite(i->eta_job_s) || i->eta_segment_s < i->eta_job_s))
            PUT("  ETA %s (segment ends in %s)", a, b);
        else
            PUT("  ETA %s", a);
    }
#undef PUT
    return (int)(k < n ? k : (n ? n - 1 : 0));
}

void bt_progress_update_at(bt_progress *p, const bt_progress_info *i, int force, double now)
{
    if (!p || p->mode == BT_PROGRESS_NONE) return;
    double gap = p->mode == BT_PROGRESS_BAR ? 0.25 : p->every;
    if (!force && p->last >= 0 && now - p->last < gap) return;
    p->last = now;
    char line[512];
    if (p->mode == BT_PROGRESS_BAR) {
        bt_progress_format(i, 24, line, sizeof line);
        fprintf(p->out, "\r\033[K%s", line);
        p->bar_shown = 1;
    } else {
        bt_progress_format(i, 0, line, sizeof line);
        fprintf(p->out, "baton: %s\n", line);
    }
    fflush(p->out);
}

void bt_progress_update(bt_progress *p, const bt_progress_info *i, int force)
{
    bt_progress_update_at(p, i, force, bt_now_mono());
}

void bt_progress_message(bt_progress *p, const char *fmt, ...)
{
    FILE *out = p ? p->out : stderr;
    if (p && p->bar_shown) {
        fprintf(out, "\r\033[K");
        p->bar_shown = 0;
        p->last = -1; /* redraw the bar on the next update */
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

void bt_progress_finish(bt_progress *p, const bt_progress_info *i)
{
    if (!p || p->mode == BT_PROGRESS_NONE) return;
    bt_progress_update_at(p, i, 1, bt_now_mono());
    if (p->mode == BT_PROGRESS_BAR) {
        fputc('\n', p->out);
        p->bar_shown = 0;
        fflush(p->out);
    }
}
