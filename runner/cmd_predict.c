/* runner/cmd_predict.c — `baton predict (MODEL_DIR | ARCHIVE | JOB.ini)
 * --input FILE`: sequence-classification predictions for each input line,
 * or each row of a table (runner/predict_table.c).
 *
 * Owns: argument parsing, finding the model (a directory; an archive, exported
 * to a temporary directory first; a job's best archive, else its newest valid
 * one, saying which), loading it, reading text lines, batching, and writing
 * one result per input line in input order: labels and probabilities (TSV or
 * JSONL) or raw logits.
 * Must not: implement model or tokenizer logic (engine/ does), parse tables
 * or write their output (runner/predict_table.c does).
 * A line holding a TAB is encoded as a (first, second) pair, as a
 * two-column data set would be.
 */
#include "engine/bert.h"
#include "engine/model_config.h"
#include "engine/model_dir.h"
#include "engine/tokenizer.h"
#include "kernels/backend.h"
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/predict_table.h"
#include "runner/task_longdoc.h"
#include "runner/task_token.h"
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

typedef enum { FMT_TSV, FMT_JSONL, FMT_LOGITS } out_format;

/* What the output needs to know about the model. */
typedef struct {
    out_format fmt;
    bt_problem_type problem;
    char **labels; /* [C] */
    int C;
    FILE *out;
} writer;

static void write_header(const writer *w)
{
    if (w->fmt != FMT_TSV) return;
    if (w->problem == BT_PROBLEM_REGRESSION) {
        fputs("value\n", w->out);
        return;
    }
    fputs(w->problem == BT_PROBLEM_MULTI_LABEL ? "labels\tprob" : "label\tprob", w->out);
    for (int c = 0; c < w->C; c++) fprintf(w->out, "\tprob_%s", w->labels[c]);
    fputc('\n', w->out);
}

/* One input's result from its C logits. */
static void write_result(const writer *w, const float *lg)
{
    int C = w->C;
    if (w->fmt == FMT_LOGITS) {
        for (int c = 0; c < C; c++) fprintf(w->out, c ? "\t%.9g" : "%.9g", lg[c]);
        fputc('\n', w->out);
        return;
    }
    if (w->problem == BT_PROBLEM_REGRESSION) {
        if (w->fmt == FMT_TSV) fprintf(w->out, "%.7g\n", lg[0]);
        else fprintf(w->out, "{\"value\":%.7g}\n", lg[0]);
        return;
    }
    double p[C > 0 ? C : 1];
    int best = 0;
    if (w->problem == BT_PROBLEM_MULTI_LABEL) {
        for (int c = 0; c < C; c++) p[c] = 1.0 / (1.0 + exp(-(double)lg[c]));
    } else {
        double mx = lg[0], z = 0;
        for (int c = 1; c < C; c++) mx = lg[c] > mx ? lg[c] : mx;
        for (int c = 0; c < C; c++) z += (p[c] = exp((double)lg[c] - mx));
        for (int c = 0; c < C; c++) p[c] /= z;
    }
    for (int c = 1; c < C; c++)
        if (p[c] > p[best]) best = c;
    json_t *o = w->fmt == FMT_JSONL ? json_object() : NULL, *probs = o ? json_object() : NULL;
    if (w->problem == BT_PROBLEM_MULTI_LABEL) {
        json_t *on = o ? json_array() : NULL;
        int first = 1;
        for (int c = 0; c < C; c++) {
            if (p[c] < 0.5) continue;
            if (on) json_array_append_new(on, json_string(w->labels[c]));
            else fprintf(w->out, "%s%s", first ? "" : ",", w->labels[c]);
            first = 0;
        }
        if (o) json_object_set_new(o, "labels", on);
        else fprintf(w->out, "\t%.6f", p[best]);
    } else if (o) {
        json_object_set_new(o, "label", json_string(w->labels[best]));
        json_object_set_new(o, "prob", json_real(p[best]));
    } else {
        fprintf(w->out, "%s\t%.6f", w->labels[best], p[best]);
    }
    for (int c = 0; c < C; c++) {
        if (probs) json_object_set_new(probs, w->labels[c], json_real(p[c]));
        else fprintf(w->out, "\t%.6f", p[c]);
    }
    if (o) {
        json_object_set_new(o, "probs", probs);
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
        fputs(line ? line : "{}", w->out);
        free(line);
        json_decref(o);
    }
    fputc('\n', w->out);
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi)
        return bt_fail(BT_EUSAGE, "%s needs an integer in [%d, %d] (got '%s')", flag, lo, hi, v ? v : "");
    *out = (int)x;
    return 0;
}

typedef struct {
    int32_t *ids, *tt;
    int len;
} item;

static int flush_batch(bt_bert *m, item *it, int n, float *logits, const writer *w)
{
    const int32_t **ids = bt_xcalloc((size_t)n, sizeof *ids), **tt = bt_xcalloc((size_t)n, sizeof *tt);
    int *len = bt_xcalloc((size_t)n, sizeof *len);
    for (int i = 0; i < n; i++) {
        ids[i] = it[i].ids;
        tt[i] = it[i].tt;
        len[i] = it[i].len;
    }
    bt_batch b = {.n = n, .ids = ids, .type_ids = tt, .len = len};
    int rc = bt_bert_eval(m, &b, NULL, logits);
    for (int i = 0; i < n && !rc; i++) write_result(w, logits + (size_t)i * (size_t)w->C);
    for (int i = 0; i < n; i++) {
        free(it[i].ids);
        free(it[i].tt);
    }
    free(ids);
    free(tt);
    free(len);
    return rc;
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

/* A stop signal since predict started: BT_ETEMPFAIL saying what was done. */
static int stop_requested(long lines, const char *output)
{
    bt_stop_reason why = bt_signal_pending();
    if (why == BT_STOP_NONE) return BT_OK;
    return bt_fail(BT_ETEMPFAIL, "predict interrupted by %s after %ld input line%s: %s; run it again",
                   bt_stop_reason_name(why), lines, lines == 1 ? "" : "s",
                   output ? "nothing was written to the output (its .partial is removed)"
                          : "the predictions of those lines were written to stdout, the rest were not");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

typedef struct {
    const char *src, *input, *device, *output, *input_format, *id_column;
    int batch, max_len, threads, stride, proba, fmt_given;
    out_format fmt;
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
        if (!strcmp(v, "tsv")) a->fmt = FMT_TSV;
        else if (!strcmp(v, "jsonl")) a->fmt = FMT_JSONL;
        else if (!strcmp(v, "logits")) a->fmt = FMT_LOGITS;
        else *rc = bt_fail(BT_EUSAGE, "--format is tsv, jsonl or logits (got '%s'); the input's format is "
                                      "--input-format", v);
    }
    return 0;
}

/* The command line: BT_OK, an error, or -1 after printing the help. */
static int parse_args(int argc, char **argv, predict_args *a)
{
    *a = (predict_args){.device = "cpu", .batch = 16, .stride = -1, .fmt = FMT_TSV};
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
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char *f = bt_path_join(tmpdir, files[k]);
        unlink(f);
        free(f);
    }
    rmdir(tmpdir);
}

/* Everything predict holds while it runs. */
typedef struct {
    predict_args a;
    const char *dir;      /* the model directory */
    char archive[4096];   /* the archive predicted with, or "" */
    bt_tokenizer *tok;
    bt_model_config mc;
    bt_bert_config cfg;
    bt_backend *be;
    bt_bert *m;
    bt_longdoc *ld;
    bt_longdoc_opts lopts;
    int longdoc, attn_dim, trained_stride;
} predict_ctx;

/* The tokenizer and configs; --max-length from training when not given. */
static int load_config(predict_ctx *c)
{
    int rc, trained_len;
    if ((rc = bt_tokenizer_load(c->dir, &c->tok))) return rc;
    if ((rc = bt_bert_config_load(c->dir, &c->cfg))) return rc;
    char *cp = bt_path_join(c->dir, "config.json");
    rc = bt_model_config_load(cp, &c->mc);
    free(cp);
    if (rc) return rc;
    /* the sequence length (and window overlap) of training, when the model
     * was trained by baton; else 512 / the tokenizer's limit */
    if ((rc = bt_model_config_inference(&c->mc, &trained_len, &c->trained_stride))) return rc;
    int *max_len = &c->a.max_len;
    if (!*max_len && trained_len) *max_len = trained_len;
    if (!*max_len) {
        *max_len = 512;
        long mml = bt_tokenizer_get_config(c->tok)->model_max_length;
        if (mml > 0 && mml < *max_len) *max_len = (int)mml;
    }
    if (*max_len > bt_bert_max_seq_len(&c->cfg)) *max_len = bt_bert_max_seq_len(&c->cfg);
    /* a long-document classifier (task = classify_long): each line is a whole
     * document, chunked and pooled as in training (config.json says how) */
    if ((rc = bt_task_longdoc_from_config(c->mc.json, c->tok, c->a.src, &c->lopts, &c->attn_dim, &c->longdoc)))
        return rc;
    /* an archive of task = mlm has no classifier: refuse rather than print logits of a random head */
    if (c->archive[0] && c->mc.architecture && !strcmp(c->mc.architecture, "BertForMaskedLM"))
        return bt_fail(BT_EUSAGE, "%s is a masked-LM checkpoint (task = mlm, BertForMaskedLM): it has no classifier "
                                  "to predict with; export it (baton export) and fine-tune that directory with "
                                  "task = classify", c->archive);
    return BT_OK;
}

/* A token classifier (task = token_classify) tags per word (runner/task_token.c). */
static int predict_tokens(const predict_ctx *c, bt_data_format in_fmt)
{
    const predict_args *a = &c->a;
    if (in_fmt != BT_DATA_TEXT && in_fmt != BT_DATA_CONLL)
        return bt_fail(BT_EUSAGE, "%s: a token-classification model (task = token_classify) tags sentences: give "
                                  "one sentence per line (.txt) or a CoNLL file, not a %s table", a->input,
                       bt_data_format_name(in_fmt));
    if (a->stride >= a->max_len - 2)
        return bt_fail(BT_EUSAGE, "--stride %d: a window of a long sentence holds %d sub-tokens with --max-length "
                                  "%d and must repeat fewer; give a smaller --stride or a larger --max-length",
                       a->stride, a->max_len - 2, a->max_len);
    int overlap = a->stride >= 0 ? a->stride : c->trained_stride < a->max_len - 2 ? c->trained_stride : -1;
    bt_token_predict_args ta = {
        .dir = c->dir, .src = a->src, .input = a->input, .conll = in_fmt == BT_DATA_CONLL, .output = a->output,
        .format = a->fmt == FMT_JSONL ? "jsonl" : a->fmt == FMT_LOGITS ? "logits" : "tsv", .batch = a->batch,
        .max_len = a->max_len, .overlap = overlap, .threads = a->threads, .device = a->device,
    };
    return bt_task_token_predict(&ta);
}

/* The sequence classifier on the device; its problem type and width in w. */
static int create_model(predict_ctx *c, writer *w)
{
    const predict_args *a = &c->a;
    int rc;
    c->be = !strcmp(a->device, "cuda") ? bt_backend_cuda_create(0) : bt_backend_cpu_create(a->threads);
    if (!c->be) return BT_ECONFIG;
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .max_batch = a->batch, .max_seq = a->max_len, .training = 0, .seed = 0};
    if (c->longdoc) {
        o.max_batch = c->lopts.chunk_batch;
        o.max_seq = c->lopts.chunk.max_seq_len;
        o.doc_attn_dim = c->attn_dim;
    }
    if ((rc = bt_bert_create(c->be, c->dir, &o, &c->m))) return rc;
    if (c->longdoc && (rc = bt_longdoc_create(c->m, &c->lopts, &c->ld))) return rc;
    if (bt_bert_heads_initialised(c->m))
        bt_warn("%s has no trained classifier (%d head tensors freshly initialised): the predictions are not "
                "meaningful; point predict at a fine-tuned model, an archive or a job",
                a->src, bt_bert_heads_initialised(c->m));
    int C = bt_bert_logits_cols(c->m);
    *w = (writer){.fmt = a->fmt, .problem = c->mc.problem_type, .labels = c->mc.labels, .C = C};
    if (w->problem == BT_PROBLEM_NONE) w->problem = C == 1 ? BT_PROBLEM_REGRESSION : BT_PROBLEM_SINGLE_LABEL;
    if (c->mc.num_labels != C && w->problem != BT_PROBLEM_REGRESSION && a->fmt != FMT_LOGITS)
        return bt_fail(BT_EDATA, "%s: config.json names %d labels but the classifier has %d outputs", a->src,
                       c->mc.num_labels, C);
    return BT_OK;
}

/* One input line: classified at once (long documents) or added to the batch. */
/* Where one line's result goes: its batch slot, or (long documents) the logits written at once. */
typedef struct {
    item *it;
    float *logits; /* [C] */
} line_out;

static int predict_line(const predict_ctx *c, const writer *w, char *line, size_t n, long lineno, line_out lo)
{
    item *it = lo.it;
    float *logits = lo.logits;
    const char *input = c->a.input;
    char *tab = memchr(line, '\t', n);
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts eo = {.max_length = c->longdoc ? 0 : c->a.max_len, .truncation = BT_TRUNC_LONGEST_FIRST};
    int rc;
    if (c->longdoc && tab) /* one document per line, encoded whole and classified at once */
        return bt_fail(BT_EDATA, "%s:%ld: a TAB in a document: a long-document model reads one text per "
                                 "line; replace the TABs with spaces", input, lineno);
    rc = tab ? bt_encode_pair(c->tok, line, (size_t)(tab - line), tab + 1, n - (size_t)(tab + 1 - line), &eo, &enc)
             : bt_encode(c->tok, line, n, &eo, &enc);
    if (!rc && c->longdoc) {
        rc = bt_longdoc_logits(c->ld, enc.input_ids + 1, enc.len >= 2 ? enc.len - 2 : 0, logits);
        if (!rc) write_result(w, logits);
    } else if (!rc) {
        it->len = (int)enc.len;
        it->ids = bt_xmalloc(enc.len * sizeof(int32_t));
        it->tt = bt_xmalloc(enc.len * sizeof(int32_t));
        memcpy(it->ids, enc.input_ids, enc.len * sizeof(int32_t));
        memcpy(it->tt, enc.token_type_ids, enc.len * sizeof(int32_t));
    }
    bt_encoding_free(&enc);
    return rc ? bt_fail_context(rc, "%s:%ld", input, lineno) : BT_OK;
}

/* Every line of in, one result each, in order, to w->out. */
static int predict_lines(const predict_ctx *c, const writer *w, FILE *in, long *lineno)
{
    int batch = c->a.batch, nb = 0, rc = BT_OK;
    float *logits = bt_xcalloc((size_t)batch * w->C, sizeof *logits);
    item *items = bt_xcalloc((size_t)batch, sizeof *items);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    write_header(w);
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        ++*lineno;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        rc = predict_line(c, w, line, (size_t)n, *lineno, (line_out){&items[nb], logits});
        if (!rc && !c->longdoc && ++nb == batch) {
            rc = flush_batch(c->m, items, nb, logits, w);
            nb = 0;
        }
        if (!rc && (c->longdoc || nb == 0)) rc = stop_requested(*lineno, c->a.output);
    }
    if (!rc && ferror(in)) rc = bt_fail(BT_EIO, "%s: read error after line %ld", c->a.input, *lineno);
    if (!rc && nb) rc = flush_batch(c->m, items, nb, logits, w);
    else
        for (int i = 0; i < nb; i++) free(items[i].ids), free(items[i].tt);
    free(line);
    free(items);
    free(logits);
    return rc;
}

/* Text input: one result per line, to --output (published atomically) or stdout. */
static int predict_text(const predict_ctx *c, writer *w)
{
    const char *input = c->a.input, *output = c->a.output;
    FILE *in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) return bt_fail(BT_ENOINPUT, "%s: cannot open the input file: %s", input, strerror(errno));
    bt_publish pub = {0};
    int rc = output ? bt_publish_begin(&pub, output) : BT_OK;
    long lineno = 0;
    w->out = output ? pub.f : stdout;
    if (!rc) rc = predict_lines(c, w, in, &lineno);
    if (!rc && !output && (fflush(stdout) || ferror(stdout))) rc = bt_fail(BT_EIO, "cannot write the predictions to stdout");
    if (output && pub.f) {
        int prc = bt_publish_end(&pub, !rc);
        if (!rc && !prc) fprintf(stderr, "wrote %ld predictions to %s\n", lineno, output);
        rc = rc ? rc : prc;
    }
    if (in != stdin) fclose(in);
    return rc;
}

/* Table input (CSV/TSV/JSONL): runner/predict_table.c. */
static int predict_table(const predict_ctx *c, const writer *w, bt_data_format in_fmt)
{
    bt_predict_model pm = {.tok = c->tok, .m = c->m, .ld = c->ld, .max_len = c->a.max_len, .batch = c->a.batch,
                           .C = w->C, .problem = w->problem, .labels = w->labels, .mc = &c->mc};
    bt_predict_table_opts o = {.src = c->a.src, .archive = c->archive, .input = c->a.input, .format = in_fmt,
                               .id_column = c->a.id_column, .output = c->a.output, .proba = c->a.proba};
    return bt_predict_table(&pm, &o);
}

/* A loaded model's predictions for the input. */
static int predict_with(predict_ctx *c, bt_data_format in_fmt)
{
    int rc = load_config(c);
    if (rc) return rc;
    if (c->mc.architecture && !strcmp(c->mc.architecture, "BertForTokenClassification"))
        return predict_tokens(c, in_fmt);
    if (c->a.stride >= 0)
        return bt_fail(BT_EUSAGE, "--stride applies to token-classification models (task = token_classify); %s is "
                                  "a sequence classifier%s", c->a.src,
                       c->longdoc ? " whose chunk stride is fixed by training" : "");
    if (in_fmt == BT_DATA_CONLL)
        return bt_fail(BT_EUSAGE, "%s: a CoNLL input needs a token-classification model (task = token_classify); "
                                  "%s is a sequence classifier: give one text per line", c->a.input, c->a.src);
    writer w;
    if ((rc = create_model(c, &w))) return rc;
    return in_fmt == BT_DATA_TEXT ? predict_text(c, &w) : predict_table(c, &w, in_fmt);
}

int cmd_predict(int argc, char **argv)
{
    predict_ctx c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(argc, argv, &c.a);
    if (rc) return rc < 0 ? 0 : bt_report_error(rc);
    bt_data_format in_fmt;
    if ((rc = bt_predict_input_format(c.a.input_format, c.a.input, &in_fmt))) return bt_report_error(rc);
    if ((rc = check_table_options(&c.a, in_fmt != BT_DATA_TEXT && in_fmt != BT_DATA_CONLL))) return bt_report_error(rc);
    bt_signals_install(); /* a stop request ends predict within one batch, cleaning up */
    /* the model directory: given, or exported from an archive into a
     * temporary directory removed at the end */
    char tmpdir[4096] = "";
    char *resolved = NULL; /* a model directory, or the one below a folder without config.json */
    rc = model_dir(c.a.src, c.archive, tmpdir, sizeof tmpdir, &resolved, &c.dir);
    if (!rc) rc = predict_with(&c, in_fmt);
    bt_longdoc_free(c.ld);
    bt_bert_free(c.m);
    if (c.be) c.be->destroy(c.be);
    bt_tokenizer_free(c.tok);
    bt_model_config_free(&c.mc);
    remove_tmpdir(tmpdir);
    free(resolved);
    bt_signals_restore();
    return rc ? bt_report_error(rc) : 0;
}
