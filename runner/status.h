/* runner/status.h — the status.json heartbeat in the output directory.
 *
 * Owns: the document's fields and its atomic, rate-limited rewrite, so that a
 * person or a supervisor (cat, jq, a Kaggle cell) can see where a job is at any
 * moment without parsing logs. Written with util/file.h's atomic write, so a
 * reader never sees half a file, under the writer's lock, so the segment loop
 * and the watchdog's stall thread never write it at once.
 * Must not: be read back by baton to decide anything (archives are the truth).
 *
 * Document (every key always present; null where not known):
 *   {"job": str, "state": "running"|"stopped"|"complete"|"failed"|"stalled",
 *    "step": int, "total_steps": int, "epoch": float, "loss": float|null,
 *    "examples_per_s": float|null, "eta_segment_s": float|null,
 *    "eta_job_s": float|null, "last_commit": str|null (ISO 8601 UTC),
 *    "latest_archive": str|null, "best_metric": float|null,
 *    "best_metric_name": str|null, "stop_reason": str|null,
 *    "updated_at": str (ISO 8601 UTC), "pid": int, "output_dir": str,
 *    "complete": bool, "precision": str|null, "loss_scale": float|null,
 *    "skipped_steps": int, "devices": int|null,
 *    "per_device": [{"device": int, "examples_per_s": float, "tokens_per_s": float,
 *                    "memory_bytes": int}, ...]|null}
 * per_device: one entry per replica (runtime.devices), from the first step of
 * the segment on: its examples and tokens over the seconds of its own
 * forward/backward since the segment began, and its backend's peak counted
 * bytes (replica 0's also hold the optimizer and evaluation); null before.
 */
#ifndef BATON_RUNNER_STATUS_H
#define BATON_RUNNER_STATUS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define BT_STATUS_FILE "status.json"

#define BT_STATUS_MAX_DEVICES 64

/* One replica's figures (status.json per_device, the progress line, metrics.jsonl). */
typedef struct {
    double examples_per_s, tokens_per_s; /* NAN: not measured yet */
    double memory_bytes;                 /* the backend's peak counted bytes */
} bt_status_device;

typedef struct {
    const char *job;
    const char *state;          /* running, stopped, complete, failed, stalled */
    int64_t step, total_steps;
    double epoch;               /* fractional epochs done */
    double loss;                /* NAN: null */
    double examples_per_s;      /* NAN: null */
    double eta_segment_s;       /* NAN: null */
    double eta_job_s;           /* NAN: null */
    double last_commit;         /* epoch seconds of the last commit; <= 0: null */
    const char *latest_archive; /* NULL: null */
    double best_metric;         /* NAN: null */
    const char *best_metric_name;
    const char *stop_reason;    /* NULL: null */
    const char *output_dir;
    const char *precision;      /* resolved [train] precision ("fp16"); NULL: null (not resolved yet) */
    double loss_scale;          /* fp16's loss scale; NAN: null (no loss scaling) */
    int64_t skipped_steps;      /* steps skipped for fp16 overflow since the job began */
    int devices;                /* data-parallel replicas (runtime.devices); 0: null (not known yet) */
    int n_dev;                  /* entries of dev (0: per_device null) */
    bt_status_device dev[BT_STATUS_MAX_DEVICES];
} bt_status;

/* A json_t array of n replicas' figures (the per_device value; also the
 * "per_device" of metrics.jsonl's train records). */
void *bt_status_devices_json(const bt_status_device *dev, int n);

/* A status with every number unknown (NAN / 0) and state "running". */
bt_status bt_status_init(const char *job, const char *output_dir);

/* The JSON text (heap, ends with a newline); updated_at = now_epoch. */
char *bt_status_json(const bt_status *s, double now_epoch);

/* The writer is shared by two threads: the segment loop (bt_status_update)
 * and the watchdog's stall thread (bt_status_mark_stalled). Its mutex guards
 * its fields and every write of status.json, and it keeps its own copy of the
 * last status it was given (strings included), so the stall thread never
 * reads the caller's bt_status, which the loop keeps changing. */
typedef struct {
    char *path;          /* <output_dir>/status.json */
    char *output_dir;    /* for a "stalled" document before any update */
    double min_interval; /* seconds between writes unless forced */
    double last_write;   /* monotonic seconds, 0 = never */
    pthread_mutex_t mu;  /* guards everything here and the file */
    bt_status last;      /* the last status given; its strings point into own[] */
    char *own[7];        /* copies of last's strings (job, state, ...) */
    int have_last;       /* last holds a status */
    int stalled;         /* "stalled" was written: the process is exiting, later updates are dropped */
} bt_status_writer;

void bt_status_writer_init(bt_status_writer *w, const char *output_dir, double min_interval_s);
void bt_status_writer_free(bt_status_writer *w);
/* Writes when forced or when min_interval has passed since the last write
 * (state changes should force); keeps a copy of s either way. After
 * bt_status_mark_stalled it writes nothing. Returns 0 (also when skipped) or
 * BT_EIO. Thread-safe. */
int bt_status_update(bt_status_writer *w, const bt_status *s, int force);
/* For the stall thread, just before it exits the process: rewrites the last
 * status given with state "stalled" (a document with only output_dir known if
 * none was given yet) and drops every later update. Waits at most
 * BT_STATUS_STALL_WAIT_S for the lock (the loop may be stuck in a write while
 * holding it: the exit must not wait for it); BT_EIO when it could not write. */
int bt_status_mark_stalled(bt_status_writer *w);
#define BT_STATUS_STALL_WAIT_S 2

#endif
