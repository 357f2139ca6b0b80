/* runner/cmd_predict.c — `baton predict (MODEL_DIR | ARCHIVE | JOB.ini)
 * --input FILE`: predictions for each input line, row or sentence.
 *
 * Owns: argument parsing, finding the model (a directory; an archive, exported
 * to a temporary directory first; a job's best archive, else its newest valid
 * one, saying which), reading its tokenizer and configs, resolving
 * --max-length, and handing the request (runner/predict.h) to the task whose
 * models config.json names (runner/task.h): sequence models to
 * runner/predict_seq.c, token classifiers to runner/task_token_predict.c.
 * Must not: know any task's output: the task predicts.
 */
#include "engine/bert.h"
#include "engine/model_config.h"
#include "engine/model_dir.h"
#include "engine/tokenizer.h"
#include "kernels/backend.h"
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/predict.h"
#include "runner/predict_table.h"
#include "runner/task.h"
#include "runner/watchdog.h"
#include "state/archive.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const usage_text =
    "usage: baton predict (MODEL_DIR | ARCHIVE | JOB.ini) --input FILE [--output FILE]\n"
    "                     [--input-format F] [--format tsv|jsonl|logits] [--id-column NAME] [--proba]\n"
    "                     [--batch-size N] [--max-length N] [--stride N] [--threads N] [--device cpu|cuda]\n"
    "Predicts FILE ('-' = stdin) with a sequence-classification model, in input order.\n"
    "The model: a Hugging Face directory, a checkpoint archive, or a job file (its\n"
    "best archive when the job keeps one, else its newest valid archive; it says which).\n"
    "Text input (.txt, other names, stdin): one example per line; a line with a TAB\n"
    "is a text pair; one output line per input line.\n"
    "Table input (.csv, .tsv, .jsonl): rows read as the job reads its data (its\n"
    "[data] text_column, text_pair_column, header; quoted CSV fields may hold commas\n"
    "and line breaks; a header row is never a text); one output row per input row:\n"
    "  <id>,<label column>  the id column (see --id-column) and the predicted label\n"
    "                   under the job's label column name (label names as trained;\n"
    "                   multi-label: the labels at >= 0.5 joined by the job's\n"
    "                   label_separator; regression: the value)\n"
    "  --proba          instead of the label: one probability column per class,\n"
    "                   named by its label (softmax; multi-label: sigmoid)\n"
    "  --id-column NAME the column (JSON key) of row ids passed through (default: id\n"
    "                   when the input has one; without one, no id column is written)\n"
    "  The output is CSV, TSV or JSONL by --output's extension (else as the input).\n"
    "  --input-format F auto (default: by extension; conll for .conll/.bio/.iob),\n"
    "                   text, csv, tsv, jsonl or conll\n"
    "  --output FILE    write there (atomically: nothing on any error) instead of stdout\n"
    "  --format F       text input: tsv (default): a header, then label, its probability\n"
    "                   and every label's probability (softmax; multi-label: sigmoid,\n"
    "                   labels at >= 0.5 joined by ','; regression: the value); jsonl:\n"
    "                   the same as JSON objects; logits: the raw logits, tab-separated\n"
    "                   (9 significant digits: each float exactly)\n"
    "  --batch-size N   examples per forward pass (default 16)\n"
    "  --max-length N   tokens per example incl. [CLS]/[SEP] (default: the job's\n"
    "                   max_seq_len for a model trained by baton, else 512, or the\n"
    "                   tokenizer's model_max_length / the model's positions if smaller)\n"
    "  --threads N      CPU threads (default: OpenMP's)\n"
    "  --device D       cpu (default) or cuda\n"
    "A token-classification model (task = token_classify) tags words instead: the\n"
    "input is one sentence per line (words split on whitespace) or a CoNLL file\n"
    "(one word per line, blank line between sentences; tables are refused); the\n"
    "output is word<TAB>tag lines with a blank line after each sentence (jsonl: one\n"
    "object per sentence; logits: word<TAB>the logits of its first sub-token). A\n"
    "sentence longer than --max-length is cut into overlapping windows of whole\n"
    "words; each word is tagged by one window (the first half of two windows' shared\n"
    "words by the earlier one, the rest by the later one).\n"
    "  --stride N       sub-tokens repeated between windows (default: the job's\n"
    "                   [data] stride as training used it, else a quarter of a window)\n"
    "FILE must be a regular file, or '-' to read a stream (a pipe) from stdin.\n"
    "SIGTERM or SIGINT stops predict within one batch: exit 75, no --output file\n"
    "(its .partial is removed); on stdout, the lines before stay written (a table's\n"
    "output is written at the end: nothing).\n";

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi)
        return bt_fail(BT_EUSAGE, "%s needs an integer in [%d, %d] (got '%s')", flag, lo, hi, v ? v : "");
    *out = (int)x;
    return 0;
}

/* "best accuracy 0.91 at step 120" from trainer.json's "best" (heap), or NULL. */
static char *best_text(json_t *best)
{
    const char *metric = json_string_value(json_object_get(best, "metric"));
    json_t *v = json_object_get(best, "value"), *st = json_object_get(best, "step");
    if (!metric || !json_is_number(v) || !json_is_integer(st)) return NULL;
    return bt_xasprintf("best %s %.4g at step %lld", metric, json_number_value(v), (long long)json_integer_value(st));
}

/* The archive a job's predictions come from: its best archive when the
 * newest valid archive names one that is present and valid, else the newest.
 * Says which on stderr. */
static int job_archive(const char *job_path, char *found, size_t cap)
{
    bt_job job;
    bt_job_load_options lo = {.check_paths = 0};
    int rc = bt_job_load(job_path, &lo, &job);
    if (rc) return rc;
    bt_archive *a = NULL;
    rc = bt_discover_judged(job.job.output_dir, (const char *const *)job.job.resume_from.v,
                            (size_t)job.job.resume_from.n, NULL, NULL, &bt_archive_contents_judge, found, cap, &a,
                            NULL);
    if (rc == BT_ENOINPUT)
        rc = bt_fail(BT_ENOINPUT, "%s: no valid archive in %s (or its resume paths): run the job first", job_path,
                     job.job.output_dir);
    if (!rc) {
        json_t *t = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL), *bo = json_object_get(t, "best");
        const char *best = json_string_value(json_object_get(bo, "archive"));
        char *why = NULL;
        if (best && best[0]) {
            char *bp = bt_path_join(job.job.output_dir, best);
            if (!strcmp(bp, found)) why = best_text(bo);
            else if (bt_path_exists(bp) && bt_archive_read_checked(bp, NULL, NULL, NULL) == BT_OK) {
                snprintf(found, cap, "%s", bp);
                why = best_text(bo);
            }
            bt_err_clear();
            free(bp);
        }
        if (!why)
            why = bt_xasprintf("the newest valid archive, step %lld%s", (long long)bt_archive_step(a),
                               best && best[0] ? "; its best archive is missing or invalid" : "");
        const char *slash = strrchr(found, '/');
        fprintf(stderr, "baton: predicting with %s (%s)\n", slash ? slash + 1 : found, why);
        free(why);
        json_decref(t);
    }
    bt_archive_close(a);
    bt_job_free(&job);
    return rc;
}

/* --input: '-' (a stream) or a regular file; a FIFO or device would block. */
static int input_is_file(const char *input)
{
    struct stat ist;
    if (strcmp(input, "-") && stat(input, &ist) == 0 && !S_ISREG(ist.st_mode))
        return bt_fail(BT_EUSAGE, "--input %s is %s, not a regular file: give a file, or stream into --input - "
                                  "(stdin)", input, bt_file_kind(ist.st_mode));
    return BT_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

typedef struct {
    const char *src, *input, *device, *output, *input_format, *id_column;
    int batch, max_len, threads, stride, proba, fmt_given;
    bt_predict_format fmt;
} predict_args;

/* One option at argv[*i] (its value at argv[*i + 1]); 1 when it printed the help. */
static int parse_option(int argc, char **argv, int *i, predict_args *a, int *rc)
{
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    static const char *const valued[] = {"--input", "--output", "--format", "--batch-size", "--input-format",
                                         "--max-length", "--stride", "--threads", "--device", "--id-column"};
    int takes = 0;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) takes |= !strcmp(o, valued[k]);
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) return fputs(usage_text, stdout), 1;
    if (!strcmp(o, "--proba")) return a->proba = 1, 0;
    if (!takes) {
        fputs(usage_text, stderr);
        return *rc = bt_fail(BT_EUSAGE, "unknown option '%s'", o), 0;
    }
    if (!v) return *rc = bt_fail(BT_EUSAGE, "%s needs a value (see baton predict --help)", o), 0;
    (*i)++;
    if (!strcmp(o, "--input")) a->input = v;
    else if (!strcmp(o, "--output")) a->output = v;
    else if (!strcmp(o, "--input-format")) a->input_format = v;
    else if (!strcmp(o, "--id-column")) a->id_column = v;
    else if (!strcmp(o, "--batch-size")) *rc = parse_int(o, v, 1, 4096, &a->batch);
    else if (!strcmp(o, "--max-length")) *rc = parse_int(o, v, 3, 1 << 20, &a->max_len);
    else if (!strcmp(o, "--stride")) *rc = parse_int(o, v, 0, 1 << 20, &a->stride);
    else if (!strcmp(o, "--threads")) *rc = parse_int(o, v, 0, 1024, &a->threads);
    else if (!strcmp(o, "--device")) {
        if (strcmp(v, "cpu") && strcmp(v, "cuda")) *rc = bt_fail(BT_EUSAGE, "--device is cpu or cuda");
        a->device = v;
    } else { /* --format */
        a->fmt_given = 1;
        if (!strcmp(v, "tsv")) a->fmt = BT_PREDICT_TSV;
        else if (!strcmp(v, "jsonl")) a->fmt = BT_PREDICT_JSONL;
        else if (!strcmp(v, "logits")) a->fmt = BT_PREDICT_LOGITS;
        else *rc = bt_fail(BT_EUSAGE, "--format is tsv, jsonl or logits (got '%s'); the input's format is "
                                      "--input-format", v);
    }
    return 0;
}

/* The command line: BT_OK, an error, or -1 after printing the help. */
static int parse_args(int argc, char **argv, predict_args *a)
{
    *a = (predict_args){.device = "cpu", .batch = 16, .stride = -1, .fmt = BT_PREDICT_TSV};
    int rc = BT_OK;
    for (int i = 1; i < argc && !rc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            if (parse_option(argc, argv, &i, a, &rc)) return -1;
        } else if (!a->src) {
            a->src = argv[i];
        } else {
            rc = bt_fail(BT_EUSAGE, "unexpected argument '%s'", argv[i]);
        }
    }
    if (rc) return rc;
    if (!a->src || !a->input) {
        fputs(usage_text, stderr);
        return bt_fail(BT_EUSAGE, "predict needs a model (MODEL_DIR, ARCHIVE or JOB.ini) and --input FILE");
    }
    return input_is_file(a->input);
}

/* Options that apply to one kind of input only are refused for the other. */
static int check_table_options(const predict_args *a, int table)
{
    if (table && a->fmt_given)
        return bt_fail(BT_EUSAGE, "--format applies to text input; the output of a table (%s) is id and label "
                                  "columns whose format follows --output's extension (.csv, .tsv, .jsonl)", a->input);
    if (!table && (a->proba || a->id_column))
        return bt_fail(BT_EUSAGE, "%s applies to a table input (.csv, .tsv, .jsonl, or --input-format csv|tsv|jsonl); "
                                  "%s is read as text, one example per line", a->proba ? "--proba" : "--id-column",
                       a->input);
    return BT_OK;
}

/* The model directory: given (dir), or an archive (given, or the job's)
 * exported into a new temporary directory tmpdir. */
static int model_dir(const char *src, char *archive, char *tmpdir, size_t cap, char **resolved, const char **dir)
{
    int rc;
    *dir = src;
    if (bt_is_dir(src)) {
        if ((rc = bt_model_dir_resolve(src, BT_MODEL_DIR_WEIGHTS | BT_MODEL_DIR_TOKENIZER, resolved))) return rc;
        *dir = *resolved;
        return BT_OK;
    }
    if (!bt_path_exists(src)) return bt_fail(BT_ENOINPUT, "%s: no such file or directory", src);
    if (ends_with(src, ".ini")) {
        if ((rc = job_archive(src, archive, cap))) return rc;
    } else {
        snprintf(archive, cap, "%s", src);
    }
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, cap, "%s/baton-predict-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        rc = bt_fail(BT_EIO, "cannot create a temporary directory in %s: %s", t && *t ? t : "/tmp", strerror(errno));
        tmpdir[0] = '\0';
        return rc;
    }
    *dir = tmpdir;
    rc = bt_export_archive(archive, tmpdir, 1, NULL);
    return rc ? bt_fail_context(rc, "predict") : BT_OK;
}

static void remove_tmpdir(const char *tmpdir)
{
    if (!tmpdir[0]) return;
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                                        "tokenizer.json", "special_tokens_map.json"}; /* issue 22 hook */
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char *f = bt_path_join(tmpdir, files[k]);
        unlink(f);
        free(f);
    }
    rmdir(tmpdir);
}

/* What predict holds: the arguments, the model directory and what was read of it. */
typedef struct {
    predict_args a;
    const char *dir;      /* the model directory */
    char archive[4096];   /* the archive predicted with, or "" */
    bt_tokenizer *tok;
    bt_model_config mc;
    bt_bert_config cfg;
    bt_data_format in_fmt;
} predict_ctx;

/* The tokenizer and configs; the request with --max-length from training
 * when not given (else 512 / the tokenizer's limit). */
static int load_model(predict_ctx *c, bt_predict_request *r)
{
    int rc, trained_len, trained_stride;
    if ((rc = bt_tokenizer_load(c->dir, &c->tok))) return rc;
    if ((rc = bt_bert_config_load(c->dir, &c->cfg))) return rc;
    char *cp = bt_path_join(c->dir, "config.json");
    rc = bt_model_config_load(cp, &c->mc);
    free(cp);
    if (rc) return rc;
    /* the sequence length (and window overlap) of training, when the model
     * was trained by baton */
    if ((rc = bt_model_config_inference(&c->mc, &trained_len, &trained_stride))) return rc;
    const predict_args *a = &c->a;
    int max_len = a->max_len ? a->max_len : trained_len;
    if (!max_len) {
        max_len = 512;
        long mml = bt_tokenizer_get_config(c->tok)->model_max_length;
        if (mml > 0 && mml < max_len) max_len = (int)mml;
    }
    if (max_len > bt_bert_max_seq_len(&c->cfg)) max_len = bt_bert_max_seq_len(&c->cfg);
    *r = (bt_predict_request){
        .src = a->src, .dir = c->dir, .archive = c->archive, .tok = c->tok, .mc = &c->mc, .cfg = &c->cfg,
        .input = a->input, .in_fmt = c->in_fmt, .output = a->output, .fmt = a->fmt, .id_column = a->id_column,
        .proba = a->proba, .batch = a->batch, .max_len = max_len, .stride = a->stride,
        .trained_stride = trained_stride, .threads = a->threads, .device = a->device,
    };
    return BT_OK;
}

/* The task whose models config.json names predicts (runner/task.h): a
 * baton archive of a task without predictions is refused saying why; a base
 * model directory gets the sequence predictor's fresh head (with a warning). */
static int predict_with(predict_ctx *c)
{
    bt_predict_request r;
    int rc = load_model(c, &r);
    if (rc) return rc;
    const bt_task_ops *t = bt_task_for_architecture(c->mc.architecture);
    if (t && t->predict) return t->predict(&r);
    if (t && c->archive[0])
        return bt_fail(BT_EUSAGE, "%s is a %s", c->archive, t->no_predict);
    return bt_predict_sequence(&r);
}

int cmd_predict(int argc, char **argv)
{
    predict_ctx c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(argc, argv, &c.a);
    if (rc) return rc < 0 ? 0 : bt_report_error(rc);
    if ((rc = bt_predict_input_format(c.a.input_format, c.a.input, &c.in_fmt))) return bt_report_error(rc);
    rc = check_table_options(&c.a, c.in_fmt != BT_DATA_TEXT && c.in_fmt != BT_DATA_CONLL);
    if (rc) return bt_report_error(rc);
    bt_signals_install(); /* a stop request ends predict within one batch, cleaning up */
    /* the model directory: given, or exported from an archive into a
     * temporary directory removed at the end */
    char tmpdir[4096] = "";
    char *resolved = NULL; /* a model directory, or the one below a folder without config.json */
    rc = model_dir(c.a.src, c.archive, tmpdir, sizeof tmpdir, &resolved, &c.dir);
    if (!rc) rc = predict_with(&c);
    bt_tokenizer_free(c.tok);
    bt_model_config_free(&c.mc);
    remove_tmpdir(tmpdir);
    free(resolved);
    bt_signals_restore();
    return rc ? bt_report_error(rc) : 0;
}
