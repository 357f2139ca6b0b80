/* runner/cmd_run.c — `baton run JOB.ini [-s key=value]... [--fresh] [--resume PATH] [--force]`.
 *
 * Owns: the command line of a segment, the output-directory lock and the
 * stale-file clean-up around it; the segment itself is runner/segment.c.
 * A job whose output directory may not be written (read-only mount, no
 * permission) cannot be locked; when its newest usable archive (judged as a
 * resume would) is of this job and complete, there is nothing to do and the
 * run exits 0 as for any complete job, writing nothing.
 */
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/lock.h"
#include "runner/segment.h"
#include "runner/watchdog.h"
#include "state/commit.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: baton run JOB.ini [-s section.key=value]... [--fresh] [--resume PATH] [--force]\n"
               "  Trains one segment: resumes from the newest valid archive (output_dir, then\n"
               "  [job] resume_from), trains until done, the budget or a signal, commits, exits.\n"
               "  -s K=V         override a job key (e.g. -s train.lr=3e-5)\n"
               "  --fresh        ignore existing archives and start from the model\n"
               "  --resume PATH  resume from this archive (or directory) only\n"
               "  --force        accept an archive whose job fingerprint differs (recorded)\n"
               "exit: 0 complete, 75 segment ended (run again), 69 another run holds the job,\n"
               "      71 stalled, 78 bad job file, 65 bad data, 66 missing input, 74 I/O error\n");
}

/* Whether the newest usable archive where the run would look (or --resume
 * PATH) is complete and of this job: its fingerprint agrees on every job-file
 * field (data and model hashes, and the resolved label count, are not
 * computed here: nothing is loaded).
 * Reads only. The path goes to archive. */
static int complete_without_lock(const bt_job *job, const bt_segment_options *so, char *archive, size_t cap)
{
    if (so->fresh) return 0;
    const char *const *paths = so->resume_path ? &so->resume_path : (const char *const *)job->job.resume_from.v;
    size_t n = so->resume_path ? 1 : (size_t)job->job.resume_from.n;
    bt_archive *a = NULL;
    int lvl = bt_log_get_level();
    bt_log_set_level(BT_LOG_ERROR);
    int rc = bt_discover_judged(so->resume_path ? NULL : job->job.output_dir, paths, n, NULL, NULL,
                                &bt_archive_contents_judge, archive, cap, &a, NULL);
    bt_log_set_level(lvl);
    int complete = 0;
    if (!rc) {
        char *mine = bt_job_fingerprint(job, NULL);
        json_t *t = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
        json_t *jf = mine ? json_loads(mine, 0, NULL) : NULL, *af = json_loads(bt_archive_fingerprint_json(a), 0, NULL);
        complete = json_is_true(json_object_get(t, "complete")) && json_is_object(jf);
        const char *k;
        json_t *v;
        json_object_foreach(jf, k, v) {
            /* model.num_labels: the runner records the resolved count (0 = from the data) */
            if (strcmp(k, "model.num_labels") && !json_equal(v, json_object_get(af, k))) complete = 0;
        }
        json_decref(t);
        json_decref(jf);
        json_decref(af);
        free(mine);
    }
    bt_archive_close(a);
    bt_err_clear();
    return complete;
}

int cmd_run(int argc, char **argv)
{
    const char *job_path = NULL;
    const char **ovr = bt_xcalloc((size_t)argc, sizeof *ovr);
    int n_ovr = 0;
    bt_segment_options so = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(ovr); return 0; }
        else if (bt_job_override_arg(argc, argv, &i, ovr, &n_ovr)) continue;
        else if (!strcmp(a, "--fresh")) so.fresh = 1;
        else if (!strcmp(a, "--force")) so.force = 1;
        else if (!strcmp(a, "--resume") && i + 1 < argc) so.resume_path = argv[++i];
        else if (a[0] == '-' || job_path) {
            fprintf(stderr, "baton run: unexpected argument '%s'\n", a);
            usage(stderr);
            free(ovr);
            return BT_EUSAGE;
        } else job_path = a;
    }
    if (!job_path) {
        usage(stderr);
        free(ovr);
        return BT_EUSAGE;
    }
    bt_job job;
    bt_job_load_options lo = {.overrides = ovr, .n_overrides = n_ovr, .check_paths = 1};
    int rc = bt_job_load(job_path, &lo, &job);
    free(ovr);
    if (rc) return bt_report_error(rc);
    char *text = NULL;
    size_t len = 0;
    if (n_ovr == 0 && bt_read_file(job_path, 4u << 20, &text, &len) != BT_OK) {
        text = NULL;
        bt_err_clear();
    }
    so.job_text = text; /* with overrides, the effective job (bt_job_to_ini) is stored instead */
    bt_lock lock;
    rc = bt_lock_acquire(job.job.output_dir, &lock);
    if (rc) {
        int e = lock.open_errno;
        char done[4096];
        bt_err_saved saved;
        bt_err_save(&saved);
        if (rc == BT_EIO && (e == EACCES || e == EROFS || e == EPERM) &&
            complete_without_lock(&job, &so, done, sizeof done)) {
            printf("job '%s' is already complete (archive %s; its output directory is read-only, and nothing "
                   "needs writing)\n", job.job.name, done);
            rc = BT_OK;
        } else {
            bt_err_restore(&saved);
            rc = bt_report_error(rc);
        }
        bt_job_free(&job);
        free(text);
        return rc;
    }
    int removed = 0;
    if (bt_archive_clean_stale(job.job.output_dir, &removed) != BT_OK) {
        bt_warn("%s", bt_errmsg());
        bt_err_clear();
    } else if (removed) bt_info("removed %d stale file(s) left by an interrupted commit", removed);
    so.lock = &lock;
    bt_signals_install();
    rc = bt_segment_run(&job, &so);
    bt_signals_restore();
    bt_lock_release(&lock);
    bt_job_free(&job);
    free(text);
    if (rc != BT_OK && rc != BT_ETEMPFAIL) return bt_report_error(rc);
    return rc;
}
