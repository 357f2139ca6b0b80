/* runner/predict_table.c — `baton predict` on a table: see predict_table.h.
 *
 * Owns: the input/output formats of a table prediction, the job settings that
 * read the table, the output's label column name, encoding and batching the
 * rows, and writing the submission-shaped output (bt_publish).
 * Must not: parse tables (engine/data.c), find the model (cmd_predict.c).
 */
#include "runner/predict_table.h"

#include "runner/job.h"
#include "runner/watchdog.h"
#include "state/archive.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/str.h"

#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int bt_predict_input_format(const char *flag, const char *input, bt_data_format *out)
{
    static const struct { const char *name; bt_data_format f; } map[] = {
        {"text", BT_DATA_TEXT}, {"conll", BT_DATA_CONLL}, {"csv", BT_DATA_CSV},
        {"tsv", BT_DATA_TSV},   {"jsonl", BT_DATA_JSONL},
    };
    if (!flag || !strcmp(flag, "auto")) {
        bt_data_format f = strcmp(input, "-") ? bt_data_format_from_name(input) : BT_DATA_AUTO;
        *out = f == BT_DATA_AUTO ? BT_DATA_TEXT : f;
        return BT_OK;
    }
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(flag, map[i].name)) {
            *out = map[i].f;
            return BT_OK;
        }
    return bt_fail(BT_EUSAGE, "--input-format is auto, text, conll, csv, tsv or jsonl (got '%s')", flag);
}

bt_data_format bt_predict_output_format(const char *output, bt_data_format input_format)
{
    bt_data_format f = output ? bt_data_format_from_name(output) : BT_DATA_AUTO;
    return f == BT_DATA_CSV || f == BT_DATA_TSV || f == BT_DATA_JSONL ? f : input_format;
}

char *bt_predict_field(bt_data_format f, const char *s)
{
    if (f == BT_DATA_TSV) return strpbrk(s, "\t\r\n") ? NULL : bt_xstrdup(s);
    if (f != BT_DATA_CSV || !strpbrk(s, ",\"\r\n")) return bt_xstrdup(s);
    bt_strbuf b = {0};
    bt_strbuf_puts(&b, "\"");
    for (const char *p = s; *p; p++) bt_strbuf_puts(&b, *p == '"' ? "\"\"" : (char[2]){*p, 0});
    bt_strbuf_puts(&b, "\"");
    return bt_strbuf_take(&b);
}

/* ------------------------------------------------------------ the job */

/* The job recorded in an archive, its relative paths resolved as the job
 * file's were: against the directory that holds the archive's output
 * directory (<job dir>/<output_dir>/ckpt-*.tar) when that is where the job's
 * output_dir points, else against the current directory. */
static int archive_job(const char *archive, const char *text, const char *name, bt_job *job)
{
    bt_job_load_options lo = {.check_paths = 0};
    char *abs = realpath(archive, NULL);
    char *out_dir = abs ? bt_xstrdup(dirname(abs)) : NULL;
    char *job_dir = out_dir ? bt_path_join(out_dir, "..") : NULL;
    int rc = job_dir ? bt_job_load_string(text, name, job_dir, &lo, job) : BT_EDATA;
    if (!rc) {
        char *got = realpath(job->job.output_dir, NULL);
        int same = got && !strcmp(got, out_dir);
        free(got);
        if (!same) bt_job_free(job), rc = BT_EDATA;
    }
    bt_err_clear();
    if (rc) rc = bt_job_load_string(text, name, NULL, &lo, job);
    free(abs);
    free(out_dir);
    free(job_dir);
    return rc;
}

/* The job whose [data] settings read the table: a job file (src), or the
 * job.ini recorded in the archive; *have = 0 for a model directory. */
static int load_job(const bt_predict_table_opts *o, bt_job *job, int *have)
{
    bt_job_load_options lo = {.check_paths = 0};
    *have = 0;
    if (bt_str_ends_with(o->src, ".ini")) {
        int rc = bt_job_load(o->src, &lo, job);
        *have = !rc;
        return rc;
    }
    if (!o->archive || !o->archive[0]) return BT_OK;
    bt_archive *a = NULL;
    int rc = bt_archive_verify(o->archive, NULL, NULL, &a);
    if (!rc) {
        char *name = bt_xasprintf("%s:job.ini", o->archive);
        rc = archive_job(o->archive, bt_archive_text(a, BT_M_JOB), name, job);
        free(name);
        *have = !rc;
    }
    bt_archive_close(a);
    return rc ? bt_fail_context(rc, "%s: the job recorded in the archive", o->archive) : BT_OK;
}

static int is_column_name(const char *s)
{
    if (!s || !*s || !strcmp(s, "auto")) return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return 1;
    return 0;
}

/* The names training resolved its text, pair and label columns to:
 * names[BT_DATA_COL_*] (heap, NULL when unknown), from config.json's
 * "baton_columns" (archives record them), else from the job's training file
 * when it can be read. */
static int train_columns(const bt_predict_model *pm, const bt_job *job, int have, char *names[4])
{
    memset(names, 0, 4 * sizeof *names);
    const char *rec[3];
    int rc = pm->mc ? bt_model_config_columns(pm->mc, rec) : (rec[0] = rec[1] = rec[2] = NULL, BT_OK);
    if (rc) return rc;
    if (rec[0] || rec[2]) {
        for (int k = 0; k < 3; k++) names[k] = rec[k] ? bt_xstrdup(rec[k]) : NULL;
        return BT_OK;
    }
    if (!have || !job->data.train || !bt_path_exists(job->data.train)) return BT_OK;
    bt_data_options d = {.format = (bt_data_format)job->data.format, .header = (bt_data_header)job->data.header,
                         .text_column = job->data.text_column, .label_column = job->data.label_column,
                         .label_kind = BT_LABELS_CLASS, .skip_malformed = 1, .limit = 1};
    bt_dataset ds;
    if (bt_data_load(job->data.train, &d, &ds) == BT_OK) {
        for (int k = 0; k < 4; k++) names[k] = ds.column_names[k], ds.column_names[k] = NULL;
        bt_data_free(&ds);
    }
    bt_err_clear();
    return BT_OK;
}

/* The output's label column: the job's [data] label_column when it is a
 * name, else the one training resolved, else "label". */
static char *label_name(const bt_job *job, int have, char *const names[4])
{
    if (have && is_column_name(job->data.label_column)) return bt_xstrdup(job->data.label_column);
    return bt_xstrdup(names[BT_DATA_COL_LABEL] ? names[BT_DATA_COL_LABEL] : "label");
}

/* Reads the input table with the job's column settings (and the names training resolved). */
static int read_table(const bt_predict_table_opts *o, const bt_job *job, int have, char *const names[4],
                      bt_dataset *ds)
{
    bt_data_options d = {.format = o->format, .header = BT_HEADER_AUTO, .text_column = "auto",
                         .label_kind = BT_LABELS_NONE, .id_column = o->id_column ? o->id_column : "auto",
                         .row_hint = "fix the row (predict writes one output row per input row)"};
    if (have) {
        d.header = (bt_data_header)job->data.header;
        d.text_column = job->data.text_column;
        d.pair_column = job->data.text_pair_column && job->data.text_pair_column[0] ? job->data.text_pair_column : NULL;
    } else {
        d.pair_column = names[BT_DATA_COL_PAIR]; /* a model directory exported by baton */
    }
    /* auto: the column training's auto-detection found */
    if (!strcmp(d.text_column, "auto") && names[BT_DATA_COL_TEXT]) d.text_column = names[BT_DATA_COL_TEXT];
    if (strcmp(o->input, "-")) return bt_data_load(o->input, &d, ds);
    bt_strbuf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) bt_strbuf_put(&b, chunk, n);
    int rc = ferror(stdin) ? bt_fail(BT_EIO, "stdin: read error") : BT_OK;
    size_t len = b.len;
    char *buf = bt_strbuf_take(&b);
    if (!rc) rc = bt_data_parse(buf ? buf : "", buf ? len : 0, "stdin", &d, ds);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ the model */

static int stopped(size_t rows)
{
    bt_stop_reason why = bt_signal_pending();
    if (why == BT_STOP_NONE) return BT_OK;
    return bt_fail(BT_ETEMPFAIL, "predict interrupted by %s after %zu input row%s: nothing was written to the "
                                 "output (its .partial is removed); run it again",
                   bt_stop_reason_name(why), rows, rows == 1 ? "" : "s");
}

/* logits[i*C .. (i+1)*C) for rows [i0, i0+n) of ds, encoded into enc[0..n). */
static int eval_rows(const bt_predict_model *pm, bt_encoding *enc, int n, float *logits)
{
    const int32_t *ids[n], *tt[n];
    int len[n];
    for (int i = 0; i < n; i++) {
        ids[i] = enc[i].input_ids;
        tt[i] = enc[i].token_type_ids;
        len[i] = (int)enc[i].len;
    }
    bt_batch b = {.n = n, .ids = ids, .type_ids = tt, .len = len};
    return bt_bert_eval(pm->m, &b, NULL, logits);
}

/* logits [ds->n * C]: every row, in order, batched as predict batches lines. */
static int table_logits(const bt_predict_model *pm, const bt_dataset *ds, float *logits)
{
    bt_encoding *enc = bt_xcalloc((size_t)pm->batch, sizeof *enc);
    for (int i = 0; i < pm->batch; i++) bt_encoding_init(&enc[i]);
    bt_encode_opts eo = {.max_length = pm->ld ? 0 : pm->max_len, .truncation = BT_TRUNC_LONGEST_FIRST};
    int rc = BT_OK, nb = 0;
    size_t start = 0;
    for (size_t i = 0; i < ds->n && !rc; i++) {
        const char *t = bt_example_text(ds, i), *p = bt_example_pair(ds, i);
        bt_encoding *e = &enc[nb];
        if (pm->ld && p) {
            rc = bt_fail(BT_EDATA, "%s:%u: a long-document model reads one text per row, not a pair; drop "
                                   "[data] text_pair_column", ds->path, ds->ex[i].line);
            break;
        }
        rc = p ? bt_encode_pair(pm->tok, t, strlen(t), p, strlen(p), &eo, e) : bt_encode(pm->tok, t, strlen(t), &eo, e);
        if (!rc && pm->ld)
            rc = bt_longdoc_logits(pm->ld, e->input_ids + 1, e->len >= 2 ? e->len - 2 : 0, logits + i * (size_t)pm->C);
        if (rc) {
            rc = bt_fail_context(rc, "%s:%u", ds->path, ds->ex[i].line);
            break;
        }
        if (pm->ld) {
            rc = stopped(i + 1);
            continue;
        }
        if (++nb == pm->batch || i + 1 == ds->n) {
            rc = eval_rows(pm, enc, nb, logits + start * (size_t)pm->C);
            start = i + 1;
            nb = 0;
            if (!rc) rc = stopped(start);
        }
    }
    for (int i = 0; i < pm->batch; i++) bt_encoding_free(&enc[i]);
    free(enc);
    return rc;
}

/* ------------------------------------------------------------ the output */

typedef struct {
    FILE *f;
    bt_data_format fmt;
    const bt_predict_model *pm;
    const bt_dataset *ds;
    const char *label;      /* the label column's name */
    const char *sep;        /* multi-label separator */
    int proba, has_id;
    const char *name;       /* output name for messages */
} table_writer;

/* One field (CSV/TSV): separator before all but the first. */
static int put_field(const table_writer *w, int first, const char *s, size_t row)
{
    char *f = bt_predict_field(w->fmt, s);
    if (!f)
        return bt_fail(BT_EDATA, "%s: row %zu: '%s' holds a TAB or a line break, which a TSV field cannot; "
                                 "write a .csv or .jsonl output", w->name, row, s);
    fprintf(w->f, "%s%s", first ? "" : w->fmt == BT_DATA_CSV ? "," : "\t", f);
    free(f);
    return BT_OK;
}

static void probabilities(const table_writer *w, const float *lg, double *p)
{
    int C = w->pm->C;
    if (w->pm->problem == BT_PROBLEM_MULTI_LABEL) {
        for (int c = 0; c < C; c++) p[c] = 1.0 / (1.0 + exp(-(double)lg[c]));
        return;
    }
    double mx = lg[0], z = 0;
    for (int c = 1; c < C; c++) mx = lg[c] > mx ? lg[c] : mx;
    for (int c = 0; c < C; c++) z += (p[c] = exp((double)lg[c] - mx));
    for (int c = 0; c < C; c++) p[c] /= z;
}

/* The prediction of one row as text (heap): the label, the labels at >= 0.5
 * joined by the separator (multi-label), or the value (regression). */
static char *row_value(const table_writer *w, const float *lg, const double *p)
{
    if (w->pm->problem == BT_PROBLEM_REGRESSION) return bt_xasprintf("%.7g", lg[0]);
    bt_strbuf b = {0};
    int best = 0;
    for (int c = 1; c < w->pm->C; c++)
        if (p[c] > p[best]) best = c;
    if (w->pm->problem != BT_PROBLEM_MULTI_LABEL) bt_strbuf_puts(&b, w->pm->labels[best]);
    else
        for (int c = 0, k = 0; c < w->pm->C; c++)
            if (p[c] >= 0.5) bt_strbuf_printf(&b, "%s%s", k++ ? w->sep : "", w->pm->labels[c]);
    char *s = bt_strbuf_take(&b);
    return s ? s : bt_xstrdup("");
}

static int write_header(const table_writer *w)
{
    int rc = BT_OK, first = 1;
    if (w->fmt == BT_DATA_JSONL) return BT_OK;
    if (w->has_id) rc = put_field(w, first--, w->ds->column_names[BT_DATA_COL_ID] ? w->ds->column_names[BT_DATA_COL_ID] : "id", 0);
    if (!w->proba && !rc) rc = put_field(w, first, w->label, 0);
    for (int c = 0; w->proba && c < w->pm->C && !rc; c++) rc = put_field(w, first && !c, w->pm->labels[c], 0);
    fputc('\n', w->f);
    return rc;
}

static int write_row(const table_writer *w, size_t i, const float *lg)
{
    int C = w->pm->C, rc = BT_OK, first = 1;
    double p[C];
    if (w->pm->problem != BT_PROBLEM_REGRESSION) probabilities(w, lg, p);
    const char *id = bt_example_id(w->ds, i);
    const char *idname = w->ds->column_names[BT_DATA_COL_ID] ? w->ds->column_names[BT_DATA_COL_ID] : "id";
    if (w->fmt == BT_DATA_JSONL) {
        json_t *o = json_object();
        if (id) json_object_set_new(o, idname, json_string(id));
        if (!w->proba) {
            char *v = row_value(w, lg, p);
            json_object_set_new(o, w->label, w->pm->problem == BT_PROBLEM_REGRESSION ? json_real(lg[0]) : json_string(v));
            free(v);
        }
        for (int c = 0; w->proba && c < C; c++) json_object_set_new(o, w->pm->labels[c], json_real(p[c]));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        fprintf(w->f, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
        return BT_OK;
    }
    if (id) rc = put_field(w, first--, id, i + 1);
    if (!w->proba && !rc) {
        char *v = row_value(w, lg, p);
        rc = put_field(w, first, v, i + 1);
        free(v);
    }
    for (int c = 0; w->proba && c < C && !rc; c++) fprintf(w->f, first && !c ? "%.8f" : w->fmt == BT_DATA_CSV ? ",%.8f" : "\t%.8f", p[c]);
    fputc('\n', w->f);
    return rc;
}

static int write_table(table_writer *w, const float *logits)
{
    int rc = write_header(w);
    for (size_t i = 0; i < w->ds->n && !rc; i++) rc = write_row(w, i, logits + i * (size_t)w->pm->C);
    return rc;
}

/* Writes the output to o->output (published atomically) or stdout. */
static int publish(table_writer *w, const bt_predict_table_opts *o, const float *logits)
{
    if (!o->output) {
        w->f = stdout;
        w->name = "stdout";
        int rc = write_table(w, logits);
        if (!rc && (fflush(stdout) || ferror(stdout))) rc = bt_fail(BT_EIO, "cannot write the predictions to stdout");
        return rc;
    }
    bt_publish p;
    int rc = bt_publish_begin(&p, o->output);
    if (rc) return rc;
    w->f = p.f;
    w->name = o->output;
    rc = write_table(w, logits);
    int prc = bt_publish_end(&p, !rc);
    if (!rc && !prc) fprintf(stderr, "wrote %zu predictions to %s\n", w->ds->n, o->output);
    return rc ? rc : prc;
}

int bt_predict_table(const bt_predict_model *pm, const bt_predict_table_opts *o)
{
    if (o->proba && pm->problem == BT_PROBLEM_REGRESSION)
        return bt_fail(BT_EUSAGE, "--proba: %s is a regression model; it predicts values, not class probabilities",
                       o->src);
    bt_job job;
    memset(&job, 0, sizeof job);
    int have = 0, rc = load_job(o, &job, &have);
    if (rc) return rc;
    bt_dataset ds;
    char *names[4];
    if ((rc = train_columns(pm, &job, have, names))) {
        bt_job_free(&job);
        return rc;
    }
    rc = read_table(o, &job, have, names, &ds);
    char *label = label_name(&job, have, names);
    for (int k = 0; k < 4; k++) free(names[k]);
    if (rc) {
        free(label);
        bt_job_free(&job);
        return bt_fail_context(rc, "predict --input");
    }
    float *logits = bt_xcalloc(ds.n * (size_t)pm->C, sizeof *logits);
    rc = table_logits(pm, &ds, logits);
    table_writer w = {.fmt = bt_predict_output_format(o->output, o->format), .pm = pm, .ds = &ds, .label = label,
                      .sep = have && job.data.label_separator && job.data.label_separator[0] ? job.data.label_separator : "|",
                      .proba = o->proba, .has_id = ds.has_id};
    if (!rc) rc = publish(&w, o, logits);
    free(label);
    free(logits);
    bt_data_free(&ds);
    bt_job_free(&job);
    return rc;
}
