/* runner/cmd_plan.c — `baton plan JOB.ini [--device NAME] [-s k=v]... [--json]`:
 * what a training step of the job needs on a device, before a session.
 *
 * Owns: the command line, counting the training examples an epoch visits
 * (for the time estimate) and printing the report of runner/plan_report.c.
 * The memory figures come from running the engine's allocation sequence on
 * the counting backend: no weights are read (config.json is enough), no
 * compute runs. --json prints one object; scripts rely on peak_bytes, fits,
 * max_micro_batch, limit_bytes and estimate.step_seconds.
 * Must not: train, write anything, or depend on runner/segment.c.
 */
#include "engine/conll.h"
#include "engine/data.h"
#include "engine/longdoc.h"
#include "engine/tokenizer.h"
#include "runner/commands.h"
#include "runner/plan.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage: baton plan JOB.ini [--device cpu|p100|t4|t4x2|a100-40|a100-80|h100|gpu] [-s section.key=value]... "
    "[--json]\n"
    "  the peak memory of a training step of the job on the device (exact: the engine's allocations\n"
    "  replayed without compute, plus the device's runtime overhead), the largest micro-batch that fits,\n"
    "  and an estimate of the time per step and per epoch. Default device: this machine's GPU if there\n"
    "  is one, else its CPU. Needs the model's config.json only (no weights).\n";

static void data_opts(const bt_job *job, bt_data_options *o)
{
    memset(o, 0, sizeof *o);
    int pt = job->model.problem_type, mlm = job->job.task == BT_JOB_TASK_MLM;
    o->format = (bt_data_format)job->data.format;
    o->header = (bt_data_header)job->data.header;
    o->text_column = job->data.text_column;
    o->pair_column = job->data.text_pair_column && job->data.text_pair_column[0] ? job->data.text_pair_column : NULL;
    o->label_column = job->data.label_column;
    o->label_kind = mlm ? BT_LABELS_NONE : pt == BT_JOB_PROBLEM_MULTI ? BT_LABELS_MULTI
                  : pt == BT_JOB_PROBLEM_REGRESSION ? BT_LABELS_REGRESSION : BT_LABELS_CLASS;
    o->labels = (const char *const *)job->data.labels.v;
    o->n_labels = job->data.labels.n;
    o->label_separator = job->data.label_separator;
    o->skip_malformed = 1; /* counting only: a run reports malformed rows itself */
    o->limit = job->data.limit_train;
}

/* mlm blocks or classify_long chunks of a loaded dataset: tokenizes every text. */
static int64_t count_tokenized(const bt_job *job, const bt_dataset *ds, char *note, size_t n)
{
    bt_tokenizer *tok = NULL;
    if (bt_tokenizer_load(job->model.path, &tok)) {
        snprintf(note, n, "unknown (%s)", bt_errmsg());
        bt_err_clear();
        return -1;
    }
    bt_longdoc_config lc = {.max_seq_len = (int)job->data.max_seq_len, .stride = (int)job->data.stride,
                            .max_chunks = (int)job->data.max_chunks, .cap = (bt_longdoc_cap)job->data.chunk_select};
    bt_encode_opts eo = {.replace_invalid = 1};
    bt_encoding enc;
    bt_encoding_init(&enc);
    int64_t units = 0, tokens = 0;
    int longdoc = job->job.task == BT_JOB_TASK_CLASSIFY_LONG, line = job->data.mlm_grouping == BT_JOB_MLM_LINE;
    for (size_t i = 0; i < ds->n; i++) {
        const char *t = ds->text + ds->ex[i].text;
        if (bt_encode(tok, t, strlen(t), &eo, &enc)) {
            bt_err_clear();
            continue;
        }
        size_t content = enc.len >= 2 ? enc.len - 2 : 0;
        if (longdoc) units += (int64_t)bt_longdoc_n_chunks(content, &lc);
        else if (line) units += content > 0;
        tokens += (int64_t)content;
    }
    bt_encoding_free(&enc);
    bt_tokenizer_free(tok);
    if (!longdoc && !line) units = tokens / (job->data.max_seq_len - 2);
    snprintf(note, n, "%s", longdoc ? "chunks" : "blocks");
    return units;
}

/* Training examples (token_classify: sentences; mlm: blocks; classify_long:
 * chunks) an epoch visits, or -1 with a note saying why not. */
static int64_t count_examples(const bt_job *job, char *note, size_t n)
{
    if (!job->data.train || !bt_path_exists(job->data.train)) {
        snprintf(note, n, "unknown (no training data at %s)", job->data.train ? job->data.train : "?");
        return -1;
    }
    if (job->job.task == BT_JOB_TASK_TOKEN_CLASSIFY) {
        bt_conll c;
        bt_conll_options co = {.tag_column = -1, .sep = (bt_conll_sep)job->data.conll_separator};
        if (bt_conll_read(job->data.train, &co, &c)) {
            snprintf(note, n, "unknown (%s)", bt_errmsg());
            bt_err_clear();
            return -1;
        }
        int64_t s = (int64_t)c.n_sents;
        if (job->data.limit_train > 0 && s > job->data.limit_train) s = job->data.limit_train;
        bt_conll_free(&c);
        snprintf(note, n, "sentences");
        return s;
    }
    bt_data_options o;
    data_opts(job, &o);
    bt_dataset ds;
    if (bt_data_load(job->data.train, &o, &ds)) {
        snprintf(note, n, "unknown (%s)", bt_errmsg());
        bt_err_clear();
        return -1;
    }
    int64_t r = (int64_t)ds.n;
    snprintf(note, n, "examples");
    if (job->job.task == BT_JOB_TASK_MLM || job->job.task == BT_JOB_TASK_CLASSIFY_LONG)
        r = count_tokenized(job, &ds, note, n);
    bt_data_free(&ds);
    return r;
}

static int plan_main(const char *job_path, const char **ovr, int n_ovr, const char *device, int as_json)
{
    bt_job job;
    bt_job_load_options lo = {.overrides = ovr, .n_overrides = n_ovr, .check_paths = 0};
    int rc = bt_job_load(job_path, &lo, &job);
    if (rc) return rc;
    char *cfg = bt_path_join(job.model.path, "config.json");
    if (!bt_path_exists(cfg)) {
        rc = bt_fail(BT_ENOINPUT, "%s: no config.json: [model] path must be a Hugging Face model directory "
                                  "(the plan needs its config.json only)", job.model.path);
        free(cfg);
        bt_job_free(&job);
        return rc;
    }
    free(cfg);
    bt_plan_device dev;
    if (!device) { /* this machine: its GPU if the CUDA backend finds one, else the CPU */
        rc = bt_plan_device_get("gpu", (int)job.runtime.threads, &dev);
        if (rc) {
            bt_err_clear();
            rc = bt_plan_device_get("cpu", (int)job.runtime.threads, &dev);
        }
    } else {
        rc = bt_plan_device_get(device, (int)job.runtime.threads, &dev);
    }
    bt_plan_report r;
    if (!rc) rc = bt_plan_report_make(&job, &dev, NULL, &r);
    if (!rc) {
        r.examples = count_examples(&job, r.examples_note, sizeof r.examples_note);
        bt_plan_report_time(&job, &r);
        if (as_json) {
            char *s = bt_plan_report_json(&job, &r);
            printf("%s\n", s);
            free(s);
        } else {
            bt_plan_report_print(stdout, &job, &r);
        }
        if (fflush(stdout) != 0) rc = bt_fail(BT_EIO, "cannot write the plan to stdout");
    }
    bt_job_free(&job);
    return rc;
}

int cmd_plan(int argc, char **argv)
{
    const char *job_path = NULL, *device = NULL;
    int as_json = 0;
    const char **ovr = calloc((size_t)argc + 1, sizeof *ovr);
    int n_ovr = 0;
    for (int i = 1; i < argc; i++) {
        if (bt_job_override_arg(argc, argv, &i, ovr, &n_ovr)) continue;
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strncmp(argv[i], "--device=", 9)) device = argv[i] + 9;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            free(ovr);
            return 0;
        } else if (argv[i][0] == '-' || job_path) {
            fprintf(stderr, "baton plan: unexpected argument '%s'\n%s", argv[i], usage_text);
            free(ovr);
            return BT_EUSAGE;
        } else job_path = argv[i];
    }
    if (!job_path) {
        fputs(usage_text, stderr);
        free(ovr);
        return BT_EUSAGE;
    }
    int rc = plan_main(job_path, ovr, n_ovr, device, as_json);
    free(ovr);
    return bt_report_error(rc);
}
