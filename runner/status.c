/* runner/status.c — status.json heartbeat (see status.h). */
#include "runner/status.h"
#include "runner/watchdog.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bt_status bt_status_init(const char *job, const char *output_dir)
{
    bt_status s;
    memset(&s, 0, sizeof s);
    s.job = job;
    s.output_dir = output_dir;
    s.state = "running";
    s.loss = s.examples_per_s = s.eta_segment_s = s.eta_job_s = s.best_metric = s.loss_scale = NAN;
    return s;
}

static void iso8601(double epoch, char buf[32])
{
    time_t t = (time_t)floor(epoch);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

void *bt_status_devices_json(const bt_status_device *dev, int n)
{
    json_t *a = json_array();
    for (int j = 0; j < n; j++)
        json_array_append_new(a, json_pack("{s:i, s:o, s:o, s:I}", "device", j, "examples_per_s",
                                           num_or_null(dev[j].examples_per_s), "tokens_per_s",
                                           num_or_null(dev[j].tokens_per_s), "memory_bytes",
                                           (json_int_t)dev[j].memory_bytes));
    return a;
}

char *bt_status_json(const bt_status *s, double now_epoch)
{
    char when[32], commit[32];
    iso8601(now_epoch, when);
    json_t *o = json_object();
    json_object_set_new(o, "job", str_or_null(s->job));
    json_object_set_new(o, "state", json_string(s->state ? s->state : "running"));
    json_object_set_new(o, "step", json_integer(s->step));
    json_object_set_new(o, "total_steps", json_integer(s->total_steps));
    json_object_set_new(o, "epoch", num_or_null(s->epoch));
    json_object_set_new(o, "loss", num_or_null(s->loss));
    json_object_set_new(o, "examples_per_s", num_or_null(s->examples_per_s));
    json_object_set_new(o, "eta_segment_s", num_or_null(s->eta_segment_s));
    json_object_set_new(o, "eta_job_s", num_or_null(s->eta_job_s));
    if (s->last_commit > 0) {
        iso8601(s->last_commit, commit);
        json_object_set_new(o, "last_commit", json_string(commit));
    } else {
        json_object_set_new(o, "last_commit", json_null());
    }
    json_object_set_new(o, "latest_archive", str_or_null(s->latest_archive));
    json_object_set_new(o, "best_metric", num_or_null(s->best_metric));
    json_object_set_new(o, "best_metric_name", str_or_null(s->best_metric_name));
    json_object_set_new(o, "stop_reason", str_or_null(s->stop_reason));
    json_object_set_new(o, "updated_at", json_string(when));
    json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(o, "output_dir", str_or_null(s->output_dir));
    json_object_set_new(o, "complete", json_boolean(s->state && !strcmp(s->state, "complete")));
    json_object_set_new(o, "precision", str_or_null(s->precision));
    json_object_set_new(o, "loss_scale", num_or_null(s->loss_scale));
    json_object_set_new(o, "skipped_steps", json_integer(s->skipped_steps));
    json_object_set_new(o, "devices", s->devices > 0 ? json_integer(s->devices) : json_null());
    json_object_set_new(o, "per_device", s->n_dev > 0 ? bt_status_devices_json(s->dev, s->n_dev) : json_null());
    char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!txt) return bt_xstrdup("{}\n");
    char *out = bt_xasprintf("%s\n", txt);
    free(txt);
    return out;
}

void bt_status_writer_init(bt_status_writer *w, const char *output_dir, double min_interval_s)
{
    memset(w, 0, sizeof *w);
    w->path = bt_path_join(output_dir, BT_STATUS_FILE);
    w->output_dir = bt_xstrdup(output_dir);
    w->min_interval = min_interval_s;
    pthread_mutex_init(&w->mu, NULL);
}

void bt_status_writer_free(bt_status_writer *w)
{
    if (!w->path) return;
    free(w->path);
    free(w->output_dir);
    for (size_t i = 0; i < sizeof w->own / sizeof w->own[0]; i++) free(w->own[i]);
    pthread_mutex_destroy(&w->mu);
    memset(w, 0, sizeof *w);
}

/* *slot becomes a copy of s (NULL for NULL), reusing it when equal. */
static const char *keep(char **slot, const char *s)
{
    if (s && *slot && !strcmp(*slot, s)) return *slot;
    free(*slot);
    *slot = s ? bt_xstrdup(s) : NULL;
    return *slot;
}

/* w->last = *s with its strings copied. Under w->mu. */
static void remember(bt_status_writer *w, const bt_status *s)
{
    w->last = *s;
    const char **str[] = {&w->last.job, &w->last.state, &w->last.latest_archive, &w->last.best_metric_name,
                          &w->last.stop_reason, &w->last.output_dir, &w->last.precision};
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++) *str[i] = keep(&w->own[i], *str[i]);
    w->have_last = 1;
}

/* Writes s now. Under w->mu. */
static int write_locked(bt_status_writer *w, const bt_status *s, double now_mono)
{
    char *txt = bt_status_json(s, bt_now_epoch());
    int rc = bt_write_file_atomic(w->path, txt, strlen(txt));
    free(txt);
    if (rc) return bt_fail_context(rc, "status heartbeat");
    w->last_write = now_mono;
    return BT_OK;
}

int bt_status_update(bt_status_writer *w, const bt_status *s, int force)
{
    int rc = BT_OK;
    pthread_mutex_lock(&w->mu);
    if (!w->stalled) {
        remember(w, s);
        double now = bt_now_mono();
        if (force || w->last_write <= 0 || now - w->last_write >= w->min_interval) rc = write_locked(w, &w->last, now);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int bt_status_mark_stalled(bt_status_writer *w)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BT_STATUS_STALL_WAIT_S;
    int e = pthread_mutex_timedlock(&w->mu, &until);
    if (e)
        return bt_fail(BT_EIO, "%s: not marked stalled: the status lock stayed busy for %d s (%s; the training "
                               "thread is stuck writing it?)", w->path, BT_STATUS_STALL_WAIT_S, strerror(e));
    if (!w->have_last) {
        bt_status none = bt_status_init(NULL, w->output_dir);
        remember(w, &none);
    }
    w->last.state = "stalled";
    int rc = write_locked(w, &w->last, bt_now_mono());
    w->stalled = 1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}
