/* runner/cmd_plot.c — `baton plot JOB.ini [--output FILE]`: the loss and
 * metric curves of every segment so far, as an SVG (runner/plot.c draws it
 * from <output_dir>/metrics.jsonl). Prints the path written. */
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/plot.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_plot(int argc, char **argv)
{
    const char *job_path = NULL, *output = NULL;
    const char **ovr = argc > 1 ? calloc((size_t)argc, sizeof *ovr) : NULL;
    int n_ovr = 0;
    for (int i = 1; i < argc; i++) {
        /* -s k=v: the same overrides as `baton run` (output_dir, say) */
        if (bt_job_override_arg(argc, argv, &i, ovr, &n_ovr)) continue;
        else if (!strcmp(argv[i], "--output") && i + 1 < argc) output = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: baton plot JOB.ini [-s section.key=value]... [--output FILE]\n"
                   "  writes an SVG of training loss and evaluation metrics across all segments\n"
                   "  (default <output_dir>/metrics.svg) and prints its path\n");
            return 0;
        } else if (argv[i][0] == '-' || job_path) {
            fprintf(stderr, "baton plot: unexpected argument '%s'\n", argv[i]);
            free(ovr);
            return BT_EUSAGE;
        } else job_path = argv[i];
    }
    if (!job_path) {
        fprintf(stderr, "usage: baton plot JOB.ini [-s section.key=value]... [--output FILE]\n");
        free(ovr);
        return BT_EUSAGE;
    }
    bt_job job;
    bt_job_load_options lo = {.overrides = ovr, .n_overrides = n_ovr, .check_paths = 0};
    int rc = bt_job_load(job_path, &lo, &job);
    free(ovr);
    if (rc) return bt_report_error(rc);
    char *metrics = bt_path_join(job.job.output_dir, "metrics.jsonl");
    char *svg = output ? bt_xstrdup(output) : bt_path_join(job.job.output_dir, "metrics.svg");
    rc = bt_plot_file(metrics, svg, job.job.name);
    if (rc == BT_ENOINPUT)
        rc = bt_fail(BT_ENOINPUT, "%s: no metrics yet; run `baton run %s` first", metrics, job_path);
    if (!rc) printf("%s\n", svg);
    free(metrics);
    free(svg);
    bt_job_free(&job);
    return rc ? bt_report_error(rc) : 0;
}
