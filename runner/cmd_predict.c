/* runner/cmd_predict.c — `baton predict (MODEL_DIR | ARCHIVE | JOB.ini)
 * --input FILE`: sequence-classification predictions for each input line.
 *
 * Owns: argument parsing, finding the model (a directory; an archive, exported
 * to a temporary directory first; a job's best archive, else its newest valid
 * one), reading lines, batching, and writing one result per input line in
 * input order: labels and probabilities (TSV or JSONL) or raw logits.
 * Must not: implement model or tokenizer logic (engine/ does).
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
    "                     [--format tsv|jsonl|logits] [--batch-size N] [--max-length N]\n"
    "                     [--stride N] [--threads N] [--device cpu|cuda]\n"
    "Predicts each line of FILE ('-' = stdin) with a sequence-classification model,\n"
    "one output line per input line, in order. A line with a TAB is a text pair.\n"
    "The model: a Hugging Face directory, a checkpoint archive, or a job file (its\n"
    "best archive when the job keeps one, else its newest valid archive).\n"
    "  --output FILE    write there (atomically) instead of stdout\n"
    "  --format F       tsv (default): a header, then label, its probability and every\n"
    "                   label's probability (softmax; multi-label: sigmoid, labels at\n"
    "                   >= 0.5 joined by ','; regression: the value); jsonl: the same\n"
    "                   as JSON objects; logits: the raw logits, tab-separated\n"
    "  --batch-size N   examples per forward pass (default 16)\n"
    "  --max-length N   tokens per example incl. [CLS]/[SEP] (default: the job's\n"
    "                   max_seq_len for a model trained by baton, else 512, or the\n"
    "                   tokenizer's model_max_length / the model's positions if smaller)\n"
    "  --threads N      CPU threads (default: OpenMP's)\n"
    "  --device D       cpu (default) or cuda\n"
    "A token-classification model (task = token_classify) tags words instead: the\n"
    "input is one sentence per line (words split on whitespace) or a CoNLL file\n"
    "(one word per line, blank line between sentences); the output is word<TAB>tag\n"
    "lines with a blank line after each sentence (jsonl: one object per sentence;\n"
    "logits: word<TAB>the logits of its first sub-token). A sentence longer than\n"
    "--max-length is cut into overlapping windows of whole words; each word is\n"
    "tagged by one window (the first half of two windows' shared words by the\n"
    "earlier one, the rest by the later one).\n"
    "  --stride N       sub-tokens repeated between windows (default: the job's\n"
    "                   [data] stride as training used it, else a quarter of a window)\n"
    "  --input-format F auto (default: conll for .conll/.bio/.iob files, else text),\n"
    "                   text or conll\n"
    "FILE must be a regular file, or '-' to read a stream (a pipe) from stdin.\n"
    "SIGTERM or SIGINT stops predict within one batch: exit 75, no --output file\n"
    "(its .partial is removed); on stdout, the lines before stay written.\n";

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
        for (int c = 0; c < C; c++) fprintf(w->out, c ? "\t%.7g" : "%.7g", lg[c]);
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

/* The archive a job's predictions come from: its best archive when the
 * newest valid archive names one that is present and valid, else the newest. */
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
        json_t *t = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
        const char *best = json_string_value(json_object_get(json_object_get(t, "best"), "archive"));
        if (best && best[0]) {
            char *bp = bt_path_join(job.job.output_dir, best);
            if (strcmp(bp, found) && bt_path_exists(bp) && bt_archive_read_checked(bp, NULL, NULL, NULL) == BT_OK) {
                bt_info("predicting with the best archive %s", bp);
                snprintf(found, cap, "%s", bp);
            }
            bt_err_clear();
            free(bp);
        }
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

int cmd_predict(int argc, char **argv)
{
    const char *src = NULL, *input = NULL, *device = "cpu", *output = NULL;
    int batch = 16, max_len = 0, threads = 0, stride = -1, rc;
    out_format fmt = FMT_TSV;
    int in_conll = -1; /* --input-format: -1 auto, 0 text, 1 conll (token classification) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--input")) {
            if (!v) return bt_report_error(bt_fail(BT_EUSAGE, "--input needs a file ('-' for stdin)"));
            input = v, i++;
        } else if (!strcmp(a, "--output")) {
            if (!v) return bt_report_error(bt_fail(BT_EUSAGE, "--output needs a file"));
            output = v, i++;
        } else if (!strcmp(a, "--format")) {
            if (v && !strcmp(v, "tsv")) fmt = FMT_TSV;
            else if (v && !strcmp(v, "jsonl")) fmt = FMT_JSONL;
            else if (v && !strcmp(v, "logits")) fmt = FMT_LOGITS;
            else return bt_report_error(bt_fail(BT_EUSAGE, "--format is tsv, jsonl or logits (got '%s')", v ? v : ""));
            i++;
        } else if (!strcmp(a, "--batch-size")) {
            if ((rc = parse_int(a, v, 1, 4096, &batch))) return bt_report_error(rc);
            i++;
        } else if (!strcmp(a, "--input-format")) {
            if (!v || (strcmp(v, "auto") && strcmp(v, "text") && strcmp(v, "conll")))
                return bt_report_error(bt_fail(BT_EUSAGE, "--input-format is auto, text or conll"));
            in_conll = !strcmp(v, "auto") ? -1 : !strcmp(v, "conll");
            i++;
        } else if (!strcmp(a, "--max-length")) {
            if ((rc = parse_int(a, v, 3, 1 << 20, &max_len))) return bt_report_error(rc);
            i++;
        } else if (!strcmp(a, "--stride")) {
            if ((rc = parse_int(a, v, 0, 1 << 20, &stride))) return bt_report_error(rc);
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((rc = parse_int(a, v, 0, 1024, &threads))) return bt_report_error(rc);
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!v || (strcmp(v, "cpu") && strcmp(v, "cuda")))
                return bt_report_error(bt_fail(BT_EUSAGE, "--device is cpu or cuda"));
            device = v, i++;
        } else if (a[0] == '-' && a[1]) {
            fputs(usage_text, stderr);
            return bt_report_error(bt_fail(BT_EUSAGE, "unknown option '%s'", a));
        } else if (!src) {
            src = a;
        } else {
            return bt_report_error(bt_fail(BT_EUSAGE, "unexpected argument '%s'", a));
        }
    }
    if (!src || !input) {
        fputs(usage_text, stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, "predict needs a model (MODEL_DIR, ARCHIVE or JOB.ini) and --input FILE"));
    }
    if ((rc = input_is_file(input))) return bt_report_error(rc);
    bt_signals_install(); /* a stop request ends predict within one batch, cleaning up */

    /* The model directory: given, or exported from an archive into a
     * temporary directory removed at the end. */
    char archive[4096] = "", tmpdir[4096] = "";
    char *resolved = NULL; /* a model directory, or the one below a folder without config.json */
    const char *dir = src;
    if (bt_is_dir(src)) {
        if ((rc = bt_model_dir_resolve(src, BT_MODEL_DIR_WEIGHTS | BT_MODEL_DIR_TOKENIZER, &resolved))) return bt_report_error(rc);
        dir = resolved;
    } else {
        if (!bt_path_exists(src)) return bt_report_error(bt_fail(BT_ENOINPUT, "%s: no such file or directory", src));
        if (ends_with(src, ".ini")) {
            if ((rc = job_archive(src, archive, sizeof archive))) return bt_report_error(rc);
        } else {
            snprintf(archive, sizeof archive, "%s", src);
        }
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/baton-predict-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir))
            return bt_report_error(bt_fail(BT_EIO, "cannot create a temporary directory in %s: %s",
                                           t && *t ? t : "/tmp", strerror(errno)));
        rc = bt_export_archive(archive, tmpdir, 1, NULL);
        if (rc) {
            rc = bt_fail_context(rc, "predict");
            goto cleanup_tmp;
        }
        dir = tmpdir;
    }

    bt_tokenizer *tok = NULL;
    bt_model_config mc;
    memset(&mc, 0, sizeof mc);
    FILE *in = NULL, *out = NULL;
    char *out_tmp = NULL;
    bt_backend *be = NULL;
    bt_bert *m = NULL;
    bt_longdoc *ld = NULL;
    bt_longdoc_opts lopts;
    int longdoc = 0, attn_dim = 0;
    bt_bert_config cfg;
    if ((rc = bt_tokenizer_load(dir, &tok))) goto out;
    if ((rc = bt_bert_config_load(dir, &cfg))) goto out;
    char *cp = bt_path_join(dir, "config.json");
    rc = bt_model_config_load(cp, &mc);
    free(cp);
    if (rc) goto out;
    /* the sequence length (and window overlap) of training, when the model
     * was trained by baton; else 512 / the tokenizer's limit */
    int trained_len, trained_stride;
    if ((rc = bt_model_config_inference(&mc, &trained_len, &trained_stride))) goto out;
    if (!max_len && trained_len) max_len = trained_len;
    if (!max_len) {
        max_len = 512;
        long mml = bt_tokenizer_get_config(tok)->model_max_length;
        if (mml > 0 && mml < max_len) max_len = (int)mml;
    }
    if (max_len > bt_bert_max_seq_len(&cfg)) max_len = bt_bert_max_seq_len(&cfg);
    /* a long-document classifier (task = classify_long): each line is a whole
     * document, chunked and pooled as in training (config.json says how) */
    if ((rc = bt_task_longdoc_from_config(mc.json, tok, src, &lopts, &attn_dim, &longdoc))) goto out;
    /* an archive of task = mlm has no classifier: refuse rather than print logits of a random head */
    if (archive[0] && mc.architecture && !strcmp(mc.architecture, "BertForMaskedLM")) {
        rc = bt_fail(BT_EUSAGE, "%s is a masked-LM checkpoint (task = mlm, BertForMaskedLM): it has no classifier "
                                "to predict with; export it (baton export) and fine-tune that directory with "
                                "task = classify", archive);
        goto out;
    }
    if (in_conll < 0) in_conll = bt_data_format_from_name(input) == BT_DATA_CONLL;
    /* a token classifier (task = token_classify): tags per word (runner/task_token.c) */
    if (mc.architecture && !strcmp(mc.architecture, "BertForTokenClassification")) {
        if (stride >= max_len - 2) {
            rc = bt_fail(BT_EUSAGE, "--stride %d: a window of a long sentence holds %d sub-tokens with --max-length "
                                    "%d and must repeat fewer; give a smaller --stride or a larger --max-length",
                         stride, max_len - 2, max_len);
            goto out;
        }
        int overlap = stride >= 0 ? stride : trained_stride < max_len - 2 ? trained_stride : -1;
        rc = bt_task_token_predict(dir, src, input, in_conll, output,
                                   fmt == FMT_JSONL ? "jsonl" : fmt == FMT_LOGITS ? "logits" : "tsv", batch, max_len,
                                   overlap, threads, device);
        goto out;
    }
    if (stride >= 0) {
        rc = bt_fail(BT_EUSAGE, "--stride applies to token-classification models (task = token_classify); %s is a "
                                "sequence classifier%s", src, longdoc ? " whose chunk stride is fixed by training" : "");
        goto out;
    }
    if (in_conll) {
        rc = bt_fail(BT_EUSAGE, "%s: a CoNLL input needs a token-classification model (task = token_classify); "
                                "%s is a sequence classifier: give one text per line", input, src);
        goto out;
    }

    in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        rc = bt_fail(BT_ENOINPUT, "%s: cannot open the input file: %s", input, strerror(errno));
        goto out;
    }
    if (output) {
        out_tmp = bt_xasprintf("%s.partial", output);
        out = fopen(out_tmp, "wb");
        if (!out) {
            rc = bt_fail(BT_EIO, "%s: cannot create the output file: %s", out_tmp, strerror(errno));
            goto out;
        }
    } else {
        out = stdout;
    }
    be = !strcmp(device, "cuda") ? bt_backend_cuda_create(0) : bt_backend_cpu_create(threads);
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .max_batch = batch, .max_seq = max_len, .training = 0, .seed = 0};
    if (longdoc) {
        o.max_batch = lopts.chunk_batch;
        o.max_seq = lopts.chunk.max_seq_len;
        o.doc_attn_dim = attn_dim;
    }
    if (!be) {
        rc = BT_ECONFIG;
        goto out;
    }
    if ((rc = bt_bert_create(be, dir, &o, &m))) goto out;
    if (longdoc && (rc = bt_longdoc_create(m, &lopts, &ld))) goto out;
    if (bt_bert_heads_initialised(m))
        bt_warn("%s has no trained classifier (%d head tensors freshly initialised): the predictions are not "
                "meaningful; point predict at a fine-tuned model, an archive or a job",
                src, bt_bert_heads_initialised(m));
    int C = bt_bert_logits_cols(m);
    writer w = {.fmt = fmt, .problem = mc.problem_type, .labels = mc.labels, .C = C, .out = out};
    if (w.problem == BT_PROBLEM_NONE) w.problem = C == 1 ? BT_PROBLEM_REGRESSION : BT_PROBLEM_SINGLE_LABEL;
    if (mc.num_labels != C && w.problem != BT_PROBLEM_REGRESSION && fmt != FMT_LOGITS) {
        rc = bt_fail(BT_EDATA, "%s: config.json names %d labels but the classifier has %d outputs", src,
                     mc.num_labels, C);
        goto out;
    }
    write_header(&w);
    float *logits = bt_xcalloc((size_t)batch * C, sizeof *logits);
    item *items = bt_xcalloc((size_t)batch, sizeof *items);
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts eo = {.max_length = longdoc ? 0 : max_len, .truncation = BT_TRUNC_LONGEST_FIRST};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int nb = 0;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *tab = memchr(line, '\t', (size_t)n);
        if (longdoc) { /* one document per line, encoded whole and classified at once */
            if (tab) {
                rc = bt_fail(BT_EDATA, "%s:%ld: a TAB in a document: a long-document model reads one text per "
                                       "line; replace the TABs with spaces", input, lineno);
                break;
            }
            rc = bt_encode(tok, line, (size_t)n, &eo, &enc);
            if (!rc) rc = bt_longdoc_logits(ld, enc.input_ids + 1, enc.len >= 2 ? enc.len - 2 : 0, logits);
            if (rc) {
                rc = bt_fail_context(rc, "%s:%ld", input, lineno);
                break;
            }
            write_result(&w, logits);
            continue;
        }
        rc = tab ? bt_encode_pair(tok, line, (size_t)(tab - line), tab + 1, (size_t)(n - (tab + 1 - line)), &eo, &enc)
                 : bt_encode(tok, line, (size_t)n, &eo, &enc);
        if (rc) {
            rc = bt_fail_context(rc, "%s:%ld", input, lineno);
            break;
        }
        item *it = &items[nb++];
        it->len = (int)enc.len;
        it->ids = bt_xmalloc(enc.len * sizeof(int32_t));
        it->tt = bt_xmalloc(enc.len * sizeof(int32_t));
        memcpy(it->ids, enc.input_ids, enc.len * sizeof(int32_t));
        memcpy(it->tt, enc.token_type_ids, enc.len * sizeof(int32_t));
        if (nb == batch) {
            rc = flush_batch(m, items, nb, logits, &w);
            nb = 0;
        }
        if (!rc && (longdoc || nb == 0)) rc = stop_requested(lineno, output);
    }
    if (!rc && ferror(in)) rc = bt_fail(BT_EIO, "%s: read error after line %ld", input, lineno);
    if (!rc && nb) rc = flush_batch(m, items, nb, logits, &w);
    else
        for (int i = 0; i < nb; i++) free(items[i].ids), free(items[i].tt);
    free(line);
    free(items);
    free(logits);
    bt_encoding_free(&enc);
    if (!rc && (fflush(out) || ferror(out)))
        rc = bt_fail(BT_EIO, "cannot write the predictions to %s", output ? out_tmp : "stdout");
    if (!rc && output) {
        if (fsync(fileno(out)) != 0 || fclose(out) != 0) rc = bt_fail(BT_EIO, "%s: %s", out_tmp, strerror(errno));
        out = NULL;
        if (!rc && rename(out_tmp, output) != 0)
            rc = bt_fail(BT_EIO, "cannot rename %s to %s: %s", out_tmp, output, strerror(errno));
        if (!rc) fprintf(stderr, "wrote %ld predictions to %s\n", lineno, output);
    }
out:
    bt_longdoc_free(ld);
    bt_bert_free(m);
    if (be) be->destroy(be);
    if (in && in != stdin) fclose(in);
    if (out && out != stdout) fclose(out);
    if (rc && out_tmp) unlink(out_tmp);
    free(out_tmp);
    bt_tokenizer_free(tok);
    bt_model_config_free(&mc);
cleanup_tmp:
    if (tmpdir[0]) {
        static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"};
        for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
            char *f = bt_path_join(tmpdir, files[k]);
            unlink(f);
            free(f);
        }
        rmdir(tmpdir);
    }
    free(resolved);
    bt_signals_restore();
    return rc ? bt_report_error(rc) : 0;
}
