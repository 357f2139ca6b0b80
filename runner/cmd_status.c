/* runner/cmd_status.c — `baton status JOB.ini [--json]`: where a job stands.
 *
 * Owns: reporting the newest valid archive (step, epoch, completion, best
 * metric) found where `baton run` would look, judged as `baton run` judges it
 * (checksums and contents, runner/archive_check.h), the live status.json
 * heartbeat when there is one, and the places searched. A heartbeat that says
 * "running" while no process holds the output-directory lock is reported as
 * "dead": its run was killed, or could not write its last status. Reads only; never writes (and never takes the lock).
 * Keys of --json that scripts rely on: output_dir, latest_archive, step,
 * epoch, complete (plus state, precision, loss_scale, skipped_steps, devices, device, per_device (status.json's),
 * best_metric, eta_job_s,
 * looked_in, skipped).
 */
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/lock.h"
#include "runner/status.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

/* output_dir, when it exists, is a directory (else nothing of the job can be
 * in it: an error, not "none yet"). */
static int outdir_is_dir(const char *out)
{
    struct stat ost;
    if (stat(out, &ost) == 0 && !S_ISDIR(ost.st_mode))
        return bt_fail(BT_ECONFIG, "[job] output_dir %s is %s, not a directory: `baton run` cannot write there and "
                                   "nothing of the job is in it; set output_dir to a directory", out,
                       bt_file_kind(ost.st_mode));
    return BT_OK;
}

/* A heartbeat that says "running" while no process holds the lock: that run
 * is dead (killed, or its last status write failed). ("stalled" is written by
 * the stall detector just before it ends the process: it says what happened.) */
static int heartbeat_dead(const char *out, const char *state, long long pid)
{
    if (!state || strcmp(state, "running")) return 0;
    long holder = bt_lock_active_holder(out);
    return holder == 0 || (holder < 0 && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

/* The text line about a run the heartbeat claims. */
static void print_run(const char *state, long long pid, int dead)
{
    if (dead)
        printf("run          dead: status.json says '%s' (pid %lld), but no process holds the job's lock: it was "
               "killed or could not write its last status; `baton run` continues from the archive above\n",
               state, pid);
    else if (state && (!strcmp(state, "running") || !strcmp(state, "stalled")))
        printf("run          %s (pid %lld)\n", state, pid);
}

/* The command line: -1 to go on, else the exit code (help: 0, a bad argument: BT_EUSAGE). */
static int parse_args(int argc, char **argv, const char **job_path, int *as_json, const char **ovr, int *n_ovr)
{
    for (int i = 1; i < argc; i++) {
        /* -s k=v: the same overrides as `baton run` (output_dir, say) */
        if (bt_job_override_arg(argc, argv, &i, ovr, n_ovr)) continue;
        else if (!strcmp(argv[i], "--json")) *as_json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: baton status JOB.ini [-s section.key=value]... [--json]\n"
                   "  the newest valid archive of the job, its step, epoch, precision, best metric and ETA\n");
            return 0;
        } else if (argv[i][0] == '-' || *job_path) {
            fprintf(stderr, "baton status: unexpected argument '%s'\n", argv[i]);
            return BT_EUSAGE;
        } else *job_path = argv[i];
    }
    if (!*job_path) {
        fprintf(stderr, "usage: baton status JOB.ini [-s section.key=value]... [--json]\n");
        return BT_EUSAGE;
    }
    return -1;
}

/* precision, loss_scale (fp16; else null) and skipped_steps (fp16 overflow)
 * from the archive's trainer.json (one from before they were recorded
 * trained fp32), else from the live heartbeat, else null / 0. */
static void add_precision(json_t *o, json_t *trainer, json_t *live)
{
    json_t *src = trainer ? trainer : live;
    json_t *p = json_object_get(src, "precision"), *ls = json_object_get(src, "loss_scale");
    json_t *sk = json_object_get(src, "skipped_steps");
    json_object_set_new(o, "precision", json_is_string(p) ? json_incref(p) : trainer ? json_string("fp32") : json_null());
    json_object_set_new(o, "loss_scale", json_is_number(ls) ? json_incref(ls) : json_null());
    json_object_set_new(o, "skipped_steps", json_integer(json_is_integer(sk) ? json_integer_value(sk) : 0));
}

/* devices (the replica count) and device (device_model: "cpu", a GPU's name)
 * from the archive's trainer.json (one from before devices were recorded: 1),
 * else from the live heartbeat (devices only), else null. */
static void add_devices(json_t *o, json_t *trainer, json_t *live)
{
    json_t *dv = trainer ? json_object_get(json_object_get(trainer, "devices"), "count")
                         : json_object_get(live, "devices");
    json_t *dm = trainer ? json_object_get(trainer, "device_model") : NULL;
    json_object_set_new(o, "devices", json_is_integer(dv) ? json_incref(dv) : trainer ? json_integer(1) : json_null());
    json_object_set_new(o, "device", json_is_string(dm) && *json_string_value(dm) ? json_incref(dm) : json_null());
    json_t *pd = json_object_get(live, "per_device"); /* the running (or last) segment's, from status.json */
    json_object_set_new(o, "per_device", json_is_array(pd) ? json_incref(pd) : json_null());
}

static void print_devices(json_t *o)
{
    json_t *n = json_object_get(o, "devices");
    const char *dm = json_string_value(json_object_get(o, "device"));
    if (!json_is_integer(n)) return;
    printf("devices      %lld x %s\n", (long long)json_integer_value(n), dm ? dm : "(device not recorded)");
    size_t j;
    json_t *d;
    json_array_foreach(json_object_get(o, "per_device"), j, d) {
        json_t *ex = json_object_get(d, "examples_per_s"), *tk = json_object_get(d, "tokens_per_s");
        printf("device %-5zu %.1f examples/s, %.0f tokens/s, %.0f MiB counted (status.json)\n", j,
               json_is_number(ex) ? json_number_value(ex) : NAN, json_is_number(tk) ? json_number_value(tk) : NAN,
               json_number_value(json_object_get(d, "memory_bytes")) / 1048576.0);
    }
}

static void print_precision(json_t *o)
{
    const char *p = json_string_value(json_object_get(o, "precision"));
    json_t *ls = json_object_get(o, "loss_scale");
    json_int_t sk = json_integer_value(json_object_get(o, "skipped_steps"));
    if (!p) return;
    printf("precision    %s", p);
    if (json_is_number(ls)) printf(" (loss scale %g, %lld step(s) skipped for overflow)", json_number_value(ls),
                                   (long long)sk);
    else if (sk > 0) printf(" (%lld step(s) skipped for overflow in earlier fp16 segments)", (long long)sk);
    printf("\n");
}

/* looked_in (output_dir, then resume_from) and the archives skipped, with their reasons. */
static void add_places(json_t *o, const bt_job *job, const bt_discovery_report *rep)
{
    json_t *looked = json_array();
    json_array_append_new(looked, json_string(job->job.output_dir));
    for (int i = 0; i < job->job.resume_from.n; i++) json_array_append_new(looked, json_string(job->job.resume_from.v[i]));
    json_object_set_new(o, "looked_in", looked);
    json_t *skipped = json_array();
    for (size_t i = 0; i < rep->n_skipped; i++)
        json_array_append_new(skipped, json_pack("{s:s, s:s}", "path", rep->skipped[i].path, "reason", rep->skipped[i].reason));
    json_object_set_new(o, "skipped", skipped);
}

/* What the human-readable status prints from. */
typedef struct {
    const bt_job *job;
    const char *job_path;
    const char *found;              /* the newest valid archive, or NULL */
    const bt_discovery_report *rep;
    json_t *o, *best;               /* the status object; trainer.json's best (or NULL) */
    const char *live_state;         /* status.json's state, or NULL */
    json_int_t live_pid, step;
    int dead, complete;
} status_view;

static void print_text(const status_view *v)
{
    const bt_job *job = v->job;
    json_t *o = v->o, *best = v->best;
    printf("job          %s\n", job->job.name);
    printf("output_dir   %s\n", job->job.output_dir);
    printf("looked in    %s", job->job.output_dir);
    for (int i = 0; i < job->job.resume_from.n; i++) printf(", %s", job->job.resume_from.v[i]);
    printf(" (%zu archive(s) seen)\n", v->rep->n_candidates);
    if (!v->found) printf("archive      none yet: `baton run %s` starts from the model\n", v->job_path);
    else {
        printf("archive      %s\n", v->found);
        printf("step         %lld of %lld (epoch %.2f)\n", (long long)v->step,
               (long long)json_integer_value(json_object_get(o, "total_steps")),
               json_real_value(json_object_get(o, "epoch")));
        printf("state        %s\n", v->complete ? "complete" : "in progress: `baton run` continues it");
        if (json_is_object(best))
            printf("best         %s %.4f at step %lld\n", json_string_value(json_object_get(best, "metric")),
                   json_number_value(json_object_get(best, "value")),
                   (long long)json_integer_value(json_object_get(best, "step")));
    }
    print_precision(o);
    print_devices(o);
    print_run(v->live_state, v->live_pid, v->dead);
    json_t *eta = json_object_get(o, "eta_job_s");
    if (json_is_number(eta)) printf("eta          %.0f s (from status.json)\n", json_number_value(eta));
    for (size_t i = 0; i < v->rep->n_skipped; i++)
        printf("skipped      %s: %s\n", v->rep->skipped[i].path, v->rep->skipped[i].reason);
}

int cmd_status(int argc, char **argv)
{
    const char *job_path = NULL;
    const char **ovr = argc > 1 ? calloc((size_t)argc, sizeof *ovr) : NULL;
    int as_json = 0, n_ovr = 0;
    int prc = parse_args(argc, argv, &job_path, &as_json, ovr, &n_ovr);
    if (prc >= 0) {
        free(ovr);
        return prc;
    }
    bt_job job;
    bt_job_load_options lo = {.overrides = ovr, .n_overrides = n_ovr, .check_paths = 0};
    int rc = bt_job_load(job_path, &lo, &job);
    free(ovr);
    if (rc) return bt_report_error(rc);
    const char *out = job.job.output_dir;
    if ((rc = outdir_is_dir(out))) {
        bt_job_free(&job);
        return bt_report_error(rc);
    }
    bt_log_set_level(BT_LOG_ERROR); /* damaged archives are listed below, not warned about */
    char found[4096] = "";
    bt_archive *a = NULL;
    bt_discovery_report rep = {0};
    rc = bt_discover_judged(out, (const char *const *)job.job.resume_from.v, (size_t)job.job.resume_from.n, NULL,
                            NULL, &bt_archive_contents_judge, found, sizeof found, &a, &rep);
    if (rc && rc != BT_ENOINPUT) {
        bt_discovery_report_free(&rep);
        bt_job_free(&job);
        return bt_report_error(rc);
    }
    json_t *trainer = NULL;
    if (a) trainer = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
    char *status_path = bt_path_join(out, BT_STATUS_FILE);
    json_t *live = json_load_file(status_path, 0, NULL);
    free(status_path);
    if (!json_is_object(live)) {
        json_decref(live);
        live = NULL;
    }
    const char *live_state = live ? json_string_value(json_object_get(live, "state")) : NULL;
    json_int_t live_pid = live ? json_integer_value(json_object_get(live, "pid")) : 0;
    int dead = heartbeat_dead(out, live_state, live_pid);

    json_t *o = json_object();
    json_object_set_new(o, "job", json_string(job.job.name));
    json_object_set_new(o, "output_dir", json_string(out));
    json_object_set_new(o, "latest_archive", a ? json_string(found) : json_null());
    json_int_t step = trainer ? json_integer_value(json_object_get(trainer, "step")) : 0;
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "total_steps", json_integer(trainer ? json_integer_value(json_object_get(trainer, "total_steps")) : 0));
    json_object_set_new(o, "epoch", json_real(trainer ? json_number_value(json_object_get(trainer, "epochs_done")) : 0.0));
    int complete = trainer && json_is_true(json_object_get(trainer, "complete"));
    json_object_set_new(o, "complete", json_boolean(complete));
    json_t *best = trainer ? json_object_get(trainer, "best") : NULL;
    json_object_set_new(o, "best_metric", json_is_object(best) ? json_incref(json_object_get(best, "value")) : json_null());
    json_object_set_new(o, "best_metric_name", json_is_object(best) ? json_incref(json_object_get(best, "metric")) : json_null());
    json_object_set_new(o, "state", dead ? json_string("dead") : live_state ? json_string(live_state) : json_null());
    add_precision(o, trainer, live);
    add_devices(o, trainer, live);
    json_object_set_new(o, "eta_job_s", live && !complete && !dead ? json_incref(json_object_get(live, "eta_job_s"))
                                                                    : json_null());
    add_places(o, &job, &rep);

    if (as_json) {
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
    } else {
        status_view v = {.job = &job, .job_path = job_path, .found = a ? found : NULL, .rep = &rep, .o = o,
                         .best = best, .live_state = live_state, .live_pid = live_pid, .dead = dead,
                         .complete = complete, .step = step};
        print_text(&v);
    }
    json_decref(o);
    json_decref(trainer);
    json_decref(live);
    bt_archive_close(a);
    bt_discovery_report_free(&rep);
    bt_job_free(&job);
    return 0;
}
