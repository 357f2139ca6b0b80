/* runner/segment.c — one segment of a job (see segment.h).
 *
 * Order of a segment:
 *   lock output dir -> clean stale .partial -> tokenizer -> data (+ id cache)
 *   -> backend, model, trainer -> discover newest valid archive -> restore
 *   -> loop { stop? -> micro-batches at the cursor -> train step -> metrics
 *             -> eval on schedule -> commit on schedule }
 *   -> commit -> 0 (complete) or 75 (run again).
 * A step never straddles epochs: the last step of an epoch takes the
 * micro-batches that are left (as HF Trainer does), so steps per epoch =
 * ceil(ceil(n / batch) / grad_accum) and the cursor is always at a step edge.
 * Everything task-specific (the data and what an example is, the batches,
 * the head, evaluation and its metric, config.json's task keys) is the job's
 * task's, behind runner/task.h: this file holds no branch on the task.
 */
#include "runner/segment.h"

#include "engine/bert.h"
#include "kernels/backend.h"
#include "engine/data.h"
#include "engine/metrics.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"
#include "engine/train.h"
#include "runner/devices.h"
#include "runner/lock.h"
#include "runner/model_tokenizer.h" /* issue 22 hook */
#include "runner/plan.h"
#include "runner/precision.h"
#include "runner/progress.h"
#include "runner/selftest.h"
#include "runner/status.h"
#include "runner/task.h"
#include "runner/watchdog.h"
#include "state/commit.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRAIN_LOG_EVERY 10 /* optimizer steps between train-loss records */

/* What a resume restores besides tensors (trainer.json). */
typedef struct {
    int64_t step;
    bt_data_cursor cursor;
    int segment;              /* segments started, this one included */
    int complete;
    double best;              /* NAN: none yet */
    int64_t best_step;
    char best_archive[64];
    int bad_evals;            /* evaluations without improvement (early stopping) */
    int64_t last_eval_step;
    double eval_seconds;      /* wall seconds of the last full evaluation (any segment; 0: none) */
    json_t *history;          /* array of metrics.jsonl records */
    json_t *forced;           /* array of accepted fingerprint changes (--force) */
    char precision[8];        /* the archive's precision ("fp32" when trainer.json predates the key) */
    char device_model[200];   /* the archive's device_model ("" when trainer.json predates the key) */
    bt_loss_scaler scaler;    /* the archive's loss scaler (old archives: {0, 1, 0, 0}) */
} trainer_state;

typedef struct {
    bt_job *job;
    const bt_segment_options *opt;
    char *out_dir;
    int read_only;            /* baton eval: write nothing under out_dir (not even the token cache) */
    bt_tokenizer *tok;
    bt_task_state task;             /* the job's task: its data, batches, head and evaluation (runner/task.h) */
    char device_model[200];   /* what trains: "cpu", or the GPU's name and compute capability (trainer.json) */
    bt_backend *be;
    bt_bert *model;
    bt_trainer *trainer;
    bt_model_config mcfg;
    bt_tokenizer_files tf;    /* issue 22 hook: the tokenizer's files, for archives (engine/tokenizer_files.h) */
    char tok_hex[65];         /* issue 22 hook: bt_tokenizer_fingerprint in hex (token caches, job fingerprint) */
    char *fingerprint;
    char *job_ini;
    int64_t steps_per_epoch, total_steps;
    uint32_t *perm;
    uint32_t perm_epoch;
    trainer_state st;
    bt_watchdog *wd;
    bt_status_writer sw;
    bt_status status;
    bt_progress *progress;
    bt_metrics_log *mlog;
    char latest_archive[4096];
    double last_commit_wall, last_commit_mono;
    int64_t last_commit_step;
    int retention_paused;     /* warned that retention waits (archives above this run's step) */
    int warned_irregular;     /* warned about a non-regular file named like an archive */
    int status_dead;          /* the output directory is gone: status.json is not written there any more */
    int eval_interrupted;     /* the last evaluation was stopped by a signal (its result discarded) */
    char **damaged;           /* file names of archives in out_dir that discovery found damaged */
    size_t n_damaged;
    double last_eval_s;       /* wall seconds of this segment's last evaluation (0: none yet) */
    double train_ex_per_s;    /* measured training examples per second (NAN before a step) */
    bt_plan_choice plan;      /* issue 18 hook: train.micro_batch = auto (runner/plan.h) */
    bt_devices dev;           /* issue 20 hook: runtime.devices (runner/devices.h) */
    bt_precision prec;        /* [train] precision resolved for c->be (runner/precision.h) */
    char prec_line[192];      /* how it was chosen, for the start line: "bf16 (auto: sm_80 GPU)" */
} run_ctx;

/* ---------------------------------------------------------- trainer.json */

static void trainer_state_init(trainer_state *s)
{
    memset(s, 0, sizeof *s);
    s->best = NAN;
    s->best_step = -1;
    s->last_eval_step = -1;
    s->history = json_array();
    s->forced = json_array();
}

static void trainer_state_free(trainer_state *s)
{
    json_decref(s->history);
    json_decref(s->forced);
}

static char *trainer_json(run_ctx *c, const char *stop_reason)
{
    trainer_state *s = &c->st;
    json_t *labels = json_array();
    for (int i = 0; i < c->task.n_labels; i++) json_array_append_new(labels, json_string(c->task.labels[i]));
    json_t *best = json_null();
    if (!isnan(s->best))
        best = json_pack("{s:s, s:f, s:I, s:s}", "metric", c->task.metric, "value", s->best, "step",
                         (json_int_t)s->best_step, "archive", s->best_archive);
    bt_loss_scaler ls;
    bt_trainer_loss_scaler(c->trainer, &ls);
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:i, s:b, s:s?, s:o, s:s, s:i, s:I, s:o, s:O, s:O, "
                          "s:s, s:s, s:o, s:I, s:I}",
                          "format", BT_TRAINER_FORMAT, "version", BT_TRAINER_VERSION,
                          "step", (json_int_t)s->step, "epoch", (json_int_t)s->cursor.epoch,
                          "position", (json_int_t)s->cursor.position,
                          "epochs_done", c->steps_per_epoch ? (double)s->step / (double)c->steps_per_epoch : 0.0,
                          "total_steps", (json_int_t)c->total_steps, "steps_per_epoch", (json_int_t)c->steps_per_epoch,
                          "seed", (json_int_t)c->job->job.seed, "segment", s->segment, "complete", s->complete,
                          "stop_reason", stop_reason, "labels", labels,
                          "label_kind", c->task.label_kind,
                          "bad_evals", s->bad_evals, "last_eval_step", (json_int_t)s->last_eval_step,
                          "best", best, "forced_changes", s->forced, "history", s->history,
                          "device", c->be->name, "precision", bt_precision_name(c->prec),
                          "loss_scale", ls.enabled ? json_real(ls.scale) : json_string("none"),
                          "loss_scale_clean_steps", (json_int_t)ls.clean_steps,
                          "skipped_steps", (json_int_t)ls.skipped_steps);
    json_object_set_new(o, "device_model", json_string(c->device_model));
    bt_plan_hook_record(&c->plan, o); /* issue 18 hook: trainer.json "micro_batch" (runner/plan.h) */
    bt_devices_hook_record(&c->dev, c->job, o); /* issue 20 hook: trainer.json "devices" (runner/devices.h) */
    if (s->eval_seconds > 0) json_object_set_new(o, "eval_seconds", json_real(s->eval_seconds));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* The archive's precision and fp16 loss scaler (trainer.json was checked,
 * runner/archive_check.c); absent in archives from before they were
 * recorded: those trained fp32 without scaling, {0, 1, 0, 0}. */
static void scaler_parse(json_t *o, trainer_state *s)
{
    const char *p = json_string_value(json_object_get(o, "precision"));
    snprintf(s->precision, sizeof s->precision, "%s", p ? p : "fp32");
    const char *dm = json_string_value(json_object_get(o, "device_model"));
    snprintf(s->device_model, sizeof s->device_model, "%s", dm ? dm : "");
    json_t *ls = json_object_get(o, "loss_scale");
    s->scaler.enabled = json_is_number(ls);
    s->scaler.scale = json_is_number(ls) ? json_number_value(ls) : 1.0;
    s->scaler.clean_steps = json_integer_value(json_object_get(o, "loss_scale_clean_steps")); /* absent: 0 */
    s->scaler.skipped_steps = json_integer_value(json_object_get(o, "skipped_steps"));
}

static int trainer_state_parse(run_ctx *c, const char *text, const char *where)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return bt_fail(BT_EDATA, "%s: trainer.json is not a JSON object (%s)", where, je.text);
    }
    const char *fmt = json_string_value(json_object_get(o, "format"));
    json_int_t ver = json_integer_value(json_object_get(o, "version"));
    if (!fmt || strcmp(fmt, BT_TRAINER_FORMAT) || ver != BT_TRAINER_VERSION) {
        json_decref(o);
        return bt_fail(BT_EDATA, "%s: trainer.json has format %s version %lld; this baton reads %s version %d",
                       where, fmt ? fmt : "?", (long long)ver, BT_TRAINER_FORMAT, BT_TRAINER_VERSION);
    }
    trainer_state *s = &c->st;
    s->step = json_integer_value(json_object_get(o, "step"));
    s->cursor.epoch = (uint32_t)json_integer_value(json_object_get(o, "epoch"));
    s->cursor.position = (uint64_t)json_integer_value(json_object_get(o, "position"));
    s->segment = (int)json_integer_value(json_object_get(o, "segment"));
    s->complete = json_is_true(json_object_get(o, "complete"));
    s->bad_evals = (int)json_integer_value(json_object_get(o, "bad_evals"));
    s->last_eval_step = json_integer_value(json_object_get(o, "last_eval_step"));
    json_t *es = json_object_get(o, "eval_seconds");
    s->eval_seconds = json_is_number(es) && json_number_value(es) > 0 ? json_number_value(es) : 0;
    json_t *best = json_object_get(o, "best");
    if (json_is_object(best)) {
        s->best = json_number_value(json_object_get(best, "value"));
        s->best_step = json_integer_value(json_object_get(best, "step"));
        const char *a = json_string_value(json_object_get(best, "archive"));
        snprintf(s->best_archive, sizeof s->best_archive, "%s", a ? a : "");
    }
    json_t *labels = json_object_get(o, "labels");
    if (json_is_array(labels) && c->task.keep_labels) {
        int same = (int)json_array_size(labels) == c->task.n_labels;
        for (int i = 0; same && i < c->task.n_labels; i++) {
            const char *l = json_string_value(json_array_get(labels, (size_t)i));
            same = l && !strcmp(l, c->task.labels[i]);
        }
        if (!same) {
            json_decref(o);
            return bt_fail(BT_ECONFIG, "%s: the archive's label list differs from the data's (%d labels now); "
                                       "set [data] labels to the archive's list, or start over with --fresh",
                           where, c->task.n_labels);
        }
    }
    /* issue 18 hook: the archive's micro_batch = auto choice again (runner/plan.h) */
    int prc = bt_plan_hook_resume(&c->plan, o, c->job, bt_bert_max_batch(c->model), where);
    if (prc) {
        json_decref(o);
        return prc;
    }
    scaler_parse(o, s);
    json_t *h = json_object_get(o, "history");
    if (json_is_array(h)) {
        json_decref(s->history);
        s->history = json_incref(h);
    }
    json_t *f = json_object_get(o, "forced_changes");
    if (json_is_array(f)) {
        json_decref(s->forced);
        s->forced = json_incref(f);
    }
    json_decref(o);
    return BT_OK;
}

/* --------------------------------------------------------------- metrics */

/* A record of the history: a train or eval split's loss, learning rate
 * (NAN: none) and values; extra: NULL, or an object whose members are added
 * (e.g. the confusion matrix). */
typedef struct {
    const char *split;
    double loss, lr;
    const bt_metric_value *v;
    int n;
    json_t *extra;
} history_rec;

/* One record into the history (kept in archives) and metrics.jsonl; the
 * reference to h->extra is taken over. */
static void history_add(run_ctx *c, const history_rec *h)
{
    double epoch = c->steps_per_epoch ? (double)c->st.step / (double)c->steps_per_epoch : 0;
    double now = bt_now_epoch();
    json_t *r = json_pack("{s:I, s:f, s:s}", "step", (json_int_t)c->st.step, "epoch", epoch, "split", h->split);
    if (!isnan(h->loss) && isfinite(h->loss)) json_object_set_new(r, "loss", json_real(h->loss));
    if (!isnan(h->lr)) json_object_set_new(r, "lr", json_real(h->lr));
    for (int i = 0; i < h->n; i++)
        json_object_set_new(r, h->v[i].name, isfinite(h->v[i].value) ? json_real(h->v[i].value) : json_null());
    if (h->extra) json_object_update(r, h->extra);
    json_decref(h->extra);
    json_object_set_new(r, "time", json_real(now));
    json_array_append_new(c->st.history, r);
    if (c->mlog && bt_metrics_log_write_json(c->mlog, json_incref(r)) != BT_OK) {
        bt_warn("%s", bt_errmsg());
        bt_err_clear();
    }
}

/* Rewrites metrics.jsonl from the archive's history (the truth on resume). */
static int metrics_log_restore(run_ctx *c)
{
    char *path = bt_path_join(c->out_dir, "metrics.jsonl");
    size_t cap = 4096, len = 0;
    char *buf = bt_xmalloc(cap);
    buf[0] = '\0';
    size_t i;
    json_t *r;
    json_array_foreach(c->st.history, i, r) {
        /* trainer.json was checked: every record is an object (json_dumps of
         * anything else would be NULL) */
        char *line = json_is_object(r) ? json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (!line) continue;
        size_t l = strlen(line);
        if (len + l + 2 > cap) {
            cap = (len + l + 2) * 2;
            buf = bt_xrealloc(buf, cap);
        }
        memcpy(buf + len, line, l);
        buf[len + l] = '\n';
        len += l + 1;
        free(line);
    }
    int rc = bt_write_file_atomic(path, buf, len);
    free(buf);
    if (!rc) rc = bt_metrics_log_open(path, &c->mlog);
    free(path);
    return rc;
}

/* After each evaluation batch: progress for the stall detector, and a stop
 * request (SIGTERM, SIGINT, ...) ends the evaluation there. Its partial
 * result is discarded (docs/jobs.md): the step is evaluated again, whole, by
 * the next segment, so metrics, best archive and early stopping stay those of
 * an uninterrupted run. Returns non-zero (after bt_fail) to stop. */
static int eval_heartbeat(void *ctx)
{
    run_ctx *c = ctx;
    if (c->wd) bt_watchdog_heartbeat(c->wd);
    bt_stop_reason why = bt_signal_pending();
    if (why == BT_STOP_NONE) return 0;
    c->eval_interrupted = (int)why;
    return bt_fail(BT_ETEMPFAIL, "evaluation interrupted by %s", bt_stop_reason_name(why));
}

/* The job's task's evaluation of the model as it is now. */
static int evaluate(run_ctx *c, bt_task_eval *r)
{
    bt_task_eval_args a = {.model = c->model, .batch_size = bt_task_eval_batch(c->job), .heartbeat = eval_heartbeat,
                           .hb_ctx = c};
    return bt_task_evaluate(&c->task, &a, r);
}

/* ---------------------------------------------------------------- commit */

/* How many ckpt-<step>.tar in out_dir have a step above `step` (damaged ones
 * that discovery skipped are not counted: they are no progress to protect). */
static int archives_above(run_ctx *c, int64_t step)
{
    DIR *d = opendir(c->out_dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t st;
        int damaged = 0;
        for (size_t i = 0; i < c->n_damaged && !damaged; i++) damaged = !strcmp(de->d_name, c->damaged[i]);
        if (damaged || !bt_archive_parse_filename(de->d_name, &st) || st <= step) continue;
        /* only regular files: a directory named like an archive is no progress
         * (retention neither counts nor removes it) */
        char *p = bt_path_join(c->out_dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) n++;
        else if (!c->warned_irregular) {
            bt_warn("%s: named like a checkpoint archive but is %s: ignored by retention", p,
                    lstat(p, &sb) == 0 ? bt_file_kind(sb.st_mode) : "gone");
            c->warned_irregular = 1;
        }
        free(p);
    }
    closedir(d);
    return n;
}

/* The first non-finite value of a snapshot's tensors: 0, or BT_EDATA naming
 * the tensor (a weight or moment is never committed non-finite). */
static int snapshot_finite(const bt_tensor_set *s, const char *what, int64_t step)
{
    for (size_t i = 0; i < s->n; i++) {
        const bt_st_entry *e = &s->e[i];
        if (e->dtype != BT_ST_F32) continue;
        size_t n = 1;
        for (int k = 0; k < e->ndim; k++) n *= (size_t)e->shape[k];
        const float *x = e->data;
        for (size_t j = 0; j < n; j++)
            if (!isfinite(x[j]))
                return bt_fail(BT_EDATA, "step %lld: %s tensor %s holds %g at index %zu: training diverged, and "
                                         "nothing was committed (the last archive is intact); lower [train] lr, set "
                                         "max_grad_norm, or raise adam_eps, then run again",
                               (long long)step, what, e->name, (double)x[j], j);
    }
    return BT_OK;
}

static int commit(run_ctx *c, const char *stop_reason)
{
    double t0 = bt_now_mono();
    bt_tensor_set w = {0}, m = {0};
    int rc = bt_lock_check(c->opt->lock); /* never into a directory that replaced the locked one */
    if (rc) c->status_dead = 1;
    if (!rc) rc = bt_trainer_snapshot(c->trainer, NULL, &w, &m);
    if (!rc) rc = snapshot_finite(&w, "weight", c->st.step);
    if (!rc) rc = snapshot_finite(&m, "AdamW moment", c->st.step);
    if (rc) {
        bt_tensor_set_free(&w);
        bt_tensor_set_free(&m);
        return rc;
    }
    char *tj = trainer_json(c, stop_reason);
    char *cfg = bt_model_config_dumps(&c->mcfg);
    bt_snapshot s = {
        .model = w.e, .n_model = w.n, .optim = m.e, .n_optim = m.n,
        .trainer_json = tj, .job_ini = c->job_ini, .config_json = cfg,
        .fingerprint_json = c->fingerprint, .step = c->st.step, .baton_version = NULL,
    };
    bt_run_snapshot_tokenizer(&s, &c->tf); /* issue 22 hook: vocab.txt, tokenizer.json, ... */
    if (c->mlog) bt_metrics_log_sync(c->mlog);
    /* into a buffer of its own: a failed commit leaves latest_archive (and
     * status.json's) naming the newest valid archive, not "" */
    char committed[sizeof c->latest_archive];
    rc = bt_archive_commit(c->out_dir, &s, committed, sizeof committed);
    free(tj);
    free(cfg);
    bt_tensor_set_free(&w);
    bt_tensor_set_free(&m);
    if (!rc && (rc = bt_lock_check(c->opt->lock))) c->status_dead = 1; /* replaced while writing */
    if (rc) return rc;
    snprintf(c->latest_archive, sizeof c->latest_archive, "%s", committed);
    double dt = bt_now_mono() - t0;
    c->last_commit_mono = bt_now_mono();
    c->last_commit_wall = bt_now_epoch();
    c->last_commit_step = c->st.step;
    if (c->wd) bt_watchdog_checkpoint_done(c->wd, dt);
    bt_info("committed %s (%.1fs)", c->latest_archive, dt);
    const char *best = NULL;
    char best_path[4096];
    if (c->job->runtime.keep_best && c->st.best_archive[0]) {
        snprintf(best_path, sizeof best_path, "%s/%s", c->out_dir, c->st.best_archive);
        best = best_path;
    }
    /* Retention keeps the keep_last highest steps. When that many archives in
     * out_dir are above this run's step (an earlier run's that --fresh
     * ignored), it would delete the archive just committed, and a run that
     * never passes them would never keep progress. Retention waits until this
     * run has passed them. Damaged archives (skipped by discovery) are left in
     * place and count for nothing, so they never displace a valid one. */
    int above = archives_above(c, c->st.step), rrc = BT_OK;
    if (above >= c->job->runtime.keep_last) {
        if (!c->retention_paused)
            bt_warn("retention paused: %d archive(s) in %s have a higher step than this run (%lld); "
                    "keeping this run's archives until it passes them", above, c->out_dir, (long long)c->st.step);
        c->retention_paused = 1;
    } else rrc = bt_retention_apply_except(c->out_dir, (int)c->job->runtime.keep_last, best,
                                           (const char *const *)c->damaged, c->n_damaged);
    if (rrc) {
        bt_warn("retention: %s", bt_errmsg());
        bt_err_clear();
    }
    c->status.last_commit = c->last_commit_wall;
    c->status.latest_archive = c->latest_archive;
    return BT_OK;
}

/* ------------------------------------------------------------------ loop */

static void refresh_perm(run_ctx *c)
{
    if (c->perm && c->perm_epoch == c->st.cursor.epoch) return;
    if (!c->perm) c->perm = bt_xmalloc(c->task.n_train * sizeof *c->perm);
    bt_data_permutation((uint64_t)c->job->job.seed, c->st.cursor.epoch, c->task.n_train, c->perm);
    c->perm_epoch = c->st.cursor.epoch;
}

static void apply_freezing(run_ctx *c)
{
    bt_job *job = c->job;
    /* unfreeze_at_epoch is 1-based (the first epoch is 1), cursor.epoch 0-based */
    int unfrozen = job->train.unfreeze_at_epoch > 0 && (int64_t)c->st.cursor.epoch + 1 >= job->train.unfreeze_at_epoch;
    if (unfrozen) bt_trainer_set_frozen(c->trainer, 0, 0);
    else bt_trainer_set_frozen(c->trainer, job->train.freeze_embeddings, (int)job->train.freeze_layers);
}

/* Evaluates, logs, tracks the best and early stopping. *stop_early set when
 * patience runs out. A new best is committed at once when keep_best. */
static int eval_and_track(run_ctx *c, int *stop_early)
{
    bt_task_eval r;
    double t0 = bt_now_mono();
    c->eval_interrupted = 0;
    int rc = evaluate(c, &r);
    if (rc == BT_ETEMPFAIL && c->eval_interrupted) {
        json_decref(r.extra);
        bt_err_clear();
        bt_progress_message(c->progress, "evaluation at step %lld interrupted by %s after %.1fs: discarded; the "
                            "next segment evaluates step %lld first", (long long)c->st.step,
                            bt_stop_reason_name((bt_stop_reason)c->eval_interrupted), bt_now_mono() - t0,
                            (long long)c->st.step);
        return BT_ETEMPFAIL;
    }
    if (rc) {
        json_decref(r.extra);
        return rc;
    }
    c->last_eval_s = bt_now_mono() - t0;
    c->st.eval_seconds = c->last_eval_s;
    c->st.last_eval_step = c->st.step;
    history_add(c, &(history_rec){"eval", r.loss, NAN, r.v, r.n, r.extra});
    int better = isnan(c->st.best) || (c->task.higher_better ? r.value > c->st.best : r.value < c->st.best);
    bt_progress_message(c->progress, "eval at step %lld: loss %.4f, %s %.4f%s", (long long)c->st.step, r.loss,
                        c->task.metric, r.value, better ? " (best so far)" : "");
    if (better && !isnan(r.value)) {
        c->st.best = r.value;
        c->st.best_step = c->st.step;
        c->st.bad_evals = 0;
        c->status.best_metric = r.value;
        if (c->job->runtime.keep_best) {
            bt_archive_filename(c->st.step, c->st.best_archive, sizeof c->st.best_archive);
            rc = commit(c, "best");
            if (rc) return rc;
        }
    } else {
        c->st.bad_evals++;
        if (c->job->train.early_stopping_patience > 0 && c->st.bad_evals >= c->job->train.early_stopping_patience) {
            bt_progress_message(c->progress, "early stopping: %d evaluations without improvement", c->st.bad_evals);
            *stop_early = 1;
        }
    }
    return BT_OK;
}

static int checkpoint_due(run_ctx *c)
{
    const bt_job_every *e = &c->job->runtime.checkpoint_every;
    if (c->st.step == c->last_commit_step) return 0;
    if (e->steps > 0 && c->st.step % e->steps == 0) return 1;
    if (e->seconds > 0 && bt_now_mono() - c->last_commit_mono >= e->seconds) return 1;
    return 0;
}

static void update_status(run_ctx *c, const char *state, double loss, double ex_per_s, int force)
{
    c->status.state = state;
    c->status.step = c->st.step;
    c->status.total_steps = c->total_steps;
    c->status.epoch = c->steps_per_epoch ? (double)c->st.step / (double)c->steps_per_epoch : 0;
    c->status.loss = loss;
    c->status.examples_per_s = ex_per_s;
    /* from the trainer state, so a resumed segment reports them before its first eval/commit */
    c->status.best_metric = c->st.best;
    c->status.best_metric_name = isnan(c->st.best) ? NULL : c->task.metric;
    if (c->trainer) { /* fp16: the loss scale; skipped steps (any precision: an fp16 segment may have left some) */
        bt_loss_scaler ls;
        bt_trainer_loss_scaler(c->trainer, &ls);
        c->status.loss_scale = ls.enabled ? ls.scale : NAN;
        c->status.skipped_steps = ls.skipped_steps;
    }
    if (c->latest_archive[0]) c->status.latest_archive = c->latest_archive;
    double steps_left = (double)(c->total_steps - c->st.step);
    double step_s = ex_per_s > 0 ? (double)(c->job->train.batch_size * c->job->train.grad_accum) / ex_per_s : NAN;
    c->status.eta_job_s = steps_left * step_s;
    double rem = c->wd ? bt_watchdog_remaining_at(c->wd, bt_now_epoch()) : INFINITY;
    c->status.eta_segment_s = isfinite(rem) && rem < c->status.eta_job_s ? rem : c->status.eta_job_s;
    if (c->status_dead) return; /* not into a directory that replaced the locked one */
    /* a failing status write never replaces the error being reported */
    bt_err_saved saved;
    bt_err_save(&saved);
    if (bt_status_update(&c->sw, &c->status, force)) bt_warn("status.json: %s", bt_errmsg());
    bt_err_restore(&saved);
}

static void on_stall(void *ctx, double idle_s)
{
    run_ctx *c = ctx;
    /* the stall thread: the writer's own copy of the last status, under its lock (runner/status.h) */
    bt_status_mark_stalled(&c->sw);
    (void)idle_s;
}

/* Whether an evaluation now ends before the deadline (the budget end less the
 * margin kept for the commit). Its duration: this segment's last evaluation
 * x 1.25, else the one an earlier segment measured (trainer.json
 * eval_seconds) x 1.25, else the eval set at the training rate (an
 * overestimate: a training example also runs the backward pass). A budget of
 * none, or nothing measured yet, always fits. */
static int eval_fits(run_ctx *c, double *need_s)
{
    double est = c->last_eval_s > 0 ? 1.25 * c->last_eval_s
               : c->st.eval_seconds > 0 ? 1.25 * c->st.eval_seconds /* measured by an earlier segment */
               : c->train_ex_per_s > 0 ? (double)c->task.n_eval / c->train_ex_per_s
               : 0;
    *need_s = est;
    double rem = bt_watchdog_remaining_at(c->wd, bt_now_epoch());
    return !isfinite(rem) || est <= rem;
}

/* An evaluation is due at the step the run resumed at: the previous segment
 * stopped before it (deferred, or killed before it ended). */
static int eval_due_at_resume(const run_ctx *c)
{
    const bt_job *job = c->job;
    if (!c->task.n_eval || c->st.step == 0 || c->st.last_eval_step == c->st.step || c->st.step >= c->total_steps)
        return 0;
    return job->train.eval_every > 0 ? c->st.step % job->train.eval_every == 0 : c->st.cursor.position == 0;
}

/* The result rc of an evaluation: an interruption by a stop request is no
 * error but the segment's stop reason (the partial evaluation is discarded). */
static int eval_stopped(run_ctx *c, int rc, const char **stop_reason)
{
    if (rc != BT_ETEMPFAIL || !c->eval_interrupted) return rc;
    *stop_reason = bt_stop_reason_name((bt_stop_reason)c->eval_interrupted);
    return BT_OK;
}

/* The output directory deleted or replaced while locked: BT_EIO, and no
 * status.json is written into whatever is there now. */
static int outdir_gone(run_ctx *c)
{
    int rc = bt_lock_check(c->opt->lock);
    if (rc) c->status_dead = 1;
    return rc;
}

typedef struct {
    double loss_acc;      /* sum of finite step losses since the last train record */
    int n_acc, n_skip;    /* steps with a finite loss / skipped for fp16 overflow since then */
    double ex_acc, t_acc; /* examples and step seconds of this segment */
} step_acc;

/* After an optimizer step: the train record every TRAIN_LOG_EVERY steps (the
 * mean loss of the steps since the last one; fp16 adds the loss scale this
 * step used and how many of those steps were skipped for overflow; a skipped
 * step's grad_norm is null), progress and status. */
static void record_step(run_ctx *c, const bt_step_info *info, int n_ex, double dt, step_acc *a)
{
    c->st.step = info->step;
    bt_watchdog_step_done(c->wd, dt);
    if (isfinite(info->loss)) {
        a->loss_acc += info->loss;
        a->n_acc++;
    }
    a->n_skip += info->skipped;
    a->ex_acc += n_ex;
    a->t_acc += dt;
    double ex_per_s = a->ex_acc / (a->t_acc > 0 ? a->t_acc : 1e-9);
    c->train_ex_per_s = ex_per_s;
    bt_loss_scaler ls;
    bt_trainer_loss_scaler(c->trainer, &ls);
    bt_devices_hook_rates(&c->dev, c->trainer, &c->status); /* issue 20 hook: per-device figures */
    if (c->st.step % TRAIN_LOG_EVERY == 0 || c->st.step == c->total_steps) {
        bt_metric_value gn = {"grad_norm", info->grad_norm};
        json_t *extra = ls.enabled ? json_pack("{s:f, s:i}", "loss_scale", info->loss_scale, "skipped", a->n_skip)
                                   : NULL;
        if (c->dev.count > 1) { /* issue 20 hook: metrics.jsonl per_device */
            if (!extra) extra = json_object();
            json_object_set_new(extra, "per_device", bt_status_devices_json(c->status.dev, c->status.n_dev));
        }
        history_add(c, &(history_rec){"train", a->n_acc ? a->loss_acc / a->n_acc : NAN, info->lr, &gn, 1, extra});
        a->loss_acc = 0;
        a->n_acc = a->n_skip = 0;
    }
    bt_progress_info pi = {
        .step = c->st.step, .total_steps = c->total_steps,
        .epoch = (double)c->st.step / (double)c->steps_per_epoch, .epochs = c->job->train.epochs,
        .loss = info->loss, .examples_per_s = ex_per_s,
        .eta_job_s = (double)(c->total_steps - c->st.step) * (a->t_acc / (a->ex_acc / (double)n_ex)),
        .eta_segment_s = NAN, .loss_scale = ls.enabled ? ls.scale : 0, .skipped = ls.skipped_steps,
        .n_dev = c->dev.count > 1 ? c->status.n_dev : 0, .dev = c->status.dev,
    };
    double rem = bt_watchdog_remaining_at(c->wd, bt_now_epoch());
    if (isfinite(rem) && rem < pi.eta_job_s) pi.eta_segment_s = rem;
    bt_progress_update(c->progress, &pi, 0);
    update_status(c, "running", info->loss, ex_per_s, 0);
}

/* The examples of the next step at the cursor: micro-batches of one epoch
 * into idx / n (a step never straddles epochs). Returns its examples. */
static int next_step_examples(run_ctx *c, uint32_t *idx, int *n, bt_task_step_args *a)
{
    int accum = (int)c->job->train.grad_accum, bs = (int)c->job->train.batch_size, n_ex = 0;
    *a = (bt_task_step_args){.idx = idx, .n = n, .n_micro = 0, .batch_size = bs, .epoch = c->st.cursor.epoch};
    while (a->n_micro < accum && c->st.cursor.epoch == a->epoch) {
        uint32_t *mi = idx + (size_t)a->n_micro * (size_t)bs;
        size_t got = bt_data_next_batch(c->perm, c->task.n_train, &c->st.cursor, (size_t)bs, mi);
        if (got == 0) break;
        n[a->n_micro++] = (int)got;
        n_ex += (int)got;
    }
    return n_ex;
}

/* After a step: evaluation when due (or a stop when it would overrun the
 * budget), then a commit when due. */
static int after_step(run_ctx *c, int epoch_end, int *stop_early, const char **stop_reason)
{
    const bt_job *job = c->job;
    int eval_now = c->task.n_eval && ((job->train.eval_every > 0 && c->st.step % job->train.eval_every == 0) ||
                                      (job->train.eval_every <= 0 && epoch_end));
    if (eval_now) {
        double need;
        if (!eval_fits(c, &need)) {
            /* it would run past the budget: stop here; the next segment
             * evaluates this step first (eval_due_at_resume), so the
             * results, best archive and early stopping are the same */
            bt_progress_message(c->progress, "evaluation at step %lld (~%.0fs) would overrun the budget: "
                                "deferred to the next segment", (long long)c->st.step, need);
            *stop_reason = "deadline";
            return BT_OK;
        }
        int rc = eval_stopped(c, eval_and_track(c, stop_early), stop_reason);
        if (rc || *stop_early || *stop_reason) return rc; /* interrupted: the step is committed unevaluated */
    }
    return checkpoint_due(c) ? commit(c, "periodic") : BT_OK;
}

/* The segment's steps: stop? -> the step's examples -> the task's step ->
 * record -> evaluate / commit when due. */
static int train_loop(run_ctx *c, const char **stop_reason)
{
    const bt_job *job = c->job;
    int accum = (int)job->train.grad_accum, bs = (int)job->train.batch_size;
    uint32_t *idx = bt_xmalloc((size_t)accum * (size_t)bs * sizeof *idx);
    int *micro_n = bt_xcalloc((size_t)accum, sizeof *micro_n);
    step_acc acc = {0};
    int rc = BT_OK, stop_early = 0;
    uint32_t epoch_at_start = c->st.cursor.epoch;
    *stop_reason = NULL;
    apply_freezing(c);
    if (eval_due_at_resume(c)) {
        bt_progress_message(c->progress, "evaluating at step %lld first (the previous segment stopped before it)",
                            (long long)c->st.step);
        rc = eval_stopped(c, eval_and_track(c, &stop_early), stop_reason);
    }
    while (!*stop_reason && !rc && !stop_early && c->st.step < c->total_steps) {
        if ((rc = outdir_gone(c))) break; /* deleted or replaced: stop, never recreate it */
        bt_stop_reason why = bt_watchdog_should_stop(c->wd);
        if (why != BT_STOP_NONE) {
            *stop_reason = bt_stop_reason_name(why);
            break;
        }
        if (c->st.cursor.epoch != epoch_at_start) {
            apply_freezing(c);
            epoch_at_start = c->st.cursor.epoch;
        }
        refresh_perm(c);
        bt_task_step_args a;
        int n_ex = next_step_examples(c, idx, micro_n, &a);
        double t0 = bt_now_mono();
        bt_step_info info;
        if ((rc = bt_task_step(&c->task, c->trainer, &a, &info))) break;
        record_step(c, &info, n_ex, bt_now_mono() - t0, &acc);
        rc = after_step(c, c->st.cursor.epoch != a.epoch, &stop_early, stop_reason);
    }
    free(micro_n);
    free(idx);
    if (rc) return rc;
    if (stop_early) *stop_reason = "early stopping";
    return BT_OK;
}

/* ------------------------------------------------------------ set-up */

static int make_fingerprint(run_ctx *c)
{
    char d1[65], d2[65] = "";
    bt_sha256_hex(c->task.train_sha256, d1);
    if (c->task.n_eval) bt_sha256_hex(c->task.eval_sha256, d2);
    /* The model enters by what decides the training: its shape and tokenizer
     * (the tokenizer files' content hash), not by its path or file formatting. */
    char shape[160];
    const bt_model_config *m = &c->mcfg;
    snprintf(shape, sizeof shape, "layers=%d hidden=%d heads=%d intermediate=%d vocab=%d positions=%d types=%d act=%s",
             m->num_hidden_layers, m->hidden_size, m->num_attention_heads, m->intermediate_size, m->vocab_size,
             m->max_position_embeddings, m->type_vocab_size, bt_activation_name(m->hidden_act));
    json_t *extra = json_pack("{s:s, s:s, s:i, s:s, s:s}", "data.train.sha256", d1, "data.eval.sha256", d2,
                              "model.num_labels", c->task.num_labels, BT_FP_TOKENIZER_KEY, c->tok_hex /* issue 22 hook */,
                              "model.shape", shape);
    char *ex = json_dumps(extra, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(extra);
    c->fingerprint = bt_job_fingerprint(c->job, ex);
    free(ex);
    return c->fingerprint ? BT_OK : BT_ECONFIG;
}

/* Damaged archives of out_dir that discovery skipped (by file name), for retention. */
static void remember_damaged(run_ctx *c, const bt_discovery_report *rep)
{
    size_t ldir = strlen(c->out_dir);
    for (size_t i = 0; i < rep->n_skipped; i++) {
        const bt_discovery_skip *k = &rep->skipped[i];
        if (k->code != BT_EDATA || strncmp(k->path, c->out_dir, ldir) || k->path[ldir] != '/' ||
            strchr(k->path + ldir + 1, '/'))
            continue;
        c->damaged = bt_xrealloc(c->damaged, (c->n_damaged + 1) * sizeof *c->damaged);
        c->damaged[c->n_damaged++] = bt_xstrdup(k->path + ldir + 1);
    }
}

/* Archives were found but none is usable: the run stops (it does not start
 * over from the model on its own), listing every candidate's reason. */
static int no_usable_archive(const char *resume_path, const bt_discovery_report *rep)
{
    size_t cap = 1024, len = 0;
    char *list = bt_xmalloc(cap);
    list[0] = '\0';
    for (size_t i = 0; i < rep->n_skipped; i++) {
        const char *r = rep->skipped[i].reason;
        size_t need = strlen(r) + 8;
        if (len + need >= cap) list = bt_xrealloc(list, cap = 2 * (len + need));
        len += (size_t)snprintf(list + len, cap - len, "\n  - %s", r);
    }
    int rc;
    if (resume_path)
        rc = bt_fail(BT_EDATA, "--resume %s: no usable archive there (%zu candidate%s, each refused):%s", resume_path,
                     rep->n_candidates, rep->n_candidates == 1 ? "" : "s", list);
    else
        rc = bt_fail(BT_EDATA, "no usable checkpoint archive: %zu candidate%s, each refused:%s\nresume from a good "
                               "archive with --resume PATH, or start over from the model with --fresh (the refused "
                               "archives are left where they are, for `baton verify`)",
                     rep->n_candidates, rep->n_candidates == 1 ? "" : "s", list);
    free(list);
    return rc;
}

/* Copies src to dst through bt_publish (.partial, fsync, rename, fsync dir). */
static int copy_published(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rbe");
    if (!in) return bt_fail(BT_EIO, "%s: cannot open: %s", src, strerror(errno));
    bt_publish p;
    int rc = bt_publish_begin(&p, dst);
    if (rc) {
        fclose(in);
        return rc;
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, p.f) == n;
    ok = ok && !ferror(in);
    fclose(in);
    rc = bt_publish_end(&p, ok);
    return ok ? rc : bt_fail(BT_EIO, "copying %s to %s failed", src, dst);
}

/* A run that resumed from another directory (a previous Kaggle session's
 * output under /kaggle/input) carries the best archive that run recorded
 * into its own output, so keep_best keeps it across sessions: verified
 * first, copied with its sidecar. Failing to carry it is a warning: the
 * training state is the resumed archive, which is safe. */
static void carry_best_archive(run_ctx *c, const char *found)
{
    if (c->read_only || !c->job->runtime.keep_best || !c->st.best_archive[0]) return;
    char *dir = bt_xstrdup(found), *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    char *src = bt_path_join(slash ? dir : ".", c->st.best_archive), *dst = bt_path_join(c->out_dir, c->st.best_archive);
    char rs[PATH_MAX], rd[PATH_MAX];
    int same = realpath(src, rs) && realpath(dst, rd) && !strcmp(rs, rd);
    if (!same && !bt_path_exists(dst)) {
        char *src_side = bt_xasprintf("%s.sha256", src), *dst_side = bt_xasprintf("%s.sha256", dst);
        int rc = bt_path_exists(src) ? bt_archive_verify(src, NULL, NULL, NULL) : bt_fail(BT_ENOINPUT, "%s: not there", src);
        if (!rc) rc = copy_published(src, dst);
        if (!rc && bt_path_exists(src_side)) rc = copy_published(src_side, dst_side);
        if (rc) {
            bt_warn("the best archive (step %lld) is not carried into %s: %s", (long long)c->st.best_step,
                    c->out_dir, bt_errmsg());
            bt_err_clear();
            unlink(dst);
        } else bt_progress_message(c->progress, "carried the best archive %s (step %lld) into %s",
                                   c->st.best_archive, (long long)c->st.best_step, c->out_dir);
        free(src_side);
        free(dst_side);
    }
    free(src);
    free(dst);
    free(dir);
}

/* A resume in another precision than the archive's (a changed [train]
 * precision, or auto on another device): valid, since archives hold the fp32
 * master weights and moments, but not byte-identical to a run in one
 * precision. One line says so. */
static void precision_change_note(run_ctx *c)
{
    const char *now = bt_precision_name(c->prec);
    if (!strcmp(c->st.precision, now)) return;
    bt_loss_scaler ls;
    bt_trainer_loss_scaler(c->trainer, &ls);
    char scale[64] = "";
    if (ls.enabled && !c->st.scaler.enabled) snprintf(scale, sizeof scale, "; the fp16 loss scale starts at %g", ls.scale);
    bt_progress_message(c->progress, "precision: the archive trained in %s, this segment in %s: a valid continuation "
                        "(archives hold fp32 master weights and moments), not byte-identical to a run in one "
                        "precision%s", c->st.precision, now, scale);
}

/* Resuming on another device (a T4 archive on a P100, a GPU run continued on
 * the CPU): valid for the same reason as another precision, but the kernels
 * sum in another order, so not byte-identical. One line says so. */
static void device_change_note(run_ctx *c)
{
    if (!c->st.device_model[0] || !strcmp(c->st.device_model, c->device_model)) return;
    bt_progress_message(c->progress, "device: the archive trained on %s, this segment on %s: a valid continuation "
                        "(archives hold fp32 master weights and moments), not byte-identical to a run on one device",
                        c->st.device_model, c->device_model);
}

/* "cpu", or the GPU as the self-check names it: "Tesla T4 (compute capability 7.5)". */
static void describe_device(run_ctx *c)
{
    bt_selftest_key k;
    if (!strcmp(c->be->name, "cpu") && !bt_selftest_is_fake(c->be)) {
        snprintf(c->device_model, sizeof c->device_model, "cpu");
    } else if (bt_selftest_key_for(c->be, 0, c->prec, &k) == BT_OK) {
        snprintf(c->device_model, sizeof c->device_model, "%.120s (compute capability %.16s)", k.gpu, k.cc);
    } else {
        bt_err_clear();
        snprintf(c->device_model, sizeof c->device_model, "%s", c->be->name);
    }
}

static int devices_regroup(run_ctx *c); /* issue 20 hook */

/* Restores the newest valid archive: of resume_path (--resume, `baton eval
 * --archive`), else of the output directory and [job] resume_from. */
static int resume(run_ctx *c, const char *resume_path)
{
    bt_job *job = c->job;
    const char **paths = NULL;
    size_t n_paths = 0;
    const char *out_dir = c->out_dir;
    if (resume_path) {
        paths = bt_xcalloc(1, sizeof *paths);
        paths[0] = resume_path;
        n_paths = 1;
        out_dir = NULL;
    } else {
        paths = bt_xcalloc((size_t)job->job.resume_from.n + 1, sizeof *paths);
        for (int i = 0; i < job->job.resume_from.n; i++) paths[n_paths++] = job->job.resume_from.v[i];
    }
    char found[4096] = "";
    bt_archive *a = NULL;
    bt_archive_limits lim;
    bt_archive_limits_for_model(&lim, (uint64_t)bt_bert_total_floats(c->model) * 4u);
    bt_discovery_report rep = {0};
    /* checksums, then contents (runner/archive_check.h): the judgement verify shares */
    int rc = bt_discover_judged(out_dir, paths, n_paths, NULL, &lim, &bt_archive_contents_judge, found, sizeof found,
                                &a, &rep);
    free(paths);
    remember_damaged(c, &rep);
    if (rc == BT_ENOINPUT) {
        bt_err_clear();
        if (rep.n_skipped) rc = no_usable_archive(resume_path, &rep);
        else if (resume_path)
            rc = bt_fail(BT_ENOINPUT, "--resume %s: no checkpoint archive there", resume_path);
        else rc = BT_OK; /* nothing to resume: the pretrained model */
        bt_discovery_report_free(&rep);
        return rc;
    }
    bt_discovery_report_free(&rep);
    if (rc) return rc;
    /* the fingerprint: refused on change unless --force, which records it */
    const char *afp = bt_archive_fingerprint_json(a);
    char *diff = NULL;
    int n_diff = 0;
    /* issue 22 hook: an archive from before format 2 fingerprinted vocab.txt alone */
    char *cmp = bt_run_fingerprint_for_archive(afp, c->fingerprint, c->tf.text[BT_TOKFILE_VOCAB]);
    int drc = cmp ? bt_job_fingerprint_diff(afp, cmp, &diff, &n_diff) : -1;
    free(cmp);
    if (drc < 0) {
        bt_archive_close(a);
        return bt_fail(BT_EDATA, "%s: its job fingerprint is not valid JSON", found);
    }
    if (n_diff > 0) {
        if (!c->opt->force) {
            rc = bt_fail(BT_ECONFIG, "%s was written by a different job: %d training-relevant field(s) changed:\n%s"
                                     "resume with --force to accept the change (it is recorded in the archive), "
                                     "or --fresh to start over", found, n_diff, diff);
            free(diff);
            bt_archive_close(a);
            return rc;
        }
        bt_warn("--force: resuming %s despite %d changed field(s):\n%s", found, n_diff, diff);
    }
    rc = trainer_state_parse(c, bt_archive_text(a, BT_M_TRAINER), found);
    /* issue 20 hook: the archive's micro-batches per step on this device count (runner/devices.h) */
    int regroup = 0;
    if (!rc) rc = bt_devices_hook_resume(&c->dev, bt_archive_text(a, BT_M_TRAINER), job, found, &regroup);
    if (!rc && regroup) rc = devices_regroup(c);
    /* recorded after the parse, which replaces st.forced with the archive's list */
    if (!rc && n_diff > 0)
        json_array_append_new(c->st.forced, json_pack("{s:I, s:s}", "step", (json_int_t)bt_archive_step(a), "changes", diff));
    free(diff);
    /* --force with less training data: the cursor may lie past the new end of
     * its epoch; that epoch is over (a step with no micro-batch is an error) */
    if (!rc && c->st.cursor.position >= c->task.n_train) {
        bt_warn("%s: the data cursor (epoch %u, position %llu) is past the %zu training examples; "
                "continuing with the next epoch", found, c->st.cursor.epoch,
                (unsigned long long)c->st.cursor.position, c->task.n_train);
        c->st.cursor.epoch++;
        c->st.cursor.position = 0;
    }
    bt_st_file *wm = NULL, *om = NULL;
    if (!rc) rc = bt_archive_open_model(a, &wm);
    if (!rc) rc = bt_archive_open_optim(a, &om);
    if (!rc) rc = bt_trainer_restore(c->trainer, wm, om);
    if (!rc) bt_trainer_set_step(c->trainer, c->st.step);
    if (!rc) rc = bt_trainer_set_loss_scaler(c->trainer, &c->st.scaler); /* after set_step */
    bt_st_close(wm);
    bt_st_close(om);
    bt_archive_close(a);
    if (rc) return bt_fail_context(rc, "resuming from %s", found);
    snprintf(c->latest_archive, sizeof c->latest_archive, "%s", found);
    c->last_commit_step = c->st.step;
    bt_progress_message(c->progress, "resumed from %s at step %lld (epoch %u)", found, (long long)c->st.step,
                        c->st.cursor.epoch);
    precision_change_note(c);
    device_change_note(c);
    carry_best_archive(c, found);
    return BT_OK;
}

/* [train] precision for the backend c->be: auto's choice, or the request
 * when the device can honour it (else BT_ECONFIG naming the key, where it was
 * set and what to use instead; never a silent fallback). */
static int resolve_precision(run_ctx *c)
{
    int rc = bt_precision_resolve(c->job, c->be, &c->prec, c->prec_line, sizeof c->prec_line);
    if (!rc) c->status.precision = bt_precision_name(c->prec);
    return rc;
}

/* train.loss_scale_init set in a job that does not train in fp16 (say auto
 * on the CPU): accepted, since auto may pick fp16 on another device, but said. */
static void warn_scale_unused(const run_ctx *c)
{
    int k = bt_job_key_index("train", "loss_scale_init");
    if (c->prec == BT_PREC_FP16 || k < 0 || !c->job->origin || !c->job->origin[k].file) return;
    char where[256];
    bt_job_where(c->job, k, where, sizeof where);
    bt_warn("%s: [train] loss_scale_init applies to fp16 only, and this segment trains in %s: it has no effect here",
            where, bt_precision_name(c->prec));
}

static int create_backend(run_ctx *c)
{
    int dev = c->job->runtime.device;
    if (dev == BT_JOB_DEVICE_CUDA || dev == BT_JOB_DEVICE_AUTO) {
        c->be = bt_selftest_gpu_backend(0); /* the CUDA backend (or the BATON_FAKE_GPU stand-in) */
        if (c->be) {
            /* first contact: checked against the CPU (runner/selftest.h) in the precision this
             * job trains in on this GPU; on a mismatch cuda fails, auto gets NULL (the CPU) */
            int rc = resolve_precision(c);
            if (rc) return rc;
            bt_selftest_gate_opts so = {.device_setting = dev, .precision = c->prec, .out_dir = c->out_dir,
                                        .write_out_dir = !c->read_only, .threads = (int)c->job->runtime.threads,
                                        .progress = c->progress};
            rc = bt_selftest_gate(&c->be, &so);
            if (rc || c->be) return rc;
        } else if (dev == BT_JOB_DEVICE_CUDA) return bt_fail_context(BT_ECONFIG, "[runtime] device = cuda");
        bt_err_clear();
    }
    c->be = bt_backend_cpu_create((int)c->job->runtime.threads);
    if (!c->be) return BT_EINTERNAL;
    return resolve_precision(c); /* on the CPU: auto is fp32, tf32 is refused */
}

/* The optimizer, schedule, clipping, freezing and (fp16) loss scaler of the job. */
static int create_trainer(run_ctx *c)
{
    const bt_job *job = c->job;
    int64_t warm = job->train.warmup_steps;
    if (warm <= 0 && job->train.warmup_ratio > 0) warm = (int64_t)ceil(job->train.warmup_ratio * (double)c->total_steps);
    bt_train_config tc = {
        .optim = {.lr = (float)job->train.lr, .head_lr = (float)job->train.head_lr,
                  .layer_decay = (float)job->train.layer_lr_decay, .weight_decay = (float)job->train.weight_decay,
                  .beta1 = (float)job->train.adam_beta1, .beta2 = (float)job->train.adam_beta2,
                  .eps = (float)job->train.adam_eps},
        .schedule = (bt_sched_kind)job->train.schedule, .warmup_steps = warm, .total_steps = c->total_steps,
        .max_grad_norm = (float)job->train.max_grad_norm,
        .freeze_embeddings = job->train.freeze_embeddings, .freeze_layers = (int)job->train.freeze_layers,
        .loss_scale_init = job->train.loss_scale_init, /* fp16 only; a resume restores the archive's scale */
    };
    int rc = bt_trainer_create(c->model, &tc, &c->trainer);
    if (!rc) rc = bt_devices_hook_trainer(&c->dev, c->trainer); /* issue 20 hook: replicas 1.. (runner/devices.h) */
    return rc;
}

/* Steps per epoch and in all from the micro-batches per step (job->train.grad_accum). */
static void count_steps(run_ctx *c)
{
    const bt_job *job = c->job;
    int64_t batches = (int64_t)((c->task.n_train + (size_t)job->train.batch_size - 1) / (size_t)job->train.batch_size);
    c->steps_per_epoch = (batches + job->train.grad_accum - 1) / job->train.grad_accum;
    c->total_steps = job->train.max_steps > 0 ? job->train.max_steps : c->steps_per_epoch * job->train.epochs;
}

/* issue 20 hook: a resume on another device count changed the micro-batches
 * per step: the steps and the trainer's schedule follow (runner/devices.h). */
static int devices_regroup(run_ctx *c)
{
    c->status.devices = c->dev.count; /* (devices = auto may have taken fewer: runner/devices.h) */
    count_steps(c);
    bt_trainer_free(c->trainer);
    c->trainer = NULL;
    bt_devices_trim(&c->dev); /* (replicas a resume left out: the old trainer held them) */
    return create_trainer(c);
}

/* The tokenizer, its vocabulary (the token cache and fingerprint key) and the
 * base model's config.json, less what a baton export of it says about its own
 * training (this job's task sets its own). */
static int load_model_dir(run_ctx *c)
{
    const bt_job *job = c->job;
    int rc = bt_tokenizer_load(job->model.path, &c->tok);
    if (rc) return rc;
    /* issue 22 hook: the tokenizer's files (archives carry them) and fingerprint */
    if ((rc = bt_tokenizer_files_read(job->model.path, c->tok, &c->tf))) return rc;
    bt_run_tokenizer_hex(c->tok, c->tok_hex);
    char *cp = bt_path_join(job->model.path, "config.json");
    rc = bt_model_config_load(cp, &c->mcfg);
    free(cp);
    if (rc) return rc;
    bt_model_config_remove_baton_keys(&c->mcfg);
    const bt_tokenizer_config *tcfg = bt_tokenizer_get_config(c->tok);
    bt_model_config_set_tokenizer(&c->mcfg, tcfg->lowercase, tcfg->strip_accents, tcfg->chinese_chars);
    return BT_OK;
}

/* The model the task asked for, trained as the job says. */
static int create_model(run_ctx *c)
{
    bt_job *job = c->job;
    bt_bert_opts mo = c->task.model; /* the task's head: task, num_labels, problem, doc_attn_dim, max_batch */
    if (!mo.max_batch)
        mo.max_batch = (int)(job->train.batch_size > job->train.eval_batch_size ? job->train.batch_size
                                                                                : job->train.eval_batch_size);
    mo.max_seq = (int)job->data.max_seq_len;
    mo.training = 1;
    mo.seed = (uint64_t)job->job.seed;
    mo.precision = c->prec; /* before the plan hook: it sizes the 16-bit copies and activations */
    mo.ignore_mismatched_sizes = job->model.ignore_mismatched_sizes;
    mo.dropout_set = job->train.dropout >= 0;
    mo.dropout = (float)job->train.dropout;
    /* issue 18 hook (runner/plan.h): train.recompute into mo; micro_batch = auto may lower
     * job->train.batch_size (raising grad_accum) and mo.max_batch; job.ini keeps the job as written */
    if (!c->job_ini) c->job_ini = c->opt->job_text ? bt_xstrdup(c->opt->job_text) : bt_job_to_ini(job);
    /* issue 20 hook: runtime.devices; grad_accum becomes micro-batches per step over all devices */
    int rc = bt_devices_hook_setup(&c->dev, job, c->be);
    if (rc) return rc;
    c->status.devices = c->dev.count;
    count_steps(c); /* issue 20: after the device count, before micro_batch = auto (as before it) */
    rc = bt_plan_hook_setup(job, c->be, &mo, c->dev.count, &c->plan);
    if (!rc) rc = bt_bert_create(c->be, job->model.path, &mo, &c->model);
    if (!rc) rc = bt_task_attach(&c->task, c->model);
    /* issue 20 hook: replicas 1..devices-1, created like replica 0 (runner/devices.h) */
    if (!rc) rc = bt_devices_hook_models(&c->dev, c->be, job->model.path, &mo);
    return rc;
}

/* model directory -> the task's data -> fingerprint -> backend -> model -> trainer */
static int setup(run_ctx *c)
{
    bt_job *job = c->job;
    int rc = load_model_dir(c);
    if (rc) return rc;
    bt_task_env env = {.job = job, .tok = c->tok, .mcfg = &c->mcfg, .out_dir = c->out_dir,
                       .read_only = c->read_only,
                       .vocab_text = c->tok_hex /* issue 22 hook: the tokenizer fingerprint keys token caches */};
    if ((rc = bt_task_open(&c->task, &env))) return rc;
    if ((rc = make_fingerprint(c))) return rc;
    if ((rc = create_backend(c))) return rc; /* (the steps are counted in create_model: issue 20) */
    describe_device(c);
    warn_scale_unused(c);
    if ((rc = create_model(c))) return rc;
    return create_trainer(c);
}

static void teardown(run_ctx *c)
{
    if (c->mlog) bt_metrics_log_close(c->mlog);
    bt_progress_free(c->progress);
    bt_watchdog_free(c->wd);
    bt_status_writer_free(&c->sw);
    bt_trainer_free(c->trainer);
    bt_devices_free(&c->dev); /* issue 20 hook */
    bt_task_close(&c->task);
    bt_bert_free(c->model);
    if (c->be) c->be->destroy(c->be);
    bt_tokenizer_free(c->tok);
    bt_model_config_free(&c->mcfg);
    trainer_state_free(&c->st);
    free(c->perm);
    for (size_t i = 0; i < c->n_damaged; i++) free(c->damaged[i]);
    free(c->damaged);
    bt_tokenizer_files_free(&c->tf); /* issue 22 hook */
    free(c->fingerprint);
    free(c->job_ini);
}

int bt_segment_run(bt_job *job, const bt_segment_options *o)
{
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.job = job;
    c.opt = o;
    c.out_dir = job->job.output_dir;
    c.last_commit_step = -1;
    trainer_state_init(&c.st);
    bt_status_writer_init(&c.sw, c.out_dir, job->runtime.status_every);
    c.status = bt_status_init(job->job.name, c.out_dir);
    c.progress = bt_progress_create((bt_progress_mode)job->runtime.progress, job->runtime.progress_every, stderr);

    int rc = setup(&c);
    if (!rc && !o->fresh) rc = resume(&c, o->resume_path);
    /* discovery has warned about anything in out_dir named like an archive
     * that is not one; retention does not again */
    c.warned_irregular = !o->fresh && !o->resume_path;
    if (rc) goto out;
    if (c.st.complete) {
        printf("job '%s' is already complete (step %lld, archive %s)\n", job->job.name, (long long)c.st.step,
               c.latest_archive);
        update_status(&c, "complete", NAN, NAN, 1);
        goto out;
    }
    rc = metrics_log_restore(&c);
    if (rc) goto out;
    c.st.segment++;
    double seg_t = bt_now_epoch();
    bt_metrics_log_segment(c.mlog, c.st.step, c.st.segment, seg_t);
    json_array_append_new(c.st.history, json_pack("{s:s, s:I, s:i, s:f}", "event", "segment_start", "step",
                                                  (json_int_t)c.st.step, "segment", c.st.segment, "time", seg_t));
    bt_watchdog_config wc = {
        .budget = job->runtime.budget, .margin_s = job->runtime.margin,
        .stall_timeout_s = job->runtime.stall_timeout, .on_stall = on_stall, .on_stall_ctx = &c,
    };
    rc = bt_watchdog_create(&wc, &c.wd);
    if (rc) goto out;
    bt_watchdog_start_stall_thread(c.wd);
    c.last_commit_mono = bt_now_mono();
    bt_progress_message(c.progress, "segment %d of job '%s': step %lld of %lld, %zu training %s, %s backend, "
                        "precision %s", c.st.segment, job->job.name, (long long)c.st.step, (long long)c.total_steps,
                        c.task.n_train, c.task.unit, c.be->name, c.prec_line);
    if (c.task.eval_note[0]) bt_progress_message(c.progress, "%s", c.task.eval_note);
    update_status(&c, "running", NAN, NAN, 1);

    const char *stop_reason = NULL;
    rc = train_loop(&c, &stop_reason);
    if (rc) {
        update_status(&c, "failed", NAN, NAN, 1);
        goto out;
    }
    int finished = stop_reason == NULL || !strcmp(stop_reason, "early stopping");
    double eval_need = 0;
    if (finished && stop_reason == NULL && c.task.n_eval && c.st.last_eval_step != c.st.step && !eval_fits(&c, &eval_need)) {
        bt_progress_message(c.progress, "the final evaluation (~%.0fs) would overrun the budget: "
                            "deferred to the next segment", eval_need);
        finished = 0;
        stop_reason = "deadline";
    }
    if (finished && c.task.n_eval && c.st.last_eval_step != c.st.step) {
        int dummy = 0;
        rc = eval_and_track(&c, &dummy);
        if (rc == BT_ETEMPFAIL && c.eval_interrupted) { /* the final evaluation: the next segment runs it */
            rc = BT_OK;
            finished = 0;
            stop_reason = bt_stop_reason_name((bt_stop_reason)c.eval_interrupted);
        }
        if (rc) goto out;
    }
    if (finished) {
        c.st.complete = 1;
        if (!rc) rc = commit(&c, stop_reason ? stop_reason : "complete");
        if (rc) goto out;
        update_status(&c, "complete", NAN, NAN, 1);
        bt_progress_message(c.progress, "job '%s' complete at step %lld; final archive %s", job->job.name,
                            (long long)c.st.step, c.latest_archive);
        rc = 0;
    } else {
        if (c.st.step != c.last_commit_step) rc = commit(&c, stop_reason);
        if (rc) goto out;
        c.status.stop_reason = stop_reason;
        update_status(&c, "stopped", NAN, NAN, 1);
        bt_progress_message(c.progress, "segment stopped (%s) at step %lld of %lld; run again to continue",
                            stop_reason, (long long)c.st.step, (long long)c.total_steps);
        rc = BT_ETEMPFAIL;
    }
out:
    {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) bt_info("peak resident memory %.1f MB", ru.ru_maxrss / 1024.0);
    }
    teardown(&c);
    return rc;
}

/* ------------------------------------------------------------------ eval */

/* The archive `baton eval` scores: --archive, else the best one recorded (when
 * it is there and not --latest), else the newest. */
static int eval_restore(run_ctx *c, const bt_eval_options *o)
{
    int rc = resume(c, o->archive);
    if (rc) return rc;
    if (!c->latest_archive[0])
        return bt_fail(BT_ENOINPUT, "%s: no valid archive of job '%s' to score; run the job first, or name an "
                                    "archive with --archive", c->out_dir, c->job->job.name);
    if (o->archive || o->latest || !c->st.best_archive[0]) return BT_OK;
    char *best = bt_path_join(c->out_dir, c->st.best_archive);
    if (strcmp(best, c->latest_archive) && bt_path_exists(best)) rc = resume(c, best);
    free(best);
    return rc;
}

/* The scores of an evaluation: one JSON line, or "name value" lines. */
static void print_scores(const run_ctx *c, const bt_task_eval *r, double dt, int as_json)
{
    const bt_task_state *t = &c->task;
    json_t *rec = json_pack("{s:s, s:I, s:s, s:I}", "archive", c->latest_archive, "step", (json_int_t)c->st.step,
                            "eval", t->eval_name, "examples", (json_int_t)t->n_eval);
    if (isfinite(r->loss)) json_object_set_new(rec, "loss", json_real(r->loss));
    for (int i = 0; i < r->n; i++)
        json_object_set_new(rec, r->v[i].name, isfinite(r->v[i].value) ? json_real(r->v[i].value) : json_null());
    json_object_set_new(rec, "metric", json_string(t->metric));
    if (r->extra) json_object_update(rec, r->extra);
    json_object_set_new(rec, "seconds", json_real(dt));
    if (as_json) {
        char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", line);
        free(line);
    } else {
        printf("archive          %s (step %lld)\n", c->latest_archive, (long long)c->st.step);
        printf("eval             %s (%zu %s, %.1f s)\n", t->eval_name, t->n_eval, t->eval_unit, dt);
        if (isfinite(r->loss)) printf("%-16s %.6f\n", "loss", r->loss);
        for (int i = 0; i < r->n; i++) printf("%-16s %.6f%s\n", r->v[i].name, r->v[i].value,
                                             !strcmp(r->v[i].name, t->metric) ? "   (the job's metric)" : "");
    }
    json_decref(rec);
}

int bt_segment_eval(bt_job *job, const bt_eval_options *o)
{
    run_ctx c;
    memset(&c, 0, sizeof c);
    bt_segment_options so = {.force = 1};
    c.job = job;
    c.opt = &so;
    c.out_dir = job->job.output_dir;
    c.read_only = 1;
    c.last_commit_step = -1;
    trainer_state_init(&c.st);
    c.progress = bt_progress_create(BT_PROGRESS_NONE, 0, stderr);
    bt_task_eval r = {0};
    int rc = setup(&c);
    if (!rc && !c.task.n_eval)
        rc = bt_fail(BT_ECONFIG, "[data] eval: the job has no evaluation data to score; set it "
                                 "(e.g. -s data.eval=dev.tsv)");
    if (!rc) rc = eval_restore(&c, o);
    if (rc) goto out;
    bt_info("scoring %s (step %lld) on %s", c.latest_archive, (long long)c.st.step, c.task.eval_name);
    double t0 = bt_now_mono();
    rc = evaluate(&c, &r);
    if (rc == BT_ETEMPFAIL && c.eval_interrupted)
        bt_fail_context(rc, "%s: no scores printed (a partial evaluation is discarded, never reported); run "
                            "`baton eval` again", c.latest_archive);
    if (rc) goto out;
    print_scores(&c, &r, bt_now_mono() - t0, o->json);
    if (fflush(stdout) != 0) rc = bt_fail(BT_EIO, "cannot write the scores to stdout");
out:
    json_decref(r.extra);
    teardown(&c);
    return rc;
}
