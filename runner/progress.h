/* runner/progress.h — what a person sees while a job trains.
 *
 * Owns: on a terminal, one line redrawn in place (at most 4 times a second):
 *   "[#####.....] step 120/900  epoch 1/3  loss 0.4123  85.2 ex/s  ETA 12m (segment 5m)"
 *   (fp16 adds "  fp16 scale 32768, 2 skipped" after the loss; runtime.devices = N > 1
 *   adds each replica's examples/s and counted memory after the overall rate:
 *   "  devices 44.1+43.8 ex/s 96+58 MiB");
 * elsewhere (Kaggle logs, files) a plain line every progress_every seconds;
 * nothing in mode none. Messages in between clear the bar first.
 * Must not: print anything else (baton is quiet by default), or compute
 * statistics (the loop hands in the numbers).
 */
#ifndef BATON_RUNNER_PROGRESS_H
#define BATON_RUNNER_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runner/status.h"


/* Same order as the job's [runtime] progress enum. */
typedef enum { BT_PROGRESS_AUTO = 0, BT_PROGRESS_BAR = 1, BT_PROGRESS_PLAIN = 2, BT_PROGRESS_NONE = 3 } bt_progress_mode;

typedef struct {
    int64_t step, total_steps;
    double epoch;          /* fractional epochs done */
    int64_t epochs;        /* planned */
    double loss;           /* NAN: not shown */
    double examples_per_s; /* NAN: not shown */
    double eta_job_s;      /* NAN: not shown */
    double eta_segment_s;  /* NAN: not shown (segment ends by budget before the job) */
    double loss_scale;     /* > 0: fp16's loss scale, shown with the skipped steps; else neither */
    int64_t skipped;       /* steps skipped for fp16 overflow so far */
    int n_dev;             /* > 1: the replicas' figures dev[0..n_dev) are shown */
    const bt_status_device *dev;
} bt_progress_info;

typedef struct bt_progress bt_progress;

/* out: usually stderr. AUTO = BAR when out is a terminal, else PLAIN. */
bt_progress *bt_progress_create(bt_progress_mode mode, double every_s, FILE *out);
void bt_progress_free(bt_progress *p);
bt_progress_mode bt_progress_resolved_mode(const bt_progress *p);

/* Rate-limited redraw (BAR: 0.25 s; PLAIN: every_s). force draws now. */
void bt_progress_update(bt_progress *p, const bt_progress_info *i, int force);
void bt_progress_update_at(bt_progress *p, const bt_progress_info *i, int force, double now_mono);
/* A line of its own (clears the bar, prints, the bar comes back on the next update). */
void bt_progress_message(bt_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final draw and newline (BAR). */
void bt_progress_finish(bt_progress *p, const bt_progress_info *i);

/* The text of one line without bar (PLAIN) or with a bar of bar_width cells
 * (BAR, 0: none); returns the length. */
int bt_progress_format(const bt_progress_info *i, int bar_width, char *buf, size_t n);

#endif
