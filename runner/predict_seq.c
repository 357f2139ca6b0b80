/* runner/predict_seq.c — `baton predict` with a sequence classifier or
 * regressor (task = classify, classify_long, similarity; see predict.h).
 *
 * Owns: the model on the device (a long-document model with its chunking
 * and pooling from config.json), reading text lines, batching, and writing
 * one result per input line in input order: labels and probabilities (TSV or
 * JSONL) or raw logits; tables go to runner/predict_table.c.
 * Must not: parse arguments or find the model (runner/cmd_predict.c does),
 * or implement model or tokenizer logic (engine/ does).
 * A line holding a TAB is encoded as a (first, second) pair, as a
 * two-column data set would be.
 */
#include "runner/predict.h"
#include "runner/predict_table.h"
#include "runner/selftest.h"
#include "runner/task_longdoc.h"
#include "runner/watchdog.h"

#include "kernels/backend.h"
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

/* What the output needs to know about the model. */
typedef struct {
    bt_predict_format fmt;
    bt_problem_type problem;
    char **labels; /* [C] */
    int C;
    FILE *out;
} writer;

static void write_header(const writer *w)
{
    if (w->fmt != BT_PREDICT_TSV) return;
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
    if (w->fmt == BT_PREDICT_LOGITS) {
        for (int c = 0; c < C; c++) fprintf(w->out, c ? "\t%.9g" : "%.9g", lg[c]);
        fputc('\n', w->out);
        return;
    }
    if (w->problem == BT_PROBLEM_REGRESSION) {
        if (w->fmt == BT_PREDICT_TSV) fprintf(w->out, "%.7g\n", lg[0]);
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
    json_t *o = w->fmt == BT_PREDICT_JSONL ? json_object() : NULL, *probs = o ? json_object() : NULL;
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

/* Everything the prediction holds while it runs. */
typedef struct {
    const bt_predict_request *a;
    bt_backend *be;
    bt_bert *m;
    bt_longdoc *ld;
    bt_longdoc_opts lopts;
    int longdoc, attn_dim;
} predict_ctx;

/* The sequence classifier on the device; its problem type and width in w. */
static int create_model(predict_ctx *c, writer *w)
{
    const bt_predict_request *a = c->a;
    int rc;
    /* cuda: the CUDA backend, or the BATON_FAKE_GPU stand-in as `baton run` (runner/selftest.h) */
    c->be = !strcmp(a->device, "cuda") ? bt_selftest_gpu_backend(0) : bt_backend_cpu_create(a->threads);
    if (!c->be) return BT_ECONFIG;
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .max_batch = a->batch, .max_seq = a->max_len, .training = 0, .seed = 0};
    if (c->longdoc) {
        o.max_batch = c->lopts.chunk_batch;
        o.max_seq = c->lopts.chunk.max_seq_len;
        o.doc_attn_dim = c->attn_dim;
    }
    if ((rc = bt_bert_create(c->be, c->a->dir, &o, &c->m))) return rc;
    if (c->longdoc && (rc = bt_longdoc_create(c->m, &c->lopts, &c->ld))) return rc;
    if (bt_bert_heads_initialised(c->m))
        bt_warn("%s has no trained classifier (%d head tensors freshly initialised): the predictions are not "
                "meaningful; point predict at a fine-tuned model, an archive or a job",
                a->src, bt_bert_heads_initialised(c->m));
    int C = bt_bert_logits_cols(c->m);
    *w = (writer){.fmt = a->fmt, .problem = c->a->mc->problem_type, .labels = c->a->mc->labels, .C = C};
    if (w->problem == BT_PROBLEM_NONE) w->problem = C == 1 ? BT_PROBLEM_REGRESSION : BT_PROBLEM_SINGLE_LABEL;
    if (c->a->mc->num_labels != C && w->problem != BT_PROBLEM_REGRESSION && a->fmt != BT_PREDICT_LOGITS)
        return bt_fail(BT_EDATA, "%s: config.json names %d labels but the classifier has %d outputs", a->src,
                       c->a->mc->num_labels, C);
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
    const char *input = c->a->input;
    char *tab = memchr(line, '\t', n);
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts eo = {.max_length = c->longdoc ? 0 : c->a->max_len, .truncation = BT_TRUNC_LONGEST_FIRST};
    int rc;
    if (c->longdoc && tab) /* one document per line, encoded whole and classified at once */
        return bt_fail(BT_EDATA, "%s:%ld: a TAB in a document: a long-document model reads one text per "
                                 "line; replace the TABs with spaces", input, lineno);
    rc = tab ? bt_encode_pair(c->a->tok, line, (size_t)(tab - line), tab + 1, n - (size_t)(tab + 1 - line), &eo, &enc)
             : bt_encode(c->a->tok, line, n, &eo, &enc);
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
    int batch = c->a->batch, nb = 0, rc = BT_OK;
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
        if (!rc && (c->longdoc || nb == 0)) rc = stop_requested(*lineno, c->a->output);
    }
    if (!rc && ferror(in)) rc = bt_fail(BT_EIO, "%s: read error after line %ld", c->a->input, *lineno);
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
    const char *input = c->a->input, *output = c->a->output;
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
    bt_predict_model pm = {.tok = c->a->tok, .m = c->m, .ld = c->ld, .max_len = c->a->max_len, .batch = c->a->batch,
                           .C = w->C, .problem = w->problem, .labels = w->labels, .mc = c->a->mc};
    bt_predict_table_opts o = {.src = c->a->src, .archive = c->a->archive, .input = c->a->input, .format = in_fmt,
                               .id_column = c->a->id_column, .output = c->a->output, .proba = c->a->proba};
    return bt_predict_table(&pm, &o);
}

/* A sequence model's predictions of a text or a table. */
int bt_predict_sequence(const bt_predict_request *r)
{
    if (r->in_fmt == BT_DATA_CONLL)
        return bt_fail(BT_EUSAGE, "%s: a CoNLL input needs a token-classification model (task = token_classify); "
                                  "%s is a sequence classifier: give one text per line", r->input, r->src);
    predict_ctx c;
    memset(&c, 0, sizeof c);
    c.a = r;
    /* a long-document classifier (task = classify_long): each line is a whole
     * document, chunked and pooled as in training (config.json says how) */
    int rc = bt_task_longdoc_from_config(r->mc->json, r->tok, r->src, &c.lopts, &c.attn_dim, &c.longdoc);
    if (!rc && r->stride >= 0)
        rc = bt_fail(BT_EUSAGE, "--stride applies to token-classification models (task = token_classify); %s is a "
                                "sequence classifier%s", r->src, c.longdoc ? " whose chunk stride is fixed by training" : "");
    writer w;
    if (!rc) rc = create_model(&c, &w);
    if (!rc) rc = r->in_fmt == BT_DATA_TEXT ? predict_text(&c, &w) : predict_table(&c, &w, r->in_fmt);
    bt_longdoc_free(c.ld);
    bt_bert_free(c.m);
    if (c.be) c.be->destroy(c.be);
    return rc;
}
