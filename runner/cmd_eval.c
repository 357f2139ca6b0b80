/* runner/cmd_eval.c — `baton eval JOB.ini [--archive PATH | --latest] [--json] [-s k=v]...`.
 *
 * Owns: the command line of scoring a checkpoint on the job's eval set; the
 * scoring is runner/segment.c (bt_segment_eval: the same evaluation as
 * training runs). Takes no lock and writes nothing: it may run beside a
 * training segment of the same job.
 */
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/segment.h"
#include "runner/watchdog.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: baton eval JOB.ini [--archive PATH | --latest] [--json] [-s section.key=value]...\n"
               "  Scores a checkpoint of the job on its eval set ([data] eval) with the job's\n"
               "  metrics, exactly as evaluations during training do, and prints them.\n"
               "  default       the job's best archive (trainer.json), else its newest valid one\n"
               "  --archive P   this archive instead\n"
               "  --latest      the newest valid archive instead of the best\n"
               "  --json        one JSON object (a metrics.jsonl record plus archive and eval)\n"
               "  -s K=V        override a job key, e.g. -s data.eval=test.tsv to score other data\n"
               "exit: 0 scored, 66 no archive or missing input, 65 bad data, 78 bad job file,\n"
               "      75 interrupted (SIGTERM/SIGINT: stopped within one batch, nothing printed)\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *job_path = NULL;
    const char **ovr = bt_xcalloc((size_t)argc, sizeof *ovr);
    int n_ovr = 0;
    bt_eval_options eo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(ovr); return 0; }
        else if (bt_job_override_arg(argc, argv, &i, ovr, &n_ovr)) continue;
        else if (!strcmp(a, "--json")) eo.json = 1;
        else if (!strcmp(a, "--latest")) eo.latest = 1;
        else if (!strcmp(a, "--archive") && i + 1 < argc) eo.archive = argv[++i];
        else if (a[0] == '-' || job_path) {
            free(ovr);
            usage(stderr);
            return bt_report_error(bt_fail(BT_EUSAGE, "baton eval: unexpected argument '%s'", a));
        } else job_path = a;
    }
    if (!job_path || (eo.archive && eo.latest)) {
        free(ovr);
        usage(stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, job_path ? "--archive and --latest exclude each other"
                                                           : "baton eval needs a job file"));
    }
    bt_job job;
    bt_job_load_options lo = {.overrides = ovr, .n_overrides = n_ovr, .check_paths = 1};
    int rc = bt_job_load(job_path, &lo, &job);
    free(ovr);
    if (rc) return bt_report_error(rc);
    bt_signals_install(); /* SIGTERM/SIGINT stop the evaluation within one batch (exit 75) */
    rc = bt_segment_eval(&job, &eo);
    bt_signals_restore();
    bt_job_free(&job);
    return rc ? bt_report_error(rc) : 0;
}
