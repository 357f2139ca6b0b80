/* runner/cmd_predict.c — `baton predict MODEL_DIR --input FILE`: sequence-
 * classification logits for each input line.
 *
 * Owns: argument parsing, reading lines, batching, and printing logits
 * (tab-separated, one line per input, in input order).
 * Must not: implement model or tokenizer logic (engine/ does).
 * A line holding a TAB is encoded as a (first, second) pair, as a
 * two-column data set would be.
 */
#include "engine/bert.h"
#include "engine/tokenizer.h"
#include "kernels/backend.h"
#include "runner/commands.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_text =
    "usage: baton predict MODEL_DIR --input FILE [--batch-size N] [--max-length N]\n"
    "                     [--threads N] [--device cpu|cuda]\n"
    "Prints the sequence-classification logits of each line of FILE ('-' = stdin),\n"
    "tab-separated, one output line per input line. A line with a TAB is a text pair.\n"
    "  --batch-size N   examples per forward pass (default 16)\n"
    "  --max-length N   tokens per example incl. [CLS]/[SEP] (default: 512, or the\n"
    "                   tokenizer's model_max_length / the model's positions if smaller)\n"
    "  --threads N      CPU threads (default: OpenMP's)\n"
    "  --device D       cpu (default) or cuda\n";

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

static int flush_batch(bt_bert *m, item *it, int n, float *logits, int C)
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
    for (int i = 0; i < n && !rc; i++) {
        for (int c = 0; c < C; c++) printf(c ? "\t%.7g" : "%.7g", logits[(size_t)i * C + c]);
        putchar('\n');
    }
    for (int i = 0; i < n; i++) {
        free(it[i].ids);
        free(it[i].tt);
    }
    free(ids);
    free(tt);
    free(len);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *dir = NULL, *input = NULL, *device = "cpu";
    int batch = 16, max_len = 0, threads = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--input")) {
            if (!v) return bt_report_error(bt_fail(BT_EUSAGE, "--input needs a file ('-' for stdin)"));
            input = v, i++;
        } else if (!strcmp(a, "--batch-size")) {
            if ((rc = parse_int(a, v, 1, 4096, &batch))) return bt_report_error(rc);
            i++;
        } else if (!strcmp(a, "--max-length")) {
            if ((rc = parse_int(a, v, 3, 1 << 20, &max_len))) return bt_report_error(rc);
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
        } else if (!dir) {
            dir = a;
        } else {
            return bt_report_error(bt_fail(BT_EUSAGE, "unexpected argument '%s'", a));
        }
    }
    if (!dir || !input) {
        fputs(usage_text, stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, "predict needs MODEL_DIR and --input FILE"));
    }

    bt_tokenizer *tok = NULL;
    if ((rc = bt_tokenizer_load(dir, &tok))) return bt_report_error(rc);
    bt_bert_config cfg;
    if ((rc = bt_bert_config_load(dir, &cfg))) {
        bt_tokenizer_free(tok);
        return bt_report_error(rc);
    }
    if (!max_len) {
        max_len = 512;
        long mml = bt_tokenizer_get_config(tok)->model_max_length;
        if (mml > 0 && mml < max_len) max_len = (int)mml;
    }
    if (max_len > cfg.max_pos) max_len = cfg.max_pos;

    FILE *in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        bt_tokenizer_free(tok);
        return bt_report_error(bt_fail(BT_ENOINPUT, "%s: cannot open the input file", input));
    }
    bt_backend *be = !strcmp(device, "cuda") ? bt_backend_cuda_create(0) : bt_backend_cpu_create(threads);
    bt_bert *m = NULL;
    bt_bert_opts o = {.task = BT_TASK_SEQ_CLS, .max_batch = batch, .max_seq = max_len, .training = 0, .seed = 0};
    if (!be) {
        rc = BT_ECONFIG;
        goto out;
    }
    if ((rc = bt_bert_create(be, dir, &o, &m))) goto out;
    if (bt_bert_heads_initialised(m))
        bt_warn("%s has no trained classifier (%d head tensors freshly initialised): the logits are not "
                "meaningful; point predict at a fine-tuned model or an exported checkpoint",
                dir, bt_bert_heads_initialised(m));
    int C = bt_bert_logits_cols(m);
    float *logits = bt_xcalloc((size_t)batch * C, sizeof *logits);
    item *items = bt_xcalloc((size_t)batch, sizeof *items);
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts eo = {.max_length = max_len, .truncation = BT_TRUNC_LONGEST_FIRST};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int nb = 0;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *tab = memchr(line, '\t', (size_t)n);
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
            rc = flush_batch(m, items, nb, logits, C);
            nb = 0;
        }
    }
    if (!rc && ferror(in)) rc = bt_fail(BT_EIO, "%s: read error after line %ld", input, lineno);
    if (!rc && nb) rc = flush_batch(m, items, nb, logits, C);
    else
        for (int i = 0; i < nb; i++) free(items[i].ids), free(items[i].tt);
    if (!rc && (fflush(stdout) || ferror(stdout))) rc = bt_fail(BT_EIO, "cannot write the logits to stdout");
    free(line);
    free(items);
    free(logits);
    bt_encoding_free(&enc);
out:
    bt_bert_free(m);
    if (be) be->destroy(be);
    if (in != stdin) fclose(in);
    bt_tokenizer_free(tok);
    return rc ? bt_report_error(rc) : 0;
}
