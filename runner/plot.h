/* runner/plot.h — metrics.jsonl -> an SVG chart, without dependencies.
 *
 * Owns: reading the metrics log of every segment of a job and drawing it as
 * SVG text: a top panel with the training loss (and evaluation loss), a
 * bottom panel with the evaluation metrics (accuracy, f1, ...), both against
 * the optimizer step, with ticked axes, a legend, and dashed vertical lines at
 * segment starts. Records logged after a segment's last commit and then
 * replayed by the next segment are drawn once: a segment_start at step S
 * drops earlier points at steps > S (logged after the commit at S, lost, and redone).
 * Lines that are not JSON objects (a writer killed mid-line) are skipped.
 * Must not: need anything but libc and jansson; write anything but the SVG.
 */
#ifndef BATON_RUNNER_PLOT_H
#define BATON_RUNNER_PLOT_H

#include <stddef.h>

/* SVG text (heap) of the metrics in jsonl[0..len); title may be NULL.
 * *n_skipped (may be NULL) counts unreadable lines. */
int bt_plot_svg(const char *jsonl, size_t len, const char *title, char **svg, int *n_skipped);
/* Reads metrics_path, writes svg_path atomically. BT_ENOINPUT when the log is missing. */
int bt_plot_file(const char *metrics_path, const char *svg_path, const char *title);

#endif
